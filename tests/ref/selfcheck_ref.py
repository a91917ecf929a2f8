"""selfcheck_ref.py - checks of the NumPy oracle itself (no C code involved).

An oracle that is wrong in the same way as the code under test proves
nothing, so the reference is checked against properties that follow from
the definitions, computed a second, different way:
  - RoPE: apply_rope equals multiplication by e^{i pos theta} of complex
    pairs built explicitly (adjacent pairs for llama, halves for neox);
  - GQA: a model with n_kv_heads < n_heads equals the model whose K/V
    weights are repeated per query head (n_kv_heads == n_heads);
  - causality: logits of a prefix do not depend on later tokens;
  - tied: a missing output.weight behaves as token_embd.weight;
  - gguf_np: a file written here (F32, F16, BF16, Q8_0 blocks built by
    hand) reads back exactly, with shapes reversed to row-major;
  - dequantization of hand-built blocks of every type equals values
    computed element by element from the block layout description.
run_all() returns (ok, message).
"""

import math
import os
import struct
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

import gguf_np  # noqa: E402
from ref_model import RefModel  # noqa: E402


class FakeG:
    """Stands in for a GGUFFile: metadata + float arrays by name."""

    def __init__(self, metadata, weights):
        self.metadata = metadata
        self.w = weights
        self.tensors = dict.fromkeys(weights)

    def tensor(self, name):
        return self.w[name]


def rand_model(arch, rng, E=32, L=2, H=4, KVH=2, D=8, F=48, V=50, tied=False):
    md = {"general.architecture": arch, f"{arch}.embedding_length": E,
          f"{arch}.block_count": L, f"{arch}.attention.head_count": H,
          f"{arch}.attention.head_count_kv": KVH, f"{arch}.context_length": 64,
          f"{arch}.attention.key_length": D}
    w = {"token_embd.weight": rng.normal(0, 0.5, (V, E))}
    if arch == "gpt2":
        md[f"{arch}.attention.layer_norm_epsilon"] = 1e-5
        w["position_embd.weight"] = rng.normal(0, 0.5, (64, E))
    else:
        md[f"{arch}.attention.layer_norm_rms_epsilon"] = 1e-5
        md[f"{arch}.rope.freq_base"] = 100.0
    for il in range(L):
        p = f"blk.{il}."
        w[p + "attn_norm.weight"] = 1 + 0.1 * rng.normal(size=E)
        w[p + "ffn_norm.weight"] = 1 + 0.1 * rng.normal(size=E)
        w[p + "attn_output.weight"] = rng.normal(0, 0.3, (E, H * D))
        w[p + "ffn_up.weight"] = rng.normal(0, 0.3, (F, E))
        w[p + "ffn_down.weight"] = rng.normal(0, 0.3, (E, F))
        if arch == "gpt2":
            w[p + "attn_qkv.weight"] = rng.normal(0, 0.3, (3 * E, E))
            for b, n in (("attn_qkv.bias", 3 * E), ("attn_output.bias", E), ("attn_norm.bias", E),
                         ("ffn_norm.bias", E), ("ffn_up.bias", F), ("ffn_down.bias", E)):
                w[p + b] = rng.normal(0, 0.1, n)
        else:
            w[p + "attn_q.weight"] = rng.normal(0, 0.3, (H * D, E))
            w[p + "attn_k.weight"] = rng.normal(0, 0.3, (KVH * D, E))
            w[p + "attn_v.weight"] = rng.normal(0, 0.3, (KVH * D, E))
            w[p + "ffn_gate.weight"] = rng.normal(0, 0.3, (F, E))
            if arch == "qwen2":
                w[p + "attn_q.bias"] = rng.normal(0, 0.1, H * D)
                w[p + "attn_k.bias"] = rng.normal(0, 0.1, KVH * D)
                w[p + "attn_v.bias"] = rng.normal(0, 0.1, KVH * D)
            if arch == "qwen3":
                w[p + "attn_q_norm.weight"] = 1 + 0.1 * rng.normal(size=D)
                w[p + "attn_k_norm.weight"] = 1 + 0.1 * rng.normal(size=D)
    w["output_norm.weight"] = 1 + 0.1 * rng.normal(size=E)
    if arch == "gpt2":
        w["output_norm.bias"] = rng.normal(0, 0.1, E)
    if not tied:
        w["output.weight"] = rng.normal(0, 0.3, (V, E))
    return md, w


def check_rope(fails):
    rng = np.random.default_rng(1)
    for arch in ("llama", "qwen2"):
        md, w = rand_model(arch, rng, H=2, KVH=2, D=8)
        m = RefModel(FakeG(md, w))
        x = rng.normal(size=(5, 2, 8))
        pos = np.arange(5) + 3
        got = m.apply_rope(x, pos)
        want = np.empty_like(x)
        for t in range(5):
            for h in range(2):
                for i in range(4):
                    th = pos[t] * 100.0 ** (-2.0 * i / 8)
                    a, b = (2 * i, 2 * i + 1) if arch == "llama" else (i, i + 4)
                    z = complex(x[t, h, a], x[t, h, b]) * complex(math.cos(th), math.sin(th))
                    want[t, h, a], want[t, h, b] = z.real, z.imag
        if np.max(np.abs(got - want)) > 1e-12:
            fails.append(f"rope {arch}")


def check_gqa(fails):
    rng = np.random.default_rng(2)
    for arch in ("llama", "qwen2", "qwen3"):
        H, KVH, D = 6, 2, 8
        md, w = rand_model(arch, rng, H=H, KVH=KVH, D=D)
        toks = [3, 1, 4, 1, 5, 9]
        a = RefModel(FakeG(md, w)).forward(toks)
        md2, w2 = dict(md), dict(w)
        md2[f"{arch}.attention.head_count_kv"] = H
        for il in range(2):
            for nm in ("attn_k.weight", "attn_v.weight", "attn_k.bias", "attn_v.bias"):
                k = f"blk.{il}.{nm}"
                if k in w:
                    # query head h uses kv head h // (H / KVH): repeat each kv head
                    blocks = np.split(w[k], KVH, axis=0)
                    w2[k] = np.concatenate([b for b in blocks for _ in range(H // KVH)], axis=0)
        b = RefModel(FakeG(md2, w2)).forward(toks)
        if np.max(np.abs(a - b)) > 1e-9:
            fails.append(f"gqa {arch}")


def check_causal_tied(fails):
    rng = np.random.default_rng(3)
    for arch in ("llama", "qwen2", "qwen3", "gpt2"):
        kv = 4 if arch == "gpt2" else 2
        md, w = rand_model(arch, rng, KVH=kv, tied=True)
        m = RefModel(FakeG(md, w))
        toks = [7, 2, 9, 4, 4, 1]
        full = m.forward(toks)
        if np.max(np.abs(full[:3] - m.forward(toks[:3]))) > 1e-9:
            fails.append(f"causal {arch}")
        w2 = dict(w)
        w2["output.weight"] = w["token_embd.weight"].copy()
        if np.max(np.abs(full - RefModel(FakeG(md, w2)).forward(toks))) > 1e-12:
            fails.append(f"tied {arch}")
        # one token, one layer checks by hand: attention over a single
        # position returns v, whatever q and k are
        if arch == "gpt2":
            md1 = dict(md)
            md1["gpt2.block_count"] = 1
            m1 = RefModel(FakeG(md1, w))
            E = 32
            x = w["token_embd.weight"][7] + w["position_embd.weight"][0]

            def ln(v, g, b):
                return (v - v.mean()) / math.sqrt(v.var() + 1e-5) * g + b
            p = "blk.0."
            h = ln(x, w[p + "attn_norm.weight"], w[p + "attn_norm.bias"])
            qkv = w[p + "attn_qkv.weight"] @ h + w[p + "attn_qkv.bias"]
            x = x + w[p + "attn_output.weight"] @ qkv[2 * E:] + w[p + "attn_output.bias"]
            h = ln(x, w[p + "ffn_norm.weight"], w[p + "ffn_norm.bias"])
            u = w[p + "ffn_up.weight"] @ h + w[p + "ffn_up.bias"]
            u = np.array([0.5 * t * (1 + math.tanh(math.sqrt(2 / math.pi) * (t + 0.044715 * t ** 3)))
                          for t in u])
            x = x + w[p + "ffn_down.weight"] @ u + w[p + "ffn_down.bias"]
            x = ln(x, w["output_norm.weight"], w["output_norm.bias"])
            if np.max(np.abs(m1.forward([7])[0] - w["token_embd.weight"] @ x)) > 1e-9:
                fails.append("gpt2 one-token by hand")


# ------------------------------------------------------------ gguf_np

def write_gguf(path, metadata, tensors, alignment=32):
    """Minimal GGUF v3 writer: metadata of str/u32/f32/str-array values;
    tensors as (name, type, ne, raw bytes)."""
    def s(x):
        b = x.encode()
        return struct.pack("<Q", len(b)) + b
    out = bytearray(b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(metadata)))
    for k, v in metadata.items():
        out += s(k)
        if isinstance(v, str):
            out += struct.pack("<I", 8) + s(v)
        elif isinstance(v, float):
            out += struct.pack("<If", 6, v)
        elif isinstance(v, int):
            out += struct.pack("<II", 4, v)
        elif isinstance(v, list):
            out += struct.pack("<IIQ", 9, 8, len(v)) + b"".join(s(x) for x in v)
        else:
            raise TypeError(k)
    off = 0
    offs = []
    for name, t, ne, raw in tensors:
        offs.append(off)
        out += s(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", n) for n in ne)
        out += struct.pack("<IQ", t, off)
        off += (len(raw) + alignment - 1) // alignment * alignment
    out += b"\0" * (-len(out) % alignment)
    for (name, t, ne, raw), o in zip(tensors, offs):
        out += raw + b"\0" * (-len(raw) % alignment)
    with open(path, "wb") as f:
        f.write(bytes(out))


def check_gguf_roundtrip(fails):
    rng = np.random.default_rng(4)
    a = rng.normal(size=(3, 5)).astype(np.float32)
    h = rng.normal(size=(2, 4)).astype(np.float16)
    bf = rng.normal(size=7).astype(np.float32)
    bf_bits = (bf.view(np.uint32) >> 16).astype("<u2")
    q8 = bytearray()
    q8_want = []
    for blk in range(2):
        d = np.float16(0.25 * (blk + 1))
        qs = np.arange(-16, 16, dtype=np.int8) * (1 if blk == 0 else -3)
        q8 += d.tobytes() + qs.tobytes()
        q8_want += [float(q) * float(d) for q in qs]
    with tempfile.TemporaryDirectory() as tmp:
        p = os.path.join(tmp, "t.gguf")
        write_gguf(p, {"general.architecture": "llama", "x.u": 7, "x.f": 0.5,
                       "x.arr": ["a", "bc"]},
                   [("a", gguf_np.F32, (5, 3), a.tobytes()),
                    ("h", gguf_np.F16, (4, 2), h.tobytes()),
                    ("bf", gguf_np.BF16, (7,), bf_bits.tobytes()),
                    ("q8", gguf_np.Q8_0, (64,), bytes(q8))])
        g = gguf_np.load(p)
        if g.metadata["x.u"] != 7 or g.metadata["x.f"] != 0.5 or g.metadata["x.arr"] != ["a", "bc"]:
            fails.append("gguf metadata")
        if g.tensor("a").shape != (3, 5) or not np.array_equal(g.tensor("a"), a):
            fails.append("gguf F32")
        if not np.array_equal(g.tensor("h"), h.astype(np.float32)):
            fails.append("gguf F16")
        want_bf = (bf_bits.astype(np.uint32) << 16).view(np.float32)
        if not np.array_equal(g.tensor("bf"), want_bf) or np.max(np.abs(want_bf - bf)) > 1e-2:
            fails.append("gguf BF16")
        if not np.array_equal(g.tensor("q8"), np.array(q8_want, np.float32)):
            fails.append("gguf Q8_0")
        g.close()


def f16b(x):
    return np.float16(x).tobytes()


def check_dequant_by_hand(fails):
    """One random block per type, decoded element by element from the
    layout description (ggml-common.h), compared to gguf_np.dequantize."""
    rng = np.random.default_rng(5)

    def rnd(n):
        return bytes(rng.integers(0, 256, n, dtype=np.uint8))

    def f16(b, o):
        return float(np.frombuffer(b[o:o + 2], "<f2")[0])
    d_, m_ = 0.0625, -0.375
    f32 = np.float32

    # Q4_0: d, 16 bytes; element j<16 low nibble of qs[j], j>=16 high nibble of qs[j-16]
    b = f16b(d_) + rnd(16)
    want = [((b[2 + j % 16] >> (4 * (j // 16))) & 15) - 8 for j in range(32)]
    want = [f32(q) * f32(d_) for q in want]
    if not np.array_equal(gguf_np.dequantize(np.frombuffer(b, np.uint8), gguf_np.Q4_0, 32), want):
        fails.append("Q4_0 by hand")
    # Q4_1: d, m, 16 bytes
    b = f16b(d_) + f16b(m_) + rnd(16)
    want = [f32((b[4 + j % 16] >> (4 * (j // 16))) & 15) * f32(d_) + f32(m_) for j in range(32)]
    if not np.array_equal(gguf_np.dequantize(np.frombuffer(b, np.uint8), gguf_np.Q4_1, 32), want):
        fails.append("Q4_1 by hand")
    # Q5_0: d, qh (u32: bit j = 5th bit of element j), 16 bytes
    b = f16b(d_) + rnd(20)
    qh = struct.unpack("<I", b[2:6])[0]
    want = [f32((((b[6 + j % 16] >> (4 * (j // 16))) & 15) | (((qh >> j) & 1) << 4)) - 16) * f32(d_)
            for j in range(32)]
    if not np.array_equal(gguf_np.dequantize(np.frombuffer(b, np.uint8), gguf_np.Q5_0, 32), want):
        fails.append("Q5_0 by hand")
    # Q5_1: d, m, qh, 16 bytes
    b = f16b(d_) + f16b(m_) + rnd(20)
    qh = struct.unpack("<I", b[4:8])[0]
    want = [f32(((b[8 + j % 16] >> (4 * (j // 16))) & 15) | (((qh >> j) & 1) << 4)) * f32(d_) + f32(m_)
            for j in range(32)]
    if not np.array_equal(gguf_np.dequantize(np.frombuffer(b, np.uint8), gguf_np.Q5_1, 32), want):
        fails.append("Q5_1 by hand")

    # K-quant 6-bit scale/min pairs: j<4: sc = s[j]&63, m = s[j+4]&63;
    # j>=4: sc = (s[j+4]&15) | (s[j-4]>>6)<<4, m = (s[j+4]>>4) | (s[j]>>6)<<4
    def scmin(s, j):
        if j < 4:
            return s[j] & 63, s[j + 4] & 63
        return (s[j + 4] & 15) | ((s[j - 4] >> 6) << 4), (s[j + 4] >> 4) | ((s[j] >> 6) << 4)

    # Q4_K: d, dmin, scales[12], qs[128]; element 64c + l (l<32): low nibble of
    # qs[32c + l], sub-block 2c; 64c + 32 + l: high nibble, sub-block 2c+1
    b = f16b(d_) + f16b(0.125) + rnd(140)
    d, dm, s, qs = f16(b, 0), f16(b, 2), b[4:16], b[16:144]
    want = []
    for j in range(256):
        c, r = divmod(j, 64)
        sub = 2 * c + r // 32
        q = (qs[32 * c + r % 32] >> (4 * (r // 32))) & 15
        sc, mn = scmin(s, sub)
        want.append(f32(f32(d) * f32(sc)) * f32(q) - f32(f32(dm) * f32(mn)))
    if not np.array_equal(gguf_np.dequantize(np.frombuffer(b, np.uint8), gguf_np.Q4_K, 256),
                          np.array(want, np.float32)):
        fails.append("Q4_K by hand")
    # Q5_K: as Q4_K plus qh[32]: element of sub-block k at l takes bit k of qh[l] as bit 4
    b = f16b(d_) + f16b(0.125) + rnd(172)
    d, dm, s, qh, qs = f16(b, 0), f16(b, 2), b[4:16], b[16:48], b[48:176]
    want = []
    for j in range(256):
        c, r = divmod(j, 64)
        sub = 2 * c + r // 32
        l = r % 32
        q = ((qs[32 * c + l] >> (4 * (r // 32))) & 15) + 16 * ((qh[l] >> sub) & 1)
        sc, mn = scmin(s, sub)
        want.append(f32(f32(d) * f32(sc)) * f32(q) - f32(f32(dm) * f32(mn)))
    if not np.array_equal(gguf_np.dequantize(np.frombuffer(b, np.uint8), gguf_np.Q5_K, 256),
                          np.array(want, np.float32)):
        fails.append("Q5_K by hand")
    # Q6_K: ql[128], qh[64], scales[16] int8, d. Half n (128 elements), quarter
    # k (32 each), l<32: low 4 bits from ql[64n + 32(k%2) + l], nibble k//2;
    # high 2 bits from qh[32n + l] >> 2k; scale scales[8n + 2k + l//16]; minus 32
    b = rnd(208) + f16b(d_)
    ql, qh, sc8, d = b[0:128], b[128:192], np.frombuffer(b[192:208], np.int8), f16(b, 208)
    want = []
    for j in range(256):
        n, r = divmod(j, 128)
        k, l = divmod(r, 32)
        lo = (ql[64 * n + 32 * (k % 2) + l] >> (4 * (k // 2))) & 15
        hi = (qh[32 * n + l] >> (2 * k)) & 3
        q = (lo | (hi << 4)) - 32
        want.append(f32(f32(d) * f32(sc8[8 * n + 2 * k + l // 16])) * f32(q))
    if not np.array_equal(gguf_np.dequantize(np.frombuffer(b, np.uint8), gguf_np.Q6_K, 256),
                          np.array(want, np.float32)):
        fails.append("Q6_K by hand")


def run_all():
    fails = []
    for f in (check_rope, check_gqa, check_causal_tied, check_gguf_roundtrip,
              check_dequant_by_hand):
        try:
            f(fails)
        except Exception as e:
            fails.append(f"{f.__name__}: {type(e).__name__}: {e}")
    if fails:
        return False, "failed: " + ", ".join(fails)
    return True, "rope, gqa, causality, tied, gpt2 by hand, gguf roundtrip, dequant by hand"


if __name__ == "__main__":
    ok, msg = run_all()
    print(("PASS " if ok else "FAIL ") + msg)
    sys.exit(0 if ok else 1)
