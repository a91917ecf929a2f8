/* matmul_q8.c - the packed Q8_0 x Q8_0 batch kernels (see matmul_q8.h).
 *
 * A row of nb blocks is nb / 16 full groups of Q8V_GROUP = 16 blocks
 * (q8_avx512.h) and maybe a last group of cnt = nb % 16 blocks. Packed, a
 * group is 8 registers q[k] whose lane holds quant bytes 4k..4k+3 of one
 * block ("slot"), so that one vpdpbusd per k dots 16 slots at once:
 *   full layout (full groups, and a last group of cnt > 8): slot t = block
 *       t of the group;
 *   short layout (a last group of cnt <= 8, CP = 4 or 8 lanes per row):
 *       slot c*CP + t = block t of weight row c of the register's 16/CP
 *       rows, so a panel of 4 rows needs CP / 4 registers per k instead of
 *       4, and an activation row repeats its blocks 16/CP times.
 * Activation rows (ActGroup per group): q signed; bias = -128 * sum of the
 * slot's quants; d = fp32 scales by slot. Weight panels (stack) hold the
 * rows' quants + 128 (unsigned), and scales by slot. Then
 *       bias + sum (w + 128) * a = sum w * a
 * is the exact integer dot s_b of the contract, and the float steps (scale
 * product, masked fma or short-group product, the sums) are the contract's
 * own, per output, so every output has the bits of the row kernel. The
 * sums of a 4 x 4 tile run 16 outputs at a time (q8v_hsum16, q8v_sum4_ps).
 *
 * Not here: other weight types, other SIMD levels (matmul.c falls back to
 * vec_dot per output). */
#include "tensor/matmul_q8.h"

#include <stdint.h>
#include <string.h>

#include "core/err.h"
#include "tensor/quant.h"

#if defined(__x86_64__)
#include "core/simd.h"
#include <immintrin.h>

#define MMQ8_NW 4                         /* weight rows per panel */
#define MMQ8_NA 4                         /* activation rows per tile */
#define MMQ8_ACT_CHUNK_BYTES (256 * 1024) /* activation rows per pass over the weights */
#define MMQ8_MAX_GROUPS ((MMQ8_MAX_K / 32 + 15) / 16)

typedef struct {
    int8_t q[8][64];
    int32_t bias[16];
    float d[16];
} ActGroup;

/* One weight row's full-layout group. */
typedef struct {
    uint8_t q[8][64];
    float d[16];
} PanelRow;

/* A panel's short last group: q[reg][k], d[reg] by slot. */
typedef struct {
    uint8_t q[2][8][64];
    float d[2][16];
} PanelShort;

typedef struct {
    PanelRow full[MMQ8_MAX_GROUPS][MMQ8_NW];
    PanelShort last;
} Panel;

static int64_t n_groups(int64_t nb) { return (nb + 15) / 16; }

/* The AVX-512 table always holds the AVX-512 kernel; quant_ops() hands it
 * out exactly when the CPU (capped by CGPT_SIMD) runs it. No CPUID here:
 * under a hypervisor it costs microseconds, and this runs per matmul. */
bool mmq8_available(void) {
    return quant_ops(DTYPE_Q8_0)->vec_dot == quant_ops_at(DTYPE_Q8_0, SIMD_AVX512)->vec_dot;
}

size_t mmq8_act_row_bytes(int K) { return (size_t)n_groups(K / 32) * sizeof(ActGroup); }

SIMD_BEGIN_AVX512
#include "tensor/q8_avx512.h"

/* 16 slots (NULL: zeros) -> o[k], lane = slot. */
static void load_slots(const BlockQ8_0 *const slot[16], __m512i o[8]) {
    __m512i r[8];
    for (int p = 0; p < 8; p++) {
        const int a = q8v_pair_block(p);
        const __m256i lo =
            slot[a] ? _mm256_loadu_si256((const __m256i *)slot[a]->qs) : _mm256_setzero_si256();
        const __m256i hi = slot[a + 4] ? _mm256_loadu_si256((const __m256i *)slot[a + 4]->qs)
                                       : _mm256_setzero_si256();
        r[p] = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
    }
    q8v_transpose8(r, o);
}

/* One group's slots in the full layout. */
static inline __attribute__((always_inline)) void load_full(const BlockQ8_0 *b, int64_t cnt,
                                                            __m512i o[8]) {
    __m512i r[8];
#pragma GCC unroll 8
    for (int p = 0; p < 8; p++)
        r[p] = q8v_load_pair(b, p, cnt);
    q8v_transpose8(r, o);
}

/* Activation: q, bias and d of one group from its slots o. */
static inline __attribute__((always_inline)) void store_act(ActGroup *g, const __m512i o[8],
                                                            __m512 d) {
    const __m512i c128 = _mm512_set1_epi8((char)0x80);
    __m512i sum = _mm512_setzero_si512();
#pragma GCC unroll 8
    for (int k = 0; k < 8; k++) {
        _mm512_storeu_si512(g->q[k], o[k]);
        sum = _mm512_dpbusd_epi32(sum, c128, o[k]);
    }
    _mm512_storeu_si512(g->bias, _mm512_sub_epi32(_mm512_setzero_si512(), sum));
    _mm512_storeu_ps(g->d, d);
}

static void pack_act_avx512(void *dst, const void *row, int K) {
    const BlockQ8_0 *b = row;
    ActGroup *g = dst;
    const int64_t nb = K / 32, cnt = nb % 16;
    __m512i o[8];
    int64_t i = 0;
    for (; i + 16 <= nb; i += 16, g++) {
        load_full(b + i, 16, o);
        store_act(g, o, q8v_scales(b + i, 16));
    }
    if (!cnt)
        return;
    const int cp = q8v_short_cp(cnt);
    if (!cp) {
        load_full(b + i, cnt, o);
        store_act(g, o, q8v_scales(b + i, cnt));
        return;
    }
    const BlockQ8_0 *slot[16];
    for (int s = 0; s < 16; s++)
        slot[s] = s % cp < cnt ? b + i + s % cp : NULL;
    load_slots(slot, o);
    const __m512 d = q8v_scales(b + i, cnt); /* repeated every cp lanes */
    store_act(g, o,
              cp == 4 ? _mm512_broadcast_f32x4(_mm512_castps512_ps128(d))
                      : _mm512_broadcast_f32x8(_mm512_castps512_ps256(d)));
}

static inline __attribute__((always_inline)) void store_w(uint8_t q[8][64], const __m512i o[8]) {
    const __m512i c128 = _mm512_set1_epi8((char)0x80);
#pragma GCC unroll 8
    for (int k = 0; k < 8; k++)
        _mm512_storeu_si512(q[k], _mm512_xor_si512(o[k], c128));
}

/* Panel of rows w[0..nw) (nw <= 4; the others zero). */
static void pack_panel(Panel *P, const uint8_t *w, size_t w_row_bytes, int nw, int64_t nb) {
    const int64_t nfull = nb / 16, cnt = nb % 16;
    const int cp = q8v_short_cp(cnt);
    const BlockQ8_0 *row[MMQ8_NW];
    for (int r = 0; r < MMQ8_NW; r++)
        row[r] = r < nw ? (const BlockQ8_0 *)(w + (size_t)r * w_row_bytes) : NULL;
    __m512i o[8];
    __m512 dl[MMQ8_NW];
    for (int r = 0; r < MMQ8_NW; r++) {
        for (int64_t g = 0; g < nfull + (cnt && !cp); g++) {
            PanelRow *pr = &P->full[g][r];
            const int64_t c = g < nfull ? 16 : cnt;
            if (!row[r]) {
                memset(pr, 0, sizeof *pr);
                continue;
            }
            if (c == 16)
                load_full(row[r] + 16 * g, 16, o);
            else
                load_full(row[r] + 16 * g, c, o);
            store_w(pr->q, o);
            _mm512_storeu_ps(pr->d, q8v_scales(row[r] + 16 * g, c));
        }
        if (cp)
            dl[r] = row[r] ? q8v_scales(row[r] + 16 * nfull, cnt) : _mm512_setzero_ps();
    }
    if (!cp)
        return;
    if (cp == 4) {
        __m512 d = _mm512_castps128_ps512(_mm512_castps512_ps128(dl[0]));
        d = _mm512_insertf32x4(d, _mm512_castps512_ps128(dl[1]), 1);
        d = _mm512_insertf32x4(d, _mm512_castps512_ps128(dl[2]), 2);
        d = _mm512_insertf32x4(d, _mm512_castps512_ps128(dl[3]), 3);
        _mm512_storeu_ps(P->last.d[0], d);
    } else {
        for (int q = 0; q < 2; q++)
            _mm512_storeu_ps(
                P->last.d[q],
                _mm512_insertf32x8(dl[2 * q], _mm512_castps512_ps256(dl[2 * q + 1]), 1));
    }
    const int rpr = 16 / cp; /* rows per register */
    for (int q = 0; q < MMQ8_NW / rpr; q++) {
        const BlockQ8_0 *slot[16];
        for (int s = 0; s < 16; s++) {
            const BlockQ8_0 *rb = row[q * rpr + s / cp];
            slot[s] = rb && s % cp < cnt ? rb + 16 * nfull + s % cp : NULL;
        }
        load_slots(slot, o);
        store_w(P->last.q[q], o);
    }
}

/* Full-layout groups [0, ng) of a 4 x NA tile into acc. */
static inline __attribute__((always_inline)) void tile_full(__m512 acc[MMQ8_NW][MMQ8_NA],
                                                            const Panel *P, const uint8_t *act,
                                                            size_t act_ld, int64_t ng, int64_t nb,
                                                            const int NA) {
    for (int64_t g = 0; g < ng; g++) {
        const __mmask16 m = q8v_mask(nb - 16 * g);
        const PanelRow *pw = P->full[g];
        const ActGroup *pa[MMQ8_NA];
#pragma GCC unroll 4
        for (int j = 0; j < NA; j++)
            pa[j] = (const ActGroup *)(act + (size_t)j * act_ld) + g;
        __m512i s[MMQ8_NW][MMQ8_NA];
#pragma GCC unroll 4
        for (int j = 0; j < NA; j++) {
            const __m512i bj = _mm512_loadu_si512(pa[j]->bias);
#pragma GCC unroll 4
            for (int r = 0; r < MMQ8_NW; r++)
                s[r][j] = bj;
        }
#pragma GCC unroll 8
        for (int k = 0; k < 8; k++) {
            __m512i av[MMQ8_NA];
#pragma GCC unroll 4
            for (int j = 0; j < NA; j++)
                av[j] = _mm512_loadu_si512(pa[j]->q[k]);
#pragma GCC unroll 4
            for (int r = 0; r < MMQ8_NW; r++) {
                const __m512i wv = _mm512_loadu_si512(pw[r].q[k]);
#pragma GCC unroll 4
                for (int j = 0; j < NA; j++)
                    s[r][j] = _mm512_dpbusd_epi32(s[r][j], wv, av[j]);
            }
        }
#pragma GCC unroll 4
        for (int j = 0; j < NA; j++) {
            const __m512 dy = _mm512_loadu_ps(pa[j]->d);
#pragma GCC unroll 4
            for (int r = 0; r < MMQ8_NW; r++)
                acc[r][j] =
                    q8v_fold(acc[r][j], s[r][j], _mm512_mul_ps(_mm512_loadu_ps(pw[r].d), dy), m);
        }
    }
}

/* The short last group (CP lanes per row, cnt blocks) of a 4 x NA tile:
 * returns the contract's T of output (r, j) in lane 4 j + r. */
static inline __attribute__((always_inline)) __m512 tile_short(const Panel *P, const uint8_t *act,
                                                               size_t act_ld, int64_t g,
                                                               const int NA, const int CP) {
    const int NREG = CP / 4;
    const ActGroup *pa[MMQ8_NA];
#pragma GCC unroll 4
    for (int j = 0; j < NA; j++)
        pa[j] = (const ActGroup *)(act + (size_t)j * act_ld) + g;
    __m512i s[2][MMQ8_NA];
#pragma GCC unroll 4
    for (int j = 0; j < NA; j++) {
        const __m512i bj = _mm512_loadu_si512(pa[j]->bias);
#pragma GCC unroll 2
        for (int q = 0; q < NREG; q++)
            s[q][j] = bj;
    }
#pragma GCC unroll 8
    for (int k = 0; k < 8; k++) {
        __m512i av[MMQ8_NA];
#pragma GCC unroll 4
        for (int j = 0; j < NA; j++)
            av[j] = _mm512_loadu_si512(pa[j]->q[k]);
#pragma GCC unroll 2
        for (int q = 0; q < NREG; q++) {
            const __m512i wv = _mm512_loadu_si512(P->last.q[q][k]);
#pragma GCC unroll 4
            for (int j = 0; j < NA; j++)
                s[q][j] = _mm512_dpbusd_epi32(s[q][j], wv, av[j]);
        }
    }
    /* v = s * (dw * da) by slot; rows are 128-bit lanes (CP 4) or halves (CP 8) */
    __m512 v[2][MMQ8_NA];
#pragma GCC unroll 2
    for (int q = 0; q < 2; q++)
#pragma GCC unroll 4
        for (int j = 0; j < MMQ8_NA; j++)
            v[q][j] = _mm512_setzero_ps();
#pragma GCC unroll 4
    for (int j = 0; j < NA; j++) {
        const __m512 dy = _mm512_loadu_ps(pa[j]->d);
#pragma GCC unroll 2
        for (int q = 0; q < NREG; q++)
            v[q][j] = _mm512_mul_ps(_mm512_cvtepi32_ps(s[q][j]),
                                    _mm512_mul_ps(_mm512_loadu_ps(P->last.d[q]), dy));
    }
    __m512 t; /* lane 4 r + j */
    if (CP == 4) {
        t = q8v_sum4_ps(v[0][0], v[0][1], v[0][2], v[0][3]);
    } else {
        const __m512 u0 = q8v_sum4_ps(v[0][0], v[0][1], v[0][2], v[0][3]);
        const __m512 u1 = q8v_sum4_ps(v[1][0], v[1][1], v[1][2], v[1][3]);
        t = _mm512_add_ps(_mm512_shuffle_f32x4(u0, u1, 0x88), _mm512_shuffle_f32x4(u0, u1, 0xdd));
    }
    const __m512i to_jr = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    return _mm512_permutexvar_ps(to_jr, t);
}

/* The 4 x NA tile: out[j*ldo + r] for weight rows r < nw of the panel and
 * activation rows j < NA starting at 'act'. */
static inline __attribute__((always_inline)) void tile(const Panel *P, const uint8_t *act,
                                                       size_t act_ld, int64_t nb, float *out,
                                                       size_t ldo, int nw, const float *bias,
                                                       const int NA) {
    __m512 acc[MMQ8_NW][MMQ8_NA];
#pragma GCC unroll 4
    for (int r = 0; r < MMQ8_NW; r++)
#pragma GCC unroll 4
        for (int j = 0; j < MMQ8_NA; j++)
            acc[r][j] = _mm512_setzero_ps();
    const int64_t nfull = nb / 16, cnt = nb % 16;
    const int cp = q8v_short_cp(cnt);
    tile_full(acc, P, act, act_ld, nfull + (cnt && !cp), nb, NA);
    __m512 a16[16];
#pragma GCC unroll 4
    for (int r = 0; r < MMQ8_NW; r++)
#pragma GCC unroll 4
        for (int j = 0; j < MMQ8_NA; j++)
            a16[4 * r + j] = acc[r][j];
    __m512 o = q8v_hsum16(a16); /* lane 4 j + r */
    if (cp == 4)
        o = _mm512_add_ps(o, tile_short(P, act, act_ld, nfull, NA, 4));
    else if (cp == 8)
        o = _mm512_add_ps(o, tile_short(P, act, act_ld, nfull, NA, 8));
    const __mmask8 mw = (__mmask8)((1u << nw) - 1);
    if (bias)
        o = _mm512_add_ps(o, _mm512_broadcast_f32x4(_mm_maskz_loadu_ps(mw, bias)));
    _mm_mask_storeu_ps(out, mw, _mm512_castps512_ps128(o));
    if (NA > 1)
        _mm_mask_storeu_ps(out + ldo, mw, _mm512_extractf32x4_ps(o, 1));
    if (NA > 2)
        _mm_mask_storeu_ps(out + 2 * ldo, mw, _mm512_extractf32x4_ps(o, 2));
    if (NA > 3)
        _mm_mask_storeu_ps(out + 3 * ldo, mw, _mm512_extractf32x4_ps(o, 3));
}

typedef void (*TileFn)(const Panel *, const uint8_t *, size_t, int64_t, float *, size_t, int,
                       const float *);
#define MMQ8_TILE(na)                                                                              \
    static void tile##na(const Panel *P, const uint8_t *a, size_t ld, int64_t nb, float *o,        \
                         size_t ldo, int nw, const float *bias) {                                  \
        tile(P, a, ld, nb, o, ldo, nw, bias, na);                                                  \
    }
MMQ8_TILE(1)
MMQ8_TILE(2)
MMQ8_TILE(3)
MMQ8_TILE(4)

static void rows_avx512(float *out, size_t ldo, const void *w, size_t w_row_bytes, long n0, long n1,
                        const void *act, size_t act_ld, int M, int K, const float *bias) {
    static const TileFn TILES[MMQ8_NA + 1] = {NULL, tile1, tile2, tile3, tile4};
    const int64_t nb = K / 32;
    _Alignas(64) Panel panel;
    long chunk = (long)(MMQ8_ACT_CHUNK_BYTES / act_ld) / MMQ8_NA * MMQ8_NA;
    if (chunk < MMQ8_NA)
        chunk = MMQ8_NA;
    for (long m0 = 0; m0 < M; m0 += chunk) {
        const long m1 = m0 + chunk < M ? m0 + chunk : M;
        for (long n = n0; n < n1; n += MMQ8_NW) {
            const int nw = n1 - n < MMQ8_NW ? (int)(n1 - n) : MMQ8_NW;
            const uint8_t *wn = (const uint8_t *)w + (size_t)n * w_row_bytes;
            pack_panel(&panel, wn, w_row_bytes, nw, nb);
            /* the next panel's rows come from memory while this one computes */
            if (n + 2 * MMQ8_NW <= n1)
                for (size_t o = 0; o < MMQ8_NW * w_row_bytes; o += 64)
                    _mm_prefetch((const char *)wn + MMQ8_NW * w_row_bytes + o, _MM_HINT_T0);
            const float *bn = bias ? bias + n : NULL;
            for (long m = m0; m < m1; m += MMQ8_NA) {
                const int na = m1 - m < MMQ8_NA ? (int)(m1 - m) : MMQ8_NA;
                TILES[na](&panel, (const uint8_t *)act + (size_t)m * act_ld, act_ld, nb,
                          out + (size_t)m * ldo + n, ldo, nw, bn);
            }
        }
    }
}
SIMD_END

void mmq8_pack_act(void *dst, const void *row, int K) {
    ASSERT(K % 32 == 0 && K <= MMQ8_MAX_K);
    pack_act_avx512(dst, row, K);
}

void mmq8_rows(float *out, size_t ldo, const void *w, size_t w_row_bytes, long n0, long n1,
               const void *act, size_t act_ld, int M, int K, const float *bias) {
    ASSERT(K % 32 == 0 && K <= MMQ8_MAX_K);
    rows_avx512(out, ldo, w, w_row_bytes, n0, n1, act, act_ld, M, K, bias);
}

#else /* not x86: no packed kernels */

bool mmq8_available(void) { return false; }
size_t mmq8_act_row_bytes(int K) { return (size_t)((K / 32 + 15) / 16) * 640; }
void mmq8_pack_act(void *dst, const void *row, int K) {
    (void)dst, (void)row, (void)K;
    ASSERT(0);
}
void mmq8_rows(float *out, size_t ldo, const void *w, size_t w_row_bytes, long n0, long n1,
               const void *act, size_t act_ld, int M, int K, const float *bias) {
    (void)out, (void)ldo, (void)w, (void)w_row_bytes, (void)n0, (void)n1, (void)act, (void)act_ld,
        (void)M, (void)K, (void)bias;
    ASSERT(0);
}

#endif
