/* store_impl.h - what the store's files share (store.c: opening,
 * migrations, keys; users.c: users and sessions; chat.c: conversations and
 * messages). Private to src/store.
 *
 * Locking: every public function takes s->mu for its whole run, so one
 * Store is safe to share between threads and all of a process's writes go
 * through one connection, one at a time (no SQLITE_BUSY inside a process;
 * other processes - `cgpt user add` beside a running server - wait on the
 * busy timeout). */
#ifndef CGPT_STORE_STORE_IMPL_H
#define CGPT_STORE_STORE_IMPL_H

#include <pthread.h>
#include <sqlite3.h>

#include "store/store.h"

#define STORE_PATH_MAX 4096

struct Store {
    sqlite3 *db;
    pthread_mutex_t mu;
    char path[STORE_PATH_MAX]; /* DIR/cgpt.db, for messages */
};

/* SQLite failure -> Status and a message naming the database and 'what'. */
Status store_db_fail(Store *s, int rc, const char *what, Err *err);
Status store_exec(Store *s, const char *sql, const char *what, Err *err);
Status store_prepare(Store *s, const char *sql, sqlite3_stmt **st, Err *err);
void store_rollback(Store *s);
/* Step a statement that returns no rows (or ignores them) and finalize it. */
Status store_step_done(Store *s, sqlite3_stmt *st, const char *what, Err *err);
/* The current time in unix seconds (never 0). */
long long store_now(void);
/* 'n' random bytes as lower-case hex into out[2n + 1]. */
void store_random_hex(char *out, size_t n);
/* Bump the API keys' version inside the caller's transaction (store.c). */
Status store_bump_keys_version(Store *s, Err *err);
/* Check a name of 1..max bytes of [A-Za-z0-9._-]; 'what' names it in errors. */
Status store_check_name(const char *what, const char *name, size_t max, Err *err);

#define STORE_LOCK(s) pthread_mutex_lock(&(s)->mu)
#define STORE_UNLOCK(s) pthread_mutex_unlock(&(s)->mu)

#endif
