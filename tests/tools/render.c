/* render.c - renders a chat template with variables, for comparing our
 * engine against Jinja2 (tests/chat/test_template_jinja.py).
 *
 *   render [--mask] TEMPLATE_FILE VARS_JSON_FILE
 *
 * Prints the output as it is, or with --mask a JSON object
 * {"text": ..., "mask": "0101..."} (one digit per output byte). On failure
 * prints the error on stderr and exits 1. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat/template.h"

static char *slurp(const char *path, size_t *len) {
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return NULL;
    size_t cap = 4096, n = 0;
    char *b = malloc(cap);
    size_t k;
    while (b && (k = fread(b + n, 1, cap - n, fp)) > 0) {
        n += k;
        if (n == cap) {
            char *nb = realloc(b, cap *= 2);
            if (!nb) {
                free(b);
                b = NULL;
            }
            b = nb;
        }
    }
    fclose(fp);
    *len = n;
    return b;
}

int main(int argc, char **argv) {
    int mask = argc > 1 && !strcmp(argv[1], "--mask");
    if (argc != 3 + mask) {
        fprintf(stderr, "usage: render [--mask] TEMPLATE_FILE VARS_JSON_FILE\n");
        return 2;
    }
    size_t len;
    char *src = slurp(argv[1 + mask], &len);
    if (!src) {
        fprintf(stderr, "render: cannot read %s\n", argv[1 + mask]);
        return 2;
    }
    json_error_t jerr;
    json_t *vars = json_load_file(argv[2 + mask], JSON_DECODE_ANY, &jerr);
    if (!vars) {
        fprintf(stderr, "render: %s: %s\n", argv[2 + mask], jerr.text);
        free(src);
        return 2;
    }
    Err err = {0};
    Template *t = tmpl_parse(src, len, &err);
    free(src);
    if (!t) {
        fprintf(stderr, "%s\n", err.msg);
        json_decref(vars);
        return 1;
    }
    char *out;
    uint8_t *m;
    size_t n;
    Status st = tmpl_render(t, vars, NULL, &out, &m, &n, &err);
    tmpl_free(t);
    json_decref(vars);
    if (st != STATUS_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    if (mask) {
        char *digits = malloc(n + 1);
        for (size_t i = 0; i < n; i++)
            digits[i] = (char)('0' + m[i]);
        digits[n] = '\0';
        json_t *o = json_pack("{s:s%,s:s}", "text", out, n, "mask", digits);
        char *dump = o ? json_dumps(o, JSON_ENSURE_ASCII) : NULL;
        if (!dump) {
            fprintf(stderr, "render: output is not valid UTF-8\n");
            return 1;
        }
        fputs(dump, stdout);
        free(dump);
        json_decref(o);
        free(digits);
    } else {
        fwrite(out, 1, n, stdout);
    }
    free(out);
    free(m);
    return 0;
}
