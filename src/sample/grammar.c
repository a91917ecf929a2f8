/* grammar.c - GBNF parsing, compilation and the stack matcher (grammar.h).
 *
 * Compiled form (as llama.cpp's): all rules in one element array. A rule is
 * its alternatives, each a sequence ended by E_ALT, the last by E_END. A
 * terminal is a code-point set: E_CHAR lo (or E_CHAR_NOT for a negated
 * class, with no range of its own), each range's upper end an E_RNG_UPPER
 * after its lower end, further ranges E_CHAR_ALT; E_ANY is "."; E_REF
 * names a rule. A position is an index into the array. */
#include "sample/grammar.h"

#include <stdlib.h>
#include <string.h>

#include "core/utf8.h"

typedef enum { E_END, E_ALT, E_REF, E_CHAR, E_CHAR_NOT, E_RNG_UPPER, E_CHAR_ALT, E_ANY } EType;

typedef struct {
    uint8_t type;
    uint32_t value;
} Elem;

typedef struct {
    Elem *e;
    int n, cap;
} ElemVec;

struct Grammar {
    Elem *el;       /* all rules, flattened */
    int32_t *start; /* (n_rules) first element of each rule */
    int n_rules, root;
};

/* ------------------------------------------------------------ parsing */

typedef struct {
    const char *s, *end; /* the text */
    ElemVec *rules;      /* per rule id */
    char **names;        /* per rule id: the name, or NULL for a helper rule */
    bool *defined;
    int n_rules, cap_rules;
    int depth;
    Err *err;
    Status st;
} Parser;

static bool vec_push(Parser *p, ElemVec *v, EType t, uint32_t value) {
    if (p->st)
        return false;
    if (v->n == v->cap) {
        int cap = v->cap ? 2 * v->cap : 16;
        if (cap > GRAMMAR_MAX_ELEMS) {
            p->st = err_set(p->err, STATUS_LIMIT, "grammar: a rule over %d elements",
                            GRAMMAR_MAX_ELEMS);
            return false;
        }
        Elem *e = realloc(v->e, (size_t)cap * sizeof *e);
        if (!e) {
            p->st = err_set(p->err, STATUS_NOMEM, "grammar: out of memory");
            return false;
        }
        v->e = e;
        v->cap = cap;
    }
    v->e[v->n++] = (Elem){(uint8_t)t, value};
    return true;
}

/* Line and column of at, for messages. */
static void where(const Parser *p, const char *at, int *line, int *col) {
    *line = 1;
    *col = 1;
    for (const char *c = p->s; c < at && c < p->end; c++) {
        if (*c == '\n') {
            (*line)++;
            *col = 1;
        } else {
            (*col)++;
        }
    }
}

static void fail(Parser *p, const char *at, const char *what) {
    if (p->st)
        return;
    int line, col;
    where(p, at, &line, &col);
    p->st = err_set(p->err, STATUS_INVALID, "grammar: %s at %d:%d", what, line, col);
}

/* A new rule id (name NULL: a helper), or -1. */
static int new_rule(Parser *p, const char *name, size_t len) {
    if (p->st)
        return -1;
    if (p->n_rules == GRAMMAR_MAX_RULES) {
        p->st = err_set(p->err, STATUS_LIMIT, "grammar: more than %d rules (repetitions included)",
                        GRAMMAR_MAX_RULES);
        return -1;
    }
    if (p->n_rules == p->cap_rules) {
        int cap = p->cap_rules ? 2 * p->cap_rules : 32;
        ElemVec *r = realloc(p->rules, (size_t)cap * sizeof *r);
        if (r)
            p->rules = r;
        char **nm = realloc(p->names, (size_t)cap * sizeof *nm);
        if (nm)
            p->names = nm;
        bool *d = realloc(p->defined, (size_t)cap * sizeof *d);
        if (d)
            p->defined = d;
        if (!r || !nm || !d) {
            p->st = err_set(p->err, STATUS_NOMEM, "grammar: out of memory");
            return -1;
        }
        p->cap_rules = cap;
    }
    int id = p->n_rules++;
    p->rules[id] = (ElemVec){0};
    p->defined[id] = name == NULL;
    p->names[id] = NULL;
    if (name) {
        p->names[id] = malloc(len + 1);
        if (!p->names[id]) {
            p->st = err_set(p->err, STATUS_NOMEM, "grammar: out of memory");
            return -1;
        }
        memcpy(p->names[id], name, len);
        p->names[id][len] = 0;
    }
    return id;
}

static int rule_id(Parser *p, const char *name, size_t len) {
    for (int i = 0; i < p->n_rules; i++)
        if (p->names[i] && strlen(p->names[i]) == len && !memcmp(p->names[i], name, len))
            return i;
    return new_rule(p, name, len);
}

static bool is_word(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

/* Spaces, tabs and comments; newlines too when newline_ok. */
static const char *space(const Parser *p, const char *s, bool newline_ok) {
    while (s < p->end) {
        if (*s == ' ' || *s == '\t' || *s == '\r' || (newline_ok && *s == '\n')) {
            s++;
        } else if (*s == '#') {
            while (s < p->end && *s != '\n')
                s++;
        } else {
            break;
        }
    }
    return s;
}

static int hexval(char c) {
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* One code point of a literal or class at *s (escapes decoded); advances
 * *s. Sets p->st on a bad escape or invalid UTF-8. */
static uint32_t parse_char(Parser *p, const char **s) {
    const char *c = *s;
    if (c >= p->end) {
        fail(p, c, "unexpected end");
        return 0;
    }
    if (*c == '\\') {
        if (c + 1 >= p->end) {
            fail(p, c, "unfinished escape");
            return 0;
        }
        char e = c[1];
        int digits = e == 'x' ? 2 : e == 'u' ? 4 : e == 'U' ? 8 : 0;
        if (digits) {
            uint32_t v = 0;
            for (int i = 0; i < digits; i++) {
                int h = c + 2 + i < p->end ? hexval(c[2 + i]) : -1;
                if (h < 0) {
                    fail(p, c, "bad hex escape");
                    return 0;
                }
                v = v * 16 + (uint32_t)h;
            }
            if (v > 0x10FFFF) {
                fail(p, c, "code point past U+10FFFF");
                return 0;
            }
            *s = c + 2 + digits;
            return v;
        }
        static const char from[] = "nrt\\\"[]-^/'", to[] = "\n\r\t\\\"[]-^/'";
        const char *k = memchr(from, e, sizeof from - 1);
        if (!k) {
            fail(p, c, "unknown escape");
            return 0;
        }
        *s = c + 2;
        return (uint32_t)(unsigned char)to[k - from];
    }
    int n = utf8_seq((const unsigned char *)c, (size_t)(p->end - c));
    if (n <= 0) {
        fail(p, c, "invalid UTF-8");
        return 0;
    }
    uint32_t cp = utf8_get((const unsigned char *)c, n);
    *s = c + n;
    return cp;
}

static const char *parse_alternates(Parser *p, const char *s, int rule, bool nested);

/* Append the elements [a, b) of v to dst. */
static void copy_elems(Parser *p, ElemVec *dst, const Elem *src, int n) {
    for (int i = 0; i < n && !p->st; i++)
        vec_push(p, dst, (EType)src[i].type, src[i].value);
}

/* A helper rule "R ::= x R | empty" (star) or "R ::= x next | empty"
 * (next < 0: "R ::= x | empty"); returns R. */
static int helper_rule(Parser *p, const Elem *x, int nx, bool star, int next) {
    int r = new_rule(p, NULL, 0);
    if (r < 0)
        return -1;
    ElemVec *v = &p->rules[r];
    copy_elems(p, v, x, nx);
    if (star)
        vec_push(p, v, E_REF, (uint32_t)r);
    else if (next >= 0)
        vec_push(p, v, E_REF, (uint32_t)next);
    vec_push(p, v, E_ALT, 0);
    vec_push(p, v, E_END, 0);
    return r;
}

/* Apply a repetition {lo, hi} (hi -1: unbounded) to the last symbol of
 * rule 'rule', which starts at element 'sym'. */
static void repeat(Parser *p, int rule, int sym, int lo, int hi) {
    ElemVec *v = &p->rules[rule];
    int nx = v->n - sym;
    Elem *x = malloc((size_t)nx * sizeof *x);
    if (!x) {
        p->st = err_set(p->err, STATUS_NOMEM, "grammar: out of memory");
        return;
    }
    memcpy(x, v->e + sym, (size_t)nx * sizeof *x);
    v->n = sym;
    for (int i = 0; i < lo && !p->st; i++)
        copy_elems(p, &p->rules[rule], x, nx);
    if (hi < 0) {
        int r = helper_rule(p, x, nx, true, -1);
        if (r >= 0)
            vec_push(p, &p->rules[rule], E_REF, (uint32_t)r);
    } else if (hi > lo) {
        int r = -1; /* opt_k ::= x opt_{k-1} | empty, innermost first */
        for (int k = 0; k < hi - lo && !p->st; k++)
            r = helper_rule(p, x, nx, false, r);
        if (r >= 0)
            vec_push(p, &p->rules[rule], E_REF, (uint32_t)r);
    }
    free(x);
}

/* Digits at *s (clamped past GRAMMAR_MAX_REPEAT); -1 when there are none. */
static int parse_int(const Parser *p, const char **s) {
    long v = 0;
    const char *c = *s;
    if (c >= p->end || *c < '0' || *c > '9')
        return -1;
    for (; c < p->end && *c >= '0' && *c <= '9'; c++) {
        v = v * 10 + (*c - '0');
        v = v > GRAMMAR_MAX_REPEAT ? GRAMMAR_MAX_REPEAT + 1 : v;
    }
    *s = c;
    return (int)v;
}

static const char *parse_sequence(Parser *p, const char *s, int rule, bool nested) {
    int sym = -1; /* where the last symbol starts in the rule */
    while (s < p->end && !p->st) {
        ElemVec *v = &p->rules[rule];
        int here = v->n;
        char c = *s;
        if (c == '"') {
            s++;
            sym = here;
            while (s < p->end && *s != '"' && !p->st) {
                if (*s == '\n') {
                    fail(p, s, "newline in a literal");
                    break;
                }
                uint32_t cp = parse_char(p, &s);
                vec_push(p, &p->rules[rule], E_CHAR, cp);
            }
            if (s >= p->end)
                fail(p, s, "unterminated literal");
            else
                s++;
            if (p->rules[rule].n == here) /* "": an empty symbol */
                sym = -1;
        } else if (c == '[') {
            s++;
            sym = here;
            bool neg = s < p->end && *s == '^';
            if (neg) {
                s++;
                vec_push(p, &p->rules[rule], E_CHAR_NOT, 0);
            }
            bool first = true;
            while (s < p->end && *s != ']' && !p->st) {
                uint32_t lo = parse_char(p, &s);
                vec_push(p, &p->rules[rule], first && !neg ? E_CHAR : E_CHAR_ALT, lo);
                first = false;
                if (s + 1 < p->end && *s == '-' && s[1] != ']') {
                    s++;
                    uint32_t hi = parse_char(p, &s);
                    if (hi < lo)
                        fail(p, s, "range upside down");
                    vec_push(p, &p->rules[rule], E_RNG_UPPER, hi);
                }
            }
            if (s >= p->end)
                fail(p, s, "unterminated character class");
            else if (first && !neg)
                fail(p, s, "empty character class");
            else
                s++;
        } else if (c == '.') {
            s++;
            sym = here;
            vec_push(p, &p->rules[rule], E_ANY, 0);
        } else if (is_word(c)) {
            const char *n0 = s;
            while (s < p->end && is_word(*s))
                s++;
            int id = rule_id(p, n0, (size_t)(s - n0));
            sym = here;
            if (id >= 0)
                vec_push(p, &p->rules[rule], E_REF, (uint32_t)id);
        } else if (c == '(') {
            if (++p->depth > GRAMMAR_MAX_NEST) {
                p->st = err_set(p->err, STATUS_LIMIT, "grammar: groups nested over %d deep",
                                GRAMMAR_MAX_NEST);
                break;
            }
            int g = new_rule(p, NULL, 0);
            if (g < 0)
                break;
            s = parse_alternates(p, space(p, s + 1, true), g, true);
            if (p->st)
                break;
            if (s >= p->end || *s != ')') {
                fail(p, s, "expected ')'");
                break;
            }
            s++;
            p->depth--;
            sym = p->rules[rule].n;
            vec_push(p, &p->rules[rule], E_REF, (uint32_t)g);
        } else if (c == '*' || c == '+' || c == '?' || c == '{') {
            if (sym < 0) {
                fail(p, s, "repetition with nothing to repeat");
                break;
            }
            int lo = 0, hi = -1;
            if (c == '{') {
                const char *at = s;
                bool bad = false;
                s = space(p, s + 1, false);
                lo = parse_int(p, &s);
                s = space(p, s, false);
                hi = lo;
                if (s < p->end && *s == ',') {
                    s = space(p, s + 1, false);
                    if (s < p->end && *s == '}') {
                        hi = -1;
                    } else {
                        hi = parse_int(p, &s);
                        bad = hi < 0;
                        s = space(p, s, false);
                    }
                }
                if (bad || lo < 0 || s >= p->end || *s != '}') {
                    fail(p, at, "bad {m,n} repetition");
                    break;
                }
                if (lo > GRAMMAR_MAX_REPEAT || hi > GRAMMAR_MAX_REPEAT || (hi >= 0 && hi < lo)) {
                    p->st = err_set(p->err, STATUS_LIMIT,
                                    "grammar: repetition {%d,%d} out of range (0 <= m <= n <= %d)",
                                    lo, hi, GRAMMAR_MAX_REPEAT);
                    break;
                }
                s++;
            } else {
                s++;
                lo = c == '+' ? 1 : 0;
                hi = c == '?' ? 1 : -1;
            }
            repeat(p, rule, sym, lo, hi);
            sym = -1;
        } else {
            break; /* '|', ')', a newline or the end */
        }
        s = space(p, s, nested);
    }
    return s;
}

static const char *parse_alternates(Parser *p, const char *s, int rule, bool nested) {
    s = parse_sequence(p, s, rule, nested);
    while (!p->st && s < p->end && *s == '|') {
        vec_push(p, &p->rules[rule], E_ALT, 0);
        s = parse_sequence(p, space(p, s + 1, true), rule, nested);
    }
    vec_push(p, &p->rules[rule], E_END, 0);
    return s;
}

static void parse_all(Parser *p) {
    const char *s = space(p, p->s, true);
    while (s < p->end && !p->st) {
        const char *n0 = s;
        while (s < p->end && is_word(*s))
            s++;
        if (s == n0) {
            fail(p, s, "expected a rule name");
            return;
        }
        int id = rule_id(p, n0, (size_t)(s - n0));
        if (id < 0)
            return;
        if (p->defined[id] || p->rules[id].n) {
            int line, col;
            where(p, n0, &line, &col);
            p->st = err_set(p->err, STATUS_INVALID, "grammar: rule '%s' defined twice (at %d:%d)",
                            p->names[id], line, col);
            return;
        }
        s = space(p, s, false);
        if (p->end - s < 3 || memcmp(s, "::=", 3)) {
            fail(p, s, "expected '::='");
            return;
        }
        s = space(p, s + 3, true);
        s = parse_alternates(p, s, id, false);
        p->defined[id] = true;
        if (p->st)
            return;
        if (s < p->end && *s != '\n') {
            fail(p, s, "unexpected character");
            return;
        }
        s = space(p, s, true);
    }
}

/* ------------------------------------------------------- compile, check */

static bool end_of_seq(const Elem *e) { return e->type == E_END || e->type == E_ALT; }

/* nullable[r]: rule r can match the empty text (fixpoint). */
static void nullable_rules(const Grammar *g, bool *nullable) {
    for (bool changed = true; changed;) {
        changed = false;
        for (int r = 0; r < g->n_rules; r++) {
            if (nullable[r])
                continue;
            const Elem *e = g->el + g->start[r];
            for (;;) { /* each alternative */
                bool all = true;
                for (; !end_of_seq(e); e++)
                    if (e->type != E_REF || !nullable[e->value])
                        all = false;
                if (all) {
                    nullable[r] = changed = true;
                    break;
                }
                if (e->type == E_END)
                    break;
                e++;
            }
        }
    }
}

/* Depth-first over "r can start with a reference to s" (through nullable
 * prefixes): a cycle is left recursion. 0 white, 1 grey, 2 black. */
static int left_cycle(const Grammar *g, const bool *nullable, uint8_t *color, int r) {
    color[r] = 1;
    const Elem *e = g->el + g->start[r];
    for (;;) {
        for (; !end_of_seq(e); e++) {
            if (e->type != E_REF)
                break;
            int s = (int)e->value;
            if (color[s] == 1)
                return s;
            if (color[s] == 0) {
                int c = left_cycle(g, nullable, color, s);
                if (c >= 0)
                    return c;
            }
            if (!nullable[s])
                break;
        }
        while (!end_of_seq(e))
            e++;
        if (e->type == E_END)
            break;
        e++;
    }
    color[r] = 2;
    return -1;
}

static const char *rule_name(const Parser *p, int r) {
    return p->names[r] ? p->names[r] : "(group)";
}

Status grammar_parse(Grammar **out, const char *text, size_t len, const char *root, Err *err) {
    *out = NULL;
    if (len > GRAMMAR_MAX_TEXT)
        return err_set(err, STATUS_LIMIT, "grammar: %zu bytes (limit %d)", len, GRAMMAR_MAX_TEXT);
    Parser p = {.s = text, .end = text + len, .err = err};
    parse_all(&p);
    Grammar *g = NULL;
    if (!p.st) {
        for (int r = 0; r < p.n_rules && !p.st; r++)
            if (!p.defined[r])
                p.st = err_set(err, STATUS_INVALID, "grammar: rule '%s' is used but not defined",
                               p.names[r]);
    }
    const char *rn = root ? root : "root";
    int root_id = -1;
    for (int r = 0; !p.st && r < p.n_rules; r++)
        if (p.names[r] && !strcmp(p.names[r], rn))
            root_id = r;
    if (!p.st && root_id < 0)
        p.st = err_set(err, STATUS_INVALID, "grammar: no rule '%s' to start from", rn);
    if (!p.st) {
        long total = 0;
        for (int r = 0; r < p.n_rules; r++)
            total += p.rules[r].n;
        g = calloc(1, sizeof *g);
        if (g && total <= GRAMMAR_MAX_ELEMS) {
            g->el = malloc((size_t)total * sizeof *g->el);
            g->start = malloc((size_t)p.n_rules * sizeof *g->start);
        }
        if (total > GRAMMAR_MAX_ELEMS)
            p.st = err_set(err, STATUS_LIMIT, "grammar: %ld elements (limit %d)", total,
                           GRAMMAR_MAX_ELEMS);
        else if (!g || !g->el || !g->start)
            p.st = err_set(err, STATUS_NOMEM, "grammar: out of memory");
    }
    if (!p.st) {
        int at = 0;
        for (int r = 0; r < p.n_rules; r++) {
            g->start[r] = at;
            memcpy(g->el + at, p.rules[r].e, (size_t)p.rules[r].n * sizeof *g->el);
            at += p.rules[r].n;
        }
        g->n_rules = p.n_rules;
        g->root = root_id;
        size_t nr = (size_t)(g->n_rules > 0 ? g->n_rules : 1);
        bool *nullable = calloc(nr, sizeof *nullable);
        uint8_t *color = calloc(nr, 1);
        if (!nullable || !color) {
            p.st = err_set(err, STATUS_NOMEM, "grammar: out of memory");
        } else {
            nullable_rules(g, nullable);
            for (int r = 0; r < g->n_rules && !p.st; r++) {
                int c = color[r] ? -1 : left_cycle(g, nullable, color, r);
                if (c >= 0)
                    p.st = err_set(err, STATUS_INVALID,
                                   "grammar: rule '%s' is left-recursive (it can reach itself "
                                   "without reading a character)",
                                   rule_name(&p, c));
            }
        }
        free(nullable);
        free(color);
    }
    for (int r = 0; r < p.n_rules; r++) {
        free(p.rules[r].e);
        free(p.names[r]);
    }
    free(p.rules);
    free(p.names);
    free(p.defined);
    if (p.st) {
        grammar_free(g);
        return p.st;
    }
    *out = g;
    return STATUS_OK;
}

void grammar_free(Grammar *g) {
    if (!g)
        return;
    free(g->el);
    free(g->start);
    free(g);
}

int grammar_rule_count(const Grammar *g) { return g->n_rules; }

/* ------------------------------------------------------------ matching */

/* The stacks: positions in one pool, stack i at pos[off[i]..off[i+1]). */
struct GrammarState {
    const Grammar *g;
    int n;
    int32_t *off; /* (n + 1) */
    int32_t *pos;
    int cap_n, cap_pos;
    bool overflow;
    uint8_t pend[4]; /* the bytes of a code point a token left unfinished */
    int n_pend;
    int32_t *buf; /* (GRAMMAR_MAX_DEPTH + 1) expand's scratch, or NULL */
};

static bool st_reserve(GrammarState *s, int n, int npos) {
    if (n + 1 > s->cap_n) {
        int cap = s->cap_n ? 2 * s->cap_n : 16;
        while (cap < n + 1)
            cap *= 2;
        int32_t *o = realloc(s->off, (size_t)cap * sizeof *o);
        if (!o)
            return false;
        s->off = o;
        s->cap_n = cap;
    }
    if (npos > s->cap_pos) {
        int cap = s->cap_pos ? 2 * s->cap_pos : 64;
        while (cap < npos)
            cap *= 2;
        int32_t *q = realloc(s->pos, (size_t)cap * sizeof *q);
        if (!q)
            return false;
        s->pos = q;
        s->cap_pos = cap;
    }
    return true;
}

/* Add stack st[0..k) to s unless an equal one is there. */
static void st_add(GrammarState *s, const int32_t *st, int k) {
    if (s->overflow)
        return;
    for (int i = 0; i < s->n; i++)
        if (s->off[i + 1] - s->off[i] == k &&
            !memcmp(s->pos + s->off[i], st, (size_t)k * sizeof *st))
            return;
    if (s->n == GRAMMAR_MAX_STACKS || !st_reserve(s, s->n + 1, s->off[s->n] + k)) {
        s->overflow = true;
        return;
    }
    memcpy(s->pos + s->off[s->n], st, (size_t)k * sizeof *st);
    s->off[s->n + 1] = s->off[s->n] + k;
    s->n++;
}

/* Expand st[0..k) (room for GRAMMAR_MAX_DEPTH + 1) until its top is a
 * terminal or it is empty, adding each result to s. Leaves st[0..k) as it
 * found it (it writes at k - 1 and above, and restores k - 1). */
static void expand(GrammarState *s, int32_t *st, int k) {
    const Grammar *g = s->g;
    if (k == 0 || g->el[st[k - 1]].type != E_REF) {
        st_add(s, st, k);
        return;
    }
    int32_t p = st[k - 1];
    int base = k - 1;
    if (!end_of_seq(&g->el[p + 1]))
        st[base++] = p + 1;                        /* the rest of the sequence, after the rule */
    for (int32_t a = g->start[g->el[p].value];;) { /* each alternative of the rule */
        if (base >= GRAMMAR_MAX_DEPTH) {
            s->overflow = true;
            break;
        }
        if (end_of_seq(&g->el[a])) {
            expand(s, st, base); /* an empty alternative */
        } else {
            st[base] = a;
            expand(s, st, base + 1);
        }
        while (!end_of_seq(&g->el[a]))
            a++;
        if (g->el[a].type == E_END)
            break;
        a++;
    }
    st[k - 1] = p;
}

/* Whether the terminal at p admits cp; *next: the position after it. */
static bool admits(const Grammar *g, int32_t p, uint32_t cp, int32_t *next) {
    const Elem *e = g->el + p;
    if (e->type == E_ANY) {
        *next = p + 1;
        return true;
    }
    bool neg = e->type == E_CHAR_NOT, hit = false;
    if (neg)
        e++;
    for (bool first = !neg; first || e->type == E_CHAR_ALT; first = false) {
        uint32_t lo = e->value, hi = lo;
        e++;
        if (e->type == E_RNG_UPPER)
            hi = (e++)->value;
        hit = hit || (cp >= lo && cp <= hi);
    }
    *next = (int32_t)(e - g->el);
    return neg ? !hit : hit;
}

static GrammarState *state_alloc(const Grammar *g) {
    GrammarState *s = calloc(1, sizeof *s);
    if (!s || !st_reserve(s, 1, 1)) {
        grammar_state_free(s);
        return NULL;
    }
    s->g = g;
    s->off[0] = 0;
    return s;
}

Status grammar_state_new(const Grammar *g, GrammarState **out, Err *err) {
    *out = NULL;
    GrammarState *s = state_alloc(g);
    int32_t *buf = malloc((GRAMMAR_MAX_DEPTH + 1) * sizeof *buf);
    if (!s || !buf) {
        free(buf);
        grammar_state_free(s);
        return err_set(err, STATUS_NOMEM, "grammar: out of memory");
    }
    int32_t a = g->start[g->root];
    for (;;) {
        if (end_of_seq(&g->el[a])) {
            expand(s, buf, 0);
        } else {
            buf[0] = a;
            expand(s, buf, 1);
        }
        while (!end_of_seq(&g->el[a]))
            a++;
        if (g->el[a].type == E_END)
            break;
        a++;
    }
    free(buf);
    if (s->overflow) {
        grammar_state_free(s);
        return err_set(err, STATUS_LIMIT, "grammar: its start needs over %d stacks of at most %d",
                       GRAMMAR_MAX_STACKS, GRAMMAR_MAX_DEPTH);
    }
    *out = s;
    return STATUS_OK;
}

void grammar_state_free(GrammarState *s) {
    if (!s)
        return;
    free(s->buf);
    free(s->off);
    free(s->pos);
    free(s);
}

bool grammar_state_copy(GrammarState *dst, const GrammarState *src) {
    if (!st_reserve(dst, src->n, src->off[src->n]))
        return false;
    dst->g = src->g;
    dst->n = src->n;
    dst->overflow = false;
    memcpy(dst->pend, src->pend, sizeof dst->pend);
    dst->n_pend = src->n_pend;
    memcpy(dst->off, src->off, (size_t)(src->n + 1) * sizeof *dst->off);
    memcpy(dst->pos, src->pos, (size_t)src->off[src->n] * sizeof *dst->pos);
    return true;
}

/* dst := src advanced by cp (dst's own stacks replaced; pend cleared).
 * False when no stack admits cp or the limits are passed. */
static bool step_cp(const GrammarState *src, GrammarState *dst, uint32_t cp) {
    if (!dst->buf && !(dst->buf = malloc((GRAMMAR_MAX_DEPTH + 1) * sizeof *dst->buf)))
        return false;
    dst->g = src->g;
    dst->n = 0;
    dst->off[0] = 0;
    dst->overflow = false;
    dst->n_pend = 0;
    for (int i = 0; i < src->n; i++) {
        int k = src->off[i + 1] - src->off[i];
        const int32_t *st = src->pos + src->off[i];
        int32_t next;
        if (k == 0 || !admits(src->g, st[k - 1], cp, &next))
            continue;
        memcpy(dst->buf, st, (size_t)(k - 1) * sizeof *dst->buf);
        int m = k - 1;
        if (!end_of_seq(&src->g->el[next]))
            dst->buf[m++] = next;
        expand(dst, dst->buf, m);
    }
    return dst->n > 0 && !dst->overflow;
}

/* Whether the terminal at p admits some code point in [lo, hi]: it is a
 * union of ranges, so trying the ends of [lo, hi] and the points at and
 * next to each range's ends inside it decides. */
static bool admits_some(const Grammar *g, int32_t p, uint32_t lo, uint32_t hi) {
    int32_t next;
    if (admits(g, p, lo, &next) || admits(g, p, hi, &next))
        return true;
    const Elem *e = g->el + p;
    if (e->type == E_ANY)
        return true;
    bool neg = e->type == E_CHAR_NOT;
    if (neg)
        e++;
    for (bool first = !neg; first || e->type == E_CHAR_ALT; first = false) {
        uint32_t a = e->value, b = a;
        e++;
        if (e->type == E_RNG_UPPER)
            b = (e++)->value;
        uint32_t c[4] = {a, b, a > 0 ? a - 1 : a, b < 0x10FFFF ? b + 1 : b};
        for (int i = 0; i < 4; i++)
            if (c[i] >= lo && c[i] <= hi && admits(g, p, c[i], &next))
                return true;
    }
    return false;
}

/* Code points whose UTF-8 starts with the n bytes u: [*lo, *hi]; false
 * when u cannot start one (n >= 1, a lead byte then continuations). */
static bool prefix_range(const uint8_t *u, int n, uint32_t *lo, uint32_t *hi) {
    int len = utf8_lead_len(u[0]);
    if (!len || n >= len)
        return false;
    uint32_t v = len == 2 ? u[0] & 0x1Fu : len == 3 ? u[0] & 0x0Fu : u[0] & 0x07u;
    for (int i = 1; i < n; i++) {
        if ((u[i] & 0xC0) != 0x80)
            return false;
        v = v << 6 | (u[i] & 0x3Fu);
    }
    int rest = len - n;
    *lo = v << (6 * rest);
    *hi = *lo | ((1u << (6 * rest)) - 1);
    uint32_t min = len == 2 ? 0x80 : len == 3 ? 0x800 : 0x10000;
    *lo = *lo < min ? min : *lo;
    *hi = *hi > 0x10FFFF ? 0x10FFFF : *hi;
    if (len == 3 && *lo >= 0xD800 && *hi <= 0xDFFF)
        return false; /* surrogates only */
    return *lo <= *hi;
}

/* dst := src advanced by one byte: a code point completed is stepped, an
 * unfinished one kept in pend while some stack admits a code point it can
 * still become. False on a byte no stack can take (dst then undefined). */
static bool step_byte(const GrammarState *src, GrammarState *dst, uint8_t b) {
    uint8_t u[4];
    int n = src->n_pend;
    memcpy(u, src->pend, (size_t)n);
    u[n++] = b;
    uint32_t lo, hi;
    int len = utf8_lead_len(u[0]);
    if (len && n == len) {
        if (utf8_seq(u, (size_t)n) != n)
            return false;
        uint32_t cp = utf8_get(u, n);
        return step_cp(src, dst, cp);
    }
    if (!prefix_range(u, n, &lo, &hi))
        return false;
    bool some = false;
    for (int i = 0; i < src->n && !some; i++) {
        int k = src->off[i + 1] - src->off[i];
        some = k > 0 && admits_some(src->g, src->pos[src->off[i] + k - 1], lo, hi);
    }
    if (!some || !grammar_state_copy(dst, src))
        return false;
    memcpy(dst->pend, u, (size_t)n);
    dst->n_pend = n;
    return true;
}

bool grammar_accept(GrammarState *s, uint32_t cp) {
    GrammarState *t = state_alloc(s->g);
    bool ok = t && s->n_pend == 0 && step_cp(s, t, cp) && grammar_state_copy(s, t);
    grammar_state_free(t);
    return ok;
}

bool grammar_accept_bytes(GrammarState *s, const char *bytes, size_t len) {
    GrammarState *t = state_alloc(s->g);
    bool ok = t != NULL;
    for (size_t i = 0; i < len && ok; i++)
        ok = step_byte(s, t, (uint8_t)bytes[i]) && grammar_state_copy(s, t);
    grammar_state_free(t);
    return ok;
}

bool grammar_accept_utf8(GrammarState *s, const char *text, size_t len) {
    return grammar_accept_bytes(s, text, len) && s->n_pend == 0;
}

bool grammar_complete(const GrammarState *s) {
    if (s->n_pend)
        return false;
    for (int i = 0; i < s->n; i++)
        if (s->off[i + 1] == s->off[i])
            return true;
    return false;
}

bool grammar_done(const GrammarState *s) { return !s->n_pend && s->n == 1 && s->off[1] == 0; }

bool grammar_matches(const Grammar *g, const char *text, size_t len) {
    GrammarState *s = NULL;
    Err err = {0};
    if (grammar_state_new(g, &s, &err))
        return false;
    bool ok = grammar_accept_utf8(s, text, len) && grammar_complete(s);
    grammar_state_free(s);
    return ok;
}

/* ---------------------------------------------------------- token masks */

#define GRAMMAR_MAX_PIECE 65536 /* bytes of one piece */

typedef struct {
    int32_t child, sibling, tok; /* first child, next sibling, first token ending here */
    uint8_t byte;
} TrieNode;

struct GrammarVocab {
    int n;
    TrieNode *node;
    int n_nodes, cap_nodes;
    int32_t *tok_next; /* (n) the next token with the same piece */
    uint8_t *eog;      /* (n) */
    char *bytes;       /* every piece, token i at bytes[off[i]..off[i + 1]) */
    /* The trie in preorder, what a mask walks: node k's byte, depth (the
     * root's children are 1), the first token ending there, and the index
     * after its subtree. */
    uint8_t *pre_byte;
    int32_t *pre_depth, *pre_tok, *pre_end;
    int n_pre;
    size_t *off;       /* (n + 1) */
    int depth;         /* the longest piece */
};

/* The masker remembers the states a walk met and their steps by byte (a
 * small automaton built as it goes): inside a JSON string most bytes lead
 * back to the same state, so a walk of the trie mostly looks steps up
 * instead of computing them. At most MASK_CACHE_STATES states; the cache
 * starts over at a mask that finds it more than half full, and a walk that
 * fills it goes on computing steps. */
#define MASK_CACHE_STATES 1024
#define MASK_MEMO 16 /* whole masks remembered by start state */
#define MASK_UNKNOWN (-1)
#define MASK_REFUSED (-2)

struct GrammarMasker {
    const GrammarVocab *v;
    GrammarState **st; /* (depth + 1) */
    GrammarState **cs; /* (MASK_CACHE_STATES) the states met, allocated as needed */
    uint64_t *hash;    /* (MASK_CACHE_STATES) */
    int32_t *trans;    /* (MASK_CACHE_STATES, 256) next state id, MASK_UNKNOWN / MASK_REFUSED */
    int32_t *table;    /* (2 * MASK_CACHE_STATES) open addressing: state id + 1, 0 empty */
    int n_cs;
    const GrammarState **ps; /* (depth + 1) a walk's state per trie depth */
    int *pid;                /* (depth + 1) its cache id, or -1 */
    /* Whole masks by start state (a state recurs: every step inside a
     * string starts from the same one), as bits, least recently used
     * replaced; emptied with the cache. */
    uint64_t *memo; /* (MASK_MEMO, words) */
    size_t words;   /* ceil(n / 64) */
    int memo_sid[MASK_MEMO], memo_count[MASK_MEMO];
    unsigned memo_tick[MASK_MEMO], tick;
};

static uint64_t state_hash(const GrammarState *s) {
    uint64_t h = 1469598103934665603ull;
#define MIX(x) (h = (h ^ (uint64_t)(uint32_t)(x)) * 1099511628211ull)
    MIX(s->n);
    MIX(s->n_pend);
    for (int i = 0; i < s->n_pend; i++)
        MIX(s->pend[i]);
    for (int i = 1; i <= s->n; i++)
        MIX(s->off[i]);
    for (int i = 0; i < s->off[s->n]; i++)
        MIX(s->pos[i]);
#undef MIX
    return h;
}

static bool state_equal(const GrammarState *a, const GrammarState *b) {
    return a->n == b->n && a->n_pend == b->n_pend && !memcmp(a->pend, b->pend, (size_t)a->n_pend) &&
           !memcmp(a->off, b->off, (size_t)(a->n + 1) * sizeof *a->off) &&
           !memcmp(a->pos, b->pos, (size_t)a->off[a->n] * sizeof *a->pos);
}

static void cache_reset(GrammarMasker *m) {
    for (int i = 0; i < MASK_MEMO; i++)
        m->memo_sid[i] = -1;
    m->n_cs = 0;
    memset(m->table, 0, 2 * MASK_CACHE_STATES * sizeof *m->table);
}

/* The id of a state equal to s in the cache, added when new; -1 when the
 * cache is full (or out of memory). */
static int cache_intern(GrammarMasker *m, const GrammarState *s) {
    uint64_t h = state_hash(s);
    unsigned mask = 2 * MASK_CACHE_STATES - 1, i = (unsigned)h & mask;
    for (; m->table[i]; i = (i + 1) & mask) {
        int id = m->table[i] - 1;
        if (m->hash[id] == h && state_equal(m->cs[id], s))
            return id;
    }
    if (m->n_cs == MASK_CACHE_STATES)
        return -1;
    int id = m->n_cs;
    if (!m->cs[id] && !(m->cs[id] = state_alloc(s->g)))
        return -1;
    if (!grammar_state_copy(m->cs[id], s))
        return -1;
    m->hash[id] = h;
    for (int b = 0; b < 256; b++)
        m->trans[(size_t)id * 256 + (size_t)b] = MASK_UNKNOWN;
    m->table[i] = id + 1;
    m->n_cs++;
    return id;
}

static int trie_child(GrammarVocab *v, int node, uint8_t b) {
    int c = v->node[node].child;
    for (; c >= 0; c = v->node[c].sibling)
        if (v->node[c].byte == b)
            return c;
    if (v->n_nodes == v->cap_nodes) {
        int cap = 2 * v->cap_nodes;
        TrieNode *t = realloc(v->node, (size_t)cap * sizeof *t);
        if (!t)
            return -1;
        v->node = t;
        v->cap_nodes = cap;
    }
    c = v->n_nodes++;
    v->node[c] = (TrieNode){-1, v->node[node].child, -1, b};
    v->node[node].child = c;
    return c;
}

/* The preorder arrays from the linked trie (an explicit stack: pieces may
 * be GRAMMAR_MAX_PIECE deep). Non-zero when out of memory. */
static int preorder(GrammarVocab *v) {
    int n = v->n_nodes - 1; /* the root is not listed */
    v->pre_byte = malloc((size_t)(n > 0 ? n : 1));
    v->pre_depth = malloc((size_t)(n > 0 ? n : 1) * sizeof *v->pre_depth);
    v->pre_tok = malloc((size_t)(n > 0 ? n : 1) * sizeof *v->pre_tok);
    v->pre_end = malloc((size_t)(n > 0 ? n : 1) * sizeof *v->pre_end);
    int32_t *stack = malloc((size_t)(v->depth + 2) * sizeof *stack); /* node per depth */
    int32_t *at = malloc((size_t)(v->depth + 2) * sizeof *at);       /* its preorder index */
    if (!v->pre_byte || !v->pre_depth || !v->pre_tok || !v->pre_end || !stack || !at) {
        free(stack);
        free(at);
        return 1;
    }
    int k = 0, d = 0;
    stack[0] = v->node[0].child;
    while (d >= 0) {
        int c = stack[d];
        if (c < 0) { /* depth d done: close the parent's subtree */
            if (--d >= 0) {
                v->pre_end[at[d]] = k;
                stack[d] = v->node[stack[d]].sibling;
            }
            continue;
        }
        at[d] = k;
        v->pre_byte[k] = v->node[c].byte;
        v->pre_depth[k] = d + 1;
        v->pre_tok[k] = v->node[c].tok;
        k++;
        stack[++d] = v->node[c].child;
    }
    v->n_pre = k;
    free(stack);
    free(at);
    return 0;
}

Status grammar_vocab_new(GrammarVocab **out, int n, const char *const *pieces, const size_t *lens,
                         const uint8_t *eog, Err *err) {
    *out = NULL;
    GrammarVocab *v = calloc(1, sizeof *v);
    if (v) {
        v->n = n;
        v->cap_nodes = 1024;
        v->node = malloc((size_t)v->cap_nodes * sizeof *v->node);
        v->tok_next = malloc((size_t)(n > 0 ? n : 1) * sizeof *v->tok_next);
        v->eog = calloc((size_t)(n > 0 ? n : 1), 1);
        v->off = malloc((size_t)(n + 1) * sizeof *v->off);
    }
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += lens[i] <= GRAMMAR_MAX_PIECE ? lens[i] : 0;
    if (v)
        v->bytes = malloc(total ? total : 1);
    if (!v || !v->node || !v->tok_next || !v->eog || !v->off || !v->bytes) {
        grammar_vocab_free(v);
        return err_set(err, STATUS_NOMEM, "grammar: out of memory for a vocabulary of %d", n);
    }
    v->node[0] = (TrieNode){-1, -1, -1, 0};
    v->n_nodes = 1;
    v->off[0] = 0;
    for (int i = 0; i < n; i++) {
        v->tok_next[i] = -1;
        v->eog[i] = eog && eog[i];
        v->off[i + 1] = v->off[i];
        if (v->eog[i] || lens[i] == 0)
            continue;
        if (lens[i] > GRAMMAR_MAX_PIECE) {
            grammar_vocab_free(v);
            return err_set(err, STATUS_LIMIT, "grammar: token %d's piece of %zu bytes (limit %d)",
                           i, lens[i], GRAMMAR_MAX_PIECE);
        }
        memcpy(v->bytes + v->off[i], pieces[i], lens[i]);
        v->off[i + 1] += lens[i];
        int node = 0;
        for (size_t k = 0; k < lens[i] && node >= 0; k++)
            node = trie_child(v, node, (uint8_t)pieces[i][k]);
        if (node < 0) {
            grammar_vocab_free(v);
            return err_set(err, STATUS_NOMEM, "grammar: out of memory for the token trie");
        }
        v->tok_next[i] = v->node[node].tok;
        v->node[node].tok = i;
        v->depth = (int)lens[i] > v->depth ? (int)lens[i] : v->depth;
    }
    if (preorder(v)) {
        grammar_vocab_free(v);
        return err_set(err, STATUS_NOMEM, "grammar: out of memory for the token trie");
    }
    *out = v;
    return STATUS_OK;
}

void grammar_vocab_free(GrammarVocab *v) {
    if (!v)
        return;
    free(v->node);
    free(v->tok_next);
    free(v->eog);
    free(v->off);
    free(v->bytes);
    free(v->pre_byte);
    free(v->pre_depth);
    free(v->pre_tok);
    free(v->pre_end);
    free(v);
}

Status grammar_masker_new(GrammarMasker **out, const GrammarVocab *v, Err *err) {
    *out = NULL;
    GrammarMasker *m = calloc(1, sizeof *m);
    if (m) {
        m->v = v;
        m->st = calloc((size_t)v->depth + 1, sizeof *m->st);
        m->cs = calloc(MASK_CACHE_STATES, sizeof *m->cs);
        m->hash = malloc(MASK_CACHE_STATES * sizeof *m->hash);
        m->trans = malloc((size_t)MASK_CACHE_STATES * 256 * sizeof *m->trans);
        m->table = calloc(2 * MASK_CACHE_STATES, sizeof *m->table);
        m->ps = calloc((size_t)v->depth + 1, sizeof *m->ps);
        m->pid = calloc((size_t)v->depth + 1, sizeof *m->pid);
        m->words = ((size_t)v->n + 63) / 64;
        m->memo = malloc(MASK_MEMO * (m->words ? m->words : 1) * sizeof *m->memo);
        for (int i = 0; i < MASK_MEMO; i++)
            m->memo_sid[i] = -1;
        if (!m->cs || !m->hash || !m->trans || !m->table || !m->ps || !m->pid || !m->memo) {
            grammar_masker_free(m);
            m = NULL;
        }
    }
    for (int d = 0; m && m->st && d <= v->depth; d++)
        if (!(m->st[d] = state_alloc(NULL))) {
            grammar_masker_free(m);
            m = NULL;
        }
    if (!m || !m->st) {
        grammar_masker_free(m);
        return err_set(err, STATUS_NOMEM, "grammar: out of memory for a masker");
    }
    *out = m;
    return STATUS_OK;
}

void grammar_masker_free(GrammarMasker *m) {
    if (!m)
        return;
    for (int d = 0; m->st && d <= m->v->depth; d++)
        grammar_state_free(m->st[d]);
    free(m->st);
    for (int i = 0; m->cs && i < MASK_CACHE_STATES; i++)
        grammar_state_free(m->cs[i]);
    free(m->cs);
    free(m->hash);
    free(m->trans);
    free(m->table);
    free(m->ps);
    free(m->pid);
    free(m->memo);
    free(m);
}

/* The tokens whose pieces continue state s0 (the cache's state sid0, or
 * -1). One pass over the trie in preorder: a node's parent state is the
 * last one kept at the depth above, and a refused node skips its subtree.
 * m->ps / m->pid hold the state and cache id per depth (st[depth] when
 * the state is not in the cache). */
static int mask_walk(GrammarMasker *m, const GrammarState *s0, int sid0, uint8_t *allowed) {
    const GrammarVocab *v = m->v;
    int count = 0;
    m->ps[0] = s0;
    m->pid[0] = sid0;
    for (int k = 0; k < v->n_pre;) {
        int d = v->pre_depth[k];
        uint8_t b = v->pre_byte[k];
        int sid = m->pid[d - 1];
        int32_t *tr = sid >= 0 ? &m->trans[(size_t)sid * 256 + b] : NULL;
        const GrammarState *ns;
        int nid = -1;
        if (tr && *tr >= 0) {
            nid = *tr;
            ns = m->cs[nid];
        } else if ((tr && *tr == MASK_REFUSED) || !step_byte(m->ps[d - 1], m->st[d], b)) {
            if (tr)
                *tr = MASK_REFUSED;
            k = v->pre_end[k];
            continue;
        } else {
            ns = m->st[d];
            if (tr && (nid = cache_intern(m, ns)) >= 0) {
                *tr = nid;
                ns = m->cs[nid];
            }
        }
        for (int t = v->pre_tok[k]; t >= 0; t = v->tok_next[t]) {
            allowed[t] = 1;
            count++;
        }
        m->ps[d] = ns;
        m->pid[d] = nid;
        k++;
    }
    return count;
}

int grammar_mask(GrammarMasker *m, const GrammarState *s, uint8_t *allowed) {
    const GrammarVocab *v = m->v;
    memset(allowed, 0, (size_t)v->n);
    if (m->n_cs > MASK_CACHE_STATES / 2)
        cache_reset(m);
    if (!grammar_state_copy(m->st[0], s))
        return 0;
    int sid = cache_intern(m, m->st[0]);
    int count = -1, slot = 0;
    for (int i = 0; i < MASK_MEMO && sid >= 0; i++) {
        if (m->memo_sid[i] == sid) { /* this start state's mask: from the bits */
            const uint64_t *bits = m->memo + (size_t)i * m->words;
            for (int t = 0; t < v->n; t++)
                allowed[t] = (uint8_t)(bits[t >> 6] >> (t & 63) & 1);
            count = m->memo_count[i];
            m->memo_tick[i] = ++m->tick;
            break;
        }
        if (m->memo_sid[slot] >= 0 && (m->memo_sid[i] < 0 || m->memo_tick[i] < m->memo_tick[slot]))
            slot = i; /* the first empty slot, else the least recently used */
    }
    if (count < 0) {
        count = mask_walk(m, sid >= 0 ? m->cs[sid] : m->st[0], sid, allowed);
        if (sid >= 0) {
            uint64_t *bits = m->memo + (size_t)slot * m->words;
            memset(bits, 0, m->words * sizeof *bits);
            for (int t = 0; t < v->n; t++)
                bits[t >> 6] |= (uint64_t)(allowed[t] != 0) << (t & 63);
            m->memo_sid[slot] = sid;
            m->memo_count[slot] = count;
            m->memo_tick[slot] = ++m->tick;
        }
    }
    if (grammar_complete(s))
        for (int i = 0; i < v->n; i++)
            if (v->eog[i]) {
                allowed[i] = 1;
                count++;
            }
    return count;
}

int grammar_vocab_size(const GrammarVocab *v) { return v->n; }

/* The state after token tok's piece in m->st[len] (len returned), or -1
 * when the piece is refused. */
static int try_token(GrammarMasker *m, const GrammarState *s, int32_t tok) {
    const GrammarVocab *v = m->v;
    if (tok < 0 || tok >= v->n)
        return -1;
    size_t len = v->off[tok + 1] - v->off[tok];
    if (v->eog[tok])
        return grammar_complete(s) ? 0 : -1;
    if (len == 0 || !grammar_state_copy(m->st[0], s))
        return -1;
    const uint8_t *b = (const uint8_t *)v->bytes + v->off[tok];
    for (size_t k = 0; k < len; k++)
        if (!step_byte(m->st[k], m->st[k + 1], b[k]))
            return -1;
    return (int)len;
}

bool grammar_masker_allows(GrammarMasker *m, const GrammarState *s, int32_t tok) {
    return try_token(m, s, tok) >= 0;
}

bool grammar_masker_accept(GrammarMasker *m, GrammarState *s, int32_t tok) {
    int d = try_token(m, s, tok);
    if (d < 0)
        return false;
    return d == 0 || grammar_state_copy(s, m->st[d]);
}
