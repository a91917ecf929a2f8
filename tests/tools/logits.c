/* logits.c - test tool: run token sequences through model_forward, dump logits.
 *
 *   logits -m MODEL --seq "1 2 3" --seq "4 5" ... [--batched] [--chunk N]
 *          [--threads N] [--ctx N] -o OUT.bin
 *
 * The context is --ctx or the longest sequence, whichever is more (it
 * picks LongRoPE's long or short factors).
 *
 * Every row of every sequence gets logits. OUT.bin holds float32 (host
 * order, little-endian on every machine we run) logits: all rows of seq 0,
 * then all rows of seq 1, ..., each n_vocab floats.
 *
 * Alone (default): each sequence runs by itself, as sequence id i, in
 * forward calls of up to --chunk rows (default: the whole sequence).
 * --batched: every forward call takes the next up-to---chunk rows of every
 * unfinished sequence, interleaved row by row (s0 r0, s1 r0, s0 r1, ...),
 * so calls are ragged mixes of sequences at different positions.
 * Exits 1 with one line on stderr on any error. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"

#define LOGITS_MAX_SEQS 64
#define LOGITS_MAX_TOKENS 65536 /* per sequence */

typedef struct {
    int32_t *tok;
    int n;
    int done;      /* rows already fed */
    int64_t first; /* index of its first row in the output */
} Seq;

static _Noreturn void die(const char *fmt, const char *a) {
    fprintf(stderr, "logits: ");
    fprintf(stderr, fmt, a);
    fputc('\n', stderr);
    exit(1);
}

static long parse_int(const char *opt, const char *v, long lo, long hi) {
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi) {
        fprintf(stderr, "logits: %s: bad integer '%s' (range %ld..%ld)\n", opt, v, lo, hi);
        exit(1);
    }
    return x;
}

static void parse_seq(Seq *s, const char *v) {
    s->tok = malloc(LOGITS_MAX_TOKENS * sizeof *s->tok);
    if (!s->tok)
        die("out of memory%s", "");
    const char *p = v;
    for (;;) {
        while (*p == ' ' || *p == ',' || *p == '\t')
            p++;
        if (!*p)
            break;
        char *end;
        errno = 0;
        long x = strtol(p, &end, 10);
        if (errno || end == p || x < 0 || x > INT32_MAX)
            die("--seq: bad token list '%s'", v);
        if (s->n == LOGITS_MAX_TOKENS)
            die("--seq: more than 65536 tokens in '%.40s...'", v);
        s->tok[s->n++] = (int32_t)x;
        p = end;
    }
    if (s->n == 0)
        die("--seq: empty sequence '%s'", v);
}

int main(int argc, char **argv) {
    int n_ctx = 0;
    const char *model_path = NULL, *out_path = NULL;
    Seq seqs[LOGITS_MAX_SEQS] = {{0}};
    int n_seqs = 0, chunk = 0, n_threads = 0;
    bool batched = false;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        if (!strcmp(o, "--batched")) {
            batched = true;
            continue;
        }
        if (i + 1 >= argc)
            die("%s: missing value", o);
        const char *v = argv[++i];
        if (!strcmp(o, "-m"))
            model_path = v;
        else if (!strcmp(o, "-o"))
            out_path = v;
        else if (!strcmp(o, "--chunk"))
            chunk = (int)parse_int(o, v, 1, LOGITS_MAX_TOKENS);
        else if (!strcmp(o, "--ctx"))
            n_ctx = (int)parse_int(o, v, 1, 1 << 20);
        else if (!strcmp(o, "--threads"))
            n_threads = (int)parse_int(o, v, 1, 1024);
        else if (!strcmp(o, "--seq")) {
            if (n_seqs == LOGITS_MAX_SEQS)
                die("more than 64 --seq%s", "");
            parse_seq(&seqs[n_seqs++], v);
        } else
            die("unknown option '%s'", o);
    }
    if (!model_path || !out_path || n_seqs == 0)
        die("usage: logits -m MODEL --seq \"1 2 3\" [--seq ...] [--batched] [--chunk N] "
            "-o OUT.bin%s",
            "");

    int max_len = 0;
    int64_t total = 0;
    for (int s = 0; s < n_seqs; s++) {
        seqs[s].first = total;
        total += seqs[s].n;
        if (seqs[s].n > max_len)
            max_len = seqs[s].n;
    }
    /* rows per forward call: alone - chunk or a whole sequence; batched -
     * up to chunk from every sequence */
    int per_seq = chunk ? (chunk < max_len ? chunk : max_len) : max_len;
    int n_batch = batched ? per_seq * n_seqs : per_seq;

    ModelParams mp = {0};
    mp.n_threads = n_threads;
    mp.n_ctx = n_ctx > max_len ? n_ctx : max_len;
    mp.n_seq_max = n_seqs;
    mp.n_batch = n_batch;
    Model *m = NULL;
    Err err = {0};
    if (model_load(&m, model_path, &mp, &err) != STATUS_OK) {
        fprintf(stderr, "logits: %s: %s\n", model_path, err.msg);
        return 1;
    }
    int64_t V = model_config(m)->n_vocab;
    float *out = malloc((size_t)(total * V) * sizeof *out);
    float *buf = malloc((size_t)((int64_t)n_batch * V) * sizeof *buf);
    BatchRow *rows = malloc((size_t)n_batch * sizeof *rows);
    int64_t *dest = malloc((size_t)n_batch * sizeof *dest); /* output row of each batch row */
    if (!out || !buf || !rows || !dest)
        die("out of memory for %s logits", "the");

    int rc = 0;
    for (int cur = 0; cur < n_seqs || batched;) {
        /* gather one call's rows */
        int nr = 0;
        if (batched) {
            for (int k = 0; k < per_seq; k++)
                for (int s = 0; s < n_seqs; s++) {
                    Seq *q = &seqs[s];
                    if (q->done >= q->n || k >= per_seq)
                        continue;
                    int p = q->done + k;
                    if (p >= q->n)
                        continue;
                    rows[nr] = (BatchRow){q->tok[p], p, s, true};
                    dest[nr++] = q->first + p;
                }
            for (int s = 0; s < n_seqs; s++) {
                Seq *q = &seqs[s];
                q->done = q->done + per_seq < q->n ? q->done + per_seq : q->n;
            }
            if (nr == 0)
                break;
        } else {
            Seq *q = &seqs[cur];
            for (int p = q->done; p < q->n && nr < per_seq; p++) {
                rows[nr] = (BatchRow){q->tok[p], p, cur, true};
                dest[nr++] = q->first + p;
            }
            q->done += nr;
            if (q->done >= q->n)
                cur++;
        }
        if (model_forward(m, rows, nr, buf, &err) != STATUS_OK) {
            fprintf(stderr, "logits: forward (%d rows, first seq %d pos %d): %s\n", nr, rows[0].seq,
                    rows[0].pos, err.msg);
            rc = 1;
            break;
        }
        for (int r = 0; r < nr; r++)
            memcpy(out + dest[r] * V, buf + (int64_t)r * V, (size_t)V * sizeof *out);
    }

    if (rc == 0) {
        FILE *f = fopen(out_path, "wb");
        if (!f || fwrite(out, sizeof *out, (size_t)(total * V), f) != (size_t)(total * V) ||
            fclose(f) != 0) {
            fprintf(stderr, "logits: %s: write failed: %s\n", out_path, strerror(errno));
            rc = 1;
        }
    }
    free(out);
    free(buf);
    free(rows);
    free(dest);
    for (int s = 0; s < n_seqs; s++)
        free(seqs[s].tok);
    model_free(m);
    return rc;
}
