/* train_tokenizer.c - `cgpt train tokenizer`: train a byte-level BPE
 * tokenizer on JSON lines and write it as a vocabulary-only GGUF.
 *
 *   cgpt train tokenizer -i FILE.jsonl [-i FILE2.jsonl ...] -o OUT.gguf
 *       [--vocab 8192] [--max-bytes N] [--min-freq 2] [--threads N] [--name NAME]
 *
 * Progress goes to stderr; the last line on stdout is the summary:
 *   "trained tokenizer: vocab V (256 bytes + M merges + 4 special), B bytes read,
 *    S s -> OUT"
 * The hidden flag --dump-words FILE also writes the counted pre-tokens
 * (bpe_counts_dump format) for tests/train/test_bpe_train.py.
 * The algorithm and the file's keys are in src/train/bpe_train.h. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "core/perf.h"
#include "core/tpool.h"
#include "train/bpe_train.h"

#define CMD "train tokenizer"
#define TT_MAX_INPUTS 256          /* -i files */
#define TT_DEFAULT_VOCAB 8192      /* --vocab */
#define TT_PROGRESS_SECONDS 1.0    /* between progress lines */
#define TT_DEFAULT_NAME "cgpt-bpe" /* general.name */

enum { O_INPUT = 1, O_OUTPUT, O_VOCAB, O_MAX_BYTES, O_MIN_FREQ, O_THREADS, O_NAME, O_DUMP };

static const ArgOpt TT_OPTS[] = {
    {O_INPUT, "-i|--input", "FILE",
     "JSON lines: {\"text\": ...} or {\"messages\": [...]} (repeatable)"},
    {O_OUTPUT, "-o|--output", "FILE", "the vocabulary-only GGUF to write"},
    {O_VOCAB, "--vocab", "N", "tokens in total, 4 specials included (default 8192)"},
    {O_MAX_BYTES, "--max-bytes", "N", "read at most N bytes of text (default 1 GiB)"},
    {O_MIN_FREQ, "--min-freq", "N",
     "stop when the best pair occurs fewer than N times (default 2)"},
    {O_THREADS, "-t|--threads", "N", "counting threads (default: all CPUs)"},
    {O_NAME, "--name", "NAME", "general.name (default cgpt-bpe)"},
    {O_DUMP, "--dump-words", "FILE", "also write the counted pre-tokens (tests)"},
    {0},
};

typedef struct {
    double t0, last;
    const char *file;
} Progress;

static void on_progress(void *ctx, const char *stage, uint64_t done, uint64_t total) {
    Progress *p = ctx;
    double now = perf_now();
    bool last = done >= total;
    if (now - p->last < TT_PROGRESS_SECONDS && !last)
        return;
    p->last = now;
    if (!strcmp(stage, "read"))
        fprintf(stderr, "%s: %s: %.1f MB of text read (%.1f s)\n", CMD, p->file, (double)done / 1e6,
                now - p->t0);
    else
        fprintf(stderr, "%s: %" PRIu64 "/%" PRIu64 " merges (%.1f s)\n", CMD, done, total,
                now - p->t0);
}

static int cmd_train_tokenizer(int argc, char **argv) {
    const char *inputs[TT_MAX_INPUTS];
    int n_inputs = 0;
    const char *out = NULL, *dump = NULL, *name = TT_DEFAULT_NAME, *v;
    long vocab = TT_DEFAULT_VOCAB, min_freq = 2, threads = 0;
    long max_bytes = (long)BPE_TRAIN_DEFAULT_MAX_BYTES;
    Err err = {0};
    Args a = args_start(argc, argv, 1);
    for (int id; (id = cli_next(&a, &CLI_TRAIN_TOKENIZER, &v, &err)) != ARG_END;) {
        Status s = STATUS_OK;
        switch (id) {
        case ARG_ERROR: return cli_fail(CMD, &err);
        case ARG_HELP: cli_help(&CLI_TRAIN_TOKENIZER); return 0;
        case ARG_POSITIONAL:
            s = err_set(&err, STATUS_INVALID, "unexpected argument '%s'", v);
            break;
        case O_INPUT:
            if (n_inputs == TT_MAX_INPUTS)
                s = err_set(&err, STATUS_LIMIT, "more than %d input files", TT_MAX_INPUTS);
            else
                inputs[n_inputs++] = v;
            break;
        case O_OUTPUT: out = v; break;
        case O_NAME: name = v; break;
        case O_DUMP: dump = v; break;
        case O_VOCAB:
            s = args_int(a.opt, v, BPE_TRAIN_MIN_VOCAB, BPE_TRAIN_MAX_VOCAB, &vocab, &err);
            break;
        case O_MAX_BYTES:
            s = args_int(a.opt, v, 1, (long)BPE_TRAIN_MAX_BYTES, &max_bytes, &err);
            break;
        case O_MIN_FREQ: s = args_int(a.opt, v, 1, INT32_MAX, &min_freq, &err); break;
        case O_THREADS: s = args_int(a.opt, v, 1, TPOOL_MAX_THREADS, &threads, &err); break;
        }
        if (s)
            return cli_fail(CMD, &err);
    }
    if (n_inputs == 0 || !out) {
        err_set(&err, STATUS_INVALID, "give at least one -i FILE.jsonl and -o OUT.gguf");
        return cli_fail(CMD, &err);
    }

    Progress pr = {.t0 = perf_now()};
    pr.last = pr.t0;
    BpeCounts *counts = NULL;
    BpeVocab voc = {0};
    TPool *tp = NULL;
    int rc = 1;
    if (bpe_counts_new(&counts, (uint64_t)max_bytes, &err))
        goto done;
    tp = tpool_new((int)threads);
    if (!tp) {
        err_set(&err, STATUS_NOMEM, "cannot start %ld threads", threads);
        goto done;
    }
    for (int i = 0; i < n_inputs && !bpe_counts_full(counts); i++) {
        pr.file = inputs[i];
        if (bpe_counts_add_jsonl(counts, inputs[i], tp, on_progress, &pr, &err))
            goto done;
    }
    fprintf(stderr, "%s: %" PRIu64 " bytes of text%s, %" PRIu64 " distinct pre-tokens (%.1f s)\n",
            CMD, bpe_counts_n_bytes(counts),
            bpe_counts_full(counts) ? " (--max-bytes reached)" : "", bpe_counts_n_words(counts),
            perf_now() - pr.t0);
    if (dump && bpe_counts_dump(counts, dump, &err))
        goto done;
    BpeTrainParams tpar = {.vocab = (int)vocab,
                           .min_freq = (uint64_t)min_freq,
                           .progress = on_progress,
                           .progress_ctx = &pr};
    if (bpe_train(counts, &tpar, &voc, &err))
        goto done;
    if (voc.n_tokens < vocab)
        fprintf(stderr, "%s: stopped at %d tokens: no pair occurs %ld or more times\n", CMD,
                voc.n_tokens, min_freq);
    if (bpe_vocab_write_gguf(&voc, name, out, &err))
        goto done;
    printf("trained tokenizer: vocab %d (256 bytes + %d merges + %d special), "
           "%" PRIu64 " bytes read, %.2f s -> %s\n",
           voc.n_tokens, voc.n_merges, BPE_TRAIN_N_SPECIAL, bpe_counts_n_bytes(counts),
           perf_now() - pr.t0, out);
    rc = 0;
done:
    if (rc)
        cli_fail(CMD, &err);
    bpe_vocab_free(&voc);
    bpe_counts_free(counts);
    tpool_free(tp);
    return rc;
}

const CliCommand CLI_TRAIN_TOKENIZER = {
    .name = "train tokenizer",
    .synopsis = "-i TEXT.jsonl [-i ...] -o TOK.gguf [--vocab N]",
    .summary = "train a byte-level BPE tokenizer (ChatML specials) into a vocabulary-only GGUF",
    .opts = TT_OPTS,
    .main = cmd_train_tokenizer,
};
