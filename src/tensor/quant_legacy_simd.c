/* quant_legacy_simd.c - placeholder, kernels landing. */
#include "tensor/quant_simd.h"
void quant_legacy_simd_fill(QuantOps *ops, SimdLevel level) { (void)ops; (void)level; }
