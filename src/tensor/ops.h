/* ops.h - the element-wise and row kernels of the transformer forward pass.
 *
 * rmsnorm, layernorm, rope, softmax, silu(gate)*up, gelu, add, plus the F32
 * dot product and axpy that attention and the F32 matmul are built on. Each
 * kernel has a naive twin (`*_ref`, double accumulation where it matters)
 * that is never optimised; tests pit them against each other.
 *
 * Kernels here work on one row (or one vector of heads) and are not
 * threaded: callers split rows across the thread pool (model.c). The SIMD
 * kernels (dot, axpy, sum of squares) are chosen once at run time from
 * cpu_simd_level(); ops_kernels_at() hands out a specific level for tests.
 * Everything is deterministic: the same inputs give the same bits whatever
 * the batch, the thread count or the row order.
 *
 * Attention (OpsKernels.attn) works on one query row's heads that share a
 * KV head, over a paged cache laid out as model/kvcache.h describes; the
 * model splits (row, kv head) pairs across threads.
 *
 * Not here: matmul (tensor/matmul.h), the KV cache itself (model/). */
#ifndef CGPT_TENSOR_OPS_H
#define CGPT_TENSOR_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/cpu.h"

typedef enum {
    ROPE_NONE = 0, /* learned absolute positions (gpt2) */
    ROPE_NORM = 1, /* rotate adjacent pairs (x[2i], x[2i+1]) - llama */
    ROPE_NEOX = 2, /* rotate halves (x[i], x[i + n_rot/2]) - qwen2, qwen3 */
} RopeType;

/* Largest rotated dimension count (rope_cache arrays are n_rot/2 long). */
#define OPS_MAX_ROT 4096

typedef float (*OpsDotFn)(int n, const float *a, const float *b);
typedef void (*OpsAxpyFn)(int n, float *y, float a, const float *x); /* y += a*x */

/* Attention of G query heads that share one KV head (grouped-query
 * attention) over positions 0..n-1 of a paged cache. Position t's key row
 * (hd floats) is at  k + table[t / bs] * block_stride + (t % bs) * hd  and
 * its value row at the same offset from v. q: (G, hd) heads contiguous;
 * out: (G, hd); scores: scratch of G * n floats. For each head g:
 *   out_g = softmax(q_g . K^T * scale) . V
 * The arithmetic of one head depends only on (q_g, K, V, n, bs, scale), in
 * a fixed order: never on G, the other heads, the batch or the thread. */
typedef void (*OpsAttnFn)(float *out, const float *q, int G, int hd, const float *k,
                          const float *v, const int32_t *table, long block_stride, int bs, int n,
                          float scale, float *scores);

/* The same over a cache of IEEE half floats (k, v as uint16_t; rows of hd
 * halves, block_stride in halves): every key and value element is widened
 * exactly to float where it is used, so the result has the bits of
 * attn_f16_as_f32 below (the F32 attention of the same level over the
 * widened rows; the AVX-512 level uses the AVX2 one). */
typedef void (*OpsAttn16Fn)(float *out, const float *q, int G, int hd, const uint16_t *k,
                            const uint16_t *v, const int32_t *table, long block_stride, int bs,
                            int n, float scale, float *scores);

/* The same over a cache of Q8_0 rows (each row hd / 32 blocks of 34
 * bytes; hd a multiple of 32, at most 256; block_stride in bytes): every
 * row is dequantized (d * q, the bits of the Q8_0 dequant) where it is
 * used, so the result has the bits of attn_f16_as_f32 over the dequantized
 * rows. */
typedef void (*OpsAttnQ8Fn)(float *out, const float *q, int G, int hd, const void *k, const void *v,
                            const int32_t *table, long block_bytes, int bs, int n, float scale,
                            float *scores);

/* The element kinds of a cache, for attn_rows (the values of KVType). */
typedef enum { OPS_KV_F32 = 0, OPS_KV_F16 = 1, OPS_KV_Q8_0 = 2 } OpsKvKind;

/* Most query rows attn_rows takes at once. */
#define OPS_ATTN_MAX_ROWS 4

/* R (<= OPS_ATTN_MAX_ROWS) query rows of one sequence over its cache of
 * kind 'kind' (k, v, block_stride as attn / attn_f16 / attn_q8 take them):
 * row r's G heads at q + r * ldq attend over positions 0..n[r]-1 into
 * out + r * ldq. Each row's result has the bits of the kind's kernel for
 * that row alone (n[r] positions); the rows share every chunk of keys and
 * values they load (and widen). scores: R * G * max(n) floats. */
typedef void (*OpsAttnRowsFn)(OpsKvKind kind, float *out, const float *q, size_t ldq, int R, int G,
                              int hd, const void *k, const void *v, const int32_t *table,
                              long block_stride, int bs, const int *n, float scale, float *scores);

/* The extras of the newer architectures for attn_rows_ext: row r attends
 * positions lo[r]..n[r]-1 (a sliding window; lo[r] < n[r]); softcap > 0:
 * scores = softcap * tanh(scores / softcap) after scaling (gemma2); sinks:
 * one logit per head (G of them) that joins each head's softmax
 * denominator only (gpt-oss), or NULL. */
typedef struct {
    const int *lo;
    float softcap;
    const float *sinks;
} OpsAttnExtras;

/* attn_rows with the extras. Returns false (nothing written) for shapes
 * the level's block kernel does not take (head_dim not a multiple of 8 or
 * over 256, more than 64 heads per kv head); callers then use attn_ext
 * (tensor/attn_ext.h). Per row the bits do not depend on R or the other
 * rows, as attn_rows. */
typedef bool (*OpsAttnRowsExtFn)(OpsKvKind kind, float *out, const float *q, size_t ldq, int R,
                                 int G, int hd, const void *k, const void *v, const int32_t *table,
                                 long block_stride, int bs, const int *n, const OpsAttnExtras *x,
                                 float scale, float *scores);

typedef struct {
    SimdLevel level;
    OpsDotFn dot;
    OpsAxpyFn axpy;
    OpsAttnFn attn;
    OpsAttn16Fn attn_f16;
    OpsAttnQ8Fn attn_q8;
    OpsAttnRowsFn attn_rows;
    OpsAttnRowsExtFn attn_rows_ext; /* NULL: none at this level (scalar) */
} OpsKernels;

/* The kernels for this CPU (chosen once) / for a given level (levels above
 * what the CPU supports are capped to it). Static storage. */
const OpsKernels *ops_kernels(void);
const OpsKernels *ops_kernels_at(SimdLevel level);

/* out[i] = x[i] / sqrt(mean(x^2) + eps) * w[i]; out may alias x. */
void rmsnorm_forward(float *out, const float *x, const float *w, int n, float eps);
void rmsnorm_ref(float *out, const float *x, const float *w, int n, float eps);

/* out[i] = (x[i] - mean) / sqrt(var + eps) * w[i] + b[i] (biased variance,
 * b may be NULL); out may alias x. */
void layernorm_forward(float *out, const float *x, const float *w, const float *b, int n,
                       float eps);
void layernorm_ref(float *out, const float *x, const float *w, const float *b, int n, float eps);

/* Rope angles for one position: cs[2i] = cos(theta_i), cs[2i+1] = sin(theta_i)
 * for i in [0, n_rot/2), theta_i = pos * freq_scale * base^(-2i/n_rot) /
 * freq_factors[i] (freq_factors may be NULL: all 1), as ggml_rope_ext with no
 * YaRN. Computed in double, stored as float. n_rot even, <= OPS_MAX_ROT. */
void rope_cache(float *cs, int pos, int n_rot, float base, float freq_scale,
                const float *freq_factors);
/* YaRN (ggml_rope_ext with ext_factor 1): pair i's angle blends the
 * interpolated pos * freq_scale * theta_i and the extrapolated pos *
 * theta_i by the ramp 1 - clamp((i - corr[0]) / max(0.001, corr[1] -
 * corr[0]), 0, 1) (1: extrapolated, the fast pairs); cos and sin times
 * mscale. corr from rope_yarn_corr_dims (ggml_rope_yarn_corr_dims: the
 * pairs whose wavelengths fit n_ctx_orig beta_fast / beta_slow times,
 * floor / ceil, clamped to [0, n_rot - 1], in float as ggml). */
void rope_yarn_corr_dims(int n_rot, int n_ctx_orig, float base, float beta_fast, float beta_slow,
                         float dims[2]);
void rope_cache_yarn(float *cs, int pos, int n_rot, float base, float freq_scale,
                     const float corr[2], float mscale);
/* Rotate the first n_rot dims of each of n_heads heads of head_dim floats in
 * x (heads contiguous) by the angles in cs. NORM rotates (x[2i], x[2i+1]),
 * NEOX rotates (x[i], x[i + n_rot/2]). ROPE_NONE leaves x alone. */
void rope_forward(float *x, const float *cs, int n_heads, int head_dim, int n_rot, RopeType type);
/* Naive twin: computes the angles itself (double throughout). */
void rope_ref(float *x, int pos, int n_heads, int head_dim, int n_rot, float base, float freq_scale,
              const float *freq_factors, RopeType type);

/* In-place softmax of n floats. -inf entries get 0; a row of all -inf
 * becomes all 0 (never NaN). */
void softmax_forward(float *x, int n);
void softmax_ref(float *x, int n);

/* x[i] = cap * tanh(x[i] / cap) in place (gemma2's soft-caps; cap > 0):
 * the 8-lane tanh of the attention kernels where the CPU has AVX2 (within
 * ~1e-7 of tanh), else libm's tanhf. */
void softcap_forward(float *x, int n, float cap);

/* out[i] = silu(gate[i]) * up[i], silu(x) = x / (1 + exp(-x)); out may alias. */
void swiglu_forward(float *out, const float *gate, const float *up, int n);
void swiglu_ref(float *out, const float *gate, const float *up, int n);

/* out[i] = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))); out may alias x. */
void gelu_forward(float *out, const float *x, int n);
void gelu_ref(float *out, const float *x, int n);

/* out[i] = a[i] + b[i]; out may alias a or b. */
void add_forward(float *out, const float *a, const float *b, int n);
void add_ref(float *out, const float *a, const float *b, int n);

/* Naive dot with double accumulation (the twin of OpsKernels.dot). */
float dot_ref(int n, const float *a, const float *b);

/* What OpsKernels.attn_f16 and attn_q8 of 'level' compute, over F32 rows
 * (the widened halves, the dequantized blocks): OpsKernels.attn of that
 * level (AVX2's for AVX-512). For tests. */
void attn_f16_as_f32(SimdLevel level, float *out, const float *q, int G, int hd, const float *k,
                     const float *v, const int32_t *table, long block_stride, int bs, int n,
                     float scale, float *scores);

/* Naive twin of OpsKernels.attn (double accumulation, libm exp). */
void attn_gqa_ref(float *out, const float *q, int G, int hd, const float *k, const float *v,
                  const int32_t *table, long block_stride, int bs, int n, float scale,
                  float *scores);

/* e[i] = exp(x[i]) for n floats (e may alias x): the vectorised exp the
 * kernels here use (AVX-512 or AVX2 where the CPU has them, else libm expf), within
 * 2 ulp of the exact value; -inf gives 0, values past 88.72 give +inf. */
void ops_exp(float *e, const float *x, int n);

#endif
