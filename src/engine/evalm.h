/* evalm.h - what `cgpt eval` measures, without the printing: SQuAD-style
 * answer normalisation, exact match and token F1, the records of a held-out
 * chat file and a text file, the trivial most-frequent-reply baseline, and
 * negative log-likelihood of a reply given its prompt (reusing the KV
 * prefix a GenSession already holds).
 *
 * Metric definitions (SQuAD v2.0's evaluation script, written down here so
 * that tests can check them against an independent implementation):
 *   normalize(s) = white_space_fix(remove_articles(remove_punc(lower(s))))
 *     lower:           as Python's str.lower() for ASCII, Latin-1, Latin
 *                      Extended-A (except U+0130), basic Greek (except the
 *                      final-sigma rule: capital sigma always becomes U+03C3),
 *                      basic Cyrillic, Roman numerals and fullwidth Latin;
 *                      other scripts keep their case (the documented
 *                      deviation: every mapping here keeps the UTF-8 length)
 *     remove_punc:     drop the 32 ASCII punctuation characters
 *                      (Python's string.punctuation)
 *     remove_articles: a whole word "a", "an" or "the" becomes one space;
 *                      "whole word" as Python's \b: the neighbours are not
 *                      word characters (ASCII letters and digits, and every
 *                      non-ASCII character except whitespace, controls,
 *                      combining marks and the punctuation/symbol blocks
 *                      listed in evalm.c)
 *     white_space_fix: split at Unicode whitespace (Python's str.split()),
 *                      join with single spaces
 *   exact_match(p, r) = normalize(p) == normalize(r)
 *   f1(p, r): tokens are normalize(x) split at spaces; common = size of the
 *     multiset intersection; if either side has no tokens, f1 = 1 when both
 *     have none, else 0; if common == 0, f1 = 0; else P = common/|p|,
 *     R = common/|r|, f1 = 2PR/(P+R).
 * Invalid UTF-8 bytes are kept as they are and count as non-word,
 * non-space characters.
 *
 * Nothing here prints. Errors from records name the field and the limit;
 * the caller adds file:line. */
#ifndef CGPT_ENGINE_EVALM_H
#define CGPT_ENGINE_EVALM_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chat/chat.h"
#include "core/err.h"
#include "engine/generate.h"
#include "tokenizer/tokenizer.h"

#define EVALM_MAX_LINE_BYTES (16u << 20)   /* bytes of one JSON line (record) */
#define EVALM_MAX_MESSAGES 1024            /* messages in one chat record */
#define EVALM_MAX_RECIPE_BYTES 256         /* bytes of a recipe name */
#define EVALM_MAX_RECIPES 65536            /* distinct recipes in one file */
#define EVALM_MAX_ANSWER_BYTES (16u << 20) /* bytes of a prediction or reference scored */
#define EVALM_DEFAULT_RECIPE "default"     /* recipe of a record without one */

/* ---- metrics ---------------------------------------------------------- */

/* Normalise s[0..len) into 'out', which must have room for len + 1 bytes
 * (the result is never longer than the input); NUL-terminates and returns
 * the result's length. */
size_t evalm_normalize(const char *s, size_t len, char *out);

typedef struct {
    double exact_match; /* 0 or 1 */
    double f1;          /* [0, 1] */
} EvalmScore;

/* Exact match and token F1 of a prediction against a reference. STATUS_LIMIT
 * when either is longer than EVALM_MAX_ANSWER_BYTES, STATUS_NOMEM. */
Status evalm_score(const char *pred, size_t pred_len, const char *ref, size_t ref_len,
                   EvalmScore *out, Err *err);

/* ---- records ----------------------------------------------------------- */

/* One line of a chat file:
 *   {"messages": [{"role":..,"content":..}, ...], "recipe": "name",
 *    "checkable": true|false}
 * The last message is the assistant reply to predict (its content a
 * string); the messages before it are the prompt. "recipe" defaults to
 * EVALM_DEFAULT_RECIPE, "checkable" to false; other keys are ignored. */
typedef struct {
    json_t *messages; /* owned: the whole array */
    json_t *prompt;   /* owned: array of the messages before the last (may be empty) */
    char *reply;      /* owned, NUL-terminated; reply_len bytes (the last message's content) */
    size_t reply_len;
    char *recipe; /* owned, NUL-terminated */
    bool checkable;
} EvalmChat;

/* Parse one line (len bytes, no newline needed). On failure STATUS_FORMAT /
 * STATUS_LIMIT with what is wrong ("\"messages\" is missing", "the last
 * message has role \"user\", not \"assistant\"", ...) and 'r' zeroed. */
Status evalm_parse_chat(const char *line, size_t len, EvalmChat *r, Err *err);
void evalm_chat_free(EvalmChat *r);

/* One line of a text file: {"text": "...", ...}. *text (owned, free()) gets
 * the document, *n its length. */
Status evalm_parse_text(const char *line, size_t len, char **text, size_t *n, Err *err);

/* True for a line of only spaces, tabs and CRs (skipped by readers). */
bool evalm_line_blank(const char *line, size_t len);

/* The token ids of a chat record, as the trainer's chat-tuning targets
 * (train/tdata.h) define them:
 *   prompt: the template over r->prompt with the generation prompt (BOS as
 *           the model says) - what greedy decoding starts from;
 *   ids:    the template over all messages without the generation prompt;
 *   first:  where prompt and ids stop agreeing (at least 1): ids[first..)
 *           are the reply's tokens with the end-of-turn markup the template
 *           writes after it, the tokens chat perplexity scores. */
typedef struct {
    int32_t *prompt; /* owned, (n_prompt) */
    int n_prompt;
    int32_t *ids; /* owned, (n_ids) */
    int n_ids;
    int first;
} EvalmChatIds;

/* STATUS_INVALID when the prompt renders to no tokens; template and
 * tokenizer errors as chat_tokenize(). 'out' is zeroed on failure. */
Status evalm_chat_tokens(const ChatFormat *f, const Tokenizer *t, const EvalmChat *r,
                         EvalmChatIds *out, Err *err);
void evalm_chat_ids_free(EvalmChatIds *c);

/* ---- per-recipe tallies ------------------------------------------------ */

typedef struct {
    char *name;     /* owned by the table */
    long n_records; /* records of the recipe that were scored for perplexity */
    long n;         /* checkable records generated and scored */
    double em, f1;  /* sums over the n */
    double base_em, base_f1;
    double nll; /* chat perplexity: summed NLL (nats) over n_tokens */
    long n_tokens;
} EvalmRecipe;

typedef struct EvalmTable EvalmTable;

EvalmTable *evalm_table_new(Err *err); /* owned: evalm_table_free(), NULL + err on OOM */
void evalm_table_free(EvalmTable *t);
/* The tally of recipe 'name' (NUL-terminated), added (zeroed) when new.
 * View valid until the next evalm_table_get() or evalm_table_free().
 * STATUS_LIMIT past EVALM_MAX_RECIPES. */
Status evalm_table_get(EvalmTable *t, const char *name, EvalmRecipe **out, Err *err);
/* All recipes, sorted by name (bytewise); *n gets the count. View valid
 * until the next evalm_table_get() or evalm_table_free(). */
EvalmRecipe *evalm_table_sorted(EvalmTable *t, int *n);

/* ---- the trivial baseline ---------------------------------------------- */

/* Per recipe, the most frequent reference reply of a training file (ties:
 * the bytewise smallest, which for UTF-8 is code point order). */
typedef struct EvalmBaseline EvalmBaseline;

EvalmBaseline *evalm_baseline_new(Err *err); /* owned; NULL + err on OOM */
void evalm_baseline_free(EvalmBaseline *b);
/* Count one reply (copied) of 'recipe'. STATUS_LIMIT past EVALM_MAX_RECIPES. */
Status evalm_baseline_add(EvalmBaseline *b, const char *recipe, const char *reply, size_t reply_len,
                          Err *err);
/* The baseline reply for 'recipe' (view valid until the next add or free;
 * *len its length), or NULL when the training file had no such recipe. */
const char *evalm_baseline_get(const EvalmBaseline *b, const char *recipe, size_t *len);

/* ---- likelihood --------------------------------------------------------- */

/* Adds -log p(ids[i] | ids[<i]) for i in [first, n) to *nll, counting them
 * in *count (1 <= first < n <= the session's context). Unlike gen_score()
 * the session's cache is reused: the prefix it shares with ids is not fed
 * again, and afterwards it holds ids[0..n-1) (so a gen_generate() on
 * ids[0..first) recomputes a single token). The numbers are those of
 * gen_score() (a row's logits do not depend on its batch). */
Status evalm_score_tokens(GenSession *s, const int32_t *ids, int n, int first, double *nll,
                          long *count, Err *err);

/* Perplexity terms of one document's ids (without BOS): every token that
 * has something before it is predicted once. A document longer than the
 * context (the session's) is cut into pieces: with bos >= 0 each piece is
 * bos + the next cap-1 ids, all of them predicted; with bos < 0 pieces of
 * cap ids overlap by one, the first id of each being context only. Adds to
 * *nll / *count as gen_score() (which it calls; the cache is reset). */
Status evalm_score_text(GenSession *s, const int32_t *ids, size_t n, int32_t bos, double *nll,
                        long *count, Err *err);

#endif
