/* classify.h - one interface for every moderation classifier: text in,
 * a score per category out (safety.h).
 *
 * Two kinds exist:
 *   - the built-in one (classify_builtin): the text's forms (normalize.h)
 *     scored by the category patterns and word lists compiled into the
 *     library (lexicon.h, data/safety/); no file, no download; paired
 *     (classify_pair) with cgpt's own trained classifier,
 *     models/cgpt-guard.gguf, where that file is there;
 *   - guard models (safety/guard.h): a Llama Guard 3 GGUF prompted with its
 *     own template, its verdict parsed.
 *
 * A classifier may be called from many threads at once. It answers within
 * 'deadline' (perf_now() seconds) or fails with STATUS_BUSY; any failure
 * is decided by the policy's on_error (moderate.h), never by the caller
 * guessing. */
#ifndef CGPT_SAFETY_CLASSIFY_H
#define CGPT_SAFETY_CLASSIFY_H

#include <stdbool.h>
#include <stddef.h>

#include "core/err.h"
#include "safety/safety.h"

/* What is checked. Input checks: 'text' is what the user sent, 'context'
 * NULL. Output checks: 'text' is the model's reply (or the part of it
 * being checked), 'context' the user's last message when known. */
typedef struct {
    SafeDir dir;
    const char *text;
    size_t len;
    const char *context;
    size_t context_len;
} SafeText;

typedef struct Classifier Classifier;
struct Classifier {
    const char *name;  /* the "model" /v1/moderations reports */
    bool uses_context; /* reads SafeText.context (guard models); else it is not passed */
    Status (*score)(Classifier *c, const SafeText *t, double deadline, SafeScores *out, Err *err);
    void (*free)(Classifier *c);
};

/* The built-in classifier; owned, free with classifier_free(). 'extra'
 * (may be NULL) holds more lexicon lines (lexicon.h), read after the
 * compiled-in ones: an operator's own terms. */
Status classify_builtin(Classifier **out, const char *extra, size_t extra_len, Err *err);

/* The built-in classifier with its lexicon from lexicon[0..len) instead of
 * the compiled-in one (tests, and operators who extend it). */
Status classify_builtin_from(Classifier **out, const char *name, const char *lexicon, size_t len,
                             Err *err);

/* Two classifiers as one: 'first' runs on every check; 'second' only on
 * the directions in 'dirs' (bit per SafeDir), where its score b counts as
 * one more piece of evidence of weight 'w', combined as the lexicon
 * combines its rules: s = 1 - (1 - a)(1 - w b). With w = 1 a confident
 * second classifier decides alone; below the policy's threshold it needs
 * the first's evidence too. Both are owned by the result from this call on
 * (freed on failure too); the result's name is first's. Either one's
 * failure is the pair's. */
Status classify_pair(Classifier **out, Classifier *first, Classifier *second, unsigned dirs,
                     float w, Err *err);

static inline void classifier_free(Classifier *c) {
    if (c)
        c->free(c);
}

#endif
