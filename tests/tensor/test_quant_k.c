/* test_quant_k.c - K-quant kernels (Q4_K, Q5_K, Q6_K, Q8_K).
 *
 * (1) hand-built blocks decode to values worked out by hand from the format;
 * (2) quantize -> dequant error on gaussian data, per type;
 * (3) every SIMD level this CPU has against the scalar twin: vec_dot within
 *     1e-5, dequant and Q8_K quantize bit-identical, on 1, 7 and 33 blocks of
 *     awkward data;
 * (4) vec_dot against a double-precision dot of the dequantized operands. */
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
#include "tensor/quant_blocks_k.h"

#define FP16_ONE 0x3C00     /* 1.0 */
#define FP16_HALF 0x3800    /* 0.5 */
#define FP16_QUARTER 0x3400 /* 0.25 */

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

static void expect_floats(const char *name, const float *got, const float *want, int n) {
    cr_assert(check_close(name, got, want, n, 0, 0), "%s: decoded values differ", name);
}

/* ---- (1) hand-built blocks ---------------------------------------------- */

/* Scales {1, 2, 3, 63, 17, 33, 48, 5} and mins {0, 1, 62, 4, 20, 7, 63, 16},
 * packed by hand: bytes 0-3 = sc[0..3] | (sc[4..7] >> 4) << 6, bytes 4-7 =
 * m[0..3] | (m[4..7] >> 4) << 6, bytes 8-11 = (sc[4+i] & 15) | (m[4+i] & 15) << 4. */
static const uint8_t HAND_SCALES[12] = {0x41, 0x82, 0xC3, 0x3F, 0x40, 0x01,
                                        0xFE, 0x44, 0x41, 0x71, 0xF0, 0x05};
/* With d = 1 and dmin = 0.5, a zero quant in sub-block j decodes to -0.5*m[j]. */
static const float HAND_ZERO[8] = {0, -0.5f, -31, -2, -10, -3.5f, -31.5f, -8};

static void hand_q4_k(BlockQ4_K *x) {
    memset(x, 0, sizeof *x);
    x->d = FP16_ONE;
    x->dmin = FP16_HALF;
    memcpy(x->scales, HAND_SCALES, 12);
    x->qs[0] = 0x3A;   /* element 0 (sub 0) = 10, element 32 (sub 1) = 3 */
    x->qs[36] = 0xF7;  /* element 68 (sub 2) = 7, element 100 (sub 3) = 15 */
    x->qs[95] = 0x9C;  /* element 159 (sub 4) = 12, element 191 (sub 5) = 9 */
    x->qs[101] = 0x2E; /* element 197 (sub 6) = 14, element 229 (sub 7) = 2 */
}

Test(quant_k_hand, q4_k_decodes_by_format) {
    BlockQ4_K x;
    hand_q4_k(&x);
    float want[QK_K], got[QK_K];
    for (int e = 0; e < QK_K; e++)
        want[e] = HAND_ZERO[e / 32];
    want[0] = 1 * 10 - 0.0f;    /* sc 1, m 0 */
    want[32] = 2 * 3 - 0.5f;    /* sc 2, m 1 */
    want[68] = 3 * 7 - 31.0f;   /* sc 3, m 62 */
    want[100] = 63 * 15 - 2.0f; /* sc 63, m 4 */
    want[159] = 17 * 12 - 10.0f;
    want[191] = 33 * 9 - 3.5f;
    want[197] = 48 * 14 - 31.5f;
    want[229] = 5 * 2 - 8.0f;
    for (int l = SIMD_SCALAR; l <= (int)cpu_simd_level(); l++) {
        ops_at(DTYPE_Q4_K, (SimdLevel)l)->dequant(&x, got, QK_K);
        expect_floats(cpu_simd_name((SimdLevel)l), got, want, QK_K);
    }
}

Test(quant_k_hand, q5_k_decodes_by_format) {
    BlockQ5_K x;
    memset(&x, 0, sizeof x);
    x.d = FP16_ONE;
    x.dmin = FP16_HALF;
    memcpy(x.scales, HAND_SCALES, 12);
    x.qs[0] = 0x3A;
    x.qs[36] = 0xF7;
    x.qs[95] = 0x9C;
    x.qs[101] = 0x2E;
    x.qh[0] = 0x03;  /* fifth bit of element 0 (bit 0) and element 32 (bit 1) */
    x.qh[4] = 0x08;  /* bit 3: chunk 1 high half, element 100 */
    x.qh[31] = 0x10; /* bit 4: chunk 2 low half, element 159 */
    x.qh[10] = 0x80; /* bit 7: chunk 3 high half, element 234 (nibble 0) */
    float want[QK_K], got[QK_K];
    for (int e = 0; e < QK_K; e++)
        want[e] = HAND_ZERO[e / 32];
    want[0] = 1 * 26 - 0.0f;
    want[32] = 2 * 19 - 0.5f;
    want[68] = 3 * 7 - 31.0f;
    want[100] = 63 * 31 - 2.0f;
    want[159] = 17 * 28 - 10.0f;
    want[191] = 33 * 9 - 3.5f;
    want[197] = 48 * 14 - 31.5f;
    want[229] = 5 * 2 - 8.0f;
    want[234] = 5 * 16 - 8.0f;
    for (int l = SIMD_SCALAR; l <= (int)cpu_simd_level(); l++) {
        ops_at(DTYPE_Q5_K, (SimdLevel)l)->dequant(&x, got, QK_K);
        expect_floats(cpu_simd_name((SimdLevel)l), got, want, QK_K);
    }
}

static const int8_t HAND_Q6_SCALES[16] = {1, -1, 2, -2, 3, -3, 4,   -4,
                                          5, -5, 6, -6, 7, -7, 127, -128};

Test(quant_k_hand, q6_k_decodes_by_format) {
    BlockQ6_K x;
    memset(&x, 0, sizeof x);
    x.d = FP16_QUARTER;
    memcpy(x.scales, HAND_Q6_SCALES, 16);
    x.ql[0] = 0x5F; /* element 0 low 4 = 15, element 64 low 4 = 5 */
    x.qh[0] =
        0xE4; /* bits 0-1 = 0 (elem 0), 2-3 = 1 (elem 32), 4-5 = 2 (elem 64), 6-7 = 3 (elem 96) */
    x.ql[127] = 0xA0; /* second half, element 255 low 4 = 10 (high nibble of ql[64+63]) */
    x.qh[63] = 0xC0;  /* element 255 high 2 = 3 */
    float want[QK_K], got[QK_K];
    for (int e = 0; e < QK_K; e++)
        want[e] = 0.25f * HAND_Q6_SCALES[e / 16] * -32; /* zero quant: q - 32 = -32 */
    want[0] = 0.25f * 1 * (15 - 32);
    want[32] = 0.25f * 2 * (16 - 32);
    want[64] = 0.25f * 3 * (5 + 32 - 32);
    want[96] = 0.25f * 4 * (48 - 32);
    want[255] = 0.25f * -128 * (10 + 48 - 32);
    cr_assert_eq(want[240], 1024.0f);
    for (int l = SIMD_SCALAR; l <= (int)cpu_simd_level(); l++) {
        ops_at(DTYPE_Q6_K, (SimdLevel)l)->dequant(&x, got, QK_K);
        expect_floats(cpu_simd_name((SimdLevel)l), got, want, QK_K);
    }
}

Test(quant_k_hand, q8_k_decodes_and_quantizes_by_format) {
    BlockQ8_K x;
    memset(&x, 0, sizeof x);
    x.d = -0.5f;
    x.qs[0] = 127;
    x.qs[1] = -128;
    x.qs[255] = -1;
    float got[QK_K], want[QK_K] = {0};
    want[0] = -63.5f;
    want[1] = 64.0f;
    want[255] = 0.5f;
    ops_at(DTYPE_Q8_K, SIMD_SCALAR)->dequant(&x, got, QK_K);
    expect_floats("q8_k dequant", got, want, QK_K);

    /* x[j] = j - 100: largest magnitude 155 at j = 255, so d = 155 / -127 and
     * q = round(-127/155 * (j - 100)); ties cannot occur here. */
    float src[QK_K];
    for (int j = 0; j < QK_K; j++)
        src[j] = (float)(j - 100);
    for (int l = SIMD_SCALAR; l <= (int)cpu_simd_level(); l++) {
        BlockQ8_K y;
        ops_at(DTYPE_Q8_K, (SimdLevel)l)->quantize(src, &y, QK_K);
        cr_assert_float_eq(y.d, -155.0f / 127.0f, 1e-7f, "%s: d %g", cpu_simd_name((SimdLevel)l),
                           y.d);
        cr_assert_eq(y.qs[0], 82); /* 81.94 */
        cr_assert_eq(y.qs[99], 1); /* 0.82 */
        cr_assert_eq(y.qs[100], 0);
        cr_assert_eq(y.qs[101], -1);
        cr_assert_eq(y.qs[255], -127);
        /* q[0..16) = 82 81 80 79 79 78 77 76 75 75 74 73 72 71 70 70 */
        cr_assert_eq(y.qs[4], 79); /* 78.66 */
        cr_assert_eq(y.bsums[0], 1212, "bsums[0] = %d", y.bsums[0]);
        for (int g = 0; g < 16; g++) {
            int sum = 0;
            for (int i = 0; i < 16; i++)
                sum += y.qs[16 * g + i];
            cr_assert_eq(y.bsums[g], sum, "bsums[%d]", g);
        }
    }

    /* the largest magnitude is negative: d flips sign, that element still maps to -127 */
    src[7] = -200.0f;
    BlockQ8_K y;
    ops_at(DTYPE_Q8_K, SIMD_SCALAR)->quantize(src, &y, QK_K);
    cr_assert_float_eq(y.d, 200.0f / 127.0f, 1e-6f);
    cr_assert_eq(y.qs[7], -127);
    cr_assert_eq(y.qs[255], 98); /* 155 * 127/200 = 98.4 */
}

Test(quant_k_hand, q4_k_vec_dot_by_hand) {
    /* weights: the hand Q4_K block; activations: Q8_K with d = 2, qs[0] = 3,
     * qs[100] = -1, all else 0 -> 2 * (10*3 + 943*-1) = -1826 */
    BlockQ4_K x;
    hand_q4_k(&x);
    BlockQ8_K a;
    memset(&a, 0, sizeof a);
    a.d = 2.0f;
    a.qs[0] = 3;
    a.qs[100] = -1;
    a.bsums[0] = 3;
    a.bsums[6] = -1;
    for (int l = SIMD_SCALAR; l <= (int)cpu_simd_level(); l++) {
        float s = 0;
        ops_at(DTYPE_Q4_K, (SimdLevel)l)->vec_dot(QK_K, &s, &x, &a);
        cr_assert_eq(s, -1826.0f, "%s: %g", cpu_simd_name((SimdLevel)l), s);
    }
}

Test(quant_k_hand, table_entries) {
    cr_assert_eq(dtype_row_bytes(DTYPE_Q4_K, QK_K), sizeof(BlockQ4_K));
    cr_assert_eq(dtype_row_bytes(DTYPE_Q5_K, QK_K), sizeof(BlockQ5_K));
    cr_assert_eq(dtype_row_bytes(DTYPE_Q6_K, QK_K), sizeof(BlockQ6_K));
    cr_assert_eq(dtype_row_bytes(DTYPE_Q8_K, QK_K), sizeof(BlockQ8_K));
    const DType w[3] = {DTYPE_Q4_K, DTYPE_Q5_K, DTYPE_Q6_K};
    for (int l = SIMD_SCALAR; l <= SIMD_AVX512; l++) {
        for (int i = 0; i < 3; i++) {
            const QuantOps *o = ops_at(w[i], (SimdLevel)l);
            cr_assert(o->dequant && o->quantize && o->vec_dot);
            cr_assert_eq(o->vec_dot_type, DTYPE_Q8_K);
        }
        const QuantOps *o = ops_at(DTYPE_Q8_K, (SimdLevel)l);
        cr_assert(o->dequant && o->quantize);
    }
}

/* ---- (2) quantization error ------------------------------------------------ */

/* rms(dequant(quantize(x)) - x) / std(x) on n standard-normal values. */
static double roundtrip_rel_rmse(DType t, int64_t n, uint64_t seed) {
    Rng r;
    rng_seed(&r, seed);
    float *x = xcalloc((size_t)n * sizeof(float)), *back = xcalloc((size_t)n * sizeof(float));
    void *q = xcalloc(dtype_row_bytes(t, n));
    for (int64_t i = 0; i < n; i++)
        x[i] = rng_normal(&r);
    const QuantOps *o = ops_at(t, SIMD_SCALAR);
    o->quantize(x, q, n);
    o->dequant(q, back, n);
    double se = 0, ss = 0;
    for (int64_t i = 0; i < n; i++) {
        se += ((double)back[i] - x[i]) * ((double)back[i] - x[i]);
        ss += (double)x[i] * x[i];
    }
    free(x);
    free(back);
    free(q);
    return sqrt(se / ss);
}

Test(quant_k_error, gaussian_roundtrip_bounds) {
    const int64_t n = 64 * QK_K;
    double e4 = roundtrip_rel_rmse(DTYPE_Q4_K, n, 1);
    double e5 = roundtrip_rel_rmse(DTYPE_Q5_K, n, 1);
    double e6 = roundtrip_rel_rmse(DTYPE_Q6_K, n, 1);
    double e8 = roundtrip_rel_rmse(DTYPE_Q8_K, n, 1);
    cr_log_info("rel rmse: q4_k %.5f q5_k %.5f q6_k %.5f q8_k %.5f", e4, e5, e6, e8);
    /* measured (seed 1): q4_k 0.0710, q5_k 0.0362, q6_k 0.0178, q8_k 0.0068; the
     * lower bounds catch a roundtrip that does not quantize at all */
    cr_assert(e4 < 0.078 && e4 > 0.06, "q4_k rel rmse %g", e4);
    cr_assert(e5 < 0.040 && e5 > 0.03, "q5_k rel rmse %g", e5);
    cr_assert(e6 < 0.020 && e6 > 0.015, "q6_k rel rmse %g", e6);
    cr_assert(e8 < 0.0075 && e8 > 0.005, "q8_k rel rmse %g", e8);
    cr_assert(e6 < e5 && e5 < e4);
}

Test(quant_k_error, quantize_is_deterministic_and_exact_on_grid) {
    /* quantize twice: same bytes */
    const int64_t n = 3 * QK_K;
    Rng r;
    rng_seed(&r, 7);
    float x[3 * QK_K];
    for (int i = 0; i < n; i++)
        x[i] = rng_normal(&r);
    const DType types[4] = {DTYPE_Q4_K, DTYPE_Q5_K, DTYPE_Q6_K, DTYPE_Q8_K};
    for (int t = 0; t < 4; t++) {
        size_t bytes = dtype_row_bytes(types[t], n);
        uint8_t *a = xcalloc(bytes), *b = xcalloc(bytes);
        memset(b, 0xAB, bytes); /* garbage must be overwritten */
        ops_at(types[t], SIMD_SCALAR)->quantize(x, a, n);
        ops_at(types[t], SIMD_SCALAR)->quantize(x, b, n);
        cr_assert_eq(memcmp(a, b, bytes), 0, "%s not deterministic", dtype_info(types[t])->name);
        free(a);
        free(b);
    }
    /* a block that is already on a Q6_K grid survives a round trip within fp16 rounding */
    BlockQ6_K q;
    float back[QK_K];
    for (int i = 0; i < QK_K; i++)
        x[i] = (float)((i * 7) % 63 - 31) * 0.125f;
    ops_at(DTYPE_Q6_K, SIMD_SCALAR)->quantize(x, &q, QK_K);
    ops_at(DTYPE_Q6_K, SIMD_SCALAR)->dequant(&q, back, QK_K);
    cr_assert(check_close("q6_k grid", back, x, QK_K, 2e-3f, 2e-3f));
}

/* ---- data generators for (3) and (4) ------------------------------------------ */

typedef enum {
    DATA_GAUSS,
    DATA_ZERO_BLOCKS, /* every other block all zero */
    DATA_SPIKE,       /* zeros with one large value per block */
    DATA_NEGATIVE,    /* negative-only */
    DATA_LARGE,       /* gaussian * 1e3 (weights) / 1e6 (activations) */
    DATA_TINY,        /* gaussian * 1e-4 (weights) / 1e-6 (activations) */
    DATA_OFFSET,      /* gaussian + 3: a big min for Q4_K/Q5_K */
    DATA_COUNT,
} DataKind;

static const char *DATA_NAMES[DATA_COUNT] = {"gauss", "zero-blocks", "spike", "negative",
                                             "large", "tiny",        "offset"};

static void gen_floats(float *x, int64_t n, DataKind k, bool activation, Rng *r) {
    for (int64_t i = 0; i < n; i++) {
        float g = rng_normal(r);
        switch (k) {
        case DATA_GAUSS:
            x[i] = g;
            break;
        case DATA_ZERO_BLOCKS:
            x[i] = (i / QK_K) % 2 ? 0.0f : g;
            break;
        case DATA_SPIKE:
            x[i] = (i % QK_K) == (i / QK_K * 37) % QK_K ? 50.0f : 0.0f;
            break;
        case DATA_NEGATIVE:
            x[i] = -fabsf(g) - 0.01f;
            break;
        case DATA_LARGE:
            x[i] = g * (activation ? 1e6f : 1e3f);
            break;
        case DATA_TINY:
            x[i] = g * (activation ? 1e-6f : 1e-4f);
            break;
        case DATA_OFFSET:
            x[i] = g + 3.0f;
            break;
        default:
            x[i] = 0;
        }
    }
}

/* Random bytes with finite, moderate fp16 scales: exercises every bit pattern
 * of scales, mins, nibbles and high bits. */
static void gen_random_blocks(DType t, void *dst, int64_t nb, Rng *r) {
    size_t bs = (size_t)dtype_info(t)->type_size;
    uint8_t *p = dst;
    for (size_t i = 0; i < bs * (size_t)nb; i++)
        p[i] = (uint8_t)rng_u64(r);
    for (int64_t b = 0; b < nb; b++) {
        uint16_t d = fp32_to_f16((rng_f32(r) - 0.5f) * 0.02f);
        uint16_t dmin = fp32_to_f16(rng_f32(r) * 0.02f);
        if (t == DTYPE_Q4_K) {
            ((BlockQ4_K *)dst)[b].d = d;
            ((BlockQ4_K *)dst)[b].dmin = dmin;
        } else if (t == DTYPE_Q5_K) {
            ((BlockQ5_K *)dst)[b].d = d;
            ((BlockQ5_K *)dst)[b].dmin = dmin;
        } else if (t == DTYPE_Q6_K) {
            ((BlockQ6_K *)dst)[b].d = d;
        }
    }
}

/* Random Q8_K activations, qs in -128..127 (the extremes included), bsums consistent. */
static void gen_random_q8_k(BlockQ8_K *y, int64_t nb, Rng *r) {
    for (int64_t b = 0; b < nb; b++) {
        y[b].d = (rng_f32(r) - 0.5f) * 0.1f;
        for (int j = 0; j < QK_K; j++) {
            uint64_t u = rng_u64(r);
            y[b].qs[j] = (u & 0xF00) == 0 ? (int8_t)((u & 1) ? 127 : -128) : (int8_t)u;
        }
        for (int g = 0; g < QK_K / 16; g++) {
            int s = 0;
            for (int i = 0; i < 16; i++)
                s += y[b].qs[16 * g + i];
            y[b].bsums[g] = (int16_t)s;
        }
    }
}

/* Weights of type t for case 'k' (DATA_COUNT = random bytes). */
static void make_weights(DType t, void *w, int64_t n, int k, Rng *r) {
    if (k == DATA_COUNT) {
        gen_random_blocks(t, w, n / QK_K, r);
        return;
    }
    float *x = xcalloc((size_t)n * sizeof(float));
    gen_floats(x, n, (DataKind)k, false, r);
    ops_at(t, SIMD_SCALAR)->quantize(x, w, n);
    free(x);
}

static void make_acts(BlockQ8_K *a, int64_t n, int k, Rng *r) {
    if (k == DATA_COUNT) {
        gen_random_q8_k(a, n / QK_K, r);
        return;
    }
    float *x = xcalloc((size_t)n * sizeof(float));
    gen_floats(x, n, (DataKind)k, true, r);
    ops_at(DTYPE_Q8_K, SIMD_SCALAR)->quantize(x, a, n);
    free(x);
}

static const char *case_name(int k) { return k == DATA_COUNT ? "random-bytes" : DATA_NAMES[k]; }

/* double dot of the dequantized operands, and sum |w_i a_i| for the tolerance */
static double ref_dot(DType t, const void *w, const BlockQ8_K *a, int64_t n, double *sumabs) {
    float *fw = xcalloc((size_t)n * sizeof(float)), *fa = xcalloc((size_t)n * sizeof(float));
    ops_at(t, SIMD_SCALAR)->dequant(w, fw, n);
    ops_at(DTYPE_Q8_K, SIMD_SCALAR)->dequant(a, fa, n);
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

static const int64_t SIZES[3] = {1, 7, 33}; /* blocks */
static const DType WTYPES[3] = {DTYPE_Q4_K, DTYPE_Q5_K, DTYPE_Q6_K};

/* ---- (3) SIMD levels vs the scalar twin ---------------------------------------- */

static bool have_simd(void) { return cpu_simd_level() > SIMD_SCALAR; }

Test(quant_k_simd, vec_dot_matches_scalar) {
    if (!have_simd())
        cr_skip_test("no SIMD level on this CPU");
    Rng r;
    rng_seed(&r, 42);
    double worst = 0;
    for (int ti = 0; ti < 3; ti++) {
        DType t = WTYPES[ti];
        for (int si = 0; si < 3; si++) {
            int64_t n = SIZES[si] * QK_K;
            void *w = xcalloc(dtype_row_bytes(t, n));
            BlockQ8_K *a = xcalloc(dtype_row_bytes(DTYPE_Q8_K, n));
            for (int kw = 0; kw <= DATA_COUNT; kw++) {
                for (int ka = 0; ka <= DATA_COUNT; ka++) {
                    make_weights(t, w, n, kw, &r);
                    make_acts(a, n, ka, &r);
                    float want = 0;
                    ops_at(t, SIMD_SCALAR)->vec_dot(n, &want, w, a);
                    double sumabs;
                    ref_dot(t, w, a, n, &sumabs);
                    for (int l = SIMD_SCALAR + 1; l <= (int)cpu_simd_level(); l++) {
                        float got = NAN;
                        ops_at(t, (SimdLevel)l)->vec_dot(n, &got, w, a);
                        double diff = fabs((double)got - want);
                        double tol = 1e-5 * fabs(want) + 1e-7 * sumabs;
                        if (diff / (fabs(want) + 1e-30) > worst && diff > 0)
                            worst = diff / (fabs(want) + 1e-30);
                        cr_assert(diff <= tol,
                                  "%s %s n=%lld weights %s acts %s: got %.9g want %.9g (diff %.3g)",
                                  dtype_info(t)->name, cpu_simd_name((SimdLevel)l), (long long)n,
                                  case_name(kw), case_name(ka), got, want, diff);
                    }
                }
            }
            free(w);
            free(a);
        }
    }
    cr_log_info("vec_dot SIMD vs scalar: worst relative diff %.3g", worst);
}

Test(quant_k_simd, dequant_bit_identical) {
    if (!have_simd())
        cr_skip_test("no SIMD level on this CPU");
    Rng r;
    rng_seed(&r, 43);
    for (int ti = 0; ti < 3; ti++) {
        DType t = WTYPES[ti];
        for (int si = 0; si < 3; si++) {
            int64_t n = SIZES[si] * QK_K;
            void *w = xcalloc(dtype_row_bytes(t, n));
            float *want = xcalloc((size_t)n * sizeof(float)), *got = xcalloc((size_t)n * 4);
            for (int kw = 0; kw <= DATA_COUNT; kw++) {
                make_weights(t, w, n, kw, &r);
                ops_at(t, SIMD_SCALAR)->dequant(w, want, n);
                for (int l = SIMD_SCALAR + 1; l <= (int)cpu_simd_level(); l++) {
                    memset(got, 0xFF, (size_t)n * 4);
                    ops_at(t, (SimdLevel)l)->dequant(w, got, n);
                    for (int64_t i = 0; i < n; i++)
                        cr_assert(fp_bits(got[i]) == fp_bits(want[i]),
                                  "%s %s n=%lld %s: element %lld got %.9g want %.9g",
                                  dtype_info(t)->name, cpu_simd_name((SimdLevel)l), (long long)n,
                                  case_name(kw), (long long)i, got[i], want[i]);
                }
            }
            free(w);
            free(want);
            free(got);
        }
    }
}

Test(quant_k_simd, q8_k_quantize_bit_identical) {
    if (!have_simd())
        cr_skip_test("no SIMD level on this CPU");
    Rng r;
    rng_seed(&r, 44);
    for (int si = 0; si < 3; si++) {
        int64_t n = SIZES[si] * QK_K;
        size_t bytes = dtype_row_bytes(DTYPE_Q8_K, n);
        float *x = xcalloc((size_t)n * sizeof(float));
        BlockQ8_K *want = xcalloc(bytes), *got = xcalloc(bytes);
        for (int k = 0; k < DATA_COUNT + 2; k++) {
            if (k < DATA_COUNT) {
                gen_floats(x, n, (DataKind)k, true, &r);
            } else if (k == DATA_COUNT) {
                /* ties in magnitude with both signs: the first one decides the sign */
                gen_floats(x, n, DATA_GAUSS, true, &r);
                for (int64_t b = 0; b < n / QK_K; b++) {
                    x[b * QK_K + 3 + b % 200] = -9.0f;
                    x[b * QK_K + 250] = 9.0f;
                }
            } else {
                /* max -127 gives iscale 1, so the .5 values are exact ties (to even) */
                for (int64_t i = 0; i < n; i++)
                    x[i] = i % QK_K ? (float)((int)(i % 253) - 126) + 0.5f : -127.0f;
            }
            ops_at(DTYPE_Q8_K, SIMD_SCALAR)->quantize(x, want, n);
            for (int l = SIMD_SCALAR + 1; l <= (int)cpu_simd_level(); l++) {
                memset(got, 0xCD, bytes);
                ops_at(DTYPE_Q8_K, (SimdLevel)l)->quantize(x, got, n);
                for (int64_t b = 0; b < n / QK_K; b++)
                    cr_assert_eq(memcmp(&got[b], &want[b], sizeof want[b]), 0,
                                 "q8_k %s n=%lld case %d: block %lld differs (d %g vs %g)",
                                 cpu_simd_name((SimdLevel)l), (long long)n, k, (long long)b,
                                 got[b].d, want[b].d);
            }
        }
        free(x);
        free(want);
        free(got);
    }
}

/* ---- (4) vec_dot vs double dot of dequantized operands ------------------------- */

Test(quant_k_dot, vec_dot_matches_dequantized_double) {
    Rng r;
    rng_seed(&r, 45);
    for (int ti = 0; ti < 3; ti++) {
        DType t = WTYPES[ti];
        for (int si = 0; si < 3; si++) {
            int64_t n = SIZES[si] * QK_K;
            void *w = xcalloc(dtype_row_bytes(t, n));
            BlockQ8_K *a = xcalloc(dtype_row_bytes(DTYPE_Q8_K, n));
            for (int kw = 0; kw <= DATA_COUNT; kw++) {
                for (int ka = 0; ka <= DATA_COUNT; ka++) {
                    make_weights(t, w, n, kw, &r);
                    make_acts(a, n, ka, &r);
                    double sumabs, want = ref_dot(t, w, a, n, &sumabs);
                    for (int l = SIMD_SCALAR; l <= (int)cpu_simd_level(); l++) {
                        float got = NAN;
                        ops_at(t, (SimdLevel)l)->vec_dot(n, &got, w, a);
                        /* 1e-5 relative; cancellation is judged against sum |w a| */
                        double tol = 1e-5 * fabs(want) + 1e-6 * sumabs;
                        cr_assert(fabs(got - want) <= tol,
                                  "%s %s n=%lld weights %s acts %s: got %.9g want %.9g "
                                  "(sum|wa| %.3g)",
                                  dtype_info(t)->name, cpu_simd_name((SimdLevel)l), (long long)n,
                                  case_name(kw), case_name(ka), got, want, sumabs);
                    }
                }
            }
            free(w);
            free(a);
        }
    }
}
