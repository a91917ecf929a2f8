/* common.h - what several subcommands share: loading a model with its
 * tokenizer, chat format and recommended sampling, reading files with a
 * size limit, the -m default and the sampling options. */
#ifndef CGPT_CLI_COMMON_H
#define CGPT_CLI_COMMON_H

#include <stdbool.h>
#include <stddef.h>

#include "chat/chat.h"
#include "cli/args.h"
#include "cli/cli.h"
#include "model/model.h"
#include "safety/moderate.h"
#include "sample/preset.h"
#include "sample/sampler.h"
#include "tokenizer/tokenizer.h"

#define CLI_MAX_FILE (256u << 20)   /* bytes of a text file read whole */
#define CLI_MAX_TEMPLATE (1u << 20) /* bytes of a --chat-template-file */
#define CLI_MAX_THREADS 256

/* Table entries several commands share, so they read the same everywhere. */
#define CLI_OPT_MODEL(id)                                                                          \
    { id, "-m|--model", "MODEL", "the GGUF model (default: the built-in model)" }
#define CLI_OPT_THREADS(id)                                                                        \
    { id, "-t|--threads", "N", "compute threads (default: all CPUs)" }
#define CLI_OPT_KV_TYPE(id)                                                                        \
    {                                                                                              \
        id, "--kv-type", "TYPE",                                                                   \
            "the KV cache's elements: f16 (the default: half the memory and the bytes attention "  \
            "reads of f32), q8_0 (a quarter; head_dim a multiple of 32) or f32 (exact)"            \
    }
/* What the commands' caches hold unless --kv-type says otherwise (the
 * library's own default, ModelParams.kv_type = 0, stays the exact F32). */
#define CLI_KV_DEFAULT KV_F16
#define CLI_OPT_TEMPLATE(id)                                                                       \
    { id, "--chat-template-file", "FILE", "a Jinja chat template to use instead of the model's" }

/* Moderation, for serve, chat and moderate. */
#define CLI_OPT_POLICY(id)                                                                         \
    { id, "--policy", "FILE", "the moderation policy (default: the shipped one, docs/SAFETY.md)" }
#define CLI_OPT_MOD_MODEL(id)                                                                      \
    {                                                                                              \
        id, "--moderation-model", "GGUF",                                                          \
            "classify with a Llama Guard 3 model instead of the built-in classifier ('lexicon': "  \
            "the built-in one without its trained model)"                                          \
    }
#define CLI_OPT_MOD_LEXICON(id)                                                                    \
    { id, "--moderation-lexicon", "FILE", "more patterns for the built-in classifier (docs/SAFETY.md)" }
#define CLI_OPT_NO_MODERATION(id)                                                                  \
    { id, "--no-moderation", NULL, "check nothing (no refusals, no audit)" }

/* The moderator the options ask for: the policy from 'policy' (NULL: the
 * shipped one) over the built-in classifier (its lexicon with the lines of
 * 'lexicon' added, may be NULL; paired on input checks with the trained
 * classifier CLI_GUARD_MODEL where that file is, unless 'guard_model' is
 * "lexicon"), or over the guard model at 'guard_model'. Owned, mod_free(). */
#define CLI_GUARD_MODEL "models/cgpt-guard.gguf"
/* What `cgpt serve` with the built-in model suggests pulling (hf.co/...):
 * a 1.5B instruct model, Apache-2.0, about 1.1 GB at Q4_K_M. */
#define CLI_SUGGESTED_MODEL "hf.co/Qwen/Qwen2.5-1.5B-Instruct-GGUF:Q4_K_M"
#define CLI_GUARD_WEIGHT 0.55f /* its evidence's weight (docs/SAFETY.md: how it was chosen) */
typedef struct {
    const char *policy, *lexicon, *guard_model;
} CliModeration;
Status cli_moderator(const CliModeration *o, Moderator **out, Err *err);
/* The trained classifier cli_moderator pairs with the lexicon for 'o', or
 * NULL (a guard model given, "lexicon", or no CLI_GUARD_MODEL file). */
const char *cli_trained_guard(const CliModeration *o);

/* Read the whole file (or stdin for "-") into an owned, NUL-terminated
 * buffer (free()); STATUS_LIMIT past 'max' bytes. */
Status cli_read_file(const char *path, size_t max, char **out, size_t *len, Err *err);

/* The sampling options (--temp --top-k --top-p --min-p --repeat-penalty
 * --repeat-last-n --presence-penalty --frequency-penalty --seed) that chat,
 * run and eval accept. Their ids are CLI_SAMPLING_ID + a PRESET_* bit. */
#define CLI_SAMPLING_ID 0x10000
extern const ArgOpt CLI_SAMPLING_OPTS[];

/* cli_next() for a command that takes the sampling options: those are
 * parsed into 'sp' (their PRESET_* bits added to *user_set) and skipped;
 * everything else is returned as cli_next() returns it. A bad sampling
 * value is ARG_ERROR. */
int cli_next_sampling(Args *a, const CliCommand *cmd, SamplerParams *sp, unsigned *user_set,
                      const char **val, Err *err);

/* The model path to use: 'given' (-m), else $CGPT_MODEL, else the built-in
 * model when it exists; otherwise STATUS_INVALID with a message that says
 * how to pass -m. cli_load() names $CGPT_MODEL in its errors when the path
 * came from there. */
Status cli_model_path(const char *given, const char **out, Err *err);

/* A --kv-type value: "f32", "f16" or "q8_0" (case-insensitive). */
Status cli_kv_type(const char *opt, const char *v, KVType *out, Err *err);
/* Its name: "f32", "f16" or "q8_0". */
const char *cli_kv_name(KVType t);

/* The built-in model's file (models/cgpt-mini.gguf under the current
 * directory, else beside the binary), in a static buffer; NULL when
 * neither is there. */
const char *cli_builtin_model(void);

/* A loaded model with its tokenizer and (optionally) chat format. */
typedef struct {
    Model *m;
    Tokenizer *tok;
    ChatFormat *fmt;
    SamplePreset preset; /* the file's general.sampling.* (sample/preset.h) */
} CliModel;

/* Sampling for a command: 'sp' holds the command's defaults overwritten
 * by the user's flags ('user_set' bits); the model's recommendations fill
 * the fields the user did not set (sample/preset.h has the precedence). */
void cli_sampling_resolve(const CliModel *cm, unsigned user_set, SamplerParams *sp);

/* Load; 'template_file' (may be NULL) overrides the model's chat template;
 * want_chat builds the chat format. Errors name the file (and $CGPT_MODEL
 * when the path came from it). */
Status cli_load(CliModel *cm, const char *path, const ModelParams *mp, const char *template_file,
                bool want_chat, Err *err);
void cli_unload(CliModel *cm);

/* The server's data directory: 'given' (--data-dir), else $CGPT_DATA_DIR,
 * else $HOME/.cgpt; NULL when none is set. Returns 'given', the
 * environment's string or a static buffer (not thread-safe). */
const char *cli_data_dir(const char *given);

#endif
