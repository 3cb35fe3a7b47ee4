#!/bin/bash
# Demo backup: writes a small text "dump" into the job directory (the working directory).
# Arguments: host username password database file_name_without_type job_id compression encryption_key
set -euo pipefail
# Demo parameters: demo_fail=<stage> makes that stage fail, demo_sleep=<seconds> slows it down.
if [ "${demo_fail:-}" = "$(basename "$0" .sh)" ]; then echo "failing because demo_fail asks so" >&2; exit 1; fi
if [ -n "${demo_sleep:-}" ]; then sleep -- "$demo_sleep"; fi
database=$4 file=$5.txt
{
  echo "demo dump of database $database on $1"
  echo "taken at $(date -u +%Y-%m-%dT%H:%M:%SZ) for job $6"
} > "$file"
echo "demo backup: wrote $file"
