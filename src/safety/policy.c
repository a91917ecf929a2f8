/* policy.c - the operator's moderation policy, parsed and applied (policy.h). */
#include "safety/policy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "safety/data.h"

#define POLICY_DEFAULT_REFUSAL "I can't help with that."
#define POLICY_DEFAULT_TIMEOUT_MS 2000

const char *policy_action_name(PolicyAction a) {
    return a == POLICY_BLOCK ? "block" : a == POLICY_FLAG ? "flag" : "allow";
}

static void reset(Policy *p) {
    memset(p, 0, sizeof *p);
    for (int d = 0; d < SAFE_N_DIR; d++)
        for (int c = 0; c < SAFE_N_CAT; c++)
            p->rule[d][c] = (PolicyRule){POLICY_ALLOW, POLICY_THRESHOLD};
    snprintf(p->refusal, sizeof p->refusal, "%s", POLICY_DEFAULT_REFUSAL);
    p->timeout_ms = POLICY_DEFAULT_TIMEOUT_MS;
}

/* The next blank-separated word of s[*i..len). */
static bool word(const char *s, size_t len, size_t *i, const char **w, size_t *wn) {
    while (*i < len && (s[*i] == ' ' || s[*i] == '\t' || s[*i] == '\r'))
        (*i)++;
    if (*i >= len || s[*i] == '#')
        return false;
    *w = s + *i;
    while (*i < len && s[*i] != ' ' && s[*i] != '\t' && s[*i] != '\r')
        (*i)++;
    *wn = (size_t)(s + *i - *w);
    return true;
}

static bool is(const char *w, size_t n, const char *lit) {
    return strlen(lit) == n && !memcmp(w, lit, n);
}

#define FAIL(col, ...)                                                                             \
    do {                                                                                           \
        char m_[256];                                                                              \
        snprintf(m_, sizeof m_, __VA_ARGS__);                                                      \
        return err_set(err, STATUS_FORMAT, "%s:%d:%d: %s", name, line, (int)(col) + 1, m_);       \
    } while (0)

static unsigned parse_cats(const char *w, size_t wn);

/* refusal [categories] "text" (a quoted string: \" and \\ escapes) */
static Status parse_refusal(Policy *p, const char *s, size_t len, size_t i, const char *name,
                            int line, Err *err) {
    while (i < len && (s[i] == ' ' || s[i] == '\t'))
        i++;
    unsigned cats = 0;
    if (i < len && s[i] != '"') { /* categories first */
        size_t w = i;
        while (i < len && s[i] != ' ' && s[i] != '\t')
            i++;
        if (!(cats = parse_cats(s + w, i - w)))
            FAIL(w, "unknown category '%.*s'", (int)(i - w > 40 ? 40 : i - w), s + w);
        while (i < len && (s[i] == ' ' || s[i] == '\t'))
            i++;
    }
    if (i >= len || s[i] != '"')
        FAIL(i, "refusal: expected a quoted text");
    char text[POLICY_MAX_REFUSAL + 1];
    size_t o = 0;
    for (i++; i < len && s[i] != '"'; i++) {
        char c = s[i];
        if (c == '\\' && i + 1 < len && (s[i + 1] == '"' || s[i + 1] == '\\'))
            c = s[++i];
        if (o >= POLICY_MAX_REFUSAL)
            FAIL(i, "refusal: longer than %d bytes", POLICY_MAX_REFUSAL);
        text[o++] = c;
    }
    if (i >= len)
        FAIL(i, "refusal: the closing quote is missing");
    text[o] = '\0';
    if (!cats)
        memcpy(p->refusal, text, o + 1);
    for (int c = 0; c < SAFE_N_CAT; c++)
        if (cats & (1u << c))
            memcpy(p->cat_refusal[c], text, o + 1);
    const char *w;
    size_t wn;
    i++;
    if (word(s, len, &i, &w, &wn))
        FAIL(w - s, "unexpected '%.*s' after the refusal", (int)(wn > 40 ? 40 : wn), w);
    return STATUS_OK;
}

/* '*', a family "self-harm*" or one name: the categories' bits (0: none). */
static unsigned parse_cats(const char *w, size_t wn) {
    unsigned cats = 0;
    if (wn == 1 && w[0] == '*')
        return (1u << SAFE_N_CAT) - 1;
    if (wn > 1 && w[wn - 1] == '*') {
        for (int c = 0; c < SAFE_N_CAT; c++)
            if (!strncmp(safe_cat_name(c), w, wn - 1))
                cats |= 1u << c;
        return cats;
    }
    int c = safe_cat_parse(w, wn);
    return c >= 0 ? 1u << c : 0;
}

static Status parse_line(Policy *p, const char *s, size_t len, const char *name, int line,
                         Err *err) {
    size_t i = 0;
    const char *w[5];
    size_t wn[5];
    if (!word(s, len, &i, &w[0], &wn[0]))
        return STATUS_OK; /* blank or comment */
    if (is(w[0], wn[0], "refusal"))
        return parse_refusal(p, s, len, i, name, line, err);
    int n = 1;
    while (n < 5 && word(s, len, &i, &w[n], &wn[n]))
        n++;
    if (n == 5)
        FAIL(w[4] - s, "too many words");
    if (is(w[0], wn[0], "on_error") || is(w[0], wn[0], "audit_content") ||
        is(w[0], wn[0], "timeout_ms")) {
        if (n != 2)
            FAIL(wn[0], "%.*s takes one value", (int)wn[0], w[0]);
        if (is(w[0], wn[0], "on_error")) {
            if (!is(w[1], wn[1], "block") && !is(w[1], wn[1], "allow"))
                FAIL(w[1] - s, "on_error: expected block or allow");
            p->fail_open = is(w[1], wn[1], "allow");
        } else if (is(w[0], wn[0], "audit_content")) {
            if (!is(w[1], wn[1], "yes") && !is(w[1], wn[1], "no"))
                FAIL(w[1] - s, "audit_content: expected yes or no");
            p->audit_content = is(w[1], wn[1], "yes");
        } else {
            long v = 0;
            for (size_t k = 0; k < wn[1]; k++) {
                if (w[1][k] < '0' || w[1][k] > '9' || v > POLICY_MAX_TIMEOUT_MS)
                    FAIL(w[1] - s, "timeout_ms: expected 1..%d", POLICY_MAX_TIMEOUT_MS);
                v = v * 10 + (w[1][k] - '0');
            }
            if (v < 1 || v > POLICY_MAX_TIMEOUT_MS)
                FAIL(w[1] - s, "timeout_ms: expected 1..%d", POLICY_MAX_TIMEOUT_MS);
            p->timeout_ms = (int)v;
        }
        return STATUS_OK;
    }
    /* <categories> <input|output|both> <action> [threshold] */
    if (n < 3)
        FAIL(0, "expected '<category> <input|output|both> <allow|flag|block> [threshold]'");
    unsigned cats = parse_cats(w[0], wn[0]);
    if (!cats)
        FAIL(0, "unknown category '%.*s'", (int)(wn[0] > 40 ? 40 : wn[0]), w[0]);
    bool in = is(w[1], wn[1], "input") || is(w[1], wn[1], "both");
    bool out = is(w[1], wn[1], "output") || is(w[1], wn[1], "both");
    if (!in && !out)
        FAIL(w[1] - s, "expected input, output or both, not '%.*s'",
             (int)(wn[1] > 20 ? 20 : wn[1]), w[1]);
    PolicyRule r = {.threshold = POLICY_THRESHOLD};
    if (is(w[2], wn[2], "allow"))
        r.action = POLICY_ALLOW;
    else if (is(w[2], wn[2], "flag"))
        r.action = POLICY_FLAG;
    else if (is(w[2], wn[2], "block"))
        r.action = POLICY_BLOCK;
    else
        FAIL(w[2] - s, "expected allow, flag or block, not '%.*s'", (int)(wn[2] > 20 ? 20 : wn[2]),
             w[2]);
    if (n == 4) {
        char num[24];
        char *end;
        if (wn[3] >= sizeof num)
            FAIL(w[3] - s, "threshold: expected a number in [0, 1]");
        memcpy(num, w[3], wn[3]);
        num[wn[3]] = '\0';
        double t = strtod(num, &end);
        if (*end || !(t >= 0 && t <= 1))
            FAIL(w[3] - s, "threshold: expected a number in [0, 1], not '%s'", num);
        r.threshold = (float)t;
    }
    for (int c = 0; c < SAFE_N_CAT; c++)
        if (cats & (1u << c)) {
            if (in)
                p->rule[SAFE_INPUT][c] = r;
            if (out)
                p->rule[SAFE_OUTPUT][c] = r;
        }
    return STATUS_OK;
}

static Status parse_all(Policy *p, const char *name, const char *src, size_t len, Err *err) {
    if (len > POLICY_MAX_BYTES)
        return err_set(err, STATUS_LIMIT, "%s: %zu bytes (limit %u)", name, len,
                       POLICY_MAX_BYTES);
    int line = 0;
    for (size_t i = 0; i < len;) {
        const char *nl = memchr(src + i, '\n', len - i);
        size_t n = nl ? (size_t)(nl - (src + i)) : len - i;
        line++;
        if (n > POLICY_MAX_LINE)
            return err_set(err, STATUS_LIMIT, "%s:%d: a line of %zu bytes (limit %d)", name, line,
                           n, POLICY_MAX_LINE);
        if (memchr(src + i, '\0', n))
            return err_set(err, STATUS_FORMAT, "%s:%d: a NUL byte", name, line);
        Status r = parse_line(p, src + i, n, name, line, err);
        if (r)
            return r;
        i += n + 1;
    }
    return STATUS_OK;
}

Status policy_parse(Policy *p, const char *name, const char *src, size_t len, Err *err) {
    reset(p);
    Status r = parse_all(p, name, src, len, err);
    if (r)
        reset(p); /* nothing half-applied */
    return r;
}

const char *policy_default_text(size_t *len) {
    if (len)
        *len = safety_policy_txt_len;
    return (const char *)safety_policy_txt;
}

void policy_default(Policy *p) {
    Err err = {0};
    if (policy_parse(p, "policy.txt", (const char *)safety_policy_txt, safety_policy_txt_len,
                     &err)) {
        fprintf(stderr, "cgpt: the built-in policy does not parse: %s\n", err.msg);
        abort(); /* a test parses it: this is a broken build, not input */
    }
}

const char *policy_refusal(const Policy *p, unsigned blocked) {
    for (int c = 0; c < SAFE_N_CAT; c++)
        if ((blocked & (1u << c)) && p->cat_refusal[c][0])
            return p->cat_refusal[c];
    return p->refusal;
}

void policy_decide(const Policy *p, SafeDir d, const SafeScores *s, PolicyVerdict *v) {
    memset(v, 0, sizeof *v);
    for (int c = 0; c < SAFE_N_CAT; c++) {
        const PolicyRule *r = &p->rule[d][c];
        if (r->action == POLICY_ALLOW || !(s->s[c] >= r->threshold))
            continue;
        v->flagged |= 1u << c;
        if (r->action == POLICY_BLOCK)
            v->blocked |= 1u << c;
        if (r->action > v->action)
            v->action = r->action;
    }
}
