# Shared by the PostgreSQL scripts (sourced, not a stage). File mode: the backup script writes
# its file into the working directory (the job's directory), the agent uploads it; a restore
# finds the downloaded file there.
set -euo pipefail
umask 077

# Connection: host, user and password come as arguments; the port from the request parameter
# PGPORT (libpq reads it), default 5432. PGPASSWORD keeps the password out of `ps`.
connect() { export PGHOST=$1 PGUSER=$2 PGPASSWORD=$3 PGCONNECT_TIMEOUT=${PGCONNECT_TIMEOUT:-15}; }

# Optional encryption with the request's encryption_key ("" or "none": off), AES-256 by openssl.
encrypting() { [ -n "${1:-}" ] && [ "$1" != none ]; }
encrypt() { OSB_KEY=$2 openssl enc -aes-256-cbc -pbkdf2 -salt -pass env:OSB_KEY -in "$1" -out "$1.enc" && rm -f -- "$1"; }
decrypt() { OSB_KEY=$2 openssl enc -d -aes-256-cbc -pbkdf2 -pass env:OSB_KEY -in "$1" -out "${1%.enc}"; }
