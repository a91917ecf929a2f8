/* fuzz_stop.c - libFuzzer target for the stop-string matcher.
 *
 * Input layout: byte 0 -> number of stop strings (1 + b % 4); each stop
 * string is a length byte (1 + b % 8) and that many bytes (the alphabet is
 * folded to 'a'..'d' when bit 7 of the length byte is clear, so overlaps
 * are common); one byte seeds the splits; the rest is the text. The text is
 * streamed with several splits (whole, byte by byte, random cuts with empty
 * pieces, and every split when it is at most 12 bytes long); the released
 * text must equal the text up to the earliest occurrence of any stop string,
 * and a hit must be reported exactly when there is one. Buffers are exactly
 * sized so ASan sees any overrun. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "sample/stop.h"

static size_t reference(const uint8_t *t, size_t n, char stops[][9], int ns, bool *hit) {
    for (size_t i = 0; i < n; i++)
        for (int s = 0; s < ns; s++) {
            size_t l = strlen(stops[s]);
            if (i + l <= n && memcmp(t + i, stops[s], l) == 0) {
                *hit = true;
                return i;
            }
        }
    *hit = false;
    return n;
}

/* Streams t cut where cut[i] is true (after byte i); empties[i] extra empty
 * pieces there. Aborts on any mismatch. */
static void stream(const uint8_t *t, size_t n, const bool *cut, const uint8_t *empties,
                   char stops[][9], int ns) {
    const char *sp[4];
    for (int i = 0; i < ns; i++)
        sp[i] = stops[i];
    bool want_hit;
    size_t want = reference(t, n, stops, ns, &want_hit);
    StopMatcher m;
    if (stop_init(&m, sp, ns, NULL) != STATUS_OK)
        abort();
    char *got = malloc(n + 1);
    size_t n_got = 0, at = 0;
    bool hit = false;
    for (size_t i = 0; i <= n && !hit; i++) {
        if (i < n && !cut[i])
            continue;
        size_t end = i < n ? i + 1 : n;
        size_t len = end - at;
        char *piece = malloc(len ? len : 1), *out = malloc(len + STOP_MAX_LEN);
        memcpy(piece, t + at, len);
        size_t k = stop_push(&m, piece, len, out, &hit);
        if (k > len + STOP_MAX_LEN || n_got + k > n)
            abort();
        memcpy(got + n_got, out, k);
        n_got += k;
        for (int e = 0; e < (empties ? empties[i < n ? i : 0] % 3 : 0) && !hit; e++)
            if (stop_push(&m, NULL, 0, out, &hit) != 0)
                abort();
        free(piece);
        free(out);
        at = end;
    }
    if (!hit) {
        char *out = malloc(STOP_MAX_LEN);
        size_t k = stop_flush(&m, out);
        if (n_got + k > n)
            abort();
        memcpy(got + n_got, out, k);
        n_got += k;
        hit = m.done;
        free(out);
    }
    if (n_got != want || memcmp(got, t, want) != 0 || hit != want_hit)
        abort();
    free(got);
    stop_free(&m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2)
        return 0;
    size_t at = 0;
    int ns = 1 + data[at++] % 4;
    char stops[4][9];
    for (int s = 0; s < ns; s++) {
        if (at >= size)
            return 0;
        uint8_t lb = data[at++];
        size_t l = 1 + lb % 8;
        if (at + l > size)
            return 0;
        for (size_t i = 0; i < l; i++) {
            uint8_t c = data[at + i];
            if (!(lb & 0x80))
                c = (uint8_t)('a' + c % 4);
            stops[s][i] = c ? (char)c : 'a'; /* stop strings are C strings */
        }
        stops[s][l] = '\0';
        at += l;
    }
    if (at >= size)
        return 0;
    uint64_t seed = data[at++];
    const uint8_t *t = data + at;
    size_t n = size - at;
    if (n > 4096)
        return 0;
    bool *cut = calloc(n + 1, 1);
    uint8_t *empties = calloc(n + 1, 1);
    stream(t, n, cut, NULL, stops, ns); /* one piece */
    for (size_t i = 0; i < n; i++)
        cut[i] = true;
    stream(t, n, cut, NULL, stops, ns); /* byte by byte */
    Rng r;
    rng_seed(&r, seed);
    for (int round = 0; round < 8; round++) {
        for (size_t i = 0; i < n; i++) {
            cut[i] = rng_u64(&r) % 3 == 0;
            empties[i] = (uint8_t)rng_u64(&r);
        }
        stream(t, n, cut, empties, stops, ns);
    }
    if (n >= 1 && n <= 12)
        for (uint32_t mask = 0; mask < (1u << (n - 1)); mask++) {
            for (size_t i = 0; i + 1 < n; i++)
                cut[i] = mask >> i & 1;
            cut[n - 1] = false;
            stream(t, n, cut, NULL, stops, ns);
        }
    free(cut);
    free(empties);
    return 0;
}
