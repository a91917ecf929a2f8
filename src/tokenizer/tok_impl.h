/* tok_impl.h - the Tokenizer's insides, shared by tokenizer.c (load, special
 * tokens, decoding), pretok.c (regex pre-tokenizers), bpe.c (byte-level BPE)
 * spm.c (SentencePiece-style BPE by scores) and wordpiece.c (BERT's
 * WordPiece). Not a public header. */
#ifndef CGPT_TOKENIZER_TOK_IMPL_H
#define CGPT_TOKENIZER_TOK_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "tokenizer/tok_heap.h"
#include "tokenizer/tokenizer.h"

#define TOK_MAX_REGEXES 8 /* regexes one pre-tokenizer applies in sequence */

/* Per-token flags (Tokenizer.flags). */
enum {
    TF_SPECIAL = 1 << 0,   /* control / unknown: rendered only with render_special */
    TF_MATCHABLE = 1 << 1, /* found in text by the special-token partition */
    TF_USER = 1 << 2,      /* user-defined: matched even without parse_special */
    TF_MERGEABLE = 1 << 3, /* SPM: may be produced by merges (normal, user-defined) */
    TF_EOG = 1 << 4,       /* ends generation */
};

/* Growable id output of one tok_encode() call: counts past 'cap' without
 * writing, so the caller can be told how many ids the text needs. */
typedef struct {
    int32_t *ids;
    size_t cap;
    size_t n;
} TokOut;

static inline void tok_out_push(TokOut *o, int32_t id) {
    if (o->n < o->cap)
        o->ids[o->n] = id;
    o->n++;
}

/* Compiled pre-tokenizer (pretok.c). */
typedef struct Pretok Pretok;

/* Called once per pre-token, in text order; returns non-OK to stop. */
typedef Status (*PretokFn)(void *ctx, const char *s, size_t len);

/* Compile the regexes of pre-tokenizer 'name' (tokenizer.ggml.pre).
 * STATUS_UNSUPPORTED naming the value when unknown. *ignore_merges and
 * *add_bos get llama.cpp's defaults for that pre-tokenizer. */
Status pretok_new(Pretok **out, const char *name, size_t name_len, bool *ignore_merges,
                  bool *add_bos, Err *err);
void pretok_free(Pretok *p);
/* Split 'len' bytes (any bytes) into pre-tokens: maximal valid UTF-8 runs are
 * split by the regexes, each invalid byte is a pre-token of its own. */
Status pretok_split(const Pretok *p, const char *s, size_t len, PretokFn fn, void *ctx, Err *err);

struct Tokenizer {
    TokKind kind;
    int n_vocab;
    /* token strings as stored: text_buf[text_off[i] .. text_off[i+1]) */
    char *text_buf;
    uint32_t *text_off;
    /* decoded pieces (what tok_piece_bytes writes with render_special) */
    char *piece_buf;
    uint32_t *piece_off;
    uint32_t max_piece; /* longest piece, <= TOK_MAX_PIECE */
    uint8_t *type; /* TokType */
    uint8_t *flags;
    float *score;
    uint32_t max_token_len;

    /* token string -> id: open addressing, slot = id + 1, 0 empty */
    uint32_t *hslots;
    uint32_t hmask;

    /* BPE merges: (left id, right id) -> rank and merged id */
    uint64_t *mkeys; /* UINT64_MAX empty */
    uint32_t *mrank;
    int32_t *mres;
    uint64_t mmask;
    bool ignore_merges;
    Pretok *pre;

    /* BPE: id of the byte-level character for each byte; SPM: <0xNN>. -1 none */
    int32_t byte_tok[256];
    bool has_byte_tokens;

    /* special-token trie over TF_MATCHABLE token strings */
    struct TokTrieNode {
        int32_t child, sibling, id;
        uint8_t byte;
    } * trie;
    uint32_t n_trie;
    int32_t trie_root[256]; /* first-level node per byte, -1 none */

    int bos, eos, eot, eom, unk, pad;
    bool add_bos, add_eos, add_space_prefix;
    bool wpm_lower; /* WordPiece: lower case and strip accents (an uncased vocabulary) */
};

static inline const char *tok_str(const Tokenizer *t, int id, size_t *len) {
    *len = t->text_off[id + 1] - t->text_off[id];
    return t->text_buf + t->text_off[id];
}

/* Exact lookup of a token string; -1 when absent. */
int tok_lookup(const Tokenizer *t, const char *s, size_t len);

/* Byte-level BPE of one pre-token (bpe.c). */
void bpe_encode_word(const Tokenizer *t, const char *s, size_t len, TokOut *o, void *scratch);
/* SPM of one text fragment, spaces already escaped to U+2581 (spm.c). */
Status spm_encode(const Tokenizer *t, const char *s, size_t len, TokOut *o, Err *err);

/* WordPiece of one plain fragment (wordpiece.c); whether the vocabulary
 * has capitals (then case and accents are kept). */
Status wpm_encode(const Tokenizer *t, const char *s, size_t len, TokOut *o, Err *err);
bool wpm_vocab_is_cased(const Tokenizer *t);

/* Scratch for bpe_encode_word, grown as needed; one per encode call. */
typedef struct {
    void *sym;
    size_t sym_cap;
    TokPair *heap; /* the merge queue's storage (tok_heap.h) */
    size_t heap_cap;
    char *enc; /* byte-level encoded word for ignore_merges lookups */
    size_t enc_cap;
    bool oom;
} BpeScratch;
void bpe_scratch_free(BpeScratch *s);

/* GPT-2's byte -> unicode code point map, and its inverse (-1 when the code
 * point is not one of the 256). */
uint32_t bpe_byte_to_cp(uint8_t b);
int bpe_cp_to_byte(uint32_t cp);

/* UTF-8: length (1..4) of the well-formed character at s[0..n), or 0 when
 * s[0] does not start one; then *bad gets the length of the maximal subpart
 * (1..3) to replace by one U+FFFD, or, with *incomplete set, the bytes are a
 * valid prefix cut short by n. */
int tok_utf8_char(const uint8_t *s, size_t n, int *bad, bool *incomplete);
/* Encode code point cp (<= 0x10FFFF) into out; returns bytes written. */
int tok_utf8_put(uint32_t cp, char *out);

#endif
