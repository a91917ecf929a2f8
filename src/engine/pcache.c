/* pcache.c - the prefix cache of pcache.h: BLAKE2b chained keys, an
 * open-addressing table (linear probing, backward-shift deletion, so no
 * tombstones pile up under churn) over a fixed array of entries threaded
 * on a doubly linked LRU list. All memory is taken at pcache_new. */
#include "engine/pcache.h"

#include <sodium.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define PCACHE_DOMAIN "cgpt-pcache-v1"
#define PCACHE_HASH_CHUNK 256 /* tokens serialised per hash update */

typedef struct {
    PCacheHash key;
    int32_t block;
    int32_t prev, next; /* LRU list: prev is more recent; -1 ends */
    int32_t slot;       /* index in the table; -1 when the entry is free */
} Entry;

struct PCache {
    Entry *e;      /* (cap) */
    int32_t *tab;  /* (mask + 1) entry index, -1 empty */
    int32_t *free; /* (cap) stack of free entry indices */
    int cap, n_free, count;
    uint32_t mask;
    int32_t mru, lru; /* list ends, -1 when empty */
};

Status pcache_global_init(Err *err) {
    if (sodium_init() < 0)
        return err_set(err, STATUS_UNSUPPORTED, "prefix cache: libsodium failed to initialise");
    return STATUS_OK;
}

static void put_u32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

void pcache_root(PCacheHash *out, const uint8_t *tenant, size_t tenant_len, const uint8_t *model_id,
                 size_t id_len) {
    crypto_generichash_state st;
    uint8_t len[8];
    crypto_generichash_init(&st, NULL, 0, PCACHE_HASH_BYTES);
    crypto_generichash_update(&st, (const uint8_t *)PCACHE_DOMAIN, sizeof PCACHE_DOMAIN - 1);
    /* lengths first, so (tenant, id) pairs cannot be re-split */
    put_u32(len, (uint32_t)tenant_len);
    put_u32(len + 4, (uint32_t)id_len);
    crypto_generichash_update(&st, len, sizeof len);
    if (tenant_len)
        crypto_generichash_update(&st, tenant, tenant_len);
    if (id_len)
        crypto_generichash_update(&st, model_id, id_len);
    crypto_generichash_final(&st, out->b, PCACHE_HASH_BYTES);
}

void pcache_chain(PCacheHash *out, const PCacheHash *prev, const int32_t *tokens, int n) {
    crypto_generichash_state st;
    uint8_t buf[4 * PCACHE_HASH_CHUNK];
    crypto_generichash_init(&st, NULL, 0, PCACHE_HASH_BYTES);
    crypto_generichash_update(&st, prev->b, PCACHE_HASH_BYTES);
    for (int at = 0; at < n; at += PCACHE_HASH_CHUNK) {
        int k = n - at < PCACHE_HASH_CHUNK ? n - at : PCACHE_HASH_CHUNK;
        for (int i = 0; i < k; i++)
            put_u32(buf + 4 * i, (uint32_t)tokens[at + i]);
        crypto_generichash_update(&st, buf, (size_t)k * 4);
    }
    crypto_generichash_final(&st, out->b, PCACHE_HASH_BYTES);
}

void pcache_hash_blocks(PCacheHash *hashes, const PCacheHash *root, const int32_t *tokens,
                        int n_blocks, int block_size) {
    const PCacheHash *prev = root;
    for (int i = 0; i < n_blocks; i++) {
        pcache_chain(&hashes[i], prev, tokens + (size_t)i * (size_t)block_size, block_size);
        prev = &hashes[i];
    }
}

/* ---- the table ---------------------------------------------------------- */

PCache *pcache_new(int capacity, Err *err) {
    if (capacity < 1 || capacity > PCACHE_MAX_ENTRIES) {
        err_set(err, STATUS_LIMIT, "prefix cache: capacity %d out of range 1..%d", capacity,
                PCACHE_MAX_ENTRIES);
        return NULL;
    }
    PCache *c = calloc(1, sizeof *c);
    if (!c) {
        err_set(err, STATUS_NOMEM, "prefix cache: out of memory");
        return NULL;
    }
    uint32_t size = 4;
    while (size < 2u * (uint32_t)capacity)
        size <<= 1;
    c->cap = capacity;
    c->mask = size - 1;
    c->e = malloc(sizeof *c->e * (size_t)capacity);
    c->tab = malloc(sizeof *c->tab * (size_t)size);
    c->free = malloc(sizeof *c->free * (size_t)capacity);
    if (!c->e || !c->tab || !c->free) {
        pcache_free(c);
        err_set(err, STATUS_NOMEM, "prefix cache: out of memory for %d entries", capacity);
        return NULL;
    }
    for (uint32_t i = 0; i < size; i++)
        c->tab[i] = -1;
    for (int i = 0; i < capacity; i++) {
        c->e[i].slot = -1;
        c->free[i] = capacity - 1 - i;
    }
    c->n_free = capacity;
    c->mru = c->lru = -1;
    return c;
}

void pcache_free(PCache *c) {
    if (!c)
        return;
    free(c->e);
    free(c->tab);
    free(c->free);
    free(c);
}

static uint32_t home(const PCache *c, const PCacheHash *h) {
    uint32_t v;
    memcpy(&v, h->b, sizeof v); /* the key is uniformly random already */
    return v & c->mask;
}

/* Slot holding 'h', or -1. */
static int32_t find(const PCache *c, const PCacheHash *h) {
    for (uint32_t i = home(c, h);; i = (i + 1) & c->mask) {
        int32_t x = c->tab[i];
        if (x < 0)
            return -1;
        if (!memcmp(c->e[x].key.b, h->b, PCACHE_HASH_BYTES))
            return (int32_t)i;
    }
}

static void lru_unlink(PCache *c, int32_t x) {
    Entry *e = &c->e[x];
    if (e->prev >= 0)
        c->e[e->prev].next = e->next;
    else
        c->mru = e->next;
    if (e->next >= 0)
        c->e[e->next].prev = e->prev;
    else
        c->lru = e->prev;
    e->prev = e->next = -1;
}

static void lru_push_front(PCache *c, int32_t x) {
    Entry *e = &c->e[x];
    e->prev = -1;
    e->next = c->mru;
    if (c->mru >= 0)
        c->e[c->mru].prev = x;
    c->mru = x;
    if (c->lru < 0)
        c->lru = x;
}

static void touch(PCache *c, int32_t x) {
    if (c->mru == x)
        return;
    lru_unlink(c, x);
    lru_push_front(c, x);
}

/* Remove the entry in table slot i (backward-shift deletion) and give its
 * entry back; the caller has dealt with the block reference. */
static void remove_slot(PCache *c, uint32_t i) {
    int32_t x = c->tab[i];
    lru_unlink(c, x);
    c->e[x].slot = -1;
    c->free[c->n_free++] = x;
    c->count--;
    for (uint32_t j = (i + 1) & c->mask;; j = (j + 1) & c->mask) {
        int32_t y = c->tab[j];
        if (y < 0)
            break;
        uint32_t k = home(c, &c->e[y].key);
        /* y may move back to i unless its home lies cyclically in (i, j] */
        bool stays = i <= j ? (k > i && k <= j) : (k > i || k <= j);
        if (stays)
            continue;
        c->tab[i] = y;
        c->e[y].slot = (int32_t)i;
        i = j;
    }
    c->tab[i] = -1;
}

void pcache_clear(PCache *c, KVCache *kv) {
    if (!c)
        return;
    while (c->lru >= 0) {
        int32_t x = c->lru;
        kv_block_unref(kv, c->e[x].block);
        remove_slot(c, (uint32_t)c->e[x].slot);
    }
}

int pcache_lookup(PCache *c, const PCacheHash *hashes, int n, int32_t *blocks) {
    int k = 0;
    while (k < n) {
        int32_t s = find(c, &hashes[k]);
        if (s < 0)
            break;
        blocks[k++] = c->e[c->tab[s]].block;
    }
    for (int i = k - 1; i >= 0; i--)
        touch(c, c->tab[find(c, &hashes[i])]);
    return k;
}

int pcache_insert(PCache *c, KVCache *kv, const PCacheHash *hashes, const int32_t *blocks, int n) {
    int added = 0;
    for (int i = n - 1; i >= 0; i--) {
        int32_t s = find(c, &hashes[i]);
        if (s >= 0) {
            touch(c, c->tab[s]);
            continue;
        }
        if (c->n_free == 0)
            continue;
        int32_t x = c->free[--c->n_free];
        uint32_t j = home(c, &hashes[i]);
        while (c->tab[j] >= 0)
            j = (j + 1) & c->mask;
        c->tab[j] = x;
        c->e[x] = (Entry){.key = hashes[i], .block = blocks[i], .slot = (int32_t)j};
        lru_push_front(c, x);
        kv_block_ref(kv, blocks[i]);
        c->count++;
        added++;
    }
    return added;
}

int pcache_evict(PCache *c, KVCache *kv, int n_want) {
    int freed = 0;
    int32_t x = c->lru;
    while (x >= 0 && freed < n_want) {
        int32_t up = c->e[x].prev;
        if (kv_block_refcount(kv, c->e[x].block) == 1) {
            kv_block_unref(kv, c->e[x].block);
            remove_slot(c, (uint32_t)c->e[x].slot);
            freed++;
        }
        x = up;
    }
    return freed;
}

int pcache_count(const PCache *c) { return c ? c->count : 0; }

int pcache_evictable(const PCache *c, const KVCache *kv) {
    int n = 0;
    if (!c)
        return 0;
    for (int32_t x = c->mru; x >= 0; x = c->e[x].next)
        n += kv_block_refcount(kv, c->e[x].block) == 1;
    return n;
}

int pcache_count_evictable(const KVCache *kv, const int32_t *blocks, int n) {
    int k = 0;
    for (int i = 0; i < n; i++)
        k += kv_block_refcount(kv, blocks[i]) == 1;
    return k;
}
