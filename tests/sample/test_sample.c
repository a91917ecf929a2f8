/* test_sample.c - greedy and temperature sampling. Expected values are
 * worked out by hand from the definitions. */
#include <criterion/criterion.h>
#include <math.h>

#include "sample/sample.h"

Test(sample, greedy_picks_max_lowest_index_on_ties_and_skips_nan) {
    float a[] = {0.5f, 2.0f, -1.0f, 2.0f};
    cr_assert_eq(sample_greedy(a, 4), 1);
    float b[] = {NAN, -3.0f, -2.0f};
    cr_assert_eq(sample_greedy(b, 3), 2);
    float c[] = {-INFINITY, -INFINITY};
    cr_assert_eq(sample_greedy(c, 2), 0);
}

Test(sample, temperature_matches_softmax_frequencies) {
    /* logits ln(1), ln(2), ln(7) at temp 1 -> probabilities 0.1, 0.2, 0.7 */
    float l[] = {0.0f, logf(2.0f), logf(7.0f)}, probs[3];
    int counts[3] = {0};
    Rng r;
    rng_seed(&r, 9);
    for (int i = 0; i < 100000; i++)
        counts[sample_temperature(l, 3, 1.0f, &r, probs)]++;
    cr_assert(fabs(counts[0] / 1e5 - 0.1) < 0.01, "p0 %f", counts[0] / 1e5);
    cr_assert(fabs(counts[1] / 1e5 - 0.2) < 0.01, "p1 %f", counts[1] / 1e5);
    cr_assert(fabs(counts[2] / 1e5 - 0.7) < 0.01, "p2 %f", counts[2] / 1e5);
    /* temp 0.5 squares the ratios: 1, 4, 49 over 54 */
    int c2 = 0;
    for (int i = 0; i < 100000; i++)
        c2 += sample_temperature(l, 3, 0.5f, &r, probs) == 2;
    cr_assert(fabs(c2 / 1e5 - 49.0 / 54.0) < 0.01, "p2 at temp 0.5: %f", c2 / 1e5);
}

Test(sample, same_seed_same_tokens) {
    float l[16], probs[16];
    for (int i = 0; i < 16; i++)
        l[i] = (float)(i % 5);
    Rng a, b;
    rng_seed(&a, 77);
    rng_seed(&b, 77);
    for (int i = 0; i < 1000; i++)
        cr_assert_eq(sample_temperature(l, 16, 0.8f, &a, probs),
                     sample_temperature(l, 16, 0.8f, &b, probs));
}
