/* quant_simd.h - internal: the x86 SIMD halves of the float and legacy
 * kernel families. quant_float_fill / quant_legacy_fill call these for
 * levels above SIMD_SCALAR; each writes the entries it has at exactly
 * 'level' and nothing on a compiler without x86 intrinsics. */
#ifndef CGPT_TENSOR_QUANT_SIMD_H
#define CGPT_TENSOR_QUANT_SIMD_H

#include "tensor/quant.h"

void quant_float_simd_fill(QuantOps *ops, SimdLevel level);
void quant_legacy_simd_fill(QuantOps *ops, SimdLevel level);

#endif
