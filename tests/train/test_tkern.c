/* test_tkern.c - every kernel of tkern.h:
 *   - double: each backward against central finite differences of
 *     L = sum(wout * forward(...)) (random wout = d out), h = 1e-5,
 *     relative error <= 1e-6 (measured against the largest gradient for
 *     tiny ones: finite differences carry an absolute error ~eps*L/h);
 *   - backward accumulates: d-buffers prefilled with noise end as noise +
 *     gradient;
 *   - float at every SIMD level this CPU has: forward and backward equal
 *     the double results on the same inputs;
 *   - threads: 1 and 3 threads give identical float results.
 * Shapes are awkward on purpose (7 rows, 33 columns, T = 19, HS = 6). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../testutil.h"
#include "core/rng.h"
#include "train/tkern.h"

#define FD_H 1e-5
#define FD_RTOL 1e-6
#define F32_RTOL 2e-5f

static void rnd(double *x, size_t n, Rng *r, double scale, double shift) {
    for (size_t i = 0; i < n; i++)
        x[i] = shift + scale * rng_normal(r);
}

static double *dalloc(size_t n) {
    double *p = calloc(n ? n : 1, sizeof *p);
    cr_assert(p);
    return p;
}

static float *to_f(const double *x, size_t n) {
    float *p = malloc((n ? n : 1) * sizeof *p);
    cr_assert(p);
    for (size_t i = 0; i < n; i++)
        p[i] = (float)x[i];
    return p;
}

static double wsum(const double *w, const double *y, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += w[i] * y[i];
    return s;
}

/* Central differences of loss() w.r.t. every x[j] against grad[j]. */
static void fd_check(const char *name, double *x, size_t n, double (*loss)(void *), void *ctx,
                     const double *grad) {
    double gmax = 0;
    for (size_t j = 0; j < n; j++)
        gmax = fmax(gmax, fabs(grad[j]));
    double worst = 0;
    size_t wj = 0;
    double wfd = 0;
    for (size_t j = 0; j < n; j++) {
        double save = x[j];
        x[j] = save + FD_H;
        double lp = loss(ctx);
        x[j] = save - FD_H;
        double lm = loss(ctx);
        x[j] = save;
        double fd = (lp - lm) / (2 * FD_H);
        double e = fabs(fd - grad[j]) / (fabs(fd) + 1e-3 * gmax + 1e-12);
        if (e > worst) {
            worst = e;
            wj = j;
            wfd = fd;
        }
    }
    cr_log_info("%s: %zu finite differences, max rel err %.3g", name, n, worst);
    cr_expect(worst <= FD_RTOL, "%s[%zu]: gradient %.12g, finite difference %.12g (rel %.3g)", name,
              wj, grad[wj], wfd, worst);
}

/* got (float) against want (double), scaled by the largest |want|. */
static void close_fd(const char *name, const char *level, const float *got, const double *want,
                     size_t n) {
    float *w = to_f(want, n);
    float sc = 0;
    for (size_t i = 0; i < n; i++)
        sc = fmaxf(sc, fabsf(w[i]));
    char label[96];
    snprintf(label, sizeof label, "%s (%s)", name, level);
    cr_expect(check_close(label, got, w, (int64_t)n, F32_RTOL * sc, F32_RTOL));
    free(w);
}

/* Float tables for every level this CPU runs (duplicates skipped). */
static int float_levels(const TKOpsF **out) {
    int n = 0;
    for (int l = SIMD_SCALAR; l <= SIMD_AVX512; l++) {
        const TKOpsF *o = tk_ops_f((SimdLevel)l);
        if (n == 0 || out[n - 1] != o)
            out[n++] = o;
    }
    return n;
}

/* ------------------------------------------------------------------ rmsnorm */

typedef struct {
    const TKOpsD *k;
    double *out, *rstd, *x, *w, *wout;
    long N;
    int C;
} NormT;

static double norm_loss(void *v) {
    NormT *t = v;
    t->k->rmsnorm_forward(NULL, t->out, t->rstd, t->x, t->w, t->N, t->C, 1e-5f);
    return wsum(t->wout, t->out, (size_t)t->N * t->C);
}

Test(tkern, rmsnorm) {
    long N = 7;
    int C = 33;
    size_t nx = (size_t)N * C;
    Rng r;
    rng_seed(&r, 1);
    NormT t = {
        tk_ops_d(SIMD_SCALAR), dalloc(nx), dalloc(N), dalloc(nx), dalloc(C), dalloc(nx), N, C};
    rnd(t.x, nx, &r, 1.0, 0.0);
    rnd(t.w, C, &r, 0.2, 1.0);
    rnd(t.wout, nx, &r, 1.0, 0.0);
    double *dx = dalloc(nx), *dw = dalloc(C), *nx0 = dalloc(nx), *nw0 = dalloc(C);
    rnd(nx0, nx, &r, 1.0, 0.0);
    rnd(nw0, C, &r, 1.0, 0.0);
    memcpy(dx, nx0, nx * sizeof *dx);
    memcpy(dw, nw0, C * sizeof *dw);
    norm_loss(&t);
    t.k->rmsnorm_backward(NULL, dx, dw, t.wout, t.x, t.w, t.rstd, N, C);
    for (size_t i = 0; i < nx; i++)
        dx[i] -= nx0[i];
    for (int i = 0; i < C; i++)
        dw[i] -= nw0[i];
    fd_check("rmsnorm dx", t.x, nx, norm_loss, &t, dx);
    fd_check("rmsnorm dw", t.w, C, norm_loss, &t, dw);

    const TKOpsF *lv[3];
    int nl = float_levels(lv);
    TPool *tp = tpool_new(3);
    float *fx = to_f(t.x, nx), *fw = to_f(t.w, C), *fwo = to_f(t.wout, nx);
    float *fo = malloc(nx * sizeof *fo), *fr = malloc(N * sizeof *fr);
    float *fdx = calloc(nx, sizeof *fdx), *fdw = calloc(C, sizeof *fdw);
    norm_loss(&t);
    for (int l = 0; l < nl; l++) {
        memset(fdx, 0, nx * sizeof *fdx);
        memset(fdw, 0, C * sizeof *fdw);
        lv[l]->rmsnorm_forward(tp, fo, fr, fx, fw, N, C, 1e-5f);
        lv[l]->rmsnorm_backward(tp, fdx, fdw, fwo, fx, fw, fr, N, C);
        close_fd("rmsnorm out", lv[l]->name, fo, t.out, nx);
        close_fd("rmsnorm dx", lv[l]->name, fdx, dx, nx);
        close_fd("rmsnorm dw", lv[l]->name, fdw, dw, C);
    }
    free(fx), free(fw), free(fwo), free(fo), free(fr), free(fdx), free(fdw);
    tpool_free(tp);
    free(t.out), free(t.rstd), free(t.x), free(t.w), free(t.wout), free(dx), free(dw), free(nx0),
        free(nw0);
}

/* ------------------------------------------------------------------- matmul */

typedef struct {
    const TKOpsD *k;
    double *out, *inp, *w, *wout, *bias;
    long N;
    int I, O;
} MmT;

static double mm_loss(void *v) {
    MmT *t = v;
    size_t no = (size_t)t->N * t->O;
    memcpy(t->out, t->bias, no * sizeof *t->out);
    t->k->matmul_forward(NULL, NULL, t->out, t->inp, t->w, t->N, t->I, t->O, true);
    return wsum(t->wout, t->out, no);
}

Test(tkern, matmul) {
    long N = 7;
    int I = 33, O = 17;
    size_t ni = (size_t)N * I, nw = (size_t)O * I, no = (size_t)N * O;
    Rng r;
    rng_seed(&r, 2);
    MmT t = {
        tk_ops_d(SIMD_SCALAR), dalloc(no), dalloc(ni), dalloc(nw), dalloc(no), dalloc(no), N, I, O};
    rnd(t.inp, ni, &r, 1.0, 0.0);
    rnd(t.w, nw, &r, 1.0, 0.0);
    rnd(t.wout, no, &r, 1.0, 0.0);
    rnd(t.bias, no, &r, 1.0, 0.0);
    /* accumulate = false ignores what was in out */
    double *o2 = dalloc(no);
    rnd(o2, no, &r, 100.0, 0.0);
    t.k->matmul_forward(NULL, NULL, o2, t.inp, t.w, N, I, O, false);
    for (size_t i = 0; i < no; i++) {
        double s = 0;
        for (int c = 0; c < I; c++)
            s += t.inp[(size_t)(i / O) * I + c] * t.w[(i % O) * I + c];
        cr_expect(fabs(o2[i] - s) < 1e-12 * (1 + fabs(s)), "out[%zu] %g want %g", i, o2[i], s);
    }
    double alpha = 0.37;
    double *din = dalloc(ni), *dw = dalloc(nw), *n0 = dalloc(ni), *w0 = dalloc(nw);
    rnd(n0, ni, &r, 1.0, 0.0);
    rnd(w0, nw, &r, 1.0, 0.0);
    memcpy(din, n0, ni * sizeof *din);
    memcpy(dw, w0, nw * sizeof *dw);
    t.k->matmul_backward(NULL, NULL, din, dw, t.wout, t.inp, t.w, N, I, O, alpha, true);
    for (size_t i = 0; i < ni; i++)
        din[i] = (din[i] - n0[i]) / alpha;
    for (size_t i = 0; i < nw; i++)
        dw[i] = (dw[i] - w0[i]) / alpha;
    fd_check("matmul dinp", t.inp, ni, mm_loss, &t, din);
    fd_check("matmul dw", t.w, nw, mm_loss, &t, dw);
    /* dinp may be NULL */
    double *dw2 = dalloc(nw);
    t.k->matmul_backward(NULL, NULL, NULL, dw2, t.wout, t.inp, t.w, N, I, O, 1.0, true);
    for (size_t i = 0; i < nw; i++)
        cr_expect(fabs(dw2[i] - dw[i]) < 1e-12 * (1 + fabs(dw[i])));
    free(t.out), free(t.inp), free(t.w), free(t.wout), free(t.bias), free(o2), free(din), free(dw),
        free(n0), free(w0), free(dw2);
}

/* Float levels (the AVX-512 one has its own GEMM) against double on shapes
 * that cross every blocking edge: K > 256 (several k blocks), columns >
 * 512 (several column blocks) and not a multiple of 32, rows not a
 * multiple of 8, fewer column panels than threads (the rows are split). */
static void matmul_float_case(long N, int I, int O, uint64_t seed) {
    size_t ni = (size_t)N * I, nw = (size_t)O * I, no = (size_t)N * O;
    Rng r;
    rng_seed(&r, seed);
    double *inp = dalloc(ni), *w = dalloc(nw), *dout = dalloc(no), *out = dalloc(no);
    double *din = dalloc(ni), *dw = dalloc(nw);
    rnd(inp, ni, &r, 1.0, 0.0);
    rnd(w, nw, &r, 1.0, 0.0);
    rnd(dout, no, &r, 1.0, 0.0);
    rnd(din, ni, &r, 1.0, 0.0); /* accumulated onto */
    rnd(dw, nw, &r, 1.0, 0.0);
    float *fin = to_f(inp, ni), *fw = to_f(w, nw), *fdo = to_f(dout, no), *fdin0 = to_f(din, ni);
    float *fdw0 = to_f(dw, nw);
    const TKOpsD *kd = tk_ops_d(SIMD_SCALAR);
    kd->matmul_forward(NULL, NULL, out, inp, w, N, I, O, false);
    kd->matmul_backward(NULL, NULL, din, dw, dout, inp, w, N, I, O, 0.5, true);
    TPool *tp = tpool_new(3);
    float *ws = aligned_alloc(64, 3 * tk_matmul_scratch() * sizeof *ws); /* 64-byte aligned */
    float *fo = malloc(no * sizeof *fo), *fdin = malloc(ni * sizeof *fdin);
    float *fdw = malloc(nw * sizeof *fdw), *fo1 = malloc(no * sizeof *fo1);
    float *fdw1 = malloc(nw * sizeof *fdw1);
    const TKOpsF *lv[3];
    int nl = float_levels(lv);
    char name[64];
    snprintf(name, sizeof name, "matmul N%ld I%d O%d", N, I, O);
    for (int l = 0; l < nl; l++) {
        for (int threads = 0; threads < 2; threads++) {
            TPool *p = threads ? tp : NULL;
            for (size_t i = 0; i < no; i++)
                fo[i] = NAN; /* accumulate = false must not read out */
            memcpy(fdin, fdin0, ni * sizeof *fdin);
            memcpy(fdw, fdw0, nw * sizeof *fdw);
            lv[l]->matmul_forward(p, ws, fo, fin, fw, N, I, O, false);
            lv[l]->matmul_backward(p, ws, fdin, fdw, fdo, fin, fw, N, I, O, 0.5f, true);
            close_fd(name, lv[l]->name, fo, out, no);
            close_fd("matmul dinp", lv[l]->name, fdin, din, ni);
            close_fd("matmul dw", lv[l]->name, fdw, dw, nw);
            if (threads) {
                cr_expect(memcmp(fo, fo1, no * sizeof *fo) == 0, "%s %s: threads change out", name,
                          lv[l]->name);
                cr_expect(memcmp(fdw, fdw1, nw * sizeof *fdw) == 0, "%s %s: threads change dw",
                          name, lv[l]->name);
            } else {
                memcpy(fo1, fo, no * sizeof *fo);
                memcpy(fdw1, fdw, nw * sizeof *fdw);
            }
        }
        /* dinp with accumulate = false: overwritten, never read */
        for (size_t i = 0; i < ni; i++)
            fdin[i] = NAN;
        memcpy(fdw, fdw0, nw * sizeof *fdw);
        lv[l]->matmul_backward(tp, ws, fdin, fdw, fdo, fin, fw, N, I, O, 0.5f, false);
        for (size_t i = 0; i < ni; i++)
            fdin[i] += fdin0[i];
        close_fd("matmul dinp overwrite", lv[l]->name, fdin, din, ni);
        /* accumulate = true adds */
        memcpy(fo1, fo, no * sizeof *fo);
        lv[l]->matmul_forward(tp, ws, fo, fin, fw, N, I, O, true);
        for (size_t i = 0; i < no; i++)
            fo1[i] *= 2;
        cr_expect(check_close("matmul accumulate", fo, fo1, (int64_t)no, 1e-5f, 1e-5f));
    }
    tpool_free(tp);
    free(ws), free(fo), free(fdin), free(fdw), free(fo1), free(fdw1);
    free(fin), free(fw), free(fdo), free(fdin0), free(fdw0);
    free(inp), free(w), free(dout), free(out), free(din), free(dw);
}

Test(tkern, matmul_float_small) { matmul_float_case(7, 33, 17, 11); }
Test(tkern, matmul_float_blocked) { matmul_float_case(301, 600, 1100, 12); }
Test(tkern, matmul_float_tall) { matmul_float_case(1030, 40, 70, 13); }

/* ---------------------------------------------------------------- embedding */

Test(tkern, embedding) {
    long N = 9;
    int C = 5, V = 11;
    int32_t tok[9] = {3, 0, 10, 3, 7, 3, 10, 1, 0};
    Rng r;
    rng_seed(&r, 3);
    double *wte = dalloc((size_t)V * C), *out = dalloc((size_t)N * C),
           *dout = dalloc((size_t)N * C);
    double *dwte = dalloc((size_t)V * C), *want = dalloc((size_t)V * C);
    rnd(wte, (size_t)V * C, &r, 1.0, 0.0);
    rnd(dout, (size_t)N * C, &r, 1.0, 0.0);
    rnd(dwte, (size_t)V * C, &r, 1.0, 0.0);
    memcpy(want, dwte, (size_t)V * C * sizeof *want);
    TPool *tp = tpool_new(3);
    const TKOpsD *k = tk_ops_d(SIMD_SCALAR);
    k->embed_forward(tp, out, tok, wte, N, C, V);
    for (long n = 0; n < N; n++)
        for (int c = 0; c < C; c++) {
            cr_expect_eq(out[n * C + c], wte[tok[n] * C + c]);
            want[tok[n] * C + c] += dout[n * C + c];
        }
    k->embed_backward(tp, dwte, dout, tok, N, C, V);
    for (int i = 0; i < V * C; i++)
        cr_expect(fabs(dwte[i] - want[i]) < 1e-12, "dwte[%d] %g want %g", i, dwte[i], want[i]);
    tpool_free(tp);
    free(wte), free(out), free(dout), free(dwte), free(want);
}

/* --------------------------------------------------------------------- rope */

typedef struct {
    const TKOpsD *k;
    double *x, *y, *cs, *wout;
    int B, T, NHR, HS, ld;
} RopeT;

static double rope_loss(void *v) {
    RopeT *t = v;
    size_t n = (size_t)t->B * t->T * t->ld;
    memcpy(t->y, t->x, n * sizeof *t->y);
    t->k->rope_forward(NULL, t->y, t->cs, t->B, t->T, t->NHR, t->HS, t->ld);
    return wsum(t->wout, t->y, n);
}

Test(tkern, rope) {
    int B = 2, T = 5, NHR = 3, HS = 6, ld = NHR * HS + 4; /* 4 columns rope leaves alone */
    size_t n = (size_t)B * T * ld;
    Rng r;
    rng_seed(&r, 4);
    RopeT t = {tk_ops_d(SIMD_SCALAR),
               dalloc(n),
               dalloc(n),
               dalloc((size_t)T * HS),
               dalloc(n),
               B,
               T,
               NHR,
               HS,
               ld};
    tk_rope_table_d(t.cs, T, HS, 10000.0f);
    /* the table: position t, pair i at angle t * 10000^(-2i/HS) */
    for (int p = 0; p < T; p++)
        for (int i = 0; i < HS / 2; i++) {
            double th = p * pow(10000.0, -2.0 * i / HS);
            cr_expect(fabs(t.cs[p * HS + 2 * i] - cos(th)) < 1e-15);
            cr_expect(fabs(t.cs[p * HS + 2 * i + 1] - sin(th)) < 1e-15);
        }
    rnd(t.x, n, &r, 1.0, 0.0);
    rnd(t.wout, n, &r, 1.0, 0.0);
    rope_loss(&t);
    /* closed form for one pair: row 1 (t = 1), head 2, pair 1 */
    size_t o = (size_t)1 * ld + 2 * HS + 2;
    double th = 1 * pow(10000.0, -2.0 / HS);
    cr_expect(fabs(t.y[o] - (t.x[o] * cos(th) - t.x[o + 1] * sin(th))) < 1e-14);
    cr_expect(fabs(t.y[o + 1] - (t.x[o] * sin(th) + t.x[o + 1] * cos(th))) < 1e-14);
    cr_expect_eq(t.y[ld - 1], t.x[ld - 1]);
    double *dx = dalloc(n);
    memcpy(dx, t.wout, n * sizeof *dx);
    t.k->rope_backward(NULL, dx, t.cs, B, T, NHR, HS, ld);
    fd_check("rope dx", t.x, n, rope_loss, &t, dx);
    rope_loss(&t);

    const TKOpsF *lv[3];
    int nl = float_levels(lv);
    float *fcs = malloc((size_t)T * HS * sizeof *fcs);
    tk_rope_table_f(fcs, T, HS, 10000.0f);
    for (int l = 0; l < nl; l++) {
        float *fy = to_f(t.x, n), *fd = to_f(t.wout, n);
        lv[l]->rope_forward(NULL, fy, fcs, B, T, NHR, HS, ld);
        lv[l]->rope_backward(NULL, fd, fcs, B, T, NHR, HS, ld);
        close_fd("rope out", lv[l]->name, fy, t.y, n);
        close_fd("rope dx", lv[l]->name, fd, dx, n);
        free(fy), free(fd);
    }
    free(fcs);
    free(t.x), free(t.y), free(t.cs), free(t.wout), free(dx);
}

/* ---------------------------------------------------------------- attention */

typedef struct {
    const TKOpsD *k;
    double *y, *lse, *qkv, *scratch, *wout;
    int B, T, NH, NKV, HS;
} AttT;

static double att_loss(void *v) {
    AttT *t = v;
    t->k->attention_forward(NULL, t->y, t->lse, t->qkv, t->scratch, t->B, t->T, t->NH, t->NKV,
                            t->HS);
    return wsum(t->wout, t->y, (size_t)t->B * t->T * t->NH * t->HS);
}

/* Softmax attention written the obvious way, in double: y and each row's
 * log-sum-exp. */
static void att_naive(double *y, double *lse, const double *qkv, int B, int T, int NH, int NKV,
                      int HS) {
    int QD = NH * HS, KD = NKV * HS, W = QD + 2 * KD;
    double *s = dalloc((size_t)T);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < T; t++) {
                const double *q = qkv + ((size_t)b * T + t) * W + h * HS;
                int kvh = h / (NH / NKV);
                double mx = -INFINITY, sum = 0;
                for (int j = 0; j <= t; j++) {
                    const double *k = qkv + ((size_t)b * T + j) * W + QD + kvh * HS;
                    s[j] = 0;
                    for (int d = 0; d < HS; d++)
                        s[j] += q[d] * k[d];
                    s[j] /= sqrt((double)HS);
                    mx = fmax(mx, s[j]);
                }
                for (int j = 0; j <= t; j++)
                    sum += exp(s[j] - mx);
                lse[((size_t)b * NH + h) * T + t] = mx + log(sum);
                for (int d = 0; d < HS; d++) {
                    double acc = 0;
                    for (int j = 0; j <= t; j++)
                        acc += exp(s[j] - mx) / sum *
                               qkv[((size_t)b * T + j) * W + QD + KD + kvh * HS + d];
                    y[((size_t)b * T + t) * QD + h * HS + d] = acc;
                }
            }
    free(s);
}

/* Double: forward against the naive one, backward against finite
 * differences (when 'fd'). Float, every level, 1 and 3 threads: against
 * double (the AVX-512 level works in blocks of 64 queries, so T > 64
 * matters), and the same bits from 1 and 3 threads. */
static void attention_case(int B, int T, int NH, int NKV, int HS, bool fd, uint64_t seed) {
    int QD = NH * HS, W = QD + 2 * NKV * HS;
    size_t nq = (size_t)B * T * W, ny = (size_t)B * T * QD, nl = (size_t)B * NH * T;
    size_t nsc = 3 * tk_attention_scratch(T, HS);
    Rng r;
    rng_seed(&r, seed);
    AttT t = {tk_ops_d(SIMD_SCALAR),
              dalloc(ny),
              dalloc(nl),
              dalloc(nq),
              dalloc(nsc),
              dalloc(ny),
              B,
              T,
              NH,
              NKV,
              HS};
    rnd(t.qkv, nq, &r, 1.0, 0.0);
    rnd(t.wout, ny, &r, 1.0, 0.0);
    att_loss(&t);
    double *yn = dalloc(ny), *ln = dalloc(nl);
    att_naive(yn, ln, t.qkv, B, T, NH, NKV, HS);
    for (size_t i = 0; i < ny; i++)
        cr_expect(fabs(t.y[i] - yn[i]) < 1e-12, "y[%zu] %.15g naive %.15g", i, t.y[i], yn[i]);
    for (size_t i = 0; i < nl; i++)
        cr_expect(fabs(t.lse[i] - ln[i]) < 1e-12, "lse[%zu] %.15g naive %.15g", i, t.lse[i], ln[i]);
    double *dq = dalloc(nq), *n0 = dalloc(nq);
    rnd(n0, nq, &r, 1.0, 0.0);
    memcpy(dq, n0, nq * sizeof *dq);
    t.k->attention_backward(NULL, dq, t.wout, t.lse, t.qkv, t.scratch, B, T, NH, NKV, HS);
    for (size_t i = 0; i < nq; i++)
        dq[i] -= n0[i];
    char name[64];
    snprintf(name, sizeof name, "attention dqkv B%d T%d NH%d NKV%d HS%d", B, T, NH, NKV, HS);
    if (fd)
        fd_check(name, t.qkv, nq, att_loss, &t, dq);

    const TKOpsF *lv[3];
    int nlv = float_levels(lv);
    TPool *tp = tpool_new(3);
    float *fq = to_f(t.qkv, nq), *fwo = to_f(t.wout, ny), *fy = malloc(ny * sizeof *fy);
    float *fl = malloc(nl * sizeof *fl), *fsc = malloc(nsc * sizeof *fsc);
    float *fdq = malloc(nq * sizeof *fdq), *fdq1 = malloc(nq * sizeof *fdq1);
    att_loss(&t);
    for (int l = 0; l < nlv; l++) {
        for (int threads = 0; threads < 2; threads++) {
            TPool *p = threads ? tp : NULL;
            memset(fdq, 0, nq * sizeof *fdq);
            lv[l]->attention_forward(p, fy, fl, fq, fsc, B, T, NH, NKV, HS);
            lv[l]->attention_backward(p, fdq, fwo, fl, fq, fsc, B, T, NH, NKV, HS);
            close_fd(name, lv[l]->name, fy, t.y, ny);
            close_fd("attention lse", lv[l]->name, fl, t.lse, nl);
            close_fd("attention dqkv", lv[l]->name, fdq, dq, nq);
            if (threads)
                cr_expect(memcmp(fdq, fdq1, nq * sizeof *fdq) == 0, "%s: 1 and 3 threads differ",
                          lv[l]->name);
            else
                memcpy(fdq1, fdq, nq * sizeof *fdq);
        }
    }
    tpool_free(tp);
    free(fq), free(fwo), free(fy), free(fl), free(fsc), free(fdq), free(fdq1);
    free(t.y), free(t.lse), free(t.qkv), free(t.scratch), free(t.wout), free(yn), free(ln),
        free(dq), free(n0);
}

Test(tkern, attention_mha) { attention_case(2, 7, 2, 2, 6, true, 5); }
Test(tkern, attention_gqa2) { attention_case(1, 19, 4, 2, 6, true, 6); }
Test(tkern, attention_gqa4_wide) { attention_case(2, 9, 4, 1, 34, true, 7); }
Test(tkern, attention_one_token) { attention_case(3, 1, 2, 1, 4, true, 8); }
/* several query blocks of the AVX-512 path, partial last ones */
Test(tkern, attention_blocks) {
    attention_case(2, 64, 2, 1, 8, false, 9);
    attention_case(1, 150, 4, 2, 32, false, 10);
    attention_case(2, 129, 2, 2, 16, false, 11);
}

/* ------------------------------------------------------------------- swiglu */

typedef struct {
    const TKOpsD *k;
    double *act, *gu, *wout;
    long N;
    int F;
} SwT;

static double sw_loss(void *v) {
    SwT *t = v;
    t->k->swiglu_forward(NULL, t->act, t->gu, t->N, t->F);
    return wsum(t->wout, t->act, (size_t)t->N * t->F);
}

Test(tkern, swiglu) {
    long N = 5;
    int F = 37;
    size_t na = (size_t)N * F, ng = 2 * na;
    Rng r;
    rng_seed(&r, 9);
    SwT t = {tk_ops_d(SIMD_SCALAR), dalloc(na), dalloc(ng), dalloc(na), N, F};
    rnd(t.gu, ng, &r, 3.0, 0.0);
    t.gu[0] = 90.0; /* beyond the float exp clamp */
    t.gu[1] = -95.0;
    rnd(t.wout, na, &r, 1.0, 0.0);
    sw_loss(&t);
    for (long n = 0; n < N; n++)
        for (int i = 0; i < F; i++) {
            double g = t.gu[n * 2 * F + i], u = t.gu[n * 2 * F + F + i];
            double want = g / (1 + exp(-g)) * u;
            cr_expect(fabs(t.act[n * F + i] - want) <= 1e-14 * (1 + fabs(want)));
        }
    double *dg = dalloc(ng), *n0 = dalloc(ng);
    rnd(n0, ng, &r, 1.0, 0.0);
    memcpy(dg, n0, ng * sizeof *dg);
    t.k->swiglu_backward(NULL, dg, t.wout, t.gu, N, F);
    for (size_t i = 0; i < ng; i++)
        dg[i] -= n0[i];
    fd_check("swiglu dgu", t.gu, ng, sw_loss, &t, dg);
    sw_loss(&t);

    const TKOpsF *lv[3];
    int nl = float_levels(lv);
    TPool *tp = tpool_new(3);
    float *fg = to_f(t.gu, ng), *fwo = to_f(t.wout, na), *fa = malloc(na * sizeof *fa);
    float *fdg = malloc(ng * sizeof *fdg);
    for (int l = 0; l < nl; l++) {
        memset(fdg, 0, ng * sizeof *fdg);
        lv[l]->swiglu_forward(tp, fa, fg, N, F);
        lv[l]->swiglu_backward(tp, fdg, fwo, fg, N, F);
        close_fd("swiglu act", lv[l]->name, fa, t.act, na);
        close_fd("swiglu dgu", lv[l]->name, fdg, dg, ng);
    }
    tpool_free(tp);
    free(fg), free(fwo), free(fa), free(fdg);
    free(t.act), free(t.gu), free(t.wout), free(dg), free(n0);
}

/* ------------------------------------------------------------ cross-entropy */

typedef struct {
    const TKOpsD *k;
    double *losses, *g, *logits;
    const int32_t *tgt;
    long N;
    int V;
} CeT;

static double ce_loss(void *v) {
    CeT *t = v;
    t->k->crossentropy_forward(NULL, t->losses, t->g, t->logits, t->tgt, t->N, t->V);
    double s = 0;
    for (long n = 0; n < t->N; n++)
        s += t->losses[n];
    return s;
}

Test(tkern, crossentropy) {
    long N = 6;
    int V = 37;
    int32_t tgt[6] = {0, 36, -1, 17, 5, -7};
    size_t nl = (size_t)N * V;
    Rng r;
    rng_seed(&r, 10);
    CeT t = {tk_ops_d(SIMD_SCALAR), dalloc(N), dalloc(nl), dalloc(nl), tgt, N, V};
    rnd(t.logits, nl, &r, 3.0, 0.0);
    t.logits[3 * V + 4] = 60.0; /* a dominant logit */
    ce_loss(&t);
    for (long n = 0; n < N; n++) {
        double mx = -INFINITY, s = 0;
        for (int v = 0; v < V; v++)
            mx = fmax(mx, t.logits[n * V + v]);
        for (int v = 0; v < V; v++)
            s += exp(t.logits[n * V + v] - mx);
        double want = tgt[n] < 0 ? 0 : mx + log(s) - t.logits[n * V + tgt[n]];
        cr_expect(fabs(t.losses[n] - want) <= 1e-13 * (1 + want), "loss[%ld] %.15g want %.15g", n,
                  t.losses[n], want);
    }
    double *g = dalloc(nl);
    memcpy(g, t.g, nl * sizeof *g);
    for (int v = 0; v < V; v++)
        cr_expect_eq(g[2 * V + v], 0.0);
    fd_check("crossentropy dlogits", t.logits, nl, ce_loss, &t, g);

    const TKOpsF *lv[3];
    int nlv = float_levels(lv);
    TPool *tp = tpool_new(3);
    float *fl = to_f(t.logits, nl), *fg = malloc(nl * sizeof *fg);
    double *floss = dalloc(N);
    ce_loss(&t);
    for (int l = 0; l < nlv; l++) {
        lv[l]->crossentropy_forward(tp, floss, fg, fl, tgt, N, V);
        close_fd("crossentropy g", lv[l]->name, fg, t.g, nl);
        for (long n = 0; n < N; n++)
            cr_expect(fabs(floss[n] - t.losses[n]) <= 1e-5 * (1 + t.losses[n]),
                      "%s: loss[%ld] %.9g want %.9g", lv[l]->name, n, floss[n], t.losses[n]);
    }
    tpool_free(tp);
    free(fl), free(fg), free(floss);
    free(t.losses), free(t.g), free(t.logits), free(g);
}

/* The float exp behind softmax/silu, every level, against libm. */
Test(tkern, float_exp) {
    const TKOpsF *lv[3];
    int nl = float_levels(lv);
    int V = 4001;
    float *l = malloc((size_t)V * sizeof *l), *g = malloc((size_t)V * sizeof *g);
    for (int v = 0; v < V; v++)
        l[v] = -85.0f + 85.0f * (float)v / (float)(V - 1); /* exp from e^-85 to 1 */
    int32_t tgt = 0;
    double loss;
    for (int k = 0; k < nl; k++) {
        lv[k]->crossentropy_forward(NULL, &loss, g, l, &tgt, 1, V);
        double sum = 0;
        for (int v = 0; v < V; v++)
            sum += exp((double)l[v]);
        double worst = 0;
        for (int v = 1; v < V; v++) {
            double want = exp((double)l[v]) / sum;
            worst = fmax(worst, fabs(g[v] - want) / want);
        }
        cr_log_info("%s: softmax max rel err %.3g", lv[k]->name, worst);
        cr_expect(worst < 1e-6, "%s: softmax max rel err %.3g", lv[k]->name, worst);
    }
    free(l), free(g);
}
