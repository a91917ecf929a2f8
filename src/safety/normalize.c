/* normalize.c - folds and forms of a text for moderation (normalize.h).
 *
 * ICU does the Unicode work (NFKC_Casefold, UTS #39 skeletons, NFD, general
 * categories); libsodium decodes base64. What is ours: which steps run in
 * which order, the leetspeak table, the spaced-letter joining and the
 * limits. Not here: deciding anything (classify.h scores the forms). */
#include "safety/normalize.h"

#include <pthread.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unicode/uchar.h>
#include <unicode/unorm2.h>
#include <unicode/uspoof.h>
#include <unicode/ustring.h>
#include <unicode/utf16.h>

#include "core/utf8.h"

#define NORM_SKEL_MAX 32 /* UTF-16 units of one character's skeleton kept */

static const UNormalizer2 *g_nfkc_cf, *g_nfd;
static USpoofChecker *g_spoof;
static UErrorCode g_init_err = U_ZERO_ERROR;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void init_icu(void) {
    g_nfkc_cf = unorm2_getNFKCCasefoldInstance(&g_init_err);
    if (U_SUCCESS(g_init_err))
        g_nfd = unorm2_getNFDInstance(&g_init_err);
    if (U_SUCCESS(g_init_err))
        g_spoof = uspoof_open(&g_init_err);
}

static Status icu_ready(Err *err) {
    pthread_once(&g_once, init_icu);
    if (U_FAILURE(g_init_err))
        return err_set(err, STATUS_UNSUPPORTED, "ICU: %s", u_errorName(g_init_err));
    return STATUS_OK;
}

const char *norm_kind_name(NormKind k) {
    static const char *const n[NORM_N_KINDS] = {"fold", "leet", "rot13", "decoded"};
    return k < NORM_N_KINDS ? n[k] : "?";
}

/* ------------------------------------------------------------ a growable buffer */

typedef struct {
    char *p;
    size_t len, cap;
    bool oom;
} Buf;

static void buf_put(Buf *b, const char *s, size_t n) {
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void buf_byte(Buf *b, char c) { buf_put(b, &c, 1); }

static Status buf_take(Buf *b, char **out, size_t *out_len, Err *err) {
    buf_put(b, "", 0); /* a NUL even when empty */
    if (b->oom) {
        free(b->p);
        *out = NULL;
        return err_set(err, STATUS_NOMEM, "normalising text: out of memory");
    }
    *out = b->p;
    if (out_len)
        *out_len = b->len;
    return STATUS_OK;
}

/* ------------------------------------------------------------ the fold */

static bool is_alpha(unsigned char c) { return (c | 0x20) >= 'a' && (c | 0x20) <= 'z'; }

/* One non-ASCII code point (already NFKC-casefolded) as its prototype:
 * skeleton, NFD, combining marks dropped, lower-cased, as UTF-8. */
static void fold_char(UChar32 cp, Buf *out) {
    UChar in[2], skel[NORM_SKEL_MAX], nfd[NORM_SKEL_MAX * 4];
    int32_t n = 0;
    UBool bad = false;
    U16_APPEND(in, n, 2, cp, bad);
    UErrorCode ec = U_ZERO_ERROR;
    int32_t sn = uspoof_getSkeleton(g_spoof, 0, in, n, skel, NORM_SKEL_MAX, &ec);
    if (U_FAILURE(ec) || bad) { /* too long a prototype: keep the character */
        sn = n;
        memcpy(skel, in, (size_t)n * sizeof *in);
    }
    ec = U_ZERO_ERROR;
    int32_t dn = unorm2_normalize(g_nfd, skel, sn, nfd, NORM_SKEL_MAX * 4, &ec);
    if (U_FAILURE(ec)) {
        memcpy(nfd, skel, (size_t)sn * sizeof *skel);
        dn = sn;
    }
    for (int32_t i = 0; i < dn;) {
        UChar32 c;
        U16_NEXT(nfd, i, dn, c);
        if (u_charType(c) == U_NON_SPACING_MARK)
            continue;
        c = u_tolower(c);
        char u8[4];
        buf_put(out, u8, (size_t)utf8_put((uint32_t)c, u8));
    }
}

/* UTF-8 -> UTF-16 (invalid bytes as U+FFFD) -> NFKC_Casefold; owned. */
static UChar *to_nfkc(const char *in, size_t len, int32_t *n_out, Err *err) {
    UErrorCode ec = U_ZERO_ERROR;
    int32_t n16 = 0;
    u_strFromUTF8WithSub(NULL, 0, &n16, in, (int32_t)len, 0xFFFD, NULL, &ec);
    if (ec != U_BUFFER_OVERFLOW_ERROR && U_FAILURE(ec)) {
        err_set(err, STATUS_FORMAT, "normalising text: %s", u_errorName(ec));
        return NULL;
    }
    UChar *u = malloc(((size_t)n16 + 1) * sizeof *u);
    if (!u) {
        err_set(err, STATUS_NOMEM, "normalising text: out of memory");
        return NULL;
    }
    ec = U_ZERO_ERROR;
    u_strFromUTF8WithSub(u, n16 + 1, NULL, in, (int32_t)len, 0xFFFD, NULL, &ec);
    /* NFKC can grow a string (ﷺ is 18 characters): ask for the size */
    int32_t nn = unorm2_normalize(g_nfkc_cf, u, n16, NULL, 0, &(UErrorCode){U_ZERO_ERROR});
    UChar *v = nn >= 0 ? malloc(((size_t)nn + 1) * sizeof *v) : NULL;
    ec = U_ZERO_ERROR;
    if (v)
        nn = unorm2_normalize(g_nfkc_cf, u, n16, v, nn + 1, &ec);
    free(u);
    if (!v || U_FAILURE(ec)) {
        free(v);
        err_set(err, v ? STATUS_FORMAT : STATUS_NOMEM, "normalising text: %s",
                v ? u_errorName(ec) : "out of memory");
        return NULL;
    }
    *n_out = nn;
    return v;
}

Status norm_fold(const char *in, size_t len, char **out, size_t *out_len, Err *err) {
    *out = NULL;
    if (len > NORM_MAX_BYTES)
        return err_set(err, STATUS_LIMIT, "a text of %zu bytes to moderate (limit %u)", len,
                       NORM_MAX_BYTES);
    Status r = icu_ready(err);
    if (r)
        return r;
    int32_t n = 0;
    UChar *u = to_nfkc(in, len, &n, err);
    if (!u)
        return err->status;
    Buf b = {0};
    for (int32_t i = 0; i < n;) {
        UChar32 c;
        U16_NEXT(u, i, n, c);
        if (c < 0x80)
            buf_byte(&b, (char)((c >= 'A' && c <= 'Z') ? c + 32 : c));
        else
            fold_char(c, &b);
    }
    free(u);
    if (b.oom)
        return buf_take(&b, out, out_len, err);
    /* a letter three or more times in a row counts once (after folding, so
     * 'kiіiill' with a Cyrillic і counts too), unless the run is the whole
     * word ("xxx", "zzz") */
    size_t w = 0;
    for (size_t i = 0; i < b.len;) {
        size_t j = i;
        while (j < b.len && b.p[j] == b.p[i])
            j++;
        bool whole = (i == 0 || !is_alpha((unsigned char)b.p[i - 1])) &&
                     (j == b.len || !is_alpha((unsigned char)b.p[j]));
        size_t keep = j - i >= 3 && is_alpha((unsigned char)b.p[i]) && !whole ? 1 : j - i;
        memmove(b.p + w, b.p + i, keep);
        w += keep;
        i = j;
    }
    b.len = w;
    if (b.p)
        b.p[w] = '\0';
    return buf_take(&b, out, out_len, err);
}

/* ------------------------------------------------------------ the leet reading */

/* The letter a digit or symbol stands for, or 0. */
static char leet(unsigned char c) {
    switch (c) {
    case '0': return 'o';
    case '1': return 'i';
    case '!': return 'i';
    case '|': return 'l';
    case '3': return 'e';
    case '4': return 'a';
    case '@': return 'a';
    case '5': return 's';
    case '$': return 's';
    case '7': return 't';
    case '8': return 'b';
    case '9': return 'g';
    default: return 0;
    }
}

static bool is_sep(unsigned char c) {
    return c == ' ' || c == '.' || c == '-' || c == '_' || c == '*' || c == ',' || c == '/' ||
           c == '|' || c == '+' || c == '~';
}

/* Letters spelled out one at a time joined: a letter alone, a separator,
 * a letter alone, ... at least 'min' letters. Returns how many runs it
 * joined. */
static int join_spaced(const char *p, size_t n, size_t min, Buf *out) {
    int joined = 0;
    for (size_t i = 0; i < n;) {
        bool alone = is_alpha((unsigned char)p[i]) && (i == 0 || !is_alpha((unsigned char)p[i - 1]));
        size_t k = i, letters = 0;
        /* a letter alone at p[k]: is another alone after one separator? */
        while (alone && k < n && is_alpha((unsigned char)p[k]) &&
               (k + 1 >= n || !is_alpha((unsigned char)p[k + 1]))) {
            letters++;
            if (k + 2 < n && is_sep((unsigned char)p[k + 1]) && is_alpha((unsigned char)p[k + 2]) &&
                (k + 3 >= n || !is_alpha((unsigned char)p[k + 3])))
                k += 2;
            else
                break;
        }
        if (letters >= min) {
            for (size_t q = i; q <= k; q += 2)
                buf_byte(out, p[q]);
            i = k + 1;
            joined++;
        } else {
            buf_byte(out, p[i++]);
        }
    }
    return joined;
}

/* Runs of leet characters touching a letter read as letters (and, once a
 * text has shown it writes that way, a lone 1 or 4 as "i" and "a"); then
 * letters spelled out one at a time are joined: runs of three or more, and
 * once a text has one such run, runs of two ("t o" in "h o w   t o"). */
static Status leet_form(const char *f, size_t len, char **out, size_t *out_len, Err *err) {
    int touching = 0;
    for (int pass = 0; pass < 2; pass++) {
        Buf b = {0};
        for (size_t i = 0; i < len;) {
            size_t j = i;
            while (j < len && leet((unsigned char)f[j]))
                j++;
            if (j == i) {
                buf_byte(&b, f[i++]);
                continue;
            }
            bool before = i > 0 && is_alpha((unsigned char)f[i - 1]);
            bool after = j < len && is_alpha((unsigned char)f[j]);
            bool lone = j == i + 1 && (f[i] == '1' || f[i] == '4') && !before && !after &&
                        (i == 0 || f[i - 1] == ' ') && (j == len || f[j] == ' ');
            bool map = before || after || (pass == 1 && lone);
            touching += before || after;
            for (size_t k = i; k < j; k++)
                buf_byte(&b, map ? leet((unsigned char)f[k]) : f[k]);
            i = j;
        }
        if (pass == 0 && touching) { /* read the lone ones too */
            free(b.p);
            continue;
        }
        if (b.oom)
            return buf_take(&b, out, out_len, err);
        Buf c = {0};
        const char *p = b.p ? b.p : "";
        if (join_spaced(p, b.len, 3, &c) > 0) {
            free(c.p);
            c = (Buf){0};
            join_spaced(p, b.len, 2, &c);
        }
        free(b.p);
        return buf_take(&c, out, out_len, err);
    }
    return err_set(err, STATUS_INVALID, "unreachable");
}

/* ------------------------------------------------------------ base64 */

static bool is_b64(unsigned char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '+' || c == '/' || c == '-' || c == '_';
}

/* Is d[0..n) text: valid UTF-8 of which at most one byte in eight is a
 * control character other than tab and newlines? */
static bool looks_like_text(const unsigned char *d, size_t n) {
    if (!n || utf8_valid_len((const char *)d, n, NULL) != n)
        return false;
    size_t ctl = 0;
    for (size_t i = 0; i < n; i++)
        ctl += d[i] < 0x20 && d[i] != '\t' && d[i] != '\n' && d[i] != '\r';
    return ctl * 8 <= n;
}

/* Append the text of every base64 segment of s[0..n) to 'out'. */
static void decode_segments(const char *s, size_t n, Buf *out) {
    for (size_t i = 0; i < n;) {
        if (!is_b64((unsigned char)s[i])) {
            i++;
            continue;
        }
        size_t j = i;
        while (j < n && is_b64((unsigned char)s[j]))
            j++;
        size_t run = j - i;
        while (j < n && s[j] == '=')
            j++;
        if (run >= NORM_MIN_BASE64 && run % 4 != 1) {
            bool url = memchr(s + i, '-', run) || memchr(s + i, '_', run);
            unsigned char *bin = malloc(run);
            size_t bl = 0;
            if (bin && sodium_base642bin(bin, run, s + i, run, NULL, &bl, NULL,
                                         url ? sodium_base64_VARIANT_URLSAFE_NO_PADDING
                                             : sodium_base64_VARIANT_ORIGINAL_NO_PADDING) == 0 &&
                looks_like_text(bin, bl)) {
                buf_put(out, (const char *)bin, bl);
                buf_byte(out, '\n');
            }
            free(bin);
        }
        i = j;
    }
}

/* ------------------------------------------------------------ the forms */

static Status add_form(NormForms *f, NormKind k, char *text, size_t len) {
    f->f[f->n++] = (NormForm){.kind = k, .text = text, .len = len};
    return STATUS_OK;
}

Status norm_forms(const char *in, size_t len, NormForms *f, Err *err) {
    memset(f, 0, sizeof *f);
    char *fold = NULL, *lt = NULL;
    size_t fl = 0, ll = 0;
    Status r = norm_fold(in, len, &fold, &fl, err);
    if (!r)
        r = leet_form(fold, fl, &lt, &ll, err);
    if (r) {
        free(fold);
        return r;
    }
    add_form(f, NORM_FOLD, fold, fl);
    if (ll == fl && !memcmp(lt, fold, fl))
        free(lt);
    else
        add_form(f, NORM_LEET, lt, ll);
    /* ROT13 of the fold's letters */
    char *rot = malloc(fl + 1);
    if (!rot) {
        norm_forms_free(f);
        return err_set(err, STATUS_NOMEM, "normalising text: out of memory");
    }
    for (size_t i = 0; i <= fl; i++) {
        unsigned char c = (unsigned char)fold[i];
        rot[i] = (char)(c >= 'a' && c <= 'z' ? 'a' + (c - 'a' + 13) % 26 : c);
    }
    add_form(f, NORM_ROT13, rot, fl);
    /* base64, decoded from the original text (folding would break it) */
    Buf dec = {0};
    decode_segments(in, len, &dec);
    for (int depth = 1; depth < NORM_MAX_DEPTH && dec.len && !dec.oom; depth++) {
        Buf more = {0};
        decode_segments(dec.p, dec.len, &more);
        if (more.len)
            buf_put(&dec, more.p, more.len);
        free(more.p);
    }
    if (dec.oom) {
        free(dec.p);
        norm_forms_free(f);
        return err_set(err, STATUS_NOMEM, "normalising text: out of memory");
    }
    if (dec.len) {
        char *df = NULL, *dl = NULL;
        size_t dfl = 0, dll = 0;
        r = norm_fold(dec.p, dec.len, &df, &dfl, err);
        if (!r)
            r = leet_form(df, dfl, &dl, &dll, err);
        free(df);
        if (r) {
            free(dec.p);
            norm_forms_free(f);
            return r;
        }
        add_form(f, NORM_DECODED, dl, dll);
    }
    free(dec.p);
    return STATUS_OK;
}

void norm_forms_free(NormForms *f) {
    if (!f)
        return;
    for (int i = 0; i < f->n; i++)
        free(f->f[i].text);
    memset(f, 0, sizeof *f);
}
