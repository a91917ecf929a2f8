/* test_constrain.c - sampling under a grammar: every output is a sentence
 * of the grammar; the draws follow the masked distribution (the softmax of
 * the logits over the allowed tokens, computed here directly), whether the
 * first draw is kept or redrawn; the logprob is the masked one; the drawn
 * token's check agrees with the full mask. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "core/rng.h"
#include "sample/constrain.h"

/* A small vocabulary: pieces that fit the grammar below, pieces that do
 * not, multi-character pieces that fit only partly, and an end token. */
static const char *PIECES[] = {"a", "b",  "ab", "ba", "x",  "(", ")",   "()", "((", "a)",
                               "",  "bb", "zz", "b(", ")a", ")", "aaa", "q",  "))", "(a"};
#define NV ((int)(sizeof PIECES / sizeof *PIECES))
#define EOT 10 /* the empty piece: the end-of-generation token */

/* Balanced parentheses holding a's and b's, at least one character. */
static const char GBNF[] = "root ::= item+\nitem ::= [ab] | \"(\" item* \")\"\n";

typedef struct {
    Grammar *g;
    GrammarVocab *v;
} Fixture;

static Fixture fixture(void) {
    Fixture f = {0};
    Err err = {0};
    size_t lens[NV];
    uint8_t eog[NV] = {0};
    for (int i = 0; i < NV; i++)
        lens[i] = strlen(PIECES[i]);
    eog[EOT] = 1;
    cr_assert_eq(grammar_parse(&f.g, GBNF, strlen(GBNF), NULL, &err), STATUS_OK, "%s", err.msg);
    cr_assert_eq(grammar_vocab_new(&f.v, NV, PIECES, lens, eog, &err), STATUS_OK, "%s", err.msg);
    return f;
}

static void fixture_free(Fixture *f) {
    grammar_vocab_free(f->v);
    grammar_free(f->g);
}

static Sampler *sampler(float temp, uint64_t seed) {
    SamplerParams p = sampler_defaults();
    p.temperature = temp;
    p.top_k = 0;
    p.top_p = 1;
    p.min_p = 0;
    p.repeat_penalty = 1;
    p.seed = seed;
    Err err = {0};
    Sampler *s = sampler_new(&p, NV, &err);
    cr_assert(s, "%s", err.msg);
    return s;
}

Test(constrain, every_output_is_a_sentence) {
    Fixture f = fixture();
    Rng rng;
    rng_seed(&rng, 7);
    Err err = {0};
    int ended = 0;
    for (int run = 0; run < 300; run++) {
        Constraint *c = constrain_new(f.g, f.v, &err);
        cr_assert(c, "%s", err.msg);
        Sampler *s = sampler(run % 3 == 0 ? 0.0f : 1.0f, (uint64_t)run);
        char text[512] = "";
        size_t len = 0;
        bool eot = false;
        for (int step = 0; step < 60 && !eot; step++) {
            float logits[NV];
            for (int i = 0; i < NV; i++)
                logits[i] = 3.0f * (rng_f32(&rng) - 0.5f);
            int32_t tok = constrain_sample(c, s, logits, NULL, NULL);
            cr_assert(tok >= 0 && tok < NV);
            cr_assert(constrain_accept(c, tok), "run %d: drawn token %d refused", run, tok);
            if (tok == EOT) {
                eot = true;
            } else {
                memcpy(text + len, PIECES[tok], strlen(PIECES[tok]));
                len += strlen(PIECES[tok]);
            }
        }
        text[len] = 0;
        if (eot) {
            ended++;
            cr_assert(grammar_matches(f.g, text, len), "run %d: '%s' is not a sentence", run, text);
        } else {
            /* cut by the step limit: still a prefix of a sentence */
            GrammarState *st = NULL;
            cr_assert_eq(grammar_state_new(f.g, &st, &err), STATUS_OK);
            cr_assert(grammar_accept_utf8(st, text, len), "run %d: '%s' left the grammar", run,
                      text);
            grammar_state_free(st);
        }
        sampler_free(s);
        constrain_free(c);
    }
    cr_assert_gt(ended, 100, "only %d of 300 runs ended", ended);
    fixture_free(&f);
}

/* The masked softmax at temperature 1, computed here from its definition. */
static void masked_softmax(const Fixture *f, const char *prefix, const float *logits, double *p) {
    Err err = {0};
    GrammarState *st = NULL;
    cr_assert_eq(grammar_state_new(f->g, &st, &err), STATUS_OK);
    cr_assert(grammar_accept_utf8(st, prefix, strlen(prefix)));
    double z = 0;
    for (int i = 0; i < NV; i++) {
        bool ok;
        if (i == EOT) {
            ok = grammar_complete(st);
        } else if (!*PIECES[i]) {
            ok = false;
        } else {
            GrammarState *t = NULL;
            cr_assert_eq(grammar_state_new(f->g, &t, &err), STATUS_OK);
            ok = grammar_state_copy(t, st) && grammar_accept_utf8(t, PIECES[i], strlen(PIECES[i]));
            grammar_state_free(t);
        }
        p[i] = ok ? exp((double)logits[i]) : 0;
        z += p[i];
    }
    for (int i = 0; i < NV; i++)
        p[i] /= z;
    grammar_state_free(st);
}

Test(constrain, draws_follow_the_masked_distribution) {
    Fixture f = fixture();
    Err err = {0};
    /* after "(a": ")" pieces, a, b, "(" allowed; the end not yet */
    const char *prefix = "(a";
    const float logits[NV] = {0.5f, -1.0f, 0.2f, 1.5f, 2.5f, 0.0f,  1.0f, 0.3f, -0.5f, 0.8f,
                              3.0f, 0.1f,  2.0f, 0.4f, 1.2f, -2.0f, 0.6f, 1.8f, 0.9f,  0.0f};
    double want[NV];
    masked_softmax(&f, prefix, logits, want);
    Constraint *c = constrain_new(f.g, f.v, &err);
    cr_assert(c);
    for (const char *q = prefix; *q; q++)
        cr_assert(constrain_accept(c, *q == '(' ? 5 : 0));
    Sampler *s = sampler(1.0f, 99);
    enum { N = 200000 };
    static int count[NV];
    memset(count, 0, sizeof count);
    for (int k = 0; k < N; k++) {
        int32_t tok = constrain_sample(c, s, logits, NULL, NULL);
        cr_assert(tok >= 0 && want[tok] > 0, "token %d drawn with p = 0", tok);
        count[tok]++;
    }
    ConstrainStats st = constrain_stats(c);
    cr_assert(st.masks > 0 && st.masks < N, "both paths taken: %ld masks of %d", st.masks, N);
    for (int i = 0; i < NV; i++) {
        double got = (double)count[i] / N, sd = sqrt(want[i] * (1 - want[i]) / N);
        cr_assert(fabs(got - want[i]) <= 5 * sd + 1e-9, "token %d: %.4f drawn, %.4f wanted", i, got,
                  want[i]);
    }
    /* with a logprob wanted, the mask comes first and the logprob is the masked one */
    for (int k = 0; k < 50; k++) {
        float lp;
        const float *used = NULL;
        int32_t tok = constrain_sample(c, s, logits, &lp, &used);
        cr_assert(used && used != logits);
        cr_assert(fabs(lp - log(want[tok])) < 1e-5, "logprob %f, want %f", lp, log(want[tok]));
    }
    sampler_free(s);
    constrain_free(c);
    fixture_free(&f);
}

Test(constrain, check_agrees_with_the_mask) {
    Fixture f = fixture();
    Err err = {0};
    const char *prefixes[] = {"", "a", "(", "((a", "(a)", "ab(b)"};
    uint8_t allowed[NV];
    GrammarMasker *m = NULL;
    cr_assert_eq(grammar_masker_new(&m, f.v, &err), STATUS_OK);
    for (size_t k = 0; k < sizeof prefixes / sizeof *prefixes; k++) {
        GrammarState *st = NULL;
        cr_assert_eq(grammar_state_new(f.g, &st, &err), STATUS_OK);
        cr_assert(grammar_accept_utf8(st, prefixes[k], strlen(prefixes[k])));
        grammar_mask(m, st, allowed);
        for (int i = 0; i < NV; i++)
            cr_assert_eq(grammar_masker_allows(m, st, i), allowed[i] != 0, "'%s' then token %d",
                         prefixes[k], i);
        grammar_state_free(st);
    }
    grammar_masker_free(m);
    fixture_free(&f);
}

Test(constrain, a_dead_end_is_reported) {
    Fixture f = fixture();
    Err err = {0};
    Grammar *g = NULL;
    const char *gb = "root ::= \"a\" \"%\"";
    cr_assert_eq(grammar_parse(&g, gb, strlen(gb), NULL, &err), STATUS_OK);
    Constraint *c = constrain_new(g, f.v, &err);
    Sampler *s = sampler(1.0f, 1);
    float logits[NV] = {0};
    int32_t tok = constrain_sample(c, s, logits, NULL, NULL);
    cr_assert_eq(tok, 0, "only \"a\" fits, got %d", tok);
    cr_assert(constrain_accept(c, 0));
    cr_assert_eq(constrain_sample(c, s, logits, NULL, NULL), -1, "no piece has '%%'");
    sampler_free(s);
    constrain_free(c);
    grammar_free(g);
    fixture_free(&f);
}
