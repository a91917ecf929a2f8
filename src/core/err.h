/* err.h - status codes and the error object every fallible call fills.
 *
 * Anything that can fail because of a file, the network or a user returns a
 * Status and writes one human-readable line into an Err: what failed, which
 * object, the offending value and the limit. Err is a plain struct owned by
 * the caller (usually on the stack); nothing here allocates. */
#ifndef CGPT_CORE_ERR_H
#define CGPT_CORE_ERR_H

#include <stdarg.h>

typedef enum {
    STATUS_OK = 0,
    STATUS_IO,          /* open/read/write/mmap failed */
    STATUS_FORMAT,      /* bytes do not follow the format */
    STATUS_LIMIT,       /* a value exceeds a named limit */
    STATUS_NOMEM,       /* allocation failed */
    STATUS_UNSUPPORTED, /* well-formed but not implemented (unknown arch, type) */
    STATUS_INVALID,     /* bad argument from a caller or user */
    STATUS_BUSY,        /* at capacity now (a queue is full); try again later */
    STATUS_NOT_FOUND,   /* no such object (or not the caller's: never says which) */
} Status;

#define ERR_MSG_MAX 512

typedef struct {
    Status status;
    char msg[ERR_MSG_MAX];
} Err;

/* Record 's' and a printf-style message in 'err' (which may be NULL); returns
 * 's' so callers can write `return err_set(err, STATUS_FORMAT, "...")`. */
Status err_set(Err *err, Status s, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Prepend "prefix: " to the message already in 'err' (for adding context
 * such as a file name on the way up). Returns err->status. */
Status err_prefix(Err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Name of a status for logs: "ok", "io", "format", ... */
const char *status_name(Status s);

/* Broken invariant (never for input): print file:line and abort. Always on. */
#define ASSERT(cond)                                                                               \
    do {                                                                                           \
        if (!(cond))                                                                               \
            err_assert_fail(#cond, __FILE__, __LINE__);                                            \
    } while (0)

_Noreturn void err_assert_fail(const char *cond, const char *file, int line);

#endif
