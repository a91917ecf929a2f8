/* tokbatch.c - test tool: tokenize many strings with one tokenizer, for the
 * oracle test (tests/tokenizer/test_oracle.mjs).
 *
 *   tokbatch -m VOCAB.gguf [--special] [--bos] [--eos] [--decode]
 *            < strings.jsonl > ids.jsonl
 *
 * Each input line is a JSON string (any unicode, NUL included) or an object
 * {"hex": "..."} carrying raw bytes (for invalid UTF-8). Each output line is
 * the JSON array of ids; with --decode an object
 *   {"ids": [...], "rt": true}                      decode(encode(s)) == s
 *   {"ids": [...], "rt": false, "got_hex": "..."}   what decode gave instead
 * where the decode leaves out the BOS/EOS that --bos/--eos added and renders
 * control tokens only with --special. A line that cannot be parsed or
 * encoded gives {"error": "..."} so lines stay aligned; the exit status is
 * then 1. --special sets parse_special (control and user-defined token
 * strings in the text become those tokens); without it only user-defined
 * tokens are matched, as llama.cpp does. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

static int hexval(int c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decode 'n' hex digits into *buf (grown as needed); false on odd length,
 * a bad digit or out of memory. */
static bool hex_decode(const char *hx, size_t n, char **buf, size_t *cap, size_t *len) {
    if (n % 2)
        return false;
    if (n / 2 + 1 > *cap) {
        char *nb = realloc(*buf, n / 2 + 1);
        if (!nb)
            return false;
        *buf = nb;
        *cap = n / 2 + 1;
    }
    for (size_t i = 0; i < n / 2; i++) {
        int hi = hexval(hx[2 * i]), lo = hexval(hx[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        (*buf)[i] = (char)(hi << 4 | lo);
    }
    *len = n / 2;
    return true;
}

static void put_hex(FILE *f, const char *p, size_t n) {
    static const char d[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        fputc(d[c >> 4], f);
        fputc(d[c & 15], f);
    }
}

static void put_error(const char *what, const char *detail) {
    json_t *o = json_pack("{s:s+++}", "error", what, detail ? ": " : "", detail ? detail : "", "");
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    printf("%s\n", s ? s : "{\"error\":\"out of memory\"}");
    free(s);
    json_decref(o);
}

int main(int argc, char **argv) {
    const char *path = NULL;
    bool special = false, bos = false, eos = false, decode = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-m") && i + 1 < argc)
            path = argv[++i];
        else if (!strcmp(argv[i], "--special"))
            special = true;
        else if (!strcmp(argv[i], "--bos"))
            bos = true;
        else if (!strcmp(argv[i], "--eos"))
            eos = true;
        else if (!strcmp(argv[i], "--decode"))
            decode = true;
        else {
            fprintf(stderr, "usage: tokbatch -m VOCAB.gguf [--special] [--bos] [--eos] [--decode]\n");
            return 2;
        }
    }
    if (!path) {
        fprintf(stderr, "tokbatch: -m VOCAB.gguf is required\n");
        return 2;
    }
    GGUF g = {0};
    Err err = {0};
    if (gguf_open(&g, path, &err) != STATUS_OK) {
        fprintf(stderr, "tokbatch: %s: %s\n", path, err.msg);
        return 1;
    }
    Tokenizer *t = NULL;
    if (tok_load(&t, &g, &err) != STATUS_OK) {
        fprintf(stderr, "tokbatch: %s: %s\n", path, err.msg);
        gguf_close(&g);
        return 1;
    }
    gguf_close(&g); /* the tokenizer copies what it needs */

    TokEncodeOpts o = {.add_bos = bos, .add_eos = eos, .parse_special = special};
    char *line = NULL, *bytes = NULL, *dec = NULL;
    size_t line_cap = 0, bytes_cap = 0, dec_cap = 0, ids_cap = 0;
    int32_t *ids = NULL;
    ssize_t got;
    int rc = 0;
    while ((got = getline(&line, &line_cap, stdin)) >= 0) {
        json_error_t jerr;
        json_t *v = json_loadb(line, (size_t)got, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
        const char *text = NULL;
        size_t len = 0;
        if (v && json_is_string(v)) {
            text = json_string_value(v);
            len = json_string_length(v);
        } else if (v && json_is_object(v) && json_is_string(json_object_get(v, "hex"))) {
            json_t *h = json_object_get(v, "hex");
            if (hex_decode(json_string_value(h), json_string_length(h), &bytes, &bytes_cap, &len))
                text = bytes;
        }
        if (!text) {
            put_error("bad input line", v ? "want a JSON string or {\"hex\": ...}" : jerr.text);
            json_decref(v);
            rc = 1;
            continue;
        }
        if (len + 3 > ids_cap) {
            ids_cap = len + 3;
            ids = realloc(ids, ids_cap * sizeof *ids);
            if (!ids) {
                fprintf(stderr, "tokbatch: out of memory\n");
                return 1;
            }
        }
        size_t n = 0;
        if (tok_encode(t, text, len, &o, ids, ids_cap, &n, &err) != STATUS_OK) {
            put_error("tok_encode", err.msg);
            json_decref(v);
            rc = 1;
            continue;
        }
        if (decode)
            fputs("{\"ids\":", stdout);
        putchar('[');
        for (size_t i = 0; i < n; i++)
            printf(i ? ",%d" : "%d", (int)ids[i]);
        putchar(']');
        if (decode) {
            size_t b = (bos && n > 0 && ids[0] == tok_bos(t)) ? 1 : 0;
            size_t e = (eos && n > b && ids[n - 1] == tok_eos(t)) ? 1 : 0;
            size_t need = tok_decode(t, ids + b, n - b - e, special, dec, dec_cap);
            if (need > dec_cap) {
                dec_cap = need + 64;
                dec = realloc(dec, dec_cap);
                if (!dec) {
                    fprintf(stderr, "tokbatch: out of memory\n");
                    return 1;
                }
                need = tok_decode(t, ids + b, n - b - e, special, dec, dec_cap);
            }
            if (need == len && (len == 0 || memcmp(dec, text, len) == 0)) {
                fputs(",\"rt\":true}", stdout);
            } else {
                fputs(",\"rt\":false,\"got_hex\":\"", stdout);
                put_hex(stdout, dec, need);
                fputs("\"}", stdout);
            }
        }
        putchar('\n');
        json_decref(v);
    }
    free(line);
    free(bytes);
    free(dec);
    free(ids);
    tok_free(t);
    return rc;
}
