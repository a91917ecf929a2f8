/* test_store.c - the data directory's database: API keys added, listed,
 * revoked and found; persistence; the version other connections poll;
 * refusal of bad names, duplicates and foreign files; file modes; and that
 * no key text ever reaches the disk. Hash expectations come from the
 * published BLAKE2b-256 test value, not from the code under test. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store/store.h"

static char dir[64];

static void setup(void) {
    snprintf(dir, sizeof dir, "/tmp/cgpt-store-XXXXXX");
    cr_assert(mkdtemp(dir));
}

static void teardown(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

static const char *sub(const char *name) {
    static char p[4][256];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s", dir, name);
    return p[k];
}

static Store *open_ok(const char *d) {
    Store *s = NULL;
    Err err = {0};
    cr_assert_eq(store_open(&s, d, &err), STATUS_OK, "store_open(%s): %s", d, err.msg);
    cr_assert_not_null(s);
    return s;
}

static void add_ok(Store *s, const char *name, int rpm, int tpm, int ms, char key[]) {
    Err err = {0};
    cr_assert_eq(store_key_add(s, 0, name, rpm, tpm, ms, key, &err), STATUS_OK, "add %s: %s", name,
                 err.msg);
}

static long long version(Store *s) {
    long long v = -1;
    Err err = {0};
    cr_assert_eq(store_keys_version(s, &v, &err), STATUS_OK, "%s", err.msg);
    return v;
}

static bool is_b64url(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

static void check_key_text(const char *key) {
    cr_assert_eq(strlen(key), STORE_KEY_TEXT_LEN, "key '%s' has %zu chars", key, strlen(key));
    cr_assert(!strncmp(key, "sk-cgpt-", 8), "key '%s' lacks the prefix", key);
    for (int i = 8; i < STORE_KEY_TEXT_LEN; i++)
        cr_assert(is_b64url(key[i]), "key '%s': char %d is not base64url", key, i);
}

static int find_text(const StoreKey *keys, int n, const char *key) {
    uint8_t h[STORE_KEY_HASH_BYTES];
    store_key_hash(key, strlen(key), h);
    return store_key_find(keys, n, h);
}

TestSuite(store, .init = setup, .fini = teardown);

Test(store, hash_is_blake2b_256) {
    /* BLAKE2b-256("abc"), e.g. Python's hashlib.blake2b(b'abc', digest_size=32). */
    static const uint8_t want[32] = {0xbd, 0xdd, 0x81, 0x3c, 0x63, 0x42, 0x39, 0x72,
                                     0x31, 0x71, 0xef, 0x3f, 0xee, 0x98, 0x57, 0x9b,
                                     0x94, 0x96, 0x4e, 0x3b, 0xb1, 0xcb, 0x3e, 0x42,
                                     0x72, 0x62, 0xc8, 0xc0, 0x68, 0xd5, 0x23, 0x19};
    uint8_t h[STORE_KEY_HASH_BYTES];
    store_key_hash("abc", 3, h);
    cr_assert_arr_eq(h, want, 32);
    /* Over-long presented keys hash as given (and differ from a prefix). */
    char big[STORE_MAX_PRESENTED * 4];
    memset(big, 'x', sizeof big);
    uint8_t h1[32], h2[32];
    store_key_hash(big, sizeof big, h1);
    store_key_hash(big, STORE_MAX_PRESENTED, h2);
    cr_assert(memcmp(h1, h2, 32) != 0);
}

Test(store, add_list_revoke_find) {
    Store *s = open_ok(dir);
    char k1[STORE_KEY_TEXT_LEN + 1], k2[STORE_KEY_TEXT_LEN + 1], k3[STORE_KEY_TEXT_LEN + 1];
    long long t0 = (long long)time(NULL);
    add_ok(s, "alice", 10, 1000, 2, k1);
    add_ok(s, "bob", 0, 0, 0, k2);
    long long t1 = (long long)time(NULL);
    check_key_text(k1);
    check_key_text(k2);
    cr_assert_str_neq(k1, k2);

    StoreKey *keys = NULL;
    int n = -1;
    Err err = {0};
    cr_assert_eq(store_key_list(s, -1, &keys, &n, &err), STATUS_OK, "%s", err.msg);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(keys[0].name, "alice");
    cr_assert_str_eq(keys[1].name, "bob");
    cr_assert_eq(keys[0].rpm, 10);
    cr_assert_eq(keys[0].tpm, 1000);
    cr_assert_eq(keys[0].max_streams, 2);
    cr_assert_eq(keys[1].rpm, 0);
    cr_assert(keys[0].created >= t0 && keys[0].created <= t1, "created %lld not in [%lld, %lld]",
              keys[0].created, t0, t1);
    cr_assert_eq(keys[0].revoked, 0);
    cr_assert_eq(find_text(keys, n, k1), 0);
    cr_assert_eq(find_text(keys, n, k2), 1);
    cr_assert_eq(find_text(keys, n, "sk-cgpt-nope"), -1);
    /* A key differing in its last character does not match. */
    char k1x[STORE_KEY_TEXT_LEN + 1];
    memcpy(k1x, k1, sizeof k1x);
    k1x[STORE_KEY_TEXT_LEN - 1] = k1x[STORE_KEY_TEXT_LEN - 1] == 'A' ? 'B' : 'A';
    cr_assert_eq(find_text(keys, n, k1x), -1);
    free(keys);

    cr_assert_eq(store_key_revoke(s, 0, "alice", &err), STATUS_OK, "%s", err.msg);
    cr_assert_eq(store_key_list(s, -1, &keys, &n, &err), STATUS_OK, "%s", err.msg);
    cr_assert_eq(n, 2);
    cr_assert(keys[0].revoked >= t0, "revoked = %lld", keys[0].revoked);
    cr_assert_eq(find_text(keys, n, k1), -1, "a revoked key still matches");
    cr_assert_eq(find_text(keys, n, k2), 1);
    free(keys);

    /* The name is free again; the old key stays dead. */
    add_ok(s, "alice", 5, 0, 0, k3);
    cr_assert_eq(store_key_list(s, -1, &keys, &n, &err), STATUS_OK, "%s", err.msg);
    cr_assert_eq(n, 3);
    cr_assert_eq(find_text(keys, n, k3), 2);
    cr_assert_eq(find_text(keys, n, k1), -1);
    cr_assert_eq(keys[2].rpm, 5);
    free(keys);

    cr_assert_eq(store_key_revoke(s, 0, "nobody", &err), STATUS_INVALID);
    cr_assert(strstr(err.msg, "nobody"), "%s", err.msg);
    cr_assert_eq(store_key_revoke(s, 0, "bob", &err), STATUS_OK, "%s", err.msg);
    cr_assert_eq(store_key_revoke(s, 0, "bob", &err), STATUS_INVALID, "revoked twice");
    store_close(s);
}

Test(store, list_empty) {
    Store *s = open_ok(dir);
    StoreKey *keys = NULL;
    int n = -1;
    Err err = {0};
    cr_assert_eq(store_key_list(s, -1, &keys, &n, &err), STATUS_OK, "%s", err.msg);
    cr_assert_eq(n, 0);
    free(keys);
    store_close(s);
}

/* store_key_find over many synthetic keys: the right index for every key,
 * -1 for revoked and unknown ones, the active one when a revoked entry
 * carries the same hash. */
Test(store, find_many_synthetic) {
    enum { N = 5000 };
    StoreKey *keys = calloc(N, sizeof *keys);
    cr_assert_not_null(keys);
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < N; i++) {
        for (int j = 0; j < STORE_KEY_HASH_BYTES; j++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            keys[i].hash[j] = (uint8_t)x;
        }
        keys[i].revoked = i % 7 == 3 ? 1700000000 : 0;
    }
    /* Entry 100 is a revoked twin of the active entry 4001 (4001 % 7 != 3). */
    memcpy(keys[100].hash, keys[4001].hash, STORE_KEY_HASH_BYTES);
    keys[100].revoked = 1;
    for (int i = 0; i < N; i++) {
        int want = i == 100 ? 4001 : (keys[i].revoked ? -1 : i);
        int got = store_key_find(keys, N, keys[i].hash);
        cr_assert_eq(got, want, "key %d: found %d, want %d", i, got, want);
    }
    uint8_t unknown[STORE_KEY_HASH_BYTES] = {0};
    cr_assert_eq(store_key_find(keys, N, unknown), -1);
    cr_assert_eq(store_key_find(keys, 0, keys[0].hash), -1);
    /* First and last positions. */
    keys[0].revoked = keys[N - 1].revoked = 0;
    cr_assert_eq(store_key_find(keys, N, keys[0].hash), 0);
    cr_assert_eq(store_key_find(keys, N, keys[N - 1].hash), N - 1);
    free(keys);
}

Test(store, find_many_stored) {
    enum { N = 300 };
    Store *s = open_ok(dir);
    static char texts[N][STORE_KEY_TEXT_LEN + 1];
    for (int i = 0; i < N; i++) {
        char name[32];
        snprintf(name, sizeof name, "k%03d", i);
        add_ok(s, name, i, 0, 0, texts[i]);
    }
    Err err = {0};
    for (int i = 0; i < N; i += 3) {
        char name[32];
        snprintf(name, sizeof name, "k%03d", i);
        cr_assert_eq(store_key_revoke(s, 0, name, &err), STATUS_OK, "%s", err.msg);
    }
    StoreKey *keys = NULL;
    int n = 0;
    cr_assert_eq(store_key_list(s, -1, &keys, &n, &err), STATUS_OK, "%s", err.msg);
    cr_assert_eq(n, N);
    for (int i = 0; i < N; i++) {
        int got = find_text(keys, n, texts[i]);
        int want = i % 3 == 0 ? -1 : i;
        cr_assert_eq(got, want, "key %d found at %d", i, got);
        if (got >= 0)
            cr_assert_eq(keys[got].rpm, i);
    }
    free(keys);
    store_close(s);
}

Test(store, persists_across_reopen) {
    Store *s = open_ok(dir);
    char k1[STORE_KEY_TEXT_LEN + 1], k2[STORE_KEY_TEXT_LEN + 1];
    add_ok(s, "one", 1, 2, 3, k1);
    add_ok(s, "two", 0, 0, 0, k2);
    Err err = {0};
    cr_assert_eq(store_key_revoke(s, 0, "two", &err), STATUS_OK, "%s", err.msg);
    long long v = version(s);
    store_close(s);

    s = open_ok(dir);
    cr_assert_eq(version(s), v, "the version changed on reopen");
    StoreKey *keys = NULL;
    int n = 0;
    cr_assert_eq(store_key_list(s, -1, &keys, &n, &err), STATUS_OK, "%s", err.msg);
    cr_assert_eq(n, 2);
    cr_assert_eq(find_text(keys, n, k1), 0);
    cr_assert_eq(find_text(keys, n, k2), -1);
    cr_assert_eq(keys[0].tpm, 2);
    cr_assert_eq(keys[0].max_streams, 3);
    cr_assert_neq(keys[1].revoked, 0);
    free(keys);
    store_close(s);
}

Test(store, second_connection_sees_version_bump) {
    Store *a = open_ok(dir), *b = open_ok(dir);
    char k[STORE_KEY_TEXT_LEN + 1];
    long long v0 = version(b);
    add_ok(a, "x", 0, 0, 0, k);
    long long v1 = version(b);
    cr_assert_neq(v1, v0, "b did not see a's add");
    Err err = {0};
    /* A failed add or revoke changes nothing. */
    cr_assert_eq(store_key_add(a, 0, "x", 0, 0, 0, k, &err), STATUS_INVALID);
    cr_assert_eq(store_key_revoke(a, 0, "y", &err), STATUS_INVALID);
    cr_assert_eq(version(b), v1, "a failed call bumped the version");
    cr_assert_eq(store_key_revoke(a, 0, "x", &err), STATUS_OK, "%s", err.msg);
    long long v2 = version(b);
    cr_assert(v2 != v1 && v2 != v0, "b did not see a's revoke");
    /* b's writes are seen by a too, and b lists a's keys. */
    add_ok(b, "z", 0, 0, 0, k);
    cr_assert_eq(version(a), version(b));
    cr_assert_neq(version(a), v2);
    StoreKey *keys = NULL;
    int n = 0;
    cr_assert_eq(store_key_list(a, -1, &keys, &n, &err), STATUS_OK, "%s", err.msg);
    cr_assert_eq(n, 2);
    cr_assert_eq(find_text(keys, n, k), 1);
    free(keys);
    store_close(a);
    store_close(b);
}

Test(store, bad_names_and_limits) {
    Store *s = open_ok(dir);
    char k[STORE_KEY_TEXT_LEN + 1];
    Err err = {0};
    char n65[66], n64[65];
    memset(n65, 'a', 65);
    n65[65] = '\0';
    memset(n64, 'b', 64);
    n64[64] = '\0';
    const char *bad[] = {"", n65, "a b", "a/b", "caf\xc3\xa9", "a\nb", "x'y", "a;b", "\"q\""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(k, 'Z', sizeof k);
        err.msg[0] = '\0';
        cr_assert_eq(store_key_add(s, 0, bad[i], 0, 0, 0, k, &err), STATUS_INVALID, "name #%zu", i);
        cr_assert(err.msg[0], "no message for name #%zu", i);
        cr_assert_eq(k[0], '\0', "key_out not cleared for a refused add");
        cr_assert_eq(store_key_revoke(s, 0, bad[i], &err), STATUS_INVALID, "revoke name #%zu", i);
    }
    add_ok(s, n64, 0, 0, 0, k);
    add_ok(s, "A.b_c-9", 0, 0, 0, k);
    cr_assert_eq(store_key_add(s, 0, "neg", -1, 0, 0, k, &err), STATUS_INVALID);
    cr_assert_eq(store_key_add(s, 0, "neg", 0, -5, 0, k, &err), STATUS_INVALID);
    cr_assert_eq(store_key_add(s, 0, "neg", 0, 0, -1, k, &err), STATUS_INVALID);
    StoreKey *keys = NULL;
    int n = 0;
    cr_assert_eq(store_key_list(s, -1, &keys, &n, &err), STATUS_OK, "%s", err.msg);
    cr_assert_eq(n, 2, "refused adds left rows behind");
    cr_assert_str_eq(keys[0].name, n64);
    free(keys);
    store_close(s);
}

Test(store, duplicate_active_name) {
    Store *s = open_ok(dir);
    char k1[STORE_KEY_TEXT_LEN + 1], k2[STORE_KEY_TEXT_LEN + 1];
    add_ok(s, "dup", 0, 0, 0, k1);
    Err err = {0};
    cr_assert_eq(store_key_add(s, 0, "dup", 1, 1, 1, k2, &err), STATUS_INVALID);
    cr_assert(strstr(err.msg, "dup"), "%s", err.msg);
    cr_assert_eq(k2[0], '\0');
    StoreKey *keys = NULL;
    int n = 0;
    cr_assert_eq(store_key_list(s, -1, &keys, &n, &err), STATUS_OK, "%s", err.msg);
    cr_assert_eq(n, 1);
    cr_assert_eq(keys[0].rpm, 0, "the refused add changed the key");
    free(keys);
    store_close(s);
}

Test(store, not_a_database) {
    const char *db = sub("cgpt.db");
    FILE *f = fopen(db, "wb");
    cr_assert_not_null(f);
    for (int i = 0; i < 200; i++)
        fputs("this is a text file, not SQLite\n", f);
    fclose(f);
    Store *s = NULL;
    Err err = {0};
    cr_assert_eq(store_open(&s, dir, &err), STATUS_FORMAT, "%s", err.msg);
    cr_assert_null(s);
    cr_assert(strstr(err.msg, db), "message does not name '%s': %s", db, err.msg);
}

/* An SQLite database of someone else's, and one from a newer cgpt. */
Test(store, foreign_and_newer_databases) {
    const char *db = sub("cgpt.db");
    sqlite3 *h = NULL;
    cr_assert_eq(sqlite3_open(db, &h), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(h, "CREATE TABLE photos(id INTEGER)", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(h);
    Store *s = NULL;
    Err err = {0};
    cr_assert_eq(store_open(&s, dir, &err), STATUS_FORMAT, "%s", err.msg);
    cr_assert(strstr(err.msg, db), "%s", err.msg);

    unlink(db);
    s = open_ok(dir);
    store_close(s);
    cr_assert_eq(sqlite3_open(db, &h), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(h, "UPDATE meta SET value = 99 WHERE key = 'schema_version'", NULL,
                              NULL, NULL),
                 SQLITE_OK);
    sqlite3_close(h);
    cr_assert_eq(store_open(&s, dir, &err), STATUS_FORMAT, "%s", err.msg);
    cr_assert(strstr(err.msg, "99") && strstr(err.msg, "newer"), "%s", err.msg);
}

Test(store, data_dir_is_a_file) {
    const char *f = sub("plain");
    FILE *fp = fopen(f, "w");
    cr_assert_not_null(fp);
    fclose(fp);
    Store *s = NULL;
    Err err = {0};
    cr_assert_eq(store_open(&s, f, &err), STATUS_IO, "%s", err.msg);
    cr_assert(strstr(err.msg, f), "%s", err.msg);
    /* cgpt.db being a directory */
    const char *d = sub("d");
    cr_assert_eq(mkdir(d, 0700), 0);
    char inner[300];
    snprintf(inner, sizeof inner, "%s/cgpt.db", d);
    cr_assert_eq(mkdir(inner, 0700), 0);
    cr_assert_neq(store_open(&s, d, &err), STATUS_OK);
    cr_assert_null(s);
}

static int mode_of(const char *path) {
    struct stat st;
    cr_assert_eq(stat(path, &st), 0, "stat %s", path);
    return (int)(st.st_mode & 07777);
}

Test(store, permissions) {
    mode_t old = umask(0); /* the most permissive umask: modes must not depend on it */
    const char *nested = sub("a/b/data");
    Store *s = open_ok(nested);
    umask(old);
    char k[STORE_KEY_TEXT_LEN + 1];
    add_ok(s, "p", 0, 0, 0, k);
    cr_assert_eq(mode_of(sub("a")), 0700, "a: %o", mode_of(sub("a")));
    cr_assert_eq(mode_of(sub("a/b")), 0700);
    cr_assert_eq(mode_of(nested), 0700, "%o", mode_of(nested));
    char p[300];
    snprintf(p, sizeof p, "%s/cgpt.db", nested);
    cr_assert_eq(mode_of(p), 0600, "cgpt.db: %o", mode_of(p));
    snprintf(p, sizeof p, "%s/cgpt.db-wal", nested);
    cr_assert_eq(access(p, F_OK), 0, "no WAL file: is the journal in WAL mode?");
    cr_assert_eq(mode_of(p), 0600, "cgpt.db-wal: %o", mode_of(p));
    store_close(s);

    /* An existing world-readable database is tightened on open. */
    snprintf(p, sizeof p, "%s/cgpt.db", nested);
    cr_assert_eq(chmod(p, 0644), 0);
    s = open_ok(nested);
    cr_assert_eq(mode_of(p), 0600, "%o", mode_of(p));
    store_close(s);
}

/* Read every file in the data directory and look for 'needle'. */
static bool dir_contains(const char *d, const void *needle, size_t len) {
    DIR *dp = opendir(d);
    cr_assert_not_null(dp);
    struct dirent *e;
    bool hit = false;
    int n_files = 0;
    while (!hit && (e = readdir(dp))) {
        if (e->d_name[0] == '.')
            continue;
        char p[512];
        snprintf(p, sizeof p, "%s/%s", d, e->d_name);
        FILE *f = fopen(p, "rb");
        cr_assert_not_null(f, "%s", p);
        fseek(f, 0, SEEK_END);
        long size = ftell(f);
        fseek(f, 0, SEEK_SET);
        char *buf = malloc((size_t)size + 1);
        cr_assert_not_null(buf);
        cr_assert_eq(fread(buf, 1, (size_t)size, f), (size_t)size);
        fclose(f);
        hit = memmem(buf, (size_t)size, needle, len) != NULL;
        free(buf);
        n_files++;
    }
    closedir(dp);
    cr_assert(n_files > 0);
    return hit;
}

Test(store, keys_never_stored_in_clear) {
    Store *s = open_ok(dir);
    char keys[3][STORE_KEY_TEXT_LEN + 1];
    for (int i = 0; i < 3; i++) {
        char name[16];
        snprintf(name, sizeof name, "n%d", i);
        add_ok(s, name, 0, 0, 0, keys[i]);
    }
    Err err = {0};
    cr_assert_eq(store_key_revoke(s, 0, "n1", &err), STATUS_OK, "%s", err.msg);
    for (int pass = 0; pass < 2; pass++) { /* while open (WAL) and after close (checkpointed) */
        for (int i = 0; i < 3; i++) {
            cr_assert(!dir_contains(dir, keys[i], STORE_KEY_TEXT_LEN), "key %d in clear", i);
            /* the random part alone, and its first 16 characters */
            cr_assert(!dir_contains(dir, keys[i] + 8, STORE_KEY_TEXT_LEN - 8));
            cr_assert(!dir_contains(dir, keys[i] + 8, 16));
            /* The search can succeed: the stored hash is there. */
            uint8_t h[STORE_KEY_HASH_BYTES];
            store_key_hash(keys[i], STORE_KEY_TEXT_LEN, h);
            cr_assert(dir_contains(dir, h, sizeof h), "hash of key %d not found on disk", i);
        }
        if (pass == 0)
            store_close(s);
    }
}
