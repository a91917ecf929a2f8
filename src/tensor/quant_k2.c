/* quant_k2.c - scalar kernels of the 2- and 3-bit K-quants Q2_K and Q3_K
 * (weights; dotted with Q8_K activations, as ggml).
 *
 * The reference twins: quantize follows ggml's quantize_row_q2_K_ref /
 * quantize_row_q3_K_ref step by step (same searches, same float operations
 * in the same order, same rounding), so the bytes are llama.cpp's; dequant
 * follows dequantize_row_q2_K / q3_K; vec_dot is a plain integer loop per
 * element and is never optimised. quant_k2_avx2.c must agree: dequant is
 * not replaced; its dot products form the same per-block integers and
 * combine them with the same float operations, so they give these bits.
 *
 * vec_dot's arithmetic, per super-block b (all integer sums exact in int32):
 *   Q2_K: sumi = sum_g sc[g] * sum_{e in g} q[e]*a[e],
 *         summ = sum_g m[g] * sum_{e in g} a[e],
 *         sumf += (a.d * fp16(d)) * (float)sumi - (a.d * fp16(dmin)) * (float)summ
 *   Q3_K: sumi = sum_g (s[g] - 32) * sum_{e in g} q[e]*a[e],  q = -4..3
 *         sumf += (a.d * fp16(d)) * (float)sumi
 * front to back over b, starting from 0.
 *
 * Not here: the importance-matrix variants (quantize_row_*_impl). */
#include <math.h>
#include <stddef.h>
#include <string.h>

#include "core/fp16.h"
#include "tensor/quant.h"
#include "tensor/quant_blocks_k2.h"

#define GROUP_MAX_EPS 1e-15f /* below this a group is treated as all zero (ggml) */

static inline int imin(int a, int b) { return a < b ? a : b; }
static inline int imax(int a, int b) { return a > b ? a : b; }

/* ---- Q2_K ---------------------------------------------------------------- */

/* Quants L[0..256) (each 0..3) into the shared 2-bit layout. */
static void pack_low2(const uint8_t *L, uint8_t *qs) {
    for (int h = 0; h < 2; h++)
        for (int l = 0; l < 32; l++) {
            const uint8_t *Lh = L + 128 * h;
            qs[32 * h + l] =
                (uint8_t)(Lh[l] | (Lh[l + 32] << 2) | (Lh[l + 64] << 4) | (Lh[l + 96] << 6));
        }
}

static void q2_k_quantize(const float *src, void *dst, int64_t n) {
    BlockQ2_K *y = dst;
    uint8_t L[QK_K], Laux[16];
    float weights[16], mins[QK_K / 16], scales[QK_K / 16];
    const float q4scale = 15.f;
    for (int64_t b = 0; b < n / QK_K; b++, src += QK_K) {
        float max_scale = 0, max_min = 0; /* the min is subtracted: both >= 0 */
        for (int j = 0; j < QK_K / 16; j++) {
            for (int l = 0; l < 16; l++)
                weights[l] = fabsf(src[16 * j + l]);
            scales[j] = quant_fit_scale_min(16, 3, src + 16 * j, weights, L + 16 * j, &mins[j],
                                            Laux, -0.5f, 0.1f, 15, true);
            if (scales[j] > max_scale)
                max_scale = scales[j];
            if (mins[j] > max_min)
                max_min = mins[j];
        }
        if (max_scale > 0) {
            float iscale = q4scale / max_scale;
            /* the uint8_t truncation is ggml's (a negative fit wraps) */
            for (int j = 0; j < QK_K / 16; j++)
                y[b].scales[j] = (uint8_t)quant_nearest_int(iscale * scales[j]);
            y[b].d = fp32_to_f16(max_scale / q4scale);
        } else {
            memset(y[b].scales, 0, sizeof y[b].scales);
            y[b].d = fp32_to_f16(0.f);
        }
        if (max_min > 0) {
            float iscale = q4scale / max_min;
            for (int j = 0; j < QK_K / 16; j++)
                y[b].scales[j] |= (uint8_t)(quant_nearest_int(iscale * mins[j]) << 4);
            y[b].dmin = fp32_to_f16(max_min / q4scale);
        } else {
            y[b].dmin = fp32_to_f16(0.f);
        }
        for (int j = 0; j < QK_K / 16; j++) {
            const float d = fp16_to_f32(y[b].d) * (y[b].scales[j] & 0xF);
            if (!d)
                continue;
            const float dm = fp16_to_f32(y[b].dmin) * (y[b].scales[j] >> 4);
            for (int l = 0; l < 16; l++) {
                int q = quant_nearest_int((src[16 * j + l] + dm) / d);
                L[16 * j + l] = (uint8_t)imax(0, imin(3, q));
            }
        }
        pack_low2(L, y[b].qs);
    }
}

static void q2_k_dequant(const void *src, float *dst, int64_t n) {
    const BlockQ2_K *x = src;
    for (int64_t b = 0; b < n / QK_K; b++) {
        const float d = fp16_to_f32(x[b].d), min = fp16_to_f32(x[b].dmin);
        for (int e = 0; e < QK_K; e++) {
            const uint8_t sc = x[b].scales[e / 16];
            const float dl = d * (sc & 0xF), ml = min * (sc >> 4);
            *dst++ = dl * quant_k2_low2(x[b].qs, e) - ml;
        }
    }
}

static void q2_k_vec_dot(int64_t n, float *s, const void *w, const void *a) {
    const BlockQ2_K *x = w;
    const BlockQ8_K *y = a;
    float sumf = 0;
    for (int64_t b = 0; b < n / QK_K; b++) {
        int32_t sumi = 0, summ = 0;
        for (int g = 0; g < QK_K / 16; g++) {
            int32_t dot = 0, sum_a = 0;
            for (int l = 0; l < 16; l++) {
                int e = 16 * g + l;
                dot += quant_k2_low2(x[b].qs, e) * y[b].qs[e];
                sum_a += y[b].qs[e];
            }
            sumi += (x[b].scales[g] & 0xF) * dot;
            summ += (x[b].scales[g] >> 4) * sum_a;
        }
        const float d = y[b].d * fp16_to_f32(x[b].d);
        const float dmin = y[b].d * fp16_to_f32(x[b].dmin);
        sumf += d * (float)sumi - dmin * (float)summ;
    }
    *s = sumf;
}

/* ---- Q3_K ---------------------------------------------------------------- */

/* Symmetric fit of x[0..n) ~ scale*L, L in -nmax..nmax-1, weights x^2: the
 * grid at -nmax/max, then up to 5 passes moving single elements to the
 * level that improves the least-squares fit. Returns the scale and L + nmax
 * (L all 0, not nmax, for an all-zero group). ggml's make_q3_quants with
 * do_rmse. */
static float fit_scale_q3(int n, int nmax, const float *x, int8_t *L) {
    float max = 0, amax = 0;
    for (int i = 0; i < n; i++) {
        float ax = fabsf(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    if (amax < GROUP_MAX_EPS) {
        for (int i = 0; i < n; i++)
            L[i] = 0;
        return 0.f;
    }
    const float iscale = -nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = imax(-nmax, imin(nmax - 1, quant_nearest_int(iscale * x[i])));
        L[i] = (int8_t)l;
        float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    for (int itry = 0; itry < 5; itry++) {
        int n_changed = 0;
        for (int i = 0; i < n; i++) {
            float w = x[i] * x[i];
            float slx = sumlx - w * x[i] * L[i];
            if (slx > 0) {
                float sl2 = suml2 - w * L[i] * L[i];
                int new_l = quant_nearest_int(x[i] * sl2 / slx);
                new_l = imax(-nmax, imin(nmax - 1, new_l));
                if (new_l != L[i]) {
                    slx += w * x[i] * new_l;
                    sl2 += w * new_l * new_l;
                    if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = (int8_t)new_l;
                        sumlx = slx;
                        suml2 = sl2;
                        n_changed++;
                    }
                }
            }
        }
        if (!n_changed)
            break;
    }
    for (int i = 0; i < n; i++)
        L[i] = (int8_t)(L[i] + nmax);
    return sumlx / suml2;
}

static void q3_k_quantize(const float *src, void *dst, int64_t n) {
    BlockQ3_K *y = dst;
    int8_t L[QK_K];
    float scales[QK_K / 16];
    for (int64_t b = 0; b < n / QK_K; b++, src += QK_K) {
        float max_scale = 0, amax = 0;
        for (int j = 0; j < QK_K / 16; j++) {
            scales[j] = fit_scale_q3(16, 4, src + 16 * j, L + 16 * j);
            float scale = fabsf(scales[j]);
            if (scale > amax) {
                amax = scale;
                max_scale = scales[j];
            }
        }
        memset(y[b].scales, 0, sizeof y[b].scales);
        if (max_scale) {
            float iscale = -32.f / max_scale;
            for (int j = 0; j < QK_K / 16; j++) {
                int8_t l = (int8_t)quant_nearest_int(iscale * scales[j]);
                l = (int8_t)(imax(-32, imin(31, l)) + 32);
                if (j < 8)
                    y[b].scales[j] = (uint8_t)(l & 0xF);
                else
                    y[b].scales[j - 8] |= (uint8_t)((l & 0xF) << 4);
                l = (int8_t)(l >> 4);
                y[b].scales[j % 4 + 8] |= (uint8_t)(l << (2 * (j / 4)));
            }
            y[b].d = fp32_to_f16(1 / iscale);
        } else {
            y[b].d = fp32_to_f16(0.f);
        }
        for (int j = 0; j < QK_K / 16; j++) {
            const float d = fp16_to_f32(y[b].d) * (int8_t)quant_k2_q3_scale(y[b].scales, j);
            if (!d)
                continue;
            for (int l = 0; l < 16; l++) {
                int q = quant_nearest_int(src[16 * j + l] / d);
                L[16 * j + l] = (int8_t)(imax(-4, imin(3, q)) + 4);
            }
        }
        /* bit (e / 32) of hmask[e % 32]: the high bit of element e */
        memset(y[b].hmask, 0, sizeof y[b].hmask);
        uint8_t low[QK_K];
        for (int e = 0; e < QK_K; e++) {
            int q = L[e];
            if (q > 3) {
                y[b].hmask[e % 32] |= (uint8_t)(1 << (e / 32));
                q -= 4;
            }
            low[e] = (uint8_t)q;
        }
        pack_low2(low, y[b].qs);
    }
}

/* q of element e of a Q3_K block: -4..3. */
static inline int q3_k_elem(const BlockQ3_K *x, int e) {
    int high = (x->hmask[e % 32] >> (e / 32)) & 1;
    return quant_k2_low2(x->qs, e) - (high ? 0 : 4);
}

static void q3_k_dequant(const void *src, float *dst, int64_t n) {
    const BlockQ3_K *x = src;
    for (int64_t b = 0; b < n / QK_K; b++) {
        const float d_all = fp16_to_f32(x[b].d);
        for (int e = 0; e < QK_K; e++) {
            const float dl = d_all * quant_k2_q3_scale(x[b].scales, e / 16);
            *dst++ = dl * q3_k_elem(&x[b], e);
        }
    }
}

static void q3_k_vec_dot(int64_t n, float *s, const void *w, const void *a) {
    const BlockQ3_K *x = w;
    const BlockQ8_K *y = a;
    float sumf = 0;
    for (int64_t b = 0; b < n / QK_K; b++) {
        int32_t sumi = 0;
        for (int g = 0; g < QK_K / 16; g++) {
            int32_t dot = 0;
            for (int l = 0; l < 16; l++)
                dot += q3_k_elem(&x[b], 16 * g + l) * y[b].qs[16 * g + l];
            sumi += quant_k2_q3_scale(x[b].scales, g) * dot;
        }
        const float d = y[b].d * fp16_to_f32(x[b].d);
        sumf += d * (float)sumi;
    }
    *s = sumf;
}

/* ---- table --------------------------------------------------------------- */

void quant_k2_fill(QuantOps *ops, SimdLevel level) {
    switch (level) {
    case SIMD_SCALAR:
        ops[DTYPE_Q2_K] = (QuantOps){.dequant = q2_k_dequant,
                                     .quantize = q2_k_quantize,
                                     .vec_dot = q2_k_vec_dot,
                                     .vec_dot_type = DTYPE_Q8_K};
        ops[DTYPE_Q3_K] = (QuantOps){.dequant = q3_k_dequant,
                                     .quantize = q3_k_quantize,
                                     .vec_dot = q3_k_vec_dot,
                                     .vec_dot_type = DTYPE_Q8_K};
        break;
    case SIMD_AVX2: quant_k2_avx2_fill(ops); break;
    case SIMD_AVX512: /* none of its own: AVX2's entries stay (quant.c) */ break;
    }
}
