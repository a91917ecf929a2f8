/* tpool.c - persistent workers that spin briefly, then sleep on a condvar.
 *
 * Each tpool_run() bumps a generation counter; workers waiting for a new
 * generation spin for a short while (kernels come in quick succession during
 * a forward pass) and then block, so an idle server does not burn CPU. */
#include "core/tpool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

/* Spin this many rounds before blocking; every TPOOL_YIELD_EVERY rounds the
 * spinner yields, so an oversubscribed machine (more runnable threads than
 * cores) still runs the thread that holds the work. */
#define TPOOL_SPIN_ITERS 8192
#define TPOOL_YIELD_EVERY 256

struct TPool {
    int n;
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t cv_work;
    pthread_cond_t cv_done;
    atomic_uint gen;    /* bumped once per tpool_run */
    atomic_int pending; /* workers still running the current task */
    atomic_int stop;
    TPoolFn fn;
    void *ctx;
};

typedef struct {
    TPool *tp;
    int ith;
} Worker;

static void *worker_main(void *arg) {
    Worker *w = arg;
    TPool *tp = w->tp;
    int ith = w->ith;
    free(w);
    unsigned seen = 0;
    for (;;) {
        unsigned g;
        int spins = 0;
        while ((g = atomic_load_explicit(&tp->gen, memory_order_acquire)) == seen &&
               !atomic_load(&tp->stop) && spins < TPOOL_SPIN_ITERS) {
            if (++spins % TPOOL_YIELD_EVERY == 0)
                sched_yield();
            else
                __builtin_ia32_pause();
        }
        if (g == seen && !atomic_load(&tp->stop)) {
            pthread_mutex_lock(&tp->mu);
            while ((g = atomic_load(&tp->gen)) == seen && !atomic_load(&tp->stop))
                pthread_cond_wait(&tp->cv_work, &tp->mu);
            pthread_mutex_unlock(&tp->mu);
        }
        if (atomic_load(&tp->stop))
            return NULL;
        seen = g;
        tp->fn(tp->ctx, ith, tp->n);
        if (atomic_fetch_sub_explicit(&tp->pending, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&tp->mu);
            pthread_cond_signal(&tp->cv_done);
            pthread_mutex_unlock(&tp->mu);
        }
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
    atomic_store(&tp->pending, tp->n - 1);
    pthread_mutex_lock(&tp->mu);
    atomic_fetch_add_explicit(&tp->gen, 1, memory_order_release);
    pthread_cond_broadcast(&tp->cv_work);
    pthread_mutex_unlock(&tp->mu);
    fn(ctx, 0, tp->n);
    int spins = 0;
    while (atomic_load_explicit(&tp->pending, memory_order_acquire) != 0 &&
           spins < TPOOL_SPIN_ITERS) {
        if (++spins % TPOOL_YIELD_EVERY == 0)
            sched_yield();
        else
            __builtin_ia32_pause();
    }
    if (atomic_load(&tp->pending) != 0) {
        pthread_mutex_lock(&tp->mu);
        while (atomic_load(&tp->pending) != 0)
            pthread_cond_wait(&tp->cv_done, &tp->mu);
        pthread_mutex_unlock(&tp->mu);
    }
}
