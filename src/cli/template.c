/* template.c - `cgpt template -m MODEL -f MESSAGES.json [--no-generation-prompt]
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

int cmd_template(int argc, char **argv) {
    const char *model = NULL, *file = NULL, *tfile = NULL;
    bool gen_prompt = true, ids_out = false;
    Err err = {0};
    Args a = {argc, argv, 1};
    for (; a.i < argc; a.i++) {
        const char *o = argv[a.i];
        Status s = STATUS_OK;
        if (!strcmp(o, "-h") || !strcmp(o, "--help")) {
            printf("usage: cgpt template -m MODEL -f MESSAGES.json [--no-generation-prompt] "
                   "[--ids] [--chat-template-file FILE]\n");
            return 0;
        } else if (!strcmp(o, "-m") || !strcmp(o, "--model")) {
            s = args_value(&a, &model, &err);
        } else if (!strcmp(o, "-f") || !strcmp(o, "--file")) {
            s = args_value(&a, &file, &err);
        } else if (!strcmp(o, "--chat-template-file")) {
            s = args_value(&a, &tfile, &err);
        } else if (!strcmp(o, "--no-generation-prompt")) {
            gen_prompt = false;
        } else if (!strcmp(o, "--ids")) {
            ids_out = true;
        } else {
            s = err_set(&err, STATUS_INVALID, "unknown option '%s'", o);
        }
        if (s)
            return cli_fail("template", &err);
    }
    if (!model || !file) {
        err_set(&err, STATUS_INVALID, "give -m MODEL and -f MESSAGES.json");
        return cli_fail("template", &err);
    }
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
