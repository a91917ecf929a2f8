/* test_evalm.c - `cgpt eval`'s library: SQuAD normalisation, exact match and
 * token F1 on hand-worked cases; chat/text record parsing and its errors;
 * recipe tallies; the most-frequent-reply baseline with ties; and on a
 * random model, the record's token ids (known from the byte vocabulary),
 * likelihoods with KV prefix reuse equal to gen_score() from scratch, and
 * text cut into pieces at the context.
 *
 * Expected values are worked out by hand from the definitions in evalm.h
 * (SQuAD v2.0's evaluate script) or come from gen_score(), which scores
 * from an empty cache. tests/cli/test_eval.py compares many more strings
 * with an independent Python implementation. */
#include <criterion/criterion.h>

#include "../testutil.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/evalm.h"
#include "model/randmodel.h"

static void norm_is(const char *in, const char *want) {
    size_t len = strlen(in);
    char *out = malloc(len + 1);
    size_t n = evalm_normalize(in, len, out);
    cr_expect(n == strlen(want) && !strcmp(out, want), "normalize(\"%s\") = \"%s\", want \"%s\"",
              in, out, want);
    free(out);
}

Test(evalm, normalize) {
    norm_is("", "");
    norm_is("   \t\n ", "");
    norm_is("The Cat!", "cat");
    norm_is("  hello   WORLD  ", "hello world");
    norm_is("a", "");
    norm_is("A an THE", "");
    norm_is("an apple, the pear", "apple pear");
    norm_is("theatre anthem", "theatre anthem"); /* articles only as whole words */
    norm_is("don't", "dont");                    /* punctuation dropped, not a separator */
    norm_is("hello_world", "helloworld");        /* '_' is punctuation */
    norm_is("a-the", "athe");                    /* punctuation goes first */
    norm_is("the.cat", "thecat");
    norm_is("3.14 + 2,5", "314 25");
    norm_is(u8"the\u00a0cat", "cat"); /* U+00A0 is whitespace */
    norm_is(u8"x\u2003y\u3000z", "x y z");
    norm_is("x\x1fy\x0bz", "x y z");          /* str.split() separators */
    norm_is(u8"the\u2014cat", u8"\u2014cat"); /* "the—cat": the em dash is \W */
    norm_is(u8"\u00e9the", u8"\u00e9the");    /* "éthe": é is a word character */
    norm_is(u8"the\u00e9", u8"the\u00e9");
    norm_is(u8"\u00c9COLE", u8"\u00e9cole");                                 /* ÉCOLE -> école */
    norm_is(u8"\u0416\u0401", u8"\u0436\u0451");                             /* ЖЁ -> жё */
    norm_is(u8"\u0141\u00d3D\u0179 \u0178", u8"\u0142\u00f3d\u017a \u00ff"); /* ŁÓDŹ Ÿ */
    norm_is(u8"\u0391\u0398\u0389\u039d\u0391", u8"\u03b1\u03b8\u03ae\u03bd\u03b1"); /* ΑΘΉΝΑ */
    norm_is(u8"\u201cthe\u201d", u8"\u201c \u201d");                                 /* “the” */
    norm_is(u8"a\U0001F600a", u8"\U0001F600"); /* emoji are \W */
    norm_is(u8"e\u0301the", u8"e\u0301");      /* a combining mark is \W */
    norm_is("\377the \303", "\377 \303");      /* invalid bytes kept, not word characters */
    norm_is("x\377y", "x\377y");
}

static void score_is(const char *p, const char *r, double em, double f1) {
    EvalmScore s;
    Err err = {0};
    cr_assert(evalm_score(p, strlen(p), r, strlen(r), &s, &err) == STATUS_OK, "%s", err.msg);
    cr_expect(s.exact_match == em, "EM(\"%s\", \"%s\") = %g, want %g", p, r, s.exact_match, em);
    cr_expect(fabs(s.f1 - f1) < 1e-12, "F1(\"%s\", \"%s\") = %.15g, want %.15g", p, r, s.f1, f1);
}

Test(evalm, exact_match_and_f1) {
    score_is("Paris", "paris.", 1, 1);
    score_is("The capital is Paris", "Paris", 0, 2 * (1.0 / 3) * 1 / (1.0 / 3 + 1)); /* P 1/3 R 1 */
    score_is("the cat sat", "cat sat on mat", 0, 2.0 / 3); /* P 1, R 1/2 */
    score_is("x x y", "x y y", 0, 2.0 / 3);                /* multiset: common x:1 y:1 */
    score_is("x x x", "x", 0, 0.5);                        /* P 1/3 R 1 */
    score_is("b a", "a b", 1, 1);                          /* both "b" once articles go */
    score_is("y z", "z y", 0, 1);                          /* order matters for EM only */
    score_is("", "", 1, 1);                                /* both empty: 1 (SQuAD v2) */
    score_is("the", "a", 1, 1);                            /* both normalise to "" */
    score_is("", "cat", 0, 0);
    score_is("cat", "", 0, 0);
    score_is("dog", "cat", 0, 0);
    score_is("42", "The answer is 42!", 0, 2 * 1.0 * (1.0 / 3) / (1 + 1.0 / 3));
}

Test(evalm, score_limit) {
    EvalmScore s;
    Err err = {0};
    size_t big = EVALM_MAX_ANSWER_BYTES + 1;
    char *p = calloc(big, 1);
    cr_assert(p);
    cr_expect(evalm_score(p, big, "x", 1, &s, &err) == STATUS_LIMIT);
    cr_expect(strstr(err.msg, "prediction") != NULL, "%s", err.msg);
    free(p);
}

static Status parse(const char *line, EvalmChat *c, Err *err) {
    return evalm_parse_chat(line, strlen(line), c, err);
}

Test(evalm, parse_chat) {
    EvalmChat c;
    Err err = {0};
    const char *line = "{\"messages\":[{\"role\":\"system\",\"content\":\"s\"},{\"role\":\"user\","
                       "\"content\":\"q\"},{\"role\":\"assistant\",\"content\":\"A\\u00e9\"}],"
                       "\"recipe\":\"arith\",\"checkable\":true,\"extra\":1}";
    cr_assert(parse(line, &c, &err) == STATUS_OK, "%s", err.msg);
    cr_expect(json_array_size(c.prompt) == 2 && json_array_size(c.messages) == 3);
    cr_expect(c.reply_len == 3 && !memcmp(c.reply, "A\xc3\xa9", 3));
    cr_expect(!strcmp(c.recipe, "arith") && c.checkable);
    evalm_chat_free(&c);
    cr_assert(parse("{\"messages\":[{\"role\":\"assistant\",\"content\":\"\"}]}", &c, &err) == 0);
    cr_expect(!strcmp(c.recipe, EVALM_DEFAULT_RECIPE) && !c.checkable && c.reply_len == 0);
    cr_expect(json_array_size(c.prompt) == 0);
    evalm_chat_free(&c);
    evalm_chat_free(&c); /* twice is fine */
}

Test(evalm, parse_chat_errors) {
    static const struct {
        const char *line, *want;
        Status st;
    } cases[] = {
        {"{\"messages\": [", "not JSON", STATUS_FORMAT},
        {"[1, 2]", "not a JSON object", STATUS_FORMAT},
        {"{\"recipe\":\"x\"}", "\"messages\" is missing", STATUS_FORMAT},
        {"{\"messages\":{}}", "\"messages\" is not an array", STATUS_FORMAT},
        {"{\"messages\":[]}", "\"messages\" is empty", STATUS_FORMAT},
        {"{\"messages\":[3]}", "message 0 is not an object", STATUS_FORMAT},
        {"{\"messages\":[{\"content\":\"x\"}]}", "message 0: \"role\" is missing", STATUS_FORMAT},
        {"{\"messages\":[{\"role\":\"user\"}]}", "message 0: \"content\" is missing",
         STATUS_FORMAT},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"q\"}]}",
         "the last message has role \"user\", not \"assistant\"", STATUS_FORMAT},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"assistant\","
         "\"content\":[]}]}",
         "the last message's \"content\" is not a string", STATUS_FORMAT},
        {"{\"messages\":[{\"role\":\"assistant\",\"content\":\"a\"}],\"recipe\":7}",
         "\"recipe\" is not a string", STATUS_FORMAT},
        {"{\"messages\":[{\"role\":\"assistant\",\"content\":\"a\"}],\"recipe\":\"\"}",
         "\"recipe\" has 0 bytes", STATUS_FORMAT},
        {"{\"messages\":[{\"role\":\"assistant\",\"content\":\"a\"}],\"checkable\":\"yes\"}",
         "\"checkable\" is not true or false", STATUS_FORMAT},
        {"{\"messages\":[{\"role\":\"assistant\",\"content\":\"a\\u0000b\"}]}", "not JSON",
         STATUS_FORMAT},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        EvalmChat c;
        Err err = {0};
        Status st = parse(cases[i].line, &c, &err);
        cr_expect(st == cases[i].st, "case %zu: status %d, want %d (%s)", i, st, cases[i].st,
                  err.msg);
        cr_expect(strstr(err.msg, cases[i].want) != NULL, "case %zu: \"%s\" lacks \"%s\"", i,
                  err.msg, cases[i].want);
        cr_expect(c.prompt == NULL && c.reply == NULL && c.recipe == NULL);
    }
}

Test(evalm, parse_chat_limits) {
    /* messages per record */
    size_t cap = 64 + (EVALM_MAX_MESSAGES + 1) * 40;
    char *line = malloc(cap), *p = line;
    p += sprintf(p, "{\"messages\":[");
    for (int i = 0; i <= EVALM_MAX_MESSAGES; i++)
        p += sprintf(p, "%s{\"role\":\"%s\",\"content\":\"x\"}", i ? "," : "",
                     i == EVALM_MAX_MESSAGES ? "assistant" : "user");
    p += sprintf(p, "]}");
    EvalmChat c;
    Err err = {0};
    cr_expect(parse(line, &c, &err) == STATUS_LIMIT);
    cr_expect(strstr(err.msg, "1025 messages, more than 1024") != NULL, "%s", err.msg);
    free(line);
    /* recipe name length */
    char rl[EVALM_MAX_RECIPE_BYTES + 128];
    int n = sprintf(rl, "{\"messages\":[{\"role\":\"assistant\",\"content\":\"a\"}],\"recipe\":\"");
    memset(rl + n, 'r', EVALM_MAX_RECIPE_BYTES + 1);
    strcpy(rl + n + EVALM_MAX_RECIPE_BYTES + 1, "\"}");
    cr_expect(parse(rl, &c, &err) == STATUS_LIMIT, "%s", err.msg);
    /* line length: refused before parsing */
    cr_expect(evalm_parse_chat("{}", (size_t)EVALM_MAX_LINE_BYTES + 1, &c, &err) == STATUS_LIMIT);
    cr_expect(strstr(err.msg, "line of") != NULL, "%s", err.msg);
}

Test(evalm, parse_text) {
    char *t;
    size_t n;
    Err err = {0};
    const char *ok = "{\"text\":\"Hello\\nworld\",\"source\":\"x\"}";
    cr_assert(evalm_parse_text(ok, strlen(ok), &t, &n, &err) == STATUS_OK, "%s", err.msg);
    cr_expect(n == 11 && !strcmp(t, "Hello\nworld"));
    free(t);
    cr_expect(evalm_parse_text("{\"txt\":1}", 9, &t, &n, &err) == STATUS_FORMAT);
    cr_expect(strstr(err.msg, "\"text\" is missing") != NULL, "%s", err.msg);
    cr_expect(evalm_parse_text("{\"text\":1}", 10, &t, &n, &err) == STATUS_FORMAT);
    cr_expect(strstr(err.msg, "\"text\" is not a string") != NULL, "%s", err.msg);
    cr_expect(t == NULL && n == 0);
    cr_expect(evalm_line_blank(" \t\r", 3) && evalm_line_blank("", 0) &&
              !evalm_line_blank(" x", 2));
}

Test(evalm, table) {
    Err err = {0};
    EvalmTable *t = evalm_table_new(&err);
    cr_assert(t);
    static const char *names[] = {"zeta", "alpha", "mid", "alpha", "zeta", "zeta"};
    for (int i = 0; i < 6; i++) {
        EvalmRecipe *r;
        cr_assert(evalm_table_get(t, names[i], &r, &err) == STATUS_OK);
        r->n++;
        r->em += i;
    }
    for (int i = 0; i < 200; i++) { /* growth keeps earlier tallies */
        char nm[16];
        EvalmRecipe *r;
        snprintf(nm, sizeof nm, "r%03d", i);
        cr_assert(evalm_table_get(t, nm, &r, &err) == STATUS_OK);
        r->n = i;
    }
    int n;
    EvalmRecipe *all = evalm_table_sorted(t, &n);
    cr_assert(n == 203);
    cr_expect(!strcmp(all[0].name, "alpha") && all[0].n == 2 && all[0].em == 1 + 3);
    cr_expect(!strcmp(all[1].name, "mid") && all[1].n == 1 && all[1].em == 2);
    cr_expect(!strcmp(all[2].name, "r000") && !strcmp(all[201].name, "r199") && all[201].n == 199);
    cr_expect(!strcmp(all[202].name, "zeta") && all[202].n == 3 && all[202].em == 0 + 4 + 5);
    evalm_table_free(t);
    evalm_table_free(NULL);
}

Test(evalm, baseline) {
    Err err = {0};
    EvalmBaseline *b = evalm_baseline_new(&err);
    cr_assert(b);
    static const struct {
        const char *recipe, *reply;
    } adds[] = {
        {"a", "yes"},      {"a", "no"}, {"a", "no"}, {"a", "yes"}, {"a", "maybe"}, /* tie: "no" */
        {"b", "zz"},       {"b", "zz"}, {"b", "b"},  {"b", "b"},   {"b", "b"},     /* "b" 3 > 2 */
        {"c", u8"\u00e9"}, {"c", "z"},                                             /* tie: z < é */
        {"d", ""},                                                                 /* empty reply */
    };
    for (size_t i = 0; i < sizeof adds / sizeof adds[0]; i++)
        cr_assert(evalm_baseline_add(b, adds[i].recipe, adds[i].reply, strlen(adds[i].reply),
                                     &err) == STATUS_OK,
                  "%s", err.msg);
    size_t len;
    const char *s = evalm_baseline_get(b, "a", &len);
    cr_expect(s && len == 2 && !memcmp(s, "no", 2), "a: %.*s", (int)len, s ? s : "");
    s = evalm_baseline_get(b, "b", &len);
    cr_expect(s && len == 1 && s[0] == 'b');
    s = evalm_baseline_get(b, "c", &len);
    cr_expect(s && len == 1 && s[0] == 'z');
    s = evalm_baseline_get(b, "d", &len);
    cr_expect(s && len == 0);
    cr_expect(evalm_baseline_get(b, "nope", &len) == NULL && len == 0);
    /* the leader changes as counts grow */
    for (int i = 0; i < 3; i++)
        cr_assert(evalm_baseline_add(b, "a", "maybe", 5, &err) == STATUS_OK);
    s = evalm_baseline_get(b, "a", &len);
    cr_expect(s && len == 5 && !memcmp(s, "maybe", 5));
    evalm_baseline_free(b);
}

/* ---- on a random model (byte vocabulary: id = 3 + byte, 259 <|im_start|>,
 * 260 <|im_end|>; built-in ChatML template; no BOS) ---- */

typedef struct {
    char dir[64], path[128];
    Model *m;
    Tokenizer *tok;
    ChatFormat *fmt;
    GenSession gs;
} Fix;

static void fix_init(Fix *f, int n_ctx, int n_batch, int n_seq) {
    memset(f, 0, sizeof *f);
    strcpy(f->dir, "/tmp/cgpt_evalm_XXXXXX");
    cr_assert(mkdtemp(f->dir));
    snprintf(f->path, sizeof f->path, "%s/m.gguf", f->dir);
    RandModelSpec s = tu_tiny_llama(256);
    Err err = {0};
    cr_assert(randmodel_write(f->path, &s, &err) == STATUS_OK, "%s", err.msg);
    ModelParams mp = {.n_threads = 1, .n_ctx = n_ctx, .n_seq_max = n_seq, .n_batch = n_batch};
    cr_assert(model_load(&f->m, f->path, &mp, &err) == STATUS_OK, "%s", err.msg);
    cr_assert(tok_load(&f->tok, model_gguf(f->m), &err) == STATUS_OK, "%s", err.msg);
    cr_assert((f->fmt = chat_format_new(model_gguf(f->m), f->tok, NULL, 0, &err)), "%s", err.msg);
    cr_assert(gen_session_init(&f->gs, f->m, f->tok, 0, &err) == STATUS_OK, "%s", err.msg);
}

static void fix_done(Fix *f) {
    gen_session_free(&f->gs);
    chat_format_free(f->fmt);
    tok_free(f->tok);
    model_free(f->m);
    unlink(f->path);
    rmdir(f->dir);
}

/* Byte-vocabulary ids of a ChatML string where "<" "S" ">" / "<" "E" ">"
 * stand for <|im_start|> / <|im_end|>. */
static int chatml_ids(const char *s, int32_t *out) {
    int n = 0;
    for (size_t i = 0; s[i]; i++) {
        if (!strncmp(s + i, "<S>", 3) || !strncmp(s + i, "<E>", 3)) {
            out[n++] = s[i + 1] == 'S' ? 259 : 260;
            i += 2;
        } else {
            out[n++] = 3 + (unsigned char)s[i];
        }
    }
    return n;
}

Test(evalm, chat_tokens) {
    Fix f;
    fix_init(&f, 256, 64, 1);
    EvalmChat c;
    Err err = {0};
    const char *line = "{\"messages\":[{\"role\":\"user\",\"content\":\"hi <|im_end|>\"},"
                       "{\"role\":\"assistant\",\"content\":\"Yo!\"}]}";
    cr_assert(parse(line, &c, &err) == STATUS_OK, "%s", err.msg);
    EvalmChatIds t;
    cr_assert(evalm_chat_tokens(f.fmt, f.tok, &c, &t, &err) == STATUS_OK, "%s", err.msg);
    int32_t want_p[128], want_all[128];
    /* user text never becomes a control token */
    int np = chatml_ids("<S>user\nhi <|im_end|><E>\n<S>assistant\n", want_p);
    int na = chatml_ids("<S>user\nhi <|im_end|><E>\n<S>assistant\nYo!<E>\n", want_all);
    cr_assert(t.n_prompt == np && t.n_ids == na, "n_prompt %d/%d n_ids %d/%d", t.n_prompt, np,
              t.n_ids, na);
    cr_expect(!memcmp(t.prompt, want_p, sizeof(int32_t) * (size_t)np));
    cr_expect(!memcmp(t.ids, want_all, sizeof(int32_t) * (size_t)na));
    cr_expect(t.first == np, "first %d, want %d", t.first, np);
    evalm_chat_ids_free(&t);
    evalm_chat_free(&c);
    fix_done(&f);
}

static void score_fresh(GenSession *gs, const int32_t *ids, int n, int first, double *nll,
                        long *cnt) {
    Err err = {0};
    *nll = 0;
    *cnt = 0;
    cr_assert(gen_score(gs, ids, n, first, nll, cnt, &err) == STATUS_OK, "%s", err.msg);
}

Test(evalm, score_tokens_reuses_the_cache) {
    Fix f;
    fix_init(&f, 128, 5, 2); /* n_batch 5: chunks cut everywhere; sequence 1 scores from scratch */
    int32_t a[60], b[60];
    for (int i = 0; i < 60; i++) {
        a[i] = 3 + (i * 37 + 11) % 256;
        b[i] = i < 23 ? a[i] : 3 + (i * 53 + 5) % 256; /* shares 23 ids with a */
    }
    struct {
        const int32_t *ids;
        int n, first;
    } seq[] = {{a, 40, 30}, {b, 50, 31}, {b, 50, 31}, {a, 41, 12},
               {a, 60, 1},  {b, 24, 23}, {a, 2, 1},   {a, 60, 59}};
    Err err = {0};
    GenSession g1;
    cr_assert(gen_session_init(&g1, f.m, f.tok, 1, &err) == STATUS_OK, "%s", err.msg);
    for (size_t k = 0; k < sizeof seq / sizeof seq[0]; k++) {
        double want;
        long wcnt;
        score_fresh(&g1, seq[k].ids, seq[k].n, seq[k].first, &want, &wcnt);
        cr_expect(wcnt == seq[k].n - seq[k].first);
        /* f.gs carries the previous entry's cache; sums add to what is there */
        double nll = 0.5;
        long cnt = 3;
        cr_assert(evalm_score_tokens(&f.gs, seq[k].ids, seq[k].n, seq[k].first, &nll, &cnt, &err) ==
                      STATUS_OK,
                  "%s", err.msg);
        cr_expect(cnt - 3 == wcnt, "entry %zu: %ld predictions, want %ld", k, cnt - 3, wcnt);
        cr_expect(fabs((nll - 0.5) - want) <= 1e-9 * fabs(want), "entry %zu: %.12g vs %.12g", k,
                  nll - 0.5, want);
        cr_expect(f.gs.n_cached == seq[k].n - 1 && model_seq_len(f.m, 0) == seq[k].n - 1,
                  "entry %zu: cache holds %d", k, f.gs.n_cached);
        cr_expect(!memcmp(f.gs.cached, seq[k].ids, sizeof(int32_t) * (size_t)(seq[k].n - 1)));
    }
    /* The prefix really is taken from the cache: make the session believe
     * it holds b's first 39 ids while the KV cache holds a's (which differ
     * from position 23) - the scores of b then differ from scratch (a test
     * that reuse happens at all). */
    double lie = 0, truth;
    long lc = 0, tc;
    cr_assert(evalm_score_tokens(&f.gs, a, 40, 30, &lie, &lc, &err) == STATUS_OK);
    memcpy(f.gs.cached, b, sizeof(int32_t) * 39);
    lie = 0;
    cr_assert(evalm_score_tokens(&f.gs, b, 40, 30, &lie, &lc, &err) == STATUS_OK);
    score_fresh(&g1, b, 40, 30, &truth, &tc);
    cr_expect(fabs(lie - truth) > 1e-6, "the cache was not reused (%.9g == %.9g)", lie, truth);
    gen_session_free(&g1);
    /* bad ranges change nothing */
    double nll = 0;
    long cnt = 0;
    cr_expect(evalm_score_tokens(&f.gs, a, 10, 0, &nll, &cnt, &err) == STATUS_INVALID);
    cr_expect(evalm_score_tokens(&f.gs, a, 10, 10, &nll, &cnt, &err) == STATUS_INVALID);
    int32_t big[129] = {0};
    cr_expect(evalm_score_tokens(&f.gs, big, 129, 1, &nll, &cnt, &err) == STATUS_INVALID);
    cr_expect(cnt == 0 && nll == 0);
    fix_done(&f);
}

Test(evalm, generate_after_score_reuses_prompt) {
    Fix f;
    fix_init(&f, 128, 8, 1);
    int32_t ids[40];
    for (int i = 0; i < 40; i++)
        ids[i] = 3 + (i * 29 + 7) % 256;
    Err err = {0};
    double nll = 0;
    long cnt = 0;
    cr_assert(evalm_score_tokens(&f.gs, ids, 40, 25, &nll, &cnt, &err) == STATUS_OK);
    GenParams gp = {.max_tokens = 6, .sampling = sampler_defaults(), .ignore_eos = true};
    gp.sampling.temperature = 0;
    int32_t out1[6], out2[6];
    GenStats st;
    cr_assert(gen_generate(&f.gs, ids, 25, &gp, NULL, NULL, out1, &st, &err) == STATUS_OK);
    cr_expect(st.n_reused == 24, "reused %d of the 25 prompt tokens", st.n_reused);
    gen_session_reset(&f.gs);
    cr_assert(gen_generate(&f.gs, ids, 25, &gp, NULL, NULL, out2, &st, &err) == STATUS_OK);
    cr_expect(st.n_reused == 0 && st.n_generated == 6);
    cr_expect(!memcmp(out1, out2, sizeof out1), "greedy tokens differ after reuse");
    fix_done(&f);
}

Test(evalm, score_text_pieces) {
    Fix f;
    fix_init(&f, 8, 4, 1); /* context 8 */
    int32_t ids[20];
    for (int i = 0; i < 20; i++)
        ids[i] = 3 + (i * 71 + 2) % 256;
    Err err = {0};
    for (int n = 0; n <= 20; n++) {
        /* without BOS: windows [0,8) [7,15) [14,20): n-1 predictions */
        double nll = 0, want = 0, w;
        long cnt = 0, wc, want_cnt = 0;
        cr_assert(evalm_score_text(&f.gs, ids, (size_t)n, -1, &nll, &cnt, &err) == STATUS_OK, "%s",
                  err.msg);
        for (int a = 0; a + 1 < n; a += 7) {
            int len = n - a < 8 ? n - a : 8;
            score_fresh(&f.gs, ids + a, len, 1, &w, &wc);
            want += w;
            want_cnt += wc;
        }
        cr_expect(cnt == (n > 0 ? n - 1 : 0) && cnt == want_cnt, "n %d: %ld predictions", n, cnt);
        cr_expect(fabs(nll - want) <= 1e-12 * (1 + want), "n %d: %.15g vs %.15g", n, nll, want);
        /* with BOS (id 1): [1]+ids[0,7), [1]+ids[7,14), ...: n predictions */
        nll = 0, want = 0, cnt = 0, want_cnt = 0;
        cr_assert(evalm_score_text(&f.gs, ids, (size_t)n, 1, &nll, &cnt, &err) == STATUS_OK);
        for (int a = 0; a < n; a += 7) {
            int32_t piece[8] = {1};
            int m = n - a < 7 ? n - a : 7;
            memcpy(piece + 1, ids + a, sizeof(int32_t) * (size_t)m);
            score_fresh(&f.gs, piece, m + 1, 1, &w, &wc);
            want += w;
            want_cnt += wc;
        }
        cr_expect(cnt == n && cnt == want_cnt, "n %d (BOS): %ld predictions", n, cnt);
        cr_expect(fabs(nll - want) <= 1e-12 * (1 + want), "n %d (BOS): %.15g vs %.15g", n, nll,
                  want);
    }
    fix_done(&f);
}
