/* server.h - `cgpt serve`: the OpenAI-compatible HTTP API on libmicrohttpd.
 *
 * The gate (gate.h) accepts connections and checks every request's HTTP
 * framing (http1.h), then hands libmicrohttpd a canonical copy. One
 * libmicrohttpd thread per connection (bounded by max_connections); a
 * request's thread parses and validates the body (oai.h), authenticates (store.h keys,
 * constant-time), applies the key's rate limits (ratelimit.h), renders and
 * tokenizes the prompt, submits it to the model's scheduler (sched.h) and
 * either waits for the whole answer or streams it as SSE (job.h). While it
 * waits it watches its socket: a client that goes away has its request
 * cancelled at once (KV blocks freed at the next engine step).
 *
 * Limits and timeouts (named, in ServerConfig): body bytes (413 before the
 * body is read, from Content-Length or a chunk size), header bytes (the
 * gate's H1_MAX_HEAD), JSON limits (OaiLimits), connections, header timeout
 * (from connection start or the end of the previous response until the
 * headers are complete) and body timeout (until the body is complete): the
 * gate cuts slower clients off; others are unaffected. More than one
 * credential in a request is 400, never "the first one wins".
 *
 * Keys: when the data directory's database has active keys, every API route
 * needs one ("Authorization: Bearer KEY" or "x-api-key: KEY"); /health and
 * /metrics do not. The snapshot of keys is reloaded within a second of a
 * change by `cgpt key`. A server on a non-loopback address requires keys:
 * server_start() refuses to start without any, and if all are revoked later
 * every request gets 401.
 *
 * Models: every route that needs one takes a reference from the pool
 * (pool.h) for as long as it uses it, which loads a model on its first
 * request (the request waits; /health stays up) and keeps a model in use
 * from being unloaded.
 *
 * Lifecycle: server_start() binds and answers /health with 503 "loading"
 * until server_ready() (after the pinned models are loaded); server_stop()
 * refuses new connections, cancels what runs and joins everything. */
#ifndef CGPT_SERVE_SERVER_H
#define CGPT_SERVE_SERVER_H

#include <stdbool.h>
#include <stddef.h>

#include "chat/chat.h"
#include "core/err.h"
#include "engine/sched.h"
#include "model/model.h"
#include "safety/moderate.h"
#include "serve/oai.h"
#include "serve/pool.h"
#include "serve/ratelimit.h"
#include "serve/web.h"
#include "tokenizer/tokenizer.h"

#define SERVER_MAX_MODELS 16
#define SERVER_MAX_CORS 32
#define SERVER_HEADER_BYTES (64 * 1024) /* default connection memory for headers */
#define SERVER_LISTEN_BACKLOG 1024      /* pending connections the kernel queues */
#define SERVER_SESSION_TTL (30 * 24 * 3600) /* default seconds a page login lasts */

typedef struct {
    const char *host; /* bind address (IPv4 or IPv6 literal, or "localhost") */
    int port;         /* 0: any free port (server_port() tells) */
    const char *data_dir;
    const char *const *cors_origins; /* exact origins allowed ("*" allows all) */
    int n_cors;
    RlLimits default_limits; /* for keys without their own, and anonymous use */
    OaiLimits limits;
    int max_connections;   /* concurrent connections */
    size_t header_bytes;   /* connection memory for the request line + headers */
    double header_timeout; /* seconds */
    double body_timeout;   /* seconds */
    WebFiles web;          /* the page's files (n_assets 0: no page) */
    bool open_registration; /* anyone may create an account on the page */
    bool cookie_secure;     /* mark the session cookie Secure (served behind TLS) */
    long long session_ttl;  /* seconds a page login lasts */
    Moderator *mod;         /* borrowed: /v1/moderations, and the checks when 'moderate' */
    bool moderate;          /* check chats and completions (off: --no-moderation) */
    Pool *pool;             /* borrowed: the models served (pool.h), outliving the server */
} ServerConfig;

typedef struct Server Server;

Status server_start(Server **out, const ServerConfig *cfg, Err *err);
int server_port(const Server *s);
void server_ready(Server *s);
/* Stops the HTTP side (in-flight requests end: their schedulers must be
 * stopped by the caller first or right after) and frees. */
void server_stop(Server *s);

/* The defaults: ports, limits, timeouts (header 10 s, body 30 s, 1024
 * connections, OAI_MAX_* limits, unlimited rates). */
ServerConfig server_default_config(void);

/* True for 127.0.0.0/8, ::1 and "localhost". */
bool server_host_is_loopback(const char *host);

#endif
