/* tokenize.c - `cgpt tokenize [-m MODEL] (-p TEXT | -f FILE) [--bos] [--special] [--pieces]`.
 *
 * Prints the ids of exactly that text as one line, space-separated: no BOS
 * or EOS unless --bos, special-token strings are plain text unless
 * --special. --pieces prints one token a line instead: the id, a tab and the
 * token's decoded bytes (escaped). Works on vocabulary-only GGUF files: only
 * the tokenizer metadata is read. This output is a contract for conformance
 * checks: keep it stable. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/common.h"

static void print_escaped(const char *s, int n) {
    for (int i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\\')
            fputs("\\\\", stdout);
        else if (c == '\n')
            fputs("\\n", stdout);
        else if (c == '\t')
            fputs("\\t", stdout);
        else if (c == '\r')
            fputs("\\r", stdout);
        else if (c < 0x20 || c == 0x7f)
            printf("\\x%02x", c);
        else
            putchar(c);
    }
}

enum { O_MODEL = 1, O_PROMPT, O_FILE, O_BOS, O_SPECIAL, O_PIECES };

static const ArgOpt TOKENIZE_OPTS[] = {
    CLI_OPT_MODEL(O_MODEL),
    {O_PROMPT, "-p|--prompt", "TEXT", "the text"},
    {O_FILE, "-f|--file", "FILE", "read the text from FILE ('-': stdin)"},
    {O_BOS, "--bos", NULL, "add BOS (and EOS) as the model does"},
    {O_SPECIAL, "--special", NULL, "parse special-token strings such as <|im_end|>"},
    {O_PIECES, "--pieces", NULL, "one token a line: id, a tab and its bytes, escaped"},
    {0},
};

static int cmd_tokenize(int argc, char **argv) {
    const char *model = NULL, *text = NULL, *file = NULL, *v;
    bool bos = false, special = false, pieces = false;
    Err err = {0};
    Args a = args_start(argc, argv, 1);
    for (int id; (id = cli_next(&a, &CLI_TOKENIZE, &v, &err)) != ARG_END;) {
        switch (id) {
        case ARG_ERROR: return cli_fail("tokenize", &err);
        case ARG_HELP: cli_help(&CLI_TOKENIZE); return 0;
        case ARG_POSITIONAL:
            err_set(&err, STATUS_INVALID, "unexpected argument '%s' (the text goes after -p)", v);
            return cli_fail("tokenize", &err);
        case O_MODEL: model = v; break;
        case O_PROMPT: text = v; break;
        case O_FILE: file = v; break;
        case O_BOS: bos = true; break;
        case O_SPECIAL: special = true; break;
        case O_PIECES: pieces = true; break;
        }
    }
    if (!text == !file) {
        err_set(&err, STATUS_INVALID, "give one of -p TEXT or -f FILE");
        return cli_fail("tokenize", &err);
    }
    if (cli_model_path(model, &model, &err)) /* no -m: the built-in model */
        return cli_fail("tokenize", &err);
    char *buf = NULL;
    size_t len = 0;
    if (file) {
        if (cli_read_file(file, CLI_MAX_FILE, &buf, &len, &err))
            return cli_fail("tokenize", &err);
    } else {
        len = strlen(text);
    }
    GGUF g = {0};
    Tokenizer *tok = NULL;
    int32_t *ids = NULL;
    size_t n = 0;
    int rc = 1;
    if (gguf_open(&g, model, &err)) {
        err_prefix(&err, "%s", model);
        goto done;
    }
    if (tok_load(&tok, &g, &err)) {
        err_prefix(&err, "%s", model);
        goto done;
    }
    ids = malloc(sizeof(int32_t) * (len + 3));
    if (!ids) {
        err_set(&err, STATUS_NOMEM, "out of memory for %zu bytes of text", len);
        goto done;
    }
    TokEncodeOpts eo = {.add_bos = bos, .parse_special = special};
    if (tok_encode(tok, file ? buf : text, len, &eo, ids, len + 3, &n, &err))
        goto done;
    if (pieces) {
        for (size_t i = 0; i < n; i++) {
            size_t k;
            const char *piece = tok_piece(tok, ids[i], true, &k);
            printf("%d\t", ids[i]);
            print_escaped(piece, (int)k);
            putchar('\n');
        }
    } else {
        for (size_t i = 0; i < n; i++)
            printf("%s%d", i ? " " : "", ids[i]);
        putchar('\n');
    }
    rc = 0;
done:
    if (rc)
        cli_fail("tokenize", &err);
    free(ids);
    free(buf);
    tok_free(tok);
    gguf_close(&g);
    return rc;
}

const CliCommand CLI_TOKENIZE = {
    .name = "tokenize",
    .synopsis = "[-m MODEL] (-p TEXT | -f FILE) [--pieces]",
    .summary = "token ids of exactly that text, one line (works on vocabulary-only files)",
    .opts = TOKENIZE_OPTS,
    .main = cmd_tokenize,
};
