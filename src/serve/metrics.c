/* metrics.c - counters, histograms and the Prometheus text rendering.
 *
 * Series with labels the server chooses (route, code, reason) live in small
 * fixed tables; a label value never seen before takes a new row until the
 * table is full, after which it is counted under "other" (a route) or
 * dropped (a reason): the set of series stays bounded whatever clients
 * send (METRICS_OTHER_RESERVE rows stay free for "other"). Per-model numbers are not stored here:
 * they come from the scheduler's stats at render time.
 *
 * Values: counters as integers; floats in the shortest form that reads
 * back exactly, with +Inf/-Inf/NaN spelled as the format wants. Label
 * values escape backslash, double quote and newline. */
#include "serve/metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define METRICS_MAX_HTTP 128     /* (route, code) series */
#define METRICS_OTHER_RESERVE 16 /* of those, kept for route "other" */
#define METRICS_MAX_REASONS 16   /* refusal reasons */
#define METRICS_LABEL_MAX 64     /* bytes of a route or reason kept */

static const double TTFT_BOUNDS[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
static const double ITL_BOUNDS[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1};
#define N_TTFT ((int)(sizeof TTFT_BOUNDS / sizeof TTFT_BOUNDS[0]))
#define N_ITL ((int)(sizeof ITL_BOUNDS / sizeof ITL_BOUNDS[0]))
#define HIST_MAX_BOUNDS 16

typedef struct {
    const double *bounds; /* ascending; +Inf implied */
    int n_bounds;
    uint64_t counts[HIST_MAX_BOUNDS + 1]; /* per bucket, not cumulative; last = +Inf */
    uint64_t count;
    double sum;
} Histogram;

typedef struct {
    char route[METRICS_LABEL_MAX + 1];
    int code;
    uint64_t n;
} HttpSeries;

typedef struct {
    char reason[METRICS_LABEL_MAX + 1];
    uint64_t n;
} RefusedSeries;

struct Metrics {
    pthread_mutex_t mu;
    HttpSeries http[METRICS_MAX_HTTP];
    int n_http;
    RefusedSeries refused[METRICS_MAX_REASONS];
    int n_refused;
    Histogram ttft, itl;
    uint64_t moderation[SAFE_N_DIR][SAFE_N_CAT][2]; /* [.][.][0 flag, 1 block] */
};

Metrics *metrics_new(void) {
    Metrics *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    if (pthread_mutex_init(&m->mu, NULL) != 0) {
        free(m);
        return NULL;
    }
    _Static_assert(N_TTFT <= HIST_MAX_BOUNDS && N_ITL <= HIST_MAX_BOUNDS, "histogram bounds");
    m->ttft.bounds = TTFT_BOUNDS;
    m->ttft.n_bounds = N_TTFT;
    m->itl.bounds = ITL_BOUNDS;
    m->itl.n_bounds = N_ITL;
    return m;
}

void metrics_free(Metrics *m) {
    if (!m)
        return;
    pthread_mutex_destroy(&m->mu);
    free(m);
}

/* ---- recording ---- */

/* Labels are kept (and compared) truncated to METRICS_LABEL_MAX bytes. */
static void copy_label(char dst[METRICS_LABEL_MAX + 1], const char *src) {
    snprintf(dst, METRICS_LABEL_MAX + 1, "%s", src ? src : "");
}

static bool label_eq(const char *stored, const char *given) {
    char t[METRICS_LABEL_MAX + 1];
    copy_label(t, given);
    return !strcmp(stored, t);
}

static HttpSeries *http_series(Metrics *m, const char *route, int code) {
    for (int i = 0; i < m->n_http; i++)
        if (m->http[i].code == code && label_eq(m->http[i].route, route))
            return &m->http[i];
    bool other = route && !strcmp(route, "other");
    if (m->n_http < (other ? METRICS_MAX_HTTP : METRICS_MAX_HTTP - METRICS_OTHER_RESERVE)) {
        HttpSeries *h = &m->http[m->n_http++];
        copy_label(h->route, route);
        h->code = code;
        return h;
    }
    return other ? NULL : http_series(m, "other", code);
}

void metrics_http(Metrics *m, const char *route, int status) {
    pthread_mutex_lock(&m->mu);
    HttpSeries *h = http_series(m, route, status);
    if (h)
        h->n++;
    pthread_mutex_unlock(&m->mu);
}

void metrics_moderation(Metrics *m, SafeDir dir, unsigned categories, bool block) {
    if (dir < 0 || dir >= SAFE_N_DIR)
        return;
    pthread_mutex_lock(&m->mu);
    for (int c = 0; c < SAFE_N_CAT; c++)
        if (categories & (1u << c))
            m->moderation[dir][c][block]++;
    pthread_mutex_unlock(&m->mu);
}

void metrics_refused(Metrics *m, const char *reason) {
    pthread_mutex_lock(&m->mu);
    int i = 0;
    while (i < m->n_refused && !label_eq(m->refused[i].reason, reason))
        i++;
    if (i == m->n_refused && m->n_refused < METRICS_MAX_REASONS)
        copy_label(m->refused[m->n_refused++].reason, reason);
    if (i < m->n_refused)
        m->refused[i].n++;
    pthread_mutex_unlock(&m->mu);
}

static void hist_observe(Histogram *h, double v) {
    int b = 0;
    while (b < h->n_bounds && v > h->bounds[b]) /* le: v <= bound */
        b++;
    h->counts[b]++;
    h->count++;
    h->sum += v;
}

void metrics_ttft(Metrics *m, double seconds) {
    if (!(seconds >= 0) || isinf(seconds)) /* < 0: no first token; NaN never */
        return;
    pthread_mutex_lock(&m->mu);
    hist_observe(&m->ttft, seconds);
    pthread_mutex_unlock(&m->mu);
}

void metrics_itl(Metrics *m, double seconds) {
    if (!(seconds >= 0) || isinf(seconds))
        return;
    pthread_mutex_lock(&m->mu);
    hist_observe(&m->itl, seconds);
    pthread_mutex_unlock(&m->mu);
}

/* ---- text building ---- */

typedef struct {
    char *p;
    size_t len, cap;
    bool oom;
} Buf;

__attribute__((format(printf, 2, 3))) static void put(Buf *b, const char *fmt, ...) {
    if (b->oom)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = true;
            return;
        }
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = (b->cap + (size_t)n + 1) * 2;
        char *np = realloc(b->p, cap);
        if (!np) {
            b->oom = true;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
}

/* A label value with \ " and newline escaped. */
static void put_label_value(Buf *b, const char *s) {
    put(b, "\"");
    for (; s && *s; s++) {
        if (*s == '\\')
            put(b, "\\\\");
        else if (*s == '"')
            put(b, "\\\"");
        else if (*s == '\n')
            put(b, "\\n");
        else
            put(b, "%c", *s);
    }
    put(b, "\"");
}

/* Shortest decimal that reads back as the same double. */
static void fmt_double(double v, char out[40]) {
    if (isnan(v)) {
        strcpy(out, "NaN");
    } else if (isinf(v)) {
        strcpy(out, v > 0 ? "+Inf" : "-Inf");
    } else {
        for (int prec = 6; prec <= 17; prec++) {
            snprintf(out, 40, "%.*g", prec, v);
            if (strtod(out, NULL) == v)
                break;
        }
    }
}

static void put_double(Buf *b, double v) {
    char s[40];
    fmt_double(v, s);
    put(b, "%s", s);
}

static void put_header(Buf *b, const char *name, const char *type, const char *help) {
    put(b, "# HELP cgpt_%s %s\n# TYPE cgpt_%s %s\n", name, help, name, type);
}

static void put_hist(Buf *b, const char *name, const char *help, const Histogram *h) {
    put_header(b, name, "histogram", help);
    uint64_t cum = 0;
    for (int i = 0; i <= h->n_bounds; i++) {
        cum += h->counts[i];
        char le[40];
        fmt_double(i < h->n_bounds ? h->bounds[i] : INFINITY, le);
        put(b, "cgpt_%s_bucket{le=\"%s\"} %llu\n", name, le, (unsigned long long)cum);
    }
    put(b, "cgpt_%s_sum ", name);
    put_double(b, h->sum);
    put(b, "\ncgpt_%s_count %llu\n", name, (unsigned long long)h->count);
}

/* ---- per-model families ---- */

/* One per-model family: which field of SchedStats it shows. */
typedef struct {
    const char *name, *type, *help;
    size_t offset; /* of an int or uint64_t field of SchedStats */
    bool is_int;   /* the field is an int (gauges), else uint64_t */
    bool tokens_per_second;
} ModelFamily;

#define MF_INT(n, t, h, f)                                                                         \
    { n, t, h, offsetof(SchedStats, f), true, false }
#define MF_U64(n, t, h, f)                                                                         \
    { n, t, h, offsetof(SchedStats, f), false, false }

static const ModelFamily MODEL_FAMILIES[] = {
    MF_INT("requests_running", "gauge", "Requests being generated.", running),
    MF_INT("requests_queued", "gauge", "Requests waiting for admission.", queued),
    MF_U64("prompt_tokens_total", "counter", "Prompt tokens processed.", tokens_prompt),
    MF_U64("cached_prompt_tokens_total", "counter", "Prompt tokens taken from the prefix cache.",
           tokens_cached),
    MF_U64("generated_tokens_total", "counter", "Tokens generated.", tokens_generated),
    {"generation_tokens_per_second", "gauge", "Tokens generated per second of engine busy time.", 0,
     false, true},
    MF_INT("kv_blocks_used", "gauge", "KV cache blocks in use (including evictable cached ones).",
           kv_blocks_used),
    MF_INT("kv_blocks_free", "gauge", "KV cache blocks free.", kv_blocks_free),
    MF_INT("kv_blocks_cached", "gauge", "KV cache blocks held by the prefix cache.",
           kv_blocks_cached),
    MF_U64(
        "kv_resident_bytes", "gauge",
        "Bytes of the KV pool resident in memory (its pages are touched as blocks are first used).",
        kv_bytes_resident),
    MF_U64("prefix_cache_hits_total", "counter",
           "Requests that reused at least one cached prompt block.", prefix_hits),
    MF_U64("requests_cancelled_total", "counter", "Requests cancelled (client gone or shutdown).",
           requests_cancelled),
    MF_U64("embedding_requests_total", "counter", "Embedding requests answered (/v1/embeddings).",
           embed_requests),
    MF_U64("embedding_tokens_total", "counter", "Input tokens embedded.", tokens_embedded),
};

static void put_model_family(Buf *b, const ModelFamily *f, const PoolInfo *models, int n_models) {
    put_header(b, f->name, f->type, f->help);
    for (int i = 0; i < n_models; i++) {
        put(b, "cgpt_%s{model=", f->name);
        put_label_value(b, models[i].id);
        put(b, "} ");
        const SchedStats *st = &models[i].stats;
        if (f->tokens_per_second) {
            double tps = st->busy_seconds > 0 ? (double)st->tokens_generated / st->busy_seconds : 0;
            put_double(b, tps);
        } else if (f->is_int) {
            int v;
            memcpy(&v, (const char *)st + f->offset, sizeof v);
            put(b, "%d", v);
        } else {
            uint64_t v;
            memcpy(&v, (const char *)st + f->offset, sizeof v);
            put(b, "%llu", (unsigned long long)v);
        }
        put(b, "\n");
    }
}

/* ---- rendering ---- */

/* The pool's families: which models are loaded, loads, unloads, load time. */
static void put_pool(Buf *b, const PoolInfo *models, int n_models, const PoolStats *given) {
    static const PoolStats none;
    const PoolStats *ps = given ? given : &none;
    put_header(b, "models_loaded", "gauge", "Models loaded now.");
    put(b, "cgpt_models_loaded %d\n", ps->loaded);
    put_header(b, "models_loading", "gauge", "Models being loaded now.");
    put(b, "cgpt_models_loading %d\n", ps->loading);
    put_header(b, "model_loaded", "gauge", "1 while the model is loaded, by model.");
    for (int i = 0; i < n_models; i++) {
        put(b, "cgpt_model_loaded{model=");
        put_label_value(b, models[i].id);
        put(b, "} %d\n", models[i].state == POOL_LOADED);
    }
    put_header(b, "model_last_load_seconds", "gauge",
               "How long the model's last load took, by model.");
    for (int i = 0; i < n_models; i++) {
        put(b, "cgpt_model_last_load_seconds{model=");
        put_label_value(b, models[i].id);
        put(b, "} ");
        put_double(b, models[i].load_seconds);
        put(b, "\n");
    }
    put_header(b, "model_loads_total", "counter", "Model loads (on demand and at start).");
    put(b, "cgpt_model_loads_total %llu\n", (unsigned long long)ps->loads);
    put_header(b, "model_load_failures_total", "counter", "Model loads that failed.");
    put(b, "cgpt_model_load_failures_total %llu\n", (unsigned long long)ps->load_failures);
    put_header(b, "model_load_seconds_total", "counter", "Seconds spent loading models.");
    put(b, "cgpt_model_load_seconds_total ");
    put_double(b, ps->load_seconds_total);
    put(b, "\n");
    put_header(b, "model_unloads_total", "counter",
               "Models unloaded, by reason: lru (room for another), idle (keep-alive), removed "
               "(gone from the library).");
    put(b, "cgpt_model_unloads_total{reason=\"lru\"} %llu\n", (unsigned long long)ps->unloads_lru);
    put(b, "cgpt_model_unloads_total{reason=\"idle\"} %llu\n",
        (unsigned long long)ps->unloads_idle);
    put(b, "cgpt_model_unloads_total{reason=\"removed\"} %llu\n",
        (unsigned long long)ps->unloads_removed);
    put_header(
        b, "model_memory_bytes", "gauge",
        "Bytes of the loaded models as the memory budget counts them (files plus KV pages).");
    put(b, "cgpt_model_memory_bytes %llu\n", (unsigned long long)ps->bytes_loaded);
}

char *metrics_render(Metrics *m, const PoolInfo *models, int n_models, const PoolStats *ps,
                     int connections_open) {
    Buf b = {0};
    b.cap = 8192;
    b.p = malloc(b.cap);
    if (!b.p)
        return NULL;
    b.p[0] = '\0';
    pthread_mutex_lock(&m->mu);
    put_header(&b, "http_requests_total", "counter", "HTTP responses sent, by route and status.");
    for (int i = 0; i < m->n_http; i++) {
        put(&b, "cgpt_http_requests_total{route=");
        put_label_value(&b, m->http[i].route);
        put(&b, ",code=\"%d\"} %llu\n", m->http[i].code, (unsigned long long)m->http[i].n);
    }
    put_header(&b, "requests_refused_total", "counter", "Requests refused, by reason.");
    for (int i = 0; i < m->n_refused; i++) {
        put(&b, "cgpt_requests_refused_total{reason=");
        put_label_value(&b, m->refused[i].reason);
        put(&b, "} %llu\n", (unsigned long long)m->refused[i].n);
    }
    put_header(&b, "moderation_total", "counter",
               "Moderation flags and blocks, by direction, category and action.");
    for (int d = 0; d < SAFE_N_DIR; d++)
        for (int c = 0; c < SAFE_N_CAT; c++)
            for (int a = 0; a < 2; a++)
                put(&b, "cgpt_moderation_total{direction=\"%s\",category=\"%s\",action=\"%s\"} %llu\n",
                    safe_dir_name((SafeDir)d), safe_cat_name(c), a ? "block" : "flag",
                    (unsigned long long)m->moderation[d][c][a]);
    Histogram ttft = m->ttft, itl = m->itl;
    pthread_mutex_unlock(&m->mu);

    for (size_t i = 0; i < sizeof MODEL_FAMILIES / sizeof MODEL_FAMILIES[0]; i++)
        put_model_family(&b, &MODEL_FAMILIES[i], models, n_models);
    put_pool(&b, models, n_models, ps);
    put_header(&b, "connections_open", "gauge", "HTTP connections open.");
    put(&b, "cgpt_connections_open %d\n", connections_open);
    put_hist(&b, "time_to_first_token_seconds", "Seconds from request to the first token.", &ttft);
    put_hist(&b, "inter_token_latency_seconds",
             "Mean seconds between tokens of a generation, as the client sees them.", &itl);
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}
