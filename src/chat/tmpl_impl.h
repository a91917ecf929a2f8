/* tmpl_impl.h - internals of the template engine shared by tmpl_*.c and
 * template.c. Not a public header: only src/chat/tmpl_*.c include it.
 *
 * Memory: a template's AST and a render's values all live in arenas (TArena)
 * that are freed at once, so nothing is reference counted and errors unwind
 * with longjmp (TFail) from anywhere below tmpl_parse()/tmpl_render(); the
 * only malloc'd memory outside an arena is the arena chunks themselves.
 *
 * Values are small tagged structs passed by value. Strings are immutable
 * (bytes, per-byte mask, length) views into arena memory, so slicing and
 * stripping copy nothing. The mask byte is 1 for template text, 0 for data. */
#ifndef CGPT_CHAT_TMPL_IMPL_H
#define CGPT_CHAT_TMPL_IMPL_H

#include <jansson.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chat/template.h"
#include "core/err.h"

#define TMPL_MAX_PARSE_DEPTH 128            /* nesting of blocks and AST depth of an expression */
#define TMPL_MAX_VALUE_DEPTH 256            /* nesting of lists/dicts (vars, repr, tojson, ==) */
#define TMPL_MAX_MEMORY ((size_t)256 << 20) /* arena bytes one render may allocate */
#define TMPL_ARENA_CHUNK ((size_t)64 << 10)

/* ---- arena + error unwinding ---- */

typedef struct TChunk {
    struct TChunk *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
} TChunk;

typedef struct {
    TChunk *head;
    size_t total; /* bytes of chunks allocated */
    size_t limit;
} TArena;

/* Where errors go: a jump target and the Err to fill. */
typedef struct {
    jmp_buf jb;
    Err *err;
} TFail;

void *ta_alloc(TArena *a, size_t n, TFail *f);
void ta_free(TArena *a);
_Noreturn void tfail(TFail *f, Status s, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* ---- values ---- */

typedef enum {
    V_UNDEF,
    V_NONE,
    V_BOOL,
    V_INT,
    V_FLOAT,
    V_STR,
    V_LIST,
    V_DICT,
    V_NS,     /* namespace(): a dict whose attributes can be set */
    V_MACRO,  /* macro or caller */
    V_FUNC,   /* global function (range, namespace, raise_exception, ...) */
    V_METHOD, /* bound method: receiver + name */
    V_LOOP,   /* the loop variable */
} VKind;

typedef struct TList TList;
typedef struct TDict TDict;
typedef struct TMacro TMacro;
typedef struct TMethod TMethod;
typedef struct TLoop TLoop;

typedef struct {
    const char *b;
    const uint8_t *m; /* per-byte mask, same length */
    size_t n;
} TStr;

typedef struct {
    uint8_t kind; /* VKind */
    uint8_t data; /* scalars: 1 if derived from the variables (output mask 0) */
    union {
        int64_t i; /* V_BOOL, V_INT, V_FUNC (function id) */
        double f;
        TStr s;
        TList *l;
        TDict *d; /* V_DICT, V_NS */
        TMacro *mac;
        TMethod *meth;
        TLoop *loop;
        const char *undef_name; /* V_UNDEF: what was undefined, for messages (may be NULL) */
    } u;
} TValue;

struct TList {
    size_t n, cap;
    TValue *v;
    bool tuple; /* prints as (a, b) */
    bool gen;   /* a generator/iterator in Jinja: no len(), no indexing, always truthy */
};

struct TDict {
    size_t n, cap;
    TValue *k, *v; /* insertion order */
};

/* ---- AST ---- */

typedef enum {
    /* expressions */
    N_CONST,
    N_NAME,
    N_LIST,
    N_TUPLE,
    N_DICT, /* args: k0 v0 k1 v1 ... */
    N_GETATTR,
    N_GETITEM,
    N_SLICE, /* a = start, b = stop, c = step (each may be NULL) */
    N_CALL,
    N_FILTER, /* a = operand (NULL: the filter block's body), name, args */
    N_TEST,   /* a = operand, name, args, op = negated */
    N_UNARY,  /* op: '-', '+', 'n' (not) */
    N_BINARY, /* op: TOK_* operator */
    N_AND,
    N_OR,
    N_COND,    /* a = cond, b = then, c = else (may be NULL) */
    N_COMPARE, /* a = left, args = rights, ops in cmp_ops */
    N_CONCAT,  /* args joined with ~ */
    /* statements */
    N_BODY, /* args = statements */
    N_TEXT, /* lit = the text */
    N_OUTPUT,
    N_IF,          /* a = cond, b = body, c = else (body or another N_IF) */
    N_FOR,         /* a = target, b = iter, c = filter cond, d = body, e = else */
    N_SET,         /* a = target, b = value */
    N_SETBLOCK,    /* a = target, d = body, b = filter (N_FILTER chain with NULL operand) or NULL */
    N_MACRO,       /* name, args = params, defs = defaults (NULL for none), d = body */
    N_CALLBLOCK,   /* a = call expr, args = params, defs, d = body */
    N_FILTERBLOCK, /* b = filter chain, d = body */
    N_WITH,        /* args = targets, defs = values, d = body */
    N_BREAK,
    N_CONTINUE,
} NKind;

typedef struct TNode TNode;
struct TNode {
    uint8_t kind;
    uint8_t op;
    uint16_t depth; /* AST depth of an expression, bounded at parse time */
    int line, col;
    TNode *a, *b, *c, *d, *e;
    TNode **args;
    TNode **defs;     /* N_MACRO/N_CALLBLOCK defaults, N_WITH values */
    const char **kw;  /* N_CALL/N_FILTER/N_TEST: keyword name per arg or NULL */
    uint8_t *cmp_ops; /* N_COMPARE */
    size_t n_args;
    const char *name; /* N_NAME, N_GETATTR, N_FILTER, N_TEST, N_MACRO (NUL-terminated) */
    TValue lit;       /* N_CONST, N_TEXT */
};

/* Operators (tokens). */
enum {
    OP_NONE,
    OP_ADD,
    OP_SUB,
    OP_DIV,
    OP_FLOORDIV,
    OP_MUL,
    OP_MOD,
    OP_POW,
    OP_TILDE,
    OP_LBRACKET,
    OP_RBRACKET,
    OP_LPAREN,
    OP_RPAREN,
    OP_LBRACE,
    OP_RBRACE,
    OP_EQ,
    OP_NE,
    OP_GT,
    OP_GTEQ,
    OP_LT,
    OP_LTEQ,
    OP_ASSIGN,
    OP_DOT,
    OP_COLON,
    OP_PIPE,
    OP_COMMA,
    OP_SEMICOLON,
    OP_IN,    /* compare only */
    OP_NOTIN, /* compare only */
};

/* ---- tokens ---- */

typedef enum {
    T_TEXT,
    T_VAR_BEGIN,
    T_VAR_END,
    T_BLOCK_BEGIN,
    T_BLOCK_END,
    T_NAME,
    T_STRING,
    T_INT,
    T_FLOAT,
    T_OP,
    T_EOF,
} TokKind;

typedef struct {
    uint8_t kind;
    uint8_t op;
    int line, col;
    const char *s; /* T_TEXT, T_NAME, T_STRING: arena bytes (NUL-terminated) */
    size_t n;
    int64_t i;
    double f;
} TTok;

/* Lex normalized source into tokens (arena-allocated). */
void tmpl_lex(const char *src, size_t len, TArena *a, TFail *f, TTok **toks, size_t *n_toks);

/* Parse tokens into the template body. */
TNode *tmpl_parse_tokens(const TTok *toks, size_t n_toks, TArena *a, TFail *f);

/* Known filter and test names (checked at parse time, as Jinja2 does at
 * compile time). */
bool tmpl_filter_known(const char *name);
bool tmpl_test_known(const char *name);

struct Template {
    TArena arena;
    TNode *body;
};

/* ---- value helpers (tmpl_value.c) ---- */

/* Growable byte+mask buffer in an arena. */
typedef struct {
    char *b;
    uint8_t *m;
    size_t n, cap;
    size_t limit; /* max bytes; exceeding it fails with STATUS_LIMIT */
    TArena *a;
    TFail *f;
} TBuf;

void tb_init(TBuf *b, TArena *a, TFail *f, size_t limit);
void tb_put(TBuf *b, const char *s, size_t n, uint8_t mask);
void tb_puts(TBuf *b, const char *s, uint8_t mask);
void tb_put_str(TBuf *b, TStr s);
TStr tb_str(const TBuf *b);

/* Render the template's body into 'out' (tmpl_eval.c). */
void tmpl_eval_render(const Template *t, const json_t *vars, const json_t *trusted,
                      const TmplLimits *lim, TArena *a, TFail *f, TBuf *out);

TValue tv_undef(const char *name);
TValue tv_none(void);
TValue tv_bool(bool b);
TValue tv_int(int64_t i);
TValue tv_float(double f);
TValue tv_str(TStr s);
TValue tv_lit(TArena *a, TFail *f, const char *s, size_t n, uint8_t mask);
TList *tl_new(TArena *a, TFail *f, size_t cap);
void tl_push(TArena *a, TFail *f, TList *l, TValue v);
TDict *td_new(TArena *a, TFail *f, size_t cap);
/* Set key (replacing an equal key's value in place). */
void td_set(TArena *a, TFail *f, TDict *d, TValue k, TValue v);
/* Index of a string key or -1. */
long td_find_str(const TDict *d, const char *k, size_t n);

bool tv_is_strkey(TValue v, const char *s);

/* Python-style formatting into a buffer. 'depth' bounds recursion. */
void tv_write_str(TBuf *b, TValue v, int depth);  /* str(v) */
void tv_write_repr(TBuf *b, TValue v, int depth); /* repr(v) */
void tv_write_float(TBuf *b, double f, uint8_t mask, bool json);

typedef struct {
    bool ensure_ascii;
    const char *indent; /* NULL: none */
    size_t indent_n;
    TStr item_sep, key_sep;
    bool sort_keys;
} TJsonOpts;
void tv_write_json(TBuf *b, TValue v, const TJsonOpts *o, int level, int depth);

/* Convert a JSON value (borrowed) into a value with data masks. */
TValue tv_from_json(TArena *a, TFail *f, const json_t *j, int depth);
/* As tv_from_json; with 'trusted' the values count as template text (output
 * mask 1) instead of data. */
TValue tv_from_json_as(TArena *a, TFail *f, const json_t *j, int depth, uint8_t trusted);

/* UTF-8 helpers: length of the char at s[i] (1 for invalid bytes), and the
 * code point. */
size_t tu_len(const char *s, size_t n, size_t i);
uint32_t tu_cp(const char *s, size_t n, size_t i, size_t *len);
size_t tu_count(const char *s, size_t n);
bool tu_isspace(uint32_t cp);
/* Bytes of whitespace ending at s[n] (Python str.isspace chars). */
size_t tu_rspace(const char *s, size_t n);
size_t tu_lspace(const char *s, size_t n);

#endif
