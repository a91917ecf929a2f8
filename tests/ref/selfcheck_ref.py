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
  - newer architectures (gemma2, gemma3, phi3, MoE llama/qwen2moe/
    qwen3moe, gpt-oss): MoE with identical experts = the dense FFN (and the
    top-k tie rule), qwen2moe's shared expert = a wider dense FFN, windows
    of W >= T = none and a windowed one-layer model = the last W tokens
    alone, huge soft-cap = none, sinks of -1e30 = none, YaRN factor 1 =
    plain RoPE and factor 8 = HF's formula, phi3 fused qkv = split, RoPE
    and LongRoPE by hand, one- and three-token forwards written out
    element by element, act_quant of 3-D Q8_0/Q4_1 experts = dense.
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

    def deq(b, t, n):
        return gguf_np.dequantize(np.frombuffer(b, np.uint8), t, n)

    def low2(qs, j):
        # element j = 128 n + 32 k + l: bits 2k..2k+1 of qs[32 n + l]
        n, r = divmod(j, 128)
        return (qs[32 * n + r % 32] >> (2 * (r // 32))) & 3

    # Q2_K: scales[16] (scale | min << 4 per 16 elements), qs[64], d, dmin
    b = rnd(80) + f16b(d_) + f16b(0.125)
    sc, qs, d, dm = b[0:16], b[16:80], f16(b, 80), f16(b, 82)
    want = [f32(f32(d) * f32(sc[j // 16] & 15)) * f32(low2(qs, j))
            - f32(f32(dm) * f32(sc[j // 16] >> 4)) for j in range(256)]
    if not np.array_equal(deq(b, gguf_np.Q2_K, 256), np.array(want, np.float32)):
        fails.append("Q2_K by hand")
    # Q3_K: hmask[32], qs[64], scales[12], d; q = low2 - 4 unless bit j // 32
    # of hmask[j % 32]; scale k: nibble k // 8 of scales[k % 8] | 2 bits
    # (2 (k // 4)) of scales[8 + k % 4] << 4, minus 32
    b = rnd(108) + f16b(d_)
    hm, qs, s12, d = b[0:32], b[32:96], b[96:108], f16(b, 108)
    want = []
    for j in range(256):
        k = j // 16
        s6 = ((s12[k % 8] >> (4 * (k // 8))) & 15) | (((s12[8 + k % 4] >> (2 * (k // 4))) & 3) << 4)
        q = low2(qs, j) - (0 if (hm[j % 32] >> (j // 32)) & 1 else 4)
        want.append(f32(f32(d) * f32(s6 - 32)) * f32(q))
    if not np.array_equal(deq(b, gguf_np.Q3_K, 256), np.array(want, np.float32)):
        fails.append("Q3_K by hand")
    # IQ4_NL: d, qs[16]; element j: nibble j // 16 of qs[j % 16] indexes the codebook
    nl = [-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113]
    b = f16b(d_) + rnd(16)
    want = [f32(d_) * f32(nl[(b[2 + j % 16] >> (4 * (j // 16))) & 15]) for j in range(32)]
    if not np.array_equal(deq(b, gguf_np.IQ4_NL, 32), np.array(want, np.float32)):
        fails.append("IQ4_NL by hand")
    # IQ4_XS: d, scales_h (u16), scales_l[4], qs[128]; group g of 32: 6-bit
    # scale = nibble g % 2 of scales_l[g // 2] | bits 2g of scales_h << 4
    b = f16b(d_) + rnd(134)
    sh = struct.unpack("<H", b[2:4])[0]
    want = []
    for j in range(256):
        g, r = divmod(j, 32)
        ls = ((b[4 + g // 2] >> (4 * (g % 2))) & 15) | (((sh >> (2 * g)) & 3) << 4)
        q = nl[(b[8 + 16 * g + r % 16] >> (4 * (r // 16))) & 15]
        want.append(f32(f32(d_) * f32(ls - 32)) * f32(q))
    if not np.array_equal(deq(b, gguf_np.IQ4_XS, 256), np.array(want, np.float32)):
        fails.append("IQ4_XS by hand")
    # MXFP4: e, qs[16]; value = 2^(e - 128) * 2 * E2M1(code): code bit 3 the
    # sign, bits 0-2 index 0, 0.5, 1, 1.5, 2, 3, 4, 6
    e2m1 = [0, 0.5, 1, 1.5, 2, 3, 4, 6]
    for e in (0, 1, 100, 128, 250):
        b = bytes([e]) + rnd(16)
        want = []
        for j in range(32):
            c = (b[1 + j % 16] >> (4 * (j // 16))) & 15
            want.append(f32(math.ldexp(1.0, e - 128)) * f32((-2 if c & 8 else 2) * e2m1[c & 7]))
        if not np.array_equal(deq(b, gguf_np.MXFP4, 32), np.array(want, np.float32)):
            fails.append(f"MXFP4 by hand (e {e})")


# ------------------------------------------------------------ newer architectures
# gemma2, gemma3, phi3, MoE (llama, qwen2moe, qwen3moe, gpt-oss): each
# feature checked against a second formulation (a dense model, a by-hand
# loop, HF's YaRN formula, relative-position invariance).

def rand_model_ext(arch, rng, E=32, L=2, H=4, KVH=2, D=8, F=48, V=50, X=4, K=2,
                   tied=False, moe=True):
    """Random model of a newer arch ('llama'/'qwen2'/'qwen3' with moe=True:
    the expert form). Metadata beyond the basics set to make every feature
    act on short sequences (windows of 3, small soft-caps, YaRN ramp
    inside the rotated dims)."""
    md = {"general.architecture": arch, f"{arch}.embedding_length": E,
          f"{arch}.block_count": L, f"{arch}.attention.head_count": H,
          f"{arch}.attention.head_count_kv": KVH, f"{arch}.context_length": 64,
          f"{arch}.attention.key_length": D,
          f"{arch}.attention.layer_norm_rms_epsilon": 1e-5, f"{arch}.rope.freq_base": 100.0}

    def n(*shape, s=0.3):
        return rng.normal(0, s, shape)

    def norm(k):
        return 1 + 0.1 * rng.normal(size=k)
    w = {"token_embd.weight": n(V, E, s=0.5), "output_norm.weight": norm(E)}
    is_moe = arch in ("qwen2moe", "qwen3moe", "gpt-oss") or (arch in ("llama", "qwen3") and moe)
    if is_moe:
        md[f"{arch}.expert_count"] = X
        md[f"{arch}.expert_used_count"] = K
    if arch in ("gemma2", "gemma3"):
        md[f"{arch}.attention.sliding_window"] = 3
    if arch == "gemma2":
        md["gemma2.attn_logit_softcapping"] = 2.0
        md["gemma2.final_logit_softcapping"] = 3.0
    if arch == "gemma3":
        md["gemma3.rope.freq_base"] = 1000.0
        md["gemma3.rope.scaling.type"] = "linear"
        md["gemma3.rope.scaling.factor"] = 2.0
    if arch == "phi3":
        md["phi3.rope.scaling.original_context_length"] = 32
        md["phi3.rope.scaling.attn_factor"] = 1.2
        w["rope_factors_long.weight"] = 1 + 3 * rng.random(D // 2)
        w["rope_factors_short.weight"] = 1 + 0.5 * rng.random(D // 2)
    if arch == "gpt-oss":
        md["gpt-oss.attention.sliding_window"] = 3
        md["gpt-oss.rope.scaling.type"] = "yarn"
        md["gpt-oss.rope.scaling.factor"] = 8.0
        md["gpt-oss.rope.scaling.original_context_length"] = 4096
    for il in range(L):
        p = f"blk.{il}."
        w[p + "attn_norm.weight"] = norm(E)
        w[p + "attn_output.weight"] = n(E, H * D)
        if arch == "phi3":
            w[p + "attn_qkv.weight"] = n((H + 2 * KVH) * D, E)
        else:
            w[p + "attn_q.weight"] = n(H * D, E)
            w[p + "attn_k.weight"] = n(KVH * D, E)
            w[p + "attn_v.weight"] = n(KVH * D, E)
        if arch in ("qwen2", "qwen2moe", "gpt-oss"):
            w[p + "attn_q.bias"] = n(H * D, s=0.1)
            w[p + "attn_k.bias"] = n(KVH * D, s=0.1)
            w[p + "attn_v.bias"] = n(KVH * D, s=0.1)
        if arch in ("qwen3", "qwen3moe", "gemma3"):
            w[p + "attn_q_norm.weight"] = norm(D)
            w[p + "attn_k_norm.weight"] = norm(D)
        if arch in ("gemma2", "gemma3"):
            w[p + "post_attention_norm.weight"] = norm(E)
            w[p + "post_ffw_norm.weight"] = norm(E)
        if arch == "gpt-oss":
            w[p + "attn_output.bias"] = n(E, s=0.1)
            w[p + "attn_sinks.weight"] = n(H, s=1.0)
            w[p + "post_attention_norm.weight"] = norm(E)
        else:
            w[p + "ffn_norm.weight"] = norm(E)
        if is_moe:
            w[p + "ffn_gate_inp.weight"] = n(X, E, s=1.0)
            w[p + "ffn_gate_exps.weight"] = n(X, F, E)
            w[p + "ffn_up_exps.weight"] = n(X, F, E)
            w[p + "ffn_down_exps.weight"] = n(X, E, F)
            if arch == "gpt-oss":
                w[p + "ffn_gate_inp.bias"] = n(X, s=0.5)
                w[p + "ffn_gate_exps.bias"] = n(X, F, s=0.1)
                w[p + "ffn_up_exps.bias"] = n(X, F, s=0.1)
                w[p + "ffn_down_exps.bias"] = n(X, E, s=0.1)
            if arch == "qwen2moe":
                w[p + "ffn_gate_inp_shexp.weight"] = n(E, s=0.5)
                w[p + "ffn_gate_shexp.weight"] = n(F + 8, E)
                w[p + "ffn_up_shexp.weight"] = n(F + 8, E)
                w[p + "ffn_down_shexp.weight"] = n(E, F + 8)
        elif arch == "phi3":
            w[p + "ffn_up.weight"] = n(2 * F, E)
            w[p + "ffn_down.weight"] = n(E, F)
        else:
            w[p + "ffn_gate.weight"] = n(F, E)
            w[p + "ffn_up.weight"] = n(F, E)
            w[p + "ffn_down.weight"] = n(E, F)
    if not tied:
        w["output.weight"] = n(V, E)
    return md, w


EXT_ARCHS = ("gemma2", "gemma3", "phi3", "llama", "qwen2moe", "qwen3moe", "gpt-oss")
TOKS = [7, 2, 9, 4, 4, 1, 3, 8]


def _maxdiff(a, b):
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))))


def check_ext_causal_tied(fails):
    rng = np.random.default_rng(11)
    for arch in EXT_ARCHS:
        md, w = rand_model_ext(arch, rng, tied=True)
        m = RefModel(FakeG(md, w))
        full = m.forward(TOKS)
        if not np.all(np.isfinite(full)) or _maxdiff(full[:4], m.forward(TOKS[:4])) > 1e-9:
            fails.append(f"causal {arch}")
        w2 = dict(w)
        w2["output.weight"] = w["token_embd.weight"].copy()
        if _maxdiff(full, RefModel(FakeG(md, w2)).forward(TOKS)) > 1e-12:
            fails.append(f"tied {arch}")


def check_ext_gqa(fails):
    """n_kv_heads < n_heads equals repeated K/V heads (with sinks, q/k
    norms, windows, soft-caps and YaRN in the way)."""
    rng = np.random.default_rng(12)
    H, KVH, D = 6, 2, 8
    for arch in ("gemma2", "gemma3", "phi3", "qwen2moe", "gpt-oss"):
        md, w = rand_model_ext(arch, rng, H=H, KVH=KVH, D=D)
        if arch == "phi3":  # split form, so that K/V rows can be repeated
            for il in range(2):
                p = f"blk.{il}."
                qkv = w.pop(p + "attn_qkv.weight")
                w[p + "attn_q.weight"] = qkv[:H * D]
                w[p + "attn_k.weight"] = qkv[H * D:(H + KVH) * D]
                w[p + "attn_v.weight"] = qkv[(H + KVH) * D:]
        a = RefModel(FakeG(md, w)).forward(TOKS)
        md2, w2 = dict(md), dict(w)
        md2[f"{arch}.attention.head_count_kv"] = H
        for il in range(2):
            for nm in ("attn_k.weight", "attn_v.weight", "attn_k.bias", "attn_v.bias"):
                k = f"blk.{il}.{nm}"
                if k in w:
                    blocks = np.split(w[k], KVH, axis=0)
                    w2[k] = np.concatenate([b for b in blocks for _ in range(H // KVH)], axis=0)
        if _maxdiff(a, RefModel(FakeG(md2, w2)).forward(TOKS)) > 1e-9:
            fails.append(f"gqa {arch}")


def _dense_from_experts(md, w, arch_to, experts_scale):
    """Dense model whose FFN is sum_e scale_e * FFN_e: the experts' hidden
    units side by side, the up rows of expert e times scale_e."""
    arch_from = md["general.architecture"]
    md2 = {k.replace(arch_from + ".", arch_to + ".", 1): v for k, v in md.items()
           if "expert" not in k}
    md2["general.architecture"] = arch_to
    w2 = {}
    for k, v in w.items():
        if "exps" in k or "ffn_gate_inp" in k or "shexp" in k:
            continue
        w2[k] = v
    L = md[f"{arch_from}.block_count"]
    for il in range(L):
        p = f"blk.{il}."
        es = [e for e, s in enumerate(experts_scale) if s]
        w2[p + "ffn_gate.weight"] = np.concatenate([w[p + "ffn_gate_exps.weight"][e] for e in es])
        w2[p + "ffn_up.weight"] = np.concatenate([w[p + "ffn_up_exps.weight"][e] * experts_scale[e]
                                                  for e in es])
        w2[p + "ffn_down.weight"] = np.concatenate([w[p + "ffn_down_exps.weight"][e] for e in es], axis=1)
    return md2, w2


def check_moe_dense(fails):
    """Identical experts with renormalised top-k weights equal the dense
    model with that FFN (llama, qwen3moe; K = 1 and 2). All-equal router
    logits: the tie rule picks experts 0..K-1, each weighted 1/K."""
    rng = np.random.default_rng(13)
    for arch, dense in (("llama", "llama"), ("qwen3moe", "qwen3")):
        for K in (1, 2):
            md, w = rand_model_ext(arch, rng, K=K, X=4)
            for il in range(2):
                p = f"blk.{il}."
                for nm in ("ffn_gate_exps.weight", "ffn_up_exps.weight", "ffn_down_exps.weight"):
                    w[p + nm] = np.repeat(w[p + nm][:1], 4, axis=0)
            a = RefModel(FakeG(md, w)).forward(TOKS)
            md2, w2 = _dense_from_experts(md, w, dense, [1.0, 0, 0, 0])
            if _maxdiff(a, RefModel(FakeG(md2, w2)).forward(TOKS)) > 1e-9:
                fails.append(f"moe identical experts = dense {arch} K={K}")
        # ties: every router row the same -> probabilities equal -> experts 0, 1
        md, w = rand_model_ext(arch, rng, K=2, X=4)
        for il in range(2):
            w[f"blk.{il}.ffn_gate_inp.weight"] = np.repeat(w[f"blk.{il}.ffn_gate_inp.weight"][:1], 4, axis=0)
        a = RefModel(FakeG(md, w)).forward(TOKS)
        md2, w2 = _dense_from_experts(md, w, dense, [0.5, 0.5, 0, 0])
        if _maxdiff(a, RefModel(FakeG(md2, w2)).forward(TOKS)) > 1e-9:
            fails.append(f"moe tie rule {arch}")
    from ref_model import topk_index
    if list(topk_index([1.0, 3.0, 3.0, 2.0, 3.0], 2)) != [1, 2]:
        fails.append("topk ties")


def check_qwen2moe(fails):
    """qwen2moe: K = X identical experts A (softmax weights sum to 1) plus
    the shared expert B with a zero gate vector (sigmoid 0.5) equals the
    dense qwen2 with FFN A + 0.5 B. And one token by hand with K < X
    (weights not renormalised) and a non-zero shared gate."""
    rng = np.random.default_rng(14)
    md, w = rand_model_ext("qwen2moe", rng, K=4, X=4)
    for il in range(2):
        p = f"blk.{il}."
        for nm in ("ffn_gate_exps.weight", "ffn_up_exps.weight", "ffn_down_exps.weight"):
            w[p + nm] = np.repeat(w[p + nm][:1], 4, axis=0)
        w[p + "ffn_gate_inp_shexp.weight"] = np.zeros(32)
    a = RefModel(FakeG(md, w)).forward(TOKS)
    md2, w2 = _dense_from_experts(md, w, "qwen2", [1.0, 0, 0, 0])
    for il in range(2):
        p = f"blk.{il}."
        w2[p + "ffn_gate.weight"] = np.concatenate([w2[p + "ffn_gate.weight"], w[p + "ffn_gate_shexp.weight"]])
        w2[p + "ffn_up.weight"] = np.concatenate([w2[p + "ffn_up.weight"], 0.5 * w[p + "ffn_up_shexp.weight"]])
        w2[p + "ffn_down.weight"] = np.concatenate([w2[p + "ffn_down.weight"], w[p + "ffn_down_shexp.weight"]],
                                                   axis=1)
    if _maxdiff(a, RefModel(FakeG(md2, w2)).forward(TOKS)) > 1e-9:
        fails.append("qwen2moe = dense qwen2 with A + B/2")

    # one token, one layer, by hand
    md, w = rand_model_ext("qwen2moe", rng, L=1, K=2, X=4)
    m = RefModel(FakeG(md, w))
    p = "blk.0."

    def rms(v, g):
        return v / math.sqrt(sum(t * t for t in v) / len(v) + 1e-5) * g

    def sil(t):
        return t / (1 + math.exp(-t))
    x = w["token_embd.weight"][5]
    h = rms(x, w[p + "attn_norm.weight"])
    v = w[p + "attn_v.weight"] @ h + w[p + "attn_v.bias"]     # one position: output = v
    v = np.concatenate([v[0:8], v[0:8], v[8:16], v[8:16]])      # H=4 heads on KVH=2
    x = x + w[p + "attn_output.weight"] @ v
    h = rms(x, w[p + "ffn_norm.weight"])
    lg = [float(r @ h) for r in w[p + "ffn_gate_inp.weight"]]
    mx = max(lg)
    ex = [math.exp(t - mx) for t in lg]
    pr = [t / sum(ex) for t in ex]
    best = sorted(range(4), key=lambda e: -pr[e])[:2]
    y = np.zeros(32)
    for e in best:
        gte = w[p + "ffn_gate_exps.weight"][e] @ h
        up = w[p + "ffn_up_exps.weight"][e] @ h
        y += pr[e] * (w[p + "ffn_down_exps.weight"][e] @ np.array([sil(a) * b for a, b in zip(gte, up)]))
    gs = 1 / (1 + math.exp(-float(w[p + "ffn_gate_inp_shexp.weight"] @ h)))
    gte, up = w[p + "ffn_gate_shexp.weight"] @ h, w[p + "ffn_up_shexp.weight"] @ h
    y += gs * (w[p + "ffn_down_shexp.weight"] @ np.array([sil(a) * b for a, b in zip(gte, up)]))
    x = rms(x + y, w["output_norm.weight"])
    if _maxdiff(m.forward([5])[0], w["output.weight"] @ x) > 1e-9:
        fails.append("qwen2moe one-token by hand")


def check_window(fails):
    """W >= T equals no window; a one-layer phi3 with window W gives at
    position p what the unwindowed model gives at the end of the last W
    tokens alone (RoPE is relative, layer 0 sees only embeddings); the
    sliding layers are llama.cpp's patterns."""
    rng = np.random.default_rng(15)
    T = len(TOKS)
    md, w = rand_model_ext("gemma2", rng, L=4)
    md1, md2 = dict(md), dict(md)
    md1["gemma2.attention.sliding_window"] = T
    md2["gemma2.attention.sliding_window"] = 10 ** 6
    m1 = RefModel(FakeG(md1, w))
    if _maxdiff(m1.forward(TOKS), RefModel(FakeG(md2, w)).forward(TOKS)) > 1e-12:
        fails.append("window >= T gemma2")
    if _maxdiff(RefModel(FakeG(md, w)).forward(TOKS), m1.forward(TOKS)) < 1e-6:
        fails.append("window 3 has no effect gemma2")
    if m1.swa != [True, False, True, False]:
        fails.append("gemma2 swa pattern")
    md, w = rand_model_ext("gemma3", rng, L=7)
    if RefModel(FakeG(md, w)).swa != [True] * 5 + [False, True]:
        fails.append("gemma3 swa pattern")
    md, w = rand_model_ext("gpt-oss", rng, L=3)
    if RefModel(FakeG(md, w)).swa != [True, False, True]:
        fails.append("gpt-oss swa pattern")
    md, w = rand_model_ext("phi3", rng, L=1)
    full = RefModel(FakeG(md, w)).forward(TOKS)
    mdw = dict(md)
    mdw["phi3.attention.sliding_window"] = T
    if _maxdiff(RefModel(FakeG(mdw, w)).forward(TOKS), full) > 1e-12:
        fails.append("window >= T phi3")
    W = 3
    mdw["phi3.attention.sliding_window"] = W
    win = RefModel(FakeG(mdw, w)).forward(TOKS)
    m0 = RefModel(FakeG(md, w))
    for p in range(T):
        want = m0.forward(TOKS[max(0, p - W + 1):p + 1])[-1]
        if _maxdiff(win[p], want) > 1e-9:
            fails.append(f"phi3 window = last W tokens alone (p={p})")
            break


def check_softcap(fails):
    """gemma2: a huge cap equals no cap (0 = none, an oracle convention);
    the final cap is c tanh(uncapped / c)."""
    rng = np.random.default_rng(16)
    md, w = rand_model_ext("gemma2", rng)
    md0, mdh = dict(md), dict(md)
    for k in ("attn_logit_softcapping", "final_logit_softcapping"):
        md0[f"gemma2.{k}"] = 0.0
        mdh[f"gemma2.{k}"] = 1e12
    none = RefModel(FakeG(md0, w)).forward(TOKS)
    if _maxdiff(none, RefModel(FakeG(mdh, w)).forward(TOKS)) > 1e-9:
        fails.append("softcap huge = none")
    mdf = dict(md0)
    mdf["gemma2.final_logit_softcapping"] = 3.0
    if _maxdiff(RefModel(FakeG(mdf, w)).forward(TOKS), 3.0 * np.tanh(none / 3.0)) > 1e-12:
        fails.append("final softcap")
    if _maxdiff(RefModel(FakeG(md, w)).forward(TOKS), RefModel(FakeG(mdf, w)).forward(TOKS)) < 1e-6:
        fails.append("attn softcap 2 has no effect")
    # defaults (keys absent): 50 and 30
    mdd = {k: v for k, v in md.items() if "softcapping" not in k}
    m = RefModel(FakeG(mdd, w))
    if (m.softcap_attn, m.softcap_final, m.window) != (50.0, 30.0, 3):
        fails.append("gemma2 defaults")


def check_gemma_by_hand(fails):
    """One token, one layer gemma2 and gemma3 by hand (embedding scale,
    post norms, GELU-tanh gate, final cap); the attention-scale rule."""
    rng = np.random.default_rng(17)
    for arch in ("gemma2", "gemma3"):
        md, w = rand_model_ext(arch, rng, L=1, tied=True)
        m = RefModel(FakeG(md, w))
        p = "blk.0."

        def rms(v, g):
            return v / math.sqrt(sum(t * t for t in v) / len(v) + 1e-5) * g
        x = w["token_embd.weight"][6] * math.sqrt(32)
        h = rms(x, w[p + "attn_norm.weight"])
        v = w[p + "attn_v.weight"] @ h
        v = np.concatenate([v[0:8], v[0:8], v[8:16], v[8:16]])
        x = x + rms(w[p + "attn_output.weight"] @ v, w[p + "post_attention_norm.weight"])
        h = rms(x, w[p + "ffn_norm.weight"])
        g, u = w[p + "ffn_gate.weight"] @ h, w[p + "ffn_up.weight"] @ h
        a = np.array([0.5 * s * (1 + math.tanh(math.sqrt(2 / math.pi) * (s + 0.044715 * s ** 3))) * t
                      for s, t in zip(g, u)])
        x = x + rms(w[p + "ffn_down.weight"] @ a, w[p + "post_ffw_norm.weight"])
        lg = w["token_embd.weight"] @ rms(x, w["output_norm.weight"])
        if arch == "gemma2":
            lg = np.array([3.0 * math.tanh(t / 3.0) for t in lg])
        if _maxdiff(m.forward([6])[0], lg) > 1e-9:
            fails.append(f"{arch} one-token by hand")
        # scale rule: E=48, H=4, D=8 -> E//H = 12 at the 27B layer count
        md, w = rand_model_ext(arch, rng, E=48, L=1)
        if abs(RefModel(FakeG(md, w)).q_scale - 1 / math.sqrt(8)) > 1e-15:
            fails.append(f"{arch} attention scale")
        md[f"{arch}.block_count"] = 46 if arch == "gemma2" else 62
        if abs(RefModel(FakeG(md, w)).q_scale - 1 / math.sqrt(12)) > 1e-15:
            fails.append(f"{arch} 27B attention scale")
        md[f"{arch}.attention.scale"] = 0.3
        if RefModel(FakeG(md, w)).q_scale != 0.3:
            fails.append(f"{arch} attention.scale key")


def check_gemma3_rope(fails):
    """gemma3 rotation by hand: sliding layers base 10000, no scaling;
    global layers rope.freq_base with linear scaling (positions / factor)."""
    rng = np.random.default_rng(18)
    md, w = rand_model_ext("gemma3", rng, L=6)
    m = RefModel(FakeG(md, w))
    pos = np.arange(5) + 2
    x = rng.normal(size=(5, 2, 8))
    for il, base, fs in ((0, 10000.0, 1.0), (5, 1000.0, 0.5)):
        got = m.rope_neox(x, *m._rope_for(il, pos))
        want = np.empty_like(x)
        for t in range(5):
            for hh in range(2):
                for i in range(4):
                    th = fs * pos[t] * base ** (-2.0 * i / 8)
                    z = complex(x[t, hh, i], x[t, hh, i + 4]) * complex(math.cos(th), math.sin(th))
                    want[t, hh, i], want[t, hh, i + 4] = z.real, z.imag
        if _maxdiff(got, want) > 1e-12:
            fails.append(f"gemma3 rope layer {il}")


def check_phi3(fails):
    """phi3: fused qkv equals the same rows split into q/k/v; LongRoPE:
    long factors when n_ctx > original_context_length, short otherwise,
    rotation by hand with the factors and attn_factor."""
    rng = np.random.default_rng(19)
    md, w = rand_model_ext("phi3", rng)
    a = RefModel(FakeG(md, w)).forward(TOKS)
    w2 = dict(w)
    for il in range(2):
        p = f"blk.{il}."
        qkv = w2.pop(p + "attn_qkv.weight")
        w2[p + "attn_q.weight"], w2[p + "attn_k.weight"], w2[p + "attn_v.weight"] = \
            qkv[:32], qkv[32:48], qkv[48:64]
    if _maxdiff(a, RefModel(FakeG(md, w2)).forward(TOKS)) > 1e-12:
        fails.append("phi3 fused qkv = split")
    pos = np.arange(4) + 1
    x = rng.normal(size=(4, 2, 8))
    for n_ctx, fname in ((None, "rope_factors_long.weight"), (32, "rope_factors_short.weight"),
                         (33, "rope_factors_long.weight")):
        m = RefModel(FakeG(md, w), n_ctx=n_ctx)
        if m.rope_factors_name != fname:
            fails.append(f"phi3 factor choice n_ctx={n_ctx}")
            continue
        got = m.rope_neox(x, *m._rope_for(0, pos))
        ff = w[fname]
        want = np.empty_like(x)
        for t in range(4):
            for hh in range(2):
                for i in range(4):
                    th = pos[t] * 100.0 ** (-2.0 * i / 8) / ff[i]
                    z = complex(x[t, hh, i], x[t, hh, i + 4]) * complex(math.cos(th), math.sin(th)) * 1.2
                    want[t, hh, i], want[t, hh, i + 4] = z.real, z.imag
        if _maxdiff(got, want) > 1e-12:
            fails.append(f"phi3 longrope n_ctx={n_ctx}")


def check_yarn(fails):
    """YaRN with factor 1 equals plain RoPE; with factor 8 it equals HF's
    formulation (inverse frequencies blended by the ramp, cos/sin times
    0.1 ln(factor) + 1)."""
    rng = np.random.default_rng(20)
    md, w = rand_model_ext("gpt-oss", rng)
    md1, md0 = dict(md), {k: v for k, v in md.items() if ".rope.scaling." not in k}
    md1["gpt-oss.rope.scaling.factor"] = 1.0
    if _maxdiff(RefModel(FakeG(md1, w)).forward(TOKS), RefModel(FakeG(md0, w)).forward(TOKS)) > 1e-12:
        fails.append("yarn factor 1 = plain")
    m = RefModel(FakeG(md, w))
    pos = np.arange(0, 3000, 97)
    c, s = m.rope_cos_sin(pos, m.rope_global)
    # HF _compute_yarn_parameters (float64): dim 8, base 100, factor 8, orig 4096
    dim, base, factor, orig = 8, 100.0, 8.0, 4096

    def corr(nrot):
        return dim * math.log(orig / (nrot * 2 * math.pi)) / (2 * math.log(base))
    low, high = max(math.floor(corr(32)), 0), min(math.ceil(corr(1)), dim - 1)
    if (low, high) != m.rope_global["corr"]:
        fails.append(f"yarn corr dims {m.rope_global['corr']} != {(low, high)}")
    pf = base ** (np.arange(0, dim, 2) / dim)
    ramp = np.clip((np.arange(dim // 2) - low) / (high - low), 0, 1)
    extrap = 1 - ramp
    inv = (1 / (factor * pf)) * (1 - extrap) + (1 / pf) * extrap
    att = 0.1 * math.log(factor) + 1
    ang = pos[:, None] * inv[None, :]
    if _maxdiff(c, np.cos(ang) * att) > 1e-12 or _maxdiff(s, np.sin(ang) * att) > 1e-12:
        fails.append("yarn = HF formula")


def check_gptoss(fails):
    """gpt-oss: sinks of -1e30 equal no sinks; one token, one layer by
    hand (sink weight, YaRN mscale at position 0, router top-k of the
    logits with softmax over the k, clamped SwiGLU with biases)."""
    rng = np.random.default_rng(21)
    md, w = rand_model_ext("gpt-oss", rng)
    w0 = {k: v for k, v in w.items() if "attn_sinks" not in k}
    wi = dict(w)
    for il in range(2):
        wi[f"blk.{il}.attn_sinks.weight"] = np.full(4, -1e30)
    if _maxdiff(RefModel(FakeG(md, wi)).forward(TOKS), RefModel(FakeG(md, w0)).forward(TOKS)) > 1e-12:
        fails.append("sinks -inf = none")
    if _maxdiff(RefModel(FakeG(md, w)).forward(TOKS), RefModel(FakeG(md, w0)).forward(TOKS)) < 1e-6:
        fails.append("sinks have no effect")

    md, w = rand_model_ext("gpt-oss", rng, L=1, K=2, X=4)
    p = "blk.0."
    for e in range(4):   # make the clamps bite
        w[p + "ffn_gate_exps.weight"][e] *= 6
        w[p + "ffn_up_exps.weight"][e] *= 6

    def rms(v, g):
        return v / math.sqrt(sum(t * t for t in v) / len(v) + 1e-5) * g
    x = w["token_embd.weight"][3]
    h = rms(x, w[p + "attn_norm.weight"])
    q = w[p + "attn_q.weight"] @ h + w[p + "attn_q.bias"]
    k = w[p + "attn_k.weight"] @ h + w[p + "attn_k.bias"]
    v = w[p + "attn_v.weight"] @ h + w[p + "attn_v.bias"]
    ms = 0.1 * math.log(8.0) + 1     # position 0: rotation = identity times mscale
    o = []
    for hh in range(4):
        kh = hh // 2
        sc = ms * ms * float(q[8 * hh:8 * hh + 8] @ k[8 * kh:8 * kh + 8]) / math.sqrt(8)
        sk = float(w[p + "attn_sinks.weight"][hh])
        o.extend(v[8 * kh:8 * kh + 8] / (1 + math.exp(sk - sc)))
    x = x + w[p + "attn_output.weight"] @ np.array(o) + w[p + "attn_output.bias"]
    h = rms(x, w[p + "post_attention_norm.weight"])
    lg = [float(r @ h) + b for r, b in zip(w[p + "ffn_gate_inp.weight"], w[p + "ffn_gate_inp.bias"])]
    best = sorted(range(4), key=lambda e: -lg[e])[:2]
    z = [math.exp(lg[e] - lg[best[0]]) for e in best]
    y = np.zeros(32)
    n_clamped = 0
    for e, ze in zip(best, z):
        gte = w[p + "ffn_gate_exps.weight"][e] @ h + w[p + "ffn_gate_exps.bias"][e]
        up = w[p + "ffn_up_exps.weight"][e] @ h + w[p + "ffn_up_exps.bias"][e]
        act = []
        for a, b in zip(gte, up):
            n_clamped += (a > 7) + (abs(b) > 7)
            a, b = min(a, 7.0), max(-7.0, min(b, 7.0))
            act.append(a / (1 + math.exp(-1.702 * a)) * (b + 1))
        y += ze / sum(z) * (w[p + "ffn_down_exps.weight"][e] @ np.array(act) + w[p + "ffn_down_exps.bias"][e])
    x = rms(x + y, w["output_norm.weight"])
    if n_clamped == 0:
        fails.append("gpt-oss by hand: no clamp exercised")
    if _maxdiff(RefModel(FakeG(md, w)).forward([3])[0], w["output.weight"] @ x) > 1e-9:
        fails.append("gpt-oss one-token by hand")


def _q8_0_bytes(rng, rows, cols):
    out = bytearray()
    for _ in range(rows * cols // 32):
        out += np.float16(rng.uniform(0.002, 0.01)).tobytes()
        out += rng.integers(-127, 128, 32, dtype=np.int8).tobytes()
    return bytes(out)


def _q4_1_bytes(rng, rows, cols):
    out = bytearray()
    for _ in range(rows * cols // 32):
        out += np.float16(rng.uniform(0.005, 0.02)).tobytes()
        out += np.float16(rng.uniform(-0.1, -0.05)).tobytes()
        out += rng.integers(0, 256, 16, dtype=np.uint8).tobytes()
    return bytes(out)


def check_moe_act_quant(fails):
    """Real GGUF files: 3-D expert tensors read as (X, rows, cols); with
    act_quant, Q8_0 and Q4_1 experts (identical) under renormalised
    routing equal the dense llama holding the same blocks."""
    rng = np.random.default_rng(22)
    E, F, V, X, H, D = 64, 64, 40, 4, 2, 32
    for qt, make in ((gguf_np.Q8_0, _q8_0_bytes), (gguf_np.Q4_1, _q4_1_bytes)):
        f32 = []

        def add(name, a):
            a = np.asarray(a, np.float32)
            f32.append((name, gguf_np.F32, tuple(reversed(a.shape)), a.tobytes()))
        add("token_embd.weight", rng.normal(0, 0.5, (V, E)))
        add("output_norm.weight", 1 + 0.1 * rng.normal(size=E))
        add("output.weight", rng.normal(0, 0.3, (V, E)))
        p = "blk.0."
        add(p + "attn_norm.weight", 1 + 0.1 * rng.normal(size=E))
        add(p + "ffn_norm.weight", 1 + 0.1 * rng.normal(size=E))
        for nm in ("attn_q", "attn_k", "attn_v", "attn_output"):
            add(p + nm + ".weight", rng.normal(0, 0.2, (E, E)))
        gate, up, down = make(rng, F, E), make(rng, F, E), make(rng, E, F)
        dense = [(p + "ffn_gate.weight", qt, (E, F), gate), (p + "ffn_up.weight", qt, (E, F), up),
                 (p + "ffn_down.weight", qt, (F, E), down)]
        moe = [(p + "ffn_gate_exps.weight", qt, (E, F, X), gate * X),
               (p + "ffn_up_exps.weight", qt, (E, F, X), up * X),
               (p + "ffn_down_exps.weight", qt, (F, E, X), down * X),
               (p + "ffn_gate_inp.weight", gguf_np.F32, (E, X),
                rng.normal(0, 1, (X, E)).astype(np.float32).tobytes())]
        md = {"general.architecture": "llama", "llama.embedding_length": E, "llama.block_count": 1,
              "llama.attention.head_count": H, "llama.attention.head_count_kv": H,
              "llama.context_length": 64, "llama.attention.layer_norm_rms_epsilon": 1e-5,
              "llama.rope.freq_base": 100.0, "llama.feed_forward_length": F}
        mdm = dict(md, **{"llama.expert_count": X, "llama.expert_used_count": 2})
        with tempfile.TemporaryDirectory() as tmp:
            pd, pm = os.path.join(tmp, "d.gguf"), os.path.join(tmp, "m.gguf")
            write_gguf(pd, md, f32 + dense)
            write_gguf(pm, mdm, f32 + moe)
            gd, gm = gguf_np.load(pd), gguf_np.load(pm)
            if gm.tensor(p + "ffn_down_exps.weight").shape != (X, E, F) or not np.array_equal(
                    gm.tensor(p + "ffn_down_exps.weight")[2], gd.tensor(p + "ffn_down.weight")):
                fails.append(f"gguf 3-D {gguf_np.type_name(qt)}")
            for aq in (False, True):
                a = RefModel(gd, act_quant=aq).forward(TOKS)
                b = RefModel(gm, act_quant=aq).forward(TOKS)
                if _maxdiff(a, b) > 1e-9:
                    fails.append(f"moe act_quant={aq} {gguf_np.type_name(qt)}")
            mq = RefModel(gm, act_quant=True)
            if gguf_np.type_name(qt) == "Q4_1" and mq.wmin[p + "ffn_up_exps.weight"].shape != (X, F, E // 32):
                fails.append("wmin 3-D shape")
            if _maxdiff(RefModel(gm).forward(TOKS), mq.forward(TOKS)) < 1e-9:
                fails.append(f"act_quant has no effect {gguf_np.type_name(qt)}")
            gd.close()
            gm.close()


def check_multi_token_by_hand(fails):
    """Three tokens, one layer, every product written out: phi3 (LongRoPE
    long factors, attn_factor 1.2, q / sqrt(D), silu(first half) * second
    half of ffn_up) and gemma2 (q * 1/sqrt(D), attention soft-cap 2 on the
    scaled scores, window 3, final cap 3)."""
    rng = np.random.default_rng(23)
    toks = [4, 9, 2]
    for arch in ("phi3", "gemma2"):
        md, w = rand_model_ext(arch, rng, L=1, H=2, KVH=1, D=8, E=16, F=12)
        p = "blk.0."
        D = 8

        def rms(v, g):
            return v / math.sqrt(sum(t * t for t in v) / len(v) + 1e-5) * g

        def rot(vec, pos, base, ff, ms):
            out = list(vec)
            for i in range(4):
                th = pos * base ** (-2.0 * i / D) / ff[i]
                z = complex(vec[i], vec[i + 4]) * complex(math.cos(th), math.sin(th)) * ms
                out[i], out[i + 4] = z.real, z.imag
            return np.array(out)
        xs = [w["token_embd.weight"][t] * (math.sqrt(16) if arch == "gemma2" else 1.0) for t in toks]
        hs = [rms(x, w[p + "attn_norm.weight"]) for x in xs]
        if arch == "phi3":
            W = w[p + "attn_qkv.weight"]
            Wq, Wk, Wv = W[:16], W[16:24], W[24:32]
            ff, ms, base = w["rope_factors_long.weight"], 1.2, 100.0
        else:
            Wq, Wk, Wv = w[p + "attn_q.weight"], w[p + "attn_k.weight"], w[p + "attn_v.weight"]
            ff, ms, base = [1.0] * 4, 1.0, 100.0
        ks = [rot(Wk @ h, t, base, ff, ms) for t, h in enumerate(hs)]
        vs = [Wv @ h for h in hs]
        out = []
        for t, h in enumerate(hs):
            q = Wq @ h
            o = []
            for hh in range(2):
                qh = rot(q[8 * hh:8 * hh + 8], t, base, ff, ms) / math.sqrt(D)
                sc = []
                for u in range(t + 1):
                    s = float(qh @ ks[u])
                    if arch == "gemma2":
                        s = 2.0 * math.tanh(s / 2.0)
                    sc.append(s)
                mx = max(sc)
                e = [math.exp(s - mx) for s in sc]
                o.extend(sum(e[u] / sum(e) * vs[u] for u in range(t + 1)))
            a = w[p + "attn_output.weight"] @ np.array(o)
            if arch == "gemma2":
                a = rms(a, w[p + "post_attention_norm.weight"])
            x = xs[t] + a
            h2 = rms(x, w[p + "ffn_norm.weight"])
            if arch == "phi3":
                up = w[p + "ffn_up.weight"] @ h2
                act = np.array([g / (1 + math.exp(-g)) * u for g, u in zip(up[:12], up[12:])])
                x = x + w[p + "ffn_down.weight"] @ act
            else:
                g, u = w[p + "ffn_gate.weight"] @ h2, w[p + "ffn_up.weight"] @ h2
                act = np.array([0.5 * a * (1 + math.tanh(math.sqrt(2 / math.pi) * (a + 0.044715 * a ** 3))) * b
                                for a, b in zip(g, u)])
                x = x + rms(w[p + "ffn_down.weight"] @ act, w[p + "post_ffw_norm.weight"])
            lg = w["output.weight"] @ rms(x, w["output_norm.weight"])
            if arch == "gemma2":
                lg = np.array([3.0 * math.tanh(v / 3.0) for v in lg])
            out.append(lg)
        if _maxdiff(RefModel(FakeG(md, w)).forward(toks), np.array(out)) > 1e-9:
            fails.append(f"{arch} three tokens by hand")


EXT_CHECKS = (check_ext_causal_tied, check_ext_gqa, check_moe_dense, check_qwen2moe, check_window,
              check_softcap, check_gemma_by_hand, check_gemma3_rope, check_phi3, check_yarn,
              check_gptoss, check_moe_act_quant, check_multi_token_by_hand)
EXT_MSG = ("newer archs: causality, tied, gqa, moe = dense (identical experts, ties), qwen2moe "
           "shared expert + by hand, windows, soft-caps, gemma by hand + scale rule, gemma3 rope, "
           "phi3 fused qkv + LongRoPE, YaRN (factor 1, HF formula), gpt-oss sinks + by hand, "
           "MoE act_quant on 3-D Q8_0/Q4_1, phi3/gemma2 three tokens by hand")


def run_all():
    fails = []
    for f in (check_rope, check_gqa, check_causal_tied, check_gguf_roundtrip,
              check_dequant_by_hand) + EXT_CHECKS:
        try:
            f(fails)
        except Exception as e:
            fails.append(f"{f.__name__}: {type(e).__name__}: {e}")
    if fails:
        return False, "failed: " + ", ".join(fails)
    return True, ("rope, gqa, causality, tied, gpt2 by hand, gguf roundtrip, dequant by hand; "
                  + EXT_MSG)


if __name__ == "__main__":
    ok, msg = run_all()
    print(("PASS " if ok else "FAIL ") + msg)
    sys.exit(0 if ok else 1)
