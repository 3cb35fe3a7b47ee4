#!/usr/bin/env bash
# The compiled script helper (src/scripts/script-helper.c; spawner.ts tells why): built into
# <out> (default libexec/script-helper, where an agent run from this checkout looks for it; the
# release carries it at the same place below its root). Without a C compiler nothing is built and
# the agent starts scripts through its Perl helper. --require: fail instead.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
require=0
[[ ${1:-} == --require ]] && { require=1; shift; }
out=${1:-libexec/script-helper}
cc=$(command -v "${CC:-cc}" || true)
if [[ -z $cc ]]; then
  ((require)) && { echo "build-helper: no C compiler (${CC:-cc}); install gcc and libc6-dev" >&2; exit 1; }
  echo "build-helper: no C compiler; scripts will start through the Perl helper" >&2
  exit 0
fi
src=src/scripts/script-helper.c
# Up to date: nothing to do (npm test runs this every time).
[[ -x $out && $out -nt $src ]] && exit 0
mkdir -p "$(dirname "$out")"
tmp=$(mktemp "$out.XXXXXX")
trap 'rm -f "$tmp"' EXIT
"$cc" -std=gnu11 -O2 -Wall -Wextra -Werror -D_FORTIFY_SOURCE=2 -fstack-protector-strong -o "$tmp" "$src"
chmod 0755 "$tmp"
mv -f "$tmp" "$out"
trap - EXIT
