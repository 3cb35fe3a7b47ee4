#!/usr/bin/env bash
# The release's JavaScript: src/ bundled by esbuild into <outdir> (default build/dist): bin.js,
# the command's entry, and chunks beside it, one per lazily loaded part (the agent, the job
# machinery, each storage backend, the CLI). One file set instead of ~45 modules resolved and
# loaded one by one: start-up, docs/PERFORMANCE.md. Every file lands directly in <outdir>, one
# level below the installation root, as src/install-root.ts expects.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
outdir=${1:-build/dist}
rm -rf "$outdir"
node_modules/.bin/esbuild src/cli/bin.ts --bundle --splitting --format=esm --platform=node --target=node24 \
  --outdir="$outdir" --entry-names='[name]' --chunk-names='[name]-[hash]' --legal-comments=none --log-level=warning
