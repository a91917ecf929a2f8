/* lexicon.c - weighted patterns per category (lexicon.h). PCRE2 does the
 * matching; this file parses the rule lines and combines the evidence. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "safety/lexicon.h"

#include <math.h>
#include <pcre2.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    unsigned cats; /* bit per category it speaks for */
    bool damp;
    float weight; /* evidence, or the damping factor */
    int line;
    pcre2_code *re;
} LexRule;

typedef struct {
    char name[LEX_MAX_NAME + 1];
    char *pattern; /* expanded */
    size_t len;
} LexDefine;

struct Lexicon {
    LexRule *rules;
    int n, cap;
    LexDefine defs[LEX_MAX_DEFINES];
    int n_defs;
};

int lex_n_rules(const Lexicon *lx) { return lx ? lx->n : 0; }

void lex_free(Lexicon *lx) {
    if (!lx)
        return;
    for (int i = 0; i < lx->n; i++)
        pcre2_code_free(lx->rules[i].re);
    for (int i = 0; i < lx->n_defs; i++)
        free(lx->defs[i].pattern);
    free(lx->rules);
    free(lx);
}

/* Fields of a line: up to 'max' words separated by blanks; the last field
 * takes the rest of the line. */
typedef struct {
    const char *p[4];
    size_t n[4];
    int count;
} Fields;

static void split(const char *s, size_t len, int max, Fields *f) {
    size_t i = 0;
    f->count = 0;
    while (f->count < max) {
        while (i < len && (s[i] == ' ' || s[i] == '\t'))
            i++;
        if (i >= len)
            break;
        size_t j = i;
        if (f->count == max - 1) {
            j = len;
            while (j > i && (s[j - 1] == ' ' || s[j - 1] == '\t' || s[j - 1] == '\r'))
                j--;
        } else {
            while (j < len && s[j] != ' ' && s[j] != '\t')
                j++;
        }
        f->p[f->count] = s + i;
        f->n[f->count++] = j - i;
        i = j;
    }
}

static bool parse_unit(const char *s, size_t n, float *out) {
    char buf[32];
    if (n == 0 || n >= sizeof buf)
        return false;
    memcpy(buf, s, n);
    buf[n] = '\0';
    char *end;
    double v = strtod(buf, &end);
    if (*end || !(v >= 0 && v <= 1))
        return false;
    *out = (float)v;
    return true;
}

/* pat[0..plen) with each {NAME} of a define replaced by (?:its pattern);
 * owned, NUL-terminated. */
static Status expand(const Lexicon *lx, const char *pat, size_t plen, char **out, size_t *out_len,
                     const char *name, int line, Err *err) {
    size_t cap = plen + 1, len = 0;
    char *o = malloc(cap);
    if (!o)
        return err_set(err, STATUS_NOMEM, "%s: out of memory", name);
    for (size_t i = 0; i < plen;) {
        const char *use = NULL;
        size_t use_len = 0, skip = 1;
        if (pat[i] == '{' && (i == 0 || pat[i - 1] != '\\')) {
            size_t j = i + 1;
            while (j < plen && ((pat[j] >= 'A' && pat[j] <= 'Z') || pat[j] == '_'))
                j++;
            if (j < plen && pat[j] == '}' && j > i + 1) {
                int d = 0;
                while (d < lx->n_defs && (strlen(lx->defs[d].name) != j - i - 1 ||
                                          memcmp(lx->defs[d].name, pat + i + 1, j - i - 1)))
                    d++;
                if (d == lx->n_defs) {
                    free(o);
                    return err_set(err, STATUS_FORMAT, "%s:%d: {%.*s} is not defined above", name,
                                   line, (int)(j - i - 1), pat + i + 1);
                }
                use = lx->defs[d].pattern;
                use_len = lx->defs[d].len;
                skip = j - i + 1;
            }
        }
        size_t add = use ? use_len + 4 : 1;
        if (len + add + 1 > LEX_MAX_PATTERN) {
            free(o);
            return err_set(err, STATUS_LIMIT, "%s:%d: the pattern expands past %d bytes", name,
                           line, LEX_MAX_PATTERN);
        }
        if (len + add + 1 > cap) {
            while (cap < len + add + 1)
                cap *= 2;
            char *p = realloc(o, cap);
            if (!p) {
                free(o);
                return err_set(err, STATUS_NOMEM, "%s: out of memory", name);
            }
            o = p;
        }
        if (use) {
            memcpy(o + len, "(?:", 3);
            memcpy(o + len + 3, use, use_len);
            o[len + 3 + use_len] = ')';
            len += add;
        } else {
            o[len++] = pat[i];
        }
        i += skip;
    }
    o[len] = '\0';
    *out = o;
    *out_len = len;
    return STATUS_OK;
}

static Status add_rule(Lexicon *lx, const LexRule *r, const char *pat, size_t plen,
                       const char *name, Err *err) {
    if (lx->n >= LEX_MAX_RULES)
        return err_set(err, STATUS_LIMIT, "%s:%d: more than %d rules", name, r->line,
                       LEX_MAX_RULES);
    /* word boundaries of our own: the folded text's words are [a-z0-9] runs */
    static const char pre[] = "(?<![\\p{L}\\p{N}])(?:", post[] = ")(?![\\p{L}\\p{N}])";
    char *ex;
    size_t exn;
    Status st = expand(lx, pat, plen, &ex, &exn, name, r->line, err);
    if (st)
        return st;
    size_t n = sizeof pre - 1 + exn + sizeof post - 1;
    char *full = malloc(n + 1);
    if (!full) {
        free(ex);
        return err_set(err, STATUS_NOMEM, "%s: out of memory", name);
    }
    snprintf(full, n + 1, "%s%s%s", pre, ex, post);
    free(ex);
    int ec;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)full, n, PCRE2_UTF | PCRE2_CASELESS | PCRE2_UCP,
                                   &ec, &off, NULL);
    free(full);
    if (!re) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(ec, msg, sizeof msg);
        long col = (long)off - (long)(sizeof pre - 1);
        return err_set(err, STATUS_FORMAT, "%s:%d: pattern '%.*s': %s (at pattern byte %ld)",
                       name, r->line, (int)(plen > 60 ? 60 : plen), pat, (const char *)msg,
                       col < 0 ? 0 : col);
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* without JIT it still matches */
    if (lx->n == lx->cap) {
        int cap = lx->cap ? lx->cap * 2 : 64;
        LexRule *p = realloc(lx->rules, (size_t)cap * sizeof *p);
        if (!p) {
            pcre2_code_free(re);
            return err_set(err, STATUS_NOMEM, "%s: out of memory", name);
        }
        lx->rules = p;
        lx->cap = cap;
    }
    lx->rules[lx->n] = *r;
    lx->rules[lx->n++].re = re;
    return STATUS_OK;
}

/* One word of a 'words' line as a pattern: folded, regex characters
 * escaped, blanks as \s+, a final '*' as any ending. */
static Status word_rule(Lexicon *lx, const LexRule *r, const char *w, size_t wn, const char *name,
                        Err *err) {
    bool any_end = wn > 1 && w[wn - 1] == '*';
    char *folded = NULL;
    size_t fl = 0;
    Status st = norm_fold(w, any_end ? wn - 1 : wn, &folded, &fl, err);
    if (st)
        return err_prefix(err, "%s:%d", name, r->line);
    char *pat = malloc(fl * 4 + 8);
    if (!pat) {
        free(folded);
        return err_set(err, STATUS_NOMEM, "%s: out of memory", name);
    }
    size_t k = 0;
    for (size_t i = 0; i < fl; i++) {
        char c = folded[i];
        if (c == '_') { /* a word's own blanks are written '_' in a words line */
            memcpy(pat + k, "\\s+", 3);
            k += 3;
        } else {
            if (strchr("\\^$.|?*+()[]{}", c))
                pat[k++] = '\\';
            pat[k++] = c;
        }
    }
    if (any_end) {
        memcpy(pat + k, "\\w*", 3);
        k += 3;
    }
    free(folded);
    st = add_rule(lx, r, pat, k, name, err);
    free(pat);
    return st;
}

/* define NAME pattern */
static Status parse_define(Lexicon *lx, const char *s, size_t len, int line, const char *name,
                           Err *err) {
    Fields g;
    split(s, len, 2, &g);
    if (g.count < 2)
        return err_set(err, STATUS_FORMAT, "%s:%d: expected 'define <NAME> <pattern>'", name,
                       line);
    for (size_t i = 0; i < g.n[0]; i++)
        if (!((g.p[0][i] >= 'A' && g.p[0][i] <= 'Z') || g.p[0][i] == '_'))
            return err_set(err, STATUS_FORMAT, "%s:%d: a define's name is A-Z and _, not '%.*s'",
                           name, line, (int)(g.n[0] > 40 ? 40 : g.n[0]), g.p[0]);
    if (g.n[0] > LEX_MAX_NAME)
        return err_set(err, STATUS_LIMIT, "%s:%d: a name of %zu bytes (limit %d)", name, line,
                       g.n[0], LEX_MAX_NAME);
    if (lx->n_defs >= LEX_MAX_DEFINES)
        return err_set(err, STATUS_LIMIT, "%s:%d: more than %d defines", name, line,
                       LEX_MAX_DEFINES);
    LexDefine *d = &lx->defs[lx->n_defs];
    Status st = expand(lx, g.p[1], g.n[1], &d->pattern, &d->len, name, line, err);
    if (st)
        return st;
    memcpy(d->name, g.p[0], g.n[0]);
    d->name[g.n[0]] = '\0';
    lx->n_defs++;
    return STATUS_OK;
}

static Status parse_line(Lexicon *lx, const char *s, size_t len, int line, const char *name,
                         Err *err) {
    Fields f;
    split(s, len, 2, &f);
    if (f.count == 0 || f.p[0][0] == '#')
        return STATUS_OK;
    LexRule r = {.line = line};
    if (f.n[0] == 6 && !memcmp(f.p[0], "define", 6))
        return parse_define(lx, f.count > 1 ? f.p[1] : s + len,
                            f.count > 1 ? (size_t)(s + len - f.p[1]) : 0, line, name, err);
    bool words = f.n[0] == 5 && !memcmp(f.p[0], "words", 5);
    r.damp = f.n[0] == 4 && !memcmp(f.p[0], "damp", 4);
    const char *rest = f.count > 1 ? f.p[1] : s + len;
    size_t rest_n = f.count > 1 ? (size_t)(s + len - f.p[1]) : 0;
    Fields g;
    if (words || r.damp) { /* <kind> <category> <number> <rest> */
        split(rest, rest_n, 3, &g);
        if (g.count < 3)
            return err_set(err, STATUS_FORMAT, "%s:%d: expected '%s <category> <%s> <%s>'", name,
                           line, r.damp ? "damp" : "words", r.damp ? "factor" : "weight",
                           r.damp ? "pattern" : "word ...");
    } else { /* <category> <weight> <pattern> */
        split(s, len, 3, &g);
        if (g.count < 3)
            return err_set(err, STATUS_FORMAT, "%s:%d: expected '<category> <weight> <pattern>'",
                           name, line);
    }
    if (g.n[0] >= 1 && g.p[0][g.n[0] - 1] == '*') { /* '*' or a family "self-harm*" */
        for (int c = 0; c < SAFE_N_CAT; c++)
            if (!strncmp(safe_cat_name(c), g.p[0], g.n[0] - 1))
                r.cats |= 1u << c;
    } else {
        int c = safe_cat_parse(g.p[0], g.n[0]);
        r.cats = c >= 0 ? 1u << c : 0;
    }
    if (!r.cats)
        return err_set(err, STATUS_FORMAT, "%s:%d:%d: unknown category '%.*s'", name, line,
                       (int)(g.p[0] - s) + 1, (int)(g.n[0] > 40 ? 40 : g.n[0]), g.p[0]);
    if (!parse_unit(g.p[1], g.n[1], &r.weight))
        return err_set(err, STATUS_FORMAT, "%s:%d:%d: '%.*s' is not a number in [0, 1]", name,
                       line, (int)(g.p[1] - s) + 1, (int)(g.n[1] > 20 ? 20 : g.n[1]), g.p[1]);
    if (!words)
        return add_rule(lx, &r, g.p[2], g.n[2], name, err);
    const char *w = g.p[2], *end = g.p[2] + g.n[2];
    while (w < end) {
        while (w < end && (*w == ' ' || *w == '\t'))
            w++;
        const char *e = w;
        while (e < end && *e != ' ' && *e != '\t')
            e++;
        if (e > w) {
            Status st = word_rule(lx, &r, w, (size_t)(e - w), name, err);
            if (st)
                return st;
        }
        w = e;
    }
    return STATUS_OK;
}

Status lex_load(Lexicon **out, const char *name, const char *src, size_t len, Err *err) {
    *out = NULL;
    if (len > LEX_MAX_BYTES)
        return err_set(err, STATUS_LIMIT, "%s: %zu bytes (limit %u)", name, len, LEX_MAX_BYTES);
    Lexicon *lx = calloc(1, sizeof *lx);
    if (!lx)
        return err_set(err, STATUS_NOMEM, "%s: out of memory", name);
    int line = 0;
    for (size_t i = 0; i < len;) {
        const char *nl = memchr(src + i, '\n', len - i);
        size_t n = nl ? (size_t)(nl - (src + i)) : len - i;
        line++;
        Status st = n > LEX_MAX_LINE
                        ? err_set(err, STATUS_LIMIT, "%s:%d: a line of %zu bytes (limit %d)", name,
                                  line, n, LEX_MAX_LINE)
                        : parse_line(lx, src + i, n, line, name, err);
        if (st) {
            lex_free(lx);
            return st;
        }
        i += n + 1;
    }
    *out = lx;
    return STATUS_OK;
}

Status lex_score(const Lexicon *lx, const NormForms *forms, SafeScores *out,
                 int hits[SAFE_N_CAT], Err *err) {
    double keep[SAFE_N_CAT], damp[SAFE_N_CAT];
    float best[SAFE_N_CAT] = {0};
    for (int c = 0; c < SAFE_N_CAT; c++) {
        keep[c] = 1.0; /* prod(1 - weight) */
        damp[c] = 1.0;
        if (hits)
            hits[c] = 0;
    }
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    if (!md)
        return err_set(err, STATUS_NOMEM, "moderation: out of memory");
    for (int i = 0; i < lx->n; i++) {
        const LexRule *r = &lx->rules[i];
        bool hit = false;
        for (int k = 0; k < forms->n && !hit; k++)
            hit = pcre2_match(r->re, (PCRE2_SPTR)forms->f[k].text, forms->f[k].len, 0, 0, md,
                              NULL) >= 0;
        if (!hit)
            continue;
        for (int c = 0; c < SAFE_N_CAT; c++) {
            if (!(r->cats & (1u << c)))
                continue;
            if (r->damp) {
                damp[c] *= r->weight;
            } else {
                keep[c] *= 1.0 - r->weight;
                if (hits && r->weight > best[c]) {
                    best[c] = r->weight;
                    hits[c] = r->line;
                }
            }
        }
    }
    pcre2_match_data_free(md);
    for (int c = 0; c < SAFE_N_CAT; c++)
        out->s[c] = (float)((1.0 - keep[c]) * damp[c]);
    safe_scores_close(out);
    return STATUS_OK;
}
