/* import.c - other formats into the store's conversation shape (import.h). */
#include "serve/import.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IMPORT_CALL_ID_MAX 40 /* bytes of a call id made for a ChatGPT import */

bool import_is_chatgpt(const json_t *conv) {
    return json_is_object(conv) && json_is_object(json_object_get(conv, "mapping"));
}

/* The string elements of 'parts' joined by newlines (others skipped), *len
 * bytes; "" when there are none. Owned; NULL when out of memory. */
static char *join_parts(const json_t *parts, size_t *len) {
    size_t n = 0;
    for (size_t i = 0; i < json_array_size(parts); i++)
        if (json_is_string(json_array_get(parts, i)))
            n += json_string_length(json_array_get(parts, i)) + 1;
    char *text = malloc(n + 1), *p = text;
    for (size_t i = 0; text && i < json_array_size(parts); i++) {
        const json_t *part = json_array_get(parts, i);
        if (!json_is_string(part))
            continue;
        if (p != text)
            *p++ = '\n';
        memcpy(p, json_string_value(part), json_string_length(part));
        p += json_string_length(part);
    }
    if (text)
        *p = '\0';
    *len = text ? (size_t)(p - text) : 0;
    return text;
}

/* The text of a node's message when it is a user or assistant message with
 * string parts (joined by newlines); NULL otherwise. Owned. */
static char *node_text(const json_t *node, const char **role, size_t *len) {
    const json_t *m = json_object_get(node, "message");
    *role = json_string_value(json_object_get(json_object_get(m, "author"), "role"));
    const json_t *parts = json_object_get(json_object_get(m, "content"), "parts");
    if (!*role || (strcmp(*role, "user") != 0 && strcmp(*role, "assistant") != 0) ||
        !json_is_array(parts))
        return NULL;
    return join_parts(parts, len);
}

/* ChatGPT's tool use, put into the conversion 'ours' of 'cv' (the pass
 * above keeps user and assistant text):
 *   - an assistant node whose message has a "recipient" other than "all"
 *     called that tool: an assistant message with one tool call (name: the
 *     recipient; arguments: its text when that is a JSON object, else
 *     {"code": text} for content_type "code", else {"input": text}; id:
 *     "call_" + the node id's letters and digits), content "";
 *   - a "tool" node is a tool message: content its string parts joined by
 *     newlines (else content.text, else content.result), name the
 *     author's name, tool_call_id the call of the nearest call above it.
 * Every kept message then hangs from its nearest kept ancestor, parents
 * before children (by depth), and current_leaf is the current node or its
 * nearest kept ancestor. A conversation without tool use is left as it is. */
typedef struct {
    json_t *m; /* the message (a reference) */
    size_t depth, order;
} ImportNode;

static int import_node_cmp(const void *a, const void *b) {
    const ImportNode *x = a, *y = b;
    if (x->depth != y->depth)
        return x->depth < y->depth ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

/* A node's text: string parts joined by newlines, else content.text, else
 * content.result. Owned ("" when none); NULL when out of memory. */
static char *chatgpt_text(const json_t *msg) {
    const json_t *content = json_object_get(msg, "content");
    size_t len;
    char *text = join_parts(json_object_get(content, "parts"), &len);
    if (text && !len) {
        const char *t = json_string_value(json_object_get(content, "text"));
        if (!t)
            t = json_string_value(json_object_get(content, "result"));
        free(text);
        return strdup(t ? t : "");
    }
    return text;
}

static void chatgpt_call_id(const char *node, char *out, size_t cap) {
    size_t n = (size_t)snprintf(out, cap, "call_");
    for (; *node && n + 1 < cap; node++)
        if ((*node >= '0' && *node <= '9') || (*node >= 'a' && *node <= 'z') ||
            (*node >= 'A' && *node <= 'Z'))
            out[n++] = *node;
    out[n] = '\0';
}

/* A tool node or an assistant node that calls one, as our message; NULL
 * for anything else. Owned. */
static json_t *chatgpt_tool_message(const char *key, const json_t *node) {
    const json_t *msg = json_object_get(node, "message");
    const char *role = json_string_value(json_object_get(json_object_get(msg, "author"), "role"));
    const char *recipient = json_string_value(json_object_get(msg, "recipient"));
    bool call = role && !strcmp(role, "assistant") && recipient && *recipient &&
                strcmp(recipient, "all") != 0;
    if (!call && !(role && !strcmp(role, "tool")))
        return NULL;
    char *text = chatgpt_text(msg);
    if (!text)
        return NULL;
    json_t *m;
    if (call) {
        const char *type =
            json_string_value(json_object_get(json_object_get(msg, "content"), "content_type"));
        json_t *obj = json_loads(text, JSON_DECODE_ANY, NULL);
        char *args = NULL;
        if (json_is_object(obj)) {
            args = strdup(text);
        } else {
            json_decref(obj);
            obj = json_pack("{s:s}", type && !strcmp(type, "code") ? "code" : "input", text);
            args = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
        }
        json_decref(obj);
        char id[IMPORT_CALL_ID_MAX];
        chatgpt_call_id(key, id, sizeof id);
        m = args ? json_pack("{s:s, s:s, s:s, s:[{s:s, s:s, s:{s:s, s:s}}]}", "id", key, "role",
                             "assistant", "content", "", "tool_calls", "id", id, "type", "function",
                             "function", "name", recipient, "arguments", args)
                 : NULL;
        free(args);
    } else {
        const char *name =
            json_string_value(json_object_get(json_object_get(msg, "author"), "name"));
        m = json_pack("{s:s, s:s, s:s, s:s}", "id", key, "role", "tool", "content", text, "name",
                      name ? name : "");
    }
    free(text);
    return m;
}

static const char *chatgpt_parent(const json_t *mapping, const char *key) {
    return json_string_value(json_object_get(json_object_get(mapping, key), "parent"));
}

static void chatgpt_tools(const json_t *cv, json_t *ours) {
    const json_t *mapping = json_object_get(cv, "mapping");
    json_t *kept = json_object(); /* node id -> our message */
    const json_t *base = json_object_get(ours, "messages");
    bool tools = false;
    const char *key;
    json_t *node;
    json_object_foreach((json_t *)mapping, key, node) {
        json_t *m = chatgpt_tool_message(key, node);
        if (m) {
            tools = true;
            json_object_set_new(kept, key, m);
        }
    }
    if (!tools) {
        json_decref(kept);
        return;
    }
    for (size_t i = 0; i < json_array_size(base); i++) {
        json_t *m = json_array_get(base, i);
        const char *id = json_string_value(json_object_get(m, "id"));
        if (id && !json_object_get(kept, id))
            json_object_set(kept, id, m);
    }
    size_t cap = json_object_size(mapping), n = 0;
    ImportNode *nodes = calloc(json_object_size(kept) + 1, sizeof *nodes);
    json_t *list = json_array();
    json_object_foreach(kept, key, node) {
        /* the nearest kept ancestor and the depth; a walk longer than the
         * mapping is a cycle: the node is left out, as import.c does */
        const char *up = NULL, *at = key;
        size_t depth = 0;
        for (; depth <= cap; depth++) {
            at = chatgpt_parent(mapping, at);
            if (!at || !json_object_get(mapping, at))
                break;
            if (!up && json_object_get(kept, at))
                up = at;
        }
        if (!nodes || depth > cap)
            continue;
        json_object_del(node, "parent");
        if (up)
            json_object_set_new(node, "parent", json_string(up));
        nodes[n] = (ImportNode){.m = node, .depth = depth, .order = n};
        n++;
    }
    if (nodes)
        qsort(nodes, n, sizeof *nodes, import_node_cmp);
    for (size_t i = 0; i < n; i++) {
        json_t *m = nodes[i].m;
        if (!strcmp(json_string_value(json_object_get(m, "role")), "tool")) {
            /* the call it answers: the nearest call above, across other results */
            const json_t *p = m;
            const char *pid;
            for (size_t guard = 0;
                 guard <= n && (pid = json_string_value(json_object_get(p, "parent"))); guard++) {
                p = json_object_get(kept, pid);
                const char *role = json_string_value(json_object_get(p, "role"));
                if (!role || strcmp(role, "tool") != 0)
                    break;
            }
            const json_t *calls = json_object_get(p, "tool_calls");
            const char *cid = json_string_value(json_object_get(json_array_get(calls, 0), "id"));
            json_object_set_new(m, "tool_call_id", json_string(p != m && cid ? cid : ""));
        }
        json_array_append(list, m);
    }
    json_object_set_new(ours, "messages", list);
    const char *cur = json_string_value(json_object_get(cv, "current_node"));
    for (size_t guard = 0; cur && guard <= cap && !json_object_get(kept, cur); guard++)
        cur = chatgpt_parent(mapping, cur);
    if (cur && json_object_get(kept, cur))
        json_object_set_new(ours, "current_leaf", json_string(cur));
    free(nodes);
    json_decref(kept);
}

json_t *import_chatgpt(const json_t *cv) {
    const json_t *mapping = json_object_get(cv, "mapping");
    const json_t *tj = json_object_get(cv, "title");
    json_t *out = json_pack("{s:s, s:[]}", "title", json_is_string(tj) ? json_string_value(tj) : "",
                            "messages");
    json_t *msgs = json_object_get(out, "messages");
    /* children of each node; roots are nodes whose parent is not in the mapping */
    json_t *kids = json_object(), *queue = json_array(), *under = json_object();
    const char *key;
    json_t *node;
    json_object_foreach((json_t *)mapping, key, node) {
        const json_t *pj = json_object_get(node, "parent");
        const char *parent = json_is_string(pj) ? json_string_value(pj) : NULL;
        if (parent && json_object_get(mapping, parent) && strcmp(parent, key) != 0) {
            json_t *list = json_object_get(kids, parent);
            if (!list)
                json_object_set_new(kids, parent, list = json_array());
            json_array_append_new(list, json_string(key));
        } else {
            json_array_append_new(queue, json_string(key));
            json_object_set_new(under, key, json_string("")); /* hangs from no kept message */
        }
    }
    /* breadth first from the roots: parents before children; a node on a
     * cycle is never reached, so it is left out */
    for (size_t at = 0; at < json_array_size(queue); at++) {
        const char *id = json_string_value(json_array_get(queue, at));
        const char *parent_under = json_string_value(json_object_get(under, id));
        const char *role;
        size_t len;
        char *text = node_text(json_object_get(mapping, id), &role, &len);
        char mine[256];
        snprintf(mine, sizeof mine, "%s", text ? id : parent_under);
        if (text) {
            json_t *m = json_pack("{s:s, s:s, s:s%}", "id", id, "role", role, "content", text, len);
            if (*parent_under)
                json_object_set_new(m, "parent", json_string(parent_under));
            json_array_append_new(msgs, m);
            free(text);
        }
        json_t *children = json_object_get(kids, id);
        for (size_t i = 0; i < json_array_size(children); i++) {
            const char *child = json_string_value(json_array_get(children, i));
            if (json_object_get(under, child))
                continue;
            json_object_set_new(under, child, json_string(mine));
            json_array_append(queue, json_array_get(children, i));
        }
    }
    const json_t *cur = json_object_get(cv, "current_node");
    if (json_is_string(cur)) {
        const json_t *u = json_object_get(under, json_string_value(cur));
        const json_t *cm = json_object_get(mapping, json_string_value(cur));
        const char *role;
        size_t len;
        char *text = cm ? node_text(cm, &role, &len) : NULL;
        if (text)
            json_object_set_new(out, "current_leaf", json_string(json_string_value(cur)));
        else if (json_is_string(u) && *json_string_value(u))
            json_object_set_new(out, "current_leaf", json_string(json_string_value(u)));
        free(text);
    }
    json_decref(kids);
    json_decref(queue);
    json_decref(under);
    chatgpt_tools(cv, out);
    return out;
}
