/* store.h - the server's persistent state in its data directory: one
 * SQLite database (DIR/cgpt.db, WAL journal, synchronous=FULL, foreign keys
 * on, busy timeout 5 s) with a schema version table and forward
 * migrations. It holds API keys, users and their sessions, and the page's
 * conversations with their messages.
 *
 * The interface is deliberately small and backend-neutral (plain C
 * arguments in, C structs or jansson JSON out) so a PostgreSQL backend for
 * several replicas can implement the same functions. Objects of one user
 * are only ever reached through that user's id: a conversation of another
 * user is STATUS_NOT_FOUND, exactly like one that does not exist.
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
 * Thread safety: a Store may be shared between threads; every call holds
 * the store's lock for its run (one writer path per process). The server
 * also keeps a snapshot of the keys in memory and reloads it when the
 * database changes (store_keys_version()). */
#ifndef CGPT_STORE_STORE_H
#define CGPT_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "core/err.h"

#define STORE_KEY_NAME_MAX 64    /* bytes of a key's name */
#define STORE_KEY_TEXT_LEN 51    /* "sk-cgpt-" + 43 base64url chars */
#define STORE_KEY_HASH_BYTES 32  /* BLAKE2b-256 */
#define STORE_MAX_KEYS 100000    /* keys in one database */
#define STORE_MAX_PRESENTED 256  /* bytes of a presented key considered at all */
#define STORE_USER_NAME_MAX 64   /* bytes of a user name ([A-Za-z0-9._-]) */
#define STORE_PASSWORD_MIN 8     /* bytes of a password, at least */
#define STORE_PASSWORD_MAX 1024  /* bytes of a password, at most */
#define STORE_TOKEN_LEN 43       /* a session token: 32 random bytes, base64url */
#define STORE_CSRF_LEN 43        /* a CSRF token, the same shape */
#define STORE_CONV_ID_LEN 32     /* a conversation id: 16 random bytes, hex */
#define STORE_TITLE_MAX 200      /* bytes of a conversation title */
#define STORE_SYSTEM_MAX 65536   /* bytes of a system prompt */
#define STORE_SETTINGS_MAX 4096  /* bytes of a conversation's settings JSON */
#define STORE_MODEL_MAX 256      /* bytes of a model id */
#define STORE_MESSAGE_MAX (4u << 20) /* bytes of one message's text */
#define STORE_MAX_MESSAGES 10000     /* messages in one conversation */
#define STORE_LIST_MAX 1000          /* conversations one list call returns */
#define STORE_TOOL_CALLS_MAX 128     /* tool calls in one message (OpenAI's tool_calls) */
#define STORE_TOOL_NAME_MAX 256      /* bytes of a tool's name */
#define STORE_TOOL_ID_MAX 256        /* bytes of a tool call's id */

typedef struct Store Store;

/* Open (creating DIR with mode 0700 and the database if needed, then
 * migrating). Errors name the path: STATUS_IO (cannot create/open, not a
 * directory, database locked past the timeout), STATUS_FORMAT (not a cgpt
 * database, or a schema version newer than this binary). */
Status store_open(Store **out, const char *dir, Err *err);
void store_close(Store *s);

/* PRAGMA integrity_check: STATUS_FORMAT naming the first problem when the
 * database is damaged (the server refuses to start on it). */
Status store_check(Store *s, Err *err);
/* A consistent copy of the database at 'dest' (SQLite's online backup API:
 * writers go on meanwhile), written to dest.tmp and renamed. */
Status store_backup(Store *s, const char *dest, Err *err);

typedef struct {
    char name[STORE_KEY_NAME_MAX + 1];
    long long user_id;                   /* its owner; 0: an admin's (cgpt key add) */
    char owner[STORE_USER_NAME_MAX + 1]; /* the owner's name, "" for 0 */
    uint8_t hash[STORE_KEY_HASH_BYTES];
    long long created;  /* unix seconds */
    long long revoked;  /* unix seconds, 0 = active */
    int rpm;            /* requests per minute, 0 = server default */
    int tpm;            /* tokens per minute (prompt + completion), 0 = default */
    int max_streams;    /* concurrent requests, 0 = default */
} StoreKey;

/* Create key NAME of 'user' (0: an admin's) with the given limits
 * (negative: STATUS_INVALID) and write its text (STORE_KEY_TEXT_LEN chars +
 * NUL) to 'key_out'. STATUS_INVALID for a bad name or an active key of that
 * name and owner already. */
Status store_key_add(Store *s, long long user, const char *name, int rpm, int tpm, int max_streams,
                     char key_out[STORE_KEY_TEXT_LEN + 1], Err *err);
/* Revoke the active key NAME of 'user' (STATUS_INVALID when there is none). */
Status store_key_revoke(Store *s, long long user, const char *name, Err *err);
/* The keys (active and revoked) of 'user' (0: the admin's, -1: everyone's),
 * by creation time; *out owned (free()). */
Status store_key_list(Store *s, long long user, StoreKey **out, int *n, Err *err);

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

/* ---- users and sessions (users.c) ----
 *
 * Passwords are stored as Argon2id strings (libsodium's crypto_pwhash_str,
 * interactive limits); a session token and its CSRF token are 32 random
 * bytes each, base64url; only the session token's BLAKE2b-256 hash is
 * stored, so a copy of the database opens no session. */

typedef struct {
    long long id;
    char name[STORE_USER_NAME_MAX + 1];
    bool admin;
    long long created;
} StoreUser;

/* Add a user (name: 1..64 of [A-Za-z0-9._-], unique; password:
 * STORE_PASSWORD_MIN..MAX bytes). STATUS_INVALID names what is wrong. */
Status store_user_add(Store *s, const char *name, const char *password, bool admin, StoreUser *out,
                      Err *err);
/* Set a new password; the user's sessions end. STATUS_NOT_FOUND: no such user. */
Status store_user_passwd(Store *s, const char *name, const char *password, Err *err);
/* Remove a user with their sessions, keys and conversations. */
Status store_user_remove(Store *s, const char *name, Err *err);
/* All users by name; *out owned (free()). */
Status store_user_list(Store *s, StoreUser **out, int *n, Err *err);
Status store_user_count(Store *s, long long *n, Err *err);
/* The user 'name' when 'password' is theirs; otherwise STATUS_INVALID with
 * the same message whether the name or the password was wrong (and about
 * the same time: an unknown name still costs one Argon2id check). */
Status store_user_verify(Store *s, const char *name, const char *password, StoreUser *out,
                         Err *err);

/* A new session for 'user' lasting 'ttl' seconds: the cookie token and the
 * CSRF token, each STORE_TOKEN_LEN chars + NUL. */
Status store_session_new(Store *s, long long user, long long ttl, char token[STORE_TOKEN_LEN + 1],
                         char csrf[STORE_CSRF_LEN + 1], Err *err);
/* The user and CSRF token of a live session; STATUS_NOT_FOUND when the
 * token is unknown or expired (expired sessions are deleted). */
Status store_session_get(Store *s, const char *token, StoreUser *out, char csrf[STORE_CSRF_LEN + 1],
                         Err *err);
/* End the session (logout); unknown tokens are not an error. */
Status store_session_end(Store *s, const char *token, Err *err);

/* ---- conversations and messages (chat.c) ----
 *
 * A conversation: id (STORE_CONV_ID_LEN hex chars, random), title, system
 * prompt, model, settings (a JSON object as text: sampling fields), the
 * leaf of the branch shown (current_leaf), created / updated (unix s).
 * Messages form a tree by parent_id (0 = a root): an edit adds a sibling of
 * the user message, a regeneration a sibling of the reply, and the old
 * branch stays. A message: id, parent, role ("user" / "assistant" /
 * "tool"), content, status ("streaming" while a reply is written, then
 * "complete", "stopped" or "error"), model, prompt_tokens,
 * completion_tokens, seconds (generation time), finish (finish reason),
 * error (text), created; and, only when not empty, tool_calls (an
 * assistant's calls: OpenAI's array [{"id", "type": "function",
 * "function": {"name", "arguments"}}], arguments as JSON text) and, for a
 * "tool" message (a tool's result), tool_call_id and name. The store
 * checks the shape of calls, not that results answer them: whoever builds
 * a chat request from a branch pairs them (serve/api.c).
 *
 * JSON shapes (also the export format, docs/WEB.md):
 *   list:  [{"id","title","created","updated"}, ...] newest first
 *   conv:  {"id","title","system","model","settings":{...},"current_leaf",
 *           "created","updated","messages":[{...message...}, ...] by id} */

typedef struct {
    int prompt_tokens, completion_tokens;
    double seconds;
    const char *finish; /* NULL: leave */
    const char *error;  /* NULL: leave */
} StoreMsgStats;

/* A new conversation of 'user'; *id_out gets its id. */
Status store_conv_create(Store *s, long long user, const char *title, const char *system,
                         const char *model, const char *settings,
                         char id_out[STORE_CONV_ID_LEN + 1], Err *err);
/* The user's conversations, newest first, at most 'limit' (<= STORE_LIST_MAX);
 * with 'query' (may be NULL or ""): those whose title contains it or whose
 * messages match it as words (FTS5, each word a prefix). *out owned. */
Status store_conv_list(Store *s, long long user, const char *query, int limit, json_t **out,
                       Err *err);
/* One conversation with all its messages; STATUS_NOT_FOUND if it is not the user's. */
Status store_conv_get(Store *s, long long user, const char *id, json_t **out, Err *err);
/* Change what is non-NULL (current_leaf < 0: leave; it must be a message of
 * the conversation). */
Status store_conv_update(Store *s, long long user, const char *id, const char *title,
                         const char *system, const char *model, const char *settings,
                         long long current_leaf, Err *err);
Status store_conv_delete(Store *s, long long user, const char *id, Err *err);
/* Import a conversation in the export shape (messages' ids and parents are
 * remapped; statuses other than complete/stopped/error become "stopped";
 * tool_calls normalised as above, a call without an id given one).
 * Validates everything before writing; one transaction. */
Status store_conv_import(Store *s, long long user, const json_t *conv,
                         char id_out[STORE_CONV_ID_LEN + 1], Err *err);

/* Add a message under 'parent' (0: a root) of the user's conversation; it
 * becomes the conversation's current leaf. Committed when this returns. */
Status store_msg_add(Store *s, long long user, const char *conv, long long parent, const char *role,
                     const char *content, size_t len, const char *status, const char *model,
                     long long *id_out, Err *err);
/* Update a message's text (NULL: leave), status (NULL: leave) and stats
 * (NULL: leave). The id comes from store_msg_add: no owner check. */
Status store_msg_update(Store *s, long long id, const char *content, size_t len, const char *status,
                        const StoreMsgStats *stats, Err *err);
/* The path from the root to message 'leaf' of the user's conversation:
 * [{"id","role","content", ...}, ...] root first. */
Status store_msg_path(Store *s, long long user, const char *conv, long long leaf, json_t **out,
                      Err *err);
/* After a crash: every reply still "streaming" becomes "error" (its
 * partial text kept); *n gets how many. */
Status store_recover(Store *s, int *n, Err *err);

/* ------------------------------------------------------------ the moderation audit */

#define STORE_AUDIT_LIST_MAX 10000 /* rows one list call returns */

/* One flag or block (audit.c). Strings are borrowed; NULL or "" for none. */
typedef struct {
    long long user;         /* the page user, 0: none */
    const char *key_name;   /* the API key's name, "" anonymous */
    const char *route;      /* "/v1/chat/completions", "page", "chat", ... */
    const char *direction;  /* "input" | "output" */
    const char *action;     /* "flag" | "block" */
    const char *categories; /* comma-separated */
    const char *scores;     /* JSON object: category -> score */
    const char *classifier;
    const char *error;      /* the classifier's failure, "" */
    const char *content_hash; /* hex */
    const char *content;    /* NULL unless the policy keeps content */
    size_t content_len;
} StoreAudit;

Status store_audit_add(Store *s, const StoreAudit *a, Err *err);

/* What store_audit_list returns: every field NULL/0 is "any". */
typedef struct {
    long long since;        /* unix seconds, >= */
    const char *category;   /* rows naming this category */
    const char *action;
    const char *direction;
    const char *user;       /* a page user's name */
    const char *key_name;
    int limit;              /* newest first; 0: STORE_AUDIT_LIST_MAX */
} StoreAuditFilter;

/* [{"id","created","user","key","route","direction","action","categories":[...],
 *   "scores":{...},"classifier","error","content_hash","content"}] newest first. */
Status store_audit_list(Store *s, const StoreAuditFilter *f, json_t **out, Err *err);

#endif
