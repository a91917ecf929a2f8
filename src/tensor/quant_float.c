/* quant_float.c - scalar kernels for the float weight types F32, F16, BF16.
 *
 * These are the naive twins the SIMD kernels (quant_float_simd.c) are tested
 * against; keep them plain. Conversions are core/fp16.h's (round to nearest
 * even, as ggml). vec_dot takes F32 activations for all three types and
 * accumulates in double, front to back, like ggml's scalar ggml_vec_dot_f16
 * (ggml_float is double): each product of two floats is exact in double, so
 * the result is the true dot rounded once more per element at most. The
 * SIMD twins accumulate in float lanes and differ by summation order only. */
#include <string.h>

#include "core/fp16.h"
#include "tensor/quant.h"
#include "tensor/quant_simd.h"

static void f32_copy_dequant(const void *src, float *dst, int64_t n) {
    memcpy(dst, src, (size_t)n * sizeof(float));
}

static void f32_copy_quantize(const float *src, void *dst, int64_t n) {
    memcpy(dst, src, (size_t)n * sizeof(float));
}

/* Weight rows are read bytewise (memcpy) in every scalar kernel here: a
 * weight row may sit at any address; activation rows are float-aligned. */
static void f32_dot(int64_t n, float *s, const void *w, const void *a) {
    const uint8_t *x = w;
    const float *y = a;
    double sum = 0;
    for (int64_t i = 0; i < n; i++) {
        float v;
        memcpy(&v, x + 4 * i, 4);
        sum += (double)v * (double)y[i];
    }
    *s = (float)sum;
}

static inline uint16_t load_u16(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return h;
}

static inline void store_u16(uint8_t *p, uint16_t h) { memcpy(p, &h, 2); }

static void f16_dequant(const void *src, float *dst, int64_t n) {
    const uint8_t *p = src;
    for (int64_t i = 0; i < n; i++)
        dst[i] = fp16_to_f32(load_u16(p + 2 * i));
}

static void f16_quantize(const float *src, void *dst, int64_t n) {
    uint8_t *p = dst;
    for (int64_t i = 0; i < n; i++)
        store_u16(p + 2 * i, fp32_to_f16(src[i]));
}

static void f16_dot(int64_t n, float *s, const void *w, const void *a) {
    const uint8_t *x = w;
    const float *y = a;
    double sum = 0;
    for (int64_t i = 0; i < n; i++)
        sum += (double)fp16_to_f32(load_u16(x + 2 * i)) * (double)y[i];
    *s = (float)sum;
}

static void bf16_dequant(const void *src, float *dst, int64_t n) {
    const uint8_t *p = src;
    for (int64_t i = 0; i < n; i++)
        dst[i] = bf16_to_f32(load_u16(p + 2 * i));
}

static void bf16_quantize(const float *src, void *dst, int64_t n) {
    uint8_t *p = dst;
    for (int64_t i = 0; i < n; i++)
        store_u16(p + 2 * i, fp32_to_bf16(src[i]));
}

static void bf16_dot(int64_t n, float *s, const void *w, const void *a) {
    const uint8_t *x = w;
    const float *y = a;
    double sum = 0;
    for (int64_t i = 0; i < n; i++)
        sum += (double)bf16_to_f32(load_u16(x + 2 * i)) * (double)y[i];
    *s = (float)sum;
}

void quant_float_fill(QuantOps *ops, SimdLevel level) {
    if (level != SIMD_SCALAR) {
        quant_float_simd_fill(ops, level);
        return;
    }
    ops[DTYPE_F32] = (QuantOps){.dequant = f32_copy_dequant,
                                .quantize = f32_copy_quantize,
                                .vec_dot = f32_dot,
                                .vec_dot_type = DTYPE_F32};
    ops[DTYPE_F16] = (QuantOps){.dequant = f16_dequant,
                                .quantize = f16_quantize,
                                .vec_dot = f16_dot,
                                .vec_dot_type = DTYPE_F32};
    ops[DTYPE_BF16] = (QuantOps){.dequant = bf16_dequant,
                                 .quantize = bf16_quantize,
                                 .vec_dot = bf16_dot,
                                 .vec_dot_type = DTYPE_F32};
}
