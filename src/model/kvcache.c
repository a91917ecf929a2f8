/* kvcache.c - block pool, refcounts, per-sequence block tables.
 *
 * The free list is a stack, so a freed block is the next one handed out
 * (warm in cache). Every operation that can fail checks first and changes
 * nothing on failure. */
#include "model/kvcache.h"

#include <sys/mman.h>
#include <unistd.h>

#include <stdlib.h>
#include <string.h>

#include "core/mem.h"

Status kv_init(KVCache *kv, int n_layers, int n_kv_heads, int head_dim, int block_size,
               int n_blocks, int n_seq_max, int n_ctx, KVType type, Err *err) {
    memset(kv, 0, sizeof *kv);
    if (type != KV_F32 && type != KV_F16 && type != KV_Q8_0)
        return err_set(err, STATUS_INVALID, "kv cache: unknown element type %d", (int)type);
    if (type == KV_Q8_0 && (head_dim % 32 || head_dim > KV_Q8_0_MAX_HEAD_DIM))
        return err_set(err, STATUS_INVALID,
                       "kv cache: q8_0 needs a head_dim that is a multiple of 32 up to %d (this "
                       "model's is %d); use f16",
                       KV_Q8_0_MAX_HEAD_DIM, head_dim);
    if (n_layers < 1 || n_kv_heads < 1 || head_dim < 1)
        return err_set(err, STATUS_INVALID,
                       "kv cache: bad shape (layers %d, kv heads %d, head dim %d)", n_layers,
                       n_kv_heads, head_dim);
    if (block_size < 1 || block_size > KV_MAX_BLOCK_SIZE)
        return err_set(err, STATUS_LIMIT, "kv cache: block size %d out of range 1..%d", block_size,
                       KV_MAX_BLOCK_SIZE);
    if (n_blocks < 1 || n_blocks > KV_MAX_BLOCKS)
        return err_set(err, STATUS_LIMIT, "kv cache: %d blocks out of range 1..%d", n_blocks,
                       KV_MAX_BLOCKS);
    if (n_seq_max < 1 || n_seq_max > KV_MAX_SEQ)
        return err_set(err, STATUS_LIMIT, "kv cache: %d sequences out of range 1..%d", n_seq_max,
                       KV_MAX_SEQ);
    if (n_ctx < 1)
        return err_set(err, STATUS_INVALID, "kv cache: n_ctx %d < 1", n_ctx);
    kv->n_layers = n_layers;
    kv->n_kv_heads = n_kv_heads;
    kv->head_dim = head_dim;
    kv->block_size = block_size;
    kv->n_blocks = n_blocks;
    kv->n_seq_max = n_seq_max;
    kv->n_ctx = n_ctx;
    kv->max_seq_blocks = (int)(((int64_t)n_ctx + block_size - 1) / block_size);
    kv->type = type;
    uint64_t row = (uint64_t)dtype_row_bytes(kv_elem_dtype(type), head_dim);

    uint64_t bf, slab, bytes, tab;
    if (!mem_mul_ok((uint64_t)n_kv_heads, (uint64_t)block_size, &bf) ||
        !mem_mul_ok(bf, row, &slab) || !mem_mul_ok(bf, (uint64_t)head_dim, &bf) ||
        !mem_mul_ok(slab, (uint64_t)n_blocks, &bytes) ||
        !mem_mul_ok(bytes, (uint64_t)n_layers, &bytes) || bytes > (uint64_t)SIZE_MAX / 2 ||
        !mem_mul_ok((uint64_t)n_seq_max, (uint64_t)kv->max_seq_blocks, &tab) ||
        tab > (uint64_t)INT32_MAX)
        return err_set(err, STATUS_LIMIT,
                       "kv cache: size overflows (%d layers x %d blocks x %d "
                       "positions x %d kv heads x %d)",
                       n_layers, n_blocks, block_size, n_kv_heads, head_dim);
    kv->block_floats = (size_t)bf;
    kv->row_bytes = (size_t)row;
    kv->slab_bytes = (size_t)slab;
    kv->k = mem_alloc_aligned((size_t)bytes);
    kv->v = mem_alloc_aligned((size_t)bytes);
    kv->refcount = calloc((size_t)n_blocks, sizeof(int32_t));
    kv->free_list = calloc((size_t)n_blocks, sizeof(int32_t));
    kv->table = calloc((size_t)tab, sizeof(int32_t));
    kv->seq_blocks = calloc((size_t)n_seq_max, sizeof(int32_t));
    kv->seq_len = calloc((size_t)n_seq_max, sizeof(int32_t));
    if (!kv->k || !kv->v || !kv->refcount || !kv->free_list || !kv->table || !kv->seq_blocks ||
        !kv->seq_len) {
        kv_free(kv);
        return err_set(err, STATUS_NOMEM, "kv cache: cannot allocate %llu bytes",
                       (unsigned long long)bytes * 2);
    }
    /* Stack with block 0 on top. */
    for (int i = 0; i < n_blocks; i++)
        kv->free_list[i] = n_blocks - 1 - i;
    kv->n_free = n_blocks;
    for (uint64_t i = 0; i < tab; i++)
        kv->table[i] = -1;
    return STATUS_OK;
}

void kv_free(KVCache *kv) {
    if (!kv)
        return;
    mem_free_aligned(kv->k);
    mem_free_aligned(kv->v);
    free(kv->refcount);
    free(kv->free_list);
    free(kv->table);
    free(kv->seq_blocks);
    free(kv->seq_len);
    free(kv->layer_slides);
    free(kv->dropped);
    memset(kv, 0, sizeof *kv);
}

int kv_alloc_block(KVCache *kv) {
    if (kv->n_free == 0)
        return -1;
    int b = kv->free_list[--kv->n_free];
    ASSERT(kv->refcount[b] == 0);
    kv->refcount[b] = 1;
    if (kv->dropped)
        kv->dropped[b] = 0; /* its rows are written before they are read */
    return b;
}

void kv_block_ref(KVCache *kv, int block) {
    ASSERT(block >= 0 && block < kv->n_blocks && kv->refcount[block] > 0);
    kv->refcount[block]++;
}

void kv_block_unref(KVCache *kv, int block) {
    ASSERT(block >= 0 && block < kv->n_blocks && kv->refcount[block] > 0);
    if (--kv->refcount[block] == 0) {
        ASSERT(kv->n_free < kv->n_blocks);
        kv->free_list[kv->n_free++] = block;
    }
}

int kv_block_refcount(const KVCache *kv, int block) {
    ASSERT(block >= 0 && block < kv->n_blocks);
    return kv->refcount[block];
}

static int32_t *seq_table(const KVCache *kv, int seq) {
    return kv->table + (size_t)seq * kv->max_seq_blocks;
}

const int32_t *kv_seq_table(const KVCache *kv, int seq) {
    ASSERT(seq >= 0 && seq < kv->n_seq_max);
    return seq_table(kv, seq);
}

int kv_seq_blocks_needed(const KVCache *kv, int seq, int pos_from, int pos_to) {
    ASSERT(seq >= 0 && seq < kv->n_seq_max);
    ASSERT(pos_from >= 0 && pos_from <= pos_to && pos_to <= kv->n_ctx);
    if (pos_from == pos_to)
        return 0;
    int bs = kv->block_size;
    int held = kv->seq_blocks[seq];
    int want = (pos_to + bs - 1) / bs;
    int need = want > held ? want - held : 0;
    const int32_t *t = seq_table(kv, seq);
    int first = pos_from / bs, last = (pos_to - 1) / bs;
    for (int i = first; i <= last && i < held; i++)
        if (kv->refcount[t[i]] > 1)
            need++;
    return need;
}

Status kv_seq_prepare(KVCache *kv, int seq, int pos_from, int pos_to, Err *err) {
    if (seq < 0 || seq >= kv->n_seq_max)
        return err_set(err, STATUS_INVALID, "kv cache: sequence %d out of range 0..%d", seq,
                       kv->n_seq_max - 1);
    if (pos_from < 0 || pos_from > kv->seq_len[seq] || pos_to < pos_from || pos_to > kv->n_ctx)
        return err_set(err, STATUS_INVALID,
                       "kv cache: sequence %d: positions [%d, %d) invalid (length %d, n_ctx %d)",
                       seq, pos_from, pos_to, kv->seq_len[seq], kv->n_ctx);
    int need = kv_seq_blocks_needed(kv, seq, pos_from, pos_to);
    if (need > kv->n_free)
        return err_set(err, STATUS_LIMIT,
                       "kv cache exhausted: sequence %d needs %d more blocks, %d of %d free", seq,
                       need, kv->n_free, kv->n_blocks);
    int bs = kv->block_size;
    int32_t *t = seq_table(kv, seq);
    int held = kv->seq_blocks[seq];
    int want = (pos_to + bs - 1) / bs;
    if (pos_from < pos_to) {
        /* Copy on write for shared blocks about to be written. */
        int first = pos_from / bs, last = (pos_to - 1) / bs;
        for (int i = first; i <= last && i < held; i++) {
            int old = t[i];
            if (kv->refcount[old] <= 1)
                continue;
            int nb = kv_alloc_block(kv);
            ASSERT(nb >= 0);
            for (int l = 0; l < kv->n_layers; l++) {
                memcpy(kv_k_slab(kv, l, nb), kv_k_slab(kv, l, old), kv->slab_bytes);
                memcpy(kv_v_slab(kv, l, nb), kv_v_slab(kv, l, old), kv->slab_bytes);
            }
            kv_block_unref(kv, old);
            t[i] = nb;
        }
    }
    for (int i = held; i < want; i++) {
        int nb = kv_alloc_block(kv);
        ASSERT(nb >= 0);
        t[i] = nb;
    }
    for (int i = want; i < held; i++) {
        kv_block_unref(kv, t[i]);
        t[i] = -1;
    }
    kv->seq_blocks[seq] = want;
    kv->seq_len[seq] = pos_to;
    return STATUS_OK;
}

void kv_seq_free(KVCache *kv, int seq) {
    if (seq < 0 || seq >= kv->n_seq_max)
        return;
    int32_t *t = seq_table(kv, seq);
    for (int i = 0; i < kv->seq_blocks[seq]; i++) {
        kv_block_unref(kv, t[i]);
        t[i] = -1;
    }
    kv->seq_blocks[seq] = 0;
    kv->seq_len[seq] = 0;
}

Status kv_seq_attach(KVCache *kv, int seq, const int32_t *blocks, int n_pos, Err *err) {
    if (seq < 0 || seq >= kv->n_seq_max)
        return err_set(err, STATUS_INVALID, "kv cache: sequence %d out of range 0..%d", seq,
                       kv->n_seq_max - 1);
    if (kv->seq_blocks[seq] != 0)
        return err_set(err, STATUS_INVALID, "kv cache: sequence %d is not empty (%d positions)",
                       seq, kv->seq_len[seq]);
    if (n_pos < 0 || n_pos > kv->n_ctx)
        return err_set(err, STATUS_INVALID, "kv cache: %d positions out of range 0..%d", n_pos,
                       kv->n_ctx);
    int nb = (n_pos + kv->block_size - 1) / kv->block_size;
    for (int i = 0; i < nb; i++)
        if (blocks[i] < 0 || blocks[i] >= kv->n_blocks || kv->refcount[blocks[i]] < 1)
            return err_set(err, STATUS_INVALID, "kv cache: block %d (entry %d) is not in use",
                           blocks[i], i);
    int32_t *t = seq_table(kv, seq);
    for (int i = 0; i < nb; i++) {
        kv_block_ref(kv, blocks[i]);
        t[i] = blocks[i];
    }
    kv->seq_blocks[seq] = nb;
    kv->seq_len[seq] = n_pos;
    return STATUS_OK;
}

static size_t resident(const void *p, size_t bytes) {
    if (!p || !bytes)
        return 0;
    long pg = sysconf(_SC_PAGESIZE);
    size_t page = pg > 0 ? (size_t)pg : 4096;
    uintptr_t lo = (uintptr_t)p & ~(uintptr_t)(page - 1);
    uintptr_t hi = ((uintptr_t)p + bytes + page - 1) & ~(uintptr_t)(page - 1);
    size_t n = (size_t)(hi - lo) / page, count = 0;
    unsigned char vec[4096];
    for (size_t at = 0; at < n; at += sizeof vec) {
        size_t k = n - at < sizeof vec ? n - at : sizeof vec;
        if (mincore((void *)(lo + at * page), k * page, vec) != 0)
            return bytes; /* unknown: count it all */
        for (size_t i = 0; i < k; i++)
            count += vec[i] & 1;
    }
    size_t r = count * page;
    return r < bytes ? r : bytes;
}

size_t kv_resident_bytes(const KVCache *kv) {
    size_t bytes = (size_t)kv->n_layers * (size_t)kv->n_blocks * kv->slab_bytes;
    return resident(kv->k, bytes) + resident(kv->v, bytes);
}

/* ------------------------------------------------------ sliding windows */

Status kv_set_window(KVCache *kv, int window, const uint8_t *layer_slides, Err *err) {
    if (window < 1 || window > kv->n_ctx)
        return err_set(err, STATUS_INVALID, "kv cache: window %d out of range 1..%d", window,
                       kv->n_ctx);
    kv->layer_slides = malloc((size_t)kv->n_layers);
    kv->dropped = calloc((size_t)kv->n_blocks, 1);
    if (!kv->layer_slides || !kv->dropped)
        return err_set(err, STATUS_NOMEM, "kv cache: out of memory for the window's bookkeeping");
    memcpy(kv->layer_slides, layer_slides, (size_t)kv->n_layers);
    kv->window = window;
    return STATUS_OK;
}

/* Give the whole pages inside [p, p + bytes) back to the kernel (they read
 * as zeros if touched again); pages shared with a neighbour stay. */
static void release_pages(void *p, size_t bytes) {
    long pg = sysconf(_SC_PAGESIZE);
    uintptr_t page = pg > 0 ? (uintptr_t)pg : 4096;
    uintptr_t lo = ((uintptr_t)p + page - 1) & ~(page - 1);
    uintptr_t hi = ((uintptr_t)p + bytes) & ~(page - 1);
    if (hi > lo)
        (void)madvise((void *)lo, (size_t)(hi - lo), MADV_DONTNEED);
}

void kv_seq_release_window(KVCache *kv, int seq) {
    if (!kv->window || seq < 0 || seq >= kv->n_seq_max)
        return;
    /* rows at positions >= len read positions >= len - window + 1 */
    int keep_from = kv->seq_len[seq] - kv->window + 1;
    int n = keep_from > 0 ? keep_from / kv->block_size : 0;
    const int32_t *t = seq_table(kv, seq);
    for (int i = 0; i < n && i < kv->seq_blocks[seq]; i++) {
        int b = t[i];
        if (kv->dropped[b] || kv->refcount[b] != 1)
            continue;
        for (int l = 0; l < kv->n_layers; l++)
            if (kv->layer_slides[l]) {
                release_pages(kv_k_slab(kv, l, b), kv->slab_bytes);
                release_pages(kv_v_slab(kv, l, b), kv->slab_bytes);
            }
        kv->dropped[b] = 1;
    }
}

/* Whether blocks [0, n) hold the sliding rows a position at p = n_pos
 * reads (those at p - window + 1 .. p - 1). */
static bool window_intact(const KVCache *kv, const int32_t *blocks, int n_pos) {
    if (!kv->window || n_pos == 0)
        return true;
    int from = n_pos - kv->window + 1;
    for (int i = (from > 0 ? from : 0) / kv->block_size; i <= (n_pos - 1) / kv->block_size; i++)
        if (kv->dropped[blocks[i]])
            return false;
    return true;
}

bool kv_seq_window_intact(const KVCache *kv, int seq, int pos) {
    ASSERT(seq >= 0 && seq < kv->n_seq_max && pos >= 0 && pos <= kv->seq_len[seq]);
    return window_intact(kv, seq_table(kv, seq), pos);
}

int kv_window_prefix(const KVCache *kv, const int32_t *blocks, int n_blocks) {
    int k = n_blocks;
    while (k > 0 && !window_intact(kv, blocks, k * kv->block_size))
        k--;
    return k;
}
