#!/bin/bash
# backup <host> <username> <password> <database> <file_name_without_type> <job_id> <compression> <encryption_key>
# Writes <file_name_without_type>.rdb (the server's RDB snapshot; + .gz, + .enc).
source "$(dirname "$0")/lib.sh"
connect "$1" "$3"
file="$5.rdb" compression=$7 key=${8:-}
"${redis[@]}" --rdb "$file" >&2
if [ "$compression" = true ]; then gzip -6 -- "$file"; file="$file.gz"; fi
if encrypting "$key"; then encrypt "$file" "$key"; file="$file.enc"; fi
echo "wrote $file ($(stat -c %s "$file") bytes)"
