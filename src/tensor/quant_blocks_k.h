/* quant_blocks_k.h - byte layouts of the K-quant super-blocks (QK_K = 256
 * elements each), bit-identical to ggml's ggml-common.h, plus the small
 * helpers that both the scalar and the SIMD kernels need. Internal to the
 * quant_k*.c kernels and their tests; everything else goes through QuantOps
 * and dtype_row_bytes().
 *
 * Scales 'd' and 'dmin' are IEEE half bit patterns (core/fp16.h), except in
 * Q8_K where 'd' is a float.
 *
 * Q4_K / Q5_K: eight sub-blocks of 32 elements. Sub-block j has a 6-bit
 * scale sc[j] and a 6-bit min m[j] packed in scales[12] (see
 * quant_k_scale_min()); element value = d*sc[j]*q - dmin*m[j]. Elements
 * 64c .. 64c+31 are the low nibbles of qs[32c .. 32c+31] (sub-block 2c),
 * elements 64c+32 .. 64c+63 their high nibbles (sub-block 2c+1). In Q5_K,
 * bit 2c of qh[l] is the fifth bit (value 16) of element 64c+l, bit 2c+1
 * that of element 64c+32+l.
 *
 * Q6_K: sixteen sub-blocks of 16 elements, int8 scales; element value =
 * d*scales[e/16]*(q-32), q in 0..63. For each half h (128 elements) with
 * ql' = ql + 64h, qh' = qh + 32h and l = 0..31:
 *   element 128h+l    : ql'[l]    low nibble, qh'[l] bits 0-1
 *   element 128h+l+32 : ql'[l+32] low nibble, qh'[l] bits 2-3
 *   element 128h+l+64 : ql'[l]    high nibble, qh'[l] bits 4-5
 *   element 128h+l+96 : ql'[l+32] high nibble, qh'[l] bits 6-7
 *
 * Q8_K: value = d*qs[e]; bsums[g] is the sum of qs[16g .. 16g+15]. */
#ifndef CGPT_TENSOR_QUANT_BLOCKS_K_H
#define CGPT_TENSOR_QUANT_BLOCKS_K_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "tensor/dtype.h"
#include "tensor/quant.h"

#define QK_K_SCALE_BYTES 12 /* packed 6-bit scales+mins of Q4_K/Q5_K */

typedef struct {
    uint16_t d;                       /* scale of the sub-block scales */
    uint16_t dmin;                    /* scale of the sub-block mins */
    uint8_t scales[QK_K_SCALE_BYTES]; /* 8 x (6-bit scale, 6-bit min) */
    uint8_t qs[QK_K / 2];             /* nibbles */
} BlockQ4_K;

typedef struct {
    uint16_t d;
    uint16_t dmin;
    uint8_t scales[QK_K_SCALE_BYTES];
    uint8_t qh[QK_K / 8]; /* fifth bits */
    uint8_t qs[QK_K / 2]; /* low nibbles */
} BlockQ5_K;

typedef struct {
    uint8_t ql[QK_K / 2];     /* low 4 bits */
    uint8_t qh[QK_K / 4];     /* high 2 bits */
    int8_t scales[QK_K / 16]; /* sub-block scales */
    uint16_t d;               /* super-block scale */
} BlockQ6_K;

typedef struct {
    float d;                  /* scale (may be negative, as ggml) */
    int8_t qs[QK_K];          /* quants */
    int16_t bsums[QK_K / 16]; /* sums of qs in groups of 16 */
} BlockQ8_K;

_Static_assert(sizeof(BlockQ4_K) == 144, "Q4_K block size");
_Static_assert(sizeof(BlockQ5_K) == 176, "Q5_K block size");
_Static_assert(sizeof(BlockQ6_K) == 210, "Q6_K block size");
_Static_assert(sizeof(BlockQ8_K) == 292, "Q8_K block size");

/* Round to nearest, ties to even, for |f| <= 2^22 - 1: adding 1.5*2^23
 * leaves the integer in the low mantissa bits. Identical to ggml's
 * nearest_int and to cvtps2dq under the default rounding mode. Shared by
 * the K-quant and IQ quantizers. */
static inline int quant_nearest_int(float f) {
    float v = f + 12582912.f;
    int32_t i;
    memcpy(&i, &v, sizeof i);
    return (i & 0x007fffff) - 0x00400000;
}

/* Fit x[0..n) ~ scale*L + min with L in 0..nmax, min <= 0, minimising the
 * weighted squared error (mad: the weighted absolute error): start from
 * the min/max grid, then try nstep+1 grids of nmax + rmin + rdelta*is
 * levels across the range, refitting scale and min by least squares on
 * each. Returns scale; *the_min = -min. ggml's make_qkx2_quants (use_mad:
 * Q2_K; not: Q4_K / Q5_K). In quant_k.c. */
float quant_fit_scale_min(int n, int nmax, const float *x, const float *w, uint8_t *L,
                          float *the_min, uint8_t *Laux, float rmin, float rdelta, int nstep,
                          bool mad);

/* Unpack scale and min of sub-block j (0..7) from the 12 packed bytes:
 * bytes 0-3 hold scales 0-3 in their low 6 bits, bytes 4-7 mins 0-3; bytes
 * 8-11 hold the low 4 bits of scale 4+i (low nibble) and min 4+i (high
 * nibble), whose top 2 bits sit in bits 6-7 of bytes i and 4+i. */
static inline void quant_k_scale_min(int j, const uint8_t *q, uint8_t *sc, uint8_t *m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

/* All eight scales and mins at once, a word at a time, for the SIMD kernels:
 * byte j (little-endian) of *sc and *m is what quant_k_scale_min(j) gives.
 * Returned in registers, not arrays, so no store has to be reloaded. */
static inline void quant_k_scales_mins(const uint8_t *q, uint64_t *sc, uint64_t *m) {
    uint32_t w0, w1, w2;
    memcpy(&w0, q, 4);
    memcpy(&w1, q + 4, 4);
    memcpy(&w2, q + 8, 4);
    uint32_t s_lo = w0 & 0x3f3f3f3fu, m_lo = w1 & 0x3f3f3f3fu;
    uint32_t s_hi = (w2 & 0x0f0f0f0fu) | (((w0 >> 6) & 0x03030303u) << 4);
    uint32_t m_hi = ((w2 >> 4) & 0x0f0f0f0fu) | (((w1 >> 6) & 0x03030303u) << 4);
    *sc = s_lo | (uint64_t)s_hi << 32;
    *m = m_lo | (uint64_t)m_hi << 32;
}

/* The SIMD fills (quant_k_avx2.c, quant_k_avx512.c), called by quant_k_fill()
 * at exactly their level; each writes only the functions it implements. */
void quant_k_avx2_fill(QuantOps *ops);
void quant_k_avx512_fill(QuantOps *ops);

#endif
