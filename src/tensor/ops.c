/* ops.c - row kernels (norms, rope, softmax, activations) and the F32
 * dot/axpy used by attention and the F32 matmul.
 *
 * The SIMD variants live in GCC target regions (no -march flags) and are
 * picked at run time. Reductions keep a fixed lane/accumulator structure so
 * a result never depends on where a row sits in a batch. No fast-math: the
 * naive twins at the bottom define the meaning. */
#include "tensor/ops.h"

#include <math.h>
#include <pthread.h>
#include <stddef.h>

#include "core/err.h"
#include "core/fp16.h"
#include "tensor/quant_blocks_legacy.h"

#if defined(__x86_64__)
#include "core/simd.h"
#include <immintrin.h>
#define OPS_X86 1
#else
#define OPS_X86 0
#endif

/* Fully unroll a loop with a constant trip count so that arrays of vector
 * accumulators live in registers. */
#if defined(__clang__)
#define OPS_UNROLL _Pragma("clang loop unroll(full)")
#else
#define OPS_UNROLL _Pragma("GCC unroll 16")
#endif

/* ---------------------------------------------------------------- scalar */

/* Every dot / axpy / attention here exists for two element types of the
 * second operand: float, and IEEE half (an F16 KV cache), widened exactly
 * where it is read. One body per kernel, instantiated for both, so the half
 * variant computes exactly what the float one does over the widened rows. */
static inline float widen_f32(float x) { return x; }
static inline float widen_f16(uint16_t h) { return fp16_to_f32(h); }

/* Eight independent accumulators so gcc can vectorise without reassociating
 * across them; the final fold order is fixed. */
#define DEF_DOT_SCALAR(name, T, W)                                                                 \
    static float name(int n, const float *a, const T *b) {                                         \
        float acc[8] = {0};                                                                        \
        int i = 0;                                                                                 \
        for (; i + 8 <= n; i += 8)                                                                 \
            for (int j = 0; j < 8; j++)                                                            \
                acc[j] += a[i + j] * W(b[i + j]);                                                  \
        float s =                                                                                  \
            ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));     \
        for (; i < n; i++)                                                                         \
            s += a[i] * W(b[i]);                                                                   \
        return s;                                                                                  \
    }

#define DEF_AXPY_SCALAR(name, T, W)                                                                \
    static void name(int n, float *y, float a, const T *x) {                                       \
        for (int i = 0; i < n; i++)                                                                \
            y[i] += a * W(x[i]);                                                                   \
    }

DEF_DOT_SCALAR(dot_scalar, float, widen_f32)
DEF_DOT_SCALAR(dot16_scalar, uint16_t, widen_f16)
DEF_AXPY_SCALAR(axpy_scalar, float, widen_f32)
DEF_AXPY_SCALAR(axpy16_scalar, uint16_t, widen_f16)

/* Attention with any dot/axpy: per head, scores by dot, softmax, then
 * out = sum_t p_t v_t by axpy. The scalar and AVX2 levels use it (and every
 * level over an F16 cache). Position t's row of a paged cache is at
 * base + table[t / bs] * block_stride + (t % bs) * hd elements. */
#define DEF_ATTN_GENERIC(name, T)                                                                  \
    static void name(float (*dot)(int, const float *, const T *),                                  \
                     void (*axpy)(int, float *, float, const T *), float *out, const float *q,     \
                     int G, int hd, const T *k, const T *v, const int32_t *table,                  \
                     long block_stride, int bs, int n, float scale, float *scores) {               \
        for (int g = 0; g < G; g++) {                                                              \
            const float *qg = q + (size_t)g * hd;                                                  \
            float *og = out + (size_t)g * hd, *sc = scores + (size_t)g * n;                        \
            for (int t = 0; t < n; t++)                                                            \
                sc[t] = dot(hd, qg,                                                                \
                            k + (size_t)table[t / bs] * (size_t)block_stride +                     \
                                (size_t)(t % bs) * (size_t)hd) *                                   \
                        scale;                                                                     \
            softmax_forward(sc, n);                                                                \
            for (int i = 0; i < hd; i++)                                                           \
                og[i] = 0.0f;                                                                      \
            for (int t = 0; t < n; t++)                                                            \
                axpy(hd, og, sc[t],                                                                \
                     v + (size_t)table[t / bs] * (size_t)block_stride +                            \
                         (size_t)(t % bs) * (size_t)hd);                                           \
        }                                                                                          \
    }

DEF_ATTN_GENERIC(attn_generic, float)
DEF_ATTN_GENERIC(attn_generic16, uint16_t)

/* A row of hd / 32 Q8_0 blocks as floats: d * q, one multiply each (the
 * bits of the type's dequant). */
#define OPS_Q8_MAX_HD 256
static void q8_row(float *dst, const void *src, int hd) {
    const BlockQ8_0 *b = src;
    for (int i = 0; i < hd / QK8_0; i++) {
        const float d = fp16_to_f32(b[i].d);
        for (int j = 0; j < QK8_0; j++)
            dst[i * QK8_0 + j] = (float)b[i].qs[j] * d;
    }
}

/* The naive twin's rows (float caches only). */
static inline const float *kv_row(const float *base, const int32_t *table, long block_stride,
                                  int bs, int hd, int t) {
    return base + (size_t)table[t / bs] * (size_t)block_stride + (size_t)(t % bs) * (size_t)hd;
}

static void attn_scalar(float *out, const float *q, int G, int hd, const float *k, const float *v,
                        const int32_t *table, long block_stride, int bs, int n, float scale,
                        float *scores) {
    attn_generic(dot_scalar, axpy_scalar, out, q, G, hd, k, v, table, block_stride, bs, n, scale,
                 scores);
}

static void attn16_scalar(float *out, const float *q, int G, int hd, const uint16_t *k,
                          const uint16_t *v, const int32_t *table, long block_stride, int bs, int n,
                          float scale, float *scores) {
    attn_generic16(dot16_scalar, axpy16_scalar, out, q, G, hd, k, v, table, block_stride, bs, n,
                   scale, scores);
}

/* Over a Q8_0 cache: each row dequantized (d * q, as the Q8_0 dequant)
 * where it is read, then the float dot / axpy: attn_scalar over the
 * dequantized rows. */
static void attn_q8_scalar(float *out, const float *q, int G, int hd, const void *k, const void *v,
                           const int32_t *table, long block_bytes, int bs, int n, float scale,
                           float *scores) {
    ASSERT(hd % QK8_0 == 0 && hd <= OPS_Q8_MAX_HD);
    float row[OPS_Q8_MAX_HD];
    size_t rb = (size_t)hd / QK8_0 * sizeof(BlockQ8_0);
    for (int g = 0; g < G; g++) {
        const float *qg = q + (size_t)g * hd;
        float *og = out + (size_t)g * hd, *sc = scores + (size_t)g * n;
        for (int t = 0; t < n; t++) {
            q8_row(row,
                   (const char *)k + (size_t)table[t / bs] * (size_t)block_bytes +
                       (size_t)(t % bs) * rb,
                   hd);
            sc[t] = dot_scalar(hd, qg, row) * scale;
        }
        softmax_forward(sc, n);
        for (int i = 0; i < hd; i++)
            og[i] = 0.0f;
        for (int t = 0; t < n; t++) {
            q8_row(row,
                   (const char *)v + (size_t)table[t / bs] * (size_t)block_bytes +
                       (size_t)(t % bs) * rb,
                   hd);
            axpy_scalar(hd, og, sc[t], row);
        }
    }
}

/* attn_rows by the level's one-row kernels, row after row. */
static void attn_rows_each(OpsAttnFn attn, OpsAttn16Fn attn16, OpsAttnQ8Fn attn8, OpsKvKind kind,
                           float *out, const float *q, size_t ldq, int R, int G, int hd,
                           const void *k, const void *v, const int32_t *table, long block_stride,
                           int bs, const int *n, float scale, float *scores) {
    for (int r = 0; r < R; r++) {
        float *o = out + (size_t)r * ldq;
        const float *qr = q + (size_t)r * ldq;
        if (kind == OPS_KV_Q8_0)
            attn8(o, qr, G, hd, k, v, table, block_stride, bs, n[r], scale, scores);
        else if (kind == OPS_KV_F16)
            attn16(o, qr, G, hd, k, v, table, block_stride, bs, n[r], scale, scores);
        else
            attn(o, qr, G, hd, k, v, table, block_stride, bs, n[r], scale, scores);
    }
}

static void attn_rows_scalar(OpsKvKind kind, float *out, const float *q, size_t ldq, int R, int G,
                             int hd, const void *k, const void *v, const int32_t *table,
                             long block_stride, int bs, const int *n, float scale, float *scores) {
    attn_rows_each(attn_scalar, attn16_scalar, attn_q8_scalar, kind, out, q, ldq, R, G, hd, k, v,
                   table, block_stride, bs, n, scale, scores);
}

/* ------------------------------------------------------------------ AVX2 */

#if OPS_X86
SIMD_BEGIN_AVX2

static const int32_t AVX2_TAIL_MASK[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};

static inline __m256 load8_f32(const float *p) { return _mm256_loadu_ps(p); }
/* F16C widening: the bits of fp16_to_f32 (tested). */
static inline __m256 load8_f16(const uint16_t *p) {
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)p));
}

/* The sum of the 8 lanes by a fixed tree (halves, pairs, then one). */
static inline float hsum8(__m256 s) {
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_movehdup_ps(h));
    return _mm_cvtss_f32(h);
}

/* Four accumulators of 8 lanes, a masked tail (its b elements widened into
 * a buffer first), then a fixed horizontal fold. */
#define DEF_DOT_AVX2(name, T, LOAD8, W)                                                            \
    static float name(int n, const float *a, const T *b) {                                         \
        __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();                                 \
        __m256 s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();                                 \
        int i = 0;                                                                                 \
        for (; i + 32 <= n; i += 32) {                                                             \
            s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), LOAD8(b + i), s0);                        \
            s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), LOAD8(b + i + 8), s1);                \
            s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), LOAD8(b + i + 16), s2);              \
            s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), LOAD8(b + i + 24), s3);              \
        }                                                                                          \
        for (; i + 8 <= n; i += 8)                                                                 \
            s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), LOAD8(b + i), s0);                        \
        if (i < n) {                                                                               \
            float tail[8] = {0};                                                                   \
            for (int j = 0; j < n - i; j++)                                                        \
                tail[j] = W(b[i + j]);                                                             \
            __m256i m = _mm256_loadu_si256((const __m256i *)(AVX2_TAIL_MASK + 8 - (n - i)));       \
            s1 = _mm256_fmadd_ps(_mm256_maskload_ps(a + i, m), _mm256_maskload_ps(tail, m), s1);   \
        }                                                                                          \
        return hsum8(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));                 \
    }

#define DEF_AXPY_AVX2(name, T, LOAD8, W)                                                           \
    static void name(int n, float *y, float a, const T *x) {                                       \
        __m256 va = _mm256_set1_ps(a);                                                             \
        int i = 0;                                                                                 \
        for (; i + 8 <= n; i += 8)                                                                 \
            _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, LOAD8(x + i), _mm256_loadu_ps(y + i)));    \
        for (; i < n; i++)                                                                         \
            y[i] = fmaf(a, W(x[i]), y[i]);                                                         \
    }

DEF_DOT_AVX2(dot_avx2, float, load8_f32, widen_f32)
DEF_DOT_AVX2(dot16_avx2, uint16_t, load8_f16, widen_f16)
DEF_AXPY_AVX2(axpy_avx2, float, load8_f32, widen_f32)
DEF_AXPY_AVX2(axpy16_avx2, uint16_t, load8_f16, widen_f16)

/* exp of 8 lanes: x = n ln2 + r (Cody-Waite), exp(r) by Cephes' degree-6
 * polynomial, times 2^n as two exponent-field multiplies (so results in
 * the subnormals round once, and n = 128 overflows to +inf). Lanes below
 * -104 (exp underflows to 0 there; -inf included) give exactly 0; NaN
 * lanes give NaN. */
static inline __m256 exp8(__m256 x) {
    const __m256 lo = _mm256_set1_ps(-104.0f), hi = _mm256_set1_ps(89.0f);
    __m256 zero = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
    __m256 nan = _mm256_cmp_ps(x, x, _CMP_UNORD_Q);
    __m256 xc = _mm256_min_ps(_mm256_max_ps(x, lo), hi);
    __m256 n = _mm256_round_ps(_mm256_mul_ps(xc, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), xc);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    /* n in [-150, 128]: 2^n = 2^(n - h) 2^h with h = n / 2 (toward zero),
     * both factors normal floats */
    __m256i ni = _mm256_cvtps_epi32(n);
    __m256i h = _mm256_srai_epi32(_mm256_add_epi32(ni, _mm256_srli_epi32(ni, 31)), 1);
    __m256i bias = _mm256_set1_epi32(127);
    __m256 f1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(h, bias), 23));
    __m256 f2 =
        _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_sub_epi32(ni, h), bias), 23));
    __m256 e = _mm256_mul_ps(_mm256_mul_ps(p, f2), f1);
    e = _mm256_andnot_ps(zero, e);
    return _mm256_blendv_ps(e, x, nan);
}

static void exp_avx2(float *e, const float *x, int n) {
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(e + i, exp8(_mm256_loadu_ps(x + i)));
    if (i < n) {
        __m256i m = _mm256_loadu_si256((const __m256i *)(AVX2_TAIL_MASK + 8 - (n - i)));
        _mm256_maskstore_ps(e + i, m, exp8(_mm256_maskload_ps(x + i, m)));
    }
}

static inline void prefetch_span(const void *p, size_t bytes) {
    for (size_t o = 0; o < bytes; o += 64)
        _mm_prefetch((const char *)p + o, _MM_HINT_T0);
}

/* Lane j of the result is the sum of the 8 lanes of a[j], by a fixed tree
 * (pairs, quads, then the two 128-bit halves). */
static inline __m256 hsum8x8(const __m256 a[8]) {
    __m256 h01 = _mm256_hadd_ps(a[0], a[1]), h23 = _mm256_hadd_ps(a[2], a[3]);
    __m256 h45 = _mm256_hadd_ps(a[4], a[5]), h67 = _mm256_hadd_ps(a[6], a[7]);
    __m256 h0123 = _mm256_hadd_ps(h01, h23), h4567 = _mm256_hadd_ps(h45, h67);
    return _mm256_add_ps(_mm256_permute2f128_ps(h0123, h4567, 0x20),
                         _mm256_permute2f128_ps(h0123, h4567, 0x31));
}

/* Scores of cnt (<= 8) consecutive key rows of hd = 8 nv floats against
 * one query head, times scale, into sc[0..cnt): per row one FMA chain over
 * the 8-lane chunks in order, then hsum8x8. */
static inline __attribute__((always_inline)) void
qk8_avx2(float *sc, const float *q, int nv, const float *krows, int cnt, float scale) {
    __m256 acc[8];
    OPS_UNROLL
    for (int j = 0; j < 8; j++)
        acc[j] = _mm256_setzero_ps();
    size_t hd = 8 * (size_t)nv;
    for (int c = 0; c < nv; c++) {
        __m256 qc = _mm256_loadu_ps(q + 8 * c);
        OPS_UNROLL
        for (int j = 0; j < 8; j++)
            if (j < cnt)
                acc[j] =
                    _mm256_fmadd_ps(qc, _mm256_loadu_ps(krows + (size_t)j * hd + 8 * c), acc[j]);
    }
    __m256 s = _mm256_mul_ps(hsum8x8(acc), _mm256_set1_ps(scale));
    if (cnt == 8) {
        _mm256_storeu_ps(sc, s);
    } else {
        __m256i m = _mm256_loadu_si256((const __m256i *)(AVX2_TAIL_MASK + 8 - cnt));
        _mm256_maskstore_ps(sc, m, s);
    }
}

/* sc[0..n) = exp(sc - max) (0 everywhere when all are -inf); returns 1 /
 * their sum (8 lanes, fixed fold), or 0 for an all -inf row. */
static float softmax_weights_avx2(float *sc, int n, float sink) {
    __m256 mx = _mm256_set1_ps(-INFINITY);
    int i = 0;
    for (; i + 8 <= n; i += 8)
        mx = _mm256_max_ps(mx, _mm256_loadu_ps(sc + i));
    float m = -INFINITY;
    for (int j = i; j < n; j++)
        m = sc[j] > m ? sc[j] : m;
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_movehdup_ps(h));
    m = _mm_cvtss_f32(h) > m ? _mm_cvtss_f32(h) : m;
    m = sink > m ? sink : m;
    if (m == -INFINITY) {
        for (i = 0; i < n; i++)
            sc[i] = 0.0f;
        return 0.0f;
    }
    __m256 vmax = _mm256_set1_ps(m), sum = _mm256_setzero_ps();
    for (i = 0; i + 8 <= n; i += 8) {
        __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(sc + i), vmax));
        _mm256_storeu_ps(sc + i, e);
        sum = _mm256_add_ps(sum, e);
    }
    if (i < n) {
        __m256i msk = _mm256_loadu_si256((const __m256i *)(AVX2_TAIL_MASK + 8 - (n - i)));
        __m256 e = _mm256_and_ps(exp8(_mm256_sub_ps(_mm256_maskload_ps(sc + i, msk), vmax)),
                                 _mm256_castsi256_ps(msk));
        _mm256_maskstore_ps(sc + i, msk, e);
        sum = _mm256_add_ps(sum, e);
    }
    if (sink == -INFINITY)
        return 1.0f / hsum8(sum);
    return 1.0f / (hsum8(sum) + expf(sink - m)); /* the sink: in the denominator only */
}

/* s[i] = cap * tanh(s[i] / cap) for n floats: tanh(x) = sign(x) (1 - e) /
 * (1 + e) with e = exp(-2|x|) (exp8: within 2 ulp, so the result is within
 * ~1e-7 of tanh absolutely). Every element goes through the 8-lane path
 * (the tail through a padded copy), so its bits do not depend on n. */
static void softcap_avx2(float *s, int n, float cap) {
    const __m256 c = _mm256_set1_ps(cap), one = _mm256_set1_ps(1.0f);
    const __m256 sign = _mm256_set1_ps(-0.0f), m2 = _mm256_set1_ps(-2.0f);
    for (int i = 0; i < n; i += 8) {
        float tail[8] = {0};
        int k = n - i < 8 ? n - i : 8;
        float *p = k == 8 ? s + i : tail;
        if (k < 8)
            memcpy(tail, s + i, (size_t)k * sizeof(float));
        __m256 x = _mm256_div_ps(_mm256_loadu_ps(p), c);
        __m256 e = exp8(_mm256_mul_ps(m2, _mm256_andnot_ps(sign, x)));
        __m256 t = _mm256_div_ps(_mm256_sub_ps(one, e), _mm256_add_ps(one, e));
        t = _mm256_or_ps(t, _mm256_and_ps(sign, x));
        _mm256_storeu_ps(p, _mm256_mul_ps(c, t));
        if (k < 8)
            memcpy(s + i, tail, (size_t)k * sizeof(float));
    }
}

/* For GC heads (their weights at w + g * ld), M 8-lane chunks of each
 * head's output (head g's at o + g * hd) += sum over the cnt rows (of hd
 * floats, from 'vrows') of w_g[j] * row j's same chunks, in row order. Each
 * value chunk is loaded once for all GC heads; GC * M <= 12 accumulators
 * stay in registers (both constants at every call). */
static inline __attribute__((always_inline)) void pv_heads_avx2(float *o, const float *w, size_t ld,
                                                                int GC, int M, const float *vrows,
                                                                size_t hd, int cnt) {
    __m256 acc[12];
    OPS_UNROLL
    for (int g = 0; g < GC; g++)
        OPS_UNROLL
    for (int i = 0; i < M; i++)
        acc[g * M + i] = _mm256_loadu_ps(o + (size_t)g * hd + 8 * i);
    for (int j = 0; j < cnt; j++) {
        const float *vr = vrows + (size_t)j * hd;
        OPS_UNROLL
        for (int i = 0; i < M; i++) {
            __m256 x = _mm256_loadu_ps(vr + 8 * i);
            OPS_UNROLL
            for (int g = 0; g < GC; g++)
                acc[g * M + i] =
                    _mm256_fmadd_ps(_mm256_broadcast_ss(w + (size_t)g * ld + j), x, acc[g * M + i]);
        }
    }
    OPS_UNROLL
    for (int g = 0; g < GC; g++)
        OPS_UNROLL
    for (int i = 0; i < M; i++)
        _mm256_storeu_ps(o + (size_t)g * hd + 8 * i, acc[g * M + i]);
}

/* pv_heads_avx2 over all nv chunks of gc heads: three heads and 32 lanes
 * at a time, then what is left one chunk at a time. */
static void pv_chunk_avx2(float *og, const float *w, size_t ld, int gc, int nv, const float *vr,
                          int cnt) {
    size_t hd = 8 * (size_t)nv;
    for (int g0 = 0; g0 < gc; g0 += 3) {
        int gn = gc - g0 < 3 ? gc - g0 : 3;
        float *o = og + (size_t)g0 * hd;
        const float *wg = w + (size_t)g0 * ld;
        int c = 0;
        for (; c + 4 <= nv; c += 4) {
            if (gn == 3)
                pv_heads_avx2(o + 8 * c, wg, ld, 3, 4, vr + 8 * c, hd, cnt);
            else if (gn == 2)
                pv_heads_avx2(o + 8 * c, wg, ld, 2, 4, vr + 8 * c, hd, cnt);
            else
                pv_heads_avx2(o + 8 * c, wg, ld, 1, 4, vr + 8 * c, hd, cnt);
        }
        for (; c < nv; c++)
            for (int g = 0; g < gn; g++)
                pv_heads_avx2(o + g * hd + 8 * c, wg + g * ld, ld, 1, 1, vr + 8 * c, hd, cnt);
    }
}

#define ATTN_AVX2_CHUNK 16   /* rows of a block handled together */
#define ATTN_AVX2_MAX_HD 256 /* larger heads take the generic kernel */

/* Blocks are scattered (a paged cache), so hardware prefetchers lose the
 * stream at every block boundary: on entering the block at t0, fetch the
 * one pf blocks ahead, keeping about this many bytes in flight. */
#define ATTN_PREFETCH_BYTES 16384

static inline void prefetch_ahead(const void *base, const int32_t *table, size_t block_bytes,
                                  int bs, int n, int t0, int pf, size_t row_bytes) {
    int first = t0 == 0 ? 1 : pf; /* on the first block, every block up to pf */
    for (int d = first; d <= pf; d++) {
        int t = t0 + d * bs;
        if (t >= n)
            break;
        int cnt = n - t < bs ? n - t : bs;
        prefetch_span((const char *)base + (size_t)table[t / bs] * block_bytes,
                      (size_t)cnt * row_bytes);
    }
}

/* The cache element kinds of the block kernel: float, IEEE half, and rows
 * of Q8_0 blocks. */
enum { KV_ROWS_F32, KV_ROWS_F16, KV_ROWS_Q8_0 };

/* Bytes of a row of hd elements, and the unit block_stride counts in. */
static inline size_t kv_row_bytes(int hd, int kind) {
    return kind == KV_ROWS_Q8_0  ? (size_t)hd / QK8_0 * sizeof(BlockQ8_0)
           : kind == KV_ROWS_F16 ? (size_t)hd * sizeof(uint16_t)
                                 : (size_t)hd * sizeof(float);
}
static inline size_t kv_stride_unit(int kind) {
    return kind == KV_ROWS_Q8_0 ? 1 : kind == KV_ROWS_F16 ? sizeof(uint16_t) : sizeof(float);
}

/* Rows [j0, j0 + cnt) of one cache block at 'blk' as floats: the cache's
 * own rows for an F32 cache, else widened or dequantized (d * q, one
 * multiply: the bits of the Q8_0 dequant) into buf. */
static inline __attribute__((always_inline)) const float *
chunk_rows(const void *blk, int j0, int cnt, int hd, float *buf, int kind) {
    size_t len = (size_t)cnt * (size_t)hd;
    const char *rows = (const char *)blk + (size_t)j0 * kv_row_bytes(hd, kind);
    if (kind == KV_ROWS_F32)
        return (const float *)(const void *)rows;
    if (kind == KV_ROWS_F16) {
        const uint16_t *h = (const uint16_t *)(const void *)rows;
        for (size_t i = 0; i < len; i += 8) /* hd % 8 == 0 */
            _mm256_storeu_ps(buf + i, load8_f16(h + i));
        return buf;
    }
    const BlockQ8_0 *b = (const BlockQ8_0 *)(const void *)rows;
    for (size_t i = 0; i < len; i += QK8_0, b++) { /* hd % 32 == 0 */
        __m256 d = _mm256_set1_ps(_cvtsh_ss(b->d));
        for (int c = 0; c < 4; c++) {
            __m256i q = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(b->qs + 8 * c)));
            _mm256_storeu_ps(buf + i + 8 * c, _mm256_mul_ps(_mm256_cvtepi32_ps(q), d));
        }
    }
    return buf;
}

/* Block-wise attention of R (<= OPS_ATTN_MAX_ROWS) query rows of one
 * sequence, G <= 64 heads each (hd a multiple of 8, at most 256; of 32 for
 * Q8_0). Each chunk of up to 16 rows of a block is loaded (widened or
 * dequantized once into an L1 buffer for an F16 or Q8_0 cache) for every
 * row that reaches it and every head: scores 8 positions at a time, the 8
 * dot products reduced together; softmax with the vector exp; then each
 * head's output accumulates w_t v_t, up to 3 heads x 32 lanes in registers,
 * in position order. Per (row, head) the arithmetic depends on its own row,
 * head and n[r] only: never on R, G or the other rows, and the F16 and
 * Q8_0 kinds compute the F32 kernel over the rounded rows, bit for bit. */
static inline __attribute__((always_inline)) void
attn_rows_block_avx2(float *out, const float *q, size_t ldq, int R, int G, int hd, const void *k,
                     const void *v, const int32_t *table, long block_stride, int bs, const int *n,
                     const OpsAttnExtras *x, float scale, float *scores, int kind) {
    float buf[ATTN_AVX2_CHUNK * ATTN_AVX2_MAX_HD];
    int nv = hd / 8, nmax = 0, lmin = 0;
    for (int r = 0; r < R; r++)
        nmax = n[r] > nmax ? n[r] : nmax;
    if (x) { /* the chunks below every row's window are not read */
        lmin = nmax;
        for (int r = 0; r < R; r++)
            lmin = x->lo[r] < lmin ? x->lo[r] : lmin;
    }
    size_t esz = kv_stride_unit(kind), rb = kv_row_bytes(hd, kind);
    int pf = (int)(ATTN_PREFETCH_BYTES / ((size_t)bs * rb));
    pf = pf < 1 ? 1 : pf;
    for (int t0 = lmin / bs * bs; t0 < nmax; t0 += bs) {
        const void *kb = (const char *)k + (size_t)table[t0 / bs] * (size_t)block_stride * esz;
        int cnt = nmax - t0 < bs ? nmax - t0 : bs;
        prefetch_ahead(k, table, (size_t)block_stride * esz, bs, nmax, t0, pf, rb);
        for (int j0 = 0; j0 < cnt; j0 += ATTN_AVX2_CHUNK) {
            int m = cnt - j0 < ATTN_AVX2_CHUNK ? cnt - j0 : ATTN_AVX2_CHUNK, c0 = t0 + j0;
            if (c0 + m <= lmin)
                continue;
            const float *kr = chunk_rows(kb, j0, m, hd, buf, kind);
            for (int r = 0; r < R; r++) {
                int mr = n[r] - c0 < m ? n[r] - c0 : m;
                int a = x && x->lo[r] > c0 ? x->lo[r] - c0 : 0; /* the row's first in the chunk */
                for (int g = 0; g < G; g++) {
                    float *sc = scores + ((size_t)r * G + g) * nmax + c0;
                    const float *qg = q + (size_t)r * ldq + (size_t)g * hd;
                    for (int j = a; j < mr; j += 8) {
                        if (mr - j >= 8)
                            qk8_avx2(sc + j, qg, nv, kr + (size_t)j * hd, 8, scale);
                        else
                            qk8_avx2(sc + j, qg, nv, kr + (size_t)j * hd, mr - j, scale);
                    }
                }
            }
        }
    }
    float inv[OPS_ATTN_MAX_ROWS * 64];
    for (int r = 0; r < R; r++)
        for (int g = 0; g < G; g++) {
            int l = x ? x->lo[r] : 0;
            float *sc = scores + ((size_t)r * G + g) * nmax + l;
            if (x && x->softcap > 0.0f)
                softcap_avx2(sc, n[r] - l, x->softcap);
            inv[r * G + g] =
                softmax_weights_avx2(sc, n[r] - l, x && x->sinks ? x->sinks[g] : -INFINITY);
            float *o = out + (size_t)r * ldq + (size_t)g * hd;
            for (int i = 0; i < hd; i++)
                o[i] = 0.0f;
        }
    for (int t0 = lmin / bs * bs; t0 < nmax; t0 += bs) {
        const void *vb = (const char *)v + (size_t)table[t0 / bs] * (size_t)block_stride * esz;
        int cnt = nmax - t0 < bs ? nmax - t0 : bs;
        prefetch_ahead(v, table, (size_t)block_stride * esz, bs, nmax, t0, pf, rb);
        for (int j0 = 0; j0 < cnt; j0 += ATTN_AVX2_CHUNK) {
            int m = cnt - j0 < ATTN_AVX2_CHUNK ? cnt - j0 : ATTN_AVX2_CHUNK, c0 = t0 + j0;
            if (c0 + m <= lmin)
                continue;
            const float *vr = chunk_rows(vb, j0, m, hd, buf, kind);
            for (int r = 0; r < R; r++) {
                int mr = n[r] - c0 < m ? n[r] - c0 : m;
                int a = x && x->lo[r] > c0 ? x->lo[r] - c0 : 0;
                if (mr > a)
                    pv_chunk_avx2(out + (size_t)r * ldq, scores + (size_t)r * G * nmax + c0 + a,
                                  (size_t)nmax, G, nv, vr + (size_t)a * hd, mr - a);
            }
        }
    }
    for (int r = 0; r < R; r++)
        for (int g = 0; g < G; g++) {
            __m256 vi = _mm256_set1_ps(inv[r * G + g]);
            float *o = out + (size_t)r * ldq + (size_t)g * hd;
            for (int i = 0; i < hd; i += 8)
                _mm256_storeu_ps(o + i, _mm256_mul_ps(_mm256_loadu_ps(o + i), vi));
        }
}

/* One query row: attn_rows_block_avx2 with R = 1, 64 heads at a time. */
static inline __attribute__((always_inline)) void
attn_block_avx2(float *out, const float *q, int G, int hd, const void *k, const void *v,
                const int32_t *table, long block_stride, int bs, int n, float scale, float *scores,
                int kind) {
    for (int g0 = 0; g0 < G; g0 += 64)
        attn_rows_block_avx2(out + (size_t)g0 * hd, q + (size_t)g0 * hd, 0, 1,
                             G - g0 < 64 ? G - g0 : 64, hd, k, v, table, block_stride, bs, &n, NULL,
                             scale, scores, kind);
}

static void attn_avx2(float *out, const float *q, int G, int hd, const float *k, const float *v,
                      const int32_t *table, long block_stride, int bs, int n, float scale,
                      float *scores) {
    if (hd % 8 || hd > ATTN_AVX2_MAX_HD) {
        attn_generic(dot_avx2, axpy_avx2, out, q, G, hd, k, v, table, block_stride, bs, n, scale,
                     scores);
        return;
    }
    attn_block_avx2(out, q, G, hd, k, v, table, block_stride, bs, n, scale, scores, KV_ROWS_F32);
}

static void attn16_avx2(float *out, const float *q, int G, int hd, const uint16_t *k,
                        const uint16_t *v, const int32_t *table, long block_stride, int bs, int n,
                        float scale, float *scores) {
    if (hd % 8 || hd > ATTN_AVX2_MAX_HD) {
        attn_generic16(dot16_avx2, axpy16_avx2, out, q, G, hd, k, v, table, block_stride, bs, n,
                       scale, scores);
        return;
    }
    attn_block_avx2(out, q, G, hd, k, v, table, block_stride, bs, n, scale, scores, KV_ROWS_F16);
}

static void attn_q8_avx2(float *out, const float *q, int G, int hd, const void *k, const void *v,
                         const int32_t *table, long block_bytes, int bs, int n, float scale,
                         float *scores) {
    ASSERT(hd % QK8_0 == 0 && hd <= ATTN_AVX2_MAX_HD);
    attn_block_avx2(out, q, G, hd, k, v, table, block_bytes, bs, n, scale, scores, KV_ROWS_Q8_0);
}

/* attn_rows with the extras (OpsAttnRowsExtFn): the block kernel, or false
 * for the shapes it does not take. x NULL: none (attn_rows). */
static bool attn_rows_ext_avx2(OpsKvKind kind, float *out, const float *q, size_t ldq, int R, int G,
                               int hd, const void *k, const void *v, const int32_t *table,
                               long block_stride, int bs, const int *n, const OpsAttnExtras *x,
                               float scale, float *scores) {
    ASSERT(R >= 1 && R <= OPS_ATTN_MAX_ROWS);
    /* G > 64: unseen in models */
    if (hd % 8 || hd > ATTN_AVX2_MAX_HD || G > 64 || (kind == OPS_KV_Q8_0 && hd % QK8_0))
        return false;
    if (kind == OPS_KV_Q8_0)
        attn_rows_block_avx2(out, q, ldq, R, G, hd, k, v, table, block_stride, bs, n, x, scale,
                             scores, KV_ROWS_Q8_0);
    else if (kind == OPS_KV_F16)
        attn_rows_block_avx2(out, q, ldq, R, G, hd, k, v, table, block_stride, bs, n, x, scale,
                             scores, KV_ROWS_F16);
    else
        attn_rows_block_avx2(out, q, ldq, R, G, hd, k, v, table, block_stride, bs, n, x, scale,
                             scores, KV_ROWS_F32);
    return true;
}

static void attn_rows_avx2(OpsKvKind kind, float *out, const float *q, size_t ldq, int R, int G,
                           int hd, const void *k, const void *v, const int32_t *table,
                           long block_stride, int bs, const int *n, float scale, float *scores) {
    if (!attn_rows_ext_avx2(kind, out, q, ldq, R, G, hd, k, v, table, block_stride, bs, n, NULL,
                            scale, scores))
        attn_rows_each(attn_avx2, attn16_avx2, attn_q8_avx2, kind, out, q, ldq, R, G, hd, k, v,
                       table, block_stride, bs, n, scale, scores);
}

static void swiglu_avx2(float *out, const float *gate, const float *up, int n) {
    const __m256 one = _mm256_set1_ps(1.0f);
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 g = _mm256_loadu_ps(gate + i);
        __m256 e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), g));
        _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(one, e)),
                                                _mm256_loadu_ps(up + i)));
    }
    if (i < n) {
        __m256i m = _mm256_loadu_si256((const __m256i *)(AVX2_TAIL_MASK + 8 - (n - i)));
        __m256 g = _mm256_maskload_ps(gate + i, m);
        __m256 e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), g));
        _mm256_maskstore_ps(
            out + i, m,
            _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(one, e)), _mm256_maskload_ps(up + i, m)));
    }
}

SIMD_END

/* --------------------------------------------------------------- AVX-512 */
SIMD_BEGIN_AVX512

static float dot_avx512(int n, const float *a, const float *b) {
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    __m512 s2 = _mm512_setzero_ps(), s3 = _mm512_setzero_ps();
    int i = 0;
    for (; i + 64 <= n; i += 64) {
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
        s2 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 32), _mm512_loadu_ps(b + i + 32), s2);
        s3 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 48), _mm512_loadu_ps(b + i + 48), s3);
    }
    for (; i + 16 <= n; i += 16)
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        s1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), s1);
    }
    __m512 s = _mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3));
    __m256 h8 = _mm256_add_ps(_mm512_castps512_ps256(s),
                              _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(s), 1)));
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(h8), _mm256_extractf128_ps(h8, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_movehdup_ps(h));
    return _mm_cvtss_f32(h);
}

static void axpy_avx512(int n, float *y, float a, const float *x) {
    __m512 va = _mm512_set1_ps(a);
    int i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(y + i,
                         _mm512_fmadd_ps(va, _mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i)));
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(
            y + i, m,
            _mm512_fmadd_ps(va, _mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, y + i)));
    }
}


/* exp(x) for 16 lanes: n = round(x log2 e), r = x - n ln 2 (two-part ln 2),
 * exp(r) by Cephes' degree-6 polynomial, times 2^n by scalef (which also
 * rounds into the subnormals and overflows to +inf). Lanes below -104
 * (exp underflows to 0 there; -inf included) give exactly 0. */
static inline __m512 exp16(__m512 x) {
    const __m512 lo = _mm512_set1_ps(-104.0f), hi = _mm512_set1_ps(89.0f);
    __mmask16 zero = _mm512_cmp_ps_mask(x, lo, _CMP_LT_OQ);
    x = _mm512_min_ps(_mm512_max_ps(x, lo), hi);
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    __m512 r2 = _mm512_mul_ps(r, r);
    p = _mm512_fmadd_ps(p, r2, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_maskz_scalef_ps((__mmask16)~zero, p, n);
}

static void exp_avx512(float *e, const float *x, int n) {
    int i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(e + i, exp16(_mm512_loadu_ps(x + i)));
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(e + i, m, exp16(_mm512_maskz_loadu_ps(m, x + i)));
    }
}

/* Horizontal sums of 16 vectors at once: lane j of the result is the sum of
 * the 16 lanes of v[j], by a fixed tree (halves, quarters, then within
 * 128-bit lanes). */
static inline __m512 hsum16x16(const __m512 v[16]) {
    __m512 s1[8], s2[4], s3[2];
    OPS_UNROLL
    for (int i = 0; i < 8; i++)
        s1[i] = _mm512_add_ps(_mm512_shuffle_f32x4(v[i], v[i + 8], 0x44),
                              _mm512_shuffle_f32x4(v[i], v[i + 8], 0xEE));
    OPS_UNROLL
    for (int i = 0; i < 4; i++)
        s2[i] = _mm512_add_ps(_mm512_shuffle_f32x4(s1[i], s1[i + 4], 0x88),
                              _mm512_shuffle_f32x4(s1[i], s1[i + 4], 0xDD));
    OPS_UNROLL
    for (int i = 0; i < 2; i++)
        s3[i] = _mm512_add_ps(_mm512_unpacklo_ps(s2[i], s2[i + 2]),
                              _mm512_unpackhi_ps(s2[i], s2[i + 2]));
    __m512 r = _mm512_add_ps(_mm512_unpacklo_ps(s3[0], s3[1]), _mm512_unpackhi_ps(s3[0], s3[1]));
    /* 128-bit lane c now holds v[off[c] + 0..3], off = {0, 8, 4, 12} */
    return _mm512_shuffle_f32x4(r, r, 0xD8);
}

#define ATTN_MAX_NV 16 /* head_dim <= 256 on the AVX-512 path */

/* Prefetch the rows [0, cnt) of hd floats at 'rows' (the next block). */
static inline void prefetch_rows(const float *rows, int cnt, int hd) {
    const char *p = (const char *)rows, *end = (const char *)(rows + (size_t)cnt * hd);
    for (; p < end; p += 64)
        _mm_prefetch(p, _MM_HINT_T0);
}

/* Scores of up to 16 consecutive key rows (cnt of them, rows of hd = 16 NV
 * floats) against one query head, times scale, into sc[0..cnt). */
static inline __attribute__((always_inline)) void qk_chunk(float *sc, const __m512 *qv, int NV,
                                                           const float *krows, int cnt,
                                                           float scale) {
    __m512 acc[16];
    OPS_UNROLL
    for (int j = 0; j < 16; j++) {
        if (j < cnt) {
            const float *kr = krows + (size_t)j * 16 * NV;
            __m512 a = _mm512_mul_ps(qv[0], _mm512_loadu_ps(kr));
            OPS_UNROLL
            for (int c = 1; c < NV; c++)
                a = _mm512_fmadd_ps(qv[c], _mm512_loadu_ps(kr + 16 * c), a);
            acc[j] = a;
        } else {
            acc[j] = _mm512_setzero_ps();
        }
    }
    __m512 s = _mm512_mul_ps(hsum16x16(acc), _mm512_set1_ps(scale));
    _mm512_mask_storeu_ps(sc, (__mmask16)((1u << cnt) - 1), s);
}

/* All scores of G heads over n positions: scores[g * n + t]. */
static inline __attribute__((always_inline)) void qk_all(float *scores, const float *q, int G,
                                                         int NV, const float *k,
                                                         const int32_t *table, long block_stride,
                                                         int bs, int n, float scale) {
    int hd = 16 * NV;
    for (int t0 = 0; t0 < n; t0 += bs) {
        const float *kb = k + (size_t)table[t0 / bs] * (size_t)block_stride;
        int cnt = n - t0 < bs ? n - t0 : bs;
        if (t0 + bs < n) {
            int nxt = n - t0 - bs < bs ? n - t0 - bs : bs;
            prefetch_rows(k + (size_t)table[t0 / bs + 1] * (size_t)block_stride, nxt, hd);
        }
        for (int j0 = 0; j0 < cnt; j0 += 16) {
            int m = cnt - j0 < 16 ? cnt - j0 : 16;
            for (int g = 0; g < G; g++) {
                __m512 qv[ATTN_MAX_NV] = {0};
                for (int c = 0; c < NV; c++)
                    qv[c] = _mm512_loadu_ps(q + (size_t)g * hd + 16 * c);
                qk_chunk(scores + (size_t)g * n + t0 + j0, qv, NV, kb + (size_t)j0 * hd, m,
                         scale);
            }
        }
    }
}

/* sc[0..n) = exp(sc - max); returns their sum (16 lanes, fixed fold). */
static float softmax_weights(float *sc, int n) {
    __m512 mx = _mm512_set1_ps(-INFINITY);
    int i = 0;
    for (; i + 16 <= n; i += 16)
        mx = _mm512_max_ps(mx, _mm512_loadu_ps(sc + i));
    __mmask16 tail = (__mmask16)((1u << (n - i)) - 1);
    if (i < n)
        mx = _mm512_mask_max_ps(mx, tail, mx, _mm512_maskz_loadu_ps(tail, sc + i));
    __m512 vmax = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
    __m512 sum = _mm512_setzero_ps();
    for (i = 0; i + 16 <= n; i += 16) {
        __m512 e = exp16(_mm512_sub_ps(_mm512_loadu_ps(sc + i), vmax));
        _mm512_storeu_ps(sc + i, e);
        sum = _mm512_add_ps(sum, e);
    }
    if (i < n) {
        __m512 e = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(tail, sc + i), vmax));
        _mm512_mask_storeu_ps(sc + i, tail, e);
        sum = _mm512_mask_add_ps(sum, tail, sum, e);
    }
    return _mm512_reduce_add_ps(sum);
}

/* out_g = (sum_t w[g][t] v_t) * inv[g] for GC heads, hd = 16 NV, with all
 * GC * NV accumulators in registers (GC * NV <= 16; both constants at the
 * call so the accumulators are registers). */
static inline __attribute__((always_inline)) void pv_heads(float *out, const float *w, int ld,
                                                           int GC, const float *inv, int NV,
                                                           const float *v, const int32_t *table,
                                                           long block_stride, int bs, int n) {
    __m512 acc[16];
    OPS_UNROLL
    for (int i = 0; i < GC * NV; i++)
        acc[i] = _mm512_setzero_ps();
    int hd = 16 * NV;
    for (int t0 = 0; t0 < n; t0 += bs) {
        const float *vb = v + (size_t)table[t0 / bs] * (size_t)block_stride;
        int cnt = n - t0 < bs ? n - t0 : bs;
        if (t0 + bs < n) {
            int nxt = n - t0 - bs < bs ? n - t0 - bs : bs;
            prefetch_rows(v + (size_t)table[t0 / bs + 1] * (size_t)block_stride, nxt, hd);
        }
        for (int j = 0; j < cnt; j++) {
            const float *vr = vb + (size_t)j * hd;
            OPS_UNROLL
            for (int c = 0; c < NV; c++) {
                __m512 x = _mm512_loadu_ps(vr + 16 * c);
                OPS_UNROLL
                for (int g = 0; g < GC; g++)
                    acc[g * NV + c] = _mm512_fmadd_ps(_mm512_set1_ps(w[(size_t)g * ld + t0 + j]),
                                                      x, acc[g * NV + c]);
            }
        }
    }
    OPS_UNROLL
    for (int g = 0; g < GC; g++)
        OPS_UNROLL
        for (int c = 0; c < NV; c++)
            _mm512_storeu_ps(out + (size_t)g * hd + 16 * c,
                             _mm512_mul_ps(acc[g * NV + c], _mm512_set1_ps(inv[g])));
}

/* One head at a time, one accumulator per 16 lanes: any head_dim 16 nv. */
static void pv_one(float *out, const float *w, float inv, int nv, const float *v,
                   const int32_t *table, long block_stride, int bs, int n) {
    for (int c = 0; c < nv; c++) {
        __m512 acc = _mm512_setzero_ps();
        for (int t = 0; t < n; t++) {
            const float *vr = v + (size_t)table[t / bs] * (size_t)block_stride +
                              (size_t)(t % bs) * 16 * nv;
            acc = _mm512_fmadd_ps(_mm512_set1_ps(w[t]), _mm512_loadu_ps(vr + 16 * c), acc);
        }
        _mm512_storeu_ps(out + 16 * c, _mm512_mul_ps(acc, _mm512_set1_ps(inv)));
    }
}

#define PV(GC, NV) pv_heads(o, wg, ld, GC, iv, NV, v, table, block_stride, bs, n)

static void pv_avx512(float *out, const float *w, int ld, int G, const float *inv, int nv,
                      const float *v, const int32_t *table, long block_stride, int bs, int n) {
    int gmax = nv == 4 ? 4 : nv == 8 ? 2 : 1;
    for (int g0 = 0; g0 < G; g0 += gmax) {
        int gc = G - g0 < gmax ? G - g0 : gmax;
        float *o = out + (size_t)g0 * 16 * nv;
        const float *wg = w + (size_t)g0 * ld, *iv = inv + g0;
        if (nv == 4) {
            switch (gc) {
            case 4: PV(4, 4); break;
            case 3: PV(3, 4); break;
            case 2: PV(2, 4); break;
            default: PV(1, 4); break;
            }
        } else if (nv == 8) {
            if (gc == 2)
                PV(2, 8);
            else
                PV(1, 8);
        } else {
            pv_one(o, wg, iv[0], nv, v, table, block_stride, bs, n);
        }
    }
}

#undef PV

/* Block-wise attention: each key row chunk (up to 16 rows of one block) is
 * scored against every head of the group while it sits in L1, the 16
 * dot products reduced together; softmax with the vector exp; values
 * accumulated for several heads per value row load. head_dim must be a
 * multiple of 16 (else the AVX2 path runs). */
static void attn_avx512(float *out, const float *q, int G, int hd, const float *k, const float *v,
                        const int32_t *table, long block_stride, int bs, int n, float scale,
                        float *scores) {
    int nv = hd / 16;
    if (hd % 16 || nv > ATTN_MAX_NV) {
        attn_avx2(out, q, G, hd, k, v, table, block_stride, bs, n, scale, scores);
        return;
    }
    if (nv == 4)
        qk_all(scores, q, G, 4, k, table, block_stride, bs, n, scale);
    else if (nv == 8)
        qk_all(scores, q, G, 8, k, table, block_stride, bs, n, scale);
    else
        qk_all(scores, q, G, nv, k, table, block_stride, bs, n, scale);
    float inv[64];
    for (int g0 = 0; g0 < G; g0 += 64) {
        int gc = G - g0 < 64 ? G - g0 : 64;
        for (int g = 0; g < gc; g++) {
            float z = softmax_weights(scores + (size_t)(g0 + g) * n, n);
            inv[g] = 1.0f / z;
        }
        pv_avx512(out + (size_t)g0 * hd, scores + (size_t)g0 * n, n, gc, inv, nv, v, table,
                  block_stride, bs, n);
    }
}

static void attn_rows_avx512(OpsKvKind kind, float *out, const float *q, size_t ldq, int R, int G,
                             int hd, const void *k, const void *v, const int32_t *table,
                             long block_stride, int bs, const int *n, float scale, float *scores) {
    attn_rows_each(attn_avx512, attn16_avx2, attn_q8_avx2, kind, out, q, ldq, R, G, hd, k, v, table,
                   block_stride, bs, n, scale, scores);
}

static void swiglu_avx512(float *out, const float *gate, const float *up, int n) {
    const __m512 one = _mm512_set1_ps(1.0f);
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 g = _mm512_loadu_ps(gate + i);
        __m512 sg = _mm512_div_ps(g, _mm512_add_ps(one, exp16(_mm512_sub_ps(_mm512_setzero_ps(), g))));
        _mm512_storeu_ps(out + i, _mm512_mul_ps(sg, _mm512_loadu_ps(up + i)));
    }
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        __m512 g = _mm512_maskz_loadu_ps(m, gate + i);
        __m512 sg = _mm512_div_ps(g, _mm512_add_ps(one, exp16(_mm512_sub_ps(_mm512_setzero_ps(), g))));
        _mm512_mask_storeu_ps(out + i, m, _mm512_mul_ps(sg, _mm512_maskz_loadu_ps(m, up + i)));
    }
}

SIMD_END
#endif /* OPS_X86 */

/* -------------------------------------------------------------- dispatch */

static OpsKernels KERNELS[SIMD_AVX512 + 1];
static SimdLevel BEST;
static pthread_once_t ONCE = PTHREAD_ONCE_INIT;

static void ops_build(void) {
    for (int l = SIMD_SCALAR; l <= SIMD_AVX512; l++)
        KERNELS[l] = (OpsKernels){.level = SIMD_SCALAR,
                                  .dot = dot_scalar,
                                  .axpy = axpy_scalar,
                                  .attn = attn_scalar,
                                  .attn_f16 = attn16_scalar,
                                  .attn_q8 = attn_q8_scalar,
                                  .attn_rows = attn_rows_scalar};
    BEST = cpu_simd_level();
#if OPS_X86
    /* Filled for every level; ops_kernels_at() caps a request at what the
     * hardware runs, BEST also honours CGPT_SIMD. */
    KERNELS[SIMD_AVX2] = (OpsKernels){.level = SIMD_AVX2,
                                      .dot = dot_avx2,
                                      .axpy = axpy_avx2,
                                      .attn = attn_avx2,
                                      .attn_f16 = attn16_avx2,
                                      .attn_q8 = attn_q8_avx2,
                                      .attn_rows = attn_rows_avx2,
                                      .attn_rows_ext = attn_rows_ext_avx2};
    KERNELS[SIMD_AVX512] = (OpsKernels){.level = SIMD_AVX512,
                                        .dot = dot_avx512,
                                        .axpy = axpy_avx512,
                                        .attn = attn_avx512,
                                        .attn_f16 = attn16_avx2,
                                        .attn_q8 = attn_q8_avx2,
                                        .attn_rows = attn_rows_avx512,
                                        .attn_rows_ext = attn_rows_ext_avx2};
#endif
}

static SimdLevel hw_level(void) {
    /* The hardware maximum, ignoring CGPT_SIMD (which only caps BEST). */
    __builtin_cpu_init();
#if OPS_X86
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("fma"))
        return SIMD_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return SIMD_AVX2;
#endif
    return SIMD_SCALAR;
}

const OpsKernels *ops_kernels(void) {
    pthread_once(&ONCE, ops_build);
    return &KERNELS[BEST];
}

const OpsKernels *ops_kernels_at(SimdLevel level) {
    pthread_once(&ONCE, ops_build);
    SimdLevel hw = hw_level();
    if (level > hw)
        level = hw;
    if (level < SIMD_SCALAR)
        level = SIMD_SCALAR;
    return &KERNELS[level];
}

void attn_f16_as_f32(SimdLevel level, float *out, const float *q, int G, int hd, const float *k,
                     const float *v, const int32_t *table, long block_stride, int bs, int n,
                     float scale, float *scores) {
#if OPS_X86
    if (ops_kernels_at(level)->level >= SIMD_AVX2) {
        attn_avx2(out, q, G, hd, k, v, table, block_stride, bs, n, scale, scores);
        return;
    }
#else
    (void)level;
#endif
    attn_generic(dot_scalar, axpy_scalar, out, q, G, hd, k, v, table, block_stride, bs, n, scale,
                 scores);
}

/* ------------------------------------------------------------ row kernels */

void rmsnorm_forward(float *out, const float *x, const float *w, int n, float eps) {
    float ss = ops_kernels()->dot(n, x, x);
    float scale = 1.0f / sqrtf(ss / (float)n + eps);
    for (int i = 0; i < n; i++)
        out[i] = x[i] * scale * w[i];
}

void layernorm_forward(float *out, const float *x, const float *w, const float *b, int n,
                       float eps) {
    float acc[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++)
            acc[j] += x[i + j];
    float sum = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (; i < n; i++)
        sum += x[i];
    float mean = sum / (float)n;
    float vacc[8] = {0};
    i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) {
            float d = x[i + j] - mean;
            vacc[j] += d * d;
        }
    float var =
        ((vacc[0] + vacc[4]) + (vacc[1] + vacc[5])) + ((vacc[2] + vacc[6]) + (vacc[3] + vacc[7]));
    for (; i < n; i++)
        var += (x[i] - mean) * (x[i] - mean);
    float scale = 1.0f / sqrtf(var / (float)n + eps);
    if (b) {
        for (i = 0; i < n; i++)
            out[i] = (x[i] - mean) * scale * w[i] + b[i];
    } else {
        for (i = 0; i < n; i++)
            out[i] = (x[i] - mean) * scale * w[i];
    }
}

void rope_cache(float *cs, int pos, int n_rot, float base, float freq_scale,
                const float *freq_factors) {
    ASSERT(n_rot % 2 == 0 && n_rot <= OPS_MAX_ROT);
    for (int i = 0; i < n_rot / 2; i++) {
        double theta = (double)pos * (double)freq_scale * pow((double)base, -2.0 * i / n_rot);
        if (freq_factors)
            theta /= (double)freq_factors[i];
        cs[2 * i] = (float)cos(theta);
        cs[2 * i + 1] = (float)sin(theta);
    }
}

/* ggml_rope_yarn_corr_dim: the pair index whose wavelength fits
 * n_ctx_orig / beta times (float, as ggml). */
static float yarn_corr_dim(int n_rot, int n_ctx_orig, float beta, float base) {
    return (float)n_rot * logf((float)n_ctx_orig / (beta * 2.0f * (float)M_PI)) /
           (2.0f * logf(base));
}

void rope_yarn_corr_dims(int n_rot, int n_ctx_orig, float base, float beta_fast, float beta_slow,
                         float dims[2]) {
    float lo = floorf(yarn_corr_dim(n_rot, n_ctx_orig, beta_fast, base));
    float hi = ceilf(yarn_corr_dim(n_rot, n_ctx_orig, beta_slow, base));
    dims[0] = lo > 0.0f ? lo : 0.0f;
    dims[1] = hi < (float)(n_rot - 1) ? hi : (float)(n_rot - 1);
}

void rope_cache_yarn(float *cs, int pos, int n_rot, float base, float freq_scale,
                     const float corr[2], float mscale) {
    ASSERT(n_rot % 2 == 0 && n_rot <= OPS_MAX_ROT);
    double span = corr[1] - corr[0] > 0.001f ? (double)(corr[1] - corr[0]) : 0.001;
    for (int i = 0; i < n_rot / 2; i++) {
        double extrap = (double)pos * pow((double)base, -2.0 * i / n_rot);
        double y = (i - (double)corr[0]) / span;
        double mix = 1.0 - (y < 0.0 ? 0.0 : y > 1.0 ? 1.0 : y); /* ramp: extrapolate fast pairs */
        double theta = (double)freq_scale * extrap * (1.0 - mix) + extrap * mix;
        cs[2 * i] = (float)(cos(theta) * mscale);
        cs[2 * i + 1] = (float)(sin(theta) * mscale);
    }
}

void rope_forward(float *x, const float *cs, int n_heads, int head_dim, int n_rot, RopeType type) {
    if (type == ROPE_NONE)
        return;
    int half = n_rot / 2;
    for (int h = 0; h < n_heads; h++) {
        float *v = x + (size_t)h * head_dim;
        if (type == ROPE_NORM) {
            for (int i = 0; i < half; i++) {
                float c = cs[2 * i], s = cs[2 * i + 1];
                float a = v[2 * i], b = v[2 * i + 1];
                v[2 * i] = a * c - b * s;
                v[2 * i + 1] = a * s + b * c;
            }
        } else {
            for (int i = 0; i < half; i++) {
                float c = cs[2 * i], s = cs[2 * i + 1];
                float a = v[i], b = v[i + half];
                v[i] = a * c - b * s;
                v[i + half] = a * s + b * c;
            }
        }
    }
}

void softmax_forward(float *x, int n) {
    float mx = -INFINITY;
    for (int i = 0; i < n; i++)
        mx = x[i] > mx ? x[i] : mx;
    if (mx == -INFINITY) {
        for (int i = 0; i < n; i++)
            x[i] = 0.0f;
        return;
    }
    float sum = 0.0f;
    for (int i = 0; i < n; i++) {
        float e = expf(x[i] - mx);
        x[i] = e;
        sum += e;
    }
    float inv = 1.0f / sum;
    for (int i = 0; i < n; i++)
        x[i] *= inv;
}

void ops_exp(float *e, const float *x, int n) {
#if OPS_X86
    if (ops_kernels()->level == SIMD_AVX512) {
        exp_avx512(e, x, n);
        return;
    }
    if (ops_kernels()->level == SIMD_AVX2) {
        exp_avx2(e, x, n);
        return;
    }
#endif
    for (int i = 0; i < n; i++)
        e[i] = expf(x[i]);
}

void softcap_forward(float *x, int n, float cap) {
#if OPS_X86
    if (ops_kernels()->level >= SIMD_AVX2) {
        softcap_avx2(x, n, cap);
        return;
    }
#endif
    for (int i = 0; i < n; i++)
        x[i] = cap * tanhf(x[i] / cap);
}

void swiglu_forward(float *out, const float *gate, const float *up, int n) {
#if OPS_X86
    if (ops_kernels()->level == SIMD_AVX512) {
        swiglu_avx512(out, gate, up, n);
        return;
    }
    if (ops_kernels()->level == SIMD_AVX2) {
        swiglu_avx2(out, gate, up, n);
        return;
    }
#endif
    for (int i = 0; i < n; i++) {
        float g = gate[i];
        out[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

#define GELU_COEF_A 0.044715f
#define SQRT_2_OVER_PI 0.79788456080286535587989211986876f

void gelu_forward(float *out, const float *x, int n) {
    for (int i = 0; i < n; i++) {
        float v = x[i];
        out[i] = 0.5f * v * (1.0f + tanhf(SQRT_2_OVER_PI * v * (1.0f + GELU_COEF_A * v * v)));
    }
}

void add_forward(float *out, const float *a, const float *b, int n) {
    for (int i = 0; i < n; i++)
        out[i] = a[i] + b[i];
}

/* ---------------------------------------------------------- naive twins */

float dot_ref(int n, const float *a, const float *b) {
    double s = 0;
    for (int i = 0; i < n; i++)
        s += (double)a[i] * (double)b[i];
    return (float)s;
}

void attn_gqa_ref(float *out, const float *q, int G, int hd, const float *k, const float *v,
                  const int32_t *table, long block_stride, int bs, int n, float scale,
                  float *scores) {
    for (int g = 0; g < G; g++) {
        const float *qg = q + (size_t)g * hd;
        float *sc = scores + (size_t)g * n;
        double mx = -INFINITY, z = 0;
        for (int t = 0; t < n; t++) {
            const float *kr = kv_row(k, table, block_stride, bs, hd, t);
            double d = 0;
            for (int i = 0; i < hd; i++)
                d += (double)qg[i] * kr[i];
            sc[t] = (float)(d * scale);
            mx = sc[t] > mx ? sc[t] : mx;
        }
        for (int t = 0; t < n; t++)
            z += exp((double)sc[t] - mx);
        for (int i = 0; i < hd; i++) {
            double acc = 0;
            for (int t = 0; t < n; t++)
                acc += exp((double)sc[t] - mx) / z * kv_row(v, table, block_stride, bs, hd, t)[i];
            out[(size_t)g * hd + i] = (float)acc;
        }
    }
}

void rmsnorm_ref(float *out, const float *x, const float *w, int n, float eps) {
    double ss = 0;
    for (int i = 0; i < n; i++)
        ss += (double)x[i] * x[i];
    double scale = 1.0 / sqrt(ss / n + (double)eps);
    for (int i = 0; i < n; i++)
        out[i] = (float)(x[i] * scale * w[i]);
}

void layernorm_ref(float *out, const float *x, const float *w, const float *b, int n, float eps) {
    double mean = 0, var = 0;
    for (int i = 0; i < n; i++)
        mean += x[i];
    mean /= n;
    for (int i = 0; i < n; i++)
        var += (x[i] - mean) * (x[i] - mean);
    var /= n;
    double scale = 1.0 / sqrt(var + (double)eps);
    for (int i = 0; i < n; i++)
        out[i] = (float)((x[i] - mean) * scale * w[i] + (b ? b[i] : 0.0));
}

void rope_ref(float *x, int pos, int n_heads, int head_dim, int n_rot, float base, float freq_scale,
              const float *freq_factors, RopeType type) {
    if (type == ROPE_NONE)
        return;
    int half = n_rot / 2;
    for (int h = 0; h < n_heads; h++) {
        float *v = x + (size_t)h * head_dim;
        for (int i = 0; i < half; i++) {
            double theta = pos * (double)freq_scale * pow((double)base, -2.0 * i / n_rot);
            if (freq_factors)
                theta /= freq_factors[i];
            double c = cos(theta), s = sin(theta);
            int i0 = type == ROPE_NORM ? 2 * i : i;
            int i1 = type == ROPE_NORM ? 2 * i + 1 : i + half;
            double a = v[i0], b = v[i1];
            v[i0] = (float)(a * c - b * s);
            v[i1] = (float)(a * s + b * c);
        }
    }
}

void softmax_ref(float *x, int n) {
    double mx = -INFINITY;
    for (int i = 0; i < n; i++)
        if (x[i] > mx)
            mx = x[i];
    if (mx == -INFINITY) {
        for (int i = 0; i < n; i++)
            x[i] = 0.0f;
        return;
    }
    double sum = 0;
    for (int i = 0; i < n; i++)
        sum += exp(x[i] - mx);
    for (int i = 0; i < n; i++)
        x[i] = (float)(exp(x[i] - mx) / sum);
}

void swiglu_ref(float *out, const float *gate, const float *up, int n) {
    for (int i = 0; i < n; i++) {
        double g = gate[i];
        out[i] = (float)(g / (1.0 + exp(-g)) * up[i]);
    }
}

void gelu_ref(float *out, const float *x, int n) {
    for (int i = 0; i < n; i++) {
        double v = x[i];
        out[i] = (float)(0.5 * v * (1.0 + tanh(sqrt(2.0 / M_PI) * (v + 0.044715 * v * v * v))));
    }
}

void add_ref(float *out, const float *a, const float *b, int n) {
    for (int i = 0; i < n; i++)
        out[i] = (float)((double)a[i] + (double)b[i]);
}
