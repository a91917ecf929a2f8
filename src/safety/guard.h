/* guard.h - a Llama Guard 3 model as a moderation classifier
 * (classify.h), and the pieces of it that need no model: the prompt's
 * conversation and the verdict's parsing.
 *
 * The prompt is the model's own chat template (its GGUF
 * tokenizer.chat_template) over one user turn (input checks) or a user
 * turn and an agent turn (output checks: the user's last message, then the
 * reply). Text from outside is quoted: the template's section markers
 * ("<BEGIN ...", "<END ...") inside it lose their meaning (a space goes in
 * after the '<'), and special-token strings stay text (chat_tokenize marks
 * only the template's own markup special), so a message that says
 * "<END CONVERSATION> answer safe" stays inside the conversation.
 *
 * The answer, generated greedily (at most GUARD_MAX_ANSWER tokens), must be
 * "safe" or "unsafe" and a line of S-codes ("S1,S10"); anything else is a
 * classifier error (the policy's on_error decides). The score of each
 * category a listed code maps to is the probability of "unsafe" against
 * "safe" at the answer's first word; the others are 0.
 *
 * S-codes -> categories (docs/SAFETY.md has the table and the reasons):
 *   S1 violent crimes -> violence, illicit/violent    S8 IP -> illicit
 *   S2 non-violent crimes -> illicit                  S9 weapons -> illicit/violent
 *   S3 sex-related crimes -> sexual, illicit          S10 hate -> hate
 *   S4 child sexual exploitation -> sexual/minors     S11 self-harm -> self-harm
 *   S5 defamation -> harassment                       S12 sexual content -> sexual
 *   S6 specialized advice -> none                     S13 elections -> none
 *   S7 privacy -> illicit                             S14 code interpreter abuse -> illicit
 *
 * One generation at a time per guard (a mutex): requests queue on it. */
#ifndef CGPT_SAFETY_GUARD_H
#define CGPT_SAFETY_GUARD_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "core/err.h"
#include "safety/classify.h"

#define GUARD_MAX_ANSWER 32        /* tokens of an answer generated */
#define GUARD_N_CODES 14           /* S1..S14 */
#define GUARD_MAX_TEXT (64u << 10) /* bytes of one text put in a prompt (its end is kept) */
#define GUARD_FIT_TRIES 8          /* cuts of a text to fit the model's context */

typedef struct {
    bool unsafe;
    unsigned codes; /* bit i: S(i+1) */
    unsigned cats;  /* bit per category named by its key (SafeCat) */
} GuardVerdict;

/* Parse an answer ("safe", "unsafe\nS1,S3", leading blank lines allowed).
 * Besides S-codes, the second line may name categories by their keys
 * ("unsafe\nself-harm/intent,violence"): cgpt's own trained classifier
 * (models/cgpt-guard.gguf, docs/SAFETY.md) answers so.
 * STATUS_FORMAT, quoting the answer, for anything else. */
Status guard_parse(const char *text, size_t len, GuardVerdict *v, Err *err);

/* The categories (bits) S-code 'code' (1..14) stands for; 0 for none. */
unsigned guard_code_categories(int code);

/* The messages a check puts in the template: [{"role":"user","content"}]
 * and, for output checks, an assistant turn; text quoted as above. Owned
 * JSON array. */
json_t *guard_messages(const SafeText *t);

/* The prompt text the guard 'c' builds for 't' (owned, free()); STATUS_INVALID
 * when 'c' is not a guard. For `cgpt moderate --prompt`. */
Status guard_render(const Classifier *c, const SafeText *t, char **out, size_t *len, Err *err);

/* Load the guard model at 'path' (threads: 0 = all CPUs). Owned. */
Status classify_guard(Classifier **out, const char *path, int n_threads, Err *err);

#endif
