/* tokenizer.h - text <-> token ids, from a GGUF file's tokenizer metadata.
 *
 * Kinds (tokenizer.ggml.model):
 *   "gpt2"  byte-level BPE with merge ranks (tokenizer.ggml.merges) and a
 *           pre-tokenizer chosen by tokenizer.ggml.pre (default/gpt-2,
 *           llama-bpe, qwen2, smollm, deepseek-llm, starcoder, falcon,
 *           mpt/gpt-neox, ...; regexes as the models define them, via PCRE2)
 *   "llama" SentencePiece-style BPE by scores (tokenizer.ggml.scores) with
 *           byte fallback tokens <0xNN>, the U+2581 space marker and
 *           add_space_prefix (Llama 2, Mistral, Phi-3, TinyLlama, Gemma)
 *   "bert"  WordPiece (BERT and the embedding models built on it): the
 *           BasicTokenizer's cleaning, CJK splitting, lower case and accent
 *           stripping for uncased vocabularies, punctuation splitting, then
 *           greedy longest-match pieces; [CLS] ... [SEP] are its BOS / EOS
 *           (tok_add_bos / tok_add_eos true by default). wordpiece.c.
 * Special tokens: bos/eos/eot/eom/padding/unknown ids, add_bos_token /
 * add_eos_token, token types (tokenizer.ggml.token_type: 1 normal,
 * 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte).
 *
 * tok_load() validates the vocabulary against the file and copies what it
 * needs: the Tokenizer does not borrow the GGUF. Lying vocabularies are
 * STATUS_FORMAT errors naming the key and index: ids out of range, merges
 * naming unknown tokens, malformed <0xNN> byte tokens, special ids >=
 * n_vocab, arrays of different lengths, duplicate token strings where the
 * format needs them unique.
 *
 * A Tokenizer is immutable after load and safe to share between threads. */
#ifndef CGPT_TOKENIZER_TOKENIZER_H
#define CGPT_TOKENIZER_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "gguf/gguf.h"

#define TOK_MAX_VOCAB (1 << 22)   /* tokens in a vocabulary */
#define TOK_MAX_TOKEN_BYTES 65536 /* bytes of one token string */
/* Bytes one token decodes to (tok_piece()), checked at load: a longer
 * token is a STATUS_LIMIT error naming its id, its length and this limit.
 * Real vocabularies carry whitespace and punctuation runs of a few hundred
 * bytes (300+ spaces); 4096 leaves room for those while keeping fixed-size
 * buffers fixed: the tokenizer hands out views of its decoded pieces (no
 * copy, no piece-sized stack buffer anywhere in it), so the only buffers this
 * sizes are the callers' streamed-text buffers (TOK_MAX_STREAM_OUT per
 * push, heap-allocated once per sequence). The full TOK_MAX_TOKEN_BYTES would
 * make every such buffer 192 KiB for no vocabulary that exists. */
#define TOK_MAX_PIECE 4096
/* Bytes one tok_stream_push() or tok_stream_flush() writes at most: a piece
 * plus the U+FFFD replacements of a pending partial character (also checked
 * at load: a piece whose ill-formed bytes would expand past this is refused). */
#define TOK_MAX_STREAM_OUT (TOK_MAX_PIECE + 16)
#define TOK_MAX_TEXT (1u << 30) /* bytes of text one tok_encode() accepts */

typedef enum { TOK_KIND_BPE, TOK_KIND_SPM, TOK_KIND_WPM } TokKind;

typedef enum {
    TOK_TYPE_NORMAL = 1,
    TOK_TYPE_UNKNOWN = 2,
    TOK_TYPE_CONTROL = 3,
    TOK_TYPE_USER_DEFINED = 4,
    TOK_TYPE_UNUSED = 5,
    TOK_TYPE_BYTE = 6,
} TokType;

typedef struct Tokenizer Tokenizer;

/* Build the tokenizer described by 'g' (a model file or a vocabulary-only
 * GGUF). Returns an owned tokenizer in *out (free with tok_free()); on
 * failure non-OK, 'err' filled, *out = NULL. STATUS_UNSUPPORTED for an
 * unknown tokenizer.ggml.model or tokenizer.ggml.pre. */
Status tok_load(Tokenizer **out, const GGUF *g, Err *err);
void tok_free(Tokenizer *t);

TokKind tok_kind(const Tokenizer *t);
int tok_n_vocab(const Tokenizer *t);
/* Special ids; -1 when the model has none. */
int tok_bos(const Tokenizer *t);
int tok_eos(const Tokenizer *t);
int tok_eot(const Tokenizer *t); /* end of turn (<|eot_id|>, <|im_end|>, <end_of_turn>) */
bool tok_add_bos(const Tokenizer *t);
bool tok_add_eos(const Tokenizer *t);
/* True for tokens that end generation: eos, eot, eom and the other
 * end-of-generation tokens the vocabulary declares or llama.cpp knows by
 * text (<|im_end|>, <|eot_id|>, <|end|>, <end_of_turn>, <|endoftext|>...). */
bool tok_is_eog(const Tokenizer *t, int id);
TokType tok_type(const Tokenizer *t, int id);
/* The token's string as stored in the vocabulary (view valid until
 * tok_free; not NUL-terminated). */
const char *tok_text(const Tokenizer *t, int id, size_t *len);
/* Find a token by its exact vocabulary string; -1 when absent. */
int tok_find(const Tokenizer *t, const char *s, size_t len);

typedef struct {
    bool add_bos;       /* prepend BOS (callers pass tok_add_bos(t) for the model's default) */
    bool add_eos;       /* append EOS */
    bool parse_special; /* recognise control / user-defined token strings in the text */
    /* With parse_special: when non-NULL, a control (or unknown) token
     * string is only recognised where special_ok[i] != 0 for every byte i
     * it covers (chat templates mark their own markup 1 and user content 0,
     * so user text never becomes a control token). User-defined tokens are
     * recognised everywhere, mask or not (llama.cpp, Hugging Face). */
    const uint8_t *special_ok;
} TokEncodeOpts;

/* Tokenize 'len' bytes of 'text' (any bytes: invalid UTF-8 is encoded as
 * the tokenizer's byte tokens, never rejected). Writes at most 'cap' ids;
 * *n gets the count. Needs at most len + 3 ids. STATUS_LIMIT when 'cap' is
 * too small or len > TOK_MAX_TEXT. Linear in len (no quadratic blowup on
 * 1 MB without spaces). */
Status tok_encode(const Tokenizer *t, const char *text, size_t len, const TokEncodeOpts *o,
                  int32_t *ids, size_t cap, size_t *n, Err *err);

/* The bytes token 'id' stands for in decoded text: byte-level BPE maps its
 * unicode-escaped bytes back, SPM turns U+2581 into spaces and <0xNN> into
 * the byte. Control tokens give their text only when 'render_special' (else
 * nothing). Returns a view valid until tok_free() (not NUL-terminated; may
 * be a partial UTF-8 sequence) with *len <= TOK_MAX_PIECE bytes; NULL and
 * *len = 0 for an id out of range. */
const char *tok_piece(const Tokenizer *t, int id, bool render_special, size_t *len);
/* tok_piece() copied into buf (cap >= TOK_MAX_PIECE, or >= tok_max_piece(t)).
 * Returns the byte count; -1 for an id out of range. */
int tok_piece_bytes(const Tokenizer *t, int id, bool render_special, char *buf);
/* Length of the longest piece of this vocabulary (<= TOK_MAX_PIECE). */
size_t tok_max_piece(const Tokenizer *t);

/* Decode a whole sequence into buf (cap bytes); returns the length needed
 * (may exceed cap: then the text is cut at cap). SPM removes the space the
 * encoder's add_space_prefix added before the first token, so
 * decode(encode(s)) == s for valid UTF-8 s. Invalid UTF-8 stays as bytes. */
size_t tok_decode(const Tokenizer *t, const int32_t *ids, size_t n, bool render_special, char *buf,
                  size_t cap);

/* Incremental, UTF-8-safe decoding for streaming: push one token at a time
 * and get only complete characters; bytes that can never complete a valid
 * character come out as U+FFFD. The SPM leading-space rule applies to the
 * first token pushed after init. */
typedef struct {
    const Tokenizer *t;
    bool render_special;
    bool first;
    unsigned char pend[8]; /* bytes of an incomplete character */
    int n_pend;
} TokStream;

void tok_stream_init(TokStream *s, const Tokenizer *t, bool render_special);
/* Appends complete text for token 'id' to out (needs cap >=
 * TOK_MAX_STREAM_OUT; text that does not fit is dropped); returns bytes
 * written. */
size_t tok_stream_push(TokStream *s, int id, char *out, size_t cap);
/* End of stream: a dangling partial character becomes U+FFFD. */
size_t tok_stream_flush(TokStream *s, char *out, size_t cap);

#endif
