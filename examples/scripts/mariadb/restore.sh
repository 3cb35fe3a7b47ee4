#!/bin/bash
# restore <host> <username> <password> <database> <filename> <job_id> <compression> <encryption_key>
# Replays a dump made by backup.sh (it names its database: CREATE DATABASE IF NOT EXISTS, USE).
source "$(dirname "$0")/lib.sh"
client_options "$1" "$2" "$3"
file=$5 key=${8:-}
if [[ "$file" == *.enc ]]; then
  encrypting "$key" || { echo "$file is encrypted but the request has no encryption_key" >&2; exit 1; }
  decrypt "$file" "$key"
  file=${file%.enc}
fi
if [[ "$file" == *.gz ]]; then gunzip -f -- "$file"; file=${file%.gz}; fi
mariadb --defaults-extra-file="$options" < "$file"
echo "restored $file"
