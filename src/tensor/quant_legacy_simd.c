/* quant_legacy_simd.c - AVX2 (+FMA+F16C) and AVX-512 VNNI kernels for the
 * legacy 32-element quant types: vec_dot for Q4_0 Q4_1 Q5_0 Q5_1 Q8_0,
 * quantize for the activation types Q8_0 and Q8_1, dequant for Q4_0 and
 * Q8_0. Q5_*, Q4_1 quantize/dequant stay scalar (model load and the
 * quantize tool only).
 *
 * Compiled under `#pragma GCC target` per level (the Makefile has no -march)
 * and installed only when the CPU allows it. All loads are unaligned.
 *
 * Exactness against quant_legacy.c:
 *   quantize, dequant - bit-identical: the scale and 1/scale are computed by
 *       the same scalar float expressions, x*(1/d) is one IEEE multiply per
 *       lane, and roundf (half away from zero) is done exactly as
 *       t = trunc(v); t += copysign(1, v) if |v - t| >= 0.5  (v - t is exact).
 *   vec_dot - the integer dot of each block is exact (AVX2: maddubs pairs
 *       cannot saturate for |w| <= 128, |a| <= 127; VNNI: vpdpbusd into
 *       int32), so results differ from the twin by float summation order
 *       only. Like ggml's, the sign trick needs activation quants in
 *       [-127, 127], which is what quantize produces; -128 in an activation
 *       block is not supported. The AVX-512 Q8_0 dot follows the float
 *       contract of q8_avx512.h, which matmul's packed batch kernels
 *       (matmul_q8.c) reproduce bit for bit. */
#include <string.h>

#include "tensor/quant_blocks_legacy.h"
#include "tensor/quant_simd.h"

#if defined(__x86_64__) || defined(__i386__)

#include "core/simd.h"
#include <immintrin.h>

static inline uint32_t load_qh(const uint8_t qh[4]) {
    uint32_t v;
    memcpy(&v, qh, 4);
    return v;
}

/* Scale and inverse scale of an activation block, as the scalar twin. */
static inline void q8_scale(float amax, float *d, float *id) {
    *d = amax / 127;
    *id = *d != 0.0f ? 1.0f / *d : 0.0f;
}

/* ======================================================================== */
SIMD_BEGIN_AVX2

static inline float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline int32_t hsum256_i32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

/* 16 packed bytes -> 32 nibbles in element order (low nibbles, then high). */
static inline __m256i nibbles_avx2(const uint8_t *qs) {
    const __m128i t = _mm_loadu_si128((const __m128i *)qs);
    const __m256i v = _mm256_inserti128_si256(_mm256_castsi128_si256(t), _mm_srli_epi16(t, 4), 1);
    return _mm256_and_si256(v, _mm256_set1_epi8(0x0f));
}

/* The 32 bits of 'qh' -> 32 bytes, 0xff where the bit is set. */
static inline __m256i bits_to_bytes_avx2(uint32_t qh) {
    const __m256i sel = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2,
                                         2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)qh), sel);
    return _mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit);
}

static inline __m256i load32_avx2(const int8_t *p) {
    return _mm256_loadu_si256((const __m256i *)p);
}

/* fp16 <-> f32 with F16C: bit-identical to core/fp16.h (tested), branch-free. */
static inline float h2f_avx2(uint16_t h) { return _cvtsh_ss(h); }
static inline uint16_t f2h_avx2(float f) {
    return (uint16_t)_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT);
}

/* A weight block's 32 quants as bytes for the integer dot: signed for the
 * symmetric types (Q4_0, Q5_0, Q8_0), unsigned for Q4_1 and Q5_1. */
static inline __m256i q4_0_w_avx2(const BlockQ4_0 *x) {
    return _mm256_sub_epi8(nibbles_avx2(x->qs), _mm256_set1_epi8(8));
}
static inline __m256i q4_1_w_avx2(const BlockQ4_1 *x) { return nibbles_avx2(x->qs); }
static inline __m256i q5_0_w_avx2(const BlockQ5_0 *x) {
    /* q - 16 as int8 is the nibble when the fifth bit is set, nibble|0xf0 when not */
    const __m256i hi =
        _mm256_andnot_si256(bits_to_bytes_avx2(load_qh(x->qh)), _mm256_set1_epi8((char)0xf0));
    return _mm256_or_si256(nibbles_avx2(x->qs), hi);
}
static inline __m256i q5_1_w_avx2(const BlockQ5_1 *x) {
    const __m256i hi = _mm256_and_si256(bits_to_bytes_avx2(load_qh(x->qh)), _mm256_set1_epi8(0x10));
    return _mm256_or_si256(nibbles_avx2(x->qs), hi);
}
static inline __m256i q8_0_w_avx2(const BlockQ8_0 *x) { return load32_avx2(x->qs); }

/* The block d of activation row r, block i: from the rows' float scales
 * (vec_dot4: quant_act_scales, widened once per batch) or widened here
 * (vec_dot); the same float either way. */
#define DA_AVX2(r, i) (sc ? sc[(size_t)(r)*lsc + 2 * (size_t)(i)] : h2f_avx2(y[r][i].d))
/* Block i's m*s term for row r (Q4_1 / Q5_1; 0 for the symmetric types),
 * summed separately as ggml does. */
#define MS_R0(r, i) 0.0f
#define MS_R(r, i)                                                                                 \
    (h2f_avx2(x[i].m) * (sc ? sc[(size_t)(r)*lsc + 2 * (size_t)(i) + 1] : h2f_avx2(y[r][i].s)))

/* One weight block against R activation rows' blocks i: the weight bytes
 * (WB) unpacked once; per row the integer dot (SGN 1: |w| . y * sign(w),
 * the |w| shared; SGN 0: unsigned w . y; exact, |sum| < 2^24) as floats,
 * times d_w * d_a into that row's accumulator 'acc' and its m*s term into
 * 'ms'. */
#define BLOCK_R_AVX2(WB, SGN, MS, R, i, acc, ms)                                                   \
    do {                                                                                           \
        const __m256i q = WB(x + (i));                                                             \
        const __m256i aq = SGN ? _mm256_sign_epi8(q, q) : q;                                       \
        const float dw = h2f_avx2(x[i].d);                                                         \
        _Pragma("GCC unroll 4") for (int r = 0; r < R; r++) {                                      \
            const __m256i yq = load32_avx2(y[r][i].qs);                                            \
            const __m256i p = _mm256_maddubs_epi16(aq, SGN ? _mm256_sign_epi8(yq, q) : yq);        \
            const __m256 v = _mm256_cvtepi32_ps(_mm256_madd_epi16(p, _mm256_set1_epi16(1)));       \
            acc[r] = _mm256_fmadd_ps(v, _mm256_set1_ps(dw * DA_AVX2(r, i)), acc[r]);               \
            ms[r] = MS(r, i);                                                                      \
        }                                                                                          \
    } while (0)

/* vec_dot (R = 1; sc NULL) and vec_dot4 (R = 4) of a legacy type from one
 * body, so a row's bits are the same in both: two blocks per step into two
 * accumulators (breaking the FMA latency chain), an odd last block into
 * the first, the m*s terms of a pair added together first, a fixed fold. */
#define DEF_DOT_AVX2(pfx, WT, AT, WB, SGN, MS)                                                     \
    static inline __attribute__((always_inline)) void pfx##_rows_avx2(                             \
        int64_t n, float *s, size_t ls, const void *w, const void *a, size_t la, const float *sc,  \
        size_t lsc, const int R) {                                                                 \
        const WT *x = w;                                                                           \
        const AT *y[4];                                                                            \
        _Pragma("GCC unroll 4") for (int r = 0; r < R; r++) y[r] =                                 \
            (const AT *)(const void *)((const char *)a + (size_t)r * la);                          \
        const int64_t nb = n / 32;                                                                 \
        __m256 acc0[4], acc1[4];                                                                   \
        float summs[4] = {0}, m0[4], m1[4];                                                        \
        _Pragma("GCC unroll 4") for (int r = 0; r < R; r++) acc0[r] = acc1[r] =                    \
            _mm256_setzero_ps();                                                                   \
        int64_t i = 0;                                                                             \
        for (; i + 2 <= nb; i += 2) {                                                              \
            BLOCK_R_AVX2(WB, SGN, MS, R, i, acc0, m0);                                             \
            BLOCK_R_AVX2(WB, SGN, MS, R, i + 1, acc1, m1);                                         \
            _Pragma("GCC unroll 4") for (int r = 0; r < R; r++) summs[r] += m0[r] + m1[r];         \
        }                                                                                          \
        if (i < nb) {                                                                              \
            BLOCK_R_AVX2(WB, SGN, MS, R, i, acc0, m0);                                             \
            _Pragma("GCC unroll 4") for (int r = 0; r < R; r++) summs[r] += m0[r];                 \
        }                                                                                          \
        _Pragma("GCC unroll 4") for (int r = 0; r < R; r++) s[(size_t)r * ls] =                    \
            hsum256(_mm256_add_ps(acc0[r], acc1[r])) + summs[r];                                   \
    }                                                                                              \
    static void pfx##_dot_avx2(int64_t n, float *s, const void *w, const void *a) {                \
        pfx##_rows_avx2(n, s, 0, w, a, 0, NULL, 0, 1);                                             \
    }                                                                                              \
    static void pfx##_dot4_avx2(int64_t n, float *s, size_t ls, const void *w, const void *a,      \
                                size_t la, const float *sc, size_t lsc) {                          \
        pfx##_rows_avx2(n, s, ls, w, a, la, sc, lsc, 4);                                           \
    }

DEF_DOT_AVX2(q4_0, BlockQ4_0, BlockQ8_0, q4_0_w_avx2, 1, MS_R0)
DEF_DOT_AVX2(q4_1, BlockQ4_1, BlockQ8_1, q4_1_w_avx2, 0, MS_R)
DEF_DOT_AVX2(q5_0, BlockQ5_0, BlockQ8_0, q5_0_w_avx2, 1, MS_R0)
DEF_DOT_AVX2(q5_1, BlockQ5_1, BlockQ8_1, q5_1_w_avx2, 0, MS_R)
DEF_DOT_AVX2(q8_0, BlockQ8_0, BlockQ8_0, q8_0_w_avx2, 1, MS_R0)

#define NO_MS(i) 0.0f

/* roundf() on 8 lanes, exactly (see the file comment). |v| < 2^23. */
static inline __m256i roundf_i32_avx2(__m256 v) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __m256 frac = _mm256_andnot_ps(sign, _mm256_sub_ps(v, t));
    const __m256 up = _mm256_cmp_ps(frac, _mm256_set1_ps(0.5f), _CMP_GE_OQ);
    const __m256 one = _mm256_or_ps(_mm256_and_ps(v, sign), _mm256_set1_ps(1.0f));
    return _mm256_cvttps_epi32(_mm256_add_ps(t, _mm256_and_ps(up, one)));
}

/* Quantizes one block of 32 floats to int8 in qs; returns d and the sum of
 * the quants. */
static inline float q8_block_avx2(const float *src, int8_t *qs, int32_t *sum) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 v[4];
    for (int k = 0; k < 4; k++)
        v[k] = _mm256_loadu_ps(src + 8 * k);
    __m256 m =
        _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(sign, v[0]), _mm256_andnot_ps(sign, v[1])),
                      _mm256_max_ps(_mm256_andnot_ps(sign, v[2]), _mm256_andnot_ps(sign, v[3])));
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    float d, id;
    q8_scale(_mm_cvtss_f32(m4), &d, &id);
    const __m256 idv = _mm256_set1_ps(id);
    __m256i q[4];
    for (int k = 0; k < 4; k++)
        q[k] = roundf_i32_avx2(_mm256_mul_ps(v[k], idv));
    *sum =
        hsum256_i32(_mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3])));
    __m256i b = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
    b = _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256((__m256i *)qs, b);
    return d;
}

static void q8_0_quantize_avx2(const float *src, void *dst, int64_t n) {
    BlockQ8_0 *b = dst;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        int32_t sum;
        b[i].d = f2h_avx2(q8_block_avx2(src + i * QK8_0, b[i].qs, &sum));
    }
}

static void q8_1_quantize_avx2(const float *src, void *dst, int64_t n) {
    BlockQ8_1 *b = dst;
    for (int64_t i = 0; i < n / QK8_1; i++) {
        int32_t sum;
        const float d = q8_block_avx2(src + i * QK8_1, b[i].qs, &sum);
        b[i].d = f2h_avx2(d);
        b[i].s = f2h_avx2((float)sum * d);
    }
}

static void q8_0_dequant_avx2(const void *src, float *dst, int64_t n) {
    const BlockQ8_0 *b = src;
    for (int64_t i = 0; i < n / QK8_0; i++, dst += QK8_0) {
        const __m256 d = _mm256_set1_ps(h2f_avx2(b[i].d));
        for (int k = 0; k < 4; k++) {
            const __m256i q =
                _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(b[i].qs + 8 * k)));
            _mm256_storeu_ps(dst + 8 * k, _mm256_mul_ps(_mm256_cvtepi32_ps(q), d));
        }
    }
}

static void q4_0_dequant_avx2(const void *src, float *dst, int64_t n) {
    const BlockQ4_0 *b = src;
    for (int64_t i = 0; i < n / QK4_0; i++, dst += QK4_0) {
        const __m256 d = _mm256_set1_ps(h2f_avx2(b[i].d));
        const __m256i q = _mm256_sub_epi8(nibbles_avx2(b[i].qs), _mm256_set1_epi8(8));
        const __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
        const __m128i part[4] = {lo, _mm_srli_si128(lo, 8), hi, _mm_srli_si128(hi, 8)};
        for (int k = 0; k < 4; k++)
            _mm256_storeu_ps(dst + 8 * k,
                             _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(part[k])), d));
    }
}

SIMD_END

/* ======================================================================== */
SIMD_BEGIN_AVX512

#include "tensor/q8_avx512.h"

/* Two blocks' 32 quant bytes side by side in one register. */
static inline __m512i load2x32(const int8_t *p0, const int8_t *p1) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)p0)),
                              _mm256_loadu_si256((const __m256i *)p1), 1);
}

static inline __m512 scale2(float d0, float d1) {
    return _mm512_insertf32x8(_mm512_set1_ps(d0), _mm256_set1_ps(d1), 1);
}

/* 16 packed bytes -> 32 nibbles in element order. */
static inline __m256i nibbles_vnni(const uint8_t *qs) {
    const __m128i t = _mm_loadu_si128((const __m128i *)qs);
    const __m256i v = _mm256_inserti128_si256(_mm256_castsi128_si256(t), _mm_srli_epi16(t, 4), 1);
    return _mm256_and_si256(v, _mm256_set1_epi8(0x0f));
}

static inline __m512i nibbles2_vnni(const uint8_t *qs0, const uint8_t *qs1) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(nibbles_vnni(qs0)), nibbles_vnni(qs1), 1);
}

/* signed x . signed y per 4 bytes into int32 lanes: |x| . (y * sign(x)). */
static inline __m512i dot_s8_512(__m512i x, __m512i y) {
    const __mmask64 neg = _mm512_movepi8_mask(x);
    const __m512i sy = _mm512_mask_sub_epi8(y, neg, _mm512_setzero_si512(), y);
    return _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_abs_epi8(x), sy);
}

static inline __m256i dot_s8_256(__m256i x, __m256i y) {
    const __mmask32 neg = _mm256_movepi8_mask(x);
    const __m256i sy = _mm256_mask_sub_epi8(y, neg, _mm256_setzero_si256(), y);
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_abs_epi8(x), sy);
}

/* Unsigned x (nibbles, 5-bit values) . signed y, minus bias * sum(y). */
static inline __m512i dot_u8_512(__m512i x, __m512i y, int bias) {
    const __m512i p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), x, y);
    if (!bias)
        return p;
    return _mm512_sub_epi32(
        p, _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8((char)bias), y));
}

static inline __m256i dot_u8_256(__m256i x, __m256i y, int bias) {
    const __m256i p = _mm256_dpbusd_epi32(_mm256_setzero_si256(), x, y);
    if (!bias)
        return p;
    return _mm256_sub_epi32(
        p, _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_set1_epi8((char)bias), y));
}

static inline float hsum_512_256(__m512 acc, __m256 acc1) {
    __m128 t = _mm_add_ps(_mm256_castps256_ps128(acc1), _mm256_extractf128_ps(acc1, 1));
    t = _mm_add_ps(t, _mm_movehl_ps(t, t));
    t = _mm_add_ss(t, _mm_movehdup_ps(t));
    return _mm512_reduce_add_ps(acc) + _mm_cvtss_f32(t);
}

static inline float h2f_512(uint16_t h) { return _cvtsh_ss(h); }
static inline uint16_t f2h_512(float f) {
    return (uint16_t)_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT);
}

/* Per-pair (blocks i, i+1 in the low and high halves) and per-block integer
 * dots as float lanes; exact. */
static inline __m512 q4_0_pair(const BlockQ4_0 *x, const BlockQ8_0 *y) {
    return _mm512_cvtepi32_ps(
        dot_u8_512(nibbles2_vnni(x[0].qs, x[1].qs), load2x32(y[0].qs, y[1].qs), 8));
}
static inline __m256 q4_0_one(const BlockQ4_0 *x, const BlockQ8_0 *y) {
    return _mm256_cvtepi32_ps(
        dot_u8_256(nibbles_vnni(x->qs), _mm256_loadu_si256((const __m256i *)y->qs), 8));
}
static inline __m512 q4_1_pair(const BlockQ4_1 *x, const BlockQ8_1 *y) {
    return _mm512_cvtepi32_ps(
        dot_u8_512(nibbles2_vnni(x[0].qs, x[1].qs), load2x32(y[0].qs, y[1].qs), 0));
}
static inline __m256 q4_1_one(const BlockQ4_1 *x, const BlockQ8_1 *y) {
    return _mm256_cvtepi32_ps(
        dot_u8_256(nibbles_vnni(x->qs), _mm256_loadu_si256((const __m256i *)y->qs), 0));
}

/* Q5 quants as unsigned 5-bit bytes: nibble | 0x10 where the qh bit is set. */
static inline __m256i q5_bytes_256(const uint8_t *qs, const uint8_t *qh) {
    return _mm256_or_si256(nibbles_vnni(qs),
                           _mm256_maskz_mov_epi8((__mmask32)load_qh(qh), _mm256_set1_epi8(0x10)));
}
static inline __m512i q5_bytes_512(const uint8_t *qs0, const uint8_t *qh0, const uint8_t *qs1,
                                   const uint8_t *qh1) {
    const __mmask64 hb = (__mmask64)load_qh(qh0) | ((__mmask64)load_qh(qh1) << 32);
    return _mm512_or_si512(nibbles2_vnni(qs0, qs1),
                           _mm512_maskz_mov_epi8(hb, _mm512_set1_epi8(0x10)));
}
static inline __m512 q5_0_pair(const BlockQ5_0 *x, const BlockQ8_0 *y) {
    return _mm512_cvtepi32_ps(dot_u8_512(q5_bytes_512(x[0].qs, x[0].qh, x[1].qs, x[1].qh),
                                         load2x32(y[0].qs, y[1].qs), 16));
}
static inline __m256 q5_0_one(const BlockQ5_0 *x, const BlockQ8_0 *y) {
    return _mm256_cvtepi32_ps(
        dot_u8_256(q5_bytes_256(x->qs, x->qh), _mm256_loadu_si256((const __m256i *)y->qs), 16));
}
static inline __m512 q5_1_pair(const BlockQ5_1 *x, const BlockQ8_1 *y) {
    return _mm512_cvtepi32_ps(dot_u8_512(q5_bytes_512(x[0].qs, x[0].qh, x[1].qs, x[1].qh),
                                         load2x32(y[0].qs, y[1].qs), 0));
}
static inline __m256 q5_1_one(const BlockQ5_1 *x, const BlockQ8_1 *y) {
    return _mm256_cvtepi32_ps(
        dot_u8_256(q5_bytes_256(x->qs, x->qh), _mm256_loadu_si256((const __m256i *)y->qs), 0));
}

#define SCALE2(i)                                                                                  \
    scale2(h2f_512(x[i].d) * h2f_512(y[i].d), h2f_512(x[(i) + 1].d) * h2f_512(y[(i) + 1].d))

/* Four blocks per step (two pairs into two accumulators), then a pair, then
 * an odd block with 256-bit VNNI; the accumulators and the m*s terms (MS)
 * are summed in a fixed order at the end. */
#define DOT_AVX512(name, WT, AT, PAIR, ONE, MS)                                                    \
    static void name(int64_t n, float *s, const void *w, const void *a) {                          \
        const WT *x = w;                                                                           \
        const AT *y = a;                                                                           \
        const int64_t nb = n / 32;                                                                 \
        __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();                             \
        __m256 acc2 = _mm256_setzero_ps();                                                         \
        float summs = 0.0f;                                                                        \
        int64_t i = 0;                                                                             \
        for (; i + 4 <= nb; i += 4) {                                                              \
            acc0 = _mm512_fmadd_ps(PAIR(x + i, y + i), SCALE2(i), acc0);                           \
            acc1 = _mm512_fmadd_ps(PAIR(x + i + 2, y + i + 2), SCALE2(i + 2), acc1);               \
            summs += (MS(i) + MS(i + 1)) + (MS(i + 2) + MS(i + 3));                                \
        }                                                                                          \
        if (i + 2 <= nb) {                                                                         \
            acc0 = _mm512_fmadd_ps(PAIR(x + i, y + i), SCALE2(i), acc0);                           \
            summs += MS(i) + MS(i + 1);                                                            \
            i += 2;                                                                                \
        }                                                                                          \
        if (i < nb) {                                                                              \
            acc2 = _mm256_fmadd_ps(ONE(x + i, y + i),                                              \
                                   _mm256_set1_ps(h2f_512(x[i].d) * h2f_512(y[i].d)), acc2);       \
            summs += MS(i);                                                                        \
        }                                                                                          \
        *s = hsum_512_256(_mm512_add_ps(acc0, acc1), acc2) + summs;                                \
    }

#define MS_512(i) (h2f_512(x[i].m) * h2f_512(y[i].s))

/* Q4_0 takes its four-block step from two unaligned 64-byte loads of the
 * 72 weight bytes (bytes 0..63 and 8..71, both inside the four blocks): one
 * vpermw per pair lays out the two blocks' 16 quant bytes twice, a masked
 * shift brings the high nibbles down, and the four fp16 scales of x (and of
 * y) come out with one vpermw and one vcvtph2ps. The integer lanes and the
 * float operations per lane are those of the generic DOT_AVX512 step. */
static void q4_0_dot_avx512(int64_t n, float *s, const void *w, const void *a) {
    const BlockQ4_0 *x = w;
    const BlockQ8_0 *y = a;
    const int64_t nb = n / 32;
    /* qs words of blocks 0,1 in A start at 1, 10; of blocks 2,3 in B at 15, 24. */
    const __m512i perm0 = _mm512_set_epi16(17, 16, 15, 14, 13, 12, 11, 10, 17, 16, 15, 14, 13, 12,
                                           11, 10, 8, 7, 6, 5, 4, 3, 2, 1, 8, 7, 6, 5, 4, 3, 2, 1);
    const __m512i perm1 = _mm512_add_epi16(perm0, _mm512_set1_epi16(14));
    const __m512i xd_idx = _mm512_setr_epi64(0x001b001200090000LL, 0, 0, 0, 0, 0, 0, 0);
    const __m512i yd_idx = _mm512_setr_epi64(0x0031002000110000LL, 0, 0, 0, 0, 0, 0, 0);
    const __m512i lo8 = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
    const __m512i hi8 = _mm512_add_epi32(lo8, _mm512_set1_epi32(2));
    const __m512i m4 = _mm512_set1_epi8(0x0f), b8 = _mm512_set1_epi8(8);
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    __m256 acc2 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 4 <= nb; i += 4) {
        const __m512i A = _mm512_loadu_si512((const uint8_t *)(x + i));
        const __m512i B = _mm512_loadu_si512((const uint8_t *)(x + i) + 8);
        const __m512i yA = _mm512_loadu_si512((const uint8_t *)(y + i));
        const __m512i yB = _mm512_loadu_si512((const uint8_t *)(y + i) + 68);
        const __m128 dx = _mm_cvtph_ps(_mm512_castsi512_si128(_mm512_permutexvar_epi16(xd_idx, A)));
        const __m128 dy =
            _mm_cvtph_ps(_mm512_castsi512_si128(_mm512_permutex2var_epi16(yA, yd_idx, yB)));
        const __m512 d4 = _mm512_castps128_ps512(_mm_mul_ps(dx, dy));
        __m512i q0 = _mm512_permutexvar_epi16(perm0, A), q1 = _mm512_permutexvar_epi16(perm1, B);
        q0 = _mm512_and_si512(_mm512_mask_srli_epi16(q0, 0xff00ff00u, q0, 4), m4);
        q1 = _mm512_and_si512(_mm512_mask_srli_epi16(q1, 0xff00ff00u, q1, 4), m4);
        const __m512i y0 = load2x32(y[i].qs, y[i + 1].qs), y1 = load2x32(y[i + 2].qs, y[i + 3].qs);
        const __m512i p0 =
            _mm512_sub_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), q0, y0),
                             _mm512_dpbusd_epi32(_mm512_setzero_si512(), b8, y0));
        const __m512i p1 =
            _mm512_sub_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), q1, y1),
                             _mm512_dpbusd_epi32(_mm512_setzero_si512(), b8, y1));
        acc0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p0), _mm512_permutexvar_ps(lo8, d4), acc0);
        acc1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p1), _mm512_permutexvar_ps(hi8, d4), acc1);
    }
    if (i + 2 <= nb) {
        acc0 = _mm512_fmadd_ps(q4_0_pair(x + i, y + i), SCALE2(i), acc0);
        i += 2;
    }
    if (i < nb)
        acc2 = _mm256_fmadd_ps(q4_0_one(x + i, y + i),
                               _mm256_set1_ps(h2f_512(x[i].d) * h2f_512(y[i].d)), acc2);
    *s = hsum_512_256(_mm512_add_ps(acc0, acc1), acc2);
}

DOT_AVX512(q4_1_dot_avx512, BlockQ4_1, BlockQ8_1, q4_1_pair, q4_1_one, MS_512)
DOT_AVX512(q5_0_dot_avx512, BlockQ5_0, BlockQ8_0, q5_0_pair, q5_0_one, NO_MS)
DOT_AVX512(q5_1_dot_avx512, BlockQ5_1, BlockQ8_1, q5_1_pair, q5_1_one, MS_512)

/* Q8_0 . Q8_0 follows the group contract of q8_avx512.h, shared with the
 * packed batch kernels of matmul_q8.c (which must give the same bits): per
 * 16 blocks, eight pair dots with the sign trick, reduced to one exact
 * integer per block, scaled and accumulated with one masked fma; a short
 * last group as products and a fixed sum. Up to Q8_0_TAIL_BLOCKS last
 * blocks are cheaper one by one: a 256-bit dot and a horizontal sum each. */
#define Q8_0_TAIL_BLOCKS 4

/* s_b and p_b of the group at x, y with cnt blocks in lanes 0..cnt-1 (0 past). */
static inline __attribute__((always_inline)) void
q8_0_sp_avx512(const BlockQ8_0 *x, const BlockQ8_0 *y, int64_t cnt, __m512i *s, __m512 *p) {
    __m512i z[8];
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++)
        z[i] = dot_s8_512(q8v_load_pair(x, i, cnt), q8v_load_pair(y, i, cnt));
    *s = q8v_reduce8(z);
    *p = _mm512_mul_ps(q8v_scales(x, cnt), q8v_scales(y, cnt));
}

static void q8_0_sp_blocks_avx512(const BlockQ8_0 *x, const BlockQ8_0 *y, int64_t cnt, __m512i *s,
                                  __m512 *p) {
    *s = _mm512_setzero_si512();
    *p = _mm512_setzero_ps();
    for (int t = 0; t < cnt; t++) {
        const __m256i z = dot_s8_256(_mm256_loadu_si256((const __m256i *)x[t].qs),
                                     _mm256_loadu_si256((const __m256i *)y[t].qs));
        __m128i h = _mm_add_epi32(_mm256_castsi256_si128(z), _mm256_extracti128_si256(z, 1));
        h = _mm_add_epi32(h, _mm_unpackhi_epi64(h, h));
        h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 1));
        const __mmask16 lane = (__mmask16)(1u << t);
        *s = _mm512_mask_broadcastd_epi32(*s, lane, h);
        *p = _mm512_mask_broadcastss_ps(*p, lane, _mm_set_ss(h2f_512(x[t].d) * h2f_512(y[t].d)));
    }
}

static void q8_0_dot_avx512(int64_t n, float *s, const void *w, const void *a) {
    const BlockQ8_0 *x = w;
    const BlockQ8_0 *y = a;
    const int64_t nb = n / QK8_0;
    __m512 acc = _mm512_setzero_ps();
    __m512i si;
    __m512 p;
    int64_t b = 0;
    for (; b + Q8V_GROUP <= nb; b += Q8V_GROUP) {
        q8_0_sp_avx512(x + b, y + b, Q8V_GROUP, &si, &p);
        acc = q8v_fold(acc, si, p, 0xffff);
    }
    const int64_t cnt = nb - b;
    const int cp = q8v_short_cp(cnt);
    if (cnt > 0 && !cp) {
        q8_0_sp_avx512(x + b, y + b, cnt, &si, &p);
        acc = q8v_fold(acc, si, p, q8v_mask(cnt));
    }
    if (!cp) {
        *s = q8v_hsum(acc);
        return;
    }
    if (cnt <= Q8_0_TAIL_BLOCKS)
        q8_0_sp_blocks_avx512(x + b, y + b, cnt, &si, &p);
    else
        q8_0_sp_avx512(x + b, y + b, cnt, &si, &p);
    *s = q8v_hsum(acc) + q8v_short_sum(_mm512_mul_ps(_mm512_cvtepi32_ps(si), p), cp);
}

/* roundf() on 16 lanes, exactly. |v| < 2^23. */
static inline __m512i roundf_i32_avx512(__m512 v) {
    const __m512 t = _mm512_roundscale_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __m512 frac = _mm512_abs_ps(_mm512_sub_ps(v, t));
    const __mmask16 up = _mm512_cmp_ps_mask(frac, _mm512_set1_ps(0.5f), _CMP_GE_OQ);
    const __m512 one = _mm512_or_ps(_mm512_and_ps(v, _mm512_set1_ps(-0.0f)), _mm512_set1_ps(1.0f));
    return _mm512_cvttps_epi32(_mm512_mask_add_ps(t, up, t, one));
}

static inline float q8_block_avx512(const float *src, int8_t *qs, int32_t *sum) {
    const __m512 v0 = _mm512_loadu_ps(src), v1 = _mm512_loadu_ps(src + 16);
    float d, id;
    q8_scale(_mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1))), &d, &id);
    const __m512 idv = _mm512_set1_ps(id);
    const __m512i q0 = roundf_i32_avx512(_mm512_mul_ps(v0, idv));
    const __m512i q1 = roundf_i32_avx512(_mm512_mul_ps(v1, idv));
    *sum = _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
    _mm_storeu_si128((__m128i *)qs, _mm512_cvtepi32_epi8(q0));
    _mm_storeu_si128((__m128i *)(qs + 16), _mm512_cvtepi32_epi8(q1));
    return d;
}

static void q8_0_quantize_avx512(const float *src, void *dst, int64_t n) {
    BlockQ8_0 *b = dst;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        int32_t sum;
        b[i].d = f2h_512(q8_block_avx512(src + i * QK8_0, b[i].qs, &sum));
    }
}

static void q8_1_quantize_avx512(const float *src, void *dst, int64_t n) {
    BlockQ8_1 *b = dst;
    for (int64_t i = 0; i < n / QK8_1; i++) {
        int32_t sum;
        const float d = q8_block_avx512(src + i * QK8_1, b[i].qs, &sum);
        b[i].d = f2h_512(d);
        b[i].s = f2h_512((float)sum * d);
    }
}

static void q8_0_dequant_avx512(const void *src, float *dst, int64_t n) {
    const BlockQ8_0 *b = src;
    for (int64_t i = 0; i < n / QK8_0; i++, dst += QK8_0) {
        const __m512 d = _mm512_set1_ps(h2f_512(b[i].d));
        for (int k = 0; k < 2; k++) {
            const __m512i q =
                _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(b[i].qs + 16 * k)));
            _mm512_storeu_ps(dst + 16 * k, _mm512_mul_ps(_mm512_cvtepi32_ps(q), d));
        }
    }
}

static void q4_0_dequant_avx512(const void *src, float *dst, int64_t n) {
    const BlockQ4_0 *b = src;
    for (int64_t i = 0; i < n / QK4_0; i++, dst += QK4_0) {
        const __m512 d = _mm512_set1_ps(h2f_512(b[i].d));
        const __m256i q = _mm256_sub_epi8(nibbles_vnni(b[i].qs), _mm256_set1_epi8(8));
        _mm512_storeu_ps(
            dst,
            _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_castsi256_si128(q))), d));
        _mm512_storeu_ps(
            dst + 16,
            _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_extracti128_si256(q, 1))),
                          d));
    }
}

SIMD_END

void quant_legacy_simd_fill(QuantOps *ops, SimdLevel level) {
    if (level == SIMD_AVX2) {
        ops[DTYPE_Q4_0].vec_dot = q4_0_dot_avx2;
        ops[DTYPE_Q4_0].vec_dot4 = q4_0_dot4_avx2;
        ops[DTYPE_Q4_0].dequant = q4_0_dequant_avx2;
        ops[DTYPE_Q4_1].vec_dot = q4_1_dot_avx2;
        ops[DTYPE_Q4_1].vec_dot4 = q4_1_dot4_avx2;
        ops[DTYPE_Q5_0].vec_dot = q5_0_dot_avx2;
        ops[DTYPE_Q5_0].vec_dot4 = q5_0_dot4_avx2;
        ops[DTYPE_Q5_1].vec_dot = q5_1_dot_avx2;
        ops[DTYPE_Q5_1].vec_dot4 = q5_1_dot4_avx2;
        ops[DTYPE_Q8_0].vec_dot = q8_0_dot_avx2;
        ops[DTYPE_Q8_0].vec_dot4 = q8_0_dot4_avx2;
        ops[DTYPE_Q8_0].dequant = q8_0_dequant_avx2;
        ops[DTYPE_Q8_0].quantize = q8_0_quantize_avx2;
        ops[DTYPE_Q8_1].quantize = q8_1_quantize_avx2;
    } else if (level == SIMD_AVX512) {
        ops[DTYPE_Q4_0].vec_dot = q4_0_dot_avx512;
        ops[DTYPE_Q4_0].dequant = q4_0_dequant_avx512;
        ops[DTYPE_Q4_1].vec_dot = q4_1_dot_avx512;
        ops[DTYPE_Q5_0].vec_dot = q5_0_dot_avx512;
        ops[DTYPE_Q5_1].vec_dot = q5_1_dot_avx512;
        ops[DTYPE_Q8_0].vec_dot = q8_0_dot_avx512;
        ops[DTYPE_Q8_0].dequant = q8_0_dequant_avx512;
        ops[DTYPE_Q8_0].quantize = q8_0_quantize_avx512;
        ops[DTYPE_Q8_1].quantize = q8_1_quantize_avx512;
    }
}

#else /* not x86: the scalar kernels stay */

void quant_legacy_simd_fill(QuantOps *ops, SimdLevel level) {
    (void)ops;
    (void)level;
}

#endif
