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
#include <time.h>

#include "core/err.h"
#include "core/mem.h"
#include "core/perf.h"
#include "core/simd.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

static TKTiming tk_timing;
static bool tk_timing_cpu;

void tk_timing_reset(bool thread_cpu) {
    memset(&tk_timing, 0, sizeof tk_timing);
    tk_timing_cpu = thread_cpu;
}

TKTiming tk_timing_get(void) { return tk_timing; }

static double tk_clock(void) {
    if (!tk_timing_cpu)
        return perf_now();
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

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

/* Blocking of the AVX-512 GEMM (below): an 8 x 32 register tile, B packed
 * in blocks of KC x NC, rows taken MC at a time. */
#ifndef TK_G_MR
#define TK_G_MR 8
#endif
#ifndef TK_G_NV
#define TK_G_NV 2
#endif
#define TK_G_NR (16 * TK_G_NV)
#ifndef TK_G_KC
#define TK_G_KC 256
#endif
#ifndef TK_G_MC
#define TK_G_MC 128
#endif
#ifndef TK_G_NC
#define TK_G_NC 512
#endif

size_t tk_matmul_scratch(void) { return (size_t)TK_G_KC * TK_G_NC; }

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
static void matmul_forward_x5(TPool *tp, float *ws, float *out, const float *inp, const float *w,
                              long N, int n_in, int n_out, bool accumulate);
static void matmul_backward_x5(TPool *tp, float *ws, float *dinp, float *dw, const float *dout,
                               const float *inp, const float *w, long N, int n_in, int n_out,
                               float alpha);
#define RS(name) name##_f5
#define TK_OPS_LABEL "float-avx512"
#define TK_FMA(a, b, c) __builtin_fmaf((a), (b), (c))
#define TK_EXP tk_expf_f5
#define TK_ATTENTION_FORWARD attention_forward_x5
#define TK_ATTENTION_BACKWARD attention_backward_x5
#define TK_MATMUL_FORWARD matmul_forward_x5
#define TK_MATMUL_BACKWARD matmul_backward_x5
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
/* GEMM on AVX-512: C (M, N) = alpha op(A) op(B) + beta C with
 * op(A)(i, k) = A[i*sam + k*sak] and op(B)(k, n) = B[k*sbk + n*sbn], so
 * either operand may be read transposed. Goto/BLIS blocking without
 * packing A: B is packed per (KC x NC) block into 32-column panels that
 * stay in L1 while an 8 x 32 register tile (16 accumulators) walks down
 * the rows, A broadcast straight from its rows (8 streams). Threads split
 * the column panels (the rows when there are fewer panels than threads);
 * every element is summed over k in the same order whatever the split, so
 * results do not depend on the thread count. */

static inline __attribute__((always_inline)) void
tk_g_kernel(int rows, int kc, const float *A, long sam, long sak, const float *Bp, float *C,
            long ldc, int ncols, float alpha, float beta, bool first) {
    __m512 acc[TK_G_MR][TK_G_NV];
#pragma GCC unroll 16
    for (int r = 0; r < rows; r++)
#pragma GCC unroll 2
        for (int v = 0; v < TK_G_NV; v++)
            acc[r][v] = _mm512_setzero_ps();
    for (int k = 0; k < kc; k++) {
        __m512 b[TK_G_NV];
#pragma GCC unroll 2
        for (int v = 0; v < TK_G_NV; v++)
            b[v] = _mm512_load_ps(Bp + k * TK_G_NR + 16 * v);
        const float *a = A + (long)k * sak;
#pragma GCC unroll 16
        for (int r = 0; r < rows; r++) {
            __m512 av = _mm512_set1_ps(a[r * sam]);
#pragma GCC unroll 2
            for (int v = 0; v < TK_G_NV; v++)
                acc[r][v] = _mm512_fmadd_ps(av, b[v], acc[r][v]);
        }
    }
    __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(first ? beta : 1.0f);
    bool read = !first || beta != 0.0f; /* beta = 0: C is not read (may be garbage) */
#pragma GCC unroll 16
    for (int r = 0; r < rows; r++) {
        float *c = C + r * ldc;
#pragma GCC unroll 2
        for (int v = 0; v < TK_G_NV; v++) {
            __mmask16 m = tk_mask16(ncols - 16 * v);
            __m512 x = _mm512_mul_ps(acc[r][v], va);
            if (read)
                x = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m, c + 16 * v), x);
            _mm512_mask_storeu_ps(c + 16 * v, m, x);
        }
    }
}

/* op(B) rows [0, kc), columns [0, nc) into 32-column panels, zero padded. */
static void tk_g_pack_b(float *Bp, const float *B, long sbk, long sbn, int kc, int nc) {
    for (int j0 = 0; j0 < nc; j0 += TK_G_NR) {
        int w = nc - j0 < TK_G_NR ? nc - j0 : TK_G_NR;
        float *dst = Bp + (long)(j0 / TK_G_NR) * kc * TK_G_NR;
        if (sbn == 1) {
            for (int k = 0; k < kc; k++) {
                const float *s = B + (long)k * sbk + j0;
                for (int v = 0; v < TK_G_NV; v++)
                    _mm512_store_ps(dst + k * TK_G_NR + 16 * v,
                                    _mm512_maskz_loadu_ps(tk_mask16(w - 16 * v), s + 16 * v));
            }
        } else {
            for (int j = 0; j < TK_G_NR; j++) {
                const float *s = B + (long)(j0 + j) * sbn;
                for (int k = 0; k < kc; k++)
                    dst[k * TK_G_NR + j] = j < w ? s[(long)k * sbk] : 0.0f;
            }
        }
    }
}

typedef struct {
    int M, N, K;
    float alpha, beta;
    const float *A, *B;
    long sam, sak, sbk, sbn;
    float *C;
    long ldc;
    float *ws;
} TkGemm;

/* Rows [0, M) x columns [n_lo, n_hi) of the product. */
static void tk_g_range(const TkGemm *g, const float *A, float *C, int M, int n_lo, int n_hi,
                       float *Bp) {
    for (int jc = n_lo; jc < n_hi; jc += TK_G_NC) {
        int nc = n_hi - jc < TK_G_NC ? n_hi - jc : TK_G_NC;
        for (int pc = 0; pc < g->K; pc += TK_G_KC) {
            int kc = g->K - pc < TK_G_KC ? g->K - pc : TK_G_KC;
            bool first = pc == 0;
            tk_g_pack_b(Bp, g->B + (long)pc * g->sbk + (long)jc * g->sbn, g->sbk, g->sbn, kc, nc);
            for (int ic = 0; ic < M; ic += TK_G_MC) {
                int ie = M - ic < TK_G_MC ? M : ic + TK_G_MC;
                for (int jr = 0; jr < nc; jr += TK_G_NR) {
                    const float *bp = Bp + (long)(jr / TK_G_NR) * kc * TK_G_NR;
                    int ncols = nc - jr < TK_G_NR ? nc - jr : TK_G_NR;
                    for (int ir = ic; ir < ie;) {
                        const float *a = A + (long)ir * g->sam + (long)pc * g->sak;
                        float *c = C + (long)ir * g->ldc + jc + jr;
                        if (TK_G_MR > 8 && ie - ir >= TK_G_MR) {
                            tk_g_kernel(TK_G_MR, kc, a, g->sam, g->sak, bp, c, g->ldc, ncols,
                                        g->alpha, g->beta, first);
                            ir += TK_G_MR;
                        } else if (ie - ir >= 8) {
                            tk_g_kernel(8, kc, a, g->sam, g->sak, bp, c, g->ldc, ncols, g->alpha,
                                        g->beta, first);
                            ir += 8;
                        } else if (ie - ir >= 4) {
                            tk_g_kernel(4, kc, a, g->sam, g->sak, bp, c, g->ldc, ncols, g->alpha,
                                        g->beta, first);
                            ir += 4;
                        } else {
                            tk_g_kernel(1, kc, a, g->sam, g->sak, bp, c, g->ldc, ncols, g->alpha,
                                        g->beta, first);
                            ir += 1;
                        }
                    }
                }
            }
        }
    }
}

static void tk_g_task(void *vctx, int ith, int nth) {
    const TkGemm *g = vctx;
    long panels = (g->N + TK_G_NR - 1) / TK_G_NR, lo, hi;
    float *Bp = g->ws + (size_t)ith * tk_matmul_scratch();
    if (panels >= nth) {
        tpool_range(panels, ith, nth, &lo, &hi);
        int n_hi = hi * TK_G_NR < g->N ? (int)(hi * TK_G_NR) : g->N;
        if (lo * TK_G_NR < n_hi)
            tk_g_range(g, g->A, g->C, g->M, (int)(lo * TK_G_NR), n_hi, Bp);
    } else {
        tpool_range((g->M + TK_G_MR - 1) / TK_G_MR, ith, nth, &lo, &hi);
        int m_lo = (int)(lo * TK_G_MR), m_hi = hi * TK_G_MR < g->M ? (int)(hi * TK_G_MR) : g->M;
        if (m_lo < m_hi)
            tk_g_range(g, g->A + (long)m_lo * g->sam, g->C + (long)m_lo * g->ldc, m_hi - m_lo, 0,
                       g->N, Bp);
    }
}

static void matmul_forward_x5(TPool *tp, float *ws, float *out, const float *inp, const float *w,
                              long N, int n_in, int n_out, bool accumulate) {
    TkGemm g = {(int)N, n_out, n_in, 1.0f, accumulate ? 1.0f : 0.0f, inp, w, n_in, 1, 1, n_in,
                out, n_out, ws};
    tpool_run(tp, tk_g_task, &g);
}

static void matmul_backward_x5(TPool *tp, float *ws, float *dinp, float *dw, const float *dout,
                               const float *inp, const float *w, long N, int n_in, int n_out,
                               float alpha) {
    if (dinp) {
        TkGemm g = {(int)N, n_in, n_out, alpha, 1.0f, dout, w, n_out, 1, n_in, 1, dinp, n_in, ws};
        tpool_run(tp, tk_g_task, &g);
    }
    TkGemm g = {n_out, n_in, (int)N, alpha, 1.0f, dout, inp, 1, n_out, n_in, 1, dw, n_in, ws};
    tpool_run(tp, tk_g_task, &g);
}

#undef RS
#undef TK_OPS_LABEL
#undef TK_FMA
#undef TK_EXP
#undef TK_ATTENTION_FORWARD
#undef TK_ATTENTION_BACKWARD
#undef TK_MATMUL_FORWARD
#undef TK_MATMUL_BACKWARD
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
