/* moderate.c - classifier + policy + verdict cache (moderate.h). */
#include "safety/moderate.h"

#include <math.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/perf.h"
#include "safety/normalize.h"

typedef struct {
    uint8_t key[MOD_HASH_BYTES];
    SafeScores scores;
    uint64_t used; /* 0: empty */
} ModEntry;

struct Moderator {
    Classifier *c;
    Policy p;
    pthread_mutex_t mu;
    ModEntry *cache; /* MOD_CACHE_ENTRIES, open addressing by the key's first bytes */
    uint64_t clock;
};

Status mod_new(Moderator **out, Classifier *c, const Policy *p, Err *err) {
    *out = NULL;
    Moderator *m = calloc(1, sizeof *m);
    ModEntry *cache = calloc(MOD_CACHE_ENTRIES, sizeof *cache);
    if (!m || !cache || sodium_init() < 0) {
        free(m);
        free(cache);
        return err_set(err, STATUS_NOMEM, "moderation: out of memory");
    }
    m->c = c;
    m->p = *p;
    m->cache = cache;
    pthread_mutex_init(&m->mu, NULL);
    *out = m;
    return STATUS_OK;
}

void mod_free(Moderator *m) {
    if (!m)
        return;
    classifier_free(m->c);
    pthread_mutex_destroy(&m->mu);
    free(m->cache);
    free(m);
}

const Policy *mod_policy(const Moderator *m) { return &m->p; }
const char *mod_name(const Moderator *m) { return m->c->name; }
const Classifier *mod_classifier(const Moderator *m) { return m->c; }

void mod_hash_hex(const uint8_t hash[MOD_HASH_BYTES], char *out) {
    sodium_bin2hex(out, 2 * MOD_HASH_BYTES + 1, hash, MOD_HASH_BYTES);
}

Status mod_scores(Moderator *m, const SafeText *t, SafeScores *out, Err *err) {
    memset(out, 0, sizeof *out);
    double deadline = perf_now() + m->p.timeout_ms / 1000.0;
    Status r = m->c->score(m->c, t, deadline, out, err);
    if (!r)
        safe_scores_close(out);
    return r;
}

/* The cache key: BLAKE2b-256 of direction, classifier and the folds. */
static Status key_of(const Moderator *m, const SafeText *t, uint8_t key[MOD_HASH_BYTES], Err *err) {
    char *ft = NULL, *fc = NULL;
    size_t ftl = 0, fcl = 0;
    Status r = norm_fold(t->text, t->len, &ft, &ftl, err);
    if (!r && t->context && m->c->uses_context)
        r = norm_fold(t->context, t->context_len, &fc, &fcl, err);
    if (!r) {
        crypto_generichash_state h;
        uint8_t d = (uint8_t)t->dir;
        uint64_t lens[2] = {ftl, fcl};
        crypto_generichash_init(&h, NULL, 0, MOD_HASH_BYTES);
        crypto_generichash_update(&h, &d, 1);
        crypto_generichash_update(&h, (const uint8_t *)m->c->name, strlen(m->c->name) + 1);
        crypto_generichash_update(&h, (const uint8_t *)lens, sizeof lens);
        crypto_generichash_update(&h, (const uint8_t *)ft, ftl);
        if (fc)
            crypto_generichash_update(&h, (const uint8_t *)fc, fcl);
        crypto_generichash_final(&h, key, MOD_HASH_BYTES);
    }
    free(ft);
    free(fc);
    return r;
}

static ModEntry *slot(Moderator *m, const uint8_t key[MOD_HASH_BYTES], bool *found) {
    /* 4-way set: the key's first bytes pick the set, the oldest is replaced */
    uint32_t set;
    memcpy(&set, key, sizeof set);
    ModEntry *s = &m->cache[(set % (MOD_CACHE_ENTRIES / 4)) * 4], *old = s;
    for (int i = 0; i < 4; i++) {
        if (s[i].used && !memcmp(s[i].key, key, MOD_HASH_BYTES)) {
            *found = true;
            return &s[i];
        }
        if (s[i].used < old->used)
            old = &s[i];
    }
    *found = false;
    return old;
}

static void fail(const Moderator *m, ModResult *out, const Err *err) {
    out->error = true;
    snprintf(out->why, sizeof out->why, "%.150s", err->msg[0] ? err->msg : "the classifier failed");
    for (int c = 0; c < SAFE_N_CAT; c++)
        out->scores.s[c] = 0;
    out->v.flagged = (1u << SAFE_N_CAT) - 1;
    out->v.blocked = m->p.fail_open ? 0 : out->v.flagged;
    out->v.action = m->p.fail_open ? POLICY_FLAG : POLICY_BLOCK;
}

void mod_check(Moderator *m, const SafeText *t, ModResult *out) {
    memset(out, 0, sizeof *out);
    Err err = {0};
    if (key_of(m, t, out->hash, &err)) {
        fail(m, out, &err);
        return;
    }
    bool found;
    pthread_mutex_lock(&m->mu);
    ModEntry *e = slot(m, out->hash, &found);
    if (found) {
        e->used = ++m->clock;
        out->scores = e->scores;
        out->cached = true;
    }
    pthread_mutex_unlock(&m->mu);
    if (!found) {
        if (mod_scores(m, t, &out->scores, &err)) {
            fail(m, out, &err); /* failures are not cached: the next try may pass */
            return;
        }
        pthread_mutex_lock(&m->mu);
        e = slot(m, out->hash, &found);
        memcpy(e->key, out->hash, MOD_HASH_BYTES);
        e->scores = out->scores;
        e->used = ++m->clock;
        pthread_mutex_unlock(&m->mu);
    }
    policy_decide(&m->p, t->dir, &out->scores, &out->v);
}

size_t mod_stream_step(const ModStream *st) {
    return st->checked < MOD_STREAM_EVERY ? MOD_STREAM_FIRST : MOD_STREAM_EVERY;
}

bool mod_stream_due(const ModStream *st, size_t len, bool final) {
    return len > st->checked && (final || len - st->checked >= mod_stream_step(st));
}

void mod_stream_check(Moderator *m, ModStream *st, const char *reply, size_t len,
                      const char *context, size_t context_len, ModResult *out) {
    size_t from = st->checked > MOD_STREAM_OVERLAP ? st->checked - MOD_STREAM_OVERLAP : 0;
    while (from > 0 && ((unsigned char)reply[from] & 0xC0) == 0x80)
        from--; /* start on a character */
    bool ctx = context && m->c->uses_context;
    SafeText t = {.dir = SAFE_OUTPUT,
                  .text = reply + from,
                  .len = len - from,
                  .context = ctx ? context : NULL,
                  .context_len = ctx ? context_len : 0};
    mod_check(m, &t, out);
    st->checked = len;
}

json_t *mod_result_json(const SafeScores *s, const PolicyVerdict *v) {
    json_t *cats = json_object(), *scores = json_object(), *types = json_object();
    json_t *r = json_object();
    if (!cats || !scores || !types || !r) {
        json_decref(cats);
        json_decref(scores);
        json_decref(types);
        json_decref(r);
        return NULL;
    }
    for (int c = 0; c < SAFE_N_CAT; c++) {
        const char *k = safe_cat_name(c);
        json_object_set_new(cats, k, json_boolean(v->flagged & (1u << c)));
        /* six decimals: finer than any threshold, shorter than a float's noise */
        json_object_set_new(scores, k, json_real(round((double)s->s[c] * 1e6) / 1e6));
        json_object_set_new(types, k, json_pack("[s]", "text"));
    }
    json_object_set_new(r, "flagged", json_boolean(v->flagged != 0));
    json_object_set_new(r, "categories", cats);
    json_object_set_new(r, "category_scores", scores);
    json_object_set_new(r, "category_applied_input_types", types);
    return r;
}
