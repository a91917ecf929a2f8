/* api.c - the page's REST API under /api/ (docs/WEB.md has the routes).
 *
 * Sessions: login sets "session=<token>" (HttpOnly, SameSite=Strict, Path=/,
 * Max-Age; Secure with --cookie-secure), a new token each login; the store
 * keeps only its hash. Every request that changes state needs the session's
 * CSRF token in "X-CSRF-Token" and a JSON body ("Content-Type:
 * application/json": a cross-site form cannot send one). Two "session"
 * cookies are 400 ambiguous_credentials, never "the first one wins".
 * Login attempts are limited per user name and per client address (the
 * gate's X-Cgpt-Peer).
 *
 * Scoping: every conversation, message and key is looked up through the
 * logged-in user (store.h), so another user's id answers 404, exactly as a
 * missing one.
 *
 * Sending a message stores the user's message first, then runs the chat
 * through srv_generate (the scheduler /v1 uses: continuous batching and the
 * prefix cache, keyed per user) as a stream, and stores the reply as it
 * comes (SrvHook: at least every second, then its final status). */
#include <microhttpd.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "chat/toolcall.h"
#include "core/perf.h"
#include "serve/apireq.h"
#include "serve/gate.h"
#include "serve/http1.h"
#include "serve/import.h"
#include "serve/server_impl.h"
#include "serve/web.h"

#define API_EXPORT_FORMAT "cgpt-conversation/1" /* "format" of an export (docs/WEB.md) */
#define API_TITLE_CHARS 60                      /* bytes of a first message made into a title */
#define API_COOKIE_MAX 256                      /* bytes of a session cookie value considered */
#define API_IMPORT_MAX 1000                     /* conversations in one import */
#define API_LOGIN_USER_RPM 10                   /* login attempts per minute for one user name */
#define API_LOGIN_ADDR_RPM 30                   /* login attempts per minute from one address */

typedef struct {
    StoreUser user;
    char csrf[STORE_CSRF_LEN + 1];
} ApiSession;

/* ------------------------------------------------------------ responses */

static enum MHD_Result reply(Server *s, SrvReq *q, struct MHD_Connection *c, int status,
                             json_t *body, const char *cookie) {
    struct MHD_Response *r = srv_json_response(body);
    if (r && cookie)
        MHD_add_response_header(r, "Set-Cookie", cookie);
    if (r)
        MHD_add_response_header(r, "Cache-Control", "no-store");
    return srv_respond(s, q, c, status, r);
}

static enum MHD_Result error(Server *s, SrvReq *q, struct MHD_Connection *c, int status,
                             const char *code, const char *param, const char *msg) {
    oai_error_set(&q->err, status, status >= 500 ? "server_error" : "invalid_request_error", code,
                  param, "%s", msg);
    return srv_respond_error(s, q, c, &q->err, 0);
}

/* A store failure as an HTTP error: NOT_FOUND 404, INVALID 400, LIMIT 413
 * (too big) / 400, the rest 500. */
static enum MHD_Result store_error(Server *s, SrvReq *q, struct MHD_Connection *c, const Err *err) {
    int status = err->status == STATUS_NOT_FOUND ? 404
                 : err->status == STATUS_INVALID ? 400
                 : err->status == STATUS_LIMIT   ? 400
                                                 : 500;
    const char *code = status == 404 ? "not_found" : NULL;
    return error(s, q, c, status, code, NULL, status == 500 ? "the store failed" : err->msg);
}

static void session_cookie(const Server *s, const char *token, long long max_age, char *out,
                           size_t cap) {
    snprintf(out, cap, "session=%s; Path=/; HttpOnly; SameSite=Strict; Max-Age=%lld%s", token,
             max_age, s->cfg.cookie_secure ? "; Secure" : "");
}

/* ------------------------------------------------------------ request parts */

typedef struct {
    const char *name;
    char value[API_COOKIE_MAX];
    int count;
} CookieScan;

static enum MHD_Result scan_cookie(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value) {
    CookieScan *cs = cls;
    (void)kind;
    if (strcasecmp(key, "Cookie") != 0 || !value)
        return MHD_YES;
    char v[API_COOKIE_MAX];
    int n = h1_cookie(value, strlen(value), cs->name, v, sizeof v);
    if (n && !cs->count)
        snprintf(cs->value, sizeof cs->value, "%s", v);
    cs->count += n;
    return MHD_YES;
}

/* The session of the request: 401 without one, 400 with two. */
static bool get_session(Server *s, struct MHD_Connection *c, ApiSession *as, OaiError *e) {
    CookieScan cs = {.name = "session"};
    MHD_get_connection_values(c, MHD_HEADER_KIND, scan_cookie, &cs);
    if (cs.count > 1) {
        oai_error_set(e, 400, "invalid_request_error", "ambiguous_credentials", NULL,
                      "More than one session cookie was sent.");
        return false;
    }
    Err err = {0};
    if (!cs.count || store_session_get(s->store, cs.value, &as->user, as->csrf, &err)) {
        oai_error_set(e, 401, "invalid_request_error", "not_logged_in", NULL,
                      "Not logged in (or the session expired).");
        return false;
    }
    return true;
}

/* A state-changing request: the session's CSRF token in X-CSRF-Token. */
static bool check_csrf(struct MHD_Connection *c, const ApiSession *as, OaiError *e) {
    const char *t = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-CSRF-Token");
    if (!t || strlen(t) != STORE_CSRF_LEN || sodium_memcmp(t, as->csrf, STORE_CSRF_LEN) != 0) {
        oai_error_set(e, 403, "invalid_request_error", "csrf_token_invalid", NULL,
                      "The X-CSRF-Token header is missing or wrong (reload the page).");
        return false;
    }
    return true;
}

/* A body must come as JSON (415 otherwise): a cross-site form cannot send
 * one. */
static bool json_typed(struct MHD_Connection *c, OaiError *e) {
    const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
    if (ct && strncasecmp(ct, "application/json", 16) == 0)
        return true;
    oai_error_set(e, 415, "invalid_request_error", "unsupported_media_type", NULL,
                  "Send the body as Content-Type: application/json.");
    return false;
}

/* ------------------------------------------------------------ accounts */

/* Login attempts: per user name and per client address, each a bucket of
 * requests per minute (the /v1 rate limiter, its own instance). */
static bool login_allowed(Server *s, struct MHD_Connection *c, const char *name, double *retry) {
    const char *peer = MHD_lookup_connection_value(c, MHD_HEADER_KIND, GATE_PEER_HEADER);
    uint8_t id[RL_ID_BYTES];
    RlInfo info;
    char key[STORE_USER_NAME_MAX + 64];
    struct {
        const char *prefix, *v;
        int rpm;
    } who[2] = {{"user:", name, API_LOGIN_USER_RPM},
                {"addr:", peer ? peer : "?", API_LOGIN_ADDR_RPM}};
    for (int i = 0; i < 2; i++) {
        snprintf(key, sizeof key, "%s%.80s", who[i].prefix, who[i].v);
        crypto_generichash(id, sizeof id, (const unsigned char *)key, strlen(key), NULL, 0);
        RlLimits lim = {.rpm = who[i].rpm};
        if (rl_begin(s->login_rl, id, &lim, 0, perf_now(), &info) != RL_OK) {
            *retry = info.retry_after > 1 ? info.retry_after : 1;
            return false;
        }
        rl_finish(s->login_rl, id, 0, 0, perf_now());
    }
    return true;
}

static json_t *user_json(const StoreUser *u) {
    return json_pack("{s:s, s:b}", "name", u->name, "admin", u->admin);
}

/* Start a session for 'u' and answer with it (a fresh token: a token a
 * client had before logging in is never promoted). */
static enum MHD_Result logged_in(Server *s, SrvReq *q, struct MHD_Connection *c,
                                 const StoreUser *u) {
    char token[STORE_TOKEN_LEN + 1], csrf[STORE_CSRF_LEN + 1], cookie[256];
    Err err = {0};
    if (store_session_new(s->store, u->id, s->cfg.session_ttl, token, csrf, &err))
        return store_error(s, q, c, &err);
    session_cookie(s, token, s->cfg.session_ttl, cookie, sizeof cookie);
    sodium_memzero(token, sizeof token);
    return reply(s, q, c, 200, json_pack("{s:o, s:s}", "user", user_json(u), "csrf", csrf), cookie);
}

static bool setup_open(Server *s) {
    long long n = 1;
    Err err = {0};
    return server_host_is_loopback(s->cfg.host) && !store_user_count(s->store, &n, &err) && n == 0;
}

static enum MHD_Result route_session(Server *s, SrvReq *q, struct MHD_Connection *c) {
    ApiSession as;
    OaiError e;
    json_t *models = json_array();
    int n = 0;
    PoolInfo *list = pool_list(s->cfg.pool, false, &n);
    for (int i = 0; list && i < n; i++) /* context 0: not known until it is loaded */
        json_array_append_new(models,
                              json_pack("{s:s, s:i, s:s}", "id", list[i].id, "context",
                                        list[i].n_ctx, "status", pool_state_name(list[i].state)));
    free(list);
    json_t *j = json_pack("{s:o, s:b, s:b}", "models", models, "setup", setup_open(s),
                          "registration", s->cfg.open_registration);
    if (get_session(s, c, &as, &e)) {
        json_object_set_new(j, "user", user_json(&as.user));
        json_object_set_new(j, "csrf", json_string(as.csrf));
    } else {
        json_object_set_new(j, "user", json_null());
    }
    return reply(s, q, c, 200, j, NULL);
}

/* POST /api/login, /api/setup (the first account, an admin, on a loopback
 * server with no users) and /api/register (with --open-registration). */
static enum MHD_Result route_account(Server *s, SrvReq *q, struct MHD_Connection *c, ApiRoute what,
                                     const ApiBody *b) {
    const char *name = b->name, *pw = b->password;
    enum MHD_Result res;
    if (what == API_LOGIN) {
        double retry = 0;
        StoreUser u;
        Err err = {0};
        if (!login_allowed(s, c, name, &retry)) {
            oai_error_set(&q->err, 429, "requests", "rate_limit_exceeded", NULL,
                          "Too many login attempts; try again in %.0f s.", retry);
            metrics_refused(s->metrics, "login");
            res = srv_respond_error(s, q, c, &q->err, retry);
        } else if (store_user_verify(s->store, name, pw, &u, &err)) {
            res = err.status == STATUS_INVALID ? error(s, q, c, 401, "invalid_credentials", NULL,
                                                       "Wrong user name or password.")
                                               : store_error(s, q, c, &err);
        } else {
            res = logged_in(s, q, c, &u);
        }
    } else {
        bool setup = what == API_SETUP;
        StoreUser u;
        Err err = {0};
        if (setup ? !setup_open(s) : !s->cfg.open_registration)
            res = error(s, q, c, 403, "forbidden", NULL,
                        setup ? "The first account exists already (or the server is not on "
                                "loopback): ask an admin for an account."
                              : "Registration is closed: ask an admin for an account.");
        else if (store_user_add(s->store, name, pw, setup, &u, &err))
            res = store_error(s, q, c, &err);
        else
            res = logged_in(s, q, c, &u);
    }
    return res;
}

static enum MHD_Result route_logout(Server *s, SrvReq *q, struct MHD_Connection *c) {
    CookieScan cs = {.name = "session"};
    MHD_get_connection_values(c, MHD_HEADER_KIND, scan_cookie, &cs);
    Err err = {0};
    if (cs.count == 1)
        store_session_end(s->store, cs.value, &err);
    char cookie[256];
    session_cookie(s, "", 0, cookie, sizeof cookie);
    return reply(s, q, c, 200, json_pack("{s:b}", "ok", 1), cookie);
}

/* ------------------------------------------------------------ conversations */

static enum MHD_Result route_conv_list(Server *s, SrvReq *q, struct MHD_Connection *c,
                                       const ApiSession *as) {
    const char *query = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "q");
    json_t *list;
    Err err = {0};
    if (store_conv_list(s->store, as->user.id, query, STORE_LIST_MAX, &list, &err))
        return store_error(s, q, c, &err);
    return reply(s, q, c, 200, json_pack("{s:o}", "conversations", list), NULL);
}

/* Create (POST /api/conversations) or change (PATCH .../{id}) from a body
 * of {title, system, model, settings, current_leaf}. */
static enum MHD_Result route_conv_write(Server *s, SrvReq *q, struct MHD_Connection *c,
                                        const ApiSession *as, const char *id, const ApiBody *b) {
    const char *title = b->title, *system = b->system, *model = b->model;
    enum MHD_Result res;
    Err err = {0};
    if (model && *model && !pool_has(s->cfg.pool, model)) {
        res = error(s, q, c, 400, "model_not_found", "model", "no such model on this server");
    } else if (!id) {
        char nid[STORE_CONV_ID_LEN + 1];
        if (store_conv_create(s->store, as->user.id, title, system, model, b->settings, nid, &err))
            res = store_error(s, q, c, &err);
        else
            res = reply(s, q, c, 201, json_pack("{s:s}", "id", nid), NULL);
    } else if (store_conv_update(s->store, as->user.id, id, title, system, model, b->settings,
                                 b->current_leaf, &err)) {
        res = store_error(s, q, c, &err);
    } else {
        res = reply(s, q, c, 200, json_pack("{s:s}", "id", id), NULL);
    }
    return res;
}

/* The page's view of a stored assistant reply (the raw text the model
 * wrote): "content" the answer and "reasoning" the thinking, split by
 * chat/toolcall's parser as /v1 splits a reply. The model's own format
 * flags would need its template, and a GET must not load a model, so the
 * text's own markers choose: harmony's <|channel|> -> HARMONY; <think> or
 * </think> -> TOOLCALL_THINK (with TOOLCALL_THINK_OPEN when </think> comes
 * first: the prompt opened it, as DeepSeek-R1's does; an unclosed <think>
 * is reasoning, as in a stream); else the text is all answer, untouched. */
static void split_reply(json_t *m) {
    const json_t *cv = json_object_get(m, "content");
    const char *text = json_string_value(cv);
    size_t len = json_string_length(cv);
    json_object_set_new(m, "reasoning", json_string(""));
    if (!text)
        return;
    const char *open = memmem(text, len, "<think>", 7), *close = memmem(text, len, "</think>", 8);
    ToolFormat fmt = TOOL_FORMAT_NONE;
    unsigned flags = 0;
    if (memmem(text, len, "<|channel|>", 11))
        fmt = TOOL_FORMAT_HARMONY;
    else if (open || close)
        flags = TOOLCALL_THINK | (close && (!open || close < open) ? TOOLCALL_THINK_OPEN : 0);
    else
        return;
    ToolResult r = {0};
    if (toolcall_parse(fmt, flags, 0, text, len, &r) == STATUS_OK) {
        json_object_set_new(m, "content", json_stringn(r.content, r.content_len));
        json_object_set_new(m, "reasoning", json_stringn(r.reasoning, r.reasoning_len));
    }
    toolcall_result_free(&r);
}

static enum MHD_Result route_conv_get(Server *s, SrvReq *q, struct MHD_Connection *c,
                                      const ApiSession *as, const char *id, bool export) {
    json_t *conv;
    Err err = {0};
    if (store_conv_get(s->store, as->user.id, id, &conv, &err))
        return store_error(s, q, c, &err);
    if (!export) {
        const json_t *msgs = json_object_get(conv, "messages");
        for (size_t i = 0; i < json_array_size(msgs); i++) {
            json_t *m = json_array_get(msgs, i);
            const char *role = json_string_value(json_object_get(m, "role"));
            if (role && !strcmp(role, "assistant"))
                split_reply(m);
        }
        return reply(s, q, c, 200, conv, NULL);
    }
    json_object_set_new(conv, "format", json_string(API_EXPORT_FORMAT));
    struct MHD_Response *r = srv_json_response(conv);
    if (!r)
        return MHD_NO;
    char disp[96];
    snprintf(disp, sizeof disp, "attachment; filename=\"conversation-%s.json\"", id);
    MHD_add_response_header(r, "Content-Disposition", disp);
    MHD_add_response_header(r, "Cache-Control", "no-store");
    return srv_respond(s, q, c, 200, r);
}

/* ------------------------------------------------------------ import */

static enum MHD_Result route_import(Server *s, SrvReq *q, struct MHD_Connection *c,
                                    const ApiSession *as) {
    if (!json_typed(c, &q->err))
        return srv_respond_error(s, q, c, &q->err, 0);
    json_error_t je;
    if (oai_json_depth(q->body ? q->body : "", q->len, s->cfg.limits.max_json_depth) >
        s->cfg.limits.max_json_depth)
        return error(s, q, c, 400, NULL, NULL, "the file nests JSON too deeply");
    json_t *b = json_loadb(q->body ? q->body : "", q->len, 0, &je);
    if (!b)
        return error(s, q, c, 400, NULL, NULL, "the file is not JSON");
    json_t *list = json_is_array(b) ? json_incref(b) : json_pack("[O]", b);
    json_t *ids = json_array();
    enum MHD_Result res = MHD_NO;
    size_t n = json_array_size(list);
    if (n > API_IMPORT_MAX) {
        res = error(s, q, c, 400, NULL, NULL, "more than 1000 conversations in one file");
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        const json_t *cv = json_array_get(list, i);
        json_t *ours = import_is_chatgpt(cv) ? import_chatgpt(cv) : json_incref((json_t *)cv);
        char id[STORE_CONV_ID_LEN + 1];
        Err err = {0};
        Status st = store_conv_import(s->store, as->user.id, ours, id, &err);
        json_decref(ours);
        if (st) {
            char msg[ERR_MSG_MAX + 64];
            snprintf(msg, sizeof msg, "conversation %zu of the file: %s", i, err.msg);
            res = error(s, q, c, st == STATUS_INVALID || st == STATUS_LIMIT ? 400 : 500, NULL, NULL,
                        msg);
            goto done; /* the ones before it are imported: the answer says which */
        }
        json_array_append_new(ids, json_string(id));
    }
    res = reply(s, q, c, 200, json_pack("{s:O}", "imported", ids), NULL);
done:
    json_decref(ids);
    json_decref(list);
    json_decref(b);
    return res;
}

/* ------------------------------------------------------------ generation */

/* What a page generation stores as it goes (SrvHook). */
typedef struct {
    SrvHook base;
    Store *store;
    long long user;
    char conv[STORE_CONV_ID_LEN + 1];
    long long parent;   /* the user message the reply answers */
    long long reply_id; /* set by start */
    char model[STORE_MODEL_MAX + 1];
} PageGen;

static bool gen_start(SrvHook *h, Job *job) {
    PageGen *g = (PageGen *)h;
    Err err = {0};
    (void)job;
    if (store_msg_add(g->store, g->user, g->conv, g->parent, "assistant", "", 0, "streaming",
                      g->model, &g->reply_id, &err))
        return false;
    snprintf(h->headers[0][0], sizeof h->headers[0][0], "X-Cgpt-User-Message");
    snprintf(h->headers[0][1], sizeof h->headers[0][1], "%lld", g->parent);
    snprintf(h->headers[1][0], sizeof h->headers[1][0], "X-Cgpt-Assistant-Message");
    snprintf(h->headers[1][1], sizeof h->headers[1][1], "%lld", g->reply_id);
    return true;
}

static const char *finish_text(GenFinish f) {
    if (f == GEN_FINISH_ERROR)
        return "error";
    if (f == JOB_FINISH_FILTERED)
        return "content_filter";
    switch (f) {
    case GEN_FINISH_LENGTH:
    case GEN_FINISH_CONTEXT: return "length";
    case GEN_FINISH_CANCELLED: return "cancelled";
    default: return "stop";
    }
}

static void gen_progress(SrvHook *h, Job *job, bool final) {
    PageGen *g = (PageGen *)h;
    if (!g->reply_id)
        return;
    size_t len = 0;
    char *text = job_reply_page(job, &len);
    Err err = {0};
    if (!final) {
        if (text)
            store_msg_update(g->store, g->reply_id, text, len, NULL, NULL, &err);
        free(text);
        return;
    }
    JobOutcome o;
    job_outcome(job, &o);
    /* stopped: cancelled before it ended (the client left or pressed Stop);
     * a reply that ended first is complete even if a cancel came after */
    bool stopped = !o.ended || o.finish == GEN_FINISH_CANCELLED;
    const char *status = o.error[0] ? "error" : stopped ? "stopped" : "complete";
    StoreMsgStats st = {.prompt_tokens = o.n_prompt,
                        .completion_tokens = o.n_generated,
                        .seconds = o.seconds,
                        .finish = o.error[0] ? "error"
                                  : stopped  ? "cancelled"
                                             : finish_text(o.finish),
                        .error = o.error[0] ? o.error : NULL};
    store_msg_update(g->store, g->reply_id, text ? text : "", text ? len : 0, status, &st, &err);
    free(text);
}

static void gen_free(SrvHook *h) { free(h); }

/* Append the OpenAI message(s) for path[i] to 'msgs'; returns the index of
 * the last path entry used. An assistant message with tool_calls goes out
 * with the tool messages that follow it (content null when it wrote no
 * text), keeping only the calls answered and each call's first answer, as
 * OpenAI's rules (and oai.c) require: an import may hold calls nobody
 * answered, or results of nothing. A call left with no answer is dropped
 * (its message kept for its text, if any); a result with no call is left
 * out. */
static size_t chat_message(json_t *msgs, const json_t *path, size_t i) {
    const json_t *m = json_array_get(path, i);
    const char *role = json_string_value(json_object_get(m, "role"));
    const json_t *content = json_object_get(m, "content");
    const json_t *calls = json_object_get(m, "tool_calls");
    if (!strcmp(role, "tool"))
        return i;
    if (strcmp(role, "assistant") != 0 || !json_array_size(calls)) {
        json_array_append_new(msgs, json_pack("{s:s, s:O}", "role", role, "content", content));
        return i;
    }
    size_t end = i + 1; /* the tool messages after it: path[i+1 .. end) */
    while (end < json_array_size(path) &&
           !strcmp(json_string_value(json_object_get(json_array_get(path, end), "role")), "tool"))
        end++;
    json_t *kept = json_array(), *answers = json_array();
    for (size_t k = 0; k < json_array_size(calls); k++) {
        const json_t *call = json_array_get(calls, k);
        const char *id = json_string_value(json_object_get(call, "id"));
        bool dup = false;
        for (size_t d = 0; d < json_array_size(kept) && !dup; d++)
            dup = !strcmp(id, json_string_value(json_object_get(json_array_get(kept, d), "id")));
        for (size_t t = i + 1; id && !dup && t < end; t++) {
            const json_t *tm = json_array_get(path, t);
            const char *answers_id = json_string_value(json_object_get(tm, "tool_call_id"));
            if (!answers_id || strcmp(id, answers_id) != 0)
                continue;
            json_array_append(kept, (json_t *)call);
            json_t *a = json_pack("{s:s, s:s, s:O}", "role", "tool", "tool_call_id", id, "content",
                                  json_object_get(tm, "content"));
            const char *name = json_string_value(json_object_get(tm, "name"));
            if (a && name && *name)
                json_object_set_new(a, "name", json_string(name));
            json_array_append_new(answers, a);
            break;
        }
    }
    const char *text = json_string_value(content);
    if (json_array_size(kept)) {
        json_t *am = json_pack("{s:s, s:O}", "role", "assistant", "tool_calls", kept);
        json_object_set_new(am, "content", text && *text ? json_string(text) : json_null());
        json_array_append_new(msgs, am);
        json_array_extend(msgs, answers);
    } else if (text && *text) {
        json_array_append_new(msgs, json_pack("{s:s, s:s}", "role", "assistant", "content", text));
    }
    json_decref(kept);
    json_decref(answers);
    return end - 1;
}

/* A chat request body for 'path' (the branch, root first) under the
 * conversation's system prompt, model and settings. Owned. */
static json_t *chat_request(const json_t *conv, const json_t *path, const char **model) {
    json_t *msgs = json_array();
    const char *sys = json_string_value(json_object_get(conv, "system"));
    if (sys && *sys)
        json_array_append_new(msgs, json_pack("{s:s, s:s}", "role", "system", "content", sys));
    for (size_t i = 0; i < json_array_size(path); i++)
        i = chat_message(msgs, path, i);
    json_t *req = json_pack("{s:o, s:b, s:{s:b}}", "messages", msgs, "stream", 1, "stream_options",
                            "include_usage", 1);
    *model = json_string_value(json_object_get(conv, "model"));
    if (*model && **model)
        json_object_set_new(req, "model", json_string(*model));
    const json_t *set = json_object_get(conv, "settings");
    for (int i = 0; i < API_N_SETTINGS; i++) {
        const json_t *x = json_object_get(set, API_SETTINGS[i]);
        if (json_is_number(x))
            json_object_set_new(req, API_SETTINGS[i], json_deep_copy(x));
    }
    return req;
}

/* Generate the reply to user message 'parent' of the conversation. */
static enum MHD_Result generate(Server *s, SrvReq *q, struct MHD_Connection *c,
                                const ApiSession *as, const char *id, long long parent) {
    json_t *conv = NULL, *path = NULL;
    Err err = {0};
    if (store_conv_get(s->store, as->user.id, id, &conv, &err) ||
        store_msg_path(s->store, as->user.id, id, parent, &path, &err)) {
        json_decref(conv);
        return store_error(s, q, c, &err);
    }
    const char *model = NULL;
    json_t *req = chat_request(conv, path, &model);
    char *body = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    json_decref(path);
    OaiRequest r;
    Status st =
        body ? oai_parse_chat(body, strlen(body), &s->cfg.limits, &r, &q->err) : STATUS_NOMEM;
    free(body);
    if (st) {
        json_decref(conv);
        if (st == STATUS_NOMEM)
            return error(s, q, c, 500, NULL, NULL, "out of memory");
        return srv_respond_error(s, q, c, &q->err, 0); /* a bad setting: param names it */
    }
    PageGen *g = calloc(1, sizeof *g);
    if (!g) {
        oai_request_free(&r);
        json_decref(conv);
        return error(s, q, c, 500, NULL, NULL, "out of memory");
    }
    g->base = (SrvHook){.start = gen_start, .progress = gen_progress, .free = gen_free};
    g->store = s->store;
    g->user = as->user.id;
    snprintf(g->conv, sizeof g->conv, "%s", id);
    g->parent = parent;
    if (model && *model)
        snprintf(g->model, sizeof g->model, "%s", model);
    else
        pool_default_id(s->cfg.pool, g->model, sizeof g->model);
    json_decref(conv);
    /* the user's own prefix cache: a follow-up reuses its conversation */
    q->auth = (SrvAuth){.limits = s->cfg.default_limits};
    char tenant[32];
    snprintf(tenant, sizeof tenant, "page-user:%lld", as->user.id);
    q->auth.user = as->user.id;
    crypto_generichash(q->auth.tenant, sizeof q->auth.tenant, (const unsigned char *)tenant,
                       strlen(tenant), NULL, 0);
    return srv_generate(s, q, c, OAI_CHAT, &r, &g->base);
}

/* A first message as the title: its first line, cut at a word. */
static void title_from(const char *text, char *out, size_t cap) {
    size_t n = 0;
    while (text[n] && text[n] != '\n' && n < API_TITLE_CHARS && n + 1 < cap)
        n++;
    if (text[n] && text[n] != '\n') { /* cut at the last space, and not inside a character */
        size_t k = n;
        while (k > 20 && text[k] != ' ')
            k--;
        n = k > 20 ? k : n;
        while (n > 0 && ((unsigned char)text[n] & 0xC0) == 0x80)
            n--;
    }
    memcpy(out, text, n);
    out[n] = '\0';
}

/* POST .../{id}/messages {content, parent?}: store the user's message
 * (under 'parent', default the branch shown; 0: a new root, for an edit of
 * the first message) and stream the reply. */
static enum MHD_Result route_send(Server *s, SrvReq *q, struct MHD_Connection *c,
                                  const ApiSession *as, const char *id, const ApiBody *b) {
    json_t *conv = NULL;
    const char *content = b->content;
    long long parent = b->parent;
    Err err = {0};
    enum MHD_Result res;
    if (store_conv_get(s->store, as->user.id, id, &conv, &err)) {
        res = store_error(s, q, c, &err);
    } else {
        if (parent < 0)
            parent = json_integer_value(json_object_get(conv, "current_leaf"));
        long long mid;
        if (store_msg_add(s->store, as->user.id, id, parent, "user", content, b->content_len,
                          "complete", NULL, &mid, &err)) {
            res = store_error(s, q, c, &err);
        } else {
            const char *title = json_string_value(json_object_get(conv, "title"));
            if (!title || !*title) {
                char t[API_TITLE_CHARS + 8];
                title_from(content, t, sizeof t);
                store_conv_update(s->store, as->user.id, id, t, NULL, NULL, NULL, -1, &err);
            }
            res = generate(s, q, c, as, id, mid);
        }
    }
    json_decref(conv);
    return res;
}

/* POST .../{id}/regenerate {message}: another reply to a user message (or
 * to the user message an assistant message answered). */
static enum MHD_Result route_regenerate(Server *s, SrvReq *q, struct MHD_Connection *c,
                                        const ApiSession *as, const char *id, const ApiBody *b) {
    json_t *path = NULL;
    long long msg = b->message;
    Err err = {0};
    enum MHD_Result res;
    if (store_msg_path(s->store, as->user.id, id, msg, &path, &err)) {
        res = store_error(s, q, c, &err);
    } else {
        const json_t *last = json_array_get(path, json_array_size(path) - 1);
        const char *role = json_string_value(json_object_get(last, "role"));
        /* a user message or a tool's result is answered; an assistant
         * message is answered again from what it answered */
        bool user = !strcmp(role, "user") || !strcmp(role, "tool");
        long long answer = user ? msg : json_integer_value(json_object_get(last, "parent"));
        res = answer > 0 ? generate(s, q, c, as, id, answer)
                         : error(s, q, c, 400, NULL, "message", "that message answers nothing");
    }
    json_decref(path);
    return res;
}

/* ------------------------------------------------------------ keys */

static enum MHD_Result route_keys(Server *s, SrvReq *q, struct MHD_Connection *c,
                                  const ApiSession *as, const ApiTarget *t, const ApiBody *b) {
    Err err = {0};
    if (t->route == API_KEY_LIST) {
        StoreKey *keys;
        int n;
        if (store_key_list(s->store, as->user.id, &keys, &n, &err))
            return store_error(s, q, c, &err);
        json_t *list = json_array();
        for (int i = 0; i < n; i++)
            json_array_append_new(list, json_pack("{s:s, s:I, s:b}", "name", keys[i].name,
                                                  "created", (json_int_t)keys[i].created, "active",
                                                  keys[i].revoked == 0));
        free(keys);
        return reply(s, q, c, 200, json_pack("{s:o}", "keys", list), NULL);
    }
    if (t->route == API_KEY_ADD) {
        char key[STORE_KEY_TEXT_LEN + 1];
        enum MHD_Result res =
            store_key_add(s->store, as->user.id, b->name, 0, 0, 0, key, &err)
                ? store_error(s, q, c, &err)
                : reply(s, q, c, 201, json_pack("{s:s, s:s}", "name", b->name, "key", key), NULL);
        sodium_memzero(key, sizeof key);
        return res;
    }
    if (store_key_revoke(s->store, as->user.id, t->name, &err))
        return error(s, q, c, 404, "not_found", NULL, "no active key of that name");
    return reply(s, q, c, 200, json_pack("{s:b}", "ok", 1), NULL);
}

/* ------------------------------------------------------------ routing */

/* Everything but the page's files under /api: parse the route, check the
 * session and CSRF token where the route needs them (before the body is
 * read: an anonymous request learns nothing from its body's errors), then
 * the body, then answer. */
enum MHD_Result srv_route_api(Server *s, SrvReq *q, struct MHD_Connection *c, const char *url,
                              const char *method) {
    q->page = true;
    if (!s->store)
        return error(s, q, c, 503, "no_store", NULL,
                     "the server has no data directory (--data-dir): the page is off");
    ApiTarget t;
    api_target(method, url, &t);
    if (t.route == API_SESSION)
        return route_session(s, q, c);
    if (t.route == API_LOGOUT)
        return route_logout(s, q, c);
    ApiSession as;
    if (!t.open && (!get_session(s, c, &as, &q->err) ||
                    (strcmp(method, "GET") != 0 && !check_csrf(c, &as, &q->err))))
        return srv_respond_error(s, q, c, &q->err, 0);
    if (t.route == API_NOT_FOUND)
        return error(s, q, c, 404, "unknown_url", NULL, "no such API route");
    if (t.route == API_BAD_METHOD)
        return error(s, q, c, 405, "method_not_allowed", NULL, "method not allowed here");
    ApiBody b = {0};
    if (t.body && (!json_typed(c, &q->err) ||
                   !api_body(t.route, q->body, q->len, &s->cfg.limits, &b, &q->err))) {
        api_body_free(&b);
        return srv_respond_error(s, q, c, &q->err, 0);
    }
    enum MHD_Result res;
    Err err = {0};
    switch (t.route) {
    case API_LOGIN:
    case API_SETUP:
    case API_REGISTER: res = route_account(s, q, c, t.route, &b); break;
    case API_CONV_LIST: res = route_conv_list(s, q, c, &as); break;
    case API_CONV_CREATE: res = route_conv_write(s, q, c, &as, NULL, &b); break;
    case API_CONV_PATCH: res = route_conv_write(s, q, c, &as, t.id, &b); break;
    case API_CONV_GET: res = route_conv_get(s, q, c, &as, t.id, false); break;
    case API_CONV_EXPORT: res = route_conv_get(s, q, c, &as, t.id, true); break;
    case API_CONV_DELETE:
        res = store_conv_delete(s->store, as.user.id, t.id, &err)
                  ? store_error(s, q, c, &err)
                  : reply(s, q, c, 200, json_pack("{s:b}", "ok", 1), NULL);
        break;
    case API_SEND: res = route_send(s, q, c, &as, t.id, &b); break;
    case API_REGENERATE: res = route_regenerate(s, q, c, &as, t.id, &b); break;
    case API_IMPORT: res = route_import(s, q, c, &as); break;
    default: res = route_keys(s, q, c, &as, &t, &b); break;
    }
    api_body_free(&b);
    return res;
}
