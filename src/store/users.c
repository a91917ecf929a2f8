/* users.c - users (Argon2id passwords) and their sessions (store.h). */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_impl.h"

static Status check_password(const char *pw, Err *err) {
    size_t n = strnlen(pw, STORE_PASSWORD_MAX + 1);
    if (n < STORE_PASSWORD_MIN)
        return err_set(err, STATUS_INVALID, "the password is shorter than %d bytes",
                       STORE_PASSWORD_MIN);
    if (n > STORE_PASSWORD_MAX)
        return err_set(err, STATUS_INVALID, "the password is longer than %d bytes",
                       STORE_PASSWORD_MAX);
    return STATUS_OK;
}

static Status hash_password(const char *pw, char out[crypto_pwhash_STRBYTES], Err *err) {
    if (crypto_pwhash_str(out, pw, strlen(pw), crypto_pwhash_OPSLIMIT_INTERACTIVE,
                          crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0)
        return err_set(err, STATUS_NOMEM, "out of memory hashing a password (Argon2id)");
    return STATUS_OK;
}

static void read_user(sqlite3_stmt *st, StoreUser *u) {
    memset(u, 0, sizeof *u);
    u->id = sqlite3_column_int64(st, 0);
    const unsigned char *name = sqlite3_column_text(st, 1);
    snprintf(u->name, sizeof u->name, "%s", name ? (const char *)name : "");
    u->admin = sqlite3_column_int(st, 2) != 0;
    u->created = sqlite3_column_int64(st, 3);
}

Status store_user_add(Store *s, const char *name, const char *password, bool admin, StoreUser *out,
                      Err *err) {
    char hash[crypto_pwhash_STRBYTES];
    Status r = store_check_name("user name", name, STORE_USER_NAME_MAX, err);
    if (!r)
        r = check_password(password, err);
    if (!r)
        r = hash_password(password, hash, err); /* slow: outside the lock */
    if (r)
        return r;
    STORE_LOCK(s);
    sqlite3_stmt *st = NULL;
    r = store_prepare(s, "INSERT INTO users(name, pw_hash, is_admin, created) VALUES(?, ?, ?, ?)",
                      &st, err);
    if (!r) {
        long long now = store_now();
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, hash, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 3, admin);
        sqlite3_bind_int64(st, 4, now);
        int rc = sqlite3_step(st);
        sqlite3_finalize(st);
        if ((rc & 0xff) == SQLITE_CONSTRAINT)
            r = err_set(err, STATUS_INVALID, "a user named '%s' already exists", name);
        else if (rc != SQLITE_DONE)
            r = store_db_fail(s, rc, "adding a user", err);
        else if (out)
            *out =
                (StoreUser){.id = sqlite3_last_insert_rowid(s->db), .admin = admin, .created = now};
        if (!r && out)
            snprintf(out->name, sizeof out->name, "%s", name);
    }
    STORE_UNLOCK(s);
    sodium_memzero(hash, sizeof hash);
    return r;
}

/* UPDATE/DELETE by name inside a transaction; NOT_FOUND when no row. */
static Status by_name(Store *s, const char *sql, const char *text, const char *name,
                      const char *what, Err *err) {
    sqlite3_stmt *st = NULL;
    Status r = store_prepare(s, sql, &st, err);
    if (r)
        return r;
    int k = 1;
    if (text)
        sqlite3_bind_text(st, k++, text, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, k, name, -1, SQLITE_STATIC);
    if ((r = store_step_done(s, st, what, err)))
        return r;
    return sqlite3_changes(s->db) ? STATUS_OK
                                  : err_set(err, STATUS_NOT_FOUND, "no user named '%s'", name);
}

Status store_user_passwd(Store *s, const char *name, const char *password, Err *err) {
    char hash[crypto_pwhash_STRBYTES];
    Status r = check_password(password, err);
    if (!r)
        r = hash_password(password, hash, err);
    if (r)
        return r;
    STORE_LOCK(s);
    r = store_exec(s, "BEGIN IMMEDIATE", "changing a password", err);
    if (!r)
        r = by_name(s, "UPDATE users SET pw_hash = ? WHERE name = ?", hash, name,
                    "changing a password", err);
    sqlite3_stmt *st = NULL;
    if (!r && !(r = store_prepare(s,
                                  "DELETE FROM sessions WHERE user_id = "
                                  "(SELECT id FROM users WHERE name = ?)",
                                  &st, err))) {
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        r = store_step_done(s, st, "ending the user's sessions", err);
    }
    if (!r)
        r = store_exec(s, "COMMIT", "changing a password", err);
    if (r)
        store_rollback(s);
    STORE_UNLOCK(s);
    sodium_memzero(hash, sizeof hash);
    return r;
}

Status store_user_remove(Store *s, const char *name, Err *err) {
    STORE_LOCK(s);
    /* sessions, conversations, messages and keys go by ON DELETE CASCADE */
    Status r = store_exec(s, "BEGIN IMMEDIATE", "removing a user", err);
    if (!r)
        r = by_name(s, "DELETE FROM users WHERE name = ?", NULL, name, "removing a user", err);
    if (!r)
        r = store_bump_keys_version(s, err);
    if (!r)
        r = store_exec(s, "COMMIT", "removing a user", err);
    if (r)
        store_rollback(s);
    STORE_UNLOCK(s);
    return r;
}

Status store_user_list(Store *s, StoreUser **out, int *n, Err *err) {
    *out = NULL;
    *n = 0;
    STORE_LOCK(s);
    sqlite3_stmt *st = NULL;
    Status r =
        store_prepare(s, "SELECT id, name, is_admin, created FROM users ORDER BY name", &st, err);
    int cap = 0, count = 0, rc = SQLITE_DONE;
    StoreUser *users = NULL;
    while (!r && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (count == cap) {
            StoreUser *nu = realloc(users, sizeof *users * (size_t)(cap = cap ? cap * 2 : 16));
            if (!nu) {
                r = err_set(err, STATUS_NOMEM, "out of memory listing users");
                break;
            }
            users = nu;
        }
        read_user(st, &users[count++]);
    }
    if (!r && rc != SQLITE_DONE)
        r = store_db_fail(s, rc, "listing users", err);
    sqlite3_finalize(st);
    STORE_UNLOCK(s);
    if (r) {
        free(users);
        return r;
    }
    *out = users;
    *n = count;
    return STATUS_OK;
}

Status store_user_count(Store *s, long long *n, Err *err) {
    STORE_LOCK(s);
    sqlite3_stmt *st = NULL;
    Status r = store_prepare(s, "SELECT count(*) FROM users", &st, err);
    if (!r) {
        int rc = sqlite3_step(st);
        *n = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
        sqlite3_finalize(st);
        if (rc != SQLITE_ROW)
            r = store_db_fail(s, rc, "counting users", err);
    }
    STORE_UNLOCK(s);
    return r;
}

/* A hash of a password nobody has, checked for unknown names so that the
 * time taken does not tell whether a name exists. */
static char dummy_hash[crypto_pwhash_STRBYTES];
static pthread_once_t dummy_once = PTHREAD_ONCE_INIT;

static void make_dummy(void) {
    static const char pw[] = "cgpt: no such user";
    if (crypto_pwhash_str(dummy_hash, pw, sizeof pw - 1, crypto_pwhash_OPSLIMIT_INTERACTIVE,
                          crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0)
        dummy_hash[0] = '\0'; /* out of memory: unknown names then fail fast */
}

Status store_user_verify(Store *s, const char *name, const char *password, StoreUser *out,
                         Err *err) {
    char hash[crypto_pwhash_STRBYTES] = "";
    bool found = false;
    if (strnlen(password, STORE_PASSWORD_MAX + 1) > STORE_PASSWORD_MAX ||
        strnlen(name, STORE_USER_NAME_MAX + 1) > STORE_USER_NAME_MAX)
        return err_set(err, STATUS_INVALID, "wrong user name or password");
    STORE_LOCK(s);
    sqlite3_stmt *st = NULL;
    Status r = store_prepare(s,
                             "SELECT id, name, is_admin, created, pw_hash FROM users WHERE "
                             "name = ?",
                             &st, err);
    if (!r) {
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            read_user(st, out);
            const unsigned char *h = sqlite3_column_text(st, 4);
            snprintf(hash, sizeof hash, "%s", h ? (const char *)h : "");
            found = true;
        } else if (rc != SQLITE_DONE) {
            r = store_db_fail(s, rc, "looking up a user", err);
        }
        sqlite3_finalize(st);
    }
    STORE_UNLOCK(s);
    if (r)
        return r;
    if (!found) {
        pthread_once(&dummy_once, make_dummy);
        snprintf(hash, sizeof hash, "%s", dummy_hash);
    }
    bool ok = crypto_pwhash_str_verify(hash, password, strlen(password)) == 0 && found;
    sodium_memzero(hash, sizeof hash);
    if (!ok) {
        memset(out, 0, sizeof *out);
        return err_set(err, STATUS_INVALID, "wrong user name or password");
    }
    return STATUS_OK;
}

/* ---- sessions ---- */

static void new_token(char out[STORE_TOKEN_LEN + 1]) {
    unsigned char raw[32];
    randombytes_buf(raw, sizeof raw);
    sodium_bin2base64(out, STORE_TOKEN_LEN + 1, raw, sizeof raw,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(raw, sizeof raw);
}

static void token_hash(const char *token, uint8_t h[32]) {
    crypto_generichash(h, 32, (const unsigned char *)token, strnlen(token, STORE_TOKEN_LEN + 1),
                       NULL, 0);
}

Status store_session_new(Store *s, long long user, long long ttl, char token[STORE_TOKEN_LEN + 1],
                         char csrf[STORE_CSRF_LEN + 1], Err *err) {
    uint8_t h[32];
    new_token(token);
    new_token(csrf);
    token_hash(token, h);
    STORE_LOCK(s);
    sqlite3_stmt *st = NULL;
    Status r = store_prepare(s,
                             "INSERT INTO sessions(hash, user_id, csrf, created, expires) "
                             "VALUES(?, ?, ?, ?, ?)",
                             &st, err);
    if (!r) {
        long long now = store_now();
        sqlite3_bind_blob(st, 1, h, sizeof h, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, user);
        sqlite3_bind_text(st, 3, csrf, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, now);
        sqlite3_bind_int64(st, 5, now + ttl);
        r = store_step_done(s, st, "starting a session", err);
    }
    /* housekeeping: expired sessions go */
    if (!r && (st = NULL, !store_prepare(s, "DELETE FROM sessions WHERE expires < ?", &st, err))) {
        sqlite3_bind_int64(st, 1, store_now());
        r = store_step_done(s, st, "removing expired sessions", err);
    }
    STORE_UNLOCK(s);
    if (r)
        token[0] = csrf[0] = '\0';
    return r;
}

Status store_session_get(Store *s, const char *token, StoreUser *out, char csrf[STORE_CSRF_LEN + 1],
                         Err *err) {
    uint8_t h[32];
    memset(out, 0, sizeof *out);
    csrf[0] = '\0';
    if (strnlen(token, STORE_TOKEN_LEN + 1) != STORE_TOKEN_LEN)
        return err_set(err, STATUS_NOT_FOUND, "no such session");
    token_hash(token, h);
    STORE_LOCK(s);
    sqlite3_stmt *st = NULL;
    Status r = store_prepare(s,
                             "SELECT u.id, u.name, u.is_admin, u.created, s.csrf, s.expires "
                             "FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.hash = ?",
                             &st, err);
    if (!r) {
        sqlite3_bind_blob(st, 1, h, sizeof h, SQLITE_STATIC);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW && sqlite3_column_int64(st, 5) >= store_now()) {
            read_user(st, out);
            const unsigned char *c = sqlite3_column_text(st, 4);
            snprintf(csrf, STORE_CSRF_LEN + 1, "%s", c ? (const char *)c : "");
        } else if (rc == SQLITE_ROW || rc == SQLITE_DONE) {
            r = err_set(err, STATUS_NOT_FOUND, "no such session (or it expired)");
        } else {
            r = store_db_fail(s, rc, "looking up a session", err);
        }
        sqlite3_finalize(st);
    }
    STORE_UNLOCK(s);
    return r;
}

Status store_session_end(Store *s, const char *token, Err *err) {
    uint8_t h[32];
    token_hash(token, h);
    STORE_LOCK(s);
    sqlite3_stmt *st = NULL;
    Status r = store_prepare(s, "DELETE FROM sessions WHERE hash = ?", &st, err);
    if (!r) {
        sqlite3_bind_blob(st, 1, h, sizeof h, SQLITE_STATIC);
        r = store_step_done(s, st, "ending a session", err);
    }
    STORE_UNLOCK(s);
    return r;
}
