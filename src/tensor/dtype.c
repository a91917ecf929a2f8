/* dtype.c - the type table. Sizes are facts of the format (ggml-common.h). */
#include "tensor/dtype.h"

#include <stddef.h>
#include <strings.h>

static const DTypeInfo TABLE[DTYPE_COUNT] = {
    [DTYPE_F32] = {"F32", 1, 4, false, true},
    [DTYPE_F16] = {"F16", 1, 2, false, true},
    [DTYPE_Q4_0] = {"Q4_0", 32, 18, true, true},
    [DTYPE_Q4_1] = {"Q4_1", 32, 20, true, true},
    [DTYPE_Q5_0] = {"Q5_0", 32, 22, true, true},
    [DTYPE_Q5_1] = {"Q5_1", 32, 24, true, true},
    [DTYPE_Q8_0] = {"Q8_0", 32, 34, true, true},
    [DTYPE_Q8_1] = {"Q8_1", 32, 36, true, false},
    [DTYPE_Q2_K] = {"Q2_K", 256, 84, true, true},
    [DTYPE_Q3_K] = {"Q3_K", 256, 110, true, true},
    [DTYPE_Q4_K] = {"Q4_K", 256, 144, true, true},
    [DTYPE_Q5_K] = {"Q5_K", 256, 176, true, true},
    [DTYPE_Q6_K] = {"Q6_K", 256, 210, true, true},
    [DTYPE_Q8_K] = {"Q8_K", 256, 292, true, false},
    [DTYPE_IQ2_XXS] = {"IQ2_XXS", 256, 66, true, false},
    [DTYPE_IQ2_XS] = {"IQ2_XS", 256, 74, true, false},
    [DTYPE_IQ3_XXS] = {"IQ3_XXS", 256, 98, true, false},
    [DTYPE_IQ1_S] = {"IQ1_S", 256, 50, true, false},
    [DTYPE_IQ4_NL] = {"IQ4_NL", 32, 18, true, true},
    [DTYPE_IQ3_S] = {"IQ3_S", 256, 110, true, false},
    [DTYPE_IQ2_S] = {"IQ2_S", 256, 82, true, false},
    [DTYPE_IQ4_XS] = {"IQ4_XS", 256, 136, true, true},
    [DTYPE_I8] = {"I8", 1, 1, false, false},
    [DTYPE_I16] = {"I16", 1, 2, false, false},
    [DTYPE_I32] = {"I32", 1, 4, false, false},
    [DTYPE_I64] = {"I64", 1, 8, false, false},
    [DTYPE_F64] = {"F64", 1, 8, false, false},
    [DTYPE_IQ1_M] = {"IQ1_M", 256, 56, true, false},
    [DTYPE_BF16] = {"BF16", 1, 2, false, true},
    [DTYPE_TQ1_0] = {"TQ1_0", 256, 54, true, false},
    [DTYPE_TQ2_0] = {"TQ2_0", 256, 66, true, false},
    [DTYPE_MXFP4] = {"MXFP4", 32, 17, true, true},
};

const DTypeInfo *dtype_info(int t) {
    if (t < 0 || t >= DTYPE_COUNT || !TABLE[t].name)
        return NULL;
    return &TABLE[t];
}

uint64_t dtype_row_bytes(int t, int64_t n) {
    const DTypeInfo *ti = dtype_info(t);
    if (!ti || n < 0 || n % ti->block_size)
        return 0;
    return (uint64_t)(n / ti->block_size) * (uint64_t)ti->type_size;
}

int dtype_from_name(const char *name) {
    for (int t = 0; t < DTYPE_COUNT; t++)
        if (TABLE[t].name && !strcasecmp(TABLE[t].name, name))
            return t;
    return -1;
}
