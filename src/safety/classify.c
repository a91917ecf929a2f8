/* classify.c - the built-in classifier (classify.h): normalised forms of
 * the text scored by the compiled-in lexicon and npm word lists. */
#include "safety/classify.h"

#include <stdlib.h>
#include <string.h>

#include "core/perf.h"
#include "safety/data.h"
#include "safety/lexicon.h"
#include "safety/normalize.h"

#define BUILTIN_NAME "cgpt-moderation-builtin"

typedef struct {
    Classifier base;
    Lexicon *lex;
} Builtin;

static Status builtin_score(Classifier *c, const SafeText *t, double deadline, SafeScores *out,
                            Err *err) {
    Builtin *b = (Builtin *)c;
    NormForms f;
    Status r = norm_forms(t->text, t->len, &f, err);
    if (r)
        return r;
    r = lex_score(b->lex, &f, out, NULL, err);
    norm_forms_free(&f);
    if (!r && deadline > 0 && perf_now() > deadline)
        return err_set(err, STATUS_BUSY, "the built-in classifier ran past its deadline");
    return r;
}

static void builtin_free(Classifier *c) {
    Builtin *b = (Builtin *)c;
    lex_free(b->lex);
    free(b);
}

Status classify_builtin_from(Classifier **out, const char *name, const char *lexicon, size_t len,
                             Err *err) {
    *out = NULL;
    Builtin *b = calloc(1, sizeof *b);
    if (!b)
        return err_set(err, STATUS_NOMEM, "out of memory");
    Status r = lex_load(&b->lex, name, lexicon, len, err);
    if (r) {
        free(b);
        return r;
    }
    b->base = (Classifier){.name = BUILTIN_NAME, .score = builtin_score, .free = builtin_free};
    *out = &b->base;
    return STATUS_OK;
}

Status classify_builtin(Classifier **out, const char *extra, size_t extra_len, Err *err) {
    /* the lexicon, the npm word lists and the operator's lines, as one source */
    if (!extra)
        extra_len = 0;
    size_t n = safety_lexicon_txt_len + 1 + safety_words_txt_len + 1 + extra_len;
    char *src = malloc(n + 1);
    if (!src)
        return err_set(err, STATUS_NOMEM, "out of memory");
    size_t o = 0;
    memcpy(src, safety_lexicon_txt, safety_lexicon_txt_len);
    o += safety_lexicon_txt_len;
    src[o++] = '\n';
    memcpy(src + o, safety_words_txt, safety_words_txt_len);
    o += safety_words_txt_len;
    src[o++] = '\n';
    if (extra_len)
        memcpy(src + o, extra, extra_len);
    src[n] = '\0';
    Status r = classify_builtin_from(out, extra_len ? "lexicon (built-in + --moderation-lexicon)"
                                                    : "lexicon.txt+words.txt",
                                     src, n, err);
    free(src);
    return r;
}

/* ------------------------------------------------------------------ pairs */

typedef struct {
    Classifier base;
    Classifier *first, *second;
    unsigned dirs;
    float w;
} Pair;

static Status pair_score(Classifier *c, const SafeText *t, double deadline, SafeScores *out,
                         Err *err) {
    Pair *p = (Pair *)c;
    Status r = p->first->score(p->first, t, deadline, out, err);
    if (r || !(p->dirs & (1u << t->dir)))
        return r;
    SafeText t2 = *t;
    if (!p->second->uses_context) {
        t2.context = NULL;
        t2.context_len = 0;
    }
    SafeScores s2;
    if ((r = p->second->score(p->second, &t2, deadline, &s2, err)))
        return r;
    for (int k = 0; k < SAFE_N_CAT; k++)
        out->s[k] = 1.0f - (1.0f - out->s[k]) * (1.0f - p->w * s2.s[k]);
    return STATUS_OK;
}

static void pair_free(Classifier *c) {
    Pair *p = (Pair *)c;
    classifier_free(p->first);
    classifier_free(p->second);
    free(p);
}

Status classify_pair(Classifier **out, Classifier *first, Classifier *second, unsigned dirs,
                     float w, Err *err) {
    *out = NULL;
    Pair *p = calloc(1, sizeof *p);
    if (!p) {
        classifier_free(first);
        classifier_free(second);
        return err_set(err, STATUS_NOMEM, "out of memory");
    }
    p->first = first;
    p->second = second;
    p->dirs = dirs;
    p->w = w < 0 ? 0 : w > 1 ? 1 : w;
    p->base = (Classifier){.name = first->name,
                           .uses_context = first->uses_context || second->uses_context,
                           .score = pair_score,
                           .free = pair_free};
    *out = &p->base;
    return STATUS_OK;
}
