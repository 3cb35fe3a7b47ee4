# Shared by the Redis scripts (sourced, not a stage). File mode: the backup script writes its
# file into the working directory (the job's directory), the agent uploads it; a restore finds
# the downloaded file there.
set -euo pipefail
umask 077

# Host from the arguments, port from the request parameter REDIS_PORT (default 6379); the
# password (argument 3, "" for none) goes through REDISCLI_AUTH, never the command line.
connect() {
  redis=(redis-cli -h "$1" -p "${REDIS_PORT:-6379}")
  if [ -n "${2:-}" ]; then export REDISCLI_AUTH=$2; fi
}

encrypting() { [ -n "${1:-}" ] && [ "$1" != none ]; }
encrypt() { OSB_KEY=$2 openssl enc -aes-256-cbc -pbkdf2 -salt -pass env:OSB_KEY -in "$1" -out "$1.enc" && rm -f -- "$1"; }
decrypt() { OSB_KEY=$2 openssl enc -d -aes-256-cbc -pbkdf2 -pass env:OSB_KEY -in "$1" -out "${1%.enc}"; }
