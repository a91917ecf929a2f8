/* quant_float.c - placeholder until the kernels land. */
#include "tensor/quant.h"
void quant_float_fill(QuantOps *ops, SimdLevel level) { (void)ops; (void)level; }
