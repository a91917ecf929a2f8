/* pcache.h - the prefix cache: KV blocks of prompt prefixes, found again by
 * a chained cryptographic hash of everything that determines their
 * contents.
 *
 * Keys. A block of positions [i*bs, (i+1)*bs) holds K/V values that depend
 * on the model and on tokens 0..(i+1)*bs-1, nothing else. Its key chains
 * BLAKE2b-256 (libsodium crypto_generichash, 32 bytes):
 *   h_root = H("cgpt-pcache-v1" || tenant || model identity)
 *   h_i    = H(h_{i-1} || tokens of block i, int32 little-endian)
 * so a hit on h_i means the same tenant, the same model and the same i+1
 * blocks of tokens: another tenant's key never matches (the tenant is in
 * the root), and a block is only ever reached through the whole prefix.
 * The hashes are computed by the caller (pcache_root / pcache_chain; any
 * thread, no table access) and handed to the table functions.
 *
 * The table maps key -> block id of a KVCache and holds ONE reference to
 * each block it lists (kv_block_ref at insert, kv_block_unref when the
 * entry goes). Entries are kept in least-recently-used order; an entry
 * whose block has refcount 1 (only the cache holds it) is "evictable".
 * pcache_evict() frees such blocks, least recently used first. Within a
 * chain, earlier blocks are made more recent than later ones, so eviction
 * eats prefixes from their tails (a chain without its head is useless).
 *
 * Capacity is fixed at pcache_new (normally the pool's block count: one
 * entry per block at most); nothing is allocated afterwards. Lookup and
 * insert are O(1) expected (open addressing), evict is O(entries) at worst.
 *
 * Not thread-safe: the engine thread owns the table and the KVCache. */
#ifndef CGPT_ENGINE_PCACHE_H
#define CGPT_ENGINE_PCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "model/kvcache.h"

#define PCACHE_HASH_BYTES 32 /* BLAKE2b-256 */
#define PCACHE_MAX_ENTRIES KV_MAX_BLOCKS

typedef struct {
    uint8_t b[PCACHE_HASH_BYTES];
} PCacheHash;

typedef struct PCache PCache;

/* Call once before hashing (sodium_init; idempotent and thread-safe).
 * STATUS_UNSUPPORTED when libsodium cannot initialise. */
Status pcache_global_init(Err *err);

/* The chain root for a tenant (tenant_len bytes, may be 0) and a model
 * identity (opaque bytes describing the weights, e.g. shapes and vocabulary
 * size; id_len may be 0). */
void pcache_root(PCacheHash *out, const uint8_t *tenant, size_t tenant_len, const uint8_t *model_id,
                 size_t id_len);
/* out = H(prev || tokens[0..n)). 'out' may alias 'prev'. */
void pcache_chain(PCacheHash *out, const PCacheHash *prev, const int32_t *tokens, int n);
/* hashes[i] = h_i for the first n_blocks blocks of 'tokens' (block_size
 * tokens each; the caller guarantees n_blocks * block_size tokens). */
void pcache_hash_blocks(PCacheHash *hashes, const PCacheHash *root, const int32_t *tokens,
                        int n_blocks, int block_size);

/* An empty table for up to 'capacity' entries (1..PCACHE_MAX_ENTRIES).
 * Returns owned (free with pcache_free), or NULL with 'err' filled. */
PCache *pcache_new(int capacity, Err *err);
/* Frees the table only: call pcache_clear first to give the blocks back
 * while the KVCache still exists. Accepts NULL. */
void pcache_free(PCache *c);
/* Drop every entry (unref its block). */
void pcache_clear(PCache *c, KVCache *kv);

/* The longest run of hashes[0..n) present, from hashes[0]: writes their
 * block ids to blocks[] and returns the run length (0..n). Marks the hits
 * recently used (hashes[0] most recently). Takes no references. */
int pcache_lookup(PCache *c, const PCacheHash *hashes, int n, int32_t *blocks);
/* Publish a chain: for i = n-1 down to 0, an entry hashes[i] -> blocks[i]
 * (taking one reference to the block) unless the key is present already
 * (then it is only marked used). Afterwards hashes[0] is the most recent.
 * Entries past the capacity are skipped. Returns the number of new
 * entries. */
int pcache_insert(PCache *c, KVCache *kv, const PCacheHash *hashes, const int32_t *blocks, int n);
/* Evict up to 'n_want' evictable entries (block refcount 1), least
 * recently used first, returning their blocks to the pool. Returns the
 * number freed. */
int pcache_evict(PCache *c, KVCache *kv, int n_want);

/* Entries held / of which evictable now (O(entries)). */
int pcache_count(const PCache *c);
int pcache_evictable(const PCache *c, const KVCache *kv);
/* Of blocks[0..n) (ids as pcache_lookup returns), how many are evictable
 * now, i.e. would stop being evictable once a sequence references them. */
int pcache_count_evictable(const KVCache *kv, const int32_t *blocks, int n);

#endif
