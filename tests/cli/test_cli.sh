#!/usr/bin/env bash
# End-to-end checks of the cgpt binary: bad input of every kind exits 1 with
# exactly one line on stderr (never a crash), good models load, run and
# quantize, and quantize picks the tensor types llama.cpp's rules give.
# Usage: tests/cli/test_cli.sh [CGPT_BINARY]   (default build/cgpt)
set -u
cd "$(dirname "$0")/../.."
CGPT=${1:-build/cgpt}
GEN=build/tools/genmodel
BREAK=build/tools/breakmodel
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
pass=0; fail=0
. tests/cli/lib.sh

# expect_ok DESC CMD...
expect_ok() {
  local desc=$1; shift
  if "$@" >"$T/out" 2>"$T/err"; then ok; else bad "$desc: exit $?: $(head -c 300 "$T/err")"; fi
}

expect_error "no arguments" "$CGPT"
expect_error "unknown command" "$CGPT" frobnicate
# Without -m the built-in model is used; a binary with no models/ beside it
# (and none in the current directory) says how to pass one.
cp "$CGPT" "$T/lone-cgpt"
expect_error "info without -m and no built-in model" env -u CGPT_MODEL -C "$T" "$T/lone-cgpt" info
expect_error "run without -m and no built-in model" env -u CGPT_MODEL -C "$T" "$T/lone-cgpt" run -p hi
expect_ok "CGPT_MODEL names the default model" \
  env -C "$T" CGPT_MODEL="$(cd "$(dirname "$0")/../.." && pwd)/models/cgpt-mini.gguf" "$T/lone-cgpt" info
expect_error "info of a missing file" "$CGPT" info -m "$T/nope.gguf"
expect_error "info of a directory" "$CGPT" info -m "$T"
: >"$T/empty.gguf"
expect_error "empty file" "$CGPT" info -m "$T/empty.gguf"

M=$T/llama.gguf
$GEN --arch llama --vocab 301 --embd 256 --layers 8 --heads 8 --kv-heads 2 --head-dim 32 \
  --ff 512 --ctx 128 --seed 3 -o "$M" || { echo "genmodel failed"; exit 1; }
expect_ok "info" "$CGPT" info -m "$M"
grep -q '^architecture: llama' "$T/out" && ok || bad "info does not name the architecture"
grep -q 'n_kv_heads   2' "$T/out" && ok || bad "info does not show n_kv_heads"
expect_ok "run greedy" "$CGPT" run -m "$M" --tokens "1 2 3" -n 5 --temp 0 --ids
[ "$(tail -n1 "$T/out" | wc -w)" -eq 5 ] && ok || bad "run printed $(tail -n1 "$T/out") (want 5 ids)"
expect_ok "run sampled" "$CGPT" run -m "$M" --tokens "1 2 3" -n 5 --temp 1 --seed 7 --ids
a=$(tail -n1 "$T/out"); "$CGPT" run -m "$M" --tokens "1 2 3" -n 5 --temp 1 --seed 7 --ids >"$T/out2"
[ "$a" = "$(tail -n1 "$T/out2")" ] && ok || bad "same seed gave different tokens"
expect_error "token out of range" "$CGPT" run -m "$M" --tokens "1 301" -n 2 --temp 0 --ids
expect_error "token not a number" "$CGPT" run -m "$M" --tokens "1 x" -n 2 --ids
expect_error "empty prompt" "$CGPT" run -m "$M" --tokens " " -n 2 --ids
expect_error "bad -n" "$CGPT" run -m "$M" --tokens "1" -n -3 --ids
expect_error "bad --temp" "$CGPT" run -m "$M" --tokens "1" --temp nan --ids
expect_error "context too small" "$CGPT" run -m "$M" --tokens "1 2 3" -n 8 -c 4 --ids
expect_error "--tokens without --ids" "$CGPT" run -m "$M" --tokens "1 2"
expect_error "prompt given twice" "$CGPT" run -m "$M" -p hi --tokens "1 2" --ids
expect_error "too many --stop" "$CGPT" run -m "$M" -p hi $(for i in $(seq 17); do printf -- '--stop s%d ' $i; done)
expect_ok "text prompt" "$CGPT" run -m "$M" -p hello -n 4 --temp 0
head -c 5 "$T/out" | grep -q '^hello' && ok || bad "run -p does not echo the prompt first: $(head -c 50 "$T/out")"

# Byte-level damage: magic, version, truncation at every tensor boundary and at random points.
cp "$M" "$T/magic.gguf"; printf 'GGUX' | dd of="$T/magic.gguf" conv=notrunc status=none
expect_error "bad magic" "$CGPT" info -m "$T/magic.gguf"
for v in 0 1 4; do
  cp "$M" "$T/v$v.gguf"; printf "\\x0$v\\x00\\x00\\x00" | dd of="$T/v$v.gguf" bs=1 seek=4 conv=notrunc status=none
  expect_error "version $v" "$CGPT" info -m "$T/v$v.gguf"
done
size=$(stat -c %s "$M")
cuts=$($BREAK "$M" --offsets | awk '{ if ($1=="header_end") print $2; else { print $3; if ($4 > 0) print $4 - 1 } }' | sort -un)
RANDOM=1
for i in $(seq 1 40); do cuts="$cuts $(( (RANDOM * 32768 + RANDOM) % size ))"; done
n_cut=0
for c in $cuts; do
  [ "$c" -ge "$size" ] && continue
  head -c "$c" "$M" >"$T/cut.gguf"
  expect_error "truncated at $c of $size" "$CGPT" info -m "$T/cut.gguf"
  n_cut=$((n_cut+1))
done
echo "truncation points checked: $n_cut"

# Model-level damage, made with breakmodel from the valid model.
brk() { local out=$T/$1.gguf; shift; $BREAK "$M" "$out" "$@" || bad "breakmodel $*"; echo "$out"; }
expect_error "head_count 0" "$CGPT" info -m "$(brk hc0 --set-u32 llama.attention.head_count 0)"
expect_error "head_count_kv 3 with 8 heads" "$CGPT" info -m "$(brk hkv --set-u32 llama.attention.head_count_kv 3)"
expect_error "missing tensor" "$CGPT" info -m "$(brk miss --drop-tensor blk.3.attn_q.weight)"
expect_error "missing output_norm" "$CGPT" run -m "$(brk miss2 --drop-tensor output_norm.weight)" --tokens 1 --ids
expect_error "wrong shape" "$CGPT" info -m "$(brk shape --reshape-tensor blk.0.ffn_up.weight 256 100)"
expect_error "unsupported type" "$CGPT" info -m "$(brk iq2xxs --retype-tensor blk.0.ffn_up.weight IQ2_XXS)"
grep -q "IQ2_XXS" "$T/err" && grep -q "blk.0.ffn_up.weight" "$T/err" && ok || bad "unsupported type error does not name the type and the tensor: $(cat "$T/err")"
expect_error "unknown architecture" "$CGPT" info -m "$(brk arch --set-str general.architecture frobnet)"
expect_error "vocab disagrees with tokens" "$CGPT" info -m "$(brk vocab --vocab-trim 300)"
expect_error "layer count huge" "$CGPT" info -m "$(brk layers --set-u32 llama.block_count 100000)"
expect_error "embedding length wrong type" "$CGPT" info -m "$(brk embd --set-str llama.embedding_length big)"
expect_error "architecture wrong type" "$CGPT" info -m "$(brk archty --set-u32 general.architecture 5)"

# quantize: every scheme loads and runs; the mix follows llama.cpp's rules.
expect_error "quantize unknown type" "$CGPT" quantize "$M" "$T/q.gguf" Q3_XL
expect_error "quantize same file" "$CGPT" quantize "$M" "$M" Q8_0
expect_error "quantize missing input" "$CGPT" quantize "$T/nope.gguf" "$T/q.gguf" Q8_0
for q in F16 Q8_0 Q4_0 Q5_0 Q4_K Q6_K Q4_K_M Q5_K_M Q2_K Q3_K_S Q3_K_M Q3_K_L IQ4_NL IQ4_XS; do
  expect_ok "quantize $q" "$CGPT" quantize "$M" "$T/$q.gguf" $q
  expect_ok "run $q" "$CGPT" run -m "$T/$q.gguf" --tokens "5 6 7" -n 3 --temp 0 --ids
done
# Q4_K_M over 8 layers: "more bits" layers are i < 1, i >= 7, (i - 1) % 3 == 2 -> 0, 3, 6, 7.
"$CGPT" info -m "$T/Q4_K_M.gguf" --tensors >"$T/info"
want_type() { # tensor type
  local got; got=$(awk -v n="$1" '$1==n {print $2}' "$T/info")
  [ "$got" = "$2" ] && ok || bad "Q4_K_M: $1 is '$got', want $2"
}
for i in 0 1 2 3 4 5 6 7; do
  case $i in 0|3|6|7) w=Q6_K ;; *) w=Q4_K ;; esac
  want_type "blk.$i.attn_v.weight" $w
  want_type "blk.$i.ffn_down.weight" $w
  want_type "blk.$i.attn_q.weight" Q4_K
  want_type "blk.$i.attn_norm.weight" F32
done
want_type output.weight Q6_K
want_type token_embd.weight Q4_K
# Rows not divisible by 256 fall back: Q4_K -> Q5_0, Q6_K -> Q8_0 (ffn_down rows are n_ff = 288).
$GEN --arch llama --vocab 301 --embd 256 --layers 8 --heads 8 --kv-heads 2 --head-dim 32 \
  --ff 288 --ctx 128 --tied --seed 4 -o "$T/odd.gguf"
expect_ok "quantize odd shapes" "$CGPT" quantize "$T/odd.gguf" "$T/odd-q.gguf" Q4_K_M
"$CGPT" info -m "$T/odd-q.gguf" --tensors >"$T/info"
want_type blk.0.ffn_down.weight Q8_0
want_type blk.1.ffn_down.weight Q5_0
want_type blk.1.ffn_up.weight Q4_K
want_type token_embd.weight Q6_K  # tied output: the embedding takes the output's type

# The low-bit mixes (llama.cpp's llama_tensor_get_type) on the same 8 layers, n_head / n_head_kv = 4.
want_in() { # scheme tensor type
  local got; got=$(awk -v n="$2" '$1==n {print $2}' "$T/info-$1")
  [ "$got" = "$3" ] && ok || bad "$1: $2 is '$got', want $3"
}
for q in Q2_K Q3_K_S Q3_K_M Q3_K_L IQ4_NL IQ4_XS; do "$CGPT" info -m "$T/$q.gguf" --tensors >"$T/info-$q"; done
for i in 0 1 2 3 4 5 6 7; do
  want_in Q2_K "blk.$i.attn_v.weight" Q4_K      # gqa >= 4
  want_in Q2_K "blk.$i.ffn_down.weight" Q3_K
  want_in Q2_K "blk.$i.attn_output.weight" Q3_K
  want_in Q2_K "blk.$i.attn_q.weight" Q2_K
  want_in Q3_K_S "blk.$i.attn_v.weight" Q3_K
  want_in Q3_K_S "blk.$i.ffn_down.weight" Q3_K
  case $i in 0|1) w=Q5_K ;; *) w=Q4_K ;; esac
  want_in Q3_K_M "blk.$i.attn_v.weight" $w     # the first two
  want_in Q3_K_M "blk.$i.ffn_down.weight" Q4_K  # 8 / 16 = 0 layers in Q5_K
  want_in Q3_K_M "blk.$i.attn_output.weight" Q4_K
  want_in Q3_K_M "blk.$i.ffn_up.weight" Q3_K
  want_in Q3_K_L "blk.$i.attn_v.weight" Q5_K
  want_in Q3_K_L "blk.$i.ffn_down.weight" Q5_K
  want_in Q3_K_L "blk.$i.attn_output.weight" Q5_K
  want_in Q3_K_L "blk.$i.attn_k.weight" Q3_K
  case $i in 0) w=Q5_K ;; *) w= ;; esac        # the first eighth
  for x in IQ4_NL IQ4_XS; do
    want_in $x "blk.$i.attn_v.weight" Q5_K
    want_in $x "blk.$i.ffn_down.weight" ${w:-$x}
    want_in $x "blk.$i.attn_output.weight" $x
  done
done
for q in Q2_K Q3_K_S Q3_K_M Q3_K_L IQ4_NL IQ4_XS; do
  want_in $q output.weight Q6_K
  want_in $q blk.0.attn_norm.weight F32
done
want_in Q2_K token_embd.weight Q2_K
want_in IQ4_XS token_embd.weight IQ4_XS
# n_head / n_head_kv = 1: attn_v stays low (Q2_K: Q3_K; IQ4_XS: IQ4_XS).
$GEN --arch llama --vocab 301 --embd 256 --layers 8 --heads 8 --kv-heads 8 --head-dim 32 \
  --ff 512 --ctx 128 --seed 5 -o "$T/mha.gguf"
for q in Q2_K IQ4_XS; do
  expect_ok "quantize mha $q" "$CGPT" quantize "$T/mha.gguf" "$T/mha-$q.gguf" $q
  "$CGPT" info -m "$T/mha-$q.gguf" --tensors >"$T/info-mha-$q"
done
want_in mha-Q2_K blk.3.attn_v.weight Q3_K
want_in mha-IQ4_XS blk.3.attn_v.weight IQ4_XS
# Rows of 288 (ffn_down): Q2_K/Q3_K -> Q4_0, Q4_K -> Q5_0, Q5_K -> Q5_1, IQ4_XS -> IQ4_NL.
for q in Q2_K Q3_K_M IQ4_XS; do
  expect_ok "quantize odd shapes $q" "$CGPT" quantize "$T/odd.gguf" "$T/odd-$q.gguf" $q
  "$CGPT" info -m "$T/odd-$q.gguf" --tensors >"$T/info-odd-$q"
  expect_ok "run odd $q" "$CGPT" run -m "$T/odd-$q.gguf" --tokens "5 6 7" -n 3 --temp 0 --ids
done
want_in odd-Q2_K blk.2.ffn_down.weight Q4_0
want_in odd-Q2_K blk.2.ffn_up.weight Q2_K
want_in odd-Q3_K_M blk.2.ffn_down.weight Q5_0
want_in odd-IQ4_XS blk.0.ffn_down.weight Q5_1
want_in odd-IQ4_XS blk.2.ffn_down.weight IQ4_NL
want_in odd-IQ4_XS blk.2.ffn_up.weight IQ4_XS
want_in odd-IQ4_XS token_embd.weight Q6_K  # tied output

# Bad input to the text commands: JSON, messages, templates, files, ranges.
printf '{"messages": [' >"$T/bad.json"
echo '[{"content":"hi"}]' >"$T/norole.json"
echo '[{"role":"user","content":7}]' >"$T/badcontent.json"
echo '{"a":1}' >"$T/obj.json"
echo '{% for x in %}' >"$T/bad.jinja"
echo '{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}' >"$T/loop.jinja"
echo 'hi' >"$T/short.txt"
expect_error "template: truncated JSON" "$CGPT" template -m "$M" -f "$T/bad.json"
expect_error "template: message without role" "$CGPT" template -m "$M" -f "$T/norole.json"
expect_error "template: content of the wrong type" "$CGPT" template -m "$M" -f "$T/badcontent.json"
expect_error "template: not a message list" "$CGPT" template -m "$M" -f "$T/obj.json"
expect_error "template: missing file" "$CGPT" template -m "$M" -f "$T/nope.json"
expect_error "template: syntax error in the template" "$CGPT" template -m "$M" -f "$T/norole.json" --chat-template-file "$T/bad.jinja"
grep -q "bad.jinja" "$T/err" && ok || bad "template error does not name the file: $(cat "$T/err")"
echo '[{"role":"user","content":"hi"}]' >"$T/ok.json"
expect_error "template: endless loop is bounded" "$CGPT" template -m "$M" -f "$T/ok.json" --chat-template-file "$T/loop.jinja"
expect_error "tokenize: missing file" "$CGPT" tokenize -m "$M" -f "$T/nope.txt"
expect_error "tokenize: no text" "$CGPT" tokenize -m "$M"
expect_error "perplexity: text shorter than a chunk" "$CGPT" perplexity -m "$M" -f "$T/short.txt" -c 64
expect_error "run --chat: bad template" "$CGPT" run -m "$M" --chat -p hi --chat-template-file "$T/bad.jinja"
expect_error "run: top-p out of range" "$CGPT" run -m "$M" -p hi --top-p 2
expect_error "chat: bad template" "$CGPT" chat -m "$M" --chat-template-file "$T/bad.jinja"
expect_error "serve: bad template" "$CGPT" serve --port 0 -m "$M" --chat-template-file "$T/bad.jinja"
expect_error "serve: missing template" "$CGPT" serve --port 0 -m "$M" --chat-template-file "$T/nope.jinja"

echo "cli: $pass passed, $fail failed"
[ $fail -eq 0 ]
