/* trainbench.c - training throughput of the trainable model (tmodel.h):
 * forward + backward + a plain SGD-like update over all parameters (so the
 * optimizer's memory traffic is counted), on random tokens. Not a test:
 * numbers depend on the machine and its load.
 *
 *   trainbench [--embd 256] [--layers 6] [--heads 8] [--kv-heads 4] [--ff 688]
 *              [--vocab 8192] [--seq 256] [--batch 8] [--steps 10] [--threads 2]
 *              [--head-dim embd/heads]
 *
 * stdout: one JSON line {"tokens_per_s", "best_step_tokens_per_s", "params",
 * "flops_per_token" (6 * params), "fma_peak_gflops", "mfu" (of the mean
 * rate), "mfu_best", "threads", ...}; stderr: the per-phase breakdown
 * (matmul, attention, element-wise, cross-entropy, update) in ms per step.
 * One untimed warm-up step comes first. TRAINBENCH_CPU_CLOCK=1 times the
 * phases with the main thread's CPU clock instead (with --threads 1: a
 * breakdown that the machine's other load does not distort). */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "core/perf.h"
#include "core/rng.h"
#include "core/tpool.h"
#include "train/tkern.h"
#include "train/tmodel.h"

typedef struct {
    float *p;
    const float *g;
    size_t n;
    float lr;
} Sgd;

static void sgd_task(void *vctx, int ith, int nth) {
    Sgd *s = vctx;
    long lo, hi;
    tpool_range((long)s->n, ith, nth, &lo, &hi);
    for (long i = lo; i < hi; i++)
        s->p[i] -= s->lr * s->g[i];
}

/* CPU seconds of the whole process (all threads) so far. */
static double cpu_seconds(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec +
           (double)ru.ru_stime.tv_sec + 1e-6 * (double)ru.ru_stime.tv_usec;
}

static int arg_int(int argc, char **argv, const char *name, int def) {
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], name))
            return atoi(argv[i + 1]);
    return def;
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            fprintf(stderr, "usage: trainbench [--embd N] [--layers N] [--heads N] [--kv-heads N] "
                            "[--head-dim N] [--ff N] [--vocab N] [--seq N] [--batch N] "
                            "[--steps N] [--threads N]\n");
            return 2;
        }
    }
    TConfig cfg = {.n_vocab = arg_int(argc, argv, "--vocab", 8192),
                   .n_embd = arg_int(argc, argv, "--embd", 256),
                   .n_layers = arg_int(argc, argv, "--layers", 6),
                   .n_heads = arg_int(argc, argv, "--heads", 8),
                   .n_kv_heads = arg_int(argc, argv, "--kv-heads", 4),
                   .n_ff = arg_int(argc, argv, "--ff", 688),
                   .n_ctx = arg_int(argc, argv, "--seq", 256),
                   .rope_base = 10000.0f,
                   .norm_eps = 1e-5f};
    cfg.head_dim =
        arg_int(argc, argv, "--head-dim", cfg.n_heads > 0 ? cfg.n_embd / cfg.n_heads : 0);
    int B = arg_int(argc, argv, "--batch", 8), steps = arg_int(argc, argv, "--steps", 10);
    int threads = arg_int(argc, argv, "--threads", 2);
    if (steps < 1 || threads < 0) {
        fprintf(stderr, "trainbench: --steps must be >= 1 and --threads >= 0\n");
        return 2;
    }
    TPool *tp = tpool_new(threads);
    if (!tp) {
        fprintf(stderr, "trainbench: cannot start %d threads\n", threads);
        return 1;
    }
    TModel *m = NULL;
    Err err = {0};
    if (tmodel_new(&m, &cfg, B, tp, &err) != STATUS_OK) {
        fprintf(stderr, "trainbench: %s\n", err.msg);
        return 1;
    }
    tmodel_init(m, 1);
    int T = cfg.n_ctx, N = B * T;
    int32_t *tok = malloc((size_t)N * sizeof *tok), *tgt = malloc((size_t)N * sizeof *tgt);
    if (!tok || !tgt) {
        fprintf(stderr, "trainbench: out of memory\n");
        return 1;
    }
    Rng r;
    rng_seed(&r, 7);
    for (int i = 0; i < N; i++) {
        tok[i] = (int32_t)(rng_u64(&r) % (uint64_t)cfg.n_vocab);
        tgt[i] = (int32_t)(rng_u64(&r) % (uint64_t)cfg.n_vocab);
    }
    double fma_peak = perf_fma_peak(tp);
    size_t P = tmodel_n_params(m);
    Sgd sgd = {tmodel_params(m), tmodel_grads(m), P, 1e-4f};

    double total = 0, best = 1e30, t_update = 0, t_zero = 0, loss = 0, cpu = 0;
    for (int s = -1; s < steps; s++) {
        if (s == 0) {
            tk_timing_reset(getenv("TRAINBENCH_CPU_CLOCK") != NULL);
            cpu = cpu_seconds();
        }
        double t0 = perf_now();
        tmodel_zero_grads(m);
        double t1 = perf_now();
        long cnt;
        if (tmodel_forward(m, tok, tgt, B, T, &loss, &cnt, &err) != STATUS_OK) {
            fprintf(stderr, "trainbench: %s\n", err.msg);
            return 1;
        }
        tmodel_backward(m, 1.0f / (float)cnt);
        double t2 = perf_now();
        tpool_run(tp, sgd_task, &sgd);
        double t3 = perf_now();
        if (s >= 0) {
            total += t3 - t0;
            best = t3 - t0 < best ? t3 - t0 : best;
            t_update += t3 - t2;
            t_zero += t1 - t0;
        }
    }
    cpu = cpu_seconds() - cpu;
    TKTiming tm = tk_timing_get();
    double per = 1e3 / steps, step_ms = total * per;
    fprintf(stderr,
            "trainbench: %.1f ms/step (best %.1f): matmul %.1f, attention %.1f, element-wise "
            "%.1f, cross-entropy %.1f, update %.1f, zero grads %.1f, other %.1f ms; loss %.4f; "
            "process CPU %.1f ms/step\n",
            step_ms, best * 1e3, tm.matmul * per, tm.attention * per, tm.elementwise * per,
            tm.crossentropy * per, t_update * per, t_zero * per,
            step_ms -
                (tm.matmul + tm.attention + tm.elementwise + tm.crossentropy + t_update + t_zero) *
                    per,
            loss / N, cpu * per);
    double flops_tok = 6.0 * (double)P;
    double tps = (double)N * steps / total, tps_best = (double)N / best;
    /* matmul GFLOP/s: 6 * (non-embedding-gather params) per token, all of it in BLAS */
    printf("{\"tokens_per_s\": %.1f, \"best_step_tokens_per_s\": %.1f, \"params\": %zu, "
           "\"flops_per_token\": %.0f, \"fma_peak_gflops\": %.1f, \"mfu\": %.4f, "
           "\"mfu_best\": %.4f, \"matmul_gflops\": %.1f, \"tokens_per_cpu_s\": %.1f, "
           "\"threads\": %d, \"batch\": %d, "
           "\"seq\": %d, \"steps\": %d, \"simd\": \"%s\", \"blas_core\": \"%s\"}\n",
           tps, tps_best, P, flops_tok, fma_peak, tps * flops_tok / (fma_peak * 1e9),
           tps_best * flops_tok / (fma_peak * 1e9), flops_tok * N * steps / tm.matmul / 1e9,
           (double)N * steps / cpu, tpool_size(tp), B, T, steps, tk_ops_f(cpu_simd_level())->name,
           openblas_get_corename());
    free(tok);
    free(tgt);
    tmodel_free(m);
    tpool_free(tp);
    return 0;
}
