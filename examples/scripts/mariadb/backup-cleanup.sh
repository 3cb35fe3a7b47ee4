#!/bin/bash
# backup-cleanup <database> <job_id>: the agent has uploaded the dump; remove the local copy.
rm -f -- ./*.sql ./*.sql.gz ./*.enc
