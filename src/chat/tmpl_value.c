/* tmpl_value.c - the template engine's arena, error unwinding, values, and
 * their Python-compatible formatting: str() and repr() of every kind,
 * float repr (shortest round-trip digits, Python's switch to exponent form),
 * and json.dumps as transformers' tojson calls it (ensure_ascii, indent,
 * separators, sort_keys). Every byte written keeps the mask of the value
 * byte it came from; punctuation the formatter adds is template text (1),
 * numbers and booleans formatted from data are data (0).
 *
 * It does not evaluate anything (tmpl_eval.c) nor parse (tmpl_lex.c,
 * tmpl_parse.c). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat/tmpl_impl.h"

/* ---- arena ---- */

void *ta_alloc(TArena *a, size_t n, TFail *f) {
    n = (n + 15) & ~(size_t)15;
    if (n == 0)
        n = 16;
    if (!a->head || a->head->cap - a->head->used < n) {
        size_t cap = n > TMPL_ARENA_CHUNK ? n : TMPL_ARENA_CHUNK;
        if (a->limit && (cap > a->limit || a->total > a->limit - cap))
            tfail(f, STATUS_LIMIT, 0, 0, "template uses more than %zu bytes of memory", a->limit);
        TChunk *c = malloc(sizeof *c + cap);
        if (!c)
            tfail(f, STATUS_NOMEM, 0, 0, "out of memory (%zu bytes)", cap);
        c->next = a->head;
        c->used = 0;
        c->cap = cap;
        a->head = c;
        a->total += cap;
    }
    void *p = a->head->data + a->head->used;
    a->head->used += n;
    return p;
}

void ta_free(TArena *a) {
    TChunk *c = a->head;
    while (c) {
        TChunk *next = c->next;
        free(c);
        c = next;
    }
    a->head = NULL;
    a->total = 0;
}

void tfail(TFail *f, Status s, int line, int col, const char *fmt, ...) {
    char msg[ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (line > 0)
        err_set(f->err, s, "line %d, column %d: %s", line, col, msg);
    else
        err_set(f->err, s, "%s", msg);
    longjmp(f->jb, 1);
}

/* ---- buffers ---- */

void tb_init(TBuf *b, TArena *a, TFail *f, size_t limit) {
    memset(b, 0, sizeof *b);
    b->a = a;
    b->f = f;
    b->limit = limit;
}

static void tb_grow(TBuf *b, size_t need) {
    if (b->limit && need > b->limit)
        tfail(b->f, STATUS_LIMIT, 0, 0, "template output exceeds %zu bytes", b->limit);
    size_t cap = b->cap ? b->cap * 2 : 64;
    while (cap < need)
        cap *= 2;
    char *nb = ta_alloc(b->a, cap, b->f);
    uint8_t *nm = ta_alloc(b->a, cap, b->f);
    if (b->n) {
        memcpy(nb, b->b, b->n);
        memcpy(nm, b->m, b->n);
    }
    b->b = nb;
    b->m = nm;
    b->cap = cap;
}

void tb_put(TBuf *b, const char *s, size_t n, uint8_t mask) {
    if (n == 0)
        return;
    if (b->cap - b->n < n)
        tb_grow(b, b->n + n);
    memcpy(b->b + b->n, s, n);
    memset(b->m + b->n, mask, n);
    b->n += n;
}

void tb_puts(TBuf *b, const char *s, uint8_t mask) { tb_put(b, s, strlen(s), mask); }

void tb_put_str(TBuf *b, TStr s) {
    if (s.n == 0)
        return;
    if (b->cap - b->n < s.n)
        tb_grow(b, b->n + s.n);
    memcpy(b->b + b->n, s.b, s.n);
    memcpy(b->m + b->n, s.m, s.n);
    b->n += s.n;
}

TStr tb_str(const TBuf *b) {
    TStr s = {b->b ? b->b : "", b->m ? b->m : (const uint8_t *)"", b->n};
    return s;
}

/* ---- constructors ---- */

TValue tv_undef(const char *name) {
    TValue v = {.kind = V_UNDEF};
    v.u.undef_name = name;
    return v;
}
TValue tv_none(void) { return (TValue){.kind = V_NONE}; }
TValue tv_bool(bool b) {
    TValue v = {.kind = V_BOOL};
    v.u.i = b;
    return v;
}
TValue tv_int(int64_t i) {
    TValue v = {.kind = V_INT};
    v.u.i = i;
    return v;
}
TValue tv_float(double f) {
    TValue v = {.kind = V_FLOAT};
    v.u.f = f;
    return v;
}
TValue tv_str(TStr s) {
    TValue v = {.kind = V_STR};
    v.u.s = s;
    return v;
}
TValue tv_lit(TArena *a, TFail *f, const char *s, size_t n, uint8_t mask) {
    char *b = ta_alloc(a, n + 1, f);
    uint8_t *m = ta_alloc(a, n + 1, f);
    memcpy(b, s, n);
    b[n] = '\0';
    memset(m, mask, n);
    TStr st = {b, m, n};
    return tv_str(st);
}

TList *tl_new(TArena *a, TFail *f, size_t cap) {
    TList *l = ta_alloc(a, sizeof *l, f);
    memset(l, 0, sizeof *l);
    if (cap) {
        l->v = ta_alloc(a, cap * sizeof *l->v, f);
        l->cap = cap;
    }
    return l;
}

void tl_push(TArena *a, TFail *f, TList *l, TValue v) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 4;
        TValue *nv = ta_alloc(a, cap * sizeof *nv, f);
        if (l->n)
            memcpy(nv, l->v, l->n * sizeof *nv);
        l->v = nv;
        l->cap = cap;
    }
    l->v[l->n++] = v;
}

TDict *td_new(TArena *a, TFail *f, size_t cap) {
    TDict *d = ta_alloc(a, sizeof *d, f);
    memset(d, 0, sizeof *d);
    if (cap) {
        d->k = ta_alloc(a, cap * sizeof *d->k, f);
        d->v = ta_alloc(a, cap * sizeof *d->v, f);
        d->cap = cap;
    }
    return d;
}

long td_find_str(const TDict *d, const char *k, size_t n) {
    for (size_t i = 0; i < d->n; i++) {
        TValue kv = d->k[i];
        if (kv.kind == V_STR && kv.u.s.n == n && memcmp(kv.u.s.b, k, n) == 0)
            return (long)i;
    }
    return -1;
}

bool tv_is_strkey(TValue v, const char *s) {
    size_t n = strlen(s);
    return v.kind == V_STR && v.u.s.n == n && memcmp(v.u.s.b, s, n) == 0;
}

/* Keys are compared with Python equality for scalars (1 == 1.0 == True). */
static bool key_eq(TValue a, TValue b) {
    if (a.kind == V_STR || b.kind == V_STR)
        return a.kind == b.kind && a.u.s.n == b.u.s.n && memcmp(a.u.s.b, b.u.s.b, a.u.s.n) == 0;
    bool an = a.kind == V_INT || a.kind == V_BOOL || a.kind == V_FLOAT;
    bool bn = b.kind == V_INT || b.kind == V_BOOL || b.kind == V_FLOAT;
    if (an && bn) {
        double x = a.kind == V_FLOAT ? a.u.f : (double)a.u.i;
        double y = b.kind == V_FLOAT ? b.u.f : (double)b.u.i;
        if (a.kind != V_FLOAT && b.kind != V_FLOAT)
            return a.u.i == b.u.i;
        return x == y;
    }
    if (a.kind == V_NONE || b.kind == V_NONE)
        return a.kind == b.kind;
    return false;
}

void td_set(TArena *a, TFail *f, TDict *d, TValue k, TValue v) {
    for (size_t i = 0; i < d->n; i++) {
        if (key_eq(d->k[i], k)) {
            d->v[i] = v;
            return;
        }
    }
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 4;
        TValue *nk = ta_alloc(a, cap * sizeof *nk, f);
        TValue *nv = ta_alloc(a, cap * sizeof *nv, f);
        if (d->n) {
            memcpy(nk, d->k, d->n * sizeof *nk);
            memcpy(nv, d->v, d->n * sizeof *nv);
        }
        d->k = nk;
        d->v = nv;
        d->cap = cap;
    }
    d->k[d->n] = k;
    d->v[d->n] = v;
    d->n++;
}

/* ---- UTF-8 ---- */

uint32_t tu_cp(const char *s, size_t n, size_t i, size_t *len) {
    const unsigned char *p = (const unsigned char *)s + i;
    size_t left = n - i;
    unsigned c = p[0];
    if (c < 0x80) {
        *len = 1;
        return c;
    }
    size_t k = c >= 0xf0 && c < 0xf8 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 0;
    if (k == 0 || k > left) {
        *len = 1;
        return c;
    }
    uint32_t cp = c & (0x7f >> k);
    for (size_t j = 1; j < k; j++) {
        if ((p[j] & 0xc0) != 0x80) {
            *len = 1;
            return c;
        }
        cp = (cp << 6) | (p[j] & 0x3f);
    }
    *len = k;
    return cp;
}

size_t tu_len(const char *s, size_t n, size_t i) {
    size_t l;
    tu_cp(s, n, i, &l);
    return l;
}

size_t tu_count(const char *s, size_t n) {
    size_t c = 0;
    for (size_t i = 0; i < n; i += tu_len(s, n, i))
        c++;
    return c;
}

/* Python's str.isspace(). */
bool tu_isspace(uint32_t cp) {
    if ((cp >= 0x09 && cp <= 0x0d) || (cp >= 0x1c && cp <= 0x20))
        return true;
    return cp == 0x85 || cp == 0xa0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200a) ||
           cp == 0x2028 || cp == 0x2029 || cp == 0x202f || cp == 0x205f || cp == 0x3000;
}

size_t tu_lspace(const char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        size_t l;
        uint32_t cp = tu_cp(s, n, i, &l);
        if (!tu_isspace(cp))
            break;
        i += l;
    }
    return i;
}

size_t tu_rspace(const char *s, size_t n) {
    size_t end = n;
    while (end > 0) {
        size_t st = end - 1;
        while (st > 0 && end - st < 4 && ((unsigned char)s[st] & 0xc0) == 0x80)
            st--;
        size_t l;
        uint32_t cp = tu_cp(s, n, st, &l);
        if (st + l != end) { /* not a whole character: a stray byte */
            st = end - 1;
            cp = (unsigned char)s[st];
        }
        if (!tu_isspace(cp))
            break;
        end = st;
    }
    return n - end;
}

/* ---- formatting ---- */

void tv_write_float(TBuf *b, double x, uint8_t mask, bool json) {
    char out[64];
    if (isnan(x)) {
        tb_puts(b, json ? "NaN" : "nan", mask);
        return;
    }
    if (isinf(x)) {
        tb_puts(b, x < 0 ? (json ? "-Infinity" : "-inf") : (json ? "Infinity" : "inf"), mask);
        return;
    }
    /* shortest %e precision that reads back as the same double */
    char e[40];
    for (int p = 1; p <= 17; p++) {
        snprintf(e, sizeof e, "%.*e", p - 1, x);
        if (strtod(e, NULL) == x)
            break;
    }
    /* e: [-]d[.ddd]e[+-]xx */
    const char *q = e;
    size_t o = 0;
    if (*q == '-') {
        out[o++] = '-';
        q++;
    }
    char dig[24];
    size_t nd = 0;
    for (; *q && *q != 'e'; q++)
        if (*q != '.')
            dig[nd++] = *q;
    int ex = atoi(q + 1);
    while (nd > 1 && dig[nd - 1] == '0')
        nd--;
    int decpt = ex + 1;
    if (decpt > -4 && decpt <= 16) {
        if (decpt <= 0) {
            out[o++] = '0';
            out[o++] = '.';
            for (int i = 0; i < -decpt; i++)
                out[o++] = '0';
            for (size_t i = 0; i < nd; i++)
                out[o++] = dig[i];
        } else if ((size_t)decpt >= nd) {
            for (size_t i = 0; i < nd; i++)
                out[o++] = dig[i];
            for (size_t i = nd; i < (size_t)decpt; i++)
                out[o++] = '0';
            out[o++] = '.';
            out[o++] = '0';
        } else {
            for (size_t i = 0; i < nd; i++) {
                if (i == (size_t)decpt)
                    out[o++] = '.';
                out[o++] = dig[i];
            }
        }
        out[o] = '\0';
    } else {
        out[o++] = dig[0];
        if (nd > 1) {
            out[o++] = '.';
            for (size_t i = 1; i < nd; i++)
                out[o++] = dig[i];
        }
        snprintf(out + o, sizeof out - o, "e%c%02d", ex < 0 ? '-' : '+', ex < 0 ? -ex : ex);
    }
    tb_puts(b, out, mask);
}

static void write_int(TBuf *b, int64_t i, uint8_t mask) {
    char s[32];
    snprintf(s, sizeof s, "%lld", (long long)i);
    tb_puts(b, s, mask);
}

static void check_depth(TBuf *b, int depth) {
    if (depth > TMPL_MAX_VALUE_DEPTH)
        tfail(b->f, STATUS_LIMIT, 0, 0, "value nested deeper than %d", TMPL_MAX_VALUE_DEPTH);
}

/* repr() of a string: Python picks ' unless the text has ' and no ". */
static void write_str_repr(TBuf *b, TStr s) {
    bool has_sq = memchr(s.b, '\'', s.n) != NULL, has_dq = memchr(s.b, '"', s.n) != NULL;
    char q = has_sq && !has_dq ? '"' : '\'';
    tb_put(b, &q, 1, 1);
    for (size_t i = 0; i < s.n;) {
        size_t l;
        uint32_t cp = tu_cp(s.b, s.n, i, &l);
        uint8_t m = s.m[i];
        char esc[16];
        if (cp == (uint32_t)q || cp == '\\') {
            esc[0] = '\\';
            esc[1] = (char)cp;
            tb_put(b, esc, 2, m);
        } else if (cp == '\n') {
            tb_put(b, "\\n", 2, m);
        } else if (cp == '\r') {
            tb_put(b, "\\r", 2, m);
        } else if (cp == '\t') {
            tb_put(b, "\\t", 2, m);
        } else if (cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp <= 0xa0) || cp == 0xad) {
            snprintf(esc, sizeof esc, "\\x%02x", (unsigned)cp);
            tb_put(b, esc, 4, m);
        } else {
            tb_put(b, s.b + i, l, m);
        }
        i += l;
    }
    tb_put(b, &q, 1, 1);
}

static void write_obj(TBuf *b, TValue v, int depth, bool repr) {
    switch ((VKind)v.kind) {
    case V_UNDEF:
        if (repr)
            tb_puts(b, "Undefined", 1);
        return;
    case V_NONE:
        tb_puts(b, "None", !v.data);
        return;
    case V_BOOL:
        tb_puts(b, v.u.i ? "True" : "False", !v.data);
        return;
    case V_INT:
        write_int(b, v.u.i, !v.data);
        return;
    case V_FLOAT:
        tv_write_float(b, v.u.f, !v.data, false);
        return;
    case V_STR:
        if (repr)
            write_str_repr(b, v.u.s);
        else
            tb_put_str(b, v.u.s);
        return;
    case V_LIST: {
        check_depth(b, depth);
        const TList *l = v.u.l;
        if (l->gen) {
            tb_puts(b, "<generator object>", 1);
            return;
        }
        tb_puts(b, l->tuple ? "(" : "[", 1);
        for (size_t i = 0; i < l->n; i++) {
            if (i)
                tb_puts(b, ", ", 1);
            write_obj(b, l->v[i], depth + 1, true);
        }
        if (l->tuple && l->n == 1)
            tb_puts(b, ",", 1);
        tb_puts(b, l->tuple ? ")" : "]", 1);
        return;
    }
    case V_DICT:
    case V_NS: {
        check_depth(b, depth);
        const TDict *d = v.u.d;
        tb_puts(b, v.kind == V_NS ? "<Namespace {" : "{", 1);
        for (size_t i = 0; i < d->n; i++) {
            if (i)
                tb_puts(b, ", ", 1);
            write_obj(b, d->k[i], depth + 1, true);
            tb_puts(b, ": ", 1);
            write_obj(b, d->v[i], depth + 1, true);
        }
        tb_puts(b, v.kind == V_NS ? "}>" : "}", 1);
        return;
    }
    case V_MACRO:
        tb_puts(b, "<Macro>", 1);
        return;
    case V_FUNC:
    case V_METHOD:
        tb_puts(b, "<built-in function>", 1);
        return;
    case V_LOOP:
        tb_puts(b, "<LoopContext>", 1);
        return;
    }
}

void tv_write_str(TBuf *b, TValue v, int depth) { write_obj(b, v, depth, false); }
void tv_write_repr(TBuf *b, TValue v, int depth) { write_obj(b, v, depth, true); }

/* ---- json.dumps ---- */

static void json_str(TBuf *b, TStr s, bool ascii) {
    tb_puts(b, "\"", 1);
    for (size_t i = 0; i < s.n;) {
        size_t l;
        uint32_t cp = tu_cp(s.b, s.n, i, &l);
        uint8_t m = s.m[i];
        char esc[16];
        switch (cp) {
        case '"':
            tb_put(b, "\\\"", 2, m);
            break;
        case '\\':
            tb_put(b, "\\\\", 2, m);
            break;
        case '\n':
            tb_put(b, "\\n", 2, m);
            break;
        case '\r':
            tb_put(b, "\\r", 2, m);
            break;
        case '\t':
            tb_put(b, "\\t", 2, m);
            break;
        case '\b':
            tb_put(b, "\\b", 2, m);
            break;
        case '\f':
            tb_put(b, "\\f", 2, m);
            break;
        default:
            if (cp < 0x20 || (ascii && cp >= 0x7f)) {
                if (cp >= 0x10000) {
                    uint32_t c = cp - 0x10000;
                    snprintf(esc, sizeof esc, "\\u%04x\\u%04x", 0xd800 + (c >> 10),
                             0xdc00 + (c & 0x3ff));
                    tb_put(b, esc, 12, m);
                } else {
                    snprintf(esc, sizeof esc, "\\u%04x", (unsigned)cp);
                    tb_put(b, esc, 6, m);
                }
            } else {
                tb_put(b, s.b + i, l, m);
            }
        }
        i += l;
    }
    tb_puts(b, "\"", 1);
}

static void json_newline(TBuf *b, const TJsonOpts *o, int level) {
    tb_puts(b, "\n", 1);
    for (int i = 0; i < level; i++)
        tb_put(b, o->indent, o->indent_n, 1);
}

/* A dict key as json.dumps writes it: strings as they are, numbers,
 * booleans and None converted; anything else is a TypeError. */
static void json_key(TBuf *b, TValue k, const TJsonOpts *o) {
    switch (k.kind) {
    case V_STR:
        json_str(b, k.u.s, o->ensure_ascii);
        return;
    case V_INT:
        tb_puts(b, "\"", 1);
        write_int(b, k.u.i, !k.data);
        tb_puts(b, "\"", 1);
        return;
    case V_FLOAT:
        tb_puts(b, "\"", 1);
        tv_write_float(b, k.u.f, !k.data, true);
        tb_puts(b, "\"", 1);
        return;
    case V_BOOL:
        tb_puts(b, k.u.i ? "\"true\"" : "\"false\"", !k.data);
        return;
    case V_NONE:
        tb_puts(b, "\"null\"", !k.data);
        return;
    default:
        tfail(b->f, STATUS_INVALID, 0, 0, "tojson: keys must be str, int, float, bool or None");
    }
}

static int str_cmp(TStr a, TStr b) {
    size_t n = a.n < b.n ? a.n : b.n;
    int c = memcmp(a.b, b.b, n);
    if (c)
        return c;
    return a.n < b.n ? -1 : a.n > b.n;
}

void tv_write_json(TBuf *b, TValue v, const TJsonOpts *o, int level, int depth) {
    check_depth(b, depth);
    switch ((VKind)v.kind) {
    case V_NONE:
        tb_puts(b, "null", !v.data);
        return;
    case V_BOOL:
        tb_puts(b, v.u.i ? "true" : "false", !v.data);
        return;
    case V_INT:
        write_int(b, v.u.i, !v.data);
        return;
    case V_FLOAT:
        tv_write_float(b, v.u.f, !v.data, true);
        return;
    case V_STR:
        json_str(b, v.u.s, o->ensure_ascii);
        return;
    case V_LIST: {
        const TList *l = v.u.l;
        if (l->gen)
            tfail(b->f, STATUS_INVALID, 0, 0,
                  "tojson: Object of type generator is not JSON serializable");
        if (l->n == 0) {
            tb_puts(b, "[]", 1);
            return;
        }
        tb_puts(b, "[", 1);
        for (size_t i = 0; i < l->n; i++) {
            if (i)
                tb_put_str(b, o->item_sep);
            if (o->indent)
                json_newline(b, o, level + 1);
            tv_write_json(b, l->v[i], o, level + 1, depth + 1);
        }
        if (o->indent)
            json_newline(b, o, level);
        tb_puts(b, "]", 1);
        return;
    }
    case V_DICT: {
        const TDict *d = v.u.d;
        if (d->n == 0) {
            tb_puts(b, "{}", 1);
            return;
        }
        /* order: insertion, or sorted by key (insertion sort: stable, dicts are small) */
        size_t *ord = ta_alloc(b->a, d->n * sizeof *ord, b->f);
        for (size_t i = 0; i < d->n; i++) {
            ord[i] = i;
            if (o->sort_keys) {
                if (d->k[i].kind != V_STR)
                    tfail(b->f, STATUS_INVALID, 0, 0, "tojson: sort_keys needs string keys");
                size_t j = i;
                while (j > 0 && str_cmp(d->k[ord[j - 1]].u.s, d->k[i].u.s) > 0) {
                    ord[j] = ord[j - 1];
                    j--;
                }
                ord[j] = i;
            }
        }
        tb_puts(b, "{", 1);
        for (size_t i = 0; i < d->n; i++) {
            if (i)
                tb_put_str(b, o->item_sep);
            if (o->indent)
                json_newline(b, o, level + 1);
            json_key(b, d->k[ord[i]], o);
            tb_put_str(b, o->key_sep);
            tv_write_json(b, d->v[ord[i]], o, level + 1, depth + 1);
        }
        if (o->indent)
            json_newline(b, o, level);
        tb_puts(b, "}", 1);
        return;
    }
    default:
        tfail(b->f, STATUS_INVALID, 0, 0, "tojson: Object of type %s is not JSON serializable",
              v.kind == V_UNDEF  ? "Undefined"
              : v.kind == V_NS   ? "Namespace"
              : v.kind == V_LOOP ? "LoopContext"
                                 : "function");
    }
}

/* ---- from JSON ---- */

TValue tv_from_json(TArena *a, TFail *f, const json_t *j, int depth) {
    return tv_from_json_as(a, f, j, depth, 0);
}

TValue tv_from_json_as(TArena *a, TFail *f, const json_t *j, int depth, uint8_t trusted) {
    if (depth > TMPL_MAX_VALUE_DEPTH)
        tfail(f, STATUS_LIMIT, 0, 0, "variables nested deeper than %d", TMPL_MAX_VALUE_DEPTH);
    TValue v;
    switch (json_typeof(j)) {
    case JSON_OBJECT: {
        TDict *d = td_new(a, f, json_object_size(j));
        const char *k;
        json_t *jv;
        json_object_foreach((json_t *)j, k, jv) {
            /* keys are unique in a JSON object: append without searching */
            d->k[d->n] = tv_lit(a, f, k, strlen(k), trusted);
            d->v[d->n] = tv_from_json_as(a, f, jv, depth + 1, trusted);
            d->n++;
        }
        v = (TValue){.kind = V_DICT};
        v.u.d = d;
        break;
    }
    case JSON_ARRAY: {
        size_t n = json_array_size(j);
        TList *l = tl_new(a, f, n);
        for (size_t i = 0; i < n; i++)
            l->v[i] = tv_from_json_as(a, f, json_array_get(j, i), depth + 1, trusted);
        l->n = n;
        v = (TValue){.kind = V_LIST};
        v.u.l = l;
        break;
    }
    case JSON_STRING:
        v = tv_lit(a, f, json_string_value(j), json_string_length(j), trusted);
        break;
    case JSON_INTEGER:
        v = tv_int((int64_t)json_integer_value(j));
        break;
    case JSON_REAL:
        v = tv_float(json_real_value(j));
        break;
    case JSON_TRUE:
        v = tv_bool(true);
        break;
    case JSON_FALSE:
        v = tv_bool(false);
        break;
    default:
        v = tv_none();
        break;
    }
    v.data = !trusted;
    return v;
}
