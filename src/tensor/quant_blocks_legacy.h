/* quant_blocks_legacy.h - byte layouts of the legacy quant blocks (32
 * elements each), bit-identical to ggml's ggml-common.h. Internal to the
 * quant_legacy*.c kernels and their tests; everything else goes through
 * QuantOps and dtype_row_bytes().
 *
 * Scales ('d', 'm', 's') are IEEE half bit patterns (core/fp16.h). In the
 * 4-bit blocks, element j (0..15) is the low nibble of qs[j] and element
 * j+16 the high nibble. In the 5-bit blocks, bit j of the little-endian
 * 32-bit qh is the fifth bit of element j (j = 0..31).
 *
 * The structs are packed (alignment 1), so a block pointer may point
 * anywhere: rows in a GGUF mapping have no alignment beyond the tensor's. */
#ifndef CGPT_TENSOR_QUANT_BLOCKS_LEGACY_H
#define CGPT_TENSOR_QUANT_BLOCKS_LEGACY_H

#include <stdint.h>

#include "tensor/dtype.h"

typedef struct __attribute__((packed)) {
    uint16_t d;            /* scale: x = (q - 8) * d */
    uint8_t qs[QK4_0 / 2]; /* nibbles */
} BlockQ4_0;

typedef struct __attribute__((packed)) {
    uint16_t d;            /* scale */
    uint16_t m;            /* min: x = q * d + m */
    uint8_t qs[QK4_1 / 2]; /* nibbles */
} BlockQ4_1;

typedef struct __attribute__((packed)) {
    uint16_t d;            /* scale: x = (q - 16) * d */
    uint8_t qh[4];         /* fifth bits, little-endian uint32 */
    uint8_t qs[QK5_0 / 2]; /* low nibbles */
} BlockQ5_0;

typedef struct __attribute__((packed)) {
    uint16_t d;            /* scale */
    uint16_t m;            /* min: x = q * d + m */
    uint8_t qh[4];         /* fifth bits, little-endian uint32 */
    uint8_t qs[QK5_1 / 2]; /* low nibbles */
} BlockQ5_1;

typedef struct __attribute__((packed)) {
    uint16_t d;       /* scale: x = q * d */
    int8_t qs[QK8_0]; /* quants, in [-127, 127] when made by quantize */
} BlockQ8_0;

typedef struct __attribute__((packed)) {
    uint16_t d;       /* scale: x = q * d */
    uint16_t s;       /* fp16(d * sum(qs)), used by the Q4_1/Q5_1 dots */
    int8_t qs[QK8_1]; /* quants, in [-127, 127] when made by quantize */
} BlockQ8_1;

_Static_assert(sizeof(BlockQ4_0) == 18, "block_q4_0 is 18 bytes");
_Static_assert(sizeof(BlockQ4_1) == 20, "block_q4_1 is 20 bytes");
_Static_assert(sizeof(BlockQ5_0) == 22, "block_q5_0 is 22 bytes");
_Static_assert(sizeof(BlockQ5_1) == 24, "block_q5_1 is 24 bytes");
_Static_assert(sizeof(BlockQ8_0) == 34, "block_q8_0 is 34 bytes");
_Static_assert(sizeof(BlockQ8_1) == 36, "block_q8_1 is 36 bytes");

#endif
