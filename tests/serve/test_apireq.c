/* test_apireq.c - /api routing and bodies (serve/apireq.h) against the
 * route table in docs/WEB.md: each documented method and path, the
 * methods a path does not take (405), malformed ids (404 like a missing
 * conversation), and each route's body rules. */
#include <criterion/criterion.h>
#include <string.h>

#include "serve/apireq.h"

#define ID "0123456789abcdef0123456789abcdef"

Test(apireq, documented_routes) {
    static const struct {
        const char *method, *url;
        ApiRoute want;
        bool open, body;
    } cases[] = {
        {"GET", "/api/session", API_SESSION, true, false},
        {"POST", "/api/login", API_LOGIN, true, true},
        {"POST", "/api/setup", API_SETUP, true, true},
        {"POST", "/api/register", API_REGISTER, true, true},
        {"POST", "/api/logout", API_LOGOUT, true, false},
        {"GET", "/api/conversations", API_CONV_LIST, false, false},
        {"POST", "/api/conversations", API_CONV_CREATE, false, true},
        {"GET", "/api/conversations/" ID, API_CONV_GET, false, false},
        {"PATCH", "/api/conversations/" ID, API_CONV_PATCH, false, true},
        {"DELETE", "/api/conversations/" ID, API_CONV_DELETE, false, false},
        {"GET", "/api/conversations/" ID "/export", API_CONV_EXPORT, false, false},
        {"POST", "/api/conversations/" ID "/messages", API_SEND, false, true},
        {"POST", "/api/conversations/" ID "/regenerate", API_REGENERATE, false, true},
        {"POST", "/api/import", API_IMPORT, false, false},
        {"GET", "/api/keys", API_KEY_LIST, false, false},
        {"POST", "/api/keys", API_KEY_ADD, false, true},
        {"DELETE", "/api/keys/laptop", API_KEY_REVOKE, false, false},
        /* wrong methods */
        {"POST", "/api/session", API_BAD_METHOD, false, false},
        {"GET", "/api/login", API_BAD_METHOD, false, false},
        {"PUT", "/api/conversations/" ID, API_BAD_METHOD, false, false},
        {"GET", "/api/keys/laptop", API_BAD_METHOD, false, false},
        /* not routes */
        {"GET", "/api/conversations/" ID "/", API_NOT_FOUND, false, false},
        {"GET", "/api/conversations/0123456789ABCDEF0123456789abcdef", API_NOT_FOUND, false, false},
        {"GET", "/api/conversations/0123", API_NOT_FOUND, false, false},
        {"GET", "/api/conversations/" ID "0", API_NOT_FOUND, false, false},
        {"POST", "/api/conversations/" ID "/nothing", API_NOT_FOUND, false, false},
        {"DELETE", "/api/keys/", API_NOT_FOUND, false, false},
        {"DELETE", "/api/keys/a/b", API_NOT_FOUND, false, false},
        {"GET", "/api/sessions", API_NOT_FOUND, false, false},
        {"GET", "/api", API_NOT_FOUND, false, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        ApiTarget t;
        api_target(cases[i].method, cases[i].url, &t);
        cr_expect_eq(t.route, cases[i].want, "%s %s: route %d", cases[i].method, cases[i].url,
                     t.route);
        cr_expect_eq(t.open, cases[i].open, "%s %s: open", cases[i].method, cases[i].url);
        cr_expect_eq(t.body, cases[i].body, "%s %s: body", cases[i].method, cases[i].url);
        if (t.route == API_CONV_GET || t.route == API_SEND)
            cr_expect_str_eq(t.id, ID);
    }
    ApiTarget t;
    api_target("DELETE", "/api/keys/laptop", &t);
    cr_expect_str_eq(t.name, "laptop");
}

/* Parse 'body' for 'r': the status (0 when accepted) and the param named. */
static int parse(ApiRoute r, const char *body, ApiBody *b, const char **param) {
    OaiLimits lim = oai_default_limits();
    static OaiError e; /* *param points into it */
    memset(&e, 0, sizeof e);
    bool ok = api_body(r, body, strlen(body), &lim, b, &e);
    *param = e.param;
    return ok ? 0 : e.status;
}

Test(apireq, bodies) {
    ApiBody b;
    const char *param;
    cr_expect_eq(parse(API_LOGIN, "{\"name\":\"a\",\"password\":\"p\"}", &b, &param), 0);
    cr_expect_str_eq(b.name, "a");
    api_body_free(&b);
    cr_expect_eq(parse(API_LOGIN, "{\"name\":\"a\"}", &b, &param), 400);
    cr_expect_str_eq(param, "password");
    api_body_free(&b);
    cr_expect_eq(parse(API_LOGIN, "{\"name\":1,\"password\":\"p\"}", &b, &param), 400);
    cr_expect_str_eq(param, "name");
    api_body_free(&b);
    cr_expect_eq(parse(API_LOGIN, "[1]", &b, &param), 400, "not an object");
    api_body_free(&b);
    cr_expect_eq(parse(API_SEND, "{\"content\":\"a\\u00e9\",\"parent\":0}", &b, &param), 0);
    cr_expect_eq(b.content_len, 3);
    cr_expect_eq(b.parent, 0);
    api_body_free(&b);
    cr_expect_eq(parse(API_SEND, "{\"content\":\"a\\u0000b\"}", &b, &param), 400,
                 "NUL is refused, as on /v1");
    api_body_free(&b);
    cr_expect_eq(parse(API_SEND, "{\"content\":\"\"}", &b, &param), 400);
    cr_expect_str_eq(param, "content");
    api_body_free(&b);
    cr_expect_eq(parse(API_SEND, "{\"content\":\"x\",\"parent\":-2}", &b, &param), 400);
    cr_expect_str_eq(param, "parent");
    api_body_free(&b);
    cr_expect_eq(parse(API_REGENERATE, "{\"message\":0}", &b, &param), 400);
    api_body_free(&b);
    cr_expect_eq(parse(API_REGENERATE, "{\"message\":7}", &b, &param), 0);
    cr_expect_eq(b.message, 7);
    api_body_free(&b);
    cr_expect_eq(parse(API_CONV_PATCH,
                       "{\"title\":\"t\",\"current_leaf\":null,\"settings\":{\"temperature\":0.5,"
                       "\"top_k\":\"9\",\"evil\":1,\"seed\":3}}",
                       &b, &param),
                 0);
    cr_expect_eq(b.current_leaf, -1);
    json_t *set = json_loads(b.settings, 0, NULL);
    cr_expect_eq(json_object_size(set), 2, "only known numeric settings: %s", b.settings);
    cr_expect_eq(json_real_value(json_object_get(set, "temperature")), 0.5);
    cr_expect_eq(json_integer_value(json_object_get(set, "seed")), 3);
    json_decref(set);
    api_body_free(&b);
    cr_expect_eq(parse(API_CONV_CREATE, "{\"settings\":[]}", &b, &param), 400);
    cr_expect_str_eq(param, "settings");
    api_body_free(&b);
}
