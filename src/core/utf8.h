/* utf8.h - encoding one code point as UTF-8 (the tokenizer's byte maps and
 * decoders, and the evaluation's normalisation, share it; no validation:
 * callers pass code points they decoded or built themselves), and
 * measuring how much of a byte string is valid UTF-8 (the store keeps only
 * text that JSON can carry), and decoding one character. */
#ifndef CGPT_CORE_UTF8_H
#define CGPT_CORE_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Write code point 'cp' (< 0x110000) to out[0..3]; returns the byte count. */
static inline int utf8_put(uint32_t cp, char *out) {
    unsigned char *o = (unsigned char *)out;
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xC0 | (cp >> 6));
        o[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* The length of the character lead byte b starts (1-4), or 0 for a byte
 * no character starts with (a continuation byte, C0, C1, F5-FF). */
static inline int utf8_lead_len(unsigned b) {
    return b < 0x80                 ? 1
           : b >= 0xC2 && b <= 0xDF ? 2
           : b >= 0xE0 && b <= 0xEF ? 3
           : b >= 0xF0 && b <= 0xF4 ? 4
                                    : 0;
}

/* The code point of the whole, valid k-byte character at s (k from
 * utf8_seq). */
static inline uint32_t utf8_get(const unsigned char *s, int k) {
    if (k == 1)
        return s[0];
    if (k == 2)
        return ((uint32_t)(s[0] & 0x1F) << 6) | (s[1] & 0x3F);
    if (k == 3)
        return ((uint32_t)(s[0] & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
    return ((uint32_t)(s[0] & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) |
           ((uint32_t)(s[2] & 0x3F) << 6) | (s[3] & 0x3F);
}

/* The sequence at s[0..n) (n >= 1): its length (1-4) when it is one whole,
 * valid UTF-8 character (RFC 3629: no overlong forms, no surrogates,
 * nothing past U+10FFFF); else minus the length of its maximal invalid
 * subpart (Unicode's "substitution of maximal subparts": what one U+FFFD
 * replaces). A subpart that starts with a lead byte (C2-F4) and reaches n
 * is a character the end cut short. */
static inline int utf8_seq(const unsigned char *s, size_t n) {
    unsigned b = s[0], lo = 0x80, hi = 0xBF;
    int need;
    if (b < 0x80)
        return 1;
    if (b >= 0xC2 && b <= 0xDF)
        need = 1;
    else if (b >= 0xE0 && b <= 0xEF)
        need = 2, lo = b == 0xE0 ? 0xA0 : 0x80, hi = b == 0xED ? 0x9F : 0xBF;
    else if (b >= 0xF0 && b <= 0xF4)
        need = 3, lo = b == 0xF0 ? 0x90 : 0x80, hi = b == 0xF4 ? 0x8F : 0xBF;
    else
        return -1;
    for (int k = 1; k <= need; k++)
        if ((size_t)k >= n || s[k] < (k == 1 ? lo : 0x80) || s[k] > (k == 1 ? hi : 0xBF))
            return -k;
    return need + 1;
}

/* The bytes of s[0..n) that are valid UTF-8, from the start up to the
 * first bad or unfinished character. *cut_short (may be NULL) is set when
 * what stops it is a character that is valid so far but ends with the
 * input - one split across two writes. */
static inline size_t utf8_valid_len(const char *s, size_t n, bool *cut_short) {
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    int k = 1;
    while (i < n && (k = utf8_seq(p + i, n - i)) > 0)
        i += (size_t)k;
    if (cut_short)
        *cut_short = i < n && p[i] >= 0xC2 && p[i] <= 0xF4 && i + (size_t)-k == n;
    return i;
}

#endif
