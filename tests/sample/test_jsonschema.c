/* test_jsonschema.c - the JSON Schema compiler's errors (each names the
 * keyword and where), limits, composition of several schemas in one
 * buffer, and small accept/reject checks written by hand from the JSON
 * Schema specification (the wide check against ajv is
 * tests/sample/test_jsonschema.py). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sample/grammar.h"
#include "sample/jsonschema.h"

static json_t *load(const char *text) {
    json_error_t je;
    json_t *v = json_loads(text, JSON_DECODE_ANY, &je);
    cr_assert(v, "bad test JSON: %s: %s", text, je.text);
    return v;
}

/* The grammar of schema text s, parsed. */
static Grammar *compile(const char *s) {
    json_t *v = load(s);
    char *gbnf = NULL;
    Err err = {0};
    cr_assert(jsonschema_to_gbnf(v, &gbnf, &err) == STATUS_OK, "%s: %s", s, err.msg);
    Grammar *g = NULL;
    cr_assert(grammar_parse(&g, gbnf, strlen(gbnf), NULL, &err) == STATUS_OK, "%s: %s", s, err.msg);
    free(gbnf);
    json_decref(v);
    return g;
}

typedef struct {
    const char *schema;
    const char *yes[8], *no[8];
} Case;

static const Case CASES[] = {
    {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"},\"b\":{\"type\":\"string\"}"
     "},"
     "\"required\":[\"a\"],\"additionalProperties\":false}",
     {"{\"a\":1}", "{\"a\":-20,\"b\":\"x\"}", "{ \"a\": 1 }", "{\n  \"a\": 1,\n  \"b\": \"\"\n}"},
     {"{}", "{\"b\":\"x\"}", "{\"b\":\"x\",\"a\":1}", "{\"a\":1,\"c\":2}", "{\"a\":1}  ",
      "{  \"a\":1}", " {\"a\":1}"}},
    {"{\"type\":\"integer\",\"minimum\":-15,\"maximum\":250}",
     {"-15", "-9", "0", "9", "10", "199", "249", "250"},
     {"-16", "-20", "251", "260", "300", "1000", "-0", "007"}},
    {"{\"type\":\"integer\",\"exclusiveMinimum\":99}",
     {"100", "101", "999999999999999"},
     {"99", "0", "-1", "1000000000000000"}},
    {"{\"type\":\"number\",\"minimum\":-1,\"exclusiveMaximum\":1}",
     {"-1", "-1.0", "-0.999", "0", "0.5", "0.999999"},
     {"1", "1.0", "-1.001", "-2", "1e0", "1.5"}},
    {"{\"type\":\"string\",\"format\":\"date\"}",
     {"\"2024-02-29\"", "\"2000-02-29\"", "\"2023-12-31\""},
     {"\"2023-02-29\"", "\"1900-02-29\"", "\"2023-11-31\"", "\"2023-1-01\""}},
    {"{\"type\":[\"string\",\"null\"],\"maxLength\":2}",
     {"null", "\"\"", "\"ab\"", "\"\\u00e9\\n\""},
     {"\"abc\"", "1", "\"\\ud800\""}},
    {"{\"enum\":[\"a\",1,null,[true],{\"k\":\"v\"}]}",
     {"\"a\"", "1", "null", "[true]", "{\"k\":\"v\"}"},
     {"\"b\"", "true", "[false]", "{\"k\": \"v\"}"}},
    {"{\"$defs\":{\"t\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/$defs/t\"}}},\"$ref\":\"#/"
     "$defs/t\"}",
     {"[]", "[[]]", "[[],[[]]]"},
     {"[1]", "[[1]]", "{}"}},
    {"{\"type\":\"object\",\"properties\":{\"ab\":{\"type\":\"integer\"}}}",
     {"{}", "{\"ab\":1}", "{\"a\":\"x\"}", "{\"abc\":[]}", "{\"ab\":1,\"b\":null}"},
     {"{\"ab\":\"x\"}", "{\"ab\":1,\"ab\":2}", "{\"a\\u0062\":\"x\"}"}},
    {"{\"type\":\"array\",\"prefixItems\":[{\"type\":\"integer\"},{\"type\":\"string\"}],"
     "\"items\":false,\"minItems\":1}",
     {"[1]", "[1,\"a\"]"},
     {"[]", "[\"a\"]", "[1,2]", "[1,\"a\",3]"}},
    {"{\"type\":\"string\",\"pattern\":\"^[A-Z]{2}\\\\d{2}$\"}",
     {"\"AB12\"", "\"ZZ00\""},
     {"\"AB1\"", "\"ab12\"", "\"AB123\"", "\" AB12\"", "AB12"}},
    {"{\"type\":\"string\",\"pattern\":\"b|c$\"}",
     {"\"b\"", "\"abc\"", "\"xc\"", "\"\\u00e9b\""},
     {"\"\"", "\"ca\"", "\"a\""}},
    {"{\"type\":\"string\",\"pattern\":\"^a.\\\\\\\\[^x]$\"}",
     {"\"a\\\"\\\\y\"", "\"ab\\\\\\n\"", "\"a/\\\\\\/\""},
     {"\"a\\n\\\\y\"", "\"ab\\\\x\"", "\"ab\\\\\""}},
};

Test(jsonschema, accepts_and_refuses) {
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) {
        const Case *c = &CASES[i];
        Grammar *g = compile(c->schema);
        for (int k = 0; k < 8 && c->yes[k]; k++)
            cr_expect(grammar_matches(g, c->yes[k], strlen(c->yes[k])), "%s: '%s' refused",
                      c->schema, c->yes[k]);
        for (int k = 0; k < 8 && c->no[k]; k++)
            cr_expect(!grammar_matches(g, c->no[k], strlen(c->no[k])), "%s: '%s' accepted",
                      c->schema, c->no[k]);
        grammar_free(g);
    }
}

Test(jsonschema, errors_name_the_keyword_and_where) {
    static const struct {
        const char *schema, *expect;
        Status st;
    } BAD[] = {
        {"{\"properties\":{\"address\":{\"patternProperties\":{}}}}",
         "unsupported keyword 'patternProperties' at properties.address.patternProperties",
         STATUS_UNSUPPORTED},
        {"{\"anyOf\":[{\"type\":\"string\"},{\"not\":{}}]}", "'not' at anyOf.1.not",
         STATUS_UNSUPPORTED},
        {"{\"type\":\"integer\",\"multipleOf\":2}", "unsupported keyword 'multipleOf'",
         STATUS_UNSUPPORTED},
        {"{\"$ref\":\"#/$defs/nope\"}", "$ref '#/$defs/nope' at $ref: not found", STATUS_INVALID},
        {"{\"$ref\":\"other.json#/a\"}", "not found", STATUS_INVALID},
        {"{\"$defs\":{\"x\":{\"minimum\":0.5,\"type\":\"number\"}},\"$ref\":\"#/$defs/x\"}",
         "non-integer bound (0.5) for a number is unsupported at $defs.x.minimum",
         STATUS_UNSUPPORTED},
        {"{\"$ref\":\"#\"}", "left-recursive", STATUS_INVALID},
        {"{\"type\":\"strin\"}", "unknown type at type", STATUS_INVALID},
        {"{\"type\":\"integer\",\"minimum\":3,\"exclusiveMaximum\":3}", "no integer satisfies",
         STATUS_INVALID},
        {"{\"type\":\"integer\",\"minimum\":1e20}", "no integer satisfies", STATUS_INVALID},
        {"{\"type\":\"string\",\"format\":\"uri\"}", "unsupported format 'uri' at format",
         STATUS_UNSUPPORTED},
        {"{\"type\":\"string\",\"minLength\":1001}", "minLength 1001 exceeds 1000", STATUS_LIMIT},
        {"{\"type\":\"array\",\"minItems\":3,\"maxItems\":2}", "minItems 3 > maxItems 2",
         STATUS_INVALID},
        {"{\"allOf\":[{},{}]}", "allOf of 2 schemas", STATUS_UNSUPPORTED},
        {"{\"$ref\":\"#/$defs/a\",\"type\":\"string\",\"$defs\":{\"a\":{}}}",
         "keyword 'type' beside '$ref' is unsupported at type", STATUS_UNSUPPORTED},
        {"{\"properties\":{\"a\":{\"$id\":\"x\"}}}", "'$id' below the root", STATUS_UNSUPPORTED},
        {"{\"enum\":[1,2],\"type\":\"string\"}", "no enum/const value matches the type",
         STATUS_INVALID},
        {"false", "the schema false", STATUS_UNSUPPORTED},
        {"[1]", "must be an object or a boolean", STATUS_INVALID},
        {"{\"properties\":{\"a\":{}},\"required\":[\"b\"]}",
         "required property 'b' is not in 'properties' at required.0", STATUS_UNSUPPORTED},
    };
    for (size_t i = 0; i < sizeof BAD / sizeof BAD[0]; i++) {
        json_t *v = load(BAD[i].schema);
        char *gbnf = (char *)"unchanged";
        Err err = {0};
        Status st = jsonschema_to_gbnf(v, &gbnf, &err);
        cr_expect(st == BAD[i].st, "%s: status %s, want %s (%s)", BAD[i].schema, status_name(st),
                  status_name(BAD[i].st), err.msg);
        cr_expect(strstr(err.msg, BAD[i].expect), "%s: '%s' lacks '%s'", BAD[i].schema, err.msg,
                  BAD[i].expect);
        cr_expect(gbnf == NULL, "%s: no grammar on failure", BAD[i].schema);
        json_decref(v);
    }
}

Test(jsonschema, pattern_refusals_name_the_construct) {
    static const struct {
        const char *pattern, *expect;
        Status st;
    } BAD[] = {
        {"(?=a)", "lookahead '(?=' is not supported (offset 1)", STATUS_UNSUPPORTED},
        {"a(?!b)", "lookahead '(?!' is not supported", STATUS_UNSUPPORTED},
        {"(?<=a)b", "lookbehind '(?<=' is not supported", STATUS_UNSUPPORTED},
        {"(?<!a)b", "lookbehind '(?<!' is not supported", STATUS_UNSUPPORTED},
        {"(?<n>a)", "named group '(?<' is not supported", STATUS_UNSUPPORTED},
        {"(?i:a)", "flags or modifiers '(?' are not supported", STATUS_UNSUPPORTED},
        {"(a)\\1", "backreference '\\1' is not supported", STATUS_UNSUPPORTED},
        {"(?<n>a)\\k<n>", "named group", STATUS_UNSUPPORTED},
        {"\\k<n>", "named backreference '\\k' is not supported", STATUS_UNSUPPORTED},
        {"\\bword", "word boundary '\\b' is not supported", STATUS_UNSUPPORTED},
        {"a\\B", "word boundary '\\B' is not supported", STATUS_UNSUPPORTED},
        {"\\p{L}", "unicode property escape '\\p' is not supported", STATUS_UNSUPPORTED},
        {"[\\P{L}]", "unicode property escape '\\P' is not supported", STATUS_UNSUPPORTED},
        {"a^b", "anchor '^' in the middle", STATUS_UNSUPPORTED},
        {"(^a)", "anchor '^' in the middle", STATUS_UNSUPPORTED},
        {"a$b", "anchor '$' in the middle", STATUS_UNSUPPORTED},
        {"(a$)", "anchor '$' in the middle", STATUS_UNSUPPORTED},
        {"(a?)*", "on a part that can match the empty string", STATUS_UNSUPPORTED},
        {"(a|b?|c?)", "two alternatives that can match the empty string", STATUS_UNSUPPORTED},
        {"\\ud800", "a lone surrogate '\\uD800'", STATUS_UNSUPPORTED},
        {"[\\x01]", "no character that is written", STATUS_UNSUPPORTED},
        {"[]", "no character that is written", STATUS_UNSUPPORTED},
        {"a**", "'*' with nothing to repeat", STATUS_INVALID},
        {"+a", "'+' with nothing to repeat", STATUS_INVALID},
        {"a{2", "not a quantifier", STATUS_INVALID},
        {"a{3,2}", "out of order", STATUS_INVALID},
        {"[b-a]", "a range out of order", STATUS_INVALID},
        {"[\\d-z]", "a class escape in a range", STATUS_INVALID},
        {"(a", "a group without ')'", STATUS_INVALID},
        {"a)", "an unmatched ')'", STATUS_INVALID},
        {"[a", "without ']'", STATUS_INVALID},
        {"a]", "a lone ']'", STATUS_INVALID},
        {"\\q", "an invalid escape '\\q'", STATUS_INVALID},
        {"\\-", "an invalid escape '\\-'", STATUS_INVALID},
        {"\\x4", "a bad escape '\\x'", STATUS_INVALID},
        {"\\", "'\\' at the end", STATUS_INVALID},
        {"a{1001}", "over 1000 (GRAMMAR_MAX_REPEAT)", STATUS_LIMIT},
    };
    for (size_t i = 0; i < sizeof BAD / sizeof BAD[0]; i++) {
        json_t *v = json_pack("{s:s,s:{s:{s:s,s:s}}}", "type", "object", "properties", "code",
                              "type", "string", "pattern", BAD[i].pattern);
        char *gbnf = NULL;
        Err err = {0};
        Status st = jsonschema_to_gbnf(v, &gbnf, &err);
        cr_expect(st == BAD[i].st, "%s: status %s, want %s (%s)", BAD[i].pattern, status_name(st),
                  status_name(BAD[i].st), err.msg);
        cr_expect(strstr(err.msg, "pattern at properties.code.pattern: "), "%s: '%s'",
                  BAD[i].pattern, err.msg);
        cr_expect(strstr(err.msg, BAD[i].expect), "%s: '%s' lacks '%s'", BAD[i].pattern, err.msg,
                  BAD[i].expect);
        cr_expect(gbnf == NULL);
        json_decref(v);
    }
    static const struct {
        const char *schema, *expect;
    } BESIDE[] = {
        {"{\"type\":\"string\",\"pattern\":\"a\",\"minLength\":1}",
         "pattern with minLength/maxLength is unsupported at pattern"},
        {"{\"type\":\"string\",\"pattern\":\"a\",\"format\":\"date\"}",
         "pattern with format is unsupported at pattern"},
        {"{\"type\":\"string\",\"pattern\":1}", "'pattern' must be a string at pattern"},
    };
    for (size_t i = 0; i < sizeof BESIDE / sizeof BESIDE[0]; i++) {
        json_t *v = load(BESIDE[i].schema);
        char *gbnf = NULL;
        Err err = {0};
        cr_expect(jsonschema_to_gbnf(v, &gbnf, &err) != STATUS_OK, "%s", BESIDE[i].schema);
        cr_expect(strstr(err.msg, BESIDE[i].expect), "'%s' lacks '%s'", err.msg, BESIDE[i].expect);
        json_decref(v);
    }
}

/* A string schema with pattern p (borrowed). */
static Status pattern_status(const char *p, Err *err) {
    json_t *v = json_pack("{s:s,s:s}", "type", "string", "pattern", p);
    char *gbnf = NULL;
    Status st = jsonschema_to_gbnf(v, &gbnf, err);
    if (st == STATUS_OK) { /* the compiler promises GBNF the grammar module takes */
        Grammar *g = NULL;
        cr_expect(grammar_parse(&g, gbnf, strlen(gbnf), NULL, err) == STATUS_OK, "%s", err->msg);
        grammar_free(g);
    }
    free(gbnf);
    json_decref(v);
    return st;
}

Test(jsonschema, pattern_limits) {
    Err err = {0};
    size_t n = JSONSCHEMA_MAX_PATTERN;
    char *p = malloc(n + 2);
    memset(p, 'a', n);
    p[n] = 0;
    cr_expect(pattern_status(p, &err) == STATUS_OK, "%zu bytes: %s", n, err.msg);
    p[n] = 'a';
    p[n + 1] = 0;
    cr_expect(pattern_status(p, &err) == STATUS_LIMIT);
    cr_expect(strstr(err.msg, "JSONSCHEMA_MAX_PATTERN"), "%s", err.msg);
    free(p);

    /* groups: JSONSCHEMA_MAX_DEPTH deep compile, one more is STATUS_LIMIT */
    char deep[4 * JSONSCHEMA_MAX_DEPTH + 8];
    for (int d = JSONSCHEMA_MAX_DEPTH; d <= JSONSCHEMA_MAX_DEPTH + 1; d++) {
        size_t k = 0;
        for (int i = 0; i < d; i++)
            deep[k++] = '(';
        deep[k++] = 'a';
        for (int i = 0; i < d; i++)
            deep[k++] = ')';
        deep[k] = 0;
        Status want = d > JSONSCHEMA_MAX_DEPTH ? STATUS_LIMIT : STATUS_OK;
        cr_expect(pattern_status(deep, &err) == want, "%d groups: %s", d, err.msg);
    }
    cr_expect(strstr(err.msg, "JSONSCHEMA_MAX_DEPTH"), "%s", err.msg);

    /* counted repetition: m up to GRAMMAR_MAX_REPEAT, n clamped to it */
    cr_expect(pattern_status("^a{1000}$", &err) == STATUS_OK, "%s", err.msg);
    cr_expect(pattern_status("^a{1001}$", &err) == STATUS_LIMIT);
    cr_expect(strstr(err.msg, "GRAMMAR_MAX_REPEAT"), "%s", err.msg);
    Grammar *g = compile("{\"type\":\"string\",\"pattern\":\"^a{2,99999}$\"}");
    char text[GRAMMAR_MAX_REPEAT + 8];
    text[0] = '"';
    memset(text + 1, 'a', GRAMMAR_MAX_REPEAT + 1);
    text[GRAMMAR_MAX_REPEAT + 1] = '"';
    cr_expect(grammar_matches(g, text, GRAMMAR_MAX_REPEAT + 2), "%d a's", GRAMMAR_MAX_REPEAT);
    text[GRAMMAR_MAX_REPEAT + 2] = '"';
    cr_expect(!grammar_matches(g, text, GRAMMAR_MAX_REPEAT + 3), "a subset: not more");
    grammar_free(g);

    /* many nullable parts in a row stay linear (no exponential expansion) */
    char seq[4 * 400 + 8];
    size_t k = 0;
    seq[k++] = '^';
    for (int i = 0; i < 400; i++)
        k += (size_t)snprintf(seq + k, sizeof seq - k, "(a|)");
    seq[k++] = '$';
    seq[k] = 0;
    json_t *v = json_pack("{s:s,s:s}", "type", "string", "pattern", seq);
    char *gbnf = NULL;
    cr_assert(jsonschema_to_gbnf(v, &gbnf, &err) == STATUS_OK, "%s", err.msg);
    cr_assert(grammar_parse(&g, gbnf, strlen(gbnf), NULL, &err) == STATUS_OK, "%s", err.msg);
    cr_expect(grammar_matches(g, "\"aaa\"", 5));
    cr_expect(!grammar_matches(g, "\"ab\"", 4));
    grammar_free(g);
    free(gbnf);
    json_decref(v);
}

/* {"properties":{"a":{"properties":{"a":...}}}} n deep */
static char *nested(int n) {
    size_t cap = (size_t)n * 32 + 16, len = 0;
    char *s = malloc(cap);
    for (int i = 0; i < n; i++)
        len += (size_t)snprintf(s + len, cap - len, "{\"properties\":{\"a\":");
    len += (size_t)snprintf(s + len, cap - len, "{}");
    for (int i = 0; i < n; i++)
        len += (size_t)snprintf(s + len, cap - len, "}}");
    return s;
}

Test(jsonschema, limits_say_which) {
    char *deep = nested(JSONSCHEMA_MAX_DEPTH + 5);
    json_t *v = load(deep);
    char *gbnf = NULL;
    Err err = {0};
    cr_expect(jsonschema_to_gbnf(v, &gbnf, &err) == STATUS_LIMIT);
    cr_expect(strstr(err.msg, "JSONSCHEMA_MAX_DEPTH"), "%s", err.msg);
    json_decref(v);
    free(deep);
    deep = nested(JSONSCHEMA_MAX_DEPTH - 2); /* under the limit: compiles */
    v = load(deep);
    cr_expect(jsonschema_to_gbnf(v, &gbnf, &err) == STATUS_OK, "%s", err.msg);
    free(gbnf);
    json_decref(v);
    free(deep);

    json_t *props = json_object();
    for (int i = 0; i <= JSONSCHEMA_MAX_PROPERTIES; i++) {
        char k[16];
        snprintf(k, sizeof k, "p%d", i);
        json_object_set_new(props, k, json_object());
    }
    v = json_pack("{s:o}", "properties", props);
    cr_expect(jsonschema_to_gbnf(v, &gbnf, &err) == STATUS_LIMIT);
    cr_expect(strstr(err.msg, "JSONSCHEMA_MAX_PROPERTIES"), "%s", err.msg);
    json_decref(v);

    json_t *en = json_array();
    for (int i = 0; i <= JSONSCHEMA_MAX_ENUM; i++)
        json_array_append_new(en, json_integer(i));
    v = json_pack("{s:o}", "enum", en);
    cr_expect(jsonschema_to_gbnf(v, &gbnf, &err) == STATUS_LIMIT);
    cr_expect(strstr(err.msg, "JSONSCHEMA_MAX_ENUM"), "%s", err.msg);
    json_decref(v);

    /* many refs to many defs, each a long string enum: the byte limit */
    json_t *defs = json_object(), *any = json_array();
    for (int i = 0; i < 200; i++) {
        char k[16], r[32];
        snprintf(k, sizeof k, "d%d", i);
        snprintf(r, sizeof r, "#/$defs/d%d", i);
        json_t *e = json_array();
        for (int j = 0; j < 1000; j++) {
            char val[32];
            snprintf(val, sizeof val, "value-%d-%d", i, j);
            json_array_append_new(e, json_string(val));
        }
        json_object_set_new(defs, k, json_pack("{s:o}", "enum", e));
        json_array_append_new(any, json_pack("{s:s}", "$ref", r));
    }
    v = json_pack("{s:o,s:o}", "$defs", defs, "anyOf", any);
    cr_expect(jsonschema_to_gbnf(v, &gbnf, &err) == STATUS_LIMIT);
    cr_expect(strstr(err.msg, "JSONSCHEMA_MAX_BYTES"), "%s", err.msg);
    json_decref(v);

    /* maxItems past GRAMMAR_MAX_REPEAT admits at most that many */
    Grammar *g = compile("{\"type\":\"array\",\"items\":{\"const\":0},\"maxItems\":100000}");
    size_t cap = 2 * (GRAMMAR_MAX_REPEAT + 2) + 8, len = 0;
    char *text = malloc(cap);
    text[len++] = '[';
    for (int i = 0; i < GRAMMAR_MAX_REPEAT; i++)
        len += (size_t)snprintf(text + len, cap - len, i ? ",0" : "0");
    text[len++] = ']';
    cr_expect(grammar_matches(g, text, len), "%d items", GRAMMAR_MAX_REPEAT);
    memcpy(text + len - 1, ",0]", 3);
    cr_expect(!grammar_matches(g, text, len + 2), "%d items", GRAMMAR_MAX_REPEAT + 1);
    free(text);
    grammar_free(g);
}

static int count(const char *hay, const char *needle) {
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p++)
        n++;
    return n;
}

Test(jsonschema, schemas_compose_in_one_buffer) {
    JsonSchemaBuf b;
    jsonschema_buf_init(&b);
    json_t *s1 = load("{\"type\":\"object\",\"properties\":{\"x\":{\"type\":\"string\"}},"
                      "\"required\":[\"x\"],\"additionalProperties\":false}");
    json_t *s2 = load("{\"type\":\"array\",\"items\":{\"type\":\"string\"}}");
    json_t *bad = load("{\"type\":\"string\",\"pattern\":\"(?=x)\"}");
    char r1[JSONSCHEMA_MAX_RULE_NAME], r2[JSONSCHEMA_MAX_RULE_NAME], r3[8];
    Err err = {0};
    cr_assert(jsonschema_compile(&b, s1, "f1-args", r1, sizeof r1, &err) == STATUS_OK, "%s",
              err.msg);
    cr_assert(jsonschema_compile(&b, s2, "f2-args", r2, sizeof r2, &err) == STATUS_OK, "%s",
              err.msg);
    cr_expect_str_eq(r1, "f1-args");
    size_t len = b.len;
    cr_expect(jsonschema_compile(&b, bad, "f3", r3, sizeof r3, &err) == STATUS_UNSUPPORTED);
    cr_expect(b.len == len, "a failed compile leaves the buffer as it was");
    cr_expect(jsonschema_compile(&b, s2, "f1-args", r3, sizeof r3, &err) == STATUS_INVALID);
    cr_expect(strstr(err.msg, "clashes"), "%s", err.msg);
    cr_expect(jsonschema_compile(&b, s2, "f1", r3, sizeof r3, &err) == STATUS_INVALID,
              "f1's helpers would be f1-..., as f1-args is");
    cr_expect(jsonschema_compile(&b, s2, "json-x", r3, sizeof r3, &err) == STATUS_INVALID);
    cr_expect(jsonschema_compile(&b, s2, "a b", r3, sizeof r3, &err) == STATUS_INVALID);
    cr_expect(jsonschema_buf_use(&b, JSONSCHEMA_VALUE_RULE, &err) == STATUS_OK);
    const char *root = "root ::= \"<call>\" ( f1-args | f2-args ) \"</call>\" | json-value\n";
    cr_assert(jsonschema_buf_append(&b, root, strlen(root), &err) == STATUS_OK);
    cr_expect(count(b.text, "json-ws ::=") == 1, "shared rules once:\n%s", b.text);
    cr_expect(count(b.text, "json-string ::=") == 1);
    Grammar *g = NULL;
    cr_assert(grammar_parse(&g, b.text, b.len, NULL, &err) == STATUS_OK, "%s\n%s", err.msg, b.text);
    const char *yes[] = {"<call>{\"x\":\"a\"}</call>", "<call>[\"a\",\"b\"]</call>", "[1,{}]"};
    const char *no[] = {"<call>{}</call>", "<call>[1]</call>", "<call>{\"x\":\"a\"}"};
    for (int i = 0; i < 3; i++) {
        cr_expect(grammar_matches(g, yes[i], strlen(yes[i])), "%s", yes[i]);
        cr_expect(!grammar_matches(g, no[i], strlen(no[i])), "%s", no[i]);
    }
    grammar_free(g);
    json_decref(s1);
    json_decref(s2);
    json_decref(bad);
    jsonschema_buf_free(&b);
    jsonschema_buf_free(&b); /* a zeroed buffer is fine */
}

Test(jsonschema, json_object_grammar) {
    const char *t = jsonschema_object_gbnf();
    Grammar *g = NULL;
    Err err = {0};
    cr_assert(grammar_parse(&g, t, strlen(t), NULL, &err) == STATUS_OK, "%s", err.msg);
    const char *yes[] = {"{}", "{\"a\":[1,2.5e3,\"x\",null,true,{\"b\":{}}]}", "{ \"a\" : 1 }"};
    const char *no[] = {"[]", "1", "{\"a\"}", "{\"a\":1,}", "{} ", "{\"a\":01}"};
    for (size_t i = 0; i < 3; i++)
        cr_expect(grammar_matches(g, yes[i], strlen(yes[i])), "%s", yes[i]);
    for (size_t i = 0; i < 6; i++)
        cr_expect(!grammar_matches(g, no[i], strlen(no[i])), "%s", no[i]);
    grammar_free(g);
}

Test(jsonschema, whitespace_is_bounded) {
    Grammar *g = compile("{\"type\":\"array\",\"items\":{\"type\":\"integer\"}}");
    char text[64];
    snprintf(text, sizeof text, "[\n%*s1]", 20, "");
    cr_expect(grammar_matches(g, text, strlen(text)), "20 spaces of indent");
    snprintf(text, sizeof text, "[\n%*s1]", 21, "");
    cr_expect(!grammar_matches(g, text, strlen(text)), "21 spaces of indent");
    cr_expect(!grammar_matches(g, "[1,\n\n2]", 7), "two newlines");
    grammar_free(g);
}
