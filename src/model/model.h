/* model.h - a transformer loaded from GGUF, run over batches of rows.
 *
 * Architectures (llama.cpp names and conventions; model/arch.h): "llama"
 * (Llama 2/3, Mistral, TinyLlama, SmolLM, Mixtral), "qwen2", "qwen3", "gpt2",
 * "gemma2", "gemma3", "phi3", "qwen2moe", "qwen3moe", "gpt-oss"; the encoders "bert" and
 * "nomic-bert" (embeddings only: model_embed). Weights stay in the
 * file's mapping (any supported DType); the KV cache and all scratch buffers
 * are allocated once in model_load() from ModelParams, never per token.
 *
 * The KV cache is a pool of fixed-size blocks (kv_block_size positions each);
 * every sequence id in [0, n_seq_max) has a block table mapping its positions
 * to blocks. Blocks are taken from the pool as a sequence grows and returned
 * by model_seq_free(). */
#ifndef CGPT_MODEL_MODEL_H
#define CGPT_MODEL_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "core/err.h"
#include "gguf/gguf.h"
#include "model/arch.h" /* Arch */
#include "model/kvcache.h"
#include "tensor/ops.h" /* RopeType */

/* How model_embed() pools a sequence's final hidden rows into one vector.
 * The numbers are GGUF's <arch>.pooling_type values (llama.cpp's
 * LLAMA_POOLING_TYPE_*), where 0 (none) means per-token rows, which
 * model_embed pools as MEAN. */
typedef enum {
    MODEL_POOL_DEFAULT = 0, /* in ModelEmbedOpts: the model's (ModelConfig.pooling) */
    MODEL_POOL_MEAN = 1,    /* the mean of the sequence's rows */
    MODEL_POOL_CLS = 2,     /* the first row (BERT's [CLS]) */
    MODEL_POOL_LAST = 3,    /* the last row */
} ModelPooling;

typedef struct {
    Arch arch;
    const char *arch_name; /* "llama", ... (static string) */
    /* an encoder (bert, nomic-bert): embeddings only; model_forward refuses it */
    bool encoder;
    /* the file's <arch>.pooling_type (0 none, 1 mean, 2 cls, 3 last), -1
     * when absent; and the pooling model_embed uses by default (MEAN for
     * 0 / absent and for every decoder) */
    int pooling_type;
    ModelPooling pooling;
    int n_token_types; /* encoders: rows of token_types.weight (only row 0 is used) */
    int n_vocab;
    int n_ctx_train;
    int n_embd;
    int n_layers;
    int n_heads;
    int n_kv_heads;
    int head_dim; /* per head, for q/k/v */
    int n_ff;
    float norm_eps; /* rms or layer norm epsilon */
    RopeType rope_type;
    int n_rot; /* rotated dims per head (rope.dimension_count, default head_dim) */
    float rope_freq_base;
    /* theta *= rope_freq_scale (1 / rope.scaling.factor for "linear", else 1) */
    float rope_freq_scale;
    /* rope_freqs.weight present: theta_i /= freq_factors[i] (Llama 3.1 style
     * scaling as the converter writes it, n_rot/2 floats) */
    bool has_rope_freqs;
    bool tied_output; /* output projection uses token_embd.weight */
    uint64_t n_params;
    float attn_scale;      /* query scale: 1/sqrt(head_dim) unless the architecture says */
    float embd_scale;      /* token embeddings are multiplied by it (1, or sqrt(n_embd)) */
    int n_swa;             /* sliding window in positions (0: none): a row at position p
                              attends p - n_swa + 1 .. p on the sliding layers */
    int swa_period;        /* which layers slide (ArchInfo.swa_period); 0 when n_swa is 0 */
    float attn_softcap;    /* scores = cap * tanh(scores / cap); 0: none */
    float final_softcap;   /* the same on the logits; 0: none */
    float rope_local_base; /* sliding layers' rope base without scaling; 0: as the others */
    /* LongRoPE (phi3): rope_factors_long is used when n_ctx exceeds
     * rope_orig_ctx, else rope_factors_short; cos and sin times
     * rope_attn_factor */
    bool has_rope_longshort;
    int rope_orig_ctx; /* also YaRN's original context */
    float rope_attn_factor;
    /* YaRN (gpt-oss): rope_cache_yarn with these ramp ends and cos/sin
     * multiplier (rope.scaling.attn_factor * (1 + 0.1 ln factor)) */
    bool rope_yarn;
    float rope_yarn_corr[2];
    float rope_yarn_mscale;
    /* mixture of experts (0 experts: a dense FFN) */
    int n_expert, n_expert_used;
    int n_ff_exp;   /* each expert's hidden size */
    int n_ff_shexp; /* the shared expert's (0: none) */
    bool moe_norm_topk;
    bool moe_oai; /* gpt-oss: biases, top-k of the logits then softmax, clamped swiglu */
} ModelConfig;

typedef struct {
    int n_threads;     /* 0: all online CPUs */
    int n_ctx;         /* max positions per sequence; 0: min(n_ctx_train, 4096) */
    int n_seq_max;     /* sequence ids 0..n_seq_max-1; 0: 1 */
    int n_batch;       /* max rows per model_forward; 0: 512 */
    int kv_block_size; /* positions per KV block; 0: 16 */
    int n_kv_blocks;   /* blocks in the pool; 0: n_seq_max * ceil(n_ctx / kv_block_size) */
    /* the cache's elements: KV_F32 (0, the default: exact), KV_F16 (half
     * the memory and the bytes attention reads per position; keys and
     * values rounded to half precision, so logits differ from F32's in the
     * last digits) or KV_Q8_0 (34 bytes per 32 elements, 0.27 of F32's;
     * keys and values quantized per 32 as the Q8_0 activations are; a
     * head_dim that is a multiple of 32, at most 256) */
    KVType kv_type;
    /* keep every weight in the file's mapping instead of repacking the
     * matrices this CPU has a faster layout for (matmul_weight_init: Q8_0
     * on AVX-512 VNNI, copied once at load into anonymous memory of the
     * same size, the mapping's pages released). The outputs are the same
     * bits either way; repacked, single-sequence decode is ~1.35x faster,
     * but load takes longer (~1 s per GB) and processes on one machine no
     * longer share the weights through the page cache. The environment
     * variable CGPT_NO_REPACK=1 sets it for every command. */
    bool no_repack;
} ModelParams;

#define MODEL_MAX_LAYERS 512
#define MODEL_MAX_EMBD (1 << 16)
#define MODEL_MAX_HEADS 1024
#define MODEL_MAX_VOCAB (1 << 22)
#define MODEL_MAX_CTX (1 << 20)
#define MODEL_MAX_FF (1 << 20)
#define MODEL_MAX_SEQ 4096
#define MODEL_MAX_BATCH 65536
#define MODEL_MAX_EXPERTS 512
#define MODEL_MAX_SOFTCAP 1e6f
#define MODEL_MAX_TOKEN_TYPES 1024 /* rows of an encoder's token_types.weight */

typedef struct Model Model;

/* Load the model at 'path' (error messages start with the path). Validates architecture,
 * hyperparameters (head_count >= 1, head_count_kv dividing head_count, ...), and that every
 * required tensor exists with the expected shape and a supported type.
 * Returns an owned model in *out (free with model_free()); on failure
 * returns non-OK, fills 'err' and sets *out = NULL. */
Status model_load(Model **out, const char *path, const ModelParams *p, Err *err);
void model_free(Model *m);

/* Views valid until model_free(). */
const ModelConfig *model_config(const Model *m);
const GGUF *model_gguf(const Model *m);
/* The parameters actually in force (defaults resolved). */
const ModelParams *model_params(const Model *m);

/* One row of a batch: token 'token' of sequence 'seq' at position 'pos'. */
typedef struct {
    int32_t token;
    int32_t pos;
    int32_t seq;
    bool logits; /* return logits for this row */
} BatchRow;

/* Run one forward pass over 'n_rows' rows (1..n_batch). Rows of one
 * sequence must come in increasing position order; a row at position p
 * attends to positions 0..p of its sequence, which must already be in the
 * cache or earlier in this batch. Rows of different sequences may be mixed
 * freely. A sequence's first row may also be at a position below
 * model_seq_len() (rewind): the sequence is cut there and re-fed. Each
 * row's logits are independent of what else is in the batch (the same bits
 * as the sequence run alone). Nothing is allocated. Writes n_vocab floats
 * per row with .logits set, in row order, to 'logits'. Errors
 * (STATUS_INVALID/STATUS_LIMIT): token out of range, seq out of range,
 * pos >= n_ctx, position gap, KV pool exhausted - the cache is then
 * unchanged (nothing is reserved, no sequence is cut). */
Status model_forward(Model *m, const BatchRow *rows, int n_rows, float *logits, Err *err);

/* model_forward for decoders' final hidden states instead of logits: each
 * row with .logits set gets its hidden state after the output norm (n_embd
 * floats, in row order) in 'hidden'. Same contract, errors and cache
 * effects as model_forward; the logits matmul is skipped. */
Status model_forward_hidden(Model *m, const BatchRow *rows, int n_rows, float *hidden, Err *err);

/* ---- Embeddings ----
 *
 * model_embed(): one pooled vector of n_embd floats per sequence.
 *
 * Input: n_seqs sequences packed one after another in 'tokens', sequence i
 * having lens[i] >= 1 tokens (token ids exactly as the model sees them:
 * the caller tokenizes, with tok_add_bos/tok_add_eos for BERT's [CLS] ...
 * [SEP]). Each sequence is one text; its positions are 0..lens[i]-1.
 * Output: out[i * n_embd ..] for sequence i, pooled by o->pooling (or the
 * model's), then L2-normalised when o->normalize (a zero vector stays 0).
 *
 * Encoders (bert, nomic-bert): attention is bidirectional within each
 * sequence; as many whole sequences as fit in n_batch rows run in one
 * forward pass. A sequence may hold at most min(n_ctx, n_batch) tokens
 * (STATUS_LIMIT otherwise, before anything runs). No KV cache is used.
 * Decoders (every other architecture): each sequence runs causally through
 * the KV cache as sequence id o->seq, which must be empty on entry
 * (model_seq_len 0; STATUS_INVALID otherwise) and is empty again on return
 * (also on error), in chunks of n_batch rows; the pooled rows are the
 * final hidden states after the output norm. A sequence must fit n_ctx and
 * the KV pool's free blocks (STATUS_LIMIT: the caller may retry later).
 *
 * A sequence's vector does not depend on the others in the call or on how
 * they are batched: the same bits as the sequence embedded alone.
 * Errors: STATUS_INVALID (n_seqs < 1, a length < 1, a token out of range,
 * a bad seq id or pooling), STATUS_LIMIT (as above); 'out' is then
 * unspecified. Allocates nothing: it runs in the model's scratch buffers,
 * so it must not run concurrently with any other call on the same Model
 * (model_forward, model_seq_*): the engine calls it from the thread that
 * owns the model, between forward passes. */
typedef struct {
    ModelPooling pooling; /* MODEL_POOL_DEFAULT: ModelConfig.pooling */
    bool normalize;       /* L2-normalise each vector */
    int seq;              /* decoders: the empty KV sequence id to run in */
} ModelEmbedOpts;

Status model_embed(Model *m, const int32_t *tokens, const int32_t *lens, int n_seqs,
                   const ModelEmbedOpts *o, float *out, Err *err);

/* Drop all positions of sequence 'seq' and return its blocks to the pool. */
void model_seq_free(Model *m, int seq);
/* Positions currently cached for 'seq' (the next position to feed). */
int model_seq_len(const Model *m, int seq);
/* Whether a row of 'seq' may be fed at position pos (<= model_seq_len):
 * false when pos rewinds into a sliding window whose rows were released
 * (kvcache.h); the caller then feeds the sequence from 0. */
bool model_seq_resumable(const Model *m, int seq, int pos);
/* KV blocks free in the pool / in total. */
int model_kv_free_blocks(const Model *m);
int model_kv_total_blocks(const Model *m);

/* The KV cache itself, for prefix sharing (kv_seq_attach, kv_block_ref).
 * View valid until model_free(); not to be used during model_forward(). */
KVCache *model_kv(Model *m);

#endif
