/* test_sampler.c - the sampler chain: each processor against expectations
 * worked out by hand from the definitions in sampler.h, ties, NaN/inf,
 * validation, penalty windows, logprob and seeding. */
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sample/sampler.h"
#include "sampler_testutil.h"

static void fill(Candidate *c, const float *logits, int n) {
    for (int i = 0; i < n; i++)
        c[i] = (Candidate){.id = i, .logit = logits[i], .p = 0};
}

Test(sampler, defaults_are_llama_cpp_cli) {
    SamplerParams p = sampler_defaults();
    cr_assert_float_eq(p.temperature, 0.8f, 1e-7);
    cr_assert_eq(p.top_k, 40);
    cr_assert_float_eq(p.top_p, 0.95f, 1e-7);
    cr_assert_float_eq(p.min_p, 0.05f, 1e-7);
    cr_assert_float_eq(p.repeat_penalty, 1.0f, 0);
    cr_assert_eq(p.penalty_last_n, 64);
    cr_assert_eq(p.seed, 42);
    cr_assert_eq(p.n_bias, 0);
}

Test(sampler, bias_adds_and_bans) {
    float l[] = {1.0f, 2.0f, 3.0f, 4.0f};
    Candidate c[4];
    fill(c, l, 4);
    LogitBias b[] = {{1, 0.5f}, {2, -INFINITY}, {0, -1.5f}, {0, 0.25f}};
    sampler_apply_bias(c, 4, b, 4);
    cr_assert_float_eq(c[0].logit, -0.25f, 1e-7); /* 1 - 1.5 + 0.25: entries add */
    cr_assert_float_eq(c[1].logit, 2.5f, 1e-7);
    cr_assert(c[2].logit == -INFINITY);
    cr_assert_float_eq(c[3].logit, 4.0f, 0);
    /* a ban wins over an infinite logit, and works on permuted candidates */
    Candidate d[3] = {{2, INFINITY, 0}, {0, 1, 0}, {1, 1, 0}};
    LogitBias ban[] = {{2, -INFINITY}};
    sampler_apply_bias(d, 3, ban, 1);
    cr_assert(d[0].logit == -INFINITY && d[0].id == 2);
}

Test(sampler, penalties_repetition_presence_frequency) {
    /* counts in the window: token 0 once, 1 twice, 3 three times, 2 never.
     * repeat 2, presence 0.5, frequency 0.25:
     *   0:  2 / 2 = 1,   - 0.5 - 0.25*1 = 0.25
     *   1: -2 * 2 = -4,  - 0.5 - 0.25*2 = -5
     *   2:  untouched    = 1
     *   3:  0.5 / 2 = .25 - 0.5 - 0.25*3 = -1 */
    float l[] = {2.0f, -2.0f, 1.0f, 0.5f};
    int32_t last[] = {0, 1, 1, 3, 3, 3, 99 /* not a candidate: ignored */};
    Candidate c[4];
    fill(c, l, 4);
    sampler_apply_penalties(c, 4, last, 7, 2.0f, 0.5f, 0.25f);
    float want[] = {0.25f, -5.0f, 1.0f, -1.0f};
    for (int i = 0; i < 4; i++)
        cr_assert_float_eq(c[i].logit, want[i], 1e-6, "token %d: %g want %g", i, c[i].logit,
                           want[i]);
    /* repetition only: a zero logit stays zero, a negative one grows away */
    fill(c, (float[]){0.0f, -1.0f, 3.0f, 1.0f}, 4);
    sampler_apply_penalties(c, 4, (int32_t[]){0, 1, 2}, 3, 1.5f, 0, 0);
    cr_assert_float_eq(c[0].logit, 0.0f, 0);
    cr_assert_float_eq(c[1].logit, -1.5f, 1e-7);
    cr_assert_float_eq(c[2].logit, 2.0f, 1e-7);
    cr_assert_float_eq(c[3].logit, 1.0f, 0);
    /* negative presence/frequency (OpenAI allows -2..2) raise the logit */
    fill(c, (float[]){0.0f, 0.0f, 0.0f, 0.0f}, 4);
    sampler_apply_penalties(c, 4, (int32_t[]){2, 2}, 2, 1.0f, -1.0f, -0.5f);
    cr_assert_float_eq(c[2].logit, 2.0f, 1e-7);
}

Test(sampler, top_k_keeps_k_largest_ties_by_lower_id) {
    float l[] = {1.0f, 3.0f, 2.0f, 3.0f, 0.0f, NAN, 2.0f};
    Candidate c[7];
    int n = 7;
    fill(c, l, 7);
    sampler_apply_top_k(c, &n, 3);
    cr_assert_eq(n, 3);
    cr_assert(c[0].id == 1 && c[1].id == 3 && c[2].id == 2, "%d %d %d", c[0].id, c[1].id, c[2].id);
    n = 7;
    fill(c, l, 7);
    sampler_apply_top_k(c, &n, 0); /* off */
    cr_assert_eq(n, 7);
    cr_assert_eq(c[4].id, 4);
    n = 7;
    sampler_apply_top_k(c, &n, 6);
    cr_assert_eq(n, 6);
    int want[] = {1, 3, 2, 6, 0, 4}; /* NaN reads as -inf: last */
    for (int i = 0; i < 6; i++)
        cr_assert_eq(c[i].id, want[i]);
}

static int cmp_ref(const void *a, const void *b) {
    const Candidate *x = a, *y = b;
    float lx = isnan(x->logit) ? -INFINITY : x->logit, ly = isnan(y->logit) ? -INFINITY : y->logit;
    if (lx != ly)
        return lx > ly ? -1 : 1;
    return x->id < y->id ? -1 : 1;
}

/* Naive twin: top-k by a full qsort, on awkward sizes with many ties,
 * including adversarial orders (sorted, reversed, all equal). */
Test(sampler, top_k_matches_full_sort) {
    Rng r;
    rng_seed(&r, 5);
    int sizes[] = {1, 7, 33, 257, 5000};
    for (int si = 0; si < 5; si++)
        for (int pattern = 0; pattern < 4; pattern++) {
            int n = sizes[si];
            Candidate *c = malloc(sizeof *c * n), *ref = malloc(sizeof *c * n);
            for (int i = 0; i < n; i++) {
                float v = pattern == 0   ? (float)(rng_u64(&r) % 17)
                          : pattern == 1 ? (float)i
                          : pattern == 2 ? (float)(n - i)
                                         : 1.0f;
                c[i] = (Candidate){i, v, 0};
            }
            memcpy(ref, c, sizeof *c * n);
            qsort(ref, n, sizeof *ref, cmp_ref);
            int ks[] = {1, 2, 40, n - 1};
            for (int ki = 0; ki < 4; ki++) {
                int k = ks[ki], m = n;
                if (k < 1)
                    continue;
                Candidate *w = malloc(sizeof *w * n);
                memcpy(w, c, sizeof *c * n);
                sampler_apply_top_k(w, &m, k);
                cr_assert_eq(m, k < n ? k : n);
                for (int i = 0; i < m; i++)
                    cr_assert_eq(
                        w[i].id, k < n ? ref[i].id : i,
                        /* k >= n: unchanged */ "n %d k %d pattern %d at %d: id %d want %d", n, k,
                        pattern, i, w[i].id, ref[i].id);
                free(w);
            }
            /* softmax sorts the same way */
            sampler_apply_softmax(c, n);
            for (int i = 0; i < n; i++)
                cr_assert_eq(c[i].id, ref[i].id);
            free(c);
            free(ref);
        }
}

Test(sampler, softmax_and_top_p) {
    /* probabilities 0.2, 0.5, 0.3 (unsorted ids) */
    float l[] = {logf(0.2f), logf(0.5f), logf(0.3f)};
    Candidate c[3];
    fill(c, l, 3);
    sampler_apply_softmax(c, 3);
    cr_assert(c[0].id == 1 && c[1].id == 2 && c[2].id == 0);
    cr_assert_float_eq(c[0].p, 0.5f, 1e-6);
    cr_assert_float_eq(c[1].p, 0.3f, 1e-6);
    cr_assert_float_eq(c[2].p, 0.2f, 1e-6);
    /* p = 0.75: 0.5 < 0.75, 0.8 >= 0.75 -> keeps 2 */
    int n = 3;
    fill(c, l, 3);
    sampler_apply_top_p(c, &n, 0.75f);
    cr_assert_eq(n, 2);
    cr_assert(c[0].id == 1 && c[1].id == 2);
    float ps[] = {0.3f, 0.79f, 0.81f, 1.0f};
    int keep[] = {1, 2, 3, 3};
    for (int i = 0; i < 4; i++) {
        n = 3;
        fill(c, l, 3);
        sampler_apply_top_p(c, &n, ps[i]);
        cr_assert_eq(n, keep[i], "top_p %g kept %d want %d", ps[i], n, keep[i]);
    }
    /* all -inf: softmax puts everything on the lowest id; top-p keeps it */
    float inf3[] = {-INFINITY, -INFINITY, NAN};
    fill(c, inf3, 3);
    n = 3;
    sampler_apply_top_p(c, &n, 0.5f);
    cr_assert_eq(n, 1);
    cr_assert_eq(c[0].id, 0);
    cr_assert_float_eq(c[0].p, 1.0f, 0);
}

Test(sampler, min_p) {
    /* probabilities 0.5, 0.3, 0.15, 0.05; min_p 0.2 -> threshold 0.1: keeps
     * 3; min_p 0.65 -> threshold 0.325: keeps 1; 0.09 -> 0.045: keeps 4. */
    float l[] = {logf(0.15f), logf(0.5f), logf(0.05f), logf(0.3f)};
    Candidate c[4];
    int n = 4;
    fill(c, l, 4);
    sampler_apply_min_p(c, &n, 0.2f);
    cr_assert_eq(n, 3);
    cr_assert(c[0].id == 0 && c[1].id == 1 && c[2].id == 3); /* order kept */
    n = 4;
    fill(c, l, 4);
    sampler_apply_min_p(c, &n, 0.65f);
    cr_assert_eq(n, 1);
    cr_assert_eq(c[0].id, 1);
    n = 4;
    fill(c, l, 4);
    sampler_apply_min_p(c, &n, 0.09f);
    cr_assert_eq(n, 4);
    n = 4;
    sampler_apply_min_p(c, &n, 0.0f); /* off */
    cr_assert_eq(n, 4);
}

Test(sampler, draw_by_cumulative_probability) {
    Candidate c[] = {{7, 0, 0.5f}, {3, 0, 0.3f}, {9, 0, 0.2f}};
    float us[] = {0.0f, 0.49f, 0.51f, 0.79f, 0.81f, 0.99999f};
    int want[] = {0, 0, 1, 1, 2, 2};
    for (int i = 0; i < 6; i++)
        cr_assert_eq(sampler_draw(c, 3, us[i]), want[i], "u %g", us[i]);
    /* normalised over n: unnormalised weights work the same */
    Candidate d[] = {{0, 0, 0.0f}, {1, 0, 2.0f}, {2, 0, 0.0f}, {3, 0, 2.0f}, {4, 0, 0.0f}};
    cr_assert_eq(sampler_draw(d, 5, 0.0f), 1);
    cr_assert_eq(sampler_draw(d, 5, 0.4999f), 1);
    cr_assert_eq(sampler_draw(d, 5, 0.5f), 3);
    cr_assert_eq(sampler_draw(d, 5, 0.99999994f), 3); /* never a zero-p one */
}

Test(sampler, greedy_ties_nan_and_all_inf) {
    SamplerParams p = st_plain();
    p.temperature = 0.0f;
    Sampler *s = st_new(&p, 5);
    float a[] = {NAN, 1.0f, 3.0f, NAN, 3.0f};
    float lp;
    cr_assert_eq(sampler_sample(s, a, &lp), 2);
    float b[] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY};
    cr_assert_eq(sampler_sample(s, b, &lp), 0);
    cr_assert(lp == -INFINITY);
    float c[] = {NAN, NAN, NAN, NAN, NAN};
    cr_assert_eq(sampler_sample(s, c, &lp), 0);
    float d[] = {0.0f, INFINITY, 5.0f, INFINITY, 0.0f}; /* +inf reads as FLT_MAX */
    cr_assert_eq(sampler_sample(s, d, &lp), 1);
    cr_assert_float_eq(lp, -logf(2.0f), 1e-6);
    sampler_free(s);
    /* sampling with all -inf: the lowest id, never a crash or NaN */
    p = st_plain();
    p.top_k = 3;
    p.top_p = 0.5f;
    p.min_p = 0.1f;
    s = st_new(&p, 5);
    cr_assert_eq(sampler_sample(s, b, &lp), 0);
    cr_assert(lp == -INFINITY);
    cr_assert_eq(sampler_sample(s, c, NULL), 0);
    sampler_free(s);
    p.top_k = 0;
    s = st_new(&p, 5);
    cr_assert_eq(sampler_sample(s, b, NULL), 0);
    sampler_free(s);
    p.top_p = 1.0f;
    s = st_new(&p, 5);
    cr_assert_eq(sampler_sample(s, b, NULL), 0);
    sampler_free(s);
}

Test(sampler, ban_everything_but_one) {
    enum { V = 100 };
    LogitBias *b = malloc(sizeof *b * V);
    int nb = 0;
    for (int t = 0; t < V; t++)
        if (t != 37)
            b[nb++] = (LogitBias){t, -INFINITY};
    float l[V];
    for (int i = 0; i < V; i++)
        l[i] = (float)(i % 13);
    SamplerParams p = sampler_defaults(); /* top_k 40, top_p, min_p */
    p.bias = b;
    p.n_bias = nb;
    Sampler *s = st_new(&p, V);
    free(b); /* copied */
    for (int i = 0; i < 200; i++) {
        float lp = 1;
        cr_assert_eq(sampler_sample(s, l, &lp), 37);
        cr_assert_float_eq(lp, 0.0f, 0);
    }
    sampler_free(s);
}

Test(sampler, logprob_is_log_softmax_after_penalties_and_bias) {
    /* logits ln1, ln2, ln7: p = .1 .2 .7 */
    float l[] = {0.0f, logf(2.0f), logf(7.0f)};
    float lp;
    SamplerParams p = st_plain();
    p.temperature = 0.0f;
    Sampler *s = st_new(&p, 3);
    cr_assert_eq(sampler_sample(s, l, &lp), 2);
    cr_assert_float_eq(lp, logf(0.7f), 1e-6);
    sampler_free(s);
    /* bias +ln2 on token 0: weights 2, 2, 7 -> ln(7/11) */
    LogitBias b[] = {{0, logf(2.0f)}};
    p.bias = b;
    p.n_bias = 1;
    s = st_new(&p, 3);
    cr_assert_eq(sampler_sample(s, l, &lp), 2);
    cr_assert_float_eq(lp, logf(7.0f / 11.0f), 1e-6);
    sampler_free(s);
    /* frequency penalty ln7 - ln(7/4) after two... : token 2 seen twice with
     * frequency ln2: logit ln7 - 2 ln2 = ln(7/4); weights 2, 2, 1.75 ->
     * greedy picks token 0 (lowest id of the tie), logprob ln(2/5.75) */
    p.frequency_penalty = logf(2.0f);
    p.penalty_last_n = 8;
    s = st_new(&p, 3);
    sampler_accept(s, 2);
    sampler_accept(s, 2);
    cr_assert_eq(sampler_sample(s, l, &lp), 0);
    cr_assert_float_eq(lp, logf(2.0f / 5.75f), 1e-6);
    sampler_free(s);
    /* temperature and truncation do not change the reported logprob:
     * top_k 1 at temp 0.5 picks token 2, logprob still ln 0.7 */
    p = st_plain();
    p.temperature = 0.5f;
    p.top_k = 1;
    s = st_new(&p, 3);
    cr_assert_eq(sampler_sample(s, l, &lp), 2);
    cr_assert_float_eq(lp, logf(0.7f), 1e-6);
    sampler_free(s);
}

Test(sampler, penalty_window_evicts_and_reset_forgets) {
    /* logits 1, 1, 1, 0.9; presence 0.5 over the last 2 tokens */
    float l[] = {1.0f, 1.0f, 1.0f, 0.9f};
    SamplerParams p = st_plain();
    p.temperature = 0.0f;
    p.presence_penalty = 0.5f;
    p.penalty_last_n = 2;
    Sampler *s = st_new(&p, 4);
    cr_assert_eq(sampler_sample(s, l, NULL), 0);
    sampler_accept(s, 0);
    sampler_accept(s, 1);
    cr_assert_eq(sampler_sample(s, l, NULL), 2);
    sampler_accept(s, 2); /* window {1, 2}: 0 is free again */
    cr_assert_eq(sampler_sample(s, l, NULL), 0);
    sampler_accept(s, 0); /* window {2, 0} */
    cr_assert_eq(sampler_sample(s, l, NULL), 1);
    sampler_accept(s, 1);   /* {0, 1} */
    sampler_accept(s, -5);  /* out of range: ignored */
    sampler_accept(s, 400); /* ignored */
    cr_assert_eq(sampler_sample(s, l, NULL), 2);
    sampler_reset(s);
    cr_assert_eq(sampler_sample(s, l, NULL), 0);
    sampler_free(s);
    /* -1: the whole history */
    p.penalty_last_n = -1;
    s = st_new(&p, 4);
    sampler_accept(s, 0);
    sampler_accept(s, 1);
    sampler_accept(s, 2);
    for (int i = 0; i < 100; i++)
        sampler_accept(s, 3);
    /* all penalised by 0.5: 0.5 0.5 0.5 0.4 -> token 0 */
    cr_assert_eq(sampler_sample(s, l, NULL), 0);
    sampler_free(s);
    /* 0: off even with history */
    p.penalty_last_n = 0;
    s = st_new(&p, 4);
    sampler_accept(s, 0);
    cr_assert_eq(sampler_sample(s, l, NULL), 0);
    sampler_free(s);
}

/* The sampler's incremental window gives the same logits as the exposed
 * processor over the same window (compared through greedy logprob). */
Test(sampler, incremental_window_matches_processor) {
    enum { V = 50, W = 16 };
    Rng r;
    rng_seed(&r, 11);
    float l[V];
    for (int i = 0; i < V; i++)
        l[i] = rng_normal(&r) * 2;
    SamplerParams p = st_plain();
    p.temperature = 0.0f;
    p.repeat_penalty = 1.3f;
    p.presence_penalty = 0.4f;
    p.frequency_penalty = 0.2f;
    p.penalty_last_n = W;
    Sampler *s = st_new(&p, V);
    int32_t hist[400];
    for (int step = 0; step < 400; step++) {
        float lp;
        int32_t tok = sampler_sample(s, l, &lp);
        int lo = step > W ? step - W : 0;
        Candidate c[V];
        fill(c, l, V);
        sampler_apply_penalties(c, V, hist + lo, step - lo, 1.3f, 0.4f, 0.2f);
        int best = 0;
        double z = 0;
        for (int i = 1; i < V; i++)
            if (c[i].logit > c[best].logit)
                best = i;
        for (int i = 0; i < V; i++)
            z += exp((double)c[i].logit - c[best].logit);
        cr_assert_eq(tok, best, "step %d", step);
        cr_assert_float_eq(lp, (float)-log(z), 1e-5, "step %d", step);
        /* accept something varied, not only the greedy choice */
        hist[step] = step % 3 ? tok : (int32_t)(rng_u64(&r) % V);
        sampler_accept(s, hist[step]);
    }
    sampler_free(s);
}

Test(sampler, same_seed_same_tokens_different_seed_differs) {
    enum { V = 1000 };
    float l[V];
    Rng r;
    rng_seed(&r, 3);
    for (int i = 0; i < V; i++)
        l[i] = rng_normal(&r);
    SamplerParams p = sampler_defaults();
    p.top_k = 0; /* wide distribution so draws vary */
    p.top_p = 0.99f;
    Sampler *a = st_new(&p, V), *b = st_new(&p, V);
    p.seed = 43;
    Sampler *c = st_new(&p, V);
    int differ = 0;
    for (int i = 0; i < 1000; i++) {
        int32_t ta = sampler_sample(a, l, NULL), tb = sampler_sample(b, l, NULL);
        cr_assert_eq(ta, tb, "draw %d", i);
        differ += sampler_sample(c, l, NULL) != ta;
        sampler_accept(a, ta);
        sampler_accept(b, tb);
    }
    cr_assert_gt(differ, 500);
    sampler_free(a);
    sampler_free(b);
    sampler_free(c);
}

Test(sampler, validation_names_the_field) {
    Err err;
    SamplerParams p;
    LogitBias bad_tok[] = {{10, 1.0f}}, neg_tok[] = {{-1, 1.0f}}, nan_b[] = {{1, NAN}},
              pinf[] = {{1, INFINITY}};
    LogitBias *many = calloc(SAMPLER_MAX_BIAS + 1, sizeof *many);
#define EXPECT_INVALID(stmt, name, nv)                                                             \
    do {                                                                                           \
        p = sampler_defaults();                                                                    \
        stmt;                                                                                      \
        memset(&err, 0, sizeof err);                                                               \
        cr_assert_null(sampler_new(&p, nv, &err), "%s accepted", #stmt);                           \
        cr_assert_eq(err.status, STATUS_INVALID, "%s", #stmt);                                     \
        cr_assert(strstr(err.msg, name), "%s: message '%s' lacks '%s'", #stmt, err.msg, name);     \
    } while (0)
    EXPECT_INVALID(p.temperature = NAN, "temperature", 10);
    EXPECT_INVALID(p.temperature = INFINITY, "temperature", 10);
    EXPECT_INVALID(p.top_p = 0.0f, "top_p", 10);
    EXPECT_INVALID(p.top_p = -0.5f, "top_p", 10);
    EXPECT_INVALID(p.top_p = 1.01f, "top_p", 10);
    EXPECT_INVALID(p.top_p = NAN, "top_p", 10);
    EXPECT_INVALID(p.min_p = NAN, "min_p", 10);
    EXPECT_INVALID(p.min_p = 1.5f, "min_p", 10);
    EXPECT_INVALID(p.repeat_penalty = 0.0f, "repeat_penalty", 10);
    EXPECT_INVALID(p.repeat_penalty = -1.0f, "repeat_penalty", 10);
    EXPECT_INVALID(p.repeat_penalty = INFINITY, "repeat_penalty", 10);
    EXPECT_INVALID(p.repeat_penalty = NAN, "repeat_penalty", 10);
    EXPECT_INVALID(p.presence_penalty = NAN, "presence_penalty", 10);
    EXPECT_INVALID(p.frequency_penalty = -INFINITY, "frequency_penalty", 10);
    EXPECT_INVALID(p.penalty_last_n = -2, "penalty_last_n", 10);
    EXPECT_INVALID(p.penalty_last_n = SAMPLER_MAX_LAST_N + 1, "penalty_last_n", 10);
    EXPECT_INVALID((p.bias = bad_tok, p.n_bias = 1), "bias[0].token", 10);
    EXPECT_INVALID((p.bias = neg_tok, p.n_bias = 1), "bias[0].token", 10);
    EXPECT_INVALID((p.bias = nan_b, p.n_bias = 1), "bias[0].bias", 10);
    EXPECT_INVALID((p.bias = pinf, p.n_bias = 1), "bias[0].bias", 10);
    EXPECT_INVALID((p.bias = many, p.n_bias = SAMPLER_MAX_BIAS + 1), "n_bias", 10);
    EXPECT_INVALID((p.bias = NULL, p.n_bias = 2), "bias", 10);
    EXPECT_INVALID((void)0, "n_vocab", 0);
    free(many);
    cr_assert_null(sampler_new(NULL, 10, &err));
    /* allowed edges: temperature <= 0 is greedy, top_p 1, min_p 0 and 1,
     * the full bias table, -inf bias, top_k negative */
    p = sampler_defaults();
    p.temperature = -1.0f;
    p.top_p = 1.0f;
    p.min_p = 1.0f;
    p.top_k = -5;
    LogitBias *full = calloc(SAMPLER_MAX_BIAS, sizeof *full);
    full[3].bias = -INFINITY;
    p.bias = full;
    p.n_bias = SAMPLER_MAX_BIAS;
    p.penalty_last_n = SAMPLER_MAX_LAST_N;
    Sampler *s = sampler_new(&p, 10, &err);
    cr_assert_not_null(s, "%s", err.msg);
    free(full);
    sampler_free(s);
    sampler_free(NULL);
}

/* top-p without top-k (selection in rounds) and with min-p prefiltering
 * keeps exactly the set the exposed processors keep: the support of many
 * draws is that set. */
Test(sampler, fast_paths_keep_the_processor_set) {
    enum { V = 1500 };
    Rng r;
    rng_seed(&r, 21);
    float *l = malloc(sizeof *l * V);
    for (int i = 0; i < V; i++)
        l[i] = (float)(int)(rng_normal(&r) * 4) * 0.5f; /* many ties */
    struct {
        float top_p, min_p;
    } cfg[] = {{0.5f, 0.0f}, {0.9f, 0.0f}, {0.9f, 0.05f}, {1.0f, 0.2f}, {0.3f, 0.01f}};
    Candidate *c = malloc(sizeof *c * V);
    char *seen = malloc(V), *kept = malloc(V);
    for (int ci = 0; ci < 5; ci++) {
        fill(c, l, V);
        int n = V;
        sampler_apply_top_p(c, &n, cfg[ci].top_p);
        sampler_apply_min_p(c, &n, cfg[ci].min_p);
        memset(kept, 0, V);
        for (int i = 0; i < n; i++)
            kept[c[i].id] = 1;
        SamplerParams p = st_plain();
        p.top_p = cfg[ci].top_p;
        p.min_p = cfg[ci].min_p;
        p.temperature = 3.0f; /* flatten so that every kept token shows up */
        p.seed = (uint64_t)ci;
        Sampler *s = st_new(&p, V);
        memset(seen, 0, V);
        for (int d = 0; d < 40 * n + 1000; d++) {
            int32_t t = sampler_sample(s, l, NULL);
            cr_assert(kept[t], "config %d: drew %d outside the kept set", ci, t);
            seen[t] = 1;
        }
        int n_seen = 0;
        for (int i = 0; i < V; i++)
            n_seen += seen[i];
        cr_assert_eq(n_seen, n, "config %d: %d of %d kept tokens drawn", ci, n_seen, n);
        sampler_free(s);
    }
    free(l);
    free(c);
    free(seen);
    free(kept);
}

/* ---- distribution ------------------------------------------------------- */

/* Expected distribution, computed here in double from the definitions:
 * top-k on the logits, top-p on the softmax (temperature 1) of the
 * survivors, min-p relative to the largest, then softmax(l / T) over what
 * is left. Ties do not occur in the logits used. */
static void expected_dist(const float *l, int V, float T, int top_k, float top_p, float min_p,
                          double *want) {
    int order[64];
    for (int i = 0; i < V; i++)
        order[i] = i;
    for (int i = 0; i < V; i++) /* selection sort, descending */
        for (int j = i + 1; j < V; j++)
            if (l[order[j]] > l[order[i]]) {
                int t = order[i];
                order[i] = order[j];
                order[j] = t;
            }
    int n = V;
    if (top_k > 0 && top_k < n)
        n = top_k;
    if (top_p < 1) {
        double z = 0, cum = 0;
        for (int i = 0; i < n; i++)
            z += exp((double)l[order[i]] - l[order[0]]);
        for (int i = 0; i < n; i++) {
            cum += exp((double)l[order[i]] - l[order[0]]) / z;
            if (cum >= top_p) {
                n = i + 1;
                break;
            }
        }
    }
    if (min_p > 0) {
        int m = 0;
        for (int i = 0; i < n; i++)
            if (exp((double)l[order[i]] - l[order[0]]) >= min_p)
                m = i + 1;
        n = m;
    }
    double z = 0;
    for (int i = 0; i < V; i++)
        want[i] = 0;
    for (int i = 0; i < n; i++)
        z += want[order[i]] = exp(((double)l[order[i]] - l[order[0]]) / T);
    for (int i = 0; i < V; i++)
        want[i] /= z;
}

/* 200k draws; every token's count within 4 binomial sigmas (+1 for the
 * discreteness) of N p, and tokens with p = 0 never drawn. */
static void check_dist(const char *what, const float *l, int V, float T, int top_k, float top_p,
                       float min_p, uint64_t seed) {
    enum { N = 200000 };
    double want[64];
    expected_dist(l, V, T, top_k, top_p, min_p, want);
    SamplerParams p = st_plain();
    p.temperature = T;
    p.top_k = top_k;
    p.top_p = top_p;
    p.min_p = min_p;
    p.seed = seed;
    Sampler *s = st_new(&p, V);
    int counts[64] = {0};
    for (int i = 0; i < N; i++)
        counts[sampler_sample(s, l, NULL)]++;
    sampler_free(s);
    double worst = 0;
    for (int i = 0; i < V; i++) {
        double mean = N * want[i], sd = sqrt(N * want[i] * (1 - want[i]));
        double z = sd > 0 ? fabs(counts[i] - mean) / sd : (counts[i] ? INFINITY : 0);
        if (z > worst)
            worst = z;
        cr_assert(fabs(counts[i] - mean) <= 4 * sd + 1,
                  "%s: token %d drawn %d times, want %.1f +- %.1f (p %.5f)", what, i, counts[i],
                  mean, 4 * sd, want[i]);
    }
    cr_log_info("%s: largest deviation %.2f sigma", what, worst);
}

static const float DIST_L[] = {1.0f, 0.5f, 0.0f, -0.5f, -1.0f, 2.0f, 0.25f, -2.0f};

Test(sampler_dist, temperatures) {
    check_dist("T 1", DIST_L, 8, 1.0f, 0, 1.0f, 0, 1);
    check_dist("T 0.5", DIST_L, 8, 0.5f, 0, 1.0f, 0, 2);
    check_dist("T 1.7", DIST_L, 8, 1.7f, 0, 1.0f, 0, 3);
    check_dist("T 0.2", DIST_L, 8, 0.2f, 0, 1.0f, 0, 4);
}

Test(sampler_dist, truncated) {
    /* T 1 softmax: 2.0 .346, 1.0 .127, .5 .077, .25 .060, 0 .047 ... */
    check_dist("top_k 3 T 0.8", DIST_L, 8, 0.8f, 3, 1.0f, 0, 5);
    check_dist("top_p 0.8 T 1.3", DIST_L, 8, 1.3f, 0, 0.8f, 0, 6);
    check_dist("min_p 0.3 T 0.7", DIST_L, 8, 0.7f, 0, 1.0f, 0.3f, 7);
    check_dist("top_k 5 top_p 0.9 min_p 0.1 T 1", DIST_L, 8, 1.0f, 5, 0.9f, 0.1f, 8);
    check_dist("top_p 0.6 min_p 0.2 T 2", DIST_L, 8, 2.0f, 0, 0.6f, 0.2f, 9);
}

/* top-p without top-k takes the bucketed path; with a nucleus of hundreds
 * of tokens spread over many buckets, checked with a chi-square over 800
 * tokens: statistic within df + 6 sqrt(2 df). */
Test(sampler_dist, top_p_bucketed_chi_square) {
    enum { V = 800, N = 80000 };
    Rng r;
    rng_seed(&r, 99);
    float *l = malloc(sizeof *l * V);
    for (int i = 0; i < V; i++)
        l[i] = rng_normal(&r) * 0.7f;
    /* expected: sort by a reference qsort, cut at 0.9 of the mass */
    Candidate *c = malloc(sizeof *c * V);
    fill(c, l, V);
    qsort(c, V, sizeof *c, cmp_ref);
    double z = 0, cum = 0;
    for (int i = 0; i < V; i++)
        z += exp((double)c[i].logit - c[0].logit);
    int n = V;
    for (int i = 0; i < V; i++) {
        cum += exp((double)c[i].logit - c[0].logit) / z;
        if (cum >= 0.9) {
            n = i + 1;
            break;
        }
    }
    cr_assert_gt(n, 400, "kept %d: too few to span many buckets", n);
    double *want = calloc(V, sizeof *want), zt = 0;
    for (int i = 0; i < n; i++)
        zt += want[c[i].id] = exp(((double)c[i].logit - c[0].logit) / 1.2);
    int *counts = calloc(V, sizeof *counts);
    SamplerParams p = st_plain();
    p.temperature = 1.2f;
    p.top_p = 0.9f;
    Sampler *s = st_new(&p, V);
    for (int i = 0; i < N; i++)
        counts[sampler_sample(s, l, NULL)]++;
    sampler_free(s);
    double chi2 = 0;
    for (int i = 0; i < V; i++) {
        double e = N * want[i] / zt;
        if (e == 0)
            cr_assert_eq(counts[i], 0, "token %d outside the nucleus drawn", i);
        else
            chi2 += (counts[i] - e) * (counts[i] - e) / e;
    }
    double df = n - 1;
    cr_log_info("top_p bucketed: kept %d, chi2 %.1f (df %.0f)", n, chi2, df);
    cr_assert_leq(chi2, df + 6 * sqrt(2 * df), "chi2 %.1f df %.0f", chi2, df);
    free(l);
    free(c);
    free(want);
    free(counts);
}
