/* tpool.h - the one persistent thread pool.
 *
 * Created once (at model load or program start) and reused for every kernel:
 * tpool_run() hands the same function to all threads, each called with its
 * index 'ith' in [0, nth), each index exactly once; the calling thread works
 * as ith 0, then also runs any index no worker has claimed yet (so a
 * descheduled worker never stalls the caller). Kernels split
 * rows by ith/nth. tpool_run() returns when every thread has finished, so a
 * kernel's writes are visible to the caller afterwards. Not reentrant: one
 * tpool_run() at a time per pool, and a task must not call tpool_run(). */
#ifndef CGPT_CORE_TPOOL_H
#define CGPT_CORE_TPOOL_H

typedef struct TPool TPool;

typedef void (*TPoolFn)(void *ctx, int ith, int nth);

#define TPOOL_MAX_THREADS 256

/* Returns an owned pool of 'n_threads' (1..TPOOL_MAX_THREADS; 0 means the
 * number of online CPUs), or NULL when threads cannot be created. Free with
 * tpool_free(). */
TPool *tpool_new(int n_threads);
void tpool_free(TPool *tp);
int tpool_size(const TPool *tp);

/* Run fn(ctx, ith, nth) on every thread and wait. A NULL pool runs fn(ctx, 0, 1). */
void tpool_run(TPool *tp, TPoolFn fn, void *ctx);

/* Split [0, n) into nth nearly equal ranges; sets [*lo, *hi) for thread ith. */
static inline void tpool_range(long n, int ith, int nth, long *lo, long *hi) {
    long per = n / nth, rem = n % nth;
    *lo = ith * per + (ith < rem ? ith : rem);
    *hi = *lo + per + (ith < rem ? 1 : 0);
}

#endif
