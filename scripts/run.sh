#!/usr/bin/env bash
# The main job, until the server exists: describe the built-in model and ask
# it a question through the whole chat path (template, tokenizer, engine,
# sampler, streaming decode). `build/cgpt chat` then chats with it.
set -euo pipefail
cd "$(dirname "$0")/.."
m=models/cgpt-mini.gguf
if [ ! -f "$m" ]; then
  echo "cgpt: $m is missing; 'make model' rebuilds it from Debian packages" >&2
  exit 1
fi
build/cgpt info -m "$m"
echo
echo "build/cgpt run --chat -p 'Who are you?' --temp 0:"
build/cgpt run --chat -p "Who are you?" --temp 0 -n 64
echo
echo "Chat with it: build/cgpt chat"
