/* tmpl_lex.c - Jinja2 lexer with transformers' settings: trim_blocks and
 * lstrip_blocks on, '-' / '+' whitespace control, {% raw %} blocks,
 * comments, and bracket balancing inside tags (so '}}' closes a dict
 * literal before it closes the tag, as in Jinja2).
 *
 * The source must already have its newlines normalized to '\n' and one
 * trailing newline removed (template.c does that, as Jinja2 does). Tokens
 * carry line and 1-based column; strings are decoded (Python escapes). */
#include <stdlib.h>
#include <string.h>

#include "chat/tmpl_impl.h"

#define LEX_MAX_BRACKETS 1024

typedef struct {
    const char *s;
    size_t n;
    size_t pos;
    /* line/column tracking: lines counted up to 'lc_pos' */
    size_t lc_pos;
    int line;
    int col; /* code points since the line start, at lc_pos */
    TArena *a;
    TFail *f;
    TTok *toks;
    size_t n_toks, cap;
} Lexer;

/* Line and 1-based column (in code points) of 'pos'; positions only move
 * forward, so this is linear over the whole source. */
static void lc_at(Lexer *L, size_t pos, int *line, int *col) {
    while (L->lc_pos < pos) {
        unsigned char ch = (unsigned char)L->s[L->lc_pos];
        if (ch == '\n') {
            L->line++;
            L->col = 0;
        } else if ((ch & 0xc0) != 0x80) {
            L->col++;
        }
        L->lc_pos++;
    }
    *line = L->line;
    *col = L->col + 1;
}

static _Noreturn void lex_fail(Lexer *L, size_t pos, const char *msg) {
    int line, col;
    lc_at(L, pos, &line, &col);
    tfail(L->f, STATUS_INVALID, line, col, "%s", msg);
}

static TTok *push(Lexer *L, TokKind k, size_t pos) {
    if (L->n_toks == L->cap) {
        size_t cap = L->cap ? L->cap * 2 : 256;
        TTok *nt = ta_alloc(L->a, cap * sizeof *nt, L->f);
        if (L->n_toks)
            memcpy(nt, L->toks, L->n_toks * sizeof *nt);
        L->toks = nt;
        L->cap = cap;
    }
    TTok *t = &L->toks[L->n_toks++];
    memset(t, 0, sizeof *t);
    t->kind = (uint8_t)k;
    lc_at(L, pos, &t->line, &t->col);
    return t;
}

static void push_text(Lexer *L, size_t start, size_t end) {
    if (end <= start)
        return;
    TTok *t = push(L, T_TEXT, start);
    t->s = L->s + start;
    t->n = end - start;
}

static bool at(const Lexer *L, size_t pos, const char *lit) {
    size_t k = strlen(lit);
    return pos <= L->n && L->n - pos >= k && memcmp(L->s + pos, lit, k) == 0;
}

static size_t skip_ws(const Lexer *L, size_t pos) {
    return pos + tu_lspace(L->s + pos, L->n - pos);
}

/* The text before a tag, after whitespace control: '-' strips all trailing
 * whitespace; otherwise for blocks and comments (lstrip_blocks) spaces
 * between the last newline (or a line start) and the tag go. */
static size_t strip_text(const Lexer *L, size_t start, size_t end, char sign, bool is_var,
                         bool line_starting) {
    if (sign == '-')
        return end - tu_rspace(L->s + start, end - start);
    if (sign == '+' || is_var)
        return end;
    size_t l_pos = end;
    while (l_pos > start && L->s[l_pos - 1] != '\n')
        l_pos--;
    if (l_pos == start && !line_starting)
        return end;
    if (l_pos < end && tu_lspace(L->s + l_pos, end - l_pos) == end - l_pos)
        return l_pos;
    return end;
}

/* Block end at 'pos' ("%}", "-%}", "+%}"); returns the position after it
 * (whitespace control and trim_blocks applied) or 0 if none. */
static size_t block_end(const Lexer *L, size_t pos) {
    if (at(L, pos, "+%}"))
        return pos + 3;
    if (at(L, pos, "-%}"))
        return skip_ws(L, pos + 3);
    if (at(L, pos, "%}")) {
        pos += 2;
        if (pos < L->n && L->s[pos] == '\n')
            pos++;
        return pos;
    }
    return 0;
}

static uint32_t hexval(const char *s, size_t k, bool *ok) {
    uint32_t v = 0;
    for (size_t i = 0; i < k; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0) {
            *ok = false;
            return 0;
        }
        v = v * 16 + (uint32_t)d;
    }
    *ok = true;
    return v;
}

static size_t put_utf8(char *o, uint32_t cp) {
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xc0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    o[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* A quoted string at L->pos (Python escapes, as Jinja2's unicode-escape). */
static void lex_string(Lexer *L) {
    size_t start = L->pos;
    char q = L->s[start];
    size_t i = start + 1;
    while (i < L->n && L->s[i] != q) {
        if (L->s[i] == '\\')
            i++;
        i++;
    }
    if (i >= L->n)
        lex_fail(L, start, "unexpected char '\"' or '\\'': unterminated string");
    size_t end = i; /* closing quote */
    /* decoded text is never longer than the source */
    char *o = ta_alloc(L->a, end - start + 1, L->f);
    size_t n = 0;
    for (size_t k = start + 1; k < end;) {
        char c = L->s[k];
        if (c != '\\') {
            o[n++] = c;
            k++;
            continue;
        }
        char e = L->s[k + 1];
        k += 2;
        bool ok = true;
        uint32_t cp = 0;
        switch (e) {
        case '\n':
            break;
        case '\\':
        case '\'':
        case '"':
            o[n++] = e;
            break;
        case 'a':
            o[n++] = '\a';
            break;
        case 'b':
            o[n++] = '\b';
            break;
        case 'f':
            o[n++] = '\f';
            break;
        case 'n':
            o[n++] = '\n';
            break;
        case 'r':
            o[n++] = '\r';
            break;
        case 't':
            o[n++] = '\t';
            break;
        case 'v':
            o[n++] = '\v';
            break;
        case 'x':
        case 'u':
        case 'U': {
            size_t k2 = e == 'x' ? 2 : e == 'u' ? 4 : 8;
            if (end - k < k2)
                ok = false;
            else
                cp = hexval(L->s + k, k2, &ok);
            if (!ok || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
                lex_fail(L, k - 2, "invalid escape in string literal");
            k += k2;
            n += put_utf8(o + n, cp);
            break;
        }
        default:
            if (e >= '0' && e <= '7') {
                cp = (uint32_t)(e - '0');
                for (int d = 0; d < 2 && k < end && L->s[k] >= '0' && L->s[k] <= '7'; d++)
                    cp = cp * 8 + (uint32_t)(L->s[k++] - '0');
                n += put_utf8(o + n, cp);
            } else if (e == 'N') {
                lex_fail(L, k - 2, "\\N{...} escapes are not supported");
            } else { /* unknown escapes stay as written */
                o[n++] = '\\';
                k--;
            }
        }
    }
    o[n] = '\0';
    TTok *t = push(L, T_STRING, start);
    t->s = o;
    t->n = n;
    L->pos = end + 1;
}

static bool isdig(char c) { return c >= '0' && c <= '9'; }

/* digits with single '_' separators: (\d+_)*\d+ ; returns end or start if none */
static size_t digits(const Lexer *L, size_t p) {
    size_t s = p;
    while (p < L->n && isdig(L->s[p])) {
        p++;
        if (p + 1 < L->n && L->s[p] == '_' && isdig(L->s[p + 1]))
            p++;
    }
    return p == s ? s : p;
}

static void number_text(const Lexer *L, size_t s, size_t e, char *buf, size_t cap) {
    size_t o = 0;
    for (size_t i = s; i < e && o + 1 < cap; i++)
        if (L->s[i] != '_')
            buf[o++] = L->s[i];
    buf[o] = '\0';
}

static bool lex_number(Lexer *L) {
    size_t p = L->pos;
    if (!isdig(L->s[p]))
        return false;
    /* float: (\d+_)*\d+ ( (\.digits)? e[+-]?digits | \.digits ), not right after '.' */
    bool after_dot = p > 0 && L->s[p - 1] == '.';
    size_t e1 = digits(L, p);
    if (!after_dot) {
        size_t q = e1;
        bool frac = false, ok = false;
        if (q + 1 < L->n && L->s[q] == '.' && isdig(L->s[q + 1])) {
            q = digits(L, q + 1);
            frac = true;
        }
        if (q < L->n && (L->s[q] == 'e' || L->s[q] == 'E')) {
            size_t r = q + 1;
            if (r < L->n && (L->s[r] == '+' || L->s[r] == '-'))
                r++;
            if (r < L->n && isdig(L->s[r])) {
                q = digits(L, r);
                ok = true;
            }
        }
        if (frac || ok) {
            if (!ok && frac) {
                /* fraction without exponent: q is already past it */
            }
            char buf[128];
            number_text(L, p, q, buf, sizeof buf);
            TTok *t = push(L, T_FLOAT, p);
            t->f = strtod(buf, NULL);
            L->pos = q;
            return true;
        }
    }
    /* integer */
    int64_t v = 0;
    size_t q;
    int base = 10;
    if (L->s[p] == '0' && p + 1 < L->n && strchr("bBoOxX", L->s[p + 1]) && L->s[p + 1]) {
        char b = (char)(L->s[p + 1] | 0x20);
        base = b == 'b' ? 2 : b == 'o' ? 8 : 16;
        q = p + 2;
    } else {
        q = p;
    }
    size_t ds = q;
    bool overflow = false;
    for (;;) {
        if (q < L->n && L->s[q] == '_' && q > ds && q + 1 < L->n)
            q++;
        if (q >= L->n)
            break;
        char c = (char)(L->s[q] | (base == 16 ? 0x20 : 0));
        int d = isdig(L->s[q])                         ? L->s[q] - '0'
                : (base == 16 && c >= 'a' && c <= 'f') ? c - 'a' + 10
                                                       : -1;
        if (d < 0 || d >= base) {
            if (q > ds && L->s[q - 1] == '_')
                q--;
            break;
        }
        if (base == 10 && q > ds && v == 0 && L->s[ds] == '0' && d != 0)
            break; /* 0(_?0)*: "01" lexes as 0 then 1 */
        if (__builtin_mul_overflow(v, base, &v) || __builtin_add_overflow(v, d, &v))
            overflow = true;
        q++;
    }
    if (q == ds) {
        if (base != 10)
            lex_fail(L, p, "invalid integer literal");
        return false;
    }
    if (overflow)
        lex_fail(L, p, "integer literal too large (limit 64 bits)");
    TTok *t = push(L, T_INT, p);
    t->i = v;
    L->pos = q;
    return true;
}

static const struct {
    const char *s;
    uint8_t op;
} OPS[] = {
    {"//", OP_FLOORDIV}, {"**", OP_POW},   {"==", OP_EQ},      {"!=", OP_NE},      {">=", OP_GTEQ},
    {"<=", OP_LTEQ},     {"+", OP_ADD},    {"-", OP_SUB},      {"/", OP_DIV},      {"*", OP_MUL},
    {"%", OP_MOD},       {"~", OP_TILDE},  {"[", OP_LBRACKET}, {"]", OP_RBRACKET}, {"(", OP_LPAREN},
    {")", OP_RPAREN},    {"{", OP_LBRACE}, {"}", OP_RBRACE},   {">", OP_GT},       {"<", OP_LT},
    {"=", OP_ASSIGN},    {".", OP_DOT},    {":", OP_COLON},    {"|", OP_PIPE},     {",", OP_COMMA},
    {";", OP_SEMICOLON},
};

/* Tokens of one {% %} or {{ }} tag, starting after the opener. Returns
 * whether the tag's end consumed a trailing newline (line_starting). */
static bool lex_tag(Lexer *L, bool is_block) {
    char stack[LEX_MAX_BRACKETS];
    size_t depth = 0;
    for (;;) {
        L->pos = skip_ws(L, L->pos);
        if (L->pos >= L->n)
            lex_fail(L, L->pos,
                     is_block ? "unexpected end of template, expected '%}'"
                              : "unexpected end of template, expected '}}'");
        size_t p = L->pos;
        if (depth == 0) {
            size_t e = 0;
            if (is_block) {
                e = block_end(L, p);
            } else if (at(L, p, "-}}")) {
                e = skip_ws(L, p + 3);
            } else if (at(L, p, "}}")) {
                e = p + 2;
            }
            if (e) {
                push(L, is_block ? T_BLOCK_END : T_VAR_END, p);
                L->pos = e;
                return L->s[e - 1] == '\n';
            }
        }
        char c = L->s[p];
        if (c == '\'' || c == '"') {
            lex_string(L);
            continue;
        }
        if (lex_number(L))
            continue;
        if (c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
            size_t q = p;
            while (q < L->n && (L->s[q] == '_' || (L->s[q] >= 'a' && L->s[q] <= 'z') ||
                                (L->s[q] >= 'A' && L->s[q] <= 'Z') || isdig(L->s[q])))
                q++;
            char *name = ta_alloc(L->a, q - p + 1, L->f);
            memcpy(name, L->s + p, q - p);
            name[q - p] = '\0';
            TTok *t = push(L, T_NAME, p);
            t->s = name;
            t->n = q - p;
            L->pos = q;
            continue;
        }
        size_t k;
        for (k = 0; k < sizeof OPS / sizeof OPS[0]; k++)
            if (at(L, p, OPS[k].s))
                break;
        if (k == sizeof OPS / sizeof OPS[0])
            lex_fail(L, p, "unexpected char");
        uint8_t op = OPS[k].op;
        if (op == OP_LPAREN || op == OP_LBRACKET || op == OP_LBRACE) {
            if (depth == LEX_MAX_BRACKETS)
                lex_fail(L, p, "brackets nested too deeply");
            stack[depth++] = op == OP_LPAREN ? ')' : op == OP_LBRACKET ? ']' : '}';
        } else if (op == OP_RPAREN || op == OP_RBRACKET || op == OP_RBRACE) {
            if (depth == 0)
                lex_fail(L, p, "unexpected closing bracket");
            if (stack[--depth] != c)
                lex_fail(L, p, "mismatched closing bracket");
        }
        TTok *t = push(L, T_OP, p);
        t->op = op;
        L->pos = p + strlen(OPS[k].s);
    }
}

/* "{% raw %}" (with optional - / + and spaces) at p? Returns its end or 0. */
static size_t raw_begin(const Lexer *L, size_t p, const char *word) {
    if (!at(L, p, "{%"))
        return 0;
    size_t q = p + 2;
    if (q < L->n && (L->s[q] == '-' || L->s[q] == '+'))
        q++;
    q = skip_ws(L, q);
    if (!at(L, q, word))
        return 0;
    q = skip_ws(L, q + strlen(word));
    return q;
}

void tmpl_lex(const char *src, size_t len, TArena *a, TFail *f, TTok **toks, size_t *n_toks) {
    Lexer L = {.s = src, .n = len, .line = 1, .a = a, .f = f};
    bool line_starting = true;
    while (L.pos < L.n) {
        size_t p = L.pos;
        while (p + 1 < L.n &&
               !(L.s[p] == '{' && (L.s[p + 1] == '{' || L.s[p + 1] == '%' || L.s[p + 1] == '#')))
            p++;
        if (p + 1 >= L.n) {
            push_text(&L, L.pos, L.n);
            break;
        }
        char kind = L.s[p + 1];
        char sign = p + 2 < L.n && (L.s[p + 2] == '-' || L.s[p + 2] == '+') ? L.s[p + 2] : 0;
        size_t text_end = strip_text(&L, L.pos, p, sign, kind == '{', line_starting);
        push_text(&L, L.pos, text_end);
        size_t body = p + 2 + (sign != 0);

        if (kind == '#') {
            size_t q = body;
            while (q + 1 < L.n && !(L.s[q] == '#' && L.s[q + 1] == '}'))
                q++;
            if (q + 1 >= L.n)
                lex_fail(&L, p, "Missing end of comment tag");
            size_t e;
            if (q > body && L.s[q - 1] == '-')
                e = skip_ws(&L, q + 2);
            else if (q > body && L.s[q - 1] == '+')
                e = q + 2;
            else
                e = q + 2 + (q + 2 < L.n && L.s[q + 2] == '\n');
            L.pos = e;
            line_starting = L.s[e - 1] == '\n';
            continue;
        }
        size_t r;
        if (kind == '%' && (r = raw_begin(&L, p, "raw")) != 0 &&
            !(r < L.n && (L.s[r] == '_' || isdig(L.s[r]) ||
                          ((L.s[r] | 0x20) >= 'a' && (L.s[r] | 0x20) <= 'z')))) {
            size_t e;
            if (at(&L, r, "-%}"))
                e = skip_ws(&L, r + 3);
            else if (at(&L, r, "%}"))
                e = r + 2;
            else
                lex_fail(&L, r, "expected '%}' after 'raw'");
            bool ls = L.s[e - 1] == '\n';
            /* find {% endraw %} */
            size_t q = e, end_tag = 0, after = 0;
            for (; q + 1 < L.n; q++) {
                size_t w;
                if (L.s[q] == '{' && (w = raw_begin(&L, q, "endraw")) != 0 &&
                    (after = block_end(&L, w)) != 0) {
                    end_tag = q;
                    break;
                }
            }
            if (!after)
                lex_fail(&L, p, "Missing end of raw directive");
            char esign = L.s[end_tag + 2] == '-' || L.s[end_tag + 2] == '+' ? L.s[end_tag + 2] : 0;
            push_text(&L, e, strip_text(&L, e, end_tag, esign, false, ls));
            L.pos = after;
            line_starting = L.s[after - 1] == '\n';
            continue;
        }
        push(&L, kind == '%' ? T_BLOCK_BEGIN : T_VAR_BEGIN, p);
        L.pos = body;
        line_starting = lex_tag(&L, kind == '%');
    }
    push(&L, T_EOF, L.n);
    *toks = L.toks;
    *n_toks = L.n_toks;
}
