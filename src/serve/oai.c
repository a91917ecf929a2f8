/* oai.c - the OpenAI API's JSON: request bodies into OaiRequest (every
 * field's type and range checked, errors in OpenAI's envelope naming the
 * field and the limit) and the response/chunk/error objects.
 *
 * Deliberately not here: HTTP, model lookup, tokenization, the chat
 * template (messages are checked for shape only; their sizes are the chat
 * layer's), and anything that needs the engine (context length, vocab). */
#include "serve/oai.h"

#include "chat/chat.h"
#include "core/utf8.h"

#include <ctype.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define INVALID "invalid_request_error"

/* ------------------------------------------------------------------ errors */

Status oai_error_set(OaiError *e, int status, const char *type, const char *code, const char *param,
                     const char *fmt, ...) {
    if (!e)
        return STATUS_INVALID;
    e->status = status;
    e->type = type;
    e->code = code;
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return STATUS_INVALID;
}

static json_t *str_or_null(const char *s) {
    return s && s[0] ? oai_string_bytes(s, strlen(s)) : json_null();
}

json_t *oai_error_json(const OaiError *e) {
    json_t *param =
        e->param[0] ? oai_string_bytes(e->param, strnlen(e->param, sizeof e->param)) : json_null();
    return json_pack("{s:{s:o,s:o,s:o,s:o}}", "error", "message",
                     oai_string_bytes(e->message, strnlen(e->message, sizeof e->message)), "type",
                     str_or_null(e->type ? e->type : "server_error"), "param", param, "code",
                     str_or_null(e->code));
}

static Status bad(OaiError *e, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static Status bad(OaiError *e, const char *param, const char *fmt, ...) {
    char msg[sizeof e->message];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return oai_error_set(e, 400, INVALID, NULL, param, "%s: %s", param, msg);
}

static Status bad_type(OaiError *e, const char *param, const char *want, const json_t *v) {
    return bad(e, param, "expected %s (got %s)", want, chat_json_type_name(v));
}

/* ------------------------------------------------------ limits and loading */

OaiLimits oai_default_limits(void) {
    return (OaiLimits){.max_body_bytes = OAI_MAX_BODY_BYTES,
                       .max_json_depth = OAI_MAX_JSON_DEPTH,
                       .max_messages = OAI_MAX_MESSAGES,
                       .max_n = OAI_MAX_N,
                       .max_tokens = OAI_MAX_TOKENS_LIMIT,
                       .max_logit_bias = OAI_MAX_LOGIT_BIAS};
}

int oai_json_depth(const char *body, size_t len, int limit) {
    int depth = 0, max = 0;
    bool in_str = false;
    for (size_t i = 0; i < len; i++) {
        char c = body[i];
        if (in_str) {
            if (c == '\\')
                i++; /* skip the escaped byte (\" and \\ included) */
            else if (c == '"')
                in_str = false;
        } else if (c == '"') {
            in_str = true;
        } else if (c == '[' || c == '{') {
            if (++depth > max) {
                max = depth;
                if (max > limit)
                    return limit + 1;
            }
        } else if ((c == ']' || c == '}') && depth > 0) {
            depth--;
        }
    }
    return max;
}

void oai_json_path_at(const char *body, size_t len, size_t off, char *out, size_t cap) {
    struct {
        bool obj, want_key;
        long idx;
        const char *key;
        size_t klen;
    } st[OAI_MAX_JSON_DEPTH + 1];
    int d = 0;
    bool in_str = false;
    size_t str_at = 0;
    if (cap == 0)
        return;
    out[0] = '\0';
    for (size_t i = 0; i < len && i < off; i++) {
        char c = body[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"') {
                in_str = false;
                if (d > 0 && st[d - 1].obj && st[d - 1].want_key)
                    st[d - 1].key = body + str_at, st[d - 1].klen = i - str_at;
            }
        } else if (c == '"') {
            in_str = true;
            str_at = i + 1;
        } else if ((c == '{' || c == '[') && d <= OAI_MAX_JSON_DEPTH) {
            st[d].obj = c == '{';
            st[d].want_key = c == '{';
            st[d].idx = 0;
            st[d].key = NULL;
            st[d].klen = 0;
            d++;
        } else if ((c == '}' || c == ']') && d > 0) {
            d--;
        } else if (c == ',' && d > 0) {
            st[d - 1].idx++;
            st[d - 1].want_key = st[d - 1].obj;
        } else if (c == ':' && d > 0) {
            st[d - 1].want_key = false;
        }
    }
    size_t n = 0;
    for (int k = 0; k < d && n + 1 < cap; k++) {
        int w;
        if (!st[k].obj)
            w = snprintf(out + n, cap - n, "[%ld]", st[k].idx);
        else if (st[k].key && !st[k].want_key)
            w = snprintf(out + n, cap - n, "%s%.*s", n ? "." : "",
                         (int)(st[k].klen < 64 ? st[k].klen : 64), st[k].key);
        else
            break; /* inside an object, before its key: no field yet */
        if (w < 0 || (size_t)w >= cap - n) {
            out[n] = '\0';
            break;
        }
        n += (size_t)w;
    }
    /* keys are raw JSON text: keep the param printable ASCII (an escape, a
     * control byte or a non-ASCII byte becomes '?') */
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)out[i] < 0x20 || (unsigned char)out[i] >= 0x7f || out[i] == '"' ||
            out[i] == '\\')
            out[i] = '?';
}

json_t *oai_parse_object(const char *body, size_t len, const OaiLimits *lim, OaiError *e) {
    OaiLimits def = oai_default_limits();
    if (!lim)
        lim = &def;
    if (len > lim->max_body_bytes) {
        oai_error_set(e, 413, INVALID, "request_too_large", NULL,
                      "request body: %zu bytes is above the limit of %zu bytes", len,
                      lim->max_body_bytes);
        return NULL;
    }
    if (!body)
        body = "";
    if (oai_json_depth(body, len, lim->max_json_depth) > lim->max_json_depth) {
        oai_error_set(e, 400, INVALID, NULL, NULL, "request body: JSON nesting deeper than %d",
                      lim->max_json_depth);
        return NULL;
    }
    json_error_t je;
    json_t *root = json_loadb(body, len, JSON_DECODE_ANY, &je);
    if (!root) {
        /* A number JSON allows but 64 bits cannot hold is a value out of
         * range, named like every other one (param: the field it is in). */
        if (json_error_code(&je) == json_error_numeric_overflow) {
            char param[OAI_MAX_PARAM_BYTES];
            oai_json_path_at(body, len, (size_t)je.position, param, sizeof param);
            oai_error_set(e, 400, INVALID, NULL, param[0] ? param : NULL,
                          "%s: the number at line %d column %d does not fit in 64 bits",
                          param[0] ? param : "request body", je.line, je.column);
            return NULL;
        }
        oai_error_set(e, 400, INVALID, NULL, NULL,
                      "request body: invalid JSON at line %d column %d: %s", je.line, je.column,
                      je.text);
        return NULL;
    }
    if (!json_is_object(root)) {
        oai_error_set(e, 400, INVALID, NULL, NULL, "request body: expected a JSON object (got %s)",
                      chat_json_type_name(root));
        json_decref(root);
        return NULL;
    }
    return root;
}

/* ------------------------------------------------------------------ fields */

/* The field 'key' of 'o', or NULL when absent or JSON null (the default). */
static json_t *field(const json_t *o, const char *key) {
    json_t *v = json_object_get(o, key);
    return v && !json_is_null(v) ? v : NULL;
}

/* A number (integer or real) in [lo, hi] (lo excluded when 'lo_open'). */
static Status num_value(const json_t *v, const char *param, double lo, double hi, bool lo_open,
                        double *out, OaiError *e) {
    if (!json_is_number(v))
        return bad_type(e, param, "a number", v);
    double x = json_number_value(v);
    if (!(lo_open ? x > lo : x >= lo) || !(x <= hi))
        return bad(e, param, "%g is out of range %s%g, %g]", x, lo_open ? "(" : "[", lo, hi);
    *out = x;
    return STATUS_OK;
}

static Status field_float(const json_t *o, const char *key, double lo, double hi, bool lo_open,
                          float *out, OaiError *e) {
    const json_t *v = field(o, key);
    double x;
    if (!v)
        return STATUS_OK;
    if (num_value(v, key, lo, hi, lo_open, &x, e))
        return STATUS_INVALID;
    *out = (float)x;
    return STATUS_OK;
}

/* An integer in [lo, hi]: a JSON integer, or a real with an integral value. */
static Status int_value(const json_t *v, const char *param, long long lo, long long hi,
                        long long *out, OaiError *e) {
    if (json_is_integer(v)) {
        long long x = json_integer_value(v);
        if (x < lo)
            return bad(e, param, "%lld is below the minimum %lld", x, lo);
        if (x > hi)
            return bad(e, param, "%lld is above the limit %lld", x, hi);
        *out = x;
        return STATUS_OK;
    }
    if (!json_is_real(v))
        return bad_type(e, param, "an integer", v);
    double x = json_real_value(v);
    if (x != floor(x))
        return bad(e, param, "%g is not an integer", x);
    char num[32]; /* 1e12 as 1000000000000; 1e300 as 1e+300, not 301 digits */
    snprintf(num, sizeof num, fabs(x) < 1e18 ? "%.0f" : "%g", x);
    if (x < (double)lo)
        return bad(e, param, "%s is below the minimum %lld", num, lo);
    if (x > (double)hi || x >= 0x1p63)
        return bad(e, param, "%s is above the limit %lld", num, hi);
    *out = (long long)x;
    return STATUS_OK;
}

static Status field_int(const json_t *o, const char *key, long long lo, long long hi, int *out,
                        OaiError *e) {
    const json_t *v = field(o, key);
    long long x;
    if (!v)
        return STATUS_OK;
    if (int_value(v, key, lo, hi, &x, e))
        return STATUS_INVALID;
    *out = (int)x;
    return STATUS_OK;
}

static Status field_bool(const json_t *o, const char *key, bool *out, OaiError *e) {
    const json_t *v = field(o, key);
    if (!v)
        return STATUS_OK;
    if (!json_is_boolean(v))
        return bad_type(e, key, "a boolean", v);
    *out = json_is_true(v);
    return STATUS_OK;
}

/* A string of at most 'max' bytes copied into out[max + 1]. */
static Status field_str(const json_t *o, const char *key, char *out, size_t max, OaiError *e) {
    const json_t *v = field(o, key);
    if (!v)
        return STATUS_OK;
    if (!json_is_string(v))
        return bad_type(e, key, "a string", v);
    size_t n = json_string_length(v);
    if (n > max)
        return bad(e, key, "%zu bytes is above the limit of %zu bytes", n, max);
    memcpy(out, json_string_value(v), n);
    out[n] = '\0';
    return STATUS_OK;
}

/* --------------------------------------------------------------- messages */

static const char *const ROLES[] = {"system", "developer", "user", "assistant", "tool"};

static Status check_part(const json_t *p, size_t i, size_t j, OaiError *e) {
    char param[96];
    snprintf(param, sizeof param, "messages[%zu].content[%zu]", i, j);
    if (!json_is_object(p))
        return bad_type(e, param, "a content part object", p);
    const json_t *type = json_object_get(p, "type");
    if (!json_is_string(type)) {
        snprintf(param, sizeof param, "messages[%zu].content[%zu].type", i, j);
        return type ? bad_type(e, param, "a string", type) : bad(e, param, "required");
    }
    const char *t = json_string_value(type);
    if (strcmp(t, "text") != 0)
        return bad(e, param, "only text parts are supported (got type '%.32s')", t);
    const json_t *text = json_object_get(p, "text");
    if (!json_is_string(text)) {
        snprintf(param, sizeof param, "messages[%zu].content[%zu].text", i, j);
        return text ? bad_type(e, param, "a string", text) : bad(e, param, "required");
    }
    return STATUS_OK;
}

static Status check_role(const json_t *m, size_t i, bool *assistant, OaiError *e) {
    char param[96];
    snprintf(param, sizeof param, "messages[%zu].role", i);
    const json_t *role = field(m, "role");
    if (!role)
        return bad(e, param, "required");
    if (!json_is_string(role))
        return bad_type(e, param, "a string", role);
    for (size_t r = 0; r < sizeof ROLES / sizeof ROLES[0]; r++) {
        if (strcmp(json_string_value(role), ROLES[r]) == 0) {
            *assistant = strcmp(ROLES[r], "assistant") == 0;
            return STATUS_OK;
        }
    }
    return bad(e, param,
               "unknown role '%.32s' (expected system, developer, user, assistant or tool)",
               json_string_value(role));
}

/* A string field of object 'o' (param "messages[i].<key>"), at most 'max'
 * bytes; absent: an error when 'required', else *out = NULL. */
static Status msg_str(const json_t *o, const char *key, const char *prefix, size_t max,
                      bool required, const char **out, OaiError *e) {
    char param[OAI_MAX_PARAM_BYTES];
    snprintf(param, sizeof param, "%s.%s", prefix, key);
    const json_t *v = field(o, key);
    *out = NULL;
    if (!v)
        return required ? bad(e, param, "required") : STATUS_OK;
    if (!json_is_string(v))
        return bad_type(e, param, "a string", v);
    if (json_string_length(v) > max)
        return bad(e, param, "%zu bytes is above the limit of %zu bytes", json_string_length(v),
                   max);
    *out = json_string_value(v);
    return STATUS_OK;
}

/* An assistant message's tool_calls: [{"id", "type": "function", "function":
 * {"name", "arguments"}}], ids distinct. */
static Status check_tool_calls(const json_t *tc, size_t i, OaiError *e) {
    char param[OAI_MAX_PARAM_BYTES];
    snprintf(param, sizeof param, "messages[%zu].tool_calls", i);
    if (!json_is_array(tc))
        return bad_type(e, param, "an array", tc);
    size_t n = json_array_size(tc);
    if (n == 0)
        return bad(e, param, "empty (leave tool_calls out instead)");
    if (n > OAI_MAX_TOOL_CALLS)
        return bad(e, param, "%zu tool calls is above the limit of %d", n, OAI_MAX_TOOL_CALLS);
    for (size_t j = 0; j < n; j++) {
        const json_t *c = json_array_get(tc, j), *fn;
        const char *id, *type, *name, *args;
        char at[80], fat[OAI_MAX_PARAM_BYTES];
        snprintf(at, sizeof at, "messages[%zu].tool_calls[%zu]", i, j);
        if (!json_is_object(c))
            return bad_type(e, at, "an object", c);
        if (msg_str(c, "id", at, OAI_MAX_ID_BYTES, true, &id, e) ||
            msg_str(c, "type", at, 64, true, &type, e))
            return STATUS_INVALID;
        if (strcmp(type, "function") != 0) {
            snprintf(fat, sizeof fat, "%s.type", at);
            return bad(e, fat, "only 'function' tool calls are supported (got '%.32s')", type);
        }
        snprintf(fat, sizeof fat, "%s.function", at);
        if (!(fn = field(c, "function")))
            return bad(e, fat, "required");
        if (!json_is_object(fn))
            return bad_type(e, fat, "an object", fn);
        if (msg_str(fn, "name", fat, 256, true, &name, e) ||
            msg_str(fn, "arguments", fat, OAI_MAX_BODY_BYTES, true, &args, e))
            return STATUS_INVALID;
        for (size_t k = 0; k < j; k++)
            if (!strcmp(id, json_string_value(json_object_get(json_array_get(tc, k), "id")))) {
                snprintf(fat, sizeof fat, "%s.id", at);
                return bad(e, fat, "'%.64s' is also the id of tool_calls[%zu]", id, k);
            }
    }
    return STATUS_OK;
}

static Status check_message(const json_t *m, size_t i, OaiError *e) {
    char param[96];
    snprintf(param, sizeof param, "messages[%zu]", i);
    if (!json_is_object(m))
        return bad_type(e, param, "an object", m);
    bool assistant = false;
    if (check_role(m, i, &assistant, e))
        return STATUS_INVALID;
    const char *name;
    if (msg_str(m, "name", param, 256, false, &name, e))
        return STATUS_INVALID;
    const json_t *tc = field(m, "tool_calls");
    if (tc && !assistant) {
        snprintf(param, sizeof param, "messages[%zu].tool_calls", i);
        return bad(e, param, "only assistant messages have tool_calls");
    }
    if (tc && check_tool_calls(tc, i, e))
        return STATUS_INVALID;
    snprintf(param, sizeof param, "messages[%zu].content", i);
    const json_t *content = field(m, "content");
    if (!content)
        return assistant && tc ? STATUS_OK
                               : bad(e, param,
                                     "required (null only for assistant messages "
                                     "with tool_calls)");
    if (json_is_string(content))
        return STATUS_OK;
    if (!json_is_array(content))
        return bad_type(e, param, "a string or an array of text parts", content);
    for (size_t j = 0; j < json_array_size(content); j++)
        if (check_part(json_array_get(content, j), i, j, e))
            return STATUS_INVALID;
    return STATUS_OK;
}

/* Tool messages answer the tool calls of the assistant message before
 * them, each call exactly once and before any other message (OpenAI's
 * rule): 'calls' is that message's tool_calls (index 'at'), answered[k]
 * marks the calls answered so far. */
typedef struct {
    const json_t *calls;
    size_t at;
    bool answered[OAI_MAX_TOOL_CALLS];
} ToolTurn;

static Status tool_turn_close(const ToolTurn *t, OaiError *e) {
    if (!t->calls)
        return STATUS_OK;
    for (size_t k = 0; k < json_array_size(t->calls); k++) {
        if (t->answered[k])
            continue;
        char param[OAI_MAX_PARAM_BYTES];
        snprintf(param, sizeof param, "messages[%zu].tool_calls", t->at);
        return bad(e, param,
                   "an assistant message with tool_calls must be followed by a tool message "
                   "answering each of them; '%.64s' has no answer",
                   json_string_value(json_object_get(json_array_get(t->calls, k), "id")));
    }
    return STATUS_OK;
}

static Status tool_turn_step(ToolTurn *t, const json_t *m, size_t i, OaiError *e) {
    const char *role = json_string_value(json_object_get(m, "role"));
    char param[OAI_MAX_PARAM_BYTES];
    snprintf(param, sizeof param, "messages[%zu]", i);
    if (strcmp(role, "tool") != 0) {
        if (tool_turn_close(t, e))
            return STATUS_INVALID;
        t->calls = !strcmp(role, "assistant") ? field(m, "tool_calls") : NULL;
        t->at = i;
        memset(t->answered, 0, sizeof t->answered);
        return STATUS_OK;
    }
    const char *id;
    if (msg_str(m, "tool_call_id", param, OAI_MAX_ID_BYTES, true, &id, e))
        return STATUS_INVALID;
    snprintf(param, sizeof param, "messages[%zu].tool_call_id", i);
    if (!t->calls)
        return bad(e, param,
                   "a tool message must answer a tool call of the assistant message before it, "
                   "and messages[%zu] has no tool_calls",
                   t->at);
    for (size_t k = 0; k < json_array_size(t->calls); k++) {
        if (strcmp(id, json_string_value(json_object_get(json_array_get(t->calls, k), "id"))))
            continue;
        if (t->answered[k])
            return bad(e, param, "'%.64s' was already answered", id);
        t->answered[k] = true;
        return STATUS_OK;
    }
    return bad(e, param, "'%.64s' is not the id of a tool call in messages[%zu]", id, t->at);
}

static Status parse_messages(OaiRequest *req, const OaiLimits *lim, OaiError *e) {
    json_t *msgs = field(req->root, "messages");
    if (!msgs)
        return bad(e, "messages", "required");
    if (!json_is_array(msgs))
        return bad_type(e, "messages", "an array", msgs);
    size_t n = json_array_size(msgs);
    if (n == 0)
        return bad(e, "messages", "must contain at least one message");
    if (n > (size_t)lim->max_messages)
        return bad(e, "messages", "%zu messages is above the limit of %d", n, lim->max_messages);
    ToolTurn turn = {0};
    for (size_t i = 0; i < n; i++)
        if (check_message(json_array_get(msgs, i), i, e) ||
            tool_turn_step(&turn, json_array_get(msgs, i), i, e))
            return STATUS_INVALID;
    if (tool_turn_close(&turn, e))
        return STATUS_INVALID;
    req->messages = msgs;
    return STATUS_OK;
}

/* ------------------------------------------------------- sampling fields */

static Status parse_stop_one(OaiRequest *req, const json_t *v, const char *param, OaiError *e) {
    if (!json_is_string(v))
        return bad_type(e, param, "a string", v);
    size_t n = json_string_length(v);
    if (n == 0)
        return bad(e, param, "empty stop string");
    if (n > OAI_MAX_STOP_BYTES)
        return bad(e, param, "%zu bytes is above the limit of %d bytes", n, OAI_MAX_STOP_BYTES);
    char *s = malloc(n + 1);
    if (!s)
        return oai_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
    memcpy(s, json_string_value(v), n);
    s[n] = '\0';
    req->stop[req->n_stop++] = s;
    return STATUS_OK;
}

static Status parse_stop(OaiRequest *req, OaiError *e) {
    const json_t *v = field(req->root, "stop");
    if (!v)
        return STATUS_OK;
    if (json_is_string(v))
        return parse_stop_one(req, v, "stop", e);
    if (!json_is_array(v))
        return bad_type(e, "stop", "a string or an array of strings", v);
    size_t n = json_array_size(v);
    if (n > OAI_MAX_STOP)
        return bad(e, "stop", "%zu stop strings is above the limit of %d", n, OAI_MAX_STOP);
    for (size_t i = 0; i < n; i++) {
        char param[32];
        snprintf(param, sizeof param, "stop[%zu]", i);
        if (parse_stop_one(req, json_array_get(v, i), param, e))
            return STATUS_INVALID;
    }
    return STATUS_OK;
}

/* A decimal token id 0..2^31-1 (digits only); -1 when 'key' is not one. */
static long long bias_key(const char *key) {
    long long x = 0;
    if (!*key)
        return -1;
    for (const char *p = key; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        x = x * 10 + (*p - '0');
        if (x > INT32_MAX)
            return -1;
    }
    return x;
}

static Status parse_logit_bias(OaiRequest *req, const OaiLimits *lim, OaiError *e) {
    const json_t *v = field(req->root, "logit_bias");
    if (!v)
        return STATUS_OK;
    if (!json_is_object(v))
        return bad_type(e, "logit_bias", "an object", v);
    size_t n = json_object_size(v);
    if (n > (size_t)lim->max_logit_bias)
        return bad(e, "logit_bias", "%zu entries is above the limit of %d", n, lim->max_logit_bias);
    if (n == 0)
        return STATUS_OK;
    req->bias = calloc(n, sizeof *req->bias);
    if (!req->bias)
        return oai_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
    const char *key;
    const json_t *val;
    json_object_foreach((json_t *)v, key, val) {
        long long tok = bias_key(key);
        if (tok < 0)
            return bad(e, "logit_bias", "key '%.32s' is not a token id (a decimal integer 0..%d)",
                       key, INT32_MAX);
        char param[48];
        snprintf(param, sizeof param, "logit_bias.%lld", tok);
        double b;
        if (num_value(val, param, -100, 100, false, &b, e))
            return STATUS_INVALID;
        req->bias[req->n_bias++] = (OaiBias){.token = (int32_t)tok, .bias = (float)b};
    }
    return STATUS_OK;
}

static Status parse_stream(OaiRequest *req, OaiError *e) {
    if (field_bool(req->root, "stream", &req->stream, e))
        return STATUS_INVALID;
    const json_t *so = field(req->root, "stream_options");
    if (!so)
        return STATUS_OK;
    if (!json_is_object(so))
        return bad_type(e, "stream_options", "an object", so);
    if (!req->stream)
        return bad(e, "stream_options", "only allowed when stream is true");
    const json_t *iu = field(so, "include_usage");
    if (iu && !json_is_boolean(iu))
        return bad_type(e, "stream_options.include_usage", "a boolean", iu);
    req->include_usage = iu && json_is_true(iu);
    return STATUS_OK;
}

static Status parse_max_tokens(OaiRequest *req, const OaiLimits *lim, OaiError *e) {
    int mt = -1, mct = -1;
    if (field_int(req->root, "max_tokens", 1, lim->max_tokens, &mt, e) ||
        field_int(req->root, "max_completion_tokens", 1, lim->max_tokens, &mct, e))
        return STATUS_INVALID;
    req->max_tokens = mct >= 0 ? mct : mt;
    return STATUS_OK;
}

static Status parse_seed(OaiRequest *req, OaiError *e) {
    const json_t *v = field(req->root, "seed");
    long long s;
    if (!v)
        return STATUS_OK;
    if (int_value(v, "seed", LLONG_MIN, LLONG_MAX, &s, e))
        return STATUS_INVALID;
    req->has_seed = true;
    req->seed = (uint64_t)s;
    return STATUS_OK;
}

/* The fields chat and completion share, in a fixed order. */
static Status parse_common(OaiRequest *req, const OaiLimits *lim, OaiError *e) {
    const json_t *r = req->root;
    req->n = 1;
    req->max_tokens = -1;
    req->temperature = 1;
    req->top_p = 1;
    req->repeat_penalty = 1;
    if (field_str(r, "model", req->model, OAI_MAX_MODEL_BYTES, e) ||
        field_int(r, "n", 1, lim->max_n, &req->n, e) || parse_stream(req, e) ||
        parse_stop(req, e) || parse_max_tokens(req, lim, e) ||
        field_float(r, "temperature", 0, 2, false, &req->temperature, e) ||
        field_float(r, "top_p", 0, 1, false, &req->top_p, e) ||
        field_int(r, "top_k", 0, INT_MAX, &req->top_k, e) ||
        field_float(r, "min_p", 0, 1, false, &req->min_p, e) || parse_seed(req, e) ||
        field_float(r, "presence_penalty", -2, 2, false, &req->presence_penalty, e) ||
        field_float(r, "frequency_penalty", -2, 2, false, &req->frequency_penalty, e) ||
        field_float(r, "repeat_penalty", 0, 10, true, &req->repeat_penalty, e) ||
        parse_logit_bias(req, lim, e) || field_str(r, "user", req->user, OAI_MAX_USER_BYTES, e))
        return STATUS_INVALID;
    static const struct {
        const char *name;
        unsigned bit;
    } sampling[] = {{"temperature", PRESET_TEMP},
                    {"top_p", PRESET_TOP_P},
                    {"top_k", PRESET_TOP_K},
                    {"min_p", PRESET_MIN_P},
                    {"repeat_penalty", PRESET_REPEAT},
                    {"presence_penalty", PRESET_PRESENCE},
                    {"frequency_penalty", PRESET_FREQUENCY},
                    {"seed", PRESET_SEED}};
    for (size_t i = 0; i < sizeof sampling / sizeof sampling[0]; i++)
        if (field(r, sampling[i].name))
            req->sampling_set |= sampling[i].bit;
    return STATUS_OK;
}

/* ---------------------------------------------------------- chat / legacy */

static Status parse_chat_logprobs(OaiRequest *req, OaiError *e) {
    if (field_bool(req->root, "logprobs", &req->logprobs, e))
        return STATUS_INVALID;
    const json_t *v = field(req->root, "top_logprobs");
    long long k;
    if (!v)
        return STATUS_OK;
    if (int_value(v, "top_logprobs", 0, OAI_MAX_TOP_LOGPROBS, &k, e))
        return STATUS_INVALID;
    if (!req->logprobs)
        return bad(e, "top_logprobs", "only allowed when logprobs is true");
    req->top_logprobs = (int)k;
    return STATUS_OK;
}

/* ------------------------------------------- structured output and tools */

/* A function or schema name: [a-zA-Z0-9_-]{1,64} (OpenAI's rule). */
static Status check_name(const json_t *v, const char *param, OaiError *e) {
    if (!json_is_string(v))
        return v ? bad_type(e, param, "a string", v) : bad(e, param, "required");
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (n == 0 || n > OAI_MAX_NAME_BYTES)
        return bad(e, param, "%zu bytes (a name has 1 to %d)", n, OAI_MAX_NAME_BYTES);
    for (size_t i = 0; i < n; i++)
        if (!(isalnum((unsigned char)s[i]) || s[i] == '_' || s[i] == '-'))
            return bad(e, param, "'%.64s': only a-z, A-Z, 0-9, '_' and '-' are allowed", s);
    return STATUS_OK;
}

/* grammar (llama.cpp's GBNF field) and response_format. */
static Status parse_format(OaiRequest *req, OaiError *e) {
    const json_t *g = field(req->root, "grammar");
    if (g) {
        if (!json_is_string(g))
            return bad_type(e, "grammar", "a string", g);
        if (json_string_length(g) > OAI_MAX_GRAMMAR_BYTES)
            return bad(e, "grammar", "%zu bytes is above the limit of %d bytes",
                       json_string_length(g), OAI_MAX_GRAMMAR_BYTES);
        req->grammar = json_string_value(g);
        req->grammar_len = json_string_length(g);
    }
    const json_t *rf = field(req->root, "response_format");
    if (!rf)
        return STATUS_OK;
    if (!json_is_object(rf))
        return bad_type(e, "response_format", "an object", rf);
    const json_t *type = json_object_get(rf, "type");
    if (!json_is_string(type))
        return type ? bad_type(e, "response_format.type", "a string", type)
                    : bad(e, "response_format.type", "required");
    const char *t = json_string_value(type);
    if (!strcmp(t, "text"))
        return STATUS_OK;
    if (!strcmp(t, "json_object")) {
        req->format = OAI_FORMAT_JSON_OBJECT;
    } else if (!strcmp(t, "json_schema")) {
        const json_t *js = json_object_get(rf, "json_schema");
        if (!json_is_object(js))
            return js ? bad_type(e, "response_format.json_schema", "an object", js)
                      : bad(e, "response_format.json_schema", "required with type json_schema");
        if (check_name(json_object_get(js, "name"), "response_format.json_schema.name", e))
            return STATUS_INVALID;
        const json_t *schema = json_object_get(js, "schema");
        if (schema && !json_is_object(schema) && !json_is_boolean(schema))
            return bad_type(e, "response_format.json_schema.schema", "an object", schema);
        const json_t *strict = json_object_get(js, "strict");
        if (strict && !json_is_boolean(strict) && !json_is_null(strict))
            return bad_type(e, "response_format.json_schema.strict", "a boolean", strict);
        req->format = OAI_FORMAT_JSON_SCHEMA;
        req->schema = schema; /* NULL: any JSON value (OpenAI makes schema optional) */
    } else {
        return bad(e, "response_format.type",
                   "'%.64s' is not one of 'text', 'json_object', 'json_schema'", t);
    }
    if (req->grammar)
        return bad(e, "grammar", "grammar and a JSON response_format cannot both be given");
    return STATUS_OK;
}

static Status parse_tool(const json_t *t, size_t i, OaiError *e) {
    char param[96];
    snprintf(param, sizeof param, "tools[%zu]", i);
    if (!json_is_object(t))
        return bad_type(e, param, "an object", t);
    const json_t *type = json_object_get(t, "type");
    snprintf(param, sizeof param, "tools[%zu].type", i);
    if (!json_is_string(type) || strcmp(json_string_value(type), "function"))
        return bad(e, param, "must be 'function' (the only tool type served)");
    const json_t *f = json_object_get(t, "function");
    snprintf(param, sizeof param, "tools[%zu].function", i);
    if (!json_is_object(f))
        return f ? bad_type(e, param, "an object", f) : bad(e, param, "required");
    snprintf(param, sizeof param, "tools[%zu].function.name", i);
    if (check_name(json_object_get(f, "name"), param, e))
        return STATUS_INVALID;
    const json_t *d = field(f, "description");
    snprintf(param, sizeof param, "tools[%zu].function.description", i);
    if (d && !json_is_string(d))
        return bad_type(e, param, "a string", d);
    const json_t *ps = field(f, "parameters");
    snprintf(param, sizeof param, "tools[%zu].function.parameters", i);
    if (ps && !json_is_object(ps))
        return bad_type(e, param, "an object (a JSON Schema)", ps);
    const json_t *strict = field(f, "strict");
    snprintf(param, sizeof param, "tools[%zu].function.strict", i);
    if (strict && !json_is_boolean(strict))
        return bad_type(e, param, "a boolean", strict);
    return STATUS_OK;
}

const char *oai_tool_name(const json_t *tools, size_t i) {
    return json_string_value(
        json_object_get(json_object_get(json_array_get(tools, i), "function"), "name"));
}

/* tools, tool_choice, parallel_tool_calls; and the deprecated functions. */
static Status parse_tools(OaiRequest *req, OaiError *e) {
    const json_t *r = req->root;
    if (field(r, "functions") || field(r, "function_call"))
        return bad(e, field(r, "functions") ? "functions" : "function_call",
                   "deprecated and not served: use tools and tool_choice");
    req->parallel_tool_calls = true;
    if (field_bool(r, "parallel_tool_calls", &req->parallel_tool_calls, e))
        return STATUS_INVALID;
    json_t *tools = field(r, "tools");
    if (tools) {
        if (!json_is_array(tools))
            return bad_type(e, "tools", "an array", tools);
        size_t n = json_array_size(tools);
        if (n > OAI_MAX_TOOLS)
            return bad(e, "tools", "%zu tools is above the limit of %d", n, OAI_MAX_TOOLS);
        for (size_t i = 0; i < n; i++) {
            if (parse_tool(json_array_get(tools, i), i, e))
                return STATUS_INVALID;
            for (size_t k = 0; k < i; k++)
                if (!strcmp(oai_tool_name(tools, k), oai_tool_name(tools, i))) {
                    char param[96];
                    snprintf(param, sizeof param, "tools[%zu].function.name", i);
                    return bad(e, param, "'%s' is also the name of tools[%zu]",
                               oai_tool_name(tools, i), k);
                }
        }
        req->tools = n ? tools : NULL;
    }
    req->tool_choice = req->tools ? OAI_TOOLS_AUTO : OAI_TOOLS_NONE;
    const json_t *tc = field(r, "tool_choice");
    if (!tc)
        return STATUS_OK;
    if (json_is_string(tc)) {
        const char *s = json_string_value(tc);
        if (!strcmp(s, "none"))
            req->tool_choice = OAI_TOOLS_NONE;
        else if (!strcmp(s, "auto"))
            req->tool_choice = OAI_TOOLS_AUTO;
        else if (!strcmp(s, "required"))
            req->tool_choice = OAI_TOOLS_REQUIRED;
        else
            return bad(e, "tool_choice",
                       "'%.64s' is not one of 'none', 'auto', 'required' or "
                       "{\"type\":\"function\",\"function\":{\"name\":...}}",
                       s);
    } else if (json_is_object(tc)) {
        const json_t *type = json_object_get(tc, "type");
        if (!json_is_string(type) || strcmp(json_string_value(type), "function"))
            return bad(e, "tool_choice.type", "must be 'function'");
        const json_t *f = json_object_get(tc, "function");
        if (!json_is_object(f))
            return bad(e, "tool_choice.function", "required: {\"name\": ...}");
        const json_t *name = json_object_get(f, "name");
        if (check_name(name, "tool_choice.function.name", e))
            return STATUS_INVALID;
        req->tool_choice = OAI_TOOLS_NAMED;
        req->tool_named = -1;
        for (size_t i = 0; i < json_array_size(req->tools); i++)
            if (!strcmp(oai_tool_name(req->tools, i), json_string_value(name)))
                req->tool_named = (int)i;
        if (req->tool_named < 0)
            return bad(e, "tool_choice.function.name", "'%s' is not the name of a tool in tools",
                       json_string_value(name));
    } else {
        return bad_type(e, "tool_choice", "a string or an object", tc);
    }
    if (req->tool_choice != OAI_TOOLS_NONE && !req->tools)
        return bad(e, "tool_choice", "only allowed when tools are given");
    return STATUS_OK;
}

/* prompt as [int] token ids ('param' names it in errors). */
static Status parse_prompt_ids(OaiRequest *req, const json_t *arr, const char *param, OaiError *e) {
    size_t n = json_array_size(arr);
    if (n == 0)
        return bad(e, param, "empty token id list");
    if (n > OAI_MAX_PROMPT_IDS)
        return bad(e, param, "%zu token ids is above the limit of %d", n, OAI_MAX_PROMPT_IDS);
    req->prompt_ids = malloc(n * sizeof *req->prompt_ids);
    if (!req->prompt_ids)
        return oai_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
    for (size_t i = 0; i < n; i++) {
        char p[64];
        snprintf(p, sizeof p, "%s[%zu]", param, i);
        long long id;
        if (int_value(json_array_get(arr, i), p, 0, INT32_MAX, &id, e))
            return STATUS_INVALID;
        req->prompt_ids[i] = (int32_t)id;
    }
    req->n_prompt_ids = (int)n;
    return STATUS_OK;
}

static Status parse_prompt_text(OaiRequest *req, const json_t *s) {
    size_t n = json_string_length(s);
    req->prompt = malloc(n + 1);
    if (!req->prompt)
        return STATUS_NOMEM;
    memcpy(req->prompt, json_string_value(s), n);
    req->prompt[n] = '\0';
    req->prompt_len = n;
    return STATUS_OK;
}

static Status parse_prompt(OaiRequest *req, OaiError *e) {
    const json_t *p = field(req->root, "prompt");
    if (!p)
        return bad(e, "prompt", "required");
    if (json_is_array(p) && json_array_size(p) == 0)
        return bad(e, "prompt", "empty array");
    if (json_is_array(p)) {
        const json_t *first = json_array_get(p, 0);
        if (json_is_string(first) || json_is_array(first)) {
            if (json_array_size(p) > 1)
                return bad(e, "prompt",
                           "%zu prompts given; only one prompt per request is supported",
                           json_array_size(p));
            if (json_is_array(first))
                return parse_prompt_ids(req, first, "prompt[0]", e);
            p = first;
        } else {
            return parse_prompt_ids(req, p, "prompt", e);
        }
    }
    if (!json_is_string(p))
        return bad_type(e, "prompt", "a string, an array of token ids or an array of one string",
                        p);
    if (parse_prompt_text(req, p))
        return oai_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
    return STATUS_OK;
}

static Status parse_completion_extra(OaiRequest *req, OaiError *e) {
    bool echo = false;
    if (field_bool(req->root, "echo", &echo, e))
        return STATUS_INVALID;
    if (echo)
        return bad(e, "echo", "echo=true is not supported");
    const json_t *v = field(req->root, "logprobs");
    long long k;
    if (!v)
        return STATUS_OK;
    if (int_value(v, "logprobs", 0, OAI_MAX_TOP_LOGPROBS, &k, e))
        return STATUS_INVALID;
    req->logprobs = true;
    req->top_logprobs = (int)k;
    return STATUS_OK;
}

static Status parse_request(OaiKind kind, const char *body, size_t len, const OaiLimits *lim,
                            OaiRequest *req, OaiError *e) {
    OaiLimits def = oai_default_limits();
    if (!lim)
        lim = &def;
    memset(req, 0, sizeof *req);
    req->kind = kind;
    req->root = oai_parse_object(body, len, lim, e);
    if (!req->root)
        return STATUS_INVALID;
    Status st = kind == OAI_CHAT ? parse_messages(req, lim, e) : parse_prompt(req, e);
    if (!st)
        st = parse_common(req, lim, e);
    if (!st)
        st = kind == OAI_CHAT ? parse_chat_logprobs(req, e) : parse_completion_extra(req, e);
    if (!st && kind == OAI_CHAT)
        st = parse_format(req, e);
    if (!st && kind == OAI_CHAT)
        st = parse_tools(req, e);
    if (st) {
        oai_request_free(req);
        return STATUS_INVALID;
    }
    return STATUS_OK;
}

Status oai_parse_chat(const char *body, size_t len, const OaiLimits *lim, OaiRequest *req,
                      OaiError *e) {
    return parse_request(OAI_CHAT, body, len, lim, req, e);
}

Status oai_parse_completion(const char *body, size_t len, const OaiLimits *lim, OaiRequest *req,
                            OaiError *e) {
    return parse_request(OAI_COMPLETION, body, len, lim, req, e);
}

/* ------------------------------------------------------------ embeddings */

static Status embed_ids(const json_t *arr, const char *param, OaiError *e) {
    size_t n = json_array_size(arr);
    if (n == 0)
        return bad(e, param, "empty (an input needs at least one token)");
    if (n > OAI_MAX_PROMPT_IDS)
        return bad(e, param, "%zu token ids is above the limit of %d", n, OAI_MAX_PROMPT_IDS);
    size_t i;
    const json_t *t;
    json_array_foreach(arr, i, t) {
        if (!json_is_integer(t) || json_integer_value(t) < 0 || json_integer_value(t) > INT32_MAX)
            return bad(e, param, "[%zu]: expected a token id (an integer in [0, 2^31))", i);
    }
    return STATUS_OK;
}

Status oai_parse_embeddings(const char *body, size_t len, const OaiLimits *lim,
                            OaiEmbedRequest *req, OaiError *e) {
    OaiLimits def = oai_default_limits();
    memset(req, 0, sizeof *req);
    if (!(req->root = oai_parse_object(body, len, lim ? lim : &def, e)))
        return STATUS_INVALID;
    const json_t *r = req->root;
    Status st = field_str(r, "model", req->model, OAI_MAX_MODEL_BYTES, e);
    if (!st)
        st = field_str(r, "user", req->user, OAI_MAX_USER_BYTES, e);
    json_t *in = field(r, "input");
    if (!st && !in)
        st = bad(e, "input", "required");
    if (!st && json_is_string(in)) {
        if (!json_string_length(in))
            st = bad(e, "input", "empty (OpenAI refuses an empty string too)");
        req->inputs = json_pack("[O]", in);
    } else if (!st && json_is_array(in)) {
        size_t n = json_array_size(in);
        const json_t *first = json_array_get(in, 0);
        if (n == 0)
            st = bad(e, "input", "an empty array");
        else if (json_is_integer(first)) { /* one input as token ids */
            st = embed_ids(in, "input", e);
            req->ids = true;
            req->inputs = json_pack("[O]", in);
        } else if (n > OAI_MAX_EMBED_INPUTS) {
            st = bad(e, "input", "%zu inputs is above the limit of %d", n, OAI_MAX_EMBED_INPUTS);
        } else {
            req->ids = json_is_array(first);
            char param[64];
            for (size_t i = 0; !st && i < n; i++) {
                const json_t *x = json_array_get(in, i);
                snprintf(param, sizeof param, "input[%zu]", i);
                if (req->ids ? !json_is_array(x) : !json_is_string(x))
                    st = bad_type(e, param,
                                  req->ids ? "an array of token ids (as input[0])"
                                           : "a string (as input[0])",
                                  x);
                else if (req->ids)
                    st = embed_ids(x, param, e);
                else if (!json_string_length(x))
                    st = bad(e, param, "an empty string");
            }
            req->inputs = json_incref(in);
        }
    } else if (!st) {
        st = bad_type(e, "input", "a string, an array of strings or of token ids", in);
    }
    const json_t *fmt = field(r, "encoding_format");
    if (!st && fmt) {
        if (!json_is_string(fmt) ||
            (strcmp(json_string_value(fmt), "float") && strcmp(json_string_value(fmt), "base64")))
            st = bad(e, "encoding_format", "must be 'float' or 'base64'");
        else
            req->base64 = !strcmp(json_string_value(fmt), "base64");
    }
    if (!st)
        st = field_int(r, "dimensions", 1, INT32_MAX, &req->dimensions, e);
    if (st) {
        oai_embed_request_free(req);
        return STATUS_INVALID;
    }
    req->n_inputs = (int)json_array_size(req->inputs);
    return STATUS_OK;
}

void oai_embed_request_free(OaiEmbedRequest *req) {
    if (!req)
        return;
    json_decref(req->inputs);
    json_decref(req->root);
    memset(req, 0, sizeof *req);
}

void oai_request_free(OaiRequest *req) {
    if (!req)
        return;
    json_decref(req->root);
    free(req->prompt);
    free(req->prompt_ids);
    free(req->bias);
    for (int i = 0; i < req->n_stop; i++)
        free(req->stop[i]);
    memset(req, 0, sizeof *req);
}

/* ------------------------------------------------------------ UTF-8 text */

/* 's' with invalid sequences replaced by U+FFFD: 's' itself when it is
 * valid, else a new buffer (*owned set) of *out_len bytes; NULL when out
 * of memory. */
static const char *utf8_clean(const char *s, size_t len, size_t *out_len, char **owned) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    int k;
    *owned = NULL;
    while (i < len && (k = utf8_seq(u + i, len - i)) > 0)
        i += (size_t)k;
    if (i == len) {
        *out_len = len;
        return s;
    }
    if (len > (SIZE_MAX - 1) / 3)
        return NULL;
    char *out = malloc(3 * len + 1);
    if (!out)
        return NULL;
    memcpy(out, s, i);
    size_t o = i;
    while (i < len) {
        k = utf8_seq(u + i, len - i);
        if (k > 0) {
            memcpy(out + o, s + i, (size_t)k);
            o += (size_t)k;
            i += (size_t)k;
        } else {
            memcpy(out + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i += (size_t)-k;
        }
    }
    *owned = out;
    *out_len = o;
    return out;
}

json_t *oai_string_bytes(const char *s, size_t len) {
    char *owned;
    size_t n;
    const char *t = utf8_clean(s ? s : "", s ? len : 0, &n, &owned);
    json_t *j = t ? json_stringn(t, n) : NULL;
    free(owned);
    return j;
}

/* ---------------------------------------------------------------- builders */

/* A float as the double of its shortest decimal form, so that the dump
 * (JSON_REAL_PRECISION(15)) prints -0.01f as -0.01; -inf/NaN (which JSON
 * lacks) become -9999 as in OpenAI's logprobs. */
static json_t *real_json(float f) {
    if (!isfinite(f))
        return json_real(-9999.0);
    char buf[32];
    for (int p = 1; p <= 9; p++) {
        snprintf(buf, sizeof buf, "%.*g", p, (double)f);
        if (strtof(buf, NULL) == f)
            return json_real(strtod(buf, NULL));
    }
    return json_real((double)f);
}

static json_t *bytes_json(const char *s, size_t len) {
    json_t *a = json_array();
    for (size_t i = 0; a && i < len; i++)
        json_array_append_new(a, json_integer((unsigned char)s[i]));
    return a;
}

static json_t *str_json(const char *s) { return oai_string_bytes(s, s ? strlen(s) : 0); }

static json_t *token_json(const OaiTokenLogprob *t) {
    return json_pack("{s:o,s:o,s:o}", "token", oai_string_bytes(t->piece, t->piece_len), "logprob",
                     real_json(t->logprob), "bytes", bytes_json(t->piece, t->piece_len));
}

json_t *oai_logprob_entry(const OaiTokenLogprob *tok, const OaiTokenLogprob *top, int n_top) {
    json_t *tops = json_array();
    for (int i = 0; i < n_top; i++)
        json_array_append_new(tops, token_json(&top[i]));
    json_t *o = token_json(tok);
    json_object_set_new(o, "top_logprobs", tops);
    return o;
}

json_t *oai_completion_logprobs_new(void) {
    return json_pack("{s:[],s:[],s:[],s:[]}", "tokens", "token_logprobs", "top_logprobs",
                     "text_offset");
}

int oai_completion_logprobs_add(json_t *lp, const OaiTokenLogprob *tok, const OaiTokenLogprob *top,
                                int n_top, long long text_offset) {
    json_t *tops = json_object();
    for (int i = 0; tops && i < n_top; i++) {
        char *owned;
        size_t n;
        const char *k = utf8_clean(top[i].piece, top[i].piece_len, &n, &owned);
        int rc = k ? json_object_setn_new(tops, k, n, real_json(top[i].logprob)) : -1;
        free(owned);
        if (rc) {
            json_decref(tops);
            return -1;
        }
    }
    int rc = json_array_append_new(json_object_get(lp, "tokens"),
                                   oai_string_bytes(tok->piece, tok->piece_len));
    rc |= json_array_append_new(json_object_get(lp, "token_logprobs"), real_json(tok->logprob));
    rc |= json_array_append_new(json_object_get(lp, "top_logprobs"), tops);
    rc |= json_array_append_new(json_object_get(lp, "text_offset"), json_integer(text_offset));
    return rc ? -1 : 0;
}

json_t *oai_usage_json(const OaiUsage *u) {
    return json_pack("{s:i,s:i,s:I,s:{s:i},s:{s:i}}", "prompt_tokens", u->prompt_tokens,
                     "completion_tokens", u->completion_tokens, "total_tokens",
                     (json_int_t)u->prompt_tokens + u->completion_tokens, "prompt_tokens_details",
                     "cached_tokens", u->cached_tokens, "completion_tokens_details",
                     "reasoning_tokens", 0);
}

json_t *oai_envelope(const char *id, const char *object, long long created, const char *model,
                     const char *fingerprint) {
    return json_pack("{s:o,s:o,s:I,s:o,s:o,s:[]}", "id", str_json(id), "object", str_json(object),
                     "created", (json_int_t)created, "model", str_json(model), "system_fingerprint",
                     str_or_null(fingerprint), "choices");
}

/* Chat logprobs: NULL -> null, an array -> {"content":arr,"refusal":null}. */
static json_t *chat_logprobs(json_t *lp) {
    if (!lp)
        return json_null();
    return json_is_array(lp) ? json_pack("{s:o,s:n}", "content", lp, "refusal") : lp;
}

json_t *oai_chat_choice(int index, const char *text, size_t len, json_t *logprobs,
                        const char *finish_reason) {
    return json_pack("{s:i,s:{s:s,s:o,s:n},s:o,s:o}", "index", index, "message", "role",
                     "assistant", "content", oai_string_bytes(text, len), "refusal", "logprobs",
                     chat_logprobs(logprobs), "finish_reason", str_or_null(finish_reason));
}

json_t *oai_chat_chunk_choice(int index, bool role_first, const char *text, size_t len,
                              json_t *logprobs, const char *finish_reason) {
    json_t *delta = json_object();
    if (role_first)
        json_object_set_new(delta, "role", json_string("assistant"));
    if (text)
        json_object_set_new(delta, "content", oai_string_bytes(text, len));
    return json_pack("{s:i,s:o,s:o,s:o}", "index", index, "delta", delta, "logprobs",
                     chat_logprobs(logprobs), "finish_reason", str_or_null(finish_reason));
}

json_t *oai_completion_choice(int index, const char *text, size_t len, json_t *logprobs,
                              const char *finish_reason) {
    return json_pack("{s:i,s:o,s:o,s:o}", "index", index, "text", oai_string_bytes(text, len),
                     "logprobs", logprobs ? logprobs : json_null(), "finish_reason",
                     str_or_null(finish_reason));
}

json_t *oai_model_json(const char *id, long long created, const char *owned_by) {
    return json_pack("{s:o,s:s,s:I,s:o}", "id", str_json(id), "object", "model", "created",
                     (json_int_t)created, "owned_by", str_json(owned_by));
}

char *oai_dump(const json_t *j) {
    return j ? json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(15)) : NULL;
}
