/* test_kvcache.c - the block pool: allocation, exhaustion, refcounts,
 * prefix sharing with copy on write, truncation. */
#include <criterion/criterion.h>
#include <string.h>

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
