#!/bin/bash
# restore <host> <username> <password> <database> <filename> <job_id> <compression> <encryption_key>
# Restores a dump made by backup.sh into <database>: its objects are dropped and recreated.
# A streamed backup (.osb) arrives decoded on $RESTORE_STREAM (this script mentions it, so the
# agent streams); a file-mode backup arrives as the file <filename>.
source "$(dirname "$0")/lib.sh"
connect "$1" "$2" "$3"
database=$4 file=$5 key=${8:-}
restore() { pg_restore --clean --if-exists --no-owner --single-transaction --exit-on-error --no-password --dbname="$database" "$@"; }
if [ -n "${RESTORE_STREAM:-}" ]; then
  restore < "$RESTORE_STREAM"
  echo "restored the stream into $database"
  exit 0
fi
if [[ "$file" == *.enc ]]; then
  encrypting "$key" || { echo "$file is encrypted but the request has no encryption_key" >&2; exit 1; }
  decrypt "$file" "$key"
  file=${file%.enc}
fi
restore "$file"
echo "restored $file into $database"
