/* attn_ext.c - attention with windows, soft-caps and sinks (attn_ext.h). */
#include "tensor/attn_ext.h"

#include <math.h>
#include <stdlib.h>

#include "core/err.h"
#include "tensor/ops.h"
#include "tensor/quant.h"

/* Position t's key or value row as floats: the row itself for F32, else
 * converted into buf by the cache type's dequant. */
static const float *cache_row(const AttnExtCache *c, const char *base, int t, float *buf, int hd,
                              const QuantOps *qo) {
    const char *p =
        base + (size_t)c->table[t / c->bs] * c->block_bytes + (size_t)(t % c->bs) * c->row_bytes;
    if (c->type == DTYPE_F32)
        return (const float *)(const void *)p;
    qo->dequant(p, buf, hd);
    return buf;
}

void attn_ext(float *out, const float *q, int G, int hd, const AttnExtCache *c, int lo, int n,
              float scale, const AttnExtOpts *o, float *scores, float *row) {
    ASSERT(lo >= 0 && lo < n && G >= 1);
    const OpsKernels *K = ops_kernels();
    const QuantOps *qo = quant_ops(c->type);
    int len = n - lo;
    /* scores: each key row converted once for the G heads */
    for (int t = lo; t < n; t++) {
        const float *kr = cache_row(c, c->k, t, row, hd, qo);
        for (int g = 0; g < G; g++)
            scores[(size_t)g * len + (t - lo)] = K->dot(hd, q + (size_t)g * hd, kr) * scale;
    }
    for (int g = 0; g < G; g++) {
        float *sc = scores + (size_t)g * len;
        if (o && o->softcap > 0.0f)
            softcap_forward(sc, len, o->softcap);
        float mx = sc[0];
        for (int i = 1; i < len; i++)
            mx = sc[i] > mx ? sc[i] : mx;
        float sink = o && o->sinks ? o->sinks[g] : -INFINITY;
        if (sink > mx)
            mx = sink;
        for (int i = 0; i < len; i++)
            sc[i] -= mx;
        ops_exp(sc, sc, len);
        float sum = 0.0f;
        for (int i = 0; i < len; i++)
            sum += sc[i];
        if (o && o->sinks)
            sum += expf(sink - mx);
        float inv = 1.0f / sum;
        for (int i = 0; i < len; i++)
            sc[i] *= inv;
        float *og = out + (size_t)g * hd;
        for (int i = 0; i < hd; i++)
            og[i] = 0.0f;
    }
    for (int t = lo; t < n; t++) {
        const float *vr = cache_row(c, c->v, t, row + hd, hd, qo);
        for (int g = 0; g < G; g++)
            K->axpy(hd, out + (size_t)g * hd, scores[(size_t)g * len + (t - lo)], vr);
    }
}

void attn_ext_ref(float *out, const float *q, int G, int hd, const AttnExtCache *c, int lo, int n,
                  float scale, const AttnExtOpts *o) {
    const QuantOps *qo = quant_ops(c->type);
    int len = n - lo;
    double *p = malloc((size_t)len * sizeof *p);
    float *buf = malloc((size_t)hd * sizeof *buf);
    double *acc = malloc((size_t)hd * sizeof *acc);
    ASSERT(p && buf && acc);
    for (int g = 0; g < G; g++) {
        const float *qg = q + (size_t)g * hd;
        double mx = -INFINITY;
        for (int t = lo; t < n; t++) {
            const float *kr = cache_row(c, c->k, t, buf, hd, qo);
            double s = 0.0;
            for (int i = 0; i < hd; i++)
                s += (double)qg[i] * kr[i];
            s *= scale;
            if (o && o->softcap > 0.0f)
                s = o->softcap * tanh(s / o->softcap);
            p[t - lo] = s;
            mx = s > mx ? s : mx;
        }
        double sink = o && o->sinks ? o->sinks[g] : -INFINITY;
        mx = sink > mx ? sink : mx;
        double sum = o && o->sinks ? exp(sink - mx) : 0.0;
        for (int i = 0; i < len; i++) {
            p[i] = exp(p[i] - mx);
            sum += p[i];
        }
        for (int i = 0; i < hd; i++)
            acc[i] = 0.0;
        for (int t = lo; t < n; t++) {
            const float *vr = cache_row(c, c->v, t, buf, hd, qo);
            for (int i = 0; i < hd; i++)
                acc[i] += p[t - lo] / sum * vr[i];
        }
        for (int i = 0; i < hd; i++)
            out[(size_t)g * hd + i] = (float)acc[i];
    }
    free(p);
    free(buf);
    free(acc);
}
