/* test_tokenizer.c - the tokenizer on tiny hand-made vocabularies.
 *
 * Vocabularies are written with the GGUF writer into a temporary file, read
 * back and closed before use (the tokenizer must not borrow the file).
 * Expected ids are worked out by hand from the algorithm definitions (see
 * the comments at each case); the GPT-2 byte map used to build the BPE
 * vocabulary is written here independently of bpe.c.
 *
 * Suites: tok_bpe (byte-level BPE, pre-tokenizers, special tokens),
 * tok_spm (SentencePiece-style BPE), tok_dec (decoding, streaming),
 * tok_long (tokens of hundreds to TOK_MAX_PIECE bytes), tok_bad (lying
 * vocabularies), tok_perf (hang checks on 1 MB inputs). */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gguf/gguf.h"
#include "gguf/gguf_writer.h"
#include "tokenizer/tokenizer.h"

/* ------------------------------------------------------------ helpers */

static Status load_writer(GGUFWriter *w, Tokenizer **t, Err *err) {
    char path[] = "/tmp/cgpt_tok_XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    close(fd);
    Status st = gguf_writer_write(w, path, err);
    cr_assert_eq(st, STATUS_OK, "writer: %s", err->msg);
    gguf_writer_free(w);
    GGUF g = {0};
    st = gguf_open(&g, path, err);
    cr_assert_eq(st, STATUS_OK, "open: %s", err->msg);
    st = tok_load(t, &g, err);
    gguf_close(&g);
    unlink(path);
    return st;
}

/* GPT-2's byte map, written independently of bpe.c. */
static int gpt2_cp(int b) {
    if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF))
        return b;
    int n = 0;
    for (int c = 0; c < b; c++)
        if (!((c >= '!' && c <= '~') || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE && c <= 0xFF)))
            n++;
    return 256 + n;
}

static void put_cp(char *out, int cp) {
    if (cp < 0x80) {
        out[0] = (char)cp, out[1] = 0;
    } else {
        out[0] = (char)(0xC0 | (cp >> 6)), out[1] = (char)(0x80 | (cp & 0x3F)), out[2] = 0;
    }
}

/* Tiny GPT-2 style vocabulary: ids 0..255 the byte characters (id = byte
 * value), then merged tokens and specials. */
enum {
    B_HE = 256,    /* "he"     rank 0: h e */
    B_GT = 257,    /* "Ġt"     rank 1: Ġ t */
    B_GTHE = 258,  /* "Ġthe"   rank 2: Ġt he */
    B_LL = 259,    /* "ll"     rank 3: l l */
    B_ELL = 260,   /* "ell"    rank 4: e ll */
    B_HELL = 261,  /* "hell"   rank 5: h ell */
    B_AA = 262,    /* "aa"     rank 6: a a */
    B_AAAA = 263,  /* "aaaa"   rank 7: aa aa */
    B_GG = 264,    /* "ĠĠ"     rank 8: Ġ Ġ */
    B_GB = 265,    /* "Ġb"     rank 9: Ġ b */
    B_12 = 266,    /* "12"     rank 10: 1 2 */
    B_34 = 267,    /* "34"     rank 11: 3 4 */
    B_ELLO = 268,  /* "ello"   no merge makes it */
    B_EOT = 269,   /* <|endoftext|> control */
    B_IMS = 270,   /* <|im_start|> control */
    B_IME = 271,   /* <|im_end|> control */
    B_THINK = 272, /* <think> user-defined */
    B_IMSX = 273,  /* <|im_start|>x control (longer match) */
    B_N = 274,
};

static GGUFWriter *bpe_writer(const char *pre) {
    static char bytes[256][4];
    const char *toks[B_N];
    int32_t types[B_N];
    for (int b = 0; b < 256; b++) {
        put_cp(bytes[b], gpt2_cp(b));
        toks[b] = bytes[b];
        types[b] = TOK_TYPE_NORMAL;
    }
    const char *extra[] = {"he",
                           "\xc4\xa0t",
                           "\xc4\xa0the",
                           "ll",
                           "ell",
                           "hell",
                           "aa",
                           "aaaa",
                           "\xc4\xa0\xc4\xa0",
                           "\xc4\xa0"
                           "b",
                           "12",
                           "34",
                           "ello",
                           "<|endoftext|>",
                           "<|im_start|>",
                           "<|im_end|>",
                           "<think>",
                           "<|im_start|>x"};
    for (int i = 256; i < B_N; i++) {
        toks[i] = extra[i - 256];
        types[i] = TOK_TYPE_NORMAL;
    }
    types[B_EOT] = types[B_IMS] = types[B_IME] = types[B_IMSX] = TOK_TYPE_CONTROL;
    types[B_THINK] = TOK_TYPE_USER_DEFINED;
    const char *merges[] = {"h e", "\xc4\xa0 t", "\xc4\xa0t he",      "l l",        "e ll", "h ell",
                            "a a", "aa aa",      "\xc4\xa0 \xc4\xa0", "\xc4\xa0 b", "1 2",  "3 4"};
    GGUFWriter *w = gguf_writer_new();
    gguf_writer_set_str(w, "general.architecture", "gpt2");
    gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2");
    if (pre)
        gguf_writer_set_str(w, "tokenizer.ggml.pre", pre);
    gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, B_N);
    gguf_writer_set_arr_i32(w, "tokenizer.ggml.token_type", types, B_N);
    gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", merges, sizeof merges / sizeof merges[0]);
    gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", B_EOT);
    gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", B_EOT);
    return w;
}

static Tokenizer *bpe_tok(const char *pre) {
    Tokenizer *t = NULL;
    Err err = {0};
    Status st = load_writer(bpe_writer(pre), &t, &err);
    cr_assert_eq(st, STATUS_OK, "load: %s", err.msg);
    return t;
}

/* Tiny SPM vocabulary: <unk> <s> </s>, 256 byte tokens, then pieces. */
enum {
    S_UNK = 0,
    S_BOS = 1,
    S_EOS = 2,
    S_BYTE0 = 3,
    S_SP = 259, /* "▁"     -10 */
    S_H,
    S_E,
    S_L,
    S_O,         /* single letters, -10 */
    S_SPH = 264, /* "▁h"    -3 */
    S_HE,        /* "he"    -1.5 */
    S_LL,        /* "ll"    -1 */
    S_ELL,       /* "ell"   -2.5 */
    S_SPHE,      /* "▁he"   -0.5 */
    S_SPHELL,    /* "▁hell" -0.2 */
    S_LLO,       /* "llo"   -6 */
    S_N
};

static GGUFWriter *spm_writer(bool byte_tokens) {
    static char bytes[256][8];
    const char *toks[S_N];
    float scores[S_N];
    int32_t types[S_N];
    toks[0] = "<unk>", toks[1] = "<s>", toks[2] = "</s>";
    types[0] = TOK_TYPE_UNKNOWN, types[1] = types[2] = TOK_TYPE_CONTROL;
    for (int b = 0; b < 256; b++) {
        snprintf(bytes[b], sizeof bytes[b], byte_tokens ? "<0x%02X>" : "x%02X", b);
        toks[S_BYTE0 + b] = bytes[b];
        types[S_BYTE0 + b] = byte_tokens ? TOK_TYPE_BYTE : TOK_TYPE_UNUSED;
    }
    const char *p[] = {"\xe2\x96\x81",     "h",  "e",  "l",   "o",
                       "\xe2\x96\x81h",    "he", "ll", "ell", "\xe2\x96\x81he",
                       "\xe2\x96\x81hell", "llo"};
    const float sc[] = {-10, -10, -10, -10, -10, -3, -1.5f, -1, -2.5f, -0.5f, -0.2f, -6};
    for (int i = S_SP; i < S_N; i++) {
        toks[i] = p[i - S_SP];
        scores[i] = sc[i - S_SP];
        types[i] = TOK_TYPE_NORMAL;
    }
    for (int i = 0; i < S_SP; i++)
        scores[i] = 0;
    GGUFWriter *w = gguf_writer_new();
    gguf_writer_set_str(w, "general.architecture", "llama");
    gguf_writer_set_str(w, "tokenizer.ggml.model", "llama");
    gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, S_N);
    gguf_writer_set_arr_f32(w, "tokenizer.ggml.scores", scores, S_N);
    gguf_writer_set_arr_i32(w, "tokenizer.ggml.token_type", types, S_N);
    gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", S_BOS);
    gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", S_EOS);
    gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", S_UNK);
    return w;
}

static Tokenizer *spm_tok(int space_prefix /* -1: key absent */) {
    GGUFWriter *w = spm_writer(true);
    if (space_prefix >= 0)
        gguf_writer_set_bool(w, "tokenizer.ggml.add_space_prefix", space_prefix != 0);
    Tokenizer *t = NULL;
    Err err = {0};
    Status st = load_writer(w, &t, &err);
    cr_assert_eq(st, STATUS_OK, "load: %s", err.msg);
    return t;
}

#define MAXIDS 64

/* Encode and compare with the expected ids; prints both on mismatch. */
static void check_ids(const Tokenizer *t, const char *text, size_t len, const TokEncodeOpts *o,
                      const int32_t *want, size_t n_want) {
    int32_t ids[MAXIDS];
    size_t n = 0;
    Err err = {0};
    Status st = tok_encode(t, text, len, o, ids, MAXIDS, &n, &err);
    cr_assert_eq(st, STATUS_OK, "encode: %s", err.msg);
    char got[512] = "", exp[512] = "";
    for (size_t i = 0; i < n && strlen(got) < 480; i++)
        snprintf(got + strlen(got), sizeof got - strlen(got), " %d", ids[i]);
    for (size_t i = 0; i < n_want && strlen(exp) < 480; i++)
        snprintf(exp + strlen(exp), sizeof exp - strlen(exp), " %d", want[i]);
    cr_assert(n == n_want && !memcmp(ids, want, n * sizeof *ids), "'%.*s': got [%s ] want [%s ]",
              (int)len, text, got, exp);
}

#define CHECK(t, text, o, ...)                                                                     \
    do {                                                                                           \
        const int32_t want_[] = {__VA_ARGS__};                                                     \
        check_ids(t, text, sizeof(text) - 1, o, want_, sizeof want_ / sizeof want_[0]);            \
    } while (0)

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ------------------------------------------------------------ BPE */

Test(tok_bpe, merges_by_rank) {
    Tokenizer *t = bpe_tok("gpt-2");
    cr_assert_eq(tok_kind(t), TOK_KIND_BPE);
    cr_assert_eq(tok_n_vocab(t), B_N);
    /* "hello": h e l l o; (h,e) rank 0 first -> he l l o; (l,l) 3 -> he ll o;
     * no rule for (he,ll) or (ll,o): "hell" (h ell, rank 5) never forms. */
    CHECK(t, "hello", NULL, B_HE, B_LL, 'o');
    /* "Hello": (l,l) 3 -> H e ll o; (e,ll) 4 -> H ell o. */
    CHECK(t, "Hello", NULL, 'H', B_ELL, 'o');
    /* " the": (h,e) 0, (Ġ,t) 1, (Ġt,he) 2 -> Ġthe. Space is byte 0x20. */
    CHECK(t, " the", NULL, B_GTHE);
    /* pre-tokens "the", " the" */
    CHECK(t, "the the", NULL, 't', B_HE, B_GTHE);
    /* "aaaaa": (a,a)@0 and @1,@2,@3 rank 6, leftmost first: aa aa a; then
     * (aa,aa) 7 -> aaaa a */
    CHECK(t, "aaaaa", NULL, B_AAAA, 'a');
    tok_free(t);
}

Test(tok_bpe, gpt2_pretokenizer) {
    Tokenizer *t = bpe_tok("gpt-2");
    /* "a   b": "a", "  " (\s+(?!\S) leaves the last space), " b" */
    CHECK(t, "a   b", NULL, 'a', B_GG, B_GB);
    /* digits: " ?\p{N}+" keeps "1234" whole: 12 34 */
    CHECK(t, "1234", NULL, B_12, B_34);
    /* ignore_merges is off for gpt-2: "ello" goes through the merges */
    CHECK(t, "ello", NULL, B_ELL, 'o');
    /* NUL bytes are text: Ā stands for 0x00 and is id 0 */
    CHECK(t, "a\0b", NULL, 'a', 0, 'b');
    tok_free(t);
    t = bpe_tok(NULL); /* absent key: default = GPT-2 regex */
    CHECK(t, "a   b", NULL, 'a', B_GG, B_GB);
    tok_free(t);
}

Test(tok_bpe, llama3_and_qwen2_pretokenizers) {
    Tokenizer *t = bpe_tok("llama-bpe");
    /* \p{N}{1,3}: "123" "4" */
    CHECK(t, "1234", NULL, B_12, '3', '4');
    /* ignore_merges: the pre-token "ello" is a token */
    CHECK(t, "ello", NULL, B_ELLO);
    /* [^\r\n\p{L}\p{N}]?\p{L}+ takes the space; \s*[\r\n]+ joins "\n\n" */
    CHECK(t, " the\n\nb", NULL, B_GTHE, '\n', '\n', 'b');
    cr_assert(tok_add_bos(t), "llama-bpe adds BOS by default");
    tok_free(t);
    t = bpe_tok("qwen2");
    CHECK(t, "1234", NULL, '1', '2', '3', '4');
    CHECK(t, "ello", NULL, B_ELL, 'o');
    cr_assert(!tok_add_bos(t), "qwen2 does not add BOS by default");
    tok_free(t);
    t = bpe_tok("starcoder"); /* digits one by one, then GPT-2 */
    CHECK(t, "a 1234", NULL, 'a', ' ', '1', '2', '3', '4');
    tok_free(t);
}

Test(tok_bpe, invalid_utf8_bytes_are_pretokens) {
    Tokenizer *t = bpe_tok("gpt-2");
    /* "a\xffb": runs "a", "b" and the byte 0xFF alone (Ã¿ = id 255) */
    CHECK(t, "he\xffhe", NULL, B_HE, 0xFF, B_HE);
    /* a truncated 3-byte sequence: each byte alone */
    CHECK(t, "\xe2\x82", NULL, 0xE2, 0x82);
    tok_free(t);
}

Test(tok_bpe, special_tokens) {
    Tokenizer *t = bpe_tok("gpt-2");
    TokEncodeOpts sp = {.parse_special = true};
    /* "<|im_start|>user\nhi<|im_end|>": user \n hi are plain bytes here */
    CHECK(t, "<|im_start|>he\nhe<|im_end|>", &sp, B_IMS, B_HE, '\n', B_HE, B_IME);
    /* longest match: "<|im_start|>x" beats "<|im_start|>" */
    CHECK(t, "<|im_start|>xhe", &sp, B_IMSX, B_HE);
    /* without parse_special the control tokens are text, but the
     * user-defined <think> is still matched (llama.cpp, Hugging Face) */
    CHECK(t, "<|im_end|>", NULL, '<', '|', 'i', 'm', '_', 'e', 'n', 'd', '|', '>');
    CHECK(t, "he<think>he", NULL, B_HE, B_THINK, B_HE);
    /* special_ok: user text "<|im_start|>" stays text */
    const char txt[] = "<|im_end|><|im_end|>";
    uint8_t ok[sizeof txt - 1];
    memset(ok, 1, sizeof ok);
    memset(ok + 10, 0, 10);
    TokEncodeOpts m = {.parse_special = true, .special_ok = ok};
    CHECK(t, txt, &m, B_IME, '<', '|', 'i', 'm', '_', 'e', 'n', 'd', '|', '>');
    /* a match must lie wholly inside the marked region */
    memset(ok, 1, sizeof ok);
    ok[15] = 0;
    CHECK(t, txt, &m, B_IME, '<', '|', 'i', 'm', '_', 'e', 'n', 'd', '|', '>');
    /* the mask keeps control tokens out of user text, not user-defined
     * ones: "<think>" in unmarked text is still its token (llama.cpp and
     * Hugging Face match user-defined tokens everywhere) */
    const char txt2[] = "<|im_end|>he<think>";
    uint8_t ok2[sizeof txt2 - 1];
    memset(ok2, 0, sizeof ok2);
    TokEncodeOpts m2 = {.parse_special = true, .special_ok = ok2};
    CHECK(t, txt2, &m2, '<', '|', 'i', 'm', '_', 'e', 'n', 'd', '|', '>', B_HE, B_THINK);
    /* add_bos / add_eos */
    TokEncodeOpts be = {.add_bos = true, .add_eos = true};
    CHECK(t, "he", &be, B_EOT, B_HE, B_EOT);
    CHECK(t, "", &be, B_EOT, B_EOT);
    tok_free(t);
}

Test(tok_bpe, eog_and_lookup) {
    Tokenizer *t = bpe_tok("gpt-2");
    cr_assert(tok_is_eog(t, B_EOT));
    cr_assert(tok_is_eog(t, B_IME), "<|im_end|> control: end of generation by text");
    cr_assert_eq(tok_eot(t), B_IME);
    cr_assert(!tok_is_eog(t, B_IMS));
    cr_assert(!tok_is_eog(t, -1) && !tok_is_eog(t, B_N));
    cr_assert_eq(tok_find(t, "ello", 4), B_ELLO);
    cr_assert_eq(tok_find(t, "nope", 4), -1);
    size_t n;
    cr_assert(tok_text(t, B_HE, &n) && n == 2);
    cr_assert_null(tok_text(t, B_N, &n));
    cr_assert_eq(tok_type(t, B_THINK), TOK_TYPE_USER_DEFINED);
    tok_free(t);
}

Test(tok_bpe, cap_too_small) {
    Tokenizer *t = bpe_tok("gpt-2");
    int32_t ids[2];
    size_t n;
    Err err = {0};
    /* a | Ġb (rank 9) | Ġ c */
    cr_assert_eq(tok_encode(t, "a b c", 5, NULL, ids, 2, &n, &err), STATUS_LIMIT);
    cr_assert_eq(n, 4);
    cr_assert(strstr(err.msg, "needs 4 ids"), "%s", err.msg);
    tok_free(t);
}

/* ------------------------------------------------------------ SPM */

Test(tok_spm, merges_by_score) {
    Tokenizer *t = spm_tok(-1);
    cr_assert_eq(tok_kind(t), TOK_KIND_SPM);
    cr_assert(tok_add_bos(t), "SPM adds BOS by default");
    /* "▁hello": best pairs in turn ll (-1), he (-1.5), ▁he (-0.5), ▁hell
     * (-0.2); "▁hello" is not a piece. */
    CHECK(t, "hello", NULL, S_SPHELL, S_O);
    /* "▁he▁llo": ll, he, ▁he, then llo (-6) */
    CHECK(t, "he llo", NULL, S_SPHE, S_SP, S_LLO);
    /* equal scores: leftmost first: "▁lll" -> ▁ ll l */
    CHECK(t, "lll", NULL, S_SP, S_LL, S_L);
    /* byte fallback: é is not a piece: <0xC3> <0xA9> */
    CHECK(t, "h\xc3\xa9", NULL, S_SPH, S_BYTE0 + 0xC3, S_BYTE0 + 0xA9);
    /* invalid UTF-8 and NUL go to bytes as well */
    CHECK(t, "h\xff", NULL, S_SPH, S_BYTE0 + 0xFF);
    CHECK(t, "h\0", NULL, S_SPH, S_BYTE0);
    TokEncodeOpts b = {.add_bos = true};
    CHECK(t, "hello", &b, S_BOS, S_SPHELL, S_O);
    tok_free(t);
}

Test(tok_spm, no_space_prefix) {
    Tokenizer *t = spm_tok(0); /* Gemma style */
    /* "hello": ll, he, then (he,ll) is no piece, llo (-6) -> he llo */
    CHECK(t, "hello", NULL, S_HE, S_LLO);
    tok_free(t);
}

Test(tok_spm, special_tokens_and_prefix) {
    Tokenizer *t = spm_tok(1);
    TokEncodeOpts sp = {.parse_special = true};
    /* the fragment after a special token gets the space prefix (llama.cpp) */
    CHECK(t, "<s>hello</s>hello", &sp, S_BOS, S_SPHELL, S_O, S_EOS, S_SPHELL, S_O);
    char buf[64];
    int32_t ids[] = {S_BOS, S_SPHELL, S_O, S_EOS, S_SPHELL, S_O};
    size_t n = tok_decode(t, ids, 6, true, buf, sizeof buf);
    cr_assert(n == 17 && !memcmp(buf, "<s>hello</s>hello", 17), "got '%.*s'", (int)n, buf);
    n = tok_decode(t, ids, 6, false, buf, sizeof buf);
    cr_assert(n == 10 && !memcmp(buf, "hellohello", 10), "got '%.*s'", (int)n, buf);
    tok_free(t);
}

Test(tok_spm, unknown_without_byte_tokens) {
    Tokenizer *t = NULL;
    Err err = {0};
    cr_assert_eq(load_writer(spm_writer(false), &t, &err), STATUS_OK, "%s", err.msg);
    /* é is no piece and there are no byte tokens: one <unk> for the char */
    CHECK(t, "h\xc3\xa9", NULL, S_SPH, S_UNK);
    tok_free(t);
}

/* ------------------------------------------------------------ decoding */

static void roundtrip(const Tokenizer *t, const char *s, size_t len) {
    static int32_t ids[4096];
    static char out[8192];
    size_t n;
    Err err = {0};
    cr_assert_eq(tok_encode(t, s, len, NULL, ids, 4096, &n, &err), STATUS_OK, "%s", err.msg);
    size_t m = tok_decode(t, ids, n, false, out, sizeof out);
    cr_assert(m == len && !memcmp(out, s, len), "round trip of '%.*s' gave '%.*s'", (int)len, s,
              (int)m, out);
    /* streaming gives the same text */
    TokStream st;
    tok_stream_init(&st, t, false);
    char piece[TOK_MAX_PIECE + 16];
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        size_t w = tok_stream_push(&st, ids[i], piece, sizeof piece);
        cr_assert(k + w <= sizeof out);
        memcpy(out + k, piece, w);
        k += w;
    }
    k += tok_stream_flush(&st, out + k, sizeof out - k);
    cr_assert(k == len && !memcmp(out, s, len), "stream of '%.*s' gave '%.*s'", (int)len, s, (int)k,
              out);
}

Test(tok_dec, roundtrip_random_utf8) {
    Tokenizer *b = bpe_tok("llama-bpe"), *q = bpe_tok("qwen2"), *s = spm_tok(-1);
    const char *alphabet[] = {"a",
                              "h",
                              "e",
                              "l",
                              " ",
                              "  ",
                              "\n",
                              "1",
                              "'s",
                              "\xc3\xa9",
                              "\xe4\xb8\xad",
                              "\xf0\x9f\x98\x80",
                              "e\xcc\x81",
                              "\t",
                              "!",
                              "<",
                              "|"}; /* no U+2581: SPM decodes it as a space */
    unsigned seed = 12345;
    for (int iter = 0; iter < 300; iter++) {
        char buf[256];
        size_t len = 0;
        int parts = (int)(seed % 20);
        for (int p = 0; p < parts; p++) {
            seed = seed * 1103515245u + 12345u;
            const char *a = alphabet[(seed >> 16) % (sizeof alphabet / sizeof alphabet[0])];
            memcpy(buf + len, a, strlen(a));
            len += strlen(a);
        }
        seed = seed * 1103515245u + 12345u;
        roundtrip(b, buf, len);
        roundtrip(q, buf, len);
        roundtrip(s, buf, len);
    }
    tok_free(b);
    tok_free(q);
    tok_free(s);
}

Test(tok_dec, pieces) {
    Tokenizer *t = bpe_tok("gpt-2");
    char buf[TOK_MAX_PIECE];
    cr_assert_eq(tok_piece_bytes(t, B_GTHE, false, buf), 4);
    cr_assert(!memcmp(buf, " the", 4));
    cr_assert_eq(tok_piece_bytes(t, B_IMS, false, buf), 0, "control hidden");
    cr_assert_eq(tok_piece_bytes(t, B_IMS, true, buf), 12);
    cr_assert_eq(tok_piece_bytes(t, B_THINK, false, buf), 7, "user-defined always shown");
    cr_assert_eq(tok_piece_bytes(t, 0x0A, false, buf), 1);
    cr_assert_eq(buf[0], '\n');
    cr_assert_eq(tok_piece_bytes(t, -1, false, buf), -1);
    cr_assert_eq(tok_piece_bytes(t, B_N, false, buf), -1);
    tok_free(t);
    t = spm_tok(-1);
    cr_assert_eq(tok_piece_bytes(t, S_SPHELL, false, buf), 5);
    cr_assert(!memcmp(buf, " hell", 5));
    cr_assert_eq(tok_piece_bytes(t, S_BYTE0 + 0xC3, false, buf), 1);
    cr_assert_eq((uint8_t)buf[0], 0xC3);
    tok_free(t);
}

Test(tok_dec, stream_split_emoji_and_invalid) {
    Tokenizer *t = bpe_tok("gpt-2");
    char out[TOK_MAX_PIECE + 16];
    TokStream s;
    tok_stream_init(&s, t, false);
    /* 😀 = F0 9F 98 80, one byte token each */
    cr_assert_eq(tok_stream_push(&s, 'a', out, sizeof out), 1);
    cr_assert_eq(tok_stream_push(&s, 0xF0, out, sizeof out), 0);
    cr_assert_eq(tok_stream_push(&s, 0x9F, out, sizeof out), 0);
    cr_assert_eq(tok_stream_push(&s, 0x98, out, sizeof out), 0);
    cr_assert_eq(tok_stream_push(&s, 0x80, out, sizeof out), 4);
    cr_assert(!memcmp(out, "\xf0\x9f\x98\x80", 4));
    /* 0xFF can never start a character */
    cr_assert_eq(tok_stream_push(&s, 0xFF, out, sizeof out), 3);
    cr_assert(!memcmp(out, "\xef\xbf\xbd", 3));
    /* F0 then 'a': the partial character is replaced, 'a' kept */
    cr_assert_eq(tok_stream_push(&s, 0xF0, out, sizeof out), 0);
    cr_assert_eq(tok_stream_push(&s, 'a', out, sizeof out), 4);
    cr_assert(!memcmp(out,
                      "\xef\xbf\xbd"
                      "a",
                      4));
    /* dangling at the end */
    cr_assert_eq(tok_stream_push(&s, 0xE2, out, sizeof out), 0);
    cr_assert_eq(tok_stream_flush(&s, out, sizeof out), 3);
    cr_assert(!memcmp(out, "\xef\xbf\xbd", 3));
    cr_assert_eq(tok_stream_flush(&s, out, sizeof out), 0);
    /* whole decode keeps invalid bytes as bytes */
    int32_t ids[] = {0xFF, 'a'};
    char buf[8];
    cr_assert_eq(tok_decode(t, ids, 2, false, buf, sizeof buf), 2);
    cr_assert_eq((uint8_t)buf[0], 0xFF);
    /* decode reports the needed length when cut */
    int32_t ids2[] = {B_GTHE, B_GTHE};
    cr_assert_eq(tok_decode(t, ids2, 2, false, buf, 3), 8);
    tok_free(t);
}

Test(tok_dec, spm_stream_leading_space) {
    Tokenizer *t = spm_tok(-1);
    char out[TOK_MAX_PIECE + 16];
    TokStream s;
    tok_stream_init(&s, t, false);
    cr_assert_eq(tok_stream_push(&s, S_SPHELL, out, sizeof out), 4);
    cr_assert(!memcmp(out, "hell", 4));
    cr_assert_eq(tok_stream_push(&s, S_SPHE, out, sizeof out), 3);
    cr_assert(!memcmp(out, " he", 3));
    tok_free(t);
}

/* ------------------------------------------------------------ long tokens */

/* Byte-level BPE vocabulary with tokens far longer than the 256 bytes the
 * limit once was: ids 0..255 the byte characters, then the long ones below.
 * No merges; "llama-bpe" ignores merges, so a pre-token that is a whole
 * vocabulary token is that token (which is how a real vocabulary's long
 * whitespace runs are reached). */
enum {
    L_SP300 = 256, /* 300 spaces (stored as 300 x U+0120, 600 bytes) */
    L_EQ1000,      /* 1000 x '=' */
    L_E500,        /* 500 x U+00E9 (1000 bytes decoded, stored as 2000) */
    L_TAIL,        /* 98 80 then 998 x 'a': completes a pending F0 9F */
    L_HEAD,        /* 999 x 'a' then E4: leaves a partial character */
    L_N,
};

static char *bytes_to_bpe(const uint8_t *b, size_t n) {
    char *out = malloc(2 * n + 1), *o = out;
    cr_assert(out);
    for (size_t i = 0; i < n; i++) {
        put_cp(o, gpt2_cp(b[i]));
        o += strlen(o);
    }
    *o = 0;
    return out;
}

static Tokenizer *long_tok(void) {
    static char bytes[256][4];
    const char *toks[L_N];
    int32_t types[L_N];
    for (int b = 0; b < 256; b++) {
        put_cp(bytes[b], gpt2_cp(b));
        toks[b] = bytes[b];
        types[b] = TOK_TYPE_NORMAL;
    }
    static uint8_t raw[5][1000];
    size_t len[5] = {300, 1000, 1000, 1000, 1000};
    memset(raw[0], ' ', 300);
    memset(raw[1], '=', 1000);
    for (int i = 0; i < 500; i++)
        raw[2][2 * i] = 0xC3, raw[2][2 * i + 1] = 0xA9;
    raw[3][0] = 0x98, raw[3][1] = 0x80;
    memset(raw[3] + 2, 'a', 998);
    memset(raw[4], 'a', 999);
    raw[4][999] = 0xE4;
    char *owned[5];
    for (int i = 0; i < 5; i++) {
        owned[i] = bytes_to_bpe(raw[i], len[i]);
        toks[L_SP300 + i] = owned[i];
        types[L_SP300 + i] = TOK_TYPE_NORMAL;
    }
    cr_assert_eq(strlen(toks[L_SP300]), 600);
    cr_assert_eq(strlen(toks[L_E500]), 2000);
    GGUFWriter *w = gguf_writer_new();
    gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2");
    gguf_writer_set_str(w, "tokenizer.ggml.pre", "llama-bpe");
    gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, L_N);
    gguf_writer_set_arr_i32(w, "tokenizer.ggml.token_type", types, L_N);
    gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", NULL, 0);
    gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", false);
    for (int i = 0; i < 5; i++)
        free(owned[i]);
    Tokenizer *t = NULL;
    Err err = {0};
    cr_assert_eq(load_writer(w, &t, &err), STATUS_OK, "%s", err.msg);
    return t;
}

Test(tok_long, load_encode_decode) {
    Tokenizer *t = long_tok();
    cr_assert_eq(tok_max_piece(t), 1000);
    static char text[4096];
    size_t n;
    const char *p = tok_piece(t, L_SP300, false, &n);
    cr_assert_eq(n, 300);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(p[i], ' ', "byte %zu", i);
    p = tok_piece(t, L_E500, false, &n);
    cr_assert(n == 1000 && !memcmp(p, "\xc3\xa9\xc3\xa9", 4) &&
              !memcmp(p + 996, "\xc3\xa9\xc3\xa9", 4));
    cr_assert_null(tok_piece(t, L_N, false, &n));
    cr_assert_eq(n, 0);

    memset(text, ' ', 300);
    int32_t sp[] = {L_SP300};
    check_ids(t, text, 300, NULL, sp, 1);
    roundtrip(t, text, 300);
    /* 301 spaces are no token: the run splits as the regex says, by bytes */
    memset(text, ' ', 301);
    roundtrip(t, text, 301);

    /* 500 x é then 1000 x '=': two pre-tokens, each one vocabulary token */
    for (int i = 0; i < 500; i++)
        text[2 * i] = (char)0xC3, text[2 * i + 1] = (char)0xA9;
    memset(text + 1000, '=', 1000);
    int32_t two[] = {L_E500, L_EQ1000};
    check_ids(t, text, 2000, NULL, two, 2);
    roundtrip(t, text, 2000);
    char out[2000];
    cr_assert_eq(tok_decode(t, two, 2, false, out, sizeof out), 2000);
    cr_assert(!memcmp(out, text, 2000));
    /* cut short: the length needed, the first cap bytes */
    cr_assert_eq(tok_decode(t, two, 2, false, out, 7), 2000);
    cr_assert(!memcmp(out, text, 7));
    tok_free(t);
}

Test(tok_long, stream_across_long_pieces) {
    Tokenizer *t = long_tok();
    static char out[TOK_MAX_STREAM_OUT];
    TokStream s;
    tok_stream_init(&s, t, false);
    /* F0 9F pend; the long piece completes U+1F600 and adds 998 'a' */
    cr_assert_eq(tok_stream_push(&s, 0xF0, out, sizeof out), 0);
    cr_assert_eq(tok_stream_push(&s, 0x9F, out, sizeof out), 0);
    cr_assert_eq(tok_stream_push(&s, L_TAIL, out, sizeof out), 1002);
    cr_assert(!memcmp(out, "\xf0\x9f\x98\x80", 4));
    for (int i = 4; i < 1002; i++)
        cr_assert_eq(out[i], 'a', "byte %d", i);
    /* 999 'a' out, E4 held; then B8 AD complete U+4E2D */
    cr_assert_eq(tok_stream_push(&s, L_HEAD, out, sizeof out), 999);
    cr_assert_eq(tok_stream_push(&s, 0xB8, out, sizeof out), 0);
    cr_assert_eq(tok_stream_push(&s, 0xAD, out, sizeof out), 3);
    cr_assert(!memcmp(out, "\xe4\xb8\xad", 3));
    /* E4 held, then a long piece that breaks it: U+FFFD, then the piece */
    cr_assert_eq(tok_stream_push(&s, L_HEAD, out, sizeof out), 999);
    cr_assert_eq(tok_stream_push(&s, L_EQ1000, out, sizeof out), 1003);
    cr_assert(!memcmp(out, "\xef\xbf\xbd====", 7));
    /* F0 held, then a piece starting 98 80 61: F0 98 80 is a valid prefix
     * (of U+18000) that 'a' cuts short, so one U+FFFD for those three bytes
     * (two of them from the piece), then the 998 'a' */
    cr_assert_eq(tok_stream_push(&s, 0xF0, out, sizeof out), 0);
    cr_assert_eq(tok_stream_push(&s, L_TAIL, out, sizeof out), 3 + 998);
    cr_assert(!memcmp(out,
                      "\xef\xbf\xbd"
                      "aa",
                      5));
    /* E4 held, a short piece still incomplete (E4 B8), then flush */
    cr_assert_eq(tok_stream_push(&s, L_HEAD, out, sizeof out), 999);
    cr_assert_eq(tok_stream_push(&s, 0xB8, out, sizeof out), 0);
    cr_assert_eq(tok_stream_flush(&s, out, sizeof out), 3);
    cr_assert(!memcmp(out, "\xef\xbf\xbd", 3));
    tok_free(t);
}

Test(tok_long, exactly_the_limit_loads) {
    static char big[TOK_MAX_PIECE + 1];
    memset(big, 'x', TOK_MAX_PIECE);
    const char *toks[] = {"a", "b", big};
    int32_t types[] = {TOK_TYPE_NORMAL, TOK_TYPE_NORMAL, TOK_TYPE_CONTROL};
    GGUFWriter *w = gguf_writer_new();
    gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2");
    gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, 3);
    gguf_writer_set_arr_i32(w, "tokenizer.ggml.token_type", types, 3);
    gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", NULL, 0);
    Tokenizer *t = NULL;
    Err err = {0};
    cr_assert_eq(load_writer(w, &t, &err), STATUS_OK, "%s", err.msg);
    cr_assert_eq(tok_max_piece(t), TOK_MAX_PIECE);
    TokEncodeOpts sp = {.parse_special = true};
    int32_t want[] = {0, 2, 1};
    static char text[TOK_MAX_PIECE + 2];
    text[0] = 'a';
    memcpy(text + 1, big, TOK_MAX_PIECE);
    text[TOK_MAX_PIECE + 1] = 'b';
    int32_t ids[8];
    size_t n;
    cr_assert_eq(tok_encode(t, text, sizeof text, &sp, ids, 8, &n, &err), STATUS_OK, "%s", err.msg);
    cr_assert(n == 3 && ids[0] == want[0] && ids[1] == want[1] && ids[2] == want[2]);
    static char out[TOK_MAX_STREAM_OUT];
    TokStream s;
    tok_stream_init(&s, t, true);
    cr_assert_eq(tok_stream_push(&s, 2, out, sizeof out), TOK_MAX_PIECE);
    cr_assert(!memcmp(out, big, TOK_MAX_PIECE));
    char *piece = malloc(tok_max_piece(t));
    cr_assert_eq(tok_piece_bytes(t, 2, true, piece), TOK_MAX_PIECE);
    cr_assert_eq(tok_piece_bytes(t, 2, false, piece), 0, "control hidden");
    free(piece);
    tok_free(t);
}

/* ------------------------------------------------------------ lying vocabularies */

typedef enum {
    LIE_NO_TOKENS,
    LIE_SCORES_LEN,
    LIE_TYPES_LEN,
    LIE_EMPTY,
    LIE_LONG_PIECE,
    LIE_WIDE_PIECE,
    LIE_MERGE_NOSPACE,
    LIE_MERGE_UNKNOWN,
    LIE_BYTE_ZZ,
    LIE_BYTE_SHORT,
    LIE_BOS_RANGE,
    LIE_EOS_NEG,
    LIE_PRE,
    LIE_MODEL,
    LIE_DUP,
    LIE_TYPE_RANGE,
    LIE_ADD_BOS_NO_BOS,
} Lie;

static Status lie(Lie l, Err *err) {
    bool spm = l == LIE_SCORES_LEN || l == LIE_BYTE_ZZ || l == LIE_BYTE_SHORT || l == LIE_EOS_NEG;
    GGUFWriter *w = spm ? spm_writer(true) : bpe_writer("gpt-2");
    static char longtok[TOK_MAX_PIECE + 2]; /* TOK_MAX_PIECE + 1 bytes and a NUL */
    memset(longtok, 'x', sizeof longtok - 1);
    /* 2000 bytes that are no UTF-8: each would stream as a 3-byte U+FFFD */
    static char widetok[2001];
    memset(widetok, 0xFF, sizeof widetok - 1);
    const char *toks[] = {"a", "b", "ab"};
    int32_t types[3] = {1, 1, 1};
    float scores[2] = {0, 0};
    switch (l) {
    case LIE_NO_TOKENS:
        w = (gguf_writer_free(w), gguf_writer_new());
        gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2");
        break;
    case LIE_SCORES_LEN:
        gguf_writer_set_arr_f32(w, "tokenizer.ggml.scores", scores, 2);
        break;
    case LIE_TYPES_LEN:
        gguf_writer_set_arr_i32(w, "tokenizer.ggml.token_type", types, 3);
        break;
    case LIE_EMPTY:
        toks[1] = "";
        gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, 3);
        gguf_writer_set_arr_i32(w, "tokenizer.ggml.token_type", types, 3);
        gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", NULL, 0);
        gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 0);
        gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 0);
        break;
    case LIE_LONG_PIECE:
        toks[2] = longtok;
        types[2] = TOK_TYPE_CONTROL;
        gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, 3);
        gguf_writer_set_arr_i32(w, "tokenizer.ggml.token_type", types, 3);
        gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", NULL, 0);
        gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 0);
        gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 0);
        break;
    case LIE_WIDE_PIECE:
        toks[2] = widetok;
        types[2] = TOK_TYPE_CONTROL;
        gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, 3);
        gguf_writer_set_arr_i32(w, "tokenizer.ggml.token_type", types, 3);
        gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", NULL, 0);
        gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 0);
        gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 0);
        break;
    case LIE_MERGE_NOSPACE: {
        const char *m[] = {"h e", "he"};
        gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", m, 2);
        break;
    }
    case LIE_MERGE_UNKNOWN: {
        const char *m[] = {"h e", "h zz"};
        gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", m, 2);
        break;
    }
    case LIE_BYTE_ZZ:
    case LIE_BYTE_SHORT: {
        /* rename byte token 0x41 */
        GGUFWriter *w2 = spm_writer(true);
        gguf_writer_free(w);
        w = w2;
        const char *t2[S_N];
        static char bytes[256][8];
        for (int i = 0; i < S_N; i++)
            t2[i] = "";
        t2[0] = "<unk>", t2[1] = "<s>", t2[2] = "</s>";
        for (int b = 0; b < 256; b++) {
            snprintf(bytes[b], sizeof bytes[b], "<0x%02X>", b);
            t2[S_BYTE0 + b] = bytes[b];
        }
        t2[S_BYTE0 + 0x41] = l == LIE_BYTE_ZZ ? "<0xZZ>" : "<0x1>";
        const char *p[] = {"\xe2\x96\x81",     "h",  "e",  "l",   "o",
                           "\xe2\x96\x81h",    "he", "ll", "ell", "\xe2\x96\x81he",
                           "\xe2\x96\x81hell", "llo"};
        for (int i = S_SP; i < S_N; i++)
            t2[i] = p[i - S_SP];
        gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", t2, S_N);
        break;
    }
    case LIE_BOS_RANGE:
        gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", B_N);
        break;
    case LIE_EOS_NEG:
        gguf_writer_set_i32(w, "tokenizer.ggml.eos_token_id", -2);
        break;
    case LIE_PRE:
        gguf_writer_set_str(w, "tokenizer.ggml.pre", "no-such-pre");
        break;
    case LIE_MODEL: gguf_writer_set_str(w, "tokenizer.ggml.model", "rwkv"); break;
    case LIE_DUP:
        toks[1] = "a";
        gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, 3);
        gguf_writer_set_arr_i32(w, "tokenizer.ggml.token_type", types, 3);
        gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", NULL, 0);
        gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 0);
        gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 0);
        break;
    case LIE_TYPE_RANGE:
        types[1] = 9;
        gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, 3);
        gguf_writer_set_arr_i32(w, "tokenizer.ggml.token_type", types, 3);
        gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", NULL, 0);
        gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 0);
        gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 0);
        break;
    case LIE_ADD_BOS_NO_BOS:
        w = (gguf_writer_free(w), gguf_writer_new());
        gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2");
        gguf_writer_set_str(w, "tokenizer.ggml.pre", "llama-bpe");
        gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, 3);
        gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", NULL, 0);
        break;
    }
    Tokenizer *t = NULL;
    Status st = load_writer(w, &t, err);
    cr_assert((st == STATUS_OK) == (t != NULL));
    tok_free(t);
    return st;
}

static void expect_lie(Lie l, Status want, const char *needle) {
    Err err = {0};
    Status st = lie(l, &err);
    cr_assert_eq(st, want, "case %d: status %s want %s (%s)", l, status_name(st), status_name(want),
                 err.msg);
    cr_assert(strstr(err.msg, needle), "case %d: message '%s' lacks '%s'", l, err.msg, needle);
}

Test(tok_bad, lying_vocabularies) {
    expect_lie(LIE_NO_TOKENS, STATUS_FORMAT, "tokenizer.ggml.tokens");
    expect_lie(LIE_SCORES_LEN, STATUS_FORMAT, "tokenizer.ggml.scores has 2 entries");
    expect_lie(LIE_TYPES_LEN, STATUS_FORMAT, "tokenizer.ggml.token_type has 3 entries");
    expect_lie(LIE_EMPTY, STATUS_FORMAT, "tokenizer.ggml.tokens[1]: empty");
    expect_lie(LIE_LONG_PIECE, STATUS_LIMIT, "tokenizer.ggml.tokens[2]");
    expect_lie(LIE_LONG_PIECE, STATUS_LIMIT, "token 2 decodes to 4097 bytes (limit 4096)");
    expect_lie(LIE_WIDE_PIECE, STATUS_LIMIT,
               "token 2 decodes to 2000 bytes, too many of them not UTF-8: streamed they take "
               "6003 bytes (limit 4112)");
    expect_lie(LIE_MERGE_NOSPACE, STATUS_FORMAT, "tokenizer.ggml.merges[1] = 'he'");
    expect_lie(LIE_MERGE_UNKNOWN, STATUS_FORMAT, "tokenizer.ggml.merges[1] = 'h zz': the right");
    expect_lie(LIE_BYTE_ZZ, STATUS_FORMAT, "tokenizer.ggml.tokens[68]: byte token '<0xZZ>'");
    expect_lie(LIE_BYTE_SHORT, STATUS_FORMAT, "byte token '<0x1>'");
    expect_lie(LIE_BOS_RANGE, STATUS_FORMAT, "tokenizer.ggml.bos_token_id = 274");
    expect_lie(LIE_EOS_NEG, STATUS_FORMAT, "tokenizer.ggml.eos_token_id = -2");
    expect_lie(LIE_PRE, STATUS_UNSUPPORTED, "'no-such-pre'");
    expect_lie(LIE_MODEL, STATUS_UNSUPPORTED, "'rwkv'");
    expect_lie(LIE_DUP, STATUS_FORMAT, "tokenizer.ggml.tokens[1]: duplicate token string 'a'");
    expect_lie(LIE_TYPE_RANGE, STATUS_FORMAT, "tokenizer.ggml.token_type[1] = 9");
    expect_lie(LIE_ADD_BOS_NO_BOS, STATUS_FORMAT, "add_bos_token");
}

Test(tok_bad, vocab_over_limit) {
    /* TOK_MAX_VOCAB + 1 tokens */
    uint64_t n = (uint64_t)TOK_MAX_VOCAB + 1;
    char **toks = malloc(n * sizeof *toks);
    char *store = malloc(n * 12);
    cr_assert(toks && store);
    for (uint64_t i = 0; i < n; i++) {
        toks[i] = store + i * 12;
        snprintf(toks[i], 12, "%" PRIu64, i);
    }
    GGUFWriter *w = gguf_writer_new();
    gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2");
    gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)toks, n);
    free(toks);
    Tokenizer *t = NULL;
    Err err = {0};
    Status st = load_writer(w, &t, &err);
    free(store);
    cr_assert_eq(st, STATUS_LIMIT, "%s", err.msg);
    cr_assert(strstr(err.msg, "4194305 tokens"), "%s", err.msg);
}

/* ------------------------------------------------------------ hang checks */

/* A hang check, not a benchmark: generous, and more so under sanitizers. */
#if defined(__SANITIZE_ADDRESS__)
#define HANG_LIMIT_S 10.0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HANG_LIMIT_S 10.0
#endif
#endif
#ifndef HANG_LIMIT_S
#define HANG_LIMIT_S 2.0
#endif

static void time_encode(const Tokenizer *t, const char *s, size_t len, const char *what) {
    size_t cap = len + 3, n = 0;
    int32_t *ids = malloc(cap * sizeof *ids);
    cr_assert_not_null(ids);
    Err err = {0};
    double t0 = now_s();
    Status st = tok_encode(t, s, len, NULL, ids, cap, &n, &err);
    double dt = now_s() - t0;
    cr_assert_eq(st, STATUS_OK, "%s: %s", what, err.msg);
    cr_assert(n > 0);
    cr_log_info("%s: %zu bytes -> %zu ids in %.3f s (%.1f MB/s)", what, len, n, dt, len / dt / 1e6);
    cr_assert(dt < HANG_LIMIT_S, "%s took %.2f s (limit %.0f s)", what, dt, HANG_LIMIT_S);
    free(ids);
}

Test(tok_perf, one_megabyte_without_spaces) {
    size_t len = 1u << 20;
    char *a = malloc(len), *r = malloc(len);
    cr_assert(a && r);
    memset(a, 'a', len);
    unsigned seed = 7;
    for (size_t i = 0; i < len; i++) {
        seed = seed * 1103515245u + 12345u;
        r[i] = (char)('a' + (seed >> 16) % 26);
    }
    const char *pres[] = {"gpt-2", "llama-bpe", "qwen2"};
    for (int p = 0; p < 3; p++) {
        Tokenizer *t = bpe_tok(pres[p]);
        time_encode(t, a, len, pres[p]);
        time_encode(t, r, len, pres[p]);
        tok_free(t);
    }
    Tokenizer *t = spm_tok(-1);
    time_encode(t, a, len, "spm");
    time_encode(t, r, len, "spm");
    memset(a, ' ', len);
    time_encode(t, a, len, "spm spaces");
    tok_free(t);
    t = bpe_tok("llama-bpe");
    time_encode(t, a, len, "llama-bpe spaces");
    memset(a, '7', len);
    time_encode(t, a, len, "llama-bpe digits");
    memset(a, '\n', len);
    time_encode(t, a, len, "llama-bpe newlines");
    tok_free(t);
    free(a);
    free(r);
}

Test(tok_perf, english_speed) {
    const char *words[] = {"the",  "quick", "brown", "fox",    "jumps", "over", "lazy",
                           "dog,", "and",   "hello", "world.", "It's",  "1984", "\n"};
    size_t len = 4u << 20, k = 0;
    char *s = malloc(len + 16);
    unsigned seed = 3;
    while (k < len) {
        seed = seed * 1103515245u + 12345u;
        const char *w = words[(seed >> 16) % (sizeof words / sizeof words[0])];
        size_t n = strlen(w);
        if (k + n + 1 > len)
            break;
        memcpy(s + k, w, n);
        k += n;
        s[k++] = ' ';
    }
    Tokenizer *t = bpe_tok("llama-bpe");
    time_encode(t, s, k, "english llama-bpe");
    tok_free(t);
    t = spm_tok(-1);
    time_encode(t, s, k, "english spm");
    tok_free(t);
    free(s);
}

/* Every pre-tokenizer name compiles and keeps every byte. */
Test(tok_bpe, all_pretokenizers_compile) {
    const char *names[] = {
        "default",     "gpt-2",       "mpt",       "gpt-neox", "olmo",         "llama-bpe",
        "llama3",      "dbrx",        "smaug-bpe", "qwen2",    "qwen35",       "smollm",
        "starcoder",   "refact",      "command-r", "falcon",   "deepseek-llm", "deepseek-coder",
        "deepseek-v3", "gpt-4o",      "tekken",    "bloom",    "viking",       "seed-coder",
        "bailingmoe",  "chatglm-bpe", "jina-v2-es"};
    const char text[] = "Hello, WORLD's 1234567 \xe4\xb8\xad\xe6\x96\x87  !!\n\n\tend\xff";
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        Tokenizer *t = bpe_tok(names[i]);
        int32_t ids[MAXIDS];
        size_t n;
        Err err = {0};
        cr_assert_eq(tok_encode(t, text, sizeof text - 1, NULL, ids, MAXIDS, &n, &err), STATUS_OK,
                     "%s: %s", names[i], err.msg);
        char out[128];
        size_t m = tok_decode(t, ids, n, false, out, sizeof out);
        cr_assert(m == sizeof text - 1 && !memcmp(out, text, m), "%s: round trip", names[i]);
        tok_free(t);
    }
}
