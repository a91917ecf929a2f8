/* main.c - the cgpt binary: the command list, dispatch, and the help that
 * is generated from each command's description (cli.h). */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/common.h"

#define CGPT_VERSION "0.1.0"
#define HELP_COL 26 /* column where an option's help starts */

const CliCommand *const CLI_COMMANDS[] = {
    &CLI_SERVE,      &CLI_PULL,     &CLI_LIST,  &CLI_SHOW,  &CLI_RM,   &CLI_USER,     &CLI_KEY,
    &CLI_BACKUP,     &CLI_MODERATE, &CLI_AUDIT, &CLI_CHAT,  &CLI_RUN,  &CLI_TOKENIZE, &CLI_TEMPLATE,
    &CLI_PERPLEXITY, &CLI_INFO,     &CLI_BENCH, &CLI_TRAIN, &CLI_EVAL, &CLI_QUANTIZE, &CLI_META,
};
const int CLI_N_COMMANDS = (int)(sizeof CLI_COMMANDS / sizeof CLI_COMMANDS[0]);

int cli_fail(const char *cmd, const Err *err) {
    fprintf(stderr, "cgpt %s: %s\n", cmd, err->msg[0] ? err->msg : status_name(err->status));
    return 1;
}

int cli_next(Args *a, const CliCommand *cmd, const char **val, Err *err) {
    static const ArgOpt none[] = {{0}};
    const ArgOpt *tables[2] = {cmd->opts ? cmd->opts : none, CLI_SAMPLING_OPTS};
    return args_next(a, tables, cmd->sampling ? 2 : 1, cmd->name, val, err);
}

static void print_opts(const ArgOpt *o) {
    for (; o->id; o++) {
        char left[96];
        int n = snprintf(left, sizeof left, "  ");
        for (const char *p = o->names; *p && n < (int)sizeof left - 1; p++) {
            if (*p == '|')
                n += snprintf(left + n, sizeof left - (size_t)n, ", ");
            else
                left[n++] = *p, left[n] = '\0';
        }
        if (o->arg && n < (int)sizeof left - 1)
            snprintf(left + n, sizeof left - (size_t)n, " %s", o->arg);
        if ((int)strlen(left) >= HELP_COL - 1)
            printf("%s\n%*s%s\n", left, HELP_COL, "", o->help);
        else
            printf("%-*s%s\n", HELP_COL, left, o->help);
    }
}

void cli_help(const CliCommand *cmd) {
    printf("usage: cgpt %s %s\n\n%s\n", cmd->name, cmd->synopsis, cmd->summary);
    if (cmd->opts && cmd->opts[0].id) {
        printf("\noptions:\n");
        print_opts(cmd->opts);
    }
    if (cmd->sampling) {
        printf("\nsampling (default: the model file's general.sampling.* value, else the one "
               "shown):\n");
        print_opts(CLI_SAMPLING_OPTS);
    }
    if (cmd->notes)
        printf("\n%s", cmd->notes);
}

int cli_dispatch(const CliCommand *parent, const CliCommand *const *subs, int n_subs, int argc,
                 char **argv) {
    size_t plen = strlen(parent->name);
    Err err = {0};
    if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        printf("usage: cgpt %s %s\n\n%s\n\nsubcommands:\n", parent->name, parent->synopsis,
               parent->summary);
        for (int i = 0; i < n_subs; i++)
            printf("  cgpt %s %s\n      %s\n", subs[i]->name, subs[i]->synopsis, subs[i]->summary);
        printf("\ncgpt %s SUBCOMMAND --help shows the options of one.\n", parent->name);
        return 0;
    }
    for (int i = 0; argc >= 2 && i < n_subs; i++)
        if (!strcmp(subs[i]->name + plen + 1, argv[1]))
            return subs[i]->main(argc - 1, argv + 1);
    char names[256];
    size_t n = 0;
    for (int i = 0; i < n_subs; i++)
        n += (size_t)snprintf(names + n, sizeof names - n, "%s%s", i ? ", " : "",
                              subs[i]->name + plen + 1);
    if (argc < 2)
        err_set(&err, STATUS_INVALID, "give one of %s (see 'cgpt %s --help')", names, parent->name);
    else
        err_set(&err, STATUS_INVALID, "unknown subcommand '%s' (use %s)", argv[1], names);
    return cli_fail(parent->name, &err);
}

static void usage(void) {
    printf("usage: cgpt <command> [options]\n\ncommands:\n");
    for (int i = 0; i < CLI_N_COMMANDS; i++) {
        const CliCommand *c = CLI_COMMANDS[i];
        printf("  cgpt %s %s\n      %s\n", c->name, c->synopsis, c->summary);
    }
    printf("\nWithout -m, a command uses the built-in model: $CGPT_MODEL, else\n"
           "models/cgpt-mini.gguf here or beside the binary.\n"
           "cgpt <command> --help shows the options of a command.\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "cgpt: no command given (try 'cgpt --help')\n");
        return 1;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage();
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("cgpt %s\n", CGPT_VERSION);
        return 0;
    }
    for (int i = 0; i < CLI_N_COMMANDS; i++)
        if (!strcmp(argv[1], CLI_COMMANDS[i]->name))
            return CLI_COMMANDS[i]->main(argc - 1, argv + 1);
    fprintf(stderr, "cgpt: unknown command '%s' (try 'cgpt --help')\n", argv[1]);
    return 1;
}
