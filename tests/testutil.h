/* testutil.h - helpers shared by the Criterion tests (header only).
 *
 * check_close(): |got - want| <= atol + rtol * |want| for every element;
 * on failure reports the name, the first bad index, both values and the
 * largest difference, as llm.c's check_tensor does (without its 100%
 * relative slack). */
#ifndef CGPT_TESTS_TESTUTIL_H
#define CGPT_TESTS_TESTUTIL_H

#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>

#include "model/randmodel.h"

static inline int check_close(const char *name, const float *got, const float *want, int64_t n,
                              float atol, float rtol) {
    int64_t first_bad = -1;
    double max_diff = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)want[i]);
        if (isnan(got[i]) != isnan(want[i]))
            d = INFINITY;
        if (d > max_diff)
            max_diff = d;
        if (first_bad < 0 && !(d <= atol + rtol * fabs((double)want[i])))
            first_bad = i;
    }
    if (first_bad >= 0) {
        cr_log_error(
            "%s: mismatch at index %lld: got %.9g want %.9g (max |diff| %.3g, atol %g rtol %g)",
            name, (long long)first_bad, got[first_bad], want[first_bad], max_diff, atol, rtol);
        return 0;
    }
    return 1;
}

/* The tiny llama the engine tests share: vocabulary 300 (a working byte
 * BPE with ChatML specials), d 32, 2 layers, 4 heads / 2 KV heads of 8, ff
 * 48, F32, seed 11, init std 0.3 (peaked enough for stable greedy output). */
static inline RandModelSpec tu_tiny_llama(int n_ctx_train) {
    return (RandModelSpec){.arch = "llama",
                           .n_vocab = 300,
                           .n_embd = 32,
                           .n_layers = 2,
                           .n_heads = 4,
                           .n_kv_heads = 2,
                           .head_dim = 8,
                           .n_ff = 48,
                           .n_ctx_train = n_ctx_train,
                           .rope_freq_base = 10000.0f,
                           .wtype = DTYPE_F32,
                           .seed = 11,
                           .init_std = 0.3f};
}

#endif
