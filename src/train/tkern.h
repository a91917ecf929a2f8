/* tkern.h - the forward/backward kernels of the trainable llama model
 * (tmodel.h) and the network that strings them together.
 *
 * Every kernel and the network are written once, over a type 'real', in
 * tkern_impl.h, and compiled several times by tkern.c:
 *   double      - one instantiation (plain C, libm exp). The tests check
 *                 every backward kernel, and the whole network's gradient,
 *                 against central finite differences in this precision.
 *   float       - one instantiation per SIMD level (scalar, AVX2, AVX-512;
 *                 the same C compiled inside core/simd.h target regions and
 *                 auto-vectorised), picked with tk_ops_f(cpu_simd_level()).
 *                 tmodel.c runs this one. Float exp is a polynomial
 *                 (|rel err| < 2e-7 for inputs in [-86, 88]), vectorisable.
 *                 The AVX-512 level replaces two kernels with intrinsics
 *                 in tkern.c: matmul (its own blocked GEMM on the pool's
 *                 threads) and attention (blocks of 64 queries through a
 *                 register-tiled causal product) - these two are ~90% of a
 *                 training step's time.
 * The tests compare each float level with the double instantiation on the
 * same inputs, so the scalar float path is the naive twin of the SIMD ones.
 *
 * Conventions (llm.c): <op>_forward / <op>_backward, outputs first, then
 * inputs, then sizes; a backward ACCUMULATES into every d<name> it gets.
 * Exceptions, said where they occur: rope works in place (forward and
 * backward are rotations), and cross-entropy has no backward kernel - its
 * forward writes g = softmax(logits) - onehot(target), which IS d(loss)/
 * d(logits), and the network folds loss_scale into the alpha of the two
 * matmuls that read g.
 *
 * Threads: the element-wise kernels split rows (or (row, head) pairs)
 * across the pool's threads with a fixed split; reductions across rows (the
 * norm weight gradients, the embedding scatter) are split by column / vocab
 * id so every sum runs in a fixed order - results are bit-identical for a
 * given thread count, and on the AVX-512 level not even on the thread
 * count. Matmuls of the other levels go to the BLAS (cblas_sgemm /
 * cblas_dgemm) on the calling thread; tmodel.c fixes the BLAS thread count.
 *
 * Shape letters: N rows (= B*T), C n_embd, V n_vocab, NH/NKV heads, HS
 * head_dim, QD = NH*HS, KD = NKV*HS, W = QD + 2*KD (fused q|k|v row),
 * F n_ff. Inputs are trusted (tmodel.c validates tokens and targets):
 * an out-of-range token is a broken invariant (ASSERT). */
#ifndef CGPT_TRAIN_TKERN_H
#define CGPT_TRAIN_TKERN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/cpu.h"
#include "core/tpool.h"
#include "train/tmodel.h"

/* The parameter vector's layout (tmodel.h), in elements. Wq|Wk|Wv are
 * adjacent, so they form one (W, C) matrix; ffn_gate|ffn_up form one
 * (2F, C) matrix: the network runs each pair as one matmul. */
typedef struct {
    size_t wte;        /* (V, C) token_embd, also the output projection */
    size_t layer0;     /* first element of layer 0 */
    size_t layer_size; /* elements per layer */
    /* offsets inside a layer */
    size_t attn_norm; /* (C) */
    size_t wqkv;      /* (W, C) */
    size_t wo;        /* (C, QD) */
    size_t ffn_norm;  /* (C) */
    size_t wgu;       /* (2F, C) gate rows then up rows */
    size_t wd;        /* (C, F) */
    size_t out_norm;  /* (C) */
    size_t n_params;
} TKLayout;

/* Fills 'lo' for a config that passed tmodel_config_check(). */
void tk_layout(TKLayout *lo, const TConfig *cfg);

/* Floats of attention scratch the network needs per thread (forward and
 * backward), for rows of up to T tokens. */
size_t tk_attention_scratch(int T, int HS);

/* Reals of matmul workspace the kernels need per thread. */
size_t tk_matmul_scratch(void);

/* The kernel table and the network for one real type R. Fields:
 *
 * embed_forward(tp, out (N,C), tokens (N), wte (V,C), N, C, V)
 * embed_backward(tp, dwte (V,C), dout (N,C), tokens, N, C, V)
 *     dwte[tokens[n]] += dout[n]; threads split vocab ids.
 * rmsnorm_forward(tp, out (N,C), rstd (N), x (N,C), w (C), N, C, eps)
 *     rstd = 1/sqrt(mean(x^2) + eps), out = x * rstd * w.
 * rmsnorm_backward(tp, dx (N,C), dw (C), dout (N,C), x, w, rstd, N, C)
 * matmul_forward(tp, ws, out (N,n_out), inp (N,n_in), w (n_out,n_in), N, n_in, n_out,
 *                accumulate)
 *     out = [out +] inp w^T.
 * matmul_backward(tp, ws, dinp (N,n_in) or NULL, dw (n_out,n_in), dout (N,n_out), inp, w, N,
 *                 n_in, n_out, alpha, accumulate)
 *     dinp = [dinp +] alpha dout w, dw += alpha dout^T inp (dw always
 *     accumulates; 'accumulate' = false spares zeroing a fresh dinp). The BLAS does the
 *     double, scalar and AVX2 levels (on its own threads, tp unused); the
 *     AVX-512 level runs its own GEMM on tp (OpenBLAS 0.3.21 drives Zen 4/5
 *     with its AVX2 kernels). ws: nth * tk_matmul_scratch() reals, 64-byte aligned.
 * rope_forward(tp, x (N, ld), cs (T, HS), B, T, n_heads, HS, ld)
 *     IN PLACE on the first n_heads*HS columns of each row: adjacent pairs
 *     (2i, 2i+1) rotated by the angle whose cos/sin are cs[t][2i], cs[t][2i+1]
 *     (tk_rope_table), t = n % T.
 * rope_backward(tp, dx (N, ld), cs, B, T, n_heads, HS, ld)
 *     IN PLACE: the transposed rotation.
 * attention_forward(tp, y (N,QD), lse (B,NH,T), qkv (N,W), scratch, B, T, NH, NKV, HS)
 *     causal softmax(q k^T / sqrt(HS)) v per (row b, head h) with kv head
 *     h / (NH/NKV); lse keeps each softmax row's log-sum-exp, from which
 *     the backward recomputes the probabilities (storing them would cost
 *     B*NH*T*T floats and their memory traffic per layer).
 *     scratch: nth * tk_attention_scratch(T, HS).
 * attention_backward(tp, dqkv (N,W), dy (N,QD), lse, qkv, scratch, B, T, NH, NKV, HS)
 * swiglu_forward(tp, act (N,F), gu (N,2F), N, F)
 *     act = silu(gate) * up, gate = gu[n][0..F), up = gu[n][F..2F).
 * swiglu_backward(tp, dgu (N,2F), dact (N,F), gu, N, F)
 * crossentropy_forward(tp, losses (N), g (N,V), logits (N,V), targets (N), N, V)
 *     losses[n] = logsumexp(logits[n]) - logits[n][target] (double), and
 *     g = softmax - onehot; rows with target < 0: loss 0 and g = 0.
 *
 * The network (tknet_*): activations for batches up to max_B rows of up to
 * cfg->n_ctx tokens. 'params'/'grads' are the layout above, BORROWED per
 * call. tknet_forward keeps what tknet_backward needs; tknet_backward adds
 * loss_scale * d(loss_sum)/d(params) to grads. logits: (B, T, V) of the
 * last forward. */
/* (unformatted: in a macro the formatter takes "TPool *tp" for a product) */
// clang-format off
#define TK_DECLARE(R, OPS, NET, sfx)                                                               \
    typedef struct {                                                                               \
        const char *name;                                                                          \
        void (*embed_forward)(TPool *tp, R *out, const int32_t *tokens, const R *wte, long N,     \
                              int C, int V);                                                       \
        void (*embed_backward)(TPool *tp, R *dwte, const R *dout, const int32_t *tokens, long N,  \
                               int C, int V);                                                      \
        void (*rmsnorm_forward)(TPool *tp, R *out, R *rstd, const R *x, const R *w, long N,       \
                                int C, float eps);                                                 \
        void (*rmsnorm_backward)(TPool *tp, R *dx, R *dw, const R *dout, const R *x, const R *w,  \
                                 const R *rstd, long N, int C);                                    \
        void (*matmul_forward)(TPool *tp, R *ws, R *out, const R *inp, const R *w, long N,        \
                               int n_in, int n_out, bool accumulate);                              \
        void (*matmul_backward)(TPool *tp, R *ws, R *dinp, R *dw, const R *dout, const R *inp,    \
                                const R *w, long N, int n_in, int n_out, R alpha,                  \
                                bool accumulate);                                                  \
        void (*rope_forward)(TPool *tp, R *x, const R *cs, int B, int T, int n_heads, int HS,     \
                             int ld);                                                              \
        void (*rope_backward)(TPool *tp, R *dx, const R *cs, int B, int T, int n_heads, int HS,   \
                              int ld);                                                             \
        void (*attention_forward)(TPool *tp, R *y, R *lse, const R *qkv, R *scratch, int B,       \
                                  int T, int NH, int NKV, int HS);                                 \
        void (*attention_backward)(TPool *tp, R *dqkv, const R *dy, const R *lse, const R *qkv,   \
                                   R *scratch, int B, int T, int NH, int NKV, int HS);             \
        void (*swiglu_forward)(TPool *tp, R *act, const R *gu, long N, int F);                    \
        void (*swiglu_backward)(TPool *tp, R *dgu, const R *dact, const R *gu, long N, int F);    \
        void (*crossentropy_forward)(TPool *tp, double *losses, R *g, const R *logits,            \
                                     const int32_t *targets, long N, int V);                       \
    } OPS;                                                                                         \
                                                                                                   \
    typedef struct {                                                                               \
        TConfig cfg;                                                                               \
        TKLayout lo;                                                                               \
        int max_B;                                                                                 \
        TPool *tp;        /* borrowed */                                                           \
        const OPS *ops;   /* static table */                                                       \
        R *arena;         /* owns every buffer below */                                            \
        R *res;           /* (L+1, maxN, C) residual stream into each layer, and out */            \
        R *h1, *h2;       /* (L, maxN, C) normed inputs of attention / ffn */                      \
        R *mid;           /* (L, maxN, C) residual after attention */                              \
        R *rstd1, *rstd2; /* (L, maxN) */                                                          \
        R *qkv;           /* (L, maxN, W) after rope */                                            \
        R *lse;           /* (L, max_B, NH, n_ctx) attention log-sum-exp */                        \
        R *y;             /* (L, maxN, QD) attention output */                                     \
        R *gu;            /* (L, maxN, 2F) gate | up */                                            \
        R *act;           /* (L, maxN, F) silu(gate) * up */                                       \
        R *hf, *rstdf;    /* (maxN, C), (maxN) final norm */                                       \
        R *logits, *g;    /* (maxN, V): logits; g of the counted rows, packed */                   \
        R *cs;            /* (n_ctx, HS) rope cos/sin */                                           \
        R *dx, *dh;       /* (maxN, C) */                                                          \
        R *dgu;           /* (maxN, 2F) */                                                         \
        R *dact;          /* (maxN, F) */                                                          \
        R *dy;            /* (maxN, QD) */                                                         \
        R *dqkv;          /* (maxN, W) */                                                          \
        R *scratch;       /* (nth, tk_attention_scratch(n_ctx, HS)) */                             \
        R *gemm_ws;       /* (nth, tk_matmul_scratch()) */                                         \
        double *losses;   /* (maxN) */                                                             \
        int32_t *tokens;  /* (maxN) of the last forward */                                         \
        int32_t *counted; /* (maxN) rows with a target, ascending; g holds just these rows */    \
        long n_counted;                                                                            \
        int B, T;         /* of the last forward; 0 before one */                                  \
    } NET;                                                                                         \
                                                                                                   \
    const OPS *tk_ops_##sfx(SimdLevel level);                                                      \
    bool tknet_init_##sfx(NET *net, const TConfig *cfg, int max_B, TPool *tp, const OPS *ops);     \
    void tknet_free_##sfx(NET *net);                                                               \
    void tknet_forward_##sfx(NET *net, const R *params, const int32_t *tokens,                     \
                             const int32_t *targets, int B, int T, double *loss_sum,               \
                             long *n_targets);                                                     \
    void tknet_backward_##sfx(NET *net, const R *params, R *grads, R loss_scale);                  \
    void tk_rope_table_##sfx(R *cs, int T, int HS, float base);

/* TKOpsF / TKNetF / tk_ops_f(level) ...: float, the level capped at what
 * the CPU has. TKOpsD / TKNetD / tk_ops_d(level ignored) ...: double. */
// clang-format on
TK_DECLARE(float, TKOpsF, TKNetF, f)
TK_DECLARE(double, TKOpsD, TKNetD, d)

/* Per-phase time of the networks (seconds), accumulated since the last
 * tk_timing_reset(), for trainbench. Wall time, or with thread_cpu the
 * calling thread's CPU time (a load-independent breakdown when the pool has
 * one thread). Costs two clock reads per kernel call. */
typedef struct {
    double matmul, attention, elementwise, crossentropy;
} TKTiming;
void tk_timing_reset(bool thread_cpu);
TKTiming tk_timing_get(void);

#endif
