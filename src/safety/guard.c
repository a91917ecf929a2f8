/* guard.c - a Llama Guard 3 GGUF as a moderation classifier (guard.h). */
#include "safety/guard.h"

#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "chat/chat.h"
#include "core/perf.h"
#include "engine/generate.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

static const unsigned CODE_CATS[GUARD_N_CODES] = {
    (1u << SAFE_VIOLENCE) | (1u << SAFE_ILLICIT_VIOLENT), /* S1 violent crimes */
    1u << SAFE_ILLICIT,                                   /* S2 non-violent crimes */
    (1u << SAFE_SEXUAL) | (1u << SAFE_ILLICIT),           /* S3 sex-related crimes */
    1u << SAFE_SEXUAL_MINORS,                             /* S4 child sexual exploitation */
    1u << SAFE_HARASSMENT,                                /* S5 defamation */
    0,                                                    /* S6 specialized advice */
    1u << SAFE_ILLICIT,                                   /* S7 privacy */
    1u << SAFE_ILLICIT,                                   /* S8 intellectual property */
    1u << SAFE_ILLICIT_VIOLENT,                           /* S9 indiscriminate weapons */
    1u << SAFE_HATE,                                      /* S10 hate */
    1u << SAFE_SELF_HARM,                                 /* S11 suicide and self-harm */
    1u << SAFE_SEXUAL,                                    /* S12 sexual content */
    0,                                                    /* S13 elections */
    1u << SAFE_ILLICIT,                                   /* S14 code interpreter abuse */
};

unsigned guard_code_categories(int code) {
    return code >= 1 && code <= GUARD_N_CODES ? CODE_CATS[code - 1] : 0;
}

static bool blank(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

Status guard_parse(const char *text, size_t len, GuardVerdict *v, Err *err) {
    memset(v, 0, sizeof *v);
    size_t i = 0;
    while (i < len && blank(text[i]))
        i++;
    const char *w = text + i;
    size_t rest = len - i;
    if (rest >= 6 && !strncasecmp(w, "unsafe", 6) && (rest == 6 || blank(w[6]))) {
        v->unsafe = true;
        i += 6;
    } else if (rest >= 4 && !strncasecmp(w, "safe", 4) && (rest == 4 || blank(w[4]))) {
        i += 4;
        while (i < len && blank(text[i]))
            i++;
        if (i == len)
            return STATUS_OK;
        return err_set(err, STATUS_FORMAT, "the guard model answered '%.60s' (text after 'safe')",
                       text);
    } else {
        return err_set(err, STATUS_FORMAT,
                       "the guard model answered '%.60s' (expected safe or unsafe)", text);
    }
    /* unsafe: S-codes or category keys separated by commas (and blanks),
     * to the end */
    while (i < len) {
        while (i < len && (blank(text[i]) || text[i] == ','))
            i++;
        if (i == len)
            break;
        size_t e = i;
        while (e < len && !blank(text[e]) && text[e] != ',')
            e++;
        int cat = safe_cat_parse(text + i, e - i);
        if (cat >= 0) {
            v->cats |= 1u << cat;
            i = e;
            continue;
        }
        if (text[i] != 'S' && text[i] != 's')
            return err_set(err, STATUS_FORMAT,
                           "the guard model answered '%.60s' (not an S-code or a category)", text);
        int code = 0, digits = 0;
        for (i++; i < len && text[i] >= '0' && text[i] <= '9' && digits < 3; i++, digits++)
            code = code * 10 + (text[i] - '0');
        if (!digits || code < 1 || code > GUARD_N_CODES || i != e)
            return err_set(err, STATUS_FORMAT,
                           "the guard model answered '%.60s' (S-codes are S1..S%d)", text,
                           GUARD_N_CODES);
        v->codes |= 1u << (code - 1);
    }
    if (!v->codes && !v->cats)
        return err_set(err, STATUS_FORMAT,
                       "the guard model answered '%.60s' (unsafe, no S-code or category)", text);
    return STATUS_OK;
}

/* Text with the template's section markers defused ("<BEGIN" -> "< BEGIN"),
 * at most GUARD_MAX_TEXT bytes (the end kept: a reply's newest part). */
static json_t *quoted(const char *s, size_t len) {
    if (len > GUARD_MAX_TEXT) {
        size_t cut = len - GUARD_MAX_TEXT;
        while (cut < len && ((unsigned char)s[cut] & 0xC0) == 0x80)
            cut++;
        s += cut;
        len -= cut;
    }
    char *o = malloc(len * 2 + 1);
    if (!o)
        return NULL;
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        o[n++] = s[i];
        if (s[i] == '<' && i + 1 < len) {
            size_t k = i + 1;
            while (k < len && s[k] == ' ')
                k++;
            if ((len - k >= 5 && !strncasecmp(s + k, "BEGIN", 5)) ||
                (len - k >= 3 && !strncasecmp(s + k, "END", 3)))
                o[n++] = ' ';
        }
    }
    json_t *j = json_stringn(o, n);
    free(o);
    return j;
}

json_t *guard_messages(const SafeText *t) {
    json_t *m = json_array();
    if (!m)
        return NULL;
    bool out = t->dir == SAFE_OUTPUT;
    const char *user = out ? (t->context ? t->context : "") : t->text;
    size_t ulen = out ? (t->context ? t->context_len : 0) : t->len;
    json_t *u = quoted(user, ulen);
    json_array_append_new(m, json_pack("{s:s, s:o*}", "role", "user", "content", u));
    if (out)
        json_array_append_new(
            m, json_pack("{s:s, s:o*}", "role", "assistant", "content", quoted(t->text, t->len)));
    if (json_array_size(m) != (out ? 2u : 1u)) {
        json_decref(m);
        return NULL;
    }
    return m;
}

/* ------------------------------------------------------------ the classifier */

typedef struct {
    Classifier base;
    char name[96];
    Model *m;
    Tokenizer *tok;
    ChatFormat *fmt;
    GenSession gs;
    pthread_mutex_t mu;
    int32_t t_safe, t_unsafe; /* the first token of each answer word */
} Guard;

typedef struct {
    Guard *g;
    double deadline;
    char text[256];
    size_t len;
    bool timed_out;
    bool have_p;
    float p_unsafe;
} GuardRun;

static bool on_text(void *ctx, const char *text, size_t len) {
    GuardRun *r = ctx;
    if (!r->have_p) {
        bool word = false;
        for (size_t i = 0; i < len && !word; i++)
            word = !blank(text[i]);
        if (word) { /* the logits that chose the answer's first word */
            const float *l = r->g->gs.logits;
            double ls = l[r->g->t_safe], lu = l[r->g->t_unsafe], mx = ls > lu ? ls : lu;
            double es = exp(ls - mx), eu = exp(lu - mx);
            r->p_unsafe = (float)(eu / (es + eu));
            r->have_p = true;
        }
    }
    size_t room = sizeof r->text - 1 - r->len;
    size_t n = len < room ? len : room;
    memcpy(r->text + r->len, text, n);
    r->len += n;
    r->text[r->len] = '\0';
    if (r->deadline > 0 && perf_now() > r->deadline) {
        r->timed_out = true;
        return false;
    }
    return true;
}

/* The end of s[0..len) from byte len - keep on (a character's start). */
static void keep_end(const char **s, size_t *len, size_t keep) {
    if (*len <= keep)
        return;
    size_t cut = *len - keep;
    while (cut < *len && ((unsigned char)(*s)[cut] & 0xC0) == 0x80)
        cut++;
    *s += cut;
    *len -= cut;
}

/* The prompt's tokens for 't', its texts cut (their ends kept) until the
 * prompt and an answer fit the model's context: a small guard's context
 * can be shorter than a message. */
static Status fit_prompt(Guard *g, const SafeText *t, int32_t **ids, size_t *n, Err *err) {
    int cap = g->gs.cap;
    size_t keep = GUARD_MAX_TEXT;
    for (int tries = 0; tries < GUARD_FIT_TRIES; tries++) {
        SafeText tt = *t;
        keep_end(&tt.text, &tt.len, keep);
        if (tt.context)
            keep_end(&tt.context, &tt.context_len, keep);
        json_t *msgs = guard_messages(&tt);
        if (!msgs)
            return err_set(err, STATUS_NOMEM, "guard model: out of memory");
        Status st = chat_tokenize(g->fmt, g->tok, msgs, true, NULL, ids, n, err);
        json_decref(msgs);
        if (st)
            return err_prefix(err, "guard model prompt");
        if (*n + GUARD_MAX_ANSWER <= (size_t)cap)
            return STATUS_OK;
        free(*ids);
        *ids = NULL;
        size_t texts = tt.len + tt.context_len;
        if (texts == 0)
            break; /* the template alone does not fit */
        /* bytes per token of this prompt, and 10% less to converge */
        size_t want = (size_t)((double)keep < (double)texts ? keep : texts) *
                      (cap - GUARD_MAX_ANSWER) / *n * 9 / 10;
        keep = want < keep ? want : keep / 2;
    }
    return err_set(err, STATUS_LIMIT,
                   "guard model: its prompt does not fit its context of %d tokens", cap);
}

static Status guard_score(Classifier *c, const SafeText *t, double deadline, SafeScores *out,
                          Err *err) {
    Guard *g = (Guard *)c;
    memset(out, 0, sizeof *out);
    int32_t *ids = NULL;
    size_t n = 0;
    Status st = fit_prompt(g, t, &ids, &n, err);
    if (st)
        return st;
    GuardRun run = {.g = g, .deadline = deadline};
    GenParams p = {.max_tokens = GUARD_MAX_ANSWER, .sampling = sampler_defaults()};
    p.sampling.temperature = 0; /* greedy */
    pthread_mutex_lock(&g->mu);
    if (deadline > 0 && perf_now() > deadline) {
        pthread_mutex_unlock(&g->mu);
        free(ids);
        return err_set(err, STATUS_BUSY, "guard model: the deadline passed while queued");
    }
    st = gen_generate(&g->gs, ids, (int)n, &p, on_text, &run, NULL, NULL, err);
    pthread_mutex_unlock(&g->mu);
    free(ids);
    if (st)
        return err_prefix(err, "guard model");
    if (run.timed_out)
        return err_set(err, STATUS_BUSY, "guard model: ran past its deadline");
    GuardVerdict v;
    if ((st = guard_parse(run.text, run.len, &v, err)))
        return st;
    if (v.unsafe) {
        unsigned cats = v.cats;
        for (int code = 1; code <= GUARD_N_CODES; code++)
            if (v.codes & (1u << (code - 1)))
                cats |= guard_code_categories(code);
        for (int k = 0; k < SAFE_N_CAT; k++)
            if (cats & (1u << k))
                out->s[k] = run.p_unsafe;
    }
    return STATUS_OK;
}

Status guard_render(const Classifier *c, const SafeText *t, char **out, size_t *len, Err *err) {
    *out = NULL;
    if (c->score != guard_score)
        return err_set(err, STATUS_INVALID, "the classifier is not a guard model");
    const Guard *g = (const Guard *)c;
    json_t *msgs = guard_messages(t);
    if (!msgs)
        return err_set(err, STATUS_NOMEM, "guard model: out of memory");
    uint8_t *mask = NULL;
    Status st = chat_render(g->fmt, msgs, true, NULL, out, &mask, len, err);
    free(mask);
    json_decref(msgs);
    return st;
}

static void guard_free(Classifier *c) {
    Guard *g = (Guard *)c;
    gen_session_free(&g->gs);
    chat_format_free(g->fmt);
    tok_free(g->tok);
    model_free(g->m);
    pthread_mutex_destroy(&g->mu);
    free(g);
}

/* The first token of 'word' alone. */
static Status first_token(const Tokenizer *tok, const char *word, int32_t *id, Err *err) {
    int32_t ids[16];
    size_t n = 0;
    TokEncodeOpts o = {0};
    Status st = tok_encode(tok, word, strlen(word), &o, ids, 16, &n, err);
    if (st)
        return st;
    if (n < 1)
        return err_set(err, STATUS_FORMAT, "guard model: '%s' has no tokens", word);
    *id = ids[0];
    return STATUS_OK;
}

Status classify_guard(Classifier **out, const char *path, int n_threads, Err *err) {
    *out = NULL;
    Guard *g = calloc(1, sizeof *g);
    if (!g)
        return err_set(err, STATUS_NOMEM, "out of memory");
    pthread_mutex_init(&g->mu, NULL);
    ModelParams mp = {.n_threads = n_threads, .n_seq_max = 1, .n_batch = 512};
    Status st = model_load(&g->m, path, &mp, err);
    if (!st && (st = tok_load(&g->tok, model_gguf(g->m), err)))
        err_prefix(err, "%s", path);
    if (!st && !(g->fmt = chat_format_new(model_gguf(g->m), g->tok, NULL, 0, err)))
        st = err->status ? err->status : STATUS_INVALID;
    if (!st && chat_format_builtin(g->fmt) != CHAT_BUILTIN_NONE)
        st = err_set(err, STATUS_FORMAT,
                     "%s: no chat template of its own (a Llama Guard 3 GGUF carries one)", path);
    if (!st)
        st = first_token(g->tok, "safe", &g->t_safe, err);
    if (!st)
        st = first_token(g->tok, "unsafe", &g->t_unsafe, err);
    if (!st && g->t_safe == g->t_unsafe)
        st = err_set(err, STATUS_FORMAT, "%s: 'safe' and 'unsafe' start with the same token", path);
    if (!st)
        st = gen_session_init(&g->gs, g->m, g->tok, 0, err);
    if (st) {
        guard_free(&g->base);
        return st;
    }
    const char *base = strrchr(path, '/');
    snprintf(g->name, sizeof g->name, "%s", base ? base + 1 : path);
    g->base = (Classifier){
        .name = g->name, .uses_context = true, .score = guard_score, .free = guard_free};
    *out = &g->base;
    return STATUS_OK;
}
