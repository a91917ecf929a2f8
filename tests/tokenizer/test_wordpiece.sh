#!/usr/bin/env bash
# WordPiece (tokenizer.ggml.model "bert") against transformers.js's
# BertTokenizer (tests/tokenizer/test_wordpiece.mjs). Needs build/tools
# (genmodel, tokbatch; CGPT_BUILD for another build), node and python3-numpy;
# installs tests/js/node_modules if missing.
# Ends with "N passed, N failed"; exits non-zero on any mismatch.
set -euo pipefail
cd "$(dirname "$0")/../.."
scripts/install-node-deps.sh
exec node tests/tokenizer/test_wordpiece.mjs "$@"
