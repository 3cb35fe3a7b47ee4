#!/bin/bash
# restore-cleanup <job_id>: remove the downloaded (and decrypted) dump.
rm -f -- ./*.dump ./*.dump.enc
