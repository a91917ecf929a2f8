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

enum { O_DATA_DIR = 1, O_RPM, O_TPM, O_MAX_STREAMS };

#define KEY_OPT_DATA_DIR                                                                           \
    {                                                                                              \
        O_DATA_DIR, "--data-dir", "DIR",                                                           \
            "where the keys live (default $CGPT_DATA_DIR, else ~/.cgpt)"                           \
    }

static const ArgOpt KEY_ADD_OPTS[] = {
    {O_RPM, "--rpm", "N", "requests per minute (0 = the server's default)"},
    {O_TPM, "--tpm", "N", "tokens per minute, prompt + completion (0 = default)"},
    {O_MAX_STREAMS, "--max-streams", "N", "concurrent requests (0 = default)"},
    KEY_OPT_DATA_DIR,
    {0},
};

static const ArgOpt KEY_DIR_OPTS[] = {KEY_OPT_DATA_DIR, {0}};

typedef struct {
    const char *name;
    const char *data_dir;
    long rpm, tpm, max_streams;
} KeyArgs;

/* The arguments after the subcommand (argv[0]); want_name: one NAME. */
static Status parse(int argc, char **argv, const CliCommand *cmd, bool want_name, KeyArgs *ka,
                    bool *help, Err *err) {
    Args a = args_start(argc, argv, 1);
    const char *v;
    for (int id; (id = cli_next(&a, cmd, &v, err)) != ARG_END;) {
        Status s = STATUS_OK;
        switch (id) {
        case ARG_ERROR: return err->status;
        case ARG_HELP: *help = true; return STATUS_OK;
        case ARG_POSITIONAL:
            if (want_name && !ka->name)
                ka->name = v;
            else
                s = err_set(err, STATUS_INVALID, "unexpected argument '%s'", v);
            break;
        case O_DATA_DIR: ka->data_dir = v; break;
        case O_RPM: s = args_int(a.opt, v, 0, KEY_LIMIT_MAX, &ka->rpm, err); break;
        case O_TPM: s = args_int(a.opt, v, 0, KEY_LIMIT_MAX, &ka->tpm, err); break;
        case O_MAX_STREAMS: s = args_int(a.opt, v, 0, KEY_LIMIT_MAX, &ka->max_streams, err); break;
        }
        if (s)
            return s;
    }
    if (want_name && !ka->name)
        return err_set(err, STATUS_INVALID, "give the key's NAME (see 'cgpt %s --help')",
                       cmd->name);
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
    if (store_key_list(s, -1, &keys, &n, &err))
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

/* One key subcommand: argv[0] is its name. */
static int key_main(const CliCommand *c, int argc, char **argv) {
    Err err = {0};
    KeyArgs ka = {0};
    bool help = false, list = c == &CLI_KEY_LIST, revoke = c == &CLI_KEY_REVOKE;
    if (parse(argc, argv, c, !list, &ka, &help, &err))
        return cli_fail(c->name, &err);
    if (help) {
        cli_help(c);
        return 0;
    }
    const char *cmd = c->name;
    Store *s = NULL;
    if (store_open(&s, ka.data_dir, &err))
        return cli_fail(cmd, &err);
    int rc = 0;
    if (list) {
        rc = key_list(s);
    } else if (revoke) {
        if (store_key_revoke(s, 0, ka.name, &err))
            rc = cli_fail(cmd, &err);
        else
            fprintf(stderr, "cgpt key revoke: key '%s' revoked\n", ka.name);
    } else {
        char key[STORE_KEY_TEXT_LEN + 1];
        if (store_key_add(s, 0, ka.name, (int)ka.rpm, (int)ka.tpm, (int)ka.max_streams, key,
                          &err)) {
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

static int key_add_main(int argc, char **argv) { return key_main(&CLI_KEY_ADD, argc, argv); }
static int key_list_main(int argc, char **argv) { return key_main(&CLI_KEY_LIST, argc, argv); }
static int key_revoke_main(int argc, char **argv) { return key_main(&CLI_KEY_REVOKE, argc, argv); }

static const CliCommand *const KEY_SUBS[] = {&CLI_KEY_ADD, &CLI_KEY_LIST, &CLI_KEY_REVOKE};

static int cmd_key(int argc, char **argv) {
    return cli_dispatch(&CLI_KEY, KEY_SUBS, 3, argc, argv);
}

const CliCommand CLI_KEY_ADD = {
    .name = "key add",
    .synopsis = "NAME [--rpm N] [--tpm N] [--max-streams N] [--data-dir DIR]",
    .summary = "create an API key; it is printed once (only its hash is stored)",
    .opts = KEY_ADD_OPTS,
    .notes = "NAME: 1-64 of A-Z a-z 0-9 . _ -\n",
    .main = key_add_main,
};

const CliCommand CLI_KEY_LIST = {
    .name = "key list",
    .synopsis = "[--data-dir DIR]",
    .summary = "the keys: name, created, active or revoked, limits (never the keys)",
    .opts = KEY_DIR_OPTS,
    .main = key_list_main,
};

const CliCommand CLI_KEY_REVOKE = {
    .name = "key revoke",
    .synopsis = "NAME [--data-dir DIR]",
    .summary = "revoke a key; a running server refuses it within a second",
    .opts = KEY_DIR_OPTS,
    .main = key_revoke_main,
};

const CliCommand CLI_KEY = {
    .name = "key",
    .synopsis = "add|list|revoke ...",
    .summary = "the server's API keys (shown once, stored hashed)",
    .main = cmd_key,
};
