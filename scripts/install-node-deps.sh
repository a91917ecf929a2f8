#!/usr/bin/env bash
# Install the npm packages the oracle tests use (tests/js: tokenizers, and
# llama.cpp's prebuilt linux-x64 library via node-llama-cpp), exactly
# as pinned in tests/js/package-lock.json, unless they are already there.
#   scripts/install-node-deps.sh [--force]
# Uses the npm cache when it can (--prefer-offline); needs the registry only
# the first time.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=tests/js
if [ "${1:-}" != "--force" ] && [ -d "$dir/node_modules/@lenml/tokenizers" ] &&
   [ -d "$dir/node_modules/node-llama-cpp" ] && [ -d "$dir/node_modules/openai" ] &&
   [ -d "$dir/node_modules/playwright-core" ] &&
   [ "$dir/node_modules/.package-lock.json" -nt "$dir/package-lock.json" ]; then
  exit 0
fi
command -v npm >/dev/null || { echo "install-node-deps: npm not found (apt-get install nodejs npm)" >&2; exit 1; }
echo "install-node-deps: npm ci in $dir"
# tests/js/.npmrc omits optional dependencies (node-llama-cpp's CUDA/Vulkan builds).
npm ci --prefix "$dir" --prefer-offline --no-audit --no-fund --loglevel=error --omit=optional
