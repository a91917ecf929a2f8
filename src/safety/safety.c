/* safety.c - category names and score bookkeeping (safety.h). */
#include "safety/safety.h"

#include <math.h>
#include <string.h>

static const char *const NAMES[SAFE_N_CAT] = {
    "harassment",    "harassment/threatening", "hate",
    "hate/threatening", "illicit",             "illicit/violent",
    "self-harm",     "self-harm/intent",       "self-harm/instructions",
    "sexual",        "sexual/minors",          "violence",
    "violence/graphic"};

static const SafeCat PARENT[SAFE_N_CAT] = {
    SAFE_HARASSMENT, SAFE_HARASSMENT, SAFE_HATE,      SAFE_HATE,     SAFE_ILLICIT,
    SAFE_ILLICIT,    SAFE_SELF_HARM,  SAFE_SELF_HARM, SAFE_SELF_HARM, SAFE_SEXUAL,
    SAFE_SEXUAL,     SAFE_VIOLENCE,   SAFE_VIOLENCE};

const char *safe_cat_name(int cat) { return cat >= 0 && cat < SAFE_N_CAT ? NAMES[cat] : "?"; }

int safe_cat_parse(const char *name, size_t len) {
    for (int i = 0; i < SAFE_N_CAT; i++)
        if (strlen(NAMES[i]) == len && !memcmp(NAMES[i], name, len))
            return i;
    return -1;
}

const char *safe_dir_name(SafeDir d) { return d == SAFE_INPUT ? "input" : "output"; }

SafeCat safe_cat_parent(SafeCat c) { return c >= 0 && c < SAFE_N_CAT ? PARENT[c] : c; }

void safe_scores_close(SafeScores *s) {
    for (int i = 0; i < SAFE_N_CAT; i++)
        s->s[i] = isnan(s->s[i]) ? 0.0f : s->s[i] < 0 ? 0.0f : s->s[i] > 1 ? 1.0f : s->s[i];
    for (int i = 0; i < SAFE_N_CAT; i++)
        if (s->s[PARENT[i]] < s->s[i])
            s->s[PARENT[i]] = s->s[i];
}
