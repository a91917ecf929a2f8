/* user.c - `cgpt user add|list|passwd|remove` (the page's accounts) and
 * `cgpt backup` (an online copy of the data directory's database).
 *
 * A password comes from the terminal (asked twice, not echoed) or, with
 * --password-stdin, from the first line of stdin (for scripts). The store
 * hashes it with Argon2id (store/users.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <sodium.h>

#include "cli/cli.h"
#include "cli/common.h"
#include "store/store.h"

enum { O_DATA_DIR = 1, O_ADMIN, O_PW_STDIN };

#define USER_OPT_DATA_DIR                                                                          \
    { O_DATA_DIR, "--data-dir", "DIR", "the server's data (default $CGPT_DATA_DIR, else ~/.cgpt)" }

static const ArgOpt ADD_OPTS[] = {
    {O_ADMIN, "--admin", NULL, "the user may manage the server (see docs/WEB.md)"},
    {O_PW_STDIN, "--password-stdin", NULL, "read the password from the first line of stdin"},
    USER_OPT_DATA_DIR,
    {0},
};
static const ArgOpt PASSWD_OPTS[] = {
    {O_PW_STDIN, "--password-stdin", NULL, "read the password from the first line of stdin"},
    USER_OPT_DATA_DIR,
    {0},
};
static const ArgOpt DIR_OPTS[] = {USER_OPT_DATA_DIR, {0}};

typedef struct {
    const char *name, *data_dir, *file;
    bool admin, pw_stdin;
} UserArgs;

static Status parse(const CliCommand *c, int argc, char **argv, int want_pos, UserArgs *ua,
                    bool *help, Err *err) {
    Args a = args_start(argc, argv, 1);
    const char *v;
    int n_pos = 0;
    for (int id; (id = cli_next(&a, c, &v, err)) != ARG_END;) {
        switch (id) {
        case ARG_ERROR: return err->status;
        case ARG_HELP: *help = true; return STATUS_OK;
        case O_DATA_DIR: ua->data_dir = v; break;
        case O_ADMIN: ua->admin = true; break;
        case O_PW_STDIN: ua->pw_stdin = true; break;
        case ARG_POSITIONAL:
            if (n_pos++ == want_pos)
                return err_set(err, STATUS_INVALID, "unexpected argument '%s'", v);
            if (c == &CLI_BACKUP)
                ua->file = v;
            else
                ua->name = v;
            break;
        }
    }
    if (n_pos < want_pos)
        return err_set(err, STATUS_INVALID, "give %s (see 'cgpt %s --help')",
                       c == &CLI_BACKUP ? "the backup FILE" : "the user's NAME", c->name);
    ua->data_dir = cli_data_dir(ua->data_dir);
    if (!ua->data_dir)
        return err_set(err, STATUS_INVALID,
                       "no data directory: pass --data-dir DIR or set CGPT_DATA_DIR or HOME");
    return STATUS_OK;
}

/* One line of at most STORE_PASSWORD_MAX bytes, without its newline. */
static Status read_line(FILE *f, char *out, size_t cap, Err *err) {
    if (!fgets(out, (int)cap, f))
        return err_set(err, STATUS_INVALID, "no password given (end of input)");
    size_t n = strlen(out);
    if (n && out[n - 1] != '\n' && !feof(f))
        return err_set(err, STATUS_LIMIT, "the password is longer than %d bytes",
                       STORE_PASSWORD_MAX);
    while (n && (out[n - 1] == '\n' || out[n - 1] == '\r'))
        out[--n] = '\0';
    return STATUS_OK;
}

static Status prompt(const char *what, char *out, size_t cap, Err *err) {
    struct termios old, quiet;
    bool tty = tcgetattr(STDIN_FILENO, &old) == 0;
    fprintf(stderr, "%s: ", what);
    fflush(stderr);
    if (tty) {
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        tcsetattr(STDIN_FILENO, TCSANOW, &quiet);
    }
    Status r = read_line(stdin, out, cap, err);
    if (tty) {
        tcsetattr(STDIN_FILENO, TCSANOW, &old);
        fputc('\n', stderr);
    }
    return r;
}

/* The new password: stdin's first line, or asked twice on the terminal. */
static Status get_password(const UserArgs *ua, char *pw, size_t cap, Err *err) {
    if (ua->pw_stdin)
        return read_line(stdin, pw, cap, err);
    if (!isatty(STDIN_FILENO))
        return err_set(err, STATUS_INVALID,
                       "stdin is not a terminal: pass the password with --password-stdin");
    char again[STORE_PASSWORD_MAX + 2];
    Status r = prompt("New password", pw, cap, err);
    if (!r)
        r = prompt("Again", again, sizeof again, err);
    if (!r && strcmp(pw, again) != 0)
        r = err_set(err, STATUS_INVALID, "the two passwords differ");
    sodium_memzero(again, sizeof again);
    return r;
}

static int user_main(const CliCommand *c, int argc, char **argv) {
    UserArgs ua = {0};
    Err err = {0};
    bool help = false;
    bool list = c == &CLI_USER_LIST, backup = c == &CLI_BACKUP;
    if (parse(c, argc, argv, list ? 0 : 1, &ua, &help, &err))
        return cli_fail(c->name, &err);
    if (help) {
        cli_help(c);
        return 0;
    }
    char pw[STORE_PASSWORD_MAX + 2] = "";
    if ((c == &CLI_USER_ADD || c == &CLI_USER_PASSWD) && get_password(&ua, pw, sizeof pw, &err))
        return cli_fail(c->name, &err);
    Store *s = NULL;
    int rc = 0;
    if (store_open(&s, ua.data_dir, &err)) {
        sodium_memzero(pw, sizeof pw);
        return cli_fail(c->name, &err);
    }
    if (c == &CLI_USER_ADD) {
        StoreUser u;
        if (store_user_add(s, ua.name, pw, ua.admin, &u, &err))
            rc = cli_fail(c->name, &err);
        else
            printf("user '%s' added%s\n", u.name, u.admin ? " (admin)" : "");
    } else if (c == &CLI_USER_PASSWD) {
        if (store_user_passwd(s, ua.name, pw, &err))
            rc = cli_fail(c->name, &err);
        else
            printf("password of '%s' changed; their sessions ended\n", ua.name);
    } else if (c == &CLI_USER_REMOVE) {
        if (store_user_remove(s, ua.name, &err))
            rc = cli_fail(c->name, &err);
        else
            printf("user '%s' removed, with their conversations, sessions and keys\n", ua.name);
    } else if (list) {
        StoreUser *users = NULL;
        int n = 0;
        if (store_user_list(s, &users, &n, &err)) {
            rc = cli_fail(c->name, &err);
        } else {
            printf("%-24s  %-5s  %s\n", "NAME", "ADMIN", "CREATED (unix s)");
            for (int i = 0; i < n; i++)
                printf("%-24s  %-5s  %lld\n", users[i].name, users[i].admin ? "yes" : "no",
                       users[i].created);
        }
        free(users);
    } else if (backup) {
        if (store_backup(s, ua.file, &err))
            rc = cli_fail(c->name, &err);
        else
            printf("backed up %s/cgpt.db to %s\n", ua.data_dir, ua.file);
    }
    sodium_memzero(pw, sizeof pw);
    store_close(s);
    return rc;
}

static int add_main(int argc, char **argv) { return user_main(&CLI_USER_ADD, argc, argv); }
static int list_main(int argc, char **argv) { return user_main(&CLI_USER_LIST, argc, argv); }
static int passwd_main(int argc, char **argv) { return user_main(&CLI_USER_PASSWD, argc, argv); }
static int remove_main(int argc, char **argv) { return user_main(&CLI_USER_REMOVE, argc, argv); }
static int backup_main(int argc, char **argv) { return user_main(&CLI_BACKUP, argc, argv); }

static const CliCommand *const USER_SUBS[] = {&CLI_USER_ADD, &CLI_USER_LIST, &CLI_USER_PASSWD,
                                              &CLI_USER_REMOVE};

static int cmd_user(int argc, char **argv) {
    return cli_dispatch(&CLI_USER, USER_SUBS, 4, argc, argv);
}

const CliCommand CLI_USER_ADD = {
    .name = "user add",
    .synopsis = "NAME [--admin] [--password-stdin] [--data-dir DIR]",
    .summary = "create an account for the web page (the password is asked for)",
    .opts = ADD_OPTS,
    .notes = "NAME: 1-64 of A-Z a-z 0-9 . _ -; the password: 8 to 1024 bytes.\n",
    .main = add_main,
};

const CliCommand CLI_USER_LIST = {
    .name = "user list",
    .synopsis = "[--data-dir DIR]",
    .summary = "the accounts: name, admin, created",
    .opts = DIR_OPTS,
    .main = list_main,
};

const CliCommand CLI_USER_PASSWD = {
    .name = "user passwd",
    .synopsis = "NAME [--password-stdin] [--data-dir DIR]",
    .summary = "set a new password; the user's sessions end",
    .opts = PASSWD_OPTS,
    .main = passwd_main,
};

const CliCommand CLI_USER_REMOVE = {
    .name = "user remove",
    .synopsis = "NAME [--data-dir DIR]",
    .summary = "remove an account with its conversations, sessions and keys",
    .opts = DIR_OPTS,
    .main = remove_main,
};

const CliCommand CLI_USER = {
    .name = "user",
    .synopsis = "add|list|passwd|remove ...",
    .summary = "the web page's accounts (passwords hashed with Argon2id)",
    .main = cmd_user,
};

const CliCommand CLI_BACKUP = {
    .name = "backup",
    .synopsis = "FILE [--data-dir DIR]",
    .summary = "copy the data directory's database to FILE, also while the server runs",
    .opts = DIR_OPTS,
    .notes = "Restore by stopping the server and putting FILE in place of DIR/cgpt.db.\n",
    .main = backup_main,
};
