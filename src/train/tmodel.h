/* tmodel.h - the trainable GPT: a `llama`-architecture model in F32 with a
 * forward pass that keeps its activations and a backward pass.
 *
 * The math is exactly what src/model runs for arch "llama" (so a trained
 * model loads in `cgpt chat` and in llama.cpp unchanged):
 *   x = tok_embd[token]
 *   per layer: h = rmsnorm(x) * attn_norm
 *              q = h Wq^T, k = h Wk^T, v = h Wv^T   (NH, NKV heads of HS)
 *              RoPE on q and k, ADJACENT pairs (2i, 2i+1) rotated by
 *              pos * rope_base^(-2i/HS)   (llama.cpp rope type 0, "NORM")
 *              causal attention per row with GQA (query head h reads kv head
 *              h / (NH/NKV)), scale 1/sqrt(HS)
 *              x = x + attn Wo^T
 *              h = rmsnorm(x) * ffn_norm
 *              x = x + (silu(h Wg^T) * (h Wu^T)) Wd^T
 *   logits = rmsnorm(x) * output_norm  tok_embd^T   (tied embeddings)
 *   rmsnorm(x) = x / sqrt(mean(x^2) + norm_eps)
 * Positions restart at 0 in every row of a batch; attention never crosses
 * rows. Loss: cross-entropy of logits[b,t] against targets[b,t]; targets < 0
 * are ignored (padding, and every non-assistant token in SFT).
 *
 * Parameters live in ONE contiguous float vector (and gradients in another
 * of the same layout) so that the optimizer, the MPI all-reduce and the
 * checkpoint treat them as one array. The layout, in this order, each tensor
 * row-major [rows][cols] (cols = GGUF ne[0]):
 *   "token_embd.weight"        [V][C]
 *   per layer l (names "blk.<l>.<name>"):
 *     attn_norm.weight [C]      (rows 1)
 *     attn_q.weight    [NH*HS][C]
 *     attn_k.weight    [NKV*HS][C]
 *     attn_v.weight    [NKV*HS][C]
 *     attn_output.weight [C][NH*HS]
 *     ffn_norm.weight  [C]
 *     ffn_gate.weight  [F][C]
 *     ffn_up.weight    [F][C]
 *     ffn_down.weight  [C][F]
 *   "output_norm.weight"       [C]
 *
 * Determinism: for a given thread count the same inputs give bit-identical
 * losses and gradients (fixed work split, no atomics; the BLAS is called with
 * a fixed thread count).
 *
 * Not here: the optimizer (optim.h), data (tdata.h), checkpoints (ckpt.h). */
#ifndef CGPT_TRAIN_TMODEL_H
#define CGPT_TRAIN_TMODEL_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "core/tpool.h"

/* Limits checked by tmodel_config_check(): a config comes from flags or a
 * checkpoint file. */
#define TMODEL_MAX_VOCAB 1000000
#define TMODEL_MAX_EMBD 16384
#define TMODEL_MAX_LAYERS 256
#define TMODEL_MAX_HEADS 256
#define TMODEL_MAX_FF 65536
#define TMODEL_MAX_CTX 65536

typedef struct {
    int n_vocab;     /* V */
    int n_embd;      /* C */
    int n_layers;    /* L */
    int n_heads;     /* NH */
    int n_kv_heads;  /* NKV; divides NH */
    int head_dim;    /* HS; even; NH*HS need not equal C */
    int n_ff;        /* F */
    int n_ctx;       /* the longest row (T) the model is trained with */
    float rope_base; /* 10000 */
    float norm_eps;  /* 1e-5 */
} TConfig;

typedef struct {
    char name[64];  /* GGUF tensor name, e.g. "blk.3.attn_q.weight" */
    int64_t rows;   /* 1 for norm vectors */
    int64_t cols;   /* GGUF ne[0] */
    size_t offset;  /* first float of this tensor in the parameter vector */
} TParam;

typedef struct TModel TModel;

/* STATUS_LIMIT / STATUS_INVALID naming the field, value and limit. */
Status tmodel_config_check(const TConfig *cfg, Err *err);

/* Number of parameters for 'cfg' (the length of the parameter vector). */
size_t tmodel_config_n_params(const TConfig *cfg);

/* Returns an owned model sized for batches of up to max_batch rows of up to
 * cfg->n_ctx tokens: parameters (zeroed), gradients (zeroed), activations.
 * 'tp' is BORROWED for the element-wise kernels (NULL: one thread); the BLAS
 * gets tpool_size(tp) threads where it is used (the AVX-512 level runs its own
 * blocked GEMM on tp). Free with tmodel_free(). */
Status tmodel_new(TModel **out, const TConfig *cfg, int max_batch, TPool *tp, Err *err);
void tmodel_free(TModel *m);

const TConfig *tmodel_config(const TModel *m);
size_t tmodel_n_params(const TModel *m);
/* Views valid until tmodel_free(): the parameter and gradient vectors. */
float *tmodel_params(TModel *m);
float *tmodel_grads(TModel *m);
/* The tensor table in layout order; *n receives its length. View valid until
 * tmodel_free(). */
const TParam *tmodel_tensors(const TModel *m, int *n);

/* GPT-2 style initialisation from 'seed': every matrix ~ N(0, 0.02), the two
 * residual projections (attn_output, ffn_down) ~ N(0, 0.02/sqrt(2L)), norm
 * weights 1. Deterministic for a seed. */
void tmodel_init(TModel *m, uint64_t seed);

/* Forward over tokens[B][T] (row-major, B <= max_batch, 1 <= T <= n_ctx)
 * with targets[B][T] (< 0: ignored). Token ids and targets >= V are
 * STATUS_INVALID naming the row and column. Keeps the activations for
 * tmodel_backward(). Sets *loss_sum to the summed cross-entropy (nats) over
 * the counted targets and *n_targets to their number. */
Status tmodel_forward(TModel *m, const int32_t *tokens, const int32_t *targets, int B, int T,
                      double *loss_sum, long *n_targets, Err *err);

/* Backward of the last tmodel_forward(): ADDS d(objective)/d(params) to the
 * gradient vector, where objective = loss_scale * loss_sum (for a mean over a
 * global batch of N counted targets pass loss_scale = 1/N). Gradient
 * accumulation is calling forward/backward again before zeroing. */
void tmodel_backward(TModel *m, float loss_scale);

void tmodel_zero_grads(TModel *m);

/* Logits of the last forward, (B, T, V) row-major. View valid until the next
 * forward. Tests compare it with the inference engine and PyTorch. */
const float *tmodel_logits(const TModel *m);

#endif
