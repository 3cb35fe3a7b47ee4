#!/bin/bash
# restore-cleanup <job_id>: remove the downloaded (and unpacked) dump.
rm -f -- ./*.sql ./*.sql.gz ./*.enc
