/* quantize.c - type selection (llama.cpp's rules) and row conversion.
 *
 * Converted tensors are held in memory until the writer runs (the writer
 * borrows tensor data); untouched tensors are written straight from the
 * input's mapping. Conversion goes through F32: dequant(source row) then
 * quantize(target row), threaded over rows. */
#include "model/quantize.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/mem.h"
#include "core/tpool.h"
#include "gguf/gguf.h"
#include "gguf/gguf_writer.h"
#include "tensor/quant.h"

#define QUANT_NAME_MAX 256 /* tensor names longer than this are not quantizable */

typedef enum { MIX_NONE, MIX_K_M } Mix;

typedef struct {
    const char *name;
    DType base;
    Mix mix;
    uint32_t file_type; /* llama_ftype */
} Scheme;

static const Scheme SCHEMES[] = {
    {"F16", DTYPE_F16, MIX_NONE, 1},     {"Q8_0", DTYPE_Q8_0, MIX_NONE, 7},
    {"Q4_0", DTYPE_Q4_0, MIX_NONE, 2},   {"Q5_0", DTYPE_Q5_0, MIX_NONE, 8},
    {"Q4_K", DTYPE_Q4_K, MIX_NONE, 14},  {"Q6_K", DTYPE_Q6_K, MIX_NONE, 18},
    {"Q4_K_M", DTYPE_Q4_K, MIX_K_M, 15}, {"Q5_K_M", DTYPE_Q5_K, MIX_K_M, 17},
};

typedef enum { CAT_OTHER, CAT_TOKEN_EMBD, CAT_OUTPUT, CAT_ATTN_V, CAT_FFN_DOWN } Category;

static bool ends_with(const char *s, const char *suf) {
    size_t n = strlen(s), k = strlen(suf);
    return n >= k && !memcmp(s + n - k, suf, k);
}

static Category category(const char *name) {
    if (!strcmp(name, "output.weight"))
        return CAT_OUTPUT;
    if (!strcmp(name, "token_embd.weight"))
        return CAT_TOKEN_EMBD;
    if (strstr(name, "attn_v.weight") || strstr(name, "attn_qkv.weight"))
        return CAT_ATTN_V;
    if (strstr(name, "ffn_down"))
        return CAT_FFN_DOWN;
    return CAT_OTHER;
}

static bool quantizable(const GGUFTensor *t, const char *name) {
    return t->n_dims >= 2 && ends_with(name, "weight") && !strstr(name, "_norm.weight") &&
           strcmp(name, "position_embd.weight") != 0;
}

/* llama.cpp's use_more_bits: first and last eighth of layers, every third between. */
static bool more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

static bool fits(DType t, int64_t ncols) { return ncols % dtype_info(t)->block_size == 0; }

static DType fallback(DType t, int64_t ncols) {
    if (fits(t, ncols))
        return t;
    DType f = t == DTYPE_Q4_K ? DTYPE_Q5_0 : t == DTYPE_Q5_K ? DTYPE_Q5_1 : DTYPE_Q8_0;
    return fits(f, ncols) ? f : DTYPE_F16;
}

typedef struct {
    const Scheme *s;
    bool pure, tied;
    int n_attn_v, i_attn_v, n_ffn_down, i_ffn_down;
} Chooser;

/* Target type of tensor 't' named 'name'; call in file order (counters). */
static DType choose(Chooser *c, const GGUFTensor *t, const char *name) {
    if (!quantizable(t, name))
        return t->type;
    DType base = c->s->base, ty = base;
    Category cat = category(name);
    bool quant = dtype_info(base)->quantized;
    if (quant && !c->pure) {
        if (cat == CAT_OUTPUT || (c->tied && cat == CAT_TOKEN_EMBD)) {
            ty = !fits(base, t->ne[0]) ? DTYPE_Q8_0 : base != DTYPE_Q8_0 ? DTYPE_Q6_K : base;
        } else if (cat == CAT_ATTN_V) {
            if (c->s->mix == MIX_K_M && more_bits(c->i_attn_v, c->n_attn_v))
                ty = DTYPE_Q6_K;
            c->i_attn_v++;
        } else if (cat == CAT_FFN_DOWN) {
            if (c->s->mix == MIX_K_M && more_bits(c->i_ffn_down, c->n_ffn_down))
                ty = DTYPE_Q6_K;
            c->i_ffn_down++;
        }
    }
    return quant ? fallback(ty, t->ne[0]) : ty;
}

typedef struct {
    const GGUFTensor *t;
    DType to;
    void *dst;
    uint64_t src_row_bytes, dst_row_bytes;
    int64_t n_rows;
    float *scratch; /* n_threads rows of ne[0] floats */
} ConvertJob;

static void convert_rows(void *ctx, int ith, int nth) {
    ConvertJob *j = ctx;
    int64_t ncols = j->t->ne[0];
    const QuantOps *from = quant_ops(j->t->type), *to = quant_ops(j->to);
    float *row = j->scratch + (size_t)ith * (size_t)ncols;
    long lo, hi;
    tpool_range((long)j->n_rows, ith, nth, &lo, &hi);
    for (long r = lo; r < hi; r++) {
        from->dequant((const uint8_t *)j->t->data + (uint64_t)r * j->src_row_bytes, row, ncols);
        to->quantize(row, (uint8_t *)j->dst + (uint64_t)r * j->dst_row_bytes, ncols);
    }
}

static const Scheme *find_scheme(const char *name) {
    for (size_t i = 0; i < sizeof SCHEMES / sizeof SCHEMES[0]; i++)
        if (!strcasecmp(SCHEMES[i].name, name))
            return &SCHEMES[i];
    return NULL;
}

Status quantize_file(const char *in, const char *out, const char *scheme, const QuantizeOpts *opts,
                     Err *err) {
    const Scheme *s = find_scheme(scheme);
    if (!s)
        return err_set(err, STATUS_INVALID, "unknown type '%s' (supported: %s)", scheme,
                       QUANTIZE_SCHEMES);
    GGUF g = {0};
    Status st = gguf_open(&g, in, err);
    if (st) {
        err_prefix(err, "%s", in);
        return st;
    }
    GGUFWriter *w = gguf_writer_new();
    void **bufs = calloc(g.n_tensors ? g.n_tensors : 1, sizeof *bufs);
    TPool *tp = tpool_new(opts ? opts->n_threads : 0);
    float *scratch = NULL;
    char name[QUANT_NAME_MAX + 1];
    if (!w || !bufs || !tp) {
        st = err_set(err, STATUS_NOMEM, "out of memory");
        goto done;
    }

    Chooser c = {
        .s = s, .pure = opts && opts->pure, .tied = !gguf_find_tensor(&g, "output.weight")};
    int64_t max_cols = 1;
    for (uint64_t i = 0; i < g.n_tensors; i++) {
        GGUFStr n = g.tensors[i].name;
        if (n.len > QUANT_NAME_MAX)
            continue;
        memcpy(name, n.ptr, n.len);
        name[n.len] = '\0';
        c.n_attn_v += category(name) == CAT_ATTN_V;
        c.n_ffn_down += category(name) == CAT_FFN_DOWN;
        if (g.tensors[i].ne[0] > max_cols)
            max_cols = g.tensors[i].ne[0];
    }
    scratch = malloc(sizeof(float) * (size_t)max_cols * (size_t)tpool_size(tp));
    if (!scratch) {
        st = err_set(err, STATUS_NOMEM, "out of memory for rows of %lld", (long long)max_cols);
        goto done;
    }

    for (uint64_t i = 0; i < g.n_kv; i++)
        if (!gguf_str_eq(g.kv[i].key, "general.file_type") &&
            !gguf_str_eq(g.kv[i].key, "general.quantization_version"))
            gguf_writer_set_kv(w, &g.kv[i]);
    gguf_writer_set_u32(w, "general.quantization_version", 2);
    gguf_writer_set_u32(w, "general.file_type", s->file_type);

    for (uint64_t i = 0; i < g.n_tensors; i++) {
        const GGUFTensor *t = &g.tensors[i];
        DType to = t->type;
        if (t->name.len <= QUANT_NAME_MAX) {
            memcpy(name, t->name.ptr, t->name.len);
            name[t->name.len] = '\0';
            to = choose(&c, t, name);
        } else {
            snprintf(name, sizeof name, "%.*s", QUANT_NAME_MAX, t->name.ptr);
        }
        if (opts && opts->on_tensor)
            opts->on_tensor(opts->ctx, (int)i, (int)g.n_tensors, name, t->type, to);
        const void *data = t->data;
        if (to != t->type) {
            if (!quant_ops(t->type)) {
                st = err_set(err, STATUS_UNSUPPORTED, "tensor '%s': cannot convert from type %s",
                             name, dtype_info(t->type)->name);
                goto done;
            }
            if (!quant_ops(to)) {
                st = err_set(err, STATUS_UNSUPPORTED, "tensor '%s': no kernels for type %s", name,
                             dtype_info(to)->name);
                goto done;
            }
            int64_t n_rows = (int64_t)(t->n_elements / (uint64_t)t->ne[0]);
            ConvertJob j = {.t = t,
                            .to = to,
                            .n_rows = n_rows,
                            .scratch = scratch,
                            .src_row_bytes = dtype_row_bytes(t->type, t->ne[0]),
                            .dst_row_bytes = dtype_row_bytes(to, t->ne[0])};
            uint64_t bytes;
            if (!mem_mul_ok(j.dst_row_bytes, (uint64_t)n_rows, &bytes) ||
                !(bufs[i] = j.dst = malloc(bytes ? bytes : 1))) {
                st = err_set(err, STATUS_NOMEM, "tensor '%s': out of memory", name);
                goto done;
            }
            tpool_run(tp, convert_rows, &j);
            data = j.dst;
        }
        gguf_writer_add_tensor(w, name, to, t->n_dims, t->ne, data);
    }
    st = gguf_writer_write(w, out, err);
    if (st)
        err_prefix(err, "%s", out);
done:
    if (bufs)
        for (uint64_t i = 0; i < g.n_tensors; i++)
            free(bufs[i]);
    free(bufs);
    free(scratch);
    tpool_free(tp);
    gguf_writer_free(w);
    gguf_close(&g);
    return st;
}
