/* gguf.h - GGUF v2/v3 reader: validates the whole file, then serves views.
 *
 * gguf_open() memory-maps the file and checks everything before returning:
 * magic and version; counts bounded (GGUF_MAX_*) and against the bytes left;
 * every string length; no duplicate keys or tensor names; value types known;
 * well-known keys of the right type (general.alignment must be u32, a power
 * of two, <= GGUF_MAX_ALIGNMENT; general.architecture a string; ...);
 * n_dims in 1..4 and every dimension >= 0 (as ggml); element counts and
 * byte sizes without overflow; tensor types known (dtype_info) with rows a
 * multiple of the block size; offsets aligned, non-overlapping (in any order)
 * and inside the file. Any failure returns STATUS_FORMAT or STATUS_LIMIT with a
 * message naming the key or tensor, the value and the limit, e.g.
 *   "tensor 'blk.3.attn_q.weight': data ends at 4096, past end of file (size 2048)".
 * Allocations are bounded by the file size (arrays of n entries are only
 * allocated after checking that n entries fit in the bytes remaining).
 *
 * Nothing is copied: strings are (ptr, len) views into the mapping and are
 * NOT NUL-terminated; tensor data pointers point into the mapping. All views
 * are valid until gguf_close(). */
#ifndef CGPT_GGUF_GGUF_H
#define CGPT_GGUF_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "core/mapfile.h"
#include "tensor/dtype.h"

#define GGUF_MAGIC "GGUF"
#define GGUF_MAX_TENSORS (1u << 20) /* tensor infos in one file */
#define GGUF_MAX_KV (1u << 20)      /* metadata pairs in one file */
#define GGUF_MAX_STRING (1u << 30)  /* bytes in one string */
#define GGUF_MAX_ARRAY (1ull << 32) /* elements in one array */
#define GGUF_MAX_DIMS 4
#define GGUF_MAX_ALIGNMENT (1u << 16) /* general.alignment upper bound */
#define GGUF_DEFAULT_ALIGNMENT 32

typedef enum {
    GGUF_TYPE_UINT8 = 0,
    GGUF_TYPE_INT8 = 1,
    GGUF_TYPE_UINT16 = 2,
    GGUF_TYPE_INT16 = 3,
    GGUF_TYPE_UINT32 = 4,
    GGUF_TYPE_INT32 = 5,
    GGUF_TYPE_FLOAT32 = 6,
    GGUF_TYPE_BOOL = 7,
    GGUF_TYPE_STRING = 8,
    GGUF_TYPE_ARRAY = 9,
    GGUF_TYPE_UINT64 = 10,
    GGUF_TYPE_INT64 = 11,
    GGUF_TYPE_FLOAT64 = 12,
    GGUF_TYPE_COUNT
} GGUFType;

/* A byte string inside the mapping (not NUL-terminated). */
typedef struct {
    const char *ptr;
    uint64_t len;
} GGUFStr;

typedef struct {
    GGUFStr key;
    GGUFType type; /* GGUF_TYPE_ARRAY for arrays */
    /* scalars (type != ARRAY): the value, widened */
    union {
        uint64_t u; /* UINT8..UINT64, BOOL (0/1) */
        int64_t i;  /* INT8..INT64 */
        double f;   /* FLOAT32, FLOAT64 */
        GGUFStr s;  /* STRING */
    } val;
    /* arrays (type == ARRAY) */
    GGUFType arr_type;       /* element type; never ARRAY (nested arrays are rejected) */
    uint64_t arr_n;          /* element count */
    const uint8_t *arr_data; /* first element in the mapping (raw little-endian) */
    GGUFStr *arr_strs;       /* for string arrays: arr_n views (owned by the GGUF) */
} GGUFKV;

typedef struct {
    GGUFStr name;
    int n_dims;
    int64_t ne[GGUF_MAX_DIMS]; /* innermost first; unused dims are 1 */
    DType type;
    uint64_t offset; /* relative to the data section */
    uint64_t n_elements;
    uint64_t n_bytes;
    const void *data; /* in the mapping */
} GGUFTensor;

typedef struct {
    MapFile map; /* empty when opened from memory */
    const uint8_t *base;
    uint64_t size;
    uint32_t version;
    uint64_t alignment;
    uint64_t data_offset; /* start of the tensor data section */
    uint64_t n_kv;
    GGUFKV *kv;
    uint64_t n_tensors;
    GGUFTensor *tensors;
    /* Private to gguf.c: kv / tensor indices sorted by name (for duplicate
     * detection and O(log n) lookup), and the total bytes the reader
     * allocated for this file, kept even after a failed open (tests and the
     * fuzzer check it stays O(file size): at most 8 * size). */
    uint32_t *kv_by_name;
    uint32_t *tensor_by_name;
    uint64_t alloc_bytes;
} GGUF;

/* Open and validate the file at 'path'. On failure returns non-OK, fills
 * 'err' (prefixed with nothing: callers add the path), and 'g' is safe to
 * pass to gguf_close(). */
Status gguf_open(GGUF *g, const char *path, Err *err);

/* Same over bytes in memory; borrows 'data', which must outlive 'g'. */
Status gguf_open_mem(GGUF *g, const void *data, size_t size, Err *err);

/* Accepts a zeroed struct. */
void gguf_close(GGUF *g);

/* Lookups by NUL-terminated name; NULL when absent. */
const GGUFKV *gguf_find_key(const GGUF *g, const char *key);
const GGUFTensor *gguf_find_tensor(const GGUF *g, const char *name);

/* Compare a view with a C string. */
bool gguf_str_eq(GGUFStr s, const char *cstr);

/* Typed getters for metadata. Each returns STATUS_OK and sets *out when the
 * key is present and convertible; when absent returns STATUS_OK leaving *out
 * untouched if !required, else STATUS_FORMAT "missing key 'x'". A present key
 * of the wrong type (or an integer out of range of the target) is
 * STATUS_FORMAT naming the key, its type and the expected type.
 * gguf_get_u32/i64 accept any integer type; gguf_get_f32 accepts floats and
 * integers. gguf_get_str returns a view (valid until gguf_close). */
Status gguf_get_u32(const GGUF *g, const char *key, bool required, uint32_t *out, Err *err);
Status gguf_get_i64(const GGUF *g, const char *key, bool required, int64_t *out, Err *err);
Status gguf_get_f32(const GGUF *g, const char *key, bool required, float *out, Err *err);
Status gguf_get_bool(const GGUF *g, const char *key, bool required, bool *out, Err *err);
Status gguf_get_str(const GGUF *g, const char *key, bool required, GGUFStr *out, Err *err);
/* Array of the given element type; sets *kv_out to the pair (arrays are read
 * through kv->arr_data / kv->arr_strs). */
Status gguf_get_arr(const GGUF *g, const char *key, GGUFType elem_type, bool required,
                    const GGUFKV **kv_out, Err *err);

/* Element i of a numeric array as a double / int64 (no bounds check beyond
 * ASSERT: callers index below arr_n). */
double gguf_arr_f64(const GGUFKV *kv, uint64_t i);
int64_t gguf_arr_i64(const GGUFKV *kv, uint64_t i);

const char *gguf_type_name(GGUFType t);

#endif
