/* test_quant_legacy.c - the legacy quant kernels (Q4_0 Q4_1 Q5_0 Q5_1 Q8_0
 * Q8_1): hand-built blocks decode to the values the format defines,
 * quantize matches hand-worked ggml bytes, quantize->dequant stays within
 * the format's error bound, quantize is exact on values already on the
 * grid, scalar vec_dot equals the dot of the dequantized rows, and every
 * SIMD level this CPU has matches the scalar twin (quantize and dequant
 * bit-identical, vec_dot within 1e-5 of the sum of |products|) on 1, 7, 33
 * and 257 blocks of awkward data, from unaligned pointers. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../testutil.h"
#include "core/fp16.h"
#include "core/rng.h"
#include "tensor/quant.h"
#include "tensor/quant_blocks_legacy.h"

static const DType LEGACY[] = {DTYPE_Q4_0, DTYPE_Q4_1, DTYPE_Q5_0,
                               DTYPE_Q5_1, DTYPE_Q8_0, DTYPE_Q8_1};
#define N_LEGACY (int)(sizeof(LEGACY) / sizeof(LEGACY[0]))
static const int NBLOCKS[] = {1, 7, 33, 257};
#define N_NBLOCKS (int)(sizeof(NBLOCKS) / sizeof(NBLOCKS[0]))
#define QK 32

static const QuantOps *scalar_ops(DType t) {
    const QuantOps *o = quant_ops_at(t, SIMD_SCALAR);
    cr_assert_not_null(o, "no scalar kernels for %s", dtype_info(t)->name);
    return o;
}

static size_t type_size(DType t) { return (size_t)dtype_info(t)->type_size; }

/* Buffers 'off' bytes past a malloc'd base: block rows at odd addresses
 * (off 1), float rows only float-aligned (off 4), never vector-aligned. */
static void *alloc_off(size_t bytes, size_t off, void **base) {
    *base = malloc(bytes + 64);
    cr_assert_not_null(*base);
    memset(*base, 0xa5, bytes + 64);
    return (char *)*base + off;
}

/* Fills n floats block by block with data that stresses quantizers: kind
 * (block + variant) % 10 picks normal, zeros, huge, tiny, all-equal, a single
 * spike, +-a ties, a shifted block, values far below fp16's range, or exact
 * rounding ties (amax 127 so d = 1, the rest k + 0.5). */
static void fill_data(Rng *r, float *x, int64_t n, int variant) {
    for (int64_t b = 0; b < n / QK; b++) {
        float *v = x + b * QK;
        const int kind = (int)((b + variant) % 10);
        const float c = rng_normal(r);
        for (int j = 0; j < QK; j++) {
            const float g = rng_normal(r);
            switch (kind) {
            case 0:
                v[j] = g;
                break;
            case 1:
                v[j] = 0.0f;
                break;
            case 2:
                v[j] = g * 1e4f;
                break;
            case 3:
                v[j] = g * 1e-3f;
                break;
            case 4:
                v[j] = c;
                break;
            case 5:
                v[j] = j == (int)(b % QK) ? 100.0f * (c < 0 ? -1.0f : 1.0f) : 0.01f * g;
                break;
            case 6:
                v[j] = (j & 1) ? 0.75f : -0.75f;
                break;
            case 7:
                v[j] = 5.0f + g;
                break;
            case 8:
                v[j] = g * 1e-9f;
                break;
            default:
                v[j] = j == 3 ? -127.0f : (float)(int)(g * 20) + (g < 0 ? -0.5f : 0.5f);
                break;
            }
        }
    }
}

/* Q8_1 stores s = d * sum(qs) as fp16, which overflows past 65504: a block
 * of activations with amax above ~2000 cannot be Q8_1. Scales such blocks
 * down to amax 1000 (keeping their shape) where the data feeds Q8_1. */
static void limit_blocks(float *x, int64_t n, float limit) {
    for (int64_t b = 0; b < n / QK; b++) {
        float amax = 0;
        for (int j = 0; j < QK; j++)
            amax = fmaxf(amax, fabsf(x[b * QK + j]));
        if (amax > limit)
            for (int j = 0; j < QK; j++)
                x[b * QK + j] *= limit / amax;
    }
}

/* ---- (1) hand-built blocks decode as the format defines ------------------ */

static void dequant_one(DType t, const void *block, float *out) {
    scalar_ops(t)->dequant(block, out, QK);
    /* every level must agree on the hand values too */
    for (int l = SIMD_AVX2; l <= (int)cpu_simd_level(); l++) {
        float got[QK];
        quant_ops_at(t, (SimdLevel)l)->dequant(block, got, QK);
        cr_expect(memcmp(got, out, sizeof(got)) == 0, "%s dequant at %s differs from scalar",
                  dtype_info(t)->name, cpu_simd_name((SimdLevel)l));
    }
}

Test(quant_legacy_hand, q4_0_block) {
    BlockQ4_0 b;
    b.d = 0x3800;                     /* 0.5 */
    memset(b.qs, 0x88, sizeof(b.qs)); /* every element 8 -> 0 */
    b.qs[0] = 0x9f;                   /* x[0] = (15-8)*0.5, x[16] = (9-8)*0.5 */
    b.qs[15] = 0x07;                  /* x[15] = (7-8)*0.5, x[31] = (0-8)*0.5 */
    float want[QK] = {0}, got[QK];
    want[0] = 3.5f, want[16] = 0.5f, want[15] = -0.5f, want[31] = -4.0f;
    dequant_one(DTYPE_Q4_0, &b, got);
    cr_assert(check_close("q4_0 hand", got, want, QK, 0, 0));
}

Test(quant_legacy_hand, q4_1_block) {
    BlockQ4_1 b;
    b.d = 0x3c00; /* 1.0 */
    b.m = 0xc000; /* -2.0 */
    memset(b.qs, 0, sizeof(b.qs));
    b.qs[0] = 0x3a; /* x[0] = 10*1 - 2, x[16] = 3*1 - 2 */
    b.qs[9] = 0xf0; /* x[9] = -2, x[25] = 15 - 2 */
    float want[QK], got[QK];
    for (int j = 0; j < QK; j++)
        want[j] = -2.0f;
    want[0] = 8.0f, want[16] = 1.0f, want[25] = 13.0f;
    dequant_one(DTYPE_Q4_1, &b, got);
    cr_assert(check_close("q4_1 hand", got, want, QK, 0, 0));
}

Test(quant_legacy_hand, q5_0_block) {
    BlockQ5_0 b;
    b.d = 0x4000; /* 2.0 */
    memset(b.qs, 0, sizeof(b.qs));
    b.qs[0] = 0x21; /* low nibbles: x[0] 1, x[16] 2 */
    b.qs[1] = 0xf0; /* x[1] 0, x[17] 15 */
    /* qh bit 0 (x[0]) and bit 17 (x[17]) set, little-endian */
    b.qh[0] = 0x01, b.qh[1] = 0x00, b.qh[2] = 0x02, b.qh[3] = 0x00;
    float want[QK], got[QK];
    for (int j = 0; j < QK; j++)
        want[j] = -32.0f; /* (0 - 16) * 2 */
    want[0] = 2.0f;       /* (17 - 16) * 2 */
    want[16] = -28.0f;    /* (2 - 16) * 2 */
    want[1] = -32.0f;
    want[17] = 30.0f; /* (31 - 16) * 2 */
    dequant_one(DTYPE_Q5_0, &b, got);
    cr_assert(check_close("q5_0 hand", got, want, QK, 0, 0));
}

Test(quant_legacy_hand, q5_1_block) {
    BlockQ5_1 b;
    b.d = 0x3800; /* 0.5 */
    b.m = 0x3c00; /* 1.0 */
    memset(b.qs, 0, sizeof(b.qs));
    b.qs[2] = 0x5c; /* x[2] low 12, x[18] low 5 */
    /* qh bit 2 (x[2]) and bit 31 (x[31]) set */
    b.qh[0] = 0x04, b.qh[1] = 0x00, b.qh[2] = 0x00, b.qh[3] = 0x80;
    float want[QK], got[QK];
    for (int j = 0; j < QK; j++)
        want[j] = 1.0f;
    want[2] = 15.0f; /* 28 * 0.5 + 1 */
    want[18] = 3.5f; /* 5 * 0.5 + 1 */
    want[31] = 9.0f; /* 16 * 0.5 + 1 */
    dequant_one(DTYPE_Q5_1, &b, got);
    cr_assert(check_close("q5_1 hand", got, want, QK, 0, 0));
}

Test(quant_legacy_hand, q8_0_block) {
    BlockQ8_0 b;
    b.d = 0x3400; /* 0.25 */
    memset(b.qs, 0, sizeof(b.qs));
    b.qs[0] = -128, b.qs[1] = 127, b.qs[31] = -1;
    float want[QK] = {0}, got[QK];
    want[0] = -32.0f, want[1] = 31.75f, want[31] = -0.25f;
    dequant_one(DTYPE_Q8_0, &b, got);
    cr_assert(check_close("q8_0 hand", got, want, QK, 0, 0));
}

Test(quant_legacy_hand, q8_1_block) {
    BlockQ8_1 b;
    b.d = 0xbc00; /* -1.0 */
    b.s = 0x4700; /* 7.0 = d * sum(qs) */
    memset(b.qs, 0, sizeof(b.qs));
    b.qs[5] = -7;
    float want[QK] = {0}, got[QK];
    want[5] = 7.0f;
    dequant_one(DTYPE_Q8_1, &b, got);
    cr_assert(check_close("q8_1 hand", got, want, QK, 0, 0));
}

/* Hand-worked dots: integer sums times the two scales. */
Test(quant_legacy_hand, dots) {
    BlockQ8_0 a0;
    a0.d = 0x3c00; /* 1.0 */
    memset(a0.qs, 0, sizeof(a0.qs));
    a0.qs[0] = 2, a0.qs[16] = -4, a0.qs[17] = 3;
    BlockQ8_1 a1;
    a1.d = 0x3c00;
    a1.s = 0x3c00; /* sum(qs) = 1 */
    memcpy(a1.qs, a0.qs, sizeof(a1.qs));

    BlockQ4_0 w40 = {.d = 0x3800};
    memset(w40.qs, 0x88, 16);
    w40.qs[0] = 0x9f; /* x[0] = 7, x[16] = 1 (before *0.5) */
    /* (7*2 + 1*-4 + 0*3) * 0.5 = 5 */
    BlockQ4_1 w41 = {.d = 0x3c00, .m = 0xc000};
    memset(w41.qs, 0, 16);
    w41.qs[0] = 0x3a, w41.qs[1] = 0x20;
    /* q: x0 10, x16 3, x17 2: (20 - 12 + 6) * 1 + (-2) * 1 = 12 */
    BlockQ5_0 w50 = {.d = 0x4000};
    memset(w50.qs, 0, 16);
    w50.qs[0] = 0x21, w50.qs[1] = 0xf0;
    w50.qh[0] = 0x01, w50.qh[1] = 0, w50.qh[2] = 0x02, w50.qh[3] = 0;
    /* q-16: x0 1, x16 -14, x17 15: (2 + 56 + 45) * 2 = 206 */
    BlockQ5_1 w51 = {.d = 0x3800, .m = 0x3c00};
    memset(w51.qs, 0, 16);
    w51.qs[0] = 0x21;
    w51.qh[0] = 0x01, w51.qh[1] = 0, w51.qh[2] = 0x02, w51.qh[3] = 0;
    /* q: x0 17, x16 2, x17 16: (34 - 8 + 48) * 0.5 + 1 * 1 = 38 */
    BlockQ8_0 w80 = {.d = 0x3400};
    memset(w80.qs, 0, 32);
    w80.qs[0] = -128, w80.qs[16] = 127, w80.qs[17] = 1;
    /* (-256 - 508 + 3) * 0.25 = -190.25 */

    struct {
        DType t;
        const void *w;
        const void *a;
        float want;
    } cases[] = {
        {DTYPE_Q4_0, &w40, &a0, 5.0f},     {DTYPE_Q4_1, &w41, &a1, 12.0f},
        {DTYPE_Q5_0, &w50, &a0, 206.0f},   {DTYPE_Q5_1, &w51, &a1, 38.0f},
        {DTYPE_Q8_0, &w80, &a0, -190.25f},
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        for (int l = SIMD_SCALAR; l <= (int)cpu_simd_level(); l++) {
            float s = NAN;
            quant_ops_at(cases[c].t, (SimdLevel)l)->vec_dot(QK, &s, cases[c].w, cases[c].a);
            cr_expect(s == cases[c].want, "%s dot at %s: got %.9g want %.9g",
                      dtype_info(cases[c].t)->name, cpu_simd_name((SimdLevel)l), s, cases[c].want);
        }
    }
}

/* ggml's rounding conventions, worked by hand. */
Test(quant_legacy_hand, quantize_bytes) {
    float x[QK] = {0};
    /* Q8_0: amax 127 -> d = 1, q = roundf(x): halves go away from zero */
    x[0] = 127.0f, x[1] = -63.5f, x[2] = 2.5f, x[3] = -0.4f, x[4] = 0.5f, x[5] = -126.6f;
    for (int l = SIMD_SCALAR; l <= (int)cpu_simd_level(); l++) {
        BlockQ8_0 b;
        quant_ops_at(DTYPE_Q8_0, (SimdLevel)l)->quantize(x, &b, QK);
        const char *lv = cpu_simd_name((SimdLevel)l);
        cr_expect(b.d == 0x3c00, "%s: q8_0 d %#x", lv, b.d);
        cr_expect(b.qs[0] == 127 && b.qs[1] == -64 && b.qs[2] == 3 && b.qs[3] == 0 &&
                      b.qs[4] == 1 && b.qs[5] == -127 && b.qs[6] == 0,
                  "%s: q8_0 qs %d %d %d %d %d %d", lv, b.qs[0], b.qs[1], b.qs[2], b.qs[3], b.qs[4],
                  b.qs[5]);
        BlockQ8_1 b1;
        quant_ops_at(DTYPE_Q8_1, (SimdLevel)l)->quantize(x, &b1, QK);
        /* sum = 127 - 64 + 3 + 0 + 1 - 127 = -60 -> s = -60 */
        cr_expect(b1.d == 0x3c00 && b1.s == 0xd380 && memcmp(b1.qs, b.qs, QK) == 0,
                  "%s: q8_1 d %#x s %#x", lv, b1.d, b1.s);
    }

    /* Q4_0: the largest magnitude is -8 -> d = 1, q = min(15, (int8)(x + 8.5)) */
    float y[QK] = {0};
    y[0] = -8.0f, y[1] = 7.0f, y[3] = -0.5f, y[4] = 0.5f, y[5] = 7.6f, y[16] = -3.0f;
    BlockQ4_0 b4;
    scalar_ops(DTYPE_Q4_0)->quantize(y, &b4, QK);
    cr_expect(b4.d == 0x3c00, "q4_0 d %#x", b4.d);
    /* qs[j] = q[j] | q[j+16] << 4; q: y0 0, y1 15, y2 8, y3 8, y4 9, y5 15, y16 5 */
    const uint8_t want4[6] = {0x50, 0x8f, 0x88, 0x88, 0x89, 0x8f};
    cr_expect(memcmp(b4.qs, want4, 6) == 0, "q4_0 qs %02x %02x %02x %02x %02x %02x", b4.qs[0],
              b4.qs[1], b4.qs[2], b4.qs[3], b4.qs[4], b4.qs[5]);
    /* positive largest magnitude: d = -1, so +8 encodes as 0 */
    y[0] = 8.0f;
    scalar_ops(DTYPE_Q4_0)->quantize(y, &b4, QK);
    cr_expect(b4.d == 0xbc00 && (b4.qs[0] & 0x0f) == 0 && (b4.qs[1] & 0x0f) == 1,
              "q4_0 d %#x qs0 %02x qs1 %02x", b4.d, b4.qs[0], b4.qs[1]);

    /* Q5_1: min 0, max 31 -> d = 1, m = 0; x = 17 sets qh bit 1 */
    float z[QK] = {0};
    z[0] = 31.0f, z[1] = 17.0f, z[20] = 2.4f;
    BlockQ5_1 b5;
    scalar_ops(DTYPE_Q5_1)->quantize(z, &b5, QK);
    cr_expect(b5.d == 0x3c00 && b5.m == 0, "q5_1 d %#x m %#x", b5.d, b5.m);
    cr_expect(b5.qs[0] == 0x0f && b5.qs[1] == 0x01 && b5.qs[4] == 0x20, "q5_1 qs %02x %02x %02x",
              b5.qs[0], b5.qs[1], b5.qs[4]);
    cr_expect(b5.qh[0] == 0x03 && b5.qh[1] == 0 && b5.qh[2] == 0 && b5.qh[3] == 0,
              "q5_1 qh %02x %02x %02x %02x", b5.qh[0], b5.qh[1], b5.qh[2], b5.qh[3]);
}

/* ---- (2) quantize -> dequant error bounds -------------------------------- */

/* The largest |x - dequant(quant(x))| the format allows for one block, from
 * the float scale the quantizer computes (d, m recomputed here from x as
 * ggml does) and the fp16 values stored (which add |d - d16| per step and
 * |min - m16|): rounding to nearest is half a step; the 4- and 5-bit
 * symmetric types clamp the top value, which can cost a whole step. */
static double block_bound(DType t, const float *x, const void *blk) {
    float amax = 0, max = 0, mn = x[0], mx = x[0];
    for (int j = 0; j < QK; j++) {
        if (amax < fabsf(x[j]))
            amax = fabsf(x[j]), max = x[j];
        mn = fminf(mn, x[j]);
        mx = fmaxf(mx, x[j]);
    }
    const uint8_t *p = blk;
    uint16_t h16, m16;
    memcpy(&h16, p, 2);
    memcpy(&m16, p + 2, 2);
    const double d16 = fp16_to_f32(h16);
    double d;
    switch (t) {
    case DTYPE_Q4_0:
        d = fabs(max / -8.0f);
        return d + 8 * fabs(d - fabs(d16));
    case DTYPE_Q5_0:
        d = fabs(max / -16.0f);
        return d + 16 * fabs(d - fabs(d16));
    case DTYPE_Q4_1:
        d = (mx - mn) / 15.0f;
        return 0.5 * d + 15 * fabs(d - d16) + fabs(mn - fp16_to_f32(m16));
    case DTYPE_Q5_1:
        d = (mx - mn) / 31.0f;
        return 0.5 * d + 31 * fabs(d - d16) + fabs(mn - fp16_to_f32(m16));
    default: /* Q8_0, Q8_1 */
        d = amax / 127.0f;
        return 0.5 * d + 127 * fabs(d - d16);
    }
}

Test(quant_legacy_roundtrip, error_bounds) {
    Rng r;
    rng_seed(&r, 11);
    const int64_t n = 257 * QK;
    float *x = malloc(n * sizeof(float)), *y = malloc(n * sizeof(float));
    for (int ti = 0; ti < N_LEGACY; ti++) {
        const DType t = LEGACY[ti];
        const QuantOps *o = scalar_ops(t);
        uint8_t *q = malloc(257 * type_size(t));
        for (int variant = 0; variant < 10; variant++) {
            fill_data(&r, x, n, variant);
            o->quantize(x, q, n);
            o->dequant(q, y, n);
            for (int64_t b = 0; b < n / QK; b++) {
                const double bound = block_bound(t, x + b * QK, q + b * type_size(t));
                for (int j = 0; j < QK; j++) {
                    const int64_t i = b * QK + j;
                    const double err = fabs((double)x[i] - (double)y[i]);
                    cr_assert(
                        err <= bound * (1 + 1e-6) + 1e-30,
                        "%s variant %d block %lld elem %d: x %.9g got %.9g err %.3g > bound %.3g",
                        dtype_info(t)->name, variant, (long long)b, j, x[i], y[i], err, bound);
                }
            }
        }
        free(q);
    }
    free(x);
    free(y);
}

/* Q8_1's s is d * sum(qs), rounded to fp16. */
Test(quant_legacy_roundtrip, q8_1_sum) {
    Rng r;
    rng_seed(&r, 12);
    float x[33 * QK];
    BlockQ8_1 b[33];
    fill_data(&r, x, 33 * QK, 0);
    limit_blocks(x, 33 * QK, 1000.0f);
    scalar_ops(DTYPE_Q8_1)->quantize(x, b, 33 * QK);
    for (int i = 0; i < 33; i++) {
        int sum = 0;
        for (int j = 0; j < QK; j++)
            sum += b[i].qs[j];
        const float want = (float)sum * fp16_to_f32(b[i].d), got = fp16_to_f32(b[i].s);
        cr_expect(fabsf(got - want) <= 2e-3f * fabsf(want) + 1e-7f, "block %d: s %.9g, d*sum %.9g",
                  i, got, want);
    }
}

/* ---- (3) quantize is exact on values already on the grid ----------------- */

/* Random blocks whose values are representable exactly: fp16 scales (and
 * mins) with few significant bits, and quants that include the extremes the
 * quantizer derives its scale from. dequant -> quantize must give back the
 * same bytes. */
static void make_grid_block(Rng *r, DType t, uint8_t *blk) {
    const float d = (float)(256 + rng_u64(r) % 768) / 1024.0f;         /* 10 bits, [0.25, 1) */
    const float m = (float)((int)(rng_u64(r) % 4097) - 2048) / 256.0f; /* [-8, 8] step 2^-8 */
    int q[QK];
    const int levels = (t == DTYPE_Q4_0 || t == DTYPE_Q4_1)   ? 16
                       : (t == DTYPE_Q5_0 || t == DTYPE_Q5_1) ? 32
                                                              : 255;
    for (int j = 0; j < QK; j++)
        q[j] = (int)(rng_u64(r) % (uint64_t)levels);
    const int a = (int)(rng_u64(r) % QK), b = (a + 1 + (int)(rng_u64(r) % (QK - 1))) % QK;
    if (levels == 255) { /* Q8: q in [-127, 127], one of them at +-127 */
        for (int j = 0; j < QK; j++)
            q[j] -= 127;
        q[a] = (rng_u64(r) & 1) ? 127 : -127;
    } else if (t == DTYPE_Q4_0 || t == DTYPE_Q5_0) {
        q[a] = 0; /* the unique largest magnitude, -levels/2 * d */
    } else {
        q[a] = 0, q[b] = levels - 1; /* min and max both present */
    }
    float x[QK];
    for (int j = 0; j < QK; j++) {
        switch (t) {
        case DTYPE_Q4_0:
            x[j] = (float)(q[j] - 8) * d;
            break;
        case DTYPE_Q5_0:
            x[j] = (float)(q[j] - 16) * d;
            break;
        case DTYPE_Q4_1:
        case DTYPE_Q5_1:
            x[j] = (float)q[j] * d + m;
            break;
        default:
            x[j] = (float)q[j] * d;
            break;
        }
    }
    scalar_ops(t)->quantize(x, blk, QK); /* the bytes under test, checked below */
    float back[QK];
    scalar_ops(t)->dequant(blk, back, QK);
    cr_assert(check_close(dtype_info(t)->name, back, x, QK, 0, 0), "grid values not reproduced");
}

Test(quant_legacy_grid, exact_on_grid) {
    Rng r;
    rng_seed(&r, 13);
    for (int ti = 0; ti < N_LEGACY; ti++) {
        const DType t = LEGACY[ti];
        uint8_t blk[64], again[64];
        float x[QK];
        for (int it = 0; it < 2000; it++) {
            make_grid_block(&r, t, blk);
            scalar_ops(t)->dequant(blk, x, QK);
            for (int l = SIMD_SCALAR; l <= (int)cpu_simd_level(); l++) {
                quant_ops_at(t, (SimdLevel)l)->quantize(x, again, QK);
                cr_assert(memcmp(blk, again, type_size(t)) == 0,
                          "%s at %s: re-quantizing grid values changed the bytes (iteration %d)",
                          dtype_info(t)->name, cpu_simd_name((SimdLevel)l), it);
            }
        }
    }
}

/* ---- (4) SIMD levels vs the scalar twin ---------------------------------- */

static int64_t first_diff(const void *a, const void *b, size_t n) {
    const uint8_t *x = a, *y = b;
    for (size_t i = 0; i < n; i++)
        if (x[i] != y[i])
            return (int64_t)i;
    return -1;
}

Test(quant_legacy_simd, quantize_bit_identical) {
    Rng r;
    rng_seed(&r, 21);
    for (int ti = 0; ti < N_LEGACY; ti++) {
        const DType t = LEGACY[ti];
        for (int si = 0; si < N_NBLOCKS; si++) {
            const int64_t nb = NBLOCKS[si], n = nb * QK;
            void *b0, *b1, *b2;
            float *x = alloc_off(n * sizeof(float), 4, &b0);
            uint8_t *want = alloc_off(nb * type_size(t), 1, &b1),
                    *got = alloc_off(nb * type_size(t), 1, &b2);
            for (int variant = 0; variant < 10; variant++) {
                fill_data(&r, x, n, variant);
                scalar_ops(t)->quantize(x, want, n);
                for (int l = SIMD_AVX2; l <= (int)cpu_simd_level(); l++) {
                    memset(got, 0x5a, nb * type_size(t));
                    quant_ops_at(t, (SimdLevel)l)->quantize(x, got, n);
                    const int64_t at = first_diff(got, want, nb * type_size(t));
                    cr_assert(at < 0,
                              "%s quantize at %s, %lld blocks, variant %d: byte %lld (block %lld) "
                              "got %02x want %02x",
                              dtype_info(t)->name, cpu_simd_name((SimdLevel)l), (long long)nb,
                              variant, (long long)at, (long long)(at / (int64_t)type_size(t)),
                              got[at], want[at]);
                }
            }
            free(b0), free(b1), free(b2);
        }
    }
}

/* Random bytes with finite, moderate scales (and Q8 activation quants kept
 * in [-127, 127], the range quantize produces and the SIMD dots assume). */
static void fill_random_blocks(Rng *r, DType t, uint8_t *q, int64_t nb, int activation) {
    const size_t ts = type_size(t);
    for (int64_t b = 0; b < nb; b++) {
        uint8_t *p = q + b * ts;
        for (size_t k = 0; k < ts; k++)
            p[k] = (uint8_t)rng_u64(r);
        const uint16_t d = fp32_to_f16(rng_normal(r) * 0.05f);
        const uint16_t m = fp32_to_f16(rng_normal(r));
        memcpy(p, &d, 2);
        if (t == DTYPE_Q4_1 || t == DTYPE_Q5_1)
            memcpy(p + 2, &m, 2);
        if (t == DTYPE_Q8_0 || t == DTYPE_Q8_1) {
            const size_t off = t == DTYPE_Q8_0 ? 2 : 4;
            for (int j = 0; j < QK; j++)
                if (activation && p[off + j] == 0x80)
                    p[off + j] = 0x81;
            if (t == DTYPE_Q8_1) {
                int sum = 0;
                for (int j = 0; j < QK; j++)
                    sum += (int8_t)p[off + j];
                const uint16_t s = fp32_to_f16((float)sum * fp16_to_f32(d));
                memcpy(p + 2, &s, 2);
            }
        }
    }
}

Test(quant_legacy_simd, dequant_bit_identical) {
    Rng r;
    rng_seed(&r, 22);
    for (int ti = 0; ti < N_LEGACY; ti++) {
        const DType t = LEGACY[ti];
        for (int si = 0; si < N_NBLOCKS; si++) {
            const int64_t nb = NBLOCKS[si], n = nb * QK;
            void *b0, *b1, *b2, *b3;
            uint8_t *q = alloc_off(nb * type_size(t), 1, &b0);
            float *want = alloc_off(n * sizeof(float), 4, &b1),
                  *got = alloc_off(n * sizeof(float), 4, &b2);
            float *x = alloc_off(n * sizeof(float), 4, &b3);
            for (int variant = 0; variant < 11; variant++) {
                if (variant == 10) {
                    fill_random_blocks(&r, t, q, nb, 0);
                } else {
                    fill_data(&r, x, n, variant);
                    scalar_ops(t)->quantize(x, q, n);
                }
                scalar_ops(t)->dequant(q, want, n);
                for (int l = SIMD_AVX2; l <= (int)cpu_simd_level(); l++) {
                    quant_ops_at(t, (SimdLevel)l)->dequant(q, got, n);
                    const int64_t at = first_diff(got, want, n * sizeof(float));
                    cr_assert(at < 0,
                              "%s dequant at %s, %lld blocks, variant %d: element %lld got %.9g "
                              "want %.9g",
                              dtype_info(t)->name, cpu_simd_name((SimdLevel)l), (long long)nb,
                              variant, (long long)(at / 4), got[at / 4], want[at / 4]);
                }
            }
            free(b0), free(b1), free(b2), free(b3);
        }
    }
}

/* Sum over the row of |w_i * a_i| on dequantized values, plus |m * s| per
 * block for the _1 types: the scale a float-summation error is relative to. */
static double dot_magnitude(DType t, const void *w, const void *a, int64_t n, double *sterm_err) {
    const QuantOps *ow = scalar_ops(t), *oa = scalar_ops(ow->vec_dot_type);
    float *x = malloc(n * sizeof(float)), *y = malloc(n * sizeof(float));
    ow->dequant(w, x, n);
    oa->dequant(a, y, n);
    double mag = 0;
    for (int64_t i = 0; i < n; i++)
        mag += fabs((double)x[i] * (double)y[i]);
    *sterm_err = 0;
    if (t == DTYPE_Q4_1 || t == DTYPE_Q5_1) {
        for (int64_t b = 0; b < n / QK; b++) {
            const uint8_t *pw = (const uint8_t *)w + b * type_size(t);
            const BlockQ8_1 *pa = (const BlockQ8_1 *)a + b;
            uint16_t m16;
            memcpy(&m16, pw + 2, 2);
            const double m = fp16_to_f32(m16), s = fp16_to_f32(pa->s);
            int sum = 0;
            for (int j = 0; j < QK; j++)
                sum += pa->qs[j];
            mag += fabs(m * s);
            /* s is fp16(d*sum): the format's own rounding, not the kernel's */
            *sterm_err += fabs(m) * fabs(s - (double)fp16_to_f32(pa->d) * sum) * 1.001;
        }
    }
    free(x);
    free(y);
    return mag;
}

static void make_dot_inputs(Rng *r, DType t, uint8_t *w, uint8_t *a, float *x, int64_t n,
                            int variant) {
    const QuantOps *ow = scalar_ops(t), *oa = scalar_ops(ow->vec_dot_type);
    if (variant == 10) {
        fill_random_blocks(r, t, w, n / QK, 0);
    } else {
        fill_data(r, x, n, variant);
        ow->quantize(x, w, n);
    }
    fill_data(r, x, n, variant * 7 + 3);
    limit_blocks(x, n, 1000.0f);
    oa->quantize(x, a, n);
}

Test(quant_legacy_simd, vec_dot_close) {
    Rng r;
    rng_seed(&r, 23);
    for (int ti = 0; ti < N_LEGACY; ti++) {
        const DType t = LEGACY[ti];
        const QuantOps *o0 = scalar_ops(t);
        if (!o0->vec_dot)
            continue;
        const DType at = o0->vec_dot_type;
        for (int si = 0; si < N_NBLOCKS; si++) {
            const int64_t nb = NBLOCKS[si], n = nb * QK;
            void *b0, *b1, *b2;
            uint8_t *w = alloc_off(nb * type_size(t), 1, &b0),
                    *a = alloc_off(nb * type_size(at), 1, &b1);
            float *x = alloc_off(n * sizeof(float), 4, &b2);
            for (int variant = 0; variant < 11; variant++) {
                make_dot_inputs(&r, t, w, a, x, n, variant);
                float want = NAN;
                o0->vec_dot(n, &want, w, a);
                double serr;
                const double mag = dot_magnitude(t, w, a, n, &serr);
                for (int l = SIMD_AVX2; l <= (int)cpu_simd_level(); l++) {
                    float got = NAN;
                    quant_ops_at(t, (SimdLevel)l)->vec_dot(n, &got, w, a);
                    cr_assert(fabs((double)got - want) <= 1e-5 * mag + 1e-30,
                              "%s vec_dot at %s, %lld blocks, variant %d: got %.9g want %.9g "
                              "(sum|w*a| %.3g)",
                              dtype_info(t)->name, cpu_simd_name((SimdLevel)l), (long long)nb,
                              variant, got, want, mag);
                }
            }
            free(b0), free(b1), free(b2);
        }
    }
}

/* ---- (5) scalar vec_dot is the dot of the dequantized rows --------------- */

Test(quant_legacy_dot, equals_dequantized_dot) {
    Rng r;
    rng_seed(&r, 31);
    for (int ti = 0; ti < N_LEGACY; ti++) {
        const DType t = LEGACY[ti];
        const QuantOps *o = scalar_ops(t);
        if (!o->vec_dot)
            continue;
        const QuantOps *oa = scalar_ops(o->vec_dot_type);
        for (int si = 0; si < N_NBLOCKS; si++) {
            const int64_t nb = NBLOCKS[si], n = nb * QK;
            uint8_t *w = malloc(nb * type_size(t)), *a = malloc(nb * type_size(o->vec_dot_type));
            float *x = malloc(n * sizeof(float)), *y = malloc(n * sizeof(float));
            for (int variant = 0; variant < 11; variant++) {
                make_dot_inputs(&r, t, w, a, x, n, variant);
                o->dequant(w, x, n);
                oa->dequant(a, y, n);
                double ref = 0;
                for (int64_t i = 0; i < n; i++)
                    ref += (double)x[i] * (double)y[i];
                double serr;
                const double mag = dot_magnitude(t, w, a, n, &serr);
                float got = NAN;
                o->vec_dot(n, &got, w, a);
                cr_assert(fabs((double)got - ref) <= 1e-5 * mag + serr + 1e-30,
                          "%s scalar vec_dot, %lld blocks, variant %d: got %.9g, dequantized dot "
                          "%.9g (sum|w*a| %.3g, s rounding %.3g)",
                          dtype_info(t)->name, (long long)nb, variant, got, ref, mag, serr);
            }
            free(w), free(a), free(x), free(y);
        }
    }
}

/* The table itself: activation formats as ggml pairs them. */
Test(quant_legacy_dot, vec_dot_types) {
    cr_expect_eq(scalar_ops(DTYPE_Q4_0)->vec_dot_type, DTYPE_Q8_0);
    cr_expect_eq(scalar_ops(DTYPE_Q5_0)->vec_dot_type, DTYPE_Q8_0);
    cr_expect_eq(scalar_ops(DTYPE_Q8_0)->vec_dot_type, DTYPE_Q8_0);
    cr_expect_eq(scalar_ops(DTYPE_Q4_1)->vec_dot_type, DTYPE_Q8_1);
    cr_expect_eq(scalar_ops(DTYPE_Q5_1)->vec_dot_type, DTYPE_Q8_1);
    cr_expect_not_null(scalar_ops(DTYPE_Q8_1)->quantize);
    for (int l = SIMD_SCALAR; l <= SIMD_AVX512; l++)
        for (int ti = 0; ti < N_LEGACY; ti++) {
            const QuantOps *o = quant_ops_at(LEGACY[ti], (SimdLevel)l);
            cr_assert_not_null(o);
            cr_expect(o->dequant && o->quantize, "%s at %s incomplete",
                      dtype_info(LEGACY[ti])->name, cpu_simd_name((SimdLevel)l));
            cr_expect(o->vec_dot_type == scalar_ops(LEGACY[ti])->vec_dot_type);
        }
}
