/* test_http1.c - the strict HTTP/1.1 framing parser (serve/http1.h): each
 * rule of its contract with a request that breaks it and the status it
 * must get, requests that must pass with the fields and framing they
 * carry, and the incremental contract: a head or a chunked body fed split
 * at every offset gives the same result as fed whole. The expected values
 * are written out by hand from RFC 9112. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "serve/http1.h"

#define LIMIT 1000 /* body limit of these tests */

static int head(const char *raw, H1Request *rq, H1Error *e) {
    memset(e, 0, sizeof *e);
    return h1_parse_head(raw, strlen(raw), LIMIT, rq, e);
}

Test(http1, a_plain_request) {
    H1Request rq;
    H1Error e;
    const char *raw = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\n"
                      "X-Empty:\r\nX-Ows:  \t a b \t\r\n\r\nbody...";
    cr_assert_eq(head(raw, &rq, &e), H1_DONE, "%s", e.message);
    cr_assert_eq(rq.method_len, 4);
    cr_assert(!memcmp(rq.method, "POST", 4));
    cr_assert_eq(rq.target_len, 20);
    cr_assert_eq(rq.minor, 1);
    cr_assert_eq(rq.n_fields, 4);
    cr_assert_eq(rq.body, H1_BODY_LENGTH);
    cr_assert_eq(rq.content_length, 12);
    cr_assert_eq(rq.head_len, strstr(raw, "body") - raw);
    int n;
    const H1Field *f = h1_field(&rq, "x-ows", &n);
    cr_assert(f && n == 1);
    cr_assert_eq(f->value_len, 3, "OWS around the value is not part of it");
    cr_assert(!memcmp(f->value, "a b", 3));
    f = h1_field(&rq, "X-EMPTY", NULL);
    cr_assert(f && f->value_len == 0);
    cr_assert_null(h1_field(&rq, "Transfer-Encoding", &n));
    cr_assert_eq(n, 0);
}

Test(http1, incomplete_heads_ask_for_more) {
    const char *raw = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
    H1Request rq;
    H1Error e;
    for (size_t k = 0; k < strlen(raw); k++)
        cr_assert_eq(h1_parse_head(raw, k, LIMIT, &rq, &e), H1_MORE, "prefix of %zu bytes", k);
    cr_assert_eq(h1_parse_head(raw, strlen(raw), LIMIT, &rq, &e), H1_DONE);
    cr_assert_eq(rq.body, H1_BODY_NONE);
}

Test(http1, lf_only_and_leading_empty_lines) {
    H1Request rq;
    H1Error e;
    cr_assert_eq(head("\r\n\nGET /h HTTP/1.1\nHost: x\nContent-Length: 3\n\nabc", &rq, &e), H1_DONE,
                 "%s", e.message);
    cr_assert_eq(rq.content_length, 3);
    cr_assert_eq(rq.n_fields, 2);
}

/* Each head and the status the contract gives it. */
static const struct {
    const char *raw;
    int status;
} BAD[] = {
    {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
    {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", 400},
    {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400},
    {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 6\r\n\r\n", 400},
    {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5x\r\n\r\n", 400},
    {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: \r\n\r\n", 400},
    {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n", 400},
    {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n", 413},
    {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501},
    {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501},
    {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 400},
    {"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
    {"GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n", 400},
    {"GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n\tb\r\n\r\n", 400},
    {"GET / HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n", 400},
    {"GET / HTTP/1.1\r\nHost: x\r\nX : a\r\n\r\n", 400},
    {"GET / HTTP/1.1\r\nHost: x\r\nX\tY: a\r\n\r\n", 400},
    {"GET / HTTP/1.1\r\nHost: x\r\n: a\r\n\r\n", 400},
    {"GET / HTTP/1.1\r\nHost: x\r\nX: a\rb\r\n\r\n", 400},
    {"GET / HTTP/1.1\r\nHost: x\r\nX: a\x01b\r\n\r\n", 400},
    {"GET / HTTP/1.1\r\nHost: x\r\nX: a\x7f\r\n\r\n", 400},
    {"GET / HTTP/1.1\r\n\r\n", 400},
    {"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
    {"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", 400},
    {"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505},
    {"GET / HTTP/1.2\r\nHost: x\r\n\r\n", 505},
    {"GET / HTTP/1.1x\r\nHost: x\r\n\r\n", 400},
    {"GET / http/1.1\r\nHost: x\r\n\r\n", 400},
    {"GET  / HTTP/1.1\r\nHost: x\r\n\r\n", 400},
    {"GET / HTTP/1.1 \r\nHost: x\r\n\r\n", 400},
    {"G(T / HTTP/1.1\r\nHost: x\r\n\r\n", 400},
    {"GET /a\x01 HTTP/1.1\r\nHost: x\r\n\r\n", 400},
    {"GET /\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n", 400},
    {"GET / HTTP/1.1\rHost: x\r\n\r\n", 400},
    {"POST / HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\n\r\n", 417},
};

Test(http1, each_rule_refused_with_its_status) {
    for (size_t i = 0; i < sizeof BAD / sizeof BAD[0]; i++) {
        H1Request rq;
        H1Error e;
        cr_assert_eq(head(BAD[i].raw, &rq, &e), H1_BAD, "case %zu was accepted: %s", i, BAD[i].raw);
        cr_assert_eq(e.status, BAD[i].status, "case %zu: %d (%s)", i, e.status, e.message);
        cr_assert(e.message[0], "case %zu: no message", i);
    }
}

Test(http1, accepted_framings) {
    H1Request rq;
    H1Error e;
    cr_assert_eq(
        head("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\nContent-Length: 7\r\n\r\n", &rq,
             &e),
        H1_DONE, "equal lengths: %s", e.message);
    cr_assert_eq(rq.content_length, 7);
    cr_assert_eq(head("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 7 , 7,\r\n\r\n", &rq, &e),
                 H1_DONE, "a list of equal lengths: %s", e.message);
    cr_assert_eq(head("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", &rq, &e), H1_DONE);
    cr_assert_eq(rq.body, H1_BODY_NONE);
    cr_assert_eq(head("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: CHUNKED\r\n\r\n", &rq, &e),
                 H1_DONE);
    cr_assert_eq(rq.body, H1_BODY_CHUNKED);
    cr_assert_eq(head("POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n"
                      "\r\n",
                      &rq, &e),
                 H1_DONE);
    cr_assert(rq.expect_continue);
    cr_assert_eq(head("GET / HTTP/1.0\r\n\r\n", &rq, &e), H1_DONE, "HTTP/1.0 needs no Host");
    cr_assert_eq(rq.minor, 0);
    cr_assert_eq(head("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n", &rq, &e),
                 H1_DONE, "exactly the limit");
}

Test(http1, size_limits) {
    H1Request rq;
    H1Error e;
    static char big[H1_MAX_HEAD + 4096];
    /* a request line one byte over the limit: 414, even before its end */
    memset(big, 'a', sizeof big);
    memcpy(big, "GET /", 5);
    cr_assert_eq(h1_parse_head(big, H1_MAX_LINE + 1, LIMIT, &rq, &e), H1_BAD);
    cr_assert_eq(e.status, 414);
    /* a field block past the limit: 431 */
    int n = snprintf(big, sizeof big, "GET / HTTP/1.1\r\nHost: x\r\nX: ");
    memset(big + n, 'b', H1_MAX_HEAD);
    cr_assert_eq(h1_parse_head(big, (size_t)n + H1_MAX_HEAD, LIMIT, &rq, &e), H1_BAD);
    cr_assert_eq(e.status, 431);
    /* too many fields: 431 */
    n = snprintf(big, sizeof big, "GET / HTTP/1.1\r\nHost: x\r\n");
    for (int i = 0; i < H1_MAX_FIELDS; i++)
        n += snprintf(big + n, sizeof big - (size_t)n, "X-%d: 1\r\n", i);
    n += snprintf(big + n, sizeof big - (size_t)n, "\r\n");
    cr_assert_eq(h1_parse_head(big, (size_t)n, LIMIT, &rq, &e), H1_BAD);
    cr_assert_eq(e.status, 431);
}

/* ------------------------------------------------------------ targets */

Test(http1, targets) {
    static const char *const good[] = {
        "/",
        "/health",
        "/v1/models/caf%C3%A9",
        "/health?x=%2e%2e%2F&y=1",
        "/v1/models/",
        "*",
        "http://127.0.0.1:8080/health",
        "/a%20b",
        "/a/b.c/..d/.e",
    };
    static const char *const bad[] = {
        "/v1/models%00",
        "/health%0d%0a",
        "/h%7f",
        "/a/%2e%2e/b",
        "/a/../b",
        "/a/./b",
        "/..",
        "/a%2fb",
        "/a%2Fb",
        "/a%5cb",
        "/a\\b",
        "//a",
        "/a//b",
        "/%c0%af",
        "/%ed%a0%80",
        "/%f4%90%80%80",
        "/%ff",
        "/%e2%82",
        "/a%zz",
        "/a%4",
        "/a%",
        "/h?x=%00",
        "/h?x=%0A",
        "/h#f",
        "h",
        "http://host",
        "",
        "/%2e",
        "/a/%2E%2e",
    };
    size_t off;
    H1Error e;
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        cr_assert_eq(h1_check_target(good[i], strlen(good[i]), &off, &e), 0, "'%s': %s", good[i],
                     e.message);
    cr_assert_eq(h1_check_target("http://h:1/x?y", 14, &off, &e), 0);
    cr_assert_eq(off, 10, "the path of an absolute URI starts after its authority");
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&e, 0, sizeof e);
        cr_assert_eq(h1_check_target(bad[i], strlen(bad[i]), &off, &e), H1_BAD, "'%s' accepted",
                     bad[i]);
        cr_assert_eq(e.status, 400, "'%s'", bad[i]);
    }
}

/* ------------------------------------------------------------ chunked */

/* Decode 'in' whole, or byte by byte when 'split'. Returns the result; the
 * data and the bytes used go to out / *used. */
static int dechunk(const char *in, size_t n, bool split, char *out, size_t *out_len, size_t *used,
                   H1Error *e) {
    H1Chunked c = {0};
    size_t at = 0;
    *out_len = 0;
    for (;;) {
        size_t u = 0, step = split ? (n - at ? 1 : 0) : n - at;
        int r = h1_chunked_feed(&c, in + at, step, &u, LIMIT, out, LIMIT, out_len, e);
        at += u;
        if (r != H1_MORE || at >= n) {
            *used = at;
            return r;
        }
    }
}

Test(http1, chunked_bodies) {
    static const struct {
        const char *in;
        int result, status;
        const char *data; /* decoded, when done */
        size_t used;      /* bytes that belong to the body */
    } cases[] = {
        {"5\r\nhello\r\n0\r\n\r\nNEXT", H1_DONE, 0, "hello", 15},
        {"5;a=b;c\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", H1_DONE, 0, "hello world", 32},
        {"5 ;ext\r\nhello\r\n0\r\n\r\n", H1_DONE, 0, "hello", 20},
        {"0005\r\nhello\r\n0\r\nX-T: 1\r\nY: 2\r\n\r\n", H1_DONE, 0, "hello", 32},
        {"5\nhello\n0\n\n", H1_DONE, 0, "hello", 11},
        {"A\r\n0123456789\r\n0\r\n\r\n", H1_DONE, 0, "0123456789", 20},
        {"5\r\nhello\r\n0\r\n", H1_MORE, 0, NULL, 0},
        {"zz\r\nhello\r\n0\r\n\r\n", H1_BAD, 400, NULL, 0},
        {"\r\nhello\r\n0\r\n\r\n", H1_BAD, 400, NULL, 0},
        {"-5\r\nhello\r\n0\r\n\r\n", H1_BAD, 400, NULL, 0},
        {"5 5\r\nhello\r\n0\r\n\r\n", H1_BAD, 400, NULL, 0},
        {"5 \r\nhello\r\n0\r\n\r\n", H1_BAD, 400, NULL, 0},
        {"0x5\r\nhello\r\n0\r\n\r\n", H1_BAD, 400, NULL, 0},
        {"5\rhello\r\n0\r\n\r\n", H1_BAD, 400, NULL, 0},
        {"3\r\nhello\r\n0\r\n\r\n", H1_BAD, 400, NULL, 0},
        {"5\r\nhello\rX0\r\n\r\n", H1_BAD, 400, NULL, 0},
        {"5;\x01\r\nhello\r\n0\r\n\r\n", H1_BAD, 400, NULL, 0},
        {"5\r\nhello\r\n0\r\nX\x01: 1\r\n\r\n", H1_BAD, 400, NULL, 0},
        {"3E9\r\n", H1_BAD, 413, NULL, 0},                  /* 1001 > LIMIT */
        {"3E8\r\n", H1_MORE, 0, NULL, 0},                   /* 1000: exactly the limit */
        {"FFFFFFFFFFFFFFFFFFFF\r\n", H1_BAD, 413, NULL, 0}, /* said on its 3rd digit */
        {"200\r\n", H1_MORE, 0, NULL, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        for (int split = 0; split < 2; split++) {
            char out[LIMIT];
            size_t out_len, used;
            H1Error e = {0};
            int r = dechunk(cases[i].in, strlen(cases[i].in), split, out, &out_len, &used, &e);
            cr_assert_eq(r, cases[i].result, "case %zu (split %d): %d, '%s'", i, split, r,
                         e.message);
            if (r == H1_BAD)
                cr_assert_eq(e.status, cases[i].status, "case %zu: %d", i, e.status);
            if (r == H1_DONE) {
                cr_assert_eq(out_len, strlen(cases[i].data), "case %zu", i);
                cr_assert(!memcmp(out, cases[i].data, out_len), "case %zu", i);
                cr_assert_eq(used, cases[i].used, "case %zu: used %zu", i, used);
            }
        }
    }
}

Test(http1, chunk_limit_counts_what_came_before) {
    /* 600 + 400 = the limit: fine; 600 + 401: 413 at the second size */
    static char in[2048];
    int n = snprintf(in, sizeof in, "258\r\n");
    memset(in + n, 'a', 600);
    n += 600;
    n += snprintf(in + n, sizeof in - (size_t)n, "\r\n191\r\n");
    H1Chunked c = {0};
    static char out[LIMIT];
    size_t out_len = 0, used;
    H1Error e = {0};
    cr_assert_eq(h1_chunked_feed(&c, in, (size_t)n, &used, LIMIT, out, LIMIT, &out_len, &e),
                 H1_BAD);
    cr_assert_eq(e.status, 413);
    cr_assert_eq(out_len, 600);
}
