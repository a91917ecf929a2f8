/* traingrad.c - test tool: the loss and gradient of the trainable model
 * (src/train/tmodel.h) on one batch, or K AdamW steps on it, for
 * tests/train/test_torch.py to compare with PyTorch.
 *
 *   traingrad -m MODEL.gguf --batch FILE --out FILE [--threads N] [--accum N]
 *             [--logits FILE]
 *   traingrad -m MODEL.gguf --batch FILE --out FILE [--threads N] --adamw-steps K
 *             [--lr F] [--wd F] [--beta1 F] [--beta2 F] [--eps F] [--clip F]
 *             [--step-grads FILE]
 *
 * MODEL: an F32 `llama` GGUF with tied embeddings (no output.weight), full
 * rope (rope.dimension_count = head_dim, no rope_freqs.weight) and exactly
 * the tensors of the tmodel layout, e.g. `genmodel --arch llama --tied`.
 * Every tensor is copied into tmodel_params() by name after checking its
 * type and shape; the model is sized n_ctx = T of the batch.
 *
 * Batch FILE, little-endian int32: B, T, tokens[B][T], targets[B][T]
 * (targets < 0 are ignored).
 *
 * Gradient mode: zero the gradients, then --accum times (default 1)
 * forward + backward with loss_scale = 1/n_targets (1 when nothing counts).
 * Out FILE, little-endian:
 *   "TGG1", f64 loss_sum, i64 n_targets, f64 grad_norm (optim_grad_norm),
 *   u64 n_params, f32 grads[n_params] (layout order)
 * --logits FILE: the logits of the last forward, f32 (B, T, V).
 *
 * AdamW mode: K times { zero grads, forward, backward(1/n_targets),
 * norm = optim_grad_norm, with --clip > 0 scale the gradients by
 * optim_clip_scale(norm, clip), adamw_step }. Defaults: lr 1e-3, wd 0.1,
 * betas 0.9 0.95, eps 1e-8, clip 0 (off). Out FILE, little-endian:
 *   "TGA1", u64 K, i64 n_targets, u64 n_params,
 *   K x (f64 loss_sum, f64 grad_norm before clipping), f32 params[n_params]
 *   (after the K steps).
 * --step-grads FILE: every step's gradient before clipping, f32 (K, n_params),
 *   so that a test can feed PyTorch's AdamW the very gradients the C run used.
 *
 * Exits 1 with one line on stderr on any error. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/tpool.h"
#include "gguf/gguf.h"
#include "train/optim.h"
#include "train/tmodel.h"
#include "train/trainer.h"

#define TRAINGRAD_MAX_BATCH 1024   /* rows B in a batch file */
#define TRAINGRAD_MAX_STEPS 100000 /* --adamw-steps */
#define TRAINGRAD_MAX_ACCUM 64     /* --accum */

typedef struct {
    int B, T;
    int32_t *tokens;  /* (B, T) */
    int32_t *targets; /* (B, T) */
} Batch;

static _Noreturn void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static _Noreturn void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("traingrad: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static long parse_int(const char *opt, const char *v, long lo, long hi) {
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi)
        die("%s: bad integer '%s' (range %ld..%ld)", opt, v, lo, hi);
    return x;
}

static float parse_float(const char *opt, const char *v) {
    char *end;
    errno = 0;
    float x = strtof(v, &end);
    if (errno || end == v || *end || !isfinite(x))
        die("%s: bad number '%s'", opt, v);
    return x;
}

/* ---- batch file ---- */

static void batch_read(Batch *b, const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f)
        die("%s: %s", path, strerror(errno));
    int32_t hdr[2];
    if (fread(hdr, sizeof *hdr, 2, f) != 2)
        die("%s: shorter than its 8-byte header", path);
    if (hdr[0] < 1 || hdr[0] > TRAINGRAD_MAX_BATCH)
        die("%s: B %d out of range 1..%d (TRAINGRAD_MAX_BATCH)", path, hdr[0], TRAINGRAD_MAX_BATCH);
    if (hdr[1] < 1 || hdr[1] > TMODEL_MAX_CTX)
        die("%s: T %d out of range 1..%d (TMODEL_MAX_CTX)", path, hdr[1], TMODEL_MAX_CTX);
    b->B = hdr[0];
    b->T = hdr[1];
    size_t n = (size_t)b->B * (size_t)b->T;
    b->tokens = malloc(n * sizeof *b->tokens);
    b->targets = malloc(n * sizeof *b->targets);
    if (!b->tokens || !b->targets)
        die("%s: out of memory for %zu tokens", path, n);
    if (fread(b->tokens, sizeof *b->tokens, n, f) != n ||
        fread(b->targets, sizeof *b->targets, n, f) != n)
        die("%s: truncated: want 8 + 8 * %d * %d bytes", path, b->B, b->T);
    if (fgetc(f) != EOF)
        die("%s: trailing bytes after 8 + 8 * %d * %d", path, b->B, b->T);
    fclose(f);
}

/* ---- model from GGUF ---- */

/* ---- output ---- */

static void put(FILE *f, const void *p, size_t size, size_t n, const char *path) {
    if (fwrite(p, size, n, f) != n)
        die("%s: write failed: %s", path, strerror(errno));
}

static void check_forward(Status st, const Err *err, const char *what) {
    if (st != STATUS_OK)
        die("forward (%s): %s", what, err->msg);
}

int main(int argc, char **argv) {
    const char *model_path = NULL, *batch_path = NULL, *out_path = NULL, *logits_path = NULL;
    const char *step_grads_path = NULL;
    int n_threads = 1, accum = 1;
    long steps = 0;
    AdamWParams ap = {
        .lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f};
    float clip = 0.0f;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        if (i + 1 >= argc)
            die("%s: missing value", o);
        const char *v = argv[++i];
        if (!strcmp(o, "-m"))
            model_path = v;
        else if (!strcmp(o, "--batch"))
            batch_path = v;
        else if (!strcmp(o, "--out"))
            out_path = v;
        else if (!strcmp(o, "--logits"))
            logits_path = v;
        else if (!strcmp(o, "--step-grads"))
            step_grads_path = v;
        else if (!strcmp(o, "--threads"))
            n_threads = (int)parse_int(o, v, 1, TPOOL_MAX_THREADS);
        else if (!strcmp(o, "--accum"))
            accum = (int)parse_int(o, v, 1, TRAINGRAD_MAX_ACCUM);
        else if (!strcmp(o, "--adamw-steps"))
            steps = parse_int(o, v, 1, TRAINGRAD_MAX_STEPS);
        else if (!strcmp(o, "--lr"))
            ap.lr = parse_float(o, v);
        else if (!strcmp(o, "--wd"))
            ap.weight_decay = parse_float(o, v);
        else if (!strcmp(o, "--beta1"))
            ap.beta1 = parse_float(o, v);
        else if (!strcmp(o, "--beta2"))
            ap.beta2 = parse_float(o, v);
        else if (!strcmp(o, "--eps"))
            ap.eps = parse_float(o, v);
        else if (!strcmp(o, "--clip"))
            clip = parse_float(o, v);
        else
            die("unknown option '%s'", o);
    }
    if (!model_path || !batch_path || !out_path)
        die("usage: traingrad -m MODEL.gguf --batch FILE --out FILE [--threads N] [--accum N] "
            "[--logits FILE] [--adamw-steps K --lr F --wd F --beta1 F --beta2 F --eps F "
            "--clip F --step-grads FILE]");

    Batch b = {0};
    batch_read(&b, batch_path);
    Err err = {0};
    TPool *tp = tpool_new(n_threads);
    if (!tp)
        die("cannot start %d threads", n_threads);
    TModel *m = NULL; /* the library's loader: the same checks `cgpt train sft --init` makes */
    if (trainer_load_model(model_path, b.B, b.T, tp, &m, &err) != STATUS_OK)
        die("%s", err.msg);

    size_t n = tmodel_n_params(m);
    float *params = tmodel_params(m), *grads = tmodel_grads(m);
    int n_t = 0;
    const TParam *tab = tmodel_tensors(m, &n_t);
    FILE *f = fopen(out_path, "wb");
    if (!f)
        die("%s: %s", out_path, strerror(errno));
    double loss = 0;
    long n_targets = 0;
    if (steps == 0) {
        tmodel_zero_grads(m);
        for (int a = 0; a < accum; a++) {
            check_forward(tmodel_forward(m, b.tokens, b.targets, b.B, b.T, &loss, &n_targets, &err),
                          &err, batch_path);
            tmodel_backward(m, n_targets > 0 ? 1.0f / (float)n_targets : 1.0f);
        }
        double norm = optim_grad_norm(grads, n, tp);
        int64_t nt = n_targets;
        uint64_t np = n;
        put(f, "TGG1", 1, 4, out_path);
        put(f, &loss, sizeof loss, 1, out_path);
        put(f, &nt, sizeof nt, 1, out_path);
        put(f, &norm, sizeof norm, 1, out_path);
        put(f, &np, sizeof np, 1, out_path);
        put(f, grads, sizeof *grads, n, out_path);
        if (logits_path) {
            FILE *lf = fopen(logits_path, "wb");
            size_t nl = (size_t)b.B * (size_t)b.T * (size_t)tmodel_config(m)->n_vocab;
            if (!lf)
                die("%s: %s", logits_path, strerror(errno));
            put(lf, tmodel_logits(m), sizeof(float), nl, logits_path);
            if (fclose(lf) != 0)
                die("%s: write failed: %s", logits_path, strerror(errno));
        }
    } else {
        AdamW opt = {0};
        if (adamw_init(&opt, n, &err) != STATUS_OK)
            die("%s", err.msg);
        double *rec = malloc((size_t)steps * 2 * sizeof *rec); /* (loss, norm) per step */
        if (!rec)
            die("out of memory for %ld steps", steps);
        FILE *gf = step_grads_path ? fopen(step_grads_path, "wb") : NULL;
        if (step_grads_path && !gf)
            die("%s: %s", step_grads_path, strerror(errno));
        for (long s = 0; s < steps; s++) {
            tmodel_zero_grads(m);
            check_forward(tmodel_forward(m, b.tokens, b.targets, b.B, b.T, &loss, &n_targets, &err),
                          &err, batch_path);
            tmodel_backward(m, n_targets > 0 ? 1.0f / (float)n_targets : 1.0f);
            double norm = optim_grad_norm(grads, n, tp);
            if (!isfinite(norm))
                die("step %ld: gradient norm %g", s, norm);
            if (gf)
                put(gf, grads, sizeof *grads, n, step_grads_path);
            float sc = optim_clip_scale(norm, clip);
            if (sc != 1.0f)
                optim_scale(grads, n, sc, tp);
            adamw_step(&opt, params, grads, tab, n_t, &ap, tp);
            rec[2 * s] = loss;
            rec[2 * s + 1] = norm;
        }
        uint64_t k = (uint64_t)steps, np = n;
        int64_t nt = n_targets;
        put(f, "TGA1", 1, 4, out_path);
        put(f, &k, sizeof k, 1, out_path);
        put(f, &nt, sizeof nt, 1, out_path);
        put(f, &np, sizeof np, 1, out_path);
        put(f, rec, sizeof *rec, (size_t)steps * 2, out_path);
        put(f, params, sizeof *params, n, out_path);
        if (gf && fclose(gf) != 0)
            die("%s: write failed: %s", step_grads_path, strerror(errno));
        free(rec);
        adamw_free(&opt);
    }
    if (fclose(f) != 0)
        die("%s: write failed: %s", out_path, strerror(errno));
    tmodel_free(m);
    tpool_free(tp);
    free(b.tokens);
    free(b.targets);
    return 0;
}
