/* matmul.h - out (M, N) = x (M, K) . W^T (+ bias), W N rows of K in any
 * supported dtype.
 *
 * The weight matrix is what the GGUF file stores for a linear layer: ne =
 * [K, N], N rows of K contiguous elements (quantized rows are whole blocks).
 * matmul_forward() converts the M activation rows once into W's
 * vec_dot_type (quant.h; F32 activations are used as they are for F32, F16
 * and BF16 weights), then the pool's threads split the N weight rows; each
 * thread walks its rows in cache-sized tiles and dots every tile row with all
 * M activation rows, so the weights stream from memory once per batch.
 *
 * Every output element is one vec_dot of one weight row with one activation
 * row: the result does not depend on M, on where a row sits in the batch or
 * on the thread count (batching is invisible, bit for bit).
 *
 * F32 weights use ops_kernels()->dot; other types use quant_ops(wtype), so a
 * type is supported exactly when its kernels exist (matmul_supported). */
#ifndef CGPT_TENSOR_MATMUL_H
#define CGPT_TENSOR_MATMUL_H

#include <stdbool.h>
#include <stddef.h>

#include "core/tpool.h"
#include "tensor/dtype.h"

/* True when matmul_forward() can use weights of type 't'. */
bool matmul_supported(DType t);

/* Bytes of scratch matmul_forward() needs for M activation rows of K
 * elements against weights of type 'wtype' (0 when x is used as it is).
 * K must be a multiple of wtype's block size. */
size_t matmul_scratch_bytes(DType wtype, int M, int K);

/* out[m*N + n] = sum_k x[m*K + k] * W[n][k] (+ bias[n]); bias may be NULL.
 * Borrows everything; 'scratch' holds matmul_scratch_bytes(wtype, M, K)
 * bytes (may be NULL when that is 0). 'out' must not alias x. 'tp' may be
 * NULL (runs on the caller). ASSERTs matmul_supported(wtype). */
void matmul_forward(TPool *tp, float *out, const float *x, const void *w, DType wtype,
                    const float *bias, int M, int N, int K, void *scratch);

/* Naive twin: dequantizes each weight row and accumulates in double against
 * the unconverted F32 activations. Allocates a row buffer; for tests. */
void matmul_ref(float *out, const float *x, const void *w, DType wtype, const float *bias, int M,
                int N, int K);

#endif
