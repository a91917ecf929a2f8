/* main.c - the cgpt binary: dispatches to a subcommand. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

#define CGPT_VERSION "0.1.0"

static const char USAGE[] =
    "usage: cgpt <command> [options]\n"
    "\n"
    "commands:\n"
    "  serve      [-m MODEL]...                the OpenAI API on http://127.0.0.1:8080\n"
    "  key        add|list|revoke ...          the server's API keys (--data-dir DIR)\n"
    "  chat       [-m MODEL]                   chat in the terminal\n"
    "  run        [-m MODEL] -p TEXT           one-shot completion, streamed\n"
    "  tokenize   -m MODEL -p TEXT             token ids of the text\n"
    "  template   -m MODEL -f MESSAGES.json    the prompt the chat template makes\n"
    "  perplexity -m MODEL -f FILE [-c CTX]    perplexity of a text\n"
    "  info       [-m MODEL]                   describe a GGUF model\n"
    "  bench      [-m MODEL]                   prefill/decode speed vs this machine's limits\n"
    "  train      tokenizer|pretrain|sft ...   train a tokenizer, pretrain or chat-tune a GPT\n"
    "  eval       [-m MODEL] -f HELDOUT.jsonl  exact match, token F1 and perplexity on held-out data\n"
    "  quantize   IN OUT TYPE                  convert weights: F16 Q8_0 Q4_0 Q5_0 Q4_K Q6_K "
    "Q4_K_M Q5_K_M\n"
    "\n"
    "Without -m: the built-in model ($CGPT_MODEL, else models/cgpt-mini.gguf here or beside\n"
    "the binary).\n"
    "cgpt <command> --help shows the options of a command.\n";

int cli_fail(const char *cmd, const Err *err) {
    fprintf(stderr, "cgpt %s: %s\n", cmd, err->msg[0] ? err->msg : status_name(err->status));
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "cgpt: no command given (try 'cgpt --help')\n");
        return 1;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        fputs(USAGE, stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("cgpt %s\n", CGPT_VERSION);
        return 0;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "info"))
        return cmd_info(argc - 1, argv + 1);
    if (!strcmp(cmd, "run"))
        return cmd_run(argc - 1, argv + 1);
    if (!strcmp(cmd, "chat"))
        return cmd_chat(argc - 1, argv + 1);
    if (!strcmp(cmd, "tokenize"))
        return cmd_tokenize(argc - 1, argv + 1);
    if (!strcmp(cmd, "perplexity"))
        return cmd_perplexity(argc - 1, argv + 1);
    if (!strcmp(cmd, "template"))
        return cmd_template(argc - 1, argv + 1);
    if (!strcmp(cmd, "train"))
        return cmd_train(argc - 1, argv + 1);
    if (!strcmp(cmd, "serve"))
        return cmd_serve(argc - 1, argv + 1);
    if (!strcmp(cmd, "key"))
        return cmd_key(argc - 1, argv + 1);
    if (!strcmp(cmd, "eval"))
        return cmd_eval(argc - 1, argv + 1);
    if (!strcmp(cmd, "bench"))
        return cmd_bench(argc - 1, argv + 1);
    if (!strcmp(cmd, "quantize"))
        return cmd_quantize(argc - 1, argv + 1);
    fprintf(stderr, "cgpt: unknown command '%s' (try 'cgpt --help')\n", cmd);
    return 1;
}
