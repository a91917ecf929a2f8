/* matmul.c - threaded x . W^T over weights of any supported type.
 *
 * Two phases on the pool: (1) convert the M activation rows to the weight
 * type's vec_dot_type (threads split rows), (2) threads split the N weight
 * rows. Within a thread the rows are walked in tiles of about
 * MATMUL_TILE_BYTES of weights: the tile stays in L2 while all M
 * activation rows stream past it. Decode (M = 1) reads each weight byte
 * once; prefill reuses each tile M times. */
#include "tensor/matmul.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "tensor/ops.h"
#include "tensor/quant.h"

#define MATMUL_TILE_BYTES (64 * 1024)

bool matmul_supported(DType t) {
    if (t == DTYPE_F32)
        return true;
    const DTypeInfo *info = dtype_info(t);
    if (!info || !info->supported)
        return false;
    const QuantOps *q = quant_ops(t);
    return q && q->vec_dot && q->dequant && (q->vec_dot_type == DTYPE_F32 || quant_ops(q->vec_dot_type));
}

/* The activation format for weights of type t. */
static DType act_type(DType t) {
    if (t == DTYPE_F32)
        return DTYPE_F32;
    const QuantOps *q = quant_ops(t);
    ASSERT(q);
    return q->vec_dot_type;
}

size_t matmul_scratch_bytes(DType wtype, int M, int K) {
    DType at = act_type(wtype);
    if (at == DTYPE_F32)
        return 0;
    return (size_t)dtype_row_bytes(at, K) * (size_t)M;
}

typedef struct {
    float *out;
    const float *x;
    const void *w;
    const float *bias;
    int M, N, K;
    DType wtype, atype;
    size_t w_row_bytes, a_row_bytes;
    const void *act;   /* activations in atype */
    void *scratch;
    const QuantOps *wq, *aq;
    OpsDotFn dot;
} MatmulCtx;

static void convert_task(void *vctx, int ith, int nth) {
    MatmulCtx *c = vctx;
    long lo, hi;
    tpool_range(c->M, ith, nth, &lo, &hi);
    for (long m = lo; m < hi; m++)
        c->aq->quantize(c->x + (size_t)m * c->K, (uint8_t *)c->scratch + (size_t)m * c->a_row_bytes,
                        c->K);
}

static void dot_task(void *vctx, int ith, int nth) {
    MatmulCtx *c = vctx;
    long lo, hi;
    tpool_range(c->N, ith, nth, &lo, &hi);
    long tile = (long)(MATMUL_TILE_BYTES / (c->w_row_bytes ? c->w_row_bytes : 1));
    if (tile < 1)
        tile = 1;
    const uint8_t *w = c->w;
    const uint8_t *act = c->act;
    for (long n0 = lo; n0 < hi; n0 += tile) {
        long n1 = n0 + tile < hi ? n0 + tile : hi;
        for (int m = 0; m < c->M; m++) {
            float *o = c->out + (size_t)m * c->N;
            const void *a = act + (size_t)m * c->a_row_bytes;
            if (c->wtype == DTYPE_F32) {
                for (long n = n0; n < n1; n++)
                    o[n] = c->dot(c->K, (const float *)(w + (size_t)n * c->w_row_bytes), a);
            } else {
                for (long n = n0; n < n1; n++)
                    c->wq->vec_dot(c->K, &o[n], w + (size_t)n * c->w_row_bytes, a);
            }
            if (c->bias)
                for (long n = n0; n < n1; n++)
                    o[n] += c->bias[n];
        }
    }
}

void matmul_forward(TPool *tp, float *out, const float *x, const void *w, DType wtype,
                    const float *bias, int M, int N, int K, void *scratch) {
    ASSERT(matmul_supported(wtype));
    ASSERT(M >= 0 && N >= 0 && K >= 0);
    if (M == 0 || N == 0)
        return;
    MatmulCtx c = {.out = out, .x = x, .w = w, .bias = bias, .M = M, .N = N, .K = K,
                   .wtype = wtype, .scratch = scratch, .dot = ops_kernels()->dot};
    c.w_row_bytes = (size_t)dtype_row_bytes(wtype, K);
    ASSERT(c.w_row_bytes > 0);
    c.atype = act_type(wtype);
    if (wtype != DTYPE_F32)
        c.wq = quant_ops(wtype);
    if (c.atype == DTYPE_F32) {
        c.act = x;
        c.a_row_bytes = (size_t)K * sizeof(float);
    } else {
        c.aq = quant_ops(c.atype);
        ASSERT(c.aq && c.aq->quantize && scratch);
        c.a_row_bytes = (size_t)dtype_row_bytes(c.atype, K);
        ASSERT(c.a_row_bytes > 0);
        c.act = scratch;
        if (M > 1)
            tpool_run(tp, convert_task, &c);
        else
            convert_task(&c, 0, 1);
    }
    tpool_run(tp, dot_task, &c);
}

void matmul_ref(float *out, const float *x, const void *w, DType wtype, const float *bias, int M,
                int N, int K) {
    size_t rb = (size_t)dtype_row_bytes(wtype, K);
    ASSERT(rb > 0);
    float *row = malloc((size_t)K * sizeof(float) + 1);
    ASSERT(row);
    const QuantOps *q = wtype == DTYPE_F32 ? NULL : quant_ops(wtype);
    ASSERT(wtype == DTYPE_F32 || (q && q->dequant));
    for (int n = 0; n < N; n++) {
        const uint8_t *wr = (const uint8_t *)w + (size_t)n * rb;
        if (q)
            q->dequant(wr, row, K);
        else
            memcpy(row, wr, (size_t)K * sizeof(float));
        for (int m = 0; m < M; m++) {
            double s = 0;
            for (int k = 0; k < K; k++)
                s += (double)x[(size_t)m * K + k] * row[k];
            if (bias)
                s += bias[n];
            out[(size_t)m * N + n] = (float)s;
        }
    }
    free(row);
}
