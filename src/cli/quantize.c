/* quantize.c - `cgpt quantize IN OUT TYPE [--pure] [-t N]`. */
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

int cmd_quantize(int argc, char **argv) {
    const char *pos[3] = {0};
    int n_pos = 0;
    long threads = 0;
    QuantizeOpts opts = {.on_tensor = on_tensor};
    Err err = {0};
    Args a = {argc, argv, 1};
    const char *v;
    for (; a.i < argc; a.i++) {
        const char *o = argv[a.i];
        if (!strcmp(o, "-h") || !strcmp(o, "--help")) {
            printf("usage: cgpt quantize IN.gguf OUT.gguf TYPE [--pure] [-t THREADS]\n"
                   "TYPE: %s\n",
                   QUANTIZE_SCHEMES);
            return 0;
        } else if (!strcmp(o, "--pure")) {
            opts.pure = true;
        } else if (!strcmp(o, "-t") || !strcmp(o, "--threads")) {
            if (args_value(&a, &v, &err) || args_int(o, v, 0, 256, &threads, &err))
                return cli_fail("quantize", &err);
        } else if (o[0] == '-' && o[1]) {
            err_set(&err, STATUS_INVALID, "unknown option '%s'", o);
            return cli_fail("quantize", &err);
        } else if (n_pos < 3) {
            pos[n_pos++] = o;
        } else {
            err_set(&err, STATUS_INVALID, "unexpected argument '%s'", o);
            return cli_fail("quantize", &err);
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
