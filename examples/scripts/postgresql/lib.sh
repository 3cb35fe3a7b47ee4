# Shared by the PostgreSQL scripts (sourced, not a stage). File mode: the backup script writes
# its file into the working directory (the job's directory), the agent uploads it; a restore
# finds the downloaded file there.
set -euo pipefail
umask 077

# The request parameter `port` (default 5432). A request can preset any lower-case variable
# of these scripts, so a value that reaches a tool is checked first.
port=${port:-5432}
[[ $port =~ ^[0-9]{1,5}$ ]] || { echo "the request parameter port must be a number" >&2; exit 1; }

# Connection: host, user and password come as arguments, the port as PGPORT (libpq reads it).
# PGPASSWORD keeps the password out of `ps`.
connect() { export PGHOST=$1 PGUSER=$2 PGPASSWORD=$3 PGPORT=$port PGCONNECT_TIMEOUT=15; }

# Optional encryption with the request's encryption_key ("" or "none": off), AES-256 by openssl.
encrypting() { [ -n "${1:-}" ] && [ "$1" != none ]; }
encrypt() { OSB_KEY=$2 openssl enc -aes-256-cbc -pbkdf2 -salt -pass env:OSB_KEY -in "$1" -out "$1.enc" && rm -f -- "$1"; }
decrypt() { OSB_KEY=$2 openssl enc -d -aes-256-cbc -pbkdf2 -pass env:OSB_KEY -in "$1" -out "${1%.enc}"; }
