/* common.h - what several subcommands share: loading a model with its
 * tokenizer and chat format, reading files with a size limit, and the
 * sampling flags. */
#ifndef CGPT_CLI_COMMON_H
#define CGPT_CLI_COMMON_H

#include <stdbool.h>
#include <stddef.h>

#include "chat/chat.h"
#include "cli/args.h"
#include "model/model.h"
#include "sample/sampler.h"
#include "tokenizer/tokenizer.h"

#define CLI_MAX_FILE (256u << 20)   /* bytes of a text file read whole */
#define CLI_MAX_TEMPLATE (1u << 20) /* bytes of a --chat-template-file */

/* Read the whole file (or stdin for "-") into an owned, NUL-terminated
 * buffer (free()); STATUS_LIMIT past 'max' bytes. */
Status cli_read_file(const char *path, size_t max, char **out, size_t *len, Err *err);

/* If argv[a->i] is a sampling flag (--temp --top-k --top-p --min-p
 * --repeat-penalty --repeat-last-n --presence-penalty --frequency-penalty
 * --seed), parse it into 'sp' (advancing a->i) and set *matched. */
Status cli_sampling_flag(Args *a, SamplerParams *sp, bool *matched, Err *err);
extern const char CLI_SAMPLING_HELP[];

/* The model path to use: 'given', or the built-in model when it exists;
 * otherwise STATUS_INVALID with a message that says how to pass -m. */
Status cli_model_path(const char *given, const char **out, Err *err);

/* A loaded model with its tokenizer and (optionally) chat format. */
typedef struct {
    Model *m;
    Tokenizer *tok;
    ChatFormat *fmt;
} CliModel;

/* Load; 'template_file' (may be NULL) overrides the model's chat template;
 * want_chat builds the chat format. */
Status cli_load(CliModel *cm, const char *path, const ModelParams *mp, const char *template_file,
                bool want_chat, Err *err);
void cli_unload(CliModel *cm);

/* The server's data directory: 'given' (--data-dir), else $CGPT_DATA_DIR,
 * else $HOME/.cgpt; NULL when none is set. Returns 'given', the
 * environment's string or a static buffer (not thread-safe). */
const char *cli_data_dir(const char *given);

#endif
