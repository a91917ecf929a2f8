/* fuzz_bpe_train.c - libFuzzer target for the BPE trainer (src/train/bpe_train.c).
 *
 * The first input byte picks the mode:
 *   even: the rest is a JSONL file given to bpe_counts_add_jsonl (any bytes:
 *         it must either count or fail with a message, never crash);
 *   odd:  the rest is text, split at 0xFF bytes into documents, counted
 *         with bpe_counts_add_text and trained to a vocabulary of 260..515
 *         tokens (the second byte) with min_freq 1; the vocabulary goes
 *         through the GGUF writer and tok_load, and every document must
 *         round-trip: decode(encode(doc)) == doc. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"
#include "train/bpe_train.h"

static void die(const char *what, const Err *err) {
    fprintf(stderr, "fuzz_bpe_train: %s: %s\n", what, err->msg);
    abort();
}

static void fuzz_jsonl(const uint8_t *data, size_t size) {
    char path[] = "/tmp/cgpt_fuzz_bpe_XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0 || write(fd, data, size) != (ssize_t)size)
        abort();
    close(fd);
    BpeCounts *c = NULL;
    Err err = {0};
    if (bpe_counts_new(&c, 1 << 20, &err))
        die("counts", &err);
    Status st = bpe_counts_add_jsonl(c, path, NULL, NULL, NULL, &err);
    if (st != STATUS_OK && (err.msg[0] == '\0' || !strstr(err.msg, path)))
        die("an error that does not name the file", &err);
    bpe_counts_free(c);
    unlink(path);
}

static void fuzz_train(const uint8_t *data, size_t size) {
    if (size < 1)
        return;
    int vocab = BPE_TRAIN_MIN_VOCAB + data[0];
    data++, size--;
    BpeCounts *c = NULL;
    Err err = {0};
    if (bpe_counts_new(&c, 0, &err))
        die("counts", &err);
    for (size_t a = 0; a <= size;) {
        const uint8_t *e = memchr(data + a, 0xFF, size - a);
        size_t b = e ? (size_t)(e - data) : size;
        if (bpe_counts_add_text(c, (const char *)data + a, b - a, &err))
            die("add_text", &err);
        a = b + 1;
    }
    BpeVocab v;
    BpeTrainParams p = {.vocab = vocab, .min_freq = 1};
    if (bpe_train(c, &p, &v, &err))
        die("train", &err);
    char path[] = "/tmp/cgpt_fuzz_bpe_XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        abort();
    close(fd);
    if (bpe_vocab_write_gguf(&v, "fuzz", path, &err))
        die("write", &err);
    GGUF g = {0};
    Tokenizer *t = NULL;
    if (gguf_open(&g, path, &err) || tok_load(&t, &g, &err))
        die("load", &err);
    gguf_close(&g);
    unlink(path);
    int32_t *ids = malloc((size + 3) * sizeof *ids);
    char *back = malloc(size + 1);
    TokEncodeOpts o = {0};
    for (size_t a = 0; a <= size;) {
        const uint8_t *e = memchr(data + a, 0xFF, size - a);
        size_t b = e ? (size_t)(e - data) : size, n = 0;
        if (tok_encode(t, (const char *)data + a, b - a, &o, ids, size + 3, &n, &err))
            die("encode", &err);
        size_t m = tok_decode(t, ids, n, false, back, size + 1);
        if (m != b - a || memcmp(back, data + a, m) != 0)
            abort(); /* decode(encode(doc)) != doc */
        a = b + 1;
    }
    free(ids);
    free(back);
    tok_free(t);
    bpe_vocab_free(&v);
    bpe_counts_free(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1)
        return 0;
    if (data[0] % 2 == 0)
        fuzz_jsonl(data + 1, size - 1);
    else
        fuzz_train(data + 1, size - 1);
    return 0;
}
