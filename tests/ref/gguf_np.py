"""gguf_np.py - an independent GGUF v2/v3 reader in NumPy (test oracle).

Written from the format definition (ggml docs/gguf.md) and the block
layouts of ggml-common.h / dequantize_row_* in ggml-quants.c, not from
cgpt's C code, so that it can check the C reader and kernels.

    g = gguf_np.load(path)
    g.version, g.metadata["llama.block_count"], g.alignment
    g.tensors["token_embd.weight"]  -> TensorInfo(name, ne, type, offset, nbytes)
    g.tensor("token_embd.weight")   -> float32 array, shape reversed to
                                       row-major: (ne[1], ne[0]) for 2-D
    dequantize(raw_uint8, type, n)  -> float32 array of n elements

Dequantization is vectorised over blocks and done in float32 with the
operation order of ggml's scalar reference, so results are bit-exact with
any faithful implementation (no fused multiply-add).
"""

import mmap
import struct
from collections import namedtuple

import numpy as np

GGUF_MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32

# ggml_type ids
F32, F16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1 = 0, 1, 2, 3, 6, 7, 8, 9
Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K = 10, 11, 12, 13, 14, 15
IQ4_NL, IQ4_XS = 20, 23
BF16 = 30
MXFP4 = 39

# type id -> (name, elements per block, bytes per block)
TYPES = {
    F32: ("F32", 1, 4),
    F16: ("F16", 1, 2),
    Q4_0: ("Q4_0", 32, 18),
    Q4_1: ("Q4_1", 32, 20),
    Q5_0: ("Q5_0", 32, 22),
    Q5_1: ("Q5_1", 32, 24),
    Q8_0: ("Q8_0", 32, 34),
    Q8_1: ("Q8_1", 32, 36),
    Q2_K: ("Q2_K", 256, 84),
    Q3_K: ("Q3_K", 256, 110),
    Q4_K: ("Q4_K", 256, 144),
    Q5_K: ("Q5_K", 256, 176),
    Q6_K: ("Q6_K", 256, 210),
    Q8_K: ("Q8_K", 256, 292),
    IQ4_NL: ("IQ4_NL", 32, 18),
    IQ4_XS: ("IQ4_XS", 256, 136),
    MXFP4: ("MXFP4", 32, 17),
    24: ("I8", 1, 1),
    25: ("I16", 1, 2),
    26: ("I32", 1, 4),
    27: ("I64", 1, 8),
    28: ("F64", 1, 8),
    BF16: ("BF16", 1, 2),
}
TYPE_BY_NAME = {v[0]: k for k, v in TYPES.items()}

# metadata value types
(T_U8, T_I8, T_U16, T_I16, T_U32, T_I32, T_F32, T_BOOL, T_STR, T_ARR,
 T_U64, T_I64, T_F64) = range(13)
SCALAR_FMT = {T_U8: "<B", T_I8: "<b", T_U16: "<H", T_I16: "<h", T_U32: "<I",
              T_I32: "<i", T_F32: "<f", T_BOOL: "<?", T_U64: "<Q", T_I64: "<q",
              T_F64: "<d"}
SCALAR_NP = {T_U8: "<u1", T_I8: "<i1", T_U16: "<u2", T_I16: "<i2", T_U32: "<u4",
             T_I32: "<i4", T_F32: "<f4", T_BOOL: "<u1", T_U64: "<u8", T_I64: "<i8",
             T_F64: "<f8"}

TensorInfo = namedtuple("TensorInfo", "name ne type offset nbytes")


class GGUFError(Exception):
    pass


class _Cursor:
    def __init__(self, buf):
        self.buf = buf
        self.pos = 0

    def take(self, n):
        if n < 0 or self.pos + n > len(self.buf):
            raise GGUFError(f"truncated: need {n} bytes at offset {self.pos}, "
                            f"file has {len(self.buf)}")
        b = self.buf[self.pos:self.pos + n]
        self.pos += n
        return b

    def unpack(self, fmt):
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def string(self):
        n = self.unpack("<Q")
        return bytes(self.take(n)).decode("utf-8", errors="surrogateescape")

    def value(self, t):
        if t == T_STR:
            return self.string()
        if t == T_ARR:
            et = self.unpack("<I")
            n = self.unpack("<Q")
            if et == T_STR:
                return [self.string() for _ in range(n)]
            if et == T_ARR:
                raise GGUFError("nested arrays are not supported")
            if et not in SCALAR_NP:
                raise GGUFError(f"unknown array element type {et}")
            dt = np.dtype(SCALAR_NP[et])
            a = np.frombuffer(self.take(n * dt.itemsize), dtype=dt).copy()
            return a.astype(bool) if et == T_BOOL else a
        if t not in SCALAR_FMT:
            raise GGUFError(f"unknown value type {t}")
        return self.unpack(SCALAR_FMT[t])


class GGUFFile:
    def __init__(self, path):
        with open(path, "rb") as f:
            self._mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        self.buf = memoryview(self._mm)
        c = _Cursor(self.buf)
        if bytes(c.take(4)) != GGUF_MAGIC:
            raise GGUFError("bad magic")
        self.version = c.unpack("<I")
        if self.version not in (2, 3):
            raise GGUFError(f"unsupported version {self.version}")
        n_tensors = c.unpack("<Q")
        n_kv = c.unpack("<Q")
        self.metadata = {}
        self.kv_types = {}
        for _ in range(n_kv):
            key = c.string()
            t = c.unpack("<I")
            if key in self.metadata:
                raise GGUFError(f"duplicate key {key!r}")
            self.metadata[key] = c.value(t)
            self.kv_types[key] = t
        self.alignment = int(self.metadata.get("general.alignment", DEFAULT_ALIGNMENT))
        self.tensors = {}
        for _ in range(n_tensors):
            name = c.string()
            n_dims = c.unpack("<I")
            if not 1 <= n_dims <= 4:
                raise GGUFError(f"tensor {name!r}: n_dims {n_dims}")
            ne = tuple(c.unpack("<Q") for _ in range(n_dims))
            t = c.unpack("<I")
            off = c.unpack("<Q")
            if t not in TYPES:
                raise GGUFError(f"tensor {name!r}: unknown type {t}")
            _, bs, ts = TYPES[t]
            if ne[0] % bs:
                raise GGUFError(f"tensor {name!r}: row {ne[0]} not a multiple of {bs}")
            n = int(np.prod(ne, dtype=np.int64))
            if name in self.tensors:
                raise GGUFError(f"duplicate tensor {name!r}")
            self.tensors[name] = TensorInfo(name, ne, t, off, n // bs * ts)
        a = self.alignment
        self.data_offset = (c.pos + a - 1) // a * a
        for ti in self.tensors.values():
            if ti.offset % a:
                raise GGUFError(f"tensor {ti.name!r}: offset {ti.offset} not aligned to {a}")
            end = self.data_offset + ti.offset + ti.nbytes
            if end > len(self.buf):
                raise GGUFError(f"tensor {ti.name!r}: data ends at {end}, past end of "
                                f"file (size {len(self.buf)})")

    def raw(self, name):
        """The tensor's bytes as a uint8 array (a view into the mapping)."""
        ti = self.tensors[name]
        start = self.data_offset + ti.offset
        return np.frombuffer(self.buf, dtype=np.uint8, count=ti.nbytes, offset=start)

    def tensor(self, name):
        """Dequantized float32 array with numpy shape = reversed ne."""
        ti = self.tensors[name]
        n = int(np.prod(ti.ne, dtype=np.int64))
        return dequantize(self.raw(name), ti.type, n).reshape(tuple(reversed(ti.ne)))

    def get(self, key, default=None):
        return self.metadata.get(key, default)

    def close(self):
        self.buf.release()
        self._mm.close()


def load(path):
    return GGUFFile(path)


# ---------------------------------------------------------------- dequant

def _blocks(raw, t, n):
    _, bs, ts = TYPES[t]
    if n % bs:
        raise GGUFError(f"{n} elements not a multiple of block size {bs}")
    nb = n // bs
    b = np.asarray(raw, dtype=np.uint8)[:nb * ts]
    if b.size != nb * ts:
        raise GGUFError(f"need {nb * ts} bytes for {n} elements, have {b.size}")
    return b.reshape(nb, ts)


def _f16(b, col):
    """float32 from the little-endian half at byte column 'col' of each block."""
    return b[:, col:col + 2].copy().view("<f2").astype(np.float32).reshape(-1)


def _nibbles(qs):
    """(nb, 16) bytes -> (nb, 32) values: low nibbles first, then high."""
    return np.concatenate([qs & 0x0F, qs >> 4], axis=1)


def _qh_bits(qh4):
    """(nb, 4) bytes of a little-endian u32 -> (nb, 32) bits, bit j = element j."""
    u = qh4.copy().view("<u4")  # (nb, 1)
    return ((u >> np.arange(32, dtype=np.uint32)) & 1).astype(np.uint8)


def _scale_min_k4(sc):
    """Q4_K/Q5_K 12-byte packed scales -> (nb, 8) scales and (nb, 8) mins
    (6 bits each; get_scale_min_k4 in ggml-quants.c)."""
    sc = sc.astype(np.uint8)
    d = np.empty((sc.shape[0], 8), np.uint8)
    m = np.empty((sc.shape[0], 8), np.uint8)
    d[:, :4] = sc[:, 0:4] & 63
    m[:, :4] = sc[:, 4:8] & 63
    d[:, 4:] = (sc[:, 8:12] & 0x0F) | ((sc[:, 0:4] >> 6) << 4)
    m[:, 4:] = (sc[:, 8:12] >> 4) | ((sc[:, 4:8] >> 6) << 4)
    return d.astype(np.float32), m.astype(np.float32)


# 4-bit codebooks (ggml-common.h kvalues_iq4nl, kvalues_mxfp4 = 2 x E2M1)
IQ4_NL_VALUES = np.array([-127, -104, -83, -65, -49, -35, -22, -10,
                          1, 13, 25, 38, 53, 69, 89, 113], np.float32)
MXFP4_VALUES = np.array([0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12], np.float32)


def _low2_k(qs):
    """(nb, 64) bytes of Q2_K/Q3_K qs -> (nb, 256) 2-bit values: element
    128h + 32j + l is bits 2j..2j+1 of qs[32h + l]."""
    q = qs.reshape(-1, 2, 1, 32) >> (2 * np.arange(4, dtype=np.uint8))[None, None, :, None]
    return (q & 3).reshape(-1, 256)


def _e8m0_half(e):
    """E8M0 byte -> 2^(e - 128) as float32 (e < 2: the subnormals)."""
    e = e.astype(np.uint32)
    bits = np.where(e < 2, np.uint32(0x00200000) << e, (e - 1) << 23).astype(np.uint32)
    return bits.view(np.float32)


def dequantize(raw, t, n):
    """n elements of type t (raw bytes) -> float32 array."""
    f32 = np.float32
    if t == F32:
        return np.frombuffer(np.asarray(raw, np.uint8)[:4 * n].tobytes(), "<f4").copy()
    if t == F16:
        return np.frombuffer(np.asarray(raw, np.uint8)[:2 * n].tobytes(), "<f2").astype(f32)
    if t == BF16:
        u = np.frombuffer(np.asarray(raw, np.uint8)[:2 * n].tobytes(), "<u2").astype(np.uint32)
        return (u << 16).view(f32)
    b = _blocks(raw, t, n)
    nb = b.shape[0]
    if t == Q4_0:
        d = _f16(b, 0)
        q = _nibbles(b[:, 2:18]).astype(np.int8) - np.int8(8)
        return (q.astype(f32) * d[:, None]).reshape(-1)
    if t == Q4_1:
        d, m = _f16(b, 0), _f16(b, 2)
        q = _nibbles(b[:, 4:20])
        return (q.astype(f32) * d[:, None] + m[:, None]).reshape(-1)
    if t == Q5_0:
        d = _f16(b, 0)
        hi = _qh_bits(b[:, 2:6])
        q = (_nibbles(b[:, 6:22]) | (hi << 4)).astype(np.int8) - np.int8(16)
        return (q.astype(f32) * d[:, None]).reshape(-1)
    if t == Q5_1:
        d, m = _f16(b, 0), _f16(b, 2)
        hi = _qh_bits(b[:, 4:8])
        q = _nibbles(b[:, 8:24]) | (hi << 4)
        return (q.astype(f32) * d[:, None] + m[:, None]).reshape(-1)
    if t == Q8_0:
        d = _f16(b, 0)
        q = b[:, 2:34].view(np.int8)
        return (q.astype(f32) * d[:, None]).reshape(-1)
    if t == Q8_1:  # activation type: d, s (sum), 32 int8
        d = _f16(b, 0)
        q = b[:, 4:36].view(np.int8)
        return (q.astype(f32) * d[:, None]).reshape(-1)
    if t == Q4_K:
        # d, dmin, scales[12], qs[128]: 4 groups of 64 = (32 low nibbles, 32 high)
        d, dmin = _f16(b, 0), _f16(b, 2)
        sc, mn = _scale_min_k4(b[:, 4:16])
        d8 = d[:, None] * sc            # (nb, 8) float32, as d * sc in C
        m8 = dmin[:, None] * mn
        qs = b[:, 16:144].reshape(nb, 4, 32)
        q = np.stack([qs & 0x0F, qs >> 4], axis=2).reshape(nb, 8, 32).astype(f32)
        return (d8[:, :, None] * q - m8[:, :, None]).reshape(-1)
    if t == Q5_K:
        # d, dmin, scales[12], qh[32], qs[128]; sub-block s takes high bit s of qh[l]
        d, dmin = _f16(b, 0), _f16(b, 2)
        sc, mn = _scale_min_k4(b[:, 4:16])
        d8 = d[:, None] * sc
        m8 = dmin[:, None] * mn
        qh = b[:, 16:48]                                   # (nb, 32)
        qs = b[:, 48:176].reshape(nb, 4, 32)
        lo = np.stack([qs & 0x0F, qs >> 4], axis=2).reshape(nb, 8, 32)
        hb = (qh[:, None, :] >> np.arange(8, dtype=np.uint8)[None, :, None]) & 1
        q = (lo + (hb << 4)).astype(f32)
        return (d8[:, :, None] * q - m8[:, :, None]).reshape(-1)
    if t == Q6_K:
        # ql[128], qh[64], scales[16] (int8), d; two halves of 128 elements
        ql = b[:, 0:128].reshape(nb, 2, 64)
        qh = b[:, 128:192].reshape(nb, 2, 32)
        sc = b[:, 192:208].view(np.int8).astype(f32).reshape(nb, 2, 8)
        d = _f16(b, 208)
        lo = np.stack([ql[:, :, 0:32] & 0x0F, ql[:, :, 32:64] & 0x0F,
                       ql[:, :, 0:32] >> 4, ql[:, :, 32:64] >> 4], axis=2)   # (nb,2,4,32)
        hi = np.stack([(qh >> s) & 3 for s in (0, 2, 4, 6)], axis=2)         # (nb,2,4,32)
        q = ((lo | (hi << 4)).astype(np.int16) - 32).astype(f32)
        # scale index: element l (0..31) of quarter k uses sc[l // 16 + 2 k]
        sidx = (np.arange(32) // 16)[None, :] + 2 * np.arange(4)[:, None]    # (4, 32)
        s = sc[:, :, sidx]                                                   # (nb,2,4,32)
        ds = d[:, None, None, None] * s
        return (ds * q).reshape(-1)
    if t == Q2_K:
        # scales[16] (low nibble scale, high nibble min, per 16 elements), qs[64], d, dmin
        sc = b[:, 0:16]
        d, dmin = _f16(b, 80), _f16(b, 82)
        dl = d[:, None] * (sc & 0x0F).astype(f32)          # (nb, 16)
        ml = dmin[:, None] * (sc >> 4).astype(f32)
        q = _low2_k(b[:, 16:80]).astype(f32)                # (nb, 256)
        g = np.arange(256) // 16
        return (dl[:, g] * q - ml[:, g]).reshape(-1)
    if t == Q3_K:
        # hmask[32], qs[64], scales[12], d. Element e: low 2 bits as Q2_K, minus 4
        # unless bit e // 32 of hmask[e % 32] is set; 6-bit scale j: low 4 bits
        # from nibble j // 8 of scales[j % 8], top 2 from bits 2 (j // 4) of
        # scales[8 + j % 4]; value = d * (scale - 32) * q
        hm, sc, d = b[:, 0:32], b[:, 96:108].astype(np.int32), _f16(b, 108)
        j = np.arange(16)
        lo = (sc[:, j % 8] >> (4 * (j // 8))) & 0x0F
        hi = (sc[:, 8 + j % 4] >> (2 * (j // 4))) & 3
        s16 = ((lo | (hi << 4)) - 32).astype(f32)           # (nb, 16)
        hb = ((hm[:, None, :] >> np.arange(8, dtype=np.uint8)[None, :, None]) & 1).reshape(nb, 256)
        q = (_low2_k(b[:, 32:96]).astype(np.int32) - 4 * (1 - hb.astype(np.int32))).astype(f32)
        dl = d[:, None] * s16
        return (dl[:, np.arange(256) // 16] * q).reshape(-1)
    if t == IQ4_NL:
        # d, qs[16]: element j < 16 low nibble of qs[j], j + 16 high nibble
        d = _f16(b, 0)
        return (d[:, None] * IQ4_NL_VALUES[_nibbles(b[:, 2:18])]).reshape(-1)
    if t == IQ4_XS:
        # d, scales_h (u16), scales_l[4], qs[128]: 8 groups of 32, group ib's
        # 6-bit scale = nibble ib % 2 of scales_l[ib // 2] | bits 2ib of scales_h << 4
        d = _f16(b, 0)
        sh = b[:, 2:4].copy().view("<u2").astype(np.int32)          # (nb, 1)
        sl = b[:, 4:8].astype(np.int32)
        ib = np.arange(8)
        ls = ((sl[:, ib // 2] >> (4 * (ib % 2))) & 0x0F) | (((sh >> (2 * ib)) & 3) << 4)
        dl = d[:, None] * (ls - 32).astype(f32)                      # (nb, 8)
        idx = _nibbles(b[:, 8:136].reshape(nb * 8, 16)).reshape(nb, 8, 32)
        return (dl[:, :, None] * IQ4_NL_VALUES[idx]).reshape(-1)
    if t == MXFP4:
        # e (E8M0), qs[16]: value = 2^(e - 128) * MXFP4_VALUES[nibble]
        d = _e8m0_half(b[:, 0])
        return (d[:, None] * MXFP4_VALUES[_nibbles(b[:, 1:17])]).reshape(-1)
    if t == Q8_K:  # activation type: f32 d, 256 int8, 16 int16 sums
        d = b[:, 0:4].copy().view("<f4")  # (nb, 1)
        q = b[:, 4:260].view(np.int8)
        return (q.astype(f32) * d).reshape(-1)
    raise GGUFError(f"no dequantization for type {TYPES.get(t, (t,))[0]}")


def type_name(t):
    return TYPES[t][0] if t in TYPES else str(t)
