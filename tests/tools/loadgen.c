/* loadgen.c - test tool: a load generator for `cgpt serve` (make bench-serve).
 *
 *   loadgen --port N [--host 127.0.0.1] [--model ID] [-c CLIENTS]
 *           [-d SECONDS | -r REQUESTS] [--warmup SECONDS] [-t MAX_TOKENS]
 *           [--temperature F] [--ban TOKEN]... [--ignore-eos] [--key KEY]
 *           [--timeout SECONDS] [--json] [--header]
 *
 * C client threads each loop: POST /v1/chat/completions with stream=true,
 * a short user prompt distinct per client and request, max_tokens T,
 * temperature F, stream_options.include_usage, and logit_bias -100 for every
 * --ban token (a standard OpenAI way to keep answers running to max_tokens;
 * --ignore-eos adds llama.cpp's "ignore_eos": true extension as well). Each
 * answer's SSE events are parsed as they arrive (chunked transfer encoding or
 * not): every chunk with non-empty delta content is one token arrival.
 *
 * Timing: requests during the first --warmup seconds are not measured.
 * With -d (default 20 s): the measurement window is the D seconds after the
 * warm-up; tokens are counted by arrival time inside the window, so long
 * answers that straddle it count only their in-window part; TTFT is taken
 * from every request but each client's first (all clients start at once:
 * that burst is not steady state) whose first token arrives inside the
 * window, inter-token latency (ITL) from gaps ending inside it; requests
 * started inside the window are counted ok or failed; at the end of the
 * window requests still running are abandoned (closed, neither ok nor
 * failed). Choose -d well above one answer's duration at the concurrency
 * measured, or TTFT has few samples. With -r: each client makes R
 * measured requests after the warm-up; every token counts and the window
 * ends when the last client is done.
 *
 * Failures are counted by HTTP status, plus "conn" (connect/send/read
 * errors), "timeout" (no byte for --timeout s), "stream" (an SSE error
 * event) and "truncated" (the stream ended without [DONE]). A 503 or 429 is
 * followed by a pause of Retry-After seconds (at most 1).
 *
 * The server's own count (cgpt_generated_tokens_total in /metrics, read at
 * both ends of the window) is reported too, when it is there.
 *
 * Output: one table row (clients, ok, failed by status, aggregate tokens/s,
 * TTFT p50/p99 ms, ITL p50/p99 ms); --header prints the column names first;
 * --json prints one JSON object instead. Exit 0 when it ran (even with
 * failed requests: the caller judges them), 2 for a bad argument or when the
 * server cannot be reached at all. */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define LG_MAX_CLIENTS 4096
#define LG_MAX_BAN 64
#define LG_MAX_STATUS 600
#define LG_HEAD_MAX (64 << 10) /* response head */
#define LG_BODY_MAX (16 << 20) /* one answer's body */
#define LG_PATH "/v1/chat/completions"

/* ------------------------------------------------------------ options */

typedef struct {
    const char *host;
    int port;
    char model[256];
    int clients;
    double duration; /* -d: seconds of measurement (0 with -r) */
    int requests;    /* -r: measured requests per client (0 with -d) */
    double warmup;
    int max_tokens;
    double temperature;
    int ban[LG_MAX_BAN];
    int n_ban;
    bool ignore_eos;
    const char *key;
    double timeout;
    bool json;
    bool header;
} Opts;

static Opts g_opt;
static double g_t0, g_t_measure, g_t_stop; /* monotonic seconds */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void die(const char *fmt, const char *a) {
    fprintf(stderr, "loadgen: ");
    fprintf(stderr, fmt, a);
    fputc('\n', stderr);
    exit(2);
}

/* ------------------------------------------------------------ growable arrays */

typedef struct {
    double *v;
    size_t n, cap;
} Vec;

static void vec_push(Vec *a, double x) {
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 256;
        double *v = realloc(a->v, cap * sizeof *v);
        if (!v)
            return; /* drop the sample rather than the run */
        a->v = v;
        a->cap = cap;
    }
    a->v[a->n++] = x;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile of a sorted vector; NAN when empty. */
static double pct(const Vec *a, double p) {
    if (a->n == 0)
        return NAN;
    size_t k = (size_t)ceil(p * (double)a->n);
    if (k < 1)
        k = 1;
    if (k > a->n)
        k = a->n;
    return a->v[k - 1];
}

typedef struct {
    char *p;
    size_t n, cap;
} Buf;

static bool buf_add(Buf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p)
            return false;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
    return true;
}

static void buf_drop(Buf *b, size_t n) {
    memmove(b->p, b->p + n, b->n - n);
    b->n -= n;
    if (b->p)
        b->p[b->n] = '\0';
}

/* ------------------------------------------------------------ per-client stats */

typedef struct {
    int id;
    pthread_t th;
    uint64_t ok;
    uint64_t fail_status[LG_MAX_STATUS];
    uint64_t fail_conn, fail_timeout, fail_stream, fail_truncated;
    uint64_t abandoned;
    uint64_t tokens_window; /* token arrivals inside the window */
    uint64_t chunk_tokens;  /* completed measured requests: content chunks */
    uint64_t usage_tokens;  /* ... and their usage.completion_tokens */
    Vec ttft, itl;
    double t_done; /* -r: when this client finished */
} Client;

/* ------------------------------------------------------------ HTTP */

static int lg_connect(void) {
    char port[16];
    snprintf(port, sizeof port, "%d", g_opt.port);
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(g_opt.host, port, &hints, &res) != 0 || !res)
        return -1;
    int fd = -1;
    for (struct addrinfo *a = res; a; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
        if (fd < 0)
            continue;
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0)
            break;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd >= 0) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    return fd;
}

static bool send_all(int fd, const char *p, size_t n) {
    while (n) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return false;
        p += k;
        n -= (size_t)k;
    }
    return true;
}

/* Read more bytes into 'b', waiting until 'deadline' (absolute, monotonic)
 * and at most g_opt.timeout of silence. Returns bytes read, 0 on EOF, -1 on
 * error, -2 on silence timeout, -3 when the deadline passed. */
static ssize_t read_some(int fd, Buf *b, double deadline) {
    for (;;) {
        double t = now_s();
        if (deadline > 0 && t >= deadline)
            return -3;
        double wait = g_opt.timeout;
        bool by_deadline = false;
        if (deadline > 0 && deadline - t < wait) {
            wait = deadline - t;
            by_deadline = true;
        }
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int r = poll(&pfd, 1, (int)ceil(wait * 1000.0));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0)
            return by_deadline ? -3 : -2;
        char tmp[16384];
        ssize_t k = recv(fd, tmp, sizeof tmp, 0);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return -1;
        if (k > 0 && !buf_add(b, tmp, (size_t)k))
            return -1;
        return k;
    }
}

/* The response head: status and framing. */
typedef struct {
    int status;
    bool chunked;
    long long content_length; /* -1: none */
    double retry_after;       /* seconds; 0 when absent */
} Head;

static bool header_is(const char *line, size_t len, const char *name, const char **val) {
    size_t n = strlen(name);
    if (len <= n || strncasecmp(line, name, n) != 0 || line[n] != ':')
        return false;
    const char *v = line + n + 1;
    while (*v == ' ' || *v == '\t')
        v++;
    *val = v;
    return true;
}

/* Parse the head in b->p[0..end) (end = index of the blank line). */
static bool parse_head(const char *p, size_t end, Head *h) {
    memset(h, 0, sizeof *h);
    h->content_length = -1;
    if (end < 12 || strncmp(p, "HTTP/1.", 7) != 0)
        return false;
    h->status = atoi(p + 9);
    const char *line = memchr(p, '\n', end);
    while (line && (size_t)(line - p) < end) {
        line++;
        const char *eol = memchr(line, '\n', end - (size_t)(line - p));
        size_t len = eol ? (size_t)(eol - line) : end - (size_t)(line - p);
        const char *v;
        if (header_is(line, len, "transfer-encoding", &v))
            h->chunked = strncasecmp(v, "chunked", 7) == 0;
        else if (header_is(line, len, "content-length", &v))
            h->content_length = atoll(v);
        else if (header_is(line, len, "retry-after", &v))
            h->retry_after = atof(v);
        line = eol;
    }
    return h->status > 0;
}

/* Chunked transfer decoding, incremental: moves whole decoded bytes from
 * 'raw' to 'out'. Returns 1 at the last chunk, 0 for "need more", -1 on a
 * framing error. */
typedef struct {
    long long left; /* bytes left in the current chunk; -1: expecting a size line */
    bool need_crlf;
} Chunker;

static int dechunk(Chunker *c, Buf *raw, Buf *out) {
    for (;;) {
        if (c->need_crlf) {
            if (raw->n < 2)
                return 0;
            if (raw->p[0] != '\r' || raw->p[1] != '\n')
                return -1;
            buf_drop(raw, 2);
            c->need_crlf = false;
        }
        if (c->left < 0) {
            char *eol = memchr(raw->p, '\n', raw->n);
            if (!eol)
                return raw->n > 64 ? -1 : 0;
            char *end;
            long long size = strtoll(raw->p, &end, 16);
            if (end == raw->p || size < 0)
                return -1;
            buf_drop(raw, (size_t)(eol - raw->p) + 1);
            if (size == 0)
                return 1;
            c->left = size;
        }
        if (raw->n == 0)
            return 0;
        size_t k = raw->n < (size_t)c->left ? raw->n : (size_t)c->left;
        if (!buf_add(out, raw->p, k))
            return -1;
        buf_drop(raw, k);
        c->left -= (long long)k;
        if (c->left == 0) {
            c->left = -1;
            c->need_crlf = true;
        }
    }
}

/* ------------------------------------------------------------ one request */

typedef enum {
    RQ_OK,
    RQ_STATUS,
    RQ_CONN,
    RQ_TIMEOUT,
    RQ_STREAM,
    RQ_TRUNCATED,
    RQ_ABANDONED
} RqResult;

typedef struct {
    double t_send;
    double t_first; /* < 0: no token yet */
    double t_last;
    uint64_t chunks;
    uint64_t usage_tokens;
    bool measured; /* started inside the window (-d) / a measured request (-r) */
    int seq;       /* the client's request number, from 0 */
} Rq;

static bool in_window(double t) {
    return t >= g_t_measure && (g_opt.requests > 0 || t <= g_t_stop);
}

/* One SSE event payload (the text after "data:"). Returns 1 at [DONE],
 * -1 for an error event, 0 otherwise. */
static int on_event(Client *cl, Rq *rq, const char *data, size_t len) {
    while (len && (*data == ' '))
        data++, len--;
    if (len >= 6 && !strncmp(data, "[DONE]", 6))
        return 1;
    json_error_t jerr;
    /* a token may decode to U+0000: valid JSON ("\u0000"), jansson needs the flag */
    json_t *j = json_loadb(data, len, JSON_ALLOW_NUL, &jerr);
    if (!j || json_object_get(j, "error")) {
        /* the first bad event of the run, for the log */
        static atomic_int told;
        if (!atomic_exchange(&told, 1))
            fprintf(stderr, "loadgen: client %d: %s event: %.*s\n", cl->id,
                    j ? "error" : "unparsable", (int)(len < 600 ? len : 600), data);
        json_decref(j);
        return -1;
    }
    int rc = 0;
    {
        json_t *choices = json_object_get(j, "choices");
        size_t i;
        json_t *ch;
        json_array_foreach(choices, i, ch) {
            json_t *content = json_object_get(json_object_get(ch, "delta"), "content");
            if (!json_is_string(content) || !json_string_length(content))
                continue;
            double t = now_s();
            rq->chunks++;
            if (in_window(t))
                cl->tokens_window++;
            if (rq->t_first < 0) {
                rq->t_first = t;
                if (g_opt.requests > 0 ? rq->measured : (rq->seq > 0 && in_window(t)))
                    vec_push(&cl->ttft, t - rq->t_send);
            } else if (in_window(t) && (g_opt.requests == 0 || rq->measured)) {
                vec_push(&cl->itl, t - rq->t_last);
            }
            rq->t_last = t;
        }
        json_t *usage = json_object_get(j, "usage");
        if (json_is_object(usage))
            rq->usage_tokens =
                (uint64_t)json_integer_value(json_object_get(usage, "completion_tokens"));
    }
    json_decref(j);
    return rc;
}

/* Split complete events ("\n\n"-terminated) off 'sse'. Returns 1 at [DONE],
 * -1 on an error event, 0 otherwise. */
static int drain_events(Client *cl, Rq *rq, Buf *sse) {
    for (;;) {
        char *end = sse->n ? strstr(sse->p, "\n\n") : NULL;
        if (!end)
            return 0;
        size_t ev_len = (size_t)(end - sse->p);
        int rc = 0;
        const char *line = sse->p;
        while (line < sse->p + ev_len) {
            const char *eol = memchr(line, '\n', (size_t)(sse->p + ev_len - line));
            size_t n = eol ? (size_t)(eol - line) : (size_t)(sse->p + ev_len - line);
            if (n && line[n - 1] == '\r')
                n--;
            if (n >= 5 && !strncmp(line, "data:", 5)) {
                int r = on_event(cl, rq, line + 5, n - 5);
                if (r != 0)
                    rc = r;
            }
            line = eol ? eol + 1 : sse->p + ev_len;
        }
        buf_drop(sse, ev_len + 2);
        if (rc != 0)
            return rc;
    }
}

static char *build_body(int client, int seq) {
    static const char *const WHO[] = {"sailor", "baker",   "robot", "gardener",
                                      "pilot",  "painter", "miner", "poet"};
    static const char *const WHAT[] = {"lanterns", "keys",    "maps",  "shells",
                                       "clocks",   "letters", "stones"};
    char prompt[256];
    snprintf(prompt, sizeof prompt,
             "Client %d, request %d: tell a long story about a %s who finds %d %s.", client, seq,
             WHO[(client + seq) % 8], 3 + (client * 7 + seq) % 90, WHAT[(client * 3 + seq) % 7]);
    json_t *msg = json_pack("{s:s, s:s}", "role", "user", "content", prompt);
    json_t *body =
        json_pack("{s:s, s:[o], s:b, s:i, s:f, s:{s:b}}", "model", g_opt.model, "messages", msg,
                  "stream", 1, "max_tokens", g_opt.max_tokens, "temperature", g_opt.temperature,
                  "stream_options", "include_usage", 1);
    if (g_opt.n_ban) {
        json_t *bias = json_object();
        for (int i = 0; i < g_opt.n_ban; i++) {
            char k[16];
            snprintf(k, sizeof k, "%d", g_opt.ban[i]);
            json_object_set_new(bias, k, json_integer(-100));
        }
        json_object_set_new(body, "logit_bias", bias);
    }
    if (g_opt.ignore_eos)
        json_object_set_new(body, "ignore_eos", json_true());
    char *s = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    return s;
}

/* One request, start to end; fills *rq and returns how it ended. *status is
 * the HTTP status (0 when none) and *retry the Retry-After seconds. */
static RqResult do_request(Client *cl, int seq, Rq *rq, int *status, double *retry) {
    *status = 0;
    *retry = 0;
    char *body = build_body(cl->id, seq);
    if (!body)
        return RQ_CONN;
    char head[1024];
    char auth[600] = "";
    if (g_opt.key)
        snprintf(auth, sizeof auth, "Authorization: Bearer %s\r\n", g_opt.key);
    int hn =
        snprintf(head, sizeof head,
                 "POST " LG_PATH " HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
                 "Accept: text/event-stream\r\nConnection: close\r\n%sContent-Length: %zu\r\n\r\n",
                 g_opt.host, g_opt.port, auth, strlen(body));
    int fd = lg_connect();
    rq->t_send = now_s();
    rq->t_first = -1;
    rq->t_last = rq->t_send;
    if (fd < 0 || hn <= 0 || (size_t)hn >= sizeof head || !send_all(fd, head, (size_t)hn) ||
        !send_all(fd, body, strlen(body))) {
        free(body);
        if (fd >= 0)
            close(fd);
        return RQ_CONN;
    }
    free(body);

    double deadline = g_opt.requests > 0 ? 0 : g_t_stop; /* -d: abandon at the end of the window */
    Buf raw = {0}, sse = {0};
    Chunker ck = {.left = -1};
    Head h = {0};
    bool have_head = false;
    RqResult res = RQ_TRUNCATED;
    for (;;) {
        ssize_t k = read_some(fd, &raw, deadline);
        if (k == -3) {
            res = RQ_ABANDONED;
            break;
        }
        if (k == -2) {
            res = RQ_TIMEOUT;
            break;
        }
        if (k < 0) {
            res = have_head ? RQ_TRUNCATED : RQ_CONN;
            break;
        }
        if (!have_head) {
            char *e = raw.n ? strstr(raw.p, "\r\n\r\n") : NULL;
            if (!e) {
                if (k == 0 || raw.n > LG_HEAD_MAX) {
                    res = RQ_CONN;
                    break;
                }
                continue;
            }
            if (!parse_head(raw.p, (size_t)(e - raw.p), &h)) {
                res = RQ_CONN;
                break;
            }
            have_head = true;
            *status = h.status;
            *retry = h.retry_after;
            buf_drop(&raw, (size_t)(e - raw.p) + 4);
            if (h.status != 200) {
                res = RQ_STATUS;
                break; /* the body (an error envelope) is not needed */
            }
        }
        if (h.chunked) {
            int r = dechunk(&ck, &raw, &sse);
            if (r < 0) {
                res = RQ_TRUNCATED;
                break;
            }
        } else {
            buf_add(&sse, raw.p ? raw.p : "", raw.n);
            raw.n = 0;
        }
        int ev = drain_events(cl, rq, &sse);
        if (ev == 1) {
            res = RQ_OK;
            break;
        }
        if (ev < 0) {
            res = RQ_STREAM;
            break;
        }
        if (k == 0 || sse.n > LG_BODY_MAX) {
            res = RQ_TRUNCATED;
            break;
        }
    }
    close(fd);
    free(raw.p);
    free(sse.p);
    return res;
}

static void *client_main(void *arg) {
    Client *cl = arg;
    int seq = 0, measured_done = 0;
    for (;;) {
        double t = now_s();
        if (g_opt.requests == 0 && t >= g_t_stop)
            break;
        if (g_opt.requests > 0 && measured_done >= g_opt.requests)
            break;
        Rq rq = {0};
        rq.measured = t >= g_t_measure;
        rq.seq = seq;
        int status;
        double retry;
        RqResult r = do_request(cl, seq++, &rq, &status, &retry);
        if (rq.measured && g_opt.requests > 0)
            measured_done++;
        if (!rq.measured || (g_opt.requests == 0 && r == RQ_ABANDONED)) {
            if (r == RQ_ABANDONED)
                cl->abandoned++;
        } else {
            switch (r) {
            case RQ_OK:
                cl->ok++;
                cl->chunk_tokens += rq.chunks;
                cl->usage_tokens += rq.usage_tokens;
                break;
            case RQ_STATUS:
                cl->fail_status[status > 0 && status < LG_MAX_STATUS ? status : 0]++;
                break;
            case RQ_CONN:
                cl->fail_conn++;
                break;
            case RQ_TIMEOUT:
                cl->fail_timeout++;
                break;
            case RQ_STREAM:
                cl->fail_stream++;
                break;
            case RQ_TRUNCATED:
                cl->fail_truncated++;
                break;
            case RQ_ABANDONED:
                cl->abandoned++;
                break;
            }
        }
        if (r == RQ_STATUS && (status == 503 || status == 429)) {
            double pause = retry > 0 ? (retry < 1.0 ? retry : 1.0) : 0.1;
            struct timespec ts = {(time_t)pause, (long)((pause - floor(pause)) * 1e9)};
            nanosleep(&ts, NULL);
        } else if (r == RQ_CONN) {
            struct timespec ts = {0, 50 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    cl->t_done = now_s();
    return NULL;
}

/* ------------------------------------------------------------ side requests */

/* GET 'path' with Connection: close; returns the owned body of a 200 or NULL. */
static char *http_get(const char *path) {
    int fd = lg_connect();
    if (fd < 0)
        return NULL;
    char req[1024];
    char auth[600] = "";
    if (g_opt.key)
        snprintf(auth, sizeof auth, "Authorization: Bearer %s\r\n", g_opt.key);
    int n =
        snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s:%d\r\n%sConnection: close\r\n\r\n",
                 path, g_opt.host, g_opt.port, auth);
    Buf b = {0};
    if (n > 0 && (size_t)n < sizeof req && send_all(fd, req, (size_t)n)) {
        while (read_some(fd, &b, now_s() + 10) > 0)
            if (b.n > LG_BODY_MAX)
                break;
    }
    close(fd);
    char *e = b.n ? strstr(b.p, "\r\n\r\n") : NULL;
    Head h;
    if (!e || !parse_head(b.p, (size_t)(e - b.p), &h) || h.status != 200) {
        free(b.p);
        return NULL;
    }
    size_t off = (size_t)(e - b.p) + 4;
    Buf body = {0};
    if (h.chunked) {
        Buf raw = {0};
        buf_add(&raw, b.p + off, b.n - off);
        Chunker ck = {.left = -1};
        dechunk(&ck, &raw, &body);
        free(raw.p);
    } else {
        buf_add(&body, b.p + off, b.n - off);
    }
    free(b.p);
    if (!body.p)
        buf_add(&body, "", 0);
    return body.p;
}

/* Sum of every sample of 'name' in /metrics; NAN when absent. */
static double scrape(const char *name) {
    char *text = http_get("/metrics");
    if (!text)
        return NAN;
    double sum = NAN;
    size_t n = strlen(name);
    for (char *line = text; line && *line;) {
        char *eol = strchr(line, '\n');
        if (!strncmp(line, name, n) && (line[n] == ' ' || line[n] == '{')) {
            char *sp = eol ? eol : line + strlen(line);
            while (sp > line && sp[-1] != ' ')
                sp--;
            double v = strtod(sp, NULL);
            sum = isnan(sum) ? v : sum + v;
        }
        line = eol ? eol + 1 : NULL;
    }
    free(text);
    return sum;
}

static void discover_model(void) {
    char *text = http_get("/v1/models");
    if (!text)
        die("GET /v1/models failed on %s: is the server up (and the key right)?", g_opt.host);
    json_error_t jerr;
    json_t *j = json_loads(text, 0, &jerr);
    free(text);
    const char *id =
        json_string_value(json_object_get(json_array_get(json_object_get(j, "data"), 0), "id"));
    if (!id)
        die("GET /v1/models: no model id in the answer%s", "");
    snprintf(g_opt.model, sizeof g_opt.model, "%s", id);
    json_decref(j);
}

/* ------------------------------------------------------------ main */

static double parse_num(const char *opt, const char *v, double lo, double hi) {
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || *end || !(x >= lo && x <= hi))
        die("bad value for %s", opt);
    return x;
}

static void parse_args(int argc, char **argv) {
    Opts *o = &g_opt;
    o->host = "127.0.0.1";
    o->clients = 1;
    o->duration = 20;
    o->warmup = 2;
    o->max_tokens = 128;
    o->temperature = 0.7;
    o->timeout = 60;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--json")) {
            o->json = true;
            continue;
        }
        if (!strcmp(a, "--header")) {
            o->header = true;
            continue;
        }
        if (!strcmp(a, "--ignore-eos")) {
            o->ignore_eos = true;
            continue;
        }
        if (i + 1 >= argc)
            die("%s: missing value", a);
        const char *v = argv[++i];
        if (!strcmp(a, "--host"))
            o->host = v;
        else if (!strcmp(a, "--port"))
            o->port = (int)parse_num(a, v, 1, 65535);
        else if (!strcmp(a, "--model"))
            snprintf(o->model, sizeof o->model, "%s", v);
        else if (!strcmp(a, "-c") || !strcmp(a, "--clients"))
            o->clients = (int)parse_num(a, v, 1, LG_MAX_CLIENTS);
        else if (!strcmp(a, "-d") || !strcmp(a, "--duration")) {
            o->duration = parse_num(a, v, 0.1, 86400);
            o->requests = 0;
        } else if (!strcmp(a, "-r") || !strcmp(a, "--requests")) {
            o->requests = (int)parse_num(a, v, 1, 1e9);
            o->duration = 0;
        } else if (!strcmp(a, "--warmup"))
            o->warmup = parse_num(a, v, 0, 3600);
        else if (!strcmp(a, "-t") || !strcmp(a, "--max-tokens"))
            o->max_tokens = (int)parse_num(a, v, 1, 1 << 20);
        else if (!strcmp(a, "--temperature"))
            o->temperature = parse_num(a, v, 0, 2);
        else if (!strcmp(a, "--ban")) {
            if (o->n_ban == LG_MAX_BAN)
                die("too many --ban (max %s)", "64");
            o->ban[o->n_ban++] = (int)parse_num(a, v, 0, 2147483647.0);
        } else if (!strcmp(a, "--key"))
            o->key = v;
        else if (!strcmp(a, "--timeout"))
            o->timeout = parse_num(a, v, 0.1, 3600);
        else
            die("unknown option %s", a);
    }
    if (!o->port)
        die("--port is required%s", "");
}

static void fmt_ms(char *out, size_t cap, double s) {
    if (isnan(s))
        snprintf(out, cap, "-");
    else
        snprintf(out, cap, "%.1f", s * 1000.0);
}

static json_t *json_ms(double s) {
    return isnan(s) ? json_null() : json_real(round(s * 1e6) / 1e3);
}

int main(int argc, char **argv) {
    signal(SIGPIPE, SIG_IGN);
    parse_args(argc, argv);
    if (!g_opt.model[0])
        discover_model();

    Client *cl = calloc((size_t)g_opt.clients, sizeof *cl);
    if (!cl)
        die("out of memory%s", "");
    g_t0 = now_s();
    g_t_measure = g_t0 + g_opt.warmup;
    g_t_stop = g_opt.requests > 0 ? INFINITY : g_t_measure + g_opt.duration;
    for (int i = 0; i < g_opt.clients; i++) {
        cl[i].id = i;
        if (pthread_create(&cl[i].th, NULL, client_main, &cl[i]) != 0)
            die("pthread_create failed%s", "");
    }
    /* the server's own token count at both ends of the window */
    struct timespec ts;
    double wait = g_t_measure - now_s();
    if (wait > 0) {
        ts.tv_sec = (time_t)wait;
        ts.tv_nsec = (long)((wait - floor(wait)) * 1e9);
        nanosleep(&ts, NULL);
    }
    double srv0 = scrape("cgpt_generated_tokens_total"), t_srv0 = now_s(), srv1 = NAN, t_srv1 = 0;
    if (g_opt.requests == 0) {
        wait = g_t_stop - now_s();
        if (wait > 0) {
            ts.tv_sec = (time_t)wait;
            ts.tv_nsec = (long)((wait - floor(wait)) * 1e9);
            nanosleep(&ts, NULL);
        }
        srv1 = scrape("cgpt_generated_tokens_total");
        t_srv1 = now_s();
    }
    for (int i = 0; i < g_opt.clients; i++)
        pthread_join(cl[i].th, NULL);
    double t_end = g_opt.requests > 0 ? 0 : g_t_stop;
    if (g_opt.requests > 0) {
        for (int i = 0; i < g_opt.clients; i++)
            t_end = cl[i].t_done > t_end ? cl[i].t_done : t_end;
        srv1 = scrape("cgpt_generated_tokens_total");
        t_srv1 = now_s();
    }
    double window = t_end - g_t_measure;

    /* aggregate */
    Client all = {0};
    uint64_t failed = 0;
    for (int i = 0; i < g_opt.clients; i++) {
        Client *c = &cl[i];
        all.ok += c->ok;
        for (int s = 0; s < LG_MAX_STATUS; s++)
            all.fail_status[s] += c->fail_status[s];
        all.fail_conn += c->fail_conn;
        all.fail_timeout += c->fail_timeout;
        all.fail_stream += c->fail_stream;
        all.fail_truncated += c->fail_truncated;
        all.abandoned += c->abandoned;
        all.tokens_window += c->tokens_window;
        all.chunk_tokens += c->chunk_tokens;
        all.usage_tokens += c->usage_tokens;
        for (size_t k = 0; k < c->ttft.n; k++)
            vec_push(&all.ttft, c->ttft.v[k]);
        for (size_t k = 0; k < c->itl.n; k++)
            vec_push(&all.itl, c->itl.v[k]);
        free(c->ttft.v);
        free(c->itl.v);
    }
    qsort(all.ttft.v, all.ttft.n, sizeof(double), cmp_double);
    qsort(all.itl.v, all.itl.n, sizeof(double), cmp_double);
    for (int s = 0; s < LG_MAX_STATUS; s++)
        failed += all.fail_status[s];
    failed += all.fail_conn + all.fail_timeout + all.fail_stream + all.fail_truncated;
    double tps = window > 0 ? (double)all.tokens_window / window : 0;
    double srv_tps =
        !isnan(srv0) && !isnan(srv1) && t_srv1 > t_srv0 ? (srv1 - srv0) / (t_srv1 - t_srv0) : NAN;

    /* failures "503:4,conn:1" */
    char fails[512] = "";
    size_t fl = 0;
    const char *names[] = {"conn", "timeout", "stream", "truncated"};
    uint64_t counts[] = {all.fail_conn, all.fail_timeout, all.fail_stream, all.fail_truncated};
    json_t *jf = json_object();
    for (int s = 0; s < LG_MAX_STATUS; s++)
        if (all.fail_status[s]) {
            char k[16];
            snprintf(k, sizeof k, "%d", s);
            json_object_set_new(jf, k, json_integer((json_int_t)all.fail_status[s]));
            int w = snprintf(fails + fl, sizeof fails - fl, "%s%d:%llu", fl ? "," : "", s,
                             (unsigned long long)all.fail_status[s]);
            if (w > 0 && (size_t)w < sizeof fails - fl)
                fl += (size_t)w;
        }
    for (int k = 0; k < 4; k++)
        if (counts[k]) {
            json_object_set_new(jf, names[k], json_integer((json_int_t)counts[k]));
            int w = snprintf(fails + fl, sizeof fails - fl, "%s%s:%llu", fl ? "," : "", names[k],
                             (unsigned long long)counts[k]);
            if (w > 0 && (size_t)w < sizeof fails - fl)
                fl += (size_t)w;
        }

    if (g_opt.json) {
        json_t *o = json_pack(
            "{s:i, s:s, s:i, s:f, s:f, s:I, s:I, s:o, s:I, s:I, s:f, s:o, s:I, s:I}", "clients",
            g_opt.clients, "model", g_opt.model, "max_tokens", g_opt.max_tokens, "window_s", window,
            "warmup_s", g_opt.warmup, "requests_ok", (json_int_t)all.ok, "failed_total",
            (json_int_t)failed, "failed", jf, "abandoned", (json_int_t)all.abandoned, "tokens",
            (json_int_t)all.tokens_window, "tokens_per_s", tps, "server_tokens_per_s",
            isnan(srv_tps) ? json_null() : json_real(srv_tps), "chunk_tokens_ok",
            (json_int_t)all.chunk_tokens, "usage_tokens_ok", (json_int_t)all.usage_tokens);
        json_object_set_new(o, "ttft_ms",
                            json_pack("{s:o, s:o, s:I}", "p50", json_ms(pct(&all.ttft, 0.5)), "p99",
                                      json_ms(pct(&all.ttft, 0.99)), "n", (json_int_t)all.ttft.n));
        json_object_set_new(o, "itl_ms",
                            json_pack("{s:o, s:o, s:I}", "p50", json_ms(pct(&all.itl, 0.5)), "p99",
                                      json_ms(pct(&all.itl, 0.99)), "n", (json_int_t)all.itl.n));
        char *s = json_dumps(o, JSON_COMPACT);
        printf("%s\n", s ? s : "{}");
        free(s);
        json_decref(o);
    } else {
        json_decref(jf);
        if (g_opt.header)
            printf("%7s %8s %-24s %10s %10s %10s %9s %9s\n", "clients", "ok", "failed", "tok/s",
                   "ttft_p50", "ttft_p99", "itl_p50", "itl_p99");
        char failcol[600], t50[32], t99[32], i50[32], i99[32];
        snprintf(failcol, sizeof failcol, "%llu%s%s%s", (unsigned long long)failed, fl ? " (" : "",
                 fails, fl ? ")" : "");
        fmt_ms(t50, sizeof t50, pct(&all.ttft, 0.5));
        fmt_ms(t99, sizeof t99, pct(&all.ttft, 0.99));
        fmt_ms(i50, sizeof i50, pct(&all.itl, 0.5));
        fmt_ms(i99, sizeof i99, pct(&all.itl, 0.99));
        printf("%7d %8llu %-24s %10.1f %10s %10s %9s %9s\n", g_opt.clients,
               (unsigned long long)all.ok, failcol, tps, t50, t99, i50, i99);
    }
    fflush(stdout);
    free(all.ttft.v);
    free(all.itl.v);
    free(cl);
    return 0;
}
