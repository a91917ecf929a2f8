#!/usr/bin/env bash
# test_llamacpp_archs.sh - random models of the newer architectures, written
# by build/tools/genmodel, load and run the same in the real llama.cpp
# (node-llama-cpp's prebuilt libllama from npm; tests/js/llamacpp_check.mjs
# compares tokenizer ids, next-token log-probabilities at every position
# against build/tools/logits, and greedy generation against `cgpt run`).
# A peer oracle beside the NumPy reference (tests/ref): it checks that our
# reading of each architecture's GGUF layout and keys is llama.cpp's.
#
#   tests/model/test_llamacpp_archs.sh CGPT
#
# The F32 models are compared in full. The quantized ones (the five low-bit
# types, and MoE experts in them) run in llamacpp_check's quantized mode: the
# first position of each prompt must agree within 1e-5, which a weight layout
# or dequantisation that differed from ggml's would break, while later
# positions may drift (llama.cpp's AVX2 activation quantizer computes the
# block scale as 127 / max where ggml's reference, ours and tests/ref's use
# 1 / (max / 127): an occasional activation rounds the other way, and a
# random model amplifies that; a dense qwen3 Q8_0 shows the same). phi3 is not here: this llama.cpp refuses
# the synthetic byte-level vocabulary for phi3 (a lookup in its vocabulary
# loader fails) and ignores phi3's sliding window; tests/ref checks phi3.
# Exits 1 if any check failed.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
[ $# -eq 1 ] || { echo "usage: $0 CGPT" >&2; exit 2; }
cgpt=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
build=$(dirname "$cgpt")
gen=$build/tools/genmodel
check=$root/tests/js/llamacpp_check.mjs
fail() { echo "test_llamacpp_archs: $*" >&2; exit 1; }
[ -x "$gen" ] || fail "$gen: not an executable (make tools)"
command -v node >/dev/null || fail "node not found (scripts/install-deps.sh)"
[ -d "$root/tests/js/node_modules/node-llama-cpp" ] ||
  fail "tests/js/node_modules/node-llama-cpp missing (scripts/install-node-deps.sh)"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/cgpt-llamacpp-archs-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
common=(--vocab 300 --embd 128 --layers 3 --heads 4 --head-dim 32 --ff 256 --std 0.08)
models=(
  "gemma2:--arch gemma2 --kv-heads 2 --window 5 --attn-softcap 2 --final-softcap 5 --tied"
  "gemma3:--arch gemma3 --kv-heads 1 --layers 7 --window 5 --rope-base 1000000 --rope-linear 8"
  "qwen2moe:--arch qwen2moe --kv-heads 2 --experts 6 --experts-used 3 --ff-exp 64 --ff-shexp 96"
  "qwen3moe:--arch qwen3moe --kv-heads 2 --experts 8 --experts-used 2 --ff-exp 64"
  "mixtral:--arch llama --kv-heads 2 --experts 4 --experts-used 2"
  "gpt-oss:--arch gpt-oss --kv-heads 2 --experts 8 --experts-used 2 --ff-exp 64 --window 4 --yarn 4"
  "llama-Q2_K:quantized --arch llama --kv-heads 2 --embd 256 --head-dim 64 --ff 512 --type Q2_K"
  "llama-Q3_K:quantized --arch llama --kv-heads 2 --embd 256 --head-dim 64 --ff 512 --type Q3_K"
  "llama-IQ4_NL:quantized --arch llama --kv-heads 2 --embd 256 --head-dim 64 --ff 512 --type IQ4_NL"
  "llama-IQ4_XS:quantized --arch llama --kv-heads 2 --embd 256 --head-dim 64 --ff 512 --type IQ4_XS"
  "llama-MXFP4:quantized --arch llama --kv-heads 2 --embd 256 --head-dim 64 --ff 512 --type MXFP4"
  "gpt-oss-MXFP4:quantized --arch gpt-oss --kv-heads 2 --experts 8 --experts-used 2 --ff-exp 64 --window 4 --yarn 4 --type MXFP4"
  "qwen3moe-Q3_K:quantized --arch qwen3moe --kv-heads 2 --embd 256 --head-dim 64 --experts 4 --experts-used 2 --ff-exp 256 --type Q3_K"
)
pass=0 failn=0
for spec in "${models[@]}"; do
  name=${spec%%:*}
  # shellcheck disable=SC2206 # the flags are words
  flags=(${spec#*:})
  quant=0
  if [ "${flags[0]}" = quantized ]; then quant=1; flags=("${flags[@]:1}"); fi
  "$gen" "${common[@]}" "${flags[@]}" -o "$tmp/$name.gguf" || fail "genmodel $name"
  echo "test_llamacpp_archs: $name"
  LLAMACPP_QUANTIZED=$quant node "$check" "$cgpt" "$tmp/$name.gguf" "$build/tools/logits" >"$tmp/out" 2>&1 || true
  grep -E "^FAIL|log-probs.*max|positions within" "$tmp/out" || true
  read -r p f < <(sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\1 \2/p' "$tmp/out" | tail -1) ||
    { p=0; f=1; tail -5 "$tmp/out"; }
  pass=$((pass + p)) failn=$((failn + f))
done
echo "test_llamacpp_archs: $pass passed, $failn failed"
[ "$failn" -eq 0 ]
