/* http1.c - strict HTTP/1.1 request framing (http1.h). */
#include "serve/http1.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/utf8.h"

static int fail(H1Error *e, int status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    e->status = status;
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return H1_BAD;
}

/* RFC 9110 §5.6.2 tchar. */
static bool is_tchar(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool is_token(const char *s, size_t n) {
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!is_tchar((unsigned char)s[i]))
            return false;
    return true;
}

static bool is_ows(char c) { return c == ' ' || c == '\t'; }

static int hexval(unsigned char c) {
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* ------------------------------------------------------------ the head */

/* The line starting at buf[at]: its content length (a CR before the LF
 * excluded) and where the next line starts. Returns false when no LF
 * follows within buf; a CR anywhere but before the LF is a bare CR. */
static bool next_line(const char *buf, size_t len, size_t at, size_t *n, size_t *next,
                      bool *bare_cr) {
    if (at >= len)
        return false;
    const char *lf = memchr(buf + at, '\n', len - at);
    if (!lf)
        return false;
    size_t end = (size_t)(lf - buf);
    *next = end + 1;
    if (end > at && buf[end - 1] == '\r')
        end--;
    *n = end - at;
    *bare_cr = memchr(buf + at, '\r', *n) != NULL;
    return true;
}

static int parse_request_line(const char *p, size_t n, H1Request *req, H1Error *e) {
    const char *sp1 = memchr(p, ' ', n);
    const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', n - (size_t)(sp1 + 1 - p)) : NULL;
    if (!sp1 || !sp2)
        return fail(e, 400, "request line: expected METHOD SP TARGET SP HTTP-VERSION");
    req->method = p;
    req->method_len = (size_t)(sp1 - p);
    req->target = sp1 + 1;
    req->target_len = (size_t)(sp2 - sp1 - 1);
    const char *ver = sp2 + 1;
    size_t vlen = n - (size_t)(ver - p);
    if (!is_token(req->method, req->method_len))
        return fail(e, 400, "request line: the method is not a token");
    if (req->target_len == 0)
        return fail(e, 400, "request line: an empty request target (or two spaces)");
    for (size_t i = 0; i < req->target_len; i++) {
        unsigned char c = (unsigned char)req->target[i];
        if (c <= 0x20 || c >= 0x7f)
            return fail(e, 400, "request target: byte 0x%02x at offset %zu is not visible ASCII", c,
                        i);
    }
    if (vlen == 8 && !memcmp(ver, "HTTP/1.", 7) && (ver[7] == '0' || ver[7] == '1')) {
        req->minor = ver[7] - '0';
        return H1_DONE;
    }
    if (vlen == 8 && !memcmp(ver, "HTTP/", 5) && ver[5] >= '0' && ver[5] <= '9' && ver[6] == '.' &&
        ver[7] >= '0' && ver[7] <= '9')
        return fail(e, 505, "HTTP version %.8s is not supported (HTTP/1.0 and HTTP/1.1 are)", ver);
    return fail(e, 400, "request line: '%.*s' is not an HTTP version", (int)(vlen < 16 ? vlen : 16),
                ver);
}

static int parse_field_line(const char *p, size_t n, size_t line_no, H1Request *req, H1Error *e) {
    if (is_ows(p[0]))
        return fail(e, 400,
                    "header line %zu: obsolete line folding (a line starting with "
                    "whitespace) is not accepted",
                    line_no);
    const char *colon = memchr(p, ':', n);
    if (!colon)
        return fail(e, 400, "header line %zu: no ':' in the field line", line_no);
    size_t name_len = (size_t)(colon - p);
    if (name_len && is_ows(p[name_len - 1]))
        return fail(e, 400, "header line %zu: whitespace between the field name and ':'", line_no);
    if (!is_token(p, name_len))
        return fail(e, 400, "header line %zu: the field name is not a token", line_no);
    const char *v = colon + 1, *end = p + n;
    while (v < end && is_ows(*v))
        v++;
    while (end > v && is_ows(end[-1]))
        end--;
    for (const char *q = v; q < end; q++) {
        unsigned char c = (unsigned char)*q;
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return fail(e, 400, "header line %zu (%.*s): control byte 0x%02x in the value", line_no,
                        (int)(name_len < 64 ? name_len : 64), p, c);
    }
    if (req->n_fields == H1_MAX_FIELDS)
        return fail(e, 431, "more than %d header fields", H1_MAX_FIELDS);
    req->fields[req->n_fields++] =
        (H1Field){.name = p, .name_len = name_len, .value = v, .value_len = (size_t)(end - v)};
    return H1_DONE;
}

const H1Field *h1_field(const H1Request *req, const char *name, int *count) {
    size_t n = strlen(name);
    const H1Field *first = NULL;
    int k = 0;
    for (int i = 0; i < req->n_fields; i++) {
        const H1Field *f = &req->fields[i];
        if (f->name_len == n && !strncasecmp(f->name, name, n)) {
            if (!first)
                first = f;
            k++;
        }
    }
    if (count)
        *count = k;
    return first;
}

/* Each comma-separated member of a list-valued field, trimmed; calls
 * fn(member, len, ctx) and stops at its first non-zero result. Empty
 * members are skipped (RFC 9110 §5.6.1). */
static int each_member(const H1Field *f, int (*fn)(const char *, size_t, void *), void *ctx) {
    const char *p = f->value, *end = f->value + f->value_len;
    while (p < end) {
        const char *c = memchr(p, ',', (size_t)(end - p));
        const char *q = c ? c : end, *s = p;
        while (s < q && is_ows(*s))
            s++;
        while (q > s && is_ows(q[-1]))
            q--;
        if (q > s) {
            int r = fn(s, (size_t)(q - s), ctx);
            if (r)
                return r;
        }
        p = c ? c + 1 : end;
    }
    return 0;
}

typedef struct {
    int n_chunked, n_other;
    bool last_chunked;
} TeScan;

static int te_member(const char *m, size_t n, void *ctx) {
    TeScan *t = ctx;
    bool chunked = n == 7 && !strncasecmp(m, "chunked", 7);
    t->n_chunked += chunked;
    t->n_other += !chunked;
    t->last_chunked = chunked;
    return 0;
}

typedef struct {
    bool have, bad;
    uint64_t value;
} ClScan;

static int cl_member(const char *m, size_t n, void *ctx) {
    ClScan *c = ctx;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (m[i] < '0' || m[i] > '9' || v > (UINT64_MAX - 9) / 10) {
            c->bad = true;
            return 1;
        }
        v = v * 10 + (uint64_t)(m[i] - '0');
    }
    if (c->have && v != c->value) {
        c->bad = true;
        return 1;
    }
    c->have = true;
    c->value = v;
    return 0;
}

/* Body framing from Transfer-Encoding / Content-Length (RFC 9112 §6). */
static int framing(H1Request *req, uint64_t max_body, H1Error *e) {
    int n_te = 0, n_cl = 0;
    h1_field(req, "Transfer-Encoding", &n_te);
    h1_field(req, "Content-Length", &n_cl);
    if (n_te && n_cl)
        return fail(e, 400,
                    "both Transfer-Encoding and Content-Length: the body's length is "
                    "ambiguous (RFC 9112 section 6.3)");
    if (n_te) {
        if (req->minor == 0)
            return fail(e, 400, "Transfer-Encoding in an HTTP/1.0 request");
        TeScan t = {0};
        for (int i = 0; i < req->n_fields; i++)
            if (req->fields[i].name_len == 17 &&
                !strncasecmp(req->fields[i].name, "Transfer-Encoding", 17))
                each_member(&req->fields[i], te_member, &t);
        if (t.n_other)
            return fail(e, 501, "Transfer-Encoding: only 'chunked' is implemented");
        if (t.n_chunked != 1)
            return fail(e, 400, "Transfer-Encoding: 'chunked' must be given exactly once");
        req->body = H1_BODY_CHUNKED;
        return H1_DONE;
    }
    if (n_cl) {
        ClScan c = {0};
        for (int i = 0; i < req->n_fields; i++)
            if (req->fields[i].name_len == 14 &&
                !strncasecmp(req->fields[i].name, "Content-Length", 14) &&
                each_member(&req->fields[i], cl_member, &c))
                break;
        if (c.bad || !c.have)
            return fail(e, 400,
                        "Content-Length: not one non-negative decimal number (fields "
                        "that differ or are not digits)");
        if (c.value > max_body)
            return fail(e, 413, "Content-Length %llu is over the body limit of %llu bytes",
                        (unsigned long long)c.value, (unsigned long long)max_body);
        req->content_length = c.value;
        req->body = c.value ? H1_BODY_LENGTH : H1_BODY_NONE;
    }
    return H1_DONE;
}

int h1_parse_head(const char *buf, size_t len, uint64_t max_body, H1Request *req, H1Error *e) {
    memset(req, 0, sizeof *req);
    size_t at = 0, n, next;
    bool bare_cr;
    /* empty lines before the request line are ignored (RFC 9112 section 2.2) */
    while (at < len &&
           (buf[at] == '\n' || (buf[at] == '\r' && at + 1 < len && buf[at + 1] == '\n')))
        at += buf[at] == '\r' ? 2 : 1;
    if (!next_line(buf, len, at, &n, &next, &bare_cr)) {
        if (len - at > H1_MAX_LINE)
            return fail(e, 414, "the request line is longer than %d bytes", H1_MAX_LINE);
        return len > H1_MAX_HEAD
                   ? fail(e, 431, "the request head is longer than %d bytes", H1_MAX_HEAD)
                   : H1_MORE;
    }
    if (n > H1_MAX_LINE)
        return fail(e, 414, "the request line is longer than %d bytes", H1_MAX_LINE);
    if (bare_cr)
        return fail(e, 400, "request line: a bare CR");
    if (parse_request_line(buf + at, n, req, e) == H1_BAD)
        return H1_BAD;
    for (size_t line_no = 1;; line_no++) {
        at = next;
        if (at > H1_MAX_HEAD)
            return fail(e, 431, "the request head is longer than %d bytes", H1_MAX_HEAD);
        if (!next_line(buf, len, at, &n, &next, &bare_cr))
            return len > H1_MAX_HEAD
                       ? fail(e, 431, "the request head is longer than %d bytes", H1_MAX_HEAD)
                       : H1_MORE;
        if (bare_cr)
            return fail(e, 400, "header line %zu: a bare CR", line_no);
        if (n == 0)
            break;
        if (parse_field_line(buf + at, n, line_no, req, e) == H1_BAD)
            return H1_BAD;
    }
    req->head_len = next;
    if (req->head_len > H1_MAX_HEAD)
        return fail(e, 431, "the request head is longer than %d bytes", H1_MAX_HEAD);
    int n_host = 0;
    h1_field(req, "Host", &n_host);
    if (n_host > 1 || (req->minor == 1 && n_host != 1))
        return fail(e, 400, "%d Host fields: an HTTP/1.1 request has exactly one", n_host);
    const H1Field *ex = h1_field(req, "Expect", NULL);
    if (ex) {
        if (ex->value_len != 12 || strncasecmp(ex->value, "100-continue", 12))
            return fail(e, 417, "Expect: only 100-continue is supported");
        req->expect_continue = true;
    }
    return framing(req, max_body, e);
}

/* ------------------------------------------------------------ the target */

int h1_check_target(const char *t, size_t len, size_t *path_off, H1Error *e) {
    *path_off = 0;
    if (len == 0)
        return fail(e, 400, "request target: empty");
    if (len == 1 && t[0] == '*')
        return 0;
    size_t at = 0;
    if (len > 7 && (!strncasecmp(t, "http://", 7) || (len > 8 && !strncasecmp(t, "https://", 8)))) {
        at = t[4] == ':' ? 7 : 8; /* absolute-form: the path starts after the authority */
        while (at < len && t[at] != '/' && t[at] != '?')
            at++;
        if (at == len || t[at] != '/')
            return fail(e, 400, "request target: an absolute URI without a path");
        *path_off = at;
    } else if (t[0] != '/') {
        return fail(e, 400, "request target: must start with '/'");
    }
    /* Decode the path into segments as we go: a segment is checked when it ends. */
    unsigned char seg[H1_MAX_LINE];
    size_t seg_len = 0, seg_start = at + 1;
    bool in_query = false;
    for (size_t i = at + 1; i <= len; i++) {
        unsigned char c = i < len ? (unsigned char)t[i] : 0;
        bool end_path = !in_query && (i == len || c == '?');
        if (c == '#')
            return fail(e, 400, "request target: a fragment ('#') is not sent in requests");
        if (end_path || (!in_query && c == '/')) {
            bool last = end_path;
            if (seg_len == 0 && !last)
                return fail(e, 400, "request target: an empty path segment ('//') at offset %zu",
                            seg_start);
            if ((seg_len == 1 && seg[0] == '.') || (seg_len == 2 && seg[0] == '.' && seg[1] == '.'))
                return fail(e, 400, "request target: a '.' or '..' path segment at offset %zu",
                            seg_start);
            for (size_t k = 0; k < seg_len;) {
                int u = utf8_seq(seg + k, seg_len - k);
                if (u < 0)
                    return fail(e, 400,
                                "request target: the path is not valid UTF-8 once "
                                "decoded (segment at offset %zu)",
                                seg_start);
                k += u;
            }
            seg_len = 0;
            seg_start = i + 1;
            if (c == '?')
                in_query = true;
            continue;
        }
        if (i == len)
            break;
        unsigned char d = c;
        if (c == '%') {
            int h = i + 1 < len ? hexval((unsigned char)t[i + 1]) : -1;
            int l = i + 2 < len ? hexval((unsigned char)t[i + 2]) : -1;
            if (h < 0 || l < 0)
                return fail(e, 400, "request target: a bad %%-escape at offset %zu", i);
            d = (unsigned char)(h * 16 + l);
            i += 2;
            if (d < 0x20 || d == 0x7f)
                return fail(e, 400, "request target: an encoded control byte 0x%02x at offset %zu",
                            d, i - 2);
            if (!in_query && (d == '/' || d == '\\'))
                return fail(e, 400, "request target: an encoded '%c' in the path at offset %zu", d,
                            i - 2);
        } else if (c == '\\' && !in_query) {
            return fail(e, 400, "request target: '\\' in the path at offset %zu", i);
        }
        if (!in_query && seg_len < sizeof seg)
            seg[seg_len++] = d;
    }
    return 0;
}

/* ------------------------------------------------------------ cookies */

int h1_cookie(const char *value, size_t len, const char *name, char *out, size_t cap) {
    size_t nlen = strlen(name);
    int count = 0;
    if (cap)
        out[0] = '\0';
    const char *p = value, *end = value + len;
    while (p < end) {
        const char *semi = memchr(p, ';', (size_t)(end - p));
        const char *q = semi ? semi : end;
        while (p < q && is_ows(*p))
            p++;
        const char *eq = memchr(p, '=', (size_t)(q - p));
        if (eq) {
            const char *k_end = eq;
            while (k_end > p && is_ows(k_end[-1]))
                k_end--;
            if ((size_t)(k_end - p) == nlen && !memcmp(p, name, nlen)) {
                if (count++ == 0 && cap) {
                    const char *v = eq + 1, *v_end = q;
                    while (v < v_end && is_ows(*v))
                        v++;
                    while (v_end > v && is_ows(v_end[-1]))
                        v_end--;
                    size_t n = (size_t)(v_end - v) < cap - 1 ? (size_t)(v_end - v) : cap - 1;
                    memcpy(out, v, n);
                    out[n] = '\0';
                }
            }
        }
        p = semi ? semi + 1 : end;
    }
    return count;
}

/* ------------------------------------------------------------ chunked */

enum { CH_SIZE, CH_SIZE_LF, CH_DATA, CH_DATA_CR, CH_DATA_LF, CH_TRAILER, CH_TRAILER_LF, CH_DONE };

int h1_chunked_feed(H1Chunked *c, const char *in, size_t n, size_t *used, uint64_t max_body,
                    char *out, size_t out_cap, size_t *out_len, H1Error *e) {
    size_t i = 0;
    for (; i < n; i++) {
        unsigned char b = (unsigned char)in[i];
        switch (c->state) {
        case CH_SIZE:
            if (b == '\n' || b == '\r') {
                if (!c->seen_digit)
                    return fail(e, 400, "chunked body: a chunk-size line without a size");
                if (c->after_size && !c->ext)
                    return fail(e, 400,
                                "chunked body: whitespace after a chunk size without an "
                                "extension");
                c->state = b == '\r' ? CH_SIZE_LF : (c->left ? CH_DATA : CH_TRAILER);
                c->line_len = 0;
                if (b == '\n')
                    c->seen_digit = c->ext = c->after_size = false;
                continue;
            }
            if (++c->line_len > H1_MAX_CHUNK_LINE)
                return fail(e, 400, "chunked body: a chunk-size line longer than %d bytes",
                            H1_MAX_CHUNK_LINE);
            if (c->ext || c->after_size || b == ';' || is_ows((char)b)) {
                /* after the size: BWS, then ';' and extensions (RFC 9112 section 7.1.1) */
                if (!c->seen_digit)
                    return fail(e, 400, "chunked body: a chunk size must start with a hex digit");
                if ((b < 0x20 && b != '\t') || b == 0x7f)
                    return fail(e, 400, "chunked body: a control byte in a chunk extension");
                if (b == ';')
                    c->ext = true;
                else if (!c->ext && !is_ows((char)b))
                    return fail(e, 400, "chunked body: '%c' after the chunk size", b);
                c->after_size = true;
                continue;
            }
            int h = hexval(b);
            if (h < 0)
                return fail(e, 400,
                            "chunked body: '%c' (0x%02x) is not a hex digit of a chunk size",
                            b >= 0x20 && b < 0x7f ? b : '?', b);
            if (c->left >> 60)
                return fail(e, 400, "chunked body: a chunk size that passes 64 bits");
            c->left = c->left * 16 + (uint64_t)h;
            c->seen_digit = true;
            /* more digits only make it larger: refuse as soon as it passes the limit */
            if (c->left > max_body - c->total)
                return fail(e, 413,
                            "chunked body: a chunk size passes the body limit of %llu "
                            "bytes (%llu of them received before it)",
                            (unsigned long long)max_body, (unsigned long long)c->total);
            continue;
        case CH_SIZE_LF:
            if (b != '\n')
                return fail(e, 400, "chunked body: a bare CR after a chunk size");
            c->state = c->left ? CH_DATA : CH_TRAILER;
            c->seen_digit = c->ext = c->after_size = false;
            continue;
        case CH_DATA: {
            size_t k = n - i < c->left ? n - i : (size_t)c->left;
            if (*out_len + k > out_cap)
                return fail(e, 413, "chunked body: more than %zu bytes", out_cap);
            memcpy(out + *out_len, in + i, k);
            *out_len += k;
            c->left -= k;
            c->total += k;
            i += k - 1;
            if (!c->left)
                c->state = CH_DATA_CR;
            continue;
        }
        case CH_DATA_CR:
            if (b == '\r')
                c->state = CH_DATA_LF;
            else if (b == '\n')
                c->state = CH_SIZE;
            else
                return fail(e, 400, "chunked body: chunk data longer than its size");
            continue;
        case CH_DATA_LF:
            if (b != '\n')
                return fail(e, 400, "chunked body: a bare CR after chunk data");
            c->state = CH_SIZE;
            continue;
        case CH_TRAILER:
            if (++c->trailer > H1_MAX_TRAILER)
                return fail(e, 400, "chunked body: a trailer section longer than %d bytes",
                            H1_MAX_TRAILER);
            if (b == '\r') {
                c->state = CH_TRAILER_LF;
            } else if (b == '\n') {
                if (c->line_len == 0) {
                    c->state = CH_DONE;
                    *used = i + 1;
                    return H1_DONE;
                }
                c->line_len = 0;
            } else {
                if ((b < 0x20 && b != '\t') || b == 0x7f)
                    return fail(e, 400, "chunked body: a control byte in the trailer section");
                c->line_len++;
            }
            continue;
        case CH_TRAILER_LF:
            if (b != '\n')
                return fail(e, 400, "chunked body: a bare CR in the trailer section");
            if (c->line_len == 0) {
                c->state = CH_DONE;
                *used = i + 1;
                return H1_DONE;
            }
            c->line_len = 0;
            c->state = CH_TRAILER;
            continue;
        default: *used = i; return H1_DONE;
        }
    }
    *used = i;
    return c->state == CH_DONE ? H1_DONE : H1_MORE;
}
