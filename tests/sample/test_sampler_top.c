/* test_sampler_top.c - sampler_top_logprobs() against an oracle computed
 * here in double precision, straight from the definition in sampler.h:
 * apply bias and penalties to every logit, log-softmax over the whole
 * vocabulary at temperature 1, order by (log-probability desc, id asc),
 * take the first k. Also: the best entry is exactly what a greedy
 * sampler_sample() reports, the call leaves the RNG and the penalty state
 * alone, NaN / inf / all-banned inputs, and k out of range. */
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "sample/sampler.h"
#include "sampler_testutil.h"

typedef struct {
    int id;
    double l, lp; /* processed logit, log-probability */
} Ref;

/* By logit rather than by the rounded log-probability: exact ties in
 * double rounding far below the maximum (l - FLT_MAX) keep their order. */
static int ref_cmp(const void *a, const void *b) {
    const Ref *x = a, *y = b;
    if (x->l != y->l)
        return x->l > y->l ? -1 : 1;
    return x->id - y->id;
}

/* The oracle: returns an owned (V) array sorted best first. 'hist' is the
 * accepted history (all of it inside the penalty window). */
static Ref *oracle(const float *logits, int V, const SamplerParams *p, const int32_t *hist,
                   int n_hist) {
    double *l = malloc(sizeof(double) * (size_t)V);
    int *count = calloc((size_t)V, sizeof(int));
    for (int i = 0; i < n_hist; i++)
        count[hist[i]]++;
    for (int i = 0; i < V; i++) {
        double x = logits[i];
        if (isnan(x))
            x = -INFINITY;
        if (x > FLT_MAX)
            x = FLT_MAX;
        for (int b = 0; b < p->n_bias; b++)
            if (p->bias[b].token == i)
                x = p->bias[b].bias == -INFINITY ? -INFINITY : x + p->bias[b].bias;
        if (count[i] > 0 && x != -INFINITY) {
            if (p->repeat_penalty != 1.0f)
                x = x > 0 ? x / p->repeat_penalty : x * p->repeat_penalty;
            x -= p->presence_penalty + p->frequency_penalty * count[i];
        }
        l[i] = x;
    }
    double mx = -INFINITY, z = 0;
    for (int i = 0; i < V; i++)
        mx = l[i] > mx ? l[i] : mx;
    for (int i = 0; i < V; i++)
        z += exp(l[i] - mx);
    Ref *r = malloc(sizeof(Ref) * (size_t)V);
    for (int i = 0; i < V; i++)
        r[i] = (Ref){i, l[i], mx == -INFINITY ? -INFINITY : l[i] - mx - log(z)};
    qsort(r, (size_t)V, sizeof *r, ref_cmp);
    free(l);
    free(count);
    return r;
}

static void random_logits(float *l, int V, uint64_t seed, float scale) {
    Rng r;
    rng_seed(&r, seed);
    for (int i = 0; i < V; i++)
        l[i] = scale * rng_normal(&r);
}

/* Compare k entries of sampler_top_logprobs with the oracle. */
static void check_top(Sampler *s, const float *logits, int V, int k, const SamplerParams *p,
                      const int32_t *hist, int n_hist, const char *what) {
    int32_t ids[64];
    float lps[64];
    cr_assert(k <= 64);
    int got = sampler_top_logprobs(s, logits, k, ids, lps);
    int want_n = k < V ? k : V;
    cr_assert_eq(got, want_n, "%s: k %d: returned %d, want %d", what, k, got, want_n);
    Ref *r = oracle(logits, V, p, hist, n_hist);
    for (int i = 0; i < got; i++) {
        cr_expect_eq(ids[i], r[i].id, "%s: k %d: entry %d id %d, want %d", what, k, i, ids[i],
                     r[i].id);
        double w = r[i].lp, g = lps[i];
        if (isinf(w))
            cr_expect(isinf(g) && g < 0, "%s: entry %d logprob %g, want -inf", what, i, g);
        else
            cr_expect(fabs(g - w) <= 1e-5 + 1e-6 * fabs(w),
                      "%s: k %d entry %d: logprob %.9g, want %.9g", what, k, i, g, w);
    }
    free(r);
}

Test(sampler_top, plain_random_logits) {
    const int Vs[] = {1, 7, 33, 257, 1000};
    for (size_t v = 0; v < sizeof Vs / sizeof *Vs; v++) {
        int V = Vs[v];
        float *l = malloc(sizeof(float) * (size_t)V);
        random_logits(l, V, 100 + (uint64_t)V, 3.0f);
        SamplerParams p = st_plain();
        Sampler *s = st_new(&p, V);
        const int ks[] = {1, 2, 5, 20, 64};
        for (size_t j = 0; j < sizeof ks / sizeof *ks; j++)
            check_top(s, l, V, ks[j], &p, NULL, 0, "plain");
        sampler_free(s);
        free(l);
    }
}

Test(sampler_top, bias_and_penalties) {
    int V = 500;
    float *l = malloc(sizeof(float) * (size_t)V);
    random_logits(l, V, 7, 2.0f);
    /* the best raw token gets banned, another boosted into the lead */
    int best = 0;
    for (int i = 1; i < V; i++)
        best = l[i] > l[best] ? i : best;
    LogitBias bias[] = {{(int32_t)best, -INFINITY}, {17, 6.5f}, {300, -1.25f}, {17, 0.5f}};
    SamplerParams p = st_plain();
    p.bias = bias;
    p.n_bias = 4;
    p.repeat_penalty = 1.3f;
    p.presence_penalty = 0.4f;
    p.frequency_penalty = 0.25f;
    p.penalty_last_n = -1;
    Sampler *s = st_new(&p, V);
    check_top(s, l, V, 20, &p, NULL, 0, "bias only (no history)");
    /* history: repeated tokens, including the boosted one and a negative logit one */
    int neg = 0;
    while (l[neg] >= 0)
        neg++;
    int32_t hist[] = {17, 17, 17, 3, (int32_t)neg, 300, 3, 42};
    int n_hist = (int)(sizeof hist / sizeof *hist);
    for (int i = 0; i < n_hist; i++)
        sampler_accept(s, hist[i]);
    check_top(s, l, V, 20, &p, hist, n_hist, "bias + penalties");
    check_top(s, l, V, 1, &p, hist, n_hist, "bias + penalties");
    sampler_free(s);
    free(l);
}

Test(sampler_top, ties_go_to_lower_id) {
    int V = 100;
    float l[100];
    for (int i = 0; i < V; i++)
        l[i] = (float)(i % 5); /* values 0..4, each 20 times */
    SamplerParams p = st_plain();
    Sampler *s = st_new(&p, V);
    int32_t ids[30];
    float lps[30];
    cr_assert_eq(sampler_top_logprobs(s, l, 30, ids, lps), 30);
    /* by hand: the twenty 4s (ids 4, 9, ..., 99), then the 3s (3, 8, ...) */
    for (int i = 0; i < 20; i++)
        cr_expect_eq(ids[i], 4 + 5 * i, "entry %d: id %d", i, ids[i]);
    for (int i = 20; i < 30; i++)
        cr_expect_eq(ids[i], 3 + 5 * (i - 20), "entry %d: id %d", i, ids[i]);
    double z = 20 * (exp(0) + exp(-1) + exp(-2) + exp(-3) + exp(-4));
    cr_expect(fabs(lps[0] - (-log(z))) < 1e-6, "%g vs %g", lps[0], -log(z));
    cr_expect(fabs(lps[25] - (-1 - log(z))) < 1e-6);
    check_top(s, l, V, 64, &p, NULL, 0, "ties");
    sampler_free(s);
}

Test(sampler_top, best_matches_greedy_sample_exactly) {
    int V = 2000;
    float *l = malloc(sizeof(float) * (size_t)V);
    SamplerParams p = st_plain();
    p.temperature = 0.0f;
    p.presence_penalty = 0.7f;
    p.penalty_last_n = 16;
    Sampler *s = st_new(&p, V);
    for (int step = 0; step < 20; step++) {
        random_logits(l, V, 1000 + (uint64_t)step, 4.0f);
        float lp = 0;
        int32_t tok = sampler_sample(s, l, &lp);
        int32_t ids[3];
        float lps[3];
        cr_assert_eq(sampler_top_logprobs(s, l, 3, ids, lps), 3);
        cr_expect_eq(ids[0], tok, "step %d: top id %d, sampled %d", step, ids[0], tok);
        cr_expect(lps[0] == lp, "step %d: top logprob %.9g, sampled %.9g", step, lps[0], lp);
        cr_expect(lps[0] >= lps[1] && lps[1] >= lps[2]);
        sampler_accept(s, tok);
    }
    sampler_free(s);
    free(l);
}

/* The RNG and the penalty state are untouched: a seeded sampling run gives
 * the same tokens with and without top_logprobs calls in between. */
Test(sampler_top, leaves_sampling_state_alone) {
    int V = 300;
    float *l = malloc(sizeof(float) * (size_t)V);
    SamplerParams p = st_plain();
    p.temperature = 1.0f;
    p.top_k = 40;
    p.frequency_penalty = 0.3f;
    p.penalty_last_n = 8;
    p.seed = 5;
    Sampler *a = st_new(&p, V), *b = st_new(&p, V);
    int32_t ids[20];
    float lps[20];
    for (int step = 0; step < 50; step++) {
        random_logits(l, V, 77 + (uint64_t)step, 1.0f);
        int32_t ta = sampler_sample(a, l, NULL);
        int32_t tb = sampler_sample(b, l, NULL);
        sampler_top_logprobs(b, l, 20, ids, lps);
        cr_expect_eq(ta, tb, "step %d: %d vs %d", step, ta, tb);
        sampler_accept(a, ta);
        sampler_accept(b, tb);
    }
    sampler_free(a);
    sampler_free(b);
    free(l);
}

Test(sampler_top, nan_inf_and_all_banned) {
    int V = 10;
    float l[10] = {1, NAN, INFINITY, -INFINITY, 2, 2, NAN, -1, INFINITY, 0};
    SamplerParams p = st_plain();
    Sampler *s = st_new(&p, V);
    int32_t ids[10];
    float lps[10];
    cr_assert_eq(sampler_top_logprobs(s, l, 10, ids, lps), 10);
    /* +inf read as FLT_MAX: ids 2 and 8 share the mass; the rest is 0 */
    cr_expect(ids[0] == 2 && ids[1] == 8, "%d %d", ids[0], ids[1]);
    cr_expect(fabsf(lps[0] - (float)-log(2.0)) < 1e-6f && lps[0] == lps[1]);
    /* then 4, 5 (2.0), 0 (1), 9 (0), 7 (-1), then the -inf ones 1, 3, 6 by id */
    const int32_t rest[] = {4, 5, 0, 9, 7, 1, 3, 6};
    for (int i = 0; i < 8; i++)
        cr_expect_eq(ids[2 + i], rest[i], "entry %d: %d", 2 + i, ids[2 + i]);
    cr_expect(isinf(lps[9]) && lps[9] < 0);
    check_top(s, l, V, 10, &p, NULL, 0, "nan/inf");
    sampler_free(s);

    LogitBias ban[3] = {{0, -INFINITY}, {1, -INFINITY}, {2, -INFINITY}};
    float m[3] = {1, 2, 3};
    p.bias = ban;
    p.n_bias = 3;
    s = st_new(&p, 3);
    cr_assert_eq(sampler_top_logprobs(s, m, 2, ids, lps), 2);
    cr_expect(ids[0] == 0 && ids[1] == 1);
    cr_expect(isinf(lps[0]) && lps[0] < 0 && isinf(lps[1]));
    sampler_free(s);
}

Test(sampler_top, k_out_of_range) {
    float l[4] = {0.5f, 0.25f, 1, -2};
    SamplerParams p = st_plain();
    Sampler *s = st_new(&p, 4);
    int32_t ids[8] = {-7};
    float lps[8];
    cr_expect_eq(sampler_top_logprobs(s, l, 0, ids, lps), 0);
    cr_expect_eq(sampler_top_logprobs(s, l, -3, ids, lps), 0);
    cr_expect_eq(ids[0], -7, "k <= 0 writes nothing");
    cr_expect_eq(sampler_top_logprobs(s, l, 8, ids, lps), 4);
    cr_expect(ids[0] == 2 && ids[1] == 0 && ids[2] == 1 && ids[3] == 3);
    double sum = 0;
    for (int i = 0; i < 4; i++)
        sum += exp(lps[i]);
    cr_expect(fabs(sum - 1) < 1e-6, "probabilities sum to %.9g", sum);
    sampler_free(s);
}
