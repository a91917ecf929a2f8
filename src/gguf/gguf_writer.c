/* gguf_writer.c - GGUF v3 writer producing the layout llama.cpp writes.
 *
 * Each pair's value is encoded (little-endian, from its type field on) when
 * it is set, so writing is a concatenation: header, pairs, tensor infos,
 * zero padding to the alignment, then each tensor's data followed by zero
 * padding to the alignment (as ggml's gguf_write_out). Tensor offsets are
 * relative to the data section. Setters cannot fail visibly; the first
 * error (bad argument, allocation) is kept and returned by
 * gguf_writer_write(), which writes nothing in that case.
 *
 * It deliberately writes only what llama.cpp's loader accepts: tensor names
 * shorter than GGML_MAX_NAME (64), every dimension >= 1, general.alignment a
 * u32 power of two. */
#include "gguf/gguf_writer.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/mem.h"

#define GGUF_WRITER_VERSION 3
#define GGUF_WRITER_MAX_NAME 63 /* llama.cpp: strlen(name) < GGML_MAX_NAME (64) */

/* A growable byte buffer; 'oom' sticks once an append fails. */
typedef struct {
    uint8_t *p;
    size_t n, cap;
    bool oom;
} Buf;

typedef struct {
    char *key;
    size_t key_len;
    GGUFType type;  /* to check general.alignment */
    uint64_t value; /* scalar integer value, for general.alignment */
    Buf val;        /* encoded from the type field on */
} WKV;

typedef struct {
    char *name;
    size_t name_len;
    DType type;
    int n_dims;
    int64_t ne[GGUF_MAX_DIMS];
    const void *data; /* borrowed */
    uint64_t n_bytes;
    uint64_t offset; /* relative to the data section, set by write */
} WTensor;

struct GGUFWriter {
    WKV *kv;
    size_t n_kv, cap_kv;
    WTensor *tensors;
    size_t n_tensors, cap_tensors;
    Err err; /* first error recorded by a setter */
};

/* ---- byte buffer ---- */

static void buf_put(Buf *b, const void *data, size_t n) {
    if (b->oom || n == 0)
        return;
    if (n > SIZE_MAX - b->n) {
        b->oom = true;
        return;
    }
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + n)
            cap = cap > SIZE_MAX / 2 ? b->n + n : cap * 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, data, n);
    b->n += n;
}

static void buf_le(Buf *b, uint64_t v, int n) {
    uint8_t tmp[8];
    for (int i = 0; i < n; i++)
        tmp[i] = (uint8_t)(v >> (8 * i));
    buf_put(b, tmp, (size_t)n);
}

static void buf_u32(Buf *b, uint32_t v) { buf_le(b, v, 4); }
static void buf_u64(Buf *b, uint64_t v) { buf_le(b, v, 8); }

static void buf_str(Buf *b, const char *s, uint64_t len) {
    buf_u64(b, len);
    buf_put(b, s, (size_t)len);
}

static void buf_pad(Buf *b, uint64_t align) {
    static const uint8_t zero[64];
    while (!b->oom && b->n % align)
        buf_put(b, zero,
                (size_t)(align - b->n % align) < sizeof zero ? (size_t)(align - b->n % align)
                                                             : sizeof zero);
}

static void buf_free(Buf *b) {
    free(b->p);
    memset(b, 0, sizeof *b);
}

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* ---- errors recorded by setters ---- */

__attribute__((format(printf, 3, 4))) static void fail(GGUFWriter *w, Status s, const char *fmt,
                                                       ...) {
    if (w->err.status != STATUS_OK)
        return; /* keep the first */
    va_list ap;
    va_start(ap, fmt);
    w->err.status = s;
    vsnprintf(w->err.msg, sizeof w->err.msg, fmt, ap);
    va_end(ap);
}

/* ---- lifecycle ---- */

GGUFWriter *gguf_writer_new(void) { return calloc(1, sizeof(GGUFWriter)); }

void gguf_writer_free(GGUFWriter *w) {
    if (!w)
        return;
    for (size_t i = 0; i < w->n_kv; i++) {
        free(w->kv[i].key);
        buf_free(&w->kv[i].val);
    }
    for (size_t i = 0; i < w->n_tensors; i++)
        free(w->tensors[i].name);
    free(w->kv);
    free(w->tensors);
    free(w);
}

static bool grow(void **arr, size_t *cap, size_t n, size_t elem) {
    if (n < *cap)
        return true;
    size_t c = *cap ? *cap * 2 : 16;
    void *p = realloc(*arr, c * elem);
    if (!p)
        return false;
    *arr = p;
    *cap = c;
    return true;
}

static char *dup_bytes(const char *s, size_t n) {
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

/* ---- key/value pairs ---- */

/* Store the encoded value 'val' (taken over) under 'key'; replaces an
 * existing pair in place. */
static void put_kv(GGUFWriter *w, const char *key, size_t key_len, GGUFType type, uint64_t value,
                   Buf *val) {
    if (val->oom) {
        buf_free(val);
        {
            fail(w, STATUS_NOMEM, "key '%.*s': out of memory encoding its value",
                 (int)(key_len > 64 ? 64 : key_len), key);
            return;
        }
    }
    for (size_t i = 0; i < w->n_kv; i++) {
        WKV *kv = &w->kv[i];
        if (kv->key_len == key_len && memcmp(kv->key, key, key_len) == 0) {
            buf_free(&kv->val);
            kv->val = *val;
            kv->type = type;
            kv->value = value;
            return;
        }
    }
    char *k = dup_bytes(key, key_len);
    if (!k || !grow((void **)&w->kv, &w->cap_kv, w->n_kv, sizeof *w->kv)) {
        free(k);
        buf_free(val);
        {
            fail(w, STATUS_NOMEM, "out of memory adding key '%s'", key);
            return;
        }
    }
    w->kv[w->n_kv++] =
        (WKV){.key = k, .key_len = key_len, .type = type, .value = value, .val = *val};
}

/* Checks a key; on failure records the error and returns false. */
static bool key_ok(GGUFWriter *w, const char *key, size_t len) {
    if (!key || len == 0) {
        fail(w, STATUS_INVALID, "empty metadata key");
        return false;
    }
    if (memchr(key, 0, len) || len > GGUF_MAX_STRING) {
        fail(w, STATUS_INVALID, "metadata key '%.*s' has a NUL byte or is too long",
             (int)(len > 64 ? 64 : len), key);
        return false;
    }
    return true;
}

static bool str_ok(GGUFWriter *w, const char *key, const char *s) {
    if (!s) {
        fail(w, STATUS_INVALID, "key '%s': NULL string", key);
        return false;
    }
    if (strlen(s) > GGUF_MAX_STRING) {
        fail(w, STATUS_LIMIT, "key '%s': string of %zu bytes exceeds GGUF_MAX_STRING (%u)", key,
             strlen(s), GGUF_MAX_STRING);
        return false;
    }
    return true;
}

static void set_scalar(GGUFWriter *w, const char *key, GGUFType type, uint64_t raw) {
    static const int SIZE[GGUF_TYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    if (!key_ok(w, key, key ? strlen(key) : 0))
        return;
    Buf b = {0};
    buf_u32(&b, type);
    buf_le(&b, raw, SIZE[type]);
    put_kv(w, key, strlen(key), type, raw, &b);
}

void gguf_writer_set_u32(GGUFWriter *w, const char *key, uint32_t v) {
    set_scalar(w, key, GGUF_TYPE_UINT32, v);
}
void gguf_writer_set_i32(GGUFWriter *w, const char *key, int32_t v) {
    set_scalar(w, key, GGUF_TYPE_INT32, (uint32_t)v);
}
void gguf_writer_set_u64(GGUFWriter *w, const char *key, uint64_t v) {
    set_scalar(w, key, GGUF_TYPE_UINT64, v);
}
void gguf_writer_set_f32(GGUFWriter *w, const char *key, float v) {
    set_scalar(w, key, GGUF_TYPE_FLOAT32, f32_bits(v));
}
void gguf_writer_set_bool(GGUFWriter *w, const char *key, bool v) {
    set_scalar(w, key, GGUF_TYPE_BOOL, v ? 1 : 0);
}

void gguf_writer_set_str(GGUFWriter *w, const char *key, const char *v) {
    if (!key_ok(w, key, key ? strlen(key) : 0) || !str_ok(w, key, v))
        return;
    Buf b = {0};
    buf_u32(&b, GGUF_TYPE_STRING);
    buf_str(&b, v, strlen(v));
    put_kv(w, key, strlen(key), GGUF_TYPE_STRING, 0, &b);
}

/* Array header; false (error recorded) when n is unusable. */
static bool arr_begin(GGUFWriter *w, const char *key, GGUFType et, const void *v, uint64_t n,
                      Buf *b) {
    if (!key_ok(w, key, key ? strlen(key) : 0))
        return false;
    if (n > GGUF_MAX_ARRAY) {
        fail(w, STATUS_LIMIT, "key '%s': array of %" PRIu64 " exceeds GGUF_MAX_ARRAY", key, n);
        return false;
    }
    if (n && !v) {
        fail(w, STATUS_INVALID, "key '%s': NULL array of %" PRIu64 " elements", key, n);
        return false;
    }
    buf_u32(b, GGUF_TYPE_ARRAY);
    buf_u32(b, et);
    buf_u64(b, n);
    return true;
}

void gguf_writer_set_arr_str(GGUFWriter *w, const char *key, const char *const *v, uint64_t n) {
    Buf b = {0};
    if (!arr_begin(w, key, GGUF_TYPE_STRING, v, n, &b)) {
        buf_free(&b);
        return;
    }
    for (uint64_t i = 0; i < n; i++) {
        if (!str_ok(w, key, v[i])) {
            buf_free(&b);
            return;
        }
        buf_str(&b, v[i], strlen(v[i]));
    }
    put_kv(w, key, strlen(key), GGUF_TYPE_ARRAY, 0, &b);
}

void gguf_writer_set_arr_i32(GGUFWriter *w, const char *key, const int32_t *v, uint64_t n) {
    Buf b = {0};
    if (!arr_begin(w, key, GGUF_TYPE_INT32, v, n, &b)) {
        buf_free(&b);
        return;
    }
    for (uint64_t i = 0; i < n; i++)
        buf_u32(&b, (uint32_t)v[i]);
    put_kv(w, key, strlen(key), GGUF_TYPE_ARRAY, 0, &b);
}

void gguf_writer_set_arr_f32(GGUFWriter *w, const char *key, const float *v, uint64_t n) {
    Buf b = {0};
    if (!arr_begin(w, key, GGUF_TYPE_FLOAT32, v, n, &b)) {
        buf_free(&b);
        return;
    }
    for (uint64_t i = 0; i < n; i++)
        buf_u32(&b, f32_bits(v[i]));
    put_kv(w, key, strlen(key), GGUF_TYPE_ARRAY, 0, &b);
}

/* Encode a scalar pair from the reader's widened value. */
static void encode_scalar(Buf *b, const GGUFKV *kv, uint64_t *raw) {
    static const int SIZE[GGUF_TYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    switch (kv->type) {
    case GGUF_TYPE_INT8:
    case GGUF_TYPE_INT16:
    case GGUF_TYPE_INT32:
    case GGUF_TYPE_INT64:
        *raw = (uint64_t)kv->val.i;
        break;
    case GGUF_TYPE_FLOAT32:
        *raw = f32_bits((float)kv->val.f);
        break;
    case GGUF_TYPE_FLOAT64:
        memcpy(raw, &kv->val.f, sizeof *raw);
        break;
    default:
        *raw = kv->val.u;
        break;
    }
    buf_le(b, *raw, SIZE[kv->type]);
}

void gguf_writer_set_kv(GGUFWriter *w, const GGUFKV *kv) {
    static const int SIZE[GGUF_TYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    if (!kv || (unsigned)kv->type >= GGUF_TYPE_COUNT) {
        fail(w, STATUS_INVALID, "set_kv: NULL pair or unknown type");
        return;
    }
    if (!key_ok(w, kv->key.ptr, (size_t)kv->key.len))
        return;
    char *key = dup_bytes(kv->key.ptr, (size_t)kv->key.len); /* for messages and put_kv */
    if (!key) {
        fail(w, STATUS_NOMEM, "out of memory copying a key");
        return;
    }
    Buf b = {0};
    uint64_t raw = 0;
    buf_u32(&b, kv->type);
    if (kv->type == GGUF_TYPE_STRING) {
        buf_str(&b, kv->val.s.ptr, kv->val.s.len);
    } else if (kv->type != GGUF_TYPE_ARRAY) {
        encode_scalar(&b, kv, &raw);
    } else if ((unsigned)kv->arr_type >= GGUF_TYPE_COUNT || kv->arr_type == GGUF_TYPE_ARRAY) {
        fail(w, STATUS_INVALID, "key '%s': bad array element type %d", key, (int)kv->arr_type);
        buf_free(&b);
        free(key);
        return;
    } else {
        buf_u32(&b, kv->arr_type);
        buf_u64(&b, kv->arr_n);
        if (kv->arr_type == GGUF_TYPE_STRING)
            for (uint64_t i = 0; i < kv->arr_n; i++)
                buf_str(&b, kv->arr_strs[i].ptr, kv->arr_strs[i].len);
        else
            buf_put(&b, kv->arr_data, (size_t)(kv->arr_n * (uint64_t)SIZE[kv->arr_type]));
    }
    put_kv(w, key, (size_t)kv->key.len, kv->type, raw, &b);
    free(key);
}

/* ---- tensors ---- */

void gguf_writer_add_tensor(GGUFWriter *w, const char *name, DType type, int n_dims,
                            const int64_t *ne, const void *data) {
    size_t len = name ? strlen(name) : 0;
    const DTypeInfo *ti = dtype_info((int)type);
    if (len == 0 || len > GGUF_WRITER_MAX_NAME) {
        fail(w, STATUS_INVALID, "tensor '%.64s': name of %zu bytes not in 1..%d", name ? name : "",
             len, GGUF_WRITER_MAX_NAME);
        return;
    }
    if (!ti) {
        fail(w, STATUS_INVALID, "tensor '%s': unknown type %d", name, (int)type);
        return;
    }
    if (n_dims < 1 || n_dims > GGUF_MAX_DIMS || !ne) {
        fail(w, STATUS_INVALID, "tensor '%s': n_dims %d not in 1..%d", name, n_dims, GGUF_MAX_DIMS);
        return;
    }
    WTensor t = {.type = type, .n_dims = n_dims, .ne = {1, 1, 1, 1}, .data = data};
    for (int j = 0; j < n_dims; j++) {
        if (ne[j] < 1) {
            fail(w, STATUS_INVALID, "tensor '%s': ne[%d] = %" PRId64 " is not >= 1", name, j,
                 ne[j]);
            return;
        }
        t.ne[j] = ne[j];
    }
    if (t.ne[0] % ti->block_size) {
        fail(w, STATUS_INVALID,
             "tensor '%s': row length %" PRId64 " is not a multiple of the %s block size %d", name,
             t.ne[0], ti->name, ti->block_size);
        return;
    }
    uint64_t bytes = dtype_row_bytes(type, t.ne[0]);
    for (int j = 1; j < GGUF_MAX_DIMS; j++)
        if (!mem_mul_ok(bytes, (uint64_t)t.ne[j], &bytes) || bytes > INT64_MAX) {
            fail(w, STATUS_INVALID, "tensor '%s': byte size overflows", name);
            return;
        }
    if (!data) {
        fail(w, STATUS_INVALID, "tensor '%s': NULL data", name);
        return;
    }
    t.n_bytes = bytes;
    t.name = dup_bytes(name, len);
    t.name_len = len;
    if (!t.name || !grow((void **)&w->tensors, &w->cap_tensors, w->n_tensors, sizeof t)) {
        free(t.name);
        {
            fail(w, STATUS_NOMEM, "out of memory adding tensor '%s'", name);
            return;
        }
    }
    w->tensors[w->n_tensors++] = t;
}

/* ---- writing ---- */

static Status get_alignment(const GGUFWriter *w, uint64_t *align, Err *err) {
    *align = GGUF_DEFAULT_ALIGNMENT;
    for (size_t i = 0; i < w->n_kv; i++) {
        const WKV *kv = &w->kv[i];
        if (strcmp(kv->key, "general.alignment") != 0)
            continue;
        if (kv->type != GGUF_TYPE_UINT32)
            return err_set(err, STATUS_INVALID, "key 'general.alignment': type %s, expected u32",
                           gguf_type_name(kv->type));
        if (kv->value == 0 || (kv->value & (kv->value - 1)) || kv->value > GGUF_MAX_ALIGNMENT)
            return err_set(err, STATUS_INVALID,
                           "key 'general.alignment': value %" PRIu64 " is not a power of two <= %u",
                           kv->value, GGUF_MAX_ALIGNMENT);
        *align = kv->value;
    }
    return STATUS_OK;
}

static int cmp_tensor_ptr(const void *a, const void *b) {
    const WTensor *x = *(const WTensor *const *)a, *y = *(const WTensor *const *)b;
    return strcmp(x->name, y->name);
}

static Status check_duplicates(const GGUFWriter *w, Err *err) {
    if (w->n_tensors < 2)
        return STATUS_OK;
    const WTensor **p = malloc(w->n_tensors * sizeof *p);
    if (!p)
        return err_set(err, STATUS_NOMEM, "out of memory checking tensor names");
    for (size_t i = 0; i < w->n_tensors; i++)
        p[i] = &w->tensors[i];
    qsort(p, w->n_tensors, sizeof *p, cmp_tensor_ptr);
    Status s = STATUS_OK;
    for (size_t i = 1; i < w->n_tensors && s == STATUS_OK; i++)
        if (strcmp(p[i - 1]->name, p[i]->name) == 0)
            s = err_set(err, STATUS_INVALID, "duplicate tensor name '%s'", p[i]->name);
    free(p);
    return s;
}

/* Header, pairs, tensor infos (assigning offsets), padding. */
static Status build_meta(GGUFWriter *w, uint64_t align, Buf *b, Err *err) {
    uint64_t off = 0;
    buf_put(b, GGUF_MAGIC, 4);
    buf_u32(b, GGUF_WRITER_VERSION);
    buf_u64(b, w->n_tensors);
    buf_u64(b, w->n_kv);
    for (size_t i = 0; i < w->n_kv; i++) {
        buf_str(b, w->kv[i].key, w->kv[i].key_len);
        buf_put(b, w->kv[i].val.p, w->kv[i].val.n);
    }
    for (size_t i = 0; i < w->n_tensors; i++) {
        WTensor *t = &w->tensors[i];
        buf_str(b, t->name, t->name_len);
        buf_u32(b, (uint32_t)t->n_dims);
        for (int j = 0; j < t->n_dims; j++)
            buf_u64(b, (uint64_t)t->ne[j]);
        buf_u32(b, (uint32_t)t->type);
        buf_u64(b, off);
        t->offset = off;
        uint64_t padded;
        if (!mem_align_up_ok(t->n_bytes, align, &padded) || !mem_add_ok(off, padded, &off))
            return err_set(err, STATUS_INVALID, "tensor '%s': data section overflows", t->name);
    }
    buf_pad(b, align);
    if (b->oom)
        return err_set(err, STATUS_NOMEM, "out of memory building GGUF metadata");
    return STATUS_OK;
}

static Status write_all(int fd, const void *data, uint64_t n, const char *path, Err *err) {
    const uint8_t *p = data;
    while (n > 0) {
        size_t chunk = n > (1u << 30) ? (1u << 30) : (size_t)n;
        ssize_t k = write(fd, p, chunk);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return err_set(err, STATUS_IO, "cannot write '%s': %s", path,
                           k < 0 ? strerror(errno) : "wrote nothing");
        p += k;
        n -= (uint64_t)k;
    }
    return STATUS_OK;
}

static Status write_body(const GGUFWriter *w, int fd, const Buf *meta, uint64_t align,
                         const char *tmp, Err *err) {
    static const uint8_t zero[GGUF_MAX_ALIGNMENT];
    Status s = write_all(fd, meta->p, meta->n, tmp, err);
    for (size_t i = 0; i < w->n_tensors && s == STATUS_OK; i++) {
        const WTensor *t = &w->tensors[i];
        s = write_all(fd, t->data, t->n_bytes, tmp, err);
        if (s == STATUS_OK && t->n_bytes % align)
            s = write_all(fd, zero, align - t->n_bytes % align, tmp, err);
    }
    if (s == STATUS_OK && fsync(fd) != 0)
        s = err_set(err, STATUS_IO, "cannot fsync '%s': %s", tmp, strerror(errno));
    return s;
}

/* fsync the directory holding 'path' so the rename is durable. */
static Status sync_dir(const char *path, Err *err) {
    const char *slash = strrchr(path, '/');
    char *dir = slash ? dup_bytes(path, slash == path ? 1 : (size_t)(slash - path)) : NULL;
    if (slash && !dir)
        return err_set(err, STATUS_NOMEM, "out of memory");
    int fd = open(dir ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    Status s = STATUS_OK;
    if (fd < 0 || fsync(fd) != 0)
        s = err_set(err, STATUS_IO, "cannot sync directory '%s': %s", dir ? dir : ".",
                    strerror(errno));
    if (fd >= 0)
        close(fd);
    free(dir);
    return s;
}

static Status write_file(const GGUFWriter *w, const char *path, const Buf *meta, uint64_t align,
                         Err *err) {
    size_t n = strlen(path);
    char *tmp = malloc(n + 5);
    if (!tmp)
        return err_set(err, STATUS_NOMEM, "out of memory");
    memcpy(tmp, path, n);
    memcpy(tmp + n, ".tmp", 5);
    Status s = STATUS_OK;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        s = err_set(err, STATUS_IO, "cannot create '%s': %s", tmp, strerror(errno));
        free(tmp);
        return s;
    }
    s = write_body(w, fd, meta, align, tmp, err);
    if (close(fd) != 0 && s == STATUS_OK)
        s = err_set(err, STATUS_IO, "cannot close '%s': %s", tmp, strerror(errno));
    if (s == STATUS_OK && rename(tmp, path) != 0)
        s = err_set(err, STATUS_IO, "cannot rename '%s' to '%s': %s", tmp, path, strerror(errno));
    if (s != STATUS_OK)
        unlink(tmp);
    else
        s = sync_dir(path, err);
    free(tmp);
    return s;
}

Status gguf_writer_write(GGUFWriter *w, const char *path, Err *err) {
    uint64_t align;
    if (w->err.status != STATUS_OK)
        return err_set(err, w->err.status, "%s", w->err.msg);
    if (w->n_tensors > GGUF_MAX_TENSORS || w->n_kv > GGUF_MAX_KV)
        return err_set(err, STATUS_LIMIT,
                       "%zu tensors / %zu keys exceed GGUF_MAX_TENSORS (%u) / "
                       "GGUF_MAX_KV (%u)",
                       w->n_tensors, w->n_kv, GGUF_MAX_TENSORS, GGUF_MAX_KV);
    Status s = get_alignment(w, &align, err);
    if (s == STATUS_OK)
        s = check_duplicates(w, err);
    if (s != STATUS_OK)
        return s;
    Buf meta = {0};
    s = build_meta(w, align, &meta, err);
    if (s == STATUS_OK)
        s = write_file(w, path, &meta, align, err);
    buf_free(&meta);
    return s;
}
