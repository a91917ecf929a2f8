#!/usr/bin/env bash
# test_gemma_chat.sh - Gemma's SentencePiece vocabulary and its published chat
# templates, end to end, against Jinja2 + transformers.js (see the .mjs).
set -euo pipefail
cd "$(dirname "$0")/../.."
scripts/install-node-deps.sh
exec node tests/tokenizer/test_gemma_chat.mjs "$@"
