/* quant_k2_avx2.c - AVX2 (+FMA+F16C) vec_dot and vec_dot4 of Q2_K and Q3_K
 * against Q8_K.
 *
 * Compiled without -march: the kernels sit inside SIMD_BEGIN_AVX2 and are
 * only reached through quant_k2_avx2_fill(), which quant_k2_fill() calls at
 * SIMD_AVX2 (the AVX-512 level inherits them). dequant stays scalar (model
 * load and the quantize tool only).
 *
 * Each kernel forms the per-super-block integers of its scalar twin in
 * quant_k2.c and combines them with the same float operations in the same
 * order, so vec_dot, vec_dot4 and the twin give the same bits. The 2-bit
 * (Q2_K) or 3-bit unsigned (Q3_K: q + 4, 0..7) quants meet the signed
 * activations in maddubs (no saturation: 2 x 7 x 128 < 2^15), the 16-element
 * scales are applied with madd, and the Q2_K mins and the Q3_K -4 offset
 * come out through the activations' bsums. */
#include "tensor/quant_blocks_k2.h"

#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>

#include "core/fp16.h"
#include "core/simd.h"

SIMD_BEGIN_AVX2

static inline int32_t hsum_i32x8(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
    return _mm_cvtsi128_si32(s);
}

static inline const BlockQ8_K *row_q8k(const void *a, size_t la, int r) {
    return (const BlockQ8_K *)(const void *)((const char *)a + (size_t)r * la);
}

/* The 16 Q3_K scales, centred (-32..31), as int16: the low nibbles of
 * bytes 0-7 are scales 0-7 and their high nibbles scales 8-15; bytes 8-11
 * hold the top 2 bits, scale j's at bits 2(j/4) of byte 8 + j%4. Four
 * 32-bit words of four scales each. */
static inline __m256i q3_k_scales_i16(const uint8_t *sc) {
    uint32_t a0, a1, t;
    memcpy(&a0, sc, 4);
    memcpy(&a1, sc + 4, 4);
    memcpy(&t, sc + 8, 4);
    const uint32_t lo4 = 0x0f0f0f0fu, lo2 = 0x03030303u;
    uint32_t s0 = (a0 & lo4) | ((t & lo2) << 4);
    uint32_t s1 = (a1 & lo4) | (((t >> 2) & lo2) << 4);
    uint32_t s2 = ((a0 >> 4) & lo4) | (((t >> 4) & lo2) << 4);
    uint32_t s3 = ((a1 >> 4) & lo4) | (((t >> 6) & lo2) << 4);
    __m128i u = _mm_set_epi32((int)s3, (int)s2, (int)s1, (int)s0);
    return _mm256_cvtepi8_epi16(_mm_sub_epi8(u, _mm_set1_epi8(32)));
}

/* vec_dot (R = 1) and vec_dot4 (R = 4) of Q2_K (three = 0) and Q3_K
 * (three = 1) from one body, so a row's bits are the same in both: per
 * half h and quarter j, 32 unsigned quants (sub-blocks 8h+2j and 8h+2j+1 in
 * the two 128-bit lanes) against the activations, each lane's int16 pairs
 * scaled by its sub-block's scale. */
static inline __attribute__((always_inline)) void k2_dot(int64_t n, float *s, size_t ls,
                                                         const void *w, const void *a, size_t la,
                                                         const int three, const int R) {
    const BlockQ2_K *x2 = w;
    const BlockQ3_K *x3 = w;
    const BlockQ8_K *y[4];
    for (int r = 0; r < R; r++)
        y[r] = row_q8k(a, la, r);
    const __m256i m3 = _mm256_set1_epi8(3), one = _mm256_set1_epi8(1);
    float sumf[4] = {0, 0, 0, 0};
    for (int64_t b = 0; b < n / QK_K; b++) {
        __m256i sc16, mn16 = _mm256_setzero_si256();
        if (three) {
            sc16 = q3_k_scales_i16(x3[b].scales);
        } else {
            __m128i raw = _mm_loadu_si128((const __m128i *)x2[b].scales);
            const __m128i lo4 = _mm_set1_epi8(0x0F);
            sc16 = _mm256_cvtepu8_epi16(_mm_and_si128(raw, lo4));
            mn16 = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(raw, 4), lo4));
        }
        __m256i acc[4];
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            if (three) { /* sum_g s_g sum (u - 4) a = sum_g s_g sum u a - 4 sum_g s_g bsums_g */
                __m256i bs = _mm256_loadu_si256((const __m256i *)y[r][b].bsums);
                acc[r] = _mm256_sub_epi32(_mm256_setzero_si256(),
                                          _mm256_slli_epi32(_mm256_madd_epi16(bs, sc16), 2));
            } else {
                acc[r] = _mm256_setzero_si256();
            }
        }
        const __m256i hm = three ? _mm256_loadu_si256((const __m256i *)x3[b].hmask) : m3;
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            const __m256i sch = _mm256_broadcastsi128_si256(h ? _mm256_extracti128_si256(sc16, 1)
                                                              : _mm256_castsi256_si128(sc16));
            const __m256i q = _mm256_loadu_si256(
                (const __m256i *)(three ? x3[b].qs + 32 * h : x2[b].qs + 32 * h));
#pragma GCC unroll 4
            for (int j = 0; j < 4; j++) {
                __m256i u = _mm256_and_si256(_mm256_srli_epi16(q, 2 * j), m3);
                if (three) {
                    __m256i hb = _mm256_and_si256(_mm256_srli_epi16(hm, 4 * h + j), one);
                    u = _mm256_or_si256(u, _mm256_slli_epi16(hb, 2));
                }
                const __m256i pick =
                    _mm256_set_m128i(_mm_set1_epi16((short)(((4 * j + 3) << 8) | (4 * j + 2))),
                                     _mm_set1_epi16((short)(((4 * j + 1) << 8) | (4 * j))));
                const __m256i sk = _mm256_shuffle_epi8(sch, pick);
#pragma GCC unroll 4
                for (int r = 0; r < R; r++) {
                    __m256i av =
                        _mm256_loadu_si256((const __m256i *)(y[r][b].qs + 128 * h + 32 * j));
                    acc[r] = _mm256_add_epi32(acc[r],
                                              _mm256_madd_epi16(_mm256_maddubs_epi16(u, av), sk));
                }
            }
        }
        const float xd = _cvtsh_ss(three ? x3[b].d : x2[b].d);
        const float xmin = three ? 0.f : _cvtsh_ss(x2[b].dmin);
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            int32_t sumi = hsum_i32x8(acc[r]);
            const float d = y[r][b].d * xd;
            if (three) {
                sumf[r] += d * (float)sumi;
            } else {
                __m256i bs = _mm256_loadu_si256((const __m256i *)y[r][b].bsums);
                int32_t summ = hsum_i32x8(_mm256_madd_epi16(bs, mn16));
                const float dmin = y[r][b].d * xmin;
                sumf[r] += d * (float)sumi - dmin * (float)summ;
            }
        }
    }
    for (int r = 0; r < R; r++)
        s[(size_t)r * ls] = sumf[r];
}

static void q2_k_vec_dot_avx2(int64_t n, float *s, const void *w, const void *a) {
    k2_dot(n, s, 0, w, a, 0, 0, 1);
}

static void q2_k_vec_dot4_avx2(int64_t n, float *s, size_t ls, const void *w, const void *a,
                               size_t la, const float *sc, size_t lsc) {
    (void)sc, (void)lsc; /* Q8_K blocks hold their scale as a float */
    k2_dot(n, s, ls, w, a, la, 0, 4);
}

static void q3_k_vec_dot_avx2(int64_t n, float *s, const void *w, const void *a) {
    k2_dot(n, s, 0, w, a, 0, 1, 1);
}

static void q3_k_vec_dot4_avx2(int64_t n, float *s, size_t ls, const void *w, const void *a,
                               size_t la, const float *sc, size_t lsc) {
    (void)sc, (void)lsc;
    k2_dot(n, s, ls, w, a, la, 1, 4);
}

SIMD_END

void quant_k2_avx2_fill(QuantOps *ops) {
    ops[DTYPE_Q2_K].vec_dot = q2_k_vec_dot_avx2;
    ops[DTYPE_Q2_K].vec_dot4 = q2_k_vec_dot4_avx2;
    ops[DTYPE_Q3_K].vec_dot = q3_k_vec_dot_avx2;
    ops[DTYPE_Q3_K].vec_dot4 = q3_k_vec_dot4_avx2;
}

#else

void quant_k2_avx2_fill(QuantOps *ops) { (void)ops; }

#endif
