/* quant_blocks_iq.h - byte layouts of the non-linear 4-bit types IQ4_NL,
 * IQ4_XS and MXFP4, bit-identical to ggml's ggml-common.h, with their
 * codebooks. Internal to quant_iq*.c and their tests.
 *
 * In every 32-element group, element j < 16 is the low nibble of qs[j] and
 * element j + 16 its high nibble; the nibble indexes a 16-entry codebook.
 *
 * IQ4_NL (32 elements): value = d * IQ4_NL_VALUES[nibble], d an IEEE half.
 * IQ4_XS (256 elements): eight groups of 32; group ib has a 6-bit scale ls
 *   (low 4 bits: nibble ib % 2 of scales_l[ib / 2]; top 2 bits: bits
 *   2ib..2ib+1 of scales_h); value = d * (ls - 32) * IQ4_NL_VALUES[nibble].
 * MXFP4 (32 elements): one E8M0 byte e and E2M1 codes; value =
 *   2^(e - 128) * MXFP4_VALUES[nibble] (the codebook is twice the E2M1
 *   values, hence the halved scale; quant_iq_e8m0_half()). */
#ifndef CGPT_TENSOR_QUANT_BLOCKS_IQ_H
#define CGPT_TENSOR_QUANT_BLOCKS_IQ_H

#include <stdint.h>
#include <string.h>

#include "tensor/quant.h"

#define QK_IQ4_NL 32
#define QK_MXFP4 32

typedef struct __attribute__((packed)) {
    uint16_t d;                /* scale */
    uint8_t qs[QK_IQ4_NL / 2]; /* codebook indices */
} BlockIQ4_NL;

typedef struct {
    uint16_t d;                  /* super-block scale */
    uint16_t scales_h;           /* top 2 bits of the 8 group scales */
    uint8_t scales_l[QK_K / 64]; /* low 4 bits of the 8 group scales */
    uint8_t qs[QK_K / 2];        /* codebook indices */
} BlockIQ4_XS;

typedef struct __attribute__((packed)) {
    uint8_t e;                /* E8M0 shared exponent */
    uint8_t qs[QK_MXFP4 / 2]; /* E2M1 codes */
} BlockMXFP4;

_Static_assert(sizeof(BlockIQ4_NL) == 18, "IQ4_NL block size");
_Static_assert(sizeof(BlockIQ4_XS) == 136, "IQ4_XS block size");
_Static_assert(sizeof(BlockMXFP4) == 17, "MXFP4 block size");

/* ggml's kvalues_iq4nl (sorted, as the quantizer's search needs). */
static const int8_t IQ4_NL_VALUES[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                         1,    13,   25,  38,  53,  69,  89,  113};
/* ggml's kvalues_mxfp4: 2 x E2M1 (sign bit 3, then 0 0.5 1 1.5 2 3 4 6). */
static const int8_t MXFP4_VALUES[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

/* 2^(e - 128) exactly, as ggml's GGML_E8M0_TO_FP32_HALF: e = 0 and 1 are
 * the subnormals 2^-128 and 2^-127, e = 255 is 2^127 (no NaN). */
static inline float quant_iq_e8m0_half(uint8_t e) {
    uint32_t bits = e < 2 ? 0x00200000u << e : (uint32_t)(e - 1) << 23;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* Group ib's 6-bit scale of an IQ4_XS block, centred: -32..31. */
static inline int quant_iq4_xs_scale(const BlockIQ4_XS *x, int ib) {
    int lo = (x->scales_l[ib / 2] >> (4 * (ib % 2))) & 0xF;
    int hi = (x->scales_h >> (2 * ib)) & 3;
    return (lo | (hi << 4)) - 32;
}

/* The AVX2 fill (quant_iq_avx2.c), called by quant_iq_fill() at SIMD_AVX2. */
void quant_iq_avx2_fill(QuantOps *ops);

#endif
