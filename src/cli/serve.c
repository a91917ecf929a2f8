/* serve.c - `cgpt serve`: load the models, start one scheduler per model
 * and the HTTP server, print the URL, run until SIGINT/SIGTERM. */
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
#include "engine/sched.h"
#include "serve/server.h"

/* The page's files, generated from web/ at build time (build/gen/web_assets.c). */
extern const WebAsset WEB_ASSETS[];
extern const int WEB_N_ASSETS;

#define SERVE_MAX_PARALLEL 1024
#define SERVE_MALLOC_ARENAS 4
#define SERVE_MMAP_THRESHOLD (256 * 1024)

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
    O_NO_MODERATION
};

static const ArgOpt SERVE_OPTS[] = {
    {O_MODEL, "-m|--model", "MODEL",
     "a GGUF model (repeat for several; id: --alias or the file name)"},
    {O_ALIAS, "--alias", "NAME", "the id of the preceding -m model"},
    {O_HOST, "--host", "ADDR", "bind address (default 127.0.0.1; others need API keys)"},
    {O_PORT, "--port", "N", "port (default 8080; 0 = any free port)"},
    {O_DATA_DIR, "--data-dir", "DIR",
     "API keys and server data (default $CGPT_DATA_DIR or ~/.cgpt)"},
    {O_CTX, "-c|--ctx", "N", "context per sequence (default: the model's, at most 4096)"},
    {O_PARALLEL, "--parallel", "N", "requests generating at once per model (default 16)"},
    {O_QUEUE, "--queue", "N", "requests waiting per model before 503 (default 256)"},
    {O_BATCH, "--batch", "N", "rows per forward pass (default 512)"},
    CLI_OPT_THREADS(O_THREADS),
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

static Status parse(int argc, char **argv, ServeOpts *o, bool *help, Err *err) {
    Args a = args_start(argc, argv, 1);
    o->cfg = server_default_config();
    o->parallel = 16;
    o->queue = 256;
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

typedef struct {
    CliModel cm;
    Sched *sched;
    char *id;
} Loaded;

static Status load_one(const ServeOpts *o, const ModelArg *a, Loaded *l, Err *err) {
    int n_seq = (int)o->parallel * 2 < 16 ? 16 : (int)o->parallel * 2;
    if (n_seq > MODEL_MAX_SEQ)
        n_seq = MODEL_MAX_SEQ;
    ModelParams mp = {.n_threads = (int)o->threads,
                      .n_ctx = (int)o->ctx,
                      .n_seq_max = n_seq,
                      .n_batch = (int)(o->batch ? o->batch : 512)};
    /* The KV pool defaults to n_seq_max full contexts: room for every
     * running request at full length and as much again for the prefix
     * cache. Its pages are only touched as blocks are used. */
    Status st = cli_load(&l->cm, a->path, &mp, NULL, true, err);
    if (st)
        return st;
    SchedParams sp = {.max_running = (int)o->parallel,
                      .max_queue = (int)o->queue,
                      .prefix_cache = !o->no_prefix_cache};
    if ((st = sched_new(&l->sched, l->cm.m, l->cm.tok, &sp, err)))
        return st;
    if ((st = sched_start(l->sched, err)))
        return st;
    l->id = model_id(a);
    return l->id ? STATUS_OK : err_set(err, STATUS_NOMEM, "out of memory");
}

static int cmd_serve(int argc, char **argv) {
    ServeOpts o;
    memset(&o, 0, sizeof o);
    Err err = {0};
    bool help = false;
    if (parse(argc, argv, &o, &help, &err))
        return cli_fail("serve", &err);
    if (help) {
        cli_help(&CLI_SERVE);
        return 0;
    }
    if (!o.n_models) {
        const char *path = NULL;
        if (cli_model_path(NULL, &path, &err))
            return cli_fail("serve", &err);
        o.models[o.n_models++] = (ModelArg){path, NULL};
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
    Server *srv = NULL;
    if (server_start(&srv, &o.cfg, &err)) {
        mod_free(mod);
        return cli_fail("serve", &err);
    }
    Loaded loaded[SERVER_MAX_MODELS];
    memset(loaded, 0, sizeof loaded);
    int rc = 0;
    for (int i = 0; i < o.n_models && !atomic_load(&g_stop); i++) {
        Loaded *l = &loaded[i];
        if (load_one(&o, &o.models[i], l, &err)) {
            rc = cli_fail("serve", &err);
            break;
        }
        struct stat stb;
        ServerModel sm = {.id = l->id,
                          .model = l->cm.m,
                          .tok = l->cm.tok,
                          .fmt = l->cm.fmt,
                          .sched = l->sched,
                          .created = stat(o.models[i].path, &stb) ? 0 : (long long)stb.st_mtime,
                          .preset = l->cm.preset};
        if (server_add_model(srv, &sm, &err)) {
            rc = cli_fail("serve", &err);
            break;
        }
        const ModelConfig *mc = model_config(l->cm.m);
        char samp[256] = "";
        if (l->cm.preset.set) {
            memcpy(samp, ", sampling defaults ", 21);
            preset_describe(&l->cm.preset.v, l->cm.preset.set, samp + 20, sizeof samp - 20);
        }
        fprintf(stderr, "cgpt serve: model '%s' (%s, %s, %.1fM params), context %d, %s%s\n", l->id,
                o.models[i].path, mc->arch_name, (double)mc->n_params / 1e6, sched_n_ctx(l->sched),
                chat_format_name(l->cm.fmt), samp);
    }
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
        bool only_builtin = o.n_models == 1 && !strcmp(loaded[0].id, "cgpt-mini");
        if (only_builtin) /* the one command that gets a useful model (docs/MODELS.md) */
            fprintf(stderr,
                    "cgpt serve: the built-in model is tiny (6.5M parameters); for real "
                    "answers: cgpt pull " CLI_SUGGESTED_MODEL " && cgpt serve -m %s\n",
                    CLI_SUGGESTED_MODEL + 6);
        fflush(stdout);
        char b;
        while (!atomic_load(&g_stop) && read(g_stop_pipe[0], &b, 1) != 1)
            ; /* EINTR: look again */
        fprintf(stderr, "cgpt serve: stopping\n");
    }
    server_stop(srv);
    for (int i = 0; i < o.n_models; i++) {
        sched_free(loaded[i].sched);
        cli_unload(&loaded[i].cm);
        free(loaded[i].id);
    }
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
             "/metrics, POST /tokenize, /detokenize. Without -m: the built-in model.\n"
             "A request's unset sampling fields take the model file's general.sampling.*\n"
             "values, else the OpenAI defaults (temperature 1, top_p 1).\n"
             "API keys: cgpt key add NAME (then send 'Authorization: Bearer KEY').\n",
    .main = cmd_serve,
};
