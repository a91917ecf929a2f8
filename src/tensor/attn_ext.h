/* attn_ext.h - attention with the extras of the newer architectures:
 * a sliding window (positions lo..n-1 instead of 0..n-1), logit soft-capping
 * (gemma2) and per-head sink logits that take part in the softmax's
 * denominator only (gpt-oss).
 *
 * The plain kernels of ops.h stay the fast path; the model calls this one
 * for the layers that need an extra. It reads any cache kind by converting
 * one row at a time with the kind's dequant (the bits of the cache's
 * values) and scores and accumulates with the level's dot and axpy, so a
 * window that covers every position, no cap and no sinks give the F32
 * attention's arithmetic over the same rows in the same order (not the
 * same bits as the blocked AVX2 kernel, which sums in another order).
 * Deterministic: one head's result depends only on its own inputs. */
#ifndef CGPT_TENSOR_ATTN_EXT_H
#define CGPT_TENSOR_ATTN_EXT_H

#include <stddef.h>
#include <stdint.h>

#include "tensor/dtype.h"

/* Where a paged cache's rows are: position t's row (row_bytes bytes of
 * 'type': F32, F16 or Q8_0, hd elements) is at
 *   base + table[t / bs] * block_bytes + (t % bs) * row_bytes
 * for keys (k) and values (v) alike. */
typedef struct {
    const char *k, *v;
    const int32_t *table;
    size_t block_bytes, row_bytes;
    int bs;
    DType type;
} AttnExtCache;

/* The extras; zero-initialised: none. */
typedef struct {
    float softcap;      /* > 0: scores = softcap * tanh(scores / softcap) */
    const float *sinks; /* per head (G of them) or NULL: exp(sink) joins the denominator */
} AttnExtOpts;

/* G query heads (q: G x hd, contiguous) that share one kv head attend over
 * positions lo..n-1 (0 <= lo < n) of 'c' into out (G x hd):
 *   s_t = q . k_t * scale [capped];  p_t = exp(s_t) / (sum_u exp(s_u) [+ exp(sink)])
 *   out = sum_t p_t v_t
 * scores: G * (n - lo) floats; row: 2 * hd floats (scratch). */
void attn_ext(float *out, const float *q, int G, int hd, const AttnExtCache *c, int lo, int n,
              float scale, const AttnExtOpts *o, float *scores, float *row);

/* The same in double with libm, for tests. */
void attn_ext_ref(float *out, const float *q, int G, int hd, const AttnExtCache *c, int lo, int n,
                  float scale, const AttnExtOpts *o);

#endif
