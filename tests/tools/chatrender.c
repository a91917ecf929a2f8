/* chatrender - render a chat template over a message file, for the
 * conformance harness tests/chat/test_chat_templates.py.
 *
 *   chatrender (--template FILE | --builtin chatml|llama3|llama2) --messages FILE
 *              [--tools FILE] [--extra FILE] [--no-generation-prompt]
 *              [--bos TEXT] [--eos TEXT] [--mask]
 *
 * Prints the rendered prompt exactly (no trailing newline added); with
 * --mask, prints instead one line per output byte run: "T <n>" / "D <n>"
 * (template text / data). --extra is a JSON object of extra variables
 * (date_string, documents, ...); --tools a JSON array that becomes `tools`.
 * On failure prints "chatrender: <message>" on stderr and exits 1. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat/chat.h"

static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap + 1);
    for (;;) {
        if (!buf) {
            fclose(f);
            return NULL;
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (n < cap)
            break;
        cap *= 2;
        char *nb = realloc(buf, cap + 1);
        if (!nb)
            free(buf);
        buf = nb;
    }
    fclose(f);
    buf[n] = 0;
    *len = n;
    return buf;
}

static json_t *load_json(const char *path) {
    json_error_t je;
    json_t *v = json_load_file(path, JSON_DECODE_ANY, &je);
    if (!v)
        fprintf(stderr, "chatrender: %s:%d: %s\n", path, je.line, je.text);
    return v;
}

static int usage(void) {
    fprintf(stderr, "usage: chatrender (--template FILE | --builtin chatml|llama3|llama2) "
                    "--messages FILE [--tools FILE] [--extra FILE] [--no-generation-prompt] "
                    "[--bos TEXT] [--eos TEXT] [--mask]\n");
    return 2;
}

int main(int argc, char **argv) {
    const char *tpath = NULL, *builtin = NULL, *mpath = NULL, *tools_path = NULL,
               *extra_path = NULL, *bos = "", *eos = "";
    bool agp = true, want_mask = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--no-generation-prompt")) {
            agp = false;
            continue;
        }
        if (!strcmp(a, "--mask")) {
            want_mask = true;
            continue;
        }
        if (!v)
            return usage();
        if (!strcmp(a, "--template"))
            tpath = v;
        else if (!strcmp(a, "--builtin"))
            builtin = v;
        else if (!strcmp(a, "--messages"))
            mpath = v;
        else if (!strcmp(a, "--tools"))
            tools_path = v;
        else if (!strcmp(a, "--extra"))
            extra_path = v;
        else if (!strcmp(a, "--bos"))
            bos = v;
        else if (!strcmp(a, "--eos"))
            eos = v;
        else
            return usage();
        i++;
    }
    if ((!tpath && !builtin) || !mpath)
        return usage();

    Err err = {0};
    ChatFormat *f = NULL;
    if (tpath) {
        size_t len = 0;
        char *src = read_file(tpath, &len);
        if (!src) {
            fprintf(stderr, "chatrender: cannot read %s\n", tpath);
            return 1;
        }
        f = chat_format_from_source(src, len, bos, eos, &err);
        free(src);
    } else {
        ChatBuiltin b = !strcmp(builtin, "chatml")   ? CHAT_CHATML
                        : !strcmp(builtin, "llama3") ? CHAT_LLAMA3
                        : !strcmp(builtin, "llama2") ? CHAT_LLAMA2
                                                     : CHAT_BUILTIN_NONE;
        f = chat_format_from_builtin(b, bos, eos, &err);
    }
    if (!f) {
        fprintf(stderr, "chatrender: %s\n", err.msg);
        return 1;
    }
    json_t *messages = load_json(mpath);
    json_t *extra = extra_path ? load_json(extra_path) : NULL;
    if (!messages || (extra_path && !extra)) {
        chat_format_free(f);
        return 1;
    }
    if (tools_path) {
        json_t *tools = load_json(tools_path);
        if (!tools)
            return 1;
        if (!extra)
            extra = json_object();
        json_object_set_new(extra, "tools", tools);
    }

    char *out = NULL;
    uint8_t *mask = NULL;
    size_t len = 0;
    Status st = chat_render(f, messages, agp, extra, &out, &mask, &len, &err);
    int rc = 0;
    if (st != STATUS_OK) {
        fprintf(stderr, "chatrender: %s\n", err.msg);
        rc = 1;
    } else if (want_mask) {
        size_t i = 0;
        while (i < len) {
            size_t j = i;
            while (j < len && mask[j] == mask[i])
                j++;
            printf("%c %zu\n", mask[i] ? 'T' : 'D', j - i);
            i = j;
        }
    } else if (fwrite(out, 1, len, stdout) != len) {
        rc = 1;
    }
    free(out);
    free(mask);
    json_decref(messages);
    json_decref(extra);
    chat_format_free(f);
    return rc;
}
