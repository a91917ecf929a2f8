/* mem.h - allocation and overflow-checked size arithmetic.
 *
 * Untrusted counts go through the *_ok helpers before any multiply or
 * allocation. Aligned buffers (for SIMD and cache lines) come from
 * mem_alloc_aligned() and are released with mem_free_aligned(). */
#ifndef CGPT_CORE_MEM_H
#define CGPT_CORE_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MEM_ALIGN 64 /* cache line; enough for AVX-512 loads */

/* *out = a * b; false on overflow (then *out is unspecified). */
static inline bool mem_mul_ok(uint64_t a, uint64_t b, uint64_t *out) {
    return !__builtin_mul_overflow(a, b, out);
}
/* *out = a + b; false on overflow. */
static inline bool mem_add_ok(uint64_t a, uint64_t b, uint64_t *out) {
    return !__builtin_add_overflow(a, b, out);
}
/* Round x up to a multiple of 'align' (a power of two); false on overflow. */
static inline bool mem_align_up_ok(uint64_t x, uint64_t align, uint64_t *out) {
    uint64_t t;
    if (__builtin_add_overflow(x, align - 1, &t))
        return false;
    *out = t & ~(align - 1);
    return true;
}

/* Returns owned memory of 'size' bytes aligned to MEM_ALIGN, zeroed, or NULL;
 * from 1 MiB up the pages are mapped lazily (only touched pages use memory).
 * Free with mem_free_aligned(). */
void *mem_alloc_aligned(size_t size);
void mem_free_aligned(void *p);

#endif
