/* replyfmt.c - a chat request's reply format: messages, template variables,
 * grammar and parser settings (replyfmt.h). */
#include "serve/replyfmt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sample/grammar.h"
#include "sample/jsonschema.h"

#define REPLYFMT_PREFIX_BYTES 32 /* "tool<index>" / "reply" rule prefixes */

static Status nomem(OaiError *e) {
    return oai_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
}

static Status bad(OaiError *e, const char *param, const char *msg) {
    return oai_error_set(e, 400, "invalid_request_error", NULL, param, "%s", msg);
}

/* ---- GENERIC: tools told in words, calls and results written as JSON ---- */

static const char GENERIC_INSTRUCTIONS[] =
    "Tools (JSON Schema arguments): %s\n"
    "Reply with JSON only: {\"tool_calls\": [{\"name\": ..., \"arguments\": {...}}]} to "
    "call tools, or {\"response\": \"...\"} to answer.";

/* The tools as the instructions list them: [{"name","description","parameters"}]. */
static char *tools_text(const json_t *tools) {
    json_t *list = json_array();
    size_t i;
    json_t *t;
    json_array_foreach(tools, i, t) {
        json_t *f = json_object_get(t, "function");
        json_t *o = json_object();
        json_object_set(o, "name", json_object_get(f, "name"));
        if (json_object_get(f, "description"))
            json_object_set(o, "description", json_object_get(f, "description"));
        json_t *ps = json_object_get(f, "parameters");
        json_t *p = ps ? json_copy(ps) : json_pack("{s:s}", "type", "object");
        json_object_del(p, "$schema"); /* noise in a short context */
        json_object_set_new(o, "parameters", p);
        json_array_append_new(list, o);
    }
    char *s = json_dumps(list, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(list);
    return s;
}

/* An assistant message's tool_calls as the JSON a GENERIC reply would be. */
static char *calls_text(const json_t *calls) {
    json_t *list = json_array();
    size_t i;
    json_t *c;
    json_array_foreach(calls, i, c) {
        json_t *f = json_object_get(c, "function");
        const char *args = json_string_value(json_object_get(f, "arguments"));
        json_t *a = args ? json_loads(args, JSON_DECODE_ANY, NULL) : NULL;
        json_array_append_new(list, json_pack("{s:O,s:o}", "name", json_object_get(f, "name"),
                                              "arguments", a ? a : json_string(args ? args : "")));
    }
    json_t *obj = json_pack("{s:o}", "tool_calls", list);
    char *s = json_dumps(obj, JSON_COMPACT);
    json_decref(obj);
    return s;
}

/* A content value (string, parts or null) as text. */
static const char *content_text(const json_t *m) {
    const json_t *c = json_object_get(m, "content");
    return json_is_string(c) ? json_string_value(c) : "";
}

/* messages with tool calls and results written out for a template that
 * knows neither, and the tools told in a system message (when 'tools':
 * after the operator's own system text when the first message has one). */
static json_t *generic_messages(const json_t *messages, const json_t *tools) {
    json_t *out = json_array();
    json_t *pending = NULL; /* consecutive tool results, one user message */
    size_t i, start = 0;
    json_t *m;
    if (tools) {
        const json_t *first = json_array_get(messages, 0);
        const char *role = json_string_value(json_object_get(first, "role"));
        if (role && !strcmp(role, "system") && json_is_string(json_object_get(first, "content")))
            start = 1;
        char *list = tools_text(tools);
        const char *own = start ? content_text(first) : "";
        size_t n = strlen(own) + strlen(GENERIC_INSTRUCTIONS) + (list ? strlen(list) : 0) + 3;
        char *sys = malloc(n);
        if (sys) {
            int k = snprintf(sys, n, "%s%s", own, *own ? "\n\n" : "");
            snprintf(sys + k, n - (size_t)k, GENERIC_INSTRUCTIONS, list ? list : "[]");
        }
        json_array_append_new(out,
                              json_pack("{s:s,s:s}", "role", "system", "content", sys ? sys : ""));
        free(sys);
        free(list);
    }
    json_array_foreach(messages, i, m) {
        if (i < start)
            continue;
        const char *role = json_string_value(json_object_get(m, "role"));
        if (role && !strcmp(role, "tool")) {
            json_t *r = json_pack("{s:O,s:s}", "tool_call_id", json_object_get(m, "tool_call_id"),
                                  "content", content_text(m));
            if (!pending)
                pending = json_array();
            json_array_append_new(pending, json_pack("{s:o}", "tool_response", r));
            continue;
        }
        if (pending) {
            char *s = json_dumps(
                json_array_size(pending) == 1 ? json_array_get(pending, 0) : pending, JSON_COMPACT);
            json_array_append_new(out,
                                  json_pack("{s:s,s:s}", "role", "user", "content", s ? s : ""));
            free(s);
            json_decref(pending);
            pending = NULL;
        }
        const json_t *calls = json_object_get(m, "tool_calls");
        if (role && !strcmp(role, "assistant") && json_array_size(calls)) {
            char *s = calls_text(calls);
            json_array_append_new(
                out, json_pack("{s:s,s:s}", "role", "assistant", "content", s ? s : ""));
            free(s);
            continue;
        }
        json_array_append(out, m);
    }
    if (pending) {
        char *s = json_dumps(json_array_size(pending) == 1 ? json_array_get(pending, 0) : pending,
                             JSON_COMPACT);
        json_array_append_new(out, json_pack("{s:s,s:s}", "role", "user", "content", s ? s : ""));
        free(s);
        json_decref(pending);
    }
    return out;
}

static bool has_tool_turns(const json_t *messages) {
    size_t i;
    json_t *m;
    json_array_foreach(messages, i, m) {
        const char *role = json_string_value(json_object_get(m, "role"));
        if ((role && !strcmp(role, "tool")) || json_array_size(json_object_get(m, "tool_calls")))
            return true;
    }
    return false;
}

/* ---- grammars ---- */

/* The calls' grammar for r's tools (all, or the named one) appended to b,
 * its root renamed to 'root_as' when not NULL (to sit beside a reply
 * format). */
static Status tools_grammar(const OaiRequest *r, ToolFormat fmt, bool allow_content,
                            const char *root_as, JsonSchemaBuf *b, OaiError *e) {
    size_t n = json_array_size(r->tools);
    const char *names[OAI_MAX_TOOLS];
    char rules[OAI_MAX_TOOLS][JSONSCHEMA_MAX_RULE_NAME];
    const char *rule_ptr[OAI_MAX_TOOLS];
    int k = 0;
    for (size_t i = 0; i < n; i++) {
        if (r->tool_choice == OAI_TOOLS_NAMED && (int)i != r->tool_named)
            continue;
        const json_t *f = json_object_get(json_array_get(r->tools, i), "function");
        json_t *ps = json_object_get(f, "parameters");
        json_t *any = ps ? NULL : json_pack("{s:s}", "type", "object");
        char prefix[REPLYFMT_PREFIX_BYTES];
        snprintf(prefix, sizeof prefix, "tool%zu", i);
        Err err = {0};
        Status st = jsonschema_compile(b, ps ? ps : any, prefix, rules[k], sizeof rules[k], &err);
        json_decref(any);
        if (st) {
            char param[96];
            snprintf(param, sizeof param, "tools[%zu].function.parameters", i);
            return st == STATUS_NOMEM ? nomem(e) : bad(e, param, err.msg);
        }
        names[k] = oai_tool_name(r->tools, i);
        rule_ptr[k] = rules[k];
        k++;
    }
    char *text = NULL;
    size_t len = 0;
    Err err = {0};
    bool parallel = r->parallel_tool_calls && r->tool_choice != OAI_TOOLS_NAMED;
    Status st =
        toolcall_grammar(fmt, names, rule_ptr, k, parallel, allow_content, &text, &len, &err);
    if (st)
        return st == STATUS_NOMEM ? nomem(e) : bad(e, "tools", err.msg);
    if (root_as && len >= 4 && !strncmp(text, "root", 4)) {
        /* toolcall_grammar writes its root rule first */
        st = jsonschema_buf_append(b, root_as, strlen(root_as), &err);
        if (!st)
            st = jsonschema_buf_append(b, text + 4, len - 4, &err);
    } else {
        st = jsonschema_buf_append(b, text, len, &err);
    }
    free(text);
    if (st)
        return st == STATUS_NOMEM ? nomem(e) : bad(e, "tools", err.msg);
    return STATUS_OK;
}

/* response_format's rules appended to b under 'prefix'; the top rule in rule[]. */
static Status format_grammar(const OaiRequest *r, JsonSchemaBuf *b, char *rule, size_t cap,
                             OaiError *e) {
    Err err = {0};
    if (r->format == OAI_FORMAT_JSON_OBJECT) {
        snprintf(rule, cap, "%s", JSONSCHEMA_OBJECT_RULE);
        Status st = jsonschema_buf_use(b, JSONSCHEMA_OBJECT_RULE, &err);
        return st ? nomem(e) : STATUS_OK;
    }
    json_t *any = r->schema ? NULL : json_object();
    Status st = jsonschema_compile(b, r->schema ? r->schema : any, "reply", rule, cap, &err);
    json_decref(any);
    if (st)
        return st == STATUS_NOMEM ? nomem(e)
                                  : bad(e, "response_format.json_schema.schema", err.msg);
    return STATUS_OK;
}

static Status build_grammar(const OaiRequest *r, ToolFormat fmt, ReplyFmt *out, OaiError *e) {
    bool calls = r->tools && r->tool_choice != OAI_TOOLS_NONE;
    bool forced = r->tool_choice == OAI_TOOLS_REQUIRED || r->tool_choice == OAI_TOOLS_NAMED;
    bool want_calls =
        calls && (forced || fmt == TOOL_FORMAT_GENERIC || r->format != OAI_FORMAT_TEXT);
    if (r->grammar) {
        if (want_calls && forced)
            return bad(e, "grammar",
                       "a grammar and tool_choice required or a named function "
                       "cannot both be given");
        Grammar *g = NULL;
        Err err = {0};
        Status st = grammar_parse(&g, r->grammar, r->grammar_len, NULL, &err);
        grammar_free(g);
        if (st)
            return st == STATUS_NOMEM ? nomem(e) : bad(e, "grammar", err.msg);
        if (!(out->grammar = malloc(r->grammar_len + 1)))
            return nomem(e);
        memcpy(out->grammar, r->grammar, r->grammar_len);
        out->grammar[r->grammar_len] = '\0';
        out->grammar_len = r->grammar_len;
        return STATUS_OK;
    }
    if (!want_calls && r->format == OAI_FORMAT_TEXT)
        return STATUS_OK;
    JsonSchemaBuf b;
    jsonschema_buf_init(&b);
    Status st = STATUS_OK;
    char rule[JSONSCHEMA_MAX_RULE_NAME];
    Err err = {0};
    if (!want_calls) { /* the format alone */
        st = format_grammar(r, &b, rule, sizeof rule, e);
        if (!st) {
            char root[JSONSCHEMA_MAX_RULE_NAME + 32];
            int n = snprintf(root, sizeof root, "root ::= %s\n", rule);
            st = jsonschema_buf_append(&b, root, (size_t)n, &err) ? nomem(e) : STATUS_OK;
        }
    } else if (r->format == OAI_FORMAT_TEXT || forced) {
        /* calls, and with auto (GENERIC only) a {"response": ...} instead */
        st = tools_grammar(r, fmt, !forced, NULL, &b, e);
    } else { /* a JSON reply in the format, or calls */
        st = format_grammar(r, &b, rule, sizeof rule, e);
        if (!st)
            st = tools_grammar(r, fmt, false, "calls-root", &b, e);
        if (!st) {
            char root[JSONSCHEMA_MAX_RULE_NAME + 32];
            int n = snprintf(root, sizeof root, "root ::= %s | calls-root\n", rule);
            st = jsonschema_buf_append(&b, root, (size_t)n, &err) ? nomem(e) : STATUS_OK;
        }
    }
    if (st) {
        jsonschema_buf_free(&b);
        return st;
    }
    out->grammar = b.text; /* taken */
    out->grammar_len = b.len;
    b.text = NULL;
    jsonschema_buf_free(&b);
    return STATUS_OK;
}

Status replyfmt_prepare(const OaiRequest *r, const char *tmpl, size_t tmpl_len, ReplyFmt *out,
                        OaiError *e) {
    memset(out, 0, sizeof *out);
    unsigned flags = 0;
    ToolFormat fmt = tmpl ? toolcall_detect(tmpl, tmpl_len, &flags) : TOOL_FORMAT_GENERIC;
    bool calls = r->tools && r->tool_choice != OAI_TOOLS_NONE;
    out->parse = calls ? fmt : fmt == TOOL_FORMAT_HARMONY ? TOOL_FORMAT_HARMONY : TOOL_FORMAT_NONE;
    out->flags = flags;
    out->parser = out->parse != TOOL_FORMAT_NONE || flags;
    out->render_special = fmt == TOOL_FORMAT_HARMONY;
    if (fmt == TOOL_FORMAT_GENERIC && (calls || has_tool_turns(r->messages)))
        out->messages = generic_messages(r->messages, calls ? r->tools : NULL);
    else
        out->messages = json_incref(r->messages);
    if (calls && fmt != TOOL_FORMAT_GENERIC)
        out->extra = json_pack("{s:O}", "tools", r->tools);
    Status st = out->messages && (!calls || fmt == TOOL_FORMAT_GENERIC || out->extra)
                    ? build_grammar(r, fmt, out, e)
                    : nomem(e);
    if (st)
        replyfmt_free(out);
    return st;
}

void replyfmt_free(ReplyFmt *f) {
    if (!f)
        return;
    json_decref(f->messages);
    json_decref(f->extra);
    free(f->grammar);
    memset(f, 0, sizeof *f);
}
