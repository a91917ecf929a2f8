/* test_pool.c - the pool of models loaded on demand (serve/pool.h).
 *
 * Real models: the hooks load small random GGUF files with model_load and
 * start a real scheduler, counting every load and unload, so the pool's
 * decisions (what it loads, what it unloads and when, who waits) are
 * checked against what actually happened, not against its own counters
 * alone: loads once per demand; LRU among idle models under --max-loaded
 * and a memory budget; never a model in use or pinned; a request waits for
 * a load in progress (one load for many) and for room, up to its limit;
 * a failed load reaches every waiter; keep-alive; scans that add and
 * remove models; scheduler counters kept across an unload. */
#include <criterion/criterion.h>

#include "../testutil.h"
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/perf.h"
#include "model/randmodel.h"
#include "serve/pool.h"

#define N_FILES 3
#define MB 1000000 /* the bytes each offer says it takes (the KV pages come on top) */

typedef struct {
    char dir[64];
    char path[N_FILES][128];
    atomic_int loads[N_FILES], unloads[N_FILES];
    atomic_int loaded_now; /* models between load and unload, as the hooks saw them */
    atomic_int max_loaded_seen;
    double load_delay; /* seconds each load sleeps (a slow disk) */
    atomic_bool fail;  /* loads fail */
    PoolOffer scan[N_FILES + 1];
    int n_scan;
    pthread_mutex_t scan_mu;
} Fix;

typedef struct {
    Model *m;
    Tokenizer *tok;
    int which;
} Loaded;

static int which_file(Fix *f, const char *path) {
    for (int i = 0; i < N_FILES; i++)
        if (!strcmp(f->path[i], path))
            return i;
    return -1;
}

static Status hook_load(void *ctx, const PoolOffer *o, ServerModel *out, Err *err) {
    Fix *f = ctx;
    if (f->load_delay > 0)
        usleep((useconds_t)(f->load_delay * 1e6));
    if (atomic_load(&f->fail))
        return err_set(err, STATUS_IO, "the disk is on fire");
    Loaded *l = calloc(1, sizeof *l);
    cr_assert_not_null(l);
    l->which = which_file(f, o->path);
    cr_assert(l->which >= 0, "load of an unknown file %s", o->path);
    ModelParams mp = {.n_threads = 1, .n_ctx = 64, .n_seq_max = 2, .n_batch = 16};
    Status st = model_load(&l->m, o->path, &mp, err);
    if (!st)
        st = tok_load(&l->tok, model_gguf(l->m), err);
    Sched *s = NULL;
    SchedParams sp = {.max_running = 2, .max_queue = 8};
    if (!st)
        st = sched_new(&s, l->m, l->tok, &sp, err);
    if (!st)
        st = sched_start(s, err);
    cr_assert(st == STATUS_OK, "%s", err->msg);
    *out = (ServerModel){.model = l->m, .tok = l->tok, .sched = s, .handle = l};
    atomic_fetch_add(&f->loads[l->which], 1);
    int now = atomic_fetch_add(&f->loaded_now, 1) + 1;
    int seen = atomic_load(&f->max_loaded_seen);
    while (now > seen && !atomic_compare_exchange_weak(&f->max_loaded_seen, &seen, now))
        ;
    return STATUS_OK;
}

static void hook_unload(void *ctx, ServerModel *m) {
    Fix *f = ctx;
    Loaded *l = m->handle;
    sched_free(m->sched);
    tok_free(l->tok);
    model_free(l->m);
    atomic_fetch_add(&f->unloads[l->which], 1);
    atomic_fetch_sub(&f->loaded_now, 1);
    free(l);
}

static Status hook_scan(void *ctx, PoolOffer **out, int *n, Err *err) {
    Fix *f = ctx;
    (void)err;
    pthread_mutex_lock(&f->scan_mu);
    *out = calloc(N_FILES + 1, sizeof **out);
    cr_assert_not_null(*out);
    memcpy(*out, f->scan, sizeof f->scan);
    *n = f->n_scan;
    pthread_mutex_unlock(&f->scan_mu);
    return STATUS_OK;
}

static Fix *fix_new(void) {
    Fix *f = calloc(1, sizeof *f);
    char dir[sizeof f->dir] = "/tmp/cgpt_pool_XXXXXX";
    cr_assert(mkdtemp(dir));
    memcpy(f->dir, dir, sizeof dir);
    pthread_mutex_init(&f->scan_mu, NULL);
    for (int i = 0; i < N_FILES; i++) {
        snprintf(f->path[i], sizeof f->path[i], "%s/m%d.gguf", dir, i);
        RandModelSpec s = tu_tiny_llama(64);
        s.seed = 100 + (uint64_t)i;
        Err err = {0};
        cr_assert(randmodel_write(f->path[i], &s, &err) == STATUS_OK, "%s", err.msg);
    }
    return f;
}

static void fix_free(Fix *f) {
    for (int i = 0; i < N_FILES; i++)
        unlink(f->path[i]);
    rmdir(f->dir);
    pthread_mutex_destroy(&f->scan_mu);
    free(f);
}

static PoolOffer offer(Fix *f, int i, uint64_t bytes) {
    PoolOffer o;
    memset(&o, 0, sizeof o);
    snprintf(o.id, sizeof o.id, "m%d", i);
    snprintf(o.path, sizeof o.path, "%s", f->path[i]);
    o.bytes = bytes;
    o.created = 1000 + i;
    return o;
}

static Pool *pool_with(Fix *f, int max_loaded, uint64_t budget, double keep_alive, double wait,
                       bool scan) {
    PoolConfig c = {
        .max_loaded = max_loaded,
        .memory_budget = budget,
        .keep_alive = keep_alive,
        .wait_seconds = wait,
        .hooks = {
            .load = hook_load, .unload = hook_unload, .scan = scan ? hook_scan : NULL, .ctx = f}};
    Pool *p = NULL;
    Err err = {0};
    cr_assert(pool_new(&p, &c, &err) == STATUS_OK, "%s", err.msg);
    for (int i = 0; !scan && i < N_FILES; i++) {
        PoolOffer o = offer(f, i, MB);
        cr_assert(pool_add(p, &o, NULL, &err) == STATUS_OK, "%s", err.msg);
    }
    return p;
}

static const ServerModel *take(Pool *p, const char *id) {
    const ServerModel *m = NULL;
    Err err = {0};
    Status st = pool_acquire(p, id, NULL, &m, &err);
    cr_assert(st == STATUS_OK && m, "acquire %s: %s", id ? id : "(default)", err.msg);
    cr_assert_str_eq(m->id, id && *id ? id : "m0");
    return m;
}

static PoolState state_of(Pool *p, const char *id) {
    int n = 0;
    PoolInfo *l = pool_list(p, false, &n);
    PoolState s = POOL_UNLOADING;
    for (int i = 0; i < n; i++)
        if (!strcmp(l[i].id, id))
            s = l[i].state;
    free(l);
    return s;
}

/* Poll until cond holds, at most 'seconds'. */
#define EVENTUALLY(cond, seconds)                                                                  \
    do {                                                                                           \
        double t0_ = perf_now();                                                                   \
        while (!(cond) && perf_now() - t0_ < (seconds))                                            \
            usleep(10000);                                                                         \
    } while (0)

Test(pool, loads_on_demand_once_and_lru_under_max_loaded) {
    Fix *f = fix_new();
    Pool *p = pool_with(f, 2, 0, -1, 5, false);
    for (int i = 0; i < N_FILES; i++)
        cr_expect_eq(state_of(p, (char[]){'m', (char)('0' + i), 0}), POOL_UNLOADED);
    char def[POOL_ID_MAX];
    pool_default_id(p, def, sizeof def);
    cr_expect_str_eq(def, "m0", "the first on offer is the default");
    pool_release(p, take(p, NULL)); /* the default: m0 */
    pool_release(p, take(p, "m0"));
    cr_expect_eq(atomic_load(&f->loads[0]), 1, "a loaded model is not loaded again");
    usleep(20000);
    pool_release(p, take(p, "m1"));
    usleep(20000);
    pool_release(p, take(p, "m0")); /* m0 is now more recent than m1 */
    usleep(20000);
    pool_release(p, take(p, "m2")); /* room for it: m1, the least recently used, goes */
    cr_expect_eq(atomic_load(&f->unloads[1]), 1, "m1 (LRU) unloaded");
    cr_expect_eq(atomic_load(&f->unloads[0]), 0, "m0 (used since) kept");
    cr_expect_eq(state_of(p, "m1"), POOL_UNLOADED);
    cr_expect_eq(state_of(p, "m0"), POOL_LOADED);
    cr_expect_eq(state_of(p, "m2"), POOL_LOADED);
    cr_expect_eq(atomic_load(&f->max_loaded_seen), 2, "never more than --max-loaded at once");
    PoolStats st;
    pool_stats(p, &st);
    cr_expect_eq(st.loaded, 2);
    cr_expect_eq(st.loads, 3);
    cr_expect_eq(st.unloads_lru, 1);
    const ServerModel *m = NULL;
    Err err = {0};
    cr_expect_eq(pool_acquire(p, "nope", NULL, &m, &err), STATUS_NOT_FOUND);
    cr_expect(strstr(err.msg, "'nope' does not exist"), "%s", err.msg);
    pool_free(p);
    cr_expect_eq(atomic_load(&f->loaded_now), 0, "pool_free unloads everything");
    fix_free(f);
}

typedef struct {
    Pool *p;
    const ServerModel *m;
    double after;
} ReleaseLater;

static void *release_later(void *arg) {
    ReleaseLater *r = arg;
    usleep((useconds_t)(r->after * 1e6));
    pool_release(r->p, r->m);
    return NULL;
}

Test(pool, never_unloads_a_model_in_use_and_waits_for_room) {
    Fix *f = fix_new();
    Pool *p = pool_with(f, 1, 0, -1, 0.5, false);
    const ServerModel *a = take(p, "m0");
    const ServerModel *m = NULL;
    Err err = {0};
    double t0 = perf_now();
    Status st = pool_acquire(p, "m1", NULL, &m, &err);
    double waited = perf_now() - t0;
    cr_expect_eq(st, STATUS_BUSY, "no room while m0 is in use: %s", err.msg);
    cr_expect(waited >= 0.45, "it waited for room (%.2f s)", waited);
    cr_expect(strstr(err.msg, "in use"), "%s", err.msg);
    cr_expect_eq(atomic_load(&f->unloads[0]), 0, "m0 in use: not unloaded");
    cr_expect_eq(atomic_load(&f->loads[1]), 0);
    /* a waiter gets the room when the holder lets go */
    ReleaseLater rl = {p, a, 0.2};
    pthread_t t;
    cr_assert(pthread_create(&t, NULL, release_later, &rl) == 0);
    t0 = perf_now();
    const ServerModel *b = take(p, "m1");
    waited = perf_now() - t0;
    pthread_join(t, NULL);
    cr_expect(waited >= 0.15, "m1 waited for m0's release (%.2f s)", waited);
    cr_expect_eq(atomic_load(&f->unloads[0]), 1, "then m0 made room");
    pool_release(p, b);
    pool_free(p);
    fix_free(f);
}

typedef struct {
    Pool *p;
    const char *id;
    Status st;
    char msg[sizeof(((Err *)0)->msg)];
    const ServerModel *m;
} Taker;

static void *take_thread(void *arg) {
    Taker *t = arg;
    Err err = {0};
    t->st = pool_acquire(t->p, t->id, NULL, &t->m, &err);
    snprintf(t->msg, sizeof t->msg, "%s", err.msg);
    return NULL;
}

Test(pool, one_load_for_many_waiters_and_a_failed_load_reaches_them_all) {
    Fix *f = fix_new();
    f->load_delay = 0.3;
    Pool *p = pool_with(f, 0, 0, -1, 5, false);
    Taker t[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        t[i] = (Taker){.p = p, .id = "m0"};
        cr_assert(pthread_create(&th[i], NULL, take_thread, &t[i]) == 0);
    }
    usleep(100000);
    cr_expect_eq(state_of(p, "m0"), POOL_LOADING, "the state says it is loading");
    PoolStats st;
    pool_stats(p, &st);
    cr_expect_eq(st.loading, 1);
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        cr_expect_eq(t[i].st, STATUS_OK, "%s", t[i].msg);
        pool_release(p, t[i].m);
    }
    cr_expect_eq(atomic_load(&f->loads[0]), 1, "four requests, one load");
    /* a load that fails: every waiter hears why, and it was tried once */
    atomic_store(&f->fail, true);
    for (int i = 0; i < 3; i++) {
        t[i] = (Taker){.p = p, .id = "m1"};
        cr_assert(pthread_create(&th[i], NULL, take_thread, &t[i]) == 0);
    }
    for (int i = 0; i < 3; i++) {
        pthread_join(th[i], NULL);
        cr_expect_eq(t[i].st, STATUS_IO);
        cr_expect(strstr(t[i].msg, "cannot load model 'm1': the disk is on fire"), "%s", t[i].msg);
    }
    pool_stats(p, &st);
    cr_expect_eq(st.load_failures, 1, "one failed load for three waiters (%llu)",
                 (unsigned long long)st.load_failures);
    cr_expect_eq(state_of(p, "m1"), POOL_UNLOADED);
    atomic_store(&f->fail, false); /* the next request tries again */
    pool_release(p, take(p, "m1"));
    pool_free(p);
    fix_free(f);
}

Test(pool, memory_budget) {
    Fix *f = fix_new();
    /* MB each (pool_with), a budget for two and a bit */
    Pool *p = pool_with(f, 0, 2600000, -1, 0.5, false);
    pool_release(p, take(p, "m0"));
    usleep(20000);
    pool_release(p, take(p, "m1"));
    cr_expect_eq(atomic_load(&f->unloads[0]), 0, "two fit");
    pool_release(p, take(p, "m2"));
    cr_expect_eq(atomic_load(&f->unloads[0]), 1, "the third made the least recently used go");
    cr_expect_eq(atomic_load(&f->max_loaded_seen), 2);
    PoolStats st;
    pool_stats(p, &st);
    cr_expect(st.bytes_loaded >= 2 * MB && st.bytes_loaded <= 2600000, "%llu bytes counted",
              (unsigned long long)st.bytes_loaded);
    /* a model that cannot fit even alone is refused at once */
    PoolOffer big = offer(f, 0, 10000000);
    snprintf(big.id, sizeof big.id, "big");
    Err err = {0};
    cr_assert(pool_add(p, &big, NULL, &err) == STATUS_OK, "%s", err.msg);
    cr_expect_eq(pool_add(p, &big, NULL, &err), STATUS_INVALID, "one id, one entry");
    const ServerModel *m = NULL;
    cr_expect_eq(pool_acquire(p, "big", NULL, &m, &err), STATUS_LIMIT);
    cr_expect(strstr(err.msg, "10000000") && strstr(err.msg, "2600000"), "%s", err.msg);
    pool_free(p);
    fix_free(f);
}

Test(pool, pinned_models_stay) {
    Fix *f = fix_new();
    Pool *p = pool_with(f, 1, 0, 0, 0.3, true); /* keep-alive 0: idle ones go at once */
    ServerModel sm;
    Err err = {0};
    PoolOffer o = offer(f, 2, 1000);
    snprintf(o.id, sizeof o.id, "pinned");
    cr_assert(hook_load(f, &o, &sm, &err) == STATUS_OK);
    cr_assert(pool_add(p, &o, &sm, &err) == STATUS_OK, "%s", err.msg);
    char def[POOL_ID_MAX];
    pool_default_id(p, def, sizeof def);
    cr_expect_str_eq(def, "pinned");
    const ServerModel *m = take(p, "pinned");
    pool_release(p, m);
    usleep(300000);
    cr_expect_eq(state_of(p, "pinned"), POOL_LOADED, "keep-alive does not touch a pinned model");
    /* it fills --max-loaded 1: nothing else can load, and it is not unloaded for room */
    f->n_scan = 1;
    f->scan[0] = offer(f, 0, 1000);
    cr_expect_eq(pool_acquire(p, "m0", NULL, &m, &err), STATUS_BUSY, "%s", err.msg);
    cr_expect_eq(state_of(p, "pinned"), POOL_LOADED);
    cr_expect_eq(atomic_load(&f->unloads[2]), 0);
    pool_free(p);
    cr_expect_eq(atomic_load(&f->unloads[2]), 1, "pool_free unloads pinned models too");
    fix_free(f);
}

Test(pool, keep_alive) {
    Fix *f = fix_new();
    Pool *p = pool_with(f, 0, 0, 0.4, 5, false);
    double t0 = perf_now();
    pool_release(p, take(p, "m0"));
    usleep(150000);
    cr_expect_eq(state_of(p, "m0"), POOL_LOADED, "still within its keep-alive");
    EVENTUALLY(state_of(p, "m0") == POOL_UNLOADED, 3.0);
    double dt = perf_now() - t0;
    cr_expect_eq(state_of(p, "m0"), POOL_UNLOADED, "unloaded after its keep-alive");
    cr_expect(dt >= 0.35, "not before the keep-alive (%.2f s)", dt);
    PoolStats st;
    pool_stats(p, &st);
    cr_expect_eq(st.unloads_idle, 1);
    /* a model in use outlives its keep-alive */
    const ServerModel *m = take(p, "m1");
    usleep(700000);
    cr_expect_eq(state_of(p, "m1"), POOL_LOADED, "in use: kept past the keep-alive");
    pool_release(p, m);
    EVENTUALLY(state_of(p, "m1") == POOL_UNLOADED, 3.0);
    cr_expect_eq(state_of(p, "m1"), POOL_UNLOADED);
    pool_free(p);
    fix_free(f);
}

/* Does 'id' name one model now? (The reference is given back at once.) */
static bool names_one(Pool *p, const char *id) {
    const ServerModel *m = NULL;
    Err err = {0};
    if (pool_acquire(p, id, NULL, &m, &err))
        return false;
    pool_release(p, m);
    return true;
}

Test(pool, scans_add_and_remove_models) {
    Fix *f = fix_new();
    f->n_scan = 1;
    f->scan[0] = offer(f, 0, 1000);
    Pool *p = pool_with(f, 0, 0, -1, 5, true);
    pool_release(p, take(p, "m0"));
    const ServerModel *m = NULL;
    Err err = {0};
    cr_expect_eq(pool_acquire(p, "m1", NULL, &m, &err), STATUS_NOT_FOUND);
    cr_expect(!pool_has(p, "m1"));
    pthread_mutex_lock(&f->scan_mu);
    f->scan[1] = offer(f, 1, 1000); /* pulled while the server runs */
    f->n_scan = 2;
    pthread_mutex_unlock(&f->scan_mu);
    pool_release(p, take(p, "m1"));
    cr_expect(pool_has(p, "m1"));
    pthread_mutex_lock(&f->scan_mu);
    f->scan[0] = f->scan[1]; /* m0 removed (cgpt rm) */
    f->n_scan = 1;
    pthread_mutex_unlock(&f->scan_mu);
    EVENTUALLY(state_of(p, "m0") != POOL_LOADED && atomic_load(&f->unloads[0]) == 1,
               POOL_SCAN_SECONDS + 3);
    cr_expect_eq(atomic_load(&f->unloads[0]), 1, "a removed model is unloaded once idle");
    cr_expect_eq(pool_acquire(p, "m0", NULL, &m, &err), STATUS_NOT_FOUND, "and no longer offered");
    PoolStats st;
    pool_stats(p, &st);
    cr_expect_eq(st.unloads_removed, 1);
    /* OWNER/REPO names its only quant; with two it is ambiguous */
    pthread_mutex_lock(&f->scan_mu);
    snprintf(f->scan[0].id, sizeof f->scan[0].id, "o/r:Q8_0");
    pthread_mutex_unlock(&f->scan_mu);
    cr_expect_eq(pool_acquire(p, "o/r", NULL, &m, &err), STATUS_OK, "%s", err.msg);
    cr_expect_str_eq(m ? m->id : "", "o/r:Q8_0");
    pool_release(p, m);
    cr_expect(pool_has(p, "o/r") && !pool_has(p, "o/"));
    pthread_mutex_lock(&f->scan_mu);
    f->scan[1] = offer(f, 2, MB);
    snprintf(f->scan[1].id, sizeof f->scan[1].id, "o/r:Q4_0");
    f->n_scan = 2;
    pthread_mutex_unlock(&f->scan_mu);
    EVENTUALLY(!names_one(p, "o/r"), POOL_SCAN_SECONDS + 2); /* the next scan sees both */
    cr_expect_eq(pool_acquire(p, "o/r", NULL, &m, &err), STATUS_NOT_FOUND);
    cr_expect(strstr(err.msg, "2 quants"), "%s", err.msg);
    pthread_mutex_lock(&f->scan_mu);
    f->scan[0] = f->scan[1];
    f->n_scan = 1;
    pthread_mutex_unlock(&f->scan_mu);
    EVENTUALLY(names_one(p, "o/r"), POOL_SCAN_SECONDS + 2);
    int n = 0;
    PoolInfo *l = pool_list(p, false, &n);
    cr_expect_eq(n, 1);
    cr_expect_str_eq(l[0].id, "o/r:Q4_0");
    free(l);
    pool_free(p);
    fix_free(f);
}

static bool always_gone(void *arg) {
    (void)arg;
    return true;
}

Test(pool, a_waiter_whose_client_left_stops_waiting) {
    Fix *f = fix_new();
    Pool *p = pool_with(f, 1, 0, -1, 30, false);
    const ServerModel *a = take(p, "m0");
    PoolWaiter w = {always_gone, NULL};
    const ServerModel *m = NULL;
    Err err = {0};
    double t0 = perf_now();
    cr_expect_eq(pool_acquire(p, "m1", &w, &m, &err), STATUS_BUSY);
    cr_expect(perf_now() - t0 < 5, "it did not wait out the 30 s");
    cr_expect(strstr(err.msg, "client left"), "%s", err.msg);
    pool_release(p, a);
    pool_free(p);
    fix_free(f);
}

/* ---- counters across an unload ---- */

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool ended;
} Done;

static void on_event(void *ctx, const SchedEvent *ev) {
    Done *d = ctx;
    if (ev->type != SCHED_EV_END)
        return;
    pthread_mutex_lock(&d->mu);
    d->ended = true;
    pthread_cond_signal(&d->cv);
    pthread_mutex_unlock(&d->mu);
}

Test(pool, counters_survive_an_unload) {
    Fix *f = fix_new();
    Pool *p = pool_with(f, 0, 0, 0, 5, false);
    const ServerModel *m = take(p, "m0");
    int32_t prompt[8] = {3, 4, 5, 6, 7, 8, 9, 10};
    SchedReqParams rp = {0};
    rp.n_choices = 1;
    rp.max_tokens = 5;
    rp.ignore_eos = true;
    rp.sampling = sampler_defaults();
    rp.sampling.temperature = 0;
    Done d = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    Err err = {0};
    cr_assert(sched_submit(m->sched, prompt, 8, &rp, on_event, &d, NULL, &err) == STATUS_OK, "%s",
              err.msg);
    pthread_mutex_lock(&d.mu);
    while (!d.ended)
        pthread_cond_wait(&d.cv, &d.mu);
    pthread_mutex_unlock(&d.mu);
    pool_release(p, m);
    EVENTUALLY(state_of(p, "m0") == POOL_UNLOADED, 3.0);
    cr_assert_eq(state_of(p, "m0"), POOL_UNLOADED);
    int n = 0;
    PoolInfo *l = pool_list(p, true, &n);
    cr_assert_eq(n, 1, "only models ever loaded are listed for metrics");
    cr_expect_str_eq(l[0].id, "m0");
    cr_expect_eq(l[0].stats.tokens_generated, 5, "%llu",
                 (unsigned long long)l[0].stats.tokens_generated);
    cr_expect_eq(l[0].stats.tokens_prompt, 8);
    cr_expect_eq(l[0].stats.requests_done, 1);
    cr_expect_eq(l[0].stats.running, 0);
    cr_expect_eq(l[0].loads, 1);
    cr_expect(l[0].load_seconds > 0);
    free(l);
    pool_free(p);
    fix_free(f);
}
