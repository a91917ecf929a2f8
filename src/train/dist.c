/* dist.c - MPI wrappers: start only under mpirun, chunk counts to int, turn
 * MPI error codes into Status + message. */
#include "train/dist.h"

#include <mpi.h>
#include <stdlib.h>

static struct {
    bool inited; /* dist_init() ran */
    bool active; /* MPI initialised by us */
    bool finalized;
    int rank, size;
    size_t chunk; /* elements per MPI call */
} D = {.rank = 0, .size = 1, .chunk = DIST_MAX_CHUNK};

static Status mpi_fail(Err *err, int code, const char *what) {
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(code, msg, &len) != MPI_SUCCESS || len <= 0)
        return err_set(err, STATUS_IO, "%s failed (MPI error %d)", what, code);
    return err_set(err, STATUS_IO, "%s failed on rank %d: %.*s", what, D.rank, len, msg);
}

Status dist_init(Err *err) {
    if (D.inited)
        return STATUS_OK;
    if (!getenv(DIST_ENV_WORLD_SIZE)) {
        D.inited = true;
        return STATUS_OK;
    }
    int already = 0;
    MPI_Initialized(&already);
    if (!already) {
        int provided = 0;
        int rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
        if (rc != MPI_SUCCESS)
            return mpi_fail(err, rc, "MPI_Init_thread");
    }
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    int rc;
    if ((rc = MPI_Comm_rank(MPI_COMM_WORLD, &D.rank)) != MPI_SUCCESS ||
        (rc = MPI_Comm_size(MPI_COMM_WORLD, &D.size)) != MPI_SUCCESS)
        return mpi_fail(err, rc, "MPI_Comm_rank/size");
    D.active = true;
    D.inited = true;
    return STATUS_OK;
}

int dist_rank(void) { return D.rank; }
int dist_size(void) { return D.size; }
bool dist_active(void) { return D.active; }

void dist_set_chunk(size_t n) { D.chunk = n == 0 || n > DIST_MAX_CHUNK ? DIST_MAX_CHUNK : n; }

/* Collectives after dist_finalize() are a caller bug that would otherwise
 * crash inside MPI. */
static Status check_live(const char *what, Err *err) {
    if (D.finalized)
        return err_set(err, STATUS_INVALID, "%s after dist_finalize()", what);
    return STATUS_OK;
}

static Status allreduce(void *buf, size_t n, MPI_Datatype type, size_t elem, const char *what,
                        Err *err) {
    Status st = check_live(what, err);
    if (st != STATUS_OK)
        return st;
    if (!D.active || D.size == 1)
        return STATUS_OK;
    char *p = buf;
    while (n > 0) {
        size_t k = n < D.chunk ? n : D.chunk;
        int rc = MPI_Allreduce(MPI_IN_PLACE, p, (int)k, type, MPI_SUM, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS)
            return mpi_fail(err, rc, what);
        p += k * elem;
        n -= k;
    }
    return STATUS_OK;
}

Status dist_allreduce_sum_f32(float *buf, size_t n, Err *err) {
    return allreduce(buf, n, MPI_FLOAT, sizeof(float), "MPI_Allreduce(float)", err);
}

Status dist_allreduce_sum_f64(double *buf, size_t n, Err *err) {
    return allreduce(buf, n, MPI_DOUBLE, sizeof(double), "MPI_Allreduce(double)", err);
}

Status dist_bcast(void *buf, size_t bytes, int root, Err *err) {
    if (root < 0 || root >= D.size)
        return err_set(err, STATUS_INVALID, "broadcast root %d out of range [0, %d)", root, D.size);
    Status st = check_live("MPI_Bcast", err);
    if (st != STATUS_OK)
        return st;
    if (!D.active || D.size == 1)
        return STATUS_OK;
    char *p = buf;
    while (bytes > 0) {
        size_t k = bytes < D.chunk ? bytes : D.chunk;
        int rc = MPI_Bcast(p, (int)k, MPI_BYTE, root, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS)
            return mpi_fail(err, rc, "MPI_Bcast");
        p += k;
        bytes -= k;
    }
    return STATUS_OK;
}

Status dist_all_equal_u64(uint64_t v, bool *equal, Err *err) {
    *equal = true;
    Status st = check_live("MPI_Allreduce(min/max)", err);
    if (st != STATUS_OK)
        return st;
    if (!D.active || D.size == 1)
        return STATUS_OK;
    uint64_t lo = v, hi = v;
    int rc;
    if ((rc = MPI_Allreduce(MPI_IN_PLACE, &lo, 1, MPI_UINT64_T, MPI_MIN, MPI_COMM_WORLD)) !=
            MPI_SUCCESS ||
        (rc = MPI_Allreduce(MPI_IN_PLACE, &hi, 1, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD)) !=
            MPI_SUCCESS)
        return mpi_fail(err, rc, "MPI_Allreduce(min/max)");
    *equal = lo == hi;
    return STATUS_OK;
}

void dist_barrier(void) {
    if (D.active && !D.finalized)
        MPI_Barrier(MPI_COMM_WORLD);
}

void dist_finalize(void) {
    if (D.active && !D.finalized) {
        MPI_Finalize();
        D.finalized = true;
    }
}

_Noreturn void dist_abort(int code) {
    if (D.active && !D.finalized)
        MPI_Abort(MPI_COMM_WORLD, code);
    exit(code);
}
