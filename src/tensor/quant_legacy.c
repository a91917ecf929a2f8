/* quant_legacy.c - placeholder until the kernels land. */
#include "tensor/quant.h"
void quant_legacy_fill(QuantOps *ops, SimdLevel level) { (void)ops; (void)level; }
