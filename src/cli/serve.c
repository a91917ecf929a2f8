/* serve.c - `cgpt serve`: the models on offer (the -m models loaded at
 * start, or else every model of the library and the built-in one, each
 * loaded on its first request: serve/pool.h), one scheduler per loaded
 * model, the HTTP server; print the URL, run until SIGINT/SIGTERM. */
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/common.h"
#include "core/perf.h"
#include "engine/sched.h"
#include "hub/library.h"
#include "serve/pool.h"
#include "serve/server.h"

/* The page's files, generated from web/ at build time (build/gen/web_assets.c). */
extern const WebAsset WEB_ASSETS[];
extern const int WEB_N_ASSETS;

#define SERVE_MAX_PARALLEL 1024
#define SERVE_MALLOC_ARENAS 4
#define SERVE_MMAP_THRESHOLD (256 * 1024)
#define SERVE_MAX_LOADED 3           /* default --max-loaded (Ollama's on a CPU) */
#define SERVE_BUDGET_SHARE 0.8       /* default --memory-budget: this share of the RAM */
#define SERVE_MAX_BYTES (1ULL << 50) /* the largest --memory-budget */

enum {
    O_MODEL = 1,
    O_ALIAS,
    O_HOST,
    O_PORT,
    O_DATA_DIR,
    O_CTX,
    O_PARALLEL,
    O_QUEUE,
    O_BATCH,
    O_THREADS,
    O_NO_PCACHE,
    O_CORS,
    O_RPM,
    O_TPM,
    O_MAX_STREAMS,
    O_MAX_BODY,
    O_MAX_CONN,
    O_HEADER_TIMEOUT,
    O_BODY_TIMEOUT,
    O_WEB_DIR,
    O_NO_WEB,
    O_OPEN_REG,
    O_COOKIE_SECURE,
    O_SESSION_DAYS,
    O_POLICY,
    O_MOD_MODEL,
    O_MOD_LEXICON,
    O_NO_MODERATION,
    O_MODELS_DIR,
    O_MAX_LOADED,
    O_MEM_BUDGET,
    O_KEEP_ALIVE,
    O_KV_TYPE,
    O_TFILE
};

static const ArgOpt SERVE_OPTS[] = {
    {O_MODEL, "-m|--model", "MODEL",
     "serve this model (a file or a library name; repeat for several; id: --alias or the file "
     "name), loaded at start; without -m: every model of the library, loaded on demand"},
    {O_ALIAS, "--alias", "NAME", "the id of the preceding -m model"},
    {O_MODELS_DIR, "--models-dir", "DIR",
     "the library (default $CGPT_HOME/models, else ~/.cache/cgpt/models)"},
    {O_MAX_LOADED, "--max-loaded", "N",
     "library models loaded at once (default 3; 0 = no limit); the least recently used idle one "
     "makes room"},
    {O_MEM_BUDGET, "--memory-budget", "BYTES",
     "bytes the loaded models may take (files plus KV pages; K/M/G suffixes; default 80% of "
     "the RAM; 0 = no limit)"},
    {O_KEEP_ALIVE, "--keep-alive", "TIME",
     "unload a library model idle this long (e.g. 30s, 5m, 1h; default 5m; -1 = never, 0 = at "
     "once)"},
    {O_HOST, "--host", "ADDR", "bind address (default 127.0.0.1; others need API keys)"},
    {O_PORT, "--port", "N", "port (default 8080; 0 = any free port)"},
    {O_DATA_DIR, "--data-dir", "DIR",
     "API keys and server data (default $CGPT_DATA_DIR or ~/.cgpt)"},
    {O_CTX, "-c|--ctx", "N", "context per sequence (default: the model's, at most 4096)"},
    {O_PARALLEL, "--parallel", "N", "requests generating at once per model (default 16)"},
    {O_QUEUE, "--queue", "N", "requests waiting per model before 503 (default 256)"},
    {O_BATCH, "--batch", "N", "rows per forward pass (default 512)"},
    CLI_OPT_THREADS(O_THREADS),
    CLI_OPT_KV_TYPE(O_KV_TYPE),
    {O_NO_PCACHE, "--no-prefix-cache", NULL, "do not share prompt prefixes between requests"},
    {O_CORS, "--cors-origin", "ORIGIN", "allow browser requests from ORIGIN (repeat; '*' = any)"},
    {O_RPM, "--rpm", "N", "default requests per minute per key (0 = no limit)"},
    {O_TPM, "--tpm", "N", "default tokens per minute per key (0 = no limit)"},
    {O_MAX_STREAMS, "--max-streams", "N", "default concurrent requests per key (0 = no limit)"},
    {O_MAX_BODY, "--max-body", "BYTES", "request body limit (default 8388608)"},
    {O_MAX_CONN, "--max-connections", "N", "open connections (default 1024)"},
    {O_HEADER_TIMEOUT, "--header-timeout", "S", "seconds to send the headers (default 10)"},
    {O_BODY_TIMEOUT, "--body-timeout", "S", "seconds to send the body (default 30)"},
    {O_WEB_DIR, "--web-dir", "DIR",
     "serve the page's files from DIR (a build/web) instead of the binary"},
    {O_NO_WEB, "--no-web", NULL, "no page: the API only"},
    {O_OPEN_REG, "--open-registration", NULL, "anyone who reaches the page may create an account"},
    {O_COOKIE_SECURE, "--cookie-secure", NULL, "mark the login cookie Secure (serving behind TLS)"},
    {O_SESSION_DAYS, "--session-days", "N", "days a page login lasts (default 30)"},
    CLI_OPT_POLICY(O_POLICY),
    CLI_OPT_MOD_MODEL(O_MOD_MODEL),
    CLI_OPT_MOD_LEXICON(O_MOD_LEXICON),
    CLI_OPT_NO_MODERATION(O_NO_MODERATION),
    CLI_OPT_TEMPLATE(O_TFILE),
    {0},
};

typedef struct {
    const char *path;
    const char *alias;
} ModelArg;

typedef struct {
    ModelArg models[SERVER_MAX_MODELS];
    int n_models;
    const char *cors[SERVER_MAX_CORS];
    ServerConfig cfg;
    long ctx, parallel, queue, batch, threads;
    bool no_prefix_cache;
    bool no_web;
    CliModeration mod;
    bool no_moderation;
    const char *models_dir;
    PoolConfig pool;
    KVType kv_type;
    const char *tfile; /* --chat-template-file: every model's template */
} ServeOpts;

static atomic_int g_stop;
static int g_stop_pipe[2] = {-1, -1};

static void on_signal(int sig) {
    (void)sig;
    atomic_store(&g_stop, 1);
    char b = 1;
    if (write(g_stop_pipe[1], &b, 1) < 0)
        return;
}

/* BYTES: a count with an optional K, M, G or T (powers of 1024), at most
 * SERVE_MAX_BYTES. */
static Status parse_bytes(const char *opt, const char *v, uint64_t *out, Err *err) {
    char *end = NULL;
    double x = strtod(v, &end);
    double unit = 1;
    if (end && *end) {
        const char *units = "KMGT";
        const char *u = strchr(units, *end == 'k' ? 'K' : *end);
        if (!u || !*u || (end[1] && strcmp(end + 1, "B") && strcmp(end + 1, "iB")))
            return err_set(err, STATUS_INVALID, "%s: '%s' is not a byte count (e.g. 8G, 512M)", opt,
                           v);
        for (const char *k = units; k <= u; k++)
            unit *= 1024;
    }
    if (end == v || !(x >= 0) || x * unit > (double)SERVE_MAX_BYTES)
        return err_set(err, STATUS_INVALID, "%s: '%s' is not a byte count in [0, %llu]", opt, v,
                       (unsigned long long)SERVE_MAX_BYTES);
    *out = (uint64_t)(x * unit);
    return STATUS_OK;
}

/* TIME: seconds, or a number with s, m or h; a negative one means never. */
static Status parse_duration(const char *opt, const char *v, double *out, Err *err) {
    char *end = NULL;
    double x = strtod(v, &end);
    double unit = !end || !*end || !strcmp(end, "s") ? 1
                  : !strcmp(end, "m")                ? 60
                  : !strcmp(end, "h")                ? 3600
                                                     : 0;
    if (end == v || unit == 0 || x != x || x > 1e9)
        return err_set(err, STATUS_INVALID, "%s: '%s' is not a duration (e.g. 30s, 5m, 1h, -1)",
                       opt, v);
    *out = x < 0 ? -1 : x * unit;
    return STATUS_OK;
}

static Status parse(int argc, char **argv, ServeOpts *o, bool *help, Err *err) {
    Args a = args_start(argc, argv, 1);
    o->cfg = server_default_config();
    o->parallel = 16;
    o->queue = 256;
    o->pool.max_loaded = SERVE_MAX_LOADED;
    o->pool.keep_alive = POOL_KEEP_ALIVE;
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (pages > 0 && page > 0)
        o->pool.memory_budget = (uint64_t)((double)pages * (double)page * SERVE_BUDGET_SHARE);
    const char *v;
    for (int id; (id = cli_next(&a, &CLI_SERVE, &v, err)) != ARG_END;) {
        long n = 0;
        double f = 0;
        Status s = STATUS_OK;
        switch (id) {
        case ARG_ERROR: return err->status;
        case ARG_HELP: *help = true; return STATUS_OK;
        case ARG_POSITIONAL:
            return err_set(err, STATUS_INVALID, "unexpected argument '%s' (models go after -m)", v);
        case O_NO_PCACHE: o->no_prefix_cache = true; break;
        case O_MODEL:
            if (o->n_models == SERVER_MAX_MODELS)
                return err_set(err, STATUS_LIMIT, "more than %d models", SERVER_MAX_MODELS);
            o->models[o->n_models++] = (ModelArg){v, NULL};
            break;
        case O_ALIAS:
            if (!o->n_models)
                return err_set(err, STATUS_INVALID, "--alias names the preceding -m model");
            o->models[o->n_models - 1].alias = v;
            break;
        case O_HOST: o->cfg.host = v; break;
        case O_PORT:
            s = args_int(a.opt, v, 0, 65535, &n, err);
            o->cfg.port = (int)n;
            break;
        case O_DATA_DIR: o->cfg.data_dir = v; break;
        case O_TFILE: o->tfile = v; break;
        case O_CTX: s = args_int(a.opt, v, 16, MODEL_MAX_CTX, &o->ctx, err); break;
        case O_PARALLEL: s = args_int(a.opt, v, 1, SERVE_MAX_PARALLEL, &o->parallel, err); break;
        case O_QUEUE: s = args_int(a.opt, v, 1, 1 << 20, &o->queue, err); break;
        case O_BATCH: s = args_int(a.opt, v, 16, MODEL_MAX_BATCH, &o->batch, err); break;
        case O_THREADS: s = args_int(a.opt, v, 0, CLI_MAX_THREADS, &o->threads, err); break;
        case O_CORS:
            if (o->cfg.n_cors == SERVER_MAX_CORS)
                return err_set(err, STATUS_LIMIT, "more than %d --cors-origin", SERVER_MAX_CORS);
            o->cors[o->cfg.n_cors++] = v;
            break;
        case O_RPM:
            s = args_int(a.opt, v, 0, 1L << 30, &n, err);
            o->cfg.default_limits.rpm = (int)n;
            break;
        case O_TPM:
            s = args_int(a.opt, v, 0, 1L << 30, &n, err);
            o->cfg.default_limits.tpm = (int)n;
            break;
        case O_MAX_STREAMS:
            s = args_int(a.opt, v, 0, 1L << 20, &n, err);
            o->cfg.default_limits.max_streams = (int)n;
            break;
        case O_MAX_BODY:
            s = args_int(a.opt, v, 64, 1L << 30, &n, err);
            o->cfg.limits.max_body_bytes = (size_t)n;
            break;
        case O_MAX_CONN:
            s = args_int(a.opt, v, 1, 1 << 16, &n, err);
            o->cfg.max_connections = (int)n;
            break;
        case O_HEADER_TIMEOUT:
            s = args_float(a.opt, v, 0.1, 3600, &f, err);
            o->cfg.header_timeout = f;
            break;
        case O_BODY_TIMEOUT:
            s = args_float(a.opt, v, 0.1, 3600, &f, err);
            o->cfg.body_timeout = f;
            break;
        case O_WEB_DIR: o->cfg.web.dir = v; break;
        case O_NO_WEB: o->no_web = true; break;
        case O_OPEN_REG: o->cfg.open_registration = true; break;
        case O_COOKIE_SECURE: o->cfg.cookie_secure = true; break;
        case O_SESSION_DAYS:
            s = args_int(a.opt, v, 1, 3650, &n, err);
            o->cfg.session_ttl = (long long)n * 24 * 3600;
            break;
        case O_POLICY: o->mod.policy = v; break;
        case O_MOD_MODEL: o->mod.guard_model = v; break;
        case O_MOD_LEXICON: o->mod.lexicon = v; break;
        case O_NO_MODERATION: o->no_moderation = true; break;
        case O_MODELS_DIR: o->models_dir = v; break;
        case O_MAX_LOADED:
            s = args_int(a.opt, v, 0, POOL_MAX_MODELS, &n, err);
            o->pool.max_loaded = (int)n;
            break;
        case O_MEM_BUDGET: s = parse_bytes(a.opt, v, &o->pool.memory_budget, err); break;
        case O_KEEP_ALIVE: s = parse_duration(a.opt, v, &o->pool.keep_alive, err); break;
        case O_KV_TYPE: s = cli_kv_type(a.opt, v, &o->kv_type, err); break;
        }
        if (s)
            return s;
    }
    o->cfg.cors_origins = o->cors;
    o->cfg.data_dir = cli_data_dir(o->cfg.data_dir);
    if (!o->no_web) { /* the page compiled in (web/, see the Makefile) */
        o->cfg.web.assets = WEB_ASSETS;
        o->cfg.web.n_assets = WEB_N_ASSETS;
    }
    return STATUS_OK;
}

/* The id of a model: the alias, else the file name without directory and .gguf. */
static char *model_id(const ModelArg *a) {
    if (a->alias)
        return strdup(a->alias);
    const char *b = strrchr(a->path, '/');
    b = b ? b + 1 : a->path;
    char *id = strdup(b);
    size_t n = id ? strlen(id) : 0;
    if (n > 5 && !strcmp(id + n - 5, ".gguf"))
        id[n - 5] = 0;
    return id;
}

/* Load the model at 'path' and start its scheduler. */
static Status start_model(const ServeOpts *o, const char *path, CliModel *cm, Sched **sched,
                          Err *err) {
    int n_seq = (int)o->parallel * 2 < 16 ? 16 : (int)o->parallel * 2;
    if (n_seq > MODEL_MAX_SEQ)
        n_seq = MODEL_MAX_SEQ;
    ModelParams mp = {.n_threads = (int)o->threads,
                      .n_ctx = (int)o->ctx,
                      .n_seq_max = n_seq,
                      .n_batch = (int)(o->batch ? o->batch : 512),
                      .kv_type = o->kv_type};
    /* The KV pool defaults to n_seq_max full contexts: room for every
     * running request at full length and as much again for the prefix
     * cache. Its pages are only touched as blocks are used. */
    *sched = NULL;
    Status st = cli_load(cm, path, &mp, o->tfile, true, err);
    if (st)
        return st;
    /* tool-call arguments reach the template as objects where it needs
     * them (chat.h, as llama.cpp does) */
    chat_format_set_arguments(cm->fmt, CHAT_ARGS_AUTO);
    SchedParams sp = {.max_running = (int)o->parallel,
                      .max_queue = (int)o->queue,
                      .prefix_cache = !o->no_prefix_cache};
    if (!(st = sched_new(sched, cm->m, cm->tok, &sp, err)) && (st = sched_start(*sched, err))) {
        sched_free(*sched);
        *sched = NULL;
    }
    if (st)
        cli_unload(cm);
    return st;
}

static ServerModel server_model(CliModel *cm, Sched *sched, long long created) {
    return (ServerModel){.model = cm->m,
                         .tok = cm->tok,
                         .fmt = cm->fmt,
                         .sched = sched,
                         .created = created,
                         .preset = cm->preset,
                         .handle = cm};
}

static void describe_model(const char *verb, const char *id, const char *path, const CliModel *cm,
                           Sched *sched, double seconds) {
    const ModelConfig *mc = model_config(cm->m);
    char samp[256] = "", took[48] = "";
    if (cm->preset.set) {
        memcpy(samp, ", sampling defaults ", 21);
        preset_describe(&cm->preset.v, cm->preset.set, samp + 20, sizeof samp - 20);
    }
    if (seconds >= 0)
        snprintf(took, sizeof took, " in %.2f s", seconds);
    fprintf(stderr, "cgpt serve: %s '%s' (%s, %s, %.1fM params), context %d, %s%s%s\n", verb, id,
            path, mc->arch_name, (double)mc->n_params / 1e6, sched_n_ctx(sched),
            chat_format_name(cm->fmt), samp, took);
}

/* ---- the pool's hooks (serve/pool.h) ---- */

typedef struct {
    const ServeOpts *o;
    char dir[PATH_MAX]; /* the library */
    long load_delay_ms; /* $CGPT_SERVE_LOAD_DELAY_MS: each on-demand load waits this long first */
} ServeLib;

static Status hook_load(void *ctx, const PoolOffer *po, ServerModel *out, Err *err) {
    ServeLib *sl = ctx;
    CliModel *cm = calloc(1, sizeof *cm);
    if (!cm)
        return err_set(err, STATUS_NOMEM, "out of memory");
    Sched *sched = NULL;
    double t0 = perf_now();
    if (sl->load_delay_ms > 0) /* tests: a slow disk (docs/MODELS.md) */
        usleep((useconds_t)sl->load_delay_ms * 1000);
    Status st = start_model(sl->o, po->path, cm, &sched, err);
    if (st) {
        fprintf(stderr, "cgpt serve: cannot load '%s': %s\n", po->id, err->msg);
        free(cm);
        return st;
    }
    *out = server_model(cm, sched, po->created);
    describe_model("loaded", po->id, po->path, cm, sched, perf_now() - t0);
    return STATUS_OK;
}

static void hook_unload(void *ctx, ServerModel *m) {
    (void)ctx;
    sched_free(m->sched);
    cli_unload(m->handle);
    free(m->handle);
    malloc_trim(0); /* hand the freed heap back: RSS returns to where it was */
    fprintf(stderr, "cgpt serve: unloaded '%s'\n", m->id);
}

static int by_recency(const void *a, const void *b) {
    const PoolOffer *x = a, *y = b;
    if (x->created != y->created)
        return x->created > y->created ? -1 : 1;
    return strcmp(x->id, y->id);
}

/* The library's models, the most recently pulled first, then the
 * built-in one. */
static Status hook_scan(void *ctx, PoolOffer **out, int *n, Err *err) {
    ServeLib *sl = ctx;
    LibModel *lm = NULL;
    int nl = 0;
    Status st = lib_list(sl->dir, &lm, &nl, err);
    if (st)
        return st;
    PoolOffer *po = calloc((size_t)nl + 1, sizeof *po);
    if (!po) {
        lib_models_free(lm, nl);
        return err_set(err, STATUS_NOMEM, "out of memory");
    }
    int k = 0;
    for (int i = 0; i < nl; i++) {
        PoolOffer *p = &po[k];
        if (snprintf(p->id, sizeof p->id, "%s", lm[i].name) >= (int)sizeof p->id)
            continue;
        snprintf(p->path, sizeof p->path, "%s", lm[i].path);
        p->bytes = lm[i].size;
        p->created = (long long)json_integer_value(json_object_get(lm[i].manifest, "pulled_at"));
        k++;
    }
    lib_models_free(lm, nl);
    qsort(po, (size_t)k, sizeof *po, by_recency);
    const char *builtin = cli_builtin_model();
    struct stat sb;
    if (builtin && stat(builtin, &sb) == 0) {
        snprintf(po[k].id, sizeof po[k].id, "cgpt-mini");
        snprintf(po[k].path, sizeof po[k].path, "%s", builtin);
        po[k].bytes = (uint64_t)sb.st_size;
        po[k].created = (long long)sb.st_mtime;
        k++;
    }
    *out = po;
    *n = k;
    return STATUS_OK;
}

/* The -m models, loaded now and pinned in the pool. */
static Status load_pinned(const ServeOpts *o, Pool *pool, Err *err) {
    for (int i = 0; i < o->n_models && !atomic_load(&g_stop); i++) {
        /* a library name is the model's id; a file's is its name */
        const char *given = o->models[i].path, *path = NULL;
        Status st = cli_model_path(given, &path, err);
        if (st)
            return st;
        ModelArg named = {path, o->models[i].alias ? o->models[i].alias
                                : path != given    ? given
                                                   : NULL};
        CliModel *cm = calloc(1, sizeof *cm);
        char *id = model_id(&named);
        Sched *sched = NULL;
        st = !cm || !id ? err_set(err, STATUS_NOMEM, "out of memory")
                        : start_model(o, path, cm, &sched, err);
        if (st) {
            free(cm);
            free(id);
            return st;
        }
        PoolOffer po;
        memset(&po, 0, sizeof po);
        struct stat stb;
        bool have = stat(path, &stb) == 0;
        snprintf(po.id, sizeof po.id, "%s", id);
        snprintf(po.path, sizeof po.path, "%s", path);
        po.created = have ? (long long)stb.st_mtime : 0;
        po.bytes = have ? (uint64_t)stb.st_size : 0;
        ServerModel sm = server_model(cm, sched, po.created);
        if ((st = pool_add(pool, &po, &sm, err))) {
            sched_free(sched);
            cli_unload(cm);
            free(cm);
            free(id);
            return st;
        }
        describe_model("model", id, path, cm, sched, -1);
        free(id);
    }
    return STATUS_OK;
}

static int cmd_serve(int argc, char **argv) {
    ServeOpts o;
    memset(&o, 0, sizeof o);
    o.kv_type = CLI_KV_DEFAULT;
    Err err = {0};
    bool help = false;
    if (parse(argc, argv, &o, &help, &err))
        return cli_fail("serve", &err);
    if (help) {
        cli_help(&CLI_SERVE);
        return 0;
    }
    /* Without -m: $CGPT_MODEL as if given with -m, else the library and
     * the built-in model on demand. */
    const char *env = getenv("CGPT_MODEL");
    if (!o.n_models && env && *env) {
        const char *path = NULL;
        if (cli_model_path(NULL, &path, &err))
            return cli_fail("serve", &err);
        o.models[o.n_models++] = (ModelArg){path, NULL};
    }
    ServeLib lib = {.o = &o};
    const char *delay = getenv("CGPT_SERVE_LOAD_DELAY_MS");
    if (delay && *delay &&
        args_int("$CGPT_SERVE_LOAD_DELAY_MS", delay, 0, 60000, &lib.load_delay_ms, &err))
        return cli_fail("serve", &err);
    o.pool.hooks = (PoolHooks){.load = hook_load, .unload = hook_unload, .ctx = &lib};
    if (!o.n_models) {
        if (lib_dir(o.models_dir, lib.dir, sizeof lib.dir, &err))
            return cli_fail("serve", &err);
        o.pool.hooks.scan = hook_scan;
        if (!cli_builtin_model()) { /* no model at all is worth a word, not a refusal */
            fprintf(stderr, "cgpt serve: the built-in model (models/cgpt-mini.gguf) is not "
                            "there; serving the library only\n");
        }
    } else if (o.models_dir) {
        err_set(&err, STATUS_INVALID, "--models-dir with -m: name the models with -m only");
        return cli_fail("serve", &err);
    }
    /* SIGINT/SIGTERM may land on any thread (OpenBLAS starts its own before
     * main): the handler sets a flag and writes to a pipe that the main
     * thread reads, so no signal is lost. */
    /* One thread per connection: without a cap glibc gives each busy
     * thread its own malloc arena (up to 8 per core), which keeps freed
     * memory per arena. */
    mallopt(M_ARENA_MAX, SERVE_MALLOC_ARENAS);
    /* Request bodies and replies of up to megabytes come and go: a fixed
     * mmap threshold (which also stops glibc raising it after each free)
     * hands them back to the system instead of fragmenting the heap. */
    mallopt(M_MMAP_THRESHOLD, SERVE_MMAP_THRESHOLD);
    signal(SIGPIPE, SIG_IGN);
    if (pipe(g_stop_pipe) != 0) {
        err_set(&err, STATUS_IO, "cannot create a pipe");
        return cli_fail("serve", &err);
    }
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    /* moderation: the policy and classifier are read before anything binds,
     * so a bad policy file is a clear refusal to start */
    Moderator *mod = NULL;
    if (o.no_moderation && (o.mod.policy || o.mod.lexicon)) {
        err_set(&err, STATUS_INVALID, "--no-moderation with --policy or --moderation-lexicon");
        return cli_fail("serve", &err);
    }
    if (cli_moderator(&o.mod, &mod, &err))
        return cli_fail("serve", &err);
    o.cfg.mod = mod;
    o.cfg.moderate = !o.no_moderation;
    Pool *pool = NULL;
    if (pool_new(&pool, &o.pool, &err)) {
        mod_free(mod);
        return cli_fail("serve", &err);
    }
    o.cfg.pool = pool;
    Server *srv = NULL;
    if (server_start(&srv, &o.cfg, &err)) {
        pool_free(pool);
        mod_free(mod);
        return cli_fail("serve", &err);
    }
    int rc = 0;
    if (load_pinned(&o, pool, &err))
        rc = cli_fail("serve", &err);
    if (!rc && !atomic_load(&g_stop)) {
        server_ready(srv);
        bool v6 = strchr(o.cfg.host, ':') != NULL;
        printf("cgpt serve: listening on http://%s%s%s:%d\n", v6 ? "[" : "", o.cfg.host,
               v6 ? "]" : "", server_port(srv));
        if (o.cfg.moderate) {
            const char *trained = cli_trained_guard(&o.mod);
            fprintf(stderr, "cgpt serve: moderation on (%s), classifier %s%s%s\n",
                    o.mod.policy ? o.mod.policy : "the shipped policy, docs/SAFETY.md",
                    mod_name(o.cfg.mod), trained ? " with a trained model on input: " : "",
                    trained ? trained : "");
        } else {
            fprintf(stderr, "cgpt serve: moderation off (--no-moderation)\n");
        }
        if (o.cfg.web.n_assets && o.cfg.data_dir)
            fprintf(stderr,
                    "cgpt serve: the page is at http://%s%s%s:%d/ (accounts: the page offers the "
                    "first one on loopback; else cgpt user add NAME)\n",
                    v6 ? "[" : "", o.cfg.host, v6 ? "]" : "", server_port(srv));
        int n_offer = 0;
        PoolInfo *offer = pool_list(pool, false, &n_offer);
        if (!o.n_models) {
            char budget[32] = "none";
            if (o.pool.memory_budget)
                snprintf(budget, sizeof budget, "%.1f GB", (double)o.pool.memory_budget / 1e9);
            fprintf(stderr,
                    "cgpt serve: %d model%s on offer (the library in %s and the built-in), each "
                    "loaded on its first request; at most %d loaded, memory budget %s, idle "
                    "ones unloaded after %s%.0f s\n",
                    n_offer, n_offer == 1 ? "" : "s", lib.dir, o.pool.max_loaded, budget,
                    o.pool.keep_alive < 0 ? "never: " : "", o.pool.keep_alive);
        }
        bool only_builtin = n_offer == 1 && offer && !strcmp(offer[0].id, "cgpt-mini");
        free(offer);
        if (only_builtin && o.n_models) /* the one command that gets a useful model */
            fprintf(stderr,
                    "cgpt serve: the built-in model is tiny (6.5M parameters); for real "
                    "answers: cgpt pull " CLI_SUGGESTED_MODEL " && cgpt serve -m %s\n",
                    CLI_SUGGESTED_MODEL + 6);
        else if (only_builtin) /* docs/MODELS.md */
            fprintf(stderr, "cgpt serve: the built-in model is tiny (6.5M parameters); for real "
                            "answers: cgpt pull " CLI_SUGGESTED_MODEL
                            " (this server offers it once it is pulled)\n");
        fflush(stdout);
        char b;
        while (!atomic_load(&g_stop) && read(g_stop_pipe[0], &b, 1) != 1)
            ; /* EINTR: look again */
        fprintf(stderr, "cgpt serve: stopping\n");
    }
    server_stop(srv);
    pool_free(pool); /* unloads every model */
    mod_free(mod);
    return rc;
}

const CliCommand CLI_SERVE = {
    .name = "serve",
    .synopsis = "[-m MODEL [--alias NAME]]... [--host H] [--port P] [options]",
    .summary =
        "the OpenAI API and the chat page on http://127.0.0.1:8080 (docs/SERVER.md, docs/WEB.md)",
    .opts = SERVE_OPTS,
    .notes = "Routes: POST /v1/chat/completions, /v1/completions, GET /v1/models[/ID], /health,\n"
             "/metrics, POST /tokenize, /detokenize. Without -m: every model of the library\n"
             "and the built-in one, each loaded on its first request (docs/MODELS.md).\n"
             "A request's unset sampling fields take the model file's general.sampling.*\n"
             "values, else the OpenAI defaults (temperature 1, top_p 1).\n"
             "API keys: cgpt key add NAME (then send 'Authorization: Bearer KEY').\n",
    .main = cmd_serve,
};
