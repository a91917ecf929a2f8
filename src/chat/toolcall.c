/* toolcall.c - streamed tool-call parsing (see toolcall.h).
 *
 * The input not yet consumed sits in p->in; run() hands it to step() until
 * a step needs more bytes. Every decision a step makes holds for any
 * continuation of the bytes it saw (otherwise it waits), which is what
 * makes the events independent of how the text was split. Two kinds of
 * states:
 *   - text states (content / reasoning, a harmony body, Python code) scan
 *     for tags and hold a tail that could still become one;
 *   - structure states (JSON call objects, the formats' wrappers) take one
 *     byte at a time; while no call has begun every byte is also kept in
 *     p->held, the literal text released as content if the structure
 *     breaks. A byte that breaks a structure is not consumed: it is scanned
 *     again as content (fail_at), so a later well-formed call is found.
 * Events of one kind are gathered in p->run and handed out when the kind
 * changes or a push ends, so the callback sees few, large fragments.
 *
 * Not here: rendering calls into a prompt (the templates), JSON Schema. */
#include "chat/toolcall.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "core/utf8.h"

/* ---- growable bytes ---- */

typedef struct {
    char *p;
    size_t n, cap;
} Buf;

static bool buf_put(Buf *b, const void *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q)
            return false;
        b->p = q;
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
    return true;
}

static void buf_free(Buf *b) {
    free(b->p);
    memset(b, 0, sizeof *b);
}

static bool is_ws(unsigned c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* ---- JSON value scanner: validates one value byte by byte ---- */

enum { JR_MORE, JR_DONE, JR_PREV, JR_ERR }; /* JR_PREV: done before this byte */
enum {
    J_VALUE,
    J_AFTER,
    J_KEY_OR_END,
    J_KEY,
    J_COLON,
    J_VALUE_OR_END,
    J_STR,
    J_ESC,
    J_HEX,
    J_NUM,
    J_LIT,
    J_DONE
};
enum { N_MINUS, N_ZERO, N_INT, N_DOT, N_FRAC, N_E, N_ESIGN, N_EXP };

typedef struct {
    char stack[TOOLCALL_MAX_DEPTH];
    int depth;
    uint8_t st, sub;
    bool key;
    const char *lit;
} JScan;

static void js_init(JScan *j) { memset(j, 0, sizeof *j); }

static int js_value_done(JScan *j) {
    if (j->depth == 0) {
        j->st = J_DONE;
        return JR_DONE;
    }
    j->st = J_AFTER;
    return JR_MORE;
}

static int js_start(JScan *j, unsigned c) {
    switch (c) {
    case '{':
    case '[':
        if (j->depth >= TOOLCALL_MAX_DEPTH)
            return JR_ERR;
        j->stack[j->depth++] = (char)c;
        j->st = c == '{' ? J_KEY_OR_END : J_VALUE_OR_END;
        return JR_MORE;
    case '"':
        j->st = J_STR;
        j->key = false;
        return JR_MORE;
    case '-':
        j->st = J_NUM;
        j->sub = N_MINUS;
        return JR_MORE;
    case '0':
        j->st = J_NUM;
        j->sub = N_ZERO;
        return JR_MORE;
    case 't': j->lit = "true"; break;
    case 'f': j->lit = "false"; break;
    case 'n': j->lit = "null"; break;
    default:
        if (c >= '1' && c <= '9') {
            j->st = J_NUM;
            j->sub = N_INT;
            return JR_MORE;
        }
        return JR_ERR;
    }
    j->st = J_LIT;
    j->sub = 1;
    return JR_MORE;
}

static int js_close(JScan *j, unsigned c) {
    char open = c == '}' ? '{' : '[';
    if (j->depth == 0 || j->stack[j->depth - 1] != open)
        return JR_ERR;
    j->depth--;
    return js_value_done(j);
}

static bool is_digit(unsigned c) { return c >= '0' && c <= '9'; }
static bool is_hex(unsigned c) {
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* The next state of a number after c, or -1 when c cannot continue it. */
static int num_next(int sub, unsigned c) {
    switch (sub) {
    case N_MINUS: return c == '0' ? N_ZERO : is_digit(c) ? N_INT : -1;
    case N_ZERO: return c == '.' ? N_DOT : (c == 'e' || c == 'E') ? N_E : -1;
    case N_INT: return is_digit(c) ? N_INT : c == '.' ? N_DOT : (c == 'e' || c == 'E') ? N_E : -1;
    case N_DOT: return is_digit(c) ? N_FRAC : -1;
    case N_FRAC: return is_digit(c) ? N_FRAC : (c == 'e' || c == 'E') ? N_E : -1;
    case N_E: return (c == '+' || c == '-') ? N_ESIGN : is_digit(c) ? N_EXP : -1;
    case N_ESIGN: return is_digit(c) ? N_EXP : -1;
    case N_EXP: return is_digit(c) ? N_EXP : -1;
    }
    return -1;
}

static int js_feed(JScan *j, unsigned c) {
    switch (j->st) {
    case J_VALUE: return is_ws(c) ? JR_MORE : js_start(j, c);
    case J_VALUE_OR_END:
        if (is_ws(c))
            return JR_MORE;
        return c == ']' ? js_close(j, c) : js_start(j, c);
    case J_KEY_OR_END:
        if (c == '}')
            return js_close(j, c);
        /* fall through */
    case J_KEY:
        if (is_ws(c))
            return JR_MORE;
        if (c != '"')
            return JR_ERR;
        j->st = J_STR;
        j->key = true;
        return JR_MORE;
    case J_COLON:
        if (is_ws(c))
            return JR_MORE;
        if (c != ':')
            return JR_ERR;
        j->st = J_VALUE;
        return JR_MORE;
    case J_AFTER:
        if (is_ws(c))
            return JR_MORE;
        if (c == ',') {
            j->st = j->stack[j->depth - 1] == '{' ? J_KEY : J_VALUE;
            return JR_MORE;
        }
        if (c == '}' || c == ']')
            return js_close(j, c);
        return JR_ERR;
    case J_STR:
        if (c == '"') {
            if (j->key) {
                j->st = J_COLON;
                return JR_MORE;
            }
            return js_value_done(j);
        }
        if (c == '\\')
            j->st = J_ESC;
        return c < 0x20 ? JR_ERR : JR_MORE;
    case J_ESC:
        if (c == 'u') {
            j->st = J_HEX;
            j->sub = 0;
            return JR_MORE;
        }
        if (!strchr("\"\\/bfnrt", (int)c) || c == 0)
            return JR_ERR;
        j->st = J_STR;
        return JR_MORE;
    case J_HEX:
        if (!is_hex(c))
            return JR_ERR;
        if (++j->sub == 4)
            j->st = J_STR;
        return JR_MORE;
    case J_NUM: {
        int nx = num_next(j->sub, c);
        if (nx >= 0) {
            j->sub = (uint8_t)nx;
            return JR_MORE;
        }
        if (j->sub == N_MINUS || j->sub == N_DOT || j->sub == N_E || j->sub == N_ESIGN)
            return JR_ERR;
        if (js_value_done(j) == JR_DONE)
            return JR_PREV;
        return js_feed(j, c); /* c belongs to the container */
    }
    case J_LIT:
        if (c != (unsigned char)j->lit[j->sub])
            return JR_ERR;
        if (j->lit[++j->sub] == '\0')
            return js_value_done(j);
        return JR_MORE;
    }
    return JR_ERR;
}

/* ---- JSON string decoder (after the opening quote) ---- */

enum { SD_MORE, SD_END, SD_ERR };

typedef struct {
    uint8_t st; /* 0 text, 1 after '\\', 2 in \uXXXX */
    uint8_t nd; /* hex digits seen */
    uint32_t u;
    uint32_t hi; /* a high surrogate waiting for its low half */
} StrDec;

/* Feeds c; decoded bytes (at most 8) go to o, their count to *no. An
 * unpaired surrogate decodes as U+FFFD. */
static int sd_feed(StrDec *d, unsigned c, char *o, int *no) {
    *no = 0;
    if (d->st == 2) {
        if (!is_hex(c))
            return SD_ERR;
        d->u = d->u << 4 | (uint32_t)(is_digit(c) ? c - '0' : (c | 0x20) - 'a' + 10);
        if (++d->nd < 4)
            return SD_MORE;
        d->st = 0;
        uint32_t u = d->u;
        if (u >= 0xD800 && u <= 0xDBFF) {
            if (d->hi)
                *no += utf8_put(0xFFFD, o);
            d->hi = u;
        } else if (u >= 0xDC00 && u <= 0xDFFF) {
            uint32_t cp = d->hi ? 0x10000 + ((d->hi - 0xD800) << 10) + (u - 0xDC00) : 0xFFFD;
            *no += utf8_put(cp, o);
            d->hi = 0;
        } else {
            if (d->hi)
                *no += utf8_put(0xFFFD, o);
            d->hi = 0;
            *no += utf8_put(u, o + *no);
        }
        return SD_MORE;
    }
    if (d->st == 1) {
        if (c == 'u') {
            d->st = 2;
            d->nd = 0;
            d->u = 0;
            return SD_MORE;
        }
        static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
        const char *at = c ? strchr(from, (int)c) : NULL;
        if (!at)
            return SD_ERR;
        c = (unsigned char)to[at - from];
        d->st = 0;
    } else if (c == '\\') {
        d->st = 1;
        return SD_MORE;
    } else if (c == '"' || c < 0x20) {
        if (c < 0x20)
            return SD_ERR;
        if (d->hi)
            *no += utf8_put(0xFFFD, o);
        d->hi = 0;
        return SD_END;
    }
    if (d->hi)
        *no += utf8_put(0xFFFD, o);
    d->hi = 0;
    o[(*no)++] = (char)c;
    return SD_MORE;
}

/* ---- the parser ---- */

enum {
    S_TEXT,     /* content or reasoning, scanning for tags */
    S_OBJ,      /* a call object {"name": ..., "arguments": ...} */
    S_LIT,      /* matching p->lit, then p->lit_next */
    S_HERMES0,  /* after <tool_call>: ws, '{' */
    S_HERMES1,  /* after the object: ws, "</tool_call>" */
    S_L3_AFTER, /* after an object: ws, ';' */
    S_L3_NEXT,  /* after ';': ws, '{' */
    S_PY_TAG,   /* after <|python_tag|>: ws, then JSON or a builtin call */
    S_PY_CALL,  /* name.call(k=v, ...) */
    S_PY_CODE,  /* Python code: the rest of the text */
    S_MI_OPEN,  /* after [TOOL_CALLS] */
    S_MI_ARR,   /* after '[': ws, '{' or ']' */
    S_MI_AFTER, /* after an array item: ws, ',' or ']' */
    S_MI_NEXT,  /* after ',': ws, '{' */
    S_MI_NAME,  /* name of [TOOL_CALLS]name[ARGS] */
    S_MI_ARGS0, /* after [ARGS]: ws, '{' */
    S_MI_ARGS,  /* the arguments value */
    S_G_KEY0,   /* generic: after '{': ws, '"' */
    S_G_KEY,    /* the first key */
    S_G_COLON,  /* ws, ':' */
    S_G_VAL,    /* ws, '[' (tool_calls) or '"' (response) */
    S_G_ARR,    /* after '[': ws, '{' or ']' */
    S_G_AFTER,  /* after an item: ws, ',' or ']' */
    S_G_NEXT,   /* after ',': ws, '{' */
    S_G_END,    /* ws, '}' */
    S_G_RESP,   /* the response string */
    S_H_HEAD,   /* harmony: a message header up to <|message|> */
    S_H_BODY,   /* harmony: a message body */
};

/* What follows a call object. */
enum { AFTER_HERMES, AFTER_L3, AFTER_MI_ARR, AFTER_MI_ONE, AFTER_GENERIC };

/* The call object's own states. */
enum {
    OB_OPEN,
    OB_K0,
    OB_K1,
    OB_KEY,
    OB_KEY_ESC,
    OB_COLON,
    OB_VAL,
    OB_NAME,
    OB_ARGS,
    OB_ARGS_STR,
    OB_OTHER,
    OB_NEXT
};
enum { V_NAME, V_ARGS, V_OTHER };

/* Builtin call `name.call(k=v, ...)` states. */
enum {
    PY_NAME,
    PY_DOTCALL,
    PY_ARGS0,
    PY_KEY,
    PY_EQ,
    PY_VAL,
    PY_STR,
    PY_STR_ESC,
    PY_NUM,
    PY_WORD,
    PY_AFTER,
    PY_DONE
};

/* Harmony body kinds. */
enum { HB_CONTENT, HB_REASONING, HB_CALL };

#define RUN_NONE (-1)

struct ToolParser {
    ToolFormat fmt;
    unsigned flags;
    Rng rng;
    ToolEventFn fn;
    void *user;
    bool oom, finished;

    Buf in; /* pushed, not yet consumed: in.p[pos..in.n) */
    size_t pos;
    int st;
    bool think;     /* inside <think> */
    bool skip_ws;   /* drop whitespace before the next content */
    bool at_start;  /* no content since the start or </think> (LLAMA3/GENERIC '{') */
    Buf held;       /* literal text of a structure not yet committed */
    bool held_byte; /* the byte being stepped was added to 'held' */
    bool need_more; /* the step waits for more bytes */

    int run_kind; /* events gathered in 'run' */
    Buf run;

    int n_calls;
    bool begun; /* a call is open (CALL_BEGIN sent, CALL_END not yet) */

    const char *lit; /* S_LIT */
    size_t lit_i;
    int lit_next;

    /* call object */
    int after;
    int ob, vk;
    char key[16];
    size_t n_key;
    bool key_long;
    JScan js;
    StrDec sd;
    Buf name;
    bool have_name, args_seen, args_done;
    Buf pend; /* arguments seen before the name */

    /* GENERIC first key */
    char gkey[16];
    size_t n_gkey;

    /* builtin call */
    int py;
    size_t code_at; /* where the code starts in 'held' */
    char quote;
    Buf pkey, pval;
    json_t *pargs;

    int hb; /* harmony body kind */
};

static void toolcall_emit(ToolParser *p, const ToolEvent *ev) { p->fn(p->user, ev); }

static void flush_run(ToolParser *p) {
    if (p->run_kind != RUN_NONE && p->run.n > 0) {
        ToolEvent ev = {.kind = (ToolEventKind)p->run_kind,
                        .index = p->run_kind == TOOLCALL_CALL_ARGS ? p->n_calls - 1 : -1,
                        .text = p->run.p,
                        .len = p->run.n};
        toolcall_emit(p, &ev);
    }
    p->run.n = 0;
    p->run_kind = RUN_NONE;
}

static void emit(ToolParser *p, ToolEventKind kind, const char *s, size_t n) {
    if (n == 0)
        return;
    if (p->run_kind != (int)kind)
        flush_run(p);
    p->run_kind = (int)kind;
    if (!buf_put(&p->run, s, n))
        p->oom = true;
    if (kind == TOOLCALL_CONTENT)
        p->at_start = false;
}

static void emit_text(ToolParser *p, const char *s, size_t n) {
    emit(p, p->think ? TOOLCALL_REASONING : TOOLCALL_CONTENT, s, n);
}

static void make_id(ToolParser *p, char *id) {
    static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    int k = 0, n = 9;
    if (p->fmt != TOOL_FORMAT_MISTRAL) {
        memcpy(id, "call_", 5);
        k = 5;
        n = 24;
    }
    for (int i = 0; i < n; i++)
        id[k++] = al[rng_u64(&p->rng) % 62];
    id[k] = '\0';
}

static void begin_call(ToolParser *p, const char *name) {
    flush_run(p);
    char id[TOOLCALL_ID_MAX];
    make_id(p, id);
    ToolEvent ev = {.kind = TOOLCALL_CALL_BEGIN, .index = p->n_calls, .id = id, .name = name};
    p->n_calls++;
    p->begun = true;
    p->held.n = 0;
    toolcall_emit(p, &ev);
}

static void end_call(ToolParser *p) {
    flush_run(p);
    ToolEvent ev = {.kind = TOOLCALL_CALL_END, .index = p->n_calls - 1};
    p->begun = false;
    p->held.n = 0;
    toolcall_emit(p, &ev);
}

static void args(ToolParser *p, const char *s, size_t n) { emit(p, TOOLCALL_CALL_ARGS, s, n); }

/* The structure broke at the byte being stepped: end an open call, release
 * the held text as content and scan the byte again as content. Returns 0
 * (bytes consumed). */
static size_t fail_at(ToolParser *p) {
    if (p->held_byte && p->held.n > 0)
        p->held.n--;
    p->held_byte = false;
    if (p->begun)
        end_call(p);
    emit(p, TOOLCALL_CONTENT, p->held.p, p->held.n);
    p->held.n = 0;
    p->st = S_TEXT;
    return 0;
}

/* The structure broke with the byte being stepped included (it is part of
 * the held text). Returns 1. */
static size_t fail_with(ToolParser *p) {
    p->held_byte = false;
    fail_at(p);
    return 1;
}

/* A structure completed (its text is dropped): back to content. */
static void structure_done(ToolParser *p) {
    p->held.n = 0;
    p->st = S_TEXT;
    p->skip_ws = true;
}

static void obj_init(ToolParser *p, int after) {
    p->st = S_OBJ;
    p->after = after;
    p->ob = OB_OPEN;
    p->name.n = 0;
    p->pend.n = 0;
    p->have_name = p->args_seen = p->args_done = false;
}

static bool names_optional_args(const ToolParser *p) {
    return p->fmt == TOOL_FORMAT_HERMES || p->fmt == TOOL_FORMAT_MISTRAL;
}

static void after_object(ToolParser *p) {
    p->held.n = 0;
    switch (p->after) {
    case AFTER_HERMES: p->st = S_HERMES1; break;
    case AFTER_L3: p->st = S_L3_AFTER; break;
    case AFTER_MI_ARR: p->st = S_MI_AFTER; break;
    case AFTER_MI_ONE: structure_done(p); break;
    case AFTER_GENERIC: p->st = S_G_AFTER; break;
    }
}

/* An argument byte: streamed once the call has begun, else kept. */
static bool arg_bytes(ToolParser *p, const char *s, size_t n) {
    if (p->begun) {
        args(p, s, n);
        return true;
    }
    if (p->pend.n + n > TOOLCALL_MAX_HELD)
        return false;
    if (!buf_put(&p->pend, s, n))
        p->oom = true;
    return true;
}

/* Begin once both the name and the start of the arguments are known. */
static void obj_try_begin(ToolParser *p) {
    if (p->begun || !p->have_name || !p->args_seen)
        return;
    begin_call(p, p->name.p);
    args(p, p->pend.p, p->pend.n);
    p->pend.n = 0;
}

static size_t obj_close(ToolParser *p) {
    if (!p->begun && p->have_name && !p->args_seen && names_optional_args(p)) {
        begin_call(p, p->name.p);
        args(p, "{}", 2);
    }
    if (!p->begun)
        return fail_with(p);
    end_call(p);
    after_object(p);
    return 1;
}

static size_t step_obj(ToolParser *p, unsigned c) {
    char o[8];
    int no, r;
    switch (p->ob) {
    case OB_OPEN:
        if (is_ws(c))
            return 1;
        if (c != '{')
            return fail_at(p);
        p->ob = OB_K0;
        return 1;
    case OB_K0:
        if (c == '}')
            return obj_close(p);
        /* fall through */
    case OB_K1:
        if (is_ws(c))
            return 1;
        if (c != '"')
            return fail_at(p);
        p->ob = OB_KEY;
        p->n_key = 0;
        p->key_long = false;
        return 1;
    case OB_KEY:
        if (c == '"') {
            p->key[p->n_key] = '\0';
            p->ob = OB_COLON;
            return 1;
        }
        if (c < 0x20)
            return fail_at(p);
        if (c == '\\' || p->n_key + 1 >= sizeof p->key) {
            /* a key spelled with escapes or this long is none we read; a
             * backslash is followed by one byte we skip as a key byte */
            p->key_long = true;
            if (c == '\\') {
                p->ob = OB_KEY_ESC; /* validate the rest as a key string */
                js_init(&p->js);
                p->js.st = J_ESC;
                p->js.key = true;
            }
            return 1;
        }
        p->key[p->n_key++] = (char)c;
        return 1;
    case OB_COLON:
        if (is_ws(c))
            return 1;
        if (c != ':')
            return fail_at(p);
        p->ob = OB_VAL;
        p->vk = V_OTHER;
        if (!p->key_long && strcmp(p->key, "name") == 0 && !p->have_name)
            p->vk = V_NAME;
        else if (!p->key_long && !p->args_seen &&
                 (strcmp(p->key, "arguments") == 0 || strcmp(p->key, "parameters") == 0))
            p->vk = V_ARGS;
        return 1;
    case OB_VAL:
        if (is_ws(c))
            return 1;
        memset(&p->sd, 0, sizeof p->sd);
        if (p->vk == V_NAME) {
            if (c != '"')
                return fail_at(p);
            p->ob = OB_NAME;
            p->name.n = 0;
            return 1;
        }
        if (p->vk == V_ARGS) {
            if (c != '{' && c != '"')
                return fail_at(p);
            p->args_seen = true;
            obj_try_begin(p);
            if (c == '"') {
                p->ob = OB_ARGS_STR;
                return 1;
            }
            js_init(&p->js);
            js_feed(&p->js, c);
            p->ob = OB_ARGS;
            char b = (char)c;
            return arg_bytes(p, &b, 1) ? 1 : fail_with(p);
        }
        js_init(&p->js);
        if (js_feed(&p->js, c) == JR_ERR)
            return fail_at(p);
        p->ob = OB_OTHER;
        return 1;
    case OB_NAME:
        r = sd_feed(&p->sd, c, o, &no);
        if (r == SD_ERR)
            return fail_at(p);
        if (p->name.n + (size_t)no > TOOLCALL_MAX_NAME || memchr(o, 0, (size_t)no))
            return fail_at(p);
        if (!buf_put(&p->name, o, (size_t)no))
            p->oom = true;
        if (r == SD_END) {
            if (p->name.n == 0)
                return fail_with(p);
            p->have_name = true;
            p->ob = OB_NEXT;
            obj_try_begin(p);
        }
        return 1;
    case OB_ARGS: {
        r = js_feed(&p->js, c);
        if (r == JR_ERR || r == JR_PREV)
            return fail_at(p);
        char b = (char)c;
        if (!arg_bytes(p, &b, 1))
            return fail_with(p);
        if (r == JR_DONE) {
            p->args_done = true;
            p->ob = OB_NEXT;
        }
        return 1;
    }
    case OB_ARGS_STR:
        r = sd_feed(&p->sd, c, o, &no);
        if (r == SD_ERR)
            return fail_at(p);
        if (!arg_bytes(p, o, (size_t)no))
            return fail_with(p);
        if (r == SD_END) {
            p->args_done = true;
            p->ob = OB_NEXT;
        }
        return 1;
    case OB_KEY_ESC:
        if (js_feed(&p->js, c) == JR_ERR)
            return fail_at(p);
        if (p->js.st == J_COLON)
            p->ob = OB_COLON; /* the key ended; key_long: its value is ignored */
        return 1;
    case OB_OTHER:
        r = js_feed(&p->js, c);
        if (r == JR_ERR)
            return fail_at(p);
        if (r == JR_PREV) {
            p->ob = OB_NEXT;
            return 0;
        }
        if (r == JR_DONE)
            p->ob = OB_NEXT;
        return 1;
    case OB_NEXT:
        if (is_ws(c))
            return 1;
        if (c == ',') {
            p->ob = OB_K1;
            return 1;
        }
        if (c == '}')
            return obj_close(p);
        return fail_at(p);
    }
    return fail_at(p);
}

/* ---- Llama 3 builtin calls and code ---- */

static bool is_ident(unsigned c, bool first) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (!first && is_digit(c));
}

/* The JSON text of a Python literal collected in pval (a number or a word). */
static json_t *py_scalar(ToolParser *p) {
    const char *s = p->pval.p ? p->pval.p : "";
    if (p->py == PY_WORD)
        return strcmp(s, "True") == 0    ? json_true()
               : strcmp(s, "False") == 0 ? json_false()
               : strcmp(s, "None") == 0  ? json_null()
                                         : NULL;
    /* -?digits(.digits)?([eE][+-]?digits)? */
    size_t i = 0, n = p->pval.n;
    bool real = false;
    if (i < n && s[i] == '-')
        i++;
    size_t d0 = i;
    while (i < n && is_digit((unsigned char)s[i]))
        i++;
    if (i == d0)
        return NULL;
    if (i < n && s[i] == '.') {
        real = true;
        size_t f0 = ++i;
        while (i < n && is_digit((unsigned char)s[i]))
            i++;
        if (i == f0)
            return NULL;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        real = true;
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        size_t e0 = i;
        while (i < n && is_digit((unsigned char)s[i]))
            i++;
        if (i == e0)
            return NULL;
    }
    if (i != n)
        return NULL;
    if (!real && n - d0 <= 18)
        return json_integer(strtoll(s, NULL, 10));
    return json_real(strtod(s, NULL));
}

static bool py_set(ToolParser *p, json_t *v) {
    if (!v)
        return false;
    const char *k = p->pkey.p ? p->pkey.p : "";
    if (json_object_set_new(p->pargs, k, v) != 0)
        return false;
    p->pkey.n = 0;
    p->pval.n = 0;
    return true;
}

static void code_bytes(ToolParser *p, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char e[8];
        if (c == '"' || c == '\\') {
            e[0] = '\\';
            e[1] = (char)c;
            args(p, e, 2);
        } else if (c == '\n') {
            args(p, "\\n", 2);
        } else if (c == '\t') {
            args(p, "\\t", 2);
        } else if (c < 0x20 || c == 0x7f) {
            snprintf(e, sizeof e, "\\u%04x", c);
            args(p, e, 6);
        } else {
            args(p, s + i, 1);
        }
    }
}

/* Not a builtin call: everything after the tag is Python code. */
static size_t py_to_code(ToolParser *p) {
    if (p->held_byte && p->held.n > 0)
        p->held.n--;
    p->held_byte = false;
    Buf code = {0};
    if (!buf_put(&code, p->held.p + p->code_at, p->held.n - p->code_at))
        p->oom = true;
    json_decref(p->pargs);
    p->pargs = NULL;
    begin_call(p, "python");
    args(p, "{\"code\": \"", 10);
    code_bytes(p, code.p, code.n);
    buf_free(&code);
    p->st = S_PY_CODE;
    return 0;
}

static size_t py_finish_call(ToolParser *p) {
    char *js = json_dumps(p->pargs, JSON_PRESERVE_ORDER);
    if (!js) {
        p->oom = true;
        return 1;
    }
    /* the name is held from code_at up to ".call(" */
    const char *h = p->held.p + p->code_at;
    const char *dot = memchr(h, '.', p->held.n - p->code_at);
    char name[TOOLCALL_MAX_NAME + 1];
    size_t nl = (size_t)(dot - h);
    memcpy(name, h, nl);
    name[nl] = '\0';
    begin_call(p, name);
    args(p, js, strlen(js));
    end_call(p);
    free(js);
    json_decref(p->pargs);
    p->pargs = NULL;
    structure_done(p);
    return 1;
}

static size_t step_py(ToolParser *p, unsigned c) {
    static const char dc[] = ".call(";
    switch (p->py) {
    case PY_NAME:
        if (is_ident(c, p->held.n - 1 == p->code_at)) {
            if (p->held.n - p->code_at > TOOLCALL_MAX_NAME)
                return py_to_code(p);
            return 1;
        }
        if (c == '.' && p->held.n - 1 > p->code_at) {
            p->py = PY_DOTCALL;
            p->lit_i = 1;
            return 1;
        }
        return py_to_code(p);
    case PY_DOTCALL:
        if (c != (unsigned char)dc[p->lit_i])
            return py_to_code(p);
        if (dc[++p->lit_i] == '\0') {
            p->py = PY_ARGS0;
            p->pargs = json_object();
            if (!p->pargs)
                p->oom = true;
        }
        return 1;
    case PY_ARGS0:
    case PY_KEY:
        if (p->pkey.n == 0 && is_ws(c))
            return 1;
        if (c == ')' && p->py == PY_ARGS0)
            return py_finish_call(p);
        if (is_ident(c, p->pkey.n == 0)) {
            p->py = PY_KEY;
            if (p->pkey.n >= TOOLCALL_MAX_NAME || !buf_put(&p->pkey, &c, 1))
                return py_to_code(p);
            return 1;
        }
        if (p->pkey.n > 0 && (c == '=' || is_ws(c))) {
            p->py = c == '=' ? PY_VAL : PY_EQ;
            return 1;
        }
        return py_to_code(p);
    case PY_EQ:
        if (is_ws(c))
            return 1;
        if (c != '=')
            return py_to_code(p);
        p->py = PY_VAL;
        return 1;
    case PY_VAL:
        if (is_ws(c))
            return 1;
        p->pval.n = 0;
        if (c == '"' || c == '\'') {
            p->quote = (char)c;
            p->py = PY_STR;
            if (!buf_put(&p->pval, "", 0))
                p->oom = true;
            return 1;
        }
        if (c == '-' || is_digit(c))
            p->py = PY_NUM;
        else if (is_ident(c, true))
            p->py = PY_WORD;
        else
            return py_to_code(p);
        if (!buf_put(&p->pval, &c, 1))
            p->oom = true;
        return 1;
    case PY_STR:
        if (c == (unsigned char)p->quote) {
            json_t *v = json_stringn(p->pval.p, p->pval.n);
            if (!py_set(p, v))
                return py_to_code(p);
            p->py = PY_AFTER;
            return 1;
        }
        if (c == '\\') {
            p->py = PY_STR_ESC;
            return 1;
        }
        if (c == '\n' || p->pval.n >= TOOLCALL_MAX_HELD || !buf_put(&p->pval, &c, 1))
            return py_to_code(p);
        return 1;
    case PY_STR_ESC: {
        char e = c == 'n' ? '\n' : c == 't' ? '\t' : c == 'r' ? '\r' : (char)c;
        if (!(c == 'n' || c == 't' || c == 'r' || c == '\\' || c == '\'' || c == '"'))
            if (!buf_put(&p->pval, "\\", 1))
                p->oom = true;
        if (!buf_put(&p->pval, &e, 1))
            p->oom = true;
        p->py = PY_STR;
        return 1;
    }
    case PY_NUM:
    case PY_WORD:
        if (p->py == PY_NUM ? (is_digit(c) || strchr(".eE+-", (int)c)) && c : is_ident(c, false)) {
            if (p->pval.n > 64 || !buf_put(&p->pval, &c, 1))
                return py_to_code(p);
            return 1;
        }
        if (!py_set(p, py_scalar(p)))
            return py_to_code(p);
        p->py = PY_AFTER;
        return 0; /* c follows the value */
    case PY_AFTER:
        if (is_ws(c))
            return 1;
        if (c == ',') {
            p->py = PY_KEY;
            return 1;
        }
        if (c == ')')
            return py_finish_call(p);
        return py_to_code(p);
    }
    return py_to_code(p);
}

/* ---- harmony headers ---- */

static const char *const harmony_starts[] = {"<|start|>", "<|channel|>",
                                             " to=", "to=", "<|constrain|>"};

/* Whether 'h' (n bytes) can still begin a header. */
static bool harmony_head_ok(const char *h, size_t n) {
    if (n > TOOLCALL_MAX_HEADER)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)h[i] < 0x20)
            return false;
    for (size_t k = 0; k < sizeof harmony_starts / sizeof *harmony_starts; k++) {
        size_t l = strlen(harmony_starts[k]);
        if (memcmp(h, harmony_starts[k], n < l ? n : l) == 0)
            return true;
    }
    return false;
}

/* The word after 'key' in the header (up to ' ' or '<'), or NULL. */
static const char *harmony_word(const char *h, size_t n, const char *key, size_t *wl) {
    const char *at = memmem(h, n, key, strlen(key));
    if (!at)
        return NULL;
    at += strlen(key);
    const char *e = at;
    while (e < h + n && *e != ' ' && *e != '<')
        e++;
    *wl = (size_t)(e - at);
    return at;
}

/* A complete header (ending in <|message|>): starts the body. */
static size_t harmony_header(ToolParser *p) {
    const char *h = p->held.p;
    size_t n = p->held.n, cl = 0, rl = 0;
    const char *ch = harmony_word(h, n, "<|channel|>", &cl);
    const char *to = harmony_word(h, n, "to=", &rl);
    if (to && (rl == 0 || (rl == 9 && memcmp(to, "assistant", 9) == 0)))
        to = NULL;
    if (!ch && !to) {
        emit(p, TOOLCALL_CONTENT, h, n);
        p->held.n = 0;
        p->hb = HB_CONTENT;
        p->st = S_H_BODY;
        return 1;
    }
    p->st = S_H_BODY;
    if (to) {
        if (rl > 10 && memcmp(to, "functions.", 10) == 0) {
            to += 10;
            rl -= 10;
        }
        char name[TOOLCALL_MAX_HEADER + 1];
        memcpy(name, to, rl);
        name[rl] = '\0';
        p->hb = HB_CALL;
        begin_call(p, name);
    } else {
        p->hb = cl == 8 && memcmp(ch, "analysis", 8) == 0 ? HB_REASONING : HB_CONTENT;
    }
    p->held.n = 0;
    return 1;
}

static size_t step_h_head(ToolParser *p, unsigned c) {
    if (!harmony_head_ok(p->held.p, p->held.n)) {
        if (p->held_byte && p->held.n > 0)
            p->held.n--;
        p->held_byte = false;
        emit(p, TOOLCALL_CONTENT, p->held.p, p->held.n);
        p->held.n = 0;
        p->hb = HB_CONTENT;
        p->st = S_H_BODY;
        return 0;
    }
    static const char msg[] = "<|message|>";
    size_t ml = sizeof msg - 1;
    if (p->held.n >= ml && memcmp(p->held.p + p->held.n - ml, msg, ml) == 0)
        return harmony_header(p);
    return 1;
}

/* ---- text states: tags and held tails ---- */

/* The first position in s[0..n) where a tag occurs (*which its index) or
 * where s ends in a proper prefix of one (*which = -1); n when neither. */
static size_t find_tag(const char *s, size_t n, const char *const *tags, int n_tags, int *which) {
    for (size_t i = 0; i < n; i++) {
        bool partial = false;
        for (int t = 0; t < n_tags; t++) {
            size_t l = strlen(tags[t]);
            if (s[i] != tags[t][0])
                continue;
            size_t m = n - i < l ? n - i : l;
            if (memcmp(s + i, tags[t], m) != 0)
                continue;
            if (m == l) {
                *which = t;
                return i;
            }
            partial = true;
        }
        if (partial) {
            *which = -1;
            return i;
        }
    }
    *which = -1;
    return n;
}

static size_t step_text(ToolParser *p, const char *s, size_t n, bool final) {
    size_t i = 0;
    if (p->skip_ws) {
        while (i < n && is_ws((unsigned char)s[i]))
            i++;
        if (i == n)
            return n;
        p->skip_ws = false;
    }
    if (!p->think && p->at_start && s[i] == '{' &&
        (p->fmt == TOOL_FORMAT_LLAMA3 || p->fmt == TOOL_FORMAT_GENERIC)) {
        p->held.n = 0;
        if (p->fmt == TOOL_FORMAT_LLAMA3) {
            obj_init(p, AFTER_L3);
        } else {
            p->st = S_G_KEY0;
            if (!buf_put(&p->held, "{", 1))
                p->oom = true;
            return i + 1;
        }
        return i;
    }
    const char *tags[3];
    int nt = 0;
    if (p->think) {
        tags[nt++] = "</think>";
    } else {
        if (p->flags & TOOLCALL_THINK)
            tags[nt++] = "<think>";
        if (p->fmt == TOOL_FORMAT_HERMES)
            tags[nt++] = "<tool_call>";
        else if (p->fmt == TOOL_FORMAT_LLAMA3)
            tags[nt++] = "<|python_tag|>";
        else if (p->fmt == TOOL_FORMAT_MISTRAL)
            tags[nt++] = "[TOOL_CALLS]";
    }
    int which;
    size_t at = i + find_tag(s + i, n - i, tags, nt, &which);
    if (which < 0 && at < n && final)
        at = n;
    emit_text(p, s + i, at - i);
    if (which < 0) {
        if (at < n)
            p->need_more = true;
        return at;
    }
    const char *t = tags[which];
    size_t l = strlen(t);
    if (strcmp(t, "<think>") == 0) {
        p->think = true;
        p->skip_ws = true;
    } else if (strcmp(t, "</think>") == 0) {
        p->think = false;
        p->skip_ws = true;
        p->at_start = true;
    } else {
        p->held.n = 0;
        if (!buf_put(&p->held, t, l))
            p->oom = true;
        p->st = p->fmt == TOOL_FORMAT_HERMES   ? S_HERMES0
                : p->fmt == TOOL_FORMAT_LLAMA3 ? S_PY_TAG
                                               : S_MI_OPEN;
    }
    return at + l;
}

static const char *const harmony_end_tags[] = {"<|end|>", "<|call|>", "<|return|>", "<|start|>",
                                               "<|channel|>"};

static void body_text(ToolParser *p, const char *s, size_t n) {
    if (p->hb == HB_CALL)
        args(p, s, n);
    else
        emit(p, p->hb == HB_REASONING ? TOOLCALL_REASONING : TOOLCALL_CONTENT, s, n);
}

static size_t step_h_body(ToolParser *p, const char *s, size_t n, bool final) {
    int which;
    size_t at = find_tag(s, n, harmony_end_tags, 5, &which);
    if (which < 0 && at < n && final)
        at = n;
    body_text(p, s, at);
    if (which < 0) {
        if (at < n)
            p->need_more = true;
        return at;
    }
    if (p->begun)
        end_call(p);
    p->held.n = 0;
    p->st = S_H_HEAD;
    /* <|start|> and <|channel|> begin the next header */
    return which >= 3 ? at : at + strlen(harmony_end_tags[which]);
}

static size_t step_code(ToolParser *p, const char *s, size_t n) {
    code_bytes(p, s, n);
    return n;
}

/* ---- one byte of structure ---- */

static size_t ws_then(ToolParser *p, unsigned c, unsigned want, int next) {
    if (is_ws(c))
        return 1;
    if (c != want)
        return fail_at(p);
    p->st = next;
    return 1;
}

static void lit_start(ToolParser *p, const char *lit, int next) {
    p->st = S_LIT;
    p->lit = lit;
    p->lit_i = 0;
    p->lit_next = next;
}

static size_t step_byte(ToolParser *p, unsigned c) {
    switch (p->st) {
    case S_OBJ: return step_obj(p, c);
    case S_LIT:
        if (c != (unsigned char)p->lit[p->lit_i])
            return fail_at(p);
        if (p->lit[++p->lit_i] == '\0') {
            if (p->lit_next == S_TEXT)
                structure_done(p);
            else
                p->st = p->lit_next;
        }
        return 1;
    case S_HERMES0:
        if (is_ws(c))
            return 1;
        if (c != '{')
            return fail_at(p);
        obj_init(p, AFTER_HERMES);
        return 0;
    case S_HERMES1:
        if (is_ws(c))
            return 1;
        if (c != '<')
            return fail_at(p);
        lit_start(p, "</tool_call>", S_TEXT);
        p->lit_i = 1;
        return 1;
    case S_L3_AFTER: return ws_then(p, c, ';', S_L3_NEXT);
    case S_L3_NEXT:
    case S_MI_NEXT:
    case S_G_NEXT:
        if (is_ws(c))
            return 1;
        if (c != '{')
            return fail_at(p);
        obj_init(p, p->st == S_L3_NEXT   ? AFTER_L3
                    : p->st == S_MI_NEXT ? AFTER_MI_ARR
                                         : AFTER_GENERIC);
        return 0;
    case S_PY_TAG:
        if (is_ws(c))
            return 1;
        if (c == '{') {
            obj_init(p, AFTER_L3);
            return 0;
        }
        p->st = S_PY_CALL;
        p->py = PY_NAME;
        p->code_at = p->held.n - 1; /* this byte is held */
        p->pkey.n = 0;
        p->pval.n = 0;
        return step_py(p, c);
    case S_PY_CALL: return step_py(p, c);
    case S_MI_OPEN:
        if (is_ws(c))
            return 1;
        if (c == '[') {
            p->st = S_MI_ARR;
            return 1;
        }
        if (c == '{') {
            obj_init(p, AFTER_MI_ONE);
            return 0;
        }
        if (is_ident(c, false) || c == '-' || c == '.') {
            p->st = S_MI_NAME;
            p->name.n = 0;
            return 0;
        }
        return fail_at(p);
    case S_MI_ARR:
    case S_G_ARR:
        if (is_ws(c))
            return 1;
        if (c == '{') {
            obj_init(p, p->st == S_MI_ARR ? AFTER_MI_ARR : AFTER_GENERIC);
            return 0;
        }
        if (c != ']')
            return fail_at(p);
        if (p->st == S_MI_ARR)
            structure_done(p);
        else
            p->st = S_G_END;
        return 1;
    case S_MI_AFTER:
    case S_G_AFTER:
        if (is_ws(c))
            return 1;
        if (c == ',') {
            p->st = p->st == S_MI_AFTER ? S_MI_NEXT : S_G_NEXT;
            return 1;
        }
        if (c != ']')
            return fail_at(p);
        if (p->st == S_MI_AFTER)
            structure_done(p);
        else
            p->st = S_G_END;
        return 1;
    case S_MI_NAME:
        if (is_ident(c, false) || c == '-' || c == '.') {
            if (p->name.n >= TOOLCALL_MAX_NAME)
                return fail_at(p);
            if (!buf_put(&p->name, &c, 1))
                p->oom = true;
            return 1;
        }
        if (c != '[')
            return fail_at(p);
        lit_start(p, "[ARGS]", S_MI_ARGS0);
        p->lit_i = 1;
        return 1;
    case S_MI_ARGS0:
        if (is_ws(c))
            return 1;
        if (c != '{')
            return fail_at(p);
        begin_call(p, p->name.p);
        js_init(&p->js);
        js_feed(&p->js, c);
        p->st = S_MI_ARGS;
        args(p, "{", 1);
        return 1;
    case S_MI_ARGS: {
        int r = js_feed(&p->js, c);
        if (r == JR_ERR || r == JR_PREV)
            return fail_at(p);
        char b = (char)c;
        args(p, &b, 1);
        if (r == JR_DONE) {
            end_call(p);
            structure_done(p);
        }
        return 1;
    }
    case S_G_KEY0:
        if (is_ws(c))
            return 1;
        if (c != '"')
            return fail_at(p);
        p->n_gkey = 0;
        p->st = S_G_KEY;
        return 1;
    case S_G_KEY:
        if (c == '"') {
            p->gkey[p->n_gkey] = '\0';
            p->st = S_G_COLON;
            return 1;
        }
        if (c < 0x20 || c == '\\' || p->n_gkey + 1 >= sizeof p->gkey)
            return fail_at(p);
        p->gkey[p->n_gkey++] = (char)c;
        return 1;
    case S_G_COLON: return ws_then(p, c, ':', S_G_VAL);
    case S_G_VAL:
        if (is_ws(c))
            return 1;
        if (c == '[' && strcmp(p->gkey, "tool_calls") == 0) {
            p->st = S_G_ARR;
            return 1;
        }
        if (c == '"' && strcmp(p->gkey, "response") == 0) {
            p->held.n = 0;
            p->held_byte = false;
            memset(&p->sd, 0, sizeof p->sd);
            p->st = S_G_RESP;
            return 1;
        }
        return fail_at(p);
    case S_G_RESP: {
        char o[8];
        int no, r = sd_feed(&p->sd, c, o, &no);
        if (r == SD_ERR)
            return fail_at(p);
        emit(p, TOOLCALL_CONTENT, o, (size_t)no);
        if (r == SD_END) {
            p->held.n = 0;
            p->st = S_G_END;
        }
        return 1;
    }
    case S_G_END:
        if (is_ws(c))
            return 1;
        if (c != '}')
            return fail_at(p);
        structure_done(p);
        p->skip_ws = p->n_calls > 0; /* after a response, text keeps its spaces */
        return 1;
    case S_H_HEAD: return step_h_head(p, c);
    }
    ASSERT(0);
    return 0;
}

static bool is_text_state(int st) { return st == S_TEXT || st == S_H_BODY || st == S_PY_CODE; }

/* Consumes from s[0..n) what can be decided; sets need_more when the rest
 * must wait for more bytes. */
static size_t step(ToolParser *p, const char *s, size_t n, bool final) {
    if (p->st == S_TEXT)
        return step_text(p, s, n, final);
    if (p->st == S_H_BODY)
        return step_h_body(p, s, n, final);
    if (p->st == S_PY_CODE)
        return step_code(p, s, n);
    size_t i = 0;
    while (i < n && !is_text_state(p->st) && !p->oom) {
        p->held_byte = false;
        if (!p->begun && p->st != S_G_RESP) {
            if (!buf_put(&p->held, s + i, 1))
                p->oom = true;
            p->held_byte = true;
            if (p->held.n > TOOLCALL_MAX_HELD) {
                i += fail_with(p);
                continue;
            }
        }
        size_t used = step_byte(p, (unsigned char)s[i]);
        if (used == 0 && p->held_byte && p->held.n > 0)
            p->held.n--; /* it will be stepped again */
        i += used;
    }
    return i;
}

/* Bytes at the end of s[0..n) that start an incomplete UTF-8 character. */
static size_t utf8_tail(const char *s, size_t n) {
    for (size_t k = 1; k <= 3 && k <= n; k++) {
        unsigned c = (unsigned char)s[n - k];
        if ((c & 0xC0) == 0x80)
            continue;
        return (size_t)utf8_lead_len(c) > k ? k : 0;
    }
    return 0;
}

static void run(ToolParser *p, bool final) {
    for (int guard = 0; !p->oom; guard++) {
        size_t n = p->in.n - p->pos;
        if (!final)
            n -= utf8_tail(p->in.p + p->pos, n);
        if (n == 0)
            break;
        p->need_more = false;
        size_t used = step(p, p->in.p + p->pos, n, final);
        p->pos += used;
        if (p->need_more)
            break;
        if (used == 0)
            ASSERT(guard < 64); /* state changes without progress are few */
        else
            guard = 0;
    }
    memmove(p->in.p, p->in.p + p->pos, p->in.n - p->pos);
    p->in.n -= p->pos;
    p->pos = 0;
}

/* ---- lifecycle ---- */

ToolParser *toolcall_new(ToolFormat fmt, unsigned flags, uint64_t seed, ToolEventFn fn,
                         void *user) {
    ToolParser *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->fmt = fmt;
    p->flags = flags;
    if (flags & TOOLCALL_THINK_OPEN) {
        p->flags |= TOOLCALL_THINK;
        p->think = true;
    }
    rng_seed(&p->rng, seed);
    p->fn = fn;
    p->user = user;
    p->run_kind = RUN_NONE;
    p->st = fmt == TOOL_FORMAT_HARMONY ? S_H_HEAD : S_TEXT;
    p->skip_ws = fmt != TOOL_FORMAT_NONE;
    p->at_start = true;
    return p;
}

void toolcall_free(ToolParser *p) {
    if (!p)
        return;
    buf_free(&p->in);
    buf_free(&p->held);
    buf_free(&p->run);
    buf_free(&p->name);
    buf_free(&p->pend);
    buf_free(&p->pkey);
    buf_free(&p->pval);
    json_decref(p->pargs);
    free(p);
}

Status toolcall_push(ToolParser *p, const char *text, size_t len) {
    if (p->finished)
        return STATUS_INVALID;
    if (p->oom)
        return STATUS_NOMEM;
    if (!buf_put(&p->in, text, len)) {
        p->oom = true;
        return STATUS_NOMEM;
    }
    run(p, false);
    flush_run(p);
    return p->oom ? STATUS_NOMEM : STATUS_OK;
}

Status toolcall_finish(ToolParser *p) {
    if (p->finished)
        return STATUS_INVALID;
    p->finished = true;
    if (p->oom)
        return STATUS_NOMEM;
    run(p, true);
    switch (p->st) {
    case S_TEXT: break;
    case S_H_BODY:
        if (p->begun)
            end_call(p);
        break;
    case S_PY_CALL:
        p->held_byte = false;
        py_to_code(p);
        /* fall through */
    case S_PY_CODE:
        args(p, "\"}", 2);
        end_call(p);
        break;
    case S_HERMES1:
    case S_L3_AFTER:
    case S_L3_NEXT:
    case S_MI_AFTER:
    case S_MI_NEXT:
    case S_G_AFTER:
    case S_G_NEXT:
    case S_G_END:
    case S_G_RESP: break; /* separators after calls (or a response): dropped */
    case S_LIT:
        if (p->lit_next == S_TEXT)
            break; /* a partial </tool_call> */
        /* fall through */
    default:
        p->held_byte = false;
        fail_at(p);
        break;
    }
    flush_run(p);
    return p->oom ? STATUS_NOMEM : STATUS_OK;
}

/* ---- whole-text parse ---- */

typedef struct {
    ToolResult *r;
    Buf content, reasoning, args;
    int cap;
    bool oom;
} Collect;

static void collect_event(void *user, const ToolEvent *ev) {
    Collect *c = user;
    ToolResult *r = c->r;
    switch (ev->kind) {
    case TOOLCALL_CONTENT:
        if (!buf_put(&c->content, ev->text, ev->len))
            c->oom = true;
        break;
    case TOOLCALL_REASONING:
        if (!buf_put(&c->reasoning, ev->text, ev->len))
            c->oom = true;
        break;
    case TOOLCALL_CALL_BEGIN: {
        if (r->n_calls == c->cap) {
            int cap = c->cap ? 2 * c->cap : 4;
            ToolCall *q = realloc(r->calls, (size_t)cap * sizeof *q);
            if (!q) {
                c->oom = true;
                return;
            }
            r->calls = q;
            c->cap = cap;
        }
        ToolCall *tc = &r->calls[r->n_calls++];
        memset(tc, 0, sizeof *tc);
        snprintf(tc->id, sizeof tc->id, "%s", ev->id);
        tc->name = strdup(ev->name);
        if (!tc->name)
            c->oom = true;
        c->args.n = 0;
        break;
    }
    case TOOLCALL_CALL_ARGS:
        if (!buf_put(&c->args, ev->text, ev->len))
            c->oom = true;
        break;
    case TOOLCALL_CALL_END: {
        ToolCall *tc = &r->calls[r->n_calls - 1];
        tc->arguments = malloc(c->args.n + 1);
        if (!tc->arguments) {
            c->oom = true;
            return;
        }
        if (c->args.n)
            memcpy(tc->arguments, c->args.p, c->args.n);
        tc->arguments[c->args.n] = '\0';
        tc->arguments_len = c->args.n;
        c->args.n = 0;
        break;
    }
    }
}

Status toolcall_parse(ToolFormat fmt, unsigned flags, uint64_t seed, const char *text, size_t len,
                      ToolResult *out) {
    memset(out, 0, sizeof *out);
    Collect c = {.r = out};
    ToolParser *p = toolcall_new(fmt, flags, seed, collect_event, &c);
    if (!p)
        return STATUS_NOMEM;
    Status st = toolcall_push(p, text, len);
    if (st == STATUS_OK)
        st = toolcall_finish(p);
    toolcall_free(p);
    if (!buf_put(&c.content, "", 0) || !buf_put(&c.reasoning, "", 0))
        c.oom = true;
    out->content = c.content.p;
    out->content_len = c.content.n;
    out->reasoning = c.reasoning.p;
    out->reasoning_len = c.reasoning.n;
    buf_free(&c.args);
    if (st == STATUS_OK && c.oom)
        st = STATUS_NOMEM;
    if (st != STATUS_OK)
        toolcall_result_free(out);
    return st;
}

void toolcall_result_free(ToolResult *r) {
    if (!r)
        return;
    for (int i = 0; i < r->n_calls; i++) {
        free(r->calls[i].name);
        free(r->calls[i].arguments);
    }
    free(r->calls);
    free(r->content);
    free(r->reasoning);
    memset(r, 0, sizeof *r);
}

/* ---- format detection ---- */

static bool has(const char *s, size_t n, const char *needle) {
    return memmem(s, n, needle, strlen(needle)) != NULL;
}

ToolFormat toolcall_detect(const char *src, size_t len, unsigned *flags) {
    if (flags) {
        *flags = 0;
        if (has(src, len, "<think>") || has(src, len, "</think>"))
            *flags |= TOOLCALL_THINK;
        /* the generation prompt: what follows the last add_generation_prompt */
        const char *gp = NULL, *at = src;
        static const char key[] = "add_generation_prompt";
        while ((at = memmem(at, len - (size_t)(at - src), key, sizeof key - 1))) {
            gp = at;
            at += sizeof key - 1;
        }
        if (gp) {
            size_t rest = len - (size_t)(gp - src);
            if (has(gp, rest, "<think>") && !has(gp, rest, "</think>"))
                *flags |= TOOLCALL_THINK_OPEN;
        }
    }
    if (has(src, len, "<|channel|>"))
        return TOOL_FORMAT_HARMONY;
    if (has(src, len, "[TOOL_CALLS]"))
        return TOOL_FORMAT_MISTRAL;
    if (has(src, len, "<tool_call>"))
        return TOOL_FORMAT_HERMES;
    if (has(src, len, "<|python_tag|>") ||
        (has(src, len, "\"parameters\"") && has(src, len, "ipython")))
        return TOOL_FORMAT_LLAMA3;
    return TOOL_FORMAT_GENERIC;
}

const char *toolcall_format_name(ToolFormat fmt) {
    switch (fmt) {
    case TOOL_FORMAT_NONE: return "none";
    case TOOL_FORMAT_GENERIC: return "generic";
    case TOOL_FORMAT_HERMES: return "hermes";
    case TOOL_FORMAT_LLAMA3: return "llama3";
    case TOOL_FORMAT_MISTRAL: return "mistral";
    case TOOL_FORMAT_HARMONY: return "harmony";
    }
    return "unknown";
}

/* ---- grammars ---- */

#define TOOLCALL_MAX_TOOL_NAME 64

static bool gput(Buf *b, const char *s) { return buf_put(b, s, strlen(s)); }

/* A GBNF string literal's body for JSON text 's' (quotes, backslashes and
 * newlines escaped). */
static bool glit(Buf *b, const char *s) {
    bool ok = true;
    for (; *s && ok; s++) {
        if (*s == '"')
            ok = gput(b, "\\\"");
        else if (*s == '\\')
            ok = gput(b, "\\\\");
        else if (*s == '\n')
            ok = gput(b, "\\n");
        else
            ok = buf_put(b, s, 1);
    }
    return ok;
}

static bool name_ok(const char *s, bool rule) {
    size_t n = strlen(s);
    if (n == 0 || n > TOOLCALL_MAX_TOOL_NAME * (rule ? 4 : 1))
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned c = (unsigned char)s[i];
        bool ok = is_ident(c, false) || c == '-' || (!rule && c == '.');
        if (rule && c == '_')
            ok = false;
        if (!ok)
            return false;
    }
    return true;
}

Status toolcall_grammar(ToolFormat fmt, const char *const *names, const char *const *arg_rules,
                        int n, bool parallel, bool allow_content, char **out, size_t *len,
                        Err *err) {
    *out = NULL;
    *len = 0;
    if (fmt == TOOL_FORMAT_NONE || fmt < TOOL_FORMAT_NONE || fmt > TOOL_FORMAT_HARMONY)
        return err_set(err, STATUS_INVALID, "toolcall grammar: format %s has no call syntax",
                       toolcall_format_name(fmt));
    if (n < 1 || !names || !arg_rules)
        return err_set(err, STATUS_INVALID, "toolcall grammar: %d tools (need at least 1)", n);
    for (int i = 0; i < n; i++) {
        if (!names[i] || !name_ok(names[i], false))
            return err_set(err, STATUS_INVALID,
                           "toolcall grammar: tool %d: name '%.64s' is not [A-Za-z0-9_.-]{1,%d}", i,
                           names[i] ? names[i] : "(null)", TOOLCALL_MAX_TOOL_NAME);
        if (!arg_rules[i] || !name_ok(arg_rules[i], true))
            return err_set(err, STATUS_INVALID,
                           "toolcall grammar: tool %d: rule name '%.64s' is not [A-Za-z0-9-]+", i,
                           arg_rules[i] ? arg_rules[i] : "(null)");
    }
    /* the text around a call: before the name, between name and arguments,
     * after the arguments */
    const char *pre, *mid, *post, *sep, *open = "", *close = "";
    switch (fmt) {
    case TOOL_FORMAT_HERMES:
        pre = "<tool_call>\n{\"name\": \"";
        mid = "\", \"arguments\": ";
        post = "}\n</tool_call>";
        sep = "\n";
        break;
    case TOOL_FORMAT_LLAMA3:
        pre = "{\"name\": \"";
        mid = "\", \"parameters\": ";
        post = "}";
        sep = "; ";
        break;
    case TOOL_FORMAT_MISTRAL:
        pre = "{\"name\": \"";
        mid = "\", \"arguments\": ";
        post = "}";
        sep = ", ";
        open = "[TOOL_CALLS] [";
        close = "]";
        break;
    case TOOL_FORMAT_HARMONY:
        pre = "<|channel|>commentary to=functions.";
        mid = " <|constrain|>json<|message|>";
        post = "";
        sep = "";
        parallel = false;
        break;
    default:
        pre = "{\"name\": \"";
        mid = "\", \"arguments\": ";
        post = "}";
        sep = ", ";
        open = "{\"tool_calls\": [";
        close = "]}";
        break;
    }
    Buf b = {0}, r = {0}; /* the calls' rules; root and the content rules */
    bool ok = true;
    /* tc-call: one call to any of the tools */
    ok = ok && gput(&b, "tc-call ::= \"") && glit(&b, pre) && gput(&b, "\" (");
    for (int i = 0; i < n && ok; i++) {
        ok = gput(&b, i ? " | \"" : "\"") && glit(&b, names[i]) && glit(&b, mid) &&
             gput(&b, "\" ") && gput(&b, arg_rules[i]);
    }
    ok = ok && gput(&b, ")");
    if (*post)
        ok = ok && gput(&b, " \"") && glit(&b, post) && gput(&b, "\"");
    ok = ok && gput(&b, "\n");
    /* tc-calls: the format's call list */
    ok = ok && gput(&b, "tc-calls ::= ");
    if (*open)
        ok = ok && gput(&b, "\"") && glit(&b, open) && gput(&b, "\" ");
    ok = ok && gput(&b, "tc-call");
    if (parallel)
        ok = ok && gput(&b, " (\"") && glit(&b, sep) && gput(&b, "\" tc-call)*");
    if (*close)
        ok = ok && gput(&b, " \"") && glit(&b, close) && gput(&b, "\"");
    ok = ok && gput(&b, "\n");
    if (!allow_content) {
        if (fmt == TOOL_FORMAT_HARMONY)
            ok = ok && gput(&r, "root ::= tc-analysis? tc-calls\n");
        else
            ok = ok && gput(&r, "root ::= tc-calls\n");
    } else {
        switch (fmt) {
        case TOOL_FORMAT_HERMES:
            ok = ok && gput(&r, "root ::= tc-text | tc-text? tc-calls\n"
                                "tc-text ::= ([^<] | \"<\" [^t])+\n");
            break;
        case TOOL_FORMAT_MISTRAL:
            ok = ok && gput(&r, "root ::= tc-text | tc-text? tc-calls\n"
                                "tc-text ::= ([^\\[] | \"[\" [^T])+\n");
            break;
        case TOOL_FORMAT_LLAMA3:
            ok = ok && gput(&r, "root ::= tc-calls | tc-text\n"
                                "tc-text ::= [^{<\\x20\\t\\n\\r] .*\n");
            break;
        case TOOL_FORMAT_HARMONY:
            ok = ok && gput(&r, "root ::= tc-analysis? (tc-calls | tc-final)\n"
                                "tc-final ::= \"<|channel|>final<|message|>\" .*\n");
            break;
        default:
            ok = ok && gput(&r, "root ::= tc-calls | \"{\\\"response\\\": \" tc-string \"}\"\n"
                                "tc-string ::= \"\\\"\" ([^\"\\\\\\x00-\\x1f] | \"\\\\\" "
                                "([\"\\\\/bfnrt] | \"u\" [0-9a-fA-F]{4}))* \"\\\"\"\n");
            break;
        }
    }
    if (fmt == TOOL_FORMAT_HARMONY)
        ok = ok && gput(&r, "tc-analysis ::= \"<|channel|>analysis<|message|>\" [^<]* "
                            "\"<|end|><|start|>assistant\"\n");
    /* root first: callers may rename it */
    ok = ok && buf_put(&r, b.p, b.n);
    buf_free(&b);
    if (!ok) {
        buf_free(&r);
        return err_set(err, STATUS_NOMEM, "toolcall grammar: out of memory");
    }
    *out = r.p;
    *len = r.n;
    return STATUS_OK;
}
