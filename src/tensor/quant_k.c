/* quant_k.c - scalar kernels of the K-quants: Q4_K, Q5_K, Q6_K weights and
 * the Q8_K activation type they are dotted with.
 *
 * These are the reference twins: quantize follows ggml's quantize_row_*_ref
 * step by step (same searches, same float operations, same rounding) so the
 * bytes we write are the bytes llama.cpp writes; dequant follows ggml's
 * dequantize_row_*; vec_dot is plain integer loops over elements and is
 * never optimised. The SIMD versions live in quant_k_avx2.c and
 * quant_k_avx512.c and must agree with these (bit for bit for dequant and
 * Q8_K quantize; the dot products produce the same per-block integers and
 * combine them with the same float operations).
 *
 * Not here: the importance-matrix variants (quantize_*_impl with
 * quant_weights) - cgpt quantizes without an imatrix. */
#include <math.h>
#include <stddef.h>
#include <string.h>

#include "core/err.h"
#include "core/fp16.h"
#include "tensor/quant.h"
#include "tensor/quant_blocks_k.h"

#define GROUP_MAX_EPS 1e-15f /* below this a group is treated as all zero (ggml) */

static inline int imin(int a, int b) { return a < b ? a : b; }
static inline int imax(int a, int b) { return a > b ? a : b; }

/* ---- Q4_K / Q5_K: scale + min search ---------------------------------- */

float quant_fit_scale_min(int n, int nmax, const float *x, const float *w, uint8_t *L,
                          float *the_min, uint8_t *Laux, float rmin, float rdelta, int nstep,
                          bool mad) {
    float min = x[0], max = x[0];
    float sum_w = w[0];
    float sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < min)
            min = x[i];
        if (x[i] > max)
            max = x[i];
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if (min > 0)
        min = 0;
    if (max == min) {
        for (int i = 0; i < n; i++)
            L[i] = 0;
        *the_min = -min;
        return 0.f;
    }
    float iscale = nmax / (max - min);
    float scale = 1 / iscale;
    float best_error = 0;
    for (int i = 0; i < n; i++) {
        int l = quant_nearest_int(iscale * (x[i] - min));
        L[i] = (uint8_t)imax(0, imin(nmax, l));
        float diff = scale * L[i] + min - x[i];
        best_error += w[i] * (mad ? fabsf(diff) : diff * diff);
    }
    for (int is = 0; is <= nstep; is++) {
        iscale = (rmin + rdelta * is + nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; i++) {
            int l = imax(0, imin(nmax, quant_nearest_int(iscale * (x[i] - min))));
            Laux[i] = (uint8_t)l;
            sum_l += w[i] * l;
            sum_l2 += w[i] * l * l;
            sum_xl += w[i] * l * x[i];
        }
        float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float cur_error = 0;
            for (int i = 0; i < n; i++) {
                float diff = this_scale * Laux[i] + this_min - x[i];
                cur_error += w[i] * (mad ? fabsf(diff) : diff * diff);
            }
            if (cur_error < best_error) {
                memcpy(L, Laux, (size_t)n);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
}

/* Shared first half of Q4_K/Q5_K quantization: fit each 32-element
 * sub-block, quantize the 8 scales and 8 mins to 6 bits against their
 * maxima, pack them, and requantize the elements against the packed scales.
 * Leaves L[0..256) in 0..nmax and fills d, dmin and scales. */
static void quantize_k_scales(const float *x, int nmax, float rmin, float rdelta, int nstep,
                              uint16_t *d_out, uint16_t *dmin_out, uint8_t *packed, uint8_t *L) {
    float scales[QK_K / 32], mins[QK_K / 32], weights[32];
    uint8_t Laux[32];
    float max_scale = 0, max_min = 0; /* the min is subtracted: both are >= 0 */
    for (int j = 0; j < QK_K / 32; j++) {
        const float *xs = x + 32 * j;
        float sum_x2 = 0;
        for (int l = 0; l < 32; l++)
            sum_x2 += xs[l] * xs[l];
        float av_x = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; l++)
            weights[l] = av_x + fabsf(xs[l]);
        scales[j] = quant_fit_scale_min(32, nmax, xs, weights, L + 32 * j, &mins[j], Laux, rmin,
                                        rdelta, nstep, false);
        if (scales[j] > max_scale)
            max_scale = scales[j];
        if (mins[j] > max_min)
            max_min = mins[j];
    }
    float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    for (int j = 0; j < QK_K / 32; j++) {
        /* the uint8_t truncation is ggml's: a negative fit wraps, then clamps to 63 */
        uint8_t ls = (uint8_t)quant_nearest_int(inv_scale * scales[j]);
        uint8_t lm = (uint8_t)quant_nearest_int(inv_min * mins[j]);
        ls = (uint8_t)imin(63, ls);
        lm = (uint8_t)imin(63, lm);
        if (j < 4) {
            packed[j] = ls;
            packed[j + 4] = lm;
        } else {
            packed[j + 4] = (uint8_t)((ls & 0xF) | ((lm & 0xF) << 4));
            packed[j - 4] |= (uint8_t)((ls >> 4) << 6);
            packed[j] |= (uint8_t)((lm >> 4) << 6);
        }
    }
    *d_out = fp32_to_f16(max_scale / 63.f);
    *dmin_out = fp32_to_f16(max_min / 63.f);
    for (int j = 0; j < QK_K / 32; j++) {
        uint8_t sc, m;
        quant_k_scale_min(j, packed, &sc, &m);
        const float d = fp16_to_f32(*d_out) * sc;
        if (!d)
            continue;
        const float dm = fp16_to_f32(*dmin_out) * m;
        for (int l = 0; l < 32; l++) {
            int q = quant_nearest_int((x[32 * j + l] + dm) / d);
            L[32 * j + l] = (uint8_t)imax(0, imin(nmax, q));
        }
    }
}

/* ---- Q4_K --------------------------------------------------------------- */

static void q4_k_quantize(const float *src, void *dst, int64_t n) {
    BlockQ4_K *y = dst;
    uint8_t L[QK_K];
    for (int64_t b = 0; b < n / QK_K; b++, src += QK_K) {
        quantize_k_scales(src, 15, -1.f, 0.1f, 20, &y[b].d, &y[b].dmin, y[b].scales, L);
        for (int c = 0; c < 4; c++)
            for (int l = 0; l < 32; l++)
                y[b].qs[32 * c + l] = (uint8_t)(L[64 * c + l] | (L[64 * c + 32 + l] << 4));
    }
}

/* 4-bit quant of element e (0..255) of a Q4_K/Q5_K qs array. */
static inline int nibble_k(const uint8_t *qs, int e) {
    uint8_t byte = qs[32 * (e / 64) + e % 32];
    return (e % 64) < 32 ? (byte & 0xF) : (byte >> 4);
}

/* The Q4_K and Q5_K twins differ only in how an element's quant is read:
 * both blocks start with fp16 d, dmin and the packed 6-bit scales. */
typedef int (*QuantKElem)(const void *block, int e);
_Static_assert(offsetof(BlockQ4_K, d) == offsetof(BlockQ5_K, d) &&
                   offsetof(BlockQ4_K, dmin) == offsetof(BlockQ5_K, dmin) &&
                   offsetof(BlockQ4_K, scales) == offsetof(BlockQ5_K, scales),
               "Q4_K and Q5_K share the d, dmin, scales header");

static int q4_k_elem(const void *block, int e) {
    return nibble_k(((const BlockQ4_K *)block)->qs, e);
}

/* y = d*sc_j*q - dmin*m_j per sub-block j of 32. */
static void qk_min_dequant(const void *src, size_t block_bytes, QuantKElem elem, float *dst,
                           int64_t n) {
    for (int64_t b = 0; b < n / QK_K; b++) {
        const uint8_t *blk = (const uint8_t *)src + (size_t)b * block_bytes;
        const BlockQ4_K *hdr = (const BlockQ4_K *)blk; /* d, dmin, scales: same place in Q5_K */
        const float d = fp16_to_f32(hdr->d), min = fp16_to_f32(hdr->dmin);
        for (int j = 0; j < 8; j++) {
            uint8_t sc, m;
            quant_k_scale_min(j, hdr->scales, &sc, &m);
            const float dl = d * sc, ml = min * m;
            for (int l = 0; l < 32; l++)
                *dst++ = dl * elem(blk, 32 * j + l) - ml;
        }
    }
}

/* sum_b yd*(xd*sum_j sc_j*sum(q*a) - xdmin*sum_j m_j*sum(a)), the integer
 * parts exact. The mins term sums the activations directly, not via bsums,
 * so that the SIMD kernels (which use bsums) are checked against it. */
static float qk_min_dot(int64_t n, const void *w, size_t block_bytes, QuantKElem elem,
                        const BlockQ8_K *y) {
    float sumf = 0;
    for (int64_t b = 0; b < n / QK_K; b++) {
        const uint8_t *blk = (const uint8_t *)w + (size_t)b * block_bytes;
        const BlockQ4_K *hdr = (const BlockQ4_K *)blk;
        int32_t sumi = 0, summ = 0;
        for (int j = 0; j < 8; j++) {
            uint8_t sc, m;
            quant_k_scale_min(j, hdr->scales, &sc, &m);
            int32_t dot = 0, sum_a = 0;
            for (int l = 0; l < 32; l++) {
                int e = 32 * j + l;
                dot += elem(blk, e) * y[b].qs[e];
                sum_a += y[b].qs[e];
            }
            sumi += sc * dot;
            summ += m * sum_a;
        }
        const float d = y[b].d * fp16_to_f32(hdr->d);
        const float dmin = y[b].d * fp16_to_f32(hdr->dmin);
        sumf += d * (float)sumi - dmin * (float)summ;
    }
    return sumf;
}

static void q4_k_dequant(const void *src, float *dst, int64_t n) {
    qk_min_dequant(src, sizeof(BlockQ4_K), q4_k_elem, dst, n);
}

static void q4_k_vec_dot(int64_t n, float *s, const void *w, const void *a) {
    *s = qk_min_dot(n, w, sizeof(BlockQ4_K), q4_k_elem, a);
}

/* ---- Q5_K --------------------------------------------------------------- */

static void q5_k_quantize(const float *src, void *dst, int64_t n) {
    BlockQ5_K *y = dst;
    uint8_t L[QK_K];
    for (int64_t b = 0; b < n / QK_K; b++, src += QK_K) {
        quantize_k_scales(src, 31, -0.5f, 0.1f, 15, &y[b].d, &y[b].dmin, y[b].scales, L);
        memset(y[b].qh, 0, sizeof y[b].qh);
        for (int c = 0; c < 4; c++) {
            for (int l = 0; l < 32; l++) {
                int lo = L[64 * c + l], hi = L[64 * c + 32 + l];
                if (lo > 15) {
                    lo -= 16;
                    y[b].qh[l] |= (uint8_t)(1 << (2 * c));
                }
                if (hi > 15) {
                    hi -= 16;
                    y[b].qh[l] |= (uint8_t)(2 << (2 * c));
                }
                y[b].qs[32 * c + l] = (uint8_t)(lo | (hi << 4));
            }
        }
    }
}

/* 5-bit quant of element e of a Q5_K block: the nibble, and bit 2c of
 * qh[l] for element 64c+l, bit 2c+1 for 64c+32+l. */
static int q5_k_elem(const void *block, int e) {
    const BlockQ5_K *x = block;
    int bit = (x->qh[e % 32] >> (e / 32)) & 1;
    return nibble_k(x->qs, e) | (bit << 4);
}

static void q5_k_dequant(const void *src, float *dst, int64_t n) {
    qk_min_dequant(src, sizeof(BlockQ5_K), q5_k_elem, dst, n);
}

static void q5_k_vec_dot(int64_t n, float *s, const void *w, const void *a) {
    *s = qk_min_dot(n, w, sizeof(BlockQ5_K), q5_k_elem, a);
}

/* ---- Q6_K --------------------------------------------------------------- */

/* Symmetric fit of x[0..n) ~ scale*(L - nmax), L in 0..2*nmax-1, weights
 * x^2: the plain grid at -nmax/max, then 18 nearby grids, keeping the one
 * with the best least-squares fit. ggml's make_qx_quants with rmse_type 1
 * and no importance weights. Returns the scale (negative when the largest
 * magnitude is positive, as ggml). */
static float fit_scale_sym(int n, int nmax, const float *x, int8_t *L) {
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
    float iscale = -nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = imax(-nmax, imin(nmax - 1, quant_nearest_int(iscale * x[i])));
        L[i] = (int8_t)(l + nmax);
        float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    float scale = suml2 ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0)
            continue;
        iscale = -(nmax + 0.1f * is) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; i++) {
            int l = imax(-nmax, imin(nmax - 1, quant_nearest_int(iscale * x[i])));
            float w = x[i] * x[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++) {
                int l = imax(-nmax, imin(nmax - 1, quant_nearest_int(iscale * x[i])));
                L[i] = (int8_t)(nmax + l);
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

static void q6_k_quantize(const float *src, void *dst, int64_t n) {
    BlockQ6_K *y = dst;
    int8_t L[QK_K];
    float scales[QK_K / 16];
    for (int64_t b = 0; b < n / QK_K; b++, src += QK_K) {
        float max_scale = 0, max_abs_scale = 0;
        for (int ib = 0; ib < QK_K / 16; ib++) {
            scales[ib] = fit_scale_sym(16, 32, src + 16 * ib, L + 16 * ib);
            if (fabsf(scales[ib]) > max_abs_scale) {
                max_abs_scale = fabsf(scales[ib]);
                max_scale = scales[ib];
            }
        }
        if (max_abs_scale < GROUP_MAX_EPS) {
            memset(&y[b], 0, sizeof y[b]);
            continue;
        }
        float iscale = -128.f / max_scale;
        y[b].d = fp32_to_f16(1 / iscale);
        for (int ib = 0; ib < QK_K / 16; ib++)
            y[b].scales[ib] = (int8_t)imin(127, quant_nearest_int(iscale * scales[ib]));
        for (int j = 0; j < QK_K / 16; j++) {
            float d = fp16_to_f32(y[b].d) * y[b].scales[j];
            if (!d)
                continue;
            for (int l = 0; l < 16; l++) {
                int q = imax(-32, imin(31, quant_nearest_int(src[16 * j + l] / d)));
                L[16 * j + l] = (int8_t)(q + 32);
            }
        }
        for (int h = 0; h < 2; h++) {
            const int8_t *Lh = L + 128 * h;
            uint8_t *ql = y[b].ql + 64 * h, *qh = y[b].qh + 32 * h;
            for (int l = 0; l < 32; l++) {
                ql[l] = (uint8_t)((Lh[l] & 0xF) | ((Lh[l + 64] & 0xF) << 4));
                ql[l + 32] = (uint8_t)((Lh[l + 32] & 0xF) | ((Lh[l + 96] & 0xF) << 4));
                qh[l] = (uint8_t)((Lh[l] >> 4) | ((Lh[l + 32] >> 4) << 2) |
                                  ((Lh[l + 64] >> 4) << 4) | ((Lh[l + 96] >> 4) << 6));
            }
        }
    }
}

/* 6-bit quant of element e of a Q6_K block, already centred: -32..31. */
static inline int sext_k6(const BlockQ6_K *x, int e) {
    int h = e / 128, r = e % 128, l = r % 32, part = r / 32; /* part 0..3 */
    uint8_t lo = x->ql[64 * h + l + 32 * (part & 1)];
    int low4 = part < 2 ? (lo & 0xF) : (lo >> 4);
    int high2 = (x->qh[32 * h + l] >> (2 * part)) & 3;
    return (low4 | (high2 << 4)) - 32;
}

static void q6_k_dequant(const void *src, float *dst, int64_t n) {
    const BlockQ6_K *x = src;
    for (int64_t b = 0; b < n / QK_K; b++) {
        const float d = fp16_to_f32(x[b].d);
        for (int e = 0; e < QK_K; e++) {
            const float dl = d * x[b].scales[e / 16];
            dst[e] = dl * sext_k6(&x[b], e);
        }
        dst += QK_K;
    }
}

static void q6_k_vec_dot(int64_t n, float *s, const void *w, const void *a) {
    const BlockQ6_K *x = w;
    const BlockQ8_K *y = a;
    float sumf = 0;
    for (int64_t b = 0; b < n / QK_K; b++) {
        int32_t sumi = 0;
        for (int g = 0; g < QK_K / 16; g++) {
            int32_t dot = 0;
            for (int l = 0; l < 16; l++)
                dot += sext_k6(&x[b], 16 * g + l) * y[b].qs[16 * g + l];
            sumi += x[b].scales[g] * dot;
        }
        const float d = y[b].d * fp16_to_f32(x[b].d);
        sumf += d * (float)sumi;
    }
    *s = sumf;
}

/* ---- Q8_K --------------------------------------------------------------- */

/* As ggml: with 'max' the first element of largest magnitude, q = x*(-127/max)
 * rounded and d = max/-127, so d carries the opposite sign of 'max' and the
 * largest element quantizes to -127. An all-zero block is all zeros. */
static void q8_k_quantize(const float *src, void *dst, int64_t n) {
    BlockQ8_K *y = dst;
    for (int64_t b = 0; b < n / QK_K; b++, src += QK_K) {
        float max = 0, amax = 0;
        for (int j = 0; j < QK_K; j++) {
            float ax = fabsf(src[j]);
            if (ax > amax) {
                amax = ax;
                max = src[j];
            }
        }
        if (!amax) {
            memset(&y[b], 0, sizeof y[b]);
            continue;
        }
        const float iscale = -127.f / max;
        for (int j = 0; j < QK_K; j++)
            y[b].qs[j] = (int8_t)imin(127, quant_nearest_int(iscale * src[j]));
        for (int g = 0; g < QK_K / 16; g++) {
            int sum = 0;
            for (int l = 0; l < 16; l++)
                sum += y[b].qs[16 * g + l];
            y[b].bsums[g] = (int16_t)sum;
        }
        y[b].d = 1 / iscale;
    }
}

static void q8_k_dequant(const void *src, float *dst, int64_t n) {
    const BlockQ8_K *x = src;
    for (int64_t b = 0; b < n / QK_K; b++)
        for (int j = 0; j < QK_K; j++)
            *dst++ = x[b].d * x[b].qs[j];
}

/* ---- table -------------------------------------------------------------- */

void quant_k_fill(QuantOps *ops, SimdLevel level) {
    switch (level) {
    case SIMD_SCALAR:
        ops[DTYPE_Q4_K] = (QuantOps){.dequant = q4_k_dequant,
                                     .quantize = q4_k_quantize,
                                     .vec_dot = q4_k_vec_dot,
                                     .vec_dot_type = DTYPE_Q8_K};
        ops[DTYPE_Q5_K] = (QuantOps){.dequant = q5_k_dequant,
                                     .quantize = q5_k_quantize,
                                     .vec_dot = q5_k_vec_dot,
                                     .vec_dot_type = DTYPE_Q8_K};
        ops[DTYPE_Q6_K] = (QuantOps){.dequant = q6_k_dequant,
                                     .quantize = q6_k_quantize,
                                     .vec_dot = q6_k_vec_dot,
                                     .vec_dot_type = DTYPE_Q8_K};
        ops[DTYPE_Q8_K] = (QuantOps){.dequant = q8_k_dequant,
                                     .quantize = q8_k_quantize,
                                     .vec_dot = NULL,
                                     .vec_dot_type = DTYPE_Q8_K};
        break;
    case SIMD_AVX2: quant_k_avx2_fill(ops); break;
    case SIMD_AVX512: quant_k_avx512_fill(ops); break;
    }
}
