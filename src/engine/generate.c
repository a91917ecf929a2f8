/* generate.c - prefix reuse, chunked prefill, the sampling loop, scoring. */
#include "engine/generate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/perf.h"
#include "sample/constrain.h"
#include "sample/stop.h"

#define GEN_TEXT_CAP (TOK_MAX_STREAM_OUT + STOP_MAX_LEN)

Status gen_session_init(GenSession *s, Model *m, const Tokenizer *t, int seq, Err *err) {
    memset(s, 0, sizeof *s);
    const ModelParams *mp = model_params(m);
    if (seq < 0 || seq >= mp->n_seq_max)
        return err_set(err, STATUS_INVALID, "sequence %d out of range [0, %d)", seq, mp->n_seq_max);
    if (tok_n_vocab(t) > model_config(m)->n_vocab)
        return err_set(err, STATUS_FORMAT, "tokenizer has %d tokens but the model only %d",
                       tok_n_vocab(t), model_config(m)->n_vocab);
    s->m = m;
    s->tok = t;
    s->seq = seq;
    s->cap = mp->n_ctx;
    s->cached = malloc(sizeof(int32_t) * (size_t)s->cap);
    s->logits = malloc(sizeof(float) * (size_t)model_config(m)->n_vocab);
    s->rows = malloc(sizeof(BatchRow) * (size_t)mp->n_batch);
    if (!s->cached || !s->logits || !s->rows) {
        gen_session_free(s);
        return err_set(err, STATUS_NOMEM, "out of memory for a context of %d", mp->n_ctx);
    }
    model_seq_free(m, seq);
    return STATUS_OK;
}

void gen_session_free(GenSession *s) {
    if (!s)
        return;
    free(s->cached);
    free(s->logits);
    free(s->rows);
    memset(s, 0, sizeof *s);
}

void gen_session_reset(GenSession *s) {
    model_seq_free(s->m, s->seq);
    s->n_cached = 0;
}

void gen_cancel(GenSession *s) { s->cancel = 1; }

const char *gen_finish_name(GenFinish f) {
    switch (f) {
    case GEN_FINISH_EOG: return "stop";
    case GEN_FINISH_LENGTH: return "length";
    case GEN_FINISH_STOP: return "stop";
    case GEN_FINISH_CONTEXT: return "length";
    case GEN_FINISH_CANCELLED: return "cancelled";
    }
    return "?";
}

#define GEN_SCORE_ROWS 32 /* rows per forward when scoring (each keeps n_vocab logits) */

/* Feed ids[from, n) - ids indexed by position - in chunks; the logits of
 * the last row land in s->logits. Keeps s->cached in step with the cache
 * (model_forward cuts a sequence fed below its length, so a shorter common
 * prefix simply overwrites). */
static Status feed(GenSession *s, const int32_t *ids, int from, int n, Err *err) {
    int n_batch = model_params(s->m)->n_batch;
    BatchRow *buf = s->rows;
    Status st = STATUS_OK;
    s->n_cached = from < s->n_cached ? from : s->n_cached;
    for (int at = from; at < n && !st; at += n_batch) {
        int k = n - at < n_batch ? n - at : n_batch;
        for (int i = 0; i < k; i++)
            buf[i] = (BatchRow){ids[at + i], at + i, s->seq, at + i == n - 1};
        st = model_forward(s->m, buf, k, s->logits, err);
        if (!st) {
            if (ids != s->cached)
                memcpy(s->cached + at, ids + at, sizeof(int32_t) * (size_t)k);
            s->n_cached = at + k;
        }
    }
    if (st) /* the cache may hold part of the chunk: forget it */
        gen_session_reset(s);
    return st;
}

typedef struct {
    GenOnText on_text;
    void *ctx;
    bool cancelled;
} Sink;

static void emit(Sink *k, const char *text, size_t len) {
    if (len && !k->cancelled && k->on_text && !k->on_text(k->ctx, text, len))
        k->cancelled = true;
}

Status gen_generate(GenSession *s, const int32_t *prompt, int n_prompt, const GenParams *p,
                    GenOnText on_text, void *ctx, int32_t *out_ids, GenStats *stats, Err *err) {
    GenStats st0 = {0};
    GenStats *gs = stats ? stats : &st0;
    memset(gs, 0, sizeof *gs);
    s->cancel = 0;
    if (n_prompt < 1)
        return err_set(err, STATUS_INVALID, "the prompt is empty");
    if (n_prompt >= s->cap)
        return err_set(err, STATUS_LIMIT,
                       "context_length_exceeded: the prompt has %d tokens, the context holds %d "
                       "(and one more is needed to answer)",
                       n_prompt, s->cap);
    Sampler *smp = sampler_new(&p->sampling, model_config(s->m)->n_vocab, err);
    if (!smp)
        return err->status;
    Grammar *gr = NULL;
    GrammarVocab *gv = NULL;
    Constraint *con = NULL;
    if (p->grammar &&
        (grammar_parse(&gr, p->grammar, p->grammar_len, NULL, err) ||
         constrain_vocab_new(s->tok, model_config(s->m)->n_vocab, p->render_special, &gv, err) ||
         !(con = constrain_new(gr, gv, err)))) {
        sampler_free(smp);
        grammar_vocab_free(gv);
        grammar_free(gr);
        return err->status;
    }
    StopMatcher stop;
    Status st = stop_init(&stop, p->stop, p->n_stop, err);
    char *text = malloc(GEN_TEXT_CAP), *out = malloc(GEN_TEXT_CAP);
    if (!st && (!text || !out))
        st = err_set(err, STATUS_NOMEM, "out of memory");
    if (st)
        goto done;

    /* Reuse the cached prefix; always recompute at least the last prompt
     * token, whose logits start the reply. */
    int reuse = 0;
    while (reuse < s->n_cached && reuse < n_prompt - 1 && s->cached[reuse] == prompt[reuse])
        reuse++;
    /* a sliding-window model gives back the rows its window has left: a
     * prefix that ends before the cache does can only be continued while
     * the window before its end is whole; else the prompt is fed anew */
    if (reuse < s->n_cached && !model_seq_resumable(s->m, s->seq, reuse))
        reuse = 0;
    gs->n_prompt = n_prompt;
    gs->n_reused = reuse;
    double t0 = perf_now();
    if ((st = feed(s, prompt, reuse, n_prompt, err)))
        goto done;
    gs->t_prompt = perf_now() - t0;
    for (int i = 0; i < n_prompt; i++)
        sampler_accept(smp, prompt[i]);

    TokStream ts;
    tok_stream_init(&ts, s->tok, p->render_special);
    Sink sink = {on_text, ctx, false};
    int limit = p->max_tokens < 0 ? s->cap : p->max_tokens;
    gs->finish = GEN_FINISH_LENGTH;
    t0 = perf_now();
    for (int k = 0; k < limit; k++) {
        if (s->cancel || sink.cancelled) {
            gs->finish = GEN_FINISH_CANCELLED;
            break;
        }
        int32_t id = con ? constrain_sample(con, smp, s->logits, NULL, NULL)
                         : sampler_sample(smp, s->logits, NULL);
        if (id < 0) {
            st = err_set(err, STATUS_INVALID,
                         "grammar: no token of the vocabulary can continue the output here");
            break;
        }
        if (!p->ignore_eos && tok_is_eog(s->tok, id)) {
            gs->finish = GEN_FINISH_EOG;
            break;
        }
        if (con)
            constrain_accept(con, id);
        sampler_accept(smp, id);
        if (out_ids)
            out_ids[gs->n_generated] = id;
        gs->n_generated++;
        bool hit = false;
        size_t n = tok_stream_push(&ts, id, text, GEN_TEXT_CAP);
        emit(&sink, out, stop_push(&stop, text, n, out, &hit));
        if (hit) {
            gs->finish = GEN_FINISH_STOP;
            break;
        }
        if (con && constrain_done(con)) { /* nothing can follow */
            gs->finish = GEN_FINISH_EOG;
            break;
        }
        if (k + 1 == limit)
            break;
        if (s->n_cached >= s->cap) {
            gs->finish = GEN_FINISH_CONTEXT;
            break;
        }
        s->cached[s->n_cached] = id;
        if ((st = feed(s, s->cached, s->n_cached, s->n_cached + 1, err)) != STATUS_OK)
            break;
    }
    if (gs->finish != GEN_FINISH_STOP && !st) {
        size_t n = tok_stream_flush(&ts, text, GEN_TEXT_CAP);
        bool hit = false;
        size_t m = stop_push(&stop, text, n, out, &hit);
        emit(&sink, out, m);
        if (!hit)
            emit(&sink, out, stop_flush(&stop, out));
    }
    if (sink.cancelled && gs->finish != GEN_FINISH_STOP)
        gs->finish = GEN_FINISH_CANCELLED;
    gs->t_generate = perf_now() - t0;
done:
    stop_free(&stop);
    sampler_free(smp);
    constrain_free(con);
    grammar_vocab_free(gv);
    grammar_free(gr);
    free(text);
    free(out);
    return st;
}

Status gen_score(GenSession *s, const int32_t *ids, int n, int first, double *nll, long *count,
                 Err *err) {
    int V = model_config(s->m)->n_vocab;
    if (n < 2 || n > s->cap)
        return err_set(err, STATUS_INVALID, "cannot score %d tokens in a context of %d", n, s->cap);
    int rows_max = model_params(s->m)->n_batch < GEN_SCORE_ROWS ? model_params(s->m)->n_batch
                                                                 : GEN_SCORE_ROWS;
    float *lg = malloc(sizeof(float) * (size_t)V * (size_t)rows_max);
    BatchRow *rows = malloc(sizeof(BatchRow) * (size_t)rows_max);
    Status st = STATUS_OK;
    if (!lg || !rows) {
        st = err_set(err, STATUS_NOMEM, "out of memory for %d rows of %d logits", rows_max, V);
        goto done;
    }
    gen_session_reset(s);
    for (int at = 0; at < n - 1 && !st; at += rows_max) {
        int k = n - 1 - at < rows_max ? n - 1 - at : rows_max;
        for (int i = 0; i < k; i++)
            rows[i] = (BatchRow){ids[at + i], at + i, s->seq, true};
        if ((st = model_forward(s->m, rows, k, lg, err)))
            break;
        for (int i = 0; i < k; i++) {
            int target = at + i + 1; /* row at position p predicts ids[p + 1] */
            if (target < first)
                continue;
            const float *l = lg + (size_t)i * (size_t)V;
            double mx = l[0], sum = 0;
            for (int v = 1; v < V; v++)
                mx = l[v] > mx ? l[v] : mx;
            for (int v = 0; v < V; v++)
                sum += exp((double)l[v] - mx);
            *nll += mx + log(sum) - (double)l[ids[target]];
            (*count)++;
        }
    }
    gen_session_reset(s);
done:
    free(lg);
    free(rows);
    return st;
}
