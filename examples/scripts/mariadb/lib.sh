# Shared by the MariaDB/MySQL scripts (sourced, not a stage). File mode: the backup script writes
# its file into the working directory (the job's directory), the agent uploads it; a restore
# finds the downloaded file there.
set -euo pipefail
umask 077

# The request parameter `port` (default 3306). A request can preset any lower-case variable
# of these scripts, so a value that reaches a tool is checked first.
port=${port:-3306}
[[ $port =~ ^[0-9]{1,5}$ ]] || { echo "the request parameter port must be a number" >&2; exit 1; }

# Client options in a file only this process can read: the password never shows in `ps`. A line
# break in a value would start an option of its own (plugin-dir=…): refused.
client_options() {
  case "$1$2$3" in *$'\n'* | *$'\r'*) echo "host, username and password must not contain line breaks" >&2; exit 1 ;; esac
  local password=${3//\\/\\\\}
  password=${password//\"/\\\"}
  options=$(mktemp)
  trap 'rm -f -- "$options"' EXIT
  printf '[client]\nhost=%s\nuser=%s\npassword="%s"\nport=%s\n' "$1" "$2" "$password" "$port" > "$options"
}

encrypting() { [ -n "${1:-}" ] && [ "$1" != none ]; }
encrypt() { OSB_KEY=$2 openssl enc -aes-256-cbc -pbkdf2 -salt -pass env:OSB_KEY -in "$1" -out "$1.enc" && rm -f -- "$1"; }
decrypt() { OSB_KEY=$2 openssl enc -d -aes-256-cbc -pbkdf2 -pass env:OSB_KEY -in "$1" -out "${1%.enc}"; }
