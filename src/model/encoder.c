/* encoder.c - the encoders' forward pass (bert, nomic-bert) and the
 * embedding API (model_embed) for every architecture.
 *
 * Encoder over B rows holding whole sequences packed one after another
 * (shape letters as model.c: C n_embd, NH/KVH heads, HD head_dim,
 * QD = NH*HD, KD = KVH*HD, F n_ff):
 *   x = LN(token_embd[t] + token_types[0] (+ position_embd[p]), token_embd_norm)
 *   per layer:  q,k,v = x.Wq/k/v^T + b (or fused qkv); rope(q, k) (nomic-bert);
 *               att = softmax(q.K^T / sqrt(HD)) . V over ALL rows of the
 *               row's own sequence (bidirectional);
 *               x = LN(x + att.Wo^T + bo, attn_output_norm);
 *               x = LN(x + ffn(x), layer_output_norm)
 *                   ffn: down(gelu_erf(up x + b)) + b (bert),
 *                        down(silu(gate x) * up x) (nomic-bert)
 *   the sequence's rows of x pooled (mean / first / last).
 * Each row's arithmetic depends only on its own sequence's rows (matmul
 * dots one weight row with one activation row; attention runs per
 * (sequence, head)), so a batch gives each sequence the bits it gets alone.
 *
 * GELU is the exact erf form BERT defines (HF "gelu"); llama.cpp uses the
 * tanh approximation (ggml_gelu) for bert, which differs by up to ~1e-3
 * per activation.
 *
 * Deliberately not here: token types other than 0 (one segment, as
 * llama.cpp), the classification / reranking heads (cls, cls.output),
 * per-token outputs (pooling "none" is pooled as mean). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/tpool.h"
#include "model/model.h"
#include "model/model_impl.h"
#include "tensor/ops.h"

/* ------------------------------------------------------------ row work */

typedef enum {
    ENC_EMBED,    /* x = LN(tok + type0 (+ pos)); rope angles */
    ENC_QKV_ROPE, /* split the fused qkv; rope q and k */
    ENC_ATTN_RES, /* x = LN(x + xb, attn_output_norm) */
    ENC_ACT,      /* hb = act(hb, hb2) */
    ENC_FFN_RES,  /* x = LN(x + xb, layer_output_norm) */
} EncOp;

typedef struct {
    Model *m;
    const int32_t *tokens; /* (B) */
    const int32_t *pos;    /* (B) position of each row in its sequence */
    int B, il;
    EncOp op;
} EncRows;

static void gelu_erf(float *x, int n) {
    for (int i = 0; i < n; i++)
        x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * (float)M_SQRT1_2));
}

static void enc_row(const EncRows *a, int r) {
    Model *m = a->m;
    const ModelConfig *c = &m->cfg;
    size_t C = (size_t)c->n_embd, QD = (size_t)c->n_heads * c->head_dim;
    size_t KD = (size_t)c->n_kv_heads * c->head_dim;
    float *x = m->x + r * C, *xb = m->xb + r * C;
    const Layer *L = a->il >= 0 ? &m->layers[a->il] : NULL;
    switch (a->op) {
    case ENC_EMBED:
        matmul_weight_row(&m->tok_embd.mw, a->tokens[r], x);
        matmul_weight_row(&m->tok_types.mw, 0, xb);
        add_forward(x, x, xb, (int)C);
        if (m->pos_embd.data) {
            matmul_weight_row(&m->pos_embd.mw, a->pos[r], xb);
            add_forward(x, x, xb, (int)C);
        }
        layernorm_forward(x, x, m->tok_norm, m->tok_norm_b, (int)C, c->norm_eps);
        if (c->rope_type != ROPE_NONE)
            rope_cache(m->cs + (size_t)r * c->n_rot, a->pos[r], c->n_rot, c->rope_freq_base,
                       c->rope_freq_scale, NULL);
        break;
    case ENC_QKV_ROPE: {
        float *q = m->q + r * QD, *k = m->k + r * KD;
        if (m->fused_qkv) {
            const float *src = m->qkv + r * (QD + 2 * KD);
            memcpy(q, src, QD * sizeof(float));
            memcpy(k, src + QD, KD * sizeof(float));
            memcpy(m->v + r * KD, src + QD + KD, KD * sizeof(float));
        }
        if (c->rope_type != ROPE_NONE) {
            const float *cs = m->cs + (size_t)r * c->n_rot;
            rope_forward(q, cs, c->n_heads, c->head_dim, c->n_rot, c->rope_type);
            rope_forward(k, cs, c->n_kv_heads, c->head_dim, c->n_rot, c->rope_type);
        }
        break;
    }
    case ENC_ATTN_RES:
        add_forward(x, x, xb, (int)C);
        layernorm_forward(x, x, L->attn_out_norm, L->attn_out_norm_b, (int)C, c->norm_eps);
        break;
    case ENC_ACT: {
        size_t F = (size_t)c->n_ff;
        float *h = m->hb + r * F;
        if (m->ai->ffn == FFN_GELU_ERF)
            gelu_erf(h, (int)F);
        else
            swiglu_forward(h, h, m->hb2 + r * F, (int)F);
        break;
    }
    case ENC_FFN_RES:
        add_forward(x, x, xb, (int)C);
        layernorm_forward(x, x, L->layer_out_norm, L->layer_out_norm_b, (int)C, c->norm_eps);
        break;
    }
}

static void enc_rows_task(void *vctx, int ith, int nth) {
    const EncRows *a = vctx;
    long lo, hi;
    tpool_range(a->B, ith, nth, &lo, &hi);
    for (long r = lo; r < hi; r++)
        enc_row(a, (int)r);
}

static void enc_rows(EncRows *a, EncOp op, int il) {
    a->op = op;
    a->il = il;
    if (a->B < 2)
        enc_rows_task(a, 0, 1);
    else
        tpool_run(a->m->tp, enc_rows_task, a);
}

/* ----------------------------------------------------------- attention */

typedef struct {
    Model *m;
    const int32_t *lens; /* (n_seqs) */
    const int32_t *off;  /* (n_seqs) first row of each */
    int n_seqs;
    long total; /* cost of all (sequence, head) units: NH * sum len^2 */
} EncAttn;

/* Units are (sequence, head) pairs in that order; each thread takes a
 * contiguous run of about equal cost (len^2 per unit). A unit's bits
 * depend only on its sequence's rows, never on the split. */
static void enc_attn_task(void *vctx, int ith, int nth) {
    const EncAttn *a = vctx;
    Model *m = a->m;
    const ModelConfig *c = &m->cfg;
    const OpsKernels *K = ops_kernels();
    int NH = c->n_heads, HD = c->head_dim, group = c->n_heads / c->n_kv_heads;
    size_t QD = (size_t)NH * HD, KD = (size_t)c->n_kv_heads * HD;
    float *sc = m->scores + (size_t)ith * OPS_ATTN_MAX_ROWS * group * m->params.n_ctx;
    long done = 0;
    for (int s = 0; s < a->n_seqs; s++) {
        int T = a->lens[s];
        long cost = (long)T * T;
        for (int h = 0; h < NH; h++, done += cost) {
            int owner = a->total > 0 ? (int)((done + cost / 2) * nth / a->total) : 0;
            if ((owner < nth ? owner : nth - 1) != ith)
                continue;
            int kvh = h / group;
            for (int i = 0; i < T; i++) {
                size_t r = (size_t)a->off[s] + (size_t)i;
                const float *q = m->q + r * QD + (size_t)h * HD;
                for (int j = 0; j < T; j++)
                    sc[j] = K->dot(HD, q, m->k + ((size_t)a->off[s] + j) * KD + (size_t)kvh * HD) *
                            c->attn_scale;
                softmax_forward(sc, T);
                float *o = m->att + r * QD + (size_t)h * HD;
                memset(o, 0, (size_t)HD * sizeof(float));
                for (int j = 0; j < T; j++)
                    K->axpy(HD, o, sc[j], m->v + ((size_t)a->off[s] + j) * KD + (size_t)kvh * HD);
            }
        }
    }
}

/* -------------------------------------------------------------- forward */

void encoder_forward(Model *m, const int32_t *tokens, const int32_t *lens, int n_seqs,
                     ModelPooling pool, float *out) {
    const ModelConfig *c = &m->cfg;
    int C = c->n_embd;
    /* positions and each sequence's first row, in the model's per-row
     * scratch (touched / tiles: B + 1 int32 each, unused by encoders) */
    int32_t *pos = m->touched, *off = m->tiles;
    int B = 0;
    long total = 0;
    for (int s = 0; s < n_seqs; s++) {
        off[s] = B;
        for (int i = 0; i < lens[s]; i++)
            pos[B + i] = i;
        B += lens[s];
        total += (long)c->n_heads * lens[s] * lens[s];
    }
    EncRows rows = {m, tokens, pos, B, -1, ENC_EMBED};
    enc_rows(&rows, ENC_EMBED, -1);
    EncAttn at = {m, lens, off, n_seqs, total};
    for (int il = 0; il < c->n_layers; il++) {
        const Layer *L = &m->layers[il];
        if (m->fused_qkv)
            model_matmul3(m, m->x, B, NULL, m->qkv, &L->wqkv, L->bqkv, NULL, NULL, NULL, NULL, NULL,
                          NULL);
        else
            model_matmul3(m, m->x, B, NULL, m->q, &L->wq, L->bq, m->k, &L->wk, L->bk, m->v, &L->wv,
                          L->bv);
        if (m->fused_qkv || c->rope_type != ROPE_NONE)
            enc_rows(&rows, ENC_QKV_ROPE, il);
        tpool_run(m->tp, enc_attn_task, &at);
        model_matmul3(m, m->att, B, NULL, m->xb, &L->wo, L->bo, NULL, NULL, NULL, NULL, NULL, NULL);
        enc_rows(&rows, ENC_ATTN_RES, il);
        if (L->gate.data)
            model_matmul3(m, m->x, B, NULL, m->hb, &L->gate, L->bgate, m->hb2, &L->up, L->bup, NULL,
                          NULL, NULL);
        else
            model_matmul3(m, m->x, B, NULL, m->hb, &L->up, L->bup, NULL, NULL, NULL, NULL, NULL,
                          NULL);
        enc_rows(&rows, ENC_ACT, il);
        model_matmul3(m, m->hb, B, NULL, m->xb, &L->down, L->bdown, NULL, NULL, NULL, NULL, NULL,
                      NULL);
        enc_rows(&rows, ENC_FFN_RES, il);
    }
    for (int s = 0; s < n_seqs; s++) {
        float *o = out + (size_t)s * C;
        const float *x0 = m->x + (size_t)off[s] * C;
        if (pool == MODEL_POOL_CLS) {
            memcpy(o, x0, (size_t)C * sizeof(float));
        } else if (pool == MODEL_POOL_LAST) {
            memcpy(o, x0 + (size_t)(lens[s] - 1) * C, (size_t)C * sizeof(float));
        } else {
            memset(o, 0, (size_t)C * sizeof(float));
            for (int i = 0; i < lens[s]; i++)
                add_forward(o, o, x0 + (size_t)i * C, C);
            for (int k = 0; k < C; k++)
                o[k] /= (float)lens[s];
        }
    }
}

/* ------------------------------------------------------------ embedding */

/* A decoder's sequence through the KV cache as sequence 'seq', in chunks
 * of n_batch rows; the rows 'pool' needs summed (mean) or copied into o. */
static Status embed_decoder_one(Model *m, const int32_t *tok, int len, int seq, ModelPooling pool,
                                float *o, Err *err) {
    int C = m->cfg.n_embd, nb = m->params.n_batch;
    BatchRow *br = m->embed_rows;
    memset(o, 0, (size_t)C * sizeof(float));
    for (int at = 0; at < len; at += nb) {
        int n = len - at < nb ? len - at : nb;
        for (int i = 0; i < n; i++) {
            int p = at + i;
            bool want = pool == MODEL_POOL_MEAN || (pool == MODEL_POOL_CLS && p == 0) ||
                        (pool == MODEL_POOL_LAST && p == len - 1);
            br[i] = (BatchRow){tok[p], p, seq, want};
        }
        const float *h;
        Status st = model_forward_hidden_xb(m, br, n, &h, err);
        if (st)
            return st;
        int j = 0;
        for (int i = 0; i < n; i++) {
            if (!br[i].logits)
                continue;
            if (pool == MODEL_POOL_MEAN)
                add_forward(o, o, h + (size_t)j * C, C);
            else
                memcpy(o, h + (size_t)j * C, (size_t)C * sizeof(float));
            j++;
        }
    }
    if (pool == MODEL_POOL_MEAN)
        for (int k = 0; k < C; k++)
            o[k] /= (float)len;
    return STATUS_OK;
}

Status model_embed(Model *m, const int32_t *tokens, const int32_t *lens, int n_seqs,
                   const ModelEmbedOpts *opts, float *out, Err *err) {
    static const ModelEmbedOpts none = {0};
    const ModelEmbedOpts *o = opts ? opts : &none;
    const ModelConfig *c = &m->cfg;
    const ModelParams *p = &m->params;
    if (n_seqs < 1 || !tokens || !lens || !out)
        return err_set(err, STATUS_INVALID,
                       "embed: %d sequences (need >= 1, tokens, lengths and "
                       "an output buffer)",
                       n_seqs);
    if (o->pooling < MODEL_POOL_DEFAULT || o->pooling > MODEL_POOL_LAST)
        return err_set(err, STATUS_INVALID, "embed: pooling %d out of range [0, 3]",
                       (int)o->pooling);
    ModelPooling pool = o->pooling ? o->pooling : c->pooling;
    int max_len = c->encoder && p->n_batch < p->n_ctx ? p->n_batch : p->n_ctx;
    size_t at = 0;
    for (int s = 0; s < n_seqs; s++) {
        if (lens[s] < 1)
            return err_set(err, STATUS_INVALID, "embed: sequence %d is empty", s);
        if (lens[s] > max_len)
            return err_set(err, STATUS_LIMIT,
                           "embed: sequence %d has %d tokens, more than the %d the model takes "
                           "(%s)",
                           s, (int)lens[s], max_len, c->encoder ? "context and batch" : "context");
        for (int i = 0; i < lens[s]; i++, at++)
            if (tokens[at] < 0 || tokens[at] >= c->n_vocab)
                return err_set(err, STATUS_INVALID,
                               "embed: sequence %d token %d: id %d out of range [0, %d)", s, i,
                               (int)tokens[at], c->n_vocab);
    }
    int C = c->n_embd;
    if (c->encoder) {
        /* as many whole sequences as fit in one batch */
        at = 0;
        for (int s = 0; s < n_seqs;) {
            int e = s, rows = 0;
            while (e < n_seqs && rows + lens[e] <= p->n_batch)
                rows += lens[e++];
            encoder_forward(m, tokens + at, lens + s, e - s, pool, out + (size_t)s * C);
            at += (size_t)rows;
            s = e;
        }
    } else {
        if (o->seq < 0 || o->seq >= p->n_seq_max)
            return err_set(err, STATUS_INVALID, "embed: sequence id %d out of range [0, %d)",
                           o->seq, p->n_seq_max);
        if (model_seq_len(m, o->seq) != 0)
            return err_set(err, STATUS_INVALID,
                           "embed: sequence id %d is in use (%d positions cached); embeddings "
                           "need an empty one",
                           o->seq, model_seq_len(m, o->seq));
        at = 0;
        for (int s = 0; s < n_seqs; s++) {
            Status st =
                embed_decoder_one(m, tokens + at, lens[s], o->seq, pool, out + (size_t)s * C, err);
            model_seq_free(m, o->seq);
            if (st)
                return st;
            at += (size_t)lens[s];
        }
    }
    if (o->normalize)
        for (int s = 0; s < n_seqs; s++) {
            float *v = out + (size_t)s * C;
            double ss = 0.0;
            for (int k = 0; k < C; k++)
                ss += (double)v[k] * v[k];
            if (ss > 0.0) {
                float inv = (float)(1.0 / sqrt(ss));
                for (int k = 0; k < C; k++)
                    v[k] *= inv;
            }
        }
    return STATUS_OK;
}
