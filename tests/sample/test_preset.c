/* test_preset.c - general.sampling.* read from GGUF files written by our
 * writer: every honoured key and numeric type, the ranges (bounds in and
 * out), precedence against user-set fields, and the description text. The
 * expected values are the literals written into each file. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "gguf/gguf_writer.h"
#include "sample/preset.h"

typedef void (*Fill)(GGUFWriter *w);

/* Write a tensor-less GGUF with the keys 'fill' sets, open it, read it. */
static Status read_preset(Fill fill, SamplePreset *p, Err *err) {
    char path[] = "/tmp/cgpt-preset-XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    close(fd);
    GGUFWriter *w = gguf_writer_new();
    gguf_writer_set_str(w, "general.architecture", "llama");
    fill(w);
    Err werr = {0};
    cr_assert_eq(gguf_writer_write(w, path, &werr), STATUS_OK, "%s", werr.msg);
    gguf_writer_free(w);
    GGUF g = {0};
    cr_assert_eq(gguf_open(&g, path, &werr), STATUS_OK, "%s", werr.msg);
    Status st = preset_from_gguf(&g, p, err);
    gguf_close(&g);
    unlink(path);
    return st;
}

static void fill_none(GGUFWriter *w) { gguf_writer_set_str(w, "general.name", "x"); }

static void fill_all(GGUFWriter *w) {
    gguf_writer_set_f32(w, "general.sampling.temp", 0.3f);
    gguf_writer_set_i32(w, "general.sampling.top_k", 20);
    gguf_writer_set_f32(w, "general.sampling.top_p", 0.9f);
    gguf_writer_set_f32(w, "general.sampling.min_p", 0.1f);
    gguf_writer_set_f32(w, "general.sampling.penalty_repeat", 1.1f);
    gguf_writer_set_i32(w, "general.sampling.penalty_last_n", -1);
    /* samplers cgpt does not have: ignored */
    gguf_writer_set_i32(w, "general.sampling.mirostat", 2);
    gguf_writer_set_str(w, "general.sampling.sequence", "penalties;top_k;temp");
}

Test(preset, absent_keys_set_nothing) {
    SamplePreset p;
    Err err = {0};
    cr_assert_eq(read_preset(fill_none, &p, &err), STATUS_OK, "%s", err.msg);
    cr_assert_eq(p.set, 0u);
    SamplerParams sp = sampler_defaults(), before = sp;
    preset_apply(&p, 0, &sp);
    cr_assert(!memcmp(&sp, &before, sizeof sp), "nothing changes without keys");
}

Test(preset, every_key_read) {
    SamplePreset p;
    Err err = {0};
    cr_assert_eq(read_preset(fill_all, &p, &err), STATUS_OK, "%s", err.msg);
    cr_assert_eq(p.set, PRESET_TEMP | PRESET_TOP_K | PRESET_TOP_P | PRESET_MIN_P | PRESET_REPEAT |
                            PRESET_LAST_N);
    cr_assert_float_eq(p.v.temperature, 0.3f, 0);
    cr_assert_eq(p.v.top_k, 20);
    cr_assert_float_eq(p.v.top_p, 0.9f, 0);
    cr_assert_float_eq(p.v.min_p, 0.1f, 0);
    cr_assert_float_eq(p.v.repeat_penalty, 1.1f, 0);
    cr_assert_eq(p.v.penalty_last_n, -1);
}

Test(preset, user_fields_win_one_by_one) {
    SamplePreset p;
    Err err = {0};
    cr_assert_eq(read_preset(fill_all, &p, &err), STATUS_OK, "%s", err.msg);
    SamplerParams sp = sampler_defaults();
    sp.temperature = 1.7f; /* the user's */
    sp.top_k = 3;          /* the user's */
    sp.seed = 99;
    preset_apply(&p, PRESET_TEMP | PRESET_TOP_K | PRESET_SEED, &sp);
    cr_assert_float_eq(sp.temperature, 1.7f, 0);
    cr_assert_eq(sp.top_k, 3);
    cr_assert_float_eq(sp.top_p, 0.9f, 0); /* the file's */
    cr_assert_float_eq(sp.min_p, 0.1f, 0); /* the file's */
    cr_assert_float_eq(sp.repeat_penalty, 1.1f, 0);
    cr_assert_eq(sp.penalty_last_n, -1);
    cr_assert_eq(sp.seed, 99u); /* never in a preset */
    cr_assert_float_eq(sp.presence_penalty, 0.0f, 0);
}

/* Integer types other than int32 and float64 are read too (gguf-py writes
 * int32/float32, other writers differ). */
static void fill_types(GGUFWriter *w) {
    gguf_writer_set_u32(w, "general.sampling.top_k", 7);
    gguf_writer_set_u64(w, "general.sampling.penalty_last_n", 128);
    gguf_writer_set_u32(w, "general.sampling.temp", 1); /* an integer temperature */
}

Test(preset, other_numeric_types) {
    SamplePreset p;
    Err err = {0};
    cr_assert_eq(read_preset(fill_types, &p, &err), STATUS_OK, "%s", err.msg);
    cr_assert_eq(p.v.top_k, 7);
    cr_assert_eq(p.v.penalty_last_n, 128);
    cr_assert_float_eq(p.v.temperature, 1.0f, 0);
    cr_assert_eq(p.set, PRESET_TOP_K | PRESET_LAST_N | PRESET_TEMP);
}

/* Each bad file, and the words its error must contain. */
static void bad_top_p_zero(GGUFWriter *w) { gguf_writer_set_f32(w, "general.sampling.top_p", 0); }
static void bad_top_p_big(GGUFWriter *w) { gguf_writer_set_f32(w, "general.sampling.top_p", 7); }
static void bad_temp_nan(GGUFWriter *w) { gguf_writer_set_f32(w, "general.sampling.temp", NAN); }
static void bad_temp_neg(GGUFWriter *w) { gguf_writer_set_f32(w, "general.sampling.temp", -0.5f); }
static void bad_top_k(GGUFWriter *w) { gguf_writer_set_i32(w, "general.sampling.top_k", -1); }
static void bad_top_k_float(GGUFWriter *w) { gguf_writer_set_f32(w, "general.sampling.top_k", 5); }
static void bad_min_p(GGUFWriter *w) { gguf_writer_set_f32(w, "general.sampling.min_p", 1.5f); }
static void bad_repeat(GGUFWriter *w) {
    gguf_writer_set_f32(w, "general.sampling.penalty_repeat", 0);
}
static void bad_last_n(GGUFWriter *w) {
    gguf_writer_set_i32(w, "general.sampling.penalty_last_n", -2);
}
static void bad_type(GGUFWriter *w) { gguf_writer_set_str(w, "general.sampling.temp", "hot"); }

Test(preset, out_of_range_is_an_error_naming_the_key) {
    struct {
        Fill fill;
        const char *key, *range;
    } cases[] = {
        {bad_top_p_zero, "general.sampling.top_p", "(0, 1]"},
        {bad_top_p_big, "general.sampling.top_p", "(0, 1]"},
        {bad_temp_nan, "general.sampling.temp", "[0, 100]"},
        {bad_temp_neg, "general.sampling.temp", "[0, 100]"},
        {bad_top_k, "general.sampling.top_k", "[0, 4194304]"},
        {bad_top_k_float, "general.sampling.top_k", ""},
        {bad_min_p, "general.sampling.min_p", "[0, 1]"},
        {bad_repeat, "general.sampling.penalty_repeat", "(0, 100]"},
        {bad_last_n, "general.sampling.penalty_last_n", "[-1, 65536]"},
        {bad_type, "general.sampling.temp", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        SamplePreset p;
        Err err = {0};
        cr_assert_eq(read_preset(cases[i].fill, &p, &err), STATUS_FORMAT, "case %zu", i);
        cr_assert(strstr(err.msg, cases[i].key), "case %zu: %s", i, err.msg);
        cr_assert(strstr(err.msg, cases[i].range), "case %zu: %s", i, err.msg);
    }
}

Test(preset, describe) {
    SamplerParams sp = sampler_defaults();
    sp.temperature = 0.25f;
    sp.top_k = 20;
    char buf[128];
    size_t n = preset_describe(&sp, PRESET_TEMP | PRESET_TOP_K, buf, sizeof buf);
    cr_assert_str_eq(buf, "temp 0.25, top_k 20");
    cr_assert_eq(n, strlen(buf));
    char small[8];
    preset_describe(&sp, PRESET_TEMP | PRESET_TOP_K, small, sizeof small);
    cr_assert(strlen(small) < sizeof small);
}
