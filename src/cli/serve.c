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

#define SERVE_MAX_PARALLEL 1024
#define SERVE_MALLOC_ARENAS 4
#define SERVE_MMAP_THRESHOLD (256 * 1024)

static const char HELP[] =
    "usage: cgpt serve [-m MODEL [--alias NAME]]... [options]\n"
    "\n"
    "The OpenAI API (POST /v1/chat/completions, /v1/completions, GET /v1/models,\n"
    "/health, /metrics, POST /tokenize, /detokenize) on http://HOST:PORT.\n"
    "Without -m: the built-in model.\n"
    "\n"
    "  -m, --model FILE       a GGUF model (repeat for several; id = --alias or file name)\n"
    "  --alias NAME           the id of the preceding -m model\n"
    "  --host ADDR            bind address (default 127.0.0.1; others need API keys)\n"
    "  --port N               port (default 8080; 0 = any free port)\n"
    "  --data-dir DIR         API keys and server data (default $CGPT_DATA_DIR or ~/.cgpt)\n"
    "  -c, --ctx N            context per sequence (default: the model's, at most 4096)\n"
    "  --parallel N           requests generating at once per model (default 16)\n"
    "  --queue N              requests waiting per model before 503 (default 256)\n"
    "  --batch N              rows per forward pass (default 512)\n"
    "  -t, --threads N        compute threads (default: all CPUs)\n"
    "  --no-prefix-cache      do not share prompt prefixes between requests\n"
    "  --cors-origin ORIGIN   allow browser requests from ORIGIN (repeat; '*' = any)\n"
    "  --rpm N, --tpm N       default requests / tokens per minute per key (0 = no limit)\n"
    "  --max-streams N        default concurrent requests per key (0 = no limit)\n"
    "  --max-body BYTES       request body limit (default 8388608)\n"
    "  --max-connections N    open connections (default 1024)\n"
    "  --header-timeout S     seconds to send the headers (default 10)\n"
    "  --body-timeout S       seconds to send the body (default 30)\n"
    "\n"
    "API keys: cgpt key add NAME --data-dir DIR (then send 'Authorization: Bearer KEY').\n";

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

static Status parse(int argc, char **argv, ServeOpts *o, Err *err) {
    Args a = {argc, argv, 1};
    o->cfg = server_default_config();
    o->parallel = 16;
    o->queue = 256;
    while (a.i < argc) {
        const char *opt = argv[a.i], *v = NULL;
        long n = 0;
        double f = 0;
        if (!strcmp(opt, "--no-prefix-cache")) {
            o->no_prefix_cache = true;
            a.i++;
            continue;
        }
        Status s = args_value(&a, &v, err);
        if (s)
            return s;
        a.i++;
        if (!strcmp(opt, "-m") || !strcmp(opt, "--model")) {
            if (o->n_models == SERVER_MAX_MODELS)
                return err_set(err, STATUS_LIMIT, "more than %d models", SERVER_MAX_MODELS);
            o->models[o->n_models++] = (ModelArg){v, NULL};
        } else if (!strcmp(opt, "--alias")) {
            if (!o->n_models)
                return err_set(err, STATUS_INVALID, "--alias names the preceding -m model");
            o->models[o->n_models - 1].alias = v;
        } else if (!strcmp(opt, "--host")) {
            o->cfg.host = v;
        } else if (!strcmp(opt, "--port")) {
            s = args_int(opt, v, 0, 65535, &n, err);
            o->cfg.port = (int)n;
        } else if (!strcmp(opt, "--data-dir")) {
            o->cfg.data_dir = v;
        } else if (!strcmp(opt, "-c") || !strcmp(opt, "--ctx")) {
            s = args_int(opt, v, 16, MODEL_MAX_CTX, &o->ctx, err);
        } else if (!strcmp(opt, "--parallel")) {
            s = args_int(opt, v, 1, SERVE_MAX_PARALLEL, &o->parallel, err);
        } else if (!strcmp(opt, "--queue")) {
            s = args_int(opt, v, 1, 1 << 20, &o->queue, err);
        } else if (!strcmp(opt, "--batch")) {
            s = args_int(opt, v, 16, MODEL_MAX_BATCH, &o->batch, err);
        } else if (!strcmp(opt, "-t") || !strcmp(opt, "--threads")) {
            s = args_int(opt, v, 0, 256, &o->threads, err);
        } else if (!strcmp(opt, "--cors-origin")) {
            if (o->cfg.n_cors == SERVER_MAX_CORS)
                return err_set(err, STATUS_LIMIT, "more than %d --cors-origin", SERVER_MAX_CORS);
            o->cors[o->cfg.n_cors++] = v;
        } else if (!strcmp(opt, "--rpm")) {
            s = args_int(opt, v, 0, 1L << 30, &n, err);
            o->cfg.default_limits.rpm = (int)n;
        } else if (!strcmp(opt, "--tpm")) {
            s = args_int(opt, v, 0, 1L << 30, &n, err);
            o->cfg.default_limits.tpm = (int)n;
        } else if (!strcmp(opt, "--max-streams")) {
            s = args_int(opt, v, 0, 1L << 20, &n, err);
            o->cfg.default_limits.max_streams = (int)n;
        } else if (!strcmp(opt, "--max-body")) {
            s = args_int(opt, v, 64, 1L << 30, &n, err);
            o->cfg.limits.max_body_bytes = (size_t)n;
        } else if (!strcmp(opt, "--max-connections")) {
            s = args_int(opt, v, 1, 1 << 16, &n, err);
            o->cfg.max_connections = (int)n;
        } else if (!strcmp(opt, "--header-timeout")) {
            s = args_float(opt, v, 0.1, 3600, &f, err);
            o->cfg.header_timeout = f;
        } else if (!strcmp(opt, "--body-timeout")) {
            s = args_float(opt, v, 0.1, 3600, &f, err);
            o->cfg.body_timeout = f;
        } else {
            return err_set(err, STATUS_INVALID, "unknown option '%s' (see cgpt serve --help)", opt);
        }
        if (s)
            return s;
    }
    o->cfg.cors_origins = o->cors;
    o->cfg.data_dir = cli_data_dir(o->cfg.data_dir);
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

int cmd_serve(int argc, char **argv) {
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        fputs(HELP, stdout);
        return 0;
    }
    ServeOpts o;
    memset(&o, 0, sizeof o);
    Err err = {0};
    if (parse(argc, argv, &o, &err))
        return cli_fail("serve", &err);
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

    Server *srv = NULL;
    if (server_start(&srv, &o.cfg, &err))
        return cli_fail("serve", &err);
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
                          .created = stat(o.models[i].path, &stb) ? 0 : (long long)stb.st_mtime};
        if (server_add_model(srv, &sm, &err)) {
            rc = cli_fail("serve", &err);
            break;
        }
        const ModelConfig *mc = model_config(l->cm.m);
        fprintf(stderr, "cgpt serve: model '%s' (%s, %s, %.1fM params), context %d, %s\n", l->id,
                o.models[i].path, mc->arch_name, (double)mc->n_params / 1e6,
                sched_n_ctx(l->sched), chat_format_name(l->cm.fmt));
    }
    if (!rc && !atomic_load(&g_stop)) {
        server_ready(srv);
        bool v6 = strchr(o.cfg.host, ':') != NULL;
        printf("cgpt serve: listening on http://%s%s%s:%d\n", v6 ? "[" : "", o.cfg.host,
               v6 ? "]" : "", server_port(srv));
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
    return rc;
}
