#!/usr/bin/env bash
# The agent's two compiled parts, into <dir> (default libexec/, where an agent run from this
# checkout looks for them; the release carries them at the same place below its root):
#   script-helper      starts lifecycle scripts (src/scripts/script-helper.c; spawner.ts says why)
#   malloc-trim.node   hands freed memory back to the kernel (src/util/malloc-trim.c)
# Without a C compiler nothing is built, and the agent starts scripts through its Perl helper and
# does without the trim. --require: fail instead. Each part is rebuilt only when its source is
# newer (npm test runs this every time).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
require=0
[[ ${1:-} == --require ]] && { require=1; shift; }
dir=${1:-libexec}
cc=$(command -v "${CC:-cc}" || true)
if [[ -z $cc ]]; then
  ((require)) && { echo "build-native: no C compiler (${CC:-cc}); install gcc and libc6-dev" >&2; exit 1; }
  echo "build-native: no C compiler; scripts start through the Perl helper, and freed memory is not trimmed" >&2
  exit 0
fi
flags=(-std=gnu11 -O2 -Wall -Wextra -Werror -D_FORTIFY_SOURCE=2 -fstack-protector-strong)
mkdir -p "$dir"

# build <source> <output> <extra flags…>: compiled beside the output, then renamed over it.
build() {
  local src=$1 out=$2
  shift 2
  [[ -x $out && $out -nt $src ]] && return 0
  local tmp
  tmp=$(mktemp "$out.XXXXXX")
  "$cc" "${flags[@]}" "$@" -o "$tmp" "$src" || { rm -f "$tmp"; return 1; }
  chmod 0755 "$tmp"
  mv -f "$tmp" "$out"
}
build src/scripts/script-helper.c "$dir/script-helper"
# Node-API's headers, from the npm package that brings Node 24 (its ABI is stable across versions).
include=$(echo node_modules/node/node_modules/node-linux-*/include/node)
if [[ ! -f $include/node_api.h ]]; then
  ((require)) && { echo "build-native: no node_api.h under node_modules/node (run npm ci)" >&2; exit 1; }
  echo "build-native: no node_api.h under node_modules/node (run npm ci); freed memory is not trimmed" >&2
  exit 0
fi
build src/util/malloc-trim.c "$dir/malloc-trim.node" -shared -fPIC -fvisibility=hidden -I"$include"
