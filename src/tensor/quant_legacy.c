/* quant_legacy.c - scalar kernels for the legacy 32-element quant types
 * Q4_0, Q4_1, Q5_0, Q5_1 (weights) and Q8_0, Q8_1 (activations; Q8_0 is a
 * weight type too).
 *
 * Layouts are quant_blocks_legacy.h's (ggml's). quantize reproduces ggml's
 * quantize_row_*_ref operation for operation, so the bytes match llama.cpp's:
 *   Q4_0  d = (signed value of largest magnitude) / -8, q = min(15, (int8)(x/d + 8.5))
 *   Q4_1  d = (max - min) / 15, m = min,            q = min(15, (int8)((x-m)/d + 0.5))
 *   Q5_0  d = (signed value of largest magnitude) / -16, q = min(31, (int8)(x/d + 16.5))
 *   Q5_1  d = (max - min) / 31, m = min,            q = (uint8)((x-m)/d + 0.5)
 *   Q8_0  d = amax / 127, q = roundf(x/d)  (half away from zero)
 *   Q8_1  as Q8_0, plus s = fp16(d * sum(q))
 * where "x/d" is always x * (1/d) in float, as ggml computes it.
 *
 * vec_dot is ggml's scalar ggml_vec_dot_<w>_<a>: an exact int32 dot per
 * block, scaled by fp16(dw)*fp16(da) (plus mw*sa for the _1 types) and
 * summed over blocks in float, front to back. These are the naive twins of
 * quant_legacy_simd.c; keep them plain. Q8_1 has no vec_dot (activations
 * only). */
#include <math.h>
#include <string.h>

#include "core/fp16.h"
#include "tensor/quant.h"
#include "tensor/quant_blocks_legacy.h"
#include "tensor/quant_simd.h"

static inline uint32_t load_qh(const uint8_t qh[4]) {
    uint32_t v;
    memcpy(&v, qh, 4);
    return v;
}

/* ---- Q4_0 ---------------------------------------------------------------- */

static void q4_0_dequant(const void *src, float *dst, int64_t n) {
    const BlockQ4_0 *b = src;
    for (int64_t i = 0; i < n / QK4_0; i++, dst += QK4_0) {
        const float d = fp16_to_f32(b[i].d);
        for (int j = 0; j < QK4_0 / 2; j++) {
            dst[j] = (float)((b[i].qs[j] & 0x0f) - 8) * d;
            dst[j + QK4_0 / 2] = (float)((b[i].qs[j] >> 4) - 8) * d;
        }
    }
}

static void q4_0_quantize(const float *src, void *dst, int64_t n) {
    BlockQ4_0 *b = dst;
    for (int64_t i = 0; i < n / QK4_0; i++, src += QK4_0) {
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < QK4_0; j++) {
            if (amax < fabsf(src[j])) {
                amax = fabsf(src[j]);
                max = src[j];
            }
        }
        const float d = max / -8;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = fp32_to_f16(d);
        for (int j = 0; j < QK4_0 / 2; j++) {
            const float x0 = src[j] * id, x1 = src[j + QK4_0 / 2] * id;
            int q0 = (int8_t)(x0 + 8.5f), q1 = (int8_t)(x1 + 8.5f);
            q0 = q0 < 15 ? q0 : 15;
            q1 = q1 < 15 ? q1 : 15;
            b[i].qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

static void q4_0_dot(int64_t n, float *s, const void *w, const void *a) {
    const BlockQ4_0 *x = w;
    const BlockQ8_0 *y = a;
    float sumf = 0.0f;
    for (int64_t i = 0; i < n / QK4_0; i++) {
        int32_t sumi = 0;
        for (int j = 0; j < QK4_0 / 2; j++) {
            sumi += ((x[i].qs[j] & 0x0f) - 8) * y[i].qs[j];
            sumi += ((x[i].qs[j] >> 4) - 8) * y[i].qs[j + QK4_0 / 2];
        }
        sumf += (float)sumi * (fp16_to_f32(x[i].d) * fp16_to_f32(y[i].d));
    }
    *s = sumf;
}

/* ---- Q4_1 ---------------------------------------------------------------- */

static void q4_1_dequant(const void *src, float *dst, int64_t n) {
    const BlockQ4_1 *b = src;
    for (int64_t i = 0; i < n / QK4_1; i++, dst += QK4_1) {
        const float d = fp16_to_f32(b[i].d), m = fp16_to_f32(b[i].m);
        for (int j = 0; j < QK4_1 / 2; j++) {
            dst[j] = (float)(b[i].qs[j] & 0x0f) * d + m;
            dst[j + QK4_1 / 2] = (float)(b[i].qs[j] >> 4) * d + m;
        }
    }
}

static void q4_1_quantize(const float *src, void *dst, int64_t n) {
    BlockQ4_1 *b = dst;
    for (int64_t i = 0; i < n / QK4_1; i++, src += QK4_1) {
        float min = src[0], max = src[0];
        for (int j = 1; j < QK4_1; j++) {
            if (src[j] < min)
                min = src[j];
            if (src[j] > max)
                max = src[j];
        }
        const float d = (max - min) / 15;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = fp32_to_f16(d);
        b[i].m = fp32_to_f16(min);
        for (int j = 0; j < QK4_1 / 2; j++) {
            const float x0 = (src[j] - min) * id, x1 = (src[j + QK4_1 / 2] - min) * id;
            int q0 = (int8_t)(x0 + 0.5f), q1 = (int8_t)(x1 + 0.5f);
            q0 = q0 < 15 ? q0 : 15;
            q1 = q1 < 15 ? q1 : 15;
            b[i].qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

static void q4_1_dot(int64_t n, float *s, const void *w, const void *a) {
    const BlockQ4_1 *x = w;
    const BlockQ8_1 *y = a;
    float sumf = 0.0f;
    for (int64_t i = 0; i < n / QK4_1; i++) {
        int32_t sumi = 0;
        for (int j = 0; j < QK4_1 / 2; j++) {
            sumi += (x[i].qs[j] & 0x0f) * y[i].qs[j];
            sumi += (x[i].qs[j] >> 4) * y[i].qs[j + QK4_1 / 2];
        }
        sumf += (fp16_to_f32(x[i].d) * fp16_to_f32(y[i].d)) * (float)sumi +
                fp16_to_f32(x[i].m) * fp16_to_f32(y[i].s);
    }
    *s = sumf;
}

/* ---- Q5_0 ---------------------------------------------------------------- */

static void q5_0_dequant(const void *src, float *dst, int64_t n) {
    const BlockQ5_0 *b = src;
    for (int64_t i = 0; i < n / QK5_0; i++, dst += QK5_0) {
        const float d = fp16_to_f32(b[i].d);
        const uint32_t qh = load_qh(b[i].qh);
        for (int j = 0; j < QK5_0 / 2; j++) {
            const int h0 = (qh >> j) & 1, h1 = (qh >> (j + 16)) & 1;
            dst[j] = (float)(((b[i].qs[j] & 0x0f) | (h0 << 4)) - 16) * d;
            dst[j + QK5_0 / 2] = (float)(((b[i].qs[j] >> 4) | (h1 << 4)) - 16) * d;
        }
    }
}

static void q5_0_quantize(const float *src, void *dst, int64_t n) {
    BlockQ5_0 *b = dst;
    for (int64_t i = 0; i < n / QK5_0; i++, src += QK5_0) {
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < QK5_0; j++) {
            if (amax < fabsf(src[j])) {
                amax = fabsf(src[j]);
                max = src[j];
            }
        }
        const float d = max / -16;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = fp32_to_f16(d);
        uint32_t qh = 0;
        for (int j = 0; j < QK5_0 / 2; j++) {
            const float x0 = src[j] * id, x1 = src[j + QK5_0 / 2] * id;
            int q0 = (int8_t)(x0 + 16.5f), q1 = (int8_t)(x1 + 16.5f);
            q0 = q0 < 31 ? q0 : 31;
            q1 = q1 < 31 ? q1 : 31;
            b[i].qs[j] = (uint8_t)((q0 & 0x0f) | ((q1 & 0x0f) << 4));
            qh |= (uint32_t)(q0 >> 4) << j;
            qh |= (uint32_t)(q1 >> 4) << (j + 16);
        }
        memcpy(b[i].qh, &qh, 4);
    }
}

static void q5_0_dot(int64_t n, float *s, const void *w, const void *a) {
    const BlockQ5_0 *x = w;
    const BlockQ8_0 *y = a;
    float sumf = 0.0f;
    for (int64_t i = 0; i < n / QK5_0; i++) {
        const uint32_t qh = load_qh(x[i].qh);
        int32_t sumi = 0;
        for (int j = 0; j < QK5_0 / 2; j++) {
            const int h0 = (qh >> j) & 1, h1 = (qh >> (j + 16)) & 1;
            sumi += (((x[i].qs[j] & 0x0f) | (h0 << 4)) - 16) * y[i].qs[j];
            sumi += (((x[i].qs[j] >> 4) | (h1 << 4)) - 16) * y[i].qs[j + QK5_0 / 2];
        }
        sumf += (float)sumi * (fp16_to_f32(x[i].d) * fp16_to_f32(y[i].d));
    }
    *s = sumf;
}

/* ---- Q5_1 ---------------------------------------------------------------- */

static void q5_1_dequant(const void *src, float *dst, int64_t n) {
    const BlockQ5_1 *b = src;
    for (int64_t i = 0; i < n / QK5_1; i++, dst += QK5_1) {
        const float d = fp16_to_f32(b[i].d), m = fp16_to_f32(b[i].m);
        const uint32_t qh = load_qh(b[i].qh);
        for (int j = 0; j < QK5_1 / 2; j++) {
            const int h0 = (qh >> j) & 1, h1 = (qh >> (j + 16)) & 1;
            dst[j] = (float)((b[i].qs[j] & 0x0f) | (h0 << 4)) * d + m;
            dst[j + QK5_1 / 2] = (float)((b[i].qs[j] >> 4) | (h1 << 4)) * d + m;
        }
    }
}

static void q5_1_quantize(const float *src, void *dst, int64_t n) {
    BlockQ5_1 *b = dst;
    for (int64_t i = 0; i < n / QK5_1; i++, src += QK5_1) {
        float min = src[0], max = src[0];
        for (int j = 1; j < QK5_1; j++) {
            if (src[j] < min)
                min = src[j];
            if (src[j] > max)
                max = src[j];
        }
        const float d = (max - min) / 31;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = fp32_to_f16(d);
        b[i].m = fp32_to_f16(min);
        uint32_t qh = 0;
        for (int j = 0; j < QK5_1 / 2; j++) {
            const float x0 = (src[j] - min) * id, x1 = (src[j + QK5_1 / 2] - min) * id;
            const int q0 = (uint8_t)(x0 + 0.5f), q1 = (uint8_t)(x1 + 0.5f);
            b[i].qs[j] = (uint8_t)((q0 & 0x0f) | ((q1 & 0x0f) << 4));
            qh |= (uint32_t)((q0 >> 4) & 1) << j;
            qh |= (uint32_t)((q1 >> 4) & 1) << (j + 16);
        }
        memcpy(b[i].qh, &qh, 4);
    }
}

static void q5_1_dot(int64_t n, float *s, const void *w, const void *a) {
    const BlockQ5_1 *x = w;
    const BlockQ8_1 *y = a;
    float sumf = 0.0f;
    for (int64_t i = 0; i < n / QK5_1; i++) {
        const uint32_t qh = load_qh(x[i].qh);
        int32_t sumi = 0;
        for (int j = 0; j < QK5_1 / 2; j++) {
            const int h0 = (qh >> j) & 1, h1 = (qh >> (j + 16)) & 1;
            sumi += ((x[i].qs[j] & 0x0f) | (h0 << 4)) * y[i].qs[j];
            sumi += ((x[i].qs[j] >> 4) | (h1 << 4)) * y[i].qs[j + QK5_1 / 2];
        }
        sumf += (fp16_to_f32(x[i].d) * fp16_to_f32(y[i].d)) * (float)sumi +
                fp16_to_f32(x[i].m) * fp16_to_f32(y[i].s);
    }
    *s = sumf;
}

/* ---- Q8_0 ---------------------------------------------------------------- */

static void q8_0_dequant(const void *src, float *dst, int64_t n) {
    const BlockQ8_0 *b = src;
    for (int64_t i = 0; i < n / QK8_0; i++, dst += QK8_0) {
        const float d = fp16_to_f32(b[i].d);
        for (int j = 0; j < QK8_0; j++)
            dst[j] = (float)b[i].qs[j] * d;
    }
}

/* roundf(v) as int8 for v = x/d, which is within [-127, 127] for finite x.
 * NaN (from a broken model's activations) becomes 0 and anything outside
 * the range is clamped, so the conversion is always defined; for finite
 * inputs this is exactly (int8_t)roundf(v), as ggml computes it. */
static inline int8_t q8_round(float v) {
    if (!(v == v))
        return 0;
    v = v > 127.0f ? 127.0f : v < -127.0f ? -127.0f : v;
    return (int8_t)roundf(v);
}

static void q8_0_quantize(const float *src, void *dst, int64_t n) {
    BlockQ8_0 *b = dst;
    for (int64_t i = 0; i < n / QK8_0; i++, src += QK8_0) {
        float amax = 0.0f;
        for (int j = 0; j < QK8_0; j++)
            amax = fabsf(src[j]) > amax ? fabsf(src[j]) : amax;
        const float d = amax / 127;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = fp32_to_f16(d);
        for (int j = 0; j < QK8_0; j++)
            b[i].qs[j] = q8_round(src[j] * id);
    }
}

static void q8_0_dot(int64_t n, float *s, const void *w, const void *a) {
    const BlockQ8_0 *x = w;
    const BlockQ8_0 *y = a;
    float sumf = 0.0f;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        int32_t sumi = 0;
        for (int j = 0; j < QK8_0; j++)
            sumi += x[i].qs[j] * y[i].qs[j];
        sumf += (float)sumi * (fp16_to_f32(x[i].d) * fp16_to_f32(y[i].d));
    }
    *s = sumf;
}

/* ---- Q8_1 ---------------------------------------------------------------- */

static void q8_1_dequant(const void *src, float *dst, int64_t n) {
    const BlockQ8_1 *b = src;
    for (int64_t i = 0; i < n / QK8_1; i++, dst += QK8_1) {
        const float d = fp16_to_f32(b[i].d);
        for (int j = 0; j < QK8_1; j++)
            dst[j] = (float)b[i].qs[j] * d;
    }
}

static void q8_1_quantize(const float *src, void *dst, int64_t n) {
    BlockQ8_1 *b = dst;
    for (int64_t i = 0; i < n / QK8_1; i++, src += QK8_1) {
        float amax = 0.0f;
        for (int j = 0; j < QK8_1; j++)
            amax = fabsf(src[j]) > amax ? fabsf(src[j]) : amax;
        const float d = amax / 127;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = fp32_to_f16(d);
        int sum = 0;
        for (int j = 0; j < QK8_1; j++) {
            b[i].qs[j] = q8_round(src[j] * id);
            sum += b[i].qs[j];
        }
        b[i].s = fp32_to_f16((float)sum * d);
    }
}

void quant_legacy_fill(QuantOps *ops, SimdLevel level) {
    if (level != SIMD_SCALAR) {
        quant_legacy_simd_fill(ops, level);
        return;
    }
    ops[DTYPE_Q4_0] = (QuantOps){.dequant = q4_0_dequant,
                                 .quantize = q4_0_quantize,
                                 .vec_dot = q4_0_dot,
                                 .vec_dot_type = DTYPE_Q8_0};
    ops[DTYPE_Q4_1] = (QuantOps){.dequant = q4_1_dequant,
                                 .quantize = q4_1_quantize,
                                 .vec_dot = q4_1_dot,
                                 .vec_dot_type = DTYPE_Q8_1};
    ops[DTYPE_Q5_0] = (QuantOps){.dequant = q5_0_dequant,
                                 .quantize = q5_0_quantize,
                                 .vec_dot = q5_0_dot,
                                 .vec_dot_type = DTYPE_Q8_0};
    ops[DTYPE_Q5_1] = (QuantOps){.dequant = q5_1_dequant,
                                 .quantize = q5_1_quantize,
                                 .vec_dot = q5_1_dot,
                                 .vec_dot_type = DTYPE_Q8_1};
    ops[DTYPE_Q8_0] = (QuantOps){.dequant = q8_0_dequant,
                                 .quantize = q8_0_quantize,
                                 .vec_dot = q8_0_dot,
                                 .vec_dot_type = DTYPE_Q8_0};
    ops[DTYPE_Q8_1] = (QuantOps){.dequant = q8_1_dequant,
                                 .quantize = q8_1_quantize,
                                 .vec_dot = NULL,
                                 .vec_dot_type = DTYPE_Q8_1};
}

int64_t quant_act_scales(DType at, const void *row, int64_t n, float *dst) {
    if (at == DTYPE_Q8_0) {
        const BlockQ8_0 *b = row;
        for (int64_t i = 0; i < n / QK8_0; i++) {
            dst[2 * i] = fp16_to_f32(b[i].d);
            dst[2 * i + 1] = 0.0f;
        }
        return 2 * (n / QK8_0);
    }
    if (at == DTYPE_Q8_1) {
        const BlockQ8_1 *b = row;
        for (int64_t i = 0; i < n / QK8_1; i++) {
            dst[2 * i] = fp16_to_f32(b[i].d);
            dst[2 * i + 1] = fp16_to_f32(b[i].s);
        }
        return 2 * (n / QK8_1);
    }
    return 0;
}
