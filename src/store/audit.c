/* audit.c - the moderation audit (store.h): one row per flag or block,
 * written by the server and the chat, read by `cgpt audit`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_impl.h"

static void bind_str(sqlite3_stmt *st, int i, const char *v) {
    sqlite3_bind_text(st, i, v ? v : "", -1, SQLITE_TRANSIENT);
}

Status store_audit_add(Store *s, const StoreAudit *a, Err *err) {
    STORE_LOCK(s);
    sqlite3_stmt *st = NULL;
    Status r = store_prepare(s,
                             "INSERT INTO audit(created, user_id, key_name, route, direction, "
                             "action, categories, scores, classifier, error, content_hash, "
                             "content) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                             &st, err);
    if (!r) {
        sqlite3_bind_int64(st, 1, store_now());
        if (a->user > 0)
            sqlite3_bind_int64(st, 2, a->user);
        else
            sqlite3_bind_null(st, 2);
        bind_str(st, 3, a->key_name);
        bind_str(st, 4, a->route);
        bind_str(st, 5, a->direction);
        bind_str(st, 6, a->action);
        bind_str(st, 7, a->categories);
        bind_str(st, 8, a->scores ? a->scores : "{}");
        bind_str(st, 9, a->classifier);
        bind_str(st, 10, a->error);
        bind_str(st, 11, a->content_hash);
        if (a->content)
            sqlite3_bind_text(st, 12, a->content, (int)a->content_len, SQLITE_TRANSIENT);
        else
            sqlite3_bind_null(st, 12);
        r = store_step_done(s, st, "recording a moderation event", err);
    }
    STORE_UNLOCK(s);
    return r;
}

static const char *col(sqlite3_stmt *st, int i) {
    const unsigned char *t = sqlite3_column_text(st, i);
    return t ? (const char *)t : "";
}

Status store_audit_list(Store *s, const StoreAuditFilter *f, json_t **out, Err *err) {
    *out = NULL;
    int limit = f->limit > 0 && f->limit <= STORE_AUDIT_LIST_MAX ? f->limit : STORE_AUDIT_LIST_MAX;
    json_t *list = json_array();
    if (!list)
        return err_set(err, STATUS_NOMEM, "out of memory");
    STORE_LOCK(s);
    sqlite3_stmt *st = NULL;
    /* categories is "a,b,c": match a whole name with commas around it */
    Status r = store_prepare(
        s,
        "SELECT a.id, a.created, coalesce(u.name, ''), a.key_name, a.route, a.direction, "
        "a.action, a.categories, a.scores, a.classifier, a.error, a.content_hash, a.content "
        "FROM audit a LEFT JOIN users u ON u.id = a.user_id WHERE a.created >= ?1 "
        "AND (?2 = '' OR instr(',' || a.categories || ',', ',' || ?2 || ',') > 0) "
        "AND (?3 = '' OR a.action = ?3) AND (?4 = '' OR a.direction = ?4) "
        "AND (?5 = '' OR u.name = ?5) AND (?6 = '' OR a.key_name = ?6) "
        "ORDER BY a.id DESC LIMIT ?7",
        &st, err);
    if (!r) {
        sqlite3_bind_int64(st, 1, f->since);
        bind_str(st, 2, f->category);
        bind_str(st, 3, f->action);
        bind_str(st, 4, f->direction);
        bind_str(st, 5, f->user);
        bind_str(st, 6, f->key_name);
        sqlite3_bind_int(st, 7, limit);
        int rc;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            json_t *cats = json_array();
            const char *c = col(st, 7);
            while (*c) {
                const char *e = strchr(c, ',');
                size_t n = e ? (size_t)(e - c) : strlen(c);
                json_array_append_new(cats, json_stringn(c, n));
                c += n + (e != NULL);
            }
            json_t *scores = json_loads(col(st, 8), 0, NULL);
            json_t *row = json_pack(
                "{s:I, s:I, s:s, s:s, s:s, s:s, s:s, s:o, s:o, s:s, s:s, s:s}", "id",
                (json_int_t)sqlite3_column_int64(st, 0), "created",
                (json_int_t)sqlite3_column_int64(st, 1), "user", col(st, 2), "key", col(st, 3),
                "route", col(st, 4), "direction", col(st, 5), "action", col(st, 6), "categories",
                cats, "scores", scores ? scores : json_object(), "classifier", col(st, 9),
                "error", col(st, 10), "content_hash", col(st, 11));
            if (row)
                json_object_set_new(row, "content",
                                    sqlite3_column_type(st, 12) == SQLITE_NULL
                                        ? json_null()
                                        : json_string(col(st, 12)));
            json_array_append_new(list, row);
        }
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE)
            r = store_db_fail(s, rc, "reading the audit", err);
    }
    STORE_UNLOCK(s);
    if (r) {
        json_decref(list);
        return r;
    }
    *out = list;
    return STATUS_OK;
}
