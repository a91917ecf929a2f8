/* store.c - the data directory's SQLite database: opening and migrating it,
 * and the API keys table.
 *
 * Schema (version 1):
 *   meta(key TEXT PRIMARY KEY, value)   'schema_version' and 'keys_version'
 *   api_keys(id, name, hash, created, revoked, rpm, tpm, max_streams)
 *     hash UNIQUE; a partial unique index keeps one ACTIVE key per name.
 *
 * keys_version is a counter row bumped in the same transaction as every
 * add and revoke: PRAGMA data_version would also do for another connection
 * in the same process, but a plain row is what every connection, process
 * and future backend sees the same way.
 *
 * Every write runs in BEGIN IMMEDIATE so two processes (the server and
 * `cgpt key add`) serialise on the busy timeout instead of failing halfway.
 * The database file is created 0600 before SQLite opens it; SQLite gives its
 * -wal and -shm files the database file's mode.
 *
 * Schema version 2 adds users, sessions, conversations and messages (with
 * an FTS5 index) and gives API keys an owner: users.c and chat.c. Version 3
 * adds the moderation audit: audit.c. Version 4 lets messages hold tool
 * calls and tool results (role 'tool', tool_calls, tool_call_id, name). */
#include "store/store.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store/store_impl.h"

#define STORE_DB_NAME "cgpt.db"
#define STORE_BUSY_MS 5000
#define STORE_KEY_PREFIX "sk-cgpt-"
#define STORE_KEY_RAW_BYTES 32

/* ---- migrations: MIGRATIONS[i] brings schema version i to i + 1 ---- */

static const char *const MIGRATIONS[] = {
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value);"
    "CREATE TABLE api_keys("
    "  id INTEGER PRIMARY KEY,"
    "  name TEXT NOT NULL,"
    "  hash BLOB NOT NULL UNIQUE,"
    "  created INTEGER NOT NULL,"
    "  revoked INTEGER NOT NULL DEFAULT 0,"
    "  rpm INTEGER NOT NULL DEFAULT 0,"
    "  tpm INTEGER NOT NULL DEFAULT 0,"
    "  max_streams INTEGER NOT NULL DEFAULT 0);"
    "CREATE UNIQUE INDEX api_keys_active_name ON api_keys(name) WHERE revoked = 0;"
    "INSERT INTO meta(key, value) VALUES('keys_version', 0);",

    /* 2: users, their sessions, conversations and messages; keys get an
     * owner (NULL: an admin's, made by `cgpt key add`), names unique per
     * owner among active keys. Messages form a tree (parent_id) so edits
     * and regenerations keep the old branch; messages_fts indexes their
     * text (external content, kept in step by triggers). */
    "CREATE TABLE users("
    "  id INTEGER PRIMARY KEY,"
    "  name TEXT NOT NULL UNIQUE,"
    "  pw_hash TEXT NOT NULL,"
    "  is_admin INTEGER NOT NULL DEFAULT 0,"
    "  created INTEGER NOT NULL);"
    "CREATE TABLE sessions("
    "  id INTEGER PRIMARY KEY,"
    "  hash BLOB NOT NULL UNIQUE,"
    "  user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
    "  csrf TEXT NOT NULL,"
    "  created INTEGER NOT NULL,"
    "  expires INTEGER NOT NULL);"
    "CREATE INDEX sessions_user ON sessions(user_id);"
    "CREATE TABLE conversations("
    "  id TEXT PRIMARY KEY,"
    "  user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
    "  title TEXT NOT NULL DEFAULT '',"
    "  system TEXT NOT NULL DEFAULT '',"
    "  model TEXT NOT NULL DEFAULT '',"
    "  settings TEXT NOT NULL DEFAULT '{}',"
    "  current_leaf INTEGER,"
    "  created INTEGER NOT NULL,"
    "  updated INTEGER NOT NULL,"
    "  touched INTEGER NOT NULL DEFAULT 0);" /* a counter: newest activity first, no ties */
    "CREATE INDEX conversations_user ON conversations(user_id, touched DESC);"
    "CREATE INDEX conversations_touched ON conversations(touched);"
    "CREATE TABLE messages("
    "  id INTEGER PRIMARY KEY,"
    "  conv_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,"
    "  parent_id INTEGER REFERENCES messages(id) ON DELETE CASCADE,"
    "  role TEXT NOT NULL CHECK (role IN ('user', 'assistant')),"
    "  content TEXT NOT NULL DEFAULT '',"
    "  status TEXT NOT NULL CHECK (status IN ('streaming', 'complete', 'stopped', 'error')),"
    "  model TEXT NOT NULL DEFAULT '',"
    "  prompt_tokens INTEGER NOT NULL DEFAULT 0,"
    "  completion_tokens INTEGER NOT NULL DEFAULT 0,"
    "  seconds REAL NOT NULL DEFAULT 0,"
    "  finish TEXT NOT NULL DEFAULT '',"
    "  error TEXT NOT NULL DEFAULT '',"
    "  created INTEGER NOT NULL,"
    "  updated INTEGER NOT NULL);"
    "CREATE INDEX messages_conv ON messages(conv_id, id);"
    "CREATE INDEX messages_parent ON messages(parent_id);"
    "CREATE INDEX messages_status ON messages(status) WHERE status = 'streaming';"
    "CREATE VIRTUAL TABLE messages_fts USING fts5(content, content='messages', content_rowid='id');"
    "CREATE TRIGGER messages_ai AFTER INSERT ON messages BEGIN"
    "  INSERT INTO messages_fts(rowid, content) VALUES (new.id, new.content); END;"
    "CREATE TRIGGER messages_ad AFTER DELETE ON messages BEGIN"
    "  INSERT INTO messages_fts(messages_fts, rowid, content) VALUES ('delete', old.id, "
    "old.content);"
    "  END;"
    "CREATE TRIGGER messages_au AFTER UPDATE OF content ON messages BEGIN"
    "  INSERT INTO messages_fts(messages_fts, rowid, content) VALUES ('delete', old.id, "
    "old.content);"
    "  INSERT INTO messages_fts(rowid, content) VALUES (new.id, new.content); END;"
    "ALTER TABLE api_keys ADD COLUMN user_id INTEGER REFERENCES users(id) ON DELETE CASCADE;"
    "DROP INDEX api_keys_active_name;"
    "CREATE UNIQUE INDEX api_keys_active_name ON api_keys(coalesce(user_id, 0), name)"
    "  WHERE revoked = 0;",
    /* 3: the moderation audit (audit.c) */
    "CREATE TABLE audit("
    "  id INTEGER PRIMARY KEY,"
    "  created INTEGER NOT NULL,"
    "  user_id INTEGER REFERENCES users(id) ON DELETE SET NULL,"
    "  key_name TEXT NOT NULL DEFAULT '',"
    "  route TEXT NOT NULL,"
    "  direction TEXT NOT NULL CHECK (direction IN ('input', 'output')),"
    "  action TEXT NOT NULL CHECK (action IN ('flag', 'block')),"
    "  categories TEXT NOT NULL,"
    "  scores TEXT NOT NULL,"
    "  classifier TEXT NOT NULL,"
    "  error TEXT NOT NULL DEFAULT '',"
    "  content_hash TEXT NOT NULL,"
    "  content TEXT);"
    "CREATE INDEX audit_created ON audit(created);",
    /* 4: tool calls and results in conversations (imports; docs/WEB.md).
     * Role 'tool' joins the CHECK, which SQLite cannot change in place, so
     * the table is rebuilt inside the migration's transaction: its FTS
     * triggers dropped (with foreign keys on, dropping a table that still
     * has them is "database table is locked"), the table renamed away
     * (its self-reference follows the rename, so the new table's
     * references never point at rows being dropped), the rows copied with
     * their ids (messages_fts keeps its rowids: it stays valid), the old
     * table dropped, then the indexes and FTS triggers made again.
     * tool_calls: the OpenAI array as JSON text ('' when none);
     * tool_call_id, name: what a 'tool' message answers. */
    "DROP TRIGGER messages_ai;"
    "DROP TRIGGER messages_ad;"
    "DROP TRIGGER messages_au;"
    "ALTER TABLE messages RENAME TO messages_v3;"
    "CREATE TABLE messages("
    "  id INTEGER PRIMARY KEY,"
    "  conv_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,"
    "  parent_id INTEGER REFERENCES messages(id) ON DELETE CASCADE,"
    "  role TEXT NOT NULL CHECK (role IN ('user', 'assistant', 'tool')),"
    "  content TEXT NOT NULL DEFAULT '',"
    "  status TEXT NOT NULL CHECK (status IN ('streaming', 'complete', 'stopped', 'error')),"
    "  model TEXT NOT NULL DEFAULT '',"
    "  prompt_tokens INTEGER NOT NULL DEFAULT 0,"
    "  completion_tokens INTEGER NOT NULL DEFAULT 0,"
    "  seconds REAL NOT NULL DEFAULT 0,"
    "  finish TEXT NOT NULL DEFAULT '',"
    "  error TEXT NOT NULL DEFAULT '',"
    "  created INTEGER NOT NULL,"
    "  updated INTEGER NOT NULL,"
    "  tool_calls TEXT NOT NULL DEFAULT '',"
    "  tool_call_id TEXT NOT NULL DEFAULT '',"
    "  name TEXT NOT NULL DEFAULT '');"
    "INSERT INTO messages(id, conv_id, parent_id, role, content, status, model, prompt_tokens,"
    "  completion_tokens, seconds, finish, error, created, updated)"
    "  SELECT id, conv_id, parent_id, role, content, status, model, prompt_tokens,"
    "  completion_tokens, seconds, finish, error, created, updated FROM messages_v3 ORDER BY id;"
    "DROP TABLE messages_v3;"
    "CREATE INDEX messages_conv ON messages(conv_id, id);"
    "CREATE INDEX messages_parent ON messages(parent_id);"
    "CREATE INDEX messages_status ON messages(status) WHERE status = 'streaming';"
    "CREATE TRIGGER messages_ai AFTER INSERT ON messages BEGIN"
    "  INSERT INTO messages_fts(rowid, content) VALUES (new.id, new.content); END;"
    "CREATE TRIGGER messages_ad AFTER DELETE ON messages BEGIN"
    "  INSERT INTO messages_fts(messages_fts, rowid, content) VALUES ('delete', old.id, "
    "old.content);"
    "  END;"
    "CREATE TRIGGER messages_au AFTER UPDATE OF content ON messages BEGIN"
    "  INSERT INTO messages_fts(messages_fts, rowid, content) VALUES ('delete', old.id, "
    "old.content);"
    "  INSERT INTO messages_fts(rowid, content) VALUES (new.id, new.content); END;",
};
#define STORE_SCHEMA_VERSION ((int)(sizeof MIGRATIONS / sizeof MIGRATIONS[0]))

/* ---- errors ---- */

/* SQLite failure -> Status: a non-database file is FORMAT, the rest IO. */
Status store_db_fail(Store *s, int rc, const char *what, Err *err) {
    int prim = rc & 0xff;
    Status st = (prim == SQLITE_NOTADB || prim == SQLITE_CORRUPT) ? STATUS_FORMAT : STATUS_IO;
    if (prim == SQLITE_BUSY || prim == SQLITE_LOCKED)
        return err_set(err, STATUS_IO, "'%s': %s: database locked for more than %d ms", s->path,
                       what, STORE_BUSY_MS);
    if (prim == SQLITE_NOTADB)
        return err_set(err, st, "'%s': not a cgpt database (%s)", s->path, sqlite3_errstr(rc));
    return err_set(err, st, "'%s': %s: %s", s->path, what,
                   s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
}

Status store_exec(Store *s, const char *sql, const char *what, Err *err) {
    int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? STATUS_OK : store_db_fail(s, rc, what, err);
}

void store_rollback(Store *s) { sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL); }

Status store_prepare(Store *s, const char *sql, sqlite3_stmt **st, Err *err) {
    int rc = sqlite3_prepare_v2(s->db, sql, -1, st, NULL);
    return rc == SQLITE_OK ? STATUS_OK : store_db_fail(s, rc, "prepare", err);
}

Status store_step_done(Store *s, sqlite3_stmt *st, const char *what, Err *err) {
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        ;
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? STATUS_OK : store_db_fail(s, rc, what, err);
}

long long store_now(void) {
    long long t = (long long)time(NULL);
    return t > 0 ? t : 1;
}

void store_random_hex(char *out, size_t n) {
    unsigned char raw[64];
    ASSERT(n <= sizeof raw);
    randombytes_buf(raw, n);
    sodium_bin2hex(out, 2 * n + 1, raw, n);
}

Status store_check_name(const char *what, const char *name, size_t max, Err *err) {
    size_t n = strnlen(name, max + 1);
    if (n == 0)
        return err_set(err, STATUS_INVALID, "%s is empty", what);
    if (n > max)
        return err_set(err, STATUS_INVALID, "%s is longer than %zu bytes", what, max);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
        if (!ok)
            return err_set(err, STATUS_INVALID,
                           "%s: byte 0x%02x at offset %zu is not allowed (use letters, digits, "
                           "'.', '_' and '-')",
                           what, c, i);
    }
    return STATUS_OK;
}

/* ---- opening ---- */

/* mkdir -p with mode 0700 for every directory created; an existing
 * directory keeps its mode. */
static Status make_dir(const char *dir, Err *err) {
    char buf[STORE_PATH_MAX];
    size_t n = strlen(dir);
    if (n == 0)
        return err_set(err, STATUS_IO, "data directory: empty path");
    if (n >= sizeof buf - sizeof "/" STORE_DB_NAME)
        return err_set(err, STATUS_IO, "data directory: path is %zu bytes (limit %zu)", n,
                       sizeof buf - sizeof "/" STORE_DB_NAME - 1);
    memcpy(buf, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (i < n && buf[i] != '/')
            continue;
        char c = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0700) != 0 && errno != EEXIST)
            return err_set(err, STATUS_IO, "cannot create directory '%s': %s", buf,
                           strerror(errno));
        buf[i] = c;
    }
    struct stat sb;
    if (stat(dir, &sb) != 0)
        return err_set(err, STATUS_IO, "data directory '%s': %s", dir, strerror(errno));
    if (!S_ISDIR(sb.st_mode))
        return err_set(err, STATUS_IO, "data directory '%s' is not a directory", dir);
    return STATUS_OK;
}

/* Create the database file with mode 0600 (or tighten an existing one) so
 * that SQLite, which otherwise honours the umask, never makes it readable
 * by others. */
static Status make_db_file(const char *path, Err *err) {
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return err_set(err, STATUS_IO, "cannot open '%s': %s", path, strerror(errno));
    struct stat sb;
    Status st = STATUS_OK;
    if (fstat(fd, &sb) != 0)
        st = err_set(err, STATUS_IO, "cannot stat '%s': %s", path, strerror(errno));
    else if (!S_ISREG(sb.st_mode))
        st = err_set(err, STATUS_IO, "'%s' is not a regular file", path);
    else if ((sb.st_mode & 0077) && fchmod(fd, sb.st_mode & 0700) != 0)
        st = err_set(err, STATUS_IO, "cannot chmod '%s': %s", path, strerror(errno));
    close(fd);
    return st;
}

/* The schema version, or 0 for an empty database; FORMAT when the file is
 * an SQLite database that is not ours. Runs inside the open transaction. */
static Status read_version(Store *s, int *version, Err *err) {
    sqlite3_stmt *st = NULL;
    Status r = store_prepare(s, "SELECT count(*) FROM sqlite_master", &st, err);
    if (r)
        return r;
    int rc = sqlite3_step(st);
    long long n_objects = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW)
        return store_db_fail(s, rc, "reading the schema", err);
    if (n_objects == 0) {
        *version = 0;
        return STATUS_OK;
    }
    rc = sqlite3_prepare_v2(s->db, "SELECT value FROM meta WHERE key = 'schema_version'", -1, &st,
                            NULL);
    if (rc != SQLITE_OK)
        return err_set(err, STATUS_FORMAT, "'%s': not a cgpt database (no meta table)", s->path);
    rc = sqlite3_step(st);
    bool found = rc == SQLITE_ROW && sqlite3_column_type(st, 0) == SQLITE_INTEGER;
    long long v = found ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return store_db_fail(s, rc, "reading the schema version", err);
    if (!found || v < 1)
        return err_set(err, STATUS_FORMAT, "'%s': not a cgpt database (no schema version)",
                       s->path);
    if (v > STORE_SCHEMA_VERSION)
        return err_set(err, STATUS_FORMAT,
                       "'%s': schema version %lld is newer than this cgpt's (%d); upgrade cgpt",
                       s->path, v, STORE_SCHEMA_VERSION);
    *version = (int)v;
    return STATUS_OK;
}

static Status migrate(Store *s, Err *err) {
    Status r = store_exec(s, "BEGIN IMMEDIATE", "starting the migration", err);
    if (r)
        return r;
    int v = 0;
    r = read_version(s, &v, err);
    for (; !r && v < STORE_SCHEMA_VERSION; v++) {
        char what[64], sql[128];
        snprintf(what, sizeof what, "migrating to schema version %d", v + 1);
        r = store_exec(s, MIGRATIONS[v], what, err);
        snprintf(sql, sizeof sql,
                 "INSERT OR REPLACE INTO meta(key, value) VALUES('schema_version', %d)", v + 1);
        if (!r)
            r = store_exec(s, sql, what, err);
    }
    if (r) {
        store_rollback(s);
        return r;
    }
    return store_exec(s, "COMMIT", "committing the migration", err);
}

Status store_open(Store **out, const char *dir, Err *err) {
    *out = NULL;
    if (sodium_init() < 0)
        return err_set(err, STATUS_IO, "libsodium failed to initialise");
    Status r = make_dir(dir, err);
    if (r)
        return r;
    Store *s = calloc(1, sizeof *s);
    if (!s)
        return err_set(err, STATUS_NOMEM, "out of memory opening the store");
    pthread_mutex_init(&s->mu, NULL);
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/')
        n--;
    snprintf(s->path, sizeof s->path, "%.*s/%s", (int)n, dir, STORE_DB_NAME);
    r = make_db_file(s->path, err);
    if (r) {
        store_close(s);
        return r;
    }
    int rc = sqlite3_open_v2(s->path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc != SQLITE_OK) {
        r = store_db_fail(s, rc, "open", err);
        store_close(s);
        return r;
    }
    sqlite3_busy_timeout(s->db, STORE_BUSY_MS);
    sqlite3_extended_result_codes(s->db, 1);
    /* journal_mode reads the header first: a non-database file fails here. */
    r = store_exec(s, "PRAGMA journal_mode=WAL", "setting WAL mode", err);
    if (!r)
        r = store_exec(s, "PRAGMA foreign_keys=ON", "enabling foreign keys", err);
    /* a committed message survives a power cut, not only a crash */
    if (!r)
        r = store_exec(s, "PRAGMA synchronous=FULL", "setting synchronous=FULL", err);
    if (!r)
        r = migrate(s, err);
    if (r) {
        store_close(s);
        return r;
    }
    *out = s;
    return STATUS_OK;
}

void store_close(Store *s) {
    if (!s)
        return;
    sqlite3_close_v2(s->db);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

Status store_check(Store *s, Err *err) {
    STORE_LOCK(s);
    sqlite3_stmt *st = NULL;
    Status r = store_prepare(s, "PRAGMA integrity_check", &st, err);
    char first[256] = "";
    int rc = SQLITE_DONE, n_bad = 0;
    while (!r && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *line = (const char *)sqlite3_column_text(st, 0);
        if (line && strcmp(line, "ok") != 0 && n_bad++ == 0)
            snprintf(first, sizeof first, "%s", line);
    }
    if (!r)
        sqlite3_finalize(st);
    if (!r && rc != SQLITE_DONE)
        r = store_db_fail(s, rc, "checking the database", err);
    if (!r && n_bad)
        r = err_set(err, STATUS_FORMAT,
                    "'%s' is corrupt (PRAGMA integrity_check: %s%s); restore a backup "
                    "(cgpt backup) or move the file away",
                    s->path, first, n_bad > 1 ? ", ..." : "");
    STORE_UNLOCK(s);
    return r;
}

Status store_backup(Store *s, const char *dest, Err *err) {
    sqlite3 *out = NULL;
    char tmp[STORE_PATH_MAX + 8];
    int n = snprintf(tmp, sizeof tmp, "%s.tmp", dest);
    if (n < 0 || (size_t)n >= sizeof tmp)
        return err_set(err, STATUS_INVALID, "backup path is longer than %d bytes", STORE_PATH_MAX);
    unlink(tmp);
    Status r = make_db_file(tmp, err);
    if (r)
        return r;
    int rc = sqlite3_open_v2(tmp, &out, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc != SQLITE_OK) {
        sqlite3_close_v2(out);
        unlink(tmp);
        return err_set(err, STATUS_IO, "cannot create '%s': %s", tmp, sqlite3_errstr(rc));
    }
    /* The online backup API copies page by page; the lock is held per step
     * only, so a running server keeps writing between steps (a step that
     * sees a change restarts from there, SQLite's rule). */
    STORE_LOCK(s);
    sqlite3_backup *b = sqlite3_backup_init(out, "main", s->db, "main");
    STORE_UNLOCK(s);
    if (!b) {
        r = err_set(err, STATUS_IO, "backup of '%s': %s", s->path, sqlite3_errmsg(out));
    } else {
        do {
            STORE_LOCK(s);
            rc = sqlite3_backup_step(b, 256);
            STORE_UNLOCK(s);
            if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED)
                sqlite3_sleep(20);
        } while (rc == SQLITE_OK || rc == SQLITE_BUSY || rc == SQLITE_LOCKED);
        STORE_LOCK(s);
        sqlite3_backup_finish(b);
        STORE_UNLOCK(s);
        if (rc != SQLITE_DONE)
            r = err_set(err, STATUS_IO, "backup of '%s' to '%s': %s", s->path, dest,
                        sqlite3_errstr(rc));
    }
    if (!r && sqlite3_exec(out, "PRAGMA journal_mode=DELETE", NULL, NULL, NULL) != SQLITE_OK)
        r = err_set(err, STATUS_IO, "backup '%s': %s", tmp, sqlite3_errmsg(out));
    sqlite3_close_v2(out);
    if (!r && rename(tmp, dest) != 0)
        r = err_set(err, STATUS_IO, "cannot rename '%s' to '%s': %s", tmp, dest, strerror(errno));
    if (r)
        unlink(tmp);
    return r;
}

/* ---- keys ---- */

static Status check_name(const char *name, Err *err) {
    return store_check_name("key name", name, STORE_KEY_NAME_MAX, err);
}

void store_key_hash(const char *key, size_t len, uint8_t hash[STORE_KEY_HASH_BYTES]) {
    ASSERT(sodium_init() >= 0); /* succeeded in store_open; idempotent */
    crypto_generichash(hash, STORE_KEY_HASH_BYTES, (const unsigned char *)key, len, NULL, 0);
}

int store_key_find(const StoreKey *keys, int n, const uint8_t hash[STORE_KEY_HASH_BYTES]) {
    /* Branch-free selection: every key is compared, and which one matched
     * changes only the value of 'found', never the work done. */
    unsigned found = ~0u; /* -1 */
    for (int i = 0; i < n; i++) {
        unsigned eq = (unsigned)(sodium_memcmp(keys[i].hash, hash, STORE_KEY_HASH_BYTES) == 0);
        unsigned active = (unsigned)(keys[i].revoked == 0);
        unsigned none_yet = found >> (sizeof found * CHAR_BIT - 1); /* 1 while found == -1 */
        unsigned mask = 0u - (eq & active & none_yet);
        found = (found & ~mask) | ((unsigned)i & mask);
    }
    return (int)found;
}

/* Bump the keys version inside the caller's transaction. */
static Status bump_version(Store *s, Err *err) {
    return store_exec(s, "UPDATE meta SET value = value + 1 WHERE key = 'keys_version'",
                      "updating the keys version", err);
}

static Status count_query(Store *s, const char *sql, const char *name, long long *out, Err *err) {
    sqlite3_stmt *st = NULL;
    Status r = store_prepare(s, sql, &st, err);
    if (r)
        return r;
    if (name)
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *out = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if (rc == SQLITE_DONE)
        return err_set(err, STATUS_FORMAT, "'%s': no row for \"%s\"", s->path, sql);
    return rc == SQLITE_ROW ? STATUS_OK : store_db_fail(s, rc, "query", err);
}

/* Make a key's text from fresh random bytes. */
static void new_key_text(char key_out[STORE_KEY_TEXT_LEN + 1]) {
    unsigned char raw[STORE_KEY_RAW_BYTES];
    char b64[sodium_base64_ENCODED_LEN(STORE_KEY_RAW_BYTES,
                                       sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
    randombytes_buf(raw, sizeof raw);
    sodium_bin2base64(b64, sizeof b64, raw, sizeof raw, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    _Static_assert(sizeof STORE_KEY_PREFIX - 1 + sizeof b64 - 1 == STORE_KEY_TEXT_LEN,
                   "key text length");
    memcpy(key_out, STORE_KEY_PREFIX, sizeof STORE_KEY_PREFIX - 1);
    memcpy(key_out + sizeof STORE_KEY_PREFIX - 1, b64, sizeof b64); /* with its NUL */
    sodium_memzero(raw, sizeof raw);
    sodium_memzero(b64, sizeof b64);
}

static Status insert_key(Store *s, long long user, const char *name, const uint8_t *hash, int rpm,
                         int tpm, int max_streams, Err *err) {
    sqlite3_stmt *st = NULL;
    Status r = store_prepare(s,
                             "INSERT INTO api_keys(name, hash, created, revoked, rpm, tpm, "
                             "max_streams, user_id) VALUES(?, ?, ?, 0, ?, ?, ?, ?)",
                             &st, err);
    if (r)
        return r;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 2, hash, STORE_KEY_HASH_BYTES, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)time(NULL));
    sqlite3_bind_int(st, 4, rpm);
    sqlite3_bind_int(st, 5, tpm);
    sqlite3_bind_int(st, 6, max_streams);
    if (user > 0)
        sqlite3_bind_int64(st, 7, user);
    else
        sqlite3_bind_null(st, 7);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc == SQLITE_DONE)
        return STATUS_OK;
    if ((rc & 0xff) == SQLITE_CONSTRAINT) /* a race the check before missed */
        return err_set(err, STATUS_INVALID, "an active key named '%s' already exists", name);
    return store_db_fail(s, rc, "adding the key", err);
}

static Status key_add(Store *s, long long user, const char *name, int rpm, int tpm, int max_streams,
                      char key_out[STORE_KEY_TEXT_LEN + 1], Err *err) {
    key_out[0] = '\0';
    Status r = check_name(name, err);
    if (r)
        return r;
    if (rpm < 0 || tpm < 0 || max_streams < 0)
        return err_set(err, STATUS_INVALID,
                       "key '%s': limits must be >= 0 (rpm %d, tpm %d, max_streams %d)", name, rpm,
                       tpm, max_streams);
    char key[STORE_KEY_TEXT_LEN + 1];
    uint8_t hash[STORE_KEY_HASH_BYTES];
    new_key_text(key);
    store_key_hash(key, STORE_KEY_TEXT_LEN, hash);
    if ((r = store_exec(s, "BEGIN IMMEDIATE", "adding a key", err)))
        goto done;
    long long n_active = 0, n_all = 0;
    char q[160];
    snprintf(q, sizeof q,
             "SELECT count(*) FROM api_keys WHERE name = ? AND revoked = 0 AND "
             "coalesce(user_id, 0) = %lld",
             user > 0 ? user : 0);
    r = count_query(s, q, name, &n_active, err);
    if (!r)
        r = count_query(s, "SELECT count(*) FROM api_keys", NULL, &n_all, err);
    if (!r && n_active > 0)
        r = err_set(err, STATUS_INVALID, "an active key named '%s' already exists", name);
    if (!r && n_all >= STORE_MAX_KEYS)
        r = err_set(err, STATUS_LIMIT, "'%s': %lld keys already (limit %d)", s->path, n_all,
                    STORE_MAX_KEYS);
    if (!r)
        r = insert_key(s, user, name, hash, rpm, tpm, max_streams, err);
    if (!r)
        r = bump_version(s, err);
    if (!r)
        r = store_exec(s, "COMMIT", "adding a key", err);
    if (r)
        store_rollback(s);
    else
        memcpy(key_out, key, sizeof key);
done:
    sodium_memzero(key, sizeof key);
    return r;
}

Status store_key_add(Store *s, long long user, const char *name, int rpm, int tpm, int max_streams,
                     char key_out[STORE_KEY_TEXT_LEN + 1], Err *err) {
    STORE_LOCK(s);
    Status r = key_add(s, user, name, rpm, tpm, max_streams, key_out, err);
    STORE_UNLOCK(s);
    return r;
}

static Status key_revoke(Store *s, long long user, const char *name, Err *err) {
    Status r = check_name(name, err);
    if (r)
        return r;
    if ((r = store_exec(s, "BEGIN IMMEDIATE", "revoking a key", err)))
        return r;
    sqlite3_stmt *st = NULL;
    r = store_prepare(s,
                      "UPDATE api_keys SET revoked = ? WHERE name = ? AND revoked = 0 AND "
                      "coalesce(user_id, 0) = ?",
                      &st, err);
    if (!r) {
        sqlite3_bind_int64(st, 1, store_now()); /* 0 means active */
        sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, user > 0 ? user : 0);
        int rc = sqlite3_step(st);
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE)
            r = store_db_fail(s, rc, "revoking the key", err);
        else if (sqlite3_changes(s->db) == 0)
            r = err_set(err, STATUS_INVALID, "no active key named '%s'", name);
    }
    if (!r)
        r = bump_version(s, err);
    if (!r)
        r = store_exec(s, "COMMIT", "revoking a key", err);
    if (r)
        store_rollback(s);
    return r;
}

Status store_key_revoke(Store *s, long long user, const char *name, Err *err) {
    STORE_LOCK(s);
    Status r = key_revoke(s, user, name, err);
    STORE_UNLOCK(s);
    return r;
}

/* One row of api_keys into 'k'; FORMAT when a stored value is malformed. */
static Status read_key_row(Store *s, sqlite3_stmt *st, StoreKey *k, Err *err) {
    memset(k, 0, sizeof *k);
    const unsigned char *name = sqlite3_column_text(st, 0);
    int name_len = sqlite3_column_bytes(st, 0);
    const void *hash = sqlite3_column_blob(st, 1);
    int hash_len = sqlite3_column_bytes(st, 1);
    if (!name || name_len < 1 || name_len > STORE_KEY_NAME_MAX)
        return err_set(err, STATUS_FORMAT, "'%s': a key name is %d bytes (limit %d)", s->path,
                       name_len, STORE_KEY_NAME_MAX);
    if (!hash || hash_len != STORE_KEY_HASH_BYTES)
        return err_set(err, STATUS_FORMAT, "'%s': key '%.*s' has a %d-byte hash (want %d)", s->path,
                       name_len, (const char *)name, hash_len, STORE_KEY_HASH_BYTES);
    memcpy(k->name, name, (size_t)name_len);
    memcpy(k->hash, hash, STORE_KEY_HASH_BYTES);
    k->created = sqlite3_column_int64(st, 2);
    k->revoked = sqlite3_column_int64(st, 3);
    long long lim[3] = {sqlite3_column_int64(st, 4), sqlite3_column_int64(st, 5),
                        sqlite3_column_int64(st, 6)};
    for (int j = 0; j < 3; j++)
        if (lim[j] < 0 || lim[j] > INT_MAX)
            return err_set(err, STATUS_FORMAT, "'%s': key '%s' has a limit of %lld", s->path,
                           k->name, lim[j]);
    k->rpm = (int)lim[0];
    k->tpm = (int)lim[1];
    k->max_streams = (int)lim[2];
    k->user_id = sqlite3_column_int64(st, 7);
    const unsigned char *owner = sqlite3_column_text(st, 8);
    snprintf(k->owner, sizeof k->owner, "%s", owner ? (const char *)owner : "");
    return STATUS_OK;
}

static Status key_list(Store *s, long long user, StoreKey **out, int *n, Err *err) {
    *out = NULL;
    *n = 0;
    sqlite3_stmt *st = NULL;
    Status r = store_prepare(s,
                             "SELECT k.name, k.hash, k.created, k.revoked, k.rpm, k.tpm, "
                             "k.max_streams, coalesce(k.user_id, 0), u.name FROM api_keys k "
                             "LEFT JOIN users u ON u.id = k.user_id "
                             "WHERE ?1 < 0 OR coalesce(k.user_id, 0) = ?1 ORDER BY k.created, k.id",
                             &st, err);
    if (r)
        return r;
    sqlite3_bind_int64(st, 1, user);
    int cap = 16, count = 0, rc = SQLITE_DONE;
    StoreKey *keys = malloc(sizeof *keys * (size_t)cap);
    if (!keys)
        r = err_set(err, STATUS_NOMEM, "out of memory listing keys");
    while (!r && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (count == STORE_MAX_KEYS) {
            r = err_set(err, STATUS_LIMIT, "'%s': more than %d keys", s->path, STORE_MAX_KEYS);
            break;
        }
        if (count == cap) {
            StoreKey *nk = realloc(keys, sizeof *keys * (size_t)cap * 2);
            if (!nk) {
                r = err_set(err, STATUS_NOMEM, "out of memory listing %d keys", count);
                break;
            }
            keys = nk;
            cap *= 2;
        }
        r = read_key_row(s, st, &keys[count], err);
        count++;
    }
    if (!r && rc != SQLITE_DONE)
        r = store_db_fail(s, rc, "listing keys", err);
    sqlite3_finalize(st);
    if (r) {
        free(keys);
        return r;
    }
    *out = keys;
    *n = count;
    return STATUS_OK;
}

Status store_key_list(Store *s, long long user, StoreKey **out, int *n, Err *err) {
    STORE_LOCK(s);
    Status r = key_list(s, user, out, n, err);
    STORE_UNLOCK(s);
    return r;
}

Status store_keys_version(Store *s, long long *version, Err *err) {
    long long v = 0;
    STORE_LOCK(s);
    Status r = count_query(s, "SELECT value FROM meta WHERE key = 'keys_version'", NULL, &v, err);
    STORE_UNLOCK(s);
    if (r == STATUS_OK)
        *version = v;
    return r;
}

/* Bump the keys version (keys of a removed user went with it). Inside the
 * caller's transaction; for users.c. */
Status store_bump_keys_version(Store *s, Err *err) { return bump_version(s, err); }
