/* bench_quant_k.c - informational micro-benchmark of the K-quant kernels.
 *
 * For Q4_K, Q5_K and Q6_K: a 4096 x 4096 matrix times one Q8_K vector on one
 * thread, row by row through vec_dot, at every SIMD level this CPU has.
 * Prints the weight bytes streamed per second (best of several passes), and
 * the Q8_K activation-quantize rate in input GB/s. Not a test: nothing is
 * asserted, and the numbers depend on the machine (the 9-14 MB matrices may
 * sit partly in a large L3). */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "core/cpu.h"
#include "core/rng.h"
#include "tensor/dtype.h"
#include "tensor/quant.h"

#define ROWS 4096
#define COLS 4096
#define MIN_SECONDS 0.3 /* per kernel and level */
#define MIN_PASSES 5

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Best seconds per matrix-vector pass. */
static double time_matvec(const QuantOps *o, const uint8_t *w, uint64_t row_bytes, const void *a,
                          float *out) {
    double best = 1e30, start = now_s();
    for (int pass = 0; pass < MIN_PASSES || now_s() - start < MIN_SECONDS; pass++) {
        double t0 = now_s();
        for (int r = 0; r < ROWS; r++)
            o->vec_dot(COLS, &out[r], w + (uint64_t)r * row_bytes, a);
        double t = now_s() - t0;
        if (t < best)
            best = t;
    }
    return best;
}

int main(void) {
    const SimdLevel top = cpu_simd_level();
    Rng rng;
    rng_seed(&rng, 1);
    float *x = malloc(sizeof(float) * (size_t)ROWS * COLS);
    float *act = malloc(sizeof(float) * COLS);
    float *out = malloc(sizeof(float) * ROWS);
    void *aq = malloc(dtype_row_bytes(DTYPE_Q8_K, COLS));
    if (!x || !act || !out || !aq) {
        fprintf(stderr, "bench_quant_k: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < (size_t)ROWS * COLS; i++)
        x[i] = rng_normal(&rng);
    for (int i = 0; i < COLS; i++)
        act[i] = rng_normal(&rng);
    quant_ops_at(DTYPE_Q8_K, SIMD_SCALAR)->quantize(act, aq, COLS);

    printf("bench_quant_k: %dx%d matrix-vector, 1 thread, best of >= %d passes; cpu level %s\n",
           ROWS, COLS, MIN_PASSES, cpu_simd_name(top));
    const DType types[3] = {DTYPE_Q4_K, DTYPE_Q5_K, DTYPE_Q6_K};
    for (int t = 0; t < 3; t++) {
        uint64_t row_bytes = dtype_row_bytes(types[t], COLS);
        uint8_t *w = malloc(row_bytes * ROWS);
        if (!w) {
            fprintf(stderr, "bench_quant_k: out of memory\n");
            return 1;
        }
        quant_ops_at(types[t], SIMD_SCALAR)->quantize(x, w, (int64_t)ROWS * COLS);
        for (int l = SIMD_SCALAR; l <= (int)top; l++) {
            const QuantOps *o = quant_ops_at(types[t], (SimdLevel)l);
            double s = time_matvec(o, w, row_bytes, aq, out);
            printf("  %-5s vec_dot  %-12s %8.2f GB/s  (%.3f ms per matvec, %.1f MB)\n",
                   dtype_info(types[t])->name, cpu_simd_name((SimdLevel)l),
                   (double)row_bytes * ROWS / s * 1e-9, s * 1e3, (double)row_bytes * ROWS * 1e-6);
        }
        free(w);
    }

    /* activation quantize: many rows of COLS floats, as a batch would */
    void *qbuf = malloc(dtype_row_bytes(DTYPE_Q8_K, (int64_t)ROWS * COLS / 16));
    if (!qbuf)
        return 1;
    const int64_t nq = (int64_t)ROWS * COLS / 16; /* 4 MB of floats */
    for (int l = SIMD_SCALAR; l <= (int)top; l++) {
        const QuantOps *o = quant_ops_at(DTYPE_Q8_K, (SimdLevel)l);
        double best = 1e30, start = now_s();
        for (int pass = 0; pass < MIN_PASSES || now_s() - start < MIN_SECONDS; pass++) {
            double t0 = now_s();
            o->quantize(x, qbuf, nq);
            double tt = now_s() - t0;
            if (tt < best)
                best = tt;
        }
        printf("  Q8_K  quantize %-12s %8.2f GB/s of f32 input\n", cpu_simd_name((SimdLevel)l),
               (double)nq * 4 / best * 1e-9);
    }
    printf("bench_quant_k: done\n");
    free(qbuf);
    free(x);
    free(act);
    free(out);
    free(aq);
    return 0;
}
