/* dequant.c - test tool: dump cgpt's dequantization of every tensor of a GGUF.
 *
 *   dequant FILE OUT.bin [--level scalar|avx2|avx512|best]
 *
 * Writes, for each tensor in file order, its n_elements float32 values as
 * produced by quant_ops(type)->dequant (or the kernels of one SIMD level),
 * concatenated. tests/ref/test_dequant.py compares them bit for bit with
 * the NumPy reader. Exits 1 with one line on stderr on any error. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf/gguf.h"
#include "tensor/quant.h"

int main(int argc, char **argv) {
    if (argc != 3 && !(argc == 5 && !strcmp(argv[3], "--level"))) {
        fprintf(stderr, "usage: dequant FILE OUT.bin [--level scalar|avx2|avx512|best]\n");
        return 1;
    }
    int level = -1; /* best */
    if (argc == 5) {
        const char *l = argv[4];
        level = !strcmp(l, "scalar")   ? SIMD_SCALAR
                : !strcmp(l, "avx2")   ? SIMD_AVX2
                : !strcmp(l, "avx512") ? SIMD_AVX512
                : !strcmp(l, "best")   ? -1
                                       : -2;
        if (level == -2) {
            fprintf(stderr, "dequant: unknown level '%s'\n", l);
            return 1;
        }
        if (level > (int)cpu_simd_level()) {
            fprintf(stderr, "dequant: level '%s' not available on this CPU\n", l);
            return 1;
        }
    }
    GGUF g = {0};
    Err err = {0};
    if (gguf_open(&g, argv[1], &err) != STATUS_OK) {
        fprintf(stderr, "dequant: %s: %s\n", argv[1], err.msg);
        gguf_close(&g);
        return 1;
    }
    FILE *f = fopen(argv[2], "wb");
    if (!f) {
        fprintf(stderr, "dequant: %s: %s\n", argv[2], strerror(errno));
        gguf_close(&g);
        return 1;
    }
    int rc = 0;
    for (uint64_t i = 0; i < g.n_tensors && rc == 0; i++) {
        const GGUFTensor *t = &g.tensors[i];
        const QuantOps *q =
            level < 0 ? quant_ops(t->type) : quant_ops_at(t->type, (SimdLevel)level);
        float *buf = malloc((size_t)t->n_elements * sizeof *buf);
        if (!q || !buf) {
            fprintf(stderr, "dequant: tensor '%.*s': %s\n", (int)t->name.len, t->name.ptr,
                    q ? "out of memory" : "no dequant kernel for its type");
            rc = 1;
        } else {
            q->dequant(t->data, buf, (int64_t)t->n_elements);
            if (fwrite(buf, sizeof *buf, (size_t)t->n_elements, f) != (size_t)t->n_elements) {
                fprintf(stderr, "dequant: %s: write failed\n", argv[2]);
                rc = 1;
            }
        }
        free(buf);
    }
    if (fclose(f) != 0 && rc == 0) {
        fprintf(stderr, "dequant: %s: %s\n", argv[2], strerror(errno));
        rc = 1;
    }
    gguf_close(&g);
    return rc;
}
