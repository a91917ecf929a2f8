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
 *       rows, so the 4 rows of a panel fill CP / 4 registers.
 * The full-layout groups are packed: activation rows (ActGroup per group)
 * with q signed, bias = -128 * sum of the slot's quants, d = fp32 scales by
 * slot; weight panels with the rows' quants + 128 (unsigned) and fp16
 * scales by slot. Then
 *       bias + sum (w + 128) * a = sum w * a
 * is the exact integer dot s_b of the contract. A short last group
 * (cnt <= 8 blocks) is computed for all 16 outputs of a 4 x 4 tile at
 * once, lane 4 j + r = output (weight row r, activation row j): per block,
 * 8 vpdpbusd of the 4 weight rows' dword k (broadcast) against the
 * activation tail image (4 rows' dword k, each 4 times), so s_b, the
 * products v_b and the contract's T come out in the output lanes the
 * horizontal sums of the full groups end in; no block reduction, no
 * shuffles (the 2-block tail of K = 576 went from ~65% to ~25% of a full
 * group's time). The float steps (scale product, masked fma or short-group
 * product, the sums) are the contract's own, per output, so every output
 * has the bits of the row kernel. The sums of a 4 x 4 tile run 16 outputs at a time (q8v_hsum16,
 * q8v_sum4_ps), those of a 4 x 1 tile 4 at a time.
 *
 * One panel format serves both entry points: mmq8_rows builds each panel
 * on the stack per call, mmq8_wpack once into the caller's buffer. A panel
 * of 4 rows of nb blocks is 136 * nb bytes (4 rows of 34-byte blocks) then
 * zeros up to a multiple of 64:
 *   for each full-layout group (first block b0, c = 16 blocks, or the last
 *   group's 9..15), at byte 136 * b0:  q[row 0..3][k 0..7][4c bytes]
 *       (lane t = dword k of block t, + 128), then d[row 0..3][c] fp16;
 *   a short last group (cnt = 1..8 blocks), at byte 136 * (nb - cnt):
 *       q[block][k 0..7][row 0..3] dwords (+ 128), then d[block][row] fp16.
 * A full group is 2176 = 34 * 64 bytes, so every full group of a 64-byte
 * aligned panel is aligned; a last group of 9..15 keeps its rows' 4c-byte
 * q runs (masked loads), so no format pads past the Q8_0 size.
 *
 * Not here: other weight types, other SIMD levels (matmul.c falls back to
 * vec_dot per output). */
#include "tensor/matmul_q8.h"

#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "core/err.h"
#include "core/fp16.h"
#include "tensor/quant.h"
#include "tensor/quant_blocks_legacy.h"

#define MMQ8_NW 4                         /* weight rows per panel */
#define MMQ8_NA 4                         /* activation rows per tile */
#define MMQ8_ACT_CHUNK_BYTES (256 * 1024) /* activation rows per pass over the weights */
/* Panel bytes per block column: one Q8_0 block of each of the 4 rows. */
#define MMQ8_PBB ((size_t)MMQ8_NW * sizeof(BlockQ8_0))
#define MMQ8_MAX_PANEL_BYTES (MMQ8_PBB * (MMQ8_MAX_K / 32))
/* How far ahead of the panel being computed mmq8_rows_wpacked prefetches
 * into L1: measured best among 1..64 KB on Zen 5 (48 KB L1), where from
 * 16 KB on the prefetched lines start to evict the ones in use. */
#define MMQ8_PREFETCH_BYTES 8192

static_assert(sizeof(BlockQ8_0) == 34, "BlockQ8_0 is 2 + 32 bytes");
static_assert(MMQ8_PBB * 16 % 64 == 0, "full groups keep panels 64-byte aligned");

/* Packed activation: a full-layout group (16 slots = blocks). */
typedef struct {
    int8_t q[8][64]; /* q[k] lane t: quants 4k..4k+3 of block t */
    int32_t bias[16];
    float d[16];
} ActGroup;

/* Packed activation: a short last group (cnt = 1..8 blocks) is a "tail
 * image" shared by the 4 rows of a tile, kept in the area of the tile's
 * first row (rows 4t..4t+3: in row 4t's, after its full groups), lane
 * 4 j + r standing for (activation row 4t + j, weight row r): per block b,
 * q[b][k] lanes 4j..4j+3 = dword k of row 4t + j's block b (so one
 * vpdpbusd against 4 weight rows' dword k, broadcast, dots the 16 outputs
 * of a 4 x 4 tile at once), then bias[b] (-128 * sum of the block's
 * quants) and d[b] (fp32 scale) by lane. Each row writes only its own 4
 * lanes: rows of one tile may be packed by different threads. */
#define MMQ8_TAIL_BLOCK_BYTES (10 * 64) /* q[8], bias, d of one block */

/* Blocks of a short last group (1..8), or 0. */
static int64_t short_blocks(int64_t nb) { return nb % 16 <= 8 ? nb % 16 : 0; }

/* Bytes of one panel of rows of nb blocks. */
static size_t panel_bytes(int64_t nb) { return ((size_t)nb * MMQ8_PBB + 63) & ~(size_t)63; }

size_t mmq8_act_row_bytes(int K) {
    const int64_t nb = K / 32, ns = short_blocks(nb);
    return (size_t)((nb - ns + 15) / 16) * sizeof(ActGroup) + (size_t)ns * MMQ8_TAIL_BLOCK_BYTES;
}

size_t mmq8_wpack_bytes(long N, int K) {
    ASSERT(N >= 0 && K >= 0 && K % 32 == 0);
    return (size_t)((N + 3) / 4) * panel_bytes(K / 32);
}

void mmq8_wpack_row_f32(const void *wp, long N, int K, long r, float *dst) {
    ASSERT(K >= 0 && K % 32 == 0 && r >= 0 && r < N);
    const int64_t nb = K / 32, ns = short_blocks(nb), nf = nb - ns;
    const uint8_t *P = (const uint8_t *)wp + (size_t)(r / MMQ8_NW) * panel_bytes(nb);
    const int64_t rr = r % MMQ8_NW;
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *q, *h; /* quant j at q[qs * (j / 4) + j % 4]; the fp16 scale */
        int64_t qs;
        if (b < nf) {
            const int64_t b0 = b / 16 * 16, t = b - b0, c = nf - b0 < 16 ? nf - b0 : 16;
            const uint8_t *grp = P + MMQ8_PBB * (size_t)b0;
            q = grp + 32 * c * rr + 4 * t, qs = 4 * c;
            h = grp + 128 * c + 2 * (c * rr + t);
        } else { /* q[block][k][row] dwords, then d[block][row] */
            const uint8_t *tail = P + MMQ8_PBB * (size_t)nf;
            q = tail + 128 * (b - nf) + 4 * rr, qs = 16;
            h = tail + 128 * ns + 2 * (4 * (b - nf) + rr);
        }
        uint16_t d16;
        memcpy(&d16, h, sizeof d16);
        const float d = fp16_to_f32(d16);
        for (int j = 0; j < 32; j++)
            dst[32 * b + j] = (float)((int)q[qs * (j / 4) + j % 4] - 128) * d;
    }
}

#if defined(__x86_64__)
#include "core/simd.h"
#include <immintrin.h>

/* The AVX-512 table always holds the AVX-512 kernel; quant_ops() hands it
 * out exactly when the CPU (capped by CGPT_SIMD) runs it. No CPUID here:
 * under a hypervisor it costs microseconds, and this runs per matmul. */
bool mmq8_available(void) {
    return quant_ops(DTYPE_Q8_0)->vec_dot == quant_ops_at(DTYPE_Q8_0, SIMD_AVX512)->vec_dot;
}

SIMD_BEGIN_AVX512
#include "tensor/q8_avx512.h"

/* One group's slots in the full layout. */
static inline __attribute__((always_inline)) void load_full(const BlockQ8_0 *b, int64_t cnt,
                                                            __m512i o[8]) {
    __m512i r[8];
#pragma GCC unroll 8
    for (int p = 0; p < 8; p++)
        r[p] = q8v_load_pair(b, p, cnt);
    q8v_transpose8(r, o);
}

/* Activation: q, bias and d of one full-layout group from its slots o. */
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

/* Activation row j (0..3) of a tile: its short last group of cnt (1..8)
 * blocks at b into lanes 4j..4j+3 of the tile's tail image. */
static void pack_act_tail(uint8_t *img, int j, const BlockQ8_0 *b, int64_t cnt) {
    for (int64_t t = 0; t < cnt; t++) {
        uint8_t *blk = img + (size_t)t * MMQ8_TAIL_BLOCK_BYTES;
        int32_t sum = 0;
        for (int i = 0; i < 32; i++)
            sum += b[t].qs[i];
        const int32_t bias = -128 * sum;
        const float d = fp16_to_f32(b[t].d);
        for (int c = 0; c < 4; c++) {
            const int lane = 4 * j + c;
            for (int k = 0; k < 8; k++)
                memcpy(blk + 64 * k + 4 * lane, b[t].qs + 4 * k, 4);
            memcpy(blk + 512 + 4 * lane, &bias, 4);
            memcpy(blk + 576 + 4 * lane, &d, 4);
        }
    }
}

static void pack_act_avx512(uint8_t *base, size_t ld, int m, const void *row, int K) {
    const BlockQ8_0 *b = row;
    ActGroup *g = (ActGroup *)(base + (size_t)m * ld);
    const int64_t nb = K / 32, cnt = nb % 16;
    __m512i o[8];
    int64_t i = 0;
    for (; i + 16 <= nb; i += 16, g++) {
        load_full(b + i, 16, o);
        store_act(g, o, q8v_scales(b + i, 16));
    }
    if (!cnt)
        return;
    if (!q8v_short_cp(cnt)) {
        load_full(b + i, cnt, o);
        store_act(g, o, q8v_scales(b + i, cnt));
        return;
    }
    pack_act_tail(base + (size_t)(m & ~3) * ld + (size_t)(i / 16) * sizeof(ActGroup), m & 3, b + i,
                  cnt);
}

/* Weight slots o + 128 -> q[k] at q + 4 c k (c blocks; 16: whole registers). */
static inline __attribute__((always_inline)) void store_w(uint8_t *q, const __m512i o[8],
                                                          int64_t c) {
    const __m512i c128 = _mm512_set1_epi8((char)0x80);
#pragma GCC unroll 8
    for (int k = 0; k < 8; k++) {
        const __m512i v = _mm512_xor_si512(o[k], c128);
        if (c == 16)
            _mm512_storeu_si512(q + 64 * k, v);
        else
            _mm512_mask_storeu_epi32(q + 4 * c * k, q8v_mask(c), v);
    }
}

/* Full-layout group of c blocks of row r (b; NULL: zeros) into the panel's
 * group at grp. */
static inline __attribute__((always_inline)) void pack_group_row(uint8_t *grp, int r,
                                                                 const BlockQ8_0 *b, int64_t c) {
    uint8_t *q = grp + 32 * c * r, *d = grp + 128 * c + 2 * c * r;
    if (!b) {
        memset(q, 0, (size_t)(32 * c));
        memset(d, 0, (size_t)(2 * c));
        return;
    }
    __m512i o[8];
    load_full(b, c, o);
    store_w(q, o, c);
    const __m256i h = q8v_scales_h(b, c);
    if (c == 16)
        _mm256_storeu_si256((__m256i *)d, h);
    else
        _mm256_mask_storeu_epi16(d, q8v_mask(c), h);
}

/* The panel P of rows row[0..4) (NULL: zero rows) of nb blocks, all but
 * the padding. */
static void pack_panel(uint8_t *P, const BlockQ8_0 *const row[MMQ8_NW], int64_t nb) {
    const int64_t ns = short_blocks(nb), nf = nb - ns;
    int64_t b0 = 0;
    for (; b0 + 16 <= nf; b0 += 16)
        for (int r = 0; r < MMQ8_NW; r++)
            pack_group_row(P + MMQ8_PBB * (size_t)b0, r, row[r] ? row[r] + b0 : NULL, 16);
    if (b0 < nf)
        for (int r = 0; r < MMQ8_NW; r++)
            pack_group_row(P + MMQ8_PBB * (size_t)b0, r, row[r] ? row[r] + b0 : NULL, nf - b0);
    /* the short group: q[block][k][row] dwords (+ 128), then d[block][row] */
    uint8_t *q = P + MMQ8_PBB * (size_t)nf, *d = q + 128 * ns;
    for (int64_t t = 0; t < ns; t++)
        for (int r = 0; r < MMQ8_NW; r++) {
            uint8_t *qt = q + 128 * t + 4 * r, *dt = d + 2 * (4 * t + r);
            if (!row[r]) {
                for (int k = 0; k < 8; k++)
                    memset(qt + 16 * k, 0, 4);
                memset(dt, 0, 2);
                continue;
            }
            const BlockQ8_0 *b = row[r] + nf + t;
            for (int k = 0; k < 8; k++)
                for (int i = 0; i < 4; i++)
                    qt[16 * k + i] = (uint8_t)(b->qs[4 * k + i] + 128);
            memcpy(dt, &b->d, 2);
        }
}

/* One full-layout group (c blocks at grp; part: c < 16, masked loads) of
 * a 4 x NA tile into acc; pa[j]: the group of activation row j. */
static inline __attribute__((always_inline)) void
tile_group(__m512 acc[MMQ8_NW][MMQ8_NA], const uint8_t *grp, const ActGroup *const pa[MMQ8_NA],
           int64_t c, const int NA, const bool part) {
    const __mmask16 m = part ? q8v_mask(c) : (__mmask16)0xffff;
    const int64_t qk = part ? 4 * c : 64; /* bytes from one q[k] to the next */
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
            const uint8_t *wq = grp + (8 * r + k) * qk;
            const __m512i wv = part ? _mm512_maskz_loadu_epi32(m, wq) : _mm512_loadu_si512(wq);
#pragma GCC unroll 4
            for (int j = 0; j < NA; j++)
                s[r][j] = _mm512_dpbusd_epi32(s[r][j], wv, av[j]);
        }
    }
    __m512 dw[MMQ8_NW];
#pragma GCC unroll 4
    for (int r = 0; r < MMQ8_NW; r++) {
        const uint8_t *wd = grp + 32 * qk + 2 * c * r;
        dw[r] = _mm512_cvtph_ps(part ? _mm256_maskz_loadu_epi16(m, wd)
                                     : _mm256_loadu_si256((const __m256i *)wd));
    }
#pragma GCC unroll 4
    for (int j = 0; j < NA; j++) {
        const __m512 dy = _mm512_loadu_ps(pa[j]->d);
#pragma GCC unroll 4
        for (int r = 0; r < MMQ8_NW; r++)
            acc[r][j] = q8v_fold(acc[r][j], s[r][j], _mm512_mul_ps(dw[r], dy), m);
    }
}

/* The full-layout groups of panel P (rows of nb blocks) of a 4 x NA tile
 * into acc; pa[j]: activation row j. */
static inline __attribute__((always_inline)) void tile_full(__m512 acc[MMQ8_NW][MMQ8_NA],
                                                            const uint8_t *P,
                                                            const ActGroup *pa[MMQ8_NA], int64_t nb,
                                                            const int NA) {
    const int64_t nf = nb - short_blocks(nb);
    int64_t b0 = 0;
    for (; b0 + 16 <= nf; b0 += 16) {
        tile_group(acc, P + MMQ8_PBB * (size_t)b0, pa, 16, NA, false);
#pragma GCC unroll 4
        for (int j = 0; j < NA; j++)
            pa[j]++;
    }
    if (b0 < nf)
        tile_group(acc, P + MMQ8_PBB * (size_t)b0, pa, nf - b0, NA, true);
}

/* The short last group (cnt = 1..8 blocks: panel tail T, activation tail
 * image img) of a 4 x NA tile: the contract's T of output (r, j) in lane
 * 4 j + r, from v_b = (float)s_b * (dw * da) per block (+0 past cnt):
 * (v0 + v2) + (v1 + v3), and + ((v4 + v6) + (v5 + v7)) when cnt > 4.
 * Lanes of rows j >= NA are masked to 0 (their image is never written). */
static inline __attribute__((always_inline)) __m512 tile_tail(const uint8_t *T, const uint8_t *img,
                                                              int64_t cnt, const int NA) {
    const __mmask16 mj = NA == 4 ? (__mmask16)0xffff : (__mmask16)((1u << (4 * NA)) - 1);
    __m512 v[8];
#pragma GCC unroll 8
    for (int t = 0; t < 8; t++)
        v[t] = _mm512_setzero_ps();
#pragma GCC unroll 8
    for (int t = 0; t < 8; t++) {
        if (t >= cnt)
            break;
        const uint8_t *blk = img + (size_t)t * MMQ8_TAIL_BLOCK_BYTES, *wq = T + 128 * t;
        __m512i s0 = _mm512_maskz_loadu_epi32(mj, blk + 512), s1 = _mm512_setzero_si512();
#pragma GCC unroll 4
        for (int k = 0; k < 8; k += 2) {
            s0 = _mm512_dpbusd_epi32(
                s0, _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(wq + 16 * k))),
                _mm512_maskz_loadu_epi32(mj, blk + 64 * k));
            s1 = _mm512_dpbusd_epi32(
                s1, _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(wq + 16 * (k + 1)))),
                _mm512_maskz_loadu_epi32(mj, blk + 64 * (k + 1)));
        }
        const __m128i h = _mm_loadl_epi64((const __m128i *)(T + 128 * cnt + 8 * t));
        const __m512 dw = _mm512_broadcast_f32x4(_mm_cvtph_ps(h));
        v[t] = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(s0, s1)),
                             _mm512_mul_ps(dw, _mm512_maskz_loadu_ps(mj, blk + 576)));
    }
    const __m512 lo = _mm512_add_ps(_mm512_add_ps(v[0], v[2]), _mm512_add_ps(v[1], v[3]));
    if (cnt <= 4)
        return lo;
    return _mm512_add_ps(lo, _mm512_add_ps(_mm512_add_ps(v[4], v[6]), _mm512_add_ps(v[5], v[7])));
}

/* q8v_hsum of 4 accumulators: lane r = q8v_hsum(a[r]), the same additions. */
static inline __attribute__((always_inline)) __m512 hsum4(__m512 a0, __m512 a1, __m512 a2,
                                                          __m512 a3) {
    /* lanes 0-7: a0[i] + a0[i+8], 8-15: a1[...]; y: a2, a3 */
    const __m512 x =
        _mm512_add_ps(_mm512_shuffle_f32x4(a0, a1, 0x44), _mm512_shuffle_f32x4(a0, a1, 0xee));
    const __m512 y =
        _mm512_add_ps(_mm512_shuffle_f32x4(a2, a3, 0x44), _mm512_shuffle_f32x4(a2, a3, 0xee));
    /* 128-bit lane r: a_r's i + (i+4) */
    __m512 z = _mm512_add_ps(_mm512_shuffle_f32x4(x, y, 0x88), _mm512_shuffle_f32x4(x, y, 0xdd));
    z = _mm512_add_ps(z, _mm512_permute_ps(z, 0x4e)); /* (0 + 2), (1 + 3) */
    z = _mm512_add_ps(z, _mm512_permute_ps(z, 0xb1)); /* then 0 + 1 */
    return _mm512_permutexvar_ps(_mm512_setr_epi32(0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
                                 z);
}

/* The 4 x NA tile of panel P: out[j*ldo + r] for weight rows r < nw of the
 * panel and activation rows j < NA starting at 'act'. */
static inline __attribute__((always_inline)) void tile(const uint8_t *P, const uint8_t *act,
                                                       size_t act_ld, int64_t nb, float *out,
                                                       size_t ldo, int nw, const float *bias,
                                                       const int NA) {
    __m512 acc[MMQ8_NW][MMQ8_NA];
#pragma GCC unroll 4
    for (int r = 0; r < MMQ8_NW; r++)
#pragma GCC unroll 4
        for (int j = 0; j < MMQ8_NA; j++)
            acc[r][j] = _mm512_setzero_ps();
    const ActGroup *pa[MMQ8_NA];
#pragma GCC unroll 4
    for (int j = 0; j < NA; j++)
        pa[j] = (const ActGroup *)(act + (size_t)j * act_ld);
    tile_full(acc, P, pa, nb, NA); /* leaves pa[j] at the last group */
    __m512 o;                      /* lane 4 j + r */
    if (NA == 1) {
        o = hsum4(acc[0][0], acc[1][0], acc[2][0], acc[3][0]);
    } else {
        __m512 a16[16];
#pragma GCC unroll 4
        for (int r = 0; r < MMQ8_NW; r++)
#pragma GCC unroll 4
            for (int j = 0; j < MMQ8_NA; j++)
                a16[4 * r + j] = acc[r][j];
        o = q8v_hsum16(a16);
    }
    const int64_t ns = short_blocks(nb);
    if (ns)
        o = _mm512_add_ps(
            o, tile_tail(P + MMQ8_PBB * (size_t)(nb - ns), (const uint8_t *)pa[0], ns, NA));
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

typedef void (*TileFn)(const uint8_t *, const uint8_t *, size_t, int64_t, float *, size_t, int,
                       const float *);
#define MMQ8_TILE(na)                                                                              \
    static void tile##na(const uint8_t *P, const uint8_t *a, size_t ld, int64_t nb, float *o,      \
                         size_t ldo, int nw, const float *bias) {                                  \
        tile(P, a, ld, nb, o, ldo, nw, bias, na);                                                  \
    }
MMQ8_TILE(1)
MMQ8_TILE(2)
MMQ8_TILE(3)
MMQ8_TILE(4)

/* Every tile of one panel (weight rows [n, n + nw)) with activation rows [m0, m1). */
static void panel_tiles(const uint8_t *P, const uint8_t *act, size_t act_ld, long m0, long m1,
                        int64_t nb, float *out, size_t ldo, long n, int nw, const float *bias) {
    static const TileFn TILES[MMQ8_NA + 1] = {NULL, tile1, tile2, tile3, tile4};
    const float *bn = bias ? bias + n : NULL;
    for (long m = m0; m < m1; m += MMQ8_NA) {
        const int na = m1 - m < MMQ8_NA ? (int)(m1 - m) : MMQ8_NA;
        TILES[na](P, act + (size_t)m * act_ld, act_ld, nb, out + (size_t)m * ldo + n, ldo, nw, bn);
    }
}

/* Activation rows per pass over the weights (a multiple of MMQ8_NA). */
static long act_chunk(size_t act_ld) {
    const long chunk = (long)(MMQ8_ACT_CHUNK_BYTES / act_ld) / MMQ8_NA * MMQ8_NA;
    return chunk < MMQ8_NA ? MMQ8_NA : chunk;
}

static void rows_avx512(float *out, size_t ldo, const void *w, size_t w_row_bytes, long n0, long n1,
                        const void *act, size_t act_ld, int M, int K, const float *bias) {
    const int64_t nb = K / 32;
    _Alignas(64) uint8_t panel[MMQ8_MAX_PANEL_BYTES];
    const long chunk = act_chunk(act_ld);
    for (long m0 = 0; m0 < M; m0 += chunk) {
        const long m1 = m0 + chunk < M ? m0 + chunk : M;
        for (long n = n0; n < n1; n += MMQ8_NW) {
            const int nw = n1 - n < MMQ8_NW ? (int)(n1 - n) : MMQ8_NW;
            const uint8_t *wn = (const uint8_t *)w + (size_t)n * w_row_bytes;
            const BlockQ8_0 *row[MMQ8_NW];
            for (int r = 0; r < MMQ8_NW; r++)
                row[r] = r < nw ? (const BlockQ8_0 *)(wn + (size_t)r * w_row_bytes) : NULL;
            pack_panel(panel, row, nb);
            /* the next panel's rows come from memory while this one computes */
            if (n + 2 * MMQ8_NW <= n1)
                for (size_t o = 0; o < MMQ8_NW * w_row_bytes; o += 64)
                    _mm_prefetch((const char *)wn + MMQ8_NW * w_row_bytes + o, _MM_HINT_T0);
            panel_tiles(panel, act, act_ld, m0, m1, nb, out, ldo, n, nw, bias);
        }
    }
}

static void wpack_avx512(uint8_t *dst, const uint8_t *w, size_t w_row_bytes, long N, int64_t nb,
                         long n0, long n1) {
    const size_t pb = panel_bytes(nb), used = MMQ8_PBB * (size_t)nb;
    for (long n = n0; n < n1; n += MMQ8_NW) {
        uint8_t *P = dst + (size_t)(n / MMQ8_NW) * pb;
        const int nw = N - n < MMQ8_NW ? (int)(N - n) : MMQ8_NW;
        const BlockQ8_0 *row[MMQ8_NW];
        for (int r = 0; r < MMQ8_NW; r++)
            row[r] = r < nw ? (const BlockQ8_0 *)(w + (size_t)(n + r) * w_row_bytes) : NULL;
        pack_panel(P, row, nb);
        memset(P + used, 0, pb - used);
    }
}

static void rows_wpacked_avx512(float *out, size_t ldo, const uint8_t *wp, long n0, long n1,
                                const void *act, size_t act_ld, int M, int K, const float *bias) {
    const int64_t nb = K / 32;
    const size_t pb = panel_bytes(nb);
    const long chunk = act_chunk(act_ld);
    const uint8_t *first = wp + (size_t)(n0 / MMQ8_NW) * pb;
    const uint8_t *end = first + (size_t)((n1 - n0 + MMQ8_NW - 1) / MMQ8_NW) * pb;
    for (long m0 = 0; m0 < M; m0 += chunk) {
        const long m1 = m0 + chunk < M ? m0 + chunk : M;
        /* panels stream in order: keep MMQ8_PREFETCH_BYTES in flight */
        const uint8_t *pf = first + MMQ8_PREFETCH_BYTES;
        const uint8_t *P = first;
        for (long n = n0; n < n1; n += MMQ8_NW, P += pb) {
            for (; pf < P + MMQ8_PREFETCH_BYTES + pb && pf < end; pf += 64)
                _mm_prefetch((const char *)pf, _MM_HINT_T0);
            const int nw = n1 - n < MMQ8_NW ? (int)(n1 - n) : MMQ8_NW;
            panel_tiles(P, act, act_ld, m0, m1, nb, out, ldo, n, nw, bias);
        }
    }
}
SIMD_END

void mmq8_pack_act(void *base, size_t ld, int m, const void *row, int K) {
    ASSERT(K % 32 == 0 && K <= MMQ8_MAX_K && m >= 0);
    pack_act_avx512(base, ld, m, row, K);
}

void mmq8_rows(float *out, size_t ldo, const void *w, size_t w_row_bytes, long n0, long n1,
               const void *act, size_t act_ld, int M, int K, const float *bias) {
    ASSERT(K % 32 == 0 && K <= MMQ8_MAX_K);
    rows_avx512(out, ldo, w, w_row_bytes, n0, n1, act, act_ld, M, K, bias);
}

void mmq8_wpack(void *dst, const void *w, size_t w_row_bytes, long N, int K, long n0, long n1) {
    ASSERT(K > 0 && K % 32 == 0 && K <= MMQ8_MAX_K);
    ASSERT(0 <= n0 && n0 <= n1 && n1 <= N && n0 % MMQ8_NW == 0 && (n1 % MMQ8_NW == 0 || n1 == N));
    ASSERT((uintptr_t)dst % 64 == 0);
    wpack_avx512(dst, w, w_row_bytes, N, K / 32, n0, n1);
}

void mmq8_rows_wpacked(float *out, size_t ldo, const void *wp, long N, long n0, long n1,
                       const void *act, size_t act_ld, int M, int K, const float *bias) {
    ASSERT(K > 0 && K % 32 == 0 && K <= MMQ8_MAX_K);
    ASSERT(0 <= n0 && n0 <= n1 && n1 <= N && n0 % MMQ8_NW == 0 && M >= 0);
    rows_wpacked_avx512(out, ldo, wp, n0, n1, act, act_ld, M, K, bias);
}

#else /* not x86: no packed kernels */

bool mmq8_available(void) { return false; }
void mmq8_pack_act(void *base, size_t ld, int m, const void *row, int K) {
    (void)base, (void)ld, (void)m, (void)row, (void)K;
    ASSERT(0);
}
void mmq8_rows(float *out, size_t ldo, const void *w, size_t w_row_bytes, long n0, long n1,
               const void *act, size_t act_ld, int M, int K, const float *bias) {
    (void)out, (void)ldo, (void)w, (void)w_row_bytes, (void)n0, (void)n1, (void)act, (void)act_ld,
        (void)M, (void)K, (void)bias;
    ASSERT(0);
}
void mmq8_wpack(void *dst, const void *w, size_t w_row_bytes, long N, int K, long n0, long n1) {
    (void)dst, (void)w, (void)w_row_bytes, (void)N, (void)K, (void)n0, (void)n1;
    ASSERT(0);
}
void mmq8_rows_wpacked(float *out, size_t ldo, const void *wp, long N, long n0, long n1,
                       const void *act, size_t act_ld, int M, int K, const float *bias) {
    (void)out, (void)ldo, (void)wp, (void)N, (void)n0, (void)n1, (void)act, (void)act_ld, (void)M,
        (void)K, (void)bias;
    ASSERT(0);
}

#endif
