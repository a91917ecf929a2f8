/* key.c - `cgpt key add|list|revoke`: the server's API keys in its data
 * directory (store/store.h).
 *
 *   cgpt key add NAME [--rpm N] [--tpm N] [--max-streams N] [--data-dir DIR]
 *       prints the new key on stdout (one line; the only time it is shown)
 *   cgpt key list [--data-dir DIR]
 *       a table: name, created (UTC), active/revoked, limits; never keys or hashes
 *   cgpt key revoke NAME [--data-dir DIR]
 *
 * --data-dir defaults to $CGPT_DATA_DIR, else $HOME/.cgpt (cli_data_dir). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "cli/common.h"
#include "store/store.h"

#define KEY_LIMIT_MAX 1000000000L /* largest --rpm/--tpm/--max-streams */

static const char KEY_USAGE[] =
    "usage: cgpt key add NAME [--rpm N] [--tpm N] [--max-streams N] [--data-dir DIR]\n"
    "       cgpt key list [--data-dir DIR]\n"
    "       cgpt key revoke NAME [--data-dir DIR]\n"
    "\n"
    "  NAME               1-64 of A-Z a-z 0-9 . _ -\n"
    "  --rpm N            requests per minute (0 = the server's default)\n"
    "  --tpm N            tokens per minute, prompt + completion (0 = default)\n"
    "  --max-streams N    concurrent requests (0 = default)\n"
    "  --data-dir DIR     where the keys live (default $CGPT_DATA_DIR, else $HOME/.cgpt)\n"
    "\n"
    "The key is printed once by 'add' and cannot be shown again; only its hash is stored.\n";

typedef struct {
    const char *name;
    const char *data_dir;
    long rpm, tpm, max_streams;
} KeyArgs;

/* Options after the subcommand; limits are accepted by 'add' only. */
static Status parse(int argc, char **argv, bool want_name, bool want_limits, KeyArgs *ka,
                    Err *err) {
    Args a = {argc, argv, 2};
    for (; a.i < argc; a.i++) {
        const char *o = argv[a.i], *v;
        Status s = STATUS_OK;
        long *lim = NULL;
        if (!strcmp(o, "--data-dir"))
            s = args_value(&a, &ka->data_dir, err);
        else if (want_limits && !strcmp(o, "--rpm"))
            lim = &ka->rpm;
        else if (want_limits && !strcmp(o, "--tpm"))
            lim = &ka->tpm;
        else if (want_limits && !strcmp(o, "--max-streams"))
            lim = &ka->max_streams;
        else if (o[0] == '-' && o[1] != '\0')
            s = err_set(err, STATUS_INVALID, "unknown option '%s'", o);
        else if (want_name && !ka->name)
            ka->name = o;
        else
            s = err_set(err, STATUS_INVALID, "unexpected argument '%s'", o);
        if (!s && lim && !(s = args_value(&a, &v, err)))
            s = args_int(o, v, 0, KEY_LIMIT_MAX, lim, err);
        if (s)
            return s;
    }
    if (want_name && !ka->name)
        return err_set(err, STATUS_INVALID, "give the key's NAME (see 'cgpt key --help')");
    ka->data_dir = cli_data_dir(ka->data_dir);
    if (!ka->data_dir)
        return err_set(err, STATUS_INVALID,
                       "no data directory: pass --data-dir DIR or set CGPT_DATA_DIR or HOME");
    return STATUS_OK;
}

static void format_limit(int v, char out[16]) {
    if (v == 0)
        snprintf(out, 16, "default");
    else
        snprintf(out, 16, "%d", v);
}

static void format_time(long long t, char out[32]) {
    time_t tt = (time_t)t;
    struct tm tm;
    if (!gmtime_r(&tt, &tm) || !strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(out, 32, "%lld", t);
}

/* A stored name printed safely (the database could have been edited). */
static void print_name(const char *name, int width) {
    int n = 0;
    for (; name[n]; n++)
        putchar((unsigned char)name[n] < 0x20 || name[n] == 0x7f ? '?' : name[n]);
    printf("%*s", width - n, "");
}

static int key_list(Store *s) {
    StoreKey *keys = NULL;
    int n = 0;
    Err err = {0};
    if (store_key_list(s, &keys, &n, &err))
        return cli_fail("key list", &err);
    int w = (int)strlen("NAME");
    for (int i = 0; i < n; i++)
        if ((int)strlen(keys[i].name) > w)
            w = (int)strlen(keys[i].name);
    printf("%-*s  %-20s  %-7s  %-10s  %-10s  %s\n", w, "NAME", "CREATED (UTC)", "STATUS", "RPM",
           "TPM", "STREAMS");
    for (int i = 0; i < n; i++) {
        char created[32], rpm[16], tpm[16], streams[16];
        format_time(keys[i].created, created);
        format_limit(keys[i].rpm, rpm);
        format_limit(keys[i].tpm, tpm);
        format_limit(keys[i].max_streams, streams);
        print_name(keys[i].name, w);
        printf("  %-20s  %-7s  %-10s  %-10s  %s\n", created, keys[i].revoked ? "revoked" : "active",
               rpm, tpm, streams);
    }
    free(keys);
    return 0;
}

int cmd_key(int argc, char **argv) {
    const char *sub = argc > 1 ? argv[1] : NULL;
    if (!sub) {
        Err err;
        err_set(&err, STATUS_INVALID, "give add, list or revoke (see 'cgpt key --help')");
        return cli_fail("key", &err);
    }
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            fputs(KEY_USAGE, stdout);
            return 0;
        }
    }
    bool add = !strcmp(sub, "add"), list = !strcmp(sub, "list"), revoke = !strcmp(sub, "revoke");
    Err err = {0};
    if (!add && !list && !revoke) {
        err_set(&err, STATUS_INVALID, "unknown subcommand '%s' (use add, list or revoke)", sub);
        return cli_fail("key", &err);
    }
    const char *cmd = add ? "key add" : list ? "key list" : "key revoke";
    KeyArgs ka = {0};
    if (parse(argc, argv, !list, add, &ka, &err))
        return cli_fail(cmd, &err);
    Store *s = NULL;
    if (store_open(&s, ka.data_dir, &err))
        return cli_fail(cmd, &err);
    int rc = 0;
    if (list) {
        rc = key_list(s);
    } else if (revoke) {
        if (store_key_revoke(s, ka.name, &err))
            rc = cli_fail(cmd, &err);
        else
            fprintf(stderr, "cgpt key revoke: key '%s' revoked\n", ka.name);
    } else {
        char key[STORE_KEY_TEXT_LEN + 1];
        if (store_key_add(s, ka.name, (int)ka.rpm, (int)ka.tpm, (int)ka.max_streams, key, &err)) {
            rc = cli_fail(cmd, &err);
        } else {
            printf("%s\n", key);
            fflush(stdout);
            fprintf(stderr,
                    "cgpt key add: key '%s' created; it is shown only this once, so store it "
                    "now\n",
                    ka.name);
        }
        explicit_bzero(key, sizeof key);
    }
    store_close(s);
    return rc;
}
