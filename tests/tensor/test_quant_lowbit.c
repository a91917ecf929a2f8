/* test_quant_lowbit.c - kernels of Q2_K, Q3_K (quant_k2*.c) and IQ4_NL,
 * IQ4_XS, MXFP4 (quant_iq*.c).
 *
 * (1) hand-built blocks decode to values worked out by hand from the
 *     layout (ggml-common.h), at every level;
 * (2) quantize -> dequant error on gaussian data within measured bounds
 *     (and above a floor: a quantizer that does not quantize fails), exact
 *     on MXFP4's own grid, zeros for zero blocks, finite and close for
 *     spikes and magnitudes near the fp16 limit;
 * (3) every SIMD level against the scalar twin on 1, 7 and 33 blocks of
 *     quantized, random-byte and zero weights against quantized and
 *     random activations (the extremes -128 and 127 included): the same
 *     bits for Q2_K, Q3_K, IQ4_XS (same integers, same float order), within
 *     1e-5 relative (+1e-6 of sum |w a|) for IQ4_NL and MXFP4 (8-lane sums);
 * (4) vec_dot at every level against a double dot of the dequantized
 *     operands. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../testutil.h"
#include "core/cpu.h"
#include "core/fp16.h"
#include "core/rng.h"
#include "tensor/dtype.h"
#include "tensor/quant.h"
#include "tensor/quant_blocks_iq.h"
#include "tensor/quant_blocks_k2.h"
#include "tensor/quant_blocks_legacy.h"

#define FP16_ONE 0x3C00     /* 1.0 */
#define FP16_HALF 0x3800    /* 0.5 */
#define FP16_QUARTER 0x3400 /* 0.25 */

typedef struct {
    DType t;
    bool same_bits; /* SIMD vec_dot gives the scalar twin's bits */
} TypeCase;

static const TypeCase CASES[5] = {{DTYPE_Q2_K, true},
                                  {DTYPE_Q3_K, true},
                                  {DTYPE_IQ4_XS, true},
                                  {DTYPE_IQ4_NL, false},
                                  {DTYPE_MXFP4, false}};

static const QuantOps *ops_at(DType t, SimdLevel l) {
    const QuantOps *o = quant_ops_at(t, l);
    cr_assert_not_null(o, "no kernels for %s at %s", dtype_info(t)->name, cpu_simd_name(l));
    return o;
}

static void *xcalloc(size_t n) {
    void *p = calloc(1, n ? n : 1);
    cr_assert_not_null(p);
    return p;
}

/* Decodes 'x' (one block of t) at every level and compares with want. */
static void expect_decodes(DType t, const void *x, const float *want, int n) {
    float got[QK_K];
    for (int l = SIMD_SCALAR; l <= (int)cpu_simd_level(); l++) {
        ops_at(t, (SimdLevel)l)->dequant(x, got, n);
        cr_assert(check_close(dtype_info(t)->name, got, want, n, 0, 0), "%s at %s",
                  dtype_info(t)->name, cpu_simd_name((SimdLevel)l));
    }
}

/* ---- (1) hand-built blocks ----------------------------------------------- */

Test(quant_lowbit_hand, table_entries) {
    cr_assert_eq(dtype_row_bytes(DTYPE_Q2_K, QK_K), sizeof(BlockQ2_K));
    cr_assert_eq(dtype_row_bytes(DTYPE_Q3_K, QK_K), sizeof(BlockQ3_K));
    cr_assert_eq(dtype_row_bytes(DTYPE_IQ4_NL, 32), sizeof(BlockIQ4_NL));
    cr_assert_eq(dtype_row_bytes(DTYPE_IQ4_XS, QK_K), sizeof(BlockIQ4_XS));
    cr_assert_eq(dtype_row_bytes(DTYPE_MXFP4, 32), sizeof(BlockMXFP4));
    for (int l = SIMD_SCALAR; l <= SIMD_AVX512; l++)
        for (int i = 0; i < 5; i++) {
            const QuantOps *o = ops_at(CASES[i].t, (SimdLevel)l);
            cr_assert(o->dequant && o->quantize && o->vec_dot);
            DType want =
                CASES[i].t == DTYPE_IQ4_NL || CASES[i].t == DTYPE_MXFP4 ? DTYPE_Q8_0 : DTYPE_Q8_K;
            cr_assert_eq(o->vec_dot_type, want, "%s", dtype_info(CASES[i].t)->name);
            cr_assert(dtype_info(CASES[i].t)->supported);
        }
}

Test(quant_lowbit_hand, q2_k_decodes_by_format) {
    /* sub-block g: scale (g + 1) % 16, min 15 - g; d = 1, dmin = 0.5, so a zero
     * quant decodes to -0.5 (15 - g) */
    BlockQ2_K x;
    memset(&x, 0, sizeof x);
    x.d = FP16_ONE;
    x.dmin = FP16_HALF;
    for (int g = 0; g < 16; g++)
        x.scales[g] = (uint8_t)(((g + 1) % 16) | ((15 - g) << 4));
    x.qs[0] = 0x0B;  /* bits 0-1 = 3: element 0; bits 2-3 = 2: element 32 */
    x.qs[40] = 0x10; /* half 1, l = 8, bits 4-5 = 1: element 128 + 64 + 8 = 200 */
    x.qs[63] = 0xC0; /* half 1, l = 31, bits 6-7 = 3: element 255 */
    float want[QK_K];
    for (int e = 0; e < QK_K; e++)
        want[e] = -0.5f * (float)(15 - e / 16);
    want[0] = 1 * 3 - 7.5f;    /* g 0: sc 1, m 15 */
    want[32] = 3 * 2 - 6.5f;   /* g 2: sc 3, m 13 */
    want[200] = 13 * 1 - 1.5f; /* g 12: sc 13, m 3 */
    want[255] = 0 * 3 - 0.0f;  /* g 15: sc 0, m 0 */
    expect_decodes(DTYPE_Q2_K, &x, want, QK_K);
}

/* Raw 6-bit Q3_K scales s[0..16) packed as the layout says. */
static void pack_q3_scales(const int s[16], uint8_t out[12]) {
    memset(out, 0, 12);
    for (int j = 0; j < 16; j++) {
        out[j % 8] |= (uint8_t)((s[j] & 0xF) << (4 * (j / 8)));
        out[8 + j % 4] |= (uint8_t)((s[j] >> 4) << (2 * (j / 4)));
    }
}

Test(quant_lowbit_hand, q3_k_decodes_by_format) {
    int s[16]; /* raw 3, 7, ..., 63: centred -29, -25, ..., 31 */
    for (int j = 0; j < 16; j++)
        s[j] = 4 * j + 3;
    BlockQ3_K x;
    memset(&x, 0, sizeof x);
    x.d = FP16_QUARTER;
    pack_q3_scales(s, x.scales);
    x.qs[0] = 0x01;     /* element 0: low 2 = 1 */
    x.hmask[0] = 0x01;  /* ... high bit (bit 0 of hmask[0]) set: q = 1 */
    x.qs[1] = 0x0C;     /* element 33 (quarter 1, l = 1): low 2 = 3, high bit clear: q = -1 */
    x.qs[63] = 0x80;    /* element 255 (half 1, quarter 3, l = 31): low 2 = 2 */
    x.hmask[31] = 0x80; /* bit 7 of hmask[31]: element 255's high bit: q = 2 */
    float want[QK_K];
    for (int e = 0; e < QK_K; e++) /* zero bits: q = -4 */
        want[e] = 0.25f * (float)(s[e / 16] - 32) * -4;
    want[0] = 0.25f * -29 * 1;
    want[33] = 0.25f * -21 * -1;
    want[255] = 0.25f * 31 * 2;
    cr_assert_eq(want[0], -7.25f);
    expect_decodes(DTYPE_Q3_K, &x, want, QK_K);
}

Test(quant_lowbit_hand, iq4_nl_decodes_by_format) {
    BlockIQ4_NL x;
    memset(&x, 0, sizeof x);
    x.d = FP16_HALF;
    x.qs[0] = 0x0F;  /* element 0: index 15 (113); element 16: index 0 (-127) */
    x.qs[15] = 0x87; /* element 15: index 7 (-10); element 31: index 8 (1) */
    float want[32];
    for (int e = 0; e < 32; e++)
        want[e] = -63.5f;
    want[0] = 56.5f;
    want[15] = -5.0f;
    want[31] = 0.5f;
    expect_decodes(DTYPE_IQ4_NL, &x, want, 32);
}

Test(quant_lowbit_hand, iq4_xs_decodes_by_format) {
    /* group scales ls = 0, 63, 32, 33, 1, 40, 31, 20: centred -32, 31, 0, 1, -31, 8, -1, -12 */
    static const int ls[8] = {0, 63, 32, 33, 1, 40, 31, 20};
    BlockIQ4_XS x;
    memset(&x, 0, sizeof x);
    x.d = FP16_QUARTER;
    for (int ib = 0; ib < 8; ib++) {
        x.scales_l[ib / 2] |= (uint8_t)((ls[ib] & 0xF) << (4 * (ib % 2)));
        x.scales_h |= (uint16_t)((ls[ib] >> 4) << (2 * ib));
    }
    for (int i = 0; i < QK_K / 2; i++)
        x.qs[i] = 0x88;      /* index 8 everywhere: value 1 */
    x.qs[16 + 5] = 0xF8;     /* group 1: element 5 index 8, element 21 index 15 (113) */
    x.qs[16 * 7 + 15] = 0x0; /* group 7: elements 15 and 31 index 0 (-127) */
    float want[QK_K];
    for (int e = 0; e < QK_K; e++)
        want[e] = 0.25f * (float)(ls[e / 32] - 32);
    want[32 + 21] = 0.25f * 31 * 113;
    want[224 + 15] = want[224 + 31] = 0.25f * -12 * -127;
    expect_decodes(DTYPE_IQ4_XS, &x, want, QK_K);
}

Test(quant_lowbit_hand, mxfp4_decodes_by_format) {
    /* e: 128 -> 1; 0 and 1 -> the subnormals 2^-128, 2^-127; 250 -> 2^122 */
    static const uint8_t es[4] = {128, 0, 1, 250};
    for (int k = 0; k < 4; k++) {
        BlockMXFP4 x;
        memset(&x, 0, sizeof x);
        x.e = es[k];
        x.qs[0] = 0x7F; /* element 0: code 15 (-6, doubled -12); element 16: code 7 (+12) */
        x.qs[9] = 0x9A; /* element 9: code 10 (-2); element 25: code 9 (-1) */
        x.qs[3] = 0x08; /* element 3: code 8 (-0) */
        const float d = ldexpf(1.0f, es[k] - 128);
        float want[32] = {0};
        want[0] = -12 * d;
        want[16] = 12 * d;
        want[9] = -2 * d;
        want[25] = -1 * d;
        want[3] = -0.0f;
        expect_decodes(DTYPE_MXFP4, &x, want, 32);
    }
    cr_assert_eq(quant_iq_e8m0_half(0), ldexpf(1, -128));
    cr_assert_eq(quant_iq_e8m0_half(255), ldexpf(1, 127));
}

/* ---- (2) quantization --------------------------------------------------------- */

/* rms(dequant(quantize(x)) - x) / rms(x) for n values from 'x'. */
static double roundtrip_rel_rmse(DType t, const float *x, int64_t n) {
    float *back = xcalloc((size_t)n * sizeof(float));
    void *q = xcalloc(dtype_row_bytes(t, n));
    const QuantOps *o = ops_at(t, SIMD_SCALAR);
    o->quantize(x, q, n);
    o->dequant(q, back, n);
    double se = 0, ss = 0;
    for (int64_t i = 0; i < n; i++) {
        cr_assert(isfinite(back[i]), "%s: element %lld not finite", dtype_info(t)->name,
                  (long long)i);
        se += ((double)back[i] - x[i]) * ((double)back[i] - x[i]);
        ss += (double)x[i] * x[i];
    }
    free(back);
    free(q);
    return ss ? sqrt(se / ss) : sqrt(se);
}

Test(quant_lowbit_error, gaussian_roundtrip_bounds) {
    const int64_t n = 64 * QK_K;
    Rng r;
    rng_seed(&r, 1);
    float *x = xcalloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++)
        x[i] = rng_normal(&r);
    /* measured (seed 1): q2_k 0.298, q3_k 0.152, iq4_nl 0.0765, iq4_xs 0.0770,
     * mxfp4 0.116; the bounds are ~10% above, the floors ~20% below */
    static const double hi[5] = {0.33, 0.17, 0.085, 0.085, 0.13};
    static const double lo[5] = {0.24, 0.12, 0.06, 0.06, 0.09};
    for (int i = 0; i < 5; i++) {
        double e = roundtrip_rel_rmse(CASES[i].t, x, n);
        cr_log_info("%s rel rmse %.4f", dtype_info(CASES[i].t)->name, e);
        cr_expect(e < hi[i] && e > lo[i], "%s rel rmse %g not in (%g, %g)",
                  dtype_info(CASES[i].t)->name, e, lo[i], hi[i]);
    }
    free(x);
}

Test(quant_lowbit_error, zero_spike_and_large_blocks) {
    const int64_t n = 2 * QK_K;
    float x[2 * QK_K], back[2 * QK_K];
    uint8_t q[2 * 292];
    Rng r;
    rng_seed(&r, 2);
    for (int i = 0; i < 5; i++) {
        DType t = CASES[i].t;
        const QuantOps *o = ops_at(t, SIMD_SCALAR);
        const char *name = dtype_info(t)->name;
        /* all zero: decodes to zeros (IQ4_XS stores d = -0, as ggml) */
        memset(x, 0, sizeof x);
        memset(q, 0xAB, sizeof q);
        o->quantize(x, q, n);
        o->dequant(q, back, n);
        for (int64_t k = 0; k < n; k++)
            cr_assert(back[k] == 0.0f, "%s zero block: element %lld = %g", name, (long long)k,
                      back[k]);
        /* one spike per 32 elements (12288 and -3072 alternating, on MXFP4's
         * grid), zeros elsewhere: spikes within 5%, every element within 10%
         * of the largest */
        for (int64_t k = 0; k < n; k++)
            x[k] = k % 32 == 5 ? ((k / 32) % 2 ? -3072.0f : 12288.0f) : 0.0f;
        o->quantize(x, q, n);
        o->dequant(q, back, n);
        for (int64_t k = 0; k < n; k++) {
            float tol = x[k] ? 0.05f * fabsf(x[k]) : 0.1f * 12288.0f;
            cr_assert(fabsf(back[k] - x[k]) <= tol, "%s spike: element %lld: %g want %g", name,
                      (long long)k, back[k], x[k]);
        }
        /* magnitudes near the fp16 limit: finite, error as for gaussian data */
        for (int64_t k = 0; k < n; k++)
            x[k] = (rng_f32(&r) * 2 - 1) * 6.0e4f;
        double e = roundtrip_rel_rmse(t, x, n);
        cr_expect(e < 0.35, "%s near fp16 max: rel rmse %g", name, e);
    }
}

Test(quant_lowbit_error, mxfp4_exact_on_its_grid_and_deterministic) {
    /* codebook values at scale 2^k with a +-12 in each block quantize exactly */
    float x[64], back[64];
    BlockMXFP4 q[2];
    for (int i = 0; i < 64; i++)
        x[i] = ldexpf((float)MXFP4_VALUES[(i * 7) % 16], i < 32 ? -3 : 9);
    x[10] = ldexpf(-12, -3);
    x[40] = ldexpf(12, 9);
    ops_at(DTYPE_MXFP4, SIMD_SCALAR)->quantize(x, q, 64);
    ops_at(DTYPE_MXFP4, SIMD_SCALAR)->dequant(q, back, 64);
    cr_assert(check_close("mxfp4 grid", back, x, 64, 0, 0));
    cr_assert_eq(q[0].e, 128 - 3);
    cr_assert_eq(q[1].e, 128 + 9);
    /* every type: quantize twice gives the same bytes */
    Rng r;
    rng_seed(&r, 3);
    float g[3 * QK_K];
    for (int i = 0; i < 3 * QK_K; i++)
        g[i] = rng_normal(&r);
    for (int i = 0; i < 5; i++) {
        size_t bytes = dtype_row_bytes(CASES[i].t, 3 * QK_K);
        uint8_t *a = xcalloc(bytes), *b = xcalloc(bytes);
        memset(b, 0x5A, bytes);
        ops_at(CASES[i].t, SIMD_SCALAR)->quantize(g, a, 3 * QK_K);
        ops_at(CASES[i].t, SIMD_SCALAR)->quantize(g, b, 3 * QK_K);
        cr_assert_eq(memcmp(a, b, bytes), 0, "%s not deterministic", dtype_info(CASES[i].t)->name);
        free(a);
        free(b);
    }
}

/* ---- data for (3) and (4) --------------------------------------------------- */

enum { W_GAUSS, W_RANDOM_BYTES, W_ZERO_BLOCKS, W_KINDS };
enum { A_GAUSS, A_RANDOM, A_OFFSET, A_KINDS };

/* Weights of type t: quantized gaussian, random bytes with finite moderate
 * scales, or quantized data whose every other block is zero. */
static void make_weights(DType t, void *w, int64_t n, int kind, Rng *r) {
    const DTypeInfo *ti = dtype_info(t);
    int64_t nb = n / ti->block_size;
    if (kind == W_RANDOM_BYTES) {
        uint8_t *p = w;
        for (size_t i = 0; i < (size_t)(nb * ti->type_size); i++)
            p[i] = (uint8_t)rng_u64(r);
        for (int64_t b = 0; b < nb; b++) {
            uint8_t *blk = p + b * ti->type_size;
            uint16_t d = fp32_to_f16((rng_f32(r) - 0.5f) * 0.05f);
            uint16_t dmin = fp32_to_f16(rng_f32(r) * 0.05f);
            if (t == DTYPE_Q2_K) {
                memcpy(blk + offsetof(BlockQ2_K, d), &d, 2);
                memcpy(blk + offsetof(BlockQ2_K, dmin), &dmin, 2);
            } else if (t == DTYPE_Q3_K) {
                memcpy(blk + offsetof(BlockQ3_K, d), &d, 2);
            } else if (t == DTYPE_MXFP4) {
                blk[0] = (uint8_t)(110 + rng_u64(r) % 30);
            } else { /* IQ4_NL, IQ4_XS: d first */
                memcpy(blk, &d, 2);
            }
        }
        return;
    }
    float *x = xcalloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++)
        x[i] = kind == W_ZERO_BLOCKS && (i / ti->block_size) % 2 ? 0.0f : rng_normal(r) * 0.3f;
    ops_at(t, SIMD_SCALAR)->quantize(x, w, n);
    free(x);
}

/* Activations of type at: quantized gaussian, random quants with every
 * value (-128 and 127 often) and consistent bsums, or gaussian + 3. */
static void make_acts(DType at, void *a, int64_t n, int kind, Rng *r) {
    if (kind == A_RANDOM) {
        int8_t q[QK_K];
        for (int64_t b = 0; b < n / (at == DTYPE_Q8_K ? QK_K : 32); b++) {
            int bs = at == DTYPE_Q8_K ? QK_K : 32;
            for (int j = 0; j < bs; j++) {
                uint64_t u = rng_u64(r);
                q[j] = (u & 0xF00) == 0 ? (int8_t)((u & 1) ? 127 : -128) : (int8_t)u;
            }
            if (at == DTYPE_Q8_K) {
                BlockQ8_K *y = (BlockQ8_K *)a + b;
                y->d = (rng_f32(r) - 0.5f) * 0.1f;
                memcpy(y->qs, q, QK_K);
                for (int g = 0; g < QK_K / 16; g++) {
                    int s = 0;
                    for (int l = 0; l < 16; l++)
                        s += q[16 * g + l];
                    y->bsums[g] = (int16_t)s;
                }
            } else {
                BlockQ8_0 *y = (BlockQ8_0 *)a + b;
                y->d = fp32_to_f16((rng_f32(r) - 0.5f) * 0.1f);
                memcpy(y->qs, q, 32);
            }
        }
        return;
    }
    float *x = xcalloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++)
        x[i] = rng_normal(r) + (kind == A_OFFSET ? 3.0f : 0.0f);
    ops_at(at, SIMD_SCALAR)->quantize(x, a, n);
    free(x);
}

/* double dot of the dequantized operands; *sumabs = sum |w a| */
static double ref_dot(DType t, DType at, const void *w, const void *a, int64_t n, double *sumabs) {
    float *fw = xcalloc((size_t)n * sizeof(float)), *fa = xcalloc((size_t)n * sizeof(float));
    ops_at(t, SIMD_SCALAR)->dequant(w, fw, n);
    ops_at(at, SIMD_SCALAR)->dequant(a, fa, n);
    double s = 0, sa = 0;
    for (int64_t i = 0; i < n; i++) {
        s += (double)fw[i] * fa[i];
        sa += fabs((double)fw[i] * fa[i]);
    }
    free(fw);
    free(fa);
    *sumabs = sa;
    return s;
}

static const int64_t NBLOCKS[3] = {1, 7, 33};

/* Runs fn(case, n, w, a, want_scalar, sumabs) over every type, size and data pair. */
static void for_each_dot(void (*fn)(const TypeCase *c, int64_t n, const void *w, const void *a,
                                    float scalar, double ref, double sumabs),
                         uint64_t seed) {
    Rng r;
    rng_seed(&r, seed);
    for (int i = 0; i < 5; i++) {
        DType t = CASES[i].t, at = ops_at(t, SIMD_SCALAR)->vec_dot_type;
        for (int si = 0; si < 3; si++) {
            int64_t n = NBLOCKS[si] * QK_K; /* whole blocks of either size */
            if (dtype_info(t)->block_size == 32 && si < 2)
                n = NBLOCKS[si] * 32; /* 1 and 7 blocks of 32: odd tails */
            void *w = xcalloc(dtype_row_bytes(t, n)), *a = xcalloc(dtype_row_bytes(at, n));
            for (int kw = 0; kw < W_KINDS; kw++)
                for (int ka = 0; ka < A_KINDS; ka++) {
                    make_weights(t, w, n, kw, &r);
                    make_acts(at, a, n, ka, &r);
                    float scalar = NAN;
                    ops_at(t, SIMD_SCALAR)->vec_dot(n, &scalar, w, a);
                    double sumabs, ref = ref_dot(t, at, w, a, n, &sumabs);
                    fn(&CASES[i], n, w, a, scalar, ref, sumabs);
                }
            free(w);
            free(a);
        }
    }
}

/* ---- (3) SIMD vs scalar -------------------------------------------------------- */

static void simd_vs_scalar(const TypeCase *c, int64_t n, const void *w, const void *a, float scalar,
                           double ref, double sumabs) {
    (void)ref;
    for (int l = SIMD_SCALAR + 1; l <= (int)cpu_simd_level(); l++) {
        float got = NAN;
        ops_at(c->t, (SimdLevel)l)->vec_dot(n, &got, w, a);
        if (c->same_bits) {
            cr_assert_eq(fp_bits(got), fp_bits(scalar), "%s %s n=%lld: got %.9g, scalar %.9g",
                         dtype_info(c->t)->name, cpu_simd_name((SimdLevel)l), (long long)n, got,
                         scalar);
        } else {
            double tol = 1e-5 * fabs(scalar) + 1e-6 * sumabs;
            cr_assert(fabs((double)got - scalar) <= tol, "%s %s n=%lld: got %.9g, scalar %.9g",
                      dtype_info(c->t)->name, cpu_simd_name((SimdLevel)l), (long long)n, got,
                      scalar);
        }
    }
}

Test(quant_lowbit_simd, vec_dot_matches_scalar) {
    if (cpu_simd_level() == SIMD_SCALAR)
        cr_skip_test("no SIMD level on this CPU");
    for_each_dot(simd_vs_scalar, 42);
}

/* ---- (4) vec_dot vs the dequantized operands ------------------------------------ */

static void dot_vs_double(const TypeCase *c, int64_t n, const void *w, const void *a, float scalar,
                          double ref, double sumabs) {
    (void)scalar;
    for (int l = SIMD_SCALAR; l <= (int)cpu_simd_level(); l++) {
        float got = NAN;
        ops_at(c->t, (SimdLevel)l)->vec_dot(n, &got, w, a);
        double tol = 1e-5 * fabs(ref) + 1e-6 * sumabs;
        cr_assert(fabs((double)got - ref) <= tol, "%s %s n=%lld: got %.9g want %.9g (sum|wa| %.3g)",
                  dtype_info(c->t)->name, cpu_simd_name((SimdLevel)l), (long long)n, got, ref,
                  sumabs);
    }
}

Test(quant_lowbit_dot, vec_dot_matches_dequantized_double) { for_each_dot(dot_vs_double, 45); }
