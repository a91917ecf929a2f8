/* quant_k_avx512.c - AVX-512 (F/BW/VL/DQ + VNNI) kernels of the K-quants:
 * vec_dot of Q4_K, Q5_K, Q6_K against Q8_K, Q8_K quantize, and dequant of
 * Q4_K and Q6_K (Q5_K dequant stays on the AVX2 kernel).
 *
 * Same contract as quant_k_avx2.c: the per-block integers equal the scalar
 * twin's and are combined with the same float operations; dequant and Q8_K
 * quantize are bit-identical to the twin.
 *
 * Dot products: vpdpbusd multiplies 64 unsigned weight quants by 64 signed
 * activations, four products per int32 lane. Every lane fits in int16
 * (4*63*128 < 2^15), so the sub-block scales are applied with one vpmaddwd
 * against a vector whose int32 lanes hold the scale in their low 16 bits.
 * Mins (Q4_K/Q5_K) and the -32 offset (Q6_K) come out through bsums. */
#include "tensor/quant_blocks_k.h"

#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>

#include "core/fp16.h"
#include "core/simd.h"

/* GCC takes the target pragma; clang (the fuzz build) ignores it and needs
 * its own attribute push for the intrinsics to compile. */
SIMD_BEGIN_AVX512

static inline int32_t hsum_i32x8(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
    return _mm_cvtsi128_si32(s);
}

static inline int32_t hsum_i32x16(__m512i v) {
    return hsum_i32x8(_mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1)));
}

/* F16C: exact, as fp16_to_f32, for every input but NaN payloads. */
static inline float half_to_f32(uint16_t h) { return _cvtsh_ss(h); }

static inline int byte_at(uint64_t v, int j) { return (int)((v >> (8 * j)) & 0xFF); }

/* sum_j m[j] * (bsums[2j] + bsums[2j+1]): the Q4_K/Q5_K mins term. */
static inline int32_t mins_dot_bsums(uint64_t m, const int16_t *bsums) {
    __m128i m16 = _mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)m));
    __m256i mm = _mm256_set_m128i(_mm_unpackhi_epi16(m16, m16), _mm_unpacklo_epi16(m16, m16));
    __m256i bs = _mm256_loadu_si256((const __m256i *)bsums);
    return hsum_i32x8(_mm256_madd_epi16(bs, mm));
}

/* 8 sub-block scales as int32 lanes s[0..8) (lanes 8..15 zero). */
static inline __m512i scales_u8x8(uint64_t sc) {
    return _mm512_cvtepu8_epi32(_mm_cvtsi64_si128((long long)sc));
}

/* Lane i of the result = lane idx[i] of v, for the "2c x8, 2c+1 x8" patterns. */
static inline __m512i pair_index(int c) {
    return _mm512_setr_epi32(2 * c, 2 * c, 2 * c, 2 * c, 2 * c, 2 * c, 2 * c, 2 * c, 2 * c + 1,
                             2 * c + 1, 2 * c + 1, 2 * c + 1, 2 * c + 1, 2 * c + 1, 2 * c + 1,
                             2 * c + 1);
}

/* 64 nibbles of chunk c as bytes: low nibbles (elements 64c..+31) then high. */
static inline __m512i nibbles_x64(const uint8_t *qs) {
    __m256i v = _mm256_loadu_si256((const __m256i *)qs);
    __m512i w = _mm512_inserti64x4(_mm512_castsi256_si512(v), _mm256_srli_epi16(v, 4), 1);
    return _mm512_and_si512(w, _mm512_set1_epi8(0x0F));
}

/* ---- Q4_K / Q5_K -------------------------------------------------------- */

static void q4_k_vec_dot_avx512(int64_t n, float *s, const void *w, const void *a) {
    const BlockQ4_K *x = w;
    const BlockQ8_K *y = a;
    float sumf = 0;
    for (int64_t b = 0; b < n / QK_K; b++) {
        uint64_t sc, m;
        quant_k_scales_mins(x[b].scales, &sc, &m);
        const __m512i sc32 = scales_u8x8(sc);
        __m512i acc = _mm512_setzero_si512();
#pragma GCC unroll 16
        for (int c = 0; c < 4; c++) {
            __m512i q = nibbles_x64(x[b].qs + 32 * c);
            __m512i av = _mm512_loadu_si512(y[b].qs + 64 * c);
            __m512i dp = _mm512_dpbusd_epi32(_mm512_setzero_si512(), q, av);
            __m512i scv = _mm512_permutexvar_epi32(pair_index(c), sc32);
            acc = _mm512_add_epi32(acc, _mm512_madd_epi16(dp, scv));
        }
        int32_t sumi = hsum_i32x16(acc);
        int32_t summ = mins_dot_bsums(m, y[b].bsums);
        const float d = y[b].d * half_to_f32(x[b].d);
        const float dmin = y[b].d * half_to_f32(x[b].dmin);
        sumf += d * (float)sumi - dmin * (float)summ;
    }
    *s = sumf;
}

static void q5_k_vec_dot_avx512(int64_t n, float *s, const void *w, const void *a) {
    const BlockQ5_K *x = w;
    const BlockQ8_K *y = a;
    const __m512i sixteen = _mm512_set1_epi8(16);
    float sumf = 0;
    for (int64_t b = 0; b < n / QK_K; b++) {
        uint64_t sc, m;
        quant_k_scales_mins(x[b].scales, &sc, &m);
        const __m512i sc32 = scales_u8x8(sc);
        __m256i qh = _mm256_loadu_si256((const __m256i *)x[b].qh);
        __m512i qh2 = _mm512_inserti64x4(_mm512_castsi256_si512(qh), qh, 1);
        __m512i acc = _mm512_setzero_si512();
#pragma GCC unroll 16
        for (int c = 0; c < 4; c++) {
            /* fifth bits: bit 2c of qh[l] for the low half, bit 2c+1 for the high */
            __m512i bits = _mm512_inserti64x4(_mm512_set1_epi8((char)(1 << (2 * c))),
                                              _mm256_set1_epi8((char)(2 << (2 * c))), 1);
            __mmask64 k = _mm512_test_epi8_mask(qh2, bits);
            __m512i q = nibbles_x64(x[b].qs + 32 * c);
            q = _mm512_mask_add_epi8(q, k, q, sixteen);
            __m512i av = _mm512_loadu_si512(y[b].qs + 64 * c);
            __m512i dp = _mm512_dpbusd_epi32(_mm512_setzero_si512(), q, av);
            __m512i scv = _mm512_permutexvar_epi32(pair_index(c), sc32);
            acc = _mm512_add_epi32(acc, _mm512_madd_epi16(dp, scv));
        }
        int32_t sumi = hsum_i32x16(acc);
        int32_t summ = mins_dot_bsums(m, y[b].bsums);
        const float d = y[b].d * half_to_f32(x[b].d);
        const float dmin = y[b].d * half_to_f32(x[b].dmin);
        sumf += d * (float)sumi - dmin * (float)summ;
    }
    *s = sumf;
}

/* 16 unsigned byte quants -> dst[0..16) = dl*q - ml (mul, then sub: as the twin). */
static inline void dequant_u8x16(__m128i q, float dl, float ml, float *dst) {
    __m512 f = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(q));
    _mm512_storeu_ps(dst, _mm512_sub_ps(_mm512_mul_ps(_mm512_set1_ps(dl), f), _mm512_set1_ps(ml)));
}

static void q4_k_dequant_avx512(const void *src, float *dst, int64_t n) {
    const BlockQ4_K *x = src;
    for (int64_t b = 0; b < n / QK_K; b++, dst += QK_K) {
        uint64_t sc, m;
        quant_k_scales_mins(x[b].scales, &sc, &m);
        const float d = half_to_f32(x[b].d), min = half_to_f32(x[b].dmin);
#pragma GCC unroll 16
        for (int c = 0; c < 4; c++) {
            __m512i q = nibbles_x64(x[b].qs + 32 * c);
            const float d0 = d * byte_at(sc, 2 * c), m0 = min * byte_at(m, 2 * c);
            const float d1 = d * byte_at(sc, 2 * c + 1), m1 = min * byte_at(m, 2 * c + 1);
            float *o = dst + 64 * c;
            dequant_u8x16(_mm512_extracti32x4_epi32(q, 0), d0, m0, o);
            dequant_u8x16(_mm512_extracti32x4_epi32(q, 1), d0, m0, o + 16);
            dequant_u8x16(_mm512_extracti32x4_epi32(q, 2), d1, m1, o + 32);
            dequant_u8x16(_mm512_extracti32x4_epi32(q, 3), d1, m1, o + 48);
        }
    }
}

/* ---- Q6_K --------------------------------------------------------------- */

/* Unsigned 6-bit quants of half h: u[0] = elements 128h+0..63, u[1] = +64..127. */
static inline void q6_k_half(const BlockQ6_K *x, int h, __m512i u[2]) {
    const __m512i low4 = _mm512_set1_epi8(0x0F), three = _mm512_set1_epi8(3);
    __m512i v = _mm512_loadu_si512(x->ql + 64 * h);
    __m256i qh = _mm256_loadu_si256((const __m256i *)(x->qh + 32 * h));
    /* bits 0-1 of qh[l] go with ql[l], bits 2-3 with ql[l+32]; 4-7 likewise, high nibbles */
    __m512i hb = _mm512_inserti64x4(_mm512_castsi256_si512(qh), _mm256_srli_epi16(qh, 2), 1);
    __m512i h_lo = _mm512_slli_epi16(_mm512_and_si512(hb, three), 4);
    __m512i h_hi = _mm512_slli_epi16(_mm512_and_si512(_mm512_srli_epi16(hb, 4), three), 4);
    u[0] = _mm512_or_si512(_mm512_and_si512(v, low4), h_lo);
    u[1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(v, 4), low4), h_hi);
}

/* sum_g sc[g]*sum((u-32)*a) = sum_g sc[g]*sum(u*a) - 32*sum_g sc[g]*bsums[g]. */
static void q6_k_vec_dot_avx512(int64_t n, float *s, const void *w, const void *a) {
    const BlockQ6_K *x = w;
    const BlockQ8_K *y = a;
    const __m512i quad = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
    const __m512i low16 = _mm512_set1_epi32(0xFFFF);
    float sumf = 0;
    for (int64_t b = 0; b < n / QK_K; b++) {
        __m128i sc8 = _mm_loadu_si128((const __m128i *)x[b].scales);
        /* int32 lanes with the signed scale in the low 16 bits, zero above (for vpmaddwd) */
        __m512i sc32 = _mm512_and_si512(_mm512_cvtepi8_epi32(sc8), low16);
        __m256i bs = _mm256_loadu_si256((const __m256i *)y[b].bsums);
        __m256i off = _mm256_madd_epi16(bs, _mm256_cvtepi8_epi16(sc8));
        __m512i acc = _mm512_setzero_si512();
#pragma GCC unroll 16
        for (int h = 0; h < 2; h++) {
            __m512i u[2];
            q6_k_half(&x[b], h, u);
#pragma GCC unroll 16
            for (int k = 0; k < 2; k++) {
                __m512i av = _mm512_loadu_si512(y[b].qs + 128 * h + 64 * k);
                __m512i dp = _mm512_dpbusd_epi32(_mm512_setzero_si512(), u[k], av);
                /* lanes 4i..4i+3 belong to sub-block 8h + 4k + i */
                __m512i idx = _mm512_add_epi32(quad, _mm512_set1_epi32(8 * h + 4 * k));
                __m512i scv = _mm512_permutexvar_epi32(idx, sc32);
                acc = _mm512_add_epi32(acc, _mm512_madd_epi16(dp, scv));
            }
        }
        int32_t sumi = hsum_i32x16(acc) - 32 * hsum_i32x8(off);
        const float d = y[b].d * half_to_f32(x[b].d);
        sumf += d * (float)sumi;
    }
    *s = sumf;
}

static void q6_k_dequant_avx512(const void *src, float *dst, int64_t n) {
    const BlockQ6_K *x = src;
    const __m512i off = _mm512_set1_epi8(32);
    for (int64_t b = 0; b < n / QK_K; b++, dst += QK_K) {
        const float d = half_to_f32(x[b].d);
#pragma GCC unroll 16
        for (int h = 0; h < 2; h++) {
            __m512i u[2];
            q6_k_half(&x[b], h, u);
#pragma GCC unroll 16
            for (int k = 0; k < 2; k++) {
                __m512i q = _mm512_sub_epi8(u[k], off);
                __m128i part[4] = {_mm512_extracti32x4_epi32(q, 0), _mm512_extracti32x4_epi32(q, 1),
                                   _mm512_extracti32x4_epi32(q, 2),
                                   _mm512_extracti32x4_epi32(q, 3)};
#pragma GCC unroll 16
                for (int i = 0; i < 4; i++) {
                    int g = 8 * h + 4 * k + i;
                    __m512 f = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(part[i]));
                    __m512 vd = _mm512_set1_ps(d * x[b].scales[g]);
                    _mm512_storeu_ps(dst + 16 * g, _mm512_mul_ps(vd, f));
                }
            }
        }
    }
}

/* ---- Q8_K --------------------------------------------------------------- */

static void q8_k_quantize_avx512(const float *src, void *dst, int64_t n) {
    BlockQ8_K *y = dst;
    const __m512i q_max = _mm512_set1_epi32(127);
    for (int64_t b = 0; b < n / QK_K; b++, src += QK_K) {
        __m512 v[16];
        __m512 vmax = _mm512_setzero_ps();
#pragma GCC unroll 16
        for (int g = 0; g < 16; g++) {
            v[g] = _mm512_loadu_ps(src + 16 * g);
            vmax = _mm512_max_ps(vmax, _mm512_abs_ps(v[g]));
        }
        const float amax = _mm512_reduce_max_ps(vmax);
        if (!amax) {
            memset(&y[b], 0, sizeof y[b]);
            continue;
        }
        /* the twin keeps the first element of largest magnitude (its sign matters) */
        const __m512 vamax = _mm512_set1_ps(amax);
        float max = 0;
#pragma GCC unroll 16
        for (int g = 0; g < 16; g++) {
            __mmask16 k = _mm512_cmp_ps_mask(_mm512_abs_ps(v[g]), vamax, _CMP_EQ_OQ);
            if (k) {
                max = src[16 * g + __builtin_ctz((unsigned)k)];
                break;
            }
        }
        const float iscale = -127.f / max;
        const __m512 vis = _mm512_set1_ps(iscale);
        __m256i s8[4];
#pragma GCC unroll 16
        for (int g = 0; g < 16; g++) {
            __m512i i = _mm512_min_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(vis, v[g])), q_max);
            _mm_storeu_si128((__m128i *)(y[b].qs + 16 * g), _mm512_cvtsepi32_epi8(i));
            s8[g % 4] =
                _mm256_add_epi32(_mm512_castsi512_si256(i), _mm512_extracti64x4_epi64(i, 1));
            if (g % 4 == 3) {
                __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(s8[0], s8[1]),
                                              _mm256_hadd_epi32(s8[2], s8[3]));
                __m128i s4 =
                    _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
                _mm_storel_epi64((__m128i *)(y[b].bsums + g - 3), _mm_packs_epi32(s4, s4));
            }
        }
        y[b].d = 1 / iscale;
    }
}

SIMD_END

void quant_k_avx512_fill(QuantOps *ops) {
    ops[DTYPE_Q4_K].vec_dot = q4_k_vec_dot_avx512;
    ops[DTYPE_Q4_K].dequant = q4_k_dequant_avx512;
    ops[DTYPE_Q5_K].vec_dot = q5_k_vec_dot_avx512;
    ops[DTYPE_Q6_K].vec_dot = q6_k_vec_dot_avx512;
    ops[DTYPE_Q6_K].dequant = q6_k_dequant_avx512;
    ops[DTYPE_Q8_K].quantize = q8_k_quantize_avx512;
}

#else

void quant_k_avx512_fill(QuantOps *ops) { (void)ops; }

#endif
