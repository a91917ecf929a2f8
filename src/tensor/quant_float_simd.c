/* quant_float_simd.c - AVX2 (+FMA+F16C) and AVX-512 kernels for the float
 * weight types F32, F16, BF16: vec_dot (F32 activations), dequant, quantize.
 *
 * The Makefile builds without -march, so each kernel group is compiled under
 * `#pragma GCC target` and only installed in the table when cpu_simd_level()
 * allows it; the binary runs on any x86-64. All loads and stores are
 * unaligned.
 *
 * Exactness against the scalar twins (quant_float.c):
 *   dequant, quantize - bit-identical (F16C and vcvtph2ps round to nearest
 *                       even like core/fp16.h; NaN payloads too, see fp16.h)
 *   vec_dot           - float lanes, fixed order (4 vector accumulators, then
 *                       a fixed horizontal sum, then the tail), so repeatable
 *                       run to run; differs from the double-accumulating twin
 *                       by float summation error only. */
#include <string.h>

#include "core/fp16.h"
#include "tensor/quant_simd.h"

#if defined(__x86_64__) || defined(__i386__)

#include "core/simd.h"
#include <immintrin.h>

/* ======================================================================== */
SIMD_BEGIN_AVX2

static inline float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline __m256 bf16x8_load_avx2(const uint8_t *p) {
    __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
}

static inline __m256 f16x8_load_avx2(const uint8_t *p) {
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}

static inline __m256 f32x8_load_avx2(const uint8_t *p) { return _mm256_loadu_ps((const float *)p); }

/* One dot kernel per weight type; LOAD turns 8 weights at byte offset into
 * floats, SZ is the weight size in bytes, SCALAR converts one weight. */
#define DOT_AVX2(name, LOAD, SZ, SCALAR)                                                           \
    static void name(int64_t n, float *s, const void *w, const void *a) {                          \
        const uint8_t *x = w;                                                                      \
        const float *y = a;                                                                        \
        __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0, acc2 = acc0, acc3 = acc0;                  \
        int64_t i = 0;                                                                             \
        for (; i + 32 <= n; i += 32) {                                                             \
            acc0 = _mm256_fmadd_ps(LOAD(x + (i + 0) * SZ), _mm256_loadu_ps(y + i + 0), acc0);      \
            acc1 = _mm256_fmadd_ps(LOAD(x + (i + 8) * SZ), _mm256_loadu_ps(y + i + 8), acc1);      \
            acc2 = _mm256_fmadd_ps(LOAD(x + (i + 16) * SZ), _mm256_loadu_ps(y + i + 16), acc2);    \
            acc3 = _mm256_fmadd_ps(LOAD(x + (i + 24) * SZ), _mm256_loadu_ps(y + i + 24), acc3);    \
        }                                                                                          \
        for (; i + 8 <= n; i += 8)                                                                 \
            acc0 = _mm256_fmadd_ps(LOAD(x + i * SZ), _mm256_loadu_ps(y + i), acc0);                \
        float sum = hsum256(_mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3)));  \
        for (; i < n; i++) {                                                                       \
            uint16_t h;                                                                            \
            float f;                                                                               \
            (void)h;                                                                               \
            SCALAR;                                                                                \
            sum += f * y[i];                                                                       \
        }                                                                                          \
        *s = sum;                                                                                  \
    }

DOT_AVX2(f32_dot_avx2, f32x8_load_avx2, 4, memcpy(&f, x + 4 * i, 4))
DOT_AVX2(f16_dot_avx2, f16x8_load_avx2, 2, (memcpy(&h, x + 2 * i, 2), f = fp16_to_f32(h)))
DOT_AVX2(bf16_dot_avx2, bf16x8_load_avx2, 2, (memcpy(&h, x + 2 * i, 2), f = bf16_to_f32(h)))

static void f16_dequant_avx2(const void *src, float *dst, int64_t n) {
    const uint8_t *p = src;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, f16x8_load_avx2(p + 2 * i));
    for (; i < n; i++) {
        uint16_t h;
        memcpy(&h, p + 2 * i, 2);
        dst[i] = fp16_to_f32(h);
    }
}

static void f16_quantize_avx2(const float *src, void *dst, int64_t n) {
    uint8_t *p = dst;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(p + 2 * i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) {
        uint16_t h = fp32_to_f16(src[i]);
        memcpy(p + 2 * i, &h, 2);
    }
}

static void bf16_dequant_avx2(const void *src, float *dst, int64_t n) {
    const uint8_t *p = src;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, bf16x8_load_avx2(p + 2 * i));
    for (; i < n; i++) {
        uint16_t h;
        memcpy(&h, p + 2 * i, 2);
        dst[i] = bf16_to_f32(h);
    }
}

/* fp32_to_bf16 on 8 lanes: round to nearest even, NaN kept quiet. Returns
 * the 8 results in the low 16 bits of each 32-bit lane. */
static inline __m256i bf16x8_round_avx2(__m256 v) {
    const __m256i x = _mm256_castps_si256(v);
    const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(x, 16), _mm256_set1_epi32(1));
    const __m256i r = _mm256_srli_epi32(
        _mm256_add_epi32(_mm256_add_epi32(x, _mm256_set1_epi32(0x7fff)), lsb), 16);
    const __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(x, _mm256_set1_epi32(0x7fffffff)),
                                           _mm256_set1_epi32(0x7f800000));
    const __m256i q = _mm256_or_si256(_mm256_srli_epi32(x, 16), _mm256_set1_epi32(64));
    return _mm256_blendv_epi8(r, q, nan);
}

static void bf16_quantize_avx2(const float *src, void *dst, int64_t n) {
    uint8_t *p = dst;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i r = bf16x8_round_avx2(_mm256_loadu_ps(src + i));
        r = _mm256_packus_epi32(r, r); /* lanes: r0-3 r0-3 | r4-7 r4-7 */
        r = _mm256_permute4x64_epi64(r, 0x08);
        _mm_storeu_si128((__m128i *)(p + 2 * i), _mm256_castsi256_si128(r));
    }
    for (; i < n; i++) {
        uint16_t h = fp32_to_bf16(src[i]);
        memcpy(p + 2 * i, &h, 2);
    }
}

SIMD_END

/* ======================================================================== */
SIMD_BEGIN_AVX512

/* n - i remaining elements, 1..15: a mask of that many low lanes. */
static inline __mmask16 tail_mask(int64_t rem) { return (__mmask16)((1u << rem) - 1); }

static inline __m512 f32x16_load_avx512(const uint8_t *p, __mmask16 m) {
    return _mm512_maskz_loadu_ps(m, p);
}
static inline __m512 f16x16_load_avx512(const uint8_t *p, __mmask16 m) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p));
}
static inline __m512 bf16x16_load_avx512(const uint8_t *p, __mmask16 m) {
    __m512i w = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p));
    return _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
}

/* The tail (n % 16 elements) goes through masked loads, so there is no
 * scalar loop and no read past the end of either row. */
#define DOT_AVX512(name, LOAD, SZ)                                                                 \
    static void name(int64_t n, float *s, const void *w, const void *a) {                          \
        const uint8_t *x = w;                                                                      \
        const float *y = a;                                                                        \
        const __mmask16 all = 0xffff;                                                              \
        __m512 acc0 = _mm512_setzero_ps(), acc1 = acc0, acc2 = acc0, acc3 = acc0;                  \
        int64_t i = 0;                                                                             \
        for (; i + 64 <= n; i += 64) {                                                             \
            acc0 = _mm512_fmadd_ps(LOAD(x + (i + 0) * SZ, all), _mm512_loadu_ps(y + i + 0), acc0); \
            acc1 =                                                                                 \
                _mm512_fmadd_ps(LOAD(x + (i + 16) * SZ, all), _mm512_loadu_ps(y + i + 16), acc1);  \
            acc2 =                                                                                 \
                _mm512_fmadd_ps(LOAD(x + (i + 32) * SZ, all), _mm512_loadu_ps(y + i + 32), acc2);  \
            acc3 =                                                                                 \
                _mm512_fmadd_ps(LOAD(x + (i + 48) * SZ, all), _mm512_loadu_ps(y + i + 48), acc3);  \
        }                                                                                          \
        for (; i + 16 <= n; i += 16)                                                               \
            acc0 = _mm512_fmadd_ps(LOAD(x + i * SZ, all), _mm512_loadu_ps(y + i), acc0);           \
        if (i < n) {                                                                               \
            const __mmask16 m = tail_mask(n - i);                                                  \
            acc1 = _mm512_fmadd_ps(LOAD(x + i * SZ, m), _mm512_maskz_loadu_ps(m, y + i), acc1);    \
        }                                                                                          \
        *s = _mm512_reduce_add_ps(                                                                 \
            _mm512_add_ps(_mm512_add_ps(acc0, acc1), _mm512_add_ps(acc2, acc3)));                  \
    }

DOT_AVX512(f32_dot_avx512, f32x16_load_avx512, 4)
DOT_AVX512(f16_dot_avx512, f16x16_load_avx512, 2)
DOT_AVX512(bf16_dot_avx512, bf16x16_load_avx512, 2)

static void f16_dequant_avx512(const void *src, float *dst, int64_t n) {
    const uint8_t *p = src;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(dst + i, f16x16_load_avx512(p + 2 * i, 0xffff));
    if (i < n) {
        const __mmask16 m = tail_mask(n - i);
        _mm512_mask_storeu_ps(dst + i, m, f16x16_load_avx512(p + 2 * i, m));
    }
}

static void f16_quantize_avx512(const float *src, void *dst, int64_t n) {
    uint8_t *p = dst;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm256_storeu_si256((__m256i *)(p + 2 * i),
                            _mm512_cvtps_ph(_mm512_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
    if (i < n) {
        const __mmask16 m = tail_mask(n - i);
        __m256i h = _mm512_cvtps_ph(_mm512_maskz_loadu_ps(m, src + i), _MM_FROUND_TO_NEAREST_INT);
        _mm256_mask_storeu_epi16(p + 2 * i, m, h);
    }
}

static void bf16_dequant_avx512(const void *src, float *dst, int64_t n) {
    const uint8_t *p = src;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(dst + i, bf16x16_load_avx512(p + 2 * i, 0xffff));
    if (i < n) {
        const __mmask16 m = tail_mask(n - i);
        _mm512_mask_storeu_ps(dst + i, m, bf16x16_load_avx512(p + 2 * i, m));
    }
}

static inline __m256i bf16x16_round_avx512(__m512 v) {
    const __m512i x = _mm512_castps_si512(v);
    const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(x, 16), _mm512_set1_epi32(1));
    const __m512i r = _mm512_srli_epi32(
        _mm512_add_epi32(_mm512_add_epi32(x, _mm512_set1_epi32(0x7fff)), lsb), 16);
    const __mmask16 nan = _mm512_cmpgt_epu32_mask(
        _mm512_and_si512(x, _mm512_set1_epi32(0x7fffffff)), _mm512_set1_epi32(0x7f800000));
    const __m512i q = _mm512_or_si512(_mm512_srli_epi32(x, 16), _mm512_set1_epi32(64));
    return _mm512_cvtepi32_epi16(_mm512_mask_blend_epi32(nan, r, q));
}

static void bf16_quantize_avx512(const float *src, void *dst, int64_t n) {
    uint8_t *p = dst;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm256_storeu_si256((__m256i *)(p + 2 * i), bf16x16_round_avx512(_mm512_loadu_ps(src + i)));
    if (i < n) {
        const __mmask16 m = tail_mask(n - i);
        _mm256_mask_storeu_epi16(p + 2 * i, m,
                                 bf16x16_round_avx512(_mm512_maskz_loadu_ps(m, src + i)));
    }
}

SIMD_END

void quant_float_simd_fill(QuantOps *ops, SimdLevel level) {
    if (level == SIMD_AVX2) {
        ops[DTYPE_F32].vec_dot = f32_dot_avx2;
        ops[DTYPE_F16] = (QuantOps){.dequant = f16_dequant_avx2,
                                    .quantize = f16_quantize_avx2,
                                    .vec_dot = f16_dot_avx2,
                                    .vec_dot_type = DTYPE_F32};
        ops[DTYPE_BF16] = (QuantOps){.dequant = bf16_dequant_avx2,
                                     .quantize = bf16_quantize_avx2,
                                     .vec_dot = bf16_dot_avx2,
                                     .vec_dot_type = DTYPE_F32};
    } else if (level == SIMD_AVX512) {
        ops[DTYPE_F32].vec_dot = f32_dot_avx512;
        ops[DTYPE_F16] = (QuantOps){.dequant = f16_dequant_avx512,
                                    .quantize = f16_quantize_avx512,
                                    .vec_dot = f16_dot_avx512,
                                    .vec_dot_type = DTYPE_F32};
        ops[DTYPE_BF16] = (QuantOps){.dequant = bf16_dequant_avx512,
                                     .quantize = bf16_quantize_avx512,
                                     .vec_dot = bf16_dot_avx512,
                                     .vec_dot_type = DTYPE_F32};
    }
}

#else /* not x86: the scalar kernels stay */

void quant_float_simd_fill(QuantOps *ops, SimdLevel level) {
    (void)ops;
    (void)level;
}

#endif
