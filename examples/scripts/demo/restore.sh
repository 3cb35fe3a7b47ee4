#!/bin/bash
# Demo restore: shows the downloaded file (the working directory holds it).
# Arguments: host username password database filename job_id compression encryption_key
set -euo pipefail
# Demo parameters: demo_fail=<stage> makes that stage fail, demo_sleep=<seconds> slows it down.
if [ "${demo_fail:-}" = "$(basename "$0" .sh)" ]; then echo "failing because demo_fail asks so" >&2; exit 1; fi
if [ -n "${demo_sleep:-}" ]; then sleep -- "$demo_sleep"; fi
echo "demo restore of $5 into database $4:"
cat -- "$5"
