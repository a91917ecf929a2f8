/* bench.c - `cgpt bench -m MODEL [-p N] [-n N] [-b B] [-d D] [--json]`:
 * speed as ratios to this machine's limits, measured in the same run.
 *
 *   prefill (-p N): tokens/s for an N-token prompt in one sequence; 2 x
 *       matmul parameters operations per token, over the int8 dot-product
 *       peak (perf_int8_peak) for quantized weights, the F32 FMA peak
 *       (perf_fma_peak) for F32 / F16 / BF16;
 *   decode (-n N): tokens/s for single-row steps after a one-token prompt;
 *       each step streams every matmul weight once, so the bound is
 *       perf_mem_bandwidth() / weight bytes per token;
 *   batched decode (-b B): B sequences stepping together (one row each per
 *       forward pass), aggregate tokens/s, and its ratio to one sequence;
 *   decode at depth (-d D): single-row decode after a D-token prompt, and
 *       its ratio to decode at depth 0 (what attention over a long cache
 *       costs);
 * plus the load time (model_load, page cache warm after the first) and the
 * peak RSS (VmHWM, from after the probes: the model, its KV cache and the
 * runs). The best of -r repetitions is reported (noise only ever
 * slows a run). --json prints one object (docs/PERFORMANCE.md has the
 * fields); `make bench` runs it over shapes and types (scripts/bench.py). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "cli/common.h"
#include "core/cpu.h"
#include "core/perf.h"
#include "model/model.h"
#include "tensor/dtype.h"

#define BENCH_BW_BYTES ((size_t)1 << 30) /* far past any cache */
#define BENCH_MAX_BATCH 256              /* rows per forward pass */
#define BENCH_MAX_SEQS 256               /* -b */

typedef struct {
    const char *model;
    long n_prompt, n_gen, n_seqs, depth, threads, reps;
    bool json;
    KVType kv_type;
} BenchOpts;

/* Bytes and parameters of the weights each token's matmuls read (the token
 * embedding is a row lookup unless the output is tied to it; of a mixture
 * of experts' stacked expert tensors, the share of the experts a token
 * uses), and the commonest matmul weight type. */
static void weight_totals(const Model *m, uint64_t *bytes, uint64_t *params, int *type) {
    const GGUF *g = model_gguf(m);
    const ModelConfig *c = model_config(m);
    bool tied = c->tied_output;
    uint64_t by_type[DTYPE_COUNT] = {0};
    *bytes = *params = 0;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const GGUFTensor *t = &g->tensors[i];
        if (t->n_dims < 2 || gguf_str_eq(t->name, "position_embd.weight") ||
            (gguf_str_eq(t->name, "token_embd.weight") && !tied))
            continue;
        uint64_t nb = t->n_bytes, ne = t->n_elements;
        if (c->n_expert && t->n_dims == 3) { /* ffn_*_exps: K of E experts per token */
            nb = nb / (uint64_t)c->n_expert * (uint64_t)c->n_expert_used;
            ne = ne / (uint64_t)c->n_expert * (uint64_t)c->n_expert_used;
        }
        *bytes += nb;
        *params += ne;
        if ((unsigned)t->type < DTYPE_COUNT)
            by_type[t->type] += t->n_elements;
    }
    *type = 0;
    for (int t = 1; t < DTYPE_COUNT; t++)
        if (by_type[t] > by_type[*type])
            *type = t;
}

/* Feed n tokens of sequence 'seq' from position 'at' in batches; logits of
 * the last row only. */
static Status feed(Model *m, int seq, int at, int n, BatchRow *rows, float *logits, Err *err) {
    int n_batch = model_params(m)->n_batch;
    for (int done = 0; done < n; done += n_batch) {
        int k = n - done < n_batch ? n - done : n_batch;
        for (int i = 0; i < k; i++) {
            int pos = at + done + i;
            rows[i] = (BatchRow){pos % model_config(m)->n_vocab, pos, seq, done + i == n - 1};
        }
        Status s = model_forward(m, rows, k, logits, err);
        if (s)
            return s;
    }
    return STATUS_OK;
}

static Status run_prefill(Model *m, int n, BatchRow *rows, float *logits, double *secs, Err *err) {
    model_seq_free(m, 0);
    double t0 = perf_now();
    Status s = feed(m, 0, 0, n, rows, logits, err);
    *secs = perf_now() - t0;
    return s;
}

/* n steps of B sequences together after a 'depth'-token prompt each (not
 * timed; depth 0: one token). */
static Status run_decode(Model *m, int n_seqs, int depth, int n, BatchRow *rows, float *logits,
                         double *secs, Err *err) {
    int first = depth > 0 ? depth : 1;
    for (int q = 0; q < n_seqs; q++) {
        model_seq_free(m, q);
        Status s = feed(m, q, 0, first, rows, logits, err);
        if (s)
            return s;
    }
    double t0 = perf_now();
    for (int i = 0; i < n; i++) {
        int pos = first + i;
        for (int q = 0; q < n_seqs; q++)
            rows[q] = (BatchRow){(pos + 7 * q) % model_config(m)->n_vocab, pos, q, true};
        Status s = model_forward(m, rows, n_seqs, logits, err);
        if (s)
            return s;
    }
    *secs = perf_now() - t0;
    return STATUS_OK;
}

/* Start the peak resident set over from the current one (Linux: writing 5
 * to clear_refs), so the probes' buffer does not count. */
static void reset_peak_rss(void) {
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (f) {
        fputs("5", f);
        fclose(f);
    }
}

/* The process's peak resident set (VmHWM), bytes; 0 when unknown. */
static uint64_t peak_rss(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    uint64_t kib = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %" SCNu64, &kib) == 1)
            break;
    if (f)
        fclose(f);
    return kib * 1024;
}

enum { O_MODEL = 1, O_PROMPT, O_GEN, O_SEQS, O_DEPTH, O_THREADS, O_REPS, O_JSON, O_KV_TYPE };

static const ArgOpt BENCH_OPTS[] = {
    CLI_OPT_MODEL(O_MODEL),
    {O_PROMPT, "-p|--prompt-tokens", "N", "prompt tokens to prefill (default 256; 0: skip)"},
    {O_GEN, "-n|--gen-tokens", "N", "tokens to decode (default 32; 0: skip)"},
    {O_SEQS, "-b|--batch-seqs", "B",
     "also decode B sequences together (aggregate tokens/s; default 0: skip)"},
    {O_DEPTH, "-d|--depth", "D", "also decode after a D-token prompt (default 0: skip)"},
    CLI_OPT_THREADS(O_THREADS),
    {O_REPS, "-r|--repetitions", "N", "runs; the best is reported (default 3)"},
    {O_JSON, "--json", NULL, "one JSON object on stdout instead of the table"},
    CLI_OPT_KV_TYPE(O_KV_TYPE),
    {0},
};

static double best_of(double a, double b) { return a < b ? a : b; }

static int cmd_bench(int argc, char **argv) {
    BenchOpts o = {.n_prompt = 256, .n_gen = 32, .reps = 3, .kv_type = CLI_KV_DEFAULT};
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
        case O_PROMPT: s = args_int(a.opt, v, 0, 65536, &o.n_prompt, &err); break;
        case O_GEN: s = args_int(a.opt, v, 0, 65536, &o.n_gen, &err); break;
        case O_SEQS: s = args_int(a.opt, v, 0, BENCH_MAX_SEQS, &o.n_seqs, &err); break;
        case O_DEPTH: s = args_int(a.opt, v, 0, 1 << 20, &o.depth, &err); break;
        case O_THREADS: s = args_int(a.opt, v, 0, CLI_MAX_THREADS, &o.threads, &err); break;
        case O_REPS: s = args_int(a.opt, v, 1, 100, &o.reps, &err); break;
        case O_JSON: o.json = true; break;
        case O_KV_TYPE: s = cli_kv_type(a.opt, v, &o.kv_type, &err); break;
        }
        if (s)
            return cli_fail("bench", &err);
    }
    if ((o.n_seqs || o.depth) && !o.n_gen) {
        err_set(&err, STATUS_INVALID, "-b and -d decode: they need -n N > 0");
        return cli_fail("bench", &err);
    }
    if (cli_model_path(o.model, &o.model, &err)) /* no -m: the built-in model */
        return cli_fail("bench", &err);
    long ctx = o.n_prompt;
    if (o.depth + o.n_gen + 1 > ctx)
        ctx = o.depth + o.n_gen + 1;
    if (o.n_gen + 2 > ctx)
        ctx = o.n_gen + 2;
    int n_seqs = o.n_seqs > 1 ? (int)o.n_seqs : 1;
    ModelParams mp = {.n_threads = (int)o.threads,
                      .n_ctx = (int)ctx,
                      .n_seq_max = n_seqs,
                      .n_batch = BENCH_MAX_BATCH,
                      .kv_type = o.kv_type};
    Model *m = NULL;
    double t_load = perf_now();
    if (model_load(&m, o.model, &mp, &err))
        return cli_fail("bench", &err);
    t_load = perf_now() - t_load;
    const ModelConfig *c = model_config(m);
    float *logits = malloc(sizeof(float) * (size_t)c->n_vocab * (size_t)n_seqs);
    BatchRow *rows = malloc(sizeof(BatchRow) * BENCH_MAX_BATCH);
    TPool *tp = tpool_new(o.threads ? (int)o.threads : 0);
    int rc = 1;
    if (!logits || !rows || !tp) {
        err_set(&err, STATUS_NOMEM, "out of memory");
        goto done;
    }
    uint64_t wbytes, wparams;
    int wtype;
    weight_totals(m, &wbytes, &wparams, &wtype);
    bool quantized = dtype_info(wtype) && dtype_info(wtype)->quantized;
    double bw = perf_mem_bandwidth(tp, BENCH_BW_BYTES), fma = perf_fma_peak(tp);
    double int8 = perf_int8_peak(tp);
    reset_peak_rss(); /* the model's peak from here: the probe's buffer is gone */
    double t_pre = 1e30, t_dec = 1e30, t_bat = 1e30, t_deep = 1e30, t;
    for (long r = 0; r < o.reps; r++) {
        if (o.n_prompt && !run_prefill(m, (int)o.n_prompt, rows, logits, &t, &err))
            t_pre = best_of(t_pre, t);
        if (err.status)
            goto done;
        if (o.n_gen && !run_decode(m, 1, 0, (int)o.n_gen, rows, logits, &t, &err))
            t_dec = best_of(t_dec, t);
        if (err.status)
            goto done;
        if (o.n_seqs > 1 && !run_decode(m, n_seqs, 0, (int)o.n_gen, rows, logits, &t, &err))
            t_bat = best_of(t_bat, t);
        if (err.status)
            goto done;
        if (o.depth && !run_decode(m, 1, (int)o.depth, (int)o.n_gen, rows, logits, &t, &err))
            t_deep = best_of(t_deep, t);
        if (err.status)
            goto done;
    }
    double peak = quantized ? int8 : fma;
    const char *peak_name = quantized ? "int8 dot peak" : "F32 FMA peak";
    double pre_tps = o.n_prompt ? (double)o.n_prompt / t_pre : 0;
    double pre_gops = pre_tps * 2.0 * (double)wparams / 1e9;
    double dec_tps = o.n_gen ? (double)o.n_gen / t_dec : 0;
    double dec_bound = (double)wbytes > 0 ? bw * 1e9 / (double)wbytes : 0;
    double bat_tps = o.n_seqs > 1 ? (double)o.n_gen * (double)n_seqs / t_bat : 0;
    double deep_tps = o.depth ? (double)o.n_gen / t_deep : 0;
    struct stat sb;
    uint64_t file_bytes = stat(o.model, &sb) == 0 ? (uint64_t)sb.st_size : 0;
    const DTypeInfo *ti = dtype_info(wtype);
    if (o.json) {
        json_t *j =
            json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:i, s:s, s:f, s:I, s:{s:f, s:f, s:f}}",
                      "model", o.model, "arch", c->arch_name, "type", ti ? ti->name : "?",
                      "kv_type", cli_kv_name(o.kv_type), "params", (json_int_t)wparams,
                      "weight_bytes", (json_int_t)wbytes, "file_bytes", (json_int_t)file_bytes,
                      "threads", tpool_size(tp), "simd", cpu_simd_name(cpu_simd_level()),
                      "load_seconds", t_load, "peak_rss_bytes", (json_int_t)peak_rss(), "machine",
                      "bandwidth_gbs", bw, "fma_gflops", fma, "int8_gops", int8);
        if (o.n_prompt)
            json_object_set_new(j, "prefill",
                                json_pack("{s:I, s:f, s:f, s:s, s:f}", "tokens",
                                          (json_int_t)o.n_prompt, "tokens_per_s", pre_tps, "gops",
                                          pre_gops, "peak", quantized ? "int8" : "fma", "ratio",
                                          pre_gops / peak));
        if (o.n_gen)
            json_object_set_new(j, "decode",
                                json_pack("{s:I, s:f, s:f, s:f}", "tokens", (json_int_t)o.n_gen,
                                          "tokens_per_s", dec_tps, "bound_tokens_per_s", dec_bound,
                                          "ratio", dec_tps / dec_bound));
        if (o.n_seqs > 1)
            json_object_set_new(j, "batched",
                                json_pack("{s:i, s:f, s:f}", "seqs", n_seqs, "tokens_per_s",
                                          bat_tps, "ratio_to_one", bat_tps / dec_tps));
        if (o.depth)
            json_object_set_new(j, "depth",
                                json_pack("{s:I, s:f, s:f}", "depth", (json_int_t)o.depth,
                                          "tokens_per_s", deep_tps, "ratio_to_depth0",
                                          deep_tps / dec_tps));
        char *txt = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(6));
        if (txt)
            puts(txt);
        free(txt);
        json_decref(j);
    } else {
        printf("model:     %s (%s, %s, %.1f M matmul params, %.1f MiB of matmul weights%s)\n",
               o.model, c->arch_name, ti ? ti->name : "?", (double)wparams / 1e6,
               (double)wbytes / (1024.0 * 1024.0), c->n_expert ? " active per token" : "");
        printf("machine:   %d threads, %s, memory read %.1f GB/s, F32 FMA peak %.1f GFLOP/s, "
               "int8 dot peak %.1f GOP/s\n",
               tpool_size(tp), cpu_simd_name(cpu_simd_level()), bw, fma, int8);
        printf("load:      %.3f s, peak RSS %.1f MiB (file %.1f MiB)\n", t_load,
               (double)peak_rss() / (1024.0 * 1024.0), (double)file_bytes / (1024.0 * 1024.0));
        if (o.n_prompt)
            printf("prefill:   %ld tokens  %.1f tokens/s  %.1f GOP/s  = %.3f of the %s\n",
                   o.n_prompt, pre_tps, pre_gops, pre_gops / peak, peak_name);
        if (o.n_gen)
            printf("decode:    %ld tokens  %.2f tokens/s  = %.3f of the bandwidth bound (%.1f "
                   "tokens/s)\n",
                   o.n_gen, dec_tps, dec_tps / dec_bound, dec_bound);
        if (o.n_seqs > 1)
            printf("batched:   %d sequences x %ld tokens  %.1f tokens/s  = %.2f x one sequence\n",
                   n_seqs, o.n_gen, bat_tps, bat_tps / dec_tps);
        if (o.depth)
            printf("depth:     %ld tokens after %ld  %.2f tokens/s  = %.3f of depth 0\n", o.n_gen,
                   o.depth, deep_tps, deep_tps / dec_tps);
    }
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
    .synopsis = "[-m MODEL] [-p N] [-n N] [-b B] [-d D] [-t N] [--json]",
    .summary = "prefill, decode, batched and deep decode speed as ratios to this machine's "
               "measured limits",
    .opts = BENCH_OPTS,
    .main = cmd_bench,
};
