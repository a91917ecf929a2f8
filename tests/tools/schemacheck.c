/* schemacheck - compile JSON Schemas to GBNF and match strings, for the
 * oracle test tests/sample/test_jsonschema.py.
 *
 *   schemacheck CASES.json      CASES: [{"schema": S, "strings": [TEXT...]}, ...]
 *   schemacheck --gbnf SCHEMA.json   print the grammar of one schema
 *
 * For each case prints one line of JSON: {"ok": true, "match": [0|1...]}
 * (grammar_matches of each string against the schema's grammar) or
 * {"ok": false, "status": "unsupported", "error": "..."}. Exits 1 when the
 * file cannot be read. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sample/grammar.h"
#include "sample/jsonschema.h"

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "--gbnf")) {
        json_error_t je;
        json_t *s = json_load_file(argv[2], JSON_DECODE_ANY, &je);
        if (!s) {
            fprintf(stderr, "schemacheck: %s:%d: %s\n", argv[2], je.line, je.text);
            return 1;
        }
        char *g = NULL;
        Err err = {0};
        if (jsonschema_to_gbnf(s, &g, &err) != STATUS_OK) {
            fprintf(stderr, "schemacheck: %s\n", err.msg);
            json_decref(s);
            return 1;
        }
        fputs(g, stdout);
        free(g);
        json_decref(s);
        return 0;
    }
    if (argc != 2) {
        fprintf(stderr, "usage: schemacheck CASES.json | schemacheck --gbnf SCHEMA.json\n");
        return 2;
    }
    json_error_t je;
    json_t *cases = json_load_file(argv[1], JSON_DECODE_ANY, &je);
    if (!json_is_array(cases)) {
        fprintf(stderr, "schemacheck: %s:%d: %s\n", argv[1], je.line,
                cases ? "not an array" : je.text);
        return 1;
    }
    for (size_t i = 0; i < json_array_size(cases); i++) {
        const json_t *c = json_array_get(cases, i);
        const json_t *strings = json_object_get(c, "strings");
        json_t *out = json_object();
        char *gbnf = NULL;
        Err err = {0};
        Grammar *g = NULL;
        Status st = jsonschema_to_gbnf(json_object_get(c, "schema"), &gbnf, &err);
        if (st == STATUS_OK)
            st = grammar_parse(&g, gbnf, strlen(gbnf), NULL, &err);
        if (st != STATUS_OK) {
            json_object_set_new(out, "ok", json_false());
            json_object_set_new(out, "status", json_string(status_name(st)));
            json_object_set_new(out, "error", json_string(err.msg));
        } else {
            json_t *m = json_array();
            for (size_t k = 0; k < json_array_size(strings); k++) {
                const json_t *t = json_array_get(strings, k);
                bool yes = grammar_matches(g, json_string_value(t), json_string_length(t));
                json_array_append_new(m, json_integer(yes));
            }
            json_object_set_new(out, "ok", json_true());
            json_object_set_new(out, "match", m);
            json_object_set_new(out, "gbnf_bytes", json_integer((json_int_t)strlen(gbnf)));
        }
        char *line = json_dumps(out, JSON_COMPACT);
        puts(line);
        free(line);
        json_decref(out);
        grammar_free(g);
        free(gbnf);
    }
    json_decref(cases);
    return 0;
}
