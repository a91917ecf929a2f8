/* args.c - the option scanner and strict number parsing: no trailing junk, no
 * silent overflow, no unknown option. */
#include "cli/args.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

Status args_int(const char *opt, const char *s, long lo, long hi, long *out, Err *err) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || *end || errno)
        return err_set(err, STATUS_INVALID, "%s: '%s' is not an integer", opt, s);
    if (v < lo || v > hi)
        return err_set(err, STATUS_INVALID, "%s: %ld is out of range [%ld, %ld]", opt, v, lo, hi);
    *out = v;
    return STATUS_OK;
}

Status args_float(const char *opt, const char *s, double lo, double hi, double *out, Err *err) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || errno || !isfinite(v))
        return err_set(err, STATUS_INVALID, "%s: '%s' is not a number", opt, s);
    if (v < lo || v > hi)
        return err_set(err, STATUS_INVALID, "%s: %g is out of range [%g, %g]", opt, v, lo, hi);
    *out = v;
    return STATUS_OK;
}

Args args_start(int argc, char **argv, int first) {
    Args a = {.argc = argc, .argv = argv, .i = first};
    return a;
}

/* Does 'spelling' (len bytes) appear among the '|'-separated 'names'? */
static bool has_name(const char *names, const char *spelling, size_t len) {
    for (const char *p = names; *p;) {
        const char *end = strchr(p, '|');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n == len && !memcmp(p, spelling, len))
            return true;
        if (!end)
            break;
        p = end + 1;
    }
    return false;
}

int args_next(Args *a, const ArgOpt *const *tables, int n_tables, const char *cmd, const char **val,
              Err *err) {
    *val = NULL;
    a->opt = NULL;
    if (a->i >= a->argc)
        return ARG_END;
    const char *arg = a->argv[a->i++];
    if (arg[0] != '-' || arg[1] == '\0') {
        *val = arg;
        return ARG_POSITIONAL;
    }
    if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
        a->opt = arg;
        return ARG_HELP;
    }
    /* --name=value: the spelling is what comes before the '=' */
    const char *eq = arg[1] == '-' ? strchr(arg, '=') : NULL;
    size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
    for (int t = 0; t < n_tables; t++) {
        for (const ArgOpt *o = tables[t]; o->id; o++) {
            if (!has_name(o->names, arg, len))
                continue;
            if (len < sizeof a->opt_buf) {
                memcpy(a->opt_buf, arg, len);
                a->opt_buf[len] = '\0';
                a->opt = a->opt_buf;
            } else {
                a->opt = arg;
            }
            if (!o->arg) {
                if (eq) {
                    err_set(err, STATUS_INVALID, "%s takes no value", a->opt);
                    return ARG_ERROR;
                }
                return o->id;
            }
            if (eq) {
                *val = eq + 1;
            } else if (a->i < a->argc) {
                *val = a->argv[a->i++];
            } else {
                err_set(err, STATUS_INVALID, "%s needs a value (%s)", a->opt, o->arg);
                return ARG_ERROR;
            }
            return o->id;
        }
    }
    err_set(err, STATUS_INVALID, "unknown option '%.*s' (see cgpt %s --help)", (int)len, arg, cmd);
    return ARG_ERROR;
}

static int is_sep(char c) { return c == ' ' || c == ',' || c == '\t' || c == '\n' || c == '\r'; }

Status args_int_list(const char *opt, const char *s, int32_t *out, int max, int *n, Err *err) {
    int count = 0;
    const char *p = s;
    for (;;) {
        while (*p && is_sep(*p))
            p++;
        if (!*p)
            break;
        if (*p < '0' || *p > '9')
            return err_set(err, STATUS_INVALID, "%s: '%c' at offset %ld is not part of a token id",
                           opt, *p, (long)(p - s));
        long v = 0;
        while (*p >= '0' && *p <= '9') {
            v = v * 10 + (*p - '0');
            if (v > INT32_MAX)
                return err_set(err, STATUS_INVALID, "%s: token id at offset %ld exceeds %d", opt,
                               (long)(p - s), INT32_MAX);
            p++;
        }
        if (*p && !is_sep(*p))
            return err_set(err, STATUS_INVALID, "%s: '%c' at offset %ld is not part of a token id",
                           opt, *p, (long)(p - s));
        if (count >= max)
            return err_set(err, STATUS_LIMIT, "%s: more than %d token ids", opt, max);
        out[count++] = (int32_t)v;
    }
    *n = count;
    return STATUS_OK;
}
