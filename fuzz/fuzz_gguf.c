/* fuzz_gguf.c - libFuzzer target for the GGUF reader.
 *
 * Opens the input with gguf_open_mem(); when it is accepted, walks every
 * pair and tensor the way a loader would (every string and string-array
 * entry, every numeric array element, each tensor's first and last byte and
 * lookups by name), so that ASan sees any view pointing outside the input.
 * The input is copied to an exactly-sized buffer so over-reads are caught. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gguf/gguf.h"

static volatile uint64_t sink;

static void touch_str(GGUFStr s) {
    if (s.len)
        sink += (uint8_t)s.ptr[0] + (uint8_t)s.ptr[s.len - 1];
}

static void walk_kv(const GGUF *g, const GGUFKV *kv) {
    touch_str(kv->key);
    /* lookups by a name with no NUL inside find this very pair */
    char name[64];
    if (kv->key.len < sizeof name) {
        memcpy(name, kv->key.ptr, kv->key.len);
        name[kv->key.len] = '\0';
        if (gguf_find_key(g, name) != kv)
            abort();
    }
    if (kv->type == GGUF_TYPE_STRING)
        touch_str(kv->val.s);
    if (kv->type != GGUF_TYPE_ARRAY)
        return;
    if (kv->arr_type == GGUF_TYPE_STRING) {
        for (uint64_t i = 0; i < kv->arr_n; i++)
            touch_str(kv->arr_strs[i]);
    } else if (kv->arr_n > 0) {
        sink += (uint64_t)gguf_arr_i64(kv, 0) + (uint64_t)gguf_arr_i64(kv, kv->arr_n - 1);
        sink += (uint64_t)(gguf_arr_f64(kv, kv->arr_n - 1) != 0);
    }
}

static void walk_tensor(const GGUF *g, const GGUFTensor *t) {
    touch_str(t->name);
    if (t->n_bytes) {
        const uint8_t *p = t->data;
        sink += p[0] + p[t->n_bytes - 1];
    }
    char name[64];
    if (t->name.len < sizeof name) {
        memcpy(name, t->name.ptr, t->name.len);
        name[t->name.len] = '\0';
        if (gguf_find_tensor(g, name) != t)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    GGUF g;
    Err err = {0};
    Status st = gguf_open_mem(&g, copy, size, &err);
    if (g.alloc_bytes > 8 * (uint64_t)size + 64)
        abort(); /* allocations must stay O(file size), accepted or not */
    if (st == STATUS_OK) {
        for (uint64_t i = 0; i < g.n_kv; i++)
            walk_kv(&g, &g.kv[i]);
        for (uint64_t i = 0; i < g.n_tensors; i++)
            walk_tensor(&g, &g.tensors[i]);
        uint32_t u;
        GGUFStr s;
        gguf_get_u32(&g, "general.alignment", false, &u, &err);
        gguf_get_str(&g, "general.architecture", false, &s, &err);
    } else if (err.msg[0] == '\0') {
        abort(); /* every failure explains itself */
    }
    gguf_close(&g);
    free(copy);
    return 0;
}
