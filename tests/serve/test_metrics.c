/* test_metrics.c - the /metrics text: exact sample lines for known events
 * (bucket counts worked out by hand), label escaping, bounded series, and
 * the whole text checked by tests/serve/check_metrics.py: a hand-written
 * 0.0.4 grammar checker plus the official prometheus_client parser
 * (python3-prometheus-client), which also reads back the expected values
 * with labels unescaped. Run from the repository root (as `make unit` does). */
#include <criterion/criterion.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "serve/metrics.h"

#define CHECKER "tests/serve/check_metrics.py"
#define PYTHON "/usr/bin/python3"

static char dir[64];

static void setup(void) {
    snprintf(dir, sizeof dir, "/tmp/cgpt-metrics-XXXXXX");
    cr_assert(mkdtemp(dir));
}

static void teardown(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(metrics, .init = setup, .fini = teardown);

static const char *write_tmp(const char *name, const char *text) {
    static char path[2][128];
    static int k;
    k ^= 1;
    snprintf(path[k], sizeof path[k], "%s/%s", dir, name);
    FILE *f = fopen(path[k], "w");
    cr_assert_not_null(f);
    cr_assert_eq(fputs(text, f) >= 0, 1);
    fclose(f);
    return path[k];
}

/* Exit status of the checker on 'text' (and optional expectations); its
 * report goes to 'report' (the last lines fit the assertion message). */
static char report[4096];

static int run_checker(const char *text, const char *expect_json) {
    cr_assert_eq(access(CHECKER, R_OK), 0, "%s not found: run from the repository root", CHECKER);
    const char *mf = write_tmp("metrics.txt", text);
    char cmd[512], out[128];
    snprintf(out, sizeof out, "%s/checker.out", dir);
    if (expect_json) {
        const char *ef = write_tmp("expect.json", expect_json);
        snprintf(cmd, sizeof cmd, "%s %s %s %s >%s 2>&1", PYTHON, CHECKER, mf, ef, out);
    } else {
        snprintf(cmd, sizeof cmd, "%s %s %s >%s 2>&1", PYTHON, CHECKER, mf, out);
    }
    int rc = system(cmd);
    FILE *f = fopen(out, "r");
    size_t n = f ? fread(report, 1, sizeof report - 1, f) : 0;
    report[n] = '\0';
    if (f)
        fclose(f);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : 255;
}

/* 'line' appears as a whole line of 'text'. */
static bool has_line(const char *text, const char *line) {
    size_t n = strlen(line);
    for (const char *p = text; (p = strstr(p, line)); p++)
        if ((p == text || p[-1] == '\n') && p[n] == '\n')
            return true;
    return false;
}

#define ASSERT_LINE(text, line) cr_assert(has_line(text, line), "missing line: %s\n%s", line, text)

static const char WEIRD_ROUTE[] = "we\"ird\\path\n";
static const char WEIRD_MODEL[] = "a\"b\\c";

static void fill(Metrics *m) {
    for (int i = 0; i < 3; i++)
        metrics_http(m, "/v1/chat/completions", 200);
    metrics_http(m, "/v1/models", 200);
    metrics_http(m, "/v1/chat/completions", 429);
    metrics_http(m, "/v1/chat/completions", 429);
    metrics_http(m, WEIRD_ROUTE, 500);
    metrics_refused(m, "rate_limit");
    metrics_refused(m, "rate_limit");
    metrics_refused(m, "queue_full");
    /* TTFT: le is inclusive, so 0.005 counts in the 0.005 bucket. */
    const double ttft[] = {0.003, 0.005, 0.02, 0.7, 3, 100, -1, NAN};
    for (size_t i = 0; i < sizeof ttft / sizeof ttft[0]; i++)
        metrics_ttft(m, ttft[i]);
    const double itl[] = {0.0005, 0.001, 0.3, 2};
    for (size_t i = 0; i < sizeof itl / sizeof itl[0]; i++)
        metrics_itl(m, itl[i]);
}

static void fill_stats(SchedStats st[2]) {
    memset(st, 0, 2 * sizeof *st);
    st[0] = (SchedStats){.running = 3,
                         .queued = 1,
                         .kv_blocks_used = 40,
                         .kv_blocks_free = 24,
                         .kv_blocks_total = 64,
                         .kv_blocks_cached = 5,
                         .kv_bytes_resident = 123456789,
                         .requests_cancelled = 2,
                         .tokens_prompt = 1000,
                         .tokens_cached = 256,
                         .tokens_generated = 500,
                         .prefix_hits = 4,
                         .busy_seconds = 2.0};
    st[1] =
        (SchedStats){.running = 0, .kv_blocks_free = 8, .tokens_generated = 0, .busy_seconds = 0};
}

/* Two models as the pool lists them: the first loaded (0.5 s to load),
 * the second unloaded. */
static void fill_models(PoolInfo *pm, const char *a, const char *b) {
    SchedStats st[2];
    fill_stats(st);
    memset(pm, 0, 2 * sizeof *pm);
    snprintf(pm[0].id, sizeof pm[0].id, "%s", a);
    snprintf(pm[1].id, sizeof pm[1].id, "%s", b);
    pm[0].state = POOL_LOADED;
    pm[0].load_seconds = 0.5;
    pm[1].state = POOL_UNLOADED;
    pm[0].stats = st[0];
    pm[1].stats = st[1];
}

Test(metrics, known_values) {
    Metrics *m = metrics_new();
    cr_assert_not_null(m);
    fill(m);
    PoolInfo models[2];
    fill_models(models, "mini", WEIRD_MODEL);
    PoolStats ps = {.loaded = 1,
                    .loading = 1,
                    .loads = 5,
                    .load_failures = 1,
                    .unloads_lru = 2,
                    .unloads_idle = 1,
                    .load_seconds_total = 1.25,
                    .bytes_loaded = 4096};
    char *text = metrics_render(m, models, 2, &ps, 7);
    cr_assert_not_null(text);

    ASSERT_LINE(text, "# TYPE cgpt_http_requests_total counter");
    ASSERT_LINE(text, "cgpt_http_requests_total{route=\"/v1/chat/completions\",code=\"200\"} 3");
    ASSERT_LINE(text, "cgpt_http_requests_total{route=\"/v1/chat/completions\",code=\"429\"} 2");
    ASSERT_LINE(text, "cgpt_http_requests_total{route=\"/v1/models\",code=\"200\"} 1");
    ASSERT_LINE(text, "cgpt_http_requests_total{route=\"we\\\"ird\\\\path\\n\",code=\"500\"} 1");
    ASSERT_LINE(text, "cgpt_requests_refused_total{reason=\"rate_limit\"} 2");
    ASSERT_LINE(text, "cgpt_requests_refused_total{reason=\"queue_full\"} 1");
    ASSERT_LINE(text, "cgpt_requests_running{model=\"mini\"} 3");
    ASSERT_LINE(text, "cgpt_requests_running{model=\"a\\\"b\\\\c\"} 0");
    ASSERT_LINE(text, "cgpt_requests_queued{model=\"mini\"} 1");
    ASSERT_LINE(text, "cgpt_prompt_tokens_total{model=\"mini\"} 1000");
    ASSERT_LINE(text, "cgpt_cached_prompt_tokens_total{model=\"mini\"} 256");
    ASSERT_LINE(text, "cgpt_generated_tokens_total{model=\"mini\"} 500");
    ASSERT_LINE(text, "cgpt_generation_tokens_per_second{model=\"mini\"} 250");
    ASSERT_LINE(text, "cgpt_generation_tokens_per_second{model=\"a\\\"b\\\\c\"} 0");
    ASSERT_LINE(text, "cgpt_kv_blocks_used{model=\"mini\"} 40");
    ASSERT_LINE(text, "cgpt_kv_blocks_free{model=\"mini\"} 24");
    ASSERT_LINE(text, "cgpt_kv_blocks_free{model=\"a\\\"b\\\\c\"} 8");
    ASSERT_LINE(text, "cgpt_kv_blocks_cached{model=\"mini\"} 5");
    ASSERT_LINE(text, "cgpt_kv_resident_bytes{model=\"mini\"} 123456789");
    ASSERT_LINE(text, "cgpt_prefix_cache_hits_total{model=\"mini\"} 4");
    ASSERT_LINE(text, "cgpt_requests_cancelled_total{model=\"mini\"} 2");
    ASSERT_LINE(text, "cgpt_connections_open 7");
    /* the pool's */
    ASSERT_LINE(text, "cgpt_models_loaded 1");
    ASSERT_LINE(text, "cgpt_models_loading 1");
    ASSERT_LINE(text, "cgpt_model_loaded{model=\"mini\"} 1");
    ASSERT_LINE(text, "cgpt_model_loaded{model=\"a\\\"b\\\\c\"} 0");
    ASSERT_LINE(text, "cgpt_model_last_load_seconds{model=\"mini\"} 0.5");
    ASSERT_LINE(text, "cgpt_model_loads_total 5");
    ASSERT_LINE(text, "cgpt_model_load_failures_total 1");
    ASSERT_LINE(text, "cgpt_model_load_seconds_total 1.25");
    ASSERT_LINE(text, "cgpt_model_unloads_total{reason=\"lru\"} 2");
    ASSERT_LINE(text, "cgpt_model_unloads_total{reason=\"idle\"} 1");
    ASSERT_LINE(text, "cgpt_model_unloads_total{reason=\"removed\"} 0");
    ASSERT_LINE(text, "cgpt_model_memory_bytes 4096");
    /* TTFT observations 0.003 0.005 0.02 0.7 3 100 (-1 and NaN ignored). */
    static const char *const ttft_lines[] = {
        "cgpt_time_to_first_token_seconds_bucket{le=\"0.005\"} 2",
        "cgpt_time_to_first_token_seconds_bucket{le=\"0.01\"} 2",
        "cgpt_time_to_first_token_seconds_bucket{le=\"0.025\"} 3",
        "cgpt_time_to_first_token_seconds_bucket{le=\"0.05\"} 3",
        "cgpt_time_to_first_token_seconds_bucket{le=\"0.1\"} 3",
        "cgpt_time_to_first_token_seconds_bucket{le=\"0.25\"} 3",
        "cgpt_time_to_first_token_seconds_bucket{le=\"0.5\"} 3",
        "cgpt_time_to_first_token_seconds_bucket{le=\"1\"} 4",
        "cgpt_time_to_first_token_seconds_bucket{le=\"2.5\"} 4",
        "cgpt_time_to_first_token_seconds_bucket{le=\"5\"} 5",
        "cgpt_time_to_first_token_seconds_bucket{le=\"10\"} 5",
        "cgpt_time_to_first_token_seconds_bucket{le=\"+Inf\"} 6",
        "cgpt_time_to_first_token_seconds_sum 103.728",
        "cgpt_time_to_first_token_seconds_count 6",
        /* ITL 0.0005 0.001 0.3 2 */
        "cgpt_inter_token_latency_seconds_bucket{le=\"0.001\"} 2",
        "cgpt_inter_token_latency_seconds_bucket{le=\"0.25\"} 2",
        "cgpt_inter_token_latency_seconds_bucket{le=\"0.5\"} 3",
        "cgpt_inter_token_latency_seconds_bucket{le=\"1\"} 3",
        "cgpt_inter_token_latency_seconds_bucket{le=\"+Inf\"} 4",
        "cgpt_inter_token_latency_seconds_count 4",
    };
    for (size_t i = 0; i < sizeof ttft_lines / sizeof ttft_lines[0]; i++)
        ASSERT_LINE(text, ttft_lines[i]);
    /* The TTFT bucket bounds are exactly the documented ones (12 with +Inf). */
    int n_buckets = 0;
    for (const char *p = text; (p = strstr(p, "cgpt_time_to_first_token_seconds_bucket{")); p++)
        n_buckets++;
    cr_assert_eq(n_buckets, 12);

    /* The parsed values, label values unescaped by the client parser. */
    static const char expect[] =
        "[[\"cgpt_http_requests_total\", {\"route\": \"we\\\"ird\\\\path\\n\", \"code\": \"500\"}, "
        "1],"
        " [\"cgpt_http_requests_total\", {\"route\": \"/v1/chat/completions\", \"code\": \"200\"}, "
        "3],"
        " [\"cgpt_requests_running\", {\"model\": \"a\\\"b\\\\c\"}, 0],"
        " [\"cgpt_kv_blocks_free\", {\"model\": \"a\\\"b\\\\c\"}, 8],"
        " [\"cgpt_generation_tokens_per_second\", {\"model\": \"mini\"}, 250],"
        " [\"cgpt_time_to_first_token_seconds_bucket\", {\"le\": \"0.005\"}, 2],"
        " [\"cgpt_time_to_first_token_seconds_bucket\", {\"le\": \"+Inf\"}, 6],"
        " [\"cgpt_time_to_first_token_seconds_sum\", {}, 103.728],"
        " [\"cgpt_inter_token_latency_seconds_count\", {}, 4],"
        " [\"cgpt_connections_open\", {}, 7]]";
    cr_assert_eq(run_checker(text, expect), 0, "check_metrics.py: %s\non:\n%s", report, text);
    free(text);
    metrics_free(m);
}

Test(metrics, empty_and_no_models) {
    Metrics *m = metrics_new();
    char *text = metrics_render(m, NULL, 0, NULL, 0);
    cr_assert_not_null(text);
    ASSERT_LINE(text, "cgpt_time_to_first_token_seconds_bucket{le=\"+Inf\"} 0");
    ASSERT_LINE(text, "cgpt_time_to_first_token_seconds_count 0");
    ASSERT_LINE(text, "cgpt_connections_open 0");
    cr_assert_null(strstr(text, "model="));
    cr_assert_eq(run_checker(text, NULL), 0, "check_metrics.py: %s\non:\n%s", report, text);
    free(text);
    metrics_free(m);
}

/* The checker itself must reject broken text (an oracle that cannot fail
 * proves nothing). Each case breaks one rule of a valid rendering. */
Test(metrics, checker_rejects_broken_text) {
    Metrics *m = metrics_new();
    fill(m);
    PoolInfo models[2];
    fill_models(models, "mini", "x");
    char *good = metrics_render(m, models, 2, NULL, 1);
    cr_assert_eq(run_checker(good, NULL), 0, "valid text rejected: %s\n%s", report, good);
    static const struct {
        const char *from, *to;
    } breaks[] = {
        {"_bucket{le=\"0.5\"} 3", "_bucket{le=\"0.5\"} 2"},   /* not cumulative */
        {"_bucket{le=\"+Inf\"} 6", "_bucket{le=\"+Inf\"} 7"}, /* +Inf != count */
        {"# TYPE cgpt_connections_open gauge\n", ""},         /* sample without TYPE */
        {"route=\"/v1/models\"", "route=\"/v1/mo\"dels\""},   /* bad escaping */
        {"cgpt_connections_open 1", "cgpt_connections_open one"},
        {"# TYPE cgpt_kv_blocks_free gauge", "# TYPE cgpt_kv_blocks_free counter"},
        {"cgpt_prompt_tokens_total{model=\"mini\"} 1000",
         "cgpt_prompt_tokens_total{model=\"mini\" } 1000"},
    };
    for (size_t i = 0; i < sizeof breaks / sizeof breaks[0]; i++) {
        const char *at = strstr(good, breaks[i].from);
        cr_assert_not_null(at, "break %zu: '%s' not in the text", i, breaks[i].from);
        size_t nf = strlen(breaks[i].from), nt = strlen(breaks[i].to), ng = strlen(good);
        char *bad = malloc(ng - nf + nt + 1);
        size_t off = (size_t)(at - good);
        memcpy(bad, good, off);
        memcpy(bad + off, breaks[i].to, nt);
        memcpy(bad + off + nt, at + nf, ng - off - nf + 1);
        cr_assert_eq(run_checker(bad, NULL), 1, "break %zu (%s -> %s) was accepted: %s", i,
                     breaks[i].from, breaks[i].to, report);
        free(bad);
    }
    free(good);
    metrics_free(m);
}

Test(metrics, series_are_bounded) {
    Metrics *m = metrics_new();
    char route[64];
    for (int i = 0; i < 1000; i++) {
        snprintf(route, sizeof route, "/x/%d", i);
        metrics_http(m, route, 404);
    }
    for (int i = 0; i < 100; i++) {
        snprintf(route, sizeof route, "reason-%d", i);
        metrics_refused(m, route);
    }
    char long_route[300];
    memset(long_route, 'r', sizeof long_route - 1);
    long_route[sizeof long_route - 1] = '\0';
    metrics_http(m, long_route, 200);
    char *text = metrics_render(m, NULL, 0, NULL, 0);
    cr_assert_not_null(text);
    int n_series = 0;
    unsigned long long total = 0;
    for (const char *p = text; (p = strstr(p, "\ncgpt_http_requests_total{")); p++) {
        n_series++;
        const char *sp = strchr(p + 1, '\n');
        cr_assert_not_null(sp);
        const char *v = sp;
        while (v[-1] != ' ')
            v--;
        total += strtoull(v, NULL, 10);
    }
    cr_assert(n_series <= 256, "%d http series", n_series);
    cr_assert_eq(total, 1001, "every response counted once (got %llu)", total);
    ASSERT_LINE(text, "cgpt_http_requests_total{route=\"/x/0\",code=\"404\"} 1");
    cr_assert(strstr(text, "route=\"other\",code=\"404\"}"), "overflow not counted as other");
    cr_assert(strlen(text) < 64 * 1024, "%zu bytes", strlen(text));
    cr_assert_eq(run_checker(text, NULL), 0, "check_metrics.py: %s\non:\n%s", report, text);
    free(text);
    metrics_free(m);
}

static void *hammer(void *p) {
    Metrics *m = p;
    for (int i = 0; i < 10000; i++) {
        metrics_http(m, i % 2 ? "/a" : "/b", 200);
        metrics_ttft(m, 0.001 * (i % 100));
    }
    return NULL;
}

Test(metrics, threads) {
    Metrics *m = metrics_new();
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, hammer, m), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    char *text = metrics_render(m, NULL, 0, NULL, 0);
    ASSERT_LINE(text, "cgpt_http_requests_total{route=\"/a\",code=\"200\"} 20000");
    ASSERT_LINE(text, "cgpt_http_requests_total{route=\"/b\",code=\"200\"} 20000");
    ASSERT_LINE(text, "cgpt_time_to_first_token_seconds_count 40000");
    /* 0.000 .. 0.005: 6 values of each 100 -> 2400 */
    ASSERT_LINE(text, "cgpt_time_to_first_token_seconds_bucket{le=\"0.005\"} 2400");
    free(text);
    metrics_free(m);
}
