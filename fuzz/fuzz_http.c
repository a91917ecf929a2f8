/* fuzz_http.c - libFuzzer target for HTTP/1.1 framing (serve/http1.c),
 * exactly what the server's gate runs on a client's bytes, and for the
 * JSON path finder that names the field of a parse error.
 *
 * The first input byte picks the mode and the body limit; the rest is the
 * raw bytes a client sent:
 *   mode 0: a request head, then (when it frames one) a chunked or
 *           Content-Length body, then the next request - the gate's loop;
 *   mode 1: the bytes as a chunked body alone;
 *   mode 2: the bytes as a request target;
 *   mode 3: the bytes as a JSON body: oai_json_path_at at every offset.
 * Invariants (abort on violation): every result is H1_MORE / H1_DONE /
 * H1_BAD with a documented status and a message; views point inside the
 * input; a head that parses at some prefix parses the same at every longer
 * one (incremental reads cannot change the answer); a chunked body fed
 * byte by byte gives the same result, data and length as fed whole, and
 * never more data than the limit; paths are NUL-terminated and printable. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "serve/http1.h"
#include "serve/oai.h"

static const uint64_t LIMITS[] = {0, 16, 1000, 8u << 20};

static void check_error(const H1Error *e) {
    static const int ok[] = {400, 413, 414, 417, 431, 501, 505};
    bool known = false;
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        known |= e->status == ok[i];
    if (!known || !e->message[0] || !memchr(e->message, 0, sizeof e->message))
        abort();
}

static bool inside(const char *p, size_t n, const uint8_t *buf, size_t len) {
    return (const uint8_t *)p >= buf && (const uint8_t *)p + n <= buf + len;
}

static void check_head(const H1Request *rq, const uint8_t *buf, size_t len, uint64_t max_body) {
    if (rq->head_len > len || rq->n_fields < 0 || rq->n_fields > H1_MAX_FIELDS ||
        !inside(rq->method, rq->method_len, buf, len) ||
        !inside(rq->target, rq->target_len, buf, len) || (rq->minor != 0 && rq->minor != 1) ||
        (rq->body == H1_BODY_LENGTH && (rq->content_length == 0 || rq->content_length > max_body)))
        abort();
    for (int i = 0; i < rq->n_fields; i++)
        if (!inside(rq->fields[i].name, rq->fields[i].name_len, buf, len) ||
            !inside(rq->fields[i].value, rq->fields[i].value_len, buf, len) ||
            !rq->fields[i].name_len)
            abort();
}

/* Decode whole and byte by byte; both must agree. Returns bytes used. */
static size_t chunked_both(const uint8_t *in, size_t n, uint64_t max_body) {
    size_t cap = max_body ? (size_t)max_body : 1;
    char *a = malloc(cap), *b = malloc(cap);
    if (!a || !b)
        abort();
    H1Chunked ca = {0}, cb = {0};
    H1Error ea = {0}, eb = {0};
    size_t la = 0, lb = 0, ua = 0, ub = 0;
    int ra = h1_chunked_feed(&ca, (const char *)in, n, &ua, max_body, a, cap, &la, &ea);
    int rb = H1_MORE;
    while (ub < n && rb == H1_MORE) {
        size_t u = 0;
        rb = h1_chunked_feed(&cb, (const char *)in + ub, 1, &u, max_body, b, cap, &lb, &eb);
        ub += u;
    }
    if (ra != rb || la != lb || memcmp(a, b, la) || la > max_body)
        abort();
    if (ra == H1_BAD) {
        check_error(&ea);
        if (ea.status != eb.status)
            abort();
    }
    if (ra == H1_DONE && (ua != ub || ua > n))
        abort();
    free(a);
    free(b);
    return ra == H1_DONE ? ua : n;
}

static void gate_loop(const uint8_t *buf, size_t len, uint64_t max_body) {
    H1Request rq, rq2;
    H1Error e = {0}, e2 = {0};
    for (int rounds = 0; len && rounds < 8; rounds++) {
        int r = h1_parse_head((const char *)buf, len, max_body, &rq, &e);
        if (r == H1_BAD) {
            check_error(&e);
            return;
        }
        if (r == H1_MORE)
            return;
        check_head(&rq, buf, len, max_body);
        /* any longer read gives the same head; a shorter one is not done yet
         * or already wrong, never a different head */
        for (size_t k = rq.head_len; k <= len; k += 1 + k / 16) {
            if (h1_parse_head((const char *)buf, k, max_body, &rq2, &e2) != H1_DONE ||
                rq2.head_len != rq.head_len || rq2.n_fields != rq.n_fields || rq2.body != rq.body)
                abort();
        }
        for (size_t k = 0; k < rq.head_len; k += 1 + k / 16)
            if (h1_parse_head((const char *)buf, k, max_body, &rq2, &e2) == H1_DONE)
                abort();
        size_t off;
        if (h1_check_target(rq.target, rq.target_len, &off, &e) == H1_BAD)
            check_error(&e);
        else if (off > rq.target_len)
            abort();
        size_t used = rq.head_len;
        if (rq.body == H1_BODY_CHUNKED)
            used += chunked_both(buf + used, len - used, max_body);
        else if (rq.body == H1_BODY_LENGTH)
            used += rq.content_length < len - used ? (size_t)rq.content_length : len - used;
        if (used > len)
            abort();
        buf += used;
        len -= used;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1)
        return 0;
    uint8_t mode = data[0] & 3;
    uint64_t max_body = LIMITS[(data[0] >> 2) & 3];
    const uint8_t *buf = data + 1;
    size_t len = size - 1;
    /* an exact-size copy, so ASan sees any read past the end */
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy)
        return 0;
    memcpy(copy, buf, len);
    if (mode == 0) {
        gate_loop(copy, len, max_body);
    } else if (mode == 1) {
        chunked_both(copy, len, max_body);
    } else if (mode == 2) {
        size_t off;
        H1Error e = {0};
        if (h1_check_target((const char *)copy, len, &off, &e) == H1_BAD)
            check_error(&e);
        else if (off > len)
            abort();
    } else if (len <= 4096) {
        for (size_t off = 0; off <= len; off += 1 + off / 8) {
            char out[OAI_MAX_PARAM_BYTES];
            oai_json_path_at((const char *)copy, len, off, out, sizeof out);
            size_t n = strnlen(out, sizeof out);
            if (n == sizeof out)
                abort();
            for (size_t i = 0; i < n; i++)
                if ((unsigned char)out[i] < 0x20)
                    abort();
        }
    }
    free(copy);
    return 0;
}
