/* arch.h - the architecture table: what each supported architecture is
 * made of, and the tensor names and metadata keys llama.cpp writes for it
 * (src/llama-arch.cpp, src/llama-model.cpp).
 *
 *   arch    norm        rope  attention            ffn                    positions
 *   llama   rms         NORM  q,k,v (+opt. biases)  silu(gate)*up, down    rope (+rope_freqs)
 *   qwen2   rms         NEOX  q,k,v + biases        silu(gate)*up, down    rope
 *   qwen3   rms         NEOX  q,k,v, per-head rms   silu(gate)*up, down    rope
 *                             q_norm/k_norm before rope
 *   gpt2    layer+bias  none  fused qkv + bias,     gelu(up + b), down + b learned position_embd
 *                             output + bias
 *
 * All: pre-norm residual blocks, final output_norm, output.weight or (when
 * absent) token_embd.weight tied. Metadata keys are "<arch>.<suffix>". */
#ifndef CGPT_MODEL_ARCH_H
#define CGPT_MODEL_ARCH_H

#include <stdbool.h>
#include <stddef.h>

#include "tensor/ops.h"

typedef enum { ARCH_LLAMA, ARCH_QWEN2, ARCH_QWEN3, ARCH_GPT2, ARCH_COUNT } Arch;

typedef enum { NORM_RMS, NORM_LAYER } NormType;
typedef enum { FFN_SILU_GATED, FFN_GELU } FfnType;
/* Whether a tensor family is part of the architecture. */
typedef enum { TENSOR_ABSENT = 0, TENSOR_OPTIONAL, TENSOR_REQUIRED } TensorNeed;

typedef struct {
    Arch arch;
    const char *name; /* general.architecture value */
    RopeType rope;
    NormType norm; /* every norm in the model, with bias for NORM_LAYER */
    FfnType ffn;
    bool fused_qkv;      /* attn_qkv (rows: q, then k, then v) */
    bool learned_pos;    /* position_embd.weight */
    bool qk_norm;        /* attn_q_norm / attn_k_norm (size head_dim) */
    bool rope_freqs;     /* rope_freqs.weight may be present */
    TensorNeed qkv_bias; /* attn_q/k/v.bias or attn_qkv.bias */
    TensorNeed out_bias; /* attn_output.bias */
    TensorNeed ffn_bias; /* ffn_up/ffn_gate/ffn_down.bias */
    const char
        *eps_suffix; /* "attention.layer_norm_rms_epsilon" / "attention.layer_norm_epsilon" */
} ArchInfo;

/* The entry for a name given as (ptr, len); NULL if unsupported. */
const ArchInfo *arch_find(const char *name, size_t len);
const ArchInfo *arch_info(Arch a);
/* "llama, qwen2, qwen3, gpt2" for error messages. */
const char *arch_supported_list(void);

/* Tensor names (llama.cpp's, exactly). Per-layer ones take the layer index
 * through arch_blk_name(). */
#define TN_TOKEN_EMBD "token_embd.weight"
#define TN_POS_EMBD "position_embd.weight"
#define TN_OUTPUT_NORM "output_norm.weight"
#define TN_OUTPUT_NORM_B "output_norm.bias"
#define TN_OUTPUT "output.weight"
#define TN_ROPE_FREQS "rope_freqs.weight"

#define TN_ATTN_NORM "attn_norm.weight"
#define TN_ATTN_NORM_B "attn_norm.bias"
#define TN_ATTN_Q "attn_q.weight"
#define TN_ATTN_K "attn_k.weight"
#define TN_ATTN_V "attn_v.weight"
#define TN_ATTN_Q_B "attn_q.bias"
#define TN_ATTN_K_B "attn_k.bias"
#define TN_ATTN_V_B "attn_v.bias"
#define TN_ATTN_QKV "attn_qkv.weight"
#define TN_ATTN_QKV_B "attn_qkv.bias"
#define TN_ATTN_Q_NORM "attn_q_norm.weight"
#define TN_ATTN_K_NORM "attn_k_norm.weight"
#define TN_ATTN_OUT "attn_output.weight"
#define TN_ATTN_OUT_B "attn_output.bias"
#define TN_FFN_NORM "ffn_norm.weight"
#define TN_FFN_NORM_B "ffn_norm.bias"
#define TN_FFN_GATE "ffn_gate.weight"
#define TN_FFN_GATE_B "ffn_gate.bias"
#define TN_FFN_UP "ffn_up.weight"
#define TN_FFN_UP_B "ffn_up.bias"
#define TN_FFN_DOWN "ffn_down.weight"
#define TN_FFN_DOWN_B "ffn_down.bias"

#define ARCH_NAME_MAX 128

/* Writes "blk.<layer>.<suffix>" into buf (ARCH_NAME_MAX bytes). */
void arch_blk_name(char *buf, int layer, const char *suffix);
/* Writes "<arch>.<suffix>" into buf (ARCH_NAME_MAX bytes). */
void arch_key(char *buf, const ArchInfo *a, const char *suffix);

#endif
