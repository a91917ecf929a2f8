/* tmpl_parse.c - recursive-descent parser from tokens to the AST, following
 * Jinja2's grammar and precedence (parser.py): conditional expression, or,
 * and, not, comparisons (chained, in, not in), + -, ~ (one node per chain),
 * * / // %, ** (left-associative, as Jinja2), unary - +, then postfix
 * (.attr, [subscript/slice], call) and filters/tests, which bind tighter
 * than any binary operator.
 *
 * Recursion is bounded: every nested expression, unary operator and block
 * counts against TMPL_MAX_PARSE_DEPTH, and so does the AST depth of
 * left-deep chains (a+b+c..., x|f|g...), so evaluation cannot blow the C
 * stack either. Unsupported tags (include, import, extends, block, recursive
 * loops) are syntax errors. */
#include <string.h>

#include "chat/tmpl_impl.h"

typedef struct {
    const TTok *t;
    size_t n, i;
    TArena *a;
    TFail *f;
    int depth;                                  /* recursion depth */
    int loop_depth;                             /* for break/continue */
    const char *open[TMPL_MAX_PARSE_DEPTH + 8]; /* names of the open blocks */
    int n_open;
} Parser;

static const TTok *cur(Parser *p) { return &p->t[p->i]; }
static const TTok *peek(Parser *p, size_t k) {
    return p->i + k < p->n ? &p->t[p->i + k] : &p->t[p->n - 1];
}
static void adv(Parser *p) {
    if (p->i + 1 < p->n)
        p->i++;
}

static const char *tok_desc(const TTok *t) {
    switch (t->kind) {
    case T_TEXT:
        return "template data";
    case T_VAR_BEGIN:
        return "'{{'";
    case T_VAR_END:
        return "end of print statement";
    case T_BLOCK_BEGIN:
        return "'{%'";
    case T_BLOCK_END:
        return "end of statement block";
    case T_NAME:
        return "name";
    case T_STRING:
        return "string";
    case T_INT:
        return "integer";
    case T_FLOAT:
        return "float";
    case T_OP:
        return "operator";
    default:
        return "end of template";
    }
}

static _Noreturn void pfail(Parser *p, const TTok *t, const char *fmt, const char *arg) {
    char msg[256];
    snprintf(msg, sizeof msg, fmt, arg);
    if (p->n_open > 0)
        tfail(p->f, STATUS_INVALID, t->line, t->col, "%s (open block: %s)", msg,
              p->open[p->n_open - 1]);
    tfail(p->f, STATUS_INVALID, t->line, t->col, "%s", msg);
}

static _Noreturn void unexpected(Parser *p) {
    const TTok *t = cur(p);
    if (t->kind == T_NAME)
        pfail(p, t, "unexpected '%s'", t->s);
    pfail(p, t, "unexpected %s", tok_desc(t));
}

static bool is_op(Parser *p, uint8_t op) { return cur(p)->kind == T_OP && cur(p)->op == op; }
static bool is_name(Parser *p, const char *name) {
    return cur(p)->kind == T_NAME && strcmp(cur(p)->s, name) == 0;
}
static bool skip_op(Parser *p, uint8_t op) {
    if (!is_op(p, op))
        return false;
    adv(p);
    return true;
}
static bool skip_name(Parser *p, const char *name) {
    if (!is_name(p, name))
        return false;
    adv(p);
    return true;
}
static void expect_op(Parser *p, uint8_t op, const char *what) {
    if (!skip_op(p, op))
        pfail(p, cur(p), "expected '%s'", what);
}
static const char *expect_name(Parser *p) {
    if (cur(p)->kind != T_NAME)
        pfail(p, cur(p), "expected a name, got %s", tok_desc(cur(p)));
    const char *s = cur(p)->s;
    adv(p);
    return s;
}
static void expect_block_end(Parser *p) {
    if (cur(p)->kind != T_BLOCK_END)
        pfail(p, cur(p), "expected end of statement block, got %s", tok_desc(cur(p)));
    adv(p);
}

static void enter(Parser *p) {
    if (++p->depth > TMPL_MAX_PARSE_DEPTH)
        pfail(p, cur(p), "template nested too deeply (limit %s)", "128");
}
static void leave(Parser *p) { p->depth--; }

static TNode *mk(Parser *p, NKind k, const TTok *at) {
    TNode *n = ta_alloc(p->a, sizeof *n, p->f);
    memset(n, 0, sizeof *n);
    n->kind = (uint8_t)k;
    n->line = at->line;
    n->col = at->col;
    return n;
}

/* Compute an expression node's depth from its children and bound it. */
static TNode *fin(Parser *p, TNode *n) {
    int d = 0;
    TNode *kids[5] = {n->a, n->b, n->c, n->d, n->e};
    for (int i = 0; i < 5; i++)
        if (kids[i] && kids[i]->depth > d)
            d = kids[i]->depth;
    for (size_t i = 0; i < n->n_args; i++)
        if (n->args[i] && n->args[i]->depth > d)
            d = n->args[i]->depth;
    if (d + 1 > TMPL_MAX_PARSE_DEPTH) {
        const TTok t = {.line = n->line, .col = n->col};
        pfail(p, &t, "expression nested too deeply (limit %s)", "128");
    }
    n->depth = (uint16_t)(d + 1);
    return n;
}

/* A growable list of nodes (and keyword names) while parsing. */
typedef struct {
    TNode **v;
    const char **kw;
    size_t n, cap;
} NVec;

static void nv_push(Parser *p, NVec *v, TNode *n, const char *kw) {
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 4;
        TNode **nv = ta_alloc(p->a, cap * sizeof *nv, p->f);
        const char **nk = ta_alloc(p->a, cap * sizeof *nk, p->f);
        if (v->n) {
            memcpy(nv, v->v, v->n * sizeof *nv);
            memcpy(nk, v->kw, v->n * sizeof *nk);
        }
        v->v = nv;
        v->kw = nk;
        v->cap = cap;
    }
    v->v[v->n] = n;
    v->kw[v->n] = kw;
    v->n++;
}

static TNode *parse_expression(Parser *p, bool with_condexpr);
static TNode *parse_unary(Parser *p, bool with_filter);
static TNode *parse_primary(Parser *p);
static TNode *parse_postfix(Parser *p, TNode *n);
static TNode *parse_filter_expr(Parser *p, TNode *n);
static TNode *parse_or(Parser *p);

/* Comma-separated expressions; a tuple if there is a comma. */
static TNode *parse_tuple(Parser *p, bool simplified, bool with_condexpr, const char *extra_end,
                          bool explicit_parens) {
    const TTok *start = cur(p);
    NVec v = {0};
    bool is_tuple = false;
    for (;;) {
        if (v.n)
            expect_op(p, OP_COMMA, ",");
        const TTok *t = cur(p);
        if (t->kind == T_VAR_END || t->kind == T_BLOCK_END ||
            (t->kind == T_OP && t->op == OP_RPAREN) || (extra_end && is_name(p, extra_end)))
            break;
        TNode *e = simplified ? parse_primary(p) : parse_expression(p, with_condexpr);
        nv_push(p, &v, e, NULL);
        if (is_op(p, OP_COMMA))
            is_tuple = true;
        else
            break;
    }
    if (!is_tuple) {
        if (v.n)
            return v.v[0];
        if (!explicit_parens)
            pfail(p, cur(p), "expected an expression, got %s", tok_desc(cur(p)));
    }
    TNode *n = mk(p, N_TUPLE, start);
    n->args = v.v;
    n->n_args = v.n;
    return fin(p, n);
}

static TNode *parse_expression(Parser *p, bool with_condexpr) {
    enter(p);
    TNode *e = parse_or(p);
    if (with_condexpr) {
        while (is_name(p, "if")) {
            const TTok *t = cur(p);
            adv(p);
            TNode *c = mk(p, N_COND, t);
            c->b = e;
            c->a = parse_or(p);
            if (skip_name(p, "else"))
                c->c = parse_expression(p, true);
            e = fin(p, c);
        }
    }
    leave(p);
    return e;
}

static TNode *parse_not(Parser *p);
static TNode *parse_compare(Parser *p);

static TNode *parse_and(Parser *p) {
    TNode *l = parse_not(p);
    while (is_name(p, "and")) {
        TNode *n = mk(p, N_AND, cur(p));
        adv(p);
        n->a = l;
        n->b = parse_not(p);
        l = fin(p, n);
    }
    return l;
}

static TNode *parse_or(Parser *p) {
    TNode *l = parse_and(p);
    while (is_name(p, "or")) {
        TNode *n = mk(p, N_OR, cur(p));
        adv(p);
        n->a = l;
        n->b = parse_and(p);
        l = fin(p, n);
    }
    return l;
}

static TNode *parse_not(Parser *p) {
    if (is_name(p, "not")) {
        enter(p);
        TNode *n = mk(p, N_UNARY, cur(p));
        adv(p);
        n->op = 'n';
        n->a = parse_not(p);
        leave(p);
        return fin(p, n);
    }
    return parse_compare(p);
}

static TNode *parse_math1(Parser *p);

static TNode *parse_compare(Parser *p) {
    const TTok *start = cur(p);
    TNode *l = parse_math1(p);
    NVec v = {0};
    uint8_t ops[64];
    for (;;) {
        uint8_t op = 0;
        const TTok *t = cur(p);
        if (t->kind == T_OP && (t->op == OP_EQ || t->op == OP_NE || t->op == OP_LT ||
                                t->op == OP_LTEQ || t->op == OP_GT || t->op == OP_GTEQ)) {
            op = t->op;
            adv(p);
        } else if (is_name(p, "in")) {
            op = OP_IN;
            adv(p);
        } else if (is_name(p, "not") && peek(p, 1)->kind == T_NAME &&
                   strcmp(peek(p, 1)->s, "in") == 0) {
            op = OP_NOTIN;
            adv(p);
            adv(p);
        } else {
            break;
        }
        if (v.n == sizeof ops)
            pfail(p, t, "too many chained comparisons (limit %s)", "64");
        ops[v.n] = op;
        nv_push(p, &v, parse_math1(p), NULL);
    }
    if (!v.n)
        return l;
    TNode *n = mk(p, N_COMPARE, start);
    n->a = l;
    n->args = v.v;
    n->n_args = v.n;
    n->cmp_ops = ta_alloc(p->a, v.n, p->f);
    memcpy(n->cmp_ops, ops, v.n);
    return fin(p, n);
}

static TNode *binop(Parser *p, const TTok *t, uint8_t op, TNode *l, TNode *r) {
    TNode *n = mk(p, N_BINARY, t);
    n->op = op;
    n->a = l;
    n->b = r;
    return fin(p, n);
}

static TNode *parse_pow(Parser *p) {
    TNode *l = parse_unary(p, true);
    while (is_op(p, OP_POW)) {
        const TTok *t = cur(p);
        adv(p);
        l = binop(p, t, OP_POW, l, parse_unary(p, true));
    }
    return l;
}

static TNode *parse_math2(Parser *p) {
    TNode *l = parse_pow(p);
    while (is_op(p, OP_MUL) || is_op(p, OP_DIV) || is_op(p, OP_FLOORDIV) || is_op(p, OP_MOD)) {
        const TTok *t = cur(p);
        adv(p);
        l = binop(p, t, t->op, l, parse_pow(p));
    }
    return l;
}

static TNode *parse_concat(Parser *p) {
    const TTok *start = cur(p);
    TNode *l = parse_math2(p);
    if (!is_op(p, OP_TILDE))
        return l;
    NVec v = {0};
    nv_push(p, &v, l, NULL);
    while (skip_op(p, OP_TILDE))
        nv_push(p, &v, parse_math2(p), NULL);
    TNode *n = mk(p, N_CONCAT, start);
    n->args = v.v;
    n->n_args = v.n;
    return fin(p, n);
}

static TNode *parse_math1(Parser *p) {
    TNode *l = parse_concat(p);
    while (is_op(p, OP_ADD) || is_op(p, OP_SUB)) {
        const TTok *t = cur(p);
        adv(p);
        l = binop(p, t, t->op, l, parse_concat(p));
    }
    return l;
}

static TNode *parse_unary(Parser *p, bool with_filter) {
    enter(p);
    TNode *n;
    const TTok *t = cur(p);
    if (is_op(p, OP_SUB) || is_op(p, OP_ADD)) {
        adv(p);
        n = mk(p, N_UNARY, t);
        n->op = t->op == OP_SUB ? '-' : '+';
        n->a = parse_unary(p, false);
        n = fin(p, n);
    } else {
        n = parse_primary(p);
    }
    n = parse_postfix(p, n);
    if (with_filter)
        n = parse_filter_expr(p, n);
    leave(p);
    return n;
}

static TNode *konst(Parser *p, const TTok *t, TValue v) {
    TNode *n = mk(p, N_CONST, t);
    n->lit = v;
    return fin(p, n);
}

static TNode *parse_primary(Parser *p) {
    const TTok *t = cur(p);
    switch (t->kind) {
    case T_NAME: {
        adv(p);
        const char *s = t->s;
        if (!strcmp(s, "true") || !strcmp(s, "True"))
            return konst(p, t, tv_bool(true));
        if (!strcmp(s, "false") || !strcmp(s, "False"))
            return konst(p, t, tv_bool(false));
        if (!strcmp(s, "none") || !strcmp(s, "None"))
            return konst(p, t, tv_none());
        TNode *n = mk(p, N_NAME, t);
        n->name = s;
        return fin(p, n);
    }
    case T_STRING: {
        /* adjacent string literals concatenate */
        size_t total = 0, j = p->i;
        while (j < p->n && p->t[j].kind == T_STRING)
            total += p->t[j++].n;
        char *b = ta_alloc(p->a, total + 1, p->f);
        size_t o = 0;
        while (cur(p)->kind == T_STRING) {
            memcpy(b + o, cur(p)->s, cur(p)->n);
            o += cur(p)->n;
            adv(p);
        }
        return konst(p, t, tv_lit(p->a, p->f, b, total, 1));
    }
    case T_INT:
        adv(p);
        return konst(p, t, tv_int(t->i));
    case T_FLOAT:
        adv(p);
        return konst(p, t, tv_float(t->f));
    case T_OP:
        if (t->op == OP_LPAREN) {
            adv(p);
            TNode *n = parse_tuple(p, false, true, NULL, true);
            expect_op(p, OP_RPAREN, ")");
            return n;
        }
        if (t->op == OP_LBRACKET) {
            adv(p);
            NVec v = {0};
            while (!is_op(p, OP_RBRACKET)) {
                if (v.n)
                    expect_op(p, OP_COMMA, ",");
                if (is_op(p, OP_RBRACKET))
                    break;
                nv_push(p, &v, parse_expression(p, true), NULL);
            }
            expect_op(p, OP_RBRACKET, "]");
            TNode *n = mk(p, N_LIST, t);
            n->args = v.v;
            n->n_args = v.n;
            return fin(p, n);
        }
        if (t->op == OP_LBRACE) {
            adv(p);
            NVec v = {0};
            while (!is_op(p, OP_RBRACE)) {
                if (v.n)
                    expect_op(p, OP_COMMA, ",");
                if (is_op(p, OP_RBRACE))
                    break;
                nv_push(p, &v, parse_expression(p, true), NULL);
                expect_op(p, OP_COLON, ":");
                nv_push(p, &v, parse_expression(p, true), NULL);
            }
            expect_op(p, OP_RBRACE, "}");
            TNode *n = mk(p, N_DICT, t);
            n->args = v.v;
            n->n_args = v.n;
            return fin(p, n);
        }
        /* fallthrough */
    default:
        unexpected(p);
    }
}

/* Call arguments after '(' : positional and keyword (name=expr). */
static void parse_call_args(Parser *p, TNode *n) {
    expect_op(p, OP_LPAREN, "(");
    NVec v = {0};
    bool kw_seen = false;
    while (!is_op(p, OP_RPAREN)) {
        if (v.n)
            expect_op(p, OP_COMMA, ",");
        if (is_op(p, OP_RPAREN))
            break;
        if (is_op(p, OP_MUL) || is_op(p, OP_POW))
            pfail(p, cur(p), "%s", "*args and **kwargs in calls are not supported");
        if (cur(p)->kind == T_NAME && peek(p, 1)->kind == T_OP && peek(p, 1)->op == OP_ASSIGN) {
            const char *k = cur(p)->s;
            adv(p);
            adv(p);
            nv_push(p, &v, parse_expression(p, true), k);
            kw_seen = true;
        } else {
            if (kw_seen)
                pfail(p, cur(p), "%s", "positional argument after keyword argument");
            nv_push(p, &v, parse_expression(p, true), NULL);
        }
    }
    expect_op(p, OP_RPAREN, ")");
    n->args = v.v;
    n->kw = v.kw;
    n->n_args = v.n;
}

static TNode *parse_subscribed(Parser *p) {
    const TTok *t = cur(p);
    TNode *args[3] = {NULL, NULL, NULL};
    if (skip_op(p, OP_COLON)) {
        /* [:...] */
    } else {
        TNode *e = parse_expression(p, true);
        if (!skip_op(p, OP_COLON))
            return e;
        args[0] = e;
    }
    if (!is_op(p, OP_COLON) && !is_op(p, OP_RBRACKET) && !is_op(p, OP_COMMA))
        args[1] = parse_expression(p, true);
    if (skip_op(p, OP_COLON)) {
        if (!is_op(p, OP_RBRACKET) && !is_op(p, OP_COMMA))
            args[2] = parse_expression(p, true);
    }
    TNode *n = mk(p, N_SLICE, t);
    n->a = args[0];
    n->b = args[1];
    n->c = args[2];
    return fin(p, n);
}

static TNode *parse_postfix(Parser *p, TNode *n) {
    for (;;) {
        const TTok *t = cur(p);
        if (is_op(p, OP_DOT)) {
            adv(p);
            const TTok *a = cur(p);
            if (a->kind == T_NAME) {
                adv(p);
                TNode *g = mk(p, N_GETATTR, t);
                g->a = n;
                g->name = a->s;
                n = fin(p, g);
            } else if (a->kind == T_INT) {
                adv(p);
                TNode *g = mk(p, N_GETITEM, t);
                g->a = n;
                g->b = konst(p, a, tv_int(a->i));
                n = fin(p, g);
            } else {
                pfail(p, a, "%s", "expected name or number after '.'");
            }
        } else if (is_op(p, OP_LBRACKET)) {
            adv(p);
            NVec v = {0};
            while (!is_op(p, OP_RBRACKET)) {
                if (v.n)
                    expect_op(p, OP_COMMA, ",");
                nv_push(p, &v, parse_subscribed(p), NULL);
            }
            expect_op(p, OP_RBRACKET, "]");
            if (v.n == 0)
                pfail(p, t, "%s", "expected a subscript");
            TNode *g = mk(p, N_GETITEM, t);
            g->a = n;
            if (v.n == 1) {
                g->b = v.v[0];
            } else {
                TNode *tu = mk(p, N_TUPLE, t);
                tu->args = v.v;
                tu->n_args = v.n;
                g->b = fin(p, tu);
            }
            n = fin(p, g);
        } else if (is_op(p, OP_LPAREN)) {
            TNode *c = mk(p, N_CALL, t);
            c->a = n;
            parse_call_args(p, c);
            n = fin(p, c);
        } else {
            return n;
        }
    }
}

static TNode *parse_filter(Parser *p, TNode *n, const TTok *t) {
    TNode *f = mk(p, N_FILTER, t);
    f->a = n;
    f->name = expect_name(p);
    if (!tmpl_filter_known(f->name))
        pfail(p, t, "No filter named '%s'", f->name);
    while (is_op(p, OP_DOT)) { /* dotted filter names: not used by chat templates */
        pfail(p, cur(p), "%s", "dotted filter names are not supported");
    }
    if (is_op(p, OP_LPAREN))
        parse_call_args(p, f);
    return fin(p, f);
}

static TNode *parse_filter_expr(Parser *p, TNode *n) {
    for (;;) {
        const TTok *t = cur(p);
        if (skip_op(p, OP_PIPE)) {
            n = parse_filter(p, n, t);
        } else if (is_name(p, "is")) {
            adv(p);
            TNode *x = mk(p, N_TEST, t);
            x->a = n;
            if (skip_name(p, "not"))
                x->op = 1;
            x->name = expect_name(p);
            if (!tmpl_test_known(x->name))
                pfail(p, t, "No test named '%s'", x->name);
            const TTok *c = cur(p);
            if (is_op(p, OP_LPAREN)) {
                parse_call_args(p, x);
            } else if ((c->kind == T_NAME || c->kind == T_STRING || c->kind == T_INT ||
                        c->kind == T_FLOAT ||
                        (c->kind == T_OP &&
                         (c->op == OP_LPAREN || c->op == OP_LBRACKET || c->op == OP_LBRACE))) &&
                       !is_name(p, "else") && !is_name(p, "or") && !is_name(p, "and")) {
                if (is_name(p, "is"))
                    pfail(p, c, "%s", "You cannot chain multiple tests with is");
                TNode *arg = parse_postfix(p, parse_primary(p));
                x->args = ta_alloc(p->a, sizeof *x->args, p->f);
                x->kw = ta_alloc(p->a, sizeof *x->kw, p->f);
                x->args[0] = arg;
                x->kw[0] = NULL;
                x->n_args = 1;
            }
            n = fin(p, x);
        } else if (is_op(p, OP_LPAREN)) {
            TNode *c2 = mk(p, N_CALL, t);
            c2->a = n;
            parse_call_args(p, c2);
            n = fin(p, c2);
        } else {
            return n;
        }
    }
}

/* ---- statements ---- */

static TNode *parse_body(Parser *p, const char *const *ends, const char *block);

/* Assignment target: a name, a tuple of names, or (with_ns) name.attr. */
static TNode *parse_assign_target(Parser *p, const char *extra_end, bool with_ns) {
    const TTok *t = cur(p);
    if (with_ns && t->kind == T_NAME && peek(p, 1)->kind == T_OP && peek(p, 1)->op == OP_DOT) {
        const char *ns = expect_name(p);
        adv(p);
        const char *attr = expect_name(p);
        TNode *base = mk(p, N_NAME, t);
        base->name = ns;
        TNode *n = mk(p, N_GETATTR, t);
        n->a = fin(p, base);
        n->name = attr;
        return fin(p, n);
    }
    TNode *n = parse_tuple(p, true, true, extra_end, false);
    if (n->kind == N_NAME)
        return n;
    if (n->kind == N_TUPLE) {
        for (size_t i = 0; i < n->n_args; i++)
            if (n->args[i]->kind != N_NAME)
                pfail(p, t, "%s", "can't assign to this expression");
        return n;
    }
    pfail(p, t, "%s", "can't assign to this expression");
}

/* '(' name [= default], ... ')' for macros and call blocks. */
static void parse_signature(Parser *p, TNode *n) {
    NVec v = {0}, d = {0};
    expect_op(p, OP_LPAREN, "(");
    while (!is_op(p, OP_RPAREN)) {
        if (v.n)
            expect_op(p, OP_COMMA, ",");
        const TTok *t = cur(p);
        TNode *arg = mk(p, N_NAME, t);
        arg->name = expect_name(p);
        TNode *def = NULL;
        if (skip_op(p, OP_ASSIGN))
            def = parse_expression(p, true);
        else if (d.n && d.v[d.n - 1])
            pfail(p, t, "%s", "non-default argument follows default argument");
        nv_push(p, &v, arg, NULL);
        nv_push(p, &d, def, NULL);
    }
    expect_op(p, OP_RPAREN, ")");
    n->args = v.v;
    n->defs = d.v;
    n->n_args = v.n;
}

static TNode *parse_filter_chain(Parser *p) {
    const TTok *t = cur(p);
    TNode *f = parse_filter(p, NULL, t);
    while (is_op(p, OP_PIPE)) {
        const TTok *t2 = cur(p);
        adv(p);
        f = parse_filter(p, f, t2);
    }
    return f;
}

static TNode *parse_statement(Parser *p) {
    const TTok *t = cur(p); /* the tag name */
    if (t->kind != T_NAME)
        pfail(p, t, "%s", "tag name expected");
    const char *tag = t->s;
    adv(p);
    TNode *n;
    if (!strcmp(tag, "if")) {
        n = mk(p, N_IF, t);
        n->a = parse_tuple(p, false, false, NULL, false);
        expect_block_end(p);
        static const char *const ends[] = {"elif", "else", "endif", NULL};
        n->b = parse_body(p, ends, "if");
        TNode *last = n;
        for (;;) {
            const TTok *e = cur(p);
            adv(p);
            if (!strcmp(e->s, "elif")) {
                TNode *x = mk(p, N_IF, e);
                x->a = parse_tuple(p, false, false, NULL, false);
                expect_block_end(p);
                x->b = parse_body(p, ends, "if");
                last->c = x;
                last = x;
            } else if (!strcmp(e->s, "else")) {
                expect_block_end(p);
                static const char *const ends2[] = {"endif", NULL};
                last->c = parse_body(p, ends2, "if");
                adv(p);
                break;
            } else {
                break;
            }
        }
    } else if (!strcmp(tag, "for")) {
        n = mk(p, N_FOR, t);
        n->a = parse_assign_target(p, "in", false);
        if (!skip_name(p, "in"))
            pfail(p, cur(p), "%s", "expected 'in'");
        n->b = parse_tuple(p, false, false, "recursive", false);
        if (skip_name(p, "if"))
            n->c = parse_expression(p, true);
        if (is_name(p, "recursive"))
            pfail(p, cur(p), "%s", "recursive loops are not supported");
        expect_block_end(p);
        static const char *const ends[] = {"endfor", "else", NULL};
        p->loop_depth++;
        n->d = parse_body(p, ends, "for");
        p->loop_depth--;
        if (!strcmp(cur(p)->s, "else")) {
            adv(p);
            expect_block_end(p);
            static const char *const ends2[] = {"endfor", NULL};
            n->e = parse_body(p, ends2, "for");
        }
        adv(p);
    } else if (!strcmp(tag, "set")) {
        TNode *target = parse_assign_target(p, NULL, true);
        if (skip_op(p, OP_ASSIGN)) {
            n = mk(p, N_SET, t);
            n->a = target;
            n->b = parse_tuple(p, false, true, NULL, false);
            expect_block_end(p);
            return n;
        }
        n = mk(p, N_SETBLOCK, t);
        n->a = target;
        if (is_op(p, OP_PIPE)) {
            adv(p);
            n->b = parse_filter_chain(p);
        }
        expect_block_end(p);
        static const char *const ends[] = {"endset", NULL};
        n->d = parse_body(p, ends, "set");
        adv(p);
    } else if (!strcmp(tag, "macro")) {
        n = mk(p, N_MACRO, t);
        n->name = expect_name(p);
        parse_signature(p, n);
        expect_block_end(p);
        static const char *const ends[] = {"endmacro", NULL};
        int ld = p->loop_depth;
        p->loop_depth = 0;
        n->d = parse_body(p, ends, "macro");
        p->loop_depth = ld;
        adv(p);
    } else if (!strcmp(tag, "call")) {
        n = mk(p, N_CALLBLOCK, t);
        if (is_op(p, OP_LPAREN))
            parse_signature(p, n);
        n->a = parse_expression(p, true);
        if (n->a->kind != N_CALL)
            pfail(p, t, "%s", "expected call");
        expect_block_end(p);
        static const char *const ends[] = {"endcall", NULL};
        int ld = p->loop_depth;
        p->loop_depth = 0;
        n->d = parse_body(p, ends, "call");
        p->loop_depth = ld;
        adv(p);
    } else if (!strcmp(tag, "filter")) {
        n = mk(p, N_FILTERBLOCK, t);
        n->b = parse_filter_chain(p);
        expect_block_end(p);
        static const char *const ends[] = {"endfilter", NULL};
        n->d = parse_body(p, ends, "filter");
        adv(p);
    } else if (!strcmp(tag, "with")) {
        n = mk(p, N_WITH, t);
        NVec v = {0}, d = {0};
        while (cur(p)->kind != T_BLOCK_END) {
            if (v.n)
                expect_op(p, OP_COMMA, ",");
            TNode *target = parse_assign_target(p, NULL, false);
            expect_op(p, OP_ASSIGN, "=");
            nv_push(p, &v, target, NULL);
            nv_push(p, &d, parse_expression(p, true), NULL);
        }
        n->args = v.v;
        n->defs = d.v;
        n->n_args = v.n;
        expect_block_end(p);
        static const char *const ends[] = {"endwith", NULL};
        n->d = parse_body(p, ends, "with");
        adv(p);
    } else if (!strcmp(tag, "generation")) {
        /* transformers' AssistantTracker: marks assistant text; renders its body */
        expect_block_end(p);
        static const char *const ends[] = {"endgeneration", NULL};
        n = parse_body(p, ends, "generation");
        adv(p);
    } else if (!strcmp(tag, "break") || !strcmp(tag, "continue")) {
        if (p->loop_depth == 0)
            pfail(p, t, "'%s' outside of a loop", tag);
        n = mk(p, tag[0] == 'b' ? N_BREAK : N_CONTINUE, t);
    } else {
        pfail(p, t, "Encountered unknown tag '%s'", tag);
    }
    expect_block_end(p);
    return n;
}

/* Statements up to one of 'ends' (NULL: end of template). Leaves the
 * parser at the end tag's name. */
static TNode *parse_body(Parser *p, const char *const *ends, const char *block) {
    enter(p);
    if (block) {
        p->open[p->n_open++] = block;
    }
    const TTok *start = cur(p);
    NVec v = {0};
    for (;;) {
        const TTok *t = cur(p);
        if (t->kind == T_EOF) {
            if (ends)
                pfail(p, t, "unexpected end of template, expected '%s'", ends[0]);
            break;
        }
        if (t->kind == T_TEXT) {
            TNode *n = mk(p, N_TEXT, t);
            n->lit = tv_lit(p->a, p->f, t->s, t->n, 1);
            nv_push(p, &v, n, NULL);
            adv(p);
        } else if (t->kind == T_VAR_BEGIN) {
            adv(p);
            TNode *n = mk(p, N_OUTPUT, t);
            n->a = parse_tuple(p, false, true, NULL, false);
            if (cur(p)->kind != T_VAR_END)
                pfail(p, cur(p), "expected end of print statement, got %s", tok_desc(cur(p)));
            adv(p);
            nv_push(p, &v, n, NULL);
        } else if (t->kind == T_BLOCK_BEGIN) {
            adv(p);
            const TTok *name = cur(p);
            if (name->kind == T_NAME && ends) {
                bool found = false;
                for (const char *const *e = ends; *e; e++)
                    if (!strcmp(name->s, *e))
                        found = true;
                if (found)
                    break;
            }
            if (name->kind == T_NAME && (!strncmp(name->s, "end", 3) || !strcmp(name->s, "else") ||
                                         !strcmp(name->s, "elif")))
                pfail(p, name, "unexpected '%s'", name->s);
            nv_push(p, &v, parse_statement(p), NULL);
        } else {
            unexpected(p);
        }
    }
    TNode *n = mk(p, N_BODY, start);
    n->args = v.v;
    n->n_args = v.n;
    if (block)
        p->n_open--;
    leave(p);
    return n;
}

TNode *tmpl_parse_tokens(const TTok *toks, size_t n_toks, TArena *a, TFail *f) {
    Parser p = {.t = toks, .n = n_toks, .a = a, .f = f};
    return parse_body(&p, NULL, NULL);
}
