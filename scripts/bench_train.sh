#!/usr/bin/env bash
# make bench-train: training speed of cgpt against PyTorch on the same
# llama-shaped model and batch, measured side by side in this run, and MFU
# against the FMA peak measured in the same run. Not a test: it prints the
# figures and whether the targets (>= 2x PyTorch's best, MFU >= 0.5) are met.
set -euo pipefail
cd "$(dirname "$0")/.."
SHAPE="--embd 256 --layers 6 --heads 8 --kv-heads 4 --ff 688 --vocab 8192 --seq 256 --batch 8"
STEPS=${BENCH_STEPS:-10}
echo "bench-train: shape $SHAPE, $STEPS steps each" >&2
ours=$(build/tools/trainbench $SHAPE --steps "$STEPS")
torch=$(/usr/bin/python3 scripts/bench_train_torch.py $SHAPE --steps "$STEPS")
/usr/bin/python3 - "$ours" "$torch" <<'PY'
import json, sys
o, t = json.loads(sys.argv[1]), json.loads(sys.argv[2])
ratio = o["tokens_per_s"] / t["best"]
print(f"cgpt   : {o['tokens_per_s']:.0f} tokens/s ({o['threads']} threads), "
      f"{o['params']/1e6:.2f}M params, MFU {o['mfu']:.3f} of {o['fma_peak_gflops']:.0f} GFLOP/s FMA peak")
print("pytorch: " + ", ".join(f"{v:.0f} tokens/s ({k} thr)" for k, v in t["torch_tokens_per_s"].items())
      + f"; best {t['best']:.0f}")
print(f"ratio to PyTorch's best: {ratio:.2f}x (target >= 2)   MFU {o['mfu']:.3f} (target >= 0.5)")
PY
