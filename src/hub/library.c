/* library.c - the local model library (library.h). */
#include "hub/library.h"

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

Status lib_dir(const char *given, char *out, size_t n, Err *err) {
    int w;
    const char *home = getenv("CGPT_HOME"), *h = getenv("HOME");
    if (given)
        w = snprintf(out, n, "%s", given);
    else if (home && *home)
        w = snprintf(out, n, "%s/models", home);
    else if (h && *h)
        w = snprintf(out, n, "%s/.cache/cgpt/models", h);
    else
        return err_set(err, STATUS_INVALID,
                       "no models directory: set CGPT_HOME or pass --models-dir");
    if (w < 0 || (size_t)w >= n)
        return err_set(err, STATUS_LIMIT, "the models directory's path is too long");
    return STATUS_OK;
}

Status lib_mkdirs(const char *path, Err *err) {
    char p[PATH_MAX];
    if (snprintf(p, sizeof p, "%s", path) >= (int)sizeof p)
        return err_set(err, STATUS_LIMIT, "a path too long: %.100s...", path);
    for (char *s = p + 1;; s++) {
        if (*s == '/' || !*s) {
            char c = *s;
            *s = '\0';
            if (mkdir(p, 0755) && errno != EEXIST)
                return err_set(err, STATUS_IO, "cannot create %s: %s", p, strerror(errno));
            if (!c)
                break;
            *s = c;
        }
    }
    return STATUS_OK;
}

Status lib_write_json(const char *path, json_t *j, Err *err) {
    char tmp[PATH_MAX + 16];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    if (json_dump_file(j, tmp, JSON_INDENT(2) | JSON_SORT_KEYS))
        return err_set(err, STATUS_IO, "cannot write %s", tmp);
    if (rename(tmp, path)) {
        unlink(tmp);
        return err_set(err, STATUS_IO, "cannot rename %s: %s", tmp, strerror(errno));
    }
    return STATUS_OK;
}

/* Read one model's manifest in 'dir' into e; false when it is not one. */
bool lib_load(const char *dir, LibModel *e) {
    memset(e, 0, sizeof *e);
    char mp[PATH_MAX + 16];
    snprintf(mp, sizeof mp, "%s/manifest.json", dir);
    struct stat sb;
    if (stat(mp, &sb) || sb.st_size > LIB_MAX_MANIFEST)
        return false;
    json_t *j = json_load_file(mp, 0, NULL);
    const char *name = j ? json_string_value(json_object_get(j, "name")) : NULL;
    json_t *files = j ? json_object_get(j, "files") : NULL;
    const char *first = json_string_value(json_object_get(json_array_get(files, 0), "name"));
    if (!name || !first || strchr(first, '/')) {
        json_decref(j);
        return false;
    }
    snprintf(e->name, sizeof e->name, "%s", name);
    snprintf(e->dir, sizeof e->dir, "%s", dir);
    snprintf(e->path, sizeof e->path, "%.*s/%s", (int)(sizeof e->path / 2), dir, first);
    e->size = (uint64_t)json_integer_value(json_object_get(j, "size"));
    e->manifest = j;
    return true;
}

typedef struct {
    LibModel *m;
    int n, cap;
    LibProblemFn problem; /* lib_check: told of manifests that are not a model */
    void *ctx;
} List;

/* Why the manifest at 'mp' (which exists) is not a model. */
static const char *manifest_problem(const char *mp) {
    struct stat sb;
    if (stat(mp, &sb) || sb.st_size > LIB_MAX_MANIFEST)
        return "larger than " LIB_MAX_MANIFEST_TEXT " or unreadable";
    json_t *j = json_load_file(mp, 0, NULL);
    if (!j)
        return "not valid JSON";
    json_t *files = json_object_get(j, "files");
    const char *first = json_string_value(json_object_get(json_array_get(files, 0), "name"));
    const char *why = !json_string_value(json_object_get(j, "name")) ? "no \"name\""
                      : !first                                       ? "no \"files\" with a name"
                      : strchr(first, '/')                           ? "a file name with '/'"
                                                                     : NULL;
    json_decref(j);
    return why;
}

static void walk(const char *dir, int depth, List *l) {
    LibModel e;
    if (l->problem) { /* lib_check */
        char mp[PATH_MAX + 16];
        struct stat sb;
        snprintf(mp, sizeof mp, "%s/manifest.json", dir);
        if (!stat(mp, &sb)) {
            const char *why = manifest_problem(mp);
            if (why)
                l->problem(l->ctx, mp, why);
            return;
        }
    } else if (lib_load(dir, &e)) {
        if (l->n == l->cap) {
            int cap = l->cap ? l->cap * 2 : 16;
            LibModel *p = realloc(l->m, sizeof *p * (size_t)cap);
            if (!p) {
                json_decref(e.manifest);
                return;
            }
            l->m = p;
            l->cap = cap;
        }
        if (l->n < LIB_MAX_MODELS)
            l->m[l->n++] = e;
        else
            json_decref(e.manifest);
        return;
    }
    if (depth == 0)
        return;
    DIR *d = opendir(dir);
    if (!d)
        return;
    for (struct dirent *de; (de = readdir(d));) {
        if (de->d_name[0] == '.')
            continue;
        char sub[PATH_MAX];
        if (snprintf(sub, sizeof sub, "%s/%s", dir, de->d_name) >= (int)sizeof sub)
            continue;
        struct stat sb;
        if (!lstat(sub, &sb) && S_ISDIR(sb.st_mode))
            walk(sub, depth - 1, l);
    }
    closedir(d);
}

static int by_name(const void *a, const void *b) {
    return strcmp(((const LibModel *)a)->name, ((const LibModel *)b)->name);
}

void lib_check(const char *dir, LibProblemFn fn, void *ctx) {
    List l = {.problem = fn, .ctx = ctx};
    walk(dir, 3, &l);
}

Status lib_list(const char *dir, LibModel **out, int *n, Err *err) {
    List l = {0};
    walk(dir, 3, &l); /* OWNER/REPO/QUANT or url/NAME */
    if (l.n)
        qsort(l.m, (size_t)l.n, sizeof *l.m, by_name);
    *out = l.m;
    *n = l.n;
    return STATUS_OK;
}

void lib_models_free(LibModel *m, int n) {
    for (int i = 0; i < n; i++)
        json_decref(m[i].manifest);
    free(m);
}

Status lib_find(const char *dir, const char *name, LibModel *e, Err *err) {
    memset(e, 0, sizeof *e);
    LibModel *m;
    int n;
    Status st = lib_list(dir, &m, &n, err);
    if (st)
        return st;
    int hit = -1, repo_hits = 0;
    size_t nl = strlen(name);
    for (int i = 0; i < n && hit < 0; i++)
        if (!strcasecmp(m[i].name, name))
            hit = i;
    if (hit < 0 && !strchr(name, ':')) /* OWNER/REPO: its only quant */
        for (int i = 0; i < n; i++)
            if (!strncasecmp(m[i].name, name, nl) && m[i].name[nl] == ':') {
                repo_hits++;
                hit = i;
            }
    if (repo_hits > 1) {
        st = err_set(err, STATUS_INVALID, "'%s' has %d quants here: name one (cgpt list)", name,
                     repo_hits);
    } else if (hit < 0) {
        st = err_set(err, STATUS_NOT_FOUND,
                     "no model '%s' in %s (cgpt list shows them; cgpt pull "
                     "gets one)",
                     name, dir);
    } else {
        *e = m[hit];
        m[hit].manifest = NULL;
    }
    lib_models_free(m, n);
    return st;
}

Status lib_remove(const LibModel *e, Err *err) {
    DIR *d = opendir(e->dir);
    if (!d)
        return err_set(err, STATUS_IO, "cannot open %s: %s", e->dir, strerror(errno));
    Status st = STATUS_OK;
    for (struct dirent *de; (de = readdir(d));) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        char p[PATH_MAX];
        snprintf(p, sizeof p, "%.*s/%s", PATH_MAX / 2, e->dir, de->d_name);
        if (unlink(p) && !st)
            st = err_set(err, STATUS_IO, "cannot remove %s: %s", p, strerror(errno));
    }
    closedir(d);
    if (!st && rmdir(e->dir))
        st = err_set(err, STATUS_IO, "cannot remove %s: %s", e->dir, strerror(errno));
    return st;
}

bool lib_name_like(const char *s) {
    size_t n = strlen(s);
    return n > 0 && s[0] != '/' && s[0] != '.' && !(n >= 5 && !strcasecmp(s + n - 5, ".gguf"));
}
