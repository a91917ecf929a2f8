/* test_tdata.c - training rows from corpus lines. The vocabulary is one
 * token per byte (randmodel's: <|pad|> 0, byte b is id 3+b, EOS 2, <|im_start|> 259,
 * <|im_end|> 260), so the expected tokens and targets are written down from
 * the text by hand, independently of the tokenizer and template code. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chat/chat.h"
#include "gguf/gguf.h"
#include "model/randmodel.h"
#include "tokenizer/tokenizer.h"
#include "train/tdata.h"

#define EOS 2
#define IM_START 259
#define IM_END 260
#define BYTE(c) (3 + (unsigned char)(c))

static char dir[64];
static GGUF g;
static Tokenizer *tok;
static ChatFormat *fmt;

static void setup(void) {
    snprintf(dir, sizeof dir, "/tmp/cgpt-tdata-XXXXXX");
    cr_assert(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof path, "%s/m.gguf", dir);
    RandModelSpec s = {.arch = "llama", .n_vocab = 261, .n_embd = 16, .n_layers = 1,
                       .n_heads = 2, .n_kv_heads = 2, .head_dim = 8, .n_ff = 16,
                       .n_ctx_train = 64, .rope_freq_base = 10000, .tied = true,
                       .wtype = DTYPE_F32, .seed = 1};
    Err err = {0};
    cr_assert_eq(randmodel_write(path, &s, &err), STATUS_OK, "%s", err.msg);
    cr_assert_eq(gguf_open(&g, path, &err), STATUS_OK, "%s", err.msg);
    cr_assert_eq(tok_load(&tok, &g, &err), STATUS_OK, "%s", err.msg);
    fmt = chat_format_from_builtin(CHAT_CHATML, "", "", &err);
    cr_assert(fmt, "%s", err.msg);
}

static void teardown(void) {
    chat_format_free(fmt);
    tok_free(tok);
    gguf_close(&g);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

static const char *write_file(const char *name, const char *text) {
    static char path[8][128];
    static int k;
    char *p = path[k++ % 8];
    snprintf(p, 128, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    cr_assert(f);
    fputs(text, f);
    fclose(f);
    return p;
}

/* Append the bytes of s as tokens. */
static int put(int32_t *ids, int n, const char *s, uint8_t *asst, int mark) {
    for (; *s; s++) {
        asst[n] = (uint8_t)mark;
        ids[n++] = BYTE(*s);
    }
    return n;
}

/* One ChatML message, as the template renders it; assistant content, its
 * <|im_end|> and the newline after it are the learnt tokens. */
static int message(int32_t *ids, int n, const char *role, const char *content, uint8_t *asst) {
    int a = !strcmp(role, "assistant");
    asst[n] = 0;
    ids[n++] = IM_START;
    n = put(ids, n, role, asst, 0);
    n = put(ids, n, "\n", asst, 0);
    n = put(ids, n, content, asst, a);
    asst[n] = (uint8_t)a;
    ids[n++] = IM_END;
    return put(ids, n, "\n", asst, a);
}

TestSuite(tdata, .init = setup, .fini = teardown);

Test(tdata, text_rows_are_the_stream_shifted) {
    const char *p = write_file("t.jsonl", "{\"text\": \"abc\"}\n\n{\"text\": \"de\", \"source\": \"x\"}\n");
    TData *d = NULL;
    Err err = {0};
    cr_assert_eq(tdata_load_text(&d, &p, 1, tok, 2, &err), STATUS_OK, "%s", err.msg);
    int32_t stream[] = {BYTE('a'), BYTE('b'), BYTE('c'), EOS, BYTE('d'), BYTE('e'), EOS};
    cr_assert_eq(tdata_n_tokens(d), 7);
    cr_assert_eq(tdata_n_rows(d), 3); /* (7 - 1) / 2 */
    int seen[3] = {0};
    for (uint64_t gi = 0; gi < 6; gi++) {
        int32_t t[2], y[2];
        tdata_row(d, gi, 7, t, y);
        int k = -1;
        for (int r = 0; r < 3; r++)
            if (t[0] == stream[2 * r] && t[1] == stream[2 * r + 1]) k = r;
        cr_assert(k >= 0, "row %llu is not a window of the stream", (unsigned long long)gi);
        cr_assert_eq(y[0], stream[2 * k + 1]);
        cr_assert_eq(y[1], stream[2 * k + 2]);
        seen[k]++;
        if (gi == 2) /* each epoch visits every row once */
            cr_assert(seen[0] == 1 && seen[1] == 1 && seen[2] == 1);
    }
    cr_assert(seen[0] == 2 && seen[1] == 2 && seen[2] == 2);
    tdata_free(d);
}

Test(tdata, order_is_a_function_of_seed_and_index) {
    char text[4096] = "";
    for (int i = 0; i < 40; i++) strcat(text, "{\"text\": \"0123456789abcdefghij\"}\n");
    const char *p = write_file("many.jsonl", text);
    TData *a = NULL, *b = NULL;
    Err err = {0};
    cr_assert_eq(tdata_load_text(&a, &p, 1, tok, 4, &err), STATUS_OK, "%s", err.msg);
    cr_assert_eq(tdata_load_text(&b, &p, 1, tok, 4, &err), STATUS_OK, "%s", err.msg);
    cr_assert_eq(tdata_hash(a), tdata_hash(b));
    long n = tdata_n_rows(a);
    int differ = 0;
    /* b visits in a different order (epoch 1 first) and must agree row for row */
    for (long gi = 2 * n - 1; gi >= 0; gi--) {
        int32_t t1[4], y1[4], t2[4], y2[4], t3[4], y3[4];
        tdata_row(b, (uint64_t)gi, 5, t2, y2);
        tdata_row(a, (uint64_t)gi, 5, t1, y1);
        cr_assert(!memcmp(t1, t2, sizeof t1) && !memcmp(y1, y2, sizeof y1));
        tdata_row(a, (uint64_t)gi, 6, t3, y3);
        differ += memcmp(t1, t3, sizeof t1) != 0;
    }
    cr_assert(differ > n / 2, "another seed gives another order (%d of %ld differ)", differ, 2 * n);
    tdata_free(a);
    tdata_free(b);
}

Test(tdata, chat_targets_are_the_assistant_tokens) {
    const char *p = write_file(
        "c.jsonl",
        "{\"messages\": [{\"role\": \"system\", \"content\": \"be brief\"}, {\"role\": \"user\", "
        "\"content\": \"hi\"}, {\"role\": \"assistant\", \"content\": \"yo\"}, {\"role\": \"user\", "
        "\"content\": \"q?\"}, {\"role\": \"assistant\", \"content\": \"ab c\"}], \"recipe\": \"r\"}\n");
    int32_t ids[256];
    uint8_t asst[256];
    int n = 0;
    if (tok_add_bos(tok)) asst[n] = 0, ids[n++] = tok_bos(tok);
    n = message(ids, n, "system", "be brief", asst);
    n = message(ids, n, "user", "hi", asst);
    n = message(ids, n, "assistant", "yo", asst);
    n = message(ids, n, "user", "q?", asst);
    n = message(ids, n, "assistant", "ab c", asst);
    int T = 128;
    TData *d = NULL;
    Err err = {0};
    cr_assert_eq(tdata_load_chat(&d, &p, 1, fmt, tok, T, 1, &err), STATUS_OK, "%s", err.msg);
    cr_assert_eq(tdata_n_rows(d), 1);
    int32_t t[128], y[128];
    tdata_row(d, 0, 1, t, y);
    long counted = 0;
    for (int j = 0; j < T; j++) {
        if (j < n - 1) {
            cr_assert_eq(t[j], ids[j], "token %d: %d, want %d", j, t[j], ids[j]);
            int want = asst[j + 1] ? ids[j + 1] : -1;
            cr_assert_eq(y[j], want, "target %d: %d, want %d", j, y[j], want);
            counted += want >= 0;
        } else {
            cr_assert_eq(y[j], -1, "padding at %d has no target", j);
            cr_assert_eq(t[j], 0, "padding token at %d", j); /* <|pad|> is id 0 here */
        }
    }
    cr_assert_eq(counted, (long)strlen("yo") + 2 + (long)strlen("ab c") + 2);
    cr_assert_eq(tdata_n_targets(d), (uint64_t)counted);
    tdata_free(d);
}

Test(tdata, chat_conversations_are_packed_whole) {
    char text[8192] = "";
    for (int i = 0; i < 9; i++) {
        char line[256];
        snprintf(line, sizeof line,
                 "{\"messages\": [{\"role\": \"user\", \"content\": \"q%d\"}, {\"role\": "
                 "\"assistant\", \"content\": \"a%d\"}]}\n",
                 i, i);
        strcat(text, line);
    }
    const char *p = write_file("pack.jsonl", text);
    /* each conversation: <s>? + im_start user\n q% d im_end \n im_start assistant\n a% d im_end \n */
    int conv = (tok_add_bos(tok) ? 1 : 0) + 1 + 5 + 2 + 1 + 1 + 1 + 10 + 2 + 1 + 1;
    int T = 2 * (conv - 1) + 3; /* two conversations fit (each fills conv-1 positions) */
    TData *d = NULL;
    Err err = {0};
    cr_assert_eq(tdata_load_chat(&d, &p, 1, fmt, tok, T, 3, &err), STATUS_OK, "%s", err.msg);
    cr_assert_eq(tdata_n_rows(d), 5, "9 conversations, two per row: %ld rows", tdata_n_rows(d));
    int32_t t[256], y[256];
    int starts = 0;
    for (long r = 0; r < 5; r++) {
        tdata_row(d, (uint64_t)r, 3, t, y);
        int first = tok_add_bos(tok) ? 1 : 0;
        cr_assert_eq(t[first], IM_START, "row %ld starts with a conversation", r);
        for (int j = 0; j + 1 < T; j++) starts += t[j] == IM_START && t[j + 1] == BYTE('u');
    }
    cr_assert_eq(starts, 9, "every conversation starts once, whole, in some row (%d)", starts);
    tdata_free(d);
}

Test(tdata, long_conversations_are_cut_and_counted) {
    const char *p = write_file("long.jsonl",
                               "{\"messages\": [{\"role\": \"user\", \"content\": \"a long question "
                               "indeed\"}, {\"role\": \"assistant\", \"content\": \"x\"}]}\n");
    TData *d = NULL;
    Err err = {0};
    cr_assert_eq(tdata_load_chat(&d, &p, 1, fmt, tok, 8, 1, &err), STATUS_OK, "%s", err.msg);
    cr_assert_eq(tdata_n_truncated(d), 1);
    tdata_free(d);
}

Test(tdata, bad_lines_are_named) {
    Err err = {0};
    TData *d = NULL;
    const char *p = write_file("bad.jsonl", "{\"text\": \"ok\"}\n{\"text\": \"cut\n");
    cr_assert_eq(tdata_load_text(&d, &p, 1, tok, 2, &err), STATUS_FORMAT);
    cr_assert(strstr(err.msg, "bad.jsonl:2"), "%s", err.msg);
    err = (Err){0};
    p = write_file("notext.jsonl", "{\"txt\": \"ok\"}\n");
    cr_assert_eq(tdata_load_text(&d, &p, 1, tok, 2, &err), STATUS_FORMAT);
    cr_assert(strstr(err.msg, "notext.jsonl:1") && strstr(err.msg, "\"text\""), "%s", err.msg);
    err = (Err){0};
    p = write_file("short.jsonl", "{\"text\": \"a\"}\n");
    cr_assert_eq(tdata_load_text(&d, &p, 1, tok, 8, &err), STATUS_INVALID, "%s", err.msg);
    err = (Err){0};
    p = write_file("noasst.jsonl", "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}\n");
    cr_assert_eq(tdata_load_chat(&d, &p, 1, fmt, tok, 16, 1, &err), STATUS_FORMAT);
    cr_assert(strstr(err.msg, "noasst.jsonl:1") && strstr(err.msg, "assistant"), "%s", err.msg);
    err = (Err){0};
    const char *missing = "/nonexistent/x.jsonl";
    cr_assert_eq(tdata_load_text(&d, &missing, 1, tok, 2, &err), STATUS_IO);
    cr_assert(strstr(err.msg, "/nonexistent/x.jsonl"), "%s", err.msg);
    cr_assert_null(d);
}
