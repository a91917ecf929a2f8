/* tdata.c - corpus JSON lines -> rows of (tokens, targets). See tdata.h. */
#include "train/tdata.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/rng.h"

struct TData {
    int T;
    bool chat;
    /* text: one stream; row k = stream[k*T .. k*T+T] */
    int32_t *stream; /* (n_stream) */
    uint64_t n_stream;
    /* chat: packed rows */
    int32_t *rtok, *rtgt; /* (n_rows, T) */
    long n_rows;
    uint64_t n_tokens, n_targets;
    long n_truncated;
    /* visiting order of the current epoch */
    uint64_t *perm; /* (n_rows) */
    uint64_t perm_epoch, perm_seed;
    bool perm_valid;
};

/* ---- growable int32 array ---- */

typedef struct {
    int32_t *v;
    uint64_t n, cap;
} I32Vec;

static bool vec_push(I32Vec *a, const int32_t *x, uint64_t n) {
    if (a->n + n > a->cap) {
        uint64_t cap = a->cap ? a->cap : 1 << 16;
        while (cap < a->n + n) cap *= 2;
        int32_t *v = realloc(a->v, cap * sizeof *v);
        if (!v) return false;
        a->v = v;
        a->cap = cap;
    }
    memcpy(a->v + a->n, x, n * sizeof *x);
    a->n += n;
    return true;
}

/* ---- reading JSON lines ---- */

typedef Status (*LineFn)(void *ctx, json_t *obj, const char *path, long line, Err *err);

static Status read_jsonl(const char *path, LineFn fn, void *ctx, Err *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return err_set(err, STATUS_IO, "%s: cannot open: %s", path, strerror(errno));
    char *buf = NULL;
    size_t cap = 0;
    long line = 0;
    uint64_t total = 0;
    Status st = STATUS_OK;
    ssize_t len;
    while ((len = getline(&buf, &cap, f)) >= 0) {
        line++;
        total += (uint64_t)len;
        if (total > TDATA_MAX_FILE_BYTES) {
            st = err_set(err, STATUS_LIMIT, "%s: larger than the limit of %llu bytes", path,
                         (unsigned long long)TDATA_MAX_FILE_BYTES);
            break;
        }
        if ((size_t)len > TDATA_MAX_LINE_BYTES) {
            st = err_set(err, STATUS_LIMIT, "%s:%ld: line of %zd bytes exceeds the limit of %u",
                         path, line, len, TDATA_MAX_LINE_BYTES);
            break;
        }
        size_t n = (size_t)len;
        while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) n--;
        if (!n) continue;
        json_error_t je;
        json_t *obj = json_loadb(buf, n, JSON_REJECT_DUPLICATES, &je);
        if (!obj || !json_is_object(obj)) {
            st = err_set(err, STATUS_FORMAT, "%s:%ld: %s", path, line,
                         obj ? "not a JSON object" : je.text);
            json_decref(obj);
            break;
        }
        st = fn(ctx, obj, path, line, err);
        json_decref(obj);
        if (st) break;
    }
    if (!st && ferror(f)) st = err_set(err, STATUS_IO, "%s: read error", path);
    free(buf);
    fclose(f);
    return st;
}

/* ---- pretraining text ---- */

typedef struct {
    const Tokenizer *tok;
    I32Vec out;
    int32_t *ids;
    size_t ids_cap;
} TextCtx;

static Status text_line(void *vctx, json_t *obj, const char *path, long line, Err *err) {
    TextCtx *c = vctx;
    json_t *t = json_object_get(obj, "text");
    if (!json_is_string(t))
        return err_set(err, STATUS_FORMAT, "%s:%ld: no string field \"text\"", path, line);
    size_t len = json_string_length(t);
    if (len + 4 > c->ids_cap) {
        free(c->ids);
        c->ids_cap = len + 4;
        c->ids = malloc(c->ids_cap * sizeof *c->ids);
        if (!c->ids) return err_set(err, STATUS_NOMEM, "%s:%ld: out of memory", path, line);
    }
    TokEncodeOpts o = {.add_bos = false, .add_eos = false, .parse_special = false};
    size_t n = 0;
    if (tok_encode(c->tok, json_string_value(t), len, &o, c->ids, c->ids_cap, &n, err))
        return err_prefix(err, "%s:%ld", path, line);
    c->ids[n++] = tok_eos(c->tok);
    if (c->out.n + n > TDATA_MAX_TOKENS)
        return err_set(err, STATUS_LIMIT, "%s:%ld: more than %llu tokens in the data", path, line,
                       (unsigned long long)TDATA_MAX_TOKENS);
    if (!vec_push(&c->out, c->ids, n))
        return err_set(err, STATUS_NOMEM, "%s:%ld: out of memory", path, line);
    return STATUS_OK;
}

static Status check_T(int T, Err *err) {
    if (T < 1 || T > (1 << 20)) return err_set(err, STATUS_INVALID, "row length %d out of range", T);
    return STATUS_OK;
}

Status tdata_load_text(TData **out, const char *const *paths, int n_paths, const Tokenizer *tok,
                       int T, Err *err) {
    *out = NULL;
    if (check_T(T, err)) return err->status;
    if (tok_eos(tok) < 0) return err_set(err, STATUS_INVALID, "the tokenizer has no EOS token");
    TextCtx c = {.tok = tok};
    Status st = STATUS_OK;
    for (int i = 0; i < n_paths && !st; i++) st = read_jsonl(paths[i], text_line, &c, err);
    free(c.ids);
    if (!st && c.out.n < (uint64_t)T + 1)
        st = err_set(err, STATUS_INVALID, "the text data has %llu tokens, fewer than one row of %d",
                     (unsigned long long)c.out.n, T + 1);
    TData *d = st ? NULL : calloc(1, sizeof *d);
    if (!st && !d) st = err_set(err, STATUS_NOMEM, "out of memory");
    if (st) {
        free(c.out.v);
        return st;
    }
    d->T = T;
    d->stream = c.out.v;
    d->n_stream = c.out.n;
    d->n_rows = (long)((c.out.n - 1) / (uint64_t)T);
    d->n_tokens = c.out.n;
    d->n_targets = (uint64_t)d->n_rows * (uint64_t)T;
    *out = d;
    return STATUS_OK;
}

/* ---- chat tuning ---- */

typedef struct {
    int32_t *tok, *tgt; /* one conversation: tokens and per-position targets */
    int n;
} Conv;

typedef struct {
    const ChatFormat *fmt;
    const Tokenizer *tok;
    int T;
    Conv *convs;
    long n_convs, cap_convs;
    long n_truncated;
} ChatCtx;

static Status chat_line(void *vctx, json_t *obj, const char *path, long line, Err *err) {
    ChatCtx *c = vctx;
    json_t *msgs = json_object_get(obj, "messages");
    if (!json_is_array(msgs) || json_array_size(msgs) == 0)
        return err_set(err, STATUS_FORMAT, "%s:%ld: no non-empty array \"messages\"", path, line);
    size_t n_msgs = json_array_size(msgs);
    long last_asst = -1;
    for (size_t i = 0; i < n_msgs; i++) {
        json_t *role = json_object_get(json_array_get(msgs, i), "role");
        if (json_is_string(role) && !strcmp(json_string_value(role), "assistant")) last_asst = (long)i;
    }
    if (last_asst < 0)
        return err_set(err, STATUS_FORMAT, "%s:%ld: no assistant message to learn from", path, line);

    /* The whole conversation up to its last assistant message. */
    json_t *upto = json_array();
    for (long i = 0; i <= last_asst; i++) json_array_append(upto, json_array_get(msgs, (size_t)i));
    int32_t *full = NULL;
    size_t n_full = 0;
    Status st = chat_tokenize(c->fmt, c->tok, upto, false, NULL, &full, &n_full, err);
    json_decref(upto);
    if (st) return err_prefix(err, "%s:%ld", path, line);
    uint8_t *is_asst = calloc(n_full + 1, 1);
    if (!is_asst) {
        free(full);
        return err_set(err, STATUS_NOMEM, "%s:%ld: out of memory", path, line);
    }
    /* Each assistant message: tokens past the prompt that asks for it, up to
     * the end of its own rendering. */
    for (long i = 0; i <= last_asst && !st; i++) {
        json_t *role = json_object_get(json_array_get(msgs, (size_t)i), "role");
        if (!json_is_string(role) || strcmp(json_string_value(role), "assistant")) continue;
        json_t *before = json_array(), *with = json_array();
        for (long j = 0; j < i; j++) json_array_append(before, json_array_get(msgs, (size_t)j));
        for (long j = 0; j <= i; j++) json_array_append(with, json_array_get(msgs, (size_t)j));
        int32_t *p = NULL, *q = NULL;
        size_t np = 0, nq = 0;
        st = chat_tokenize(c->fmt, c->tok, before, true, NULL, &p, &np, err);
        if (!st) st = chat_tokenize(c->fmt, c->tok, with, false, NULL, &q, &nq, err);
        json_decref(before);
        json_decref(with);
        if (!st) {
            /* Start where the prompt stops agreeing with the rendering (a
             * template may tokenize the boundary differently); the rendering
             * with this message is a prefix of the full conversation. */
            size_t k = 0;
            while (k < np && k < nq && p[k] == q[k]) k++;
            for (size_t j = k; j < nq && j < n_full; j++) is_asst[j] = 1;
        } else {
            err_prefix(err, "%s:%ld", path, line);
        }
        free(p);
        free(q);
    }
    if (st) {
        free(full);
        free(is_asst);
        return st;
    }
    int n = (int)(n_full > (size_t)c->T + 1 ? (size_t)c->T + 1 : n_full);
    if (n_full > (size_t)c->T + 1) c->n_truncated++;
    Conv cv = {.tok = malloc((size_t)n * sizeof(int32_t)), .tgt = malloc((size_t)n * sizeof(int32_t)), .n = n - 1};
    if (!cv.tok || !cv.tgt) {
        free(cv.tok);
        free(cv.tgt);
        free(full);
        free(is_asst);
        return err_set(err, STATUS_NOMEM, "%s:%ld: out of memory", path, line);
    }
    /* position j reads token j and predicts token j+1 */
    for (int j = 0; j < n - 1; j++) {
        cv.tok[j] = full[j];
        cv.tgt[j] = is_asst[j + 1] ? full[j + 1] : -1;
    }
    free(full);
    free(is_asst);
    if (n < 2) {
        free(cv.tok);
        free(cv.tgt);
        return STATUS_OK;
    }
    if (c->n_convs == c->cap_convs) {
        long cap = c->cap_convs ? 2 * c->cap_convs : 1024;
        Conv *v = realloc(c->convs, (size_t)cap * sizeof *v);
        if (!v) {
            free(cv.tok);
            free(cv.tgt);
            return err_set(err, STATUS_NOMEM, "%s:%ld: out of memory", path, line);
        }
        c->convs = v;
        c->cap_convs = cap;
    }
    c->convs[c->n_convs++] = cv;
    return STATUS_OK;
}

Status tdata_load_chat(TData **out, const char *const *paths, int n_paths, const ChatFormat *fmt,
                       const Tokenizer *tok, int T, uint64_t seed, Err *err) {
    *out = NULL;
    if (check_T(T, err)) return err->status;
    int pad = tok_find(tok, "<|pad|>", 7);
    if (pad < 0) pad = tok_eos(tok);
    if (pad < 0) return err_set(err, STATUS_INVALID, "the tokenizer has no padding or EOS token");
    ChatCtx c = {.fmt = fmt, .tok = tok, .T = T};
    Status st = STATUS_OK;
    for (int i = 0; i < n_paths && !st; i++) st = read_jsonl(paths[i], chat_line, &c, err);
    if (!st && c.n_convs == 0) st = err_set(err, STATUS_INVALID, "the chat data has no conversations");
    TData *d = NULL;
    if (!st) {
        /* shuffle the conversations once, then pack them whole into rows */
        Rng r;
        rng_seed(&r, seed ^ 0x5f7dd3a1c0ffee11ull);
        for (long i = c.n_convs - 1; i > 0; i--) {
            long j = (long)(rng_u64(&r) % (uint64_t)(i + 1));
            Conv t = c.convs[i];
            c.convs[i] = c.convs[j];
            c.convs[j] = t;
        }
        long rows = 0, used = T;
        for (long i = 0; i < c.n_convs; i++) {
            if (used + c.convs[i].n > T) rows++, used = 0;
            used += c.convs[i].n;
        }
        d = calloc(1, sizeof *d);
        if (d) {
            d->rtok = malloc((size_t)rows * (size_t)T * sizeof(int32_t));
            d->rtgt = malloc((size_t)rows * (size_t)T * sizeof(int32_t));
        }
        if (!d || !d->rtok || !d->rtgt) {
            if (d) free(d->rtok), free(d->rtgt), free(d);
            d = NULL;
            st = err_set(err, STATUS_NOMEM, "out of memory packing %ld rows", rows);
        } else {
            d->T = T;
            d->chat = true;
            d->n_rows = rows;
            d->n_truncated = c.n_truncated;
            long row = -1;
            used = T;
            for (long i = 0; i < c.n_convs; i++) {
                Conv *cv = &c.convs[i];
                if (used + cv->n > T) {
                    if (row >= 0)
                        for (int j = used; j < T; j++)
                            d->rtok[(size_t)row * T + j] = pad, d->rtgt[(size_t)row * T + j] = -1;
                    row++, used = 0;
                }
                memcpy(d->rtok + (size_t)row * T + used, cv->tok, (size_t)cv->n * sizeof(int32_t));
                memcpy(d->rtgt + (size_t)row * T + used, cv->tgt, (size_t)cv->n * sizeof(int32_t));
                used += cv->n;
                d->n_tokens += (uint64_t)cv->n + 1;
                for (int j = 0; j < cv->n; j++) d->n_targets += cv->tgt[j] >= 0;
            }
            for (int j = used; j < T; j++)
                d->rtok[(size_t)row * T + j] = pad, d->rtgt[(size_t)row * T + j] = -1;
        }
    }
    for (long i = 0; i < c.n_convs; i++) free(c.convs[i].tok), free(c.convs[i].tgt);
    free(c.convs);
    *out = d;
    return st;
}

void tdata_free(TData *d) {
    if (!d) return;
    free(d->stream);
    free(d->rtok);
    free(d->rtgt);
    free(d->perm);
    free(d);
}

long tdata_n_rows(const TData *d) { return d->n_rows; }
uint64_t tdata_n_tokens(const TData *d) { return d->n_tokens; }
uint64_t tdata_n_targets(const TData *d) { return d->n_targets; }
long tdata_n_truncated(const TData *d) { return d->n_truncated; }

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

uint64_t tdata_hash(const TData *d) {
    uint64_t h = 0xcbf29ce484222325ull;
    h = fnv(h, &d->T, sizeof d->T);
    if (d->chat) {
        h = fnv(h, d->rtok, (size_t)d->n_rows * d->T * sizeof(int32_t));
        h = fnv(h, d->rtgt, (size_t)d->n_rows * d->T * sizeof(int32_t));
    } else {
        h = fnv(h, d->stream, d->n_stream * sizeof(int32_t));
    }
    return h;
}

static void make_perm(TData *d, uint64_t epoch, uint64_t seed) {
    if (d->perm_valid && d->perm_epoch == epoch && d->perm_seed == seed) return;
    if (!d->perm) {
        d->perm = malloc((size_t)d->n_rows * sizeof *d->perm);
        ASSERT(d->perm);
    }
    for (long i = 0; i < d->n_rows; i++) d->perm[i] = (uint64_t)i;
    Rng r;
    rng_seed(&r, seed * 0x9e3779b97f4a7c15ull + epoch + 1);
    for (long i = d->n_rows - 1; i > 0; i--) {
        uint64_t j = rng_u64(&r) % (uint64_t)(i + 1);
        uint64_t t = d->perm[i];
        d->perm[i] = d->perm[j];
        d->perm[j] = t;
    }
    d->perm_epoch = epoch;
    d->perm_seed = seed;
    d->perm_valid = true;
}

void tdata_row(TData *d, uint64_t g, uint64_t seed, int32_t *tokens, int32_t *targets) {
    uint64_t n = (uint64_t)d->n_rows;
    make_perm(d, g / n, seed);
    uint64_t k = d->perm[g % n];
    size_t T = (size_t)d->T;
    if (d->chat) {
        memcpy(tokens, d->rtok + k * T, T * sizeof(int32_t));
        memcpy(targets, d->rtgt + k * T, T * sizeof(int32_t));
    } else {
        memcpy(tokens, d->stream + k * T, T * sizeof(int32_t));
        memcpy(targets, d->stream + k * T + 1, T * sizeof(int32_t));
    }
}
