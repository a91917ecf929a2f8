/* cli.h - subcommand entry points. Each returns the process exit code
 * (0 ok, 1 bad input or failure) and is the only code that prints to stdout.
 * Errors are one line on stderr: "cgpt <cmd>: <message>". */
#ifndef CGPT_CLI_CLI_H
#define CGPT_CLI_CLI_H

#include "core/err.h"

int cmd_info(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_chat(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_perplexity(int argc, char **argv);
int cmd_template(int argc, char **argv);
int cmd_train(int argc, char **argv);           /* train.c: pretrain, sft; tokenizer -> */
int cmd_train_tokenizer(int argc, char **argv); /* train_tokenizer.c */
int cmd_eval(int argc, char **argv);
int cmd_serve(int argc, char **argv); /* serve.c */
int cmd_key(int argc, char **argv);   /* key.c: add, list, revoke */

/* Print "cgpt <cmd>: <err->msg>" to stderr and return 1. */
int cli_fail(const char *cmd, const Err *err);

#endif
