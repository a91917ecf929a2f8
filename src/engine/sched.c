/* sched.c - continuous batching over one Model (see sched.h).
 *
 * Threads. Submitters append to a FIFO under 'mu'; the engine thread pops
 * from its head (only it pops, so the head it peeked stays the head). Every
 * other piece of engine state (the running list, sequence ids, the prefix
 * cache, the KV pool) belongs to the engine thread alone. Callbacks run
 * with no lock held, so they may call sched_cancel(), which only sets an
 * atomic flag and wakes the engine.
 *
 * KV budget. The invariant between steps is
 *     kv free blocks >= sum over running choices of need(choice)
 * where need is what the choice may still take from the pool up to its
 * reserved length T = min(n_ctx, n_prompt + max_tokens): for a sequence in
 * the cache, kv_seq_blocks_needed(seq, len, T) (new blocks plus a copy of
 * a shared block it will write); for the choices of an n > 1 request still
 * in prefill, the blocks they will add after attaching the first choice's
 * prompt. model_forward()'s own check counts a copy for EVERY sharer of the
 * prompt's partial last block, one more than will happen (the last sharer
 * writes in place), so such a request reserves one slack block; with it a
 * batch never asks for more than is free and model_forward cannot fail for
 * lack of KV. Admission checks the invariant still holds with the new
 * request added, counting the cache's evictable blocks as available and
 * evicting just enough of them.
 *
 * Per step cost outside model_forward: O(rows) to build the batch, per
 * sampled choice one O(V) sampler pass (two with logprobs, three with
 * top_logprobs) - these run in parallel on a pool as wide as the model's
 * (each choice has its own sampler) and only their effects (detokenizer,
 * stop strings, events) are applied serially in row order - and one lock
 * for the stats. Nothing is allocated per step. Admission work (needs,
 * evictable count) only runs when the queue head may have become
 * admissible. */
#include "engine/sched.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/perf.h"
#include "core/tpool.h"
#include "engine/pcache.h"
#include "sample/constrain.h"
#include "sample/stop.h"

#define SCHED_DEFAULT_QUEUE 256
/* inputs of an encoder's waiting embedding requests that run together */
#define SCHED_EMBED_MERGE 4096
#define SCHED_TEXT_CAP (TOK_MAX_STREAM_OUT + STOP_MAX_LEN)
#define SCHED_OUT_CAP (SCHED_TEXT_CAP + 2 * STOP_MAX_LEN)
#define SCHED_LOGPROB_FLOOR (-9999.0f) /* what -inf is reported as */

typedef enum { RQ_QUEUED, RQ_PREFILL, RQ_DECODE } ReqState;

/* An embedding request (sched_embed): waits in the embed queue, runs on the
 * engine thread between steps, its caller blocked on 'done'. */
typedef struct SchedEmbedJob {
    const int32_t *tokens, *lens; /* the caller's, valid while it waits */
    int n_seqs;
    ModelEmbedOpts opts;
    float *out;
    Status st;
    Err err;
    bool done;
    struct SchedEmbedJob *next;
} SchedEmbedJob;

typedef struct {
    Sampler *smp; /* created at admission */
    Constraint *con; /* the grammar's state, created at admission; NULL without one */
    StopMatcher stop;
    bool stop_ok; /* stop initialised */
    TokStream ts;
    int seq;      /* model sequence id; -1 when none */
    int32_t next; /* sampled token to feed next step */
    int n_gen;
    bool finished;
    GenFinish finish;
} Choice;

struct SchedReq {
    Sched *s;
    atomic_int refs;
    atomic_bool cancel;
    SchedReq *next; /* queue link, under s->mu */
    /* set at submit, then read-only */
    int32_t *prompt; /* (n_prompt) */
    int n_prompt;
    int n;            /* choices */
    int target;       /* positions reserved per choice */
    int slack;        /* extra block reserved (shared partial block, see top) */
    SchedReqParams p; /* p.stop NULL, p.grammar NULL; p.sampling.bias -> bias */
    LogitBias *bias;
    Grammar *grammar;   /* parsed at submit; NULL without one */
    PCacheHash *hashes; /* (n_hash) keys of the prompt's cacheable blocks */
    int n_hash;
    SchedOnEvent cb;
    void *ctx;
    double t_submit;
    /* engine thread */
    ReqState state;
    int n_fed; /* prompt positions in choice 0's sequence */
    int take;  /* prompt rows in the current batch */
    int n_cached;
    int n_done; /* finished choices */
    int n_generated;
    double t_admit, t_first;
    bool in_batch;
    char error[ERR_MSG_MAX];
    Choice ch[];
};

/* One draw: a choice and the logits row it samples from; phase 1 (on the
 * sampling pool) fills the outputs, phase 2 (the engine thread, in row
 * order) applies them. */
typedef struct {
    SchedReq *r;
    int c;
    const float *logits; /* (n_vocab) */
    int32_t id;
    float lp;
    int n_top;
    SchedTopLogprob top[SCHED_MAX_TOP_LOGPROBS];
} Draw;

struct Sched {
    Model *m;
    const Tokenizer *tok;
    KVCache *kv;
    SchedParams p;
    int n_ctx, n_batch, n_vocab, bs, n_seq_max;
    uint8_t model_id[64];
    size_t model_id_len;
    PCache *pc; /* NULL without prefix cache */

    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    bool started, stopping;
    SchedReq *q_head, *q_tail;
    int n_queued;
    SchedEmbedJob *e_head, *e_tail; /* embedding requests, under mu */
    pthread_cond_t e_cv;            /* an embedding request is done */
    atomic_uint cancel_gen; /* bumped by sched_cancel */
    unsigned cancel_seen;
    SchedStats st; /* under mu (running/queued/kv filled in by the engine) */

    /* engine thread only */
    SchedReq **run; /* (max_running) in admission order */
    int n_run, n_run_choices;
    int32_t *free_seq; /* (n_seq_max) stack */
    int n_free_seq;
    SchedReq *blocked; /* queue head that did not fit; retried when something changes */
    bool changed;
    BatchRow *rows;  /* (n_batch) */
    SchedReq **lreq; /* (max_logits) owner of each logits row */
    int *lchoice;    /* (max_logits) its choice; -1: a finished prefill */
    int max_logits;
    float *logits;    /* (max_logits, n_vocab) */
    int32_t *hit;     /* (max_seq_blocks) prefix-cache hits of an admission */
    char *text, *out; /* detokenizer / stop matcher output */
    Draw *draws;      /* (n_batch) one per choice sampled this step */
    int n_draws;
    TPool *tp; /* sampling threads; NULL: the engine thread alone */
    uint64_t step_tokens;
    GrammarVocab *gvocab[2]; /* the vocabulary's trie, built for the first grammar; [1]: with
                              * control tokens' text (render_special) */
};

static int ceil_div(int a, int b) { return (a + b - 1) / b; }

/* ---- requests ----------------------------------------------------------- */

static void req_free_engine_state(SchedReq *r) {
    for (int c = 0; c < r->n; c++) {
        sampler_free(r->ch[c].smp);
        r->ch[c].smp = NULL;
        constrain_free(r->ch[c].con);
        r->ch[c].con = NULL;
        if (r->ch[c].stop_ok)
            stop_free(&r->ch[c].stop);
        r->ch[c].stop_ok = false;
    }
}

static void req_free(SchedReq *r) {
    req_free_engine_state(r);
    free(r->prompt);
    free(r->bias);
    free(r->hashes);
    grammar_free(r->grammar);
    free(r);
}

void sched_release(SchedReq *r) {
    if (r && atomic_fetch_sub(&r->refs, 1) == 1)
        req_free(r);
}

void sched_cancel(SchedReq *r) {
    if (!r || atomic_exchange(&r->cancel, true))
        return;
    Sched *s = r->s;
    atomic_fetch_add(&s->cancel_gen, 1);
    pthread_mutex_lock(&s->mu);
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static double now(void) { return perf_now(); }

/* ---- events --------------------------------------------------------------- */

static void emit(SchedReq *r, const SchedEvent *ev) { r->cb(r->ctx, ev); }

static void seq_release(Sched *s, int seq) {
    if (seq < 0)
        return;
    model_seq_free(s->m, seq);
    s->free_seq[s->n_free_seq++] = seq;
}

/* End choice c: flush held text (unless stopped, cancelled or failed),
 * report FINISH, give its sequence back. */
static void finish_choice(Sched *s, SchedReq *r, int c, GenFinish why) {
    Choice *ch = &r->ch[c];
    if (ch->finished)
        return;
    size_t m = 0;
    if (why == GEN_FINISH_EOG || why == GEN_FINISH_LENGTH || why == GEN_FINISH_CONTEXT) {
        size_t n = tok_stream_flush(&ch->ts, s->text, SCHED_TEXT_CAP);
        bool hit = false;
        m = stop_push(&ch->stop, s->text, n, s->out, &hit);
        if (!hit)
            m += stop_flush(&ch->stop, s->out + m);
    }
    ch->finished = true;
    ch->finish = why;
    r->n_done++;
    seq_release(s, ch->seq);
    ch->seq = -1;
    s->n_run_choices--;
    s->changed = true;
    SchedEvent ev = {.type = SCHED_EV_FINISH,
                     .choice = c,
                     .text = s->out,
                     .len = m,
                     .finish = why,
                     .t_first = -1,
                     .error = why == GEN_FINISH_ERROR ? r->error : NULL};
    emit(r, &ev);
}

/* Report END, count the request, drop the engine's reference. Every choice
 * must be finished (or never started: queued). */
static void end_request(Sched *s, SchedReq *r) {
    double t = now();
    bool admitted = r->state != RQ_QUEUED;
    bool cancelled = atomic_load(&r->cancel);
    bool failed = false;
    for (int c = 0; c < r->n; c++)
        failed |= r->ch[c].finish == GEN_FINISH_ERROR;
    SchedEvent ev = {.type = SCHED_EV_END,
                     .choice = 0,
                     .text = "",
                     .finish = r->ch[0].finish,
                     .n_prompt = r->n_prompt,
                     .n_cached = r->n_cached,
                     .n_generated = r->n_generated,
                     .t_queue = (admitted ? r->t_admit : t) - r->t_submit,
                     .t_first = r->t_first,
                     .error = failed ? r->error : NULL};
    req_free_engine_state(r);
    pthread_mutex_lock(&s->mu);
    if (cancelled)
        s->st.requests_cancelled++;
    else
        s->st.requests_done++;
    pthread_mutex_unlock(&s->mu);
    emit(r, &ev);
    sched_release(r);
}

/* A request that never ran (queued, or refused at admission): FINISH for
 * every choice with 'why', then END. */
static void end_unadmitted(Sched *s, SchedReq *r, GenFinish why) {
    for (int c = 0; c < r->n; c++) {
        r->ch[c].finished = true;
        r->ch[c].finish = why;
        SchedEvent ev = {.type = SCHED_EV_FINISH,
                         .choice = c,
                         .text = "",
                         .finish = why,
                         .t_first = -1,
                         .error = why == GEN_FINISH_ERROR ? r->error : NULL};
        emit(r, &ev);
    }
    end_request(s, r);
}

/* Finish every unfinished choice of a running request with 'why'. */
static void finish_all(Sched *s, SchedReq *r, GenFinish why) {
    for (int c = 0; c < r->n; c++)
        finish_choice(s, r, c, why);
}

/* Drop the running requests whose choices are all finished (END). */
static void sweep_done(Sched *s) {
    int k = 0;
    for (int i = 0; i < s->n_run; i++) {
        SchedReq *r = s->run[i];
        if (r->n_done == r->n)
            end_request(s, r);
        else
            s->run[k++] = r;
    }
    s->n_run = k;
}

/* ---- sampling ------------------------------------------------------------- */

/* Phase 1 of a draw: the sampler's choice (and log-probabilities) for
 * choice c. Touches only that choice's sampler. */
static void draw_run(Draw *d) {
    const SchedReqParams *p = &d->r->p;
    Sampler *smp = d->r->ch[d->c].smp;
    Constraint *con = d->r->ch[d->c].con;
    const float *logits = d->logits;
    d->lp = 0;
    if (con)
        d->id = constrain_sample(con, smp, d->logits, p->logprobs ? &d->lp : NULL, &logits);
    else
        d->id = sampler_sample(smp, d->logits, p->logprobs ? &d->lp : NULL);
    d->n_top = 0;
    if (d->id >= 0 && p->logprobs && p->top_logprobs > 0) {
        int32_t ids[SCHED_MAX_TOP_LOGPROBS];
        float lps[SCHED_MAX_TOP_LOGPROBS];
        d->n_top = sampler_top_logprobs(smp, logits, p->top_logprobs, ids, lps);
        for (int i = 0; i < d->n_top; i++)
            d->top[i] = (SchedTopLogprob){ids[i], isinf(lps[i]) ? SCHED_LOGPROB_FLOOR : lps[i]};
    }
}

static void draw_task(void *ctx, int ith, int nth) {
    Sched *s = ctx;
    long lo, hi;
    tpool_range(s->n_draws, ith, nth, &lo, &hi);
    for (long i = lo; i < hi; i++)
        draw_run(&s->draws[i]);
}

/* Phase 2: the rest of the single-sequence loop of gen_generate, step for
 * step: end of generation, accept, detokenize, stop strings, limits. */
static void draw_apply(Sched *s, const Draw *d) {
    SchedReq *r = d->r;
    int c = d->c;
    Choice *ch = &r->ch[c];
    const SchedReqParams *p = &r->p;
    if (d->id < 0) { /* constrain_sample: the grammar allows no token */
        snprintf(r->error, sizeof r->error,
                 "grammar: no token of the vocabulary can continue the output here (after %d "
                 "tokens)",
                 ch->n_gen);
        finish_choice(s, r, c, GEN_FINISH_ERROR);
        return;
    }
    if (!p->ignore_eos && tok_is_eog(s->tok, d->id)) {
        finish_choice(s, r, c, GEN_FINISH_EOG);
        return;
    }
    bool grammar_done = false;
    if (ch->con) {
        bool ok = constrain_accept(ch->con, d->id);
        ASSERT(ok); /* constrain_sample drew it */
        grammar_done = constrain_done(ch->con);
    }
    sampler_accept(ch->smp, d->id);
    ch->n_gen++;
    r->n_generated++;
    s->step_tokens++;
    if (r->t_first < 0)
        r->t_first = now() - r->t_submit;
    size_t n = tok_stream_push(&ch->ts, d->id, s->text, SCHED_TEXT_CAP);
    bool hit = false;
    size_t m = stop_push(&ch->stop, s->text, n, s->out, &hit);
    SchedEvent ev = {.type = SCHED_EV_TOKEN,
                     .choice = c,
                     .text = s->out,
                     .len = m,
                     .token = d->id,
                     .logprob = isinf(d->lp) ? SCHED_LOGPROB_FLOOR : d->lp,
                     .top = d->top,
                     .n_top = d->n_top,
                     .t_first = -1};
    emit(r, &ev);
    if (hit)
        finish_choice(s, r, c, GEN_FINISH_STOP);
    else if (grammar_done) /* nothing can follow: end as the end-of-generation token would */
        finish_choice(s, r, c, GEN_FINISH_EOG);
    else if (ch->n_gen >= p->max_tokens)
        finish_choice(s, r, c, GEN_FINISH_LENGTH);
    else if (r->n_prompt + ch->n_gen - 1 >= s->n_ctx)
        finish_choice(s, r, c, GEN_FINISH_CONTEXT);
    else
        ch->next = d->id;
}

/* The prompt of r is in choice 0's sequence: share it with the other
 * choices and publish its blocks to the prefix cache. Between forwards. */
static void start_choices(Sched *s, SchedReq *r) {
    Err err = {0};
    const int32_t *t0 = kv_seq_table(s->kv, r->ch[0].seq);
    for (int c = 1; c < r->n; c++) {
        Status st = kv_seq_attach(s->kv, r->ch[c].seq, t0, r->n_prompt, &err);
        ASSERT(st == STATUS_OK); /* the sequence was empty, the blocks in use */
    }
    if (s->pc && r->n_hash > 0)
        pcache_insert(s->pc, s->kv, r->hashes, t0, r->n_hash);
    r->state = RQ_DECODE;
}

/* Sample every logits row of the step: the draws in parallel, then their
 * effects in row order (a finished prefill: every choice from its row). */
static void sample_rows(Sched *s, int nl) {
    int k = 0;
    for (int i = 0; i < nl; i++) {
        const float *row = s->logits + (size_t)i * (size_t)s->n_vocab;
        SchedReq *r = s->lreq[i];
        int c0 = s->lchoice[i] < 0 ? 0 : s->lchoice[i];
        int c1 = s->lchoice[i] < 0 ? r->n : c0 + 1;
        for (int c = c0; c < c1; c++)
            s->draws[k++] = (Draw){.r = r, .c = c, .logits = row};
    }
    ASSERT(k <= s->n_batch);
    s->n_draws = k;
    if (k > 1)
        tpool_run(s->tp, draw_task, s);
    else if (k == 1)
        draw_run(&s->draws[0]);
    k = 0;
    for (int i = 0; i < nl; i++) {
        if (s->lchoice[i] < 0) {
            start_choices(s, s->lreq[i]);
            for (int c = 0; c < s->lreq[i]->n; c++)
                draw_apply(s, &s->draws[k++]);
        } else {
            draw_apply(s, &s->draws[k++]);
        }
    }
}

/* ---- the KV budget ------------------------------------------------------- */

/* Blocks choice c of r may still take from the pool (see the top). */
static int choice_need(const Sched *s, const SchedReq *r, int c) {
    const Choice *ch = &r->ch[c];
    if (ch->finished)
        return 0;
    if (r->state == RQ_PREFILL && c > 0)
        return ceil_div(r->target, s->bs) - r->n_prompt / s->bs;
    int len = s->kv->seq_len[ch->seq];
    return kv_seq_blocks_needed(s->kv, ch->seq, len, r->target);
}

static int64_t outstanding(const Sched *s) {
    int64_t sum = 0;
    for (int i = 0; i < s->n_run; i++) {
        const SchedReq *r = s->run[i];
        for (int c = 0; c < r->n; c++)
            sum += choice_need(s, r, c);
        if (r->state == RQ_PREFILL)
            sum += r->slack;
    }
    return sum;
}

/* Blocks a new request reserves when 'cached' prompt blocks come from the
 * prefix cache. */
static int64_t reservation(const Sched *s, int n_prompt, int n, int target, int cached, int slack) {
    int64_t bt = ceil_div(target, s->bs);
    return (bt - cached) + (int64_t)(n - 1) * (bt - n_prompt / s->bs) + slack;
}

/* ---- admission ------------------------------------------------------------- */

/* 1: admitted; 0: not now; -1: failed (r->error set). */
static int try_admit(Sched *s, SchedReq *r) {
    if (s->n_run >= s->p.max_running || s->n_free_seq < r->n ||
        s->n_run_choices + r->n > s->n_batch)
        return 0;
    int k = 0;
    if (s->pc && r->n_hash > 0)
        k = pcache_lookup(s->pc, r->hashes, r->n_hash, s->hit);
    /* a sliding-window model continues a prefix only where the window
     * before its end is still there (kvcache.h) */
    k = kv_window_prefix(s->kv, s->hit, k);
    int64_t need = reservation(s, r->n_prompt, r->n, r->target, k, r->slack);
    int64_t out = outstanding(s);
    int64_t evictable =
        s->pc ? pcache_evictable(s->pc, s->kv) - pcache_count_evictable(s->kv, s->hit, k) : 0;
    if (need > (int64_t)s->kv->n_free + evictable - out)
        return 0;

    Err err = {0};
    bool special = r->p.render_special;
    if (r->grammar && !s->gvocab[special] &&
        constrain_vocab_new(s->tok, s->n_vocab, special, &s->gvocab[special], &err)) {
        snprintf(r->error, sizeof r->error, "%s", err.msg);
        return -1;
    }
    for (int c = 0; c < r->n; c++) {
        if (r->grammar && !(r->ch[c].con = constrain_new(r->grammar, s->gvocab[special], &err))) {
            snprintf(r->error, sizeof r->error, "%s", err.msg);
            req_free_engine_state(r);
            return -1;
        }
        SamplerParams sp = r->p.sampling;
        sp.seed += (uint64_t)c;
        Choice *ch = &r->ch[c];
        ch->smp = sampler_new(&sp, s->n_vocab, &err);
        if (!ch->smp) {
            snprintf(r->error, sizeof r->error, "%s", err.msg);
            req_free_engine_state(r);
            return -1;
        }
        for (int i = 0; i < r->n_prompt; i++)
            sampler_accept(ch->smp, r->prompt[i]);
    }
    for (int c = 0; c < r->n; c++) {
        Choice *ch = &r->ch[c];
        tok_stream_init(&ch->ts, s->tok, r->p.render_special);
        ch->seq = s->free_seq[--s->n_free_seq];
        model_seq_free(s->m, ch->seq); /* nobody else may have left anything there */
        ch->finish = GEN_FINISH_LENGTH;
    }
    if (k > 0) {
        Status st = kv_seq_attach(s->kv, r->ch[0].seq, s->hit, k * s->bs, &err);
        ASSERT(st == STATUS_OK);
    }
    int64_t short_by = need - ((int64_t)s->kv->n_free - out);
    if (short_by > 0) {
        int freed = pcache_evict(s->pc, s->kv, (int)short_by);
        ASSERT(freed == short_by);
    }
    r->n_cached = r->n_fed = k * s->bs;
    r->state = RQ_PREFILL;
    r->t_admit = now();
    s->run[s->n_run++] = r;
    s->n_run_choices += r->n;
    pthread_mutex_lock(&s->mu);
    s->st.tokens_prompt += (uint64_t)r->n_prompt;
    s->st.tokens_cached += (uint64_t)r->n_cached;
    s->st.prefix_hits += r->n_cached > 0;
    pthread_mutex_unlock(&s->mu);
    return 1;
}

static SchedReq *queue_head(Sched *s) {
    pthread_mutex_lock(&s->mu);
    SchedReq *r = s->q_head;
    pthread_mutex_unlock(&s->mu);
    return r;
}

static void queue_pop(Sched *s) {
    pthread_mutex_lock(&s->mu);
    SchedReq *r = s->q_head;
    s->q_head = r->next;
    if (!s->q_head)
        s->q_tail = NULL;
    r->next = NULL;
    s->n_queued--;
    pthread_mutex_unlock(&s->mu);
}

/* Admit queued requests, first come first served, while they fit. */
static void admit(Sched *s) {
    for (;;) {
        SchedReq *r = queue_head(s);
        if (!r || (r == s->blocked && !s->changed))
            return;
        int rc = atomic_load(&r->cancel) ? -2 : try_admit(s, r);
        if (rc == 0 && s->n_run == 0) {
            /* cannot happen (the reservation fits the pool, checked at
             * submit); refuse rather than wait forever */
            snprintf(r->error, sizeof r->error,
                     "request cannot be admitted: needs more KV blocks than the pool has");
            rc = -1;
        }
        if (rc == 0) {
            s->blocked = r;
            s->changed = false;
            return;
        }
        queue_pop(s);
        s->blocked = NULL;
        if (rc == -2)
            end_unadmitted(s, r, GEN_FINISH_CANCELLED);
        else if (rc == -1)
            end_unadmitted(s, r, GEN_FINISH_ERROR);
    }
}

/* Remove cancelled requests from the queue and the running list. */
static void reap_cancelled(Sched *s) {
    bool any = false;
    for (int i = 0; i < s->n_run; i++) {
        SchedReq *r = s->run[i];
        if (atomic_load(&r->cancel) && r->n_done < r->n) {
            finish_all(s, r, GEN_FINISH_CANCELLED);
            any = true;
        }
    }
    if (any)
        sweep_done(s);
    unsigned gen = atomic_load(&s->cancel_gen);
    if (gen == s->cancel_seen)
        return;
    s->cancel_seen = gen;
    SchedReq *gone = NULL, **tail = &gone;
    pthread_mutex_lock(&s->mu);
    SchedReq **pp = &s->q_head, *last = NULL;
    while (*pp) {
        SchedReq *r = *pp;
        if (atomic_load(&r->cancel)) {
            *pp = r->next;
            r->next = NULL;
            *tail = r;
            tail = &r->next;
            s->n_queued--;
        } else {
            last = r;
            pp = &r->next;
        }
    }
    s->q_tail = last;
    pthread_mutex_unlock(&s->mu);
    while (gone) {
        SchedReq *r = gone;
        gone = r->next;
        r->next = NULL;
        if (r == s->blocked)
            s->blocked = NULL;
        end_unadmitted(s, r, GEN_FINISH_CANCELLED);
    }
}

/* ---- one step ----------------------------------------------------------- */

static void fail_batch(Sched *s, const char *msg) {
    for (int i = 0; i < s->n_run; i++) {
        SchedReq *r = s->run[i];
        if (!r->in_batch)
            continue;
        snprintf(r->error, sizeof r->error, "%s", msg);
        finish_all(s, r, GEN_FINISH_ERROR);
    }
    sweep_done(s);
}

static void step(Sched *s) {
    int nr = 0, nl = 0;
    /* decode rows: one per generating choice */
    for (int i = 0; i < s->n_run; i++) {
        SchedReq *r = s->run[i];
        r->in_batch = false;
        r->take = 0;
        if (r->state != RQ_DECODE)
            continue;
        for (int c = 0; c < r->n; c++) {
            Choice *ch = &r->ch[c];
            if (ch->finished)
                continue;
            s->rows[nr++] = (BatchRow){ch->next, r->n_prompt + ch->n_gen - 1, ch->seq, true};
            s->lreq[nl] = r;
            s->lchoice[nl++] = c;
            r->in_batch = true;
        }
    }
    /* prompt rows, first come first served */
    int budget = s->n_batch - nr < s->p.prefill_chunk ? s->n_batch - nr : s->p.prefill_chunk;
    for (int i = 0; i < s->n_run && budget > 0; i++) {
        SchedReq *r = s->run[i];
        if (r->state != RQ_PREFILL)
            continue;
        int left = r->n_prompt - r->n_fed;
        int take = left < budget ? left : budget;
        int seq = r->ch[0].seq;
        for (int j = 0; j < take; j++) {
            int pos = r->n_fed + j;
            s->rows[nr++] = (BatchRow){r->prompt[pos], pos, seq, pos == r->n_prompt - 1};
        }
        if (take == left) {
            s->lreq[nl] = r;
            s->lchoice[nl++] = -1;
        }
        r->take = take;
        r->in_batch = true;
        budget -= take;
    }
    if (nr == 0)
        return;
    ASSERT(nl <= s->max_logits);

    double t0 = now();
    Err err = {0};
    Status st = model_forward(s->m, s->rows, nr, s->logits, &err);
    if (st != STATUS_OK) {
        fail_batch(s, err.msg);
    } else {
        for (int i = 0; i < s->n_run; i++)
            s->run[i]->n_fed += s->run[i]->take;
        s->step_tokens = 0;
        sample_rows(s, nl);
        sweep_done(s);
    }
    double dt = now() - t0;
    pthread_mutex_lock(&s->mu);
    s->st.steps++;
    s->st.busy_seconds += dt;
    s->st.tokens_generated += st == STATUS_OK ? s->step_tokens : 0;
    pthread_mutex_unlock(&s->mu);
}

static void publish_state(Sched *s) {
    int n_free = s->kv->n_free, total = s->kv->n_blocks, cached = pcache_count(s->pc);
    pthread_mutex_lock(&s->mu);
    s->st.running = s->n_run;
    s->st.kv_blocks_free = n_free;
    s->st.kv_blocks_used = total - n_free;
    s->st.kv_blocks_total = total;
    s->st.kv_blocks_cached = cached;
    pthread_mutex_unlock(&s->mu);
}

/* End everything: running requests and the queue (CANCELLED). */
static void drain(Sched *s) {
    for (int i = 0; i < s->n_run; i++) {
        atomic_store(&s->run[i]->cancel, true);
        finish_all(s, s->run[i], GEN_FINISH_CANCELLED);
    }
    sweep_done(s);
    for (;;) {
        pthread_mutex_lock(&s->mu);
        SchedReq *r = s->q_head;
        if (r) {
            s->q_head = r->next;
            if (!s->q_head)
                s->q_tail = NULL;
            s->n_queued--;
            r->next = NULL;
        }
        pthread_mutex_unlock(&s->mu);
        if (!r)
            break;
        atomic_store(&r->cancel, true);
        end_unadmitted(s, r, GEN_FINISH_CANCELLED);
    }
    s->blocked = NULL;
    publish_state(s);
}

/* An embedding request ran: its status to its caller, the counts. */
static void embed_done(Sched *s, SchedEmbedJob *j, Status st, double seconds) {
    pthread_mutex_lock(&s->mu);
    j->st = st;
    j->done = true;
    s->st.busy_seconds += seconds;
    s->st.embed_requests++;
    for (int i = 0; i < j->n_seqs; i++)
        s->st.tokens_embedded += (uint64_t)j->lens[i];
    pthread_cond_broadcast(&s->e_cv);
    pthread_mutex_unlock(&s->mu);
}

/* One model_embed call for the k requests jobs[0..k) (an encoder's, same
 * options): their inputs packed together, the vectors handed back to each.
 * False when it could not be done together (out of memory, or an error:
 * then each runs alone, so one request's failure stays its own). */
static bool embed_merged(Sched *s, SchedEmbedJob **jobs, int k) {
    long long n_tok = 0;
    int n_seq = 0, d = model_config(s->m)->n_embd;
    for (int i = 0; i < k; i++) {
        n_seq += jobs[i]->n_seqs;
        for (int q = 0; q < jobs[i]->n_seqs; q++)
            n_tok += jobs[i]->lens[q];
    }
    int32_t *tokens = malloc(sizeof *tokens * (size_t)n_tok);
    int32_t *lens = malloc(sizeof *lens * (size_t)n_seq);
    float *out = malloc(sizeof *out * (size_t)n_seq * (size_t)d);
    bool ok = tokens && lens && out;
    long long t = 0;
    int q0 = 0;
    for (int i = 0; ok && i < k; i++) {
        long long nt = 0;
        for (int q = 0; q < jobs[i]->n_seqs; q++)
            nt += jobs[i]->lens[q];
        memcpy(tokens + t, jobs[i]->tokens, sizeof *tokens * (size_t)nt);
        memcpy(lens + q0, jobs[i]->lens, sizeof *lens * (size_t)jobs[i]->n_seqs);
        t += nt;
        q0 += jobs[i]->n_seqs;
    }
    Err err = {0};
    double t0 = now();
    ok = ok && model_embed(s->m, tokens, lens, n_seq, &jobs[0]->opts, out, &err) == STATUS_OK;
    double share = (now() - t0) / k;
    for (int i = 0, q = 0; ok && i < k; q += jobs[i]->n_seqs, i++) {
        memcpy(jobs[i]->out, out + (size_t)q * (size_t)d,
               sizeof *out * (size_t)jobs[i]->n_seqs * (size_t)d);
        embed_done(s, jobs[i], STATUS_OK, share);
    }
    free(tokens);
    free(lens);
    free(out);
    return ok;
}

/* Run the queued embedding requests (engine thread, between steps). An
 * encoder's requests waiting together (same options, up to
 * SCHED_EMBED_MERGE inputs) run as one model_embed call, packed into as
 * few forward passes as n_batch allows. A decoder's request needs a free
 * sequence id and waits for one; it runs alone (its inputs go through the
 * KV cache one after another, so packing would gain nothing). */
static void run_embeds(Sched *s) {
    bool encoder = model_config(s->m)->encoder;
    SchedEmbedJob *jobs[SCHED_EMBED_MERGE];
    for (;;) {
        int k = 0, n_seq = 0;
        pthread_mutex_lock(&s->mu);
        while (s->e_head && (encoder || s->n_free_seq > 0) && k < SCHED_EMBED_MERGE) {
            SchedEmbedJob *j = s->e_head;
            if (k > 0 && (!encoder || n_seq + j->n_seqs > SCHED_EMBED_MERGE ||
                          j->opts.pooling != jobs[0]->opts.pooling ||
                          j->opts.normalize != jobs[0]->opts.normalize))
                break;
            s->e_head = j->next;
            if (!s->e_head)
                s->e_tail = NULL;
            jobs[k++] = j;
            n_seq += j->n_seqs;
        }
        pthread_mutex_unlock(&s->mu);
        if (k == 0)
            return;
        if (k > 1 && embed_merged(s, jobs, k))
            continue;
        for (int i = 0; i < k; i++) { /* alone */
            SchedEmbedJob *j = jobs[i];
            int seq = encoder ? 0 : s->free_seq[--s->n_free_seq];
            if (!encoder)
                model_seq_free(s->m, seq);
            j->opts.seq = seq;
            double t0 = now();
            Status st = model_embed(s->m, j->tokens, j->lens, j->n_seqs, &j->opts, j->out, &j->err);
            if (!encoder)
                s->free_seq[s->n_free_seq++] = seq;
            embed_done(s, j, st, now() - t0);
        }
    }
}

/* Fail the embedding requests still queued (the engine stops). */
static void fail_embeds(Sched *s) {
    pthread_mutex_lock(&s->mu);
    for (SchedEmbedJob *j = s->e_head; j; j = j->next) {
        j->st = err_set(&j->err, STATUS_BUSY, "sched: the engine is stopping");
        j->done = true;
    }
    s->e_head = s->e_tail = NULL;
    pthread_cond_broadcast(&s->e_cv);
    pthread_mutex_unlock(&s->mu);
}

static void *engine_main(void *arg) {
    Sched *s = arg;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        while (!s->stopping && s->n_run == 0 && !s->q_head && !s->e_head)
            pthread_cond_wait(&s->cv, &s->mu);
        bool stop = s->stopping;
        pthread_mutex_unlock(&s->mu);
        if (stop)
            break;
        run_embeds(s);
        reap_cancelled(s);
        admit(s);
        step(s);
        publish_state(s);
    }
    drain(s);
    fail_embeds(s);
    return NULL;
}

/* ---- lifecycle ------------------------------------------------------------ */

static void put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* What the cached K/V values depend on besides the tokens. */
static void model_identity(Sched *s) {
    const ModelConfig *c = model_config(s->m);
    uint32_t v[] = {(uint32_t)c->arch,
                    (uint32_t)c->n_vocab,
                    (uint32_t)c->n_embd,
                    (uint32_t)c->n_layers,
                    (uint32_t)c->n_heads,
                    (uint32_t)c->n_kv_heads,
                    (uint32_t)c->head_dim,
                    (uint32_t)c->n_ff,
                    (uint32_t)c->n_params,
                    (uint32_t)(c->n_params >> 32),
                    (uint32_t)tok_n_vocab(s->tok),
                    (uint32_t)s->bs};
    size_t n = sizeof v / sizeof *v;
    for (size_t i = 0; i < n; i++)
        put_u32(s->model_id + 4 * i, v[i]);
    s->model_id_len = 4 * n;
}

Status sched_new(Sched **out, Model *m, const Tokenizer *t, const SchedParams *p, Err *err) {
    *out = NULL;
    if (!m || !t || !p)
        return err_set(err, STATUS_INVALID, "sched: model, tokenizer and params are required");
    const ModelParams *mp = model_params(m);
    const ModelConfig *mc = model_config(m);
    if (tok_n_vocab(t) > mc->n_vocab)
        return err_set(err, STATUS_INVALID, "sched: tokenizer has %d tokens but the model only %d",
                       tok_n_vocab(t), mc->n_vocab);
    if (p->max_running < 0 || p->max_queue < 0 || p->prefill_chunk < 0)
        return err_set(err, STATUS_INVALID,
                       "sched: max_running %d, max_queue %d, prefill_chunk %d must be >= 0",
                       p->max_running, p->max_queue, p->prefill_chunk);
    Status st = pcache_global_init(err);
    if (st)
        return st;
    Sched *s = calloc(1, sizeof *s);
    if (!s)
        return err_set(err, STATUS_NOMEM, "sched: out of memory");
    s->m = m;
    s->tok = t;
    s->kv = model_kv(m);
    s->n_ctx = mp->n_ctx;
    s->n_batch = mp->n_batch;
    s->n_vocab = mc->n_vocab;
    s->bs = s->kv->block_size;
    s->n_seq_max = mp->n_seq_max;
    s->p = *p;
    if (s->p.max_running == 0)
        s->p.max_running = s->n_seq_max / SCHED_MAX_CHOICES;
    if (s->p.max_running < 1)
        s->p.max_running = 1;
    if (s->p.max_queue == 0)
        s->p.max_queue = SCHED_DEFAULT_QUEUE;
    if (s->p.prefill_chunk == 0)
        s->p.prefill_chunk = s->n_batch / 2;
    if (s->p.prefill_chunk < 1)
        s->p.prefill_chunk = 1;
    if (s->p.prefill_chunk > s->n_batch)
        s->p.prefill_chunk = s->n_batch;
    model_identity(s);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    pthread_cond_init(&s->e_cv, NULL);
    atomic_init(&s->cancel_gen, 0);

    /* logits rows per step: decode rows (one per running choice, at most
     * n_batch and n_seq_max) plus one per prefill that completes */
    int dec = s->n_seq_max < s->n_batch ? s->n_seq_max : s->n_batch;
    int pre = s->p.max_running < s->p.prefill_chunk ? s->p.max_running : s->p.prefill_chunk;
    s->max_logits = dec + pre < s->n_batch ? dec + pre : s->n_batch;
    s->run = calloc((size_t)s->p.max_running, sizeof *s->run);
    s->free_seq = malloc(sizeof *s->free_seq * (size_t)s->n_seq_max);
    s->rows = malloc(sizeof *s->rows * (size_t)s->n_batch);
    s->lreq = malloc(sizeof *s->lreq * (size_t)s->max_logits);
    s->lchoice = malloc(sizeof *s->lchoice * (size_t)s->max_logits);
    s->logits = malloc(sizeof *s->logits * (size_t)s->max_logits * (size_t)s->n_vocab);
    s->hit = malloc(sizeof *s->hit * (size_t)s->kv->max_seq_blocks);
    s->text = malloc(SCHED_TEXT_CAP);
    s->out = malloc(SCHED_OUT_CAP);
    s->draws = malloc(sizeof *s->draws * (size_t)s->n_batch);
    if (mp->n_threads > 1)
        s->tp = tpool_new(mp->n_threads);
    if (!s->run || !s->free_seq || !s->rows || !s->lreq || !s->lchoice || !s->logits || !s->hit ||
        !s->text || !s->out || !s->draws || (mp->n_threads > 1 && !s->tp)) {
        sched_free(s);
        return err_set(err, STATUS_NOMEM, "sched: out of memory for %d rows of %d logits",
                       s->max_logits, s->n_vocab);
    }
    for (int i = 0; i < s->n_seq_max; i++)
        s->free_seq[i] = s->n_seq_max - 1 - i;
    s->n_free_seq = s->n_seq_max;
    if (p->prefix_cache && !mc->encoder && !(s->pc = pcache_new(s->kv->n_blocks, err))) {
        sched_free(s);
        return err->status;
    }
    publish_state(s);
    *out = s;
    return STATUS_OK;
}

Status sched_start(Sched *s, Err *err) {
    pthread_mutex_lock(&s->mu);
    bool running = s->started;
    s->stopping = false;
    pthread_mutex_unlock(&s->mu);
    if (running)
        return err_set(err, STATUS_INVALID, "sched: already started");
    int rc = pthread_create(&s->thread, NULL, engine_main, s);
    if (rc != 0)
        return err_set(err, STATUS_NOMEM, "sched: cannot start the engine thread (error %d)", rc);
    pthread_mutex_lock(&s->mu);
    s->started = true;
    pthread_mutex_unlock(&s->mu);
    return STATUS_OK;
}

void sched_stop(Sched *s) {
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    bool running = s->started;
    s->stopping = true;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    if (!running)
        return;
    pthread_join(s->thread, NULL);
    pthread_mutex_lock(&s->mu);
    s->started = false;
    pthread_mutex_unlock(&s->mu);
}

void sched_free(Sched *s) {
    if (!s)
        return;
    sched_stop(s);
    if (s->run)
        drain(s); /* requests submitted while no engine ran */
    if (s->pc) {
        pcache_clear(s->pc, s->kv);
        pcache_free(s->pc);
    }
    fail_embeds(s);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    pthread_cond_destroy(&s->e_cv);
    free(s->run);
    free(s->free_seq);
    free(s->rows);
    free(s->lreq);
    free(s->lchoice);
    free(s->logits);
    free(s->hit);
    free(s->text);
    free(s->out);
    free(s->draws);
    tpool_free(s->tp);
    grammar_vocab_free(s->gvocab[0]);
    grammar_vocab_free(s->gvocab[1]);
    free(s);
}

/* ---- submit --------------------------------------------------------------- */

static Status check_params(const Sched *s, const int32_t *prompt, int n_prompt,
                           const SchedReqParams *p, SchedOnEvent cb, Err *err) {
    if (!p || !cb)
        return err_set(err, STATUS_INVALID, "sched: params and on_event are required");
    if (!prompt || n_prompt < 1)
        return err_set(err, STATUS_INVALID, "prompt: empty (%d tokens)", n_prompt);
    if (n_prompt >= s->n_ctx)
        return err_set(err, STATUS_LIMIT,
                       "context_length_exceeded: the prompt has %d tokens, the context holds %d "
                       "(and one more is needed to answer)",
                       n_prompt, s->n_ctx);
    for (int i = 0; i < n_prompt; i++)
        if (prompt[i] < 0 || prompt[i] >= s->n_vocab)
            return err_set(err, STATUS_INVALID, "prompt: token %d at index %d out of range [0, %d)",
                           (int)prompt[i], i, s->n_vocab);
    if (p->n_choices < 1 || p->n_choices > SCHED_MAX_CHOICES)
        return err_set(err, STATUS_INVALID, "n: %d out of range [1, %d]", p->n_choices,
                       SCHED_MAX_CHOICES);
    if (p->n_choices > s->n_seq_max || p->n_choices > s->n_batch)
        return err_set(err, STATUS_LIMIT,
                       "n: %d choices but the engine runs at most %d sequences (batch %d)",
                       p->n_choices, s->n_seq_max, s->n_batch);
    if (p->max_tokens < 1)
        return err_set(err, STATUS_INVALID, "max_tokens: %d must be >= 1", p->max_tokens);
    if (p->top_logprobs < 0 || p->top_logprobs > SCHED_MAX_TOP_LOGPROBS)
        return err_set(err, STATUS_INVALID, "top_logprobs: %d out of range [0, %d]",
                       p->top_logprobs, SCHED_MAX_TOP_LOGPROBS);
    if (p->top_logprobs > 0 && !p->logprobs)
        return err_set(err, STATUS_INVALID, "top_logprobs: needs logprobs");
    /* the sampling parameters, as sampler_new will see them at admission */
    Sampler *probe = sampler_new(&p->sampling, s->n_vocab, err);
    if (!probe)
        return err->status;
    sampler_free(probe);
    return STATUS_OK;
}

Status sched_submit(Sched *s, const int32_t *prompt, int n_prompt, const SchedReqParams *p,
                    SchedOnEvent on_event, void *ctx, SchedReq **out, Err *err) {
    if (out)
        *out = NULL;
    Status st = check_params(s, prompt, n_prompt, p, on_event, err);
    if (st)
        return st;
    int n = p->n_choices;
    int64_t target = (int64_t)n_prompt + p->max_tokens;
    if (target > s->n_ctx)
        target = s->n_ctx;
    int slack = n > 1 && n_prompt % s->bs != 0;
    int64_t res = reservation(s, n_prompt, n, (int)target, 0, slack);
    if (res > s->kv->n_blocks)
        return err_set(err, STATUS_LIMIT,
                       "request needs %lld KV blocks (%d choices x %d positions), the pool has %d",
                       (long long)res, n, (int)target, s->kv->n_blocks);

    SchedReq *r = calloc(1, sizeof *r + sizeof(Choice) * (size_t)n);
    if (!r)
        return err_set(err, STATUS_NOMEM, "sched: out of memory");
    r->s = s;
    atomic_init(&r->refs, 2);
    atomic_init(&r->cancel, false);
    r->n_prompt = n_prompt;
    r->n = n;
    r->target = (int)target;
    r->slack = slack;
    r->p = *p;
    r->p.stop = NULL;
    r->p.n_stop = 0;
    r->p.grammar = NULL;
    r->p.grammar_len = 0;
    r->cb = on_event;
    r->ctx = ctx;
    r->t_first = -1;
    r->state = RQ_QUEUED;
    for (int c = 0; c < n; c++)
        r->ch[c].seq = -1;
    int nb = p->sampling.n_bias;
    r->prompt = malloc(sizeof *r->prompt * (size_t)n_prompt);
    r->bias = malloc(sizeof *r->bias * (size_t)(nb > 0 ? nb : 1));
    if (!r->prompt || !r->bias) {
        req_free(r);
        return err_set(err, STATUS_NOMEM, "sched: out of memory for a prompt of %d tokens",
                       n_prompt);
    }
    memcpy(r->prompt, prompt, sizeof *r->prompt * (size_t)n_prompt);
    if (nb > 0)
        memcpy(r->bias, p->sampling.bias, sizeof *r->bias * (size_t)nb);
    r->p.sampling.bias = r->bias;
    if (p->grammar && (st = grammar_parse(&r->grammar, p->grammar, p->grammar_len, NULL, err))) {
        req_free(r);
        return st;
    }
    for (int c = 0; c < n; c++) {
        if ((st = stop_init(&r->ch[c].stop, p->stop, p->n_stop, err))) {
            req_free(r);
            return st;
        }
        r->ch[c].stop_ok = true;
    }
    /* prefix-cache keys: full blocks, never the one holding the last
     * prompt token (its logits must be computed) */
    if (s->pc && (r->n_hash = (n_prompt - 1) / s->bs) > 0) {
        r->hashes = malloc(sizeof *r->hashes * (size_t)r->n_hash);
        if (!r->hashes) {
            req_free(r);
            return err_set(err, STATUS_NOMEM, "sched: out of memory");
        }
        PCacheHash root;
        pcache_root(&root, p->tenant, SCHED_TENANT_BYTES, s->model_id, s->model_id_len);
        pcache_hash_blocks(r->hashes, &root, prompt, r->n_hash, s->bs);
    }

    r->t_submit = now();
    pthread_mutex_lock(&s->mu);
    if (s->n_queued >= s->p.max_queue) {
        int q = s->n_queued;
        pthread_mutex_unlock(&s->mu);
        req_free(r);
        return err_set(err, STATUS_BUSY, "sched: the queue is full (%d requests waiting)", q);
    }
    if (s->q_tail)
        s->q_tail->next = r;
    else
        s->q_head = r;
    s->q_tail = r;
    s->n_queued++;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    if (out)
        *out = r;
    else
        sched_release(r);
    return STATUS_OK;
}

void sched_stats(Sched *s, SchedStats *st) {
    pthread_mutex_lock(&s->mu);
    *st = s->st;
    st->queued = s->n_queued;
    pthread_mutex_unlock(&s->mu);
    st->kv_bytes_resident = kv_resident_bytes(model_kv(s->m));
}

int sched_n_ctx(const Sched *s) { return s->n_ctx; }

/* ---- embeddings ----------------------------------------------------------- */

Status sched_embed(Sched *s, const int32_t *tokens, const int32_t *lens, int n_seqs, bool normalize,
                   float *out, Err *err) {
    if (n_seqs < 1 || n_seqs > SCHED_MAX_EMBED_INPUTS)
        return err_set(err, STATUS_INVALID, "input: %d inputs out of range [1, %d]", n_seqs,
                       SCHED_MAX_EMBED_INPUTS);
    const ModelConfig *mc = model_config(s->m);
    int limit = mc->encoder ? (s->n_batch < s->n_ctx ? s->n_batch : s->n_ctx) : s->n_ctx;
    long long off = 0;
    for (int i = 0; i < n_seqs; i++) {
        if (lens[i] < 1)
            return err_set(err, STATUS_INVALID, "input[%d]: empty (0 tokens)", i);
        if (lens[i] > limit)
            return err_set(err, STATUS_LIMIT,
                           "context_length_exceeded: input[%d] has %d tokens, the model takes at "
                           "most %d",
                           i, lens[i], limit);
        for (int k = 0; k < lens[i]; k++)
            if (tokens[off + k] < 0 || tokens[off + k] >= s->n_vocab)
                return err_set(err, STATUS_INVALID, "input[%d]: token %d out of range [0, %d)", i,
                               (int)tokens[off + k], s->n_vocab);
        off += lens[i];
    }
    SchedEmbedJob j = {.tokens = tokens,
                       .lens = lens,
                       .n_seqs = n_seqs,
                       .opts = {.pooling = MODEL_POOL_DEFAULT, .normalize = normalize},
                       .out = out};
    pthread_mutex_lock(&s->mu);
    if (s->stopping || !s->started) {
        pthread_mutex_unlock(&s->mu);
        return err_set(err, STATUS_BUSY, "sched: the engine is not running");
    }
    if (s->e_tail)
        s->e_tail->next = &j;
    else
        s->e_head = &j;
    s->e_tail = &j;
    pthread_cond_signal(&s->cv);
    while (!j.done)
        pthread_cond_wait(&s->e_cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
    if (j.st)
        *err = j.err;
    return j.st;
}
