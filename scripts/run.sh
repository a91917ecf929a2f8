#!/usr/bin/env bash
# The main job, until the server and the built-in model exist: make a small
# random Llama-shaped model (its vocabulary is one token per byte), describe
# it, and generate from it through the whole text path (tokenizer, engine,
# sampler, streaming decode). A random model writes random bytes: this shows
# the machinery, not a conversation. `cgpt chat -m MODEL` works the same way
# with a real GGUF model.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p build/demo
m=build/demo/random-llama.gguf
[ -f "$m" ] || build/tools/genmodel --arch llama --vocab 1000 --embd 256 --layers 4 --heads 8 \
  --kv-heads 4 --head-dim 32 --ff 688 --ctx 512 --type Q8_0 --seed 1 -o "$m"
build/cgpt info -m "$m"
echo
echo "cgpt run -m $m -p 'Hello' -n 32 --temp 0:"
build/cgpt run -m "$m" -p "Hello" -n 32 --temp 0
