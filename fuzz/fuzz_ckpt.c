/* fuzz_ckpt.c - libFuzzer target for the trainer state file reader.
 *
 * The input is loaded twice with ckpt_state_load_mem(): as it is, and with
 * its last 8 bytes replaced by the correct FNV-1a checksum, so that the
 * checks behind the checksum (config, sizes, settings, non-finite values)
 * are reached by mutated inputs too. An accepted state must satisfy every
 * promise of ckpt.h; every rejection must say why. The input is copied to
 * an exactly-sized buffer so over-reads are caught by ASan.
 * Seeds: fuzz/corpus/ckpt/ (valid tiny states and broken ones). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "train/ckpt.h"

static void check_one(const uint8_t *data, size_t size) {
    CkptState s;
    Err err = {0};
    if (ckpt_state_load_mem(data, size, &s, &err) != STATUS_OK) {
        if (!err.msg[0] || s.params || s.m || s.v || s.settings_json)
            abort(); /* every failure says why and leaves a zeroed state */
        return;
    }
    if (s.n_params != tmodel_config_n_params(&s.cfg) || !s.settings_json)
        abort();
    if (size != CKPT_HEADER_BYTES + strlen(s.settings_json) + 12 * s.n_params + 8)
        abort();
    for (size_t i = 0; i < s.n_params; i++)
        if (!isfinite(s.params[i]) || !isfinite(s.m[i]) || !(s.v[i] >= 0.0f) || isinf(s.v[i]))
            abort();
    ckpt_state_free(&s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    check_one(buf, size);
    if (size >= 8) {
        uint64_t h = ckpt_fnv1a(CKPT_FNV_OFFSET, buf, size - 8);
        for (int i = 0; i < 8; i++)
            buf[size - 8 + i] = (uint8_t)(h >> (8 * i));
        check_one(buf, size);
    }
    free(buf);
    return 0;
}
