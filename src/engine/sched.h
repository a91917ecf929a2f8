/* sched.h - the serving scheduler: continuous batching of many requests over
 * one Model, on an engine thread of its own.
 *
 * A request is a prompt (token ids) and n choices. sched_submit() queues it
 * (bounded queue; STATUS_BUSY when full) and returns a
 * handle. The engine thread loops:
 *   1. drops cancelled requests (their sequences freed, blocks back in the
 *      pool at once) and admits queued ones, first come first served, while
 *      the KV pool can hold their reservation (see below) and a sequence id
 *      is free for each choice;
 *   2. builds ONE batch: a decode row for every choice that is generating,
 *      then prompt rows of requests still in prefill, at most
 *      prefill_chunk prompt rows per step in total (chunked prefill: a long
 *      prompt takes several steps and never stalls running decodes);
 *   3. one model_forward() over that batch;
 *   4. samples every row that produced logits (per-choice Sampler, seed =
 *      seed + choice index), detokenizes (TokStream), applies stop strings
 *      (StopMatcher) and end-of-generation, and reports events.
 * New requests join between steps. When nothing is running or queued the
 * thread sleeps on a condition variable.
 *
 * n > 1: the prompt is prefilled once; the other choices attach its blocks
 * (kv_seq_attach) and copy-on-write keeps them apart.
 *
 * Prefix cache (pcache.h): after a request's prompt is prefilled, its full
 * prompt blocks are published under chained BLAKE2b hashes of
 * (tenant, model, tokens); a later request of the SAME tenant whose prompt
 * starts with those tokens attaches the blocks instead of recomputing them
 * (reported as n_cached). Another tenant's hashes never match. Cached blocks
 * that no sequence uses are evicted (least recently used first) when
 * admission needs room.
 *
 * Admission reserves, per choice, the blocks for min(n_ctx, n_prompt +
 * max_tokens) positions (minus blocks shared from the cache / the first
 * choice), so a running request never runs out of KV and nothing is
 * preempted. A request whose reservation exceeds the whole pool is refused
 * at submit (STATUS_LIMIT).
 *
 * Events are delivered by calling on_event ON THE ENGINE THREAD: the
 * callback must be quick and must not call back into the scheduler except
 * sched_cancel() and sched_release(). Order per request: any number of SCHED_EV_TOKEN (per
 * choice, in generation order), one SCHED_EV_FINISH per choice, then exactly
 * one SCHED_EV_END (after which the engine never touches the request
 * again). An error inside the engine (a forward failing) ends every
 * unfinished choice with GEN_FINISH_ERROR and the message in ev->error.
 *
 * Handles are reference counted: sched_submit() returns one reference for
 * the caller (drop it with sched_release()), the engine holds its own until
 * after SCHED_EV_END. sched_cancel() is valid while the caller holds its
 * reference, from any thread; the request ends (SCHED_EV_END with
 * GEN_FINISH_CANCELLED for unfinished choices) at the next step, whether it
 * is queued, in prefill or decoding.
 *
 * Thread safety: sched_submit/cancel/release/stats may be called from any
 * thread. The Model is owned by the engine thread from sched_start() to
 * sched_stop(); nobody else may call into it meanwhile. */
#ifndef CGPT_ENGINE_SCHED_H
#define CGPT_ENGINE_SCHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "engine/generate.h" /* GenFinish */
#include "model/model.h"
#include "sample/sampler.h"
#include "tokenizer/tokenizer.h"

#define SCHED_MAX_CHOICES 16      /* n per request */
#define SCHED_MAX_TOP_LOGPROBS 20 /* top_logprobs per token */
#define SCHED_TENANT_BYTES 32     /* tenant id: hash of the API key (zeros: anonymous) */

/* GenFinish has no error value; the scheduler adds one. */
#define GEN_FINISH_ERROR ((GenFinish)100)

typedef struct {
    int max_running;   /* requests running at once; 0: model n_seq_max / SCHED_MAX_CHOICES, >= 1 */
    int max_queue;     /* requests waiting; 0: 256. More: sched_submit -> STATUS_BUSY */
    int prefill_chunk; /* prompt rows per step; 0: model n_batch / 2 (>= 1) */
    bool prefix_cache; /* share prompt blocks between requests of one tenant */
} SchedParams;

typedef struct {
    int n_choices;              /* 1..SCHED_MAX_CHOICES */
    int max_tokens;             /* >= 1; capped by the context */
    SamplerParams sampling;     /* bias copied at submit; seed + choice index per choice */
    const char *const *stop;    /* copied at submit */
    int n_stop;
    int top_logprobs;           /* 0..SCHED_MAX_TOP_LOGPROBS; needs logprobs */
    bool logprobs;              /* report each token's log-probability */
    bool ignore_eos;
    uint8_t tenant[SCHED_TENANT_BYTES];
    /* A GBNF grammar (sample/grammar.h) every choice's output must follow,
     * or NULL: parsed at submit (a bad one is STATUS_INVALID / STATUS_LIMIT
     * with the parser's message), sampled under as sample/constrain.h says.
     * A choice whose grammar can take nothing more ends as at
     * end-of-generation (GEN_FINISH_EOG). */
    const char *grammar;
    size_t grammar_len;
    /* Control tokens' text in the output (gpt-oss's <|channel|> ... that a
     * reply parser reads), and in what a grammar sees. */
    bool render_special;
} SchedReqParams;

typedef enum { SCHED_EV_TOKEN, SCHED_EV_FINISH, SCHED_EV_END } SchedEvType;

typedef struct {
    int32_t id;
    float logprob;
} SchedTopLogprob;

typedef struct {
    SchedEvType type;
    int choice; /* TOKEN, FINISH */
    /* TOKEN: the generated token, and the text released by it (complete
     * UTF-8, stop strings removed; may be empty while a possible stop
     * string is held back). FINISH: text released at the end (held text,
     * a dangling character), may be empty. */
    const char *text;
    size_t len;
    int32_t token;   /* TOKEN */
    float logprob;   /* TOKEN with logprobs (as sampler_sample reports it; -inf mapped to -9999) */
    const SchedTopLogprob *top; /* TOKEN: top_logprobs entries, best first */
    int n_top;
    GenFinish finish; /* FINISH; END: the first choice's */
    /* END (whole request): */
    int n_prompt;
    int n_cached;     /* prompt tokens taken from the prefix cache */
    int n_generated;  /* summed over choices */
    double t_queue;   /* seconds from submit to admission */
    double t_first;   /* seconds from submit to the first token (any choice); < 0 if none */
    const char *error; /* FINISH/END with GEN_FINISH_ERROR */
} SchedEvent;

typedef void (*SchedOnEvent)(void *ctx, const SchedEvent *ev);

typedef struct Sched Sched;
typedef struct SchedReq SchedReq;

/* Borrows the model and tokenizer (both outlive the scheduler). */
Status sched_new(Sched **out, Model *m, const Tokenizer *t, const SchedParams *p, Err *err);
/* Stops the engine thread (pending requests end CANCELLED) and frees. */
void sched_free(Sched *s);
/* Start / stop the engine thread. */
Status sched_start(Sched *s, Err *err);
void sched_stop(Sched *s);

/* Queue a request. 'prompt' (n_prompt ids) is copied. 'out' may be NULL
 * (no handle: the request cannot be cancelled). Errors, with nothing
 * queued: STATUS_INVALID (bad params or token ids: the message names the
 * field); STATUS_LIMIT when the prompt does not fit the context (n_prompt >=
 * n_ctx; the message starts "context_length_exceeded:") or the reservation
 * can never fit the whole pool; STATUS_BUSY when the queue is full. */
Status sched_submit(Sched *s, const int32_t *prompt, int n_prompt, const SchedReqParams *p,
                    SchedOnEvent on_event, void *ctx, SchedReq **out, Err *err);
void sched_cancel(SchedReq *r);
void sched_release(SchedReq *r);

typedef struct {
    int running, queued;
    int kv_blocks_used, kv_blocks_free, kv_blocks_total; /* free counts evictable cache blocks as used */
    int kv_blocks_cached;                                /* held by the prefix cache */
    uint64_t requests_done, requests_cancelled;
    uint64_t tokens_prompt, tokens_cached, tokens_generated;
    uint64_t prefix_hits;  /* requests that reused at least one cached block */
    uint64_t steps;        /* forward passes */
    uint64_t kv_bytes_resident; /* KV pool bytes in memory (kv_resident_bytes) */
    double busy_seconds;        /* time spent in steps (and embeddings) */
    uint64_t embed_requests, tokens_embedded; /* sched_embed */
} SchedStats;

void sched_stats(Sched *s, SchedStats *st);
/* Embeddings (the /v1/embeddings route): n_seqs inputs, input i being
 * lens[i] token ids one after another in 'tokens' (borrowed until the call
 * returns), each pooled into one vector of n_embd floats in out[i * n_embd]
 * (model_embed: the file's pooling for bert / nomic-bert, the mean of the
 * final hidden states for other models), L2-normalised when 'normalize'.
 * Runs on the engine thread between steps, as one model_embed call (an
 * encoder's inputs packed into as few passes as n_batch allows; a decoder's
 * through a free sequence id, waiting for one); the caller blocks until it
 * is done. Errors: STATUS_INVALID (bad counts or token ids, naming the
 * input), STATUS_LIMIT "context_length_exceeded: ..." for an input longer
 * than the model takes, STATUS_BUSY when the engine is not running. Any
 * thread. */
#define SCHED_MAX_EMBED_INPUTS 2048 /* inputs per request (OpenAI's limit) */
Status sched_embed(Sched *s, const int32_t *tokens, const int32_t *lens, int n_seqs, bool normalize,
                   float *out, Err *err);

/* The model's context per sequence. */
int sched_n_ctx(const Sched *s);

#endif
