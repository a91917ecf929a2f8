/* quant.c - builds one QuantOps table per SIMD level, lazily and once. */
#include "tensor/quant.h"

#include <pthread.h>
#include <stddef.h>

static QuantOps TABLES[SIMD_AVX512 + 1][DTYPE_COUNT];
static pthread_once_t ONCE = PTHREAD_ONCE_INIT;
static SimdLevel BEST;

static void build(void) {
    for (int want = SIMD_SCALAR; want <= SIMD_AVX512; want++) {
        for (int l = SIMD_SCALAR; l <= want; l++) {
            QuantOps before[DTYPE_COUNT];
            for (int t = 0; t < DTYPE_COUNT; t++)
                before[t] = TABLES[want][t];
            quant_float_fill(TABLES[want], (SimdLevel)l);
            quant_legacy_fill(TABLES[want], (SimdLevel)l);
            quant_k_fill(TABLES[want], (SimdLevel)l);
            quant_k2_fill(TABLES[want], (SimdLevel)l);
            quant_iq_fill(TABLES[want], (SimdLevel)l);
            /* a vec_dot4 must give its level's vec_dot bits: one left from
             * a lower level under a new vec_dot goes */
            for (int t = 0; t < DTYPE_COUNT; t++) {
                QuantOps *o = &TABLES[want][t];
                if (o->vec_dot != before[t].vec_dot && o->vec_dot4 == before[t].vec_dot4)
                    o->vec_dot4 = NULL;
            }
        }
    }
    BEST = cpu_simd_level();
}

const QuantOps *quant_ops_at(DType t, SimdLevel level) {
    pthread_once(&ONCE, build);
    if ((int)t < 0 || t >= DTYPE_COUNT || level < SIMD_SCALAR || level > SIMD_AVX512)
        return NULL;
    const QuantOps *o = &TABLES[level][t];
    return o->dequant ? o : NULL;
}

const QuantOps *quant_ops(DType t) {
    pthread_once(&ONCE, build);
    return quant_ops_at(t, BEST);
}
