/* pull.c - fetch a model into the library (pull.h). */
#include "hub/pull.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "hub/fetch.h"
#include "hub/library.h"

typedef HubEntry Entry;

static Status file_sha256(const char *path, char hex[65], Err *err) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return err_set(err, STATUS_IO, "cannot open %s: %s", path, strerror(errno));
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    static unsigned char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        crypto_hash_sha256_update(&st, buf, n);
    int bad = ferror(f);
    fclose(f);
    if (bad)
        return err_set(err, STATUS_IO, "reading %s failed", path);
    unsigned char h[32];
    crypto_hash_sha256_final(&st, h);
    sodium_bin2hex(hex, 65, h, 32);
    return STATUS_OK;
}

static const char *base_of(const char *p) {
    const char *b = strrchr(p, '/');
    return b ? b + 1 : p;
}

/* Remove what a failed pull left in 'dir' (all of it: no manifest was
 * written) and the directory. */
static void discard(const char *dir) {
    DIR *d = opendir(dir);
    if (!d)
        return;
    for (struct dirent *de; (de = readdir(d));) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        char p[PATH_MAX];
        snprintf(p, sizeof p, "%.*s/%s", PATH_MAX / 2, dir, de->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

/* The repository's files: the revision, then the tree. */
static Status listing(const HubRef *r, const PullOpts *o, const FetchOpts *fo, char rev[64],
                      Entry **out, int *n_out, Err *err) {
    char url[HUB_MAX_URL + 512];
    snprintf(url, sizeof url, "%s/api/models/%s/%s", o->endpoint, r->owner, r->repo);
    json_t *info;
    Status st = fetch_json(url, fo, &info, err);
    if (st == STATUS_NOT_FOUND)
        return err_set(err, STATUS_NOT_FOUND, "repository %s/%s not found at %s", r->owner, r->repo,
                       o->endpoint);
    if (st)
        return st;
    const char *sha = json_string_value(json_object_get(info, "sha"));
    bool hex = sha && strlen(sha) >= 7 && strlen(sha) <= 40 &&
               strspn(sha, "0123456789abcdef") == strlen(sha);
    snprintf(rev, 64, "%s", hex ? sha : "main");
    json_decref(info);
    snprintf(url, sizeof url, "%s/api/models/%s/%s/tree/%s?recursive=true", o->endpoint, r->owner,
             r->repo, rev);
    json_t *tree;
    if ((st = fetch_json(url, fo, &tree, err)))
        return st;
    st = hub_tree_parse(tree, out, n_out, err);
    json_decref(tree);
    if (st)
        err_prefix(err, "%s", url);
    return st;
}

/* Fetch one file into dir (resuming), check its hash, rename it in. */
static Status fetch_one(const char *url, const char *dir, const Entry *f, const FetchOpts *fo,
                        json_t *files, Err *err) {
    char part[PATH_MAX], final[PATH_MAX], got[65];
    snprintf(part, sizeof part, "%.*s/%s.partial", PATH_MAX / 2, dir, base_of(f->path));
    snprintf(final, sizeof final, "%.*s/%s", PATH_MAX / 2, dir, base_of(f->path));
    Status st = fetch_file(url, part, f->size, fo, err);
    if (st)
        return st;
    if ((st = file_sha256(part, got, err)))
        return st;
    struct stat sb;
    uint64_t size = stat(part, &sb) == 0 ? (uint64_t)sb.st_size : 0;
    if ((f->sha256[0] && strcmp(got, f->sha256)) || (f->size && size != f->size)) {
        unlink(part);
        return err_set(err, STATUS_FORMAT,
                       "checksum mismatch for %s: expected sha256 %s (%llu bytes), got %s (%llu "
                       "bytes); the file is removed",
                       f->path, f->sha256[0] ? f->sha256 : "-", (unsigned long long)f->size, got,
                       (unsigned long long)size);
    }
    if (rename(part, final))
        return err_set(err, STATUS_IO, "cannot rename %s: %s", part, strerror(errno));
    json_array_append_new(files, json_pack("{s:s, s:I, s:s}", "name", base_of(f->path), "size",
                                           (json_int_t)size, "sha256", got));
    return STATUS_OK;
}

static Status room_for(const char *dir, uint64_t need, Err *err) {
    struct statvfs v;
    if (statvfs(dir, &v))
        return STATUS_OK; /* cannot tell: the writes will */
    uint64_t have = (uint64_t)v.f_bavail * v.f_frsize;
    if (have < need)
        return err_set(err, STATUS_LIMIT,
                       "not enough disk space in %s: %llu bytes to fetch, %llu free", dir,
                       (unsigned long long)need, (unsigned long long)have);
    return STATUS_OK;
}

static uint64_t partial_size(const char *dir, const char *path) {
    char part[PATH_MAX];
    snprintf(part, sizeof part, "%.*s/%s.partial", PATH_MAX / 2, dir, base_of(path));
    struct stat sb;
    return stat(part, &sb) == 0 ? (uint64_t)sb.st_size : 0;
}

typedef struct {
    const PullOpts *o;
    const char *file;
} Prog;

static void on_progress(void *ctx, uint64_t done, uint64_t total) {
    Prog *p = ctx;
    if (p->o->progress)
        p->o->progress(p->o->ctx, p->file, done, total);
}

Status hub_pull(const HubRef *r, const PullOpts *o, PullResult *out, Err *err) {
    memset(out, 0, sizeof *out);
    Prog prog = {.o = o};
    char origin[512] = "";
    if (o->token && o->token[0] && fetch_origin(o->endpoint, origin, sizeof origin, err))
        return err_prefix(err, "HF_ENDPOINT");
    FetchOpts fo = {.token = o->token,
                    .token_origin = origin,
                    .timeout_s = o->timeout_s,
                    .progress = on_progress,
                    .ctx = &prog};
    Entry *files = NULL;
    int n_files = 0, pick[64], n_pick = 0;
    char rev[64] = "", quant[HUB_MAX_QUANT + 1] = "", dir[PATH_MAX], url[HUB_MAX_URL + 1024];
    Status st;
    if (r->kind == HUB_REF_URL) {
        const char *b = base_of(r->url);
        size_t bl = strcspn(b, "?#");
        if (bl <= 5 || bl > 200)
            return err_set(err, STATUS_INVALID, "'%s': no file name in the URL", r->url);
        snprintf(out->name, sizeof out->name, "%.*s", (int)(bl - 5), b);
        files = calloc(1, sizeof *files);
        if (!files || !(files[0].path = strndup(b, bl))) {
            free(files);
            return err_set(err, STATUS_NOMEM, "out of memory");
        }
        n_files = 1;
        pick[n_pick++] = 0;
        snprintf(dir, sizeof dir, "%s/url/%s", o->models_dir, out->name);
    } else {
        if ((st = listing(r, o, &fo, rev, &files, &n_files, err)))
            return st;
        HubListed *l = calloc((size_t)n_files + 1, sizeof *l);
        if (!l) {
            hub_entries_free(files, n_files);
            return err_set(err, STATUS_NOMEM, "out of memory");
        }
        for (int i = 0; i < n_files; i++)
            l[i] = (HubListed){.path = files[i].path, .size = files[i].size};
        char repo[2 * HUB_MAX_PART + 2];
        snprintf(repo, sizeof repo, "%s/%s", r->owner, r->repo);
        st = hub_pick(l, n_files, r->quant, repo, pick, &n_pick, quant, err);
        free(l);
        if (st) {
            hub_entries_free(files, n_files);
            return st;
        }
        if (quant[0])
            snprintf(out->name, sizeof out->name, "%s/%s:%s", r->owner, r->repo, quant);
        else
            snprintf(out->name, sizeof out->name, "%s/%s", r->owner, r->repo);
        snprintf(dir, sizeof dir, "%s/%s/%s/%s", o->models_dir, r->owner, r->repo,
                 quant[0] ? quant : "model");
    }
    if ((st = lib_mkdirs(dir, err))) {
        hub_entries_free(files, n_files);
        return st;
    }
    /* one pull of this model at a time */
    char lock[PATH_MAX + 8];
    snprintf(lock, sizeof lock, "%s/.lock", dir);
    int lfd = open(lock, O_CREAT | O_RDWR | O_CLOEXEC, 0644);
    if (lfd < 0 || flock(lfd, LOCK_EX)) {
        st = err_set(err, STATUS_IO, "cannot lock %s: %s", lock, strerror(errno));
        goto done;
    }
    LibModel have;
    if (lib_load(dir, &have)) { /* another pull finished it */
        snprintf(out->path, sizeof out->path, "%s", have.path);
        out->size = have.size;
        out->already = true;
        json_decref(have.manifest);
        goto done;
    }
    uint64_t need = 0;
    for (int k = 0; k < n_pick; k++) {
        const Entry *f = &files[pick[k]];
        uint64_t p = partial_size(dir, f->path);
        need += f->size > p ? f->size - p : 0;
    }
    if ((st = room_for(dir, need, err)))
        goto done;
    json_t *jf = json_array();
    for (int k = 0; k < n_pick && !st; k++) {
        const Entry *f = &files[pick[k]];
        prog.file = base_of(f->path);
        if (r->kind == HUB_REF_URL)
            snprintf(url, sizeof url, "%s", r->url);
        else
            snprintf(url, sizeof url, "%s/%s/%s/resolve/%s/%s", o->endpoint, r->owner, r->repo, rev,
                     f->path);
        st = fetch_one(url, dir, f, &fo, jf, err);
        if (st && err->status == STATUS_FORMAT && strstr(err->msg, "checksum mismatch"))
            discard(dir);
    }
    if (!st) {
        uint64_t size = 0;
        size_t i;
        json_t *it;
        json_array_foreach(jf, i, it) size +=
            (uint64_t)json_integer_value(json_object_get(it, "size"));
        json_t *m =
            json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:O, s:I, s:I}", "name", out->name, "source",
                      r->kind == HUB_REF_URL ? "url" : "hf", "endpoint",
                      r->kind == HUB_REF_URL ? r->url : o->endpoint, "repo",
                      r->kind == HUB_REF_URL ? "" : r->owner, "revision", rev, "quant", quant,
                      "files", jf, "size", (json_int_t)size, "pulled_at", (json_int_t)time(NULL));
        if (m && r->kind == HUB_REF_HF) {
            char repo[2 * HUB_MAX_PART + 2];
            snprintf(repo, sizeof repo, "%s/%s", r->owner, r->repo);
            json_object_set_new(m, "repo", json_string(repo));
        }
        char mp[PATH_MAX + 16];
        snprintf(mp, sizeof mp, "%s/manifest.json", dir);
        st = m ? lib_write_json(mp, m, err) : err_set(err, STATUS_NOMEM, "out of memory");
        json_decref(m);
        snprintf(out->path, sizeof out->path, "%.*s/%s", PATH_MAX / 2, dir,
                 base_of(files[pick[0]].path));
        out->size = size;
    }
    json_decref(jf);
done:
    if (lfd >= 0)
        close(lfd);
    hub_entries_free(files, n_files);
    return st;
}
