/* model.c - load a GGUF transformer and run it over batches of rows.
 *
 * Load: read and bound every hyperparameter, bind every tensor by its
 * llama.cpp name with the exact expected shape and a type the kernels
 * support, then allocate everything a forward pass needs (thread pool,
 * KV pool, scratch for n_batch rows) once.
 *
 * Forward over B rows (shape letters: B rows, C n_embd, NH/KVH heads, HD
 * head_dim, QD = NH*HD, KD = KVH*HD, F n_ff, V n_vocab):
 *   x = embed(token) [+ position_embd(pos)]                      (B, C)
 *   per layer:  xb = norm(x); q,k,v = xb.Wq/k/v^T (+b); [q/k rms per head];
 *               rope(q, k); K/V -> cache at (seq, pos);
 *               att = softmax(q.K^T / sqrt(HD)) . V over the row's own
 *               sequence, positions 0..pos (causal by construction);
 *               x += att.Wo^T (+b);  xb = norm(x);
 *               x += down(silu(xb.Wgate^T) * xb.Wup^T)   or gelu(up + b) for gpt2
 *   logits = norm(x).Wout^T for the rows that ask.
 * Every row's arithmetic is independent of the other rows (matmul dots
 * one weight row with one activation row; attention is per row and head),
 * so a batch gives the same bits as each sequence alone.
 *
 * Not here: sampling, scheduling, prefix-cache policy (engine/). */
#include "model/model.h"
#include "model/model_impl.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "core/tpool.h"
#include "model/arch.h"
#include "model/kvcache.h"
#include "tensor/attn_ext.h"
#include "tensor/matmul.h"
#include "tensor/ops.h"
#include "tensor/quant.h"

#define MODEL_DEFAULT_CTX 4096
#define MODEL_DEFAULT_BATCH 512
#define MODEL_DEFAULT_BLOCK 16
#define MODEL_ARCH_NAME_SHOW 64 /* bytes of an unknown architecture name to quote */
#define MODEL_MAX_PARTS 256     /* files of a split model */

/* ------------------------------------------------------------- loading */

static const char *dtype_name(int t) {
    const DTypeInfo *i = dtype_info(t);
    return i ? i->name : "unknown";
}

static void supported_types(char *buf, size_t n) {
    size_t off = 0;
    buf[0] = 0;
    for (int t = 0; t < DTYPE_COUNT; t++) {
        if (!dtype_info(t) || !matmul_supported((DType)t))
            continue;
        int k = snprintf(buf + off, n - off, "%s%s", off ? ", " : "", dtype_name(t));
        if (k < 0 || (size_t)k >= n - off)
            break;
        off += (size_t)k;
    }
}

/* Tensor 'name' in the file or, for a split model, in any of its parts. */
static const GGUFTensor *find_tensor(const Model *m, const char *name) {
    const GGUFTensor *t = gguf_find_tensor(&m->g, name);
    for (int i = 0; !t && i < m->n_parts - 1; i++)
        t = gguf_find_tensor(&m->parts[i], name);
    return t;
}

/* Find tensor 'name' and check it is exactly [ne0, ne1, ne2] (ne1 = 1 for
 * a vector, ne2 = 1 but for stacked expert matrices; vectors must be F32,
 * matrices a matmul-supported type). *out is NULL when an optional tensor
 * is absent. */
static Status bind_tensor(Model *m, const char *name, int64_t ne0, int64_t ne1, int64_t ne2,
                          bool matrix, TensorNeed need, const GGUFTensor **out, Err *err) {
    *out = NULL;
    if (need == TENSOR_ABSENT)
        return STATUS_OK;
    const GGUFTensor *t = find_tensor(m, name);
    if (!t) {
        if (need == TENSOR_OPTIONAL)
            return STATUS_OK;
        if (ne2 != 1)
            return err_set(err, STATUS_FORMAT,
                           "missing tensor '%s' (expected shape [%" PRId64 ", %" PRId64 ", %" PRId64
                           "])",
                           name, ne0, ne1, ne2);
        if (matrix)
            return err_set(err, STATUS_FORMAT,
                           "missing tensor '%s' (expected shape [%" PRId64 ", %" PRId64 "])", name,
                           ne0, ne1);
        return err_set(err, STATUS_FORMAT, "missing tensor '%s' (expected shape [%" PRId64 "])",
                       name, ne0);
    }
    if (t->ne[0] != ne0 || t->ne[1] != ne1 || t->ne[2] != ne2 || t->ne[3] != 1) {
        char got[96];
        int k;
        if (t->n_dims <= 1)
            k = snprintf(got, sizeof got, "[%" PRId64 "]", t->ne[0]);
        else if (t->n_dims == 2)
            k = snprintf(got, sizeof got, "[%" PRId64 ", %" PRId64 "]", t->ne[0], t->ne[1]);
        else
            k = snprintf(got, sizeof got, "[%" PRId64 ", %" PRId64 ", %" PRId64 ", %" PRId64 "]",
                         t->ne[0], t->ne[1], t->ne[2], t->ne[3]);
        ASSERT(k > 0);
        if (ne2 != 1)
            return err_set(err, STATUS_FORMAT,
                           "tensor '%s': shape %s but expected [%" PRId64 ", %" PRId64 ", %" PRId64
                           "]",
                           name, got, ne0, ne1, ne2);
        if (matrix || ne1 != 1)
            return err_set(err, STATUS_FORMAT,
                           "tensor '%s': shape %s but expected [%" PRId64 ", %" PRId64 "]", name,
                           got, ne0, ne1);
        return err_set(err, STATUS_FORMAT, "tensor '%s': shape %s but expected [%" PRId64 "]", name,
                       got, ne0);
    }
    if (matrix) {
        if (!matmul_supported(t->type)) {
            char list[256];
            supported_types(list, sizeof list);
            return err_set(err, STATUS_UNSUPPORTED,
                           "tensor '%s': type %s is not supported (supported: %s)", name,
                           dtype_name(t->type), list);
        }
    } else if (t->type != DTYPE_F32) {
        return err_set(err, STATUS_UNSUPPORTED, "tensor '%s': type %s but expected F32", name,
                       dtype_name(t->type));
    }
    *out = t;
    return STATUS_OK;
}

static Status bind_matrix(Model *m, const char *name, int64_t n_rows, int64_t n_cols,
                          TensorNeed need, Weight *w, Err *err) {
    const GGUFTensor *t;
    memset(w, 0, sizeof *w);
    Status st = bind_tensor(m, name, n_cols, n_rows, 1, true, need, &t, err);
    if (st == STATUS_OK && t)
        *w = (Weight){t->data, t->type, n_rows, n_cols, {0}};
    return st;
}

static Status bind_vector(Model *m, const char *name, int64_t n, TensorNeed need, const float **v,
                          Err *err) {
    const GGUFTensor *t;
    *v = NULL;
    Status st = bind_tensor(m, name, n, 1, 1, false, need, &t, err);
    if (st == STATUS_OK && t)
        *v = t->data;
    return st;
}

static Status bind_blk_matrix(Model *m, int il, const char *suffix, int64_t n_rows, int64_t n_cols,
                              TensorNeed need, Weight *w, Err *err) {
    char name[ARCH_NAME_MAX];
    arch_blk_name(name, il, suffix);
    return bind_matrix(m, name, n_rows, n_cols, need, w, err);
}

/* The E matrices (n_rows, n_cols) stacked in the 3-D tensor
 * blk.<il>.<suffix> as E Weights viewing its slices. */
static Status bind_blk_experts(Model *m, int il, const char *suffix, int64_t n_rows, int64_t n_cols,
                               int E, Weight *w, Err *err) {
    char name[ARCH_NAME_MAX];
    arch_blk_name(name, il, suffix);
    char old[ARCH_NAME_MAX]; /* Mixtral files of early 2024: one tensor per expert */
    int k = snprintf(old, sizeof old, "blk.%d.ffn_gate.0.weight", il);
    ASSERT(k > 0 && k < (int)sizeof old);
    if (!find_tensor(m, name) && find_tensor(m, old))
        return err_set(err, STATUS_UNSUPPORTED,
                       "tensor '%s' holds one expert: this file stores experts one tensor each "
                       "(an older llama.cpp layout); convert the model again with a current "
                       "llama.cpp, which stacks them in '%s'",
                       old, name);
    const GGUFTensor *t;
    Status st = bind_tensor(m, name, n_cols, n_rows, E, true, TENSOR_REQUIRED, &t, err);
    if (st)
        return st;
    size_t bytes = (size_t)dtype_row_bytes(t->type, n_cols) * (size_t)n_rows;
    for (int e = 0; e < E; e++)
        w[e] = (Weight){(const char *)t->data + (size_t)e * bytes, t->type, n_rows, n_cols, {0}};
    return STATUS_OK;
}

/* The E bias vectors of n floats stacked in the F32 tensor blk.<il>.<suffix>
 * ([n, E]); expert e's at *b + e * n. */
static Status bind_blk_biases(Model *m, int il, const char *suffix, int64_t n, int E,
                              const float **b, Err *err) {
    char name[ARCH_NAME_MAX];
    arch_blk_name(name, il, suffix);
    const GGUFTensor *t;
    Status st = bind_tensor(m, name, n, E, 1, false, TENSOR_REQUIRED, &t, err);
    *b = st == STATUS_OK ? t->data : NULL;
    return st;
}

static Status bind_blk_vector(Model *m, int il, const char *suffix, int64_t n, TensorNeed need,
                              const float **v, Err *err) {
    char name[ARCH_NAME_MAX];
    arch_blk_name(name, il, suffix);
    return bind_vector(m, name, n, need, v, err);
}

/* Layer il's query, key and value projections: the fused attn_qkv when the
 * model has it (m->fused_qkv), else attn_q / attn_k / attn_v, with their
 * biases as 'bias' says. */
static Status bind_qkv(Model *m, int il, Layer *L, int64_t QD, int64_t KD, int64_t C,
                       TensorNeed bias, Err *err) {
    Status st;
    if (m->fused_qkv) {
        if ((st = bind_blk_matrix(m, il, TN_ATTN_QKV, QD + 2 * KD, C, TENSOR_REQUIRED, &L->wqkv,
                                  err)) ||
            (st = bind_blk_vector(m, il, TN_ATTN_QKV_B, QD + 2 * KD, bias, &L->bqkv, err)))
            return st;
        return STATUS_OK;
    }
    if ((st = bind_blk_matrix(m, il, TN_ATTN_Q, QD, C, TENSOR_REQUIRED, &L->wq, err)) ||
        (st = bind_blk_matrix(m, il, TN_ATTN_K, KD, C, TENSOR_REQUIRED, &L->wk, err)) ||
        (st = bind_blk_matrix(m, il, TN_ATTN_V, KD, C, TENSOR_REQUIRED, &L->wv, err)) ||
        (st = bind_blk_vector(m, il, TN_ATTN_Q_B, QD, bias, &L->bq, err)) ||
        (st = bind_blk_vector(m, il, TN_ATTN_K_B, KD, bias, &L->bk, err)) ||
        (st = bind_blk_vector(m, il, TN_ATTN_V_B, KD, bias, &L->bv, err)))
        return st;
    return STATUS_OK;
}

/* An unsigned hyperparameter "<arch>.<suffix>" in [lo, hi]. */
static Status get_dim(Model *m, const char *suffix, bool required, uint32_t def, uint32_t lo,
                      uint32_t hi, int *out, Err *err) {
    char key[ARCH_NAME_MAX];
    arch_key(key, m->ai, suffix);
    uint32_t v = def;
    Status st = gguf_get_u32(&m->g, key, required, &v, err);
    if (st != STATUS_OK)
        return st;
    if (v < lo || v > hi)
        return err_set(err, STATUS_LIMIT,
                       "'%s' = %" PRIu32 " out of range [%" PRIu32 ", %" PRIu32 "]", key, v, lo,
                       hi);
    *out = (int)v;
    return STATUS_OK;
}

static Status get_float(Model *m, const char *suffix, bool required, float def, float *out,
                        Err *err) {
    char key[ARCH_NAME_MAX];
    arch_key(key, m->ai, suffix);
    float v = def;
    Status st = gguf_get_f32(&m->g, key, required, &v, err);
    if (st != STATUS_OK)
        return st;
    if (!isfinite(v) || !(v > 0.0f))
        return err_set(err, STATUS_FORMAT, "'%s' = %g must be finite and > 0", key, (double)v);
    *out = v;
    return STATUS_OK;
}

/* A float "<arch>.<suffix>" in (0, hi], 'def' when absent. */
static Status get_float_max(Model *m, const char *suffix, float def, float hi, float *out,
                            Err *err) {
    Status st = get_float(m, suffix, false, def, out, err);
    if (st == STATUS_OK && *out > hi) {
        char key[ARCH_NAME_MAX];
        arch_key(key, m->ai, suffix);
        return err_set(err, STATUS_LIMIT, "'%s' = %g exceeds %g", key, (double)*out, (double)hi);
    }
    return st;
}

static bool has_key(const Model *m, const char *suffix) {
    char key[ARCH_NAME_MAX];
    arch_key(key, m->ai, suffix);
    return gguf_find_key(&m->g, key) != NULL;
}

/* The hyperparameters of the newer architectures: query scale, embedding
 * scale, soft-caps, sliding window, LongRoPE, experts (arch.h). */
static Status load_hparams_ext(Model *m, Err *err) {
    ModelConfig *c = &m->cfg;
    const ArchInfo *a = m->ai;
    Status st;
    c->attn_scale = 1.0f / sqrtf((float)c->head_dim);
    if (a->big_layers && c->n_layers == a->big_layers)
        c->attn_scale = 1.0f / sqrtf((float)(c->n_embd / c->n_heads));
    c->embd_scale = a->embd_scale ? sqrtf((float)c->n_embd) : 1.0f;
    if (a->softcap && ((st = get_float_max(m, "attn_logit_softcapping", 50.0f, MODEL_MAX_SOFTCAP,
                                           &c->attn_softcap, err)) ||
                       (st = get_float_max(m, "final_logit_softcapping", 30.0f, MODEL_MAX_SOFTCAP,
                                           &c->final_softcap, err))))
        return st;
    /* gemma requires the window (as llama.cpp); phi3 has one where the file says */
    if (a->swa_period && (a->swa_period > 1 || has_key(m, "attention.sliding_window"))) {
        if ((st =
                 get_dim(m, "attention.sliding_window", true, 0, 1, MODEL_MAX_CTX, &c->n_swa, err)))
            return st;
        c->swa_period = a->swa_period;
    }
    if (a->rope_local)
        c->rope_local_base = 10000.0f;
    c->rope_attn_factor = 1.0f;
    if (!c->rope_yarn)
        c->rope_orig_ctx = c->n_ctx_train;
    if (a->rope_longshort &&
        ((st = get_dim(m, "rope.scaling.original_context_length", false, (uint32_t)c->n_ctx_train,
                       1, MODEL_MAX_CTX, &c->rope_orig_ctx, err)) ||
         (st =
              get_float_max(m, "rope.scaling.attn_factor", 1.0f, 1e3f, &c->rope_attn_factor, err))))
        return st;
    if (a->moe == TENSOR_REQUIRED || (a->moe == TENSOR_OPTIONAL && has_key(m, "expert_count"))) {
        char key[ARCH_NAME_MAX];
        if ((st = get_dim(m, "expert_count", true, 0, 0, MODEL_MAX_EXPERTS, &c->n_expert, err)))
            return st;
        if (c->n_expert == 0 && a->moe == TENSOR_OPTIONAL)
            return STATUS_OK; /* a dense llama that says so */
        if (c->n_expert == 0) {
            arch_key(key, a, "expert_count");
            return err_set(err, STATUS_FORMAT, "'%s' = 0 but %s is a mixture of experts", key,
                           a->name);
        }
        if ((st = get_dim(m, "expert_used_count", true, 0, 1, MODEL_MAX_EXPERTS, &c->n_expert_used,
                          err)))
            return st;
        if (c->n_expert_used > c->n_expert) {
            arch_key(key, a, "expert_used_count");
            return err_set(err, STATUS_FORMAT, "'%s' = %d exceeds expert_count %d", key,
                           c->n_expert_used, c->n_expert);
        }
        bool own_ff = a->moe == TENSOR_REQUIRED; /* llama's experts are feed_forward_length wide */
        if ((st = get_dim(m, "expert_feed_forward_length", own_ff, (uint32_t)c->n_ff, 1,
                          MODEL_MAX_FF, &c->n_ff_exp, err)))
            return st;
        if (a->moe_shared) {
            /* older files lack the key: the shared expert's own shape says */
            const GGUFTensor *t = find_tensor(m, "blk.0." TN_FFN_UP_SHEXP);
            uint32_t def = t && t->ne[1] > 0 && t->ne[1] <= MODEL_MAX_FF ? (uint32_t)t->ne[1]
                                                                         : (uint32_t)c->n_ff_exp;
            if ((st = get_dim(m, "expert_shared_feed_forward_length", false, def, 1, MODEL_MAX_FF,
                              &c->n_ff_shexp, err)))
                return st;
        }
        c->moe_norm_topk = a->moe_norm_topk;
        c->moe_oai = a->moe_oai;
    }
    return STATUS_OK;
}

/* The encoders' keys: pooling_type (0..3; 4, rank, is a reranker's head,
 * not supported) and attention.causal (false; a causal encoder is refused). */
#define MODEL_POOLING_RANK 4
static Status load_hparams_encoder(Model *m, Err *err) {
    ModelConfig *c = &m->cfg;
    char key[ARCH_NAME_MAX];
    Status st;
    c->encoder = true;
    c->pooling_type = -1;
    c->pooling = MODEL_POOL_MEAN;
    arch_key(key, m->ai, "pooling_type");
    if (gguf_find_key(&m->g, key)) {
        uint32_t v = 0;
        if ((st = gguf_get_u32(&m->g, key, true, &v, err)))
            return st;
        if (v == MODEL_POOLING_RANK)
            return err_set(err, STATUS_UNSUPPORTED,
                           "'%s' = 4 (rank: a reranker's classification head) is not supported "
                           "(supported: 0 none, 1 mean, 2 cls, 3 last)",
                           key);
        if (v > MODEL_POOL_LAST)
            return err_set(err, STATUS_FORMAT,
                           "'%s' = %" PRIu32 " out of range [0, 3] (0 none, 1 mean, 2 cls, 3 last)",
                           key, v);
        c->pooling_type = (int)v;
        if (v != 0)
            c->pooling = (ModelPooling)v;
    }
    bool causal = false;
    arch_key(key, m->ai, "attention.causal");
    if ((st = gguf_get_bool(&m->g, key, false, &causal, err)))
        return st;
    if (causal)
        return err_set(err, STATUS_UNSUPPORTED,
                       "'%s' = true: a causal %s encoder is not supported (bidirectional only)",
                       key, m->ai->name);
    return STATUS_OK;
}

static Status load_hparams(Model *m, Err *err) {
    ModelConfig *c = &m->cfg;
    Status st;
    GGUFStr an = {0};
    if ((st = gguf_get_str(&m->g, "general.architecture", true, &an, err)))
        return st;
    m->ai = arch_find(an.ptr, (size_t)an.len);
    if (!m->ai) {
        int show = an.len > MODEL_ARCH_NAME_SHOW ? MODEL_ARCH_NAME_SHOW : (int)an.len;
        return err_set(err, STATUS_UNSUPPORTED, "unknown architecture '%.*s%s' (supported: %s)",
                       show, an.ptr, an.len > MODEL_ARCH_NAME_SHOW ? "..." : "",
                       arch_supported_list());
    }
    c->arch = m->ai->arch;
    c->arch_name = m->ai->name;
    c->rope_type = m->ai->rope;
    c->pooling = MODEL_POOL_MEAN;
    c->pooling_type = -1;
    if (m->ai->encoder && (st = load_hparams_encoder(m, err)))
        return st;

    if ((st = get_dim(m, "context_length", true, 0, 1, MODEL_MAX_CTX, &c->n_ctx_train, err)) ||
        (st = get_dim(m, "embedding_length", true, 0, 1, MODEL_MAX_EMBD, &c->n_embd, err)) ||
        (st = get_dim(m, "block_count", true, 0, 1, MODEL_MAX_LAYERS, &c->n_layers, err)) ||
        (st = get_dim(m, "feed_forward_length", true, 0, 1, MODEL_MAX_FF, &c->n_ff, err)) ||
        (st = get_dim(m, "attention.head_count", true, 0, 1, MODEL_MAX_HEADS, &c->n_heads, err)) ||
        (st = get_dim(m, "attention.head_count_kv", false, (uint32_t)c->n_heads, 1, MODEL_MAX_HEADS,
                      &c->n_kv_heads, err)))
        return st;
    char key[ARCH_NAME_MAX];
    if (c->n_heads % c->n_kv_heads) {
        arch_key(key, m->ai, "attention.head_count_kv");
        return err_set(err, STATUS_FORMAT, "'%s' = %d does not divide head_count %d", key,
                       c->n_kv_heads, c->n_heads);
    }
    int def_hd = c->n_embd / c->n_heads;
    if ((st = get_dim(m, "attention.key_length", false, (uint32_t)def_hd, 1, MODEL_MAX_EMBD,
                      &c->head_dim, err)))
        return st;
    int vlen = c->head_dim;
    if ((st = get_dim(m, "attention.value_length", false, (uint32_t)c->head_dim, 1, MODEL_MAX_EMBD,
                      &vlen, err)))
        return st;
    if (vlen != c->head_dim)
        return err_set(err, STATUS_UNSUPPORTED,
                       "attention.value_length %d differs from key_length %d (not supported)", vlen,
                       c->head_dim);
    if (c->head_dim < 1)
        return err_set(err, STATUS_FORMAT,
                       "head dimension is 0 (embedding_length %d < head_count %d)", c->n_embd,
                       c->n_heads);
    if ((int64_t)c->head_dim * c->n_heads > 4 * (int64_t)MODEL_MAX_EMBD)
        return err_set(err, STATUS_LIMIT, "head_count %d x head dim %d exceeds %d", c->n_heads,
                       c->head_dim, 4 * MODEL_MAX_EMBD);
    if ((st = get_float(m, m->ai->eps_suffix, true, 0.0f, &c->norm_eps, err)))
        return st;

    c->rope_freq_base = 10000.0f;
    c->rope_freq_scale = 1.0f;
    c->n_rot = 0;
    if (c->rope_type != ROPE_NONE) {
        if ((st = get_float(m, "rope.freq_base", false, 10000.0f, &c->rope_freq_base, err)))
            return st;
        if ((st = get_dim(m, "rope.dimension_count", false, (uint32_t)c->head_dim, 1,
                          MODEL_MAX_EMBD, &c->n_rot, err)))
            return st;
        if (c->head_dim % 2)
            return err_set(err, STATUS_FORMAT, "head dimension %d must be even for rope",
                           c->head_dim);
        if (c->n_rot % 2 || c->n_rot > c->head_dim || c->n_rot > OPS_MAX_ROT)
            return err_set(err, STATUS_FORMAT,
                           "rope.dimension_count %d must be even and <= head dimension %d",
                           c->n_rot, c->head_dim);
        GGUFStr stype = {0};
        arch_key(key, m->ai, "rope.scaling.type");
        if ((st = gguf_get_str(&m->g, key, false, &stype, err)))
            return st;
        if (stype.ptr && gguf_str_eq(stype, "linear")) {
            float factor = 1.0f;
            if ((st = get_float(m, "rope.scaling.factor", false, 1.0f, &factor, err)))
                return st;
            c->rope_freq_scale = 1.0f / factor;
        } else if (stype.ptr && gguf_str_eq(stype, "yarn") && m->ai->rope_yarn) {
            float factor = 1.0f, beta_fast = 32.0f, beta_slow = 1.0f, attn = 1.0f;
            if ((st = get_float(m, "rope.scaling.factor", false, 1.0f, &factor, err)) ||
                (st = get_float(m, "rope.scaling.yarn_beta_fast", false, 32.0f, &beta_fast, err)) ||
                (st = get_float(m, "rope.scaling.yarn_beta_slow", false, 1.0f, &beta_slow, err)) ||
                (st = get_float(m, "rope.scaling.attn_factor", false, 1.0f, &attn, err)) ||
                (st = get_dim(m, "rope.scaling.original_context_length", false,
                              (uint32_t)c->n_ctx_train, 1, MODEL_MAX_CTX, &c->rope_orig_ctx, err)))
                return st;
            if (factor > 1e4f)
                return err_set(err, STATUS_LIMIT, "rope.scaling.factor %g exceeds 1e4",
                               (double)factor);
            c->rope_yarn = true;
            c->rope_freq_scale = 1.0f / factor;
            c->rope_yarn_mscale = attn * (factor > 1.0f ? 1.0f + 0.1f * logf(factor) : 1.0f);
            rope_yarn_corr_dims(c->n_rot, c->rope_orig_ctx, c->rope_freq_base, beta_fast, beta_slow,
                                c->rope_yarn_corr);
        } else if (stype.ptr && !gguf_str_eq(stype, "none")) {
            int show = stype.len > MODEL_ARCH_NAME_SHOW ? MODEL_ARCH_NAME_SHOW : (int)stype.len;
            return err_set(err, STATUS_UNSUPPORTED,
                           "'%s' = '%.*s' is not supported (supported: none, linear%s)", key, show,
                           stype.ptr, m->ai->rope_yarn ? ", yarn" : "");
        }
    }
    return load_hparams_ext(m, err);
}

static Status load_vocab(Model *m, Err *err) {
    ModelConfig *c = &m->cfg;
    const GGUFTensor *te = find_tensor(m, TN_TOKEN_EMBD);
    if (!te)
        return err_set(err, STATUS_FORMAT, "missing tensor '%s' (expected shape [%d, n_vocab])",
                       TN_TOKEN_EMBD, c->n_embd);
    if (te->ne[1] < 1 || te->ne[1] > MODEL_MAX_VOCAB)
        return err_set(err, STATUS_LIMIT,
                       "tensor '%s': vocabulary size %" PRId64 " out of range [1, %d]",
                       TN_TOKEN_EMBD, te->ne[1], MODEL_MAX_VOCAB);
    c->n_vocab = (int)te->ne[1];
    const GGUFKV *kv = gguf_find_key(&m->g, "tokenizer.ggml.tokens");
    if (kv && kv->type == GGUF_TYPE_ARRAY && kv->arr_n != (uint64_t)c->n_vocab)
        return err_set(err, STATUS_FORMAT,
                       "vocabulary size disagrees: tokenizer.ggml.tokens has %" PRIu64
                       " entries but '%s' has %d rows",
                       kv->arr_n, TN_TOKEN_EMBD, c->n_vocab);
    char key[ARCH_NAME_MAX];
    arch_key(key, m->ai, "vocab_size");
    if (gguf_find_key(&m->g, key)) {
        uint32_t vs = 0;
        Status st = gguf_get_u32(&m->g, key, true, &vs, err);
        if (st)
            return st;
        if (vs != (uint32_t)c->n_vocab)
            return err_set(err, STATUS_FORMAT,
                           "vocabulary size disagrees: '%s' = %" PRIu32 " but '%s' has %d rows",
                           key, vs, TN_TOKEN_EMBD, c->n_vocab);
    }
    return STATUS_OK;
}

/* The encoders' tensors (arch.h): token_embd, token_types, position_embd
 * (bert), token_embd_norm; per layer q/k/v or qkv, attn_output,
 * attn_output_norm, the FFN, layer_output_norm; LayerNorms with biases,
 * the matrices' biases where the file has them. No output head. */
static Status load_tensors_encoder(Model *m, Err *err) {
    ModelConfig *c = &m->cfg;
    const ArchInfo *a = m->ai;
    int64_t C = c->n_embd, HD = c->head_dim, QD = (int64_t)c->n_heads * HD;
    int64_t KD = (int64_t)c->n_kv_heads * HD, F = c->n_ff, V = c->n_vocab;
    Status st;
    if ((st = bind_matrix(m, TN_TOKEN_EMBD, V, C, TENSOR_REQUIRED, &m->tok_embd, err)))
        return st;
    const GGUFTensor *tt = find_tensor(m, TN_TOKEN_TYPES);
    if (!tt)
        return err_set(err, STATUS_FORMAT,
                       "missing tensor '%s' (expected shape [%" PRId64 ", n_token_types])",
                       TN_TOKEN_TYPES, C);
    if (tt->ne[1] < 1 || tt->ne[1] > MODEL_MAX_TOKEN_TYPES)
        return err_set(err, STATUS_LIMIT,
                       "tensor '%s': %" PRId64 " token types out of range [1, %d]", TN_TOKEN_TYPES,
                       tt->ne[1], MODEL_MAX_TOKEN_TYPES);
    c->n_token_types = (int)tt->ne[1];
    const GGUFKV *kv = gguf_find_key(&m->g, "tokenizer.ggml.token_type_count");
    if (kv && kv->type != GGUF_TYPE_ARRAY && kv->val.u != (uint64_t)c->n_token_types)
        return err_set(err, STATUS_FORMAT,
                       "tokenizer.ggml.token_type_count = %llu but '%s' has %d rows",
                       (unsigned long long)kv->val.u, TN_TOKEN_TYPES, c->n_token_types);
    if ((st = bind_matrix(m, TN_TOKEN_TYPES, c->n_token_types, C, TENSOR_REQUIRED, &m->tok_types,
                          err)) ||
        (a->learned_pos && (st = bind_matrix(m, TN_POS_EMBD, c->n_ctx_train, C, TENSOR_REQUIRED,
                                             &m->pos_embd, err))) ||
        (st = bind_vector(m, TN_TOKEN_EMBD_NORM, C, TENSOR_REQUIRED, &m->tok_norm, err)) ||
        (st = bind_vector(m, TN_TOKEN_EMBD_NORM_B, C, TENSOR_REQUIRED, &m->tok_norm_b, err)))
        return st;
    m->layers = calloc((size_t)c->n_layers, sizeof *m->layers);
    if (!m->layers)
        return err_set(err, STATUS_NOMEM, "out of memory for %d layers", c->n_layers);
    char name[ARCH_NAME_MAX];
    arch_blk_name(name, 0, TN_ATTN_QKV);
    m->fused_qkv = find_tensor(m, name) != NULL;
    bool gated = a->ffn == FFN_SILU_GATED;
    for (int il = 0; il < c->n_layers; il++) {
        Layer *L = &m->layers[il];
        if ((st = bind_qkv(m, il, L, QD, KD, C, a->qkv_bias, err)))
            return st;
        if ((st = bind_blk_matrix(m, il, TN_ATTN_OUT, C, QD, TENSOR_REQUIRED, &L->wo, err)) ||
            (st = bind_blk_vector(m, il, TN_ATTN_OUT_B, C, a->out_bias, &L->bo, err)) ||
            (st = bind_blk_vector(m, il, TN_ATTN_OUT_NORM, C, TENSOR_REQUIRED, &L->attn_out_norm,
                                  err)) ||
            (st = bind_blk_vector(m, il, TN_ATTN_OUT_NORM_B, C, TENSOR_REQUIRED,
                                  &L->attn_out_norm_b, err)) ||
            (st = bind_blk_matrix(m, il, TN_FFN_GATE, F, C, gated ? TENSOR_REQUIRED : TENSOR_ABSENT,
                                  &L->gate, err)) ||
            (st = bind_blk_vector(m, il, TN_FFN_GATE_B, F, gated ? a->ffn_bias : TENSOR_ABSENT,
                                  &L->bgate, err)) ||
            (st = bind_blk_matrix(m, il, TN_FFN_UP, F, C, TENSOR_REQUIRED, &L->up, err)) ||
            (st = bind_blk_vector(m, il, TN_FFN_UP_B, F, a->ffn_bias, &L->bup, err)) ||
            (st = bind_blk_matrix(m, il, TN_FFN_DOWN, C, F, TENSOR_REQUIRED, &L->down, err)) ||
            (st = bind_blk_vector(m, il, TN_FFN_DOWN_B, C, a->ffn_bias, &L->bdown, err)) ||
            (st = bind_blk_vector(m, il, TN_LAYER_OUT_NORM, C, TENSOR_REQUIRED, &L->layer_out_norm,
                                  err)) ||
            (st = bind_blk_vector(m, il, TN_LAYER_OUT_NORM_B, C, TENSOR_REQUIRED,
                                  &L->layer_out_norm_b, err)))
            return st;
    }
    return STATUS_OK;
}

static uint64_t count_params(const Model *m) {
    uint64_t n = 0;
    for (int p = 0; p < m->n_parts; p++) {
        const GGUF *g = p ? &m->parts[p - 1] : &m->g;
        for (uint64_t i = 0; i < g->n_tensors; i++)
            n += g->tensors[i].n_elements;
    }
    return n;
}

static Status load_tensors(Model *m, Err *err) {
    const ModelConfig *c = &m->cfg;
    const ArchInfo *a = m->ai;
    if (a->encoder) {
        Status st = load_tensors_encoder(m, err);
        m->cfg.n_params = count_params(m);
        return st;
    }
    int64_t C = c->n_embd, HD = c->head_dim, QD = (int64_t)c->n_heads * HD, NH = c->n_heads;
    int64_t KD = (int64_t)c->n_kv_heads * HD, F = c->n_ff, V = c->n_vocab;
    TensorNeed norm_b = a->norm == NORM_LAYER ? TENSOR_REQUIRED : TENSOR_ABSENT;
    Status st;

    if ((st = bind_matrix(m, TN_TOKEN_EMBD, V, C, TENSOR_REQUIRED, &m->tok_embd, err)))
        return st;
    if (a->learned_pos &&
        (st = bind_matrix(m, TN_POS_EMBD, c->n_ctx_train, C, TENSOR_REQUIRED, &m->pos_embd, err)))
        return st;
    if ((st = bind_vector(m, TN_OUTPUT_NORM, C, TENSOR_REQUIRED, &m->out_norm, err)) ||
        (st = bind_vector(m, TN_OUTPUT_NORM_B, C, norm_b, &m->out_norm_b, err)) ||
        (st = bind_matrix(m, TN_OUTPUT, V, C, TENSOR_OPTIONAL, &m->output, err)))
        return st;
    m->cfg.tied_output = m->output.data == NULL;
    if (m->cfg.tied_output)
        m->output = m->tok_embd;
    if (a->rope_freqs) {
        if ((st =
                 bind_vector(m, TN_ROPE_FREQS, c->n_rot / 2, TENSOR_OPTIONAL, &m->rope_freqs, err)))
            return st;
        m->cfg.has_rope_freqs = m->rope_freqs != NULL;
    }
    if (a->rope_longshort) {
        if ((st =
                 bind_vector(m, TN_ROPE_LONG, c->n_rot / 2, TENSOR_OPTIONAL, &m->rope_long, err)) ||
            (st = bind_vector(m, TN_ROPE_SHORT, c->n_rot / 2,
                              m->rope_long ? TENSOR_REQUIRED : TENSOR_OPTIONAL, &m->rope_short,
                              err)))
            return st;
        if (m->rope_short && !m->rope_long)
            return err_set(err, STATUS_FORMAT, "tensor '%s' without '%s'", TN_ROPE_SHORT,
                           TN_ROPE_LONG);
        m->cfg.has_rope_longshort = m->rope_long != NULL;
    }
    const float *factors[] = {m->rope_freqs, m->rope_long, m->rope_short};
    const char *fnames[] = {TN_ROPE_FREQS, TN_ROPE_LONG, TN_ROPE_SHORT};
    for (int f = 0; f < 3; f++)
        for (int i = 0; factors[f] && i < c->n_rot / 2; i++)
            if (!isfinite(factors[f][i]) || !(factors[f][i] > 0.0f))
                return err_set(err, STATUS_FORMAT,
                               "tensor '%s': element %d = %g must be "
                               "finite and > 0",
                               fnames[f], i, (double)factors[f][i]);

    m->layers = calloc((size_t)c->n_layers, sizeof *m->layers);
    if (!m->layers)
        return err_set(err, STATUS_NOMEM, "out of memory for %d layers", c->n_layers);
    int E = c->n_expert;
    if (E) {
        m->exps = calloc((size_t)c->n_layers * 3 * (size_t)E, sizeof *m->exps);
        if (!m->exps)
            return err_set(err, STATUS_NOMEM, "out of memory for %d x %d experts", c->n_layers, E);
    }
    if (a->qkv == QKV_EITHER) {
        char name[ARCH_NAME_MAX];
        arch_blk_name(name, 0, TN_ATTN_QKV);
        m->fused_qkv = find_tensor(m, name) != NULL;
    } else {
        m->fused_qkv = a->qkv == QKV_FUSED;
    }
    bool gated = a->ffn == FFN_SILU_GATED || a->ffn == FFN_GELU_GATED;
    TensorNeed dense = E ? TENSOR_ABSENT : TENSOR_REQUIRED;
    TensorNeed gate = gated ? dense : TENSOR_ABSENT;
    TensorNeed gate_b = gated && !E ? a->ffn_bias : TENSOR_ABSENT;
    TensorNeed up_b = E ? TENSOR_ABSENT : a->ffn_bias;
    TensorNeed qnorm = a->qk_norm ? TENSOR_REQUIRED : TENSOR_ABSENT;
    TensorNeed post = a->post_norms ? TENSOR_REQUIRED : TENSOR_ABSENT;
    int64_t UP = a->ffn == FFN_SILU_FUSED ? 2 * F : F; /* up's rows */
    int64_t FE = c->n_ff_exp, FS = c->n_ff_shexp;
    for (int il = 0; il < c->n_layers; il++) {
        Layer *L = &m->layers[il];
        if ((st = bind_blk_vector(m, il, TN_ATTN_NORM, C, TENSOR_REQUIRED, &L->attn_norm, err)) ||
            (st = bind_blk_vector(m, il, TN_ATTN_NORM_B, C, norm_b, &L->attn_norm_b, err)))
            return st;
        if ((st = bind_qkv(m, il, L, QD, KD, C, a->qkv_bias, err)))
            return st;
        if ((st = bind_blk_vector(m, il, TN_ATTN_Q_NORM, HD, qnorm, &L->q_norm, err)) ||
            (st = bind_blk_vector(m, il, TN_ATTN_K_NORM, HD, qnorm, &L->k_norm, err)) ||
            (st = bind_blk_matrix(m, il, TN_ATTN_OUT, C, QD, TENSOR_REQUIRED, &L->wo, err)) ||
            (st = bind_blk_vector(m, il, TN_ATTN_OUT_B, C, a->out_bias, &L->bo, err)) ||
            (st = bind_blk_vector(m, il, TN_ATTN_POST_NORM, C, post, &L->attn_post_norm, err)) ||
            (st = bind_blk_vector(m, il, a->ffn_norm ? a->ffn_norm : TN_FFN_NORM, C,
                                  TENSOR_REQUIRED, &L->ffn_norm, err)) ||
            (st = bind_blk_vector(m, il, TN_ATTN_SINKS, NH,
                                  a->sinks ? TENSOR_REQUIRED : TENSOR_ABSENT, &L->sinks, err)) ||
            (st = bind_blk_vector(m, il, TN_FFN_NORM_B, C, norm_b, &L->ffn_norm_b, err)) ||
            (st = bind_blk_vector(m, il, TN_FFN_POST_NORM, C, post, &L->ffn_post_norm, err)) ||
            (st = bind_blk_matrix(m, il, TN_FFN_GATE, F, C, gate, &L->gate, err)) ||
            (st = bind_blk_vector(m, il, TN_FFN_GATE_B, F, gate_b, &L->bgate, err)) ||
            (st = bind_blk_matrix(m, il, TN_FFN_UP, UP, C, dense, &L->up, err)) ||
            (st = bind_blk_vector(m, il, TN_FFN_UP_B, F, up_b, &L->bup, err)) ||
            (st = bind_blk_matrix(m, il, TN_FFN_DOWN, C, F, dense, &L->down, err)) ||
            (st = bind_blk_vector(m, il, TN_FFN_DOWN_B, C, up_b, &L->bdown, err)))
            return st;
        if (E) {
            L->gate_exps = m->exps + ((size_t)il * 3 + 0) * (size_t)E;
            L->up_exps = m->exps + ((size_t)il * 3 + 1) * (size_t)E;
            L->down_exps = m->exps + ((size_t)il * 3 + 2) * (size_t)E;
            if ((st = bind_blk_matrix(m, il, TN_FFN_GATE_INP, E, C, TENSOR_REQUIRED, &L->gate_inp,
                                      err)) ||
                (st = bind_blk_experts(m, il, TN_FFN_GATE_EXPS, FE, C, E, L->gate_exps, err)) ||
                (st = bind_blk_experts(m, il, TN_FFN_UP_EXPS, FE, C, E, L->up_exps, err)) ||
                (st = bind_blk_experts(m, il, TN_FFN_DOWN_EXPS, C, FE, E, L->down_exps, err)))
                return st;
            if (a->moe_oai &&
                ((st = bind_blk_vector(m, il, TN_FFN_GATE_INP_B, E, TENSOR_REQUIRED, &L->gate_inp_b,
                                       err)) ||
                 (st = bind_blk_biases(m, il, TN_FFN_GATE_EXPS_B, FE, E, &L->gate_exps_b, err)) ||
                 (st = bind_blk_biases(m, il, TN_FFN_UP_EXPS_B, FE, E, &L->up_exps_b, err)) ||
                 (st = bind_blk_biases(m, il, TN_FFN_DOWN_EXPS_B, C, E, &L->down_exps_b, err))))
                return st;
        }
        if (FS && ((st = bind_blk_vector(m, il, TN_FFN_GATE_INP_SHEXP, C, TENSOR_REQUIRED,
                                         &L->gate_inp_shexp, err)) ||
                   (st = bind_blk_matrix(m, il, TN_FFN_GATE_SHEXP, FS, C, TENSOR_REQUIRED,
                                         &L->gate_shexp, err)) ||
                   (st = bind_blk_matrix(m, il, TN_FFN_UP_SHEXP, FS, C, TENSOR_REQUIRED,
                                         &L->up_shexp, err)) ||
                   (st = bind_blk_matrix(m, il, TN_FFN_DOWN_SHEXP, C, FS, TENSOR_REQUIRED,
                                         &L->down_shexp, err))))
            return st;
        /* sliding: every layer (period 1) or all but each period-th */
        int per = c->swa_period;
        L->window = c->n_swa && (per == 1 || (per > 1 && il % per != per - 1)) ? c->n_swa : 0;
        L->rope_local = L->window && c->rope_local_base > 0.0f;
    }
    m->cfg.n_params = count_params(m);
    return STATUS_OK;
}

static Status resolve_params(Model *m, const ModelParams *in, Err *err) {
    ModelParams p = in ? *in : (ModelParams){0};
    const ModelConfig *c = &m->cfg;
    if (p.n_threads < 0 || p.n_threads > TPOOL_MAX_THREADS)
        return err_set(err, STATUS_INVALID, "n_threads %d out of range [0, %d]", p.n_threads,
                       TPOOL_MAX_THREADS);
    if (p.n_ctx < 0 || p.n_ctx > MODEL_MAX_CTX)
        return err_set(err, STATUS_INVALID, "n_ctx %d out of range [0, %d]", p.n_ctx,
                       MODEL_MAX_CTX);
    if (p.n_seq_max < 0 || p.n_seq_max > MODEL_MAX_SEQ)
        return err_set(err, STATUS_INVALID, "n_seq_max %d out of range [0, %d]", p.n_seq_max,
                       MODEL_MAX_SEQ);
    if (p.n_batch < 0 || p.n_batch > MODEL_MAX_BATCH)
        return err_set(err, STATUS_INVALID, "n_batch %d out of range [0, %d]", p.n_batch,
                       MODEL_MAX_BATCH);
    if (p.kv_block_size < 0 || p.kv_block_size > KV_MAX_BLOCK_SIZE)
        return err_set(err, STATUS_INVALID, "kv_block_size %d out of range [0, %d]",
                       p.kv_block_size, KV_MAX_BLOCK_SIZE);
    if (p.n_kv_blocks < 0 || p.n_kv_blocks > KV_MAX_BLOCKS)
        return err_set(err, STATUS_INVALID, "n_kv_blocks %d out of range [0, %d]", p.n_kv_blocks,
                       KV_MAX_BLOCKS);
    if (p.n_ctx == 0)
        p.n_ctx = c->n_ctx_train < MODEL_DEFAULT_CTX ? c->n_ctx_train : MODEL_DEFAULT_CTX;
    if (m->ai->learned_pos && p.n_ctx > c->n_ctx_train)
        return err_set(err, STATUS_INVALID,
                       "n_ctx %d exceeds the %d learned positions of this model", p.n_ctx,
                       c->n_ctx_train);
    if (p.n_seq_max == 0)
        p.n_seq_max = 1;
    if (p.n_batch == 0) /* an encoder's sequence runs whole in one pass */
        p.n_batch = m->ai->encoder && p.n_ctx > MODEL_DEFAULT_BATCH ? p.n_ctx : MODEL_DEFAULT_BATCH;
    if (p.kv_block_size == 0)
        p.kv_block_size = MODEL_DEFAULT_BLOCK;
    if (p.n_kv_blocks == 0) {
        int64_t per = ((int64_t)p.n_ctx + p.kv_block_size - 1) / p.kv_block_size;
        int64_t total = per * p.n_seq_max;
        if (total > KV_MAX_BLOCKS)
            return err_set(err, STATUS_LIMIT,
                           "default KV pool of %" PRId64 " blocks exceeds %d (set n_kv_blocks)",
                           total, KV_MAX_BLOCKS);
        p.n_kv_blocks = (int)total;
    }
    m->params = p;
    /* LongRoPE: the long factors for contexts past the original one */
    if (c->has_rope_longshort)
        m->rope_freqs = p.n_ctx > c->rope_orig_ctx ? m->rope_long : m->rope_short;
    return STATUS_OK;
}

/* Allocate n floats (checked) into *p. */
static bool alloc_f32(float **p, int64_t a, int64_t b) {
    uint64_t n;
    if (!mem_mul_ok((uint64_t)a, (uint64_t)b, &n) || !mem_mul_ok(n, sizeof(float), &n) ||
        n > SIZE_MAX / 2)
        return false;
    *p = mem_alloc_aligned((size_t)(n ? n : 1));
    return *p != NULL;
}

static size_t max_sz(size_t a, size_t b) { return a > b ? a : b; }

/* Room layer_matrices needs. */
static size_t layer_matrices_cap(const Model *m) { return 12 + 3 * (size_t)m->cfg.n_expert; }

/* The matrices that go through matmul (data NULL where absent) into ws
 * (layer_matrices_cap of them); il = -1: the output projection. */
static int layer_matrices(Model *m, int il, Weight **ws) {
    if (il < 0) {
        ws[0] = &m->output;
        return 1;
    }
    Layer *L = &m->layers[il];
    Weight *all[] = {&L->wq, &L->wk,   &L->wv,       &L->wqkv,       &L->wo,       &L->gate,
                     &L->up, &L->down, &L->gate_inp, &L->gate_shexp, &L->up_shexp, &L->down_shexp};
    int n = (int)(sizeof all / sizeof all[0]);
    memcpy(ws, all, sizeof all);
    for (int e = 0; L->gate_exps && e < m->cfg.n_expert; e++) {
        ws[n++] = &L->gate_exps[e];
        ws[n++] = &L->up_exps[e];
        ws[n++] = &L->down_exps[e];
    }
    return n;
}

static Status alloc_state(Model *m, Err *err) {
    const ModelConfig *c = &m->cfg;
    const ModelParams *p = &m->params;
    int64_t B = p->n_batch, C = c->n_embd, QD = (int64_t)c->n_heads * c->head_dim;
    int64_t KD = (int64_t)c->n_kv_heads * c->head_dim, F = c->n_ff;
    m->tp = tpool_new(p->n_threads);
    if (!m->tp)
        return err_set(err, STATUS_NOMEM, "cannot create a pool of %d threads", p->n_threads);
    m->params.n_threads = tpool_size(m->tp);
    /* encoders attend within the batch's rows: no cache */
    Status st = m->ai->encoder
                    ? STATUS_OK
                    : kv_init(&m->kv, c->n_layers, c->n_kv_heads, c->head_dim, p->kv_block_size,
                              p->n_kv_blocks, p->n_seq_max, p->n_ctx, p->kv_type, err);
    if (st)
        return st;
    if (c->n_swa) { /* the sliding layers' old rows are released as sequences grow */
        uint8_t *slides = malloc((size_t)c->n_layers);
        if (!slides)
            return err_set(err, STATUS_NOMEM, "out of memory");
        for (int il = 0; il < c->n_layers; il++)
            slides[il] = m->layers[il].window > 0;
        st = kv_set_window(&m->kv, c->n_swa < p->n_ctx ? c->n_swa : p->n_ctx, slides, err);
        free(slides);
        if (st)
            return st;
    }
    /* hb: the widest hidden row (phi3's fused up is 2F; experts, shared expert) */
    int64_t H = m->ai->ffn == FFN_SILU_FUSED ? 2 * F : F;
    H = H > c->n_ff_exp ? H : c->n_ff_exp;
    H = H > c->n_ff_shexp ? H : c->n_ff_shexp;
    int64_t E = c->n_expert, K = c->n_expert_used, R = c->n_rot > 0 ? c->n_rot : 1;
    bool ok =
        alloc_f32(&m->x, B, C) && alloc_f32(&m->xb, B, C) && alloc_f32(&m->q, B, QD) &&
        alloc_f32(&m->k, B, KD) && alloc_f32(&m->v, B, KD) && alloc_f32(&m->att, B, QD) &&
        alloc_f32(&m->hb, B, H) && alloc_f32(&m->hb2, B, H) && alloc_f32(&m->cs, B, R) &&
        alloc_f32(&m->ext_row, m->params.n_threads, 2 * (int64_t)c->head_dim) &&
        alloc_f32(&m->scores,
                  (int64_t)m->params.n_threads * OPS_ATTN_MAX_ROWS * (c->n_heads / c->n_kv_heads),
                  p->n_ctx);
    if (ok && m->fused_qkv)
        ok = alloc_f32(&m->qkv, B, QD + 2 * KD);
    if (ok && c->rope_local_base > 0.0f)
        ok = alloc_f32(&m->cs_local, B, R);
    if (ok && E) {
        ok = alloc_f32(&m->router, B, E) && alloc_f32(&m->topk_w, B, K) &&
             alloc_f32(&m->exp_w, B, K) && alloc_f32(&m->moe_x, B, C) &&
             alloc_f32(&m->moe_y, B, C) && alloc_f32(&m->moe_out, B, C);
        m->topk_id = ok ? malloc((size_t)(B * K) * sizeof(int32_t)) : NULL;
        m->exp_row = ok ? malloc((size_t)(B * K) * sizeof(int32_t)) : NULL;
        m->exp_off = ok ? malloc((size_t)(E + 1) * sizeof(int32_t)) : NULL;
        ok = m->topk_id && m->exp_row && m->exp_off;
    }
    /* matmul scratch: the largest activation conversion of any weight */
    size_t mm = matmul_scratch_bytes(m->output.type, (int)B, (int)C);
    Weight **ws = ok ? malloc(layer_matrices_cap(m) * sizeof *ws) : NULL;
    ok = ok && ws;
    for (int il = 0; il < c->n_layers && ok; il++)
        for (int i = 0, n = layer_matrices(m, il, ws); i < n; i++)
            if (ws[i]->data)
                mm = max_sz(mm, matmul_scratch_bytes(ws[i]->type, (int)B, (int)ws[i]->n_cols));
    free(ws);
    if (ok && mm) {
        m->mm_scratch = mem_alloc_aligned(mm);
        ok = m->mm_scratch != NULL;
    }
    if (ok) {
        m->row_seq_first = malloc((size_t)p->n_seq_max * sizeof(int32_t));
        m->row_seq_last = malloc((size_t)p->n_seq_max * sizeof(int32_t));
        m->touched = malloc((size_t)B * sizeof(int32_t));
        m->tiles = malloc(((size_t)B + 1) * sizeof(int32_t));
        m->embed_rows = malloc((size_t)B * sizeof(BatchRow));
        ok = m->row_seq_first && m->row_seq_last && m->touched && m->tiles && m->embed_rows;
    }
    if (!ok)
        return err_set(err, STATUS_NOMEM, "out of memory for scratch buffers (n_batch %d)",
                       p->n_batch);
    for (int s = 0; s < p->n_seq_max; s++)
        m->row_seq_first[s] = -1;
    return STATUS_OK;
}

/* Every matrix that goes through matmul, prepared once: repacked (where
 * this CPU has a faster layout) into one buffer for the whole model, on
 * the pool, the mapping's pages released. The embedding tables are only
 * read row by row and stay as they are (a tied one is read through the
 * output matrix). */
static Status prepare_weights(Model *m, Err *err) {
    const char *env = getenv("CGPT_NO_REPACK");
    bool repack = !m->params.no_repack && !(env && *env && strcmp(env, "0"));
    uint64_t total = 0;
    Weight **ws = malloc(layer_matrices_cap(m) * sizeof *ws);
    if (!ws)
        return err_set(err, STATUS_NOMEM, "out of memory");
    for (int il = -1; repack && il < m->cfg.n_layers; il++) {
        for (int i = 0, n = layer_matrices(m, il, ws); i < n; i++)
            if (ws[i]->data)
                total +=
                    matmul_weight_repack_bytes(ws[i]->type, (int)ws[i]->n_rows, (int)ws[i]->n_cols);
    }
    if (total) {
        m->wpack = mem_alloc_aligned((size_t)total);
        if (!m->wpack) {
            free(ws);
            return err_set(err, STATUS_NOMEM,
                           "out of memory for the repacked weights (%" PRIu64
                           " bytes; CGPT_NO_REPACK=1 uses the file's mapping instead)",
                           total);
        }
    }
    uint8_t *at = m->wpack;
    for (int il = -1; il < m->cfg.n_layers; il++) {
        for (int i = 0, n = layer_matrices(m, il, ws); i < n; i++) {
            Weight *w = ws[i];
            if (!w->data)
                continue;
            size_t b = at ? matmul_weight_repack_bytes(w->type, (int)w->n_rows, (int)w->n_cols) : 0;
            matmul_weight_init(&w->mw, w->data, w->type, (int)w->n_rows, (int)w->n_cols,
                               b ? at : NULL, m->tp);
            if (b)
                at += b; /* (at may be NULL: no offset, not even 0, on a null pointer) */
            /* the file's copy is no longer read (tied embedding lookups
             * read the repacked output matrix) */
            for (int p = 0; w->mw.repacked && p < m->n_parts; p++)
                mapfile_release(p ? &m->parts[p - 1].map : &m->g.map, w->data,
                                (size_t)dtype_row_bytes(w->type, w->n_cols) * (size_t)w->n_rows);
        }
    }
    free(ws);
    /* the lookup tables, read row by row as they are */
    Weight *tables[] = {&m->tok_embd, &m->pos_embd, &m->tok_types};
    for (int i = 0; i < 3; i++)
        if (tables[i]->data)
            matmul_weight_init(&tables[i]->mw, tables[i]->data, tables[i]->type,
                               (int)tables[i]->n_rows, (int)tables[i]->n_cols, NULL, NULL);
    return STATUS_OK;
}

/* A split model's part number and count from its file name
 * ("NAME-00001-of-00003.gguf"); false for other names. */
static bool split_name(const char *path, int *k, int *n) {
    size_t len = strlen(path);
    int used = 0;
    if (len < 20 || strcmp(path + len - 5, ".gguf"))
        return false;
    const char *s = path + len - 20;
    return sscanf(s, "-%5d-of-%5d.gguf%n", k, n, &used) == 2 && used == 20 && *k >= 1 && *k <= *n;
}

/* The other parts of a split model whose first part is open in m->g: by
 * name (the first part's name with the part number changed), each a GGUF
 * whose split.count, when present, agrees; no tensor in two parts. */
static Status open_parts(Model *m, const char *path, Err *err) {
    m->n_parts = 1;
    int k, n;
    if (!split_name(path, &k, &n))
        return STATUS_OK;
    if (k != 1)
        return err_set(err, STATUS_INVALID,
                       "part %d of a split model: load its first part (-00001-of-%05d.gguf)", k, n);
    if (n > MODEL_MAX_PARTS)
        return err_set(err, STATUS_LIMIT, "a split model of %d parts (limit %d)", n,
                       MODEL_MAX_PARTS);
    const GGUFKV *kv = gguf_find_key(&m->g, "split.count");
    if (kv && kv->type != GGUF_TYPE_ARRAY && kv->val.u != (uint64_t)n)
        return err_set(err, STATUS_FORMAT, "split.count is %llu but the name says %d parts",
                       (unsigned long long)kv->val.u, n);
    if (n == 1)
        return STATUS_OK;
    m->parts = calloc((size_t)n - 1, sizeof *m->parts);
    if (!m->parts)
        return err_set(err, STATUS_NOMEM, "out of memory");
    size_t len = strlen(path);
    char *pp = strdup(path);
    if (!pp)
        return err_set(err, STATUS_NOMEM, "out of memory");
    Status st = STATUS_OK;
    for (int i = 2; i <= n && !st; i++) {
        char num[12];
        snprintf(num, sizeof num, "%05d", i);
        memcpy(pp + len - 19, num, 5); /* "-0000K-of-0000N.gguf": K at -19 */
        st = gguf_open(&m->parts[i - 2], pp, err);
        if (st) {
            err_prefix(err, "part %d of %d", i, n);
            break;
        }
        m->n_parts = i;
        const GGUF *g = &m->parts[i - 2];
        for (uint64_t t = 0; t < g->n_tensors && !st; t++) {
            char name[256];
            snprintf(name, sizeof name, "%.*s",
                     (int)(g->tensors[t].name.len < 255 ? g->tensors[t].name.len : 255),
                     g->tensors[t].name.ptr);
            for (int q = 0; q < i - 1 && !st; q++)
                if (gguf_find_tensor(q ? &m->parts[q - 1] : &m->g, name))
                    st = err_set(err, STATUS_FORMAT, "tensor '%s' is in two parts (%d and %d)",
                                 name, q + 1, i);
        }
    }
    free(pp);
    return st;
}

Status model_load(Model **out, const char *path, const ModelParams *p, Err *err) {
    *out = NULL;
    Model *m = calloc(1, sizeof *m);
    if (!m)
        return err_set(err, STATUS_NOMEM, "out of memory for the model");
    m->n_parts = 1;
    Status st = gguf_open(&m->g, path, err);
    if (st == STATUS_OK)
        st = open_parts(m, path, err);
    if (st == STATUS_OK)
        st = load_hparams(m, err);
    if (st == STATUS_OK)
        st = load_vocab(m, err);
    if (st == STATUS_OK)
        st = load_tensors(m, err);
    if (st == STATUS_OK)
        st = resolve_params(m, p, err);
    if (st == STATUS_OK)
        st = alloc_state(m, err);
    if (st == STATUS_OK)
        st = prepare_weights(m, err);
    if (st != STATUS_OK) {
        err_prefix(err, "%s", path);
        model_free(m);
        return st;
    }
    *out = m;
    return STATUS_OK;
}

void model_free(Model *m) {
    if (!m)
        return;
    tpool_free(m->tp);
    mem_free_aligned(m->wpack);
    kv_free(&m->kv);
    mem_free_aligned(m->x);
    mem_free_aligned(m->xb);
    mem_free_aligned(m->q);
    mem_free_aligned(m->k);
    mem_free_aligned(m->v);
    mem_free_aligned(m->qkv);
    mem_free_aligned(m->att);
    mem_free_aligned(m->hb);
    mem_free_aligned(m->hb2);
    mem_free_aligned(m->cs);
    mem_free_aligned(m->cs_local);
    mem_free_aligned(m->ext_row);
    mem_free_aligned(m->router);
    mem_free_aligned(m->topk_w);
    mem_free_aligned(m->exp_w);
    mem_free_aligned(m->moe_x);
    mem_free_aligned(m->moe_y);
    mem_free_aligned(m->moe_out);
    free(m->topk_id);
    free(m->exp_row);
    free(m->exp_off);
    free(m->exps);
    mem_free_aligned(m->scores);
    mem_free_aligned(m->mm_scratch);
    free(m->row_seq_first);
    free(m->row_seq_last);
    free(m->touched);
    free(m->tiles);
    free(m->embed_rows);
    free(m->layers);
    for (int i = 0; i < m->n_parts - 1; i++)
        gguf_close(&m->parts[i]);
    free(m->parts);
    gguf_close(&m->g);
    free(m);
}

const ModelConfig *model_config(const Model *m) { return &m->cfg; }
const GGUF *model_gguf(const Model *m) { return &m->g; }
const ModelParams *model_params(const Model *m) { return &m->params; }
KVCache *model_kv(Model *m) { return &m->kv; }

void model_seq_free(Model *m, int seq) {
    if (!m->cfg.encoder && seq >= 0 && seq < m->params.n_seq_max)
        kv_seq_free(&m->kv, seq);
}

int model_seq_len(const Model *m, int seq) {
    if (m->cfg.encoder || seq < 0 || seq >= m->params.n_seq_max)
        return 0;
    return m->kv.seq_len[seq];
}

bool model_seq_resumable(const Model *m, int seq, int pos) {
    if (m->cfg.encoder || seq < 0 || seq >= m->params.n_seq_max || pos < 0 ||
        pos > m->kv.seq_len[seq])
        return false;
    return kv_seq_window_intact(&m->kv, seq, pos);
}

int model_kv_free_blocks(const Model *m) { return m->kv.n_free; }
int model_kv_total_blocks(const Model *m) { return m->kv.n_blocks; }

/* ------------------------------------------------------------- forward */

/* outs = x . W^T for up to 3 weights of one input, after prep per row. */
static void matmul3(Model *m, const float *x, int M, const MatmulPrep *prep, float *o0,
                    const Weight *w0, const float *b0, float *o1, const Weight *w1, const float *b1,
                    float *o2, const Weight *w2, const float *b2) {
    MatmulOut outs[3] = {
        {o0, &w0->mw, b0}, {o1, w1 ? &w1->mw : NULL, b1}, {o2, w2 ? &w2->mw : NULL, b2}};
    int n = w2 ? 3 : w1 ? 2 : 1;
    /* one job per run of weights that share a type and layout (mixed
     * quantizations, Q4_K_M say, give q/k and v different types); the
     * prep runs once, with the first */
    for (int i = 0; i < n;) {
        int j = i + 1;
        while (j < n && outs[j].w->type == outs[i].w->type &&
               outs[j].w->repacked == outs[i].w->repacked)
            j++;
        matmul_multi(m->tp, x, M, outs + i, j - i, i ? NULL : prep, m->mm_scratch);
        i = j;
    }
}

void model_matmul3(Model *m, const float *x, int M, const MatmulPrep *prep, float *o0,
                   const Weight *w0, const float *b0, float *o1, const Weight *w1, const float *b1,
                   float *o2, const Weight *w2, const float *b2) {
    matmul3(m, x, M, prep, o0, w0, b0, o1, w1, b1, o2, w2, b2);
}

static void matmul(Model *m, float *out, const float *x, const Weight *w, const float *bias,
                   int M) {
    matmul3(m, x, M, NULL, out, w, bias, NULL, NULL, NULL, NULL, NULL, NULL);
}

static void norm_row(const Model *m, float *out, const float *x, const float *w, const float *b) {
    if (m->ai->norm == NORM_RMS)
        rmsnorm_forward(out, x, w, m->cfg.n_embd, m->cfg.norm_eps);
    else
        layernorm_forward(out, x, w, b, m->cfg.n_embd, m->cfg.norm_eps);
}

typedef struct {
    Model *m;
    const BatchRow *rows;
    int n_rows;
    int layer;
} AttnCtx;

_Static_assert((int)KV_F32 == (int)OPS_KV_F32 && (int)KV_F16 == (int)OPS_KV_F16 &&
                   (int)KV_Q8_0 == (int)OPS_KV_Q8_0,
               "KVType and OpsKvKind agree");

/* Attention tiles: runs of up to OPS_ATTN_MAX_ROWS consecutive rows of one
 * sequence (a prompt's rows), which attn_rows serves with one pass over the
 * cache; *cost: the positions all the heads attend. Returns the count. */
static int attn_tiles(const BatchRow *rows, int B, int NH, int32_t *tiles, long *cost) {
    int n = 0;
    *cost = 0;
    for (int r = 0; r < B; r++) {
        if (r == 0 || rows[r].seq != rows[r - 1].seq || r - tiles[n - 1] == OPS_ATTN_MAX_ROWS)
            tiles[n++] = r;
        *cost += (long)NH * (rows[r].pos + 1);
    }
    tiles[n] = B;
    return n;
}

/* The thread whose share of 'total' (the cost of all units, split evenly
 * over nth threads) holds the midpoint of a unit of 'cost' after 'done'. */
static int unit_owner(long done, long cost, long total, int nth) {
    int t = total > 0 ? (int)((done + cost / 2) * nth / total) : 0;
    return t < nth ? t : nth - 1;
}

/* The units are (tile, query head) pairs in that order; threads take
 * contiguous runs of them of about equal cost (positions attended: a
 * prompt's late rows cost more than its early ones), and each thread's
 * heads of one tile that share a kv head attend together (ops attn_rows:
 * each chunk of the cache loaded once for the tile's rows and those
 * heads). Each (row, head)'s arithmetic depends only on its own row and
 * head, never on the tiles or the split: the bits of the one-row kernel. */
static void attn_task(void *vctx, int ith, int nth) {
    AttnCtx *a = vctx;
    Model *m = a->m;
    const ModelConfig *c = &m->cfg;
    const KVCache *kv = &m->kv;
    const OpsKernels *K = ops_kernels();
    int NH = c->n_heads, KVH = c->n_kv_heads, HD = c->head_dim, QD = NH * HD, bs = kv->block_size;
    int group = NH / KVH;
    float scale = c->attn_scale;
    float *sc = m->scores + (size_t)ith * OPS_ATTN_MAX_ROWS * group * m->params.n_ctx;
    const Layer *L = &m->layers[a->layer];
    /* windows, soft-caps and sinks: the general kernel (attn_ext.h) */
    bool ext = L->window > 0 || c->attn_softcap > 0.0f || L->sinks;
    const char *kbase = kv_k_slab(kv, a->layer, 0), *vbase = kv_v_slab(kv, a->layer, 0);
    long stride = kv->type == KV_Q8_0 ? (long)kv->slab_bytes : (long)kv->block_floats;
    long done = 0; /* cost of the units before this tile */
    for (int ti = 0; ti < m->n_tiles; ti++) {
        int r0 = m->tiles[ti], R = m->tiles[ti + 1] - r0;
        int n[OPS_ATTN_MAX_ROWS];
        long cost = 0;
        for (int i = 0; i < R; i++) {
            n[i] = a->rows[r0 + i].pos + 1;
            cost += n[i];
        }
        const int32_t *table = kv_seq_table(kv, a->rows[r0].seq);
        for (int h = 0; h < NH;) {
            int owner = unit_owner(done + (long)h * cost, cost, m->attn_cost, nth);
            int kvh = h / group, run = 1; /* the next heads: same kv head and owner */
            while (h + run < (kvh + 1) * group &&
                   unit_owner(done + (long)(h + run) * cost, cost, m->attn_cost, nth) == owner)
                run++;
            size_t qoff = (size_t)r0 * QD + (size_t)h * HD;
            size_t koff = (size_t)kvh * bs * kv->row_bytes;
            if (owner != ith) {
                /* another thread's unit */
            } else if (!ext) {
                K->attn_rows((OpsKvKind)kv->type, m->att + qoff, m->q + qoff, (size_t)QD, R, run,
                             HD, kbase + koff, vbase + koff, table, stride, bs, n, scale, sc);
            } else {
                int lo[OPS_ATTN_MAX_ROWS];
                for (int i = 0; i < R; i++)
                    lo[i] = L->window && n[i] > L->window ? n[i] - L->window : 0;
                OpsAttnExtras xx = {lo, c->attn_softcap, L->sinks ? L->sinks + h : NULL};
                /* the block kernel where it takes the shape, else the general one */
                if (!K->attn_rows_ext ||
                    !K->attn_rows_ext((OpsKvKind)kv->type, m->att + qoff, m->q + qoff, (size_t)QD,
                                      R, run, HD, kbase + koff, vbase + koff, table, stride, bs, n,
                                      &xx, scale, sc)) {
                    AttnExtCache xc = {kbase + koff,           vbase + koff,  table,
                                       kv->slab_bytes,         kv->row_bytes, bs,
                                       kv_elem_dtype(kv->type)};
                    AttnExtOpts xo = {c->attn_softcap, xx.sinks};
                    for (int i = 0; i < R; i++)
                        attn_ext(m->att + qoff + (size_t)i * QD, m->q + qoff + (size_t)i * QD, run,
                                 HD, &xc, lo[i], n[i], scale, &xo, sc,
                                 m->ext_row + (size_t)ith * 2 * HD);
                }
            }
            h += run;
        }
        done += (long)NH * cost;
    }
}

/* The per-row element-wise work of a layer (norms, q/k norms, rope, KV
 * writes, residual adds, the gated activation) runs on the pool, split by
 * rows, most of it fused into the conversion phase of the matmul that
 * reads it (MatmulPrep): while the caller did it alone the other threads
 * waited, and each separate hand-off costs a pool round trip. Each row's
 * arithmetic is the same whichever thread does it. */
typedef enum {
    ROWS_ATTN_IN,     /* xb = norm(x) (first layer) */
    ROWS_RES_ATTN_IN, /* x += xb (the last layer's ffn out); xb = norm(x) */
    ROWS_QK_CACHE,    /* q/k norms, rope, K/V into the cache */
    ROWS_FFN_IN,      /* x += xb (attention out); xb = norm(x) */
    ROWS_ACT,         /* hb = act(hb, hb2) */
    ROWS_RESIDUAL,    /* x += xb */
} RowsOp;

typedef struct {
    Model *m;
    const BatchRow *rows;
    int B, il;
    RowsOp op;
} RowsCtx;

static void qk_cache_row(Model *m, const BatchRow *rows, int r, int il) {
    const ModelConfig *c = &m->cfg;
    const Layer *L = &m->layers[il];
    KVCache *kv = &m->kv;
    int HD = c->head_dim, NH = c->n_heads, KVH = c->n_kv_heads, QD = NH * HD, KD = KVH * HD;
    int bs = kv->block_size;
    float *q = m->q + (size_t)r * QD, *k = m->k + (size_t)r * KD;
    if (L->q_norm) {
        for (int h = 0; h < NH; h++)
            rmsnorm_forward(q + (size_t)h * HD, q + (size_t)h * HD, L->q_norm, HD, c->norm_eps);
        for (int h = 0; h < KVH; h++)
            rmsnorm_forward(k + (size_t)h * HD, k + (size_t)h * HD, L->k_norm, HD, c->norm_eps);
    }
    if (c->rope_type != ROPE_NONE) {
        const float *cs = (L->rope_local ? m->cs_local : m->cs) + (size_t)r * c->n_rot;
        rope_forward(q, cs, NH, HD, c->n_rot, c->rope_type);
        rope_forward(k, cs, KVH, HD, c->n_rot, c->rope_type);
    }
    /* K/V of this row into its cache slot (an F16 cache rounds to nearest
     * even, as the F16 weight conversion does) */
    int blk = kv_seq_table(kv, rows[r].seq)[rows[r].pos / bs], slot = rows[r].pos % bs;
    const float *v = m->v + (size_t)r * KD;
    const QuantOps *qo = quant_ops(kv_elem_dtype(kv->type)); /* F32: a copy */
    char *kb = kv_k_slab(kv, il, blk), *vb = kv_v_slab(kv, il, blk);
    for (int h = 0; h < KVH; h++) {
        size_t at = ((size_t)h * bs + slot) * kv->row_bytes;
        qo->quantize(k + (size_t)h * HD, kb + at, HD);
        qo->quantize(v + (size_t)h * HD, vb + at, HD);
    }
}

/* x += the branch in xb, normed first where the model has a post-norm. */
static void add_branch(const Model *m, float *x, float *xb, const float *post_norm) {
    if (post_norm)
        rmsnorm_forward(xb, xb, post_norm, m->cfg.n_embd, m->cfg.norm_eps);
    add_forward(x, x, xb, m->cfg.n_embd);
}

/* The FFN's activation of row r: hb (and hb2) hold F wide rows; down reads
 * ffn_act_out(). */
static void act_row(Model *m, int r) {
    size_t F = (size_t)m->cfg.n_ff;
    float *h = m->hb + r * F, *h2 = m->hb2 + r * F;
    switch (m->ai->ffn) {
    case FFN_SILU_GATED: swiglu_forward(h, h, h2, (int)F); break;
    case FFN_GELU: gelu_forward(h, h, (int)F); break;
    case FFN_GELU_GATED:
        gelu_forward(h, h, (int)F);
        for (size_t i = 0; i < F; i++)
            h[i] *= h2[i];
        break;
    case FFN_SILU_FUSED: /* hb rows are 2F: gate then up; the product into hb2 */
        swiglu_forward(h2, m->hb + r * 2 * F, m->hb + r * 2 * F + F, (int)F);
        break;
    case FFN_GELU_ERF: /* encoders only: encoder.c */ break;
    }
}

static float *ffn_act_out(Model *m) { return m->ai->ffn == FFN_SILU_FUSED ? m->hb2 : m->hb; }

static void row_op(const RowsCtx *a, int r) {
    Model *m = a->m;
    const Layer *L = &m->layers[a->il];
    size_t C = (size_t)m->cfg.n_embd;
    float *x = m->x + (size_t)r * C, *xb = m->xb + (size_t)r * C;
    switch (a->op) {
    case ROWS_RES_ATTN_IN: /* the previous layer's FFN branch */
        add_branch(m, x, xb, m->layers[a->il - 1].ffn_post_norm);
        /* fall through */
    case ROWS_ATTN_IN:
        norm_row(m, xb, x, L->attn_norm, L->attn_norm_b);
        break;
    case ROWS_QK_CACHE:
        qk_cache_row(m, a->rows, r, a->il);
        break;
    case ROWS_FFN_IN:
        add_branch(m, x, xb, L->attn_post_norm);
        norm_row(m, xb, x, L->ffn_norm, L->ffn_norm_b);
        break;
    case ROWS_ACT: act_row(m, r); break;
    case ROWS_RESIDUAL: add_branch(m, x, xb, L->ffn_post_norm); break;
    }
}

static void rows_task(void *vctx, int ith, int nth) {
    RowsCtx *a = vctx;
    long lo, hi;
    tpool_range(a->B, ith, nth, &lo, &hi);
    for (long r = lo; r < hi; r++)
        row_op(a, (int)r);
}

static void rows_prep(void *vctx, int r) { row_op(vctx, r); }

static void for_rows(Model *m, const BatchRow *rows, int B, int il, RowsOp op) {
    RowsCtx a = {m, rows, B, il, op};
    if (B < 2)
        rows_task(&a, 0, 1);
    else
        tpool_run(m->tp, rows_task, &a);
}

/* gpt-oss's clamped swiglu (ggml_swiglu_oai): g = min(gate, 7),
 * u = clamp(up, -7, 7), g * sigmoid(1.702 g) * (u + 1). */
#define OAI_LIMIT 7.0f
#define OAI_ALPHA 1.702f
static void swiglu_oai(float *out, const float *gate, const float *up, int n) {
    for (int i = 0; i < n; i++) {
        float g = gate[i] < OAI_LIMIT ? gate[i] : OAI_LIMIT;
        float u = up[i] < -OAI_LIMIT ? -OAI_LIMIT : up[i] > OAI_LIMIT ? OAI_LIMIT : up[i];
        out[i] = g / (1.0f + expf(-OAI_ALPHA * g)) * (u + 1.0f);
    }
}

/* The gated activation on row r of hb / hb2, rows of width F (the experts'). */
typedef struct {
    Model *m;
    int F;
    bool oai;
} ExpActCtx;

static void exp_act_prep(void *vctx, int r) {
    const ExpActCtx *a = vctx;
    float *h = a->m->hb + (size_t)r * a->F;
    if (a->oai)
        swiglu_oai(h, h, a->m->hb2 + (size_t)r * a->F, a->F);
    else
        swiglu_forward(h, h, a->m->hb2 + (size_t)r * a->F, a->F);
}

/* One gated FFN (gate, up: (F, C); down: (C, F); biases or NULL) over n
 * rows of x into y (n, C). */
typedef struct {
    const Weight *gate, *up, *down;
    const float *bgate, *bup, *bdown;
    int F;
} ExpertFfn;

static void expert_ffn(Model *m, const float *x, int n, const ExpertFfn *e, float *y) {
    matmul3(m, x, n, NULL, m->hb, e->gate, e->bgate, m->hb2, e->up, e->bup, NULL, NULL, NULL);
    ExpActCtx ac = {m, e->F, m->cfg.moe_oai};
    MatmulPrep act = {exp_act_prep, &ac};
    matmul3(m, m->hb, n, &act, y, e->down, e->bdown, NULL, NULL, NULL, NULL, NULL, NULL);
}

/* Row r's experts: softmax of its router logits, the K largest (the lower
 * index first among equals), their weights renormalised to sum 1 where
 * the model does; gpt-oss: the K largest logits, weighted by their
 * softmax. */
static void route_row(Model *m, int r) {
    const ModelConfig *c = &m->cfg;
    int E = c->n_expert, K = c->n_expert_used;
    float *p = m->router + (size_t)r * E;
    int32_t *id = m->topk_id + (size_t)r * K;
    float *w = m->topk_w + (size_t)r * K, sum = 0.0f;
    if (!c->moe_oai)
        softmax_forward(p, E);
    for (int k = 0; k < K; k++) {
        int best = -1;
        for (int e = 0; e < E; e++) {
            bool taken = false;
            for (int j = 0; j < k && !taken; j++)
                taken = id[j] == e;
            if (!taken && (best < 0 || p[e] > p[best]))
                best = e;
        }
        id[k] = best;
        w[k] = p[best];
        sum += p[best];
    }
    if (c->moe_oai)
        softmax_forward(w, K);
    else if (c->moe_norm_topk)
        for (int k = 0; k < K; k++)
            w[k] /= sum;
}

/* The mixture of experts over the B rows of xb (ffn_norm'd by prep_in,
 * fused into the router's matmul), its output into xb. The rows are
 * grouped by expert so each expert's matrices are read once per batch;
 * row r gets sum_k w_k expert_k(x_r), added in increasing expert order
 * whatever the batch (its bits do not depend on the other rows), plus the
 * gated shared expert. */
static void forward_moe(Model *m, const Layer *L, int B, const MatmulPrep *prep_in) {
    const ModelConfig *c = &m->cfg;
    const OpsKernels *ok = ops_kernels();
    int C = c->n_embd, E = c->n_expert, K = c->n_expert_used;
    matmul3(m, m->xb, B, prep_in, m->router, &L->gate_inp, L->gate_inp_b, NULL, NULL, NULL, NULL,
            NULL, NULL);
    int32_t *off = m->exp_off;
    memset(off, 0, (size_t)(E + 1) * sizeof *off);
    for (int r = 0; r < B; r++) {
        route_row(m, r);
        for (int k = 0; k < K; k++)
            off[m->topk_id[(size_t)r * K + k] + 1]++;
    }
    for (int e = 0; e < E; e++)
        off[e + 1] += off[e];
    for (int r = 0; r < B; r++) /* off[e] runs to the end of e's rows ... */
        for (int k = 0; k < K; k++) {
            int e = m->topk_id[(size_t)r * K + k], at = off[e]++;
            m->exp_row[at] = r;
            m->exp_w[at] = m->topk_w[(size_t)r * K + k];
        }
    for (int e = E; e > 0; e--) /* ... and back to its start */
        off[e] = off[e - 1];
    off[0] = 0;

    memset(m->moe_out, 0, (size_t)B * (size_t)C * sizeof(float));
    for (int e = 0; e < E; e++) {
        int n = off[e + 1] - off[e];
        if (!n)
            continue;
        for (int i = 0; i < n; i++)
            memcpy(m->moe_x + (size_t)i * C, m->xb + (size_t)m->exp_row[off[e] + i] * C,
                   (size_t)C * sizeof(float));
        size_t FE = (size_t)c->n_ff_exp;
        ExpertFfn ef = {&L->gate_exps[e],
                        &L->up_exps[e],
                        &L->down_exps[e],
                        L->gate_exps_b ? L->gate_exps_b + e * FE : NULL,
                        L->up_exps_b ? L->up_exps_b + e * FE : NULL,
                        L->down_exps_b ? L->down_exps_b + (size_t)e * C : NULL,
                        c->n_ff_exp};
        expert_ffn(m, m->moe_x, n, &ef, m->moe_y);
        for (int i = 0; i < n; i++)
            ok->axpy(C, m->moe_out + (size_t)m->exp_row[off[e] + i] * C, m->exp_w[off[e] + i],
                     m->moe_y + (size_t)i * C);
    }
    if (L->gate_shexp.data) {
        ExpertFfn sh = {&L->gate_shexp, &L->up_shexp, &L->down_shexp, NULL,
                        NULL,           NULL,         c->n_ff_shexp};
        expert_ffn(m, m->xb, B, &sh, m->moe_y);
        for (int r = 0; r < B; r++) {
            float g = ok->dot(C, m->xb + (size_t)r * C, L->gate_inp_shexp);
            ok->axpy(C, m->moe_out + (size_t)r * C, 1.0f / (1.0f + expf(-g)),
                     m->moe_y + (size_t)r * C);
        }
    }
    memcpy(m->xb, m->moe_out, (size_t)B * (size_t)C * sizeof(float));
}

/* One layer. On entry xb holds the previous layer's residual branch not
 * yet added to x (pending, every layer but the first); on return it holds
 * this layer's, for the next layer or model_forward to add. */
static void forward_layer(Model *m, const BatchRow *rows, int B, int il, bool pending) {
    const ModelConfig *c = &m->cfg;
    const Layer *L = &m->layers[il];
    int HD = c->head_dim, NH = c->n_heads, KVH = c->n_kv_heads;
    int QD = NH * HD, KD = KVH * HD;

    /* attention */
    RowsCtx in = {m, rows, B, il, pending ? ROWS_RES_ATTN_IN : ROWS_ATTN_IN};
    MatmulPrep prep_in = {rows_prep, &in};
    if (m->fused_qkv) {
        int W = QD + 2 * KD;
        matmul3(m, m->xb, B, &prep_in, m->qkv, &L->wqkv, L->bqkv, NULL, NULL, NULL, NULL, NULL,
                NULL);
        for (int r = 0; r < B; r++) {
            const float *src = m->qkv + (size_t)r * W;
            memcpy(m->q + (size_t)r * QD, src, (size_t)QD * sizeof(float));
            memcpy(m->k + (size_t)r * KD, src + QD, (size_t)KD * sizeof(float));
            memcpy(m->v + (size_t)r * KD, src + QD + KD, (size_t)KD * sizeof(float));
        }
    } else {
        matmul3(m, m->xb, B, &prep_in, m->q, &L->wq, L->bq, m->k, &L->wk, L->bk, m->v, &L->wv,
                L->bv);
    }
    for_rows(m, rows, B, il, ROWS_QK_CACHE);
    AttnCtx actx = {m, rows, B, il};
    tpool_run(m->tp, attn_task, &actx);
    matmul(m, m->xb, m->att, &L->wo, L->bo, B);

    /* feed-forward: x += attention out and the norm, fused into up's conversion */
    RowsCtx ffn_in = {m, rows, B, il, ROWS_FFN_IN};
    MatmulPrep prep_ffn = {rows_prep, &ffn_in};
    if (c->n_expert) {
        forward_moe(m, L, B, &prep_ffn);
        return;
    }
    if (L->gate.data)
        matmul3(m, m->xb, B, &prep_ffn, m->hb, &L->gate, L->bgate, m->hb2, &L->up, L->bup, NULL,
                NULL, NULL);
    else
        matmul3(m, m->xb, B, &prep_ffn, m->hb, &L->up, L->bup, NULL, NULL, NULL, NULL, NULL, NULL);
    RowsCtx act = {m, rows, B, il, ROWS_ACT};
    MatmulPrep prep_act = {rows_prep, &act};
    matmul3(m, ffn_act_out(m), B, &prep_act, m->xb, &L->down, L->bdown, NULL, NULL, NULL, NULL,
            NULL, NULL);
}

/* Check the rows and reserve their KV slots; on error nothing changes. */
static Status prepare_batch(Model *m, const BatchRow *rows, int n_rows, Err *err) {
    const ModelConfig *c = &m->cfg;
    const ModelParams *p = &m->params;
    int n_touched = 0;
    Status st = STATUS_OK;
    for (int r = 0; r < n_rows && st == STATUS_OK; r++) {
        const BatchRow *row = &rows[r];
        if (row->token < 0 || row->token >= c->n_vocab) {
            st = err_set(err, STATUS_INVALID, "row %d: token %" PRId32 " out of range [0, %d)", r,
                         row->token, c->n_vocab);
        } else if (row->seq < 0 || row->seq >= p->n_seq_max) {
            st = err_set(err, STATUS_INVALID, "row %d: sequence %" PRId32 " out of range [0, %d)",
                         r, row->seq, p->n_seq_max);
        } else if (row->pos < 0 || row->pos >= p->n_ctx) {
            st = err_set(err, STATUS_LIMIT, "row %d: position %" PRId32 " out of range [0, %d)", r,
                         row->pos, p->n_ctx);
        } else if (m->row_seq_first[row->seq] < 0) {
            int len = m->kv.seq_len[row->seq];
            if (row->pos > len)
                st = err_set(err, STATUS_INVALID,
                             "row %d: sequence %" PRId32 " position %" PRId32
                             " leaves a gap (sequence has %d positions)",
                             r, row->seq, row->pos, len);
            else if (!kv_seq_window_intact(&m->kv, row->seq, row->pos))
                st = err_set(err, STATUS_INVALID,
                             "row %d: sequence %" PRId32 " cannot rewind to position %" PRId32
                             ": the sliding window before it was released (free the sequence "
                             "and feed it again)",
                             r, row->seq, row->pos);
            m->touched[n_touched++] = row->seq;
            m->row_seq_first[row->seq] = row->pos;
            m->row_seq_last[row->seq] = row->pos;
        } else if (row->pos != m->row_seq_last[row->seq] + 1) {
            st = err_set(err, STATUS_INVALID,
                         "row %d: sequence %" PRId32 " position %" PRId32
                         " does not follow position %" PRId32 " earlier in the batch",
                         r, row->seq, row->pos, m->row_seq_last[row->seq]);
        } else {
            m->row_seq_last[row->seq] = row->pos;
        }
    }
    if (st == STATUS_OK) {
        int64_t need = 0;
        for (int i = 0; i < n_touched; i++) {
            int s = m->touched[i];
            need += kv_seq_blocks_needed(&m->kv, s, m->row_seq_first[s], m->row_seq_last[s] + 1);
        }
        if (need > m->kv.n_free)
            st = err_set(err, STATUS_LIMIT,
                         "KV cache exhausted: batch needs %" PRId64 " blocks, %d of %d free", need,
                         m->kv.n_free, m->kv.n_blocks);
    }
    for (int i = 0; i < n_touched; i++) {
        int s = m->touched[i];
        if (st == STATUS_OK) {
            Status s2 = kv_seq_prepare(&m->kv, s, m->row_seq_first[s], m->row_seq_last[s] + 1, err);
            ASSERT(s2 == STATUS_OK);
        }
        m->row_seq_first[s] = -1;
    }
    return st;
}

/* model_forward and model_forward_hidden: 'out' gets logits, or with
 * 'hidden' the normed final rows (n_embd floats each). */
static Status forward(Model *m, const BatchRow *rows, int n_rows, float *logits, bool hidden,
                      Err *err) {
    const ModelConfig *c = &m->cfg;
    if (c->encoder)
        return err_set(err, STATUS_UNSUPPORTED,
                       "an embedding model (%s) cannot generate text: it has no output head "
                       "(embeddings only)",
                       c->arch_name);
    if (n_rows < 1 || n_rows > m->params.n_batch)
        return err_set(err, STATUS_INVALID, "batch of %d rows out of range [1, %d]", n_rows,
                       m->params.n_batch);
    if (!rows)
        return err_set(err, STATUS_INVALID, "no rows given");
    int n_out = 0;
    for (int r = 0; r < n_rows; r++)
        n_out += rows[r].logits ? 1 : 0;
    if (n_out && !logits && !hidden)
        return err_set(err, STATUS_INVALID, "%d rows ask for logits but no buffer was given",
                       n_out);
    Status st = prepare_batch(m, rows, n_rows, err);
    if (st)
        return st;

    int C = c->n_embd, B = n_rows;
    for (int r = 0; r < B; r++) {
        float *x = m->x + (size_t)r * C;
        /* tied: the repacked output matrix (the file's pages are released) */
        matmul_weight_row(m->cfg.tied_output ? &m->output.mw : &m->tok_embd.mw, rows[r].token, x);
        if (c->embd_scale != 1.0f)
            for (int i = 0; i < C; i++)
                x[i] *= c->embd_scale;
        if (m->ai->learned_pos) {
            float *tmp = m->xb + (size_t)r * C;
            matmul_weight_row(&m->pos_embd.mw, rows[r].pos, tmp);
            add_forward(x, x, tmp, C);
        }
        if (c->rope_type != ROPE_NONE) {
            float *cs = m->cs + (size_t)r * c->n_rot;
            if (c->rope_yarn)
                rope_cache_yarn(cs, rows[r].pos, c->n_rot, c->rope_freq_base, c->rope_freq_scale,
                                c->rope_yarn_corr, c->rope_yarn_mscale);
            else
                rope_cache(cs, rows[r].pos, c->n_rot, c->rope_freq_base, c->rope_freq_scale,
                           m->rope_freqs);
            if (c->rope_attn_factor != 1.0f) /* LongRoPE's attention factor */
                for (int i = 0; i < c->n_rot; i++)
                    cs[i] *= c->rope_attn_factor;
        }
        if (m->cs_local) /* gemma3's sliding layers: their own base, no scaling */
            rope_cache(m->cs_local + (size_t)r * c->n_rot, rows[r].pos, c->n_rot,
                       c->rope_local_base, 1.0f, NULL);
    }
    m->n_tiles = attn_tiles(rows, B, c->n_heads, m->tiles, &m->attn_cost);
    for (int il = 0; il < c->n_layers; il++)
        forward_layer(m, rows, B, il, il > 0);
    for_rows(m, rows, B, c->n_layers - 1, ROWS_RESIDUAL);
    /* the sliding layers' rows no later position reads go back to the kernel */
    for (int r = 0; m->kv.window && r < B; r++)
        if (r == 0 || rows[r].seq != rows[r - 1].seq)
            kv_seq_release_window(&m->kv, rows[r].seq);

    if (n_out) {
        /* gather the rows that want logits, normed, into xb */
        int j = 0;
        for (int r = 0; r < B; r++)
            if (rows[r].logits)
                norm_row(m, m->xb + (size_t)(j++) * C, m->x + (size_t)r * C, m->out_norm,
                         m->out_norm_b);
        if (hidden) { /* NULL: model_embed reads them in xb */
            if (logits)
                memcpy(logits, m->xb, (size_t)n_out * (size_t)C * sizeof(float));
            return STATUS_OK;
        }
        matmul(m, logits, m->xb, &m->output, NULL, n_out);
        if (c->final_softcap > 0.0f) /* a row at a time (n_vocab fits an int) */
            for (int r = 0; r < n_out; r++)
                softcap_forward(logits + (size_t)r * c->n_vocab, c->n_vocab, c->final_softcap);
    }
    return STATUS_OK;
}

Status model_forward(Model *m, const BatchRow *rows, int n_rows, float *logits, Err *err) {
    return forward(m, rows, n_rows, logits, false, err);
}

Status model_forward_hidden(Model *m, const BatchRow *rows, int n_rows, float *hidden, Err *err) {
    if (!hidden)
        return err_set(err, STATUS_INVALID, "no buffer for the hidden states was given");
    return forward(m, rows, n_rows, hidden, true, err);
}

Status model_forward_hidden_xb(Model *m, const BatchRow *rows, int n_rows, const float **hidden,
                               Err *err) {
    *hidden = m->xb;
    return forward(m, rows, n_rows, NULL, true, err);
}
