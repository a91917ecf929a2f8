/* lexicon.h - category patterns: weighted regular expressions over the
 * folded forms of a text (normalize.h), the pattern half of the built-in
 * classifier.
 *
 * The source is text, one rule a line ('#' starts a comment):
 *
 *     <category> <weight> <pattern>     a match adds evidence for category
 *     damp <categories> <factor> <pattern>
 *                                       a match multiplies the category's
 *                                       score by factor (benign frames:
 *                                       medical, historical, fictional)
 *     define <NAME> <pattern>           {NAME} in later patterns stands for
 *                                       (?:pattern) (NAME: A-Z and _)
 *     words <category> <weight> <word> [<word> ...]
 *                                       literal words or phrases, each a
 *                                       rule of its own ('*' at the end
 *                                       of a word: any ending; '_' in a
 *                                       phrase: one or more blanks)
 *
 * <category> is a name as /v1/moderations spells it, '*' (all) or a family
 * ending in '*' ("violence*": violence and violence/graphic).
 * A pattern is PCRE2 (UTF, caseless, compiled with JIT) matched with word
 * boundaries around it; a word is folded like the text first, so the list
 * may hold any spelling. A category's score is 1 - prod(1 - weight) over
 * the distinct rules that match in any form of the text, times the
 * factors of the damp rules that match, then clamped into [0, 1].
 *
 * Loading checks every line (lex_load: category names, weights in [0, 1],
 * factors in [0, 1], patterns that compile, LEX_MAX_RULES) and names the
 * line and column of what is wrong. A loaded Lexicon is read-only:
 * lex_score() may run on many threads at once. */
#ifndef CGPT_SAFETY_LEXICON_H
#define CGPT_SAFETY_LEXICON_H

#include <stddef.h>

#include "core/err.h"
#include "safety/normalize.h"
#include "safety/safety.h"

#define LEX_MAX_RULES 20000     /* rules in one lexicon */
#define LEX_MAX_LINE 4096       /* bytes of one line */
#define LEX_MAX_BYTES (4u << 20) /* bytes of a lexicon source */
#define LEX_MAX_DEFINES 128     /* define lines */
#define LEX_MAX_NAME 32         /* bytes of a define's name */
#define LEX_MAX_PATTERN 65536   /* bytes of a pattern once its {NAME}s are expanded */

typedef struct Lexicon Lexicon;

/* Compile src[0..len) ('name' says where it came from in errors); owned
 * result, free with lex_free(). */
Status lex_load(Lexicon **out, const char *name, const char *src, size_t len, Err *err);
void lex_free(Lexicon *lx);
/* How many rules it holds. */
int lex_n_rules(const Lexicon *lx);

/* Score the forms of one text into *out (every category set). 'hits', when
 * not NULL, gets for each category the line of the strongest rule that
 * matched (0: none) - for explaining a verdict. */
Status lex_score(const Lexicon *lx, const NormForms *forms, SafeScores *out,
                 int hits[SAFE_N_CAT], Err *err);

#endif
