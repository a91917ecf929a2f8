/* perplexity.c - `cgpt perplexity [-m MODEL] -f FILE [-c CTX] [-t N]`.
 *
 * Definition (llama.cpp's, so numbers compare): the file is tokenized (no
 * special tokens) and cut into consecutive chunks of CTX tokens (the tail
 * that does not fill a chunk is dropped). When the model adds BOS, each
 * chunk's first token is replaced by BOS. Within a chunk, the tokens at
 * positions CTX/2 .. CTX-1 are scored - each predicted from all tokens
 * before it in the chunk - so every scored token has at least CTX/2 of
 * context. perplexity = exp(mean of -ln p(token | preceding)) over all
 * scored tokens. One line per chunk with the running value; the last line
 * is "perplexity: <float>". */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/common.h"
#include "engine/generate.h"

enum { O_MODEL = 1, O_FILE, O_CTX, O_THREADS, O_KV_TYPE };

static const ArgOpt PPL_OPTS[] = {
    CLI_OPT_MODEL(O_MODEL),
    {O_FILE, "-f|--file", "FILE", "the text to score ('-': stdin)"},
    {O_CTX, "-c|--ctx", "N", "tokens per chunk (default 512)"},
    CLI_OPT_THREADS(O_THREADS),
    CLI_OPT_KV_TYPE(O_KV_TYPE),
    {0},
};

static int cmd_perplexity(int argc, char **argv) {
    const char *model = NULL, *file = NULL, *v;
    long ctx = 512, threads = 0;
    KVType kv_type = CLI_KV_DEFAULT;
    Err err = {0};
    Args a = args_start(argc, argv, 1);
    for (int id; (id = cli_next(&a, &CLI_PERPLEXITY, &v, &err)) != ARG_END;) {
        Status s = STATUS_OK;
        switch (id) {
        case ARG_ERROR: return cli_fail("perplexity", &err);
        case ARG_HELP: cli_help(&CLI_PERPLEXITY); return 0;
        case ARG_POSITIONAL:
            s = err_set(&err, STATUS_INVALID, "unexpected argument '%s'", v);
            break;
        case O_MODEL: model = v; break;
        case O_FILE: file = v; break;
        case O_CTX: s = args_int(a.opt, v, 4, MODEL_MAX_CTX, &ctx, &err); break;
        case O_THREADS: s = args_int(a.opt, v, 0, CLI_MAX_THREADS, &threads, &err); break;
        case O_KV_TYPE: s = cli_kv_type(a.opt, v, &kv_type, &err); break;
        }
        if (s)
            return cli_fail("perplexity", &err);
    }
    if (!file) {
        err_set(&err, STATUS_INVALID, "give the text with -f FILE");
        return cli_fail("perplexity", &err);
    }
    if (cli_model_path(model, &model, &err)) /* no -m: the built-in model */
        return cli_fail("perplexity", &err);
    char *text = NULL;
    size_t len = 0;
    int32_t *ids = NULL;
    size_t n = 0;
    int rc = 1;
    CliModel cm = {0};
    GenSession gs = {0};
    if (cli_read_file(file, CLI_MAX_FILE, &text, &len, &err))
        goto done;
    ModelParams mp = {.n_threads = (int)threads,
                      .n_ctx = (int)ctx,
                      .n_seq_max = 1,
                      .n_batch = 512,
                      .kv_type = kv_type};
    if (cli_load(&cm, model, &mp, NULL, false, &err) || gen_session_init(&gs, cm.m, cm.tok, 0, &err))
        goto done;
    if (!(ids = malloc(sizeof(int32_t) * (len + 3)))) {
        err_set(&err, STATUS_NOMEM, "out of memory");
        goto done;
    }
    TokEncodeOpts eo = {0};
    if (tok_encode(cm.tok, text, len, &eo, ids, len + 3, &n, &err))
        goto done;
    size_t n_chunks = n / (size_t)ctx;
    if (n_chunks == 0) {
        err_set(&err, STATUS_INVALID, "'%s' has %zu tokens, fewer than one chunk of %ld (use -c)",
                file, n, ctx);
        goto done;
    }
    printf("%zu tokens, %zu chunks of %ld, scoring positions %ld..%ld of each\n", n, n_chunks,
           ctx, ctx / 2, ctx - 1);
    double nll = 0;
    long count = 0;
    for (size_t c = 0; c < n_chunks; c++) {
        int32_t *chunk = ids + c * (size_t)ctx;
        if (tok_add_bos(cm.tok) && tok_bos(cm.tok) >= 0)
            chunk[0] = tok_bos(cm.tok);
        if (gen_score(&gs, chunk, (int)ctx, (int)(ctx / 2), &nll, &count, &err))
            goto done;
        printf("[%zu/%zu] %.4f\n", c + 1, n_chunks, exp(nll / (double)count));
        fflush(stdout);
    }
    printf("perplexity: %.6f\n", exp(nll / (double)count));
    rc = 0;
done:
    if (rc)
        cli_fail("perplexity", &err);
    gen_session_free(&gs);
    cli_unload(&cm);
    free(ids);
    free(text);
    return rc;
}

const CliCommand CLI_PERPLEXITY = {
    .name = "perplexity",
    .synopsis = "[-m MODEL] -f FILE [-c CTX]",
    .summary = "perplexity of a text, as llama.cpp computes it (last line: \"perplexity: X\")",
    .opts = PPL_OPTS,
    .main = cmd_perplexity,
};
