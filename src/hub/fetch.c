/* fetch.c - libcurl GETs with our own redirect loop (fetch.h). */
#include "hub/fetch.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static void global_init(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

Status fetch_origin(const char *url, char *out, size_t n, Err *err) {
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *port = NULL;
    Status st = STATUS_OK;
    if (!u || curl_url_set(u, CURLUPART_URL, url, 0) ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) ||
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT))
        st = err_set(err, STATUS_INVALID, "'%.200s' is not a URL", url);
    else
        snprintf(out, n, "%s://%s:%s", scheme, host, port);
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
    return st;
}

typedef struct {
    /* JSON */
    char *buf;
    size_t len, cap;
    bool too_big;
    /* file */
    FILE *f;
    const char *path;
    int write_errno;
    uint64_t done, total;
    const FetchOpts *o;
    CURL *c; /* the transfer running */
} Sink;

static size_t on_body(char *p, size_t size, size_t nm, void *ctx) {
    Sink *s = ctx;
    size_t n = size * nm;
    if (s->f) {
        long code = 0;
        curl_easy_getinfo(s->c, CURLINFO_RESPONSE_CODE, &code);
        if (code < 200 || code >= 300)
            return n; /* a redirect's or an error's body is not the file */
        if (fwrite(p, 1, n, s->f) != n || fflush(s->f)) {
            s->write_errno = errno ? errno : EIO;
            return 0;
        }
        s->done += n;
        if (s->o->progress)
            s->o->progress(s->o->ctx, s->done, s->total);
        return n;
    }
    if (s->len + n > FETCH_MAX_JSON) {
        s->too_big = true;
        return 0;
    }
    if (s->len + n + 1 > s->cap) {
        size_t cap = (s->len + n + 1) * 2;
        char *b = realloc(s->buf, cap);
        if (!b)
            return 0;
        s->buf = b;
        s->cap = cap;
    }
    memcpy(s->buf + s->len, p, n);
    s->len += n;
    s->buf[s->len] = '\0';
    return n;
}

/* One GET (no redirects followed); *code the HTTP status, *next the
 * redirect target (owned) for 3xx. */
static Status get_once(const char *url, const FetchOpts *o, Sink *s, uint64_t from, long *code,
                       char **next, Err *err) {
    *next = NULL;
    CURL *c = curl_easy_init();
    if (!c)
        return err_set(err, STATUS_NOMEM, "cannot start libcurl");
    char origin[512] = "", auth[1024];
    struct curl_slist *h = NULL;
    if (o->token && o->token[0] && o->token_origin &&
        !fetch_origin(url, origin, sizeof origin, err) && !strcmp(origin, o->token_origin)) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", o->token);
        h = curl_slist_append(h, auth);
    }
    h = curl_slist_append(h, "User-Agent: cgpt-pull/1");
    char range[64];
    if (from > 0) {
        snprintf(range, sizeof range, "%llu-", (unsigned long long)from);
        curl_easy_setopt(c, CURLOPT_RANGE, range);
    }
    long t = o->timeout_s > 0 ? o->timeout_s : 30;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, t);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, t);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, s);
    s->c = c;
    if (!s->f)
        s->len = 0; /* only the last answer's body */
    CURLcode rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, code);
    Status st = STATUS_OK;
    if (rc == CURLE_WRITE_ERROR && s->write_errno)
        st = err_set(err, STATUS_IO, "writing %s: %s (is the disk full?)", s->path,
                     strerror(s->write_errno));
    else if (rc == CURLE_OPERATION_TIMEDOUT)
        st = err_set(err, STATUS_IO, "%.200s: timed out (no data for %ld s)", url, t);
    else if (rc == CURLE_WRITE_ERROR && s->too_big)
        st = err_set(err, STATUS_LIMIT, "%.200s: an answer over %u bytes", url, FETCH_MAX_JSON);
    else if (rc != CURLE_OK && !(*code >= 300 && *code < 400))
        st = err_set(err, STATUS_IO, "%.200s: %s", url, curl_easy_strerror(rc));
    else if (*code >= 300 && *code < 400) {
        char *loc = NULL;
        curl_easy_getinfo(c, CURLINFO_REDIRECT_URL, &loc);
        if (!loc)
            st = err_set(err, STATUS_FORMAT, "%.200s: a redirect (%ld) without a Location", url,
                         *code);
        else if (!(*next = strdup(loc)))
            st = err_set(err, STATUS_NOMEM, "out of memory");
    }
    s->c = NULL;
    curl_easy_cleanup(c);
    curl_slist_free_all(h);
    return st;
}

static Status http_error(const char *url, long code, const FetchOpts *o, Err *err) {
    if (code == 401 || code == 403)
        return err_set(err, STATUS_INVALID, "%.200s: HTTP %ld: %s", url, code,
                       o->token && o->token[0]
                           ? "the token was refused (is it allowed to read this repository?)"
                           : "this repository needs a token: set HF_TOKEN or pass --token (and "
                             "accept its terms on the website)");
    if (code == 404)
        return err_set(err, STATUS_NOT_FOUND, "%.200s: not found (HTTP 404)", url);
    if (code == 416)
        return err_set(err, STATUS_FORMAT, "%.200s: the server refused to resume (HTTP 416)", url);
    return err_set(err, STATUS_IO, "%.200s: HTTP %ld", url, code);
}

/* GET with redirects; the final answer's body went to s (a file sink
 * keeps only a 2xx body). */
static Status get(const char *url, const FetchOpts *o, Sink *s, uint64_t from, long *code,
                  Err *err) {
    pthread_once(&g_once, global_init);
    char *cur = strdup(url);
    if (!cur)
        return err_set(err, STATUS_NOMEM, "out of memory");
    Status st = STATUS_OK;
    for (int hop = 0;; hop++) {
        char *next = NULL;
        st = get_once(cur, o, s, from, code, &next, err);
        if (st || !next)
            break;
        if (hop == FETCH_MAX_REDIRECTS) {
            free(next);
            st = err_set(err, STATUS_LIMIT, "%.200s: more than %d redirects", url,
                         FETCH_MAX_REDIRECTS);
            break;
        }
        free(cur);
        cur = next;
    }
    if (!st && (*code < 200 || *code >= 300))
        st = http_error(cur, *code, o, err);
    free(cur);
    return st;
}

Status fetch_json(const char *url, const FetchOpts *o, json_t **out, Err *err) {
    *out = NULL;
    Sink s = {.o = o};
    long code = 0;
    Status st = get(url, o, &s, 0, &code, err);
    if (!st) {
        json_error_t je;
        *out = json_loadb(s.buf ? s.buf : "", s.len, 0, &je);
        if (!*out)
            st = err_set(err, STATUS_FORMAT, "%.200s: not JSON (%s at line %d)", url, je.text,
                         je.line);
    }
    free(s.buf);
    return st;
}

Status fetch_file(const char *url, const char *path, uint64_t total, const FetchOpts *o, Err *err) {
    struct stat sb;
    uint64_t from = stat(path, &sb) == 0 ? (uint64_t)sb.st_size : 0;
    if (total && from >= total)
        return STATUS_OK; /* already whole: the checksum decides */
    FILE *f = fopen(path, "ab");
    if (!f)
        return err_set(err, STATUS_IO, "cannot open %s: %s", path, strerror(errno));
    Sink s = {.f = f, .path = path, .done = from, .total = total, .o = o};
    long code = 0;
    Status st = get(url, o, &s, from, &code, err);
    if (!st && from > 0 && code != 206)
        st = err_set(err, STATUS_FORMAT, "%.200s: asked to resume at byte %llu, got HTTP %ld", url,
                     (unsigned long long)from, code);
    if (fclose(f) && !st)
        st = err_set(err, STATUS_IO, "writing %s: %s (is the disk full?)", path, strerror(errno));
    return st;
}
