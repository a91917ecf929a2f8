/* tokenizer.c - loading and validating a GGUF vocabulary, special tokens,
 * the encode driver, decoding and streaming.
 *
 * Encoding: the text is first partitioned into special-token matches and
 * plain fragments (leftmost-longest over a byte trie of the control,
 * unknown and user-defined token strings, as Hugging Face's added-token
 * matcher; control and unknown tokens only with parse_special, user-defined
 * ones always, as llama.cpp and Hugging Face do; with a special_ok mask a
 * control match must lie wholly where the mask is non-zero). Plain fragments go to
 * byte-level BPE (after the pre-tokenizer, bpe.c / pretok.c) or to SPM
 * (spm.c): for SPM every plain fragment gets the add_space_prefix space,
 * since llama.cpp prefixes the first fragment and every fragment that
 * follows a special token - and a plain fragment is always one or the other.
 *
 * Decoding mirrors that: with SPM and add_space_prefix, the first piece
 * that yields text at the start and after each special-token match loses
 * one leading space, so decode(encode(s)) == s. Unlike llama.cpp, no
 * clean_up_tokenization_spaces pass is applied (it would break the round
 * trip), and SPM user-defined tokens decode with U+2581 turned into spaces.
 *
 * Deliberately not done: per-token lstrip/rstrip attributes (not in GGUF),
 * NFC normalization (Qwen), Unigram/RWKV vocabularies. WordPiece (BERT)
 * is wordpiece.c: its pieces decode as SPM's (U+2581 -> space, the first
 * one's space dropped). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "core/utf8.h"
#include "tokenizer/tok_impl.h"

/* ---------------------------------------------------------------- UTF-8 */

int tok_utf8_char(const uint8_t *s, size_t n, int *bad, bool *incomplete) {
    *incomplete = false;
    *bad = 1;
    uint8_t c = s[0];
    if (c < 0x80)
        return 1;
    int need;
    uint8_t lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF)
        need = 1;
    else if (c == 0xE0)
        need = 2, lo = 0xA0;
    else if (c >= 0xE1 && c <= 0xEC)
        need = 2;
    else if (c == 0xED)
        need = 2, hi = 0x9F;
    else if (c >= 0xEE && c <= 0xEF)
        need = 2;
    else if (c == 0xF0)
        need = 3, lo = 0x90;
    else if (c >= 0xF1 && c <= 0xF3)
        need = 3;
    else if (c == 0xF4)
        need = 3, hi = 0x8F;
    else
        return 0;
    for (int i = 1; i <= need; i++) {
        if ((size_t)i >= n) {
            *incomplete = true;
            *bad = i;
            return 0;
        }
        if (s[i] < lo || s[i] > hi) {
            *bad = i;
            return 0;
        }
        lo = 0x80;
        hi = 0xBF;
    }
    return need + 1;
}

int tok_utf8_put(uint32_t cp, char *out) { return utf8_put(cp, out); }

/* ----------------------------------------------------------- lookups */

static uint64_t hash_bytes(const char *s, size_t len) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)s[i]) * 0x100000001b3ull;
    return h ^ (h >> 29);
}

int tok_lookup(const Tokenizer *t, const char *s, size_t len) {
    if (len == 0 || len > t->max_token_len)
        return -1;
    for (uint64_t i = hash_bytes(s, len) & t->hmask;; i = (i + 1) & t->hmask) {
        uint32_t slot = t->hslots[i];
        if (slot == 0)
            return -1;
        size_t n;
        const char *p = tok_str(t, (int)slot - 1, &n);
        if (n == len && memcmp(p, s, len) == 0)
            return (int)slot - 1;
    }
}

/* ------------------------------------------------------------ loading */

#define KEY_TOKENS "tokenizer.ggml.tokens"
#define KEY_SCORES "tokenizer.ggml.scores"
#define KEY_TYPES "tokenizer.ggml.token_type"
#define KEY_MERGES "tokenizer.ggml.merges"

static const char U2581[] = "\xe2\x96\x81";

/* Strings llama.cpp takes for end of turn when eot_token_id is absent. */
static const char *const EOT_TEXTS[] = {"<|eot_id|>",
                                        "<|im_end|>",
                                        "<|end|>",
                                        "<end_of_turn>",
                                        "<|endoftext|>",
                                        "<|end_of_text|>",
                                        "<EOT>",
                                        "_<EOT>",
                                        "[EOT]",
                                        "<\xef\xbd\x9c"
                                        "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>",
                                        "<end_of_utterance>",
                                        NULL};
/* Strings of end-of-generation tokens (llama.cpp's list), plus the FIM
 * pad/repo/file-separator tokens llama.cpp also stops on. */
static const char *const EOG_TEXTS[] = {"<|eot_id|>",
                                        "<|im_end|>",
                                        "<|end|>",
                                        "<|return|>",
                                        "<|call|>",
                                        "<|flush|>",
                                        "<|calls|>",
                                        "<end_of_turn>",
                                        "<|endoftext|>",
                                        "</s>",
                                        "<|eom_id|>",
                                        "<EOT>",
                                        "_<EOT>",
                                        "[EOT]",
                                        "[EOS]",
                                        "<|end_of_text|>",
                                        "<end_of_utterance>",
                                        "<eos>",
                                        "<turn|>",
                                        "<|tool_response>",
                                        "<\xef\xbd\x9c"
                                        "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>",
                                        "[e~[",
                                        "<|fim_pad|>",
                                        "<fim-pad>",
                                        "<fim_pad>",
                                        "<|fim_repo|>",
                                        "<|repo_name|>",
                                        "<fim-repo>",
                                        "<REPO>",
                                        "<reponame>",
                                        "<|file_sep|>",
                                        NULL};

static bool text_in(const char *s, size_t n, const char *const *list) {
    for (; *list; list++)
        if (strlen(*list) == n && memcmp(*list, s, n) == 0)
            return true;
    return false;
}

void tok_free(Tokenizer *t) {
    if (!t)
        return;
    free(t->text_buf);
    free(t->text_off);
    free(t->piece_buf);
    free(t->piece_off);
    free(t->type);
    free(t->flags);
    free(t->score);
    free(t->hslots);
    free(t->mkeys);
    free(t->mrank);
    free(t->mres);
    free(t->trie);
    pretok_free(t->pre);
    free(t);
}

static int hexval(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* "<0xNN>" -> NN, else -1. */
static int parse_byte_token(const char *s, size_t n) {
    if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>')
        return -1;
    int hi = hexval(s[3]), lo = hexval(s[4]);
    return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

static Status load_strings(Tokenizer *t, const GGUFKV *kv, Err *err) {
    uint64_t n = kv->arr_n, total = 0;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t len = kv->arr_strs[i].len;
        if (len == 0)
            return err_set(err, STATUS_FORMAT, "%s[%" PRIu64 "]: empty token string", KEY_TOKENS,
                           i);
        if (len > TOK_MAX_TOKEN_BYTES)
            return err_set(err, STATUS_LIMIT,
                           "%s[%" PRIu64 "]: token string of %" PRIu64 " bytes (limit %d)",
                           KEY_TOKENS, i, len, TOK_MAX_TOKEN_BYTES);
        total += len;
        if (total > UINT32_MAX)
            return err_set(err, STATUS_LIMIT, "%s: token strings exceed 4 GiB", KEY_TOKENS);
        if (len > t->max_token_len)
            t->max_token_len = (uint32_t)len;
    }
    t->text_buf = malloc(total ? total : 1);
    t->text_off = malloc((n + 1) * sizeof *t->text_off);
    if (!t->text_buf || !t->text_off)
        return err_set(err, STATUS_NOMEM, "%s: out of memory for %" PRIu64 " bytes", KEY_TOKENS,
                       total);
    uint32_t off = 0;
    for (uint64_t i = 0; i < n; i++) {
        t->text_off[i] = off;
        memcpy(t->text_buf + off, kv->arr_strs[i].ptr, kv->arr_strs[i].len);
        off += (uint32_t)kv->arr_strs[i].len;
    }
    t->text_off[n] = off;

    uint64_t cap = 16;
    while (cap < 2 * n)
        cap *= 2;
    t->hslots = calloc(cap, sizeof *t->hslots);
    if (!t->hslots)
        return err_set(err, STATUS_NOMEM, "%s: out of memory for the lookup table", KEY_TOKENS);
    t->hmask = (uint32_t)(cap - 1);
    for (uint64_t id = 0; id < n; id++) {
        size_t len;
        const char *s = tok_str(t, (int)id, &len);
        for (uint64_t i = hash_bytes(s, len) & t->hmask;; i = (i + 1) & t->hmask) {
            uint32_t slot = t->hslots[i];
            if (slot == 0) {
                t->hslots[i] = (uint32_t)id + 1;
                break;
            }
            size_t m;
            const char *q = tok_str(t, (int)slot - 1, &m);
            if (m == len && memcmp(q, s, len) == 0)
                return err_set(err, STATUS_FORMAT,
                               "%s[%" PRIu64 "]: duplicate token string '%.*s' (also id %u)",
                               KEY_TOKENS, id, (int)(len > 64 ? 64 : len), s, slot - 1);
        }
    }
    return STATUS_OK;
}

static Status load_scores_types(Tokenizer *t, const GGUF *g, Err *err) {
    uint64_t n = (uint64_t)t->n_vocab;
    const GGUFKV *sk = NULL, *tk = NULL;
    Status st = gguf_get_arr(g, KEY_SCORES, GGUF_TYPE_FLOAT32, false, &sk, err);
    if (st != STATUS_OK)
        return st;
    st = gguf_get_arr(g, KEY_TYPES, GGUF_TYPE_INT32, false, &tk, err);
    if (st != STATUS_OK)
        return st;
    if (sk && sk->arr_n != n)
        return err_set(err, STATUS_FORMAT, "%s has %" PRIu64 " entries but %s has %" PRIu64,
                       KEY_SCORES, sk->arr_n, KEY_TOKENS, n);
    if (tk && tk->arr_n != n)
        return err_set(err, STATUS_FORMAT, "%s has %" PRIu64 " entries but %s has %" PRIu64,
                       KEY_TYPES, tk->arr_n, KEY_TOKENS, n);
    t->score = calloc(n, sizeof *t->score);
    t->type = malloc(n);
    t->flags = calloc(n, 1);
    if (!t->score || !t->type || !t->flags)
        return err_set(err, STATUS_NOMEM, "tokenizer: out of memory for %" PRIu64 " tokens", n);
    for (uint64_t i = 0; i < n; i++) {
        t->score[i] = sk ? (float)gguf_arr_f64(sk, i) : 0.0f;
        int64_t ty = tk ? gguf_arr_i64(tk, i) : TOK_TYPE_NORMAL;
        if (ty == 0)
            ty = TOK_TYPE_NORMAL; /* "undefined": llama.cpp treats it as a plain token */
        if (ty < TOK_TYPE_NORMAL || ty > TOK_TYPE_BYTE)
            return err_set(err, STATUS_FORMAT,
                           "%s[%" PRIu64 "] = %" PRId64 ": not a token type (1..6)", KEY_TYPES, i,
                           ty);
        t->type[i] = (uint8_t)ty;
    }
    return STATUS_OK;
}

static Status load_bytes(Tokenizer *t, Err *err) {
    int32_t angle[256];
    for (int b = 0; b < 256; b++)
        angle[b] = t->byte_tok[b] = -1;
    for (int id = 0; id < t->n_vocab; id++) {
        if (t->type[id] != TOK_TYPE_BYTE)
            continue;
        size_t n;
        const char *s = tok_str(t, id, &n);
        int b = parse_byte_token(s, n);
        if (b < 0)
            return err_set(err, STATUS_FORMAT,
                           "%s[%d]: byte token '%.*s' is not of the form <0xNN>", KEY_TOKENS, id,
                           (int)(n > 32 ? 32 : n), s);
        if (angle[b] >= 0)
            return err_set(err, STATUS_FORMAT, "%s[%d]: byte token for 0x%02X repeats id %d",
                           KEY_TOKENS, id, b, angle[b]);
        angle[b] = id;
        t->has_byte_tokens = true;
    }
    for (int b = 0; b < 256; b++) {
        if (t->kind == TOK_KIND_BPE) {
            char buf[4];
            int k = tok_utf8_put(bpe_byte_to_cp((uint8_t)b), buf);
            t->byte_tok[b] = tok_lookup(t, buf, (size_t)k);
            if (t->byte_tok[b] < 0)
                t->byte_tok[b] = angle[b];
        } else {
            t->byte_tok[b] = angle[b];
        }
    }
    return STATUS_OK;
}

static Status load_merges(Tokenizer *t, const GGUF *g, Err *err) {
    const GGUFKV *kv = NULL;
    Status st = gguf_get_arr(g, KEY_MERGES, GGUF_TYPE_STRING, true, &kv, err);
    if (st != STATUS_OK)
        return st;
    uint64_t n = kv->arr_n;
    if (n > UINT32_MAX / 4)
        return err_set(err, STATUS_LIMIT, "%s: %" PRIu64 " merges", KEY_MERGES, n);
    uint64_t cap = 16;
    while (cap < 2 * n)
        cap *= 2;
    t->mkeys = malloc(cap * sizeof *t->mkeys);
    t->mrank = malloc(cap * sizeof *t->mrank);
    t->mres = malloc(cap * sizeof *t->mres);
    char *cat = malloc(2 * (size_t)t->max_token_len + 1);
    if (!t->mkeys || !t->mrank || !t->mres || !cat) {
        free(cat);
        return err_set(err, STATUS_NOMEM, "%s: out of memory for %" PRIu64 " merges", KEY_MERGES,
                       n);
    }
    memset(t->mkeys, 0xFF, cap * sizeof *t->mkeys);
    t->mmask = cap - 1;
    for (uint64_t r = 0; r < n; r++) {
        const char *s = kv->arr_strs[r].ptr;
        uint64_t len = kv->arr_strs[r].len;
        const char *sp = len > 1 ? memchr(s + 1, ' ', len - 1) : NULL;
        int shown = (int)(len > 64 ? 64 : len);
        if (!sp || sp + 1 == s + len) {
            free(cat);
            return err_set(err, STATUS_FORMAT,
                           "%s[%" PRIu64 "] = '%.*s': not two tokens separated by a space",
                           KEY_MERGES, r, shown, s);
        }
        size_t ln = (size_t)(sp - s), rn = (size_t)(len - ln - 1);
        int l = tok_lookup(t, s, ln), rr = tok_lookup(t, sp + 1, rn), res = -1;
        if (l >= 0 && rr >= 0 && ln + rn <= t->max_token_len) {
            memcpy(cat, s, ln);
            memcpy(cat + ln, sp + 1, rn);
            res = tok_lookup(t, cat, ln + rn);
        }
        if (l < 0 || rr < 0 || res < 0) {
            free(cat);
            return err_set(err, STATUS_FORMAT, "%s[%" PRIu64 "] = '%.*s': %s is not a token",
                           KEY_MERGES, r, shown, s,
                           l < 0    ? "the left part"
                           : rr < 0 ? "the right part"
                                    : "the merged result");
        }
        uint64_t key = ((uint64_t)(uint32_t)l << 32) | (uint32_t)rr;
        uint64_t h = (key * 0x9E3779B97F4A7C15ull) >> 17;
        for (uint64_t i = h & t->mmask;; i = (i + 1) & t->mmask) {
            if (t->mkeys[i] == key)
                break; /* a repeated pair keeps its first (lowest) rank */
            if (t->mkeys[i] == UINT64_MAX) {
                t->mkeys[i] = key;
                t->mrank[i] = (uint32_t)r;
                t->mres[i] = res;
                break;
            }
        }
    }
    free(cat);
    return STATUS_OK;
}

/* Decoded piece of token id into buf (cap >= TOK_MAX_TOKEN_BYTES * 3);
 * returns its length. */
static size_t make_piece(const Tokenizer *t, int id, char *buf) {
    size_t n;
    const char *s = tok_str(t, id, &n);
    const uint8_t *u = (const uint8_t *)s;
    int ty = t->type[id];
    if (ty == TOK_TYPE_BYTE) {
        buf[0] = (char)parse_byte_token(s, n);
        return 1;
    }
    if (ty == TOK_TYPE_UNUSED)
        return 0;
    if (ty == TOK_TYPE_CONTROL || ty == TOK_TYPE_UNKNOWN ||
        (ty == TOK_TYPE_USER_DEFINED && t->kind == TOK_KIND_BPE)) {
        memcpy(buf, s, n);
        return n;
    }
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        int bad;
        bool inc;
        int c = tok_utf8_char(u + i, n - i, &bad, &inc);
        if (c == 0) { /* not UTF-8 in the vocabulary: keep the byte */
            buf[k++] = s[i++];
            continue;
        }
        if (t->kind != TOK_KIND_BPE) {
            if (c == 3 && memcmp(s + i, U2581, 3) == 0)
                buf[k++] = ' ';
            else
                memcpy(buf + k, s + i, (size_t)c), k += (size_t)c;
        } else {
            int b = bpe_cp_to_byte(utf8_get(u + i, c));
            if (b >= 0)
                buf[k++] = (char)b;
            else /* not a byte stand-in (added tokens typed normal): as is */
                memcpy(buf + k, s + i, (size_t)c), k += (size_t)c;
        }
        i += (size_t)c;
    }
    return k;
}

/* Most bytes tok_stream_push() can write for a piece, whatever is pending:
 * 3 for a pending partial character, then 1 per byte of well-formed
 * characters and 3 (one U+FFFD) per ill-formed subpart. */
static size_t stream_bound(const char *p, size_t n) {
    size_t out = 3;
    for (size_t i = 0; i < n;) {
        int bad;
        bool inc;
        int c = tok_utf8_char((const uint8_t *)p + i, n - i, &bad, &inc);
        if (c > 0) {
            out += (size_t)c;
            i += (size_t)c;
        } else {
            out += inc ? 0 : 3;
            i += (size_t)bad;
        }
    }
    return out;
}

static Status load_pieces(Tokenizer *t, Err *err) {
    size_t n = (size_t)t->n_vocab;
    char *tmp = malloc((size_t)TOK_MAX_TOKEN_BYTES * 3);
    t->piece_off = malloc((n + 1) * sizeof *t->piece_off);
    size_t cap = (size_t)t->text_off[n] + 16, len = 0;
    t->piece_buf = malloc(cap);
    if (!tmp || !t->piece_off || !t->piece_buf) {
        free(tmp);
        return err_set(err, STATUS_NOMEM, "tokenizer: out of memory for pieces");
    }
    for (size_t id = 0; id < n; id++) {
        size_t k = make_piece(t, (int)id, tmp);
        size_t sb = stream_bound(tmp, k);
        if (k > TOK_MAX_PIECE || sb > TOK_MAX_STREAM_OUT) {
            size_t sl;
            const char *s = tok_str(t, (int)id, &sl);
            int shown = (int)(sl > 48 ? 48 : sl);
            const char *more = sl > 48 ? "..." : "";
            free(tmp);
            if (k > TOK_MAX_PIECE)
                return err_set(err, STATUS_LIMIT,
                               "%s[%zu] = '%.*s%s': token %zu decodes to %zu bytes (limit %d)",
                               KEY_TOKENS, id, shown, s, more, id, k, TOK_MAX_PIECE);
            return err_set(err, STATUS_LIMIT,
                           "%s[%zu] = '%.*s%s': token %zu decodes to %zu bytes, too many of "
                           "them not UTF-8: streamed they take %zu bytes (limit %d)",
                           KEY_TOKENS, id, shown, s, more, id, k, sb, TOK_MAX_STREAM_OUT);
        }
        if (k > t->max_piece)
            t->max_piece = (uint32_t)k;
        if (len + k > cap) {
            size_t nc = 2 * cap + k;
            char *q = realloc(t->piece_buf, nc);
            if (!q) {
                free(tmp);
                return err_set(err, STATUS_NOMEM, "tokenizer: out of memory for pieces");
            }
            t->piece_buf = q;
            cap = nc;
        }
        t->piece_off[id] = (uint32_t)len;
        memcpy(t->piece_buf + len, tmp, k);
        len += k;
    }
    t->piece_off[n] = (uint32_t)len;
    free(tmp);
    return STATUS_OK;
}

static Status load_trie(Tokenizer *t, Err *err) {
    for (int b = 0; b < 256; b++)
        t->trie_root[b] = -1;
    size_t cap = 0;
    for (int id = 0; id < t->n_vocab; id++)
        if (t->flags[id] & TF_MATCHABLE)
            cap += t->text_off[id + 1] - t->text_off[id];
    if (cap == 0)
        return STATUS_OK;
    if (cap > INT32_MAX)
        return err_set(err, STATUS_LIMIT, "tokenizer: special token strings too long");
    t->trie = malloc(cap * sizeof *t->trie);
    if (!t->trie)
        return err_set(err, STATUS_NOMEM, "tokenizer: out of memory for special tokens");
    for (int id = 0; id < t->n_vocab; id++) {
        if (!(t->flags[id] & TF_MATCHABLE))
            continue;
        size_t n;
        const uint8_t *s = (const uint8_t *)tok_str(t, id, &n);
        int32_t *link = &t->trie_root[s[0]];
        int32_t node = -1;
        for (size_t i = 0; i < n; i++) {
            node = *link;
            while (node >= 0 && t->trie[node].byte != s[i]) {
                link = &t->trie[node].sibling;
                node = *link;
            }
            if (node < 0) {
                node = (int32_t)t->n_trie++;
                t->trie[node] =
                    (struct TokTrieNode){.child = -1, .sibling = -1, .id = -1, .byte = s[i]};
                *link = node;
            }
            link = &t->trie[node].child;
        }
        t->trie[node].id = id;
    }
    return STATUS_OK;
}

typedef struct {
    const char *key;
    int *dst; /* NULL: validated only */
} IdKey;

static Status load_special(Tokenizer *t, const GGUF *g, bool bpe_add_bos, Err *err) {
    int n = t->n_vocab;
    if (t->kind == TOK_KIND_SPM) { /* llama.cpp's defaults for SPM, when in range */
        t->bos = n > 1 ? 1 : -1;
        t->eos = n > 2 ? 2 : -1;
        t->unk = 0;
    } else {
        t->bos = t->eos = t->unk = -1;
    }
    t->eot = t->eom = t->pad = -1;
    int fim[3] = {-1, -1, -1}, cls = -1, sep = -1;
    const IdKey keys[] = {
        {"tokenizer.ggml.bos_token_id", &t->bos},     {"tokenizer.ggml.eos_token_id", &t->eos},
        {"tokenizer.ggml.eot_token_id", &t->eot},     {"tokenizer.ggml.eom_token_id", &t->eom},
        {"tokenizer.ggml.unknown_token_id", &t->unk}, {"tokenizer.ggml.padding_token_id", &t->pad},
        {"tokenizer.ggml.seperator_token_id", &sep},  {"tokenizer.ggml.mask_token_id", NULL},
        {"tokenizer.ggml.cls_token_id", &cls},        {"tokenizer.ggml.fim_pre_token_id", NULL},
        {"tokenizer.ggml.fim_suf_token_id", NULL},    {"tokenizer.ggml.fim_mid_token_id", NULL},
        {"tokenizer.ggml.fim_pad_token_id", &fim[0]}, {"tokenizer.ggml.fim_rep_token_id", &fim[1]},
        {"tokenizer.ggml.fim_sep_token_id", &fim[2]}, {"tokenizer.ggml.prefix_token_id", NULL},
        {"tokenizer.ggml.suffix_token_id", NULL},     {"tokenizer.ggml.middle_token_id", NULL},
    };
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        int64_t v = -1;
        bool present = gguf_find_key(g, keys[k].key) != NULL;
        Status st = gguf_get_i64(g, keys[k].key, false, &v, err);
        if (st != STATUS_OK)
            return st;
        if (!present)
            continue;
        if (v < 0 || v >= n)
            return err_set(err, STATUS_FORMAT, "%s = %" PRId64 ": not a token id (n_vocab %d)",
                           keys[k].key, v, n);
        if (keys[k].dst)
            *keys[k].dst = (int)v;
    }
    if (t->unk >= 0 && t->unk >= n)
        t->unk = -1;

    /* by text, as llama.cpp, when the file does not name them; the first
     * string of the list that is in the vocabulary wins */
    for (const char *const *e = EOT_TEXTS; *e && t->eot < 0; e++)
        t->eot = tok_lookup(t, *e, strlen(*e));
    if (t->eom < 0)
        t->eom = tok_lookup(t, "<|eom_id|>", 10);

    if (t->kind == TOK_KIND_WPM) { /* [CLS] text [SEP], as BERT's post-processor */
        if (t->bos < 0)
            t->bos = cls >= 0 ? cls : tok_lookup(t, "[CLS]", 5);
        if (t->eos < 0)
            t->eos = sep >= 0 ? sep : tok_lookup(t, "[SEP]", 5);
        if (t->unk < 0)
            t->unk = tok_lookup(t, "[UNK]", 5);
        if (t->unk < 0)
            return err_set(err, STATUS_FORMAT,
                           "tokenizer.ggml.model 'bert': no unknown token "
                           "(tokenizer.ggml.unknown_token_id, or a token '[UNK]')");
    }
    bool add_bos = t->kind == TOK_KIND_SPM   ? true
                   : t->kind == TOK_KIND_WPM ? t->bos >= 0
                                             : bpe_add_bos;
    bool add_eos = t->kind == TOK_KIND_WPM && t->eos >= 0;
    Status st = gguf_get_bool(g, "tokenizer.ggml.add_bos_token", false, &add_bos, err);
    if (st == STATUS_OK)
        st = gguf_get_bool(g, "tokenizer.ggml.add_eos_token", false, &add_eos, err);
    if (st != STATUS_OK)
        return st;
    if (add_bos && t->bos < 0)
        return err_set(err, STATUS_FORMAT,
                       "tokenizer.ggml.add_bos_token is true but the vocabulary has no BOS token "
                       "(tokenizer.ggml.bos_token_id)");
    if (add_eos && t->eos < 0)
        return err_set(err, STATUS_FORMAT,
                       "tokenizer.ggml.add_eos_token is true but the vocabulary has no EOS token "
                       "(tokenizer.ggml.eos_token_id)");
    t->add_bos = add_bos;
    t->add_eos = add_eos;

    for (int id = 0; id < n; id++) {
        int ty = t->type[id];
        if (ty == TOK_TYPE_CONTROL || ty == TOK_TYPE_UNKNOWN)
            t->flags[id] |= TF_SPECIAL | TF_MATCHABLE;
        if (ty == TOK_TYPE_USER_DEFINED)
            t->flags[id] |= TF_MATCHABLE | TF_USER;
        if (ty == TOK_TYPE_NORMAL || ty == TOK_TYPE_USER_DEFINED)
            t->flags[id] |= TF_MERGEABLE;
        size_t len;
        const char *s = tok_str(t, id, &len);
        if (ty == TOK_TYPE_CONTROL && text_in(s, len, EOG_TEXTS))
            t->flags[id] |= TF_EOG;
    }
    const int named[] = {t->eos, t->eot, t->eom, fim[0], fim[1], fim[2]};
    for (size_t i = 0; i < sizeof named / sizeof named[0]; i++)
        if (named[i] >= 0)
            t->flags[named[i]] |= TF_EOG;
    /* gpt-oss (harmony) / solar-open: <|end|> ends a message, not generation */
    int end_id = tok_lookup(t, "<|end|>", 7);
    if (end_id >= 0 && end_id != t->eos && end_id != t->eot) {
        int ret = tok_lookup(t, "<|return|>", 10), call = tok_lookup(t, "<|call|>", 8);
        int calls = tok_lookup(t, "<|calls|>", 9), flush = tok_lookup(t, "<|flush|>", 9);
        bool eog_ret = ret >= 0 && (t->flags[ret] & TF_EOG);
        bool eog_call = call >= 0 && (t->flags[call] & TF_EOG);
        bool eog_calls = calls >= 0 && (t->flags[calls] & TF_EOG);
        bool eog_flush = flush >= 0 && (t->flags[flush] & TF_EOG);
        if ((eog_ret && eog_call) || (eog_calls && eog_flush))
            t->flags[end_id] &= (uint8_t)~TF_EOG;
    }
    return STATUS_OK;
}

Status tok_load(Tokenizer **out, const GGUF *g, Err *err) {
    *out = NULL;
    GGUFStr model = {0};
    Status st = gguf_get_str(g, "tokenizer.ggml.model", true, &model, err);
    if (st != STATUS_OK)
        return st;
    TokKind kind;
    if (gguf_str_eq(model, "gpt2"))
        kind = TOK_KIND_BPE;
    else if (gguf_str_eq(model, "llama"))
        kind = TOK_KIND_SPM;
    else if (gguf_str_eq(model, "bert"))
        kind = TOK_KIND_WPM;
    else
        return err_set(err, STATUS_UNSUPPORTED,
                       "tokenizer.ggml.model: unsupported tokenizer '%.*s'",
                       (int)(model.len > 64 ? 64 : model.len), model.ptr);
    const GGUFKV *tokens = NULL;
    st = gguf_get_arr(g, KEY_TOKENS, GGUF_TYPE_STRING, true, &tokens, err);
    if (st != STATUS_OK)
        return st;
    if (tokens->arr_n == 0)
        return err_set(err, STATUS_FORMAT, "%s is empty", KEY_TOKENS);
    if (tokens->arr_n > TOK_MAX_VOCAB)
        return err_set(err, STATUS_LIMIT, "%s has %" PRIu64 " tokens (limit %d)", KEY_TOKENS,
                       tokens->arr_n, TOK_MAX_VOCAB);

    Tokenizer *t = calloc(1, sizeof *t);
    if (!t)
        return err_set(err, STATUS_NOMEM, "tokenizer: out of memory");
    t->kind = kind;
    t->n_vocab = (int)tokens->arr_n;
    bool bpe_add_bos = false;
    st = load_strings(t, tokens, err);
    if (st == STATUS_OK)
        st = load_scores_types(t, g, err);
    if (st == STATUS_OK)
        st = load_bytes(t, err);
    if (st == STATUS_OK && kind == TOK_KIND_BPE) {
        GGUFStr pre = {.ptr = "default", .len = 7};
        st = gguf_get_str(g, "tokenizer.ggml.pre", false, &pre, err);
        if (st == STATUS_OK)
            st =
                pretok_new(&t->pre, pre.ptr, (size_t)pre.len, &t->ignore_merges, &bpe_add_bos, err);
        if (st == STATUS_OK)
            st = load_merges(t, g, err);
    }
    if (st == STATUS_OK && kind == TOK_KIND_SPM) {
        t->add_space_prefix = true;
        st = gguf_get_bool(g, "tokenizer.ggml.add_space_prefix", false, &t->add_space_prefix, err);
    }
    if (st == STATUS_OK && kind == TOK_KIND_WPM) {
        t->add_space_prefix = true; /* decoding: the first word's mark is no space */
        t->wpm_lower = !wpm_vocab_is_cased(t);
    }
    if (st == STATUS_OK)
        st = load_special(t, g, bpe_add_bos, err);
    if (st == STATUS_OK)
        st = load_pieces(t, err);
    if (st == STATUS_OK)
        st = load_trie(t, err);
    if (st != STATUS_OK) {
        tok_free(t);
        return st;
    }
    *out = t;
    return STATUS_OK;
}

/* ---------------------------------------------------------- accessors */

TokKind tok_kind(const Tokenizer *t) { return t->kind; }
int tok_n_vocab(const Tokenizer *t) { return t->n_vocab; }
int tok_bos(const Tokenizer *t) { return t->bos; }
int tok_eos(const Tokenizer *t) { return t->eos; }
int tok_eot(const Tokenizer *t) { return t->eot; }
bool tok_add_bos(const Tokenizer *t) { return t->add_bos; }
bool tok_add_eos(const Tokenizer *t) { return t->add_eos; }

static bool id_ok(const Tokenizer *t, int id) { return id >= 0 && id < t->n_vocab; }

bool tok_is_eog(const Tokenizer *t, int id) { return id_ok(t, id) && (t->flags[id] & TF_EOG); }

TokType tok_type(const Tokenizer *t, int id) {
    return id_ok(t, id) ? (TokType)t->type[id] : (TokType)0;
}

const char *tok_text(const Tokenizer *t, int id, size_t *len) {
    if (!id_ok(t, id)) {
        *len = 0;
        return NULL;
    }
    return tok_str(t, id, len);
}

int tok_find(const Tokenizer *t, const char *s, size_t len) { return tok_lookup(t, s, len); }

/* ----------------------------------------------------------- encoding */

typedef struct {
    const Tokenizer *t;
    TokOut *o;
    BpeScratch sc;
} BpeCtx;

static Status bpe_cb(void *ctx, const char *s, size_t len) {
    BpeCtx *c = ctx;
    bpe_encode_word(c->t, s, len, c->o, &c->sc);
    return c->sc.oom ? STATUS_NOMEM : STATUS_OK;
}

static Status encode_fragment(const Tokenizer *t, const char *s, size_t len, TokOut *o, BpeCtx *bc,
                              Err *err) {
    if (t->kind == TOK_KIND_WPM)
        return wpm_encode(t, s, len, o, err);
    if (t->kind == TOK_KIND_BPE) {
        Status st = pretok_split(t->pre, s, len, bpe_cb, bc, err);
        if (st == STATUS_NOMEM && bc->sc.oom)
            return err_set(err, STATUS_NOMEM, "bpe: out of memory on a pre-token");
        return st;
    }
    /* SPM: prefix one space (see the top of the file), spaces become U+2581 */
    size_t cap = 3 * len + 3;
    char *e = malloc(cap);
    if (!e)
        return err_set(err, STATUS_NOMEM, "spm: out of memory for %zu bytes", len);
    size_t k = 0;
    if (t->add_space_prefix)
        memcpy(e, U2581, 3), k = 3;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == ' ')
            memcpy(e + k, U2581, 3), k += 3;
        else
            e[k++] = s[i];
    }
    Status st = spm_encode(t, e, k, o, err);
    free(e);
    return st;
}

/* Longest special token allowed at text[p]; its id (length in *mlen) or
 * -1. User-defined tokens match anywhere (they are vocabulary, as in
 * llama.cpp and Hugging Face: Gemma's "<b>" in a user's text is its token);
 * control and unknown ones only with parse_special and, under a special_ok
 * mask, only where every byte they cover is marked. */
static int match_special(const Tokenizer *t, const uint8_t *u, size_t len, size_t p,
                         const TokEncodeOpts *o, size_t *mlen) {
    const uint8_t *ok = o->special_ok;
    bool ctl = o->parse_special && (!ok || ok[p]); /* a control token may cover [p, p + d) */
    int best = -1;
    int32_t node = t->trie_root[u[p]];
    for (size_t d = 1; node >= 0; d++) {
        int id = t->trie[node].id;
        if (id >= 0 && ((t->flags[id] & TF_USER) || ctl)) {
            best = id;
            *mlen = d;
        }
        if (p + d >= len)
            break;
        if (ok && !ok[p + d])
            ctl = false;
        uint8_t c = u[p + d];
        for (node = t->trie[node].child; node >= 0 && t->trie[node].byte != c;)
            node = t->trie[node].sibling;
    }
    return best;
}

Status tok_encode(const Tokenizer *t, const char *text, size_t len, const TokEncodeOpts *opts,
                  int32_t *ids, size_t cap, size_t *n, Err *err) {
    static const TokEncodeOpts none = {0};
    const TokEncodeOpts *o = opts ? opts : &none;
    *n = 0;
    if (len > TOK_MAX_TEXT)
        return err_set(err, STATUS_LIMIT, "tokenize: text of %zu bytes (limit %u)", len,
                       TOK_MAX_TEXT);
    if (o->add_bos && t->bos < 0)
        return err_set(err, STATUS_INVALID, "tokenize: add_bos but the vocabulary has no BOS");
    if (o->add_eos && t->eos < 0)
        return err_set(err, STATUS_INVALID, "tokenize: add_eos but the vocabulary has no EOS");
    TokOut out = {.ids = ids, .cap = cap};
    BpeCtx bc = {.t = t, .o = &out};
    if (o->add_bos)
        tok_out_push(&out, t->bos);
    Status st = STATUS_OK;
    const uint8_t *u = (const uint8_t *)text;
    size_t frag = 0;
    bool any_special = t->n_trie > 0;
    for (size_t p = 0; any_special && p < len && st == STATUS_OK;) {
        size_t mlen = 0;
        int id = t->trie_root[u[p]] >= 0 ? match_special(t, u, len, p, o, &mlen) : -1;
        if (id < 0) {
            p++;
            continue;
        }
        if (p > frag)
            st = encode_fragment(t, text + frag, p - frag, &out, &bc, err);
        tok_out_push(&out, id);
        p += mlen;
        frag = p;
    }
    if (st == STATUS_OK && len > frag)
        st = encode_fragment(t, text + frag, len - frag, &out, &bc, err);
    bpe_scratch_free(&bc.sc);
    if (st != STATUS_OK)
        return st;
    if (o->add_eos)
        tok_out_push(&out, t->eos);
    *n = out.n;
    if (out.n > cap)
        return err_set(err, STATUS_LIMIT, "tokenize: the text needs %zu ids, room for %zu", out.n,
                       cap);
    return STATUS_OK;
}

/* ----------------------------------------------------------- decoding */

const char *tok_piece(const Tokenizer *t, int id, bool render_special, size_t *len) {
    *len = 0;
    if (!id_ok(t, id))
        return NULL;
    if ((t->flags[id] & TF_SPECIAL) && !render_special)
        return t->piece_buf; /* empty */
    uint32_t a = t->piece_off[id], b = t->piece_off[id + 1];
    *len = b - a;
    return t->piece_buf + a;
}

int tok_piece_bytes(const Tokenizer *t, int id, bool render_special, char *buf) {
    size_t n;
    const char *p = tok_piece(t, id, render_special, &n);
    if (!p)
        return -1;
    memcpy(buf, p, n);
    return (int)n;
}

size_t tok_max_piece(const Tokenizer *t) { return t->max_piece; }

/* The SPM leading-space rule: piece 'p' (n bytes) of token 'id' with
 * *at_start telling whether no text came since the start or the last
 * special-token match. Returns the bytes to skip. */
static int space_rule(const Tokenizer *t, int id, const char *p, int n, bool *at_start) {
    if (t->kind == TOK_KIND_BPE || !t->add_space_prefix)
        return 0;
    if (t->flags[id] & TF_MATCHABLE) {
        *at_start = true;
        return 0;
    }
    if (n <= 0 || !*at_start)
        return 0;
    *at_start = false;
    return p[0] == ' ' ? 1 : 0;
}

size_t tok_decode(const Tokenizer *t, const int32_t *ids, size_t n, bool render_special, char *buf,
                  size_t cap) {
    size_t total = 0;
    bool at_start = true;
    for (size_t i = 0; i < n; i++) {
        size_t k;
        const char *piece = tok_piece(t, ids[i], render_special, &k);
        if (!piece)
            continue;
        int skip = space_rule(t, ids[i], piece, (int)k, &at_start);
        for (size_t j = (size_t)skip; j < k; j++, total++)
            if (total < cap)
                buf[total] = piece[j];
    }
    return total;
}

void tok_stream_init(TokStream *s, const Tokenizer *t, bool render_special) {
    memset(s, 0, sizeof *s);
    s->t = t;
    s->render_special = render_special;
    s->first = true;
}

static const char FFFD[] = "\xef\xbf\xbd";

static void put(char *out, size_t cap, size_t *w, const char *p, size_t n) {
    if (*w + n <= cap) { /* never short for cap >= TOK_MAX_STREAM_OUT (checked at load) */
        memcpy(out + *w, p, n);
        *w += n;
    }
}

/* Write the complete characters of u[0..n) to out; an incomplete tail (a
 * valid prefix cut short by n, at most 3 bytes) goes to s->pend. */
static void stream_chars(TokStream *s, const uint8_t *u, size_t n, char *out, size_t cap,
                         size_t *w) {
    for (size_t i = 0; i < n;) {
        int bad;
        bool inc;
        int c = tok_utf8_char(u + i, n - i, &bad, &inc);
        if (c > 0) {
            put(out, cap, w, (const char *)u + i, (size_t)c);
            i += (size_t)c;
        } else if (inc) {
            memcpy(s->pend, u + i, n - i);
            s->n_pend = (int)(n - i);
            return;
        } else {
            put(out, cap, w, FFFD, 3);
            i += (size_t)bad;
        }
    }
}

size_t tok_stream_push(TokStream *s, int id, char *out, size_t cap) {
    size_t k;
    const char *piece = tok_piece(s->t, id, s->render_special, &k);
    if (!piece)
        return 0;
    size_t skip = (size_t)space_rule(s->t, id, piece, (int)k, &s->first);
    const uint8_t *p = (const uint8_t *)piece + skip;
    size_t n = k - skip, w = 0;
    if (s->n_pend > 0 && n > 0) {
        /* The pending bytes and the piece's first bytes decide one character
         * (or one ill-formed subpart): at most 4 bytes, so join them in a
         * small buffer rather than copying the whole piece after them. */
        uint8_t head[sizeof s->pend + 4];
        size_t np = (size_t)s->n_pend, take = n < 4 ? n : 4;
        memcpy(head, s->pend, np);
        memcpy(head + np, p, take);
        s->n_pend = 0;
        int bad;
        bool inc;
        int c = tok_utf8_char(head, np + take, &bad, &inc);
        size_t used; /* bytes of head consumed: always >= np (pend is a valid prefix) */
        if (c > 0) {
            put(out, cap, &w, (const char *)head, (size_t)c);
            used = (size_t)c;
        } else if (inc) { /* the whole piece (take == n) still completes nothing */
            memcpy(s->pend, head, np + take);
            s->n_pend = (int)(np + take);
            return w;
        } else {
            put(out, cap, &w, FFFD, 3);
            used = (size_t)bad;
        }
        p += used - np;
        n -= used - np;
    }
    stream_chars(s, p, n, out, cap, &w);
    return w;
}

size_t tok_stream_flush(TokStream *s, char *out, size_t cap) {
    size_t w = 0;
    if (s->n_pend > 0)
        put(out, cap, &w, FFFD, 3);
    s->n_pend = 0;
    return w;
}
