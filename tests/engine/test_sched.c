/* test_sched.c - the serving scheduler against the single-sequence loop.
 *
 * The oracle is gen_generate() (engine/generate.c) on a second instance of
 * the same random model: one prompt alone, one sequence, no batching, no
 * prefix cache. Model rows are bit-identical whatever else is in the batch
 * (model.h), so with the same sampler parameters and seed every request -
 * greedy or sampled - must give exactly the oracle's tokens, text and
 * finish reason however the scheduler interleaves it with others, chunks
 * its prompt, shares its prompt between choices (choice c uses seed + c)
 * or takes it from the prefix cache. Logprobs are checked against a
 * log-softmax computed here in double from the oracle model's logits.
 *
 * Also: event order per request, cancellation while queued / in prefill /
 * in decode (and from inside a callback), stop with requests pending,
 * submit-time errors, admission under a KV pool too small for everyone,
 * prefix-cache hits, tenant isolation and eviction, and that every KV block
 * comes back (with the cache's own blocks accounted for). */
#include <criterion/criterion.h>

#include "../testutil.h"
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/rng.h"
#include "engine/generate.h"
#include "engine/sched.h"
#include "model/randmodel.h"
#include "sample/grammar.h"
#include "sample/stop.h"

#define MAXT 160 /* tokens recorded per choice */
#define MAXTEXT 8192
#define EOS_ID 2
#define IM_END 260

/* ---- fixture ------------------------------------------------------------- */

typedef struct {
    char dir[64], path[128];
    Model *m;  /* the scheduler's */
    Model *mo; /* the oracle's */
    Tokenizer *tok;
    GenSession gs;
    Sched *s;
    int n_ctx;
} Fix;

static void fix_init(Fix *f, const ModelParams *mp, const SchedParams *sp) {
    memset(f, 0, sizeof *f);
    strcpy(f->dir, "/tmp/cgpt_sched_XXXXXX");
    cr_assert(mkdtemp(f->dir));
    snprintf(f->path, sizeof f->path, "%s/m.gguf", f->dir);
    RandModelSpec s = tu_tiny_llama(512);
    Err err = {0};
    cr_assert(randmodel_write(f->path, &s, &err) == STATUS_OK, "%s", err.msg);
    cr_assert(model_load(&f->m, f->path, mp, &err) == STATUS_OK, "%s", err.msg);
    ModelParams op = {.n_threads = 1, .n_ctx = mp->n_ctx, .n_seq_max = 1, .n_batch = 64};
    cr_assert(model_load(&f->mo, f->path, &op, &err) == STATUS_OK, "%s", err.msg);
    cr_assert(tok_load(&f->tok, model_gguf(f->m), &err) == STATUS_OK, "%s", err.msg);
    cr_assert(gen_session_init(&f->gs, f->mo, f->tok, 0, &err) == STATUS_OK, "%s", err.msg);
    cr_assert(sched_new(&f->s, f->m, f->tok, sp, &err) == STATUS_OK, "%s", err.msg);
    f->n_ctx = model_params(f->m)->n_ctx;
    cr_assert(sched_n_ctx(f->s) == f->n_ctx);
}

static void fix_start(Fix *f) {
    Err err = {0};
    cr_assert(sched_start(f->s, &err) == STATUS_OK, "%s", err.msg);
}

static void fix_done(Fix *f) {
    sched_free(f->s);
    cr_expect_eq(model_kv_free_blocks(f->m), model_kv_total_blocks(f->m),
                 "after sched_free every block is back (%d of %d free)", model_kv_free_blocks(f->m),
                 model_kv_total_blocks(f->m));
    gen_session_free(&f->gs);
    tok_free(f->tok);
    model_free(f->m);
    model_free(f->mo);
    unlink(f->path);
    rmdir(f->dir);
}

/* Two threads: the scheduler then samples rows on its own pool too. */
static ModelParams model_params_default(void) {
    return (ModelParams){
        .n_threads = 2, .n_ctx = 128, .n_seq_max = 16, .n_batch = 32, .kv_block_size = 4};
}

static SchedParams sched_params_default(void) {
    return (SchedParams){.max_running = 8, .max_queue = 64, .prefill_chunk = 8};
}

static void rand_prompt(int32_t *ids, int n, uint64_t seed) {
    Rng r;
    rng_seed(&r, seed);
    for (int i = 0; i < n; i++)
        ids[i] = 3 + (int32_t)(rng_u64(&r) % 256); /* byte tokens */
}

static SchedReqParams greedy(int max_tokens) {
    SchedReqParams p = {0};
    p.n_choices = 1;
    p.max_tokens = max_tokens;
    p.sampling = sampler_defaults();
    p.sampling.temperature = 0;
    p.sampling.penalty_last_n = 0;
    return p;
}

static SchedReqParams sampled(int max_tokens, uint64_t seed) {
    SchedReqParams p = greedy(max_tokens);
    p.sampling = sampler_defaults(); /* temp 0.8, top_k 40, top_p 0.95, min_p 0.05 */
    p.sampling.temperature = 1.0f;
    p.sampling.presence_penalty = 0.3f;
    p.sampling.penalty_last_n = 32;
    p.sampling.seed = seed;
    return p;
}

/* ---- the oracle -------------------------------------------------------- */

typedef struct {
    int32_t ids[MAXT];
    int n;
    char text[MAXTEXT];
    size_t n_text;
    GenFinish finish;
} Want;

static bool want_text(void *ctx, const char *t, size_t n) {
    Want *w = ctx;
    cr_assert(w->n_text + n < MAXTEXT);
    memcpy(w->text + w->n_text, t, n);
    w->n_text += n;
    return true;
}

/* gen_generate alone, for choice 'c' of a request with params p. */
static void oracle(Fix *f, const int32_t *prompt, int np, const SchedReqParams *p, int c, Want *w) {
    memset(w, 0, sizeof *w);
    GenParams gp = {.max_tokens = p->max_tokens,
                    .sampling = p->sampling,
                    .stop = p->stop,
                    .n_stop = p->n_stop,
                    .ignore_eos = p->ignore_eos,
                    .render_special = false,
                    .grammar = p->grammar,
                    .grammar_len = p->grammar_len};
    gp.sampling.seed += (uint64_t)c;
    cr_assert(p->max_tokens <= MAXT);
    GenStats st;
    Err err = {0};
    gen_session_reset(&f->gs);
    cr_assert(gen_generate(&f->gs, prompt, np, &gp, want_text, w, w->ids, &st, &err) == STATUS_OK,
              "%s", err.msg);
    w->n = st.n_generated;
    w->finish = st.finish;
}

/* ---- recording events ------------------------------------------------------ */

typedef struct {
    int32_t tok[MAXT];
    float lp[MAXT];
    SchedTopLogprob top[MAXT][SCHED_MAX_TOP_LOGPROBS];
    int n_top[MAXT];
    int n_tok;
    char text[MAXTEXT];
    size_t n_text;
    int n_finish;
    GenFinish finish;
} RecChoice;

typedef struct Live {
    pthread_mutex_t mu;
    int cur, max;
} Live;

typedef struct Rec {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int n; /* choices */
    RecChoice ch[SCHED_MAX_CHOICES];
    int n_end;
    SchedEvent end;
    char error[ERR_MSG_MAX];
    int bad;
    char bad_msg[256];
    int total_tokens;
    /* hooks, run on the engine thread */
    SchedReq *self;        /* for cancel_self_after */
    int cancel_self_after; /* > 0: sched_cancel(self) at this many tokens */
    SchedReq *other;       /* sched_cancel(other) at cancel_other_after tokens */
    int cancel_other_after;
    Live *live; /* concurrency: between first token and END */
    bool started;
    /* gate: at gate_at tokens the callback (so the engine) waits until the
     * test thread calls gate_release - the engine frozen mid-step */
    int gate_at;
    bool gated, released;
    /* at END: how many tokens 'peer' had (read on the engine thread, which
     * is the only writer) */
    struct Rec *peer;
    int peer_tokens_at_end, peer_ended_at_end;
} Rec;

static Rec *rec_new(int n) {
    Rec *r = calloc(1, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    r->n = n;
    return r;
}

static void rec_free(Rec *r) {
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r);
}

static void rec_bad(Rec *r, const char *msg) {
    if (!r->bad++)
        snprintf(r->bad_msg, sizeof r->bad_msg, "%s", msg);
}

static void append(RecChoice *c, const char *t, size_t n) {
    if (c->n_text + n < MAXTEXT) {
        memcpy(c->text + c->n_text, t, n);
        c->n_text += n;
    }
}

static void on_event(void *ctx, const SchedEvent *ev) {
    Rec *r = ctx;
    SchedReq *cancel = NULL;
    pthread_mutex_lock(&r->mu);
    if (r->n_end)
        rec_bad(r, "event after END");
    if (ev->type != SCHED_EV_END && (ev->choice < 0 || ev->choice >= r->n)) {
        rec_bad(r, "choice out of range");
    } else if (ev->type == SCHED_EV_TOKEN) {
        RecChoice *c = &r->ch[ev->choice];
        if (c->n_finish)
            rec_bad(r, "TOKEN after FINISH");
        if (c->n_tok < MAXT) {
            c->tok[c->n_tok] = ev->token;
            c->lp[c->n_tok] = ev->logprob;
            c->n_top[c->n_tok] = ev->n_top;
            if (ev->n_top > SCHED_MAX_TOP_LOGPROBS)
                rec_bad(r, "n_top too large");
            else if (ev->n_top > 0)
                memcpy(c->top[c->n_tok], ev->top, sizeof(SchedTopLogprob) * (size_t)ev->n_top);
            c->n_tok++;
        }
        append(c, ev->text, ev->len);
        r->total_tokens++;
        if (r->live && !r->started) {
            r->started = true;
            pthread_mutex_lock(&r->live->mu);
            if (++r->live->cur > r->live->max)
                r->live->max = r->live->cur;
            pthread_mutex_unlock(&r->live->mu);
        }
        if (r->cancel_self_after > 0 && r->total_tokens == r->cancel_self_after)
            cancel = r->self;
        if (r->cancel_other_after > 0 && r->total_tokens == r->cancel_other_after) {
            sched_cancel(r->other);
        }
        if (r->gate_at > 0 && r->total_tokens == r->gate_at) {
            r->gated = true;
            pthread_cond_broadcast(&r->cv);
            while (!r->released)
                pthread_cond_wait(&r->cv, &r->mu);
        }
    } else if (ev->type == SCHED_EV_FINISH) {
        RecChoice *c = &r->ch[ev->choice];
        if (c->n_finish++)
            rec_bad(r, "two FINISH for one choice");
        c->finish = ev->finish;
        append(c, ev->text, ev->len);
        if (ev->finish == GEN_FINISH_ERROR && ev->error)
            snprintf(r->error, sizeof r->error, "%s", ev->error);
    } else {
        for (int i = 0; i < r->n; i++)
            if (r->ch[i].n_finish != 1)
                rec_bad(r, "END before every FINISH");
        r->end = *ev;
        r->end.text = NULL;
        r->end.error = NULL;
        if (ev->error)
            snprintf(r->error, sizeof r->error, "%s", ev->error);
        if (r->peer) {
            r->peer_tokens_at_end = r->peer->total_tokens;
            r->peer_ended_at_end = r->peer->n_end;
        }
        if (r->live && r->started) {
            pthread_mutex_lock(&r->live->mu);
            r->live->cur--;
            pthread_mutex_unlock(&r->live->mu);
        }
        r->n_end++;
    }
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    if (cancel)
        sched_cancel(cancel);
}

static void deadline(struct timespec *ts, int seconds) {
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += seconds;
}

static void wait_end(Rec *r) {
    struct timespec ts;
    deadline(&ts, 60);
    pthread_mutex_lock(&r->mu);
    int rc = 0;
    while (!r->n_end && rc == 0)
        rc = pthread_cond_timedwait(&r->cv, &r->mu, &ts);
    int ended = r->n_end;
    pthread_mutex_unlock(&r->mu);
    cr_assert(ended, "request did not end within 60 s");
}

static void wait_tokens(Rec *r, int n) {
    struct timespec ts;
    deadline(&ts, 60);
    pthread_mutex_lock(&r->mu);
    int rc = 0;
    while (r->total_tokens < n && !r->n_end && rc == 0)
        rc = pthread_cond_timedwait(&r->cv, &r->mu, &ts);
    pthread_mutex_unlock(&r->mu);
    cr_assert(rc == 0, "no %d tokens within 60 s", n);
}

static void gate_wait(Rec *r) {
    struct timespec ts;
    deadline(&ts, 60);
    pthread_mutex_lock(&r->mu);
    int rc = 0;
    while (!r->gated && rc == 0)
        rc = pthread_cond_timedwait(&r->cv, &r->mu, &ts);
    pthread_mutex_unlock(&r->mu);
    cr_assert(rc == 0, "the gate was not reached within 60 s");
}

static void gate_release(Rec *r) {
    pthread_mutex_lock(&r->mu);
    r->released = true;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

static SchedReq *submit(Fix *f, const int32_t *prompt, int np, const SchedReqParams *p, Rec *r) {
    SchedReq *h = NULL;
    Err err = {0};
    Status st = sched_submit(f->s, prompt, np, p, on_event, r, &h, &err);
    cr_assert(st == STATUS_OK, "sched_submit: %s", err.msg);
    cr_assert_not_null(h);
    r->self = h;
    return h;
}

/* Every choice of r equals the oracle for that choice. */
static void expect_like(const Rec *r, int c, const Want *w, const char *what) {
    const RecChoice *g = &r->ch[c];
    cr_expect_eq(r->bad, 0, "%s: protocol: %s", what, r->bad_msg);
    cr_expect_eq(g->n_tok, w->n, "%s choice %d: %d tokens, oracle %d", what, c, g->n_tok, w->n);
    int n = g->n_tok < w->n ? g->n_tok : w->n;
    for (int i = 0; i < n; i++)
        if (g->tok[i] != w->ids[i]) {
            cr_expect_eq(g->tok[i], w->ids[i], "%s choice %d: token %d is %d, oracle %d", what, c,
                         i, g->tok[i], w->ids[i]);
            break;
        }
    cr_expect(g->n_text == w->n_text && !memcmp(g->text, w->text, w->n_text),
              "%s choice %d: text differs (%zu vs %zu bytes)", what, c, g->n_text, w->n_text);
    cr_expect_eq(g->finish, w->finish, "%s choice %d: finish %d, oracle %d", what, c, g->finish,
                 w->finish);
}

static int count_generated(const Rec *r) {
    int n = 0;
    for (int c = 0; c < r->n; c++)
        n += r->ch[c].n_tok;
    return n;
}

/* ---- batching is invisible ---------------------------------------------- */

#define N_REQ 8
static const int PLEN[N_REQ] = {3, 5, 9, 17, 30, 41, 4, 60};
static const int MAXTOK[N_REQ] = {12, 20, 7, 15, 10, 25, 18, 9};

/* Submit 4, let them run, add 2, wait for one to end, add 2 more. */
static void run_staggered(Fix *f, int32_t prompts[N_REQ][64], SchedReqParams *ps, Rec **recs,
                          SchedReq **hs) {
    for (int i = 0; i < 4; i++)
        hs[i] = submit(f, prompts[i], PLEN[i], &ps[i], recs[i]);
    wait_tokens(recs[0], 3);
    for (int i = 4; i < 6; i++)
        hs[i] = submit(f, prompts[i], PLEN[i], &ps[i], recs[i]);
    wait_end(recs[1]);
    for (int i = 6; i < N_REQ; i++)
        hs[i] = submit(f, prompts[i], PLEN[i], &ps[i], recs[i]);
    for (int i = 0; i < N_REQ; i++)
        wait_end(recs[i]);
}

/* A grammar for the byte vocabulary: words in parentheses, then the end. */
static const char WORDS_GBNF[] = "root ::= (\"(\" [a-z]{1,3} \")\" \" \"?){1,4}\n";

static void batching_invisible(bool sample, const char *grammar) {
    Fix f;
    ModelParams mp = model_params_default();
    SchedParams sp = sched_params_default();
    fix_init(&f, &mp, &sp);
    int32_t prompts[N_REQ][64];
    SchedReqParams ps[N_REQ];
    Want want[N_REQ];
    for (int i = 0; i < N_REQ; i++) {
        rand_prompt(prompts[i], PLEN[i], 100 + (uint64_t)i);
        ps[i] = sample ? sampled(MAXTOK[i], 7000 + (uint64_t)i) : greedy(MAXTOK[i]);
        ps[i].ignore_eos = i % 2 == 1;
        ps[i].grammar = grammar;
        ps[i].grammar_len = grammar ? strlen(grammar) : 0;
        oracle(&f, prompts[i], PLEN[i], &ps[i], 0, &want[i]);
    }
    fix_start(&f);
    Rec *recs[N_REQ];
    SchedReq *hs[N_REQ];
    for (int i = 0; i < N_REQ; i++)
        recs[i] = rec_new(1);
    run_staggered(&f, prompts, ps, recs, hs);
    int total = 0, serial_steps = 0;
    for (int i = 0; i < N_REQ; i++) {
        char what[64];
        snprintf(what, sizeof what, "%s%s request %d (prompt %d)", sample ? "sampled" : "greedy",
                 grammar ? " under a grammar" : "", i, PLEN[i]);
        expect_like(recs[i], 0, &want[i], what);
        if (grammar) { /* a prefix of a sentence; whole when the grammar ended it */
            Grammar *g = NULL;
            GrammarState *gs = NULL;
            Err err = {0};
            cr_assert(grammar_parse(&g, grammar, strlen(grammar), NULL, &err) == STATUS_OK);
            cr_assert(grammar_state_new(g, &gs, &err) == STATUS_OK);
            const RecChoice *rc = &recs[i]->ch[0];
            cr_expect(grammar_accept_utf8(gs, rc->text, rc->n_text), "%s: '%.*s' left the grammar",
                      what, (int)rc->n_text, rc->text);
            if (rc->finish == GEN_FINISH_EOG)
                cr_expect(grammar_complete(gs), "%s: ended on an unfinished sentence", what);
            grammar_state_free(gs);
            grammar_free(g);
        }
        cr_expect_eq(recs[i]->end.n_prompt, PLEN[i]);
        cr_expect_eq(recs[i]->end.n_cached, 0);
        cr_expect_eq(recs[i]->end.n_generated, want[i].n);
        cr_expect_eq(recs[i]->end.finish, want[i].finish);
        cr_expect(recs[i]->end.t_queue >= 0 && recs[i]->end.t_first >= recs[i]->end.t_queue);
        total += want[i].n;
        serial_steps += want[i].n + (PLEN[i] + 7) / 8;
        sched_release(hs[i]);
    }
    sched_stop(f.s); /* the step's counters land after its events */
    SchedStats st;
    sched_stats(f.s, &st);
    cr_expect_eq(st.tokens_generated, (uint64_t)total);
    cr_expect_eq(st.requests_done, (uint64_t)N_REQ);
    cr_expect_eq(st.requests_cancelled, 0);
    cr_expect_eq(st.running, 0);
    cr_expect(st.steps > 0 && st.steps < (uint64_t)serial_steps,
              "%llu steps: requests shared forwards (alone: %d)", (unsigned long long)st.steps,
              serial_steps);
    cr_expect_eq(model_kv_free_blocks(f.m), model_kv_total_blocks(f.m), "no block leaked");
    for (int i = 0; i < N_REQ; i++)
        rec_free(recs[i]);
    fix_done(&f);
}

Test(sched_batching, greedy_equals_single_sequence) { batching_invisible(false, NULL); }

Test(sched_batching, seeded_sampling_equals_single_sequence) { batching_invisible(true, NULL); }

/* Under a grammar (sample/constrain.h) too, and every output follows it. */
Test(sched_batching, grammar_equals_single_sequence) {
    batching_invisible(false, WORDS_GBNF);
    batching_invisible(true, WORDS_GBNF);
}

/* The same sampled requests twice, with different timing: the same tokens. */
Test(sched_batching, seeded_sampling_reproducible) {
    Fix f;
    ModelParams mp = model_params_default();
    SchedParams sp = sched_params_default();
    sp.prefill_chunk = 5;
    fix_init(&f, &mp, &sp);
    int32_t prompts[N_REQ][64];
    SchedReqParams ps[N_REQ];
    for (int i = 0; i < N_REQ; i++) {
        rand_prompt(prompts[i], PLEN[i], 300 + (uint64_t)i);
        ps[i] = sampled(MAXTOK[i], 99);
        ps[i].ignore_eos = true;
    }
    fix_start(&f);
    Rec *a[N_REQ], *b[N_REQ];
    SchedReq *ha[N_REQ], *hb[N_REQ];
    for (int i = 0; i < N_REQ; i++) {
        a[i] = rec_new(1);
        b[i] = rec_new(1);
    }
    run_staggered(&f, prompts, ps, a, ha);
    for (int i = N_REQ - 1; i >= 0; i--) /* all at once, in reverse order */
        hb[i] = submit(&f, prompts[i], PLEN[i], &ps[i], b[i]);
    for (int i = 0; i < N_REQ; i++) {
        wait_end(b[i]);
        cr_expect_eq(a[i]->ch[0].n_tok, MAXTOK[i]);
        cr_expect_eq(b[i]->ch[0].n_tok, a[i]->ch[0].n_tok);
        cr_expect(!memcmp(a[i]->ch[0].tok, b[i]->ch[0].tok, sizeof(int32_t) * MAXTOK[i]),
                  "request %d: tokens differ between runs", i);
        sched_release(ha[i]);
        sched_release(hb[i]);
        rec_free(a[i]);
        rec_free(b[i]);
    }
    fix_done(&f);
}

/* ---- n > 1 ------------------------------------------------------------------ */

static void n_choices(bool sample, int np, int n) {
    Fix f;
    ModelParams mp = model_params_default();
    SchedParams sp = sched_params_default();
    fix_init(&f, &mp, &sp);
    int32_t prompt[64];
    rand_prompt(prompt, np, 555 + (uint64_t)np);
    SchedReqParams p = sample ? sampled(16, 4242) : greedy(16);
    p.n_choices = n;
    p.ignore_eos = true;
    Want want[SCHED_MAX_CHOICES];
    for (int c = 0; c < n; c++)
        oracle(&f, prompt, np, &p, sample ? c : 0, &want[c]);
    fix_start(&f);
    Rec *r = rec_new(n);
    /* a neighbour decoding at the same time */
    int32_t other[20];
    rand_prompt(other, 20, 9);
    SchedReqParams po = greedy(30);
    Want wo;
    oracle(&f, other, 20, &po, 0, &wo);
    Rec *ro = rec_new(1);
    SchedReq *ho = submit(&f, other, 20, &po, ro);
    SchedReq *h = submit(&f, prompt, np, &p, r);
    wait_end(r);
    wait_end(ro);
    char what[64];
    for (int c = 0; c < n; c++) {
        snprintf(what, sizeof what, "n=%d %s prompt %d", n, sample ? "sampled" : "greedy", np);
        expect_like(r, c, &want[c], what);
    }
    expect_like(ro, 0, &wo, "neighbour");
    if (sample) { /* the seeds differ, so (almost surely) do the choices */
        int same = 0;
        for (int c = 1; c < n; c++)
            same += !memcmp(r->ch[c].tok, r->ch[0].tok, sizeof(int32_t) * 16);
        cr_expect_lt(same, n - 1, "sampled choices are not all identical");
    }
    cr_expect_eq(r->end.n_generated, count_generated(r));
    sched_stop(f.s);
    cr_expect_eq(model_kv_free_blocks(f.m), model_kv_total_blocks(f.m), "no block leaked");
    sched_release(h);
    sched_release(ho);
    rec_free(r);
    rec_free(ro);
    fix_done(&f);
}

Test(sched_choices, greedy_all_equal_single) {
    n_choices(false, 10, 3); /* the prompt ends inside a block: shared and copied */
    n_choices(false, 12, 2); /* the prompt ends on a block boundary */
}

/* Each choice writes different tokens into the shared partial block: copy
 * on write must keep them apart, or they would not match their oracles. */
Test(sched_choices, sampled_choices_use_seed_plus_index) {
    n_choices(true, 10, 4);
    n_choices(true, 17, 3);
}

/* ---- finishing ------------------------------------------------------------ */

static size_t utf8_len(unsigned char c) { return c < 0x80 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4; }

Test(sched_finish, stop_strings_max_tokens_eog_context) {
    Fix f;
    ModelParams mp = model_params_default();
    SchedParams sp = sched_params_default();
    fix_init(&f, &mp, &sp);
    fix_start(&f);
    int32_t prompt[128];
    rand_prompt(prompt, 128, 77);

    /* a stop string taken from the middle of the unconstrained output */
    SchedReqParams p = greedy(40);
    p.ignore_eos = true;
    Want free_run;
    oracle(&f, prompt, 12, &p, 0, &free_run);
    cr_assert(free_run.n_text > 12, "the model writes some text (%zu bytes)", free_run.n_text);
    size_t at = 0;
    for (int k = 0; k < 3; k++)
        at += utf8_len((unsigned char)free_run.text[at]);
    size_t len = utf8_len((unsigned char)free_run.text[at]);
    len += utf8_len((unsigned char)free_run.text[at + len]);
    char stop[16] = {0};
    memcpy(stop, free_run.text + at, len);
    const char *stops[] = {"\x01never", stop};
    p.stop = stops;
    p.n_stop = 2;
    Want w;
    oracle(&f, prompt, 12, &p, 0, &w);
    Rec *r = rec_new(1);
    SchedReq *h = submit(&f, prompt, 12, &p, r);
    wait_end(r);
    expect_like(r, 0, &w, "stop");
    cr_expect_eq(r->ch[0].finish, GEN_FINISH_STOP);
    /* independent: the text is the free run's up to the first occurrence */
    const char *first = memmem(free_run.text, free_run.n_text, stop, len);
    cr_assert_not_null(first);
    size_t cut = (size_t)(first - free_run.text);
    cr_expect(r->ch[0].n_text == cut && !memcmp(r->ch[0].text, free_run.text, cut),
              "text stops before \"%s\" (%zu bytes, want %zu)", stop, r->ch[0].n_text, cut);
    sched_release(h);
    rec_free(r);

    /* max_tokens */
    p = greedy(5);
    p.ignore_eos = true;
    r = rec_new(1);
    h = submit(&f, prompt, 20, &p, r);
    wait_end(r);
    oracle(&f, prompt, 20, &p, 0, &w);
    expect_like(r, 0, &w, "max_tokens");
    cr_expect_eq(r->ch[0].n_tok, 5);
    cr_expect_eq(r->ch[0].finish, GEN_FINISH_LENGTH);
    sched_release(h);
    rec_free(r);

    /* end of generation: biased so that <|im_end|> comes first */
    LogitBias eog[1] = {{IM_END, 50.0f}};
    p = greedy(8);
    p.sampling.bias = eog;
    p.sampling.n_bias = 1;
    r = rec_new(1);
    h = submit(&f, prompt, 7, &p, r);
    wait_end(r);
    oracle(&f, prompt, 7, &p, 0, &w);
    expect_like(r, 0, &w, "eog");
    cr_expect_eq(r->ch[0].finish, GEN_FINISH_EOG);
    cr_expect_eq(r->ch[0].n_tok, 0, "the end-of-generation token is not emitted");
    cr_expect_eq(r->end.n_generated, 0);
    cr_expect(r->end.t_first < 0, "no token, no time to first token");
    sched_release(h);
    rec_free(r);
    /* ... unless ignore_eos */
    p.ignore_eos = true;
    r = rec_new(1);
    h = submit(&f, prompt, 7, &p, r);
    wait_end(r);
    oracle(&f, prompt, 7, &p, 0, &w);
    expect_like(r, 0, &w, "ignore_eos");
    cr_expect_eq(r->ch[0].n_tok, 8);
    cr_expect_eq(r->ch[0].tok[0], IM_END);
    cr_expect_eq(r->ch[0].finish, GEN_FINISH_LENGTH);
    sched_release(h);
    rec_free(r);

    /* the context fills: n_ctx 128, prompt 120 -> 9 tokens (the last one
     * is sampled from position 127 and never fed) */
    p = greedy(50);
    p.ignore_eos = true;
    r = rec_new(1);
    h = submit(&f, prompt, 120, &p, r);
    wait_end(r);
    oracle(&f, prompt, 120, &p, 0, &w);
    expect_like(r, 0, &w, "context");
    cr_expect_eq(r->ch[0].finish, GEN_FINISH_CONTEXT);
    cr_expect_eq(r->ch[0].n_tok, f.n_ctx - 120 + 1);
    sched_release(h);
    rec_free(r);
    fix_done(&f);
}

/* ---- logprobs ---------------------------------------------------------------- */

/* log-softmax rows of the oracle model for 'ids' positions np-1 .. np+n-2. */
static double *ref_logprobs(Fix *f, const int32_t *prompt, int np, const int32_t *gen, int n) {
    int V = model_config(f->mo)->n_vocab;
    float *lg = malloc(sizeof(float) * (size_t)V);
    double *out = malloc(sizeof(double) * (size_t)V * (size_t)n);
    gen_session_reset(&f->gs);
    Err err = {0};
    for (int p = 0; p < np + n - 1; p++) {
        int32_t t = p < np ? prompt[p] : gen[p - np];
        BatchRow row = {t, p, 0, p >= np - 1};
        cr_assert(model_forward(f->mo, &row, 1, lg, &err) == STATUS_OK, "%s", err.msg);
        if (p < np - 1)
            continue;
        double *o = out + (size_t)(p - (np - 1)) * V, mx = -INFINITY, z = 0;
        for (int v = 0; v < V; v++)
            mx = lg[v] > mx ? lg[v] : mx;
        for (int v = 0; v < V; v++)
            z += exp((double)lg[v] - mx);
        for (int v = 0; v < V; v++)
            o[v] = (double)lg[v] - mx - log(z);
    }
    gen_session_reset(&f->gs);
    free(lg);
    return out;
}

Test(sched_logprobs, equal_log_softmax_of_single_run) {
    Fix f;
    ModelParams mp = model_params_default();
    SchedParams sp = sched_params_default();
    fix_init(&f, &mp, &sp);
    fix_start(&f);
    int V = model_config(f.m)->n_vocab;
    const int lens[3] = {6, 23, 9};
    const int tops[3] = {5, 0, SCHED_MAX_TOP_LOGPROBS};
    int32_t prompts[3][32];
    Rec *r[3];
    SchedReq *h[3];
    SchedReqParams p[3];
    for (int i = 0; i < 3; i++) {
        rand_prompt(prompts[i], lens[i], 800 + (uint64_t)i);
        p[i] = greedy(12);
        p[i].ignore_eos = true;
        p[i].logprobs = true;
        p[i].top_logprobs = tops[i];
        r[i] = rec_new(1);
        h[i] = submit(&f, prompts[i], lens[i], &p[i], r[i]);
    }
    for (int i = 0; i < 3; i++) {
        wait_end(r[i]);
        RecChoice *c = &r[i]->ch[0];
        cr_assert_eq(c->n_tok, 12);
        double *ref = ref_logprobs(&f, prompts[i], lens[i], c->tok, c->n_tok);
        int bad = 0;
        for (int t = 0; t < c->n_tok && bad < 3; t++) {
            const double *lp = ref + (size_t)t * V;
            double want = lp[c->tok[t]];
            if (fabs(c->lp[t] - want) > 1e-5) {
                cr_expect(0, "request %d token %d: logprob %.9g, want %.9g", i, t, c->lp[t], want);
                bad++;
            }
            cr_expect_eq(c->n_top[t], tops[i]);
            for (int k = 0; k < c->n_top[t]; k++) {
                /* the k-th best by the reference, ties to the lower id */
                const SchedTopLogprob *e = &c->top[t][k];
                int better = 0;
                for (int v = 0; v < V; v++)
                    better += lp[v] > lp[e->id] || (lp[v] == lp[e->id] && v < e->id);
                if (better != k || fabs(e->logprob - lp[e->id]) > 1e-5) {
                    cr_expect(0,
                              "request %d token %d top %d: id %d (rank %d) logprob %.9g, want %.9g",
                              i, t, k, e->id, better, e->logprob, lp[e->id]);
                    bad++;
                    break;
                }
            }
            if (c->n_top[t] > 0)
                cr_expect_eq(c->top[t][0].id, c->tok[t], "greedy: the best is the token");
        }
        free(ref);
        sched_release(h[i]);
        rec_free(r[i]);
    }
    fix_done(&f);
}

/* ---- cancellation ----------------------------------------------------------- */

Test(sched_cancel, queued_prefill_decode) {
    Fix f;
    ModelParams mp = model_params_default();
    SchedParams sp = sched_params_default();
    sp.max_running = 3;
    sp.prefill_chunk = 2;
    sp.prefix_cache = true; /* what finished prompts publish stays cached */
    fix_init(&f, &mp, &sp);
    int base = model_kv_free_blocks(f.m);
    int32_t prompt[128];
    rand_prompt(prompt, 128, 31);

    /* A decodes and cancels itself at its 5th token (from the callback);
     * A also cancels B at its 3rd token, when B (100 prompt tokens, 2 per
     * step) is still in prefill; C waits in the queue behind max_running
     * and is cancelled there; D is cancelled before the engine starts. */
    SchedReqParams pa = greedy(60), pb = greedy(60), pc = greedy(60), pd = greedy(60);
    pa.ignore_eos = pb.ignore_eos = pc.ignore_eos = pd.ignore_eos = true;
    Rec *ra = rec_new(1), *rb = rec_new(1), *rc = rec_new(1), *rd = rec_new(1), *rx = rec_new(1),
        *ry = rec_new(1);
    SchedReq *hd = submit(&f, prompt, 10, &pd, rd);
    sched_cancel(hd);
    SchedReq *ha = submit(&f, prompt + 5, 4, &pa, ra);
    SchedReq *hb = submit(&f, prompt, 100, &pb, rb);
    SchedReqParams px = greedy(60);
    px.ignore_eos = true;
    SchedReq *hx = submit(&f, prompt + 1, 6, &px, rx); /* keeps running: fills max_running */
    SchedReq *hc = submit(&f, prompt + 2, 8, &pc, rc);
    ra->cancel_self_after = 5;
    ra->other = hb;
    ra->cancel_other_after = 3;
    rx->gate_at = 3;
    fix_start(&f);
    wait_end(rd);
    cr_expect_eq(rd->ch[0].finish, GEN_FINISH_CANCELLED);
    cr_expect_eq(rd->ch[0].n_tok, 0);
    wait_end(ra);
    wait_end(rb);
    cr_expect_eq(ra->ch[0].finish, GEN_FINISH_CANCELLED);
    cr_expect_eq(ra->ch[0].n_tok, 5, "no token after the step that saw the cancel");
    cr_expect_eq(ra->end.finish, GEN_FINISH_CANCELLED);
    cr_expect_eq(rb->ch[0].finish, GEN_FINISH_CANCELLED);
    cr_expect_eq(rb->ch[0].n_tok, 0, "B was still in prefill");
    cr_expect_eq(rb->end.n_generated, 0);
    /* X holds the engine at its 3rd token; C (admitted when A and B left)
     * is in prefill or decoding; cancel both from this thread */
    gate_wait(rx);
    sched_cancel(hc);
    sched_cancel(hx);
    sched_cancel(hx); /* twice: harmless */
    gate_release(rx);
    wait_end(rc);
    cr_expect_eq(rc->ch[0].finish, GEN_FINISH_CANCELLED);
    cr_expect_lt(rc->ch[0].n_tok, 60);
    wait_end(rx);
    cr_expect_eq(rx->ch[0].finish, GEN_FINISH_CANCELLED);
    cr_expect_eq(rx->ch[0].n_tok, 3);

    /* a request after all that still matches the oracle */
    SchedReqParams py = greedy(10);
    Want wy;
    oracle(&f, prompt + 3, 30, &py, 0, &wy);
    SchedReq *hy = submit(&f, prompt + 3, 30, &py, ry);
    wait_end(ry);
    expect_like(ry, 0, &wy, "after cancellations");
    sched_stop(f.s);
    SchedStats st;
    sched_stats(f.s, &st);
    cr_expect_eq(st.requests_cancelled, 5);
    cr_expect_eq(st.requests_done, 1);
    cr_expect_gt(st.kv_blocks_cached, 0, "Y published its prompt");
    cr_expect_eq(model_kv_free_blocks(f.m) + st.kv_blocks_cached, base,
                 "blocks back: %d free + %d cached, baseline %d", model_kv_free_blocks(f.m),
                 st.kv_blocks_cached, base);
    Rec *all[] = {ra, rb, rc, rd, rx, ry};
    SchedReq *hs[] = {ha, hb, hc, hd, hx, hy};
    for (int i = 0; i < 6; i++) {
        cr_expect_eq(all[i]->bad, 0, "request %d: %s", i, all[i]->bad_msg);
        sched_release(hs[i]);
        rec_free(all[i]);
    }
    fix_done(&f);
}

/* A request cancelled while it waits in the queue never runs. */
Test(sched_cancel, queued_behind_a_full_engine) {
    Fix f;
    ModelParams mp = model_params_default();
    SchedParams sp = sched_params_default();
    sp.max_running = 1;
    fix_init(&f, &mp, &sp);
    fix_start(&f);
    int32_t prompt[64];
    rand_prompt(prompt, 64, 5);
    SchedReqParams p = greedy(100);
    p.ignore_eos = true;
    Rec *ra = rec_new(1), *rb = rec_new(1);
    ra->gate_at = 2;
    SchedReq *ha = submit(&f, prompt, 8, &p, ra);
    gate_wait(ra); /* the engine is held inside A's step */
    rb->peer = ra;
    SchedReq *hb = submit(&f, prompt, 9, &p, rb);
    sched_cancel(hb);
    gate_release(ra);
    wait_end(rb);
    cr_expect_eq(rb->ch[0].finish, GEN_FINISH_CANCELLED);
    cr_expect_eq(rb->ch[0].n_tok, 0);
    cr_expect_eq(rb->end.n_generated, 0);
    cr_expect_eq(rb->peer_ended_at_end, 0, "A was still running: B was cancelled in the queue");
    cr_expect_eq(rb->peer_tokens_at_end, 2, "B ended at the step after the cancel (A had %d)",
                 rb->peer_tokens_at_end);
    sched_cancel(ha);
    wait_end(ra);
    cr_expect_eq(ra->bad + rb->bad, 0);
    sched_release(ha);
    sched_release(hb);
    rec_free(ra);
    rec_free(rb);
    fix_done(&f);
}

/* sched_stop with requests running and queued: all end CANCELLED. And
 * requests submitted to a scheduler that never starts end at sched_free. */
Test(sched_cancel, stop_with_pending_requests) {
    Fix f;
    ModelParams mp = model_params_default();
    mp.n_ctx = 4096; /* room for generations far longer than the test */
    SchedParams sp = sched_params_default();
    sp.max_running = 2;
    fix_init(&f, &mp, &sp);
    fix_start(&f);
    int32_t prompt[64];
    rand_prompt(prompt, 64, 6);
    SchedReqParams p = greedy(4000);
    p.ignore_eos = true;
    Rec *r[5];
    SchedReq *h[5];
    for (int i = 0; i < 5; i++) {
        r[i] = rec_new(1);
        h[i] = submit(&f, prompt + i, 10 + 5 * i, &p, r[i]);
    }
    wait_tokens(r[0], 3);
    sched_stop(f.s);
    for (int i = 0; i < 5; i++) {
        cr_expect_eq(r[i]->n_end, 1, "request %d ended at stop", i);
        cr_expect_eq(r[i]->ch[0].finish, GEN_FINISH_CANCELLED);
        cr_expect_eq(r[i]->bad, 0, "%s", r[i]->bad_msg);
    }
    cr_expect_eq(model_kv_free_blocks(f.m), model_kv_total_blocks(f.m));
    /* restart, run one, stop again */
    SchedReqParams q = greedy(4);
    Rec *r2 = rec_new(1);
    Want w;
    oracle(&f, prompt, 11, &q, 0, &w);
    fix_start(&f);
    SchedReq *h2 = submit(&f, prompt, 11, &q, r2);
    wait_end(r2);
    expect_like(r2, 0, &w, "after restart");
    sched_stop(f.s);
    /* never started again: pending at sched_free */
    Rec *r3 = rec_new(2);
    SchedReqParams q3 = greedy(4);
    q3.n_choices = 2;
    Err err = {0};
    cr_assert(sched_submit(f.s, prompt, 9, &q3, on_event, r3, NULL, &err) == STATUS_OK);
    fix_done(&f); /* sched_free ends it */
    cr_expect_eq(r3->n_end, 1);
    cr_expect(r3->ch[0].finish == GEN_FINISH_CANCELLED && r3->ch[1].finish == GEN_FINISH_CANCELLED);
    cr_expect_eq(r3->bad, 0, "%s", r3->bad_msg);
    for (int i = 0; i < 5; i++) {
        sched_release(h[i]);
        rec_free(r[i]);
    }
    sched_release(h2);
    rec_free(r2);
    rec_free(r3);
}

/* ---- submit errors ----------------------------------------------------------- */

static Status try_submit(Fix *f, const int32_t *prompt, int np, const SchedReqParams *p, Err *err) {
    Rec *r = rec_new(p->n_choices > 0 && p->n_choices <= SCHED_MAX_CHOICES ? p->n_choices : 1);
    SchedReq *h = NULL;
    Status st = sched_submit(f->s, prompt, np, p, on_event, r, &h, err);
    if (st == STATUS_OK) { /* unexpected; 'r' must outlive the request: leak it */
        sched_release(h);
        return st;
    }
    cr_expect_null(h);
    rec_free(r);
    return st;
}

Test(sched_limits, submit_errors) {
    Fix f;
    ModelParams mp = model_params_default();
    mp.n_kv_blocks = 20; /* 80 positions */
    SchedParams sp = sched_params_default();
    sp.max_queue = 2;
    fix_init(&f, &mp, &sp);
    int32_t prompt[200];
    rand_prompt(prompt, 200, 1);
    Err err = {0};
    SchedReqParams p = greedy(4);

    cr_expect_eq(try_submit(&f, prompt, 128, &p, &err), STATUS_LIMIT);
    cr_expect(!strncmp(err.msg, "context_length_exceeded:", 24), "%s", err.msg);
    cr_expect_eq(try_submit(&f, prompt, 0, &p, &err), STATUS_INVALID);
    /* 60 + 30 positions = 23 blocks > 20 */
    SchedReqParams big = greedy(30);
    cr_expect_eq(try_submit(&f, prompt, 60, &big, &err), STATUS_LIMIT);
    cr_expect(strstr(err.msg, "pool") != NULL, "%s", err.msg);
    /* n = 8, prompt 20, max_tokens 12: 32 positions = 8 blocks for the
     * first choice, 8 - 5 shared prompt blocks for each other: 8 + 7 * 3 = 29 */
    SchedReqParams many = greedy(12);
    many.n_choices = 8;
    cr_expect_eq(try_submit(&f, prompt, 20, &many, &err), STATUS_LIMIT);
    int32_t badtok[3] = {5, 300, 7};
    cr_expect_eq(try_submit(&f, badtok, 3, &p, &err), STATUS_INVALID);
    cr_expect(strstr(err.msg, "prompt") != NULL, "%s", err.msg);
    SchedReqParams q = p;
    q.n_choices = 0;
    cr_expect_eq(try_submit(&f, prompt, 5, &q, &err), STATUS_INVALID);
    q.n_choices = SCHED_MAX_CHOICES + 1;
    cr_expect_eq(try_submit(&f, prompt, 5, &q, &err), STATUS_INVALID);
    q = p;
    q.max_tokens = 0;
    cr_expect_eq(try_submit(&f, prompt, 5, &q, &err), STATUS_INVALID);
    cr_expect(strstr(err.msg, "max_tokens") != NULL, "%s", err.msg);
    q = p;
    q.logprobs = true;
    q.top_logprobs = SCHED_MAX_TOP_LOGPROBS + 1;
    cr_expect_eq(try_submit(&f, prompt, 5, &q, &err), STATUS_INVALID);
    q.logprobs = false;
    q.top_logprobs = 2;
    cr_expect_eq(try_submit(&f, prompt, 5, &q, &err), STATUS_INVALID);
    q = p;
    q.sampling.temperature = NAN;
    cr_expect_eq(try_submit(&f, prompt, 5, &q, &err), STATUS_INVALID);
    cr_expect(strstr(err.msg, "temperature") != NULL, "%s", err.msg);
    q = p;
    LogitBias lb = {400, 1.0f};
    q.sampling.bias = &lb;
    q.sampling.n_bias = 1;
    cr_expect_eq(try_submit(&f, prompt, 5, &q, &err), STATUS_INVALID);
    q = p;
    const char *empty_stop[] = {""};
    q.stop = empty_stop;
    q.n_stop = 1;
    cr_expect_eq(try_submit(&f, prompt, 5, &q, &err), STATUS_INVALID);
    const char *stops[STOP_MAX_STRINGS + 1];
    for (int i = 0; i <= STOP_MAX_STRINGS; i++)
        stops[i] = "x";
    q.stop = stops;
    q.n_stop = STOP_MAX_STRINGS + 1;
    cr_expect_eq(try_submit(&f, prompt, 5, &q, &err), STATUS_LIMIT);

    /* the queue: two fit (the engine is not started), the third is BUSY */
    Rec *r1 = rec_new(1), *r2 = rec_new(1), *r3 = rec_new(1);
    SchedReq *h1, *h2, *h3 = (SchedReq *)1;
    cr_expect_eq(sched_submit(f.s, prompt, 5, &p, on_event, r1, &h1, &err), STATUS_OK);
    cr_expect_eq(sched_submit(f.s, prompt, 6, &p, on_event, r2, &h2, &err), STATUS_OK);
    cr_expect_eq(sched_submit(f.s, prompt, 7, &p, on_event, r3, &h3, &err), STATUS_BUSY);
    cr_expect_null(h3);
    SchedStats st;
    sched_stats(f.s, &st);
    cr_expect_eq(st.queued, 2);
    cr_expect_eq(st.running, 0);
    cr_expect_eq(st.kv_blocks_total, 20);
    cr_expect_eq(st.kv_blocks_free, 20);
    /* once they ran, the queue has room again */
    fix_start(&f);
    wait_end(r1);
    wait_end(r2);
    cr_expect(r1->ch[0].finish == GEN_FINISH_LENGTH ? r1->ch[0].n_tok == 4
                                                    : r1->ch[0].finish == GEN_FINISH_EOG);
    SchedReq *h4;
    cr_expect_eq(sched_submit(f.s, prompt, 7, &p, on_event, r3, &h4, &err), STATUS_OK);
    wait_end(r3);
    sched_release(h1);
    sched_release(h2);
    sched_release(h4);
    rec_free(r1);
    rec_free(r2);
    rec_free(r3);
    fix_done(&f);
}

/* ---- admission by KV budget ------------------------------------------------- */

/* The pool holds two requests' reservations at a time: the others wait,
 * nobody fails, everybody matches the oracle. */
Test(sched_admission, waits_for_kv_budget) {
    Fix f;
    ModelParams mp = model_params_default();
    mp.n_kv_blocks = 24; /* 96 positions; each request reserves 40 = 10 blocks */
    SchedParams sp = sched_params_default();
    fix_init(&f, &mp, &sp);
    int32_t prompt[64];
    rand_prompt(prompt, 64, 17);
    enum { N = 6 };
    Want w[N];
    SchedReqParams p = greedy(20);
    p.ignore_eos = true;
    for (int i = 0; i < N; i++)
        oracle(&f, prompt + i, 20, &p, 0, &w[i]);
    Live live = {.cur = 0, .max = 0};
    pthread_mutex_init(&live.mu, NULL);
    Rec *r[N];
    SchedReq *h[N];
    for (int i = 0; i < N; i++) {
        r[i] = rec_new(1);
        r[i]->live = &live;
        h[i] = submit(&f, prompt + i, 20, &p, r[i]);
    }
    fix_start(&f);
    for (int i = 0; i < N; i++) {
        wait_end(r[i]);
        char what[32];
        snprintf(what, sizeof what, "request %d", i);
        expect_like(r[i], 0, &w[i], what);
        cr_expect_neq(r[i]->ch[0].finish, GEN_FINISH_ERROR, "%s", r[i]->error);
    }
    cr_expect_eq(live.max, 2, "at most two requests hold KV at once (saw %d)", live.max);
    sched_stop(f.s);
    cr_expect_eq(model_kv_free_blocks(f.m), 24);
    for (int i = 0; i < N; i++) {
        sched_release(h[i]);
        rec_free(r[i]);
    }
    pthread_mutex_destroy(&live.mu);
    fix_done(&f);
}

/* n > 1 with a shared partial block and a pool exactly the size of the
 * reservation: copy on write of the shared block must never find the pool
 * empty (model_forward would fail). */
Test(sched_admission, exact_pool_with_shared_partial_block) {
    Fix f;
    ModelParams mp = model_params_default();
    /* prompt 5, max_tokens 3 -> 8 positions = 2 blocks per choice;
     * choice 0: 2, the others 2 - 1 = 1 each, + 1 slack: n = 3 -> 5 */
    mp.n_kv_blocks = 5;
    SchedParams sp = sched_params_default();
    fix_init(&f, &mp, &sp);
    int32_t prompt[5];
    rand_prompt(prompt, 5, 3);
    SchedReqParams p = sampled(3, 10);
    p.ignore_eos = true;
    p.n_choices = 3;
    Want w[3];
    for (int c = 0; c < 3; c++)
        oracle(&f, prompt, 5, &p, c, &w[c]);
    fix_start(&f);
    Rec *r = rec_new(3);
    SchedReq *h = submit(&f, prompt, 5, &p, r);
    wait_end(r);
    for (int c = 0; c < 3; c++)
        expect_like(r, c, &w[c], "exact pool");
    cr_expect_eq(r->error[0], 0, "%s", r->error);
    /* one block less does not fit at all */
    sched_release(h);
    rec_free(r);
    fix_done(&f);

    mp.n_kv_blocks = 4;
    fix_init(&f, &mp, &sp);
    Err err = {0};
    Rec *r2 = rec_new(3);
    cr_expect_eq(sched_submit(f.s, prompt, 5, &p, on_event, r2, NULL, &err), STATUS_LIMIT);
    fix_done(&f);
    rec_free(r2);
}

/* ---- prefix cache -------------------------------------------------------------- */

static SchedReqParams tenant_params(int max_tokens, uint8_t tenant) {
    SchedReqParams p = greedy(max_tokens);
    p.ignore_eos = true;
    memset(p.tenant, 0, sizeof p.tenant);
    p.tenant[0] = tenant;
    return p;
}

static Rec *run_one(Fix *f, const int32_t *prompt, int np, const SchedReqParams *p, Want *w,
                    const char *what) {
    for (int c = 0; c < p->n_choices; c++)
        oracle(f, prompt, np, p, p->sampling.temperature > 0 ? c : 0, &w[c]);
    Rec *r = rec_new(p->n_choices);
    SchedReq *h = submit(f, prompt, np, p, r);
    wait_end(r);
    for (int c = 0; c < p->n_choices; c++)
        expect_like(r, c, &w[c], what);
    sched_release(h);
    return r;
}

Test(sched_prefix, hits_same_tenant_only) {
    Fix f;
    ModelParams mp = model_params_default();
    SchedParams sp = sched_params_default();
    sp.prefix_cache = true;
    fix_init(&f, &mp, &sp);
    fix_start(&f);
    int32_t p1[64], p2[64];
    rand_prompt(p1, 64, 42);
    memcpy(p2, p1, sizeof p1);
    for (int i = 30; i < 64; i++)
        p2[i] = 3 + (p1[i] + 17) % 256; /* shares 30 tokens */
    Want w[SCHED_MAX_CHOICES];
    SchedReqParams a = tenant_params(10, 1), b = tenant_params(10, 2);

    Rec *r = run_one(&f, p1, 40, &a, w, "first");
    cr_expect_eq(r->end.n_cached, 0);
    rec_free(r);
    r = run_one(&f, p2, 40, &a, w, "shared prefix");
    cr_expect_eq(r->end.n_cached, 28, "7 full blocks of the 30 shared tokens (got %d)",
                 r->end.n_cached);
    rec_free(r);
    r = run_one(&f, p1, 40, &a, w, "same prompt");
    cr_expect_eq(r->end.n_cached, 36, "all full blocks but the one with the last token (got %d)",
                 r->end.n_cached);
    rec_free(r);
    r = run_one(&f, p1, 40, &b, w, "other tenant");
    cr_expect_eq(r->end.n_cached, 0, "another tenant never hits");
    rec_free(r);
    /* a longer prompt extending p1 hits all of p1's blocks */
    r = run_one(&f, p1, 57, &a, w, "longer");
    cr_expect_eq(r->end.n_cached, 36);
    rec_free(r);
    /* n > 1 on top of cached blocks */
    SchedReqParams an = tenant_params(8, 1);
    an.n_choices = 3;
    an.sampling = sampled(8, 5).sampling;
    r = run_one(&f, p1, 50, &an, w, "n=3 cached");
    cr_expect_eq(r->end.n_cached, 48);
    rec_free(r);

    SchedStats st;
    sched_stats(f.s, &st);
    cr_expect_eq(st.prefix_hits, 4);
    cr_expect_eq(st.tokens_cached, 28 + 36 + 36 + 48);
    cr_expect_eq(st.tokens_prompt, 40 * 4 + 57 + 50);
    sched_stop(f.s);
    sched_stats(f.s, &st);
    cr_expect_gt(st.kv_blocks_cached, 0);
    cr_expect_eq(model_kv_free_blocks(f.m) + st.kv_blocks_cached, model_kv_total_blocks(f.m),
                 "only the cache holds blocks (%d free + %d cached of %d)",
                 model_kv_free_blocks(f.m), st.kv_blocks_cached, model_kv_total_blocks(f.m));
    cr_expect_eq(st.kv_blocks_free, model_kv_free_blocks(f.m));
    fix_done(&f); /* sched_free gives the cached blocks back */
}

/* A pool too small to keep everything: cached blocks are evicted to admit
 * new requests, which still match the oracle. */
Test(sched_prefix, eviction_under_pressure) {
    Fix f;
    ModelParams mp = model_params_default();
    mp.n_kv_blocks = 24; /* 96 positions */
    SchedParams sp = sched_params_default();
    sp.prefix_cache = true;
    fix_init(&f, &mp, &sp);
    fix_start(&f);
    int32_t pr[4][64];
    for (int i = 0; i < 4; i++)
        rand_prompt(pr[i], 64, 900 + (uint64_t)i);
    Want w[SCHED_MAX_CHOICES];
    SchedReqParams a = tenant_params(8, 1);
    /* each: 41 prompt tokens -> 10 cacheable blocks; reserves 13 */
    for (int i = 0; i < 4; i++) {
        Rec *r = run_one(&f, pr[i], 41, &a, w, "fill");
        cr_expect_eq(r->end.n_cached, 0);
        cr_expect_eq(r->ch[0].finish, GEN_FINISH_LENGTH, "%s", r->error);
        rec_free(r);
        SchedStats st;
        sched_stats(f.s, &st);
        cr_expect_leq(st.kv_blocks_cached, 24);
    }
    /* the most recent one may still be cached; the first was evicted */
    Rec *r = run_one(&f, pr[0], 41, &a, w, "evicted");
    cr_expect_lt(r->end.n_cached, 40, "the oldest prompt was evicted (cached %d)", r->end.n_cached);
    rec_free(r);
    r = run_one(&f, pr[0], 41, &a, w, "again");
    cr_expect_eq(r->end.n_cached, 40, "and is cached again");
    rec_free(r);
    /* a big request needs nearly the whole pool: everything evictable goes */
    SchedReqParams big = tenant_params(40, 2);
    r = run_one(&f, pr[3], 50, &big, w, "big"); /* 90 positions = 23 blocks */
    cr_expect_eq(r->end.n_cached, 0);
    cr_expect_eq(r->ch[0].finish, GEN_FINISH_LENGTH, "%s", r->error);
    rec_free(r);
    /* concurrent requests of the same prefix under pressure */
    Rec *rs[3];
    SchedReq *hs[3];
    Want ws[3];
    for (int i = 0; i < 3; i++) {
        oracle(&f, pr[1], 30 + i, &a, 0, &ws[i]);
        rs[i] = rec_new(1);
        hs[i] = submit(&f, pr[1], 30 + i, &a, rs[i]);
    }
    for (int i = 0; i < 3; i++) {
        wait_end(rs[i]);
        expect_like(rs[i], 0, &ws[i], "concurrent");
        sched_release(hs[i]);
        rec_free(rs[i]);
    }
    sched_stop(f.s);
    SchedStats st;
    sched_stats(f.s, &st);
    cr_expect_eq(model_kv_free_blocks(f.m) + st.kv_blocks_cached, 24);
    fix_done(&f);
}
