/* gguf.c - GGUF v2/v3 reader: distrusts every byte, then serves views.
 *
 * The whole file is parsed and validated up front by a cursor whose read
 * helpers check the bytes remaining before touching them and name what was
 * being read and where. Counts are checked against GGUF_MAX_* and against the
 * minimum bytes their entries need before anything is allocated, so a
 * hostile count costs nothing. Names are indexed by a merge sort (not a hash:
 * a file cannot choose collisions to make it quadratic); the index serves
 * both duplicate detection and O(log n) lookups.
 *
 * It deliberately does not interpret metadata beyond the well-known keys
 * whose type it checks (WELL_KNOWN below), nor tensor contents. */
#include "gguf/gguf.h"

#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"

/* Smallest possible encodings, used to bound counts by the bytes left:
 * a pair is key length (8) + a 1-byte key + type (4) + a 1-byte value; a
 * tensor info is name length (8) + a 1-byte name + n_dims (4) + one dim (8)
 * + type (4) + offset (8). A string array element is at least its length. */
#define GGUF_MIN_KV_BYTES 14u
#define GGUF_MIN_TENSOR_INFO_BYTES 33u
#define GGUF_MIN_STR_BYTES 8u
#define GGUF_SHOW_MAX 64 /* bytes of a file-supplied name quoted in messages */

#define TRY(expr)                                                                                  \
    do {                                                                                           \
        Status s_ = (expr);                                                                        \
        if (s_ != STATUS_OK)                                                                       \
            return s_;                                                                             \
    } while (0)

/* Bytes of each scalar type; 0 for STRING and ARRAY (variable). */
static const uint8_t SCALAR_SIZE[GGUF_TYPE_COUNT] = {
    [GGUF_TYPE_UINT8] = 1,  [GGUF_TYPE_INT8] = 1,  [GGUF_TYPE_UINT16] = 2,  [GGUF_TYPE_INT16] = 2,
    [GGUF_TYPE_UINT32] = 4, [GGUF_TYPE_INT32] = 4, [GGUF_TYPE_FLOAT32] = 4, [GGUF_TYPE_BOOL] = 1,
    [GGUF_TYPE_UINT64] = 8, [GGUF_TYPE_INT64] = 8, [GGUF_TYPE_FLOAT64] = 8,
};

const char *gguf_type_name(GGUFType t) {
    static const char *const NAMES[GGUF_TYPE_COUNT] = {
        "u8",   "i8",     "u16",   "i16", "u32", "i32", "f32",
        "bool", "string", "array", "u64", "i64", "f64",
    };
    return (unsigned)t < GGUF_TYPE_COUNT ? NAMES[t] : "unknown";
}

static bool type_is_uint(GGUFType t) {
    return t == GGUF_TYPE_UINT8 || t == GGUF_TYPE_UINT16 || t == GGUF_TYPE_UINT32 ||
           t == GGUF_TYPE_UINT64;
}
static bool type_is_sint(GGUFType t) {
    return t == GGUF_TYPE_INT8 || t == GGUF_TYPE_INT16 || t == GGUF_TYPE_INT32 ||
           t == GGUF_TYPE_INT64;
}
static bool type_is_float(GGUFType t) { return t == GGUF_TYPE_FLOAT32 || t == GGUF_TYPE_FLOAT64; }

/* ---- quoting file-supplied names in messages ---- */

/* A printable, bounded copy of a name: bytes outside printable ASCII become
 * '?', and names longer than GGUF_SHOW_MAX end in "...". */
typedef struct {
    char s[GGUF_SHOW_MAX + 4];
} Shown;

static Shown show(GGUFStr name) {
    Shown out;
    uint64_t n = name.len < GGUF_SHOW_MAX ? name.len : GGUF_SHOW_MAX;
    for (uint64_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)name.ptr[i];
        out.s[i] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
    }
    if (name.len > GGUF_SHOW_MAX) {
        memcpy(out.s + n, "...", 4);
    } else {
        out.s[n] = '\0';
    }
    return out;
}

/* ---- the cursor: checked little-endian reads ---- */

typedef struct {
    const uint8_t *base;
    uint64_t size;
    uint64_t pos;
    Err *err;
    char where[GGUF_SHOW_MAX + 64]; /* what is being read: "key 3 'general.name'" */
} Cursor;

__attribute__((format(printf, 2, 3))) static void cur_where(Cursor *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->where, sizeof c->where, fmt, ap);
    va_end(ap);
}

static uint64_t cur_left(const Cursor *c) { return c->size - c->pos; }

static uint64_t load_le(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* Points *out at the next n bytes and advances past them. */
static Status rd_bytes(Cursor *c, uint64_t n, const char *what, const uint8_t **out) {
    *out = NULL;
    if (n > cur_left(c))
        return err_set(c->err, STATUS_FORMAT,
                       "%s: %s at offset %" PRIu64 " needs %" PRIu64
                       " bytes, past end of file (size %" PRIu64 ")",
                       c->where, what, c->pos, n, c->size);
    *out = c->base + c->pos;
    c->pos += n;
    return STATUS_OK;
}

static Status rd_u32(Cursor *c, const char *what, uint32_t *out) {
    const uint8_t *p;
    TRY(rd_bytes(c, 4, what, &p));
    *out = (uint32_t)load_le(p, 4);
    return STATUS_OK;
}

static Status rd_u64(Cursor *c, const char *what, uint64_t *out) {
    const uint8_t *p;
    TRY(rd_bytes(c, 8, what, &p));
    *out = load_le(p, 8);
    return STATUS_OK;
}

/* A u64 length then that many bytes, bounded by GGUF_MAX_STRING and the file. */
static Status rd_str(Cursor *c, const char *what, GGUFStr *out) {
    uint64_t len;
    TRY(rd_u64(c, what, &len));
    if (len > GGUF_MAX_STRING)
        return err_set(c->err, STATUS_LIMIT,
                       "%s: %s length %" PRIu64 " exceeds GGUF_MAX_STRING (%u)", c->where, what,
                       len, GGUF_MAX_STRING);
    if (len > cur_left(c))
        return err_set(c->err, STATUS_FORMAT,
                       "%s: %s length %" PRIu64 " at offset %" PRIu64
                       " runs past end of file (%" PRIu64 " bytes left)",
                       c->where, what, len, c->pos - 8, cur_left(c));
    out->ptr = (const char *)(c->base + c->pos);
    out->len = len;
    c->pos += len;
    return STATUS_OK;
}

/* Keys and tensor names: non-empty, no NUL (lookups take C strings). */
static Status check_name(Cursor *c, GGUFStr s) {
    if (s.len == 0)
        return err_set(c->err, STATUS_FORMAT, "%s: empty name", c->where);
    const char *nul = memchr(s.ptr, 0, s.len);
    if (nul)
        return err_set(c->err, STATUS_FORMAT, "%s: name '%s' contains a NUL byte at position %td",
                       c->where, show(s).s, nul - s.ptr);
    return STATUS_OK;
}

/* ---- allocation, counted in g->alloc_bytes ---- */

/* *out = zeroed n * size bytes, or NULL when n == 0. */
static Status g_calloc(GGUF *g, Err *err, uint64_t n, uint64_t size, const char *what, void **out) {
    uint64_t bytes;
    *out = NULL;
    if (n == 0)
        return STATUS_OK;
    if (!mem_mul_ok(n, size, &bytes) || bytes > SIZE_MAX)
        return err_set(err, STATUS_NOMEM, "%s: %" PRIu64 " entries of %" PRIu64 " bytes overflow",
                       what, n, size);
    *out = calloc((size_t)n, (size_t)size);
    if (!*out)
        return err_set(err, STATUS_NOMEM, "%s: cannot allocate %" PRIu64 " bytes", what, bytes);
    g->alloc_bytes += bytes;
    return STATUS_OK;
}

/* ---- index sorting: bottom-up merge sort, O(n log n) whatever the input ---- */

typedef int (*IdxCmp)(const GGUF *g, uint32_t a, uint32_t b);

static void merge_sort(uint32_t *a, uint32_t *tmp, uint64_t n, IdxCmp cmp, const GGUF *g) {
    uint32_t *src = a, *dst = tmp;
    for (uint64_t w = 1; w < n; w *= 2) {
        for (uint64_t lo = 0; lo < n; lo += 2 * w) {
            uint64_t mid = lo + w < n ? lo + w : n;
            uint64_t hi = lo + 2 * w < n ? lo + 2 * w : n;
            uint64_t i = lo, j = mid, k = lo;
            while (i < mid && j < hi)
                dst[k++] = cmp(g, src[j], src[i]) < 0 ? src[j++] : src[i++]; /* stable */
            while (i < mid)
                dst[k++] = src[i++];
            while (j < hi)
                dst[k++] = src[j++];
        }
        uint32_t *t = src;
        src = dst;
        dst = t;
    }
    if (src != a)
        memcpy(a, src, (size_t)n * sizeof *a);
}

/* *out = owned array of 0..n-1 sorted by cmp (NULL when n == 0). */
static Status sorted_index(GGUF *g, Err *err, uint64_t n, IdxCmp cmp, uint32_t **out) {
    uint32_t *tmp;
    TRY(g_calloc(g, err, n, sizeof(uint32_t), "name index", (void **)out));
    Status s = g_calloc(g, err, n, sizeof(uint32_t), "sort buffer", (void **)&tmp);
    if (s != STATUS_OK) {
        free(*out);
        *out = NULL;
        return s;
    }
    for (uint64_t i = 0; i < n; i++)
        (*out)[i] = (uint32_t)i;
    merge_sort(*out, tmp, n, cmp, g);
    free(tmp);
    return STATUS_OK;
}

static int str_cmp(GGUFStr a, GGUFStr b) {
    uint64_t m = a.len < b.len ? a.len : b.len;
    int r = m ? memcmp(a.ptr, b.ptr, (size_t)m) : 0;
    if (r)
        return r;
    return (a.len > b.len) - (a.len < b.len);
}

static int cmp_kv_key(const GGUF *g, uint32_t a, uint32_t b) {
    return str_cmp(g->kv[a].key, g->kv[b].key);
}
static int cmp_tensor_name(const GGUF *g, uint32_t a, uint32_t b) {
    return str_cmp(g->tensors[a].name, g->tensors[b].name);
}
static int cmp_tensor_offset(const GGUF *g, uint32_t a, uint32_t b) {
    uint64_t x = g->tensors[a].offset, y = g->tensors[b].offset;
    return (x > y) - (x < y);
}

/* ---- header ---- */

static Status check_count(Cursor *c, const char *what, uint64_t n, uint64_t max,
                          const char *max_name, uint64_t min_bytes) {
    if (n > max)
        return err_set(c->err, STATUS_LIMIT, "header: %s %" PRIu64 " exceeds %s (%" PRIu64 ")",
                       what, n, max_name, max);
    if (n * min_bytes > cur_left(c)) /* n <= 2^20: no overflow */
        return err_set(c->err, STATUS_FORMAT,
                       "header: %s %" PRIu64 " needs at least %" PRIu64 " bytes, only %" PRIu64
                       " left in file (size %" PRIu64 ")",
                       what, n, n * min_bytes, cur_left(c), c->size);
    return STATUS_OK;
}

static Status parse_header(GGUF *g, Cursor *c) {
    const uint8_t *m;
    cur_where(c, "header");
    TRY(rd_bytes(c, 4, "magic", &m));
    if (memcmp(m, GGUF_MAGIC, 4) != 0) {
        GGUFStr ms = {(const char *)m, 4};
        return err_set(c->err, STATUS_FORMAT,
                       "header: bad magic '%s' (bytes %02x %02x %02x %02x), expected 'GGUF'",
                       show(ms).s, m[0], m[1], m[2], m[3]);
    }
    TRY(rd_u32(c, "version", &g->version));
    if (g->version != 2 && g->version != 3)
        return err_set(c->err, STATUS_FORMAT,
                       "header: unsupported GGUF version %" PRIu32 " (supported: 2, 3)%s",
                       g->version,
                       (g->version && !(g->version & 0xffff)) ? "; a big-endian file?" : "");
    TRY(rd_u64(c, "tensor count", &g->n_tensors));
    TRY(rd_u64(c, "key/value count", &g->n_kv));
    TRY(check_count(c, "tensor count", g->n_tensors, GGUF_MAX_TENSORS, "GGUF_MAX_TENSORS",
                    GGUF_MIN_TENSOR_INFO_BYTES));
    TRY(check_count(c, "key/value count", g->n_kv, GGUF_MAX_KV, "GGUF_MAX_KV", GGUF_MIN_KV_BYTES));
    uint64_t need = g->n_tensors * GGUF_MIN_TENSOR_INFO_BYTES + g->n_kv * GGUF_MIN_KV_BYTES;
    if (need > cur_left(c))
        return err_set(c->err, STATUS_FORMAT,
                       "header: %" PRIu64 " tensors and %" PRIu64
                       " key/value pairs need at least %" PRIu64 " bytes, only %" PRIu64
                       " left in file (size %" PRIu64 ")",
                       g->n_tensors, g->n_kv, need, cur_left(c), c->size);
    return STATUS_OK;
}

/* ---- key/value pairs ---- */

/* Widen one little-endian scalar of type t at p into *kv. */
static void decode_scalar(GGUFType t, const uint8_t *p, GGUFKV *kv) {
    int n = SCALAR_SIZE[t];
    uint64_t raw = load_le(p, n);
    switch (t) {
    case GGUF_TYPE_INT8:
        kv->val.i = (int8_t)raw;
        break;
    case GGUF_TYPE_INT16:
        kv->val.i = (int16_t)raw;
        break;
    case GGUF_TYPE_INT32:
        kv->val.i = (int32_t)raw;
        break;
    case GGUF_TYPE_INT64:
        kv->val.i = (int64_t)raw;
        break;
    case GGUF_TYPE_FLOAT32: {
        uint32_t bits = (uint32_t)raw;
        float f;
        memcpy(&f, &bits, sizeof f);
        kv->val.f = f;
        break;
    }
    case GGUF_TYPE_FLOAT64:
        memcpy(&kv->val.f, &raw, sizeof kv->val.f);
        break;
    default:
        kv->val.u = raw;
        break; /* unsigned and bool */
    }
}

/* elem < 0 for a scalar value, else the array element index. */
static Status check_bool(Cursor *c, uint8_t v, int64_t elem) {
    if (v <= 1)
        return STATUS_OK;
    if (elem < 0)
        return err_set(c->err, STATUS_FORMAT, "%s: bool value %u is not 0 or 1", c->where, v);
    return err_set(c->err, STATUS_FORMAT, "%s: element %" PRId64 ": bool value %u is not 0 or 1",
                   c->where, elem, v);
}

static Status parse_str_array(GGUF *g, Cursor *c, GGUFKV *kv) {
    uint64_t n = kv->arr_n; /* <= GGUF_MAX_ARRAY = 2^32: n * 8 cannot overflow */
    if (n * GGUF_MIN_STR_BYTES > cur_left(c))
        return err_set(c->err, STATUS_FORMAT,
                       "%s: array of %" PRIu64 " strings needs at least %" PRIu64
                       " bytes, only %" PRIu64 " left",
                       c->where, n, n * GGUF_MIN_STR_BYTES, cur_left(c));
    TRY(g_calloc(g, c->err, n, sizeof(GGUFStr), c->where, (void **)&kv->arr_strs));
    for (uint64_t i = 0; i < n; i++) {
        char what[40];
        snprintf(what, sizeof what, "element %" PRIu64, i);
        TRY(rd_str(c, what, &kv->arr_strs[i]));
    }
    return STATUS_OK;
}

static Status parse_array(GGUF *g, Cursor *c, GGUFKV *kv) {
    uint32_t et;
    TRY(rd_u32(c, "array element type", &et));
    if (et == GGUF_TYPE_ARRAY)
        return err_set(c->err, STATUS_FORMAT, "%s: nested arrays are not supported", c->where);
    if (et >= GGUF_TYPE_COUNT)
        return err_set(c->err, STATUS_FORMAT,
                       "%s: unknown array element type %" PRIu32 " (known: 0..%d)", c->where, et,
                       GGUF_TYPE_COUNT - 1);
    kv->arr_type = (GGUFType)et;
    TRY(rd_u64(c, "array length", &kv->arr_n));
    if (kv->arr_n > GGUF_MAX_ARRAY)
        return err_set(c->err, STATUS_LIMIT,
                       "%s: array length %" PRIu64 " exceeds GGUF_MAX_ARRAY (%llu)", c->where,
                       kv->arr_n, GGUF_MAX_ARRAY);
    kv->arr_data = c->base + c->pos;
    if (et == GGUF_TYPE_STRING)
        return parse_str_array(g, c, kv);
    uint64_t bytes = kv->arr_n * SCALAR_SIZE[et]; /* <= 2^35 */
    if (bytes > cur_left(c))
        return err_set(c->err, STATUS_FORMAT,
                       "%s: array of %" PRIu64 " %s (%" PRIu64 " bytes) at offset %" PRIu64
                       " runs past end of file (%" PRIu64 " bytes left)",
                       c->where, kv->arr_n, gguf_type_name(kv->arr_type), bytes, c->pos,
                       cur_left(c));
    if (et == GGUF_TYPE_BOOL)
        for (uint64_t i = 0; i < kv->arr_n; i++)
            TRY(check_bool(c, kv->arr_data[i], (int64_t)i));
    c->pos += bytes;
    return STATUS_OK;
}

static Status parse_kv(GGUF *g, Cursor *c, uint64_t i) {
    GGUFKV *kv = &g->kv[i];
    uint32_t type;
    cur_where(c, "key %" PRIu64, i);
    TRY(rd_str(c, "name", &kv->key));
    TRY(check_name(c, kv->key));
    cur_where(c, "key %" PRIu64 " '%s'", i, show(kv->key).s);
    TRY(rd_u32(c, "value type", &type));
    if (type >= GGUF_TYPE_COUNT)
        return err_set(c->err, STATUS_FORMAT, "%s: unknown value type %" PRIu32 " (known: 0..%d)",
                       c->where, type, GGUF_TYPE_COUNT - 1);
    kv->type = (GGUFType)type;
    if (type == GGUF_TYPE_ARRAY)
        return parse_array(g, c, kv);
    if (type == GGUF_TYPE_STRING)
        return rd_str(c, "string value", &kv->val.s);
    const uint8_t *p;
    TRY(rd_bytes(c, SCALAR_SIZE[type], "value", &p));
    if (type == GGUF_TYPE_BOOL)
        TRY(check_bool(c, p[0], -1));
    decode_scalar(kv->type, p, kv);
    return STATUS_OK;
}

/* "u32" or "array of string". */
static const char *describe(GGUFType type, GGUFType arr_type, char *buf, size_t cap) {
    if (type != GGUF_TYPE_ARRAY)
        return gguf_type_name(type);
    snprintf(buf, cap, "array of %s", gguf_type_name(arr_type));
    return buf;
}

/* Keys whose type the rest of cgpt (and llama.cpp) relies on. INT means any
 * integer type. */
#define WANT_INT GGUF_TYPE_COUNT
static const struct {
    const char *key;
    GGUFType type;
    GGUFType arr_type; /* for ARRAY */
} WELL_KNOWN[] = {
    {"general.alignment", GGUF_TYPE_UINT32, 0},
    {"general.architecture", GGUF_TYPE_STRING, 0},
    {"general.name", GGUF_TYPE_STRING, 0},
    {"general.file_type", WANT_INT, 0},
    {"tokenizer.ggml.model", GGUF_TYPE_STRING, 0},
    {"tokenizer.ggml.tokens", GGUF_TYPE_ARRAY, GGUF_TYPE_STRING},
    {"tokenizer.ggml.scores", GGUF_TYPE_ARRAY, GGUF_TYPE_FLOAT32},
    {"tokenizer.ggml.token_type", GGUF_TYPE_ARRAY, GGUF_TYPE_INT32},
    {"tokenizer.ggml.merges", GGUF_TYPE_ARRAY, GGUF_TYPE_STRING},
    {"tokenizer.chat_template", GGUF_TYPE_STRING, 0},
};

static Status check_well_known(GGUF *g, Err *err) {
    for (size_t w = 0; w < sizeof WELL_KNOWN / sizeof WELL_KNOWN[0]; w++) {
        const GGUFKV *kv = gguf_find_key(g, WELL_KNOWN[w].key);
        if (!kv)
            continue;
        GGUFType want = WELL_KNOWN[w].type;
        bool ok = want == WANT_INT ? (type_is_uint(kv->type) || type_is_sint(kv->type))
                                   : kv->type == want && (want != GGUF_TYPE_ARRAY ||
                                                          kv->arr_type == WELL_KNOWN[w].arr_type);
        if (ok)
            continue;
        char got[32], exp[32];
        return err_set(err, STATUS_FORMAT, "key %td '%s': type %s, expected %s", kv - g->kv,
                       WELL_KNOWN[w].key, describe(kv->type, kv->arr_type, got, sizeof got),
                       want == WANT_INT ? "an integer"
                                        : describe(want, WELL_KNOWN[w].arr_type, exp, sizeof exp));
    }
    return STATUS_OK;
}

static Status check_alignment(GGUF *g, Err *err) {
    const GGUFKV *kv = gguf_find_key(g, "general.alignment");
    g->alignment = GGUF_DEFAULT_ALIGNMENT;
    if (!kv)
        return STATUS_OK; /* type checked by check_well_known */
    uint64_t a = kv->val.u;
    if (a == 0 || (a & (a - 1)))
        return err_set(err, STATUS_FORMAT,
                       "key %td 'general.alignment': value %" PRIu64 " is not a power of two",
                       kv - g->kv, a);
    if (a > GGUF_MAX_ALIGNMENT)
        return err_set(err, STATUS_LIMIT,
                       "key %td 'general.alignment': value %" PRIu64
                       " exceeds GGUF_MAX_ALIGNMENT (%u)",
                       kv - g->kv, a, GGUF_MAX_ALIGNMENT);
    g->alignment = a;
    return STATUS_OK;
}

static Status parse_kvs(GGUF *g, Cursor *c) {
    TRY(g_calloc(g, c->err, g->n_kv, sizeof(GGUFKV), "key/value pairs", (void **)&g->kv));
    for (uint64_t i = 0; i < g->n_kv; i++)
        TRY(parse_kv(g, c, i));
    TRY(sorted_index(g, c->err, g->n_kv, cmp_kv_key, &g->kv_by_name));
    for (uint64_t k = 1; k < g->n_kv; k++) {
        uint32_t a = g->kv_by_name[k - 1], b = g->kv_by_name[k];
        if (str_cmp(g->kv[a].key, g->kv[b].key) == 0)
            return err_set(c->err, STATUS_FORMAT, "key %" PRIu32 " '%s': duplicate of key %" PRIu32,
                           b, show(g->kv[b].key).s, a);
    }
    TRY(check_well_known(g, c->err));
    return check_alignment(g, c->err);
}

/* ---- tensor infos ---- */

static void format_shape(const GGUFTensor *t, char *buf, size_t cap) {
    int n = snprintf(buf, cap, "[");
    for (int j = 0; j < t->n_dims && n > 0 && (size_t)n < cap; j++)
        n += snprintf(buf + n, cap - (size_t)n, "%s%" PRId64, j ? ", " : "", t->ne[j]);
    if (n > 0 && (size_t)n < cap)
        snprintf(buf + n, cap - (size_t)n, "]");
}

/* n_elements and n_bytes, overflow-checked; rows must be whole blocks. */
static Status tensor_sizes(Cursor *c, GGUFTensor *t) {
    const DTypeInfo *ti = dtype_info((int)t->type);
    char shape[128];
    uint64_t n = 1;
    format_shape(t, shape, sizeof shape);
    for (int j = 0; j < GGUF_MAX_DIMS; j++)
        if (!mem_mul_ok(n, (uint64_t)t->ne[j], &n) || n > INT64_MAX)
            return err_set(c->err, STATUS_FORMAT, "%s: element count of shape %s overflows int64",
                           c->where, shape);
    if (t->ne[0] % ti->block_size)
        return err_set(c->err, STATUS_FORMAT,
                       "%s: row length ne[0] = %" PRId64
                       " is not a multiple of the %s block size %d",
                       c->where, t->ne[0], ti->name, ti->block_size);
    uint64_t bytes = (uint64_t)(t->ne[0] / ti->block_size) * (uint64_t)ti->type_size;
    for (int j = 1; j < GGUF_MAX_DIMS; j++)
        if (!mem_mul_ok(bytes, (uint64_t)t->ne[j], &bytes))
            return err_set(c->err, STATUS_FORMAT, "%s: byte size of %s shape %s overflows uint64",
                           c->where, ti->name, shape);
    t->n_elements = n;
    t->n_bytes = bytes;
    return STATUS_OK;
}

static Status parse_tensor_info(GGUF *g, Cursor *c, uint64_t i) {
    GGUFTensor *t = &g->tensors[i];
    uint32_t n_dims, type;
    cur_where(c, "tensor %" PRIu64, i);
    TRY(rd_str(c, "name", &t->name));
    TRY(check_name(c, t->name));
    cur_where(c, "tensor %" PRIu64 " '%s'", i, show(t->name).s);
    TRY(rd_u32(c, "n_dims", &n_dims));
    if (n_dims < 1 || n_dims > GGUF_MAX_DIMS)
        return err_set(c->err, STATUS_FORMAT, "%s: n_dims %" PRIu32 " not in 1..%d", c->where,
                       n_dims, GGUF_MAX_DIMS);
    t->n_dims = (int)n_dims;
    for (int j = 0; j < GGUF_MAX_DIMS; j++)
        t->ne[j] = 1;
    for (uint32_t j = 0; j < n_dims; j++) {
        uint64_t ne;
        TRY(rd_u64(c, "dimension", &ne));
        t->ne[j] = (int64_t)ne;
        if (t->ne[j] < 0)
            return err_set(c->err, STATUS_FORMAT, "%s: ne[%" PRIu32 "] = %" PRId64 " is negative",
                           c->where, j, t->ne[j]);
    }
    TRY(rd_u32(c, "type", &type));
    if (type > INT_MAX || !dtype_info((int)type))
        return err_set(c->err, STATUS_FORMAT, "%s: unknown tensor type %" PRIu32, c->where, type);
    t->type = (DType)type;
    TRY(rd_u64(c, "offset", &t->offset));
    return tensor_sizes(c, t);
}

static Status parse_tensor_infos(GGUF *g, Cursor *c) {
    TRY(g_calloc(g, c->err, g->n_tensors, sizeof(GGUFTensor), "tensor infos",
                 (void **)&g->tensors));
    for (uint64_t i = 0; i < g->n_tensors; i++)
        TRY(parse_tensor_info(g, c, i));
    TRY(sorted_index(g, c->err, g->n_tensors, cmp_tensor_name, &g->tensor_by_name));
    for (uint64_t k = 1; k < g->n_tensors; k++) {
        uint32_t a = g->tensor_by_name[k - 1], b = g->tensor_by_name[k];
        if (str_cmp(g->tensors[a].name, g->tensors[b].name) == 0)
            return err_set(c->err, STATUS_FORMAT,
                           "tensor %" PRIu32 " '%s': duplicate name of tensor %" PRIu32, b,
                           show(g->tensors[b].name).s, a);
    }
    return STATUS_OK;
}

/* ---- data section ---- */

/* Each tensor inside the file, aligned; sets its data pointer. */
static Status place_tensor(GGUF *g, Err *err, uint64_t i) {
    GGUFTensor *t = &g->tensors[i];
    uint64_t start, end;
    if (t->offset % g->alignment)
        return err_set(err, STATUS_FORMAT,
                       "tensor %" PRIu64 " '%s': offset %" PRIu64
                       " is not a multiple of the alignment %" PRIu64,
                       i, show(t->name).s, t->offset, g->alignment);
    if (!mem_add_ok(g->data_offset, t->offset, &start) || !mem_add_ok(start, t->n_bytes, &end))
        return err_set(err, STATUS_FORMAT,
                       "tensor %" PRIu64 " '%s': data offset %" PRIu64 " + %" PRIu64
                       " bytes past end of file (size %" PRIu64 ")",
                       i, show(t->name).s, t->offset, t->n_bytes, g->size);
    if (end > g->size)
        return err_set(err, STATUS_FORMAT,
                       "tensor %" PRIu64 " '%s': data [%" PRIu64 ", %" PRIu64
                       ") past end of file (size %" PRIu64 ")",
                       i, show(t->name).s, start, end, g->size);
    t->data = g->base + start;
    return STATUS_OK;
}

/* Sorted by offset, no non-empty tensor may start before the previous ends
 * (adjacent pairs suffice: their ends then increase). */
static Status check_overlaps(GGUF *g, Err *err) {
    uint32_t *idx;
    TRY(sorted_index(g, err, g->n_tensors, cmp_tensor_offset, &idx));
    const GGUFTensor *prev = NULL;
    Status s = STATUS_OK;
    for (uint64_t k = 0; k < g->n_tensors && s == STATUS_OK; k++) {
        const GGUFTensor *t = &g->tensors[idx[k]];
        if (t->n_bytes == 0)
            continue;
        if (prev && prev->offset + prev->n_bytes > t->offset)
            s = err_set(err, STATUS_FORMAT,
                        "tensor %td '%s': data [%" PRIu64 ", %" PRIu64
                        ") overlaps tensor %td '%s' [%" PRIu64 ", %" PRIu64 ")",
                        t - g->tensors, show(t->name).s, g->data_offset + t->offset,
                        g->data_offset + t->offset + t->n_bytes, prev - g->tensors,
                        show(prev->name).s, g->data_offset + prev->offset,
                        g->data_offset + prev->offset + prev->n_bytes);
        prev = t;
    }
    free(idx);
    return s;
}

static Status place_data(GGUF *g, Cursor *c) {
    uint64_t start;
    if (!mem_align_up_ok(c->pos, g->alignment, &start) || start > g->size) {
        if (g->n_tensors == 0) { /* as ggml: no data section, no padding needed */
            g->data_offset = c->pos;
            return STATUS_OK;
        }
        return err_set(c->err, STATUS_FORMAT,
                       "data section: tensor infos end at %" PRIu64 ", aligned to %" PRIu64
                       " the data would start past end of file (size %" PRIu64 ")",
                       c->pos, g->alignment, g->size);
    }
    g->data_offset = start;
    for (uint64_t i = 0; i < g->n_tensors; i++)
        TRY(place_tensor(g, c->err, i));
    return check_overlaps(g, c->err);
}

/* ---- open / close ---- */

Status gguf_open_mem(GGUF *g, const void *data, size_t size, Err *err) {
    memset(g, 0, sizeof *g);
    ASSERT(data || size == 0);
    g->base = data;
    g->size = size;
    Cursor c = {.base = data, .size = size, .pos = 0, .err = err};
    Status s = parse_header(g, &c);
    if (s == STATUS_OK)
        s = parse_kvs(g, &c);
    if (s == STATUS_OK)
        s = parse_tensor_infos(g, &c);
    if (s == STATUS_OK)
        s = place_data(g, &c);
    if (s != STATUS_OK) {
        uint64_t allocated = g->alloc_bytes; /* kept for tests of the allocation bound */
        gguf_close(g);
        g->alloc_bytes = allocated;
    }
    return s;
}

Status gguf_open(GGUF *g, const char *path, Err *err) {
    MapFile map;
    memset(g, 0, sizeof *g);
    Status s = mapfile_open(&map, path, err);
    if (s != STATUS_OK)
        return s;
    s = gguf_open_mem(g, map.data, map.size, err);
    if (s != STATUS_OK) {
        mapfile_close(&map);
        return s;
    }
    g->map = map;
    return STATUS_OK;
}

void gguf_close(GGUF *g) {
    if (!g)
        return;
    for (uint64_t i = 0; g->kv && i < g->n_kv; i++)
        free(g->kv[i].arr_strs);
    free(g->kv);
    free(g->tensors);
    free(g->kv_by_name);
    free(g->tensor_by_name);
    mapfile_close(&g->map);
    memset(g, 0, sizeof *g);
}

/* ---- lookups ---- */

bool gguf_str_eq(GGUFStr s, const char *cstr) {
    size_t n = strlen(cstr);
    return s.len == n && (n == 0 || memcmp(s.ptr, cstr, n) == 0);
}

/* Binary search of 'idx' (sorted by name_at) for 'name'; -1 when absent. */
static int64_t find_sorted(const GGUF *g, const uint32_t *idx, uint64_t n,
                           GGUFStr (*name_at)(const GGUF *, uint32_t), const char *name) {
    GGUFStr want = {name, strlen(name)};
    uint64_t lo = 0, hi = idx ? n : 0;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        int r = str_cmp(name_at(g, idx[mid]), want);
        if (r == 0)
            return idx[mid];
        if (r < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

static GGUFStr kv_name_at(const GGUF *g, uint32_t i) { return g->kv[i].key; }
static GGUFStr tensor_name_at(const GGUF *g, uint32_t i) { return g->tensors[i].name; }

const GGUFKV *gguf_find_key(const GGUF *g, const char *key) {
    int64_t i = find_sorted(g, g->kv_by_name, g->n_kv, kv_name_at, key);
    return i < 0 ? NULL : &g->kv[i];
}

const GGUFTensor *gguf_find_tensor(const GGUF *g, const char *name) {
    int64_t i = find_sorted(g, g->tensor_by_name, g->n_tensors, tensor_name_at, name);
    return i < 0 ? NULL : &g->tensors[i];
}

/* ---- typed getters ---- */

/* *kv_out = the pair, or NULL when absent and !required. */
static Status get_kv(const GGUF *g, const char *key, bool required, const GGUFKV **kv_out,
                     Err *err) {
    *kv_out = gguf_find_key(g, key);
    if (!*kv_out && required)
        return err_set(err, STATUS_FORMAT, "missing key '%s'", key);
    return STATUS_OK;
}

static Status wrong_type(const GGUFKV *kv, const char *key, const char *expected, Err *err) {
    char got[32];
    return err_set(err, STATUS_FORMAT, "key '%s': type %s, expected %s", key,
                   describe(kv->type, kv->arr_type, got, sizeof got), expected);
}

/* Any integer pair as int64 or uint64, with *neg set for negative values. */
static bool get_integer(const GGUFKV *kv, uint64_t *mag, bool *neg) {
    if (type_is_uint(kv->type)) {
        *mag = kv->val.u;
        *neg = false;
        return true;
    }
    if (type_is_sint(kv->type)) {
        *neg = kv->val.i < 0;
        *mag = *neg ? (uint64_t)0 - (uint64_t)kv->val.i : (uint64_t)kv->val.i;
        return true;
    }
    return false;
}

Status gguf_get_u32(const GGUF *g, const char *key, bool required, uint32_t *out, Err *err) {
    const GGUFKV *kv;
    uint64_t mag;
    bool neg;
    TRY(get_kv(g, key, required, &kv, err));
    if (!kv)
        return STATUS_OK;
    if (!get_integer(kv, &mag, &neg))
        return wrong_type(kv, key, "an integer", err);
    if (neg || mag > UINT32_MAX)
        return err_set(err, STATUS_FORMAT, "key '%s': value %s%" PRIu64 " out of range of u32", key,
                       neg ? "-" : "", mag);
    *out = (uint32_t)mag;
    return STATUS_OK;
}

Status gguf_get_i64(const GGUF *g, const char *key, bool required, int64_t *out, Err *err) {
    const GGUFKV *kv;
    uint64_t mag;
    bool neg;
    TRY(get_kv(g, key, required, &kv, err));
    if (!kv)
        return STATUS_OK;
    if (!get_integer(kv, &mag, &neg))
        return wrong_type(kv, key, "an integer", err);
    if (!neg && mag > INT64_MAX)
        return err_set(err, STATUS_FORMAT, "key '%s': value %" PRIu64 " out of range of i64", key,
                       mag);
    *out = neg ? kv->val.i : (int64_t)mag;
    return STATUS_OK;
}

Status gguf_get_f32(const GGUF *g, const char *key, bool required, float *out, Err *err) {
    const GGUFKV *kv;
    TRY(get_kv(g, key, required, &kv, err));
    if (!kv)
        return STATUS_OK;
    if (type_is_float(kv->type))
        *out = (float)kv->val.f;
    else if (type_is_uint(kv->type))
        *out = (float)kv->val.u;
    else if (type_is_sint(kv->type))
        *out = (float)kv->val.i;
    else
        return wrong_type(kv, key, "a number", err);
    return STATUS_OK;
}

Status gguf_get_bool(const GGUF *g, const char *key, bool required, bool *out, Err *err) {
    const GGUFKV *kv;
    TRY(get_kv(g, key, required, &kv, err));
    if (!kv)
        return STATUS_OK;
    if (kv->type != GGUF_TYPE_BOOL)
        return wrong_type(kv, key, "bool", err);
    *out = kv->val.u != 0;
    return STATUS_OK;
}

Status gguf_get_str(const GGUF *g, const char *key, bool required, GGUFStr *out, Err *err) {
    const GGUFKV *kv;
    TRY(get_kv(g, key, required, &kv, err));
    if (!kv)
        return STATUS_OK;
    if (kv->type != GGUF_TYPE_STRING)
        return wrong_type(kv, key, "string", err);
    *out = kv->val.s;
    return STATUS_OK;
}

Status gguf_get_arr(const GGUF *g, const char *key, GGUFType elem_type, bool required,
                    const GGUFKV **kv_out, Err *err) {
    const GGUFKV *kv;
    TRY(get_kv(g, key, required, &kv, err));
    if (!kv)
        return STATUS_OK;
    if (kv->type != GGUF_TYPE_ARRAY || kv->arr_type != elem_type) {
        char exp[32];
        return wrong_type(kv, key, describe(GGUF_TYPE_ARRAY, elem_type, exp, sizeof exp), err);
    }
    *kv_out = kv;
    return STATUS_OK;
}

/* Element i of a numeric array, widened into a scratch pair. */
static GGUFKV arr_elem(const GGUFKV *kv, uint64_t i) {
    ASSERT(kv->type == GGUF_TYPE_ARRAY && i < kv->arr_n);
    ASSERT(kv->arr_type < GGUF_TYPE_COUNT && SCALAR_SIZE[kv->arr_type] != 0);
    GGUFKV e = {.type = kv->arr_type};
    decode_scalar(kv->arr_type, kv->arr_data + i * SCALAR_SIZE[kv->arr_type], &e);
    return e;
}

double gguf_arr_f64(const GGUFKV *kv, uint64_t i) {
    GGUFKV e = arr_elem(kv, i);
    if (type_is_float(e.type))
        return e.val.f;
    if (type_is_sint(e.type))
        return (double)e.val.i;
    return (double)e.val.u;
}

int64_t gguf_arr_i64(const GGUFKV *kv, uint64_t i) {
    GGUFKV e = arr_elem(kv, i);
    if (type_is_sint(e.type))
        return e.val.i;
    if (type_is_float(e.type)) { /* saturate: out-of-range conversion is undefined */
        if (!(e.val.f == e.val.f))
            return 0;
        if (e.val.f >= 9223372036854775807.0)
            return INT64_MAX;
        if (e.val.f <= -9223372036854775808.0)
            return INT64_MIN;
        return (int64_t)e.val.f;
    }
    return e.val.u > INT64_MAX ? INT64_MAX : (int64_t)e.val.u;
}
