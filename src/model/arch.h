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
 *   gemma2  rms, post   NEOX  q,k,v; score cap  gelu(gate)*up, down   rope; embd*sqrt(C)
 *                             window: even layers                        final logit cap
 *   gemma3  rms, post   NEOX  q,k,v, q/k norm;  gelu(gate)*up, down   rope; sliding layers:
 *                             window: 5 of 6                             base 1e4, no scale
 *   phi3    rms         NEOX  fused or split;   silu(up[:F])*up[F:]   rope; LongRoPE long
 *                             window: all       (up has 2F rows)         or short by n_ctx
 *   qwen2moe  as qwen2, the FFN a mixture of experts plus a gated shared expert
 *   qwen3moe  as qwen3, the FFN a mixture of experts
 *   llama with <arch>.expert_count: the FFN a mixture of experts (Mixtral)
 *   gpt-oss rms         NEOX  q,k,v,o + biases, experts + biases,    rope, YaRN scaling
 *                             sinks; window:    clamped swiglu,
 *                             even layers       softmax of the top-k
 *           (its FFN pre-norm is named post_attention_norm)
 *   bert    layer+bias  none  q,k,v + biases,      gelu_erf(up + b),      learned position_embd
 *                             bidirectional        down + b
 *   nomic-bert layer+bias NEOX fused qkv,          silu(gate)*up, down    rope
 *                             bidirectional
 *     encoders: x = token_embd + token_types[0] (+ position_embd), LayerNorm
 *     token_embd_norm; per layer x = LN(x + attn(x), attn_output_norm),
 *     x = LN(x + ffn(x), layer_output_norm) (post-norm); no output_norm or
 *     output: the last layer's rows are pooled (pooling_type) into embeddings.
 *
 * "post": the attention and FFN outputs are normed again (post_attention_norm,
 * post_ffw_norm) before they join the residual. A mixture of experts: router
 * logits x.Wgate_inp^T (n_expert), softmax, the top expert_used_count
 * experts (renormalised to sum 1 where the model does), each expert a
 * silu-gated FFN of expert_feed_forward_length stored as one slice of the
 * 3-D tensors ffn_gate_exps / ffn_up_exps / ffn_down_exps.
 *
 * All: pre-norm residual blocks, final output_norm, output.weight or (when
 * absent) token_embd.weight tied. Metadata keys are "<arch>.<suffix>". */
#ifndef CGPT_MODEL_ARCH_H
#define CGPT_MODEL_ARCH_H

#include <stdbool.h>
#include <stddef.h>

#include "tensor/ops.h"

typedef enum {
    ARCH_LLAMA,
    ARCH_QWEN2,
    ARCH_QWEN3,
    ARCH_GPT2,
    ARCH_GEMMA2,
    ARCH_GEMMA3,
    ARCH_PHI3,
    ARCH_QWEN2MOE,
    ARCH_QWEN3MOE,
    ARCH_GPTOSS,
    ARCH_BERT,
    ARCH_NOMIC_BERT,
    ARCH_COUNT
} Arch;

typedef enum { NORM_RMS, NORM_LAYER } NormType;
typedef enum {
    FFN_SILU_GATED, /* silu(gate) * up */
    FFN_GELU,       /* gelu(up) */
    FFN_GELU_GATED, /* gelu(gate) * up (gemma) */
    FFN_SILU_FUSED, /* ffn_up holds gate then up (2 F rows): silu(gate) * up (phi3) */
    FFN_GELU_ERF,   /* gelu(up + b) with the exact erf GELU (bert) */
} FfnType;
/* Whether a tensor family is part of the architecture. */
typedef enum { TENSOR_ABSENT = 0, TENSOR_OPTIONAL, TENSOR_REQUIRED } TensorNeed;
typedef enum {
    QKV_SPLIT, /* attn_q, attn_k, attn_v */
    QKV_FUSED, /* attn_qkv */
    QKV_EITHER /* attn_qkv where the file has it, else the three (phi3) */
} QkvLayout;

typedef struct {
    Arch arch;
    const char *name; /* general.architecture value */
    RopeType rope;
    NormType norm; /* every norm in the model, with bias for NORM_LAYER */
    FfnType ffn;
    QkvLayout qkv;       /* attn_qkv rows: q, then k, then v */
    bool learned_pos;    /* position_embd.weight */
    bool qk_norm;        /* attn_q_norm / attn_k_norm (size head_dim) */
    bool rope_freqs;     /* rope_freqs.weight may be present */
    TensorNeed qkv_bias; /* attn_q/k/v.bias or attn_qkv.bias */
    TensorNeed out_bias; /* attn_output.bias */
    TensorNeed ffn_bias; /* ffn_up/ffn_gate/ffn_down.bias */
    const char
        *eps_suffix;      /* "attention.layer_norm_rms_epsilon" / "attention.layer_norm_epsilon" */
    bool embd_scale;      /* token embeddings times sqrt(n_embd) (gemma) */
    bool post_norms;      /* post_attention_norm, post_ffw_norm */
    bool softcap;         /* attn_logit_softcapping / final_logit_softcapping (defaults 50, 30) */
    int swa_period;       /* attention.sliding_window applies to: 0 no layer; 1 every layer;
                             n > 1 every layer but each n-th (il % n == n - 1 is global) */
    bool rope_local;      /* sliding layers use rope base 10000 without scaling (gemma3) */
    bool rope_longshort;  /* rope_factors_long / _short may be present (phi3) */
    TensorNeed moe;       /* expert_count and the expert tensors (OPTIONAL: when the key is set) */
    bool moe_norm_topk;   /* the chosen experts' weights renormalised to sum 1 */
    bool moe_shared;      /* a shared expert gated by sigmoid(x . ffn_gate_inp_shexp) */
    int big_layers;       /* layer count of the model whose query scale is 1/sqrt(n_embd/n_head)
                             (gemma's 27B; llama.cpp's rule); 0: none */
    const char *ffn_norm; /* the FFN pre-norm's tensor suffix; NULL: TN_FFN_NORM */
    bool sinks;           /* attn_sinks: one logit per head in the softmax's denominator */
    bool rope_yarn;       /* rope.scaling.type "yarn" is understood */
    /* gpt-oss's experts: router and expert biases, the top-k chosen on the
     * logits and weighted by the softmax of those k, clamped swiglu */
    bool moe_oai;
    /* an encoder (bert, nomic-bert): bidirectional attention over one
     * sequence, post-norm residuals, no output head; embeddings only
     * (model_embed), model_forward refuses it */
    bool encoder;
} ArchInfo;

/* The entry for a name given as (ptr, len); NULL if unsupported. */
const ArchInfo *arch_find(const char *name, size_t len);
const ArchInfo *arch_info(Arch a);
/* "llama, qwen2, ..." for error messages. */
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
#define TN_ATTN_POST_NORM "post_attention_norm.weight"
#define TN_FFN_POST_NORM "post_ffw_norm.weight"
#define TN_ROPE_LONG "rope_factors_long.weight"
#define TN_ROPE_SHORT "rope_factors_short.weight"
#define TN_FFN_GATE_INP "ffn_gate_inp.weight"
#define TN_FFN_GATE_EXPS "ffn_gate_exps.weight"
#define TN_FFN_UP_EXPS "ffn_up_exps.weight"
#define TN_FFN_DOWN_EXPS "ffn_down_exps.weight"
#define TN_FFN_GATE_INP_SHEXP "ffn_gate_inp_shexp.weight"
#define TN_FFN_GATE_SHEXP "ffn_gate_shexp.weight"
#define TN_FFN_UP_SHEXP "ffn_up_shexp.weight"
#define TN_FFN_DOWN_SHEXP "ffn_down_shexp.weight"
#define TN_FFN_GATE_INP_B "ffn_gate_inp.bias"
#define TN_FFN_GATE_EXPS_B "ffn_gate_exps.bias"
#define TN_FFN_UP_EXPS_B "ffn_up_exps.bias"
#define TN_FFN_DOWN_EXPS_B "ffn_down_exps.bias"
#define TN_ATTN_SINKS "attn_sinks.weight"
/* encoders (bert, nomic-bert) */
#define TN_TOKEN_TYPES "token_types.weight"
#define TN_TOKEN_EMBD_NORM "token_embd_norm.weight"
#define TN_TOKEN_EMBD_NORM_B "token_embd_norm.bias"
#define TN_ATTN_OUT_NORM "attn_output_norm.weight"
#define TN_ATTN_OUT_NORM_B "attn_output_norm.bias"
#define TN_LAYER_OUT_NORM "layer_output_norm.weight"
#define TN_LAYER_OUT_NORM_B "layer_output_norm.bias"

#define ARCH_NAME_MAX 128

/* Writes "blk.<layer>.<suffix>" into buf (ARCH_NAME_MAX bytes). */
void arch_blk_name(char *buf, int layer, const char *suffix);
/* Writes "<arch>.<suffix>" into buf (ARCH_NAME_MAX bytes). */
void arch_key(char *buf, const ArchInfo *a, const char *suffix);

#endif
