/* test_stop.c - stop strings over streamed text. The reference answer is the
 * non-streaming one: the text up to the earliest start of any stop string
 * (computed here by brute force over positions); every way of splitting the
 * text into pieces, empty pieces included, must release exactly that. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "sample/stop.h"

/* Length of the non-streaming answer. */
static size_t ref_stop(const char *text, size_t len, const char *const *stops, int n, bool *hit) {
    for (size_t i = 0; i < len; i++)
        for (int s = 0; s < n; s++) {
            size_t l = strlen(stops[s]);
            if (i + l <= len && memcmp(text + i, stops[s], l) == 0) {
                *hit = true;
                return i;
            }
        }
    *hit = false;
    return len;
}

/* Streams text cut at the offsets in cuts[0..n_cuts) (ascending, may
 * repeat: an empty piece). Writes the released text to 'got'. */
static size_t stream(const char *text, size_t len, const size_t *cuts, int n_cuts,
                     const char *const *stops, int n, char *got, bool *hit) {
    StopMatcher m;
    Err err;
    cr_assert_eq(stop_init(&m, stops, n, &err), STATUS_OK, "%s", err.msg);
    char *out = malloc(len + STOP_MAX_LEN + 1);
    size_t n_got = 0, at = 0;
    *hit = false;
    for (int i = 0; i <= n_cuts && !*hit; i++) {
        size_t end = i < n_cuts ? cuts[i] : len;
        size_t k = stop_push(&m, text + at, end - at, out, hit);
        cr_assert_leq(k, end - at + m.max_len);
        memcpy(got + n_got, out, k);
        n_got += k;
        at = end;
    }
    if (!*hit) {
        size_t k = stop_flush(&m, out);
        memcpy(got + n_got, out, k);
        n_got += k;
        *hit = m.done;
    }
    free(out);
    stop_free(&m);
    return n_got;
}

static void check_all_splits(const char *text, const char *const *stops, int n) {
    size_t len = strlen(text);
    bool want_hit;
    size_t want = ref_stop(text, len, stops, n, &want_hit);
    char got[256];
    size_t cuts[32];
    cr_assert_lt(len, 20);
    for (unsigned mask = 0; mask < (1u << (len > 0 ? len - 1 : 0)); mask++) {
        int nc = 0;
        for (size_t i = 1; i < len; i++)
            if (mask >> (i - 1) & 1)
                cuts[nc++] = i;
        bool hit;
        size_t k = stream(text, len, cuts, nc, stops, n, got, &hit);
        if (k != want || memcmp(got, text, k) != 0 || (hit && !want_hit)) {
            cr_assert_fail("text '%s' split mask %#x: released '%.*s' (%zu bytes), want '%.*s'",
                           text, mask, (int)k, got, k, (int)want, text);
            return;
        }
    }
}

Test(stop, spans_pieces) {
    const char *stops[] = {"</s>"};
    const char *pieces[] = {"Hello <", "/", "s", "> tail"};
    StopMatcher m;
    Err err;
    cr_assert_eq(stop_init(&m, stops, 1, &err), STATUS_OK);
    char out[64 + STOP_MAX_LEN];
    bool hit;
    cr_assert_eq(stop_push(&m, pieces[0], 7, out, &hit), 6); /* "Hello " ; "<" held */
    cr_assert(!hit);
    cr_assert_eq(memcmp(out, "Hello ", 6), 0);
    cr_assert_eq(m.n_held, 1);
    cr_assert_eq(stop_push(&m, pieces[1], 1, out, &hit), 0);
    cr_assert_eq(stop_push(&m, pieces[2], 1, out, &hit), 0);
    cr_assert_eq(m.n_held, 3);
    cr_assert_eq(stop_push(&m, pieces[3], 6, out, &hit), 0);
    cr_assert(hit);
    /* done: nothing more, ever */
    cr_assert_eq(stop_push(&m, "x", 1, out, &hit), 0);
    cr_assert(hit);
    cr_assert_eq(stop_flush(&m, out), 0);
    stop_free(&m);
}

Test(stop, held_text_released_when_it_cannot_match) {
    const char *stops[] = {"</s>"};
    StopMatcher m;
    Err err;
    cr_assert_eq(stop_init(&m, stops, 1, &err), STATUS_OK);
    char out[64 + STOP_MAX_LEN];
    bool hit;
    cr_assert_eq(stop_push(&m, "a</", 3, out, &hit), 1);
    cr_assert_eq(stop_push(&m, "x", 1, out, &hit), 3);
    cr_assert_eq(memcmp(out, "</x", 3), 0);
    cr_assert_eq(m.n_held, 0);
    /* flush releases a partial match at the end */
    cr_assert_eq(stop_push(&m, "<", 1, out, &hit), 0);
    cr_assert_eq(stop_flush(&m, out), 1);
    cr_assert_eq(out[0], '<');
    stop_free(&m);
}

Test(stop, overlapping_candidates_and_prefix_stops) {
    const char *s1[] = {"ab", "abc"};
    check_all_splits("xxabcd", s1, 2);
    check_all_splits("xxab", s1, 2);
    const char *s2[] = {"abc", "ab"};
    check_all_splits("zabc", s2, 2);
    const char *s3[] = {"abcd", "c"}; /* complete "c" inside a pending "abcd" */
    check_all_splits("xabcd", s3, 2);
    check_all_splits("xabce", s3, 2);
    check_all_splits("xabc", s3, 2);
    const char *s4[] = {"aab"}; /* self-overlapping prefix */
    check_all_splits("aaaab", s4, 1);
    check_all_splits("aaaaa", s4, 1);
}

Test(stop, complete_match_inside_pending_longer_one) {
    /* "c" completes while "abcd" (starting earlier) may still complete: the
     * matcher must hold; if "abcd" completes the answer is "x", else "xab". */
    const char *stops[] = {"abcd", "c"};
    StopMatcher m;
    Err err;
    char out[64 + STOP_MAX_LEN];
    bool hit;
    cr_assert_eq(stop_init(&m, stops, 2, &err), STATUS_OK);
    cr_assert_eq(stop_push(&m, "xabc", 4, out, &hit), 1);
    cr_assert(!hit);
    cr_assert_eq(stop_push(&m, "d", 1, out, &hit), 0);
    cr_assert(hit);
    stop_free(&m);
    cr_assert_eq(stop_init(&m, stops, 2, &err), STATUS_OK);
    cr_assert_eq(stop_push(&m, "xabc", 4, out, &hit), 1);
    cr_assert_eq(stop_push(&m, "e", 1, out, &hit), 2);
    cr_assert(hit);
    cr_assert_eq(memcmp(out, "ab", 2), 0);
    stop_free(&m);
    /* and at the end of the text flush stops before the held "c" */
    cr_assert_eq(stop_init(&m, stops, 2, &err), STATUS_OK);
    cr_assert_eq(stop_push(&m, "xabc", 4, out, &hit), 1);
    cr_assert_eq(stop_flush(&m, out), 2);
    cr_assert_eq(memcmp(out, "ab", 2), 0);
    stop_free(&m);
}

Test(stop, empty_pieces_and_no_stops) {
    const char *stops[] = {"END"};
    StopMatcher m;
    Err err;
    char out[64 + STOP_MAX_LEN];
    bool hit;
    cr_assert_eq(stop_init(&m, stops, 1, &err), STATUS_OK);
    cr_assert_eq(stop_push(&m, NULL, 0, out, &hit), 0);
    cr_assert_eq(stop_push(&m, "EN", 2, out, &hit), 0);
    cr_assert_eq(stop_push(&m, "", 0, out, &hit), 0);
    cr_assert_eq(m.n_held, 2);
    cr_assert_eq(stop_push(&m, "D", 1, out, &hit), 0);
    cr_assert(hit);
    stop_free(&m);
    /* no stop strings: everything passes straight through */
    cr_assert_eq(stop_init(&m, NULL, 0, &err), STATUS_OK);
    cr_assert_eq(stop_push(&m, "abc", 3, out, &hit), 3);
    cr_assert(!hit);
    cr_assert_eq(stop_flush(&m, out), 0);
    stop_free(&m);
}

Test(stop, pieces_longer_than_max_len) {
    size_t len = 3 * STOP_MAX_LEN + 17;
    char *text = malloc(len), *out = malloc(len + STOP_MAX_LEN);
    memset(text, 'a', len);
    const char *stops[] = {"ab"};
    StopMatcher m;
    Err err;
    bool hit;
    cr_assert_eq(stop_init(&m, stops, 1, &err), STATUS_OK);
    cr_assert_eq(stop_push(&m, text, len, out, &hit), len - 1);
    text[5] = 'b';
    size_t k = stop_push(&m, text, len, out, &hit);
    cr_assert(hit);
    cr_assert_eq(k, 5); /* held "a" + "aaaa" then "ab" at 5 */
    stop_free(&m);
    /* a stop string of exactly STOP_MAX_LEN bytes split over long pieces */
    char *big = malloc(STOP_MAX_LEN + 1);
    memset(big, 'z', STOP_MAX_LEN);
    big[STOP_MAX_LEN] = '\0';
    const char *stops2[] = {big};
    cr_assert_eq(stop_init(&m, stops2, 1, &err), STATUS_OK);
    memset(text, 'z', len);
    text[0] = 'q';
    k = stop_push(&m, text, 10, out, &hit);
    cr_assert_eq(k, 1);
    cr_assert(!hit);
    k = stop_push(&m, text + 10, len - 10, out, &hit);
    cr_assert(hit);
    cr_assert_eq(k, 0);
    stop_free(&m);
    free(big);
    free(text);
    free(out);
}

Test(stop, init_limits) {
    StopMatcher m;
    Err err;
    const char *many[STOP_MAX_STRINGS + 1];
    for (int i = 0; i <= STOP_MAX_STRINGS; i++)
        many[i] = "x";
    cr_assert_eq(stop_init(&m, many, STOP_MAX_STRINGS + 1, &err), STATUS_LIMIT);
    stop_free(&m);
    cr_assert_eq(stop_init(&m, many, STOP_MAX_STRINGS, &err), STATUS_OK);
    stop_free(&m);
    const char *empty[] = {"a", ""};
    cr_assert_eq(stop_init(&m, empty, 2, &err), STATUS_INVALID);
    cr_assert(strstr(err.msg, "empty"), "%s", err.msg);
    stop_free(&m);
    char *big = malloc(STOP_MAX_LEN + 2);
    memset(big, 'z', STOP_MAX_LEN + 1);
    big[STOP_MAX_LEN + 1] = '\0';
    const char *toolong[] = {big};
    cr_assert_eq(stop_init(&m, toolong, 1, &err), STATUS_LIMIT);
    stop_free(&m);
    stop_free(NULL);
    free(big);
}

/* UTF-8: pieces of whole characters and UTF-8 stop strings; every chunk the
 * matcher releases ends on a character boundary. */
Test(stop, utf8_chunks_stay_whole) {
    const char *stops[] = {"\xc3\xa9t\xc3\xa9", "\xe2\x82\xac!"}; /* "été", "€!" */
    const char *pieces[] = {"caf",       "\xc3\xa9",     " \xc3\xa9", "t",
                            "\xc3\xa0 ", "\xe2\x82\xac", "5 ",        "\xf0\x9f\x98\x80",
                            "\xc3\xa9",  "t\xc3\xa9",    "x"};
    StopMatcher m;
    Err err;
    char out[64 + STOP_MAX_LEN];
    bool hit = false;
    cr_assert_eq(stop_init(&m, stops, 2, &err), STATUS_OK);
    char all[256];
    size_t n_all = 0;
    for (size_t i = 0; i < sizeof pieces / sizeof *pieces && !hit; i++) {
        size_t k = stop_push(&m, pieces[i], strlen(pieces[i]), out, &hit);
        if (k > 0) {
            /* the last character of the chunk is complete */
            size_t j = k - 1;
            while (j > 0 && ((unsigned char)out[j] & 0xC0) == 0x80)
                j--;
            unsigned char lead = (unsigned char)out[j];
            size_t want = lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
            cr_assert_eq(k - j, want, "piece %zu: chunk ends inside a character", i);
        }
        memcpy(all + n_all, out, k);
        n_all += k;
    }
    cr_assert(hit);
    const char *want = "caf\xc3\xa9 \xc3\xa9t\xc3\xa0 \xe2\x82\xac"
                       "5 \xf0\x9f\x98\x80";
    cr_assert_eq(n_all, strlen(want));
    cr_assert_eq(memcmp(all, want, n_all), 0);
    stop_free(&m);
}

/* Random short texts over a small alphabet, random stop sets, every split,
 * plus random splits with empty pieces. */
Test(stop, exhaustive_small_splits) {
    Rng r;
    rng_seed(&r, 2024);
    const char alpha[] = "abc";
    for (int iter = 0; iter < 400; iter++) {
        char text[16];
        size_t len = rng_u64(&r) % 11;
        for (size_t i = 0; i < len; i++)
            text[i] = alpha[rng_u64(&r) % 3];
        text[len] = '\0';
        char sbuf[3][8];
        const char *stops[3];
        int n = 1 + (int)(rng_u64(&r) % 3);
        for (int s = 0; s < n; s++) {
            size_t l = 1 + rng_u64(&r) % 4;
            for (size_t i = 0; i < l; i++)
                sbuf[s][i] = alpha[rng_u64(&r) % 3];
            sbuf[s][l] = '\0';
            stops[s] = sbuf[s];
        }
        check_all_splits(text, stops, n);
        /* random splits with empty pieces */
        bool want_hit, hit;
        size_t want = ref_stop(text, len, stops, n, &want_hit);
        for (int t = 0; t < 20; t++) {
            size_t cuts[24];
            int nc = 0;
            size_t at = 0;
            while (nc < 20 && at <= len) {
                at += rng_u64(&r) % 3; /* 0: an empty piece */
                if (at > len)
                    break;
                cuts[nc++] = at;
            }
            char got[64];
            size_t k = stream(text, len, cuts, nc, stops, n, got, &hit);
            cr_assert(k == want && memcmp(got, text, k) == 0 && hit == want_hit,
                      "text '%s': released %zu bytes, want %zu", text, k, want);
        }
    }
}
