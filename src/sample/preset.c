/* preset.c - general.sampling.* keys into sampler settings (preset.h). */
#include "sample/preset.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* One honoured key: where its value goes and its accepted range. An open
 * lower bound (lo_open) excludes 'lo' itself. */
typedef struct {
    const char *key;
    const char *name; /* as preset_describe prints it */
    unsigned bit;
    bool is_int;
    double lo, hi;
    bool lo_open;
} PresetKey;

static const PresetKey KEYS[] = {
    {"general.sampling.temp", "temp", PRESET_TEMP, false, 0, PRESET_MAX_TEMP, false},
    {"general.sampling.top_k", "top_k", PRESET_TOP_K, true, 0, PRESET_MAX_TOP_K, false},
    {"general.sampling.top_p", "top_p", PRESET_TOP_P, false, 0, 1, true},
    {"general.sampling.min_p", "min_p", PRESET_MIN_P, false, 0, 1, false},
    {"general.sampling.penalty_repeat", "repeat_penalty", PRESET_REPEAT, false, 0,
     PRESET_MAX_REPEAT, true},
    {"general.sampling.penalty_last_n", "repeat_last_n", PRESET_LAST_N, true, -1,
     SAMPLER_MAX_LAST_N, false},
};
#define N_KEYS (sizeof KEYS / sizeof KEYS[0])

static void store(SamplerParams *sp, unsigned bit, double v) {
    switch (bit) {
    case PRESET_TEMP: sp->temperature = (float)v; break;
    case PRESET_TOP_K: sp->top_k = (int)v; break;
    case PRESET_TOP_P: sp->top_p = (float)v; break;
    case PRESET_MIN_P: sp->min_p = (float)v; break;
    case PRESET_REPEAT: sp->repeat_penalty = (float)v; break;
    case PRESET_LAST_N: sp->penalty_last_n = (int)v; break;
    default: ASSERT(0);
    }
}

static double load(const SamplerParams *sp, unsigned bit) {
    switch (bit) {
    case PRESET_TEMP: return sp->temperature;
    case PRESET_TOP_K: return sp->top_k;
    case PRESET_TOP_P: return sp->top_p;
    case PRESET_MIN_P: return sp->min_p;
    case PRESET_REPEAT: return sp->repeat_penalty;
    case PRESET_LAST_N: return sp->penalty_last_n;
    default: ASSERT(0);
    }
    return 0;
}

Status preset_from_gguf(const GGUF *g, SamplePreset *out, Err *err) {
    memset(out, 0, sizeof *out);
    out->v = sampler_defaults();
    for (size_t i = 0; i < N_KEYS; i++) {
        const PresetKey *k = &KEYS[i];
        if (!gguf_find_key(g, k->key))
            continue;
        double v;
        if (k->is_int) {
            int64_t iv;
            if (gguf_get_i64(g, k->key, true, &iv, err))
                return err->status;
            v = (double)iv;
        } else {
            float fv;
            if (gguf_get_f32(g, k->key, true, &fv, err))
                return err->status;
            v = fv;
        }
        if (!isfinite(v) || v < k->lo || v > k->hi || (k->lo_open && v == k->lo))
            return err_set(err, STATUS_FORMAT, "%s = %.10g: outside %c%.10g, %.10g]", k->key, v,
                           k->lo_open ? '(' : '[', k->lo, k->hi);
        store(&out->v, k->bit, v);
        out->set |= k->bit;
    }
    return STATUS_OK;
}

void preset_apply(const SamplePreset *p, unsigned user_set, SamplerParams *sp) {
    for (size_t i = 0; i < N_KEYS; i++) {
        unsigned bit = KEYS[i].bit;
        if ((p->set & bit) && !(user_set & bit))
            store(sp, bit, load(&p->v, bit));
    }
}

size_t preset_describe(const SamplerParams *sp, unsigned which, char *buf, size_t cap) {
    size_t n = 0;
    if (cap == 0)
        return 0;
    buf[0] = '\0';
    for (size_t i = 0; i < N_KEYS; i++) {
        if (!(which & KEYS[i].bit))
            continue;
        int w = snprintf(buf + n, cap - n, "%s%s %g", n ? ", " : "", KEYS[i].name,
                         load(sp, KEYS[i].bit));
        if (w < 0 || (size_t)w >= cap - n) {
            buf[n] = '\0';
            break;
        }
        n += (size_t)w;
    }
    return n;
}
