/* http1.h - strict HTTP/1.1 request framing (RFC 9112) over bytes: the
 * request line, the header block, the request target and a chunked body.
 *
 * Pure functions over (ptr, len) slices: no I/O, no allocation. The
 * server's gate (gate.h) runs every byte a client sends through these
 * before libmicrohttpd sees a canonical copy, and fuzz/fuzz_http.c drives
 * exactly the same code.
 *
 * What is refused, and with which status (each with a message naming the
 * line, the field and the rule):
 *   400  a request line that is not METHOD SP TARGET SP HTTP/1.x; a method
 *        that is not a token; a field line without ':' or with a name that
 *        is not a token (whitespace before ':' included); obsolete line
 *        folding; a bare CR; control bytes in a field value; HTTP/1.1
 *        without exactly one Host; both Content-Length and
 *        Transfer-Encoding (request smuggling, §6.3); Content-Length that
 *        is not digits, or several that differ; Transfer-Encoding in an
 *        HTTP/1.0 request; a chunk size that is not hex or passes 64 bits;
 *        a bad chunk terminator; a request target with a bad %-escape, a
 *        decoded control byte, an encoded '/' or '\', a "." or ".."
 *        segment, an empty segment ("//") or invalid (overlong) UTF-8.
 *   413  a Content-Length, or a chunk size, that passes the body limit
 *        (announced sizes are refused before any of their bytes arrive).
 *   414  a request line longer than H1_MAX_LINE.
 *   431  a header block longer than H1_MAX_HEAD, or more than
 *        H1_MAX_FIELDS fields.
 *   501  a transfer coding other than "chunked" (RFC 9112 §6.1).
 *   505  an HTTP version other than 1.0 and 1.1.
 * Lines may end in CRLF or a bare LF (RFC 9112 §2.2 allows recipients to
 * accept LF; nginx does). */
#ifndef CGPT_SERVE_HTTP1_H
#define CGPT_SERVE_HTTP1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define H1_MAX_LINE 8192           /* request line, bytes (414 past it) */
#define H1_MAX_HEAD (64 * 1024)    /* request line + fields + empty line (431 past it) */
#define H1_MAX_FIELDS 128          /* field lines (431 past it) */
#define H1_MAX_CHUNK_LINE 256      /* a chunk-size line with its extensions */
#define H1_MAX_TRAILER (16 * 1024) /* the trailer section of a chunked body */

typedef struct {
    int status;        /* 400, 413, 414, 431, 501, 505 */
    char message[256]; /* what and where, for the error body */
} H1Error;

typedef struct {
    const char *name, *value; /* into the parsed buffer; value without surrounding OWS */
    size_t name_len, value_len;
} H1Field;

typedef enum { H1_BODY_NONE, H1_BODY_LENGTH, H1_BODY_CHUNKED } H1BodyKind;

typedef struct {
    const char *method, *target; /* into the parsed buffer */
    size_t method_len, target_len;
    int minor; /* HTTP/1.<minor>: 0 or 1 */
    H1Field fields[H1_MAX_FIELDS];
    int n_fields;
    size_t head_len; /* bytes of the head, the empty line included */
    H1BodyKind body;
    uint64_t content_length; /* H1_BODY_LENGTH */
    bool expect_continue;    /* Expect: 100-continue */
} H1Request;

/* Results of the incremental calls. */
enum { H1_MORE = 0, H1_DONE = 1, H1_BAD = -1 };

/* Parse the head at buf[0..len): H1_MORE when it is not complete yet (and
 * within the limits so far), H1_DONE with *req filled, or H1_BAD with
 * *e. 'max_body' is the body limit (413). Every view in *req points into
 * buf, valid while buf is. */
int h1_parse_head(const char *buf, size_t len, uint64_t max_body, H1Request *req, H1Error *e);

/* The field 'name' (case-insensitive) of a parsed head, or NULL; *count
 * (may be NULL) gets how many fields have that name. */
const H1Field *h1_field(const H1Request *req, const char *name, int *count);

/* Check a request target (origin-form "/path?query", "*", or absolute-form
 * "http://authority/path"): 0 or H1_BAD with *e (400). On success
 * *path_off is where the origin-form path starts in target (after the
 * authority of an absolute-form target). */
int h1_check_target(const char *target, size_t len, size_t *path_off, H1Error *e);

/* Cookie 'name' in a Cookie field value ("a=1; b=2", RFC 6265 section
 * 5.4): returns how many cookies of that name the value holds, and copies
 * the first one's value (surrounding quotes kept) into out[cap] (cut to
 * fit, always NUL-terminated; "" when none). */
int h1_cookie(const char *value, size_t len, const char *name, char *out, size_t cap);

/* A chunked body decoder (RFC 9112 §7.1). Zero it before the first call. */
typedef struct {
    int state;       /* private */
    uint64_t left;   /* data bytes left in the current chunk */
    uint64_t total;  /* data bytes decoded so far */
    size_t line_len; /* bytes of the size or trailer line so far */
    size_t trailer;  /* bytes of trailer section so far */
    bool ext;        /* in a chunk extension */
    bool seen_digit; /* of the current chunk size */
    bool after_size; /* whitespace or ';' came after the size */
} H1Chunked;

/* Decode from in[0..n): data bytes are appended to out (out_cap bytes of
 * room, out_len updated); *used gets the input bytes consumed. Returns
 * H1_MORE (all input used, body not complete), H1_DONE (the last chunk and
 * the trailer section ended at in[*used - 1]; bytes after belong to the
 * next request) or H1_BAD (e: 400, or 413 when the data would pass
 * 'max_body', said as soon as a chunk size announces it). out_cap must be
 * at least max_body - total. */
int h1_chunked_feed(H1Chunked *c, const char *in, size_t n, size_t *used, uint64_t max_body,
                    char *out, size_t out_cap, size_t *out_len, H1Error *e);

#endif
