/* apireq.h - what a request to the page's /api asks, worked out without
 * the server: the route (method and path to ApiRoute, with the
 * conversation id or key name it names) and the JSON body's fields,
 * checked by type and presence for that route. api.c answers; this part is
 * pure, so fuzz/fuzz_api.c runs it on any bytes.
 *
 * Routes (docs/WEB.md): GET /api/session, POST /api/login|setup|register|
 * logout (no session needed); GET|POST /api/conversations, POST /api/import,
 * GET|POST /api/keys, DELETE /api/keys/{name}, GET|PATCH|DELETE
 * /api/conversations/{id}, GET .../{id}/export, POST .../{id}/messages,
 * POST .../{id}/regenerate. A conversation id is 32 lowercase hex digits;
 * anything else there is "not found", like a missing conversation. */
#ifndef CGPT_SERVE_APIREQ_H
#define CGPT_SERVE_APIREQ_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "serve/oai.h"
#include "store/store.h"

typedef enum {
    API_NOT_FOUND,  /* 404: no such route (or a malformed id in it) */
    API_BAD_METHOD, /* 405: the path exists, not with this method */
    API_SESSION,
    API_LOGIN,
    API_SETUP,
    API_REGISTER,
    API_LOGOUT,
    API_CONV_LIST,
    API_CONV_CREATE,
    API_CONV_GET,
    API_CONV_PATCH,
    API_CONV_DELETE,
    API_CONV_EXPORT,
    API_SEND,
    API_REGENERATE,
    API_IMPORT,
    API_KEY_LIST,
    API_KEY_ADD,
    API_KEY_REVOKE,
} ApiRoute;

typedef struct {
    ApiRoute route;
    bool open; /* answered without a session (session, login, setup, register, logout); every
                * other route needs one, and its CSRF token unless the method is GET */
    bool body; /* takes a JSON object body that api_body() reads */
    char id[STORE_CONV_ID_LEN + 1];    /* the conversation, on its routes */
    char name[STORE_KEY_NAME_MAX + 1]; /* the key, on API_KEY_REVOKE */
} ApiTarget;

/* Route 'method' 'url' (the decoded path without the query). Never fails:
 * unknown routes are API_NOT_FOUND / API_BAD_METHOD. */
void api_target(const char *method, const char *url, ApiTarget *t);

/* A body's fields. Strings point into 'root' (NULL: absent or null); ids
 * are -1 when absent or null. */
typedef struct {
    json_t *root;
    const char *name, *password;        /* login, setup, register, key add (name only) */
    const char *title, *system, *model; /* conversation create and patch */
    char *settings;                     /* owned: the known numeric settings as JSON text */
    long long current_leaf;             /* conversation patch */
    const char *content;                /* send: not empty */
    size_t content_len;                 /* its bytes (it may hold NULs) */
    long long parent;                   /* send: under which message (0: a new root) */
    long long message;                  /* regenerate: > 0 */
} ApiBody;

/* The settings a conversation may carry into a chat request. */
extern const char *const API_SETTINGS[];
extern const int API_N_SETTINGS;

/* Parse and check the body of 'route' (one with ApiTarget.body) under the
 * /v1 size, depth and syntax limits. False with 'e' filled (400, naming the
 * field) when it is not a JSON object, a field has the wrong type, or a
 * required one is missing. api_body_free() either way. */
bool api_body(ApiRoute route, const char *body, size_t len, const OaiLimits *lim, ApiBody *b,
              OaiError *e);
void api_body_free(ApiBody *b);

#endif
