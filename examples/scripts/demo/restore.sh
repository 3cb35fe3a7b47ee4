#!/bin/bash
# Demo restore: shows the downloaded file (the working directory holds it).
# Arguments: host username password database filename job_id compression encryption_key
set -euo pipefail
# Demo parameters: DEMO_FAIL=<stage> makes that stage fail, DEMO_SLEEP=<seconds> slows it down.
if [ "${DEMO_FAIL:-}" = "$(basename "$0" .sh)" ]; then echo "failing because DEMO_FAIL asks so" >&2; exit 1; fi
if [ -n "${DEMO_SLEEP:-}" ]; then sleep "$DEMO_SLEEP"; fi
echo "demo restore of $5 into database $4:"
cat -- "$5"
