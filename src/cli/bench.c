/* bench.c - `cgpt bench -m MODEL [-p N] [-n N] [-t N] [-r N]`: prefill and
 * decode speed as ratios to this machine's limits, measured in the same run.
 *
 *   decode: tokens/s for single-row steps after a short prompt; each step
 *       streams every matmul weight once, so weight bytes x tokens/s is the
 *       achieved bandwidth, reported over perf_mem_bandwidth();
 *   prefill: tokens/s for an N-token prompt in one sequence; 2 x matmul
 *       parameters FLOPs per token, reported over perf_fma_peak() (the F32
 *       FMA peak; quantized kernels use int8 dot products, so their true
 *       ceiling differs - the ratio is a yardstick, not an efficiency).
 * The best of -r repetitions is reported (noise only ever slows a run). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "cli/common.h"
#include "core/cpu.h"
#include "core/perf.h"
#include "model/model.h"

#define BENCH_BW_BYTES ((size_t)1 << 30) /* far past any cache */

typedef struct {
    const char *model;
    long n_prompt, n_gen, threads, reps;
} BenchOpts;

/* Bytes and parameters of the weights each token's matmuls read. The token
 * embedding is a row lookup unless the output is tied to it. */
static void weight_totals(const Model *m, uint64_t *bytes, uint64_t *params) {
    const GGUF *g = model_gguf(m);
    bool tied = model_config(m)->tied_output;
    *bytes = *params = 0;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const GGUFTensor *t = &g->tensors[i];
        if (t->n_dims < 2 || gguf_str_eq(t->name, "position_embd.weight") ||
            (gguf_str_eq(t->name, "token_embd.weight") && !tied))
            continue;
        *bytes += t->n_bytes;
        *params += t->n_elements;
    }
}

static Status run_prefill(Model *m, int n, BatchRow *rows, float *logits, double *secs, Err *err) {
    int n_batch = model_params(m)->n_batch;
    model_seq_free(m, 0);
    double t0 = perf_now();
    for (int at = 0; at < n; at += n_batch) {
        int k = n - at < n_batch ? n - at : n_batch;
        for (int i = 0; i < k; i++)
            rows[i] = (BatchRow){(at + i) % model_config(m)->n_vocab, at + i, 0, at + i == n - 1};
        Status s = model_forward(m, rows, k, logits, err);
        if (s)
            return s;
    }
    *secs = perf_now() - t0;
    return STATUS_OK;
}

static Status run_decode(Model *m, int n, float *logits, double *secs, Err *err) {
    model_seq_free(m, 0);
    BatchRow r = {1, 0, 0, true};
    Status s = model_forward(m, &r, 1, logits, err); /* warm: first position */
    double t0 = perf_now();
    for (int i = 1; i <= n && !s; i++) {
        r = (BatchRow){(int32_t)(i % model_config(m)->n_vocab), i, 0, true};
        s = model_forward(m, &r, 1, logits, err);
    }
    *secs = perf_now() - t0;
    return s;
}

enum { O_MODEL = 1, O_PROMPT, O_GEN, O_THREADS, O_REPS };

static const ArgOpt BENCH_OPTS[] = {
    CLI_OPT_MODEL(O_MODEL),
    {O_PROMPT, "-p|--prompt-tokens", "N", "prompt tokens to prefill (default 256)"},
    {O_GEN, "-n|--gen-tokens", "N", "tokens to decode (default 32)"},
    CLI_OPT_THREADS(O_THREADS),
    {O_REPS, "-r|--repetitions", "N", "runs; the best is reported (default 3)"},
    {0},
};

static int cmd_bench(int argc, char **argv) {
    BenchOpts o = {.n_prompt = 256, .n_gen = 32, .reps = 3};
    Err err = {0};
    Args a = args_start(argc, argv, 1);
    const char *v;
    for (int id; (id = cli_next(&a, &CLI_BENCH, &v, &err)) != ARG_END;) {
        Status s = STATUS_OK;
        switch (id) {
        case ARG_ERROR: return cli_fail("bench", &err);
        case ARG_HELP: cli_help(&CLI_BENCH); return 0;
        case ARG_POSITIONAL:
            s = err_set(&err, STATUS_INVALID, "unexpected argument '%s'", v);
            break;
        case O_MODEL: o.model = v; break;
        case O_PROMPT: s = args_int(a.opt, v, 1, 65536, &o.n_prompt, &err); break;
        case O_GEN: s = args_int(a.opt, v, 1, 65536, &o.n_gen, &err); break;
        case O_THREADS: s = args_int(a.opt, v, 0, CLI_MAX_THREADS, &o.threads, &err); break;
        case O_REPS: s = args_int(a.opt, v, 1, 100, &o.reps, &err); break;
        }
        if (s)
            return cli_fail("bench", &err);
    }
    if (cli_model_path(o.model, &o.model, &err)) /* no -m: the built-in model */
        return cli_fail("bench", &err);
    long ctx = (o.n_prompt > o.n_gen ? o.n_prompt : o.n_gen) + 1;
    ModelParams mp = {
        .n_threads = (int)o.threads, .n_ctx = (int)ctx, .n_seq_max = 1, .n_batch = 256};
    Model *m = NULL;
    if (model_load(&m, o.model, &mp, &err)) {
        return cli_fail("bench", &err);
    }
    const ModelConfig *c = model_config(m);
    float *logits = malloc(sizeof(float) * (size_t)c->n_vocab * 1);
    BatchRow *rows = malloc(sizeof(BatchRow) * 256);
    TPool *tp = tpool_new(o.threads ? (int)o.threads : 0);
    int rc = 1;
    if (!logits || !rows || !tp) {
        err_set(&err, STATUS_NOMEM, "out of memory");
        goto done;
    }
    uint64_t wbytes, wparams;
    weight_totals(m, &wbytes, &wparams);
    double bw = perf_mem_bandwidth(tp, BENCH_BW_BYTES), peak = perf_fma_peak(tp);
    double best_pre = 1e30, best_dec = 1e30, t;
    for (long r = 0; r < o.reps; r++) {
        if (run_prefill(m, (int)o.n_prompt, rows, logits, &t, &err))
            goto done;
        best_pre = t < best_pre ? t : best_pre;
        if (run_decode(m, (int)o.n_gen, logits, &t, &err))
            goto done;
        best_dec = t < best_dec ? t : best_dec;
    }
    double pre_tps = (double)o.n_prompt / best_pre, dec_tps = (double)o.n_gen / best_dec;
    double dec_gbs = dec_tps * (double)wbytes / 1e9;
    double pre_gflops = pre_tps * 2.0 * (double)wparams / 1e9;
    printf("model:     %s (%s, %.1f M matmul params, %.1f MiB of matmul weights)\n", o.model,
           c->arch_name, (double)wparams / 1e6, (double)wbytes / (1024.0 * 1024.0));
    printf("machine:   %d threads, %s, memory read %.1f GB/s, F32 FMA peak %.1f GFLOP/s\n",
           tpool_size(tp), cpu_simd_name(cpu_simd_level()), bw, peak);
    printf("prefill:   %ld tokens  %.1f tokens/s  %.1f GFLOP/s  = %.3f of FMA peak\n", o.n_prompt,
           pre_tps, pre_gflops, pre_gflops / peak);
    printf("decode:    %ld tokens  %.2f tokens/s  %.2f GB/s  = %.3f of memory bandwidth\n", o.n_gen,
           dec_tps, dec_gbs, dec_gbs / bw);
    rc = 0;
done:
    if (rc)
        cli_fail("bench", &err);
    tpool_free(tp);
    free(logits);
    free(rows);
    model_free(m);
    return rc;
}

const CliCommand CLI_BENCH = {
    .name = "bench",
    .synopsis = "[-m MODEL] [-p N] [-n N] [-t N]",
    .summary = "prefill and decode speed as ratios to this machine's measured limits",
    .opts = BENCH_OPTS,
    .main = cmd_bench,
};
