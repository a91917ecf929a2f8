/* perf.h - clocks and the machine limits that performance is measured
 * against, measured in the same run as the thing being judged (these
 * machines are shared and noisy, so absolute timings mean little; ratios to
 * a limit measured alongside mean more).
 *
 *   perf_mem_bandwidth: read bandwidth from DRAM, GB/s, all pool threads
 *       streaming disjoint slices of a buffer far larger than the caches
 *       (best of several passes);
 *   perf_fma_peak: F32 fused-multiply-add peak, GFLOP/s (2 flops per FMA
 *       lane), all pool threads running independent FMA chains in registers
 *       with the widest vectors the CPU has;
 *   perf_int8_peak: the int8 dot-product peak the quantized kernels
 *       multiply with, GOP/s (2 ops per u8 x s8 multiply-add): vpdpbusd on
 *       AVX-512 VNNI, vpmaddubsw + vpmaddwd on AVX2. */
#ifndef CGPT_CORE_PERF_H
#define CGPT_CORE_PERF_H

#include <stddef.h>

#include "core/tpool.h"

/* Monotonic seconds. */
double perf_now(void);

/* Returns GB/s (1e9 bytes/s), or 0 when 'bytes' cannot be allocated. */
double perf_mem_bandwidth(TPool *tp, size_t bytes);

/* Returns GFLOP/s. */
double perf_fma_peak(TPool *tp);

/* Returns GOP/s. */
double perf_int8_peak(TPool *tp);

#endif
