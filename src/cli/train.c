/* train.c - `cgpt train pretrain|sft ...` (and `cgpt train tokenizer`,
 * which train_tokenizer.c implements).
 *
 *   cgpt train pretrain --tokenizer TOK.gguf -i TEXT.jsonl [-i ...] -o DIR [shape] [schedule]
 *   cgpt train sft --init MODEL.gguf -i CHAT.jsonl [-i ...] -o DIR [schedule]
 *   either with --resume: continue from DIR's latest checkpoint with its stored
 *   settings (give the same -i files; --steps may extend the run)
 *
 * Under `mpirun -np N` every rank runs this command; rank 0 prints and
 * writes. SIGINT/SIGTERM finish the current step, write a checkpoint and
 * exit 0; a second signal kills at once. */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/common.h"
#include "core/perf.h"
#include "train/ckpt.h"
#include "train/dist.h"
#include "train/tdata.h"
#include "train/tmodel.h"
#include "train/trainer.h"

#define TRAIN_MAX_INPUTS 64

enum {
    O_DATA = 1,
    O_VAL,
    O_OUT,
    O_TOKENIZER,
    O_INIT,
    O_RESUME,
    O_NAME,
    O_STEPS,
    O_EMBD,
    O_LAYERS,
    O_HEADS,
    O_KV_HEADS,
    O_HEAD_DIM,
    O_FF,
    O_CTX,
    O_ROPE_BASE,
    O_INIT_SEED,
    O_BATCH,
    O_ACCUM,
    O_WARMUP,
    O_LR,
    O_LR_MIN,
    O_WD,
    O_BETA1,
    O_BETA2,
    O_CLIP,
    O_SEED,
    O_CKPT_EVERY,
    O_KEEP,
    O_EVAL_EVERY,
    O_EVAL_ROWS,
    O_THREADS
};

/* The options pretrain and sft share: data, output, schedule, optimiser. */
#define TRAIN_COMMON_OPTS                                                                          \
    {O_DATA, "-i|--data", "FILE", "training data, JSON lines (repeatable)"},                       \
        {O_VAL, "--val", "FILE", "held-out data of the same kind, for the held-out loss"},         \
        {O_OUT, "-o|--out", "DIR",                                                                 \
         "checkpoints (ckpt-STEP.gguf + .opt, latest), train.csv, loss.svg"},                      \
        {O_RESUME, "--resume", NULL, "continue from DIR's latest checkpoint (stored settings)"},   \
        {O_NAME, "--name", "NAME", "general.name of the written models (default cgpt)"},           \
        {O_STEPS, "--steps", "N", "optimiser steps (default 1000; may extend a --resume)"},        \
        {O_BATCH, "--batch", "N", "rows per micro-batch per rank (default 8)"},                    \
        {O_ACCUM, "--accum", "N", "micro-batches per step (default 1)"},                           \
        {O_WARMUP, "--warmup", "N", "linear warm-up steps (default 100; sft 20)"},                 \
        {O_LR, "--lr", "F", "peak learning rate (default 1e-3; sft 3e-4)"},                        \
        {O_LR_MIN, "--lr-min", "F", "cosine floor (default 1e-4; sft 3e-5)"},                      \
        {O_WD, "--wd", "F", "AdamW weight decay (default 0.1; sft 0)"},                            \
        {O_BETA1, "--beta1", "F", "AdamW beta1 (default 0.9)"},                                    \
        {O_BETA2, "--beta2", "F", "AdamW beta2 (default 0.95)"},                                   \
        {O_CLIP, "--clip", "F", "gradient norm clip (default 1.0)"},                               \
        {O_SEED, "--seed", "N", "data order seed (default 1)"},                                    \
        {O_CKPT_EVERY, "--ckpt-every", "N", "steps between checkpoints (default 500)"},            \
        {O_KEEP, "--keep", "N", "checkpoints kept (default 2)"},                                   \
        {O_EVAL_EVERY, "--eval-every", "N",                                                        \
         "steps between held-out losses, 0 = at the end (default 0)"},                             \
        {O_EVAL_ROWS, "--eval-rows", "N", "held-out rows per evaluation (default 32)"}, {          \
        O_THREADS, "-t|--threads", "N", "compute threads (default: all CPUs / local ranks)"        \
    }

static const ArgOpt PRETRAIN_OPTS[] = {
    {O_TOKENIZER, "--tokenizer", "TOK.gguf", "the tokenizer (made by cgpt train tokenizer)"},
    TRAIN_COMMON_OPTS,
    {O_EMBD, "--embd", "N", "model width (default 256)"},
    {O_LAYERS, "--layers", "N", "layers (default 6)"},
    {O_HEADS, "--heads", "N", "query heads (default 8)"},
    {O_KV_HEADS, "--kv-heads", "N", "key/value heads (default 4)"},
    {O_HEAD_DIM, "--head-dim", "N", "head size (default 32)"},
    {O_FF, "--ff", "N", "FFN width (default 688)"},
    {O_CTX, "--ctx", "N", "context length (default 256)"},
    {O_ROPE_BASE, "--rope-base", "F", "RoPE frequency base (default 10000)"},
    {O_INIT_SEED, "--init-seed", "N", "weight initialisation seed (default 1)"},
    {0},
};

static const ArgOpt SFT_OPTS[] = {
    {O_INIT, "--init", "MODEL.gguf", "the pretrained checkpoint to start from (its shape is kept)"},
    TRAIN_COMMON_OPTS,
    {0},
};

static volatile sig_atomic_t g_stop;

static void on_signal(int sig) {
    g_stop = 1;
    signal(sig, SIG_DFL); /* a second signal ends the process */
}

static void fmt_time(double s, char *buf, size_t cap) {
    if (!isfinite(s) || s < 0) s = 0;
    long t = (long)s;
    if (t >= 3600) snprintf(buf, cap, "%ldh%02ldm", t / 3600, t / 60 % 60);
    else if (t >= 60) snprintf(buf, cap, "%ldm%02lds", t / 60, t % 60);
    else snprintf(buf, cap, "%lds", t);
}

typedef struct {
    bool tty;
    long every;   /* print a full line every 'every' steps when not a terminal */
    long slow_ms; /* CGPT_TRAIN_SLOW_MS: tests slow a tiny run down to signal it */
} Progress;

static void on_step(void *vctx, const TrainProgress *p) {
    Progress *pr = vctx;
    if (pr->slow_ms > 0) usleep((useconds_t)pr->slow_ms * 1000);
    char el[32], eta[32], val[32] = "";
    fmt_time(p->elapsed_s, el, sizeof el);
    fmt_time(p->eta_s, eta, sizeof eta);
    if (isfinite(p->val_loss)) snprintf(val, sizeof val, " | val %.4f", p->val_loss);
    bool last = p->step == p->steps;
    if (!pr->tty && !(p->step % pr->every == 0 || last || p->checkpointed || p->step == 1)) return;
    fprintf(stderr, "%sstep %ld/%ld | loss %.4f%s | lr %.2e | %.0f tok/s | MFU %.2f | %s | ETA %s%s%s",
            pr->tty ? "\r\033[K" : "", p->step, p->steps, p->loss, val, p->lr, p->tokens_per_s,
            p->mfu, el, eta, p->checkpointed ? " | saved" : "", pr->tty ? "" : "\n");
    if (pr->tty && (p->checkpointed || last)) fputc('\n', stderr);
}

/* pretrain and sft: argv[0] is the mode. */
static int train_main(const CliCommand *cmdd, int argc, char **argv) {
    bool sft = cmdd == &CLI_TRAIN_SFT;
    const char *cmd = cmdd->name, *mode = sft ? "sft" : "pretrain";
    Err err = {0};
    TrainSettings s;
    trainer_defaults(&s);
    snprintf(s.mode, sizeof s.mode, "%s", mode);
    if (sft) s.lr = 3e-4f, s.lr_min = 3e-5f, s.warmup = 20, s.weight_decay = 0.0f;
    TConfig c = {.n_embd = 256, .n_layers = 6, .n_heads = 8, .n_kv_heads = 4, .head_dim = 32,
                 .n_ff = 688, .n_ctx = 256, .rope_base = 10000.0f, .norm_eps = 1e-5f};
    const char *inputs[TRAIN_MAX_INPUTS], *val = NULL, *out = NULL, *tok_path = NULL, *init = NULL;
    int n_inputs = 0;
    bool resume = false, steps_given = false;
    long threads = 0, init_seed = 1;
    const char *v;
    Args a = args_start(argc, argv, 1);
    for (int id; (id = cli_next(&a, cmdd, &v, &err)) != ARG_END;) {
        Status st = STATUS_OK;
        long iv = 0;
        double dv = 0;
        const char *o = a.opt;
#define INT_OPT(ID, lo, hi, dst)                                                                   \
    case ID:                                                                                       \
        if (!(st = args_int(o, v, lo, hi, &iv, &err)))                                             \
            dst = iv;                                                                              \
        break;
#define FLT_OPT(ID, lo, hi, dst)                                                                   \
    case ID:                                                                                       \
        if (!(st = args_float(o, v, lo, hi, &dv, &err)))                                           \
            dst = (float)dv;                                                                       \
        break;
        switch (id) {
        case ARG_ERROR: return cli_fail(cmd, &err);
        case ARG_HELP: cli_help(cmdd); return 0;
        case ARG_POSITIONAL:
            st = err_set(&err, STATUS_INVALID, "unexpected argument '%s'", v);
            break;
        case O_DATA:
            if (n_inputs == TRAIN_MAX_INPUTS)
                st = err_set(&err, STATUS_LIMIT, "more than %d -i files", TRAIN_MAX_INPUTS);
            else
                inputs[n_inputs++] = v;
            break;
        case O_VAL: val = v; break;
        case O_OUT: out = v; break;
        case O_TOKENIZER: tok_path = v; break;
        case O_INIT: init = v; break;
        case O_RESUME: resume = true; break;
        case O_NAME: snprintf(s.name, sizeof s.name, "%s", v); break;
        case O_STEPS:
            if (!(st = args_int(o, v, 1, TRAIN_MAX_STEPS, &iv, &err)))
                s.steps = iv, steps_given = true;
            break;
            INT_OPT(O_EMBD, 1, TMODEL_MAX_EMBD, c.n_embd)
            INT_OPT(O_LAYERS, 1, TMODEL_MAX_LAYERS, c.n_layers)
            INT_OPT(O_HEADS, 1, TMODEL_MAX_HEADS, c.n_heads)
            INT_OPT(O_KV_HEADS, 1, TMODEL_MAX_HEADS, c.n_kv_heads)
            INT_OPT(O_HEAD_DIM, 2, 1024, c.head_dim)
            INT_OPT(O_FF, 1, TMODEL_MAX_FF, c.n_ff)
            INT_OPT(O_CTX, 2, TMODEL_MAX_CTX, c.n_ctx)
            FLT_OPT(O_ROPE_BASE, 1, 1e9, c.rope_base)
            INT_OPT(O_INIT_SEED, 0, INT32_MAX, init_seed)
            INT_OPT(O_BATCH, 1, TRAIN_MAX_BATCH, s.batch)
            INT_OPT(O_ACCUM, 1, TRAIN_MAX_ACCUM, s.accum)
            INT_OPT(O_WARMUP, 0, TRAIN_MAX_STEPS, s.warmup)
            FLT_OPT(O_LR, 0, 10, s.lr)
            FLT_OPT(O_LR_MIN, 0, 10, s.lr_min)
            FLT_OPT(O_WD, 0, 10, s.weight_decay)
            FLT_OPT(O_BETA1, 0, 0.999999, s.beta1)
            FLT_OPT(O_BETA2, 0, 0.999999, s.beta2)
            FLT_OPT(O_CLIP, 0, 1e9, s.clip)
            INT_OPT(O_SEED, 0, INT32_MAX, s.seed)
            INT_OPT(O_CKPT_EVERY, 0, TRAIN_MAX_STEPS, s.ckpt_every)
            INT_OPT(O_KEEP, 1, 1000, s.keep)
            INT_OPT(O_EVAL_EVERY, 0, TRAIN_MAX_STEPS, s.eval_every)
            INT_OPT(O_EVAL_ROWS, 1, 1 << 20, s.eval_rows)
            INT_OPT(O_THREADS, 0, TPOOL_MAX_THREADS, threads)
        }
#undef INT_OPT
#undef FLT_OPT
        if (st) return cli_fail(cmd, &err);
    }
    if (!out || !n_inputs) {
        err_set(&err, STATUS_INVALID, "give -i DATA.jsonl and -o DIR");
        return cli_fail(cmd, &err);
    }
    if (!resume && !sft && !tok_path) {
        err_set(&err, STATUS_INVALID, "give --tokenizer TOK.gguf (made by cgpt train tokenizer)");
        return cli_fail(cmd, &err);
    }
    if (!resume && sft && !init) {
        err_set(&err, STATUS_INVALID, "give --init MODEL.gguf (a pretrained checkpoint)");
        return cli_fail(cmd, &err);
    }
    if (s.lr_min > s.lr) s.lr_min = s.lr;
    if (s.warmup > s.steps) s.warmup = s.steps;
    if (trainer_check(&s, &err)) return cli_fail(cmd, &err);
    if (dist_init(&err)) return cli_fail(cmd, &err);
    int rank = dist_rank(), world = dist_size();
    if (threads == 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        const char *local = getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
        long per = local ? atol(local) : 1;
        threads = cpus / (per > 0 ? per : 1);
        if (threads < 1) threads = 1;
    }

    int rc = 1;
    TPool *tp = tpool_new((int)threads);
    GGUF tokg = {0};
    bool tok_open = false;
    Tokenizer *tok = NULL;
    ChatFormat *fmt = NULL;
    TModel *m = NULL;
    TData *data = NULL, *vdata = NULL;
    CkptState cs = {0};
    bool have_cs = false;
    uint64_t stored_hash = 0; /* the data hash a resumed checkpoint was trained on */
    char opt_path[4096], gguf_path[4200];
    if (!tp) {
        err_set(&err, STATUS_NOMEM, "cannot start %ld threads", threads);
        goto done;
    }
    /* Where the weights, the settings and the tokenizer come from. */
    const char *model_src = NULL;
    if (resume) {
        TrainSettings stored;
        if (ckpt_dir_latest(out, opt_path, sizeof opt_path, &err) ||
            ckpt_state_load(opt_path, &cs, &err))
            goto done;
        have_cs = true;
        if (trainer_settings_parse(cs.settings_json ? cs.settings_json : "", &stored, &stored_hash,
                                   &err))
            goto done;
        if (strcmp(stored.mode, mode)) {
            err_set(&err, STATUS_INVALID, "%s is a %s checkpoint, not %s", opt_path, stored.mode, mode);
            goto done;
        }
        if (steps_given) stored.steps = s.steps;
        stored.inject_nan_step = s.inject_nan_step;
        s = stored;
        if (s.warmup > s.steps || (long)cs.step > s.steps) {
            err_set(&err, STATUS_INVALID, "--steps %ld is before the checkpoint's step %llu", s.steps,
                    (unsigned long long)cs.step);
            goto done;
        }
        c = cs.cfg;
        size_t L = strlen(opt_path);
        snprintf(gguf_path, sizeof gguf_path, "%.*s.gguf", (int)(L > 4 ? L - 4 : L), opt_path);
        tok_path = gguf_path;
    } else if (sft) {
        tok_path = init;
        model_src = init;
    }
    const char *inj = getenv("CGPT_TRAIN_INJECT_NAN_STEP"); /* fault injection for tests */
    if (inj) s.inject_nan_step = atol(inj);
    if (gguf_open(&tokg, tok_path, &err)) {
        err_prefix(&err, "%s", tok_path);
        goto done;
    }
    tok_open = true;
    if (tok_load(&tok, &tokg, &err)) {
        err_prefix(&err, "%s", tok_path);
        goto done;
    }
    if (sft && !(fmt = chat_format_new(&tokg, tok, NULL, 0, &err))) goto done;
    if (model_src) {
        if (trainer_load_model(model_src, s.batch, 0, tp, &m, &err)) goto done;
        c = *tmodel_config(m);
    } else {
        c.n_vocab = tok_n_vocab(tok);
        if (tmodel_config_check(&c, &err) || tmodel_new(&m, &c, s.batch, tp, &err)) goto done;
        if (!resume) tmodel_init(m, (uint64_t)init_seed);
    }
    if (c.n_vocab != tok_n_vocab(tok)) {
        err_set(&err, STATUS_INVALID, "model vocabulary %d != tokenizer vocabulary %d", c.n_vocab,
                tok_n_vocab(tok));
        goto done;
    }
    if (rank == 0)
        fprintf(stderr, "cgpt train %s: %zu parameters (embd %d, layers %d, heads %d/%d x %d, ff %d, "
                        "vocab %d, ctx %d), %d rank(s) x %ld thread(s)\n",
                mode, tmodel_n_params(m), c.n_embd, c.n_layers, c.n_heads, c.n_kv_heads, c.head_dim,
                c.n_ff, c.n_vocab, c.n_ctx, world, threads);
    double t0 = perf_now();
    Status st = sft ? tdata_load_chat(&data, inputs, n_inputs, fmt, tok, c.n_ctx, s.seed, &err)
                    : tdata_load_text(&data, inputs, n_inputs, tok, c.n_ctx, &err);
    if (st) goto done;
    if (val) {
        const char *vp[1] = {val};
        st = sft ? tdata_load_chat(&vdata, vp, 1, fmt, tok, c.n_ctx, s.seed, &err)
                 : tdata_load_text(&vdata, vp, 1, tok, c.n_ctx, &err);
        if (st) goto done;
    }
    uint64_t hash = tdata_hash(data);
    if (have_cs) {
        if (stored_hash != hash) {
            err_set(&err, STATUS_INVALID,
                    "the -i data differ from the data the checkpoint was trained on (hash %016llx, "
                    "checkpoint %016llx): give the same files",
                    (unsigned long long)hash, (unsigned long long)stored_hash);
            goto done;
        }
    }
    bool same = true;
    if (dist_all_equal_u64(hash, &same, &err)) goto done;
    if (!same) {
        err_set(&err, STATUS_INVALID, "ranks loaded different data");
        goto done;
    }
    if (rank == 0) {
        fprintf(stderr, "data: %llu tokens in %ld rows of %d (%llu targets%s) in %.1fs; %ld steps x %d "
                        "rows = %.1f epochs\n",
                (unsigned long long)tdata_n_tokens(data), tdata_n_rows(data), c.n_ctx,
                (unsigned long long)tdata_n_targets(data), sft ? ", assistant tokens only" : "",
                perf_now() - t0, s.steps, s.batch * s.accum * world,
                (double)s.steps * s.batch * s.accum * world / (double)tdata_n_rows(data));
        if (tdata_n_truncated(data))
            fprintf(stderr, "data: %ld conversations longer than %d tokens were cut\n",
                    tdata_n_truncated(data), c.n_ctx);
        if (resume) fprintf(stderr, "resuming from %s at step %llu\n", opt_path, (unsigned long long)cs.step);
    }
    double peak = perf_fma_peak(tp) * 1e9; /* FLOP/s */
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    const char *slow = getenv("CGPT_TRAIN_SLOW_MS");
    Progress pr = {.tty = isatty(2), .every = s.steps >= 100 ? s.steps / 100 : 1,
                   .slow_ms = slow ? atol(slow) : 0};
    TrainRun run = {.s = &s, .m = m, .data = data, .val = vdata, .tok = &tokg, .out_dir = out,
                    .resume = have_cs ? &cs : NULL, .tp = tp, .fma_peak = peak,
                    .on_step = on_step, .ctx = &pr, .stop = &g_stop};
    bool stopped = false;
    if (trainer_run(&run, &stopped, &err)) goto done;
    if (rank == 0)
        fprintf(stderr, "%s: checkpoint in %s (see %s/latest)\n",
                stopped ? "stopped by a signal" : "done", out, out);
    rc = 0;
done:
    if (rc) {
        if (dist_size() > 1) fprintf(stderr, "[rank %d] ", dist_rank());
        cli_fail(cmd, &err);
    }
    tdata_free(data);
    tdata_free(vdata);
    tmodel_free(m);
    chat_format_free(fmt);
    tok_free(tok);
    if (tok_open) gguf_close(&tokg);
    if (have_cs) ckpt_state_free(&cs);
    tpool_free(tp);
    if (rc && dist_size() > 1) dist_abort(1);
    dist_finalize();
    return rc;
}

static int pretrain_main(int argc, char **argv) {
    return train_main(&CLI_TRAIN_PRETRAIN, argc, argv);
}
static int sft_main(int argc, char **argv) { return train_main(&CLI_TRAIN_SFT, argc, argv); }

static const CliCommand *const TRAIN_SUBS[] = {&CLI_TRAIN_TOKENIZER, &CLI_TRAIN_PRETRAIN,
                                               &CLI_TRAIN_SFT};

static int cmd_train(int argc, char **argv) {
    return cli_dispatch(&CLI_TRAIN, TRAIN_SUBS, 3, argc, argv);
}

#define TRAIN_NOTES                                                                                \
    "Under mpirun -np N every rank runs the command (data parallel; rank 0 prints and\n"           \
    "writes). SIGINT/SIGTERM finish the step, write a checkpoint and exit 0. docs/TRAINING.md.\n"

const CliCommand CLI_TRAIN_PRETRAIN = {
    .name = "train pretrain",
    .synopsis = "--tokenizer TOK.gguf -i TEXT.jsonl [-i ...] -o DIR [options]",
    .summary = "pretrain a llama-shaped GPT on {\"text\"} lines",
    .opts = PRETRAIN_OPTS,
    .notes = TRAIN_NOTES,
    .main = pretrain_main,
};

const CliCommand CLI_TRAIN_SFT = {
    .name = "train sft",
    .synopsis = "--init MODEL.gguf -i CHAT.jsonl [-i ...] -o DIR [options]",
    .summary = "chat-tune a model on {\"messages\"} lines (loss on the assistant's tokens)",
    .opts = SFT_OPTS,
    .notes = TRAIN_NOTES,
    .main = sft_main,
};

const CliCommand CLI_TRAIN = {
    .name = "train",
    .synopsis = "tokenizer|pretrain|sft ...",
    .summary = "train a tokenizer, pretrain or chat-tune a GPT (docs/TRAINING.md)",
    .main = cmd_train,
};
