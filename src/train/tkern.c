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

/* Attention works on query blocks of TK_ATT_QB rows: K and V transposed
 * (HS, Tp each, Tp = T rounded up to 16), then a probability block and a
 * score-gradient block (TK_ATT_QB, T each). */
#define TK_ATT_QB 64

size_t tk_attention_scratch(int T, int HS) {
    size_t Tp = ((size_t)T + 15) & ~(size_t)15;
    size_t n = 2 * (size_t)HS * Tp + 2 * (size_t)TK_ATT_QB * T;
    return (n + 15) & ~(size_t)15; /* keep each thread's slice on its own cache lines */
}

/* Blocking of the AVX-512 GEMM (below): a 12 x 32 register tile, B packed
 * in blocks of KC x NC, rows taken MC at a time. Measured on Zen 5 (thread
 * CPU time, the training shapes): 8 x 32 tiles 15% slower; KC 384, NC 1024
 * or MC 60/240 within noise. (-D overrides are for such experiments.) */
#ifndef TK_G_MR
#define TK_G_MR 12
#endif
#ifndef TK_G_NV
#define TK_G_NV 2
#endif
#define TK_G_NR (16 * TK_G_NV)
#ifndef TK_G_KC
#define TK_G_KC 256
#endif
#ifndef TK_G_MC
#define TK_G_MC 120
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
// clang-format off
#if defined(__GNUC__) && !defined(__clang__)
#define TK_OPT_PUSH _Pragma("GCC push_options") _Pragma("GCC optimize(\"O3\")")
#define TK_OPT_O3 _Pragma("GCC optimize(\"O3\")")
#define TK_OPT_POP _Pragma("GCC pop_options")
#else
#define TK_OPT_PUSH
#define TK_OPT_O3
#define TK_OPT_POP
#endif
// clang-format on

/* ------------------------------------------------------------------- double */
TK_OPT_PUSH
#define R double
#define RS(name) name##_d
#define TK_OPS_TYPE TKOpsD
#define TK_OPS_LABEL "double"
#define TK_FMA(a, b, c) ((a) * (b) + (c))
#define TK_EXP exp
#define TK_LOG log
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
#undef TK_LOG
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
static inline float tk_expf_fs(float x){TK_EXPF_BODY}
#define R float
#define RS(name) name##_fs
#define TK_OPS_TYPE TKOpsF
#define TK_OPS_LABEL "float-scalar"
#define TK_FMA(a, b, c) ((a) * (b) + (c))
#define TK_EXP tk_expf_fs
#define TK_LOG logf
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
    SIMD_BEGIN_AVX2 TK_OPT_O3 static inline float tk_expf_f2(float x){TK_EXPF_BODY}
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
    SIMD_BEGIN_AVX512 TK_OPT_O3 static inline float tk_expf_f5(float x) {
    TK_EXPF_BODY
}
static void attention_forward_x5(TPool *tp, float *y, float *lse, const float *qkv, float *scratch,
                                 int B, int T, int NH, int NKV, int HS);
static void attention_backward_x5(TPool *tp, float *dqkv, const float *dy, const float *lse,
                                  const float *qkv, float *scratch, int B, int T, int NH, int NKV,
                                  int HS);
static void matmul_forward_x5(TPool *tp, float *ws, float *out, const float *inp, const float *w,
                              long N, int n_in, int n_out, bool accumulate);
static void matmul_backward_x5(TPool *tp, float *ws, float *dinp, float *dw, const float *dout,
                               const float *inp, const float *w, long N, int n_in, int n_out,
                               float alpha, bool accumulate);
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
 * broadcast through two strides (so A may be read transposed). For a query
 * block starting at t0 (row m of the block is query t0 + m) the causal
 * structure limits the ranges per 8-row tile m0..m0+7, 'off' = t0:
 *   TK_MK_NCAUSAL: columns n < off + m0 + 8, rounded up to a 32-column
 *                  chunk (scores: key j <= query t)
 *   TK_MK_KLOWER:  k < off + m0 + 8     (A = P or dS: zero past the diagonal)
 *   TK_MK_KUPPER:  k >= m0 - off        (A = P^T or dS^T, rows are keys)
 * Scores a tile computes past the diagonal are garbage that the softmax
 * (and its backward) overwrite with zeros before any product reads them. */
enum { TK_MK_NCAUSAL, TK_MK_KLOWER, TK_MK_KUPPER };
#ifndef TK_MK_ROWS
#define TK_MK_ROWS 8 /* rows per register tile (2 accumulators each); 12 measured no better */
#endif

static inline __mmask16 tk_mask16(int n) {
    return n >= 16 ? (__mmask16)0xFFFF : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1);
}

static inline __attribute__((always_inline)) void tk_mk_block(int rows, const float *A, long sam,
                                                              long sak, const float *B, long ldb,
                                                              float *C, long ldc, int ncols,
                                                              int klo, int khi, bool accumulate) {
    __mmask16 m0 = tk_mask16(ncols), m1 = tk_mask16(ncols - 16);
    __m512 acc[TK_MK_ROWS][2];
#pragma GCC unroll 16
    for (int r = 0; r < rows; r++)
        acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    for (int k = klo; k < khi; k++) {
        const float *b = B + (long)k * ldb;
        __m512 b0 = _mm512_maskz_loadu_ps(m0, b), b1 = _mm512_maskz_loadu_ps(m1, b + 16);
        const float *a = A + (long)k * sak;
#pragma GCC unroll 16
        for (int r = 0; r < rows; r++) {
            __m512 av = _mm512_set1_ps(a[r * sam]);
            acc[r][0] = _mm512_fmadd_ps(av, b0, acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(av, b1, acc[r][1]);
        }
    }
    if (ncols == 32) { /* masked stores are slow on Zen 4/5: full ones where we can */
#pragma GCC unroll 16
        for (int r = 0; r < rows; r++) {
            float *c = C + r * ldc;
            if (accumulate) {
                acc[r][0] = _mm512_add_ps(acc[r][0], _mm512_loadu_ps(c));
                acc[r][1] = _mm512_add_ps(acc[r][1], _mm512_loadu_ps(c + 16));
            }
            _mm512_storeu_ps(c, acc[r][0]);
            _mm512_storeu_ps(c + 16, acc[r][1]);
        }
        return;
    }
#pragma GCC unroll 16
    for (int r = 0; r < rows; r++) {
        float *c = C + r * ldc;
        if (accumulate) {
            acc[r][0] = _mm512_add_ps(acc[r][0], _mm512_maskz_loadu_ps(m0, c));
            acc[r][1] = _mm512_add_ps(acc[r][1], _mm512_maskz_loadu_ps(m1, c + 16));
        }
        _mm512_mask_storeu_ps(c, m0, acc[r][0]);
        if (m1)
            _mm512_mask_storeu_ps(c + 16, m1, acc[r][1]);
    }
}

/* C (M, N) (+)= A (M, K) B (K, N) over the causal ranges of 'mode'. */
static void tk_mk_gemm(int M, int N, int K, const float *A, long sam, long sak, const float *B,
                       long ldb, float *C, long ldc, int mode, int off, bool accumulate) {
    for (int m0 = 0; m0 < M;) {
        int rows = M - m0 >= TK_MK_ROWS ? TK_MK_ROWS : M - m0 >= 4 ? 4 : 1;
        int klo = 0, khi = K, nhi = N;
        if (mode == TK_MK_NCAUSAL) {
            nhi = (off + m0 + rows + 31) / 32 * 32;
            nhi = nhi < N ? nhi : N;
        } else if (mode == TK_MK_KLOWER) {
            khi = off + m0 + rows < K ? off + m0 + rows : K;
        } else {
            klo = m0 - off > 0 ? m0 - off : 0;
        }
        const float *a = A + (long)m0 * sam;
        float *c = C + (long)m0 * ldc;
        for (int n0 = 0; n0 < nhi; n0 += 32) {
            int nc = nhi - n0 < 32 ? nhi - n0 : 32;
            if (rows == TK_MK_ROWS)
                tk_mk_block(TK_MK_ROWS, a, sam, sak, B + n0, ldb, c + n0, ldc, nc, klo, khi,
                            accumulate);
            else if (rows == 4)
                tk_mk_block(4, a, sam, sak, B + n0, ldb, c + n0, ldc, nc, klo, khi, accumulate);
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

/* Scores of queries t0..t1-1 (rows of 'blk', stride T) against keys
 * 0..t1-1, times 'scale'; row i is valid up to key t0 + i. */
static void tk_att_scores_x5(float *blk, const float *q, long ldq, const float *kt, int Tp, int T,
                             int t0, int t1, int HS, float scale) {
    tk_mk_gemm(t1 - t0, t1, HS, q + (long)t0 * ldq, ldq, 1, kt, Tp, blk, T, TK_MK_NCAUSAL, t0,
               false);
    for (int i = 0; i < t1 - t0; i++) {
        float *s = blk + (size_t)i * T;
        int n = t0 + i + 1;
        for (int j = 0; j < n; j++)
            s[j] *= scale;
    }
}

static void attn_fwd_task_x5(void *vctx, int ith, int nth) {
    AttnCtx_f5 *a = vctx;
    int T = a->T, NH = a->NH, HS = a->HS, QD = NH * HS, KD = a->NKV * HS, W = QD + 2 * KD;
    int G = NH / a->NKV, Tp = (T + 15) & ~15;
    float scale = 1.0f / sqrtf((float)HS);
    float *kt = a->scratch + (size_t)ith * tk_attention_scratch(T, HS);
    float *pb = kt + 2 * (size_t)HS * Tp; /* (TK_ATT_QB, T) */
    long lo, hi;
    tpool_range((long)a->B * NH, ith, nth, &lo, &hi);
    for (long it = lo; it < hi; it++) {
        int b = (int)(it / NH), h = (int)(it % NH), kvh = h / G;
        const float *base = a->qkv + (size_t)b * T * W;
        float *lse = a->lse + ((size_t)b * NH + h) * T;
        tk_transpose_x5(kt, Tp, base + QD + (size_t)kvh * HS, W, T, HS);
        for (int t0 = 0; t0 < T; t0 += TK_ATT_QB) {
            int t1 = T - t0 < TK_ATT_QB ? T : t0 + TK_ATT_QB;
            tk_att_scores_x5(pb, base + (size_t)h * HS, W, kt, Tp, T, t0, t1, HS, scale);
            for (int i = 0; i < t1 - t0; i++) {
                float *s = pb + (size_t)i * T;
                int n = t0 + i + 1;
                float mx = max_row_f5(s, n);
                float sum = exp_sum_row_f5(s, n, mx);
                lse[t0 + i] = mx + logf(sum);
                float inv = 1.0f / sum;
                for (int j = 0; j < n; j++)
                    s[j] *= inv;
                for (int j = n; j < t1; j++)
                    s[j] = 0;
            }
            tk_mk_gemm(t1 - t0, HS, t1, pb, T, 1, base + QD + KD + (size_t)kvh * HS, W,
                       a->y + ((size_t)b * T + t0) * QD + (size_t)h * HS, QD, TK_MK_KLOWER, t0,
                       false);
        }
    }
}

static void attention_forward_x5(TPool *tp, float *y, float *lse, const float *qkv, float *scratch,
                                 int B, int T, int NH, int NKV, int HS) {
    AttnCtx_f5 a = {.y = y,
                    .lse = lse,
                    .qkv = qkv,
                    .scratch = scratch,
                    .B = B,
                    .T = T,
                    .NH = NH,
                    .NKV = NKV,
                    .HS = HS};
    tpool_run(tp, attn_fwd_task_x5, &a);
}

/* Task (b, kv head), its query heads in turn, query blocks in turn:
 * P = exp(scores - lse) (recomputed), dP = dY V^T, dS = P (dP - rowsum(P
 * dP)) / sqrt(HS), dQ += dS K, dK += dS^T Q, dV += P^T dY. */
static void attn_bwd_task_x5(void *vctx, int ith, int nth) {
    AttnCtx_f5 *a = vctx;
    int T = a->T, NH = a->NH, HS = a->HS, QD = NH * HS, KD = a->NKV * HS, W = QD + 2 * KD;
    int G = NH / a->NKV, Tp = (T + 15) & ~15;
    float scale = 1.0f / sqrtf((float)HS);
    float *kt = a->scratch + (size_t)ith * tk_attention_scratch(T, HS);
    float *vt = kt + (size_t)HS * Tp;
    float *pb = vt + (size_t)HS * Tp, *ds = pb + (size_t)TK_ATT_QB * T;
    long lo, hi;
    tpool_range((long)a->B * a->NKV, ith, nth, &lo, &hi);
    for (long it = lo; it < hi; it++) {
        int b = (int)(it / a->NKV), kvh = (int)(it % a->NKV);
        const float *base = a->qkv + (size_t)b * T * W;
        float *dbase = a->dqkv + (size_t)b * T * W;
        const float *k = base + QD + (size_t)kvh * HS;
        float *dk = dbase + QD + (size_t)kvh * HS, *dv = dk + KD;
        tk_transpose_x5(kt, Tp, k, W, T, HS);
        tk_transpose_x5(vt, Tp, base + QD + KD + (size_t)kvh * HS, W, T, HS);
        for (int h = kvh * G; h < (kvh + 1) * G; h++) {
            const float *q = base + (size_t)h * HS;
            const float *dy = a->dy + (size_t)b * T * QD + (size_t)h * HS;
            const float *lse = a->lse_in + ((size_t)b * NH + h) * T;
            for (int t0 = 0; t0 < T; t0 += TK_ATT_QB) {
                int t1 = T - t0 < TK_ATT_QB ? T : t0 + TK_ATT_QB, mb = t1 - t0;
                tk_att_scores_x5(pb, q, W, kt, Tp, T, t0, t1, HS, scale);
                tk_mk_gemm(mb, t1, HS, dy + (size_t)t0 * QD, QD, 1, vt, Tp, ds, T, TK_MK_NCAUSAL,
                           t0, false);
                for (int i = 0; i < mb; i++) {
                    float *p = pb + (size_t)i * T, *d = ds + (size_t)i * T;
                    int n = t0 + i + 1;
                    float l = lse[t0 + i];
                    for (int j = 0; j < n; j++)
                        p[j] = tk_expf_f5(p[j] - l);
                    float pdp = dot_row_f5(p, d, n);
                    for (int j = 0; j < n; j++)
                        d[j] = p[j] * (d[j] - pdp) * scale;
                    for (int j = n; j < t1; j++)
                        p[j] = d[j] = 0;
                }
                tk_mk_gemm(mb, HS, t1, ds, T, 1, k, W, dbase + (size_t)t0 * W + (size_t)h * HS, W,
                           TK_MK_KLOWER, t0, true);
                tk_mk_gemm(t1, HS, mb, ds, 1, T, q + (size_t)t0 * W, W, dk, W, TK_MK_KUPPER, t0,
                           true);
                tk_mk_gemm(t1, HS, mb, pb, 1, T, dy + (size_t)t0 * QD, QD, dv, W, TK_MK_KUPPER, t0,
                           true);
            }
        }
    }
}

static void attention_backward_x5(TPool *tp, float *dqkv, const float *dy, const float *lse,
                                  const float *qkv, float *scratch, int B, int T, int NH, int NKV,
                                  int HS) {
    AttnCtx_f5 a = {.dqkv = dqkv,
                    .dy = dy,
                    .lse_in = lse,
                    .qkv = qkv,
                    .scratch = scratch,
                    .B = B,
                    .T = T,
                    .NH = NH,
                    .NKV = NKV,
                    .HS = HS};
    tpool_run(tp, attn_bwd_task_x5, &a);
}

/* GEMM on AVX-512: C (M, N) = alpha op(A) op(B) + beta C with
 * op(A)(i, k) = A[i*sam + k*sak] and op(B)(k, n) = B[k*sbk + n*sbn], so
 * either operand may be read transposed. Goto/BLIS blocking without
 * packing A: B is packed per (KC x NC) block into 32-column panels that
 * stay in L1 while a 12 x 32 register tile (24 accumulators) walks down
 * the rows, A broadcast straight from its rows (12 streams; 8-, 4- and
 * 1-row tiles take the last rows). Threads split
 * the column panels (the rows when there are fewer panels than threads);
 * every element is summed over k in the same order whatever the split, so
 * results do not depend on the thread count. */

static inline __attribute__((always_inline)) void tk_g_kernel(int rows, int kc, const float *A,
                                                              long sam, long sak, const float *Bp,
                                                              float *C, long ldc, int ncols,
                                                              float alpha, float beta, bool first) {
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
    /* out (N, n_out) = inp (N, n_in) . w^T, w read transposed */
    TkGemm g = {.M = (int)N,
                .N = n_out,
                .K = n_in,
                .alpha = 1.0f,
                .beta = accumulate ? 1.0f : 0.0f,
                .A = inp,
                .sam = n_in,
                .sak = 1,
                .B = w,
                .sbk = 1,
                .sbn = n_in,
                .C = out,
                .ldc = n_out,
                .ws = ws};
    tpool_run(tp, tk_g_task, &g);
}

static void matmul_backward_x5(TPool *tp, float *ws, float *dinp, float *dw, const float *dout,
                               const float *inp, const float *w, long N, int n_in, int n_out,
                               float alpha, bool accumulate) {
    if (dinp) { /* dinp (N, n_in) = dout (N, n_out) . w (n_out, n_in) */
        TkGemm g = {.M = (int)N,
                    .N = n_in,
                    .K = n_out,
                    .alpha = alpha,
                    .beta = accumulate ? 1.0f : 0.0f,
                    .A = dout,
                    .sam = n_out,
                    .sak = 1,
                    .B = w,
                    .sbk = n_in,
                    .sbn = 1,
                    .C = dinp,
                    .ldc = n_in,
                    .ws = ws};
        tpool_run(tp, tk_g_task, &g);
    }
    /* dw (n_out, n_in) += dout^T . inp, dout read transposed */
    TkGemm g = {.M = n_out,
                .N = n_in,
                .K = (int)N,
                .alpha = alpha,
                .beta = 1.0f,
                .A = dout,
                .sam = 1,
                .sak = n_out,
                .B = inp,
                .sbk = n_in,
                .sbn = 1,
                .C = dw,
                .ldc = n_in,
                .ws = ws};
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
#undef TK_LOG
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
