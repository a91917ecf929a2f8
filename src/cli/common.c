/* common.c - shared pieces of the subcommands. */
#include "cli/common.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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

const char CLI_SAMPLING_HELP[] =
    "  --temp T             temperature, 0 = greedy (default 0.8)\n"
    "  --top-k N            keep the N most likely tokens, 0 = off (default 40)\n"
    "  --top-p P            nucleus sampling, 1 = off (default 0.95)\n"
    "  --min-p P            drop tokens below P x the top probability (default 0.05)\n"
    "  --repeat-penalty F   penalise repeats of the last tokens, 1 = off (default 1)\n"
    "  --repeat-last-n N    window for the penalties (default 64, -1 = all)\n"
    "  --presence-penalty F, --frequency-penalty F   OpenAI-style penalties (default 0)\n"
    "  --seed N             sampling seed (default 42)\n";

Status cli_sampling_flag(Args *a, SamplerParams *sp, bool *matched, Err *err) {
    const char *o = a->argv[a->i], *v;
    double d;
    long l;
    Status s;
    *matched = true;
    if (!strcmp(o, "--temp")) {
        if (!(s = args_value(a, &v, err)) && !(s = args_float(o, v, 0, 100, &d, err)))
            sp->temperature = (float)d;
    } else if (!strcmp(o, "--top-k")) {
        if (!(s = args_value(a, &v, err)) && !(s = args_int(o, v, 0, 1 << 22, &l, err)))
            sp->top_k = (int)l;
    } else if (!strcmp(o, "--top-p")) {
        if (!(s = args_value(a, &v, err)) && !(s = args_float(o, v, 0, 1, &d, err)))
            sp->top_p = (float)d;
    } else if (!strcmp(o, "--min-p")) {
        if (!(s = args_value(a, &v, err)) && !(s = args_float(o, v, 0, 1, &d, err)))
            sp->min_p = (float)d;
    } else if (!strcmp(o, "--repeat-penalty")) {
        if (!(s = args_value(a, &v, err)) && !(s = args_float(o, v, 0, 100, &d, err)))
            sp->repeat_penalty = (float)d;
    } else if (!strcmp(o, "--repeat-last-n")) {
        if (!(s = args_value(a, &v, err)) && !(s = args_int(o, v, -1, SAMPLER_MAX_LAST_N, &l, err)))
            sp->penalty_last_n = (int)l;
    } else if (!strcmp(o, "--presence-penalty")) {
        if (!(s = args_value(a, &v, err)) && !(s = args_float(o, v, -2, 2, &d, err)))
            sp->presence_penalty = (float)d;
    } else if (!strcmp(o, "--frequency-penalty")) {
        if (!(s = args_value(a, &v, err)) && !(s = args_float(o, v, -2, 2, &d, err)))
            sp->frequency_penalty = (float)d;
    } else if (!strcmp(o, "--seed")) {
        if (!(s = args_value(a, &v, err)) && !(s = args_int(o, v, 0, 0x7fffffffL, &l, err)))
            sp->seed = (uint64_t)l;
    } else {
        *matched = false;
        s = STATUS_OK;
    }
    return s;
}

/* The built-in model: $CGPT_MODEL, else models/cgpt-mini.gguf under the
 * current directory, else beside the binary (build/cgpt -> ../models/). */
Status cli_model_path(const char *given, const char **out, Err *err) {
    static char beside[PATH_MAX + 64];
    struct stat st;
    if (given) {
        *out = given;
        return STATUS_OK;
    }
    const char *env = getenv("CGPT_MODEL");
    if (env && *env) {
        *out = env;
        return STATUS_OK;
    }
    if (stat(CLI_BUILTIN_MODEL, &st) == 0) {
        *out = CLI_BUILTIN_MODEL;
        return STATUS_OK;
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0';
            snprintf(beside, sizeof beside, "%s/../%s", exe, CLI_BUILTIN_MODEL);
            if (stat(beside, &st) == 0) {
                *out = beside;
                return STATUS_OK;
            }
        }
    }
    return err_set(err, STATUS_INVALID,
                   "no model given and the built-in model (%s) is not there; "
                   "pass a GGUF file with -m MODEL (or set CGPT_MODEL)",
                   CLI_BUILTIN_MODEL);
}

Status cli_load(CliModel *cm, const char *path, const ModelParams *mp, const char *template_file,
                bool want_chat, Err *err) {
    memset(cm, 0, sizeof *cm);
    Status st = model_load(&cm->m, path, mp, err);
    if (st)
        return st;
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
