/* kvcache.h - the paged KV cache: a pool of fixed-size blocks shared by
 * all sequences, one block table per sequence.
 *
 * Storage (allocated once in kv_init), elements of type KV_F32 (float),
 * KV_F16 (IEEE half, as uint16_t: half the bytes per position) or KV_Q8_0
 * (each row of head_dim elements is head_dim / 32 Q8_0 blocks: 34 bytes
 * per 32 elements, a little over a quarter of F32's):
 *   k, v: (n_layers, n_blocks, n_kv_heads, block_size, head_dim)
 * i.e. for one layer and one block, each kv head's positions are contiguous
 * rows of head_dim elements, so attention for one head walks a block as a
 * small dense matrix. kv_k_slab()/kv_v_slab() return the (n_kv_heads,
 * block_size, head_dim) slab of one layer and block; kv_k_block()/
 * kv_v_block() the same as floats, for an F32 cache.
 *
 * Sequence 'seq' in [0, n_seq_max) maps position p to block
 * table[seq][p / block_size], slot p % block_size. Blocks carry a refcount:
 * a block may appear in several sequences' tables (a shared prompt prefix,
 * kv_seq_attach); it returns to the free list when its count drops to 0.
 * Before writing positions, kv_seq_prepare() gives the sequence its own copy
 * of any shared block it is about to write (copy on write), so sharing never
 * changes another sequence's cache.
 *
 * Not thread-safe: the owner (the model / engine) serialises calls. */
#ifndef CGPT_MODEL_KVCACHE_H
#define CGPT_MODEL_KVCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "tensor/dtype.h"

typedef enum { KV_F32 = 0, KV_F16 = 1, KV_Q8_0 = 2 } KVType;

/* The tensor type of a cache's rows (the bytes quant_ops' quantize of that
 * type writes; Q8_0 rows are head_dim / 32 blocks). */
static inline DType kv_elem_dtype(KVType t) {
    return t == KV_Q8_0 ? DTYPE_Q8_0 : t == KV_F16 ? DTYPE_F16 : DTYPE_F32;
}

/* Largest head_dim a Q8_0 cache takes (attention widens rows into stack
 * buffers of this size); it must also be a multiple of 32. */
#define KV_Q8_0_MAX_HEAD_DIM 256

#define KV_MAX_BLOCK_SIZE 4096
#define KV_MAX_SEQ 65536
#define KV_MAX_BLOCKS (1 << 24)

typedef struct {
    int n_layers, n_kv_heads, head_dim;
    int block_size; /* positions per block */
    int n_blocks;   /* blocks in the pool */
    int n_seq_max;
    int n_ctx;           /* max positions per sequence */
    int max_seq_blocks;  /* ceil(n_ctx / block_size): table width */
    size_t block_floats; /* elements per slab: n_kv_heads * block_size * head_dim */
    KVType type;
    size_t row_bytes;    /* one position of one kv head: head_dim elements */
    size_t slab_bytes;   /* one layer's block: n_kv_heads * block_size * row_bytes */
    void *k, *v;         /* (n_layers, n_blocks, n_kv_heads, block_size, head_dim) */
    int32_t *refcount;   /* (n_blocks) */
    int32_t *free_list;  /* (n_blocks) stack of free block ids */
    int n_free;
    int32_t *table;      /* (n_seq_max, max_seq_blocks) block ids, -1 unused */
    int32_t *seq_blocks; /* (n_seq_max) blocks held */
    int32_t *seq_len;    /* (n_seq_max) positions cached */
    /* sliding-window layers (kv_set_window; 0 / NULL: none) */
    int window;
    uint8_t *layer_slides; /* (n_layers) 1: the layer reads only the last 'window' positions */
    uint8_t *dropped;      /* (n_blocks) 1: the sliding layers' rows were released */
} KVCache;

/* Allocate the pool. STATUS_LIMIT when a size exceeds the KV_MAX_* limits or
 * the total overflows; STATUS_INVALID for a Q8_0 cache whose head_dim is not
 * a multiple of 32 up to KV_Q8_0_MAX_HEAD_DIM; STATUS_NOMEM when memory is
 * short. On failure 'kv' is safe to pass to kv_free(). */
Status kv_init(KVCache *kv, int n_layers, int n_kv_heads, int head_dim, int block_size,
               int n_blocks, int n_seq_max, int n_ctx, KVType type, Err *err);
/* Accepts a zeroed struct. */
void kv_free(KVCache *kv);

/* Take a free block (refcount 1); -1 when the pool is exhausted. */
int kv_alloc_block(KVCache *kv);
void kv_block_ref(KVCache *kv, int block);
/* Drop one reference; the block is free again at 0. */
void kv_block_unref(KVCache *kv, int block);
int kv_block_refcount(const KVCache *kv, int block);

/* Number of free blocks that kv_seq_prepare(seq, from, to) would take. */
int kv_seq_blocks_needed(const KVCache *kv, int seq, int pos_from, int pos_to);

/* Make positions [pos_from, pos_to) of 'seq' writable: truncates the
 * sequence to pos_from (pos_from <= seq_len), gives it blocks up to
 * position pos_to - 1 (taking free blocks, copying shared ones it will
 * write into), drops blocks past them, and sets seq_len = pos_to. STATUS_LIMIT
 * when the pool has too few free blocks; then nothing changes. */
Status kv_seq_prepare(KVCache *kv, int seq, int pos_from, int pos_to, Err *err);

/* Drop all positions of 'seq' and unref its blocks. */
void kv_seq_free(KVCache *kv, int seq);

/* Start empty sequence 'seq' with the first n_pos positions held in
 * 'blocks' (ceil(n_pos / block_size) ids, each referenced once more). Used
 * to share a prompt prefix already computed by another sequence.
 * STATUS_INVALID when seq is not empty or the ids/counts are out of range. */
Status kv_seq_attach(KVCache *kv, int seq, const int32_t *blocks, int n_pos, Err *err);

/* Sliding windows. A layer with layer_slides[l] set reads, for a row at
 * position p, only positions p - window + 1 .. p. kv_set_window (once,
 * after kv_init) says which layers those are. kv_seq_release_window(seq)
 * then gives back to the kernel the sliding layers' rows of the sequence's
 * blocks that no later row of it can read (every position below
 * seq_len - window + 1), so a long conversation's resident cache is the
 * global layers' plus one window per sliding layer. Only blocks the
 * sequence alone holds (refcount 1) are released, and only whole pages
 * (slabs under a page keep theirs); a released block is marked 'dropped'
 * until it is taken again. The only readers of old positions are rewinds
 * and prefixes reused by another sequence: kv_seq_window_intact(seq, pos)
 * says whether a row at pos (a rewind to pos) finds its window whole, and
 * kv_window_prefix(blocks, n) how many of a prefix's first n blocks a new
 * sequence can continue from (the largest k <= n whose window before
 * position k * block_size is whole). Without a window all three are no-ops
 * / true / n. */
Status kv_set_window(KVCache *kv, int window, const uint8_t *layer_slides, Err *err);
void kv_seq_release_window(KVCache *kv, int seq);
bool kv_seq_window_intact(const KVCache *kv, int seq, int pos);
int kv_window_prefix(const KVCache *kv, const int32_t *blocks, int n_blocks);

/* Bytes of the K and V storage resident in memory: the pool's pages are
 * mapped lazily (core/mem.h), so this grows with the blocks ever used, up to
 * the whole pool. One mincore() pass; safe to call from any thread. */
size_t kv_resident_bytes(const KVCache *kv);

/* The block table of 'seq' (kv->seq_blocks[seq] ids). View valid until the
 * next call that changes the sequence. */
const int32_t *kv_seq_table(const KVCache *kv, int seq);

/* (n_kv_heads, block_size, head_dim) slabs of one layer and block, in the
 * cache's element type. */
static inline void *kv_k_slab(const KVCache *kv, int layer, int block) {
    return (char *)kv->k + ((size_t)layer * kv->n_blocks + (size_t)block) * kv->slab_bytes;
}
static inline void *kv_v_slab(const KVCache *kv, int layer, int block) {
    return (char *)kv->v + ((size_t)layer * kv->n_blocks + (size_t)block) * kv->slab_bytes;
}
/* The same as floats: an F32 cache only (ASSERTed). */
static inline float *kv_k_block(const KVCache *kv, int layer, int block) {
    ASSERT(kv->type == KV_F32);
    return (float *)kv_k_slab(kv, layer, block);
}
static inline float *kv_v_block(const KVCache *kv, int layer, int block) {
    ASSERT(kv->type == KV_F32);
    return (float *)kv_v_slab(kv, layer, block);
}

#endif
