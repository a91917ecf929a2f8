/* quantize.c - `cgpt quantize IN OUT TYPE [--pure] [-t N]`: model/quantize.h does the work. */
#include <stdio.h>
#include <string.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "model/quantize.h"

static void on_tensor(void *ctx, int i, int n, const char *name, DType from, DType to) {
    (void)ctx;
    printf("[%4d/%4d] %-40s %-5s -> %s\n", i + 1, n, name, dtype_info(from)->name,
           dtype_info(to)->name);
    fflush(stdout);
}

enum { O_PURE = 1, O_THREADS };

static const ArgOpt QUANTIZE_OPTS[] = {
    {O_PURE, "--pure", NULL, "every matrix in TYPE (no per-tensor choices of the mixes)"},
    {O_THREADS, "-t|--threads", "N", "threads (default: all CPUs)"},
    {0},
};

static int cmd_quantize(int argc, char **argv) {
    const char *pos[3] = {0}, *v;
    int n_pos = 0;
    long threads = 0;
    QuantizeOpts opts = {.on_tensor = on_tensor};
    Err err = {0};
    Args a = args_start(argc, argv, 1);
    for (int id; (id = cli_next(&a, &CLI_QUANTIZE, &v, &err)) != ARG_END;) {
        switch (id) {
        case ARG_ERROR: return cli_fail("quantize", &err);
        case ARG_HELP: cli_help(&CLI_QUANTIZE); return 0;
        case O_PURE: opts.pure = true; break;
        case O_THREADS:
            if (args_int(a.opt, v, 0, 256, &threads, &err))
                return cli_fail("quantize", &err);
            break;
        case ARG_POSITIONAL:
            if (n_pos == 3) {
                err_set(&err, STATUS_INVALID, "unexpected argument '%s'", v);
                return cli_fail("quantize", &err);
            }
            pos[n_pos++] = v;
            break;
        }
    }
    if (n_pos != 3) {
        err_set(&err, STATUS_INVALID, "usage: cgpt quantize IN OUT TYPE (TYPE: %s)",
                QUANTIZE_SCHEMES);
        return cli_fail("quantize", &err);
    }
    if (!strcmp(pos[0], pos[1])) {
        err_set(&err, STATUS_INVALID, "input and output are the same file '%s'", pos[0]);
        return cli_fail("quantize", &err);
    }
    opts.n_threads = (int)threads;
    if (quantize_file(pos[0], pos[1], pos[2], &opts, &err))
        return cli_fail("quantize", &err);
    printf("wrote %s (%s)\n", pos[1], pos[2]);
    return 0;
}

const CliCommand CLI_QUANTIZE = {
    .name = "quantize",
    .synopsis = "IN.gguf OUT.gguf TYPE [--pure]",
    .summary = "convert weights to TYPE: " QUANTIZE_SCHEMES,
    .opts = QUANTIZE_OPTS,
    .notes = "The _M, _L, Q2_K and IQ4 types mix types per tensor as llama.cpp does (attention\n"
             "V, attention output and FFN down of some layers get more bits); the output\n"
             "matrix gets Q6_K; token embeddings and norms keep theirs.\n",
    .main = cmd_quantize,
};
