/* dtype.h - tensor element types: ids, block sizes and byte sizes exactly as
 * ggml defines them (ggml.h `ggml_type`, ggml-common.h block structs).
 *
 * Every type ggml has ever written is *known* here (so the GGUF reader can
 * validate sizes and `cgpt info` can describe any file); only the types with
 * `supported` set have kernels. Quantized types store rows as whole blocks of
 * `block_size` elements taking `type_size` bytes. */
#ifndef CGPT_TENSOR_DTYPE_H
#define CGPT_TENSOR_DTYPE_H

#include <stdbool.h>
#include <stdint.h>

typedef enum {
    DTYPE_F32 = 0,
    DTYPE_F16 = 1,
    DTYPE_Q4_0 = 2,
    DTYPE_Q4_1 = 3,
    DTYPE_Q5_0 = 6,
    DTYPE_Q5_1 = 7,
    DTYPE_Q8_0 = 8,
    DTYPE_Q8_1 = 9,
    DTYPE_Q2_K = 10,
    DTYPE_Q3_K = 11,
    DTYPE_Q4_K = 12,
    DTYPE_Q5_K = 13,
    DTYPE_Q6_K = 14,
    DTYPE_Q8_K = 15,
    DTYPE_IQ2_XXS = 16,
    DTYPE_IQ2_XS = 17,
    DTYPE_IQ3_XXS = 18,
    DTYPE_IQ1_S = 19,
    DTYPE_IQ4_NL = 20,
    DTYPE_IQ3_S = 21,
    DTYPE_IQ2_S = 22,
    DTYPE_IQ4_XS = 23,
    DTYPE_I8 = 24,
    DTYPE_I16 = 25,
    DTYPE_I32 = 26,
    DTYPE_I64 = 27,
    DTYPE_F64 = 28,
    DTYPE_IQ1_M = 29,
    DTYPE_BF16 = 30,
    DTYPE_TQ1_0 = 34,
    DTYPE_TQ2_0 = 35,
    DTYPE_MXFP4 = 39,
    DTYPE_COUNT = 40, /* ids are < DTYPE_COUNT; gaps are unknown types */
} DType;

/* Elements per block for the legacy (32) and K (256) quant families. */
#define QK4_0 32
#define QK4_1 32
#define QK5_0 32
#define QK5_1 32
#define QK8_0 32
#define QK8_1 32
#define QK_K 256

typedef struct {
    const char *name; /* "Q4_K", as llama.cpp prints it */
    int block_size;   /* elements per block */
    int type_size;    /* bytes per block */
    bool quantized;   /* block_size > 1 or integer-coded */
    bool supported;   /* kernels exist (dequant + dot) */
} DTypeInfo;

/* Returns the static description of 't', or NULL for an unknown id
 * (including the ids ggml removed: 4, 5, 31-33, 36-38). */
const DTypeInfo *dtype_info(int t);

/* Bytes of a row of 'n' elements; 0 if 't' is unknown or 'n' is not a
 * multiple of its block size. */
uint64_t dtype_row_bytes(int t, int64_t n);

/* Parse a type name ("q4_k", "F16", case-insensitive); -1 if unknown. */
int dtype_from_name(const char *name);

#endif
