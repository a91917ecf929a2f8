/* sampler_testutil.h - helpers the sampler test files share (header-only,
 * Criterion). */
#ifndef CGPT_TESTS_SAMPLER_TESTUTIL_H
#define CGPT_TESTS_SAMPLER_TESTUTIL_H

#include <criterion/criterion.h>

#include "sample/sampler.h"

/* Defaults with every filter off: temperature 1, no top-k/top-p/min-p, no
 * penalties. */
static inline SamplerParams st_plain(void) {
    SamplerParams p = sampler_defaults();
    p.temperature = 1.0f;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.penalty_last_n = 0;
    return p;
}

/* A sampler for a vocabulary of n_vocab, or the test fails. */
static inline Sampler *st_new(const SamplerParams *p, int n_vocab) {
    Err err = {0};
    Sampler *s = sampler_new(p, n_vocab, &err);
    cr_assert_not_null(s, "sampler_new: %s", err.msg);
    return s;
}

#endif
