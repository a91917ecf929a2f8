/* fuzz_model.c - libFuzzer target for model loading and one forward pass.
 *
 * The bytes become a file (memfd) that model_load() opens as a model; when
 * it loads, two rows run through the forward pass. Everything a GGUF file
 * can say about hyperparameters, tensor shapes and types must end in a clean
 * error or a correct run, never a crash, hang or over-large allocation.
 * Seeds: tiny random models of each architecture (fuzz/corpus/model/). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "model/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    int fd = memfd_create("fuzz-model", MFD_CLOEXEC);
    if (fd < 0)
        return 0;
    if (size && write(fd, data, size) != (ssize_t)size) {
        close(fd);
        return 0;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    ModelParams p = {.n_threads = 1, .n_ctx = 8, .n_seq_max = 2, .n_batch = 4};
    Model *m = NULL;
    Err err = {0};
    if (model_load(&m, path, &p, &err) == STATUS_OK) {
        const ModelConfig *c = model_config(m);
        float *logits = malloc(sizeof(float) * (size_t)c->n_vocab * 2);
        BatchRow rows[2] = {{0, 0, 0, true}, {(int32_t)(c->n_vocab - 1), 0, 1, true}};
        if (logits && model_forward(m, rows, 2, logits, &err) != STATUS_OK)
            abort(); /* valid rows on a loaded model must run */
        free(logits);
        model_free(m);
    } else if (!err.msg[0]) {
        abort(); /* every failure says why */
    }
    close(fd);
    return 0;
}
