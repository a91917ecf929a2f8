#!/usr/bin/env bash
# Rebuild the built-in model from nothing but Debian packages:
#   corpus -> tokenizer -> pretrain -> chat-tune (sft) -> models/cgpt-mini.gguf
# Every stage is resumable: run it again after an interruption and it goes on
# from the last checkpoint (training) or skips what is done (corpus, tokenizer).
# Settings (environment): MODEL_DIR (work dir, default build/model),
# CORPUS_DIR, PRETRAIN_STEPS, SFT_STEPS, BATCH, THREADS, MODEL_TYPE (F16 or
# Q8_0), MODEL_OUT (default models/cgpt-mini.gguf), SAMPLING (the recommended
# sampling written into the file as general.sampling.*; models/README.md says
# how the default was chosen).
set -euo pipefail
cd "$(dirname "$0")/.."
W=${MODEL_DIR:-build/model}
CORPUS=${CORPUS_DIR:-build/corpus}
PRETRAIN_STEPS=${PRETRAIN_STEPS:-5000}
SFT_STEPS=${SFT_STEPS:-1200}
BATCH=${BATCH:-16}
THREADS=${THREADS:-0}
TYPE=${MODEL_TYPE:-F16}
OUT=${MODEL_OUT:-models/cgpt-mini.gguf}
SAMPLING=${SAMPLING:-temp=0.3 top_k=20 top_p=0.9 min_p=0.1}
CGPT=build/cgpt
mkdir -p "$W"

[ -f "$CORPUS/MANIFEST.json" ] || /usr/bin/python3 scripts/corpus/build.py --out "$CORPUS"

if [ ! -f "$W/tokenizer.gguf" ]; then
  $CGPT train tokenizer -i "$CORPUS/pretrain.jsonl" -i "$CORPUS/sft.jsonl" --vocab 8192 \
    -o "$W/tokenizer.gguf"
fi

resume() { [ -f "$1/latest" ] && echo --resume || true; }

$CGPT train pretrain --tokenizer "$W/tokenizer.gguf" -i "$CORPUS/pretrain.jsonl" \
  --val "$CORPUS/pretrain_eval.jsonl" -o "$W/pretrain" $(resume "$W/pretrain") \
  --embd 256 --layers 6 --heads 8 --kv-heads 4 --head-dim 32 --ff 688 --ctx 256 \
  --batch "$BATCH" --steps "$PRETRAIN_STEPS" --warmup 200 --lr 2e-3 --lr-min 2e-4 --wd 0.1 \
  --ckpt-every 100 --eval-every 250 --eval-rows 64 --threads "$THREADS" --name cgpt-mini-base

PRE="$W/pretrain/$(cat "$W/pretrain/latest").gguf"
$CGPT train sft --init "$PRE" -i "$CORPUS/sft.jsonl" --val "$CORPUS/sft_eval.jsonl" \
  -o "$W/sft" $(resume "$W/sft") --batch "$BATCH" --steps "$SFT_STEPS" --warmup 50 \
  --lr 1e-3 --lr-min 1e-4 --wd 0 --ckpt-every 100 --eval-every 200 --eval-rows 64 \
  --threads "$THREADS" --name cgpt-mini

SFT="$W/sft/$(cat "$W/sft/latest").gguf"
$CGPT quantize "$SFT" "$OUT" "$TYPE"
sets=()
for kv in $SAMPLING; do sets+=(--set "general.sampling.$kv"); done
$CGPT meta "$OUT" "$OUT" "${sets[@]}"
echo "make model: $OUT ($TYPE) from $SFT"
# The model card's evaluation table: held-out chat records and text.
$CGPT eval -m "$OUT" -f "$CORPUS/sft_eval.jsonl" --text "$CORPUS/pretrain_eval.jsonl" \
  --baseline "$CORPUS/sft.jsonl" --threads "$THREADS" | tee "$W/eval.txt"
