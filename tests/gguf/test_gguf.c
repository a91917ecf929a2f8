/* test_gguf.c - the GGUF reader and writer.
 *
 * Suite gguf: writer -> reader round trips, the writer's exact bytes, the
 * reader on hand-built valid files, getters, lookups at scale.
 * Suite gguf_bad: a table of hand-made broken files (built byte by byte here,
 * never with the writer, so these tests do not trust it), truncation at
 * every offset, random truncations and byte flips, and the allocation bound. */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gguf/gguf.h"
#include "gguf/gguf_writer.h"

/* ---- byte builder ---- */

typedef struct {
    uint8_t *p;
    size_t n, cap;
} Bytes;

static void b_raw(Bytes *b, const void *d, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        cr_assert_not_null(b->p);
    }
    if (n)
        memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void b_le(Bytes *b, uint64_t v, int n) {
    for (int i = 0; i < n; i++) {
        uint8_t c = (uint8_t)(v >> (8 * i));
        b_raw(b, &c, 1);
    }
}
static void b_u8(Bytes *b, uint8_t v) { b_le(b, v, 1); }
static void b_u32(Bytes *b, uint32_t v) { b_le(b, v, 4); }
static void b_u64(Bytes *b, uint64_t v) { b_le(b, v, 8); }
static void b_f32(Bytes *b, float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    b_u32(b, u);
}
static void b_strn(Bytes *b, const char *s, size_t n) {
    b_u64(b, n);
    b_raw(b, s, n);
}
static void b_str(Bytes *b, const char *s) { b_strn(b, s, strlen(s)); }
static void b_zeros(Bytes *b, size_t n) {
    for (size_t i = 0; i < n; i++)
        b_u8(b, 0);
}
static void b_pad(Bytes *b, size_t align) {
    while (b->n % align)
        b_u8(b, 0);
}

/* GGUF pieces. */
static void hdr(Bytes *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
    b_raw(b, "GGUF", 4);
    b_u32(b, version);
    b_u64(b, n_tensors);
    b_u64(b, n_kv);
}
static void kv_head(Bytes *b, const char *key, uint32_t type) {
    b_str(b, key);
    b_u32(b, type);
}
static void kv_u32(Bytes *b, const char *key, uint32_t v) {
    kv_head(b, key, GGUF_TYPE_UINT32);
    b_u32(b, v);
}
static void kv_str(Bytes *b, const char *key, const char *v) {
    kv_head(b, key, GGUF_TYPE_STRING);
    b_str(b, v);
}
static void kv_arr_head(Bytes *b, const char *key, uint32_t elem, uint64_t n) {
    kv_head(b, key, GGUF_TYPE_ARRAY);
    b_u32(b, elem);
    b_u64(b, n);
}
static void tinfo(Bytes *b, const char *name, uint32_t n_dims, const int64_t *ne, uint32_t type,
                  uint64_t offset) {
    b_str(b, name);
    b_u32(b, n_dims);
    for (uint32_t j = 0; j < n_dims; j++)
        b_u64(b, (uint64_t)ne[j]);
    b_u32(b, type);
    b_u64(b, offset);
}
/* A v3 file with no pairs and one tensor, then padding to 32 and 'data' zero bytes. */
static void one_tensor(Bytes *b, const char *name, uint32_t n_dims, const int64_t *ne,
                       uint32_t type, uint64_t offset, size_t data) {
    hdr(b, 3, 1, 0);
    tinfo(b, name, n_dims, ne, type, offset);
    b_pad(b, 32);
    b_zeros(b, data);
}

/* Open a private, exactly-sized copy (so ASan sees any over-read). */
static Status open_copy(GGUF *g, const Bytes *b, size_t n, Err *err, void **copy) {
    *copy = malloc(n ? n : 1);
    cr_assert_not_null(*copy);
    if (n)
        memcpy(*copy, b->p, n);
    return gguf_open_mem(g, *copy, n, err);
}

static void expect_rejected(const char *row, void (*build)(Bytes *), Status want,
                            const char *needle1, const char *needle2) {
    Bytes b = {0};
    GGUF g;
    Err err = {0};
    void *copy;
    build(&b);
    Status s = open_copy(&g, &b, b.n, &err, &copy);
    cr_assert_eq(s, want, "%s: status %s, want %s (msg: %s)", row, status_name(s),
                 status_name(want), err.msg);
    cr_assert_not_null(strstr(err.msg, needle1), "%s: message '%s' lacks '%s'", row, err.msg,
                       needle1);
    if (needle2)
        cr_assert_not_null(strstr(err.msg, needle2), "%s: message '%s' lacks '%s'", row, err.msg,
                           needle2);
    cr_assert(g.kv == NULL && g.tensors == NULL && g.n_kv == 0, "%s: not reset on failure", row);
    gguf_close(&g);
    free(copy);
    free(b.p);
}

/* One row of the table: a test named NAME whose body (following the macro)
 * builds the broken bytes into 'b'. */
#define BAD(NAME, STATUS, NEEDLE1, NEEDLE2)                                                        \
    static void build_##NAME(Bytes *b);                                                            \
    Test(gguf_bad, NAME) { expect_rejected(#NAME, build_##NAME, STATUS, NEEDLE1, NEEDLE2); }       \
    static void build_##NAME(Bytes *b)

/* ==== the table of broken files ==== */

/* header */
BAD(empty_file, STATUS_FORMAT, "magic", "size 0") { (void)b; }
BAD(short_header, STATUS_FORMAT, "version", "offset 4") { b_raw(b, "GGUF\3\0", 6); }
BAD(bad_magic, STATUS_FORMAT, "magic", "GGUX") {
    hdr(b, 3, 0, 0);
    b->p[3] = 'X';
}
BAD(version_0, STATUS_FORMAT, "version 0", NULL) { hdr(b, 0, 0, 0); }
BAD(version_1, STATUS_FORMAT, "version 1", NULL) { hdr(b, 1, 0, 0); }
BAD(version_4, STATUS_FORMAT, "version 4", NULL) { hdr(b, 4, 0, 0); }
BAD(version_big_endian, STATUS_FORMAT, "big-endian", "50331648") { hdr(b, 3u << 24, 0, 0); }
BAD(tensor_count_2_40, STATUS_LIMIT, "tensor count 1099511627776", "GGUF_MAX_TENSORS") {
    hdr(b, 3, 1ull << 40, 0);
}
BAD(tensor_count_2_62, STATUS_LIMIT, "tensor count 4611686018427387904", NULL) {
    hdr(b, 3, 1ull << 62, 0);
}
BAD(tensor_count_max_u64, STATUS_LIMIT, "18446744073709551615", NULL) { hdr(b, 3, UINT64_MAX, 0); }
BAD(kv_count_2_40, STATUS_LIMIT, "key/value count 1099511627776", "GGUF_MAX_KV") {
    hdr(b, 3, 0, 1ull << 40);
}
BAD(kv_count_2_62, STATUS_LIMIT, "key/value count 4611686018427387904", NULL) {
    hdr(b, 3, 0, 1ull << 62);
}
BAD(kv_count_past_bytes, STATUS_FORMAT, "key/value count 1000", "needs at least 14000") {
    hdr(b, 3, 0, 1000);
    b_zeros(b, 100);
}
BAD(counts_together_past_bytes, STATUS_FORMAT, "need at least 47", NULL) {
    hdr(b, 3, 1, 1);
    b_zeros(b, 40);
}

/* keys */
BAD(key_length_past_end, STATUS_FORMAT, "key 0", "length 1000") {
    hdr(b, 3, 0, 1);
    b_u64(b, 1000);
    b_raw(b, "abcdefgh", 8);
}
BAD(key_length_over_limit, STATUS_LIMIT, "key 0", "GGUF_MAX_STRING") {
    hdr(b, 3, 0, 1);
    b_u64(b, 1ull << 40);
    b_zeros(b, 8);
}
BAD(key_empty, STATUS_FORMAT, "key 0: empty name", NULL) {
    hdr(b, 3, 0, 1);
    b_u64(b, 0);
    b_u32(b, GGUF_TYPE_UINT32);
    b_u32(b, 1);
}
BAD(key_with_nul, STATUS_FORMAT, "NUL byte at position 1", NULL) {
    hdr(b, 3, 0, 1);
    b_strn(b, "a\0b", 3);
    b_u32(b, GGUF_TYPE_UINT32);
    b_u32(b, 1);
}
BAD(duplicate_keys, STATUS_FORMAT, "key 2 'a.b': duplicate of key 0", NULL) {
    hdr(b, 3, 0, 3);
    kv_u32(b, "a.b", 1);
    kv_u32(b, "a.c", 2);
    kv_u32(b, "a.b", 3);
}
BAD(value_string_past_end, STATUS_FORMAT, "key 0 'general.name'", "length 100") {
    hdr(b, 3, 0, 1);
    kv_head(b, "general.name", GGUF_TYPE_STRING);
    b_u64(b, 100);
    b_raw(b, "abc", 3);
}
BAD(value_truncated_u64, STATUS_FORMAT, "key 0 'x.y'", "needs 8 bytes") {
    hdr(b, 3, 0, 1);
    kv_head(b, "x.y", GGUF_TYPE_UINT64);
    b_u32(b, 7);
}
BAD(value_type_13, STATUS_FORMAT, "key 0 'x.y'", "unknown value type 13") {
    hdr(b, 3, 0, 1);
    kv_head(b, "x.y", 13);
    b_u32(b, 0);
}
BAD(value_type_2_32_minus_1, STATUS_FORMAT, "unknown value type 4294967295", NULL) {
    hdr(b, 3, 0, 1);
    kv_head(b, "x.y", UINT32_MAX);
    b_u32(b, 0);
}
BAD(bool_value_2, STATUS_FORMAT, "key 1 'x.flag'", "bool value 2") {
    hdr(b, 3, 0, 2);
    kv_u32(b, "x.a", 1);
    kv_head(b, "x.flag", GGUF_TYPE_BOOL);
    b_u8(b, 2);
}
BAD(nested_array, STATUS_FORMAT, "key 0 'x.arr'", "nested") {
    hdr(b, 3, 0, 1);
    kv_arr_head(b, "x.arr", GGUF_TYPE_ARRAY, 1);
    b_u32(b, GGUF_TYPE_UINT8);
    b_u64(b, 1);
    b_u8(b, 0);
}
BAD(array_elem_type_13, STATUS_FORMAT, "'x.arr'", "element type 13") {
    hdr(b, 3, 0, 1);
    kv_arr_head(b, "x.arr", 13, 1);
    b_u8(b, 0);
}
BAD(array_bool_element_2, STATUS_FORMAT, "element 2", "bool value 2") {
    hdr(b, 3, 0, 1);
    kv_arr_head(b, "x.arr", GGUF_TYPE_BOOL, 3);
    b_raw(b, "\1\0\2", 3);
}
BAD(array_length_over_limit, STATUS_LIMIT, "array length 8589934592", "GGUF_MAX_ARRAY") {
    hdr(b, 3, 0, 1);
    kv_arr_head(b, "x.arr", GGUF_TYPE_UINT8, 1ull << 33);
    b_zeros(b, 8);
}
BAD(array_past_end, STATUS_FORMAT, "'x.arr'", "array of 1000 u64") {
    hdr(b, 3, 0, 1);
    kv_arr_head(b, "x.arr", GGUF_TYPE_UINT64, 1000);
    b_zeros(b, 64);
}
BAD(string_array_count_past_end, STATUS_FORMAT, "array of 2147483648 strings", "needs at least") {
    hdr(b, 3, 0, 1);
    kv_arr_head(b, "tokenizer.ggml.tokens", GGUF_TYPE_STRING, 1ull << 31);
    b_str(b, "a");
}
BAD(string_array_element_past_end, STATUS_FORMAT, "'x.arr'", "element 1 length 99") {
    hdr(b, 3, 0, 1);
    kv_arr_head(b, "x.arr", GGUF_TYPE_STRING, 2);
    b_str(b, "ok");
    b_u64(b, 99);
    b_raw(b, "short", 5);
}

/* general.alignment and the other well-known keys */
BAD(alignment_string, STATUS_FORMAT, "'general.alignment': type string", "expected u32") {
    hdr(b, 3, 0, 1);
    kv_str(b, "general.alignment", "32");
}
BAD(alignment_u64, STATUS_FORMAT, "'general.alignment': type u64", NULL) {
    hdr(b, 3, 0, 1);
    kv_head(b, "general.alignment", GGUF_TYPE_UINT64);
    b_u64(b, 32);
}
BAD(alignment_0, STATUS_FORMAT, "'general.alignment': value 0", "power of two") {
    hdr(b, 3, 0, 1);
    kv_u32(b, "general.alignment", 0);
}
BAD(alignment_3, STATUS_FORMAT, "key 1 'general.alignment': value 3 is not a power of two", NULL) {
    hdr(b, 3, 0, 2);
    kv_str(b, "general.name", "m");
    kv_u32(b, "general.alignment", 3);
}
BAD(alignment_2_20, STATUS_LIMIT, "value 1048576", "GGUF_MAX_ALIGNMENT (65536)") {
    hdr(b, 3, 0, 1);
    kv_u32(b, "general.alignment", 1u << 20);
}
BAD(architecture_u32, STATUS_FORMAT, "'general.architecture': type u32", "expected string") {
    hdr(b, 3, 0, 1);
    kv_u32(b, "general.architecture", 1);
}
BAD(name_bool, STATUS_FORMAT, "'general.name': type bool", "expected string") {
    hdr(b, 3, 0, 1);
    kv_head(b, "general.name", GGUF_TYPE_BOOL);
    b_u8(b, 1);
}
BAD(file_type_f32, STATUS_FORMAT, "'general.file_type': type f32", "expected an integer") {
    hdr(b, 3, 0, 1);
    kv_head(b, "general.file_type", GGUF_TYPE_FLOAT32);
    b_f32(b, 1.0f);
}
BAD(tokenizer_model_u8, STATUS_FORMAT, "'tokenizer.ggml.model': type u8", NULL) {
    hdr(b, 3, 0, 1);
    kv_head(b, "tokenizer.ggml.model", GGUF_TYPE_UINT8);
    b_u8(b, 1);
}
BAD(tokens_array_of_i32, STATUS_FORMAT, "'tokenizer.ggml.tokens': type array of i32",
    "expected array of string") {
    hdr(b, 3, 0, 1);
    kv_arr_head(b, "tokenizer.ggml.tokens", GGUF_TYPE_INT32, 1);
    b_u32(b, 5);
}
BAD(tokens_string, STATUS_FORMAT, "'tokenizer.ggml.tokens': type string", NULL) {
    hdr(b, 3, 0, 1);
    kv_str(b, "tokenizer.ggml.tokens", "a");
}
BAD(scores_array_of_string, STATUS_FORMAT, "'tokenizer.ggml.scores'", "expected array of f32") {
    hdr(b, 3, 0, 1);
    kv_arr_head(b, "tokenizer.ggml.scores", GGUF_TYPE_STRING, 1);
    b_str(b, "1.0");
}
BAD(token_type_array_of_u32, STATUS_FORMAT, "'tokenizer.ggml.token_type'",
    "expected array of i32") {
    hdr(b, 3, 0, 1);
    kv_arr_head(b, "tokenizer.ggml.token_type", GGUF_TYPE_UINT32, 1);
    b_u32(b, 1);
}
BAD(merges_string, STATUS_FORMAT, "'tokenizer.ggml.merges': type string", NULL) {
    hdr(b, 3, 0, 1);
    kv_str(b, "tokenizer.ggml.merges", "a b");
}
BAD(chat_template_array, STATUS_FORMAT, "'tokenizer.chat_template': type array of string", NULL) {
    hdr(b, 3, 0, 1);
    kv_arr_head(b, "tokenizer.chat_template", GGUF_TYPE_STRING, 1);
    b_str(b, "{{ x }}");
}

/* tensor infos */
static const int64_t NE8[4] = {8, 1, 1, 1};
BAD(tensor_name_empty, STATUS_FORMAT, "tensor 0: empty name", NULL) {
    one_tensor(b, "", 1, NE8, 0, 0, 64);
}
BAD(tensor_name_past_end, STATUS_FORMAT, "tensor 0", "name length 5000") {
    hdr(b, 3, 1, 0);
    b_u64(b, 5000);
    b_zeros(b, 40);
}
BAD(duplicate_tensor_names, STATUS_FORMAT, "tensor 1 'w': duplicate name of tensor 0", NULL) {
    hdr(b, 3, 2, 0);
    tinfo(b, "w", 1, NE8, 0, 0);
    tinfo(b, "w", 1, NE8, 0, 32);
    b_pad(b, 32);
    b_zeros(b, 64);
}
BAD(n_dims_0, STATUS_FORMAT, "tensor 0 'w'", "n_dims 0 not in 1..4") {
    one_tensor(b, "w", 0, NE8, 0, 0, 64);
}
BAD(n_dims_5, STATUS_FORMAT, "tensor 0 'w'", "n_dims 5") {
    static const int64_t ne[5] = {1, 1, 1, 1, 1};
    one_tensor(b, "w", 5, ne, 0, 0, 64);
}
BAD(ne_negative, STATUS_FORMAT, "tensor 0 'w'", "ne[1] = -5") {
    static const int64_t ne[2] = {8, -5};
    one_tensor(b, "w", 2, ne, 0, 0, 64);
}
BAD(element_count_overflow_u64, STATUS_FORMAT, "element count", "[4294967296, 4294967296]") {
    static const int64_t ne[2] = {1ll << 32, 1ll << 32};
    one_tensor(b, "w", 2, ne, 0, 0, 64);
}
BAD(element_count_over_int64, STATUS_FORMAT, "element count", "overflows int64") {
    static const int64_t ne[2] = {1ll << 62, 2};
    one_tensor(b, "w", 2, ne, 0, 0, 64);
}
BAD(byte_size_overflow, STATUS_FORMAT, "tensor 0 'w'", "byte size of F32 shape") {
    static const int64_t ne[3] = {1ll << 31, 1ll << 30, 2}; /* 2^62 elements * 4 bytes */
    one_tensor(b, "w", 3, ne, DTYPE_F32, 0, 64);
}
BAD(row_not_whole_blocks_q4_0, STATUS_FORMAT, "ne[0] = 33", "Q4_0 block size 32") {
    static const int64_t ne[2] = {33, 2};
    one_tensor(b, "w", 2, ne, DTYPE_Q4_0, 0, 64);
}
BAD(row_not_whole_blocks_q4_k, STATUS_FORMAT, "ne[0] = 32", "block size 256") {
    static const int64_t ne[1] = {32};
    one_tensor(b, "w", 1, ne, DTYPE_Q4_K, 0, 64);
}
BAD(type_4, STATUS_FORMAT, "tensor 0 'w'", "unknown tensor type 4") {
    one_tensor(b, "w", 1, NE8, 4, 0, 64);
}
BAD(type_5, STATUS_FORMAT, "unknown tensor type 5", NULL) { one_tensor(b, "w", 1, NE8, 5, 0, 64); }
BAD(type_31, STATUS_FORMAT, "unknown tensor type 31", NULL) {
    one_tensor(b, "w", 1, NE8, 31, 0, 64);
}
BAD(type_100, STATUS_FORMAT, "unknown tensor type 100", NULL) {
    one_tensor(b, "w", 1, NE8, 100, 0, 64);
}
BAD(type_2_31, STATUS_FORMAT, "unknown tensor type 2147483648", NULL) {
    one_tensor(b, "w", 1, NE8, 1u << 31, 0, 64);
}

/* data layout */
BAD(data_section_past_end, STATUS_FORMAT, "data section", "past end of file") {
    hdr(b, 3, 1, 0);
    tinfo(b, "w", 1, NE8, 0, 0); /* infos end at 24 + 33 = 57; data would start at 64 */
}
BAD(offset_unaligned, STATUS_FORMAT, "tensor 0 'w': offset 4 is not a multiple of the alignment 32",
    NULL) {
    one_tensor(b, "w", 1, NE8, 0, 4, 64);
}
BAD(offset_unaligned_64, STATUS_FORMAT, "offset 32 is not a multiple of the alignment 64", NULL) {
    hdr(b, 3, 1, 1);
    kv_u32(b, "general.alignment", 64);
    tinfo(b, "w", 1, NE8, 0, 32);
    b_pad(b, 64);
    b_zeros(b, 128);
}
BAD(data_past_end, STATUS_FORMAT, "tensor 0 'w': data [64, 96) past end of file (size 95)", NULL) {
    one_tensor(b, "w", 1, NE8, 0, 0, 31);
}
BAD(offset_past_end, STATUS_FORMAT, "tensor 1 'b'", "past end of file") {
    hdr(b, 3, 2, 0);
    tinfo(b, "a", 1, NE8, 0, 0);
    tinfo(b, "b", 1, NE8, 0, 64);
    b_pad(b, 32);
    b_zeros(b, 64);
}
BAD(offset_overflows, STATUS_FORMAT, "tensor 0 'w': data offset 18446744073709551584", NULL) {
    one_tensor(b, "w", 1, NE8, 0, UINT64_MAX - 31, 64);
}
BAD(overlapping_tensors, STATUS_FORMAT, "tensor 1 'b': data [160, 192) overlaps tensor 0 'a'",
    NULL) {
    static const int64_t ne16[1] = {16};
    hdr(b, 3, 2, 0);
    tinfo(b, "a", 1, ne16, 0, 32); /* infos end at 90, data at 96: a is [128, 192) */
    tinfo(b, "b", 1, NE8, 0, 64);  /* [160, 192) */
    b_pad(b, 32);
    b_zeros(b, 128);
}
BAD(overlapping_out_of_order, STATUS_FORMAT, "overlaps", "'c'") {
    static const int64_t ne16[1] = {16};
    hdr(b, 3, 3, 0);
    tinfo(b, "a", 1, NE8, 0, 128);
    tinfo(b, "b", 1, ne16, 0, 0); /* [0, 64) */
    tinfo(b, "c", 1, NE8, 0, 32); /* [32, 64) */
    b_pad(b, 32);
    b_zeros(b, 192);
}

/* ==== the reader on hand-built valid files ==== */

/* A small valid file that ends exactly at the end of its last tensor, so
 * that every proper prefix is invalid. */
static void build_small_valid(Bytes *b) {
    static const int64_t ne_w[2] = {4, 2}, ne_q[1] = {32};
    hdr(b, 3, 2, 5);
    kv_str(b, "general.architecture", "llama");
    kv_u32(b, "general.alignment", 32);
    kv_head(b, "x.f", GGUF_TYPE_FLOAT32);
    b_f32(b, 1.5f);
    kv_arr_head(b, "tokenizer.ggml.tokens", GGUF_TYPE_STRING, 3);
    b_str(b, "a");
    b_str(b, "");
    b_str(b, "bc");
    kv_arr_head(b, "x.arr", GGUF_TYPE_INT32, 3);
    b_u32(b, 1);
    b_u32(b, (uint32_t)-2);
    b_u32(b, 3);
    tinfo(b, "w", 2, ne_w, DTYPE_F32, 0);
    tinfo(b, "q", 1, ne_q, DTYPE_Q8_0, 32);
    b_pad(b, 32);
    for (int i = 0; i < 32 + 34; i++)
        b_u8(b, (uint8_t)(i + 1));
}

Test(gguf, reads_hand_built_file) {
    Bytes b = {0};
    GGUF g;
    Err err = {0};
    build_small_valid(&b);
    cr_assert_eq(gguf_open_mem(&g, b.p, b.n, &err), STATUS_OK, "%s", err.msg);
    cr_assert_eq(g.version, 3);
    cr_assert_eq(g.n_kv, 5);
    cr_assert_eq(g.n_tensors, 2);
    cr_assert_eq(g.alignment, 32);
    cr_assert(gguf_str_eq(gguf_find_key(&g, "general.architecture")->val.s, "llama"));
    cr_assert_eq(gguf_find_key(&g, "x.f")->val.f, 1.5);
    const GGUFKV *tok = gguf_find_key(&g, "tokenizer.ggml.tokens");
    cr_assert_eq(tok->arr_n, 3);
    cr_assert(gguf_str_eq(tok->arr_strs[0], "a") && gguf_str_eq(tok->arr_strs[1], "") &&
              gguf_str_eq(tok->arr_strs[2], "bc"));
    const GGUFKV *arr = gguf_find_key(&g, "x.arr");
    cr_assert_eq(gguf_arr_i64(arr, 1), -2);
    cr_assert_eq(gguf_arr_f64(arr, 2), 3.0);
    const GGUFTensor *w = gguf_find_tensor(&g, "w"), *q = gguf_find_tensor(&g, "q");
    cr_assert(w && q);
    cr_assert_eq(g.data_offset % 32, 0);
    cr_assert_eq(w->n_elements, 8);
    cr_assert_eq(w->n_bytes, 32);
    cr_assert_eq(q->n_bytes, 34);
    cr_assert_eq((const uint8_t *)w->data, b.p + g.data_offset);
    cr_assert_eq((const uint8_t *)q->data, b.p + g.data_offset + 32);
    cr_assert_eq(((const uint8_t *)q->data)[33], 66);
    cr_assert_eq((const uint8_t *)q->data + q->n_bytes, b.p + b.n);
    cr_assert_null(gguf_find_tensor(&g, "x"));
    cr_assert_null(gguf_find_key(&g, "x"));
    gguf_close(&g);
    free(b.p);
}

Test(gguf, accepts_v2_zero_dims_and_zero_tensors) {
    Bytes b = {0};
    GGUF g;
    Err err = {0};
    static const int64_t ne0[2] = {0, 5};
    hdr(&b, 2, 2, 0);
    tinfo(&b, "empty", 2, ne0, DTYPE_Q4_K, 0); /* 0 elements, 0 bytes */
    tinfo(&b, "w", 1, NE8, DTYPE_F32, 0);
    b_pad(&b, 32);
    b_zeros(&b, 32);
    cr_assert_eq(gguf_open_mem(&g, b.p, b.n, &err), STATUS_OK, "%s", err.msg);
    cr_assert_eq(g.version, 2);
    cr_assert_eq(gguf_find_tensor(&g, "empty")->n_bytes, 0);
    gguf_close(&g);
    /* no tensors: no data section and no padding needed (as ggml) */
    b.n = 0;
    hdr(&b, 3, 0, 1);
    kv_u32(&b, "general.alignment", 64);
    cr_assert_eq(gguf_open_mem(&g, b.p, b.n, &err), STATUS_OK, "%s", err.msg);
    cr_assert_eq(g.alignment, 64);
    gguf_close(&g);
    free(b.p);
}

Test(gguf_bad, truncated_at_every_offset) {
    Bytes b = {0};
    build_small_valid(&b);
    for (size_t cut = 0; cut < b.n; cut++) {
        GGUF g;
        Err err = {0};
        void *copy;
        Status s = open_copy(&g, &b, cut, &err, &copy);
        cr_assert_eq(s, STATUS_FORMAT, "cut at %zu of %zu: status %s (%s)", cut, b.n,
                     status_name(s), err.msg);
        cr_assert(err.msg[0] != '\0', "cut at %zu: empty message", cut);
        gguf_close(&g);
        free(copy);
    }
    free(b.p);
}

static uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* ~200 pairs of every type and 30 tensors of several dtypes; ends at the
 * end of the last tensor. */
static void build_large_valid(Bytes *b) {
    static const DType types[] = {DTYPE_F32,  DTYPE_F16,  DTYPE_Q8_0, DTYPE_Q4_0,
                                  DTYPE_Q4_K, DTYPE_Q6_K, DTYPE_BF16};
    char name[64];
    hdr(b, 3, 30, 13 * 16);
    for (int i = 0; i < 13 * 16; i++) {
        uint32_t t = (uint32_t)(i % 13);
        snprintf(name, sizeof name, "k.%d", i);
        if (t == GGUF_TYPE_ARRAY) {
            kv_arr_head(b, name, GGUF_TYPE_STRING, 3);
            b_str(b, "x");
            b_str(b, "yy");
            b_str(b, "");
        } else if (t == GGUF_TYPE_STRING) {
            kv_str(b, name, "some value");
        } else {
            static const int sz[13] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
            kv_head(b, name, t);
            b_le(b, t == GGUF_TYPE_BOOL ? 1 : 0x0102030405060708ull, sz[t]);
        }
    }
    uint64_t off = 0, sizes[30];
    for (int i = 0; i < 30; i++) {
        DType ty = types[i % 7];
        const DTypeInfo *ti = dtype_info(ty);
        int64_t ne[3] = {ti->block_size * (1 + i % 3), 1 + i % 2, 2};
        snprintf(name, sizeof name, "blk.%d.weight", i);
        tinfo(b, name, 1 + i % 3, ne, ty, off);
        sizes[i] =
            dtype_row_bytes(ty, ne[0]) * (i % 3 >= 1 ? (uint64_t)ne[1] : 1) * (i % 3 >= 2 ? 2 : 1);
        off += (sizes[i] + 31) / 32 * 32;
    }
    b_pad(b, 32);
    for (int i = 0; i < 30; i++) {
        for (uint64_t k = 0; k < sizes[i]; k++)
            b_u8(b, (uint8_t)k);
        if (i < 29)
            b_pad(b, 32);
    }
}

Test(gguf_bad, truncated_at_random_offsets_of_a_larger_file) {
    Bytes b = {0};
    GGUF g;
    Err err = {0};
    build_large_valid(&b);
    cr_assert_eq(gguf_open_mem(&g, b.p, b.n, &err), STATUS_OK, "%s", err.msg);
    cr_assert_eq(g.n_tensors, 30);
    gguf_close(&g);
    uint64_t seed = 42;
    for (int it = 0; it < 1500; it++) {
        size_t cut = (size_t)(splitmix(&seed) % b.n);
        void *copy;
        Status s = open_copy(&g, &b, cut, &err, &copy);
        cr_assert_eq(s, STATUS_FORMAT, "cut at %zu of %zu: status %s (%s)", cut, b.n,
                     status_name(s), err.msg);
        gguf_close(&g);
        free(copy);
    }
    free(b.p);
}

/* Random byte changes: never a crash (ASan), allocations O(file size), and
 * when accepted, every view lies inside the buffer. */
Test(gguf_bad, random_byte_flips) {
    Bytes b = {0};
    build_small_valid(&b);
    uint64_t seed = 7;
    int accepted = 0;
    for (int it = 0; it < 20000; it++) {
        GGUF g;
        Err err = {0};
        void *copy;
        uint8_t *p = malloc(b.n);
        memcpy(p, b.p, b.n);
        int flips = 1 + (int)(splitmix(&seed) % 4);
        for (int f = 0; f < flips; f++) {
            uint64_t r = splitmix(&seed);
            p[r % b.n] = (r >> 32) % 3 == 0 ? (uint8_t)(r >> 40)
                                            : (uint8_t)(p[r % b.n] ^ (1u << ((r >> 40) % 8)));
        }
        Bytes m = {p, b.n, b.n};
        Status s = open_copy(&g, &m, m.n, &err, &copy);
        cr_assert(g.alloc_bytes <= 8 * (uint64_t)m.n,
                  "iteration %d: allocated %" PRIu64 " for a %zu-byte file", it, g.alloc_bytes,
                  m.n);
        if (s == STATUS_OK) {
            accepted++;
            const uint8_t *lo = copy, *hi = lo + m.n;
            for (uint64_t t = 0; t < g.n_tensors; t++) {
                const GGUFTensor *ti = &g.tensors[t];
                cr_assert((const uint8_t *)ti->data >= lo &&
                          (const uint8_t *)ti->data + ti->n_bytes <= hi);
            }
        } else {
            cr_assert(err.msg[0], "iteration %d: empty message", it);
        }
        gguf_close(&g);
        free(copy);
        free(p);
    }
    free(b.p);
    cr_assert(accepted > 0, "no mutation accepted: the test exercises nothing after parsing");
}

/* Hostile counts fail before the reader allocates anything. */
Test(gguf_bad, huge_counts_allocate_nothing) {
    const uint64_t counts[] = {1ull << 40, 1ull << 62, 1000, GGUF_MAX_TENSORS};
    for (int i = 0; i < 4; i++)
        for (int which = 0; which < 2; which++) {
            Bytes b = {0};
            GGUF g;
            Err err = {0};
            hdr(&b, 3, which ? counts[i] : 0, which ? 0 : counts[i]);
            b_zeros(&b, 64);
            cr_assert_neq(gguf_open_mem(&g, b.p, b.n, &err), STATUS_OK);
            cr_assert_eq(g.alloc_bytes, 0, "count %" PRIu64 ": allocated %" PRIu64, counts[i],
                         g.alloc_bytes);
            free(b.p);
        }
    /* a string array claiming 2^31 entries in a tiny file: only the pair array */
    Bytes b = {0};
    GGUF g;
    Err err = {0};
    hdr(&b, 3, 0, 1);
    kv_arr_head(&b, "a", GGUF_TYPE_STRING, 1ull << 31);
    b_zeros(&b, 200);
    cr_assert_eq(gguf_open_mem(&g, b.p, b.n, &err), STATUS_FORMAT);
    cr_assert_lt(g.alloc_bytes, b.n, "allocated %" PRIu64 " for %zu bytes", g.alloc_bytes, b.n);
    free(b.p);
}

/* A file of many minimal pairs: allocation stays a small multiple of its size. */
Test(gguf_bad, many_small_pairs_allocation_bound) {
    Bytes b = {0};
    GGUF g;
    Err err = {0};
    const int n = 20000;
    hdr(&b, 3, 0, (uint64_t)n);
    for (int i = 0; i < n; i++) {
        char k[16];
        snprintf(k, sizeof k, "%x", i);
        kv_head(&b, k, GGUF_TYPE_UINT8);
        b_u8(&b, 1);
    }
    cr_assert_eq(gguf_open_mem(&g, b.p, b.n, &err), STATUS_OK, "%s", err.msg);
    cr_assert_leq(g.alloc_bytes, 8 * (uint64_t)b.n);
    cr_assert_not_null(gguf_find_key(&g, "4e1f"));
    gguf_close(&g);
    free(b.p);
}

/* ==== writer round trips ==== */

static char tmpdir[64];

static void mk_tmpdir(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/cgpt_gguf_XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir));
}
static void rm_tmpdir(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    cr_assert_eq(system(cmd), 0);
}

static const char *tmp_path(const char *name) {
    static char path[128];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    return path;
}

static uint64_t file_size(const char *path) {
    struct stat st;
    cr_assert_eq(stat(path, &st), 0, "stat %s", path);
    return (uint64_t)st.st_size;
}

static void write_ok(GGUFWriter *w, const char *path) {
    Err err = {0};
    cr_assert_eq(gguf_writer_write(w, path, &err), STATUS_OK, "%s", err.msg);
    char tmp[160];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    cr_assert_neq(access(tmp, F_OK), 0, "%s left behind", tmp);
}

static void open_ok(GGUF *g, const char *path) {
    Err err = {0};
    cr_assert_eq(gguf_open(g, path, &err), STATUS_OK, "%s", err.msg);
}

static const GGUFKV *need_kv(const GGUF *g, const char *key, GGUFType type) {
    const GGUFKV *kv = gguf_find_key(g, key);
    cr_assert_not_null(kv, "missing '%s'", key);
    cr_assert_eq(kv->type, type, "'%s': type %s, want %s", key, gguf_type_name(kv->type),
                 gguf_type_name(type));
    return kv;
}

TestSuite(gguf, .init = mk_tmpdir, .fini = rm_tmpdir);

Test(gguf, round_trip_every_scalar_type) {
    GGUFWriter *w = gguf_writer_new();
    gguf_writer_set_u32(w, "t.u32", 4000000000u);
    gguf_writer_set_i32(w, "t.i32", INT32_MIN);
    gguf_writer_set_u64(w, "t.u64", UINT64_MAX);
    gguf_writer_set_f32(w, "t.f32", -0.5f);
    gguf_writer_set_bool(w, "t.bool", true);
    gguf_writer_set_bool(w, "t.false", false);
    gguf_writer_set_str(w, "t.str", "hello");
    gguf_writer_set_str(w, "t.empty", "");
    gguf_writer_set_str(w, "général.ключ.名前", "värde ✓");
    GGUFKV kv[] = {
        {.key = {"t.u8", 4}, .type = GGUF_TYPE_UINT8, .val.u = 200},
        {.key = {"t.i8", 4}, .type = GGUF_TYPE_INT8, .val.i = -100},
        {.key = {"t.u16", 5}, .type = GGUF_TYPE_UINT16, .val.u = 60000},
        {.key = {"t.i16", 5}, .type = GGUF_TYPE_INT16, .val.i = -30000},
        {.key = {"t.i64", 5}, .type = GGUF_TYPE_INT64, .val.i = INT64_MIN + 1},
        {.key = {"t.f64", 5}, .type = GGUF_TYPE_FLOAT64, .val.f = 1e300},
    };
    for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++)
        gguf_writer_set_kv(w, &kv[i]);
    const char *path = tmp_path("scalars.gguf");
    write_ok(w, path);
    gguf_writer_free(w);

    GGUF g;
    open_ok(&g, path);
    cr_assert_eq(g.n_kv, 15);
    cr_assert_eq(g.n_tensors, 0);
    cr_assert_eq(need_kv(&g, "t.u32", GGUF_TYPE_UINT32)->val.u, 4000000000u);
    cr_assert_eq(need_kv(&g, "t.i32", GGUF_TYPE_INT32)->val.i, INT32_MIN);
    cr_assert_eq(need_kv(&g, "t.u64", GGUF_TYPE_UINT64)->val.u, UINT64_MAX);
    cr_assert_eq(need_kv(&g, "t.f32", GGUF_TYPE_FLOAT32)->val.f, -0.5);
    cr_assert_eq(need_kv(&g, "t.bool", GGUF_TYPE_BOOL)->val.u, 1);
    cr_assert_eq(need_kv(&g, "t.false", GGUF_TYPE_BOOL)->val.u, 0);
    cr_assert(gguf_str_eq(need_kv(&g, "t.str", GGUF_TYPE_STRING)->val.s, "hello"));
    cr_assert(gguf_str_eq(need_kv(&g, "t.empty", GGUF_TYPE_STRING)->val.s, ""));
    cr_assert(gguf_str_eq(need_kv(&g, "général.ключ.名前", GGUF_TYPE_STRING)->val.s, "värde ✓"));
    cr_assert_eq(need_kv(&g, "t.u8", GGUF_TYPE_UINT8)->val.u, 200);
    cr_assert_eq(need_kv(&g, "t.i8", GGUF_TYPE_INT8)->val.i, -100);
    cr_assert_eq(need_kv(&g, "t.u16", GGUF_TYPE_UINT16)->val.u, 60000);
    cr_assert_eq(need_kv(&g, "t.i16", GGUF_TYPE_INT16)->val.i, -30000);
    cr_assert_eq(need_kv(&g, "t.i64", GGUF_TYPE_INT64)->val.i, INT64_MIN + 1);
    cr_assert_eq(need_kv(&g, "t.f64", GGUF_TYPE_FLOAT64)->val.f, 1e300);
    /* keys keep their order */
    cr_assert(gguf_str_eq(g.kv[0].key, "t.u32") && gguf_str_eq(g.kv[14].key, "t.f64"));
    cr_assert_eq(file_size(path) % 32, 0);
    gguf_close(&g);
}

Test(gguf, round_trip_arrays) {
    static const char *const strs[] = {"", "a", "naïve", "名前", "with space"};
    static const int32_t ints[] = {INT32_MIN, -1, 0, 1, INT32_MAX};
    static const float floats[] = {-1.5f, 0.0f, 3.25f, 1e-30f};
    static const uint8_t u8s[] = {0, 255, 7};
    static const uint8_t bools[] = {1, 0, 1};
    static const double f64s[] = {-2.5, 1e300};
    static const int64_t i64s[] = {INT64_MIN, INT64_MAX, -3};
    GGUFWriter *w = gguf_writer_new();
    gguf_writer_set_arr_str(w, "a.str", strs, 5);
    gguf_writer_set_arr_i32(w, "a.i32", ints, 5);
    gguf_writer_set_arr_f32(w, "a.f32", floats, 4);
    gguf_writer_set_arr_str(w, "a.empty_str", NULL, 0);
    gguf_writer_set_arr_f32(w, "a.empty_f32", NULL, 0);
    GGUFKV kv[] = {
        /* arr_data is little-endian: these tests run on x86-64/aarch64 */
        {.key = {"a.u8", 4},
         .type = GGUF_TYPE_ARRAY,
         .arr_type = GGUF_TYPE_UINT8,
         .arr_n = 3,
         .arr_data = u8s},
        {.key = {"a.bool", 6},
         .type = GGUF_TYPE_ARRAY,
         .arr_type = GGUF_TYPE_BOOL,
         .arr_n = 3,
         .arr_data = bools},
        {.key = {"a.f64", 5},
         .type = GGUF_TYPE_ARRAY,
         .arr_type = GGUF_TYPE_FLOAT64,
         .arr_n = 2,
         .arr_data = (const uint8_t *)f64s},
        {.key = {"a.i64", 5},
         .type = GGUF_TYPE_ARRAY,
         .arr_type = GGUF_TYPE_INT64,
         .arr_n = 3,
         .arr_data = (const uint8_t *)i64s},
    };
    for (size_t i = 0; i < 4; i++)
        gguf_writer_set_kv(w, &kv[i]);
    const char *path = tmp_path("arrays.gguf");
    write_ok(w, path);
    gguf_writer_free(w);

    GGUF g;
    Err err = {0};
    const GGUFKV *a;
    open_ok(&g, path);
    cr_assert_eq(gguf_get_arr(&g, "a.str", GGUF_TYPE_STRING, true, &a, &err), STATUS_OK);
    cr_assert_eq(a->arr_n, 5);
    for (int i = 0; i < 5; i++)
        cr_assert(gguf_str_eq(a->arr_strs[i], strs[i]), "string %d", i);
    cr_assert_eq(gguf_get_arr(&g, "a.i32", GGUF_TYPE_INT32, true, &a, &err), STATUS_OK);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(gguf_arr_i64(a, (uint64_t)i), ints[i]);
    cr_assert_eq(gguf_get_arr(&g, "a.f32", GGUF_TYPE_FLOAT32, true, &a, &err), STATUS_OK);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(gguf_arr_f64(a, (uint64_t)i), (double)floats[i]);
    cr_assert_eq(need_kv(&g, "a.empty_str", GGUF_TYPE_ARRAY)->arr_n, 0);
    cr_assert_eq(need_kv(&g, "a.empty_f32", GGUF_TYPE_ARRAY)->arr_type, GGUF_TYPE_FLOAT32);
    a = need_kv(&g, "a.u8", GGUF_TYPE_ARRAY);
    cr_assert_eq(gguf_arr_i64(a, 1), 255);
    a = need_kv(&g, "a.bool", GGUF_TYPE_ARRAY);
    cr_assert(a->arr_type == GGUF_TYPE_BOOL && gguf_arr_i64(a, 2) == 1 && gguf_arr_i64(a, 1) == 0);
    a = need_kv(&g, "a.f64", GGUF_TYPE_ARRAY);
    cr_assert_eq(gguf_arr_f64(a, 1), 1e300);
    a = need_kv(&g, "a.i64", GGUF_TYPE_ARRAY);
    cr_assert(gguf_arr_i64(a, 0) == INT64_MIN && gguf_arr_i64(a, 1) == INT64_MAX);

    /* copy every pair into a second file with set_kv; it must read back identical */
    w = gguf_writer_new();
    for (uint64_t i = 0; i < g.n_kv; i++)
        gguf_writer_set_kv(w, &g.kv[i]);
    const char *path2 = tmp_path("arrays2.gguf");
    write_ok(w, path2);
    gguf_writer_free(w);
    GGUF g2;
    open_ok(&g2, path2);
    cr_assert_eq(g2.n_kv, g.n_kv);
    for (uint64_t i = 0; i < g.n_kv; i++) {
        const GGUFKV *x = &g.kv[i], *y = &g2.kv[i];
        cr_assert(x->key.len == y->key.len && !memcmp(x->key.ptr, y->key.ptr, x->key.len));
        cr_assert(x->type == y->type && x->arr_type == y->arr_type && x->arr_n == y->arr_n);
        for (uint64_t j = 0; x->arr_strs && j < x->arr_n; j++)
            cr_assert(x->arr_strs[j].len == y->arr_strs[j].len &&
                      !memcmp(x->arr_strs[j].ptr, y->arr_strs[j].ptr, x->arr_strs[j].len));
    }
    cr_assert_eq(file_size(path), file_size(path2));
    gguf_close(&g2);
    gguf_close(&g);
}

typedef struct {
    const char *name;
    DType type;
    int n_dims;
    int64_t ne[4];
} TSpec;

static void round_trip_tensors(uint32_t align) {
    static const TSpec specs[] = {
        {"f32.1d", DTYPE_F32, 1, {7}},
        {"f16.2d", DTYPE_F16, 2, {5, 3}},
        {"q8_0.3d", DTYPE_Q8_0, 3, {64, 2, 3}},
        {"q4_0.4d", DTYPE_Q4_0, 4, {32, 1, 2, 2}},
        {"blk.0.attn_q.weight", DTYPE_Q4_K, 2, {256, 2}},
        {"q6_k", DTYPE_Q6_K, 1, {512}},
        {"bf16.4d", DTYPE_BF16, 4, {3, 1, 1, 2}},
    };
    enum { N = sizeof specs / sizeof specs[0] };
    uint8_t *data[N];
    uint64_t bytes[N];
    GGUFWriter *w = gguf_writer_new();
    if (align != 32)
        gguf_writer_set_u32(w, "general.alignment", align);
    gguf_writer_set_str(w, "general.architecture", "llama");
    for (int i = 0; i < N; i++) {
        const TSpec *s = &specs[i];
        bytes[i] = dtype_row_bytes(s->type, s->ne[0]);
        for (int j = 1; j < s->n_dims; j++)
            bytes[i] *= (uint64_t)s->ne[j];
        data[i] = malloc(bytes[i]);
        for (uint64_t k = 0; k < bytes[i]; k++)
            data[i][k] = (uint8_t)(k * 31 + (uint64_t)i);
        gguf_writer_add_tensor(w, s->name, s->type, s->n_dims, s->ne, data[i]);
    }
    char name[32];
    snprintf(name, sizeof name, "tensors%u.gguf", align);
    const char *path = tmp_path(name);
    write_ok(w, path);
    gguf_writer_free(w);

    GGUF g;
    open_ok(&g, path);
    cr_assert_eq(g.alignment, align);
    cr_assert_eq(g.data_offset % align, 0);
    cr_assert_eq(file_size(path) % align, 0);
    cr_assert_eq(g.n_tensors, N);
    for (int i = 0; i < N; i++) {
        const TSpec *s = &specs[i];
        const GGUFTensor *t = gguf_find_tensor(&g, s->name);
        cr_assert_not_null(t, "missing %s", s->name);
        cr_assert_eq(t, &g.tensors[i], "%s out of order", s->name);
        cr_assert_eq(t->type, s->type);
        cr_assert_eq(t->n_dims, s->n_dims);
        for (int j = 0; j < 4; j++)
            cr_assert_eq(t->ne[j], j < s->n_dims ? s->ne[j] : 1, "%s ne[%d]", s->name, j);
        cr_assert_eq(t->n_bytes, bytes[i], "%s bytes", s->name);
        cr_assert_eq(t->offset % align, 0);
        cr_assert_eq((uint64_t)((const uint8_t *)t->data - g.base), g.data_offset + t->offset);
        cr_assert(memcmp(t->data, data[i], bytes[i]) == 0, "%s data differs", s->name);
        free(data[i]);
    }
    gguf_close(&g);
}

Test(gguf, round_trip_tensors_align_32) { round_trip_tensors(32); }
Test(gguf, round_trip_tensors_align_64) { round_trip_tensors(64); }

/* The writer's bytes, checked against the format built by hand. */
Test(gguf, writer_exact_bytes) {
    static const float data[2] = {1.0f, 2.0f};
    static const int64_t ne[1] = {2};
    GGUFWriter *w = gguf_writer_new();
    gguf_writer_set_u32(w, "a", 7);
    gguf_writer_set_str(w, "b", "xy");
    gguf_writer_add_tensor(w, "t", DTYPE_F32, 1, ne, data);
    gguf_writer_set_u32(w, "a", 9); /* replaces in place */
    const char *path = tmp_path("exact.gguf");
    write_ok(w, path);
    gguf_writer_free(w);

    Bytes want = {0};
    hdr(&want, 3, 1, 2);
    kv_u32(&want, "a", 9);
    kv_str(&want, "b", "xy");
    tinfo(&want, "t", 1, ne, DTYPE_F32, 0);
    b_pad(&want, 32);
    b_f32(&want, 1.0f);
    b_f32(&want, 2.0f);
    b_pad(&want, 32);

    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f);
    uint8_t got[256];
    size_t n = fread(got, 1, sizeof got, f);
    fclose(f);
    cr_assert_eq(n, want.n, "file is %zu bytes, want %zu", n, want.n);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(got[i], want.p[i], "byte %zu: 0x%02x, want 0x%02x", i, got[i], want.p[i]);
    free(want.p);
}

Test(gguf, writer_rejects_bad_input) {
    static const float data[64];
    static const struct {
        const char *name;
        DType type;
        int n_dims;
        int64_t ne[4];
        const char *needle;
    } cases[] = {
        {"n_dims0", DTYPE_F32, 0, {4}, "n_dims 0"},
        {"n_dims5", DTYPE_F32, 5, {4, 1, 1, 1}, "n_dims 5"},
        {"zero_ne", DTYPE_F32, 2, {4, 0}, "ne[1] = 0"},
        {"rows", DTYPE_Q4_0, 1, {33}, "block size 32"},
        {"type4", (DType)4, 1, {4}, "unknown type 4"},
        {"", DTYPE_F32, 1, {4}, "name of 0 bytes"},
        {"a_name_that_is_much_too_long_for_llama_cpp_which_allows_63_bytes",
         DTYPE_F32,
         1,
         {4},
         "name of 64 bytes"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        GGUFWriter *w = gguf_writer_new();
        Err err = {0};
        gguf_writer_add_tensor(w, cases[i].name, cases[i].type, cases[i].n_dims, cases[i].ne, data);
        const char *path = tmp_path("bad.gguf");
        cr_assert_eq(gguf_writer_write(w, path, &err), STATUS_INVALID, "case %zu", i);
        cr_assert_not_null(strstr(err.msg, cases[i].needle), "case %zu: '%s'", i, err.msg);
        cr_assert_neq(access(path, F_OK), 0, "case %zu wrote a file", i);
        gguf_writer_free(w);
    }
    /* duplicates, alignment of the wrong type or value */
    static const int64_t ne[1] = {4};
    GGUFWriter *w = gguf_writer_new();
    Err err = {0};
    gguf_writer_add_tensor(w, "x", DTYPE_F32, 1, ne, data);
    gguf_writer_add_tensor(w, "x", DTYPE_F32, 1, ne, data);
    cr_assert_eq(gguf_writer_write(w, tmp_path("dup.gguf"), &err), STATUS_INVALID);
    cr_assert_not_null(strstr(err.msg, "duplicate tensor name 'x'"), "%s", err.msg);
    gguf_writer_free(w);
    w = gguf_writer_new();
    gguf_writer_set_str(w, "general.alignment", "32");
    cr_assert_eq(gguf_writer_write(w, tmp_path("al.gguf"), &err), STATUS_INVALID);
    cr_assert_not_null(strstr(err.msg, "general.alignment"), "%s", err.msg);
    gguf_writer_set_u32(w, "general.alignment", 48);
    cr_assert_eq(gguf_writer_write(w, tmp_path("al.gguf"), &err), STATUS_INVALID);
    cr_assert_not_null(strstr(err.msg, "48"), "%s", err.msg);
    gguf_writer_free(w);
}

Test(gguf, io_errors_name_the_path) {
    GGUFWriter *w = gguf_writer_new();
    Err err = {0};
    gguf_writer_set_u32(w, "a", 1);
    cr_assert_eq(gguf_writer_write(w, "/nonexistent-dir/m.gguf", &err), STATUS_IO);
    cr_assert_not_null(strstr(err.msg, "/nonexistent-dir/m.gguf.tmp"), "%s", err.msg);
    gguf_writer_free(w);
    GGUF g;
    cr_assert_eq(gguf_open(&g, "/nonexistent-dir/m.gguf", &err), STATUS_IO);
    cr_assert_not_null(strstr(err.msg, "/nonexistent-dir/m.gguf"), "%s", err.msg);
    gguf_close(&g);
    gguf_close(NULL);
    /* a file on disk that is not GGUF */
    const char *path = tmp_path("junk.gguf");
    FILE *f = fopen(path, "wb");
    fputs("not a gguf file at all, really", f);
    fclose(f);
    cr_assert_eq(gguf_open(&g, path, &err), STATUS_FORMAT);
    cr_assert_not_null(strstr(err.msg, "magic"), "%s", err.msg);
    gguf_close(&g);
}

Test(gguf, getters) {
    GGUFWriter *w = gguf_writer_new();
    GGUFKV neg = {.key = {"i8.neg", 6}, .type = GGUF_TYPE_INT8, .val.i = -1};
    gguf_writer_set_kv(w, &neg);
    gguf_writer_set_u64(w, "u64.big", 1ull << 40);
    gguf_writer_set_u64(w, "u64.huge", 1ull << 63);
    gguf_writer_set_u32(w, "u32", 4096);
    gguf_writer_set_f32(w, "f32", 0.25f);
    gguf_writer_set_bool(w, "flag", true);
    gguf_writer_set_str(w, "s", "str");
    gguf_writer_set_arr_f32(w, "arr", (const float[]){1, 2}, 2);
    const char *path = tmp_path("get.gguf");
    write_ok(w, path);
    gguf_writer_free(w);

    GGUF g;
    Err err = {0};
    uint32_t u = 77;
    int64_t i = 0;
    float f = 0;
    bool b = false;
    GGUFStr s = {0};
    const GGUFKV *a = NULL;
    open_ok(&g, path);
    cr_assert_eq(gguf_get_u32(&g, "u32", true, &u, &err), STATUS_OK);
    cr_assert_eq(u, 4096);
    cr_assert_eq(gguf_get_u32(&g, "absent", false, &u, &err), STATUS_OK);
    cr_assert_eq(u, 4096, "absent optional key changed the output");
    cr_assert_eq(gguf_get_u32(&g, "absent", true, &u, &err), STATUS_FORMAT);
    cr_assert_str_eq(err.msg, "missing key 'absent'");
    cr_assert_eq(gguf_get_u32(&g, "i8.neg", true, &u, &err), STATUS_FORMAT);
    cr_assert_not_null(strstr(err.msg, "value -1 out of range of u32"), "%s", err.msg);
    cr_assert_eq(gguf_get_u32(&g, "u64.big", true, &u, &err), STATUS_FORMAT);
    cr_assert_not_null(strstr(err.msg, "1099511627776"), "%s", err.msg);
    cr_assert_eq(gguf_get_u32(&g, "f32", true, &u, &err), STATUS_FORMAT);
    cr_assert_not_null(strstr(err.msg, "key 'f32': type f32, expected an integer"), "%s", err.msg);
    cr_assert_eq(gguf_get_i64(&g, "i8.neg", true, &i, &err), STATUS_OK);
    cr_assert_eq(i, -1);
    cr_assert_eq(gguf_get_i64(&g, "u64.big", true, &i, &err), STATUS_OK);
    cr_assert_eq(i, 1ll << 40);
    cr_assert_eq(gguf_get_i64(&g, "u64.huge", true, &i, &err), STATUS_FORMAT);
    cr_assert_eq(gguf_get_f32(&g, "f32", true, &f, &err), STATUS_OK);
    cr_assert_eq(f, 0.25f);
    cr_assert_eq(gguf_get_f32(&g, "u32", true, &f, &err), STATUS_OK);
    cr_assert_eq(f, 4096.0f);
    cr_assert_eq(gguf_get_f32(&g, "s", true, &f, &err), STATUS_FORMAT);
    cr_assert_eq(gguf_get_bool(&g, "flag", true, &b, &err), STATUS_OK);
    cr_assert(b);
    cr_assert_eq(gguf_get_bool(&g, "u32", true, &b, &err), STATUS_FORMAT);
    cr_assert_eq(gguf_get_str(&g, "s", true, &s, &err), STATUS_OK);
    cr_assert(gguf_str_eq(s, "str"));
    cr_assert_eq(gguf_get_str(&g, "u32", true, &s, &err), STATUS_FORMAT);
    cr_assert_not_null(strstr(err.msg, "type u32, expected string"), "%s", err.msg);
    cr_assert_eq(gguf_get_arr(&g, "arr", GGUF_TYPE_FLOAT32, true, &a, &err), STATUS_OK);
    cr_assert_eq(gguf_arr_f64(a, 1), 2.0);
    cr_assert_eq(gguf_get_arr(&g, "arr", GGUF_TYPE_INT32, true, &a, &err), STATUS_FORMAT);
    cr_assert_not_null(strstr(err.msg, "type array of f32, expected array of i32"), "%s", err.msg);
    cr_assert_str_eq(gguf_type_name(GGUF_TYPE_STRING), "string");
    cr_assert_str_eq(gguf_type_name((GGUFType)99), "unknown");
    gguf_close(&g);
}

/* 100k tensors: duplicate detection and lookups are not quadratic. */
Test(gguf, hundred_thousand_tensors) {
    enum { N = 100000 };
    static const float data[8];
    static const int64_t ne[1] = {8};
    GGUFWriter *w = gguf_writer_new();
    char name[32];
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "blk.%d.w", i);
        gguf_writer_add_tensor(w, name, DTYPE_F32, 1, ne, data);
    }
    const char *path = tmp_path("many.gguf");
    write_ok(w, path);
    gguf_writer_free(w);
    GGUF g;
    open_ok(&g, path);
    cr_assert_eq(g.n_tensors, N);
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "blk.%d.w", i);
        const GGUFTensor *t = gguf_find_tensor(&g, name);
        cr_assert(t == &g.tensors[i], "lookup of %s", name);
    }
    cr_assert_null(gguf_find_tensor(&g, "blk.100000.w"));
    gguf_close(&g);
}
