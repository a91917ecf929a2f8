/* arch.c - the table behind arch.h. Facts from llama.cpp's llama-arch.cpp
 * and llama-model.cpp (LLM_ARCH_LLAMA, QWEN2, QWEN3, GPT2). */
#include "model/arch.h"

#include <stdio.h>
#include <string.h>

#include "core/err.h"

static const ArchInfo ARCHS[ARCH_COUNT] = {
    [ARCH_LLAMA] = {ARCH_LLAMA, "llama", ROPE_NORM, NORM_RMS, FFN_SILU_GATED, false, false, false,
                    true, TENSOR_OPTIONAL, TENSOR_OPTIONAL, TENSOR_OPTIONAL,
                    "attention.layer_norm_rms_epsilon"},
    [ARCH_QWEN2] = {ARCH_QWEN2, "qwen2", ROPE_NEOX, NORM_RMS, FFN_SILU_GATED, false, false, false,
                    false, TENSOR_REQUIRED, TENSOR_ABSENT, TENSOR_ABSENT,
                    "attention.layer_norm_rms_epsilon"},
    [ARCH_QWEN3] = {ARCH_QWEN3, "qwen3", ROPE_NEOX, NORM_RMS, FFN_SILU_GATED, false, false, true,
                    false, TENSOR_ABSENT, TENSOR_ABSENT, TENSOR_ABSENT,
                    "attention.layer_norm_rms_epsilon"},
    [ARCH_GPT2] = {ARCH_GPT2, "gpt2", ROPE_NONE, NORM_LAYER, FFN_GELU, true, true, false, false,
                   TENSOR_REQUIRED, TENSOR_REQUIRED, TENSOR_REQUIRED,
                   "attention.layer_norm_epsilon"},
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

const char *arch_supported_list(void) { return "llama, qwen2, qwen3, gpt2"; }

void arch_blk_name(char *buf, int layer, const char *suffix) {
    int k = snprintf(buf, ARCH_NAME_MAX, "blk.%d.%s", layer, suffix);
    ASSERT(k > 0 && k < ARCH_NAME_MAX);
}

void arch_key(char *buf, const ArchInfo *a, const char *suffix) {
    int k = snprintf(buf, ARCH_NAME_MAX, "%s.%s", a->name, suffix);
    ASSERT(k > 0 && k < ARCH_NAME_MAX);
}
