/* bpe_train.c - byte-level BPE training: counting pre-tokens, merging pairs,
 * writing the vocabulary as GGUF. The merge rule is in bpe_train.h.
 *
 * Counting: documents are gathered into a batch of about
 * BPE_TRAIN_BATCH_BYTES; the pool's threads then split the batch by bytes,
 * each counting its documents into its own word map (no locks); after each
 * input file the per-thread maps are folded into one. Word order in the maps
 * depends on the thread count, the training result does not (it depends
 * only on the counts).
 *
 * Merging: words are arrays of token ids, rewritten in place. For every pair
 * the trainer keeps its current count and a list of the words it was seen
 * in (appended to whenever the pair gains an occurrence in a word, never
 * pruned; a word listed twice or no longer holding the pair is skipped when
 * the list is walked). A max-heap holds (count, left, right) entries; an
 * entry may be stale. Invariant: every candidate pair with count c > 0 has
 * an entry with count >= c in the heap. Counts of existing pairs only fall,
 * except pairs with the merged token on one side, which are pushed with
 * their exact count after each step. So the top entry whose count equals
 * its pair's current count is the best pair (ties by pair order, which the
 * heap order includes); an entry above its pair's count is re-pushed with
 * the exact count, one below it is dropped (a newer exact entry exists).
 *
 * Deliberately not here: printing, and the choice of files (src/cli). */
#include "train/bpe_train.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat/chat.h"
#include "gguf/gguf_writer.h"
#include "tokenizer/tok_impl.h"

#define BPE_PROGRESS_EVERY 256    /* merges between progress calls */
#define BPE_READ_CHUNK (1u << 20) /* bytes read from a JSONL file at a time */

static const char *const SPECIAL_TEXT[BPE_TRAIN_N_SPECIAL] = {"<|endoftext|>", "<|im_start|>",
                                                              "<|im_end|>", "<|pad|>"};

/* Grow *p (elements of 'elem' bytes, *cap of them) to hold 'need'. */
static bool grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap)
        return true;
    size_t n = *cap ? *cap : 16;
    while (n < need) {
        if (n > SIZE_MAX / 2 / elem)
            return false;
        n *= 2;
    }
    void *q = realloc(*p, n * elem);
    if (!q)
        return false;
    *p = q;
    *cap = n;
    return true;
}

static uint64_t hash_bytes(const uint8_t *s, size_t n) {
    uint64_t h = 0x243F6A8885A308D3ull ^ (n * 0x9E3779B97F4A7C15ull);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        h = (h ^ w) * 0xFF51AFD7ED558CCDull;
        h ^= h >> 32;
    }
    uint64_t w = 0;
    for (size_t k = 0; i + k < n; k++)
        w |= (uint64_t)s[i + k] << (8 * k);
    h = (h ^ w) * 0xC4CEB9FE1A85EC53ull;
    return h ^ (h >> 29);
}

/* ============================================================ word map */

typedef struct {
    uint64_t off; /* into buf */
    uint64_t count;
    uint32_t len;
    uint32_t hash;
} WordEnt;

/* Distinct byte strings with counts: an arena of bytes, entries in insertion
 * order, open-addressing slots (entry index + 1, 0 empty). */
typedef struct {
    uint8_t *buf;
    size_t n_buf, cap_buf;
    WordEnt *ent;
    size_t n_ent, cap_ent;
    uint32_t *slot;
    size_t mask; /* slots - 1; 0 before the first insert */
} WordMap;

static void wm_free(WordMap *m) {
    free(m->buf);
    free(m->ent);
    free(m->slot);
    memset(m, 0, sizeof *m);
}

static bool wm_rehash(WordMap *m, size_t n_slots) {
    uint32_t *s = calloc(n_slots, sizeof *s);
    if (!s)
        return false;
    for (size_t i = 0; i < m->n_ent; i++) {
        size_t j = m->ent[i].hash & (n_slots - 1);
        while (s[j])
            j = (j + 1) & (n_slots - 1);
        s[j] = (uint32_t)(i + 1);
    }
    free(m->slot);
    m->slot = s;
    m->mask = n_slots - 1;
    return true;
}

static Status wm_add(WordMap *m, const uint8_t *w, size_t len, uint64_t count, Err *err) {
    uint32_t h = (uint32_t)hash_bytes(w, len);
    if (m->mask) {
        for (size_t j = h & m->mask; m->slot[j]; j = (j + 1) & m->mask) {
            WordEnt *e = &m->ent[m->slot[j] - 1];
            if (e->hash == h && e->len == len && memcmp(m->buf + e->off, w, len) == 0) {
                e->count += count;
                return STATUS_OK;
            }
        }
    }
    if (m->n_ent >= BPE_TRAIN_MAX_WORDS)
        return err_set(err, STATUS_LIMIT, "more than %u distinct pre-tokens (BPE_TRAIN_MAX_WORDS)",
                       BPE_TRAIN_MAX_WORDS);
    if ((m->n_ent + 1) * 2 > m->mask + 1 && !wm_rehash(m, m->mask ? 2 * (m->mask + 1) : 1024))
        return err_set(err, STATUS_NOMEM, "out of memory for %zu distinct pre-tokens", m->n_ent);
    if (!grow((void **)&m->buf, &m->cap_buf, m->n_buf + len, 1) ||
        !grow((void **)&m->ent, &m->cap_ent, m->n_ent + 1, sizeof *m->ent))
        return err_set(err, STATUS_NOMEM, "out of memory for %zu distinct pre-tokens", m->n_ent);
    memcpy(m->buf + m->n_buf, w, len);
    m->ent[m->n_ent] = (WordEnt){.off = m->n_buf, .count = count, .len = (uint32_t)len, .hash = h};
    m->n_buf += len;
    size_t j = h & m->mask;
    while (m->slot[j])
        j = (j + 1) & m->mask;
    m->slot[j] = (uint32_t)(++m->n_ent);
    return STATUS_OK;
}

/* ============================================================ counting */

typedef struct {
    WordMap m;
    Status st;
    Err err;
} Shard;

struct BpeCounts {
    Pretok *pre;
    uint64_t max_bytes, n_bytes;
    bool full;
    WordMap words;
    /* the batch being gathered: documents back to back, doc_end[i] is the
     * end offset of document i */
    char *batch;
    size_t n_batch, cap_batch;
    size_t *doc_end;
    size_t n_docs, cap_docs;
    Shard *shard; /* [n_shard] per-thread maps, used by bpe_counts_add_jsonl */
    int n_shard;
};

Status bpe_counts_new(BpeCounts **out, uint64_t max_bytes, Err *err) {
    *out = NULL;
    if (max_bytes > BPE_TRAIN_MAX_BYTES)
        return err_set(err, STATUS_INVALID,
                       "byte limit %" PRIu64 " too large (BPE_TRAIN_MAX_BYTES %llu)", max_bytes,
                       BPE_TRAIN_MAX_BYTES);
    BpeCounts *c = calloc(1, sizeof *c);
    if (!c)
        return err_set(err, STATUS_NOMEM, "out of memory");
    c->max_bytes = max_bytes ? max_bytes : BPE_TRAIN_DEFAULT_MAX_BYTES;
    bool ignore_merges, add_bos;
    Status st =
        pretok_new(&c->pre, BPE_TRAIN_PRE, strlen(BPE_TRAIN_PRE), &ignore_merges, &add_bos, err);
    if (st != STATUS_OK) {
        free(c);
        return st;
    }
    *out = c;
    return STATUS_OK;
}

static void free_shards(BpeCounts *c) {
    for (int i = 0; i < c->n_shard; i++)
        wm_free(&c->shard[i].m);
    free(c->shard);
    c->shard = NULL;
    c->n_shard = 0;
}

void bpe_counts_free(BpeCounts *c) {
    if (!c)
        return;
    pretok_free(c->pre);
    wm_free(&c->words);
    free(c->batch);
    free(c->doc_end);
    free_shards(c);
    free(c);
}

uint64_t bpe_counts_n_words(const BpeCounts *c) { return c->words.n_ent; }
uint64_t bpe_counts_n_bytes(const BpeCounts *c) { return c->n_bytes; }
bool bpe_counts_full(const BpeCounts *c) { return c->full; }

Status bpe_counts_add_word(BpeCounts *c, const char *word, size_t len, uint64_t count, Err *err) {
    if (len == 0 || len > BPE_TRAIN_MAX_WORD_BYTES)
        return err_set(err, STATUS_INVALID, "word of %zu bytes (1..%d, BPE_TRAIN_MAX_WORD_BYTES)",
                       len, BPE_TRAIN_MAX_WORD_BYTES);
    if (count == 0 || count > UINT32_MAX)
        return err_set(err, STATUS_INVALID, "word count %" PRIu64 " out of range (1..%u)", count,
                       UINT32_MAX);
    return wm_add(&c->words, (const uint8_t *)word, len, count, err);
}

typedef struct {
    WordMap *m;
    Err *err;
} CountCtx;

/* One pre-token: counted whole, or as BPE_TRAIN_MAX_WORD_BYTES chunks. */
static Status count_pretoken(void *ctx, const char *s, size_t len) {
    CountCtx *cc = ctx;
    for (size_t k = 0; k < len; k += BPE_TRAIN_MAX_WORD_BYTES) {
        size_t n = len - k < BPE_TRAIN_MAX_WORD_BYTES ? len - k : BPE_TRAIN_MAX_WORD_BYTES;
        Status st = wm_add(cc->m, (const uint8_t *)s + k, n, 1, cc->err);
        if (st != STATUS_OK)
            return st;
    }
    return STATUS_OK;
}

/* How many of 'len' bytes fit in what is left of the byte limit, cut before
 * a character that would not fit whole (at most 3 bytes back). */
static size_t take_bytes(BpeCounts *c, const char *s, size_t len) {
    uint64_t left = c->max_bytes - c->n_bytes;
    if (len <= left)
        return len;
    c->full = true;
    size_t max = (size_t)left;
    const uint8_t *u = (const uint8_t *)s;
    for (size_t back = 0; back <= 3 && back <= max; back++)
        if ((u[max - back] & 0xC0) != 0x80)
            return max - back;
    return max;
}

Status bpe_counts_add_text(BpeCounts *c, const char *text, size_t len, Err *err) {
    if (c->full)
        return STATUS_OK;
    len = take_bytes(c, text, len);
    c->n_bytes += len;
    CountCtx cc = {&c->words, err};
    return pretok_split(c->pre, text, len, count_pretoken, &cc, err);
}

/* --------------------------------------------------- batches, threads */

typedef struct {
    BpeCounts *c;
} FlushCtx;

static void flush_task(void *ctx, int ith, int nth) {
    BpeCounts *c = ((FlushCtx *)ctx)->c;
    Shard *sh = &c->shard[ith];
    size_t lo = c->n_batch * (size_t)ith / (size_t)nth;
    size_t hi = c->n_batch * (size_t)(ith + 1) / (size_t)nth;
    /* documents that start in [lo, hi): first binary-search the first one */
    size_t a = 0, b = c->n_docs;
    while (a < b) {
        size_t mid = a + (b - a) / 2;
        size_t start = mid ? c->doc_end[mid - 1] : 0;
        if (start < lo)
            a = mid + 1;
        else
            b = mid;
    }
    CountCtx cc = {&sh->m, &sh->err};
    for (size_t d = a; d < c->n_docs && sh->st == STATUS_OK; d++) {
        size_t start = d ? c->doc_end[d - 1] : 0;
        if (start >= hi)
            break;
        sh->st = pretok_split(c->pre, c->batch + start, c->doc_end[d] - start, count_pretoken, &cc,
                              &sh->err);
    }
}

static Status flush_batch(BpeCounts *c, TPool *tp, Err *err) {
    if (c->n_docs == 0)
        return STATUS_OK;
    int nth = tp ? tpool_size(tp) : 1;
    if (!c->shard) {
        c->shard = calloc((size_t)nth, sizeof *c->shard);
        if (!c->shard)
            return err_set(err, STATUS_NOMEM, "out of memory");
        c->n_shard = nth;
    }
    ASSERT(c->n_shard == nth);
    FlushCtx fc = {c};
    tpool_run(tp, flush_task, &fc);
    c->n_batch = c->n_docs = 0;
    for (int i = 0; i < nth; i++)
        if (c->shard[i].st != STATUS_OK) {
            *err = c->shard[i].err;
            return c->shard[i].st;
        }
    return STATUS_OK;
}

/* Fold the per-thread maps into c->words, in thread order. */
static Status fold_shards(BpeCounts *c, Err *err) {
    for (int i = 0; i < c->n_shard; i++) {
        WordMap *m = &c->shard[i].m;
        for (size_t k = 0; k < m->n_ent; k++) {
            Status st =
                wm_add(&c->words, m->buf + m->ent[k].off, m->ent[k].len, m->ent[k].count, err);
            if (st != STATUS_OK)
                return st;
        }
    }
    free_shards(c);
    return STATUS_OK;
}

static Status batch_add(BpeCounts *c, const char *s, size_t len, Err *err) {
    if (c->full)
        return STATUS_OK;
    len = take_bytes(c, s, len);
    if (!grow((void **)&c->batch, &c->cap_batch, c->n_batch + len, 1) ||
        !grow((void **)&c->doc_end, &c->cap_docs, c->n_docs + 1, sizeof *c->doc_end))
        return err_set(err, STATUS_NOMEM, "out of memory for a batch of %zu bytes", c->n_batch);
    memcpy(c->batch + c->n_batch, s, len);
    c->n_batch += len;
    c->doc_end[c->n_docs++] = c->n_batch;
    c->n_bytes += len;
    return STATUS_OK;
}

/* The documents of one JSON line into the batch. Errors without location. */
static Status take_json(BpeCounts *c, const json_t *j, Err *err) {
    if (!json_is_object(j))
        return err_set(err, STATUS_FORMAT, "not a JSON object");
    const json_t *text = json_object_get(j, "text");
    const json_t *msgs = json_object_get(j, "messages");
    if (text) {
        if (!json_is_string(text))
            return err_set(err, STATUS_FORMAT, "\"text\" is not a string");
        return batch_add(c, json_string_value(text), json_string_length(text), err);
    }
    if (!msgs)
        return err_set(err, STATUS_FORMAT, "no \"text\" or \"messages\" field");
    if (!json_is_array(msgs))
        return err_set(err, STATUS_FORMAT, "\"messages\" is not an array");
    for (size_t i = 0; i < json_array_size(msgs); i++) {
        const json_t *m = json_array_get(msgs, i);
        if (!json_is_object(m))
            return err_set(err, STATUS_FORMAT, "messages[%zu] is not an object", i);
        const json_t *content = json_object_get(m, "content");
        Status st = STATUS_OK;
        if (!content || json_is_null(content)) /* tool calls carry no text */
            continue;
        if (json_is_string(content)) {
            st = batch_add(c, json_string_value(content), json_string_length(content), err);
        } else if (json_is_array(content)) { /* [{"type": "text", "text": ...}, ...] */
            for (size_t k = 0; k < json_array_size(content) && st == STATUS_OK; k++) {
                const json_t *part = json_object_get(json_array_get(content, k), "text");
                if (!part)
                    continue; /* not a text part */
                if (!json_is_string(part))
                    return err_set(err, STATUS_FORMAT,
                                   "messages[%zu].content[%zu].text is not a string", i, k);
                st = batch_add(c, json_string_value(part), json_string_length(part), err);
            }
        } else {
            return err_set(err, STATUS_FORMAT,
                           "messages[%zu].content is not a string, a list of parts or null", i);
        }
        if (st != STATUS_OK)
            return st;
    }
    return STATUS_OK;
}

/* Buffered reader of lines with a length limit (getline() would grow its
 * buffer to any length a file without newlines asks for). */
typedef struct {
    FILE *f;
    char *buf;
    size_t cap, start, end;
    bool eof;
} LineReader;

/* Next line (without '\n') as a view into the reader, valid until the next
 * call. Returns 1 for a line, 0 at end of file, -1 for a line longer than
 * BPE_TRAIN_MAX_LINE_BYTES, -2 for a read error, -3 out of memory. */
static int line_next(LineReader *r, const char **line, size_t *len) {
    size_t scanned = r->start;
    for (;;) {
        char *nl = r->end > scanned ? memchr(r->buf + scanned, '\n', r->end - scanned) : NULL;
        if (nl) {
            *line = r->buf + r->start;
            *len = (size_t)(nl - *line);
            r->start = (size_t)(nl - r->buf) + 1;
            return *len > BPE_TRAIN_MAX_LINE_BYTES ? -1 : 1;
        }
        if (r->end - r->start > BPE_TRAIN_MAX_LINE_BYTES)
            return -1;
        if (r->eof) {
            if (r->start == r->end)
                return 0;
            *line = r->buf + r->start;
            *len = r->end - r->start;
            r->start = r->end;
            return 1;
        }
        /* move the partial line to the front, make room, read more */
        size_t have = r->end - r->start;
        if (have)
            memmove(r->buf, r->buf + r->start, have);
        r->start = 0;
        r->end = have;
        scanned = have;
        if (!grow((void **)&r->buf, &r->cap, have + BPE_READ_CHUNK, 1))
            return -3;
        size_t got = fread(r->buf + have, 1, r->cap - have, r->f);
        r->end += got;
        if (got == 0) {
            if (ferror(r->f))
                return -2;
            r->eof = true;
        }
    }
}

static bool blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
            return false;
    return true;
}

Status bpe_counts_add_jsonl(BpeCounts *c, const char *path, TPool *tp, BpeProgressFn progress,
                            void *progress_ctx, Err *err) {
    LineReader r = {.f = fopen(path, "rb")};
    if (!r.f)
        return err_set(err, STATUS_IO, "%s: cannot open: %s", path, strerror(errno));
    Status st = STATUS_OK;
    uint64_t lineno = 0;
    const char *line;
    size_t len;
    int rc;
    while (st == STATUS_OK && !c->full && (rc = line_next(&r, &line, &len)) != 0) {
        lineno++;
        if (rc == -1) {
            st = err_set(err, STATUS_LIMIT,
                         "%s:%" PRIu64 ": line longer than %u bytes (BPE_TRAIN_MAX_LINE_BYTES)",
                         path, lineno, BPE_TRAIN_MAX_LINE_BYTES);
            break;
        }
        if (rc == -2) {
            st = err_set(err, STATUS_IO, "%s:%" PRIu64 ": read error: %s", path, lineno,
                         strerror(errno));
            break;
        }
        if (rc == -3) {
            st = err_set(err, STATUS_NOMEM, "%s:%" PRIu64 ": out of memory", path, lineno);
            break;
        }
        if (blank(line, len))
            continue;
        json_error_t je;
        json_t *j = json_loadb(line, len, JSON_ALLOW_NUL, &je);
        if (!j) {
            st = err_set(err, STATUS_FORMAT, "%s:%" PRIu64 ": not JSON: %s (column %d)", path,
                         lineno, je.text, je.column);
            break;
        }
        st = take_json(c, j, err);
        json_decref(j);
        if (st != STATUS_OK) {
            err_prefix(err, "%s:%" PRIu64, path, lineno);
            break;
        }
        if (c->n_batch >= BPE_TRAIN_BATCH_BYTES) {
            st = flush_batch(c, tp, err);
            if (st == STATUS_OK && progress)
                progress(progress_ctx, "read", c->n_bytes, c->max_bytes);
            if (st != STATUS_OK) /* from some document of the batch */
                err_prefix(err, "%s (lines up to %" PRIu64 ")", path, lineno);
        }
    }
    fclose(r.f);
    free(r.buf);
    if (st == STATUS_OK) {
        st = flush_batch(c, tp, err);
        if (st != STATUS_OK)
            err_prefix(err, "%s", path);
    }
    if (st == STATUS_OK)
        st = fold_shards(c, err);
    free_shards(c);
    c->n_batch = c->n_docs = 0;
    if (st == STATUS_OK && progress)
        progress(progress_ctx, "read", c->n_bytes, c->max_bytes);
    return st;
}

/* ---------------------------------------------------------------- dump */

static const WordMap *g_sort_map; /* qsort has no context argument in C11 */

static int cmp_word(const void *x, const void *y) {
    const WordEnt *a = &g_sort_map->ent[*(const uint32_t *)x];
    const WordEnt *b = &g_sort_map->ent[*(const uint32_t *)y];
    size_t n = a->len < b->len ? a->len : b->len;
    int r = memcmp(g_sort_map->buf + a->off, g_sort_map->buf + b->off, n);
    if (r)
        return r;
    return (a->len > b->len) - (a->len < b->len);
}

Status bpe_counts_dump(const BpeCounts *c, const char *path, Err *err) {
    const WordMap *m = &c->words;
    uint32_t *order = malloc((m->n_ent ? m->n_ent : 1) * sizeof *order);
    if (!order)
        return err_set(err, STATUS_NOMEM, "out of memory for %zu words", m->n_ent);
    for (size_t i = 0; i < m->n_ent; i++)
        order[i] = (uint32_t)i;
    g_sort_map = m;
    qsort(order, m->n_ent, sizeof *order, cmp_word);
    g_sort_map = NULL;
    FILE *f = fopen(path, "wb");
    if (!f) {
        free(order);
        return err_set(err, STATUS_IO, "%s: cannot create: %s", path, strerror(errno));
    }
    static const char HEX[] = "0123456789abcdef";
    for (size_t i = 0; i < m->n_ent; i++) {
        const WordEnt *e = &m->ent[order[i]];
        fprintf(f, "%" PRIu64 "\t", e->count);
        for (uint32_t k = 0; k < e->len; k++) {
            uint8_t b = m->buf[e->off + k];
            fputc(HEX[b >> 4], f);
            fputc(HEX[b & 15], f);
        }
        fputc('\n', f);
    }
    free(order);
    bool bad = ferror(f) != 0;
    if (fclose(f) != 0 || bad)
        return err_set(err, STATUS_IO, "%s: write failed: %s", path, strerror(errno));
    return STATUS_OK;
}

/* ============================================================ training */

typedef struct {
    int64_t count;
    int32_t a, b;
} HeapEnt;

/* Heap order: higher count first, then smaller left id, then smaller right. */
static bool heap_before(const HeapEnt *x, const HeapEnt *y) {
    if (x->count != y->count)
        return x->count > y->count;
    if (x->a != y->a)
        return x->a < y->a;
    return x->b < y->b;
}

#define PAIR_NONE UINT32_MAX

typedef struct {
    /* words (pre-tokens of two or more bytes): symbols rewritten in place */
    size_t n_words;
    int32_t *sym;
    uint64_t *woff;
    uint32_t *wlen;
    int64_t *wcount;
    uint32_t *wstamp; /* step that last rewrote the word */

    /* tokens: bytes, and a bytes -> id map */
    uint8_t *tbytes;
    size_t n_tbytes, cap_tbytes;
    uint64_t *toff;
    uint32_t *tlen;
    size_t n_tok, cap_tok;
    uint32_t *tslot; /* id + 1 */
    size_t tmask;

    /* pairs */
    uint64_t *pkey; /* left << 32 | right */
    int64_t *pcount;
    uint32_t *pstamp; /* step in which the pair was put on the 'inc' list */
    uint8_t *pmerged;
    uint32_t **pw; /* words the pair was seen in */
    uint32_t *pwn, *pwcap;
    size_t n_pair, cap_pair;
    uint32_t *pslot; /* pair index + 1 */
    size_t pmask;

    HeapEnt *heap;
    size_t n_heap, cap_heap;
    uint32_t *inc; /* pairs whose count rose in this step */
    size_t n_inc, cap_inc;
    uint32_t step;
    bool oom;
} Trainer;

static void trainer_free(Trainer *t) {
    free(t->sym);
    free(t->woff);
    free(t->wlen);
    free(t->wcount);
    free(t->wstamp);
    free(t->tbytes);
    free(t->toff);
    free(t->tlen);
    free(t->tslot);
    for (size_t i = 0; i < t->n_pair; i++)
        free(t->pw[i]);
    free(t->pkey);
    free(t->pcount);
    free(t->pstamp);
    free(t->pmerged);
    free(t->pw);
    free(t->pwn);
    free(t->pwcap);
    free(t->pslot);
    free(t->heap);
    free(t->inc);
}

static void heap_push(Trainer *t, int64_t count, int32_t a, int32_t b) {
    if (!grow((void **)&t->heap, &t->cap_heap, t->n_heap + 1, sizeof *t->heap)) {
        t->oom = true;
        return;
    }
    HeapEnt e = {count, a, b};
    HeapEnt *h = t->heap;
    size_t i = t->n_heap++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!heap_before(&e, &h[parent]))
            break;
        h[i] = h[parent];
        i = parent;
    }
    h[i] = e;
}

static HeapEnt heap_pop(Trainer *t) {
    HeapEnt *h = t->heap;
    HeapEnt top = h[0], last = h[--t->n_heap];
    size_t i = 0, m = t->n_heap;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= m)
            break;
        if (c + 1 < m && heap_before(&h[c + 1], &h[c]))
            c++;
        if (!heap_before(&h[c], &last))
            break;
        h[i] = h[c];
        i = c;
    }
    if (m)
        h[i] = last;
    return top;
}

/* ------------------------------------------------------------- tokens */

static int32_t tok_find_bytes(const Trainer *t, const uint8_t *s, size_t len) {
    uint64_t h = hash_bytes(s, len);
    for (size_t j = h & t->tmask; t->tslot[j]; j = (j + 1) & t->tmask) {
        uint32_t id = t->tslot[j] - 1;
        if (t->tlen[id] == len && memcmp(t->tbytes + t->toff[id], s, len) == 0)
            return (int32_t)id;
    }
    return -1;
}

/* Add a token whose bytes are not present yet ('s' must not point into
 * t->tbytes, which may move); returns its id, -1 on OOM. */
static int32_t tok_add_bytes(Trainer *t, const uint8_t *s, size_t len) {
    if (!grow((void **)&t->tbytes, &t->cap_tbytes, t->n_tbytes + len, 1))
        return -1;
    if (t->n_tok == t->cap_tok) {
        size_t n = t->cap_tok ? 2 * t->cap_tok : 512;
        uint64_t *off = realloc(t->toff, n * sizeof *off);
        if (off)
            t->toff = off;
        uint32_t *tl = realloc(t->tlen, n * sizeof *tl);
        if (tl)
            t->tlen = tl;
        if (!off || !tl)
            return -1;
        t->cap_tok = n;
    }
    if ((t->n_tok + 1) * 2 > t->tmask + 1) {
        size_t n = t->tmask ? 2 * (t->tmask + 1) : 1024;
        uint32_t *slots = calloc(n, sizeof *slots);
        if (!slots)
            return -1;
        for (size_t i = 0; i < t->n_tok; i++) {
            size_t j = hash_bytes(t->tbytes + t->toff[i], t->tlen[i]) & (n - 1);
            while (slots[j])
                j = (j + 1) & (n - 1);
            slots[j] = (uint32_t)(i + 1);
        }
        free(t->tslot);
        t->tslot = slots;
        t->tmask = n - 1;
    }
    uint8_t *dst = t->tbytes + t->n_tbytes;
    memcpy(dst, s, len);
    size_t id = t->n_tok++;
    t->toff[id] = t->n_tbytes;
    t->tlen[id] = (uint32_t)len;
    t->n_tbytes += len;
    size_t j = hash_bytes(dst, len) & t->tmask;
    while (t->tslot[j])
        j = (j + 1) & t->tmask;
    t->tslot[j] = (uint32_t)(id + 1);
    return (int32_t)id;
}

/* -------------------------------------------------------------- pairs */

static uint64_t pair_key(int32_t a, int32_t b) { return (uint64_t)(uint32_t)a << 32 | (uint32_t)b; }

static size_t pair_hash(uint64_t key) { return (size_t)((key * 0x9E3779B97F4A7C15ull) >> 20); }

static uint32_t pair_find(const Trainer *t, uint64_t key) {
    if (!t->pmask)
        return PAIR_NONE;
    for (size_t j = pair_hash(key) & t->pmask; t->pslot[j]; j = (j + 1) & t->pmask)
        if (t->pkey[t->pslot[j] - 1] == key)
            return t->pslot[j] - 1;
    return PAIR_NONE;
}

static uint32_t pair_new(Trainer *t, uint64_t key) {
    if (t->n_pair >= UINT32_MAX - 1) {
        t->oom = true;
        return PAIR_NONE;
    }
    if ((t->n_pair + 1) * 2 > t->pmask + 1) {
        size_t n = t->pmask ? 2 * (t->pmask + 1) : 4096;
        uint32_t *s = calloc(n, sizeof *s);
        if (!s) {
            t->oom = true;
            return PAIR_NONE;
        }
        for (size_t i = 0; i < t->n_pair; i++) {
            size_t j = pair_hash(t->pkey[i]) & (n - 1);
            while (s[j])
                j = (j + 1) & (n - 1);
            s[j] = (uint32_t)(i + 1);
        }
        free(t->pslot);
        t->pslot = s;
        t->pmask = n - 1;
    }
    if (t->n_pair == t->cap_pair) {
        size_t n = t->cap_pair ? 2 * t->cap_pair : 4096;
        void *k = realloc(t->pkey, n * sizeof *t->pkey);
        if (k)
            t->pkey = k;
        void *c = realloc(t->pcount, n * sizeof *t->pcount);
        if (c)
            t->pcount = c;
        void *st = realloc(t->pstamp, n * sizeof *t->pstamp);
        if (st)
            t->pstamp = st;
        void *mg = realloc(t->pmerged, n);
        if (mg)
            t->pmerged = mg;
        void *w = realloc(t->pw, n * sizeof *t->pw);
        if (w)
            t->pw = w;
        void *wn = realloc(t->pwn, n * sizeof *t->pwn);
        if (wn)
            t->pwn = wn;
        void *wc = realloc(t->pwcap, n * sizeof *t->pwcap);
        if (wc)
            t->pwcap = wc;
        if (!k || !c || !st || !mg || !w || !wn || !wc) {
            t->oom = true;
            return PAIR_NONE;
        }
        t->cap_pair = n;
    }
    uint32_t i = (uint32_t)t->n_pair++;
    t->pkey[i] = key;
    t->pcount[i] = 0;
    t->pstamp[i] = 0;
    t->pmerged[i] = 0;
    t->pw[i] = NULL;
    t->pwn[i] = t->pwcap[i] = 0;
    size_t j = pair_hash(key) & t->pmask;
    while (t->pslot[j])
        j = (j + 1) & t->pmask;
    t->pslot[j] = i + 1;
    return i;
}

/* Add 'delta' occurrences of pair (a, b) in word w. Pairs too long to merge
 * are not tracked. A rise lists w under the pair and the pair under 'inc'. */
static void pair_delta(Trainer *t, int32_t a, int32_t b, int64_t delta, uint32_t w) {
    if (t->tlen[a] + t->tlen[b] > BPE_TRAIN_MAX_TOKEN_BYTES)
        return;
    uint64_t key = pair_key(a, b);
    uint32_t i = pair_find(t, key);
    if (i == PAIR_NONE) {
        ASSERT(delta > 0); /* a pair is never removed before it was added */
        i = pair_new(t, key);
        if (i == PAIR_NONE)
            return;
    }
    t->pcount[i] += delta;
    ASSERT(t->pcount[i] >= 0);
    if (delta <= 0)
        return;
    ASSERT(!t->pmerged[i]); /* a merged pair never occurs again (bpe_train.h) */
    if (t->pwn[i] == 0 || t->pw[i][t->pwn[i] - 1] != w) {
        if (t->pwn[i] == t->pwcap[i]) {
            uint32_t n = t->pwcap[i] ? 2 * t->pwcap[i] : 4;
            uint32_t *q = realloc(t->pw[i], (size_t)n * sizeof *q);
            if (!q) {
                t->oom = true;
                return;
            }
            t->pw[i] = q;
            t->pwcap[i] = n;
        }
        t->pw[i][t->pwn[i]++] = w;
    }
    if (t->pstamp[i] != t->step) {
        t->pstamp[i] = t->step;
        if (!grow((void **)&t->inc, &t->cap_inc, t->n_inc + 1, sizeof *t->inc)) {
            t->oom = true;
            return;
        }
        t->inc[t->n_inc++] = i;
    }
}

/* Replace (a, b) by c in word w, left to right without overlap, updating
 * the pair counts by the word's count for each change. */
static void word_merge(Trainer *t, uint32_t w, int32_t a, int32_t b, int32_t c) {
    int32_t *s = t->sym + t->woff[w];
    uint32_t n = t->wlen[w], out = 0;
    int64_t k = t->wcount[w];
    for (uint32_t i = 0; i < n;) {
        if (i + 1 < n && s[i] == a && s[i + 1] == b) {
            if (out > 0) {
                pair_delta(t, s[out - 1], a, -k, w);
                pair_delta(t, s[out - 1], c, k, w);
            }
            pair_delta(t, a, b, -k, w);
            if (i + 2 < n) {
                pair_delta(t, b, s[i + 2], -k, w);
                pair_delta(t, c, s[i + 2], k, w);
            }
            s[out++] = c;
            i += 2;
        } else {
            s[out++] = s[i++];
        }
    }
    t->wlen[w] = out;
}

/* Words of two or more bytes from the counts; tokens 0..255. */
static Status trainer_init(Trainer *t, const BpeCounts *bc, Err *err) {
    const WordMap *m = &bc->words;
    size_t n = 0, n_sym = 0;
    for (size_t i = 0; i < m->n_ent; i++)
        if (m->ent[i].len >= 2) {
            n++;
            n_sym += m->ent[i].len;
        }
    t->n_words = n;
    t->sym = malloc((n_sym ? n_sym : 1) * sizeof *t->sym);
    t->woff = malloc((n ? n : 1) * sizeof *t->woff);
    t->wlen = malloc((n ? n : 1) * sizeof *t->wlen);
    t->wcount = malloc((n ? n : 1) * sizeof *t->wcount);
    t->wstamp = calloc(n ? n : 1, sizeof *t->wstamp);
    if (!t->sym || !t->woff || !t->wlen || !t->wcount || !t->wstamp)
        return err_set(err, STATUS_NOMEM, "out of memory for %zu words (%zu bytes)", n, n_sym);
    size_t w = 0, off = 0;
    for (size_t i = 0; i < m->n_ent; i++) {
        const WordEnt *e = &m->ent[i];
        if (e->len < 2)
            continue;
        if (e->count > (uint64_t)INT64_MAX / 4)
            return err_set(err, STATUS_LIMIT, "word count %" PRIu64 " too large", e->count);
        t->woff[w] = off;
        t->wlen[w] = e->len;
        t->wcount[w] = (int64_t)e->count;
        for (uint32_t k = 0; k < e->len; k++)
            t->sym[off + k] = m->buf[e->off + k];
        off += e->len;
        w++;
    }
    for (int b = 0; b < 256; b++) {
        uint8_t byte = (uint8_t)b;
        if (tok_add_bytes(t, &byte, 1) != b)
            return err_set(err, STATUS_NOMEM, "out of memory for the byte tokens");
    }
    return STATUS_OK;
}

void bpe_vocab_free(BpeVocab *v) {
    if (!v)
        return;
    if (v->tokens)
        for (int i = 0; i < v->n_tokens; i++)
            free(v->tokens[i]);
    if (v->merges)
        for (int i = 0; i < v->n_merges; i++)
            free(v->merges[i]);
    free(v->tokens);
    free(v->types);
    free(v->merges);
    free(v->merge_l);
    free(v->merge_r);
    free(v->merge_count);
    memset(v, 0, sizeof *v);
}

/* GPT-2 byte-to-unicode string of 'len' bytes: owned, NUL-terminated. */
static char *gpt2_string(const uint8_t *s, size_t len) {
    char *out = malloc(2 * len + 1);
    if (!out)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < len; i++)
        k += (size_t)tok_utf8_put(bpe_byte_to_cp(s[i]), out + k);
    out[k] = '\0';
    return out;
}

/* The merge list is complete; build the strings of 'v' from 't'. */
static Status build_vocab(const Trainer *t, BpeVocab *v, Err *err) {
    int n_learned = (int)t->n_tok - 256;
    ASSERT(n_learned == v->n_merges);
    v->n_tokens = 256 + n_learned + BPE_TRAIN_N_SPECIAL;
    v->tokens = calloc((size_t)v->n_tokens, sizeof *v->tokens);
    v->types = malloc((size_t)v->n_tokens * sizeof *v->types);
    v->merges = calloc(v->n_merges ? (size_t)v->n_merges : 1, sizeof *v->merges);
    if (!v->tokens || !v->types || !v->merges)
        return err_set(err, STATUS_NOMEM, "out of memory for %d tokens", v->n_tokens);
    for (size_t i = 0; i < t->n_tok; i++) {
        v->tokens[i] = gpt2_string(t->tbytes + t->toff[i], t->tlen[i]);
        v->types[i] = TOK_TYPE_NORMAL;
        if (!v->tokens[i])
            return err_set(err, STATUS_NOMEM, "out of memory for token %zu", i);
    }
    int base = 256 + n_learned;
    for (int k = 0; k < BPE_TRAIN_N_SPECIAL; k++) {
        const char *s = SPECIAL_TEXT[k];
        if (tok_find_bytes(t, (const uint8_t *)s, strlen(s)) >= 0)
            return err_set(err, STATUS_INVALID, "a learned token is the special token '%s'", s);
        v->tokens[base + k] = strdup(s);
        v->types[base + k] = TOK_TYPE_CONTROL;
        if (!v->tokens[base + k])
            return err_set(err, STATUS_NOMEM, "out of memory for special tokens");
    }
    v->eos = v->bos = base;
    v->eot = base + 2;
    v->pad = base + 3;
    for (int r = 0; r < v->n_merges; r++) {
        const char *l = v->tokens[v->merge_l[r]], *rt = v->tokens[v->merge_r[r]];
        size_t ln = strlen(l), rn = strlen(rt);
        v->merges[r] = malloc(ln + rn + 2);
        if (!v->merges[r])
            return err_set(err, STATUS_NOMEM, "out of memory for merge %d", r);
        memcpy(v->merges[r], l, ln);
        v->merges[r][ln] = ' ';
        memcpy(v->merges[r] + ln + 1, rt, rn + 1);
    }
    return STATUS_OK;
}

/* Pop until an entry matches its pair's count; false when none is left. */
static bool best_pair(Trainer *t, HeapEnt *best, uint32_t *pi) {
    while (t->n_heap > 0 && !t->oom) {
        HeapEnt e = heap_pop(t);
        uint32_t i = pair_find(t, pair_key(e.a, e.b));
        ASSERT(i != PAIR_NONE);
        if (t->pmerged[i])
            continue;
        int64_t cur = t->pcount[i];
        if (cur == e.count) {
            *best = e;
            *pi = i;
            return true;
        }
        if (cur > 0 && cur < e.count)
            heap_push(t, cur, e.a, e.b);
    }
    return false;
}

static Status train_loop(Trainer *t, const BpeTrainParams *p, BpeVocab *v, Err *err) {
    int want = p->vocab - BPE_TRAIN_MIN_VOCAB; /* tokens to learn */
    size_t cap_merges = 0;
    uint8_t cat[2 * BPE_TRAIN_MAX_TOKEN_BYTES];
    t->step = 1;
    for (size_t w = 0; w < t->n_words; w++) {
        const int32_t *s = t->sym + t->woff[w];
        for (uint32_t i = 0; i + 1 < t->wlen[w]; i++)
            pair_delta(t, s[i], s[i + 1], t->wcount[w], (uint32_t)w);
    }
    for (size_t i = 0; i < t->n_pair; i++)
        heap_push(t, t->pcount[i], (int32_t)(t->pkey[i] >> 32), (int32_t)(uint32_t)t->pkey[i]);
    t->n_inc = 0;
    while ((int)t->n_tok - 256 < want && !t->oom) {
        HeapEnt e;
        uint32_t pi;
        if (!best_pair(t, &e, &pi) || (uint64_t)e.count < p->min_freq)
            break;
        size_t la = t->tlen[e.a], lb = t->tlen[e.b];
        ASSERT(la + lb <= sizeof cat);
        memcpy(cat, t->tbytes + t->toff[e.a], la);
        memcpy(cat + la, t->tbytes + t->toff[e.b], lb);
        /* always new (bpe_train.h): a second spelling would mean a span
         * that evolved unlike itself alone */
        ASSERT(tok_find_bytes(t, cat, la + lb) < 0);
        int32_t c = tok_add_bytes(t, cat, la + lb);
        if (c < 0) {
            t->oom = true;
            break;
        }
        if ((size_t)v->n_merges == cap_merges) {
            size_t cm = cap_merges ? 2 * cap_merges : 1024;
            int32_t *l = realloc(v->merge_l, cm * sizeof *l);
            if (l)
                v->merge_l = l;
            int32_t *r = realloc(v->merge_r, cm * sizeof *r);
            if (r)
                v->merge_r = r;
            uint64_t *cnt = realloc(v->merge_count, cm * sizeof *cnt);
            if (cnt)
                v->merge_count = cnt;
            if (!l || !r || !cnt) {
                t->oom = true;
                break;
            }
            cap_merges = cm;
        }
        int k = v->n_merges++;
        v->merge_l[k] = e.a;
        v->merge_r[k] = e.b;
        v->merge_count[k] = (uint64_t)e.count;

        t->step++;
        t->pmerged[pi] = 1;
        uint32_t *list = t->pw[pi], n_list = t->pwn[pi];
        t->pw[pi] = NULL;
        t->pwn[pi] = t->pwcap[pi] = 0;
        for (uint32_t j = 0; j < n_list; j++) {
            uint32_t w = list[j];
            if (t->wstamp[w] == t->step)
                continue;
            t->wstamp[w] = t->step;
            word_merge(t, w, e.a, e.b, c);
        }
        free(list);
        ASSERT(t->oom || t->pcount[pi] == 0); /* every occurrence was in a listed word */
        for (size_t j = 0; j < t->n_inc; j++) {
            uint32_t q = t->inc[j];
            if (!t->pmerged[q] && t->pcount[q] > 0)
                heap_push(t, t->pcount[q], (int32_t)(t->pkey[q] >> 32),
                          (int32_t)(uint32_t)t->pkey[q]);
        }
        t->n_inc = 0;
        if (p->progress && v->n_merges % BPE_PROGRESS_EVERY == 0)
            p->progress(p->progress_ctx, "merge", (uint64_t)v->n_merges, (uint64_t)want);
    }
    if (t->oom)
        return err_set(err, STATUS_NOMEM, "out of memory after %d merges (%zu pairs)", v->n_merges,
                       t->n_pair);
    if (p->progress)
        p->progress(p->progress_ctx, "merge", (uint64_t)v->n_merges, (uint64_t)want);
    return STATUS_OK;
}

Status bpe_train(const BpeCounts *c, const BpeTrainParams *p, BpeVocab *v, Err *err) {
    memset(v, 0, sizeof *v);
    if (p->vocab < BPE_TRAIN_MIN_VOCAB || p->vocab > BPE_TRAIN_MAX_VOCAB)
        return err_set(err, STATUS_INVALID,
                       "vocabulary size %d out of range (%d..%d: 256 bytes + %d specials .. "
                       "BPE_TRAIN_MAX_VOCAB)",
                       p->vocab, BPE_TRAIN_MIN_VOCAB, BPE_TRAIN_MAX_VOCAB, BPE_TRAIN_N_SPECIAL);
    if (p->min_freq < 1)
        return err_set(err, STATUS_INVALID, "minimum pair frequency %" PRIu64 " (must be >= 1)",
                       p->min_freq);
    Trainer t = {0};
    Status st = trainer_init(&t, c, err);
    if (st == STATUS_OK)
        st = train_loop(&t, p, v, err);
    if (st == STATUS_OK)
        st = build_vocab(&t, v, err);
    trainer_free(&t);
    if (st != STATUS_OK)
        bpe_vocab_free(v);
    return st;
}

/* ================================================================ GGUF */

Status bpe_vocab_write_gguf(const BpeVocab *v, const char *name, const char *path, Err *err) {
    GGUFWriter *w = gguf_writer_new();
    if (!w)
        return err_set(err, STATUS_NOMEM, "out of memory");
    gguf_writer_set_str(w, "general.architecture", "llama");
    gguf_writer_set_str(w, "general.name", name);
    gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2");
    gguf_writer_set_str(w, "tokenizer.ggml.pre", BPE_TRAIN_PRE);
    gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)v->tokens,
                            (uint64_t)v->n_tokens);
    gguf_writer_set_arr_i32(w, "tokenizer.ggml.token_type", v->types, (uint64_t)v->n_tokens);
    gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", (const char *const *)v->merges,
                            (uint64_t)v->n_merges);
    gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)v->bos);
    gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)v->eos);
    gguf_writer_set_u32(w, "tokenizer.ggml.eot_token_id", (uint32_t)v->eot);
    gguf_writer_set_u32(w, "tokenizer.ggml.padding_token_id", (uint32_t)v->pad);
    gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", false);
    gguf_writer_set_bool(w, "tokenizer.ggml.add_eos_token", false);
    gguf_writer_set_str(w, "tokenizer.chat_template", chat_builtin_source(CHAT_CHATML));
    Status st = gguf_writer_write(w, path, err);
    gguf_writer_free(w);
    return st;
}
