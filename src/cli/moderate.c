/* moderate.c - `cgpt moderate [TEXT] [--output] [--policy FILE] [--forms]`.
 *
 * What moderation makes of a text, without a server: with TEXT, that text;
 * without, every line of stdin, each a JSON string (so a text may hold
 * newlines). Prints one JSON object a line, the /v1/moderations result
 * ({"flagged", "categories", "category_scores", ...}) plus "action"
 * (allow, flag or block under the policy) and "error" when the classifier
 * failed. --forms prints instead the forms the classifier reads (the fold,
 * the leet reading, ROT13, decoded base64), one JSON object a line. This
 * output is what tests/safety/test_eval.py measures: keep it stable. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/common.h"
#include "safety/guard.h"
#include "safety/normalize.h"

#define MODERATE_MAX_LINE (16u << 20) /* bytes of one stdin line */

enum { O_OUTPUT = 1, O_POLICY, O_MOD_MODEL, O_MOD_LEXICON, O_FORMS, O_PROMPT, O_CONTEXT };

static const ArgOpt MODERATE_OPTS[] = {
    {O_OUTPUT, "--output", NULL, "check as a model's reply (the policy's output rules)"},
    CLI_OPT_POLICY(O_POLICY),
    CLI_OPT_MOD_MODEL(O_MOD_MODEL),
    CLI_OPT_MOD_LEXICON(O_MOD_LEXICON),
    {O_FORMS, "--forms", NULL, "print the forms the classifier reads instead of a verdict"},
    {O_PROMPT, "--prompt", NULL, "with a guard model: print the prompt it gets instead"},
    {O_CONTEXT, "--context", "TEXT", "with --output: the user message the reply answers"},
    {0},
};

static void print_json(json_t *j) {
    char *s = j ? json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_REAL_PRECISION(6)) : NULL;
    puts(s ? s : "{\"error\":\"out of memory\"}");
    free(s);
    json_decref(j);
}

typedef struct {
    bool output, forms, prompt;
    const char *context;
} ModerateOpts;

static void one(Moderator *m, const ModerateOpts *mo, const char *text, size_t len) {
    bool output = mo->output, forms = mo->forms;
    if (forms) {
        NormForms f;
        Err err = {0};
        if (norm_forms(text, len, &f, &err)) {
            print_json(json_pack("{s:s}", "error", err.msg));
            return;
        }
        json_t *o = json_object();
        for (int i = 0; i < f.n; i++)
            json_object_set_new(o, norm_kind_name(f.f[i].kind),
                                json_stringn(f.f[i].text, f.f[i].len));
        norm_forms_free(&f);
        print_json(o);
        return;
    }
    SafeText t = {.dir = output ? SAFE_OUTPUT : SAFE_INPUT,
                  .text = text,
                  .len = len,
                  .context = mo->context,
                  .context_len = mo->context ? strlen(mo->context) : 0};
    if (mo->prompt) {
        char *p = NULL;
        size_t n = 0;
        Err err = {0};
        if (guard_render(mod_classifier(m), &t, &p, &n, &err))
            print_json(json_pack("{s:s}", "error", err.msg));
        else
            print_json(json_pack("{s:s%}", "prompt", p, n));
        free(p);
        return;
    }
    ModResult r;
    mod_check(m, &t, &r);
    json_t *o = mod_result_json(&r.scores, &r.v);
    if (o) {
        json_object_set_new(o, "action", json_string(policy_action_name(r.v.action)));
        if (r.error)
            json_object_set_new(o, "error", json_string(r.why));
    }
    print_json(o);
}

static int cmd_moderate(int argc, char **argv) {
    CliModeration mo = {0};
    ModerateOpts o = {0};
    const char *text = NULL, *v;
    Err err = {0};
    Args a = args_start(argc, argv, 1);
    for (int id; (id = cli_next(&a, &CLI_MODERATE, &v, &err)) != ARG_END;) {
        switch (id) {
        case ARG_ERROR: return cli_fail("moderate", &err);
        case ARG_HELP: cli_help(&CLI_MODERATE); return 0;
        case ARG_POSITIONAL:
            if (text) {
                err_set(&err, STATUS_INVALID, "one TEXT at most (more: one JSON string a line on stdin)");
                return cli_fail("moderate", &err);
            }
            text = v;
            break;
        case O_OUTPUT: o.output = true; break;
        case O_PROMPT: o.prompt = true; break;
        case O_CONTEXT: o.context = v; break;
        case O_POLICY: mo.policy = v; break;
        case O_MOD_MODEL: mo.guard_model = v; break;
        case O_MOD_LEXICON: mo.lexicon = v; break;
        case O_FORMS: o.forms = true; break;
        }
    }
    Moderator *m = NULL;
    if (o.prompt && !mo.guard_model) {
        err_set(&err, STATUS_INVALID,
                "--prompt shows a guard model's prompt: give --moderation-model");
        return cli_fail("moderate", &err);
    }
    if (!o.forms && cli_moderator(&mo, &m, &err))
        return cli_fail("moderate", &err);
    int rc = 0;
    if (text) {
        one(m, &o, text, strlen(text));
    } else {
        char *line = NULL;
        size_t cap = 0;
        ssize_t n;
        long lineno = 0;
        while ((n = getline(&line, &cap, stdin)) >= 0) {
            lineno++;
            if ((size_t)n > MODERATE_MAX_LINE) {
                fprintf(stderr, "cgpt moderate: stdin line %ld: %zd bytes (limit %u)\n", lineno, n,
                        MODERATE_MAX_LINE);
                rc = 1;
                continue;
            }
            json_error_t je;
            json_t *s = json_loadb(line, (size_t)n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
            if (!json_is_string(s)) {
                fprintf(stderr, "cgpt moderate: stdin line %ld: expected a JSON string%s%s\n",
                        lineno, s ? "" : ": ", s ? "" : je.text);
                json_decref(s);
                rc = 1;
                continue;
            }
            one(m, &o, json_string_value(s), json_string_length(s));
            json_decref(s);
            fflush(stdout);
        }
        free(line);
    }
    mod_free(m);
    return rc;
}

const CliCommand CLI_MODERATE = {
    .name = "moderate",
    .synopsis = "[TEXT] [--output] [--policy FILE] [options]",
    .summary = "what moderation makes of a text: scores, categories and the policy's action",
    .opts = MODERATE_OPTS,
    .notes = "Without TEXT, reads one JSON string a line from stdin and prints one result a line.\n",
    .main = cmd_moderate,
};
