/* data.h - the moderation data compiled into the library from
 * data/safety/ (scripts/embed.sh writes build/gen/safety_data.c):
 *   policy.txt    the shipped policy (policy.h)
 *   lexicon.txt   the built-in classifier's patterns (lexicon.h)
 *   words.txt     extra word lists from npm packages, in lexicon syntax
 * Each is NUL-terminated; _len does not count the NUL. */
#ifndef CGPT_SAFETY_DATA_H
#define CGPT_SAFETY_DATA_H

#include <stddef.h>

extern const unsigned char safety_policy_txt[];
extern const size_t safety_policy_txt_len;
extern const unsigned char safety_lexicon_txt[];
extern const size_t safety_lexicon_txt_len;
extern const unsigned char safety_words_txt[];
extern const size_t safety_words_txt_len;

#endif
