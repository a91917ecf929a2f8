/* trainer.h - the training loop: data-parallel steps of gradient
 * accumulation, clipping, AdamW with warmup + cosine, checkpoints, the CSV
 * log and the loss curve.
 *
 * One optimizer step of rank r (of W ranks) visits micro-batches a = 0..A-1
 * of B rows each; row b of micro-batch a is the data row at global index
 *     g = ((step * A + a) * W + r) * B + b
 * so a run is a pure function of (settings, data, starting state): W ranks
 * with micro-batch B see the same rows as one rank with micro-batch W*B (or
 * with W times the accumulation), and a resumed run sees exactly the rows the
 * uninterrupted run would have. Gradients are summed over micro-batches and
 * ranks, then divided by the number of counted targets of the whole step
 * (the loss is the mean over the global batch's targets).
 *
 * Files in settings.out_dir (rank 0 writes them): ckpt-<step>.gguf/.opt and
 * `latest` (ckpt.h), train.csv (one line per step: step, tokens, loss,
 * val_loss, lr, grad_norm, tokens_per_s, mfu, elapsed_s), loss.svg (the
 * curve, rewritten at every checkpoint and at the end).
 *
 * A non-finite loss or gradient stops the run with STATUS_INVALID naming the
 * step, before any update or checkpoint, so the last checkpoint stays the
 * last good one. */
#ifndef CGPT_TRAIN_TRAINER_H
#define CGPT_TRAIN_TRAINER_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/err.h"
#include "core/tpool.h"
#include "gguf/gguf.h"
#include "train/ckpt.h"
#include "train/tdata.h"
#include "train/tmodel.h"

#define TRAIN_MAX_STEPS 100000000L
#define TRAIN_MAX_BATCH 4096
#define TRAIN_MAX_ACCUM 4096

typedef struct {
    char mode[16];        /* "pretrain" or "sft" (recorded in the checkpoint) */
    char name[64];        /* general.name of the written models */
    int batch;            /* rows per micro-batch per rank */
    int accum;            /* micro-batches per step */
    long steps;           /* optimizer steps in the whole run */
    long warmup;          /* warmup steps */
    float lr, lr_min;     /* peak and final learning rate */
    float weight_decay;   /* decoupled, matrices only */
    float beta1, beta2, eps;
    float clip;           /* max global gradient norm; 0: off */
    uint64_t seed;        /* data order (and init, which the caller does) */
    long ckpt_every;      /* steps between checkpoints; 0: only at the end */
    int keep;             /* checkpoints kept */
    long eval_every;      /* steps between held-out losses; 0: never */
    int eval_rows;        /* held-out rows per evaluation */
    long inject_nan_step; /* fault injection for tests: poison a gradient at this step; -1 off */
} TrainSettings;

/* The defaults (a small pretraining run). */
void trainer_defaults(TrainSettings *s);
/* Range checks, naming the setting and its limits. */
Status trainer_check(const TrainSettings *s, Err *err);

/* JSON of the settings (owned, free()) and back: stored in the checkpoint so
 * a resume needs no flags. */
char *trainer_settings_json(const TrainSettings *s, uint64_t data_hash);
Status trainer_settings_parse(const char *json, TrainSettings *s, uint64_t *data_hash, Err *err);

typedef struct {
    long step;             /* steps done */
    long steps;            /* of the run */
    uint64_t tokens;       /* tokens processed since the run began (all ranks) */
    double loss;           /* mean loss of the last step */
    double val_loss;       /* last held-out loss; NAN before the first */
    double lr;
    double grad_norm;      /* before clipping */
    double tokens_per_s;   /* all ranks, averaged since this process started */
    double mfu;            /* 6 * params * tokens_per_s / (FMA peak * ranks) */
    double elapsed_s;      /* since this process started */
    double eta_s;
    bool checkpointed;     /* a checkpoint was written after this step */
} TrainProgress;

typedef void (*TrainOnStep)(void *ctx, const TrainProgress *p);

typedef struct {
    const TrainSettings *s;
    TModel *m;              /* BORROWED; holds the starting parameters */
    TData *data;            /* BORROWED */
    TData *val;             /* BORROWED; may be NULL */
    const GGUF *tok;        /* BORROWED: tokenizer.* keys copied into every model file */
    const char *out_dir;
    const CkptState *resume; /* BORROWED; NULL for a fresh run (then params come from m) */
    TPool *tp;              /* BORROWED */
    double fma_peak;        /* FLOP/s of one rank, for MFU */
    TrainOnStep on_step;    /* called on rank 0 after every step; may be NULL */
    void *ctx;
    volatile sig_atomic_t *stop; /* set by a signal handler: checkpoint and return */
} TrainRun;

/* Run until settings.steps or *stop. On *stop returns STATUS_OK after writing
 * a checkpoint; *stopped tells which. */
Status trainer_run(const TrainRun *r, bool *stopped, Err *err);

/* Load F32 or F16 llama weights from a GGUF model file into a new TModel:
 * the config comes from the file's llama.* keys ('n_ctx' > 0 replaces the
 * trained length). A file whose math the trainer does not run (untied
 * output, rope scaling, partial rope, other head sizes, extra tensors) is
 * STATUS_UNSUPPORTED naming what. Returns owned (tmodel_free). */
Status trainer_load_model(const char *path, int max_batch, int n_ctx, TPool *tp, TModel **out,
                          Err *err);

#endif
