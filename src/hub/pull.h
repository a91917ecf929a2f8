/* pull.h - `cgpt pull`: a model from a Hugging Face repository (or a URL)
 * into the library (library.h).
 *
 * From a hub: the repository's listing (GET /api/models/OWNER/REPO for its
 * revision, then /api/models/OWNER/REPO/tree/REVISION?recursive=true for
 * the files with their sizes and LFS SHA-256s), the pick (ref.h), a check
 * that the disk has room for what is left to fetch, then each file from
 * /OWNER/REPO/resolve/REVISION/PATH into FILE.partial (resumed from its
 * size with a Range request after an interruption), its SHA-256 checked
 * against the listing's, renamed into place; the manifest last. A
 * checksum mismatch removes what was fetched of the model and says so.
 *
 * One pull of a model at a time: a lock file in its directory (flock) makes
 * a second pull of it wait, then find it done. */
#ifndef CGPT_HUB_PULL_H
#define CGPT_HUB_PULL_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/err.h"
#include "hub/ref.h"

#define HUB_DEFAULT_ENDPOINT "https://huggingface.co"

typedef struct {
    const char *models_dir; /* lib_dir()'s */
    const char *endpoint;   /* HF_ENDPOINT's, else HUB_DEFAULT_ENDPOINT */
    const char *token;      /* HF_TOKEN's or --token; may be NULL */
    long timeout_s;         /* a transfer with no data this long fails */
    void (*progress)(void *ctx, const char *file, uint64_t done, uint64_t total);
    void *ctx;
} PullOpts;

typedef struct {
    char name[256];
    char path[PATH_MAX]; /* the (first) GGUF file */
    uint64_t size;       /* all its files */
    bool already;        /* it was there */
} PullResult;

Status hub_pull(const HubRef *r, const PullOpts *o, PullResult *out, Err *err);

#endif
