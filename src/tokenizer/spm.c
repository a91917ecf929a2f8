/* spm.c - SentencePiece-style BPE by scores (Llama 2, Mistral, Gemma).
 *
 * The fragment (spaces already replaced by U+2581, space prefix already
 * added by the caller) is split into characters: each well-formed UTF-8
 * character is one symbol, each byte of an ill-formed sequence is a symbol
 * of its own. Adjacent pairs whose concatenation is a vocabulary piece go
 * into a heap ordered by the piece's score (highest first, then leftmost);
 * the best pair is merged and the merged symbol's new neighbours are pushed,
 * as sentencepiece's bpe_model.cc and llama.cpp do. Only normal and
 * user-defined pieces take part (sentencepiece keeps control, unknown and
 * byte pieces out of its piece table; unused pieces are left out too).
 *
 * A final symbol that is not a piece falls back to the <0xNN> byte tokens,
 * one per byte, when the vocabulary has byte tokens (a byte without one
 * becomes the unknown token, or nothing without one); else the whole
 * symbol becomes the unknown token (nothing when there is none). */
#include <stdlib.h>

#include "tokenizer/tok_impl.h"

typedef struct {
    uint32_t start, len; /* len 0: merged away */
    int32_t prev, next;
} Sym;

/* Merge candidates in the queue (tok_heap.h): key = -score (best score
 * first), payload a = byte size of the merged piece (a stale candidate is
 * one whose symbols changed size since it was queued). */
typedef struct {
    const Tokenizer *t;
    const char *s;
    Sym *sym;
    TokPair *heap;
    size_t n_heap, cap_heap;
    bool oom;
} Work;

static int piece_id(const Tokenizer *t, const char *s, size_t len) {
    if (len > t->max_token_len)
        return -1;
    int id = tok_lookup(t, s, len);
    return id >= 0 && (t->flags[id] & TF_MERGEABLE) ? id : -1;
}

static void try_pair(Work *w, int32_t l, int32_t r) {
    if (l < 0 || r < 0)
        return;
    uint32_t size = w->sym[l].len + w->sym[r].len;
    int id = piece_id(w->t, w->s + w->sym[l].start, size);
    if (id < 0)
        return;
    if (!tok_heap_push(&w->heap, &w->n_heap, &w->cap_heap,
                       (TokPair){-(double)w->t->score[id], l, r, (int32_t)size, 0, 0}))
        w->oom = true;
}

static void emit_symbol(const Tokenizer *t, const char *s, const Sym *y, TokOut *o) {
    int id = piece_id(t, s + y->start, y->len);
    if (id >= 0) {
        tok_out_push(o, id);
        return;
    }
    if (!t->has_byte_tokens) {
        if (t->unk >= 0)
            tok_out_push(o, t->unk);
        return;
    }
    for (uint32_t j = 0; j < y->len; j++) {
        int b = t->byte_tok[(uint8_t)s[y->start + j]];
        if (b < 0)
            b = t->unk;
        if (b >= 0)
            tok_out_push(o, b);
    }
}

Status spm_encode(const Tokenizer *t, const char *s, size_t len, TokOut *o, Err *err) {
    if (len == 0)
        return STATUS_OK;
    if (len > INT32_MAX)
        return err_set(err, STATUS_LIMIT, "spm: fragment of %zu bytes", len);
    Work w = {.t = t, .s = s};
    w.sym = malloc(len * sizeof *w.sym);
    if (!w.sym)
        return err_set(err, STATUS_NOMEM, "spm: out of memory for %zu symbols", len);
    int32_t n = 0;
    for (size_t i = 0; i < len;) {
        int bad;
        bool incomplete;
        int k = tok_utf8_char((const uint8_t *)s + i, len - i, &bad, &incomplete);
        if (k == 0)
            k = 1;
        w.sym[n] = (Sym){.start = (uint32_t)i, .len = (uint32_t)k, .prev = n - 1, .next = -1};
        if (n > 0)
            w.sym[n - 1].next = n;
        n++;
        i += (size_t)k;
    }
    for (int32_t i = 1; i < n; i++)
        try_pair(&w, i - 1, i);
    while (w.n_heap > 0 && !w.oom) {
        TokPair p = tok_heap_pop(w.heap, &w.n_heap);
        Sym *l = &w.sym[p.left], *r = &w.sym[p.right];
        if (l->len == 0 || r->len == 0 || l->len + r->len != (uint32_t)p.a)
            continue;
        l->len += r->len;
        r->len = 0;
        l->next = r->next;
        if (r->next >= 0)
            w.sym[r->next].prev = p.left;
        try_pair(&w, l->prev, p.left);
        try_pair(&w, p.left, l->next);
    }
    Status st = STATUS_OK;
    if (w.oom)
        st = err_set(err, STATUS_NOMEM, "spm: out of memory merging %zu bytes", len);
    else
        for (int32_t i = 0; i >= 0; i = w.sym[i].next)
            emit_symbol(t, s, &w.sym[i], o);
    free(w.heap);
    free(w.sym);
    return st;
}
