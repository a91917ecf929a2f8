/* common.c - shared pieces of the subcommands. */
#include "cli/common.h"

#include "hub/library.h"
#include "safety/guard.h"
#include "safety/lexicon.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define CLI_BUILTIN_MODEL "models/cgpt-mini.gguf"

Status cli_read_file(const char *path, size_t max, char **out, size_t *len, Err *err) {
    *out = NULL;
    *len = 0;
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!f)
        return err_set(err, STATUS_IO, "cannot open '%s': %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    Status st = STATUS_OK;
    while (buf) {
        if (n == cap) {
            if (cap >= max) {
                st = err_set(err, STATUS_LIMIT, "'%s' is larger than %zu bytes", path, max);
                break;
            }
            cap = cap * 2 > max ? max : cap * 2;
            char *nb = realloc(buf, cap + 1);
            if (!nb)
                break;
            buf = nb;
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0) {
            if (ferror(f))
                st = err_set(err, STATUS_IO, "cannot read '%s': %s", path, strerror(errno));
            break;
        }
    }
    if (f != stdin)
        fclose(f);
    if (!buf)
        return err_set(err, STATUS_NOMEM, "out of memory reading '%s'", path);
    if (st) {
        free(buf);
        return st;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return STATUS_OK;
}

const ArgOpt CLI_SAMPLING_OPTS[] = {
    {CLI_SAMPLING_ID + PRESET_TEMP, "--temp", "T", "temperature, 0 = greedy (default 0.8)"},
    {CLI_SAMPLING_ID + PRESET_TOP_K, "--top-k", "N",
     "keep the N most likely tokens, 0 = off (default 40)"},
    {CLI_SAMPLING_ID + PRESET_TOP_P, "--top-p", "P", "nucleus sampling, 1 = off (default 0.95)"},
    {CLI_SAMPLING_ID + PRESET_MIN_P, "--min-p", "P",
     "drop tokens below P x the top probability (default 0.05)"},
    {CLI_SAMPLING_ID + PRESET_REPEAT, "--repeat-penalty", "F",
     "penalise repeats of the last tokens, 1 = off (default 1)"},
    {CLI_SAMPLING_ID + PRESET_LAST_N, "--repeat-last-n", "N",
     "window for the penalties (default 64, -1 = all)"},
    {CLI_SAMPLING_ID + PRESET_PRESENCE, "--presence-penalty", "F",
     "OpenAI's presence penalty (default 0)"},
    {CLI_SAMPLING_ID + PRESET_FREQUENCY, "--frequency-penalty", "F",
     "OpenAI's frequency penalty (default 0)"},
    {CLI_SAMPLING_ID + PRESET_SEED, "--seed", "N", "sampling seed (default 42)"},
    {0},
};

/* If 'id' is a sampling option, parse its value 'v' into 'sp', add its
 * PRESET_* bit to *user_set and return true (with *st the parse status). */
static bool sampling_opt(int id, const char *o, const char *v, SamplerParams *sp,
                         unsigned *user_set, Status *st, Err *err) {
    double d = 0;
    long l = 0;
    Status s;
    switch (id - CLI_SAMPLING_ID) {
    case PRESET_TEMP:
        if (!(s = args_float(o, v, 0, PRESET_MAX_TEMP, &d, err)))
            sp->temperature = (float)d;
        break;
    case PRESET_TOP_K:
        if (!(s = args_int(o, v, 0, PRESET_MAX_TOP_K, &l, err)))
            sp->top_k = (int)l;
        break;
    case PRESET_TOP_P:
        if (!(s = args_float(o, v, 0, 1, &d, err)))
            sp->top_p = (float)d;
        break;
    case PRESET_MIN_P:
        if (!(s = args_float(o, v, 0, 1, &d, err)))
            sp->min_p = (float)d;
        break;
    case PRESET_REPEAT:
        if (!(s = args_float(o, v, 0, PRESET_MAX_REPEAT, &d, err)))
            sp->repeat_penalty = (float)d;
        break;
    case PRESET_LAST_N:
        if (!(s = args_int(o, v, -1, SAMPLER_MAX_LAST_N, &l, err)))
            sp->penalty_last_n = (int)l;
        break;
    case PRESET_PRESENCE:
        if (!(s = args_float(o, v, -2, 2, &d, err)))
            sp->presence_penalty = (float)d;
        break;
    case PRESET_FREQUENCY:
        if (!(s = args_float(o, v, -2, 2, &d, err)))
            sp->frequency_penalty = (float)d;
        break;
    case PRESET_SEED:
        if (!(s = args_int(o, v, 0, 0x7fffffffL, &l, err)))
            sp->seed = (uint64_t)l;
        break;
    default: return false;
    }
    *st = s;
    if (!s)
        *user_set |= (unsigned)(id - CLI_SAMPLING_ID);
    return true;
}

int cli_next_sampling(Args *a, const CliCommand *cmd, SamplerParams *sp, unsigned *user_set,
                      const char **val, Err *err) {
    for (;;) {
        int id = cli_next(a, cmd, val, err);
        Status st = STATUS_OK;
        if (!sampling_opt(id, a->opt, *val, sp, user_set, &st, err))
            return id;
        if (st)
            return ARG_ERROR;
    }
}

void cli_sampling_resolve(const CliModel *cm, unsigned user_set, SamplerParams *sp) {
    preset_apply(&cm->preset, user_set, sp);
}

/* 'rel' (a path under the repository) under the current directory, else
 * beside the binary (build/cgpt -> ../rel); the result may live in a
 * static buffer. NULL when neither is there. */
static const char *builtin_file(const char *rel) {
    static char beside[PATH_MAX + 64];
    struct stat st;
    if (stat(rel, &st) == 0)
        return rel;
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return NULL;
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (!slash)
        return NULL;
    *slash = '\0';
    snprintf(beside, sizeof beside, "%s/../%s", exe, rel);
    return stat(beside, &st) == 0 ? beside : NULL;
}

const char *cli_builtin_model(void) { return builtin_file(CLI_BUILTIN_MODEL); }

const char *cli_kv_name(KVType t) { return t == KV_Q8_0 ? "q8_0" : t == KV_F16 ? "f16" : "f32"; }

Status cli_kv_type(const char *opt, const char *v, KVType *out, Err *err) {
    if (!strcasecmp(v, "f32"))
        *out = KV_F32;
    else if (!strcasecmp(v, "f16"))
        *out = KV_F16;
    else if (!strcasecmp(v, "q8_0"))
        *out = KV_Q8_0;
    else
        return err_set(err, STATUS_INVALID, "%s: '%s' is not f32, f16 or q8_0", opt, v);
    return STATUS_OK;
}

/* The built-in model: $CGPT_MODEL, else models/cgpt-mini.gguf under the
 * current directory, else beside the binary (build/cgpt -> ../models/). */
Status cli_model_path(const char *given, const char **out, Err *err) {
    static char named[PATH_MAX];
    struct stat st;
    if (given && stat(given, &st) != 0 && lib_name_like(given)) {
        /* not a file: a name in the library (OWNER/REPO[:QUANT]) */
        char dir[PATH_MAX];
        LibModel e;
        Status r = lib_dir(NULL, dir, sizeof dir, err);
        if (!r)
            r = lib_find(dir, given, &e, err);
        if (r)
            return err_prefix(err, "'%s' is neither a file nor a model in the library", given);
        snprintf(named, sizeof named, "%s", e.path);
        json_decref(e.manifest);
        *out = named;
        return STATUS_OK;
    }
    if (given) {
        *out = given;
        return STATUS_OK;
    }
    const char *env = getenv("CGPT_MODEL");
    if (env && *env) {
        *out = env;
        return STATUS_OK;
    }
    if ((*out = builtin_file(CLI_BUILTIN_MODEL)))
        return STATUS_OK;
    return err_set(err, STATUS_INVALID,
                   "no model given and the built-in model (%s) is not there; "
                   "pass a GGUF file with -m MODEL (or set CGPT_MODEL)",
                   CLI_BUILTIN_MODEL);
}

Status cli_load(CliModel *cm, const char *path, const ModelParams *mp, const char *template_file,
                bool want_chat, Err *err) {
    memset(cm, 0, sizeof *cm);
    Status st = model_load(&cm->m, path, mp, err);
    if (st) {
        const char *env = getenv("CGPT_MODEL");
        if (env && path == env) /* cli_model_path took it from the environment */
            err_prefix(err, "the model named by $CGPT_MODEL");
        return st;
    }
    if ((st = preset_from_gguf(model_gguf(cm->m), &cm->preset, err))) {
        err_prefix(err, "%s", path);
        goto fail;
    }
    if ((st = tok_load(&cm->tok, model_gguf(cm->m), err))) {
        err_prefix(err, "%s", path);
        goto fail;
    }
    if (want_chat) {
        char *src = NULL;
        size_t len = 0;
        if (template_file && (st = cli_read_file(template_file, CLI_MAX_TEMPLATE, &src, &len, err)))
            goto fail;
        cm->fmt = chat_format_new(model_gguf(cm->m), cm->tok, src, len, err);
        free(src);
        if (!cm->fmt) {
            st = err->status ? err->status : STATUS_INVALID;
            if (template_file)
                err_prefix(err, "%s", template_file);
            goto fail;
        }
    }
    return STATUS_OK;
fail:
    cli_unload(cm);
    return st;
}

void cli_unload(CliModel *cm) {
    chat_format_free(cm->fmt);
    tok_free(cm->tok);
    model_free(cm->m);
    memset(cm, 0, sizeof *cm);
}

const char *cli_data_dir(const char *given) {
    static char home_dir[PATH_MAX];
    if (given)
        return given;
    const char *env = getenv("CGPT_DATA_DIR");
    if (env && *env)
        return env;
    const char *home = getenv("HOME");
    if (!home || !*home)
        return NULL;
    int n = snprintf(home_dir, sizeof home_dir, "%s/.cgpt", home);
    return n > 0 && (size_t)n < sizeof home_dir ? home_dir : NULL;
}

const char *cli_trained_guard(const CliModeration *o) {
    return o->guard_model ? NULL : builtin_file(CLI_GUARD_MODEL);
}

Status cli_moderator(const CliModeration *o, Moderator **out, Err *err) {
    *out = NULL;
    Policy p;
    Status r = STATUS_OK;
    if (o->policy) {
        char *src;
        size_t len;
        r = cli_read_file(o->policy, POLICY_MAX_BYTES, &src, &len, err);
        if (!r) {
            r = policy_parse(&p, o->policy, src, len, err);
            free(src);
        }
        if (r)
            return r;
    } else {
        policy_default(&p);
    }
    bool lexicon_only = o->guard_model && !strcmp(o->guard_model, "lexicon");
    if (o->guard_model && !lexicon_only && o->lexicon)
        return err_set(err, STATUS_INVALID,
                       "--moderation-lexicon extends the built-in classifier, not a guard model");
    char *lex = NULL;
    size_t lex_len = 0;
    if (o->lexicon && (r = cli_read_file(o->lexicon, LEX_MAX_BYTES, &lex, &lex_len, err)))
        return r;
    Classifier *c = NULL;
    r = o->guard_model && !lexicon_only ? classify_guard(&c, o->guard_model, 0, err)
                                        : classify_builtin(&c, lex, lex_len, err);
    free(lex);
    const char *trained = cli_trained_guard(o);
    if (!r && trained) {
        /* input checks only: one short prompt a request, on one thread */
        Classifier *g = NULL;
        r = classify_guard(&g, trained, 1, err);
        if (r) {
            classifier_free(c);
            c = NULL;
        } else {
            r = classify_pair(&c, c, g, 1u << SAFE_INPUT, CLI_GUARD_WEIGHT, err);
        }
    }
    if (!r)
        r = mod_new(out, c, &p, err);
    if (r)
        classifier_free(c);
    return r;
}
