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

static const char TRAIN_USAGE[] =
    "usage: cgpt train tokenizer|pretrain|sft [options]\n"
    "\n"
    "  cgpt train tokenizer -i TEXT.jsonl -o TOK.gguf [--vocab 8192]   (cgpt train tokenizer --help)\n"
    "  cgpt train pretrain --tokenizer TOK.gguf -i TEXT.jsonl [-i ...] -o DIR [options]\n"
    "  cgpt train sft --init MODEL.gguf -i CHAT.jsonl [-i ...] -o DIR [options]\n"
    "\n"
    "data and output:\n"
    "  -i, --data FILE      training data, JSON lines ({\"text\"} for pretrain, {\"messages\"} for sft)\n"
    "  --val FILE           held-out data of the same kind for the held-out loss\n"
    "  -o, --out DIR        checkpoints (ckpt-STEP.gguf + .opt, latest), train.csv, loss.svg\n"
    "  --resume             continue from DIR's latest checkpoint (stored settings; same -i files)\n"
    "  --name NAME          general.name of the written models (default cgpt)\n"
    "model shape (pretrain; sft takes the shape of --init):\n"
    "  --embd 256 --layers 6 --heads 8 --kv-heads 4 --head-dim 32 --ff 688 --ctx 256\n"
    "  --rope-base 10000 --init-seed 1\n"
    "optimisation:\n"
    "  --batch 8 (rows per micro-batch per rank)  --accum 1  --steps 1000  --warmup 100\n"
    "  --lr 1e-3 --lr-min 1e-4 --wd 0.1 --beta1 0.9 --beta2 0.95 --clip 1.0 --seed 1\n"
    "  --ckpt-every 500 --keep 2 --eval-every 0 --eval-rows 32 -t, --threads N\n"
    "\n"
    "Distributed: mpirun -np N cgpt train ... (data parallel; rank 0 writes).\n";

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

int cmd_train(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        fputs(TRAIN_USAGE, argc < 2 ? stderr : stdout);
        return argc < 2;
    }
    if (!strcmp(argv[1], "tokenizer")) return cmd_train_tokenizer(argc - 1, argv + 1);
    const char *mode = argv[1];
    bool sft = !strcmp(mode, "sft");
    if (!sft && strcmp(mode, "pretrain")) {
        fprintf(stderr, "cgpt train: unknown mode '%s' (tokenizer, pretrain or sft)\n", mode);
        return 1;
    }
    const char *cmd = sft ? "train sft" : "train pretrain";
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
    Args a = {argc - 1, argv + 1, 1};
    for (; a.i < a.argc; a.i++) {
        const char *o = a.argv[a.i];
        Status st = STATUS_OK;
        long iv = 0;
        double dv = 0;
#define INT_OPT(name, lo, hi, dst)                                                                 \
    else if (!strcmp(o, name)) {                                                                   \
        if (!(st = args_value(&a, &v, &err)) && !(st = args_int(o, v, lo, hi, &iv, &err)))         \
            dst = iv;                                                                              \
    }
#define FLT_OPT(name, lo, hi, dst)                                                                 \
    else if (!strcmp(o, name)) {                                                                   \
        if (!(st = args_value(&a, &v, &err)) && !(st = args_float(o, v, lo, hi, &dv, &err)))       \
            dst = (float)dv;                                                                       \
    }
        if (!strcmp(o, "-h") || !strcmp(o, "--help")) {
            fputs(TRAIN_USAGE, stdout);
            return 0;
        } else if (!strcmp(o, "-i") || !strcmp(o, "--data")) {
            if (n_inputs == TRAIN_MAX_INPUTS)
                st = err_set(&err, STATUS_LIMIT, "more than %d -i files", TRAIN_MAX_INPUTS);
            else
                st = args_value(&a, &inputs[n_inputs++], &err);
        } else if (!strcmp(o, "--val")) {
            st = args_value(&a, &val, &err);
        } else if (!strcmp(o, "-o") || !strcmp(o, "--out")) {
            st = args_value(&a, &out, &err);
        } else if (!strcmp(o, "--tokenizer")) {
            st = args_value(&a, &tok_path, &err);
        } else if (!strcmp(o, "--init")) {
            st = args_value(&a, &init, &err);
        } else if (!strcmp(o, "--resume")) {
            resume = true;
        } else if (!strcmp(o, "--name")) {
            if (!(st = args_value(&a, &v, &err))) snprintf(s.name, sizeof s.name, "%s", v);
        } else if (!strcmp(o, "--steps")) {
            if (!(st = args_value(&a, &v, &err)) && !(st = args_int(o, v, 1, TRAIN_MAX_STEPS, &iv, &err)))
                s.steps = iv, steps_given = true;
        }
        INT_OPT("--embd", 1, TMODEL_MAX_EMBD, c.n_embd)
        INT_OPT("--layers", 1, TMODEL_MAX_LAYERS, c.n_layers)
        INT_OPT("--heads", 1, TMODEL_MAX_HEADS, c.n_heads)
        INT_OPT("--kv-heads", 1, TMODEL_MAX_HEADS, c.n_kv_heads)
        INT_OPT("--head-dim", 2, 1024, c.head_dim)
        INT_OPT("--ff", 1, TMODEL_MAX_FF, c.n_ff)
        INT_OPT("--ctx", 2, TMODEL_MAX_CTX, c.n_ctx)
        FLT_OPT("--rope-base", 1, 1e9, c.rope_base)
        INT_OPT("--init-seed", 0, INT32_MAX, init_seed)
        INT_OPT("--batch", 1, TRAIN_MAX_BATCH, s.batch)
        INT_OPT("--accum", 1, TRAIN_MAX_ACCUM, s.accum)
        INT_OPT("--warmup", 0, TRAIN_MAX_STEPS, s.warmup)
        FLT_OPT("--lr", 0, 10, s.lr)
        FLT_OPT("--lr-min", 0, 10, s.lr_min)
        FLT_OPT("--wd", 0, 10, s.weight_decay)
        FLT_OPT("--beta1", 0, 0.999999, s.beta1)
        FLT_OPT("--beta2", 0, 0.999999, s.beta2)
        FLT_OPT("--clip", 0, 1e9, s.clip)
        INT_OPT("--seed", 0, INT32_MAX, s.seed)
        INT_OPT("--ckpt-every", 0, TRAIN_MAX_STEPS, s.ckpt_every)
        INT_OPT("--keep", 1, 1000, s.keep)
        INT_OPT("--eval-every", 0, TRAIN_MAX_STEPS, s.eval_every)
        INT_OPT("--eval-rows", 1, 1 << 20, s.eval_rows)
        INT_OPT("-t", 0, TPOOL_MAX_THREADS, threads)
        INT_OPT("--threads", 0, TPOOL_MAX_THREADS, threads)
        else st = err_set(&err, STATUS_INVALID, "unknown option '%s' (see cgpt train --help)", o);
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
