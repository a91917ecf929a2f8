/* sample.h - choosing the next token from logits.
 *
 * The first two samplers: greedy (argmax; ties go to the lowest id, so the
 * choice is deterministic) and temperature sampling driven by an explicit
 * Rng (same seed, same tokens). Penalties, top-k/top-p/min-p, logit bias and
 * stop strings build on these in the chat work. */
#ifndef CGPT_SAMPLE_SAMPLE_H
#define CGPT_SAMPLE_SAMPLE_H

#include "core/rng.h"

/* Index of the largest of n logits (lowest index among equals; NaN never
 * wins). n >= 1. */
int sample_greedy(const float *logits, int n);

/* Draw from softmax(logits / temp) with temp > 0, using one rng_f32 draw.
 * 'probs' is caller scratch of n floats. */
int sample_temperature(const float *logits, int n, float temp, Rng *rng, float *probs);

#endif
