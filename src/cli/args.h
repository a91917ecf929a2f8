/* args.h - tiny argument scanner for the subcommands.
 *
 * Each subcommand walks argv with args_next(); options take their value from
 * the next argument. Errors are reported through the caller (one line on
 * stderr, exit 1); nothing here prints. */
#ifndef CGPT_CLI_ARGS_H
#define CGPT_CLI_ARGS_H

#include <stdbool.h>
#include <stdint.h>

#include "core/err.h"

typedef struct {
    int argc;
    char **argv;
    int i;
} Args;

/* Parse a base-10 integer in [lo, hi] from 'opt's value 's'. */
Status args_int(const char *opt, const char *s, long lo, long hi, long *out, Err *err);
/* Parse a finite float in [lo, hi]. */
Status args_float(const char *opt, const char *s, double lo, double hi, double *out, Err *err);
/* Value of option argv[a->i] (advances); error if missing. */
Status args_value(Args *a, const char **out, Err *err);
/* Parse "1 2 3" (spaces/commas/tabs/newlines) into at most 'max' ints in
 * [0, INT32_MAX]; *n gets the count. */
Status args_int_list(const char *opt, const char *s, int32_t *out, int max, int *n, Err *err);

#endif
