/* bpe_train.h - training a byte-level BPE tokenizer (GPT-2 / Qwen style) on
 * a corpus, and writing it as a vocabulary-only GGUF that tok_load() and
 * llama.cpp read.
 *
 * Two stages:
 *
 *   1. Counting (BpeCounts). Text is split with the "qwen2" pre-tokenizer
 *      (tokenizer/pretok.c: Llama-3 style regex with single digits, so
 *      numbers are never merged into multi-digit tokens) and every distinct
 *      pre-token's bytes are counted. A pre-token longer than
 *      BPE_TRAIN_MAX_WORD_BYTES is counted as consecutive chunks of that many
 *      bytes. Text comes from JSON lines ({"text": ...} documents or
 *      {"messages": [{"role", "content"}, ...]} chats, each content its own
 *      document) or directly from memory.
 *
 *   2. Merging (bpe_train). Every distinct pre-token ("word") starts as its
 *      bytes, symbols 0..255. Each step merges the best adjacent pair in
 *      every word. The rule, which tests/train/test_bpe_train.py implements
 *      independently and must reproduce merge for merge:
 *        - a pair's count is the sum, over words, of word count times the
 *          number of positions i with (sym[i], sym[i+1]) == pair
 *          (overlapping positions count: "a a a" holds (a,a) twice);
 *        - pairs whose merged token would exceed BPE_TRAIN_MAX_TOKEN_BYTES
 *          bytes are not candidates;
 *        - the best pair has the highest count; ties go to the smallest
 *          (left id, right id), compared left id first;
 *        - training stops when the vocabulary is full, no candidate is left,
 *          or the best count is below min_freq;
 *        - the merged token's bytes are left's then right's, and it gets
 *          the next id;
 *        - in every word the pair is replaced left to right without overlap
 *          ("a a a" -> "aa a").
 *      A merged token's bytes are always new, and a merged pair never
 *      occurs again: a span of a word whose tokens never cross its edges
 *      evolves exactly as that span would alone, so every span spelling
 *      S = X Y that is [X, Y] when (X, Y) is merged becomes S then, and no
 *      later pair can spell S (asserted, not assumed).
 *      Pair counts are updated incrementally (a pair -> words index finds
 *      the words to rewrite; a max-heap with lazy deletion finds the best
 *      pair), so a merge costs time in the words it touches, not in the
 *      corpus.
 *
 * The vocabulary: ids 0..255 the bytes in byte order, as GPT-2's
 * byte-to-unicode strings; then the learned tokens in the order they were
 * made; then the specials <|endoftext|> (eos and bos), <|im_start|>,
 * <|im_end|> (eot), <|pad|> (padding), all control tokens.
 *
 * Deliberately not here: printing (src/cli/train_tokenizer.c), and any
 * other pre-tokenizer (the ids and file keys assume "qwen2"). */
#ifndef CGPT_TRAIN_BPE_TRAIN_H
#define CGPT_TRAIN_BPE_TRAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "core/tpool.h"

#define BPE_TRAIN_PRE "qwen2"                           /* tokenizer.ggml.pre of the result */
#define BPE_TRAIN_N_SPECIAL 4                           /* special tokens after the learned ones */
#define BPE_TRAIN_MIN_VOCAB (256 + BPE_TRAIN_N_SPECIAL) /* bytes + specials, no merges */
#define BPE_TRAIN_MAX_VOCAB (1 << 20)                   /* tokens in a trained vocabulary */
#define BPE_TRAIN_MAX_WORD_BYTES 256     /* longer pre-tokens are counted as chunks of this size */
#define BPE_TRAIN_MAX_TOKEN_BYTES 64     /* bytes of one learned token */
#define BPE_TRAIN_MAX_WORDS (1u << 27)   /* distinct pre-tokens (words) counted */
#define BPE_TRAIN_MAX_BYTES (1ull << 40) /* bytes of text one training may read */
#define BPE_TRAIN_DEFAULT_MAX_BYTES (1ull << 30) /* ... when the caller gives no limit */
#define BPE_TRAIN_MAX_LINE_BYTES (64u << 20)     /* bytes of one JSON line */
#define BPE_TRAIN_BATCH_BYTES (4u << 20)         /* text gathered before the threads count it */

/* Progress: 'stage' is "read" (done = bytes of text counted so far, total =
 * the byte limit) or "merge" (done = merges made, total = merges wanted).
 * Called from the calling thread only. */
typedef void (*BpeProgressFn)(void *ctx, const char *stage, uint64_t done, uint64_t total);

/* ------------------------------------------------------------ counting */

typedef struct BpeCounts BpeCounts;

/* Returns an owned, empty counter in *out (free with bpe_counts_free()) that
 * stops taking text after 'max_bytes' bytes (1..BPE_TRAIN_MAX_BYTES; 0 means
 * BPE_TRAIN_DEFAULT_MAX_BYTES). */
Status bpe_counts_new(BpeCounts **out, uint64_t max_bytes, Err *err);
void bpe_counts_free(BpeCounts *c);

/* Pre-tokenize 'len' bytes (any bytes) of one document and count its
 * pre-tokens. Text past the byte limit is dropped (cut at a UTF-8
 * character boundary); bpe_counts_full() then says so. STATUS_LIMIT past
 * BPE_TRAIN_MAX_WORDS distinct words. */
Status bpe_counts_add_text(BpeCounts *c, const char *text, size_t len, Err *err);

/* Count 'count' (1..UINT32_MAX) occurrences of one word as given (not
 * pre-tokenized; 1..BPE_TRAIN_MAX_WORD_BYTES bytes). For tests and tools. */
Status bpe_counts_add_word(BpeCounts *c, const char *word, size_t len, uint64_t count, Err *err);

/* Read JSON lines from 'path' and count every document in them, with the
 * threads of 'tp' (borrowed; NULL runs on the calling thread). Blank lines
 * are skipped. Errors name "path:line": a line that is not a JSON object,
 * longer than BPE_TRAIN_MAX_LINE_BYTES, without "text" or "messages", or
 * with a field of the wrong type. Stops early (STATUS_OK) when the byte
 * limit is reached. 'progress' may be NULL. */
Status bpe_counts_add_jsonl(BpeCounts *c, const char *path, TPool *tp, BpeProgressFn progress,
                            void *progress_ctx, Err *err);

uint64_t bpe_counts_n_words(const BpeCounts *c); /* distinct words */
uint64_t bpe_counts_n_bytes(const BpeCounts *c); /* bytes of text taken */
bool bpe_counts_full(const BpeCounts *c);        /* the byte limit cut the input */

/* Write every word as a line "<count>\t<bytes as lowercase hex>\n", words
 * in byte order (memcmp, shorter first on a tie). For the Python oracle. */
Status bpe_counts_dump(const BpeCounts *c, const char *path, Err *err);

/* ------------------------------------------------------------ training */

typedef struct {
    int vocab;         /* tokens in total, specials included:
                          BPE_TRAIN_MIN_VOCAB..BPE_TRAIN_MAX_VOCAB */
    uint64_t min_freq; /* stop when the best pair occurs fewer times; >= 1 */
    BpeProgressFn progress;
    void *progress_ctx;
} BpeTrainParams;

typedef struct {
    int n_tokens;          /* 256 + n_merges + BPE_TRAIN_N_SPECIAL (<= the vocab asked for) */
    char **tokens;         /* [n_tokens] GPT-2 byte-to-unicode strings, NUL-terminated */
    int32_t *types;        /* [n_tokens] TokType: 1 normal, 3 control */
    int n_merges;          /* merge r made token 256 + r */
    char **merges;         /* [n_merges] "left right" in GPT-2 strings, rank order */
    int32_t *merge_l;      /* [n_merges] left id */
    int32_t *merge_r;      /* [n_merges] right id */
    uint64_t *merge_count; /* [n_merges] the pair's count when it was merged */
    int bos, eos, eot, pad;
} BpeVocab;

/* Train on the words counted in 'c' (borrowed). Fills *v (owned: free with
 * bpe_vocab_free(), also safe after a failure). Deterministic: the result
 * depends only on the word counts. STATUS_INVALID for bad parameters. */
Status bpe_train(const BpeCounts *c, const BpeTrainParams *p, BpeVocab *v, Err *err);
void bpe_vocab_free(BpeVocab *v);

/* Write 'v' as a vocabulary-only GGUF (general.architecture "llama",
 * general.name 'name', tokenizer.ggml.* with model "gpt2" and pre "qwen2",
 * the special ids, add_bos/add_eos false, and the built-in ChatML template
 * as tokenizer.chat_template). Atomic, as gguf_writer_write(). */
Status bpe_vocab_write_gguf(const BpeVocab *v, const char *name, const char *path, Err *err);

#endif
