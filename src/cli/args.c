/* args.c - strict number parsing: no trailing junk, no silent overflow. */
#include "cli/args.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>

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

Status args_value(Args *a, const char **out, Err *err) {
    const char *opt = a->argv[a->i];
    if (a->i + 1 >= a->argc)
        return err_set(err, STATUS_INVALID, "%s needs a value", opt);
    a->i++;
    *out = a->argv[a->i];
    return STATUS_OK;
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
