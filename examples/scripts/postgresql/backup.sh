#!/bin/bash
# backup <host> <username> <password> <database> <file_name_without_type> <job_id> <compression> <encryption_key>
# Streaming mode (request parameter stream=true): pg_dump writes to $BACKUP_STREAM and the
# agent compresses, encrypts, hashes and uploads it while it runs: no file on this disk.
# File mode (default): writes <file_name_without_type>.dump (pg_dump custom format; with
# encryption .dump.enc) into the job directory; the agent uploads it.
source "$(dirname "$0")/lib.sh"
connect "$1" "$2" "$3"
database=$4 file="$5.dump" compression=$7 key=${8:-}
if [ "${stream:-false}" = true ]; then
  # uncompressed custom format: the agent compresses (zstd) when the request asks for it
  pg_dump --format=custom --compress=0 --no-password --dbname="$database" > "$BACKUP_STREAM"
  echo "streamed $database"
  exit 0
fi
level=0
if [ "$compression" = true ]; then level=6; fi
pg_dump --format=custom --compress="$level" --no-password --dbname="$database" --file="$file"
if encrypting "$key"; then encrypt "$file" "$key"; file="$file.enc"; fi
echo "wrote $file ($(stat -c %s "$file") bytes)"
