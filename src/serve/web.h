/* web.h - the page's files: a table of named assets (built from web/ by
 * the Makefile and compiled into the binary), served by exact name only,
 * with their MIME type, caching and the page's security headers.
 *
 * A request path is never joined to a directory: "/" and "/c/<id>" (the
 * page's own routes) are index.html; "/assets/<name>" is looked up in the
 * table by exact name, and anything else is not a page path. With a
 * --web-dir (for development) the files are read from that directory at
 * each request: index.html, and an asset only when a listing of
 * DIR/assets has an entry of exactly the requested name (the request's
 * text is compared, never joined into a path).
 *
 * Headers on every page and /api response (web_security_headers): a strict
 * Content-Security-Policy (scripts and styles only from the page's own
 * files; images only from itself or data: URLs; connections only to
 * itself; no framing, no plugins, no <base>), X-Content-Type-Options:
 * nosniff, Referrer-Policy: no-referrer, X-Frame-Options: DENY. */
#ifndef CGPT_SERVE_WEB_H
#define CGPT_SERVE_WEB_H

#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct {
    const char *name; /* "/index.html", "/assets/app-3f2a.js" */
    const char *mime; /* "text/html; charset=utf-8" */
    const unsigned char *data;
    size_t size;
    const char *etag; /* quoted content hash */
} WebAsset;

typedef struct {
    const WebAsset *assets; /* the table (borrowed, static) */
    int n_assets;
    const char *dir; /* NULL: serve the table's bytes; else read DIR/<name> */
} WebFiles;

/* Is 'path' one of the page's paths ("/", "/c/<32 hex>", "/assets/...")? */
bool web_is_page_path(const char *path);

/* The response for GET/HEAD 'path' (web_is_page_path), or NULL when there
 * is no such file (404): status in *status (200, or 304 when 'if_none_match'
 * matches the ETag). Cache-Control: immutable for /assets/ (their names
 * carry a content hash), no-cache for index.html. The security headers are
 * the caller's to add. */
struct MHD_Response *web_response(const WebFiles *w, const char *path, const char *if_none_match,
                                  int *status);

/* The security headers, added to 'r'. */
void web_security_headers(struct MHD_Response *r);

#endif
