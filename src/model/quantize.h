/* quantize.h - convert a GGUF model's weights to another type or mix.
 *
 * Schemes (as llama.cpp's llama-quantize defines them; src/llama-quant.cpp):
 *   F16, Q8_0, Q4_0, Q5_0, Q4_K, Q6_K - every quantizable matrix gets the type,
 *       except output.weight (or token_embd when the output is tied), which
 *       gets Q6_K for the quantized types (Q8_0 stays Q8_0; Q8_0 too when the
 *       base's block does not divide the row);
 *   Q4_K_M - Q4_K, with attn_v / attn_qkv and ffn_down of the "more bits"
 *       layers (first and last eighth, and every third in between) in Q6_K;
 *   Q5_K_M - the same with Q5_K as the base;
 *   Q2_K - Q2_K; attn_v in Q4_K when n_head / n_head_kv >= 4 else Q3_K,
 *       ffn_down and attn_output in Q3_K;
 *   Q3_K_S - Q3_K everywhere;
 *   Q3_K_M - Q3_K; attn_v of the first two layers Q5_K, the rest Q4_K;
 *       ffn_down of the first sixteenth of layers Q5_K, the rest Q4_K;
 *       attn_output Q4_K;
 *   Q3_K_L - Q3_K; attn_v, ffn_down and attn_output Q5_K;
 *   IQ4_NL, IQ4_XS - the type; attn_v in Q5_K when n_head / n_head_kv >= 4,
 *       ffn_down of the first eighth of layers Q5_K (llama.cpp without an
 *       imatrix).
 * llama.cpp's rules for Falcon, 70B models and 8-expert MoE are not applied.
 * Quantizable: tensors of 2+ dims whose name ends in "weight", not norms
 * ("_norm.weight") and not position_embd. A row length not divisible by the
 * target's block size falls back as llama.cpp does: Q2_K/Q3_K->Q4_0,
 * Q4_K->Q5_0, Q5_K->Q5_1, Q6_K->Q8_0, IQ4_XS->IQ4_NL, and F16 when even 32
 * does not divide it. With 'pure' set, no mix and no output rule: every
 * quantizable matrix gets the base type (fallbacks still apply).
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
#define QUANTIZE_SCHEMES                                                                           \
    "F16 Q8_0 Q4_0 Q5_0 Q4_K Q6_K Q4_K_M Q5_K_M Q2_K Q3_K_S Q3_K_M Q3_K_L IQ4_NL IQ4_XS"

/* Convert 'in' to 'out' with the named scheme (case-insensitive). Errors:
 * unknown scheme (STATUS_INVALID), unreadable/invalid input, a source type
 * without kernels (STATUS_UNSUPPORTED), I/O. */
Status quantize_file(const char *in, const char *out, const char *scheme, const QuantizeOpts *opts,
                     Err *err);

#endif
