/* ratelimit.h - per-key limits: requests per minute, tokens per minute and
 * concurrent streams, with the numbers OpenAI's x-ratelimit-* headers need.
 *
 * Each key (an opaque id: the key hash, or a fixed id for anonymous use)
 * has two token buckets refilled continuously: 'rpm' requests and 'tpm'
 * tokens per 60 s, each holding at most one minute's worth. A request takes
 * one request token and its estimated token cost (prompt tokens + the
 * max_tokens it may generate, capped at tpm) up front; rl_finish() refunds
 * the part of the estimate that was not used. A limit of 0 means unlimited.
 * A per-key counter caps concurrent requests (streams).
 *
 * Time is passed in (seconds, monotonic), so tests drive it exactly.
 * Thread-safe (one mutex). Keys are kept in a fixed-size open-addressing
 * table (RL_MAX_KEYS); least recently used idle entries are reused. */
#ifndef CGPT_SERVE_RATELIMIT_H
#define CGPT_SERVE_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

#define RL_ID_BYTES 32
#define RL_MAX_KEYS 4096

typedef struct RateLimiter RateLimiter;

typedef struct {
    int rpm;         /* 0: unlimited */
    int tpm;         /* 0: unlimited */
    int max_streams; /* 0: unlimited */
} RlLimits;

typedef enum {
    RL_OK,
    RL_REQUESTS, /* out of requests this minute */
    RL_TOKENS,   /* out of tokens this minute (or cost > tpm: never passes;
                    retry_after is then the time until the bucket is full) */
    RL_STREAMS,  /* too many concurrent requests (also: all RL_MAX_KEYS entries
                    have open streams, so a new key cannot be tracked) */
} RlVerdict;

/* What the x-ratelimit-* headers report after a decision. */
typedef struct {
    int limit_requests, remaining_requests; /* -1 when unlimited */
    double reset_requests;                  /* seconds until the bucket is full again */
    int limit_tokens, remaining_tokens;     /* -1 when unlimited */
    double reset_tokens;
    double retry_after; /* seconds until the request would pass (when refused) */
} RlInfo;

RateLimiter *rl_new(void);
void rl_free(RateLimiter *r);

/* Try to start a request of key 'id' with 'limits' costing 'cost' tokens at
 * time 'now'. RL_OK: counted (one stream open; call rl_finish later).
 * Otherwise nothing is taken. 'info' is filled either way. */
RlVerdict rl_begin(RateLimiter *r, const uint8_t id[RL_ID_BYTES], const RlLimits *limits,
                   int cost, double now, RlInfo *info);
/* The request ended having used 'used' tokens of its 'cost': refund the
 * rest, close its stream. */
void rl_finish(RateLimiter *r, const uint8_t id[RL_ID_BYTES], int cost, int used, double now);

/* Format seconds the way OpenAI's reset headers do: "1s", "6m0s", "20ms". */
void rl_format_reset(double seconds, char *buf, int cap);

#endif
