/* ckpt.h - training checkpoints: the trainer state file (".opt"), the model
 * GGUF, and a checkpoint directory with a 'latest' pointer and rotation.
 *
 * The state file is self-contained: `cgpt train --resume` needs nothing
 * else (config, counters, settings, parameters and both Adam moments).
 * Binary, little-endian, offsets in bytes:
 *
 *     0   8  magic "CGPTOPT1"
 *     8   4  u32 version (CKPT_VERSION)
 *    12   4  u32 flags, 0 (anything else is rejected)
 *    16  32  i32 x 8: n_vocab n_embd n_layers n_heads n_kv_heads head_dim n_ff n_ctx
 *    48   8  f32 rope_base, f32 norm_eps
 *    56   8  u64 step
 *    64   8  u64 tokens_seen
 *    72   8  u64 data_cursor
 *    80   8  u64 adam_t
 *    88   8  u64 n_params           (must equal tmodel_config_n_params(cfg))
 *    96   8  u64 settings_len       (bytes, <= CKPT_MAX_SETTINGS, no NUL inside)
 *   104      settings_len bytes of settings JSON (not NUL-terminated)
 *            f32 params[n_params], f32 m[n_params], f32 v[n_params]
 *   end-8 8  u64 checksum: 64-bit FNV-1a (offset basis 0xcbf29ce484222325,
 *            prime 0x100000001b3) over every byte before it
 * The file size must be exactly 104 + settings_len + 12 * n_params + 8.
 *
 * Loading checks, in order: size >= the fixed part, magic, version, flags,
 * the config (tmodel_config_check), n_params against the config, the
 * settings length against its limit, the exact file size (before anything is
 * allocated, so allocations are bounded by the file size), the checksum,
 * no NUL in the settings, then every param and moment finite and v >= 0.
 * Errors are STATUS_FORMAT / STATUS_LIMIT naming the file, the field, the
 * value and the limit, e.g.
 *   "ckpt 'out/ckpt-00000100.opt': n_params 164 but the config needs 165".
 *
 * Saving writes "<path>.tmp", fsync()s it, renames it over 'path' and
 * fsync()s the directory. Any failure (disk full, EFBIG, a missing
 * directory) removes the tmp file and leaves a previous file at 'path'
 * untouched.
 *
 * The checkpoint directory holds, per saved step S (8+ digits, zero padded):
 *   ckpt-SSSSSSSS.gguf  the model (ckpt_write_gguf)
 *   ckpt-SSSSSSSS.opt   the trainer state
 *   latest              one line "ckpt-SSSSSSSS\n": the newest complete pair
 *   model.gguf          a hard link to (or copy of) the latest .gguf
 * 'latest' and model.gguf are replaced atomically after both files of the
 * step are durable, so a crash at any point leaves 'latest' naming a
 * complete checkpoint.
 *
 * Not here: what the settings JSON says (the trainer owns it), the data
 * cursor's meaning (tdata.h). */
#ifndef CGPT_TRAIN_CKPT_H
#define CGPT_TRAIN_CKPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "gguf/gguf.h"
#include "train/tmodel.h"

#define CKPT_MAGIC "CGPTOPT1" /* 8 bytes, no NUL */
#define CKPT_VERSION 1u
#define CKPT_HEADER_BYTES 104u       /* the fixed part before the settings */
#define CKPT_MAX_SETTINGS (1u << 20) /* bytes of settings JSON */
#define CKPT_LATEST_MAX 256          /* bytes of the 'latest' file */
#define CKPT_PATH_MAX 4096           /* bytes of a path built here */
#define CKPT_MAX_NAME 256            /* bytes of general.name */
#define CKPT_LATEST_FILE "latest"
#define CKPT_MODEL_FILE "model.gguf"

typedef struct {
    TConfig cfg;
    uint64_t step;
    uint64_t tokens_seen;
    uint64_t data_cursor;
    char *settings_json; /* owned, NUL-terminated; NULL on save means "" */
    size_t n_params;
    float *params, *m, *v; /* owned, n_params each */
    uint64_t adam_t;
} CkptState;

/* Write 's' (borrowed) to 'path' atomically (see above). STATUS_INVALID when
 * n_params disagrees with the config or a param/moment is not finite (a
 * diverged run must not replace a good checkpoint); STATUS_IO on write
 * errors, naming the file. */
Status ckpt_state_save(const char *path, const CkptState *s, Err *err);

/* Read and validate the state file at 'path' into 's' (owned arrays; free
 * with ckpt_state_free()). On failure 's' is zeroed. */
Status ckpt_state_load(const char *path, CkptState *s, Err *err);

/* Same over n bytes in memory (borrowed; copied into 's'). Errors name the
 * file as "(memory)". */
Status ckpt_state_load_mem(const void *p, size_t n, CkptState *s, Err *err);

/* Accepts a zeroed struct. */
void ckpt_state_free(CkptState *s);

/* 64-bit FNV-1a of n bytes, continuing from 'h' (start with
 * CKPT_FNV_OFFSET). */
#define CKPT_FNV_OFFSET 0xcbf29ce484222325ull
uint64_t ckpt_fnv1a(uint64_t h, const void *p, size_t n);

/* Write the model as a llama-architecture GGUF (all F32, tied embeddings, no
 * output.weight) to 'path' atomically. Keys: general.architecture "llama",
 * general.name 'name' (borrowed; NULL: "cgpt"), general.file_type 0,
 * cgpt.train.step, llama.{context_length = n_ctx, embedding_length,
 * block_count, feed_forward_length, attention.head_count,
 * attention.head_count_kv, attention.layer_norm_rms_epsilon, rope.freq_base,
 * rope.dimension_count, attention.key_length, attention.value_length (=
 * head_dim), vocab_size}, and every "tokenizer.*" pair of 'tok' (borrowed;
 * NULL: none). 'tensors' (borrowed) names and shapes the parameter vector
 * (norm vectors, rows == 1, are written 1-D). STATUS_INVALID when tok's
 * tokenizer.ggml.tokens does not have n_vocab entries. */
Status ckpt_write_gguf(const char *path, const TConfig *cfg, const float *params,
                       const TParam *tensors, int n_tensors, const GGUF *tok, const char *name,
                       uint64_t step, Err *err);

/* Save step s->step into 'dir' (which must exist): the .gguf, the .opt, then
 * 'latest' and model.gguf, then delete the ckpt-* files of every step but
 * this one and the keep - 1 newest other steps (keep < 1: delete nothing).
 * The pair just written always stays, even when older steps exist (a resume
 * from an earlier checkpoint). Stale ckpt-*.tmp files of other steps go too.
 * Arguments as for ckpt_write_gguf / ckpt_state_save. */
Status ckpt_dir_save(const char *dir, const CkptState *s, const TParam *tensors, int n_tensors,
                     const GGUF *tok, const char *name, int keep, Err *err);

/* Path of the .opt that dir/latest names, into opt_path (cap bytes).
 * STATUS_IO when there is no 'latest' or the file it names is missing;
 * STATUS_FORMAT when 'latest' is not one "ckpt-<digits>" line; STATUS_LIMIT
 * when the path does not fit in 'cap'. */
Status ckpt_dir_latest(const char *dir, char *opt_path, size_t cap, Err *err);

#endif
