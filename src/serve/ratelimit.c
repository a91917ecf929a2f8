/* ratelimit.c - token buckets per key in a fixed open-addressing table.
 *
 * Table: RL_SLOTS = 2 x RL_MAX_KEYS slots, linear probing, at most
 * RL_MAX_KEYS entries (load <= 1/2, so probes stay short). Removing an
 * entry uses backward-shift deletion (no tombstones), which keeps every
 * remaining entry reachable from its home slot. When RL_MAX_KEYS entries
 * exist and a new key arrives, the least recently used entry with no open
 * stream is removed first; if every entry has an open stream the request is
 * refused as RL_STREAMS (the server's connection limit keeps that
 * theoretical).
 *
 * Buckets: level in [-inf, capacity], refilled at capacity/60 per second
 * from the last update. Tokens are taken up front and refunded in
 * rl_finish(); a request that used more than its estimate is charged the
 * difference, which may take the bucket below zero (later requests wait).
 *
 * Not here: deciding a request's cost (the server does: prompt tokens +
 * max_tokens, the max_tokens part capped so the total is <= tpm). */
#include "serve/ratelimit.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RL_SLOTS (2 * RL_MAX_KEYS)
#define RL_WINDOW 60.0       /* seconds to refill an empty bucket */
#define RL_STREAMS_RETRY 1.0 /* retry_after when only streams are the problem */
#define RL_EPS 1e-9          /* tokens of rounding slack */

typedef struct {
    double level; /* tokens available now (at 'last') */
    int capacity; /* limit this level belongs to; 0 = unlimited */
} Bucket;

typedef struct {
    uint8_t id[RL_ID_BYTES];
    bool used;
    Bucket req, tok;
    double last;      /* time of the last refill */
    double last_used; /* for LRU */
    int streams;      /* open requests */
} RlEntry;

struct RateLimiter {
    pthread_mutex_t mu;
    int n_entries;
    RlEntry slots[RL_SLOTS];
};

RateLimiter *rl_new(void) {
    RateLimiter *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    if (pthread_mutex_init(&r->mu, NULL) != 0) {
        free(r);
        return NULL;
    }
    return r;
}

void rl_free(RateLimiter *r) {
    if (!r)
        return;
    pthread_mutex_destroy(&r->mu);
    free(r);
}

/* ---- the table ---- */

/* FNV-1a over the whole id: ids are usually hashes already, but the
 * anonymous id and test ids are not. */
static unsigned home_slot(const uint8_t id[RL_ID_BYTES]) {
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < RL_ID_BYTES; i++)
        h = (h ^ id[i]) * 1099511628211ull;
    return (unsigned)(h ^ (h >> 32)) % RL_SLOTS;
}

/* Slot holding 'id', or the empty slot where it would go (never both
 * missing: the table always has empty slots). */
static unsigned probe(const RateLimiter *r, const uint8_t id[RL_ID_BYTES], bool *found) {
    unsigned i = home_slot(id);
    while (r->slots[i].used) {
        if (!memcmp(r->slots[i].id, id, RL_ID_BYTES)) {
            *found = true;
            return i;
        }
        i = (i + 1) % RL_SLOTS;
    }
    *found = false;
    return i;
}

/* Backward-shift deletion: pull later entries of the cluster back over the
 * hole when the hole lies on their probe path. */
static void remove_slot(RateLimiter *r, unsigned hole) {
    unsigned j = hole;
    for (;;) {
        j = (j + 1) % RL_SLOTS;
        if (!r->slots[j].used)
            break;
        unsigned home = home_slot(r->slots[j].id);
        /* Entry j may move to 'hole' unless its home lies cyclically in (hole, j]. */
        bool home_between = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
        if (!home_between) {
            r->slots[hole] = r->slots[j];
            hole = j;
        }
    }
    memset(&r->slots[hole], 0, sizeof r->slots[hole]);
    r->n_entries--;
}

/* Remove the least recently used entry with no open stream; false if none. */
static bool evict_lru(RateLimiter *r) {
    int best = -1;
    for (int i = 0; i < RL_SLOTS; i++) {
        const RlEntry *e = &r->slots[i];
        if (e->used && e->streams == 0 && (best < 0 || e->last_used < r->slots[best].last_used))
            best = i;
    }
    if (best < 0)
        return false;
    remove_slot(r, (unsigned)best);
    return true;
}

/* The entry for 'id', created with full buckets if new; NULL when the
 * table is full of keys with open streams. */
static RlEntry *get_entry(RateLimiter *r, const uint8_t id[RL_ID_BYTES], double now) {
    bool found;
    unsigned i = probe(r, id, &found);
    if (found)
        return &r->slots[i];
    if (r->n_entries >= RL_MAX_KEYS) {
        if (!evict_lru(r))
            return NULL;
        i = probe(r, id, &found); /* the shift may have moved the empty slot */
    }
    RlEntry *e = &r->slots[i];
    memset(e, 0, sizeof *e);
    memcpy(e->id, id, RL_ID_BYTES);
    e->used = true;
    e->last = now;
    e->last_used = now;
    r->n_entries++;
    return e;
}

/* ---- buckets ---- */

static double rate(int capacity) { return capacity / RL_WINDOW; }

/* Follow a change of limit: a bucket that was unlimited starts full, a
 * smaller limit clamps the level. */
static void bucket_set_limit(Bucket *b, int capacity) {
    if (b->capacity == capacity)
        return;
    if (b->capacity == 0 || b->level > capacity)
        b->level = capacity;
    b->capacity = capacity;
}

static void bucket_refill(Bucket *b, double dt) {
    if (b->capacity <= 0)
        return;
    b->level += dt * rate(b->capacity);
    if (b->level > b->capacity)
        b->level = b->capacity;
}

/* Seconds until 'need' tokens are available (0 if they are). */
static double bucket_wait(const Bucket *b, double need) {
    /* The slack absorbs rounding of refills at rates like 7/60 per second. */
    if (b->capacity <= 0 || b->level + RL_EPS >= need)
        return 0;
    return (need - b->level) / rate(b->capacity);
}

static void bucket_report(const Bucket *b, int *limit, int *remaining, double *reset) {
    if (b->capacity <= 0) {
        *limit = *remaining = -1;
        *reset = 0;
        return;
    }
    *limit = b->capacity;
    double lv = b->level < 0 ? 0 : floor(b->level);
    *remaining = (int)lv;
    *reset = (b->capacity - b->level) / rate(b->capacity);
}

static void refill(RlEntry *e, double now) {
    double dt = now > e->last ? now - e->last : 0;
    bucket_refill(&e->req, dt);
    bucket_refill(&e->tok, dt);
    if (now > e->last)
        e->last = now;
}

static void report(const RlEntry *e, RlInfo *info) {
    bucket_report(&e->req, &info->limit_requests, &info->remaining_requests, &info->reset_requests);
    bucket_report(&e->tok, &info->limit_tokens, &info->remaining_tokens, &info->reset_tokens);
}

/* ---- requests ---- */

RlVerdict rl_begin(RateLimiter *r, const uint8_t id[RL_ID_BYTES], const RlLimits *limits, int cost,
                   double now, RlInfo *info) {
    memset(info, 0, sizeof *info);
    if (cost < 0)
        cost = 0;
    pthread_mutex_lock(&r->mu);
    RlEntry *e = get_entry(r, id, now);
    if (!e) {
        pthread_mutex_unlock(&r->mu);
        info->limit_requests = info->remaining_requests = -1;
        info->limit_tokens = info->remaining_tokens = -1;
        info->retry_after = RL_STREAMS_RETRY;
        return RL_STREAMS;
    }
    e->last_used = now;
    bucket_set_limit(&e->req, limits->rpm > 0 ? limits->rpm : 0);
    bucket_set_limit(&e->tok, limits->tpm > 0 ? limits->tpm : 0);
    refill(e, now);

    bool streams_full = limits->max_streams > 0 && e->streams >= limits->max_streams;
    double wait_req = bucket_wait(&e->req, 1);
    bool too_big = e->tok.capacity > 0 && cost > e->tok.capacity;
    /* A cost above the whole bucket never passes; report the time to full. */
    double wait_tok = too_big ? (e->tok.capacity - e->tok.level) / rate(e->tok.capacity)
                              : bucket_wait(&e->tok, cost);
    RlVerdict v = too_big        ? RL_TOKENS
                  : streams_full ? RL_STREAMS
                  : wait_req > 0 ? RL_REQUESTS
                  : wait_tok > 0 ? RL_TOKENS
                                 : RL_OK;
    if (v == RL_OK) {
        if (e->req.capacity > 0)
            e->req.level -= 1;
        if (e->tok.capacity > 0)
            e->tok.level -= cost;
        e->streams++;
    } else {
        /* The request passes once every bucket has enough (and a stream is free). */
        double w = wait_req > wait_tok ? wait_req : wait_tok;
        if (streams_full && w < RL_STREAMS_RETRY)
            w = RL_STREAMS_RETRY;
        info->retry_after = w;
    }
    report(e, info);
    pthread_mutex_unlock(&r->mu);
    return v;
}

void rl_finish(RateLimiter *r, const uint8_t id[RL_ID_BYTES], int cost, int used, double now) {
    pthread_mutex_lock(&r->mu);
    bool found;
    unsigned i = probe(r, id, &found);
    if (found) {
        RlEntry *e = &r->slots[i];
        refill(e, now);
        if (e->tok.capacity > 0) {
            e->tok.level += (double)cost - (double)used;
            if (e->tok.level > e->tok.capacity)
                e->tok.level = e->tok.capacity;
        }
        if (e->streams > 0)
            e->streams--;
        e->last_used = now;
    }
    pthread_mutex_unlock(&r->mu);
}

/* ---- header values ---- */

/* Go's time.Duration format, as OpenAI's x-ratelimit-reset-* headers use,
 * at millisecond resolution rounded up (a client that waits that long is
 * never early): 0.02 -> "20ms", 1 -> "1s", 1.5 -> "1.5s", 90 -> "1m30s",
 * 360 -> "6m0s", 3600 -> "1h0m0s". */
void rl_format_reset(double seconds, char *buf, int cap) {
    if (cap <= 0)
        return;
    if (!(seconds > 0)) /* also NaN */
        seconds = 0;
    if (seconds > 1e9) /* ~31 years; keeps the integer math exact */
        seconds = 1e9;
    long long ms = (long long)ceil(seconds * 1000.0 - 1e-6);
    if (ms < 0)
        ms = 0;
    int n;
    if (ms == 0) {
        n = snprintf(buf, (size_t)cap, "0s");
    } else if (ms < 1000) {
        n = snprintf(buf, (size_t)cap, "%lldms", ms);
    } else {
        long long h = ms / 3600000, m = ms / 60000 % 60, s = ms / 1000 % 60, frac = ms % 1000;
        char sec[16];
        if (frac == 0) {
            snprintf(sec, sizeof sec, "%lld", s);
        } else {
            int f = (int)frac, digits = 3;
            while (f % 10 == 0) {
                f /= 10;
                digits--;
            }
            snprintf(sec, sizeof sec, "%lld.%0*d", s, digits, f);
        }
        if (h > 0)
            n = snprintf(buf, (size_t)cap, "%lldh%lldm%ss", h, m, sec);
        else if (m > 0)
            n = snprintf(buf, (size_t)cap, "%lldm%ss", m, sec);
        else
            n = snprintf(buf, (size_t)cap, "%ss", sec);
    }
    if (n < 0 || n >= cap)
        buf[0] = '\0'; /* never a truncated, misleading value */
}
