/* optim.h - AdamW over the one parameter vector, gradient clipping and the
 * learning-rate schedule.
 *
 * The update is exactly torch.optim.AdamW (PyTorch 1.13, non-fused) per
 * element, in float with the scalar factors computed in double:
 *   t += 1
 *   p -= lr * wd * p                     (decoupled decay; only tensors with rows > 1)
 *   m  = b1 * m + (1 - b1) * g
 *   v  = b2 * v + (1 - b2) * g * g
 *   bc1 = 1 - b1^t, bc2 = 1 - b2^t
 *   denom = sqrt(v) / sqrt(bc2) + eps
 *   p -= (lr / bc1) * m / denom
 * Every element is updated independently, so the result does not depend on
 * the thread count. Decay applies to the matrices and the embedding (rows >
 * 1), never to the norm vectors (rows == 1), as in GPT-2/llm.c.
 *
 * Non-finite gradients: optim_grad_norm() is non-finite (NaN or inf) exactly
 * when some gradient is (squares are summed in double, where no float
 * overflows), so a trainer checks the norm before stepping.
 * optim_all_finite() is the same test for any other vector.
 *
 * Not here: the model (tmodel.h), the all-reduce of gradients (dist.h), the
 * saving of m and v (ckpt.h). */
#ifndef CGPT_TRAIN_OPTIM_H
#define CGPT_TRAIN_OPTIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "core/tpool.h"
#include "train/tmodel.h"

/* optim_grad_norm() sums squares over at most this many fixed chunks, so
 * its result depends only on n, not on the thread count. */
#define OPTIM_NORM_MAX_CHUNKS 1024
#define OPTIM_NORM_MIN_CHUNK 4096 /* elements in one chunk at least */

typedef struct {
    float lr, beta1, beta2, eps, weight_decay;
} AdamWParams;

typedef struct {
    size_t n;
    float *m, *v; /* first and second moments, n floats each */
    uint64_t t;   /* steps taken */
} AdamW;

/* Zeroed moments for n parameters, t = 0. STATUS_NOMEM on failure ('o' is
 * then safe to pass to adamw_free()). Free with adamw_free(). */
Status adamw_init(AdamW *o, size_t n, Err *err);
/* Accepts a zeroed struct. */
void adamw_free(AdamW *o);

/* One step (t += 1) over all o->n parameters. 'tensors' (borrowed) is the
 * layout table (tmodel_tensors()); it must cover [0, o->n) contiguously in
 * order. With n_tensors == 0 (tensors may be NULL) decay applies to every
 * element. 'tp' borrowed (NULL: one thread). Deterministic, and the same bits
 * for every thread count. */
void adamw_step(AdamW *o, float *params, const float *grads, const TParam *tensors, int n_tensors,
                const AdamWParams *p, TPool *tp);

/* L2 norm of grads[0..n), squares accumulated in double over a fixed split
 * (OPTIM_NORM_MAX_CHUNKS chunks): the same bits for every thread count. */
double optim_grad_norm(const float *grads, size_t n, TPool *tp);

/* The factor to multiply gradients by: max_norm / (norm + 1e-6) when
 * norm > max_norm > 0, else 1. A non-finite norm gives 1 (callers skip the
 * step instead). */
float optim_clip_scale(double norm, float max_norm);

/* grads[i] *= s. */
void optim_scale(float *grads, size_t n, float s, TPool *tp);

/* True when every x[i] is finite. */
bool optim_all_finite(const float *x, size_t n);

/* Learning rate at 'step' (0-based; a negative step counts as 0):
 *   step < warmup:          lr_max * (step + 1) / warmup
 *   warmup <= step < total: lr_min + (lr_max - lr_min) * (1 + cos(pi * (step - warmup) /
 *                           (total - warmup))) / 2
 *   otherwise:              lr_min
 * Warmup takes precedence when warmup > total. */
float optim_lr(long step, long warmup, long total, float lr_max, float lr_min);

#endif
