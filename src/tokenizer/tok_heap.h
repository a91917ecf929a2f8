/* tok_heap.h - the merge queue of both BPE kinds (internal): a binary
 * min-heap of candidate merges, best first by key, then leftmost first.
 * Byte-level BPE keys by merge rank (lowest first), SentencePiece-style BPE
 * by -score (highest score first); both keys are exact in a double. The
 * payload fields mean what the caller says. */
#ifndef CGPT_TOKENIZER_TOK_HEAP_H
#define CGPT_TOKENIZER_TOK_HEAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

typedef struct {
    double key;          /* smaller pops first */
    int32_t left, right; /* symbol indices; ties pop the smaller left first */
    int32_t a, b, c;     /* payload */
} TokPair;

static inline bool tok_pair_before(const TokPair *x, const TokPair *y) {
    return x->key < y->key || (x->key == y->key && x->left < y->left);
}

/* Push p onto heap[0..*n), growing the owned array (*cap entries) as
 * needed. Returns false when memory runs out (the heap is unchanged). */
static inline bool tok_heap_push(TokPair **heap, size_t *n, size_t *cap, TokPair p) {
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 64;
        TokPair *q = realloc(*heap, nc * sizeof *q);
        if (!q)
            return false;
        *heap = q;
        *cap = nc;
    }
    TokPair *h = *heap;
    size_t i = (*n)++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!tok_pair_before(&p, &h[parent]))
            break;
        h[i] = h[parent];
        i = parent;
    }
    h[i] = p;
    return true;
}

/* Remove and return the best pair; *n must be > 0. */
static inline TokPair tok_heap_pop(TokPair *h, size_t *n) {
    TokPair top = h[0], last = h[--*n];
    size_t i = 0, m = *n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= m)
            break;
        if (c + 1 < m && tok_pair_before(&h[c + 1], &h[c]))
            c++;
        if (!tok_pair_before(&h[c], &last))
            break;
        h[i] = h[c];
        i = c;
    }
    if (m)
        h[i] = last;
    return top;
}

#endif
