/* fetch.h - HTTP GETs for `cgpt pull`, with libcurl: a JSON document, or a
 * file appended to (resumed with Range) on disk.
 *
 * Redirects are followed here, not by libcurl (at most FETCH_MAX_REDIRECTS),
 * so the token goes only where it belongs: `Authorization: Bearer TOKEN` is
 * sent to URLs of the token's origin (scheme, host and port of the
 * endpoint), never to the storage host a download is redirected to (its
 * pre-signed URLs reject it, and it is not theirs to see).
 *
 * A transfer that moves no byte for timeout_s seconds fails with "timed
 * out". HTTP errors keep their status: 401/403 STATUS_INVALID ("needs a
 * token" or "refused"), 404 STATUS_NOT_FOUND, others STATUS_IO. A write
 * that fails (disk full, file size limit) is STATUS_IO naming the file. */
#ifndef CGPT_HUB_FETCH_H
#define CGPT_HUB_FETCH_H

#include <stdint.h>

#include <jansson.h>

#include "core/err.h"

#define FETCH_MAX_REDIRECTS 10
#define FETCH_MAX_JSON (64u << 20) /* bytes of a JSON answer */

typedef struct {
    const char *token;        /* may be NULL */
    const char *token_origin; /* "http://127.0.0.1:8000": where the token may go */
    long timeout_s;           /* stall limit (and connect limit) */
    /* called as bytes arrive (done counts the resumed part too); may be NULL */
    void (*progress)(void *ctx, uint64_t done, uint64_t total);
    void *ctx;
} FetchOpts;

/* GET url, parse the body as JSON (owned). */
Status fetch_json(const char *url, const FetchOpts *o, json_t **out, Err *err);

/* GET url into 'path', appending from its current size (a Range request
 * when it is not empty); 'total' is the size expected (0: unknown). */
Status fetch_file(const char *url, const char *path, uint64_t total, const FetchOpts *o, Err *err);

/* "scheme://host:port" of url into out (the token's origin). */
Status fetch_origin(const char *url, char *out, size_t n, Err *err);

#endif
