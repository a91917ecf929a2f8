/* simd.h - compile a region of a file for one dispatch level (core/cpu.h).
 *
 *   SIMD_BEGIN_AVX2   ... SIMD_END   code may use AVX2, FMA, F16C
 *   SIMD_BEGIN_AVX512 ... SIMD_END   code may use AVX-512 F/BW/VL/DQ, VNNI, FMA, F16C
 *
 * The build has no -march: each SIMD region is compiled for its level and
 * only called once cpu_simd_level() says the CPU has it, so one binary runs
 * on any x86-64. The feature lists here are the ones cpu.c checks. gcc takes
 * `#pragma GCC target`; clang (the fuzz build) ignores it and needs
 * `#pragma clang attribute`. Code outside a region (fill functions, the
 * dispatch itself) must not use the wider instructions. */
#ifndef CGPT_CORE_SIMD_H
#define CGPT_CORE_SIMD_H

/* _Pragma needs each string whole, so the formatter keeps off these lines. */
// clang-format off
#if defined(__clang__)
#define SIMD_BEGIN_AVX2 _Pragma("clang attribute push(__attribute__((target(\"avx2,fma,f16c\"))), apply_to = function)")
#define SIMD_BEGIN_AVX512 _Pragma("clang attribute push(__attribute__((target(\"avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,fma,f16c\"))), apply_to = function)")
#define SIMD_END _Pragma("clang attribute pop")
#else
#define SIMD_BEGIN_AVX2 _Pragma("GCC push_options") _Pragma("GCC target(\"avx2,fma,f16c\")")
#define SIMD_BEGIN_AVX512 _Pragma("GCC push_options") _Pragma("GCC target(\"avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,fma,f16c\")")
#define SIMD_END _Pragma("GCC pop_options")
#endif
// clang-format on

#endif
