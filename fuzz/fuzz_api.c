/* fuzz_api.c - libFuzzer target for the page's /api request parsing: the
 * route (serve/apireq.c api_target), the session cookie (serve/http1.c
 * h1_cookie) and the body (api_body), as the server runs them.
 *
 * Input: "METHOD PATH\nCOOKIE-HEADER\nBODY" (missing parts are empty).
 * Checked: a route's id is 32 lowercase hex digits and its key name 1-64
 * bytes without '/'; the cookie's value is NUL-terminated within its
 * buffer and never holds ';'; a rejected body carries a 4xx status, a
 * message and a serialisable envelope; an accepted one has the fields its
 * route requires (login: name and password, send: content with its length,
 * regenerate: a message > 0) and settings that are a JSON object of known
 * numeric settings only. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "serve/apireq.h"
#include "serve/http1.h"

static volatile size_t sink;

static void check_target(const ApiTarget *t) {
    if (t->id[0]) {
        if (strlen(t->id) != STORE_CONV_ID_LEN)
            abort();
        for (int i = 0; i < STORE_CONV_ID_LEN; i++)
            if (!strchr("0123456789abcdef", t->id[i]))
                abort();
    }
    if (t->route == API_KEY_REVOKE && (!t->name[0] || strchr(t->name, '/')))
        abort();
    if (t->open && t->route != API_SESSION && t->route != API_LOGIN && t->route != API_SETUP &&
        t->route != API_REGISTER && t->route != API_LOGOUT)
        abort();
}

static void check_body(ApiRoute r, const ApiBody *b) {
    switch (r) {
    case API_LOGIN:
    case API_SETUP:
    case API_REGISTER:
        if (!b->name || !b->name[0] || !b->password || !b->password[0])
            abort();
        break;
    case API_SEND:
        if (!b->content || b->content_len < strlen(b->content) || b->parent < -1)
            abort();
        break;
    case API_REGENERATE:
        if (b->message <= 0)
            abort();
        break;
    default: break;
    }
    if (b->settings) {
        json_t *j = json_loads(b->settings, 0, NULL);
        if (!json_is_object(j))
            abort();
        const char *k;
        json_t *v;
        json_object_foreach(j, k, v) {
            int i = 0;
            while (i < API_N_SETTINGS && strcmp(k, API_SETTINGS[i]) != 0)
                i++;
            if (i == API_N_SETTINGS || !json_is_number(v))
                abort();
        }
        json_decref(j);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *p = (const char *)data, *end = p + size;
    const char *nl1 = memchr(p, '\n', size);
    const char *line1_end = nl1 ? nl1 : end;
    const char *nl2 = nl1 ? memchr(nl1 + 1, '\n', (size_t)(end - nl1 - 1)) : NULL;
    const char *cookie = nl1 ? nl1 + 1 : end, *cookie_end = nl2 ? nl2 : end;
    const char *body = nl2 ? nl2 + 1 : end;

    char line[512];
    size_t n =
        (size_t)(line1_end - p) < sizeof line - 1 ? (size_t)(line1_end - p) : sizeof line - 1;
    memcpy(line, p, n);
    line[n] = '\0';
    if (strlen(line) != n)
        return 0; /* the server never routes a path with a NUL (the gate refuses %00) */
    char *sp = strchr(line, ' ');
    const char *method = "GET", *url = line;
    if (sp) {
        *sp = '\0';
        method = line;
        url = sp + 1;
    }
    ApiTarget t;
    api_target(method, url, &t);
    check_target(&t);

    char v[256];
    memset(v, 'x', sizeof v);
    int k = h1_cookie(cookie, (size_t)(cookie_end - cookie), "session", v, sizeof v);
    if (k < 0 || !memchr(v, 0, sizeof v) || (k == 0 && v[0]) || strchr(v, ';'))
        abort();

    OaiLimits lim = oai_default_limits();
    ApiRoute routes[] = {t.route, API_LOGIN, API_CONV_PATCH, API_SEND, API_REGENERATE, API_KEY_ADD};
    for (size_t i = 0; i < sizeof routes / sizeof *routes; i++) {
        ApiBody b;
        OaiError e = {0};
        if (api_body(routes[i], body, (size_t)(end - body), &lim, &b, &e)) {
            check_body(routes[i], &b);
        } else {
            if (e.status < 400 || e.status > 599 || !e.message[0])
                abort();
            json_t *j = oai_error_json(&e);
            char *s = oai_dump(j);
            if (!s)
                abort();
            sink += strlen(s);
            free(s);
            json_decref(j);
        }
        api_body_free(&b);
    }
    return 0;
}
