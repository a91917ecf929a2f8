#!/usr/bin/env bash
# `make guard-model`: cgpt's own trained moderation classifier,
# models/cgpt-guard.gguf (docs/SAFETY.md "The trained classifier").
#   1. the labelled set: scripts/build-safety-train.py (templated examples per
#      category, benign look-alikes, chat prompts, eval.txt's dev half;
#      never the test half, eval-heldout.txt or eval-blind.txt);
#   2. the built-in model (models/cgpt-mini.gguf) given the classifier's chat
#      template (one user turn: "moderate: TEXT"; the answer "safe" or
#      "unsafe" and a line of category keys, which safety/guard.c parses);
#   3. chat-tuned on the set with `cgpt train sft` (resumable: run it again
#      after an interruption), quantized to Q8_0.
# Settings (environment): GUARD_DIR (work dir, default build/guard),
# GUARD_STEPS (default 450, about three epochs), BATCH (16), THREADS (0: all CPUs), GUARD_OUT
# (default models/cgpt-guard.gguf), GUARD_TYPE (Q8_0).
set -euo pipefail
cd "$(dirname "$0")/.."
W=${GUARD_DIR:-build/guard}
STEPS=${GUARD_STEPS:-450}
BATCH=${BATCH:-16}
THREADS=${THREADS:-0}
OUT=${GUARD_OUT:-models/cgpt-guard.gguf}
TYPE=${GUARD_TYPE:-Q8_0}
CGPT=build/cgpt
# The prompt: short, because the model's context is 256 tokens.
TEMPLATE="{% for m in messages %}<|im_start|>{{ m['role'] }}
{% if m['role'] == 'user' %}moderate: {% endif %}{{ m['content'] }}<|im_end|>
{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant
{% endif %}"
mkdir -p "$W"
# the everyday prompts come from the built-in model's chat set
[ -f build/corpus/MANIFEST.json ] || /usr/bin/python3 scripts/corpus/build.py --out build/corpus
/usr/bin/python3 scripts/build-safety-train.py "$W/train.jsonl" "$W/val.jsonl"
$CGPT meta models/cgpt-mini.gguf "$W/init.gguf" --set-str "tokenizer.chat_template=$TEMPLATE" \
  --set-str general.name=cgpt-guard
resume() { [ -f "$1/latest" ] && echo --resume || true; }
$CGPT train sft --init "$W/init.gguf" -i "$W/train.jsonl" --val "$W/val.jsonl" -o "$W/sft" \
  $(resume "$W/sft") --batch "$BATCH" --steps "$STEPS" --warmup 50 --lr 5e-4 --lr-min 5e-5 \
  --wd 0 --ckpt-every 100 --eval-every 250 --eval-rows 64 --threads "$THREADS" --name cgpt-guard
SFT="$W/sft/$(cat "$W/sft/latest").gguf"
$CGPT quantize "$SFT" "$OUT" "$TYPE"
echo "make guard-model: $OUT ($TYPE) from $SFT"
