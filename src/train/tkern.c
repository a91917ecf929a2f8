/* tkern.c - compiles tkern_impl.h once for double and once per SIMD level
 * for float (see tkern.h), plus the type-free helpers (layout, scratch
 * sizes, phase timing).
 *
 * Each instantiation is built at -O3 (a GCC optimize pragma inside the
 * region) so the vectoriser takes loops of unknown length; the SIMD levels
 * differ only in the target the same C is compiled for and in TK_FMA
 * being a fused multiply-add there. No fast-math anywhere: the reductions
 * in tkern_impl.h are written with explicit lanes instead. */
#include "train/tkern.h"

#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/mem.h"
#include "core/perf.h"
#include "core/simd.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

static TKTiming tk_timing;

void tk_timing_reset(void) { memset(&tk_timing, 0, sizeof tk_timing); }
TKTiming tk_timing_get(void) { return tk_timing; }

void tk_layout(TKLayout *lo, const TConfig *cfg) {
    size_t V = (size_t)cfg->n_vocab, C = (size_t)cfg->n_embd, HS = (size_t)cfg->head_dim;
    size_t QD = (size_t)cfg->n_heads * HS, KD = (size_t)cfg->n_kv_heads * HS;
    size_t F = (size_t)cfg->n_ff;
    memset(lo, 0, sizeof *lo);
    lo->wte = 0;
    lo->layer0 = V * C;
    size_t o = 0;
    lo->attn_norm = o;
    o += C;
    lo->wqkv = o;
    o += (QD + 2 * KD) * C;
    lo->wo = o;
    o += C * QD;
    lo->ffn_norm = o;
    o += C;
    lo->wgu = o;
    o += 2 * F * C;
    lo->wd = o;
    o += C * F;
    lo->layer_size = o;
    lo->out_norm = lo->layer0 + (size_t)cfg->n_layers * o;
    lo->n_params = lo->out_norm + C;
}

/* K or V transposed (HS, Tp), Tp = T rounded up to 16, then a (T, T)
 * block of score gradients (the AVX-512 path) or one row of them. */
size_t tk_attention_scratch(int T, int HS) {
    size_t Tp = ((size_t)T + 15) & ~(size_t)15;
    size_t n = (size_t)HS * Tp + (size_t)T * T;
    return (n + 15) & ~(size_t)15; /* keep each thread's slice on its own cache lines */
}

/* exp for float: Cephes' expf polynomial after rounding x/ln2 to an integer
 * k with the 1.5*2^23 trick, scaled by 2^k through the exponent bits. Pure
 * arithmetic and bit moves, so loops over it vectorise. Inputs are clamped
 * to [-86, 88] (results below 2^-124 do not matter here); NaN stays NaN. */
#define TK_EXPF_BODY                                                                               \
    float c = x < -86.0f ? -86.0f : x;                                                             \
    c = c > 88.0f ? 88.0f : c;                                                                     \
    float kf = (c * 1.44269504088896341f + 12582912.0f) - 12582912.0f;                             \
    float r = c - kf * 0.693359375f;                                                               \
    r = r + kf * 2.12194440e-4f;                                                                   \
    float p = 1.9875691500e-4f;                                                                    \
    p = p * r + 1.3981999507e-3f;                                                                  \
    p = p * r + 8.3334519073e-3f;                                                                  \
    p = p * r + 4.1665795894e-2f;                                                                  \
    p = p * r + 1.6666665459e-1f;                                                                  \
    p = p * r + 5.0000001201e-1f;                                                                  \
    p = p * (r * r) + r + 1.0f;                                                                    \
    int32_t bits;                                                                                  \
    memcpy(&bits, &p, sizeof bits);                                                                \
    bits += (int32_t)kf * (1 << 23);                                                               \
    memcpy(&p, &bits, sizeof p);                                                                   \
    return x != x ? x : p;

/* Vectorise each instantiation (gcc; clang vectorises at -O2 already). */
#if defined(__GNUC__) && !defined(__clang__)
#define TK_OPT_PUSH _Pragma("GCC push_options") _Pragma("GCC optimize(\"O3\")")
#define TK_OPT_O3 _Pragma("GCC optimize(\"O3\")")
#define TK_OPT_POP _Pragma("GCC pop_options")
#else
#define TK_OPT_PUSH
#define TK_OPT_O3
#define TK_OPT_POP
#endif

/* ------------------------------------------------------------------- double */
TK_OPT_PUSH
#define R double
#define RS(name) name##_d
#define TK_OPS_TYPE TKOpsD
#define TK_OPS_LABEL "double"
#define TK_FMA(a, b, c) ((a) * (b) + (c))
#define TK_EXP exp
#define TK_SQRT sqrt
#define TK_GEMM cblas_dgemm
#define TK_NET_TYPE TKNetD
#define TK_PUB(name) name##_d
#include "train/tkern_impl.h"
#undef R
#undef RS
#undef TK_OPS_TYPE
#undef TK_OPS_LABEL
#undef TK_FMA
#undef TK_EXP
#undef TK_SQRT
#undef TK_GEMM
#undef TK_NET_TYPE
#undef TK_PUB
TK_OPT_POP

const TKOpsD *tk_ops_d(SimdLevel level) {
    (void)level;
    return &tk_ops_table_d;
}

/* ------------------------------------------------------------- float scalar */
TK_OPT_PUSH
static inline float tk_expf_fs(float x) { TK_EXPF_BODY }
#define R float
#define RS(name) name##_fs
#define TK_OPS_TYPE TKOpsF
#define TK_OPS_LABEL "float-scalar"
#define TK_FMA(a, b, c) ((a) * (b) + (c))
#define TK_EXP tk_expf_fs
#define TK_SQRT sqrtf
#define TK_GEMM cblas_sgemm
#define TK_NET_TYPE TKNetF
#define TK_PUB(name) name##_f
#include "train/tkern_impl.h"
#undef RS
#undef TK_OPS_LABEL
#undef TK_FMA
#undef TK_EXP
#undef TK_NET_TYPE
#undef TK_PUB
TK_OPT_POP

#if defined(__x86_64__)
/* --------------------------------------------------------------- float AVX2 */
SIMD_BEGIN_AVX2
TK_OPT_O3
static inline float tk_expf_f2(float x) { TK_EXPF_BODY }
#define RS(name) name##_f2
#define TK_OPS_LABEL "float-avx2"
#define TK_FMA(a, b, c) __builtin_fmaf((a), (b), (c))
#define TK_EXP tk_expf_f2
#include "train/tkern_impl.h"
#undef RS
#undef TK_OPS_LABEL
#undef TK_FMA
#undef TK_EXP
SIMD_END

/* ------------------------------------------------------------- float AVX-512 */
SIMD_BEGIN_AVX512
TK_OPT_O3
static inline float tk_expf_f5(float x) { TK_EXPF_BODY }
static void attention_forward_x5(TPool *tp, float *y, float *att, const float *qkv,
                                 float *scratch, int B, int T, int NH, int NKV, int HS);
static void attention_backward_x5(TPool *tp, float *dqkv, const float *dy, const float *att,
                                  const float *qkv, float *scratch, int B, int T, int NH, int NKV,
                                  int HS);
#define RS(name) name##_f5
#define TK_OPS_LABEL "float-avx512"
#define TK_FMA(a, b, c) __builtin_fmaf((a), (b), (c))
#define TK_EXP tk_expf_f5
#define TK_ATTENTION_FORWARD attention_forward_x5
#define TK_ATTENTION_BACKWARD attention_backward_x5
#include "train/tkern_impl.h"
/* Attention on AVX-512: every product is C (+)= A B over a causal range,
 * computed by one register-blocked kernel - 8 rows of C by 32 columns in
 * 16 accumulators, B rows loaded as vectors (masked at the edges), A
 * broadcast through two strides (so A may be read transposed). The causal
 * structure limits the ranges per 8-row block:
 *   TK_MK_NCAUSAL: columns n < m0 + 8      (scores: key j <= query t)
 *   TK_MK_KLOWER:  k < m0 + 8              (A = P or dS, zero above the diagonal)
 *   TK_MK_KUPPER:  k >= m0                 (A = P^T or dS^T, zero below it)
 * Elements a block computes beyond the diagonal are garbage that softmax
 * (forward) and its backward overwrite with zeros; the ranges only ever
 * read A where it is zero past the diagonal. */
enum { TK_MK_FULL, TK_MK_NCAUSAL, TK_MK_KLOWER, TK_MK_KUPPER };

static inline __mmask16 tk_mask16(int n) {
    return n >= 16 ? (__mmask16)0xFFFF : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1);
}

static inline __attribute__((always_inline)) void
tk_mk_block(int rows, const float *A, long sam, long sak, const float *B, long ldb, float *C, long ldc,
            int ncols, int klo, int khi, bool accumulate) {
    __mmask16 m0 = tk_mask16(ncols), m1 = tk_mask16(ncols - 16);
    __m512 acc[8][2];
    for (int r = 0; r < rows; r++)
        acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    for (int k = klo; k < khi; k++) {
        const float *b = B + (long)k * ldb;
        __m512 b0 = _mm512_maskz_loadu_ps(m0, b), b1 = _mm512_maskz_loadu_ps(m1, b + 16);
        const float *a = A + (long)k * sak;
        for (int r = 0; r < rows; r++) {
            __m512 av = _mm512_set1_ps(a[r * sam]);
            acc[r][0] = _mm512_fmadd_ps(av, b0, acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(av, b1, acc[r][1]);
        }
    }
    for (int r = 0; r < rows; r++) {
        float *c = C + r * ldc;
        if (accumulate) {
            acc[r][0] = _mm512_add_ps(acc[r][0], _mm512_maskz_loadu_ps(m0, c));
            acc[r][1] = _mm512_add_ps(acc[r][1], _mm512_maskz_loadu_ps(m1, c + 16));
        }
        _mm512_mask_storeu_ps(c, m0, acc[r][0]);
        _mm512_mask_storeu_ps(c + 16, m1, acc[r][1]);
    }
}

/* C (M, N) (+)= A (M, K) B (K, N) over the causal ranges of 'mode'. */
static void tk_mk_gemm(int M, int N, int K, const float *A, long sam, long sak, const float *B,
                       long ldb, float *C, long ldc, int mode, bool accumulate) {
    for (int m0 = 0; m0 < M;) {
        int rows = M - m0 >= 8 ? 8 : 1;
        int klo = 0, khi = K, nhi = N;
        if (mode == TK_MK_NCAUSAL)
            nhi = m0 + rows < N ? m0 + rows : N;
        else if (mode == TK_MK_KLOWER)
            khi = m0 + rows < K ? m0 + rows : K;
        else if (mode == TK_MK_KUPPER)
            klo = m0;
        const float *a = A + (long)m0 * sam;
        float *c = C + (long)m0 * ldc;
        for (int n0 = 0; n0 < nhi; n0 += 32) {
            int nc = nhi - n0 < 32 ? nhi - n0 : 32;
            if (rows == 8)
                tk_mk_block(8, a, sam, sak, B + n0, ldb, c + n0, ldc, nc, klo, khi, accumulate);
            else
                tk_mk_block(1, a, sam, sak, B + n0, ldb, c + n0, ldc, nc, klo, khi, accumulate);
        }
        m0 += rows;
    }
}

/* dst (HS, Tp) = src rows (T, HS) at stride ld, transposed. */
static void tk_transpose_x5(float *dst, int Tp, const float *src, long ld, int T, int HS) {
    for (int j = 0; j < T; j++)
        for (int d = 0; d < HS; d++)
            dst[(size_t)d * Tp + j] = src[(size_t)j * ld + d];
}

static void attn_fwd_task_x5(void *vctx, int ith, int nth) {
    AttnCtx_f5 *a = vctx;
    int T = a->T, NH = a->NH, HS = a->HS, QD = NH * HS, KD = a->NKV * HS, W = QD + 2 * KD;
    int G = NH / a->NKV, Tp = (T + 15) & ~15;
    float scale = 1.0f / sqrtf((float)HS);
    float *kt = a->scratch + (size_t)ith * tk_attention_scratch(T, HS);
    long lo, hi;
    tpool_range((long)a->B * NH, ith, nth, &lo, &hi);
    for (long it = lo; it < hi; it++) {
        int b = (int)(it / NH), h = (int)(it % NH), kvh = h / G;
        const float *base = a->qkv + (size_t)b * T * W;
        float *att = a->att + ((size_t)b * NH + h) * T * T;
        tk_transpose_x5(kt, Tp, base + QD + (size_t)kvh * HS, W, T, HS);
        /* scores q . k into att (unscaled), then softmax row by row */
        tk_mk_gemm(T, T, HS, base + (size_t)h * HS, W, 1, kt, Tp, att, T, TK_MK_NCAUSAL, false);
        for (int t = 0; t < T; t++) {
            float *s = att + (size_t)t * T;
            int n = t + 1;
            for (int j = 0; j < n; j++)
                s[j] *= scale;
            float mx = max_row_f5(s, n);
            float inv = 1.0f / exp_sum_row_f5(s, n, mx);
            for (int j = 0; j < n; j++)
                s[j] *= inv;
            for (int j = n; j < T; j++)
                s[j] = 0;
        }
        tk_mk_gemm(T, HS, T, att, T, 1, base + QD + KD + (size_t)kvh * HS, W,
                   a->y + (size_t)b * T * QD + (size_t)h * HS, QD, TK_MK_KLOWER, false);
    }
}

static void attention_forward_x5(TPool *tp, float *y, float *att, const float *qkv,
                                 float *scratch, int B, int T, int NH, int NKV, int HS) {
    AttnCtx_f5 a = {.y = y, .att = att, .qkv = qkv, .scratch = scratch, .B = B, .T = T, .NH = NH,
                    .NKV = NKV, .HS = HS};
    tpool_run(tp, attn_fwd_task_x5, &a);
}

/* Task (b, kv head), its query heads in turn: dP = dY V^T, dS = P (dP -
 * rowsum(P dP)) / sqrt(HS), dQ += dS K, dK += dS^T Q, dV += P^T dY. */
static void attn_bwd_task_x5(void *vctx, int ith, int nth) {
    AttnCtx_f5 *a = vctx;
    int T = a->T, NH = a->NH, HS = a->HS, QD = NH * HS, KD = a->NKV * HS, W = QD + 2 * KD;
    int G = NH / a->NKV, Tp = (T + 15) & ~15;
    float scale = 1.0f / sqrtf((float)HS);
    float *vt = a->scratch + (size_t)ith * tk_attention_scratch(T, HS);
    float *ds = vt + (size_t)HS * Tp; /* (T, T) */
    long lo, hi;
    tpool_range((long)a->B * a->NKV, ith, nth, &lo, &hi);
    for (long it = lo; it < hi; it++) {
        int b = (int)(it / a->NKV), kvh = (int)(it % a->NKV);
        const float *base = a->qkv + (size_t)b * T * W;
        float *dbase = a->dqkv + (size_t)b * T * W;
        const float *k = base + QD + (size_t)kvh * HS;
        float *dk = dbase + QD + (size_t)kvh * HS, *dv = dk + KD;
        tk_transpose_x5(vt, Tp, base + QD + KD + (size_t)kvh * HS, W, T, HS);
        for (int h = kvh * G; h < (kvh + 1) * G; h++) {
            const float *p = a->att_in + ((size_t)b * NH + h) * T * T;
            const float *dy = a->dy + (size_t)b * T * QD + (size_t)h * HS;
            tk_mk_gemm(T, T, HS, dy, QD, 1, vt, Tp, ds, T, TK_MK_NCAUSAL, false);
            for (int t = 0; t < T; t++) {
                const float *pr = p + (size_t)t * T;
                float *d = ds + (size_t)t * T;
                int n = t + 1;
                float pdp = dot_row_f5(pr, d, n);
                for (int j = 0; j < n; j++)
                    d[j] = pr[j] * (d[j] - pdp) * scale;
                for (int j = n; j < T; j++)
                    d[j] = 0;
            }
            tk_mk_gemm(T, HS, T, ds, T, 1, k, W, dbase + (size_t)h * HS, W, TK_MK_KLOWER, true);
            tk_mk_gemm(T, HS, T, ds, 1, T, base + (size_t)h * HS, W, dk, W, TK_MK_KUPPER, true);
            tk_mk_gemm(T, HS, T, p, 1, T, dy, QD, dv, W, TK_MK_KUPPER, true);
        }
    }
}

static void attention_backward_x5(TPool *tp, float *dqkv, const float *dy, const float *att,
                                  const float *qkv, float *scratch, int B, int T, int NH, int NKV,
                                  int HS) {
    AttnCtx_f5 a = {.dqkv = dqkv, .dy = dy, .att_in = att, .qkv = qkv, .scratch = scratch, .B = B,
                    .T = T, .NH = NH, .NKV = NKV, .HS = HS};
    tpool_run(tp, attn_bwd_task_x5, &a);
}
#undef RS
#undef TK_OPS_LABEL
#undef TK_FMA
#undef TK_EXP
#undef TK_ATTENTION_FORWARD
#undef TK_ATTENTION_BACKWARD
SIMD_END
#endif

#undef R
#undef TK_OPS_TYPE
#undef TK_SQRT
#undef TK_GEMM

const TKOpsF *tk_ops_f(SimdLevel level) {
    SimdLevel hw = cpu_simd_level();
    if (level > hw)
        level = hw;
#if defined(__x86_64__)
    if (level == SIMD_AVX512)
        return &tk_ops_table_f5;
    if (level == SIMD_AVX2)
        return &tk_ops_table_f2;
#endif
    return &tk_ops_table_fs;
}
