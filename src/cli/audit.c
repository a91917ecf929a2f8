/* audit.c - `cgpt audit`: the moderation audit of a data directory, newest
 * first (store/store.h store_audit_list).
 *
 *   cgpt audit [--since WHEN] [--category C] [--action flag|block]
 *              [--direction input|output] [--user NAME] [--key NAME]
 *              [--limit N] [--json] [--data-dir DIR]
 *
 * WHEN is a duration back from now (30m, 12h, 7d) or a date (2026-12-01,
 * UTC). Prints a table (time UTC, action, direction, categories, who,
 * route, the content's hash prefix), or with --json one JSON object a
 * line with every field. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "cli/common.h"
#include "store/store.h"

enum { O_SINCE = 1, O_CATEGORY, O_ACTION, O_DIRECTION, O_USER, O_KEY, O_LIMIT, O_JSON, O_DATA_DIR };

static const ArgOpt AUDIT_OPTS[] = {
    {O_SINCE, "--since", "WHEN", "only events since WHEN: 30m, 12h, 7d or a date 2026-12-01"},
    {O_CATEGORY, "--category", "C", "only events naming category C (as /v1/moderations spells it)"},
    {O_ACTION, "--action", "A", "only flag or block"},
    {O_DIRECTION, "--direction", "D", "only input or output"},
    {O_USER, "--user", "NAME", "only the page user NAME"},
    {O_KEY, "--key", "NAME", "only the API key NAME"},
    {O_LIMIT, "--limit", "N", "at most N events (default 100)"},
    {O_JSON, "--json", NULL, "one JSON object a line, every field"},
    {O_DATA_DIR, "--data-dir", "DIR", "the server's data (default $CGPT_DATA_DIR, else ~/.cgpt)"},
    {0},
};

/* "30m" / "12h" / "7d" back from now, or "YYYY-MM-DD" (UTC). */
static Status parse_since(const char *v, long long *out, Err *err) {
    char unit = 0;
    long n = 0;
    int used = 0;
    if (sscanf(v, "%ld%c%n", &n, &unit, &used) == 2 && !v[used] && n >= 0 && n < 100000 &&
        (unit == 'm' || unit == 'h' || unit == 'd')) {
        long long mul = unit == 'm' ? 60 : unit == 'h' ? 3600 : 86400;
        *out = (long long)time(NULL) - n * mul;
        return STATUS_OK;
    }
    struct tm tm = {0};
    const char *end = strptime(v, "%Y-%m-%d", &tm);
    if (end && !*end) {
        *out = (long long)timegm(&tm);
        return STATUS_OK;
    }
    return err_set(err, STATUS_INVALID, "--since '%s': expected 30m, 12h, 7d or a date YYYY-MM-DD",
                   v);
}

static int cmd_audit(int argc, char **argv) {
    StoreAuditFilter f = {.limit = 100};
    const char *data_dir = NULL, *v;
    bool as_json = false;
    long limit = 100;
    Err err = {0};
    Args a = args_start(argc, argv, 1);
    for (int id; (id = cli_next(&a, &CLI_AUDIT, &v, &err)) != ARG_END;) {
        Status s = STATUS_OK;
        switch (id) {
        case ARG_ERROR: return cli_fail("audit", &err);
        case ARG_HELP: cli_help(&CLI_AUDIT); return 0;
        case ARG_POSITIONAL:
            err_set(&err, STATUS_INVALID, "unexpected argument '%s'", v);
            return cli_fail("audit", &err);
        case O_SINCE: s = parse_since(v, &f.since, &err); break;
        case O_CATEGORY:
            if (safe_cat_parse(v, strlen(v)) < 0)
                s = err_set(&err, STATUS_INVALID,
                            "--category '%s': not a category (harassment, hate/threatening, ...)",
                            v);
            f.category = v;
            break;
        case O_ACTION:
            if (strcmp(v, "flag") && strcmp(v, "block"))
                s = err_set(&err, STATUS_INVALID, "--action: flag or block, not '%s'", v);
            f.action = v;
            break;
        case O_DIRECTION:
            if (strcmp(v, "input") && strcmp(v, "output"))
                s = err_set(&err, STATUS_INVALID, "--direction: input or output, not '%s'", v);
            f.direction = v;
            break;
        case O_USER: f.user = v; break;
        case O_KEY: f.key_name = v; break;
        case O_LIMIT: s = args_int(a.opt, v, 1, STORE_AUDIT_LIST_MAX, &limit, &err); break;
        case O_JSON: as_json = true; break;
        case O_DATA_DIR: data_dir = v; break;
        }
        if (s)
            return cli_fail("audit", &err);
    }
    f.limit = (int)limit;
    Store *st = NULL;
    json_t *rows = NULL;
    if (store_open(&st, cli_data_dir(data_dir), &err) || store_audit_list(st, &f, &rows, &err)) {
        store_close(st);
        return cli_fail("audit", &err);
    }
    store_close(st);
    size_t i;
    json_t *r;
    if (!as_json && json_array_size(rows))
        printf("%-20s %-6s %-7s %-44s %-20s %-22s %s\n", "time (UTC)", "action", "dir",
               "categories", "who", "route", "content");
    json_array_foreach(rows, i, r) {
        if (as_json) {
            char *s = json_dumps(r, JSON_COMPACT | JSON_REAL_PRECISION(4));
            puts(s ? s : "{}");
            free(s);
            continue;
        }
        time_t t = (time_t)json_integer_value(json_object_get(r, "created"));
        struct tm tm;
        char when[32], cats[256] = "", who[96];
        strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", gmtime_r(&t, &tm));
        size_t k;
        json_t *c;
        json_array_foreach(json_object_get(r, "categories"), k, c) {
            size_t n = strlen(cats);
            snprintf(cats + n, sizeof cats - n, "%s%s", n ? "," : "", json_string_value(c));
        }
        const char *user = json_string_value(json_object_get(r, "user"));
        const char *key = json_string_value(json_object_get(r, "key"));
        snprintf(who, sizeof who, "%s%s%s", user && *user ? user : "",
                 user && *user && key && *key ? "/" : "",
                 key && *key ? key : (user && *user ? "" : "-"));
        printf("%-20s %-6s %-7s %-44s %-20s %-22s %.12s%s\n", when,
               json_string_value(json_object_get(r, "action")),
               json_string_value(json_object_get(r, "direction")), cats, who,
               json_string_value(json_object_get(r, "route")),
               json_string_value(json_object_get(r, "content_hash")),
               json_string_value(json_object_get(r, "error"))[0] ? " (classifier error)" : "");
    }
    if (!as_json && !json_array_size(rows))
        fprintf(stderr, "cgpt audit: no events\n");
    json_decref(rows);
    return 0;
}

const CliCommand CLI_AUDIT = {
    .name = "audit",
    .synopsis = "[--since WHEN] [--category C] [--action flag|block] [options]",
    .summary = "the moderation audit: every flag and block, newest first",
    .opts = AUDIT_OPTS,
    .main = cmd_audit,
};
