/* pool.c - the models a server offers, loaded on demand (pool.h).
 *
 * One mutex guards every entry's state; loads and unloads run with it
 * released (the entry marked LOADING or UNLOADING meanwhile), and every
 * change of state is broadcast on one condition that waiting requests and
 * the keep-alive thread sleep on. Loads run on the thread of the request
 * that found the model unloaded; unloads for room on the thread that needs
 * the room; idle unloads on the pool's thread. */
#include "serve/pool.h"

#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/perf.h"

#define POOL_POLL_SECONDS 0.05 /* a waiting request looks at its client this often */

typedef enum { GONE_LRU, GONE_IDLE, GONE_REMOVED, GONE_STOP } GoneWhy;

typedef struct {
    PoolOffer o;
    PoolState state;
    bool pinned;
    bool offered; /* on offer now (fixed, or in the last scan) */
    bool fixed;   /* pool_add()ed: always on offer, before the scanned ones */
    int refs;
    double last_used;
    ServerModel m;     /* valid while LOADED (and UNLOADING, for the unloader) */
    uint64_t loads;    /* finished loads */
    uint64_t load_gen; /* bumped when a load ends, well or not */
    bool load_failed;  /* the last load failed: load_err says why */
    Err load_err;
    double load_seconds;
    SchedStats retired; /* counters of earlier loads */
} Entry;

struct Pool {
    PoolConfig cfg;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* any change of state or reference */
    Entry *e[POOL_MAX_MODELS];
    int n;
    Entry *order[POOL_MAX_MODELS]; /* on offer, in order */
    int n_order;
    double scanned;      /* when the last scan ended (0: never) */
    double scan_started; /* when the last (or running) scan started */
    bool scanning;
    PoolStats st;
    bool stop;
    bool has_thread;
    pthread_t thread;
};

const char *pool_state_name(PoolState s) {
    switch (s) {
    case POOL_UNLOADED: return "unloaded";
    case POOL_LOADING: return "loading";
    case POOL_LOADED: return "loaded";
    case POOL_UNLOADING: return "unloading";
    }
    return "unknown";
}

/* ---- waiting ---- */

static void wait_for(Pool *p, double seconds) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    double t = (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9 + seconds;
    ts.tv_sec = (time_t)t;
    ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&p->cv, &p->mu, &ts);
}

/* ---- the list on offer ---- */

static Entry *entry_by_id(Pool *p, const char *id) {
    for (int i = 0; i < p->n; i++)
        if (!strcmp(p->e[i]->o.id, id))
            return p->e[i];
    return NULL;
}

static Entry *entry_new(Pool *p, const PoolOffer *o, Err *err) {
    if (p->n >= POOL_MAX_MODELS) {
        err_set(err, STATUS_LIMIT, "more than %d models on offer", POOL_MAX_MODELS);
        return NULL;
    }
    Entry *e = calloc(1, sizeof *e);
    if (!e) {
        err_set(err, STATUS_NOMEM, "out of memory");
        return NULL;
    }
    e->o = *o;
    e->o.id[POOL_ID_MAX - 1] = '\0';
    e->o.path[PATH_MAX - 1] = '\0';
    p->e[p->n++] = e;
    return e;
}

/* Merge a scan's list (locked): the fixed entries first, then the scan's
 * in its order; scanned entries missing from it are no longer offered. */
static void merge_scan(Pool *p, const PoolOffer *list, int n_list) {
    Err err = {0};
    for (int i = 0; i < p->n; i++)
        if (!p->e[i]->fixed)
            p->e[i]->offered = false;
    p->n_order = 0;
    for (int i = 0; i < p->n; i++)
        if (p->e[i]->fixed)
            p->order[p->n_order++] = p->e[i];
    for (int i = 0; i < n_list && p->n_order < POOL_MAX_MODELS; i++) {
        Entry *e = entry_by_id(p, list[i].id);
        if (e && (e->fixed || e->offered))
            continue; /* a fixed id wins; a repeated id is offered once */
        if (!e && !(e = entry_new(p, &list[i], &err)))
            break;
        if (e->state == POOL_UNLOADED) /* the file may have changed (pulled again) */
            e->o = list[i];
        e->offered = true;
        p->order[p->n_order++] = e;
    }
}

/* Read the scan hook's list (locked on entry and exit; the hook runs
 * unlocked, one scan at a time). */
static void run_scan(Pool *p) {
    p->scanning = true;
    p->scan_started = perf_now();
    pthread_mutex_unlock(&p->mu);
    PoolOffer *list = NULL;
    int n = 0;
    Err err = {0};
    Status st = p->cfg.hooks.scan(p->cfg.hooks.ctx, &list, &n, &err);
    pthread_mutex_lock(&p->mu);
    p->scanning = false;
    p->scanned = perf_now();
    if (!st) /* a failed scan keeps the last list */
        merge_scan(p, list, n);
    free(list);
    pthread_cond_broadcast(&p->cv);
}

/* Scan again when the list is older than 'max_age' seconds (none when a
 * scan runs now). */
static void maybe_scan(Pool *p, double max_age) {
    if (!p->cfg.hooks.scan || p->scanning)
        return;
    if (p->scanned > 0 && perf_now() - p->scanned < max_age)
        return;
    run_scan(p);
}

/* Make sure a scan that started after time 't' (a request's arrival) has
 * ended: one running now that started after it is waited for, else one is
 * run. So a model pulled before a request arrived is found, and requests
 * for unknown models arriving together share one scan. */
static void scan_since(Pool *p, double t) {
    if (!p->cfg.hooks.scan)
        return;
    while (p->scanning)
        wait_for(p, POOL_POLL_SECONDS);
    if (p->scan_started < t)
        run_scan(p);
}

/* The offered entry 'id' names (NULL or "": the first on offer): the one
 * with that id, else, for an id without ':', the only one whose id is
 * "ID:..." (OWNER/REPO for its one quant, as -m takes it). *n_prefixed
 * (may be NULL) gets how many "ID:..." there were when none was found. */
static Entry *find_n(Pool *p, const char *id, int *n_prefixed) {
    if (n_prefixed)
        *n_prefixed = 0;
    for (int i = 0; i < p->n_order; i++)
        if (!id || !*id || !strcmp(p->order[i]->o.id, id))
            return p->order[i];
    if (strchr(id, ':'))
        return NULL;
    size_t n = strlen(id);
    Entry *hit = NULL;
    int hits = 0;
    for (int i = 0; i < p->n_order; i++)
        if (!strncmp(p->order[i]->o.id, id, n) && p->order[i]->o.id[n] == ':') {
            hit = p->order[i];
            hits++;
        }
    if (hits == 1)
        return hit;
    if (n_prefixed)
        *n_prefixed = hits;
    return NULL;
}

static Entry *find(Pool *p, const char *id) { return find_n(p, id, NULL); }

/* ---- loading and unloading (locked on entry and exit) ---- */

static bool sched_idle(Sched *s) {
    SchedStats st;
    sched_stats(s, &st);
    return st.running == 0 && st.queued == 0;
}

static bool unloadable(const Entry *e) {
    return e->state == POOL_LOADED && !e->pinned && e->refs == 0 && sched_idle(e->m.sched);
}

static void add_counters(SchedStats *to, const SchedStats *from) {
    to->requests_done += from->requests_done;
    to->requests_cancelled += from->requests_cancelled;
    to->tokens_prompt += from->tokens_prompt;
    to->tokens_cached += from->tokens_cached;
    to->tokens_generated += from->tokens_generated;
    to->prefix_hits += from->prefix_hits;
    to->steps += from->steps;
    to->busy_seconds += from->busy_seconds;
}

static void unload(Pool *p, Entry *e, GoneWhy why) {
    e->state = POOL_UNLOADING;
    SchedStats fin;
    sched_stats(e->m.sched, &fin);
    pthread_mutex_unlock(&p->mu);
    p->cfg.hooks.unload(p->cfg.hooks.ctx, &e->m);
    pthread_mutex_lock(&p->mu);
    add_counters(&e->retired, &fin);
    memset(&e->m, 0, sizeof e->m);
    e->state = POOL_UNLOADED;
    if (why == GONE_LRU)
        p->st.unloads_lru++;
    else if (why == GONE_IDLE)
        p->st.unloads_idle++;
    else if (why == GONE_REMOVED)
        p->st.unloads_removed++;
    pthread_cond_broadcast(&p->cv);
}

static Status load(Pool *p, Entry *e, Err *err) {
    e->state = POOL_LOADING;
    PoolOffer o = e->o;
    pthread_mutex_unlock(&p->mu);
    double t0 = perf_now();
    ServerModel m;
    memset(&m, 0, sizeof m);
    Err lerr = {0};
    Status st = p->cfg.hooks.load(p->cfg.hooks.ctx, &o, &m, &lerr);
    double dt = perf_now() - t0;
    pthread_mutex_lock(&p->mu);
    e->load_gen++;
    if (st) {
        e->state = POOL_UNLOADED;
        e->load_failed = true;
        err_set(&e->load_err, st, "cannot load model '%s': %s", o.id, lerr.msg);
        *err = e->load_err;
        p->st.load_failures++;
    } else {
        m.id = e->o.id;
        e->m = m;
        e->state = POOL_LOADED;
        e->load_failed = false;
        e->loads++;
        e->load_seconds = dt;
        e->o.n_ctx = sched_n_ctx(m.sched);
        e->last_used = perf_now();
        p->st.loads++;
        p->st.load_seconds_total += dt;
    }
    pthread_cond_broadcast(&p->cv);
    return st;
}

/* Bytes resident as the budget counts them: file bytes of every model not
 * unloaded, plus the KV pages of the loaded ones. */
static uint64_t bytes_resident(Pool *p) {
    uint64_t b = 0;
    for (int i = 0; i < p->n; i++) {
        Entry *e = p->e[i];
        if (e->state == POOL_UNLOADED)
            continue;
        b += e->o.bytes;
        if (e->state == POOL_LOADED) {
            SchedStats st;
            sched_stats(e->m.sched, &st);
            b += st.kv_bytes_resident;
        }
    }
    return b;
}

static int n_resident(Pool *p) {
    int n = 0;
    for (int i = 0; i < p->n; i++)
        n += p->e[i]->state != POOL_UNLOADED;
    return n;
}

static bool needs_room(Pool *p, const Entry *e) {
    if (p->cfg.max_loaded > 0 && n_resident(p) + 1 > p->cfg.max_loaded)
        return true;
    return p->cfg.memory_budget && bytes_resident(p) + e->o.bytes > p->cfg.memory_budget;
}

/* The least recently used model that may be unloaded, other than 'keep'. */
static Entry *lru_idle(Pool *p, const Entry *keep) {
    Entry *v = NULL;
    for (int i = 0; i < p->n; i++) {
        Entry *e = p->e[i];
        if (e != keep && unloadable(e) && (!v || e->last_used < v->last_used))
            v = e;
    }
    return v;
}

/* ---- the keep-alive thread ---- */

static void *keep_alive_main(void *arg) {
    Pool *p = arg;
    pthread_mutex_lock(&p->mu);
    while (!p->stop) {
        maybe_scan(p, POOL_SCAN_SECONDS);
        double now = perf_now(), next = 1.0; /* look again at least every second */
        bool again = false;
        for (int i = 0; i < p->n && !again; i++) {
            Entry *e = p->e[i];
            if (!unloadable(e))
                continue;
            double left = p->cfg.keep_alive < 0 ? 1e30 : e->last_used + p->cfg.keep_alive - now;
            if (!e->offered || left <= 0) {
                unload(p, e, e->offered ? GONE_IDLE : GONE_REMOVED);
                again = true; /* the lock was let go: start over */
            } else if (left < next) {
                next = left;
            }
        }
        if (!again && !p->stop)
            wait_for(p, next < 0.01 ? 0.01 : next);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* ---- the interface ---- */

Status pool_new(Pool **out, const PoolConfig *cfg, Err *err) {
    *out = NULL;
    if (!cfg->hooks.load || !cfg->hooks.unload)
        return err_set(err, STATUS_INVALID, "a pool needs load and unload hooks");
    Pool *p = calloc(1, sizeof *p);
    if (!p)
        return err_set(err, STATUS_NOMEM, "out of memory");
    p->cfg = *cfg;
    if (p->cfg.wait_seconds <= 0)
        p->cfg.wait_seconds = POOL_WAIT_SECONDS;
    pthread_mutex_init(&p->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_cond_init(&p->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&p->thread, NULL, keep_alive_main, p) != 0) {
        pool_free(p);
        return err_set(err, STATUS_NOMEM, "cannot start the pool's thread");
    }
    p->has_thread = true;
    *out = p;
    return STATUS_OK;
}

void pool_free(Pool *p) {
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    if (p->has_thread)
        pthread_join(p->thread, NULL);
    pthread_mutex_lock(&p->mu);
    for (int i = 0; i < p->n; i++)
        if (p->e[i]->state == POOL_LOADED)
            unload(p, p->e[i], GONE_STOP);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n; i++)
        free(p->e[i]);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

Status pool_add(Pool *p, const PoolOffer *o, const ServerModel *loaded, Err *err) {
    pthread_mutex_lock(&p->mu);
    Entry *e = entry_by_id(p, o->id);
    Status st = STATUS_OK;
    if (e) {
        st = err_set(err, STATUS_INVALID, "two models are named '%s' (use --alias)", o->id);
    } else if (!(e = entry_new(p, o, err))) {
        st = err->status;
    } else {
        e->fixed = e->offered = true;
        if (loaded) {
            e->m = *loaded;
            e->m.id = e->o.id;
            e->state = POOL_LOADED;
            e->pinned = true;
            e->loads = 1;
            e->o.n_ctx = sched_n_ctx(loaded->sched);
            e->last_used = perf_now();
        }
        /* the fixed entries stay first on offer */
        int k = 0;
        while (k < p->n_order && p->order[k]->fixed)
            k++;
        memmove(&p->order[k + 1], &p->order[k], (size_t)(p->n_order - k) * sizeof p->order[0]);
        p->order[k] = e;
        p->n_order++;
    }
    pthread_mutex_unlock(&p->mu);
    return st;
}

Status pool_acquire(Pool *p, const char *id, const PoolWaiter *w, const ServerModel **out,
                    Err *err) {
    *out = NULL;
    pthread_mutex_lock(&p->mu);
    double t0 = perf_now();
    maybe_scan(p, POOL_SCAN_SECONDS);
    bool rescanned = false, waited_load = false;
    uint64_t gen = 0;
    Status st = STATUS_OK;
    for (;;) {
        int n_prefixed = 0;
        Entry *e = find_n(p, id, &n_prefixed);
        if (!e && !rescanned) { /* pulled a moment ago? */
            rescanned = true;
            scan_since(p, t0);
            continue;
        }
        if (!e && n_prefixed > 1) {
            st = err_set(err, STATUS_NOT_FOUND,
                         "The model '%.200s' is on offer in %d quants: name one (GET /v1/models "
                         "lists them).",
                         id, n_prefixed);
            break;
        }
        if (!e) {
            st = id && *id ? err_set(err, STATUS_NOT_FOUND,
                                     "The model '%.200s' does not exist (GET /v1/models lists "
                                     "the models served).",
                                     id)
                           : err_set(err, STATUS_NOT_FOUND, "no model is on offer");
            break;
        }
        if (e->state == POOL_LOADED) {
            e->refs++;
            e->last_used = perf_now();
            *out = &e->m;
            break;
        }
        if (e->state == POOL_UNLOADED && waited_load && e->load_gen != gen && e->load_failed) {
            *err = e->load_err; /* the load this request waited for failed */
            st = err->status;
            break;
        }
        if (e->state == POOL_UNLOADED && p->cfg.memory_budget &&
            e->o.bytes > p->cfg.memory_budget) {
            st = err_set(err, STATUS_LIMIT,
                         "model '%s' needs %llu bytes, more than the memory budget of %llu "
                         "(--memory-budget)",
                         e->o.id, (unsigned long long)e->o.bytes,
                         (unsigned long long)p->cfg.memory_budget);
            break;
        }
        if (e->state == POOL_UNLOADED && !needs_room(p, e)) {
            st = load(p, e, err);
            if (st)
                break;
            continue; /* still locked since the load ended: it is ours to take */
        }
        if (e->state == POOL_UNLOADED) {
            Entry *v = lru_idle(p, e);
            if (v) {
                unload(p, v, GONE_LRU);
                continue;
            }
        }
        if (e->state == POOL_LOADING && !waited_load) {
            waited_load = true;
            gen = e->load_gen;
        }
        /* loading, unloading, or no room yet: wait */
        if (w && w->gone && w->gone(w->arg)) {
            st = err_set(err, STATUS_BUSY, "the client left while model '%s' was %s", e->o.id,
                         e->state == POOL_LOADING ? "loading" : "waiting for room");
            break;
        }
        if (perf_now() - t0 > p->cfg.wait_seconds) {
            st = e->state == POOL_LOADING || e->state == POOL_UNLOADING
                     ? err_set(err, STATUS_BUSY, "model '%s' is still %s after %.0f s", e->o.id,
                               pool_state_name(e->state), p->cfg.wait_seconds)
                     : err_set(err, STATUS_BUSY,
                               "no room to load model '%s' within %.0f s: every loaded model is "
                               "in use (--max-loaded %d, --memory-budget %llu)",
                               e->o.id, p->cfg.wait_seconds, p->cfg.max_loaded,
                               (unsigned long long)p->cfg.memory_budget);
            break;
        }
        wait_for(p, POOL_POLL_SECONDS);
    }
    pthread_mutex_unlock(&p->mu);
    return st;
}

void pool_release(Pool *p, const ServerModel *m) {
    if (!m)
        return;
    Entry *e = (Entry *)(void *)((char *)(void *)m - offsetof(Entry, m));
    pthread_mutex_lock(&p->mu);
    ASSERT(e->refs > 0);
    e->refs--;
    e->last_used = perf_now();
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

bool pool_has(Pool *p, const char *id) {
    pthread_mutex_lock(&p->mu);
    double t0 = perf_now();
    maybe_scan(p, POOL_SCAN_SECONDS);
    bool has = find(p, id) != NULL;
    if (!has && id && *id) {
        scan_since(p, t0);
        has = find(p, id) != NULL;
    }
    pthread_mutex_unlock(&p->mu);
    return has;
}

void pool_default_id(Pool *p, char *out, size_t cap) {
    pthread_mutex_lock(&p->mu);
    maybe_scan(p, POOL_SCAN_SECONDS);
    Entry *e = find(p, NULL);
    snprintf(out, cap, "%s", e ? e->o.id : "");
    pthread_mutex_unlock(&p->mu);
}

static void info_of(const Entry *e, PoolInfo *in) {
    memset(in, 0, sizeof *in);
    memcpy(in->id, e->o.id, sizeof in->id);
    in->created = e->o.created;
    in->state = e->state;
    in->n_ctx = e->o.n_ctx;
    in->refs = e->refs;
    in->pinned = e->pinned;
    in->bytes = e->o.bytes;
    in->loads = e->loads;
    in->load_seconds = e->load_seconds;
    if (e->state == POOL_LOADED)
        sched_stats(e->m.sched, &in->stats);
    add_counters(&in->stats, &e->retired);
}

PoolInfo *pool_list(Pool *p, bool used_only, int *n) {
    pthread_mutex_lock(&p->mu);
    maybe_scan(p, POOL_SCAN_SECONDS);
    PoolInfo *out = calloc((size_t)p->n + 1, sizeof *out);
    *n = 0;
    if (out) {
        if (used_only) { /* every model ever loaded, on offer or not (counters) */
            for (int i = 0; i < p->n; i++)
                if (p->e[i]->loads || p->e[i]->state != POOL_UNLOADED)
                    info_of(p->e[i], &out[(*n)++]);
        } else {
            for (int i = 0; i < p->n_order; i++)
                info_of(p->order[i], &out[(*n)++]);
        }
    }
    pthread_mutex_unlock(&p->mu);
    return out;
}

void pool_stats(Pool *p, PoolStats *st) {
    pthread_mutex_lock(&p->mu);
    *st = p->st;
    st->loaded = st->loading = 0;
    for (int i = 0; i < p->n; i++) {
        st->loaded += p->e[i]->state == POOL_LOADED;
        st->loading += p->e[i]->state == POOL_LOADING;
    }
    st->bytes_loaded = bytes_resident(p);
    pthread_mutex_unlock(&p->mu);
}
