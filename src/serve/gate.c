/* gate.c - strict HTTP/1.1 framing in front of libmicrohttpd (gate.h). */
#include "serve/gate.h"

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sodium.h>

#include "core/perf.h"
#include "serve/http1.h"
#include "serve/oai.h"

#define GATE_READ_BYTES 65536 /* read / relay granularity */

typedef struct GateConn {
    struct GateConn *prev, *next;
    Gate *g;
    int cfd; /* the client */
    int up;  /* our end of the socket pair; libmicrohttpd has mhd_fd */
    int mhd_fd;
    int done_fd; /* eventfd: libmicrohttpd completed a response */
    struct sockaddr_storage peer;
    socklen_t peer_len;
    char peer_text[INET6_ADDRSTRLEN]; /* the client's address, for GATE_PEER_HEADER */
    char *buf; /* client bytes read and not yet consumed */
    size_t len, cap;
} GateConn;

struct Gate {
    GateConfig cfg;
    pthread_t acceptor;
    bool acceptor_started;
    atomic_bool quiesced; /* no more accepts */
    atomic_bool stopping; /* connections end */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    GateConn *conns;
    int n_conns;
};

/* ------------------------------------------------------------ registry */

static void conn_unlink(GateConn *k) {
    Gate *g = k->g;
    pthread_mutex_lock(&g->mu);
    if (k->prev)
        k->prev->next = k->next;
    else
        g->conns = k->next;
    if (k->next)
        k->next->prev = k->prev;
    g->n_conns--;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

void gate_request_done(Gate *g, int mhd_fd) {
    if (!g)
        return;
    pthread_mutex_lock(&g->mu);
    for (GateConn *k = g->conns; k; k = k->next)
        if (k->mhd_fd == mhd_fd) {
            uint64_t one = 1;
            if (write(k->done_fd, &one, sizeof one) < 0)
                break; /* the counter cannot overflow from here */
            break;
        }
    pthread_mutex_unlock(&g->mu);
}

int gate_connections(Gate *g) {
    pthread_mutex_lock(&g->mu);
    int n = g->n_conns;
    pthread_mutex_unlock(&g->mu);
    return n;
}

/* ------------------------------------------------------------ I/O */

/* Write all of p[0..n) to fd, waiting at most 'timeout' seconds without
 * progress. */
static bool write_all(int fd, const char *p, size_t n, double timeout) {
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
            return false;
        struct pollfd pf = {.fd = fd, .events = POLLOUT};
        if (poll(&pf, 1, (int)(timeout * 1000)) <= 0 || (pf.revents & (POLLERR | POLLHUP)))
            return false;
    }
    return true;
}

/* Move what libmicrohttpd wrote to the client; false when either side is
 * done for (libmicrohttpd closed its end: *eof). */
static bool relay_once(GateConn *k, bool *eof) {
    char tmp[GATE_READ_BYTES];
    ssize_t r = recv(k->up, tmp, sizeof tmp, MSG_DONTWAIT);
    if (r > 0)
        return write_all(k->cfd, tmp, (size_t)r, GATE_WRITE_TIMEOUT);
    if (r == 0) {
        *eof = true;
        return false;
    }
    return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
}

/* Everything already waiting on 'up', relayed. */
static bool relay_pending(GateConn *k, bool *eof) {
    for (;;) {
        struct pollfd pf = {.fd = k->up, .events = POLLIN};
        if (poll(&pf, 1, 0) <= 0)
            return true;
        if (!relay_once(k, eof))
            return false;
    }
}

static bool grow(GateConn *k, size_t need) {
    if (need <= k->cap)
        return true;
    size_t cap = k->cap ? k->cap : GATE_READ_BYTES;
    while (cap < need)
        cap *= 2;
    char *b = realloc(k->buf, cap);
    if (!b)
        return false;
    k->buf = b;
    k->cap = cap;
    return true;
}

typedef enum { RD_OK, RD_EOF, RD_TIMEOUT, RD_ERROR } ReadResult;

/* Read more client bytes into k->buf, waiting until 'deadline' (perf_now
 * seconds). Whatever libmicrohttpd sends meanwhile is relayed; its end
 * closing (after a response with Connection: close) ends the connection. */
static ReadResult read_more(GateConn *k, double deadline) {
    for (;;) {
        if (atomic_load(&k->g->stopping))
            return RD_ERROR;
        double left = deadline - perf_now();
        if (left <= 0)
            return RD_TIMEOUT;
        struct pollfd pf[2] = {{.fd = k->cfd, .events = POLLIN}, {.fd = k->up, .events = POLLIN}};
        int pr = poll(pf, 2, left > 0.2 ? 200 : (int)(left * 1000) + 1);
        if (pr < 0 && errno != EINTR)
            return RD_ERROR;
        if (pr <= 0)
            continue;
        bool eof = false;
        if ((pf[1].revents & (POLLIN | POLLHUP | POLLERR)) && !relay_once(k, &eof))
            return eof ? RD_EOF : RD_ERROR;
        if (!(pf[0].revents & (POLLIN | POLLHUP | POLLERR)))
            continue;
        if (!grow(k, k->len + GATE_READ_BYTES))
            return RD_ERROR;
        ssize_t r = recv(k->cfd, k->buf + k->len, GATE_READ_BYTES, MSG_DONTWAIT);
        if (r > 0) {
            k->len += (size_t)r;
            return RD_OK;
        }
        if (r == 0)
            return RD_EOF;
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            return RD_ERROR;
    }
}

static void consume(GateConn *k, size_t n) {
    memmove(k->buf, k->buf + n, k->len - n);
    k->len -= n;
}

/* ------------------------------------------------------------ responses */

static const char *status_text(int status) {
    switch (status) {
    case 400: return "Bad Request";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 417: return "Expectation Failed";
    case 431: return "Request Header Fields Too Large";
    case 501: return "Not Implemented";
    case 505: return "HTTP Version Not Supported";
    default: return "Error";
    }
}

static const char *status_code(int status) {
    switch (status) {
    case 413: return "request_too_large";
    case 414: return "uri_too_long";
    case 417: return "expectation_failed";
    case 431: return "request_header_fields_too_large";
    case 501: return "not_implemented";
    case 505: return "http_version_not_supported";
    default: return "bad_request";
    }
}

/* Answer a refused request: the OpenAI error envelope, then close. */
static void refuse(GateConn *k, const H1Error *he) {
    OaiError oe;
    oai_error_set(&oe, he->status, "invalid_request_error", status_code(he->status), NULL, "%s",
                  he->message);
    json_t *j = oai_error_json(&oe);
    char *body = oai_dump(j);
    json_decref(j);
    uint8_t rnd[8];
    char id[17], head[512];
    randombytes_buf(rnd, sizeof rnd);
    sodium_bin2hex(id, sizeof id, rnd, sizeof rnd);
    size_t blen = body ? strlen(body) : 0;
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\nx-request-id: req_%s\r\n\r\n",
                     he->status, status_text(he->status), blen, id);
    if (n > 0 && (size_t)n < sizeof head && write_all(k->cfd, head, (size_t)n, 5.0) && body)
        write_all(k->cfd, body, blen, 5.0);
    free(body);
    metrics_http(k->g->cfg.metrics, "gate", he->status);
    metrics_refused(k->g->cfg.metrics, "framing");
    /* Let the client read the answer: stop sending, drain what it still
     * sends for a moment, then close (a close with unread input would
     * reset the connection and could destroy the answer in flight). */
    shutdown(k->cfd, SHUT_WR);
    char sink[4096];
    double until = perf_now() + 1.0;
    struct pollfd pf = {.fd = k->cfd, .events = POLLIN};
    while (perf_now() < until && poll(&pf, 1, 100) > 0 &&
           recv(k->cfd, sink, sizeof sink, MSG_DONTWAIT) > 0)
        ;
}

/* ------------------------------------------------------------ one request */

typedef enum { REQ_NEXT, REQ_CLOSE } ReqResult;

/* Is this field one the canonical request leaves out? */
static bool dropped_field(const H1Field *f) {
    static const char *const drop[] = {"Content-Length", "Transfer-Encoding", "Expect",
                                       GATE_PEER_HEADER};
    for (size_t i = 0; i < sizeof drop / sizeof drop[0]; i++)
        if (f->name_len == strlen(drop[i]) && !strncasecmp(f->name, drop[i], f->name_len))
            return true;
    return false;
}

/* The canonical head for libmicrohttpd: request line, the client's fields
 * but the framing ones, and Content-Length of the decoded body. */
static char *canonical_head(const H1Request *rq, size_t path_off, size_t body_len, const char *peer,
                            size_t *len) {
    size_t cap = rq->head_len + 256;
    char *h = malloc(cap);
    if (!h)
        return NULL;
    int n = snprintf(h, cap, "%.*s %.*s HTTP/1.%d\r\n", (int)rq->method_len, rq->method,
                     (int)(rq->target_len - path_off), rq->target + path_off, rq->minor);
    size_t at = (size_t)n;
    for (int i = 0; i < rq->n_fields; i++) {
        const H1Field *f = &rq->fields[i];
        if (dropped_field(f))
            continue;
        memcpy(h + at, f->name, f->name_len);
        at += f->name_len;
        memcpy(h + at, ": ", 2);
        at += 2;
        memcpy(h + at, f->value, f->value_len);
        at += f->value_len;
        memcpy(h + at, "\r\n", 2);
        at += 2;
    }
    n = snprintf(h + at, cap - at, GATE_PEER_HEADER ": %s\r\nContent-Length: %zu\r\n\r\n", peer,
                 body_len);
    *len = at + (size_t)n;
    return h;
}

/* Wait for libmicrohttpd to complete the response, relaying it, while
 * watching the client (gone: close; it may pipeline the next request,
 * which waits in k->buf). */
static ReqResult await_response(GateConn *k) {
    bool eof = false;
    for (;;) {
        if (atomic_load(&k->g->stopping))
            return REQ_CLOSE;
        struct pollfd pf[3] = {{.fd = k->up, .events = POLLIN},
                               {.fd = k->done_fd, .events = POLLIN},
                               {.fd = k->cfd, .events = POLLRDHUP}};
        bool room = k->len < H1_MAX_HEAD + k->g->cfg.max_body;
        if (room)
            pf[2].events |= POLLIN;
        int pr = poll(pf, 3, 200);
        if (pr < 0 && errno != EINTR)
            return REQ_CLOSE;
        if (pr <= 0)
            continue;
        if ((pf[0].revents & (POLLIN | POLLHUP | POLLERR)) && !relay_once(k, &eof))
            return REQ_CLOSE; /* libmicrohttpd closed (Connection: close) or the client left */
        if (pf[2].revents & (POLLRDHUP | POLLHUP | POLLERR))
            return REQ_CLOSE;
        if ((pf[2].revents & POLLIN) && read_more(k, perf_now() + 1) != RD_OK)
            return REQ_CLOSE;
        if (pf[1].revents & POLLIN) {
            uint64_t v;
            if (read(k->done_fd, &v, sizeof v) < 0 && errno != EAGAIN)
                return REQ_CLOSE;
            /* the response is written: relay what is still in the pair */
            if (!relay_pending(k, &eof))
                return REQ_CLOSE;
            return REQ_NEXT;
        }
    }
}

static ReqResult one_request(GateConn *k, double head_since) {
    const GateConfig *cfg = &k->g->cfg;
    H1Request *rq = malloc(sizeof *rq);
    H1Error he = {0};
    char *body = NULL, *head = NULL;
    ReqResult res = REQ_CLOSE;
    if (!rq)
        return REQ_CLOSE;
    /* the head */
    int st;
    while ((st = h1_parse_head(k->buf, k->len, cfg->max_body, rq, &he)) == H1_MORE) {
        ReadResult rr = read_more(k, head_since + cfg->header_timeout);
        if (rr == RD_TIMEOUT && k->len)
            metrics_refused(cfg->metrics, "timeout");
        if (rr != RD_OK)
            goto done;
    }
    size_t path_off = 0;
    if (st == H1_BAD || h1_check_target(rq->target, rq->target_len, &path_off, &he) == H1_BAD) {
        refuse(k, &he);
        goto done;
    }
    /* the body */
    size_t body_len = 0, head_len = rq->head_len;
    double body_deadline = perf_now() + cfg->body_timeout;
    if (rq->body != H1_BODY_NONE && rq->expect_continue && k->len == head_len &&
        !write_all(k->cfd, "HTTP/1.1 100 Continue\r\n\r\n", 25, GATE_WRITE_TIMEOUT))
        goto done;
    if (rq->body == H1_BODY_LENGTH) {
        while (k->len - head_len < rq->content_length) {
            ReadResult rr = read_more(k, body_deadline);
            if (rr == RD_TIMEOUT)
                metrics_refused(cfg->metrics, "timeout");
            if (rr != RD_OK)
                goto done;
        }
        body_len = (size_t)rq->content_length;
    } else if (rq->body == H1_BODY_CHUNKED) {
        H1Chunked ch = {0};
        if (!(body = malloc(cfg->max_body ? cfg->max_body : 1)))
            goto done;
        size_t at = head_len, used = 0;
        for (;;) {
            st = h1_chunked_feed(&ch, k->buf + at, k->len - at, &used, cfg->max_body, body,
                                 cfg->max_body, &body_len, &he);
            at += used;
            if (st == H1_DONE)
                break;
            if (st == H1_BAD) {
                refuse(k, &he);
                goto done;
            }
            /* keep the buffer small: drop the decoded bytes, keep the head */
            memmove(k->buf + head_len, k->buf + at, k->len - at);
            k->len -= at - head_len;
            at = head_len;
            ReadResult rr = read_more(k, body_deadline);
            if (rr == RD_TIMEOUT)
                metrics_refused(cfg->metrics, "timeout");
            if (rr != RD_OK)
                goto done;
        }
        head_len = at; /* the chunked body ends here: what follows is the next request */
    }
    /* forward the canonical request; reading the body may have moved
     * k->buf, so the views into the head are taken again (same bytes,
     * same result) */
    size_t hlen;
    if (h1_parse_head(k->buf, k->len, cfg->max_body, rq, &he) != H1_DONE ||
        h1_check_target(rq->target, rq->target_len, &path_off, &he) == H1_BAD)
        goto done; /* cannot happen: the head did not change */
    if (!(head = canonical_head(rq, path_off, body_len, k->peer_text, &hlen)))
        goto done;
    const char *bp = rq->body == H1_BODY_CHUNKED ? body : k->buf + rq->head_len;
    if (!write_all(k->up, head, hlen, GATE_WRITE_TIMEOUT) ||
        !write_all(k->up, bp, body_len, GATE_WRITE_TIMEOUT))
        goto done;
    consume(k, rq->body == H1_BODY_LENGTH ? rq->head_len + body_len : head_len);
    res = await_response(k);
done:
    free(head);
    free(body);
    free(rq);
    return res;
}

/* ------------------------------------------------------------ threads */

static void *conn_main(void *arg) {
    GateConn *k = arg;
    for (double since = perf_now(); one_request(k, since) == REQ_NEXT; since = perf_now())
        ;
    conn_unlink(k);
    close(k->up); /* libmicrohttpd sees its peer gone and ends what runs for it */
    close(k->cfd);
    close(k->done_fd);
    free(k->buf);
    free(k);
    return NULL;
}

/* Set up a connection and hand libmicrohttpd its end of the pair. */
static void admit(Gate *g, int cfd, const struct sockaddr_storage *peer, socklen_t plen) {
    int sp[2] = {-1, -1};
    GateConn *k = calloc(1, sizeof *k);
    if (!k || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) != 0)
        goto fail;
    k->g = g;
    k->done_fd = -1;
    k->cfd = cfd;
    k->up = sp[0];
    k->mhd_fd = sp[1];
    k->peer = *peer;
    k->peer_len = plen;
    const void *addr = peer->ss_family == AF_INET6
                           ? (const void *)&((const struct sockaddr_in6 *)peer)->sin6_addr
                           : (const void *)&((const struct sockaddr_in *)peer)->sin_addr;
    if (!inet_ntop(peer->ss_family, addr, k->peer_text, sizeof k->peer_text))
        snprintf(k->peer_text, sizeof k->peer_text, "unknown");
    if ((k->done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0)
        goto fail;
    pthread_mutex_lock(&g->mu);
    k->next = g->conns;
    if (g->conns)
        g->conns->prev = k;
    g->conns = k;
    g->n_conns++;
    pthread_mutex_unlock(&g->mu);
    /* libmicrohttpd owns sp[1] from here, also when it fails. It is told
     * the pair's own (AF_UNIX) address, so it knows it is not TCP and
     * leaves Nagle and corking alone; the client's address stays here. */
    struct sockaddr_storage ua;
    socklen_t ualen = sizeof ua;
    if (getsockname(sp[1], (struct sockaddr *)&ua, &ualen) != 0) {
        ua.ss_family = AF_UNIX;
        ualen = sizeof ua.ss_family;
    }
    if (MHD_add_connection(g->cfg.mhd, sp[1], (const struct sockaddr *)&ua, ualen) != MHD_YES) {
        conn_unlink(k);
        sp[1] = -1;
        goto fail;
    }
    pthread_attr_t at;
    pthread_t t;
    pthread_attr_init(&at);
    pthread_attr_setstacksize(&at, GATE_STACK_BYTES);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(&t, &at, conn_main, k);
    pthread_attr_destroy(&at);
    if (rc == 0)
        return;
    conn_unlink(k);
    sp[1] = -1;
fail:
    if (k && k->done_fd >= 0)
        close(k->done_fd);
    if (sp[0] >= 0)
        close(sp[0]);
    if (sp[1] >= 0)
        close(sp[1]);
    close(cfd);
    free(k);
    metrics_refused(g->cfg.metrics, "connections");
}

static void *acceptor(void *arg) {
    Gate *g = arg;
    while (!atomic_load(&g->quiesced)) {
        struct pollfd pf = {.fd = g->cfg.listen_fd, .events = POLLIN};
        if (poll(&pf, 1, 200) <= 0)
            continue;
        struct sockaddr_storage peer;
        socklen_t plen = sizeof peer;
        int cfd = accept4(g->cfg.listen_fd, (struct sockaddr *)&peer, &plen, SOCK_CLOEXEC);
        if (cfd < 0)
            continue;
        if (gate_connections(g) >= g->cfg.max_connections) {
            close(cfd);
            metrics_refused(g->cfg.metrics, "connections");
            continue;
        }
        admit(g, cfd, &peer, plen);
    }
    return NULL;
}

Status gate_start(Gate **out, const GateConfig *cfg, Err *err) {
    *out = NULL;
    Gate *g = calloc(1, sizeof *g);
    if (!g)
        return err_set(err, STATUS_NOMEM, "out of memory");
    g->cfg = *cfg;
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    if (pthread_create(&g->acceptor, NULL, acceptor, g) != 0) {
        pthread_mutex_destroy(&g->mu);
        pthread_cond_destroy(&g->cv);
        free(g);
        return err_set(err, STATUS_IO, "cannot start the accept thread");
    }
    g->acceptor_started = true;
    *out = g;
    return STATUS_OK;
}

void gate_quiesce(Gate *g) {
    if (!g || atomic_exchange(&g->quiesced, true))
        return;
    if (g->acceptor_started)
        pthread_join(g->acceptor, NULL);
    close(g->cfg.listen_fd);
}

void gate_stop(Gate *g) {
    if (!g)
        return;
    gate_quiesce(g);
    atomic_store(&g->stopping, true);
    pthread_mutex_lock(&g->mu);
    for (GateConn *k = g->conns; k; k = k->next)
        shutdown(k->cfd, SHUT_RDWR);
    while (g->n_conns > 0)
        pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->cv);
    free(g);
}
