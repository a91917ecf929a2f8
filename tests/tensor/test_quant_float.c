/* test_quant_float.c - core/fp16.h conversions and the F32/F16/BF16
 * kernels: fp16 -> f32 exhaustively against the arithmetic definition and
 * the F16C instruction, f32 -> f16 against F16C on millions of floats
 * (subnormals, inf, nan included), bf16 against an independent
 * round-to-nearest-even in double; hand-built bytes; round-trip bounds;
 * every SIMD level against the scalar twin on awkward lengths. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../testutil.h"
#include "core/fp16.h"
#include "core/rng.h"
#include "tensor/quant.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <immintrin.h>
#if defined(__clang__) /* clang ignores the GCC target pragma */
#pragma clang attribute push(__attribute__((target("f16c"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("f16c")
#endif
static uint16_t hw_f32_to_f16(float f) { return (uint16_t)_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT); }
static float hw_f16_to_f32(uint16_t h) { return _cvtsh_ss(h); }
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
static int have_f16c(void) {
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C);
}
#else
static uint16_t hw_f32_to_f16(float f) { return fp32_to_f16(f); }
static float hw_f16_to_f32(uint16_t h) { return fp16_to_f32(h); }
static int have_f16c(void) { return 0; }
#endif

static const DType FLOATS[] = {DTYPE_F32, DTYPE_F16, DTYPE_BF16};
#define N_FLOATS 3
/* Lengths: 1, 7, 33, 257 "blocks" (block size 1) plus lengths that leave
 * every possible tail after 64- and 32-wide main loops. */
static const int64_t LENGTHS[] = {1, 7, 33, 257, 4096, 4096 + 63, 15, 16, 17, 31, 64, 65};
#define N_LENGTHS (int)(sizeof(LENGTHS) / sizeof(LENGTHS[0]))

static const QuantOps *scalar_ops(DType t) {
    const QuantOps *o = quant_ops_at(t, SIMD_SCALAR);
    cr_assert_not_null(o, "no scalar kernels for %s", dtype_info(t)->name);
    return o;
}

/* ---- (6) fp16 / bf16 helpers ---------------------------------------------- */

/* The value of a half from its fields, by the IEEE 754 definition. */
static double half_value(uint16_t h) {
    const int sign = h >> 15, e = (h >> 10) & 0x1f, m = h & 0x3ff;
    double v = e == 0 ? ldexp(m, -24) : ldexp(1024 + m, e - 25);
    if (e == 31)
        v = m ? NAN : INFINITY;
    return sign ? -v : v;
}

Test(quant_float_fp16, exhaustive_decode_and_round_trip) {
    const int hw = have_f16c();
    for (uint32_t h = 0; h < 65536; h++) {
        const float f = fp16_to_f32((uint16_t)h);
        const double want = half_value((uint16_t)h);
        if (isnan(want)) {
            cr_assert(isnan(f), "half %#06x: got %g, want nan", h, f);
        } else {
            cr_assert((double)f == want && !signbit(f) == !signbit(want),
                      "half %#06x: got %.9g want %.9g", h, f, want);
        }
        if (hw) {
            const float g = hw_f16_to_f32((uint16_t)h);
            cr_assert(fp_bits(f) == fp_bits(g), "half %#06x: bits %#010x, F16C %#010x", h,
                      fp_bits(f), fp_bits(g));
        }
        /* back to half: every value is exact; a NaN comes back quiet with its payload */
        const uint16_t back = fp32_to_f16(f);
        const uint16_t want_back = isnan(want) ? (uint16_t)(h | 0x200) : (uint16_t)h;
        cr_assert(back == want_back, "half %#06x -> %.9g -> %#06x, want %#06x", h, f, back,
                  want_back);
    }
}

Test(quant_float_fp16, known_values) {
    cr_expect(fp32_to_f16(1.0f) == 0x3c00);
    cr_expect(fp32_to_f16(-2.0f) == 0xc000);
    cr_expect(fp32_to_f16(65504.0f) == 0x7bff);
    cr_expect(fp32_to_f16(65519.99f) == 0x7bff);           /* below the midpoint to 65536 */
    cr_expect(fp32_to_f16(65520.0f) == 0x7c00);            /* the midpoint: even is inf */
    cr_expect(fp32_to_f16(0x1p-24f) == 0x0001);            /* smallest subnormal */
    cr_expect(fp32_to_f16(0x1p-25f) == 0x0000);            /* half of it: tie to even 0 */
    cr_expect(fp32_to_f16(0x1.8p-25f) == 0x0001);          /* above the tie */
    cr_expect(fp32_to_f16(0x1.8p-24f) == 0x0002);          /* 1.5 ulp: tie to even 2 */
    cr_expect(fp32_to_f16(0x1p-14f) == 0x0400);            /* smallest normal */
    cr_expect(fp32_to_f16(1.0f + 0x1p-11f) == 0x3c00);     /* tie to even: down */
    cr_expect(fp32_to_f16(1.0f + 3 * 0x1p-11f) == 0x3c02); /* tie to even: up */
    cr_expect(fp32_to_f16(-0.0f) == 0x8000);
    cr_expect(fp32_to_f16(-INFINITY) == 0xfc00);
    cr_expect((fp32_to_f16(NAN) & 0x7e00) == 0x7e00);
    cr_expect(fp16_to_f32(0x3555) == 0x1.554p-2f);
}

/* f32 -> f16 against the F16C instruction: random bit patterns (all
 * exponents: subnormals, inf, nan), random floats near the fp16 range and
 * its subnormal range, and exact midpoints between neighbouring halves. */
Test(quant_float_fp16, matches_f16c) {
    if (!have_f16c()) {
        cr_log_warn("no F16C on this CPU: skipped");
        return;
    }
    Rng r;
    rng_seed(&r, 61);
    int64_t checked = 0;
    for (int64_t i = 0; i < 4000000; i++) {
        uint32_t u = (uint32_t)rng_u64(&r);
        switch (i & 3) {
        case 0:
            break; /* any pattern */
        case 1:    /* exponents around the fp16 range: 2^-26 .. 2^17 */
            u = (u & 0x807fffffu) | ((uint32_t)(101 + rng_u64(&r) % 43) << 23);
            break;
        case 2: /* midpoints and their neighbours: low 13 bits 0x1000 +- 1 */
            u = (u & 0xffffe000u) | (0x1000u + (uint32_t)(rng_u64(&r) % 3) - 1u);
            u = (u & 0x807fffffu) | ((uint32_t)(101 + rng_u64(&r) % 43) << 23);
            break;
        default: /* specials */
            u = (u & 0x80000000u) | (i % 8 < 4 ? 0x7f800000u | (u & 0x7fffff) : (u & 0x7fffff));
            break;
        }
        const float f = fp_from_bits(u);
        const uint16_t got = fp32_to_f16(f), want = hw_f32_to_f16(f);
        cr_assert(got == want, "f32 %#010x (%.9g): got %#06x, F16C %#06x", u, f, got, want);
        checked++;
    }
    cr_assert(checked == 4000000);
}

/* Round to nearest even onto bf16, decided in double from the two bf16
 * neighbours of f (the upper one may be 2^128, i.e. overflow to inf): an
 * independent twin of fp32_to_bf16 for finite inputs. */
static uint16_t bf16_reference(float f) {
    const uint32_t u = fp_bits(f);
    const uint32_t lo = u & 0xffff0000u, hi = lo + 0x10000u;
    if ((u & 0xffffu) == 0)
        return (uint16_t)(lo >> 16);
    const double a = fabs((double)f), dlo = fabs((double)fp_from_bits(lo));
    const double dhi =
        (hi & 0x7f800000u) == 0x7f800000u ? ldexp(1.0, 128) : fabs((double)fp_from_bits(hi));
    const double mid = dlo + (dhi - dlo) / 2; /* exact in double */
    if (a < mid)
        return (uint16_t)(lo >> 16);
    if (a > mid)
        return (uint16_t)(hi >> 16);
    return (uint16_t)(((lo >> 16) & 1) ? hi >> 16 : lo >> 16);
}

Test(quant_float_bf16, conversions) {
    /* exhaustive: every bf16 decodes to the float with those top 16 bits
     * and converts back to itself; NaNs come back quiet */
    for (uint32_t h = 0; h < 65536; h++) {
        const float f = bf16_to_f32((uint16_t)h);
        cr_assert(fp_bits(f) == h << 16, "bf16 %#06x -> %#010x", h, fp_bits(f));
        const uint16_t back = fp32_to_bf16(f);
        const uint16_t want = isnan(f) ? (uint16_t)(h | 0x40) : (uint16_t)h;
        cr_assert(back == want, "bf16 %#06x -> %#06x, want %#06x", h, back, want);
    }
    cr_expect(fp32_to_bf16(1.0f) == 0x3f80);
    cr_expect(fp32_to_bf16(-5.0f) == 0xc0a0);
    cr_expect(fp32_to_bf16(fp_from_bits(0x3f808000u)) == 0x3f80); /* tie: even down */
    cr_expect(fp32_to_bf16(fp_from_bits(0x3f818000u)) == 0x3f82); /* tie: even up */
    cr_expect(fp32_to_bf16(fp_from_bits(0x7f7fffffu)) == 0x7f80); /* FLT_MAX rounds to inf */
    Rng r;
    rng_seed(&r, 62);
    for (int i = 0; i < 2000000; i++) {
        uint32_t u = (uint32_t)rng_u64(&r);
        if (i & 1)
            u = (u & 0xffff0000u) | (0x8000u + (uint32_t)(rng_u64(&r) % 3) - 1u); /* near ties */
        const float f = fp_from_bits(u);
        if (isnan(f))
            continue;
        const uint16_t got = fp32_to_bf16(f), want = bf16_reference(f);
        cr_assert(got == want, "f32 %#010x (%.9g): got %#06x want %#06x", u, f, got, want);
    }
}

/* ---- (1) hand-built rows --------------------------------------------------- */

Test(quant_float_hand, decode) {
    const uint8_t f16[] = {0x00, 0x3c, 0x00, 0xc0, 0xff, 0x7b, 0x01,
                           0x00, 0x00, 0x7c, 0x00, 0x80, 0x55, 0x35};
    const float want16[] = {1.0f, -2.0f, 65504.0f, 0x1p-24f, INFINITY, -0.0f, 0x1.554p-2f};
    const uint8_t bf16[] = {0x80, 0x3f, 0xa0, 0xc0, 0x49, 0x40, 0x80,
                            0xff, 0x01, 0x00, 0x00, 0x80, 0x7f, 0x7f};
    const float wantbf[] = {1.0f, -5.0f, 3.140625f, -INFINITY, 0x1p-133f, -0.0f, 0x1.fep127f};
    for (int l = SIMD_SCALAR; l <= (int)cpu_simd_level(); l++) {
        float got[7];
        quant_ops_at(DTYPE_F16, (SimdLevel)l)->dequant(f16, got, 7);
        for (int i = 0; i < 7; i++)
            cr_expect(fp_bits(got[i]) == fp_bits(want16[i]), "%s F16[%d]: got %.9g want %.9g",
                      cpu_simd_name((SimdLevel)l), i, got[i], want16[i]);
        quant_ops_at(DTYPE_BF16, (SimdLevel)l)->dequant(bf16, got, 7);
        for (int i = 0; i < 7; i++)
            cr_expect(fp_bits(got[i]) == fp_bits(wantbf[i]), "%s BF16[%d]: got %.9g want %.9g",
                      cpu_simd_name((SimdLevel)l), i, got[i], wantbf[i]);
        /* and back: quantize writes exactly those bytes */
        uint8_t back[14];
        quant_ops_at(DTYPE_F16, (SimdLevel)l)->quantize(want16, back, 7);
        cr_expect(memcmp(back, f16, 14) == 0, "%s F16 quantize bytes", cpu_simd_name((SimdLevel)l));
        quant_ops_at(DTYPE_BF16, (SimdLevel)l)->quantize(wantbf, back, 7);
        cr_expect(memcmp(back, bf16, 14) == 0, "%s BF16 quantize bytes",
                  cpu_simd_name((SimdLevel)l));
    }
    /* dots by hand: 1*3 + -2*0.5 + 0.25*-4 = 1 */
    const float a[3] = {3.0f, 0.5f, -4.0f};
    const float w32[3] = {1.0f, -2.0f, 0.25f};
    const uint8_t w16[6] = {0x00, 0x3c, 0x00, 0xc0, 0x00, 0x34};
    const uint8_t wbf[6] = {0x80, 0x3f, 0x00, 0xc0, 0x80, 0x3e};
    for (int l = SIMD_SCALAR; l <= (int)cpu_simd_level(); l++) {
        float s32 = NAN, s16 = NAN, sbf = NAN;
        quant_ops_at(DTYPE_F32, (SimdLevel)l)->vec_dot(3, &s32, w32, a);
        quant_ops_at(DTYPE_F16, (SimdLevel)l)->vec_dot(3, &s16, w16, a);
        quant_ops_at(DTYPE_BF16, (SimdLevel)l)->vec_dot(3, &sbf, wbf, a);
        cr_expect(s32 == 1.0f && s16 == 1.0f && sbf == 1.0f, "%s dots %g %g %g",
                  cpu_simd_name((SimdLevel)l), s32, s16, sbf);
    }
}

/* ---- (2)(3) round trips ------------------------------------------------------ */

static void fill_floats(Rng *r, float *x, int64_t n, int variant) {
    for (int64_t i = 0; i < n; i++) {
        const float g = rng_normal(r);
        switch ((i / 16 + variant) % 6) {
        case 0:
            x[i] = g;
            break;
        case 1:
            x[i] = 0.0f;
            break;
        case 2:
            x[i] = g * 1e4f;
            break;
        case 3:
            x[i] = g * 1e-3f;
            break;
        case 4:
            x[i] = 0.75f;
            break;
        default:
            x[i] = g * 1e-6f;
            break; /* fp16 subnormals */
        }
    }
}

Test(quant_float_roundtrip, bounds_and_grid) {
    Rng r;
    rng_seed(&r, 71);
    const int64_t n = 4096;
    float *x = malloc(n * 4), *y = malloc(n * 4), *z = malloc(n * 4);
    uint8_t *q = malloc(n * 4), *q2 = malloc(n * 4);
    for (int variant = 0; variant < 6; variant++) {
        fill_floats(&r, x, n, variant);
        for (int ti = 0; ti < N_FLOATS; ti++) {
            const DType t = FLOATS[ti];
            const QuantOps *o = scalar_ops(t);
            o->quantize(x, q, n);
            o->dequant(q, y, n);
            for (int64_t i = 0; i < n; i++) {
                /* half an ulp: 2^-24 relative for F32 (exact), 2^-11 for F16 normals
                 * (2^-25 absolute in its subnormal range), 2^-8 for BF16 */
                const double ax = fabs((double)x[i]);
                const double bound = t == DTYPE_F32   ? 0
                                     : t == DTYPE_F16 ? fmax(ax * 0x1p-11, 0x1p-25)
                                                      : ax * 0x1p-8;
                cr_assert(fabs((double)y[i] - x[i]) <= bound, "%s variant %d [%lld]: %.9g -> %.9g",
                          dtype_info(t)->name, variant, (long long)i, x[i], y[i]);
            }
            /* on the grid: the dequantized values quantize back to the same bytes */
            o->quantize(y, q2, n);
            cr_assert(memcmp(q, q2, (size_t)n * dtype_info(t)->type_size) == 0,
                      "%s: re-quantizing grid values changed the bytes", dtype_info(t)->name);
            o->dequant(q2, z, n);
            cr_assert(memcmp(y, z, (size_t)n * 4) == 0);
        }
    }
    free(x), free(y), free(z), free(q), free(q2);
}

/* ---- (4)(5) SIMD vs scalar, and the dot itself ------------------------------- */

/* Buffers 'off' bytes past a malloc'd base: block rows at odd addresses
 * (off 1), float rows only float-aligned (off 4), never vector-aligned. */
static void *alloc_off(size_t bytes, size_t off, void **base) {
    *base = malloc(bytes + 64);
    cr_assert_not_null(*base);
    memset(*base, 0xa5, bytes + 64);
    return (char *)*base + off;
}

Test(quant_float_simd, against_scalar) {
    Rng r;
    rng_seed(&r, 81);
    for (int li = 0; li < N_LENGTHS; li++) {
        const int64_t n = LENGTHS[li];
        void *b0, *b1, *b2, *b3, *b4, *b5;
        float *got = alloc_off(n * 4, 4, &b5);
        float *x = alloc_off(n * 4, 4, &b0), *a = alloc_off(n * 4, 4, &b1),
              *want = alloc_off(n * 4, 4, &b2);
        uint8_t *qw = alloc_off(n * 4, 1, &b3), *qg = alloc_off(n * 4, 1, &b4);
        for (int variant = 0; variant < 7; variant++) {
            fill_floats(&r, x, n, variant);
            if (variant == 6) /* specials too: these must convert bit-identically */
                for (int64_t i = 0; i < n; i++)
                    x[i] = fp_from_bits((uint32_t)rng_u64(&r));
            fill_floats(&r, a, n, variant + 1);
            for (int ti = 0; ti < N_FLOATS; ti++) {
                const DType t = FLOATS[ti];
                const size_t ts = (size_t)dtype_info(t)->type_size;
                const QuantOps *o0 = scalar_ops(t);
                o0->quantize(x, qw, n);
                o0->dequant(qw, want, n);
                double mag = 0, ref = 0;
                float dot0 = NAN;
                if (variant != 6) {
                    for (int64_t i = 0; i < n; i++) {
                        mag += fabs((double)want[i] * a[i]);
                        ref += (double)want[i] * a[i];
                    }
                    o0->vec_dot(n, &dot0, qw, a);
                    /* (5) the double-accumulating twin is the exact dot, rounded */
                    cr_assert(fabs((double)dot0 - ref) <= 1e-7 * mag + 1e-38,
                              "%s scalar dot n=%lld: %.9g vs %.9g", dtype_info(t)->name,
                              (long long)n, dot0, ref);
                }
                for (int l = SIMD_AVX2; l <= (int)cpu_simd_level(); l++) {
                    const QuantOps *o = quant_ops_at(t, (SimdLevel)l);
                    const char *lv = cpu_simd_name((SimdLevel)l);
                    memset(qg, 0x5a, n * ts);
                    o->quantize(x, qg, n);
                    for (int64_t i = 0; i < n; i++)
                        cr_assert(
                            memcmp(qg + i * ts, qw + i * ts, ts) == 0,
                            "%s quantize at %s n=%lld variant %d: element %lld (%#010x) differs",
                            dtype_info(t)->name, lv, (long long)n, variant, (long long)i,
                            fp_bits(x[i]));
                    o->dequant(qw, got, n);
                    for (int64_t i = 0; i < n; i++)
                        cr_assert(fp_bits(got[i]) == fp_bits(want[i]),
                                  "%s dequant at %s n=%lld: element %lld got %#010x want %#010x",
                                  dtype_info(t)->name, lv, (long long)n, (long long)i,
                                  fp_bits(got[i]), fp_bits(want[i]));
                    if (variant != 6) {
                        float dot = NAN;
                        o->vec_dot(n, &dot, qw, a);
                        cr_assert(fabs((double)dot - dot0) <= 1e-5 * mag + 1e-38,
                                  "%s vec_dot at %s n=%lld variant %d: got %.9g want %.9g "
                                  "(sum|w*a| %.3g)",
                                  dtype_info(t)->name, lv, (long long)n, variant, dot, dot0, mag);
                    }
                }
            }
        }
        free(b0), free(b1), free(b2), free(b3), free(b4), free(b5);
    }
}

Test(quant_float_simd, table) {
    for (int l = SIMD_SCALAR; l <= SIMD_AVX512; l++)
        for (int ti = 0; ti < N_FLOATS; ti++) {
            const QuantOps *o = quant_ops_at(FLOATS[ti], (SimdLevel)l);
            cr_assert_not_null(o);
            cr_expect(o->dequant && o->quantize && o->vec_dot && o->vec_dot_type == DTYPE_F32,
                      "%s at %s", dtype_info(FLOATS[ti])->name, cpu_simd_name((SimdLevel)l));
        }
}
