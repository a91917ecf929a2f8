/* args.h - the command line of the subcommands: option tables and a strict
 * scanner over them.
 *
 * Each subcommand describes the options it accepts in one ArgOpt table
 * (cli.h: CliCommand). That table is the single source of truth: the
 * scanner accepts exactly its spellings, `cgpt CMD --help` prints it, and
 * the README's command list is checked against that output by a test.
 * Options take their value from the next argument or after '=' in the long
 * form (--temp=0.5). Errors are reported through the caller (one line on
 * stderr, exit 1); nothing here prints. */
#ifndef CGPT_CLI_ARGS_H
#define CGPT_CLI_ARGS_H

#include <stdbool.h>
#include <stdint.h>

#include "core/err.h"

/* What args_next() returns besides an option's id (ids are > 0). */
enum {
    ARG_END = 0,         /* no arguments left */
    ARG_ERROR = -1,      /* 'err' says what */
    ARG_HELP = -2,       /* -h or --help (every command accepts it) */
    ARG_POSITIONAL = -3, /* *val is an argument that is not an option */
};

/* One option. A table ends with an entry whose id is 0. */
typedef struct {
    int id;            /* > 0: what args_next() returns for it */
    const char *names; /* spellings separated by '|': "-m|--model" */
    const char *arg;   /* the value's placeholder ("MODEL"), or NULL for a flag */
    const char *help;  /* one line, saying the default */
} ArgOpt;

typedef struct {
    int argc;
    char **argv;
    int i;           /* next argument to read */
    const char *opt; /* spelling of the option last returned (for messages) */
    char opt_buf[64];
} Args;

/* Scan from argv[first]. */
Args args_start(int argc, char **argv, int first);

/* The next argument, matched against the 'n_tables' tables: an option's id
 * (with *val its value, NULL for a flag), ARG_HELP, ARG_POSITIONAL (*val
 * the argument; "-" alone is positional), ARG_END, or ARG_ERROR for an
 * unknown option, a missing value or a value given to a flag:
 *   "unknown option '--tmp' (see cgpt run --help)". 'cmd' names the command
 * in that hint. */
int args_next(Args *a, const ArgOpt *const *tables, int n_tables, const char *cmd, const char **val,
              Err *err);

/* Parse a base-10 integer in [lo, hi] from 'opt's value 's'. */
Status args_int(const char *opt, const char *s, long lo, long hi, long *out, Err *err);
/* Parse a finite float in [lo, hi]. */
Status args_float(const char *opt, const char *s, double lo, double hi, double *out, Err *err);
/* Parse "1 2 3" (spaces/commas/tabs/newlines) into at most 'max' ints in
 * [0, INT32_MAX]; *n gets the count. */
Status args_int_list(const char *opt, const char *s, int32_t *out, int max, int *n, Err *err);

#endif
