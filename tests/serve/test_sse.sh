#!/usr/bin/env bash
# curl-level checks of `cgpt serve`: the SSE framing byte by byte and the
# HTTP behaviour an SDK hides.
# - streams: Content-Type text/event-stream, Cache-Control no-cache, every
#   event exactly "data: ...\n\n", [DONE] last, one id/created, role first,
#   no event splits a UTF-8 character (a prompt whose continuation is CJK
#   text made of byte tokens), streamed text = non-streamed text, usage
#   chunk with include_usage, chat and legacy completions;
# - 503 server_overloaded with Retry-After when the queue is full
#   (--parallel 1 --queue 1, many long requests at once), the server
#   serving again afterwards;
# - 413 request_too_large over --max-body (Content-Length and chunked);
# - 401 without / with a wrong key, x-api-key accepted; 404 unknown route,
#   405 wrong method, all in the OpenAI envelope;
# - CORS: preflight from an allowed origin gets the Allow headers, a
#   disallowed origin gets no CORS header at all;
# - x-request-id on every response (and different each time);
# - /health 200 without a key, /metrics with the documented names, no KV
#   blocks leaked after a client vanished mid-stream (used == cached);
# - --host 0.0.0.0 with no keys refuses to start (exit 1, one stderr line),
#   with a key it starts; SIGTERM stops it with status 0.
# Usage: tests/serve/test_sse.sh [CGPT_BINARY]   (default build/cgpt)
set -u
cd "$(dirname "$0")/../.."
CGPT=${1:-build/cgpt}
PY=/usr/bin/python3
CHK="$PY tests/serve/sse_check.py"
T=$(mktemp -d)
SPID=
cleanup() {
  if [ -n "$SPID" ]; then kill -9 "$SPID" 2>/dev/null; wait "$SPID" 2>/dev/null; fi
  rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
pass=0; fail=0
ok()  { pass=$((pass+1)); echo "ok - $1"; }
bad() { fail=$((fail+1)); echo "not ok - $1${2:+: $2}"; }
# chk DESC CMD...: ok when CMD succeeds (its stderr is the reason otherwise)
chk() {
  local desc=$1; shift
  if "$@" 2>"$T/chk.err" >/dev/null; then ok "$desc"; else bad "$desc" "$(head -c 400 "$T/chk.err")"; fi
}
# start_server NAME ARGS...: sets SPID and BASE; the server's stderr is $T/NAME.log
start_server() {
  local name=$1; shift
  : >"$T/$name.out"
  "$CGPT" serve --port 0 "$@" >"$T/$name.out" 2>"$T/$name.log" &
  SPID=$!
  local i
  for i in $(seq 600); do
    BASE=$(sed -n 's#^cgpt serve: listening on \(http://[^ ]*\)$#\1#p' "$T/$name.out" | head -n1)
    [ -n "$BASE" ] && return 0
    kill -0 "$SPID" 2>/dev/null || break
    sleep 0.1
  done
  echo "not ok - server $name did not start: $(tail -c 1000 "$T/$name.log")"
  exit 1
}
stop_server() { # -> exit status of the server
  kill -TERM "$SPID" 2>/dev/null
  local i
  for i in $(seq 100); do kill -0 "$SPID" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$SPID" 2>/dev/null
  wait "$SPID"; local rc=$?
  SPID=
  return $rc
}
# req NAME METHOD PATH [CURL ARGS...]: body $T/NAME.b, headers $T/NAME.h
# (lower-cased names, no CR), status in $T/NAME.s and echoed
req() {
  local name=$1 method=$2 path=$3; shift 3
  curl -sS -m 60 -X "$method" -o "$T/$name.b" -D "$T/$name.raw" -w '%{http_code}' "$@" "$BASE$path" >"$T/$name.s" 2>"$T/$name.cerr"
  tr -d '\r' <"$T/$name.raw" | awk -F': ' 'NF>1{printf "%s: %s\n", tolower($1), substr($0, length($1)+3); next} {print}' >"$T/$name.h"
  cat "$T/$name.s"
}
hdr() { sed -n "s/^$2: //p" "$T/$1.h" | tail -n1; } # hdr NAME header-name
auth() { echo "Authorization: Bearer $KEY"; }
json_h='Content-Type: application/json'

DATA=$T/data
KEY=$("$CGPT" key add alice --data-dir "$DATA" 2>/dev/null | grep -o 'sk-cgpt-[A-Za-z0-9_-]*' | head -n1)
[ -n "$KEY" ] || { echo "not ok - cgpt key add printed no key"; exit 1; }
start_server main --data-dir "$DATA" --parallel 1 --queue 1 --max-body 1000 --cors-origin http://a.example
echo "# server at $BASE"

# ---------------------------------------------------------------- streaming
CHAT='{"model":"cgpt-mini","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Tell me about Debian."}],"temperature":0,"max_tokens":40'
s=$(req plain POST /v1/chat/completions -H "$(auth)" -H "$json_h" -d "$CHAT}")
[ "$s" = 200 ] && ok "non-streaming chat 200" || bad "non-streaming chat" "status $s $(head -c 300 "$T/plain.b")"
case "$(hdr plain content-type)" in application/json*) ok "non-streaming Content-Type application/json" ;; *) bad "non-streaming Content-Type" "$(hdr plain content-type)" ;; esac
PLAIN=$($CHK get "$T/plain.b" 'j["choices"][0]["message"]["content"]' 2>/dev/null)
PFIN=$($CHK get "$T/plain.b" 'j["choices"][0]["finish_reason"]' 2>/dev/null)
PUSAGE=$($CHK get "$T/plain.b" '[j["usage"]["prompt_tokens"], j["usage"]["completion_tokens"]]' 2>/dev/null)

s=$(req st POST /v1/chat/completions -H "$(auth)" -H "$json_h" -d "$CHAT"',"stream":true,"stream_options":{"include_usage":true}}')
[ "$s" = 200 ] && ok "streaming chat 200" || bad "streaming chat" "status $s"
case "$(hdr st content-type)" in text/event-stream*) ok "stream Content-Type text/event-stream" ;; *) bad "stream Content-Type" "$(hdr st content-type)" ;; esac
case "$(hdr st cache-control)" in *no-cache*) ok "stream Cache-Control no-cache" ;; *) bad "stream Cache-Control" "$(hdr st cache-control)" ;; esac
if $CHK sse "$T/st.b" chat.completion.chunk >"$T/st.j" 2>"$T/st.err"; then
  ok "stream framing: data events, [DONE] last, UTF-8 whole, JSON chunks"
  chk "stream: one id and one created for all chunks" $PY -c 'import json,sys; j=json.load(open(sys.argv[1])); sys.exit(0 if len(j["ids"])==1 and len(j["created"])==1 and j["ids"][0].startswith("chatcmpl-") else 1)' "$T/st.j"
  chk "stream: role on the first chunk only, one finish_reason" $PY -c 'import json,sys; j=json.load(open(sys.argv[1])); sys.exit(0 if j["roles"]=={"0":1} and len(j["finish"]["0"])==1 else 1)' "$T/st.j"
  chk "stream: concatenated content equals the non-streaming content" $PY -c 'import json,sys; j=json.load(open(sys.argv[1])); sys.exit(0 if j["text"]["0"]==sys.argv[2] and j["finish"]["0"]==[sys.argv[3]] else 1)' "$T/st.j" "$PLAIN" "$PFIN"
  chk "stream: one usage chunk (choices []), equal to the non-streaming usage; other chunks usage null" $PY -c 'import json,sys; j=json.load(open(sys.argv[1])); u=j["usage"]; sys.exit(0 if j["usage_chunks"]==1 and [u["prompt_tokens"],u["completion_tokens"]]==json.loads(sys.argv[2]) and u["total_tokens"]==u["prompt_tokens"]+u["completion_tokens"] else 1)' "$T/st.j" "$PUSAGE"
  chk "stream: usage chunk is the last before [DONE]" $PY -c '
import json,sys; raw=open(sys.argv[1],"rb").read().split(b"\n\n"); ev=[e for e in raw if e.startswith(b"data: ")]
sys.exit(0 if ev[-1]==b"data: [DONE]" and json.loads(ev[-2][6:])["choices"]==[] else 1)' "$T/st.b"
else
  bad "stream framing" "$(cat "$T/st.err")"
fi
# without include_usage: no usage anywhere
s=$(req st2 POST /v1/chat/completions -H "$(auth)" -H "$json_h" -d "$CHAT"',"stream":true}')
chk "stream without include_usage: framed, no usage chunk" $PY -c '
import json,subprocess,sys
o=subprocess.run([sys.executable,"tests/serve/sse_check.py","sse",sys.argv[1],"chat.completion.chunk"],capture_output=True,text=True)
if o.returncode: sys.exit(o.stderr)
j=json.loads(o.stdout); sys.exit(0 if j["usage_chunks"]==0 and j["text"]["0"]==sys.argv[2] else "usage chunks %d" % j["usage_chunks"])' "$T/st2.b" "$PLAIN"
# n=2 stream: both indices framed and complete
s=$(req stn POST /v1/chat/completions -H "$(auth)" -H "$json_h" -d "$CHAT"',"n":2,"stream":true}')
chk "n=2 stream: two indices, each with role, the greedy text and one finish" $PY -c '
import json,subprocess,sys
o=subprocess.run([sys.executable,"tests/serve/sse_check.py","sse",sys.argv[1],"chat.completion.chunk"],capture_output=True,text=True)
if o.returncode: sys.exit(o.stderr)
j=json.loads(o.stdout)
sys.exit(0 if j["roles"]=={"0":1,"1":1} and j["text"]=={"0":sys.argv[2],"1":sys.argv[2]} and all(len(j["finish"][i])==1 for i in "01") else o.stdout[:400])' "$T/stn.b" "$PLAIN"

# UTF-8: the greedy continuation of this prompt is CJK text whose characters
# the byte-level vocabulary splits over several tokens.
CJK='日本語 日本語 日本語 日本語 日本語 日本語'
COMP='{"model":"cgpt-mini","prompt":"'"$CJK"'","max_tokens":24,"temperature":0'
s=$(req cj POST /v1/completions -H "$(auth)" -H "$json_h" -d "$COMP}")
CJTEXT=$($CHK get "$T/cj.b" 'j["choices"][0]["text"]' 2>/dev/null)
"$CGPT" tokenize -m models/cgpt-mini.gguf -p "$CJTEXT" --pieces >"$T/cj.pieces" 2>/dev/null
# (a character cut by max_tokens ends the text as U+FFFD: allowed only last;
# --pieces prints each token's raw bytes: some must not be UTF-8 alone)
if $PY -c '
import sys
t = sys.argv[1]
def bad(b):
    try:
        b.decode("utf-8"); return False
    except UnicodeDecodeError:
        return True
split = any(bad(l.split(b"\t", 1)[-1]) for l in open(sys.argv[2], "rb").read().split(b"\n") if l)
sys.exit(0 if any(ord(c) > 0x7ff for c in t) and "\ufffd" not in t[:-1] and split else 1)' "$CJTEXT" "$T/cj.pieces"; then
  ok "precondition: the completion has multi-byte characters split over tokens"
else
  bad "precondition: the completion has multi-byte characters split over tokens" "text $CJTEXT"
fi
s=$(req cjs POST /v1/completions -H "$(auth)" -H "$json_h" -d "$COMP"',"stream":true}')
case "$(hdr cjs content-type)" in text/event-stream*) ok "completions stream Content-Type" ;; *) bad "completions stream Content-Type" "$(hdr cjs content-type)" ;; esac
chk "completions stream: no event splits a UTF-8 character; text equals non-streaming" $PY -c '
import json,subprocess,sys
o=subprocess.run([sys.executable,"tests/serve/sse_check.py","sse",sys.argv[1],"text_completion"],capture_output=True,text=True)
if o.returncode: sys.exit(o.stderr)
j=json.loads(o.stdout); sys.exit(0 if j["text"]["0"]==sys.argv[2] and len(j["ids"])==1 else "stream %r vs %r" % (j["text"].get("0"), sys.argv[2]))' "$T/cjs.b" "$CJTEXT"
# the same through chat with logprobs (the chunks then carry bytes too)
CJCHAT='{"model":"cgpt-mini","messages":[{"role":"user","content":"'"$CJK"'"}],"max_tokens":24,"temperature":0,"logprobs":true,"top_logprobs":2,"stream":true}'
s=$(req cjc POST /v1/chat/completions -H "$(auth)" -H "$json_h" -d "$CJCHAT")
chk "chat stream with logprobs: framing and UTF-8 per event" $CHK sse "$T/cjc.b" chat.completion.chunk

# ---------------------------------------------------------------- errors
s=$(req noauth POST /v1/chat/completions -H "$json_h" -d "$CHAT}")
[ "$s" = 401 ] && ok "no key: 401" || bad "no key: 401" "got $s"
chk "no key: envelope code invalid_api_key" $CHK envelope "$T/noauth.b" - invalid_api_key
s=$(req wrongkey POST /v1/chat/completions -H "Authorization: Bearer sk-cgpt-nope" -H "$json_h" -d "$CHAT}")
[ "$s" = 401 ] && ok "wrong key: 401" || bad "wrong key: 401" "got $s"
chk "wrong key: envelope code invalid_api_key" $CHK envelope "$T/wrongkey.b" - invalid_api_key
s=$(req nomodels GET /v1/models)
[ "$s" = 401 ] && ok "GET /v1/models without key: 401" || bad "GET /v1/models without key: 401" "got $s"
s=$(req notok POST /tokenize -H "$json_h" -d '{"content":"hi"}')
[ "$s" = 401 ] && ok "/tokenize without key: 401" || bad "/tokenize without key: 401" "got $s"
s=$(req xkey POST /v1/chat/completions -H "x-api-key: $KEY" -H "$json_h" -d "$CHAT}")
[ "$s" = 200 ] && ok "x-api-key header accepted" || bad "x-api-key header accepted" "got $s"
s=$(req route GET /v1/nope -H "$(auth)")
[ "$s" = 404 ] && ok "unknown route: 404" || bad "unknown route: 404" "got $s"
chk "unknown route: OpenAI envelope" $CHK envelope "$T/route.b"
s=$(req route2 GET /nope)
[ "$s" = 404 ] && ok "unknown route outside /v1: 404" || bad "unknown route outside /v1: 404" "got $s"
s=$(req method GET /v1/chat/completions -H "$(auth)")
[ "$s" = 405 ] && ok "GET /v1/chat/completions: 405" || bad "GET /v1/chat/completions: 405" "got $s"
chk "405: OpenAI envelope" $CHK envelope "$T/method.b"
s=$(req badjson POST /v1/chat/completions -H "$(auth)" -H "$json_h" -d '{"model":"cgpt-mini","messages":[')
[ "$s" = 400 ] && ok "truncated JSON: 400" || bad "truncated JSON: 400" "got $s"
chk "truncated JSON: invalid_request_error envelope" $CHK envelope "$T/badjson.b" invalid_request_error
s=$(req badstream POST /v1/chat/completions -H "$(auth)" -H "$json_h" -d "$CHAT"',"stream":true,"temperature":"hot"}')
[ "$s" = 400 ] && ok "stream with a bad param: 400 before any event" || bad "stream with a bad param: 400" "got $s"
chk "stream with a bad param: envelope param temperature" $CHK envelope "$T/badstream.b" invalid_request_error - temperature
case "$(hdr badstream content-type)" in application/json*) ok "error before the stream is JSON, not SSE" ;; *) bad "error before the stream is JSON" "$(hdr badstream content-type)" ;; esac

# 413 over --max-body 1000
big=$($PY -c 'import json; print(json.dumps({"model":"cgpt-mini","messages":[{"role":"user","content":"x"*1500}]}))')
s=$(req big POST /v1/chat/completions -H "$(auth)" -H "$json_h" -d "$big")
[ "$s" = 413 ] && ok "body over --max-body: 413" || bad "body over --max-body: 413" "got $s"
chk "413: envelope code request_too_large" $CHK envelope "$T/big.b" - request_too_large
printf '%s' "$big" >"$T/big.json"
s=$(req bigc POST /v1/chat/completions -H "$(auth)" -H "$json_h" -H 'Transfer-Encoding: chunked' --data-binary @"$T/big.json")
[ "$s" = 413 ] && ok "chunked body over --max-body: 413" || bad "chunked body over --max-body: 413" "got $s"
small=$($PY -c 'import json; print(json.dumps({"model":"cgpt-mini","max_tokens":2,"messages":[{"role":"user","content":"Debian packages "*56}]}))')
[ ${#small} -gt 900 ] && [ ${#small} -le 1000 ] || echo "# (the under-limit body is ${#small} bytes)"
s=$(req small POST /v1/chat/completions -H "$(auth)" -H "$json_h" -d "$small")
[ "$s" = 200 ] && ok "body just under --max-body: 200" || bad "body just under --max-body: 200" "got $s $(head -c 300 "$T/small.b")"

# ---------------------------------------------------------------- CORS
s=$(req pre OPTIONS /v1/chat/completions -H 'Origin: http://a.example' -H 'Access-Control-Request-Method: POST' \
  -H 'Access-Control-Request-Headers: authorization, content-type')
case "$s" in 200|204) ok "preflight from an allowed origin: $s" ;; *) bad "preflight from an allowed origin" "got $s" ;; esac
[ "$(hdr pre access-control-allow-origin)" = http://a.example ] && ok "preflight: Access-Control-Allow-Origin is the origin" \
  || bad "preflight: Access-Control-Allow-Origin" "$(hdr pre access-control-allow-origin)"
hdr pre access-control-allow-methods | grep -qi post && ok "preflight: Allow-Methods has POST" || bad "preflight: Allow-Methods" "$(hdr pre access-control-allow-methods)"
{ hdr pre access-control-allow-headers | grep -qi authorization && hdr pre access-control-allow-headers | grep -qi content-type; } \
  && ok "preflight: Allow-Headers has authorization and content-type" || bad "preflight: Allow-Headers" "$(hdr pre access-control-allow-headers)"
s=$(req pre2 OPTIONS /v1/chat/completions -H 'Origin: http://b.example' -H 'Access-Control-Request-Method: POST' \
  -H 'Access-Control-Request-Headers: authorization')
grep -qi '^access-control-' "$T/pre2.h" && bad "preflight from a disallowed origin gets no CORS headers" "$(grep -i '^access-control' "$T/pre2.h")" \
  || ok "preflight from a disallowed origin gets no CORS headers (status $s)"
req corsget GET /v1/models -H "$(auth)" -H 'Origin: http://a.example' >/dev/null
[ "$(hdr corsget access-control-allow-origin)" = http://a.example ] && ok "response to an allowed origin has Access-Control-Allow-Origin" \
  || bad "response to an allowed origin has Access-Control-Allow-Origin" "$(hdr corsget access-control-allow-origin)"
req corsget2 GET /v1/models -H "$(auth)" -H 'Origin: http://b.example' >/dev/null
grep -qi '^access-control-' "$T/corsget2.h" && bad "response to a disallowed origin has no CORS headers" "$(grep -i '^access-control' "$T/corsget2.h")" \
  || ok "response to a disallowed origin has no CORS headers"
req corsst POST /v1/chat/completions -H "$(auth)" -H "$json_h" -H 'Origin: http://a.example' -d "$CHAT"',"stream":true}' >/dev/null
[ "$(hdr corsst access-control-allow-origin)" = http://a.example ] && ok "stream to an allowed origin has Access-Control-Allow-Origin" \
  || bad "stream to an allowed origin has Access-Control-Allow-Origin" "$(hdr corsst access-control-allow-origin)"
req cors401 POST /v1/chat/completions -H "$json_h" -H 'Origin: http://a.example' -d "$CHAT}" >/dev/null
[ "$(hdr cors401 access-control-allow-origin)" = http://a.example ] && ok "401 to an allowed origin has Access-Control-Allow-Origin (browsers can read the error)" \
  || bad "401 to an allowed origin has Access-Control-Allow-Origin" "$(hdr cors401 access-control-allow-origin)"

# ---------------------------------------------------------------- health, metrics
s=$(req health GET /health)
[ "$s" = 200 ] && ok "/health 200 without a key" || bad "/health 200" "got $s"
chk '/health body {"status":"ok", "models_loaded": N, "models_loading": N}' $PY -c 'import json,sys; j=json.load(open(sys.argv[1])); sys.exit(0 if j.get("status")=="ok" and set(j)=={"status","models_loaded","models_loading"} and all(isinstance(j[k],int) for k in ("models_loaded","models_loading")) else 1)' "$T/health.b"

# ---------------------------------------------------------------- 503 when the queue is full
# --parallel 1 --queue 1: of many long requests at once, at most two are
# admitted; the rest get 503 server_overloaded with Retry-After.
LONG='{"model":"cgpt-mini","prompt":"Debian","max_tokens":220,"temperature":0,"logit_bias":{"8188":-100,"8190":-100}}'
pids=()
for i in $(seq 12); do
  curl -sS -m 60 -o "$T/q$i.b" -D "$T/q$i.h" -w '%{http_code}' -H "$(auth)" -H "$json_h" -d "$LONG" "$BASE/v1/completions" >"$T/q$i.s" 2>/dev/null &
  pids+=($!)
done
wait "${pids[@]}"
n200=0; n503=0; nother=0; ra_ok=1; env_ok=1
for i in $(seq 12); do
  case "$(cat "$T/q$i.s")" in
    200) n200=$((n200+1)) ;;
    503) n503=$((n503+1))
         tr -d '\r' <"$T/q$i.h" | grep -qiE '^retry-after: [0-9]+$' || ra_ok=0
         $CHK envelope "$T/q$i.b" - server_overloaded 2>/dev/null || env_ok=0 ;;
    *) nother=$((nother+1)) ;;
  esac
done
[ $n200 -ge 1 ] && [ $n200 -le 2 ] && [ $n503 -ge 1 ] && [ $nother -eq 0 ] \
  && ok "queue full: $n200 served, $n503 refused with 503" || bad "queue full: want 1-2 x 200 and the rest 503" "200: $n200, 503: $n503, other: $nother"
[ $n503 -ge 1 ] && [ $ra_ok = 1 ] && ok "503 has Retry-After (seconds)" || bad "503 has Retry-After" "$(cat "$T"/q*.h | grep -i retry | head -3)"
[ $n503 -ge 1 ] && [ $env_ok = 1 ] && ok "503 envelope code server_overloaded" || bad "503 envelope code server_overloaded" "$(head -c 300 "$T/q12.b")"
for i in $(seq 12); do [ "$(cat "$T/q$i.s")" = 200 ] && { cp "$T/q$i.b" "$T/qok.b"; break; }; done
chk "a served long request ran to max_tokens (EOS banned by logit_bias)" $PY -c 'import json,sys; j=json.load(open(sys.argv[1])); sys.exit(0 if j["usage"]["completion_tokens"]==220 and j["choices"][0]["finish_reason"]=="length" else 1)' "$T/qok.b"
s=$(req after503 POST /v1/chat/completions -H "$(auth)" -H "$json_h" -d "$CHAT}")
[ "$s" = 200 ] && ok "after the burst the server serves again" || bad "after the burst the server serves again" "got $s"

# ---------------------------------------------------------------- a client that vanishes mid-stream
$PY - "$BASE" "$KEY" <<'EOF' 2>"$T/vanish.err" && ok "client that vanished mid-stream got a 200 stream first" || bad "vanishing client" "$(cat "$T/vanish.err")"
import json, socket, sys, urllib.parse
u = urllib.parse.urlparse(sys.argv[1])
body = json.dumps({"model": "cgpt-mini", "prompt": "Debian", "max_tokens": 220, "stream": True,
                   "logit_bias": {"8188": -100, "8190": -100}}).encode()
s = socket.create_connection((u.hostname, u.port), timeout=30)
s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + sys.argv[2].encode() +
          b"\r\nContent-Type: application/json\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
got = s.recv(4096)
s.close()
sys.exit(0 if got.startswith(b"HTTP/1.1 200") else "got %r" % got[:200])
EOF
req metrics GET /metrics >/dev/null
s=$(cat "$T/metrics.s")
[ "$s" = 200 ] && ok "/metrics 200 without a key" || bad "/metrics 200" "got $s"
case "$(hdr metrics content-type)" in text/plain*) ok "/metrics Content-Type text/plain" ;; *) bad "/metrics Content-Type" "$(hdr metrics content-type)" ;; esac
missing=
for m in cgpt_requests_running cgpt_kv_blocks_used cgpt_kv_blocks_free cgpt_kv_blocks_cached cgpt_prefix_cache_hits_total \
         cgpt_generated_tokens_total cgpt_prompt_tokens_total cgpt_time_to_first_token_seconds_bucket \
         cgpt_time_to_first_token_seconds_sum cgpt_time_to_first_token_seconds_count cgpt_http_requests_total cgpt_connections_open; do
  $CHK metric "$T/metrics.b" "$m" >/dev/null 2>&1 || missing="$missing $m"
done
[ -z "$missing" ] && ok "/metrics has the documented names" || bad "/metrics has the documented names" "missing:$missing"
grep -q '^# TYPE cgpt_time_to_first_token_seconds histogram' "$T/metrics.b" && ok "/metrics: time to first token is a histogram" \
  || bad "/metrics: time to first token is a histogram"
n=$($CHK metric "$T/metrics.b" cgpt_http_requests_total route=/v1/chat/completions code=200 2>/dev/null || echo 0)
[ "${n:-0}" -ge 5 ] 2>/dev/null && ok "/metrics counts chat 200s ($n)" || bad "/metrics counts chat 200s" "got $n"
n=$($CHK metric "$T/metrics.b" cgpt_http_requests_total code=503 2>/dev/null || echo 0)
[ "${n:-0}" -ge 1 ] 2>/dev/null && ok "/metrics counts the 503s ($n)" || bad "/metrics counts the 503s" "got $n"
n=$($CHK metric "$T/metrics.b" cgpt_generated_tokens_total 2>/dev/null || echo 0)
[ "${n%.*}" -ge 220 ] 2>/dev/null && ok "/metrics generated tokens counted ($n)" || bad "/metrics generated tokens counted" "got $n"
# idle: nothing running, no KV block held beyond what the prefix cache keeps
idle=0
for i in $(seq 100); do
  req metrics GET /metrics >/dev/null
  r=$($CHK metric "$T/metrics.b" cgpt_requests_running 2>/dev/null)
  u=$($CHK metric "$T/metrics.b" cgpt_kv_blocks_used 2>/dev/null)
  c=$($CHK metric "$T/metrics.b" cgpt_kv_blocks_cached 2>/dev/null)
  if [ "$r" = 0 ] && [ -n "$u" ] && [ "$u" = "$c" ]; then idle=1; break; fi
  sleep 0.1
done
[ $idle = 1 ] && ok "idle after a vanished client: kv_blocks_used == kv_blocks_cached ($u)" \
  || bad "idle after a vanished client: kv_blocks_used == kv_blocks_cached" "running $r used $u cached $c"

# ---------------------------------------------------------------- x-request-id
missing=
for n in plain st noauth route method badjson big pre pre2 health metrics after503; do
  [ -n "$(hdr $n x-request-id)" ] || missing="$missing $n"
done
for i in $(seq 12); do [ "$(cat "$T/q$i.s")" = 503 ] && { tr -d '\r' <"$T/q$i.h" | grep -qi '^x-request-id: .' || missing="$missing 503"; break; }; done
[ -z "$missing" ] && ok "x-request-id on every response (200, SSE, 401, 404, 405, 400, 413, 503, OPTIONS, /health, /metrics)" \
  || bad "x-request-id on every response" "missing on:$missing"
[ "$(hdr plain x-request-id)" != "$(hdr xkey x-request-id)" ] && ok "x-request-id differs between requests" \
  || bad "x-request-id differs between requests" "$(hdr plain x-request-id)"

# ---------------------------------------------------------------- stop during a stream
# SIGTERM while a stream is running: the server exits 0 promptly and the
# stream ends properly, with [DONE] or an error event, never just cut off.
$PY tests/serve/sse_client.py "$BASE" "$KEY" "$T/term.b" >"$T/term.out" 2>&1 &
tpid=$!
for i in $(seq 300); do grep -q started "$T/term.out" && break; sleep 0.05; done
grep -q 'started 200' "$T/term.out" && ok "a long stream is running" || bad "a long stream is running" "$(cat "$T/term.out")"
kill -TERM "$SPID"
for i in $(seq 150); do kill -0 "$SPID" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$SPID" 2>/dev/null; then
  bad "SIGTERM during a stream: the server exits within 15 s" "still running"
  stop_server; rc=$?
else
  wait "$SPID"; rc=$?; SPID=
  ok "SIGTERM during a stream: the server exits within 15 s"
  [ $rc = 0 ] && ok "SIGTERM: exit 0" || bad "SIGTERM: exit 0" "exit $rc; $(tail -c 300 "$T/main.log")"
fi
wait "$tpid"
chk "the stream cut by the shutdown still ends with [DONE] or an error event" $CHK sse "$T/term.b" text_completion

# non-loopback without keys: refuses to start
# Bad command lines: exit 1, one "cgpt serve: ..." line naming the problem.
printf 'not a gguf' >"$T/bad.gguf"
while IFS='|' read -r want args; do
  # shellcheck disable=SC2086
  timeout 30 "$CGPT" serve --port 0 --data-dir "$T/argdata" $args >/dev/null 2>"$T/arg.err"; rc=$?
  if [ $rc = 1 ] && [ "$(wc -l <"$T/arg.err")" = 1 ] && grep -q "^cgpt serve: .*$want" "$T/arg.err"; then
    ok "serve $args: exit 1 naming '$want'"
  else
    bad "serve $args: exit 1 naming '$want'" "exit $rc: $(head -c 300 "$T/arg.err")"
  fi
done <<ARGS
99999|--port 99999
unknown option|--bogus 1
needs a value|--parallel
--host|--host not-an-address
$T/nonexistent.gguf|-m $T/nonexistent.gguf
$T/bad.gguf|-m $T/bad.gguf
--alias|--alias x
ARGS
timeout 30 "$CGPT" serve --host 0.0.0.0 --port 0 --data-dir "$T/empty" >"$T/nl.out" 2>"$T/nl.err"; rc=$?
[ $rc = 1 ] && ok "--host 0.0.0.0 with no keys: exit 1" || bad "--host 0.0.0.0 with no keys: exit 1" "exit $rc"
[ "$(wc -l <"$T/nl.err")" = 1 ] && grep -q '^cgpt' "$T/nl.err" && ok "--host 0.0.0.0 with no keys: one 'cgpt ...' line on stderr" \
  || bad "--host 0.0.0.0 with no keys: one stderr line" "$(head -c 300 "$T/nl.err")"
grep -q listening "$T/nl.out" && bad "--host 0.0.0.0 with no keys printed a ready line" || ok "--host 0.0.0.0 with no keys: no ready line"
# with a revoked key only, still no active key: refuses too
"$CGPT" key add gone --data-dir "$T/revoked" >/dev/null 2>&1 && "$CGPT" key revoke gone --data-dir "$T/revoked" >/dev/null 2>&1
timeout 30 "$CGPT" serve --host 0.0.0.0 --port 0 --data-dir "$T/revoked" >/dev/null 2>"$T/nl2.err"; rc=$?
[ $rc = 1 ] && ok "--host 0.0.0.0 with only a revoked key: exit 1" || bad "--host 0.0.0.0 with only a revoked key: exit 1" "exit $rc"
# with a key it starts
start_server public --host 0.0.0.0 --data-dir "$DATA"
BASE=http://127.0.0.1:${BASE##*:}
s=$(req pub GET /v1/models -H "$(auth)")
[ "$s" = 200 ] && ok "--host 0.0.0.0 with a key: serves" || bad "--host 0.0.0.0 with a key: serves" "got $s"
stop_server; rc=$?
[ $rc = 0 ] && ok "SIGTERM (second server): exit 0" || bad "SIGTERM (second server): exit 0" "exit $rc"

echo "test_sse: $pass passed, $fail failed"
[ $fail -eq 0 ]
