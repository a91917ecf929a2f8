/* generate.h - the generation loop shared by the CLI (and later the server):
 * prompt tokens in, streamed text out.
 *
 * A GenSession is one sequence of a Model plus the token ids its KV cache
 * holds. gen_generate() reuses the longest common prefix of the cache and
 * the new prompt (a chat that re-sends the whole conversation each turn
 * only computes the new turn), feeds the rest in chunks of the model's
 * n_batch (chunked prefill), then samples token by token: sampler ->
 * end-of-generation check -> UTF-8-safe detokenization -> stop strings ->
 * the caller's callback, which may cancel. The session keeps the cache
 * contents for the next call. */
#ifndef CGPT_ENGINE_GENERATE_H
#define CGPT_ENGINE_GENERATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "model/model.h"
#include "sample/sampler.h"
#include "tokenizer/tokenizer.h"

typedef enum {
    GEN_FINISH_EOG,       /* the model ended its turn (EOS / EOT) */
    GEN_FINISH_LENGTH,    /* max_tokens reached */
    GEN_FINISH_STOP,      /* a stop string appeared */
    GEN_FINISH_CONTEXT,   /* the context is full */
    GEN_FINISH_CANCELLED, /* the callback (or gen_cancel) asked to stop */
} GenFinish;

typedef struct {
    int max_tokens;           /* < 0: until the context is full */
    SamplerParams sampling;
    const char *const *stop;  /* stop strings (borrowed), n_stop of them */
    int n_stop;
    bool ignore_eos;          /* keep going past end-of-generation tokens */
    bool render_special;      /* show control tokens' text in the output */
    /* A GBNF grammar the output follows (sample/constrain.h), or NULL:
     * parsed per call (a bad one is gen_generate's error); the generation
     * ends as at end-of-generation once the grammar can take nothing more. */
    const char *grammar;
    size_t grammar_len;
} GenParams;

typedef struct {
    int n_prompt;      /* prompt tokens */
    int n_reused;      /* of which taken from the cache */
    int n_generated;
    double t_prompt;   /* seconds spent on the prompt */
    double t_generate; /* seconds spent generating */
    GenFinish finish;
} GenStats;

/* Called with text ready to show (complete UTF-8, stop strings removed).
 * Return false to stop generating (finish = GEN_FINISH_CANCELLED). */
typedef bool (*GenOnText)(void *ctx, const char *text, size_t len);

typedef struct {
    Model *m;             /* borrowed */
    const Tokenizer *tok; /* borrowed */
    int seq;              /* the model's sequence id this session owns */
    int32_t *cached;      /* (n_cached) ids in the KV cache, positions 0.. */
    int n_cached;
    int cap;              /* = the model's n_ctx */
    float *logits;        /* (n_vocab) */
    BatchRow *rows;       /* (n_batch) the batch being fed; allocated once */
    volatile int cancel;  /* set from a signal handler to stop the current call */
} GenSession;

/* Borrows 'm' and 't' (both must outlive the session). */
Status gen_session_init(GenSession *s, Model *m, const Tokenizer *t, int seq, Err *err);
void gen_session_free(GenSession *s);
/* Forget the cache (new conversation). */
void gen_session_reset(GenSession *s);
/* Async-signal-safe: ask the running gen_generate() to stop after the
 * current step. */
void gen_cancel(GenSession *s);

/* Generate a continuation of 'prompt' (n_prompt >= 1 ids). STATUS_LIMIT
 * (context_length_exceeded) when the prompt alone does not fit the context.
 * When 'out_ids' is non-NULL the generated ids are stored there (room for
 * max_tokens, or the context when max_tokens < 0). */
Status gen_generate(GenSession *s, const int32_t *prompt, int n_prompt, const GenParams *p,
                    GenOnText on_text, void *ctx, int32_t *out_ids, GenStats *stats, Err *err);

/* Mean negative log-likelihood helper for perplexity: feeds 'ids' (n >= 2)
 * from position 0 in chunks and adds -log p(ids[i] | ids[<i]) for i in
 * [first, n) to *nll, counting them in *count. Uses (and resets) the
 * session's sequence. */
Status gen_score(GenSession *s, const int32_t *ids, int n, int first, double *nll, long *count,
                 Err *err);

const char *gen_finish_name(GenFinish f);

#endif
