/* run.c - `cgpt run`: one-shot generation.
 *
 * Until the tokenizer lands, the prompt is given as token ids (--tokens) and
 * the output printed as ids (--ids): the generated ids, space-separated, as
 * the last line of stdout. In --ids mode exactly N tokens are generated (no
 * end-of-sequence handling), so tests compare fixed-length continuations.
 * The prompt is fed in chunks of at most RUN_BATCH rows (chunked prefill),
 * then one row per generated token. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "core/rng.h"
#include "model/model.h"
#include "sample/sample.h"

#define RUN_MAX_PROMPT 65536 /* token ids accepted on the command line */
#define RUN_MAX_NEW 65536    /* -n upper bound */
#define RUN_BATCH 256        /* prefill rows per forward */

static const char RUN_USAGE[] = "usage: cgpt run -m MODEL --tokens \"ID ID ...\" --ids [options]\n"
                                "  -n N            tokens to generate (default 16)\n"
                                "  --temp T        temperature; 0 = greedy (default 0.8)\n"
                                "  --seed N        sampling seed (default 42)\n"
                                "  -t, --threads N threads (default: all CPUs)\n"
                                "  -c, --ctx N     context size (default: prompt + n)\n";

typedef struct {
    const char *model;
    const char *tokens;
    long n_new, seed, threads, ctx;
    double temp;
    bool ids;
} RunOpts;

static Status parse(int argc, char **argv, RunOpts *o, bool *help, Err *err) {
    Args a = {argc, argv, 1};
    const char *v;
    for (; a.i < argc; a.i++) {
        const char *opt = argv[a.i];
        Status s = STATUS_OK;
        if (!strcmp(opt, "-h") || !strcmp(opt, "--help")) {
            *help = true;
            return STATUS_OK;
        } else if (!strcmp(opt, "--ids")) {
            o->ids = true;
        } else if (!strcmp(opt, "-m") || !strcmp(opt, "--model")) {
            s = args_value(&a, &o->model, err);
        } else if (!strcmp(opt, "--tokens")) {
            s = args_value(&a, &o->tokens, err);
        } else if (!strcmp(opt, "-p") || !strcmp(opt, "--prompt")) {
            return err_set(err, STATUS_UNSUPPORTED,
                           "text prompts need the tokenizer, which is not built yet; "
                           "give token ids with --tokens and --ids");
        } else if (!strcmp(opt, "-n") || !strcmp(opt, "--n-predict")) {
            if (!(s = args_value(&a, &v, err)))
                s = args_int(opt, v, 0, RUN_MAX_NEW, &o->n_new, err);
        } else if (!strcmp(opt, "--temp")) {
            if (!(s = args_value(&a, &v, err)))
                s = args_float(opt, v, 0, 100, &o->temp, err);
        } else if (!strcmp(opt, "--seed")) {
            if (!(s = args_value(&a, &v, err)))
                s = args_int(opt, v, 0, 0x7fffffffL, &o->seed, err);
        } else if (!strcmp(opt, "-t") || !strcmp(opt, "--threads")) {
            if (!(s = args_value(&a, &v, err)))
                s = args_int(opt, v, 0, 256, &o->threads, err);
        } else if (!strcmp(opt, "-c") || !strcmp(opt, "--ctx")) {
            if (!(s = args_value(&a, &v, err)))
                s = args_int(opt, v, 1, MODEL_MAX_CTX, &o->ctx, err);
        } else {
            return err_set(err, STATUS_INVALID, "unknown option '%s'", opt);
        }
        if (s)
            return s;
    }
    if (!o->model)
        return err_set(err, STATUS_INVALID, "no model given (use -m MODEL)");
    if (!o->tokens)
        return err_set(err, STATUS_INVALID, "no prompt given (use --tokens \"ID ID ...\")");
    if (!o->ids)
        return err_set(err, STATUS_UNSUPPORTED,
                       "printing text needs the tokenizer, which is not built yet; add --ids");
    return STATUS_OK;
}

/* Feed the prompt in chunks, then sample n_new tokens; writes them to 'out'. */
static Status generate(Model *m, const int32_t *prompt, int n_prompt, const RunOpts *o,
                       int32_t *out, Err *err) {
    const ModelConfig *c = model_config(m);
    int n_vocab = c->n_vocab;
    float *logits = malloc(sizeof(float) * (size_t)n_vocab);
    float *probs = malloc(sizeof(float) * (size_t)n_vocab);
    BatchRow *rows = malloc(sizeof(BatchRow) * RUN_BATCH);
    Status s = STATUS_OK;
    if (!logits || !probs || !rows) {
        s = err_set(err, STATUS_NOMEM, "out of memory for a vocabulary of %d", n_vocab);
        goto done;
    }
    Rng rng;
    rng_seed(&rng, (uint64_t)o->seed);
    for (int at = 0; at < n_prompt && !s; at += RUN_BATCH) {
        int n = n_prompt - at < RUN_BATCH ? n_prompt - at : RUN_BATCH;
        for (int i = 0; i < n; i++)
            rows[i] = (BatchRow){prompt[at + i], at + i, 0, at + i == n_prompt - 1};
        s = model_forward(m, rows, n, logits, err);
    }
    for (int k = 0; k < o->n_new && !s; k++) {
        int tok = o->temp <= 0 ? sample_greedy(logits, n_vocab)
                               : sample_temperature(logits, n_vocab, (float)o->temp, &rng, probs);
        out[k] = tok;
        if (k + 1 < o->n_new) {
            BatchRow r = {tok, n_prompt + k, 0, true};
            s = model_forward(m, &r, 1, logits, err);
        }
    }
done:
    free(logits);
    free(probs);
    free(rows);
    return s;
}

int cmd_run(int argc, char **argv) {
    RunOpts o = {.n_new = 16, .seed = 42, .temp = 0.8};
    Err err = {0};
    bool help = false;
    if (parse(argc, argv, &o, &help, &err))
        return cli_fail("run", &err);
    if (help) {
        fputs(RUN_USAGE, stdout);
        return 0;
    }
    int32_t *prompt = malloc(sizeof(int32_t) * RUN_MAX_PROMPT);
    int32_t *out = malloc(sizeof(int32_t) * (size_t)(o.n_new ? o.n_new : 1));
    int n_prompt = 0, rc = 1;
    Model *m = NULL;
    if (!prompt || !out) {
        err_set(&err, STATUS_NOMEM, "out of memory");
        goto fail;
    }
    if (args_int_list("--tokens", o.tokens, prompt, RUN_MAX_PROMPT, &n_prompt, &err))
        goto fail;
    if (n_prompt == 0) {
        err_set(&err, STATUS_INVALID, "--tokens: the prompt is empty");
        goto fail;
    }
    long ctx = o.ctx ? o.ctx : n_prompt + o.n_new;
    if (n_prompt + o.n_new > ctx) {
        err_set(&err, STATUS_LIMIT, "prompt (%d tokens) + -n %ld exceeds the context of %ld",
                n_prompt, o.n_new, ctx);
        goto fail;
    }
    ModelParams mp = {
        .n_threads = (int)o.threads, .n_ctx = (int)ctx, .n_seq_max = 1, .n_batch = RUN_BATCH};
    if (model_load(&m, o.model, &mp, &err)) {
        goto fail;
    }
    if (generate(m, prompt, n_prompt, &o, out, &err))
        goto fail;
    for (long k = 0; k < o.n_new; k++)
        printf("%s%d", k ? " " : "", out[k]);
    printf("\n");
    rc = 0;
fail:
    if (rc)
        cli_fail("run", &err);
    model_free(m);
    free(prompt);
    free(out);
    return rc;
}
