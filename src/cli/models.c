/* models.c - the model library's commands (hub/): `cgpt pull REF`, `cgpt
 * list`, `cgpt rm NAME`, `cgpt show NAME` (docs/MODELS.md).
 *
 * pull prints its progress on stderr (a bar on a terminal, a line every
 * 10% otherwise) and, on success, one line on stdout:
 *     pulled NAME (SIZE bytes) -> PATH
 * list prints a table of the library and the built-in model, or with
 * --json one object a line (name, size, path, arch, type, params, ctx). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "cli/common.h"
#include "core/perf.h"
#include "gguf/gguf.h"
#include "hub/library.h"
#include "hub/pull.h"
#include "tensor/dtype.h"

enum { O_MODELS_DIR = 1, O_TOKEN, O_TIMEOUT, O_JSON };

#define OPT_MODELS_DIR                                                                             \
    {                                                                                              \
        O_MODELS_DIR, "--models-dir", "DIR",                                                       \
            "the library (default $CGPT_HOME/models, else ~/.cache/cgpt/models)"                   \
    }

static const ArgOpt PULL_OPTS[] = {
    OPT_MODELS_DIR,
    {O_TOKEN, "--token", "TOKEN",
     "a Hugging Face token for gated or private repositories (default $HF_TOKEN)"},
    {O_TIMEOUT, "--timeout", "SECONDS", "give up when no data comes for this long (default 60)"},
    {0},
};
static const ArgOpt LIST_OPTS[] = {
    OPT_MODELS_DIR, {O_JSON, "--json", NULL, "one JSON object a line"}, {0}};
static const ArgOpt NAME_OPTS[] = {OPT_MODELS_DIR, {0}};

typedef struct {
    bool tty;
    double last_t;
    int last_pct;
    double t0;
} Bar;

static void on_progress(void *ctx, const char *file, uint64_t done, uint64_t total) {
    Bar *b = ctx;
    double now = perf_now();
    int pct = total ? (int)(done * 100 / total) : -1;
    if (b->tty) {
        if (now - b->last_t < 0.1 && done != total)
            return;
        double rate = (now - b->t0) > 0 ? (double)done / (now - b->t0) : 0;
        double eta = rate > 0 && total > done ? (double)(total - done) / rate : 0;
        fprintf(stderr, "\r%-40.40s %3d%% %8.1f MB / %.1f MB  %6.1f MB/s  ETA %4.0fs ", file,
                pct < 0 ? 0 : pct, (double)done / 1e6, (double)total / 1e6, rate / 1e6, eta);
        if (done == total)
            fputc('\n', stderr);
    } else {
        if (pct < 0 || pct / 10 == b->last_pct / 10)
            return;
        fprintf(stderr, "cgpt pull: %s: %d%% (%.1f of %.1f MB)\n", file, pct, (double)done / 1e6,
                (double)total / 1e6);
        b->last_pct = pct;
    }
    b->last_t = now;
}

static int cmd_pull(int argc, char **argv) {
    const char *ref = NULL, *dir_opt = NULL, *token = getenv("HF_TOKEN"), *v;
    long timeout = 60;
    Err err = {0};
    Args a = args_start(argc, argv, 1);
    for (int id; (id = cli_next(&a, &CLI_PULL, &v, &err)) != ARG_END;) {
        switch (id) {
        case ARG_ERROR: return cli_fail("pull", &err);
        case ARG_HELP: cli_help(&CLI_PULL); return 0;
        case ARG_POSITIONAL:
            if (ref) {
                err_set(&err, STATUS_INVALID, "one model at a time ('%s' and '%s')", ref, v);
                return cli_fail("pull", &err);
            }
            ref = v;
            break;
        case O_MODELS_DIR: dir_opt = v; break;
        case O_TOKEN: token = v; break;
        case O_TIMEOUT:
            if (args_int("--timeout", v, 1, 86400, &timeout, &err))
                return cli_fail("pull", &err);
            break;
        }
    }
    if (!ref) {
        err_set(&err, STATUS_INVALID, "which model? cgpt pull OWNER/REPO[:QUANT] (see --help)");
        return cli_fail("pull", &err);
    }
    HubRef r;
    char dir[PATH_MAX];
    if (hub_ref_parse(ref, &r, &err) || lib_dir(dir_opt, dir, sizeof dir, &err))
        return cli_fail("pull", &err);
    const char *ep = getenv("HF_ENDPOINT");
    char endpoint[HUB_MAX_URL + 1];
    snprintf(endpoint, sizeof endpoint, "%s", ep && *ep ? ep : HUB_DEFAULT_ENDPOINT);
    size_t el = strlen(endpoint);
    while (el > 0 && endpoint[el - 1] == '/')
        endpoint[--el] = '\0';
    Bar bar = {.tty = isatty(2), .last_pct = -10, .t0 = perf_now()};
    PullOpts o = {.models_dir = dir,
                  .endpoint = endpoint,
                  .token = token,
                  .timeout_s = timeout,
                  .progress = on_progress,
                  .ctx = &bar};
    PullResult res;
    if (hub_pull(&r, &o, &res, &err))
        return cli_fail("pull", &err);
    printf("pulled %s (%llu bytes) -> %s\n", res.name, (unsigned long long)res.size, res.path);
    return 0;
}

/* Count a GGUF file's tensors into params and by_type; false (o's "error"
 * set) when it cannot be read. */
static bool count_tensors(const char *path, json_t *o, uint64_t *params, uint64_t *by_type) {
    GGUF g = {0};
    Err err = {0};
    if (gguf_open(&g, path, &err)) {
        json_object_set_new(o, "error", json_string(err.msg));
        return false;
    }
    for (uint64_t i = 0; i < g.n_tensors; i++) {
        *params += g.tensors[i].n_elements;
        if ((unsigned)g.tensors[i].type < DTYPE_COUNT)
            by_type[g.tensors[i].type] += g.tensors[i].n_elements;
    }
    gguf_close(&g);
    return true;
}

/* What list shows of a model: architecture and context (from its first
 * file), the commonest weight type and the parameters (over all its files:
 * a split model's parts, from the manifest in 'dir'; NULL: one file). */
static void describe(const char *path, const char *dir, json_t *manifest, json_t *o) {
    GGUF g = {0};
    Err err = {0};
    if (gguf_open(&g, path, &err)) {
        json_object_set_new(o, "error", json_string(err.msg));
        return;
    }
    GGUFStr arch = {0};
    char key[160];
    if (!gguf_get_str(&g, "general.architecture", false, &arch, &err) && arch.len) {
        json_object_set_new(o, "arch", json_stringn((const char *)arch.ptr, arch.len));
        snprintf(key, sizeof key, "%.*s.context_length", (int)arch.len, (const char *)arch.ptr);
        const GGUFKV *kv = gguf_find_key(&g, key);
        if (kv && kv->type != GGUF_TYPE_ARRAY)
            json_object_set_new(o, "ctx", json_integer((json_int_t)kv->val.u));
    }
    uint64_t params = 0, by_type[DTYPE_COUNT] = {0};
    for (uint64_t i = 0; i < g.n_tensors; i++) {
        params += g.tensors[i].n_elements;
        if ((unsigned)g.tensors[i].type < DTYPE_COUNT)
            by_type[g.tensors[i].type] += g.tensors[i].n_elements;
    }
    json_t *files = manifest ? json_object_get(manifest, "files") : NULL;
    for (size_t k = 1; dir && k < json_array_size(files); k++) { /* a split model's other parts */
        const char *name = json_string_value(json_object_get(json_array_get(files, k), "name"));
        char part[PATH_MAX + 256];
        if (!name || strchr(name, '/') ||
            snprintf(part, sizeof part, "%s/%s", dir, name) >= (int)sizeof part ||
            !count_tensors(part, o, &params, by_type))
            break;
    }
    int top = 0;
    for (int t = 1; t < DTYPE_COUNT; t++)
        if (by_type[t] > by_type[top])
            top = t;
    json_object_set_new(o, "params", json_integer((json_int_t)params));
    const DTypeInfo *ti = dtype_info(top);
    if (g.n_tensors && ti)
        json_object_set_new(o, "type", json_string(ti->name));
    gguf_close(&g);
}

static void warn_manifest(void *ctx, const char *manifest, const char *why) {
    (void)ctx;
    fprintf(stderr, "cgpt list: %s: %s; that model is left out (cgpt pull it again)\n", manifest,
            why);
}

static int cmd_list(int argc, char **argv) {
    const char *dir_opt = NULL, *v;
    bool as_json = false;
    Err err = {0};
    Args a = args_start(argc, argv, 1);
    for (int id; (id = cli_next(&a, &CLI_LIST, &v, &err)) != ARG_END;) {
        switch (id) {
        case ARG_ERROR: return cli_fail("list", &err);
        case ARG_HELP: cli_help(&CLI_LIST); return 0;
        case ARG_POSITIONAL:
            err_set(&err, STATUS_INVALID, "unexpected argument '%s'", v);
            return cli_fail("list", &err);
        case O_MODELS_DIR: dir_opt = v; break;
        case O_JSON: as_json = true; break;
        }
    }
    char dir[PATH_MAX];
    LibModel *m = NULL;
    int n = 0;
    if (lib_dir(dir_opt, dir, sizeof dir, &err) || lib_list(dir, &m, &n, &err))
        return cli_fail("list", &err);
    lib_check(dir, warn_manifest, NULL);
    json_t *rows = json_array();
    const char *builtin = NULL;
    Err e2 = {0};
    if (!cli_model_path(NULL, &builtin, &e2) && builtin) {
        json_t *o =
            json_pack("{s:s, s:s, s:b}", "name", "cgpt-mini", "path", builtin, "builtin", 1);
        struct stat sb;
        if (stat(builtin, &sb) == 0)
            json_object_set_new(o, "size", json_integer((json_int_t)sb.st_size));
        json_array_append_new(rows, o);
    }
    for (int i = 0; i < n; i++)
        json_array_append_new(rows, json_pack("{s:s, s:s, s:I, s:i}", "name", m[i].name, "path",
                                              m[i].path, "size", (json_int_t)m[i].size, "_lib", i));
    size_t i;
    json_t *o;
    if (!as_json)
        printf("%-44s %10s  %-8s %-7s %9s %6s\n", "NAME", "SIZE", "ARCH", "TYPE", "PARAMS", "CTX");
    json_array_foreach(rows, i, o) {
        json_t *li = json_object_get(o, "_lib");
        const LibModel *lm = li ? &m[json_integer_value(li)] : NULL;
        json_object_del(o, "_lib");
        describe(json_string_value(json_object_get(o, "path")), lm ? lm->dir : NULL,
                 lm ? lm->manifest : NULL, o);
        if (as_json) {
            char *s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
            if (s)
                puts(s);
            free(s);
        } else {
            const char *arch = json_string_value(json_object_get(o, "arch"));
            const char *type = json_string_value(json_object_get(o, "type"));
            printf("%-44s %8.1fMB  %-8s %-7s %8.1fM %6lld\n",
                   json_string_value(json_object_get(o, "name")),
                   (double)json_integer_value(json_object_get(o, "size")) / 1e6, arch ? arch : "?",
                   type ? type : "?",
                   (double)json_integer_value(json_object_get(o, "params")) / 1e6,
                   (long long)json_integer_value(json_object_get(o, "ctx")));
        }
    }
    json_decref(rows);
    lib_models_free(m, n);
    return 0;
}

/* rm and show: the one model NAME names. */
static int one_model(const CliCommand *cmd, int argc, char **argv, LibModel *e) {
    const char *dir_opt = NULL, *name = NULL, *v;
    Err err = {0};
    Args a = args_start(argc, argv, 1);
    for (int id; (id = cli_next(&a, cmd, &v, &err)) != ARG_END;) {
        switch (id) {
        case ARG_ERROR: return cli_fail(cmd->name, &err);
        case ARG_HELP: cli_help(cmd); return -1;
        case ARG_POSITIONAL:
            if (name) {
                err_set(&err, STATUS_INVALID, "one model at a time");
                return cli_fail(cmd->name, &err);
            }
            name = v;
            break;
        case O_MODELS_DIR: dir_opt = v; break;
        }
    }
    char dir[PATH_MAX];
    if (!name)
        err_set(&err, STATUS_INVALID, "which model? (cgpt list shows them)");
    if (!name || lib_dir(dir_opt, dir, sizeof dir, &err) || lib_find(dir, name, e, &err))
        return cli_fail(cmd->name, &err);
    return 0;
}

static int cmd_rm(int argc, char **argv) {
    LibModel e;
    int rc = one_model(&CLI_RM, argc, argv, &e);
    if (rc)
        return rc < 0 ? 0 : rc;
    Err err = {0};
    rc = lib_remove(&e, &err) ? cli_fail("rm", &err) : 0;
    if (!rc)
        printf("removed %s (%s)\n", e.name, e.dir);
    json_decref(e.manifest);
    return rc;
}

static int cmd_show(int argc, char **argv) {
    LibModel e;
    int rc = one_model(&CLI_SHOW, argc, argv, &e);
    if (rc)
        return rc < 0 ? 0 : rc;
    printf("name:         %s\n", e.name);
    const char *keys[] = {"source", "repo", "revision", "quant", "endpoint"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        const char *s = json_string_value(json_object_get(e.manifest, keys[i]));
        if (s && *s)
            printf("%-13s %s\n", keys[i], s);
    }
    time_t t = (time_t)json_integer_value(json_object_get(e.manifest, "pulled_at"));
    char when[64];
    strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", gmtime(&t));
    printf("pulled_at     %s\n", when);
    size_t i;
    json_t *f;
    json_array_foreach(json_object_get(e.manifest, "files"), i, f) printf(
        "file          %s (%lld bytes, sha256 %s)\n", json_string_value(json_object_get(f, "name")),
        (long long)json_integer_value(json_object_get(f, "size")),
        json_string_value(json_object_get(f, "sha256")));
    fflush(stdout);
    char *iargv[] = {"info", "-m", e.path, NULL};
    rc = CLI_INFO.main(3, iargv);
    json_decref(e.manifest);
    return rc;
}

const CliCommand CLI_PULL = {
    .name = "pull",
    .synopsis = "REF [--models-dir DIR] [--token TOKEN]",
    .summary = "get a model: hf.co/OWNER/REPO[:QUANT], OWNER/REPO[:QUANT] or a URL of a .gguf",
    .opts = PULL_OPTS,
    .notes = "HF_ENDPOINT replaces https://huggingface.co; HF_TOKEN is sent to it (never to the\n"
             "storage host a download is redirected to). Ctrl-C leaves a partial file the next\n"
             "pull resumes. docs/MODELS.md.",
    .main = cmd_pull,
};
const CliCommand CLI_LIST = {
    .name = "list",
    .synopsis = "[--json] [--models-dir DIR]",
    .summary = "the models on this machine (the library and the built-in model)",
    .opts = LIST_OPTS,
    .main = cmd_list,
};
const CliCommand CLI_RM = {
    .name = "rm",
    .synopsis = "NAME [--models-dir DIR]",
    .summary = "remove a model from the library",
    .opts = NAME_OPTS,
    .main = cmd_rm,
};
const CliCommand CLI_SHOW = {
    .name = "show",
    .synopsis = "NAME [--models-dir DIR]",
    .summary = "a library model: where it came from, and what `cgpt info` shows",
    .opts = NAME_OPTS,
    .main = cmd_show,
};
