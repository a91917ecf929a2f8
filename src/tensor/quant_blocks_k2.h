/* quant_blocks_k2.h - byte layouts of the 2- and 3-bit K-quant super-blocks
 * Q2_K and Q3_K (QK_K = 256 elements each), bit-identical to ggml's
 * ggml-common.h, and the element/scale accessors their scalar and SIMD
 * kernels share. Internal to quant_k2*.c and their tests.
 *
 * Both split a block into halves h (128 elements) and, inside a half, four
 * quarters j of 32 elements: element e = 128h + 32j + l (l = 0..31) keeps its
 * low 2 bits in bits 2j..2j+1 of qs[32h + l]. Scales are per 16 elements
 * (sub-block g = e / 16).
 *
 * Q2_K: scales[g] low nibble = scale sc, high nibble = min m (4 bits each);
 *   value = d*sc*q - dmin*m, q = 0..3; d and dmin are IEEE halves.
 * Q3_K: bit (e / 32) of hmask[e % 32] set means q = low2, clear means
 *   q = low2 - 4 (q = -4..3); 16 6-bit scales s packed in scales[12]
 *   (quant_k2_q3_scale()); value = d*(s - 32)*q. */
#ifndef CGPT_TENSOR_QUANT_BLOCKS_K2_H
#define CGPT_TENSOR_QUANT_BLOCKS_K2_H

#include <stdint.h>

#include "tensor/quant_blocks_k.h"

typedef struct {
    uint8_t scales[QK_K / 16]; /* low nibble: scale, high nibble: min */
    uint8_t qs[QK_K / 4];      /* 2-bit quants */
    uint16_t d;                /* scale of the scales */
    uint16_t dmin;             /* scale of the mins */
} BlockQ2_K;

typedef struct {
    uint8_t hmask[QK_K / 8]; /* high bits (set: no -4 offset) */
    uint8_t qs[QK_K / 4];    /* low 2 bits */
    uint8_t scales[12];      /* 16 x 6-bit scales, offset by 32 */
    uint16_t d;              /* super-block scale */
} BlockQ3_K;

_Static_assert(sizeof(BlockQ2_K) == 84, "Q2_K block size");
_Static_assert(sizeof(BlockQ3_K) == 110, "Q3_K block size");

/* Low 2 bits of element e (0..255) of a Q2_K/Q3_K qs array. */
static inline int quant_k2_low2(const uint8_t *qs, int e) {
    return (qs[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3;
}

/* Scale j (0..15) of a Q3_K block, centred: -32..31. The low 4 bits are the
 * low (j < 8) or high (j >= 8) nibble of scales[j % 8]; the top 2 bits are
 * bits 2(j/4)..2(j/4)+1 of scales[8 + j % 4]. */
static inline int quant_k2_q3_scale(const uint8_t *sc, int j) {
    int lo = j < 8 ? (sc[j] & 0xF) : (sc[j - 8] >> 4);
    int hi = (sc[8 + j % 4] >> (2 * (j / 4))) & 3;
    return (lo | (hi << 4)) - 32;
}

/* The AVX2 fill (quant_k2_avx2.c), called by quant_k2_fill() at SIMD_AVX2. */
void quant_k2_avx2_fill(QuantOps *ops);

#endif
