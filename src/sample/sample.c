/* sample.c - greedy and temperature sampling. */
#include "sample/sample.h"

#include <math.h>

int sample_greedy(const float *logits, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (logits[i] > logits[best] || (isnan(logits[best]) && !isnan(logits[i])))
            best = i;
    return best;
}

int sample_temperature(const float *logits, int n, float temp, Rng *rng, float *probs) {
    int top = sample_greedy(logits, n);
    float max = logits[top];
    double sum = 0;
    for (int i = 0; i < n; i++) {
        float p = isnan(logits[i]) ? 0.0f : expf((logits[i] - max) / temp);
        probs[i] = p;
        sum += p;
    }
    double r = (double)rng_f32(rng) * sum, acc = 0;
    for (int i = 0; i < n; i++) {
        acc += probs[i];
        if (r < acc)
            return i;
    }
    return top; /* r landed on the rounding slack at the end */
}
