/* ggufsplit.c - test tool: cut a GGUF model into N split files, as
 * llama.cpp's gguf-split lays them out: PREFIX-00001-of-0000N.gguf holds
 * every metadata pair and the first tensors, the others only
 * split.{no,count,tensors.count} and their share of the tensors.
 *
 *   ggufsplit IN.gguf N PREFIX
 *
 * Exits 1 with one line on stderr on failure. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf/gguf.h"
#include "gguf/gguf_writer.h"

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: ggufsplit IN.gguf N PREFIX\n");
        return 1;
    }
    int n = atoi(argv[2]);
    GGUF g = {0};
    Err err = {0};
    if (n < 1 || n > 99 || gguf_open(&g, argv[1], &err)) {
        fprintf(stderr, "ggufsplit: %s\n", err.msg[0] ? err.msg : "N is 1..99");
        return 1;
    }
    uint64_t per = (g.n_tensors + (uint64_t)n - 1) / (uint64_t)n;
    for (int k = 0; k < n; k++) {
        GGUFWriter *w = gguf_writer_new();
        if (k == 0)
            for (uint64_t i = 0; i < g.n_kv; i++)
                gguf_writer_set_kv(w, &g.kv[i]);
        gguf_writer_set_u32(w, "split.no", (uint32_t)k);
        gguf_writer_set_u32(w, "split.count", (uint32_t)n);
        gguf_writer_set_u32(w, "split.tensors.count", (uint32_t)g.n_tensors);
        for (uint64_t i = (uint64_t)k * per; i < g.n_tensors && i < (uint64_t)(k + 1) * per; i++) {
            const GGUFTensor *t = &g.tensors[i];
            char name[256];
            snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.ptr);
            gguf_writer_add_tensor(w, name, t->type, t->n_dims, t->ne, t->data);
        }
        char path[4096];
        snprintf(path, sizeof path, "%s-%05d-of-%05d.gguf", argv[3], k + 1, n);
        Status st = gguf_writer_write(w, path, &err);
        gguf_writer_free(w);
        if (st) {
            fprintf(stderr, "ggufsplit: %s\n", err.msg);
            return 1;
        }
    }
    gguf_close(&g);
    return 0;
}
