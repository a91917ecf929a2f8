/* quant_k_avx2.c - AVX2 (+FMA+F16C) kernels of the K-quants: vec_dot of
 * Q4_K, Q5_K, Q6_K against Q8_K, Q8_K quantize, and dequant of Q4_K, Q5_K,
 * Q6_K.
 *
 * Compiled without -march: the kernels sit inside a target pragma and are
 * only reached through quant_k_avx2_fill(), which quant.c calls when the
 * CPU has AVX2. Each kernel computes the same per-block integers as its
 * scalar twin in quant_k.c and combines them with the same float
 * operations, so results match the twin (vec_dot to the last bit in
 * practice; dequant and Q8_K quantize bit for bit by contract, which is why
 * no FMA is used where the twin rounds twice).
 *
 * Dot products multiply unsigned weight quants by signed Q8_K activations
 * (maddubs), apply the sub-block scales with madd, and take the mins
 * (Q4_K/Q5_K) or the -32 offset (Q6_K) out through the activations' bsums. */
#include "tensor/quant_blocks_k.h"

#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>

#include "core/fp16.h"
#include "core/simd.h"

/* GCC takes the target pragma; clang (the fuzz build) ignores it and needs
 * its own attribute push for the intrinsics to compile. */
SIMD_BEGIN_AVX2

static inline int32_t hsum_i32x8(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
    return _mm_cvtsi128_si32(s);
}

/* F16C: exact, as fp16_to_f32, for every input but NaN payloads. */
static inline float half_to_f32(uint16_t h) { return _cvtsh_ss(h); }

static inline int byte_at(uint64_t v, int j) { return (int)((v >> (8 * j)) & 0xFF); }

/* The 8 scales of a Q4_K/Q5_K block as int16, in both 128-bit lanes. */
static inline __m256i scales_i16(uint64_t sc) {
    return _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)sc)));
}

/* Every int16 lane = int16 element j (0..7) of a 128-bit lane of s. */
static inline __m256i pick_i16(__m256i s, int j) {
    return _mm256_shuffle_epi8(s, _mm256_set1_epi16((short)(((2 * j + 1) << 8) | (2 * j))));
}

/* ---- Q4_K --------------------------------------------------------------- */

/* vec_dot4 of the K-quants: four activation rows (a + r * la bytes, out
 * s[r * ls]) against one weight row, each weight block unpacked once (its
 * quants, scales and mins) and used for all four; per row, the integers
 * and the float operations of vec_dot in its order, so the bits are
 * vec_dot's. */
static inline const BlockQ8_K *row_q8k(const void *a, size_t la, int r) {
    return (const BlockQ8_K *)(const void *)((const char *)a + (size_t)r * la);
}

/* The mins of a Q4_K/Q5_K block as mins_dot_bsums pairs them. */
static inline __m256i mins_i16x2(uint64_t m) {
    __m128i m16 = _mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)m));
    return _mm256_set_m128i(_mm_unpackhi_epi16(m16, m16), _mm_unpacklo_epi16(m16, m16));
}

/* 32 unsigned byte quants -> dst[0..32) = dl*q - ml (mul, then sub: as the twin). */
static inline void dequant_u8x32(__m256i q, float dl, float ml, float *dst) {
    const __m256 vd = _mm256_set1_ps(dl), vm = _mm256_set1_ps(ml);
    __m128i halves[2] = {_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1)};
#pragma GCC unroll 16
    for (int h = 0; h < 2; h++) {
        __m256 f0 = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(halves[h]));
        __m256 f1 = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(halves[h], 8)));
        _mm256_storeu_ps(dst + 16 * h, _mm256_sub_ps(_mm256_mul_ps(vd, f0), vm));
        _mm256_storeu_ps(dst + 16 * h + 8, _mm256_sub_ps(_mm256_mul_ps(vd, f1), vm));
    }
}

static void q4_k_dequant_avx2(const void *src, float *dst, int64_t n) {
    const BlockQ4_K *x = src;
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    for (int64_t b = 0; b < n / QK_K; b++, dst += QK_K) {
        uint64_t sc, m;
        quant_k_scales_mins(x[b].scales, &sc, &m);
        const float d = half_to_f32(x[b].d), min = half_to_f32(x[b].dmin);
#pragma GCC unroll 16
        for (int c = 0; c < 4; c++) {
            __m256i v = _mm256_loadu_si256((const __m256i *)(x[b].qs + 32 * c));
            dequant_u8x32(_mm256_and_si256(v, low4), d * byte_at(sc, 2 * c),
                          min * byte_at(m, 2 * c), dst + 64 * c);
            dequant_u8x32(_mm256_and_si256(_mm256_srli_epi16(v, 4), low4),
                          d * byte_at(sc, 2 * c + 1), min * byte_at(m, 2 * c + 1),
                          dst + 64 * c + 32);
        }
    }
}

/* ---- Q5_K --------------------------------------------------------------- */

/* The 5-bit quants of chunk c (elements 64c..64c+63) as two 32-byte halves. */
static inline void q5_k_chunk(const BlockQ5_K *x, __m256i qh, int c, __m256i *lo, __m256i *hi) {
    const __m256i low4 = _mm256_set1_epi8(0x0F), one = _mm256_set1_epi8(1);
    __m256i v = _mm256_loadu_si256((const __m256i *)(x->qs + 32 * c));
    __m256i h0 = _mm256_and_si256(_mm256_srli_epi16(qh, 2 * c), one);
    __m256i h1 = _mm256_and_si256(_mm256_srli_epi16(qh, 2 * c + 1), one);
    *lo = _mm256_or_si256(_mm256_and_si256(v, low4), _mm256_slli_epi16(h0, 4));
    *hi =
        _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(v, 4), low4), _mm256_slli_epi16(h1, 4));
}

/* vec_dot (R = 1) and vec_dot4 (R = 4) of Q4_K (five = 0) and Q5_K
 * (five = 1), which differ only in how a 64-element chunk's quants unpack:
 * per row the same integers and float operations in the same order, so the
 * two give the same bits. The mins term is sum_j m[j] (bsums[2j] +
 * bsums[2j+1]). */
static inline __attribute__((always_inline)) void k45_dot(int64_t n, float *s, size_t ls,
                                                          const void *w, const void *a, size_t la,
                                                          const int five, const int R) {
    const BlockQ4_K *x4 = w;
    const BlockQ5_K *x5 = w;
    const BlockQ8_K *y[4];
    for (int r = 0; r < R; r++)
        y[r] = row_q8k(a, la, r);
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    float sumf[4] = {0, 0, 0, 0};
    for (int64_t b = 0; b < n / QK_K; b++) {
        uint64_t sc, m;
        quant_k_scales_mins(five ? x5[b].scales : x4[b].scales, &sc, &m);
        __m256i qh = five ? _mm256_loadu_si256((const __m256i *)x5[b].qh) : low4;
        const __m256i sc16 = scales_i16(sc);
        __m256i acc[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(),
                          _mm256_setzero_si256()};
#pragma GCC unroll 16
        for (int c = 0; c < 4; c++) {
            __m256i lo, hi;
            if (five) {
                q5_k_chunk(&x5[b], qh, c, &lo, &hi);
            } else {
                __m256i v = _mm256_loadu_si256((const __m256i *)(x4[b].qs + 32 * c));
                lo = _mm256_and_si256(v, low4);
                hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low4);
            }
            __m256i s0 = pick_i16(sc16, 2 * c), s1 = pick_i16(sc16, 2 * c + 1);
#pragma GCC unroll 16
            for (int r = 0; r < R; r++) {
                const int8_t *qa = y[r][b].qs;
                __m256i a0 = _mm256_loadu_si256((const __m256i *)(qa + 64 * c));
                __m256i a1 = _mm256_loadu_si256((const __m256i *)(qa + 64 * c + 32));
                __m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, a0), s0);
                __m256i p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, a1), s1);
                acc[r] = _mm256_add_epi32(acc[r], _mm256_add_epi32(p0, p1));
            }
        }
        const __m256i mm = mins_i16x2(m);
        const float xd = half_to_f32(five ? x5[b].d : x4[b].d);
        const float xmin = half_to_f32(five ? x5[b].dmin : x4[b].dmin);
#pragma GCC unroll 16
        for (int r = 0; r < R; r++) {
            int32_t sumi = hsum_i32x8(acc[r]);
            __m256i bs = _mm256_loadu_si256((const __m256i *)y[r][b].bsums);
            int32_t summ = hsum_i32x8(_mm256_madd_epi16(bs, mm));
            const float d = y[r][b].d * xd;
            const float dmin = y[r][b].d * xmin;
            sumf[r] += d * (float)sumi - dmin * (float)summ;
        }
    }
    for (int r = 0; r < R; r++)
        s[(size_t)r * ls] = sumf[r];
}

static void q4_k_vec_dot_avx2(int64_t n, float *s, const void *w, const void *a) {
    k45_dot(n, s, 0, w, a, 0, 0, 1);
}

static void q4_k_vec_dot4_avx2(int64_t n, float *s, size_t ls, const void *w, const void *a,
                               size_t la, const float *sc, size_t lsc) {
    (void)sc, (void)lsc; /* Q8_K blocks hold their scale as a float */
    k45_dot(n, s, ls, w, a, la, 0, 4);
}

static void q5_k_vec_dot_avx2(int64_t n, float *s, const void *w, const void *a) {
    k45_dot(n, s, 0, w, a, 0, 1, 1);
}

static void q5_k_vec_dot4_avx2(int64_t n, float *s, size_t ls, const void *w, const void *a,
                               size_t la, const float *sc, size_t lsc) {
    (void)sc, (void)lsc;
    k45_dot(n, s, ls, w, a, la, 1, 4);
}

static void q5_k_dequant_avx2(const void *src, float *dst, int64_t n) {
    const BlockQ5_K *x = src;
    for (int64_t b = 0; b < n / QK_K; b++, dst += QK_K) {
        uint64_t sc, m;
        quant_k_scales_mins(x[b].scales, &sc, &m);
        const float d = half_to_f32(x[b].d), min = half_to_f32(x[b].dmin);
        __m256i qh = _mm256_loadu_si256((const __m256i *)x[b].qh);
#pragma GCC unroll 16
        for (int c = 0; c < 4; c++) {
            __m256i lo, hi;
            q5_k_chunk(&x[b], qh, c, &lo, &hi);
            dequant_u8x32(lo, d * byte_at(sc, 2 * c), min * byte_at(m, 2 * c), dst + 64 * c);
            dequant_u8x32(hi, d * byte_at(sc, 2 * c + 1), min * byte_at(m, 2 * c + 1),
                          dst + 64 * c + 32);
        }
    }
}

/* ---- Q6_K --------------------------------------------------------------- */

/* The unsigned 6-bit quants (0..63) of half h: u[k] = elements 128h+32k .. +31. */
static inline void q6_k_half(const BlockQ6_K *x, int h, __m256i u[4]) {
    const __m256i low4 = _mm256_set1_epi8(0x0F), three = _mm256_set1_epi8(3);
    __m256i v0 = _mm256_loadu_si256((const __m256i *)(x->ql + 64 * h));
    __m256i v1 = _mm256_loadu_si256((const __m256i *)(x->ql + 64 * h + 32));
    __m256i qh = _mm256_loadu_si256((const __m256i *)(x->qh + 32 * h));
    __m256i h0 = _mm256_slli_epi16(_mm256_and_si256(qh, three), 4);
    __m256i h1 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), three), 4);
    __m256i h2 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), three), 4);
    __m256i h3 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), three), 4);
    u[0] = _mm256_or_si256(_mm256_and_si256(v0, low4), h0);
    u[1] = _mm256_or_si256(_mm256_and_si256(v1, low4), h1);
    u[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(v0, 4), low4), h2);
    u[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(v1, 4), low4), h3);
}

/* vec_dot (R = 1) and vec_dot4 (R = 4) of Q6_K, the same per-row
 * operations for both: sum_g sc[g] sum((u - 32) a) = sum_g sc[g] sum(u a)
 * - 32 sum_g sc[g] bsums[g]. */
static inline __attribute__((always_inline)) void
q6_k_dot(int64_t n, float *s, size_t ls, const void *w, const void *a, size_t la, const int R) {
    const BlockQ6_K *x = w;
    const BlockQ8_K *y[4];
    for (int r = 0; r < R; r++)
        y[r] = row_q8k(a, la, r);
    float sumf[4] = {0, 0, 0, 0};
    for (int64_t b = 0; b < n / QK_K; b++) {
        __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)x[b].scales));
        __m256i acc[4];
#pragma GCC unroll 16
        for (int r = 0; r < R; r++) {
            __m256i bs = _mm256_loadu_si256((const __m256i *)y[r][b].bsums);
            acc[r] = _mm256_sub_epi32(_mm256_setzero_si256(),
                                      _mm256_slli_epi32(_mm256_madd_epi16(bs, sc16), 5));
        }
#pragma GCC unroll 16
        for (int h = 0; h < 2; h++) {
            __m256i sch = _mm256_broadcastsi128_si256(h ? _mm256_extracti128_si256(sc16, 1)
                                                        : _mm256_castsi256_si128(sc16));
            __m256i u[4];
            q6_k_half(&x[b], h, u);
#pragma GCC unroll 16
            for (int k = 0; k < 4; k++) {
                __m256i pick =
                    _mm256_set_m128i(_mm_set1_epi16((short)(((4 * k + 3) << 8) | (4 * k + 2))),
                                     _mm_set1_epi16((short)(((4 * k + 1) << 8) | (4 * k))));
                __m256i sk = _mm256_shuffle_epi8(sch, pick);
#pragma GCC unroll 16
                for (int r = 0; r < R; r++) {
                    __m256i av =
                        _mm256_loadu_si256((const __m256i *)(y[r][b].qs + 128 * h + 32 * k));
                    __m256i p = _mm256_maddubs_epi16(u[k], av);
                    acc[r] = _mm256_add_epi32(acc[r], _mm256_madd_epi16(p, sk));
                }
            }
        }
        const float xd = half_to_f32(x[b].d);
#pragma GCC unroll 16
        for (int r = 0; r < R; r++) {
            int32_t sumi = hsum_i32x8(acc[r]);
            const float d = y[r][b].d * xd;
            sumf[r] += d * (float)sumi;
        }
    }
    for (int r = 0; r < R; r++)
        s[(size_t)r * ls] = sumf[r];
}

static void q6_k_vec_dot_avx2(int64_t n, float *s, const void *w, const void *a) {
    q6_k_dot(n, s, 0, w, a, 0, 1);
}

static void q6_k_vec_dot4_avx2(int64_t n, float *s, size_t ls, const void *w, const void *a,
                               size_t la, const float *sc, size_t lsc) {
    (void)sc, (void)lsc;
    q6_k_dot(n, s, ls, w, a, la, 4);
}

/* 16 signed byte quants -> dst[0..16) = dl*q. */
static inline void dequant_i8x16(__m128i q, float dl, float *dst) {
    const __m256 vd = _mm256_set1_ps(dl);
    __m256 f0 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q));
    __m256 f1 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(q, 8)));
    _mm256_storeu_ps(dst, _mm256_mul_ps(vd, f0));
    _mm256_storeu_ps(dst + 8, _mm256_mul_ps(vd, f1));
}

static void q6_k_dequant_avx2(const void *src, float *dst, int64_t n) {
    const BlockQ6_K *x = src;
    const __m256i off = _mm256_set1_epi8(32);
    for (int64_t b = 0; b < n / QK_K; b++, dst += QK_K) {
        const float d = half_to_f32(x[b].d);
#pragma GCC unroll 16
        for (int h = 0; h < 2; h++) {
            __m256i u[4];
            q6_k_half(&x[b], h, u);
#pragma GCC unroll 16
            for (int k = 0; k < 4; k++) {
                __m256i q = _mm256_sub_epi8(u[k], off);
                int g = 8 * h + 2 * k;
                float *o = dst + 128 * h + 32 * k;
                dequant_i8x16(_mm256_castsi256_si128(q), d * x[b].scales[g], o);
                dequant_i8x16(_mm256_extracti128_si256(q, 1), d * x[b].scales[g + 1], o + 16);
            }
        }
    }
}

/* ---- Q8_K --------------------------------------------------------------- */

/* Sums of the 8 int32 lanes of each of s[0..4), in order. */
static inline __m128i hsum4_i32x8(const __m256i s[4]) {
    __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(s[0], s[1]), _mm256_hadd_epi32(s[2], s[3]));
    return _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
}

static void q8_k_quantize_avx2(const float *src, void *dst, int64_t n) {
    BlockQ8_K *y = dst;
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256i q_max = _mm256_set1_epi32(127);
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (int64_t b = 0; b < n / QK_K; b++, src += QK_K) {
        __m256 vmax = _mm256_setzero_ps();
        for (int j = 0; j < QK_K; j += 8)
            vmax = _mm256_max_ps(vmax, _mm256_andnot_ps(sign, _mm256_loadu_ps(src + j)));
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(vmax), _mm256_extractf128_ps(vmax, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        const float amax = _mm_cvtss_f32(m4);
        if (!amax) {
            memset(&y[b], 0, sizeof y[b]);
            continue;
        }
        /* the twin keeps the first element of largest magnitude (its sign matters) */
        const __m256 vamax = _mm256_set1_ps(amax);
        float max = 0;
        for (int j = 0; j < QK_K; j += 8) {
            __m256 ax = _mm256_andnot_ps(sign, _mm256_loadu_ps(src + j));
            int mask = _mm256_movemask_ps(_mm256_cmp_ps(ax, vamax, _CMP_EQ_OQ));
            if (mask) {
                max = src[j + __builtin_ctz((unsigned)mask)];
                break;
            }
        }
        const float iscale = -127.f / max;
        const __m256 vis = _mm256_set1_ps(iscale);
#pragma GCC unroll 16
        for (int q = 0; q < 4; q++) { /* 64 elements, 4 bsums per pass */
            __m256i i[8], sums[4];
#pragma GCC unroll 16
            for (int k = 0; k < 8; k++) {
                __m256 v = _mm256_mul_ps(vis, _mm256_loadu_ps(src + 64 * q + 8 * k));
                i[k] = _mm256_min_epi32(_mm256_cvtps_epi32(v), q_max);
            }
#pragma GCC unroll 16
            for (int g = 0; g < 4; g++)
                sums[g] = _mm256_add_epi32(i[2 * g], i[2 * g + 1]);
#pragma GCC unroll 16
            for (int h = 0; h < 2; h++) {
                __m256i p0 = _mm256_packs_epi32(i[4 * h], i[4 * h + 1]);
                __m256i p1 = _mm256_packs_epi32(i[4 * h + 2], i[4 * h + 3]);
                __m256i bytes = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(p0, p1), order);
                _mm256_storeu_si256((__m256i *)(y[b].qs + 64 * q + 32 * h), bytes);
            }
            __m128i s4 = hsum4_i32x8(sums);
            _mm_storel_epi64((__m128i *)(y[b].bsums + 4 * q), _mm_packs_epi32(s4, s4));
        }
        y[b].d = 1 / iscale;
    }
}

SIMD_END

void quant_k_avx2_fill(QuantOps *ops) {
    ops[DTYPE_Q4_K].vec_dot = q4_k_vec_dot_avx2;
    ops[DTYPE_Q4_K].vec_dot4 = q4_k_vec_dot4_avx2;
    ops[DTYPE_Q4_K].dequant = q4_k_dequant_avx2;
    ops[DTYPE_Q5_K].vec_dot = q5_k_vec_dot_avx2;
    ops[DTYPE_Q5_K].vec_dot4 = q5_k_vec_dot4_avx2;
    ops[DTYPE_Q5_K].dequant = q5_k_dequant_avx2;
    ops[DTYPE_Q6_K].vec_dot = q6_k_vec_dot_avx2;
    ops[DTYPE_Q6_K].vec_dot4 = q6_k_vec_dot4_avx2;
    ops[DTYPE_Q6_K].dequant = q6_k_dequant_avx2;
    ops[DTYPE_Q8_K].quantize = q8_k_quantize_avx2;
}

#else

void quant_k_avx2_fill(QuantOps *ops) { (void)ops; }

#endif
