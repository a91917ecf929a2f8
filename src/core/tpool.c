/* tpool.c - persistent workers that spin briefly, then sleep on a condvar;
 * indices are claimed, so a late worker never holds up the caller.
 *
 * Each tpool_run() publishes (fn, ctx), resets a claim counter and bumps a
 * generation. The caller runs index 0, then it and the woken workers claim
 * the remaining indices 1..n-1 from the counter (an atomic fetch-add), so
 * every index runs exactly once and whichever threads are actually on a CPU
 * do the work: on a shared or oversubscribed machine a descheduled worker
 * costs parallelism, not a wait. Workers waiting for a new generation spin
 * for TPOOL_SPIN_NS (kernels come in quick succession during a forward
 * pass), then block, so an idle pool does not burn a CPU; the caller only
 * takes the mutex to wake a worker that is actually asleep.
 *
 * Memory order: fn/ctx are written before the counter is reset (release);
 * a worker reads them only after a successful claim (acquire on the same
 * counter), and the caller writes them again only after every claimed index
 * has finished, so no read races a write. */
#include "core/tpool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

/* Spin this long for new work (workers) or for the last index (caller)
 * before blocking; every TPOOL_YIELD_EVERY rounds the spinner yields, so an
 * oversubscribed machine still runs the thread that holds the work. */
#define TPOOL_SPIN_NS 200000L
#define TPOOL_YIELD_EVERY 1024
#define TPOOL_CLOCK_EVERY 64 /* spin rounds between clock reads */

struct TPool {
    int n;
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t cv_work;
    pthread_cond_t cv_done;
    atomic_uint gen;        /* bumped once per tpool_run */
    atomic_int next;        /* next index to claim in the current run */
    atomic_int done;        /* indices 1..n-1 finished in the current run */
    atomic_int sleepers;    /* workers blocked (or about to block) on cv_work */
    atomic_int caller_asleep;
    atomic_int stop;
    TPoolFn fn;
    void *ctx;
};

typedef struct {
    TPool *tp;
    int ith;
} Worker;

static long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000L + t.tv_nsec;
}

/* One spin round: pause, or yield every TPOOL_YIELD_EVERY rounds. Returns
 * false once the spin budget that started at *t0 is spent. */
static int spin_round(int *spins, long *t0) {
    ++*spins;
    if (*spins % TPOOL_YIELD_EVERY == 0)
        sched_yield();
    else
        __builtin_ia32_pause();
    if (*spins % TPOOL_CLOCK_EVERY == 0) {
        if (*t0 == 0)
            *t0 = now_ns();
        else if (now_ns() - *t0 > TPOOL_SPIN_NS)
            return 0;
    }
    return 1;
}

/* Claim and run indices of the current run until none is left. */
static void run_claims(TPool *tp) {
    for (;;) {
        int i = atomic_fetch_add_explicit(&tp->next, 1, memory_order_acq_rel);
        if (i >= tp->n)
            return;
        tp->fn(tp->ctx, i, tp->n);
        if (atomic_fetch_add(&tp->done, 1) == tp->n - 2 && atomic_load(&tp->caller_asleep)) {
            pthread_mutex_lock(&tp->mu);
            pthread_cond_signal(&tp->cv_done);
            pthread_mutex_unlock(&tp->mu);
        }
    }
}

static void *worker_main(void *arg) {
    Worker *w = arg;
    TPool *tp = w->tp;
    free(w);
    unsigned seen = 0;
    for (;;) {
        unsigned g;
        int spins = 0;
        long t0 = 0;
        while ((g = atomic_load_explicit(&tp->gen, memory_order_acquire)) == seen &&
               !atomic_load_explicit(&tp->stop, memory_order_relaxed) && spin_round(&spins, &t0))
            ;
        if (g == seen && !atomic_load(&tp->stop)) {
            atomic_fetch_add(&tp->sleepers, 1);
            pthread_mutex_lock(&tp->mu);
            while ((g = atomic_load(&tp->gen)) == seen && !atomic_load(&tp->stop))
                pthread_cond_wait(&tp->cv_work, &tp->mu);
            pthread_mutex_unlock(&tp->mu);
            atomic_fetch_sub(&tp->sleepers, 1);
        }
        if (atomic_load(&tp->stop))
            return NULL;
        seen = g;
        run_claims(tp);
    }
}

TPool *tpool_new(int n_threads) {
    if (n_threads <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = c > 0 ? (int)c : 1;
    }
    if (n_threads > TPOOL_MAX_THREADS)
        n_threads = TPOOL_MAX_THREADS;
    TPool *tp = calloc(1, sizeof *tp);
    if (!tp)
        return NULL;
    tp->n = n_threads;
    atomic_store(&tp->next, n_threads); /* nothing to claim yet */
    pthread_mutex_init(&tp->mu, NULL);
    pthread_cond_init(&tp->cv_work, NULL);
    pthread_cond_init(&tp->cv_done, NULL);
    tp->threads = calloc((size_t)n_threads, sizeof *tp->threads);
    if (!tp->threads) {
        free(tp);
        return NULL;
    }
    for (int i = 1; i < n_threads; i++) {
        Worker *w = malloc(sizeof *w);
        if (!w || (w->tp = tp, w->ith = i, pthread_create(&tp->threads[i], NULL, worker_main, w))) {
            free(w);
            tp->n = i; /* only threads 1..i-1 exist */
            tpool_free(tp);
            return NULL;
        }
    }
    return tp;
}

void tpool_free(TPool *tp) {
    if (!tp)
        return;
    pthread_mutex_lock(&tp->mu);
    atomic_store(&tp->stop, 1);
    pthread_cond_broadcast(&tp->cv_work);
    pthread_mutex_unlock(&tp->mu);
    for (int i = 1; i < tp->n; i++)
        pthread_join(tp->threads[i], NULL);
    pthread_mutex_destroy(&tp->mu);
    pthread_cond_destroy(&tp->cv_work);
    pthread_cond_destroy(&tp->cv_done);
    free(tp->threads);
    free(tp);
}

int tpool_size(const TPool *tp) { return tp ? tp->n : 1; }

void tpool_run(TPool *tp, TPoolFn fn, void *ctx) {
    if (!tp || tp->n == 1) {
        fn(ctx, 0, 1);
        return;
    }
    tp->fn = fn;
    tp->ctx = ctx;
    atomic_store(&tp->done, 0);
    atomic_store_explicit(&tp->next, 1, memory_order_release);
    atomic_fetch_add(&tp->gen, 1);
    if (atomic_load(&tp->sleepers) > 0) {
        pthread_mutex_lock(&tp->mu);
        pthread_cond_broadcast(&tp->cv_work);
        pthread_mutex_unlock(&tp->mu);
    }
    fn(ctx, 0, tp->n);
    run_claims(tp);
    /* every index is claimed; wait for the ones still running elsewhere */
    int spins = 0;
    long t0 = 0;
    while (atomic_load_explicit(&tp->done, memory_order_acquire) != tp->n - 1 &&
           spin_round(&spins, &t0))
        ;
    if (atomic_load(&tp->done) != tp->n - 1) {
        atomic_store(&tp->caller_asleep, 1);
        pthread_mutex_lock(&tp->mu);
        while (atomic_load(&tp->done) != tp->n - 1)
            pthread_cond_wait(&tp->cv_done, &tp->mu);
        pthread_mutex_unlock(&tp->mu);
        atomic_store(&tp->caller_asleep, 0);
    }
}
