/* tmodel.c - the trainable llama model (tmodel.h): owns the parameter and
 * gradient vectors and a float network from tkern.h, and checks everything
 * that comes from a user (config, batch shape, token ids, targets) before
 * the kernels, which trust their inputs, see it.
 *
 * Not here: the math (tkern_impl.h), the optimizer, data, checkpoints. */
#include "train/tmodel.h"

#include <cblas.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cpu.h"
#include "core/mem.h"
#include "core/rng.h"
#include "tensor/ops.h" /* OPS_MAX_ROT: the inference engine's rope limit */
#include "train/tkern.h"

/* Rows of one batch (tmodel_new's max_batch). */
#define TMODEL_MAX_BATCH 65536
#define TMODEL_INIT_STD 0.02

/* Tensors per layer in the layout. */
#define TMODEL_LAYER_TENSORS 9

struct TModel {
    TConfig cfg;
    TKLayout lo;
    int max_batch;
    TPool *tp; /* borrowed */
    float *params, *grads;
    TParam *tensors;
    int n_tensors;
    TKNetF net;
};

static Status check_range(const char *what, long v, long lo, long hi, Status s, Err *err) {
    if (v < lo || v > hi)
        return err_set(err, s, "model config: %s = %ld out of range [%ld, %ld]", what, v, lo, hi);
    return STATUS_OK;
}

Status tmodel_config_check(const TConfig *c, Err *err) {
    Status st;
    if ((st = check_range("n_vocab", c->n_vocab, 1, TMODEL_MAX_VOCAB, STATUS_LIMIT, err)) ||
        (st = check_range("n_embd", c->n_embd, 1, TMODEL_MAX_EMBD, STATUS_LIMIT, err)) ||
        (st = check_range("n_layers", c->n_layers, 1, TMODEL_MAX_LAYERS, STATUS_LIMIT, err)) ||
        (st = check_range("n_heads", c->n_heads, 1, TMODEL_MAX_HEADS, STATUS_LIMIT, err)) ||
        (st = check_range("n_kv_heads", c->n_kv_heads, 1, c->n_heads, STATUS_LIMIT, err)) ||
        (st = check_range("head_dim", c->head_dim, 2, OPS_MAX_ROT, STATUS_LIMIT, err)) ||
        (st = check_range("n_ff", c->n_ff, 1, TMODEL_MAX_FF, STATUS_LIMIT, err)) ||
        (st = check_range("n_ctx", c->n_ctx, 1, TMODEL_MAX_CTX, STATUS_LIMIT, err)))
        return st;
    if (c->n_heads % c->n_kv_heads)
        return err_set(err, STATUS_INVALID,
                       "model config: n_kv_heads %d does not divide n_heads %d", c->n_kv_heads,
                       c->n_heads);
    if (c->head_dim % 2)
        return err_set(err, STATUS_INVALID, "model config: head_dim %d must be even (rope pairs)",
                       c->head_dim);
    if ((long)c->n_heads * c->head_dim > TMODEL_MAX_EMBD)
        return err_set(err, STATUS_LIMIT, "model config: n_heads %d x head_dim %d exceeds %d",
                       c->n_heads, c->head_dim, TMODEL_MAX_EMBD);
    if (!isfinite(c->rope_base) || !(c->rope_base > 1.0f))
        return err_set(err, STATUS_INVALID, "model config: rope_base %g must be finite and > 1",
                       (double)c->rope_base);
    if (!isfinite(c->norm_eps) || !(c->norm_eps > 0.0f) || c->norm_eps > 1.0f)
        return err_set(err, STATUS_INVALID, "model config: norm_eps %g must be in (0, 1]",
                       (double)c->norm_eps);
    return STATUS_OK;
}

size_t tmodel_config_n_params(const TConfig *cfg) {
    TKLayout lo;
    tk_layout(&lo, cfg);
    return lo.n_params;
}

static void add_tensor(TModel *m, const char *name, int64_t rows, int64_t cols, size_t offset) {
    TParam *p = &m->tensors[m->n_tensors++];
    int k = snprintf(p->name, sizeof p->name, "%s", name);
    ASSERT(k > 0 && (size_t)k < sizeof p->name);
    p->rows = rows;
    p->cols = cols;
    p->offset = offset;
}

static void add_blk(TModel *m, int il, const char *what, int64_t rows, int64_t cols,
                    size_t offset) {
    char name[sizeof m->tensors[0].name];
    int k = snprintf(name, sizeof name, "blk.%d.%s", il, what);
    ASSERT(k > 0 && (size_t)k < sizeof name);
    add_tensor(m, name, rows, cols, offset);
}

static void build_table(TModel *m) {
    const TConfig *c = &m->cfg;
    const TKLayout *lo = &m->lo;
    int64_t C = c->n_embd, QD = (int64_t)c->n_heads * c->head_dim;
    int64_t KD = (int64_t)c->n_kv_heads * c->head_dim, F = c->n_ff;
    add_tensor(m, "token_embd.weight", c->n_vocab, C, lo->wte);
    for (int il = 0; il < c->n_layers; il++) {
        size_t b = lo->layer0 + (size_t)il * lo->layer_size;
        add_blk(m, il, "attn_norm.weight", 1, C, b + lo->attn_norm);
        add_blk(m, il, "attn_q.weight", QD, C, b + lo->wqkv);
        add_blk(m, il, "attn_k.weight", KD, C, b + lo->wqkv + (size_t)(QD * C));
        add_blk(m, il, "attn_v.weight", KD, C, b + lo->wqkv + (size_t)((QD + KD) * C));
        add_blk(m, il, "attn_output.weight", C, QD, b + lo->wo);
        add_blk(m, il, "ffn_norm.weight", 1, C, b + lo->ffn_norm);
        add_blk(m, il, "ffn_gate.weight", F, C, b + lo->wgu);
        add_blk(m, il, "ffn_up.weight", F, C, b + lo->wgu + (size_t)(F * C));
        add_blk(m, il, "ffn_down.weight", C, F, b + lo->wd);
    }
    add_tensor(m, "output_norm.weight", 1, C, lo->out_norm);
}

Status tmodel_new(TModel **out, const TConfig *cfg, int max_batch, TPool *tp, Err *err) {
    *out = NULL;
    Status st = tmodel_config_check(cfg, err);
    if (st != STATUS_OK)
        return st;
    if (max_batch < 1 || max_batch > TMODEL_MAX_BATCH)
        return err_set(err, STATUS_LIMIT, "max_batch %d out of range [1, %d]", max_batch,
                       TMODEL_MAX_BATCH);
    TModel *m = calloc(1, sizeof *m);
    if (!m)
        return err_set(err, STATUS_NOMEM, "out of memory for the model");
    m->cfg = *cfg;
    tk_layout(&m->lo, cfg);
    m->max_batch = max_batch;
    m->tp = tp;
    size_t n = m->lo.n_params;
    uint64_t bytes;
    if (!mem_mul_ok(n, sizeof(float), &bytes) || bytes > SIZE_MAX / 2) {
        tmodel_free(m);
        return err_set(err, STATUS_LIMIT, "model config: %zu parameters do not fit in memory", n);
    }
    m->params = mem_alloc_aligned((size_t)bytes);
    m->grads = mem_alloc_aligned((size_t)bytes);
    m->tensors = calloc(2 + (size_t)cfg->n_layers * TMODEL_LAYER_TENSORS, sizeof *m->tensors);
    if (!m->params || !m->grads || !m->tensors) {
        tmodel_free(m);
        return err_set(err, STATUS_NOMEM, "out of memory for %zu parameters", n);
    }
    build_table(m);
    if (!tknet_init_f(&m->net, cfg, max_batch, tp, tk_ops_f(cpu_simd_level()))) {
        tmodel_free(m);
        return err_set(err, STATUS_NOMEM,
                       "out of memory for the activations of %d rows of %d tokens "
                       "(n_embd %d, n_ff %d, n_vocab %d, %d layers)",
                       max_batch, cfg->n_ctx, cfg->n_embd, cfg->n_ff, cfg->n_vocab, cfg->n_layers);
    }
    /* a fixed BLAS thread count keeps its work split, and so its sums, fixed */
    openblas_set_num_threads(tpool_size(tp));
    *out = m;
    return STATUS_OK;
}

void tmodel_free(TModel *m) {
    if (!m)
        return;
    tknet_free_f(&m->net);
    mem_free_aligned(m->params);
    mem_free_aligned(m->grads);
    free(m->tensors);
    free(m);
}

const TConfig *tmodel_config(const TModel *m) { return &m->cfg; }
size_t tmodel_n_params(const TModel *m) { return m->lo.n_params; }
float *tmodel_params(TModel *m) { return m->params; }
float *tmodel_grads(TModel *m) { return m->grads; }

const TParam *tmodel_tensors(const TModel *m, int *n) {
    *n = m->n_tensors;
    return m->tensors;
}

void tmodel_init(TModel *m, uint64_t seed) {
    Rng rng;
    rng_seed(&rng, seed);
    double resid_std = TMODEL_INIT_STD / sqrt(2.0 * m->cfg.n_layers);
    for (int i = 0; i < m->n_tensors; i++) {
        const TParam *p = &m->tensors[i];
        float *w = m->params + p->offset;
        size_t n = (size_t)(p->rows * p->cols);
        if (p->rows == 1) {
            for (size_t j = 0; j < n; j++)
                w[j] = 1.0f;
            continue;
        }
        size_t len = strlen(p->name);
        bool resid = (len >= 18 && !strcmp(p->name + len - 18, "attn_output.weight")) ||
                     (len >= 15 && !strcmp(p->name + len - 15, "ffn_down.weight"));
        float std = (float)(resid ? resid_std : TMODEL_INIT_STD);
        for (size_t j = 0; j < n; j++)
            w[j] = std * rng_normal(&rng);
    }
}

Status tmodel_forward(TModel *m, const int32_t *tokens, const int32_t *targets, int B, int T,
                      double *loss_sum, long *n_targets, Err *err) {
    const TConfig *c = &m->cfg;
    if (B < 1 || B > m->max_batch)
        return err_set(err, STATUS_INVALID, "batch of %d rows out of range [1, %d]", B,
                       m->max_batch);
    if (T < 1 || T > c->n_ctx)
        return err_set(err, STATUS_INVALID, "rows of %d tokens out of range [1, %d] (n_ctx)", T,
                       c->n_ctx);
    if (!tokens || !targets)
        return err_set(err, STATUS_INVALID, "no %s given", tokens ? "targets" : "tokens");
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            int32_t tok = tokens[(size_t)b * T + t], tgt = targets[(size_t)b * T + t];
            if (tok < 0 || tok >= c->n_vocab)
                return err_set(err, STATUS_INVALID,
                               "row %d, column %d: token %" PRId32 " out of range [0, %d)", b, t,
                               tok, c->n_vocab);
            if (tgt >= c->n_vocab)
                return err_set(err, STATUS_INVALID,
                               "row %d, column %d: target %" PRId32
                               " out of range (< %d; negative = ignored)",
                               b, t, tgt, c->n_vocab);
        }
    tknet_forward_f(&m->net, m->params, tokens, targets, B, T, loss_sum, n_targets);
    return STATUS_OK;
}

void tmodel_backward(TModel *m, float loss_scale) {
    ASSERT(m->net.B > 0); /* a forward came first */
    tknet_backward_f(&m->net, m->params, m->grads, loss_scale);
}

void tmodel_zero_grads(TModel *m) { memset(m->grads, 0, m->lo.n_params * sizeof(float)); }

const float *tmodel_logits(const TModel *m) { return m->net.logits; }
