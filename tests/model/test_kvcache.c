/* test_kvcache.c - the block pool: allocation, exhaustion, refcounts,
 * prefix sharing with copy on write, truncation. */
#include <criterion/criterion.h>
#include <string.h>
#include <unistd.h>

#include "model/kvcache.h"

static KVCache make(int n_blocks, int bs, int n_seq, int n_ctx) {
    KVCache kv;
    Err err = {0};
    cr_assert(kv_init(&kv, 2, 2, 4, bs, n_blocks, n_seq, n_ctx, KV_F32, &err) == STATUS_OK, "%s",
              err.msg);
    return kv;
}

Test(kvcache, alloc_until_exhausted_then_free) {
    KVCache kv = make(4, 8, 2, 64);
    cr_expect(kv.n_free == 4);
    int b[4];
    for (int i = 0; i < 4; i++) {
        b[i] = kv_alloc_block(&kv);
        cr_expect(b[i] >= 0 && b[i] < 4);
        cr_expect(kv_block_refcount(&kv, b[i]) == 1);
    }
    cr_expect(kv_alloc_block(&kv) == -1, "exhausted pool returns -1");
    kv_block_ref(&kv, b[2]);
    kv_block_unref(&kv, b[2]);
    cr_expect(kv.n_free == 0);
    kv_block_unref(&kv, b[2]);
    cr_expect(kv.n_free == 1);
    cr_expect(kv_alloc_block(&kv) == b[2], "freed block is handed out next");
    kv_free(&kv);
    kv_free(&kv); /* zeroed: safe */
}

Test(kvcache, seq_prepare_and_exhaustion_changes_nothing) {
    KVCache kv = make(5, 4, 3, 32);
    Err err = {0};
    cr_assert(kv_seq_prepare(&kv, 0, 0, 9, &err) == STATUS_OK); /* 3 blocks */
    cr_expect(kv.seq_len[0] == 9 && kv.seq_blocks[0] == 3 && kv.n_free == 2);
    cr_expect(kv_seq_blocks_needed(&kv, 1, 0, 12) == 3);
    cr_expect(kv_seq_prepare(&kv, 1, 0, 12, &err) == STATUS_LIMIT);
    cr_expect(strstr(err.msg, "exhausted") != NULL, "%s", err.msg);
    cr_expect(kv.seq_len[1] == 0 && kv.seq_blocks[1] == 0 && kv.n_free == 2);
    /* growing inside the last block takes nothing */
    cr_expect(kv_seq_prepare(&kv, 0, 9, 12, &err) == STATUS_OK);
    cr_expect(kv.n_free == 2);
    /* gap and range errors */
    cr_expect(kv_seq_prepare(&kv, 0, 13, 14, &err) == STATUS_INVALID);
    cr_expect(kv_seq_prepare(&kv, 0, 12, 33, &err) == STATUS_INVALID);
    cr_expect(kv_seq_prepare(&kv, 3, 0, 1, &err) == STATUS_INVALID);
    /* truncation returns blocks beyond the new end */
    cr_expect(kv_seq_prepare(&kv, 0, 2, 3, &err) == STATUS_OK);
    cr_expect(kv.seq_len[0] == 3 && kv.seq_blocks[0] == 1 && kv.n_free == 4);
    kv_seq_free(&kv, 0);
    cr_expect(kv.n_free == 5 && kv.seq_len[0] == 0);
    kv_seq_free(&kv, 0);  /* twice is fine */
    kv_seq_free(&kv, 99); /* out of range ignored */
    cr_expect(kv.n_free == 5);
    kv_free(&kv);
}

Test(kvcache, shared_prefix_copy_on_write) {
    KVCache kv = make(8, 4, 2, 32);
    Err err = {0};
    cr_assert(kv_seq_prepare(&kv, 0, 0, 6, &err) == STATUS_OK); /* blocks: full + half */
    const int32_t *t0 = kv_seq_table(&kv, 0);
    int b0 = t0[0], b1 = t0[1];
    for (int l = 0; l < 2; l++) {
        kv_k_block(&kv, l, b1)[0] = 42.0f + l;
        kv_v_block(&kv, l, b1)[0] = -42.0f - l;
    }
    /* seq 1 shares all 6 positions */
    cr_assert(kv_seq_attach(&kv, 1, t0, 6, &err) == STATUS_OK, "%s", err.msg);
    cr_expect(kv_block_refcount(&kv, b0) == 2 && kv_block_refcount(&kv, b1) == 2);
    cr_expect(kv.n_free == 6);
    cr_expect(kv_seq_attach(&kv, 1, t0, 6, &err) == STATUS_INVALID, "attach to non-empty");
    /* seq 1 writes position 6: block 1 is shared -> copied */
    cr_expect(kv_seq_blocks_needed(&kv, 1, 6, 7) == 1);
    cr_assert(kv_seq_prepare(&kv, 1, 6, 7, &err) == STATUS_OK);
    const int32_t *t1 = kv_seq_table(&kv, 1);
    cr_expect(t1[0] == b0, "untouched full block stays shared");
    cr_expect(t1[1] != b1, "written block copied");
    cr_expect(kv_block_refcount(&kv, b1) == 1 && kv_block_refcount(&kv, t1[1]) == 1);
    for (int l = 0; l < 2; l++) {
        cr_expect(kv_k_block(&kv, l, t1[1])[0] == 42.0f + l, "copy carries the data");
        cr_expect(kv_v_block(&kv, l, t1[1])[0] == -42.0f - l);
    }
    kv_seq_free(&kv, 0);
    cr_expect(kv_block_refcount(&kv, b0) == 1, "still held by seq 1");
    kv_seq_free(&kv, 1);
    cr_expect(kv.n_free == 8);
    /* bad attach input */
    int32_t bad[1] = {3};
    cr_expect(kv_seq_attach(&kv, 0, bad, 2, &err) == STATUS_INVALID, "block not in use");
    kv_free(&kv);
}

Test(kvcache, init_limits) {
    KVCache kv;
    Err err = {0};
    cr_expect(kv_init(&kv, 2, 2, 4, 0, 4, 1, 16, KV_F32, &err) == STATUS_LIMIT);
    kv_free(&kv);
    cr_expect(kv_init(&kv, 2, 2, 4, 16, 0, 1, 16, KV_F32, &err) == STATUS_LIMIT);
    kv_free(&kv);
    cr_expect(kv_init(&kv, 2, 2, 4, 16, 4, KV_MAX_SEQ + 1, 16, KV_F32, &err) == STATUS_LIMIT);
    kv_free(&kv);
    cr_expect(kv_init(&kv, 512, 1024, 1 << 16, 4096, 1 << 24, 1, 16, KV_F32, &err) == STATUS_LIMIT,
              "overflowing size is a limit error, not a crash: %s", err.msg);
    kv_free(&kv);
}

/* Sliding windows: the sliding layers' rows below seq_len - window + 1 are
 * released (whole pages), blocks another holder shares are kept, rewinds
 * and prefixes into a released window are refused, a reused block is whole
 * again. Slabs of exactly one page: 1 kv head x 16 positions x 64 floats. */
Test(kvcache, sliding_window_release) {
    KVCache kv;
    Err err = {0};
    long page = sysconf(_SC_PAGESIZE);
    /* 128 blocks: 1.5 MiB per K and V, mapped (core/mem.c), so page-aligned */
    cr_assert(kv_init(&kv, 3, 1, 64, 16, 128, 2, 128, KV_F32, &err) == STATUS_OK, "%s", err.msg);
    if (kv.slab_bytes != (size_t)page) {
        cr_log_warn("pages of %ld bytes: not the 4 KiB this test is written for", page);
        kv_free(&kv);
        return;
    }
    const uint8_t slides[3] = {1, 0, 1};
    cr_assert(kv_set_window(&kv, 5, slides, &err) == STATUS_OK, "%s", err.msg);
    cr_expect(kv_set_window(&kv, 0, slides, &err) == STATUS_INVALID);
    cr_assert(kv_seq_prepare(&kv, 0, 0, 40, &err) == STATUS_OK); /* blocks 0..2 */
    const int32_t *t = kv_seq_table(&kv, 0);
    for (int l = 0; l < 3; l++)
        for (int b = 0; b < 3; b++) {
            memset(kv_k_block(&kv, l, t[b]), 0x3f, kv.slab_bytes);
            memset(kv_v_block(&kv, l, t[b]), 0x3f, kv.slab_bytes);
        }
    size_t before = kv_resident_bytes(&kv);
    kv_block_ref(&kv, t[1]); /* another holder (the prefix cache, say) */
    kv_seq_release_window(&kv, 0);
    /* len 40, window 5: positions < 36 are never read again; blocks 0 and 1
     * end before 36, block 1 is shared */
    cr_expect(kv.dropped[t[0]] && !kv.dropped[t[1]] && !kv.dropped[t[2]]);
    cr_expect(kv_resident_bytes(&kv) == before - 4 * (size_t)page,
              "two sliding layers' K and V of block 0: %zu -> %zu", before, kv_resident_bytes(&kv));
    cr_expect(kv_k_block(&kv, 1, t[0])[0] != 0.0f, "the global layer keeps its rows");
    cr_expect(kv_k_block(&kv, 0, t[0])[0] == 0.0f, "the sliding layer's rows are gone");
    cr_expect(kv_k_block(&kv, 0, t[1])[0] != 0.0f, "a shared block keeps its rows");
    /* rewinds: to 36 or later the window is whole; to 20 it needs 16..19 */
    cr_expect(kv_seq_window_intact(&kv, 0, 40) && kv_seq_window_intact(&kv, 0, 36));
    cr_expect(kv_seq_window_intact(&kv, 0, 21), "positions 17..20: block 1, kept");
    cr_expect(!kv_seq_window_intact(&kv, 0, 17), "positions 13..16 need block 0");
    /* a prefix of blocks (0, 1, 2): continuing after 2 blocks needs 28..31
     * (block 1, whole); after 1 block 12..15 (block 0, released) */
    cr_expect(kv_window_prefix(&kv, t, 3) == 3 && kv_window_prefix(&kv, t, 2) == 2);
    cr_expect(kv_window_prefix(&kv, t, 1) == 0);
    int b0 = t[0];
    kv_block_unref(&kv, t[1]);
    kv_seq_free(&kv, 0);
    /* the freed blocks come back whole: taking them clears the mark */
    cr_assert(kv_seq_prepare(&kv, 1, 0, 48, &err) == STATUS_OK);
    for (int b = 0; b < 3; b++)
        cr_expect(!kv.dropped[kv_seq_table(&kv, 1)[b]]);
    cr_expect(b0 >= 0);
    kv_free(&kv);
}

Test(kvcache, no_window_no_release) {
    KVCache kv = make(8, 4, 1, 32);
    Err err = {0};
    cr_assert(kv_seq_prepare(&kv, 0, 0, 30, &err) == STATUS_OK);
    kv_seq_release_window(&kv, 0); /* no-op */
    cr_expect(kv_seq_window_intact(&kv, 0, 3));
    cr_expect(kv_window_prefix(&kv, kv_seq_table(&kv, 0), 7) == 7);
    kv_free(&kv);
}
