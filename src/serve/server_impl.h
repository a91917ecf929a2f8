/* server_impl.h - what server.c (daemon, routing, auth) and routes.c (the
 * generation, tokenize and detokenize routes) share. Private to src/serve. */
#ifndef CGPT_SERVE_SERVER_IMPL_H
#define CGPT_SERVE_SERVER_IMPL_H

#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>

#include "serve/job.h"
#include "serve/metrics.h"
#include "serve/oai.h"
#include "serve/ratelimit.h"
#include "serve/server.h"
#include "store/store.h"

typedef struct {
    bool anonymous;
    uint8_t tenant[SCHED_TENANT_BYTES]; /* the key's hash; zeros when anonymous */
    RlLimits limits;
    char key_name[STORE_KEY_NAME_MAX + 1]; /* the key's name, "" anonymous (the audit) */
    long long user;                        /* the key's owner or the page's user, 0: none */
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
    bool page; /* a page or /api route: security headers, no CORS */
} SrvReq;

struct Server {
    ServerConfig cfg;
    struct MHD_Daemon *daemon;
    int port;
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
    RateLimiter *login_rl; /* the page's login attempts, per user name and per address */
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
/* A reference to model 'id' (NULL or "": the default) from the pool, for
 * the request q (loaded if need be; the wait ends when q's client leaves):
 * give it back with pool_release(s->cfg.pool, m). NULL with q->err set:
 * 404 model_not_found, 503 (no room; Retry-After in *retry_after, or the
 * client left), 500 (the model failed to load). */
const ServerModel *srv_acquire_model(Server *s, SrvReq *q, const char *id, double *retry_after);

/* Queue a response (adds x-request-id, CORS and rate-limit headers, counts
 * it in the metrics) and destroy our reference to it. */
enum MHD_Result srv_respond(Server *s, SrvReq *q, struct MHD_Connection *c, int status,
                            struct MHD_Response *r);
enum MHD_Result srv_respond_json(Server *s, SrvReq *q, struct MHD_Connection *c, int status,
                                 json_t *body);
/* An owned application/json response of 'body' (consumed), or NULL. */
struct MHD_Response *srv_json_response(json_t *body);
/* The error envelope with e->status; Retry-After when retry_after > 0. */
enum MHD_Result srv_respond_error(Server *s, SrvReq *q, struct MHD_Connection *c,
                                  const OaiError *e, double retry_after);
void srv_add_rl_headers(struct MHD_Response *r, const RlInfo *info);

/* api.c: the page's REST API (any path under /api/). */
enum MHD_Result srv_route_api(Server *s, SrvReq *q, struct MHD_Connection *c, const char *url,
                              const char *method);

/* routes.c */
enum MHD_Result srv_route_generate(Server *s, SrvReq *q, struct MHD_Connection *c, OaiKind kind);

#define SRV_HOOK_SECONDS 1.0 /* a streamed reply is handed to its hook at least this often */
#define SRV_HOOK_HEADERS 4

/* What a generation started by the page does besides streaming: store the
 * reply as it comes. Every callback runs on the connection's thread.
 *   start:    the request is admitted (the engine runs); store its start,
 *             fill 'headers' (name, value pairs; "" ends) for the response.
 *             false: storing failed, the request is cancelled (500).
 *   progress: the reply so far (job_reply), at least every
 *             SRV_HOOK_SECONDS while it streams, and once with final set
 *             when it ended, failed or the client left (job_outcome).
 *   free:     the last call, always made exactly once (also when the
 *             request was refused before it started). */
typedef struct SrvHook {
    bool (*start)(struct SrvHook *h, Job *job);
    void (*progress)(struct SrvHook *h, Job *job, bool final);
    void (*free)(struct SrvHook *h);
    char headers[SRV_HOOK_HEADERS][2][64];
} SrvHook;

/* Record a moderation flag or block in the audit and the metrics (the
 * JobAudit record of every request; safe on any thread). */
void srv_audit(Server *s, const SrvAuth *auth, const char *route, SafeDir dir, const ModResult *r,
               const char *text, size_t len);

/* Check a request's input texts under the policy (modcheck.c): the
 * strongest action among them (ALLOW without moderation); each flag or
 * block is recorded; *blocked gets the blocking categories. *context gets the last user text (owned; NULL when
 * none) for the output checks. */
PolicyAction srv_check_input(Server *s, const SrvAuth *auth, const char *route, OaiKind kind,
                             const OaiRequest *r, unsigned *blocked, char **context);
/* The audit callback a job's output checks call (owned by the job). */
JobAudit srv_job_audit(Server *s, const SrvAuth *auth, const char *route);

/* Run a parsed chat or completion request through the scheduler, as
 * /v1 does (model, template, context, rate limits, continuous batching),
 * answering on 'c'. Takes ownership of *r (freed) and of 'hook' (may be
 * NULL; needs r->stream). q->auth must be set. */
enum MHD_Result srv_generate(Server *s, SrvReq *q, struct MHD_Connection *c, OaiKind kind,
                             OaiRequest *r, SrvHook *hook);
enum MHD_Result srv_route_tokenize(Server *s, SrvReq *q, struct MHD_Connection *c);
/* POST /v1/embeddings (embed.c). */
enum MHD_Result srv_route_embeddings(Server *s, SrvReq *q, struct MHD_Connection *c);
/* POST /v1/moderations (modcheck.c). */
enum MHD_Result srv_route_moderations(Server *s, SrvReq *q, struct MHD_Connection *c);
enum MHD_Result srv_route_detokenize(Server *s, SrvReq *q, struct MHD_Connection *c);

#endif
