/* stop.c - stop strings over streamed text (see stop.h).
 *
 * Each push works on B = held + piece, built in the caller's 'out' buffer
 * (no allocation per piece):
 *   s = earliest start of a complete stop string in B
 *   q = earliest start of a suffix of B that is a proper prefix of some stop
 *       string (|B| when there is none)
 * Any occurrence that is not complete yet must start at or after q (its
 * beginning would otherwise be such a suffix), so if s <= q the first
 * occurrence of the whole text starts at s: release B[0..s) and stop.
 * Otherwise release B[0..q) and hold B[q..): it is shorter than the longest
 * stop string. The held text is rescanned on the next push, which costs at
 * most STOP_MAX_LEN bytes per stop string per piece; the suffix search is
 * quadratic in the stop length only through memcmp over candidate starts
 * whose first byte matches (at most 16 * 1023 memcmps per piece). */
#include "sample/stop.h"

#include <stdlib.h>
#include <string.h>

Status stop_init(StopMatcher *m, const char *const *stops, int n, Err *err) {
    memset(m, 0, sizeof *m);
    if (n < 0 || n > STOP_MAX_STRINGS)
        return err_set(err, STATUS_LIMIT, "stop: %d stop strings (limit %d)", n, STOP_MAX_STRINGS);
    if (n > 0 && !stops)
        return err_set(err, STATUS_INVALID, "stop: stops is NULL with n %d", n);
    for (int i = 0; i < n; i++) {
        if (!stops[i])
            return err_set(err, STATUS_INVALID, "stop: stop string %d is NULL", i);
        size_t len = strnlen(stops[i], STOP_MAX_LEN + 1);
        if (len == 0)
            return err_set(err, STATUS_INVALID, "stop: stop string %d is empty", i);
        if (len > STOP_MAX_LEN)
            return err_set(err, STATUS_LIMIT, "stop: stop string %d longer than %d bytes", i,
                           STOP_MAX_LEN);
    }
    for (int i = 0; i < n; i++) {
        size_t len = strnlen(stops[i], STOP_MAX_LEN);
        m->stops[i] = malloc(len + 1);
        if (!m->stops[i]) {
            stop_free(m);
            return err_set(err, STATUS_NOMEM, "stop: out of memory");
        }
        memcpy(m->stops[i], stops[i], len + 1);
        m->lens[i] = len;
        m->n = i + 1;
        if (len > m->max_len)
            m->max_len = len;
    }
    m->held = malloc(m->max_len > 0 ? m->max_len : 1);
    if (!m->held) {
        stop_free(m);
        return err_set(err, STATUS_NOMEM, "stop: out of memory");
    }
    return STATUS_OK;
}

void stop_free(StopMatcher *m) {
    if (!m)
        return;
    for (int i = 0; i < m->n; i++)
        free(m->stops[i]);
    free(m->held);
    memset(m, 0, sizeof *m);
}

/* Earliest start of a complete stop string in b[0..nb), or nb + 1. */
static size_t first_complete(const StopMatcher *m, const char *b, size_t nb) {
    size_t s = nb + 1;
    for (int i = 0; i < m->n; i++) {
        const char *f = memmem(b, nb, m->stops[i], m->lens[i]);
        if (f && (size_t)(f - b) < s)
            s = (size_t)(f - b);
    }
    return s;
}

/* Earliest start of a suffix of b[0..nb) that is a proper prefix of some
 * stop string, or nb. */
static size_t first_partial(const StopMatcher *m, const char *b, size_t nb) {
    size_t q = nb;
    for (int i = 0; i < m->n; i++) {
        size_t k = m->lens[i] - 1;
        if (k > nb)
            k = nb;
        for (; k > 0 && nb - k < q; k--)
            if (b[nb - k] == m->stops[i][0] && memcmp(b + nb - k, m->stops[i], k) == 0) {
                q = nb - k;
                break;
            }
    }
    return q;
}

size_t stop_push(StopMatcher *m, const char *text, size_t len, char *out, bool *hit) {
    *hit = m->done;
    if (m->done)
        return 0;
    if (m->n == 0) {
        if (len)
            memcpy(out, text, len);
        return len;
    }
    size_t nb = m->n_held + len;
    if (m->n_held)
        memcpy(out, m->held, m->n_held);
    if (len)
        memcpy(out + m->n_held, text, len);
    size_t s = first_complete(m, out, nb);
    size_t q = first_partial(m, out, nb);
    if (s <= q) {
        m->done = true;
        m->n_held = 0;
        *hit = true;
        return s;
    }
    m->n_held = nb - q;
    memcpy(m->held, out + q, m->n_held);
    return q;
}

size_t stop_flush(StopMatcher *m, char *out) {
    if (m->done || m->n_held == 0)
        return 0;
    size_t n = m->n_held;
    size_t s = first_complete(m, m->held, n);
    if (s < n) {
        n = s;
        m->done = true;
    }
    memcpy(out, m->held, n);
    m->n_held = 0;
    return n;
}
