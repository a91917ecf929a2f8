/* gate.h - the server's front door: it accepts every connection, reads each
 * request through the strict HTTP/1.1 parser (http1.h), answers framing
 * errors itself, and hands libmicrohttpd a canonical copy of each good
 * request over a socket pair, relaying the response back.
 *
 * Why a gate: Debian 12's libmicrohttpd (0.9.75) predates the RFC 9112
 * request parser of its 1.0 release. It serves a request carrying both
 * Content-Length and Transfer-Encoding and then the bytes after the chunked
 * body as a second request (a desync behind a proxy that frames by
 * Content-Length), keeps the first of two different Content-Lengths, waits
 * for a 4 GiB chunk, joins folded lines, and ends a path at a decoded %00.
 * The gate sees the raw bytes, so it can refuse all of that; libmicrohttpd
 * sees only requests with one framing (Content-Length), no Expect and no
 * Transfer-Encoding, and stays the HTTP engine for routing and responses.
 *
 * Per connection one thread (GATE_STACK_BYTES of stack), one request at a
 * time:
 *   read the head (within the header timeout, counted from the connection's
 *   start or the end of the previous response) -> h1_parse_head ->
 *   h1_check_target -> "100 Continue" when the client expects it -> read
 *   the body (within the body timeout; Content-Length or chunked, bounded
 *   by the body limit) -> write the canonical request to libmicrohttpd ->
 *   relay its response until it reports the request complete
 *   (gate_request_done, from its completion callback) -> the next request.
 * A refused request is answered with the OpenAI error envelope (400, 413,
 * 414, 417, 431, 501, 505), "Connection: close", after the responses to the
 * earlier requests, and the connection closes: no byte after a framing
 * error is ever read as a request. A client that goes away closes
 * libmicrohttpd's side, which cancels what it was running for it. A
 * client that stalls past a timeout is cut off without a response. */
#ifndef CGPT_SERVE_GATE_H
#define CGPT_SERVE_GATE_H

#include <microhttpd.h>
#include <stddef.h>

#include "core/err.h"
#include "serve/metrics.h"

#define GATE_STACK_BYTES (256 * 1024) /* per connection thread */
#define GATE_WRITE_TIMEOUT 60.0       /* seconds a client may take to accept response bytes */
/* The header the gate adds to every canonical request with the client's
 * address (one it receives from a client is dropped first). */
#define GATE_PEER_HEADER "X-Cgpt-Peer"

typedef struct {
    struct MHD_Daemon *mhd; /* started with MHD_USE_NO_LISTEN_SOCKET | MHD_USE_ITC */
    int listen_fd;          /* bound and listening; the gate owns it from now on */
    size_t max_body;        /* request body limit (413 past it) */
    int max_connections;    /* open client connections; more are closed at once */
    double header_timeout;  /* seconds */
    double body_timeout;    /* seconds */
    Metrics *metrics;       /* refusals and timeouts are counted here (borrowed) */
} GateConfig;

typedef struct Gate Gate;

/* Start the accept thread. On failure 'err' says why and nothing runs. */
Status gate_start(Gate **out, const GateConfig *cfg, Err *err);

/* libmicrohttpd finished the response to the request on its socket
 * 'mhd_fd' (call from its completion callback). Unknown fds are ignored. */
void gate_request_done(Gate *g, int mhd_fd);

/* Client connections open now. */
int gate_connections(Gate *g);

/* Stop accepting new connections; those open go on (accepts NULL). */
void gate_quiesce(Gate *g);

/* Stop accepting and close every client connection (what libmicrohttpd is
 * still sending is cut off); returns when every connection thread ended.
 * Accepts NULL. Call before stopping libmicrohttpd. */
void gate_stop(Gate *g);

#endif
