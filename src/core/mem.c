/* mem.c - aligned allocation. */
#include "core/mem.h"

#include <stdlib.h>
#include <string.h>

void *mem_alloc_aligned(size_t size) {
    uint64_t rounded;
    if (!mem_align_up_ok(size ? size : 1, MEM_ALIGN, &rounded))
        return NULL;
    void *p = aligned_alloc(MEM_ALIGN, rounded);
    if (p)
        memset(p, 0, rounded);
    return p;
}

void mem_free_aligned(void *p) { free(p); }
