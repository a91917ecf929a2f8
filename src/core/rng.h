/* rng.h - small explicit-state random number generator (splitmix64 seeded
 * xoshiro256**). Deterministic across platforms: tests and samplers that
 * take an Rng produce exact, repeatable results. */
#ifndef CGPT_CORE_RNG_H
#define CGPT_CORE_RNG_H

#include <stdint.h>

typedef struct {
    uint64_t s[4];
} Rng;

void rng_seed(Rng *r, uint64_t seed);
uint64_t rng_u64(Rng *r);
/* Uniform in [0, 1) with 24 bits of precision. */
float rng_f32(Rng *r);
/* Standard normal (Box-Muller). */
float rng_normal(Rng *r);

#endif
