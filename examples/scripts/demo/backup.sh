#!/bin/bash
# Demo backup: writes a small text "dump" into the job directory (the working directory).
# Arguments: host username password database file_name_without_type job_id compression encryption_key
set -euo pipefail
# Demo parameters: DEMO_FAIL=<stage> makes that stage fail, DEMO_SLEEP=<seconds> slows it down.
if [ "${DEMO_FAIL:-}" = "$(basename "$0" .sh)" ]; then echo "failing because DEMO_FAIL asks so" >&2; exit 1; fi
if [ -n "${DEMO_SLEEP:-}" ]; then sleep "$DEMO_SLEEP"; fi
database=$4 file=$5.txt
{
  echo "demo dump of database $database on $1"
  echo "taken at $(date -u +%Y-%m-%dT%H:%M:%SZ) for job $6"
} > "$file"
echo "demo backup: wrote $file"
