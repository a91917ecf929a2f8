/* web.c - the page's files and headers (web.h). */
#include "serve/web.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WEB_MAX_FILE (16u << 20) /* bytes of one file read from --web-dir */

static const char CSP[] = "default-src 'none'; script-src 'self'; style-src 'self'; "
                          "img-src 'self' data:; font-src 'self'; connect-src 'self'; "
                          "manifest-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
                          "form-action 'self'; object-src 'none'";

void web_security_headers(struct MHD_Response *r) {
    MHD_add_response_header(r, "Content-Security-Policy", CSP);
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
    MHD_add_response_header(r, "X-Frame-Options", "DENY");
    MHD_add_response_header(r, "Cross-Origin-Opener-Policy", "same-origin");
}

static bool is_hex32(const char *s) {
    size_t n = 0;
    for (; s[n]; n++)
        if (!((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f')))
            return false;
    return n == 32;
}

bool web_is_page_path(const char *path) {
    return !strcmp(path, "/") || (!strncmp(path, "/c/", 3) && is_hex32(path + 3)) ||
           !strncmp(path, "/assets/", 8) || !strcmp(path, "/favicon.ico");
}

static const WebAsset *find(const WebFiles *w, const char *name) {
    for (int i = 0; i < w->n_assets; i++)
        if (!strcmp(w->assets[i].name, name))
            return &w->assets[i];
    return NULL;
}

static const char *mime_of(const char *name) {
    const char *dot = strrchr(name, '.');
    if (!dot)
        return "application/octet-stream";
    if (!strcmp(dot, ".js"))
        return "text/javascript; charset=utf-8";
    if (!strcmp(dot, ".css"))
        return "text/css; charset=utf-8";
    if (!strcmp(dot, ".svg"))
        return "image/svg+xml";
    if (!strcmp(dot, ".html"))
        return "text/html; charset=utf-8";
    return "application/octet-stream";
}

/* For --web-dir: the entry of DIR/assets whose name equals 'want' exactly,
 * found by listing the directory (the request's text is compared, never
 * joined into a path). Returns the entry's name in out[cap]. */
static bool find_dev_asset(const char *dir, const char *want, char *out, size_t cap) {
    char path[4096];
    if (snprintf(path, sizeof path, "%s/assets", dir) >= (int)sizeof path)
        return false;
    DIR *d = opendir(path);
    struct dirent *e;
    bool found = false;
    while (d && !found && (e = readdir(d)))
        if (e->d_name[0] != '.' && !strcmp(e->d_name, want) && strlen(e->d_name) + 9 < cap) {
            snprintf(out, cap, "/assets/%s", e->d_name);
            found = true;
        }
    if (d)
        closedir(d);
    return found;
}

/* DIR + a name of ours ("/index.html", "/assets/<listed entry>"). */
static char *read_dev_file(const char *dir, const char *name, size_t *len) {
    char path[4096];
    int n = snprintf(path, sizeof path, "%s%s", dir, name);
    if (n < 0 || (size_t)n >= sizeof path)
        return NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = malloc(WEB_MAX_FILE);
    size_t got = buf ? fread(buf, 1, WEB_MAX_FILE, f) : 0;
    fclose(f);
    if (!buf || got == WEB_MAX_FILE) {
        free(buf);
        return NULL;
    }
    *len = got;
    return buf;
}

/* --web-dir: the same routes, the files read from the directory at each
 * request (a rebuilt bundle has new names: they are found by listing). */
static struct MHD_Response *dev_response(const WebFiles *w, const char *path, bool page) {
    char name[320];
    if (page)
        snprintf(name, sizeof name, "/index.html");
    else if (strncmp(path, "/assets/", 8) || !find_dev_asset(w->dir, path + 8, name, sizeof name))
        return NULL;
    size_t len = 0;
    char *buf = read_dev_file(w->dir, name, &len);
    if (!buf)
        return NULL;
    struct MHD_Response *r = MHD_create_response_from_buffer(len, buf, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(buf);
        return NULL;
    }
    MHD_add_response_header(r, "Content-Type", mime_of(name));
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    return r;
}

struct MHD_Response *web_response(const WebFiles *w, const char *path, const char *if_none_match,
                                  int *status) {
    bool page = !strcmp(path, "/") || !strncmp(path, "/c/", 3);
    *status = 200;
    if (w->dir)
        return dev_response(w, path, page);
    const WebAsset *a = find(w, page ? "/index.html" : path);
    if (!a)
        return NULL;
    struct MHD_Response *r;
    if (if_none_match && !strcmp(if_none_match, a->etag)) {
        *status = 304;
        r = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
    } else {
        r = MHD_create_response_from_buffer(a->size, (void *)a->data, MHD_RESPMEM_PERSISTENT);
    }
    if (!r)
        return NULL;
    MHD_add_response_header(r, "Content-Type", a->mime);
    MHD_add_response_header(r, "ETag", a->etag);
    bool immutable = !strncmp(a->name, "/assets/", 8);
    MHD_add_response_header(r, "Cache-Control",
                            immutable ? "public, max-age=31536000, immutable" : "no-cache");
    return r; /* the caller adds web_security_headers (srv_respond does for the page) */
}
