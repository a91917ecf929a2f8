/* err.c - Err formatting. Messages are truncated, never overflowed. */
#include "core/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

Status err_set(Err *err, Status s, const char *fmt, ...) {
    if (!err)
        return s;
    err->status = s;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return s;
}

Status err_prefix(Err *err, const char *fmt, ...) {
    if (!err)
        return STATUS_OK;
    char pre[ERR_MSG_MAX], old[ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pre, sizeof pre, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    old[sizeof old - 1] = '\0';
    /* Truncation is accepted: the message keeps its start, which names what failed. */
    if (snprintf(err->msg, sizeof err->msg, "%s: %s", pre, old) >= (int)sizeof err->msg)
        err->msg[sizeof err->msg - 1] = '\0';
    return err->status;
}

const char *status_name(Status s) {
    switch (s) {
    case STATUS_OK:
        return "ok";
    case STATUS_IO:
        return "io";
    case STATUS_FORMAT:
        return "format";
    case STATUS_LIMIT:
        return "limit";
    case STATUS_NOMEM:
        return "nomem";
    case STATUS_UNSUPPORTED:
        return "unsupported";
    case STATUS_INVALID:
        return "invalid";
    case STATUS_NOT_FOUND: return "not found";
    case STATUS_BUSY:
        return "busy";
    }
    return "unknown";
}

void err_assert_fail(const char *cond, const char *file, int line) {
    fprintf(stderr, "cgpt: internal error: assertion '%s' failed at %s:%d\n", cond, file, line);
    abort();
}
