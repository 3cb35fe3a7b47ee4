#!/bin/bash
# pre-backup-check <database>: the server answers on its port and there is room for the dump.
source "$(dirname "$0")/lib.sh"
host=${check_host:-127.0.0.1}  # check_host, port: request parameters
mariadb-admin --no-defaults --host="$host" --port="$port" --connect-timeout=15 ping 2>&1 | grep -q alive \
  || { echo "MariaDB does not answer on $host:$port" >&2; exit 1; }
df -h . | tail -1
