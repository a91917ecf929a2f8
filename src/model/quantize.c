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

/* llama.cpp's llama_ftype values of the schemes: they pick the mixture rules
 * (llama-quant.cpp llama_tensor_get_type) and go into general.file_type. */
enum {
    FT_F16 = 1,
    FT_Q4_0 = 2,
    FT_Q8_0 = 7,
    FT_Q5_0 = 8,
    FT_Q2_K = 10,
    FT_Q3_K_S = 11,
    FT_Q3_K_M = 12,
    FT_Q3_K_L = 13,
    FT_Q4_K_S = 14,
    FT_Q4_K_M = 15,
    FT_Q5_K_M = 17,
    FT_Q6_K = 18,
    FT_IQ4_NL = 25,
    FT_IQ4_XS = 30,
};

typedef struct {
    const char *name;
    DType base;
    uint32_t file_type; /* llama_ftype */
} Scheme;

/* "Q4_K" is llama.cpp's Q4_K_S file type but, as documented in quantize.h,
 * without its mixture: every matrix in Q4_K. */
static const Scheme SCHEMES[] = {
    {"F16", DTYPE_F16, FT_F16},          {"Q8_0", DTYPE_Q8_0, FT_Q8_0},
    {"Q4_0", DTYPE_Q4_0, FT_Q4_0},       {"Q5_0", DTYPE_Q5_0, FT_Q5_0},
    {"Q4_K", DTYPE_Q4_K, FT_Q4_K_S},     {"Q6_K", DTYPE_Q6_K, FT_Q6_K},
    {"Q4_K_M", DTYPE_Q4_K, FT_Q4_K_M},   {"Q5_K_M", DTYPE_Q5_K, FT_Q5_K_M},
    {"Q2_K", DTYPE_Q2_K, FT_Q2_K},       {"Q3_K_S", DTYPE_Q3_K, FT_Q3_K_S},
    {"Q3_K_M", DTYPE_Q3_K, FT_Q3_K_M},   {"Q3_K_L", DTYPE_Q3_K, FT_Q3_K_L},
    {"IQ4_NL", DTYPE_IQ4_NL, FT_IQ4_NL}, {"IQ4_XS", DTYPE_IQ4_XS, FT_IQ4_XS},
};

typedef enum {
    CAT_OTHER,
    CAT_TOKEN_EMBD,
    CAT_OUTPUT,
    CAT_ATTN_V,
    CAT_ATTN_OUTPUT,
    CAT_FFN_DOWN
} Category;

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
    if (strstr(name, "attn_output.weight"))
        return CAT_ATTN_OUTPUT;
    if (strstr(name, "ffn_down"))
        return CAT_FFN_DOWN;
    return CAT_OTHER;
}

/* Matrices only; norms, position embeddings and a mixture of experts'
 * router (ffn_gate_inp, which llama.cpp keeps as it is: its top-k choice
 * is what a rounded weight would flip) stay in their type. */
static bool quantizable(const GGUFTensor *t, const char *name) {
    return t->n_dims >= 2 && ends_with(name, "weight") && !strstr(name, "_norm.weight") &&
           strcmp(name, "position_embd.weight") != 0 && !strstr(name, "ffn_gate_inp");
}

/* llama.cpp's use_more_bits: first and last eighth of layers, every third between. */
static bool more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

static bool fits(DType t, int64_t ncols) { return ncols % dtype_info(t)->block_size == 0; }

/* llama.cpp's tensor_type_fallback: a row length the type's block does not
 * divide takes the named 32-element type, or F16 when 32 does not divide
 * it either. */
static DType fallback(DType t, int64_t ncols) {
    if (fits(t, ncols))
        return t;
    DType f;
    switch (t) {
    case DTYPE_IQ4_XS: f = DTYPE_IQ4_NL; break;
    case DTYPE_Q2_K:
    case DTYPE_Q3_K: f = DTYPE_Q4_0; break;
    case DTYPE_Q4_K: f = DTYPE_Q5_0; break;
    case DTYPE_Q5_K: f = DTYPE_Q5_1; break;
    default: f = DTYPE_Q8_0; break; /* Q6_K; the 32-element types do not fit it either */
    }
    return fits(f, ncols) ? f : DTYPE_F16;
}

typedef struct {
    const Scheme *s;
    bool pure, tied;
    int n_gqa; /* n_head / n_head_kv; 0 when unknown */
    int n_attn_v, i_attn_v, n_ffn_down, i_ffn_down;
} Chooser;

/* The mixture's type for an attn_v / attn_qkv matrix (the i-th of n). */
static DType mix_attn_v(const Chooser *c, DType ty, int i, int n) {
    switch (c->s->file_type) {
    case FT_Q2_K: return c->n_gqa >= 4 ? DTYPE_Q4_K : DTYPE_Q3_K;
    case FT_Q3_K_M: return i < 2 ? DTYPE_Q5_K : DTYPE_Q4_K;
    case FT_Q3_K_L: return DTYPE_Q5_K;
    case FT_IQ4_NL:
    case FT_IQ4_XS: return c->n_gqa >= 4 ? DTYPE_Q5_K : ty;
    case FT_Q4_K_M:
    case FT_Q5_K_M: return more_bits(i, n) ? DTYPE_Q6_K : ty;
    default: return ty;
    }
}

/* The mixture's type for an ffn_down matrix (layer i of n). */
static DType mix_ffn_down(const Chooser *c, DType ty, int i, int n) {
    switch (c->s->file_type) {
    case FT_Q2_K: return DTYPE_Q3_K;
    case FT_Q3_K_M: return i < n / 16 ? DTYPE_Q5_K : DTYPE_Q4_K;
    case FT_Q3_K_L: return DTYPE_Q5_K;
    case FT_IQ4_NL:
    case FT_IQ4_XS: return i < n / 8 ? DTYPE_Q5_K : ty; /* no imatrix */
    case FT_Q4_K_M:
    case FT_Q5_K_M: return more_bits(i, n) ? DTYPE_Q6_K : ty;
    default: return ty;
    }
}

static DType mix_attn_output(const Chooser *c, DType ty) {
    switch (c->s->file_type) {
    case FT_Q2_K: return DTYPE_Q3_K;
    case FT_Q3_K_M: return DTYPE_Q4_K;
    case FT_Q3_K_L: return DTYPE_Q5_K;
    default: return ty;
    }
}

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
            ty = mix_attn_v(c, ty, c->i_attn_v, c->n_attn_v);
            c->i_attn_v++;
        } else if (cat == CAT_FFN_DOWN) {
            ty = mix_ffn_down(c, ty, c->i_ffn_down, c->n_ffn_down);
            c->i_ffn_down++;
        } else if (cat == CAT_ATTN_OUTPUT) {
            ty = mix_attn_output(c, ty);
        }
    }
    return quant ? fallback(ty, t->ne[0]) : ty;
}

/* n_head / n_head_kv of the file's architecture, as llama.cpp's n_gqa(); 0
 * when the counts are missing or not scalars (then no rule on it fires). */
static int file_n_gqa(const GGUF *g) {
    GGUFStr arch = {0};
    Err e = {0};
    if (gguf_get_str(g, "general.architecture", false, &arch, &e) || !arch.len || arch.len > 64)
        return 0;
    char key[128];
    uint32_t n_head = 0, n_head_kv = 0;
    snprintf(key, sizeof key, "%.*s.attention.head_count", (int)arch.len, arch.ptr);
    if (gguf_get_u32(g, key, false, &n_head, &e) || !n_head)
        return 0;
    n_head_kv = n_head;
    snprintf(key, sizeof key, "%.*s.attention.head_count_kv", (int)arch.len, arch.ptr);
    if (gguf_get_u32(g, key, false, &n_head_kv, &e) || !n_head_kv)
        return 0;
    return (int)(n_head / n_head_kv);
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

    Chooser c = {.s = s,
                 .pure = opts && opts->pure,
                 .tied = !gguf_find_tensor(&g, "output.weight"),
                 .n_gqa = file_n_gqa(&g)};
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
