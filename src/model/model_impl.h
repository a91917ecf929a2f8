/* model_impl.h - the Model's insides, shared by model.c (load, the decoder
 * forward pass) and encoder.c (the bidirectional encoders' forward pass and
 * the embedding API). Not a public header: callers use model/model.h. */
#ifndef CGPT_MODEL_MODEL_IMPL_H
#define CGPT_MODEL_MODEL_IMPL_H

#include "core/tpool.h"
#include "model/arch.h"
#include "model/kvcache.h"
#include "model/model.h"
#include "tensor/matmul.h"

/* A weight matrix in the mapping: N rows of K elements of 'type', and the
 * same matrix prepared for matmul (mw: repacked or borrowing 'data'). */
typedef struct {
    const void *data;
    DType type;
    int64_t n_rows, n_cols;
    MatmulWeight mw;
} Weight;

typedef struct {
    const float *attn_norm, *attn_norm_b;        /* (C) */
    Weight wq, wk, wv, wqkv;                     /* (QD, C) (KD, C) (KD, C) (QD + 2KD, C) */
    const float *bq, *bk, *bv, *bqkv;            /* (QD) (KD) (KD) (QD + 2KD) */
    const float *q_norm, *k_norm;                /* (HD) */
    Weight wo;                                   /* (C, QD) */
    const float *bo;                             /* (C) */
    const float *ffn_norm, *ffn_norm_b;          /* (C) */
    Weight gate, up, down;                       /* (F, C) (F or 2F, C) (C, F) */
    const float *bgate, *bup, *bdown;            /* (F) (F) (C) */
    const float *attn_post_norm, *ffn_post_norm; /* (C), gemma */
    int window;                                  /* sliding window (0: none) */
    bool rope_local;                             /* rotated by cs_local */
    /* a mixture of experts instead of gate/up/down: the router (E, C) and
     * each expert's slices of the 3-D tensors, E of each (Fe, C) (Fe, C) (C, Fe) */
    Weight gate_inp;
    Weight *gate_exps, *up_exps, *down_exps;
    const float *gate_inp_shexp; /* (C) */
    const float *sinks;          /* (NH) gpt-oss */
    /* gpt-oss's biases: router (E), experts (E, Fe) (E, Fe) (E, C) */
    const float *gate_inp_b, *gate_exps_b, *up_exps_b, *down_exps_b;
    Weight gate_shexp, up_shexp, down_shexp; /* (Fs, C) (Fs, C) (C, Fs) */
    /* encoders: the post-norms after the attention and FFN residuals */
    const float *attn_out_norm, *attn_out_norm_b;   /* (C) */
    const float *layer_out_norm, *layer_out_norm_b; /* (C) */
} Layer;

struct Model {
    GGUF g;      /* the file, or a split model's first part (all its metadata) */
    GGUF *parts; /* a split model's other parts (n_parts - 1 of them) */
    int n_parts; /* 1 for one file */
    ModelConfig cfg;
    ModelParams params;
    const ArchInfo *ai;

    Weight tok_embd;                     /* (V, C) */
    Weight pos_embd;                     /* (n_ctx_train, C), gpt2 */
    Weight output;                       /* (V, C): output.weight or token_embd */
    const float *out_norm, *out_norm_b;  /* (C) */
    const float *rope_freqs;             /* (n_rot/2) or NULL (phi3: long or short, by n_ctx) */
    const float *rope_long, *rope_short; /* (n_rot/2), phi3 */
    bool fused_qkv;                      /* attn_qkv */
    Layer *layers;                       /* (L) */
    Weight *exps;                        /* (L, 3, E) the expert slices */
    /* encoders: segment embeddings (row 0 is added: one segment) and the
     * embedding LayerNorm */
    Weight tok_types;                   /* (n_token_types, C) */
    const float *tok_norm, *tok_norm_b; /* (C) */

    TPool *tp;
    KVCache kv;

    /* scratch, sized for n_batch rows at load */
    float *x;        /* (B, C) residual stream */
    float *xb;       /* (B, C) normed input / projection output */
    float *q;        /* (B, QD) */
    float *k, *v;    /* (B, KD) */
    float *qkv;      /* (B, QD + 2KD), fused-qkv architectures only */
    float *att;      /* (B, QD) attention output */
    float *hb, *hb2; /* (B, F) */
    float *cs;       /* (B, n_rot) rope cos/sin per row */
    float *cs_local; /* (B, n_rot) the sliding layers' (gemma3), or NULL */
    float *ext_row;  /* (n_threads, 2 HD) attn_ext's row scratch */
    /* mixture of experts: router logits, each row's experts and weights,
     * the rows grouped by expert (exp_off[e]..exp_off[e+1] into exp_row /
     * exp_w), gathered inputs and outputs, the branch's sum */
    float *router;        /* (B, E) */
    int32_t *topk_id;     /* (B, K) */
    float *topk_w;        /* (B, K) */
    int32_t *exp_off;     /* (E + 1) */
    int32_t *exp_row;     /* (B K) */
    float *exp_w;         /* (B K) */
    float *moe_x, *moe_y; /* (B, C) */
    float *moe_out;       /* (B, C) */
    float *scores;        /* (n_threads, OPS_ATTN_MAX_ROWS * NH / KVH, n_ctx) attention weights */
    int32_t *tiles;       /* (B + 1) first row of each attention tile, then B (encoders: each
                             sequence's first row) */
    int n_tiles;          /* of this model_forward's batch (attn_tiles) */
    long attn_cost;       /* positions its heads attend, in all */
    void *mm_scratch;
    void *wpack;            /* the repacked matrices (prepare_weights), or NULL */
    int32_t *row_seq_first; /* (n_seq_max) first position in this batch, -1 if absent */
    int32_t *row_seq_last;  /* (n_seq_max) */
    int32_t *touched;       /* (B) sequence ids in this batch (encoders: positions) */
    BatchRow *embed_rows;   /* (B) model_embed's rows of a decoder */
};

/* outs = x . W^T (+ bias) for up to 3 weights of one input (w1/w2 NULL when
 * absent), after prep per row (may be NULL); on the model's pool and
 * matmul scratch. */
void model_matmul3(Model *m, const float *x, int M, const MatmulPrep *prep, float *o0,
                   const Weight *w0, const float *b0, float *o1, const Weight *w1, const float *b1,
                   float *o2, const Weight *w2, const float *b2);

/* model_forward_hidden without a copy: the rows that ask come back normed
 * in the model's scratch, *hidden (n_out, C), valid until the next call. */
Status model_forward_hidden_xb(Model *m, const BatchRow *rows, int n_rows, const float **hidden,
                               Err *err);

/* encoder.c: the forward pass of an encoder over 'n_seqs' whole sequences
 * packed one after another (tokens valid, lens >= 1, their sum <= n_batch;
 * checked by the caller), each sequence's positions 0..len-1, each pooled
 * by 'pool' into out (n_seqs, C). */
void encoder_forward(Model *m, const int32_t *tokens, const int32_t *lens, int n_seqs,
                     ModelPooling pool, float *out);

#endif
