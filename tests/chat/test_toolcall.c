/* test_toolcall.c - chat/toolcall.c: replies in every format written as the
 * models produce them (the formats' model cards and chat templates), each
 * checked against a hand-written event sequence, then fed whole, byte by
 * byte, split at every offset and at 200 random multi-splits (with empty
 * pieces): the merged events must not change and no fragment may end
 * inside a UTF-8 character. Also: ids, the whole-text result, format
 * detection from the templates in tests/chat/templates, and the grammars
 * (compiled by sample/grammar.c, matched against rendered calls that the
 * parser must read back). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat/toolcall.h"
#include "core/rng.h"
#include "core/utf8.h"
#include "sample/grammar.h"

/* ---- recording events ---- */

/* Events merged and written as "|C:text", "|R:text", "|B<i>:name",
 * "|A<i>:args", "|E<i>"; ids separately. */
typedef struct {
    char *s;
    size_t n, cap;
    int last_kind, last_index;
    char ids[1024];
    bool bad_utf8;
    bool bad_id;
    int open; /* calls begun and not ended */
} Rec;

static void rec_put(Rec *r, const char *s, size_t n) {
    if (r->n + n + 1 > r->cap) {
        r->cap = (r->n + n + 1) * 2;
        r->s = realloc(r->s, r->cap);
        cr_assert(r->s);
    }
    memcpy(r->s + r->n, s, n);
    r->n += n;
    r->s[r->n] = '\0';
}

static bool id_ok(const char *id, bool mistral) {
    const char *al = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    if (!mistral) {
        if (strncmp(id, "call_", 5) != 0)
            return false;
        id += 5;
    }
    size_t n = strlen(id);
    return n == (mistral ? 9u : 24u) && strspn(id, al) == n;
}

static bool g_mistral;

static void rec_event(void *user, const ToolEvent *ev) {
    Rec *r = user;
    char h[300] = "";
    bool text = ev->kind == TOOLCALL_CONTENT || ev->kind == TOOLCALL_REASONING ||
                ev->kind == TOOLCALL_CALL_ARGS;
    if (text) {
        cr_assert(ev->len > 0, "empty fragment");
        if (utf8_valid_len(ev->text, ev->len, NULL) != ev->len)
            r->bad_utf8 = true;
    }
    if (text && r->last_kind == (int)ev->kind && r->last_index == ev->index) {
        rec_put(r, ev->text, ev->len);
        return;
    }
    switch (ev->kind) {
    case TOOLCALL_CONTENT: snprintf(h, sizeof h, "|C:"); break;
    case TOOLCALL_REASONING: snprintf(h, sizeof h, "|R:"); break;
    case TOOLCALL_CALL_BEGIN:
        snprintf(h, sizeof h, "|B%d:%s", ev->index, ev->name);
        if (!id_ok(ev->id, g_mistral))
            r->bad_id = true;
        strncat(r->ids, ev->id, sizeof r->ids - strlen(r->ids) - 2);
        strcat(r->ids, " ");
        r->open++;
        break;
    case TOOLCALL_CALL_ARGS: snprintf(h, sizeof h, "|A%d:", ev->index); break;
    case TOOLCALL_CALL_END:
        snprintf(h, sizeof h, "|E%d", ev->index);
        r->open--;
        break;
    }
    rec_put(r, h, strlen(h));
    if (text)
        rec_put(r, ev->text, ev->len);
    r->last_kind = (int)ev->kind;
    r->last_index = ev->index;
}

/* Feeds 'text' cut after the bytes where cut[i] (NULL: one piece), with an
 * empty piece after cut i when empties && empties[i]. Returns owned events. */
static char *feed(ToolFormat f, unsigned flags, const char *text, size_t n, const bool *cut,
                  const bool *empties, char *ids_out) {
    Rec r = {.last_kind = -1};
    rec_put(&r, "", 0);
    ToolParser *p = toolcall_new(f, flags, 42, rec_event, &r);
    cr_assert(p);
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        if (!cut || !cut[i] || i + 1 == n)
            continue;
        char *piece = malloc(i + 1 - at + 1); /* exact size: ASan sees overruns */
        memcpy(piece, text + at, i + 1 - at);
        cr_assert_eq(toolcall_push(p, piece, i + 1 - at), STATUS_OK);
        free(piece);
        if (empties && empties[i])
            cr_assert_eq(toolcall_push(p, "", 0), STATUS_OK);
        at = i + 1;
    }
    cr_assert_eq(toolcall_push(p, text + at, n - at), STATUS_OK);
    cr_assert_eq(toolcall_finish(p), STATUS_OK);
    cr_assert_eq(toolcall_push(p, "x", 1), STATUS_INVALID);
    toolcall_free(p);
    cr_assert_not(r.bad_utf8, "a fragment ends inside a UTF-8 character: %s", r.s);
    cr_assert_not(r.bad_id, "bad id: %s", r.ids);
    cr_assert_eq(r.open, 0, "a call left open: %s", r.s);
    if (ids_out)
        strcpy(ids_out, r.ids);
    return r.s;
}

/* The core check: the expected events, and the same events (and ids) for
 * byte-by-byte feeding, every split point and 200 random multi-splits. */
static void check_flags(ToolFormat f, unsigned flags, const char *text, const char *want) {
    g_mistral = f == TOOL_FORMAT_MISTRAL;
    size_t n = strlen(text);
    char ids[1024], ids2[1024];
    char *whole = feed(f, flags, text, n, NULL, NULL, ids);
    cr_assert_str_eq(whole, want, "%s: %s\n got: %s\nwant: %s", toolcall_format_name(f), text,
                     whole, want);
    bool *cut = calloc(n + 1, 1), *emp = calloc(n + 1, 1);
    for (size_t i = 0; i < n; i++)
        cut[i] = true;
    char *got = feed(f, flags, text, n, cut, NULL, ids2);
    cr_assert_str_eq(got, whole, "byte by byte: %s\n got: %s\nwant: %s", text, got, whole);
    cr_assert_str_eq(ids2, ids);
    free(got);
    for (size_t k = 0; k + 1 < n; k++) {
        memset(cut, 0, n);
        cut[k] = true;
        got = feed(f, flags, text, n, cut, NULL, ids2);
        cr_assert_str_eq(got, whole, "split at %zu: %s\n got: %s\nwant: %s", k, text, got, whole);
        cr_assert_str_eq(ids2, ids);
        free(got);
    }
    Rng rng;
    rng_seed(&rng, n);
    for (int round = 0; round < 200; round++) {
        int every = 1 + (int)(rng_u64(&rng) % 8);
        for (size_t i = 0; i < n; i++) {
            cut[i] = rng_u64(&rng) % (uint64_t)every == 0;
            emp[i] = rng_u64(&rng) % 5 == 0;
        }
        got = feed(f, flags, text, n, cut, emp, ids2);
        cr_assert_str_eq(got, whole, "random split round %d: %s\n got: %s\nwant: %s", round, text,
                         got, whole);
        cr_assert_str_eq(ids2, ids);
        free(got);
    }
    free(cut);
    free(emp);
    free(whole);
}

static void check(ToolFormat f, const char *text, const char *want) {
    check_flags(f, 0, text, want);
}

/* ---- HERMES (Qwen 2.5 / Qwen 3 / Hermes 2 Pro) ---- */

#define QWEN_CALL                                                                                  \
    "<tool_call>\n{\"name\": \"get_current_temperature\", \"arguments\": {\"location\": \"San "    \
    "Francisco, CA, USA\"}}\n</tool_call>"

Test(toolcall, hermes_single_and_parallel) {
    check(TOOL_FORMAT_HERMES, QWEN_CALL,
          "|B0:get_current_temperature|A0:{\"location\": \"San Francisco, CA, USA\"}|E0");
    check(TOOL_FORMAT_HERMES,
          "<tool_call>\n{\"name\": \"get_current_temperature\", \"arguments\": {\"location\": "
          "\"San Francisco, CA, USA\", \"unit\": \"celsius\"}}\n</tool_call>\n<tool_call>\n"
          "{\"name\": \"get_temperature_date\", \"arguments\": {\"location\": \"San Francisco, "
          "CA, USA\", \"date\": \"2024-10-01\", \"unit\": \"celsius\"}}\n</tool_call>",
          "|B0:get_current_temperature|A0:{\"location\": \"San Francisco, CA, USA\", \"unit\": "
          "\"celsius\"}|E0|B1:get_temperature_date|A1:{\"location\": \"San Francisco, CA, USA\", "
          "\"date\": \"2024-10-01\", \"unit\": \"celsius\"}|E1");
}

Test(toolcall, hermes_content_before_and_after) {
    check(TOOL_FORMAT_HERMES, "Let me check the current temperature for you.\n" QWEN_CALL,
          "|C:Let me check the current temperature for you.\n|B0:get_current_temperature|A0:{"
          "\"location\": \"San Francisco, CA, USA\"}|E0");
    check(TOOL_FORMAT_HERMES, QWEN_CALL "\n\nDone.",
          "|B0:get_current_temperature|A0:{\"location\": \"San Francisco, CA, USA\"}|E0|C:Done.");
    check(TOOL_FORMAT_HERMES, "It is 26.1 °C in San Francisco. x < y, <b>bold</b> <tool",
          "|C:It is 26.1 °C in San Francisco. x < y, <b>bold</b> <tool");
}

Test(toolcall, hermes_think_then_call) {
    check_flags(TOOL_FORMAT_HERMES, TOOLCALL_THINK,
                "<think>\nThe user wants the temperature. I'll call get_current_temperature.\n"
                "</think>\n\n" QWEN_CALL,
                "|R:The user wants the temperature. I'll call get_current_temperature.\n"
                "|B0:get_current_temperature|A0:{\"location\": \"San Francisco, CA, USA\"}|E0");
    /* a <tool_call> inside reasoning is reasoning */
    check_flags(TOOL_FORMAT_HERMES, TOOLCALL_THINK,
                "<think>maybe <tool_call>{}</tool_call>?</think>Hi",
                "|R:maybe <tool_call>{}</tool_call>?|C:Hi");
    /* without the flag <think> is content */
    check(TOOL_FORMAT_HERMES, "<think>a</think>b", "|C:<think>a</think>b");
    /* an unclosed think stays reasoning */
    check_flags(TOOL_FORMAT_HERMES, TOOLCALL_THINK, "<think>\nhmm, let me", "|R:hmm, let me");
}

Test(toolcall, hermes_nested_json_strings_unicode) {
    check(TOOL_FORMAT_HERMES,
          "<tool_call>\n{\"name\": \"write_file\", \"arguments\": {\"path\": \"a}.txt\", "
          "\"text\": \"he said \\\"hi\\\" } </tool_call> {[\\\\\", \"n\": {\"list\": [1, 2.5e3, "
          "-0.1, true, false, null, {\"k\": []}]}, \"u\": \"héllo 世界 🎉 \\u00e9\\ud83c\\udf89\"}}"
          "\n</tool_call>",
          "|B0:write_file|A0:{\"path\": \"a}.txt\", \"text\": \"he said \\\"hi\\\" } </tool_call> "
          "{[\\\\\", \"n\": {\"list\": [1, 2.5e3, -0.1, true, false, null, {\"k\": []}]}, \"u\": "
          "\"héllo 世界 🎉 \\u00e9\\ud83c\\udf89\"}|E0");
    /* a unicode name, escaped */
    check(TOOL_FORMAT_HERMES, "<tool_call>{\"name\":\"m\\u00e9t\\u00e9o\",\"arguments\":{}}",
          "|B0:météo|A0:{}|E0");
}

Test(toolcall, hermes_argument_variants) {
    /* no arguments: {} */
    check(TOOL_FORMAT_HERMES, "<tool_call>\n{\"name\": \"get_time\"}\n</tool_call>",
          "|B0:get_time|A0:{}|E0");
    /* arguments as a JSON string: its decoded text */
    check(TOOL_FORMAT_HERMES,
          "<tool_call>\n{\"name\": \"f\", \"arguments\": \"{\\\"a\\\": \\\"\\u00e9\\\"}\"}\n"
          "</tool_call>",
          "|B0:f|A0:{\"a\": \"é\"}|E0");
    /* arguments before the name, extra keys ignored */
    check(TOOL_FORMAT_HERMES,
          "<tool_call>\n{\"arguments\": {\"q\": [1, {}]}, \"id\": 7, \"name\": \"search\", "
          "\"extra\": {\"a\": \"}\"}}\n</tool_call>",
          "|B0:search|A0:{\"q\": [1, {}]}|E0");
    /* an escaped key is none we read */
    check(TOOL_FORMAT_HERMES,
          "<tool_call>{\"n\\u0061me\": \"x\", \"name\": \"f\", \"arguments\": {}}</tool_call>",
          "|B0:f|A0:{}|E0");
}

Test(toolcall, hermes_malformed_is_content) {
    check(TOOL_FORMAT_HERMES, "<tool_call>\nnot json\n</tool_call>",
          "|C:<tool_call>\nnot json\n</tool_call>");
    check(TOOL_FORMAT_HERMES, "<tool_call>\n{\"arguments\": {\"a\": 1}}\n</tool_call>",
          "|C:<tool_call>\n{\"arguments\": {\"a\": 1}}\n</tool_call>");
    check(TOOL_FORMAT_HERMES, "<tool_call>\n{\"name\": 42, \"arguments\": {}}\n</tool_call>",
          "|C:<tool_call>\n{\"name\": 42, \"arguments\": {}}\n</tool_call>");
    check(TOOL_FORMAT_HERMES, "<tool_call>\n{\"name\": \"\", \"arguments\": {}}",
          "|C:<tool_call>\n{\"name\": \"\", \"arguments\": {}}");
    check(TOOL_FORMAT_HERMES, "<tool_call>\n{\"name\": \"f\", \"arguments\": [1]}",
          "|C:<tool_call>\n{\"name\": \"f\", \"arguments\": [1]}");
    /* a tag never closed, a call cut off before its arguments */
    check(TOOL_FORMAT_HERMES, "Sure <tool_call>", "|C:Sure <tool_call>");
    check(TOOL_FORMAT_HERMES, "<tool_call>\n{\"name\": \"get_we",
          "|C:<tool_call>\n{\"name\": \"get_we");
    check(TOOL_FORMAT_HERMES, "<tool_call>\n{\"name\": \"f\", ",
          "|C:<tool_call>\n{\"name\": \"f\", ");
    /* a broken call, then a good one: the good one is found */
    check(TOOL_FORMAT_HERMES,
          "<tool_call>{\"name\": oops}</tool_call>\n<tool_call>{\"name\": \"g\", \"arguments\": "
          "{}}</tool_call>",
          "|C:<tool_call>{\"name\": oops}</tool_call>\n|B0:g|A0:{}|E0");
}

Test(toolcall, hermes_broken_after_begin_and_truncated) {
    /* JSON breaks inside the arguments: the call ends, the rest is content */
    check(TOOL_FORMAT_HERMES,
          "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": 1]}\n</tool_call>",
          "|B0:f|A0:{\"a\": 1|E0|C:]}\n</tool_call>");
    check(TOOL_FORMAT_HERMES, "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": \"x\ny\"}}",
          "|B0:f|A0:{\"a\": \"x|E0|C:\ny\"}}");
    /* cut off inside the arguments: partial arguments */
    check(TOOL_FORMAT_HERMES, "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": \"hel",
          "|B0:f|A0:{\"a\": \"hel|E0");
    check(TOOL_FORMAT_HERMES, "<tool_call>\n{\"name\": \"f\", \"arguments\": {", "|B0:f|A0:{|E0");
    /* the closing tag missing or wrong */
    check(TOOL_FORMAT_HERMES, "<tool_call>\n{\"name\": \"f\", \"arguments\": {}}\n",
          "|B0:f|A0:{}|E0");
    check(TOOL_FORMAT_HERMES, "<tool_call>\n{\"name\": \"f\", \"arguments\": {}}\n</tool",
          "|B0:f|A0:{}|E0");
    check(TOOL_FORMAT_HERMES, "<tool_call>\n{\"name\": \"f\", \"arguments\": {}}\nhi",
          "|B0:f|A0:{}|E0|C:\nhi");
    /* something after the arguments breaks the object */
    check(TOOL_FORMAT_HERMES, "<tool_call>{\"name\": \"f\", \"arguments\": {}, oops}",
          "|B0:f|A0:{}|E0|C:oops}");
}

/* ---- LLAMA3 (Llama 3.1 / 3.2 / 3.3) ---- */

Test(toolcall, llama3_json_calls) {
    check(TOOL_FORMAT_LLAMA3,
          "{\"name\": \"get_current_conditions\", \"parameters\": {\"location\": \"San Francisco, "
          "CA\", \"unit\": \"Fahrenheit\"}}",
          "|B0:get_current_conditions|A0:{\"location\": \"San Francisco, CA\", \"unit\": "
          "\"Fahrenheit\"}|E0");
    check(TOOL_FORMAT_LLAMA3,
          "<|python_tag|>{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}",
          "|B0:get_weather|A0:{\"city\": \"Paris\"}|E0");
    check(TOOL_FORMAT_LLAMA3,
          "\n{\"name\": \"a\", \"parameters\": {}}; {\"name\": \"b\", \"arguments\": {\"x\": 1}}",
          "|B0:a|A0:{}|E0|B1:b|A1:{\"x\": 1}|E1");
    check(TOOL_FORMAT_LLAMA3, "{\"name\": \"f\", \"parameters\": {\"q\": \"ab",
          "|B0:f|A0:{\"q\": \"ab|E0");
}

Test(toolcall, llama3_builtin_and_code) {
    check(TOOL_FORMAT_LLAMA3,
          "<|python_tag|>brave_search.call(query=\"current weather in Menlo Park, California\")",
          "|B0:brave_search|A0:{\"query\": \"current weather in Menlo Park, California\"}|E0");
    check(TOOL_FORMAT_LLAMA3,
          "<|python_tag|>wolfram_alpha.call(query='solve x^2 = 4 \\'now\\'', n=3, x=-1.5e2, "
          "exact=True, y=None)",
          "|B0:wolfram_alpha|A0:{\"query\": \"solve x^2 = 4 'now'\", \"n\": 3, \"x\": -150.0, "
          "\"exact\": true, \"y\": null}|E0");
    check(TOOL_FORMAT_LLAMA3, "<|python_tag|>import math\nprint(\"√2 =\", math.sqrt(2))",
          "|B0:python|A0:{\"code\": \"import math\\nprint(\\\"√2 =\\\", math.sqrt(2))\"}|E0");
    /* not a finished builtin call: code */
    check(TOOL_FORMAT_LLAMA3, "<|python_tag|>brave_search.call(query=\"x\"",
          "|B0:python|A0:{\"code\": \"brave_search.call(query=\\\"x\\\"\"}|E0");
    check(TOOL_FORMAT_LLAMA3, "<|python_tag|>x = foo.bar(1)",
          "|B0:python|A0:{\"code\": \"x = foo.bar(1)\"}|E0");
    check(TOOL_FORMAT_LLAMA3, "<|python_tag|>", "|C:<|python_tag|>");
}

Test(toolcall, llama3_content_and_malformed) {
    check(TOOL_FORMAT_LLAMA3, "  The weather in Paris is sunny, 22 °C.",
          "|C:The weather in Paris is sunny, 22 °C.");
    check(TOOL_FORMAT_LLAMA3, "{\"answer\": 42}", "|C:{\"answer\": 42}");
    check(TOOL_FORMAT_LLAMA3, "{\"name\": \"Bob\", \"age\": 3}",
          "|C:{\"name\": \"Bob\", \"age\": 3}");
    check(TOOL_FORMAT_LLAMA3, "{\"name\": \"f\", \"parameters\": {}} and more",
          "|B0:f|A0:{}|E0|C: and more");
    check(TOOL_FORMAT_LLAMA3, "Here: {\"name\": \"f\", \"parameters\": {}}",
          "|C:Here: {\"name\": \"f\", \"parameters\": {}}");
    check(TOOL_FORMAT_LLAMA3, "{\"name\": \"f\", \"parameters\": {}};", "|B0:f|A0:{}|E0");
    check(TOOL_FORMAT_LLAMA3, "{\"name\": \"f\", \"parameters\": {}}; hi", "|B0:f|A0:{}|E0|C:; hi");
}

/* ---- MISTRAL (v0.3, Nemo, Small) ---- */

Test(toolcall, mistral_array_and_new_form) {
    check(TOOL_FORMAT_MISTRAL,
          "[TOOL_CALLS] [{\"name\": \"get_current_weather\", \"arguments\": {\"location\": "
          "\"Paris, France\", \"format\": \"celsius\"}}]",
          "|B0:get_current_weather|A0:{\"location\": \"Paris, France\", \"format\": "
          "\"celsius\"}|E0");
    check(TOOL_FORMAT_MISTRAL,
          "[TOOL_CALLS][{\"name\": \"a\", \"arguments\": {\"x\": 1}, \"id\": \"Ab3dE5gH9\"}, "
          "{\"name\": \"b\", \"arguments\": {}}]",
          "|B0:a|A0:{\"x\": 1}|E0|B1:b|A1:{}|E1");
    check(TOOL_FORMAT_MISTRAL, "[TOOL_CALLS]get_weather[ARGS]{\"city\": \"Paris\"}",
          "|B0:get_weather|A0:{\"city\": \"Paris\"}|E0");
    check(TOOL_FORMAT_MISTRAL, "[TOOL_CALLS]a[ARGS]{}[TOOL_CALLS]b_2[ARGS]{\"x\": [1, \"]\"]}",
          "|B0:a|A0:{}|E0|B1:b_2|A1:{\"x\": [1, \"]\"]}|E1");
    check(TOOL_FORMAT_MISTRAL,
          "I'll look that up.[TOOL_CALLS][{\"name\": \"search\", \"arguments\": {\"q\": \"ü\"}}]",
          "|C:I'll look that up.|B0:search|A0:{\"q\": \"ü\"}|E0");
}

Test(toolcall, mistral_malformed) {
    check(TOOL_FORMAT_MISTRAL, "[TOOL_CALLS] nonsense", "|C:[TOOL_CALLS] nonsense");
    check(TOOL_FORMAT_MISTRAL, "[TOOL_CALLS] [1, 2]", "|C:[TOOL_CALLS] [1, 2]");
    check(TOOL_FORMAT_MISTRAL, "[TOOL_CALLS][{\"name\": \"a\", \"arguments\": {}}, garbage]",
          "|B0:a|A0:{}|E0|C:, garbage]");
    check(TOOL_FORMAT_MISTRAL, "[TOOL_CALLS][{\"name\": \"a\", \"arguments\": {\"x\": tru",
          "|B0:a|A0:{\"x\": tru|E0");
    check(TOOL_FORMAT_MISTRAL, "[TOOL_CALLS]f[ARGS]{\"a\": 1} tail",
          "|B0:f|A0:{\"a\": 1}|E0|C:tail");
    check(TOOL_FORMAT_MISTRAL, "[TOOL_CALLS]f[ARG", "|C:[TOOL_CALLS]f[ARG");
    check(TOOL_FORMAT_MISTRAL, "a [TOOL", "|C:a [TOOL");
}

/* ---- HARMONY (gpt-oss) ---- */

Test(toolcall, harmony_channels_and_calls) {
    check(TOOL_FORMAT_HARMONY,
          "<|channel|>analysis<|message|>User asks: \"What is the weather in Tokyo?\" We need to "
          "use get_weather tool.<|end|><|start|>assistant<|channel|>commentary "
          "to=functions.get_weather <|constrain|>json<|message|>{\"location\":\"Tokyo\"}<|call|>",
          "|R:User asks: \"What is the weather in Tokyo?\" We need to use get_weather "
          "tool.|B0:get_weather|A0:{\"location\":\"Tokyo\"}|E0");
    check(TOOL_FORMAT_HARMONY,
          "<|channel|>analysis<|message|>Simple greeting.<|end|><|start|>assistant<|channel|>final"
          "<|message|>Hello! How can I help you today? 😊<|return|>",
          "|R:Simple greeting.|C:Hello! How can I help you today? 😊");
    /* the recipient before the channel; <|call|> (an end token) not in the text */
    check(TOOL_FORMAT_HARMONY,
          " to=functions.get_weather<|channel|>commentary json<|message|>{\"location\": \"San "
          "Francisco\"}",
          "|B0:get_weather|A0:{\"location\": \"San Francisco\"}|E0");
    check(TOOL_FORMAT_HARMONY,
          "<|channel|>analysis<|message|>Need two lookups.<|end|><|start|>assistant to=functions.a"
          "<|channel|>commentary json<|message|>{}<|call|><|start|>assistant<|channel|>commentary"
          " to=functions.b <|constrain|>json<|message|>{\"x\": [1]}<|call|>",
          "|R:Need two lookups.|B0:a|A0:{}|E0|B1:b|A1:{\"x\": [1]}|E1");
    /* a commentary preamble is content; a browser builtin keeps its name */
    check(TOOL_FORMAT_HARMONY,
          "<|channel|>commentary<|message|>Checking.<|end|><|start|>assistant<|channel|>analysis"
          " to=browser.search<|message|>{\"query\": \"x\"}",
          "|C:Checking.|B0:browser.search|A0:{\"query\": \"x\"}|E0");
}

Test(toolcall, harmony_malformed) {
    check(TOOL_FORMAT_HARMONY, "Hello there <b>", "|C:Hello there <b>");
    check(TOOL_FORMAT_HARMONY, "<|channel|>analy", "|C:<|channel|>analy");
    check(TOOL_FORMAT_HARMONY, "<|channel|>analysis\nx<|message|>y",
          "|C:<|channel|>analysis\nx<|message|>y");
    check(TOOL_FORMAT_HARMONY, "<|start|>assistant<|message|>no channel",
          "|C:<|start|>assistant<|message|>no channel");
    check(TOOL_FORMAT_HARMONY, "<|channel|>analysis<|message|>cut <|en", "|R:cut <|en");
}

/* ---- GENERIC ---- */

Test(toolcall, generic_calls_and_response) {
    check(TOOL_FORMAT_GENERIC,
          "{\"tool_calls\": [{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}]}",
          "|B0:get_weather|A0:{\"city\": \"Paris\"}|E0");
    check(TOOL_FORMAT_GENERIC,
          "{\"tool_calls\": [{\"name\": \"a\", \"arguments\": {}}, {\"name\": \"b\", "
          "\"arguments\": {\"y\": \"}]\"}}]}",
          "|B0:a|A0:{}|E0|B1:b|A1:{\"y\": \"}]\"}|E1");
    check(TOOL_FORMAT_GENERIC,
          "{\"response\": \"Hello \\\"world\\\"\\n\\u00e9\\ud83c\\udf89 日本 \\ud800!\"}",
          "|C:Hello \"world\"\né🎉 日本 \xef\xbf\xbd!");
    check(TOOL_FORMAT_GENERIC, "{\"response\": \"cut off", "|C:cut off");
    check(TOOL_FORMAT_GENERIC, "{\"tool_calls\": []}", "");
}

Test(toolcall, generic_malformed) {
    check(TOOL_FORMAT_GENERIC, "Just text, no JSON.", "|C:Just text, no JSON.");
    check(TOOL_FORMAT_GENERIC, "{\"other\": 1}", "|C:{\"other\": 1}");
    check(TOOL_FORMAT_GENERIC, "{\"tool_calls\": [{\"name\": \"a\"}]}",
          "|C:{\"tool_calls\": [{\"name\": \"a\"}]}");
    check(TOOL_FORMAT_GENERIC, "{\"response\": \"a\"} extra", "|C:a extra");
    check(TOOL_FORMAT_GENERIC, "{\"tool_calls\": [{\"name\": \"a\", \"arguments\": {}}] x",
          "|B0:a|A0:{}|E0|C:] x");
}

/* ---- NONE and reasoning ---- */

Test(toolcall, none_and_think_open) {
    check(TOOL_FORMAT_NONE, "  <tool_call>{\"name\": \"f\"}</tool_call> <think>x</think>",
          "|C:  <tool_call>{\"name\": \"f\"}</tool_call> <think>x</think>");
    /* DeepSeek-R1: the prompt opened <think>, only </think> appears */
    check_flags(TOOL_FORMAT_NONE, TOOLCALL_THINK_OPEN,
                "Okay, the user asks for 2+2. That is 4.\n</think>\n\nThe answer is **4**.",
                "|R:Okay, the user asks for 2+2. That is 4.\n|C:The answer is **4**.");
    check_flags(TOOL_FORMAT_HERMES, TOOLCALL_THINK_OPEN, "Need the tool.</think>\n\n" QWEN_CALL,
                "|R:Need the tool.|B0:get_current_temperature|A0:{\"location\": \"San Francisco, "
                "CA, USA\"}|E0");
    check_flags(TOOL_FORMAT_LLAMA3, TOOLCALL_THINK,
                "<think>plan</think>{\"name\": \"f\", \"parameters\": {}}",
                "|R:plan|B0:f|A0:{}|E0");
}

/* ---- ids, the whole-text result, invalid bytes ---- */

Test(toolcall, ids_and_parse_result) {
    ToolResult r;
    cr_assert_eq(toolcall_parse(TOOL_FORMAT_HERMES, TOOLCALL_THINK, 7,
                                "<think>hm</think>Hi\n" QWEN_CALL QWEN_CALL,
                                20 + 2 * strlen(QWEN_CALL), &r),
                 STATUS_OK);
    cr_assert_str_eq(r.content, "Hi\n");
    cr_assert_str_eq(r.reasoning, "hm");
    cr_assert_eq(r.n_calls, 2);
    for (int i = 0; i < 2; i++) {
        cr_assert_str_eq(r.calls[i].name, "get_current_temperature");
        cr_assert_str_eq(r.calls[i].arguments, "{\"location\": \"San Francisco, CA, USA\"}");
        cr_assert(id_ok(r.calls[i].id, false), "%s", r.calls[i].id);
    }
    cr_assert_str_neq(r.calls[0].id, r.calls[1].id);
    ToolResult r2;
    cr_assert_eq(toolcall_parse(TOOL_FORMAT_HERMES, TOOLCALL_THINK, 7,
                                "<think>hm</think>Hi\n" QWEN_CALL, 20 + strlen(QWEN_CALL), &r2),
                 STATUS_OK);
    cr_assert_str_eq(r2.calls[0].id, r.calls[0].id, "same seed, same ids");
    toolcall_result_free(&r2);
    cr_assert_eq(toolcall_parse(TOOL_FORMAT_HERMES, 0, 8, QWEN_CALL, strlen(QWEN_CALL), &r2),
                 STATUS_OK);
    cr_assert_str_neq(r2.calls[0].id, r.calls[0].id, "another seed, another id");
    toolcall_result_free(&r2);
    toolcall_result_free(&r);
    toolcall_result_free(&r); /* a zeroed result */

    cr_assert_eq(toolcall_parse(TOOL_FORMAT_MISTRAL, 0, 1, "[TOOL_CALLS]f[ARGS]{}", 20, &r),
                 STATUS_OK);
    cr_assert_eq(r.n_calls, 1);
    cr_assert(id_ok(r.calls[0].id, true), "%s", r.calls[0].id);
    cr_assert_str_eq(r.content, "");
    toolcall_result_free(&r);

    /* a NUL and invalid bytes in content pass through as bytes */
    cr_assert_eq(toolcall_parse(TOOL_FORMAT_HERMES, 0, 1, "a\0b\xff<", 5, &r), STATUS_OK);
    cr_assert_eq(r.content_len, 5);
    cr_assert_eq(memcmp(r.content, "a\0b\xff<", 5), 0);
    toolcall_result_free(&r);
}

/* Deep nesting is bounded: past TOOLCALL_MAX_DEPTH the call breaks. */
Test(toolcall, depth_limit) {
    char text[1024];
    int n = snprintf(text, sizeof text, "<tool_call>{\"name\": \"f\", \"arguments\": ");
    for (int i = 0; i < TOOLCALL_MAX_DEPTH + 5; i++)
        text[n++] = '[';
    text[n] = '\0';
    ToolResult r;
    cr_assert_eq(toolcall_parse(TOOL_FORMAT_HERMES, 0, 1, text, (size_t)n, &r), STATUS_OK);
    /* "arguments" must be an object or a string: an array is malformed */
    cr_assert_eq(r.n_calls, 0);
    cr_assert_str_eq(r.content, text);
    toolcall_result_free(&r);
    n = snprintf(text, sizeof text, "<tool_call>{\"name\": \"f\", \"arguments\": {\"a\": ");
    for (int i = 0; i < TOOLCALL_MAX_DEPTH + 5; i++)
        text[n++] = '[';
    text[n] = '\0';
    cr_assert_eq(toolcall_parse(TOOL_FORMAT_HERMES, 0, 1, text, (size_t)n, &r), STATUS_OK);
    cr_assert_eq(r.n_calls, 1);
    cr_assert_eq(r.calls[0].arguments_len, 6 + TOOLCALL_MAX_DEPTH - 1, "%zu",
                 r.calls[0].arguments_len);
    toolcall_result_free(&r);
}

/* ---- detection ---- */

static char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    cr_assert(f, "cannot open %s", path);
    char *s = malloc(1 << 20);
    *n = fread(s, 1, (1 << 20) - 1, f);
    s[*n] = '\0';
    fclose(f);
    return s;
}

Test(toolcall, detect_from_templates) {
    struct {
        const char *file;
        ToolFormat want;
        unsigned flags;
    } cases[] = {
        {"qwen25", TOOL_FORMAT_HERMES, 0},
        {"qwen3", TOOL_FORMAT_HERMES, TOOLCALL_THINK},
        {"llama31", TOOL_FORMAT_LLAMA3, 0},
        {"llama32", TOOL_FORMAT_LLAMA3, 0},
        {"mistral-v3", TOOL_FORMAT_MISTRAL, 0},
        {"gpt-oss", TOOL_FORMAT_HARMONY, 0},
        {"deepseek-r1-distill", TOOL_FORMAT_GENERIC, TOOLCALL_THINK},
        {"chatml", TOOL_FORMAT_GENERIC, 0},
        {"phi4-mini", TOOL_FORMAT_GENERIC, 0},
        {"gemma3", TOOL_FORMAT_GENERIC, 0},
        {"llama3-instruct", TOOL_FORMAT_GENERIC, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char path[256];
        snprintf(path, sizeof path, "tests/chat/templates/%s.jinja", cases[i].file);
        size_t n;
        char *src = slurp(path, &n);
        unsigned flags = 99;
        ToolFormat f = toolcall_detect(src, n, &flags);
        cr_assert_eq(f, cases[i].want, "%s: %s, want %s", cases[i].file, toolcall_format_name(f),
                     toolcall_format_name(cases[i].want));
        cr_assert_eq(flags, cases[i].flags, "%s: flags %u, want %u", cases[i].file, flags,
                     cases[i].flags);
        free(src);
    }
    /* DeepSeek-R1's newer template opens <think> in the generation prompt */
    const char *r1 = "{% if add_generation_prompt %}{{'<｜Assistant｜><think>\\n'}}{% endif %}";
    unsigned flags;
    cr_assert_eq(toolcall_detect(r1, strlen(r1), &flags), TOOL_FORMAT_GENERIC);
    cr_assert_eq(flags, TOOLCALL_THINK | TOOLCALL_THINK_OPEN);
    cr_assert_eq(toolcall_detect("", 0, NULL), TOOL_FORMAT_GENERIC);
    cr_assert_str_eq(toolcall_format_name(TOOL_FORMAT_HARMONY), "harmony");
    cr_assert_str_eq(toolcall_format_name(TOOL_FORMAT_NONE), "none");
}

/* ---- grammars ---- */

static const char *const g_names[] = {"get_weather", "ping"};
static const char *const g_rules[] = {"f1-args", "f2-args"};
#define ARG_RULES                                                                                  \
    "f1-args ::= \"{}\" | \"{\\\"x\\\": 1}\"\n"                                                    \
    "f2-args ::= \"{\\\"host\\\": \\\"\" [a-z.]+ \"\\\"}\"\n"

static Grammar *tool_grammar(ToolFormat f, bool parallel, bool allow_content) {
    char *text;
    size_t len;
    Err err = {0};
    cr_assert_eq(
        toolcall_grammar(f, g_names, g_rules, 2, parallel, allow_content, &text, &len, &err),
        STATUS_OK, "%s", err.msg);
    cr_assert_eq(strlen(text), len);
    cr_assert_eq(strncmp(text, "root ::= ", 9), 0, "root comes first: %s", text);
    char *full = malloc(len + sizeof ARG_RULES);
    memcpy(full, text, len);
    memcpy(full + len, ARG_RULES, sizeof ARG_RULES);
    Grammar *g = NULL;
    cr_assert_eq(grammar_parse(&g, full, strlen(full), NULL, &err), STATUS_OK, "%s\n%s", err.msg,
                 full);
    free(full);
    free(text);
    return g;
}

static void expect_match(const Grammar *g, const char *text, bool want) {
    cr_assert_eq(grammar_matches(g, text, strlen(text)), want, "grammar %s '%s'",
                 want ? "refuses" : "accepts", text);
}

typedef struct {
    ToolFormat f;
    const char *one, *two, *content, *bad;
    const char *two_events;
} GCase;

Test(toolcall, grammar_sentences_parse_back) {
    GCase cases[] = {
        {TOOL_FORMAT_HERMES,
         "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"x\": 1}}\n</tool_call>",
         "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {}}\n</tool_call>\n<tool_call>\n"
         "{\"name\": \"ping\", \"arguments\": {\"host\": \"a.b\"}}\n</tool_call>",
         "Sure, let me check.\n",
         "<tool_call>\n{\"name\": \"nope\", \"arguments\": {}}\n</tool_call>",
         "|B0:get_weather|A0:{}|E0|B1:ping|A1:{\"host\": \"a.b\"}|E1"},
        {TOOL_FORMAT_LLAMA3, "{\"name\": \"get_weather\", \"parameters\": {\"x\": 1}}",
         "{\"name\": \"get_weather\", \"parameters\": {}}; {\"name\": \"ping\", \"parameters\": "
         "{\"host\": \"a.b\"}}",
         "It is sunny.", "{\"name\": \"get_weather\", \"parameters\": {\"x\": 2}}",
         "|B0:get_weather|A0:{}|E0|B1:ping|A1:{\"host\": \"a.b\"}|E1"},
        {TOOL_FORMAT_MISTRAL,
         "[TOOL_CALLS] [{\"name\": \"get_weather\", \"arguments\": {\"x\": 1}}]",
         "[TOOL_CALLS] [{\"name\": \"get_weather\", \"arguments\": {}}, {\"name\": \"ping\", "
         "\"arguments\": {\"host\": \"a.b\"}}]",
         "It is sunny.", "[TOOL_CALLS] [{\"name\": \"ping\", \"arguments\": {}}]",
         "|B0:get_weather|A0:{}|E0|B1:ping|A1:{\"host\": \"a.b\"}|E1"},
        {TOOL_FORMAT_GENERIC,
         "{\"tool_calls\": [{\"name\": \"get_weather\", \"arguments\": {\"x\": 1}}]}",
         "{\"tool_calls\": [{\"name\": \"get_weather\", \"arguments\": {}}, {\"name\": \"ping\", "
         "\"arguments\": {\"host\": \"a.b\"}}]}",
         "{\"response\": \"It is \\\"sunny\\\" \\u00e9.\"}",
         "{\"tool_calls\": [{\"name\": \"get_weather\", \"arguments\": {\"y\": 1}}]}",
         "|B0:get_weather|A0:{}|E0|B1:ping|A1:{\"host\": \"a.b\"}|E1"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        GCase *c = &cases[i];
        Grammar *single = tool_grammar(c->f, false, false);
        Grammar *par = tool_grammar(c->f, true, false);
        Grammar *any = tool_grammar(c->f, true, true);
        expect_match(single, c->one, true);
        expect_match(single, c->two, false);
        expect_match(single, c->content, false);
        expect_match(single, c->bad, false);
        expect_match(par, c->one, true);
        expect_match(par, c->two, true);
        expect_match(par, c->content, false);
        expect_match(par, c->bad, false);
        expect_match(any, c->two, true);
        expect_match(any, c->content, true);
        expect_match(any, c->bad, false);
        /* what the grammar admits parses back into exactly those calls */
        check(c->f, c->two, c->two_events);
        ToolResult r;
        cr_assert_eq(toolcall_parse(c->f, 0, 1, c->one, strlen(c->one), &r), STATUS_OK);
        cr_assert_eq(r.n_calls, 1, "%s", c->one);
        cr_assert_str_eq(r.calls[0].name, "get_weather");
        cr_assert_str_eq(r.calls[0].arguments, "{\"x\": 1}");
        cr_assert_str_eq(r.content, "");
        toolcall_result_free(&r);
        grammar_free(single);
        grammar_free(par);
        grammar_free(any);
    }
    /* content then calls (HERMES, MISTRAL) */
    Grammar *g = tool_grammar(TOOL_FORMAT_HERMES, true, true);
    expect_match(g,
                 "Let me check.\n<tool_call>\n{\"name\": \"ping\", \"arguments\": {\"host\": "
                 "\"x\"}}\n</tool_call>",
                 true);
    grammar_free(g);
    g = tool_grammar(TOOL_FORMAT_MISTRAL, false, true);
    expect_match(g, "Ok. [TOOL_CALLS] [{\"name\": \"ping\", \"arguments\": {\"host\": \"x\"}}]",
                 true);
    grammar_free(g);
}

Test(toolcall, grammar_harmony) {
    Grammar *g = tool_grammar(TOOL_FORMAT_HARMONY, true, false);
    const char *call = "<|channel|>analysis<|message|>Need weather.<|end|><|start|>assistant"
                       "<|channel|>commentary to=functions.get_weather <|constrain|>json"
                       "<|message|>{\"x\": 1}";
    expect_match(g, call, true);
    expect_match(g,
                 "<|channel|>commentary to=functions.ping <|constrain|>json<|message|>{\"host\": "
                 "\"a\"}",
                 true);
    expect_match(g, "<|channel|>final<|message|>Hi", false);
    grammar_free(g);
    g = tool_grammar(TOOL_FORMAT_HARMONY, false, true);
    expect_match(g, "<|channel|>final<|message|>Hi", true);
    expect_match(g, call, true);
    grammar_free(g);
    check(TOOL_FORMAT_HARMONY, call, "|R:Need weather.|B0:get_weather|A0:{\"x\": 1}|E0");
}

Test(toolcall, grammar_errors) {
    char *text = NULL;
    size_t len;
    Err err = {0};
    const char *bad_name[] = {"get weather"}, *bad_rule[] = {"f_args"}, *ok[] = {"f"};
    cr_assert_eq(toolcall_grammar(TOOL_FORMAT_NONE, ok, ok, 1, false, false, &text, &len, &err),
                 STATUS_INVALID);
    cr_assert_eq(toolcall_grammar(TOOL_FORMAT_HERMES, ok, ok, 0, false, false, &text, &len, &err),
                 STATUS_INVALID);
    cr_assert_eq(
        toolcall_grammar(TOOL_FORMAT_HERMES, bad_name, ok, 1, false, false, &text, &len, &err),
        STATUS_INVALID);
    cr_assert(strstr(err.msg, "get weather"), "%s", err.msg);
    cr_assert_eq(
        toolcall_grammar(TOOL_FORMAT_HERMES, ok, bad_rule, 1, false, false, &text, &len, &err),
        STATUS_INVALID);
    cr_assert(strstr(err.msg, "f_args"), "%s", err.msg);
    cr_assert_null(text);
}
