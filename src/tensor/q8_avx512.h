/* q8_avx512.h - internal: the AVX-512 VNNI pieces shared by the Q8_0 x Q8_0
 * dot product of one weight row and one activation row (q8_0_dot_avx512 in
 * quant_legacy_simd.c) and the packed batch kernels (matmul_q8.c), which
 * must give the same bits. Static inline; include only inside a
 * SIMD_BEGIN_AVX512 region.
 *
 * The float arithmetic of one dot of nb blocks (the contract both follow).
 * Per block b:
 *     s_b = the exact integer dot of block b's 32 quant pairs     (int32)
 *     p_b = fp32(d_w[b]) * fp32(d_a[b])                    (one float multiply)
 * Blocks go in groups of Q8V_GROUP = 16, block b = 16 g + t in lane t of a
 * 16-lane accumulator acc that starts at +0. Each full group, and a last
 * group of cnt > 8 blocks, does
 *     acc[t] = fma((float)s_b, p_b, acc[t])     (lanes past the row untouched)
 * and main = q8v_hsum(acc): lanes i + (i+8), then + 4, + 2, + 1.
 * A last group of 1 <= cnt <= 8 blocks ("short", CP = 4 lanes for cnt <= 4,
 * else 8) instead takes v_t = (float)s_b * p_b (v_t = +0 for t >= cnt) and
 *     T = (v0 + v2) + (v1 + v3)                                   (CP = 4)
 *     T = ((v0 + v2) + (v1 + v3)) + ((v4 + v6) + (v5 + v7))       (CP = 8)
 * and the result is main + T; without a short group it is main.
 * How s_b is computed is free (integers are exact): the row kernel reduces
 * pairwise VNNI dots (q8v_reduce8), the packed kernels dot pre-transposed
 * blocks (q8v_transpose8) lane by lane and sum 16 outputs at a time with
 * q8v_hsum16 / q8v_sum4_ps, trees equal to the ones above.
 *
 * Both layouts come from the same 8 "pair" registers of 16 blocks:
 * register p holds blocks A(p) and B(p) = A(p) + 4 side by side, with
 * A(p) = p for p < 4 and p + 4 for p >= 4, so that the in-lane 4x4
 * transposes below end with block t in lane t. */
#ifndef CGPT_TENSOR_Q8_AVX512_H
#define CGPT_TENSOR_Q8_AVX512_H

#include <immintrin.h>
#include <stdint.h>

#include "tensor/quant_blocks_legacy.h"

#define Q8V_GROUP 16 /* blocks per accumulator */

/* First block of pair register p (its second block is 4 further on). */
static inline __attribute__((always_inline)) int q8v_pair_block(int p) { return p < 4 ? p : p + 4; }

/* Lanes of a group with 'cnt' (1..16) blocks. */
static inline __attribute__((always_inline)) __mmask16 q8v_mask(int64_t cnt) {
    return cnt >= Q8V_GROUP ? (__mmask16)0xffff : (__mmask16)((1u << cnt) - 1);
}

/* The 32 quant bytes of blocks A(p), B(p) of the group at b (cnt blocks
 * valid; absent ones read as 0 and never touch memory). */
static inline __attribute__((always_inline)) __m512i q8v_load_pair(const BlockQ8_0 *b, int p,
                                                                   int64_t cnt) {
    const int a = q8v_pair_block(p);
    if (cnt >= Q8V_GROUP)
        return _mm512_inserti64x4(
            _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)b[a].qs)),
            _mm256_loadu_si256((const __m256i *)b[a + 4].qs), 1);
    if (a >= cnt)
        return _mm512_setzero_si512();
    const __m256i lo = _mm256_loadu_si256((const __m256i *)b[a].qs);
    if (a + 4 >= cnt)
        return _mm512_castsi256_si512(lo);
    return _mm512_inserti64x4(_mm512_castsi256_si512(lo),
                              _mm256_loadu_si256((const __m256i *)b[a + 4].qs), 1);
}

/* The fp16 scales of the group's blocks as 16 halves (0 past cnt). */
static inline __attribute__((always_inline)) __m256i q8v_scales_h(const BlockQ8_0 *b, int64_t cnt) {
    __m256i h;
    if (cnt >= Q8V_GROUP) {
        h = _mm256_setr_epi16((short)b[0].d, (short)b[1].d, (short)b[2].d, (short)b[3].d,
                              (short)b[4].d, (short)b[5].d, (short)b[6].d, (short)b[7].d,
                              (short)b[8].d, (short)b[9].d, (short)b[10].d, (short)b[11].d,
                              (short)b[12].d, (short)b[13].d, (short)b[14].d, (short)b[15].d);
    } else {
        h = _mm256_setzero_si256();
        for (int t = 0; t < cnt; t++)
            h = _mm256_mask_set1_epi16(h, (__mmask16)(1u << t), (short)b[t].d);
    }
    return h;
}

/* The fp16 scales of the group's blocks as 16 floats (0 past cnt). */
static inline __attribute__((always_inline)) __m512 q8v_scales(const BlockQ8_0 *b, int64_t cnt) {
    return _mm512_cvtph_ps(q8v_scales_h(b, cnt));
}

/* In each 128-bit lane, r[0..3] as rows of a 4x4 dword matrix -> columns. */
static inline __attribute__((always_inline)) void q8v_transpose4(__m512i r0, __m512i r1, __m512i r2,
                                                                 __m512i r3, __m512i y[4]) {
    const __m512i t0 = _mm512_unpacklo_epi32(r0, r1), t1 = _mm512_unpackhi_epi32(r0, r1);
    const __m512i t2 = _mm512_unpacklo_epi32(r2, r3), t3 = _mm512_unpackhi_epi32(r2, r3);
    y[0] = _mm512_unpacklo_epi64(t0, t2);
    y[1] = _mm512_unpackhi_epi64(t0, t2);
    y[2] = _mm512_unpacklo_epi64(t1, t3);
    y[3] = _mm512_unpackhi_epi64(t1, t3);
}

/* 8 pair registers -> o[k]: lane t = dword k (quant bytes 4k..4k+3) of block t. */
static inline __attribute__((always_inline)) void q8v_transpose8(const __m512i r[8], __m512i o[8]) {
    __m512i y[4], z[4];
    q8v_transpose4(r[0], r[1], r[2], r[3], y);
    q8v_transpose4(r[4], r[5], r[6], r[7], z);
#pragma GCC unroll 4
    for (int d = 0; d < 4; d++) {
        o[d] = _mm512_shuffle_i32x4(y[d], z[d], 0x88);
        o[4 + d] = _mm512_shuffle_i32x4(y[d], z[d], 0xdd);
    }
}

/* Sum of each 128-bit lane of r0..r3: lane position c = sum of r_c's four dwords. */
static inline __attribute__((always_inline)) __m512i q8v_sum4(__m512i r0, __m512i r1, __m512i r2,
                                                              __m512i r3) {
    const __m512i t0 =
        _mm512_add_epi32(_mm512_unpacklo_epi32(r0, r1), _mm512_unpackhi_epi32(r0, r1));
    const __m512i t1 =
        _mm512_add_epi32(_mm512_unpacklo_epi32(r2, r3), _mm512_unpackhi_epi32(r2, r3));
    return _mm512_add_epi32(_mm512_unpacklo_epi64(t0, t1), _mm512_unpackhi_epi64(t0, t1));
}

/* 8 pair registers of per-dword dots -> lane t = block t's whole dot. */
static inline __attribute__((always_inline)) __m512i q8v_reduce8(const __m512i z[8]) {
    const __m512i u = q8v_sum4(z[0], z[1], z[2], z[3]), v = q8v_sum4(z[4], z[5], z[6], z[7]);
    return _mm512_add_epi32(_mm512_shuffle_i32x4(u, v, 0x88), _mm512_shuffle_i32x4(u, v, 0xdd));
}

/* Lanes per row of a short last group of cnt blocks; 0: not short. */
static inline __attribute__((always_inline)) int q8v_short_cp(int64_t cnt) {
    return cnt <= 0 || cnt > 8 ? 0 : cnt <= 4 ? 4 : 8;
}

/* (v0 + v2) + (v1 + v3) of one 128-bit lane. */
static inline __attribute__((always_inline)) float q8v_sum4_ss(__m128 v) {
    const __m128 h = _mm_add_ps(v, _mm_movehl_ps(v, v));
    return _mm_cvtss_f32(_mm_add_ss(h, _mm_movehdup_ps(h)));
}

/* The contract's T of a short group's products v (lane t = v_t). */
static inline __attribute__((always_inline)) float q8v_short_sum(__m512 v, int cp) {
    const float lo = q8v_sum4_ss(_mm512_castps512_ps128(v));
    return cp == 4 ? lo : lo + q8v_sum4_ss(_mm512_extractf32x4_ps(v, 1));
}

/* In each 128-bit lane, position c = (r_c[0] + r_c[2]) + (r_c[1] + r_c[3]):
 * q8v_sum4_ss of that lane of r_c, for four registers at once. */
static inline __attribute__((always_inline)) __m512 q8v_sum4_ps(__m512 r0, __m512 r1, __m512 r2,
                                                                __m512 r3) {
    const __m512 t0 = _mm512_add_ps(_mm512_unpacklo_ps(r0, r1), _mm512_unpackhi_ps(r0, r1));
    const __m512 t1 = _mm512_add_ps(_mm512_unpacklo_ps(r2, r3), _mm512_unpackhi_ps(r2, r3));
    return _mm512_add_ps(_mm512_shuffle_ps(t0, t1, 0x44), _mm512_shuffle_ps(t0, t1, 0xee));
}

/* One group's step of the contract. */
static inline __attribute__((always_inline)) __m512 q8v_fold(__m512 acc, __m512i s, __m512 p,
                                                             __mmask16 m) {
    return _mm512_mask3_fmadd_ps(_mm512_cvtepi32_ps(s), p, acc, m);
}

/* The contract's final sum. */
static inline __attribute__((always_inline)) float q8v_hsum(__m512 acc) {
    const __m256 h8 =
        _mm256_add_ps(_mm512_castps512_ps256(acc),
                      _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc), 1)));
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(h8), _mm256_extractf128_ps(h8, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_movehdup_ps(h));
    return _mm_cvtss_f32(h);
}

/* q8v_hsum of 16 accumulators at once: lane 4 L + i = q8v_hsum(a[4 i + L]).
 * The same additions per output: halves (i, i+8), then (i, i+4) of the 8
 * left, (i, i+2), (0, 1). */
static inline __attribute__((always_inline)) __m512 q8v_hsum16(const __m512 a[16]) {
    __m512 b[8], c[4], d[2];
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) /* lanes 0-7: a[2i], 8-15: a[2i+1], x[i] + x[i+8] */
        b[i] = _mm512_add_ps(_mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0x44),
                             _mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0xee));
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) /* 128-bit lane L: a[4i + L], y[i] + y[i+4] */
        c[i] = _mm512_add_ps(_mm512_shuffle_f32x4(b[2 * i], b[2 * i + 1], 0x88),
                             _mm512_shuffle_f32x4(b[2 * i], b[2 * i + 1], 0xdd));
#pragma GCC unroll 2
    for (int i = 0; i < 2; i++) /* per 128-bit lane: z0+z2, z1+z3 of c[2i], then of c[2i+1] */
        d[i] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(c[2 * i]),
                                                                 _mm512_castps_pd(c[2 * i + 1]))),
                             _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(c[2 * i]),
                                                                 _mm512_castps_pd(c[2 * i + 1]))));
    return _mm512_add_ps(_mm512_shuffle_ps(d[0], d[1], 0x88), _mm512_shuffle_ps(d[0], d[1], 0xdd));
}

#endif
