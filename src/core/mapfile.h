/* mapfile.h - read-only memory mapping of a whole file.
 *
 * Model weights are used in place from the mapping, except the matrices a
 * CPU has a faster layout for (model.h, ModelParams.no_repack), which are
 * repacked once at load; mapfile_release then drops their file pages. */
#ifndef CGPT_CORE_MAPFILE_H
#define CGPT_CORE_MAPFILE_H

#include <stddef.h>

#include "core/err.h"

typedef struct {
    const void *data; /* NULL for an empty file */
    size_t size;
    int mapped; /* 1 when data must be munmap()ed */
} MapFile;

/* Map 'path' read-only. On failure returns non-OK, fills 'err', and 'mf' is
 * safe to pass to mapfile_close(). */
Status mapfile_open(MapFile *mf, const char *path, Err *err);
/* Accepts a zeroed struct. */
void mapfile_close(MapFile *mf);

/* Tells the kernel the whole pages inside [p, p + n) (a range of mf's
 * mapping) are not needed for now: they leave this process's resident set
 * (the page cache keeps them) and read back from the file if touched
 * again. For weights copied elsewhere at load (repacked). No-op when mf is
 * not a mapping. */
void mapfile_release(const MapFile *mf, const void *p, size_t n);

#endif
