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
 * Not here: applying a mask to logits (the sampler), JSON Schema (a
 * compiler to GBNF text). */
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
/* Advance by bytes, which may end inside a code point (a token's piece
 * often does): the unfinished bytes are kept while some stack admits a
 * code point they can still become, and the next bytes complete it. False
 * at the first byte no stack can take (the state is then where it
 * stopped). */
bool grammar_accept_bytes(GrammarState *s, const char *bytes, size_t len);
/* grammar_accept_bytes of whole UTF-8 text: false also when it ends inside
 * a code point. */
bool grammar_accept_utf8(GrammarState *s, const char *text, size_t len);
/* Whether the text so far is a complete sentence of the grammar (never
 * inside an unfinished code point). */
bool grammar_complete(const GrammarState *s);
/* Whether no code point can follow (complete and nothing else open). */
bool grammar_done(const GrammarState *s);

/* Whether the whole of 'text' is a sentence of g. */
bool grammar_matches(const Grammar *g, const char *text, size_t len);

/* Token masks. A GrammarVocab is a vocabulary's pieces as a byte trie
 * (built once per model); a GrammarMasker is one sequence's scratch (a
 * state per trie depth), so a warm mask allocates nothing. pieces[i]
 * (lens[i] bytes) is the text token i adds; eog[i] marks the tokens that
 * end generation (not in the trie: allowed exactly when the state is
 * complete). An empty piece that does not end generation (a control token)
 * is never allowed. */
typedef struct GrammarVocab GrammarVocab;
typedef struct GrammarMasker GrammarMasker;
Status grammar_vocab_new(GrammarVocab **out, int n, const char *const *pieces, const size_t *lens,
                         const uint8_t *eog, Err *err);
void grammar_vocab_free(GrammarVocab *v);
Status grammar_masker_new(GrammarMasker **out, const GrammarVocab *v, Err *err);
void grammar_masker_free(GrammarMasker *m);
/* allowed[i] = 1 when token i may come next in s (its whole piece is
 * accepted, an unfinished last code point included, or it ends generation
 * and s is complete), else 0, for the vocabulary's n tokens. Returns how
 * many are allowed. Walks the trie once, pruning at the first byte no
 * stack takes. */
int grammar_mask(GrammarMasker *m, const GrammarState *s, uint8_t *allowed);
/* Whether token tok may come next in s (as grammar_mask would say for it),
 * trying its piece alone: the check of a drawn token. Allocates nothing
 * once the masker and the state are warm. */
bool grammar_masker_allows(GrammarMasker *m, const GrammarState *s, int32_t tok);
/* Advance s by token tok's piece (an end-of-generation token leaves it as
 * it is). False, s unchanged, when the grammar refuses it. */
bool grammar_masker_accept(GrammarMasker *m, GrammarState *s, int32_t tok);
int grammar_vocab_size(const GrammarVocab *v);

#endif
