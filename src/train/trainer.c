/* trainer.c - the training loop (see trainer.h): steps, schedule,
 * checkpoints, CSV log and the SVG loss curve. */
#include "train/trainer.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fp16.h"
#include "core/perf.h"
#include "train/dist.h"
#include "train/optim.h"

#define TRAIN_SVG_W 720
#define TRAIN_SVG_H 400
#define TRAIN_MAX_CSV_BYTES (1u << 30)

void trainer_defaults(TrainSettings *s) {
    memset(s, 0, sizeof *s);
    snprintf(s->mode, sizeof s->mode, "pretrain");
    snprintf(s->name, sizeof s->name, "cgpt");
    s->batch = 8;
    s->accum = 1;
    s->steps = 1000;
    s->warmup = 100;
    s->lr = 1e-3f;
    s->lr_min = 1e-4f;
    s->weight_decay = 0.1f;
    s->beta1 = 0.9f;
    s->beta2 = 0.95f;
    s->eps = 1e-8f;
    s->clip = 1.0f;
    s->seed = 1;
    s->ckpt_every = 500;
    s->keep = 2;
    s->eval_every = 0;
    s->eval_rows = 32;
    s->inject_nan_step = -1;
}

static Status range(const char *what, double v, double lo, double hi, Err *err) {
    if (!(v >= lo && v <= hi))
        return err_set(err, STATUS_INVALID, "%s %g is outside [%g, %g]", what, v, lo, hi);
    return STATUS_OK;
}

Status trainer_check(const TrainSettings *s, Err *err) {
    if (strcmp(s->mode, "pretrain") && strcmp(s->mode, "sft"))
        return err_set(err, STATUS_INVALID, "mode '%s' is not pretrain or sft", s->mode);
    if (range("batch", s->batch, 1, TRAIN_MAX_BATCH, err) ||
        range("accum", s->accum, 1, TRAIN_MAX_ACCUM, err) ||
        range("steps", (double)s->steps, 1, TRAIN_MAX_STEPS, err) ||
        range("warmup", (double)s->warmup, 0, (double)s->steps, err) ||
        range("lr", s->lr, 0, 10, err) || range("lr-min", s->lr_min, 0, s->lr, err) ||
        range("weight-decay", s->weight_decay, 0, 10, err) ||
        range("beta1", s->beta1, 0, 0.999999, err) || range("beta2", s->beta2, 0, 0.999999, err) ||
        range("eps", s->eps, 1e-30, 1, err) || range("clip", s->clip, 0, 1e9, err) ||
        range("ckpt-every", (double)s->ckpt_every, 0, TRAIN_MAX_STEPS, err) ||
        range("keep", s->keep, 1, 1000, err) ||
        range("eval-every", (double)s->eval_every, 0, TRAIN_MAX_STEPS, err) ||
        range("eval-rows", s->eval_rows, 1, 1 << 20, err))
        return err->status;
    return STATUS_OK;
}

/* ---- settings <-> JSON ---- */

char *trainer_settings_json(const TrainSettings *s, uint64_t data_hash) {
    char hash[32];
    snprintf(hash, sizeof hash, "%016llx", (unsigned long long)data_hash);
    json_t *o = json_pack("{s:s,s:s,s:i,s:i,s:I,s:I,s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:I,s:I,s:i,s:I,s:i,s:s}",
                          "mode", s->mode, "name", s->name, "batch", s->batch, "accum", s->accum,
                          "steps", (json_int_t)s->steps, "warmup", (json_int_t)s->warmup, "lr",
                          (double)s->lr, "lr_min", (double)s->lr_min, "weight_decay",
                          (double)s->weight_decay, "beta1", (double)s->beta1, "beta2",
                          (double)s->beta2, "eps", (double)s->eps, "clip", (double)s->clip,
                          "seed", (json_int_t)s->seed, "ckpt_every", (json_int_t)s->ckpt_every,
                          "keep", s->keep, "eval_every", (json_int_t)s->eval_every, "eval_rows",
                          s->eval_rows, "data_hash", hash);
    if (!o) return NULL;
    char *txt = json_dumps(o, JSON_SORT_KEYS | JSON_COMPACT);
    json_decref(o);
    return txt;
}

Status trainer_settings_parse(const char *txt, TrainSettings *s, uint64_t *data_hash, Err *err) {
    json_error_t je;
    json_t *o = json_loads(txt, 0, &je);
    if (!o) return err_set(err, STATUS_FORMAT, "checkpoint settings: %s", je.text);
    trainer_defaults(s);
    const char *mode = NULL, *name = NULL, *hash = NULL;
    json_int_t steps = 0, warmup = 0, seed = 0, ckpt = 0, evev = 0;
    double lr, lr_min, wd, b1, b2, eps, clip;
    int rc = json_unpack_ex(o, &je, JSON_STRICT,
                            "{s:s,s:s,s:i,s:i,s:I,s:I,s:F,s:F,s:F,s:F,s:F,s:F,s:F,s:I,s:I,s:i,s:I,s:i,s:s}",
                            "mode", &mode, "name", &name, "batch", &s->batch, "accum", &s->accum,
                            "steps", &steps, "warmup", &warmup, "lr", &lr, "lr_min", &lr_min,
                            "weight_decay", &wd, "beta1", &b1, "beta2", &b2, "eps", &eps, "clip",
                            &clip, "seed", &seed, "ckpt_every", &ckpt, "keep", &s->keep,
                            "eval_every", &evev, "eval_rows", &s->eval_rows, "data_hash", &hash);
    Status st = STATUS_OK;
    if (rc) {
        st = err_set(err, STATUS_FORMAT, "checkpoint settings: %s", je.text);
    } else {
        snprintf(s->mode, sizeof s->mode, "%s", mode);
        snprintf(s->name, sizeof s->name, "%s", name);
        s->steps = (long)steps, s->warmup = (long)warmup, s->seed = (uint64_t)seed;
        s->ckpt_every = (long)ckpt, s->eval_every = (long)evev;
        s->lr = (float)lr, s->lr_min = (float)lr_min, s->weight_decay = (float)wd;
        s->beta1 = (float)b1, s->beta2 = (float)b2, s->eps = (float)eps, s->clip = (float)clip;
        *data_hash = strtoull(hash, NULL, 16);
        st = trainer_check(s, err);
        if (st) err_prefix(err, "checkpoint settings");
    }
    json_decref(o);
    return st;
}

/* ---- loading weights from a model file ---- */

static Status key_u32(const GGUF *g, const char *key, int *out, Err *err) {
    uint32_t v = 0;
    if (gguf_get_u32(g, key, true, &v, err)) return err->status;
    if (v > INT32_MAX) return err_set(err, STATUS_LIMIT, "%s = %u is too large", key, v);
    *out = (int)v;
    return STATUS_OK;
}

Status trainer_load_model(const char *path, int max_batch, int n_ctx, TPool *tp, TModel **out,
                          Err *err) {
    *out = NULL;
    GGUF g;
    if (gguf_open(&g, path, err)) return err_prefix(err, "%s", path);
    Status st = STATUS_OK;
    GGUFStr arch;
    TConfig c = {0};
    if (gguf_get_str(&g, "general.architecture", true, &arch, err)) goto done;
    if (!gguf_str_eq(arch, "llama")) {
        st = err_set(err, STATUS_UNSUPPORTED, "architecture '%.*s': training needs 'llama'",
                     (int)arch.len, arch.ptr);
        goto done;
    }
    if (key_u32(&g, "llama.embedding_length", &c.n_embd, err) ||
        key_u32(&g, "llama.block_count", &c.n_layers, err) ||
        key_u32(&g, "llama.attention.head_count", &c.n_heads, err) ||
        key_u32(&g, "llama.feed_forward_length", &c.n_ff, err) ||
        key_u32(&g, "llama.context_length", &c.n_ctx, err))
        goto done;
    c.n_kv_heads = c.n_heads;
    uint32_t u = 0;
    if (gguf_get_u32(&g, "llama.attention.head_count_kv", false, &u, err)) goto done;
    if (u) c.n_kv_heads = (int)u;
    c.head_dim = c.n_heads ? c.n_embd / c.n_heads : 0;
    u = 0;
    if (gguf_get_u32(&g, "llama.attention.key_length", false, &u, err)) goto done;
    if (u) c.head_dim = (int)u;
    c.rope_base = 10000.0f;
    c.norm_eps = 1e-5f;
    if (gguf_get_f32(&g, "llama.rope.freq_base", false, &c.rope_base, err) ||
        gguf_get_f32(&g, "llama.attention.layer_norm_rms_epsilon", false, &c.norm_eps, err))
        goto done;
    const GGUFTensor *emb = gguf_find_tensor(&g, "token_embd.weight");
    if (!emb) {
        st = err_set(err, STATUS_FORMAT, "no tensor 'token_embd.weight'");
        goto done;
    }
    if (gguf_find_tensor(&g, "output.weight")) {
        st = err_set(err, STATUS_UNSUPPORTED,
                     "tensor 'output.weight': the trainer ties the output to token_embd");
        goto done;
    }
    if (gguf_find_tensor(&g, "rope_freqs.weight")) {
        st = err_set(err, STATUS_UNSUPPORTED,
                     "tensor 'rope_freqs.weight' (rope scaling): the trainer has plain RoPE");
        goto done;
    }
    /* the trainer's attention has one head size for keys, values and rope */
    static const char *const SAME_AS_HEAD[] = {"llama.attention.value_length",
                                               "llama.rope.dimension_count"};
    for (int k = 0; k < 2; k++) {
        u = (uint32_t)c.head_dim;
        if (gguf_get_u32(&g, SAME_AS_HEAD[k], false, &u, err)) goto done;
        if (u != (uint32_t)c.head_dim) {
            st = err_set(err, STATUS_UNSUPPORTED, "%s = %u: the trainer needs the head size %d",
                         SAME_AS_HEAD[k], u, c.head_dim);
            goto done;
        }
    }
    c.n_vocab = (int)(emb->ne[1] > INT32_MAX ? INT32_MAX : emb->ne[1]);
    if (n_ctx > 0) c.n_ctx = n_ctx;
    if (tmodel_config_check(&c, err)) goto done;
    TModel *m = NULL;
    if (tmodel_new(&m, &c, max_batch, tp, err)) goto done;
    int n_t = 0;
    const TParam *ts = tmodel_tensors(m, &n_t);
    float *params = tmodel_params(m);
    for (int i = 0; i < n_t && !st; i++) {
        const GGUFTensor *t = gguf_find_tensor(&g, ts[i].name);
        if (!t) {
            st = err_set(err, STATUS_FORMAT, "no tensor '%s'", ts[i].name);
            break;
        }
        if (t->ne[0] != ts[i].cols || (int64_t)(t->n_elements / (uint64_t)t->ne[0]) != ts[i].rows) {
            st = err_set(err, STATUS_FORMAT, "tensor '%s': shape %lld x %lld, expected %lld x %lld",
                         ts[i].name, (long long)t->ne[0], (long long)(t->n_elements / t->ne[0]),
                         (long long)ts[i].cols, (long long)ts[i].rows);
            break;
        }
        float *dst = params + ts[i].offset;
        if (t->type == DTYPE_F32) {
            memcpy(dst, t->data, t->n_elements * sizeof(float));
        } else if (t->type == DTYPE_F16) {
            const uint16_t *h = t->data;
            for (uint64_t k = 0; k < t->n_elements; k++) dst[k] = fp16_to_f32(h[k]);
        } else {
            st = err_set(err, STATUS_UNSUPPORTED, "tensor '%s': type %s, training reads F32 or F16",
                         ts[i].name, dtype_info(t->type) ? dtype_info(t->type)->name : "unknown");
        }
    }
    if (!st && g.n_tensors != (uint64_t)n_t)
        st = err_set(err, STATUS_UNSUPPORTED, "%llu tensors, the trainable model has %d",
                     (unsigned long long)g.n_tensors, n_t);
    if (st) tmodel_free(m);
    else *out = m;
done:
    if (!st) st = err->status == STATUS_OK ? STATUS_OK : err->status;
    gguf_close(&g);
    if (st) err_prefix(err, "%s", path);
    return st;
}

/* ---- CSV log and SVG curve ---- */

typedef struct {
    long *step;
    double *loss, *val;
    long n, cap;
} Curve;

static void curve_add(Curve *c, long step, double loss, double val) {
    if (c->n == c->cap) {
        long cap = c->cap ? 2 * c->cap : 1024;
        long *s = realloc(c->step, (size_t)cap * sizeof *s);
        if (s) c->step = s;
        double *l = realloc(c->loss, (size_t)cap * sizeof *l);
        if (l) c->loss = l;
        double *v = realloc(c->val, (size_t)cap * sizeof *v);
        if (v) c->val = v;
        if (!s || !l || !v) return; /* the curve is a convenience: skip on OOM */
        c->cap = cap;
    }
    c->step[c->n] = step, c->loss[c->n] = loss, c->val[c->n] = val;
    c->n++;
}

static void curve_free(Curve *c) {
    free(c->step), free(c->loss), free(c->val);
    memset(c, 0, sizeof *c);
}

/* Keep the lines of an existing log up to 'upto' steps (a resume), load
 * them into the curve, and open the log for appending. */
static FILE *csv_open(const char *dir, long upto, Curve *c, Err *err) {
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/train.csv", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *out = fopen(tmp, "w");
    if (!out) {
        err_set(err, STATUS_IO, "%s: cannot write: %s", tmp, strerror(errno));
        return NULL;
    }
    fputs("step,tokens,loss,val_loss,lr,grad_norm,tokens_per_s,mfu,elapsed_s\n", out);
    FILE *in = upto > 0 ? fopen(path, "r") : NULL;
    if (in) {
        char line[1024];
        while (fgets(line, sizeof line, in)) {
            char *end;
            long step = strtol(line, &end, 10);
            if (end == line || *end != ',' || step < 1 || step > upto) continue;
            fputs(line, out);
            double loss = NAN, val = NAN;
            unsigned long long tok;
            char vbuf[64] = "";
            if (sscanf(end, ",%llu,%lf,%63[^,]", &tok, &loss, vbuf) >= 2) {
                val = vbuf[0] ? strtod(vbuf, NULL) : NAN;
                curve_add(c, step, loss, val);
            }
        }
        fclose(in);
    }
    if (fflush(out) || fsync(fileno(out)) || rename(tmp, path)) {
        err_set(err, STATUS_IO, "%s: cannot write: %s", path, strerror(errno));
        fclose(out);
        return NULL;
    }
    return out;
}

static void svg_write(const char *dir, const Curve *c, const char *title) {
    if (c->n < 1) return;
    double lo = INFINITY, hi = -INFINITY;
    for (long i = 0; i < c->n; i++) {
        double v[2] = {c->loss[i], c->val[i]};
        for (int k = 0; k < 2; k++)
            if (isfinite(v[k])) lo = fmin(lo, v[k]), hi = fmax(hi, v[k]);
    }
    if (!isfinite(lo)) return;
    if (hi - lo < 1e-6) hi = lo + 1;
    long s0 = c->step[0], s1 = c->step[c->n - 1];
    if (s1 == s0) s1 = s0 + 1;
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/loss.svg", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) return;
    const double L = 60, R = 20, Tm = 30, Bm = 40;
    double w = TRAIN_SVG_W - L - R, h = TRAIN_SVG_H - Tm - Bm;
    fprintf(f,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
            "font-family=\"sans-serif\" font-size=\"12\">\n"
            "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
            "<text x=\"%g\" y=\"18\">%s: loss (nats/token) by step</text>\n",
            TRAIN_SVG_W, TRAIN_SVG_H, L, title);
    for (int k = 0; k <= 4; k++) {
        double y = Tm + h * k / 4, v = hi - (hi - lo) * k / 4;
        fprintf(f,
                "<line x1=\"%g\" y1=\"%g\" x2=\"%g\" y2=\"%g\" stroke=\"#ddd\"/>"
                "<text x=\"%g\" y=\"%g\" text-anchor=\"end\">%.2f</text>\n",
                L, y, L + w, y, L - 4, y + 4, v);
        double x = L + w * k / 4;
        fprintf(f, "<text x=\"%g\" y=\"%g\" text-anchor=\"middle\">%ld</text>\n", x,
                Tm + h + 16, s0 + (long)((double)(s1 - s0) * k / 4));
    }
    const char *colour[2] = {"#1f77b4", "#d62728"};
    for (int k = 0; k < 2; k++) {
        fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" points=\"", colour[k]);
        long every = c->n > 2000 ? c->n / 2000 : 1;
        for (long i = 0; i < c->n; i++) {
            double v = k ? c->val[i] : c->loss[i];
            if (!isfinite(v) || (k == 0 && i % every && i != c->n - 1)) continue;
            fprintf(f, "%.1f,%.1f ", L + w * (double)(c->step[i] - s0) / (double)(s1 - s0),
                    Tm + h * (hi - v) / (hi - lo));
        }
        fputs("\"/>\n", f);
    }
    fprintf(f,
            "<text x=\"%g\" y=\"%g\" fill=\"%s\">train</text>"
            "<text x=\"%g\" y=\"%g\" fill=\"%s\">held-out</text>\n</svg>\n",
            L + w - 110, Tm + 14, colour[0], L + w - 60, Tm + 14, colour[1]);
    bool ok = !fflush(f) && !fsync(fileno(f));
    fclose(f);
    if (ok) rename(tmp, path);
    else unlink(tmp);
}

/* ---- the loop ---- */

static Status held_out_loss(const TrainRun *r, int32_t *tok, int32_t *tgt, double *out, Err *err) {
    const TrainSettings *s = r->s;
    int T = tmodel_config(r->m)->n_ctx;
    double sum = 0;
    long count = 0;
    long n_rows = tdata_n_rows(r->val);
    int rows = s->eval_rows < n_rows ? s->eval_rows : (int)n_rows;
    for (int done = 0; done < rows; done += s->batch) {
        int b = rows - done < s->batch ? rows - done : s->batch;
        for (int i = 0; i < b; i++)
            tdata_row(r->val, (uint64_t)(done + i), s->seed, tok + (size_t)i * T, tgt + (size_t)i * T);
        double ls = 0;
        long n = 0;
        if (tmodel_forward(r->m, tok, tgt, b, T, &ls, &n, err)) return err->status;
        sum += ls, count += n;
    }
    *out = count ? sum / (double)count : NAN;
    return STATUS_OK;
}

Status trainer_run(const TrainRun *r, bool *stopped, Err *err) {
    const TrainSettings *s = r->s;
    TModel *m = r->m;
    const TConfig *cfg = tmodel_config(m);
    const int B = s->batch, T = cfg->n_ctx, W = dist_size(), rank = dist_rank();
    size_t n = tmodel_n_params(m);
    int n_t = 0;
    const TParam *tensors = tmodel_tensors(m, &n_t);
    float *params = tmodel_params(m), *grads = tmodel_grads(m);
    *stopped = false;

    AdamW opt = {0};
    if (adamw_init(&opt, n, err)) return err->status;
    long step = 0;
    uint64_t tokens_seen = 0;
    if (r->resume) {
        if (r->resume->n_params != n)
            return err_set(err, STATUS_INVALID, "checkpoint has %zu parameters, the model %zu",
                           r->resume->n_params, n);
        memcpy(params, r->resume->params, n * sizeof(float));
        memcpy(opt.m, r->resume->m, n * sizeof(float));
        memcpy(opt.v, r->resume->v, n * sizeof(float));
        opt.t = r->resume->adam_t;
        step = (long)r->resume->step;
        tokens_seen = r->resume->tokens_seen;
    }
    int32_t *tok = malloc((size_t)B * T * sizeof *tok), *tgt = malloc((size_t)B * T * sizeof *tgt);
    char *settings = trainer_settings_json(s, tdata_hash(r->data));
    Curve curve = {0};
    FILE *csv = NULL;
    Status st = STATUS_OK;
    if (!tok || !tgt || !settings) st = err_set(err, STATUS_NOMEM, "out of memory");
    if (!st && rank == 0) {
        if (mkdir(r->out_dir, 0755) && errno != EEXIST)
            st = err_set(err, STATUS_IO, "%s: cannot create: %s", r->out_dir, strerror(errno));
        else if (!(csv = csv_open(r->out_dir, step, &curve, err)))
            st = err->status;
    }

    CkptState cs = {.cfg = *cfg, .n_params = n, .params = params, .m = opt.m, .v = opt.v,
                    .settings_json = settings};
    double t0 = perf_now(), val_loss = NAN;
    long first_step = step;
    uint64_t tokens_run = 0;
    while (!st && step < s->steps) {
        /* accumulate over micro-batches, then over ranks */
        tmodel_zero_grads(m);
        double stats[2] = {0, 0}; /* loss sum, counted targets */
        for (int a = 0; a < s->accum && !st; a++) {
            uint64_t g0 = (((uint64_t)step * (uint64_t)s->accum + (uint64_t)a) * (uint64_t)W +
                           (uint64_t)rank) * (uint64_t)B;
            for (int b = 0; b < B; b++)
                tdata_row(r->data, g0 + (uint64_t)b, s->seed, tok + (size_t)b * T, tgt + (size_t)b * T);
            double ls = 0;
            long cnt = 0;
            st = tmodel_forward(m, tok, tgt, B, T, &ls, &cnt, err);
            if (st) break;
            tmodel_backward(m, 1.0f);
            stats[0] += ls, stats[1] += (double)cnt;
        }
        if (st) break;
        if (s->inject_nan_step == step) grads[n / 2] = NAN;
        if ((st = dist_allreduce_sum_f32(grads, n, err)) || (st = dist_allreduce_sum_f64(stats, 2, err)))
            break;
        double loss = stats[1] > 0 ? stats[0] / stats[1] : 0;
        if (stats[1] > 0) optim_scale(grads, n, (float)(1.0 / stats[1]), r->tp);
        double norm = optim_grad_norm(grads, n, r->tp);
        if (!isfinite(loss) || !isfinite(norm)) {
            st = err_set(err, STATUS_INVALID,
                         "step %ld: non-finite %s (loss %g, gradient norm %g); stopped before the "
                         "update, the last checkpoint in %s is the last good one",
                         step + 1, isfinite(loss) ? "gradient" : "loss", loss, norm, r->out_dir);
            break;
        }
        float clip = optim_clip_scale(norm, s->clip);
        if (clip != 1.0f) optim_scale(grads, n, clip, r->tp);
        float lr = optim_lr(step, s->warmup, s->steps, s->lr, s->lr_min);
        AdamWParams ap = {.lr = lr, .beta1 = s->beta1, .beta2 = s->beta2, .eps = s->eps,
                          .weight_decay = s->weight_decay};
        adamw_step(&opt, params, grads, tensors, n_t, &ap, r->tp);
        step++;
        uint64_t step_tokens = (uint64_t)s->accum * (uint64_t)W * (uint64_t)B * (uint64_t)T;
        tokens_seen += step_tokens;
        tokens_run += step_tokens;

        bool evaluated = r->val && s->eval_every > 0 && (step % s->eval_every == 0 || step == s->steps);
        if (evaluated && (st = held_out_loss(r, tok, tgt, &val_loss, err)))
            break;

        bool want_stop = r->stop && *r->stop;
        if (W > 1) { /* every rank stops at the same step */
            double f = want_stop;
            if ((st = dist_allreduce_sum_f64(&f, 1, err))) break;
            want_stop = f > 0;
        }
        bool ckpt = want_stop || step == s->steps || (s->ckpt_every && step % s->ckpt_every == 0);
        double el = perf_now() - t0;
        TrainProgress p = {.step = step, .steps = s->steps, .tokens = tokens_seen, .loss = loss,
                           .val_loss = val_loss, .lr = lr, .grad_norm = norm, .elapsed_s = el};
        p.tokens_per_s = el > 0 ? (double)tokens_run / el : 0;
        p.mfu = r->fma_peak > 0 ? 6.0 * (double)n * p.tokens_per_s / (r->fma_peak * W) : 0;
        p.eta_s = step > first_step ? el / (double)(step - first_step) * (double)(s->steps - step) : 0;
        if (rank == 0) {
            fprintf(csv, "%ld,%llu,%.9g,", step, (unsigned long long)tokens_seen, loss);
            if (evaluated)
                fprintf(csv, "%.9g", val_loss);
            fprintf(csv, ",%.6g,%.4f,%.1f,%.4f,%.1f\n", lr, norm, p.tokens_per_s, p.mfu, el);
            fflush(csv); /* a person (or a test) follows the log while it grows */
            curve_add(&curve, step, loss, evaluated ? val_loss : NAN);
            if (ckpt) {
                cs.step = (uint64_t)step;
                cs.tokens_seen = tokens_seen;
                cs.adam_t = opt.t;
                st = ckpt_dir_save(r->out_dir, &cs, tensors, n_t, r->tok, s->name, s->keep, err);
                svg_write(r->out_dir, &curve, s->mode);
                p.checkpointed = !st;
            }
            if (r->on_step) r->on_step(r->ctx, &p);
        }
        if (W > 1) { /* a failed checkpoint on rank 0 stops every rank */
            double f = st != STATUS_OK;
            Err e2 = {0};
            if (dist_allreduce_sum_f64(&f, 1, &e2) == STATUS_OK && f > 0 && !st)
                st = err_set(err, STATUS_IO, "rank 0 failed to write a checkpoint");
        }
        if (!st && want_stop && step < s->steps) {
            *stopped = true;
            break;
        }
    }
    if (csv) fclose(csv);
    curve_free(&curve);
    free(settings);
    free(tok);
    free(tgt);
    adamw_free(&opt);
    return st;
}
