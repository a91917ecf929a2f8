#!/usr/bin/env bash
# The main job: `cgpt serve` with the built-in model, the OpenAI API on
# http://127.0.0.1:8080 (PORT=N picks another port; extra serve options go
# in CGPT_SERVE_ARGS). The server prints its URL when it is ready; Ctrl-C
# stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
m=models/cgpt-mini.gguf
if [ ! -f "$m" ]; then
  echo "cgpt: $m is missing; 'make model' rebuilds it from Debian packages" >&2
  exit 1
fi
port="${PORT:-8080}"
cat <<MSG
Starting cgpt serve with the built-in model ($m). Any OpenAI client works:
  base URL http://127.0.0.1:$port/v1, model "cgpt-mini", any API key while no keys exist.
  curl http://127.0.0.1:$port/v1/chat/completions -H 'Content-Type: application/json' \\
       -d '{"model":"cgpt-mini","messages":[{"role":"user","content":"Who are you?"}]}'
API keys: build/cgpt key add NAME (then requests need 'Authorization: Bearer KEY').
MSG
# shellcheck disable=SC2086
exec build/cgpt serve -m "$m" --port "$port" ${CGPT_SERVE_ARGS:-}
