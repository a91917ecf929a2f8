/* safety.h - the content categories moderation scores, exactly OpenAI's
 * /v1/moderations keys in their order, and the two directions a check
 * looks at (what a user sends, what the model answers).
 *
 * Every classifier (safety/classify.h) fills one score in [0, 1] per
 * category; the policy (safety/policy.h) turns scores into an action. */
#ifndef CGPT_SAFETY_SAFETY_H
#define CGPT_SAFETY_SAFETY_H

#include <stddef.h>

typedef enum {
    SAFE_HARASSMENT,
    SAFE_HARASSMENT_THREATENING,
    SAFE_HATE,
    SAFE_HATE_THREATENING,
    SAFE_ILLICIT,
    SAFE_ILLICIT_VIOLENT,
    SAFE_SELF_HARM,
    SAFE_SELF_HARM_INTENT,
    SAFE_SELF_HARM_INSTRUCTIONS,
    SAFE_SEXUAL,
    SAFE_SEXUAL_MINORS,
    SAFE_VIOLENCE,
    SAFE_VIOLENCE_GRAPHIC,
    SAFE_N_CAT
} SafeCat;

typedef enum { SAFE_INPUT, SAFE_OUTPUT, SAFE_N_DIR } SafeDir;

/* Scores per category, each in [0, 1]. */
typedef struct {
    float s[SAFE_N_CAT];
} SafeScores;

/* "harassment/threatening" etc.; "?" for an out-of-range value. */
const char *safe_cat_name(int cat);
/* The category named by name[0..len) (exact, as OpenAI spells it), or -1. */
int safe_cat_parse(const char *name, size_t len);
/* "input" / "output". */
const char *safe_dir_name(SafeDir d);

/* The parent of a subcategory ("hate/threatening" -> hate), or the
 * category itself: a subcategory's score is never above its parent's once
 * scores are combined (safe_scores_close). */
SafeCat safe_cat_parent(SafeCat c);
/* Clamp every score into [0, 1] (NaN -> 0) and raise each parent to at
 * least its subcategories' scores. */
void safe_scores_close(SafeScores *s);

#endif
