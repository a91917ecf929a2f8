/* preset.h - a model's recommended sampling settings, read from its GGUF
 * metadata, and the rule that combines them with what a user sets.
 *
 * A GGUF file may recommend sampling settings under llama.cpp's keys
 * (general.sampling.*, written by gguf-py from a model's
 * generation_config.json). Precedence, highest first:
 *
 *   1. what the user sets: a command-line flag, a field of an API request;
 *   2. the model file's general.sampling.* value;
 *   3. the caller's own default (the CLI: llama.cpp's, sampler_defaults();
 *      the server: the OpenAI API's, temperature 1 and no truncation).
 *
 * Keys honoured (any integer or float GGUF type; ranges as sampler_new):
 *   general.sampling.temp            -> temperature      [0, 100]
 *   general.sampling.top_k           -> top_k            [0, PRESET_MAX_TOP_K]
 *   general.sampling.top_p           -> top_p            (0, 1]
 *   general.sampling.min_p           -> min_p            [0, 1]
 *   general.sampling.penalty_repeat  -> repeat_penalty   (0, 100]
 *   general.sampling.penalty_last_n  -> penalty_last_n   [-1, SAMPLER_MAX_LAST_N]
 * general.sampling.sequence, xtc_* and mirostat* are llama.cpp samplers
 * cgpt does not have; they are ignored (cgpt info still lists them).
 *
 * What this module deliberately does not do: decide the caller's defaults
 * or parse flags; it only reads the file and applies the precedence. */
#ifndef CGPT_SAMPLE_PRESET_H
#define CGPT_SAMPLE_PRESET_H

#include <stddef.h>

#include "core/err.h"
#include "gguf/gguf.h"
#include "sample/sampler.h"

#define PRESET_MAX_TOP_K (1 << 22)
#define PRESET_MAX_TEMP 100.0
#define PRESET_MAX_REPEAT 100.0

/* One bit per SamplerParams field that a preset or a user can set. */
enum {
    PRESET_TEMP = 1u << 0,
    PRESET_TOP_K = 1u << 1,
    PRESET_TOP_P = 1u << 2,
    PRESET_MIN_P = 1u << 3,
    PRESET_REPEAT = 1u << 4,
    PRESET_LAST_N = 1u << 5,
    PRESET_PRESENCE = 1u << 6,
    PRESET_FREQUENCY = 1u << 7,
    PRESET_SEED = 1u << 8,
};

typedef struct {
    SamplerParams v; /* the values; only fields whose bit is in 'set' mean anything */
    unsigned set;    /* PRESET_* bits of the fields the file gives */
} SamplePreset;

/* Read general.sampling.* from 'g' into 'out' (zeroed first; a file without
 * the keys gives set = 0). A key of a non-numeric type or a value outside
 * its range is STATUS_FORMAT naming the key, the value and the range:
 *   "general.sampling.top_p = 7: outside (0, 1]". */
Status preset_from_gguf(const GGUF *g, SamplePreset *out, Err *err);

/* Copy into *sp every field the preset sets that the user did not
 * ('user_set' holds the PRESET_* bits of the fields the user gave). */
void preset_apply(const SamplePreset *p, unsigned user_set, SamplerParams *sp);

/* Describe the settings whose bits are in 'which' as "temp 0.3, top_k 20,
 * ..." in GGUF key order into buf (always NUL-terminated, truncated to
 * cap). Returns the length written. */
size_t preset_describe(const SamplerParams *sp, unsigned which, char *buf, size_t cap);

#endif
