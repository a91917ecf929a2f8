/* cpu.c - feature detection with CPUID and XGETBV (works under gcc and
 * clang alike; clang 14's __builtin_cpu_supports lacks "avx512vnni").
 * A feature counts only if the OS saves the registers it needs (XCR0). */
#include "core/cpu.h"

#include <cpuid.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint64_t xgetbv0(void) {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

static SimdLevel detect(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return SIMD_SCALAR;
    int fma = (c >> 12) & 1, osxsave = (c >> 27) & 1, avx = (c >> 28) & 1, f16c = (c >> 29) & 1;
    if (!osxsave || !avx)
        return SIMD_SCALAR;
    uint64_t xcr0 = xgetbv0();
    int ymm_ok = (xcr0 & 0x6) == 0x6;   /* SSE + AVX state */
    int zmm_ok = (xcr0 & 0xe6) == 0xe6; /* + opmask, ZMM hi256, hi16 ZMM */
    if (__get_cpuid_max(0, NULL) < 7)
        return SIMD_SCALAR;
    __cpuid_count(7, 0, a, b, c, d);
    int avx2 = (b >> 5) & 1, avx512f = (b >> 16) & 1, avx512dq = (b >> 17) & 1;
    int avx512bw = (b >> 30) & 1, avx512vl = (b >> 31) & 1, vnni = (c >> 11) & 1;
    if (zmm_ok && avx512f && avx512dq && avx512bw && avx512vl && vnni && fma && f16c)
        return SIMD_AVX512;
    if (ymm_ok && avx2 && fma && f16c)
        return SIMD_AVX2;
    return SIMD_SCALAR;
}

SimdLevel cpu_simd_level(void) {
    SimdLevel l = detect();
    const char *cap = getenv("CGPT_SIMD");
    if (cap) {
        SimdLevel c = l;
        if (!strcmp(cap, "scalar"))
            c = SIMD_SCALAR;
        else if (!strcmp(cap, "avx2"))
            c = SIMD_AVX2;
        else if (!strcmp(cap, "avx512"))
            c = SIMD_AVX512;
        if (c < l)
            l = c;
    }
    return l;
}

const char *cpu_simd_name(SimdLevel l) {
    switch (l) {
    case SIMD_SCALAR:
        return "scalar";
    case SIMD_AVX2:
        return "avx2";
    case SIMD_AVX512:
        return "avx512-vnni";
    }
    return "?";
}
