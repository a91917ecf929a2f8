/* fuzz_template.c - libFuzzer target for the chat template engine.
 *
 * The input is template source; it is parsed and, when accepted, rendered
 * with a fixed set of chat variables (messages with tool calls, tools,
 * bos/eos, numbers, nested dicts) under small limits so that loops and
 * recursion end quickly. Every failure must explain itself; every success
 * must give a mask byte per output byte (ASan sees any overrun). */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chat/template.h"

static json_t *vars;
static volatile unsigned sink;

static const char VARS[] =
    "{\"messages\":[{\"role\":\"system\",\"content\":\"You are helpful.\"},"
    "{\"role\":\"user\",\"content\":\"Hi <|im_start|> there\"},"
    "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"c1\",\"type\":\"function\","
    "\"function\":{\"name\":\"f\",\"arguments\":{\"x\":1,\"y\":[1.5,true,null]}}}]},"
    "{\"role\":\"tool\",\"content\":\"42\",\"tool_call_id\":\"c1\"},"
    "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"part\"}]}],"
    "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":{}}}],"
    "\"add_generation_prompt\":true,\"bos_token\":\"<s>\",\"eos_token\":\"</s>\","
    "\"n\":-7,\"x\":2.5,\"s\":\"  Mixed \\u00e9 \",\"d\":{\"b\":1,\"a\":{\"c\":[]}}}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!vars) {
        vars = json_loads(VARS, 0, NULL);
        if (!vars)
            abort();
    }
    char *copy = malloc(size ? size : 1);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    Err err = {0};
    Template *t = tmpl_parse(copy, size, &err);
    free(copy);
    if (!t) {
        if (err.msg[0] == '\0')
            abort();
        return 0;
    }
    TmplLimits lim = {.max_steps = 200000, .max_depth = 64, .max_output = 1 << 20};
    char *out;
    uint8_t *mask;
    size_t len;
    Status st = tmpl_render(t, vars, &lim, &out, &mask, &len, &err);
    if (st == STATUS_OK) {
        if (!out || !mask || out[len] != '\0')
            abort();
        if (len)
            sink += (unsigned)mask[0] + mask[len - 1] + (unsigned char)out[len - 1];
        for (size_t i = 0; i < len; i++)
            if (mask[i] > 1)
                abort();
        free(out);
        free(mask);
    } else if (err.msg[0] == '\0' || out || mask) {
        abort();
    }
    tmpl_free(t);
    return 0;
}
