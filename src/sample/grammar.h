/* grammar.h - GBNF grammars (the format llama.cpp users write) and a
 * matcher that says which code points may come next.
 *
 * Syntax (llama.cpp's grammars/README.md):
 *   name ::= alternatives         rules; names [A-Za-z0-9-]+; "root" starts
 *   a | b                         alternatives; sequences by juxtaposition
 *   "text"                        a literal (\n \r \t \\ \" \[ \] \xHH
 *                                 \uHHHH \UHHHHHHHH escapes)
 *   [a-z0-9_] [^"\\]  .           character classes, negated, any character
 *   ( ... )  x*  x+  x?           groups and repetition
 *   x{m}  x{m,}  x{m,n}           counted repetition (m, n <= GRAMMAR_MAX_REPEAT)
 *   # comment                     to the end of the line
 * A rule's body may start on the line after "::=" and continues across
 * lines only inside parentheses (a newline ends it elsewhere), as llama.cpp
 * parses it. Repetitions become helper rules (x* -> r ::= x r | empty), so
 * the compiled grammar is rules of alternatives of sequences of terminals
 * (code-point sets) and rule references. Undefined rules, a missing root
 * and left recursion (a rule that can reach itself without consuming a
 * character, which no stack-based matcher can run) are errors that name
 * the rule; every size is bounded by the GRAMMAR_MAX_* limits.
 *
 * Matching is llama.cpp's: the state is a set of stacks of positions, each
 * a way the text so far can be continued; a code point advances the stacks
 * whose next terminal admits it and drops the others. The text is complete
 * when some stack is empty. Deterministic; a state is a value (copyable by
 * grammar_state_copy), for trying a token and going back.
 *
 * Not here: token masks (the sampler's job, over this interface), JSON
 * Schema (a compiler to GBNF text). */
#ifndef CGPT_SAMPLE_GRAMMAR_H
#define CGPT_SAMPLE_GRAMMAR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

#define GRAMMAR_MAX_TEXT (1 << 20)  /* bytes of GBNF */
#define GRAMMAR_MAX_RULES 16384     /* rules, helper rules included */
#define GRAMMAR_MAX_ELEMS (1 << 20) /* compiled elements */
#define GRAMMAR_MAX_REPEAT 1000     /* m and n of x{m,n} */
#define GRAMMAR_MAX_NEST 256        /* nested groups */
#define GRAMMAR_MAX_STACKS 4096     /* live stacks of a state */
#define GRAMMAR_MAX_DEPTH 1024      /* positions on one stack */

typedef struct Grammar Grammar;
typedef struct GrammarState GrammarState;

/* Parse and compile 'text' (len bytes) with start rule 'root' (NULL:
 * "root"). Errors (STATUS_INVALID / STATUS_LIMIT) say what and where
 * (line:column) or which rule. *out is NULL on failure. */
Status grammar_parse(Grammar **out, const char *text, size_t len, const char *root, Err *err);
void grammar_free(Grammar *g);
int grammar_rule_count(const Grammar *g);

/* A fresh state at the start of the grammar. STATUS_LIMIT when the start
 * alone needs more than GRAMMAR_MAX_STACKS stacks. */
Status grammar_state_new(const Grammar *g, GrammarState **out, Err *err);
void grammar_state_free(GrammarState *s);
/* dst := src (same grammar); false when out of memory. */
bool grammar_state_copy(GrammarState *dst, const GrammarState *src);

/* Advance by code point cp. Returns false (the state unchanged) when no
 * stack admits cp, or when the result would exceed the limits. */
bool grammar_accept(GrammarState *s, uint32_t cp);
/* The same over UTF-8 bytes: false at the first code point not admitted
 * or an invalid sequence (the state is then where it stopped). */
bool grammar_accept_utf8(GrammarState *s, const char *text, size_t len);
/* Whether the text so far is a complete sentence of the grammar. */
bool grammar_complete(const GrammarState *s);
/* Whether no code point can follow (complete and nothing else open). */
bool grammar_done(const GrammarState *s);

/* Whether the whole of 'text' is a sentence of g. */
bool grammar_matches(const Grammar *g, const char *text, size_t len);

#endif
