/* arch.c - the table behind arch.h. Facts from llama.cpp's llama-arch.cpp
 * and llama-model.cpp (LLM_ARCH_LLAMA, QWEN2, QWEN3, GPT2, GEMMA2,
 * GEMMA3, PHI3, QWEN2MOE, QWEN3MOE, BERT, NOMIC_BERT). */
#include "model/arch.h"

#include <stdio.h>
#include <string.h>

#include "core/err.h"

#define RMS_EPS "attention.layer_norm_rms_epsilon"

static const ArchInfo ARCHS[ARCH_COUNT] = {
    [ARCH_LLAMA] = {.arch = ARCH_LLAMA,
                    .name = "llama",
                    .rope = ROPE_NORM,
                    .norm = NORM_RMS,
                    .ffn = FFN_SILU_GATED,
                    .qkv = QKV_SPLIT,
                    .rope_freqs = true,
                    .qkv_bias = TENSOR_OPTIONAL,
                    .out_bias = TENSOR_OPTIONAL,
                    .ffn_bias = TENSOR_OPTIONAL,
                    .eps_suffix = RMS_EPS,
                    .moe = TENSOR_OPTIONAL,
                    .moe_norm_topk = true},
    [ARCH_QWEN2] = {.arch = ARCH_QWEN2,
                    .name = "qwen2",
                    .rope = ROPE_NEOX,
                    .norm = NORM_RMS,
                    .ffn = FFN_SILU_GATED,
                    .qkv = QKV_SPLIT,
                    .qkv_bias = TENSOR_REQUIRED,
                    .eps_suffix = RMS_EPS},
    [ARCH_QWEN3] = {.arch = ARCH_QWEN3,
                    .name = "qwen3",
                    .rope = ROPE_NEOX,
                    .norm = NORM_RMS,
                    .ffn = FFN_SILU_GATED,
                    .qkv = QKV_SPLIT,
                    .qk_norm = true,
                    .eps_suffix = RMS_EPS},
    [ARCH_GPT2] = {.arch = ARCH_GPT2,
                   .name = "gpt2",
                   .rope = ROPE_NONE,
                   .norm = NORM_LAYER,
                   .ffn = FFN_GELU,
                   .qkv = QKV_FUSED,
                   .learned_pos = true,
                   .qkv_bias = TENSOR_REQUIRED,
                   .out_bias = TENSOR_REQUIRED,
                   .ffn_bias = TENSOR_REQUIRED,
                   .eps_suffix = "attention.layer_norm_epsilon"},
    [ARCH_GEMMA2] = {.arch = ARCH_GEMMA2,
                     .name = "gemma2",
                     .rope = ROPE_NEOX,
                     .norm = NORM_RMS,
                     .ffn = FFN_GELU_GATED,
                     .qkv = QKV_SPLIT,
                     .eps_suffix = RMS_EPS,
                     .embd_scale = true,
                     .post_norms = true,
                     .softcap = true,
                     .swa_period = 2,
                     .big_layers = 46},
    [ARCH_GEMMA3] = {.arch = ARCH_GEMMA3,
                     .name = "gemma3",
                     .rope = ROPE_NEOX,
                     .norm = NORM_RMS,
                     .ffn = FFN_GELU_GATED,
                     .qkv = QKV_SPLIT,
                     .qk_norm = true,
                     .eps_suffix = RMS_EPS,
                     .embd_scale = true,
                     .post_norms = true,
                     .swa_period = 6,
                     .rope_local = true,
                     .big_layers = 62},
    [ARCH_PHI3] = {.arch = ARCH_PHI3,
                   .name = "phi3",
                   .rope = ROPE_NEOX,
                   .norm = NORM_RMS,
                   .ffn = FFN_SILU_FUSED,
                   .qkv = QKV_EITHER,
                   .eps_suffix = RMS_EPS,
                   .swa_period = 1,
                   .rope_longshort = true},
    [ARCH_QWEN2MOE] = {.arch = ARCH_QWEN2MOE,
                       .name = "qwen2moe",
                       .rope = ROPE_NEOX,
                       .norm = NORM_RMS,
                       .ffn = FFN_SILU_GATED,
                       .qkv = QKV_SPLIT,
                       .qkv_bias = TENSOR_REQUIRED,
                       .eps_suffix = RMS_EPS,
                       .moe = TENSOR_REQUIRED,
                       .moe_shared = true},
    [ARCH_QWEN3MOE] = {.arch = ARCH_QWEN3MOE,
                       .name = "qwen3moe",
                       .rope = ROPE_NEOX,
                       .norm = NORM_RMS,
                       .ffn = FFN_SILU_GATED,
                       .qkv = QKV_SPLIT,
                       .qk_norm = true,
                       .eps_suffix = RMS_EPS,
                       .moe = TENSOR_REQUIRED,
                       .moe_norm_topk = true},
    [ARCH_GPTOSS] = {.arch = ARCH_GPTOSS,
                     .name = "gpt-oss",
                     .rope = ROPE_NEOX,
                     .norm = NORM_RMS,
                     .ffn = FFN_SILU_GATED,
                     .qkv = QKV_SPLIT,
                     .qkv_bias = TENSOR_REQUIRED,
                     .out_bias = TENSOR_REQUIRED,
                     .eps_suffix = RMS_EPS,
                     .swa_period = 2,
                     .moe = TENSOR_REQUIRED,
                     .ffn_norm = TN_ATTN_POST_NORM,
                     .sinks = true,
                     .rope_yarn = true,
                     .moe_oai = true},
    [ARCH_BERT] = {.arch = ARCH_BERT,
                   .name = "bert",
                   .rope = ROPE_NONE,
                   .norm = NORM_LAYER,
                   .ffn = FFN_GELU_ERF,
                   .qkv = QKV_EITHER,
                   .learned_pos = true,
                   .qkv_bias = TENSOR_OPTIONAL,
                   .out_bias = TENSOR_OPTIONAL,
                   .ffn_bias = TENSOR_OPTIONAL,
                   .eps_suffix = "attention.layer_norm_epsilon",
                   .encoder = true},
    [ARCH_NOMIC_BERT] = {.arch = ARCH_NOMIC_BERT,
                         .name = "nomic-bert",
                         .rope = ROPE_NEOX,
                         .norm = NORM_LAYER,
                         .ffn = FFN_SILU_GATED,
                         .qkv = QKV_EITHER,
                         .qkv_bias = TENSOR_OPTIONAL,
                         .out_bias = TENSOR_OPTIONAL,
                         .ffn_bias = TENSOR_OPTIONAL,
                         .eps_suffix = "attention.layer_norm_epsilon",
                         .encoder = true},
};

const ArchInfo *arch_find(const char *name, size_t len) {
    for (int i = 0; i < ARCH_COUNT; i++)
        if (strlen(ARCHS[i].name) == len && !memcmp(ARCHS[i].name, name, len))
            return &ARCHS[i];
    return NULL;
}

const ArchInfo *arch_info(Arch a) {
    ASSERT(a >= 0 && a < ARCH_COUNT);
    return &ARCHS[a];
}

const char *arch_supported_list(void) {
    return "llama, qwen2, qwen3, gpt2, gemma2, gemma3, phi3, qwen2moe, qwen3moe, gpt-oss, bert, "
           "nomic-bert";
}

void arch_blk_name(char *buf, int layer, const char *suffix) {
    int k = snprintf(buf, ARCH_NAME_MAX, "blk.%d.%s", layer, suffix);
    ASSERT(k > 0 && k < ARCH_NAME_MAX);
}

void arch_key(char *buf, const ArchInfo *a, const char *suffix) {
    int k = snprintf(buf, ARCH_NAME_MAX, "%s.%s", a->name, suffix);
    ASSERT(k > 0 && k < ARCH_NAME_MAX);
}
