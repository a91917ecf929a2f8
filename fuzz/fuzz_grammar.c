/* fuzz_grammar.c - libFuzzer target for the GBNF parser and matcher.
 *
 * Input layout: the text up to the first NUL byte is a grammar; the bytes
 * after it are text to match. A grammar must parse or fail with a message;
 * a parsed one is matched against the text code point by code point (a
 * refused step must leave the state as it was: complete/done unchanged),
 * and a copy of the state must agree with the state it was copied from;
 * the text is also fed byte by byte (code points split across calls).
 * No crash, hang or unbounded growth on any input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sample/grammar.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *nul = memchr(data, 0, size);
    size_t glen = nul ? (size_t)(nul - data) : size;
    Grammar *g = NULL;
    Err err = {0};
    if (grammar_parse(&g, (const char *)data, glen, NULL, &err) != STATUS_OK) {
        if (!err.msg[0] || g)
            abort(); /* every failure says why, and returns nothing */
        return 0;
    }
    GrammarState *s = NULL, *t = NULL;
    if (grammar_state_new(g, &s, &err) == STATUS_OK &&
        grammar_state_new(g, &t, &err) == STATUS_OK) {
        const char *text = nul ? (const char *)nul + 1 : "";
        size_t tlen = nul ? size - glen - 1 : 0;
        for (size_t i = 0; i < tlen && i < 256; i++) {
            bool before = grammar_complete(s), done = grammar_done(s);
            if (!grammar_state_copy(t, s))
                break;
            if (!grammar_accept(s, (unsigned char)text[i])) {
                if (grammar_complete(s) != before || grammar_done(s) != done)
                    abort(); /* a refused step changes nothing */
            } else if (!grammar_accept(t, (unsigned char)text[i]) ||
                       grammar_complete(t) != grammar_complete(s)) {
                abort(); /* the copy is the same state */
            }
        }
        (void)grammar_matches(g, text, tlen < 256 ? tlen : 256);
        /* bytes, one at a time (unfinished code points kept between) */
        GrammarState *u = NULL;
        if (grammar_state_new(g, &u, &err) == STATUS_OK)
            for (size_t i = 0; i < tlen && i < 256 && grammar_accept_bytes(u, text + i, 1); i++)
                ;
        grammar_state_free(u);
    }
    grammar_state_free(s);
    grammar_state_free(t);
    grammar_free(g);
    return 0;
}
