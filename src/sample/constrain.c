/* constrain.c - sampling under a grammar (constrain.h). */
#include "sample/constrain.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/perf.h"

struct Constraint {
    const GrammarVocab *v;
    GrammarState *st;
    GrammarMasker *m;
    uint8_t *allowed; /* (n_vocab) */
    float *masked;    /* (n_vocab) */
    ConstrainStats stats;
};

Constraint *constrain_new(const Grammar *g, const GrammarVocab *v, Err *err) {
    Constraint *c = calloc(1, sizeof *c);
    int n = grammar_vocab_size(v);
    if (!c)
        goto nomem;
    c->v = v;
    if (grammar_state_new(g, &c->st, err) || grammar_masker_new(&c->m, v, err)) {
        constrain_free(c);
        return NULL;
    }
    c->allowed = malloc((size_t)(n > 0 ? n : 1));
    c->masked = malloc((size_t)(n > 0 ? n : 1) * sizeof *c->masked);
    if (!c->allowed || !c->masked)
        goto nomem;
    return c;
nomem:
    constrain_free(c);
    err_set(err, STATUS_NOMEM, "grammar: out of memory for a constrained sequence");
    return NULL;
}

void constrain_free(Constraint *c) {
    if (!c)
        return;
    grammar_state_free(c->st);
    grammar_masker_free(c->m);
    free(c->allowed);
    free(c->masked);
    free(c);
}

/* The masked logits in c->masked; returns how many tokens are allowed. */
static int mask(Constraint *c, const float *logits) {
    double t0 = perf_now();
    int n = grammar_vocab_size(c->v);
    int allowed = grammar_mask(c->m, c->st, c->allowed);
    for (int i = 0; i < n; i++)
        c->masked[i] = c->allowed[i] ? logits[i] : -INFINITY;
    c->stats.masks++;
    c->stats.mask_s += perf_now() - t0;
    return allowed;
}

int32_t constrain_sample(Constraint *c, Sampler *s, const float *logits, float *logprob,
                         const float **used) {
    c->stats.tokens++;
    if (used)
        *used = logits;
    if (!logprob) {
        int32_t tok = sampler_sample(s, logits, NULL);
        double t0 = perf_now();
        bool ok = grammar_masker_allows(c->m, c->st, tok);
        c->stats.check_s += perf_now() - t0;
        if (ok)
            return tok;
    }
    if (mask(c, logits) == 0)
        return -1;
    if (used)
        *used = c->masked;
    int32_t tok = sampler_sample(s, c->masked, logprob);
    return c->allowed[tok] ? tok : -1; /* the logit bias banned every allowed token */
}

bool constrain_accept(Constraint *c, int32_t tok) {
    return grammar_masker_accept(c->m, c->st, tok);
}

bool constrain_complete(const Constraint *c) { return grammar_complete(c->st); }

bool constrain_done(const Constraint *c) { return grammar_done(c->st); }

ConstrainStats constrain_stats(const Constraint *c) { return c->stats; }

Status constrain_vocab_new(const Tokenizer *t, int n_vocab, bool special, GrammarVocab **out,
                           Err *err) {
    *out = NULL;
    int n = n_vocab;
    const char **pieces = malloc((size_t)(n > 0 ? n : 1) * sizeof *pieces);
    size_t *lens = malloc((size_t)(n > 0 ? n : 1) * sizeof *lens);
    uint8_t *eog = malloc((size_t)(n > 0 ? n : 1));
    Status st;
    if (!pieces || !lens || !eog) {
        st = err_set(err, STATUS_NOMEM, "grammar: out of memory for a vocabulary of %d", n);
    } else {
        for (int i = 0; i < n; i++) {
            pieces[i] = tok_piece(t, i, special, &lens[i]); /* "" past the tokenizer's */
            if (!pieces[i]) {
                pieces[i] = "";
                lens[i] = 0;
            }
            eog[i] = tok_is_eog(t, i);
        }
        st = grammar_vocab_new(out, n, pieces, lens, eog, err);
    }
    free(pieces);
    free(lens);
    free(eog);
    return st;
}
