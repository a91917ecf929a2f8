/* apireq.c - /api routes and request bodies, parsed (apireq.h). */
#include "serve/apireq.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define API_CONV_PREFIX "/api/conversations/"
#define API_KEYS_PREFIX "/api/keys/"

const char *const API_SETTINGS[] = {
    "temperature",      "top_p", "top_k",          "min_p",
    "max_tokens",       "seed",  "repeat_penalty", "presence_penalty",
    "frequency_penalty"};
const int API_N_SETTINGS = (int)(sizeof API_SETTINGS / sizeof API_SETTINGS[0]);

/* One fixed path: its route per method (API_NOT_FOUND: not allowed). */
typedef struct {
    const char *path;
    ApiRoute get, post, patch, del;
} ApiPath;

static const ApiPath PATHS[] = {
    {"/api/session", API_SESSION, API_NOT_FOUND, API_NOT_FOUND, API_NOT_FOUND},
    {"/api/login", API_NOT_FOUND, API_LOGIN, API_NOT_FOUND, API_NOT_FOUND},
    {"/api/setup", API_NOT_FOUND, API_SETUP, API_NOT_FOUND, API_NOT_FOUND},
    {"/api/register", API_NOT_FOUND, API_REGISTER, API_NOT_FOUND, API_NOT_FOUND},
    {"/api/logout", API_NOT_FOUND, API_LOGOUT, API_NOT_FOUND, API_NOT_FOUND},
    {"/api/conversations", API_CONV_LIST, API_CONV_CREATE, API_NOT_FOUND, API_NOT_FOUND},
    {"/api/import", API_NOT_FOUND, API_IMPORT, API_NOT_FOUND, API_NOT_FOUND},
    {"/api/keys", API_KEY_LIST, API_KEY_ADD, API_NOT_FOUND, API_NOT_FOUND},
    /* under /api/conversations/{id} */
    {"", API_CONV_GET, API_NOT_FOUND, API_CONV_PATCH, API_CONV_DELETE},
    {"/export", API_CONV_EXPORT, API_NOT_FOUND, API_NOT_FOUND, API_NOT_FOUND},
    {"/messages", API_NOT_FOUND, API_SEND, API_NOT_FOUND, API_NOT_FOUND},
    {"/regenerate", API_NOT_FOUND, API_REGENERATE, API_NOT_FOUND, API_NOT_FOUND},
};
enum { API_N_TOP = 8 }; /* PATHS[0..8) are whole paths, the rest follow an id */

static ApiRoute by_method(const ApiPath *p, const char *method) {
    ApiRoute r = !strcmp(method, "GET")      ? p->get
                 : !strcmp(method, "POST")   ? p->post
                 : !strcmp(method, "PATCH")  ? p->patch
                 : !strcmp(method, "DELETE") ? p->del
                                             : API_NOT_FOUND;
    return r == API_NOT_FOUND ? API_BAD_METHOD : r;
}

static ApiRoute match(const ApiPath *paths, int n, const char *rest, const char *method) {
    for (int i = 0; i < n; i++)
        if (!strcmp(paths[i].path, rest))
            return by_method(&paths[i], method);
    return API_NOT_FOUND;
}

static bool conv_id_ok(const char *id, size_t n) {
    if (n != STORE_CONV_ID_LEN)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
            return false;
    return true;
}

void api_target(const char *method, const char *url, ApiTarget *t) {
    memset(t, 0, sizeof *t);
    size_t cp = sizeof API_CONV_PREFIX - 1, kp = sizeof API_KEYS_PREFIX - 1;
    if (!strncmp(url, API_CONV_PREFIX, cp)) {
        const char *rest = url + cp, *slash = strchr(rest, '/');
        size_t n = slash ? (size_t)(slash - rest) : strlen(rest);
        if (conv_id_ok(rest, n)) {
            memcpy(t->id, rest, n);
            t->route = match(PATHS + API_N_TOP, (int)(sizeof PATHS / sizeof *PATHS) - API_N_TOP,
                             rest + n, method);
        }
    } else if (!strncmp(url, API_KEYS_PREFIX, kp)) {
        size_t n = strlen(url + kp);
        if (n >= 1 && n <= STORE_KEY_NAME_MAX && !strchr(url + kp, '/')) {
            memcpy(t->name, url + kp, n);
            t->route = !strcmp(method, "DELETE") ? API_KEY_REVOKE : API_BAD_METHOD;
        }
    } else {
        t->route = match(PATHS, API_N_TOP, url, method);
    }
    ApiRoute r = t->route;
    t->open = r == API_SESSION || r == API_LOGIN || r == API_SETUP || r == API_REGISTER ||
              r == API_LOGOUT;
    t->body = r == API_LOGIN || r == API_SETUP || r == API_REGISTER || r == API_CONV_CREATE ||
              r == API_CONV_PATCH || r == API_SEND || r == API_REGENERATE || r == API_KEY_ADD;
}

/* A string member (absent or null: NULL; another type: 400 naming it). */
static bool opt_str(const json_t *o, const char *key, const char **out, OaiError *e) {
    const json_t *v = json_object_get(o, key);
    *out = NULL;
    if (!v || json_is_null(v))
        return true;
    if (!json_is_string(v)) {
        oai_error_set(e, 400, "invalid_request_error", NULL, key, "%s: expected a string", key);
        return false;
    }
    *out = json_string_value(v);
    return true;
}

static bool need_str(const json_t *o, const char *key, const char **out, OaiError *e) {
    if (!opt_str(o, key, out, e))
        return false;
    if (!*out || !**out) {
        oai_error_set(e, 400, "invalid_request_error", NULL, key, "%s: required", key);
        return false;
    }
    return true;
}

/* An integer member >= 0 (absent or null: -1). */
static bool opt_id(const json_t *o, const char *key, long long *out, OaiError *e) {
    const json_t *v = json_object_get(o, key);
    *out = -1;
    if (!v || json_is_null(v))
        return true;
    if (!json_is_integer(v) || json_integer_value(v) < 0) {
        oai_error_set(e, 400, "invalid_request_error", NULL, key,
                      "%s: expected a message id (an integer >= 0)", key);
        return false;
    }
    *out = json_integer_value(v);
    return true;
}

/* Only the known settings with number values, as JSON text. */
static bool settings(const json_t *o, char **out, OaiError *e) {
    const json_t *v = json_object_get(o, "settings");
    *out = NULL;
    if (!v || json_is_null(v))
        return true;
    if (!json_is_object(v)) {
        oai_error_set(e, 400, "invalid_request_error", NULL, "settings",
                      "settings: expected an object");
        return false;
    }
    json_t *kept = json_object();
    for (int i = 0; kept && i < API_N_SETTINGS; i++) {
        const json_t *x = json_object_get(v, API_SETTINGS[i]);
        if (json_is_number(x))
            json_object_set_new(kept, API_SETTINGS[i], json_deep_copy(x));
    }
    *out = kept ? json_dumps(kept, JSON_COMPACT) : NULL;
    json_decref(kept);
    if (!*out) {
        oai_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
        return false;
    }
    return true;
}

bool api_body(ApiRoute route, const char *body, size_t len, const OaiLimits *lim, ApiBody *b,
              OaiError *e) {
    memset(b, 0, sizeof *b);
    b->current_leaf = b->parent = b->message = -1;
    b->root = oai_parse_object(body ? body : "", len, lim, e);
    if (!b->root)
        return false;
    const json_t *o = b->root;
    switch (route) {
    case API_LOGIN:
    case API_SETUP:
    case API_REGISTER:
        return need_str(o, "name", &b->name, e) && need_str(o, "password", &b->password, e);
    case API_KEY_ADD: return need_str(o, "name", &b->name, e);
    case API_CONV_CREATE:
    case API_CONV_PATCH:
        return opt_str(o, "title", &b->title, e) && opt_str(o, "system", &b->system, e) &&
               opt_str(o, "model", &b->model, e) &&
               opt_id(o, "current_leaf", &b->current_leaf, e) && settings(o, &b->settings, e);
    case API_SEND:
        if (!opt_id(o, "parent", &b->parent, e) || !need_str(o, "content", &b->content, e))
            return false;
        b->content_len = json_string_length(json_object_get(o, "content"));
        return true;
    case API_REGENERATE:
        if (!opt_id(o, "message", &b->message, e))
            return false;
        if (b->message <= 0) {
            oai_error_set(e, 400, "invalid_request_error", NULL, "message",
                          "message: give the message to answer again");
            return false;
        }
        return true;
    default: return true; /* routes without fields */
    }
}

void api_body_free(ApiBody *b) {
    json_decref(b->root);
    free(b->settings);
    memset(b, 0, sizeof *b);
}
