/* chat.c - from an OpenAI-style message list to the prompt a model expects.
 *
 * Three steps: choose a template (override > the model's
 * tokenizer.chat_template > a built-in picked from the vocabulary), check
 * and normalise the messages (content parts joined into one string, every
 * field checked against its type and limits, errors naming the index and
 * field), render with the template engine (template.h), and tokenize the
 * result with input marking: special tokens only where the template's own
 * text put them.
 *
 * Deliberately not here: the Jinja engine (template.c), tokenization
 * (tokenizer/) and parsing tool calls back out of model output. Messages
 * reach the template as given, apart from the content-part join and, when
 * the format asks for it (ChatArgsMode, chat.h), tool-call arguments parsed
 * from their JSON text into objects. */
#include "chat/chat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHAT_NAME_MAX 64

struct ChatFormat {
    Template *tmpl;
    ChatBuiltin builtin;
    char name[CHAT_NAME_MAX];
    char *bos_text; /* owned, NUL-terminated; "" when the model has no BOS */
    char *eos_text; /* owned, NUL-terminated */
    ChatArgsMode args_mode;
    bool args_objects; /* CHAT_ARGS_AUTO's verdict, set by chat_format_set_arguments */
    char *src;         /* owned: the template's source, NUL-terminated */
    size_t src_len;
};

/* ---- small helpers ---- */

static char *dup_bytes(const char *s, size_t len) {
    char *p = malloc(len + 1);
    if (!p)
        return NULL;
    if (len)
        memcpy(p, s, len);
    p[len] = 0;
    return p;
}

const char *chat_json_type_name(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "object";
    case JSON_ARRAY:
        return "array";
    case JSON_STRING:
        return "string";
    case JSON_INTEGER:
    case JSON_REAL:
        return "number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "boolean";
    case JSON_NULL:
        return "null";
    }
    return "unknown";
}

/* Token text by id from a tokenizer, else from the GGUF's vocabulary arrays
 * (a template-only override still wants bos_token). "" when absent. */
static char *special_text(const GGUF *g, const Tokenizer *t, bool bos) {
    if (t) {
        int id = bos ? tok_bos(t) : tok_eos(t);
        if (id < 0)
            return dup_bytes("", 0);
        size_t len = 0;
        const char *s = tok_text(t, id, &len);
        return s ? dup_bytes(s, len) : dup_bytes("", 0);
    }
    if (g) {
        const char *key = bos ? "tokenizer.ggml.bos_token_id" : "tokenizer.ggml.eos_token_id";
        const GGUFKV *kv = gguf_find_key(g, key);
        const GGUFKV *toks = gguf_find_key(g, "tokenizer.ggml.tokens");
        if (kv && toks && kv->type != GGUF_TYPE_ARRAY && kv->type != GGUF_TYPE_STRING &&
            kv->type != GGUF_TYPE_FLOAT32 && kv->type != GGUF_TYPE_FLOAT64 &&
            toks->type == GGUF_TYPE_ARRAY && toks->arr_type == GGUF_TYPE_STRING && toks->arr_strs) {
            uint64_t id = kv->val.u;
            if ((kv->type == GGUF_TYPE_INT8 || kv->type == GGUF_TYPE_INT16 ||
                 kv->type == GGUF_TYPE_INT32 || kv->type == GGUF_TYPE_INT64) &&
                kv->val.i < 0)
                return dup_bytes("", 0);
            if (id < toks->arr_n)
                return dup_bytes(toks->arr_strs[id].ptr, toks->arr_strs[id].len);
        }
    }
    return dup_bytes("", 0);
}

static ChatFormat *format_make(const char *src, size_t len, ChatBuiltin b, const char *name,
                               char *bos, char *eos, Err *err) {
    ChatFormat *f = calloc(1, sizeof *f);
    if (!f || !bos || !eos) {
        free(f);
        free(bos);
        free(eos);
        err_set(err, STATUS_NOMEM, "chat format: out of memory");
        return NULL;
    }
    f->bos_text = bos;
    f->eos_text = eos;
    f->builtin = b;
    snprintf(f->name, sizeof f->name, "%s", name);
    if (len > TMPL_MAX_SOURCE) {
        err_set(err, STATUS_LIMIT, "chat template: %zu bytes exceed the limit of %u", len,
                (unsigned)TMPL_MAX_SOURCE);
        chat_format_free(f);
        return NULL;
    }
    if (!(f->src = dup_bytes(src, len))) {
        err_set(err, STATUS_NOMEM, "chat format: out of memory");
        chat_format_free(f);
        return NULL;
    }
    f->src_len = len;
    f->tmpl = tmpl_parse(src, len, err);
    if (!f->tmpl) {
        err_prefix(err, "%s", name);
        chat_format_free(f);
        return NULL;
    }
    return f;
}

/* ---- choosing a template ---- */

static ChatBuiltin builtin_for_vocab(const Tokenizer *t) {
    if (t && tok_find(t, "<|eot_id|>", 10) >= 0)
        return CHAT_LLAMA3;
    if (t && tok_find(t, "<|im_start|>", 12) >= 0)
        return CHAT_CHATML;
    return CHAT_LLAMA2;
}

ChatFormat *chat_format_new(const GGUF *g, const Tokenizer *t, const char *override_src,
                            size_t override_len, Err *err) {
    char *bos = special_text(g, t, true);
    char *eos = special_text(g, t, false);
    if (override_src)
        return format_make(override_src, override_len, CHAT_BUILTIN_NONE, "override template", bos,
                           eos, err);
    if (g) {
        const GGUFKV *kv = gguf_find_key(g, "tokenizer.chat_template");
        if (kv) {
            if (kv->type != GGUF_TYPE_STRING) {
                free(bos);
                free(eos);
                err_set(err, STATUS_FORMAT,
                        "key 'tokenizer.chat_template': expected a string (type %d)",
                        (int)kv->type);
                return NULL;
            }
            return format_make(kv->val.s.ptr, (size_t)kv->val.s.len, CHAT_BUILTIN_NONE,
                               "model template", bos, eos, err);
        }
    }
    ChatBuiltin b = builtin_for_vocab(t);
    char name[CHAT_NAME_MAX];
    snprintf(name, sizeof name, "built-in %s", chat_builtin_name(b));
    const char *src = chat_builtin_source(b);
    return format_make(src, strlen(src), b, name, bos, eos, err);
}

ChatFormat *chat_format_from_source(const char *src, size_t len, const char *bos_text,
                                    const char *eos_text, Err *err) {
    char *bos = bos_text ? dup_bytes(bos_text, strlen(bos_text)) : dup_bytes("", 0);
    char *eos = eos_text ? dup_bytes(eos_text, strlen(eos_text)) : dup_bytes("", 0);
    return format_make(src, len, CHAT_BUILTIN_NONE, "override template", bos, eos, err);
}

ChatFormat *chat_format_from_builtin(ChatBuiltin b, const char *bos_text, const char *eos_text,
                                     Err *err) {
    const char *src = chat_builtin_source(b);
    if (!src) {
        err_set(err, STATUS_INVALID, "chat format: no built-in template %d", (int)b);
        return NULL;
    }
    char *bos = bos_text ? dup_bytes(bos_text, strlen(bos_text)) : dup_bytes("", 0);
    char *eos = eos_text ? dup_bytes(eos_text, strlen(eos_text)) : dup_bytes("", 0);
    char name[CHAT_NAME_MAX];
    snprintf(name, sizeof name, "built-in %s", chat_builtin_name(b));
    return format_make(src, strlen(src), b, name, bos, eos, err);
}

void chat_format_free(ChatFormat *f) {
    if (!f)
        return;
    tmpl_free(f->tmpl);
    free(f->src);
    free(f->bos_text);
    free(f->eos_text);
    free(f);
}

const char *chat_format_name(const ChatFormat *f) { return f ? f->name : "none"; }

const char *chat_format_source(const ChatFormat *f, size_t *len) {
    *len = f ? f->src_len : 0;
    return f ? f->src : NULL;
}

ChatBuiltin chat_format_builtin(const ChatFormat *f) { return f ? f->builtin : CHAT_BUILTIN_NONE; }

/* ---- messages ---- */

/* Join the text parts of content list 'parts' (of message 'i') with "\n",
 * as llama.cpp does for templates that take a string. Returns a new JSON
 * string or NULL with 'err' filled. */
static json_t *join_parts(const json_t *parts, size_t i, Err *err) {
    size_t n = json_array_size(parts);
    if (n > CHAT_MAX_PARTS) {
        err_set(err, STATUS_LIMIT, "messages[%zu].content: %zu parts exceed the limit of %d", i, n,
                CHAT_MAX_PARTS);
        return NULL;
    }
    size_t total = 0;
    for (size_t k = 0; k < n; k++) {
        const json_t *p = json_array_get(parts, k);
        if (!json_is_object(p)) {
            err_set(err, STATUS_INVALID,
                    "messages[%zu].content[%zu]: expected a part object (got %s)", i, k,
                    chat_json_type_name(p));
            return NULL;
        }
        const json_t *type = json_object_get(p, "type");
        if (type && !json_is_string(type)) {
            err_set(err, STATUS_INVALID,
                    "messages[%zu].content[%zu].type: expected a string (got %s)", i, k,
                    chat_json_type_name(type));
            return NULL;
        }
        if (type && strcmp(json_string_value(type), "text") != 0) {
            err_set(err, STATUS_INVALID,
                    "messages[%zu].content[%zu]: unsupported part type '%.64s' (only \"text\")", i,
                    k, json_string_value(type));
            return NULL;
        }
        const json_t *text = json_object_get(p, "text");
        if (!text) {
            err_set(err, STATUS_INVALID, "messages[%zu].content[%zu]: part without 'text'", i, k);
            return NULL;
        }
        if (!json_is_string(text)) {
            err_set(err, STATUS_INVALID,
                    "messages[%zu].content[%zu].text: expected a string (got %s)", i, k,
                    chat_json_type_name(text));
            return NULL;
        }
        total += json_string_length(text) + (k ? 1 : 0);
        if (total > CHAT_MAX_CONTENT_BYTES) {
            err_set(err, STATUS_LIMIT,
                    "messages[%zu].content: more than %u bytes (limit CHAT_MAX_CONTENT_BYTES)", i,
                    (unsigned)CHAT_MAX_CONTENT_BYTES);
            return NULL;
        }
    }
    char *buf = malloc(total + 1);
    if (!buf) {
        err_set(err, STATUS_NOMEM, "messages[%zu].content: out of memory", i);
        return NULL;
    }
    size_t at = 0;
    for (size_t k = 0; k < n; k++) {
        const json_t *text = json_object_get(json_array_get(parts, k), "text");
        size_t len = json_string_length(text);
        if (k)
            buf[at++] = '\n';
        memcpy(buf + at, json_string_value(text), len);
        at += len;
    }
    buf[at] = 0;
    json_t *s = json_stringn_nocheck(buf, at);
    free(buf);
    if (!s)
        err_set(err, STATUS_NOMEM, "messages[%zu].content: out of memory", i);
    return s;
}

/* In 'calls' (a message copy's tool_calls, owned), replace each
 * function.arguments string that parses as a JSON object by that object
 * (key order and, for a repeated key, the last value kept, as Python's
 * json.loads). Other strings stay. Returns false when out of memory. */
static bool parse_arguments(json_t *calls) {
    size_t k;
    json_t *c;
    json_array_foreach(calls, k, c) {
        json_t *fn = json_object_get(c, "function");
        json_t *args = json_is_object(fn) ? json_object_get(fn, "arguments") : NULL;
        if (!json_is_string(args))
            continue;
        json_t *obj = json_loadb(json_string_value(args), json_string_length(args), 0, NULL);
        if (!json_is_object(obj)) {
            json_decref(obj);
            continue;
        }
        if (json_object_set_new(fn, "arguments", obj) != 0)
            return false;
    }
    return true;
}

/* Check message 'i' and return the copy the template sees (owned), or NULL
 * with 'err' filled. 'objects': tool-call arguments parsed into objects. */
static json_t *normalize_message(const json_t *m, size_t i, bool objects, Err *err) {
    if (!json_is_object(m)) {
        err_set(err, STATUS_INVALID, "messages[%zu]: expected an object (got %s)", i,
                chat_json_type_name(m));
        return NULL;
    }
    const json_t *role = json_object_get(m, "role");
    if (!role) {
        err_set(err, STATUS_INVALID, "messages[%zu]: missing 'role'", i);
        return NULL;
    }
    if (!json_is_string(role)) {
        err_set(err, STATUS_INVALID, "messages[%zu].role: expected a string (got %s)", i,
                chat_json_type_name(role));
        return NULL;
    }
    size_t role_len = json_string_length(role);
    if (role_len == 0 || role_len > CHAT_MAX_ROLE_BYTES) {
        err_set(err, STATUS_INVALID, "messages[%zu].role: length %zu not in 1..%d", i, role_len,
                CHAT_MAX_ROLE_BYTES);
        return NULL;
    }
    const json_t *tool_calls = json_object_get(m, "tool_calls");
    bool has_calls = tool_calls && !json_is_null(tool_calls);
    if (has_calls) {
        if (!json_is_array(tool_calls)) {
            err_set(err, STATUS_INVALID, "messages[%zu].tool_calls: expected an array (got %s)", i,
                    chat_json_type_name(tool_calls));
            return NULL;
        }
        for (size_t k = 0; k < json_array_size(tool_calls); k++) {
            const json_t *c = json_array_get(tool_calls, k);
            if (!json_is_object(c)) {
                err_set(err, STATUS_INVALID,
                        "messages[%zu].tool_calls[%zu]: expected an object (got %s)", i, k,
                        chat_json_type_name(c));
                return NULL;
            }
            const json_t *fn = json_object_get(c, "function");
            if (fn && !json_is_object(fn)) {
                err_set(err, STATUS_INVALID,
                        "messages[%zu].tool_calls[%zu].function: expected an object (got %s)", i, k,
                        chat_json_type_name(fn));
                return NULL;
            }
        }
    }
    const char *str_fields[] = {"name", "tool_call_id"};
    for (size_t k = 0; k < sizeof str_fields / sizeof *str_fields; k++) {
        const json_t *v = json_object_get(m, str_fields[k]);
        if (v && !json_is_string(v)) {
            err_set(err, STATUS_INVALID, "messages[%zu].%s: expected a string (got %s)", i,
                    str_fields[k], chat_json_type_name(v));
            return NULL;
        }
    }

    const json_t *content = json_object_get(m, "content");
    json_t *joined = NULL;
    if (!content || json_is_null(content)) {
        /* OpenAI allows no content only on an assistant message that calls tools. */
        if (!has_calls) {
            err_set(err, STATUS_INVALID, "messages[%zu]: %s 'content'", i,
                    content ? "null" : "missing");
            return NULL;
        }
    } else if (json_is_string(content)) {
        if (json_string_length(content) > CHAT_MAX_CONTENT_BYTES) {
            err_set(err, STATUS_LIMIT, "messages[%zu].content: %zu bytes exceed the limit of %u", i,
                    json_string_length(content), (unsigned)CHAT_MAX_CONTENT_BYTES);
            return NULL;
        }
    } else if (json_is_array(content)) {
        joined = join_parts(content, i, err);
        if (!joined)
            return NULL;
    } else {
        err_set(err, STATUS_INVALID,
                "messages[%zu].content: expected a string or a list of text parts (got %s)", i,
                chat_json_type_name(content));
        return NULL;
    }

    json_t *copy = json_deep_copy(m);
    if (copy && joined && json_object_set_new(copy, "content", joined) != 0) {
        json_decref(copy);
        copy = NULL;
    }
    if (copy && objects && has_calls && !parse_arguments(json_object_get(copy, "tool_calls"))) {
        json_decref(copy);
        copy = NULL;
    }
    if (!copy) {
        json_decref(copy);
        err_set(err, STATUS_NOMEM, "messages[%zu]: out of memory", i);
        return NULL;
    }
    return copy;
}

static json_t *build_vars(const ChatFormat *f, const json_t *messages, bool add_generation_prompt,
                          const json_t *extra, bool objects, Err *err) {
    if (!json_is_array(messages)) {
        err_set(err, STATUS_INVALID, "messages: expected an array (got %s)",
                messages ? chat_json_type_name(messages) : "nothing");
        return NULL;
    }
    size_t n = json_array_size(messages);
    if (n == 0) {
        err_set(err, STATUS_INVALID, "messages: empty (at least one message is needed)");
        return NULL;
    }
    if (n > CHAT_MAX_MESSAGES) {
        err_set(err, STATUS_LIMIT, "messages: %zu messages exceed the limit of %d", n,
                CHAT_MAX_MESSAGES);
        return NULL;
    }
    if (extra && !json_is_object(extra)) {
        err_set(err, STATUS_INVALID, "extra: expected an object (got %s)", chat_json_type_name(extra));
        return NULL;
    }
    json_t *vars = json_object();
    json_t *list = json_array();
    if (!vars || !list) {
        json_decref(vars);
        json_decref(list);
        err_set(err, STATUS_NOMEM, "messages: out of memory");
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *m = normalize_message(json_array_get(messages, i), i, objects, err);
        if (!m || json_array_append_new(list, m) != 0) {
            if (m)
                err_set(err, STATUS_NOMEM, "messages: out of memory");
            json_decref(vars);
            json_decref(list);
            return NULL;
        }
    }
    if (extra) {
        const char *key;
        json_t *val;
        json_object_foreach((json_t *)extra, key, val) {
            if (!strcmp(key, "messages") || !strcmp(key, "add_generation_prompt") ||
                !strcmp(key, "bos_token") || !strcmp(key, "eos_token")) {
                err_set(err, STATUS_INVALID, "extra.%s: reserved variable", key);
                goto fail;
            }
            if (!strcmp(key, "tools") && !json_is_array(val) && !json_is_null(val)) {
                err_set(err, STATUS_INVALID, "extra.tools: expected an array (got %s)",
                        chat_json_type_name(val));
                goto fail;
            }
            if (!strcmp(key, "date_string") && !json_is_string(val)) {
                err_set(err, STATUS_INVALID, "extra.date_string: expected a string (got %s)",
                        chat_json_type_name(val));
                goto fail;
            }
            /* A JSON null 'tools' means "no tools": leave it undefined, as
             * transformers does for tools=None. */
            if (json_is_null(val))
                continue;
            if (json_object_set(vars, key, val) != 0)
                goto nomem;
        }
    }
    if (json_object_set_new(vars, "messages", list) != 0) {
        list = NULL;
        goto nomem;
    }
    list = NULL;
    /* bos_token / eos_token are passed as trusted variables in chat_render. */
    if (json_object_set_new(vars, "add_generation_prompt", json_boolean(add_generation_prompt)))
        goto nomem;
    return vars;
nomem:
    err_set(err, STATUS_NOMEM, "messages: out of memory");
fail:
    json_decref(list);
    json_decref(vars);
    return NULL;
}

static Status render(const ChatFormat *f, const json_t *messages, bool add_generation_prompt,
                     const json_t *extra, bool objects, char **out, uint8_t **mask, size_t *len,
                     Err *err) {
    *out = NULL;
    if (mask)
        *mask = NULL;
    *len = 0;
    json_t *vars = build_vars(f, messages, add_generation_prompt, extra, objects, err);
    if (!vars)
        return err->status;
    /* The model's own markup: trusted, so a template that prints it yields
     * text that tokenizes as the control tokens (data never does). */
    json_t *trusted = json_object();
    uint8_t *m = NULL;
    Status st;
    if (!trusted ||
        json_object_set_new(trusted, "bos_token",
                            json_stringn_nocheck(f->bos_text, strlen(f->bos_text))) ||
        json_object_set_new(trusted, "eos_token",
                            json_stringn_nocheck(f->eos_text, strlen(f->eos_text))))
        st = err_set(err, STATUS_NOMEM, "chat: out of memory");
    else
        st = tmpl_render_ex(f->tmpl, vars, trusted, NULL, out, &m, len, err);
    json_decref(trusted);
    json_decref(vars);
    if (st != STATUS_OK)
        return st;
    if (mask)
        *mask = m;
    else
        free(m);
    return STATUS_OK;
}

Status chat_render(const ChatFormat *f, const json_t *messages, bool add_generation_prompt,
                   const json_t *extra, char **out, uint8_t **mask, size_t *len, Err *err) {
    bool objects =
        f->args_mode == CHAT_ARGS_OBJECT || (f->args_mode == CHAT_ARGS_AUTO && f->args_objects);
    return render(f, messages, add_generation_prompt, extra, objects, out, mask, len, err);
}

/* ---- tool-call arguments: what the template needs ---- */

/* Render the probe conversation with the call's arguments as 'args'; true
 * when the output shows the argument's key as JSON or Python would print an
 * object's (or as an XML-style parameter), llama.cpp's test. */
static bool probe_shows_key(const ChatFormat *f, json_t *args) {
    json_t *msgs = json_pack("[{s:s, s:s}, {s:s, s:s, s:[{s:s, s:s, s:{s:s, s:o}}]}]", "role",
                             "user", "content", "Hey", "role", "assistant", "content", "",
                             "tool_calls", "id", "call_1___", "type", "function", "function",
                             "name", "ipython", "arguments", args);
    if (!msgs)
        return false;
    char *out = NULL;
    size_t len = 0;
    Err err = {0};
    bool shows = false;
    if (render(f, msgs, false, NULL, false, &out, NULL, &len, &err) == STATUS_OK)
        shows = strstr(out, "\"argument_needle\":") || strstr(out, "'argument_needle':") ||
                strstr(out, "<parameter=argument_needle>");
    free(out);
    json_decref(msgs);
    return shows;
}

bool chat_format_wants_object_arguments(const ChatFormat *f) {
    if (!f)
        return false;
    json_t *obj = json_pack("{s:s}", "argument_needle", "print('Hello, World!')");
    char *text = obj ? json_dumps(obj, 0) : NULL;
    bool objects = false;
    if (text) {
        bool as_text = probe_shows_key(f, json_string(text));
        bool as_object = probe_shows_key(f, json_incref(obj));
        objects = !as_text && as_object;
    }
    free(text);
    json_decref(obj);
    return objects;
}

void chat_format_set_arguments(ChatFormat *f, ChatArgsMode mode) {
    if (!f)
        return;
    f->args_mode = mode;
    f->args_objects = mode == CHAT_ARGS_AUTO && chat_format_wants_object_arguments(f);
}

Status chat_tokenize(const ChatFormat *f, const Tokenizer *t, const json_t *messages,
                     bool add_generation_prompt, const json_t *extra, int32_t **ids, size_t *n,
                     Err *err) {
    *ids = NULL;
    *n = 0;
    char *text = NULL;
    uint8_t *mask = NULL;
    size_t len = 0;
    Status st = chat_render(f, messages, add_generation_prompt, extra, &text, &mask, &len, err);
    if (st != STATUS_OK)
        return st;

    /* BOS: only when the model adds one and the template did not already
     * write it (as template text: a user's "<s>" at the start is data and
     * does not count). llama.cpp does the same to avoid a double BOS. */
    bool add_bos = tok_add_bos(t) && tok_bos(t) >= 0;
    if (add_bos) {
        size_t bl = 0;
        const char *b = tok_text(t, tok_bos(t), &bl);
        if (b && bl > 0 && bl <= len && memcmp(text, b, bl) == 0) {
            bool marked = true;
            for (size_t i = 0; i < bl; i++)
                marked = marked && mask[i];
            if (marked)
                add_bos = false;
        }
    }
    TokEncodeOpts o = {
        .add_bos = add_bos, .add_eos = false, .parse_special = true, .special_ok = mask};
    size_t cap = len + 3;
    int32_t *buf = malloc(cap * sizeof *buf);
    if (!buf) {
        free(text);
        free(mask);
        return err_set(err, STATUS_NOMEM, "chat: out of memory for %zu token ids", cap);
    }
    st = tok_encode(t, text, len, &o, buf, cap, n, err);
    free(text);
    free(mask);
    if (st != STATUS_OK) {
        free(buf);
        *n = 0;
        return st;
    }
    *ids = buf;
    return STATUS_OK;
}
