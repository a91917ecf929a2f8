/* evalm.c - the metrics, records, tallies and likelihoods of `cgpt eval`.
 *
 * Normalisation works in place on code points decoded from UTF-8 (every
 * step only shrinks the text or keeps its length), so it needs no memory
 * beyond the output. Character classes follow Python 3's `re` and
 * str.split() for the characters our data holds; see is_word(). */
#include "engine/evalm.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/utf8.h"

/* ---- UTF-8 ---------------------------------------------------------------- */

/* Decode one character of s[0..n) (n >= 1) into *cp; returns its byte
 * length. A byte that does not start a valid, shortest-form sequence comes
 * back alone as cp = -1 - byte. */
static size_t utf8_next(const unsigned char *s, size_t n, int32_t *cp) {
    unsigned c = s[0];
    if (c < 0x80) {
        *cp = (int32_t)c;
        return 1;
    }
    size_t k = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 0;
    int32_t v = (int32_t)(k == 4 ? c & 0x07 : k == 3 ? c & 0x0F : c & 0x1F);
    static const int32_t MIN[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (k == 0 || c > 0xF4 || k > n)
        goto bad;
    for (size_t i = 1; i < k; i++) {
        if ((s[i] & 0xC0) != 0x80)
            goto bad;
        v = (v << 6) | (int32_t)(s[i] & 0x3F);
    }
    if (v < MIN[k] || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        goto bad;
    *cp = v;
    return k;
bad:
    *cp = -1 - (int32_t)c;
    return 1;
}

/* Write cp (as utf8_next returned it) to out; returns the byte count. */
static size_t utf8_put_cp(int32_t cp, char *out) {
    if (cp < 0) { /* a byte that was not valid UTF-8 goes back as it was */
        out[0] = (char)(unsigned char)(-1 - cp);
        return 1;
    }
    return (size_t)utf8_put((uint32_t)cp, out);
}

/* ---- character classes ----------------------------------------------------- */

/* Python's str.split() whitespace. */
static bool is_space(int32_t c) {
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
           c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
           c == 0x202F || c == 0x205F || c == 0x3000;
}

/* Lower case where it keeps the UTF-8 length: ASCII, Latin-1, Latin
 * Extended-A (but U+0130, which Python lowers to two characters), basic
 * Greek (capital sigma always to U+03C3: no final-sigma rule), basic
 * Cyrillic, Roman numerals, fullwidth Latin. See evalm.h. */
static int32_t to_lower(int32_t c) {
    if (c < 0x80)
        return c >= 'A' && c <= 'Z' ? c + 32 : c;
    if (c >= 0xC0 && c <= 0xDE && c != 0xD7)
        return c + 0x20;
    if (c >= 0x100 && c <= 0x17F) {
        if (c == 0x130 || c == 0x138 || c == 0x149 || c == 0x17F)
            return c;
        if (c == 0x178)
            return 0xFF;
        bool odd_upper = (c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E);
        return odd_upper ? (c & 1 ? c + 1 : c) : (c & 1 ? c : c + 1);
    }
    if (c >= 0x391 && c <= 0x3AB && c != 0x3A2)
        return c + 0x20;
    if (c == 0x386)
        return 0x3AC;
    if (c >= 0x388 && c <= 0x38A)
        return c + 37;
    if (c == 0x38C)
        return 0x3CC;
    if (c == 0x38E || c == 0x38F)
        return c + 63;
    if (c >= 0x410 && c <= 0x42F)
        return c + 0x20;
    if (c >= 0x400 && c <= 0x40F)
        return c + 0x50;
    if (c >= 0x2160 && c <= 0x216F)
        return c + 0x10;
    if (c >= 0xFF21 && c <= 0xFF3A)
        return c + 0x20;
    return c;
}

static bool is_ascii_punct(int32_t c) {
    return (c >= '!' && c <= '/') || (c >= ':' && c <= '@') || (c >= '[' && c <= '`') ||
           (c >= '{' && c <= '~');
}

/* Non-ASCII ranges that are not word characters for Python's \w (which is
 * str.isalnum() or '_'): controls, Latin-1 punctuation and symbols,
 * combining marks, general punctuation, currency, arrows, mathematical and
 * technical symbols, box drawing, shapes, dingbats, CJK punctuation,
 * fullwidth punctuation, emoji. Inclusive bounds. */
static const int32_t NONWORD[][2] = {
    {0x80, 0xA9},       {0xAB, 0xB1},       {0xB4, 0xB4},     {0xB6, 0xB8},     {0xBB, 0xBB},
    {0xBF, 0xBF},       {0xD7, 0xD7},       {0xF7, 0xF7},     {0x300, 0x36F},   {0x2000, 0x206F},
    {0x2072, 0x2073},   {0x207A, 0x207E},   {0x208A, 0x208F}, {0x209D, 0x20FF}, {0x2190, 0x245F},
    {0x2500, 0x2775},   {0x2794, 0x2BFF},   {0x2E00, 0x2E7F}, {0x3000, 0x3004}, {0x3008, 0x3020},
    {0x302A, 0x3030},   {0x3036, 0x3037},   {0x303D, 0x303F}, {0xFE00, 0xFE6F}, {0xFEFF, 0xFEFF},
    {0xFF01, 0xFF0F},   {0xFF1A, 0xFF20},   {0xFF3B, 0xFF40}, {0xFF5B, 0xFF65}, {0x1F000, 0x1F0FF},
    {0x1F10D, 0x1FAFF}, {0xE0000, 0xE01EF},
};

static bool is_word(int32_t c) {
    if (c < 0)
        return false; /* an invalid byte */
    if (c < 0x80)
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
               c == '_';
    if (is_space(c))
        return false;
    for (size_t i = 0; i < sizeof NONWORD / sizeof NONWORD[0]; i++)
        if (c >= NONWORD[i][0] && c <= NONWORD[i][1])
            return false;
    return true;
}

/* ---- normalisation ----------------------------------------------------------- */

/* remove_articles in place on out[0..n); returns the new length. A maximal
 * run of word characters that is exactly "a", "an" or "the" becomes one
 * space (what \b(a|an|the)\b matches). */
static size_t drop_articles(char *out, size_t n) {
    const unsigned char *u = (const unsigned char *)out;
    size_t r = 0, w = 0;
    while (r < n) {
        int32_t c;
        size_t k = utf8_next(u + r, n - r, &c);
        if (!is_word(c)) {
            memmove(out + w, out + r, k);
            w += k;
            r += k;
            continue;
        }
        size_t end = r + k; /* the run of word characters [r, end) */
        while (end < n) {
            size_t k2 = utf8_next(u + end, n - end, &c);
            if (!is_word(c))
                break;
            end += k2;
        }
        size_t len = end - r;
        bool article = (len == 1 && out[r] == 'a') || (len == 2 && !memcmp(out + r, "an", 2)) ||
                       (len == 3 && !memcmp(out + r, "the", 3));
        if (article) {
            out[w++] = ' ';
        } else {
            memmove(out + w, out + r, len);
            w += len;
        }
        r = end;
    }
    return w;
}

/* white_space_fix in place: words separated by single spaces. */
static size_t fix_spaces(char *out, size_t n) {
    const unsigned char *u = (const unsigned char *)out;
    size_t r = 0, w = 0;
    bool pending = false; /* a separator is due before the next word */
    while (r < n) {
        int32_t c;
        size_t k = utf8_next(u + r, n - r, &c);
        if (is_space(c)) {
            pending = w > 0;
        } else {
            if (pending)
                out[w++] = ' ';
            pending = false;
            memmove(out + w, out + r, k);
            w += k;
        }
        r += k;
    }
    return w;
}

size_t evalm_normalize(const char *s, size_t len, char *out) {
    const unsigned char *u = (const unsigned char *)s;
    size_t w = 0;
    for (size_t r = 0; r < len;) {
        int32_t c;
        r += utf8_next(u + r, len - r, &c);
        c = to_lower(c);
        if (!is_ascii_punct(c))
            w += utf8_put_cp(c, out + w);
    }
    w = drop_articles(out, w);
    w = fix_spaces(out, w);
    out[w] = '\0';
    return w;
}

/* ---- exact match and F1 --------------------------------------------------------- */

typedef struct {
    const char *p;
    size_t n;
} Slice;

static int slice_cmp(const void *a, const void *b) {
    const Slice *x = a, *y = b;
    size_t m = x->n < y->n ? x->n : y->n;
    int c = memcmp(x->p, y->p, m);
    return c ? c : (x->n > y->n) - (x->n < y->n);
}

/* Split normalised text at its single spaces into 'out' (room for len/2+1). */
static size_t split_words(const char *s, size_t len, Slice *out) {
    size_t n = 0, start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || s[i] == ' ') {
            if (i > start)
                out[n++] = (Slice){s + start, i - start};
            start = i + 1;
        }
    }
    return n;
}

Status evalm_score(const char *pred, size_t pred_len, const char *ref, size_t ref_len,
                   EvalmScore *out, Err *err) {
    out->exact_match = out->f1 = 0;
    if (pred_len > EVALM_MAX_ANSWER_BYTES || ref_len > EVALM_MAX_ANSWER_BYTES)
        return err_set(err, STATUS_LIMIT, "%s of %zu bytes is longer than %u bytes to score",
                       pred_len > EVALM_MAX_ANSWER_BYTES ? "a prediction" : "a reference",
                       pred_len > EVALM_MAX_ANSWER_BYTES ? pred_len : ref_len,
                       EVALM_MAX_ANSWER_BYTES);
    char *np = malloc(pred_len + 1), *nr = malloc(ref_len + 1);
    Slice *tp = malloc(sizeof(Slice) * (pred_len / 2 + 1));
    Slice *tr = malloc(sizeof(Slice) * (ref_len / 2 + 1));
    Status st = STATUS_OK;
    if (!np || !nr || !tp || !tr) {
        st = err_set(err, STATUS_NOMEM, "out of memory scoring %zu + %zu bytes", pred_len, ref_len);
        goto done;
    }
    size_t lp = evalm_normalize(pred, pred_len, np), lr = evalm_normalize(ref, ref_len, nr);
    out->exact_match = lp == lr && !memcmp(np, nr, lp);
    size_t kp = split_words(np, lp, tp), kr = split_words(nr, lr, tr);
    if (kp == 0 || kr == 0) {
        out->f1 = kp == kr;
        goto done;
    }
    qsort(tp, kp, sizeof(Slice), slice_cmp);
    qsort(tr, kr, sizeof(Slice), slice_cmp);
    size_t common = 0;
    for (size_t i = 0, j = 0; i < kp && j < kr;) {
        int c = slice_cmp(&tp[i], &tr[j]);
        if (c == 0) {
            common++;
            i++;
            j++;
        } else if (c < 0) {
            i++;
        } else {
            j++;
        }
    }
    if (common) {
        double p = (double)common / (double)kp, r = (double)common / (double)kr;
        out->f1 = 2 * p * r / (p + r);
    }
done:
    free(np);
    free(nr);
    free(tp);
    free(tr);
    return st;
}

/* ---- records ---------------------------------------------------------------------- */

/* Up to 40 bytes of 's' for an error message, with anything that is not
 * printable ASCII shown as '?'. */
static const char *clip(const char *s, char buf[48]) {
    size_t i = 0;
    for (; s[i] && i < 40; i++)
        buf[i] = s[i] >= 0x20 && s[i] < 0x7F ? s[i] : '?';
    if (s[i]) {
        memcpy(buf + i, "...", 3);
        i += 3;
    }
    buf[i] = '\0';
    return buf;
}

bool evalm_line_blank(const char *line, size_t len) {
    for (size_t i = 0; i < len; i++)
        if (line[i] != ' ' && line[i] != '\t' && line[i] != '\r')
            return false;
    return true;
}

static Status load_object(const char *line, size_t len, json_t **out, Err *err) {
    *out = NULL;
    if (len > EVALM_MAX_LINE_BYTES)
        return err_set(err, STATUS_LIMIT, "line of %zu bytes, more than %u", len,
                       EVALM_MAX_LINE_BYTES);
    json_error_t je;
    json_t *root = json_loadb(line, len, 0, &je);
    if (!root)
        return err_set(err, STATUS_FORMAT, "not JSON: %s (column %d)", je.text, je.column);
    if (!json_is_object(root)) {
        json_decref(root);
        return err_set(err, STATUS_FORMAT, "not a JSON object");
    }
    *out = root;
    return STATUS_OK;
}

static char *dup_bytes(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

Status evalm_parse_chat(const char *line, size_t len, EvalmChat *r, Err *err) {
    memset(r, 0, sizeof *r);
    json_t *root;
    Status st = load_object(line, len, &root, err);
    if (st)
        return st;
    char cb[48];
    json_t *msgs = json_object_get(root, "messages");
    size_t n = json_array_size(msgs);
    if (!msgs)
        st = err_set(err, STATUS_FORMAT, "\"messages\" is missing");
    else if (!json_is_array(msgs))
        st = err_set(err, STATUS_FORMAT, "\"messages\" is not an array");
    else if (n == 0)
        st = err_set(err, STATUS_FORMAT, "\"messages\" is empty (the last one is the reply)");
    else if (n > EVALM_MAX_MESSAGES)
        st = err_set(err, STATUS_LIMIT, "%zu messages, more than %d", n, EVALM_MAX_MESSAGES);
    for (size_t i = 0; !st && i < n; i++) {
        json_t *m = json_array_get(msgs, i), *role = json_object_get(m, "role");
        if (!json_is_object(m))
            st = err_set(err, STATUS_FORMAT, "message %zu is not an object", i);
        else if (!json_is_string(role))
            st = err_set(err, STATUS_FORMAT, "message %zu: \"role\" is missing or not a string", i);
        else if (!json_object_get(m, "content"))
            st = err_set(err, STATUS_FORMAT, "message %zu: \"content\" is missing", i);
    }
    if (st)
        goto fail;
    json_t *last = json_array_get(msgs, n - 1), *content = json_object_get(last, "content");
    const char *role = json_string_value(json_object_get(last, "role"));
    if (strcmp(role, "assistant")) {
        st = err_set(err, STATUS_FORMAT,
                     "the last message has role \"%s\", not \"assistant\" (it is the reply to "
                     "predict)",
                     clip(role, cb));
        goto fail;
    }
    if (!json_is_string(content)) {
        st = err_set(err, STATUS_FORMAT, "the last message's \"content\" is not a string");
        goto fail;
    }
    json_t *recipe = json_object_get(root, "recipe"), *check = json_object_get(root, "checkable");
    const char *rname = EVALM_DEFAULT_RECIPE;
    if (recipe && !json_is_string(recipe)) {
        st = err_set(err, STATUS_FORMAT, "\"recipe\" is not a string");
        goto fail;
    }
    if (recipe) {
        rname = json_string_value(recipe);
        size_t rl = json_string_length(recipe);
        if (rl == 0 || rl > EVALM_MAX_RECIPE_BYTES) {
            st = err_set(err, rl ? STATUS_LIMIT : STATUS_FORMAT,
                         "\"recipe\" has %zu bytes, not 1..%d", rl, EVALM_MAX_RECIPE_BYTES);
            goto fail;
        }
    }
    if (check && !json_is_boolean(check)) {
        st = err_set(err, STATUS_FORMAT, "\"checkable\" is not true or false");
        goto fail;
    }
    r->checkable = json_is_true(check);
    r->messages = json_incref(msgs);
    r->prompt = json_array();
    r->reply = dup_bytes(json_string_value(content), json_string_length(content));
    r->reply_len = json_string_length(content);
    r->recipe = dup_bytes(rname, strlen(rname));
    for (size_t i = 0; r->prompt && i + 1 < n; i++)
        if (json_array_append(r->prompt, json_array_get(msgs, i))) {
            json_decref(r->prompt);
            r->prompt = NULL;
        }
    if (!r->prompt || !r->reply || !r->recipe) {
        st = err_set(err, STATUS_NOMEM, "out of memory for a record of %zu bytes", len);
        goto fail;
    }
    json_decref(root);
    return STATUS_OK;
fail:
    evalm_chat_free(r);
    json_decref(root);
    return st;
}

void evalm_chat_free(EvalmChat *r) {
    if (!r)
        return;
    json_decref(r->messages);
    json_decref(r->prompt);
    free(r->reply);
    free(r->recipe);
    memset(r, 0, sizeof *r);
}

Status evalm_parse_text(const char *line, size_t len, char **text, size_t *n, Err *err) {
    *text = NULL;
    *n = 0;
    json_t *root;
    Status st = load_object(line, len, &root, err);
    if (st)
        return st;
    json_t *t = json_object_get(root, "text");
    if (!json_is_string(t)) {
        st = err_set(err, STATUS_FORMAT, "\"text\" is %s", t ? "not a string" : "missing");
    } else if (!(*text = dup_bytes(json_string_value(t), json_string_length(t)))) {
        st = err_set(err, STATUS_NOMEM, "out of memory for a document of %zu bytes",
                     json_string_length(t));
    } else {
        *n = json_string_length(t);
    }
    json_decref(root);
    return st;
}

Status evalm_chat_tokens(const ChatFormat *f, const Tokenizer *t, const EvalmChat *r,
                         EvalmChatIds *out, Err *err) {
    memset(out, 0, sizeof *out);
    size_t np = 0, nq = 0;
    Status st = chat_tokenize(f, t, r->prompt, true, NULL, &out->prompt, &np, err);
    if (!st && np == 0)
        st = err_set(err, STATUS_INVALID, "the prompt renders to no tokens");
    if (!st)
        st = chat_tokenize(f, t, r->messages, false, NULL, &out->ids, &nq, err);
    if (!st && (np > INT32_MAX || nq > INT32_MAX))
        st = err_set(err, STATUS_LIMIT, "%zu tokens, more than %d", np > nq ? np : nq, INT32_MAX);
    if (st) {
        evalm_chat_ids_free(out);
        return st;
    }
    size_t k = 0;
    while (k < np && k < nq && out->prompt[k] == out->ids[k])
        k++;
    out->n_prompt = (int)np;
    out->n_ids = (int)nq;
    out->first = k ? (int)k : 1;
    return STATUS_OK;
}

void evalm_chat_ids_free(EvalmChatIds *c) {
    if (!c)
        return;
    free(c->prompt);
    free(c->ids);
    memset(c, 0, sizeof *c);
}

/* ---- string index (recipe names, baseline pairs) ------------------------------------- */

typedef struct {
    char **keys;  /* (n) owned, NUL-terminated (keys may hold NULs: lens) */
    size_t *lens; /* (n) */
    int n, cap;
    int32_t *slots; /* (n_slots) entry index, -1 empty; n_slots a power of two */
    size_t n_slots;
} StrIndex;

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

static void sidx_free(StrIndex *x) {
    for (int i = 0; i < x->n; i++)
        free(x->keys[i]);
    free(x->keys);
    free(x->lens);
    free(x->slots);
    memset(x, 0, sizeof *x);
}

static int sidx_find(const StrIndex *x, const char *k, size_t len) {
    if (!x->n_slots)
        return -1;
    for (size_t i = hash_bytes(k, len) & (x->n_slots - 1);; i = (i + 1) & (x->n_slots - 1)) {
        int32_t e = x->slots[i];
        if (e < 0)
            return -1;
        if (x->lens[e] == len && !memcmp(x->keys[e], k, len))
            return e;
    }
}

static Status sidx_rehash(StrIndex *x, size_t n_slots, Err *err) {
    int32_t *s = malloc(sizeof(int32_t) * n_slots);
    if (!s)
        return err_set(err, STATUS_NOMEM, "out of memory for an index of %zu slots", n_slots);
    for (size_t i = 0; i < n_slots; i++)
        s[i] = -1;
    for (int e = 0; e < x->n; e++) {
        size_t i = hash_bytes(x->keys[e], x->lens[e]) & (n_slots - 1);
        while (s[i] >= 0)
            i = (i + 1) & (n_slots - 1);
        s[i] = e;
    }
    free(x->slots);
    x->slots = s;
    x->n_slots = n_slots;
    return STATUS_OK;
}

/* The index of key k[0..len), added when new (*added set). At most
 * 'max' entries (STATUS_LIMIT naming 'what'). */
static Status sidx_intern(StrIndex *x, const char *k, size_t len, int max, const char *what,
                          int *idx, bool *added, Err *err) {
    *added = false;
    if ((*idx = sidx_find(x, k, len)) >= 0)
        return STATUS_OK;
    if (x->n >= max)
        return err_set(err, STATUS_LIMIT, "more than %d %s", max, what);
    if (x->n == x->cap) {
        int cap = x->cap ? x->cap * 2 : 64;
        char **keys = realloc(x->keys, sizeof(char *) * (size_t)cap);
        if (keys)
            x->keys = keys;
        size_t *lens = keys ? realloc(x->lens, sizeof(size_t) * (size_t)cap) : NULL;
        if (lens)
            x->lens = lens;
        if (!keys || !lens)
            return err_set(err, STATUS_NOMEM, "out of memory for %d %s", cap, what);
        x->cap = cap;
    }
    if ((size_t)(x->n + 1) * 2 > x->n_slots) {
        Status st = sidx_rehash(x, x->n_slots ? x->n_slots * 2 : 128, err);
        if (st)
            return st;
    }
    char *copy = dup_bytes(k, len);
    if (!copy)
        return err_set(err, STATUS_NOMEM, "out of memory for a key of %zu bytes", len);
    int e = x->n++;
    x->keys[e] = copy;
    x->lens[e] = len;
    size_t i = hash_bytes(k, len) & (x->n_slots - 1);
    while (x->slots[i] >= 0)
        i = (i + 1) & (x->n_slots - 1);
    x->slots[i] = e;
    *idx = e;
    *added = true;
    return STATUS_OK;
}

/* ---- per-recipe tallies ---------------------------------------------------------------- */

struct EvalmTable {
    StrIndex names;
    EvalmRecipe *r; /* (names.n), capacity r_cap */
    int r_cap;
    EvalmRecipe *sorted;
};

EvalmTable *evalm_table_new(Err *err) {
    EvalmTable *t = calloc(1, sizeof *t);
    if (!t)
        err_set(err, STATUS_NOMEM, "out of memory");
    return t;
}

void evalm_table_free(EvalmTable *t) {
    if (!t)
        return;
    sidx_free(&t->names);
    free(t->r);
    free(t->sorted);
    free(t);
}

Status evalm_table_get(EvalmTable *t, const char *name, EvalmRecipe **out, Err *err) {
    if (t->names.n == t->r_cap) { /* room first, so that a new name always has its tally */
        int cap = t->r_cap ? t->r_cap * 2 : 64;
        EvalmRecipe *r = realloc(t->r, sizeof(EvalmRecipe) * (size_t)cap);
        if (!r)
            return err_set(err, STATUS_NOMEM, "out of memory for %d recipes", cap);
        t->r = r;
        t->r_cap = cap;
    }
    int idx;
    bool added;
    Status st =
        sidx_intern(&t->names, name, strlen(name), EVALM_MAX_RECIPES, "recipes", &idx, &added, err);
    if (st)
        return st;
    if (added) {
        memset(&t->r[idx], 0, sizeof(EvalmRecipe));
        t->r[idx].name = t->names.keys[idx];
    }
    *out = &t->r[idx];
    return STATUS_OK;
}

static int recipe_cmp(const void *a, const void *b) {
    return strcmp(((const EvalmRecipe *)a)->name, ((const EvalmRecipe *)b)->name);
}

EvalmRecipe *evalm_table_sorted(EvalmTable *t, int *n) {
    *n = 0;
    free(t->sorted);
    t->sorted = NULL;
    if (t->names.n == 0)
        return NULL;
    t->sorted = malloc(sizeof(EvalmRecipe) * (size_t)t->names.n);
    if (!t->sorted)
        return NULL;
    memcpy(t->sorted, t->r, sizeof(EvalmRecipe) * (size_t)t->names.n);
    qsort(t->sorted, (size_t)t->names.n, sizeof(EvalmRecipe), recipe_cmp);
    *n = t->names.n;
    return t->sorted;
}

/* ---- the baseline ----------------------------------------------------------------------- */

struct EvalmBaseline {
    StrIndex recipes; /* recipe -> best[] */
    int32_t *best;    /* (recipes.n) the pair with the most counts so far */
    StrIndex pairs;   /* "recipe\0reply" -> count[] */
    long *count;      /* (pairs.cap) */
    size_t *rlen;     /* (pairs.cap) bytes of the recipe part of the key */
};

EvalmBaseline *evalm_baseline_new(Err *err) {
    EvalmBaseline *b = calloc(1, sizeof *b);
    if (!b)
        err_set(err, STATUS_NOMEM, "out of memory");
    return b;
}

void evalm_baseline_free(EvalmBaseline *b) {
    if (!b)
        return;
    sidx_free(&b->recipes);
    sidx_free(&b->pairs);
    free(b->best);
    free(b->count);
    free(b->rlen);
    free(b);
}

/* Is pair a a better baseline than pair c (more counts; ties: smaller reply)? */
static bool pair_better(const EvalmBaseline *b, int a, int c) {
    if (b->count[a] != b->count[c])
        return b->count[a] > b->count[c];
    Slice x = {b->pairs.keys[a] + b->rlen[a] + 1, b->pairs.lens[a] - b->rlen[a] - 1};
    Slice y = {b->pairs.keys[c] + b->rlen[c] + 1, b->pairs.lens[c] - b->rlen[c] - 1};
    return slice_cmp(&x, &y) < 0;
}

#define EVALM_MAX_PAIRS (1 << 30) /* distinct (recipe, reply) pairs a baseline counts */

Status evalm_baseline_add(EvalmBaseline *b, const char *recipe, const char *reply, size_t reply_len,
                          Err *err) {
    size_t rl = strlen(recipe);
    if (reply_len > EVALM_MAX_LINE_BYTES)
        return err_set(err, STATUS_LIMIT, "a reply of %zu bytes, more than %u", reply_len,
                       EVALM_MAX_LINE_BYTES);
    int ri, pi;
    bool added;
    Status st =
        sidx_intern(&b->recipes, recipe, rl, EVALM_MAX_RECIPES, "recipes", &ri, &added, err);
    if (st)
        return st;
    if (added) {
        int32_t *best = realloc(b->best, sizeof(int32_t) * (size_t)b->recipes.cap);
        if (!best)
            return err_set(err, STATUS_NOMEM, "out of memory for %d recipes", b->recipes.cap);
        b->best = best;
        b->best[ri] = -1;
    }
    char *key = malloc(rl + 1 + reply_len);
    if (!key)
        return err_set(err, STATUS_NOMEM, "out of memory for a reply of %zu bytes", reply_len);
    memcpy(key, recipe, rl + 1);
    memcpy(key + rl + 1, reply, reply_len);
    st = sidx_intern(&b->pairs, key, rl + 1 + reply_len, EVALM_MAX_PAIRS, "distinct replies", &pi,
                     &added, err);
    free(key);
    if (st)
        return st;
    if (added) {
        long *count = realloc(b->count, sizeof(long) * (size_t)b->pairs.cap);
        if (count)
            b->count = count;
        size_t *rlen = count ? realloc(b->rlen, sizeof(size_t) * (size_t)b->pairs.cap) : NULL;
        if (rlen)
            b->rlen = rlen;
        if (!count || !rlen)
            return err_set(err, STATUS_NOMEM, "out of memory for %d replies", b->pairs.cap);
        b->count[pi] = 0;
        b->rlen[pi] = rl;
    }
    b->count[pi]++;
    /* counts only grow, so the best is the old best or this pair */
    if (b->best[ri] < 0 || pair_better(b, pi, b->best[ri]))
        b->best[ri] = pi;
    return STATUS_OK;
}

const char *evalm_baseline_get(const EvalmBaseline *b, const char *recipe, size_t *len) {
    *len = 0;
    int ri = sidx_find(&b->recipes, recipe, strlen(recipe));
    if (ri < 0 || b->best[ri] < 0)
        return NULL;
    int pi = b->best[ri];
    *len = b->pairs.lens[pi] - b->rlen[pi] - 1;
    return b->pairs.keys[pi] + b->rlen[pi] + 1;
}

/* ---- likelihood ------------------------------------------------------------------------- */

#define EVALM_SCORE_ROWS 32 /* rows with logits per forward (each keeps n_vocab floats) */

/* -log softmax(l)[target] in double precision. */
static double nll_of(const float *l, int V, int target) {
    double mx = l[0], sum = 0;
    for (int v = 1; v < V; v++)
        mx = l[v] > mx ? l[v] : mx;
    for (int v = 0; v < V; v++)
        sum += exp((double)l[v] - mx);
    return mx + log(sum) - (double)l[target];
}

Status evalm_score_tokens(GenSession *s, const int32_t *ids, int n, int first, double *nll,
                          long *count, Err *err) {
    if (first < 1 || first >= n || n > s->cap)
        return err_set(err, STATUS_INVALID, "cannot score tokens %d..%d in a context of %d", first,
                       n, s->cap);
    int V = model_config(s->m)->n_vocab, n_batch = model_params(s->m)->n_batch;
    int rows_max = n_batch < EVALM_SCORE_ROWS ? n_batch : EVALM_SCORE_ROWS;
    float *lg = malloc(sizeof(float) * (size_t)V * (size_t)rows_max);
    BatchRow *rows = malloc(sizeof(BatchRow) * (size_t)n_batch);
    Status st = STATUS_OK;
    if (!lg || !rows) {
        st = err_set(err, STATUS_NOMEM, "out of memory for %d rows of %d logits", rows_max, V);
        goto done;
    }
    /* Reuse the cached prefix, but recompute from position first-1 on:
     * those rows' logits are needed. */
    int reuse = 0;
    while (reuse < s->n_cached && reuse < first - 1 && s->cached[reuse] == ids[reuse])
        reuse++;
    s->n_cached = reuse;
    /* Feed positions [reuse, n-1): a row at p predicts ids[p + 1]. */
    for (int at = reuse; at < n - 1;) {
        bool want = at + 1 >= first;
        int left = want ? n - 1 - at : first - 1 - at;
        int cap = want ? rows_max : n_batch;
        int k = left < cap ? left : cap;
        for (int i = 0; i < k; i++)
            rows[i] = (BatchRow){ids[at + i], at + i, s->seq, want};
        if ((st = model_forward(s->m, rows, k, lg, err))) {
            gen_session_reset(s); /* the cache may hold part of the chunk */
            goto done;
        }
        memcpy(s->cached + at, ids + at, sizeof(int32_t) * (size_t)k);
        s->n_cached = at + k;
        for (int i = 0; want && i < k; i++) {
            *nll += nll_of(lg + (size_t)i * (size_t)V, V, ids[at + i + 1]);
            (*count)++;
        }
        at += k;
    }
done:
    free(lg);
    free(rows);
    return st;
}

Status evalm_score_text(GenSession *s, const int32_t *ids, size_t n, int32_t bos, double *nll,
                        long *count, Err *err) {
    int cap = s->cap;
    if (cap < 2)
        return err_set(err, STATUS_INVALID, "a context of %d cannot score text", cap);
    size_t step = (size_t)cap - 1;
    int32_t *piece = bos >= 0 ? malloc(sizeof(int32_t) * (size_t)cap) : NULL;
    if (bos >= 0 && !piece)
        return err_set(err, STATUS_NOMEM, "out of memory for a context of %d", cap);
    Status st = STATUS_OK;
    for (size_t a = 0; a < n && !st; a += step) {
        if (bos >= 0) { /* bos + ids[a, a+m), all m predicted */
            size_t m = n - a < step ? n - a : step;
            piece[0] = bos;
            memcpy(piece + 1, ids + a, sizeof(int32_t) * m);
            st = gen_score(s, piece, (int)m + 1, 1, nll, count, err);
        } else { /* ids[a, a+len), ids[a] predicted by the piece before (or never) */
            size_t len = n - a < (size_t)cap ? n - a : (size_t)cap;
            if (len < 2)
                break;
            st = gen_score(s, ids + a, (int)len, 1, nll, count, err);
        }
    }
    free(piece);
    return st;
}
