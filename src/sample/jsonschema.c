/* jsonschema.c - JSON Schema to GBNF (see jsonschema.h for the language
 * accepted and the canonical form written).
 *
 * A schema node compiles to a GBNF expression (one atom: a rule name, a
 * literal or a parenthesised group) appended to the caller's string;
 * objects, arrays and $ref targets get rules of their own, written into
 * the compile's rule text as they are made. $ref targets are compiled from
 * a worklist after the root, once each, so recursion through refs neither
 * loops nor deepens the C stack. Errors are sticky in the Compiler (the
 * first one wins; later steps return at once).
 *
 * Not here: multipleOf, non-integer number bounds: they are errors. */
#include "sample/jsonschema.h"

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the shared rules ---- */

#define G_WS "json-ws ::= ( \" \" | \"\\n\" [ \\t]{0,20} )?\n"
#define G_HEX "json-hex ::= [0-9a-fA-F]\n"
#define G_CHAR                                                                                     \
    "json-char ::= [^\"\\\\\\x00-\\x1F] | \"\\\\\" ( [\"\\\\/bfnrt] | \"u\" json-char-u )\n"       \
    "json-char-u ::= [0-9a-cA-Ce-fE-F] json-hex json-hex json-hex | [dD] [0-7] json-hex json-hex " \
    "| [dD] [89abAB] json-hex json-hex \"\\\\u\" [dD] [c-fC-F] json-hex json-hex\n"
#define G_STRING "json-string ::= \"\\\"\" json-char* \"\\\"\"\n"
#define G_INT "json-int ::= \"-\"? ( \"0\" | [1-9] [0-9]{0,14} )\n"
#define G_NUMBER "json-number ::= json-int ( \".\" [0-9]{1,15} )? ( [eE] [-+]? [0-9]{1,2} )?\n"
#define G_VALUE                                                                                    \
    "json-value ::= json-object | json-array | json-string | json-number | \"true\" | \"false\" "  \
    "| \"null\"\n"                                                                                 \
    "json-object ::= \"{\" json-ws ( json-member ( json-ws \",\" json-ws json-member )* json-ws "  \
    ")? \"}\"\n"                                                                                   \
    "json-member ::= json-string json-ws \":\" json-ws json-value\n"                               \
    "json-array ::= \"[\" json-ws ( json-value ( json-ws \",\" json-ws json-value )* json-ws )? "  \
    "\"]\"\n"
#define G_KCHAR "json-kchar ::= [^\"\\\\\\x00-\\x1F]\n"
#define G_DATE                                                                                     \
    "json-date ::= [0-9]{4} \"-\" ( ( \"0\" [13578] | \"1\" [02] ) \"-\" ( \"0\" [1-9] | [12] "    \
    "[0-9] | \"3\" [01] ) | ( \"0\" [469] | \"11\" ) \"-\" ( \"0\" [1-9] | [12] [0-9] | \"30\" ) " \
    "| \"02-\" ( \"0\" [1-9] | \"1\" [0-9] | \"2\" [0-8] ) ) | json-leap-year \"-02-29\"\n"        \
    "json-leap-year ::= [0-9] [0-9] ( \"0\" [48] | [2468] [048] | [13579] [26] ) | ( [02468] "     \
    "[048] | [13579] [26] ) \"00\"\n"
#define G_TIME                                                                                     \
    "json-time ::= ( [01] [0-9] | \"2\" [0-3] ) \":\" [0-5] [0-9] \":\" [0-5] [0-9] ( \".\" "      \
    "[0-9]{1,9} )? ( [zZ] | [-+] ( [01] [0-9] | \"2\" [0-3] ) ( \":\"? [0-5] [0-9] )? )\n"
#define G_DATETIME "json-date-time ::= json-date [tT ] json-time\n"
#define G_UUID                                                                                     \
    "json-uuid ::= json-hex{8} \"-\" json-hex{4} \"-\" json-hex{4} \"-\" json-hex{4} \"-\" "       \
    "json-hex{12}\n"
#define G_EMAIL                                                                                    \
    "json-email ::= json-email-atom ( \".\" json-email-atom )* \"@\" ( json-email-label \".\" )+ " \
    "json-email-label\n"                                                                           \
    "json-email-atom ::= [a-zA-Z0-9!#$%&'*+/=?^_`{|}~\\-]+\n"                                      \
    "json-email-label ::= [a-zA-Z0-9] ( [a-zA-Z0-9\\-]{0,61} [a-zA-Z0-9] )?\n"
#define G_IPV4                                                                                     \
    "json-ipv4 ::= json-ipv4-octet \".\" json-ipv4-octet \".\" json-ipv4-octet \".\" "             \
    "json-ipv4-octet\n"                                                                            \
    "json-ipv4-octet ::= \"25\" [0-5] | \"2\" [0-4] [0-9] | \"1\" [0-9] [0-9] | [1-9]? [0-9]\n"

enum {
    P_WS = 1 << 0,
    P_HEX = 1 << 1,
    P_CHAR = 1 << 2,
    P_STRING = 1 << 3,
    P_INT = 1 << 4,
    P_NUMBER = 1 << 5,
    P_VALUE = 1 << 6,
    P_KCHAR = 1 << 7,
    P_DATE = 1 << 8,
    P_TIME = 1 << 9,
    P_DATETIME = 1 << 10,
    P_UUID = 1 << 11,
    P_EMAIL = 1 << 12,
    P_IPV4 = 1 << 13,
    N_PRIMS = 14,
};

static const struct {
    const char *text;
    unsigned deps; /* the shared rules it uses */
} PRIMS[N_PRIMS] = {
    {G_WS, 0},
    {G_HEX, 0},
    {G_CHAR, P_HEX},
    {G_STRING, P_CHAR},
    {G_INT, 0},
    {G_NUMBER, P_INT},
    {G_VALUE, P_WS | P_STRING | P_NUMBER},
    {G_KCHAR, 0},
    {G_DATE, 0},
    {G_TIME, 0},
    {G_DATETIME, P_DATE | P_TIME},
    {G_UUID, P_HEX},
    {G_EMAIL, 0},
    {G_IPV4, 0},
};

static const char OBJECT_GBNF[] =
    "root ::= json-object\n" G_VALUE G_WS G_STRING G_CHAR G_HEX G_NUMBER G_INT;

const char *jsonschema_object_gbnf(void) { return OBJECT_GBNF; }

/* 'used' and everything it needs. */
static unsigned prim_closure(unsigned used) {
    for (;;) {
        unsigned more = used;
        for (int i = 0; i < N_PRIMS; i++)
            if (used & (1u << i))
                more |= PRIMS[i].deps;
        if (more == used)
            return used;
        used = more;
    }
}

/* ---- strings ---- */

typedef struct {
    char *p; /* NUL-terminated once anything is put */
    size_t n, cap;
} Str;

static void str_free(Str *s) {
    free(s->p);
    *s = (Str){0};
}

/* ---- the compiler ---- */

typedef struct {
    const json_t *node;
    char name[JSONSCHEMA_MAX_RULE_NAME];
    char path[96]; /* the pointer, for messages */
    bool done;
} Ref;

typedef struct {
    const json_t *root;
    const char *prefix;
    Err *err;
    Status st;
    unsigned used; /* shared rules referenced */
    int n_names;   /* helper rules named so far */
    int n_nodes;   /* subschemas compiled (JSONSCHEMA_MAX_NODES) */
    int depth;
    size_t budget; /* bytes the rule text may still take */
    char path[256];
    size_t path_n;
    Str rules; /* the rules of this compile */
    Ref *refs;
    int n_refs, cap_refs;
} Compiler;

static const char *where(const Compiler *c) { return c->path_n ? c->path : "(root)"; }

__attribute__((format(printf, 3, 4))) static void fail(Compiler *c, Status st, const char *fmt,
                                                       ...) {
    if (c->st)
        return;
    char msg[ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    c->st = err_set(c->err, st, "schema: %s", msg);
}

static void put(Compiler *c, Str *s, const char *t, size_t n) {
    if (c->st || n == 0)
        return;
    if (n > c->budget || s->n + n > c->budget) {
        fail(c, STATUS_LIMIT, "the grammar would exceed %d bytes (JSONSCHEMA_MAX_BYTES) at %s",
             JSONSCHEMA_MAX_BYTES, where(c));
        return;
    }
    if (s->n + n + 1 > s->cap) {
        size_t cap = s->cap ? s->cap : 256;
        while (cap < s->n + n + 1)
            cap *= 2;
        char *p = realloc(s->p, cap);
        if (!p) {
            fail(c, STATUS_NOMEM, "out of memory");
            return;
        }
        s->p = p;
        s->cap = cap;
    }
    memcpy(s->p + s->n, t, n);
    s->n += n;
    s->p[s->n] = 0;
}

static void puts_(Compiler *c, Str *s, const char *t) { put(c, s, t, strlen(t)); }

__attribute__((format(printf, 3, 4))) static void putf(Compiler *c, Str *s, const char *fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    ASSERT(n >= 0 && (size_t)n < sizeof buf); /* callers format short things */
    put(c, s, buf, (size_t)n);
}

/* A shared rule by name, marked used. */
static void prim(Compiler *c, Str *s, unsigned bit, const char *name) {
    c->used |= bit;
    puts_(c, s, name);
}

/* Path: push ".key" (or "key" at the root); returns the length to pop to. */
static size_t path_push(Compiler *c, const char *key) {
    size_t old = c->path_n;
    int n = snprintf(c->path + old, sizeof c->path - old, "%s%s", old ? "." : "", key);
    if (n < 0 || (size_t)n >= sizeof c->path - old) { /* too long: end it with "..." */
        memcpy(c->path + sizeof c->path - 4, "...", 4);
        c->path_n = sizeof c->path - 1;
    } else {
        c->path_n = old + (size_t)n;
    }
    return old;
}

static void path_pop(Compiler *c, size_t old) {
    c->path_n = old;
    c->path[old] = 0;
}

static size_t path_push_index(Compiler *c, const char *key, size_t i) {
    char buf[64];
    snprintf(buf, sizeof buf, "%s.%zu", key, i);
    return path_push(c, buf);
}

/* A fresh helper rule name "<prefix>-<n>[-<hint>]"; the hint is the last
 * path step, sanitised, for reading the grammar. */
static void new_name(Compiler *c, char *out) {
    const char *last = strrchr(c->path, '.');
    last = last ? last + 1 : c->path;
    char hint[24];
    size_t k = 0;
    for (const char *p = last; *p && k < sizeof hint - 1; p++)
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9'))
            hint[k++] = *p;
    hint[k] = 0;
    snprintf(out, JSONSCHEMA_MAX_RULE_NAME, "%s-%d%s%s", c->prefix, ++c->n_names, k ? "-" : "",
             hint);
}

/* Write "name ::= body\n" into the compile's rules. */
static void emit_rule(Compiler *c, const char *name, const Str *body) {
    puts_(c, &c->rules, name);
    puts_(c, &c->rules, " ::= ");
    put(c, &c->rules, body->p ? body->p : "", body->n);
    puts_(c, &c->rules, "\n");
}

/* A GBNF literal for the bytes t[0..n). */
static void put_literal(Compiler *c, Str *s, const char *t, size_t n) {
    puts_(c, s, "\"");
    for (size_t i = 0; i < n; i++) {
        unsigned char b = (unsigned char)t[i];
        if (b == '"' || b == '\\') {
            char e[2] = {'\\', (char)b};
            put(c, s, e, 2);
        } else if (b < 0x20 || b == 0x7F) {
            putf(c, s, "\\x%02X", b);
        } else {
            put(c, s, (const char *)&b, 1);
        }
    }
    puts_(c, s, "\"");
}

/* ---- JSON texts of enum / const values ---- */

/* The shortest "%.*g" that reads back as v (JSON.stringify writes the
 * shortest round-trip form too). */
static void put_real(Compiler *c, Str *s, double v) {
    char buf[64];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    puts_(c, s, buf);
}

static void put_json_string(Compiler *c, Str *s, const char *t, size_t n) {
    puts_(c, s, "\"");
    for (size_t i = 0; i < n; i++) {
        unsigned char b = (unsigned char)t[i];
        switch (b) {
        case '"': puts_(c, s, "\\\""); break;
        case '\\': puts_(c, s, "\\\\"); break;
        case '\b': puts_(c, s, "\\b"); break;
        case '\f': puts_(c, s, "\\f"); break;
        case '\n': puts_(c, s, "\\n"); break;
        case '\r': puts_(c, s, "\\r"); break;
        case '\t': puts_(c, s, "\\t"); break;
        default:
            if (b < 0x20)
                putf(c, s, "\\u%04x", b);
            else
                put(c, s, (const char *)&b, 1);
        }
    }
    puts_(c, s, "\"");
}

/* Compact JSON text of v (jansson bounds its depth when parsing). */
static void put_json(Compiler *c, Str *s, const json_t *v, int depth) {
    if (c->st)
        return;
    if (depth > JSONSCHEMA_MAX_DEPTH) {
        fail(c, STATUS_LIMIT, "a value nested over %d deep (JSONSCHEMA_MAX_DEPTH) at %s",
             JSONSCHEMA_MAX_DEPTH, where(c));
        return;
    }
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        const char *k;
        const json_t *x;
        bool first = true;
        puts_(c, s, "{");
        json_object_foreach((json_t *)v, k, x) {
            if (!first)
                puts_(c, s, ",");
            first = false;
            put_json_string(c, s, k, strlen(k));
            puts_(c, s, ":");
            put_json(c, s, x, depth + 1);
        }
        puts_(c, s, "}");
        break;
    }
    case JSON_ARRAY:
        puts_(c, s, "[");
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (i)
                puts_(c, s, ",");
            put_json(c, s, json_array_get(v, i), depth + 1);
        }
        puts_(c, s, "]");
        break;
    case JSON_STRING: put_json_string(c, s, json_string_value(v), json_string_length(v)); break;
    case JSON_INTEGER: putf(c, s, "%" JSON_INTEGER_FORMAT, json_integer_value(v)); break;
    case JSON_REAL: put_real(c, s, json_real_value(v)); break;
    case JSON_TRUE: puts_(c, s, "true"); break;
    case JSON_FALSE: puts_(c, s, "false"); break;
    case JSON_NULL: puts_(c, s, "null"); break;
    }
}

/* ---- keywords ---- */

static const char *const ANNOTATIONS[] = {
    "$schema",  "$id",        "title",    "description", "examples", "default",
    "$comment", "deprecated", "readOnly", "writeOnly",   "$defs",    "definitions",
};

static const char *const KNOWN[] = {
    "type",
    "enum",
    "const",
    "$ref",
    "anyOf",
    "oneOf",
    "allOf",
    "minLength",
    "maxLength",
    "pattern",
    "format",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "prefixItems",
    "minItems",
    "maxItems",
};

static bool in_list(const char *k, const char *const *list, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!strcmp(k, list[i]))
            return true;
    return false;
}

static bool is_annotation(const char *k) {
    return in_list(k, ANNOTATIONS, sizeof ANNOTATIONS / sizeof *ANNOTATIONS);
}

static void unsupported(Compiler *c, const char *k) {
    size_t old = path_push(c, k);
    fail(c, STATUS_UNSUPPORTED, "unsupported keyword '%s' at %s", k, c->path);
    path_pop(c, old);
}

/* Every key of s other than annotations must be in allowed[]. */
static void only(Compiler *c, const json_t *s, const char *const *allowed, size_t n) {
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)s, k, v) {
        if (!is_annotation(k) && !in_list(k, allowed, n)) {
            size_t old = path_push(c, k);
            if (in_list(k, KNOWN, sizeof KNOWN / sizeof *KNOWN))
                fail(c, STATUS_UNSUPPORTED, "keyword '%s' beside '%s' is unsupported at %s", k,
                     allowed[0], c->path);
            else
                fail(c, STATUS_UNSUPPORTED, "unsupported keyword '%s' at %s", k, c->path);
            path_pop(c, old);
            return;
        }
    }
}

/* A non-negative integer keyword; -1 when absent. */
static long long count_kw(Compiler *c, const json_t *s, const char *k) {
    const json_t *v = json_object_get(s, k);
    if (!v)
        return -1;
    double d = json_is_integer(v) ? (double)json_integer_value(v) : json_real_value(v);
    if (!json_is_number(v) || d < 0 || d != floor(d)) {
        size_t old = path_push(c, k);
        fail(c, STATUS_INVALID, "'%s' must be a non-negative integer at %s", k, c->path);
        path_pop(c, old);
        return -1;
    }
    return d > 1e15 ? (long long)1e15 : (long long)d;
}

static void compile_node(Compiler *c, const json_t *s, Str *e);

/* ---- $ref ---- */

/* The node at a same-document reference "#..." (a JSON pointer), or NULL. */
static const json_t *resolve(const Compiler *c, const char *ref) {
    if (ref[0] != '#')
        return NULL;
    const json_t *n = c->root;
    const char *p = ref + 1;
    if (*p && *p != '/')
        return NULL; /* "#anchor" */
    while (*p == '/' && n) {
        p++;
        char tok[256];
        size_t k = 0;
        for (; *p && *p != '/'; p++) {
            char ch = *p;
            if (ch == '~') {
                if (p[1] == '0')
                    ch = '~';
                else if (p[1] == '1')
                    ch = '/';
                else
                    return NULL;
                p++;
            }
            if (k + 1 >= sizeof tok)
                return NULL;
            tok[k++] = ch;
        }
        tok[k] = 0;
        if (json_is_object(n)) {
            n = json_object_get(n, tok);
        } else if (json_is_array(n)) {
            char *end;
            unsigned long i = strtoul(tok, &end, 10);
            n = (k && *end == 0 && tok[0] >= '0' && tok[0] <= '9') ? json_array_get(n, i) : NULL;
        } else {
            n = NULL;
        }
    }
    return n;
}

static void compile_ref(Compiler *c, const json_t *s, Str *e) {
    static const char *const allowed[] = {"$ref"};
    only(c, s, allowed, 1);
    const json_t *r = json_object_get(s, "$ref");
    if (c->st)
        return;
    size_t old = path_push(c, "$ref");
    const json_t *target = json_is_string(r) ? resolve(c, json_string_value(r)) : NULL;
    if (!json_is_string(r))
        fail(c, STATUS_INVALID, "'$ref' must be a string at %s", c->path);
    else if (!target)
        fail(c, STATUS_INVALID,
             "$ref '%.100s' at %s: not found (only \"#\" and JSON pointers "
             "into this schema are supported)",
             json_string_value(r), c->path);
    path_pop(c, old);
    if (c->st)
        return;
    for (int i = 0; i < c->n_refs; i++)
        if (c->refs[i].node == target) {
            puts_(c, e, c->refs[i].name);
            return;
        }
    if (c->n_refs == c->cap_refs) {
        int cap = c->cap_refs ? 2 * c->cap_refs : 16;
        Ref *nr = realloc(c->refs, (size_t)cap * sizeof *nr);
        if (!nr) {
            fail(c, STATUS_NOMEM, "out of memory");
            return;
        }
        c->refs = nr;
        c->cap_refs = cap;
    }
    Ref *ref = &c->refs[c->n_refs++];
    ref->node = target;
    ref->done = false;
    size_t po = path_push(c, json_string_value(r) + (json_string_value(r)[1] == '/' ? 2 : 1));
    for (char *p = c->path + po; *p; p++)
        if (*p == '/')
            *p = '.';
    snprintf(ref->path, sizeof ref->path, "%s", c->path + po + (po ? 1 : 0));
    new_name(c, ref->name);
    path_pop(c, po);
    puts_(c, e, ref->name);
}

/* ---- pattern: an ECMAScript regular expression ----
 *
 * ajv compiles a pattern with new RegExp(p, "u"): code points, unanchored
 * (a string matches when the pattern matches somewhere in it). A pattern
 * compiles to a rule for the whole string literal: "\"" ( branch | ... )
 * "\"", each top-level branch wrapped in json-char* where it is not
 * anchored by a leading '^' / trailing '$'. The matched part writes each
 * character raw, or with its short escape (\" \\ \/ \b \f \n \r \t) where
 * it has one; never \uXXXX (a subset: never an invalid text). Parsing is
 * recursive descent over groups, at most JSONSCHEMA_MAX_DEPTH deep.
 *
 * The grammar matcher explores every way to skip what can match the empty
 * string, so the emitted expression keeps one such way per construct: a
 * quantifier on a nullable atom is x{n} for x{m,n} (the same language) and
 * refused when unbounded; an alternation with two nullable branches (below
 * the top) is refused. Nothing then multiplies with the pattern's length. */

#define RX_MAX_RANGES 512 /* ranges of one character set, after merging */
#define RX_MAX_CP 0x10FFFF

typedef struct {
    uint32_t lo, hi;
} Range;

typedef struct {
    Range r[RX_MAX_RANGES + 4];
    int n;
} CpSet;

typedef struct {
    Compiler *c;
    const char *s, *p, *end; /* the pattern, the cursor, its end */
    int depth;               /* groups open */
} Rx;

typedef struct {
    bool nullable; /* can match "" */
    bool empty;    /* matches "" only (nothing was written) */
} RxInfo;

__attribute__((format(printf, 3, 4))) static void rx_fail(Rx *r, Status st, const char *fmt, ...) {
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fail(r->c, st, "pattern at %s: %s (offset %td)", where(r->c), msg, r->p - r->s);
}

static bool rx_ok(const Rx *r) { return !r->c->st; }

static int range_cmp(const void *a, const void *b) {
    const Range *x = a, *y = b;
    return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/* Sort and merge overlapping or adjacent ranges. */
static void set_norm(CpSet *s) {
    if (s->n < 2)
        return;
    qsort(s->r, (size_t)s->n, sizeof *s->r, range_cmp);
    int k = 0;
    for (int i = 1; i < s->n; i++) {
        if (s->r[i].lo <= s->r[k].hi + 1) {
            if (s->r[i].hi > s->r[k].hi)
                s->r[k].hi = s->r[i].hi;
        } else {
            s->r[++k] = s->r[i];
        }
    }
    s->n = k + 1;
}

static void set_add(Rx *r, CpSet *s, uint32_t lo, uint32_t hi) {
    if (s->n >= RX_MAX_RANGES) {
        set_norm(s);
        if (s->n >= RX_MAX_RANGES)
            return rx_fail(r, STATUS_LIMIT, "a character set of over %d ranges", RX_MAX_RANGES);
    }
    s->r[s->n++] = (Range){lo, hi};
}

/* The complement in [0, RX_MAX_CP] (s normalised). */
static void set_negate(CpSet *s) {
    set_norm(s);
    CpSet t = {.n = 0};
    uint32_t next = 0;
    for (int i = 0; i < s->n; i++) {
        if (s->r[i].lo > next)
            t.r[t.n++] = (Range){next, s->r[i].lo - 1};
        next = s->r[i].hi + 1;
    }
    if (next <= RX_MAX_CP)
        t.r[t.n++] = (Range){next, RX_MAX_CP};
    *s = t;
}

static bool set_has(const CpSet *s, uint32_t cp) {
    for (int i = 0; i < s->n; i++)
        if (cp >= s->r[i].lo && cp <= s->r[i].hi)
            return true;
    return false;
}

/* \d \D \w \W \s \S (ECMAScript's WhiteSpace and LineTerminator for \s). */
static void set_class_escape(Rx *r, CpSet *s, char e) {
    static const Range D[] = {{'0', '9'}};
    static const Range W[] = {{'0', '9'}, {'A', 'Z'}, {'_', '_'}, {'a', 'z'}};
    static const Range S[] = {
        {0x09, 0x0D},     {0x20, 0x20},     {0xA0, 0xA0},     {0x1680, 0x1680}, {0x2000, 0x200A},
        {0x2028, 0x2029}, {0x202F, 0x202F}, {0x205F, 0x205F}, {0x3000, 0x3000}, {0xFEFF, 0xFEFF}};
    const Range *rs = e == 'd' || e == 'D' ? D : e == 'w' || e == 'W' ? W : S;
    int n = e == 'd' || e == 'D' ? 1 : e == 'w' || e == 'W' ? 4 : 10;
    CpSet t = {.n = 0};
    for (int i = 0; i < n; i++)
        t.r[t.n++] = rs[i];
    if (e >= 'A' && e <= 'Z')
        set_negate(&t);
    for (int i = 0; i < t.n && rx_ok(r); i++)
        set_add(r, s, t.r[i].lo, t.r[i].hi);
}

static int hex_digit(char ch) {
    return ch >= '0' && ch <= '9'   ? ch - '0'
           : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
           : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
                                    : -1;
}

/* n hex digits at r->p; -1 if not there. */
static long rx_hex(Rx *r, int n) {
    long v = 0;
    for (int i = 0; i < n; i++) {
        int h = r->p + i < r->end ? hex_digit(r->p[i]) : -1;
        if (h < 0)
            return -1;
        v = v * 16 + h;
    }
    r->p += n;
    return v;
}

/* The code point at r->p (the pattern is UTF-8: jansson checked it). */
static uint32_t rx_utf8(Rx *r) {
    const unsigned char *u = (const unsigned char *)r->p;
    size_t left = (size_t)(r->end - r->p);
    int n = u[0] < 0x80 ? 1 : u[0] < 0xE0 ? 2 : u[0] < 0xF0 ? 3 : 4;
    if ((size_t)n > left)
        n = (int)left;
    uint32_t cp = n == 1 ? u[0] : u[0] & (0x7F >> n);
    for (int i = 1; i < n; i++)
        cp = cp << 6 | (u[i] & 0x3F);
    r->p += n;
    return cp;
}

/* \u escape after "\u": HHHH (a surrogate pair \uHHHH\uHHHH is one code
 * point) or {H...}. */
static uint32_t rx_unicode(Rx *r) {
    long v;
    if (r->p < r->end && *r->p == '{') {
        r->p++;
        v = 0;
        int n = 0;
        while (r->p < r->end && hex_digit(*r->p) >= 0 && v <= RX_MAX_CP)
            v = v * 16 + hex_digit(*r->p++), n++;
        if (n == 0 || v > RX_MAX_CP || r->p >= r->end || *r->p != '}') {
            rx_fail(r, STATUS_INVALID, "a bad escape '\\u{...}'");
            return 0;
        }
        r->p++;
    } else if ((v = rx_hex(r, 4)) < 0) {
        rx_fail(r, STATUS_INVALID, "a bad escape '\\u' (four hex digits)");
        return 0;
    }
    if (v >= 0xD800 && v <= 0xDBFF && r->end - r->p >= 6 && r->p[0] == '\\' && r->p[1] == 'u') {
        const char *at = r->p;
        r->p += 2;
        long lo = rx_hex(r, 4);
        if (lo >= 0xDC00 && lo <= 0xDFFF)
            return (uint32_t)(0x10000 + ((v - 0xD800) << 10) + (lo - 0xDC00));
        r->p = at;
    }
    if (v >= 0xD800 && v <= 0xDFFF)
        rx_fail(r, STATUS_UNSUPPORTED, "a lone surrogate '\\u%04lX' is not supported", v);
    return (uint32_t)v;
}

/* The escape after '\' at r->p: a class escape (adds to *set, returns
 * true) or one code point (*cp). */
static bool rx_escape(Rx *r, bool in_class, CpSet *set, uint32_t *cp) {
    *cp = 0;
    if (r->p >= r->end) {
        rx_fail(r, STATUS_INVALID, "'\\' at the end");
        return false;
    }
    char e = *r->p++;
    switch (e) {
    case 'd':
    case 'D':
    case 'w':
    case 'W':
    case 's':
    case 'S': set_class_escape(r, set, e); return true;
    case 't': *cp = '\t'; return false;
    case 'n': *cp = '\n'; return false;
    case 'v': *cp = '\v'; return false;
    case 'f': *cp = '\f'; return false;
    case 'r': *cp = '\r'; return false;
    case 'u': *cp = rx_unicode(r); return false;
    case 'x': {
        long v = rx_hex(r, 2);
        if (v < 0)
            rx_fail(r, STATUS_INVALID, "a bad escape '\\x' (two hex digits)");
        *cp = v < 0 ? 0 : (uint32_t)v;
        return false;
    }
    case 'c':
        if (r->p < r->end && ((*r->p >= 'a' && *r->p <= 'z') || (*r->p >= 'A' && *r->p <= 'Z')))
            *cp = (uint32_t)(*r->p++ % 32);
        else
            rx_fail(r, STATUS_INVALID, "a bad escape '\\c' (a letter must follow)");
        return false;
    case '0':
        if (r->p < r->end && *r->p >= '0' && *r->p <= '9')
            rx_fail(r, STATUS_INVALID, "an octal escape '\\0%c'", *r->p);
        return false;
    case 'b':
        if (in_class) {
            *cp = '\b';
            return false;
        }
        rx_fail(r, STATUS_UNSUPPORTED, "word boundary '\\b' is not supported");
        return false;
    case 'B': rx_fail(r, STATUS_UNSUPPORTED, "word boundary '\\B' is not supported"); return false;
    case 'k':
        rx_fail(r, STATUS_UNSUPPORTED, "named backreference '\\k' is not supported");
        return false;
    case 'p':
    case 'P':
        rx_fail(r, STATUS_UNSUPPORTED, "unicode property escape '\\%c' is not supported", e);
        return false;
    default:
        if (e >= '1' && e <= '9') {
            rx_fail(r, STATUS_UNSUPPORTED, "backreference '\\%c' is not supported", e);
        } else if (e && strchr(in_class ? "^$\\.*+?()[]{}|/-" : "^$\\.*+?()[]{}|/", e)) {
            *cp = (uint32_t)(unsigned char)e;
        } else {
            r->p--;
            rx_fail(r, STATUS_INVALID, "an invalid escape '\\%.*s'", (int)(r->p < r->end ? 1 : 0),
                    r->p);
        }
        return false;
    }
}

/* A code point in GBNF (inside a literal or a class): alphanumerics as
 * they are, anything else escaped. */
static void put_cp(Compiler *c, Str *s, uint32_t cp) {
    if ((cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z'))
        putf(c, s, "%c", (char)cp);
    else if (cp < 0x80)
        putf(c, s, "\\x%02X", cp);
    else if (cp <= 0xFFFF)
        putf(c, s, "\\u%04X", cp);
    else
        putf(c, s, "\\U%08X", cp);
}

/* The JSON string content of one character of 'set': raw where JSON allows
 * it, else its short escape. One GBNF symbol. */
static void rx_put_set(Rx *r, Str *out, const CpSet *set) {
    static const struct {
        uint32_t cp;
        char letter;
    } ESC[] = {{'"', '"'},  {'\\', '\\'}, {'/', '/'},  {'\b', 'b'},
               {'\f', 'f'}, {'\n', 'n'},  {'\r', 'r'}, {'\t', 't'}};
    Compiler *c = r->c;
    CpSet raw = {.n = 0};
    for (int i = 0; i < set->n; i++) { /* set minus [0, 0x1F], '"' and '\' */
        uint32_t lo = set->r[i].lo < 0x20 ? 0x20 : set->r[i].lo, hi = set->r[i].hi;
        static const uint32_t cut[] = {'"', '\\'};
        for (int k = 0; k < 2 && lo <= hi; k++) {
            if (cut[k] < lo || cut[k] > hi)
                continue;
            if (cut[k] > lo)
                raw.r[raw.n++] = (Range){lo, cut[k] - 1};
            lo = cut[k] + 1;
        }
        if (lo <= hi)
            raw.r[raw.n++] = (Range){lo, hi};
    }
    char esc[8];
    int ne = 0;
    for (size_t i = 0; i < sizeof ESC / sizeof *ESC; i++)
        if (set_has(set, ESC[i].cp))
            esc[ne++] = ESC[i].letter;
    int nalt = (raw.n > 0) + (ne > 0);
    if (nalt == 0)
        return rx_fail(r, STATUS_UNSUPPORTED,
                       "a character set with no character that is written (only controls "
                       "without a short escape, or none at all)");
    if (nalt == 2)
        puts_(c, out, "( ");
    if (raw.n == 1 && raw.r[0].lo == raw.r[0].hi) {
        puts_(c, out, "\"");
        put_cp(c, out, raw.r[0].lo);
        puts_(c, out, "\"");
    } else if (raw.n > 0) {
        puts_(c, out, "[");
        for (int i = 0; i < raw.n; i++) {
            put_cp(c, out, raw.r[i].lo);
            if (raw.r[i].hi > raw.r[i].lo) {
                puts_(c, out, "-");
                put_cp(c, out, raw.r[i].hi);
            }
        }
        puts_(c, out, "]");
    }
    if (nalt == 2)
        puts_(c, out, " | ");
    if (ne > 0) {
        puts_(c, out, ne == 1 ? "\"\\x5C" : "\"\\x5C\" [");
        for (int i = 0; i < ne; i++)
            put_cp(c, out, (unsigned char)esc[i]);
        puts_(c, out, ne == 1 ? "\"" : "]");
    }
    if (nalt == 2)
        puts_(c, out, " )");
}

static RxInfo rx_alt(Rx *r, Str *out, bool top);

/* '[' ... ']' after the '['. */
static void rx_class(Rx *r, CpSet *set) {
    bool neg = r->p < r->end && *r->p == '^';
    if (neg)
        r->p++;
    while (rx_ok(r)) {
        if (r->p >= r->end)
            return rx_fail(r, STATUS_INVALID, "a character class without ']'");
        if (*r->p == ']') {
            r->p++;
            break;
        }
        uint32_t lo, hi;
        bool lo_set = false, hi_set = false;
        if (*r->p == '\\') {
            r->p++;
            lo_set = rx_escape(r, true, set, &lo);
        } else {
            lo = rx_utf8(r);
        }
        if (rx_ok(r) && r->end - r->p >= 2 && r->p[0] == '-' && r->p[1] != ']') {
            r->p++;
            if (*r->p == '\\') {
                r->p++;
                hi_set = rx_escape(r, true, set, &hi);
            } else {
                hi = rx_utf8(r);
            }
            if (!rx_ok(r))
                return;
            if (lo_set || hi_set)
                return rx_fail(r, STATUS_INVALID, "a class escape in a range");
            if (lo > hi)
                return rx_fail(r, STATUS_INVALID, "a range out of order");
            set_add(r, set, lo, hi);
        } else if (!lo_set && rx_ok(r)) {
            set_add(r, set, lo, lo);
        }
    }
    if (neg)
        set_negate(set);
    else
        set_norm(set);
}

/* One atom (a GBNF symbol, or nothing when it matches "" only). */
static RxInfo rx_atom(Rx *r, Str *out) {
    RxInfo in = {false, false};
    CpSet set = {.n = 0};
    char ch = *r->p;
    if (ch == '(') {
        if (r->depth >= JSONSCHEMA_MAX_DEPTH) {
            rx_fail(r, STATUS_LIMIT, "groups nested over %d deep (JSONSCHEMA_MAX_DEPTH)",
                    JSONSCHEMA_MAX_DEPTH);
            return in;
        }
        r->p++;
        if (r->p < r->end && *r->p == '?') {
            const char *q = r->p + 1;
            size_t left = (size_t)(r->end - q);
            if (left >= 1 && *q == ':')
                r->p += 2;
            else if (left >= 1 && (*q == '=' || *q == '!'))
                rx_fail(r, STATUS_UNSUPPORTED, "lookahead '(?%c' is not supported", *q);
            else if (left >= 2 && q[0] == '<' && (q[1] == '=' || q[1] == '!'))
                rx_fail(r, STATUS_UNSUPPORTED, "lookbehind '(?<%c' is not supported", q[1]);
            else if (left >= 1 && *q == '<')
                rx_fail(r, STATUS_UNSUPPORTED, "named group '(?<' is not supported");
            else
                rx_fail(r, STATUS_UNSUPPORTED, "flags or modifiers '(?' are not supported");
            if (!rx_ok(r))
                return in;
        }
        r->depth++;
        Str g = {0};
        in = rx_alt(r, &g, false);
        r->depth--;
        if (rx_ok(r) && (r->p >= r->end || *r->p != ')'))
            rx_fail(r, STATUS_INVALID, "a group without ')'");
        if (rx_ok(r)) {
            r->p++;
            if (!in.empty) {
                puts_(r->c, out, "( ");
                put(r->c, out, g.p, g.n);
                puts_(r->c, out, " )");
            }
        }
        str_free(&g);
        return in;
    }
    if (ch == '[') {
        r->p++;
        rx_class(r, &set);
    } else if (ch == '.') {
        r->p++;
        static const Range DOT[] = {{0, 9}, {0xB, 0xC}, {0xE, 0x2027}, {0x202A, RX_MAX_CP}};
        for (int i = 0; i < 4; i++)
            set.r[set.n++] = DOT[i];
    } else if (ch == '\\') {
        r->p++;
        uint32_t cp;
        if (!rx_escape(r, false, &set, &cp) && rx_ok(r))
            set_add(r, &set, cp, cp);
    } else if (ch == '*' || ch == '+' || ch == '?' || ch == '{') {
        rx_fail(r, STATUS_INVALID, "'%c' with nothing to repeat", ch);
    } else if (ch == ']' || ch == '}') {
        rx_fail(r, STATUS_INVALID, "a lone '%c' (escape it)", ch);
    } else {
        uint32_t cp = rx_utf8(r);
        set_add(r, &set, cp, cp);
    }
    if (rx_ok(r))
        rx_put_set(r, out, &set);
    return in;
}

/* Digits at r->p, clamped past GRAMMAR_MAX_REPEAT; -1 when none. */
static long rx_int(Rx *r) {
    long v = -1;
    while (r->p < r->end && *r->p >= '0' && *r->p <= '9') {
        v = (v < 0 ? 0 : v) * 10 + (*r->p++ - '0');
        if (v > GRAMMAR_MAX_REPEAT)
            v = GRAMMAR_MAX_REPEAT + 1;
    }
    return v;
}

/* A quantifier at r->p, if any: *lo, *hi (-1: unbounded). */
static bool rx_quantifier(Rx *r, long *lo, long *hi) {
    if (r->p >= r->end)
        return false;
    char ch = *r->p;
    if (ch == '*' || ch == '+' || ch == '?') {
        r->p++;
        *lo = ch == '+';
        *hi = ch == '?' ? 1 : -1;
    } else if (ch == '{') {
        const char *at = r->p;
        r->p++;
        *lo = rx_int(r);
        *hi = *lo;
        if (r->p < r->end && *r->p == ',') {
            r->p++;
            *hi = rx_int(r);
        }
        if (*lo < 0 || r->p >= r->end || *r->p != '}') {
            r->p = at;
            rx_fail(r, STATUS_INVALID, "a '{' that is not a quantifier {m}, {m,} or {m,n}");
            return false;
        }
        r->p++;
        if (*hi >= 0 && *hi < *lo) {
            rx_fail(r, STATUS_INVALID, "a quantifier {%ld,%ld} out of order", *lo, *hi);
            return false;
        }
        if (*lo > GRAMMAR_MAX_REPEAT) {
            rx_fail(r, STATUS_LIMIT, "a quantifier {m,...} with m over %d (GRAMMAR_MAX_REPEAT)",
                    GRAMMAR_MAX_REPEAT);
            return false;
        }
        if (*hi > GRAMMAR_MAX_REPEAT)
            *hi = GRAMMAR_MAX_REPEAT; /* admits a subset: never a longer match */
    } else {
        return false;
    }
    if (r->p < r->end && *r->p == '?')
        r->p++; /* lazy: the same language */
    if (r->p < r->end && (*r->p == '*' || *r->p == '+' || *r->p == '?' || *r->p == '{'))
        rx_fail(r, STATUS_INVALID, "'%c' with nothing to repeat", *r->p);
    return true;
}

/* Terms up to '|', ')' or the end. At the top, a leading '^' and a
 * trailing '$' anchor (*anchored: bit 1 start, bit 2 end). */
static RxInfo rx_seq(Rx *r, Str *out, bool top, int *anchored) {
    RxInfo in = {true, true};
    if (top && r->p < r->end && *r->p == '^') {
        r->p++;
        *anchored |= 1;
    }
    size_t n0 = out->n;
    while (rx_ok(r) && r->p < r->end && *r->p != '|' && *r->p != ')') {
        if (*r->p == '^') {
            rx_fail(r, STATUS_UNSUPPORTED,
                    "anchor '^' in the middle is not supported (only at the start)");
            break;
        }
        if (*r->p == '$') {
            if (top && (r->p + 1 == r->end || r->p[1] == '|')) {
                r->p++;
                *anchored |= 2;
                break;
            }
            rx_fail(r, STATUS_UNSUPPORTED,
                    "anchor '$' in the middle is not supported (only at the end)");
            break;
        }
        Str a = {0};
        RxInfo ai = rx_atom(r, &a);
        long lo = 1, hi = 1;
        if (rx_ok(r) && rx_quantifier(r, &lo, &hi) && !ai.empty && hi != 0) {
            if (ai.nullable && hi < 0)
                rx_fail(r, STATUS_UNSUPPORTED,
                        "a '*', '+' or '{m,}' on a part that can match the empty string is "
                        "not supported");
            if (ai.nullable)
                lo = hi; /* x{m,n} is x{n} when x can be empty */
        }
        if (rx_ok(r) && !ai.empty && hi != 0) {
            puts_(r->c, out, out->n > n0 ? " " : "");
            if (lo == 1 && hi == 1) {
                put(r->c, out, a.p, a.n);
            } else {
                bool group = !(lo <= 1 && (hi == 1 || hi < 0)) && a.p[0] != '(';
                puts_(r->c, out, group ? "( " : "");
                put(r->c, out, a.p, a.n);
                puts_(r->c, out, group ? " )" : "");
                if (lo == 0 && hi == 1)
                    puts_(r->c, out, "?");
                else if (lo == 0 && hi < 0)
                    puts_(r->c, out, "*");
                else if (lo == 1 && hi < 0)
                    puts_(r->c, out, "+");
                else if (hi < 0)
                    putf(r->c, out, "{%ld,}", lo);
                else if (lo == hi)
                    putf(r->c, out, "{%ld}", lo);
                else
                    putf(r->c, out, "{%ld,%ld}", lo, hi);
            }
            in.empty = false;
            in.nullable = in.nullable && (ai.nullable || lo == 0);
        }
        str_free(&a);
    }
    return in;
}

/* Alternatives; at the top each branch is wrapped in json-char* where it
 * is not anchored. */
static RxInfo rx_alt(Rx *r, Str *out, bool top) {
    RxInfo in = {false, true};
    int n_nullable = 0;
    for (bool first = true; rx_ok(r); first = false) {
        if (!first)
            puts_(r->c, out, " | ");
        int anchored = 0;
        Str b = {0};
        RxInfo bi = rx_seq(r, &b, top, &anchored);
        if (top) {
            bool open0 = !(anchored & 1), open1 = !(anchored & 2);
            if (open0)
                prim(r->c, out, P_CHAR, "json-char*");
            if (b.n)
                putf(r->c, out, "%s", open0 ? " " : "");
            put(r->c, out, b.p, b.n);
            if (open1)
                prim(r->c, out, P_CHAR, b.n || open0 ? " json-char*" : "json-char*");
            if (!open0 && !open1 && !b.n)
                puts_(r->c, out, "\"\"");
        } else {
            put(r->c, out, b.p, b.n);
            if (!b.n)
                puts_(r->c, out, "\"\"");
        }
        str_free(&b);
        in.nullable = in.nullable || bi.nullable;
        in.empty = in.empty && bi.empty;
        n_nullable += bi.nullable;
        if (!top && n_nullable > 1 && rx_ok(r))
            rx_fail(r, STATUS_UNSUPPORTED,
                    "a group with two alternatives that can match the empty string is not "
                    "supported");
        if (r->p >= r->end || *r->p != '|')
            break;
        r->p++;
    }
    if (top && rx_ok(r) && r->p < r->end)
        rx_fail(r, STATUS_INVALID, "an unmatched ')'");
    return in;
}

/* 'pattern' (a string schema's, borrowed): a rule for the whole string
 * literal, its name appended to e. */
static void compile_pattern(Compiler *c, const json_t *pat, Str *e) {
    size_t old = path_push(c, "pattern");
    size_t n = json_string_length(pat);
    if (!json_is_string(pat)) {
        fail(c, STATUS_INVALID, "'pattern' must be a string at %s", c->path);
    } else if (n > JSONSCHEMA_MAX_PATTERN) {
        fail(c, STATUS_LIMIT, "pattern at %s: %zu bytes (limit %d, JSONSCHEMA_MAX_PATTERN)",
             c->path, n, JSONSCHEMA_MAX_PATTERN);
    } else {
        Rx r = {.c = c, .s = json_string_value(pat)};
        r.p = r.s;
        r.end = r.s + n;
        Str body = {0};
        puts_(c, &body, "\"\\\"\" ( ");
        rx_alt(&r, &body, true);
        puts_(c, &body, " ) \"\\\"\"");
        char name[JSONSCHEMA_MAX_RULE_NAME];
        new_name(c, name);
        if (!c->st) {
            emit_rule(c, name, &body);
            puts_(c, e, name);
        }
        str_free(&body);
    }
    path_pop(c, old);
}

/* ---- strings ---- */

/* ajv-formats' formats of numbers (int32, int64: integers; float, double:
 * any number); other formats are of strings. */
static bool number_format(const char *f) {
    return !strcmp(f, "int32") || !strcmp(f, "int64") || !strcmp(f, "float") ||
           !strcmp(f, "double");
}

static void compile_string(Compiler *c, const json_t *s, Str *e) {
    const json_t *f = json_object_get(s, "format");
    long long lo = count_kw(c, s, "minLength"), hi = count_kw(c, s, "maxLength");
    if (c->st)
        return;
    if (f && json_is_string(f) && number_format(json_string_value(f)))
        f = NULL; /* a number format: ajv-formats applies it to numbers only */
    const json_t *pat = json_object_get(s, "pattern");
    if (pat) {
        if (f || lo >= 0 || hi >= 0) {
            size_t old = path_push(c, "pattern");
            fail(c, STATUS_UNSUPPORTED, "pattern with %s is unsupported at %s",
                 f ? "format" : "minLength/maxLength", c->path);
            path_pop(c, old);
            return;
        }
        compile_pattern(c, pat, e);
        return;
    }
    if (f) {
        static const struct {
            const char *name, *rule;
            unsigned bit;
        } FORMATS[] = {
            {"date", "json-date", P_DATE},
            {"time", "json-time", P_TIME},
            {"date-time", "json-date-time", P_DATETIME},
            {"uuid", "json-uuid", P_UUID},
            {"email", "json-email", P_EMAIL},
            {"ipv4", "json-ipv4", P_IPV4},
        };
        size_t old = path_push(c, "format");
        if (!json_is_string(f)) {
            fail(c, STATUS_INVALID, "'format' must be a string at %s", c->path);
        } else if (lo >= 0 || hi >= 0) {
            fail(c, STATUS_UNSUPPORTED, "format with minLength/maxLength is unsupported at %s",
                 c->path);
        } else {
            size_t i = 0, n = sizeof FORMATS / sizeof *FORMATS;
            while (i < n && strcmp(FORMATS[i].name, json_string_value(f)))
                i++;
            if (i == n) {
                fail(c, STATUS_UNSUPPORTED,
                     "unsupported format '%.60s' at %s (date, time, date-time, uuid, email, ipv4)",
                     json_string_value(f), c->path);
            } else {
                puts_(c, e, "( \"\\\"\" ");
                prim(c, e, FORMATS[i].bit, FORMATS[i].rule);
                puts_(c, e, " \"\\\"\" )");
            }
        }
        path_pop(c, old);
        return;
    }
    if (lo < 0 && hi < 0) {
        prim(c, e, P_STRING, "json-string");
        return;
    }
    if (lo < 0)
        lo = 0;
    if (hi >= 0 && hi < lo) {
        fail(c, STATUS_INVALID, "minLength %lld > maxLength %lld at %s", lo, hi, where(c));
        return;
    }
    if (lo > GRAMMAR_MAX_REPEAT) {
        fail(c, STATUS_LIMIT, "minLength %lld exceeds %d (GRAMMAR_MAX_REPEAT) at %s", lo,
             GRAMMAR_MAX_REPEAT, where(c));
        return;
    }
    if (hi > GRAMMAR_MAX_REPEAT)
        hi = GRAMMAR_MAX_REPEAT; /* admits a subset: never a longer string */
    c->used |= P_CHAR;
    if (hi < 0)
        putf(c, e, "( \"\\\"\" json-char{%lld,} \"\\\"\" )", lo);
    else if (hi == 0)
        puts_(c, e, "\"\\\"\\\"\"");
    else
        putf(c, e, "( \"\\\"\" json-char{%lld,%lld} \"\\\"\" )", lo, hi);
}

/* ---- numbers ---- */

#define MAXV 999999999999999LL /* the largest integer of JSONSCHEMA_INT_DIGITS digits */

enum { F_NONE, F_ANY, F_ZERO, F_NZ }; /* what may follow an integer part */

/* Digit strings from A to B (both L digits, A <= B). */
static void digits_between(Compiler *c, Str *o, const char *A, const char *B, int L) {
    int i = 0;
    while (i < L && A[i] == B[i])
        i++;
    if (i > 0) {
        put_literal(c, o, A, (size_t)i);
        if (i < L)
            puts_(c, o, " ");
    }
    if (i == L)
        return;
    int r = L - i - 1;
    bool lo_min = true, hi_max = true;
    for (int k = i + 1; k < L; k++) {
        lo_min = lo_min && A[k] == '0';
        hi_max = hi_max && B[k] == '9';
    }
    char nines[32], zeros[32];
    memset(nines, '9', (size_t)r);
    memset(zeros, '0', (size_t)r);
    char a = A[i], b = B[i];
    bool first = true;
    puts_(c, o, "( ");
    if (!lo_min) {
        putf(c, o, "\"%c\" ", a);
        digits_between(c, o, A + i + 1, nines, r);
        first = false;
        a++;
    }
    char top = hi_max ? b : (char)(b - 1);
    if (a <= top) {
        putf(c, o, "%s[%c-%c]", first ? "" : " | ", a, top);
        if (r > 0)
            putf(c, o, " [0-9]{%d}", r);
        first = false;
    }
    if (!hi_max) {
        putf(c, o, "%s\"%c\" ", first ? "" : " | ", b);
        digits_between(c, o, zeros, B + i + 1, r);
    }
    puts_(c, o, " )");
}

/* A fraction of at most k digits, not all zero. */
static void frac_nz(Compiler *c, Str *o, int k) {
    if (k == 1) {
        puts_(c, o, "[1-9]");
        return;
    }
    putf(c, o, "( [1-9] [0-9]{0,%d} | \"0\" ", k - 1);
    frac_nz(c, o, k - 1);
    puts_(c, o, " )");
}

/* Alternatives (each starting with " | " unless *first) for the integer
 * parts lo..hi (0 <= lo <= hi <= MAXV), each followed by a fraction of
 * kind 'frac' with at most JSONSCHEMA_INT_DIGITS digits in all. */
static void nat_range(Compiler *c, Str *o, long long lo, long long hi, int frac, bool *first) {
    char A[32], B[32];
    long long p = 1;
    for (int L = 1; L <= JSONSCHEMA_INT_DIGITS && !c->st; L++, p *= 10) {
        long long a = lo > (L == 1 ? 0 : p) ? lo : (L == 1 ? 0 : p);
        long long b = hi < p * 10 - 1 ? hi : p * 10 - 1;
        if (a > b)
            continue;
        int k = JSONSCHEMA_INT_DIGITS - L; /* fraction digits left */
        if (frac == F_NZ && k == 0)
            continue;
        snprintf(A, sizeof A, "%lld", a);
        snprintf(B, sizeof B, "%lld", b);
        puts_(c, o, *first ? "" : " | ");
        *first = false;
        digits_between(c, o, A, B, L);
        if (frac == F_ANY && k > 0)
            putf(c, o, " ( \".\" [0-9]{1,%d} )?", k);
        else if (frac == F_ZERO && k > 0)
            putf(c, o, " ( \".\" \"0\"{1,%d} )?", k);
        else if (frac == F_NZ) {
            puts_(c, o, " \".\" ");
            frac_nz(c, o, k);
        }
    }
}

typedef struct {
    bool have;
    bool excl;
    long long v;
} Bound;

/* Alternatives for unsigned numbers y with lower/upper bounds (lo.v >= 0
 * when lo.have; integer parts kept <= MAXV). */
static void pos_number(Compiler *c, Str *o, Bound lo, Bound hi, bool *first) {
    if (!lo.have)
        lo = (Bound){true, false, 0};
    long long imin = lo.excl ? lo.v + 1 : lo.v;
    long long imax = hi.have ? hi.v - 1 : MAXV;
    if (imax > MAXV)
        imax = MAXV;
    if (imin <= imax)
        nat_range(c, o, imin, imax, F_ANY, first);
    if (lo.excl && lo.v <= MAXV && (!hi.have || lo.v < hi.v))
        nat_range(c, o, lo.v, lo.v, F_NZ, first);
    if (hi.have && !hi.excl && hi.v <= MAXV && (lo.excl ? hi.v > lo.v : hi.v >= lo.v))
        nat_range(c, o, hi.v, hi.v, F_ZERO, first);
}

/* A bound keyword as an integer: for integers ceil (lower) / floor (upper)
 * of the value, shifted by one when exclusive; for numbers the value must
 * be integral. Clamped to +-(MAXV + 1). Returns false when absent. */
static bool get_bound(Compiler *c, const json_t *s, const char *k, bool lower, bool integer,
                      Bound *b) {
    const json_t *v = json_object_get(s, k);
    if (!v || c->st)
        return false;
    size_t old = path_push(c, k);
    double d = json_is_integer(v) ? (double)json_integer_value(v) : json_real_value(v);
    bool excl = k[0] == 'e';
    if (!json_is_number(v)) {
        fail(c, STATUS_INVALID, "'%s' must be a number at %s", k, c->path);
    } else if (!integer && d != floor(d)) {
        fail(c, STATUS_UNSUPPORTED, "a non-integer bound (%g) for a number is unsupported at %s", d,
             c->path);
    }
    path_pop(c, old);
    if (c->st)
        return false;
    double lim = (double)MAXV + 1;
    if (integer) {
        d = lower ? (excl ? floor(d) + 1 : ceil(d)) : (excl ? ceil(d) - 1 : floor(d));
        excl = false;
    }
    d = d > lim ? lim : d < -lim ? -lim : d;
    *b = (Bound){true, excl, (long long)d};
    return true;
}

/* The tighter of two bounds on one side. */
static Bound tighter(Bound a, Bound b, bool lower) {
    if (!a.have)
        return b;
    if (!b.have)
        return a;
    if (a.v != b.v)
        return (lower ? a.v > b.v : a.v < b.v) ? a : b;
    return a.excl ? a : b;
}

static void compile_number(Compiler *c, const json_t *s, bool integer, Str *e) {
    Bound lo = {0}, hi = {0}, b;
    const json_t *f = json_object_get(s, "format");
    const char *fmt = json_is_string(f) ? json_string_value(f) : "";
    if (!strcmp(fmt, "int32") || !strcmp(fmt, "int64")) {
        integer = true; /* ajv-formats: Number.isInteger, and int32's range */
        if (!strcmp(fmt, "int32")) {
            lo = (Bound){true, false, -2147483648LL};
            hi = (Bound){true, false, 2147483647LL};
        }
    }
    if (get_bound(c, s, "minimum", true, integer, &b))
        lo = tighter(lo, b, true);
    if (get_bound(c, s, "exclusiveMinimum", true, integer, &b))
        lo = tighter(lo, b, true);
    if (get_bound(c, s, "maximum", false, integer, &b))
        hi = tighter(hi, b, false);
    if (get_bound(c, s, "exclusiveMaximum", false, integer, &b))
        hi = tighter(hi, b, false);
    if (c->st)
        return;
    if (!lo.have && !hi.have) {
        if (integer)
            prim(c, e, P_INT, "json-int");
        else
            prim(c, e, P_NUMBER, "json-number");
        return;
    }
    Str o = {0};
    bool first = true;
    if (integer) {
        long long l = lo.have ? lo.v : -MAXV, h = hi.have ? hi.v : MAXV;
        l = l < -MAXV ? -MAXV : l;
        h = h > MAXV ? MAXV : h;
        if (l <= h && h >= 0)
            nat_range(c, &o, l > 0 ? l : 0, h, F_NONE, &first);
        if (l <= h && l < 0) {
            puts_(c, &o, first ? "\"-\" ( " : " | \"-\" ( ");
            bool f2 = true;
            nat_range(c, &o, h < -1 ? -h : 1, -l, F_NONE, &f2);
            puts_(c, &o, " )");
            first = false;
        }
    } else {
        /* x >= 0: y = x */
        Bound plo = lo.have && lo.v >= 0 ? lo : (Bound){0};
        if (!hi.have || hi.v > 0 || (hi.v == 0 && !hi.excl))
            pos_number(c, &o, plo, hi, &first);
        /* x < 0: y = -x > 0, x >= lo <=> y <= -lo, x <= hi <=> y >= -hi */
        Bound nlo = {true, true, 0}, nhi = {0};
        if (hi.have && (hi.v < 0 || (hi.v == 0 && !hi.excl)))
            nlo = hi.v < 0 ? (Bound){true, hi.excl, -hi.v} : nlo;
        if (lo.have)
            nhi = (Bound){true, lo.excl, -lo.v};
        if (!nhi.have || nhi.v > 0) {
            Str n = {0};
            bool f2 = true;
            pos_number(c, &n, nlo, nhi, &f2);
            if (!f2) {
                puts_(c, &o, first ? "\"-\" ( " : " | \"-\" ( ");
                put(c, &o, n.p, n.n);
                puts_(c, &o, " )");
                first = false;
            }
            str_free(&n);
        }
    }
    if (first && !c->st)
        fail(c, STATUS_INVALID, "no %s satisfies the bounds at %s (at most %d digits)",
             integer ? "integer" : "number", where(c), JSONSCHEMA_INT_DIGITS);
    puts_(c, e, "( ");
    put(c, e, o.p, o.n);
    puts_(c, e, " )");
    str_free(&o);
}

/* ---- objects ---- */

/* A trie of the declared keys (as code points), for the rule of keys that
 * are not among them. */
typedef struct {
    uint32_t cp;
    int child, next; /* first child, next sibling; -1: none */
    bool terminal;
} Trie;

static int utf8_next(const unsigned char *p, uint32_t *cp) {
    if (p[0] < 0x80) {
        *cp = p[0];
        return 1;
    }
    int n = p[0] >= 0xF0 ? 4 : p[0] >= 0xE0 ? 3 : 2;
    uint32_t v = p[0] & (0x3F >> (n - 1));
    for (int i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return -1;
        v = (v << 6) | (p[i] & 0x3F);
    }
    *cp = v;
    return n;
}

static void put_class_cp(Compiler *c, Str *o, uint32_t cp) {
    if ((cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || (cp >= '0' && cp <= '9'))
        putf(c, o, "%c", (char)cp);
    else if (cp < 0x100)
        putf(c, o, "\\x%02X", (unsigned)cp);
    else if (cp < 0x10000)
        putf(c, o, "\\u%04X", (unsigned)cp);
    else
        putf(c, o, "\\U%08X", (unsigned)cp);
}

/* Rules "<base>-<i>" for the trie's nodes; the key rule is base itself. */
static void emit_key_rule(Compiler *c, const char *base, const char *const *keys, int n_keys) {
    int cap = 1;
    for (int i = 0; i < n_keys; i++)
        cap += (int)strlen(keys[i]);
    Trie *t = malloc((size_t)cap * sizeof *t);
    if (!t) {
        fail(c, STATUS_NOMEM, "out of memory");
        return;
    }
    int n = 1;
    t[0] = (Trie){0, -1, -1, false};
    for (int i = 0; i < n_keys; i++) {
        const unsigned char *p = (const unsigned char *)keys[i];
        bool plain = true;
        for (const unsigned char *q = p; *q; q++)
            plain = plain && *q >= 0x20 && *q != '"' && *q != '\\';
        if (!plain)
            continue; /* never equal to a key without escapes */
        int node = 0;
        while (*p) {
            uint32_t cp;
            int k = utf8_next(p, &cp);
            if (k < 0)
                break;
            p += k;
            int ch = t[node].child;
            while (ch >= 0 && t[ch].cp != cp)
                ch = t[ch].next;
            if (ch < 0) {
                ch = n++;
                t[ch] = (Trie){cp, -1, t[node].child, false};
                t[node].child = ch;
            }
            node = ch;
        }
        t[node].terminal = true;
    }
    c->used |= P_KCHAR;
    Str body = {0};
    char name[JSONSCHEMA_MAX_RULE_NAME + 96];
    putf(c, &body, "\"\\\"\" %s-0 \"\\\"\"", base);
    emit_rule(c, base, &body);
    for (int i = 0; i < n && !c->st; i++) {
        body.n = 0;
        puts_(c, &body, "[^\"\\\\\\x00-\\x1F");
        for (int ch = t[i].child; ch >= 0; ch = t[ch].next)
            put_class_cp(c, &body, t[ch].cp);
        puts_(c, &body, "] json-kchar*");
        for (int ch = t[i].child; ch >= 0; ch = t[ch].next) {
            puts_(c, &body, " | [");
            put_class_cp(c, &body, t[ch].cp);
            putf(c, &body, "] %s-%d", base, ch);
        }
        if (!t[i].terminal)
            puts_(c, &body, " | \"\"");
        snprintf(name, sizeof name, "%s-%d", base, i);
        emit_rule(c, name, &body);
    }
    str_free(&body);
    free(t);
}

static void compile_object(Compiler *c, const json_t *s, Str *e) {
    const json_t *props = json_object_get(s, "properties");
    const json_t *req = json_object_get(s, "required");
    const json_t *addl = json_object_get(s, "additionalProperties");
    if (props && !json_is_object(props))
        return (void)fail(c, STATUS_INVALID, "'properties' must be an object at %s", where(c));
    if (req && !json_is_array(req))
        return (void)fail(c, STATUS_INVALID, "'required' must be an array at %s", where(c));
    if (addl && !json_is_object(addl) && !json_is_boolean(addl))
        return (void)fail(c, STATUS_INVALID,
                          "'additionalProperties' must be a schema or a boolean at %s", where(c));
    size_t n = props ? json_object_size(props) : 0;
    if (n > JSONSCHEMA_MAX_PROPERTIES)
        return (void)fail(c, STATUS_LIMIT,
                          "%zu properties (limit %d, JSONSCHEMA_MAX_PROPERTIES) "
                          "at %s",
                          n, JSONSCHEMA_MAX_PROPERTIES, where(c));
    /* on the heap: this frame recurses JSONSCHEMA_MAX_DEPTH deep */
    const char **keys = calloc(n + 1, sizeof *keys);
    bool *opt = calloc(n + 1, sizeof *opt);
    Str *vals = calloc(n + 1, sizeof *vals);
    if (!keys || !opt || !vals) {
        free(keys);
        free(opt);
        free(vals);
        return (void)fail(c, STATUS_NOMEM, "out of memory");
    }
    size_t i = 0;
    const char *k;
    const json_t *v;
    if (props)
        json_object_foreach((json_t *)props, k, v) {
            keys[i] = k;
            opt[i] = true;
            vals[i] = (Str){0};
            i++;
        }
    for (size_t r = 0; req && r < json_array_size(req) && !c->st; r++) {
        const json_t *name = json_array_get(req, r);
        size_t j = 0;
        while (json_is_string(name) && j < n && strcmp(keys[j], json_string_value(name)))
            j++;
        size_t old = path_push_index(c, "required", r);
        if (!json_is_string(name))
            fail(c, STATUS_INVALID, "'required' entries must be strings at %s", c->path);
        else if (j == n)
            fail(c, STATUS_UNSUPPORTED, "required property '%.100s' is not in 'properties' at %s",
                 json_string_value(name), c->path);
        else
            opt[j] = false;
        path_pop(c, old);
    }
    size_t po = path_push(c, "properties");
    for (i = 0; i < n && !c->st; i++) {
        size_t old = path_push(c, keys[i]);
        compile_node(c, json_object_get(props, keys[i]), &vals[i]);
        path_pop(c, old);
    }
    path_pop(c, po);
    bool extras = !json_is_false(addl);
    Str xval = {0}, body = {0};
    if (extras && json_is_object(addl)) {
        size_t old = path_push(c, "additionalProperties");
        compile_node(c, addl, &xval);
        path_pop(c, old);
    } else if (extras) {
        prim(c, &xval, P_VALUE, "json-value");
    }
    char base[JSONSCHEMA_MAX_RULE_NAME], name[JSONSCHEMA_MAX_RULE_NAME + 48];
    new_name(c, base);
    c->used |= P_WS;
    /* c_j: the members from declared property j on, property j or a later
     * one first; c_n: the extra members. */
    bool req_after = false; /* a required property after j */
    for (size_t j = n; j-- > 0 && !c->st;) {
        body.n = 0;
        put_json_string(c, &body, keys[j], strlen(keys[j]));
        Str lit = body;
        body = (Str){0};
        put_literal(c, &body, lit.p, lit.n);
        str_free(&lit);
        puts_(c, &body, " json-ws \":\" json-ws ");
        put(c, &body, vals[j].p, vals[j].n);
        bool next = j + 1 < n || extras;
        if (next)
            putf(c, &body, " ( json-ws \",\" json-ws %s-c%zu )%s", base, j + 1,
                 req_after ? "" : "?");
        if (opt[j] && next)
            putf(c, &body, " | %s-c%zu", base, j + 1);
        snprintf(name, sizeof name, "%s-c%zu", base, j);
        emit_rule(c, name, &body);
        req_after = req_after || !opt[j];
    }
    if (extras && !c->st) {
        char key[JSONSCHEMA_MAX_RULE_NAME + 48];
        snprintf(key, sizeof key, "%s-k", base);
        emit_key_rule(c, key, keys, (int)n);
        body.n = 0;
        putf(c, &body, "%s json-ws \":\" json-ws ", key);
        put(c, &body, xval.p, xval.n);
        snprintf(name, sizeof name, "%s-x", base);
        emit_rule(c, name, &body);
        body.n = 0;
        putf(c, &body, "%s ( json-ws \",\" json-ws %s )*", name, name);
        snprintf(name, sizeof name, "%s-c%zu", base, n);
        emit_rule(c, name, &body);
    }
    body.n = 0;
    if (n == 0 && !extras)
        puts_(c, &body, "\"{\" json-ws \"}\"");
    else if (req_after)
        putf(c, &body, "\"{\" json-ws %s-c0 json-ws \"}\"", base);
    else
        putf(c, &body, "\"{\" json-ws ( %s-c0 json-ws )? \"}\"", base);
    emit_rule(c, base, &body);
    puts_(c, e, base);
    str_free(&body);
    str_free(&xval);
    for (i = 0; i < n; i++)
        str_free(&vals[i]);
    free(keys);
    free(opt);
    free(vals);
}

/* ---- arrays ---- */

static void compile_array(Compiler *c, const json_t *s, Str *e) {
    const json_t *items = json_object_get(s, "items");
    const json_t *prefix = json_object_get(s, "prefixItems");
    long long lo = count_kw(c, s, "minItems"), hi = count_kw(c, s, "maxItems");
    if (c->st)
        return;
    if (items && !json_is_object(items) && !json_is_boolean(items))
        return (void)fail(c, STATUS_UNSUPPORTED,
                          "'items' must be a schema or a boolean (an array of schemas: use "
                          "prefixItems) at %s",
                          where(c));
    if (prefix && !json_is_array(prefix))
        return (void)fail(c, STATUS_INVALID, "'prefixItems' must be an array at %s", where(c));
    size_t K = prefix ? json_array_size(prefix) : 0;
    if (K > JSONSCHEMA_MAX_PREFIX_ITEMS)
        return (void)fail(c, STATUS_LIMIT, "%zu prefixItems (limit %d) at %s", K,
                          JSONSCHEMA_MAX_PREFIX_ITEMS, where(c));
    if (lo < 0)
        lo = 0;
    bool more = !json_is_false(items);
    if (!more && (hi < 0 || hi > (long long)K))
        hi = (long long)K;
    if (hi >= 0 && (long long)K > hi)
        K = (size_t)hi;
    if (hi >= 0 && lo > hi)
        return (void)fail(c, STATUS_INVALID, "minItems %lld > maxItems %lld%s at %s", lo, hi,
                          more ? "" : " (items: false after the prefixItems)", where(c));
    /* rest: items after the prefix, from rlo to rhi (-1: unbounded) */
    long long rlo = lo > (long long)K ? lo - (long long)K : 0;
    long long rhi = hi < 0 ? -1 : hi - (long long)K;
    if (rlo > GRAMMAR_MAX_REPEAT)
        return (void)fail(c, STATUS_LIMIT, "minItems %lld exceeds %d (GRAMMAR_MAX_REPEAT) at %s",
                          lo, GRAMMAR_MAX_REPEAT, where(c));
    if (rhi > GRAMMAR_MAX_REPEAT)
        rhi = GRAMMAR_MAX_REPEAT; /* admits a subset: never a longer array */
    Str item = {0}, body = {0};
    if (more && rhi != 0) {
        if (json_is_object(items)) {
            size_t old = path_push(c, "items");
            compile_node(c, items, &item);
            path_pop(c, old);
        } else {
            prim(c, &item, P_VALUE, "json-value");
        }
    }
    char base[JSONSCHEMA_MAX_RULE_NAME], name[JSONSCHEMA_MAX_RULE_NAME + 48];
    new_name(c, base);
    c->used |= P_WS;
    if (rhi != 0 && !c->st) { /* base-s: one more item after a comma */
        puts_(c, &body, "json-ws \",\" json-ws ");
        put(c, &body, item.p, item.n);
        snprintf(name, sizeof name, "%s-s", base);
        emit_rule(c, name, &body);
    }
    body.n = 0;
    if (K == 0) {
        if (rhi == 0) {
            puts_(c, &body, "\"[\" json-ws \"]\"");
        } else {
            long long a = rlo > 0 ? rlo - 1 : 0, b = rhi < 0 ? -1 : rhi - 1;
            puts_(c, &body, rlo == 0 ? "\"[\" json-ws ( " : "\"[\" json-ws ");
            put(c, &body, item.p, item.n);
            if (b < 0)
                putf(c, &body, " %s-s{%lld,}", base, a);
            else if (b > 0)
                putf(c, &body, " %s-s{%lld,%lld}", base, a, b);
            puts_(c, &body, rlo == 0 ? " json-ws )? \"]\"" : " json-ws \"]\"");
        }
    } else {
        /* t_i: what follows item i (1-based) */
        for (size_t i = K; i >= 1 && !c->st; i--) {
            Str t = {0};
            if (i < K) {
                size_t old = path_push_index(c, "prefixItems", i);
                Str p = {0};
                compile_node(c, json_array_get(prefix, i), &p);
                path_pop(c, old);
                puts_(c, &t, "( json-ws \",\" json-ws ");
                put(c, &t, p.p, p.n);
                putf(c, &t, " %s-t%zu )%s", base, i + 1, (long long)i >= lo ? "?" : "");
                str_free(&p);
            } else if (rhi != 0) {
                if (rhi < 0)
                    putf(c, &t, "%s-s{%lld,}", base, rlo);
                else
                    putf(c, &t, "%s-s{%lld,%lld}", base, rlo, rhi);
            } else {
                puts_(c, &t, "\"\"");
            }
            snprintf(name, sizeof name, "%s-t%zu", base, i);
            emit_rule(c, name, &t);
            str_free(&t);
        }
        Str p = {0};
        size_t old = path_push_index(c, "prefixItems", 0);
        compile_node(c, json_array_get(prefix, 0), &p);
        path_pop(c, old);
        puts_(c, &body, "\"[\" json-ws ");
        put(c, &body, p.p, p.n);
        putf(c, &body, " %s-t1 json-ws \"]\"%s", base, lo == 0 ? " | \"[\" json-ws \"]\"" : "");
        str_free(&p);
    }
    emit_rule(c, base, &body);
    puts_(c, e, base);
    str_free(&item);
    str_free(&body);
}

/* ---- enum, const, anyOf, types ---- */

enum {
    T_NULL = 1,
    T_BOOL = 2,
    T_OBJECT = 4,
    T_ARRAY = 8,
    T_STRING = 16,
    T_NUMBER = 32,
    T_INT = 64
};
#define T_ALL (T_NULL | T_BOOL | T_OBJECT | T_ARRAY | T_STRING | T_NUMBER | T_INT)

static unsigned type_set(Compiler *c, const json_t *s) {
    static const struct {
        const char *name;
        unsigned bit;
    } TYPES[] = {{"null", T_NULL},   {"boolean", T_BOOL},  {"object", T_OBJECT},
                 {"array", T_ARRAY}, {"string", T_STRING}, {"number", T_NUMBER},
                 {"integer", T_INT}};
    const json_t *t = json_object_get(s, "type");
    if (!t)
        return T_ALL;
    unsigned set = 0;
    size_t n = json_is_array(t) ? json_array_size(t) : 1;
    size_t old = path_push(c, "type");
    if (json_is_array(t) && n == 0)
        fail(c, STATUS_INVALID, "an empty 'type' list at %s", c->path);
    for (size_t i = 0; i < n && !c->st; i++) {
        const json_t *x = json_is_array(t) ? json_array_get(t, i) : t;
        size_t k = 0, nt = sizeof TYPES / sizeof *TYPES;
        while (json_is_string(x) && k < nt && strcmp(TYPES[k].name, json_string_value(x)))
            k++;
        if (!json_is_string(x) || k == nt)
            fail(c, STATUS_INVALID,
                 "unknown type at %s (null, boolean, object, array, string, "
                 "number, integer)",
                 c->path);
        else
            set |= TYPES[k].bit;
    }
    path_pop(c, old);
    return set;
}

static bool value_has_type(const json_t *v, unsigned set) {
    switch (json_typeof(v)) {
    case JSON_NULL: return set & T_NULL;
    case JSON_TRUE:
    case JSON_FALSE: return set & T_BOOL;
    case JSON_OBJECT: return set & T_OBJECT;
    case JSON_ARRAY: return set & T_ARRAY;
    case JSON_STRING: return set & T_STRING;
    case JSON_INTEGER: return set & (T_NUMBER | T_INT);
    case JSON_REAL: {
        double d = json_real_value(v);
        return (set & T_NUMBER) || ((set & T_INT) && d == floor(d));
    }
    }
    return false;
}

static void compile_enum(Compiler *c, const json_t *s, Str *e) {
    static const char *const allowed[] = {"enum", "const", "type"};
    only(c, s, allowed, 3);
    unsigned set = type_set(c, s);
    const json_t *en = json_object_get(s, "enum"), *cn = json_object_get(s, "const");
    if (c->st)
        return;
    if (en && !json_is_array(en))
        return (void)fail(c, STATUS_INVALID, "'enum' must be an array at %s", where(c));
    if (en && json_array_size(en) > JSONSCHEMA_MAX_ENUM)
        return (void)fail(c, STATUS_LIMIT, "%zu enum values (limit %d, JSONSCHEMA_MAX_ENUM) at %s",
                          json_array_size(en), JSONSCHEMA_MAX_ENUM, where(c));
    size_t n = en ? json_array_size(en) : 1;
    Str alts = {0}, text = {0};
    bool first = true;
    for (size_t i = 0; i < n && !c->st; i++) {
        const json_t *v = en ? json_array_get(en, i) : cn;
        if (!value_has_type(v, set))
            continue;
        if (cn && en && !json_equal((json_t *)v, (json_t *)cn))
            continue; /* both: the const, if the enum has it */
        text.n = 0;
        put_json(c, &text, v, 0);
        puts_(c, &alts, first ? "" : " | ");
        put_literal(c, &alts, text.p, text.n);
        first = false;
    }
    if (first && !c->st)
        fail(c, STATUS_INVALID, "no enum/const value matches the type at %s", where(c));
    puts_(c, e, "( ");
    put(c, e, alts.p, alts.n);
    puts_(c, e, " )");
    str_free(&alts);
    str_free(&text);
}

static void compile_anyof(Compiler *c, const json_t *s, const char *kw, Str *e) {
    const char *allowed[] = {kw};
    only(c, s, allowed, 1);
    const json_t *list = json_object_get(s, kw);
    size_t n = json_is_array(list) ? json_array_size(list) : 0;
    if (c->st)
        return;
    if (n == 0)
        return (void)fail(c, STATUS_INVALID, "'%s' must be a non-empty array at %s", kw, where(c));
    if (!strcmp(kw, "allOf") && n > 1)
        return (void)fail(c, STATUS_UNSUPPORTED,
                          "allOf of %zu schemas is unsupported (one only) at %s.allOf", n,
                          where(c));
    puts_(c, e, "( ");
    for (size_t i = 0; i < n && !c->st; i++) {
        size_t old = path_push_index(c, kw, i);
        if (i)
            puts_(c, e, " | ");
        compile_node(c, json_array_get(list, i), e);
        path_pop(c, old);
    }
    puts_(c, e, " )");
}

static void compile_node(Compiler *c, const json_t *s, Str *e) {
    if (c->st)
        return;
    if (json_is_true(s)) {
        prim(c, e, P_VALUE, "json-value");
        return;
    }
    if (json_is_false(s))
        return (void)fail(c, STATUS_UNSUPPORTED, "the schema false (no value) at %s", where(c));
    if (!json_is_object(s))
        return (void)fail(c, STATUS_INVALID, "a schema must be an object or a boolean at %s",
                          where(c));
    if (c->depth >= JSONSCHEMA_MAX_DEPTH)
        return (void)fail(c, STATUS_LIMIT,
                          "schemas nested over %d deep (JSONSCHEMA_MAX_DEPTH) "
                          "at %s",
                          JSONSCHEMA_MAX_DEPTH, where(c));
    if (++c->n_nodes > JSONSCHEMA_MAX_NODES)
        return (void)fail(c, STATUS_LIMIT, "over %d subschemas (JSONSCHEMA_MAX_NODES) at %s",
                          JSONSCHEMA_MAX_NODES, where(c));
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)s, k, v) {
        if (!is_annotation(k) && !in_list(k, KNOWN, sizeof KNOWN / sizeof *KNOWN))
            return unsupported(c, k);
        if (!strcmp(k, "$id") && s != c->root)
            return (void)fail(c, STATUS_UNSUPPORTED, "'$id' below the root is unsupported at %s",
                              where(c));
    }
    c->depth++;
    if (json_object_get(s, "$ref")) {
        compile_ref(c, s, e);
    } else if (json_object_get(s, "anyOf")) {
        compile_anyof(c, s, "anyOf", e);
    } else if (json_object_get(s, "oneOf")) {
        compile_anyof(c, s, "oneOf", e);
    } else if (json_object_get(s, "allOf")) {
        compile_anyof(c, s, "allOf", e);
    } else if (json_object_get(s, "enum") || json_object_get(s, "const")) {
        compile_enum(c, s, e);
    } else {
        unsigned set = type_set(c, s);
        bool any = set == T_ALL;
        json_object_foreach((json_t *)s, k, v) any = any && is_annotation(k);
        if (any) {
            prim(c, e, P_VALUE, "json-value");
        } else {
            if (set & T_NUMBER)
                set &= ~(unsigned)T_INT;
            bool first = true;
            puts_(c, e, "( ");
            for (unsigned bit = 1; bit <= T_INT && !c->st; bit <<= 1) {
                if (!(set & bit))
                    continue;
                puts_(c, e, first ? "" : " | ");
                first = false;
                switch (bit) {
                case T_NULL: puts_(c, e, "\"null\""); break;
                case T_BOOL: puts_(c, e, "\"true\" | \"false\""); break;
                case T_OBJECT: compile_object(c, s, e); break;
                case T_ARRAY: compile_array(c, s, e); break;
                case T_STRING: compile_string(c, s, e); break;
                case T_NUMBER: compile_number(c, s, false, e); break;
                case T_INT: compile_number(c, s, true, e); break;
                }
            }
            puts_(c, e, " )");
        }
    }
    c->depth--;
}

/* ---- the buffer and the API ---- */

void jsonschema_buf_init(JsonSchemaBuf *b) { *b = (JsonSchemaBuf){0}; }

void jsonschema_buf_free(JsonSchemaBuf *b) {
    if (!b)
        return;
    free(b->text);
    free(b->prefixes);
    *b = (JsonSchemaBuf){0};
}

static Status buf_put(JsonSchemaBuf *b, const char *t, size_t n, Err *err) {
    if (n > JSONSCHEMA_MAX_BYTES || b->len + n > JSONSCHEMA_MAX_BYTES)
        return err_set(err, STATUS_LIMIT,
                       "schema: the grammar would exceed %d bytes (JSONSCHEMA_MAX_BYTES)",
                       JSONSCHEMA_MAX_BYTES);
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->text, cap);
        if (!p)
            return err_set(err, STATUS_NOMEM, "schema: out of memory");
        b->text = p;
        b->cap = cap;
    }
    memcpy(b->text + b->len, t, n);
    b->len += n;
    b->text[b->len] = 0;
    return STATUS_OK;
}

Status jsonschema_buf_append(JsonSchemaBuf *b, const char *text, size_t len, Err *err) {
    return buf_put(b, text, len, err);
}

/* Append the shared rules of 'used' not yet in b. */
static Status buf_prims(JsonSchemaBuf *b, unsigned used, Err *err) {
    used = prim_closure(used);
    for (int i = 0; i < N_PRIMS; i++) {
        unsigned bit = 1u << i;
        if ((used & bit) && !(b->prims & bit)) {
            Status st = buf_put(b, PRIMS[i].text, strlen(PRIMS[i].text), err);
            if (st)
                return st;
            b->prims |= bit;
        }
    }
    return STATUS_OK;
}

Status jsonschema_buf_use(JsonSchemaBuf *b, const char *name, Err *err) {
    if (!strcmp(name, JSONSCHEMA_VALUE_RULE) || !strcmp(name, JSONSCHEMA_OBJECT_RULE))
        return buf_prims(b, P_VALUE, err);
    if (!strcmp(name, JSONSCHEMA_WS_RULE))
        return buf_prims(b, P_WS, err);
    return err_set(err, STATUS_INVALID, "schema: no shared rule '%.64s'", name);
}

static Status check_prefix(const JsonSchemaBuf *b, const char *prefix, Err *err) {
    size_t n = strlen(prefix);
    if (n == 0 || n > JSONSCHEMA_MAX_PREFIX)
        return err_set(err, STATUS_INVALID, "schema: rule prefix of %zu bytes (1 to %d)", n,
                       JSONSCHEMA_MAX_PREFIX);
    for (size_t i = 0; i < n; i++) {
        char ch = prefix[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '-'))
            return err_set(err, STATUS_INVALID, "schema: rule prefix '%s': not [A-Za-z0-9-]+",
                           prefix);
    }
    if (!strcmp(prefix, "json") || !strncmp(prefix, "json-", 5))
        return err_set(err, STATUS_INVALID, "schema: rule prefix '%s' is reserved (json-*)",
                       prefix);
    for (size_t at = 0; at < b->n_prefix;) {
        const char *q = b->prefixes + at;
        size_t m = (size_t)((const char *)memchr(q, '\n', b->n_prefix - at) - q);
        size_t k = m < n ? m : n;
        if (!memcmp(q, prefix, k) && (m == n || (m < n ? prefix[m] : q[n]) == '-'))
            return err_set(err, STATUS_INVALID,
                           "schema: rule prefix '%s' clashes with '%.*s' in the same grammar",
                           prefix, (int)m, q);
        at += m + 1;
    }
    return STATUS_OK;
}

Status jsonschema_compile(JsonSchemaBuf *out, const json_t *schema, const char *prefix,
                          char *rule_name, size_t cap, Err *err) {
    Status st = check_prefix(out, prefix, err);
    if (st)
        return st;
    if (cap <= strlen(prefix))
        return err_set(err, STATUS_INVALID, "schema: rule_name buffer of %zu bytes", cap);
    Compiler c = {.root = schema, .prefix = prefix, .err = err};
    c.budget = JSONSCHEMA_MAX_BYTES - out->len;
    c.refs = malloc(16 * sizeof *c.refs);
    if (!c.refs)
        return err_set(err, STATUS_NOMEM, "schema: out of memory");
    c.cap_refs = 16;
    c.refs[0] = (Ref){.node = schema, .done = false};
    snprintf(c.refs[0].name, sizeof c.refs[0].name, "%s", prefix);
    c.n_refs = 1;
    Str body = {0};
    for (int i = 0; i < c.n_refs && !c.st; i++) { /* the root, then each $ref target */
        body.n = 0;
        path_pop(&c, 0);
        if (i > 0)
            path_push(&c, c.refs[i].path);
        compile_node(&c, c.refs[i].node, &body);
        c.refs[i].done = true;
        emit_rule(&c, c.refs[i].name, &body);
    }
    str_free(&body);
    /* Check the rules with the shared ones they use (a $ref cycle that
     * consumes nothing is left recursion). */
    if (!c.st) {
        unsigned used = prim_closure(c.used);
        Str all = {0};
        c.budget = GRAMMAR_MAX_TEXT;
        put(&c, &all, c.rules.p, c.rules.n);
        for (int i = 0; i < N_PRIMS; i++)
            if (used & (1u << i))
                puts_(&c, &all, PRIMS[i].text);
        Grammar *g = NULL;
        if (!c.st && grammar_parse(&g, all.p, all.n, prefix, err) != STATUS_OK)
            c.st = err_prefix(err, "schema: the compiled grammar is refused (a $ref cycle that "
                                   "consumes no input?)");
        grammar_free(g);
        str_free(&all);
    }
    size_t len0 = out->len;
    unsigned prims0 = out->prims;
    if (!c.st) {
        c.st = buf_put(out, c.rules.p, c.rules.n, err);
        if (!c.st)
            c.st = buf_prims(out, c.used, err);
        if (!c.st) {
            size_t n = strlen(prefix);
            char *p = realloc(out->prefixes, out->n_prefix + n + 1);
            if (!p) {
                c.st = err_set(err, STATUS_NOMEM, "schema: out of memory");
            } else {
                out->prefixes = p;
                memcpy(p + out->n_prefix, prefix, n);
                p[out->n_prefix + n] = '\n';
                out->n_prefix += n + 1;
            }
        }
        if (c.st) { /* leave 'out' as it was */
            out->len = len0;
            if (out->text)
                out->text[len0] = 0;
            out->prims = prims0;
        }
    }
    if (!c.st)
        snprintf(rule_name, cap, "%s", prefix);
    str_free(&c.rules);
    free(c.refs);
    return c.st;
}

Status jsonschema_to_gbnf(const json_t *schema, char **gbnf, Err *err) {
    *gbnf = NULL;
    JsonSchemaBuf b;
    jsonschema_buf_init(&b);
    char name[JSONSCHEMA_MAX_RULE_NAME];
    Status st = jsonschema_compile(&b, schema, "root", name, sizeof name, err);
    if (st) {
        jsonschema_buf_free(&b);
        return st;
    }
    *gbnf = b.text;
    free(b.prefixes);
    return STATUS_OK;
}
