/* moderate.h - a classifier under a policy: what the server and the chat
 * call to check a text, and what they get back (scores, the action, which
 * categories, a hash to audit by).
 *
 * mod_check() never fails: a classifier error or timeout becomes the
 * policy's on_error action (block by default), with 'error' set and every
 * category flagged, so the caller cannot forget the fail-closed rule.
 *
 * Verdicts are cached by the BLAKE2b-256 hash of (direction, the fold of
 * the text, the context's fold) - the full normalised input, so two texts
 * share a verdict only when they read the same (MOD_CACHE_ENTRIES, least
 * recently used replaced). A chat request's earlier messages are checked
 * once, not on every turn.
 *
 * Streaming output (ModStream): the reply so far is checked in windows:
 * each check reads from MOD_STREAM_OVERLAP bytes before the end of the
 * last window to the end, so words split across chunks are caught without
 * re-reading the whole reply each time. Checks come every MOD_STREAM_FIRST
 * bytes at the reply's start (its first words wait little) and every
 * MOD_STREAM_EVERY bytes after, and at the end. */
#ifndef CGPT_SAFETY_MODERATE_H
#define CGPT_SAFETY_MODERATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "safety/classify.h"
#include "safety/policy.h"

#define MOD_CACHE_ENTRIES 4096   /* verdicts kept */
#define MOD_STREAM_OVERLAP 512   /* bytes a streaming check re-reads */
#define MOD_STREAM_EVERY 64      /* bytes of new reply text between streaming checks */
#define MOD_STREAM_FIRST 16      /* ... while fewer than MOD_STREAM_EVERY bytes were checked */
#define MOD_HASH_BYTES 32

typedef struct Moderator Moderator;

typedef struct {
    SafeScores scores;
    PolicyVerdict v;
    bool error;                  /* the classifier failed; v per on_error */
    char why[160];               /* the error, when 'error' */
    uint8_t hash[MOD_HASH_BYTES]; /* of the normalised input (BLAKE2b-256) */
    bool cached;
} ModResult;

/* A moderator over 'c' (takes ownership) and a copy of 'p'. */
Status mod_new(Moderator **out, Classifier *c, const Policy *p, Err *err);
void mod_free(Moderator *m);

const Policy *mod_policy(const Moderator *m);
/* The classifier (borrowed). */
const Classifier *mod_classifier(const Moderator *m);
/* The classifier's name ("model" in /v1/moderations). */
const char *mod_name(const Moderator *m);

/* Score t (any direction) under the policy. */
void mod_check(Moderator *m, const SafeText *t, ModResult *out);

/* The scores alone (for /v1/moderations: no policy, no cache). */
Status mod_scores(Moderator *m, const SafeText *t, SafeScores *out, Err *err);

/* Streaming output checks for one reply. Zero it to start. */
typedef struct {
    size_t checked; /* bytes of the reply a check has read through */
} ModStream;

/* Bytes of new reply text the next check waits for. */
size_t mod_stream_step(const ModStream *st);
/* Is a check due for a reply now 'len' bytes long (final: the reply
 * ended)? */
bool mod_stream_due(const ModStream *st, size_t len, bool final);
/* Check reply[0..len) as it stands ('context': the prompt, may be NULL). */
void mod_stream_check(Moderator *m, ModStream *st, const char *reply, size_t len,
                      const char *context, size_t context_len, ModResult *out);

/* One /v1/moderations result: {"flagged", "categories", "category_scores",
 * "category_applied_input_types"} with all 13 keys. 'flagged' and
 * "categories" are the policy's (a category is true when its rule flags
 * or blocks at its score); NULL when out of memory. */
json_t *mod_result_json(const SafeScores *s, const PolicyVerdict *v);

/* Hex of a hash (2 * MOD_HASH_BYTES + 1 bytes). */
void mod_hash_hex(const uint8_t hash[MOD_HASH_BYTES], char *out);

#endif
