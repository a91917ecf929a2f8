/* embed.c - test tool: pooled embeddings of token sequences (model_embed).
 *
 *   embed -m MODEL --seq "1 2 3" --seq "4 5" ... [--batched] [--pooling N]
 *         [--normalize] [--threads N] [--ctx N] [--batch N] -o OUT.bin
 *
 * OUT.bin holds float32 (host order) vectors, n_embd floats per sequence in
 * the order given. Alone (default): one model_embed call per sequence;
 * --batched: one call for all of them (encoders pack them into as few
 * forward passes as --batch allows). --pooling: 0 the model's (default),
 * 1 mean, 2 cls, 3 last. --ctx sets n_ctx (default: the longest sequence or
 * 64, whichever is more, within the model's context). Decoders run in KV
 * sequence 0. Prints "n_embd N" on stdout. Exits 1 with one line on stderr
 * on any error. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"

#define EMBED_MAX_SEQS 256
#define EMBED_MAX_TOKENS 65536 /* in all */

static _Noreturn void die(const char *fmt, const char *a) {
    fprintf(stderr, "embed: ");
    fprintf(stderr, fmt, a);
    fputc('\n', stderr);
    exit(1);
}

static long parse_int(const char *opt, const char *v, long lo, long hi) {
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi) {
        fprintf(stderr, "embed: %s: bad integer '%s' (range %ld..%ld)\n", opt, v, lo, hi);
        exit(1);
    }
    return x;
}

int main(int argc, char **argv) {
    const char *model = NULL, *out = NULL;
    static int32_t tokens[EMBED_MAX_TOKENS];
    int32_t lens[EMBED_MAX_SEQS];
    int n_seqs = 0, n_tok = 0, longest = 0;
    bool batched = false;
    ModelEmbedOpts eo = {0};
    ModelParams mp = {0};
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        if (!strcmp(o, "--batched")) {
            batched = true;
            continue;
        }
        if (!strcmp(o, "--normalize")) {
            eo.normalize = true;
            continue;
        }
        if (i + 1 >= argc)
            die("%s: missing value", o);
        const char *v = argv[++i];
        if (!strcmp(o, "-m")) {
            model = v;
        } else if (!strcmp(o, "-o")) {
            out = v;
        } else if (!strcmp(o, "--pooling")) {
            eo.pooling = (ModelPooling)parse_int(o, v, 0, 3);
        } else if (!strcmp(o, "--threads")) {
            mp.n_threads = (int)parse_int(o, v, 0, 256);
        } else if (!strcmp(o, "--ctx")) {
            mp.n_ctx = (int)parse_int(o, v, 1, 1 << 20);
        } else if (!strcmp(o, "--batch")) {
            mp.n_batch = (int)parse_int(o, v, 1, 1 << 16);
        } else if (!strcmp(o, "--seq")) {
            if (n_seqs == EMBED_MAX_SEQS)
                die("more than %s sequences", "256");
            int n = 0;
            for (const char *p = v; *p;) {
                while (*p == ' ' || *p == ',')
                    p++;
                if (!*p)
                    break;
                char *end;
                errno = 0;
                long t = strtol(p, &end, 10);
                if (errno || end == p || t < 0 || t > INT32_MAX)
                    die("--seq: bad token in '%s'", v);
                if (n_tok == EMBED_MAX_TOKENS)
                    die("more than %s tokens in all", "65536");
                tokens[n_tok++] = (int32_t)t;
                n++;
                p = end;
            }
            if (n == 0)
                die("--seq: empty sequence '%s'", v);
            lens[n_seqs++] = n;
            longest = n > longest ? n : longest;
        } else {
            die("unknown option '%s'", o);
        }
    }
    if (!model || !out || !n_seqs)
        die("need -m MODEL, -o OUT and at least one --seq%s", "");
    Err err = {0};
    Model *m = NULL;
    if (!mp.n_ctx) {
        mp.n_ctx = longest > 64 ? longest : 64;
        GGUF g = {0}; /* within the model's context (learned positions) */
        if (gguf_open(&g, model, &err) == STATUS_OK) {
            for (uint64_t i = 0; i < g.n_kv; i++) {
                const GGUFKV *kv = &g.kv[i];
                const char *suf = ".context_length";
                size_t ls = strlen(suf);
                if (kv->key.len > ls && !memcmp(kv->key.ptr + kv->key.len - ls, suf, ls) &&
                    kv->type != GGUF_TYPE_ARRAY && kv->val.u < (uint64_t)mp.n_ctx)
                    mp.n_ctx = (int)kv->val.u;
            }
            gguf_close(&g);
        }
    }
    if (model_load(&m, model, &mp, &err))
        die("%s", err.msg);
    int C = model_config(m)->n_embd;
    float *vec = malloc((size_t)n_seqs * (size_t)C * sizeof *vec);
    if (!vec)
        die("out of memory%s", "");
    if (batched) {
        if (model_embed(m, tokens, lens, n_seqs, &eo, vec, &err))
            die("%s", err.msg);
    } else {
        int at = 0;
        for (int s = 0; s < n_seqs; s++) {
            if (model_embed(m, tokens + at, lens + s, 1, &eo, vec + (size_t)s * C, &err))
                die("%s", err.msg);
            at += lens[s];
        }
    }
    FILE *f = fopen(out, "wb");
    if (!f || fwrite(vec, sizeof *vec, (size_t)n_seqs * C, f) != (size_t)n_seqs * C ||
        fclose(f) != 0)
        die("cannot write %s", out);
    printf("n_embd %d\n", C);
    free(vec);
    model_free(m);
    return 0;
}
