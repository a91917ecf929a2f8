/* breakmodel.c - test tool: rewrite a valid GGUF with deliberate damage.
 *
 *   breakmodel IN OUT [edits...]      apply edits in order, write OUT
 *   breakmodel IN --offsets           print "header_end N" then one
 *                                     "tensor NAME START END" per tensor
 *                                     (absolute file offsets), for truncation tests
 * Edits:
 *   --set-u32 KEY V | --set-i32 KEY V | --set-f32 KEY V | --set-str KEY V
 *   --del-key KEY
 *   --drop-tensor NAME
 *   --retype-tensor NAME TYPE      new type, zeroed data of the new size
 *   --reshape-tensor NAME NE0 NE1  new 2-D shape, zeroed data (same type)
 *   --vocab-trim N                 keep only the first N tokenizer.ggml.tokens
 * The point is to make files the engine must reject; this tool trusts its
 * input (it is only ever fed files our writer made). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf/gguf.h"
#include "gguf/gguf_writer.h"

#define MAX_EDITS 64

typedef struct {
    const char *op, *a, *b, *c;
} Edit;

static int die(const char *msg, const char *arg) {
    fprintf(stderr, "breakmodel: %s%s%s\n", msg, arg ? " " : "", arg ? arg : "");
    return 1;
}

static int nargs(const char *op) {
    if (!strcmp(op, "--del-key") || !strcmp(op, "--drop-tensor") || !strcmp(op, "--vocab-trim"))
        return 1;
    if (!strcmp(op, "--reshape-tensor"))
        return 3;
    if (!strncmp(op, "--set-", 6) || !strcmp(op, "--retype-tensor"))
        return 2;
    return -1;
}

static const Edit *find_edit(const Edit *e, int n, const char *op, GGUFStr name) {
    const Edit *hit = NULL;
    for (int i = 0; i < n; i++)
        if (!strcmp(e[i].op, op) && gguf_str_eq(name, e[i].a))
            hit = &e[i];
    return hit;
}

int main(int argc, char **argv) {
    if (argc < 3)
        return die("usage: breakmodel IN OUT [edits] | breakmodel IN --offsets", NULL);
    GGUF g = {0};
    Err err = {0};
    if (gguf_open(&g, argv[1], &err))
        return die(err.msg, NULL);
    if (!strcmp(argv[2], "--offsets")) {
        printf("header_end %llu\n", (unsigned long long)g.data_offset);
        for (uint64_t i = 0; i < g.n_tensors; i++) {
            const GGUFTensor *t = &g.tensors[i];
            unsigned long long s = g.data_offset + t->offset;
            printf("tensor %.*s %llu %llu\n", (int)t->name.len, t->name.ptr, s, s + t->n_bytes);
        }
        gguf_close(&g);
        return 0;
    }
    Edit edits[MAX_EDITS];
    int n = 0;
    for (int i = 3; i < argc;) {
        int k = nargs(argv[i]);
        if (k < 0 || i + k >= argc || n == MAX_EDITS)
            return die("bad edit", argv[i]);
        edits[n++] =
            (Edit){argv[i], argv[i + 1], k > 1 ? argv[i + 2] : NULL, k > 2 ? argv[i + 3] : NULL};
        i += k + 1;
    }
    GGUFWriter *w = gguf_writer_new();
    for (uint64_t i = 0; i < g.n_kv; i++) {
        const GGUFKV *kv = &g.kv[i];
        if (find_edit(edits, n, "--del-key", kv->key))
            continue;
        gguf_writer_set_kv(w, kv);
    }
    void *bufs[4096] = {0};
    int n_bufs = 0;
    for (int e = 0; e < n; e++) {
        const Edit *x = &edits[e];
        if (!strcmp(x->op, "--set-u32"))
            gguf_writer_set_u32(w, x->a, (uint32_t)strtoul(x->b, NULL, 10));
        else if (!strcmp(x->op, "--set-i32"))
            gguf_writer_set_i32(w, x->a, (int32_t)strtol(x->b, NULL, 10));
        else if (!strcmp(x->op, "--set-f32"))
            gguf_writer_set_f32(w, x->a, strtof(x->b, NULL));
        else if (!strcmp(x->op, "--set-str"))
            gguf_writer_set_str(w, x->a, x->b);
        else if (!strcmp(x->op, "--vocab-trim")) {
            const GGUFKV *kv = gguf_find_key(&g, "tokenizer.ggml.tokens");
            uint64_t keep = strtoull(x->a, NULL, 10);
            if (!kv || kv->type != GGUF_TYPE_ARRAY || keep > kv->arr_n)
                return die("--vocab-trim: no such token array or N too large", x->a);
            const char **strs = calloc(keep ? keep : 1, sizeof *strs);
            char **own = calloc(keep ? keep : 1, sizeof *own);
            for (uint64_t j = 0; j < keep; j++) {
                own[j] = strndup(kv->arr_strs[j].ptr, kv->arr_strs[j].len);
                strs[j] = own[j];
            }
            gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", strs, keep);
            for (uint64_t j = 0; j < keep; j++)
                free(own[j]);
            free(own);
            free(strs);
        }
    }
    for (uint64_t i = 0; i < g.n_tensors; i++) {
        const GGUFTensor *t = &g.tensors[i];
        if (find_edit(edits, n, "--drop-tensor", t->name))
            continue;
        char name[512];
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.ptr);
        DType type = t->type;
        int n_dims = t->n_dims;
        int64_t ne[4] = {t->ne[0], t->ne[1], t->ne[2], t->ne[3]};
        const void *data = t->data;
        const Edit *rt = find_edit(edits, n, "--retype-tensor", t->name);
        const Edit *rs = find_edit(edits, n, "--reshape-tensor", t->name);
        if (rt) {
            int ty = dtype_from_name(rt->b);
            if (ty < 0)
                return die("unknown type", rt->b);
            type = (DType)ty;
        }
        if (rs) {
            n_dims = 2;
            ne[0] = strtoll(rs->b, NULL, 10);
            ne[1] = strtoll(rs->c, NULL, 10);
            ne[2] = ne[3] = 1;
        }
        if (rt || rs) {
            uint64_t bytes = dtype_row_bytes(type, ne[0]) * (uint64_t)(ne[1] * ne[2] * ne[3]);
            if (!bytes || n_bufs == 4096)
                return die("edit gives a shape the type cannot hold:", name);
            data = bufs[n_bufs++] = calloc(1, bytes);
        }
        gguf_writer_add_tensor(w, name, type, n_dims, ne, data);
    }
    int rc = 0;
    if (gguf_writer_write(w, argv[2], &err))
        rc = die(err.msg, NULL);
    for (int i = 0; i < n_bufs; i++)
        free(bufs[i]);
    gguf_writer_free(w);
    gguf_close(&g);
    return rc;
}
