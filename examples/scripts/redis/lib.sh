# Shared by the Redis scripts (sourced, not a stage). File mode: the backup script writes its
# file into the working directory (the job's directory), the agent uploads it; a restore finds
# the downloaded file there.
set -euo pipefail
umask 077

# The request parameter `port` (default 6379). A request can preset any lower-case variable
# of these scripts, so a value that reaches a tool is checked first.
port=${port:-6379}
[[ $port =~ ^[0-9]{1,5}$ ]] || { echo "the request parameter port must be a number" >&2; exit 1; }

# Host from the arguments; the password (argument 3, "" for none) goes through REDISCLI_AUTH,
# never the command line.
connect() {
  redis=(redis-cli -h "$1" -p "$port")
  if [ -n "${2:-}" ]; then export REDISCLI_AUTH=$2; fi
}

encrypting() { [ -n "${1:-}" ] && [ "$1" != none ]; }
encrypt() { OSB_KEY=$2 openssl enc -aes-256-cbc -pbkdf2 -salt -pass env:OSB_KEY -in "$1" -out "$1.enc" && rm -f -- "$1"; }
decrypt() { OSB_KEY=$2 openssl enc -d -aes-256-cbc -pbkdf2 -pass env:OSB_KEY -in "$1" -out "${1%.enc}"; }
