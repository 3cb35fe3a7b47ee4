#!/bin/bash
# pre-backup-check <database>: the server answers on its port and there is room for the dump.
source "$(dirname "$0")/lib.sh"
mariadb-admin --no-defaults --host="${MYSQL_HOST:-127.0.0.1}" --port="${MYSQL_TCP_PORT:-3306}" --connect-timeout=15 ping 2>&1 | grep -q alive \
  || { echo "MariaDB does not answer on ${MYSQL_HOST:-127.0.0.1}:${MYSQL_TCP_PORT:-3306}" >&2; exit 1; }
df -h . | tail -1
