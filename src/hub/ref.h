/* ref.h - what `cgpt pull` is asked for, and which files of a repository
 * that means. Pure: no network, no files.
 *
 * A reference is one of (Ollama's convention for Hugging Face GGUF
 * repositories, plus plain URLs):
 *   hf.co/OWNER/REPO[:QUANT]   (also huggingface.co/...)
 *   OWNER/REPO[:QUANT]
 *   https://HOST/PATH/FILE.gguf  (or http://)
 * QUANT (Q4_K_M, q8_0, ...) picks a file by the quant tag in its name,
 * case-insensitively; without one the pick is Q4_K_M, else the smallest
 * file (or split set) with a known tag, else the smallest GGUF.
 *
 * A split model ("NAME-00001-of-00003.gguf") is picked as all of its
 * parts, in order. */
#ifndef CGPT_HUB_REF_H
#define CGPT_HUB_REF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "core/err.h"

#define HUB_MAX_PART 96    /* bytes of an owner or repository name */
#define HUB_MAX_QUANT 24   /* bytes of a quant tag */
#define HUB_MAX_URL 2048   /* bytes of a URL */
#define HUB_MAX_FILES 4096 /* files of a repository listing */

typedef enum { HUB_REF_HF, HUB_REF_URL } HubRefKind;

typedef struct {
    HubRefKind kind;
    char owner[HUB_MAX_PART + 1], repo[HUB_MAX_PART + 1];
    char quant[HUB_MAX_QUANT + 1]; /* as given, upper-cased; "" when none */
    char url[HUB_MAX_URL + 1];     /* HUB_REF_URL */
} HubRef;

/* Parse 's'; STATUS_INVALID naming what is wrong. Owner and repository
 * names are [A-Za-z0-9._-] (not starting with '.'), quants [A-Za-z0-9_]. */
Status hub_ref_parse(const char *s, HubRef *r, Err *err);

/* The quant tag in a file name ("Llama-3.2-1B-Instruct-Q4_K_M.gguf" ->
 * "Q4_K_M", "model.q8_0.gguf" -> "Q8_0"), upper-cased into out; false when
 * it has none. */
bool hub_quant_of(const char *path, char *out, size_t n);

/* Part k of n of a split GGUF ("-00002-of-00003.gguf"); false otherwise. */
bool hub_split_of(const char *path, int *part, int *n_parts);

/* One file of a repository listing. */
typedef struct {
    const char *path; /* in the repository */
    uint64_t size;
} HubListed;

/* The files (indices into 'files', in part order) the quant 'quant' (""
 * for the default pick) means. Writes the quant picked (upper-case; ""
 * when the file has no tag) to quant_out. STATUS_NOT_FOUND with a message
 * listing what there is when nothing matches ('repo' names it). */
Status hub_pick(const HubListed *files, int n, const char *quant, const char *repo, int *idx,
                int *n_idx, char quant_out[HUB_MAX_QUANT + 1], Err *err);

/* One file of a repository's tree listing, as pull uses it. */
typedef struct {
    char *path; /* in the repository (owned) */
    uint64_t size;
    char sha256[65]; /* the LFS oid; "" when the listing gives none */
} HubEntry;

/* The files of a tree listing (GET /api/models/OWNER/REPO/tree/REV?recursive=true:
 * [{"type": "file", "path", "size", "lfs": {"oid"}}, ...]; directories and
 * paths with "..", a leading '/' or control bytes are skipped). Owned:
 * hub_entries_free. STATUS_FORMAT when it is not a list, STATUS_LIMIT past
 * HUB_MAX_FILES entries. */
Status hub_tree_parse(const json_t *tree, HubEntry **out, int *n, Err *err);
void hub_entries_free(HubEntry *e, int n);

#endif
