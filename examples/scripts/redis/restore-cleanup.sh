#!/bin/bash
# restore-cleanup <job_id>: remove the downloaded (and unpacked) snapshot.
rm -f -- ./*.rdb ./*.rdb.gz ./*.enc
