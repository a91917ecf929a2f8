/* wordpiece.c - BERT's WordPiece (tokenizer.ggml.model "bert").
 *
 * The vocabulary is stored as llama.cpp's converter writes it
 * (convert_hf_to_gguf.py, BertModel.set_vocab): a word-initial piece "foo"
 * as "\u2581foo", a continuation "##oo" as "oo", bracketed specials
 * ("[CLS]", "[unused0]") as they are. Encoding one plain fragment follows
 * Hugging Face's BertNormalizer + BertPreTokenizer + WordPiece (and
 * transformers.js, the test oracle):
 *   1. clean: drop U+0000, U+FFFD, ill-formed bytes and control characters
 *      (Cc, Cf, Co; not \t \n \r); whitespace (\t \n \r, Zs, U+2028/9)
 *      becomes ' ';
 *   2. CJK ideographs (BERT's ranges, by code point) get a space each side;
 *   3. uncased vocabularies: lower case (full Unicode mapping, as
 *      String.toLowerCase / str.lower: final sigma, dotted I) then accents
 *      stripped (NFD, nonspacing marks Mn dropped);
 *   4. split at whitespace, and every punctuation character (Unicode P*
 *      and the ASCII symbols !"#$%&'()*+,-./:;<=>?@[\]^_`{|}~) is a word;
 *   5. per word: greedy longest-match-first pieces, the first looked up
 *      with the U+2581 mark, the others without; a word with an unmatched
 *      rest, or of more than WPM_MAX_WORD_CHARS characters, is one [UNK].
 * ICU (a dependency already, safety/) does the case mapping, NFD and
 * general categories.
 *
 * Cased or uncased: GGUF has no key for it (llama.cpp lowercases every
 * bert vocabulary and never strips accents). We lower case and strip
 * accents when no normal token of the vocabulary has a character that
 * lower case would change (bert-base-uncased, MiniLM, bge, e5, nomic); a
 * vocabulary with capitals (bert-base-cased) keeps case and accents, as
 * its tokenizer_config (do_lower_case false) does.
 *
 * Known differences: transformers.js tests CJK per UTF-16 unit, so it does
 * not space the astral ideographs (U+20000..) that Python and Rust
 * tokenizers space (we follow those); llama.cpp keeps accents (its NFD
 * leaves the combining marks in the word) and has no 100-character limit. */
#include <stdlib.h>
#include <string.h>
#include <unicode/uchar.h>
#include <unicode/unorm2.h>
#include <unicode/ustring.h>
#include <unicode/utf16.h>

#include "core/utf8.h"
#include "tokenizer/tok_impl.h"

#define WPM_MAX_WORD_CHARS 100 /* Hugging Face's max_input_chars_per_word */
static const char U2581[] = "\xe2\x96\x81";

static bool is_cjk(uint32_t c) {
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
           (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
           (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B820 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

static bool is_space(uint32_t c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == 0x2028 || c == 0x2029 ||
           u_charType((UChar32)c) == U_SPACE_SEPARATOR;
}

static bool is_control(uint32_t c) {
    if (c == '\t' || c == '\n' || c == '\r')
        return false;
    int8_t ty = u_charType((UChar32)c);
    return ty == U_CONTROL_CHAR || ty == U_FORMAT_CHAR || ty == U_PRIVATE_USE_CHAR ||
           ty == U_SURROGATE;
}

static bool is_punct(uint32_t c) {
    if ((c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) || (c >= 0x5B && c <= 0x60) ||
        (c >= 0x7B && c <= 0x7E))
        return true;
    return u_ispunct((UChar32)c) != 0;
}

bool wpm_vocab_is_cased(const Tokenizer *t) {
    for (int id = 0; id < t->n_vocab; id++) {
        if (t->type[id] != TOK_TYPE_NORMAL)
            continue;
        size_t n;
        const uint8_t *s = (const uint8_t *)tok_str(t, id, &n);
        if (n >= 2 && s[0] == '[' && s[n - 1] == ']')
            continue;
        for (size_t i = 0; i < n;) {
            int bad;
            bool inc;
            int k = tok_utf8_char(s + i, n - i, &bad, &inc);
            if (k == 0) {
                i += (size_t)bad;
                continue;
            }
            UChar32 c = (UChar32)utf8_get(s + i, k);
            if (u_tolower(c) != c)
                return true;
            i += (size_t)k;
        }
    }
    return false;
}

/* A growable UTF-16 buffer. */
typedef struct {
    UChar *p;
    int32_t n, cap;
} UBuf;

static bool ubuf_reserve(UBuf *b, int64_t cap) {
    if (cap <= b->cap)
        return true;
    if (cap > INT32_MAX / 2)
        return false;
    UChar *q = realloc(b->p, (size_t)cap * sizeof *q);
    if (!q)
        return false;
    b->p = q;
    b->cap = (int32_t)cap;
    return true;
}

static void ubuf_put(UBuf *b, uint32_t c) { /* room reserved by the caller */
    if (c > 0xFFFF) {
        b->p[b->n++] = (UChar)U16_LEAD(c);
        b->p[b->n++] = (UChar)U16_TRAIL(c);
    } else {
        b->p[b->n++] = (UChar)c;
    }
}

/* Steps 1-2 of the header: s[0..len) cleaned into b. */
static bool clean(const char *s, size_t len, UBuf *b) {
    if (!ubuf_reserve(b, (int64_t)len * 3 + 8))
        return false;
    const uint8_t *u = (const uint8_t *)s;
    for (size_t i = 0; i < len;) {
        int bad;
        bool inc;
        int k = tok_utf8_char(u + i, len - i, &bad, &inc);
        if (k == 0) { /* ill-formed: U+FFFD, dropped */
            i += (size_t)bad;
            continue;
        }
        uint32_t c = utf8_get(u + i, k);
        i += (size_t)k;
        if (c == 0 || c == 0xFFFD || is_control(c))
            continue;
        if (is_space(c)) {
            ubuf_put(b, ' ');
        } else if (is_cjk(c)) {
            ubuf_put(b, ' ');
            ubuf_put(b, c);
            ubuf_put(b, ' ');
        } else {
            ubuf_put(b, c);
        }
    }
    return true;
}

/* dst = f(src) for an ICU function with preflighting. */
typedef int32_t (*UTransform)(UChar *dst, int32_t cap, const UChar *src, int32_t n, void *ctx,
                              UErrorCode *ec);

static int32_t tr_lower(UChar *dst, int32_t cap, const UChar *src, int32_t n, void *ctx,
                        UErrorCode *ec) {
    (void)ctx;
    return u_strToLower(dst, cap, src, n, "", ec);
}

static int32_t tr_nfd(UChar *dst, int32_t cap, const UChar *src, int32_t n, void *ctx,
                      UErrorCode *ec) {
    return unorm2_normalize((const UNormalizer2 *)ctx, src, n, dst, cap, ec);
}

static bool transform(UTransform f, void *ctx, const UBuf *src, UBuf *dst) {
    for (int tries = 0; tries < 2; tries++) {
        UErrorCode ec = U_ZERO_ERROR;
        int32_t n = f(dst->p, dst->cap, src->p, src->n, ctx, &ec);
        if (U_SUCCESS(ec) && n <= dst->cap) {
            dst->n = n;
            return true;
        }
        if (ec != U_BUFFER_OVERFLOW_ERROR || !ubuf_reserve(dst, (int64_t)n + 8))
            return false;
    }
    return false;
}

/* Step 5: one word (n code points, its UTF-8 after the U+2581 mark in
 * w[3..), char boundaries at off[0..n], off[0] = 3). */
static void encode_word(const Tokenizer *t, const char *w, const uint32_t *off, int n, TokOut *o) {
    size_t mark = o->n;
    if (n > WPM_MAX_WORD_CHARS) {
        tok_out_push(o, t->unk);
        return;
    }
    for (int start = 0; start < n;) {
        int found = -1, end = n;
        for (; end > start; end--) {
            size_t a = start == 0 ? 0 : off[start], len = off[end] - a;
            if (len > t->max_token_len)
                continue;
            found = tok_lookup(t, w + a, len);
            if (found >= 0)
                break;
        }
        if (found < 0) { /* the rest matches nothing: the whole word is unknown */
            o->n = mark;
            tok_out_push(o, t->unk);
            return;
        }
        tok_out_push(o, found);
        start = end;
    }
}

Status wpm_encode(const Tokenizer *t, const char *s, size_t len, TokOut *o, Err *err) {
    UBuf a = {0}, b = {0};
    char *w = NULL;
    uint32_t *off = NULL;
    Status st = STATUS_OK;
    if (!clean(s, len, &a))
        goto oom;
    if (t->wpm_lower) {
        UErrorCode ec = U_ZERO_ERROR;
        const UNormalizer2 *nfd = unorm2_getNFDInstance(&ec);
        if (U_FAILURE(ec)) {
            st = err_set(err, STATUS_UNSUPPORTED, "wordpiece: ICU has no NFD normalizer (%s)",
                         u_errorName(ec));
            goto done;
        }
        if (!transform(tr_lower, NULL, &a, &b) || !transform(tr_nfd, (void *)nfd, &b, &a))
            goto oom;
        int32_t k = 0; /* accents: the nonspacing marks go */
        for (int32_t i = 0; i < a.n;) {
            UChar32 c;
            int32_t at = i;
            U16_NEXT(a.p, i, a.n, c);
            if (u_charType(c) != U_NON_SPACING_MARK)
                while (at < i)
                    a.p[k++] = a.p[at++];
        }
        a.n = k;
    }
    /* a word's UTF-8 (4 bytes per UTF-16 unit at most) after the mark */
    w = malloc((size_t)a.n * 4 + 8);
    off = malloc(((size_t)a.n + 2) * sizeof *off);
    if (!w || !off)
        goto oom;
    memcpy(w, U2581, 3);
    int n = 0; /* characters of the word being gathered */
    off[0] = 3;
    for (int32_t i = 0; i <= a.n;) {
        UChar32 c = -1;
        if (i < a.n)
            U16_NEXT(a.p, i, a.n, c);
        else
            i++;
        bool sp = c < 0 || is_space((uint32_t)c), pu = c >= 0 && is_punct((uint32_t)c);
        if ((sp || pu) && n > 0) {
            encode_word(t, w, off, n, o);
            n = 0;
        }
        if (sp)
            continue;
        off[n + 1] = off[n] + (uint32_t)utf8_put((uint32_t)c, w + off[n]);
        n++;
        if (pu) {
            encode_word(t, w, off, n, o);
            n = 0;
        }
    }
    goto done;
oom:
    st = err_set(err, STATUS_NOMEM, "wordpiece: out of memory for a text of %zu bytes", len);
done:
    free(a.p);
    free(b.p);
    free(w);
    free(off);
    return st;
}
