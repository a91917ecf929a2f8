/* chat.c - conversations and their message trees (store.h). Every query
 * names the owner: a row of another user is never read, changed or told
 * apart from a missing one. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/utf8.h"
#include "store/store_impl.h"

#define CHAT_QUERY_MAX 512 /* bytes of a search query used */

static const char *const STATUSES[] = {"streaming", "complete", "stopped", "error"};

static bool is_status(const char *st) {
    for (size_t i = 0; i < sizeof STATUSES / sizeof STATUSES[0]; i++)
        if (!strcmp(st, STATUSES[i]))
            return true;
    return false;
}

/* A stored string: at most 'max' bytes of valid UTF-8 (what JSON carries). */
static Status check_len(const char *what, const char *v, size_t max, Err *err) {
    if (!v)
        return STATUS_OK;
    size_t n = strnlen(v, max + 1);
    if (n > max)
        return err_set(err, STATUS_LIMIT, "%s is longer than %zu bytes", what, max);
    size_t ok = utf8_valid_len(v, n, NULL);
    if (ok < n)
        return err_set(err, STATUS_INVALID, "%s: byte %zu is not valid UTF-8", what, ok);
    return STATUS_OK;
}

/* A message's text: valid UTF-8 except that a character cut by the end
 * (a streaming reply's last token ended inside it) is left out: *keep gets
 * the bytes to store. */
static Status check_text(const char *text, size_t len, size_t *keep, Err *err) {
    bool cut = false;
    *keep = utf8_valid_len(text, len, &cut);
    if (*keep < len && !cut)
        return err_set(err, STATUS_INVALID, "message text: byte %zu is not valid UTF-8", *keep);
    return STATUS_OK;
}

/* Settings must be a JSON object of at most STORE_SETTINGS_MAX bytes. */
static Status check_settings(const char *settings, Err *err) {
    if (!settings)
        return STATUS_OK;
    Status r = check_len("settings", settings, STORE_SETTINGS_MAX, err);
    if (r)
        return r;
    json_error_t je;
    json_t *j = json_loads(settings, 0, &je);
    bool ok = json_is_object(j);
    json_decref(j);
    return ok ? STATUS_OK : err_set(err, STATUS_INVALID, "settings: not a JSON object");
}

static Status check_conv_fields(const char *title, const char *system, const char *model,
                                const char *settings, Err *err) {
    Status r = check_len("title", title, STORE_TITLE_MAX, err);
    if (!r)
        r = check_len("system prompt", system, STORE_SYSTEM_MAX, err);
    if (!r)
        r = check_len("model", model, STORE_MODEL_MAX, err);
    if (!r)
        r = check_settings(settings, err);
    return r;
}

/* Is 'conv' the user's? NOT_FOUND otherwise (or when it does not exist). */
static Status owns(Store *s, long long user, const char *conv, Err *err) {
    sqlite3_stmt *st = NULL;
    Status r =
        store_prepare(s, "SELECT 1 FROM conversations WHERE id = ? AND user_id = ?", &st, err);
    if (r)
        return r;
    sqlite3_bind_text(st, 1, conv, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, user);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc == SQLITE_ROW)
        return STATUS_OK;
    if (rc == SQLITE_DONE)
        return err_set(err, STATUS_NOT_FOUND, "no such conversation");
    return store_db_fail(s, rc, "looking up a conversation", err);
}

/* Is message 'id' in conversation 'conv'? */
static Status in_conv(Store *s, const char *conv, long long id, const char *what, Err *err) {
    sqlite3_stmt *st = NULL;
    Status r = store_prepare(s, "SELECT 1 FROM messages WHERE id = ? AND conv_id = ?", &st, err);
    if (r)
        return r;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_text(st, 2, conv, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc == SQLITE_ROW)
        return STATUS_OK;
    if (rc == SQLITE_DONE)
        return err_set(err, STATUS_NOT_FOUND, "%s: no message %lld in this conversation", what, id);
    return store_db_fail(s, rc, "looking up a message", err);
}

static void bind_text_or_null(sqlite3_stmt *st, int k, const char *v) {
    if (v)
        sqlite3_bind_text(st, k, v, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, k);
}

static const char *col_text(sqlite3_stmt *st, int k) {
    const unsigned char *t = sqlite3_column_text(st, k);
    return t ? (const char *)t : "";
}

/* ------------------------------------------------------------ conversations */

static Status conv_insert(Store *s, long long user, const char *title, const char *system,
                          const char *model, const char *settings, char id[STORE_CONV_ID_LEN + 1],
                          Err *err) {
    sqlite3_stmt *st = NULL;
    Status r = store_prepare(s,
                             "INSERT INTO conversations(id, user_id, title, system, model, "
                             "settings, created, updated, touched) VALUES(?, ?, ?, ?, ?, ?, ?, ?, "
                             "(SELECT coalesce(max(touched), 0) + 1 FROM conversations))",
                             &st, err);
    if (r)
        return r;
    long long now = store_now();
    store_random_hex(id, STORE_CONV_ID_LEN / 2);
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, user);
    sqlite3_bind_text(st, 3, title ? title : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, system ? system : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, model ? model : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, settings ? settings : "{}", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 7, now);
    sqlite3_bind_int64(st, 8, now);
    return store_step_done(s, st, "creating a conversation", err);
}

Status store_conv_create(Store *s, long long user, const char *title, const char *system,
                         const char *model, const char *settings,
                         char id_out[STORE_CONV_ID_LEN + 1], Err *err) {
    id_out[0] = '\0';
    Status r = check_conv_fields(title, system, model, settings, err);
    if (r)
        return r;
    STORE_LOCK(s);
    r = conv_insert(s, user, title, system, model, settings, id_out, err);
    STORE_UNLOCK(s);
    if (r)
        id_out[0] = '\0';
    return r;
}

/* An FTS5 query of the words of 'q', each a quoted prefix ("word"*), all
 * required; "" when q has no word characters. */
static void fts_query(const char *q, char *out, size_t cap) {
    size_t n = 0;
    out[0] = '\0';
    const unsigned char *p = (const unsigned char *)q;
    while (*p && n + 8 < cap) {
        while (*p && *p < 0x80 &&
               !((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
            p++;
        if (!*p)
            break;
        if (n)
            out[n++] = ' ';
        out[n++] = '"';
        while (*p &&
               (*p >= 0x80 || (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') ||
                (*p >= 'A' && *p <= 'Z')) &&
               n + 4 < cap)
            out[n++] = (char)*p++;
        out[n++] = '"';
        out[n++] = '*';
        out[n] = '\0';
    }
}

/* 'q' as a LIKE pattern: %q% with %, _ and \ escaped by \. */
static void like_pattern(const char *q, char *out, size_t cap) {
    size_t n = 0;
    out[n++] = '%';
    for (; *q && n + 3 < cap; q++) {
        if (*q == '%' || *q == '_' || *q == '\\')
            out[n++] = '\\';
        out[n++] = *q;
    }
    out[n++] = '%';
    out[n] = '\0';
}

static Status conv_list(Store *s, long long user, const char *query, int limit, json_t *list,
                        Err *err) {
    char fts[CHAT_QUERY_MAX * 2 + 16], like[CHAT_QUERY_MAX * 2 + 4], q[CHAT_QUERY_MAX + 1];
    bool search = query && *query;
    snprintf(q, sizeof q, "%s", search ? query : "");
    fts_query(q, fts, sizeof fts);
    like_pattern(q, like, sizeof like);
    sqlite3_stmt *st = NULL;
    Status r = store_prepare(
        s,
        "SELECT id, title, created, updated FROM conversations WHERE user_id = ?1 AND "
        "(?2 = 0 OR title LIKE ?3 ESCAPE '\\' OR (?4 <> '' AND id IN (SELECT m.conv_id FROM "
        "messages_fts f JOIN messages m ON m.id = f.rowid WHERE messages_fts MATCH ?4))) "
        "ORDER BY touched DESC LIMIT ?5",
        &st, err);
    if (r)
        return r;
    sqlite3_bind_int64(st, 1, user);
    sqlite3_bind_int(st, 2, search);
    sqlite3_bind_text(st, 3, like, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, fts, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 5, limit);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        json_array_append_new(list, json_pack("{s:s, s:s, s:I, s:I}", "id", col_text(st, 0),
                                              "title", col_text(st, 1), "created",
                                              (json_int_t)sqlite3_column_int64(st, 2), "updated",
                                              (json_int_t)sqlite3_column_int64(st, 3)));
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? STATUS_OK : store_db_fail(s, rc, "listing conversations", err);
}

Status store_conv_list(Store *s, long long user, const char *query, int limit, json_t **out,
                       Err *err) {
    *out = NULL;
    if (limit <= 0 || limit > STORE_LIST_MAX)
        limit = STORE_LIST_MAX;
    json_t *list = json_array();
    if (!list)
        return err_set(err, STATUS_NOMEM, "out of memory");
    STORE_LOCK(s);
    Status r = conv_list(s, user, query, limit, list, err);
    STORE_UNLOCK(s);
    if (r) {
        json_decref(list);
        return r;
    }
    *out = list;
    return STATUS_OK;
}

#define MSG_COLUMNS                                                                                \
    "id, coalesce(parent_id, 0), role, content, status, model, prompt_tokens, "                    \
    "completion_tokens, seconds, finish, error, created, tool_calls, tool_call_id, name"

/* The tool fields of a message row (columns 12..14) into 'm': each only
 * when it is not empty, so messages without tools read as before. */
static json_t *msg_tools(sqlite3_stmt *st, json_t *m) {
    const char *calls = col_text(st, 12), *call_id = col_text(st, 13), *name = col_text(st, 14);
    if (m && *calls) {
        json_t *a = json_loads(calls, 0, NULL);
        if (!json_is_array(a)) { /* checked when written: another writer's row */
            json_decref(a);
            json_decref(m);
            return NULL;
        }
        json_object_set_new(m, "tool_calls", a);
    }
    if (m && *call_id)
        json_object_set_new(m, "tool_call_id", json_string(call_id));
    if (m && *name)
        json_object_set_new(m, "name", json_string(name));
    return m;
}

static json_t *msg_json(sqlite3_stmt *st) {
    double sec = sqlite3_column_double(st, 8);
    return msg_tools(st, json_pack("{s:I, s:I, s:s, s:s, s:s, s:s, s:i, s:i, s:f, s:s, s:s, s:I}",
                                   "id", (json_int_t)sqlite3_column_int64(st, 0), "parent",
                                   (json_int_t)sqlite3_column_int64(st, 1), "role", col_text(st, 2),
                                   "content", col_text(st, 3), "status", col_text(st, 4), "model",
                                   col_text(st, 5), "prompt_tokens", sqlite3_column_int(st, 6),
                                   "completion_tokens", sqlite3_column_int(st, 7), "seconds",
                                   isfinite(sec) ? sec : 0.0, "finish", col_text(st, 9), "error",
                                   col_text(st, 10), "created",
                                   (json_int_t)sqlite3_column_int64(st, 11)));
}

/* A message row jansson could not take (text that is not UTF-8, written by
 * something other than cgpt, or memory ran out). */
static Status bad_row(const char *conv, Err *err) {
    return err_set(err, STATUS_FORMAT,
                   "conversation %s: a stored message is not valid UTF-8 (or memory ran out)",
                   conv);
}

static Status conv_get(Store *s, long long user, const char *id, json_t **out, Err *err) {
    sqlite3_stmt *st = NULL;
    Status r =
        store_prepare(s,
                      "SELECT id, title, system, model, settings, coalesce(current_leaf, 0), "
                      "created, updated FROM conversations WHERE id = ? AND user_id = ?",
                      &st, err);
    if (r)
        return r;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, user);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        sqlite3_finalize(st);
        return rc == SQLITE_DONE ? err_set(err, STATUS_NOT_FOUND, "no such conversation")
                                 : store_db_fail(s, rc, "reading a conversation", err);
    }
    json_t *settings = json_loads(col_text(st, 4), 0, NULL);
    if (!json_is_object(settings)) {
        json_decref(settings);
        settings = json_object();
    }
    /* "o" takes 'settings' even when the pack fails */
    json_t *c = json_pack(
        "{s:s, s:s, s:s, s:s, s:o, s:I, s:I, s:I}", "id", col_text(st, 0), "title", col_text(st, 1),
        "system", col_text(st, 2), "model", col_text(st, 3), "settings", settings, "current_leaf",
        (json_int_t)sqlite3_column_int64(st, 5), "created", (json_int_t)sqlite3_column_int64(st, 6),
        "updated", (json_int_t)sqlite3_column_int64(st, 7));
    sqlite3_finalize(st);
    if (!c) /* what cgpt writes is checked: a bad row was written by something else */
        return err_set(err, STATUS_FORMAT, "conversation %s: a stored text is not valid UTF-8", id);
    json_t *msgs = json_array();
    if (!msgs) {
        json_decref(c);
        return err_set(err, STATUS_NOMEM, "out of memory");
    }
    json_object_set_new(c, "messages", msgs);
    if ((r = store_prepare(s, "SELECT " MSG_COLUMNS " FROM messages WHERE conv_id = ? ORDER BY id",
                           &st, err))) {
        json_decref(c);
        return r;
    }
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && !json_array_append_new(msgs, msg_json(st)))
        ;
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        json_decref(c);
        return rc == SQLITE_ROW ? bad_row(id, err) : store_db_fail(s, rc, "reading messages", err);
    }
    *out = c;
    return STATUS_OK;
}

Status store_conv_get(Store *s, long long user, const char *id, json_t **out, Err *err) {
    *out = NULL;
    STORE_LOCK(s);
    Status r = conv_get(s, user, id, out, err);
    STORE_UNLOCK(s);
    return r;
}

static Status conv_update(Store *s, long long user, const char *id, const char *title,
                          const char *system, const char *model, const char *settings,
                          long long leaf, Err *err) {
    Status r = owns(s, user, id, err);
    if (!r && leaf > 0)
        r = in_conv(s, id, leaf, "current_leaf", err);
    sqlite3_stmt *st = NULL;
    if (!r)
        r = store_prepare(s,
                          "UPDATE conversations SET title = coalesce(?1, title), "
                          "system = coalesce(?2, system), model = coalesce(?3, model), "
                          "settings = coalesce(?4, settings), current_leaf = CASE WHEN ?5 > 0 "
                          "THEN ?5 ELSE current_leaf END WHERE id = ?6 AND user_id = ?7",
                          &st, err);
    if (r)
        return r;
    bind_text_or_null(st, 1, title);
    bind_text_or_null(st, 2, system);
    bind_text_or_null(st, 3, model);
    bind_text_or_null(st, 4, settings);
    sqlite3_bind_int64(st, 5, leaf);
    sqlite3_bind_text(st, 6, id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 7, user);
    return store_step_done(s, st, "updating a conversation", err);
}

Status store_conv_update(Store *s, long long user, const char *id, const char *title,
                         const char *system, const char *model, const char *settings,
                         long long current_leaf, Err *err) {
    Status r = check_conv_fields(title, system, model, settings, err);
    if (r)
        return r;
    STORE_LOCK(s);
    r = conv_update(s, user, id, title, system, model, settings, current_leaf, err);
    STORE_UNLOCK(s);
    return r;
}

Status store_conv_delete(Store *s, long long user, const char *id, Err *err) {
    STORE_LOCK(s);
    sqlite3_stmt *st = NULL;
    Status r = store_prepare(s, "DELETE FROM conversations WHERE id = ? AND user_id = ?", &st, err);
    if (!r) {
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, user);
        r = store_step_done(s, st, "deleting a conversation", err);
        if (!r && sqlite3_changes(s->db) == 0)
            r = err_set(err, STATUS_NOT_FOUND, "no such conversation");
    }
    STORE_UNLOCK(s);
    return r;
}

/* ------------------------------------------------------------ messages */

/* What a message carries about tools (all "" when none). */
typedef struct {
    const char *calls;   /* the OpenAI tool_calls array as JSON text */
    const char *call_id; /* role tool: the call it answers */
    const char *name;    /* role tool: the tool's name */
} MsgTools;

static Status msg_insert(Store *s, const char *conv, long long parent, const char *role,
                         const char *content, size_t len, const char *status, const char *model,
                         const StoreMsgStats *stats, const MsgTools *tools, long long *id,
                         Err *err) {
    sqlite3_stmt *st = NULL;
    Status r = store_prepare(s,
                             "INSERT INTO messages(conv_id, parent_id, role, content, status, "
                             "model, prompt_tokens, completion_tokens, seconds, finish, error, "
                             "created, updated, tool_calls, tool_call_id, name) "
                             "VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                             &st, err);
    if (r)
        return r;
    long long now = store_now();
    sqlite3_bind_text(st, 1, conv, -1, SQLITE_STATIC);
    if (parent > 0)
        sqlite3_bind_int64(st, 2, parent);
    else
        sqlite3_bind_null(st, 2);
    sqlite3_bind_text(st, 3, role, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, content ? content : "", (int)len, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, status, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, model ? model : "", -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 7, stats ? stats->prompt_tokens : 0);
    sqlite3_bind_int(st, 8, stats ? stats->completion_tokens : 0);
    sqlite3_bind_double(st, 9, stats ? stats->seconds : 0);
    sqlite3_bind_text(st, 10, stats && stats->finish ? stats->finish : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 11, stats && stats->error ? stats->error : "", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 12, now);
    sqlite3_bind_int64(st, 13, now);
    sqlite3_bind_text(st, 14, tools && tools->calls ? tools->calls : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 15, tools && tools->call_id ? tools->call_id : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 16, tools && tools->name ? tools->name : "", -1, SQLITE_STATIC);
    if ((r = store_step_done(s, st, "adding a message", err)))
        return r;
    *id = sqlite3_last_insert_rowid(s->db);
    /* the new message is the branch shown, and the conversation is fresh */
    if ((r = store_prepare(s,
                           "UPDATE conversations SET current_leaf = ?, updated = ?, touched = "
                           "(SELECT max(touched) + 1 FROM conversations) WHERE id = ?",
                           &st, err)))
        return r;
    sqlite3_bind_int64(st, 1, *id);
    sqlite3_bind_int64(st, 2, now);
    sqlite3_bind_text(st, 3, conv, -1, SQLITE_STATIC);
    return store_step_done(s, st, "updating a conversation", err);
}

static Status count_messages(Store *s, const char *conv, long long *n, Err *err) {
    sqlite3_stmt *st = NULL;
    Status r = store_prepare(s, "SELECT count(*) FROM messages WHERE conv_id = ?", &st, err);
    if (r)
        return r;
    sqlite3_bind_text(st, 1, conv, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    *n = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? STATUS_OK : store_db_fail(s, rc, "counting messages", err);
}

static Status check_msg(const char *role, size_t len, const char *status, const char *model,
                        Err *err) {
    if (strcmp(role, "user") != 0 && strcmp(role, "assistant") != 0 && strcmp(role, "tool") != 0)
        return err_set(err, STATUS_INVALID,
                       "role '%.32s': only user, assistant and tool are stored", role);
    if (!is_status(status))
        return err_set(err, STATUS_INVALID,
                       "status '%.32s' is not one of streaming, complete, "
                       "stopped, error",
                       status);
    if (len > STORE_MESSAGE_MAX)
        return err_set(err, STATUS_LIMIT, "a message of %zu bytes (limit %u)", len,
                       STORE_MESSAGE_MAX);
    return check_len("model", model, STORE_MODEL_MAX, err);
}

Status store_msg_add(Store *s, long long user, const char *conv, long long parent, const char *role,
                     const char *content, size_t len, const char *status, const char *model,
                     long long *id_out, Err *err) {
    *id_out = 0;
    Status r = check_msg(role, len, status, model, err);
    if (!r)
        r = check_text(content, len, &len, err);
    if (r)
        return r;
    STORE_LOCK(s);
    long long n = 0;
    r = store_exec(s, "BEGIN IMMEDIATE", "adding a message", err);
    if (!r)
        r = owns(s, user, conv, err);
    if (!r && parent > 0)
        r = in_conv(s, conv, parent, "parent", err);
    if (!r && !(r = count_messages(s, conv, &n, err)) && n >= STORE_MAX_MESSAGES)
        r = err_set(err, STATUS_LIMIT, "the conversation has %lld messages (limit %d)", n,
                    STORE_MAX_MESSAGES);
    if (!r)
        r = msg_insert(s, conv, parent, role, content, len, status, model, NULL, NULL, id_out, err);
    if (!r)
        r = store_exec(s, "COMMIT", "adding a message", err);
    if (r) {
        store_rollback(s);
        *id_out = 0;
    }
    STORE_UNLOCK(s);
    return r;
}

Status store_msg_update(Store *s, long long id, const char *content, size_t len, const char *status,
                        const StoreMsgStats *stats, Err *err) {
    if (status && !is_status(status))
        return err_set(err, STATUS_INVALID, "status '%.32s' is not a message status", status);
    if (content && len > STORE_MESSAGE_MAX)
        return err_set(err, STATUS_LIMIT, "a message of %zu bytes (limit %u)", len,
                       STORE_MESSAGE_MAX);
    Status r0 = content ? check_text(content, len, &len, err) : STATUS_OK;
    if (r0)
        return r0;
    STORE_LOCK(s);
    sqlite3_stmt *st = NULL;
    Status r = store_prepare(
        s,
        "UPDATE messages SET content = coalesce(?1, content), status = coalesce(?2, status), "
        "prompt_tokens = CASE WHEN ?3 THEN ?4 ELSE prompt_tokens END, "
        "completion_tokens = CASE WHEN ?3 THEN ?5 ELSE completion_tokens END, "
        "seconds = CASE WHEN ?3 THEN ?6 ELSE seconds END, finish = coalesce(?7, finish), "
        "error = coalesce(?8, error), updated = ?9 WHERE id = ?10",
        &st, err);
    if (!r) {
        if (content)
            sqlite3_bind_text(st, 1, content, (int)len, SQLITE_STATIC);
        else
            sqlite3_bind_null(st, 1);
        bind_text_or_null(st, 2, status);
        sqlite3_bind_int(st, 3, stats != NULL);
        sqlite3_bind_int(st, 4, stats ? stats->prompt_tokens : 0);
        sqlite3_bind_int(st, 5, stats ? stats->completion_tokens : 0);
        sqlite3_bind_double(st, 6, stats && isfinite(stats->seconds) ? stats->seconds : 0);
        bind_text_or_null(st, 7, stats ? stats->finish : NULL);
        bind_text_or_null(st, 8, stats ? stats->error : NULL);
        sqlite3_bind_int64(st, 9, store_now());
        sqlite3_bind_int64(st, 10, id);
        r = store_step_done(s, st, "updating a message", err);
    }
    STORE_UNLOCK(s);
    return r;
}

static Status msg_path(Store *s, long long user, const char *conv, long long leaf, json_t *path,
                       Err *err) {
    Status r = owns(s, user, conv, err);
    if (!r)
        r = in_conv(s, conv, leaf, "leaf", err);
    sqlite3_stmt *st = NULL;
    if (!r)
        r = store_prepare(s,
                          "WITH RECURSIVE p(id, depth) AS (SELECT ?1, 0 UNION ALL "
                          "SELECT m.parent_id, p.depth + 1 FROM messages m JOIN p ON m.id = p.id "
                          "WHERE m.parent_id IS NOT NULL AND p.depth < ?3) "
                          "SELECT " MSG_COLUMNS " FROM messages JOIN p USING (id) "
                          "WHERE conv_id = ?2 ORDER BY p.depth DESC",
                          &st, err);
    if (r)
        return r;
    sqlite3_bind_int64(st, 1, leaf);
    sqlite3_bind_text(st, 2, conv, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, STORE_MAX_MESSAGES);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && !json_array_append_new(path, msg_json(st)))
        ;
    sqlite3_finalize(st);
    return rc == SQLITE_DONE  ? STATUS_OK
           : rc == SQLITE_ROW ? bad_row(conv, err)
                              : store_db_fail(s, rc, "reading a branch", err);
}

Status store_msg_path(Store *s, long long user, const char *conv, long long leaf, json_t **out,
                      Err *err) {
    *out = NULL;
    json_t *path = json_array();
    if (!path)
        return err_set(err, STATUS_NOMEM, "out of memory");
    STORE_LOCK(s);
    Status r = msg_path(s, user, conv, leaf, path, err);
    STORE_UNLOCK(s);
    if (r) {
        json_decref(path);
        return r;
    }
    *out = path;
    return STATUS_OK;
}

Status store_recover(Store *s, int *n, Err *err) {
    *n = 0;
    STORE_LOCK(s);
    Status r = store_exec(s,
                          "UPDATE messages SET status = 'error', error = 'the server stopped "
                          "while this reply was being written' WHERE status = 'streaming'",
                          "recovering interrupted replies", err);
    if (!r)
        *n = sqlite3_changes(s->db);
    STORE_UNLOCK(s);
    return r;
}

/* ------------------------------------------------------------ import */

/* The string member 'key' of 'o' (absent: 'def'); INVALID when not a string. */
static Status member_str(const json_t *o, const char *key, const char *def, const char **out,
                         const char *where, Err *err) {
    const json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) {
        *out = def;
        return STATUS_OK;
    }
    if (!json_is_string(v))
        return err_set(err, STATUS_INVALID, "%s.%s: expected a string", where, key);
    *out = json_string_value(v);
    return STATUS_OK;
}

/* A message id in an import: an integer or a string (kept as text). */
static bool id_text(const json_t *v, char *out, size_t cap) {
    if (json_is_integer(v))
        return snprintf(out, cap, "%lld", (long long)json_integer_value(v)) < (int)cap;
    if (json_is_string(v) && json_string_length(v) < cap) {
        snprintf(out, cap, "%s", json_string_value(v));
        return true;
    }
    return false;
}

typedef struct {
    char old[72];
    long long id;
} IdMap;

/* A string member of at most 'max' bytes ('' when absent). */
static Status member_short(const json_t *o, const char *key, size_t max, const char **out,
                           const char *where, Err *err) {
    Status r = member_str(o, key, "", out, where, err);
    if (!r && strlen(*out) > max)
        r = err_set(err, STATUS_LIMIT, "%s.%s is longer than %zu bytes", where, key, max);
    return r;
}

/* An imported message's tool_calls (OpenAI's array) as the compact JSON text
 * the store keeps: each {"id", "type": "function", "function": {"name",
 * "arguments"}} with the arguments as text (an object or array given is
 * written as its JSON; absent: "{}"), a missing id made up. *out owned
 * (free()); NULL when absent or empty. */
static Status import_tool_calls(const json_t *v, const char *where, char **out, Err *err) {
    *out = NULL;
    if (!v || json_is_null(v) || (json_is_array(v) && json_array_size(v) == 0))
        return STATUS_OK;
    if (!json_is_array(v))
        return err_set(err, STATUS_INVALID, "%s.tool_calls: expected an array", where);
    if (json_array_size(v) > STORE_TOOL_CALLS_MAX)
        return err_set(err, STATUS_LIMIT, "%s.tool_calls: %zu calls (limit %d)", where,
                       json_array_size(v), STORE_TOOL_CALLS_MAX);
    json_t *calls = json_array();
    Status r = calls ? STATUS_OK : err_set(err, STATUS_NOMEM, "out of memory");
    for (size_t i = 0; !r && i < json_array_size(v); i++) {
        const json_t *c = json_array_get(v, i);
        char w[96];
        snprintf(w, sizeof w, "%s.tool_calls[%zu]", where, i);
        const json_t *fn = json_object_get(c, "function");
        const json_t *f = json_is_object(fn) ? fn : c; /* {name, arguments} also read */
        const char *id = "", *type = "function", *name = NULL;
        if (!json_is_object(c)) {
            r = err_set(err, STATUS_INVALID, "%s: expected an object", w);
            break;
        }
        if ((r = member_short(c, "id", STORE_TOOL_ID_MAX, &id, w, err)) ||
            (r = member_str(c, "type", "function", &type, w, err)) ||
            (r = member_short(f, "name", STORE_TOOL_NAME_MAX, &name, w, err)))
            break;
        if (strcmp(type, "function") != 0 || !*name) {
            r = err_set(err, STATUS_INVALID, "%s: a function call needs a function.name", w);
            break;
        }
        const json_t *args = json_object_get(f, "arguments");
        char *text = json_is_string(args)                          ? strdup(json_string_value(args))
                     : json_is_object(args) || json_is_array(args) ? json_dumps(args, JSON_COMPACT)
                     : !args || json_is_null(args)                 ? strdup("{}")
                                                                   : NULL;
        if (!text) {
            r = err_set(err, STATUS_INVALID, "%s.function.arguments: expected JSON text", w);
            break;
        }
        char made[40];
        if (!*id) { /* a result answers its call by id: give one */
            snprintf(made, sizeof made, "call_");
            store_random_hex(made + 5, 12);
            id = made;
        }
        json_t *call = json_pack("{s:s, s:s, s:{s:s, s:s}}", "id", id, "type", "function",
                                 "function", "name", name, "arguments", text);
        free(text);
        if (!call || json_array_append_new(calls, call))
            r = err_set(err, STATUS_NOMEM, "out of memory");
    }
    char *dump = r ? NULL : json_dumps(calls, JSON_COMPACT);
    json_decref(calls);
    if (!r && !dump)
        r = err_set(err, STATUS_NOMEM, "out of memory");
    if (!r && strlen(dump) > STORE_MESSAGE_MAX)
        r = err_set(err, STATUS_LIMIT, "%s.tool_calls: %zu bytes (limit %u)", where, strlen(dump),
                    STORE_MESSAGE_MAX);
    if (r)
        free(dump);
    else
        *out = dump;
    return r;
}

static Status import_messages(Store *s, const char *conv, const json_t *msgs, IdMap *map,
                              long long *last, Err *err) {
    size_t n = json_array_size(msgs);
    for (size_t i = 0; i < n; i++) {
        const json_t *m = json_array_get(msgs, i);
        char where[48], parent[72] = "";
        const char *role = NULL, *content = "", *status = "complete", *model = "";
        snprintf(where, sizeof where, "messages[%zu]", i);
        if (!json_is_object(m))
            return err_set(err, STATUS_INVALID, "%s: expected an object", where);
        Status r = member_str(m, "role", NULL, &role, where, err);
        if (!r)
            r = member_str(m, "content", "", &content, where, err);
        if (!r)
            r = member_str(m, "status", "complete", &status, where, err);
        if (!r)
            r = member_str(m, "model", "", &model, where, err);
        if (r)
            return r;
        if (!role)
            return err_set(err, STATUS_INVALID, "%s.role: required", where);
        if (!is_status(status) || !strcmp(status, "streaming"))
            status = "stopped";
        if ((r = check_msg(role, strlen(content), status, model, err))) {
            err_prefix(err, "%s", where);
            return r;
        }
        if (!id_text(json_object_get(m, "id"), map[i].old, sizeof map[i].old))
            snprintf(map[i].old, sizeof map[i].old, "#%zu", i);
        long long pid = 0;
        const json_t *pv = json_object_get(m, "parent");
        if (pv && !json_is_null(pv) && !(json_is_integer(pv) && json_integer_value(pv) == 0)) {
            if (!id_text(pv, parent, sizeof parent))
                return err_set(err, STATUS_INVALID, "%s.parent: expected an id", where);
            for (size_t k = 0; k < i && !pid; k++)
                if (!strcmp(map[k].old, parent))
                    pid = map[k].id;
            if (!pid)
                return err_set(err, STATUS_INVALID,
                               "%s.parent: '%.64s' is not a message before this one", where,
                               parent);
        }
        const json_t *tok = json_object_get(m, "completion_tokens");
        StoreMsgStats stats = {.completion_tokens = json_is_integer(tok) &&
                                                            json_integer_value(tok) >= 0 &&
                                                            json_integer_value(tok) < INT32_MAX
                                                        ? (int)json_integer_value(tok)
                                                        : 0};
        MsgTools tools = {.calls = NULL, .call_id = "", .name = ""};
        char *calls = NULL;
        bool tool = !strcmp(role, "tool");
        if (tool &&
            ((r = member_short(m, "tool_call_id", STORE_TOOL_ID_MAX, &tools.call_id, where, err)) ||
             (r = member_short(m, "name", STORE_TOOL_NAME_MAX, &tools.name, where, err))))
            return r;
        if ((r = import_tool_calls(json_object_get(m, "tool_calls"), where, &calls, err)))
            return r;
        if (calls && strcmp(role, "assistant") != 0) {
            free(calls);
            return err_set(err, STATUS_INVALID, "%s.tool_calls: only an assistant message calls",
                           where);
        }
        tools.calls = calls;
        r = msg_insert(s, conv, pid, role, content, strlen(content), status, model, &stats, &tools,
                       &map[i].id, err);
        free(calls);
        if (r)
            return r;
        *last = map[i].id;
    }
    return STATUS_OK;
}

Status store_conv_import(Store *s, long long user, const json_t *conv,
                         char id_out[STORE_CONV_ID_LEN + 1], Err *err) {
    id_out[0] = '\0';
    const char *title = "", *system = "", *model = "";
    if (!json_is_object(conv))
        return err_set(err, STATUS_INVALID, "a conversation must be a JSON object");
    Status r = member_str(conv, "title", "", &title, "conversation", err);
    if (!r)
        r = member_str(conv, "system", "", &system, "conversation", err);
    if (!r)
        r = member_str(conv, "model", "", &model, "conversation", err);
    if (r)
        return r;
    const json_t *settings = json_object_get(conv, "settings"),
                 *msgs = json_object_get(conv, "messages");
    if (settings && !json_is_null(settings) && !json_is_object(settings))
        return err_set(err, STATUS_INVALID, "conversation.settings: expected an object");
    if (!json_is_array(msgs))
        return err_set(err, STATUS_INVALID, "conversation.messages: expected an array");
    if (json_array_size(msgs) > STORE_MAX_MESSAGES)
        return err_set(err, STATUS_LIMIT, "%zu messages (limit %d)", json_array_size(msgs),
                       STORE_MAX_MESSAGES);
    char *set = settings && json_is_object(settings) ? json_dumps(settings, JSON_COMPACT) : NULL;
    IdMap *map = calloc(json_array_size(msgs) + 1, sizeof *map);
    if (!map) {
        free(set);
        return err_set(err, STATUS_NOMEM, "out of memory");
    }
    char tbuf[STORE_TITLE_MAX + 1];
    /* a long imported title is cut, not refused - and not inside a character */
    snprintf(tbuf, sizeof tbuf, "%s", title);
    bool cut = false;
    size_t tlen = utf8_valid_len(tbuf, strlen(tbuf), &cut);
    if (cut)
        tbuf[tlen] = '\0';
    r = check_conv_fields(tbuf, system, model, set, err);
    long long last = 0;
    STORE_LOCK(s);
    if (!r)
        r = store_exec(s, "BEGIN IMMEDIATE", "importing a conversation", err);
    if (!r) {
        r = conv_insert(s, user, tbuf, system, model, set, id_out, err);
        if (!r)
            r = import_messages(s, id_out, msgs, map, &last, err);
        /* the branch the export showed, when it names one of its messages */
        char leaf[72];
        long long leaf_id = 0;
        if (!r && id_text(json_object_get(conv, "current_leaf"), leaf, sizeof leaf))
            for (size_t k = 0; k < json_array_size(msgs); k++)
                if (!strcmp(map[k].old, leaf))
                    leaf_id = map[k].id;
        if (!r && leaf_id)
            r = conv_update(s, user, id_out, NULL, NULL, NULL, NULL, leaf_id, err);
        if (!r)
            r = store_exec(s, "COMMIT", "importing a conversation", err);
        if (r)
            store_rollback(s);
    }
    STORE_UNLOCK(s);
    free(map);
    free(set);
    if (r)
        id_out[0] = '\0';
    return r;
}
