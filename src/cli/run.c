/* run.c - `cgpt run`: one-shot generation.
 *
 *   cgpt run -m MODEL -p TEXT [-n N] [sampling] [--stop S]... [--chat]
 *       streams the continuation of TEXT to stdout. The prompt gets the
 *       model's BOS when it adds one, and special-token strings in it are
 *       parsed (as llama.cpp's CLI does: the user of `run` writes raw prompts).
 *       With --chat, TEXT is one user message (after --system, if given)
 *       rendered through the chat template (--chat-template-file overrides
 *       it), and special tokens come only from the template.
 *   cgpt run -m MODEL --tokens "ID ..." --ids [-n N] [sampling]
 *       the prompt as token ids; prints the generated ids, space-separated,
 *       as the last line of stdout. Exactly N tokens are generated (no
 *       end-of-sequence handling), so tests compare fixed-length output.
 *   --grammar-file FILE / --json-schema SCHEMA constrain the text's output
 *       (a GBNF grammar; a JSON Schema compiled to one), as llama.cpp's. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/common.h"
#include "engine/generate.h"
#include "sample/jsonschema.h"
#include "sample/stop.h"

#define RUN_MAX_PROMPT 65536 /* token ids accepted by --tokens */
#define RUN_MAX_NEW 65536    /* -n upper bound */
#define RUN_BATCH 256        /* prefill rows per forward */

enum {
    O_MODEL = 1,
    O_PROMPT,
    O_FILE,
    O_TOKENS,
    O_IDS,
    O_N,
    O_STOP,
    O_IGNORE_EOS,
    O_CHAT,
    O_SYSTEM,
    O_TFILE,
    O_THREADS,
    O_CTX,
    O_KV_TYPE,
    O_GRAMMAR_FILE,
    O_JSON_SCHEMA
};

static const ArgOpt RUN_OPTS[] = {
    CLI_OPT_MODEL(O_MODEL),
    {O_PROMPT, "-p|--prompt", "TEXT", "the prompt"},
    {O_FILE, "-f|--file", "FILE", "read the prompt from FILE ('-': stdin)"},
    {O_N, "-n|--n-predict", "N", "tokens to generate (default 128; --ids: 16)"},
    {O_STOP, "--stop", "TEXT", "stop before TEXT (repeatable)"},
    {O_IGNORE_EOS, "--ignore-eos", NULL, "keep generating past end-of-sequence tokens"},
    {O_CHAT, "--chat", NULL, "TEXT is a user message, rendered with the chat template"},
    {O_SYSTEM, "--system", "TEXT", "system message for --chat"},
    CLI_OPT_TEMPLATE(O_TFILE),
    CLI_OPT_THREADS(O_THREADS),
    {O_CTX, "-c|--ctx", "N", "context size (default: the model's, at most 4096)"},
    CLI_OPT_KV_TYPE(O_KV_TYPE),
    {O_GRAMMAR_FILE, "--grammar-file", "FILE", "the output follows this GBNF grammar"},
    {O_JSON_SCHEMA, "--json-schema", "SCHEMA", "the output is JSON valid against this JSON Schema"},
    {O_TOKENS, "--tokens", "IDS", "the prompt as token ids \"1 2 3\" (with --ids)"},
    {O_IDS, "--ids", NULL, "print the generated token ids; exactly -n of them (for tests)"},
    {0},
};

typedef struct {
    const char *model, *prompt, *file, *tokens, *system, *tfile, *grammar_file, *json_schema;
    const char *stop[STOP_MAX_STRINGS];
    int n_stop;
    long n_new, threads, ctx;
    SamplerParams sp;
    unsigned sp_set; /* PRESET_* bits of the sampling flags given */
    bool ids, chat, ignore_eos, n_given;
    KVType kv_type;
} RunOpts;

static Status parse(int argc, char **argv, RunOpts *o, bool *help, Err *err) {
    Args a = args_start(argc, argv, 1);
    const char *v;
    for (int id; (id = cli_next_sampling(&a, &CLI_RUN, &o->sp, &o->sp_set, &v, err)) != ARG_END;) {
        Status s = STATUS_OK;
        switch (id) {
        case ARG_ERROR: return err->status;
        case ARG_HELP: *help = true; return STATUS_OK;
        case ARG_POSITIONAL:
            return err_set(err, STATUS_INVALID,
                           "unexpected argument '%s' (the prompt goes after -p)", v);
        case O_IDS: o->ids = true; break;
        case O_CHAT: o->chat = true; break;
        case O_IGNORE_EOS: o->ignore_eos = true; break;
        case O_MODEL: o->model = v; break;
        case O_TOKENS: o->tokens = v; break;
        case O_PROMPT: o->prompt = v; break;
        case O_FILE: o->file = v; break;
        case O_SYSTEM: o->system = v; break;
        case O_TFILE: o->tfile = v; break;
        case O_GRAMMAR_FILE: o->grammar_file = v; break;
        case O_JSON_SCHEMA: o->json_schema = v; break;
        case O_STOP:
            if (o->n_stop == STOP_MAX_STRINGS)
                return err_set(err, STATUS_LIMIT, "more than %d --stop strings", STOP_MAX_STRINGS);
            o->stop[o->n_stop++] = v;
            break;
        case O_N:
            s = args_int(a.opt, v, 0, RUN_MAX_NEW, &o->n_new, err);
            o->n_given = true;
            break;
        case O_THREADS: s = args_int(a.opt, v, 0, CLI_MAX_THREADS, &o->threads, err); break;
        case O_CTX: s = args_int(a.opt, v, 1, MODEL_MAX_CTX, &o->ctx, err); break;
        case O_KV_TYPE: s = cli_kv_type(a.opt, v, &o->kv_type, err); break;
        }
        if (s)
            return s;
    }
    if (cli_model_path(o->model, &o->model, err)) /* no -m: the built-in model */
        return err->status;
    int given = !!o->prompt + !!o->file + !!o->tokens;
    if (given != 1)
        return err_set(err, STATUS_INVALID, "give exactly one of -p TEXT, -f FILE, --tokens IDS");
    if (o->tokens && !o->ids)
        return err_set(err, STATUS_INVALID, "--tokens prints token ids: add --ids");
    if (o->ids && !o->tokens)
        return err_set(err, STATUS_INVALID, "--ids needs the prompt as --tokens \"ID ...\"");
    if (!o->n_given)
        o->n_new = o->ids ? 16 : 128;
    if (o->grammar_file && o->json_schema)
        return err_set(err, STATUS_INVALID, "give --grammar-file or --json-schema, not both");
    if (o->ids && (o->grammar_file || o->json_schema))
        return err_set(err, STATUS_INVALID, "--ids generates exactly -n tokens: no grammar");
    return STATUS_OK;
}

/* The grammar --grammar-file or --json-schema gives (owned), or NULL. */
static Status run_grammar(const RunOpts *o, char **out, size_t *len, Err *err) {
    *out = NULL;
    *len = 0;
    if (o->grammar_file)
        return cli_read_file(o->grammar_file, GRAMMAR_MAX_TEXT, out, len, err);
    if (!o->json_schema)
        return STATUS_OK;
    json_error_t je;
    json_t *schema = json_loads(o->json_schema, JSON_DECODE_ANY, &je);
    if (!schema)
        return err_set(err, STATUS_INVALID, "--json-schema: invalid JSON at column %d: %s",
                       je.column, je.text);
    Status st = jsonschema_to_gbnf(schema, out, err);
    json_decref(schema);
    if (st)
        err_prefix(err, "--json-schema");
    else
        *len = strlen(*out);
    return st;
}

/* --tokens/--ids: exactly n_new tokens, printed as ids. */
static Status run_ids(const RunOpts *o, Err *err) {
    int32_t *prompt = malloc(sizeof(int32_t) * RUN_MAX_PROMPT);
    int32_t *out = malloc(sizeof(int32_t) * (size_t)(o->n_new ? o->n_new : 1));
    int n_prompt = 0;
    Model *m = NULL;
    Sampler *smp = NULL;
    float *logits = NULL;
    BatchRow *rows = NULL;
    Status s = STATUS_OK;
    if (!prompt || !out) {
        s = err_set(err, STATUS_NOMEM, "out of memory");
        goto done;
    }
    if ((s = args_int_list("--tokens", o->tokens, prompt, RUN_MAX_PROMPT, &n_prompt, err)))
        goto done;
    if (n_prompt == 0) {
        s = err_set(err, STATUS_INVALID, "--tokens: the prompt is empty");
        goto done;
    }
    long ctx = o->ctx ? o->ctx : n_prompt + o->n_new;
    if (n_prompt + o->n_new > ctx) {
        s = err_set(err, STATUS_LIMIT, "prompt (%d tokens) + -n %ld exceeds the context of %ld",
                    n_prompt, o->n_new, ctx);
        goto done;
    }
    ModelParams mp = {.n_threads = (int)o->threads,
                      .n_ctx = (int)ctx,
                      .n_seq_max = 1,
                      .n_batch = RUN_BATCH,
                      .kv_type = o->kv_type};
    if ((s = model_load(&m, o->model, &mp, err)))
        goto done;
    if (model_config(m)->encoder) { /* bert, nomic-bert: embeddings only */
        s = err_set(err, STATUS_UNSUPPORTED, "an embedding model (%s) cannot generate text",
                    model_config(m)->arch_name);
        goto done;
    }
    int V = model_config(m)->n_vocab;
    logits = malloc(sizeof(float) * (size_t)V);
    rows = malloc(sizeof(BatchRow) * RUN_BATCH);
    if (!logits || !rows) {
        s = err_set(err, STATUS_NOMEM, "out of memory for a vocabulary of %d", V);
        goto done;
    }
    SamplePreset preset;
    SamplerParams sp = o->sp;
    if ((s = preset_from_gguf(model_gguf(m), &preset, err)))
        goto done;
    preset_apply(&preset, o->sp_set, &sp);
    if (!(smp = sampler_new(&sp, V, err))) {
        s = err->status;
        goto done;
    }
    for (int at = 0; at < n_prompt && !s; at += RUN_BATCH) {
        int n = n_prompt - at < RUN_BATCH ? n_prompt - at : RUN_BATCH;
        for (int i = 0; i < n; i++) {
            rows[i] = (BatchRow){prompt[at + i], at + i, 0, at + i == n_prompt - 1};
            if (prompt[at + i] < V)
                sampler_accept(smp, prompt[at + i]);
        }
        s = model_forward(m, rows, n, logits, err);
    }
    for (int k = 0; k < o->n_new && !s; k++) {
        out[k] = sampler_sample(smp, logits, NULL);
        sampler_accept(smp, out[k]);
        if (k + 1 < o->n_new) {
            BatchRow r = {out[k], n_prompt + k, 0, true};
            s = model_forward(m, &r, 1, logits, err);
        }
    }
    if (!s) {
        for (long k = 0; k < o->n_new; k++)
            printf("%s%d", k ? " " : "", out[k]);
        printf("\n");
    }
done:
    sampler_free(smp);
    model_free(m);
    free(logits);
    free(rows);
    free(prompt);
    free(out);
    return s;
}

static bool print_text(void *ctx, const char *text, size_t len) {
    (void)ctx;
    fwrite(text, 1, len, stdout);
    fflush(stdout);
    return true;
}

/* Text prompt: tokenize (or render the chat), then stream the reply. */
static Status run_text(const RunOpts *o, Err *err) {
    char *buf = NULL;
    size_t len = 0;
    const char *text = o->prompt;
    Status s = STATUS_OK;
    CliModel cm = {0};
    GenSession gs = {0};
    int32_t *ids = NULL;
    size_t n = 0;
    json_t *msgs = NULL;
    char *grammar = NULL;
    size_t glen = 0;
    if (o->file) {
        if ((s = cli_read_file(o->file, CLI_MAX_FILE, &buf, &len, err)))
            return s;
        text = buf;
    } else {
        len = strlen(text);
    }
    /* the context: what was asked for, else the model's (at most 4096) */
    ModelParams mp = {.n_threads = (int)o->threads,
                      .n_ctx = (int)o->ctx,
                      .n_seq_max = 1,
                      .n_batch = RUN_BATCH,
                      .kv_type = o->kv_type};
    if ((s = cli_load(&cm, o->model, &mp, o->tfile, o->chat, err)))
        goto done;
    if (model_config(cm.m)->encoder) { /* bert, nomic-bert: embeddings only */
        s = err_set(err, STATUS_UNSUPPORTED, "an embedding model (%s) cannot generate text",
                    model_config(cm.m)->arch_name);
        goto done;
    }
    if ((s = gen_session_init(&gs, cm.m, cm.tok, 0, err)))
        goto done;
    if ((s = run_grammar(o, &grammar, &glen, err)))
        goto done;
    if (o->chat) {
        msgs = json_array();
        if (o->system)
            json_array_append_new(msgs, json_pack("{s:s, s:s}", "role", "system", "content",
                                                  o->system));
        json_array_append_new(msgs, json_pack("{s:s, s:s%}", "role", "user", "content", text, len));
        if ((s = chat_tokenize(cm.fmt, cm.tok, msgs, true, NULL, &ids, &n, err)))
            goto done;
    } else {
        if (!(ids = malloc(sizeof(int32_t) * (len + 3)))) {
            s = err_set(err, STATUS_NOMEM, "out of memory");
            goto done;
        }
        TokEncodeOpts eo = {.add_bos = tok_add_bos(cm.tok), .parse_special = true};
        if ((s = tok_encode(cm.tok, text, len, &eo, ids, len + 3, &n, err)))
            goto done;
        if (!o->chat)
            fwrite(text, 1, len, stdout); /* the completion continues the prompt */
    }
    if (n == 0) {
        s = err_set(err, STATUS_INVALID, "the prompt is empty");
        goto done;
    }
    /* Past the context nothing more can be generated: say so once, before. */
    long room = (long)gs.cap - (long)n + 1;
    if (o->n_new > room)
        fprintf(stderr,
                "cgpt run: -n %ld does not fit: the context holds %d tokens and the prompt takes "
                "%zu, so at most %ld will be generated (-c asks for a larger context)\n",
                o->n_new, gs.cap, n, room);
    GenParams gp = {.max_tokens = (int)o->n_new, .sampling = o->sp, .stop = o->stop,
                    .n_stop = o->n_stop, .ignore_eos = o->ignore_eos};
    gp.grammar = grammar;
    gp.grammar_len = glen;
    cli_sampling_resolve(&cm, o->sp_set, &gp.sampling);
    GenStats st;
    if ((s = gen_generate(&gs, ids, (int)n, &gp, print_text, NULL, NULL, &st, err)))
        goto done;
    printf("\n");
    fflush(stdout);
    fprintf(stderr, "[%d prompt tokens, %d generated, %.1f tokens/s, finish: %s%s]\n", st.n_prompt,
            st.n_generated, st.t_generate > 0 ? st.n_generated / st.t_generate : 0.0,
            gen_finish_name(st.finish),
            st.finish == GEN_FINISH_CONTEXT ? " (the context is full)" : "");
done:
    json_decref(msgs);
    free(ids);
    free(grammar);
    gen_session_free(&gs);
    cli_unload(&cm);
    free(buf);
    return s;
}

static int cmd_run(int argc, char **argv) {
    RunOpts o = {.kv_type = CLI_KV_DEFAULT};
    o.sp = sampler_defaults();
    Err err = {0};
    bool help = false;
    if (parse(argc, argv, &o, &help, &err))
        return cli_fail("run", &err);
    if (help) {
        cli_help(&CLI_RUN);
        return 0;
    }
    if ((o.ids ? run_ids(&o, &err) : run_text(&o, &err)))
        return cli_fail("run", &err);
    return 0;
}

const CliCommand CLI_RUN = {
    .name = "run",
    .synopsis = "[-m MODEL] (-p TEXT | -f FILE) [options]",
    .summary = "one-shot completion of a text (or, with --chat, a reply to it), streamed",
    .opts = RUN_OPTS,
    .sampling = true,
    .notes = "The prompt gets the model's BOS when it adds one, and special-token strings in\n"
             "it are parsed. Generation stops at -n tokens, an end-of-sequence token, a --stop\n"
             "string or a full context; a summary line goes to stderr.\n",
    .main = cmd_run,
};
