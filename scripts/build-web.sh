#!/usr/bin/env bash
# Build the page: install web/'s npm packages as pinned in its lock file
# (when they are not there yet), then bundle it and write the C table the
# binary embeds.
#   scripts/build-web.sh OUT_DIR OUT_C
set -euo pipefail
cd "$(dirname "$0")/.."
out_dir=$1 out_c=$2
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "cgpt: building the page needs node and npm: 'make deps' installs them" >&2
  exit 1
fi
if [ ! -d web/node_modules/esbuild ] || [ web/package-lock.json -nt web/node_modules/.package-lock.json ]; then
  echo "build-web: npm ci in web/"
  npm ci --prefix web --prefer-offline --no-audit --no-fund --loglevel=error
fi
mkdir -p "$out_dir"
node web/build.mjs "$out_dir" "$out_c"
