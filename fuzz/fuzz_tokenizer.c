/* fuzz_tokenizer.c - libFuzzer target for tok_encode / tok_decode / tok_stream.
 *
 * Two small vocabularies are built once (GGUF writer -> temporary file ->
 * tok_load): a byte-level BPE with a few merges and control / user-defined
 * tokens, under a pre-tokenizer picked by the input, and an SPM with
 * scores, byte tokens and specials. The first input byte picks the
 * tokenizer and the options; the rest is the text. Checked:
 *   - encoding never fails with room for len + 3 ids (these vocabularies
 *     have every byte and U+2581, so the bound holds);
 *   - BPE: decode(encode(s)) == s for any bytes (specials rendered when
 *     parsed); SPM: the same for valid UTF-8 without U+2581;
 *   - streaming gives exactly the whole decode when that is valid UTF-8,
 *     and always valid UTF-8. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf/gguf.h"
#include "gguf/gguf_writer.h"
#include "tokenizer/tokenizer.h"

#define N_PRE 6
static const char *const PRES[N_PRE] = {"gpt-2",     "llama-bpe", "qwen2",
                                        "starcoder", "falcon",    "deepseek-llm"};
static Tokenizer *g_bpe[N_PRE], *g_spm;

static int gpt2_cp(int b) {
    if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE)
        return b;
    int n = 0;
    for (int c = 0; c < b; c++)
        if (!((c >= '!' && c <= '~') || (c >= 0xA1 && c <= 0xAC) || c >= 0xAE))
            n++;
    return 256 + n;
}

static Tokenizer *load(GGUFWriter *w) {
    char path[] = "/tmp/cgpt_fuzz_tok_XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        abort();
    close(fd);
    Err err = {0};
    GGUF g = {0};
    Tokenizer *t = NULL;
    if (gguf_writer_write(w, path, &err) != STATUS_OK || gguf_open(&g, path, &err) != STATUS_OK ||
        tok_load(&t, &g, &err) != STATUS_OK) {
        fprintf(stderr, "fuzz_tokenizer: setup failed: %s\n", err.msg);
        abort();
    }
    gguf_close(&g);
    gguf_writer_free(w);
    unlink(path);
    return t;
}

#define G "\xc4\xa0" /* Ġ, the stand-in for a space */

static Tokenizer *make_bpe(const char *pre) {
    static char bytes[256][4];
    const char *extra[] = {"he",           G "t",        G "the",  "ll", "ell", "aa",
                           "aaaa",         G G,          G "b",    "12", "34",  "<|endoftext|>",
                           "<|im_start|>", "<|im_end|>", "<think>"};
    const char *merges[] = {"h e",   G " t",  G "t he", "l l", "e ll", "a a",
                            "aa aa", G " " G, G " b",   "1 2", "3 4"};
    enum { NE = sizeof extra / sizeof extra[0], N = 256 + NE };
    const char *toks[N];
    int32_t types[N];
    for (int b = 0; b < 256; b++) {
        int cp = gpt2_cp(b);
        if (cp < 0x80)
            bytes[b][0] = (char)cp, bytes[b][1] = 0;
        else
            bytes[b][0] = (char)(0xC0 | (cp >> 6)), bytes[b][1] = (char)(0x80 | (cp & 0x3F)),
            bytes[b][2] = 0;
        toks[b] = bytes[b];
        types[b] = TOK_TYPE_NORMAL;
    }
    for (int i = 0; i < NE; i++) {
        toks[256 + i] = extra[i];
        types[256 + i] = i >= NE - 4 ? TOK_TYPE_CONTROL : TOK_TYPE_NORMAL;
    }
    types[N - 1] = TOK_TYPE_USER_DEFINED;
    GGUFWriter *w = gguf_writer_new();
    gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2");
    gguf_writer_set_str(w, "tokenizer.ggml.pre", pre);
    gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, N);
    gguf_writer_set_arr_i32(w, "tokenizer.ggml.token_type", types, N);
    gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", merges, sizeof merges / sizeof merges[0]);
    gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 256 + NE - 4);
    gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 256 + NE - 4);
    return load(w);
}

#define U "\xe2\x96\x81" /* ▁ */

static Tokenizer *make_spm(void) {
    static char bytes[256][8];
    const char *pieces[] = {U,     "h",    "e",      "l",   "o", U "h",          "he",    "ll",
                            "ell", U "he", U "hell", "llo", U U, "\xe4\xb8\xad", "<tool>"};
    const float sc[] = {-10, -10, -10, -10, -10, -3, -1.5f, -1, -2.5f, -0.5f, -0.2f, -6, -4, -2, 0};
    enum { NP = sizeof pieces / sizeof pieces[0], N = 3 + 256 + NP };
    const char *toks[N];
    float scores[N];
    int32_t types[N];
    toks[0] = "<unk>", toks[1] = "<s>", toks[2] = "</s>";
    types[0] = TOK_TYPE_UNKNOWN, types[1] = types[2] = TOK_TYPE_CONTROL;
    scores[0] = scores[1] = scores[2] = 0;
    for (int b = 0; b < 256; b++) {
        snprintf(bytes[b], sizeof bytes[b], "<0x%02X>", b);
        toks[3 + b] = bytes[b];
        types[3 + b] = TOK_TYPE_BYTE;
        scores[3 + b] = 0;
    }
    for (int i = 0; i < NP; i++) {
        toks[259 + i] = pieces[i];
        scores[259 + i] = sc[i];
        types[259 + i] = TOK_TYPE_NORMAL;
    }
    types[N - 1] = TOK_TYPE_USER_DEFINED;
    GGUFWriter *w = gguf_writer_new();
    gguf_writer_set_str(w, "tokenizer.ggml.model", "llama");
    gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, N);
    gguf_writer_set_arr_f32(w, "tokenizer.ggml.scores", scores, N);
    gguf_writer_set_arr_i32(w, "tokenizer.ggml.token_type", types, N);
    return load(w);
}

static bool valid_utf8(const uint8_t *s, size_t n, bool *has_2581) {
    *has_2581 = false;
    for (size_t i = 0; i < n;) {
        uint8_t c = s[i];
        int k;
        uint8_t lo = 0x80, hi = 0xBF;
        if (c < 0x80)
            k = 1;
        else if (c >= 0xC2 && c <= 0xDF)
            k = 2;
        else if (c == 0xE0)
            k = 3, lo = 0xA0;
        else if (c == 0xED)
            k = 3, hi = 0x9F;
        else if (c >= 0xE1 && c <= 0xEF)
            k = 3;
        else if (c == 0xF0)
            k = 4, lo = 0x90;
        else if (c == 0xF4)
            k = 4, hi = 0x8F;
        else if (c >= 0xF1 && c <= 0xF3)
            k = 4;
        else
            return false;
        if (i + (size_t)k > n)
            return false;
        for (int j = 1; j < k; j++) {
            if (s[i + j] < lo || s[i + j] > hi)
                return false;
            lo = 0x80, hi = 0xBF;
        }
        if (k == 3 && !memcmp(s + i, U, 3))
            *has_2581 = true;
        i += (size_t)k;
    }
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!g_spm) {
        for (int i = 0; i < N_PRE; i++)
            g_bpe[i] = make_bpe(PRES[i]);
        g_spm = make_spm();
    }
    if (size < 1)
        return 0;
    uint8_t sel = data[0];
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    bool spm = (sel & 7) == 7;
    const Tokenizer *t = spm ? g_spm : g_bpe[(sel & 7) % N_PRE];
    TokEncodeOpts o = {.add_bos = sel & 8, .add_eos = sel & 16, .parse_special = sel & 32};
    uint8_t *mask = NULL;
    if (sel & 64) { /* special_ok from the text's own bits */
        mask = malloc(len ? len : 1);
        for (size_t i = 0; i < len; i++)
            mask[i] = (uint8_t)(data[1 + i] & 1);
        o.special_ok = mask;
    }
    size_t cap = len + 3, n = 0;
    int32_t *ids = malloc(cap * sizeof *ids);
    Err err = {0};
    if (tok_encode(t, text, len, &o, ids, cap, &n, &err) != STATUS_OK) {
        fprintf(stderr, "encode failed: %s\n", err.msg);
        abort();
    }
    /* decoding: render specials exactly when they were parsed */
    bool render = o.parse_special;
    size_t first = o.add_bos ? 1 : 0, last = n - (o.add_eos ? 1 : 0);
    char *dec = malloc(3 * len + 16);
    size_t m = tok_decode(t, ids + first, last - first, render, dec, 3 * len + 16);
    if (m > 3 * len + 16)
        abort();
    bool has_2581;
    bool valid = valid_utf8(data + 1, len, &has_2581);
    if ((!spm || (valid && !has_2581)) && (m != len || memcmp(dec, text, len) != 0)) {
        fprintf(stderr, "round trip: %zu bytes in, %zu out\n", len, m);
        abort();
    }
    /* streaming */
    TokStream st;
    tok_stream_init(&st, t, render);
    char *sout = malloc(4 * len + 64);
    size_t k = 0;
    char piece[TOK_MAX_PIECE + 16];
    for (size_t i = first; i < last; i++) {
        size_t w = tok_stream_push(&st, ids[i], piece, sizeof piece);
        memcpy(sout + k, piece, w);
        k += w;
    }
    k += tok_stream_flush(&st, sout + k, 16);
    bool sv;
    if (!valid_utf8((const uint8_t *)sout, k, &sv))
        abort();
    if (valid_utf8((const uint8_t *)dec, m, &sv) && (k != m || memcmp(sout, dec, m) != 0))
        abort();
    for (size_t i = 0; i < n; i++) {
        char buf[TOK_MAX_PIECE];
        if (tok_piece_bytes(t, ids[i], true, buf) < 0)
            abort();
    }
    free(sout);
    free(dec);
    free(ids);
    free(mask);
    return 0;
}
