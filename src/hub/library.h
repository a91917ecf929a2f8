/* library.h - the models on this machine: one directory per model under
 * the models directory, holding its GGUF file(s) and manifest.json.
 *
 *   DIR/OWNER/REPO/QUANT/   pulled from a hub as OWNER/REPO:QUANT
 *   DIR/url/NAME/           pulled from a URL, NAME its file's base name
 *
 * manifest.json: {"name", "source": "hf"|"url", "endpoint", "repo",
 * "revision", "quant", "files": [{"name", "size", "sha256"}], "size",
 * "pulled_at"}. A directory without a manifest is not a model (a pull in
 * progress, or one that failed). DIR is --models-dir, else
 * $CGPT_HOME/models, else ~/.cache/cgpt/models.
 *
 * Names: "OWNER/REPO:QUANT" (case-insensitive quant), "OWNER/REPO" (its
 * only quant, or the one pulled without a quant), a URL model's NAME. */
#ifndef CGPT_HUB_LIBRARY_H
#define CGPT_HUB_LIBRARY_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "core/err.h"

#define LIB_MAX_MODELS 4096 /* models listed */
#define LIB_MAX_MANIFEST (1u << 20)
#define LIB_MAX_MANIFEST_TEXT "1 MiB"

typedef struct {
    char name[256];
    char dir[PATH_MAX];  /* the model's directory */
    char path[PATH_MAX]; /* its first GGUF file */
    uint64_t size;
    json_t *manifest; /* owned */
} LibModel;

/* The models directory into out ('given' wins; NULL otherwise). */
Status lib_dir(const char *given, char *out, size_t n, Err *err);

/* The model in directory 'dir' (its manifest read); false when it holds
 * none. e->manifest owned. */
bool lib_load(const char *dir, LibModel *e);

/* Every model under dir, sorted by name (owned: lib_models_free). */
Status lib_list(const char *dir, LibModel **out, int *n, Err *err);
void lib_models_free(LibModel *m, int n);

/* Walk dir as lib_list does and call fn for every manifest.json that does
 * not make its directory a model (and so is left out of lib_list): its
 * path and why (not JSON, no name, no files, too large). */
typedef void (*LibProblemFn)(void *ctx, const char *manifest, const char *why);
void lib_check(const char *dir, LibProblemFn fn, void *ctx);

/* The model 'name' names; STATUS_NOT_FOUND saying so. e->manifest owned. */
Status lib_find(const char *dir, const char *name, LibModel *e, Err *err);

/* Could 's' be a library name rather than a file path? (No leading '/'
 * or '.', no ".gguf" ending.) */
bool lib_name_like(const char *s);

/* Remove a model's directory (its files, manifest, partial files). */
Status lib_remove(const LibModel *e, Err *err);

/* Create every directory of 'path' (mode 0755). */
Status lib_mkdirs(const char *path, Err *err);

/* Write j to path atomically (a temporary file, then rename). */
Status lib_write_json(const char *path, json_t *j, Err *err);

#endif
