#!/usr/bin/env bash
# test_llamacpp.sh - a GGUF that `cgpt train` wrote loads and runs the same in
# the real llama.cpp (node-llama-cpp's prebuilt libllama from npm, installed
# into tests/js by scripts/install-node-deps.sh).
#
#   tests/train/test_llamacpp.sh CGPT [MODEL]
#
# With MODEL: checks that file. Without: trains a tiny tokenizer, pretrains a
# tiny llama for a few steps and chat-tunes it (on the corpus-tiny beside
# CGPT, in a temporary folder, a few seconds on one thread) and checks both
# checkpoints. tests/js/llamacpp_check.mjs does the comparing (tokenizer ids,
# next-token log-probabilities at every position against build/tools/logits,
# greedy generation against `cgpt run`); see its header. Needs node-llama-cpp
# 3.21.1 and @node-llama-cpp/linux-x64 3.21.1 in tests/js (npm ci
# --omit=optional). Exits 1 if any check failed.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
[ $# -ge 1 ] && [ $# -le 2 ] || { echo "usage: $0 CGPT [MODEL]" >&2; exit 2; }
cgpt=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
build=$(dirname "$cgpt")
logits=$build/tools/logits
check=$root/tests/js/llamacpp_check.mjs

fail() { echo "test_llamacpp: $*" >&2; exit 1; }
[ -x "$cgpt" ] || fail "$cgpt: not an executable (make all)"
[ -x "$logits" ] || fail "$logits: not an executable (make tools)"
command -v node >/dev/null || fail "node not found (scripts/install-deps.sh)"
[ -d "$root/tests/js/node_modules/node-llama-cpp" ] ||
  fail "tests/js/node_modules/node-llama-cpp missing (scripts/install-node-deps.sh)"

if [ $# -eq 2 ]; then
  exec node "$check" "$cgpt" "$2" "$logits"
fi

corpus=$build/corpus-tiny
[ -f "$corpus/pretrain.jsonl" ] || fail "$corpus/pretrain.jsonl missing (make corpus-tiny)"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/cgpt-llamacpp-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
quiet() { "$@" >"$tmp/log" 2>&1 || { cat "$tmp/log" >&2; fail "failed: $*"; }; }
quiet "$cgpt" train tokenizer -i "$corpus/pretrain.jsonl" -i "$corpus/sft.jsonl" --vocab 512 -o "$tmp/tok.gguf"
quiet "$cgpt" train pretrain --tokenizer "$tmp/tok.gguf" -i "$corpus/pretrain.jsonl" \
  --embd 64 --layers 2 --heads 4 --kv-heads 2 --head-dim 16 --ff 128 --ctx 64 \
  --batch 4 --steps 24 --warmup 4 --lr 3e-3 --threads 1 -o "$tmp/pre"
quiet "$cgpt" train sft --init "$tmp/pre/model.gguf" -i "$corpus/sft.jsonl" -o "$tmp/sft" \
  --batch 4 --steps 12 --threads 1

pass=0 failn=0
for m in pre sft; do
  echo "test_llamacpp: $m checkpoint"
  node "$check" "$cgpt" "$tmp/$m/model.gguf" "$logits" | tee "$tmp/out" || true
  read -r p f < <(sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\1 \2/p' "$tmp/out" | tail -1) ||
    { p=0; f=1; }
  pass=$((pass + p)) failn=$((failn + f))
done
echo "test_llamacpp: $pass passed, $failn failed"
[ "$failn" -eq 0 ]
