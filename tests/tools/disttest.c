/* disttest.c - checks src/train/dist over real MPI ranks.
 *
 *   mpirun --allow-run-as-root --oversubscribe -np 2 build/tools/disttest
 *   build/tools/disttest            (one process: the collectives are no-ops)
 *
 * Every rank fills vectors whose sums are known in closed form (small
 * integers and halves, exact in float and double), all-reduces them, and
 * checks every element; the same with a small chunk size so the splitting
 * into several MPI calls is exercised; random vectors must come out with
 * the same bits on every rank (hash compared with dist_all_equal_u64) and
 * close to a sum each rank recomputes from all ranks' seeds; broadcasts from
 * rank 0 and from the last rank; dist_all_equal_u64 on equal and unequal
 * values. Exit 0 when every rank passes (a rank's failure is all-reduced so
 * every rank exits 1). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "train/dist.h"

static int g_fail;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "disttest rank %d: ", dist_rank());                                    \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fprintf(stderr, "\n");                                                                 \
            g_fail++;                                                                              \
        }                                                                                          \
    } while (0)

static void ok_or_die(Status st, const Err *err, const char *what) {
    if (st != STATUS_OK) {
        fprintf(stderr, "disttest rank %d: %s: %s\n", dist_rank(), what, err->msg);
        dist_abort(1);
    }
}

static uint64_t fnv(const void *p, size_t n) {
    const unsigned char *b = p;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

static void check_exact_sums(size_t n, size_t chunk, Err *err) {
    int R = dist_size(), r = dist_rank();
    dist_set_chunk(chunk);
    float *f = malloc(n * sizeof *f);
    double *d = malloc(n * sizeof *d);
    for (size_t i = 0; i < n; i++) {
        f[i] = (float)(r + 1) + (float)(i % 7) - 0.5f * (float)(i % 3);
        d[i] = 0.5 * r + (double)(i % 11) * 1e6;
    }
    ok_or_die(dist_allreduce_sum_f32(f, n, err), err, "allreduce f32");
    ok_or_die(dist_allreduce_sum_f64(d, n, err), err, "allreduce f64");
    size_t bad_f = 0, bad_d = 0;
    for (size_t i = 0; i < n; i++) {
        double want_f = R * (R + 1) / 2.0 + R * ((double)(i % 7) - 0.5 * (double)(i % 3));
        double want_d = 0.5 * R * (R - 1) / 2.0 + R * (double)(i % 11) * 1e6;
        if ((double)f[i] != want_f && bad_f++ == 0)
            CHECK(0, "f32 n %zu chunk %zu: [%zu] = %.9g want %.9g", n, chunk, i, (double)f[i],
                  want_f);
        if (d[i] != want_d && bad_d++ == 0)
            CHECK(0, "f64 n %zu chunk %zu: [%zu] = %.17g want %.17g", n, chunk, i, d[i], want_d);
    }
    free(f);
    free(d);
    dist_set_chunk(0);
}

static void check_random_sums_same_bits(size_t n, Err *err) {
    int R = dist_size(), r = dist_rank();
    float *f = malloc(n * sizeof *f);
    Rng rng;
    rng_seed(&rng, 1000 + (uint64_t)r);
    for (size_t i = 0; i < n; i++)
        f[i] = rng_normal(&rng);
    ok_or_die(dist_allreduce_sum_f32(f, n, err), err, "allreduce random");
    bool same = false;
    ok_or_die(dist_all_equal_u64(fnv(f, n * sizeof *f), &same, err), err, "all_equal hash");
    CHECK(same, "random f32 sums (n %zu) differ in bits between ranks", n);
    /* Every rank recomputes the sum from all seeds, in double. */
    double *want = calloc(n, sizeof *want);
    for (int k = 0; k < R; k++) {
        rng_seed(&rng, 1000 + (uint64_t)k);
        for (size_t i = 0; i < n; i++)
            want[i] += rng_normal(&rng);
    }
    double max_err = 0;
    for (size_t i = 0; i < n; i++)
        max_err = fmax(max_err, fabs((double)f[i] - want[i]));
    CHECK(max_err <= 1e-5 * R, "random f32 sums: max |err| %.3g vs double", max_err);
    free(want);
    free(f);
}

static void check_bcast(int root, size_t bytes, size_t chunk, Err *err) {
    dist_set_chunk(chunk);
    unsigned char *b = malloc(bytes);
    for (size_t i = 0; i < bytes; i++)
        b[i] = dist_rank() == root ? (unsigned char)(i * 31 + 7) : 0xEE;
    ok_or_die(dist_bcast(b, bytes, root, err), err, "bcast");
    size_t bad = 0;
    for (size_t i = 0; i < bytes; i++)
        bad += b[i] != (unsigned char)(i * 31 + 7);
    CHECK(bad == 0, "bcast from %d (%zu bytes, chunk %zu): %zu bytes wrong", root, bytes, chunk,
          bad);
    free(b);
    dist_set_chunk(0);
}

int main(void) {
    Err err = {0};
    ok_or_die(dist_init(&err), &err, "dist_init");
    ok_or_die(dist_init(&err), &err, "dist_init (second call)");
    int R = dist_size(), r = dist_rank();
    CHECK(R >= 1 && r >= 0 && r < R, "rank %d of %d", r, R);
    if (getenv(DIST_ENV_WORLD_SIZE))
        CHECK(dist_active() && R == atoi(getenv(DIST_ENV_WORLD_SIZE)),
              "mpirun said %s ranks, dist_size %d", getenv(DIST_ENV_WORLD_SIZE), R);
    else
        CHECK(!dist_active() && R == 1, "without mpirun: active %d size %d", dist_active(), R);

    check_exact_sums(0, 0, &err);
    check_exact_sums(1, 0, &err);
    check_exact_sums(1000003, 0, &err);
    check_exact_sums(1001, 64, &err); /* 16 chunks, the last partial */
    check_exact_sums(7, 1, &err);
    check_random_sums_same_bits(1 << 20, &err);
    check_random_sums_same_bits(12345, &err);
    check_bcast(0, 100003, 0, &err);
    check_bcast(R - 1, 4097, 1000, &err);

    bool same = false;
    ok_or_die(dist_all_equal_u64(0x1234567890abcdefull, &same, &err), &err, "all_equal");
    CHECK(same, "equal values reported unequal");
    ok_or_die(dist_all_equal_u64((uint64_t)r, &same, &err), &err, "all_equal");
    CHECK(same == (R == 1), "rank-dependent values: equal = %d with %d ranks", same, R);
    CHECK(dist_bcast(&same, 1, R, &err) == STATUS_INVALID, "bcast root %d accepted", R);

    /* Everyone learns whether anyone failed. */
    double fails = g_fail;
    ok_or_die(dist_allreduce_sum_f64(&fails, 1, &err), &err, "allreduce failures");
    dist_barrier();
    if (r == 0)
        printf("disttest: %d rank(s), %s (%.0f failed checks)\n", R, fails ? "FAILED" : "ok",
               fails);
    dist_finalize();
    Status st = dist_allreduce_sum_f64(&fails, 1, &err);
    if (st != (dist_active() ? STATUS_INVALID : STATUS_OK)) {
        fprintf(stderr, "disttest rank %d: a collective after finalize gave %s\n", r,
                status_name(st));
        return 1;
    }
    return fails ? 1 : 0;
}
