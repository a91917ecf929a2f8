/* modcheck.c - the server's side of moderation (server_impl.h): which text
 * of a request is checked, and where a flag or block is recorded.
 *
 * Input: every message of a chat request but the assistant's (their text
 * came from the model, or the client speaks for it: either way the model's
 * own checks cover what it says), each part of text in it, or a
 * completion's prompt text (token-id prompts are not text and are not
 * checked). Each text is checked on its own, so the verdict cache serves
 * the history a chat re-sends every turn. The last user message is always
 * recorded when flagged; earlier ones only when their verdict was not
 * cached (it was recorded then). Blocks are always recorded.
 *
 * Records go to the store's audit (the policy's audit_content decides
 * whether the text goes with its hash) and to /metrics. A store that
 * fails is logged, never fatal: the answer stands. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "serve/server_impl.h"

#define MOD_API_MAX_INPUTS 256 /* texts in one /v1/moderations request */

void srv_audit(Server *s, const SrvAuth *auth, const char *route, SafeDir dir, const ModResult *r,
               const char *text, size_t len) {
    if (r->v.action == POLICY_ALLOW)
        return;
    bool block = r->v.action == POLICY_BLOCK;
    metrics_moderation(s->metrics, dir, r->v.flagged, block);
    if (!s->store)
        return;
    char cats[SAFE_N_CAT * 24] = "", hash[2 * MOD_HASH_BYTES + 1];
    json_t *scores = json_object();
    for (int c = 0; c < SAFE_N_CAT; c++)
        if (r->v.flagged & (1u << c)) {
            size_t n = strlen(cats);
            snprintf(cats + n, sizeof cats - n, "%s%s", n ? "," : "", safe_cat_name(c));
            json_object_set_new(scores, safe_cat_name(c), json_real(r->scores.s[c]));
        }
    char *sj = json_dumps(scores, JSON_COMPACT | JSON_REAL_PRECISION(4));
    json_decref(scores);
    mod_hash_hex(r->hash, hash);
    const Policy *p = mod_policy(s->cfg.mod);
    StoreAudit a = {.user = auth->user,
                    .key_name = auth->key_name,
                    .route = route,
                    .direction = safe_dir_name(dir),
                    .action = block ? "block" : "flag",
                    .categories = cats,
                    .scores = sj,
                    .classifier = mod_name(s->cfg.mod),
                    .error = r->error ? r->why : "",
                    .content_hash = hash,
                    .content = p->audit_content ? text : NULL,
                    .content_len = len};
    Err err = {0};
    if (store_audit_add(s->store, &a, &err))
        fprintf(stderr, "cgpt serve: moderation audit: %s\n", err.msg);
    free(sj);
}

/* ------------------------------------------------------------ input */

typedef struct {
    Server *s;
    const SrvAuth *auth;
    const char *route;
    ModResult all; /* flags and blocks of every text, merged */
    bool last_user;
} InputCheck;

static void check_text(InputCheck *ic, const char *text, size_t len, bool always_record) {
    if (!len)
        return;
    SafeText t = {.dir = SAFE_INPUT, .text = text, .len = len};
    ModResult r;
    mod_check(ic->s->cfg.mod, &t, &r);
    if (r.v.action != POLICY_ALLOW && (always_record || !r.cached || r.v.action == POLICY_BLOCK))
        srv_audit(ic->s, ic->auth, ic->route, SAFE_INPUT, &r, text, len);
    ic->all.v.flagged |= r.v.flagged;
    ic->all.v.blocked |= r.v.blocked;
    if (r.v.action > ic->all.v.action)
        ic->all.v.action = r.v.action;
    ic->all.error |= r.error;
}

/* A message's content: a string, or text parts. */
static void check_content(InputCheck *ic, const json_t *content, bool always_record) {
    if (json_is_string(content)) {
        check_text(ic, json_string_value(content), json_string_length(content), always_record);
        return;
    }
    size_t i;
    const json_t *part;
    json_array_foreach(content, i, part) {
        const json_t *t = json_object_get(part, "text");
        if (json_is_string(t))
            check_text(ic, json_string_value(t), json_string_length(t), always_record);
    }
}

/* The last user message's text (for classifiers that read the prompt
 * beside the reply), owned; NULL when there is none. */
static char *last_user_text(const json_t *messages) {
    for (size_t i = json_array_size(messages); i-- > 0;) {
        const json_t *m = json_array_get(messages, i);
        if (strcmp(json_string_value(json_object_get(m, "role")) ?: "", "user") != 0)
            continue;
        const json_t *c = json_object_get(m, "content");
        if (json_is_string(c))
            return strdup(json_string_value(c));
        const json_t *p0 = json_object_get(json_array_get(c, 0), "text");
        return json_is_string(p0) ? strdup(json_string_value(p0)) : NULL;
    }
    return NULL;
}

PolicyAction srv_check_input(Server *s, const SrvAuth *auth, const char *route, OaiKind kind,
                             const OaiRequest *r, unsigned *blocked, char **context) {
    *context = NULL;
    *blocked = 0;
    if (!s->cfg.mod || !s->cfg.moderate)
        return POLICY_ALLOW;
    InputCheck ic = {.s = s, .auth = auth, .route = route};
    if (kind == OAI_CHAT) {
        size_t n = json_array_size(r->messages), last = n;
        for (size_t i = n; i-- > 0;)
            if (!strcmp(json_string_value(json_object_get(json_array_get(r->messages, i), "role"))
                            ?: "",
                        "user")) {
                last = i;
                break;
            }
        for (size_t i = 0; i < n; i++) {
            const json_t *m = json_array_get(r->messages, i);
            const char *role = json_string_value(json_object_get(m, "role"));
            if (role && strcmp(role, "assistant") != 0)
                check_content(&ic, json_object_get(m, "content"), i == last);
        }
        *context = last_user_text(r->messages);
    } else if (r->prompt) {
        check_text(&ic, r->prompt, r->prompt_len, true);
        *context = strdup(r->prompt);
    }
    *blocked = ic.all.error ? 0 : ic.all.v.blocked; /* a failure gets the general refusal */
    return ic.all.v.action;
}

/* ------------------------------------------------------------ output */

typedef struct {
    Server *s;
    SrvAuth auth;
    char route[48];
} JobAuditCtx;

static void job_record(void *ctx, SafeDir dir, const ModResult *r, const char *text, size_t len) {
    JobAuditCtx *a = ctx;
    srv_audit(a->s, &a->auth, a->route, dir, r, text, len);
}

JobAudit srv_job_audit(Server *s, const SrvAuth *auth, const char *route) {
    JobAuditCtx *a = calloc(1, sizeof *a);
    if (!a)
        return (JobAudit){0}; /* no record: the checks still run */
    a->s = s;
    a->auth = *auth;
    snprintf(a->route, sizeof a->route, "%s", route ? route : "");
    return (JobAudit){.record = job_record, .free = free, .ctx = a};
}

/* ------------------------------------------------------------ /v1/moderations */

/* The texts of "input": a string, an array of strings, or an array of parts
 * ({"type":"text","text"} checked; image parts are refused: no classifier
 * here reads images). False with q->err set. */
static bool inputs_of(const json_t *in, const json_t **texts, int *n, OaiError *e) {
    *n = 0;
    if (json_is_string(in)) {
        texts[(*n)++] = in;
        return true;
    }
    if (!json_is_array(in) || json_array_size(in) == 0) {
        oai_error_set(e, 400, "invalid_request_error", NULL, "input",
                      "input: expected a string, an array of strings or an array of text parts");
        return false;
    }
    if (json_array_size(in) > MOD_API_MAX_INPUTS) {
        oai_error_set(e, 400, "invalid_request_error", NULL, "input",
                      "input: %zu items (limit %d)", json_array_size(in), MOD_API_MAX_INPUTS);
        return false;
    }
    size_t i;
    const json_t *it;
    json_array_foreach(in, i, it) {
        const json_t *t = it;
        if (json_is_object(it)) {
            const char *type = json_string_value(json_object_get(it, "type"));
            if (!type || strcmp(type, "text") != 0) {
                oai_error_set(e, 400, "invalid_request_error", NULL, "input",
                              "input[%zu]: only text parts can be moderated here (type '%s')", i,
                              type ? type : "missing");
                return false;
            }
            t = json_object_get(it, "text");
        }
        if (!json_is_string(t)) {
            oai_error_set(e, 400, "invalid_request_error", NULL, "input",
                          "input[%zu]: expected a string or a text part", i);
            return false;
        }
        texts[(*n)++] = t;
    }
    return true;
}

enum MHD_Result srv_route_moderations(Server *s, SrvReq *q, struct MHD_Connection *c) {
    if (!srv_authenticate(s, c, &q->auth, &q->err))
        return srv_respond_error(s, q, c, &q->err, 0);
    if (!s->cfg.mod) {
        oai_error_set(&q->err, 404, "invalid_request_error", "unknown_url", NULL,
                      "This server has no moderation classifier.");
        return srv_respond_error(s, q, c, &q->err, 0);
    }
    json_t *body = oai_parse_object(q->body, q->len, &s->cfg.limits, &q->err);
    if (!body)
        return srv_respond_error(s, q, c, &q->err, 0);
    const json_t *model = json_object_get(body, "model");
    const json_t *texts[MOD_API_MAX_INPUTS];
    int n = 0;
    enum MHD_Result res;
    if (model && !json_is_null(model) && !json_is_string(model)) {
        oai_error_set(&q->err, 400, "invalid_request_error", NULL, "model",
                      "model: expected a string");
        res = srv_respond_error(s, q, c, &q->err, 0);
    } else if (!json_object_get(body, "input")) {
        oai_error_set(&q->err, 400, "invalid_request_error", NULL, "input",
                      "input: required");
        res = srv_respond_error(s, q, c, &q->err, 0);
    } else if (!inputs_of(json_object_get(body, "input"), texts, &n, &q->err)) {
        res = srv_respond_error(s, q, c, &q->err, 0);
    } else {
        json_t *results = json_array();
        bool failed = false;
        Err err = {0};
        for (int i = 0; i < n && !failed; i++) {
            SafeText t = {.dir = SAFE_INPUT,
                          .text = json_string_value(texts[i]),
                          .len = json_string_length(texts[i])};
            SafeScores sc;
            PolicyVerdict v;
            /* scores, not the fail-closed verdict: a failure is an error here */
            failed = mod_scores(s->cfg.mod, &t, &sc, &err) != STATUS_OK;
            if (!failed) {
                policy_decide(mod_policy(s->cfg.mod), SAFE_INPUT, &sc, &v);
                json_array_append_new(results, mod_result_json(&sc, &v));
            }
        }
        if (failed) {
            json_decref(results);
            oai_error_set(&q->err, 503, "server_error", "moderation_failed", NULL,
                          "The moderation classifier failed: %s", err.msg);
            res = srv_respond_error(s, q, c, &q->err, 1);
        } else {
            uint8_t rnd[12];
            char hex[25], id[32];
            randombytes_buf(rnd, sizeof rnd);
            sodium_bin2hex(hex, sizeof hex, rnd, sizeof rnd);
            snprintf(id, sizeof id, "modr-%s", hex);
            res = srv_respond_json(s, q, c, 200,
                                   json_pack("{s:s, s:s, s:o}", "id", id, "model",
                                             mod_name(s->cfg.mod), "results", results));
        }
    }
    json_decref(body);
    return res;
}
