/* genmodel.c - test tool: write a small random GGUF model (randmodel_write).
 *
 *   genmodel --arch A --vocab N --embd N --layers N --heads N --kv-heads N
 *            --head-dim N --ff N [--ctx N] [--rope-base F] [--llama3-rope]
 *            [--tied] [--type F32|F16|Q4_K...] [--seed N] [--std F] -o FILE
 *
 * --kv-heads defaults to --heads, --head-dim to embd/heads, --ctx to 256.
 * Exits 1 with one line on stderr for a bad argument or a failed write. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/randmodel.h"

static void die(const char *fmt, const char *a, const char *b) {
    fprintf(stderr, "genmodel: ");
    fprintf(stderr, fmt, a, b);
    fputc('\n', stderr);
    exit(1);
}

static long long parse_int(const char *opt, const char *v, long long lo, long long hi) {
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi)
        die("%s: bad integer '%s'", opt, v);
    return x;
}

static double parse_float(const char *opt, const char *v) {
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || *end)
        die("%s: bad number '%s'", opt, v);
    return x;
}

int main(int argc, char **argv) {
    RandModelSpec s = {0};
    s.n_kv_heads = -1;
    s.head_dim = -1;
    s.n_ctx_train = 256;
    s.wtype = DTYPE_F32;
    s.seed = 1;
    const char *out = NULL;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        if (!strcmp(o, "--llama3-rope")) {
            s.rope_llama3 = true;
            continue;
        }
        if (!strcmp(o, "--tied")) {
            s.tied = true;
            continue;
        }
        if (i + 1 >= argc)
            die("%s: missing value%s", o, "");
        const char *v = argv[++i];
        if (!strcmp(o, "--arch"))
            s.arch = v;
        else if (!strcmp(o, "--vocab"))
            s.n_vocab = (int)parse_int(o, v, 1, 1 << 22);
        else if (!strcmp(o, "--embd"))
            s.n_embd = (int)parse_int(o, v, 1, 1 << 16);
        else if (!strcmp(o, "--layers"))
            s.n_layers = (int)parse_int(o, v, 1, 512);
        else if (!strcmp(o, "--heads"))
            s.n_heads = (int)parse_int(o, v, 1, 1024);
        else if (!strcmp(o, "--kv-heads"))
            s.n_kv_heads = (int)parse_int(o, v, 1, 1024);
        else if (!strcmp(o, "--head-dim"))
            s.head_dim = (int)parse_int(o, v, 1, 1 << 16);
        else if (!strcmp(o, "--ff"))
            s.n_ff = (int)parse_int(o, v, 1, 1 << 20);
        else if (!strcmp(o, "--ctx"))
            s.n_ctx_train = (int)parse_int(o, v, 1, 1 << 20);
        else if (!strcmp(o, "--rope-base"))
            s.rope_freq_base = (float)parse_float(o, v);
        else if (!strcmp(o, "--seed"))
            s.seed = (uint64_t)parse_int(o, v, 0, 0x7fffffffffffffffll);
        else if (!strcmp(o, "--std"))
            s.init_std = (float)parse_float(o, v);
        else if (!strcmp(o, "--type")) {
            int t = dtype_from_name(v);
            if (t < 0)
                die("--type: unknown type '%s'%s", v, "");
            s.wtype = (DType)t;
        } else if (!strcmp(o, "-o"))
            out = v;
        else
            die("unknown option '%s'%s", o, "");
    }
    if (!s.arch)
        die("missing --arch%s%s", "", "");
    if (!out)
        die("missing -o FILE%s%s", "", "");
    if (!s.n_vocab || !s.n_embd || !s.n_layers || !s.n_heads || !s.n_ff)
        die("need --vocab, --embd, --layers, --heads and --ff%s%s", "", "");
    if (s.n_kv_heads < 0)
        s.n_kv_heads = s.n_heads;
    if (s.head_dim < 0)
        s.head_dim = s.n_embd / s.n_heads;
    Err err = {0};
    if (randmodel_write(out, &s, &err) != STATUS_OK) {
        fprintf(stderr, "genmodel: %s: %s\n", out, err.msg);
        return 1;
    }
    return 0;
}
