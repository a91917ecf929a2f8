/* fuzz_jsonschema.c - libFuzzer target for the JSON Schema compiler.
 *
 * Input layout: the text up to the first NUL byte is a schema (JSON); the
 * bytes after it are text to match. A schema that jansson parses must
 * compile or fail with a message (and no grammar); a compiled grammar must
 * parse with grammar_parse (the compiler promises GBNF that the grammar
 * module accepts) and is matched against the text. The schema is also
 * compiled into a buffer beside another schema, and a failure there must
 * leave the buffer as it was. No crash, hang or unbounded growth. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sample/grammar.h"
#include "sample/jsonschema.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *nul = memchr(data, 0, size);
    size_t slen = nul ? (size_t)(nul - data) : size;
    json_error_t je;
    json_t *schema = json_loadb((const char *)data, slen, JSON_DECODE_ANY, &je);
    if (!schema)
        return 0;
    char *gbnf = NULL;
    Err err = {0};
    if (jsonschema_to_gbnf(schema, &gbnf, &err) != STATUS_OK) {
        if (!err.msg[0] || gbnf)
            abort(); /* every failure says why, and returns nothing */
    } else {
        Grammar *g = NULL;
        if (grammar_parse(&g, gbnf, strlen(gbnf), NULL, &err) != STATUS_OK)
            abort(); /* compiled GBNF the grammar module refuses */
        const char *text = nul ? (const char *)nul + 1 : "";
        size_t tlen = nul ? size - slen - 1 : 0;
        (void)grammar_matches(g, text, tlen < 512 ? tlen : 512);
        grammar_free(g);
        free(gbnf);
    }
    /* beside another schema in one buffer */
    JsonSchemaBuf b;
    jsonschema_buf_init(&b);
    json_t *first = json_pack("{s:s}", "type", "string");
    char r1[JSONSCHEMA_MAX_RULE_NAME], r2[JSONSCHEMA_MAX_RULE_NAME];
    if (jsonschema_compile(&b, first, "a", r1, sizeof r1, &err) != STATUS_OK)
        abort();
    size_t len = b.len;
    if (jsonschema_compile(&b, schema, "b", r2, sizeof r2, &err) != STATUS_OK) {
        if (b.len != len)
            abort(); /* a failed compile leaves the buffer as it was */
    } else {
        static const char root[] = "root ::= a | b\n";
        Grammar *g = NULL;
        if (jsonschema_buf_append(&b, root, sizeof root - 1, &err) == STATUS_OK &&
            grammar_parse(&g, b.text, b.len, NULL, &err) != STATUS_OK)
            abort();
        grammar_free(g);
    }
    jsonschema_buf_free(&b);
    json_decref(first);
    json_decref(schema);
    return 0;
}
