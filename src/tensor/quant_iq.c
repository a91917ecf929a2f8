/* quant_iq.c - scalar kernels of the codebook 4-bit types: IQ4_NL and MXFP4
 * (32-element blocks, dotted with Q8_0 activations) and IQ4_XS (256-element
 * super-blocks, dotted with Q8_K), as ggml pairs them.
 *
 * The reference twins. quantize reproduces ggml without an importance
 * matrix, operation for operation: IQ4_NL and IQ4_XS are ggml's
 * quantize_iq4_nl / quantize_iq4_xs (quantize_row_iq4_nl_impl with 7
 * scale tries and weights x^2), MXFP4 is quantize_row_mxfp4_ref. dequant
 * follows dequantize_row_*. vec_dot is a plain integer loop and is never
 * optimised; quant_iq_avx2.c is checked against it.
 *
 * vec_dot's arithmetic (integer sums exact in int32):
 *   IQ4_NL: per block i, sumi = sum_j V[q_j]*a_j;
 *           sumf += (float)sumi * (fp16(w.d) * fp16(a.d))
 *   MXFP4:  the same with V = MXFP4_VALUES and w.d = 2^(e - 128)
 *   IQ4_XS: per super-block b, sumi = sum_ib (ls_ib - 32) * sum_j V[q_j]*a_j;
 *           sumf += (fp16(w.d) * a.d) * (float)sumi
 * front to back, from 0. The AVX2 IQ4_XS dot gives these bits; the AVX2
 * IQ4_NL / MXFP4 dots sum the per-block products in eight lanes (as the
 * legacy types do) and differ by float summation order only. */
#include <math.h>
#include <stddef.h>
#include <string.h>

#include "core/fp16.h"
#include "tensor/quant.h"
#include "tensor/quant_blocks_iq.h"
#include "tensor/quant_blocks_k.h"
#include "tensor/quant_blocks_legacy.h"

#define GROUP_MAX_EPS 1e-15f /* below this a group is treated as all zero (ggml) */
#define IQ4_NTRY 7           /* scale tries either side of the first fit (ggml) */

static inline int imin(int a, int b) { return a < b ? a : b; }
static inline int imax(int a, int b) { return a > b ? a : b; }

/* ---- IQ4_NL / IQ4_XS quantization ---------------------------------------- */

/* Index of the codebook entry nearest to x (val sorted ascending); ties go
 * up. ggml's best_index_int8. */
static int nearest_value(const int8_t *val, float x) {
    if (x <= val[0])
        return 0;
    if (x >= val[15])
        return 15;
    int ml = 0, mu = 15;
    while (mu - ml > 1) {
        int mav = (ml + mu) / 2;
        if (x < val[mav])
            mu = mav;
        else
            ml = mav;
    }
    return x - val[mu - 1] < val[mu] - x ? mu - 1 : mu;
}

/* Best scale d for x[0..32) ~ d * V[L]: start from d = max / 127 (the
 * largest magnitude on the codebook's end), refit by weighted least squares
 * (weights x^2), then try the grids (itry + V[0]) / max for itry in -7..7
 * and keep the best fit. Returns d; 0 for an all-zero group. */
static float iq4_group_scale(const float *xb) {
    float amax = 0, max = 0;
    for (int j = 0; j < 32; j++) {
        float ax = fabsf(xb[j]);
        if (ax > amax) {
            amax = ax;
            max = xb[j];
        }
    }
    if (amax < GROUP_MAX_EPS)
        return 0;
    const int8_t *values = IQ4_NL_VALUES;
    float d = -max / values[0];
    float id = 1 / d;
    float sumqx = 0, sumq2 = 0;
    for (int j = 0; j < 32; j++) {
        float al = id * xb[j];
        float q = values[nearest_value(values, al)];
        float w = xb[j] * xb[j];
        sumqx += w * q * xb[j];
        sumq2 += w * q * q;
    }
    d = sumq2 > 0 ? sumqx / sumq2 : 0.f;
    float best = d * sumqx;
    for (int itry = -IQ4_NTRY; itry <= IQ4_NTRY; itry++) {
        id = (itry + values[0]) / max;
        sumqx = sumq2 = 0;
        for (int j = 0; j < 32; j++) {
            float al = id * xb[j];
            float q = values[nearest_value(values, al)];
            float w = xb[j] * xb[j];
            sumqx += w * q * xb[j];
            sumq2 += w * q * q;
        }
        if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
            d = sumqx / sumq2;
            best = d * sumqx;
        }
    }
    return d;
}

/* Indices of x[0..32) against scale 1/id, packed: element j < 16 in the low
 * nibble of qs[j], j + 16 in its high nibble. */
static void iq4_pack(const float *x, float id, uint8_t *qs) {
    for (int j = 0; j < 16; j++) {
        int lo = nearest_value(IQ4_NL_VALUES, id * x[j]);
        int hi = nearest_value(IQ4_NL_VALUES, id * x[j + 16]);
        qs[j] = (uint8_t)(lo | (hi << 4));
    }
}

static void iq4_nl_quantize(const float *src, void *dst, int64_t n) {
    BlockIQ4_NL *y = dst;
    for (int64_t i = 0; i < n / QK_IQ4_NL; i++, src += QK_IQ4_NL) {
        const float d = iq4_group_scale(src);
        y[i].d = fp32_to_f16(d);
        iq4_pack(src, d ? 1 / d : 0, y[i].qs);
    }
}

static void iq4_xs_quantize(const float *src, void *dst, int64_t n) {
    BlockIQ4_XS *y = dst;
    float scales[QK_K / 32];
    for (int64_t b = 0; b < n / QK_K; b++, src += QK_K) {
        float max_scale = 0, amax_scale = 0;
        for (int ib = 0; ib < QK_K / 32; ib++) {
            scales[ib] = iq4_group_scale(src + 32 * ib);
            float abs_d = fabsf(scales[ib]);
            if (abs_d > amax_scale) {
                amax_scale = abs_d;
                max_scale = scales[ib];
            }
        }
        /* as ggml: an all-zero block stores d = -0 */
        const float d = -max_scale / 32;
        y[b].d = fp32_to_f16(d);
        const float id = d ? 1 / d : 0.f;
        y[b].scales_h = 0;
        for (int ib = 0; ib < QK_K / 32; ib++) {
            int l = imax(-32, imin(31, quant_nearest_int(id * scales[ib])));
            float dl = d * l;
            iq4_pack(src + 32 * ib, dl ? 1 / dl : 0.f, y[b].qs + 16 * ib);
            l += 32;
            if (ib % 2 == 0)
                y[b].scales_l[ib / 2] = (uint8_t)(l & 0xF);
            else
                y[b].scales_l[ib / 2] |= (uint8_t)((l & 0xF) << 4);
            y[b].scales_h |= (uint16_t)((l >> 4) << (2 * ib));
        }
    }
}

/* ---- dequant and dot ------------------------------------------------------- */

/* dst[0..32) = d * V[index] for the 16 packed bytes qs. */
static void codebook_dequant(const uint8_t *qs, const int8_t *V, float d, float *dst) {
    for (int j = 0; j < 16; j++) {
        dst[j] = d * V[qs[j] & 0xF];
        dst[j + 16] = d * V[qs[j] >> 4];
    }
}

/* sum_j V[index_j] * a[j] over one group of 32. */
static int32_t codebook_dot(const uint8_t *qs, const int8_t *V, const int8_t *a) {
    int32_t sum = 0;
    for (int j = 0; j < 16; j++) {
        sum += V[qs[j] & 0xF] * a[j];
        sum += V[qs[j] >> 4] * a[j + 16];
    }
    return sum;
}

static void iq4_nl_dequant(const void *src, float *dst, int64_t n) {
    const BlockIQ4_NL *x = src;
    for (int64_t i = 0; i < n / QK_IQ4_NL; i++, dst += QK_IQ4_NL)
        codebook_dequant(x[i].qs, IQ4_NL_VALUES, fp16_to_f32(x[i].d), dst);
}

static void iq4_nl_vec_dot(int64_t n, float *s, const void *w, const void *a) {
    const BlockIQ4_NL *x = w;
    const BlockQ8_0 *y = a;
    float sumf = 0;
    for (int64_t i = 0; i < n / QK_IQ4_NL; i++) {
        int32_t sumi = codebook_dot(x[i].qs, IQ4_NL_VALUES, y[i].qs);
        sumf += (float)sumi * (fp16_to_f32(x[i].d) * fp16_to_f32(y[i].d));
    }
    *s = sumf;
}

static void iq4_xs_dequant(const void *src, float *dst, int64_t n) {
    const BlockIQ4_XS *x = src;
    for (int64_t b = 0; b < n / QK_K; b++) {
        const float d = fp16_to_f32(x[b].d);
        for (int ib = 0; ib < QK_K / 32; ib++, dst += 32)
            codebook_dequant(x[b].qs + 16 * ib, IQ4_NL_VALUES, d * quant_iq4_xs_scale(&x[b], ib),
                             dst);
    }
}

static void iq4_xs_vec_dot(int64_t n, float *s, const void *w, const void *a) {
    const BlockIQ4_XS *x = w;
    const BlockQ8_K *y = a;
    float sumf = 0;
    for (int64_t b = 0; b < n / QK_K; b++) {
        int32_t sumi = 0;
        for (int ib = 0; ib < QK_K / 32; ib++)
            sumi += quant_iq4_xs_scale(&x[b], ib) *
                    codebook_dot(x[b].qs + 16 * ib, IQ4_NL_VALUES, y[b].qs + 32 * ib);
        sumf += (fp16_to_f32(x[b].d) * y[b].d) * (float)sumi;
    }
    *s = sumf;
}

/* ---- MXFP4 ---------------------------------------------------------------- */

/* Index of the codebook entry nearest to x at scale e (the first of equals:
 * +0 before -0). ggml's best_index_mxfp4. */
static int mxfp4_index(float x, float e) {
    int best = 0;
    float best_err = fabsf(MXFP4_VALUES[0] * e - x);
    for (int i = 1; i < 16; i++) {
        float err = fabsf(MXFP4_VALUES[i] * e - x);
        if (err < best_err) {
            best = i;
            best_err = err;
        }
    }
    return best;
}

/* e = floor(log2(amax)) - 2 + 127, so the block scale 2^(e - 128) times
 * the codebook's largest entry (12) is 1.5 x 2^floor(log2(amax)): between
 * 0.75 and 1.5 times amax. The conversion to a byte goes through int so
 * that a tiny amax (a negative exponent) wraps as x86 ggml builds do,
 * without C's undefined float-to-unsigned conversion. */
static void mxfp4_quantize(const float *src, void *dst, int64_t n) {
    BlockMXFP4 *y = dst;
    for (int64_t i = 0; i < n / QK_MXFP4; i++, src += QK_MXFP4) {
        float amax = 0;
        for (int j = 0; j < QK_MXFP4; j++)
            if (amax < fabsf(src[j]))
                amax = fabsf(src[j]);
        const uint8_t e = amax > 0.0f ? (uint8_t)(int)(floorf(log2f(amax)) - 2 + 127) : 0;
        const float d = quant_iq_e8m0_half(e);
        y[i].e = e;
        for (int j = 0; j < QK_MXFP4 / 2; j++)
            y[i].qs[j] = (uint8_t)(mxfp4_index(src[j], d) | (mxfp4_index(src[j + 16], d) << 4));
    }
}

static void mxfp4_dequant(const void *src, float *dst, int64_t n) {
    const BlockMXFP4 *x = src;
    for (int64_t i = 0; i < n / QK_MXFP4; i++, dst += QK_MXFP4)
        codebook_dequant(x[i].qs, MXFP4_VALUES, quant_iq_e8m0_half(x[i].e), dst);
}

static void mxfp4_vec_dot(int64_t n, float *s, const void *w, const void *a) {
    const BlockMXFP4 *x = w;
    const BlockQ8_0 *y = a;
    float sumf = 0;
    for (int64_t i = 0; i < n / QK_MXFP4; i++) {
        int32_t sumi = codebook_dot(x[i].qs, MXFP4_VALUES, y[i].qs);
        sumf += (float)sumi * (quant_iq_e8m0_half(x[i].e) * fp16_to_f32(y[i].d));
    }
    *s = sumf;
}

/* ---- table ----------------------------------------------------------------- */

void quant_iq_fill(QuantOps *ops, SimdLevel level) {
    switch (level) {
    case SIMD_SCALAR:
        ops[DTYPE_IQ4_NL] = (QuantOps){.dequant = iq4_nl_dequant,
                                       .quantize = iq4_nl_quantize,
                                       .vec_dot = iq4_nl_vec_dot,
                                       .vec_dot_type = DTYPE_Q8_0};
        ops[DTYPE_IQ4_XS] = (QuantOps){.dequant = iq4_xs_dequant,
                                       .quantize = iq4_xs_quantize,
                                       .vec_dot = iq4_xs_vec_dot,
                                       .vec_dot_type = DTYPE_Q8_K};
        ops[DTYPE_MXFP4] = (QuantOps){.dequant = mxfp4_dequant,
                                      .quantize = mxfp4_quantize,
                                      .vec_dot = mxfp4_vec_dot,
                                      .vec_dot_type = DTYPE_Q8_0};
        break;
    case SIMD_AVX2: quant_iq_avx2_fill(ops); break;
    case SIMD_AVX512: /* none of its own: AVX2's entries stay (quant.c) */ break;
    }
}
