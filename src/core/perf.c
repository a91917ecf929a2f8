/* perf.c - bandwidth and FMA peak probes. The probes are deliberately
 * simple loops: the point is a ceiling to divide by, measured the same way
 * each run. */
#include "core/perf.h"

#include <immintrin.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/cpu.h"
#include "core/mem.h"
#include "core/simd.h"

#define PERF_PASSES 5
#define PERF_FMA_ITERS 20000000L /* per thread; ~0.1 s at AVX-512 rates */

double perf_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

typedef struct {
    const uint64_t *buf;
    size_t n_words;
    SimdLevel level;
    uint64_t sink[TPOOL_MAX_THREADS]; /* per-thread results, so the loads are not dead */
} BwJob;

/* Each reader walks [lo, hi) in 64-byte lines with four independent
 * accumulators, using the widest loads the CPU has: the probe must be bound
 * by memory, not by the loop (scalar loads alone cap below DRAM speed). */
SIMD_BEGIN_AVX512
static uint64_t bw_avx512(const uint64_t *w, long lo, long hi) {
    __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
    long i = lo;
    for (; i + 4 <= hi; i += 4) {
        a0 = _mm512_xor_si512(a0, _mm512_load_si512((const void *)(w + i * 8)));
        a1 = _mm512_xor_si512(a1, _mm512_load_si512((const void *)(w + i * 8 + 8)));
        a2 = _mm512_xor_si512(a2, _mm512_load_si512((const void *)(w + i * 8 + 16)));
        a3 = _mm512_xor_si512(a3, _mm512_load_si512((const void *)(w + i * 8 + 24)));
    }
    for (; i < hi; i++)
        a0 = _mm512_xor_si512(a0, _mm512_load_si512((const void *)(w + i * 8)));
    a0 = _mm512_xor_si512(_mm512_xor_si512(a0, a1), _mm512_xor_si512(a2, a3));
    return (uint64_t)_mm512_reduce_add_epi64(a0);
}
SIMD_END

SIMD_BEGIN_AVX2
static uint64_t bw_avx2(const uint64_t *w, long lo, long hi) {
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    long i = lo;
    for (; i + 2 <= hi; i += 2) { /* two 64-byte lines, four 32-byte loads */
        a0 = _mm256_xor_si256(a0, _mm256_load_si256((const void *)(w + i * 8)));
        a1 = _mm256_xor_si256(a1, _mm256_load_si256((const void *)(w + i * 8 + 4)));
        a2 = _mm256_xor_si256(a2, _mm256_load_si256((const void *)(w + i * 8 + 8)));
        a3 = _mm256_xor_si256(a3, _mm256_load_si256((const void *)(w + i * 8 + 12)));
    }
    for (; i < hi; i++) {
        a0 = _mm256_xor_si256(a0, _mm256_load_si256((const void *)(w + i * 8)));
        a1 = _mm256_xor_si256(a1, _mm256_load_si256((const void *)(w + i * 8 + 4)));
    }
    a0 = _mm256_xor_si256(_mm256_xor_si256(a0, a1), _mm256_xor_si256(a2, a3));
    uint64_t out[4];
    _mm256_storeu_si256((__m256i *)(void *)out, a0);
    return out[0] ^ out[1] ^ out[2] ^ out[3];
}
SIMD_END

static uint64_t bw_scalar(const uint64_t *w, long lo, long hi) {
    uint64_t a[8] = {0};
    for (long i = lo; i < hi; i++)
        for (int k = 0; k < 8; k++)
            a[k] ^= w[i * 8 + k];
    return a[0] ^ a[1] ^ a[2] ^ a[3] ^ a[4] ^ a[5] ^ a[6] ^ a[7];
}

static void bw_read(void *p, int ith, int nth) {
    BwJob *j = p;
    long lo, hi;
    tpool_range((long)(j->n_words / 8), ith, nth, &lo, &hi);
    j->sink[ith] = j->level == SIMD_AVX512 ? bw_avx512(j->buf, lo, hi)
                   : j->level == SIMD_AVX2 ? bw_avx2(j->buf, lo, hi)
                                           : bw_scalar(j->buf, lo, hi);
}

double perf_mem_bandwidth(TPool *tp, size_t bytes) {
    uint64_t *buf = mem_alloc_aligned(bytes); /* zeroed: every page touched */
    if (!buf)
        return 0;
    memset(buf, 1, bytes);
    BwJob j = {.buf = buf, .n_words = bytes / 8, .level = cpu_simd_level()};
    double best = 0;
    for (int pass = 0; pass < PERF_PASSES; pass++) {
        double t0 = perf_now();
        tpool_run(tp, bw_read, &j);
        double dt = perf_now() - t0;
        double gbs = (double)(j.n_words / 8 * 64) / dt / 1e9;
        if (gbs > best)
            best = gbs;
    }
    mem_free_aligned(buf);
    return best;
}

/* A peak probe: each thread runs its chains and says how many operations
 * it did; sink keeps the results live. */
typedef struct {
    SimdLevel level;
    double ops[TPOOL_MAX_THREADS];
    double sink[TPOOL_MAX_THREADS];
} PeakJob;

/* Operations per second (1e9) of the best of three runs of fn on the pool. */
static double best_rate(TPool *tp, TPoolFn fn, PeakJob *j) {
    double best = 0;
    for (int pass = 0; pass < 3; pass++) {
        double t0 = perf_now();
        tpool_run(tp, fn, j);
        double dt = perf_now() - t0, total = 0;
        for (int i = 0; i < tpool_size(tp); i++)
            total += j->ops[i];
        if (total / dt / 1e9 > best)
            best = total / dt / 1e9;
    }
    return best;
}

/* 12 independent chains hide the FMA latency (4 cycles x 2 ports + slack). */
SIMD_BEGIN_AVX512
static float fma_avx512(long iters) {
    __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
    __m512 a0 = _mm512_set1_ps(0), a1 = _mm512_set1_ps(1), a2 = _mm512_set1_ps(2);
    __m512 a3 = _mm512_set1_ps(3), a4 = _mm512_set1_ps(4), a5 = _mm512_set1_ps(5);
    __m512 a6 = _mm512_set1_ps(6), a7 = _mm512_set1_ps(7), a8 = _mm512_set1_ps(8);
    __m512 a9 = _mm512_set1_ps(9), a10 = _mm512_set1_ps(10), a11 = _mm512_set1_ps(11);
    for (long i = 0; i < iters; i++) {
        a0 = _mm512_fmadd_ps(a0, m, c), a1 = _mm512_fmadd_ps(a1, m, c);
        a2 = _mm512_fmadd_ps(a2, m, c), a3 = _mm512_fmadd_ps(a3, m, c);
        a4 = _mm512_fmadd_ps(a4, m, c), a5 = _mm512_fmadd_ps(a5, m, c);
        a6 = _mm512_fmadd_ps(a6, m, c), a7 = _mm512_fmadd_ps(a7, m, c);
        a8 = _mm512_fmadd_ps(a8, m, c), a9 = _mm512_fmadd_ps(a9, m, c);
        a10 = _mm512_fmadd_ps(a10, m, c), a11 = _mm512_fmadd_ps(a11, m, c);
    }
    __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                             _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)));
    s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11)));
    return _mm512_reduce_add_ps(s);
}
SIMD_END

SIMD_BEGIN_AVX2
static float fma_avx2(long iters) {
    __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
    __m256 a0 = _mm256_set1_ps(0), a1 = _mm256_set1_ps(1), a2 = _mm256_set1_ps(2);
    __m256 a3 = _mm256_set1_ps(3), a4 = _mm256_set1_ps(4), a5 = _mm256_set1_ps(5);
    __m256 a6 = _mm256_set1_ps(6), a7 = _mm256_set1_ps(7), a8 = _mm256_set1_ps(8);
    __m256 a9 = _mm256_set1_ps(9), a10 = _mm256_set1_ps(10), a11 = _mm256_set1_ps(11);
    for (long i = 0; i < iters; i++) {
        a0 = _mm256_fmadd_ps(a0, m, c), a1 = _mm256_fmadd_ps(a1, m, c);
        a2 = _mm256_fmadd_ps(a2, m, c), a3 = _mm256_fmadd_ps(a3, m, c);
        a4 = _mm256_fmadd_ps(a4, m, c), a5 = _mm256_fmadd_ps(a5, m, c);
        a6 = _mm256_fmadd_ps(a6, m, c), a7 = _mm256_fmadd_ps(a7, m, c);
        a8 = _mm256_fmadd_ps(a8, m, c), a9 = _mm256_fmadd_ps(a9, m, c);
        a10 = _mm256_fmadd_ps(a10, m, c), a11 = _mm256_fmadd_ps(a11, m, c);
    }
    __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                             _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
    s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(a8, a9), _mm256_add_ps(a10, a11)));
    float out[8];
    _mm256_storeu_ps(out, s);
    return out[0] + out[7];
}
SIMD_END

static float fma_scalar(long iters) {
    float acc[12];
    for (int k = 0; k < 12; k++)
        acc[k] = (float)k;
    for (long i = 0; i < iters; i++)
        for (int k = 0; k < 12; k++)
            acc[k] = acc[k] * 0.999999f + 1e-7f;
    return acc[0] + acc[11];
}

static void fma_run(void *p, int ith, int nth) {
    PeakJob *j = p;
    (void)nth;
    long iters = PERF_FMA_ITERS / (j->level == SIMD_SCALAR ? 16 : 1);
    int lanes = j->level == SIMD_AVX512 ? 16 : j->level == SIMD_AVX2 ? 8 : 1;
    float s = j->level == SIMD_AVX512 ? fma_avx512(iters)
              : j->level == SIMD_AVX2 ? fma_avx2(iters)
                                      : fma_scalar(iters);
    j->sink[ith] = s;
    j->ops[ith] = 2.0 * 12 * lanes * (double)iters;
}

double perf_fma_peak(TPool *tp) {
    PeakJob j = {.level = cpu_simd_level()};
    return best_rate(tp, fma_run, &j);
}

/* ---- the int8 dot-product peak ----
 *
 * The instruction the quantized kernels multiply with: vpdpbusd on AVX-512
 * VNNI (64 u8 x s8 products summed into 16 int32 lanes), vpmaddubsw then
 * vpmaddwd on AVX2 (32 products into 8 lanes, in two instructions, as the
 * AVX2 kernels do it). 12 independent chains, as for the FMA probe. */

SIMD_BEGIN_AVX512
static int32_t int8_avx512(long iters) {
    __m512i u = _mm512_set1_epi8(3), v = _mm512_set1_epi8(-2);
    __m512i a[12];
    for (int k = 0; k < 12; k++)
        a[k] = _mm512_set1_epi32(k);
    for (long i = 0; i < iters; i++) {
        a[0] = _mm512_dpbusd_epi32(a[0], u, v), a[1] = _mm512_dpbusd_epi32(a[1], u, v);
        a[2] = _mm512_dpbusd_epi32(a[2], u, v), a[3] = _mm512_dpbusd_epi32(a[3], u, v);
        a[4] = _mm512_dpbusd_epi32(a[4], u, v), a[5] = _mm512_dpbusd_epi32(a[5], u, v);
        a[6] = _mm512_dpbusd_epi32(a[6], u, v), a[7] = _mm512_dpbusd_epi32(a[7], u, v);
        a[8] = _mm512_dpbusd_epi32(a[8], u, v), a[9] = _mm512_dpbusd_epi32(a[9], u, v);
        a[10] = _mm512_dpbusd_epi32(a[10], u, v), a[11] = _mm512_dpbusd_epi32(a[11], u, v);
    }
    __m512i s = a[0];
    for (int k = 1; k < 12; k++)
        s = _mm512_add_epi32(s, a[k]);
    return _mm512_reduce_add_epi32(s);
}
SIMD_END

SIMD_BEGIN_AVX2
static int32_t int8_avx2(long iters) {
    __m256i v = _mm256_set1_epi8(-2), one = _mm256_set1_epi16(1), step = _mm256_set1_epi8(1);
    __m256i a[12], u[12];
    for (int k = 0; k < 12; k++) {
        a[k] = _mm256_set1_epi32(k);
        u[k] = _mm256_set1_epi8((char)(k + 1));
    }
    for (long i = 0; i < iters; i++) {
        /* a distinct u per chain and a v that changes each round: no product
         * is computed once for several chains or hoisted out of the loop */
        for (int k = 0; k < 12; k++)
            a[k] = _mm256_add_epi32(a[k], _mm256_madd_epi16(_mm256_maddubs_epi16(u[k], v), one));
        v = _mm256_add_epi8(v, step);
    }
    __m256i s = a[0];
    for (int k = 1; k < 12; k++)
        s = _mm256_add_epi32(s, a[k]);
    int32_t out[8];
    _mm256_storeu_si256((__m256i *)(void *)out, s);
    return (int32_t)((uint32_t)out[0] + (uint32_t)out[7]); /* wraps, as the lanes do */
}
SIMD_END

static int32_t int8_scalar(long iters) {
    uint32_t acc[12]; /* wrapping sums: the chains may run past 2^31 */
    for (int k = 0; k < 12; k++)
        acc[k] = (uint32_t)k;
    volatile uint8_t u = 3;
    volatile int8_t v = -2;
    for (long i = 0; i < iters; i++)
        for (int k = 0; k < 12; k++)
            acc[k] += (uint32_t)((int32_t)u * v);
    return (int32_t)(acc[0] + acc[11]);
}

static void int8_run(void *p, int ith, int nth) {
    PeakJob *j = p;
    (void)nth;
    long iters = PERF_FMA_ITERS / (j->level == SIMD_SCALAR ? 16 : 1);
    int macs = j->level == SIMD_AVX512 ? 64 : j->level == SIMD_AVX2 ? 32 : 1;
    j->sink[ith] = j->level == SIMD_AVX512 ? int8_avx512(iters)
                   : j->level == SIMD_AVX2 ? int8_avx2(iters)
                                           : int8_scalar(iters);
    j->ops[ith] = 2.0 * 12 * macs * (double)iters;
}

double perf_int8_peak(TPool *tp) {
    PeakJob j = {.level = cpu_simd_level()};
    return best_rate(tp, int8_run, &j);
}
