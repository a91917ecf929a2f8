/* eval.c - `cgpt eval`: a model on held-out chat data and text.
 *
 *   cgpt eval [-m MODEL] -f HELDOUT.jsonl [--text TEXT.jsonl]
 *             [--max-per-recipe N] [-n MAX_TOKENS] [--baseline TRAIN.jsonl]
 *             [--json] [--predictions OUT.jsonl] [-t THREADS] [-c CTX]
 *             [--chat-template-file F] [--model-sampling] [sampling options]
 *
 * For every chat record (engine/evalm.h has the format) the reference reply
 * is scored given its prompt (chat perplexity over the reply's tokens and
 * the end-of-turn markup after it: the trainer's chat-tuning targets), and
 * for every checkable record the reply is decoded greedily (temperature 0;
 * sampled when sampling options or --model-sampling are given; at most -n
 * tokens, until an end-of-generation token) and compared with the
 * reference: exact match and token F1 after SQuAD normalisation, summed per recipe and overall
 * (means over records).
 * --baseline: the most frequent reference reply of each recipe in a
 * training file, scored the same way (a recipe absent there predicts "").
 * --text: perplexity of documents {"text": ...}, each scored from its start
 * (engine/evalm.h: evalm_score_text).
 *
 * Records are processed in order of their prompt tokens so that prompts
 * sharing a prefix (a system message) reuse the KV cache; every number is
 * a sum over records, so the order does not change them. Output: a table
 * (or --json, one object) on stdout; --predictions writes one JSON line
 * per checkable record, in file order: {"line", "recipe", "prediction",
 * "reference", "exact_match", "f1"}. Progress and errors on stderr. Bad
 * lines are errors naming FILE:LINE, found before the model runs.
 *
 * Hidden test mode: `cgpt eval --score-pairs FILE` reads lines
 * ["prediction", "reference"] and prints one JSON object per line:
 * {"em":..,"f1":..,"pred":normalize(prediction),"ref":normalize(reference)}. */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/common.h"
#include "core/perf.h"
#include "engine/evalm.h"
#include "engine/generate.h"

#define EVAL_MAX_RECORDS 200000          /* records kept from -f, documents from --text */
#define EVAL_MAX_TRAIN_RECORDS 50000000L /* records of a --baseline file */
#define EVAL_MAX_NEW 4096                /* -n upper bound */
#define EVAL_BATCH 512                   /* rows per forward */
#define EVAL_PROGRESS_S 2.0              /* seconds between progress lines */

enum {
    O_MODEL = 1,
    O_FILE,
    O_TEXT,
    O_BASELINE,
    O_MAX_PER,
    O_N,
    O_JSON,
    O_PREDS,
    O_TFILE,
    O_THREADS,
    O_CTX,
    O_MODEL_SAMPLING,
    O_PAIRS
};

static const ArgOpt EVAL_OPTS[] = {
    CLI_OPT_MODEL(O_MODEL),
    {O_FILE, "-f|--file", "FILE",
     "chat records {\"messages\":[...], \"recipe\":.., \"checkable\":..}"},
    {O_TEXT, "--text", "FILE", "documents {\"text\": ...} for text perplexity"},
    {O_BASELINE, "--baseline", "FILE",
     "training records: most frequent reply per recipe as a baseline"},
    {O_MAX_PER, "--max-per-recipe", "N",
     "at most the first N records of each recipe (default all)"},
    {O_N, "-n|--n-predict", "N", "tokens to generate per reply (default 64)"},
    {O_JSON, "--json", NULL, "print one JSON object instead of the table"},
    {O_PREDS, "--predictions", "FILE",
     "write each checkable record's reply and scores (JSON lines)"},
    CLI_OPT_TEMPLATE(O_TFILE),
    CLI_OPT_THREADS(O_THREADS),
    {O_CTX, "-c|--ctx", "N", "context size (default: the model's, at most 4096)"},
    {O_MODEL_SAMPLING, "--model-sampling", NULL,
     "sample with the model file's general.sampling.* (default: greedy)"},
    {O_PAIRS, "--score-pairs", "FILE", "score lines [\"prediction\", \"reference\"] only (tests)"},
    {0},
};

typedef struct {
    const char *model, *file, *text, *baseline, *tfile, *pairs, *preds;
    long max_per_recipe, n_new, threads, ctx;
    bool json, model_sampling;
    SamplerParams sp; /* greedy unless sampling options are given */
    unsigned sp_set;  /* PRESET_* bits of the sampling options given */
} EvalOpts;

static Status parse(int argc, char **argv, EvalOpts *o, bool *help, Err *err) {
    Args a = args_start(argc, argv, 1);
    const char *v;
    for (int id; (id = cli_next_sampling(&a, &CLI_EVAL, &o->sp, &o->sp_set, &v, err)) != ARG_END;) {
        Status s = STATUS_OK;
        switch (id) {
        case ARG_ERROR: return err->status;
        case ARG_HELP: *help = true; return STATUS_OK;
        case ARG_POSITIONAL: s = err_set(err, STATUS_INVALID, "unexpected argument '%s'", v); break;
        case O_JSON: o->json = true; break;
        case O_MODEL_SAMPLING: o->model_sampling = true; break;
        case O_MODEL: o->model = v; break;
        case O_FILE: o->file = v; break;
        case O_TEXT: o->text = v; break;
        case O_BASELINE: o->baseline = v; break;
        case O_TFILE: o->tfile = v; break;
        case O_PREDS: o->preds = v; break;
        case O_PAIRS: o->pairs = v; break;
        case O_MAX_PER: s = args_int(a.opt, v, 1, EVAL_MAX_RECORDS, &o->max_per_recipe, err); break;
        case O_N: s = args_int(a.opt, v, 0, EVAL_MAX_NEW, &o->n_new, err); break;
        case O_THREADS: s = args_int(a.opt, v, 0, CLI_MAX_THREADS, &o->threads, err); break;
        case O_CTX: s = args_int(a.opt, v, 2, MODEL_MAX_CTX, &o->ctx, err); break;
        }
        if (s)
            return s;
    }
    if (!o->file && !o->pairs)
        return err_set(err, STATUS_INVALID, "give the held-out chat records with -f FILE");
    return STATUS_OK;
}

/* ---- JSON lines ---------------------------------------------------------- */

typedef struct {
    FILE *f;
    const char *path;
    long line; /* number of the line last read, from 1 */
    char *buf; /* the line, NUL-terminated, without its newline */
    size_t cap;
} Lines;

static Status lines_open(Lines *r, const char *path, Err *err) {
    memset(r, 0, sizeof *r);
    r->path = path;
    if (!(r->f = fopen(path, "rb")))
        return err_set(err, STATUS_IO, "cannot open '%s': %s", path, strerror(errno));
    return STATUS_OK;
}

static void lines_close(Lines *r) {
    if (r->f)
        fclose(r->f);
    free(r->buf);
    memset(r, 0, sizeof *r);
}

/* The next line into r->buf (*len bytes); *eof at the end of the file.
 * STATUS_LIMIT past EVALM_MAX_LINE_BYTES. */
static Status lines_next(Lines *r, size_t *len, bool *eof, Err *err) {
    size_t n = 0;
    int c;
    *eof = false;
    while ((c = getc_unlocked(r->f)) != EOF && c != '\n') {
        if (n == EVALM_MAX_LINE_BYTES)
            return err_set(err, STATUS_LIMIT, "%s:%ld: line longer than %u bytes", r->path,
                           r->line + 1, EVALM_MAX_LINE_BYTES);
        if (n + 1 >= r->cap) {
            size_t cap = r->cap ? r->cap * 2 : 4096;
            char *b = realloc(r->buf, cap);
            if (!b)
                return err_set(err, STATUS_NOMEM, "%s:%ld: out of memory", r->path, r->line + 1);
            r->buf = b;
            r->cap = cap;
        }
        r->buf[n++] = (char)c;
    }
    if (ferror(r->f))
        return err_set(err, STATUS_IO, "cannot read '%s': %s", r->path, strerror(errno));
    if (c == EOF && n == 0) {
        *eof = true;
        return STATUS_OK;
    }
    r->line++;
    if (!r->buf && !(r->buf = malloc(r->cap = 16)))
        return err_set(err, STATUS_NOMEM, "out of memory");
    r->buf[n] = '\0';
    *len = n;
    return STATUS_OK;
}

/* ---- --score-pairs ----------------------------------------------------------- */

static Status score_pairs(const char *path, Err *err) {
    Lines r;
    Status st = lines_open(&r, path, err);
    size_t len;
    bool eof;
    while (!st && !(st = lines_next(&r, &len, &eof, err)) && !eof) {
        if (evalm_line_blank(r.buf, len))
            continue;
        json_error_t je;
        json_t *a = json_loadb(r.buf, len, 0, &je), *out = NULL;
        json_t *p = json_array_get(a, 0), *q = json_array_get(a, 1);
        if (!json_is_array(a) || json_array_size(a) != 2 || !json_is_string(p) ||
            !json_is_string(q)) {
            st = err_set(err, STATUS_FORMAT,
                         "%s:%ld: not a JSON array [\"prediction\", \"reference\"]", path, r.line);
        } else {
            EvalmScore sc;
            size_t lp = json_string_length(p), lq = json_string_length(q);
            char *np = malloc(lp + 1), *nq = malloc(lq + 1);
            if (!np || !nq)
                st = err_set(err, STATUS_NOMEM, "out of memory");
            else if (!(st = evalm_score(json_string_value(p), lp, json_string_value(q), lq, &sc,
                                        err))) {
                lp = evalm_normalize(json_string_value(p), lp, np);
                lq = evalm_normalize(json_string_value(q), lq, nq);
                out = json_pack("{s:i, s:f, s:s%, s:s%}", "em", (int)sc.exact_match, "f1", sc.f1,
                                "pred", np, lp, "ref", nq, lq);
                char *txt = out ? json_dumps(out, JSON_COMPACT) : NULL;
                if (!txt)
                    st = err_set(err, STATUS_NOMEM, "out of memory");
                else
                    printf("%s\n", txt);
                free(txt);
            }
            free(np);
            free(nq);
        }
        json_decref(out);
        json_decref(a);
    }
    lines_close(&r);
    return st;
}

/* ---- the evaluation ------------------------------------------------------------ */

typedef struct {
    EvalmChat c;
    long line;
    EvalmChatIds t;
    char *pred; /* the greedy reply (owned; checkable records, with --predictions) */
    size_t pred_len;
    EvalmScore score;
} Rec;

typedef struct {
    char *text;
    size_t len;
} Doc;

typedef struct {
    Rec *recs;
    int n_recs;
    Doc *docs;
    int n_docs;
    EvalmTable *table;
    EvalmBaseline *base;
    long n_checkable;
    /* totals */
    double chat_nll, text_nll;
    long chat_tokens, text_tokens, generated;
    double em, f1, base_em, base_f1;
    long n_scored;
    long n_skipped; /* records longer than the context */
} Eval;

static Status read_chat(Eval *e, const EvalOpts *o, Err *err) {
    Lines r;
    Status st = lines_open(&r, o->file, err);
    size_t len;
    bool eof;
    int cap = 0;
    while (!st && !(st = lines_next(&r, &len, &eof, err)) && !eof) {
        if (evalm_line_blank(r.buf, len))
            continue;
        EvalmChat c;
        EvalmRecipe *t;
        if ((st = evalm_parse_chat(r.buf, len, &c, err)) ||
            (st = evalm_table_get(e->table, c.recipe, &t, err))) {
            evalm_chat_free(&c); /* zeroed when the parse failed */
            err_prefix(err, "%s:%ld", o->file, r.line);
            break;
        }
        if (o->max_per_recipe && t->n_records >= o->max_per_recipe) {
            evalm_chat_free(&c);
            continue;
        }
        if (e->n_recs == EVAL_MAX_RECORDS) {
            evalm_chat_free(&c);
            st = err_set(err, STATUS_LIMIT, "%s:%ld: more than %d records (use --max-per-recipe)",
                         o->file, r.line, EVAL_MAX_RECORDS);
            break;
        }
        if (e->n_recs == cap) {
            cap = cap ? cap * 2 : 256;
            Rec *nr = realloc(e->recs, sizeof(Rec) * (size_t)cap);
            if (!nr) {
                evalm_chat_free(&c);
                st = err_set(err, STATUS_NOMEM, "out of memory for %d records", cap);
                break;
            }
            e->recs = nr;
        }
        t->n_records++;
        e->n_checkable += c.checkable;
        e->recs[e->n_recs++] = (Rec){.c = c, .line = r.line};
    }
    lines_close(&r);
    if (!st && e->n_recs == 0)
        st = err_set(err, STATUS_INVALID, "'%s' has no records", o->file);
    /* n_records counts what was scored: start from zero again */
    int n;
    EvalmRecipe *all = evalm_table_sorted(e->table, &n);
    for (int i = 0; !st && i < n; i++) {
        EvalmRecipe *t;
        if (!(st = evalm_table_get(e->table, all[i].name, &t, err)))
            t->n_records = 0;
    }
    return st;
}

static Status read_text(Eval *e, const char *path, Err *err) {
    Lines r;
    Status st = lines_open(&r, path, err);
    size_t len;
    bool eof;
    int cap = 0;
    while (!st && !(st = lines_next(&r, &len, &eof, err)) && !eof) {
        if (evalm_line_blank(r.buf, len))
            continue;
        if (e->n_docs == EVAL_MAX_RECORDS) {
            st = err_set(err, STATUS_LIMIT, "%s:%ld: more than %d documents", path, r.line,
                         EVAL_MAX_RECORDS);
            break;
        }
        if (e->n_docs == cap) {
            cap = cap ? cap * 2 : 64;
            Doc *nd = realloc(e->docs, sizeof(Doc) * (size_t)cap);
            if (!nd) {
                st = err_set(err, STATUS_NOMEM, "out of memory for %d documents", cap);
                break;
            }
            e->docs = nd;
        }
        Doc *d = &e->docs[e->n_docs];
        if ((st = evalm_parse_text(r.buf, len, &d->text, &d->len, err))) {
            err_prefix(err, "%s:%ld", path, r.line);
            break;
        }
        e->n_docs++;
    }
    lines_close(&r);
    if (!st && e->n_docs == 0)
        st = err_set(err, STATUS_INVALID, "'%s' has no documents", path);
    return st;
}

static Status read_baseline(Eval *e, const char *path, Err *err) {
    Lines r;
    Status st = lines_open(&r, path, err);
    size_t len;
    bool eof;
    long n = 0;
    if (!st && !(e->base = evalm_baseline_new(err)))
        st = err->status;
    while (!st && !(st = lines_next(&r, &len, &eof, err)) && !eof) {
        if (evalm_line_blank(r.buf, len))
            continue;
        if (++n > EVAL_MAX_TRAIN_RECORDS) {
            st = err_set(err, STATUS_LIMIT, "%s:%ld: more than %ld records", path, r.line,
                         EVAL_MAX_TRAIN_RECORDS);
            break;
        }
        EvalmChat c;
        if ((st = evalm_parse_chat(r.buf, len, &c, err)) ||
            (st = evalm_baseline_add(e->base, c.recipe, c.reply, c.reply_len, err)))
            err_prefix(err, "%s:%ld", path, r.line);
        evalm_chat_free(&c);
    }
    lines_close(&r);
    return st;
}

/* Prompt tokens first (lexicographically), then file order: neighbours
 * share the longest prefixes. */
static int rec_cmp(const void *a, const void *b) {
    const EvalmChatIds *x = &(*(Rec *const *)a)->t, *y = &(*(Rec *const *)b)->t;
    int n = x->n_prompt < y->n_prompt ? x->n_prompt : y->n_prompt;
    for (int i = 0; i < n; i++)
        if (x->prompt[i] != y->prompt[i])
            return x->prompt[i] < y->prompt[i] ? -1 : 1;
    if (x->n_prompt != y->n_prompt)
        return x->n_prompt < y->n_prompt ? -1 : 1;
    long lx = (*(Rec *const *)a)->line, ly = (*(Rec *const *)b)->line;
    return (lx > ly) - (lx < ly);
}

typedef struct {
    char *p;
    size_t n, cap;
    bool oom;
} Buf;

static bool collect(void *ctx, const char *text, size_t len) {
    Buf *b = ctx;
    if (b->n + len + 1 > b->cap) {
        size_t cap = (b->n + len + 1) * 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return false;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, text, len);
    b->n += len;
    b->p[b->n] = '\0';
    return true;
}

/* Tokenize every record before anything runs. A conversation longer than
 * the model's context cannot be scored: it is left out and counted (the
 * table says how many), never truncated. */
static Status tokenize_all(Eval *e, const CliModel *cm, const char *file, Err *err) {
    int ctx = model_params(cm->m)->n_ctx;
    int kept = 0;
    for (int i = 0; i < e->n_recs; i++) {
        Rec *r = &e->recs[i];
        Status st = evalm_chat_tokens(cm->fmt, cm->tok, &r->c, &r->t, err);
        if (st)
            return err_prefix(err, "%s:%ld", file, r->line);
        if (r->t.n_ids > ctx || r->t.n_prompt >= ctx) {
            e->n_skipped++;
            e->n_checkable -= r->c.checkable;
            evalm_chat_free(&r->c);
            evalm_chat_ids_free(&r->t);
            continue;
        }
        e->recs[kept++] = *r;
    }
    e->n_recs = kept;
    if (kept == 0)
        return err_set(err, STATUS_LIMIT, "%s: every record is longer than the context of %d",
                       file, ctx);
    return STATUS_OK;
}

static Status run_chat(Eval *e, GenSession *gs, const EvalOpts *o, const SamplerParams *sp,
                       Err *err) {
    Rec **order = malloc(sizeof(Rec *) * (size_t)e->n_recs);
    Buf out = {0};
    Status st = STATUS_OK;
    if (!order)
        return err_set(err, STATUS_NOMEM, "out of memory for %d records", e->n_recs);
    for (int i = 0; i < e->n_recs; i++)
        order[i] = &e->recs[i];
    qsort(order, (size_t)e->n_recs, sizeof(Rec *), rec_cmp);
    GenParams gp = {.max_tokens = (int)o->n_new, .sampling = *sp};
    double t0 = perf_now(), last = t0;
    long line = 0;
    for (int i = 0; i < e->n_recs && !st; i++) {
        Rec *r = order[i];
        line = r->line;
        EvalmRecipe *t;
        double nll = 0;
        long cnt = 0;
        if ((st = evalm_table_get(e->table, r->c.recipe, &t, err)))
            break;
        t->n_records++;
        if (r->t.first < r->t.n_ids &&
            (st = evalm_score_tokens(gs, r->t.ids, r->t.n_ids, r->t.first, &nll, &cnt, err)))
            break;
        t->nll += nll;
        t->n_tokens += cnt;
        e->chat_nll += nll;
        e->chat_tokens += cnt;
        if (r->c.checkable) {
            GenStats gst;
            out.n = 0;
            if (out.p)
                out.p[0] = '\0';
            if ((st = gen_generate(gs, r->t.prompt, r->t.n_prompt, &gp, collect, &out, NULL, &gst,
                                   err)))
                break;
            if (out.oom) {
                st = err_set(err, STATUS_NOMEM, "out of memory for a reply");
                break;
            }
            e->generated += gst.n_generated;
            EvalmScore sc, bs;
            size_t bl = 0;
            const char *bt = e->base ? evalm_baseline_get(e->base, r->c.recipe, &bl) : NULL;
            if ((st = evalm_score(out.p ? out.p : "", out.n, r->c.reply, r->c.reply_len, &sc,
                                  err)) ||
                (st = evalm_score(bt ? bt : "", bl, r->c.reply, r->c.reply_len, &bs, err)))
                break;
            if (o->preds) {
                if (!(r->pred = malloc(out.n + 1))) {
                    st = err_set(err, STATUS_NOMEM, "out of memory for a reply");
                    break;
                }
                memcpy(r->pred, out.p ? out.p : "", out.n + 1);
                r->pred_len = out.n;
                r->score = sc;
            }
            t->n++;
            t->em += sc.exact_match;
            t->f1 += sc.f1;
            t->base_em += bs.exact_match;
            t->base_f1 += bs.f1;
            e->n_scored++;
            e->em += sc.exact_match;
            e->f1 += sc.f1;
            e->base_em += bs.exact_match;
            e->base_f1 += bs.f1;
        }
        double now = perf_now();
        if (now - last >= EVAL_PROGRESS_S || i + 1 == e->n_recs) {
            fprintf(stderr, "eval: %d/%d records, %ld tokens generated, %.1f s\n", i + 1, e->n_recs,
                    e->generated, now - t0);
            last = now;
        }
    }
    if (st)
        err_prefix(err, "%s:%ld", o->file, line);
    free(out.p);
    free(order);
    return st;
}

static Status run_text(Eval *e, GenSession *gs, const CliModel *cm, Err *err) {
    int32_t bos = tok_add_bos(cm->tok) && tok_bos(cm->tok) >= 0 ? tok_bos(cm->tok) : -1;
    for (int i = 0; i < e->n_docs; i++) {
        Doc *d = &e->docs[i];
        int32_t *ids = malloc(sizeof(int32_t) * (d->len + 3));
        size_t n = 0;
        TokEncodeOpts eo = {0};
        Status st = ids ? tok_encode(cm->tok, d->text, d->len, &eo, ids, d->len + 3, &n, err)
                        : err_set(err, STATUS_NOMEM, "out of memory for %zu tokens", d->len + 3);
        if (!st)
            st = evalm_score_text(gs, ids, n, bos, &e->text_nll, &e->text_tokens, err);
        free(ids);
        if (st)
            return st;
    }
    if (e->n_docs)
        fprintf(stderr, "eval: %d documents, %ld tokens scored\n", e->n_docs, e->text_tokens);
    return STATUS_OK;
}

/* ---- output ------------------------------------------------------------------ */

static Status write_predictions(const Eval *e, const char *path, Err *err) {
    FILE *f = fopen(path, "wb");
    if (!f)
        return err_set(err, STATUS_IO, "cannot create '%s': %s", path, strerror(errno));
    Status st = STATUS_OK;
    for (int i = 0; i < e->n_recs && !st; i++) {
        const Rec *r = &e->recs[i];
        if (!r->c.checkable)
            continue;
        /* the reply is valid UTF-8 (the detokenizer writes U+FFFD for bad bytes) */
        json_t *o = json_pack("{s:I, s:s, s:s%, s:s%, s:f, s:f}", "line", (json_int_t)r->line,
                              "recipe", r->c.recipe, "prediction", r->pred ? r->pred : "",
                              r->pred_len, "reference", r->c.reply, r->c.reply_len, "exact_match",
                              r->score.exact_match, "f1", r->score.f1);
        char *txt = o ? json_dumps(o, JSON_COMPACT) : NULL;
        if (!txt || fprintf(f, "%s\n", txt) < 0)
            st = err_set(err, STATUS_IO, "cannot write '%s' (record of line %ld)", path, r->line);
        free(txt);
        json_decref(o);
    }
    if (fclose(f) && !st)
        st = err_set(err, STATUS_IO, "cannot write '%s': %s", path, strerror(errno));
    return st;
}

static json_t *mean_or_null(double sum, long n) {
    return n ? json_real(sum / (double)n) : json_null();
}
static json_t *ppl_or_null(double nll, long n) {
    return n ? json_real(exp(nll / (double)n)) : json_null();
}

static json_t *tally_json(long n_records, long n, double em, double f1, double bem, double bf1,
                          double nll, long n_tokens, bool base) {
    json_t *o = json_object();
    json_object_set_new(o, "n", json_integer(n));
    json_object_set_new(o, "n_records", json_integer(n_records));
    json_object_set_new(o, "exact_match", mean_or_null(em, n));
    json_object_set_new(o, "f1", mean_or_null(f1, n));
    json_object_set_new(o, "baseline_exact_match", base ? mean_or_null(bem, n) : json_null());
    json_object_set_new(o, "baseline_f1", base ? mean_or_null(bf1, n) : json_null());
    json_object_set_new(o, "chat_perplexity", ppl_or_null(nll, n_tokens));
    json_object_set_new(o, "chat_tokens", json_integer(n_tokens));
    return o;
}

static Status print_json(Eval *e, const char *model, double seconds, Err *err) {
    json_t *root = json_object(), *recipes = json_object();
    bool base = e->base != NULL;
    int n;
    EvalmRecipe *all = evalm_table_sorted(e->table, &n);
    json_object_set_new(root, "model", json_string(model));
    for (int i = 0; i < n; i++) {
        EvalmRecipe *t = &all[i];
        json_object_set_new(recipes, t->name,
                            tally_json(t->n_records, t->n, t->em, t->f1, t->base_em, t->base_f1,
                                       t->nll, t->n_tokens, base));
    }
    json_object_set_new(root, "recipes", recipes);
    json_object_set_new(root, "overall",
                        tally_json(e->n_recs, e->n_scored, e->em, e->f1, e->base_em, e->base_f1,
                                   e->chat_nll, e->chat_tokens, base));
    json_object_set_new(root, "skipped_longer_than_context", json_integer(e->n_skipped));
    json_object_set_new(root, "chat_perplexity", ppl_or_null(e->chat_nll, e->chat_tokens));
    json_object_set_new(root, "chat_tokens", json_integer(e->chat_tokens));
    json_object_set_new(root, "text_perplexity", ppl_or_null(e->text_nll, e->text_tokens));
    json_object_set_new(root, "text_tokens", json_integer(e->text_tokens));
    json_object_set_new(root, "text_documents", json_integer(e->n_docs));
    json_object_set_new(root, "tokens_generated", json_integer(e->generated));
    json_object_set_new(root, "seconds", json_real(seconds));
    char *txt = all ? json_dumps(root, JSON_INDENT(2)) : NULL;
    json_decref(root);
    if (!txt)
        return err_set(err, STATUS_NOMEM, "out of memory for the JSON report");
    printf("%s\n", txt);
    free(txt);
    return STATUS_OK;
}

static void print_cell(double sum, long n) {
    if (n)
        printf("  %7.4f", sum / (double)n);
    else
        printf("  %7s", "-");
}

static void print_row(const char *name, int w, long n_records, long n, double em, double f1,
                      double bem, double bf1, double nll, long n_tokens, bool base) {
    printf("%-*s %7ld %6ld", w, name, n_records, n);
    print_cell(em, n);
    print_cell(f1, n);
    print_cell(bem, base ? n : 0);
    print_cell(bf1, base ? n : 0);
    if (n_tokens)
        printf("  %10.4f\n", exp(nll / (double)n_tokens));
    else
        printf("  %10s\n", "-");
}

static Status print_table(Eval *e, const char *model, double seconds, Err *err) {
    int n;
    EvalmRecipe *all = evalm_table_sorted(e->table, &n);
    if (!all)
        return err_set(err, STATUS_NOMEM, "out of memory for the report");
    bool base = e->base != NULL;
    int w = 7;
    for (int i = 0; i < n; i++) {
        int l = (int)strlen(all[i].name);
        w = l > w ? l : w;
    }
    printf("model: %s\n", model);
    printf("%-*s %7s %6s  %7s  %7s  %7s  %7s  %10s\n", w, "recipe", "records", "n", "EM", "F1",
           "base EM", "base F1", "chat ppl");
    for (int i = 0; i < n; i++)
        print_row(all[i].name, w, all[i].n_records, all[i].n, all[i].em, all[i].f1, all[i].base_em,
                  all[i].base_f1, all[i].nll, all[i].n_tokens, base);
    print_row("overall", w, e->n_recs, e->n_scored, e->em, e->f1, e->base_em, e->base_f1,
              e->chat_nll, e->chat_tokens, base);
    if (e->n_skipped)
        printf("skipped %ld records longer than the context\n", e->n_skipped);
    printf("chat perplexity: %.6f (%ld tokens, %d records)\n",
           e->chat_tokens ? exp(e->chat_nll / (double)e->chat_tokens) : NAN, e->chat_tokens,
           e->n_recs);
    if (e->n_docs)
        printf("text perplexity: %.6f (%ld tokens, %d documents)\n",
               e->text_tokens ? exp(e->text_nll / (double)e->text_tokens) : NAN, e->text_tokens,
               e->n_docs);
    printf("generated %ld tokens for %ld checkable records in %.1f s\n", e->generated, e->n_scored,
           seconds);
    return STATUS_OK;
}

static void eval_free(Eval *e) {
    for (int i = 0; i < e->n_recs; i++) {
        evalm_chat_free(&e->recs[i].c);
        evalm_chat_ids_free(&e->recs[i].t);
        free(e->recs[i].pred);
    }
    free(e->recs);
    for (int i = 0; i < e->n_docs; i++)
        free(e->docs[i].text);
    free(e->docs);
    evalm_table_free(e->table);
    evalm_baseline_free(e->base);
    memset(e, 0, sizeof *e);
}

static Status evaluate(const EvalOpts *o, Err *err) {
    Eval e = {0};
    CliModel cm = {0};
    GenSession gs = {0};
    const char *path;
    double t0 = perf_now();
    Status st = cli_model_path(o->model, &path, err);
    if (!st && !(e.table = evalm_table_new(err)))
        st = err->status;
    if (!st)
        st = read_chat(&e, o, err);
    if (!st && o->text)
        st = read_text(&e, o->text, err);
    if (!st && o->baseline)
        st = read_baseline(&e, o->baseline, err);
    if (st)
        goto done;
    ModelParams mp = {
        .n_threads = (int)o->threads, .n_ctx = (int)o->ctx, .n_seq_max = 1, .n_batch = EVAL_BATCH};
    if ((st = cli_load(&cm, path, &mp, o->tfile, true, err)) ||
        (st = gen_session_init(&gs, cm.m, cm.tok, 0, err)) ||
        (st = tokenize_all(&e, &cm, o->file, err)))
        goto done;
    int n_recipes;
    evalm_table_sorted(e.table, &n_recipes);
    fprintf(stderr,
            "eval: %d records (%ld checkable) in %d recipes from %s, %d documents; model %s, "
            "context %d, template %s\n",
            e.n_recs, e.n_checkable, n_recipes, o->file, e.n_docs, path, model_params(cm.m)->n_ctx,
            chat_format_name(cm.fmt));
    SamplerParams sp = o->sp;
    if (o->model_sampling)
        cli_sampling_resolve(&cm, o->sp_set, &sp);
    if ((st = run_chat(&e, &gs, o, &sp, err)) || (st = run_text(&e, &gs, &cm, err)))
        goto done;
    if (o->preds && (st = write_predictions(&e, o->preds, err)))
        goto done;
    double seconds = perf_now() - t0;
    st = o->json ? print_json(&e, path, seconds, err) : print_table(&e, path, seconds, err);
done:
    gen_session_free(&gs);
    cli_unload(&cm);
    eval_free(&e);
    return st;
}

static int cmd_eval(int argc, char **argv) {
    EvalOpts o = {.n_new = 64};
    o.sp = sampler_defaults();
    o.sp.temperature = 0; /* greedy: every figure reproducible */
    Err err = {0};
    bool help = false;
    if (parse(argc, argv, &o, &help, &err))
        return cli_fail("eval", &err);
    if (help) {
        cli_help(&CLI_EVAL);
        return 0;
    }
    if (o.pairs ? score_pairs(o.pairs, &err) : evaluate(&o, &err))
        return cli_fail("eval", &err);
    return 0;
}

const CliCommand CLI_EVAL = {
    .name = "eval",
    .synopsis = "[-m MODEL] -f HELDOUT.jsonl [options]",
    .summary = "exact match, token F1 and perplexity on held-out chat data and text",
    .opts = EVAL_OPTS,
    .sampling = true,
    .notes = "Replies are greedy unless sampling options or --model-sampling are given;\n"
             "each record is sampled from the same --seed.\n",
    .main = cmd_eval,
};
