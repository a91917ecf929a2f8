/* store.h - the server's persistent state in its data directory: one
 * SQLite database (DIR/cgpt.db, WAL journal, foreign keys on, busy timeout
 * 5 s) with a schema version table and forward migrations; later issues add
 * users and conversations to the same database.
 *
 * API keys: a key is "sk-cgpt-" followed by 43 base64url characters (32
 * random bytes from libsodium's randombytes_buf). Only its hash is stored:
 * BLAKE2b-256 (crypto_generichash) of the whole key string. The key itself
 * is shown once by store_key_add() and never again. Each key has a unique
 * NAME (1..64 bytes of [A-Za-z0-9._-]), a creation time, a revocation time
 * (0: active) and per-key limits (0: the server's default).
 *
 * Lookup (store_key_find) compares the presented key's hash with every
 * active key's hash using sodium_memcmp (constant time per comparison,
 * and every active key is compared whatever matches), so timing reveals
 * nothing about stored keys.
 *
 * Thread safety: one Store per thread, or serialise calls (the server
 * keeps a snapshot of the keys in memory and reloads it when the database
 * changes: store_keys_version()). */
#ifndef CGPT_STORE_STORE_H
#define CGPT_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

#define STORE_KEY_NAME_MAX 64    /* bytes of a key's name */
#define STORE_KEY_TEXT_LEN 51    /* "sk-cgpt-" + 43 base64url chars */
#define STORE_KEY_HASH_BYTES 32  /* BLAKE2b-256 */
#define STORE_MAX_KEYS 100000    /* keys in one database */
#define STORE_MAX_PRESENTED 256  /* bytes of a presented key considered at all */

typedef struct Store Store;

/* Open (creating DIR with mode 0700 and the database if needed, then
 * migrating). Errors name the path: STATUS_IO (cannot create/open, not a
 * directory, database locked past the timeout), STATUS_FORMAT (not a cgpt
 * database, or a schema version newer than this binary). */
Status store_open(Store **out, const char *dir, Err *err);
void store_close(Store *s);

typedef struct {
    char name[STORE_KEY_NAME_MAX + 1];
    uint8_t hash[STORE_KEY_HASH_BYTES];
    long long created;  /* unix seconds */
    long long revoked;  /* unix seconds, 0 = active */
    int rpm;            /* requests per minute, 0 = server default */
    int tpm;            /* tokens per minute (prompt + completion), 0 = default */
    int max_streams;    /* concurrent requests, 0 = default */
} StoreKey;

/* Create key NAME with the given limits (negative: STATUS_INVALID) and
 * write its text (STORE_KEY_TEXT_LEN chars + NUL) to 'key_out'.
 * STATUS_INVALID for a bad name or an active key of that name already. */
Status store_key_add(Store *s, const char *name, int rpm, int tpm, int max_streams,
                     char key_out[STORE_KEY_TEXT_LEN + 1], Err *err);
/* Revoke the active key NAME (STATUS_INVALID when there is none). */
Status store_key_revoke(Store *s, const char *name, Err *err);
/* All keys (active and revoked), by creation time; *out owned (free()). */
Status store_key_list(Store *s, StoreKey **out, int *n, Err *err);

/* Hash a presented key (any bytes; longer than STORE_MAX_PRESENTED hashes
 * as given, it simply matches nothing). */
void store_key_hash(const char *key, size_t len, uint8_t hash[STORE_KEY_HASH_BYTES]);
/* Among 'keys' (n entries, e.g. from store_key_list), the index of the
 * ACTIVE key whose hash equals 'hash', or -1. Constant time in the
 * position of the match: all n are compared. */
int store_key_find(const StoreKey *keys, int n, const uint8_t hash[STORE_KEY_HASH_BYTES]);

/* A number that changes whenever keys are added or revoked (by any process
 * using the same database): the server polls it to reload its snapshot. */
Status store_keys_version(Store *s, long long *version, Err *err);

#endif
