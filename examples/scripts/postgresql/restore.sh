#!/bin/bash
# restore <host> <username> <password> <database> <filename> <job_id> <compression> <encryption_key>
# Restores a dump made by backup.sh into <database>: its objects are dropped and recreated.
source "$(dirname "$0")/lib.sh"
connect "$1" "$2" "$3"
database=$4 file=$5 key=${8:-}
if [[ "$file" == *.enc ]]; then
  encrypting "$key" || { echo "$file is encrypted but the request has no encryption_key" >&2; exit 1; }
  decrypt "$file" "$key"
  file=${file%.enc}
fi
pg_restore --clean --if-exists --no-owner --single-transaction --exit-on-error --no-password --dbname="$database" "$file"
echo "restored $file into $database"
