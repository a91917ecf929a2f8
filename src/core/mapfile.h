/* mapfile.h - read-only memory mapping of a whole file.
 *
 * Model weights are used in place from the mapping, never copied. */
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

#endif
