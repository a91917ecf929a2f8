#!/usr/bin/python3
"""test_embed.py - cgpt's embeddings (model_embed) against the NumPy reference.

For each case: build/tools/genmodel writes a small random model (the
encoders bert and nomic-bert with their WordPiece vocabulary, or a
decoder); build/tools/embed computes one pooled vector per sequence -
alone (one model_embed call per sequence), batched (one call for all),
batched in small forward passes (--batch 24: sequences split over several
passes) and L2-normalised; tests/ref/ref_model.py (RefModel.embed) computes
them in float64 from the same file's weights, written from the models'
definitions (HF BertModel / NomicBertModel; decoders: the mean of the final
hidden states after output_norm).

Tolerances, relative to the scale S = max|want| of the case (as
test_forward.py): F32 / F16 weights 1e-4 * S; Q8_0: against the reference
that quantizes activations as ggml does (act_quant), 5e-2 * S with at least
one sequence within 1e-4 * S, and 1e-1 * S against the plain float
reference. Batched vs alone: bit-identical required (cosine >= 1 - 1e-6
would be the contract; each row's arithmetic is independent of the batch).
Normalised: |v| = 1 within 1e-5 and cosine with the reference >= 1 - 1e-6
(float weights).

Prints one line per case and "N passed, N failed"; exits non-zero on failure.
"""

import os
import subprocess
import sys
import tempfile
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

import gguf_np  # noqa: E402
from ref_model import RefModel  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("CGPT_BUILD") or os.path.join(ROOT, "build")
GENMODEL = os.path.join(BUILD, "tools", "genmodel")
EMBED = os.path.join(BUILD, "tools", "embed")
CGPT = os.path.join(BUILD, "cgpt")

FLOAT_TOL = 1e-4
QUANT_TOL = 5e-2
TIGHT_TOL = 1e-4
PLAIN_QUANT_TOL = 1e-1
NORM_COS = 1e-6
CTX = 64
INIT_STD = 0.08
CLS, SEP, FIRST_ID = 2, 3, 5  # the random WordPiece vocabulary's ids

# (name, arch, vocab, embd, layers, heads, kv_heads, ff, flags, type)
CASES = [
    ("bert-mean", "bert", 300, 128, 2, 4, 4, 256, ["--pooling", "1"], "F32"),
    ("bert-cls", "bert", 300, 96, 3, 3, 3, 192, ["--pooling", "2"], "F32"),
    ("bert-fused-last", "bert", 300, 64, 2, 2, 2, 128, ["--pooling", "3", "--fused-qkv"], "F32"),
    ("bert-none-is-mean", "bert", 300, 64, 2, 4, 4, 128, ["--pooling", "0"], "F32"),
    ("nomic-mean", "nomic-bert", 300, 128, 2, 4, 4, 256, ["--pooling", "1"], "F32"),
    ("nomic-cls-gqa2", "nomic-bert", 300, 128, 2, 4, 2, 192, ["--pooling", "2"], "F32"),
    ("bert-F16", "bert", 300, 128, 2, 4, 4, 256, ["--pooling", "1"], "F16"),
    ("nomic-F16-cls", "nomic-bert", 300, 128, 2, 4, 4, 256, ["--pooling", "2"], "F16"),
    ("bert-Q8_0", "bert", 300, 128, 2, 4, 4, 256, ["--pooling", "1"], "Q8_0"),
    ("nomic-Q8_0-cls", "nomic-bert", 300, 128, 2, 4, 4, 256, ["--pooling", "2"], "Q8_0"),
    # decoders: the mean-pooled final hidden state, through the KV cache
    ("llama-mean", "llama", 1001, 128, 2, 4, 2, 256, [], "F32"),
    ("qwen3-mean", "qwen3", 1001, 128, 2, 4, 2, 256, [], "F32"),
    ("gpt2-mean", "gpt2", 1001, 128, 2, 4, 4, 256, [], "F32"),
    ("gemma2-mean", "gemma2", 1001, 128, 2, 4, 2, 256, ["--window", "4"], "F32"),
    ("llama-Q8_0", "llama", 1001, 128, 2, 4, 2, 256, [], "Q8_0"),
]


def run(cmd, timeout=300):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=timeout)


def c_embed(model, seqs, out, extra):
    cmd = [EMBED, "-m", model, "-o", out, "--threads", "2"] + extra
    for s in seqs:
        cmd += ["--seq", " ".join(map(str, s))]
    r = run(cmd)
    if r.returncode != 0:
        raise RuntimeError(f"embed {' '.join(extra)} failed: {r.stderr.strip()}")
    a = np.fromfile(out, dtype="<f4")
    return a.reshape(len(seqs), -1).astype(np.float64)


def cosine(a, b):
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def check_case(case, tmp):
    name, arch, vocab, embd, layers, heads, kvh, ff, flags, wtype = case
    path = os.path.join(tmp, name + ".gguf")
    r = run([GENMODEL, "--arch", arch, "--vocab", str(vocab), "--embd", str(embd),
             "--layers", str(layers), "--heads", str(heads), "--kv-heads", str(kvh),
             "--ff", str(ff), "--ctx", str(CTX), "--type", wtype, "--std", str(INIT_STD),
             "--seed", str(zlib.crc32(name.encode()) % 100000), "-o", path] + flags)
    if r.returncode != 0:
        return False, f"genmodel failed: {r.stderr.strip()}", 0.0
    g = gguf_np.load(path)
    enc = arch in ("bert", "nomic-bert")
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    lens = [1, 4, 9, 17, 30] if not enc else [0, 3, 9, 17, 30]
    seqs = []
    for n in lens:
        body = [int(t) for t in rng.integers(FIRST_ID if enc else 0, vocab, n)]
        seqs.append([CLS] + body + [SEP] if enc else body)
    ref = RefModel(g)
    want = np.stack([ref.embed(s) for s in seqs])
    scale = float(np.max(np.abs(want)))
    quant = wtype not in ("F32", "F16", "BF16")
    if quant:
        refq = RefModel(g, act_quant=True)
        want_q = np.stack([refq.embed(s) for s in seqs])
    out = os.path.join(tmp, name + ".bin")
    try:
        alone = c_embed(path, seqs, out, [])
        batched = c_embed(path, seqs, out, ["--batched"])
        small = c_embed(path, seqs, out, ["--batched", "--batch", "32"])
        normed = c_embed(path, seqs, out, ["--batched", "--normalize"])
    except RuntimeError as e:
        return False, str(e), 0.0
    msgs, ok = [], True
    target = want_q if quant else want
    err = float(np.max(np.abs(alone - target)))
    rel = err / scale
    tol = QUANT_TOL if quant else FLOAT_TOL
    msgs.append(f"{'ref(act-quant)' if quant else 'ref'} max abs err {err:.2e} "
                f"(rel {rel:.2e}, tol {tol:.0e}, scale {scale:.3g})")
    if not np.all(np.isfinite(alone)) or rel > tol:
        i = np.unravel_index(np.argmax(np.abs(alone - target)), alone.shape)
        ok = False
        msgs.append(f"MISMATCH seq {i[0]} dim {i[1]}: got {alone[i]:.6g} want {target[i]:.6g}")
    if quant:
        n_tight = int(np.sum(np.max(np.abs(alone - want_q), axis=1) / scale <= TIGHT_TOL))
        msgs.append(f"seqs within {TIGHT_TOL:.0e}: {n_tight}/{len(seqs)}")
        ep = float(np.max(np.abs(alone - want))) / scale
        msgs.append(f"plain-ref rel err {ep:.2e}")
        if n_tight == 0 or ep > PLAIN_QUANT_TOL:
            ok = False
            msgs.append("QUANT MISMATCH")
    cos_min = min(cosine(alone[i], target[i]) for i in range(len(seqs)))
    msgs.append(f"min cosine vs ref {cos_min:.9f}")
    for label, other in (("batched", batched), (f"batched in passes of 32", small)):
        if not np.array_equal(other, alone):
            cmin = min(cosine(other[i], alone[i]) for i in range(len(seqs)))
            ok = ok and cmin >= 1 - 1e-6
            msgs.append(f"{label} != alone (bitwise; min cosine {cmin:.9f})")
    msgs.append("batched == alone bit for bit" if np.array_equal(batched, alone)
                and np.array_equal(small, alone) else "")
    norms = np.linalg.norm(normed, axis=1)
    if np.max(np.abs(norms - 1.0)) > 1e-5:
        ok = False
        msgs.append(f"NORM: |v| = {norms}")
    if not quant:
        cn = min(cosine(normed[i], want[i]) for i in range(len(seqs)))
        if cn < 1 - NORM_COS:
            ok = False
            msgs.append(f"NORMALISED cosine {cn:.9f}")
    g.close()
    return ok, "; ".join(m for m in msgs if m), rel


def check_errors(tmp):
    """A sequence past the context and a bad pooling are named errors."""
    path = os.path.join(tmp, "err.gguf")
    r = run([GENMODEL, "--arch", "bert", "--vocab", "300", "--embd", "64", "--layers", "1",
             "--heads", "2", "--ff", "64", "--ctx", "16", "-o", path])
    if r.returncode != 0:
        return False, f"genmodel failed: {r.stderr.strip()}"
    out = os.path.join(tmp, "err.bin")
    r = run([EMBED, "-m", path, "-o", out, "--seq", " ".join(["5"] * 17)])
    if r.returncode == 0 or "more than the 16" not in r.stderr:
        return False, f"17 tokens in a 16-position bert: rc {r.returncode} {r.stderr.strip()!r}"
    r = run([EMBED, "-m", path, "-o", out, "--seq", "2 300 3"])
    if r.returncode == 0 or "out of range" not in r.stderr:
        return False, f"token 300 of 300: rc {r.returncode} {r.stderr.strip()!r}"
    if os.path.exists(CGPT):
        r = run([CGPT, "run", "-m", path, "-p", "hello", "-n", "2"])
        if r.returncode == 0 or "an embedding model (bert) cannot generate text" not in r.stderr:
            return False, f"cgpt run on bert: rc {r.returncode} {r.stderr.strip()!r}"
    return True, "too long, bad token and cgpt run refused with their messages"


def main():
    for tool in (GENMODEL, EMBED):
        if not os.path.exists(tool):
            print(f"FAIL: {tool} not built (make tools)")
            print("0 passed, 1 failed")
            return 1
    passed = failed = 0
    worst = {}
    with tempfile.TemporaryDirectory(prefix="cgpt-embed-") as tmp:
        for case in CASES:
            try:
                ok, msg, rel = check_case(case, tmp)
            except Exception as e:  # one crash must not hide the other cases
                ok, msg, rel = False, f"exception {type(e).__name__}: {e}", 0.0
            key = (case[9], case[1])
            worst[key] = max(worst.get(key, 0.0), rel)
            print(f"{'PASS' if ok else 'FAIL'} {case[0]} [{case[9]}]: {msg}", flush=True)
            passed, failed = (passed + 1, failed) if ok else (passed, failed + 1)
        ok, msg = check_errors(tmp)
        print(f"{'PASS' if ok else 'FAIL'} errors: {msg}")
        passed, failed = (passed + 1, failed) if ok else (passed, failed + 1)
    print("max relative error vs reference, per (type, arch): " +
          ", ".join(f"{t}/{a} {e:.2e}" for (t, a), e in sorted(worst.items())))
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
