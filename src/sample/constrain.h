/* constrain.h - sampling under a grammar: every drawn token keeps the
 * output inside the grammar (sample/grammar.h).
 *
 * The order is llama.cpp's: the sampler draws from the logits as they are,
 * the drawn token alone is checked against the grammar (one walk of its
 * piece), and only when the grammar refuses it is the full mask computed,
 * the refused tokens' logits set to -inf, and the draw made again. A model
 * that mostly writes what the grammar wants pays one check per token, not a
 * walk of the vocabulary. Draw, then redraw from the masked logits on a
 * refusal, gives each allowed token P(t) + P(refused) * P(t) / P(allowed) =
 * P(t) / P(allowed): exactly the masked distribution when the sampler does
 * not truncate (top-k, top-p and min-p are applied to the unmasked
 * candidates on the first draw, as in llama.cpp).
 *
 * When the caller wants the drawn token's logprob (the API's logprobs),
 * the mask comes first, so the logprob and top_logprobs describe the
 * masked distribution the token was drawn from.
 *
 * A Constraint is one sequence's: the grammar state, a masker and the
 * scratch (the mask and the masked logits, n_vocab each), all allocated by
 * constrain_new; constrain_sample and constrain_accept allocate nothing
 * once warm (a state's stacks grow to their high-water mark once). */
#ifndef CGPT_SAMPLE_CONSTRAIN_H
#define CGPT_SAMPLE_CONSTRAIN_H

#include <stdbool.h>
#include <stdint.h>

#include "core/err.h"
#include "sample/grammar.h"
#include "sample/sampler.h"
#include "tokenizer/tokenizer.h"

typedef struct Constraint Constraint;

typedef struct {
    long tokens;    /* constrain_sample calls */
    long masks;     /* full masks computed */
    double check_s; /* seconds checking drawn tokens */
    double mask_s;  /* seconds computing masks */
} ConstrainStats;

/* A constraint at the start of g over vocabulary v (both borrowed; they
 * must outlive it). Returns owned (constrain_free) or NULL with 'err'. */
Constraint *constrain_new(const Grammar *g, const GrammarVocab *v, Err *err);
void constrain_free(Constraint *c);

/* Draw the next token with s from logits (n_vocab of v; borrowed,
 * unchanged) among those the grammar allows next. 'logprob' as
 * sampler_sample's, under the masked distribution. *used (when non-NULL)
 * gets the logits the token was drawn from, for sampler_top_logprobs:
 * the masked copy (valid until the next call) or 'logits'. Returns -1 when
 * the grammar allows no token of the vocabulary (a dead end: the grammar
 * needs a character no token has). Does not advance the grammar. */
int32_t constrain_sample(Constraint *c, Sampler *s, const float *logits, float *logprob,
                         const float **used);
/* Advance by token tok (as drawn). False, nothing changed, when the
 * grammar refuses it. */
bool constrain_accept(Constraint *c, int32_t tok);
/* The text so far is a whole sentence / nothing more can follow. */
bool constrain_complete(const Constraint *c);
bool constrain_done(const Constraint *c);
ConstrainStats constrain_stats(const Constraint *c);

/* The grammar vocabulary of a model: token i's piece as the detokenizer
 * writes it (control tokens empty, so never allowed, unless 'special':
 * then their text), the end-of-generation tokens marked; n_vocab may
 * exceed the tokenizer's tokens (the rest are empty). Returns owned in
 * *out (grammar_vocab_free). */
Status constrain_vocab_new(const Tokenizer *t, int n_vocab, bool special, GrammarVocab **out,
                           Err *err);

#endif
