/* vecdot.c - test tool: one quantized dot product per row, through QuantOps.
 *
 *   vecdot TYPE N ROWS IN.f32 OUT.bin [--level scalar|avx2|avx512]
 *
 * IN.f32 holds ROWS*N weight floats then N activation floats. The weights
 * are quantized to TYPE, the activation to TYPE's vec_dot_type, and
 * vec_dot gives one float per row. OUT.bin: the quantized activation bytes,
 * then ROWS quantized weight rows, then ROWS float32 results - so
 * tests/ref/test_dequant.py can recompute each dot from the bytes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/quant.h"

static _Noreturn void die(const char *msg, const char *arg) {
    fprintf(stderr, "vecdot: %s%s\n", msg, arg);
    exit(1);
}

int main(int argc, char **argv) {
    if (argc != 6 && !(argc == 8 && !strcmp(argv[6], "--level")))
        die("usage: vecdot TYPE N ROWS IN.f32 OUT.bin [--level scalar|avx2|avx512]", "");
    int t = dtype_from_name(argv[1]);
    long n = strtol(argv[2], NULL, 10), rows = strtol(argv[3], NULL, 10);
    if (t < 0)
        die("unknown type ", argv[1]);
    if (n <= 0 || n > (1 << 20) || rows <= 0 || rows > (1 << 16))
        die("bad N or ROWS", "");
    SimdLevel lv = cpu_simd_level();
    if (argc == 8) {
        if (!strcmp(argv[7], "scalar"))
            lv = SIMD_SCALAR;
        else if (!strcmp(argv[7], "avx2"))
            lv = SIMD_AVX2;
        else if (!strcmp(argv[7], "avx512"))
            lv = SIMD_AVX512;
        else
            die("unknown level ", argv[7]);
        if ((int)lv > (int)cpu_simd_level())
            die("level not available: ", argv[7]);
    }
    const QuantOps *q = quant_ops_at((DType)t, lv);
    if (!q || !q->vec_dot)
        die("no vec_dot for ", argv[1]);
    const QuantOps *qa = quant_ops_at(q->vec_dot_type, lv);
    uint64_t wrow = dtype_row_bytes(t, n), arow = dtype_row_bytes(q->vec_dot_type, n);
    if (!wrow || !arow)
        die("N not a multiple of the block size of ", argv[1]);
    float *in = malloc((size_t)(rows + 1) * (size_t)n * sizeof *in);
    uint8_t *wq = malloc((size_t)(rows * wrow)), *aq = malloc(arow);
    float *res = malloc((size_t)rows * sizeof *res);
    if (!in || !wq || !aq || !res)
        die("out of memory", "");
    FILE *f = fopen(argv[4], "rb");
    if (!f || fread(in, sizeof *in, (size_t)((rows + 1) * n), f) != (size_t)((rows + 1) * n))
        die("cannot read ", argv[4]);
    fclose(f);
    const float *a = in + rows * n;
    if (q->vec_dot_type == DTYPE_F32) {
        memcpy(aq, a, arow);
    } else {
        if (!qa || !qa->quantize)
            die("no quantize for the activation type of ", argv[1]);
        qa->quantize(a, aq, n);
    }
    for (long r = 0; r < rows; r++) {
        if (t == DTYPE_F32)
            memcpy(wq + r * wrow, in + r * n, wrow);
        else
            q->quantize(in + r * n, wq + r * wrow, n);
        q->vec_dot(n, &res[r], wq + r * wrow, aq);
    }
    f = fopen(argv[5], "wb");
    if (!f || fwrite(aq, 1, arow, f) != arow || fwrite(wq, 1, rows * wrow, f) != rows * wrow ||
        fwrite(res, sizeof *res, (size_t)rows, f) != (size_t)rows || fclose(f) != 0)
        die("cannot write ", argv[5]);
    free(in);
    free(wq);
    free(aq);
    free(res);
    return 0;
}
