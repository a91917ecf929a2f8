/* sampledist.c - draw many tokens with the sampler and print how often each
 * token came up, for tests/sample/test_sampler_dist.py (NumPy computes the
 * expected distribution independently). Also, with --bench, the per-token
 * cost of sampler_sample on the given logits (informational).
 *
 *   build/tools/sampledist [--temp T] [--top-k K] [--top-p P] [--min-p M]
 *                          [--seed S] [--draws N] [--logprob] [--bench] < logits
 *
 * stdin: the logits, whitespace-separated (n_vocab is their count).
 * stdout: one count per token, one per line (with --logprob, a second column
 * with the logprob the sampler reported for that token, or nan if it was
 * never drawn). With --bench: "ms_per_token <float>". */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sample/sampler.h"

#define SAMPLEDIST_MAX_VOCAB (1 << 20)

int main(int argc, char **argv) {
    SamplerParams p = sampler_defaults();
    p.temperature = 1.0f;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.penalty_last_n = 0;
    long draws = 100000;
    int want_logprob = 0, bench = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--logprob")) {
            want_logprob = 1;
            continue;
        }
        if (!strcmp(a, "--bench")) {
            bench = 1;
            continue;
        }
        if (!v) {
            fprintf(stderr, "sampledist: %s needs a value\n", a);
            return 2;
        }
        i++;
        if (!strcmp(a, "--temp"))
            p.temperature = strtof(v, NULL);
        else if (!strcmp(a, "--top-k"))
            p.top_k = atoi(v);
        else if (!strcmp(a, "--top-p"))
            p.top_p = strtof(v, NULL);
        else if (!strcmp(a, "--min-p"))
            p.min_p = strtof(v, NULL);
        else if (!strcmp(a, "--seed"))
            p.seed = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--draws"))
            draws = atol(v);
        else {
            fprintf(stderr, "sampledist: unknown option %s\n", a);
            return 2;
        }
    }
    float *logits = malloc(sizeof *logits * SAMPLEDIST_MAX_VOCAB);
    int n = 0;
    while (n < SAMPLEDIST_MAX_VOCAB && scanf("%f", &logits[n]) == 1)
        n++;
    Err err;
    Sampler *s = sampler_new(&p, n, &err);
    if (!s) {
        fprintf(stderr, "sampledist: %s\n", err.msg);
        return 1;
    }
    long *counts = calloc((size_t)n, sizeof *counts);
    float *lps = malloc(sizeof *lps * (size_t)n);
    for (int i = 0; i < n; i++)
        lps[i] = NAN;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long d = 0; d < draws; d++) {
        float lp;
        int32_t t = sampler_sample(s, logits, want_logprob ? &lp : NULL);
        counts[t]++;
        if (want_logprob)
            lps[t] = lp;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (bench) {
        double sec = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
        printf("ms_per_token %.4f\n", sec * 1e3 / (double)(draws > 0 ? draws : 1));
    } else {
        for (int i = 0; i < n; i++) {
            if (want_logprob)
                printf("%ld %.9g\n", counts[i], lps[i]);
            else
                printf("%ld\n", counts[i]);
        }
    }
    sampler_free(s);
    free(logits);
    free(counts);
    free(lps);
    return 0;
}
