/* test_tmodel.c - the trainable model against oracles it did not compute:
 *   - its logits equal the inference engine's (model_forward) for the same
 *     weights written to a GGUF file, on several shapes (GQA groups 1, 2,
 *     4; NH*HS != C; B > 1; T short and T = n_ctx);
 *   - its loss equals a double-precision log-softmax cross-entropy
 *     computed here from those logits (targets < 0 ignored, counted);
 *   - the whole network's gradient in double equals central finite
 *     differences of its loss, and the float gradient equals the double one;
 *   - two runs are bit-identical; two half batches accumulate to one batch;
 *   - bad tokens, targets, shapes and configs are errors that say where. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../testutil.h"
#include "core/cpu.h"
#include "core/rng.h"
#include "gguf/gguf_writer.h"
#include "model/model.h"
#include "train/tkern.h"
#include "train/tmodel.h"

static TConfig cfg_make(int V, int C, int L, int NH, int NKV, int HS, int F, int n_ctx) {
    return (TConfig){.n_vocab = V,
                     .n_embd = C,
                     .n_layers = L,
                     .n_heads = NH,
                     .n_kv_heads = NKV,
                     .head_dim = HS,
                     .n_ff = F,
                     .n_ctx = n_ctx,
                     .rope_base = 10000.0f,
                     .norm_eps = 1e-5f};
}

/* Weights with O(1) activations: matrices N(0, 1/cols), norms 1 + N(0, 0.1^2). */
static void fill_params(TModel *m, uint64_t seed) {
    Rng r;
    rng_seed(&r, seed);
    int n;
    const TParam *tp = tmodel_tensors(m, &n);
    float *p = tmodel_params(m);
    for (int i = 0; i < n; i++) {
        size_t cnt = (size_t)(tp[i].rows * tp[i].cols);
        float std = tp[i].rows == 1 ? 0.1f : 1.0f / sqrtf((float)tp[i].cols);
        for (size_t j = 0; j < cnt; j++)
            p[tp[i].offset + j] = (tp[i].rows == 1 ? 1.0f : 0.0f) + std * rng_normal(&r);
    }
}

static void fill_tokens(int32_t *tok, int32_t *tgt, int n, int V, uint64_t seed) {
    Rng r;
    rng_seed(&r, seed);
    for (int i = 0; i < n; i++) {
        tok[i] = (int32_t)(rng_u64(&r) % (uint64_t)V);
        tgt[i] = (int32_t)(rng_u64(&r) % (uint64_t)V);
        if (i % 5 == 3)
            tgt[i] = -1; /* ignored */
    }
}

/* The model as an F32 llama GGUF with tied embeddings (randmodel's keys). */
static void write_gguf(TModel *m, const char *path) {
    const TConfig *c = tmodel_config(m);
    GGUFWriter *w = gguf_writer_new();
    cr_assert(w);
    gguf_writer_set_str(w, "general.architecture", "llama");
    gguf_writer_set_str(w, "general.name", "tmodel-test");
    gguf_writer_set_u32(w, "llama.context_length", (uint32_t)c->n_ctx);
    gguf_writer_set_u32(w, "llama.embedding_length", (uint32_t)c->n_embd);
    gguf_writer_set_u32(w, "llama.block_count", (uint32_t)c->n_layers);
    gguf_writer_set_u32(w, "llama.feed_forward_length", (uint32_t)c->n_ff);
    gguf_writer_set_u32(w, "llama.attention.head_count", (uint32_t)c->n_heads);
    gguf_writer_set_u32(w, "llama.attention.head_count_kv", (uint32_t)c->n_kv_heads);
    gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", c->norm_eps);
    gguf_writer_set_f32(w, "llama.rope.freq_base", c->rope_base);
    gguf_writer_set_u32(w, "llama.rope.dimension_count", (uint32_t)c->head_dim);
    if (c->n_heads * c->head_dim != c->n_embd) {
        gguf_writer_set_u32(w, "llama.attention.key_length", (uint32_t)c->head_dim);
        gguf_writer_set_u32(w, "llama.attention.value_length", (uint32_t)c->head_dim);
    }
    int n;
    const TParam *tp = tmodel_tensors(m, &n);
    const float *p = tmodel_params(m);
    for (int i = 0; i < n; i++) {
        int64_t ne[2] = {tp[i].cols, tp[i].rows};
        gguf_writer_add_tensor(w, tp[i].name, DTYPE_F32, tp[i].rows == 1 ? 1 : 2, ne,
                               p + tp[i].offset);
    }
    Err err = {0};
    cr_assert_eq(gguf_writer_write(w, path, &err), STATUS_OK, "%s", err.msg);
    gguf_writer_free(w);
}

/* logits from the engine: row b is sequence b at positions 0..T-1. */
static void engine_logits(const char *path, const int32_t *tok, int B, int T, float *out) {
    ModelParams mp = {.n_threads = 2, .n_ctx = T, .n_seq_max = B, .n_batch = B * T};
    Model *em = NULL;
    Err err = {0};
    cr_assert_eq(model_load(&em, path, &mp, &err), STATUS_OK, "%s", err.msg);
    BatchRow *rows = calloc((size_t)B * T, sizeof *rows);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            rows[b * T + t] = (BatchRow){tok[b * T + t], t, b, true};
    cr_assert_eq(model_forward(em, rows, B * T, out, &err), STATUS_OK, "%s", err.msg);
    free(rows);
    model_free(em);
}

static double ce_ref(const float *logits, const int32_t *tgt, long N, int V, long *count) {
    double sum = 0;
    *count = 0;
    for (long n = 0; n < N; n++) {
        if (tgt[n] < 0)
            continue;
        const float *l = logits + (size_t)n * V;
        double mx = -INFINITY, s = 0;
        for (int v = 0; v < V; v++)
            mx = fmax(mx, (double)l[v]);
        for (int v = 0; v < V; v++)
            s += exp((double)l[v] - mx);
        sum += mx + log(s) - (double)l[tgt[n]];
        (*count)++;
    }
    return sum;
}

static float max_abs(const float *x, size_t n) {
    float m = 0;
    for (size_t i = 0; i < n; i++)
        m = fmaxf(m, fabsf(x[i]));
    return m;
}

static void engine_equal(TConfig cfg, int B, int T, int threads) {
    TPool *tp = tpool_new(threads);
    TModel *m = NULL;
    Err err = {0};
    cr_assert_eq(tmodel_new(&m, &cfg, B, tp, &err), STATUS_OK, "%s", err.msg);
    fill_params(m, 11);
    int N = B * T, V = cfg.n_vocab;
    int32_t *tok = malloc((size_t)N * sizeof *tok), *tgt = malloc((size_t)N * sizeof *tgt);
    fill_tokens(tok, tgt, N, V, 5);
    double loss;
    long cnt;
    cr_assert_eq(tmodel_forward(m, tok, tgt, B, T, &loss, &cnt, &err), STATUS_OK, "%s", err.msg);

    char dir[] = "/tmp/cgpt_tmodel_XXXXXX", path[96];
    cr_assert(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/m.gguf", dir);
    write_gguf(m, path);
    float *want = malloc((size_t)N * V * sizeof *want);
    engine_logits(path, tok, B, T, want);
    unlink(path);
    rmdir(dir);
    const float *got = tmodel_logits(m);
    float scale = max_abs(want, (size_t)N * V);
    cr_assert(scale > 0.5f, "logits too small to compare (%g)", scale);
    cr_expect(check_close("logits", got, want, (int64_t)N * V, 1e-5f * scale, 1e-5f));

    long want_cnt;
    double want_loss = ce_ref(got, tgt, N, V, &want_cnt);
    cr_expect_eq(cnt, want_cnt);
    cr_expect(fabs(loss - want_loss) <= 1e-6 * fabs(want_loss), "loss %.9g want %.9g", loss,
              want_loss);
    free(want);
    free(tok);
    free(tgt);
    tmodel_free(m);
    tpool_free(tp);
}

Test(tmodel, engine_mha_full_ctx) {
    engine_equal(cfg_make(300, 64, 2, 4, 4, 16, 96, 16), 2, 16, 2);
}
Test(tmodel, engine_gqa2_short_rows) {
    /* NH*HS = 96 != C = 64, T < n_ctx */
    engine_equal(cfg_make(261, 64, 2, 4, 2, 24, 80, 12), 3, 5, 2);
}
Test(tmodel, engine_gqa4_awkward) {
    /* NH*HS = 64 != C = 48, T = n_ctx = 33, one thread */
    engine_equal(cfg_make(97, 48, 3, 8, 2, 8, 56, 33), 1, 33, 1);
}
Test(tmodel, engine_single_token) { engine_equal(cfg_make(50, 32, 1, 2, 1, 16, 40, 8), 4, 1, 2); }

/* ------------------------------------------------------------ gradients */

/* The double network over the same layout: its gradient against central
 * differences of its own loss, for a sample of every tensor. */
Test(tmodel, grad_double_vs_finite_differences) {
    TConfig cfg = cfg_make(23, 16, 2, 4, 2, 6, 20, 7);
    int B = 2, T = 7, N = B * T;
    TKNetD net;
    cr_assert(tknet_init_d(&net, &cfg, B, NULL, tk_ops_d(SIMD_SCALAR)));
    size_t P = net.lo.n_params;
    double *p = malloc(P * sizeof *p), *g = calloc(P, sizeof *g);
    Rng r;
    rng_seed(&r, 3);
    for (size_t i = 0; i < P; i++)
        p[i] = 0.5 * rng_normal(&r);
    for (int l = 0; l < cfg.n_layers; l++) {
        double *L = p + net.lo.layer0 + (size_t)l * net.lo.layer_size;
        for (int c = 0; c < cfg.n_embd; c++) {
            L[net.lo.attn_norm + c] += 1.0;
            L[net.lo.ffn_norm + c] += 1.0;
        }
    }
    int32_t tok[14], tgt[14];
    fill_tokens(tok, tgt, N, cfg.n_vocab, 9);
    double loss;
    long cnt;
    tknet_forward_d(&net, p, tok, tgt, B, T, &loss, &cnt);
    tknet_backward_d(&net, p, g, 1.0);

    /* a stride through every tensor; the error of a tiny gradient is
     * measured against the largest one (finite differences carry an
     * absolute error of about eps * loss / h) */
    double gmax = 0;
    for (size_t i = 0; i < P; i++)
        gmax = fmax(gmax, fabs(g[i]));
    double worst = 0;
    size_t worst_i = 0, checked = 0;
    for (size_t i = 0; i < P; i += 1 + (i % 7)) {
        double save = p[i], h = 1e-5, lp, lm;
        p[i] = save + h;
        tknet_forward_d(&net, p, tok, tgt, B, T, &lp, &cnt);
        p[i] = save - h;
        tknet_forward_d(&net, p, tok, tgt, B, T, &lm, &cnt);
        p[i] = save;
        double fd = (lp - lm) / (2 * h);
        double err = fabs(fd - g[i]) / (fabs(fd) + 1e-3 * gmax);
        if (err > worst) {
            worst = err;
            worst_i = i;
        }
        checked++;
    }
    cr_log_info("whole-network FD (double): %zu of %zu params, max rel err %.3g", checked, P,
                worst);
    cr_expect(worst < 1e-6, "param %zu: grad %.12g, finite difference disagrees (rel %.3g)",
              worst_i, g[worst_i], worst);
    free(p);
    free(g);
    tknet_free_d(&net);
}

/* The float model at SIMD level 'simd' (NULL: the best this CPU has; the
 * level is read when the model is made) against the double network on the
 * same weights: loss and every gradient. */
static void float_vs_double(const char *simd) {
    if (simd)
        setenv("CGPT_SIMD", simd, 1); /* Criterion runs each test in its own process */
    TConfig cfg = cfg_make(70, 32, 2, 4, 2, 8, 48, 19);
    int B = 3, T = 19, N = B * T;
    TPool *tp = tpool_new(2);
    TModel *m = NULL;
    Err err = {0};
    cr_assert_eq(tmodel_new(&m, &cfg, B, tp, &err), STATUS_OK, "%s", err.msg);
    fill_params(m, 4);
    int32_t *tok = malloc((size_t)N * sizeof *tok), *tgt = malloc((size_t)N * sizeof *tgt);
    fill_tokens(tok, tgt, N, cfg.n_vocab, 8);
    double loss;
    long cnt;
    cr_assert_eq(tmodel_forward(m, tok, tgt, B, T, &loss, &cnt, &err), STATUS_OK, "%s", err.msg);
    tmodel_zero_grads(m);
    tmodel_backward(m, 1.0f / (float)cnt);

    TKNetD net;
    cr_assert(tknet_init_d(&net, &cfg, B, tp, tk_ops_d(SIMD_SCALAR)));
    size_t P = tmodel_n_params(m);
    double *pd = malloc(P * sizeof *pd), *gd = calloc(P, sizeof *gd);
    float *gdf = malloc(P * sizeof *gdf);
    for (size_t i = 0; i < P; i++)
        pd[i] = tmodel_params(m)[i];
    double loss_d;
    long cnt_d;
    tknet_forward_d(&net, pd, tok, tgt, B, T, &loss_d, &cnt_d);
    tknet_backward_d(&net, pd, gd, 1.0 / (double)cnt_d);
    cr_expect_eq(cnt, cnt_d);
    cr_expect(fabs(loss - loss_d) <= 2e-6 * fabs(loss_d), "loss %.9g double %.9g", loss, loss_d);
    for (size_t i = 0; i < P; i++)
        gdf[i] = (float)gd[i];
    int n;
    const TParam *tt = tmodel_tensors(m, &n);
    for (int i = 0; i < n; i++) {
        size_t cnt_i = (size_t)(tt[i].rows * tt[i].cols);
        float sc = max_abs(gdf + tt[i].offset, cnt_i);
        cr_expect(check_close(tt[i].name, tmodel_grads(m) + tt[i].offset, gdf + tt[i].offset,
                              (int64_t)cnt_i, 2e-4f * sc, 1e-3f));
    }
    free(pd);
    free(gd);
    free(gdf);
    tknet_free_d(&net);
    free(tok);
    free(tgt);
    tmodel_free(m);
    tpool_free(tp);
    unsetenv("CGPT_SIMD");
}

Test(tmodel, grad_float_vs_double) { float_vs_double(NULL); }
Test(tmodel, grad_float_vs_double_avx2) { float_vs_double("avx2"); }
Test(tmodel, grad_float_vs_double_scalar) { float_vs_double("scalar"); }

Test(tmodel, deterministic) {
    TConfig cfg = cfg_make(200, 64, 2, 4, 2, 16, 96, 32);
    int B = 3, T = 32, N = B * T;
    TPool *tp = tpool_new(2);
    TModel *m = NULL;
    Err err = {0};
    cr_assert_eq(tmodel_new(&m, &cfg, B, tp, &err), STATUS_OK, "%s", err.msg);
    tmodel_init(m, 42);
    size_t P = tmodel_n_params(m);
    int32_t *tok = malloc((size_t)N * sizeof *tok), *tgt = malloc((size_t)N * sizeof *tgt);
    fill_tokens(tok, tgt, N, cfg.n_vocab, 1);
    float *g1 = malloc(P * sizeof *g1);
    double l1 = 0, l2 = 0;
    for (int run = 0; run < 2; run++) {
        double loss;
        long cnt;
        tmodel_zero_grads(m);
        cr_assert_eq(tmodel_forward(m, tok, tgt, B, T, &loss, &cnt, &err), STATUS_OK);
        tmodel_backward(m, 1.0f / (float)cnt);
        if (run == 0) {
            l1 = loss;
            memcpy(g1, tmodel_grads(m), P * sizeof *g1);
        } else {
            l2 = loss;
        }
    }
    cr_expect(memcmp(&l1, &l2, sizeof l1) == 0, "loss %.17g then %.17g", l1, l2);
    cr_expect(memcmp(g1, tmodel_grads(m), P * sizeof *g1) == 0, "gradients differ between runs");
    /* beyond the contract: on the AVX-512 path (own GEMM, fixed split of
     * every sum) the thread count does not change a bit either */
    if (cpu_simd_level() == SIMD_AVX512) {
        TPool *tp3 = tpool_new(3);
        TModel *m3 = NULL;
        cr_assert_eq(tmodel_new(&m3, &cfg, B, tp3, &err), STATUS_OK);
        tmodel_init(m3, 42);
        double l3;
        long c3;
        cr_assert_eq(tmodel_forward(m3, tok, tgt, B, T, &l3, &c3, &err), STATUS_OK);
        tmodel_backward(m3, 1.0f / (float)c3);
        cr_expect(memcmp(&l1, &l3, sizeof l1) == 0, "loss %.17g with 2 threads, %.17g with 3", l1,
                  l3);
        cr_expect(memcmp(g1, tmodel_grads(m3), P * sizeof *g1) == 0,
                  "gradients differ between 2 and 3 threads");
        tmodel_free(m3);
        tpool_free(tp3);
    }
    /* the init is deterministic too, and is what the contract says */
    TModel *m2 = NULL;
    cr_assert_eq(tmodel_new(&m2, &cfg, 1, NULL, &err), STATUS_OK);
    tmodel_init(m2, 42);
    cr_expect(memcmp(tmodel_params(m), tmodel_params(m2), P * sizeof(float)) == 0);
    int n;
    const TParam *tt = tmodel_tensors(m2, &n);
    cr_expect_eq(n, 2 + 9 * cfg.n_layers);
    for (int i = 0; i < n; i++) {
        const float *w = tmodel_params(m2) + tt[i].offset;
        size_t cnt_i = (size_t)(tt[i].rows * tt[i].cols);
        double s = 0, s2 = 0;
        for (size_t j = 0; j < cnt_i; j++) {
            s += w[j];
            s2 += (double)w[j] * w[j];
        }
        double mean = s / (double)cnt_i, sd = sqrt(s2 / (double)cnt_i - mean * mean);
        if (tt[i].rows == 1) {
            cr_expect(mean == 1.0 && sd == 0.0, "%s: norm weights not 1", tt[i].name);
            continue;
        }
        bool resid = strstr(tt[i].name, "attn_output") || strstr(tt[i].name, "ffn_down");
        double want = resid ? 0.02 / sqrt(2.0 * cfg.n_layers) : 0.02;
        cr_expect(fabs(sd - want) < 0.1 * want && fabs(mean) < 0.1 * want, "%s: mean %g std %g",
                  tt[i].name, mean, sd);
    }
    tmodel_free(m2);
    free(g1);
    free(tok);
    free(tgt);
    tmodel_free(m);
    tpool_free(tp);
}

Test(tmodel, grad_accumulation) {
    TConfig cfg = cfg_make(120, 32, 2, 4, 1, 8, 64, 24);
    int B = 4, T = 24, N = B * T;
    TPool *tp = tpool_new(2);
    TModel *m = NULL;
    Err err = {0};
    cr_assert_eq(tmodel_new(&m, &cfg, B, tp, &err), STATUS_OK, "%s", err.msg);
    fill_params(m, 21);
    size_t P = tmodel_n_params(m);
    int32_t *tok = malloc((size_t)N * sizeof *tok), *tgt = malloc((size_t)N * sizeof *tgt);
    fill_tokens(tok, tgt, N, cfg.n_vocab, 2);
    double loss, l1, l2;
    long cnt, c1, c2;
    tmodel_zero_grads(m);
    cr_assert_eq(tmodel_forward(m, tok, tgt, B, T, &loss, &cnt, &err), STATUS_OK);
    tmodel_backward(m, 1.0f / (float)cnt);
    float *whole = malloc(P * sizeof *whole);
    memcpy(whole, tmodel_grads(m), P * sizeof *whole);

    tmodel_zero_grads(m);
    int half = N / 2;
    cr_assert_eq(tmodel_forward(m, tok, tgt, B / 2, T, &l1, &c1, &err), STATUS_OK);
    tmodel_backward(m, 1.0f / (float)cnt);
    cr_assert_eq(tmodel_forward(m, tok + half, tgt + half, B / 2, T, &l2, &c2, &err), STATUS_OK);
    tmodel_backward(m, 1.0f / (float)cnt);
    cr_expect_eq(c1 + c2, cnt);
    cr_expect(fabs(l1 + l2 - loss) <= 1e-6 * fabs(loss), "halves %.12g + %.12g != %.12g", l1, l2,
              loss);
    float sc = max_abs(whole, P);
    cr_expect(sc > 0);
    cr_expect(
        check_close("accumulated grads", tmodel_grads(m), whole, (int64_t)P, 1e-6f * sc, 1e-4f));
    free(whole);
    free(tok);
    free(tgt);
    tmodel_free(m);
    tpool_free(tp);
}

/* --------------------------------------------------------------- errors */

Test(tmodel, bad_inputs) {
    TConfig cfg = cfg_make(40, 16, 1, 2, 1, 8, 24, 8);
    TModel *m = NULL;
    Err err = {0};
    cr_assert_eq(tmodel_new(&m, &cfg, 2, NULL, &err), STATUS_OK, "%s", err.msg);
    tmodel_init(m, 1);
    int32_t tok[16], tgt[16];
    for (int i = 0; i < 16; i++) {
        tok[i] = i;
        tgt[i] = i + 1;
    }
    double loss;
    long cnt;
    tok[8 + 3] = 40;
    cr_expect_eq(tmodel_forward(m, tok, tgt, 2, 8, &loss, &cnt, &err), STATUS_INVALID);
    cr_expect(strstr(err.msg, "row 1, column 3") && strstr(err.msg, "token 40"), "%s", err.msg);
    tok[8 + 3] = -2;
    cr_expect_eq(tmodel_forward(m, tok, tgt, 2, 8, &loss, &cnt, &err), STATUS_INVALID);
    cr_expect(strstr(err.msg, "row 1, column 3") && strstr(err.msg, "token -2"), "%s", err.msg);
    tok[8 + 3] = 3;
    tgt[5] = 41;
    cr_expect_eq(tmodel_forward(m, tok, tgt, 2, 8, &loss, &cnt, &err), STATUS_INVALID);
    cr_expect(strstr(err.msg, "row 0, column 5") && strstr(err.msg, "target 41"), "%s", err.msg);
    tgt[5] = -100; /* ignored, fine */
    cr_expect_eq(tmodel_forward(m, tok, tgt, 2, 8, &loss, &cnt, &err), STATUS_OK, "%s", err.msg);
    cr_expect_eq(cnt, 15);
    for (int i = 0; i < 16; i++)
        tgt[i] = -1;
    cr_expect_eq(tmodel_forward(m, tok, tgt, 2, 8, &loss, &cnt, &err), STATUS_OK);
    cr_expect(cnt == 0 && loss == 0.0);
    tmodel_zero_grads(m);
    tmodel_backward(m, 1.0f);
    cr_expect_eq(max_abs(tmodel_grads(m), tmodel_n_params(m)), 0.0f);
    cr_expect_eq(tmodel_forward(m, tok, tgt, 3, 8, &loss, &cnt, &err), STATUS_INVALID);
    cr_expect(strstr(err.msg, "3 rows"), "%s", err.msg);
    cr_expect_eq(tmodel_forward(m, tok, tgt, 1, 9, &loss, &cnt, &err), STATUS_INVALID);
    cr_expect(strstr(err.msg, "9 tokens") && strstr(err.msg, "n_ctx"), "%s", err.msg);
    cr_expect_eq(tmodel_forward(m, tok, tgt, 1, 0, &loss, &cnt, &err), STATUS_INVALID);
    cr_expect_eq(tmodel_forward(m, NULL, tgt, 1, 4, &loss, &cnt, &err), STATUS_INVALID);
    tmodel_free(m);
}

Test(tmodel, config_limits) {
    struct {
        TConfig cfg;
        Status want;
        const char *needle;
    } cases[] = {
        {cfg_make(0, 16, 1, 2, 1, 8, 24, 8), STATUS_LIMIT, "n_vocab = 0"},
        {cfg_make(TMODEL_MAX_VOCAB + 1, 16, 1, 2, 1, 8, 24, 8), STATUS_LIMIT, "n_vocab"},
        {cfg_make(40, TMODEL_MAX_EMBD + 1, 1, 2, 1, 8, 24, 8), STATUS_LIMIT, "n_embd"},
        {cfg_make(40, 16, 0, 2, 1, 8, 24, 8), STATUS_LIMIT, "n_layers = 0"},
        {cfg_make(40, 16, TMODEL_MAX_LAYERS + 1, 2, 1, 8, 24, 8), STATUS_LIMIT, "n_layers"},
        {cfg_make(40, 16, 1, TMODEL_MAX_HEADS + 1, 1, 8, 24, 8), STATUS_LIMIT, "n_heads"},
        {cfg_make(40, 16, 1, 4, 3, 8, 24, 8), STATUS_INVALID, "does not divide"},
        {cfg_make(40, 16, 1, 2, 4, 8, 24, 8), STATUS_LIMIT, "n_kv_heads = 4"},
        {cfg_make(40, 16, 1, 2, 1, 7, 24, 8), STATUS_INVALID, "head_dim 7"},
        {cfg_make(40, 16, 1, 2, 1, 0, 24, 8), STATUS_LIMIT, "head_dim = 0"},
        {cfg_make(40, 16, 1, 2, 1, 8, TMODEL_MAX_FF + 1, 8), STATUS_LIMIT, "n_ff"},
        {cfg_make(40, 16, 1, 2, 1, 8, 24, 0), STATUS_LIMIT, "n_ctx = 0"},
        {cfg_make(40, 16, 1, 2, 1, 8, 24, TMODEL_MAX_CTX + 1), STATUS_LIMIT, "n_ctx"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        Err err = {0};
        cr_expect_eq(tmodel_config_check(&cases[i].cfg, &err), cases[i].want, "case %zu: %s", i,
                     err.msg);
        cr_expect(strstr(err.msg, cases[i].needle), "case %zu: '%s' lacks '%s'", i, err.msg,
                  cases[i].needle);
        TModel *m = (TModel *)1;
        cr_expect_eq(tmodel_new(&m, &cases[i].cfg, 1, NULL, &err), cases[i].want);
        cr_expect_null(m);
    }
    TConfig c = cfg_make(40, 16, 1, 2, 1, 8, 24, 8);
    Err err = {0};
    c.norm_eps = 0;
    cr_expect_eq(tmodel_config_check(&c, &err), STATUS_INVALID);
    cr_expect(strstr(err.msg, "norm_eps"), "%s", err.msg);
    c = cfg_make(40, 16, 1, 2, 1, 8, 24, 8);
    c.rope_base = NAN;
    cr_expect_eq(tmodel_config_check(&c, &err), STATUS_INVALID);
    cr_expect(strstr(err.msg, "rope_base"), "%s", err.msg);
    c = cfg_make(40, 16, 1, 2, 1, 8, 24, 8);
    TModel *m = NULL;
    cr_expect_eq(tmodel_new(&m, &c, 0, NULL, &err), STATUS_LIMIT);
    cr_expect(strstr(err.msg, "max_batch 0"), "%s", err.msg);
    /* the parameter count follows the layout */
    cr_expect_eq(tmodel_config_n_params(&c),
                 (size_t)(40 * 16 + (16 + 32 * 16 + 16 * 16 + 16 + 2 * 24 * 16 + 16 * 24) + 16));
    cr_assert_eq(tmodel_new(&m, &c, 1, NULL, &err), STATUS_OK);
    int n;
    const TParam *tt = tmodel_tensors(m, &n);
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        cr_expect_eq(tt[i].offset, off, "%s", tt[i].name);
        off += (size_t)(tt[i].rows * tt[i].cols);
    }
    cr_expect_eq(off, tmodel_n_params(m));
    cr_expect_str_eq(tt[3].name, "blk.0.attn_k.weight");
    cr_expect(tt[3].rows == 8 && tt[3].cols == 16);
    cr_expect_str_eq(tt[n - 1].name, "output_norm.weight");
    tmodel_free(m);
}
