#!/usr/bin/env bash
# npm run release: a self-contained tarball for a VM with no registry access and no Node:
#   osb-backup-agent-<version>/
#     bin/osb-backup-agent   the command (serve = the agent, plus the CLI)
#     node/bin/node          Node 24 from the npm package `node` in node_modules
#     dist/                  src/ bundled by esbuild (tools/bundle.sh; Node refuses to strip types
#                            under node_modules, and one bundle starts faster than ~45 modules)
#     libexec/               script-helper (starts the lifecycle scripts), malloc-trim.node
#                            (tools/build-native.sh; needs a C compiler)
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
rm -rf "$stage" "$tarball"
mkdir -p "$stage/node/bin"

bash tools/bundle.sh "$stage/dist"
bash tools/build-native.sh --require "$stage/libexec"

cp node_modules/node/bin/node "$stage/node/bin/node"

cp -a bin examples docs README.md package.json "$stage/"
tar -C build -czf "$tarball" "$name"
rm -rf "$stage"
echo "$tarball"
