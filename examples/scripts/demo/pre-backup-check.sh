#!/bin/bash
# Demo pre-backup-check: says what a real script would do here.
set -euo pipefail
# Demo parameters: demo_fail=<stage> makes that stage fail, demo_sleep=<seconds> slows it down.
if [ "${demo_fail:-}" = "$(basename "$0" .sh)" ]; then echo "failing because demo_fail asks so" >&2; exit 1; fi
if [ -n "${demo_sleep:-}" ]; then sleep -- "$demo_sleep"; fi
echo "demo pre-backup-check: nothing to do (arguments: $*)"
