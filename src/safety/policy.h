/* policy.h - what the operator wants done with each kind of content: per
 * category and direction an action (allow, flag = record only, block) at a
 * threshold, the refusal text, and what happens when a classifier fails.
 *
 * The file is text, one setting a line, '#' starts a comment:
 *
 *     refusal "I can't help with that."      the text a blocked chat answers
 *     refusal <categories> "text"             ... when one of those categories blocked it
 *     on_error block                          block (fail closed) | allow (open)
 *     timeout_ms 2000                         a classifier slower than this failed
 *     audit_content no                        yes: the audit keeps the text too
 *     <categories> <input|output|both> <allow|flag|block> [threshold]
 *
 * <categories> is a category name as /v1/moderations spells it, '*' (all),
 * or a name ending in '*' (a family: "self-harm*"). A rule applies when the
 * category's score is >= its threshold (default POLICY_THRESHOLD). Rules
 * are read top to bottom and a later one replaces an earlier one for what
 * it names, so a file says the general case first and the exceptions
 * after. Unset: allow. policy_default() is the policy shipped
 * (data/safety/policy.txt, documented line by line in docs/SAFETY.md).
 *
 * Errors name the file, line and column, and the limit broken. */
#ifndef CGPT_SAFETY_POLICY_H
#define CGPT_SAFETY_POLICY_H

#include <stdbool.h>
#include <stddef.h>

#include "core/err.h"
#include "safety/safety.h"

#define POLICY_MAX_BYTES (256u << 10) /* bytes of a policy file */
#define POLICY_MAX_LINE 1024          /* bytes of one line */
#define POLICY_MAX_REFUSAL 512        /* bytes of the refusal text */
#define POLICY_MAX_TIMEOUT_MS 600000  /* timeout_ms, at most */
#define POLICY_THRESHOLD 0.5f         /* a rule's threshold when it names none */

typedef enum { POLICY_ALLOW, POLICY_FLAG, POLICY_BLOCK } PolicyAction;

typedef struct {
    PolicyAction action;
    float threshold;
} PolicyRule;

typedef struct {
    PolicyRule rule[SAFE_N_DIR][SAFE_N_CAT];
    char refusal[POLICY_MAX_REFUSAL + 1];
    char cat_refusal[SAFE_N_CAT][POLICY_MAX_REFUSAL + 1]; /* "": the general one */
    bool fail_open;     /* on_error allow */
    int timeout_ms;
    bool audit_content; /* the audit stores the text itself */
} Policy;

/* What a policy makes of one set of scores. */
typedef struct {
    PolicyAction action;       /* the strongest of the categories' */
    unsigned flagged;          /* bit per category whose rule applies (flag or block) */
    unsigned blocked;          /* bit per category whose rule blocks */
} PolicyVerdict;

/* Parse src[0..len) ('name' for errors) into *p (which starts from
 * "allow everything" with the default refusal, on_error block, timeout
 * 2000 ms, audit_content no). On an error *p is that start again: a
 * refused file leaves nothing half-applied. */
Status policy_parse(Policy *p, const char *name, const char *src, size_t len, Err *err);
/* The shipped policy (never fails: a test keeps its text parsing). */
void policy_default(Policy *p);
/* Its text. */
const char *policy_default_text(size_t *len);

void policy_decide(const Policy *p, SafeDir d, const SafeScores *s, PolicyVerdict *v);

/* The refusal for a verdict that blocked 'blocked' (categories' bits): the
 * first blocked category's own refusal, else the general one. */
const char *policy_refusal(const Policy *p, unsigned blocked);

/* "allow" / "flag" / "block". */
const char *policy_action_name(PolicyAction a);

#endif
