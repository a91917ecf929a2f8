/* fuzz_import.c - libFuzzer target for conversation import, the path a
 * file dropped on the page's Import button takes (serve/api.c
 * route_import): JSON -> import_chatgpt() when it looks like a ChatGPT
 * export -> store_conv_import() into a real SQLite store.
 *
 * Every rejection must carry a message. Every accepted conversation must
 * read back (store_conv_get: its text is valid UTF-8, or jansson could not
 * build it) with as many messages as were imported, each parent an earlier
 * message of the same conversation and the current leaf one of them; then
 * it is deleted so the database stays small. Every 4096 inputs the
 * database's integrity check must pass. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve/import.h"
#include "store/store.h"

static Store *g_store;
static long long g_user;

static void setup(void) {
    char dir[] = "/tmp/fuzz-import-XXXXXX";
    Err err = {0};
    StoreUser u;
    if (!mkdtemp(dir) || store_open(&g_store, dir, &err) ||
        store_user_add(g_store, "fuzz", "fuzz-password", false, &u, &err)) {
        fprintf(stderr, "fuzz_import: setup: %s\n", err.msg);
        abort();
    }
    g_user = u.id;
}

static void check_stored(const char *id, size_t n_in) {
    Err err = {0};
    json_t *c = NULL;
    if (store_conv_get(g_store, g_user, id, &c, &err)) {
        fprintf(stderr, "imported conversation does not read back: %s\n", err.msg);
        abort();
    }
    const json_t *msgs = json_object_get(c, "messages");
    size_t n = json_array_size(msgs);
    if (n != n_in)
        abort(); /* every imported message is stored, no more */
    long long leaf = json_integer_value(json_object_get(c, "current_leaf"));
    bool leaf_found = leaf == 0 && n == 0;
    for (size_t i = 0; i < n; i++) {
        const json_t *m = json_array_get(msgs, i);
        long long mid = json_integer_value(json_object_get(m, "id"));
        long long parent = json_integer_value(json_object_get(m, "parent"));
        bool found = parent == 0;
        for (size_t k = 0; k < i && !found; k++)
            found = json_integer_value(json_object_get(json_array_get(msgs, k), "id")) == parent;
        if (!found)
            abort(); /* a parent outside the conversation, or after its child */
        leaf_found |= mid == leaf;
    }
    if (!leaf_found)
        abort();
    json_decref(c);
    if (store_conv_delete(g_store, g_user, id, &err))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static unsigned long runs;
    if (!g_store)
        setup();
    json_t *b = json_loadb((const char *)data, size, 0, NULL);
    if (!b)
        return 0;
    json_t *list = json_is_array(b) ? json_incref(b) : json_pack("[O]", b);
    for (size_t i = 0; i < json_array_size(list) && i < 8; i++) {
        const json_t *cv = json_array_get(list, i);
        json_t *ours = import_is_chatgpt(cv) ? import_chatgpt(cv) : json_incref((json_t *)cv);
        if (json_is_object(cv) && !ours)
            abort(); /* import.h: never NULL for an object */
        char id[STORE_CONV_ID_LEN + 1];
        Err err = {0};
        Status st = store_conv_import(g_store, g_user, ours, id, &err);
        if (st && !err.msg[0])
            abort();
        if (!st)
            check_stored(id, json_array_size(json_object_get(ours, "messages")));
        json_decref(ours);
    }
    json_decref(list);
    json_decref(b);
    if (++runs % 4096 == 0) {
        Err err = {0};
        if (store_check(g_store, &err)) {
            fprintf(stderr, "integrity: %s\n", err.msg);
            abort();
        }
    }
    return 0;
}
