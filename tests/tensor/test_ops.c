/* test_ops.c - every row kernel against its naive twin on awkward sizes, at
 * every SIMD level the CPU has, plus hand-checked values. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../testutil.h"
#include "core/rng.h"
#include "tensor/ops.h"

static const int SIZES[] = {1, 7, 33, 257, 1000};
#define N_SIZES (int)(sizeof SIZES / sizeof SIZES[0])

static float *randv(Rng *r, int n, float scale) {
    float *v = malloc((size_t)(n ? n : 1) * sizeof(float));
    cr_assert(v);
    for (int i = 0; i < n; i++)
        v[i] = rng_normal(r) * scale;
    return v;
}

Test(ops, dot_axpy_all_levels) {
    Rng r;
    rng_seed(&r, 1);
    for (int lvl = SIMD_SCALAR; lvl <= SIMD_AVX512; lvl++) {
        const OpsKernels *k = ops_kernels_at((SimdLevel)lvl);
        for (int si = 0; si < N_SIZES; si++) {
            int n = SIZES[si];
            float *a = randv(&r, n, 1.0f), *b = randv(&r, n, 1.0f);
            double mag = 0;
            for (int i = 0; i < n; i++)
                mag += fabs((double)a[i] * b[i]);
            float got = k->dot(n, a, b), want = dot_ref(n, a, b);
            cr_expect(fabs((double)got - want) <= 1e-6 * mag + 1e-7,
                      "dot level %d n %d: got %.9g want %.9g", lvl, n, got, want);
            float *y = randv(&r, n, 1.0f), *y2 = malloc((size_t)n * sizeof(float));
            memcpy(y2, y, (size_t)n * sizeof(float));
            k->axpy(n, y, 0.75f, a);
            for (int i = 0; i < n; i++)
                y2[i] = (float)((double)y2[i] + 0.75 * a[i]);
            cr_expect(check_close("axpy", y, y2, n, 1e-6f, 1e-6f), "axpy level %d n %d", lvl, n);
            free(a), free(b), free(y), free(y2);
        }
    }
}

Test(ops, dot_deterministic_across_calls) {
    Rng r;
    rng_seed(&r, 2);
    float *a = randv(&r, 257, 1.0f), *b = randv(&r, 257, 1.0f);
    const OpsKernels *k = ops_kernels();
    float d0 = k->dot(257, a, b);
    for (int i = 0; i < 10; i++)
        cr_assert(k->dot(257, a, b) == d0);
    free(a), free(b);
}

Test(ops, rmsnorm_vs_ref) {
    Rng r;
    rng_seed(&r, 3);
    for (int si = 0; si < N_SIZES; si++) {
        int n = SIZES[si];
        float *x = randv(&r, n, 2.0f), *w = randv(&r, n, 1.0f);
        float *o1 = malloc((size_t)n * 4), *o2 = malloc((size_t)n * 4);
        rmsnorm_forward(o1, x, w, n, 1e-5f);
        rmsnorm_ref(o2, x, w, n, 1e-5f);
        cr_expect(check_close("rmsnorm", o1, o2, n, 1e-6f, 1e-5f), "n %d", n);
        /* in place */
        rmsnorm_forward(x, x, w, n, 1e-5f);
        cr_expect(check_close("rmsnorm in place", x, o1, n, 0, 0), "n %d", n);
        free(x), free(w), free(o1), free(o2);
    }
}

Test(ops, rmsnorm_hand) {
    /* mean(x^2) = (1+4+9+16)/4 = 7.5; eps 0.5 -> scale 1/sqrt(8) */
    float x[4] = {1, 2, 3, 4}, w[4] = {1, 1, 2, 1}, o[4];
    rmsnorm_forward(o, x, w, 4, 0.5f);
    float s = 1.0f / sqrtf(8.0f);
    float want[4] = {1 * s, 2 * s, 6 * s, 4 * s};
    cr_expect(check_close("rmsnorm hand", o, want, 4, 1e-6f, 1e-6f));
}

Test(ops, layernorm_vs_ref_and_hand) {
    Rng r;
    rng_seed(&r, 4);
    for (int si = 0; si < N_SIZES; si++) {
        int n = SIZES[si];
        float *x = randv(&r, n, 2.0f), *w = randv(&r, n, 1.0f), *b = randv(&r, n, 0.1f);
        for (int i = 0; i < n; i++)
            x[i] += 3.0f; /* a mean far from 0 */
        float *o1 = malloc((size_t)n * 4), *o2 = malloc((size_t)n * 4);
        layernorm_forward(o1, x, w, b, n, 1e-5f);
        layernorm_ref(o2, x, w, b, n, 1e-5f);
        cr_expect(check_close("layernorm", o1, o2, n, 1e-5f, 1e-5f), "n %d", n);
        layernorm_forward(o1, x, w, NULL, n, 1e-5f);
        layernorm_ref(o2, x, w, NULL, n, 1e-5f);
        cr_expect(check_close("layernorm no bias", o1, o2, n, 1e-5f, 1e-5f), "n %d", n);
        free(x), free(w), free(b), free(o1), free(o2);
    }
    /* [1,2,3,4]: mean 2.5, var 1.25 */
    float x[4] = {1, 2, 3, 4}, w[4] = {1, 1, 1, 1}, w2[4] = {2, 2, 2, 2}, b[4] = {1, 1, 1, 1}, o[4];
    layernorm_forward(o, x, w, NULL, 4, 0.0f);
    float want[4] = {-1.3416407865f, -0.4472135955f, 0.4472135955f, 1.3416407865f};
    cr_expect(check_close("layernorm [1,2,3,4]", o, want, 4, 1e-6f, 1e-6f));
    layernorm_forward(o, x, w2, b, 4, 0.0f);
    float want2[4] = {-1.683281573f, 0.105572809f, 1.894427191f, 3.683281573f};
    cr_expect(check_close("layernorm [1,2,3,4] w=2 b=1", o, want2, 4, 1e-6f, 1e-6f));
    /* eps inside the sqrt: var 1.25 + eps 0.75 = 2 */
    layernorm_forward(o, x, w, NULL, 4, 0.75f);
    float want3[4] = {-1.5f / sqrtf(2.0f), -0.5f / sqrtf(2.0f), 0.5f / sqrtf(2.0f),
                      1.5f / sqrtf(2.0f)};
    cr_expect(check_close("layernorm eps", o, want3, 4, 1e-6f, 1e-6f));
}

Test(ops, rope_hand_pos1) {
    /* head_dim 4, n_rot 4, base 10000: theta_0 = 1, theta_1 = 0.01 */
    float cs[4];
    rope_cache(cs, 1, 4, 10000.0f, 1.0f, NULL);
    float x[4] = {1, 2, 3, 4};
    rope_forward(x, cs, 1, 4, 4, ROPE_NORM);
    float want[4] = {-1.1426396637f, 1.9220755965f, 2.9598506679f, 4.0297995017f};
    cr_expect(check_close("rope norm pos 1", x, want, 4, 1e-6f, 1e-6f));
    float y[4] = {1, 2, 3, 4};
    rope_forward(y, cs, 1, 4, 4, ROPE_NEOX);
    float want2[4] = {-1.9841106486f, 1.9599006675f, 2.4623779024f, 4.0197996683f};
    cr_expect(check_close("rope neox pos 1", y, want2, 4, 1e-6f, 1e-6f));
    /* pos 0 is the identity */
    rope_cache(cs, 0, 4, 10000.0f, 1.0f, NULL);
    float z[4] = {1, 2, 3, 4}, z0[4] = {1, 2, 3, 4};
    rope_forward(z, cs, 1, 4, 4, ROPE_NEOX);
    cr_expect(check_close("rope pos 0", z, z0, 4, 0, 0));
    /* freq factor 2 on pair 0 halves its angle; ROPE_NONE does nothing */
    float ff[2] = {2.0f, 1.0f};
    rope_cache(cs, 2, 4, 10000.0f, 1.0f, ff);
    cr_expect(fabsf(cs[0] - cosf(1.0f)) < 1e-6f && fabsf(cs[1] - sinf(1.0f)) < 1e-6f);
    float u[4] = {1, 2, 3, 4};
    rope_forward(u, cs, 1, 4, 4, ROPE_NONE);
    cr_expect(check_close("rope none", u, z0, 4, 0, 0));
}

Test(ops, rope_vs_ref) {
    Rng r;
    rng_seed(&r, 5);
    const int hds[] = {2, 8, 64, 130};
    for (int t = ROPE_NORM; t <= ROPE_NEOX; t++)
        for (size_t hi = 0; hi < sizeof hds / sizeof hds[0]; hi++) {
            int hd = hds[hi], nh = 3;
            /* n_rot: 2, about half (even), all of head_dim */
            const int rots[3] = {2, (hd / 2) & ~1 ? (hd / 2) & ~1 : 2, hd};
            for (int ri = 0; ri < 3; ri++) {
                int n_rot = rots[ri];
                float *ff = malloc((size_t)n_rot / 2 * 4);
                for (int i = 0; i < n_rot / 2; i++)
                    ff[i] = 1.0f + (float)i;
                for (int use_ff = 0; use_ff < 2; use_ff++) {
                    const int poss[] = {0, 1, 17, 4095};
                    for (int pi = 0; pi < 4; pi++) {
                        float *x = randv(&r, nh * hd, 1.0f), *y = malloc((size_t)nh * hd * 4);
                        memcpy(y, x, (size_t)nh * hd * 4);
                        float cs[2 * 65];
                        rope_cache(cs, poss[pi], n_rot, 10000.0f, 0.5f, use_ff ? ff : NULL);
                        rope_forward(x, cs, nh, hd, n_rot, (RopeType)t);
                        rope_ref(y, poss[pi], nh, hd, n_rot, 10000.0f, 0.5f, use_ff ? ff : NULL,
                                 (RopeType)t);
                        cr_expect(check_close("rope", x, y, nh * hd, 1e-5f, 1e-5f),
                                  "type %d hd %d n_rot %d pos %d ff %d", t, hd, n_rot, poss[pi],
                                  use_ff);
                        free(x), free(y);
                    }
                }
                free(ff);
            }
        }
}

Test(ops, softmax_hand_and_ref) {
    float x[3] = {0.0f, -INFINITY, logf(3.0f)};
    softmax_forward(x, 3);
    float want[3] = {0.25f, 0.0f, 0.75f};
    cr_expect(check_close("softmax -inf", x, want, 3, 1e-7f, 1e-6f));
    float all[4] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY}, zero[4] = {0};
    softmax_forward(all, 4);
    cr_expect(check_close("softmax all -inf", all, zero, 4, 0, 0));
    float one[1] = {42.0f}, o1[1] = {1.0f};
    softmax_forward(one, 1);
    cr_expect(check_close("softmax n=1", one, o1, 1, 0, 0));
    Rng r;
    rng_seed(&r, 6);
    for (int si = 0; si < N_SIZES; si++) {
        int n = SIZES[si];
        float *a = randv(&r, n, 5.0f), *b = malloc((size_t)n * 4);
        memcpy(b, a, (size_t)n * 4);
        softmax_forward(a, n);
        softmax_ref(b, n);
        cr_expect(check_close("softmax", a, b, n, 1e-7f, 1e-5f), "n %d", n);
        free(a), free(b);
    }
}

Test(ops, activations_vs_ref) {
    Rng r;
    rng_seed(&r, 7);
    for (int si = 0; si < N_SIZES; si++) {
        int n = SIZES[si];
        float *g = randv(&r, n, 3.0f), *u = randv(&r, n, 1.0f);
        float *o1 = malloc((size_t)n * 4), *o2 = malloc((size_t)n * 4);
        swiglu_forward(o1, g, u, n);
        swiglu_ref(o2, g, u, n);
        cr_expect(check_close("swiglu", o1, o2, n, 1e-6f, 1e-5f), "n %d", n);
        gelu_forward(o1, g, n);
        gelu_ref(o2, g, n);
        cr_expect(check_close("gelu", o1, o2, n, 1e-6f, 1e-5f), "n %d", n);
        add_forward(o1, g, u, n);
        add_ref(o2, g, u, n);
        cr_expect(check_close("add", o1, o2, n, 0, 0), "n %d", n);
        free(g), free(u), free(o1), free(o2);
    }
    float x[3] = {1.0f, -2.0f, 0.5f}, o[3];
    float want[3] = {0.8411919906f, -0.0454023059f, 0.3457140098f};
    gelu_forward(o, x, 3);
    cr_expect(check_close("gelu hand", o, want, 3, 1e-6f, 1e-6f));
    float gate[2] = {0.0f, 2.0f}, up[2] = {5.0f, 3.0f}, so[2];
    float swant[2] = {0.0f, 2.0f / (1.0f + expf(-2.0f)) * 3.0f};
    swiglu_forward(so, gate, up, 2);
    cr_expect(check_close("swiglu hand", so, swant, 2, 1e-6f, 1e-6f));
}

/* softcap_forward (gemma2's caps) against cap * tanh(x / cap) in double:
 * within 4e-7 of the cap, across the range and an unaligned tail. */
Test(ops, softcap_matches_tanh) {
    const float caps[] = {1.5f, 30.0f, 50.0f};
    enum { N = 1003 };
    float x[N];
    for (size_t c = 0; c < sizeof caps / sizeof caps[0]; c++) {
        for (int i = 0; i < N; i++)
            x[i] = -200.0f + 400.0f * (float)i / (N - 1) + (i % 7 ? 0.0f : 1e-4f);
        x[5] = 0.0f;
        x[6] = -0.0f;
        float y[N];
        memcpy(y, x, sizeof y);
        softcap_forward(y, N, caps[c]);
        for (int i = 0; i < N; i++) {
            double want = caps[c] * tanh((double)x[i] / caps[c]);
            cr_expect(fabs(y[i] - want) <= 4e-7 * caps[c] + 1e-7 * fabs(want),
                      "cap %g x %g: got %.9g want %.9g", (double)caps[c], (double)x[i],
                      (double)y[i], want);
        }
    }
}
