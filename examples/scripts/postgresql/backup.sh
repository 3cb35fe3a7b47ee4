#!/bin/bash
# backup <host> <username> <password> <database> <file_name_without_type> <job_id> <compression> <encryption_key>
# Writes <file_name_without_type>.dump (pg_dump custom format; with encryption .dump.enc).
source "$(dirname "$0")/lib.sh"
connect "$1" "$2" "$3"
database=$4 file="$5.dump" compression=$7 key=${8:-}
level=0
if [ "$compression" = true ]; then level=6; fi
pg_dump --format=custom --compress="$level" --no-password --dbname="$database" --file="$file"
if encrypting "$key"; then encrypt "$file" "$key"; file="$file.enc"; fi
echo "wrote $file ($(stat -c %s "$file") bytes)"
