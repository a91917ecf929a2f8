/* pretok.c - pre-tokenizer regexes, by tokenizer.ggml.pre, through PCRE2.
 *
 * Each pre-tokenizer is a list of regexes applied in sequence, as llama.cpp's
 * unicode_regex_split() and Hugging Face's Sequence of Split(Isolated) do:
 * regex k splits every piece that regex k-1 produced into its matches and
 * the gaps between them (gaps are pieces too). The regexes are the ones in
 * the models' tokenizer.json files (llama.cpp's llama-vocab.cpp lists them;
 * where llama.cpp rewrote one for std::regex - (?i:...) or possessive
 * quantifiers - the original is used, since PCRE2 has both).
 *
 * Matching: PCRE2 with UTF and UCP, JIT-compiled when available, and
 * PCRE2_DOLLAR_ENDONLY so that '$' means end of text as in Rust's regex.
 * '\s' and '\S' are rewritten to the Unicode White_Space set before
 * compiling (PCRE2's \s also takes U+180E, which Rust's regex and Oniguruma
 * do not).
 *
 * Invalid UTF-8: the input is split into maximal runs of well-formed UTF-8,
 * matched with PCRE2_NO_UTF_CHECK (already validated, and re-validating the
 * subject on every match call would be quadratic), and every byte that is
 * not part of a well-formed character becomes a pre-token of its own. Each
 * run is matched as its own subject: a lookahead at the end of a run sees
 * end of text, not the invalid byte. (Hugging Face never sees invalid
 * UTF-8: callers convert lossily to U+FFFD first, so there is no reference
 * behaviour to copy; this keeps every byte and keeps runs independent.)
 *
 * Deliberately not here: normalizers (Qwen's NFC), which llama.cpp does not
 * apply either. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_impl.h"

#define PRETOK_JIT_STACK_MAX (16u << 20) /* bytes of JIT stack for one encode call */

/* Unicode White_Space, as the inside of a character class. */
#define WS_CLASS                                                                                   \
    "\\t\\n\\x{0b}\\f\\r\\x{20}\\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}"       \
    "\\x{202f}\\x{205f}\\x{3000}"

/* GPT-2 (and most older models). */
#define RE_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"
/* Llama 3 (tiktoken cl100k style). */
#define RE_LLAMA3                                                                                  \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "                     \
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
/* Qwen 2 / 3: as Llama 3 with single digits. */
#define RE_QWEN2                                                                                   \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "                          \
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_QWEN35                                                                                  \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?[\\p{L}\\p{M}]+|\\p{N}| "                  \
    "?[^\\s\\p{L}\\p{M}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_SEED_CODER                                                                              \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1}| "                       \
    "?[^\\s\\p{L}\\p{N}\\r\\n]+|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_BAILING                                                                                 \
    "'(?i:[sdmt]|ll|ve|re)|[^\\r\\n\\p{L}\\p{N}]?+\\p{L}+|\\p{N}| "                                \
    "?[^\\s\\p{L}\\p{N}]++[\\r\\n]*|\\s*[\\r\\n]|\\s+(?!\\S)|\\s+"
#define RE_UPPER "[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]"
#define RE_LOWER "[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]"
#define RE_CONTR "(?i:'s|'t|'re|'ve|'m|'ll|'d)"
/* GPT-4o / o200k (gpt-oss: tokenizer.ggml.pre = "gpt-4o"): tiktoken's o200k
 * pat_str, the "original regex from tokenizer.json" that llama-vocab.cpp
 * keeps for LLAMA_VOCAB_PRE_TYPE_GPT4O. llama.cpp itself runs a std::regex
 * rewrite of it ("upper" = a letter not in a-z, "lower" = a letter not in
 * A-Z), which differs from this one at case changes between non-ASCII
 * letters ("helloÉcole"); tiktoken and Hugging Face split as this one does.
 * tests/tokenizer/test_oracle.mjs (family o200k) compares the whole
 * tokenizer with js-tiktoken's o200k_base. */
#define RE_GPT4O                                                                                   \
    "[^\\r\\n\\p{L}\\p{N}]?" RE_UPPER "*" RE_LOWER "+" RE_CONTR                                    \
    "?|[^\\r\\n\\p{L}\\p{N}]?" RE_UPPER "+" RE_LOWER "*" RE_CONTR                                  \
    "?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!"                          \
    "\\S)|\\s+"
#define RE_TEKKEN                                                                                  \
    "[^\\r\\n\\p{L}\\p{N}]?" RE_UPPER "*" RE_LOWER "+|[^\\r\\n\\p{L}\\p{N}]?" RE_UPPER             \
    "+" RE_LOWER "*|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_DEEPSEEK3_MAIN                                                                          \
    "[!\"#$%&'()*+,\\-./"                                                                          \
    ":;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\\r\\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| "             \
    "?[\\p{P}\\p{S}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
/* CJK ideographs U+4E00-U+9FA5, U+0800-U+4E00, Hangul U+AC00-U+D7FF. */
#define RE_CJK_DEEPSEEK "[\\x{4e00}-\\x{9fa5}\\x{0800}-\\x{4e00}\\x{ac00}-\\x{d7ff}]+"
/* Bloom family: anything but whitespace and some punctuation (the class
 * also excludes '(' '|' ')', as in the original). */
#define RE_PORO " ?[^(\\s|.,!?\\x{2026}\\x{3002}\\x{ff0c}\\x{3001}\\x{0964}\\x{06d4}\\x{060c})]+"

/* deepseek-llm: letters of the cased scripts (the ranges of its
 * tokenizer.json, written as code points). */
#define RE_DEEPSEEK_LETTERS                                                                        \
    "\\s?[A-Za-z\\x{b5}\\x{c0}-\\x{d6}\\x{d8}-\\x{f6}\\x{f8}-\\x{1ba}\\x{1bc}-\\x{1bf}\\x{1c4}-"   \
    "\\x{293}\\x{295}-\\x{2af}\\x{370}-\\x{373}\\x{376}\\x{377}\\x{37b}-\\x{37d}\\x{37f}\\x{386}"  \
    "\\x{388}-\\x{38a}\\x{38c}\\x{38e}-\\x{3a1}\\x{3a3}-\\x{3f5}\\x{3f7}-\\x{481}\\x{48a}-\\x{"    \
    "52f}"                                                                                         \
    "\\x{531}-\\x{556}\\x{10a0}-\\x{10c5}\\x{13a0}-\\x{13f5}\\x{13f8}-\\x{13fd}\\x{1c90}-\\x{"     \
    "1cba}"                                                                                        \
    "\\x{1cbd}-\\x{1cbf}\\x{1d00}-\\x{1d2b}\\x{1d6b}-\\x{1d77}\\x{1d79}-\\x{1d9a}\\x{1e00}-"       \
    "\\x{1f15}\\x{1f18}-\\x{1f1d}\\x{1f20}-\\x{1f45}\\x{1f48}-\\x{1f4d}\\x{1f50}-\\x{1f57}\\x{"    \
    "1f59}"                                                                                        \
    "\\x{1f5b}\\x{1f5d}\\x{1f5f}-\\x{1f7d}\\x{1f80}-\\x{1fb4}\\x{1fb6}-\\x{1fbc}\\x{1fbe}\\x{"     \
    "1fc2}-"                                                                                       \
    "\\x{1fc4}\\x{1fc6}-\\x{1fcc}\\x{1fd0}-\\x{1fd3}\\x{1fd6}-\\x{1fdb}\\x{1fe0}-\\x{1fec}\\x{"    \
    "1ff2}-"                                                                                       \
    "\\x{1ff4}\\x{1ff6}-\\x{1ffc}\\x{2102}\\x{2107}\\x{210a}-\\x{2113}\\x{2115}\\x{2119}-\\x{"     \
    "211d}"                                                                                        \
    "\\x{2124}\\x{2126}\\x{2128}\\x{212a}-\\x{212d}\\x{212f}-\\x{2134}\\x{2139}\\x{213c}-\\x{"     \
    "213f}"                                                                                        \
    "\\x{2145}-\\x{2149}\\x{214e}\\x{2183}\\x{2184}\\x{2c00}-\\x{2c7b}\\x{2c7e}-\\x{2ce4}\\x{"     \
    "2ceb}-"                                                                                       \
    "\\x{2cee}\\x{2cf2}\\x{2cf3}\\x{a640}-\\x{a66d}\\x{a680}-\\x{a69b}\\x{a722}-\\x{a76f}\\x{"     \
    "a771}-"                                                                                       \
    "\\x{a787}\\x{a78b}-\\x{a78e}\\x{ab70}-\\x{abbf}\\x{fb00}-\\x{fb06}\\x{fb13}-\\x{fb17}\\x{"    \
    "ff21}-"                                                                                       \
    "\\x{ff3a}\\x{ff41}-\\x{ff5a}\\x{10400}-\\x{1044f}\\x{104b0}-\\x{104d3}\\x{104d8}-\\x{104fb}"  \
    "\\x{10c80}-\\x{10cb2}\\x{10cc0}-\\x{10cf2}\\x{118a0}-\\x{118df}\\x{1e900}-\\x{1e943}]+"
/* ASCII and full-width punctuation, general punctuation U+2018-U+201F,
 * CJK symbols U+3000-U+3002. */
#define RE_DEEPSEEK_PUNCT                                                                          \
    "\\s?[!-/:-~\\x{ff01}-\\x{ff0f}\\x{ff1a}-\\x{ff5e}\\x{2018}-\\x{201f}\\x{3000}-\\x{3002}]+"

typedef struct {
    const char *const *names; /* NULL-terminated aliases */
    const char *re[TOK_MAX_REGEXES];
    bool ignore_merges, add_bos;
} PretokDef;

static const char *const N_GPT2[] = {
    "default",    "gpt-2",           "phi-2",       "jina-es", "jina-de",     "gigachat",
    "jina-v2-es", "jina-v2-de",      "a.x-4.0",     "mellum",  "modern-bert", "exaone4",
    "jina-v1-en", "jina-v2-code",    "roberta-bpe", "mpt",     "olmo",        "jais",
    "trillion",   "granite-docling", "gpt-neox",    NULL};
static const char *const N_LLAMA3[] = {"llama3",       "llama-v3", "llama-bpe", "falcon3",
                                       "falcon-h1",    "pixtral",  "midm-2.0",  "lfm2",
                                       "jina-v5-nano", NULL};
static const char *const N_LLAMA3_RE[] = {"dbrx", "smaug-bpe", "glm4", "chatglm-bpe", NULL};
static const char *const N_QWEN2[] = {
    "qwen2",   "deepseek-r1-qwen", "kormo",  "f2llmv2", "stablelm2",
    "hunyuan", "solar-open",       "megrez", "grok-2",  NULL};
static const char *const N_QWEN35[] = {"qwen35", NULL};
static const char *const N_STARCODER[] = {"starcoder",  "refact",    "command-r",
                                          "smollm",     "codeshell", "exaone",
                                          "minerva-7b", "mellum2",   NULL};
static const char *const N_FALCON[] = {"falcon", NULL};
static const char *const N_DS_LLM[] = {"deepseek-llm", NULL};
static const char *const N_DS_CODER[] = {"deepseek-coder", NULL};
static const char *const N_DS_V3[] = {"deepseek-v3", "hunyuan-dense", "joyai-llm", "hy_v4", NULL};
static const char *const N_GPT4O[] = {"gpt-4o", "llama4", "kanana2", "talkie", "minimax-m2", NULL};
static const char *const N_TEKKEN[] = {"tekken", NULL};
static const char *const N_PORO[] = {"poro-chat", "bloom", "gpt3-finnish", NULL};
static const char *const N_VIKING[] = {"viking", NULL};
static const char *const N_SEED[] = {"seed-coder", NULL};
static const char *const N_BAILING[] = {"bailingmoe", "bailingmoe2", "llada-moe", NULL};

static const PretokDef DEFS[] = {
    {N_GPT2, {RE_GPT2}, false, false},
    {N_LLAMA3, {RE_LLAMA3}, true, true},
    {N_LLAMA3_RE, {RE_LLAMA3}, false, false},
    {N_QWEN2, {RE_QWEN2}, false, false},
    {N_QWEN35, {RE_QWEN35}, false, false},
    {N_STARCODER, {"\\p{N}", RE_GPT2}, false, false},
    {N_FALCON, {"[\\p{P}\\$\\+<=>\\^~\\|`]+", RE_GPT2, "[0-9][0-9][0-9]"}, false, false},
    {N_DS_LLM,
     {"[\\r\\n]", RE_DEEPSEEK_LETTERS, RE_DEEPSEEK_PUNCT, "\\s+$", RE_CJK_DEEPSEEK, "\\p{N}+"},
     false,
     false},
    {N_DS_CODER,
     {"[\\r\\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", RE_CJK_DEEPSEEK, "\\p{N}"},
     false,
     false},
    {N_DS_V3,
     {"\\p{N}{1,3}", "[\\x{4e00}-\\x{9fa5}\\x{3040}-\\x{309f}\\x{30a0}-\\x{30ff}]+",
      RE_DEEPSEEK3_MAIN},
     false,
     false},
    {N_GPT4O, {RE_GPT4O}, false, false},
    {N_TEKKEN, {RE_TEKKEN}, true, true},
    {N_PORO, {RE_PORO}, false, false},
    {N_VIKING, {RE_PORO, "\\p{N}"}, false, false},
    {N_SEED, {RE_SEED_CODER}, false, false},
    {N_BAILING, {RE_BAILING}, false, false},
};

struct Pretok {
    int n;
    pcre2_code *re[TOK_MAX_REGEXES];
};

/* Rewrite \s and \S to White_Space classes. Returns false when 'out' is too
 * small (a bug in the tables above, not input). */
static bool expand_ws(const char *re, char *out, size_t cap) {
    size_t k = 0;
    bool in_class = false;
    for (const char *p = re; *p; p++) {
        const char *add = NULL;
        char two[3] = {0};
        if (*p == '\\' && p[1]) {
            p++;
            if (*p == 's')
                add = in_class ? WS_CLASS : "[" WS_CLASS "]";
            else if (*p == 'S' && !in_class)
                add = "[^" WS_CLASS "]";
            else {
                two[0] = '\\';
                two[1] = *p;
                add = two;
            }
        } else {
            if (*p == '[')
                in_class = true;
            else if (*p == ']')
                in_class = false;
            two[0] = *p;
            add = two;
        }
        size_t n = strlen(add);
        if (k + n + 1 > cap)
            return false;
        memcpy(out + k, add, n);
        k += n;
    }
    out[k] = '\0';
    return true;
}

void pretok_free(Pretok *p) {
    if (!p)
        return;
    for (int i = 0; i < p->n; i++)
        pcre2_code_free(p->re[i]);
    free(p);
}

static bool name_is(const char *name, size_t len, const char *want) {
    return strlen(want) == len && memcmp(name, want, len) == 0;
}

Status pretok_new(Pretok **out, const char *name, size_t name_len, bool *ignore_merges,
                  bool *add_bos, Err *err) {
    *out = NULL;
    const PretokDef *def = NULL;
    for (size_t d = 0; d < sizeof DEFS / sizeof DEFS[0] && !def; d++)
        for (const char *const *n = DEFS[d].names; *n; n++)
            if (name_is(name, name_len, *n)) {
                def = &DEFS[d];
                break;
            }
    if (!def)
        return err_set(err, STATUS_UNSUPPORTED, "tokenizer.ggml.pre: unknown pre-tokenizer '%.*s'",
                       (int)(name_len > 64 ? 64 : name_len), name);
    Pretok *p = calloc(1, sizeof *p);
    if (!p)
        return err_set(err, STATUS_NOMEM, "pre-tokenizer: out of memory");
    for (int i = 0; i < TOK_MAX_REGEXES && def->re[i]; i++) {
        char pat[8192];
        if (!expand_ws(def->re[i], pat, sizeof pat)) {
            pretok_free(p);
            return err_set(err, STATUS_LIMIT, "pre-tokenizer '%.*s': regex %d too long",
                           (int)name_len, name, i);
        }
        int ecode;
        PCRE2_SIZE eoff;
        pcre2_code *re =
            pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED,
                          PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY, &ecode, &eoff, NULL);
        if (!re) {
            char msg[256];
            pcre2_get_error_message(ecode, (PCRE2_UCHAR *)msg, sizeof msg);
            pretok_free(p);
            return err_set(err, STATUS_UNSUPPORTED,
                           "pre-tokenizer '%.*s': regex %d does not compile at %zu: %s",
                           (int)name_len, name, i, (size_t)eoff, msg);
        }
        (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* the interpreter is the fallback */
        p->re[p->n++] = re;
    }
    *ignore_merges = def->ignore_merges;
    *add_bos = def->add_bos;
    *out = p;
    return STATUS_OK;
}

typedef struct {
    const Pretok *p;
    pcre2_match_data *md;
    pcre2_match_context *mctx;
    pcre2_jit_stack *jit;
    PretokFn fn;
    void *ctx;
    Err *err;
} Split;

static Status split_level(Split *sp, int level, const char *s, size_t len);

static Status emit(Split *sp, int level, const char *s, size_t len) {
    if (len == 0)
        return STATUS_OK;
    if (level + 1 >= sp->p->n)
        return sp->fn(sp->ctx, s, len);
    return split_level(sp, level + 1, s, len);
}

static int match_at(Split *sp, pcre2_code *re, const char *s, size_t len, size_t from) {
    int rc = pcre2_match(re, (PCRE2_SPTR)s, len, from, PCRE2_NO_UTF_CHECK, sp->md, sp->mctx);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT && !sp->jit) {
        sp->jit = pcre2_jit_stack_create(32u << 10, PRETOK_JIT_STACK_MAX, NULL);
        if (!sp->mctx)
            sp->mctx = pcre2_match_context_create(NULL);
        if (sp->jit && sp->mctx) {
            pcre2_jit_stack_assign(sp->mctx, NULL, sp->jit);
            rc = pcre2_match(re, (PCRE2_SPTR)s, len, from, PCRE2_NO_UTF_CHECK, sp->md, sp->mctx);
        }
    }
    return rc;
}

static Status split_level(Split *sp, int level, const char *s, size_t len) {
    pcre2_code *re = sp->p->re[level];
    size_t gap = 0, from = 0;
    while (from < len) {
        int rc = match_at(sp, re, s, len, from);
        if (rc == PCRE2_ERROR_NOMATCH)
            break;
        if (rc < 0) {
            char msg[128];
            pcre2_get_error_message(rc, (PCRE2_UCHAR *)msg, sizeof msg);
            return err_set(sp->err, STATUS_LIMIT, "pre-tokenizer regex %d failed at byte %zu: %s",
                           level, from, msg);
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(sp->md);
        size_t a = ov[0], b = ov[1];
        if (b <= a) { /* empty match: step over one character, it stays in the gap */
            int bad;
            bool inc;
            int k = tok_utf8_char((const uint8_t *)s + a, len - a, &bad, &inc);
            from = a + (size_t)(k > 0 ? k : 1);
            continue;
        }
        Status st = emit(sp, level, s + gap, a - gap);
        if (st == STATUS_OK)
            st = emit(sp, level, s + a, b - a);
        if (st != STATUS_OK)
            return st;
        gap = from = b;
    }
    return emit(sp, level, s + gap, len - gap);
}

Status pretok_split(const Pretok *p, const char *s, size_t len, PretokFn fn, void *ctx, Err *err) {
    Split sp = {.p = p, .fn = fn, .ctx = ctx, .err = err};
    sp.md = pcre2_match_data_create(16, NULL);
    if (!sp.md)
        return err_set(err, STATUS_NOMEM, "pre-tokenizer: out of memory");
    Status st = STATUS_OK;
    const uint8_t *u = (const uint8_t *)s;
    size_t i = 0;
    while (i < len && st == STATUS_OK) {
        size_t run = i;
        int bad;
        bool inc;
        int k;
        while (i < len && (k = tok_utf8_char(u + i, len - i, &bad, &inc)) > 0)
            i += (size_t)k;
        if (i > run)
            st = p->n > 0 ? split_level(&sp, 0, s + run, i - run) : fn(ctx, s + run, i - run);
        if (i < len && st == STATUS_OK) {
            st = fn(ctx, s + i, 1); /* an invalid byte is a pre-token of its own */
            i++;
        }
    }
    pcre2_match_data_free(sp.md);
    pcre2_match_context_free(sp.mctx);
    pcre2_jit_stack_free(sp.jit);
    return st;
}
