# Shared by the MariaDB/MySQL scripts (sourced, not a stage). File mode: the backup script writes
# its file into the working directory (the job's directory), the agent uploads it; a restore
# finds the downloaded file there.
set -euo pipefail
umask 077

# Client options in a file only this process can read: the password never shows in `ps`.
# The port comes from the request parameter MYSQL_TCP_PORT (the clients read it), default 3306.
client_options() {
  options=$(mktemp)
  trap 'rm -f -- "$options"' EXIT
  printf '[client]\nhost=%s\nuser=%s\npassword="%s"\nport=%s\n' "$1" "$2" "${3//\"/\\\"}" "${MYSQL_TCP_PORT:-3306}" > "$options"
}

encrypting() { [ -n "${1:-}" ] && [ "$1" != none ]; }
encrypt() { OSB_KEY=$2 openssl enc -aes-256-cbc -pbkdf2 -salt -pass env:OSB_KEY -in "$1" -out "$1.enc" && rm -f -- "$1"; }
decrypt() { OSB_KEY=$2 openssl enc -d -aes-256-cbc -pbkdf2 -pass env:OSB_KEY -in "$1" -out "${1%.enc}"; }
