/* sampler.h - from logits to the next token: a fixed chain of small logit
 * processors, then a draw.
 *
 * Order (as llama.cpp's default chain): logit bias -> repetition /
 * presence / frequency penalties over the last `penalty_last_n` tokens ->
 * (greedy if temperature <= 0) -> top-k -> top-p -> min-p -> temperature ->
 * softmax -> draw with the seeded RNG. Each processor is its own function
 * (sampler_apply_*) over a candidate array, so each has exact tests.
 *
 *   repetition penalty (llama.cpp / CTRL): logit > 0 ? logit / p : logit * p
 *   presence / frequency (OpenAI): logit -= presence * (count > 0) + frequency * count
 *   top-k: keep the k largest (k <= 0: all)
 *   top-p: keep the smallest prefix of the sorted candidates whose
 *          probability mass reaches p (at least one)
 *   min-p: keep candidates with probability >= min_p * max probability
 *
 * Same seed and inputs, same tokens. */
#ifndef CGPT_SAMPLE_SAMPLER_H
#define CGPT_SAMPLE_SAMPLER_H

#include <stdbool.h>
#include <stdint.h>

#include "core/err.h"
#include "core/rng.h"

#define SAMPLER_MAX_BIAS 1024    /* logit_bias entries */
#define SAMPLER_MAX_LAST_N 65536 /* penalty window */

typedef struct {
    int32_t token;
    float bias; /* added to the logit; -INFINITY bans the token */
} LogitBias;

typedef struct {
    float temperature;       /* <= 0: greedy */
    int top_k;               /* <= 0: off */
    float top_p;             /* >= 1: off */
    float min_p;             /* <= 0: off */
    float repeat_penalty;    /* 1: off */
    float presence_penalty;  /* 0: off */
    float frequency_penalty; /* 0: off */
    int penalty_last_n;      /* window of past tokens for penalties; 0: off, -1: all */
    const LogitBias *bias;   /* borrowed until sampler_new returns (copied) */
    int n_bias;
    uint64_t seed;
} SamplerParams;

/* Defaults as llama.cpp's CLI: temp 0.8, top_k 40, top_p 0.95, min_p 0.05,
 * repeat 1.0, penalty_last_n 64, seed 42. */
SamplerParams sampler_defaults(void);

typedef struct {
    int32_t id;
    float logit;
    float p;
} Candidate;

typedef struct Sampler Sampler;

/* Validate params (ranges; bias tokens in [0, n_vocab)) and return an owned
 * sampler (free with sampler_free), or NULL with STATUS_INVALID in 'err'
 * naming the field. Accepted: temperature finite (<= 0: greedy); top_p in
 * (0, 1]; min_p <= 1 (<= 0: off); repeat_penalty finite > 0; presence and
 * frequency finite; penalty_last_n in [-1, SAMPLER_MAX_LAST_N]; n_bias in
 * [0, SAMPLER_MAX_BIAS]; each bias finite or -INFINITY (entries for the same
 * token add up). */
Sampler *sampler_new(const SamplerParams *p, int n_vocab, Err *err);
void sampler_free(Sampler *s);

/* Record a token of the context (prompt or generated) for the penalties.
 * Tokens outside [0, n_vocab) are ignored. */
void sampler_accept(Sampler *s, int32_t token);
/* Forget the history (new conversation); the RNG keeps going. */
void sampler_reset(Sampler *s);

/* Choose the next token from n_vocab logits (borrowed, unchanged). When
 * 'logprob' is non-NULL it gets log of the chosen token's probability under
 * the full distribution after penalties and bias, before top-k/p (what the
 * OpenAI API reports): log_softmax at temperature 1 over all n_vocab
 * post-bias/penalty logits, l_tok - max - log(sum_j exp(l_j - max)), for
 * every temperature (greedy included). NaN logits count as -inf and +inf as
 * FLT_MAX; ties go to the lower id. If every logit is -inf (e.g. all
 * banned) the result is token 0 with *logprob = -INFINITY (callers that
 * serialise it must map it). Allocates nothing; see sampler.c for the cost. */
int32_t sampler_sample(Sampler *s, const float *logits, float *logprob);

/* The k most likely tokens of the distribution sampler_sample() reports
 * its logprob under (after bias and penalties, temperature 1, the full
 * vocabulary, before any truncation): writes min(k, n_vocab) ids and their
 * log-probabilities to ids[] / logprobs[], best first (ties to the lower
 * id), and returns that count (0 for k <= 0). Call it before
 * sampler_accept() of the sampled token to describe the same distribution
 * the draw saw. If every logit is -inf the ids are 0, 1, ... with -INFINITY.
 * Uses the sampler's scratch (not reentrant, like sampler_sample);
 * allocates nothing. O(V) plus O(V log k) at worst for small k. */
int sampler_top_logprobs(Sampler *s, const float *logits, int k, int32_t *ids, float *logprobs);

/* The processors, exposed for tests and reuse; each works in place on
 * cand[0..*n) and may shrink *n. sort_desc: sorted by logit, descending. */
void sampler_apply_bias(Candidate *cand, int n, const LogitBias *bias, int n_bias);
void sampler_apply_penalties(Candidate *cand, int n, const int32_t *last, int n_last, float repeat,
                             float presence, float frequency);
/* top_k: k <= 0 or k >= *n changes nothing; else the k best, sorted. */
void sampler_apply_top_k(Candidate *cand, int *n, int k);
void sampler_apply_softmax(Candidate *cand, int n); /* sorts desc, fills p */
void sampler_apply_top_p(Candidate *cand, int *n, float p);
void sampler_apply_min_p(Candidate *cand, int *n, float min_p);
/* Draw an index from cand[0..n) by p (normalised over n) with one uniform
 * u in [0,1). */
int sampler_draw(const Candidate *cand, int n, float u);

#endif
