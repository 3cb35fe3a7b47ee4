#!/bin/bash
# pre-backup-check <database>: the server answers and there is room for the dump.
source "$(dirname "$0")/lib.sh"
pg_isready -h "${PGHOST:-127.0.0.1}" -p "${PGPORT:-5432}" -t 15  # PGHOST/PGPORT: request parameters
df -h . | tail -1
