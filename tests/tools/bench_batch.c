/* bench_batch.c - the engine alone under batched decode: N sequences each
 * prefilled with 40 tokens, then decode steps of N rows (one per sequence)
 * through model_forward; prints ms per step and tokens/s. What the
 * server's batching can gain at most on this machine (no sampling, HTTP or
 * prefill of new requests), for docs/PERFORMANCE.md.
 *
 *   bench_batch MODEL.gguf [N=16] [STEPS=40] [THREADS=0: all CPUs] [raw]
 *
 * "raw" keeps the weights in the file's layout (ModelParams.no_repack), for
 * an A/B of the repacked kernels in one build.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/perf.h"
#include "model/model.h"

#define PROMPT 40

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench_batch MODEL.gguf [N] [STEPS] [THREADS] [raw]\n");
        return 1;
    }
    int n = argc > 2 ? atoi(argv[2]) : 16, steps = argc > 3 ? atoi(argv[3]) : 40;
    int threads = argc > 4 ? atoi(argv[4]) : 0;
    bool raw = argc > 5 && !strcmp(argv[5], "raw");
    if (n < 1 || n > 256 || steps < 1 || steps > 100000 || threads < 0 || threads > 256) {
        fprintf(stderr, "bench_batch: N must be in [1, 256], STEPS in [1, 100000] and THREADS in "
                        "[0, 256]\n");
        return 1;
    }
    ModelParams mp = {.no_repack = raw,
                      .n_threads = threads,
                      .n_ctx = PROMPT + steps + 1,
                      .n_seq_max = n,
                      .n_batch = PROMPT > n ? PROMPT : n};
    Model *m = NULL;
    Err err = {0};
    if (model_load(&m, argv[1], &mp, &err)) {
        fprintf(stderr, "bench_batch: %s\n", err.msg);
        return 1;
    }
    int V = model_config(m)->n_vocab;
    float *logits = malloc(sizeof(float) * (size_t)V * (size_t)(n > PROMPT ? n : PROMPT));
    BatchRow *rows = malloc(sizeof(BatchRow) * (size_t)(n > PROMPT ? n : PROMPT));
    if (!logits || !rows) {
        fprintf(stderr, "bench_batch: out of memory\n");
        return 1;
    }
    int rc = 0;
    for (int s = 0; s < n && !rc; s++) {
        for (int i = 0; i < PROMPT; i++)
            rows[i] = (BatchRow){(s * 7 + i * 13) % V, i, s, i == PROMPT - 1};
        rc = model_forward(m, rows, PROMPT, logits, &err) != STATUS_OK;
    }
    double t0 = perf_now();
    for (int k = 0; k < steps && !rc; k++) {
        for (int s = 0; s < n; s++)
            rows[s] = (BatchRow){(k * 31 + s) % V, PROMPT + k, s, true};
        rc = model_forward(m, rows, n, logits, &err) != STATUS_OK;
    }
    double dt = perf_now() - t0;
    if (rc)
        fprintf(stderr, "bench_batch: %s\n", err.msg);
    else
        printf("%d rows: %.2f ms/step, %.1f tokens/s\n", n, 1e3 * dt / steps, n * steps / dt);
    free(logits);
    free(rows);
    model_free(m);
    return rc;
}
