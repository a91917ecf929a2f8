/* template.c - `cgpt template [-m MODEL] -f MESSAGES.json [--no-generation-prompt]
 * [--ids] [--chat-template-file FILE]`: the prompt exactly as the model will
 * see it. MESSAGES.json is an array of OpenAI-style messages, or an object
 * {"messages": [...], "tools": [...], ...} whose other members are passed
 * to the template. With --ids, the token ids (one line) instead. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/common.h"

#define CLI_MAX_JSON_DEPTH 64

enum { O_MODEL = 1, O_FILE, O_TFILE, O_NO_GEN, O_IDS };

static const ArgOpt TEMPLATE_OPTS[] = {
    CLI_OPT_MODEL(O_MODEL),
    {O_FILE, "-f|--file", "FILE", "OpenAI-style messages: [...] or {\"messages\": [...], ...}"},
    CLI_OPT_TEMPLATE(O_TFILE),
    {O_NO_GEN, "--no-generation-prompt", NULL, "do not open the assistant's turn at the end"},
    {O_IDS, "--ids", NULL, "print the token ids instead of the text"},
    {0},
};

static int cmd_template(int argc, char **argv) {
    const char *model = NULL, *file = NULL, *tfile = NULL, *v;
    bool gen_prompt = true, ids_out = false;
    Err err = {0};
    Args a = args_start(argc, argv, 1);
    for (int id; (id = cli_next(&a, &CLI_TEMPLATE, &v, &err)) != ARG_END;) {
        switch (id) {
        case ARG_ERROR: return cli_fail("template", &err);
        case ARG_HELP: cli_help(&CLI_TEMPLATE); return 0;
        case ARG_POSITIONAL:
            err_set(&err, STATUS_INVALID, "unexpected argument '%s' (the messages go after -f)", v);
            return cli_fail("template", &err);
        case O_MODEL: model = v; break;
        case O_FILE: file = v; break;
        case O_TFILE: tfile = v; break;
        case O_NO_GEN: gen_prompt = false; break;
        case O_IDS: ids_out = true; break;
        }
    }
    if (!file) {
        err_set(&err, STATUS_INVALID, "give the messages with -f MESSAGES.json");
        return cli_fail("template", &err);
    }
    if (cli_model_path(model, &model, &err)) /* no -m: the built-in model */
        return cli_fail("template", &err);
    char *src = NULL, *out = NULL;
    uint8_t *mask = NULL;
    size_t len = 0, out_len = 0, n = 0;
    int32_t *ids = NULL;
    json_t *root = NULL, *extra = NULL;
    int rc = 1;
    GGUF g = {0};
    Tokenizer *tok = NULL;
    ChatFormat *fmt = NULL;
    if (cli_read_file(file, CLI_MAX_FILE, &src, &len, &err))
        goto done;
    json_error_t je;
    root = json_loadb(src, len, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        err_set(&err, STATUS_INVALID, "%s: line %d, column %d: %s", file, je.line, je.column,
                je.text);
        goto done;
    }
    json_t *messages = root;
    if (json_is_object(root)) {
        messages = json_object_get(root, "messages");
        extra = json_deep_copy(root);
        json_object_del(extra, "messages");
    }
    if (!json_is_array(messages)) {
        err_set(&err, STATUS_INVALID, "%s: expected an array of messages or an object with "
                "\"messages\"", file);
        goto done;
    }
    free(src);
    src = NULL;
    if (tfile && cli_read_file(tfile, CLI_MAX_TEMPLATE, &src, &len, &err))
        goto done;
    if (gguf_open(&g, model, &err) || tok_load(&tok, &g, &err)) {
        err_prefix(&err, "%s", model);
        goto done;
    }
    if (!(fmt = chat_format_new(&g, tok, tfile ? src : NULL, tfile ? len : 0, &err))) {
        if (tfile)
            err_prefix(&err, "%s", tfile);
        goto done;
    }
    if (ids_out) {
        if (chat_tokenize(fmt, tok, messages, gen_prompt, extra, &ids, &n, &err))
            goto done;
        for (size_t i = 0; i < n; i++)
            printf("%s%d", i ? " " : "", ids[i]);
        putchar('\n');
    } else {
        if (chat_render(fmt, messages, gen_prompt, extra, &out, &mask, &out_len, &err))
            goto done;
        fwrite(out, 1, out_len, stdout);
    }
    rc = 0;
done:
    if (rc)
        cli_fail("template", &err);
    free(ids);
    free(out);
    free(mask);
    free(src);
    json_decref(root);
    json_decref(extra);
    chat_format_free(fmt);
    tok_free(tok);
    gguf_close(&g);
    return rc;
}

const CliCommand CLI_TEMPLATE = {
    .name = "template",
    .synopsis = "[-m MODEL] -f MESSAGES.json [--ids]",
    .summary = "the prompt the model's chat template makes of a message list",
    .opts = TEMPLATE_OPTS,
    .main = cmd_template,
};
