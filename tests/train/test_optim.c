/* test_optim.c - AdamW, gradient norm, clipping and the LR schedule.
 *
 * Oracles: the AdamW formula (torch.optim.AdamW's documented algorithm)
 * evaluated in double here, element by element; plain double loops for the
 * norm; the schedule's closed form at its boundaries. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "core/tpool.h"
#include "train/optim.h"

/* The reference AdamW step for one element, in double. */
typedef struct {
    double p, m, v;
} RefElem;

static void ref_step(RefElem *e, double g, long t, double lr, double b1, double b2, double eps,
                     double wd, bool decay) {
    if (decay)
        e->p -= lr * wd * e->p;
    e->m = b1 * e->m + (1 - b1) * g;
    e->v = b2 * e->v + (1 - b2) * g * g;
    double bc1 = 1 - pow(b1, (double)t), bc2 = 1 - pow(b2, (double)t);
    double denom = sqrt(e->v) / sqrt(bc2) + eps;
    e->p -= (lr / bc1) * e->m / denom;
}

static bool close_to(double got, double want, double atol, double rtol) {
    return fabs(got - want) <= atol + rtol * fabs(want);
}

Test(optim, adamw_matches_the_formula_over_steps) {
    /* Two tensors: a 2x3 matrix (decayed) and a norm vector of 3 (not). */
    TParam tensors[2] = {{.name = "w", .rows = 2, .cols = 3, .offset = 0},
                         {.name = "n", .rows = 1, .cols = 3, .offset = 6}};
    const size_t n = 9;
    float p[9] = {0.5f, -1.25f, 2.0f, 0.0f, 3.5f, -0.75f, 1.0f, 0.9f, 1.1f};
    RefElem ref[9];
    for (size_t i = 0; i < n; i++)
        ref[i] = (RefElem){p[i], 0, 0};
    AdamW o;
    Err err = {0};
    cr_assert_eq(adamw_init(&o, n, &err), STATUS_OK);
    AdamWParams hp = {
        .lr = 1e-2f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f};
    Rng rng;
    rng_seed(&rng, 7);
    for (long t = 1; t <= 12; t++) {
        float g[9];
        for (size_t i = 0; i < n; i++)
            g[i] = (float)(rng_normal(&rng) * (i == 4 ? 1e-4 : 1.0)); /* one tiny gradient */
        if (t == 5)
            g[2] = 0.0f; /* a zero gradient mid-run */
        adamw_step(&o, p, g, tensors, 2, &hp, NULL);
        cr_assert_eq(o.t, (uint64_t)t);
        for (size_t i = 0; i < n; i++) {
            ref_step(&ref[i], g[i], t, hp.lr, hp.beta1, hp.beta2, hp.eps, hp.weight_decay, i < 6);
            cr_assert(close_to(p[i], ref[i].p, 1e-6, 1e-5), "step %ld p[%zu]: got %.9g want %.9g",
                      t, i, (double)p[i], ref[i].p);
            cr_assert(close_to(o.m[i], ref[i].m, 1e-7, 1e-5), "step %ld m[%zu]: got %.9g want %.9g",
                      t, i, (double)o.m[i], ref[i].m);
            cr_assert(close_to(o.v[i], ref[i].v, 1e-9, 1e-5), "step %ld v[%zu]: got %.9g want %.9g",
                      t, i, (double)o.v[i], ref[i].v);
        }
    }
    adamw_free(&o);
    cr_assert_null(o.m);
    adamw_free(&o); /* zeroed struct is fine */
}

Test(optim, adamw_first_step_hand_values) {
    /* t = 1: m = (1-b1) g, v = (1-b2) g^2, bias-corrected m/sqrt(v) = sign(g)
     * (up to eps), so p1 = p0 (1 - lr wd) - lr * g / (|g| + eps/..).
     * With p0 = 2, g = 0.5, lr = 0.1, wd = 0.5, eps = 0: p1 = 2 * 0.95 - 0.1 = 1.8. */
    TParam tensors[1] = {{.name = "w", .rows = 2, .cols = 1, .offset = 0}};
    float p[2] = {2.0f, -4.0f}, g[2] = {0.5f, -3.0f};
    AdamW o;
    cr_assert_eq(adamw_init(&o, 2, NULL), STATUS_OK);
    AdamWParams hp = {
        .lr = 0.1f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 0.0f, .weight_decay = 0.5f};
    adamw_step(&o, p, g, tensors, 1, &hp, NULL);
    cr_assert(close_to(p[0], 1.8, 1e-6, 0), "p[0] = %.9g want 1.8", (double)p[0]);
    cr_assert(close_to(p[1], -4.0 * 0.95 + 0.1, 1e-6, 0), "p[1] = %.9g want -3.7", (double)p[1]);
    cr_assert(close_to(o.m[0], 0.05, 0, 1e-6), "m[0] = %.9g", (double)o.m[0]);
    /* (1 - beta2) with beta2 as the float 0.999f, as the caller gave it */
    cr_assert(close_to(o.v[1], (1.0 - (double)0.999f) * 9.0, 0, 1e-6), "v[1] = %.9g",
              (double)o.v[1]);
    adamw_free(&o);
}

Test(optim, adamw_decay_mask_spares_norm_vectors) {
    /* Zero gradients: the Adam part is exactly 0 (m = 0), only decay moves p. */
    TParam tensors[3] = {{.name = "emb", .rows = 4, .cols = 2, .offset = 0},
                         {.name = "norm", .rows = 1, .cols = 5, .offset = 8},
                         {.name = "mat", .rows = 3, .cols = 1, .offset = 13}};
    enum { N = 16 };
    float p[N], g[N] = {0}, p0[N];
    for (int i = 0; i < N; i++)
        p0[i] = p[i] = 1.0f + 0.25f * (float)i;
    AdamW o;
    cr_assert_eq(adamw_init(&o, N, NULL), STATUS_OK);
    AdamWParams hp = {
        .lr = 0.01f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f};
    adamw_step(&o, p, g, tensors, 3, &hp, NULL);
    float f = (float)(1.0 - 0.01 * (double)0.1f);
    for (int i = 0; i < N; i++) {
        bool decayed = i < 8 || i >= 13;
        float want = decayed ? p0[i] * f : p0[i];
        cr_assert_eq(p[i], want, "p[%d] = %.9g want %.9g (%s)", i, (double)p[i], (double)want,
                     decayed ? "decayed" : "norm, not decayed");
    }
    /* n_tensors == 0: decay everywhere. */
    memcpy(p, p0, sizeof p);
    adamw_step(&o, p, g, NULL, 0, &hp, NULL);
    for (int i = 0; i < N; i++)
        cr_assert_eq(p[i], p0[i] * f, "no table: p[%d] not decayed", i);
    adamw_free(&o);
}

Test(optim, adamw_same_bits_for_any_thread_count) {
    enum { N = 10007 };
    TParam tensors[3] = {{.name = "a", .rows = 100, .cols = 50, .offset = 0},
                         {.name = "b", .rows = 1, .cols = 7, .offset = 5000},
                         {.name = "c", .rows = 5000, .cols = 1, .offset = 5007}};
    float *want = NULL;
    float *g = malloc(N * sizeof *g);
    Rng rng;
    rng_seed(&rng, 3);
    for (int i = 0; i < N; i++)
        g[i] = rng_normal(&rng);
    AdamWParams hp = {
        .lr = 3e-4f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f};
    int threads[] = {1, 2, 3, 7};
    for (size_t k = 0; k < sizeof threads / sizeof threads[0]; k++) {
        TPool *tp = tpool_new(threads[k]);
        cr_assert_not_null(tp);
        float *p = malloc(N * sizeof *p);
        for (int i = 0; i < N; i++)
            p[i] = 0.001f * (float)(i % 97);
        AdamW o;
        cr_assert_eq(adamw_init(&o, N, NULL), STATUS_OK);
        for (int s = 0; s < 3; s++)
            adamw_step(&o, p, g, tensors, 3, &hp, tp);
        if (!want)
            want = p;
        else {
            cr_assert(!memcmp(p, want, N * sizeof *p), "%d threads differ from 1", threads[k]);
            free(p);
        }
        adamw_free(&o);
        tpool_free(tp);
    }
    free(want);
    free(g);
}

Test(optim, grad_norm_matches_double_loop_and_is_thread_independent) {
    size_t sizes[] = {0, 1, 7, 33, 4096, 4097, 257 * 1024 + 3, (1u << 22) + 5};
    TPool *pools[4] = {NULL, tpool_new(2), tpool_new(3), tpool_new(5)};
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        size_t n = sizes[si];
        float *g = malloc((n ? n : 1) * sizeof *g);
        Rng rng;
        rng_seed(&rng, 11 + si);
        for (size_t i = 0; i < n; i++)
            g[i] = rng_normal(&rng) * (i % 5 == 0 ? 100.0f : 0.01f);
        /* Oracle: Kahan-free plain double loop, then long double for a tighter truth. */
        long double s = 0;
        for (size_t i = 0; i < n; i++)
            s += (long double)g[i] * g[i];
        double want = sqrt((double)s);
        double first = 0;
        for (int k = 0; k < 4; k++) {
            double got = optim_grad_norm(g, n, pools[k]);
            cr_assert(close_to(got, want, 1e-12, 1e-12), "n %zu: got %.17g want %.17g", n, got,
                      want);
            if (k == 0)
                first = got;
            else
                cr_assert(memcmp(&got, &first, sizeof got) == 0,
                          "n %zu: %d threads gave %.17g, 1 thread %.17g", n, tpool_size(pools[k]),
                          got, first);
        }
        free(g);
    }
    for (int k = 1; k < 4; k++)
        tpool_free(pools[k]);
}

Test(optim, grad_norm_flags_non_finite) {
    float g[9000];
    for (int i = 0; i < 9000; i++)
        g[i] = 1e30f; /* squares overflow float but not double */
    double nrm = optim_grad_norm(g, 9000, NULL);
    cr_assert(isfinite(nrm) && close_to(nrm, 1e30 * sqrt(9000.0), 0, 1e-6), "norm %g", nrm);
    cr_assert(optim_all_finite(g, 9000));
    g[8999] = NAN;
    cr_assert(isnan(optim_grad_norm(g, 9000, NULL)));
    cr_assert(!optim_all_finite(g, 9000));
    g[8999] = -INFINITY;
    cr_assert(!isfinite(optim_grad_norm(g, 9000, NULL)));
    cr_assert(!optim_all_finite(g, 9000));
    g[8999] = 0.0f;
    g[0] = INFINITY;
    cr_assert(!optim_all_finite(g, 9000));
    cr_assert(optim_all_finite(g, 0));
}

Test(optim, clip_scale_and_scale) {
    cr_assert_eq(optim_clip_scale(0.5, 1.0f), 1.0f);
    cr_assert_eq(optim_clip_scale(1.0, 1.0f), 1.0f);  /* not strictly above */
    cr_assert_eq(optim_clip_scale(10.0, 0.0f), 1.0f); /* clipping off */
    cr_assert_eq(optim_clip_scale(NAN, 1.0f), 1.0f);
    cr_assert_eq(optim_clip_scale(INFINITY, 1.0f), 1.0f);
    float s = optim_clip_scale(4.0, 1.0f);
    cr_assert(close_to(s, 1.0 / (4.0 + 1e-6), 0, 1e-7), "scale %.9g", (double)s);
    /* Clipping then re-measuring gives max_norm. */
    enum { N = 5000 };
    float g[N];
    for (int i = 0; i < N; i++)
        g[i] = (float)((i % 13) - 6);
    double nrm = optim_grad_norm(g, N, NULL);
    TPool *tp = tpool_new(3);
    optim_scale(g, N, optim_clip_scale(nrm, 2.0f), tp);
    tpool_free(tp);
    double after = optim_grad_norm(g, N, NULL);
    cr_assert(close_to(after, 2.0, 1e-5, 0), "norm after clip %.9g", after);
    for (int i = 0; i < N; i++)
        cr_assert(close_to(g[i], ((i % 13) - 6) * 2.0 / (nrm + 1e-6), 1e-6, 1e-6));
}

Test(optim, lr_schedule_boundaries) {
    const float mx = 6e-4f, mn = 6e-5f;
    /* warmup 10, total 110 */
    cr_assert(close_to(optim_lr(0, 10, 110, mx, mn), mx / 10.0, 0, 1e-6));
    cr_assert(close_to(optim_lr(-3, 10, 110, mx, mn), mx / 10.0, 0, 1e-6));
    cr_assert(close_to(optim_lr(4, 10, 110, mx, mn), mx * 0.5, 0, 1e-6));
    cr_assert(close_to(optim_lr(9, 10, 110, mx, mn), mx, 0, 1e-6));
    cr_assert(close_to(optim_lr(10, 10, 110, mx, mn), mx, 0, 1e-6));              /* cos(0) = 1 */
    cr_assert(close_to(optim_lr(60, 10, 110, mx, mn), (mx + mn) / 2.0, 0, 1e-6)); /* cos(pi/2) */
    cr_assert(
        close_to(optim_lr(35, 10, 110, mx, mn), mn + (mx - mn) * (1 + cos(M_PI / 4)) / 2, 0, 1e-6));
    double last = mn + (mx - mn) * (1 + cos(M_PI * 99.0 / 100.0)) / 2;
    cr_assert(close_to(optim_lr(109, 10, 110, mx, mn), last, 0, 1e-6));
    cr_assert(optim_lr(109, 10, 110, mx, mn) > mn);
    cr_assert_eq(optim_lr(110, 10, 110, mx, mn), mn);
    cr_assert_eq(optim_lr(100000, 10, 110, mx, mn), mn);
    /* No warmup: starts at lr_max. */
    cr_assert(close_to(optim_lr(0, 0, 100, mx, mn), mx, 0, 1e-6));
    /* Monotone non-increasing after warmup. */
    for (long s = 10; s < 120; s++)
        cr_assert(optim_lr(s + 1, 10, 110, mx, mn) <= optim_lr(s, 10, 110, mx, mn), "step %ld", s);
    /* Warmup longer than total: warmup wins, then lr_min. */
    cr_assert(close_to(optim_lr(19, 20, 10, mx, mn), mx, 0, 1e-6));
    cr_assert_eq(optim_lr(20, 20, 10, mx, mn), mn);
}
