/* test_matmul.c - matmul_forward against matmul_ref for every weight type
 * that has kernels, on awkward shapes; batch and thread invariance. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../testutil.h"
#include "core/rng.h"
#include "core/tpool.h"
#include "tensor/matmul.h"
#include "tensor/quant.h"

static const int NS[] = {1, 7, 33, 257};
static const int MS[] = {1, 3, 17};

static float *randv(Rng *r, int64_t n, float scale) {
    float *v = malloc((size_t)(n ? n : 1) * sizeof(float));
    cr_assert(v);
    for (int64_t i = 0; i < n; i++)
        v[i] = rng_normal(r) * scale;
    return v;
}

/* Weights of type t from F32 (quantize through quant_ops). */
static void *make_weights(DType t, const float *wf, int N, int K) {
    size_t rb = (size_t)dtype_row_bytes(t, K);
    cr_assert(rb > 0);
    uint8_t *w = malloc(rb * (size_t)N);
    cr_assert(w);
    if (t == DTYPE_F32) {
        memcpy(w, wf, (size_t)N * K * sizeof(float));
    } else {
        const QuantOps *q = quant_ops(t);
        cr_assert(q && q->quantize, "no quantize for %s", dtype_info(t)->name);
        for (int n = 0; n < N; n++)
            q->quantize(wf + (size_t)n * K, w + (size_t)n * rb, K);
    }
    return w;
}

/* Tolerance: relative to sum |x_k w_k| with the activation format's error. */
static double act_tol(DType t) {
    if (t == DTYPE_F32)
        return 2e-6;
    const QuantOps *q = quant_ops(t);
    if (q->vec_dot_type == DTYPE_F32)
        return 2e-6;
    if (q->vec_dot_type == DTYPE_Q8_K)
        return 1e-2;
    return 2e-2; /* Q8_0 / Q8_1 activations: 8-bit, block scale */
}

static void check_one(TPool *tp, DType t, int M, int N, int K, Rng *r, bool bias) {
    float *x = randv(r, (int64_t)M * K, 1.0f), *wf = randv(r, (int64_t)N * K, 0.5f);
    float *b = bias ? randv(r, N, 0.1f) : NULL;
    void *w = make_weights(t, wf, N, K);
    size_t sb = matmul_scratch_bytes(t, M, K);
    void *scratch = sb ? malloc(sb) : NULL;
    float *got = malloc((size_t)M * N * 4), *want = malloc((size_t)M * N * 4);
    /* the ref dequantizes the stored weights, so quantization of W is shared */
    float *wd = malloc((size_t)N * K * 4);
    if (t == DTYPE_F32)
        memcpy(wd, wf, (size_t)N * K * 4);
    else
        for (int n = 0; n < N; n++)
            quant_ops(t)->dequant((const uint8_t *)w + (size_t)n * dtype_row_bytes(t, K),
                                  wd + (size_t)n * K, K);
    matmul_forward(tp, got, x, w, t, b, M, N, K, scratch);
    matmul_ref(want, x, w, t, b, M, N, K);
    double tol = act_tol(t);
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            double mag = 0;
            for (int k = 0; k < K; k++)
                mag += fabs((double)x[(size_t)m * K + k] * wd[(size_t)n * K + k]);
            double g = got[(size_t)m * N + n], e = want[(size_t)m * N + n];
            if (!(fabs(g - e) <= tol * mag + 1e-6)) {
                cr_expect(0,
                          "matmul %s M %d N %d K %d bias %d: [%d,%d] got %.8g want %.8g "
                          "(mag %.4g)",
                          dtype_info(t)->name, M, N, K, bias, m, n, g, e, mag);
                goto done;
            }
        }
    /* batching is invisible: each row alone gives the same bits */
    for (int m = 0; m < M; m++) {
        float *one = malloc((size_t)N * 4);
        matmul_forward(NULL, one, x + (size_t)m * K, w, t, b, 1, N, K, scratch);
        cr_expect(memcmp(one, got + (size_t)m * N, (size_t)N * 4) == 0,
                  "matmul %s M %d N %d K %d: row %d differs alone vs in batch", dtype_info(t)->name,
                  M, N, K, m);
        free(one);
    }
done:
    free(x), free(wf), free(b), free(w), free(scratch), free(got), free(want), free(wd);
}

Test(matmul, all_supported_types) {
    Rng r;
    rng_seed(&r, 11);
    TPool *tp = tpool_new(3);
    cr_assert(tp);
    int n_types = 0;
    for (int t = 0; t < DTYPE_COUNT; t++) {
        if (!dtype_info(t) || !matmul_supported((DType)t))
            continue;
        n_types++;
        int bs = dtype_info(t)->block_size;
        int ks[4] = {1, 7, 33, 257};
        int nk = 4;
        if (bs > 1) {
            ks[0] = bs, ks[1] = 3 * bs;
            nk = 2;
        }
        for (int ki = 0; ki < nk; ki++)
            for (int ni = 0; ni < 4; ni++)
                for (int mi = 0; mi < 3; mi++)
                    check_one(tp, (DType)t, MS[mi], NS[ni], ks[ki], &r, (ni + mi) % 2 == 0);
    }
    cr_expect(n_types >= 1, "F32 at least is always supported");
    cr_log_info("matmul: %d weight types covered", n_types);
    tpool_free(tp);
}

Test(matmul, thread_count_invisible) {
    Rng r;
    rng_seed(&r, 12);
    int M = 5, N = 300, K = 256;
    float *x = randv(&r, M * K, 1.0f), *w = randv(&r, N * K, 1.0f);
    float *o1 = malloc((size_t)M * N * 4), *o2 = malloc((size_t)M * N * 4);
    matmul_forward(NULL, o1, x, w, DTYPE_F32, NULL, M, N, K, NULL);
    for (int nt = 2; nt <= 4; nt++) {
        TPool *tp = tpool_new(nt);
        matmul_forward(tp, o2, x, w, DTYPE_F32, NULL, M, N, K, NULL);
        cr_expect(memcmp(o1, o2, (size_t)M * N * 4) == 0, "%d threads differ from 1", nt);
        tpool_free(tp);
    }
    free(x), free(w), free(o1), free(o2);
}

Test(matmul, hand_f32) {
    /* x (2,3) . W^T with W (2,3) + bias */
    float x[6] = {1, 2, 3, 4, 5, 6};
    float w[6] = {1, 0, -1, 0.5f, 0.5f, 0.5f};
    float b[2] = {10, 20};
    float o[4];
    matmul_forward(NULL, o, x, w, DTYPE_F32, b, 2, 2, 3, NULL);
    float want[4] = {1 - 3 + 10, 3 + 20, 4 - 6 + 10, 7.5f + 20};
    cr_expect(check_close("matmul hand", o, want, 4, 0, 1e-7f));
    cr_expect(!matmul_supported(DTYPE_IQ2_XXS));
    cr_expect(!matmul_supported(DTYPE_I32));
}

/* Every vec_dot4 at every level the CPU runs gives, for each of its four
 * activation rows (at a byte stride, outputs at a float stride), the bits
 * of the same level's vec_dot of that row alone. */
Test(matmul, vec_dot4_is_vec_dot) {
    Rng r;
    rng_seed(&r, 12);
    int covered = 0;
    for (int t = 0; t < DTYPE_COUNT; t++) {
        if (!dtype_info(t) || !quant_ops((DType)t) || !quant_ops((DType)t)->vec_dot)
            continue;
        for (int l = SIMD_SCALAR; l <= (int)cpu_simd_level(); l++) {
            const QuantOps *q = quant_ops_at((DType)t, (SimdLevel)l);
            if (!q || !q->vec_dot4)
                continue;
            covered++;
            const QuantOps *qa = quant_ops_at(q->vec_dot_type, (SimdLevel)l);
            const int bs = dtype_info(t)->block_size, nbs[] = {1, 2, 3, 8, 9};
            for (int bi = 0; bi < 5; bi++) {
                int K = nbs[bi] * bs;
                size_t wb = (size_t)dtype_row_bytes((DType)t, K);
                /* a stride past the row (aligned as matmul's rows are: Q8_K holds a float) */
                size_t la = (size_t)dtype_row_bytes(q->vec_dot_type, K) + 64;
                float *wf = randv(&r, K, 0.5f), *x = randv(&r, 4 * (int64_t)K, 1.0f);
                uint8_t *w = malloc(wb), *a = calloc(4, la);
                cr_assert(w && a);
                q->quantize(wf, w, K);
                for (int m = 0; m < 4; m++)
                    qa->quantize(x + (size_t)m * K, a + (size_t)m * la, K);
                float got[4 * 3], want[4], *sc = calloc(4 * (size_t)K, sizeof(float));
                cr_assert(sc);
                for (int m = 0; m < 4; m++) /* the float scales, at a stride past them */
                    quant_act_scales(q->vec_dot_type, a + (size_t)m * la, K, sc + (size_t)m * K);
                memset(got, 0xff, sizeof got);
                q->vec_dot4(K, got, 3, w, a, la, sc, (size_t)K);
                for (int m = 0; m < 4; m++) {
                    q->vec_dot(K, &want[m], w, a + (size_t)m * la);
                    cr_expect(memcmp(&got[3 * m], &want[m], sizeof(float)) == 0,
                              "%s vec_dot4 at %s, K %d, row %d: %.9g, vec_dot %.9g",
                              dtype_info(t)->name, cpu_simd_name((SimdLevel)l), K, m, got[3 * m],
                              want[m]);
                }
                free(wf), free(x), free(w), free(a), free(sc);
            }
        }
    }
    cr_log_info("vec_dot4: %d (type, level) pairs covered", covered);
    cr_expect(cpu_simd_level() < SIMD_AVX2 || covered > 0, "AVX2 has vec_dot4 kernels");
}
