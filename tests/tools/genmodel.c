/* genmodel.c - test tool: write a small random GGUF model (randmodel_write).
 *
 *   genmodel --arch A --vocab N --embd N --layers N --heads N --kv-heads N
 *            --head-dim N --ff N [--ctx N] [--rope-base F] [--llama3-rope]
 *            [--tied] [--type F32|F16|Q4_K...] [--seed N] [--std F]
 *            [--vocab-from VOCAB.gguf] -o FILE
 *            newer architectures: [--experts N --experts-used K] [--ff-exp N]
 *            [--ff-shexp N] [--window N] [--attn-softcap F] [--final-softcap F]
 *            [--fused-qkv] [--longrope ORIG_CTX] [--rope-linear FACTOR]
 *            [--yarn FACTOR [--yarn-orig CTX]]
 *            encoders (bert, nomic-bert): [--pooling N] (pooling_type, written
 *            as is; default 0) [--cased] (capitals in the WordPiece vocabulary);
 *            --fused-qkv gives bert an attn_qkv
 *
 * --vocab-from takes a real BPE vocabulary (tokenizer.ggml.model "gpt2", as
 * tests/tools/vocab2gguf writes it) instead of the synthetic one: its first
 * --vocab minus 2 tokens, the merges among them (both parts and the result
 * kept), then <|im_start|> and <|im_end|> as control tokens (so the built-in
 * ChatML template applies; <|im_end|> is EOS and EOT). Prompts then take as
 * many tokens as they would with a real model of that vocabulary size
 * instead of one per byte.
 *
 * --kv-heads defaults to --heads, --head-dim to embd/heads, --ctx to 256.
 * Exits 1 with one line on stderr for a bad argument or a failed write. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf/gguf.h"
#include "model/randmodel.h"

static void die(const char *fmt, const char *a, const char *b) {
    fprintf(stderr, "genmodel: ");
    fprintf(stderr, fmt, a, b);
    fputc('\n', stderr);
    exit(1);
}

static long long parse_int(const char *opt, const char *v, long long lo, long long hi) {
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi)
        die("%s: bad integer '%s'", opt, v);
    return x;
}

static double parse_float(const char *opt, const char *v) {
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || *end)
        die("%s: bad number '%s'", opt, v);
    return x;
}

/* Set of strings (open addressing, FNV-1a), for the kept tokens. */
typedef struct {
    const char **slot;
    size_t cap;
} StrSet;

static uint64_t fnv(const char *p, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 1099511628211ull;
    return h;
}

static void set_add(StrSet *s, const char *t) {
    size_t i = fnv(t, strlen(t)) & (s->cap - 1);
    while (s->slot[i] && strcmp(s->slot[i], t))
        i = (i + 1) & (s->cap - 1);
    s->slot[i] = t;
}

static int set_has(const StrSet *s, const char *p, size_t n) {
    size_t i = fnv(p, n) & (s->cap - 1);
    for (; s->slot[i]; i = (i + 1) & (s->cap - 1))
        if (strlen(s->slot[i]) == n && !memcmp(s->slot[i], p, n))
            return 1;
    return 0;
}

static char *dup_view(GGUFStr v) {
    char *t = malloc(v.len + 1);
    if (!t)
        die("out of memory%s%s", "", "");
    memcpy(t, v.ptr, v.len);
    t[v.len] = '\0';
    return t;
}

/* The vocabulary of 'path' cut to n tokens (see the header). Leaks its
 * arrays: the tool exits right after writing the model. */
static RandModelVocab *load_vocab(const char *path, int n) {
    GGUF g = {0};
    Err err = {0};
    const GGUFKV *toks = NULL, *types = NULL, *merges = NULL;
    GGUFStr model = {0};
    if (gguf_open(&g, path, &err) || gguf_get_str(&g, "tokenizer.ggml.model", true, &model, &err) ||
        gguf_get_arr(&g, "tokenizer.ggml.tokens", GGUF_TYPE_STRING, true, &toks, &err) ||
        gguf_get_arr(&g, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, true, &types, &err) ||
        gguf_get_arr(&g, "tokenizer.ggml.merges", GGUF_TYPE_STRING, true, &merges, &err))
        die("--vocab-from %s: %s", path, err.msg);
    if (!gguf_str_eq(model, "gpt2"))
        die("--vocab-from %s: tokenizer.ggml.model is not \"gpt2\" (a BPE vocabulary)%s", path, "");
    if (n < 258 || (uint64_t)n - 2 > toks->arr_n)
        die("--vocab-from %s: --vocab must be in [258, its tokens + 2]%s", path, "");
    int keep = n - 2;
    RandModelVocab *v = calloc(1, sizeof *v);
    const char **tv = calloc((size_t)n, sizeof *tv);
    int32_t *ty = calloc((size_t)n, sizeof *ty);
    const char **mv = calloc(merges->arr_n ? merges->arr_n : 1, sizeof *mv);
    StrSet set = {NULL, 1};
    while (set.cap < 2 * (size_t)n)
        set.cap *= 2;
    set.slot = calloc(set.cap, sizeof *set.slot);
    if (!v || !tv || !ty || !mv || !set.slot)
        die("out of memory%s%s", "", "");
    for (int i = 0; i < keep; i++) {
        tv[i] = dup_view(toks->arr_strs[i]);
        ty[i] = (int32_t)gguf_arr_i64(types, (uint64_t)i);
        set_add(&set, tv[i]);
    }
    tv[keep] = "<|im_start|>", tv[keep + 1] = "<|im_end|>";
    ty[keep] = ty[keep + 1] = 3; /* control */
    int nm = 0;
    for (uint64_t i = 0; i < merges->arr_n; i++) {
        GGUFStr m = merges->arr_strs[i];
        const char *sp = memchr(m.ptr, ' ', m.len);
        if (!sp)
            continue;
        size_t la = (size_t)(sp - m.ptr), lb = m.len - la - 1;
        char whole[512];
        if (la + lb >= sizeof whole)
            continue;
        memcpy(whole, m.ptr, la);
        memcpy(whole + la, sp + 1, lb);
        if (set_has(&set, m.ptr, la) && set_has(&set, sp + 1, lb) && set_has(&set, whole, la + lb))
            mv[nm++] = dup_view(m);
    }
    *v = (RandModelVocab){tv, ty, mv, nm, "gpt-2", keep + 1, keep + 1, keep + 1};
    gguf_close(&g);
    return v;
}

int main(int argc, char **argv) {
    RandModelSpec s = {0};
    s.n_kv_heads = -1;
    s.head_dim = -1;
    s.n_ctx_train = 256;
    s.wtype = DTYPE_F32;
    s.seed = 1;
    const char *out = NULL, *vocab_from = NULL;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        if (!strcmp(o, "--llama3-rope")) {
            s.rope_llama3 = true;
            continue;
        }
        if (!strcmp(o, "--tied")) {
            s.tied = true;
            continue;
        }
        if (!strcmp(o, "--fused-qkv")) {
            s.fused_qkv = true;
            continue;
        }
        if (!strcmp(o, "--cased")) {
            s.cased = true;
            continue;
        }
        if (i + 1 >= argc)
            die("%s: missing value%s", o, "");
        const char *v = argv[++i];
        if (!strcmp(o, "--arch"))
            s.arch = v;
        else if (!strcmp(o, "--vocab"))
            s.n_vocab = (int)parse_int(o, v, 1, 1 << 22);
        else if (!strcmp(o, "--embd"))
            s.n_embd = (int)parse_int(o, v, 1, 1 << 16);
        else if (!strcmp(o, "--layers"))
            s.n_layers = (int)parse_int(o, v, 1, 512);
        else if (!strcmp(o, "--heads"))
            s.n_heads = (int)parse_int(o, v, 1, 1024);
        else if (!strcmp(o, "--kv-heads"))
            s.n_kv_heads = (int)parse_int(o, v, 1, 1024);
        else if (!strcmp(o, "--head-dim"))
            s.head_dim = (int)parse_int(o, v, 1, 1 << 16);
        else if (!strcmp(o, "--ff"))
            s.n_ff = (int)parse_int(o, v, 1, 1 << 20);
        else if (!strcmp(o, "--ctx"))
            s.n_ctx_train = (int)parse_int(o, v, 1, 1 << 20);
        else if (!strcmp(o, "--rope-base"))
            s.rope_freq_base = (float)parse_float(o, v);
        else if (!strcmp(o, "--seed"))
            s.seed = (uint64_t)parse_int(o, v, 0, 0x7fffffffffffffffll);
        else if (!strcmp(o, "--std"))
            s.init_std = (float)parse_float(o, v);
        else if (!strcmp(o, "--type")) {
            int t = dtype_from_name(v);
            if (t < 0)
                die("--type: unknown type '%s'%s", v, "");
            s.wtype = (DType)t;
        } else if (!strcmp(o, "--vocab-from"))
            vocab_from = v;
        else if (!strcmp(o, "--experts"))
            s.n_expert = (int)parse_int(o, v, 0, 256);
        else if (!strcmp(o, "--experts-used"))
            s.n_expert_used = (int)parse_int(o, v, 0, 256);
        else if (!strcmp(o, "--ff-exp"))
            s.n_ff_exp = (int)parse_int(o, v, 0, 1 << 20);
        else if (!strcmp(o, "--ff-shexp"))
            s.n_ff_shexp = (int)parse_int(o, v, 0, 1 << 20);
        else if (!strcmp(o, "--window"))
            s.n_swa = (int)parse_int(o, v, 0, 1 << 20);
        else if (!strcmp(o, "--attn-softcap"))
            s.attn_softcap = (float)parse_float(o, v);
        else if (!strcmp(o, "--final-softcap"))
            s.final_softcap = (float)parse_float(o, v);
        else if (!strcmp(o, "--longrope"))
            s.longrope_orig_ctx = (int)parse_int(o, v, 0, 1 << 20);
        else if (!strcmp(o, "--yarn"))
            s.yarn_factor = (float)parse_float(o, v);
        else if (!strcmp(o, "--yarn-orig"))
            s.yarn_orig_ctx = (int)parse_int(o, v, 0, 1 << 20);
        else if (!strcmp(o, "--pooling"))
            s.pooling_type = (int)parse_int(o, v, 0, 15);
        else if (!strcmp(o, "--rope-linear"))
            s.rope_scale_linear = (float)parse_float(o, v);
        else if (!strcmp(o, "-o"))
            out = v;
        else
            die("unknown option '%s'%s", o, "");
    }
    if (!s.arch)
        die("missing --arch%s%s", "", "");
    if (!out)
        die("missing -o FILE%s%s", "", "");
    if (!s.n_vocab || !s.n_embd || !s.n_layers || !s.n_heads || !s.n_ff)
        die("need --vocab, --embd, --layers, --heads and --ff%s%s", "", "");
    if (s.n_kv_heads < 0)
        s.n_kv_heads = s.n_heads;
    if (s.head_dim < 0)
        s.head_dim = s.n_embd / s.n_heads;
    if (vocab_from)
        s.vocab = load_vocab(vocab_from, s.n_vocab);
    Err err = {0};
    if (randmodel_write(out, &s, &err) != STATUS_OK) {
        fprintf(stderr, "genmodel: %s: %s\n", out, err.msg);
        return 1;
    }
    return 0;
}
