/* tdata.h - training data: corpus JSON lines -> fixed-length rows of
 * (tokens, targets), addressed by a global row index so that any step of any
 * rank can be rebuilt from (seed, index) alone. That is what makes --resume
 * bit-exact and N ranks equal to one rank with the same global batch.
 *
 * Pretraining ("text" lines: {"text": "..."}): every document is tokenized
 * (no BOS) and followed by the EOS token; the documents, in file order, form
 * one token stream. Row k is stream[k*T .. k*T+T) with targets shifted by one
 * (stream[k*T+1 .. k*T+T]): sequence packing with no padding.
 *
 * Chat tuning ("messages" lines, as the corpus builder writes them): each
 * conversation is rendered with the chat format; the targets are the tokens
 * of the assistant messages only (content and the end-of-turn markup the
 * template puts after it), found as the difference between the rendering up
 * to and including that message and the rendering before it with the
 * generation prompt. Conversations are shuffled once with the seed and
 * packed whole into rows of T tokens; the rest of a row is padding (target
 * -1). A conversation longer than T is cut to T tokens (counted in
 * tdata_n_truncated()).
 *
 * Order: the rows of epoch e are visited in a permutation drawn from
 * (seed, e); global index g maps to epoch g / n_rows.
 *
 * Not here: batching over ranks and steps (trainer.c decides which global
 * indices a step uses). */
#ifndef CGPT_TRAIN_TDATA_H
#define CGPT_TRAIN_TDATA_H

#include <stdint.h>

#include "chat/chat.h"
#include "core/err.h"
#include "tokenizer/tokenizer.h"

#define TDATA_MAX_LINE_BYTES (8u << 20)  /* one JSON line */
#define TDATA_MAX_FILE_BYTES (4ull << 30) /* one corpus file */
#define TDATA_MAX_TOKENS (1ull << 31)     /* tokens in the whole stream */

typedef struct TData TData;

/* Pretraining data from JSON-lines files of {"text": ...}. Errors name
 * file:line. Returns owned (tdata_free). 'T' is the row length. */
Status tdata_load_text(TData **out, const char *const *paths, int n_paths, const Tokenizer *tok,
                       int T, Err *err);

/* Chat-tuning data from JSON-lines files of {"messages": [...]}, rendered
 * with 'fmt'. Errors name file:line. Returns owned (tdata_free). */
Status tdata_load_chat(TData **out, const char *const *paths, int n_paths, const ChatFormat *fmt,
                       const Tokenizer *tok, int T, uint64_t seed, Err *err);

void tdata_free(TData *d);

long tdata_n_rows(const TData *d);
/* Tokens in the data (stream length, or the sum of conversation lengths). */
uint64_t tdata_n_tokens(const TData *d);
/* Targets counted in all rows (assistant tokens for chat data). */
uint64_t tdata_n_targets(const TData *d);
long tdata_n_truncated(const TData *d);
/* FNV-1a over the rows' tokens and targets: a resume checks it is fed the
 * same data. */
uint64_t tdata_hash(const TData *d);

/* Fill tokens[T] and targets[T] with the row at global index 'g' in the
 * visiting order drawn from 'seed'. */
void tdata_row(TData *d, uint64_t g, uint64_t seed, int32_t *tokens, int32_t *targets);

#endif
