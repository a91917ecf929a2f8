/* test_pcache.c - the prefix cache: the chained keys against libsodium's
 * one-shot BLAKE2b over the bytes the contract names (and a published
 * BLAKE2b-256 vector), tenant / model separation, lookup of the longest
 * chain, references held, LRU eviction that skips blocks still in use and
 * eats chains from their tails, copy on write keeping a published block
 * intact when its sequence writes there again, and a long random churn
 * against a naive model of the table (forcing home-slot collisions, so
 * backward-shift deletion is exercised). */
#include <criterion/criterion.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "engine/pcache.h"

static KVCache make_kv(int n_blocks, int bs, int n_seq, int n_ctx) {
    KVCache kv;
    Err err = {0};
    cr_assert(kv_init(&kv, 2, 1, 2, bs, n_blocks, n_seq, n_ctx, KV_F32, &err) == STATUS_OK, "%s",
              err.msg);
    return kv;
}

static PCache *make_pc(int cap) {
    Err err = {0};
    cr_assert(pcache_global_init(&err) == STATUS_OK, "%s", err.msg);
    PCache *c = pcache_new(cap, &err);
    cr_assert_not_null(c, "%s", err.msg);
    return c;
}

static const uint8_t TENANT_A[32] = {1, 2, 3};
static const uint8_t TENANT_B[32] = {1, 2, 4};
static const uint8_t MODEL_ID[8] = {'m', 'o', 'd', 'e', 'l', 0, 1, 2};

Test(pcache_hash, blake2b_vector_and_chain_bytes) {
    cr_assert(sodium_init() >= 0);
    /* BLAKE2b-256 of the empty string (RFC 7693 family, as published) */
    static const uint8_t empty[32] = {0x0e, 0x57, 0x51, 0xc0, 0x26, 0xe5, 0x43, 0xb2,
                                      0xe8, 0xab, 0x2e, 0xb0, 0x60, 0x99, 0xda, 0xa1,
                                      0xd1, 0xe5, 0xdf, 0x47, 0x77, 0x8f, 0x77, 0x87,
                                      0xfa, 0xab, 0x45, 0xcd, 0xf1, 0x2f, 0xe3, 0xa8};
    uint8_t h[32];
    crypto_generichash(h, 32, NULL, 0, NULL, 0);
    cr_expect(!memcmp(h, empty, 32), "libsodium generichash is BLAKE2b-256");

    /* pcache_chain = H(prev || tokens as int32 LE), checked one-shot over
     * a hand-built buffer, for lengths below, at and above the chunk */
    PCacheHash prev, got;
    for (int i = 0; i < 32; i++)
        prev.b[i] = (uint8_t)(i * 7 + 1);
    const int lens[] = {0, 1, 16, 255, 256, 257, 1000};
    for (size_t t = 0; t < sizeof lens / sizeof *lens; t++) {
        int n = lens[t];
        int32_t *tok = malloc(sizeof(int32_t) * (size_t)(n + 1));
        uint8_t *buf = malloc(32 + 4 * (size_t)n);
        memcpy(buf, prev.b, 32);
        for (int i = 0; i < n; i++) {
            tok[i] = (int32_t)(0x01020304u * (uint32_t)(i + 1)) ^ (i * 131);
            uint32_t v = (uint32_t)tok[i];
            buf[32 + 4 * i] = (uint8_t)v;
            buf[33 + 4 * i] = (uint8_t)(v >> 8);
            buf[34 + 4 * i] = (uint8_t)(v >> 16);
            buf[35 + 4 * i] = (uint8_t)(v >> 24);
        }
        uint8_t want[32];
        crypto_generichash(want, 32, buf, 32 + 4 * (size_t)n, NULL, 0);
        pcache_chain(&got, &prev, tok, n);
        cr_expect(!memcmp(got.b, want, 32), "chain of %d tokens", n);
        /* in place */
        PCacheHash alias = prev;
        pcache_chain(&alias, &alias, tok, n);
        cr_expect(!memcmp(alias.b, want, 32), "aliased chain of %d tokens", n);
        free(tok);
        free(buf);
    }
}

Test(pcache_hash, root_separates_tenants_and_models) {
    Err err = {0};
    cr_assert(pcache_global_init(&err) == STATUS_OK);
    PCacheHash a, a2, b, m2, anon, split1, split2;
    pcache_root(&a, TENANT_A, 32, MODEL_ID, sizeof MODEL_ID);
    pcache_root(&a2, TENANT_A, 32, MODEL_ID, sizeof MODEL_ID);
    pcache_root(&b, TENANT_B, 32, MODEL_ID, sizeof MODEL_ID);
    pcache_root(&m2, TENANT_A, 32, MODEL_ID, sizeof MODEL_ID - 1);
    pcache_root(&anon, NULL, 0, MODEL_ID, sizeof MODEL_ID);
    cr_expect(!memcmp(a.b, a2.b, 32), "deterministic");
    cr_expect(memcmp(a.b, b.b, 32), "tenants differ");
    cr_expect(memcmp(a.b, m2.b, 32), "models differ");
    cr_expect(memcmp(a.b, anon.b, 32));
    /* the same bytes split differently between tenant and model differ */
    const uint8_t ab[4] = {1, 2, 3, 4};
    pcache_root(&split1, ab, 2, ab + 2, 2);
    pcache_root(&split2, ab, 3, ab + 3, 1);
    cr_expect(memcmp(split1.b, split2.b, 32));

    /* hash_blocks chains block by block */
    int32_t tok[12];
    for (int i = 0; i < 12; i++)
        tok[i] = 100 + i;
    PCacheHash hs[3], h;
    pcache_hash_blocks(hs, &a, tok, 3, 4);
    pcache_chain(&h, &a, tok, 4);
    cr_expect(!memcmp(h.b, hs[0].b, 32));
    pcache_chain(&h, &h, tok + 4, 4);
    cr_expect(!memcmp(h.b, hs[1].b, 32));
    pcache_chain(&h, &h, tok + 8, 4);
    cr_expect(!memcmp(h.b, hs[2].b, 32));
    /* the same block contents after another prefix hash differently */
    PCacheHash other[3];
    int32_t tok2[12];
    memcpy(tok2, tok, sizeof tok);
    tok2[0] = 7;
    pcache_hash_blocks(other, &a, tok2, 3, 4);
    cr_expect(memcmp(other[1].b, hs[1].b, 32) && memcmp(other[2].b, hs[2].b, 32));
}

/* A sequence of 3 full blocks is published and found again; references. */
Test(pcache_table, publish_lookup_refs) {
    KVCache kv = make_kv(16, 4, 4, 64);
    PCache *c = make_pc(16);
    Err err = {0};
    cr_assert(kv_seq_prepare(&kv, 0, 0, 14, &err) == STATUS_OK); /* 4 blocks */
    int32_t tok[16];
    for (int i = 0; i < 16; i++)
        tok[i] = i * 3 + 1;
    PCacheHash ra, rb, ha[3], hb[3];
    pcache_root(&ra, TENANT_A, 32, MODEL_ID, sizeof MODEL_ID);
    pcache_root(&rb, TENANT_B, 32, MODEL_ID, sizeof MODEL_ID);
    pcache_hash_blocks(ha, &ra, tok, 3, 4);
    pcache_hash_blocks(hb, &rb, tok, 3, 4);
    const int32_t *t0 = kv_seq_table(&kv, 0);
    int32_t blocks[3] = {t0[0], t0[1], t0[2]};
    cr_expect_eq(pcache_insert(c, &kv, ha, blocks, 3), 3);
    cr_expect_eq(pcache_count(c), 3);
    for (int i = 0; i < 3; i++)
        cr_expect_eq(kv_block_refcount(&kv, blocks[i]), 2, "cache holds one reference");
    cr_expect_eq(kv_block_refcount(&kv, t0[3]), 1);
    cr_expect_eq(pcache_evictable(c, &kv), 0, "all in use by the sequence");
    cr_expect_eq(pcache_insert(c, &kv, ha, blocks, 3), 0, "republishing adds nothing");
    cr_expect_eq(kv_block_refcount(&kv, blocks[0]), 2);

    int32_t got[3] = {-1, -1, -1};
    cr_expect_eq(pcache_lookup(c, ha, 3, got), 3);
    cr_expect(got[0] == blocks[0] && got[1] == blocks[1] && got[2] == blocks[2]);
    cr_expect_eq(pcache_lookup(c, ha, 2, got), 2);
    cr_expect_eq(pcache_lookup(c, hb, 3, got), 0, "another tenant never hits");
    /* a different token in block 1: only block 0 matches */
    int32_t tok2[16];
    memcpy(tok2, tok, sizeof tok);
    tok2[5] ^= 1;
    PCacheHash h2[3];
    pcache_hash_blocks(h2, &ra, tok2, 3, 4);
    cr_expect_eq(pcache_lookup(c, h2, 3, got), 1);
    cr_expect_eq(kv_block_refcount(&kv, blocks[0]), 2, "lookup takes no references");

    /* another sequence attaches the hits, the first one goes away */
    cr_assert(kv_seq_attach(&kv, 1, got, 4, &err) == STATUS_OK);
    kv_seq_free(&kv, 0);
    cr_expect_eq(kv_block_refcount(&kv, blocks[0]), 2);
    cr_expect_eq(kv_block_refcount(&kv, blocks[1]), 1);
    cr_expect_eq(pcache_evictable(c, &kv), 2);
    cr_expect_eq(pcache_count_evictable(&kv, blocks, 3), 2);
    kv_seq_free(&kv, 1);
    cr_expect_eq(pcache_evictable(c, &kv), 3);
    cr_expect_eq(kv.n_free, 16 - 3, "only cached blocks are held");
    pcache_clear(c, &kv);
    cr_expect_eq(pcache_count(c), 0);
    cr_expect_eq(kv.n_free, 16);
    cr_expect_eq(pcache_lookup(c, ha, 3, got), 0);
    pcache_free(c);
    pcache_free(NULL);
    kv_free(&kv);
}

/* LRU eviction skips blocks in use, takes chains from the tail, and a
 * looked-up chain becomes the most recent. */
Test(pcache_table, eviction_order) {
    KVCache kv = make_kv(16, 2, 4, 32);
    PCache *c = make_pc(16);
    Err err = {0};
    PCacheHash r;
    pcache_root(&r, TENANT_A, 32, NULL, 0);
    int32_t ta[6] = {1, 2, 3, 4, 5, 6}, tb[6] = {9, 8, 7, 6, 5, 4};
    PCacheHash ha[3], hb[3];
    pcache_hash_blocks(ha, &r, ta, 3, 2);
    pcache_hash_blocks(hb, &r, tb, 3, 2);
    cr_assert(kv_seq_prepare(&kv, 0, 0, 6, &err) == STATUS_OK);
    cr_assert(kv_seq_prepare(&kv, 1, 0, 6, &err) == STATUS_OK);
    int32_t ba[3], bb[3];
    memcpy(ba, kv_seq_table(&kv, 0), sizeof ba);
    memcpy(bb, kv_seq_table(&kv, 1), sizeof bb);
    pcache_insert(c, &kv, ha, ba, 3); /* a older */
    pcache_insert(c, &kv, hb, bb, 3);
    kv_seq_free(&kv, 0);
    int free0 = kv.n_free;
    /* b is still used by sequence 1: eviction may only take a's blocks,
     * tail first */
    cr_expect_eq(pcache_evict(c, &kv, 1), 1);
    cr_expect_eq(kv.n_free, free0 + 1);
    int32_t got[3];
    cr_expect_eq(pcache_lookup(c, ha, 3, got), 2, "a lost its last block");
    cr_expect_eq(pcache_evict(c, &kv, 5), 2, "only a's two remaining blocks are evictable");
    cr_expect_eq(pcache_lookup(c, ha, 3, got), 0);
    cr_expect_eq(pcache_lookup(c, hb, 3, got), 3, "b untouched");
    cr_expect_eq(pcache_count(c), 3);

    /* now b is free too; a new chain d is published after it, but b is
     * looked up again, so d is the least recent */
    kv_seq_free(&kv, 1);
    int32_t td[4] = {42, 43, 44, 45};
    PCacheHash hd[2];
    pcache_hash_blocks(hd, &r, td, 2, 2);
    cr_assert(kv_seq_prepare(&kv, 2, 0, 4, &err) == STATUS_OK);
    int32_t bd[2];
    memcpy(bd, kv_seq_table(&kv, 2), sizeof bd);
    pcache_insert(c, &kv, hd, bd, 2);
    kv_seq_free(&kv, 2);
    cr_expect_eq(pcache_lookup(c, hb, 3, got), 3);
    cr_expect_eq(pcache_evict(c, &kv, 2), 2);
    cr_expect_eq(pcache_lookup(c, hd, 2, got), 0, "d went first");
    cr_expect_eq(pcache_lookup(c, hb, 3, got), 3);
    cr_expect_eq(pcache_evict(c, &kv, 1), 1);
    cr_expect_eq(pcache_lookup(c, hb, 3, got), 2, "then b's tail");
    pcache_clear(c, &kv);
    cr_expect_eq(kv.n_free, 16);
    pcache_free(c);
    kv_free(&kv);
}

/* A published block is never changed behind the cache's back: when its
 * sequence writes there again (a rewind), kv_seq_prepare copies it first
 * because the cache's reference makes the refcount > 1. */
Test(pcache_table, copy_on_write_protects_published_blocks) {
    KVCache kv = make_kv(8, 4, 2, 32);
    PCache *c = make_pc(8);
    Err err = {0};
    cr_assert(kv_seq_prepare(&kv, 0, 0, 8, &err) == STATUS_OK);
    int32_t b0 = kv_seq_table(&kv, 0)[0], b1 = kv_seq_table(&kv, 0)[1];
    for (int l = 0; l < kv.n_layers; l++)
        for (size_t i = 0; i < kv.block_floats; i++)
            kv_k_block(&kv, l, b0)[i] = kv_v_block(&kv, l, b0)[i] = 1.0f + (float)i;
    PCacheHash r, h[2];
    int32_t tok[8] = {5, 6, 7, 8, 9, 10, 11, 12};
    pcache_root(&r, TENANT_A, 32, NULL, 0);
    pcache_hash_blocks(h, &r, tok, 2, 4);
    int32_t bl[2] = {b0, b1};
    pcache_insert(c, &kv, h, bl, 2);
    /* the sequence rewinds to position 2 and writes positions 2..5 */
    cr_assert(kv_seq_prepare(&kv, 0, 2, 6, &err) == STATUS_OK);
    int32_t nb0 = kv_seq_table(&kv, 0)[0];
    cr_expect(nb0 != b0, "block 0 was copied before the write");
    cr_expect_eq(kv_block_refcount(&kv, b0), 1, "the cache keeps the original");
    for (int l = 0; l < kv.n_layers; l++)
        for (size_t i = 0; i < kv.block_floats; i++)
            kv_k_block(&kv, l, nb0)[i] = -5.0f; /* the sequence's write */
    int32_t got[2];
    cr_expect_eq(pcache_lookup(c, h, 2, got), 2);
    cr_expect_eq(got[0], b0);
    int bad = 0;
    for (int l = 0; l < kv.n_layers; l++)
        for (size_t i = 0; i < kv.block_floats; i++)
            bad += kv_k_block(&kv, l, got[0])[i] != 1.0f + (float)i;
    cr_expect_eq(bad, 0, "cached K values unchanged");
    kv_seq_free(&kv, 0);
    pcache_clear(c, &kv);
    cr_expect_eq(kv.n_free, 8);
    pcache_free(c);
    kv_free(&kv);
}

/* ---- random churn against a naive model -------------------------------- */

#define CH_CAP 40
#define CH_KEYS 120

typedef struct {
    int key; /* index into keys[] */
    int block;
    long used; /* larger: more recent */
} NEntry;

Test(pcache_table, churn_against_naive_model) {
    KVCache kv = make_kv(CH_CAP, 1, 1, 4);
    PCache *c = make_pc(CH_CAP);
    Rng rng;
    rng_seed(&rng, 2024);
    PCacheHash keys[CH_KEYS];
    for (int i = 0; i < CH_KEYS; i++) {
        for (int j = 0; j < 32; j++)
            keys[i].b[j] = (uint8_t)rng_u64(&rng);
        /* few distinct home slots: long probe runs that wrap around */
        keys[i].b[0] = (uint8_t)(rng_u64(&rng) % 6 == 0 ? 127 : rng_u64(&rng) % 4);
        keys[i].b[1] = keys[i].b[2] = keys[i].b[3] = 0;
    }
    NEntry model[CH_CAP];
    int n_model = 0;
    bool held[CH_CAP] = {0}; /* an extra reference on the block (in use) */
    long clock = 0;
    for (int step = 0; step < 4000; step++) {
        int op = (int)(rng_u64(&rng) % 10);
        int k = (int)(rng_u64(&rng) % CH_KEYS);
        int found = -1;
        for (int i = 0; i < n_model; i++)
            if (model[i].key == k)
                found = i;
        if (op < 4) { /* insert */
            if (found >= 0) {
                int32_t b = -1;
                cr_assert_eq(pcache_insert(c, &kv, &keys[k], &b, 1), 0);
                model[found].used = ++clock;
            } else if (kv.n_free > 0) {
                int32_t b = kv_alloc_block(&kv);
                int added = pcache_insert(c, &kv, &keys[k], &b, 1);
                kv_block_unref(&kv, b); /* drop ours: the cache's remains */
                cr_assert_eq(added, 1, "step %d", step);
                model[n_model++] = (NEntry){k, b, ++clock};
            }
        } else if (op < 7) { /* lookup */
            int32_t b = -1;
            int hit = pcache_lookup(c, &keys[k], 1, &b);
            cr_assert_eq(hit, found >= 0, "step %d: key %d hit %d, model %d", step, k, hit,
                         found >= 0);
            if (found >= 0) {
                cr_assert_eq(b, model[found].block);
                model[found].used = ++clock;
            }
        } else if (op < 8) { /* toggle an extra reference */
            if (found >= 0) {
                int b = model[found].block;
                if (held[b])
                    kv_block_unref(&kv, b);
                else
                    kv_block_ref(&kv, b);
                held[b] = !held[b];
            }
        } else { /* evict */
            int want = (int)(rng_u64(&rng) % 4);
            int expect = 0;
            for (int e = 0; e < want; e++) {
                int lru = -1;
                for (int i = 0; i < n_model; i++)
                    if (!held[model[i].block] && (lru < 0 || model[i].used < model[lru].used))
                        lru = i;
                if (lru < 0)
                    break;
                model[lru] = model[--n_model];
                expect++;
            }
            cr_assert_eq(pcache_evict(c, &kv, want), expect, "step %d", step);
        }
        cr_assert_eq(pcache_count(c), n_model, "step %d", step);
        int n_ev = 0;
        for (int i = 0; i < n_model; i++)
            n_ev += !held[model[i].block];
        cr_assert_eq(pcache_evictable(c, &kv), n_ev, "step %d", step);
        cr_assert_eq(kv.n_free, CH_CAP - n_model, "step %d: blocks leak", step);
        if (step % 50 == 0)
            for (int i = 0; i < n_model; i++) { /* everything present is found */
                int32_t b;
                cr_assert_eq(pcache_lookup(c, &keys[model[i].key], 1, &b), 1, "step %d", step);
                model[i].used = ++clock;
            }
    }
    for (int b = 0; b < CH_CAP; b++)
        if (held[b])
            kv_block_unref(&kv, b);
    pcache_clear(c, &kv);
    cr_expect_eq(kv.n_free, CH_CAP);
    pcache_free(c);
    kv_free(&kv);
}

Test(pcache_table, capacity_limits) {
    Err err = {0};
    cr_expect_null(pcache_new(0, &err));
    cr_expect_eq(err.status, STATUS_LIMIT);
    KVCache kv = make_kv(4, 1, 1, 4);
    PCache *c = make_pc(2);
    PCacheHash h[3];
    for (int i = 0; i < 3; i++) {
        memset(h[i].b, 0, 32);
        h[i].b[5] = (uint8_t)i;
    }
    int32_t b[3] = {kv_alloc_block(&kv), kv_alloc_block(&kv), kv_alloc_block(&kv)};
    /* inserted from the end: h[2], h[1] fit, h[0] is skipped */
    cr_expect_eq(pcache_insert(c, &kv, h, b, 3), 2);
    cr_expect_eq(pcache_count(c), 2);
    cr_expect_eq(kv_block_refcount(&kv, b[0]), 1);
    cr_expect_eq(kv_block_refcount(&kv, b[2]), 2);
    for (int i = 0; i < 3; i++)
        kv_block_unref(&kv, b[i]);
    pcache_clear(c, &kv);
    cr_expect_eq(kv.n_free, 4);
    pcache_free(c);
    kv_free(&kv);
}
