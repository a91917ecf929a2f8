/* randmodel.c - small random models of each architecture, written as GGUF.
 *
 * The tensor names, shapes and metadata keys are the ones llama.cpp's
 * converters write (src/llama-arch.cpp, convert_hf_to_gguf.py), so the files
 * load in llama.cpp as well as in cgpt. Weights are drawn in a fixed order
 * from one seeded Rng: the same spec always gives the same bytes.
 *
 * Deliberately not done here: any forward computation, and tokenizer
 * realism (the vocabulary is "t0".."tN-1" with an empty merge list).
 *
 * Llama-3 rope scaling is written the way convert_hf_to_gguf.py writes it:
 * as the tensor rope_freqs.weight (n_rot/2 frequency divisors) and no
 * rope.scaling.* keys - llama.cpp asserts on an unknown rope.scaling.type
 * and would read rope.scaling.factor as linear scaling. */
#include "model/randmodel.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "gguf/gguf_writer.h"
#include "tensor/quant.h"

#define RANDMODEL_MAX_DIM (1 << 20) /* any one dimension of the spec */
#define RANDMODEL_MAX_LAYERS 512
#define RANDMODEL_MAX_ELEMS (1ll << 31) /* elements in one tensor */
#define RANDMODEL_NAME_MAX 96
#define RANDMODEL_MAX_POOLING 15 /* pooling_type values written (past 4: bad files for tests) */
#define RANDMODEL_TOKEN_TYPES 2  /* BERT's segments A and B */

/* Llama 3.1 rope scaling constants (its config.json "rope_scaling"). */
#define LLAMA3_FACTOR 8.0
#define LLAMA3_LOW_FREQ_FACTOR 1.0
#define LLAMA3_HIGH_FREQ_FACTOR 4.0
#define LLAMA3_ORIG_CTX 8192.0

typedef enum {
    RA_LLAMA,
    RA_QWEN2,
    RA_QWEN3,
    RA_GPT2,
    RA_GEMMA2,
    RA_GEMMA3,
    RA_PHI3,
    RA_QWEN2MOE,
    RA_QWEN3MOE,
    RA_GPTOSS,
    RA_BERT,
    RA_NOMIC_BERT,
    RA_COUNT
} RArch;

static const char *const RA_NAMES[RA_COUNT] = {"llama",    "qwen2",   "qwen3", "gpt2",
                                               "gemma2",   "gemma3",  "phi3",  "qwen2moe",
                                               "qwen3moe", "gpt-oss", "bert",  "nomic-bert"};

/* Everything the writer borrows, freed after gguf_writer_write(). */
typedef struct {
    GGUFWriter *w;
    Rng rng;
    float std;
    DType wtype;
    const QuantOps *qops; /* NULL when wtype is F32 */
    void **bufs;
    int n_bufs, cap_bufs;
    bool oom;
} Builder;

static void *builder_keep(Builder *b, void *p) {
    if (!p) {
        b->oom = true;
        return NULL;
    }
    if (b->n_bufs == b->cap_bufs) {
        int cap = b->cap_bufs ? 2 * b->cap_bufs : 64;
        void **nb = realloc(b->bufs, (size_t)cap * sizeof *nb);
        if (!nb) {
            free(p);
            b->oom = true;
            return NULL;
        }
        b->bufs = nb;
        b->cap_bufs = cap;
    }
    b->bufs[b->n_bufs++] = p;
    return p;
}

typedef enum { INIT_WEIGHT, INIT_NORM, INIT_BIAS, INIT_VALUES } InitKind;

/* Add tensor 'name' of shape ne[0..n_dims) (innermost first). 2-D and
 * 3-D tensors whose rows are whole blocks of the builder's wtype are
 * converted to it (unless keep_f32: the MoE router, which llama.cpp keeps
 * in F32); everything else stays F32. 'values' (INIT_VALUES) are copied. */
static void builder_add3(Builder *b, const char *name, int n_dims, int64_t ne0, int64_t ne1,
                         int64_t ne2, InitKind kind, const float *values, bool keep_f32) {
    if (b->oom)
        return;
    int64_t ne[3] = {ne0, ne1, ne2};
    int64_t n = ne0 * (n_dims >= 2 ? ne1 : 1) * (n_dims == 3 ? ne2 : 1);
    float *f = builder_keep(b, malloc((size_t)n * sizeof *f));
    if (!f)
        return;
    for (int64_t i = 0; i < n; i++) {
        switch (kind) {
        case INIT_WEIGHT:
            f[i] = b->std * rng_normal(&b->rng);
            break;
        case INIT_NORM:
            f[i] = 1.0f + 0.1f * rng_normal(&b->rng);
            break;
        case INIT_BIAS:
            f[i] = b->std * rng_normal(&b->rng);
            break;
        case INIT_VALUES:
            f[i] = values[i];
            break;
        }
    }
    DType t = DTYPE_F32;
    const void *data = f;
    if (n_dims >= 2 && !keep_f32 && b->qops && ne0 % dtype_info(b->wtype)->block_size == 0) {
        uint64_t bytes = dtype_row_bytes(b->wtype, ne0) * (uint64_t)(n / ne0);
        void *q = builder_keep(b, malloc((size_t)bytes));
        if (!q)
            return;
        b->qops->quantize(f, q, n);
        t = b->wtype;
        data = q;
    }
    gguf_writer_add_tensor(b->w, name, t, n_dims, ne, data);
}

static void builder_add(Builder *b, const char *name, int n_dims, int64_t ne0, int64_t ne1,
                        InitKind kind, const float *values) {
    builder_add3(b, name, n_dims, ne0, ne1, 1, kind, values, false);
}

static void builder_add_blk3(Builder *b, int il, const char *what, int n_dims, int64_t ne0,
                             int64_t ne1, int64_t ne2, InitKind kind, bool keep_f32) {
    char name[RANDMODEL_NAME_MAX];
    int k = snprintf(name, sizeof name, "blk.%d.%s", il, what);
    ASSERT(k > 0 && (size_t)k < sizeof name);
    builder_add3(b, name, n_dims, ne0, ne1, ne2, kind, NULL, keep_f32);
}

static void builder_add_blk(Builder *b, int il, const char *what, int n_dims, int64_t ne0,
                            int64_t ne1, InitKind kind) {
    builder_add_blk3(b, il, what, n_dims, ne0, ne1, 1, kind, false);
}

/* llama.cpp's general.file_type (enum llama_ftype) for a uniform wtype. */
static uint32_t file_type_of(DType t) {
    switch (t) {
    case DTYPE_F32:
        return 0;
    case DTYPE_F16:
        return 1;
    case DTYPE_Q4_0:
        return 2;
    case DTYPE_Q4_1:
        return 3;
    case DTYPE_Q8_0:
        return 7;
    case DTYPE_Q5_0:
        return 8;
    case DTYPE_Q5_1:
        return 9;
    case DTYPE_Q2_K:
        return 10;
    case DTYPE_Q3_K:
        return 11; /* Q3_K_S */
    case DTYPE_Q4_K:
        return 14; /* Q4_K_S */
    case DTYPE_Q5_K:
        return 16; /* Q5_K_S */
    case DTYPE_Q6_K:
        return 18;
    case DTYPE_IQ4_NL: return 25;
    case DTYPE_IQ4_XS: return 30;
    case DTYPE_BF16:
        return 32;
    case DTYPE_MXFP4: return 38; /* MXFP4_MOE */
    default:
        return 0;
    }
}

/* Llama 3.1's rope frequency divisors, as convert_hf_to_gguf.py computes
 * them for rope_freqs.weight: 1 for short wavelengths, 'factor' for long
 * ones, a smooth blend in between. */
static void llama3_rope_factors(float *out, int n_rot, double base) {
    double low_wavelen = LLAMA3_ORIG_CTX / LLAMA3_LOW_FREQ_FACTOR;
    double high_wavelen = LLAMA3_ORIG_CTX / LLAMA3_HIGH_FREQ_FACTOR;
    for (int i = 0; i < n_rot / 2; i++) {
        double freq = 1.0 / pow(base, (2.0 * i) / n_rot);
        double wavelen = 2.0 * M_PI / freq;
        double f;
        if (wavelen < high_wavelen) {
            f = 1.0;
        } else if (wavelen > low_wavelen) {
            f = LLAMA3_FACTOR;
        } else {
            double smooth = (LLAMA3_ORIG_CTX / wavelen - LLAMA3_LOW_FREQ_FACTOR) /
                            (LLAMA3_HIGH_FREQ_FACTOR - LLAMA3_LOW_FREQ_FACTOR);
            f = 1.0 / ((1.0 - smooth) / LLAMA3_FACTOR + smooth);
        }
        out[i] = (float)f;
    }
}

static bool dim_ok(int v) { return v >= 1 && v <= RANDMODEL_MAX_DIM; }

static Status check_spec(const RandModelSpec *s, RArch *arch, Err *err) {
    if (!s->arch)
        return err_set(err, STATUS_INVALID, "randmodel: no architecture");
    *arch = RA_COUNT;
    for (int i = 0; i < RA_COUNT; i++)
        if (!strcmp(s->arch, RA_NAMES[i]))
            *arch = (RArch)i;
    if (*arch == RA_COUNT)
        return err_set(err, STATUS_INVALID,
                       "randmodel: unknown architecture '%s' (llama, qwen2, qwen3, gpt2, gemma2, "
                       "gemma3, phi3, qwen2moe, qwen3moe, gpt-oss, bert, nomic-bert)",
                       s->arch);
    bool moe = *arch == RA_QWEN2MOE || *arch == RA_QWEN3MOE || *arch == RA_GPTOSS;
    if (moe && s->n_expert < 1)
        return err_set(err, STATUS_INVALID, "randmodel: %s needs experts", s->arch);
    if (s->n_expert && (*arch != RA_LLAMA && !moe))
        return err_set(err, STATUS_INVALID, "randmodel: no experts for %s", s->arch);
    if (s->n_expert < 0 || s->n_expert > 256 ||
        (s->n_expert && (s->n_expert_used < 1 || s->n_expert_used > s->n_expert)) ||
        s->n_ff_exp < 0 || s->n_ff_exp > RANDMODEL_MAX_DIM || s->n_ff_shexp < 0 ||
        s->n_ff_shexp > RANDMODEL_MAX_DIM || s->n_swa < 0 || s->n_swa > RANDMODEL_MAX_DIM ||
        s->longrope_orig_ctx < 0 || s->longrope_orig_ctx > RANDMODEL_MAX_DIM)
        return err_set(err, STATUS_INVALID,
                       "randmodel: experts %d (used %d), expert ff %d/%d, window %d or LongRoPE "
                       "context %d out of range",
                       s->n_expert, s->n_expert_used, s->n_ff_exp, s->n_ff_shexp, s->n_swa,
                       s->longrope_orig_ctx);
    struct {
        const char *what;
        int v;
    } dims[] = {{"n_vocab", s->n_vocab},        {"n_embd", s->n_embd},     {"n_heads", s->n_heads},
                {"n_kv_heads", s->n_kv_heads},  {"head_dim", s->head_dim}, {"n_ff", s->n_ff},
                {"n_ctx_train", s->n_ctx_train}};
    for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++)
        if (!dim_ok(dims[i].v))
            return err_set(err, STATUS_INVALID, "randmodel: %s = %d out of range [1, %d]",
                           dims[i].what, dims[i].v, RANDMODEL_MAX_DIM);
    if (s->n_layers < 1 || s->n_layers > RANDMODEL_MAX_LAYERS)
        return err_set(err, STATUS_INVALID, "randmodel: n_layers = %d out of range [1, %d]",
                       s->n_layers, RANDMODEL_MAX_LAYERS);
    if (s->n_heads % s->n_kv_heads)
        return err_set(err, STATUS_INVALID, "randmodel: n_heads %d not a multiple of n_kv_heads %d",
                       s->n_heads, s->n_kv_heads);
    if (s->head_dim % 2)
        return err_set(err, STATUS_INVALID, "randmodel: head_dim %d must be even (rope pairs)",
                       s->head_dim);
    if ((int64_t)s->n_heads * s->head_dim > RANDMODEL_MAX_DIM)
        return err_set(err, STATUS_INVALID, "randmodel: n_heads * head_dim = %lld exceeds %d",
                       (long long)s->n_heads * s->head_dim, RANDMODEL_MAX_DIM);
    int64_t big = (int64_t)s->n_embd * (s->n_vocab > s->n_ff ? s->n_vocab : s->n_ff);
    if (big > RANDMODEL_MAX_ELEMS || (int64_t)s->n_embd * s->n_ctx_train > RANDMODEL_MAX_ELEMS)
        return err_set(err, STATUS_INVALID, "randmodel: a tensor would exceed %lld elements",
                       (long long)RANDMODEL_MAX_ELEMS);
    if (*arch == RA_GPT2) {
        if (s->n_kv_heads != s->n_heads)
            return err_set(err, STATUS_INVALID,
                           "randmodel: gpt2 needs n_kv_heads (%d) == n_heads (%d)", s->n_kv_heads,
                           s->n_heads);
        if (s->n_heads * s->head_dim != s->n_embd)
            return err_set(err, STATUS_INVALID,
                           "randmodel: gpt2 needs n_heads * head_dim (%d) == n_embd (%d)",
                           s->n_heads * s->head_dim, s->n_embd);
    }
    if ((*arch == RA_BERT || *arch == RA_NOMIC_BERT) && s->vocab)
        return err_set(err, STATUS_INVALID, "randmodel: %s writes its own WordPiece vocabulary",
                       s->arch);
    if (s->pooling_type < 0 || s->pooling_type > RANDMODEL_MAX_POOLING)
        return err_set(err, STATUS_INVALID, "randmodel: pooling_type %d out of range [0, %d]",
                       s->pooling_type, RANDMODEL_MAX_POOLING);
    if (s->rope_llama3 && *arch != RA_LLAMA)
        return err_set(err, STATUS_INVALID,
                       "randmodel: llama3 rope scaling is for arch llama only");
    const DTypeInfo *ti = dtype_info(s->wtype);
    if (!ti)
        return err_set(err, STATUS_INVALID, "randmodel: unknown weight type %d", (int)s->wtype);
    if (!(s->init_std >= 0.0f) || s->init_std > 100.0f)
        return err_set(err, STATUS_INVALID, "randmodel: init_std %g out of range [0, 100]",
                       (double)s->init_std);
    return STATUS_OK;
}

static void set_key(GGUFWriter *w, const char *arch, const char *suffix, uint32_t v) {
    char key[RANDMODEL_NAME_MAX];
    int k = snprintf(key, sizeof key, "%s.%s", arch, suffix);
    ASSERT(k > 0 && (size_t)k < sizeof key);
    gguf_writer_set_u32(w, key, v);
}

static void set_key_f32(GGUFWriter *w, const char *arch, const char *suffix, float v) {
    char key[RANDMODEL_NAME_MAX];
    int k = snprintf(key, sizeof key, "%s.%s", arch, suffix);
    ASSERT(k > 0 && (size_t)k < sizeof key);
    gguf_writer_set_f32(w, key, v);
}

/* GPT-2's byte-level alphabet: printable bytes stand for themselves, the
 * others for code points 256 + k in byte order. Writes the UTF-8 of byte
 * 'b''s stand-in to out (3 bytes at most) and returns its length. */
static int byte_char(int b, char *out) {
    int printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    int cp = b;
    if (!printable) {
        int k = 0;
        for (int i = 0; i < b; i++)
            k += !((i >= 33 && i <= 126) || (i >= 161 && i <= 172) || (i >= 174 && i <= 255));
        cp = 256 + k;
    }
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    out[0] = (char)(0xc0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3f));
    return 2;
}

/* Synthetic vocabulary. With room for it (n_vocab >= RANDMODEL_BYTE_VOCAB) a
 * real byte-level BPE vocabulary without merges, so any text tokenizes (one
 * token per byte) and decodes back:
 *   0 <|pad|>, 1 <|startoftext|> (BOS), 2 <|endoftext|> (EOS),
 *   3..258 the 256 bytes, 259 <|im_start|>, 260 <|im_end|> (so the built-in
 *   ChatML template applies), then "t<i>" fillers (phi3: 261 <|end|>, which
 *   llama.cpp's loader requires of a phi3 vocabulary).
 * Smaller vocabularies are "t<i>" with 1 = BOS and 2 = EOS. Specials are
 * control tokens (type 3). */
#define RANDMODEL_BYTE_VOCAB 261
static void write_given_vocab(Builder *b, const RandModelSpec *s) {
    const RandModelVocab *v = s->vocab;
    gguf_writer_set_str(b->w, "tokenizer.ggml.model", "gpt2");
    gguf_writer_set_str(b->w, "tokenizer.ggml.pre", v->pre ? v->pre : "gpt-2");
    gguf_writer_set_arr_str(b->w, "tokenizer.ggml.tokens", v->tokens, (uint64_t)s->n_vocab);
    gguf_writer_set_arr_i32(b->w, "tokenizer.ggml.token_type", v->types, (uint64_t)s->n_vocab);
    gguf_writer_set_arr_str(b->w, "tokenizer.ggml.merges", v->merges, (uint64_t)v->n_merges);
    gguf_writer_set_u32(b->w, "tokenizer.ggml.bos_token_id", (uint32_t)v->bos);
    gguf_writer_set_u32(b->w, "tokenizer.ggml.eos_token_id", (uint32_t)v->eos);
    if (v->eot >= 0)
        gguf_writer_set_u32(b->w, "tokenizer.ggml.eot_token_id", (uint32_t)v->eot);
}

static Status write_vocab(Builder *b, const RandModelSpec *s, Err *err) {
    if (s->vocab) {
        const RandModelVocab *v = s->vocab;
        if (!v->tokens || !v->types || (v->n_merges && !v->merges) || v->n_merges < 0 ||
            v->bos < 0 || v->bos >= s->n_vocab || v->eos < 0 || v->eos >= s->n_vocab ||
            v->eot >= s->n_vocab)
            return err_set(err, STATUS_INVALID,
                           "randmodel: given vocabulary inconsistent with n_vocab %d", s->n_vocab);
        write_given_vocab(b, s);
        return STATUS_OK;
    }
    int n = s->n_vocab;
    char **toks = builder_keep(b, calloc((size_t)n, sizeof *toks));
    int32_t *types = builder_keep(b, malloc((size_t)n * sizeof *types));
    if (!toks || !types)
        return err_set(err, STATUS_NOMEM, "randmodel: out of memory for %d tokens", n);
    static const char *const SPECIAL[] = {"<|pad|>", "<|startoftext|>", "<|endoftext|>"};
    bool bytes = n >= RANDMODEL_BYTE_VOCAB;
    uint32_t bos = n > 1 ? 1 : 0, eos = n > 2 ? 2 : 0;
    for (int i = 0; i < n; i++) {
        char buf[16];
        int k;
        types[i] = 1; /* normal */
        if (bytes && i < 3) {
            k = snprintf(buf, sizeof buf, "%s", SPECIAL[i]);
            types[i] = 3;
        } else if (bytes && i < 259) {
            k = byte_char(i - 3, buf);
            buf[k] = '\0';
        } else if (bytes && i < RANDMODEL_BYTE_VOCAB) {
            k = snprintf(buf, sizeof buf, "%s", i == 259 ? "<|im_start|>" : "<|im_end|>");
            types[i] = 3;
        } else if (bytes && i == RANDMODEL_BYTE_VOCAB && !strcmp(s->arch, "phi3")) {
            /* llama.cpp's phi3 vocabulary loader looks this one up */
            k = snprintf(buf, sizeof buf, "<|end|>");
            types[i] = 3;
        } else {
            k = snprintf(buf, sizeof buf, "t%d", i);
            if (i == (int)bos || i == (int)eos)
                types[i] = 3;
        }
        ASSERT(k > 0 && (size_t)k < sizeof buf);
        toks[i] = builder_keep(b, strdup(buf));
        if (!toks[i])
            return err_set(err, STATUS_NOMEM, "randmodel: out of memory for token %d", i);
    }
    gguf_writer_set_str(b->w, "tokenizer.ggml.model", "gpt2");
    gguf_writer_set_str(b->w, "tokenizer.ggml.pre", "gpt-2");
    gguf_writer_set_arr_str(b->w, "tokenizer.ggml.tokens", (const char *const *)toks, (uint64_t)n);
    gguf_writer_set_arr_i32(b->w, "tokenizer.ggml.token_type", types, (uint64_t)n);
    gguf_writer_set_arr_str(b->w, "tokenizer.ggml.merges", NULL, 0);
    gguf_writer_set_u32(b->w, "tokenizer.ggml.bos_token_id", bos);
    gguf_writer_set_u32(b->w, "tokenizer.ggml.eos_token_id", eos);
    if (bytes)
        gguf_writer_set_u32(b->w, "tokenizer.ggml.eot_token_id", 260);
    return STATUS_OK;
}

/* The rope-based architectures' layers (arch.h in model/ has the table). */
static void write_layers(Builder *b, const RandModelSpec *s, RArch arch) {
    int64_t E = s->n_embd, QD = (int64_t)s->n_heads * s->head_dim;
    int64_t KD = (int64_t)s->n_kv_heads * s->head_dim, F = s->n_ff;
    /* llama's experts are feed_forward_length wide (Mixtral writes no
     * expert_feed_forward_length) */
    int64_t NE = s->n_expert, FE = s->n_ff_exp && arch != RA_LLAMA ? s->n_ff_exp : F;
    int64_t FS = s->n_ff_shexp ? s->n_ff_shexp : FE;
    bool biases = arch == RA_QWEN2 || arch == RA_QWEN2MOE || arch == RA_GPTOSS;
    bool oss = arch == RA_GPTOSS;
    bool qk_norm = arch == RA_QWEN3 || arch == RA_QWEN3MOE || arch == RA_GEMMA3;
    bool gemma = arch == RA_GEMMA2 || arch == RA_GEMMA3;
    for (int il = 0; il < s->n_layers; il++) {
        builder_add_blk(b, il, "attn_norm.weight", 1, E, 1, INIT_NORM);
        if (arch == RA_PHI3 && s->fused_qkv) {
            builder_add_blk(b, il, "attn_qkv.weight", 2, E, QD + 2 * KD, INIT_WEIGHT);
        } else {
            builder_add_blk(b, il, "attn_q.weight", 2, E, QD, INIT_WEIGHT);
            builder_add_blk(b, il, "attn_k.weight", 2, E, KD, INIT_WEIGHT);
            builder_add_blk(b, il, "attn_v.weight", 2, E, KD, INIT_WEIGHT);
        }
        if (biases) {
            builder_add_blk(b, il, "attn_q.bias", 1, QD, 1, INIT_BIAS);
            builder_add_blk(b, il, "attn_k.bias", 1, KD, 1, INIT_BIAS);
            builder_add_blk(b, il, "attn_v.bias", 1, KD, 1, INIT_BIAS);
        }
        if (qk_norm) {
            builder_add_blk(b, il, "attn_q_norm.weight", 1, s->head_dim, 1, INIT_NORM);
            builder_add_blk(b, il, "attn_k_norm.weight", 1, s->head_dim, 1, INIT_NORM);
        }
        builder_add_blk(b, il, "attn_output.weight", 2, QD, E, INIT_WEIGHT);
        if (oss) {
            builder_add_blk(b, il, "attn_output.bias", 1, E, 1, INIT_BIAS);
            builder_add_blk(b, il, "attn_sinks.weight", 1, s->n_heads, 1, INIT_NORM);
        }
        /* gpt-oss's FFN pre-norm is named post_attention_norm */
        if (gemma || oss)
            builder_add_blk(b, il, "post_attention_norm.weight", 1, E, 1, INIT_NORM);
        if (!oss)
            builder_add_blk(b, il, "ffn_norm.weight", 1, E, 1, INIT_NORM);
        if (NE) {
            builder_add_blk3(b, il, "ffn_gate_inp.weight", 2, E, NE, 1, INIT_WEIGHT, true);
            builder_add_blk3(b, il, "ffn_gate_exps.weight", 3, E, FE, NE, INIT_WEIGHT, false);
            builder_add_blk3(b, il, "ffn_up_exps.weight", 3, E, FE, NE, INIT_WEIGHT, false);
            builder_add_blk3(b, il, "ffn_down_exps.weight", 3, FE, E, NE, INIT_WEIGHT, false);
            if (oss) {
                builder_add_blk(b, il, "ffn_gate_inp.bias", 1, NE, 1, INIT_BIAS);
                builder_add_blk3(b, il, "ffn_gate_exps.bias", 2, FE, NE, 1, INIT_BIAS, true);
                builder_add_blk3(b, il, "ffn_up_exps.bias", 2, FE, NE, 1, INIT_BIAS, true);
                builder_add_blk3(b, il, "ffn_down_exps.bias", 2, E, NE, 1, INIT_BIAS, true);
            }
            if (arch == RA_QWEN2MOE) {
                builder_add_blk(b, il, "ffn_gate_inp_shexp.weight", 1, E, 1, INIT_WEIGHT);
                builder_add_blk(b, il, "ffn_gate_shexp.weight", 2, E, FS, INIT_WEIGHT);
                builder_add_blk(b, il, "ffn_up_shexp.weight", 2, E, FS, INIT_WEIGHT);
                builder_add_blk(b, il, "ffn_down_shexp.weight", 2, FS, E, INIT_WEIGHT);
            }
        } else if (arch == RA_PHI3) {
            builder_add_blk(b, il, "ffn_up.weight", 2, E, 2 * F, INIT_WEIGHT);
            builder_add_blk(b, il, "ffn_down.weight", 2, F, E, INIT_WEIGHT);
        } else {
            builder_add_blk(b, il, "ffn_gate.weight", 2, E, F, INIT_WEIGHT);
            builder_add_blk(b, il, "ffn_up.weight", 2, E, F, INIT_WEIGHT);
            builder_add_blk(b, il, "ffn_down.weight", 2, F, E, INIT_WEIGHT);
        }
        if (gemma)
            builder_add_blk(b, il, "post_ffw_norm.weight", 1, E, 1, INIT_NORM);
    }
}

/* The keys of the newer architectures' extras. */
static void write_ext_keys(Builder *b, const RandModelSpec *s, RArch arch) {
    const char *a = s->arch;
    bool gemma = arch == RA_GEMMA2 || arch == RA_GEMMA3;
    if (gemma || arch == RA_GPTOSS || (arch == RA_PHI3 && s->n_swa))
        set_key(b->w, a, "attention.sliding_window", (uint32_t)(s->n_swa ? s->n_swa : 4));
    if (arch == RA_GEMMA2) {
        set_key_f32(b->w, a, "attn_logit_softcapping",
                    s->attn_softcap > 0.0f ? s->attn_softcap : 50.0f);
        set_key_f32(b->w, a, "final_logit_softcapping",
                    s->final_softcap > 0.0f ? s->final_softcap : 30.0f);
    }
    if (arch == RA_PHI3 && s->longrope_orig_ctx) {
        /* the factor convert_hf_to_gguf.py derives for Phi-3's LongRoPE */
        double scale = (double)s->n_ctx_train / s->longrope_orig_ctx;
        double f = scale <= 1.0 ? 1.0 : sqrt(1.0 + log(scale) / log((double)s->longrope_orig_ctx));
        set_key(b->w, a, "rope.scaling.original_context_length", (uint32_t)s->longrope_orig_ctx);
        set_key_f32(b->w, a, "rope.scaling.attn_factor", (float)f);
    }
    if (s->rope_scale_linear > 0.0f) {
        char key[RANDMODEL_NAME_MAX];
        snprintf(key, sizeof key, "%s.rope.scaling.type", a);
        gguf_writer_set_str(b->w, key, "linear");
        set_key_f32(b->w, a, "rope.scaling.factor", s->rope_scale_linear);
    }
    if (s->yarn_factor > 0.0f) {
        char key[RANDMODEL_NAME_MAX];
        snprintf(key, sizeof key, "%s.rope.scaling.type", a);
        gguf_writer_set_str(b->w, key, "yarn");
        set_key_f32(b->w, a, "rope.scaling.factor", s->yarn_factor);
        set_key(b->w, a, "rope.scaling.original_context_length",
                (uint32_t)(s->yarn_orig_ctx ? s->yarn_orig_ctx : s->n_ctx_train / 4));
    }
    if (s->n_expert) {
        set_key(b->w, a, "expert_count", (uint32_t)s->n_expert);
        set_key(b->w, a, "expert_used_count", (uint32_t)s->n_expert_used);
        if (arch != RA_LLAMA)
            set_key(b->w, a, "expert_feed_forward_length",
                    (uint32_t)(s->n_ff_exp ? s->n_ff_exp : s->n_ff));
        if (arch == RA_QWEN2MOE)
            set_key(
                b->w, a, "expert_shared_feed_forward_length",
                (uint32_t)(s->n_ff_shexp ? s->n_ff_shexp : (s->n_ff_exp ? s->n_ff_exp : s->n_ff)));
    }
}

/* Phi-3's LongRoPE divisors: n long ones rising from 1 to 4, short ones to 1.25. */
static void write_longrope(Builder *b, const RandModelSpec *s) {
    int n = s->head_dim / 2;
    float *lf = builder_keep(b, malloc((size_t)n * sizeof *lf));
    float *sf = builder_keep(b, malloc((size_t)n * sizeof *sf));
    if (!lf || !sf)
        return;
    for (int i = 0; i < n; i++) {
        float t = n > 1 ? (float)i / (float)(n - 1) : 0.0f;
        lf[i] = 1.0f + 3.0f * t;
        sf[i] = 1.0f + 0.25f * t;
    }
    builder_add(b, "rope_factors_long.weight", 1, n, 1, INIT_VALUES, lf);
    builder_add(b, "rope_factors_short.weight", 1, n, 1, INIT_VALUES, sf);
}

static void write_layers_gpt2(Builder *b, const RandModelSpec *s) {
    int64_t E = s->n_embd, F = s->n_ff;
    for (int il = 0; il < s->n_layers; il++) {
        builder_add_blk(b, il, "attn_norm.weight", 1, E, 1, INIT_NORM);
        builder_add_blk(b, il, "attn_norm.bias", 1, E, 1, INIT_BIAS);
        builder_add_blk(b, il, "attn_qkv.weight", 2, E, 3 * E, INIT_WEIGHT);
        builder_add_blk(b, il, "attn_qkv.bias", 1, 3 * E, 1, INIT_BIAS);
        builder_add_blk(b, il, "attn_output.weight", 2, E, E, INIT_WEIGHT);
        builder_add_blk(b, il, "attn_output.bias", 1, E, 1, INIT_BIAS);
        builder_add_blk(b, il, "ffn_norm.weight", 1, E, 1, INIT_NORM);
        builder_add_blk(b, il, "ffn_norm.bias", 1, E, 1, INIT_BIAS);
        builder_add_blk(b, il, "ffn_up.weight", 2, E, F, INIT_WEIGHT);
        builder_add_blk(b, il, "ffn_up.bias", 1, F, 1, INIT_BIAS);
        builder_add_blk(b, il, "ffn_down.weight", 2, F, E, INIT_WEIGHT);
        builder_add_blk(b, il, "ffn_down.bias", 1, E, 1, INIT_BIAS);
    }
}

/* A small WordPiece vocabulary written as llama.cpp's converter writes
 * BERT's (convert_hf_to_gguf.py: word-initial pieces get the U+2581
 * prefix, "##" continuations lose it, bracketed specials stay as they are):
 *   0 [PAD] 1 [UNK] 2 [CLS] 3 [SEP] 4 [MASK] (control), then for every
 *   character of the alphabet below a word-initial and (letters and
 *   digits) a continuation piece, some whole words and suffixes, then
 *   "[unused<i>]" fillers. 'cased' adds capitals (A-Z and some words), as
 *   a cased vocabulary has them; the tokenizer then keeps case. */
static const char *const WP_ALPHA[] = {
    "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n", "o", "p", "q", "r", "s",
    "t", "u", "v", "w", "x", "y", "z", "0", "1", "2", "3", "4", "5", "6", "7", "8", "9",
    /* letters without a decomposition (accent stripping keeps them) */
    "\xc3\x9f", "\xc3\xb8", "\xc3\xa6", "\xc5\x82", "\xc4\xb1",
    /* Greek and Cyrillic lower case */
    "\xce\xb1", "\xce\xb2", "\xce\xb3", "\xce\xb4", "\xce\xb5", "\xce\xbb", "\xce\xbf", "\xcf\x83",
    "\xcf\x82", "\xd0\xb0", "\xd0\xb1", "\xd0\xb2", "\xd0\xbf", "\xd1\x80", "\xd0\xb8", "\xd0\xb5",
    "\xd1\x82", "\xd0\xbe", "\xd0\xbc", "\xd0\xbd", NULL};
#define WP_U "\xe2\x96\x81" /* U+2581, the word-initial mark */
static const char *const WP_WORDS[] = {WP_U "the",
                                       WP_U "hello",
                                       WP_U "world",
                                       WP_U "play",
                                       WP_U "token",
                                       WP_U "un",
                                       WP_U "cafe",
                                       WP_U "naive",
                                       WP_U "embed",
                                       WP_U "model",
                                       "ing",
                                       "ed",
                                       "er",
                                       "iz",
                                       "ation",
                                       "ly",
                                       "ding",
                                       "able",
                                       WP_U "\xe7\x9a\x84",
                                       WP_U "\xe4\xb8\x80",
                                       WP_U "\xe6\x98\xaf",
                                       WP_U "\xe4\xb8\xad",
                                       WP_U "\xe5\x9b\xbd",
                                       WP_U "\xe4\xba\xba",
                                       WP_U "\xe6\x97\xa5",
                                       WP_U "\xe6\x9c\xac",
                                       WP_U "\xe3\x81\x82",
                                       WP_U "\xe3\x81\x97",
                                       WP_U "\xe1\x84\x92",
                                       "\xe1\x85\xa1",
                                       "\xe1\x86\xab",
                                       NULL};
static const char *const WP_CASED[] = {WP_U "The",      WP_U "Hello", WP_U "World", WP_U "\xc3\x89",
                                       WP_U "\xc3\xa9", "\xc3\xa9",   NULL};

static Status write_wordpiece(Builder *b, const RandModelSpec *s, Err *err) {
    int n = s->n_vocab, k = 0;
    char **toks = builder_keep(b, calloc((size_t)n, sizeof *toks));
    int32_t *types = builder_keep(b, malloc((size_t)n * sizeof *types));
    if (!toks || !types)
        return err_set(err, STATUS_NOMEM, "randmodel: out of memory for %d tokens", n);
    char buf[64];
#define WP_ADD(str, ty)                                                                            \
    do {                                                                                           \
        if (k < n) {                                                                               \
            toks[k] = builder_keep(b, strdup(str));                                                \
            types[k++] = (ty);                                                                     \
        } else {                                                                                   \
            k++;                                                                                   \
        }                                                                                          \
    } while (0)
    static const char *const SPECIAL[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
    for (int i = 0; i < 5; i++)
        WP_ADD(SPECIAL[i], 3);
    for (int i = 0; WP_ALPHA[i]; i++) {
        snprintf(buf, sizeof buf, "\xe2\x96\x81%s", WP_ALPHA[i]);
        WP_ADD(buf, 1);
        WP_ADD(WP_ALPHA[i], 1);
    }
    for (int c = 0x21; c < 0x7f; c++) /* ASCII punctuation and symbols: whole words */
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))) {
            snprintf(buf, sizeof buf, "\xe2\x96\x81%c", c);
            WP_ADD(buf, 1);
        }
    for (int i = 0; WP_WORDS[i]; i++)
        WP_ADD(WP_WORDS[i], 1);
    if (s->cased) {
        for (int c = 'A'; c <= 'Z'; c++) {
            snprintf(buf, sizeof buf, "\xe2\x96\x81%c", c);
            WP_ADD(buf, 1);
            snprintf(buf, sizeof buf, "%c", c);
            WP_ADD(buf, 1);
        }
        for (int i = 0; WP_CASED[i]; i++)
            WP_ADD(WP_CASED[i], 1);
    }
    if (k > n)
        return err_set(err, STATUS_INVALID,
                       "randmodel: a WordPiece vocabulary needs n_vocab >= %d (got %d)", k, n);
    for (int i = 0; k < n; i++) {
        snprintf(buf, sizeof buf, "[unused%d]", i);
        WP_ADD(buf, 1);
    }
#undef WP_ADD
    for (int i = 0; i < n; i++)
        if (!toks[i])
            return err_set(err, STATUS_NOMEM, "randmodel: out of memory for token %d", i);
    gguf_writer_set_str(b->w, "tokenizer.ggml.model", "bert");
    gguf_writer_set_arr_str(b->w, "tokenizer.ggml.tokens", (const char *const *)toks, (uint64_t)n);
    gguf_writer_set_arr_i32(b->w, "tokenizer.ggml.token_type", types, (uint64_t)n);
    gguf_writer_set_u32(b->w, "tokenizer.ggml.token_type_count", RANDMODEL_TOKEN_TYPES);
    gguf_writer_set_u32(b->w, "tokenizer.ggml.padding_token_id", 0);
    gguf_writer_set_u32(b->w, "tokenizer.ggml.unknown_token_id", 1);
    gguf_writer_set_u32(b->w, "tokenizer.ggml.cls_token_id", 2);
    gguf_writer_set_u32(b->w, "tokenizer.ggml.seperator_token_id", 3);
    gguf_writer_set_u32(b->w, "tokenizer.ggml.mask_token_id", 4);
    return STATUS_OK;
}

/* bert / nomic-bert (arch.h): the keys and tensors llama.cpp's converter
 * writes for BertModel / NomicBertModel. */
static void write_encoder(Builder *b, const RandModelSpec *s, RArch arch) {
    const char *a = s->arch;
    int64_t E = s->n_embd, QD = (int64_t)s->n_heads * s->head_dim;
    int64_t KD = (int64_t)s->n_kv_heads * s->head_dim, F = s->n_ff;
    bool bert = arch == RA_BERT;
    set_key_f32(b->w, a, "attention.layer_norm_epsilon", 1e-12f);
    char key[RANDMODEL_NAME_MAX];
    snprintf(key, sizeof key, "%s.attention.causal", a);
    gguf_writer_set_bool(b->w, key, false);
    set_key(b->w, a, "pooling_type", (uint32_t)s->pooling_type);
    if (!bert) {
        set_key_f32(b->w, a, "rope.freq_base",
                    s->rope_freq_base > 0.0f ? s->rope_freq_base : 1000.0f);
    }
    builder_add(b, "token_embd.weight", 2, E, s->n_vocab, INIT_WEIGHT, NULL);
    builder_add(b, "token_types.weight", 2, E, RANDMODEL_TOKEN_TYPES, INIT_WEIGHT, NULL);
    if (bert)
        builder_add(b, "position_embd.weight", 2, E, s->n_ctx_train, INIT_WEIGHT, NULL);
    builder_add(b, "token_embd_norm.weight", 1, E, 1, INIT_NORM, NULL);
    builder_add(b, "token_embd_norm.bias", 1, E, 1, INIT_BIAS, NULL);
    for (int il = 0; il < s->n_layers; il++) {
        if (bert && !s->fused_qkv) {
            builder_add_blk(b, il, "attn_q.weight", 2, E, QD, INIT_WEIGHT);
            builder_add_blk(b, il, "attn_q.bias", 1, QD, 1, INIT_BIAS);
            builder_add_blk(b, il, "attn_k.weight", 2, E, KD, INIT_WEIGHT);
            builder_add_blk(b, il, "attn_k.bias", 1, KD, 1, INIT_BIAS);
            builder_add_blk(b, il, "attn_v.weight", 2, E, KD, INIT_WEIGHT);
            builder_add_blk(b, il, "attn_v.bias", 1, KD, 1, INIT_BIAS);
        } else {
            builder_add_blk(b, il, "attn_qkv.weight", 2, E, QD + 2 * KD, INIT_WEIGHT);
            if (bert)
                builder_add_blk(b, il, "attn_qkv.bias", 1, QD + 2 * KD, 1, INIT_BIAS);
        }
        builder_add_blk(b, il, "attn_output.weight", 2, QD, E, INIT_WEIGHT);
        if (bert)
            builder_add_blk(b, il, "attn_output.bias", 1, E, 1, INIT_BIAS);
        builder_add_blk(b, il, "attn_output_norm.weight", 1, E, 1, INIT_NORM);
        builder_add_blk(b, il, "attn_output_norm.bias", 1, E, 1, INIT_BIAS);
        if (!bert)
            builder_add_blk(b, il, "ffn_gate.weight", 2, E, F, INIT_WEIGHT);
        builder_add_blk(b, il, "ffn_up.weight", 2, E, F, INIT_WEIGHT);
        if (bert)
            builder_add_blk(b, il, "ffn_up.bias", 1, F, 1, INIT_BIAS);
        builder_add_blk(b, il, "ffn_down.weight", 2, F, E, INIT_WEIGHT);
        if (bert)
            builder_add_blk(b, il, "ffn_down.bias", 1, E, 1, INIT_BIAS);
        builder_add_blk(b, il, "layer_output_norm.weight", 1, E, 1, INIT_NORM);
        builder_add_blk(b, il, "layer_output_norm.bias", 1, E, 1, INIT_BIAS);
    }
}

Status randmodel_write(const char *path, const RandModelSpec *s, Err *err) {
    RArch arch = RA_LLAMA;
    Status st = check_spec(s, &arch, err);
    if (st != STATUS_OK)
        return st;
    Builder b = {0};
    b.wtype = s->wtype;
    b.std = s->init_std > 0.0f ? s->init_std : 0.02f;
    if (s->wtype != DTYPE_F32) {
        b.qops = quant_ops(s->wtype);
        if (!b.qops || !b.qops->quantize)
            return err_set(err, STATUS_UNSUPPORTED, "randmodel: no quantize kernel for type %s",
                           dtype_info(s->wtype)->name);
    }
    rng_seed(&b.rng, s->seed);
    b.w = gguf_writer_new();
    if (!b.w)
        return err_set(err, STATUS_NOMEM, "randmodel: out of memory for the writer");

    const char *a = s->arch;
    char name[RANDMODEL_NAME_MAX];
    int k = snprintf(name, sizeof name, "randmodel-%s", a);
    ASSERT(k > 0 && (size_t)k < sizeof name);
    gguf_writer_set_str(b.w, "general.architecture", a);
    gguf_writer_set_str(b.w, "general.name", name);
    set_key(b.w, a, "context_length", (uint32_t)s->n_ctx_train);
    set_key(b.w, a, "embedding_length", (uint32_t)s->n_embd);
    set_key(b.w, a, "block_count", (uint32_t)s->n_layers);
    set_key(b.w, a, "feed_forward_length", (uint32_t)s->n_ff);
    set_key(b.w, a, "attention.head_count", (uint32_t)s->n_heads);
    if (arch == RA_BERT || arch == RA_NOMIC_BERT) {
        if (s->n_kv_heads != s->n_heads)
            set_key(b.w, a, "attention.head_count_kv", (uint32_t)s->n_kv_heads);
        if (s->n_heads * s->head_dim != s->n_embd)
            set_key(b.w, a, "attention.key_length", (uint32_t)s->head_dim);
        gguf_writer_set_u32(b.w, "general.file_type", file_type_of(s->wtype));
        if ((st = write_wordpiece(&b, s, err)) == STATUS_OK) {
            write_encoder(&b, s, arch);
            goto write;
        }
        goto done;
    }
    set_key(b.w, a, "attention.head_count_kv", (uint32_t)s->n_kv_heads);
    if (arch == RA_GPT2) {
        set_key_f32(b.w, a, "attention.layer_norm_epsilon", 1e-5f);
    } else {
        set_key_f32(b.w, a, "attention.layer_norm_rms_epsilon", arch == RA_LLAMA ? 1e-5f : 1e-6f);
        float base = s->rope_freq_base > 0.0f ? s->rope_freq_base : 10000.0f;
        set_key_f32(b.w, a, "rope.freq_base", base);
        set_key(b.w, a, "rope.dimension_count", (uint32_t)s->head_dim);
        /* llama.cpp defaults head_dim to n_embd / n_head; say it when it differs
         * (and always for qwen3, whose converter writes it). */
        if (arch == RA_QWEN3 || arch == RA_QWEN3MOE || arch == RA_GEMMA2 || arch == RA_GEMMA3 ||
            s->n_heads * s->head_dim != s->n_embd) {
            set_key(b.w, a, "attention.key_length", (uint32_t)s->head_dim);
            set_key(b.w, a, "attention.value_length", (uint32_t)s->head_dim);
        }
    }
    write_ext_keys(&b, s, arch);
    gguf_writer_set_u32(b.w, "general.file_type", file_type_of(s->wtype));
    st = write_vocab(&b, s, err);
    if (st != STATUS_OK)
        goto done;

    int64_t E = s->n_embd;
    builder_add(&b, "token_embd.weight", 2, E, s->n_vocab, INIT_WEIGHT, NULL);
    if (arch == RA_GPT2)
        builder_add(&b, "position_embd.weight", 2, E, s->n_ctx_train, INIT_WEIGHT, NULL);
    if (s->rope_llama3) {
        float *factors = builder_keep(&b, malloc((size_t)(s->head_dim / 2) * sizeof *factors));
        if (factors) {
            float base = s->rope_freq_base > 0.0f ? s->rope_freq_base : 10000.0f;
            llama3_rope_factors(factors, s->head_dim, base);
            builder_add(&b, "rope_freqs.weight", 1, s->head_dim / 2, 1, INIT_VALUES, factors);
        }
    }
    if (arch == RA_PHI3 && s->longrope_orig_ctx)
        write_longrope(&b, s);
    if (arch == RA_GPT2)
        write_layers_gpt2(&b, s);
    else
        write_layers(&b, s, arch);
    builder_add(&b, "output_norm.weight", 1, E, 1, INIT_NORM, NULL);
    if (arch == RA_GPT2)
        builder_add(&b, "output_norm.bias", 1, E, 1, INIT_BIAS, NULL);
    if (!s->tied)
        builder_add(&b, "output.weight", 2, E, s->n_vocab, INIT_WEIGHT, NULL);

write:
    if (b.oom) {
        st = err_set(err, STATUS_NOMEM, "randmodel: out of memory for the weights");
        goto done;
    }
    st = gguf_writer_write(b.w, path, err);
done:
    gguf_writer_free(b.w);
    for (int i = 0; i < b.n_bufs; i++)
        free(b.bufs[i]);
    free(b.bufs);
    return st;
}
