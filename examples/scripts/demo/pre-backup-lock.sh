#!/bin/bash
# Demo pre-backup-lock: says what a real script would do here.
set -euo pipefail
# Demo parameters: DEMO_FAIL=<stage> makes that stage fail, DEMO_SLEEP=<seconds> slows it down.
if [ "${DEMO_FAIL:-}" = "$(basename "$0" .sh)" ]; then echo "failing because DEMO_FAIL asks so" >&2; exit 1; fi
if [ -n "${DEMO_SLEEP:-}" ]; then sleep "$DEMO_SLEEP"; fi
echo "demo pre-backup-lock: nothing to do (arguments: $*)"
