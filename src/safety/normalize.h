/* normalize.h - text as moderation reads it, with the usual evasions undone.
 *
 * The fold (norm_fold) of a text:
 *   1. UTF-8 decoded (an invalid byte becomes U+FFFD) and put in NFKC with
 *      case folding (ICU's NFKC_Casefold): full-width and styled letters
 *      (ｋ, 𝐤, ℌ, ﬁ) become plain ones, and default-ignorable code points
 *      (zero-width spaces and joiners, bidi controls, soft hyphens, tag
 *      characters) disappear;
 *   2. every remaining non-ASCII character is replaced by its confusable
 *      prototype (ICU's UTS #39 skeleton: Cyrillic 'а' -> 'a', Greek 'ν'
 *      -> 'v'), combining marks dropped (é -> e), lower-cased;
 *   3. a letter repeated three or more times counts once (kiiiill), unless
 *      the run is a whole word (xxx).
 * Digits stay digits in the fold ("13yo" keeps its number).
 *
 * The forms a text is checked in (norm_forms), each one a fold:
 *   NORM_FOLD     the fold itself;
 *   NORM_LEET     digits and symbols touching letters read as the letters
 *                 they stand for (k1ll, h4te, b0mb, 5ex, $ -> s, @ -> a),
 *                 and letters spelled out one at a time joined ("k i l l",
 *                 "k.i.l.l", "k-i-l-l" -> kill); only when it differs;
 *   NORM_ROT13    the fold with its letters rotated by 13;
 *   NORM_DECODED  the text of every base64 segment (NORM_MIN_BASE64
 *                 characters or more, standard or URL alphabet) that
 *                 decodes to UTF-8 text, joined by newlines and folded
 *                 with the leet reading, decoded again up to
 *                 NORM_MAX_DEPTH times (base64 inside base64).
 * A classifier scores every form and keeps each category's maximum.
 *
 * Thread-safe (ICU's normaliser and spoof checker are opened once and
 * only read). */
#ifndef CGPT_SAFETY_NORMALIZE_H
#define CGPT_SAFETY_NORMALIZE_H

#include <stddef.h>

#include "core/err.h"

#define NORM_MAX_BYTES (8u << 20) /* bytes of one text normalised (more: STATUS_LIMIT) */
#define NORM_MIN_BASE64 16        /* characters of a base64 run worth decoding */
#define NORM_MAX_DEPTH 2          /* base64 decoded inside decoded base64, at most */

typedef enum { NORM_FOLD, NORM_LEET, NORM_ROT13, NORM_DECODED, NORM_N_KINDS } NormKind;

typedef struct {
    NormKind kind;
    char *text; /* owned, NUL-terminated UTF-8 */
    size_t len;
} NormForm;

typedef struct {
    NormForm f[NORM_N_KINDS];
    int n;
} NormForms;

/* The fold of in[0..len) into *out (owned, NUL-terminated; free()). */
Status norm_fold(const char *in, size_t len, char **out, size_t *out_len, Err *err);

/* Every form of in[0..len) (at least NORM_FOLD and NORM_ROT13). On
 * failure 'f' holds nothing; norm_forms_free() either way. */
Status norm_forms(const char *in, size_t len, NormForms *f, Err *err);
void norm_forms_free(NormForms *f);

/* "fold", "leet", "rot13", "decoded". */
const char *norm_kind_name(NormKind k);

#endif
