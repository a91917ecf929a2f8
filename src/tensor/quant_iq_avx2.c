/* quant_iq_avx2.c - AVX2 (+FMA+F16C) vec_dot and vec_dot4 of IQ4_NL and
 * MXFP4 (against Q8_0) and IQ4_XS (against Q8_K).
 *
 * Compiled without -march inside SIMD_BEGIN_AVX2 and reached only through
 * quant_iq_avx2_fill() (quant_iq_fill() at SIMD_AVX2; the AVX-512 level
 * inherits these). dequant and quantize stay scalar.
 *
 * The codebook lookup is one pshufb of the 16 nibble indices into the
 * 16-byte table. The signed weights meet the signed activations as
 * maddubs(|a|, sign(w, a)): |a| read as unsigned is right even for a =
 * -128 (a Q8_K activation may hold it) and |w| <= 127 keeps the pair sums
 * below 2^15, so every block's integer dot is exact.
 *
 * Float order against the scalar twins in quant_iq.c:
 *   IQ4_XS - per super-block the same integer and the same float operations:
 *            the twin's bits.
 *   IQ4_NL, MXFP4 - each block's eight lane sums times d_w * d_a are FMA'd
 *            into two alternating 8-lane accumulators (as the legacy types'
 *            AVX2 dots): the twin's value up to float summation order.
 *   vec_dot4 gives its vec_dot's bits (one body with R rows). */
#include "tensor/quant_blocks_iq.h"
#include "tensor/quant_blocks_k.h"
#include "tensor/quant_blocks_legacy.h"

#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>

#include "core/fp16.h"
#include "core/simd.h"

SIMD_BEGIN_AVX2

static inline int32_t hsum_i32x8(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
    return _mm_cvtsi128_si32(s);
}

static inline float hsum_f32x8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* The 32 signed weights of a group: 16 packed index bytes (element j in
 * the low nibble of qs[j], j + 16 in its high nibble) looked up in 'table'
 * (the 16 codebook bytes in both lanes). */
static inline __m256i lookup32(const uint8_t *qs, __m256i table) {
    const __m128i t = _mm_loadu_si128((const __m128i *)qs);
    __m256i v = _mm256_inserti128_si256(_mm256_castsi128_si256(t), _mm_srli_epi16(t, 4), 1);
    return _mm256_shuffle_epi8(table, _mm256_and_si256(v, _mm256_set1_epi8(0x0F)));
}

static inline __m256i table_of(const int8_t *v) {
    return _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)v));
}

/* 16 int16 sums of adjacent products w*a, exact (see the file comment). */
static inline __m256i dot_pairs(__m256i w, __m256i a) {
    return _mm256_maddubs_epi16(_mm256_sign_epi8(a, a), _mm256_sign_epi8(w, a));
}

/* ---- IQ4_NL and MXFP4 (against Q8_0) -------------------------------------- */

/* Activation row r's block i scale: from vec_dot4's widened scales
 * (quant_act_scales) or widened here; the same float either way. */
#define DA(r, i) (sc ? sc[(size_t)(r)*lsc + 2 * (size_t)(i)] : _cvtsh_ss(y[r][i].d))

/* One weight block i against R rows' blocks i, into the accumulators acc. */
#define NL_BLOCK(R, i, acc)                                                                        \
    do {                                                                                           \
        const __m256i wq = lookup32(mx ? xm[i].qs : xn[i].qs, table);                              \
        const float dw = mx ? quant_iq_e8m0_half(xm[i].e) : _cvtsh_ss(xn[i].d);                    \
        _Pragma("GCC unroll 4") for (int r = 0; r < R; r++) {                                      \
            const __m256i aq = _mm256_loadu_si256((const __m256i *)y[r][i].qs);                    \
            const __m256 v =                                                                       \
                _mm256_cvtepi32_ps(_mm256_madd_epi16(dot_pairs(wq, aq), _mm256_set1_epi16(1)));    \
            acc[r] = _mm256_fmadd_ps(v, _mm256_set1_ps(dw * DA(r, i)), acc[r]);                    \
        }                                                                                          \
    } while (0)

/* vec_dot (R = 1, sc NULL) and vec_dot4 (R = 4) of IQ4_NL (mx = 0) and
 * MXFP4 (mx = 1): two blocks per step into two accumulators, an odd last
 * block into the first, then one fixed fold. */
static inline __attribute__((always_inline)) void nl_dot(int64_t n, float *s, size_t ls,
                                                         const void *w, const void *a, size_t la,
                                                         const float *sc, size_t lsc, const int mx,
                                                         const int R) {
    const BlockIQ4_NL *xn = w;
    const BlockMXFP4 *xm = w;
    const BlockQ8_0 *y[4];
    for (int r = 0; r < R; r++)
        y[r] = (const BlockQ8_0 *)(const void *)((const char *)a + (size_t)r * la);
    const __m256i table = table_of(mx ? MXFP4_VALUES : IQ4_NL_VALUES);
    const int64_t nb = n / 32;
    __m256 acc0[4], acc1[4];
    for (int r = 0; r < R; r++)
        acc0[r] = acc1[r] = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 2 <= nb; i += 2) {
        NL_BLOCK(R, i, acc0);
        NL_BLOCK(R, i + 1, acc1);
    }
    if (i < nb)
        NL_BLOCK(R, i, acc0);
    for (int r = 0; r < R; r++)
        s[(size_t)r * ls] = hsum_f32x8(_mm256_add_ps(acc0[r], acc1[r]));
}

static void iq4_nl_vec_dot_avx2(int64_t n, float *s, const void *w, const void *a) {
    nl_dot(n, s, 0, w, a, 0, NULL, 0, 0, 1);
}

static void iq4_nl_vec_dot4_avx2(int64_t n, float *s, size_t ls, const void *w, const void *a,
                                 size_t la, const float *sc, size_t lsc) {
    nl_dot(n, s, ls, w, a, la, sc, lsc, 0, 4);
}

static void mxfp4_vec_dot_avx2(int64_t n, float *s, const void *w, const void *a) {
    nl_dot(n, s, 0, w, a, 0, NULL, 0, 1, 1);
}

static void mxfp4_vec_dot4_avx2(int64_t n, float *s, size_t ls, const void *w, const void *a,
                                size_t la, const float *sc, size_t lsc) {
    nl_dot(n, s, ls, w, a, la, sc, lsc, 1, 4);
}

/* ---- IQ4_XS (against Q8_K) ------------------------------------------------- */

/* vec_dot (R = 1) and vec_dot4 (R = 4): per super-block, group ib's int16
 * pair sums times its scale (madd) into one int32 accumulator per row,
 * then the twin's float operations. */
static inline __attribute__((always_inline)) void
xs_dot(int64_t n, float *s, size_t ls, const void *w, const void *a, size_t la, const int R) {
    const BlockIQ4_XS *x = w;
    const BlockQ8_K *y[4];
    for (int r = 0; r < R; r++)
        y[r] = (const BlockQ8_K *)(const void *)((const char *)a + (size_t)r * la);
    const __m256i table = table_of(IQ4_NL_VALUES);
    float sumf[4] = {0, 0, 0, 0};
    for (int64_t b = 0; b < n / QK_K; b++) {
        __m256i acc[4];
        for (int r = 0; r < R; r++)
            acc[r] = _mm256_setzero_si256();
#pragma GCC unroll 8
        for (int ib = 0; ib < QK_K / 32; ib++) {
            const __m256i wq = lookup32(x[b].qs + 16 * ib, table);
            const __m256i sk = _mm256_set1_epi16((short)quant_iq4_xs_scale(&x[b], ib));
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                const __m256i aq = _mm256_loadu_si256((const __m256i *)(y[r][b].qs + 32 * ib));
                acc[r] = _mm256_add_epi32(acc[r], _mm256_madd_epi16(dot_pairs(wq, aq), sk));
            }
        }
        const float xd = _cvtsh_ss(x[b].d);
        for (int r = 0; r < R; r++)
            sumf[r] += (xd * y[r][b].d) * (float)hsum_i32x8(acc[r]);
    }
    for (int r = 0; r < R; r++)
        s[(size_t)r * ls] = sumf[r];
}

static void iq4_xs_vec_dot_avx2(int64_t n, float *s, const void *w, const void *a) {
    xs_dot(n, s, 0, w, a, 0, 1);
}

static void iq4_xs_vec_dot4_avx2(int64_t n, float *s, size_t ls, const void *w, const void *a,
                                 size_t la, const float *sc, size_t lsc) {
    (void)sc, (void)lsc; /* Q8_K blocks hold their scale as a float */
    xs_dot(n, s, ls, w, a, la, 4);
}

SIMD_END

void quant_iq_avx2_fill(QuantOps *ops) {
    ops[DTYPE_IQ4_NL].vec_dot = iq4_nl_vec_dot_avx2;
    ops[DTYPE_IQ4_NL].vec_dot4 = iq4_nl_vec_dot4_avx2;
    ops[DTYPE_MXFP4].vec_dot = mxfp4_vec_dot_avx2;
    ops[DTYPE_MXFP4].vec_dot4 = mxfp4_vec_dot4_avx2;
    ops[DTYPE_IQ4_XS].vec_dot = iq4_xs_vec_dot_avx2;
    ops[DTYPE_IQ4_XS].vec_dot4 = iq4_xs_vec_dot4_avx2;
}

#else

void quant_iq_avx2_fill(QuantOps *ops) { (void)ops; }

#endif
