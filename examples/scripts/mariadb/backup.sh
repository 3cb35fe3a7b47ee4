#!/bin/bash
# backup <host> <username> <password> <database> <file_name_without_type> <job_id> <compression> <encryption_key>
# Writes <file_name_without_type>.sql (.sql.gz with compression; + .enc with encryption).
source "$(dirname "$0")/lib.sh"
client_options "$1" "$2" "$3"
database=$4 file="$5.sql" compression=$7 key=${8:-}
mariadb-dump --defaults-extra-file="$options" --single-transaction --routines --triggers --events --databases "$database" > "$file"
if [ "$compression" = true ]; then gzip -6 -- "$file"; file="$file.gz"; fi
if encrypting "$key"; then encrypt "$file" "$key"; file="$file.enc"; fi
echo "wrote $file ($(stat -c %s "$file") bytes)"
