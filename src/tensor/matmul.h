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

/* ---- Prepared weights; several outputs of one input ----
 *
 * A model prepares each weight matrix once, at load: where this CPU has a
 * faster layout the rows are repacked into memory it provides (Q8_0 on
 * AVX-512 VNNI becomes the pre-packed panels of matmul_q8.h, the same size
 * as the rows), else the file's bytes are borrowed as they are. Every
 * output keeps the bits of matmul_forward over the original rows. */
typedef struct {
    const void *data; /* the rows, or the repacked panels (both borrowed) */
    DType type;       /* the type of the original rows */
    int N, K;
    bool repacked;
} MatmulWeight;

/* Bytes (a multiple of 64) matmul_weight_init needs to repack N rows of K
 * of 'type' on this CPU; 0 when they are used as they are. */
size_t matmul_weight_repack_bytes(DType type, int N, int K);

/* Prepares *w over 'data' (N rows of K of 'type', borrowed). With 'dst'
 * (matmul_weight_repack_bytes() bytes, 64-byte aligned, borrowed: it must
 * outlive *w) and a non-zero size the rows are repacked into it on 'tp'
 * (may be NULL) and 'data' is no longer read; with dst NULL or a zero size
 * *w borrows 'data'. ASSERTs matmul_supported(type). A model allocates one
 * buffer for all its matrices (one mapping, huge pages, no per-matrix
 * page faults). */
void matmul_weight_init(MatmulWeight *w, const void *data, DType type, int N, int K, void *dst,
                        TPool *tp);

/* Row r (< N) as K floats: the type's dequantization of the original row,
 * bit for bit (embedding lookups of tied weights). */
void matmul_weight_row(const MatmulWeight *w, int r, float *dst);

/* One output of matmul_multi: out (M, w->N) = x . W^T (+ bias). */
typedef struct {
    float *out;
    const MatmulWeight *w;
    const float *bias; /* w->N floats, or NULL */
} MatmulOut;

/* Per-row work fused into the conversion phase: fn(ctx, m) runs for every
 * activation row m, on the thread that then converts row m, before it
 * reads x row m (a norm writing x, say). Rows are independent. */
typedef struct {
    void (*fn)(void *ctx, int m);
    void *ctx;
} MatmulPrep;

/* outs[i].out = x . outs[i].w^T (+ bias) for i < n_outs, every weight of
 * the same type, K and layout (repacked or not; ASSERTed): one conversion of x, then one pass of
 * the pool over all the weights' rows (q, k and v, or gate and up, cost two hand-offs instead of
 * six or four). 'prep' may be NULL. 'scratch' holds matmul_scratch_bytes(type, M, K) bytes. Outputs
 * are bit-identical to matmul_forward of each weight alone. 'out's must not alias x. */
void matmul_multi(TPool *tp, const float *x, int M, const MatmulOut *outs, int n_outs,
                  const MatmulPrep *prep, void *scratch);

/* Naive twin: dequantizes each weight row and accumulates in double against
 * the unconverted F32 activations. Allocates a row buffer; for tests. */
void matmul_ref(float *out, const float *x, const void *w, DType wtype, const float *bias, int M,
                int N, int K);

#endif
