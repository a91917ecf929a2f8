/* test_core.c - the core layer: thread pool, checked arithmetic, errors,
 * file mapping, RNG. */
#include <criterion/criterion.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/err.h"
#include "core/mapfile.h"
#include "core/mem.h"
#include "core/rng.h"
#include "core/tpool.h"
#include "core/utf8.h"

#include <jansson.h>

typedef struct {
    atomic_int calls;
    int hits[1000];
    int nth_seen;
} PoolCtx;

static void mark(void *p, int ith, int nth) {
    PoolCtx *c = p;
    atomic_fetch_add(&c->calls, 1);
    c->nth_seen = nth;
    long lo, hi;
    tpool_range(1000, ith, nth, &lo, &hi);
    for (long i = lo; i < hi; i++)
        c->hits[i]++;
}

Test(core, tpool_every_thread_runs_and_ranges_partition) {
    for (int n = 1; n <= 5; n++) {
        TPool *tp = tpool_new(n);
        cr_assert_not_null(tp);
        cr_assert_eq(tpool_size(tp), n);
        for (int round = 0; round < 200; round++) {
            PoolCtx c = {0};
            tpool_run(tp, mark, &c);
            cr_assert_eq(atomic_load(&c.calls), n, "round %d: %d calls, want %d", round,
                         atomic_load(&c.calls), n);
            for (int i = 0; i < 1000; i++)
                cr_assert_eq(c.hits[i], 1, "index %d covered %d times", i, c.hits[i]);
        }
        tpool_free(tp);
    }
}

Test(core, tpool_null_runs_inline) {
    PoolCtx c = {0};
    tpool_run(NULL, mark, &c);
    cr_assert_eq(atomic_load(&c.calls), 1);
    cr_assert_eq(c.nth_seen, 1);
}

Test(core, tpool_sleeps_and_wakes) {
    TPool *tp = tpool_new(3);
    PoolCtx c = {0};
    usleep(50 * 1000); /* long enough for workers to stop spinning and block */
    tpool_run(tp, mark, &c);
    cr_assert_eq(atomic_load(&c.calls), 3);
    tpool_free(tp);
}

Test(core, tpool_range_sizes) {
    long lo, hi, total = 0, prev = 0;
    for (int i = 0; i < 7; i++) {
        tpool_range(10, i, 7, &lo, &hi);
        cr_assert_eq(lo, prev);
        cr_assert(hi - lo == 1 || hi - lo == 2);
        total += hi - lo;
        prev = hi;
    }
    cr_assert_eq(total, 10);
}

Test(core, checked_arithmetic) {
    uint64_t r;
    cr_assert(mem_mul_ok(1ull << 31, 1ull << 32, &r) && r == 1ull << 63);
    cr_assert(!mem_mul_ok(1ull << 40, 1ull << 24, &r));
    cr_assert(!mem_add_ok(UINT64_MAX, 1, &r));
    cr_assert(mem_align_up_ok(33, 32, &r) && r == 64);
    cr_assert(mem_align_up_ok(64, 32, &r) && r == 64);
    cr_assert(!mem_align_up_ok(UINT64_MAX - 3, 32, &r));
    void *p = mem_alloc_aligned(100);
    cr_assert_not_null(p);
    cr_assert_eq((uintptr_t)p % MEM_ALIGN, 0);
    mem_free_aligned(p);
}

/* Large blocks are lazy mappings that start on a 2 MiB boundary (so a
 * transparent huge page can back them), zeroed, writable to the end. */
Test(core, large_blocks_are_huge_page_aligned) {
    const size_t sizes[] = {(size_t)1 << 20, ((size_t)3 << 20) + 5, (size_t)64 << 20};
    for (int i = 0; i < 3; i++) {
        unsigned char *p = mem_alloc_aligned(sizes[i]);
        cr_assert_not_null(p);
        cr_assert_eq((uintptr_t)p % ((uintptr_t)2 << 20), 0, "block of %zu bytes at %p", sizes[i],
                     (void *)p);
        cr_assert_eq(p[0], 0);
        cr_assert_eq(p[sizes[i] - 1], 0);
        p[0] = 1, p[sizes[i] - 1] = 2;
        mem_free_aligned(p);
    }
}

Test(core, err_formats_and_truncates) {
    Err e = {0};
    cr_assert_eq(err_set(&e, STATUS_LIMIT, "value %d over %d", 9, 8), STATUS_LIMIT);
    cr_assert_str_eq(e.msg, "value 9 over 8");
    err_prefix(&e, "file %s", "a.gguf");
    cr_assert_str_eq(e.msg, "file a.gguf: value 9 over 8");
    char big[2000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    err_set(&e, STATUS_FORMAT, "%s", big);
    cr_assert_eq(strlen(e.msg), ERR_MSG_MAX - 1);
    cr_assert_eq(err_set(NULL, STATUS_IO, "ignored"), STATUS_IO);
}

Test(core, mapfile_errors_name_the_path) {
    MapFile mf;
    Err e = {0};
    cr_assert_eq(mapfile_open(&mf, "/nonexistent/x.gguf", &e), STATUS_IO);
    cr_assert(strstr(e.msg, "/nonexistent/x.gguf"), "%s", e.msg);
    mapfile_close(&mf);
    cr_assert_eq(mapfile_open(&mf, "/tmp", &e), STATUS_IO);
    cr_assert(strstr(e.msg, "not a regular file"), "%s", e.msg);
    char path[] = "/tmp/cgpt-mapXXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    cr_assert_eq(write(fd, "hello", 5), 5);
    close(fd);
    cr_assert_eq(mapfile_open(&mf, path, &e), STATUS_OK);
    cr_assert_eq(mf.size, 5);
    cr_assert(!memcmp(mf.data, "hello", 5));
    mapfile_close(&mf);
    unlink(path);
}

/* Releasing part of a mapping loses nothing: the bytes read back from the
 * file (weights repacked at load release their source pages). */
Test(core, mapfile_release_keeps_contents) {
    char path[] = "/tmp/cgpt_map_XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    enum { N = 5 * 4096 + 123 };
    static unsigned char want[N];
    for (int i = 0; i < N; i++)
        want[i] = (unsigned char)(i * 7 + (i >> 9));
    cr_assert_eq(write(fd, want, N), N);
    close(fd);
    MapFile mf;
    Err e = {0};
    cr_assert_eq(mapfile_open(&mf, path, &e), STATUS_OK, "%s", e.msg);
    const unsigned char *d = mf.data;
    cr_assert_eq(memcmp(d, want, N), 0);
    mapfile_release(&mf, d + 100, N - 200); /* whole pages inside */
    mapfile_release(&mf, d, N);             /* all of it */
    mapfile_release(&mf, d + N - 10, 100);  /* past the end: ignored */
    cr_assert_eq(memcmp(d, want, N), 0);
    MapFile none = {0};
    mapfile_release(&none, want, N); /* not a mapping: nothing happens */
    mapfile_close(&mf);
    unlink(path);
}

Test(core, rng_is_deterministic_and_uniformish) {
    Rng a, b;
    rng_seed(&a, 123);
    rng_seed(&b, 123);
    double sum = 0, sq = 0;
    for (int i = 0; i < 100000; i++) {
        float x = rng_f32(&a);
        cr_assert_eq(x, rng_f32(&b));
        cr_assert(x >= 0.0f && x < 1.0f);
        sum += x;
    }
    cr_assert(sum / 100000 > 0.49 && sum / 100000 < 0.51, "mean %f", sum / 100000);
    sum = 0;
    for (int i = 0; i < 100000; i++) {
        float z = rng_normal(&a);
        sum += z;
        sq += (double)z * z;
    }
    cr_assert(sum / 100000 > -0.02 && sum / 100000 < 0.02, "normal mean %f", sum / 100000);
    cr_assert(sq / 100000 > 0.97 && sq / 100000 < 1.03, "normal var %f", sq / 100000);
}

/* utf8_valid_len against the Unicode standard's table of well-formed
 * sequences (Table 3-7) and, on random bytes, against jansson's own
 * validator (json_stringn refuses what is not UTF-8). */
Test(core, utf8_valid_len_follows_the_standard) {
    static const struct {
        const char *s;
        size_t n, valid;
        bool cut;
    } cases[] = {
        {"abc", 3, 3, false},
        {"\xC3\xA9", 2, 2, false},         /* U+00E9 */
        {"\xC0\x80", 2, 0, false},         /* overlong NUL */
        {"\xC1\xBF", 2, 0, false},         /* overlong */
        {"\xE0\x9F\xBF", 3, 0, false},     /* overlong 3-byte */
        {"\xE0\xA0\x80", 3, 3, false},     /* U+0800 */
        {"\xED\x9F\xBF", 3, 3, false},     /* U+D7FF */
        {"\xED\xA0\x80", 3, 0, false},     /* a surrogate */
        {"\xEF\xBF\xBF", 3, 3, false},     /* U+FFFF */
        {"\xF0\x8F\xBF\xBF", 4, 0, false}, /* overlong 4-byte */
        {"\xF0\x90\x80\x80", 4, 4, false}, /* U+10000 */
        {"\xF4\x8F\xBF\xBF", 4, 4, false}, /* U+10FFFF */
        {"\xF4\x90\x80\x80", 4, 0, false}, /* past U+10FFFF */
        {"\xF5\x80\x80\x80", 4, 0, false},
        {"\x80", 1, 0, false}, /* a lone continuation */
        {"a\xC3", 2, 1, true}, /* cut by the end */
        {"a\xF0\x9F\x98", 4, 1, true},
        {"a\xE0\x80", 3, 1, false}, /* bad second byte before the end */
        {"a\xC3(", 3, 1, false},
        {"x\0y", 3, 3, false}, /* NUL is a character */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        bool cut = !cases[i].cut;
        cr_expect_eq(utf8_valid_len(cases[i].s, cases[i].n, &cut), cases[i].valid, "case %zu", i);
        cr_expect_eq(cut, cases[i].cut, "case %zu: cut", i);
    }
    Rng r;
    rng_seed(&r, 7);
    static const unsigned char pool[] = {'a',  0x00, 0x7F, 0x80, 0x9F, 0xA0, 0xBF, 0xC0, 0xC2,
                                         0xDF, 0xE0, 0xED, 0xEF, 0xF0, 0xF4, 0xF5, 0xFF};
    for (int t = 0; t < 200000; t++) {
        char b[8];
        size_t n = 1 + rng_u64(&r) % sizeof b;
        for (size_t k = 0; k < n; k++)
            b[k] = (char)pool[rng_u64(&r) % sizeof pool];
        json_t *j = json_stringn(b, n);
        bool jansson_ok = j != NULL;
        json_decref(j);
        cr_assert_eq(utf8_valid_len(b, n, NULL) == n, jansson_ok, "bytes %zu, trial %d", n, t);
    }
}
