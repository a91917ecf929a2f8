/* fp16.h - IEEE half and bfloat16 <-> float conversions (scalar, exact).
 *
 * Round-to-nearest-even on the way down, as ggml does; NaN stays NaN.
 * Bit-identical to the x86 F16C instructions (vcvtph2ps / vcvtps2ph with
 * round-to-nearest) for every input, NaNs included: a NaN comes out quiet
 * with the top bits of its payload, so SIMD and scalar kernels agree byte
 * for byte. */
#ifndef CGPT_CORE_FP16_H
#define CGPT_CORE_FP16_H

#include <stdint.h>
#include <string.h>

static inline uint32_t fp_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static inline float fp_from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline float fp16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    if (exp == 0x1f) /* inf, or nan made quiet with its payload (as F16C's vcvtph2ps) */
        return fp_from_bits(sign | 0x7f800000u | (man ? 0x400000u : 0) | (man << 13));
    if (exp == 0) {
        if (man == 0)
            return fp_from_bits(sign);
        /* subnormal: value = man * 2^-24 */
        float v = (float)man * (1.0f / 16777216.0f);
        return sign ? -v : v;
    }
    return fp_from_bits(sign | ((exp + 112) << 23) | (man << 13));
}

static inline uint16_t fp32_to_f16(float f) {
    uint32_t x = fp_bits(f);
    uint32_t sign = (x >> 16) & 0x8000;
    uint32_t ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) /* nan: quiet, top payload bits kept (as F16C's vcvtps2ph) */
        return (uint16_t)(sign | 0x7e00 | ((ax >> 13) & 0x3ff));
    if (ax == 0x7f800000u) /* inf */
        return (uint16_t)(sign | 0x7c00);
    if (ax >= 0x477ff000u) /* rounds to >= 65520: overflow to inf */
        return (uint16_t)(sign | 0x7c00);
    if (ax < 0x38800000u) {   /* below 2^-14: subnormal or zero */
        if (ax < 0x33000000u) /* below 2^-25: rounds to zero */
            return (uint16_t)sign;
        uint32_t e = ax >> 23;
        uint32_t m = (ax & 0x7fffff) | 0x800000;
        uint32_t shift = 126 - e; /* 14..24 */
        uint32_t r = m >> shift;
        uint32_t rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (r & 1)))
            r++;
        return (uint16_t)(sign | r);
    }
    uint32_t r = ax + 0xfff + ((ax >> 13) & 1); /* round to nearest even */
    return (uint16_t)(sign | ((r - 0x38000000u) >> 13));
}

static inline float bf16_to_f32(uint16_t h) { return fp_from_bits((uint32_t)h << 16); }

static inline uint16_t fp32_to_bf16(float f) {
    uint32_t x = fp_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) /* nan: keep it quiet */
        return (uint16_t)((x >> 16) | 64);
    return (uint16_t)((x + (0x7fff + ((x >> 16) & 1))) >> 16);
}

#endif
