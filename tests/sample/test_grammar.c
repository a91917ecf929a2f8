/* test_grammar.c - GBNF grammars: each grammar of the table accepts the
 * sentences written for it by hand from its meaning and rejects the
 * others (prefixes of a sentence are accepted but not complete); the parse
 * errors name what and where; the limits hold; states copy. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "sample/grammar.h"

/* A JSON grammar written for this test from RFC 8259 (not llama.cpp's). */
static const char JSON_GBNF[] =
    "root   ::= ws value ws\n"
    "value  ::= object | array | string | number | \"true\" | \"false\" | \"null\"\n"
    "object ::= \"{\" ws ( member ( ws \",\" ws member )* )? ws \"}\"\n"
    "member ::= string ws \":\" ws value\n"
    "array  ::= \"[\" ws ( value ( ws \",\" ws value )* )? ws \"]\"\n"
    "string ::= \"\\\"\" ( [^\"\\\\\\x00-\\x1F] | \"\\\\\" escape )* \"\\\"\"\n"
    "escape ::= [\"\\\\/bfnrt] | \"u\" hex hex hex hex\n"
    "hex    ::= [0-9a-fA-F]\n"
    "number ::= \"-\"? int frac? exp?\n"
    "int    ::= \"0\" | [1-9] [0-9]*\n"
    "frac   ::= \".\" [0-9]+\n"
    "exp    ::= [eE] [-+]? [0-9]+\n"
    "ws     ::= ( [ \\t\\n\\r] )*   # optional whitespace\n";

typedef struct {
    const char *name, *gbnf;
    const char *yes[8], *no[8];
} Case;

static const Case CASES[] = {
    {"literal", "root ::= \"hello\"", {"hello"}, {"hell", "hello!", "Hello", ""}},
    {"alternatives", "root ::= \"cat\" | \"dog\" | \"\"", {"cat", "dog", ""}, {"cow", "catdog"}},
    {"class and range", "root ::= [a-c0-2_] [^a-z]", {"a0", "2Z", "_!"}, {"d0", "aa", "a"}},
    {"any", "root ::= . .", {"ab", "é😀"}, {"a", "abc"}},
    {"star plus opt",
     "root ::= \"a\"* \"b\"+ \"c\"?",
     {"b", "aabbb", "bc", "abbc"},
     {"", "a", "ac", "bcc"}},
    {"counted",
     "root ::= [x]{2,4} \"-\" [y]{3} [z]{1,}",
     {"xx-yyyz", "xxxx-yyyzzz"},
     {"x-yyyz", "xxxxx-yyyz", "xx-yyz", "xx-yyy"}},
    {"counted open", "root ::= \"ab\"{0,2} \"!\"", {"!", "ab!", "abab!"}, {"ababab!", "a!"}},
    {"groups nest",
     "root ::= ( \"(\" root \")\" )* ",
     {"", "()", "(())()", "((()))"},
     {"(", ")(", "(()"}},
    {"rules in any order",
     "root ::= greet \" \" name\nname ::= [A-Z] [a-z]*\ngreet ::= \"hi\" | \"yo\"",
     {"hi Ann", "yo B"},
     {"hi ann", "hey Ann", "hiAnn"}},
    {"escapes",
     "root ::= \"\\x41\\u00e9\\n\\t\\\"\" [\\]\\[]",
     {"Aé\n\t\"]", "Aé\n\t\"["},
     {"Aé\n\t\"", "A\\u00e9"}},
    {"unicode literal", "root ::= \"日本\" [ぁ-ゖ]+", {"日本ご", "日本ごはん"}, {"日本", "日本ゴ"}},
    {"continuation lines",
     "root ::=\n  \"a\" (\n   \"b\"\n | \"c\"\n ) # trailing\n",
     {"ab", "ac"},
     {"a", "abc"}},
    {"json",
     JSON_GBNF,
     {"{}", " [1, -2.5e+3, true, null] ", "{\"a\": {\"b\": [\"\\u00e9\\n\", {}]}}", "\"x\"", "0",
      "[[],[[]]]"},
     {"{", "[1,]", "{\"a\" 1}", "01", "\"\\q\"", "[1 2]", "tru", "{'a': 1}"}},
};

Test(grammar, table_of_sentences) {
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) {
        const Case *c = &CASES[i];
        Grammar *g = NULL;
        Err err = {0};
        cr_assert(grammar_parse(&g, c->gbnf, strlen(c->gbnf), NULL, &err) == STATUS_OK, "%s: %s",
                  c->name, err.msg);
        for (int k = 0; k < 8 && c->yes[k]; k++)
            cr_expect(grammar_matches(g, c->yes[k], strlen(c->yes[k])), "%s: '%s' rejected",
                      c->name, c->yes[k]);
        for (int k = 0; k < 8 && c->no[k]; k++)
            cr_expect(!grammar_matches(g, c->no[k], strlen(c->no[k])), "%s: '%s' accepted", c->name,
                      c->no[k]);
        /* every prefix of a sentence is a live state */
        for (int k = 0; k < 8 && c->yes[k]; k++) {
            GrammarState *s = NULL;
            cr_assert(grammar_state_new(g, &s, &err) == STATUS_OK);
            cr_expect(grammar_accept_utf8(s, c->yes[k], strlen(c->yes[k])), "%s: '%s' prefix",
                      c->name, c->yes[k]);
            cr_expect(grammar_complete(s));
            grammar_state_free(s);
        }
        grammar_free(g);
    }
}

Test(grammar, states_step_copy_and_end) {
    const char *gb = "root ::= \"ab\" | \"abc\"";
    Grammar *g = NULL;
    Err err = {0};
    cr_assert(grammar_parse(&g, gb, strlen(gb), NULL, &err) == STATUS_OK, "%s", err.msg);
    GrammarState *s = NULL, *t = NULL;
    cr_assert(grammar_state_new(g, &s, &err) == STATUS_OK);
    cr_assert(grammar_state_new(g, &t, &err) == STATUS_OK);
    cr_expect(!grammar_complete(s) && !grammar_done(s));
    cr_expect(!grammar_accept(s, 'b'), "b cannot start");
    cr_expect(grammar_accept(s, 'a') && grammar_accept(s, 'b'));
    cr_expect(grammar_complete(s) && !grammar_done(s), "ab: complete, c may follow");
    cr_assert(grammar_state_copy(t, s));
    cr_expect(!grammar_accept(s, 'x') && grammar_complete(s), "a refused step changes nothing");
    cr_expect(grammar_accept(s, 'c') && grammar_done(s), "abc: nothing may follow");
    cr_expect(grammar_complete(t) && !grammar_done(t), "the copy stayed at ab");
    grammar_state_free(s);
    grammar_state_free(t);
    grammar_free(g);
    /* another start rule */
    const char *g2 = "a ::= \"x\" b\nb ::= \"y\"";
    cr_assert(grammar_parse(&g, g2, strlen(g2), "a", &err) == STATUS_OK, "%s", err.msg);
    cr_expect(grammar_matches(g, "xy", 2) && !grammar_matches(g, "y", 1));
    grammar_free(g);
}

Test(grammar, errors_say_what_and_where) {
    static const struct {
        const char *gbnf, *expect;
        Status st;
    } BAD[] = {
        {"root ::= \"abc", "unterminated literal at 1:14", STATUS_INVALID},
        {"root ::= [abc", "unterminated character class", STATUS_INVALID},
        {"root ::= []", "empty character class at 1:11", STATUS_INVALID},
        {"root ::= [z-a]", "range upside down", STATUS_INVALID},
        {"root ::= foo", "rule 'foo' is used but not defined", STATUS_INVALID},
        {"start ::= \"x\"", "no rule 'root' to start from", STATUS_INVALID},
        {"root ::= \"a\"\nroot ::= \"b\"", "rule 'root' defined twice (at 2:1)", STATUS_INVALID},
        {"root ::= root \"a\" | \"b\"", "rule 'root' is left-recursive", STATUS_INVALID},
        {"root ::= x\nx ::= \"a\"? root", "left-recursive", STATUS_INVALID},
        {"root ::= * \"a\"", "repetition with nothing to repeat at 1:10", STATUS_INVALID},
        {"root ::= \"a\"{3,2}", "out of range", STATUS_LIMIT},
        {"root ::= \"a\"{5000}", "out of range", STATUS_LIMIT},
        {"root ::= \"a\"{2", "bad {m,n} repetition", STATUS_INVALID},
        {"root ::= \"a\"{,2}", "bad {m,n} repetition", STATUS_INVALID},
        {"root ::= ( \"a\"", "expected ')'", STATUS_INVALID},
        {"root = \"a\"", "expected '::='", STATUS_INVALID},
        {"root ::= \"\\q\"", "unknown escape at 1:11", STATUS_INVALID},
        {"root ::= \"\\xZZ\"", "bad hex escape", STATUS_INVALID},
        {"root ::= \"\\U00110000\"", "code point past U+10FFFF", STATUS_INVALID},
        {"root ::= \"\xff\"", "invalid UTF-8", STATUS_INVALID},
        {"root ::= \"a\" )", "unexpected character at 1:14", STATUS_INVALID},
        {"::= \"a\"", "expected a rule name at 1:1", STATUS_INVALID},
    };
    for (size_t i = 0; i < sizeof BAD / sizeof BAD[0]; i++) {
        Grammar *g = (Grammar *)&i;
        Err err = {0};
        Status st = grammar_parse(&g, BAD[i].gbnf, strlen(BAD[i].gbnf), NULL, &err);
        cr_expect(st == BAD[i].st, "'%s': status %d (%s)", BAD[i].gbnf, (int)st, err.msg);
        cr_expect(g == NULL);
        cr_expect(strstr(err.msg, BAD[i].expect) != NULL, "'%s': '%s' lacks '%s'", BAD[i].gbnf,
                  err.msg, BAD[i].expect);
    }
}

Test(grammar, limits) {
    Err err = {0};
    Grammar *g = NULL;
    /* nesting deeper than GRAMMAR_MAX_NEST */
    char deep[4 * GRAMMAR_MAX_NEST + 64];
    int n = snprintf(deep, sizeof deep, "root ::= ");
    for (int i = 0; i <= GRAMMAR_MAX_NEST; i++)
        deep[n++] = '(';
    deep[n++] = '"';
    deep[n++] = 'a';
    deep[n++] = '"';
    for (int i = 0; i <= GRAMMAR_MAX_NEST; i++)
        deep[n++] = ')';
    cr_expect(grammar_parse(&g, deep, (size_t)n, NULL, &err) == STATUS_LIMIT, "%s", err.msg);
    cr_expect(strstr(err.msg, "nested") != NULL, "%s", err.msg);
    /* a text over GRAMMAR_MAX_TEXT is refused before it is read */
    cr_expect(grammar_parse(&g, "root ::= \"a\"", (size_t)GRAMMAR_MAX_TEXT + 1, NULL, &err) ==
              STATUS_LIMIT);
    /* an ambiguous grammar whose stacks multiply is cut at GRAMMAR_MAX_STACKS,
     * with a refusal, not a blow-up */
    const char *amb =
        "root ::= x*\nx ::= \"a\" | \"a\" \"a\" | \"a\" \"a\" \"a\" | y\ny ::= \"a\"+";
    cr_assert(grammar_parse(&g, amb, strlen(amb), NULL, &err) == STATUS_OK, "%s", err.msg);
    GrammarState *s = NULL;
    cr_assert(grammar_state_new(g, &s, &err) == STATUS_OK);
    int steps = 0;
    while (steps < 200 && grammar_accept(s, 'a'))
        steps++;
    cr_expect(steps >= 5, "%d steps", steps);
    grammar_state_free(s);
    grammar_free(g);
}

/* Tokens whose pieces end inside a code point: allowed while the bytes can
 * still become a code point the grammar admits (CJK U+4E00..U+9FFF here). */
Test(grammar, unfinished_code_points) {
    const char *gb = "root ::= [\\u4e00-\\u9fff]+ \"!\"";
    Grammar *g = NULL;
    Err err = {0};
    cr_assert(grammar_parse(&g, gb, strlen(gb), NULL, &err) == STATUS_OK, "%s", err.msg);
    static const struct {
        const char *bytes;
        bool ok, complete;
    } STEPS[] = {
        {"\xe4", true, false},                     /* U+4000..4FFF: meets 4E00 */
        {"\xe3", false, false},                    /* U+3000..3FFF: no */
        {"\xe4\xb8", true, false},                 /* U+4E00..4E3F */
        {"\xe4\xb7", false, false},                /* U+4DC0..4DFF: below 4E00 */
        {"\xe4\xb8\x80!", true, true},             /* "一!" */
        {"\xe4\xb8\x80\xe4\xba\x8c", true, false}, /* "一二" */
        {"!", false, false},
        {"\xc3", false, false},         /* a 2-byte lead: U+00C0..00FF */
        {"\xe4\xb8\x41", false, false}, /* not a continuation byte */
    };
    for (size_t i = 0; i < sizeof STEPS / sizeof STEPS[0]; i++) {
        GrammarState *s = NULL;
        cr_assert(grammar_state_new(g, &s, &err) == STATUS_OK);
        bool ok = grammar_accept_bytes(s, STEPS[i].bytes, strlen(STEPS[i].bytes));
        cr_expect(ok == STEPS[i].ok, "step %zu: accepted %d", i, ok);
        if (ok)
            cr_expect(grammar_complete(s) == STEPS[i].complete, "step %zu: complete", i);
        grammar_state_free(s);
    }
    /* split anywhere, a sentence still goes through byte by byte */
    GrammarState *s = NULL;
    cr_assert(grammar_state_new(g, &s, &err) == STATUS_OK);
    const char *text = "\xe6\x97\xa5\xe6\x9c\xac!"; /* 日本! */
    for (size_t i = 0; text[i]; i++)
        cr_expect(grammar_accept_bytes(s, text + i, 1), "byte %zu", i);
    cr_expect(grammar_complete(s) && grammar_done(s));
    grammar_state_free(s);
    grammar_free(g);
}

/* grammar_mask (one walk of the vocabulary's trie) against the definition,
 * token by token: allowed exactly when the piece's bytes are accepted from
 * the state (end-of-generation tokens: when the state is complete). Random
 * vocabularies of ASCII, JSON punctuation and multi-byte characters cut at
 * every byte; states after several prefixes of JSON sentences. */
Test(grammar, mask_is_each_token_alone) {
    Grammar *g = NULL;
    Err err = {0};
    cr_assert(grammar_parse(&g, JSON_GBNF, strlen(JSON_GBNF), NULL, &err) == STATUS_OK, "%s",
              err.msg);
    enum { N = 3000 };
    static const char *ATOMS[] = {"{",    "}",    "[",        "]",    "\"",  ":",  ",", " ",
                                  "\n",   "a",    "b",        "1",    "0",   "-",  ".", "e",
                                  "+",    "true", "null",     "fa",   "lse", "\\", "u", "é",
                                  "日本", "\xe6", "\x97\xa5", "\xa5", "😀",   "x"};
    const int NA = (int)(sizeof ATOMS / sizeof ATOMS[0]);
    char **pieces = malloc(N * sizeof *pieces);
    size_t *lens = malloc(N * sizeof *lens);
    uint8_t *eog = calloc(N, 1), *mask = malloc(N), *want = malloc(N);
    uint64_t x = 12345;
    for (int i = 0; i < N; i++) {
        char buf[64];
        size_t n = 0;
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        int k = 1 + (int)((x >> 33) % 4);
        for (int j = 0; j < k; j++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            const char *a = ATOMS[(x >> 33) % (uint64_t)NA];
            memcpy(buf + n, a, strlen(a));
            n += strlen(a);
        }
        if (i < 3)
            n = 0; /* control tokens: empty */
        pieces[i] = malloc(n + 1);
        memcpy(pieces[i], buf, n);
        lens[i] = n;
    }
    eog[1] = 1;
    GrammarVocab *v = NULL;
    GrammarMasker *m = NULL;
    cr_assert(grammar_vocab_new(&v, N, (const char *const *)pieces, lens, eog, &err) == STATUS_OK);
    cr_assert(grammar_masker_new(&m, v, &err) == STATUS_OK);
    /* twice over, and states met again ("{\"abc" is where "{\"a" was): the
     * second masks come from the masker's memory of states and masks */
    static const char *PREFIXES[] = {
        "",       "{",  "{\"a",       "{\"a\": [1, ", "[tr",
        "\"\xe6", "12", "{\"a\": 1}", "{\"abc",       "{\"a\": [1, 2, ",
        "",       "{",  "{\"a",       "{\"a\": [1, ", "[tr",
        "\"\xe6", "12", "{\"a\": 1}"};
    for (size_t pi = 0; pi < sizeof PREFIXES / sizeof PREFIXES[0]; pi++) {
        GrammarState *s = NULL, *t = NULL;
        cr_assert(grammar_state_new(g, &s, &err) == STATUS_OK);
        cr_assert(grammar_state_new(g, &t, &err) == STATUS_OK);
        cr_assert(grammar_accept_bytes(s, PREFIXES[pi], strlen(PREFIXES[pi])), "%s", PREFIXES[pi]);
        int n_allowed = grammar_mask(m, s, mask), n_want = 0;
        for (int i = 0; i < N; i++) {
            if (eog[i]) {
                want[i] = grammar_complete(s);
            } else {
                cr_assert(grammar_state_copy(t, s));
                want[i] = lens[i] > 0 && grammar_accept_bytes(t, pieces[i], lens[i]);
            }
            n_want += want[i];
            cr_expect(mask[i] == want[i], "prefix '%s' token %d ('%.*s'): mask %d, alone %d",
                      PREFIXES[pi], i, (int)lens[i], pieces[i], mask[i], want[i]);
        }
        cr_expect(n_allowed == n_want && n_want > 0, "prefix '%s': %d allowed, %d want",
                  PREFIXES[pi], n_allowed, n_want);
        cr_log_info("prefix '%s': %d of %d tokens allowed", PREFIXES[pi], n_want, N);
        grammar_state_free(s);
        grammar_state_free(t);
    }
    grammar_masker_free(m);
    grammar_vocab_free(v);
    for (int i = 0; i < N; i++)
        free(pieces[i]);
    free(pieces), free(lens), free(eog), free(mask), free(want);
    grammar_free(g);
}
