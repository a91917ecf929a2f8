/* server_impl.h - what server.c (daemon, routing, auth) and routes.c (the
 * generation, tokenize and detokenize routes) share. Private to src/serve. */
#ifndef CGPT_SERVE_SERVER_IMPL_H
#define CGPT_SERVE_SERVER_IMPL_H

#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>

#include "serve/metrics.h"
#include "serve/oai.h"
#include "serve/ratelimit.h"
#include "serve/server.h"
#include "store/store.h"

typedef struct {
    bool anonymous;
    uint8_t tenant[SCHED_TENANT_BYTES]; /* the key's hash; zeros when anonymous */
    RlLimits limits;
} SrvAuth;

/* One HTTP request (MHD's con_cls). */
typedef struct {
    int fd;            /* libmicrohttpd's socket of the request (the gate's pair) */
    const char *route; /* static, for metrics */
    double t_start;
    char request_id[32];
    char *body;
    size_t len, cap;
    bool responded;
    bool too_big; /* the body passed the limit: discarded, 413 at the end */
    SrvAuth auth;
    OaiError err;
    bool has_rl;
    RlInfo rl;
} SrvReq;

struct Server {
    ServerConfig cfg;
    struct MHD_Daemon *daemon;
    int port;
    ServerModel models[SERVER_MAX_MODELS];
    int n_models;
    atomic_bool ready, stopping;
    atomic_int busy; /* generations in flight (drained on stop) */
    /* keys */
    Store *store;
    pthread_mutex_t key_mu;
    StoreKey *keys;
    int n_keys, n_active;
    long long keys_version;
    double keys_checked;
    bool require_keys; /* non-loopback: keys always required */
    RateLimiter *rl;
    Metrics *metrics;
    struct Gate *gate; /* accepts connections and checks their framing (gate.h) */
};

/* The peer closed or reset the connection (poll for RDHUP/HUP/ERR, no wait). */
bool srv_client_gone(int fd);
/* How many header fields named 'name' (case-insensitive) the request has. */
int srv_header_count(struct MHD_Connection *c, const char *name);
/* Authenticate the request: true with auth filled, or false with a 401 in e
 * (400 ambiguous_credentials for more than one credential, even when no
 * keys are configured). */
bool srv_authenticate(Server *s, struct MHD_Connection *c, SrvAuth *auth, OaiError *e);
const ServerModel *srv_find_model(const Server *s, const char *id);

/* Queue a response (adds x-request-id, CORS and rate-limit headers, counts
 * it in the metrics) and destroy our reference to it. */
enum MHD_Result srv_respond(Server *s, SrvReq *q, struct MHD_Connection *c, int status,
                            struct MHD_Response *r);
enum MHD_Result srv_respond_json(Server *s, SrvReq *q, struct MHD_Connection *c, int status,
                                 json_t *body);
/* The error envelope with e->status; Retry-After when retry_after > 0. */
enum MHD_Result srv_respond_error(Server *s, SrvReq *q, struct MHD_Connection *c,
                                  const OaiError *e, double retry_after);
void srv_add_rl_headers(struct MHD_Response *r, const RlInfo *info);

/* routes.c */
enum MHD_Result srv_route_generate(Server *s, SrvReq *q, struct MHD_Connection *c, OaiKind kind);
enum MHD_Result srv_route_tokenize(Server *s, SrvReq *q, struct MHD_Connection *c);
enum MHD_Result srv_route_detokenize(Server *s, SrvReq *q, struct MHD_Connection *c);

#endif
