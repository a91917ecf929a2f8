/* test_chatstore.c - users, sessions, conversations and messages in the
 * store (store.h): passwords verified by libsodium's own Argon2id check
 * (the stored string is checked with crypto_pwhash_str_verify here, an
 * oracle the store does not compute), sessions that expire and end, every
 * conversation call scoped to its owner (another user's id is NOT_FOUND
 * like a missing one), message trees and the branch path, search, import
 * with remapped ids, recovery of interrupted replies, limits, backups,
 * integrity checks on a damaged file, and 32 threads writing at once
 * through one Store without a single "database is locked". */
#include <criterion/criterion.h>
#include <pthread.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/store.h"

static char dir[64];
static Store *st;
static StoreUser alice, bob;

static void setup(void) {
    snprintf(dir, sizeof dir, "/tmp/cgpt-chatstore-XXXXXX");
    cr_assert(mkdtemp(dir));
    Err err = {0};
    cr_assert_eq(store_open(&st, dir, &err), STATUS_OK, "%s", err.msg);
    cr_assert_eq(store_user_add(st, "alice", "correct horse", false, &alice, &err), STATUS_OK, "%s",
                 err.msg);
    cr_assert_eq(store_user_add(st, "bob", "battery staple", true, &bob, &err), STATUS_OK, "%s",
                 err.msg);
}

static void teardown(void) {
    store_close(st);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(userstore, .init = setup, .fini = teardown);
TestSuite(chatstore, .init = setup, .fini = teardown);

/* The stored password hash, read with plain SQLite. */
static void stored_hash(const char *name, char *out, size_t cap) {
    char path[128];
    snprintf(path, sizeof path, "%s/cgpt.db", dir);
    sqlite3 *db;
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *q;
    cr_assert_eq(sqlite3_prepare_v2(db, "SELECT pw_hash FROM users WHERE name = ?", -1, &q, NULL),
                 SQLITE_OK);
    sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
    cr_assert_eq(sqlite3_step(q), SQLITE_ROW);
    snprintf(out, cap, "%s", (const char *)sqlite3_column_text(q, 0));
    sqlite3_finalize(q);
    sqlite3_close(db);
}

Test(userstore, passwords_are_argon2id) {
    char h[256];
    stored_hash("alice", h, sizeof h);
    cr_assert(!strncmp(h, "$argon2id$", 10), "stored: %s", h);
    cr_assert(!strstr(h, "correct horse"));
    cr_assert_eq(crypto_pwhash_str_verify(h, "correct horse", 13), 0);
    cr_assert_neq(crypto_pwhash_str_verify(h, "correct horsf", 13), 0);
}

Test(userstore, verify_and_errors) {
    StoreUser u;
    Err err = {0};
    cr_assert_eq(store_user_verify(st, "alice", "correct horse", &u, &err), STATUS_OK, "%s",
                 err.msg);
    cr_assert_eq(u.id, alice.id);
    cr_assert(!u.admin);
    char wrong_pw[ERR_MSG_MAX], no_user[ERR_MSG_MAX];
    cr_assert_eq(store_user_verify(st, "alice", "wrong password", &u, &err), STATUS_INVALID);
    snprintf(wrong_pw, sizeof wrong_pw, "%s", err.msg);
    cr_assert_eq(u.id, 0);
    cr_assert_eq(store_user_verify(st, "mallory", "correct horse", &u, &err), STATUS_INVALID);
    snprintf(no_user, sizeof no_user, "%s", err.msg);
    cr_assert_str_eq(wrong_pw, no_user, "the two failures must read the same");
    cr_assert_eq(store_user_add(st, "alice", "another one", false, NULL, &err), STATUS_INVALID);
    cr_assert(strstr(err.msg, "already exists"));
    cr_assert_eq(store_user_add(st, "bad name", "long enough", false, NULL, &err), STATUS_INVALID);
    cr_assert_eq(store_user_add(st, "carol", "short", false, NULL, &err), STATUS_INVALID);
    cr_assert(strstr(err.msg, "shorter than 8"));
    cr_assert_eq(store_user_add(st, "", "long enough", false, NULL, &err), STATUS_INVALID);
    long long n = 0;
    cr_assert_eq(store_user_count(st, &n, &err), STATUS_OK);
    cr_assert_eq(n, 2);
    StoreUser *list;
    int k;
    cr_assert_eq(store_user_list(st, &list, &k, &err), STATUS_OK);
    cr_assert_eq(k, 2);
    cr_assert_str_eq(list[0].name, "alice");
    cr_assert_str_eq(list[1].name, "bob");
    cr_assert(list[1].admin);
    free(list);
}

Test(userstore, sessions) {
    char tok[STORE_TOKEN_LEN + 1], csrf[STORE_CSRF_LEN + 1], csrf2[STORE_CSRF_LEN + 1];
    Err err = {0};
    StoreUser u;
    cr_assert_eq(store_session_new(st, alice.id, 3600, tok, csrf, &err), STATUS_OK, "%s", err.msg);
    cr_assert_eq(strlen(tok), STORE_TOKEN_LEN);
    cr_assert_eq(strlen(csrf), STORE_CSRF_LEN);
    cr_assert_str_neq(tok, csrf);
    cr_assert_eq(store_session_get(st, tok, &u, csrf2, &err), STATUS_OK, "%s", err.msg);
    cr_assert_eq(u.id, alice.id);
    cr_assert_str_eq(csrf, csrf2);
    /* a different token, a truncated one, an empty one */
    char other[STORE_TOKEN_LEN + 1];
    snprintf(other, sizeof other, "%s", tok);
    other[0] = other[0] == 'A' ? 'B' : 'A';
    cr_assert_eq(store_session_get(st, other, &u, csrf2, &err), STATUS_NOT_FOUND);
    cr_assert_eq(store_session_get(st, "abc", &u, csrf2, &err), STATUS_NOT_FOUND);
    cr_assert_eq(store_session_get(st, "", &u, csrf2, &err), STATUS_NOT_FOUND);
    /* logout */
    cr_assert_eq(store_session_end(st, tok, &err), STATUS_OK);
    cr_assert_eq(store_session_get(st, tok, &u, csrf2, &err), STATUS_NOT_FOUND);
    /* expiry */
    cr_assert_eq(store_session_new(st, alice.id, -1, tok, csrf, &err), STATUS_OK);
    cr_assert_eq(store_session_get(st, tok, &u, csrf2, &err), STATUS_NOT_FOUND, "expired");
    /* a new password ends every session of the user */
    cr_assert_eq(store_session_new(st, alice.id, 3600, tok, csrf, &err), STATUS_OK);
    cr_assert_eq(store_user_passwd(st, "alice", "new password!", &err), STATUS_OK, "%s", err.msg);
    cr_assert_eq(store_session_get(st, tok, &u, csrf2, &err), STATUS_NOT_FOUND);
    cr_assert_eq(store_user_verify(st, "alice", "new password!", &u, &err), STATUS_OK);
    cr_assert_eq(store_user_passwd(st, "nobody", "new password!", &err), STATUS_NOT_FOUND);
}

Test(userstore, remove_takes_everything) {
    Err err = {0};
    char id[STORE_CONV_ID_LEN + 1], key[STORE_KEY_TEXT_LEN + 1], tok[STORE_TOKEN_LEN + 1],
        csrf[STORE_CSRF_LEN + 1];
    cr_assert_eq(store_conv_create(st, alice.id, "t", "", "", NULL, id, &err), STATUS_OK);
    cr_assert_eq(store_key_add(st, alice.id, "laptop", 0, 0, 0, key, &err), STATUS_OK, "%s",
                 err.msg);
    cr_assert_eq(store_key_add(st, bob.id, "laptop", 0, 0, 0, key, &err), STATUS_OK,
                 "names are per owner: %s", err.msg);
    cr_assert_eq(store_session_new(st, alice.id, 3600, tok, csrf, &err), STATUS_OK);
    long long v0, v1;
    cr_assert_eq(store_keys_version(st, &v0, &err), STATUS_OK);
    cr_assert_eq(store_user_remove(st, "alice", &err), STATUS_OK, "%s", err.msg);
    cr_assert_eq(store_keys_version(st, &v1, &err), STATUS_OK);
    cr_assert_gt(v1, v0, "the server reloads its keys");
    StoreKey *keys;
    int n;
    cr_assert_eq(store_key_list(st, -1, &keys, &n, &err), STATUS_OK);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(keys[0].owner, "bob");
    free(keys);
    json_t *c;
    StoreUser u;
    cr_assert_eq(store_conv_get(st, alice.id, id, &c, &err), STATUS_NOT_FOUND);
    cr_assert_eq(store_session_get(st, tok, &u, csrf, &err), STATUS_NOT_FOUND);
    cr_assert_eq(store_user_remove(st, "alice", &err), STATUS_NOT_FOUND);
}

/* ---- conversations ---- */

static long long add(const char *conv, long long parent, const char *role, const char *text,
                     const char *status) {
    long long id = 0;
    Err err = {0};
    cr_assert_eq(
        store_msg_add(st, alice.id, conv, parent, role, text, strlen(text), status, "m", &id, &err),
        STATUS_OK, "%s", err.msg);
    cr_assert_gt(id, 0);
    return id;
}

static const char *text_of(const json_t *m) {
    return json_string_value(json_object_get(m, "content"));
}

Test(chatstore, tree_path_and_leaf) {
    Err err = {0};
    char id[STORE_CONV_ID_LEN + 1];
    cr_assert_eq(store_conv_create(st, alice.id, "Dogs", "Be terse.", "mini",
                                   "{\"temperature\":0.5}", id, &err),
                 STATUS_OK, "%s", err.msg);
    cr_assert_eq(strlen(id), STORE_CONV_ID_LEN);
    long long u1 = add(id, 0, "user", "What is a dog?", "complete");
    long long a1 = add(id, u1, "assistant", "An animal.", "complete");
    long long a2 = add(id, u1, "assistant", "A mammal.", "complete"); /* regenerated */
    long long u2 = add(id, a2, "user", "And a cat?", "complete");
    long long u2b = add(id, a2, "user", "And a cow?", "complete"); /* edited */
    long long a3 = add(id, u2b, "assistant", "", "streaming");
    json_t *path;
    cr_assert_eq(store_msg_path(st, alice.id, id, a3, &path, &err), STATUS_OK, "%s", err.msg);
    cr_assert_eq(json_array_size(path), 4);
    cr_assert_str_eq(text_of(json_array_get(path, 0)), "What is a dog?");
    cr_assert_str_eq(text_of(json_array_get(path, 1)), "A mammal.");
    cr_assert_str_eq(text_of(json_array_get(path, 2)), "And a cow?");
    json_decref(path);
    cr_assert_eq(store_msg_path(st, alice.id, id, a1, &path, &err), STATUS_OK);
    cr_assert_eq(json_array_size(path), 2);
    json_decref(path);
    /* the stream goes on and ends */
    StoreMsgStats stats = {
        .prompt_tokens = 30, .completion_tokens = 3, .seconds = 0.25, .finish = "stop"};
    cr_assert_eq(store_msg_update(st, a3, "A cow", 5, NULL, NULL, &err), STATUS_OK);
    cr_assert_eq(store_msg_update(st, a3, "A cow moos.", 11, "complete", &stats, &err), STATUS_OK);
    json_t *c;
    cr_assert_eq(store_conv_get(st, alice.id, id, &c, &err), STATUS_OK, "%s", err.msg);
    cr_assert_str_eq(json_string_value(json_object_get(c, "title")), "Dogs");
    cr_assert_str_eq(json_string_value(json_object_get(c, "system")), "Be terse.");
    cr_assert_eq(json_real_value(json_object_get(json_object_get(c, "settings"), "temperature")),
                 0.5);
    cr_assert_eq(json_integer_value(json_object_get(c, "current_leaf")), a3);
    json_t *msgs = json_object_get(c, "messages");
    cr_assert_eq(json_array_size(msgs), 6);
    json_t *last = json_array_get(msgs, 5);
    cr_assert_str_eq(text_of(last), "A cow moos.");
    cr_assert_str_eq(json_string_value(json_object_get(last, "status")), "complete");
    cr_assert_eq(json_integer_value(json_object_get(last, "completion_tokens")), 3);
    cr_assert_eq(json_integer_value(json_object_get(last, "parent")), u2b);
    cr_assert_str_eq(json_string_value(json_object_get(last, "finish")), "stop");
    json_decref(c);
    /* switching branches: only to a message of this conversation */
    cr_assert_eq(store_conv_update(st, alice.id, id, NULL, NULL, NULL, NULL, u2, &err), STATUS_OK);
    cr_assert_eq(store_conv_get(st, alice.id, id, &c, &err), STATUS_OK);
    cr_assert_eq(json_integer_value(json_object_get(c, "current_leaf")), u2);
    cr_assert_str_eq(json_string_value(json_object_get(c, "title")), "Dogs", "title kept");
    json_decref(c);
    char other[STORE_CONV_ID_LEN + 1];
    cr_assert_eq(store_conv_create(st, alice.id, "", "", "", NULL, other, &err), STATUS_OK);
    long long o1 = add(other, 0, "user", "hi", "complete");
    cr_assert_eq(store_conv_update(st, alice.id, id, NULL, NULL, NULL, NULL, o1, &err),
                 STATUS_NOT_FOUND);
    cr_assert_eq(store_msg_add(st, alice.id, id, o1, "user", "x", 1, "complete", "", &o1, &err),
                 STATUS_NOT_FOUND, "a parent from another conversation");
    cr_assert_eq(store_msg_path(st, alice.id, id, o1, &path, &err), STATUS_NOT_FOUND);
}

Test(chatstore, another_users_conversation_is_not_found) {
    Err err = {0};
    char id[STORE_CONV_ID_LEN + 1];
    cr_assert_eq(store_conv_create(st, alice.id, "secret", "", "", NULL, id, &err), STATUS_OK);
    long long m = add(id, 0, "user", "my secret", "complete");
    json_t *j;
    long long got;
    cr_assert_eq(store_conv_get(st, bob.id, id, &j, &err), STATUS_NOT_FOUND);
    cr_assert_null(j);
    cr_assert_eq(store_conv_update(st, bob.id, id, "mine", NULL, NULL, NULL, -1, &err),
                 STATUS_NOT_FOUND);
    cr_assert_eq(store_conv_delete(st, bob.id, id, &err), STATUS_NOT_FOUND);
    cr_assert_eq(store_msg_add(st, bob.id, id, m, "user", "x", 1, "complete", "", &got, &err),
                 STATUS_NOT_FOUND);
    cr_assert_eq(store_msg_path(st, bob.id, id, m, &j, &err), STATUS_NOT_FOUND);
    cr_assert_eq(store_conv_list(st, bob.id, NULL, 0, &j, &err), STATUS_OK);
    cr_assert_eq(json_array_size(j), 0);
    json_decref(j);
    cr_assert_eq(store_conv_list(st, bob.id, "secret", 0, &j, &err), STATUS_OK);
    cr_assert_eq(json_array_size(j), 0, "search never crosses users");
    json_decref(j);
    cr_assert_eq(store_conv_get(st, alice.id, "0123456789abcdef0123456789abcdef", &j, &err),
                 STATUS_NOT_FOUND);
    cr_assert_eq(store_conv_get(st, alice.id, id, &j, &err), STATUS_OK, "the owner still sees it");
    cr_assert_str_eq(json_string_value(json_object_get(j, "title")), "secret");
    json_decref(j);
}

static int list_titles(const char *q, char out[][32], int max) {
    json_t *j;
    Err err = {0};
    cr_assert_eq(store_conv_list(st, alice.id, q, 0, &j, &err), STATUS_OK, "%s", err.msg);
    int n = (int)json_array_size(j);
    for (int i = 0; i < n && i < max; i++)
        snprintf(out[i], 32, "%s",
                 json_string_value(json_object_get(json_array_get(j, i), "title")));
    json_decref(j);
    return n;
}

Test(chatstore, list_newest_first_and_search) {
    Err err = {0};
    char a[STORE_CONV_ID_LEN + 1], b[STORE_CONV_ID_LEN + 1], c[STORE_CONV_ID_LEN + 1];
    cr_assert_eq(store_conv_create(st, alice.id, "Cooking pasta", "", "", NULL, a, &err), 0);
    cr_assert_eq(store_conv_create(st, alice.id, "Garden", "", "", NULL, b, &err), 0);
    cr_assert_eq(store_conv_create(st, alice.id, "100% sure_thing", "", "", NULL, c, &err), 0);
    add(b, 0, "user", "How deep do tomatoes root?", "complete");
    add(a, 0, "user", "Boil the water with salt.", "complete");
    char t[8][32];
    /* newest activity first: a (its message came last), then b, then c (no
     * messages; created after b, before the messages) */
    int n = list_titles(NULL, t, 8);
    cr_assert_eq(n, 3);
    cr_assert_str_eq(t[0], "Cooking pasta");
    cr_assert_str_eq(t[1], "Garden");
    cr_assert_str_eq(t[2], "100% sure_thing");
    cr_assert_eq(list_titles("tomato", t, 8), 1, "a prefix of a word in a message");
    cr_assert_str_eq(t[0], "Garden");
    cr_assert_eq(list_titles("SALT water", t, 8), 1, "all words, any order, any case");
    cr_assert_str_eq(t[0], "Cooking pasta");
    cr_assert_eq(list_titles("past", t, 8), 1, "in the title");
    cr_assert_eq(list_titles("%", t, 8), 1, "% is a character, not a wildcard");
    cr_assert_str_eq(t[0], "100% sure_thing");
    cr_assert_eq(list_titles("_", t, 8), 1);
    cr_assert_eq(list_titles("\"OR\" NEAR( * ^", t, 8), 0, "FTS syntax in a query is text");
    cr_assert_eq(list_titles("zebra", t, 8), 0);
    /* rename and delete */
    cr_assert_eq(store_conv_update(st, alice.id, b, "Vegetables", NULL, NULL, NULL, -1, &err), 0);
    cr_assert_eq(list_titles("vegetab", t, 8), 1);
    cr_assert_eq(store_conv_delete(st, alice.id, b, &err), STATUS_OK);
    cr_assert_eq(list_titles("tomato", t, 8), 0, "a deleted conversation's text is not found");
    cr_assert_eq(list_titles(NULL, t, 8), 2);
}

Test(chatstore, limits_and_bad_values) {
    Err err = {0};
    char id[STORE_CONV_ID_LEN + 1];
    static char big[STORE_SYSTEM_MAX + 2];
    memset(big, 'x', sizeof big - 1);
    cr_assert_eq(store_conv_create(st, alice.id, "", big, "", NULL, id, &err), STATUS_LIMIT);
    cr_assert_eq(store_conv_create(st, alice.id, big + STORE_SYSTEM_MAX - STORE_TITLE_MAX, "", "",
                                   NULL, id, &err),
                 STATUS_LIMIT, "a title one byte too long");
    cr_assert_eq(store_conv_create(st, alice.id, "", "", "", "[1]", id, &err), STATUS_INVALID);
    cr_assert_eq(store_conv_create(st, alice.id, "", "", "", "{", id, &err), STATUS_INVALID);
    cr_assert_eq(store_conv_create(st, alice.id, "ok", "", "", NULL, id, &err), STATUS_OK);
    long long m;
    cr_assert_eq(store_msg_add(st, alice.id, id, 0, "system", "x", 1, "complete", "", &m, &err),
                 STATUS_INVALID);
    cr_assert_eq(store_msg_add(st, alice.id, id, 0, "user", "x", 1, "done", "", &m, &err),
                 STATUS_INVALID);
    cr_assert_eq(store_msg_update(st, 1, NULL, 0, "finished", NULL, &err), STATUS_INVALID);
    /* text with a NUL byte is kept whole */
    cr_assert_eq(store_msg_add(st, alice.id, id, 0, "user", "a\0b", 3, "complete", "", &m, &err),
                 STATUS_OK);
}

/* Only UTF-8 is stored (JSON could not carry anything else back): bad bytes
 * are refused, a character cut by a streaming reply's end is left out
 * until the next update brings it whole, an imported title is cut at a
 * character. */
Test(chatstore, text_is_utf8) {
    Err err = {0};
    char id[STORE_CONV_ID_LEN + 1];
    long long m;
    cr_assert_eq(store_conv_create(st, alice.id, "bad \xC0\x80", "", "", NULL, id, &err),
                 STATUS_INVALID);
    cr_assert(strstr(err.msg, "UTF-8"), "%s", err.msg);
    cr_assert_eq(store_conv_create(st, alice.id, "ok", "", "", NULL, id, &err), STATUS_OK);
    cr_assert_eq(store_msg_add(st, alice.id, id, 0, "user", "a\xFFb", 3, "complete", "", &m, &err),
                 STATUS_INVALID);
    cr_assert(strstr(err.msg, "byte 1"), "%s", err.msg);
    cr_assert_eq(
        store_msg_add(st, alice.id, id, 0, "assistant", "caf\xC3", 4, "streaming", "", &m, &err),
        STATUS_OK, "%s", err.msg);
    json_t *c;
    cr_assert_eq(store_conv_get(st, alice.id, id, &c, &err), STATUS_OK, "%s", err.msg);
    cr_assert_str_eq(json_string_value(json_object_get(
                         json_array_get(json_object_get(c, "messages"), 0), "content")),
                     "caf");
    json_decref(c);
    cr_assert_eq(store_msg_update(st, m, "caf\xC3\xA9", 5, "complete", NULL, &err), STATUS_OK);
    cr_assert_eq(store_msg_update(st, m, "\xED\xA0\x80", 3, NULL, NULL, &err), STATUS_INVALID,
                 "a surrogate");
    cr_assert_eq(store_conv_get(st, alice.id, id, &c, &err), STATUS_OK, "%s", err.msg);
    cr_assert_str_eq(json_string_value(json_object_get(
                         json_array_get(json_object_get(c, "messages"), 0), "content")),
                     "caf\xC3\xA9");
    json_decref(c);
    /* a 2-byte character straddling the title limit */
    char title[STORE_TITLE_MAX + 8] = "x";
    for (size_t k = 1; k + 2 <= STORE_TITLE_MAX + 4; k += 2)
        memcpy(title + k, "\xC3\xA9", 2), title[k + 2] = '\0';
    json_t *imp = json_pack("{s:s, s:[{s:s, s:s}]}", "title", title, "messages", "role", "user",
                            "content", "q");
    cr_assert(imp);
    cr_assert_eq(store_conv_import(st, alice.id, imp, id, &err), STATUS_OK, "%s", err.msg);
    json_decref(imp);
    cr_assert_eq(store_conv_get(st, alice.id, id, &c, &err), STATUS_OK, "%s", err.msg);
    const char *t = json_string_value(json_object_get(c, "title"));
    cr_assert_eq(strlen(t), STORE_TITLE_MAX - 1, "cut before the character the limit splits");
    json_decref(c);
}

Test(chatstore, recover_interrupted_replies) {
    Err err = {0};
    char id[STORE_CONV_ID_LEN + 1];
    cr_assert_eq(store_conv_create(st, alice.id, "", "", "", NULL, id, &err), STATUS_OK);
    long long u = add(id, 0, "user", "tell me", "complete");
    long long a = add(id, u, "assistant", "", "streaming");
    cr_assert_eq(store_msg_update(st, a, "Once upon", 9, NULL, NULL, &err), STATUS_OK);
    /* the process dies here; a new one opens the store */
    store_close(st);
    cr_assert_eq(store_open(&st, dir, &err), STATUS_OK, "%s", err.msg);
    int n = -1;
    cr_assert_eq(store_recover(st, &n, &err), STATUS_OK);
    cr_assert_eq(n, 1);
    json_t *c;
    cr_assert_eq(store_conv_get(st, alice.id, id, &c, &err), STATUS_OK);
    json_t *m = json_array_get(json_object_get(c, "messages"), 1);
    cr_assert_str_eq(text_of(m), "Once upon");
    cr_assert_str_eq(json_string_value(json_object_get(m, "status")), "error");
    cr_assert(strstr(json_string_value(json_object_get(m, "error")), "stopped"));
    json_decref(c);
    cr_assert_eq(store_recover(st, &n, &err), STATUS_OK);
    cr_assert_eq(n, 0);
}

Test(chatstore, import_remaps_ids) {
    Err err = {0};
    json_error_t je;
    json_t *in =
        json_loads("{\"title\":\"imported\",\"system\":\"s\",\"settings\":{\"top_k\":5},\"current_"
                   "leaf\":\"b\","
                   "\"messages\":[{\"id\":\"q\",\"role\":\"user\",\"content\":\"hi\"},"
                   "{\"id\":\"a\",\"parent\":\"q\",\"role\":\"assistant\",\"content\":\"hello\"},"
                   "{\"id\":\"b\",\"parent\":\"q\",\"role\":\"assistant\",\"content\":\"hey\","
                   "\"status\":\"streaming\"}]}",
                   0, &je);
    cr_assert_not_null(in, "%s", je.text);
    char id[STORE_CONV_ID_LEN + 1];
    cr_assert_eq(store_conv_import(st, alice.id, in, id, &err), STATUS_OK, "%s", err.msg);
    json_t *c;
    cr_assert_eq(store_conv_get(st, alice.id, id, &c, &err), STATUS_OK);
    json_t *msgs = json_object_get(c, "messages");
    cr_assert_eq(json_array_size(msgs), 3);
    long long q = json_integer_value(json_object_get(json_array_get(msgs, 0), "id"));
    long long b = json_integer_value(json_object_get(json_array_get(msgs, 2), "id"));
    cr_assert_eq(json_integer_value(json_object_get(json_array_get(msgs, 1), "parent")), q);
    cr_assert_eq(json_integer_value(json_object_get(json_array_get(msgs, 2), "parent")), q);
    cr_assert_eq(json_integer_value(json_object_get(c, "current_leaf")), b);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(msgs, 2), "status")),
                     "stopped", "nothing imported is 'streaming'");
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(c, "settings"), "top_k")), 5);
    json_decref(c);
    /* the exported shape imports as it is */
    cr_assert_eq(store_conv_get(st, alice.id, id, &c, &err), STATUS_OK);
    char id2[STORE_CONV_ID_LEN + 1];
    cr_assert_eq(store_conv_import(st, bob.id, c, id2, &err), STATUS_OK, "%s", err.msg);
    json_decref(c);
    json_decref(in);
    /* refused whole, nothing written */
    static const char *const bad[] = {
        "[]",
        "{\"messages\":{}}",
        "{\"messages\":[{\"role\":\"user\"}, 5]}",
        "{\"messages\":[{\"role\":\"robot\",\"content\":\"x\"}]}", /* tool is a role since schema 4 */
        "{\"messages\":[{\"content\":\"x\"}]}",
        "{\"messages\":[{\"id\":1,\"parent\":2,\"role\":\"user\",\"content\":\"x\"}]}",
        "{\"title\":5,\"messages\":[]}",
        "{\"settings\":[],\"messages\":[]}",
    };
    json_t *list;
    cr_assert_eq(store_conv_list(st, alice.id, NULL, 0, &list, &err), STATUS_OK);
    size_t before = json_array_size(list);
    json_decref(list);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *j = json_loads(bad[i], 0, &je);
        cr_assert_not_null(j, "%s", bad[i]);
        cr_assert_neq(store_conv_import(st, alice.id, j, id, &err), STATUS_OK, "%s", bad[i]);
        json_decref(j);
    }
    cr_assert_eq(store_conv_list(st, alice.id, NULL, 0, &list, &err), STATUS_OK);
    cr_assert_eq(json_array_size(list), before, "a refused import leaves nothing behind");
    json_decref(list);
}

/* ---- concurrency, backup, damage ---- */

typedef struct {
    const char *conv;
    int failures;
    char first[ERR_MSG_MAX];
} Writer;

static void *writer(void *arg) {
    Writer *w = arg;
    for (int i = 0; i < 40; i++) {
        long long id;
        Err err = {0};
        char text[32];
        int n = snprintf(text, sizeof text, "message %d", i);
        if (store_msg_add(st, alice.id, w->conv, 0, "user", text, (size_t)n, "streaming", "", &id,
                          &err) ||
            store_msg_update(st, id, text, (size_t)n, "complete", NULL, &err)) {
            if (!w->failures++)
                snprintf(w->first, sizeof w->first, "%s", err.msg);
        }
    }
    return NULL;
}

Test(chatstore, many_writers_one_store) {
    enum { N = 32 };
    Err err = {0};
    char ids[N][STORE_CONV_ID_LEN + 1];
    Writer w[N];
    pthread_t t[N];
    for (int i = 0; i < N; i++) {
        cr_assert_eq(store_conv_create(st, alice.id, "", "", "", NULL, ids[i], &err), STATUS_OK);
        w[i] = (Writer){.conv = ids[i]};
        pthread_create(&t[i], NULL, writer, &w[i]);
    }
    for (int i = 0; i < N; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < N; i++)
        cr_assert_eq(w[i].failures, 0, "writer %d: %s", i, w[i].first);
    json_t *c;
    cr_assert_eq(store_conv_get(st, alice.id, ids[N - 1], &c, &err), STATUS_OK);
    cr_assert_eq(json_array_size(json_object_get(c, "messages")), 40);
    json_decref(c);
}

Test(chatstore, backup_and_integrity) {
    Err err = {0};
    char id[STORE_CONV_ID_LEN + 1], bk[160], bdir[128];
    cr_assert_eq(store_conv_create(st, alice.id, "kept", "", "", NULL, id, &err), STATUS_OK);
    add(id, 0, "user", "backed up", "complete");
    cr_assert_eq(store_check(st, &err), STATUS_OK, "%s", err.msg);
    snprintf(bdir, sizeof bdir, "%s/restored", dir);
    cr_assert_eq(mkdir(bdir, 0700), 0);
    snprintf(bk, sizeof bk, "%s/cgpt.db", bdir);
    cr_assert_eq(store_backup(st, bk, &err), STATUS_OK, "%s", err.msg);
    Store *b;
    cr_assert_eq(store_open(&b, bdir, &err), STATUS_OK, "%s", err.msg);
    cr_assert_eq(store_check(b, &err), STATUS_OK, "%s", err.msg);
    json_t *c;
    cr_assert_eq(store_conv_get(b, alice.id, id, &c, &err), STATUS_OK);
    cr_assert_str_eq(text_of(json_array_get(json_object_get(c, "messages"), 0)), "backed up");
    json_decref(c);
    store_close(b);
    /* damage a copy: the b-tree page headers of its pages after the first */
    FILE *f = fopen(bk, "r+b");
    cr_assert_not_null(f);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    cr_assert_gt(size, 8192);
    char junk[16];
    memset(junk, 0x5a, sizeof junk);
    for (long at = 4096; at + (long)sizeof junk < size; at += 4096) {
        fseek(f, at, SEEK_SET);
        fwrite(junk, 1, sizeof junk, f);
    }
    fclose(f);
    Status r = store_open(&b, bdir, &err);
    if (r == STATUS_OK) {
        r = store_check(b, &err);
        store_close(b);
    }
    cr_assert_eq(r, STATUS_FORMAT, "a damaged database is refused (%s)", err.msg);
    cr_assert(strstr(err.msg, "corrupt") || strstr(err.msg, "not a cgpt database") ||
                  strstr(err.msg, "malformed"),
              "%s", err.msg);
}
