/* bpe.c - byte-level BPE (GPT-2, Llama 3, Qwen) over one pre-token.
 *
 * Every byte of the pre-token starts as one symbol: the token whose string is
 * GPT-2's unicode stand-in for that byte. Adjacent pairs that the merge list
 * names go into a binary heap ordered by (rank, position); the lowest-rank,
 * leftmost pair is merged first, and the merged symbol's new neighbours are
 * pushed. Stale heap entries (a side already merged away or changed) are
 * skipped when popped. That is O(n log n) in the pre-token's length, so a
 * megabyte without spaces is fine.
 *
 * With ignore_merges (Llama 3, as Hugging Face's "ignore_merges": true) a
 * pre-token that is itself in the vocabulary becomes that token directly.
 *
 * Deliberately not here: pre-tokenization (pretok.c), special tokens
 * (tokenizer.c). A byte whose stand-in is not in the vocabulary (only in
 * tiny or broken vocabularies) produces no id, as in llama.cpp. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_heap.h"
#include "tokenizer/tok_impl.h"

/* GPT-2 bytes_to_unicode(): printable Latin-1 bytes stand for themselves;
 * the other 68 bytes, in order, get code points 256, 257, ... */
static bool byte_printable(unsigned b) {
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
}

uint32_t bpe_byte_to_cp(uint8_t b) {
    if (byte_printable(b))
        return b;
    if (b <= 0x20)
        return 256u + b;
    if (b >= 0x7F && b <= 0xA0)
        return 256u + 33u + (b - 0x7Fu);
    return 256u + 33u + 34u; /* 0xAD */
}

int bpe_cp_to_byte(uint32_t cp) {
    if (cp < 256)
        return byte_printable(cp) ? (int)cp : -1;
    if (cp <= 256 + 32)
        return (int)(cp - 256);
    if (cp <= 256 + 33 + 33)
        return (int)(0x7F + (cp - 256 - 33));
    if (cp == 256 + 33 + 34)
        return 0xAD;
    return -1;
}

typedef struct {
    int32_t id; /* current token, -1 for a byte without one */
    int32_t prev, next;
    uint8_t dead;
} Sym;

/* Merge candidates in the queue: key = rank, payload a = left token id,
 * b = right token id, c = merged token id (a stale candidate is one whose
 * symbols changed since it was queued). */

static bool grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap)
        return true;
    size_t n = *cap ? *cap : 64;
    while (n < need)
        n *= 2;
    void *q = realloc(*p, n * elem);
    if (!q)
        return false;
    *p = q;
    *cap = n;
    return true;
}

void bpe_scratch_free(BpeScratch *s) {
    free(s->sym);
    free(s->heap);
    free(s->enc);
    memset(s, 0, sizeof *s);
}

static bool merge_find(const Tokenizer *t, int32_t l, int32_t r, uint32_t *rank, int32_t *res) {
    if (!t->mkeys)
        return false;
    uint64_t key = ((uint64_t)(uint32_t)l << 32) | (uint32_t)r;
    uint64_t h = (key * 0x9E3779B97F4A7C15ull) >> 17;
    for (uint64_t i = h & t->mmask;; i = (i + 1) & t->mmask) {
        if (t->mkeys[i] == UINT64_MAX)
            return false;
        if (t->mkeys[i] == key) {
            *rank = t->mrank[i];
            *res = t->mres[i];
            return true;
        }
    }
}

typedef struct {
    Sym *sym;
    size_t n_heap;
    BpeScratch *sc;
} Work;

static void try_pair(const Tokenizer *t, Work *w, int32_t l, int32_t r) {
    if (l < 0 || r < 0)
        return;
    int32_t lid = w->sym[l].id, rid = w->sym[r].id;
    if (lid < 0 || rid < 0)
        return;
    uint32_t rank;
    int32_t res;
    if (merge_find(t, lid, rid, &rank, &res) &&
        !tok_heap_push(&w->sc->heap, &w->n_heap, &w->sc->heap_cap,
                       (TokPair){(double)rank, l, r, lid, rid, res}))
        w->sc->oom = true;
}

void bpe_encode_word(const Tokenizer *t, const char *s, size_t len, TokOut *o, void *scratch) {
    BpeScratch *sc = scratch;
    const uint8_t *u = (const uint8_t *)s;
    if (len == 0)
        return;
    if (len == 1) {
        if (t->byte_tok[u[0]] >= 0)
            tok_out_push(o, t->byte_tok[u[0]]);
        return;
    }
    if (t->ignore_merges && len <= t->max_token_len) {
        if (!grow((void **)&sc->enc, &sc->enc_cap, 2 * len, 1)) {
            sc->oom = true;
            return;
        }
        size_t k = 0;
        for (size_t i = 0; i < len; i++)
            k += (size_t)tok_utf8_put(bpe_byte_to_cp(u[i]), sc->enc + k);
        int id = tok_lookup(t, sc->enc, k);
        if (id >= 0) {
            tok_out_push(o, id);
            return;
        }
    }
    if (len > INT32_MAX || !grow(&sc->sym, &sc->sym_cap, len, sizeof(Sym))) {
        sc->oom = true;
        return;
    }
    Work w = {.sym = sc->sym, .sc = sc};
    for (size_t i = 0; i < len; i++) {
        w.sym[i] = (Sym){.id = t->byte_tok[u[i]],
                         .prev = (int32_t)i - 1,
                         .next = i + 1 < len ? (int32_t)i + 1 : -1};
    }
    for (size_t i = 1; i < len; i++)
        try_pair(t, &w, (int32_t)i - 1, (int32_t)i);
    while (w.n_heap > 0 && !sc->oom) {
        TokPair p = tok_heap_pop(sc->heap, &w.n_heap);
        Sym *l = &w.sym[p.left], *r = &w.sym[p.right];
        if (l->dead || r->dead || l->id != p.a || r->id != p.b || l->next != p.right)
            continue;
        l->id = p.c;
        l->next = r->next;
        if (r->next >= 0)
            w.sym[r->next].prev = p.left;
        r->dead = 1;
        try_pair(t, &w, l->prev, p.left);
        try_pair(t, &w, p.left, l->next);
    }
    for (int32_t i = 0; i >= 0; i = w.sym[i].next)
        if (w.sym[i].id >= 0)
            tok_out_push(o, w.sym[i].id);
}
