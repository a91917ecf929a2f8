/* tmpl_eval.c - evaluates a parsed template the way Jinja2's immutable
 * sandbox does under transformers: Python semantics for values (truthiness,
 * equality, int/float arithmetic, str * int, list + list, slicing by code
 * point), Jinja2's default Undefined (prints as '', iterates as empty,
 * attribute of it is an error), scoping (a for loop's body gets a fresh
 * scope per iteration; if does not scope; macros see their defining scope
 * by reference), filters, tests, string/dict/list methods, and the globals
 * range (sandbox limit 100000), namespace, dict, raise_exception and
 * strftime_now.
 *
 * Every string carries a per-byte mask (1 template text, 0 data) through
 * every operation; scalars carry a 'data' bit that their formatting uses.
 *
 * It deliberately does not support: recursive loops, loop.cycle/changed
 * beyond the basics, include, import and extends, star-args in calls, the
 * rarely used filters (wordwrap, urlize, xmlattr, filesizeformat, ...),
 * str.format specs, and Unicode case mapping beyond ASCII. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chat/tmpl_impl.h"

#define SANDBOX_MAX_RANGE 100000

typedef struct Scope {
    struct Scope *parent;
    TDict *vars;
} Scope;

struct TMacro {
    const TNode *def; /* N_MACRO or N_CALLBLOCK */
    Scope *closure;
    const char *name;
};

struct TMethod {
    TValue self;
    const char *name;
};

struct TLoop {
    TList *items;
    size_t i;
};

enum { FN_RANGE = 1, FN_NAMESPACE, FN_DICT, FN_RAISE, FN_STRFTIME };

typedef struct {
    TArena *a;
    TFail *f;
    uint64_t steps, max_steps;
    int depth, max_depth;
    size_t max_output;
    Scope *scope;
    TBuf *out;
    TValue filter_input;
    int brk;         /* 1 break, 2 continue */
    const TNode *at; /* node being evaluated, for error locations */
} Ctx;

typedef struct {
    size_t n, n_pos;
    TValue *v;
    const char **kw;
} Args;

static _Noreturn __attribute__((format(printf, 3, 4))) void rfail(Ctx *c, Status s, const char *fmt,
                                                                  ...) {
    char msg[ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    tfail(c->f, s, c->at ? c->at->line : 0, c->at ? c->at->col : 0, "%s", msg);
}

static void step(Ctx *c) {
    if (++c->steps > c->max_steps)
        rfail(c, STATUS_LIMIT, "template exceeded %llu evaluation steps",
              (unsigned long long)c->max_steps);
}

static const char *type_name(TValue v) {
    static const char *const N[] = {"Undefined",
                                    "NoneType",
                                    "bool",
                                    "int",
                                    "float",
                                    "str",
                                    "list",
                                    "dict",
                                    "Namespace",
                                    "Macro",
                                    "builtin_function_or_method",
                                    "method",
                                    "LoopContext"};
    if (v.kind == V_LIST && v.u.l->tuple)
        return "tuple";
    if (v.kind == V_LIST && v.u.l->gen)
        return "generator";
    return N[v.kind];
}

static _Noreturn void undef_fail(Ctx *c, TValue v) {
    if (v.u.undef_name)
        rfail(c, STATUS_INVALID, "'%s' is undefined", v.u.undef_name);
    rfail(c, STATUS_INVALID, "undefined value used");
}

/* ---- small constructors ---- */

static TValue mk_list(TList *l) {
    TValue v = {.kind = V_LIST};
    v.u.l = l;
    return v;
}
static TValue mk_dict(TDict *d, VKind k) {
    TValue v = {.kind = (uint8_t)k};
    v.u.d = d;
    return v;
}
static TValue mk_method(Ctx *c, TValue self, const char *name) {
    TMethod *m = ta_alloc(c->a, sizeof *m, c->f);
    m->self = self;
    m->name = name;
    TValue v = {.kind = V_METHOD};
    v.u.meth = m;
    return v;
}
static TValue cstr(Ctx *c, const char *s, uint8_t mask) {
    return tv_lit(c->a, c->f, s, strlen(s), mask);
}
static TValue data_int(int64_t i, bool data) {
    TValue v = tv_int(i);
    v.data = data;
    return v;
}

static TBuf newbuf(Ctx *c) {
    TBuf b;
    tb_init(&b, c->a, c->f, c->max_output);
    return b;
}

/* str(v) as a string value */
static TValue to_str(Ctx *c, TValue v) {
    if (v.kind == V_STR)
        return v;
    TBuf b = newbuf(c);
    tv_write_str(&b, v, 0);
    return tv_str(tb_str(&b));
}

static bool truthy(TValue v) {
    switch ((VKind)v.kind) {
    case V_UNDEF:
    case V_NONE:
        return false;
    case V_BOOL:
    case V_INT:
        return v.u.i != 0;
    case V_FLOAT:
        return v.u.f != 0;
    case V_STR:
        return v.u.s.n > 0;
    case V_LIST:
        return v.u.l->gen || v.u.l->n > 0;
    case V_DICT:
        return v.u.d->n > 0;
    default:
        return true;
    }
}

static bool is_num(TValue v) { return v.kind == V_INT || v.kind == V_BOOL || v.kind == V_FLOAT; }
static bool is_intish(TValue v) { return v.kind == V_INT || v.kind == V_BOOL; }
static double num_f(TValue v) { return v.kind == V_FLOAT ? v.u.f : (double)v.u.i; }

static bool str_eq(TStr a, TStr b) { return a.n == b.n && memcmp(a.b, b.b, a.n) == 0; }
static bool str_is(TStr a, const char *s) { return a.n == strlen(s) && memcmp(a.b, s, a.n) == 0; }

static bool veq(Ctx *c, TValue a, TValue b, int depth) {
    if (depth > TMPL_MAX_VALUE_DEPTH)
        rfail(c, STATUS_LIMIT, "value nested deeper than %d", TMPL_MAX_VALUE_DEPTH);
    if (is_num(a) && is_num(b)) {
        if (a.kind != V_FLOAT && b.kind != V_FLOAT)
            return a.u.i == b.u.i;
        return num_f(a) == num_f(b);
    }
    if (a.kind != b.kind)
        return false;
    switch ((VKind)a.kind) {
    case V_UNDEF:
    case V_NONE:
        return true;
    case V_STR:
        return str_eq(a.u.s, b.u.s);
    case V_LIST:
        if (a.u.l->gen || b.u.l->gen)
            return a.u.l == b.u.l;
        if (a.u.l->tuple != b.u.l->tuple || a.u.l->n != b.u.l->n)
            return false;
        for (size_t i = 0; i < a.u.l->n; i++)
            if (!veq(c, a.u.l->v[i], b.u.l->v[i], depth + 1))
                return false;
        return true;
    case V_DICT:
        if (a.u.d->n != b.u.d->n)
            return false;
        for (size_t i = 0; i < a.u.d->n; i++) {
            bool found = false;
            for (size_t j = 0; j < b.u.d->n && !found; j++)
                if (veq(c, a.u.d->k[i], b.u.d->k[j], depth + 1)) {
                    if (!veq(c, a.u.d->v[i], b.u.d->v[j], depth + 1))
                        return false;
                    found = true;
                }
            if (!found)
                return false;
        }
        return true;
    default:
        return memcmp(&a.u, &b.u, sizeof a.u) == 0;
    }
}

/* Python ordering; error for unorderable types. */
static int vcmp(Ctx *c, TValue a, TValue b, int depth) {
    if (depth > TMPL_MAX_VALUE_DEPTH)
        rfail(c, STATUS_LIMIT, "value nested deeper than %d", TMPL_MAX_VALUE_DEPTH);
    if (is_num(a) && is_num(b)) {
        if (a.kind != V_FLOAT && b.kind != V_FLOAT)
            return a.u.i < b.u.i ? -1 : a.u.i > b.u.i;
        double x = num_f(a), y = num_f(b);
        return x < y ? -1 : x > y;
    }
    if (a.kind == V_STR && b.kind == V_STR) {
        size_t n = a.u.s.n < b.u.s.n ? a.u.s.n : b.u.s.n;
        int r = memcmp(a.u.s.b, b.u.s.b, n);
        if (r)
            return r < 0 ? -1 : 1;
        return a.u.s.n < b.u.s.n ? -1 : a.u.s.n > b.u.s.n;
    }
    if (a.kind == V_LIST && b.kind == V_LIST && !a.u.l->gen && !b.u.l->gen &&
        a.u.l->tuple == b.u.l->tuple) {
        size_t n = a.u.l->n < b.u.l->n ? a.u.l->n : b.u.l->n;
        for (size_t i = 0; i < n; i++) {
            if (!veq(c, a.u.l->v[i], b.u.l->v[i], depth + 1))
                return vcmp(c, a.u.l->v[i], b.u.l->v[i], depth + 1);
        }
        return a.u.l->n < b.u.l->n ? -1 : a.u.l->n > b.u.l->n;
    }
    rfail(c, STATUS_INVALID, "'<' not supported between instances of '%s' and '%s'", type_name(a),
          type_name(b));
}

/* ---- strings by code point ---- */

/* Byte offsets of each code point (n+1 entries, last = byte length). */
static size_t *cp_offsets(Ctx *c, TStr s, size_t *count) {
    size_t n = tu_count(s.b, s.n);
    size_t *o = ta_alloc(c->a, (n + 1) * sizeof *o, c->f);
    size_t k = 0;
    for (size_t i = 0; i < s.n; i += tu_len(s.b, s.n, i))
        o[k++] = i;
    o[k] = s.n;
    *count = n;
    return o;
}

static TStr sub(TStr s, size_t from, size_t to) {
    TStr r = {s.b + from, s.m + from, to - from};
    return r;
}

static TValue concat2(Ctx *c, TStr a, TStr b) {
    TBuf buf = newbuf(c);
    tb_put_str(&buf, a);
    tb_put_str(&buf, b);
    return tv_str(tb_str(&buf));
}

/* Iterate anything iterable into a list (undefined: empty). */
static TList *iter_list(Ctx *c, TValue v) {
    switch ((VKind)v.kind) {
    case V_LIST:
        return v.u.l;
    case V_UNDEF:
        return tl_new(c->a, c->f, 0);
    case V_DICT: {
        TList *l = tl_new(c->a, c->f, v.u.d->n);
        memcpy(l->v, v.u.d->k, v.u.d->n * sizeof *l->v);
        l->n = v.u.d->n;
        return l;
    }
    case V_STR: {
        size_t n;
        size_t *o = cp_offsets(c, v.u.s, &n);
        TList *l = tl_new(c->a, c->f, n);
        for (size_t i = 0; i < n; i++)
            l->v[i] = tv_str(sub(v.u.s, o[i], o[i + 1]));
        l->n = n;
        return l;
    }
    default:
        rfail(c, STATUS_INVALID, "'%s' object is not iterable", type_name(v));
    }
}

/* ---- attribute and item access ---- */

static const char *const STR_METHODS[] = {
    "strip",      "lstrip",       "rstrip",       "split",     "rsplit",   "splitlines",
    "startswith", "endswith",     "upper",        "lower",     "title",    "capitalize",
    "replace",    "find",         "rfind",        "index",     "count",    "format",
    "join",       "isdigit",      "isalpha",      "isalnum",   "isspace",  "isupper",
    "islower",    "removeprefix", "removesuffix", "zfill",     "center",   "ljust",
    "rjust",      "swapcase",     "isnumeric",    "isdecimal", "casefold", NULL};
static const char *const DICT_METHODS[] = {"items", "keys", "values", "get", "copy", NULL};
static const char *const LIST_METHODS[] = {"index", "count", "copy", NULL};

static bool in_table(const char *const *t, const char *name) {
    for (; *t; t++)
        if (!strcmp(*t, name))
            return true;
    return false;
}

static TValue dict_get(TDict *d, TValue k, Ctx *c, bool *found) {
    for (size_t i = 0; i < d->n; i++) {
        if (veq(c, d->k[i], k, 0)) {
            *found = true;
            return d->v[i];
        }
    }
    *found = false;
    return tv_undef(NULL);
}

static TValue loop_attr(Ctx *c, TLoop *lp, const char *name, bool *ok) {
    size_t n = lp->items->n, i = lp->i;
    *ok = true;
    if (!strcmp(name, "index"))
        return tv_int((int64_t)i + 1);
    if (!strcmp(name, "index0"))
        return tv_int((int64_t)i);
    if (!strcmp(name, "revindex"))
        return tv_int((int64_t)(n - i));
    if (!strcmp(name, "revindex0"))
        return tv_int((int64_t)(n - i - 1));
    if (!strcmp(name, "first"))
        return tv_bool(i == 0);
    if (!strcmp(name, "last"))
        return tv_bool(i + 1 == n);
    if (!strcmp(name, "length"))
        return tv_int((int64_t)n);
    if (!strcmp(name, "depth"))
        return tv_int(1);
    if (!strcmp(name, "depth0"))
        return tv_int(0);
    if (!strcmp(name, "previtem"))
        return i > 0 ? lp->items->v[i - 1] : tv_undef("previtem");
    if (!strcmp(name, "nextitem"))
        return i + 1 < n ? lp->items->v[i + 1] : tv_undef("nextitem");
    if (!strcmp(name, "cycle"))
        return (TValue){0};
    (void)c;
    *ok = false;
    return tv_undef(name);
}

static TValue getattr_v(Ctx *c, TValue obj, const char *name) {
    switch ((VKind)obj.kind) {
    case V_UNDEF:
        undef_fail(c, obj);
    case V_DICT: {
        if (in_table(DICT_METHODS, name))
            return mk_method(c, obj, name);
        long i = td_find_str(obj.u.d, name, strlen(name));
        return i >= 0 ? obj.u.d->v[i] : tv_undef(name);
    }
    case V_NS: {
        long i = td_find_str(obj.u.d, name, strlen(name));
        return i >= 0 ? obj.u.d->v[i] : tv_undef(name);
    }
    case V_STR:
        if (in_table(STR_METHODS, name))
            return mk_method(c, obj, name);
        return tv_undef(name);
    case V_LIST:
        if (!obj.u.l->gen && in_table(LIST_METHODS, name))
            return mk_method(c, obj, name);
        return tv_undef(name);
    case V_LOOP: {
        bool ok;
        TValue v = loop_attr(c, obj.u.loop, name, &ok);
        if (ok && !strcmp(name, "cycle"))
            return mk_method(c, obj, name);
        return v;
    }
    default:
        return tv_undef(name);
    }
}

static bool get_index(TValue k, int64_t *i) {
    if (!is_intish(k))
        return false;
    *i = k.u.i;
    return true;
}

static TValue getitem_v(Ctx *c, TValue obj, TValue key) {
    int64_t i;
    switch ((VKind)obj.kind) {
    case V_UNDEF:
        undef_fail(c, obj);
    case V_DICT: {
        bool found;
        TValue v = dict_get(obj.u.d, key, c, &found);
        if (found)
            return v;
        break;
    }
    case V_LIST:
        if (!obj.u.l->gen && get_index(key, &i)) {
            int64_t n = (int64_t)obj.u.l->n;
            if (i < 0)
                i += n;
            return i >= 0 && i < n ? obj.u.l->v[i] : tv_undef(NULL);
        }
        break;
    case V_STR:
        if (get_index(key, &i)) {
            size_t n;
            size_t *o = cp_offsets(c, obj.u.s, &n);
            if (i < 0)
                i += (int64_t)n;
            return i >= 0 && i < (int64_t)n ? tv_str(sub(obj.u.s, o[i], o[i + 1])) : tv_undef(NULL);
        }
        break;
    default:
        break;
    }
    if (key.kind == V_STR) {
        char name[128];
        if (key.u.s.n < sizeof name && !memchr(key.u.s.b, 0, key.u.s.n)) {
            memcpy(name, key.u.s.b, key.u.s.n);
            name[key.u.s.n] = '\0';
            TValue v = getattr_v(c, obj, name);
            if (v.kind == V_UNDEF)
                v.u.undef_name = NULL;
            else if (v.kind == V_METHOD) /* keep the method name alive */
                v.u.meth->name = ((TStr)tv_lit(c->a, c->f, name, strlen(name), 1).u.s).b;
            return v;
        }
    }
    return tv_undef(NULL);
}

/* Python slice index adjustment. */
static TValue slice_v(Ctx *c, TValue obj, TValue vs, TValue ve, TValue vst) {
    int64_t st = 1;
    if (vst.kind != V_NONE && vst.kind != V_UNDEF) {
        if (!is_intish(vst))
            rfail(c, STATUS_INVALID, "slice indices must be integers or None");
        st = vst.u.i;
        if (st == 0)
            rfail(c, STATUS_INVALID, "slice step cannot be zero");
    }
    size_t n;
    size_t *o = NULL;
    if (obj.kind == V_STR)
        o = cp_offsets(c, obj.u.s, &n);
    else if (obj.kind == V_LIST && !obj.u.l->gen)
        n = obj.u.l->n;
    else if (obj.kind == V_UNDEF)
        undef_fail(c, obj);
    else
        return tv_undef(NULL);
    int64_t len = (int64_t)n, s, e;
    TValue ends[2] = {vs, ve};
    int64_t out[2];
    for (int k = 0; k < 2; k++) {
        TValue x = ends[k];
        if (x.kind == V_NONE || x.kind == V_UNDEF) {
            out[k] = st > 0 ? (k ? len : 0) : (k ? -1 : len - 1);
            continue;
        }
        if (!is_intish(x))
            rfail(c, STATUS_INVALID, "slice indices must be integers or None");
        int64_t v = x.u.i;
        if (v < 0) {
            v += len;
            if (v < 0)
                v = st < 0 ? -1 : 0;
        } else if (v >= len) {
            v = st < 0 ? len - 1 : len;
        }
        out[k] = v;
    }
    s = out[0];
    e = out[1];
    if (obj.kind == V_STR) {
        if (st == 1) {
            if (e < s)
                e = s;
            return tv_str(sub(obj.u.s, o[s], o[e]));
        }
        TBuf b = newbuf(c);
        for (int64_t i = s; st > 0 ? i < e : i > e; i += st)
            tb_put_str(&b, sub(obj.u.s, o[i], o[i + 1]));
        return tv_str(tb_str(&b));
    }
    TList *l = tl_new(c->a, c->f, 0);
    l->tuple = obj.u.l->tuple;
    for (int64_t i = s; st > 0 ? i < e : i > e; i += st)
        tl_push(c->a, c->f, l, obj.u.l->v[i]);
    return mk_list(l);
}

/* ---- scopes ---- */

static Scope *scope_new(Ctx *c, Scope *parent) {
    Scope *s = ta_alloc(c->a, sizeof *s, c->f);
    s->parent = parent;
    s->vars = td_new(c->a, c->f, 0);
    return s;
}

static void scope_set(Ctx *c, Scope *s, const char *name, TValue v) {
    long i = td_find_str(s->vars, name, strlen(name));
    if (i >= 0) {
        s->vars->v[i] = v;
        return;
    }
    td_set(c->a, c->f, s->vars, cstr(c, name, 1), v);
}

static TValue lookup(Ctx *c, const char *name) {
    size_t n = strlen(name);
    for (Scope *s = c->scope; s; s = s->parent) {
        long i = td_find_str(s->vars, name, n);
        if (i >= 0)
            return s->vars->v[i];
    }
    static const struct {
        const char *name;
        int fn;
    } FNS[] = {{"range", FN_RANGE},
               {"namespace", FN_NAMESPACE},
               {"dict", FN_DICT},
               {"raise_exception", FN_RAISE},
               {"strftime_now", FN_STRFTIME}};
    for (size_t i = 0; i < sizeof FNS / sizeof FNS[0]; i++) {
        if (!strcmp(FNS[i].name, name)) {
            TValue v = {.kind = V_FUNC};
            v.u.i = FNS[i].fn;
            return v;
        }
    }
    return tv_undef(name);
}

/* ---- arguments ---- */

static bool arg(const Args *a, size_t pos, const char *name, TValue *out) {
    if (pos < a->n_pos) {
        *out = a->v[pos];
        return true;
    }
    for (size_t i = a->n_pos; i < a->n; i++) {
        if (a->kw[i] && !strcmp(a->kw[i], name)) {
            *out = a->v[i];
            return true;
        }
    }
    return false;
}

static TValue arg_or(const Args *a, size_t pos, const char *name, TValue def) {
    TValue v;
    return arg(a, pos, name, &v) ? v : def;
}

static int64_t arg_int(Ctx *c, const Args *a, size_t pos, const char *name, int64_t def) {
    TValue v;
    if (!arg(a, pos, name, &v) || v.kind == V_NONE)
        return def;
    if (!is_intish(v))
        rfail(c, STATUS_INVALID, "argument '%s' must be an integer, not %s", name, type_name(v));
    return v.u.i;
}

static TStr arg_str(Ctx *c, const Args *a, size_t pos, const char *name, const char *def) {
    TValue v;
    if (!arg(a, pos, name, &v))
        return cstr(c, def, 1).u.s;
    return to_str(c, v).u.s;
}

static TValue eval(Ctx *c, const TNode *n);
static void exec(Ctx *c, const TNode *n);

static Args eval_args(Ctx *c, const TNode *n, size_t extra) {
    Args a = {0};
    a.v = ta_alloc(c->a, (n->n_args + extra + 1) * sizeof *a.v, c->f);
    a.kw = ta_alloc(c->a, (n->n_args + extra + 1) * sizeof *a.kw, c->f);
    for (size_t i = 0; i < n->n_args; i++) {
        a.v[i] = eval(c, n->args[i]);
        a.kw[i] = n->kw ? n->kw[i] : NULL;
        if (!a.kw[i])
            a.n_pos = i + 1;
    }
    a.n = n->n_args;
    return a;
}

/* ---- arithmetic ---- */

static double py_fmod(double a, double b, double *floordiv) {
    double mod = fmod(a, b);
    double div = (a - mod) / b;
    if (mod != 0) {
        if ((b < 0) != (mod < 0)) {
            mod += b;
            div -= 1.0;
        }
    } else {
        mod = copysign(0.0, b);
    }
    if (floordiv) {
        double fd;
        if (div != 0) {
            fd = floor(div);
            if (div - fd > 0.5)
                fd += 1.0;
        } else {
            fd = copysign(0.0, a / b);
        }
        *floordiv = fd;
    }
    return mod;
}

static TValue str_mod(Ctx *c, TStr fmt, TValue args);

static TValue repeat(Ctx *c, TValue seq, int64_t k) {
    if (k < 0)
        k = 0;
    if (seq.kind == V_STR) {
        TBuf b = newbuf(c);
        for (int64_t i = 0; i < k; i++)
            tb_put_str(&b, seq.u.s);
        return tv_str(tb_str(&b));
    }
    TList *l = tl_new(c->a, c->f, 0);
    l->tuple = seq.u.l->tuple;
    for (int64_t i = 0; i < k; i++) {
        step(c);
        for (size_t j = 0; j < seq.u.l->n; j++)
            tl_push(c->a, c->f, l, seq.u.l->v[j]);
    }
    return mk_list(l);
}

static TValue binop(Ctx *c, int op, TValue a, TValue b) {
    bool data = a.data | b.data;
    if (is_num(a) && is_num(b)) {
        TValue r;
        if (a.kind != V_FLOAT && b.kind != V_FLOAT && op != OP_DIV) {
            int64_t x = a.u.i, y = b.u.i, z = 0;
            bool ovf = false;
            switch (op) {
            case OP_ADD:
                ovf = __builtin_add_overflow(x, y, &z);
                break;
            case OP_SUB:
                ovf = __builtin_sub_overflow(x, y, &z);
                break;
            case OP_MUL:
                ovf = __builtin_mul_overflow(x, y, &z);
                break;
            case OP_FLOORDIV:
            case OP_MOD:
                if (y == 0)
                    rfail(c, STATUS_INVALID, "integer division or modulo by zero");
                if (x == INT64_MIN && y == -1) {
                    ovf = op == OP_FLOORDIV;
                    z = 0;
                    break;
                }
                if (op == OP_FLOORDIV) {
                    z = x / y;
                    if ((x % y != 0) && ((x < 0) != (y < 0)))
                        z--;
                } else {
                    z = x % y;
                    if (z != 0 && ((z < 0) != (y < 0)))
                        z += y;
                }
                break;
            case OP_POW:
                if (y < 0) {
                    r = tv_float(pow((double)x, (double)y));
                    r.data = data;
                    return r;
                }
                z = 1;
                for (int64_t e = y, base = x; e > 0 && !ovf; e >>= 1) {
                    if (e & 1)
                        ovf = __builtin_mul_overflow(z, base, &z);
                    if (e > 1 && __builtin_mul_overflow(base, base, &base))
                        ovf = true;
                }
                break;
            }
            if (ovf)
                rfail(c, STATUS_LIMIT, "integer overflow (limit 64 bits)");
            r = tv_int(z);
        } else {
            double x = num_f(a), y = num_f(b), z = 0;
            switch (op) {
            case OP_ADD:
                z = x + y;
                break;
            case OP_SUB:
                z = x - y;
                break;
            case OP_MUL:
                z = x * y;
                break;
            case OP_DIV:
                if (y == 0)
                    rfail(c, STATUS_INVALID, "division by zero");
                z = x / y;
                break;
            case OP_FLOORDIV:
            case OP_MOD:
                if (y == 0)
                    rfail(c, STATUS_INVALID, "float modulo or floor division by zero");
                if (op == OP_MOD)
                    z = py_fmod(x, y, NULL);
                else
                    py_fmod(x, y, &z);
                break;
            case OP_POW:
                if (x == 0 && y < 0)
                    rfail(c, STATUS_INVALID, "0.0 cannot be raised to a negative power");
                z = pow(x, y);
                break;
            }
            r = tv_float(z);
        }
        r.data = data;
        return r;
    }
    if (op == OP_ADD && a.kind == V_STR && b.kind == V_STR)
        return concat2(c, a.u.s, b.u.s);
    if (op == OP_ADD && a.kind == V_LIST && b.kind == V_LIST && !a.u.l->gen && !b.u.l->gen &&
        a.u.l->tuple == b.u.l->tuple) {
        TList *l = tl_new(c->a, c->f, a.u.l->n + b.u.l->n);
        l->tuple = a.u.l->tuple;
        for (size_t i = 0; i < a.u.l->n; i++)
            l->v[l->n++] = a.u.l->v[i];
        for (size_t i = 0; i < b.u.l->n; i++)
            l->v[l->n++] = b.u.l->v[i];
        return mk_list(l);
    }
    if (op == OP_MUL) {
        if ((a.kind == V_STR || (a.kind == V_LIST && !a.u.l->gen)) && is_intish(b))
            return repeat(c, a, b.u.i);
        if ((b.kind == V_STR || (b.kind == V_LIST && !b.u.l->gen)) && is_intish(a))
            return repeat(c, b, a.u.i);
    }
    if (op == OP_MOD && a.kind == V_STR)
        return str_mod(c, a.u.s, b);
    if (a.kind == V_UNDEF)
        undef_fail(c, a);
    if (b.kind == V_UNDEF)
        undef_fail(c, b);
    static const char *const OPN[] = {
        [OP_ADD] = "+",       [OP_SUB] = "-", [OP_MUL] = "*", [OP_DIV] = "/",
        [OP_FLOORDIV] = "//", [OP_MOD] = "%", [OP_POW] = "**"};
    rfail(c, STATUS_INVALID, "unsupported operand type(s) for %s: '%s' and '%s'", OPN[op],
          type_name(a), type_name(b));
}

/* printf-style '%' formatting: %s %r %d %i %f %%. */
static TValue str_mod(Ctx *c, TStr fmt, TValue args) {
    TList *al;
    if (args.kind == V_LIST && args.u.l->tuple) {
        al = args.u.l;
    } else {
        al = tl_new(c->a, c->f, 1);
        al->v[al->n++] = args;
    }
    size_t ai = 0;
    TBuf b = newbuf(c);
    for (size_t i = 0; i < fmt.n; i++) {
        if (fmt.b[i] != '%') {
            tb_put(&b, fmt.b + i, 1, fmt.m[i]);
            continue;
        }
        if (++i >= fmt.n)
            rfail(c, STATUS_INVALID, "incomplete format");
        char k = fmt.b[i];
        if (k == '%') {
            tb_put(&b, "%", 1, fmt.m[i]);
            continue;
        }
        if (ai >= al->n)
            rfail(c, STATUS_INVALID, "not enough arguments for format string");
        TValue v = al->v[ai++];
        if (k == 's') {
            tv_write_str(&b, v, 0);
        } else if (k == 'r') {
            tv_write_repr(&b, v, 0);
        } else if (k == 'd' || k == 'i') {
            if (!is_num(v))
                rfail(c, STATUS_INVALID, "%%d format: a real number is required, not %s",
                      type_name(v));
            TValue iv = data_int(v.kind == V_FLOAT ? (int64_t)v.u.f : v.u.i, v.data);
            tv_write_str(&b, iv, 0);
        } else if (k == 'f') {
            if (!is_num(v))
                rfail(c, STATUS_INVALID, "%%f format: a real number is required, not %s",
                      type_name(v));
            char s[64];
            snprintf(s, sizeof s, "%f", num_f(v));
            tb_puts(&b, s, !v.data);
        } else {
            rfail(c, STATUS_UNSUPPORTED, "unsupported format character '%c'", k);
        }
    }
    if (ai < al->n)
        rfail(c, STATUS_INVALID, "not all arguments converted during string formatting");
    return tv_str(tb_str(&b));
}

static bool contains(Ctx *c, TValue hay, TValue needle) {
    switch ((VKind)hay.kind) {
    case V_STR:
        if (needle.kind != V_STR)
            rfail(c, STATUS_INVALID, "'in <string>' requires string as left operand, not %s",
                  type_name(needle));
        if (needle.u.s.n == 0)
            return true;
        return memmem(hay.u.s.b, hay.u.s.n, needle.u.s.b, needle.u.s.n) != NULL;
    case V_LIST:
        for (size_t i = 0; i < hay.u.l->n; i++)
            if (veq(c, hay.u.l->v[i], needle, 0))
                return true;
        return false;
    case V_DICT: {
        bool found;
        dict_get(hay.u.d, needle, c, &found);
        return found;
    }
    case V_UNDEF:
        return false;
    default:
        rfail(c, STATUS_INVALID, "argument of type '%s' is not iterable", type_name(hay));
    }
}

/* ---- string helpers ---- */

static char ascii_upper(char ch) { return ch >= 'a' && ch <= 'z' ? (char)(ch - 32) : ch; }
static char ascii_lower(char ch) { return ch >= 'A' && ch <= 'Z' ? (char)(ch + 32) : ch; }
static bool ascii_alpha(char ch) { return (ch | 0x20) >= 'a' && (ch | 0x20) <= 'z'; }

/* mode: 'u' upper, 'l' lower, 't' Python title, 'c' capitalize, 'j' Jinja title, 's' swapcase */
static TValue casemap(Ctx *c, TStr s, char mode) {
    char *b = ta_alloc(c->a, s.n + 1, c->f);
    uint8_t *m = ta_alloc(c->a, s.n + 1, c->f);
    memcpy(m, s.m, s.n);
    bool prev_cased = false, word_start = true;
    for (size_t i = 0; i < s.n; i++) {
        char ch = s.b[i];
        switch (mode) {
        case 'u':
            ch = ascii_upper(ch);
            break;
        case 'l':
            ch = ascii_lower(ch);
            break;
        case 's':
            ch = ascii_alpha(ch) ? (char)(ch ^ 0x20) : ch;
            break;
        case 'c':
            ch = i == 0 ? ascii_upper(ch) : ascii_lower(ch);
            break;
        case 't':
            ch = prev_cased ? ascii_lower(ch) : ascii_upper(ch);
            prev_cased = ascii_alpha(ch) || ((unsigned char)ch >= 0x80);
            break;
        case 'j': {
            bool sep = ch == '-' || ch == '(' || ch == '{' || ch == '[' || ch == '<' || ch == ' ' ||
                       (ch >= 9 && ch <= 13);
            if (sep) {
                word_start = true;
            } else {
                ch = word_start ? ascii_upper(ch) : ascii_lower(ch);
                word_start = false;
            }
            break;
        }
        }
        b[i] = ch;
    }
    b[s.n] = '\0';
    TStr r = {b, m, s.n};
    return tv_str(r);
}

/* strip with optional chars (NULL: whitespace); which: 1 left, 2 right, 3 both */
static TStr strip(TStr s, const TStr *chars, int which) {
    size_t from = 0, to = s.n;
    if (!chars) {
        if (which & 1)
            from = tu_lspace(s.b, s.n);
        if ((which & 2) && from < to)
            to = from + (s.n - from) - tu_rspace(s.b + from, s.n - from);
        return sub(s, from, to);
    }
    /* chars: set of code points */
    while ((which & 1) && from < to) {
        size_t l = tu_len(s.b, s.n, from);
        if (!memmem(chars->b, chars->n, s.b + from, l))
            break;
        from += l;
    }
    while ((which & 2) && to > from) {
        size_t st = to - 1;
        while (st > from && ((unsigned char)s.b[st] & 0xc0) == 0x80)
            st--;
        if (!memmem(chars->b, chars->n, s.b + st, to - st))
            break;
        to = st;
    }
    return sub(s, from, to);
}

static TValue str_replace(Ctx *c, TStr s, TStr old, TStr new_, int64_t count) {
    TBuf b = newbuf(c);
    int64_t done = 0;
    if (old.n == 0) {
        size_t i = 0;
        for (;;) {
            if (count < 0 || done < count) {
                tb_put_str(&b, new_);
                done++;
            }
            if (i >= s.n)
                break;
            size_t l = tu_len(s.b, s.n, i);
            tb_put_str(&b, sub(s, i, i + l));
            i += l;
        }
        return tv_str(tb_str(&b));
    }
    size_t i = 0;
    while (i < s.n) {
        const char *hit =
            (count < 0 || done < count) ? memmem(s.b + i, s.n - i, old.b, old.n) : NULL;
        if (!hit) {
            tb_put_str(&b, sub(s, i, s.n));
            break;
        }
        size_t at = (size_t)(hit - s.b);
        tb_put_str(&b, sub(s, i, at));
        tb_put_str(&b, new_);
        i = at + old.n;
        done++;
    }
    return tv_str(tb_str(&b));
}

static TValue split(Ctx *c, TStr s, const TStr *sep, int64_t maxsplit) {
    TList *l = tl_new(c->a, c->f, 0);
    if (sep) {
        if (sep->n == 0)
            rfail(c, STATUS_INVALID, "empty separator");
        size_t i = 0;
        int64_t k = 0;
        for (;;) {
            const char *hit =
                (maxsplit < 0 || k < maxsplit) ? memmem(s.b + i, s.n - i, sep->b, sep->n) : NULL;
            if (!hit) {
                tl_push(c->a, c->f, l, tv_str(sub(s, i, s.n)));
                break;
            }
            size_t at = (size_t)(hit - s.b);
            tl_push(c->a, c->f, l, tv_str(sub(s, i, at)));
            i = at + sep->n;
            k++;
        }
        return mk_list(l);
    }
    size_t i = 0;
    int64_t k = 0;
    for (;;) {
        i += tu_lspace(s.b + i, s.n - i);
        if (i >= s.n)
            break;
        if (maxsplit >= 0 && k >= maxsplit) {
            TStr rest = sub(s, i, s.n);
            rest.n -= tu_rspace(rest.b, rest.n);
            tl_push(c->a, c->f, l, tv_str(rest));
            break;
        }
        size_t j = i;
        while (j < s.n) {
            size_t len;
            uint32_t cp = tu_cp(s.b, s.n, j, &len);
            if (tu_isspace(cp))
                break;
            j += len;
        }
        tl_push(c->a, c->f, l, tv_str(sub(s, i, j)));
        i = j;
        k++;
    }
    return mk_list(l);
}

/* Python str.splitlines() line breaks: returns the break's length at i or 0. */
static size_t linebreak_at(TStr s, size_t i) {
    unsigned char ch = (unsigned char)s.b[i];
    if (ch == '\r')
        return i + 1 < s.n && s.b[i + 1] == '\n' ? 2 : 1;
    if (ch == '\n' || ch == '\v' || ch == '\f' || ch == 0x1c || ch == 0x1d || ch == 0x1e)
        return 1;
    size_t l;
    uint32_t cp = tu_cp(s.b, s.n, i, &l);
    if (cp == 0x85 || cp == 0x2028 || cp == 0x2029)
        return l;
    return 0;
}

static TList *splitlines(Ctx *c, TStr s) {
    TList *l = tl_new(c->a, c->f, 0);
    size_t st = 0, i = 0;
    while (i < s.n) {
        size_t k = linebreak_at(s, i);
        if (k) {
            tl_push(c->a, c->f, l, tv_str(sub(s, st, i)));
            i += k;
            st = i;
        } else {
            i++;
        }
    }
    if (st < s.n)
        tl_push(c->a, c->f, l, tv_str(sub(s, st, s.n)));
    return l;
}

static TValue join(Ctx *c, TList *items, TStr sep) {
    TBuf b = newbuf(c);
    for (size_t i = 0; i < items->n; i++) {
        if (i)
            tb_put_str(&b, sep);
        tv_write_str(&b, items->v[i], 0);
    }
    return tv_str(tb_str(&b));
}

/* str.format with {} {0} {name} fields (no format specs). */
static TValue str_format(Ctx *c, TStr f, const Args *a) {
    TBuf b = newbuf(c);
    size_t auto_i = 0;
    for (size_t i = 0; i < f.n; i++) {
        char ch = f.b[i];
        if ((ch == '{' || ch == '}') && i + 1 < f.n && f.b[i + 1] == ch) {
            tb_put(&b, &ch, 1, f.m[i]);
            i++;
            continue;
        }
        if (ch == '}')
            rfail(c, STATUS_INVALID, "Single '}' encountered in format string");
        if (ch != '{') {
            tb_put(&b, &ch, 1, f.m[i]);
            continue;
        }
        size_t j = i + 1;
        while (j < f.n && f.b[j] != '}')
            j++;
        if (j >= f.n)
            rfail(c, STATUS_INVALID, "Single '{' encountered in format string");
        TStr field = sub(f, i + 1, j);
        if (memchr(field.b, ':', field.n) || memchr(field.b, '!', field.n) ||
            memchr(field.b, '.', field.n) || memchr(field.b, '[', field.n))
            rfail(c, STATUS_UNSUPPORTED, "format specs and conversions are not supported");
        TValue v;
        if (field.n == 0) {
            if (auto_i >= a->n_pos)
                rfail(c, STATUS_INVALID, "Replacement index %zu out of range", auto_i);
            v = a->v[auto_i++];
        } else if (field.b[0] >= '0' && field.b[0] <= '9') {
            size_t k = (size_t)strtoul(field.b, NULL, 10);
            if (k >= a->n_pos)
                rfail(c, STATUS_INVALID, "Replacement index %zu out of range", k);
            v = a->v[k];
        } else {
            bool found = false;
            for (size_t k = a->n_pos; k < a->n; k++)
                if (a->kw[k] && str_is(field, a->kw[k])) {
                    v = a->v[k];
                    found = true;
                }
            if (!found)
                rfail(c, STATUS_INVALID, "format: missing key");
        }
        tv_write_str(&b, v, 0);
        i = j;
    }
    return tv_str(tb_str(&b));
}

static TValue str_method(Ctx *c, TStr s, const char *name, const Args *a) {
    TValue t;
    if (!strcmp(name, "strip") || !strcmp(name, "lstrip") || !strcmp(name, "rstrip")) {
        int which = name[0] == 'l' ? 1 : name[0] == 'r' ? 2 : 3;
        if (arg(a, 0, "chars", &t) && t.kind != V_NONE) {
            if (t.kind != V_STR)
                rfail(c, STATUS_INVALID, "%s arg must be None or str", name);
            return tv_str(strip(s, &t.u.s, which));
        }
        return tv_str(strip(s, NULL, which));
    }
    if (!strcmp(name, "split") || !strcmp(name, "rsplit")) {
        int64_t maxsplit = arg_int(c, a, 1, "maxsplit", -1);
        if (arg(a, 0, "sep", &t) && t.kind != V_NONE) {
            if (t.kind != V_STR)
                rfail(c, STATUS_INVALID, "must be str or None, not %s", type_name(t));
            if (name[0] == 'r' && maxsplit >= 0)
                rfail(c, STATUS_UNSUPPORTED, "rsplit with maxsplit is not supported");
            return split(c, s, &t.u.s, maxsplit);
        }
        if (name[0] == 'r' && maxsplit >= 0)
            rfail(c, STATUS_UNSUPPORTED, "rsplit with maxsplit is not supported");
        return split(c, s, NULL, maxsplit);
    }
    if (!strcmp(name, "splitlines"))
        return mk_list(splitlines(c, s));
    if (!strcmp(name, "startswith") || !strcmp(name, "endswith")) {
        if (!arg(a, 0, "prefix", &t))
            rfail(c, STATUS_INVALID, "%s() takes at least 1 argument (0 given)", name);
        TList one = {.n = 1, .cap = 1, .v = &t};
        TList *opts = t.kind == V_LIST && t.u.l->tuple ? t.u.l : &one;
        for (size_t i = 0; i < opts->n; i++) {
            TValue o = opts->v[i];
            if (o.kind != V_STR)
                rfail(c, STATUS_INVALID, "%s first arg must be str or a tuple of str", name);
            if (o.u.s.n <= s.n &&
                memcmp(name[0] == 's' ? s.b : s.b + s.n - o.u.s.n, o.u.s.b, o.u.s.n) == 0)
                return tv_bool(true);
        }
        return tv_bool(false);
    }
    if (!strcmp(name, "upper"))
        return casemap(c, s, 'u');
    if (!strcmp(name, "lower") || !strcmp(name, "casefold"))
        return casemap(c, s, 'l');
    if (!strcmp(name, "title"))
        return casemap(c, s, 't');
    if (!strcmp(name, "capitalize"))
        return casemap(c, s, 'c');
    if (!strcmp(name, "swapcase"))
        return casemap(c, s, 's');
    if (!strcmp(name, "replace")) {
        TValue o, n;
        if (!arg(a, 0, "old", &o) || !arg(a, 1, "new", &n) || o.kind != V_STR || n.kind != V_STR)
            rfail(c, STATUS_INVALID, "replace() takes two str arguments");
        return str_replace(c, s, o.u.s, n.u.s, arg_int(c, a, 2, "count", -1));
    }
    if (!strcmp(name, "find") || !strcmp(name, "rfind") || !strcmp(name, "index") ||
        !strcmp(name, "count")) {
        if (!arg(a, 0, "sub", &t) || t.kind != V_STR)
            rfail(c, STATUS_INVALID, "%s() argument must be str", name);
        if (!strcmp(name, "count")) {
            if (t.u.s.n == 0)
                return tv_int((int64_t)tu_count(s.b, s.n) + 1);
            int64_t k = 0;
            for (size_t i = 0; i + t.u.s.n <= s.n;) {
                const char *h = memmem(s.b + i, s.n - i, t.u.s.b, t.u.s.n);
                if (!h)
                    break;
                k++;
                i = (size_t)(h - s.b) + t.u.s.n;
            }
            return tv_int(k);
        }
        long at = -1;
        if (name[0] == 'r') {
            for (size_t i = s.n + 1; i-- > 0;)
                if (i + t.u.s.n <= s.n && memcmp(s.b + i, t.u.s.b, t.u.s.n) == 0) {
                    at = (long)i;
                    break;
                }
        } else {
            const char *h = t.u.s.n ? memmem(s.b, s.n, t.u.s.b, t.u.s.n) : s.b;
            if (h)
                at = (long)(h - s.b);
        }
        if (at < 0 && name[0] == 'i')
            rfail(c, STATUS_INVALID, "substring not found");
        return tv_int(at < 0 ? -1 : (int64_t)tu_count(s.b, (size_t)at));
    }
    if (!strcmp(name, "format"))
        return str_format(c, s, a);
    if (!strcmp(name, "join")) {
        if (!arg(a, 0, "iterable", &t))
            rfail(c, STATUS_INVALID, "join() takes exactly one argument");
        TList *l = iter_list(c, t);
        for (size_t i = 0; i < l->n; i++)
            if (l->v[i].kind != V_STR)
                rfail(c, STATUS_INVALID, "sequence item %zu: expected str instance, %s found", i,
                      type_name(l->v[i]));
        return join(c, l, s);
    }
    if (!strcmp(name, "removeprefix") || !strcmp(name, "removesuffix")) {
        if (!arg(a, 0, "prefix", &t) || t.kind != V_STR)
            rfail(c, STATUS_INVALID, "%s() argument must be str", name);
        if (t.u.s.n <= s.n) {
            if (name[6] == 'p' && memcmp(s.b, t.u.s.b, t.u.s.n) == 0)
                return tv_str(sub(s, t.u.s.n, s.n));
            if (name[6] == 's' && t.u.s.n && memcmp(s.b + s.n - t.u.s.n, t.u.s.b, t.u.s.n) == 0)
                return tv_str(sub(s, 0, s.n - t.u.s.n));
        }
        return tv_str(s);
    }
    if (!strncmp(name, "is", 2)) {
        if (s.n == 0)
            return tv_bool(false);
        bool ok = true, any_cased = false;
        for (size_t i = 0; i < s.n; i++) {
            unsigned char ch = (unsigned char)s.b[i];
            bool digit = ch >= '0' && ch <= '9', alpha = ascii_alpha((char)ch);
            if (!strcmp(name, "isdigit") || !strcmp(name, "isnumeric") ||
                !strcmp(name, "isdecimal"))
                ok &= digit;
            else if (!strcmp(name, "isalpha"))
                ok &= alpha;
            else if (!strcmp(name, "isalnum"))
                ok &= alpha || digit;
            else if (!strcmp(name, "isspace"))
                ok &= ch == ' ' || (ch >= 9 && ch <= 13) || (ch >= 0x1c && ch <= 0x1f);
            else if (!strcmp(name, "isupper")) {
                ok &= !(ch >= 'a' && ch <= 'z');
                any_cased |= ch >= 'A' && ch <= 'Z';
            } else if (!strcmp(name, "islower")) {
                ok &= !(ch >= 'A' && ch <= 'Z');
                any_cased |= ch >= 'a' && ch <= 'z';
            }
        }
        if (!strcmp(name, "isupper") || !strcmp(name, "islower"))
            ok &= any_cased;
        return tv_bool(ok);
    }
    if (!strcmp(name, "zfill") || !strcmp(name, "center") || !strcmp(name, "ljust") ||
        !strcmp(name, "rjust")) {
        int64_t w = arg_int(c, a, 0, "width", 0);
        int64_t len = (int64_t)tu_count(s.b, s.n);
        if (w > (int64_t)c->max_output)
            rfail(c, STATUS_LIMIT, "width %lld too large", (long long)w);
        if (w <= len)
            return tv_str(s);
        int64_t pad = w - len, left = 0;
        if (name[0] == 'z' || name[0] == 'r')
            left = pad;
        else if (name[0] == 'c')
            left = pad / 2 + (pad & w & 1);
        TBuf b = newbuf(c);
        TStr fill = arg_str(c, a, 1, "fillchar", name[0] == 'z' ? "0" : " ");
        for (int64_t i = 0; i < left; i++)
            tb_put_str(&b, fill);
        tb_put_str(&b, s);
        for (int64_t i = left; i < pad; i++)
            tb_put_str(&b, fill);
        return tv_str(tb_str(&b));
    }
    rfail(c, STATUS_UNSUPPORTED, "str.%s is not supported", name);
}

/* ---- filters and tests ---- */

typedef TValue (*FilterFn)(Ctx *c, TValue v, const Args *a);
typedef bool (*TestFn)(Ctx *c, TValue v, const Args *a);

static TValue apply_filter(Ctx *c, const char *name, TValue v, const Args *a);
static bool apply_test(Ctx *c, const char *name, TValue v, const Args *a);

static int64_t length_of(Ctx *c, TValue v) {
    switch ((VKind)v.kind) {
    case V_STR:
        return (int64_t)tu_count(v.u.s.b, v.u.s.n);
    case V_LIST:
        if (v.u.l->gen)
            rfail(c, STATUS_INVALID, "object of type 'generator' has no len()");
        return (int64_t)v.u.l->n;
    case V_DICT:
        return (int64_t)v.u.d->n;
    case V_UNDEF:
        return 0;
    default:
        rfail(c, STATUS_INVALID, "object of type '%s' has no len()", type_name(v));
    }
}

static TValue f_length(Ctx *c, TValue v, const Args *a) {
    (void)a;
    return tv_int(length_of(c, v));
}

static TValue f_tojson(Ctx *c, TValue v, const Args *a) {
    TJsonOpts o = {0};
    o.ensure_ascii = truthy(arg_or(a, 0, "ensure_ascii", tv_bool(false)));
    TValue ind = arg_or(a, 1, "indent", tv_none());
    if (ind.kind == V_STR) {
        o.indent = ind.u.s.b;
        o.indent_n = ind.u.s.n;
    } else if (is_intish(ind)) {
        int64_t k = ind.u.i < 0 ? 0 : ind.u.i;
        if (k > 1024)
            rfail(c, STATUS_LIMIT, "tojson indent %lld too large (limit 1024)", (long long)k);
        char *sp = ta_alloc(c->a, (size_t)k + 1, c->f);
        memset(sp, ' ', (size_t)k);
        o.indent = sp;
        o.indent_n = (size_t)k;
    } else if (ind.kind != V_NONE) {
        rfail(c, STATUS_INVALID, "tojson: indent must be an int or a string");
    }
    TValue seps = arg_or(a, 2, "separators", tv_none());
    if (seps.kind == V_LIST && !seps.u.l->gen && seps.u.l->n == 2 && seps.u.l->v[0].kind == V_STR &&
        seps.u.l->v[1].kind == V_STR) {
        o.item_sep = seps.u.l->v[0].u.s;
        o.key_sep = seps.u.l->v[1].u.s;
    } else if (seps.kind != V_NONE) {
        rfail(c, STATUS_INVALID, "tojson: separators must be a pair of strings");
    } else {
        o.item_sep = cstr(c, o.indent ? "," : ", ", 1).u.s;
        o.key_sep = cstr(c, ": ", 1).u.s;
    }
    o.sort_keys = truthy(arg_or(a, 3, "sort_keys", tv_bool(false)));
    TBuf b = newbuf(c);
    tv_write_json(&b, v, &o, 0, 0);
    return tv_str(tb_str(&b));
}

static TValue f_string(Ctx *c, TValue v, const Args *a) {
    (void)a;
    return to_str(c, v);
}

static TValue f_trim(Ctx *c, TValue v, const Args *a) {
    TStr s = to_str(c, v).u.s;
    TValue ch;
    if (arg(a, 0, "chars", &ch) && ch.kind != V_NONE) {
        TStr cs = to_str(c, ch).u.s;
        return tv_str(strip(s, &cs, 3));
    }
    return tv_str(strip(s, NULL, 3));
}

static TValue f_upper(Ctx *c, TValue v, const Args *a) {
    (void)a;
    return casemap(c, to_str(c, v).u.s, 'u');
}
static TValue f_lower(Ctx *c, TValue v, const Args *a) {
    (void)a;
    return casemap(c, to_str(c, v).u.s, 'l');
}
static TValue f_title(Ctx *c, TValue v, const Args *a) {
    (void)a;
    return casemap(c, to_str(c, v).u.s, 'j');
}
static TValue f_capitalize(Ctx *c, TValue v, const Args *a) {
    (void)a;
    return casemap(c, to_str(c, v).u.s, 'c');
}

static TValue f_replace(Ctx *c, TValue v, const Args *a) {
    TValue o, n;
    if (!arg(a, 0, "old", &o) || !arg(a, 1, "new", &n))
        rfail(c, STATUS_INVALID, "replace needs 'old' and 'new'");
    return str_replace(c, to_str(c, v).u.s, to_str(c, o).u.s, to_str(c, n).u.s,
                       arg_int(c, a, 2, "count", -1));
}

static TValue f_default(Ctx *c, TValue v, const Args *a) {
    TValue def = arg_or(a, 0, "default_value", cstr(c, "", 1));
    bool boolean = truthy(arg_or(a, 1, "boolean", tv_bool(false)));
    if (v.kind == V_UNDEF || (boolean && !truthy(v)))
        return def;
    return v;
}

/* first/last: Jinja2 iterates an undefined value as empty, so both give
 * undefined for it, as for an empty sequence. */
static TValue f_first(Ctx *c, TValue v, const Args *a) {
    (void)a;
    TList *l = iter_list(c, v);
    return l->n ? l->v[0] : tv_undef(NULL);
}

static TValue f_last(Ctx *c, TValue v, const Args *a) {
    (void)a;
    if (v.kind == V_LIST && v.u.l->gen)
        rfail(c, STATUS_INVALID, "'generator' object is not reversible");
    TList *l = iter_list(c, v);
    return l->n ? l->v[l->n - 1] : tv_undef(NULL);
}

/* Attribute path "a.b.0" as Jinja's make_attrgetter. */
static TValue attr_path(Ctx *c, TValue v, TStr path) {
    size_t i = 0;
    while (i <= path.n) {
        size_t j = i;
        while (j < path.n && path.b[j] != '.')
            j++;
        TStr part = sub(path, i, j);
        bool digits = part.n > 0;
        for (size_t k = 0; k < part.n; k++)
            digits &= part.b[k] >= '0' && part.b[k] <= '9';
        TValue key = digits ? tv_int(strtoll(part.b, NULL, 10)) : tv_str(part);
        v = getitem_v(c, v, key);
        i = j + 1;
    }
    return v;
}

static TValue f_join(Ctx *c, TValue v, const Args *a) {
    TStr sep = arg_str(c, a, 0, "d", "");
    TValue attr;
    TList *l = iter_list(c, v);
    if (arg(a, 1, "attribute", &attr) && attr.kind != V_NONE) {
        TList *m = tl_new(c->a, c->f, l->n);
        for (size_t i = 0; i < l->n; i++)
            m->v[m->n++] = attr_path(c, l->v[i], to_str(c, attr).u.s);
        l = m;
    }
    return join(c, l, sep);
}

static TList *copy_list(Ctx *c, TList *l) {
    TList *m = tl_new(c->a, c->f, l->n);
    if (l->n)
        memcpy(m->v, l->v, l->n * sizeof *m->v);
    m->n = l->n;
    return m;
}

static TValue f_list(Ctx *c, TValue v, const Args *a) {
    (void)a;
    return mk_list(copy_list(c, iter_list(c, v)));
}

static TValue gen(TList *l) {
    l->gen = true;
    l->tuple = false;
    return mk_list(l);
}

/* map and the select family start with `if value:` in Jinja2: a falsy input
 * (none, false, 0, "", [], {}, undefined) yields nothing, before the
 * arguments are even looked at; anything else must be iterable. */
static TValue f_map(Ctx *c, TValue v, const Args *a) {
    if (!truthy(v))
        return gen(tl_new(c->a, c->f, 0));
    TList *l = iter_list(c, v);
    TList *m = tl_new(c->a, c->f, l->n);
    TValue attr;
    if (arg(a, 99, "attribute", &attr)) {
        TValue def;
        bool has_def = arg(a, 99, "default", &def);
        TStr path = to_str(c, attr).u.s;
        for (size_t i = 0; i < l->n; i++) {
            TValue x = attr_path(c, l->v[i], path);
            if (x.kind == V_UNDEF && has_def)
                x = def;
            m->v[m->n++] = x;
        }
        return gen(m);
    }
    if (a->n_pos == 0)
        rfail(c, STATUS_INVALID, "map requires a filter argument");
    TValue fname = a->v[0];
    if (fname.kind != V_STR || fname.u.s.n > 63)
        rfail(c, STATUS_INVALID, "map: filter name must be a string");
    char name[64];
    memcpy(name, fname.u.s.b, fname.u.s.n);
    name[fname.u.s.n] = '\0';
    Args rest = {.n = a->n - 1, .n_pos = a->n_pos - 1, .v = a->v + 1, .kw = a->kw + 1};
    for (size_t i = 0; i < l->n; i++) {
        step(c);
        m->v[m->n++] = apply_filter(c, name, l->v[i], &rest);
    }
    return gen(m);
}

/* select/reject/selectattr/rejectattr */
static TValue select_impl(Ctx *c, TValue v, const Args *a, bool attr, bool want) {
    if (!truthy(v))
        return gen(tl_new(c->a, c->f, 0));
    TList *l = iter_list(c, v);
    TList *m = tl_new(c->a, c->f, 0);
    size_t k = 0;
    TStr path = {0};
    if (attr) {
        if (a->n_pos < 1)
            rfail(c, STATUS_INVALID, "selectattr needs an attribute");
        path = to_str(c, a->v[0]).u.s;
        k = 1;
    }
    char name[64] = "";
    bool has_test = a->n_pos > k;
    if (has_test) {
        TValue t = a->v[k];
        if (t.kind != V_STR || t.u.s.n > 63)
            rfail(c, STATUS_INVALID, "test name must be a string");
        memcpy(name, t.u.s.b, t.u.s.n);
        name[t.u.s.n] = '\0';
        k++;
    }
    Args rest = {.n = a->n - k, .n_pos = a->n_pos - k, .v = a->v + k, .kw = a->kw + k};
    for (size_t i = 0; i < l->n; i++) {
        step(c);
        TValue x = attr ? attr_path(c, l->v[i], path) : l->v[i];
        bool r = has_test ? apply_test(c, name, x, &rest) : truthy(x);
        if (r == want)
            tl_push(c->a, c->f, m, l->v[i]);
    }
    return gen(m);
}
static TValue f_select(Ctx *c, TValue v, const Args *a) {
    return select_impl(c, v, a, false, true);
}
static TValue f_reject(Ctx *c, TValue v, const Args *a) {
    return select_impl(c, v, a, false, false);
}
static TValue f_selectattr(Ctx *c, TValue v, const Args *a) {
    return select_impl(c, v, a, true, true);
}
static TValue f_rejectattr(Ctx *c, TValue v, const Args *a) {
    return select_impl(c, v, a, true, false);
}

static TValue pair(Ctx *c, TValue k, TValue v) {
    TList *t = tl_new(c->a, c->f, 2);
    t->v[0] = k;
    t->v[1] = v;
    t->n = 2;
    t->tuple = true;
    return mk_list(t);
}

static TList *items_of(Ctx *c, TDict *d) {
    TList *l = tl_new(c->a, c->f, d->n);
    for (size_t i = 0; i < d->n; i++)
        l->v[l->n++] = pair(c, d->k[i], d->v[i]);
    return l;
}

static TValue f_items(Ctx *c, TValue v, const Args *a) {
    (void)a;
    if (v.kind == V_UNDEF)
        return gen(tl_new(c->a, c->f, 0));
    if (v.kind != V_DICT)
        rfail(c, STATUS_INVALID, "Can only get item pairs from a mapping.");
    return gen(items_of(c, v.u.d));
}

/* Sort key: lowercased strings when not case sensitive. */
static TValue sort_key(Ctx *c, TValue v, bool cs) {
    if (!cs && v.kind == V_STR)
        return casemap(c, v.u.s, 'l');
    return v;
}

static void sort_values(Ctx *c, TValue *items, TValue *keys, size_t n, bool reverse) {
    /* stable insertion sort for small n, merge-free: chat data is small; bound by steps */
    for (size_t i = 1; i < n; i++) {
        TValue it = items[i], k = keys[i];
        size_t j = i;
        while (j > 0) {
            step(c);
            int r = vcmp(c, keys[j - 1], k, 0);
            if (reverse ? r >= 0 : r <= 0)
                break;
            items[j] = items[j - 1];
            keys[j] = keys[j - 1];
            j--;
        }
        items[j] = it;
        keys[j] = k;
    }
}

static TValue f_dictsort(Ctx *c, TValue v, const Args *a) {
    if (v.kind != V_DICT)
        rfail(c, STATUS_INVALID, "dictsort: expected a mapping, got %s", type_name(v));
    bool cs = truthy(arg_or(a, 0, "case_sensitive", tv_bool(false)));
    TStr by = arg_str(c, a, 1, "by", "key");
    bool reverse = truthy(arg_or(a, 2, "reverse", tv_bool(false)));
    int pos = str_is(by, "key") ? 0 : str_is(by, "value") ? 1 : -1;
    if (pos < 0)
        rfail(c, STATUS_INVALID, "You can only sort by either \"key\" or \"value\"");
    TList *l = items_of(c, v.u.d);
    TValue *keys = ta_alloc(c->a, (l->n + 1) * sizeof *keys, c->f);
    for (size_t i = 0; i < l->n; i++)
        keys[i] = sort_key(c, l->v[i].u.l->v[pos], cs);
    sort_values(c, l->v, keys, l->n, reverse);
    return mk_list(l);
}

static TValue f_sort(Ctx *c, TValue v, const Args *a) {
    bool reverse = truthy(arg_or(a, 0, "reverse", tv_bool(false)));
    bool cs = truthy(arg_or(a, 1, "case_sensitive", tv_bool(false)));
    TValue attr = arg_or(a, 2, "attribute", tv_none());
    TList *l = copy_list(c, iter_list(c, v));
    TValue *keys = ta_alloc(c->a, (l->n + 1) * sizeof *keys, c->f);
    for (size_t i = 0; i < l->n; i++) {
        TValue k = attr.kind == V_NONE ? l->v[i] : attr_path(c, l->v[i], to_str(c, attr).u.s);
        keys[i] = sort_key(c, k, cs);
    }
    sort_values(c, l->v, keys, l->n, reverse);
    return mk_list(l);
}

static TValue f_reverse(Ctx *c, TValue v, const Args *a) {
    (void)a;
    if (v.kind == V_STR) {
        TValue none = tv_none(), m1 = tv_int(-1);
        return slice_v(c, v, none, none, m1);
    }
    if (v.kind == V_LIST && v.u.l->gen)
        rfail(c, STATUS_INVALID, "argument to reversed() must be a sequence");
    TList *l = iter_list(c, v);
    TList *m = tl_new(c->a, c->f, l->n);
    for (size_t i = l->n; i-- > 0;)
        m->v[m->n++] = l->v[i];
    return gen(m);
}

static TValue f_unique(Ctx *c, TValue v, const Args *a) {
    bool cs = truthy(arg_or(a, 0, "case_sensitive", tv_bool(false)));
    TValue attr = arg_or(a, 1, "attribute", tv_none());
    TList *l = iter_list(c, v);
    TList *m = tl_new(c->a, c->f, 0);
    TList *seen = tl_new(c->a, c->f, 0);
    for (size_t i = 0; i < l->n; i++) {
        TValue k = attr.kind == V_NONE ? l->v[i] : attr_path(c, l->v[i], to_str(c, attr).u.s);
        k = sort_key(c, k, cs);
        bool dup = false;
        for (size_t j = 0; j < seen->n && !dup; j++) {
            step(c);
            dup = veq(c, seen->v[j], k, 0);
        }
        if (!dup) {
            tl_push(c->a, c->f, seen, k);
            tl_push(c->a, c->f, m, l->v[i]);
        }
    }
    return gen(m);
}

static TValue minmax(Ctx *c, TValue v, const Args *a, int sign) {
    bool cs = truthy(arg_or(a, 0, "case_sensitive", tv_bool(false)));
    TValue attr = arg_or(a, 1, "attribute", tv_none());
    TList *l = iter_list(c, v);
    if (l->n == 0)
        return tv_undef(NULL);
    size_t best = 0;
    TValue bk = {0};
    for (size_t i = 0; i < l->n; i++) {
        TValue k = attr.kind == V_NONE ? l->v[i] : attr_path(c, l->v[i], to_str(c, attr).u.s);
        k = sort_key(c, k, cs);
        if (i == 0 || vcmp(c, k, bk, 0) * sign > 0) {
            best = i;
            bk = k;
        }
    }
    return l->v[best];
}
static TValue f_min(Ctx *c, TValue v, const Args *a) { return minmax(c, v, a, -1); }
static TValue f_max(Ctx *c, TValue v, const Args *a) { return minmax(c, v, a, 1); }

static TValue f_sum(Ctx *c, TValue v, const Args *a) {
    TValue attr = arg_or(a, 0, "attribute", tv_none());
    TValue acc = arg_or(a, 1, "start", tv_int(0));
    TList *l = iter_list(c, v);
    for (size_t i = 0; i < l->n; i++) {
        TValue x = attr.kind == V_NONE ? l->v[i] : attr_path(c, l->v[i], to_str(c, attr).u.s);
        acc = binop(c, OP_ADD, acc, x);
    }
    return acc;
}

/* Python int()/float() of a string. */
static bool parse_num(TStr s, bool want_int, int base, int64_t *iv, double *fv) {
    char buf[128];
    TStr t = strip(s, NULL, 3);
    if (t.n == 0 || t.n >= sizeof buf)
        return false;
    size_t o = 0;
    for (size_t i = 0; i < t.n; i++) {
        if (t.b[i] == '_') {
            if (i == 0 || i + 1 >= t.n ||
                !((t.b[i - 1] >= '0' && t.b[i - 1] <= '9') || ascii_alpha(t.b[i - 1])))
                return false;
            continue;
        }
        buf[o++] = t.b[i];
    }
    buf[o] = '\0';
    char *end = buf;
    if (want_int) {
        if (base != 0 && (base < 2 || base > 36))
            return false; /* Python raises ValueError; the int filter falls back */
        errno = 0;
        long long v = strtoll(buf, &end, base);
        if (*end || errno || end == buf)
            return false;
        if (base == 16 || base == 0) { /* strtoll allows 0x prefixes; Python only with base 0/16 */
        } else if (strchr(buf, 'x') || strchr(buf, 'X')) {
            return false;
        }
        *iv = v;
        return true;
    }
    if (strchr(buf, 'x') || strchr(buf, 'X') || strchr(buf, 'p') || strchr(buf, 'P'))
        return false;
    double d = strtod(buf, &end);
    if (*end || end == buf)
        return false;
    *fv = d;
    return true;
}

static TValue f_int(Ctx *c, TValue v, const Args *a) {
    TValue def = arg_or(a, 0, "default", tv_int(0));
    int64_t base = arg_int(c, a, 1, "base", 10);
    TValue r;
    if (v.kind == V_UNDEF) /* int(Undefined) raises in Jinja2 */
        undef_fail(c, v);
    switch (v.kind) {
    case V_INT:
    case V_BOOL:
        r = tv_int(v.u.i);
        break;
    case V_FLOAT:
        if (!isfinite(v.u.f) || fabs(v.u.f) >= 9.2e18)
            return def;
        r = tv_int((int64_t)v.u.f);
        break;
    case V_STR: {
        int64_t iv;
        double fv;
        if (parse_num(v.u.s, true, (int)base, &iv, &fv)) {
            r = tv_int(iv);
        } else if (parse_num(v.u.s, false, 10, &iv, &fv) && isfinite(fv) && fabs(fv) < 9.2e18) {
            r = tv_int((int64_t)fv);
        } else {
            return def;
        }
        break;
    }
    default:
        return def;
    }
    r.data = v.data || (v.kind == V_STR);
    return r;
}

static TValue f_float(Ctx *c, TValue v, const Args *a) {
    TValue def = arg_or(a, 0, "default", tv_float(0.0));
    TValue r;
    if (v.kind == V_UNDEF) /* float(Undefined) raises in Jinja2 */
        undef_fail(c, v);
    if (is_num(v)) {
        r = tv_float(num_f(v));
    } else if (v.kind == V_STR) {
        int64_t iv;
        double fv;
        if (!parse_num(v.u.s, false, 10, &iv, &fv))
            return def;
        r = tv_float(fv);
    } else {
        return def;
    }
    r.data = v.data || v.kind == V_STR;
    return r;
}

static TValue f_abs(Ctx *c, TValue v, const Args *a) {
    (void)a;
    if (is_intish(v)) {
        if (v.u.i == INT64_MIN)
            rfail(c, STATUS_LIMIT, "integer overflow");
        return data_int(v.u.i < 0 ? -v.u.i : v.u.i, v.data);
    }
    if (v.kind == V_FLOAT) {
        TValue r = tv_float(fabs(v.u.f));
        r.data = v.data;
        return r;
    }
    rfail(c, STATUS_INVALID, "bad operand type for abs(): '%s'", type_name(v));
}

static TValue f_round(Ctx *c, TValue v, const Args *a) {
    int64_t prec = arg_int(c, a, 0, "precision", 0);
    TStr method = arg_str(c, a, 1, "method", "common");
    if (!is_num(v))
        rfail(c, STATUS_INVALID, "round: expected a number, got %s", type_name(v));
    if (prec < -20 || prec > 20)
        rfail(c, STATUS_LIMIT, "round: precision %lld out of range", (long long)prec);
    double x = num_f(v), p = pow(10.0, (double)prec), r;
    if (str_is(method, "common")) {
        if (is_intish(v) && prec >= 0)
            return data_int(v.u.i, v.data);
        /* Python round(): half to even on the decimal value */
        char buf[64];
        snprintf(buf, sizeof buf, "%.*f", prec > 0 ? (int)prec : 0,
                 prec >= 0 ? x : x / pow(10.0, (double)-prec));
        r = strtod(buf, NULL);
        if (prec < 0)
            r *= pow(10.0, (double)-prec);
    } else if (str_is(method, "ceil")) {
        r = ceil(x * p) / p;
    } else if (str_is(method, "floor")) {
        r = floor(x * p) / p;
    } else {
        rfail(c, STATUS_INVALID, "method must be common, ceil or floor");
    }
    TValue out = tv_float(r);
    out.data = v.data;
    return out;
}

static TValue f_indent(Ctx *c, TValue v, const Args *a) {
    TValue w = arg_or(a, 0, "width", tv_int(4));
    bool first = truthy(arg_or(a, 1, "first", tv_bool(false)));
    bool blank = truthy(arg_or(a, 2, "blank", tv_bool(false)));
    TStr ind;
    if (w.kind == V_STR) {
        ind = w.u.s;
    } else {
        if (!is_intish(w) || w.u.i > 1024)
            rfail(c, STATUS_INVALID, "indent: width must be an int (at most 1024) or a string");
        TBuf b = newbuf(c);
        for (int64_t i = 0; i < w.u.i; i++)
            tb_puts(&b, " ", 1);
        ind = tb_str(&b);
    }
    /* Jinja2's do_indent starts with `s += "\n"`: only a string survives it. */
    if (v.kind == V_UNDEF)
        undef_fail(c, v);
    if (v.kind != V_STR)
        rfail(c, STATUS_INVALID, "unsupported operand type(s) for +=: '%s' and 'str'",
              type_name(v));
    TStr s = concat2(c, v.u.s, cstr(c, "\n", 1).u.s).u.s;
    TList *lines = splitlines(c, s);
    TBuf b = newbuf(c);
    if (first)
        tb_put_str(&b, ind);
    for (size_t i = 0; i < lines->n; i++) {
        TStr line = lines->v[i].u.s;
        if (i) {
            tb_puts(&b, "\n", 1);
            if (blank || line.n)
                tb_put_str(&b, ind);
        }
        tb_put_str(&b, line);
    }
    return tv_str(tb_str(&b));
}

static TValue f_safe(Ctx *c, TValue v, const Args *a) {
    (void)a;
    return to_str(c, v);
}

static TValue f_escape(Ctx *c, TValue v, const Args *a) {
    (void)a;
    TStr s = to_str(c, v).u.s;
    TBuf b = newbuf(c);
    for (size_t i = 0; i < s.n; i++) {
        const char *r = NULL;
        switch (s.b[i]) {
        case '&':
            r = "&amp;";
            break;
        case '<':
            r = "&lt;";
            break;
        case '>':
            r = "&gt;";
            break;
        case '"':
            r = "&#34;";
            break;
        case '\'':
            r = "&#39;";
            break;
        }
        if (r)
            tb_puts(&b, r, s.m[i]);
        else
            tb_put(&b, s.b + i, 1, s.m[i]);
    }
    return tv_str(tb_str(&b));
}

static TValue f_format(Ctx *c, TValue v, const Args *a) {
    TList *l = tl_new(c->a, c->f, a->n_pos);
    for (size_t i = 0; i < a->n_pos; i++)
        l->v[l->n++] = a->v[i];
    l->tuple = true;
    return str_mod(c, to_str(c, v).u.s, mk_list(l));
}

static TValue f_attr(Ctx *c, TValue v, const Args *a) {
    TStr name = arg_str(c, a, 0, "name", "");
    char buf[128];
    if (name.n >= sizeof buf)
        return tv_undef(NULL);
    memcpy(buf, name.b, name.n);
    buf[name.n] = '\0';
    const char *nm = cstr(c, buf, 1).u.s.b;
    return getattr_v(c, v, nm);
}

static TValue f_batch(Ctx *c, TValue v, const Args *a) {
    int64_t k = arg_int(c, a, 0, "linecount", 1);
    TValue fill;
    bool has_fill = arg(a, 1, "fill_with", &fill) && fill.kind != V_NONE;
    if (k <= 0)
        rfail(c, STATUS_INVALID, "batch: linecount must be positive");
    TList *l = iter_list(c, v), *out = tl_new(c->a, c->f, 0), *cur = NULL;
    for (size_t i = 0; i < l->n; i++) {
        if (!cur || (int64_t)cur->n == k) {
            cur = tl_new(c->a, c->f, 0);
            tl_push(c->a, c->f, out, mk_list(cur));
        }
        tl_push(c->a, c->f, cur, l->v[i]);
    }
    if (cur && has_fill)
        while ((int64_t)cur->n < k)
            tl_push(c->a, c->f, cur, fill);
    return gen(out);
}

static TValue f_wordcount(Ctx *c, TValue v, const Args *a) {
    (void)a;
    TStr s = to_str(c, v).u.s;
    int64_t n = 0;
    bool in = false;
    for (size_t i = 0; i < s.n; i++) {
        unsigned char ch = (unsigned char)s.b[i];
        bool w = ch == '_' || ascii_alpha((char)ch) || (ch >= '0' && ch <= '9') || ch >= 0x80;
        if (w && !in)
            n++;
        in = w;
    }
    return tv_int(n);
}

static TValue f_center(Ctx *c, TValue v, const Args *a) {
    int64_t w = arg_int(c, a, 0, "width", 80);
    Args one = {.n = 1, .n_pos = 1, .v = &(TValue){0}, .kw = (const char *[]){NULL}};
    one.v[0] = tv_int(w);
    return str_method(c, to_str(c, v).u.s, "center", &one);
}

static const struct {
    const char *name;
    FilterFn fn;
} FILTERS[] = {
    {"abs", f_abs},
    {"attr", f_attr},
    {"batch", f_batch},
    {"capitalize", f_capitalize},
    {"center", f_center},
    {"count", f_length},
    {"d", f_default},
    {"default", f_default},
    {"dictsort", f_dictsort},
    {"e", f_escape},
    {"escape", f_escape},
    {"first", f_first},
    {"float", f_float},
    {"forceescape", f_escape},
    {"format", f_format},
    {"int", f_int},
    {"items", f_items},
    {"indent", f_indent},
    {"join", f_join},
    {"last", f_last},
    {"length", f_length},
    {"list", f_list},
    {"lower", f_lower},
    {"map", f_map},
    {"max", f_max},
    {"min", f_min},
    {"reject", f_reject},
    {"rejectattr", f_rejectattr},
    {"replace", f_replace},
    {"reverse", f_reverse},
    {"round", f_round},
    {"safe", f_safe},
    {"select", f_select},
    {"selectattr", f_selectattr},
    {"sort", f_sort},
    {"string", f_string},
    {"sum", f_sum},
    {"title", f_title},
    {"tojson", f_tojson},
    {"trim", f_trim},
    {"unique", f_unique},
    {"upper", f_upper},
    {"wordcount", f_wordcount},
};

bool tmpl_filter_known(const char *name) {
    for (size_t i = 0; i < sizeof FILTERS / sizeof FILTERS[0]; i++)
        if (!strcmp(FILTERS[i].name, name))
            return true;
    return false;
}

static TValue apply_filter(Ctx *c, const char *name, TValue v, const Args *a) {
    for (size_t i = 0; i < sizeof FILTERS / sizeof FILTERS[0]; i++)
        if (!strcmp(FILTERS[i].name, name))
            return FILTERS[i].fn(c, v, a);
    rfail(c, STATUS_INVALID, "No filter named '%s'", name);
}

static TValue test_arg(Ctx *c, const Args *a, const char *name) {
    TValue v;
    if (!arg(a, 0, "other", &v) && !arg(a, 0, "value", &v))
        rfail(c, STATUS_INVALID, "test '%s' needs an argument", name);
    return v;
}

static bool apply_test(Ctx *c, const char *name, TValue v, const Args *a) {
    VKind k = (VKind)v.kind;
    if (!strcmp(name, "defined"))
        return k != V_UNDEF;
    if (!strcmp(name, "undefined"))
        return k == V_UNDEF;
    if (!strcmp(name, "none"))
        return k == V_NONE;
    if (!strcmp(name, "boolean"))
        return k == V_BOOL;
    if (!strcmp(name, "true"))
        return k == V_BOOL && v.u.i;
    if (!strcmp(name, "false"))
        return k == V_BOOL && !v.u.i;
    if (!strcmp(name, "integer"))
        return k == V_INT;
    if (!strcmp(name, "float"))
        return k == V_FLOAT;
    if (!strcmp(name, "number"))
        return is_num(v);
    if (!strcmp(name, "string"))
        return k == V_STR;
    if (!strcmp(name, "mapping"))
        return k == V_DICT;
    if (!strcmp(name, "iterable"))
        return k == V_STR || k == V_LIST || k == V_DICT || k == V_UNDEF;
    if (!strcmp(name, "sequence"))
        return k == V_STR || (k == V_LIST && !v.u.l->gen) || k == V_DICT || k == V_UNDEF;
    if (!strcmp(name, "callable"))
        return k == V_MACRO || k == V_FUNC || k == V_METHOD;
    if (!strcmp(name, "escaped"))
        return false;
    if (!strcmp(name, "lower") || !strcmp(name, "upper")) {
        TStr s = to_str(c, v).u.s;
        Args none = {0};
        return truthy(str_method(c, s, name[0] == 'l' ? "islower" : "isupper", &none));
    }
    if (!strcmp(name, "even") || !strcmp(name, "odd") || !strcmp(name, "divisibleby")) {
        if (!is_num(v))
            rfail(c, STATUS_INVALID, "test '%s' needs a number", name);
        int64_t d = name[0] == 'd' ? arg_int(c, a, 0, "num", 1) : 2;
        TValue r = binop(c, OP_MOD, v, tv_int(d));
        bool zero = num_f(r) == 0;
        return name[0] == 'o' ? !zero : zero;
    }
    if (!strcmp(name, "eq") || !strcmp(name, "equalto") || !strcmp(name, "=="))
        return veq(c, v, test_arg(c, a, name), 0);
    if (!strcmp(name, "ne") || !strcmp(name, "!="))
        return !veq(c, v, test_arg(c, a, name), 0);
    if (!strcmp(name, "sameas")) {
        TValue o = test_arg(c, a, name);
        if (v.kind != o.kind)
            return false;
        if (v.kind == V_STR)
            return v.u.s.b == o.u.s.b && v.u.s.n == o.u.s.n;
        return veq(c, v, o, 0);
    }
    if (!strcmp(name, "lt") || !strcmp(name, "lessthan") || !strcmp(name, "<"))
        return vcmp(c, v, test_arg(c, a, name), 0) < 0;
    if (!strcmp(name, "le") || !strcmp(name, "<="))
        return vcmp(c, v, test_arg(c, a, name), 0) <= 0;
    if (!strcmp(name, "gt") || !strcmp(name, "greaterthan") || !strcmp(name, ">"))
        return vcmp(c, v, test_arg(c, a, name), 0) > 0;
    if (!strcmp(name, "ge") || !strcmp(name, ">="))
        return vcmp(c, v, test_arg(c, a, name), 0) >= 0;
    if (!strcmp(name, "in")) {
        TValue seq;
        if (!arg(a, 0, "seq", &seq))
            rfail(c, STATUS_INVALID, "test 'in' needs an argument");
        return contains(c, seq, v);
    }
    if (!strcmp(name, "filter") || !strcmp(name, "test")) {
        TValue n = v;
        if (n.kind != V_STR || n.u.s.n > 63)
            return false;
        char buf[64];
        memcpy(buf, n.u.s.b, n.u.s.n);
        buf[n.u.s.n] = '\0';
        return name[0] == 'f' ? tmpl_filter_known(buf) : true;
    }
    rfail(c, STATUS_INVALID, "No test named '%s'", name);
}

static const char *const TESTS[] = {
    "defined", "undefined", "none",   "boolean", "true",        "false",       "integer",
    "float",   "number",    "string", "mapping", "iterable",    "sequence",    "callable",
    "escaped", "lower",     "upper",  "even",    "odd",         "divisibleby", "eq",
    "equalto", "==",        "ne",     "!=",      "sameas",      "lt",          "lessthan",
    "<",       "le",        "<=",     "gt",      "greaterthan", ">",           "ge",
    ">=",      "in",        "filter", "test",    NULL};

bool tmpl_test_known(const char *name) { return in_table(TESTS, name); }

/* ---- calls ---- */

static TValue call_macro(Ctx *c, TMacro *m, const Args *a);

static TValue call_method(Ctx *c, TMethod *m, const Args *a) {
    TValue self = m->self;
    const char *name = m->name;
    if (self.kind == V_STR)
        return str_method(c, self.u.s, name, a);
    if (self.kind == V_DICT) {
        TDict *d = self.u.d;
        if (!strcmp(name, "items"))
            return mk_list(items_of(c, d));
        if (!strcmp(name, "keys"))
            return mk_list(iter_list(c, self));
        if (!strcmp(name, "values")) {
            TList *l = tl_new(c->a, c->f, d->n);
            memcpy(l->v, d->v, d->n * sizeof *l->v);
            l->n = d->n;
            return mk_list(l);
        }
        if (!strcmp(name, "get")) {
            TValue k;
            if (!arg(a, 0, "key", &k))
                rfail(c, STATUS_INVALID, "get expected at least 1 argument, got 0");
            bool found;
            TValue v = dict_get(d, k, c, &found);
            return found ? v : arg_or(a, 1, "default", tv_none());
        }
        if (!strcmp(name, "copy")) {
            TDict *nd = td_new(c->a, c->f, d->n);
            for (size_t i = 0; i < d->n; i++)
                td_set(c->a, c->f, nd, d->k[i], d->v[i]);
            return mk_dict(nd, V_DICT);
        }
    }
    if (self.kind == V_LIST) {
        TList *l = self.u.l;
        if (!strcmp(name, "copy"))
            return mk_list(copy_list(c, l));
        TValue x;
        if (!arg(a, 0, "value", &x))
            rfail(c, STATUS_INVALID, "%s() takes exactly one argument", name);
        int64_t k = 0;
        for (size_t i = 0; i < l->n; i++) {
            if (veq(c, l->v[i], x, 0)) {
                if (name[0] == 'i')
                    return tv_int((int64_t)i);
                k++;
            }
        }
        if (name[0] == 'i')
            rfail(c, STATUS_INVALID, "value is not in list");
        return tv_int(k);
    }
    if (self.kind == V_LOOP && !strcmp(name, "cycle")) {
        if (a->n_pos == 0)
            rfail(c, STATUS_INVALID, "no items for cycling given");
        return a->v[self.u.loop->i % a->n_pos];
    }
    rfail(c, STATUS_UNSUPPORTED, "method '%s' is not supported", name);
}

static TValue call_func(Ctx *c, int fn, const Args *a) {
    switch (fn) {
    case FN_RANGE: {
        int64_t st = 0, en, sp = 1;
        for (size_t k = 0; k < a->n_pos; k++)
            if (!is_intish(a->v[k]))
                rfail(c, STATUS_INVALID, "'%s' object cannot be interpreted as an integer",
                      type_name(a->v[k]));
        if (a->n_pos == 1) {
            en = arg_int(c, a, 0, "stop", 0);
        } else if (a->n_pos == 2 || a->n_pos == 3) {
            st = arg_int(c, a, 0, "start", 0);
            en = arg_int(c, a, 1, "stop", 0);
            sp = a->n_pos == 3 ? arg_int(c, a, 2, "step", 1) : 1;
        } else {
            rfail(c, STATUS_INVALID, "range expected 1 to 3 arguments, got %zu", a->n_pos);
        }
        if (sp == 0)
            rfail(c, STATUS_INVALID, "range() arg 3 must not be zero");
        double cnt = sp > 0 ? ceil(((double)en - (double)st) / (double)sp)
                            : ceil(((double)st - (double)en) / (double)-sp);
        if (cnt < 0)
            cnt = 0;
        if (cnt > SANDBOX_MAX_RANGE)
            rfail(c, STATUS_LIMIT,
                  "Range too big. The sandbox blocks ranges larger than MAX_RANGE (%d).",
                  SANDBOX_MAX_RANGE);
        TList *l = tl_new(c->a, c->f, (size_t)cnt);
        for (int64_t i = 0; i < (int64_t)cnt; i++)
            l->v[l->n++] = tv_int(st + i * sp);
        return mk_list(l);
    }
    case FN_NAMESPACE:
    case FN_DICT: {
        TDict *d = td_new(c->a, c->f, 0);
        for (size_t i = 0; i < a->n_pos; i++) {
            TValue x = a->v[i];
            if (x.kind == V_DICT || x.kind == V_NS) {
                for (size_t j = 0; j < x.u.d->n; j++)
                    td_set(c->a, c->f, d, x.u.d->k[j], x.u.d->v[j]);
            } else {
                rfail(c, STATUS_UNSUPPORTED, "%s() with a positional %s is not supported",
                      fn == FN_DICT ? "dict" : "namespace", type_name(x));
            }
        }
        for (size_t i = a->n_pos; i < a->n; i++)
            td_set(c->a, c->f, d, cstr(c, a->kw[i], 1), a->v[i]);
        return mk_dict(d, fn == FN_DICT ? V_DICT : V_NS);
    }
    case FN_RAISE: {
        TValue msg = arg_or(a, 0, "message", cstr(c, "", 1));
        TStr s = to_str(c, msg).u.s;
        tfail(c->f, STATUS_INVALID, 0, 0, "template error: %.*s", (int)(s.n > 400 ? 400 : s.n),
              s.b);
    }
    case FN_STRFTIME: {
        TStr fmt = arg_str(c, a, 0, "format", "");
        char f[256], out[512];
        if (fmt.n >= sizeof f)
            rfail(c, STATUS_LIMIT, "strftime_now: format longer than %zu bytes", sizeof f - 1);
        memcpy(f, fmt.b, fmt.n);
        f[fmt.n] = '\0';
        time_t now = time(NULL);
        struct tm tm;
        localtime_r(&now, &tm);
        size_t n = fmt.n ? strftime(out, sizeof out, f, &tm) : 0;
        return tv_lit(c->a, c->f, out, n, 1);
    }
    }
    rfail(c, STATUS_INVALID, "bad function");
}

static TValue call_value(Ctx *c, TValue callee, const Args *a) {
    step(c);
    switch ((VKind)callee.kind) {
    case V_MACRO:
        return call_macro(c, callee.u.mac, a);
    case V_FUNC:
        return call_func(c, (int)callee.u.i, a);
    case V_METHOD:
        return call_method(c, callee.u.meth, a);
    case V_UNDEF:
        undef_fail(c, callee);
    default:
        rfail(c, STATUS_INVALID, "'%s' object is not callable", type_name(callee));
    }
}

/* Render a body into a new string with the current scope. */
static TValue capture(Ctx *c, const TNode *body) {
    TBuf b = newbuf(c);
    TBuf *saved = c->out;
    c->out = &b;
    exec(c, body);
    c->out = saved;
    return tv_str(tb_str(&b));
}

static TValue call_macro(Ctx *c, TMacro *m, const Args *a) {
    const TNode *def = m->def;
    if (++c->depth > c->max_depth)
        rfail(c, STATUS_LIMIT, "template recursion deeper than %d", c->max_depth);
    Scope *saved = c->scope;
    Scope *s = scope_new(c, m->closure);
    c->scope = s;
    size_t np = def->n_args;
    TList *varargs = tl_new(c->a, c->f, 0);
    varargs->tuple = true;
    TDict *kwargs = td_new(c->a, c->f, 0);
    for (size_t i = np; i < a->n_pos; i++)
        tl_push(c->a, c->f, varargs, a->v[i]);
    for (size_t i = 0; i < np; i++) {
        const char *pn = def->args[i]->name;
        TValue v;
        if (i < a->n_pos) {
            v = a->v[i];
        } else {
            bool found = false;
            for (size_t k = a->n_pos; k < a->n; k++)
                if (!strcmp(a->kw[k], pn)) {
                    v = a->v[k];
                    found = true;
                }
            if (!found)
                v = def->defs[i] ? eval(c, def->defs[i]) : tv_undef(pn);
        }
        scope_set(c, s, pn, v);
    }
    for (size_t k = a->n_pos; k < a->n; k++) {
        bool is_param = false;
        for (size_t i = 0; i < np; i++)
            is_param |= !strcmp(a->kw[k], def->args[i]->name);
        if (!is_param) {
            if (!strcmp(a->kw[k], "caller"))
                scope_set(c, s, "caller", a->v[k]);
            else
                td_set(c->a, c->f, kwargs, cstr(c, a->kw[k], 1), a->v[k]);
        }
    }
    scope_set(c, s, "varargs", mk_list(varargs));
    scope_set(c, s, "kwargs", mk_dict(kwargs, V_DICT));
    int brk = c->brk;
    TValue r = capture(c, def->d);
    c->brk = brk;
    c->scope = saved;
    c->depth--;
    return r;
}

/* ---- expressions ---- */

static TValue eval_inner(Ctx *c, const TNode *n) {
    switch ((NKind)n->kind) {
    case N_CONST:
        return n->lit;
    case N_NAME:
        return lookup(c, n->name);
    case N_LIST:
    case N_TUPLE: {
        TList *l = tl_new(c->a, c->f, n->n_args);
        for (size_t i = 0; i < n->n_args; i++)
            l->v[l->n++] = eval(c, n->args[i]);
        l->tuple = n->kind == N_TUPLE;
        return mk_list(l);
    }
    case N_DICT: {
        TDict *d = td_new(c->a, c->f, n->n_args / 2);
        for (size_t i = 0; i + 1 < n->n_args; i += 2) {
            TValue k = eval(c, n->args[i]);
            TValue v = eval(c, n->args[i + 1]);
            if (k.kind == V_LIST || k.kind == V_DICT || k.kind == V_NS || k.kind == V_UNDEF) {
                if (!(k.kind == V_LIST && k.u.l->tuple))
                    rfail(c, STATUS_INVALID, "unhashable type: '%s'", type_name(k));
            }
            td_set(c->a, c->f, d, k, v);
        }
        return mk_dict(d, V_DICT);
    }
    case N_GETATTR: {
        TValue obj = eval(c, n->a);
        c->at = n;
        return getattr_v(c, obj, n->name);
    }
    case N_GETITEM: {
        TValue obj = eval(c, n->a);
        if (n->b->kind == N_SLICE) {
            const TNode *s = n->b;
            TValue none = tv_none();
            TValue a = s->a ? eval(c, s->a) : none, b = s->b ? eval(c, s->b) : none,
                   st = s->c ? eval(c, s->c) : none;
            c->at = n;
            return slice_v(c, obj, a, b, st);
        }
        TValue k = eval(c, n->b);
        c->at = n;
        return getitem_v(c, obj, k);
    }
    case N_SLICE:
        rfail(c, STATUS_INVALID, "slice outside of a subscript");
    case N_CALL: {
        TValue callee = eval(c, n->a);
        Args a = eval_args(c, n, 0);
        c->at = n;
        return call_value(c, callee, &a);
    }
    case N_FILTER: {
        TValue v = n->a ? eval(c, n->a) : c->filter_input;
        Args a = eval_args(c, n, 0);
        c->at = n;
        return apply_filter(c, n->name, v, &a);
    }
    case N_TEST: {
        TValue v = eval(c, n->a);
        Args a = eval_args(c, n, 0);
        c->at = n;
        bool r = apply_test(c, n->name, v, &a);
        return tv_bool(n->op ? !r : r);
    }
    case N_UNARY: {
        TValue v = eval(c, n->a);
        c->at = n;
        if (n->op == 'n')
            return tv_bool(!truthy(v));
        if (v.kind == V_UNDEF)
            undef_fail(c, v);
        if (!is_num(v))
            rfail(c, STATUS_INVALID, "bad operand type for unary %c: '%s'", n->op, type_name(v));
        if (n->op == '+')
            return v.kind == V_BOOL ? data_int(v.u.i, v.data) : v;
        if (v.kind == V_FLOAT) {
            TValue r = tv_float(-v.u.f);
            r.data = v.data;
            return r;
        }
        if (v.u.i == INT64_MIN)
            rfail(c, STATUS_LIMIT, "integer overflow");
        return data_int(-v.u.i, v.data);
    }
    case N_BINARY: {
        TValue a = eval(c, n->a);
        TValue b = eval(c, n->b);
        c->at = n;
        return binop(c, n->op, a, b);
    }
    case N_AND: {
        TValue a = eval(c, n->a);
        return truthy(a) ? eval(c, n->b) : a;
    }
    case N_OR: {
        TValue a = eval(c, n->a);
        return truthy(a) ? a : eval(c, n->b);
    }
    case N_COND:
        if (truthy(eval(c, n->a)))
            return eval(c, n->b);
        return n->c ? eval(c, n->c) : tv_undef(NULL);
    case N_COMPARE: {
        TValue l = eval(c, n->a);
        for (size_t i = 0; i < n->n_args; i++) {
            TValue r = eval(c, n->args[i]);
            c->at = n;
            bool ok;
            switch (n->cmp_ops[i]) {
            case OP_EQ:
                ok = veq(c, l, r, 0);
                break;
            case OP_NE:
                ok = !veq(c, l, r, 0);
                break;
            case OP_LT:
                ok = vcmp(c, l, r, 0) < 0;
                break;
            case OP_LTEQ:
                ok = vcmp(c, l, r, 0) <= 0;
                break;
            case OP_GT:
                ok = vcmp(c, l, r, 0) > 0;
                break;
            case OP_GTEQ:
                ok = vcmp(c, l, r, 0) >= 0;
                break;
            case OP_IN:
                ok = contains(c, r, l);
                break;
            default:
                ok = !contains(c, r, l);
                break;
            }
            if (!ok)
                return tv_bool(false);
            l = r;
        }
        return tv_bool(true);
    }
    case N_CONCAT: {
        TBuf b = newbuf(c);
        for (size_t i = 0; i < n->n_args; i++)
            tv_write_str(&b, eval(c, n->args[i]), 0);
        return tv_str(tb_str(&b));
    }
    default:
        rfail(c, STATUS_INVALID, "statement used as an expression");
    }
}

static TValue eval(Ctx *c, const TNode *n) {
    step(c);
    if (++c->depth > c->max_depth)
        rfail(c, STATUS_LIMIT, "template nesting deeper than %d", c->max_depth);
    const TNode *saved = c->at;
    c->at = n;
    TValue v = eval_inner(c, n);
    c->at = saved;
    c->depth--;
    return v;
}

/* ---- statements ---- */

static void assign(Ctx *c, const TNode *target, TValue v) {
    if (target->kind == N_NAME) {
        scope_set(c, c->scope, target->name, v);
        return;
    }
    if (target->kind == N_GETATTR) {
        TValue ns = lookup(c, target->a->name);
        if (ns.kind != V_NS)
            rfail(c, STATUS_INVALID, "cannot assign attribute on non-namespace object");
        td_set(c->a, c->f, ns.u.d, cstr(c, target->name, 1), v);
        return;
    }
    /* tuple unpacking */
    TList *l = iter_list(c, v);
    if (l->n != target->n_args)
        rfail(c, STATUS_INVALID, "cannot unpack %zu values into %zu names", l->n, target->n_args);
    for (size_t i = 0; i < l->n; i++)
        scope_set(c, c->scope, target->args[i]->name, l->v[i]);
}

static void exec_for(Ctx *c, const TNode *n) {
    TValue it = eval(c, n->b);
    c->at = n;
    TList *items = iter_list(c, it);
    Scope *outer = c->scope;
    if (n->c) { /* loop filter: sees the target, not 'loop' */
        TList *kept = tl_new(c->a, c->f, 0);
        for (size_t i = 0; i < items->n; i++) {
            c->scope = scope_new(c, outer);
            assign(c, n->a, items->v[i]);
            if (truthy(eval(c, n->c)))
                tl_push(c->a, c->f, kept, items->v[i]);
        }
        c->scope = outer;
        items = kept;
    }
    TLoop *lp = ta_alloc(c->a, sizeof *lp, c->f);
    lp->items = items;
    TValue lv = {.kind = V_LOOP};
    lv.u.loop = lp;
    for (size_t i = 0; i < items->n; i++) {
        step(c);
        lp->i = i;
        c->scope = scope_new(c, outer);
        scope_set(c, c->scope, "loop", lv);
        assign(c, n->a, items->v[i]);
        exec(c, n->d);
        c->scope = outer;
        if (c->brk == 1) {
            c->brk = 0;
            break;
        }
        c->brk = 0;
    }
    if (items->n == 0 && n->e)
        exec(c, n->e);
}

static void exec(Ctx *c, const TNode *n) {
    step(c);
    if (++c->depth > c->max_depth)
        rfail(c, STATUS_LIMIT, "template nesting deeper than %d", c->max_depth);
    c->at = n;
    switch ((NKind)n->kind) {
    case N_BODY:
        for (size_t i = 0; i < n->n_args && !c->brk; i++)
            exec(c, n->args[i]);
        break;
    case N_TEXT:
        tb_put_str(c->out, n->lit.u.s);
        break;
    case N_OUTPUT: {
        TValue v = eval(c, n->a);
        tv_write_str(c->out, v, 0);
        break;
    }
    case N_IF:
        if (truthy(eval(c, n->a)))
            exec(c, n->b);
        else if (n->c)
            exec(c, n->c);
        break;
    case N_FOR:
        exec_for(c, n);
        break;
    case N_SET:
        assign(c, n->a, eval(c, n->b));
        break;
    case N_SETBLOCK: {
        TValue v = capture(c, n->d);
        if (n->b) {
            TValue saved = c->filter_input;
            c->filter_input = v;
            v = eval(c, n->b);
            c->filter_input = saved;
        }
        c->at = n;
        assign(c, n->a, v);
        break;
    }
    case N_MACRO: {
        TMacro *m = ta_alloc(c->a, sizeof *m, c->f);
        m->def = n;
        m->closure = c->scope;
        m->name = n->name;
        TValue v = {.kind = V_MACRO};
        v.u.mac = m;
        scope_set(c, c->scope, n->name, v);
        break;
    }
    case N_CALLBLOCK: {
        TMacro *m = ta_alloc(c->a, sizeof *m, c->f);
        m->def = n;
        m->closure = c->scope;
        m->name = "caller";
        TValue caller = {.kind = V_MACRO};
        caller.u.mac = m;
        const TNode *call = n->a;
        TValue callee = eval(c, call->a);
        Args a = eval_args(c, call, 1);
        a.kw[a.n] = "caller";
        a.v[a.n] = caller;
        a.n++;
        c->at = n;
        TValue r = call_value(c, callee, &a);
        tv_write_str(c->out, r, 0);
        break;
    }
    case N_FILTERBLOCK: {
        TValue v = capture(c, n->d);
        TValue saved = c->filter_input;
        c->filter_input = v;
        TValue r = eval(c, n->b);
        c->filter_input = saved;
        tv_write_str(c->out, r, 0);
        break;
    }
    case N_WITH: {
        Scope *outer = c->scope;
        Scope *s = scope_new(c, outer);
        for (size_t i = 0; i < n->n_args; i++) {
            TValue v = eval(c, n->defs[i]);
            c->scope = s;
            assign(c, n->args[i], v);
            c->scope = outer;
        }
        c->scope = s;
        exec(c, n->d);
        c->scope = outer;
        break;
    }
    case N_BREAK:
        c->brk = 1;
        break;
    case N_CONTINUE:
        c->brk = 2;
        break;
    default:
        rfail(c, STATUS_INVALID, "expression used as a statement");
    }
    c->depth--;
}

/* Entry point used by template.c: renders into 'out'. */
void tmpl_eval_render(const Template *t, const json_t *vars, const json_t *trusted,
                      const TmplLimits *lim, TArena *a, TFail *f, TBuf *out) {
    Ctx c = {.a = a, .f = f, .out = out};
    c.max_steps = lim && lim->max_steps ? lim->max_steps : 10000000u;
    c.max_depth = lim && lim->max_depth > 0 ? lim->max_depth : 256;
    c.max_output = out->limit;
    Scope *globals = scope_new(&c, NULL);
    if ((vars && !json_is_object(vars)) || (trusted && !json_is_object(trusted)))
        tfail(f, STATUS_INVALID, 0, 0, "template variables must be a JSON object");
    TDict *d = NULL, *td = NULL;
    if (vars)
        d = tv_from_json(a, f, vars, 0).u.d;
    if (trusted)
        td = tv_from_json_as(a, f, trusted, 0, 1).u.d;
    if (d && td) { /* trusted names win: data cannot replace the model's markup */
        TDict *m = td_new(a, f, d->n + td->n);
        for (size_t i = 0; i < d->n; i++)
            if (!json_object_getn(trusted, d->k[i].u.s.b, d->k[i].u.s.n)) {
                m->k[m->n] = d->k[i];
                m->v[m->n++] = d->v[i];
            }
        for (size_t i = 0; i < td->n; i++) {
            m->k[m->n] = td->k[i];
            m->v[m->n++] = td->v[i];
        }
        d = m;
    }
    if (d || td)
        globals->vars = d ? d : td;
    c.scope = scope_new(&c, globals);
    exec(&c, t->body);
}
