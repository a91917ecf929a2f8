/* dist.h - data parallelism over MPI (OpenMPI): one process per rank, the
 * gradients summed with an all-reduce.
 *
 * A process started by mpirun (the environment has OMPI_COMM_WORLD_SIZE)
 * initialises MPI in dist_init() (MPI_THREAD_FUNNELED: only the calling
 * thread ever calls MPI; the thread pool never does). A process started any
 * other way is a single rank: rank 0 of 1, and every collective is a no-op
 * (or a copy), so the trainer runs unchanged without MPI.
 *
 * Every call is collective (all ranks call it in the same order) except
 * dist_rank/dist_size/dist_active/dist_abort. MPI errors come back as
 * STATUS_IO with MPI's error string (the communicator is switched to
 * MPI_ERRORS_RETURN).
 *
 * The sums of MPI_Allreduce are the same bits on every rank with OpenMPI's
 * algorithms (each element is reduced once and then distributed, or reduced
 * in the same commutative pairs everywhere); tests/tools/disttest checks it
 * on 2 and 3 ranks. Callers that must never drift can compare a hash of
 * their parameters with dist_all_equal_u64().
 *
 * Run: mpirun --allow-run-as-root --oversubscribe -np 2 build/cgpt train ...
 * (as root; --oversubscribe when ranks exceed cores). */
#ifndef CGPT_TRAIN_DIST_H
#define CGPT_TRAIN_DIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

/* The environment variable mpirun sets that makes dist_init() start MPI. */
#define DIST_ENV_WORLD_SIZE "OMPI_COMM_WORLD_SIZE"
/* Elements (or bytes, for dist_bcast) per MPI call: MPI counts are int. */
#define DIST_MAX_CHUNK 0x7fffffff

/* Initialise (see above). Idempotent: later calls return STATUS_OK. */
Status dist_init(Err *err);

/* This process's rank in [0, dist_size()); 0 and 1 before dist_init() or
 * without MPI. */
int dist_rank(void);
int dist_size(void);
/* True when MPI was initialised (started by mpirun, even with -np 1). */
bool dist_active(void);

/* In-place sums over all ranks of buf[0..n). No-op for one process. */
Status dist_allreduce_sum_f32(float *buf, size_t n, Err *err);
Status dist_allreduce_sum_f64(double *buf, size_t n, Err *err);

/* Broadcast 'bytes' bytes of buf from rank 'root' (0 <= root < size) to all. */
Status dist_bcast(void *buf, size_t bytes, int root, Err *err);

/* *equal = every rank passed the same v (e.g. a config hash). */
Status dist_all_equal_u64(uint64_t v, bool *equal, Err *err);

void dist_barrier(void);
/* MPI_Finalize when active (once); harmless otherwise. */
void dist_finalize(void);
/* Tear down all ranks with exit code 'code' (MPI_Abort when active, else
 * exit()). For src/cli only. */
_Noreturn void dist_abort(int code);

/* Tests: split collectives into chunks of at most 'n' elements (0: back to
 * DIST_MAX_CHUNK), so the chunking is exercised without 8 GiB buffers. */
void dist_set_chunk(size_t n);

#endif
