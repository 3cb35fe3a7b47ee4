#!/bin/bash
# Demo post-backup-unlock: says what a real script would do here.
set -euo pipefail
# Demo parameters: DEMO_FAIL=<stage> makes that stage fail, DEMO_SLEEP=<seconds> slows it down.
if [ "${DEMO_FAIL:-}" = "$(basename "$0" .sh)" ]; then echo "failing because DEMO_FAIL asks so" >&2; exit 1; fi
if [ -n "${DEMO_SLEEP:-}" ]; then sleep "$DEMO_SLEEP"; fi
echo "demo post-backup-unlock: nothing to do (arguments: $*)"
