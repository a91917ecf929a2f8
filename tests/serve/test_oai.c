/* test_oai.c - serve/oai.c: request parsing and validation (every field's
 * wrong type and range gives 400 naming the field; limits; hostile JSON:
 * depth, encoding, numbers, truncation at every offset, trailing bytes),
 * the filled request struct, and the response builders re-parsed by
 * jansson and by Python's json module. The U+FFFD replacement is checked
 * against Python's bytes.decode("utf-8", "replace") as the oracle. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "serve/oai.h"

/* ---- helpers ---- */

#define USER_MSG "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]"

static Status chat(const char *body, OaiRequest *req, OaiError *e) {
    memset(e, 0, sizeof *e);
    return oai_parse_chat(body, strlen(body), NULL, req, e);
}

/* Parse 'body' as kind; expect a rejection with 'status', 'param' ("" for
 * none) and 'needle' in the message (NULL: any). */
static void expect_err_kind(OaiKind kind, const char *body, int status, const char *param,
                            const char *needle) {
    OaiRequest req;
    OaiError e = {0};
    memset(&req, 0x5a, sizeof req);
    Status st = kind == OAI_CHAT ? oai_parse_chat(body, strlen(body), NULL, &req, &e)
                                 : oai_parse_completion(body, strlen(body), NULL, &req, &e);
    cr_assert_neq(st, STATUS_OK, "%s: accepted, expected %d on '%s'", body, status, param);
    cr_expect_eq(e.status, status, "%s: status %d want %d (%s)", body, e.status, status, e.message);
    cr_expect_str_eq(e.param, param, "%s: param '%s' want '%s' (%s)", body, e.param, param,
                     e.message);
    if (status == 400 || status == 413)
        cr_expect_str_eq(e.type, "invalid_request_error", "%s: type %s", body, e.type);
    if (needle)
        cr_expect(strstr(e.message, needle), "%s: message '%s' lacks '%s'", body, e.message,
                  needle);
    cr_expect_null(req.root, "%s: req not zeroed", body);
    cr_expect_null(req.messages);
    cr_expect_eq(req.n_stop, 0);
}

static void expect_err(const char *body, const char *param, const char *needle) {
    expect_err_kind(OAI_CHAT, body, 400, param, needle);
}

/* A chat body with one user message and 'extra' fields. */
static char *with(const char *extra) {
    char *b = NULL;
    cr_assert(asprintf(&b, "{" USER_MSG ",%s}", extra) > 0);
    return b;
}

static void expect_field_err(const char *extra, const char *param, const char *needle) {
    char *b = with(extra);
    expect_err(b, param, needle);
    free(b);
}

static void parse_ok(const char *body, OaiRequest *req) {
    OaiError e;
    Status st = chat(body, req, &e);
    cr_assert_eq(st, STATUS_OK, "%s: rejected: %d %s (param %s)", body, e.status, e.message,
                 e.param);
}

static void field_ok(const char *extra, OaiRequest *req) {
    char *b = with(extra);
    parse_ok(b, req);
    free(b);
}

/* ---- wrong types: every field ---- */

Test(oai_types, every_field_wrong_type) {
    static const struct {
        const char *extra, *param;
    } cases[] = {
        {"\"model\":1", "model"},
        {"\"n\":\"1\"", "n"},
        {"\"n\":true", "n"},
        {"\"n\":[1]", "n"},
        {"\"stream\":1", "stream"},
        {"\"stream\":\"true\"", "stream"},
        {"\"stream\":true,\"stream_options\":1", "stream_options"},
        {"\"stream\":true,\"stream_options\":{\"include_usage\":1}",
         "stream_options.include_usage"},
        {"\"stop\":1", "stop"},
        {"\"stop\":{}", "stop"},
        {"\"stop\":[\"a\",1]", "stop[1]"},
        {"\"max_tokens\":\"5\"", "max_tokens"},
        {"\"max_completion_tokens\":true", "max_completion_tokens"},
        {"\"temperature\":\"1\"", "temperature"},
        {"\"top_p\":[]", "top_p"},
        {"\"top_k\":\"3\"", "top_k"},
        {"\"min_p\":{}", "min_p"},
        {"\"seed\":\"1\"", "seed"},
        {"\"seed\":false", "seed"},
        {"\"presence_penalty\":\"x\"", "presence_penalty"},
        {"\"frequency_penalty\":true", "frequency_penalty"},
        {"\"repeat_penalty\":\"1\"", "repeat_penalty"},
        {"\"logit_bias\":[]", "logit_bias"},
        {"\"logit_bias\":\"x\"", "logit_bias"},
        {"\"logit_bias\":{\"5\":\"x\"}", "logit_bias.5"},
        {"\"logit_bias\":{\"5\":true}", "logit_bias.5"},
        {"\"logprobs\":1", "logprobs"},
        {"\"logprobs\":true,\"top_logprobs\":\"1\"", "top_logprobs"},
        {"\"user\":1", "user"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_field_err(cases[i].extra, cases[i].param, "expected");
}

Test(oai_types, integers_reject_fractions_and_accept_integral_reals) {
    expect_field_err("\"n\":1.5", "n", "1.5 is not an integer");
    expect_field_err("\"top_k\":2.25", "top_k", "not an integer");
    expect_field_err("\"seed\":0.5", "seed", "not an integer");
    OaiRequest req;
    field_ok("\"n\":2.0,\"max_tokens\":7e0,\"top_k\":4.0,\"seed\":1e3", &req);
    cr_expect_eq(req.n, 2);
    cr_expect_eq(req.max_tokens, 7);
    cr_expect_eq(req.top_k, 4);
    cr_expect_eq(req.seed, 1000u);
    oai_request_free(&req);
}

/* ---- ranges ---- */

Test(oai_ranges, out_of_range_values) {
    static const struct {
        const char *extra, *param, *needle;
    } cases[] = {
        {"\"n\":0", "n", "0 is below the minimum 1"},
        {"\"n\":17", "n", "17 is above the limit 16"},
        {"\"n\":1000000", "n", "1000000 is above the limit 16"},
        {"\"max_tokens\":0", "max_tokens", "below the minimum 1"},
        {"\"max_tokens\":-5", "max_tokens", "-5 is below"},
        {"\"max_tokens\":1048577", "max_tokens", "1048577 is above the limit 1048576"},
        {"\"max_tokens\":1e12", "max_tokens", "1000000000000 is above the limit 1048576"},
        {"\"max_tokens\":1e300", "max_tokens", "1e+300 is above the limit 1048576"},
        {"\"max_completion_tokens\":0", "max_completion_tokens", "below the minimum 1"},
        {"\"max_tokens\":5,\"max_completion_tokens\":2000000", "max_completion_tokens", "above"},
        {"\"temperature\":-0.1", "temperature", "out of range [0, 2]"},
        {"\"temperature\":2.01", "temperature", "2.01"},
        {"\"top_p\":1.5", "top_p", "out of range [0, 1]"},
        {"\"top_p\":-1", "top_p", "out of range"},
        {"\"top_k\":-1", "top_k", "-1 is below the minimum 0"},
        {"\"top_k\":4294967296", "top_k", "above the limit"},
        {"\"min_p\":1.1", "min_p", "out of range"},
        {"\"presence_penalty\":-2.5", "presence_penalty", "out of range [-2, 2]"},
        {"\"frequency_penalty\":3", "frequency_penalty", "out of range [-2, 2]"},
        {"\"repeat_penalty\":0", "repeat_penalty", "out of range (0, 10]"},
        {"\"repeat_penalty\":10.5", "repeat_penalty", "out of range"},
        {"\"seed\":1e19", "seed", "above the limit"},
        {"\"seed\":-1e19", "seed", "below the minimum"},
        {"\"logit_bias\":{\"5\":101}", "logit_bias.5", "out of range [-100, 100]"},
        {"\"logit_bias\":{\"7\":-100.5}", "logit_bias.7", "out of range"},
        {"\"logit_bias\":{\"abc\":1}", "logit_bias", "'abc' is not a token id"},
        {"\"logit_bias\":{\"-1\":1}", "logit_bias", "not a token id"},
        {"\"logit_bias\":{\"+1\":1}", "logit_bias", "not a token id"},
        {"\"logit_bias\":{\"\":1}", "logit_bias", "not a token id"},
        {"\"logit_bias\":{\"1.0\":1}", "logit_bias", "not a token id"},
        {"\"logit_bias\":{\"2147483648\":1}", "logit_bias", "not a token id"},
        {"\"logit_bias\":{\"99999999999999999999999\":1}", "logit_bias", "not a token id"},
        {"\"logprobs\":true,\"top_logprobs\":21", "top_logprobs", "21 is above the limit 20"},
        {"\"logprobs\":true,\"top_logprobs\":-1", "top_logprobs", "below the minimum 0"},
        {"\"top_logprobs\":5", "top_logprobs", "only allowed when logprobs is true"},
        {"\"logprobs\":false,\"top_logprobs\":0", "top_logprobs", "logprobs is true"},
        {"\"stream_options\":{\"include_usage\":true}", "stream_options", "stream is true"},
        {"\"stream\":false,\"stream_options\":{}", "stream_options", "stream is true"},
        {"\"stop\":\"\"", "stop", "empty"},
        {"\"stop\":[\"a\",\"\"]", "stop[1]", "empty"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_field_err(cases[i].extra, cases[i].param, cases[i].needle);
}

Test(oai_ranges, edges_accepted) {
    OaiRequest req;
    field_ok("\"temperature\":0,\"top_p\":0,\"min_p\":1,\"presence_penalty\":-2,"
             "\"frequency_penalty\":2,\"repeat_penalty\":10,\"n\":16,\"max_tokens\":1048576,"
             "\"logit_bias\":{\"2147483647\":100,\"0\":-100},\"logprobs\":true,\"top_logprobs\":20,"
             "\"seed\":9223372036854775807",
             &req);
    cr_expect_eq(req.temperature, 0.0f);
    cr_expect_eq(req.top_p, 0.0f);
    cr_expect_eq(req.min_p, 1.0f);
    cr_expect_eq(req.presence_penalty, -2.0f);
    cr_expect_eq(req.frequency_penalty, 2.0f);
    cr_expect_eq(req.repeat_penalty, 10.0f);
    cr_expect_eq(req.n, 16);
    cr_expect_eq(req.max_tokens, 1048576);
    cr_expect_eq(req.top_logprobs, 20);
    cr_expect(req.has_seed);
    cr_expect_eq(req.seed, 9223372036854775807ull);
    cr_assert_eq(req.n_bias, 2);
    /* jansson keeps insertion order */
    cr_expect_eq(req.bias[0].token, 2147483647);
    cr_expect_eq(req.bias[0].bias, 100.0f);
    cr_expect_eq(req.bias[1].token, 0);
    cr_expect_eq(req.bias[1].bias, -100.0f);
    oai_request_free(&req);

    field_ok("\"seed\":-1", &req);
    cr_expect_eq(req.seed, UINT64_MAX, "negative seeds wrap");
    oai_request_free(&req);
    field_ok("\"seed\":-9223372036854775808", &req);
    cr_expect_eq(req.seed, 1ull << 63);
    oai_request_free(&req);
}

/* ---- limits ---- */

Test(oai_limits, body_size_413) {
    OaiLimits lim = oai_default_limits();
    cr_expect_eq(lim.max_body_bytes, OAI_MAX_BODY_BYTES);
    size_t n = OAI_MAX_BODY_BYTES + 1;
    char *big = malloc(n);
    cr_assert(big);
    memset(big, ' ', n);
    memcpy(big, "{\"a\":1}", 7);
    OaiRequest req;
    OaiError e = {0};
    cr_assert_neq(oai_parse_chat(big, n, &lim, &req, &e), STATUS_OK);
    cr_expect_eq(e.status, 413);
    cr_expect_str_eq(e.type, "invalid_request_error");
    cr_expect_str_eq(e.code, "request_too_large");
    cr_expect(strstr(e.message, "8388608"), "%s", e.message);
    cr_expect_null(oai_parse_object(big, n, NULL, &e));
    cr_expect_eq(e.status, 413);
    /* exactly at the limit: parsed (whitespace after the object is fine) */
    json_t *o = oai_parse_object(big, n - 1, NULL, &e);
    cr_expect(o, "%s", e.message);
    json_decref(o);
    free(big);

    lim.max_body_bytes = 10;
    const char *b = "{\"messages\":1}";
    cr_assert_neq(oai_parse_chat(b, strlen(b), &lim, &req, &e), STATUS_OK);
    cr_expect_eq(e.status, 413);
}

Test(oai_limits, depth_100k_rejected) {
    size_t n = 100000;
    char *b = malloc(2 * n + 16);
    cr_assert(b);
    for (size_t i = 0; i < n; i++)
        b[i] = '[';
    for (size_t i = 0; i < n; i++)
        b[n + i] = ']';
    OaiError e = {0};
    cr_expect_null(oai_parse_object(b, 2 * n, NULL, &e));
    cr_expect_eq(e.status, 400);
    cr_expect(strstr(e.message, "nesting deeper than 64"), "%s", e.message);
    /* objects inside a chat body, unterminated */
    size_t k = 0;
    k += (size_t)sprintf(b, "{\"messages\":");
    while (k + 5 < 2 * n) {
        memcpy(b + k, "{\"a\":", 5);
        k += 5;
    }
    OaiRequest req;
    cr_assert_neq(oai_parse_chat(b, k, NULL, &req, &e), STATUS_OK);
    cr_expect_eq(e.status, 400);
    cr_expect(strstr(e.message, "nesting"), "%s", e.message);
    free(b);
}

Test(oai_limits, depth_at_limit) {
    OaiLimits lim = oai_default_limits();
    char b[256];
    int d = lim.max_json_depth;
    for (int i = 0; i < d; i++)
        b[i] = '[', b[2 * d - 1 - i] = ']';
    OaiError e = {0};
    /* 64 levels of arrays: syntax fine, not an object -> the object error */
    cr_expect_null(oai_parse_object(b, 2 * (size_t)d, &lim, &e));
    cr_expect(strstr(e.message, "expected a JSON object"), "%s", e.message);
    lim.max_json_depth = d - 1;
    cr_expect_null(oai_parse_object(b, 2 * (size_t)d, &lim, &e));
    cr_expect(strstr(e.message, "nesting deeper than 63"), "%s", e.message);
}

Test(oai_limits, depth_scanner) {
    static const struct {
        const char *s;
        int want;
    } cases[] = {
        {"", 0},
        {"1", 0},
        {"{}", 1},
        {"[[],[[]]]", 3},
        {"{\"a\":[{\"b\":[]}]}", 4},
        {"\"[[[[\"", 0},
        {"[\"]]]\\\"[[[[\"]", 1},
        {"[\"\\\\\",[[]]]", 3},
        {"]]]][", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        cr_expect_eq(oai_json_depth(cases[i].s, strlen(cases[i].s), 64), cases[i].want,
                     "depth of %s", cases[i].s);
    cr_expect_eq(oai_json_depth("[[[[[[", 6, 3), 4, "stops at limit + 1");
    cr_expect_eq(oai_json_depth("[[[]]]", 6, 3), 3);
}

Test(oai_limits, brackets_in_strings_do_not_count) {
    char content[300];
    memset(content, '[', 200);
    content[200] = '\0';
    char *b = NULL;
    cr_assert(asprintf(&b, "{\"messages\":[{\"role\":\"user\",\"content\":\"\\\"%s\"}]}", content) >
              0);
    OaiRequest req;
    parse_ok(b, &req);
    oai_request_free(&req);
    free(b);
}

static char *messages_body(int n) {
    size_t cap = 64 + (size_t)n * 40;
    char *b = malloc(cap), *p = b;
    p += sprintf(p, "{\"messages\":[");
    for (int i = 0; i < n; i++)
        p += sprintf(p, "%s{\"role\":\"user\",\"content\":\"m\"}", i ? "," : "");
    sprintf(p, "]}");
    return b;
}

Test(oai_limits, messages_count) {
    char *b = messages_body(OAI_MAX_MESSAGES);
    OaiRequest req;
    parse_ok(b, &req);
    cr_expect_eq(json_array_size(req.messages), OAI_MAX_MESSAGES);
    oai_request_free(&req);
    free(b);
    b = messages_body(OAI_MAX_MESSAGES + 1);
    expect_err(b, "messages", "1025 messages is above the limit of 1024");
    free(b);
    expect_err("{\"messages\":[]}", "messages", "at least one");
}

Test(oai_limits, stop_count_and_length) {
    OaiRequest req;
    field_ok("\"stop\":[\"a\",\"bb\",\"\\n\",\"\\u00e9\"]", &req);
    cr_assert_eq(req.n_stop, 4);
    cr_expect_str_eq(req.stop[0], "a");
    cr_expect_str_eq(req.stop[1], "bb");
    cr_expect_str_eq(req.stop[2], "\n");
    cr_expect_str_eq(req.stop[3], "\xc3\xa9");
    oai_request_free(&req);
    expect_field_err("\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\"]", "stop",
                     "5 stop strings is above the limit of 4");

    char s[OAI_MAX_STOP_BYTES + 2];
    memset(s, 'x', sizeof s);
    s[OAI_MAX_STOP_BYTES] = '\0';
    char *extra = NULL;
    cr_assert(asprintf(&extra, "\"stop\":\"%s\"", s) > 0);
    field_ok(extra, &req);
    cr_expect_eq(strlen(req.stop[0]), OAI_MAX_STOP_BYTES);
    oai_request_free(&req);
    free(extra);
    s[OAI_MAX_STOP_BYTES] = 'x';
    s[OAI_MAX_STOP_BYTES + 1] = '\0';
    cr_assert(asprintf(&extra, "\"stop\":[\"ok\",\"%s\"]", s) > 0);
    expect_field_err(extra, "stop[1]", "257 bytes is above the limit of 256 bytes");
    free(extra);
}

static char *bias_extra(int n) {
    char *b = malloc(32 + (size_t)n * 16), *p = b;
    p += sprintf(p, "\"logit_bias\":{");
    for (int i = 0; i < n; i++)
        p += sprintf(p, "%s\"%d\":%d", i ? "," : "", i, i % 201 - 100);
    sprintf(p, "}");
    return b;
}

Test(oai_limits, logit_bias_count) {
    char *x = bias_extra(OAI_MAX_LOGIT_BIAS);
    OaiRequest req;
    field_ok(x, &req);
    cr_assert_eq(req.n_bias, OAI_MAX_LOGIT_BIAS);
    for (int i = 0; i < req.n_bias; i++) {
        cr_expect_eq(req.bias[i].token, i);
        cr_expect_eq(req.bias[i].bias, (float)(i % 201 - 100));
    }
    oai_request_free(&req);
    free(x);
    x = bias_extra(OAI_MAX_LOGIT_BIAS + 1);
    expect_field_err(x, "logit_bias", "301 entries is above the limit of 300");
    free(x);
}

Test(oai_limits, model_and_user_length) {
    char s[OAI_MAX_MODEL_BYTES + 2];
    memset(s, 'm', sizeof s - 1);
    s[sizeof s - 1] = '\0';
    char *x = NULL;
    cr_assert(asprintf(&x, "\"model\":\"%s\"", s) > 0);
    expect_field_err(x, "model", "257 bytes is above the limit of 256 bytes");
    free(x);
    cr_assert(asprintf(&x, "\"user\":\"%s\"", s) > 0);
    expect_field_err(x, "user", "above the limit of 256 bytes");
    free(x);
    s[OAI_MAX_MODEL_BYTES] = '\0';
    cr_assert(asprintf(&x, "\"model\":\"%s\",\"user\":\"%s\"", s, s) > 0);
    OaiRequest req;
    field_ok(x, &req);
    cr_expect_str_eq(req.model, s);
    cr_expect_str_eq(req.user, s);
    oai_request_free(&req);
    free(x);
}

Test(oai_limits, custom_limits) {
    OaiLimits lim = oai_default_limits();
    lim.max_n = 2;
    lim.max_tokens = 100;
    lim.max_messages = 1;
    lim.max_logit_bias = 1;
    OaiRequest req;
    OaiError e = {0};
    const char *b = "{" USER_MSG ",\"n\":3}";
    cr_assert_neq(oai_parse_chat(b, strlen(b), &lim, &req, &e), STATUS_OK);
    cr_expect(strstr(e.message, "above the limit 2"), "%s", e.message);
    b = "{" USER_MSG ",\"max_tokens\":101}";
    cr_assert_neq(oai_parse_chat(b, strlen(b), &lim, &req, &e), STATUS_OK);
    cr_expect(strstr(e.message, "above the limit 100"), "%s", e.message);
    b = "{" USER_MSG ",\"logit_bias\":{\"1\":1,\"2\":2}}";
    cr_assert_neq(oai_parse_chat(b, strlen(b), &lim, &req, &e), STATUS_OK);
    cr_expect_str_eq(e.param, "logit_bias");
    b = "{\"messages\":[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"user\",\"content\":\"b\"}"
        "]}";
    cr_assert_neq(oai_parse_chat(b, strlen(b), &lim, &req, &e), STATUS_OK);
    cr_expect_str_eq(e.param, "messages");
}

/* ---- syntax and encoding ---- */

Test(oai_syntax, encoding_and_numbers) {
    static const char *bad[] = {
        "{\"messages\":[{\"role\":\"user\",\"content\":\"\xff\"}]}",
        "{\"messages\":[{\"role\":\"user\",\"content\":\"\xc0\xaf\"}]}",     /* overlong */
        "{\"messages\":[{\"role\":\"user\",\"content\":\"\xed\xa0\x80\"}]}", /* raw surrogate */
        "{\"messages\":[{\"role\":\"user\",\"content\":\"\xe4\xbd\"}]}",     /* truncated seq */
        "{\"messages\":[{\"role\":\"user\",\"content\":\"\\ud800\"}]}",      /* lone high */
        "{\"messages\":[{\"role\":\"user\",\"content\":\"\\udc00x\"}]}",     /* lone low */
        "{\"messages\":[{\"role\":\"user\",\"content\":\"\\ud800\\u0041\"}]}",
        "{\"messages\":[{\"role\":\"user\",\"content\":\"a\\u0000b\"}]}",
        "{" USER_MSG ",\"n\":01}",
        "{" USER_MSG ",\"n\":NaN}",
        "{" USER_MSG ",\"n\":Infinity}",
        "{" USER_MSG "} x",
        "{" USER_MSG "}{}",
        "{" USER_MSG ",}",
        "{'messages':[]}",
        "",
        "   ",
        "null",
        "[]",
        "\"str\"",
        "42",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_err(bad[i], "", "request body");
    expect_err("[]", "", "expected a JSON object (got array)");
    OaiRequest req;
    parse_ok("{\"messages\":[{\"role\":\"user\",\"content\":\"\\ud83d\\ude00 \xf0\x9f\x98\x80\"}]}",
             &req);
    const char *c = json_string_value(json_object_get(json_array_get(req.messages, 0), "content"));
    cr_expect_str_eq(c, "\xf0\x9f\x98\x80 \xf0\x9f\x98\x80");
    oai_request_free(&req);
    parse_ok("\n{" USER_MSG "}\r\n\t ", &req);
    oai_request_free(&req);
}

/* Numbers JSON allows but 64 bits cannot hold: 400 naming the field they
 * are in, at any depth (jansson refuses them while parsing; the param comes
 * from oai_json_path_at). */
Test(oai_syntax, numbers_past_64_bits_name_their_field) {
    static const struct {
        const char *extra, *param;
    } cases[] = {
        {"\"seed\":18446744073709551616", "seed"},
        {"\"seed\":-99999999999999999999", "seed"},
        {"\"max_completion_tokens\":9223372036854775808", "max_completion_tokens"},
        {"\"max_tokens\":123456789012345678901234567890", "max_tokens"},
        {"\"n\":99999999999999999999", "n"},
        {"\"temperature\":1e400", "temperature"},
        {"\"top_k\":18446744073709551616", "top_k"},
        {"\"logit_bias\":{\"5\":99999999999999999999}", "logit_bias.5"},
        {"\"unknown_field\":1e999", "unknown_field"},
        {"\"stream_options\":{\"x\":[1,2,99999999999999999999]}", "stream_options.x[2]"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *b = with(cases[i].extra);
        expect_err(b, cases[i].param, "line 1");
        free(b);
    }
    expect_err("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"},{\"role\":\"user\","
               "\"content\":\"x\",\"w\":-1e999}]}",
               "messages[1].w", "64 bits");
    /* the largest values that fit still parse and are range-checked as usual */
    char *b = with("\"seed\":9223372036854775807");
    OaiRequest req;
    parse_ok(b, &req);
    cr_expect(req.has_seed);
    oai_request_free(&req);
    free(b);
}

Test(oai_syntax, json_path_at) {
    const char *j = "{\"a\":[1,{\"b\":[0,0,\"x\\\"y\"]}],\"c\":{\"d\":5}}";
    static const struct {
        const char *at, *path;
    } cases[] = {{"[1", "a[0]"},         {"1,", "a[0]"}, {"{\"b", "a[1]"}, {"0,\"x", "a[1].b[1]"},
                 {"\"x\\", "a[1].b[2]"}, {"5}", "c.d"},  {"\"c", ""}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[OAI_MAX_PARAM_BYTES];
        size_t off = (size_t)(strstr(j, cases[i].at) - j) + 1;
        oai_json_path_at(j, strlen(j), off, out, sizeof out);
        cr_expect_str_eq(out, cases[i].path, "offset %zu ('%s')", off, cases[i].at);
    }
}

Test(oai_syntax, truncated_at_every_offset) {
    const char *b =
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\","
        "\"text\":\"h\\u00e9\"}]}],\"stop\":[\"x\"],\"logit_bias\":{\"3\":-1.5},"
        "\"temperature\":0.5}";
    size_t n = strlen(b);
    OaiRequest req;
    OaiError e;
    for (size_t k = 0; k < n; k++) {
        char *copy = malloc(k ? k : 1); /* exact size: ASan sees any read past the end */
        memcpy(copy, b, k);
        memset(&e, 0, sizeof e);
        cr_expect_neq(oai_parse_chat(copy, k, NULL, &req, &e), STATUS_OK, "prefix %zu accepted", k);
        cr_expect_eq(e.status, 400, "prefix %zu: %d %s", k, e.status, e.message);
        cr_expect_null(req.root);
        free(copy);
    }
    cr_assert_eq(oai_parse_chat(b, n, NULL, &req, &e), STATUS_OK, "%s", e.message);
    oai_request_free(&req);
}

/* ---- messages ---- */

Test(oai_messages, shapes_rejected) {
    static const struct {
        const char *body, *param, *needle;
    } cases[] = {
        {"{}", "messages", "required"},
        {"{\"messages\":null}", "messages", "required"},
        {"{\"messages\":{}}", "messages", "expected an array"},
        {"{\"messages\":\"hi\"}", "messages", "expected an array"},
        {"{\"messages\":[1]}", "messages[0]", "expected an object"},
        {"{\"messages\":[{\"content\":\"x\"}]}", "messages[0].role", "required"},
        {"{\"messages\":[{\"role\":1,\"content\":\"x\"}]}", "messages[0].role",
         "expected a string"},
        {"{\"messages\":[{\"role\":\"bot\",\"content\":\"x\"}]}", "messages[0].role",
         "unknown role 'bot'"},
        {"{\"messages\":[{\"role\":\"user\"}]}", "messages[0].content", "required"},
        {"{\"messages\":[{\"role\":\"system\",\"content\":null}]}", "messages[0].content",
         "required"},
        {"{\"messages\":[{\"role\":\"tool\",\"content\":null}]}", "messages[0].content",
         "required"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"assistant\"}]}",
         "messages[1].content", "required"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"assistant\","
         "\"content\":null}]}",
         "messages[1].content", "with tool_calls"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":1}]}", "messages[0].content",
         "expected a string or an array of text parts"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":{}}]}", "messages[0].content", "expected"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"a\",\"name\":5}]}", "messages[0].name",
         "expected a string"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"user\",\"content\":[{"
         "\"type\":\"text\",\"text\":\"a\"},{\"type\":\"image_url\",\"image_url\":{\"url\":\"x\"}}]"
         "}"
         "]}",
         "messages[1].content[1]", "only text parts are supported"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"input_audio\","
         "\"input_audio\":{}}]}]}",
         "messages[0].content[0]", "only text parts are supported"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"file\",\"file\":{}}]}]}",
         "messages[0].content[0]", "only text parts are supported"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":[\"text\"]}]}", "messages[0].content[0]",
         "expected a content part object"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":[{\"text\":\"a\"}]}]}",
         "messages[0].content[0].type", "required"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":1,\"text\":\"a\"}]}]}",
         "messages[0].content[0].type", "expected a string"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\"}]}]}",
         "messages[0].content[0].text", "required"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":[]}]}]}",
         "messages[0].content[0].text", "expected a string"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_err(cases[i].body, cases[i].param, cases[i].needle);
}

Test(oai_messages, shapes_accepted) {
    OaiRequest req;
    parse_ok("{\"messages\":["
             "{\"role\":\"system\",\"content\":\"s\",\"name\":\"n\"},"
             "{\"role\":\"developer\",\"content\":[{\"type\":\"text\",\"text\":\"d\"}]},"
             "{\"role\":\"user\",\"content\":[],\"name\":null},"
             "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"c\","
             "\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]},"
             "{\"role\":\"tool\",\"tool_call_id\":\"c\",\"content\":\"42\"},"
             "{\"role\":\"assistant\",\"content\":\"done\"}]}",
             &req);
    cr_expect_eq(req.kind, OAI_CHAT);
    cr_expect_eq(json_array_size(req.messages), 6);
    cr_expect_eq(req.messages, json_object_get(req.root, "messages"), "borrowed from root");
    oai_request_free(&req);
}

/* A user question, then 'rest' (messages after it). */
#define TURN(rest) "{\"messages\":[{\"role\":\"user\",\"content\":\"q\"}," rest "]}"
#define CALL(id)                                                                                   \
    "{\"id\":\"" id "\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}"
#define ASK(calls) "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[" calls "]}"
#define ANSWER(id) "{\"role\":\"tool\",\"tool_call_id\":\"" id "\",\"content\":\"r\"}"

Test(oai_messages, tool_turns_rejected) {
    static const struct {
        const char *body, *param, *needle;
    } cases[] = {
        {TURN("{\"role\":\"tool\",\"content\":\"r\"}"), "messages[1].tool_call_id", "required"},
        {TURN("{\"role\":\"tool\",\"tool_call_id\":5,\"content\":\"r\"}"),
         "messages[1].tool_call_id", "expected a string"},
        {TURN(ANSWER("c1")), "messages[1].tool_call_id", "has no tool_calls"},
        {"{\"messages\":[" ANSWER("c1") "]}", "messages[0].tool_call_id", "has no tool_calls"},
        {TURN(ASK(CALL("c1")) "," ANSWER("c2")), "messages[2].tool_call_id",
         "is not the id of a tool call in messages[1]"},
        {TURN(ASK(CALL("c1")) "," ANSWER("c1") "," ANSWER("c1")), "messages[3].tool_call_id",
         "already answered"},
        {TURN(ASK(CALL("c1") "," CALL("c2")) "," ANSWER("c2")), "messages[1].tool_calls",
         "'c1' has no answer"},
        {TURN(ASK(CALL("c1")) ",{\"role\":\"user\",\"content\":\"and?\"}," ANSWER("c1")),
         "messages[1].tool_calls", "'c1' has no answer"},
        {TURN(ASK(CALL("c1")) "," ANSWER("c1") ",{\"role\":\"user\",\"content\":\"x\"}," ANSWER(
             "c1")),
         "messages[4].tool_call_id", "messages[3] has no tool_calls"},
        {TURN("{\"role\":\"user\",\"content\":\"x\",\"tool_calls\":[" CALL("c") "]}"),
         "messages[1].tool_calls", "only assistant messages"},
        {TURN("{\"role\":\"assistant\",\"tool_calls\":{}}"), "messages[1].tool_calls",
         "expected an array"},
        {TURN("{\"role\":\"assistant\",\"tool_calls\":[]}"), "messages[1].tool_calls", "empty"},
        {TURN(ASK("5")), "messages[1].tool_calls[0]", "expected an object"},
        {TURN(ASK("{\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"\"}}")),
         "messages[1].tool_calls[0].id", "required"},
        {TURN(ASK(
             "{\"id\":\"c\",\"type\":\"code\",\"function\":{\"name\":\"f\",\"arguments\":\"\"}}")),
         "messages[1].tool_calls[0].type", "only 'function'"},
        {TURN(ASK("{\"id\":\"c\",\"type\":\"function\"}")), "messages[1].tool_calls[0].function",
         "required"},
        {TURN(ASK("{\"id\":\"c\",\"type\":\"function\",\"function\":{\"arguments\":\"\"}}")),
         "messages[1].tool_calls[0].function.name", "required"},
        {TURN(ASK("{\"id\":\"c\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":{"
                  "}}}")),
         "messages[1].tool_calls[0].function.arguments", "expected a string"},
        {TURN(ASK(CALL("c") "," CALL("c"))), "messages[1].tool_calls[1].id", "also the id"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_err(cases[i].body, cases[i].param, cases[i].needle);
}

Test(oai_messages, tool_turns_accepted) {
    OaiRequest req;
    parse_ok(TURN(ASK(CALL("a") "," CALL("b")) "," ANSWER("b") "," ANSWER(
                 "a") ","
                      "{\"role\":\"assistant\",\"content\":\"both done\"},"
                      "{\"role\":\"user\",\"content\":\"again\"}," ASK(CALL("a")) "," ANSWER("a")),
             &req);
    cr_expect_eq(json_array_size(req.messages), 8);
    oai_request_free(&req);
}

/* ---- valid requests fill the struct ---- */

static void expect_defaults(const OaiRequest *r) {
    cr_expect_str_eq(r->model, "");
    cr_expect_eq(r->n, 1);
    cr_expect(!r->stream);
    cr_expect(!r->include_usage);
    cr_expect_eq(r->max_tokens, -1);
    cr_expect_eq(r->temperature, 1.0f);
    cr_expect_eq(r->top_p, 1.0f);
    cr_expect_eq(r->top_k, 0);
    cr_expect_eq(r->min_p, 0.0f);
    cr_expect_eq(r->presence_penalty, 0.0f);
    cr_expect_eq(r->frequency_penalty, 0.0f);
    cr_expect_eq(r->repeat_penalty, 1.0f);
    cr_expect(!r->has_seed);
    cr_expect_eq(r->n_bias, 0);
    cr_expect(!r->logprobs);
    cr_expect_eq(r->top_logprobs, 0);
    cr_expect_eq(r->n_stop, 0);
    cr_expect_str_eq(r->user, "");
}

Test(oai_valid, defaults_absent_and_null) {
    OaiRequest req;
    parse_ok("{" USER_MSG "}", &req);
    expect_defaults(&req);
    oai_request_free(&req);
    field_ok("\"model\":null,\"n\":null,\"stream\":null,\"stream_options\":null,\"stop\":null,"
             "\"max_tokens\":null,\"max_completion_tokens\":null,\"temperature\":null,"
             "\"top_p\":null,\"top_k\":null,\"min_p\":null,\"seed\":null,\"presence_penalty\":null,"
             "\"frequency_penalty\":null,\"repeat_penalty\":null,\"logit_bias\":null,"
             "\"logprobs\":null,\"top_logprobs\":null,\"user\":null",
             &req);
    expect_defaults(&req);
    oai_request_free(&req);
    field_ok("\"logit_bias\":{},\"stop\":[]", &req);
    expect_defaults(&req);
    oai_request_free(&req);
}

Test(oai_valid, all_fields) {
    OaiRequest req;
    field_ok("\"model\":\"cgpt-mini\",\"n\":3,\"stream\":true,\"stream_options\":{"
             "\"include_usage\":true,\"include_obfuscation\":false},\"stop\":\"END\","
             "\"max_tokens\":50,\"temperature\":0.25,\"top_p\":0.5,\"top_k\":40,\"min_p\":0.05,"
             "\"seed\":42,\"presence_penalty\":0.5,\"frequency_penalty\":-0.5,"
             "\"repeat_penalty\":1.1,\"logit_bias\":{\"50256\":-100,\"13\":2.5},\"logprobs\":true,"
             "\"top_logprobs\":3,\"user\":\"alice\"",
             &req);
    cr_expect_eq(req.kind, OAI_CHAT);
    cr_expect_str_eq(req.model, "cgpt-mini");
    cr_expect_eq(req.n, 3);
    cr_expect(req.stream);
    cr_expect(req.include_usage);
    cr_assert_eq(req.n_stop, 1);
    cr_expect_str_eq(req.stop[0], "END");
    cr_expect_eq(req.max_tokens, 50);
    cr_expect_eq(req.temperature, 0.25f);
    cr_expect_eq(req.top_p, 0.5f);
    cr_expect_eq(req.top_k, 40);
    cr_expect_eq(req.min_p, 0.05f);
    cr_expect(req.has_seed);
    cr_expect_eq(req.seed, 42u);
    cr_expect_eq(req.presence_penalty, 0.5f);
    cr_expect_eq(req.frequency_penalty, -0.5f);
    cr_expect_eq(req.repeat_penalty, 1.1f);
    cr_assert_eq(req.n_bias, 2);
    cr_expect_eq(req.bias[0].token, 50256);
    cr_expect_eq(req.bias[0].bias, -100.0f);
    cr_expect_eq(req.bias[1].token, 13);
    cr_expect_eq(req.bias[1].bias, 2.5f);
    cr_expect(req.logprobs);
    cr_expect_eq(req.top_logprobs, 3);
    cr_expect_str_eq(req.user, "alice");
    cr_expect_null(req.prompt);
    cr_expect_null(req.prompt_ids);
    oai_request_free(&req);
    cr_expect_null(req.root, "free zeroes");
    oai_request_free(&req); /* twice: a zeroed struct is fine */

    field_ok("\"stream\":true,\"stream_options\":{}", &req);
    cr_expect(req.stream);
    cr_expect(!req.include_usage);
    oai_request_free(&req);
}

Test(oai_valid, max_completion_tokens_wins) {
    OaiRequest req;
    field_ok("\"max_tokens\":10,\"max_completion_tokens\":20", &req);
    cr_expect_eq(req.max_tokens, 20);
    oai_request_free(&req);
    field_ok("\"max_completion_tokens\":30", &req);
    cr_expect_eq(req.max_tokens, 30);
    oai_request_free(&req);
    field_ok("\"max_tokens\":10,\"max_completion_tokens\":null", &req);
    cr_expect_eq(req.max_tokens, 10);
    oai_request_free(&req);
}

Test(oai_valid, ignorable_extras) {
    OaiRequest req;
    field_ok("\"metadata\":{\"a\":\"b\"},\"store\":false,\"service_tier\":\"auto\","
             "\"audio\":null,\"modalities\":[\"text\"],\"prediction\":{},"
             "\"reasoning_effort\":\"low\",\"web_search_options\":{},\"unknown_thing\":[1,{}]",
             &req);
    expect_defaults(&req);
    oai_request_free(&req);
}

/* ---- structured output and tools (issue 18): honoured, so checked ---- */

#define TOOL(name) "{\"type\":\"function\",\"function\":{\"name\":\"" name "\"}}"

Test(oai_tools, accepted_shapes) {
    OaiRequest req;
    field_ok(
        "\"tools\":[" TOOL(
            "f") ",{\"type\":\"function\",\"function\":{\"name\":\"get-w_2\","
                 "\"description\":\"d\",\"parameters\":{\"type\":\"object\"},\"strict\":true}}],"
                 "\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"get-w_2\"}},"
                 "\"parallel_tool_calls\":false",
        &req);
    cr_expect_eq(json_array_size(req.tools), 2);
    cr_expect_eq(req.tool_choice, OAI_TOOLS_NAMED);
    cr_expect_eq(req.tool_named, 1);
    cr_expect_str_eq(oai_tool_name(req.tools, 1), "get-w_2");
    cr_expect(!req.parallel_tool_calls);
    oai_request_free(&req);
    field_ok("\"tools\":[" TOOL("f") "]", &req);
    cr_expect_eq(req.tool_choice, OAI_TOOLS_AUTO, "auto is the default with tools");
    cr_expect(req.parallel_tool_calls, "parallel by default");
    oai_request_free(&req);
    field_ok("\"tools\":[" TOOL("f") "],\"tool_choice\":\"required\"", &req);
    cr_expect_eq(req.tool_choice, OAI_TOOLS_REQUIRED);
    oai_request_free(&req);
    field_ok("\"tools\":[],\"tool_choice\":\"none\"", &req);
    cr_expect_null(req.tools);
    cr_expect_eq(req.tool_choice, OAI_TOOLS_NONE);
    oai_request_free(&req);
    field_ok("\"response_format\":{\"type\":\"json_object\"}", &req);
    cr_expect_eq(req.format, OAI_FORMAT_JSON_OBJECT);
    oai_request_free(&req);
    field_ok("\"response_format\":{\"type\":\"text\"},\"grammar\":\"root ::= \\\"a\\\"\"", &req);
    cr_expect_eq(req.format, OAI_FORMAT_TEXT);
    cr_expect_eq(req.grammar_len, 12);
    oai_request_free(&req);
    field_ok("\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"x\","
             "\"strict\":true,\"schema\":{\"type\":\"object\"}}}",
             &req);
    cr_expect_eq(req.format, OAI_FORMAT_JSON_SCHEMA);
    cr_expect(json_is_object(req.schema));
    oai_request_free(&req);
}

Test(oai_tools, rejected_shapes) {
    expect_field_err("\"tools\":{}", "tools", "an array");
    expect_field_err("\"tools\":[1]", "tools[0]", "an object");
    expect_field_err("\"tools\":[{\"type\":\"code\"}]", "tools[0].type", "function");
    expect_field_err("\"tools\":[{\"type\":\"function\"}]", "tools[0].function", "required");
    expect_field_err("\"tools\":[" TOOL("f") "," TOOL("a b") "]", "tools[1].function.name",
                     "only a-z");
    expect_field_err("\"tools\":[" TOOL("") "]", "tools[0].function.name", "1 to 64");
    expect_field_err("\"tools\":[" TOOL("f") "," TOOL("f") "]", "tools[1].function.name",
                     "also the name of tools[0]");
    expect_field_err("\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\","
                     "\"parameters\":[]}}]",
                     "tools[0].function.parameters", "JSON Schema");
    expect_field_err("\"tool_choice\":\"auto\"", "tool_choice", "only allowed when tools");
    expect_field_err("\"tools\":[" TOOL("f") "],\"tool_choice\":\"always\"", "tool_choice",
                     "not one of");
    expect_field_err("\"tools\":[" TOOL("f") "],\"tool_choice\":{\"type\":\"function\","
                                             "\"function\":{\"name\":\"g\"}}",
                     "tool_choice.function.name", "not the name of a tool");
    expect_field_err("\"tools\":[" TOOL("f") "],\"parallel_tool_calls\":1", "parallel_tool_calls",
                     "boolean");
    expect_field_err("\"functions\":[{\"name\":\"f\"}]", "functions", "use tools");
    expect_field_err("\"function_call\":\"auto\"", "function_call", "use tools");
    expect_field_err("\"response_format\":\"json\"", "response_format", "an object");
    expect_field_err("\"response_format\":{}", "response_format.type", "required");
    expect_field_err("\"response_format\":{\"type\":\"yaml\"}", "response_format.type",
                     "not one of");
    expect_field_err("\"response_format\":{\"type\":\"json_schema\"}",
                     "response_format.json_schema", "required");
    expect_field_err("\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{"
                     "\"schema\":{}}}",
                     "response_format.json_schema.name", "required");
    expect_field_err("\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{"
                     "\"name\":\"x\",\"schema\":3}}",
                     "response_format.json_schema.schema", "an object");
    expect_field_err("\"grammar\":7", "grammar", "a string");
    expect_field_err("\"grammar\":\"root ::= \\\"a\\\"\",\"response_format\":{\"type\":"
                     "\"json_object\"}",
                     "grammar", "cannot both");
}

/* ---- completions ---- */

static void completion_ok(const char *body, OaiRequest *req) {
    OaiError e = {0};
    Status st = oai_parse_completion(body, strlen(body), NULL, req, &e);
    cr_assert_eq(st, STATUS_OK, "%s: rejected: %s (param %s)", body, e.message, e.param);
    cr_expect_eq(req->kind, OAI_COMPLETION);
    cr_expect_null(req->messages);
}

static void expect_completion_err(const char *body, const char *param, const char *needle) {
    expect_err_kind(OAI_COMPLETION, body, 400, param, needle);
}

Test(oai_completion, prompt_forms) {
    OaiRequest req;
    completion_ok("{\"prompt\":\"Once upon\"}", &req);
    cr_expect_str_eq(req.prompt, "Once upon");
    cr_expect_eq(req.prompt_len, 9);
    cr_expect_null(req.prompt_ids);
    expect_defaults(&req);
    oai_request_free(&req);
    completion_ok("{\"prompt\":\"\"}", &req);
    cr_expect_str_eq(req.prompt, "");
    oai_request_free(&req);
    completion_ok("{\"prompt\":[\"one\"]}", &req);
    cr_expect_str_eq(req.prompt, "one");
    oai_request_free(&req);
    completion_ok("{\"prompt\":[1,2,2147483647,0]}", &req);
    cr_expect_null(req.prompt);
    cr_assert_eq(req.n_prompt_ids, 4);
    cr_expect_eq(req.prompt_ids[0], 1);
    cr_expect_eq(req.prompt_ids[2], 2147483647);
    cr_expect_eq(req.prompt_ids[3], 0);
    oai_request_free(&req);
    completion_ok("{\"prompt\":[[7,8]],\"model\":\"m\",\"max_tokens\":5,\"echo\":false}", &req);
    cr_assert_eq(req.n_prompt_ids, 2);
    cr_expect_eq(req.prompt_ids[1], 8);
    cr_expect_str_eq(req.model, "m");
    cr_expect_eq(req.max_tokens, 5);
    oai_request_free(&req);
}

Test(oai_completion, prompt_rejected) {
    expect_completion_err("{}", "prompt", "required");
    expect_completion_err("{\"prompt\":null}", "prompt", "required");
    expect_completion_err("{\"prompt\":5}", "prompt", "expected a string");
    expect_completion_err("{\"prompt\":{}}", "prompt", "expected");
    expect_completion_err("{\"prompt\":[]}", "prompt", "empty");
    expect_completion_err("{\"prompt\":[[]]}", "prompt[0]", "empty");
    expect_completion_err("{\"prompt\":[\"a\",\"b\"]}", "prompt", "only one prompt");
    expect_completion_err("{\"prompt\":[[1],[2]]}", "prompt", "only one prompt");
    expect_completion_err("{\"prompt\":[1,\"a\"]}", "prompt[1]", "expected an integer");
    expect_completion_err("{\"prompt\":[-1]}", "prompt[0]", "below the minimum 0");
    expect_completion_err("{\"prompt\":[2147483648]}", "prompt[0]", "above the limit");
    expect_completion_err("{\"prompt\":[[1,1.5]]}", "prompt[0][1]", "not an integer");
    expect_completion_err("{\"prompt\":[true]}", "prompt[0]", "expected an integer");
}

Test(oai_completion, echo_and_logprobs) {
    expect_completion_err("{\"prompt\":\"x\",\"echo\":true}", "echo", "not supported");
    expect_completion_err("{\"prompt\":\"x\",\"echo\":1}", "echo", "expected a boolean");
    expect_completion_err("{\"prompt\":\"x\",\"logprobs\":21}", "logprobs", "above the limit 20");
    expect_completion_err("{\"prompt\":\"x\",\"logprobs\":true}", "logprobs",
                          "expected an integer");
    expect_completion_err("{\"prompt\":\"x\",\"n\":0}", "n", "below");
    expect_completion_err("{\"prompt\":\"x\",\"stop\":[1]}", "stop[0]", "expected a string");
    OaiRequest req;
    completion_ok("{\"prompt\":\"x\",\"logprobs\":3}", &req);
    cr_expect(req.logprobs);
    cr_expect_eq(req.top_logprobs, 3);
    oai_request_free(&req);
    completion_ok("{\"prompt\":\"x\",\"logprobs\":0}", &req);
    cr_expect(req.logprobs);
    cr_expect_eq(req.top_logprobs, 0);
    oai_request_free(&req);
    completion_ok("{\"prompt\":\"x\",\"logprobs\":null}", &req);
    cr_expect(!req.logprobs);
    oai_request_free(&req);
    /* a chat body is not a completion body */
    expect_completion_err("{" USER_MSG "}", "prompt", "required");
}

/* ---- parse_object ---- */

Test(oai_object, tokenize_bodies) {
    OaiError e = {0};
    const char *b = "{\"content\":\"hi\",\"add_special\":true}";
    json_t *o = oai_parse_object(b, strlen(b), NULL, &e);
    cr_assert(o, "%s", e.message);
    cr_expect_str_eq(json_string_value(json_object_get(o, "content")), "hi");
    json_decref(o);
    cr_expect_null(oai_parse_object("[1]", 3, NULL, &e));
    cr_expect_eq(e.status, 400);
    cr_expect_null(oai_parse_object("{\"tokens\":[1,", 13, NULL, &e));
    cr_expect(strstr(e.message, "invalid JSON"), "%s", e.message);
    cr_expect_null(oai_parse_object(NULL, 0, NULL, &e));
    cr_expect_eq(e.status, 400);
}

/* ---- errors ---- */

Test(oai_error, envelope) {
    OaiError e;
    Status st = oai_error_set(&e, 400, "invalid_request_error", NULL, "messages[3].content",
                              "messages[%d].content: bad", 3);
    cr_expect_eq(st, STATUS_INVALID);
    json_t *j = oai_error_json(&e);
    char *s = oai_dump(j);
    cr_expect_str_eq(s,
                     "{\"error\":{\"message\":\"messages[3].content: bad\",\"type\":"
                     "\"invalid_request_error\",\"param\":\"messages[3].content\",\"code\":null}}");
    free(s);
    json_decref(j);

    oai_error_set(&e, 401, "authentication_error", "invalid_api_key", NULL, "bad key");
    j = oai_error_json(&e);
    json_t *in = json_object_get(j, "error");
    cr_expect(json_is_null(json_object_get(in, "param")));
    cr_expect_str_eq(json_string_value(json_object_get(in, "code")), "invalid_api_key");
    cr_expect_str_eq(json_string_value(json_object_get(in, "type")), "authentication_error");
    json_decref(j);

    /* a message with bytes from the request that are not UTF-8 still dumps */
    oai_error_set(&e, 400, "invalid_request_error", NULL, "logit_bias", "key '\xe4\xbd' bad");
    j = oai_error_json(&e);
    s = oai_dump(j);
    cr_assert(s);
    cr_expect(strstr(s, "key '\xef\xbf\xbd' bad"), "%s", s);
    free(s);
    json_decref(j);
}

Test(oai_error, real_parse_errors_dump) {
    /* every rejection of a hostile body gives an envelope that re-parses */
    static const char *bodies[] = {"{\"messages\":[{\"role\":\"user\",\"content\":\"\xff\xfe\"}]}",
                                   "{\"logit_bias\":{\"\xe4\xbd\":1}," USER_MSG "}",
                                   "{\"messages\":[{\"role\":\"\xc3\xa9\xe4\",\"content\":\"x\"}]}",
                                   "{\"a\":\"\x80"};
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        OaiRequest req;
        OaiError e;
        cr_assert_neq(chat(bodies[i], &req, &e), STATUS_OK);
        json_t *j = oai_error_json(&e);
        char *s = oai_dump(j);
        cr_assert(s, "body %zu: error did not dump", i);
        json_error_t je;
        json_t *back = json_loads(s, 0, &je);
        cr_expect(back, "body %zu: %s: %s", i, s, je.text);
        json_decref(back);
        free(s);
        json_decref(j);
    }
    /* a role echoed in the message, cut at 32 bytes inside a UTF-8 sequence */
    char role[64] = "a";
    for (int i = 0; i < 20; i++)
        strcat(role, "\xc3\xa9");
    char *b = NULL;
    cr_assert(asprintf(&b, "{\"messages\":[{\"role\":\"%s\",\"content\":\"x\"}]}", role) > 0);
    OaiRequest req;
    OaiError e;
    cr_assert_neq(chat(b, &req, &e), STATUS_OK);
    cr_expect_str_eq(e.param, "messages[0].role");
    json_t *j = oai_error_json(&e);
    cr_assert(j);
    char *s = oai_dump(j);
    cr_assert(s);
    cr_expect(strstr(s, "\xc3\xa9\xef\xbf\xbd' (expected"), "%s", s);
    free(s);
    json_decref(j);
    free(b);
}

/* ---- builders ---- */

static json_t *reparse(json_t *j) {
    char *s = oai_dump(j);
    cr_assert(s);
    json_error_t je;
    json_t *back = json_loads(s, JSON_ALLOW_NUL, &je);
    cr_assert(back, "%s: %s", s, je.text);
    free(s);
    json_decref(j);
    return back;
}

static const char *jstr(const json_t *o, const char *k) {
    const json_t *v = json_object_get(o, k);
    cr_assert(json_is_string(v), "field %s not a string", k);
    return json_string_value(v);
}

static long long jint(const json_t *o, const char *k) {
    const json_t *v = json_object_get(o, k);
    cr_assert(json_is_integer(v), "field %s not an integer", k);
    return json_integer_value(v);
}

static void expect_keys(const json_t *o, const char *const *keys, size_t n) {
    cr_assert(json_is_object(o));
    cr_expect_eq(json_object_size(o), n, "%zu keys, want %zu", json_object_size(o), n);
    for (size_t i = 0; i < n; i++)
        cr_expect(json_object_get(o, keys[i]), "missing key %s", keys[i]);
}

Test(oai_build, usage_envelope_model) {
    OaiUsage u = {.prompt_tokens = 12, .completion_tokens = 5, .cached_tokens = 8};
    json_t *j = reparse(oai_usage_json(&u));
    cr_expect_eq(jint(j, "prompt_tokens"), 12);
    cr_expect_eq(jint(j, "completion_tokens"), 5);
    cr_expect_eq(jint(j, "total_tokens"), 17);
    cr_expect_eq(jint(json_object_get(j, "prompt_tokens_details"), "cached_tokens"), 8);
    cr_expect_eq(jint(json_object_get(j, "completion_tokens_details"), "reasoning_tokens"), 0);
    json_decref(j);

    j = reparse(oai_envelope("chatcmpl-1", "chat.completion", 1735689600, "m", "fp_1"));
    static const char *const ek[] = {"id",     "object", "created", "model", "system_fingerprint",
                                     "choices"};
    expect_keys(j, ek, 6);
    cr_expect_str_eq(jstr(j, "id"), "chatcmpl-1");
    cr_expect_str_eq(jstr(j, "object"), "chat.completion");
    cr_expect_eq(jint(j, "created"), 1735689600);
    cr_expect_str_eq(jstr(j, "model"), "m");
    cr_expect_str_eq(jstr(j, "system_fingerprint"), "fp_1");
    cr_expect(json_is_array(json_object_get(j, "choices")));
    cr_expect_eq(json_array_size(json_object_get(j, "choices")), 0);
    json_decref(j);
    j = reparse(oai_envelope("c", "chat.completion.chunk", 1, "m", NULL));
    cr_expect(json_is_null(json_object_get(j, "system_fingerprint")));
    json_decref(j);

    j = reparse(oai_model_json("cgpt-mini", 1700000000, "cgpt"));
    static const char *const mk[] = {"id", "object", "created", "owned_by"};
    expect_keys(j, mk, 4);
    cr_expect_str_eq(jstr(j, "object"), "model");
    cr_expect_str_eq(jstr(j, "id"), "cgpt-mini");
    cr_expect_eq(jint(j, "created"), 1700000000);
    cr_expect_str_eq(jstr(j, "owned_by"), "cgpt");
    json_decref(j);
}

Test(oai_build, logprob_entry) {
    OaiTokenLogprob tok = {"Hello", 5, -0.01f};
    OaiTokenLogprob top[2] = {{"Hello", 5, -0.01f}, {"\xe4\xbd", 2, -4.5f}};
    json_t *j = reparse(oai_logprob_entry(&tok, top, 2));
    static const char *const keys[] = {"token", "logprob", "bytes", "top_logprobs"};
    expect_keys(j, keys, 4);
    cr_expect_str_eq(jstr(j, "token"), "Hello");
    cr_expect_eq(json_real_value(json_object_get(j, "logprob")), -0.01, "shortest float form");
    const json_t *bytes = json_object_get(j, "bytes");
    cr_assert_eq(json_array_size(bytes), 5);
    cr_expect_eq(json_integer_value(json_array_get(bytes, 0)), 72);
    cr_expect_eq(json_integer_value(json_array_get(bytes, 4)), 111);
    const json_t *tops = json_object_get(j, "top_logprobs");
    cr_assert_eq(json_array_size(tops), 2);
    const json_t *t1 = json_array_get(tops, 1);
    static const char *const tk[] = {"token", "logprob", "bytes"};
    expect_keys(t1, tk, 3);
    cr_expect_str_eq(jstr(t1, "token"), "\xef\xbf\xbd", "partial UTF-8 -> one U+FFFD");
    const json_t *b1 = json_object_get(t1, "bytes");
    cr_assert_eq(json_array_size(b1), 2);
    cr_expect_eq(json_integer_value(json_array_get(b1, 0)), 0xe4, "bytes are exact");
    cr_expect_eq(json_integer_value(json_array_get(b1, 1)), 0xbd);
    cr_expect_eq(json_real_value(json_object_get(t1, "logprob")), -4.5);
    json_decref(j);

    OaiTokenLogprob inf = {"x", 1, -INFINITY};
    j = reparse(oai_logprob_entry(&inf, NULL, 0));
    cr_expect_eq(json_number_value(json_object_get(j, "logprob")), -9999.0);
    cr_expect_eq(json_array_size(json_object_get(j, "top_logprobs")), 0);
    json_decref(j);
}

Test(oai_build, chat_choice) {
    OaiTokenLogprob tok = {"Hi", 2, -0.5f};
    json_t *lp = json_array();
    json_array_append_new(lp, oai_logprob_entry(&tok, NULL, 0));
    json_t *j = reparse(oai_chat_choice(0, "Hi", 2, lp, "stop"));
    static const char *const keys[] = {"index", "message", "logprobs", "finish_reason"};
    expect_keys(j, keys, 4);
    cr_expect_eq(jint(j, "index"), 0);
    cr_expect_str_eq(jstr(j, "finish_reason"), "stop");
    const json_t *m = json_object_get(j, "message");
    static const char *const mk[] = {"role", "content", "refusal"};
    expect_keys(m, mk, 3);
    cr_expect_str_eq(jstr(m, "role"), "assistant");
    cr_expect_str_eq(jstr(m, "content"), "Hi");
    cr_expect(json_is_null(json_object_get(m, "refusal")));
    const json_t *l = json_object_get(j, "logprobs");
    static const char *const lk[] = {"content", "refusal"};
    expect_keys(l, lk, 2);
    cr_expect_eq(json_array_size(json_object_get(l, "content")), 1);
    cr_expect(json_is_null(json_object_get(l, "refusal")));
    json_decref(j);

    j = reparse(oai_chat_choice(2, "a\0b\xff", 4, NULL, "length"));
    cr_expect_eq(jint(j, "index"), 2);
    cr_expect(json_is_null(json_object_get(j, "logprobs")));
    const json_t *c = json_object_get(json_object_get(j, "message"), "content");
    cr_assert_eq(json_string_length(c), 6);
    cr_expect(memcmp(json_string_value(c), "a\0b\xef\xbf\xbd", 6) == 0);
    json_decref(j);
}

Test(oai_build, chunk_choice) {
    json_t *j = reparse(oai_chat_chunk_choice(0, true, "", 0, NULL, NULL));
    static const char *const keys[] = {"index", "delta", "logprobs", "finish_reason"};
    expect_keys(j, keys, 4);
    const json_t *d = json_object_get(j, "delta");
    static const char *const dk[] = {"role", "content"};
    expect_keys(d, dk, 2);
    cr_expect_str_eq(jstr(d, "role"), "assistant");
    cr_expect_str_eq(jstr(d, "content"), "");
    cr_expect(json_is_null(json_object_get(j, "finish_reason")));
    cr_expect(json_is_null(json_object_get(j, "logprobs")));
    json_decref(j);

    j = reparse(oai_chat_chunk_choice(1, false, "Hel", 3, json_array(), NULL));
    d = json_object_get(j, "delta");
    cr_expect_eq(json_object_size(d), 1);
    cr_expect_str_eq(jstr(d, "content"), "Hel");
    cr_expect(json_is_array(json_object_get(json_object_get(j, "logprobs"), "content")));
    json_decref(j);

    j = reparse(oai_chat_chunk_choice(1, false, NULL, 0, NULL, "stop"));
    cr_expect_eq(json_object_size(json_object_get(j, "delta")), 0, "delta {}");
    cr_expect_str_eq(jstr(j, "finish_reason"), "stop");
    json_decref(j);
}

Test(oai_build, completion_choice_legacy_logprobs) {
    json_t *lp = oai_completion_logprobs_new();
    OaiTokenLogprob t0 = {" Once", 5, -1.25f}, t1 = {"\xf0\x9f", 2, -2.0f};
    OaiTokenLogprob top0[2] = {{" Once", 5, -1.25f}, {" Twice", 6, -3.5f}};
    cr_assert_eq(oai_completion_logprobs_add(lp, &t0, top0, 2, 0), 0);
    cr_assert_eq(oai_completion_logprobs_add(lp, &t1, NULL, 0, 5), 0);
    json_t *j = reparse(oai_completion_choice(0, " Once\xf0\x9f", 7, lp, "length"));
    static const char *const keys[] = {"index", "text", "logprobs", "finish_reason"};
    expect_keys(j, keys, 4);
    cr_expect_str_eq(jstr(j, "text"), " Once\xef\xbf\xbd");
    const json_t *l = json_object_get(j, "logprobs");
    static const char *const lk[] = {"tokens", "token_logprobs", "top_logprobs", "text_offset"};
    expect_keys(l, lk, 4);
    const json_t *tokens = json_object_get(l, "tokens");
    cr_assert_eq(json_array_size(tokens), 2);
    cr_expect_str_eq(json_string_value(json_array_get(tokens, 0)), " Once");
    cr_expect_str_eq(json_string_value(json_array_get(tokens, 1)), "\xef\xbf\xbd");
    const json_t *tl = json_object_get(l, "token_logprobs");
    cr_expect_eq(json_number_value(json_array_get(tl, 0)), -1.25);
    cr_expect_eq(json_number_value(json_array_get(tl, 1)), -2.0);
    const json_t *tops = json_object_get(l, "top_logprobs");
    const json_t *top_0 = json_array_get(tops, 0);
    cr_expect_eq(json_object_size(top_0), 2);
    cr_expect_eq(json_number_value(json_object_get(top_0, " Twice")), -3.5);
    cr_expect_eq(json_object_size(json_array_get(tops, 1)), 0);
    const json_t *off = json_object_get(l, "text_offset");
    cr_expect_eq(json_integer_value(json_array_get(off, 0)), 0);
    cr_expect_eq(json_integer_value(json_array_get(off, 1)), 5);
    json_decref(j);

    j = reparse(oai_completion_choice(1, "x", 1, NULL, NULL));
    cr_expect(json_is_null(json_object_get(j, "logprobs")));
    cr_expect(json_is_null(json_object_get(j, "finish_reason")));
    json_decref(j);
}

/* Run python3 with 'script' on 'input'; returns its stdout (owned). */
static char *python(const char *script, const char *input) {
    char path[] = "/tmp/test_oai_XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fputs(input, f);
    fclose(f);
    char *cmd = NULL;
    cr_assert(asprintf(&cmd, "/usr/bin/python3 -c '%s' < %s", script, path) > 0);
    FILE *p = popen(cmd, "r");
    cr_assert(p);
    size_t cap = 1 << 16, n = 0;
    char *out = malloc(cap);
    size_t k;
    while ((k = fread(out + n, 1, cap - n - 1, p)) > 0) {
        n += k;
        if (n + 1 == cap)
            out = realloc(out, cap *= 2);
    }
    out[n] = '\0';
    cr_assert_eq(pclose(p), 0, "python failed: %s", cmd);
    free(cmd);
    unlink(path);
    return out;
}

static void hex(char *out, const unsigned char *b, size_t n) {
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", b[i]);
    out[2 * n] = '\0';
}

Test(oai_build, string_bytes_matches_python_replace) {
    /* hand-picked edge cases, then random bytes biased toward UTF-8 lead and
     * continuation bytes; Python's decode(errors="replace") is the oracle */
    enum { N_RANDOM = 400, MAXLEN = 12 };
    static const char *fixed[] = {
        "",
        "abc",
        "\xc3\xa9",
        "\xc3",
        "\xe4\xbd",
        "\xe4\xbd\xa0",
        "\xf0\x9f\x98",
        "\xf0\x9f\x98\x80",
        "\xc0\xaf",
        "\xe0\x80\xaf",
        "\xed\xa0\x80",
        "\xed\x9f\xbf",
        "\xf4\x90\x80\x80",
        "\xf4\x8f\xbf\xbf",
        "\xf5\x80",
        "\x80\x80",
        "\xff\xfe",
        "a\xe1\x80z",
        "\xf0\x80\x80\x80",
        "\xe0\xa0",
        "\xf1\x80\x80",
        "\xc2\x80",
    };
    size_t nf = sizeof fixed / sizeof fixed[0];
    unsigned char bufs[N_RANDOM][MAXLEN];
    size_t lens[N_RANDOM];
    static const unsigned char alphabet[] = {'a',  0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf,
                                             0xc0, 0xc2, 0xdf, 0xe0, 0xe1, 0xed, 0xef,
                                             0xf0, 0xf1, 0xf4, 0xf5, 0xff, 0x00};
    uint64_t s = 0x9e3779b97f4a7c15ull;
    char *in = malloc((nf + N_RANDOM) * (2 * MAXLEN + 2) + 1), *p = in;
    for (size_t i = 0; i < nf + N_RANDOM; i++) {
        const unsigned char *b;
        size_t n;
        if (i < nf) {
            b = (const unsigned char *)fixed[i];
            n = strlen(fixed[i]);
        } else {
            size_t r = i - nf;
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            n = (size_t)(s >> 60) % (MAXLEN + 1);
            for (size_t k = 0; k < n; k++) {
                s = s * 6364136223846793005ull + 1442695040888963407ull;
                bufs[r][k] = alphabet[(s >> 33) % sizeof alphabet];
            }
            b = bufs[r];
            lens[r] = n;
        }
        hex(p, b, n);
        p += 2 * n;
        *p++ = '\n';
    }
    *p = '\0';
    char *out = python("import sys\n"
                       "for l in sys.stdin.read().split(\"\\n\")[:-1]:\n"
                       "  print(bytes.fromhex(l).decode(\"utf-8\",\"replace\").encode().hex())",
                       in);
    char *line = out;
    for (size_t i = 0; i < nf + N_RANDOM; i++) {
        const char *b = i < nf ? fixed[i] : (const char *)bufs[i - nf];
        size_t n = i < nf ? strlen(fixed[i]) : lens[i - nf];
        char *nl = strchr(line, '\n');
        cr_assert(nl, "python output ended at %zu", i);
        *nl = '\0';
        json_t *j = oai_string_bytes(b, n);
        cr_assert(j);
        char got[6 * MAXLEN * 3 + 1];
        hex(got, (const unsigned char *)json_string_value(j), json_string_length(j));
        char want_in[2 * MAXLEN + 1];
        hex(want_in, (const unsigned char *)b, n);
        cr_expect_str_eq(got, line, "input %s: got %s want %s", want_in, got, line);
        json_decref(j);
        line = nl + 1;
    }
    free(out);
    free(in);
}

Test(oai_build, python_parses_built_objects) {
    OaiTokenLogprob tok = {"\xe4", 1, -0.125f};
    json_t *lp = json_array();
    json_array_append_new(lp, oai_logprob_entry(&tok, &tok, 1));
    json_t *env = oai_envelope("chatcmpl-x", "chat.completion", 1, "m\xff", "fp");
    json_array_append_new(json_object_get(env, "choices"),
                          oai_chat_choice(0, "\xf0\x9f\x98\x80 \x80\"\\\n", 9, lp, "stop"));
    OaiUsage u = {1, 2, 0};
    json_object_set_new(env, "usage", oai_usage_json(&u));
    char *s = oai_dump(env);
    json_decref(env);
    cr_assert(s);
    char *out =
        python("import json,sys\n"
               "d=json.load(sys.stdin)\n"
               "c=d[\"choices\"][0]\n"
               "print(d[\"model\"].encode().hex(), c[\"message\"][\"content\"].encode().hex(),"
               " c[\"logprobs\"][\"content\"][0][\"bytes\"], d[\"usage\"][\"total_tokens\"])",
               s);
    cr_expect_str_eq(out, "6defbfbd f09f988020efbfbd225c0a [228] 3\n", "python read: %s", out);
    free(out);
    free(s);
}
