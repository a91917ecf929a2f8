/* quantize.h - convert a GGUF model's weights to another type or mix.
 *
 * Schemes (as llama.cpp's llama-quantize defines them; src/llama-quant.cpp):
 *   F16, Q8_0, Q4_0, Q5_0, Q4_K, Q6_K - every quantizable matrix gets the type,
 *       except output.weight (or token_embd when the output is tied), which
 *       gets Q6_K for the 4/5/6-bit types (Q8_0 stays Q8_0);
 *   Q4_K_M - Q4_K, with attn_v / attn_qkv and ffn_down of the "more bits"
 *       layers (first and last eighth, and every third in between) in Q6_K,
 *       output in Q6_K;
 *   Q5_K_M - the same with Q5_K as the base.
 * Quantizable: tensors of 2+ dims whose name ends in "weight", not norms
 * ("_norm.weight") and not position_embd. A row length not divisible by the
 * target's block size falls back as llama.cpp does: Q4_K->Q5_0, Q5_K->Q5_1,
 * Q6_K->Q8_0, and F16 when even 32 does not divide it (output: Q8_0).
 * With 'pure' set, no mix and no output rule: every quantizable matrix gets
 * the base type (fallbacks still apply).
 *
 * Metadata is copied; general.file_type and general.quantization_version are
 * set. The output is written atomically (temp file + rename). */
#ifndef CGPT_MODEL_QUANTIZE_H
#define CGPT_MODEL_QUANTIZE_H

#include <stdbool.h>

#include "core/err.h"
#include "tensor/dtype.h"

typedef struct {
    int n_threads; /* 0: all CPUs */
    bool pure;
    /* Called once per tensor, in file order, before it is converted
     * (may be NULL). */
    void (*on_tensor)(void *ctx, int i, int n, const char *name, DType from, DType to);
    void *ctx;
} QuantizeOpts;

/* Scheme names accepted, space-separated, for help texts. */
#define QUANTIZE_SCHEMES "F16 Q8_0 Q4_0 Q5_0 Q4_K Q6_K Q4_K_M Q5_K_M"

/* Convert 'in' to 'out' with the named scheme (case-insensitive). Errors:
 * unknown scheme (STATUS_INVALID), unreadable/invalid input, a source type
 * without kernels (STATUS_UNSUPPORTED), I/O. */
Status quantize_file(const char *in, const char *out, const char *scheme, const QuantizeOpts *opts,
                     Err *err);

#endif
