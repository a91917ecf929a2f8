/* quant_k.c - placeholder until the kernels land. */
#include "tensor/quant.h"
void quant_k_fill(QuantOps *ops, SimdLevel level) { (void)ops; (void)level; }
