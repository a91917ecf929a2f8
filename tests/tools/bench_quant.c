/* bench_quant.c - informational micro-benchmark of the quant kernels, one
 * thread: for each weight type and each SIMD level this CPU has, a
 * 4096x4096 matrix-vector product through QuantOps.vec_dot, reported as GB/s
 * of weight bytes streamed (and ns per row); then activation quantization
 * (F32 -> Q8_0 / Q8_1) as GB/s of F32 read. Not a test: numbers depend on
 * the machine and its load.
 *
 *   build/tools/bench_quant [rows] [cols] [min_seconds]   (defaults 4096 4096 0.3) */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "core/cpu.h"
#include "core/rng.h"
#include "tensor/dtype.h"
#include "tensor/quant.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
    const int64_t rows = argc > 1 ? atoll(argv[1]) : 4096, cols = argc > 2 ? atoll(argv[2]) : 4096;
    const double min_s = argc > 3 ? atof(argv[3]) : 0.3;
    if (rows <= 0 || cols <= 0 || cols % QK_K != 0) {
        fprintf(stderr, "usage: bench_quant [rows] [cols, a multiple of 256] [min_seconds]\n");
        return 2;
    }
    const DType types[] = {DTYPE_F32,  DTYPE_F16,  DTYPE_BF16, DTYPE_Q8_0,
                           DTYPE_Q5_1, DTYPE_Q5_0, DTYPE_Q4_1, DTYPE_Q4_0};
    const SimdLevel top = cpu_simd_level();
    Rng r;
    rng_seed(&r, 1);
    float *x = malloc((size_t)(rows * cols) * sizeof(float)),
          *act = malloc((size_t)cols * sizeof(float));
    float *out = malloc((size_t)rows * sizeof(float));
    if (!x || !act || !out) {
        fprintf(stderr, "bench_quant: out of memory\n");
        return 1;
    }
    for (int64_t i = 0; i < rows * cols; i++)
        x[i] = rng_normal(&r);
    for (int64_t i = 0; i < cols; i++)
        act[i] = rng_normal(&r);

    printf("bench_quant: %lldx%lld matrix-vector, 1 thread, best level %s\n", (long long)rows,
           (long long)cols, cpu_simd_name(top));
    printf("%-6s %-12s %10s %12s %12s\n", "type", "level", "MB", "GB/s", "us/matvec");
    double checksum = 0;
    for (size_t ti = 0; ti < sizeof(types) / sizeof(types[0]); ti++) {
        const DType t = types[ti];
        const QuantOps *o0 = quant_ops_at(t, SIMD_SCALAR);
        if (!o0 || !o0->vec_dot)
            continue;
        const uint64_t row_bytes = dtype_row_bytes(t, cols);
        uint8_t *w = malloc(row_bytes * (uint64_t)rows);
        uint8_t *a = malloc(dtype_row_bytes(o0->vec_dot_type, cols) + 64);
        if (!w || !a) {
            fprintf(stderr, "bench_quant: out of memory\n");
            return 1;
        }
        for (int64_t i = 0; i < rows; i++)
            o0->quantize(x + i * cols, w + (uint64_t)i * row_bytes, cols);
        quant_ops_at(o0->vec_dot_type, SIMD_SCALAR)->quantize(act, a, cols);
        for (int l = SIMD_SCALAR; l <= (int)top; l++) {
            const QuantOps *o = quant_ops_at(t, (SimdLevel)l);
            int reps = 0;
            const double t0 = now_s();
            double el;
            do {
                for (int64_t i = 0; i < rows; i++)
                    o->vec_dot(cols, out + i, w + (uint64_t)i * row_bytes, a);
                checksum += out[reps % rows];
                reps++;
                el = now_s() - t0;
            } while (el < min_s || reps < 2);
            const double bytes = (double)row_bytes * (double)rows;
            printf("%-6s %-12s %10.1f %12.2f %12.1f\n", dtype_info(t)->name,
                   cpu_simd_name((SimdLevel)l), bytes / 1e6, bytes * reps / el / 1e9,
                   el / reps * 1e6);
        }
        free(w);
        free(a);
    }

    printf("\nactivation quantize (F32 -> T), GB/s of F32 read\n");
    const DType acts[] = {DTYPE_Q8_0, DTYPE_Q8_1};
    for (size_t ti = 0; ti < 2; ti++) {
        const DType t = acts[ti];
        uint8_t *q = malloc(dtype_row_bytes(t, cols) * (uint64_t)rows);
        for (int l = SIMD_SCALAR; l <= (int)top; l++) {
            const QuantOps *o = quant_ops_at(t, (SimdLevel)l);
            int reps = 0;
            const double t0 = now_s();
            double el;
            do {
                o->quantize(x, q, rows * cols);
                checksum += q[reps % 64];
                reps++;
                el = now_s() - t0;
            } while (el < min_s || reps < 2);
            printf("%-6s %-12s %12.2f\n", dtype_info(t)->name, cpu_simd_name((SimdLevel)l),
                   (double)(rows * cols) * 4 * reps / el / 1e9);
        }
        free(q);
    }
    printf("checksum %g\n", checksum);
    free(x);
    free(act);
    free(out);
    return 0;
}
