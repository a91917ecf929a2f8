#!/usr/bin/env bash
# The main job, until the server and the built-in model exist: make a small
# random Llama-shaped model, describe it, and generate a few tokens from it.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p build/demo
m=build/demo/random-llama.gguf
[ -f "$m" ] || build/tools/genmodel --arch llama --vocab 1000 --embd 256 --layers 4 --heads 8 \
  --kv-heads 4 --head-dim 32 --ff 688 --ctx 512 --type Q8_0 --seed 1 -o "$m"
build/cgpt info -m "$m"
echo
echo "generating 16 tokens (greedy) after the prompt 1 2 3:"
build/cgpt run -m "$m" --tokens "1 2 3" -n 16 --temp 0 --ids
