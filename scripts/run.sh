#!/usr/bin/env bash
# The main job: `cgpt serve` with the built-in model and every model of the
# library (`cgpt pull`; each loaded on its first request), the chat page at
# http://127.0.0.1:8080/ and the OpenAI API under /v1 (PORT=N picks another
# port; extra serve options go in CGPT_SERVE_ARGS). Conversations and
# accounts live in ~/.cgpt (CGPT_DATA_DIR or --data-dir). The server prints
# its URLs when it is ready; Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
m=models/cgpt-mini.gguf
if [ ! -f "$m" ]; then
  echo "cgpt: $m is missing; 'make model' rebuilds it from Debian packages" >&2
  exit 1
fi
port="${PORT:-8080}"
cat <<MSG
Starting cgpt serve with the built-in model ($m) and the models you pull.
The chat page: open http://127.0.0.1:$port/ in a browser. On this machine the
page offers to create the first account (it becomes the admin); more accounts:
  build/cgpt user add NAME
Any OpenAI client works too:
  base URL http://127.0.0.1:$port/v1, model "cgpt-mini", any API key while no keys exist.
  curl http://127.0.0.1:$port/v1/chat/completions -H 'Content-Type: application/json' \\
       -d '{"model":"cgpt-mini","messages":[{"role":"user","content":"Who are you?"}]}'
API keys: build/cgpt key add NAME (then requests need 'Authorization: Bearer KEY').
The built-in model is tiny (6.5M parameters). For real answers, get a real model
(about 1.1 GB); this server offers it as soon as it is pulled (the page's model
picker, or "model": "Qwen/Qwen2.5-1.5B-Instruct-GGUF:Q4_K_M"):
  build/cgpt pull hf.co/Qwen/Qwen2.5-1.5B-Instruct-GGUF:Q4_K_M
MSG
# shellcheck disable=SC2086
exec build/cgpt serve --port "$port" ${CGPT_SERVE_ARGS:-}
