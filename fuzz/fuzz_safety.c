/* fuzz_safety.c - libFuzzer target for what moderation parses from
 * outside: the operator's policy file (policy.c), lexicon lines
 * (lexicon.c, --moderation-lexicon) and any text to moderate (normalize.c,
 * through the built-in classifier).
 *
 * The first byte picks the mode, the rest is the input:
 *   0: policy_parse - an error has a message naming "f.txt:" and leaves the
 *      policy at "allow everything"; an accepted policy has thresholds in
 *      [0, 1], a NUL-terminated refusal and a timeout in range;
 *   1: lex_load - an error has a message; an accepted lexicon scores a
 *      fixed text with every category in [0, 1];
 *   2: the text, scored by the shipped classifier: every score in [0, 1]
 *      (NaN fails), every form NUL-terminated at its length and valid
 *      UTF-8 as JSON needs it. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/utf8.h"
#include "safety/classify.h"
#include "safety/lexicon.h"
#include "safety/normalize.h"
#include "safety/policy.h"

static Classifier *g_builtin;

static void scores_ok(const SafeScores *s) {
    for (int c = 0; c < SAFE_N_CAT; c++)
        if (!(s->s[c] >= 0 && s->s[c] <= 1))
            abort();
}

static void fuzz_policy(const char *d, size_t n) {
    Policy p;
    Err err = {0};
    if (policy_parse(&p, "f.txt", d, n, &err)) {
        if (!strstr(err.msg, "f.txt"))
            abort();
        for (int dir = 0; dir < SAFE_N_DIR; dir++)
            for (int c = 0; c < SAFE_N_CAT; c++)
                if (p.rule[dir][c].action != POLICY_ALLOW)
                    abort(); /* a refused file leaves nothing half-applied */
        return;
    }
    for (int dir = 0; dir < SAFE_N_DIR; dir++)
        for (int c = 0; c < SAFE_N_CAT; c++)
            if (!(p.rule[dir][c].threshold >= 0 && p.rule[dir][c].threshold <= 1))
                abort();
    if (!memchr(p.refusal, '\0', sizeof p.refusal) || p.timeout_ms < 1 ||
        p.timeout_ms > POLICY_MAX_TIMEOUT_MS)
        abort();
    SafeScores s = {{0}};
    PolicyVerdict v;
    policy_decide(&p, SAFE_INPUT, &s, &v);
    if ((v.blocked & ~v.flagged) != 0)
        abort();
    (void)policy_refusal(&p, v.blocked);
}

static void fuzz_lexicon(const char *d, size_t n) {
    Lexicon *lx = NULL;
    Err err = {0};
    if (lex_load(&lx, "f.txt", d, n, &err)) {
        if (!err.msg[0] || lx)
            abort();
        return;
    }
    static const char text[] = "I will k1ll you, h o w   t o make a b0mb. xvyy lbh";
    NormForms f;
    if (norm_forms(text, sizeof text - 1, &f, &err))
        abort();
    SafeScores s;
    if (lex_score(lx, &f, &s, NULL, &err))
        abort();
    scores_ok(&s);
    norm_forms_free(&f);
    lex_free(lx);
}

static void fuzz_text(const char *d, size_t n) {
    Err err = {0};
    if (!g_builtin && classify_builtin(&g_builtin, NULL, 0, &err))
        abort();
    NormForms f;
    if (!norm_forms(d, n, &f, &err)) {
        for (int i = 0; i < f.n; i++)
            if (f.f[i].text[f.f[i].len] != '\0' ||
                utf8_valid_len(f.f[i].text, f.f[i].len, NULL) != f.f[i].len)
                abort();
        norm_forms_free(&f);
    }
    SafeText t = {.dir = SAFE_INPUT, .text = d, .len = n};
    SafeScores s;
    if (!g_builtin->score(g_builtin, &t, 0, &s, &err))
        scores_ok(&s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1)
        return 0;
    const char *d = (const char *)data + 1;
    size_t n = size - 1;
    switch (data[0] % 3) {
    case 0: fuzz_policy(d, n); break;
    case 1: fuzz_lexicon(d, n); break;
    default: fuzz_text(d, n); break;
    }
    return 0;
}
