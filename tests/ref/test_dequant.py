#!/usr/bin/python3
"""test_dequant.py - cgpt's C dequantization vs the NumPy reader, bit for bit.

Two sources of blocks for every supported weight type:
  1. random bytes: a GGUF written here with one tensor per type whose blocks
     are random (scale fields set to random finite halves), so every bit
     pattern of the packed fields is exercised - including ones a quantizer
     rarely produces;
  2. quantized weights: models written by build/tools/genmodel --type T
     (C quantize), read back by both sides; additionally the dequantized
     weights are compared with the same model written as F32 (same seed,
     same draws) to check that quantization is sane (relative RMS error
     below a per-type bound well above the type's normal error and far
     below what a layout bug gives).
build/tools/dequant dumps the C dequantization at every SIMD level this CPU
has; each must equal gguf_np.dequantize exactly (float32 bit patterns).
  3. dot products: build/tools/vecdot quantizes weight rows and an
     activation (to the type's vec_dot_type) and runs vec_dot at each level,
     on row lengths with odd block counts; the quantized activation must
     equal ggml's reference quantizer emulated in NumPy (ref_model's
     quant_dequant_act, including Q8_1's fp16 block sum), and each dot must
     equal the exact dot of the dequantized blocks (Q4_1/Q5_1: min term from
     the stored sum) within 1e-5 * sum|w*a| (float32 accumulation).
Prints one line per check and "N passed, N failed"; exits non-zero on failure.
"""

import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

import gguf_np  # noqa: E402
from ref_model import quant_dequant_act, VEC_DOT_TYPE  # noqa: E402
from selfcheck_ref import write_gguf  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
# the build to test: build/ unless CGPT_BUILD names another (make BUILD=...)
BUILD = os.environ.get("CGPT_BUILD") or os.path.join(ROOT, "build")
GENMODEL = os.path.join(BUILD, "tools", "genmodel")
DEQUANT = os.path.join(BUILD, "tools", "dequant")
VECDOT = os.path.join(BUILD, "tools", "vecdot")
DOT_TOL = 1e-5

TYPES = ["F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q4_K", "Q5_K", "Q6_K",
         "Q2_K", "Q3_K", "IQ4_NL", "IQ4_XS", "MXFP4"]
# byte offsets of fp16 scale fields inside each block (set to finite values)
F16_FIELDS = {"Q4_0": [0], "Q4_1": [0, 2], "Q5_0": [0], "Q5_1": [0, 2], "Q8_0": [0],
              "Q4_K": [0, 2], "Q5_K": [0, 2], "Q6_K": [208], "Q2_K": [80, 82], "Q3_K": [108],
              "IQ4_NL": [0], "IQ4_XS": [0], "MXFP4": []}
# byte offsets of E8M0 exponents: kept <= 250 so that 12 * 2^(e - 128) stays finite
E8M0_FIELDS = {"MXFP4": [0]}
# ggml's vec_dot_type of the types ref_model does not model
VEC_DOT_TYPE_ALL = dict(VEC_DOT_TYPE)
VEC_DOT_TYPE_ALL.update({gguf_np.Q2_K: "Q8_K", gguf_np.Q3_K: "Q8_K", gguf_np.IQ4_XS: "Q8_K",
                         gguf_np.IQ4_NL: "Q8_0", gguf_np.MXFP4: "Q8_0"})
# relative RMS error of quantize -> dequantize on Gaussian weights: bounds
# about 1.5x the measured values, far below the ~1 a layout bug gives
RT_BOUND = {"F32": 0.0, "F16": 3e-4, "BF16": 3e-3, "Q8_0": 1e-2, "Q6_K": 3e-2,
            "Q5_0": 6e-2, "Q5_1": 6e-2, "Q5_K": 6e-2, "Q4_0": 0.13, "Q4_1": 0.12, "Q4_K": 0.11,
            "Q3_K": 0.23, "Q2_K": 0.45, "IQ4_NL": 0.11, "IQ4_XS": 0.11, "MXFP4": 0.17}
LEVELS = ["scalar", "avx2", "avx512"]


def run(cmd):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=300)


def random_blocks(rng, tname, n):
    t = gguf_np.TYPE_BY_NAME[tname]
    _, bs, ts = gguf_np.TYPES[t]
    if tname == "F32":
        return rng.normal(size=n).astype("<f4").tobytes()
    if tname == "F16":
        return rng.normal(size=n).astype("<f2").tobytes()
    if tname == "BF16":
        return (rng.normal(size=n).astype(np.float32).view(np.uint32) >> 16).astype("<u2").tobytes()
    b = rng.integers(0, 256, size=(n // bs, ts), dtype=np.uint8)
    for off in F16_FIELDS[tname]:
        h = (rng.normal(size=n // bs) * 0.05).astype("<f2")
        b[:, off:off + 2] = h.view(np.uint8).reshape(-1, 2)
    for off in E8M0_FIELDS.get(tname, []):
        b[:, off] = rng.integers(0, 251, size=n // bs, dtype=np.uint8)
    return b.tobytes()


def compare(path, levels, label):
    """C dequant of every tensor of 'path' at each level vs gguf_np. Returns
    (ok, message)."""
    g = gguf_np.load(path)
    want = np.concatenate([g.tensor(n).reshape(-1) for n in g.tensors])
    names = list(g.tensors)
    sizes = [int(np.prod(g.tensors[n].ne)) for n in names]
    types = [gguf_np.type_name(g.tensors[n].type) for n in names]
    g.close()
    msgs = []
    ok = True
    with tempfile.NamedTemporaryFile(suffix=".bin") as out:
        for lv in levels:
            r = run([DEQUANT, path, out.name, "--level", lv])
            if r.returncode != 0:
                ok = False
                msgs.append(f"{lv}: dequant failed: {r.stderr.strip()}")
                continue
            got = np.fromfile(out.name, dtype="<f4")
            if got.size != want.size:
                ok = False
                msgs.append(f"{lv}: {got.size} floats, want {want.size}")
                continue
            bad = np.nonzero(got.view(np.uint32) != want.view(np.uint32))[0]
            if bad.size:
                ok = False
                i = int(bad[0])
                k = int(np.searchsorted(np.cumsum(sizes), i, side="right"))
                start = sum(sizes[:k])
                msgs.append(f"{lv}: {bad.size} of {want.size} differ; first: tensor "
                            f"'{names[k]}' ({types[k]}) element {i - start}: got {got[i]!r} "
                            f"want {want[i]!r} (max |diff| {np.max(np.abs(got - want)):.3g})")
            else:
                msgs.append(f"{lv}: bit-exact ({want.size} values)")
    return ok, f"{label}: " + "; ".join(msgs)


def check_vecdot(tname, t, at_name, levels, tmp):
    at = gguf_np.TYPE_BY_NAME[at_name]
    bs = gguf_np.TYPES[t][1]
    sizes = [256, 768, 1280] if bs == 256 else [32, 96, 800]
    rng = np.random.default_rng(9)
    worst, msgs, ok = 0.0, [], True
    for n in sizes:
        R = 6
        x = rng.normal(size=(R + 1) * n).astype(np.float32)
        x[R * n:] += 0.3  # activations with a nonzero mean (exercise min/sum terms)
        inp = os.path.join(tmp, "vd_in.f32")
        out = os.path.join(tmp, "vd_out.bin")
        x.tofile(inp)
        emu, serr = quant_dequant_act(x[R * n:], at_name, with_sum=True) \
            if at_name == "Q8_1" else (quant_dequant_act(x[R * n:], at_name), None)
        for lv in levels:
            r = run([VECDOT, tname, str(n), str(R), inp, out, "--level", lv])
            if r.returncode != 0:
                return False, f"vec_dot {tname}: vecdot failed: {r.stderr.strip()}"
            b = np.fromfile(out, np.uint8)
            ab = gguf_np.TYPES[at][2] * n // gguf_np.TYPES[at][1]
            wb = gguf_np.TYPES[t][2] * n // bs
            a = gguf_np.dequantize(b[:ab], at, n).astype(np.float64)
            if not np.array_equal(a, emu):
                ok = False
                msgs.append(f"n={n} {lv}: activation quantization differs from ggml's "
                            f"(max |diff| {np.max(np.abs(a - emu)):.3g})")
                continue
            W = np.stack([gguf_np.dequantize(b[ab + i * wb:ab + (i + 1) * wb], t, n)
                          for i in range(R)]).astype(np.float64)
            want = W @ a
            if at_name == "Q8_1":
                blk = b[:ab].reshape(-1, 36)
                s_c = blk[:, 2:4].copy().view("<f2").astype(np.float64).reshape(-1)
                d_c = blk[:, 0:2].copy().view("<f2").astype(np.float64).reshape(-1)
                qsum = blk[:, 4:36].view(np.int8).astype(np.float64).sum(axis=1)
                if not np.array_equal(s_c - d_c * qsum, serr):
                    ok = False
                    msgs.append(f"n={n} {lv}: Q8_1 block sums differ from fp16(d*sum(q))")
                wraw = b[ab:ab + R * wb].reshape(R, n // bs, gguf_np.TYPES[t][2])
                m = wraw[:, :, 2:4].copy().view("<f2").astype(np.float64)[:, :, 0]
                want = want + m @ (s_c - d_c * qsum)
            got = b[ab + R * wb:].view("<f4").astype(np.float64)
            scale = np.abs(W) @ np.abs(a)
            e = float(np.max(np.abs(got - want) / scale))
            worst = max(worst, e)
            if e > DOT_TOL:
                ok = False
                i = int(np.argmax(np.abs(got - want) / scale))
                msgs.append(f"n={n} {lv}: row {i} got {got[i]:.7g} want {want[i]:.7g} "
                            f"(rel {e:.2e})")
    return ok, (f"vec_dot {tname} x {at_name} (n {sizes}, levels {' '.join(levels)}): "
                f"max rel err {worst:.2e} (tol {DOT_TOL:.0e})" +
                ("; " + "; ".join(msgs) if msgs else ""))


def main():
    for tool in (GENMODEL, DEQUANT, VECDOT):
        if not os.path.exists(tool):
            print(f"FAIL: {tool} not built (make tools)")
            print("0 passed, 1 failed")
            return 1
    # levels this CPU has: the tool refuses the others
    levels = []
    with tempfile.TemporaryDirectory(prefix="cgpt-dq-") as tmp:
        probe = os.path.join(tmp, "probe.gguf")
        write_gguf(probe, {"general.architecture": "llama"},
                   [("x", gguf_np.F32, (4,), np.zeros(4, "<f4").tobytes())])
        for lv in LEVELS:
            if run([DEQUANT, probe, os.path.join(tmp, "p.bin"), "--level", lv]).returncode == 0:
                levels.append(lv)
        print(f"SIMD levels tested: {' '.join(levels)}")

        passed = failed = 0

        def record(ok, msg):
            nonlocal passed, failed
            print(f"{'PASS' if ok else 'FAIL'} {msg}", flush=True)
            if ok:
                passed += 1
            else:
                failed += 1

        # 1. random blocks, all types in one file; each tensor is 2 rows of 1024
        rng = np.random.default_rng(7)
        tensors = []
        for tname in TYPES:
            t = gguf_np.TYPE_BY_NAME[tname]
            tensors.append((f"rand.{tname}", t, (1024, 2), random_blocks(rng, tname, 2048)))
        rpath = os.path.join(tmp, "random.gguf")
        write_gguf(rpath, {"general.architecture": "llama"}, tensors)
        for tname, tensor in zip(TYPES, tensors):
            one = os.path.join(tmp, f"rand_{tname}.gguf")
            write_gguf(one, {"general.architecture": "llama"}, [tensor])
            record(*compare(one, levels, f"random blocks {tname}"))

        # 2. genmodel-quantized weights (C quantize) + round-trip sanity
        base = ["--arch", "llama", "--vocab", "300", "--embd", "256", "--layers", "1",
                "--heads", "4", "--kv-heads", "2", "--ff", "512", "--seed", "11", "--std", "0.5"]
        f32 = os.path.join(tmp, "m_F32.gguf")
        r = run([GENMODEL] + base + ["--type", "F32", "-o", f32])
        if r.returncode != 0:
            record(False, f"genmodel F32: {r.stderr.strip()}")
            print(f"{passed} passed, {failed} failed")
            return 1
        gref = gguf_np.load(f32)
        for tname in TYPES:
            path = os.path.join(tmp, f"m_{tname}.gguf")
            r = run([GENMODEL] + base + ["--type", tname, "-o", path])
            if r.returncode != 0:
                record(False, f"genmodel {tname}: {r.stderr.strip()}")
                continue
            ok, msg = compare(path, levels, f"genmodel {tname}")
            g = gguf_np.load(path)
            worst, wname = 0.0, ""
            for n, ti in g.tensors.items():
                if gguf_np.type_name(ti.type) != tname:
                    continue
                a, b = gref.tensor(n), g.tensor(n)
                e = float(np.sqrt(np.mean((a - b) ** 2) / np.mean(a * a)))
                if e > worst:
                    worst, wname = e, n
            g.close()
            rt_ok = worst <= RT_BOUND[tname]
            msg += f"; quantize round-trip rel rms {worst:.2e} (bound {RT_BOUND[tname]:.2g}" \
                   f"{', ' + wname if wname else ''})"
            record(ok and rt_ok, msg)
        gref.close()

        # 3. vec_dot per type and level
        for t, at in sorted(VEC_DOT_TYPE_ALL.items()):
            record(*check_vecdot(gguf_np.type_name(t), t, at, levels, tmp))
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
