/* info.c - `cgpt info -m MODEL [--tensors]`: what a GGUF file holds.
 *
 * Prints the file, the architecture and hyperparameters (as the engine will
 * use them: model_load validates them), tensor counts per type, parameter
 * count and every metadata pair (long strings and arrays abbreviated).
 * A file the engine cannot load is an error (exit 1), except a file with no
 * tensors at all (a vocabulary-only file), which is described as such. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "cli/common.h"
#include "gguf/gguf.h"
#include "model/model.h"

#define INFO_STR_SHOW 72 /* bytes of a string value shown */
#define INFO_ARR_SHOW 6  /* array elements shown */

/* Print bytes as a quoted, escaped, possibly truncated string. */
static void print_str(GGUFStr s, uint64_t max) {
    putchar('"');
    uint64_t n = s.len < max ? s.len : max;
    for (uint64_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c == '\n')
            fputs("\\n", stdout);
        else if (c < 0x20 || c == 0x7f)
            printf("\\x%02x", c);
        else
            putchar(c);
    }
    putchar('"');
    if (n < s.len)
        printf("... (%" PRIu64 " bytes)", s.len);
}

static void print_scalar(GGUFType t, uint64_t u, int64_t i, double f) {
    switch (t) {
    case GGUF_TYPE_UINT8:
    case GGUF_TYPE_UINT16:
    case GGUF_TYPE_UINT32:
    case GGUF_TYPE_UINT64:
        printf("%" PRIu64, u);
        break;
    case GGUF_TYPE_INT8:
    case GGUF_TYPE_INT16:
    case GGUF_TYPE_INT32:
    case GGUF_TYPE_INT64:
        printf("%" PRId64, i);
        break;
    case GGUF_TYPE_FLOAT32:
    case GGUF_TYPE_FLOAT64:
        printf("%g", f);
        break;
    case GGUF_TYPE_BOOL:
        fputs(u ? "true" : "false", stdout);
        break;
    default:
        fputs("?", stdout);
    }
}

static void print_kv(const GGUFKV *kv) {
    printf("  %.*s = ", (int)kv->key.len, kv->key.ptr);
    if (kv->type == GGUF_TYPE_STRING) {
        print_str(kv->val.s, INFO_STR_SHOW);
    } else if (kv->type == GGUF_TYPE_ARRAY) {
        printf("[%s x %" PRIu64 "]", gguf_type_name(kv->arr_type), kv->arr_n);
        uint64_t show = kv->arr_n < INFO_ARR_SHOW ? kv->arr_n : INFO_ARR_SHOW;
        for (uint64_t j = 0; j < show; j++) {
            putchar(j ? ',' : ' ');
            putchar(' ');
            if (kv->arr_type == GGUF_TYPE_STRING)
                print_str(kv->arr_strs[j], 24);
            else
                print_scalar(kv->arr_type, (uint64_t)gguf_arr_i64(kv, j), gguf_arr_i64(kv, j),
                             gguf_arr_f64(kv, j));
        }
        if (show < kv->arr_n)
            fputs(", ...", stdout);
    } else {
        print_scalar(kv->type, kv->val.u, kv->val.i, kv->val.f);
    }
    putchar('\n');
}

static const char *rope_name(RopeType r) {
    return r == ROPE_NORM ? "normal (adjacent pairs)" : r == ROPE_NEOX ? "neox (halves)" : "none";
}

static void print_config(const ModelConfig *c) {
    printf("hyperparameters:\n");
    printf("  n_vocab      %d\n  n_ctx_train  %d\n  n_embd       %d\n  n_layers     %d\n",
           c->n_vocab, c->n_ctx_train, c->n_embd, c->n_layers);
    printf("  n_heads      %d\n  n_kv_heads   %d (GQA %d)\n  head_dim     %d\n  n_ff         %d\n",
           c->n_heads, c->n_kv_heads, c->n_heads / c->n_kv_heads, c->head_dim, c->n_ff);
    printf("  norm_eps     %g\n  rope         %s", c->norm_eps, rope_name(c->rope_type));
    if (c->rope_type != ROPE_NONE)
        printf(", n_rot %d, freq_base %g", c->n_rot, c->rope_freq_base);
    /* the scaling variant in force */
    if (c->rope_yarn)
        printf(", YaRN x%g from %d (mscale %g)", 1.0 / c->rope_freq_scale, c->rope_orig_ctx,
               (double)c->rope_yarn_mscale);
    else if (c->has_rope_longshort)
        printf(", LongRoPE factors from %d (attn_factor %g)", c->rope_orig_ctx,
               (double)c->rope_attn_factor);
    else if (c->has_rope_freqs)
        printf(", llama3 frequency factors");
    else if (c->rope_freq_scale != 1.0f)
        printf(", linear x%g", 1.0 / c->rope_freq_scale);
    if (c->rope_local_base > 0.0f)
        printf("; sliding layers: freq_base %g, unscaled", (double)c->rope_local_base);
    static const char *const POOL[] = {"none", "mean", "cls", "last"};
    if (c->encoder) {
        printf("\n  output       none: an embedding model (bidirectional encoder)\n");
        printf("  pooling      %s", POOL[c->pooling]);
        if (c->pooling_type < 0)
            printf(" (no pooling_type: mean)");
        else if (c->pooling_type == 0)
            printf(" (pooling_type 0, none: pooled as mean)");
        printf("\n  token_types  %d (segment 0 used)\n", c->n_token_types);
    } else {
        printf("\n  output       %s\n", c->tied_output ? "tied to token_embd" : "separate");
        printf("  pooling      mean of the final hidden states (embeddings)\n");
    }
    if (c->n_swa)
        printf("  window       %d positions on %s\n", c->n_swa,
               c->swa_period == 1   ? "every layer"
               : c->swa_period == 2 ? "every other layer"
                                    : "5 of 6 layers");
    if (c->attn_softcap > 0.0f)
        printf("  soft-caps    attention %g, final %g\n", (double)c->attn_softcap,
               (double)c->final_softcap);
    if (c->attn_scale != 1.0f / sqrtf((float)c->head_dim))
        printf("  attn_scale   %g\n", (double)c->attn_scale);
    if (c->embd_scale != 1.0f)
        printf("  embd_scale   %g\n", (double)c->embd_scale);
    if (c->n_expert) {
        printf("  experts      %d, %d used per token, n_ff %d%s", c->n_expert, c->n_expert_used,
               c->n_ff_exp,
               c->moe_oai         ? ", top-k of the logits then softmax"
               : c->moe_norm_topk ? ", softmax, top-k renormalised"
                                  : ", softmax, top-k");
        if (c->n_ff_shexp)
            printf("; shared expert n_ff %d", c->n_ff_shexp);
        putchar('\n');
    }
}

enum { O_MODEL = 1, O_TENSORS };

static const ArgOpt INFO_OPTS[] = {
    CLI_OPT_MODEL(O_MODEL),
    {O_TENSORS, "--tensors", NULL, "also list every tensor: name, type, shape, bytes"},
    {0},
};

static int cmd_info(int argc, char **argv) {
    const char *path = NULL, *v;
    bool tensors = false;
    Err err = {0};
    Args a = args_start(argc, argv, 1);
    for (int id; (id = cli_next(&a, &CLI_INFO, &v, &err)) != ARG_END;) {
        switch (id) {
        case ARG_ERROR: return cli_fail("info", &err);
        case ARG_HELP: cli_help(&CLI_INFO); return 0;
        case ARG_POSITIONAL:
            err_set(&err, STATUS_INVALID, "unexpected argument '%s' (the model goes after -m)", v);
            return cli_fail("info", &err);
        case O_MODEL: path = v; break;
        case O_TENSORS: tensors = true; break;
        }
    }
    if (cli_model_path(path, &path, &err)) /* no -m: the built-in model */
        return cli_fail("info", &err);

    GGUF g = {0};
    if (gguf_open(&g, path, &err)) {
        err_prefix(&err, "%s", path);
        return cli_fail("info", &err);
    }
    /* Validate as the engine would; small context so nothing big is allocated. */
    Model *m = NULL;
    if (g.n_tensors > 0) {
        ModelParams mp = {
            .n_threads = 1, .n_ctx = 16, .n_seq_max = 1, .n_batch = 1, .no_repack = true};
        if (model_load(&m, path, &mp, &err)) {
            gguf_close(&g);
            return cli_fail("info", &err);
        }
    }

    uint64_t n_params = 0;
    int per_type[DTYPE_COUNT] = {0};
    for (uint64_t i = 0; i < g.n_tensors; i++) {
        n_params += g.tensors[i].n_elements;
        per_type[g.tensors[i].type]++;
    }
    printf("file:         %s\n", path);
    printf("size:         %" PRIu64 " bytes (%.2f MiB), GGUF v%u, alignment %" PRIu64 "\n", g.size,
           (double)g.size / (1024.0 * 1024.0), g.version, g.alignment);
    GGUFStr arch = {0};
    gguf_get_str(&g, "general.architecture", false, &arch, NULL);
    printf("architecture: %.*s\n", (int)arch.len, arch.ptr ? arch.ptr : "");
    if (!m) {
        printf("tensors:      0 (vocabulary-only file)\n");
    } else {
        if (model_config(m)->n_params != n_params) { /* a split model: all its parts */
            n_params = model_config(m)->n_params;
            printf("split:        this file is the first part of a split model\n");
        }
        printf("parameters:   %" PRIu64 " (%.2f M)\n", n_params, (double)n_params / 1e6);
        printf("tensors:      %" PRIu64 " (", g.n_tensors);
        const char *sep = "";
        for (int t = 0; t < DTYPE_COUNT; t++)
            if (per_type[t]) {
                printf("%s%s %d", sep, dtype_info(t)->name, per_type[t]);
                sep = ", ";
            }
        printf(")\n");
        print_config(model_config(m));
    }
    printf("metadata (%" PRIu64 " keys):\n", g.n_kv);
    for (uint64_t i = 0; i < g.n_kv; i++)
        print_kv(&g.kv[i]);
    if (tensors) {
        printf("tensor list:\n");
        for (uint64_t i = 0; i < g.n_tensors; i++) {
            const GGUFTensor *t = &g.tensors[i];
            printf("  %-40.*s %-5s [", (int)t->name.len, t->name.ptr, dtype_info(t->type)->name);
            for (int d = 0; d < t->n_dims; d++)
                printf("%s%" PRId64, d ? ", " : "", t->ne[d]);
            printf("] %" PRIu64 " bytes\n", t->n_bytes);
        }
    }
    model_free(m);
    gguf_close(&g);
    return 0;
}

const CliCommand CLI_INFO = {
    .name = "info",
    .synopsis = "[-m MODEL] [--tensors]",
    .summary = "what a GGUF file holds: architecture, shapes, tensor types, metadata",
    .opts = INFO_OPTS,
    .main = cmd_info,
};
