/* server.c - libmicrohttpd daemon behind the gate (gate.h), routing, auth,
 * CORS and the common response path. The generation routes are in
 * serve/routes.c. */
#include "serve/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sodium.h>

#include "core/perf.h"
#include "serve/gate.h"
#include "serve/metrics.h"
#include "serve/server_impl.h"
#include "serve/web.h"

#define SERVER_DRAIN_SECONDS 3 /* on stop: time for running requests to end */

/* ------------------------------------------------------------ config */

ServerConfig server_default_config(void) {
    return (ServerConfig){.host = "127.0.0.1",
                          .port = 8080,
                          .limits = oai_default_limits(),
                          .max_connections = 1024,
                          .header_bytes = SERVER_HEADER_BYTES,
                          .header_timeout = 10,
                          .body_timeout = 30,
                          .session_ttl = SERVER_SESSION_TTL};
}

bool server_host_is_loopback(const char *host) {
    if (!host)
        return false;
    if (!strcmp(host, "localhost"))
        return true;
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, host, &a6) == 1)
        return IN6_IS_ADDR_LOOPBACK(&a6);
    return false;
}

/* ------------------------------------------------------------ connections */

bool srv_client_gone(int fd) {
    if (fd < 0)
        return false;
    struct pollfd p = {.fd = fd, .events = POLLRDHUP};
    if (poll(&p, 1, 0) <= 0)
        return false;
    return (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0;
}

/* ------------------------------------------------------------ keys */

static void keys_reload(Server *s) {
    if (!s->store)
        return;
    long long v = 0;
    Err err = {0};
    if (store_keys_version(s->store, &v, &err) != STATUS_OK) {
        fprintf(stderr, "cgpt serve: reading keys: %s\n", err.msg);
        return;
    }
    if (s->keys && v == s->keys_version)
        return;
    StoreKey *keys = NULL;
    int n = 0;
    if (store_key_list(s->store, -1, &keys, &n, &err) != STATUS_OK) {
        fprintf(stderr, "cgpt serve: reading keys: %s\n", err.msg);
        return;
    }
    free(s->keys);
    s->keys = keys;
    s->n_keys = n;
    s->n_active = 0;
    for (int i = 0; i < n; i++)
        s->n_active += keys[i].revoked == 0;
    s->keys_version = v;
}

typedef struct {
    const char *name;
    int count;
} HeaderCount;

static enum MHD_Result count_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                    const char *value) {
    HeaderCount *h = cls;
    (void)kind;
    (void)value;
    if (!strcasecmp(key, h->name))
        h->count++;
    return MHD_YES;
}

int srv_header_count(struct MHD_Connection *c, const char *name) {
    HeaderCount h = {name, 0};
    MHD_get_connection_values(c, MHD_HEADER_KIND, count_header, &h);
    return h.count;
}

/* The presented key: "Authorization: Bearer KEY" or "x-api-key: KEY".
 * More than one (two Authorization fields, or Authorization and x-api-key)
 * is ambiguous: which one a proxy or a log saw is not knowable, so the
 * request is refused rather than served on the first (*ambiguous). */
static const char *presented_key(struct MHD_Connection *c, bool *ambiguous) {
    *ambiguous = srv_header_count(c, "Authorization") + srv_header_count(c, "x-api-key") > 1;
    const char *a = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (a) {
        while (*a == ' ')
            a++;
        if (!strncasecmp(a, "Bearer ", 7)) {
            a += 7;
            while (*a == ' ')
                a++;
            return a;
        }
        return a; /* a bare key */
    }
    return MHD_lookup_connection_value(c, MHD_HEADER_KIND, "x-api-key");
}

bool srv_authenticate(Server *s, struct MHD_Connection *c, SrvAuth *auth, OaiError *e) {
    memset(auth, 0, sizeof *auth);
    auth->limits = s->cfg.default_limits;
    bool ambiguous;
    const char *k = presented_key(c, &ambiguous);
    if (ambiguous) {
        oai_error_set(e, 400, "invalid_request_error", "ambiguous_credentials", NULL,
                      "More than one credential was sent (Authorization and x-api-key headers "
                      "together count): send exactly one.");
        return false;
    }
    pthread_mutex_lock(&s->key_mu);
    double now = perf_now();
    if (now - s->keys_checked > 1.0) {
        keys_reload(s);
        s->keys_checked = now;
    }
    bool required = s->n_active > 0 || s->require_keys;
    if (!required) {
        pthread_mutex_unlock(&s->key_mu);
        auth->anonymous = true;
        return true;
    }
    int idx = -1;
    uint8_t h[STORE_KEY_HASH_BYTES];
    if (k) {
        store_key_hash(k, strlen(k), h);
        idx = store_key_find(s->keys, s->n_keys, h);
    }
    if (idx >= 0) {
        const StoreKey *key = &s->keys[idx];
        memcpy(auth->tenant, key->hash, sizeof auth->tenant);
        snprintf(auth->key_name, sizeof auth->key_name, "%s", key->name);
        auth->user = key->user_id;
        if (key->rpm > 0)
            auth->limits.rpm = key->rpm;
        if (key->tpm > 0)
            auth->limits.tpm = key->tpm;
        if (key->max_streams > 0)
            auth->limits.max_streams = key->max_streams;
    }
    pthread_mutex_unlock(&s->key_mu);
    if (idx < 0) {
        oai_error_set(e, 401, "invalid_request_error", "invalid_api_key", NULL,
                      k ? "Incorrect API key provided."
                        : "You didn't provide an API key. Send it as 'Authorization: Bearer "
                          "KEY' (create one with 'cgpt key add NAME').");
        return false;
    }
    return true;
}

/* ------------------------------------------------------------ responses */

static const char *allowed_origin(const Server *s, struct MHD_Connection *c) {
    const char *o = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
    if (!o)
        return NULL;
    for (int i = 0; i < s->cfg.n_cors; i++)
        if (!strcmp(s->cfg.cors_origins[i], "*") || !strcmp(s->cfg.cors_origins[i], o))
            return o;
    return NULL;
}

void srv_add_rl_headers(struct MHD_Response *r, const RlInfo *info) {
    char v[64];
    if (info->limit_requests >= 0) {
        snprintf(v, sizeof v, "%d", info->limit_requests);
        MHD_add_response_header(r, "x-ratelimit-limit-requests", v);
        snprintf(v, sizeof v, "%d", info->remaining_requests);
        MHD_add_response_header(r, "x-ratelimit-remaining-requests", v);
        rl_format_reset(info->reset_requests, v, sizeof v);
        MHD_add_response_header(r, "x-ratelimit-reset-requests", v);
    }
    if (info->limit_tokens >= 0) {
        snprintf(v, sizeof v, "%d", info->limit_tokens);
        MHD_add_response_header(r, "x-ratelimit-limit-tokens", v);
        snprintf(v, sizeof v, "%d", info->remaining_tokens);
        MHD_add_response_header(r, "x-ratelimit-remaining-tokens", v);
        rl_format_reset(info->reset_tokens, v, sizeof v);
        MHD_add_response_header(r, "x-ratelimit-reset-tokens", v);
    }
}

enum MHD_Result srv_respond(Server *s, SrvReq *q, struct MHD_Connection *c, int status,
                            struct MHD_Response *r) {
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, "x-request-id", q->request_id);
    const char *origin = q->page ? NULL : allowed_origin(s, c); /* the page is same-origin only */
    if (q->page)
        web_security_headers(r);
    if (origin) {
        MHD_add_response_header(r, "Access-Control-Allow-Origin", origin);
        MHD_add_response_header(r, "Vary", "Origin");
        MHD_add_response_header(r, "Access-Control-Expose-Headers",
                                "x-request-id, x-ratelimit-limit-requests, "
                                "x-ratelimit-remaining-requests, x-ratelimit-reset-requests, "
                                "x-ratelimit-limit-tokens, x-ratelimit-remaining-tokens, "
                                "x-ratelimit-reset-tokens, Retry-After");
    }
    if (q->has_rl)
        srv_add_rl_headers(r, &q->rl);
    enum MHD_Result ok = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    metrics_http(s->metrics, q->route, status);
    return ok;
}

struct MHD_Response *srv_json_response(json_t *body) {
    char *txt = oai_dump(body);
    json_decref(body);
    if (!txt)
        return NULL;
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(txt), txt, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(txt);
        return NULL;
    }
    MHD_add_response_header(r, "Content-Type", "application/json");
    return r;
}

enum MHD_Result srv_respond_json(Server *s, SrvReq *q, struct MHD_Connection *c, int status,
                                 json_t *body) {
    return srv_respond(s, q, c, status, srv_json_response(body));
}

enum MHD_Result srv_respond_error(Server *s, SrvReq *q, struct MHD_Connection *c,
                                  const OaiError *e, double retry_after) {
    struct MHD_Response *r = srv_json_response(oai_error_json(e));
    if (r && retry_after > 0) {
        char v[32];
        snprintf(v, sizeof v, "%d", (int)(retry_after + 0.999));
        MHD_add_response_header(r, "Retry-After", v);
    }
    return srv_respond(s, q, c, e->status, r);
}

/* ------------------------------------------------------------ routing */

static enum MHD_Result route_health(Server *s, SrvReq *q, struct MHD_Connection *c) {
    bool ready = atomic_load(&s->ready);
    json_t *j = json_pack("{s:s}", "status", ready ? "ok" : "loading");
    if (ready && s->cfg.pool) { /* up while models load: say which */
        PoolStats ps;
        pool_stats(s->cfg.pool, &ps);
        json_object_set_new(j, "models_loaded", json_integer(ps.loaded));
        json_object_set_new(j, "models_loading", json_integer(ps.loading));
    }
    return srv_respond_json(s, q, c, ready ? 200 : 503, j);
}

static enum MHD_Result route_metrics(Server *s, SrvReq *q, struct MHD_Connection *c) {
    int n = 0;
    PoolInfo *models = NULL;
    PoolStats ps = {0};
    if (atomic_load(&s->ready) && s->cfg.pool) {
        models = pool_list(s->cfg.pool, true, &n);
        pool_stats(s->cfg.pool, &ps);
    }
    char *txt = metrics_render(s->metrics, models, n, &ps, gate_connections(s->gate));
    free(models);
    if (!txt)
        return MHD_NO;
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(txt), txt, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(txt);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
    return srv_respond(s, q, c, 200, r);
}

static enum MHD_Result route_options(Server *s, SrvReq *q, struct MHD_Connection *c) {
    struct MHD_Response *r = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
    if (!r)
        return MHD_NO;
    if (allowed_origin(s, c)) {
        MHD_add_response_header(r, "Access-Control-Allow-Methods", "GET, POST, OPTIONS");
        const char *h =
            MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Access-Control-Request-Headers");
        MHD_add_response_header(r, "Access-Control-Allow-Headers",
                                h && strlen(h) < 1024 ? h
                                                      : "Authorization, Content-Type, x-api-key");
        MHD_add_response_header(r, "Access-Control-Max-Age", "600");
    }
    return srv_respond(s, q, c, 204, r);
}

/* A model object as OpenAI shapes it, with the pool's state beside it
 * ({"value": "loaded"|"loading"|"unloaded"|"unloading"}, as llama.cpp's
 * router shows it) and the context it is served with (0: not known yet). */
static json_t *model_json(const PoolInfo *in) {
    json_t *j = oai_model_json(in->id, in->created, "cgpt");
    json_object_set_new(j, "status", json_pack("{s:s}", "value", pool_state_name(in->state)));
    json_object_set_new(j, "context_length", json_integer(in->n_ctx));
    return j;
}

static enum MHD_Result route_models(Server *s, SrvReq *q, struct MHD_Connection *c,
                                    const char *id) {
    if (!srv_authenticate(s, c, &q->auth, &q->err))
        return srv_respond_error(s, q, c, &q->err, 0);
    int n = 0;
    PoolInfo *list = pool_list(s->cfg.pool, false, &n);
    if (!list) {
        oai_error_set(&q->err, 500, "server_error", NULL, NULL, "out of memory");
        return srv_respond_error(s, q, c, &q->err, 0);
    }
    enum MHD_Result res;
    if (id) {
        int k = 0;
        while (k < n && strcmp(list[k].id, id))
            k++;
        if (k == n) {
            oai_error_set(&q->err, 404, "invalid_request_error", "model_not_found", "model",
                          "The model '%.200s' does not exist.", id);
            res = srv_respond_error(s, q, c, &q->err, 0);
        } else {
            res = srv_respond_json(s, q, c, 200, model_json(&list[k]));
        }
    } else {
        json_t *data = json_array();
        for (int i = 0; i < n; i++)
            json_array_append_new(data, model_json(&list[i]));
        res =
            srv_respond_json(s, q, c, 200, json_pack("{s:s,s:o}", "object", "list", "data", data));
    }
    free(list);
    return res;
}

static bool waiter_gone(void *arg) { return srv_client_gone(*(int *)arg); }

const ServerModel *srv_acquire_model(Server *s, SrvReq *q, const char *id, double *retry_after) {
    *retry_after = 0;
    PoolWaiter w = {waiter_gone, &q->fd};
    const ServerModel *m = NULL;
    Err err = {0};
    Status st = pool_acquire(s->cfg.pool, id, &w, &m, &err);
    if (!st)
        return m;
    if (st == STATUS_NOT_FOUND) {
        oai_error_set(&q->err, 404, "invalid_request_error", "model_not_found", "model", "%s",
                      err.msg);
    } else if (st == STATUS_BUSY || st == STATUS_LIMIT) {
        oai_error_set(&q->err, 503, "server_error", "model_unavailable", "model", "%s", err.msg);
        if (st == STATUS_BUSY) {
            *retry_after = 5;
            metrics_refused(s->metrics, "model_room");
        }
    } else {
        oai_error_set(&q->err, 500, "server_error", "model_load_failed", "model", "%s", err.msg);
    }
    return NULL;
}

static const char *route_name(const char *url) {
    static const char *known[] = {"/v1/chat/completions",
                                  "/v1/completions",
                                  "/v1/models",
                                  "/v1/moderations",
                                  "/health",
                                  "/metrics",
                                  "/tokenize",
                                  "/detokenize",
                                  "/v1/embeddings"};
    for (size_t i = 0; i < sizeof known / sizeof *known; i++)
        if (!strcmp(url, known[i]))
            return known[i];
    if (!strncmp(url, "/v1/models/", 11))
        return "/v1/models/{id}";
    return "other";
}

static enum MHD_Result dispatch(Server *s, SrvReq *q, struct MHD_Connection *c, const char *url,
                                const char *method) {
    bool get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
    bool post = !strcmp(method, "POST");
    if (!strcmp(method, "OPTIONS"))
        return route_options(s, q, c);
    if (!strcmp(url, "/health") && get)
        return route_health(s, q, c);
    if (!strcmp(url, "/metrics") && get)
        return route_metrics(s, q, c);
    if (!strncmp(url, "/api/", 5)) {
        if (!atomic_load(&s->ready)) {
            oai_error_set(&q->err, 503, "server_error", "model_loading", NULL,
                          "The model is still loading; try again shortly.");
            return srv_respond_error(s, q, c, &q->err, 1);
        }
        return srv_route_api(s, q, c, url, method);
    }
    if (get && web_is_page_path(url) && s->cfg.web.n_assets) {
        q->page = true;
        int status = 200;
        struct MHD_Response *r =
            web_response(&s->cfg.web, url,
                         MHD_lookup_connection_value(c, MHD_HEADER_KIND, "If-None-Match"), &status);
        if (r)
            return srv_respond(s, q, c, status, r);
    }
    bool api = !strcmp(url, "/v1/chat/completions") || !strcmp(url, "/v1/completions") ||
               !strcmp(url, "/v1/models") || !strncmp(url, "/v1/models/", 11) ||
               !strcmp(url, "/v1/moderations") || !strcmp(url, "/tokenize") ||
               !strcmp(url, "/detokenize") || !strcmp(url, "/v1/embeddings");
    if (!api) {
        oai_error_set(&q->err, 404, "invalid_request_error", "unknown_url", NULL,
                      "Unknown request URL: %s %.200s.", method, url);
        return srv_respond_error(s, q, c, &q->err, 0);
    }
    bool want_post = strncmp(url, "/v1/models", 10) != 0;
    if ((want_post && !post) || (!want_post && !get)) {
        oai_error_set(&q->err, 405, "invalid_request_error", "method_not_allowed", NULL,
                      "Method %s is not allowed for %s (use %s).", method, url,
                      want_post ? "POST" : "GET");
        return srv_respond_error(s, q, c, &q->err, 0);
    }
    if (!atomic_load(&s->ready)) {
        oai_error_set(&q->err, 503, "server_error", "model_loading", NULL,
                      "The model is still loading; try again shortly.");
        return srv_respond_error(s, q, c, &q->err, 1);
    }
    if (!strcmp(url, "/v1/models"))
        return route_models(s, q, c, NULL);
    if (!strncmp(url, "/v1/models/", 11))
        return route_models(s, q, c, url + 11);
    if (!strcmp(url, "/v1/chat/completions"))
        return srv_route_generate(s, q, c, OAI_CHAT);
    if (!strcmp(url, "/v1/completions"))
        return srv_route_generate(s, q, c, OAI_COMPLETION);
    if (!strcmp(url, "/v1/moderations"))
        return srv_route_moderations(s, q, c);
    if (!strcmp(url, "/v1/embeddings"))
        return srv_route_embeddings(s, q, c);
    if (!strcmp(url, "/tokenize"))
        return srv_route_tokenize(s, q, c);
    return srv_route_detokenize(s, q, c);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
    Server *s = cls;
    SrvReq *q = *con_cls;
    if (!q) {
        q = calloc(1, sizeof *q);
        if (!q)
            return MHD_NO;
        *con_cls = q;
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        q->fd = ci ? ci->connect_fd : -1;
        q->route = route_name(url);
        q->t_start = perf_now();
        uint8_t rnd[8];
        randombytes_buf(rnd, sizeof rnd);
        char hex[17];
        sodium_bin2hex(hex, sizeof hex, rnd, sizeof rnd);
        snprintf(q->request_id, sizeof q->request_id, "req_%s", hex);
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        if (cl) {
            char *end;
            unsigned long long n = strtoull(cl, &end, 10);
            if (end == cl || *end || n > s->cfg.limits.max_body_bytes) {
                oai_error_set(&q->err, 413, "invalid_request_error", "request_too_large", NULL,
                              "The request body (Content-Length %.30s) is over the limit of %zu "
                              "bytes.",
                              cl, s->cfg.limits.max_body_bytes);
                q->responded = true;
                return srv_respond_error(s, q, c, &q->err, 0);
            }
        }
        return MHD_YES;
    }
    if (q->responded)
        return MHD_NO;
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        /* A body without Content-Length (chunked) that grows past the limit:
         * libmicrohttpd takes no response in the middle of an upload, so the
         * rest is discarded (bounded by the body timeout) and the 413 goes
         * out at the end. */
        if (q->too_big || q->len + n > s->cfg.limits.max_body_bytes) {
            q->too_big = true;
            free(q->body);
            q->body = NULL;
            q->len = q->cap = 0;
            return MHD_YES;
        }
        if (q->len + n > q->cap) {
            size_t cap = q->cap ? q->cap : 4096;
            while (cap < q->len + n)
                cap *= 2;
            char *b = realloc(q->body, cap);
            if (!b)
                return MHD_NO;
            q->body = b;
            q->cap = cap;
        }
        memcpy(q->body + q->len, upload_data, n);
        q->len += n;
        return MHD_YES;
    }
    q->responded = true;
    if (q->too_big) {
        oai_error_set(&q->err, 413, "invalid_request_error", "request_too_large", NULL,
                      "The request body is over the limit of %zu bytes.",
                      s->cfg.limits.max_body_bytes);
        return srv_respond_error(s, q, c, &q->err, 0);
    }
    return dispatch(s, q, c, url, method);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    Server *s = cls;
    SrvReq *q = *con_cls;
    /* the response is out: the gate may read the connection's next request */
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (ci)
        gate_request_done(s->gate, ci->connect_fd);
    if (!q)
        return;
    free(q->body);
    free(q);
    *con_cls = NULL;
}

/* libmicrohttpd's own log. Its connections are the gate's socket pairs,
 * where TCP options do not exist: it says so on every request ("Setting
 * TCP_NODELAY ... failed", "Failed to push the data ..."), which is true and
 * harmless (a Unix socket delays nothing), so those lines are dropped. */
static void mhd_log(void *cls, const char *fmt, va_list ap) {
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    if (!strncmp(line, "Setting TCP_", 12) || !strncmp(line, "Failed to push the data", 23))
        return;
    fprintf(stderr, "cgpt serve: http: %s", line);
}

/* ------------------------------------------------------------ lifecycle */

static Status bind_addr(const char *host, int port, struct sockaddr_storage *ss, Err *err) {
    memset(ss, 0, sizeof *ss);
    const char *h = !strcmp(host, "localhost") ? "127.0.0.1" : host;
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, h, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        return STATUS_OK;
    }
    if (inet_pton(AF_INET6, h, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        return STATUS_OK;
    }
    return err_set(err, STATUS_INVALID,
                   "--host '%s' is not an IPv4 or IPv6 address (or 'localhost')", host);
}

/* Bind and listen ourselves (instead of letting libmicrohttpd do it) so a
 * busy port is one clear error of ours, with the reason, and no log line
 * of libmicrohttpd's before it. Returns the socket or -1 with 'err' set. */
static int listen_socket(const ServerConfig *cfg, const struct sockaddr_storage *ss, Err *err) {
    socklen_t len =
        ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1, e;
    if (fd < 0) {
        err_set(err, STATUS_IO, "cannot create a socket: %s", strerror(errno));
        return -1;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (const struct sockaddr *)ss, len) == 0 && listen(fd, SERVER_LISTEN_BACKLOG) == 0)
        return fd;
    e = errno;
    close(fd);
    const char *hint = e == EADDRINUSE ? " (another server has it: pick a free one with --port)"
                       : e == EACCES   ? " (ports below 1024 need privileges: use --port)"
                       : e == EADDRNOTAVAIL ? " (no interface of this machine has that address)"
                                            : "";
    err_set(err, STATUS_IO, "cannot listen on %s:%d: %s%s", cfg->host, cfg->port, strerror(e),
            hint);
    return -1;
}

Status server_start(Server **out, const ServerConfig *cfg, Err *err) {
    *out = NULL;
    if (sodium_init() < 0)
        return err_set(err, STATUS_IO, "libsodium failed to initialise");
    if (cfg->port < 0 || cfg->port > 65535)
        return err_set(err, STATUS_INVALID, "--port %d is out of range [0, 65535]", cfg->port);
    if (cfg->n_cors > SERVER_MAX_CORS)
        return err_set(err, STATUS_LIMIT, "%d CORS origins, the limit is %d", cfg->n_cors,
                       SERVER_MAX_CORS);
    if (!cfg->pool)
        return err_set(err, STATUS_INVALID, "a server needs a pool of models");
    struct sockaddr_storage ss;
    Status st = bind_addr(cfg->host, cfg->port, &ss, err);
    if (st)
        return st;
    Server *s = calloc(1, sizeof *s);
    if (!s)
        return err_set(err, STATUS_NOMEM, "out of memory");
    s->cfg = *cfg;
    pthread_mutex_init(&s->key_mu, NULL);
    s->rl = rl_new();
    s->login_rl = rl_new();
    s->metrics = metrics_new();
    if (!s->rl || !s->login_rl || !s->metrics) {
        server_stop(s);
        return err_set(err, STATUS_NOMEM, "out of memory");
    }
    if (cfg->data_dir) {
        /* a damaged database is a refusal to start, not a surprise later;
         * replies a crash interrupted are marked (their text is kept) */
        int n_recovered = 0;
        if ((st = store_open(&s->store, cfg->data_dir, err)) || (st = store_check(s->store, err)) ||
            (st = store_recover(s->store, &n_recovered, err))) {
            server_stop(s);
            return st;
        }
        if (n_recovered)
            fprintf(stderr,
                    "cgpt serve: %d reply(s) interrupted by the last stop are marked "
                    "'error' (their text is kept)\n",
                    n_recovered);
        keys_reload(s);
        s->keys_checked = perf_now();
    }
    s->require_keys = !server_host_is_loopback(cfg->host);
    if (s->require_keys && s->n_active == 0) {
        server_stop(s);
        return err_set(err, STATUS_INVALID,
                       "refusing to listen on %s without API keys: anyone on the network could use "
                       "the model. Create one with 'cgpt key add NAME --data-dir %s', or bind to "
                       "127.0.0.1",
                       cfg->host, cfg->data_dir ? cfg->data_dir : "DIR");
    }
    /* libmicrohttpd listens nowhere: the gate accepts, checks the framing of
     * every request and hands it a canonical copy (gate.h). */
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                     MHD_USE_POLL | MHD_USE_ITC | MHD_USE_ERROR_LOG | MHD_USE_NO_LISTEN_SOCKET;
    int lfd = listen_socket(cfg, &ss, err);
    if (lfd < 0) {
        server_stop(s);
        return err->status;
    }
    s->daemon = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER,
                                 mhd_log, s, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                                 MHD_OPTION_CONNECTION_LIMIT, (unsigned)cfg->max_connections,
                                 MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)cfg->header_bytes,
                                 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)600,
                                 MHD_OPTION_THREAD_STACK_SIZE, (size_t)(2u << 20), MHD_OPTION_END);
    if (!s->daemon) {
        close(lfd);
        server_stop(s);
        return err_set(err, STATUS_IO, "cannot start the HTTP server on %s:%d", cfg->host,
                       cfg->port);
    }
    struct sockaddr_storage bound;
    socklen_t blen = sizeof bound;
    s->port = cfg->port;
    if (getsockname(lfd, (struct sockaddr *)&bound, &blen) == 0)
        s->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                    : ((struct sockaddr_in *)&bound)->sin_port);
    GateConfig gc = {.mhd = s->daemon,
                     .listen_fd = lfd,
                     .max_body = cfg->limits.max_body_bytes,
                     .max_connections = cfg->max_connections,
                     .header_timeout = cfg->header_timeout,
                     .body_timeout = cfg->body_timeout,
                     .metrics = s->metrics};
    if ((st = gate_start(&s->gate, &gc, err))) {
        close(lfd);
        server_stop(s);
        return st;
    }
    *out = s;
    return STATUS_OK;
}

int server_port(const Server *s) { return s->port; }

void server_ready(Server *s) { atomic_store(&s->ready, true); }

void server_stop(Server *s) {
    if (!s)
        return;
    atomic_store(&s->stopping, true);
    /* Stop accepting, let running requests see 'stopping' (streams end
     * with an error event, waiting requests are cancelled) for up to
     * SERVER_DRAIN_SECONDS while the gate still relays, then close
     * everything. */
    gate_quiesce(s->gate);
    for (int i = 0; s->daemon && i < SERVER_DRAIN_SECONDS * 50 && atomic_load(&s->busy) > 0; i++)
        usleep(20 * 1000);
    gate_stop(s->gate);
    if (s->daemon)
        MHD_stop_daemon(s->daemon);
    store_close(s->store);
    free(s->keys);
    rl_free(s->rl);
    rl_free(s->login_rl);
    metrics_free(s->metrics);
    pthread_mutex_destroy(&s->key_mu);
    free(s);
}
