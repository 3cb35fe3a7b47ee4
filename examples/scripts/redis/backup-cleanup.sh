#!/bin/bash
# backup-cleanup <database> <job_id>: the agent has uploaded the snapshot; remove the local copy.
rm -f -- ./*.rdb ./*.rdb.gz ./*.enc
