#!/bin/bash
# pre-backup-check <database>: the server answers and there is room for the dump.
source "$(dirname "$0")/lib.sh"
pg_isready -h "${check_host:-127.0.0.1}" -p "$port" -t 15  # check_host, port: request parameters
df -h . | tail -1
