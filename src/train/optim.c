/* optim.c - AdamW, gradient norm and clipping, the learning-rate schedule.
 *
 * Element-wise work is split by tpool_range over the whole vector; each
 * element's update depends only on its own p, g, m, v, so any split gives
 * the same bits. The gradient norm is the one reduction: it is summed over a
 * split that depends only on n (fixed chunks, partial sums added in chunk
 * order), never on the thread count. */
#include "train/optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

Status adamw_init(AdamW *o, size_t n, Err *err) {
    memset(o, 0, sizeof *o);
    size_t k = n ? n : 1;
    o->m = calloc(k, sizeof *o->m);
    o->v = calloc(k, sizeof *o->v);
    if (!o->m || !o->v) {
        adamw_free(o);
        return err_set(err, STATUS_NOMEM, "adamw: out of memory for the moments of %zu parameters",
                       n);
    }
    o->n = n;
    return STATUS_OK;
}

void adamw_free(AdamW *o) {
    if (!o)
        return;
    free(o->m);
    free(o->v);
    memset(o, 0, sizeof *o);
}

typedef struct {
    AdamW *o;
    float *params;
    const float *grads;
    const TParam *tensors;
    int n_tensors;
    float decay;    /* 1 - lr * wd */
    float b1, omb1; /* beta1, 1 - beta1 */
    float b2, omb2; /* beta2, 1 - beta2 */
    float bc2_sqrt; /* sqrt(1 - beta2^t) */
    float eps;
    float neg_step; /* -lr / (1 - beta1^t) */
} AdamCtx;

/* Elements [lo, hi) with decay on or off. */
static void adam_span(const AdamCtx *c, size_t lo, size_t hi, bool decay) {
    float *p = c->params, *m = c->o->m, *v = c->o->v;
    const float *g = c->grads;
    for (size_t i = lo; i < hi; i++) {
        float pi = decay ? p[i] * c->decay : p[i];
        float gi = g[i];
        float mi = m[i] * c->b1 + c->omb1 * gi;
        float vi = v[i] * c->b2 + c->omb2 * gi * gi;
        float denom = sqrtf(vi) / c->bc2_sqrt + c->eps;
        m[i] = mi;
        v[i] = vi;
        p[i] = pi + c->neg_step * mi / denom;
    }
}

static void adam_task(void *ctx, int ith, int nth) {
    const AdamCtx *c = ctx;
    long lo, hi;
    tpool_range((long)c->o->n, ith, nth, &lo, &hi);
    if (c->n_tensors == 0) {
        adam_span(c, (size_t)lo, (size_t)hi, true);
        return;
    }
    for (int t = 0; t < c->n_tensors && lo < hi; t++) {
        const TParam *tp = &c->tensors[t];
        size_t t_lo = tp->offset, t_hi = tp->offset + (size_t)(tp->rows * tp->cols);
        if (t_hi <= (size_t)lo)
            continue;
        size_t e = t_hi < (size_t)hi ? t_hi : (size_t)hi;
        ASSERT(t_lo <= (size_t)lo);
        adam_span(c, (size_t)lo, e, tp->rows > 1);
        lo = (long)e;
    }
}

void adamw_step(AdamW *o, float *params, const float *grads, const TParam *tensors, int n_tensors,
                const AdamWParams *p, TPool *tp) {
    ASSERT(n_tensors >= 0 && (n_tensors == 0 || tensors));
    if (n_tensors > 0) {
        /* The table must tile [0, n) in order. */
        size_t at = 0;
        for (int t = 0; t < n_tensors; t++) {
            ASSERT(tensors[t].offset == at && tensors[t].rows >= 1 && tensors[t].cols >= 1);
            at += (size_t)(tensors[t].rows * tensors[t].cols);
        }
        ASSERT(at == o->n);
    }
    o->t++;
    double bc1 = 1.0 - pow((double)p->beta1, (double)o->t);
    double bc2 = 1.0 - pow((double)p->beta2, (double)o->t);
    AdamCtx c = {
        .o = o,
        .params = params,
        .grads = grads,
        .tensors = tensors,
        .n_tensors = n_tensors,
        .decay = (float)(1.0 - (double)p->lr * (double)p->weight_decay),
        .b1 = p->beta1,
        .omb1 = (float)(1.0 - (double)p->beta1),
        .b2 = p->beta2,
        .omb2 = (float)(1.0 - (double)p->beta2),
        .bc2_sqrt = (float)sqrt(bc2),
        .eps = p->eps,
        .neg_step = (float)(-(double)p->lr / bc1),
    };
    tpool_run(tp, adam_task, &c);
}

/* ---- gradient norm, clipping, scaling ---- */

typedef struct {
    const float *x;
    size_t n, chunk;
    long n_chunks;
    double *partial; /* (n_chunks) */
} NormCtx;

static double sumsq(const float *x, size_t n) {
    /* Four accumulators in a fixed pattern: still one fixed order. */
    double a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        a0 += (double)x[i] * x[i];
        a1 += (double)x[i + 1] * x[i + 1];
        a2 += (double)x[i + 2] * x[i + 2];
        a3 += (double)x[i + 3] * x[i + 3];
    }
    for (; i < n; i++)
        a0 += (double)x[i] * x[i];
    return (a0 + a1) + (a2 + a3);
}

static void norm_task(void *ctx, int ith, int nth) {
    NormCtx *c = ctx;
    long lo, hi;
    tpool_range(c->n_chunks, ith, nth, &lo, &hi);
    for (long k = lo; k < hi; k++) {
        size_t a = (size_t)k * c->chunk;
        size_t b = a + c->chunk < c->n ? a + c->chunk : c->n;
        c->partial[k] = sumsq(c->x + a, b - a);
    }
}

double optim_grad_norm(const float *grads, size_t n, TPool *tp) {
    if (n == 0)
        return 0.0;
    size_t chunk = (n + OPTIM_NORM_MAX_CHUNKS - 1) / OPTIM_NORM_MAX_CHUNKS;
    if (chunk < OPTIM_NORM_MIN_CHUNK)
        chunk = OPTIM_NORM_MIN_CHUNK;
    double partial[OPTIM_NORM_MAX_CHUNKS];
    NormCtx c = {.x = grads,
                 .n = n,
                 .chunk = chunk,
                 .n_chunks = (long)((n + chunk - 1) / chunk),
                 .partial = partial};
    ASSERT(c.n_chunks <= OPTIM_NORM_MAX_CHUNKS);
    tpool_run(tp, norm_task, &c);
    double s = 0;
    for (long k = 0; k < c.n_chunks; k++)
        s += partial[k];
    return sqrt(s);
}

float optim_clip_scale(double norm, float max_norm) {
    if (!isfinite(norm) || !(max_norm > 0) || !(norm > (double)max_norm))
        return 1.0f;
    return (float)((double)max_norm / (norm + 1e-6));
}

typedef struct {
    float *x;
    size_t n;
    float s;
} ScaleCtx;

static void scale_task(void *ctx, int ith, int nth) {
    ScaleCtx *c = ctx;
    long lo, hi;
    tpool_range((long)c->n, ith, nth, &lo, &hi);
    for (long i = lo; i < hi; i++)
        c->x[i] *= c->s;
}

void optim_scale(float *grads, size_t n, float s, TPool *tp) {
    ScaleCtx c = {.x = grads, .n = n, .s = s};
    tpool_run(tp, scale_task, &c);
}

bool optim_all_finite(const float *x, size_t n) {
    /* Sum of x*0: NaN as soon as one element is inf or NaN; no branch per element. */
    float acc = 0.0f;
    for (size_t i = 0; i < n; i++)
        acc += x[i] * 0.0f;
    return acc == 0.0f;
}

/* ---- schedule ---- */

float optim_lr(long step, long warmup, long total, float lr_max, float lr_min) {
    if (step < 0)
        step = 0;
    if (step < warmup)
        return (float)((double)lr_max * (double)(step + 1) / (double)warmup);
    if (step >= total)
        return lr_min;
    double progress = (double)(step - warmup) / (double)(total - warmup);
    return (float)((double)lr_min +
                   0.5 * ((double)lr_max - (double)lr_min) * (1.0 + cos(M_PI * progress)));
}
