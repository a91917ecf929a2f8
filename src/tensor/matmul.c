/* matmul.c - threaded x . W^T over weights of any supported type.
 *
 * Two phases on the pool: (1) convert the M activation rows to the weight
 * type's vec_dot_type (threads split rows), (2) threads split the N weight
 * rows. Within a thread the rows are walked in tiles of about
 * MATMUL_TILE_BYTES of weights: the tile stays in L2 while all M
 * activation rows stream past it. Decode (M = 1) reads each weight byte
 * once; prefill reuses each tile M times. F32 weights (on AVX2 also F16
 * and BF16, widened in registers) use register tiles
 * (4 weight rows x 4 activation rows); quantized types whose QuantOps has
 * a vec_dot4 take activation rows four at a time, each weight block
 * unpacked once for the four (the bits of vec_dot); Q8_0 weights with M >= 2 on an
 * AVX-512 VNNI CPU use the packed kernels of matmul_q8.h (the activation
 * rows are also packed in phase 1), which give the bits of vec_dot; so do
 * weights repacked at load (matmul_weight_init), from M = 1.
 *
 * matmul_multi runs several weights of one input as one job: phase 1
 * converts x once (after the caller's per-row prep, fused into it), phase
 * 2 splits the concatenated rows (4-row panels on the packed path) of all
 * the weights evenly over the threads. */
#include "tensor/matmul.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "tensor/matmul_q8.h"
#include "tensor/ops.h"
#include "tensor/quant.h"

#define MATMUL_TILE_BYTES (64 * 1024)

/* ------------------------------------------------- F32 register tiles
 *
 * out[j*ldo + i] = W row i . x row j for an NW x NA tile, each output one
 * accumulator chain over LANES-wide chunks (masked tail), then one fixed
 * horizontal sum. Every tile shape runs exactly that chain per output, so
 * the (4, 4) tile, its (4, 1)/(1, 4)/(1, 1) edges and M = 1 decode all give
 * the same bits. Several chains per tile hide the FMA latency; NW x NA
 * accumulators share NW + NA loads per chunk. */
typedef void (*TileFn)(int K, const void *w, size_t ldw, const float *a, size_t lda, float *out,
                       size_t ldo);

#if defined(__x86_64__)
#include "core/simd.h"
#include <immintrin.h>

SIMD_BEGIN_AVX512
static inline __attribute__((always_inline)) float hsum512(__m512 s) {
    __m256 h8 = _mm256_add_ps(_mm512_castps512_ps256(s),
                              _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(s), 1)));
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(h8), _mm256_extractf128_ps(h8, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_movehdup_ps(h));
    return _mm_cvtss_f32(h);
}

static inline __attribute__((always_inline)) void tile512(int K, const float *w, size_t ldw,
                                                          const float *a, size_t lda, float *out,
                                                          size_t ldo, const int NW, const int NA) {
    __m512 acc[4][4];
#pragma GCC unroll 4
    for (int i = 0; i < NW; i++)
#pragma GCC unroll 4
        for (int j = 0; j < NA; j++)
            acc[i][j] = _mm512_setzero_ps();
    int k = 0;
    for (; k + 16 <= K; k += 16) {
        __m512 wv[4];
#pragma GCC unroll 4
        for (int i = 0; i < NW; i++)
            wv[i] = _mm512_loadu_ps(w + i * ldw + k);
#pragma GCC unroll 4
        for (int j = 0; j < NA; j++) {
            __m512 av = _mm512_loadu_ps(a + j * lda + k);
#pragma GCC unroll 4
            for (int i = 0; i < NW; i++)
                acc[i][j] = _mm512_fmadd_ps(wv[i], av, acc[i][j]);
        }
    }
    if (k < K) {
        __mmask16 m = (__mmask16)((1u << (K - k)) - 1);
        __m512 wv[4];
#pragma GCC unroll 4
        for (int i = 0; i < NW; i++)
            wv[i] = _mm512_maskz_loadu_ps(m, w + i * ldw + k);
#pragma GCC unroll 4
        for (int j = 0; j < NA; j++) {
            __m512 av = _mm512_maskz_loadu_ps(m, a + j * lda + k);
#pragma GCC unroll 4
            for (int i = 0; i < NW; i++)
                acc[i][j] = _mm512_fmadd_ps(wv[i], av, acc[i][j]);
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < NW; i++)
#pragma GCC unroll 4
        for (int j = 0; j < NA; j++)
            out[j * ldo + i] = hsum512(acc[i][j]);
}

static void tile512_4x4(int K, const void *w, size_t ldw, const float *a, size_t lda, float *o,
                        size_t ldo) {
    tile512(K, w, ldw, a, lda, o, ldo, 4, 4);
}
static void tile512_4x1(int K, const void *w, size_t ldw, const float *a, size_t lda, float *o,
                        size_t ldo) {
    tile512(K, w, ldw, a, lda, o, ldo, 4, 1);
}
static void tile512_1x4(int K, const void *w, size_t ldw, const float *a, size_t lda, float *o,
                        size_t ldo) {
    tile512(K, w, ldw, a, lda, o, ldo, 1, 4);
}
static void tile512_1x1(int K, const void *w, size_t ldw, const float *a, size_t lda, float *o,
                        size_t ldo) {
    tile512(K, w, ldw, a, lda, o, ldo, 1, 1);
}
SIMD_END

SIMD_BEGIN_AVX2
static const int32_t TILE_AVX2_MASK[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};

static inline __attribute__((always_inline)) float hsum256(__m256 s) {
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_movehdup_ps(h));
    return _mm_cvtss_f32(h);
}

/* Eight weights at element k of a row of kind WK (0 F32, 1 F16, 2 BF16)
 * as floats (the widening is exact), and the same for the last cnt < 8
 * elements, zero-padded. */
static inline __attribute__((always_inline)) __m256 wload8(const void *row, int k, const int WK) {
    if (WK == 1)
        return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)row + k)));
    if (WK == 2)
        return _mm256_castsi256_ps(_mm256_slli_epi32(
            _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)((const uint16_t *)row + k))),
            16));
    return _mm256_loadu_ps((const float *)row + k);
}

static inline __attribute__((always_inline)) __m256 wload_tail(const void *row, int k, int cnt,
                                                               __m256i m, const int WK) {
    if (WK == 0)
        return _mm256_maskload_ps((const float *)row + k, m);
    uint16_t h[8] = {0};
    memcpy(h, (const uint16_t *)row + k, (size_t)cnt * sizeof(uint16_t));
    return wload8(h, 0, WK);
}

/* 16 ymm registers: at most 4 x 2 accumulators. Weight rows of kind WK
 * (F16 and BF16 widened in registers, once per tile chunk for all NA
 * activation rows); ldw in elements. */
static inline __attribute__((always_inline)) void tile256(int K, const void *w, size_t ldw,
                                                          const float *a, size_t lda, float *out,
                                                          size_t ldo, const int NW, const int NA,
                                                          const int WK) {
    const size_t esz = WK ? sizeof(uint16_t) : sizeof(float);
    __m256 acc[4][2];
#pragma GCC unroll 4
    for (int i = 0; i < NW; i++)
#pragma GCC unroll 2
        for (int j = 0; j < NA; j++)
            acc[i][j] = _mm256_setzero_ps();
    int k = 0;
    for (; k + 8 <= K; k += 8) {
        __m256 wv[4];
#pragma GCC unroll 4
        for (int i = 0; i < NW; i++)
            wv[i] = wload8((const char *)w + i * ldw * esz, k, WK);
#pragma GCC unroll 2
        for (int j = 0; j < NA; j++) {
            __m256 av = _mm256_loadu_ps(a + j * lda + k);
#pragma GCC unroll 4
            for (int i = 0; i < NW; i++)
                acc[i][j] = _mm256_fmadd_ps(wv[i], av, acc[i][j]);
        }
    }
    if (k < K) {
        __m256i m = _mm256_loadu_si256((const __m256i *)(TILE_AVX2_MASK + 8 - (K - k)));
        __m256 wv[4];
#pragma GCC unroll 4
        for (int i = 0; i < NW; i++)
            wv[i] = wload_tail((const char *)w + i * ldw * esz, k, K - k, m, WK);
#pragma GCC unroll 2
        for (int j = 0; j < NA; j++) {
            __m256 av = _mm256_maskload_ps(a + j * lda + k, m);
#pragma GCC unroll 4
            for (int i = 0; i < NW; i++)
                acc[i][j] = _mm256_fmadd_ps(wv[i], av, acc[i][j]);
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < NW; i++)
#pragma GCC unroll 2
        for (int j = 0; j < NA; j++)
            out[j * ldo + i] = hsum256(acc[i][j]);
}

/* The tile functions of one weight kind: full (4x2), edges and 1x1. */
#define DEF_TILES256(sfx, WK)                                                                      \
    static void tile256##sfx##_4x2(int K, const void *w, size_t ldw, const float *a, size_t lda,   \
                                   float *o, size_t ldo) {                                         \
        tile256(K, w, ldw, a, lda, o, ldo, 4, 2, WK);                                              \
    }                                                                                              \
    static void tile256##sfx##_4x1(int K, const void *w, size_t ldw, const float *a, size_t lda,   \
                                   float *o, size_t ldo) {                                         \
        tile256(K, w, ldw, a, lda, o, ldo, 4, 1, WK);                                              \
    }                                                                                              \
    static void tile256##sfx##_1x2(int K, const void *w, size_t ldw, const float *a, size_t lda,   \
                                   float *o, size_t ldo) {                                         \
        tile256(K, w, ldw, a, lda, o, ldo, 1, 2, WK);                                              \
    }                                                                                              \
    static void tile256##sfx##_1x1(int K, const void *w, size_t ldw, const float *a, size_t lda,   \
                                   float *o, size_t ldo) {                                         \
        tile256(K, w, ldw, a, lda, o, ldo, 1, 1, WK);                                              \
    }

DEF_TILES256(, 0)
DEF_TILES256(_f16, 1)
DEF_TILES256(_bf16, 2)
SIMD_END
#endif

/* Tiles for one level: full (TW x TA), its two edges and the 1 x 1. NULL
 * full tile: no tiling, the plain ops dot per output (scalar level). */
typedef struct {
    int TW, TA;
    TileFn full, w_edge, a_edge, one; /* (TW,TA) (TW,1) (1,TA) (1,1) */
} F32Tiles;

/* The tiles for weights of type t at this CPU's level: F32 at AVX2 and
 * AVX-512, F16 and BF16 at AVX2 (AVX-512 dots those per output with its
 * vec_dot); NONE elsewhere. */
static const F32Tiles *f32_tiles(DType t) {
    static const F32Tiles NONE = {1, 1, NULL, NULL, NULL, NULL};
#if defined(__x86_64__)
    static const F32Tiles T512 = {4, 4, tile512_4x4, tile512_4x1, tile512_1x4, tile512_1x1};
    static const F32Tiles T256 = {4, 2, tile256_4x2, tile256_4x1, tile256_1x2, tile256_1x1};
    static const F32Tiles T256_F16 = {
        4, 2, tile256_f16_4x2, tile256_f16_4x1, tile256_f16_1x2, tile256_f16_1x1};
    static const F32Tiles T256_BF16 = {
        4, 2, tile256_bf16_4x2, tile256_bf16_4x1, tile256_bf16_1x2, tile256_bf16_1x1};
    SimdLevel l = ops_kernels()->level;
    if (l == SIMD_AVX512 && t == DTYPE_F32)
        return &T512;
    if (l == SIMD_AVX2)
        return t == DTYPE_F32    ? &T256
               : t == DTYPE_F16  ? &T256_F16
               : t == DTYPE_BF16 ? &T256_BF16
                                 : &NONE;
#endif
    (void)t;
    return &NONE;
}

bool matmul_supported(DType t) {
    if (t == DTYPE_F32)
        return true;
    const DTypeInfo *info = dtype_info(t);
    if (!info || !info->supported)
        return false;
    const QuantOps *q = quant_ops(t);
    return q && q->vec_dot && q->dequant &&
           (q->vec_dot_type == DTYPE_F32 || quant_ops(q->vec_dot_type));
}

/* The activation format for weights of type t. */
static DType act_type(DType t) {
    if (t == DTYPE_F32)
        return DTYPE_F32;
    const QuantOps *q = quant_ops(t);
    ASSERT(q);
    return q->vec_dot_type;
}

/* Q8_0 weights take the packed kernels (matmul_q8.h) where the CPU has
 * them: repacked weights always, raw rows from M = 2 (for one row the
 * row-by-row vec_dot needs no packing). Their activation rows are packed
 * once into the scratch after the Q8_0 rows, at the next 64-byte boundary. */
static bool use_q8_packed(const MatmulWeight *w, int M) {
    return w->repacked ||
           (w->type == DTYPE_Q8_0 && M >= 2 && w->K <= MMQ8_MAX_K && mmq8_available());
}

static uint8_t *q8_pack_area(void *scratch, size_t q8_bytes) {
    uintptr_t p = (uintptr_t)scratch + q8_bytes;
    return (uint8_t *)((p + 63) & ~(uintptr_t)63);
}

/* Floats per activation row of the block scales vec_dot4 reads (Q8_0 and
 * Q8_1 activations; 0 for others). They share the area after the
 * activation rows with the Q8_0 packing, which never runs beside them. */
static size_t act_scale_floats(DType at, int K) {
    return at == DTYPE_Q8_0 || at == DTYPE_Q8_1 ? 2 * (size_t)(K / dtype_info(at)->block_size) : 0;
}

size_t matmul_scratch_bytes(DType wtype, int M, int K) {
    DType at = act_type(wtype);
    if (at == DTYPE_F32)
        return 0;
    size_t n = (size_t)dtype_row_bytes(at, K) * (size_t)M, extra = 0;
    if (wtype == DTYPE_Q8_0 && K <= MMQ8_MAX_K)
        extra = mmq8_act_row_bytes(K) * (size_t)M;
    size_t sc = act_scale_floats(at, K) * sizeof(float) * (size_t)M;
    extra = sc > extra ? sc : extra;
    return extra ? n + 64 + extra : n;
}

/* ------------------------------------------------------ prepared weights */

static bool can_repack(DType type, int K) {
    return type == DTYPE_Q8_0 && K % 32 == 0 && K <= MMQ8_MAX_K && mmq8_available();
}

typedef struct {
    const MatmulWeight *w;
    const void *src;
    void *dst;
} RepackCtx;

static void repack_task(void *vctx, int ith, int nth) {
    RepackCtx *c = vctx;
    const long N = c->w->N, panels = (N + 3) / 4;
    long lo, hi;
    tpool_range(panels, ith, nth, &lo, &hi);
    if (lo < hi)
        mmq8_wpack(c->dst, c->src, (size_t)dtype_row_bytes(DTYPE_Q8_0, c->w->K), N, c->w->K, 4 * lo,
                   4 * hi < N ? 4 * hi : N);
}

size_t matmul_weight_repack_bytes(DType type, int N, int K) {
    if (N <= 0 || !can_repack(type, K))
        return 0;
    return (mmq8_wpack_bytes(N, K) + 63) & ~(size_t)63;
}

void matmul_weight_init(MatmulWeight *w, const void *data, DType type, int N, int K, void *dst,
                        TPool *tp) {
    ASSERT(matmul_supported(type) && N >= 0 && K >= 0);
    *w = (MatmulWeight){.data = data, .type = type, .N = N, .K = K};
    if (!dst || !matmul_weight_repack_bytes(type, N, K))
        return;
    ASSERT(((uintptr_t)dst & 63) == 0);
    RepackCtx c = {w, data, dst};
    tpool_run(tp, repack_task, &c);
    w->data = dst;
    w->repacked = true;
}

void matmul_weight_row(const MatmulWeight *w, int r, float *dst) {
    ASSERT(r >= 0 && r < w->N);
    if (w->repacked) {
        mmq8_wpack_row_f32(w->data, w->N, w->K, r, dst);
        return;
    }
    size_t rb = (size_t)dtype_row_bytes(w->type, w->K);
    const uint8_t *src = (const uint8_t *)w->data + (size_t)r * rb;
    if (w->type == DTYPE_F32) {
        memcpy(dst, src, (size_t)w->K * sizeof(float));
        return;
    }
    const QuantOps *q = quant_ops(w->type);
    ASSERT(q && q->dequant);
    q->dequant(src, dst, w->K);
}

/* ------------------------------------------------------------ the job */

typedef struct {
    const float *x;
    int M, K;
    DType wtype, atype;
    size_t w_row_bytes, a_row_bytes;
    const void *act; /* activations in atype */
    void *scratch;
    const QuantOps *wq, *aq;
    OpsDotFn dot;
    const F32Tiles *tiles;
    bool packed;      /* the Q8_0 packed kernels run (then a unit is a 4-row panel) */
    uint8_t *q8_pack; /* packed activation rows, or NULL */
    float *act_sc;    /* the rows' block scales for vec_dot4 (act_scale_floats each), or NULL */
    size_t act_sc_ld;
    size_t q8_pack_ld;
    const MatmulOut *outs;
    int n_outs;
    long n_units; /* rows, or panels, of all the weights */
    const MatmulPrep *prep;
} MatmulCtx;

static void convert_task(void *vctx, int ith, int nth) {
    MatmulCtx *c = vctx;
    long lo, hi;
    tpool_range(c->M, ith, nth, &lo, &hi);
    for (long m = lo; m < hi; m++) {
        if (c->prep)
            c->prep->fn(c->prep->ctx, (int)m);
        if (c->atype == DTYPE_F32)
            continue;
        uint8_t *row = (uint8_t *)c->scratch + (size_t)m * c->a_row_bytes;
        c->aq->quantize(c->x + (size_t)m * c->K, row, c->K);
        if (c->q8_pack)
            mmq8_pack_act(c->q8_pack, c->q8_pack_ld, (int)m, row, c->K);
        if (c->act_sc)
            quant_act_scales(c->atype, row, c->K, c->act_sc + (size_t)m * c->act_sc_ld);
    }
}

/* Rows [n0, n1) of output o against every activation row. */
static void dot_rows(const MatmulCtx *c, const MatmulOut *o, long n0, long n1) {
    const MatmulWeight *W = o->w;
    const size_t N = (size_t)W->N, K = (size_t)c->K;
    if (c->packed) {
        if (W->repacked)
            mmq8_rows_wpacked(o->out, N, W->data, W->N, n0, n1, c->q8_pack, c->q8_pack_ld, c->M,
                              c->K, o->bias);
        else
            mmq8_rows(o->out, N, W->data, c->w_row_bytes, n0, n1, c->q8_pack, c->q8_pack_ld, c->M,
                      c->K, o->bias);
        return;
    }
    long tile = (long)(MATMUL_TILE_BYTES / (c->w_row_bytes ? c->w_row_bytes : 1));
    if (tile < 1)
        tile = 1;
    const uint8_t *w = W->data;
    const uint8_t *act = c->act;
    const F32Tiles *T = c->tiles;
    for (long t0 = n0; t0 < n1; t0 += tile) {
        long t1 = t0 + tile < n1 ? t0 + tile : n1;
        if (T->full) { /* F32 (F16, BF16) weights: register tiles */
            for (int m = 0; m < c->M;) {
                bool full_a = m + T->TA <= c->M;
                long n = t0;
                for (; n + T->TW <= t1; n += T->TW)
                    (full_a ? T->full : T->w_edge)(c->K, w + (size_t)n * c->w_row_bytes, K,
                                                   c->x + (size_t)m * K, K,
                                                   o->out + (size_t)m * N + n, N);
                for (; n < t1; n++)
                    (full_a ? T->a_edge : T->one)(c->K, w + (size_t)n * c->w_row_bytes, K,
                                                  c->x + (size_t)m * K, K,
                                                  o->out + (size_t)m * N + n, N);
                m += full_a ? T->TA : 1;
            }
        } else {
            int m = 0;
            if (c->wtype != DTYPE_F32 && c->wq->vec_dot4) /* four rows per weight row unpacked */
                for (; m + 4 <= c->M; m += 4) {
                    float *out = o->out + (size_t)m * N;
                    const void *a = act + (size_t)m * c->a_row_bytes;
                    const float *sc = c->act_sc ? c->act_sc + (size_t)m * c->act_sc_ld : NULL;
                    for (long n = t0; n < t1; n++)
                        c->wq->vec_dot4(c->K, &out[n], N, w + (size_t)n * c->w_row_bytes, a,
                                        c->a_row_bytes, sc, c->act_sc_ld);
                }
            for (; m < c->M; m++) {
                float *out = o->out + (size_t)m * N;
                const void *a = act + (size_t)m * c->a_row_bytes;
                if (c->wtype == DTYPE_F32) {
                    for (long n = t0; n < t1; n++)
                        out[n] = c->dot(c->K, (const float *)(w + (size_t)n * c->w_row_bytes), a);
                } else {
                    for (long n = t0; n < t1; n++)
                        c->wq->vec_dot(c->K, &out[n], w + (size_t)n * c->w_row_bytes, a);
                }
            }
        }
        if (o->bias)
            for (int m = 0; m < c->M; m++)
                for (long n = t0; n < t1; n++)
                    o->out[(size_t)m * N + n] += o->bias[n];
    }
}

static long units_of(const MatmulCtx *c, const MatmulOut *o) {
    return c->packed ? ((long)o->w->N + 3) / 4 : (long)o->w->N;
}

/* Units [lo, hi) of all the outputs, out by out. */
static void dot_units(MatmulCtx *c, long lo, long hi) {
    const long per = c->packed ? 4 : 1;
    long base = 0;
    for (int i = 0; i < c->n_outs && base < hi; i++) {
        const MatmulOut *o = &c->outs[i];
        const long u = units_of(c, o);
        const long a = lo > base ? lo - base : 0, b = hi - base < u ? hi - base : u;
        if (a < b) {
            const long n1 = b * per < o->w->N ? b * per : o->w->N;
            dot_rows(c, o, a * per, n1);
        }
        base += u;
    }
}

static void dot_task(void *vctx, int ith, int nth) {
    MatmulCtx *c = vctx;
    long lo, hi;
    tpool_range(c->n_units, ith, nth, &lo, &hi);
    dot_units(c, lo, hi);
}

void matmul_multi(TPool *tp, const float *x, int M, const MatmulOut *outs, int n_outs,
                  const MatmulPrep *prep, void *scratch) {
    ASSERT(M >= 0 && n_outs >= 1 && outs);
    const MatmulWeight *w0 = outs[0].w;
    for (int i = 1; i < n_outs; i++)
        ASSERT(outs[i].w->type == w0->type && outs[i].w->K == w0->K &&
               outs[i].w->repacked == w0->repacked);
    ASSERT(matmul_supported(w0->type));
    if (M == 0)
        return;
    MatmulCtx c = {.x = x,
                   .M = M,
                   .K = w0->K,
                   .wtype = w0->type,
                   .scratch = scratch,
                   .dot = ops_kernels()->dot,
                   .tiles = f32_tiles(w0->type),
                   .outs = outs,
                   .n_outs = n_outs,
                   .prep = prep && prep->fn ? prep : NULL};
    c.w_row_bytes = (size_t)dtype_row_bytes(c.wtype, c.K);
    ASSERT(c.w_row_bytes > 0);
    c.atype = act_type(c.wtype);
    c.packed = use_q8_packed(w0, M);
    if (c.wtype != DTYPE_F32)
        c.wq = quant_ops(c.wtype);
    if (c.atype == DTYPE_F32) {
        c.act = x;
        c.a_row_bytes = (size_t)c.K * sizeof(float);
    } else {
        c.aq = quant_ops(c.atype);
        ASSERT(c.aq && c.aq->quantize && scratch);
        c.a_row_bytes = (size_t)dtype_row_bytes(c.atype, c.K);
        ASSERT(c.a_row_bytes > 0);
        c.act = scratch;
        if (c.packed) {
            c.q8_pack = q8_pack_area(scratch, c.a_row_bytes * (size_t)M);
            c.q8_pack_ld = mmq8_act_row_bytes(c.K);
        } else if (M >= 4 && c.wq->vec_dot4 && act_scale_floats(c.atype, c.K)) {
            c.act_sc = (float *)(void *)q8_pack_area(scratch, c.a_row_bytes * (size_t)M);
            c.act_sc_ld = act_scale_floats(c.atype, c.K);
        }
    }
    if (c.atype != DTYPE_F32 || c.prep) {
        if (M > 1)
            tpool_run(tp, convert_task, &c);
        else
            convert_task(&c, 0, 1);
    }
    for (int i = 0; i < n_outs; i++)
        c.n_units += units_of(&c, &outs[i]);
    if (c.n_units)
        tpool_run(tp, dot_task, &c);
}

void matmul_forward(TPool *tp, float *out, const float *x, const void *w, DType wtype,
                    const float *bias, int M, int N, int K, void *scratch) {
    ASSERT(matmul_supported(wtype));
    ASSERT(M >= 0 && N >= 0 && K >= 0);
    if (M == 0 || N == 0)
        return;
    const MatmulWeight W = {.data = w, .type = wtype, .N = N, .K = K};
    const MatmulOut o = {out, &W, bias};
    matmul_multi(tp, x, M, &o, 1, NULL, scratch);
}

void matmul_ref(float *out, const float *x, const void *w, DType wtype, const float *bias, int M,
                int N, int K) {
    size_t rb = (size_t)dtype_row_bytes(wtype, K);
    ASSERT(rb > 0);
    float *row = malloc((size_t)K * sizeof(float) + 1);
    ASSERT(row);
    const QuantOps *q = wtype == DTYPE_F32 ? NULL : quant_ops(wtype);
    ASSERT(wtype == DTYPE_F32 || (q && q->dequant));
    for (int n = 0; n < N; n++) {
        const uint8_t *wr = (const uint8_t *)w + (size_t)n * rb;
        if (q)
            q->dequant(wr, row, K);
        else
            memcpy(row, wr, (size_t)K * sizeof(float));
        for (int m = 0; m < M; m++) {
            double s = 0;
            for (int k = 0; k < K; k++)
                s += (double)x[(size_t)m * K + k] * row[k];
            if (bias)
                s += bias[n];
            out[(size_t)m * N + n] = (float)s;
        }
    }
    free(row);
}
