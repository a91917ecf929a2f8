/* cpu.c - feature detection via GCC's __builtin_cpu_supports. */
#include "core/cpu.h"

#include <stdlib.h>
#include <string.h>

static SimdLevel detect(void) {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("fma") &&
        __builtin_cpu_supports("f16c"))
        return SIMD_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
        __builtin_cpu_supports("f16c"))
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
    case SIMD_SCALAR: return "scalar";
    case SIMD_AVX2: return "avx2";
    case SIMD_AVX512: return "avx512-vnni";
    }
    return "?";
}
