/* quant.h - per-type kernels: dequantize, quantize, dot product.
 *
 * For each supported weight type T there is one QuantOps entry:
 *   dequant(src, dst, n)  - n elements (a multiple of T's block size) of T -> F32
 *   quantize(src, dst, n) - F32 -> T, deterministic; block layout identical
 *                           to ggml (quantize_row_*_ref), so files we write
 *                           load in llama.cpp and vice versa
 *   vec_dot(n, s, w, a)   - *s = sum_i w[i]*a[i], with w a row of T and a a
 *                           row of T's vec_dot_type (the activation format)
 *   vec_dot4(n, s, ls, w, a, la, sc, lsc) - optional (NULL: none):
 *                           s[r * ls] for r in 0..3 = vec_dot(n, w, a + r *
 *                           la bytes), bit for bit, with the weight row's
 *                           blocks unpacked once for the four activation
 *                           rows (matmul's batches); sc: those rows' block
 *                           scales as floats (quant_act_scales; row r's at
 *                           sc + r * lsc), so that a legacy type does not
 *                           widen the same halves again for every weight
 *                           row; NULL for the K-quants (Q8_K holds floats)
 *   vec_dot_type          - F32 for F32/F16/BF16 (exact float activations),
 *                           Q8_0 for Q4_0/Q5_0/Q8_0, Q8_1 for Q4_1/Q5_1,
 *                           Q8_K for the K-quants and IQ4_XS, Q8_0 for
 *                           IQ4_NL and MXFP4 (as ggml)
 * The activation types Q8_0, Q8_1, Q8_K have entries too (quantize, dequant)
 * so matmul can convert activations once per batch.
 *
 * Every kernel has a scalar twin (level SIMD_SCALAR) that is never optimised;
 * SIMD levels replace individual functions. quant_ops() picks the CPU's best
 * level once; quant_ops_at() gives a specific level for tests. Both return
 * NULL for types without kernels. All pointers may be unaligned. */
#ifndef CGPT_TENSOR_QUANT_H
#define CGPT_TENSOR_QUANT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/cpu.h"
#include "tensor/dtype.h"

typedef void (*QuantDequantFn)(const void *src, float *dst, int64_t n);
typedef void (*QuantQuantizeFn)(const float *src, void *dst, int64_t n);
typedef void (*QuantDotFn)(int64_t n, float *s, const void *w, const void *a);
typedef void (*QuantDot4Fn)(int64_t n, float *s, size_t ls, const void *w, const void *a, size_t la,
                            const float *sc, size_t lsc);

typedef struct {
    QuantDequantFn dequant;
    QuantQuantizeFn quantize;
    QuantDotFn vec_dot;   /* NULL for activation-only types */
    QuantDot4Fn vec_dot4; /* NULL where the level has none */
    DType vec_dot_type;
} QuantOps;

const QuantOps *quant_ops(DType t);

/* The block scales of a row of n elements of activation type 'at', as
 * vec_dot4 reads them: dst[2i] = block i's d, dst[2i + 1] = its s (Q8_1;
 * 0 for Q8_0), widened exactly. Returns the floats written: 2 n / 32 for
 * Q8_0 and Q8_1, 0 (nothing written) for other types. */
int64_t quant_act_scales(DType at, const void *row, int64_t n, float *dst);
const QuantOps *quant_ops_at(DType t, SimdLevel level);

/* Fill functions, one per kernel family (each in its own file). Each writes
 * the entries it implements at exactly 'level' into 'ops' (indexed by DType),
 * leaving others untouched; quant.c calls them for SCALAR first, then each
 * higher level up to the one wanted. */
void quant_float_fill(QuantOps *ops, SimdLevel level);  /* F32 F16 BF16 */
void quant_legacy_fill(QuantOps *ops, SimdLevel level); /* Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q8_1 */
void quant_k_fill(QuantOps *ops, SimdLevel level);      /* Q4_K Q5_K Q6_K Q8_K */
void quant_k2_fill(QuantOps *ops, SimdLevel level);     /* Q2_K Q3_K */
void quant_iq_fill(QuantOps *ops, SimdLevel level);     /* IQ4_NL IQ4_XS MXFP4 */

#endif
