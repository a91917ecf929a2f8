/* mem.c - aligned allocation.
 *
 * Every block carries a MEM_ALIGN-byte header just before the pointer
 * returned: what kind of allocation it is and its size. Large blocks (the
 * KV cache, training buffers) are anonymous mappings: the kernel zeroes
 * their pages lazily, so a pool sized for the worst case costs memory only
 * as it is used, and startup does not write gigabytes of zeros. Small
 * blocks come from the C heap and are zeroed here.
 *
 * Mapped blocks start on a 2 MiB boundary and are advised MADV_HUGEPAGE:
 * where the kernel has transparent huge pages (even in "madvise" mode) a
 * first touch maps 2 MiB at once instead of 4 KiB, so a growing KV pool
 * takes 512x fewer page faults (each one is a trip through the hypervisor
 * on a virtual machine) and the TLB covers it. The pages are still only
 * used as they are touched, in 2 MiB steps. */
#include "core/mem.h"

#include "core/err.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define MEM_MMAP_MIN ((size_t)1 << 20) /* bytes from which mmap is used */
#define MEM_PAGE ((size_t)4096)
#define MEM_HUGE ((size_t)2 << 20) /* transparent huge page size on x86-64 */

enum { MEM_HEAP = 0x68656170, MEM_MAP = 0x6d6d6170 };

typedef struct {
    uint32_t kind;
    size_t total; /* bytes mapped (MEM_MAP) */
    void *base;   /* start of the mapping (MEM_MAP) */
} MemHeader;

_Static_assert(sizeof(MemHeader) <= MEM_ALIGN, "header fits the alignment");
_Static_assert(MEM_PAGE % MEM_ALIGN == 0, "pages are aligned");

void *mem_alloc_aligned(size_t size) {
    uint64_t rounded, total;
    if (!mem_align_up_ok(size ? size : 1, MEM_ALIGN, &rounded))
        return NULL;
    if (rounded >= MEM_MMAP_MIN) {
        /* the header's page, then the data from a 2 MiB boundary */
        if (!mem_add_ok(rounded, MEM_PAGE + MEM_HUGE, &total) ||
            !mem_align_up_ok(total, MEM_PAGE, &total))
            return NULL;
        void *b =
            mmap(NULL, (size_t)total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (b == MAP_FAILED)
            return NULL;
        uintptr_t data = ((uintptr_t)b + MEM_PAGE + MEM_HUGE - 1) & ~(uintptr_t)(MEM_HUGE - 1);
        char *p = (char *)data;
#ifdef MADV_HUGEPAGE
        (void)madvise(p, (size_t)total - (size_t)(data - (uintptr_t)b), MADV_HUGEPAGE);
#endif
        MemHeader *h = (MemHeader *)(p - MEM_ALIGN);
        h->kind = MEM_MAP;
        h->total = (size_t)total;
        h->base = b;
        return p;
    }
    char *b = aligned_alloc(MEM_ALIGN, (size_t)rounded + MEM_ALIGN);
    if (!b)
        return NULL;
    memset(b, 0, (size_t)rounded + MEM_ALIGN);
    ((MemHeader *)b)->kind = MEM_HEAP;
    return b + MEM_ALIGN;
}

void mem_free_aligned(void *p) {
    if (!p)
        return;
    MemHeader *h = (MemHeader *)((char *)p - MEM_ALIGN);
    if (h->kind == MEM_MAP) {
        munmap(h->base, h->total);
        return;
    }
    ASSERT(h->kind == MEM_HEAP);
    free(h);
}
