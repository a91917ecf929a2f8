/* meta.c - `cgpt meta IN.gguf OUT.gguf [--set KEY=VALUE]... [--delete KEY]...`:
 * a copy of a GGUF file with metadata changed (a recommended sampling
 * setting, a chat template, a name), tensors byte for byte.
 *
 * --set keeps the type of a key the file already has (an integer, float,
 * bool or string; arrays are refused); a new key takes the type llama.cpp
 * gives it when it is one of general.sampling.*, else it needs --set-str,
 * --set-int (int32) or --set-float (float32). Values are checked like any
 * command-line number. OUT may be IN: the file is written to a temporary
 * name and renamed over the old one (gguf_writer). Without any change the
 * copy is still written (a way to re-align a file). */
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/common.h"
#include "gguf/gguf.h"
#include "gguf/gguf_writer.h"

#define META_MAX_EDITS 64
#define META_MAX_KEY 256   /* bytes of a key name */
#define META_MAX_NAME 4096 /* bytes of a tensor name */

enum { O_SET = 1, O_SET_STR, O_SET_INT, O_SET_FLOAT, O_DELETE };

static const ArgOpt META_OPTS[] = {
    {O_SET, "--set", "KEY=VALUE", "set KEY, keeping its type (general.sampling.* keys may be new)"},
    {O_SET_STR, "--set-str", "KEY=VALUE", "set KEY to a string"},
    {O_SET_INT, "--set-int", "KEY=VALUE", "set KEY to an int32"},
    {O_SET_FLOAT, "--set-float", "KEY=VALUE", "set KEY to a float32"},
    {O_DELETE, "--delete", "KEY", "leave KEY out"},
    {0},
};

typedef struct {
    int kind; /* O_SET.. O_DELETE */
    char key[META_MAX_KEY];
    const char *value; /* after '='; NULL for --delete */
} Edit;

/* The types llama.cpp's gguf-py writes general.sampling.* keys with. */
static GGUFType sampling_key_type(const char *key) {
    static const char *const ints[] = {"general.sampling.top_k", "general.sampling.penalty_last_n",
                                       "general.sampling.mirostat"};
    if (!strcmp(key, "general.sampling.sequence"))
        return GGUF_TYPE_STRING;
    if (strncmp(key, "general.sampling.", 17) != 0)
        return GGUF_TYPE_COUNT; /* unknown */
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        if (!strcmp(key, ints[i]))
            return GGUF_TYPE_INT32;
    return GGUF_TYPE_FLOAT32;
}

static bool is_int_type(GGUFType t) {
    return t == GGUF_TYPE_UINT8 || t == GGUF_TYPE_INT8 || t == GGUF_TYPE_UINT16 ||
           t == GGUF_TYPE_INT16 || t == GGUF_TYPE_UINT32 || t == GGUF_TYPE_INT32 ||
           t == GGUF_TYPE_UINT64 || t == GGUF_TYPE_INT64;
}

/* Apply one --set* to the writer, the value converted to 'type'. */
static Status set_value(GGUFWriter *w, const Edit *e, GGUFType type, Err *err) {
    long l;
    double d;
    char what[META_MAX_KEY + 8];
    snprintf(what, sizeof what, "%s", e->key);
    switch (type) {
    case GGUF_TYPE_STRING: gguf_writer_set_str(w, e->key, e->value); return STATUS_OK;
    case GGUF_TYPE_FLOAT32:
    case GGUF_TYPE_FLOAT64:
        if (args_float(what, e->value, -3.4e38, 3.4e38, &d, err))
            return err->status;
        gguf_writer_set_f32(w, e->key, (float)d);
        return STATUS_OK;
    case GGUF_TYPE_BOOL:
        if (strcmp(e->value, "true") && strcmp(e->value, "false"))
            return err_set(err, STATUS_INVALID, "%s: '%s' is not true or false", e->key, e->value);
        gguf_writer_set_bool(w, e->key, !strcmp(e->value, "true"));
        return STATUS_OK;
    case GGUF_TYPE_UINT8:
    case GGUF_TYPE_UINT16:
    case GGUF_TYPE_UINT32:
    case GGUF_TYPE_UINT64:
        if (args_int(what, e->value, 0, UINT32_MAX, &l, err))
            return err->status;
        gguf_writer_set_u32(w, e->key, (uint32_t)l);
        return STATUS_OK;
    default:
        if (!is_int_type(type))
            return err_set(err, STATUS_UNSUPPORTED,
                           "%s is a %s: only numbers, bools and strings "
                           "can be set",
                           e->key, gguf_type_name(type));
        if (args_int(what, e->value, INT32_MIN, INT32_MAX, &l, err))
            return err->status;
        gguf_writer_set_i32(w, e->key, (int32_t)l);
        return STATUS_OK;
    }
}

static Status parse_edit(int id, const char *v, Edit *e, Err *err) {
    const char *eq = id == O_DELETE ? NULL : strchr(v, '=');
    size_t klen = id == O_DELETE ? strlen(v) : eq ? (size_t)(eq - v) : 0;
    if (id != O_DELETE && !eq)
        return err_set(err, STATUS_INVALID, "'%s': give KEY=VALUE", v);
    if (klen == 0 || klen >= META_MAX_KEY)
        return err_set(err, STATUS_INVALID, "'%s': a key of 1 to %d bytes", v, META_MAX_KEY - 1);
    e->kind = id;
    memcpy(e->key, v, klen);
    e->key[klen] = '\0';
    e->value = eq ? eq + 1 : NULL;
    return STATUS_OK;
}

static Status rewrite(const char *in, const char *out, const Edit *edits, int n_edits, Err *err) {
    GGUF g = {0};
    GGUFWriter *w = NULL;
    Status st = gguf_open(&g, in, err);
    if (st) {
        err_prefix(err, "%s", in);
        goto done;
    }
    if (!(w = gguf_writer_new())) {
        st = err_set(err, STATUS_NOMEM, "out of memory");
        goto done;
    }
    for (uint64_t i = 0; i < g.n_kv; i++) {
        bool deleted = false;
        for (int k = 0; k < n_edits; k++)
            deleted |= edits[k].kind == O_DELETE && gguf_str_eq(g.kv[i].key, edits[k].key);
        if (!deleted)
            gguf_writer_set_kv(w, &g.kv[i]);
    }
    for (int k = 0; k < n_edits && !st; k++) {
        const Edit *e = &edits[k];
        const GGUFKV *old = gguf_find_key(&g, e->key);
        GGUFType type;
        switch (e->kind) {
        case O_DELETE:
            if (!old)
                st = err_set(err, STATUS_INVALID, "--delete %s: %s has no such key", e->key, in);
            continue;
        case O_SET_STR: type = GGUF_TYPE_STRING; break;
        case O_SET_INT: type = GGUF_TYPE_INT32; break;
        case O_SET_FLOAT: type = GGUF_TYPE_FLOAT32; break;
        default:
            type = old ? old->type : sampling_key_type(e->key);
            if (type == GGUF_TYPE_COUNT)
                st = err_set(err, STATUS_INVALID,
                             "%s is not in %s: give its type with --set-str, --set-int or "
                             "--set-float",
                             e->key, in);
            if (type == GGUF_TYPE_ARRAY)
                st = err_set(err, STATUS_UNSUPPORTED, "%s is an array: arrays cannot be set",
                             e->key);
        }
        if (!st)
            st = set_value(w, e, type, err);
    }
    if (st)
        goto done;
    for (uint64_t i = 0; i < g.n_tensors; i++) {
        const GGUFTensor *t = &g.tensors[i];
        char name[META_MAX_NAME];
        if (t->name.len >= sizeof name) {
            st = err_set(err, STATUS_LIMIT, "%s: a tensor name of %" PRIu64 " bytes (limit %d)", in,
                         t->name.len, META_MAX_NAME - 1);
            goto done;
        }
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.ptr);
        gguf_writer_add_tensor(w, name, t->type, t->n_dims, t->ne, t->data);
    }
    st = gguf_writer_write(w, out, err);
done:
    gguf_writer_free(w);
    gguf_close(&g);
    return st;
}

static int cmd_meta(int argc, char **argv) {
    const char *pos[2] = {0}, *v;
    int n_pos = 0, n_edits = 0;
    Edit *edits = calloc(META_MAX_EDITS, sizeof *edits);
    Err err = {0};
    int rc = 1;
    Args a = args_start(argc, argv, 1);
    if (!edits) {
        err_set(&err, STATUS_NOMEM, "out of memory");
        goto done;
    }
    for (int id; (id = cli_next(&a, &CLI_META, &v, &err)) != ARG_END;) {
        if (id == ARG_ERROR)
            goto done;
        if (id == ARG_HELP) {
            cli_help(&CLI_META);
            rc = 0;
            goto done;
        }
        if (id == ARG_POSITIONAL) {
            if (n_pos == 2) {
                err_set(&err, STATUS_INVALID, "unexpected argument '%s'", v);
                goto done;
            }
            pos[n_pos++] = v;
            continue;
        }
        if (n_edits == META_MAX_EDITS) {
            err_set(&err, STATUS_LIMIT, "more than %d changes", META_MAX_EDITS);
            goto done;
        }
        if (parse_edit(id, v, &edits[n_edits++], &err))
            goto done;
    }
    if (n_pos != 2) {
        err_set(&err, STATUS_INVALID, "give IN.gguf and OUT.gguf");
        goto done;
    }
    if (rewrite(pos[0], pos[1], edits, n_edits, &err))
        goto done;
    printf("wrote %s (%d change%s)\n", pos[1], n_edits, n_edits == 1 ? "" : "s");
    rc = 0;
done:
    if (rc && err.status)
        cli_fail("meta", &err);
    free(edits);
    return rc;
}

const CliCommand CLI_META = {
    .name = "meta",
    .synopsis = "IN.gguf OUT.gguf [--set KEY=VALUE]... [--delete KEY]...",
    .summary = "copy a GGUF file with metadata changed (e.g. general.sampling.temp)",
    .opts = META_OPTS,
    .notes = "Tensors are copied byte for byte; OUT may be IN (written to a temporary file,\n"
             "then renamed).\n",
    .main = cmd_meta,
};
