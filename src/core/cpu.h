/* cpu.h - runtime CPU feature detection for kernel dispatch.
 *
 * cpu_simd_level() is the highest level both the CPU supports and the
 * environment allows: CGPT_SIMD=scalar|avx2|avx512 caps it (tests use this
 * to run every path on one machine). */
#ifndef CGPT_CORE_CPU_H
#define CGPT_CORE_CPU_H

typedef enum {
    SIMD_SCALAR = 0,
    SIMD_AVX2 = 1,   /* AVX2 + FMA + F16C */
    SIMD_AVX512 = 2, /* AVX-512 F/BW/VL/DQ + VNNI */
} SimdLevel;

SimdLevel cpu_simd_level(void);
const char *cpu_simd_name(SimdLevel l);

#endif
