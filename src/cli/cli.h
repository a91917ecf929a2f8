/* cli.h - the subcommands. Each is described by one CliCommand: its name,
 * synopsis, one-line summary and option table. `cgpt --help` lists them,
 * `cgpt CMD --help` prints one (cli_help), and the README's command list is
 * checked against that output (tests/cli/test_readme.py), so what a command
 * accepts is written down once.
 *
 * Each entry point returns the process exit code (0 ok, 1 bad input or
 * failure) and is the only code that prints to stdout. Errors are one line
 * on stderr: "cgpt <cmd>: <message>". */
#ifndef CGPT_CLI_CLI_H
#define CGPT_CLI_CLI_H

#include <stdbool.h>

#include "cli/args.h"
#include "core/err.h"

typedef struct {
    const char *name;                   /* "run"; "train sft" for a subcommand's subcommand */
    const char *synopsis;               /* what follows "cgpt NAME" in the usage line */
    const char *summary;                /* one line for the command list */
    const ArgOpt *opts;                 /* its own options (ends with id 0); may be NULL */
    bool sampling;                      /* also accepts CLI_SAMPLING_OPTS (common.h) */
    const char *notes;                  /* more text for --help, or NULL */
    int (*main)(int argc, char **argv); /* argv[0] is the command's name */
} CliCommand;

/* The top-level commands in the order `cgpt --help` lists them. */
extern const CliCommand *const CLI_COMMANDS[];
extern const int CLI_N_COMMANDS;

extern const CliCommand CLI_SERVE, CLI_KEY, CLI_CHAT, CLI_RUN, CLI_TOKENIZE, CLI_TEMPLATE,
    CLI_PERPLEXITY, CLI_INFO, CLI_BENCH, CLI_TRAIN, CLI_EVAL, CLI_QUANTIZE, CLI_META, CLI_USER,
    CLI_BACKUP, CLI_MODERATE, CLI_AUDIT, CLI_PULL, CLI_LIST, CLI_RM, CLI_SHOW;
/* Below `cgpt train`, `cgpt key` and `cgpt user`. */
extern const CliCommand CLI_TRAIN_TOKENIZER, CLI_TRAIN_PRETRAIN, CLI_TRAIN_SFT, CLI_KEY_ADD,
    CLI_KEY_LIST, CLI_KEY_REVOKE, CLI_USER_ADD, CLI_USER_LIST, CLI_USER_PASSWD, CLI_USER_REMOVE;

/* The next argument of 'cmd' (args_next over its table and, when it takes
 * them, the sampling options). */
int cli_next(Args *a, const CliCommand *cmd, const char **val, Err *err);

/* A command made of subcommands ('parent' names the group, e.g. "key"):
 * runs the one argv[1] names with argv shifted by one, prints the list
 * for --help, and fails with one line for a missing or unknown name. */
int cli_dispatch(const CliCommand *parent, const CliCommand *const *subs, int n_subs, int argc,
                 char **argv);

/* Print cmd's usage, summary, options and notes to stdout. */
void cli_help(const CliCommand *cmd);

/* Print "cgpt <cmd>: <err->msg>" to stderr and return 1. */
int cli_fail(const char *cmd, const Err *err);

#endif
