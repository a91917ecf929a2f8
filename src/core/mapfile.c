/* mapfile.c - mmap wrapper. */
#include "core/mapfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

Status mapfile_open(MapFile *mf, const char *path, Err *err) {
    memset(mf, 0, sizeof *mf);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return err_set(err, STATUS_IO, "cannot open '%s': %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return err_set(err, STATUS_IO, "cannot stat '%s': %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return err_set(err, STATUS_IO, "'%s' is not a regular file", path);
    }
    if (st.st_size > 0) {
        void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            int e = errno;
            close(fd);
            return err_set(err, STATUS_IO, "cannot map '%s': %s", path, strerror(e));
        }
        mf->data = p;
        mf->size = (size_t)st.st_size;
        mf->mapped = 1;
    }
    close(fd);
    return STATUS_OK;
}

void mapfile_close(MapFile *mf) {
    if (!mf)
        return;
    if (mf->mapped && mf->data)
        munmap((void *)mf->data, mf->size);
    memset(mf, 0, sizeof *mf);
}

void mapfile_release(const MapFile *mf, const void *p, size_t n) {
    if (!mf || !mf->mapped || !mf->data)
        return;
    uintptr_t lo = (uintptr_t)p, hi = lo + n, base = (uintptr_t)mf->data;
    if (lo < base || hi > base + mf->size || hi <= lo)
        return;
    long pg = sysconf(_SC_PAGESIZE);
    uintptr_t mask = (uintptr_t)(pg > 0 ? pg : 4096) - 1;
    lo = (lo + mask) & ~mask;
    hi &= ~mask;
    if (hi > lo)
        (void)madvise((void *)lo, hi - lo, MADV_DONTNEED);
}
