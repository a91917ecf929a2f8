/* gguf_writer.h - builds a GGUF v3 file in memory and writes it atomically.
 *
 * Keys and tensors are written in the order they were added. Metadata values
 * and names are copied into the writer; tensor data is BORROWED until
 * gguf_writer_write() returns. The output is the layout llama.cpp writes:
 * header, KV pairs, tensor infos, padding to general.alignment (32 unless
 * set with gguf_writer_set_u32(w, "general.alignment", ...)), tensor data each
 * padded to the alignment. The file is written to "<path>.tmp", fsync()ed and
 * renamed over 'path', so a crash never leaves a half-written model.
 *
 * Setting a key that already exists replaces its value (keeps its position). */
#ifndef CGPT_GGUF_GGUF_WRITER_H
#define CGPT_GGUF_GGUF_WRITER_H

#include <stdbool.h>
#include <stdint.h>

#include "gguf/gguf.h"

typedef struct GGUFWriter GGUFWriter;

/* Returns an owned writer; free with gguf_writer_free(). NULL on OOM. */
GGUFWriter *gguf_writer_new(void);
void gguf_writer_free(GGUFWriter *w);

void gguf_writer_set_u32(GGUFWriter *w, const char *key, uint32_t v);
void gguf_writer_set_i32(GGUFWriter *w, const char *key, int32_t v);
void gguf_writer_set_u64(GGUFWriter *w, const char *key, uint64_t v);
void gguf_writer_set_f32(GGUFWriter *w, const char *key, float v);
void gguf_writer_set_bool(GGUFWriter *w, const char *key, bool v);
void gguf_writer_set_str(GGUFWriter *w, const char *key, const char *v);
void gguf_writer_set_arr_str(GGUFWriter *w, const char *key, const char *const *v, uint64_t n);
void gguf_writer_set_arr_i32(GGUFWriter *w, const char *key, const int32_t *v, uint64_t n);
void gguf_writer_set_arr_f32(GGUFWriter *w, const char *key, const float *v, uint64_t n);
/* Copy a pair read from another file (any type, arrays included). */
void gguf_writer_set_kv(GGUFWriter *w, const GGUFKV *kv);

/* Add a tensor; ne innermost first (ne[0] = row length), n_dims 1..4.
 * 'data' must hold dtype_row_bytes(type, ne[0]) * ne[1] * ne[2] * ne[3] bytes. */
void gguf_writer_add_tensor(GGUFWriter *w, const char *name, DType type, int n_dims,
                            const int64_t *ne, const void *data);

/* Write the file. Errors (allocation failures recorded earlier, I/O, bad
 * tensor shapes) come back here. */
Status gguf_writer_write(GGUFWriter *w, const char *path, Err *err);

#endif
