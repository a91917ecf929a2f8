/* import.c - other formats into the store's conversation shape (import.h). */
#include "serve/import.h"

#include <stdlib.h>
#include <string.h>

bool import_is_chatgpt(const json_t *conv) {
    return json_is_object(conv) && json_is_object(json_object_get(conv, "mapping"));
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
    return out;
}
