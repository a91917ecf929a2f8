/* test_ratelimit.c - token buckets driven by an injected clock: the exact
 * remaining/reset/retry numbers worked out by hand from "capacity per 60 s,
 * refilled continuously", refunds, the streams cap, a table full of keys,
 * and the reset header format (Go durations, as in OpenAI's docs). Rates
 * are chosen so the arithmetic is exact in binary floating point. */
#include <criterion/criterion.h>
#include <math.h>
#include <pthread.h>
#include <string.h>

#include "serve/ratelimit.h"

static void mkid(uint8_t id[RL_ID_BYTES], unsigned n) {
    memset(id, 0, RL_ID_BYTES);
    memcpy(id, &n, sizeof n);
    id[31] = 0xa5;
}

#define EXPECT_NEAR(got, want, what)                                                               \
    cr_assert(fabs((got) - (want)) <= 1e-9 + 1e-12 * fabs(want), "%s: got %.12g want %.12g", what, \
              (double)(got), (double)(want))

Test(ratelimit, requests_bucket_exact) {
    RateLimiter *r = rl_new();
    uint8_t id[RL_ID_BYTES];
    mkid(id, 1);
    RlLimits lim = {.rpm = 60}; /* one request per second */
    RlInfo in;
    double t = 1000;
    cr_assert_eq(rl_begin(r, id, &lim, 5, t, &in), RL_OK);
    cr_assert_eq(in.limit_requests, 60);
    cr_assert_eq(in.remaining_requests, 59);
    EXPECT_NEAR(in.reset_requests, 1.0, "reset after one");
    cr_assert_eq(in.limit_tokens, -1, "unlimited tokens report -1");
    cr_assert_eq(in.remaining_tokens, -1);
    rl_finish(r, id, 5, 5, t);
    for (int i = 1; i < 60; i++) {
        cr_assert_eq(rl_begin(r, id, &lim, 5, t, &in), RL_OK, "request %d", i);
        rl_finish(r, id, 5, 5, t);
    }
    cr_assert_eq(in.remaining_requests, 0);
    EXPECT_NEAR(in.reset_requests, 60.0, "reset when empty");
    cr_assert_eq(rl_begin(r, id, &lim, 5, t, &in), RL_REQUESTS);
    EXPECT_NEAR(in.retry_after, 1.0, "retry when empty");
    cr_assert_eq(in.remaining_requests, 0);
    cr_assert_eq(rl_begin(r, id, &lim, 5, t + 0.25, &in), RL_REQUESTS);
    EXPECT_NEAR(in.retry_after, 0.75, "retry after 0.25 s");
    EXPECT_NEAR(in.reset_requests, 59.75, "reset after 0.25 s");
    cr_assert_eq(rl_begin(r, id, &lim, 5, t + 1, &in), RL_OK);
    cr_assert_eq(in.remaining_requests, 0);
    /* 30.5 s later: 30.5 requests back, 30 whole. */
    cr_assert_eq(rl_begin(r, id, &lim, 5, t + 31.5, &in), RL_OK);
    cr_assert_eq(in.remaining_requests, 29);
    EXPECT_NEAR(in.reset_requests, 30.5, "reset half full");
    /* Never above the limit however long it waits. */
    cr_assert_eq(rl_begin(r, id, &lim, 5, t + 100000, &in), RL_OK);
    cr_assert_eq(in.remaining_requests, 59);
    rl_free(r);
}

Test(ratelimit, tokens_bucket_and_refunds) {
    RateLimiter *r = rl_new();
    uint8_t id[RL_ID_BYTES];
    mkid(id, 2);
    RlLimits lim = {.tpm = 6000}; /* 100 tokens per second */
    RlInfo in;
    cr_assert_eq(rl_begin(r, id, &lim, 1000, 0, &in), RL_OK);
    cr_assert_eq(in.limit_tokens, 6000);
    cr_assert_eq(in.remaining_tokens, 5000);
    EXPECT_NEAR(in.reset_tokens, 10.0, "reset tokens");
    cr_assert_eq(in.limit_requests, -1);
    cr_assert_eq(rl_begin(r, id, &lim, 5000, 0, &in), RL_OK);
    cr_assert_eq(in.remaining_tokens, 0);
    cr_assert_eq(rl_begin(r, id, &lim, 1, 0, &in), RL_TOKENS);
    EXPECT_NEAR(in.retry_after, 0.01, "retry for one token");
    cr_assert_eq(rl_begin(r, id, &lim, 250, 0.5, &in), RL_TOKENS);
    EXPECT_NEAR(in.retry_after, 2.0, "retry for 250 tokens with 50 in the bucket");
    cr_assert_eq(in.remaining_tokens, 50);
    /* The first request used 400 of its 1000: 600 come back. */
    rl_finish(r, id, 1000, 400, 0.5);
    cr_assert_eq(rl_begin(r, id, &lim, 650, 0.5, &in), RL_OK);
    cr_assert_eq(in.remaining_tokens, 0);
    cr_assert_eq(rl_begin(r, id, &lim, 1, 0.5, &in), RL_TOKENS);
    /* The second used more than estimated (5100 of 5000): charged, the bucket goes below 0. */
    rl_finish(r, id, 5000, 5100, 0.5);
    cr_assert_eq(rl_begin(r, id, &lim, 100, 0.5, &in), RL_TOKENS);
    cr_assert_eq(in.remaining_tokens, 0, "remaining is never negative");
    EXPECT_NEAR(in.retry_after, 2.0, "retry from -100 to 100");
    EXPECT_NEAR(in.reset_tokens, 61.0, "reset from -100");
    /* A refund never overfills. */
    rl_finish(r, id, 650, 0, 100);
    cr_assert_eq(rl_begin(r, id, &lim, 0, 100, &in), RL_OK);
    cr_assert_eq(in.remaining_tokens, 6000);
    rl_free(r);
}

Test(ratelimit, refusal_takes_nothing) {
    RateLimiter *r = rl_new();
    uint8_t id[RL_ID_BYTES];
    mkid(id, 3);
    RlLimits lim = {.rpm = 120, .tpm = 600}; /* 2 req/s, 10 tok/s */
    RlInfo in;
    cr_assert_eq(rl_begin(r, id, &lim, 600, 0, &in), RL_OK);
    cr_assert_eq(in.remaining_requests, 119);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(rl_begin(r, id, &lim, 10, 0, &in), RL_TOKENS);
    cr_assert_eq(in.remaining_requests, 119, "refused requests took request tokens");
    EXPECT_NEAR(in.retry_after, 1.0, "10 tokens at 10/s");
    cr_assert_eq(rl_begin(r, id, &lim, 10, 1, &in), RL_OK);
    cr_assert_eq(in.remaining_requests, 119, "119 + 2 capped at 120, minus one");
    cr_assert_eq(in.remaining_tokens, 0);
    rl_free(r);
}

Test(ratelimit, both_buckets_retry_is_the_larger_wait) {
    RateLimiter *r = rl_new();
    uint8_t id[RL_ID_BYTES];
    mkid(id, 4);
    RlLimits lim = {.rpm = 1, .tpm = 60}; /* 1/60 req/s, 1 tok/s */
    RlInfo in;
    cr_assert_eq(rl_begin(r, id, &lim, 60, 0, &in), RL_OK);
    cr_assert_eq(rl_begin(r, id, &lim, 30, 0, &in), RL_REQUESTS);
    EXPECT_NEAR(in.retry_after, 60.0, "request bucket needs 60 s, tokens 30 s");
    cr_assert_eq(rl_begin(r, id, &lim, 30, 60, &in), RL_OK);
    rl_free(r);
}

Test(ratelimit, cost_above_tpm_never_passes) {
    RateLimiter *r = rl_new();
    uint8_t id[RL_ID_BYTES];
    mkid(id, 5);
    RlLimits lim = {.rpm = 60, .tpm = 100};
    RlInfo in;
    cr_assert_eq(rl_begin(r, id, &lim, 101, 0, &in), RL_TOKENS);
    cr_assert_eq(in.remaining_tokens, 100);
    cr_assert_eq(in.remaining_requests, 60);
    cr_assert_eq(rl_begin(r, id, &lim, 101, 1e6, &in), RL_TOKENS);
    cr_assert_eq(rl_begin(r, id, &lim, 100, 1e6, &in), RL_OK);
    rl_free(r);
}

Test(ratelimit, streams_cap) {
    RateLimiter *r = rl_new();
    uint8_t id[RL_ID_BYTES], other[RL_ID_BYTES];
    mkid(id, 6);
    mkid(other, 7);
    RlLimits lim = {.rpm = 600, .max_streams = 2};
    RlInfo in;
    cr_assert_eq(rl_begin(r, id, &lim, 1, 0, &in), RL_OK);
    cr_assert_eq(rl_begin(r, id, &lim, 1, 0, &in), RL_OK);
    cr_assert_eq(rl_begin(r, id, &lim, 1, 0, &in), RL_STREAMS);
    cr_assert(in.retry_after >= 1.0, "retry_after %g", in.retry_after);
    cr_assert_eq(in.remaining_requests, 598, "a refused stream took a request");
    cr_assert_eq(rl_begin(r, other, &lim, 1, 0, &in), RL_OK, "another key is not capped");
    rl_finish(r, id, 1, 1, 0);
    cr_assert_eq(rl_begin(r, id, &lim, 1, 0, &in), RL_OK);
    cr_assert_eq(rl_begin(r, id, &lim, 1, 0, &in), RL_STREAMS);
    /* Unlimited streams still count, so a later cap applies to open ones. */
    RlLimits open = {0};
    for (int i = 0; i < 3; i++)
        cr_assert_eq(rl_begin(r, other, &open, 1, 0, &in), RL_OK);
    cr_assert_eq(rl_begin(r, other, &lim, 1, 0, &in), RL_STREAMS, "4 open, cap 2");
    rl_free(r);
}

Test(ratelimit, unlimited) {
    RateLimiter *r = rl_new();
    uint8_t id[RL_ID_BYTES];
    mkid(id, 8);
    RlLimits lim = {0};
    RlInfo in;
    for (int i = 0; i < 10000; i++) {
        cr_assert_eq(rl_begin(r, id, &lim, 1 << 20, 0, &in), RL_OK);
        rl_finish(r, id, 1 << 20, 1 << 20, 0);
    }
    cr_assert_eq(in.limit_requests, -1);
    cr_assert_eq(in.remaining_requests, -1);
    cr_assert_eq(in.limit_tokens, -1);
    cr_assert_eq(in.remaining_tokens, -1);
    rl_free(r);
}

Test(ratelimit, limit_changes) {
    RateLimiter *r = rl_new();
    uint8_t id[RL_ID_BYTES];
    mkid(id, 9);
    RlInfo in;
    RlLimits big = {.rpm = 600}, small = {.rpm = 60}, none = {0};
    cr_assert_eq(rl_begin(r, id, &big, 0, 0, &in), RL_OK);
    cr_assert_eq(in.remaining_requests, 599);
    cr_assert_eq(rl_begin(r, id, &small, 0, 0, &in), RL_OK);
    cr_assert_eq(in.limit_requests, 60);
    cr_assert_eq(in.remaining_requests, 59, "a smaller limit clamps the level");
    cr_assert_eq(rl_begin(r, id, &none, 0, 0, &in), RL_OK);
    cr_assert_eq(in.remaining_requests, -1);
    cr_assert_eq(rl_begin(r, id, &small, 0, 0, &in), RL_OK);
    cr_assert_eq(in.remaining_requests, 59, "unlimited -> limited starts full");
    rl_free(r);
}

/* 4096 keys fill the table; a new key evicts the least recently used idle
 * one; every other key keeps its state through thousands of evictions
 * (the backward-shift deletion keeps them reachable). */
Test(ratelimit, table_full_lru) {
    RateLimiter *r = rl_new();
    RlLimits lim = {.rpm = 1}; /* refills 1/60 per second: nothing refills below */
    RlInfo in;
    uint8_t id[RL_ID_BYTES];
    double t = 0;
    for (unsigned k = 0; k < RL_MAX_KEYS; k++) {
        mkid(id, k);
        t += 1e-4;
        cr_assert_eq(rl_begin(r, id, &lim, 0, t, &in), RL_OK, "key %u", k);
        rl_finish(r, id, 0, 0, t);
    }
    /* All exhausted and remembered. */
    for (unsigned k = 0; k < RL_MAX_KEYS; k++) {
        mkid(id, k);
        cr_assert_eq(rl_begin(r, id, &lim, 0, 1 + k * 1e-4, &in), RL_REQUESTS, "key %u", k);
    }
    t = 2;
    /* A new key works; key 0 (least recently used) was evicted, so it starts fresh. */
    mkid(id, 100000);
    cr_assert_eq(rl_begin(r, id, &lim, 0, t, &in), RL_OK);
    rl_finish(r, id, 0, 0, t);
    mkid(id, 0);
    cr_assert_eq(rl_begin(r, id, &lim, 0, t + 1e-4, &in), RL_OK, "key 0 was not evicted");
    rl_finish(r, id, 0, 0, t + 1e-4);
    mkid(id, 2);
    cr_assert_eq(rl_begin(r, id, &lim, 0, t + 2e-4, &in), RL_REQUESTS, "key 2 lost its state");
    /* Churn: 20000 new keys, each exhausted right away. */
    t = 3;
    for (unsigned k = 200000; k < 220000; k++) {
        mkid(id, k);
        t += 1e-4;
        cr_assert_eq(rl_begin(r, id, &lim, 0, t, &in), RL_OK, "new key %u", k);
        rl_finish(r, id, 0, 0, t);
    }
    /* The most recent 4096 are all still found (refused), none duplicated. */
    for (unsigned k = 220000 - RL_MAX_KEYS; k < 220000; k++) {
        mkid(id, k);
        t += 1e-4;
        cr_assert_eq(rl_begin(r, id, &lim, 0, t, &in), RL_REQUESTS, "recent key %u forgotten", k);
    }
    rl_free(r);
}

Test(ratelimit, table_full_of_open_streams) {
    RateLimiter *r = rl_new();
    RlLimits lim = {0};
    RlInfo in;
    uint8_t id[RL_ID_BYTES];
    for (unsigned k = 0; k < RL_MAX_KEYS; k++) {
        mkid(id, k);
        cr_assert_eq(rl_begin(r, id, &lim, 0, k, &in), RL_OK);
    }
    uint8_t extra[RL_ID_BYTES];
    mkid(extra, 999999);
    cr_assert_eq(rl_begin(r, extra, &lim, 0, 5000, &in), RL_STREAMS);
    cr_assert(in.retry_after > 0);
    mkid(id, 1234);
    rl_finish(r, id, 0, 0, 5000);
    cr_assert_eq(rl_begin(r, extra, &lim, 0, 5001, &in), RL_OK);
    /* Key 1234 was the only idle one, so it was the one evicted; others keep their streams. */
    mkid(id, 77);
    RlLimits one = {.max_streams = 1};
    cr_assert_eq(rl_begin(r, id, &one, 0, 5002, &in), RL_STREAMS);
    rl_free(r);
}

typedef struct {
    RateLimiter *r;
    int seed;
} ThreadArg;

static void *hammer(void *p) {
    ThreadArg *a = p;
    RlLimits lim = {.max_streams = 3};
    RlInfo in;
    uint8_t id[RL_ID_BYTES];
    for (int i = 0; i < 20000; i++) {
        mkid(id, (unsigned)(i * 7 + a->seed) % 50);
        if (rl_begin(a->r, id, &lim, 1, i * 1e-3, &in) == RL_OK)
            rl_finish(a->r, id, 1, 1, i * 1e-3);
    }
    return NULL;
}

Test(ratelimit, threads_leave_no_open_streams) {
    RateLimiter *r = rl_new();
    pthread_t th[4];
    ThreadArg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (ThreadArg){r, i};
        cr_assert_eq(pthread_create(&th[i], NULL, hammer, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    RlLimits three = {.max_streams = 3};
    RlInfo in;
    uint8_t id[RL_ID_BYTES];
    for (unsigned k = 0; k < 50; k++) {
        mkid(id, k);
        for (int j = 0; j < 3; j++)
            cr_assert_eq(rl_begin(r, id, &three, 0, 100, &in), RL_OK, "key %u stream %d", k, j);
        cr_assert_eq(rl_begin(r, id, &three, 0, 100, &in), RL_STREAMS);
    }
    rl_free(r);
}

Test(ratelimit, format_reset) {
    /* Go's time.Duration strings (OpenAI shows "1s", "6m0s", "20ms"), rounded up to 1 ms. */
    static const struct {
        double s;
        const char *want;
    } cases[] = {
        {0, "0s"},        {-3, "0s"},           {0.02, "20ms"},     {0.0201, "21ms"},
        {0.0001, "1ms"},  {0.999, "999ms"},     {0.9995, "1s"},     {1, "1s"},
        {1.5, "1.5s"},    {8.64, "8.64s"},      {1.069, "1.069s"},  {59.9999, "1m0s"},
        {60, "1m0s"},     {90, "1m30s"},        {360, "6m0s"},      {61.25, "1m1.25s"},
        {3600, "1h0m0s"}, {3661.5, "1h1m1.5s"}, {7322, "2h2m2s"},   {0.12, "120ms"},
        {NAN, "0s"},      {0.001, "1ms"},       {0.0010001, "2ms"}, {10.1, "10.1s"},
    };
    char buf[32];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rl_format_reset(cases[i].s, buf, sizeof buf);
        cr_assert_str_eq(buf, cases[i].want, "%.10g s -> '%s', want '%s'", cases[i].s, buf,
                         cases[i].want);
    }
    rl_format_reset(INFINITY, buf, sizeof buf);
    cr_assert(buf[0] && strchr(buf, 'h'), "inf -> '%s'", buf);
    /* Too small a buffer gives "", never a truncated number. */
    rl_format_reset(3661.5, buf, 5);
    cr_assert_str_eq(buf, "");
    rl_format_reset(0.02, buf, 5);
    cr_assert_str_eq(buf, "20ms");
}
