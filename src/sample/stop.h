/* stop.h - stop strings over streamed text.
 *
 * Text arrives in pieces (decoded tokens). A stop string may span pieces, so
 * the matcher holds back any suffix of the text that could still become a
 * stop string, and releases it once it cannot. When a stop string appears,
 * the text before it is released and the match is reported; the stop string
 * itself is never emitted.
 *
 *   StopMatcher m; stop_init(&m, stops, n_stops);
 *   for each piece: n = stop_push(&m, piece, len, out, &hit); emit out[0..n)
 *                   if (hit) break;
 *   at the end:    n = stop_flush(&m, out); emit out[0..n)
 *
 * The released text is always the streamed text up to the first occurrence
 * of any stop string (earliest start; when a complete stop string is seen
 * but a longer one starting earlier could still complete, the matcher keeps
 * holding until that is decided), whatever the split into pieces.
 *
 * Bytes, not characters: matching is on bytes, and the matcher only cuts
 * the text at the start of a (possible) stop string occurrence or at the end
 * of what was pushed. A stop string that is valid UTF-8 starts at a
 * character boundary, so when every piece is whole characters (as the
 * incremental detokenizer delivers them), every released chunk is too; the
 * matcher itself never splits a character.
 */
#ifndef CGPT_SAMPLE_STOP_H
#define CGPT_SAMPLE_STOP_H

#include <stdbool.h>
#include <stddef.h>

#include "core/err.h"

#define STOP_MAX_STRINGS 16 /* stop strings per request */
#define STOP_MAX_LEN 1024   /* bytes of one stop string */

typedef struct {
    char *stops[STOP_MAX_STRINGS];
    size_t lens[STOP_MAX_STRINGS];
    int n;
    char *held; /* text held back (a prefix of some stop string) */
    size_t n_held;
    size_t max_len; /* longest stop string */
    bool done;      /* a stop string was found; nothing more is released */
} StopMatcher;

/* Copies the strings. STATUS_LIMIT for too many or too long, STATUS_INVALID
 * for an empty one. On failure 'm' is safe to pass to stop_free(). */
Status stop_init(StopMatcher *m, const char *const *stops, int n, Err *err);
void stop_free(StopMatcher *m);

/* Feed 'len' bytes; writes the releasable text to 'out' (needs capacity
 * len + STOP_MAX_LEN) and returns its length. *hit is set when a stop string
 * completed (then nothing after it is released, and the matcher is done). */
size_t stop_push(StopMatcher *m, const char *text, size_t len, char *out, bool *hit);
/* Release what is held (end of generation without a stop): at most
 * STOP_MAX_LEN bytes into 'out'. If the held text contains a complete stop
 * string (held while a longer one could still have matched), only the text
 * before it is released. */
size_t stop_flush(StopMatcher *m, char *out);

#endif
