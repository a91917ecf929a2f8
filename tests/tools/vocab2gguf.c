/* vocab2gguf.c - test tool: turn a vocabulary description written by
 * tests/js/export_vocab.mjs into a vocabulary-only GGUF (no tensors) with the
 * tokenizer metadata llama.cpp's converter writes.
 *
 *   vocab2gguf IN.json OUT.gguf
 *
 * Keys written: general.architecture "llama", general.name, tokenizer.ggml.
 * {model, pre (when given), tokens, scores (when given), token_type, merges
 * (when given), bos/eos/unknown/padding_token_id (when given),
 * add_bos_token / add_eos_token / add_space_prefix (when given)} and
 * tokenizer.chat_template (when given). It checks the shapes (array lengths,
 * ids in range, strings without NUL) but not what the tokenizer will think
 * of them: that is tok_load's job, and the oracle test's.
 * Exits 1 with one line on stderr on any error. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf/gguf_writer.h"

static _Noreturn void die(const char *what, const char *detail) {
    fprintf(stderr, "vocab2gguf: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    exit(1);
}

/* A string member or NULL when absent / null; dies on another type or NUL. */
static const char *opt_str(json_t *root, const char *key) {
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v))
        return NULL;
    if (!json_is_string(v))
        die("not a string", key);
    if (strlen(json_string_value(v)) != json_string_length(v))
        die("string contains NUL", key);
    return json_string_value(v);
}

/* An array member of n elements (n < 0: any length); NULL when absent/null. */
static json_t *opt_arr(json_t *root, const char *key, long long n) {
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v))
        return NULL;
    if (!json_is_array(v))
        die("not an array", key);
    if (n >= 0 && (long long)json_array_size(v) != n) {
        char msg[128];
        snprintf(msg, sizeof msg, "%s has %zu entries, tokens has %lld", key, json_array_size(v), n);
        die("length mismatch", msg);
    }
    return v;
}

/* String array as C strings borrowed from the JSON (valid while root lives). */
static const char **str_array(json_t *arr, const char *key) {
    size_t n = json_array_size(arr);
    const char **out = calloc(n ? n : 1, sizeof *out);
    if (!out)
        die("out of memory", key);
    for (size_t i = 0; i < n; i++) {
        json_t *s = json_array_get(arr, i);
        if (!json_is_string(s) || strlen(json_string_value(s)) != json_string_length(s)) {
            char msg[128];
            snprintf(msg, sizeof msg, "%s[%zu] is not a string without NUL", key, i);
            die("bad entry", msg);
        }
        out[i] = json_string_value(s);
    }
    return out;
}

static void set_id(GGUFWriter *w, json_t *root, const char *jkey, const char *gkey, size_t n_vocab) {
    json_t *v = json_object_get(root, jkey);
    if (!v || json_is_null(v))
        return;
    if (!json_is_integer(v) || json_integer_value(v) < 0 || (size_t)json_integer_value(v) >= n_vocab)
        die("special id not an integer in [0, n_vocab)", jkey);
    gguf_writer_set_u32(w, gkey, (uint32_t)json_integer_value(v));
}

static void set_flag(GGUFWriter *w, json_t *root, const char *jkey, const char *gkey) {
    json_t *v = json_object_get(root, jkey);
    if (!v || json_is_null(v))
        return;
    if (!json_is_boolean(v))
        die("not a boolean", jkey);
    gguf_writer_set_bool(w, gkey, json_is_true(v));
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: vocab2gguf IN.json OUT.gguf\n");
        return 2;
    }
    json_error_t jerr;
    json_t *root = json_load_file(argv[1], JSON_ALLOW_NUL, &jerr);
    if (!root) {
        char msg[256];
        snprintf(msg, sizeof msg, "%s:%d: %s", argv[1], jerr.line, jerr.text);
        die("bad JSON", msg);
    }
    if (!json_is_object(root))
        die("top level is not an object", argv[1]);

    const char *model = opt_str(root, "model");
    if (!model)
        die("missing", "model");
    json_t *tokens = opt_arr(root, "tokens", -1);
    if (!tokens || json_array_size(tokens) == 0)
        die("missing or empty", "tokens");
    size_t n_vocab = json_array_size(tokens);
    json_t *types = opt_arr(root, "token_type", (long long)n_vocab);
    if (!types)
        die("missing", "token_type");
    json_t *scores = opt_arr(root, "scores", (long long)n_vocab);
    json_t *merges = opt_arr(root, "merges", -1);

    GGUFWriter *w = gguf_writer_new();
    if (!w)
        die("out of memory", NULL);
    gguf_writer_set_str(w, "general.architecture", "llama");
    const char *family = opt_str(root, "family");
    char name[128];
    snprintf(name, sizeof name, "%s vocab", family ? family : "oracle");
    gguf_writer_set_str(w, "general.name", name);
    gguf_writer_set_str(w, "tokenizer.ggml.model", model);
    const char *pre = opt_str(root, "pre");
    if (pre)
        gguf_writer_set_str(w, "tokenizer.ggml.pre", pre);

    const char **tok = str_array(tokens, "tokens");
    gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", tok, n_vocab);

    if (scores) {
        float *sc = malloc(n_vocab * sizeof *sc);
        if (!sc)
            die("out of memory", "scores");
        for (size_t i = 0; i < n_vocab; i++) {
            json_t *s = json_array_get(scores, i);
            if (!json_is_number(s))
                die("scores entry is not a number", NULL);
            sc[i] = (float)json_number_value(s);
        }
        gguf_writer_set_arr_f32(w, "tokenizer.ggml.scores", sc, n_vocab);
        free(sc);
    }

    int32_t *ty = malloc(n_vocab * sizeof *ty);
    if (!ty)
        die("out of memory", "token_type");
    for (size_t i = 0; i < n_vocab; i++) {
        json_t *t = json_array_get(types, i);
        if (!json_is_integer(t) || json_integer_value(t) < 1 || json_integer_value(t) > 6)
            die("token_type entry not an integer in 1..6", NULL);
        ty[i] = (int32_t)json_integer_value(t);
    }
    gguf_writer_set_arr_i32(w, "tokenizer.ggml.token_type", ty, n_vocab);
    free(ty);

    const char **mg = NULL;
    if (merges) {
        mg = str_array(merges, "merges");
        gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", mg, json_array_size(merges));
    }

    set_id(w, root, "bos", "tokenizer.ggml.bos_token_id", n_vocab);
    set_id(w, root, "eos", "tokenizer.ggml.eos_token_id", n_vocab);
    set_id(w, root, "unk", "tokenizer.ggml.unknown_token_id", n_vocab);
    set_id(w, root, "pad", "tokenizer.ggml.padding_token_id", n_vocab);
    set_flag(w, root, "add_bos", "tokenizer.ggml.add_bos_token");
    set_flag(w, root, "add_eos", "tokenizer.ggml.add_eos_token");
    set_flag(w, root, "add_space_prefix", "tokenizer.ggml.add_space_prefix");
    const char *tmpl = opt_str(root, "chat_template");
    if (tmpl)
        gguf_writer_set_str(w, "tokenizer.chat_template", tmpl);

    Err err = {0};
    Status st = gguf_writer_write(w, argv[2], &err);
    gguf_writer_free(w);
    free(tok);
    free(mg);
    json_decref(root);
    if (st != STATUS_OK)
        die(argv[2], err.msg);
    return 0;
}
