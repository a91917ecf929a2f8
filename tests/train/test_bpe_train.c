/* test_bpe_train.c - the BPE trainer (src/train/bpe_train.c).
 *
 * Expected merges are worked out by hand from the rule in bpe_train.h (the
 * classic "low lower newest widest" corpus, overlapping pairs, ties), or
 * come from a naive twin in this file that recounts every pair from scratch
 * at each step (never optimised) on random word sets. The trained
 * vocabulary goes through the GGUF writer, gguf_open and tok_load, and must
 * round-trip text. tests/train/test_bpe_train.py checks the same trainer
 * against an independent Python implementation on a real corpus.
 *
 * Suites: bpe_train (merges), bpe_train_io (counting, JSONL, limits, GGUF,
 * tokenizer round trip). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/rng.h"
#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"
#include "train/bpe_train.h"

/* ------------------------------------------------------------ helpers */

static BpeCounts *counts_new(void) {
    BpeCounts *c = NULL;
    Err err = {0};
    cr_assert_eq(bpe_counts_new(&c, 0, &err), STATUS_OK, "%s", err.msg);
    return c;
}

static void add_word(BpeCounts *c, const char *w, uint64_t n) {
    Err err = {0};
    cr_assert_eq(bpe_counts_add_word(c, w, strlen(w), n, &err), STATUS_OK, "%s", err.msg);
}

static void train(const BpeCounts *c, int vocab, uint64_t min_freq, BpeVocab *v) {
    Err err = {0};
    BpeTrainParams p = {.vocab = vocab, .min_freq = min_freq};
    cr_assert_eq(bpe_train(c, &p, v, &err), STATUS_OK, "%s", err.msg);
}

static void expect_merges(const BpeVocab *v, const char *const *want, const uint64_t *counts,
                          int n) {
    cr_assert_eq(v->n_merges, n, "merges: got %d want %d", v->n_merges, n);
    for (int i = 0; i < n; i++) {
        cr_expect_str_eq(v->merges[i], want[i], "merge %d: got '%s' want '%s'", i, v->merges[i],
                         want[i]);
        if (counts)
            cr_expect_eq(v->merge_count[i], counts[i], "merge %d ('%s'): count %llu want %llu", i,
                         want[i], (unsigned long long)v->merge_count[i],
                         (unsigned long long)counts[i]);
    }
    cr_assert_eq(v->n_tokens, 256 + n + BPE_TRAIN_N_SPECIAL);
}

/* A new empty temporary file; its name goes to path (64 bytes). */
static char *tmp_path(char *path) {
    snprintf(path, 64, "/tmp/cgpt_bpe_train_XXXXXX");
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    close(fd);
    return path;
}

static char *write_tmp(char *p, const char *content) {
    tmp_path(p);
    FILE *f = fopen(p, "wb");
    cr_assert(f);
    fputs(content, f);
    fclose(f);
    return p;
}

/* ------------------------------------------------- hand-worked merges */

/* Sennrich et al.'s example without end-of-word markers. Pair counts
 * (word counts low 5, lower 2, newest 6, widest 3):
 *   e s 9, s t 9 (tie: (e,s) < (s,t)) -> "es"; es t 9 -> "est";
 *   l o 7, o w 7 -> "lo"; lo w 7 -> "low";
 *   n e 6, e w 6, w est 6 -> (e,w) smallest -> "ew"; n ew 6 -> "new";
 *   new est 6 -> "newest"; d est 3, i d 3, w i 3 -> (d,est) -> "dest";
 *   i dest 3, w i 3 -> (i,dest) -> "idest"; w idest 3 -> "widest";
 *   low e 2, e r 2 -> (e,r) -> "er"; low er 2 -> "lower"; then every word
 *   is one token. */
static const char *const CLASSIC[] = {"e s",     "es t",  "l o",    "lo w",    "e w", "n ew",
                                      "new est", "d est", "i dest", "w idest", "e r", "low er"};
static const uint64_t CLASSIC_COUNT[] = {9, 9, 7, 7, 6, 6, 6, 3, 3, 3, 2, 2};

static BpeCounts *classic_counts(void) {
    BpeCounts *c = counts_new();
    add_word(c, "low", 5);
    add_word(c, "lower", 2);
    add_word(c, "newest", 6);
    add_word(c, "widest", 3);
    return c;
}

Test(bpe_train, classic_low_lower_newest_widest) {
    BpeCounts *c = classic_counts();
    BpeVocab v;
    train(c, 1000, 1, &v); /* runs out of pairs after 12 merges */
    expect_merges(&v, CLASSIC, CLASSIC_COUNT, 12);
    cr_expect_str_eq(v.tokens[256], "es");
    cr_expect_str_eq(v.tokens[267], "lower");
    cr_expect_str_eq(v.tokens[268], "<|endoftext|>");
    cr_expect_str_eq(v.tokens[269], "<|im_start|>");
    cr_expect_str_eq(v.tokens[270], "<|im_end|>");
    cr_expect_str_eq(v.tokens[271], "<|pad|>");
    cr_expect_eq(v.bos, 268);
    cr_expect_eq(v.eos, 268);
    cr_expect_eq(v.eot, 270);
    cr_expect_eq(v.pad, 271);
    cr_expect_eq(v.types[0], TOK_TYPE_NORMAL);
    cr_expect_eq(v.types[267], TOK_TYPE_NORMAL);
    for (int i = 268; i < 272; i++)
        cr_expect_eq(v.types[i], TOK_TYPE_CONTROL);
    bpe_vocab_free(&v);

    train(c, BPE_TRAIN_MIN_VOCAB + 3, 1, &v); /* vocab full after 3 merges */
    expect_merges(&v, CLASSIC, CLASSIC_COUNT, 3);
    bpe_vocab_free(&v);
    train(c, 1000, 3, &v); /* the next best count is 2 < min_freq after 10 merges */
    expect_merges(&v, CLASSIC, CLASSIC_COUNT, 10);
    bpe_vocab_free(&v);
    train(c, BPE_TRAIN_MIN_VOCAB, 1, &v); /* bytes and specials only */
    expect_merges(&v, CLASSIC, CLASSIC_COUNT, 0);
    cr_expect_str_eq(v.tokens[256], "<|endoftext|>");
    bpe_vocab_free(&v);
    bpe_counts_free(c);
}

/* Overlapping occurrences count: "aaa" holds (a,a) twice -> count 2 x 5;
 * merged left to right -> [aa, a]; then (aa, a) 5. "aaaa" x 1 holds (a,a)
 * three times -> [aa, aa] -> (aa, aa) 1. */
Test(bpe_train, overlapping_pairs) {
    BpeCounts *c = counts_new();
    add_word(c, "aaa", 5);
    add_word(c, "aaaa", 1);
    BpeVocab v;
    train(c, 1000, 1, &v);
    static const char *const want[] = {"a a", "aa a", "aa aa"};
    static const uint64_t cnt[] = {13, 5, 1};
    expect_merges(&v, want, cnt, 3);
    bpe_vocab_free(&v);
    bpe_counts_free(c);
}

/* Equal counts: the smaller (left, right) first, left id compared first. */
Test(bpe_train, ties_by_smallest_pair) {
    BpeCounts *c = counts_new();
    add_word(c, "zb", 4); /* (z,b) = (122, 98) */
    add_word(c, "ba", 4); /* (b,a) = (98, 97) */
    add_word(c, "bc", 4); /* (b,c) = (98, 99) */
    add_word(c, "yy", 5);
    BpeVocab v;
    train(c, 1000, 1, &v);
    static const char *const want[] = {"y y", "b a", "b c", "z b"};
    expect_merges(&v, want, NULL, 4);
    bpe_vocab_free(&v);
    bpe_counts_free(c);
}

/* Non-ASCII bytes appear in merges as GPT-2 characters: ' ' is U+0120,
 * the UTF-8 bytes of 'é' (C3 A9) are U+00C3 and U+00A9. */
Test(bpe_train, merges_in_gpt2_alphabet) {
    BpeCounts *c = counts_new();
    add_word(c, " \xc3\xa9", 3);
    BpeVocab v;
    train(c, 1000, 1, &v);
    /* (0x20, 0xC3) = (32, 195) < (195, 169) */
    static const char *const want[] = {"\xc4\xa0 \xc3\x83", "\xc4\xa0\xc3\x83 \xc2\xa9"};
    expect_merges(&v, want, NULL, 2);
    cr_expect_str_eq(v.tokens[' '], "\xc4\xa0");
    bpe_vocab_free(&v);
    bpe_counts_free(c);
}

Test(bpe_train, no_token_longer_than_the_limit) {
    BpeCounts *c = counts_new();
    char w[201];
    memset(w, 'a', 200);
    w[200] = '\0';
    add_word(c, w, 7);
    BpeVocab v;
    train(c, 5000, 1, &v);
    int longest = 0;
    for (int i = 0; i < v.n_tokens - BPE_TRAIN_N_SPECIAL; i++) {
        int n = (int)strlen(v.tokens[i]);
        longest = n > longest ? n : longest;
    }
    cr_expect_eq(longest, BPE_TRAIN_MAX_TOKEN_BYTES);
    bpe_vocab_free(&v);
    bpe_counts_free(c);
}

/* ----------------------------------------------- naive twin, random sets */

#define NV_MAX_SYM 16384
#define NV_MAX_TOK 2048

typedef struct {
    int32_t sym[64][300];
    int len[64];
    uint64_t cnt[64];
    int n_words;
    int tlen[NV_MAX_TOK];
    int n_tok;
} Naive;

typedef struct {
    uint64_t key, count;
} PairCount;

static int cmp_pc(const void *x, const void *y) {
    uint64_t a = ((const PairCount *)x)->key, b = ((const PairCount *)y)->key;
    return (a > b) - (a < b);
}

/* Recount every pair, merge the best, repeat: the rule of bpe_train.h
 * spelled out as plainly as possible. Writes (left, right, count) per merge. */
static int naive_train(Naive *nv, int want, uint64_t min_freq, int32_t (*out)[2], uint64_t *cnt) {
    static PairCount pc[NV_MAX_SYM];
    int n_merges = 0;
    while (n_merges < want) {
        int n = 0;
        for (int w = 0; w < nv->n_words; w++)
            for (int i = 0; i + 1 < nv->len[w]; i++) {
                int32_t a = nv->sym[w][i], b = nv->sym[w][i + 1];
                if (nv->tlen[a] + nv->tlen[b] > BPE_TRAIN_MAX_TOKEN_BYTES)
                    continue;
                pc[n++] = (PairCount){(uint64_t)a << 32 | (uint32_t)b, nv->cnt[w]};
            }
        if (n == 0)
            break;
        qsort(pc, (size_t)n, sizeof pc[0], cmp_pc);
        uint64_t best_key = 0, best = 0;
        for (int i = 0; i < n;) {
            uint64_t k = pc[i].key, s = 0;
            for (; i < n && pc[i].key == k; i++)
                s += pc[i].count;
            if (s > best) { /* keys ascend: the first of equal counts is the smallest pair */
                best = s;
                best_key = k;
            }
        }
        if (best < min_freq)
            break;
        int32_t a = (int32_t)(best_key >> 32), b = (int32_t)(uint32_t)best_key, c = nv->n_tok++;
        cr_assert(c < NV_MAX_TOK);
        nv->tlen[c] = nv->tlen[a] + nv->tlen[b];
        out[n_merges][0] = a;
        out[n_merges][1] = b;
        cnt[n_merges++] = best;
        for (int w = 0; w < nv->n_words; w++) {
            int o = 0;
            for (int i = 0; i < nv->len[w];) {
                if (i + 1 < nv->len[w] && nv->sym[w][i] == a && nv->sym[w][i + 1] == b) {
                    nv->sym[w][o++] = c;
                    i += 2;
                } else {
                    nv->sym[w][o++] = nv->sym[w][i++];
                }
            }
            nv->len[w] = o;
        }
    }
    return n_merges;
}

Test(bpe_train, matches_naive_twin_on_random_words) {
    static Naive nv;
    static int32_t want[NV_MAX_TOK][2];
    static uint64_t want_cnt[NV_MAX_TOK];
    Rng rng;
    rng_seed(&rng, 42);
    for (int trial = 0; trial < 40; trial++) {
        memset(&nv, 0, sizeof nv);
        BpeCounts *c = counts_new();
        int alpha = 2 + (int)((uint32_t)rng_u64(&rng) % 5);
        nv.n_words = 1 + (int)((uint32_t)rng_u64(&rng) % 60);
        for (int w = 0; w < nv.n_words; w++) {
            char buf[300];
            int len;
            /* distinct words: the first byte is the word's index (a word
             * given twice would be one word with the counts summed) */
            len = (uint32_t)rng_u64(&rng) % 8 == 0 ? 100 + (int)((uint32_t)rng_u64(&rng) % 150)
                                                   : 2 + (int)((uint32_t)rng_u64(&rng) % 12);
            buf[0] = (char)('A' + w);
            for (int i = 1; i < len; i++)
                buf[i] = (char)('a' + (uint32_t)rng_u64(&rng) % (uint32_t)alpha);
            nv.len[w] = len;
            nv.cnt[w] = 1 + (uint32_t)rng_u64(&rng) % 20;
            for (int i = 0; i < len; i++)
                nv.sym[w][i] = (uint8_t)buf[i];
            Err err = {0};
            cr_assert_eq(bpe_counts_add_word(c, buf, (size_t)len, nv.cnt[w], &err), STATUS_OK);
        }
        for (int i = 0; i < 256; i++)
            nv.tlen[i] = 1;
        nv.n_tok = 256;
        int vocab = BPE_TRAIN_MIN_VOCAB + (int)((uint32_t)rng_u64(&rng) % 1200);
        uint64_t min_freq = 1 + (uint32_t)rng_u64(&rng) % 3;
        int n = naive_train(&nv, vocab - BPE_TRAIN_MIN_VOCAB, min_freq, want, want_cnt);
        BpeVocab v;
        train(c, vocab, min_freq, &v);
        cr_assert_eq(v.n_merges, n, "trial %d: %d merges, naive %d", trial, v.n_merges, n);
        for (int i = 0; i < n; i++)
            cr_assert(v.merge_l[i] == want[i][0] && v.merge_r[i] == want[i][1] &&
                          v.merge_count[i] == want_cnt[i],
                      "trial %d merge %d: (%d, %d) x %llu, naive (%d, %d) x %llu", trial, i,
                      v.merge_l[i], v.merge_r[i], (unsigned long long)v.merge_count[i], want[i][0],
                      want[i][1], (unsigned long long)want_cnt[i]);
        bpe_vocab_free(&v);
        bpe_counts_free(c);
    }
}

Test(bpe_train, bad_parameters) {
    BpeCounts *c = classic_counts();
    BpeVocab v;
    Err err = {0};
    BpeTrainParams p = {.vocab = BPE_TRAIN_MIN_VOCAB - 1, .min_freq = 1};
    cr_expect_eq(bpe_train(c, &p, &v, &err), STATUS_INVALID);
    cr_expect(strstr(err.msg, "259") != NULL, "%s", err.msg);
    p.vocab = BPE_TRAIN_MAX_VOCAB + 1;
    cr_expect_eq(bpe_train(c, &p, &v, &err), STATUS_INVALID);
    p.vocab = 300;
    p.min_freq = 0;
    cr_expect_eq(bpe_train(c, &p, &v, &err), STATUS_INVALID);
    bpe_vocab_free(&v);
    cr_expect_eq(bpe_counts_add_word(c, "", 0, 1, &err), STATUS_INVALID);
    char big[BPE_TRAIN_MAX_WORD_BYTES + 1];
    memset(big, 'x', sizeof big);
    cr_expect_eq(bpe_counts_add_word(c, big, sizeof big, 1, &err), STATUS_INVALID);
    cr_expect_eq(bpe_counts_add_word(c, "ab", 2, 0, &err), STATUS_INVALID);
    BpeCounts *c2 = NULL;
    cr_expect_eq(bpe_counts_new(&c2, BPE_TRAIN_MAX_BYTES + 1, &err), STATUS_INVALID);
    cr_expect_null(c2);
    bpe_counts_free(c);
}

/* ------------------------------------------------------ counting, I/O */

/* Read a bpe_counts_dump file into "count\thex" lines joined by '|'. */
static void dump_string(const BpeCounts *c, char *out, size_t cap) {
    char p[64];
    tmp_path(p);
    Err err = {0};
    cr_assert_eq(bpe_counts_dump(c, p, &err), STATUS_OK, "%s", err.msg);
    FILE *f = fopen(p, "rb");
    size_t n = fread(out, 1, cap - 1, f);
    fclose(f);
    unlink(p);
    out[n] = '\0';
    for (size_t i = 0; i < n; i++)
        if (out[i] == '\n')
            out[i] = '|';
}

Test(bpe_train_io, pretokenized_with_qwen2_digits_split) {
    BpeCounts *c = counts_new();
    Err err = {0};
    const char *text = "ab 12 ab";
    cr_assert_eq(bpe_counts_add_text(c, text, strlen(text), &err), STATUS_OK, "%s", err.msg);
    /* qwen2: "ab" " " "1" "2" " ab"  (digits one by one; the space before
     * a digit is its own pre-token) */
    char got[256];
    dump_string(c, got, sizeof got);
    cr_expect_str_eq(got, "1\t20|1\t206162|1\t31|1\t32|1\t6162|");
    cr_expect_eq(bpe_counts_n_bytes(c), 8);
    cr_expect_eq(bpe_counts_n_words(c), 5);
    bpe_counts_free(c);
}

Test(bpe_train_io, long_pretokens_are_chunked) {
    BpeCounts *c = counts_new();
    Err err = {0};
    char text[600];
    memset(text, 'q', sizeof text);
    cr_assert_eq(bpe_counts_add_text(c, text, sizeof text, &err), STATUS_OK);
    /* 600 = 256 + 256 + 88 */
    cr_expect_eq(bpe_counts_n_words(c), 2);
    char got[4096];
    dump_string(c, got, sizeof got);
    cr_expect(strncmp(got, "1\t", 2) == 0 && strlen(got) == 2 + 2 * 88 + 1 + 2 + 2 * 256 + 1, "%s",
              got);
    cr_expect(strstr(got, "|2\t71") != NULL, "%s", got);
    bpe_counts_free(c);
}

Test(bpe_train_io, byte_limit_cuts_at_a_character) {
    BpeCounts *c = NULL;
    Err err = {0};
    cr_assert_eq(bpe_counts_new(&c, 4, &err), STATUS_OK);
    const char *text = "ab\xe2\x82\xac"; /* "ab€": the cut at 4 would split the euro sign */
    cr_assert_eq(bpe_counts_add_text(c, text, strlen(text), &err), STATUS_OK);
    cr_expect_eq(bpe_counts_n_bytes(c), 2);
    cr_expect(bpe_counts_full(c));
    cr_assert_eq(bpe_counts_add_text(c, "more", 4, &err), STATUS_OK);
    cr_expect_eq(bpe_counts_n_bytes(c), 2);
    cr_expect_eq(bpe_counts_n_words(c), 1);
    bpe_counts_free(c);
}

Test(bpe_train_io, jsonl_text_and_messages) {
    char p[64];
    write_tmp(p, "{\"text\": \"hello world\"}\n"
                 "\n"
                 "   \r\n"
                 "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"},"
                 " {\"role\": \"assistant\", \"content\": [{\"type\": \"text\", \"text\": "
                 "\"yo\"}, {\"type\": \"image\"}]},"
                 " {\"role\": \"assistant\", \"content\": null}]}\n"
                 "{\"text\": \"nul\\u0000x\"}"); /* no final newline */
    BpeCounts *c = counts_new();
    Err err = {0};
    cr_assert_eq(bpe_counts_add_jsonl(c, p, NULL, NULL, NULL, &err), STATUS_OK, "%s", err.msg);
    unlink(p);
    cr_expect_eq(bpe_counts_n_bytes(c), 11 + 2 + 2 + 5);
    char got[512];
    dump_string(c, got, sizeof got);
    /* "hello" " world"; "hi"; "yo"; "nul" "\0x" (NUL is neither letter nor
     * digit, so it may lead a letter run like a space) */
    cr_expect_str_eq(got, "1\t0078|1\t20776f726c64|1\t68656c6c6f|1\t6869|1\t6e756c|1\t796f|");
    bpe_counts_free(c);
}

Test(bpe_train_io, jsonl_threads_give_the_same_counts) {
    /* enough text for several batches */
    char p[64];
    tmp_path(p);
    FILE *f = fopen(p, "wb");
    Rng rng;
    rng_seed(&rng, 7);
    size_t total = 0;
    while (total < 3 * BPE_TRAIN_BATCH_BYTES / 2) {
        char doc[2048];
        int n = 0;
        for (int w = 0; w < 150; w++) {
            int len = 1 + (int)((uint32_t)rng_u64(&rng) % 7);
            doc[n++] = ' ';
            for (int i = 0; i < len; i++)
                doc[n++] = (char)('a' + (uint32_t)rng_u64(&rng) % 6);
        }
        doc[n] = '\0';
        fprintf(f, "{\"text\": \"%s\"}\n", doc);
        total += (size_t)n;
    }
    fclose(f);
    char *a = malloc(64u << 20), *b = malloc(64u << 20);
    for (int th = 1; th <= 3; th += 2) {
        TPool *tp = tpool_new(th);
        BpeCounts *c = counts_new();
        Err err = {0};
        cr_assert_eq(bpe_counts_add_jsonl(c, p, tp, NULL, NULL, &err), STATUS_OK, "%s", err.msg);
        cr_expect_eq(bpe_counts_n_bytes(c), total);
        dump_string(c, th == 1 ? a : b, 64u << 20);
        bpe_counts_free(c);
        tpool_free(tp);
    }
    cr_expect(strcmp(a, b) == 0, "counts differ between 1 and 3 threads");
    free(a);
    free(b);
    unlink(p);
}

static void expect_jsonl_error(const char *content, Status want, const char *where,
                               const char *what) {
    char p[64];
    write_tmp(p, content);
    BpeCounts *c = counts_new();
    Err err = {0};
    cr_expect_eq(bpe_counts_add_jsonl(c, p, NULL, NULL, NULL, &err), want, "%s", err.msg);
    char loc[128];
    snprintf(loc, sizeof loc, "%s:%s", p, where);
    cr_expect(strstr(err.msg, loc) != NULL, "'%s' does not name %s", err.msg, loc);
    cr_expect(strstr(err.msg, what) != NULL, "'%s' does not say '%s'", err.msg, what);
    unlink(p);
    bpe_counts_free(c);
}

Test(bpe_train_io, jsonl_errors_name_file_and_line) {
    expect_jsonl_error("{\"text\": \"a\"}\n{\"text\": 5}\n", STATUS_FORMAT, "2:", "\"text\"");
    expect_jsonl_error("{\"text\": \"a\"}\n\n{\"text\": \n", STATUS_FORMAT, "3:", "not JSON");
    expect_jsonl_error("[1, 2]\n", STATUS_FORMAT, "1:", "not a JSON object");
    expect_jsonl_error("{\"foo\": 1}\n", STATUS_FORMAT, "1:", "no \"text\" or \"messages\"");
    expect_jsonl_error("{\"messages\": {}}\n", STATUS_FORMAT, "1:", "not an array");
    expect_jsonl_error("{\"messages\": [3]}\n", STATUS_FORMAT, "1:", "messages[0]");
    expect_jsonl_error("{\"messages\": [{\"content\": 3}]}\n", STATUS_FORMAT,
                       "1:", "messages[0].content");
    expect_jsonl_error("{\"messages\": [{\"content\": [{\"text\": 1}]}]}\n", STATUS_FORMAT,
                       "1:", "content[0].text");
    BpeCounts *c = counts_new();
    Err err = {0};
    cr_expect_eq(bpe_counts_add_jsonl(c, "/nonexistent/x.jsonl", NULL, NULL, NULL, &err),
                 STATUS_IO);
    cr_expect(strstr(err.msg, "/nonexistent/x.jsonl") != NULL, "%s", err.msg);
    bpe_counts_free(c);
}

/* ----------------------------------------------- GGUF and tok_load */

static const char CORPUS[] =
    "The quick brown fox jumps over the lazy dog. It's 2024 and we'll test 12345 numbers!\n"
    "Tokenizers split text into tokens; the tokens become ids, and the ids go to the model.\n"
    "naïve café straße — Ωμέγα привет мир. 你好，世界！数据和中文。中文分词。\n"
    "    def main():\n        return 0\n\n"
    "the the the then there these those this that tokens tokens tokenizer\n";

static Tokenizer *train_and_load(BpeVocab *v, int vocab, const char *path) {
    BpeCounts *c = counts_new();
    Err err = {0};
    for (int i = 0; i < 20; i++)
        cr_assert_eq(bpe_counts_add_text(c, CORPUS, strlen(CORPUS), &err), STATUS_OK);
    train(c, vocab, 2, v);
    bpe_counts_free(c);
    cr_assert_eq(bpe_vocab_write_gguf(v, "test-bpe", path, &err), STATUS_OK, "%s", err.msg);
    GGUF g = {0};
    cr_assert_eq(gguf_open(&g, path, &err), STATUS_OK, "%s", err.msg);
    Tokenizer *t = NULL;
    cr_assert_eq(tok_load(&t, &g, &err), STATUS_OK, "tok_load: %s", err.msg);
    GGUFStr s;
    cr_expect_eq(gguf_get_str(&g, "tokenizer.ggml.pre", true, &s, &err), STATUS_OK);
    cr_expect(s.len == 5 && memcmp(s.ptr, "qwen2", 5) == 0);
    cr_expect_eq(gguf_get_str(&g, "tokenizer.chat_template", true, &s, &err), STATUS_OK);
    cr_expect(memmem(s.ptr, s.len, "<|im_start|>", 12) != NULL);
    cr_expect_eq(gguf_get_str(&g, "general.architecture", true, &s, &err), STATUS_OK);
    cr_expect(s.len == 5 && memcmp(s.ptr, "llama", 5) == 0);
    gguf_close(&g);
    return t;
}

static size_t encode(const Tokenizer *t, const char *s, size_t len, bool special, int32_t *ids,
                     size_t cap) {
    TokEncodeOpts o = {.parse_special = special};
    size_t n = 0;
    Err err = {0};
    cr_assert_eq(tok_encode(t, s, len, &o, ids, cap, &n, &err), STATUS_OK, "%s", err.msg);
    return n;
}

Test(bpe_train_io, trained_file_round_trips_through_tok_load) {
    char path[64];
    tmp_path(path);
    BpeVocab v;
    Tokenizer *t = train_and_load(&v, 400, path);
    cr_assert_eq(tok_n_vocab(t), v.n_tokens);
    cr_expect_gt(v.n_merges, 50);
    int base = v.n_tokens - BPE_TRAIN_N_SPECIAL;
    cr_expect_eq(tok_bos(t), base);
    cr_expect_eq(tok_eos(t), base);
    cr_expect_eq(tok_eot(t), base + 2);
    cr_expect(!tok_add_bos(t) && !tok_add_eos(t));
    cr_expect(tok_is_eog(t, base + 2) && tok_is_eog(t, base));
    cr_expect_eq(tok_type(t, base + 1), TOK_TYPE_CONTROL);
    cr_expect_eq(tok_find(t, "<|pad|>", 7), base + 3);

    static const char *const texts[] = {"The quick brown fox",
                                        "the tokens become ids",
                                        "It's 2024, isn't it? 3.14159",
                                        "你好，世界！中文分词",
                                        "naïve café straße Ωμέγα",
                                        "emoji 😀🚀 and tabs\t\tand\r\nCRLF",
                                        "    def main():\n        return 0\n",
                                        "",
                                        " ",
                                        "\n\n\n",
                                        "unseen xyzzy qwerty words"};
    int32_t ids[512];
    char buf[1024];
    for (size_t k = 0; k < sizeof texts / sizeof texts[0]; k++) {
        size_t len = strlen(texts[k]);
        size_t n = encode(t, texts[k], len, false, ids, 512);
        size_t m = tok_decode(t, ids, n, false, buf, sizeof buf);
        cr_expect(m == len && memcmp(buf, texts[k], len) == 0, "round trip of '%s': got '%.*s'",
                  texts[k], (int)m, buf);
        for (size_t i = 0; i < n; i++)
            cr_expect_lt(ids[i], base, "'%s' gave a special id", texts[k]);
    }
    /* learned merges are used: "the" in the corpus is one token */
    cr_expect_eq(encode(t, " the", 4, false, ids, 512), 1);
    /* any bytes round-trip (byte-level) */
    Rng rng;
    rng_seed(&rng, 3);
    for (int trial = 0; trial < 200; trial++) {
        char s[64];
        size_t len = (uint32_t)rng_u64(&rng) % sizeof s;
        for (size_t i = 0; i < len; i++)
            s[i] = (char)((uint32_t)rng_u64(&rng) % 4
                              ? CORPUS[(uint32_t)rng_u64(&rng) % (sizeof CORPUS - 1)]
                              : (int)((uint32_t)rng_u64(&rng) & 0xFF));
        size_t n = encode(t, s, len, false, ids, 512);
        size_t m = tok_decode(t, ids, n, false, buf, sizeof buf);
        cr_expect(m == len && memcmp(buf, s, len) == 0, "random bytes, trial %d", trial);
    }
    tok_free(t);
    bpe_vocab_free(&v);
    unlink(path);
}

Test(bpe_train_io, specials_only_when_allowed) {
    char path[64];
    tmp_path(path);
    BpeVocab v;
    Tokenizer *t = train_and_load(&v, 350, path);
    int base = v.n_tokens - BPE_TRAIN_N_SPECIAL;
    const char *chat = "<|im_start|>user\nhi<|im_end|>";
    int32_t ids[128];
    size_t n = encode(t, chat, strlen(chat), true, ids, 128);
    cr_assert_gt(n, 2);
    cr_expect_eq(ids[0], base + 1);
    cr_expect_eq(ids[n - 1], base + 2);
    n = encode(t, chat, strlen(chat), false, ids, 128);
    cr_expect_gt(n, 6);
    for (size_t i = 0; i < n; i++)
        cr_expect_lt(ids[i], base);
    n = encode(t, "<|endoftext|>", 13, true, ids, 128);
    cr_expect(n == 1 && ids[0] == base);
    tok_free(t);
    bpe_vocab_free(&v);
    unlink(path);
}

static void slurp(const char *path, char **data, size_t *len) {
    FILE *f = fopen(path, "rb");
    cr_assert(f);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    *data = malloc(*len);
    cr_assert_eq(fread(*data, 1, *len, f), *len);
    fclose(f);
}

/* Same counts, added in a different order: byte-identical files. */
Test(bpe_train_io, deterministic_files) {
    char paths[2][64];
    char *data[2];
    size_t len[2];
    for (int run = 0; run < 2; run++) {
        BpeCounts *c = counts_new();
        Err err = {0};
        const char *lines[] = {"alpha beta gamma alpha beta", "12 + 34 = 46", "delta gamma beta",
                               "中文 中文 测试"};
        for (int k = 0; k < 4; k++) {
            int idx = run ? 3 - k : k;
            const char *s = lines[idx];
            for (int rep = 0; rep < 3 + idx; rep++)
                cr_assert_eq(bpe_counts_add_text(c, s, strlen(s), &err), STATUS_OK);
        }
        BpeVocab v;
        train(c, 300, 1, &v);
        tmp_path(paths[run]);
        cr_assert_eq(bpe_vocab_write_gguf(&v, "det", paths[run], &err), STATUS_OK, "%s", err.msg);
        slurp(paths[run], &data[run], &len[run]);
        bpe_vocab_free(&v);
        bpe_counts_free(c);
        unlink(paths[run]);
    }
    cr_expect(len[0] == len[1] && memcmp(data[0], data[1], len[0]) == 0,
              "files differ (%zu vs %zu bytes)", len[0], len[1]);
    free(data[0]);
    free(data[1]);
}
