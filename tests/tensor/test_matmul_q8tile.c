/* test_matmul_q8tile.c - Q8_0 batched matmul (the packed AVX-512 VNNI tiles
 * of matmul_q8.c where the CPU has them) against its two oracles:
 *   bit for bit - every output equals the single vec_dot of its weight row
 *       and its activation row quantized alone (+ bias), whatever M, the
 *       batch position, the tile edges or the thread count (memcmp);
 *   in value    - matmul_ref (dequantized weights, double accumulation).
 * Shapes: M in 1..9, 16, 17, 33; N not a multiple of the 4-row panels; K/32
 * with short last groups of every layout (1, 2, 3, 5, 9, 18, 48, ...).
 * The pre-packed weights (mmq8_wpack, mmq8_rows_wpacked) against the same
 * vec_dot oracle over a grid of M x N x K, row sub-ranges and packing in
 * parts; their row read-back against dequant; their size against the
 * documented formula. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../testutil.h"
#include "core/fp16.h"
#include "core/rng.h"
#include "core/tpool.h"
#include "tensor/matmul.h"
#include "tensor/matmul_q8.h"
#include "tensor/quant.h"
#include "tensor/quant_blocks_legacy.h"

static const int MS[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 16, 17, 33};
#define N_MS ((int)(sizeof MS / sizeof MS[0]))

static float *randv(Rng *r, int64_t n, float scale) {
    float *v = malloc((size_t)(n ? n : 1) * sizeof(float));
    cr_assert(v);
    for (int64_t i = 0; i < n; i++)
        v[i] = rng_normal(r) * scale;
    return v;
}

/* N rows of K as Q8_0 through quantize (the weights a model file holds). */
static uint8_t *quant_rows(const float *x, int N, int K) {
    const size_t rb = (size_t)dtype_row_bytes(DTYPE_Q8_0, K);
    uint8_t *w = malloc(rb * (size_t)N);
    cr_assert(w);
    for (int n = 0; n < N; n++)
        quant_ops(DTYPE_Q8_0)->quantize(x + (size_t)n * K, w + (size_t)n * rb, K);
    return w;
}

/* The oracle: out[m*N + n] = vec_dot(W row n, activation row m) (+ bias[n]). */
static void rowwise(float *out, const float *x, const uint8_t *w, const float *bias, int M, int N,
                    int K) {
    const QuantOps *q = quant_ops(DTYPE_Q8_0);
    const size_t rb = (size_t)dtype_row_bytes(DTYPE_Q8_0, K);
    uint8_t *a = malloc(rb);
    cr_assert(a);
    for (int m = 0; m < M; m++) {
        q->quantize(x + (size_t)m * K, a, K);
        for (int n = 0; n < N; n++) {
            float s;
            q->vec_dot(K, &s, w + (size_t)n * rb, a);
            if (bias)
                s += bias[n];
            out[(size_t)m * N + n] = s;
        }
    }
    free(a);
}

/* First differing float between got and want (memcmp), or -1. */
static long first_diff(const float *got, const float *want, long n) {
    for (long i = 0; i < n; i++)
        if (memcmp(&got[i], &want[i], sizeof(float)) != 0)
            return i;
    return -1;
}

/* matmul_forward on 'tp' with its scratch at a deliberately odd address. */
static void run_matmul(TPool *tp, float *out, const float *x, const uint8_t *w, const float *bias,
                       int M, int N, int K, int scratch_off) {
    const size_t sb = matmul_scratch_bytes(DTYPE_Q8_0, M, K);
    uint8_t *buf = malloc(sb + 64);
    cr_assert(buf);
    memset(buf, 0xa5, sb + 64);
    matmul_forward(tp, out, x, w, DTYPE_Q8_0, bias, M, N, K, buf + scratch_off);
    free(buf);
}

/* Bit-identity to rowwise() and closeness to matmul_ref for one shape;
 * returns the number of outputs compared. */
static long check_shape(TPool *tp, Rng *r, int M, int N, int K, bool with_bias) {
    float *x = randv(r, (int64_t)M * K, 1.0f), *wf = randv(r, (int64_t)N * K, 0.5f);
    float *bias = with_bias ? randv(r, N, 0.25f) : NULL;
    /* a few rows with outliers, so blocks differ in scale by orders of magnitude */
    for (int i = 0; i < K && M > 1; i += 37)
        x[(size_t)(M - 1) * K + i] *= 50.0f;
    uint8_t *w = quant_rows(wf, N, K);
    const long n = (long)M * N;
    float *got = malloc((size_t)n * sizeof(float)), *want = malloc((size_t)n * sizeof(float));
    float *ref = malloc((size_t)n * sizeof(float));
    cr_assert(got && want && ref);
    rowwise(want, x, w, bias, M, N, K);
    run_matmul(tp, got, x, w, bias, M, N, K, (M + N) % 17);
    long at = first_diff(got, want, n);
    cr_expect(at < 0,
              "Q8_0 matmul M %d N %d K %d bias %d: out[%ld] (row %ld col %ld) got %.9g, "
              "vec_dot gives %.9g",
              M, N, K, with_bias, at, at / (at < 0 ? 1 : N), at % N, at < 0 ? 0 : got[at],
              at < 0 ? 0 : want[at]);
    /* closeness to the naive twin, within the activation quantization error:
     * |x - q d16| <= d/2 + 127 |d - d16| < 0.6 d per element, d = amax/127 of
     * its block; plus float rounding */
    matmul_ref(ref, x, w, DTYPE_Q8_0, bias, M, N, K);
    float *wd = malloc((size_t)N * K * sizeof(float));
    cr_assert(wd);
    quant_ops(DTYPE_Q8_0)->dequant(w, wd, (int64_t)N * K);
    for (int m = 0; m < M; m++)
        for (int c = 0; c < N; c++) {
            double mag = 0, qerr = 0;
            for (int k0 = 0; k0 < K; k0 += 32) {
                double amax = 0;
                for (int k = k0; k < k0 + 32; k++)
                    amax = fmax(amax, fabs(x[(size_t)m * K + k]));
                for (int k = k0; k < k0 + 32; k++) {
                    mag += fabs((double)x[(size_t)m * K + k] * wd[(size_t)c * K + k]);
                    qerr += 0.6 * amax / 127 * fabs(wd[(size_t)c * K + k]);
                }
            }
            const double g = got[(size_t)m * N + c], e = ref[(size_t)m * N + c];
            if (!(fabs(g - e) <= qerr + 1e-5 * mag + 1e-5)) {
                cr_expect(0, "Q8_0 matmul M %d N %d K %d: [%d,%d] got %.8g, ref %.8g (bound %.4g)",
                          M, N, K, m, c, g, e, qerr);
                m = M;
                break;
            }
        }
    free(x), free(wf), free(bias), free(w), free(got), free(want), free(ref), free(wd);
    return n;
}

Test(matmul_q8tile, bit_identical_to_vec_dot) {
    static const int NBS[] = {1, 2, 3, 5, 18, 48};
    static const int NS[] = {1, 3, 5, 6, 7, 13};
    Rng r;
    rng_seed(&r, 801);
    TPool *tp = tpool_new(2);
    cr_assert(tp);
    long outputs = 0;
    int shapes = 0;
    for (size_t ki = 0; ki < sizeof NBS / sizeof NBS[0]; ki++)
        for (int mi = 0; mi < N_MS; mi++) {
            const int N = NS[(ki + (size_t)mi) % (sizeof NS / sizeof NS[0])];
            outputs += check_shape(tp, &r, MS[mi], N, 32 * NBS[ki], (mi + (int)ki) % 2 == 0);
            shapes++;
        }
    cr_log_info("q8tile: %d shapes, %ld outputs bit-identical", shapes, outputs);
    tpool_free(tp);
}

/* Every size of a short last group (1..15 blocks) and both sides of 16. */
Test(matmul_q8tile, every_last_group) {
    Rng r;
    rng_seed(&r, 802);
    TPool *tp = tpool_new(3);
    cr_assert(tp);
    for (int nb = 1; nb <= 34; nb++)
        check_shape(tp, &r, 5 + nb % 4, 9 + nb % 5, 32 * nb, nb % 3 == 0);
    tpool_free(tp);
}

/* Larger N (several panels per thread, uneven split) and M past one tile
 * row, on 1..4 threads: the same bits every time. */
Test(matmul_q8tile, thread_count_invisible) {
    Rng r;
    rng_seed(&r, 803);
    const int M = 11, N = 77, K = 32 * 18;
    float *x = randv(&r, (int64_t)M * K, 1.0f), *wf = randv(&r, (int64_t)N * K, 0.3f);
    uint8_t *w = quant_rows(wf, N, K);
    float *o1 = malloc(sizeof(float) * M * N), *o2 = malloc(sizeof(float) * M * N);
    float *want = malloc(sizeof(float) * M * N);
    cr_assert(o1 && o2 && want);
    rowwise(want, x, w, NULL, M, N, K);
    run_matmul(NULL, o1, x, w, NULL, M, N, K, 0);
    cr_expect(first_diff(o1, want, (long)M * N) < 0, "no pool differs from vec_dot");
    for (int nt = 2; nt <= 4; nt++) {
        TPool *tp = tpool_new(nt);
        cr_assert(tp);
        run_matmul(tp, o2, x, w, NULL, M, N, K, nt);
        cr_expect(first_diff(o1, o2, (long)M * N) < 0, "%d threads differ from 1", nt);
        tpool_free(tp);
    }
    free(x), free(wf), free(w), free(o1), free(o2), free(want);
}

/* Raw blocks: every weight byte (-128 included), activation quants over
 * [-127, 127], scales across the fp16 range (tiny, negative, zero). The
 * packed kernels called directly, so they are tested even where matmul
 * would not pick them. */
Test(matmul_q8tile, packed_kernels_raw_blocks) {
    if (!mmq8_available()) {
        cr_log_info("q8tile: no AVX-512 VNNI here; the packed kernels are not used");
        return;
    }
    Rng r;
    rng_seed(&r, 804);
    static const int NBS[] = {1, 4, 7, 8, 9, 16, 18, 31, 48};
    const QuantOps *q = quant_ops(DTYPE_Q8_0);
    for (size_t ki = 0; ki < sizeof NBS / sizeof NBS[0]; ki++) {
        const int nb = NBS[ki], K = 32 * nb, M = 7, N = 10;
        BlockQ8_0 *w = malloc(sizeof(BlockQ8_0) * (size_t)nb * N);
        BlockQ8_0 *a = malloc(sizeof(BlockQ8_0) * (size_t)nb * M);
        const size_t ld = mmq8_act_row_bytes(K);
        uint8_t *pk = aligned_alloc(64, ld * M);
        float *got = malloc(sizeof(float) * M * N);
        cr_assert(w && a && pk && got);
        for (int i = 0; i < nb * N; i++) {
            for (int j = 0; j < 32; j++)
                w[i].qs[j] = (int8_t)(rng_u64(&r) & 0xff);
            const float scale = i % 11 == 0 ? 0.0f : (i % 5 == 0 ? 1e-6f : 0.02f);
            w[i].d = fp32_to_f16(rng_normal(&r) * scale);
        }
        for (int i = 0; i < nb * M; i++) {
            for (int j = 0; j < 32; j++)
                a[i].qs[j] = (int8_t)((int)(rng_u64(&r) % 255) - 127);
            a[i].d = fp32_to_f16(fabsf(rng_normal(&r)) * (i % 7 == 0 ? 3e-5f : 0.01f));
        }
        for (int m = 0; m < M; m++)
            mmq8_pack_act(pk, ld, m, a + (size_t)m * nb, K);
        mmq8_rows(got, N, w, sizeof(BlockQ8_0) * nb, 0, N, pk, ld, M, K, NULL);
        for (int m = 0; m < M; m++)
            for (int n = 0; n < N; n++) {
                float want;
                q->vec_dot(K, &want, w + (size_t)n * nb, a + (size_t)m * nb);
                cr_expect(memcmp(&want, &got[m * N + n], sizeof(float)) == 0,
                          "packed K %d: [%d,%d] got %.9g, vec_dot %.9g", K, m, n, got[m * N + n],
                          want);
            }
        /* a sub-range of rows that starts off a panel boundary */
        mmq8_rows(got, N, w, sizeof(BlockQ8_0) * nb, 3, 9, pk, ld, 2, K, NULL);
        for (int m = 0; m < 2; m++)
            for (int n = 3; n < 9; n++) {
                float want;
                q->vec_dot(K, &want, w + (size_t)n * nb, a + (size_t)m * nb);
                cr_expect(memcmp(&want, &got[m * N + n], sizeof(float)) == 0,
                          "packed K %d rows 3..9: [%d,%d] got %.9g, vec_dot %.9g", K, m, n,
                          got[m * N + n], want);
            }
        free(w), free(a), free(pk), free(got);
    }
}

/* The batch path adds the bias after the dot, exactly as the row path. */
Test(matmul_q8tile, hand_bias) {
    const int K = 32, N = 5, M = 2;
    float x[64], wf[5 * 32], bias[5] = {1, -2, 0.5f, 1e-3f, 100};
    for (int k = 0; k < K; k++) {
        x[k] = (float)(k - 16) / 16;
        x[K + k] = k == 3 ? 2.0f : 0.0f;
        for (int n = 0; n < N; n++)
            wf[n * K + k] = n == 0 ? 1.0f : (n == 1 ? -0.5f : (float)((k * (n + 1)) % 7 - 3) / 3);
    }
    uint8_t *w = quant_rows(wf, N, K);
    float got[10], want[10];
    rowwise(want, x, w, bias, M, N, K);
    run_matmul(NULL, got, x, w, bias, M, N, K, 0);
    cr_expect(first_diff(got, want, M * N) < 0);
    /* row 0 . W row 0 = sum (k-16)/16 = -1 (exact in Q8_0: x scale 1/127 * 127 = 1) */
    cr_expect(check_close("hand_bias", got, (float[]){-1 + 1.0f}, 1, 1e-2f, 0));
    /* row 1 picks k = 3 twice: W row 1 is -0.5 -> 2 * -0.5 - 2 = -3 */
    cr_expect(check_close("hand_bias row 1", &got[N + 1], (float[]){-3.0f}, 1, 1e-2f, 0));
    free(w);
}

/* ---- Pre-packed weights (mmq8_wpack, mmq8_rows_wpacked) ---- */

#define WP_MAX_NB 48
#define WP_MAX_N 67
#define WP_MAX_M 64

/* Raw random Q8_0 blocks: weights with every byte (-128 included) and
 * scales across the fp16 range (zero, tiny, negative); activations over
 * [-127, 127]. */
static void raw_blocks(Rng *r, BlockQ8_0 *b, long n, bool weights) {
    for (long i = 0; i < n; i++) {
        for (int j = 0; j < 32; j++)
            b[i].qs[j] =
                weights ? (int8_t)(rng_u64(r) & 0xff) : (int8_t)((int)(rng_u64(r) % 255) - 127);
        if (weights) {
            const float scale = i % 11 == 0 ? 0.0f : (i % 5 == 0 ? 1e-6f : 0.02f);
            b[i].d = fp32_to_f16(rng_normal(r) * scale);
        } else {
            b[i].d = fp32_to_f16(fabsf(rng_normal(r)) * (i % 7 == 0 ? 3e-5f : 0.01f));
        }
    }
}

/* The documented size: ceil(N / 4) panels of 4 Q8_0 rows, each rounded up to 64 bytes. */
static size_t wpack_size(long N, int K) {
    const size_t panel = 4 * (size_t)dtype_row_bytes(DTYPE_Q8_0, K);
    return (size_t)((N + 3) / 4) * ((panel + 63) / 64 * 64);
}

/* A pre-packed buffer of exactly mmq8_wpack_bytes (so ASan sees overruns),
 * filled with 'fill' before packing rows [0, split) and [split, N). */
static uint8_t *wpack_new(const BlockQ8_0 *w, size_t w_row_bytes, long N, int K, long split,
                          int fill) {
    const size_t n = mmq8_wpack_bytes(N, K);
    uint8_t *wp = aligned_alloc(64, n);
    cr_assert(wp);
    memset(wp, fill, n);
    if (split > 0)
        mmq8_wpack(wp, w, w_row_bytes, N, K, 0, split);
    if (split < N)
        mmq8_wpack(wp, w, w_row_bytes, N, K, split, N);
    return wp;
}

/* Checks out (M rows, ldo apart) against the oracle table want[m][n]
 * (WP_MAX_N apart) over columns [n0, n1) and that every other float of
 * the rows kept its sentinel bits; returns the number of mismatches. */
static long check_out(const float *out, size_t ldo, const float *want, int M, long n0, long n1,
                      const char *what, int N, int nb, bool bias) {
    const uint32_t sentinel = 0x7fc0dead;
    long bad = 0;
    for (int m = 0; m < M; m++)
        for (size_t n = 0; n < ldo; n++) {
            const float g = out[(size_t)m * ldo + n];
            const bool inside = (long)n >= n0 && (long)n < n1;
            const bool ok = inside ? memcmp(&g, &want[m * WP_MAX_N + (long)n], sizeof g) == 0
                                   : memcmp(&g, &sentinel, sizeof g) == 0;
            if (!ok && bad++ == 0)
                cr_expect(0,
                          "wpacked %s M %d N %d K/32 %d bias %d rows [%ld,%ld): out[%d][%zu] got "
                          "%.9g, want %s %.9g",
                          what, M, N, nb, bias, n0, n1, m, n, g, inside ? "vec_dot" : "untouched",
                          inside ? want[m * WP_MAX_N + (long)n] : 0.0);
        }
    return bad;
}

static void fill_sentinel(float *out, size_t n) {
    const uint32_t sentinel = 0x7fc0dead;
    for (size_t i = 0; i < n; i++)
        memcpy(&out[i], &sentinel, sizeof sentinel);
}

/* Every M x N x K of the brief's grid, with and without bias, whole and
 * sub-ranges of rows, packed in one call and in two: the same bits as
 * vec_dot of the original row, rows outside [n0, n1) never written. */
Test(matmul_q8tile, wpacked_bit_identical) {
    if (!mmq8_available()) {
        cr_skip("q8tile: no AVX-512 VNNI here; no pre-packed kernels");
        return;
    }
    static const int WMS[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 16, 17, 33, 64};
    static const int WNS[] = {1, 3, 4, 5, 7, 13, 64 + 3};
    static const int WNBS[] = {1, 2, 3, 4, 5, 8, 9, 15, 16, 17, 18, 31, 32, 33, 48};
    const int n_m = (int)(sizeof WMS / sizeof WMS[0]), n_n = (int)(sizeof WNS / sizeof WNS[0]);
    const int n_k = (int)(sizeof WNBS / sizeof WNBS[0]);
    Rng r;
    rng_seed(&r, 805);
    const QuantOps *q = quant_ops(DTYPE_Q8_0);
    const size_t wrb = sizeof(BlockQ8_0) * WP_MAX_NB; /* rows of the big matrix: a stride */
    BlockQ8_0 *w = malloc(wrb * WP_MAX_N), *a = malloc(wrb * WP_MAX_M);
    float *want = malloc(sizeof(float) * WP_MAX_M * WP_MAX_N);
    float *bias = randv(&r, WP_MAX_N, 0.25f), *wantb = malloc(sizeof(float) * WP_MAX_M * WP_MAX_N);
    const size_t ldo_max = WP_MAX_N + 5;
    float *out = malloc(sizeof(float) * ldo_max * WP_MAX_M);
    float *row = malloc(sizeof(float) * 32 * WP_MAX_NB),
          *rref = malloc(sizeof(float) * 32 * WP_MAX_NB);
    cr_assert(w && a && want && bias && wantb && out && row && rref);
    raw_blocks(&r, w, (long)WP_MAX_NB * WP_MAX_N, true);
    raw_blocks(&r, a, (long)WP_MAX_NB * WP_MAX_M, false);
    long outputs = 0, bad = 0, runs = 0, rows_checked = 0;
    for (int ki = 0; ki < n_k; ki++) {
        const int nb = WNBS[ki], K = 32 * nb;
        const size_t ld = mmq8_act_row_bytes(K);
        uint8_t *pk = aligned_alloc(64, ld * WP_MAX_M);
        cr_assert(pk);
        for (int m = 0; m < WP_MAX_M; m++)
            mmq8_pack_act(pk, ld, m, a + (size_t)m * WP_MAX_NB, K);
        for (int m = 0; m < WP_MAX_M; m++)
            for (int n = 0; n < WP_MAX_N; n++) {
                q->vec_dot(K, &want[m * WP_MAX_N + n], w + (size_t)n * WP_MAX_NB,
                           a + (size_t)m * WP_MAX_NB);
                wantb[m * WP_MAX_N + n] = want[m * WP_MAX_N + n] + bias[n];
            }
        for (int ni = 0; ni < n_n; ni++) {
            const int N = WNS[ni];
            cr_expect(mmq8_wpack_bytes(N, K) == wpack_size(N, K),
                      "mmq8_wpack_bytes(%d, %d) = %zu, want %zu", N, K, mmq8_wpack_bytes(N, K),
                      wpack_size(N, K));
            /* one call, and two halves split at a panel boundary: the same bytes, all written */
            const long split = N > 4 ? (N / 4 + 1) / 2 * 4 : 0;
            uint8_t *wp = wpack_new(w, wrb, N, K, N, 0x5a);
            uint8_t *wp2 = wpack_new(w, wrb, N, K, split, 0xa5);
            cr_expect(memcmp(wp, wp2, mmq8_wpack_bytes(N, K)) == 0,
                      "wpack N %d K/32 %d: [0,%ld) + [%ld,%d) differs from one call", N, nb, split,
                      split, N);
            free(wp2);
            /* the embedding lookup of tied weights: every row, bit for bit */
            for (int n = 0; n < N; n++) {
                mmq8_wpack_row_f32(wp, N, K, n, row);
                q->dequant(w + (size_t)n * WP_MAX_NB, rref, K);
                cr_expect(memcmp(row, rref, sizeof(float) * (size_t)K) == 0,
                          "wpack_row_f32 N %d K/32 %d row %d differs from dequant", N, nb, n);
                rows_checked++;
            }
            for (int mi = 0; mi < n_m; mi++) {
                const int M = WMS[mi];
                const bool with_bias = (mi + ni + ki) % 2 == 0;
                const float *wt = with_bias ? wantb : want;
                const size_t ldo = (size_t)N + (size_t)(mi % 3) * 2;
                fill_sentinel(out, ldo * (size_t)M);
                mmq8_rows_wpacked(out, ldo, wp, N, 0, N, pk, ld, M, K, with_bias ? bias : NULL);
                bad += check_out(out, ldo, wt, M, 0, N, "whole", N, nb, with_bias);
                outputs += (long)M * N;
                runs++;
                /* a sub-range starting on a later panel, ending inside one */
                if (N > 4) {
                    const long n0 = 4, n1 = N - (N > 5 ? 1 : 0);
                    fill_sentinel(out, ldo * (size_t)M);
                    mmq8_rows_wpacked(out, ldo, wp, N, n0, n1, pk, ld, M, K,
                                      with_bias ? bias : NULL);
                    bad += check_out(out, ldo, wt, M, n0, n1, "sub-range", N, nb, with_bias);
                    outputs += (long)M * (n1 - n0);
                    runs++;
                }
                /* the first panel, cut short */
                if (N >= 3) {
                    fill_sentinel(out, ldo * (size_t)M);
                    mmq8_rows_wpacked(out, ldo, wp, N, 0, 2, pk, ld, M, K, with_bias ? bias : NULL);
                    bad += check_out(out, ldo, wt, M, 0, 2, "rows [0,2)", N, nb, with_bias);
                    outputs += 2L * M;
                    runs++;
                }
            }
            free(wp);
        }
        free(pk);
    }
    cr_expect(bad == 0, "wpacked: %ld of %ld outputs differ", bad, outputs);
    cr_log_info("q8tile wpacked: %ld runs, %ld outputs bit-identical, %ld rows dequantized", runs,
                outputs, rows_checked);
    free(w), free(a), free(want), free(bias), free(wantb), free(out), free(row), free(rref);
}

/* The size formula by hand, including a panel that needs padding. */
Test(matmul_q8tile, wpack_bytes) {
    /* 4 rows x 34 bytes = 136 -> 192 */
    cr_expect_eq(mmq8_wpack_bytes(1, 32), 192);
    cr_expect_eq(mmq8_wpack_bytes(4, 32), 192);
    cr_expect_eq(mmq8_wpack_bytes(5, 32), 384);
    cr_expect_eq(mmq8_wpack_bytes(0, 576), 0);
    /* 16 blocks: 4 x 544 = 2176 = 34 x 64, no padding */
    cr_expect_eq(mmq8_wpack_bytes(8, 512), 2 * 2176);
    /* SmolLM-135M: K 576 -> 4 x 612 = 2448 -> 2496 per panel */
    cr_expect_eq(mmq8_wpack_bytes(1536, 576), 384 * 2496);
    cr_expect_eq(mmq8_wpack_bytes(49152, 576), (size_t)12288 * 2496);
    cr_expect_eq(mmq8_wpack_bytes(576, 1536), 144 * 4 * 1632);
    for (int nb = 1; nb <= 40; nb++)
        for (long N = 1; N <= 9; N++)
            cr_expect_eq(mmq8_wpack_bytes(N, 32 * nb), wpack_size(N, 32 * nb), "N %ld K/32 %d", N,
                         nb);
}

/* The longest row (MMQ8_MAX_K) and rows quantized from floats, as a model
 * file holds them; also through a thread-sized split of the panels. */
Test(matmul_q8tile, wpacked_long_rows) {
    if (!mmq8_available()) {
        cr_skip("q8tile: no AVX-512 VNNI here; no pre-packed kernels");
        return;
    }
    Rng r;
    rng_seed(&r, 806);
    static const int KS[] = {MMQ8_MAX_K, MMQ8_MAX_K - 32 * 7, 576, 1536};
    for (size_t ki = 0; ki < sizeof KS / sizeof KS[0]; ki++) {
        const int K = KS[ki], M = 6, N = 11;
        float *x = randv(&r, (int64_t)M * K, 1.0f), *wf = randv(&r, (int64_t)N * K, 0.5f);
        uint8_t *w = quant_rows(wf, N, K);
        const size_t rb = (size_t)dtype_row_bytes(DTYPE_Q8_0, K), ld = mmq8_act_row_bytes(K);
        uint8_t *aq = quant_rows(x, M, K), *pk = aligned_alloc(64, ld * M);
        float *got = malloc(sizeof(float) * M * N), *want = malloc(sizeof(float) * M * N);
        cr_assert(pk && got && want);
        for (int m = 0; m < M; m++)
            mmq8_pack_act(pk, ld, m, aq + (size_t)m * rb, K);
        rowwise(want, x, w, NULL, M, N, K);
        uint8_t *wp = wpack_new((const BlockQ8_0 *)w, rb, N, K, 8, 0x33);
        /* as threads would split it: panels [0, 1), [1, 3) */
        mmq8_rows_wpacked(got, N, wp, N, 0, 4, pk, ld, M, K, NULL);
        mmq8_rows_wpacked(got, N, wp, N, 4, N, pk, ld, M, K, NULL);
        const long at = first_diff(got, want, (long)M * N);
        cr_expect(at < 0, "wpacked K %d: out[%ld] got %.9g, vec_dot %.9g", K, at,
                  at < 0 ? 0 : got[at], at < 0 ? 0 : want[at]);
        free(x), free(wf), free(w), free(aq), free(pk), free(got), free(want), free(wp);
    }
}
