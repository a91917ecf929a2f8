/* randmodel.h - writes small random models of each architecture as GGUF.
 *
 * For tests, fuzz seeds and `make run` before a real model exists. The
 * encoders (bert: q/k/v with biases or --fused-qkv; nomic-bert: fused qkv,
 * no biases, rope) get a small WordPiece vocabulary (tokenizer.ggml.model
 * "bert", written as llama.cpp's converter writes BERT's). The file
 * has exactly the tensor names, shapes and metadata keys llama.cpp's
 * converters write for the architecture (src/llama-arch.cpp), plus a
 * synthetic vocabulary (or the caller's, RandModelVocab): from 261 tokens up a working byte-level
 * BPE (one token per byte, ChatML specials; see write_vocab in randmodel.c), below that placeholder
 * tokens "t<i>". Weights are drawn from a seeded normal distribution with scale 'init_std' (norm
 * weights around 1, biases small), stored as F32 and then converted to 'wtype' for every 2-D weight
 * matrix whose row length is a multiple of the type's block size (others
 * stay F32, as llama.cpp's fallbacks keep them in a wider type); token_embd
 * and output follow 'wtype' too. 1-D tensors (norms, biases) stay F32. */
#ifndef CGPT_MODEL_RANDMODEL_H
#define CGPT_MODEL_RANDMODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "core/err.h"
#include "tensor/dtype.h"

/* A real vocabulary for the model instead of the synthetic one (a BPE
 * written as tokenizer.ggml.model "gpt2"): n_vocab tokens with their
 * types, merges in rank order, special ids. Borrowed. */
typedef struct {
    const char *const *tokens; /* RandModelSpec.n_vocab of them */
    const int32_t *types;
    const char *const *merges;
    int n_merges;
    const char *pre;   /* tokenizer.ggml.pre */
    int bos, eos, eot; /* eot < 0: not written */
} RandModelVocab;

typedef struct {
    const char *arch; /* "llama", "qwen2", "qwen3", "gpt2", "gemma2", "gemma3", "phi3",
                         "qwen2moe", "qwen3moe", "gpt-oss", "bert", "nomic-bert" */
    int n_vocab;
    int n_embd;
    int n_layers;
    int n_heads;
    int n_kv_heads; /* gpt2: must equal n_heads */
    int head_dim;   /* n_embd need not equal n_heads * head_dim (qwen3 allows it) */
    int n_ff;
    int n_ctx_train;
    float rope_freq_base;
    bool rope_llama3; /* write llama3 rope-scaling keys + rope_freqs.weight (llama) */
    bool tied;        /* omit output.weight */
    DType wtype;      /* type of the 2-D weight matrices */
    uint64_t seed;
    float init_std;              /* 0: 0.02 */
    const RandModelVocab *vocab; /* NULL: the synthetic vocabulary */
    /* the newer architectures' extras (0 / false: the default noted) */
    int n_expert, n_expert_used; /* experts: llama (Mixtral), qwen2moe, qwen3moe need them */
    int n_ff_exp;                /* each expert's hidden size; 0: n_ff */
    int n_ff_shexp;              /* qwen2moe's shared expert; 0: n_ff_exp */
    int n_swa;                   /* sliding window: gemma2/3 (0: 4), phi3 (0: none) */
    float attn_softcap;          /* gemma2; 0: 50 */
    float final_softcap;         /* gemma2; 0: 30 */
    bool fused_qkv;              /* phi3: attn_qkv instead of attn_q/k/v */
    int longrope_orig_ctx;       /* phi3: > 0 writes rope_factors_long/_short, this
                                    original context and an attention factor */
    float rope_scale_linear;     /* > 0: rope.scaling.type linear with this factor */
    float yarn_factor;           /* gpt-oss: > 0 writes YaRN scaling with this factor */
    int yarn_orig_ctx;           /* and this original context (0: n_ctx_train / 4) */
    /* the encoders (bert, nomic-bert): a WordPiece vocabulary of their own
     * (randmodel.c; n_vocab >= ~210, ~270 cased), token_types of 2 rows */
    int pooling_type; /* <arch>.pooling_type, written as is (0 none, 1 mean, 2 cls, 3 last) */
    bool cased;       /* capitals in the vocabulary: the tokenizer keeps case */
} RandModelSpec;

/* Write a random model to 'path'. STATUS_INVALID for an inconsistent spec. */
Status randmodel_write(const char *path, const RandModelSpec *spec, Err *err);

#endif
