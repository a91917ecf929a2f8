/* bench_matmul.c - informational benchmark of matmul_forward on the thread
 * pool: for the SmolLM-135M shapes (K x N = 576 x 1536, 1536 x 576,
 * 576 x 49152) and M = 1, 4, 16, 64 activation rows, the best time of one
 * call over the run (the best resists other load on a shared machine), GOPS
 * (2*M*N*K / s) and the throughput ratio to M = 1 ("x M=1": how much more
 * work per second a batch of M rows gets done than one row). Not a test:
 * numbers depend on the machine and its load. Weights are random and
 * quantized through quant_ops; the activations are converted every call, as
 * in the model.
 *
 * Where this CPU repacks the type (matmul_weight_repack_bytes: Q8_0 on
 * AVX-512 VNNI), each shape also times the repacked weights as a model
 * runs them (matmul_weight_init once, then matmul_multi), alternating call
 * by call with the raw path so that both see the same load: "wp us" and
 * "raw/wp" (the speedup), and checks that both give the same bits. The
 * one-time repacking cost is printed per shape.
 *
 *   build/tools/bench_matmul [type] [threads] [min_seconds]   (defaults Q8_0 2 0.25) */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/cpu.h"
#include "core/rng.h"
#include "core/tpool.h"
#include "tensor/dtype.h"
#include "tensor/matmul.h"
#include "tensor/quant.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static DType parse_type(const char *s) {
    for (int t = 0; t < DTYPE_COUNT; t++)
        if (dtype_info((DType)t) && strcmp(dtype_info((DType)t)->name, s) == 0)
            return (DType)t;
    return DTYPE_COUNT;
}

/* Random weights of type t, N rows of K (NULL on allocation failure). */
static void *make_weights(DType t, Rng *r, int N, int K) {
    const size_t rb = (size_t)dtype_row_bytes(t, K);
    uint8_t *w = malloc(rb * (size_t)N);
    float *row = malloc((size_t)K * sizeof(float));
    if (!w || !row) {
        free(w), free(row);
        return NULL;
    }
    const QuantOps *q = t == DTYPE_F32 ? NULL : quant_ops(t);
    for (int n = 0; n < N; n++) {
        for (int k = 0; k < K; k++)
            row[k] = rng_normal(r) * 0.05f;
        if (q)
            q->quantize(row, w + (size_t)n * rb, K);
        else
            memcpy(w + (size_t)n * rb, row, rb);
    }
    free(row);
    return w;
}

/* The pre-packed path of one matmul, as a model runs it. */
static void wp_forward(TPool *tp, float *out, const float *x, const MatmulWeight *w, int M,
                       void *scratch) {
    const MatmulOut o = {out, w, NULL};
    matmul_multi(tp, x, M, &o, 1, NULL, scratch);
}

int main(int argc, char **argv) {
    const DType t = parse_type(argc > 1 ? argv[1] : "Q8_0");
    const int n_threads = argc > 2 ? atoi(argv[2]) : 2;
    const double min_s = argc > 3 ? atof(argv[3]) : 0.25;
    if (t == DTYPE_COUNT || !matmul_supported(t) || n_threads < 1) {
        fprintf(stderr,
                "usage: bench_matmul [type with matmul kernels] [threads >= 1] [seconds]\n");
        return 2;
    }
    static const int SHAPES[][2] = {{576, 1536}, {1536, 576}, {576, 49152}}; /* K, N */
    static const int MS[] = {1, 4, 16, 64};
    const int n_ms = (int)(sizeof MS / sizeof MS[0]), m_max = 64;
    TPool *tp = tpool_new(n_threads);
    if (!tp) {
        fprintf(stderr, "bench_matmul: cannot create %d threads\n", n_threads);
        return 1;
    }
    Rng r;
    rng_seed(&r, 1);
    const bool wpk = matmul_weight_repack_bytes(t, 4, 32 * 18) > 0;
    printf("bench_matmul: %s weights, %d threads, level %s%s\n", dtype_info(t)->name, n_threads,
           cpu_simd_name(cpu_simd_level()), wpk ? ", raw vs pre-packed weights" : "");
    printf("%6s %6s %4s %10s %9s %8s", "K", "N", "M", "us/call", "GOPS", "x M=1");
    if (wpk)
        printf(" %10s %9s %8s", "wp us", "wp GOPS", "raw/wp");
    printf("\n");
    double checksum = 0;
    int mismatches = 0;
    for (size_t si = 0; si < sizeof SHAPES / sizeof SHAPES[0]; si++) {
        const int K = SHAPES[si][0], N = SHAPES[si][1];
        void *w = make_weights(t, &r, N, K);
        float *x = malloc((size_t)m_max * K * sizeof(float));
        float *out = malloc((size_t)m_max * N * sizeof(float));
        float *out_wp = malloc((size_t)m_max * N * sizeof(float));
        const size_t sb = matmul_scratch_bytes(t, m_max, K);
        void *scratch = sb ? malloc(sb) : NULL;
        const size_t wb = wpk ? matmul_weight_repack_bytes(t, N, K) : 0;
        void *wp = wb ? aligned_alloc(64, wb) : NULL;
        MatmulWeight mw;
        if (!w || !x || !out || !out_wp || (sb && !scratch) || (wb && !wp)) {
            fprintf(stderr, "bench_matmul: out of memory\n");
            return 1;
        }
        for (int i = 0; i < m_max * K; i++)
            x[i] = rng_normal(&r);
        if (wpk) {
            double best = 1e30;
            for (int i = 0; i < 3; i++) {
                const double c0 = now_s();
                matmul_weight_init(&mw, w, t, N, K, wp, tp);
                const double el = now_s() - c0;
                best = el < best ? el : best;
            }
            printf("%6d %6d  pre-packing the weights: %.1f us (%.2f MB)\n", K, N, best * 1e6,
                   (double)wb / 1e6);
        }
        double gops1 = 0;
        for (int mi = 0; mi < n_ms; mi++) {
            const int M = MS[mi];
            matmul_forward(tp, out, x, w, t, NULL, M, N, K, scratch); /* warm up */
            if (wpk) {
                wp_forward(tp, out_wp, x, &mw, M, scratch);
                if (memcmp(out, out_wp, (size_t)M * N * sizeof(float)) != 0) {
                    printf("  MISMATCH: pre-packed output differs from matmul_forward\n");
                    mismatches++;
                }
            }
            int reps = 0;
            const double t0 = now_s();
            double el, best = 1e30, best_wp = 1e30;
            do {
                const double c0 = now_s();
                matmul_forward(tp, out, x, w, t, NULL, M, N, K, scratch);
                const double c1 = now_s();
                best = c1 - c0 < best ? c1 - c0 : best;
                checksum += out[reps % N];
                el = c1 - t0;
                if (wpk) {
                    const double c2 = now_s();
                    wp_forward(tp, out_wp, x, &mw, M, scratch);
                    const double c3 = now_s();
                    best_wp = c3 - c2 < best_wp ? c3 - c2 : best_wp;
                    checksum += out_wp[reps % N];
                    el = c3 - t0;
                }
                reps++;
            } while (el < min_s || reps < 3);
            const double per = best, gops = 2.0 * M * (double)N * K / per * 1e-9;
            if (M == 1)
                gops1 = gops;
            printf("%6d %6d %4d %10.1f %9.2f %8.2f", K, N, M, per * 1e6, gops, gops / gops1);
            if (wpk)
                printf(" %10.1f %9.2f %8.2f", best_wp * 1e6,
                       2.0 * M * (double)N * K / best_wp * 1e-9, best / best_wp);
            printf("\n");
        }
        free(w), free(x), free(out), free(out_wp), free(scratch);
        free(wp);
    }
    printf("(checksum %g)\n", checksum);
    tpool_free(tp);
    return mismatches ? 1 : 0;
}
