/* test_sampler_fast.c - the untruncated draw (temperature > 0, no top-k,
 * top-p or min-p: the OpenAI default), which skips the Candidate array and
 * uses the vector exp with block sums: its distribution over a vocabulary
 * spanning many blocks against one computed here in double from the
 * definitions (bias, penalties, softmax(l / T)), bans, the all-banned case,
 * and its logprob against log_softmax in double. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>

#include "core/rng.h"
#include "sample/sampler.h"
#include "sampler_testutil.h"

static SamplerParams untruncated(float temp, uint64_t seed) {
    SamplerParams p = sampler_defaults();
    p.temperature = temp;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.penalty_last_n = 64;
    p.seed = seed;
    return p;
}

enum { V = 1000, N = 100000 };

/* Logits spread over ~4 blocks of 256; tokens 10..19 banned by bias, token
 * 3 boosted, tokens 5 and 7 repeated in the history (repetition penalty). */
static void setup(float *l, double *want, float temp, LogitBias *bias, int *n_bias) {
    Rng r;
    rng_seed(&r, 4242);
    for (int i = 0; i < V; i++)
        l[i] = rng_normal(&r) * 1.5f;
    int nb = 0;
    for (int t = 10; t < 20; t++)
        bias[nb++] = (LogitBias){t, -INFINITY};
    bias[nb++] = (LogitBias){3, 2.5f};
    *n_bias = nb;
    double lw[V], mx = -INFINITY, z = 0;
    for (int i = 0; i < V; i++) {
        double x = l[i];
        if (i >= 10 && i < 20)
            x = -INFINITY;
        if (i == 3)
            x = (double)(float)(l[i] + 2.5f);
        if (i == 5 || i == 7) /* count 2 and 1, repeat 1.3: l > 0 ? l / p : l * p */
            x = x > 0 ? (double)(float)((float)x / 1.3f) : (double)(float)((float)x * 1.3f);
        lw[i] = x;
        mx = x > mx ? x : mx;
    }
    for (int i = 0; i < V; i++)
        z += want[i] = exp((lw[i] - mx) / temp);
    for (int i = 0; i < V; i++)
        want[i] /= z;
}

Test(sampler_fast, distribution_bias_penalties_chi_square) {
    static float l[V];
    static double want[V];
    LogitBias bias[16];
    int n_bias;
    float temps[] = {0.7f, 1.0f, 1.6f};
    for (int ti = 0; ti < 3; ti++) {
        setup(l, want, temps[ti], bias, &n_bias);
        SamplerParams p = untruncated(temps[ti], 11 + ti);
        p.bias = bias;
        p.n_bias = n_bias;
        p.repeat_penalty = 1.3f;
        Sampler *s = st_new(&p, V);
        sampler_accept(s, 5);
        sampler_accept(s, 7);
        sampler_accept(s, 5);
        static int counts[V];
        for (int i = 0; i < V; i++)
            counts[i] = 0;
        for (int d = 0; d < N; d++)
            counts[sampler_sample(s, l, NULL)]++;
        sampler_free(s);
        double chi2 = 0;
        int df = -1;
        for (int i = 0; i < V; i++) {
            double e = N * want[i];
            if (want[i] == 0) {
                cr_assert_eq(counts[i], 0, "T %g: banned token %d drawn %d times", temps[ti], i,
                             counts[i]);
                continue;
            }
            /* tokens with tiny expectations are pooled out of the statistic but
             * still must not be drawn far more often than expected */
            if (e < 5) {
                cr_assert_leq(counts[i], e + 6 * sqrt(e) + 3, "T %g: token %d", temps[ti], i);
                continue;
            }
            chi2 += (counts[i] - e) * (counts[i] - e) / e;
            df++;
        }
        cr_log_info("T %g: chi2 %.1f df %d", temps[ti], chi2, df);
        cr_assert_gt(df, 100, "too few tokens with expectation >= 5 (%d)", df);
        cr_assert_leq(chi2, df + 6 * sqrt(2.0 * df), "T %g: chi2 %.1f df %d", temps[ti], chi2, df);
    }
}

Test(sampler_fast, logprob_is_log_softmax_in_double) {
    static float l[V];
    static double want[V];
    LogitBias bias[16];
    int n_bias;
    setup(l, want, 1.0f, bias, &n_bias); /* want = softmax at T 1 after bias/penalties */
    SamplerParams p = untruncated(0.8f, 3);
    p.bias = bias;
    p.n_bias = n_bias;
    p.repeat_penalty = 1.3f;
    Sampler *s = st_new(&p, V);
    sampler_accept(s, 5);
    sampler_accept(s, 7);
    sampler_accept(s, 5);
    for (int d = 0; d < 200; d++) {
        float lp = 0;
        int32_t t = sampler_sample(s, l, &lp);
        double w = log(want[t]);
        cr_assert(fabs(lp - w) <= 1e-5 + 1e-5 * fabs(w), "token %d: logprob %.9g want %.9g", t,
                  lp, w);
    }
    sampler_free(s);
}

Test(sampler_fast, all_banned_and_single_survivor) {
    enum { W = 600 };
    static float l[W];
    LogitBias bias[SAMPLER_MAX_BIAS];
    for (int i = 0; i < W; i++)
        l[i] = (float)(i % 13);
    /* everything banned: token 0, logprob -inf */
    for (int i = 0; i < W && i < SAMPLER_MAX_BIAS; i++)
        bias[i] = (LogitBias){i, -INFINITY};
    SamplerParams p = untruncated(1.0f, 1);
    p.bias = bias;
    p.n_bias = W;
    Sampler *s = st_new(&p, W);
    float lp = 0;
    cr_assert_eq(sampler_sample(s, l, &lp), 0);
    cr_assert(isinf(lp) && lp < 0, "logprob %g", lp);
    sampler_free(s);
    /* all but token 517 (in the third block): always 517, logprob 0 */
    for (int i = 0; i < W - 1; i++)
        bias[i] = (LogitBias){i < 517 ? i : i + 1, -INFINITY};
    p.n_bias = W - 1;
    s = st_new(&p, W);
    for (int d = 0; d < 50; d++) {
        cr_assert_eq(sampler_sample(s, l, &lp), 517);
        cr_assert(lp == 0.0f, "logprob %g", lp);
    }
    sampler_free(s);
}
