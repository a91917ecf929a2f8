/* test_ckpt.c - trainer state files, model GGUFs, checkpoint directories.
 *
 * Oracles: the byte layout documented in ckpt.h, read back here with our own
 * offsets; FNV-1a 64's published test vectors; the parameter layout of
 * tmodel.h rebuilt here independently; the inference engine (model_load,
 * tok_load) for the GGUF. Broken files: truncation at every offset, every
 * byte flipped, and crafted fields with the checksum recomputed so the
 * field check itself (not the checksum) must catch them. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/rng.h"
#include "gguf/gguf.h"
#include "model/model.h"
#include "model/randmodel.h"
#include "tokenizer/tokenizer.h"
#include "train/ckpt.h"

/* ---- fixtures ---- */

typedef struct {
    char dir[64];
} TmpDir;

static void tmp_init(TmpDir *t) {
    strcpy(t->dir, "/tmp/cgpt_ckpt_XXXXXX");
    cr_assert(mkdtemp(t->dir));
}

static void tmp_path(const TmpDir *t, const char *name, char *out, size_t cap) {
    int k = snprintf(out, cap, "%s/%s", t->dir, name);
    cr_assert(k > 0 && (size_t)k < cap);
}

static void tmp_free(TmpDir *t) {
    DIR *d = opendir(t->dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char p[512];
        snprintf(p, sizeof p, "%s/%s", t->dir, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(t->dir);
}

static bool file_exists(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0;
}

static uint8_t *read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "open %s", path);
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)sz + 1);
    cr_assert_eq(fread(b, 1, (size_t)sz, f), (size_t)sz);
    fclose(f);
    *n = (size_t)sz;
    return b;
}

static void write_file(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(p, 1, n, f), n);
    fclose(f);
}

/* A tiny config: V 8, C 4, L 1, NH 2, NKV 1, HS 2, F 6 -> 164 params. */
static TConfig tiny_cfg(void) {
    return (TConfig){.n_vocab = 8,
                     .n_embd = 4,
                     .n_layers = 1,
                     .n_heads = 2,
                     .n_kv_heads = 1,
                     .head_dim = 2,
                     .n_ff = 6,
                     .n_ctx = 8,
                     .rope_base = 10000.0f,
                     .norm_eps = 1e-5f};
}

/* tmodel.h's layout, rebuilt here. Returns the number of tensors. */
static int layout(const TConfig *c, TParam *out, int cap) {
    int64_t C = c->n_embd, Q = (int64_t)c->n_heads * c->head_dim;
    int64_t K = (int64_t)c->n_kv_heads * c->head_dim, F = c->n_ff;
    int n = 0;
    size_t off = 0;
#define ADD(nm, r, cl)                                                                             \
    do {                                                                                           \
        cr_assert(n < cap);                                                                        \
        snprintf(out[n].name, sizeof out[n].name, "%s", nm);                                       \
        out[n].rows = (r);                                                                         \
        out[n].cols = (cl);                                                                        \
        out[n].offset = off;                                                                       \
        off += (size_t)((r) * (cl));                                                               \
        n++;                                                                                       \
    } while (0)
    ADD("token_embd.weight", c->n_vocab, C);
    for (int l = 0; l < c->n_layers; l++) {
        char nm[64];
        static const char *const names[] = {"attn_norm", "attn_q",      "attn_k",
                                            "attn_v",    "attn_output", "ffn_norm",
                                            "ffn_gate",  "ffn_up",      "ffn_down"};
        int64_t shape[9][2] = {{1, C}, {Q, C}, {K, C}, {K, C}, {C, Q},
                               {1, C}, {F, C}, {F, C}, {C, F}};
        for (int i = 0; i < 9; i++) {
            snprintf(nm, sizeof nm, "blk.%d.%s.weight", l, names[i]);
            ADD(nm, shape[i][0], shape[i][1]);
        }
    }
    ADD("output_norm.weight", 1, C);
#undef ADD
    cr_assert_eq(off, tmodel_config_n_params(c), "layout %zu vs tmodel_config_n_params %zu", off,
                 tmodel_config_n_params(c));
    return n;
}

/* A state with seeded values; v >= 0. */
static void make_state(CkptState *s, const TConfig *cfg, uint64_t seed, const char *settings) {
    memset(s, 0, sizeof *s);
    s->cfg = *cfg;
    s->n_params = tmodel_config_n_params(cfg);
    s->params = malloc(s->n_params * sizeof(float));
    s->m = malloc(s->n_params * sizeof(float));
    s->v = malloc(s->n_params * sizeof(float));
    s->settings_json = settings ? strdup(settings) : NULL;
    Rng r;
    rng_seed(&r, seed);
    for (size_t i = 0; i < s->n_params; i++) {
        s->params[i] = rng_normal(&r);
        s->m[i] = 0.01f * rng_normal(&r);
        s->v[i] = 1e-4f * fabsf(rng_normal(&r));
    }
    s->step = 1000 + seed;
    s->tokens_seen = 123456789012ull + seed;
    s->data_cursor = 987654321ull * seed;
    s->adam_t = 999 + seed;
}

static void assert_same_state(const CkptState *a, const CkptState *b) {
    cr_assert(!memcmp(&a->cfg, &b->cfg, sizeof a->cfg), "config differs");
    cr_assert_eq(a->n_params, b->n_params);
    cr_assert_eq(a->step, b->step);
    cr_assert_eq(a->tokens_seen, b->tokens_seen);
    cr_assert_eq(a->data_cursor, b->data_cursor);
    cr_assert_eq(a->adam_t, b->adam_t);
    cr_assert_str_eq(a->settings_json ? a->settings_json : "", b->settings_json);
    cr_assert(!memcmp(a->params, b->params, a->n_params * 4), "params differ");
    cr_assert(!memcmp(a->m, b->m, a->n_params * 4), "m differs");
    cr_assert(!memcmp(a->v, b->v, a->n_params * 4), "v differs");
}

/* Our own FNV-1a 64 (the oracle for the stored checksum). */
static uint64_t fnv(const uint8_t *p, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static uint64_t rd64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static void wr64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void wr32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void fix_checksum(uint8_t *b, size_t n) { wr64(b + n - 8, fnv(b, n - 8)); }

/* ---- tests ---- */

Test(ckpt, fnv1a_test_vectors) {
    cr_assert_eq(ckpt_fnv1a(CKPT_FNV_OFFSET, "", 0), 0xcbf29ce484222325ull);
    cr_assert_eq(ckpt_fnv1a(CKPT_FNV_OFFSET, "a", 1), 0xaf63dc4c8601ec8cull);
    cr_assert_eq(ckpt_fnv1a(CKPT_FNV_OFFSET, "foobar", 6), 0x85944171f73967e8ull);
    /* incremental == one shot */
    cr_assert_eq(ckpt_fnv1a(ckpt_fnv1a(CKPT_FNV_OFFSET, "foo", 3), "bar", 3),
                 0x85944171f73967e8ull);
}

Test(ckpt, state_round_trip_bit_exact_and_layout_as_documented) {
    TmpDir t;
    tmp_init(&t);
    char path[256];
    tmp_path(&t, "s.opt", path, sizeof path);
    TConfig cfg = tiny_cfg();
    const char *settings = "{\"lr\":0.0006,\"name\":\"t\\u00e9st\"}";
    CkptState a, b;
    make_state(&a, &cfg, 3, settings);
    a.params[5] = -0.0f;  /* signed zero survives */
    a.params[6] = 1e-42f; /* a subnormal survives */
    Err err = {0};
    cr_assert_eq(ckpt_state_save(path, &a, &err), STATUS_OK, "%s", err.msg);
    char tmp[300];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    cr_assert(!file_exists(tmp), "tmp file left behind");

    size_t n;
    uint8_t *f = read_file(path, &n);
    size_t slen = strlen(settings);
    cr_assert_eq(n, 104 + slen + 12 * a.n_params + 8, "file size %zu", n);
    cr_assert(!memcmp(f, "CGPTOPT1", 8));
    cr_assert_eq(rd64(f + 56), a.step);
    cr_assert_eq(rd64(f + 64), a.tokens_seen);
    cr_assert_eq(rd64(f + 72), a.data_cursor);
    cr_assert_eq(rd64(f + 80), a.adam_t);
    cr_assert_eq(rd64(f + 88), a.n_params);
    cr_assert_eq(rd64(f + 96), slen);
    cr_assert(!memcmp(f + 104, settings, slen));
    cr_assert(!memcmp(f + 104 + slen, a.params, a.n_params * 4));
    cr_assert(!memcmp(f + 104 + slen + 8 * a.n_params, a.v, a.n_params * 4));
    cr_assert_eq(rd64(f + n - 8), fnv(f, n - 8), "stored checksum is not FNV-1a 64");

    cr_assert_eq(ckpt_state_load(path, &b, &err), STATUS_OK, "%s", err.msg);
    assert_same_state(&a, &b);
    ckpt_state_free(&b);
    cr_assert_null(b.params);
    cr_assert_eq(ckpt_state_load_mem(f, n, &b, &err), STATUS_OK, "%s", err.msg);
    assert_same_state(&a, &b);
    ckpt_state_free(&b);

    /* NULL settings save as "" and load as "". */
    free(a.settings_json);
    a.settings_json = NULL;
    cr_assert_eq(ckpt_state_save(path, &a, &err), STATUS_OK, "%s", err.msg);
    cr_assert_eq(ckpt_state_load(path, &b, &err), STATUS_OK, "%s", err.msg);
    cr_assert_str_eq(b.settings_json, "");
    assert_same_state(&a, &b);
    ckpt_state_free(&b);
    ckpt_state_free(&a);
    ckpt_state_free(&a); /* zeroed: fine */
    free(f);
    tmp_free(&t);
}

/* Each case: a mutation of a valid file, the expected status and a word the
 * message must contain. */
typedef struct {
    const char *what;
    Status want;
    const char *needle;
} Expect;

static void expect_fail(const uint8_t *b, size_t n, const Expect *e) {
    CkptState s;
    memset(&s, 0xAB, sizeof s); /* must come back zeroed */
    Err err = {0};
    Status st = ckpt_state_load_mem(b, n, &s, &err);
    cr_assert_neq(st, STATUS_OK, "%s: accepted", e->what);
    if (e->want != STATUS_OK)
        cr_assert_eq(st, e->want, "%s: status %s, want %s (%s)", e->what, status_name(st),
                     status_name(e->want), err.msg);
    if (e->needle)
        cr_assert(strstr(err.msg, e->needle), "%s: message '%s' lacks '%s'", e->what, err.msg,
                  e->needle);
    cr_assert(strstr(err.msg, "(memory)"), "%s: message '%s' does not name the file", e->what,
              err.msg);
    cr_assert_null(s.params, "%s: state not zeroed", e->what);
    cr_assert_null(s.settings_json);
}

Test(ckpt, broken_state_files_are_clear_errors) {
    TmpDir t;
    tmp_init(&t);
    char path[256];
    tmp_path(&t, "s.opt", path, sizeof path);
    TConfig cfg = tiny_cfg();
    CkptState a;
    make_state(&a, &cfg, 1, "{\"k\":1}");
    Err err = {0};
    cr_assert_eq(ckpt_state_save(path, &a, &err), STATUS_OK, "%s", err.msg);
    size_t n;
    uint8_t *good = read_file(path, &n);
    uint8_t *b = malloc(n + 16);
    int cases = 0;

    /* Truncated at every offset. */
    for (size_t k = 0; k < n; k++) {
        memcpy(b, good, k);
        char what[64];
        snprintf(what, sizeof what, "truncated to %zu bytes", k);
        /* Exact-size copies so ASan sees any over-read. */
        uint8_t *exact = malloc(k ? k : 1);
        memcpy(exact, good, k);
        expect_fail(exact, k, &(Expect){what, STATUS_FORMAT, "bytes"});
        free(exact);
        cases++;
    }
    /* A trailing byte. */
    memcpy(b, good, n);
    b[n] = 0;
    expect_fail(b, n + 1, &(Expect){"trailing byte", STATUS_FORMAT, "implies"});
    cases++;
    /* Every byte flipped (one bit and all bits), anywhere in the file. */
    for (size_t k = 0; k < n; k++) {
        for (int m = 0; m < 2; m++) {
            memcpy(b, good, n);
            b[k] ^= m ? 0xFF : 0x01;
            char what[64];
            snprintf(what, sizeof what, "byte %zu ^ 0x%02x", k, m ? 0xFF : 0x01);
            expect_fail(b, n, &(Expect){what, STATUS_OK, NULL});
            cases++;
        }
    }
    /* Crafted fields with a valid checksum: the field check must catch them. */
    struct {
        size_t off;
        int width;
        uint64_t val;
        Expect e;
    } fields[] = {
        {0, 8, 0x3254504f54504743ull, {"bad magic", STATUS_FORMAT, "magic"}},
        {8, 4, 2, {"version 2", STATUS_FORMAT, "version 2"}},
        {8, 4, 0, {"version 0", STATUS_FORMAT, "version 0"}},
        {12, 4, 1, {"flags", STATUS_FORMAT, "flags"}},
        {16, 4, 0, {"n_vocab 0", STATUS_OK, "n_vocab"}},
        {20, 4, 0x7fffffff, {"n_embd huge", STATUS_OK, "n_embd"}},
        {24, 4, 100000, {"n_layers huge", STATUS_OK, "n_layers"}},
        {32, 4, 3, {"n_kv_heads 3 (does not divide)", STATUS_OK, "config"}},
        {36, 4, 3, {"head_dim odd", STATUS_OK, "config"}},
        {44, 4, 0xffffffff, {"n_ctx -1", STATUS_OK, "n_ctx"}},
        {52, 4, 0x7fc00000, {"norm_eps NaN", STATUS_OK, "config"}},
        {88, 8, 165, {"n_params + 1", STATUS_FORMAT, "n_params 165"}},
        {88, 8, 163, {"n_params - 1", STATUS_FORMAT, "n_params 163"}},
        {88, 8, UINT64_MAX, {"n_params max", STATUS_FORMAT, "n_params"}},
        {96, 8, UINT64_MAX, {"settings_len max", STATUS_LIMIT, "settings_len"}},
        {96, 8, (1u << 20) + 1, {"settings_len over limit", STATUS_LIMIT, "settings_len"}},
        {96, 8, 1ull << 40, {"settings_len 2^40", STATUS_LIMIT, "settings_len"}},
        {96, 8, 8, {"settings_len + 1", STATUS_FORMAT, "implies"}},
        {104, 1, 0, {"NUL in settings", STATUS_FORMAT, "NUL"}},
    };
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        memcpy(b, good, n);
        if (fields[i].width == 8)
            wr64(b + fields[i].off, fields[i].val);
        else if (fields[i].width == 4)
            wr32(b + fields[i].off, (uint32_t)fields[i].val);
        else
            b[fields[i].off] = (uint8_t)fields[i].val;
        fix_checksum(b, n);
        expect_fail(b, n, &fields[i].e);
        cases++;
    }
    /* Non-finite values (checksum fixed). */
    size_t arr = 104 + 7; /* settings "{\"k\":1}" is 7 bytes */
    struct {
        size_t off;
        float val;
        Expect e;
    } vals[] = {
        {arr + 4 * 10, NAN, {"NaN param", STATUS_FORMAT, "params[10] = nan"}},
        {arr + 4 * 163, INFINITY, {"inf last param", STATUS_FORMAT, "params[163]"}},
        {arr + 4 * (164 + 2), -INFINITY, {"-inf in m", STATUS_FORMAT, "m[2]"}},
        {arr + 4 * (328 + 7), NAN, {"NaN in v", STATUS_FORMAT, "v[7]"}},
        {arr + 4 * (328 + 0), -1.0f, {"negative v", STATUS_FORMAT, "v[0] = -1"}},
    };
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        memcpy(b, good, n);
        memcpy(b + vals[i].off, &vals[i].val, 4);
        fix_checksum(b, n);
        expect_fail(b, n, &vals[i].e);
        cases++;
    }
    /* Checksum mismatch: a param changed, checksum not fixed; and the
     * checksum itself changed. */
    memcpy(b, good, n);
    b[arr + 40] ^= 0x10;
    expect_fail(b, n, &(Expect){"param changed", STATUS_FORMAT, "checksum mismatch"});
    memcpy(b, good, n);
    b[n - 1] ^= 0x80;
    expect_fail(b, n, &(Expect){"checksum changed", STATUS_FORMAT, "checksum mismatch"});
    cases += 2;

    /* From a path: the path is named; missing and empty files. */
    char bad[256];
    tmp_path(&t, "bad.opt", bad, sizeof bad);
    write_file(bad, good, n / 2);
    CkptState s;
    cr_assert_eq(ckpt_state_load(bad, &s, &err), STATUS_FORMAT);
    cr_assert(strstr(err.msg, bad), "'%s' does not name the file", err.msg);
    write_file(bad, "", 0);
    cr_assert_eq(ckpt_state_load(bad, &s, &err), STATUS_FORMAT, "%s", err.msg);
    tmp_path(&t, "missing.opt", bad, sizeof bad);
    cr_assert_eq(ckpt_state_load(bad, &s, &err), STATUS_IO);
    cr_assert_null(s.params);
    cases += 3;

    cr_log_info("broken state files: %d cases, all rejected", cases);
    fprintf(stderr, "ckpt: %d broken state files rejected (file of %zu bytes)\n", cases, n);
    free(b);
    free(good);
    ckpt_state_free(&a);
    tmp_free(&t);
}

Test(ckpt, save_refuses_bad_states_and_leaves_no_file) {
    TmpDir t;
    tmp_init(&t);
    char path[256];
    tmp_path(&t, "s.opt", path, sizeof path);
    TConfig cfg = tiny_cfg();
    CkptState a;
    make_state(&a, &cfg, 2, NULL);
    Err err = {0};
    a.params[3] = NAN;
    cr_assert_eq(ckpt_state_save(path, &a, &err), STATUS_INVALID);
    cr_assert(strstr(err.msg, "params[3]"), "%s", err.msg);
    a.params[3] = 0;
    a.v[1] = -1e-9f;
    cr_assert_eq(ckpt_state_save(path, &a, &err), STATUS_INVALID);
    a.v[1] = 0;
    a.n_params--;
    cr_assert_eq(ckpt_state_save(path, &a, &err), STATUS_INVALID);
    cr_assert(strstr(err.msg, "n_params"), "%s", err.msg);
    a.n_params++;
    a.cfg.n_heads = 3; /* kv heads 1 divides, but n_params changes: config is checked first */
    cr_assert_neq(ckpt_state_save(path, &a, &err), STATUS_OK);
    cr_assert(!file_exists(path));
    ckpt_state_free(&a);
    tmp_free(&t);
}

/* Save 'b' over 'path' (which holds 'a') in a child limited to 'limit' bytes
 * per file with SIGXFSZ ignored: write() fails with EFBIG as on a full disk. */
static void save_in_limited_child(const char *path, const CkptState *b, rlim_t limit) {
    fflush(NULL);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = {limit, limit};
        if (setrlimit(RLIMIT_FSIZE, &rl) != 0)
            _exit(10);
        Err e = {0};
        Status st = ckpt_state_save(path, b, &e);
        if (st != STATUS_IO)
            _exit(11);
        if (!strstr(e.msg, ".tmp") || !strstr(e.msg, "File too large"))
            _exit(12);
        _exit(0);
    }
    int ws = 0;
    cr_assert_eq(waitpid(pid, &ws, 0), pid);
    cr_assert(WIFEXITED(ws) && WEXITSTATUS(ws) == 0, "child status %d", ws);
}

Test(ckpt, failed_save_keeps_previous_checkpoint) {
    TmpDir t;
    tmp_init(&t);
    char path[256], tmp[300];
    tmp_path(&t, "s.opt", path, sizeof path);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    TConfig cfg = tiny_cfg();
    CkptState a, b, got;
    make_state(&a, &cfg, 4, "{\"v\":1}");
    make_state(&b, &cfg, 5, "{\"v\":2}");
    Err err = {0};
    cr_assert_eq(ckpt_state_save(path, &a, &err), STATUS_OK, "%s", err.msg);
    /* "Disk full" at several points: inside the header, the arrays, the checksum. */
    size_t full = 104 + 7 + 12 * a.n_params + 8;
    rlim_t limits[] = {0, 50, 104 + 3, 1000, (rlim_t)full - 8, (rlim_t)full - 1};
    for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++) {
        save_in_limited_child(path, &b, limits[i]);
        cr_assert(!file_exists(tmp), "limit %zu: tmp file left", (size_t)limits[i]);
        cr_assert_eq(ckpt_state_load(path, &got, &err), STATUS_OK, "limit %zu: %s",
                     (size_t)limits[i], err.msg);
        assert_same_state(&a, &got);
        ckpt_state_free(&got);
    }
    /* A directory that does not exist. */
    char nodir[300];
    snprintf(nodir, sizeof nodir, "%s/no/such/dir/s.opt", t.dir);
    cr_assert_eq(ckpt_state_save(nodir, &b, &err), STATUS_IO);
    cr_assert(strstr(err.msg, "no/such/dir"), "%s", err.msg);
    /* A read-only directory (only meaningful when not root). */
    if (geteuid() != 0) {
        chmod(t.dir, 0555);
        cr_assert_eq(ckpt_state_save(path, &b, &err), STATUS_IO);
        chmod(t.dir, 0755);
        cr_assert_eq(ckpt_state_load(path, &got, &err), STATUS_OK, "%s", err.msg);
        assert_same_state(&a, &got);
        ckpt_state_free(&got);
    }
    /* And a save without limits replaces it. */
    cr_assert_eq(ckpt_state_save(path, &b, &err), STATUS_OK, "%s", err.msg);
    cr_assert_eq(ckpt_state_load(path, &got, &err), STATUS_OK, "%s", err.msg);
    assert_same_state(&b, &got);
    ckpt_state_free(&got);
    ckpt_state_free(&a);
    ckpt_state_free(&b);
    tmp_free(&t);
}

/* A tokenizer source GGUF (randmodel's byte-level vocabulary of 261 tokens). */
static void write_tok_source(const TmpDir *t, char *path, size_t cap, int n_vocab) {
    tmp_path(t, "tok.gguf", path, cap);
    RandModelSpec spec = {.arch = "llama",
                          .n_vocab = n_vocab,
                          .n_embd = 8,
                          .n_layers = 1,
                          .n_heads = 2,
                          .n_kv_heads = 2,
                          .head_dim = 4,
                          .n_ff = 8,
                          .n_ctx_train = 16,
                          .wtype = DTYPE_F32,
                          .seed = 1,
                          .tied = true};
    Err err = {0};
    cr_assert_eq(randmodel_write(path, &spec, &err), STATUS_OK, "%s", err.msg);
}

static TConfig gguf_cfg(void) {
    /* n_heads * head_dim (24) != n_embd (16): key_length must be written. */
    return (TConfig){.n_vocab = 261,
                     .n_embd = 16,
                     .n_layers = 2,
                     .n_heads = 4,
                     .n_kv_heads = 2,
                     .head_dim = 6,
                     .n_ff = 24,
                     .n_ctx = 32,
                     .rope_base = 5000.0f,
                     .norm_eps = 1e-6f};
}

Test(ckpt, model_gguf_loads_in_the_engine_with_the_tokenizer) {
    TmpDir t;
    tmp_init(&t);
    char tokp[256], out[256];
    write_tok_source(&t, tokp, sizeof tokp, 261);
    tmp_path(&t, "m.gguf", out, sizeof out);
    GGUF tok = {0};
    Err err = {0};
    cr_assert_eq(gguf_open(&tok, tokp, &err), STATUS_OK, "%s", err.msg);
    TConfig cfg = gguf_cfg();
    TParam tensors[64];
    int nt = layout(&cfg, tensors, 64);
    CkptState s;
    make_state(&s, &cfg, 9, NULL);
    for (size_t i = 0; i < s.n_params; i++)
        s.params[i] *= 0.05f;
    cr_assert_eq(ckpt_write_gguf(out, &cfg, s.params, tensors, nt, &tok, "cgpt-test", 4242, &err),
                 STATUS_OK, "%s", err.msg);

    /* The file as a reader sees it: keys, tensors and bytes. */
    GGUF g = {0};
    cr_assert_eq(gguf_open(&g, out, &err), STATUS_OK, "%s", err.msg);
    GGUFStr sv;
    cr_assert_eq(gguf_get_str(&g, "general.architecture", true, &sv, &err), STATUS_OK);
    cr_assert(gguf_str_eq(sv, "llama"));
    cr_assert_eq(gguf_get_str(&g, "general.name", true, &sv, &err), STATUS_OK);
    cr_assert(gguf_str_eq(sv, "cgpt-test"));
    int64_t iv;
    cr_assert_eq(gguf_get_i64(&g, "cgpt.train.step", true, &iv, &err), STATUS_OK);
    cr_assert_eq(iv, 4242);
    uint32_t u;
    struct {
        const char *key;
        uint32_t want;
    } keys[] = {{"general.file_type", 0},
                {"llama.context_length", 32},
                {"llama.embedding_length", 16},
                {"llama.block_count", 2},
                {"llama.feed_forward_length", 24},
                {"llama.attention.head_count", 4},
                {"llama.attention.head_count_kv", 2},
                {"llama.rope.dimension_count", 6},
                {"llama.attention.key_length", 6},
                {"llama.attention.value_length", 6},
                {"llama.vocab_size", 261}};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        cr_assert_eq(gguf_get_u32(&g, keys[i].key, true, &u, &err), STATUS_OK, "%s", err.msg);
        cr_assert_eq(u, keys[i].want, "%s = %u want %u", keys[i].key, u, keys[i].want);
    }
    float fv;
    cr_assert_eq(gguf_get_f32(&g, "llama.rope.freq_base", true, &fv, &err), STATUS_OK);
    cr_assert_eq(fv, 5000.0f);
    cr_assert_eq(gguf_get_f32(&g, "llama.attention.layer_norm_rms_epsilon", true, &fv, &err),
                 STATUS_OK);
    cr_assert_eq(fv, 1e-6f);
    /* Every tokenizer.* key of the source, and nothing of its model keys. */
    int n_tok_keys = 0;
    for (uint64_t i = 0; i < tok.n_kv; i++) {
        GGUFStr k = tok.kv[i].key;
        if (k.len > 10 && !memcmp(k.ptr, "tokenizer.", 10)) {
            char name[128];
            snprintf(name, sizeof name, "%.*s", (int)k.len, k.ptr);
            const GGUFKV *kv = gguf_find_key(&g, name);
            cr_assert_not_null(kv, "tokenizer key %s not copied", name);
            cr_assert_eq(kv->type, tok.kv[i].type);
            cr_assert_eq(kv->arr_n, tok.kv[i].arr_n);
            n_tok_keys++;
        }
    }
    cr_assert(n_tok_keys >= 5, "only %d tokenizer keys in the source", n_tok_keys);
    cr_assert_null(gguf_find_tensor(&g, "output.weight"));
    cr_assert_eq(g.n_tensors, (uint64_t)nt);
    for (int i = 0; i < nt; i++) {
        const GGUFTensor *gt = gguf_find_tensor(&g, tensors[i].name);
        cr_assert_not_null(gt, "tensor %s missing", tensors[i].name);
        cr_assert_eq(gt->type, DTYPE_F32);
        cr_assert_eq(gt->n_dims, tensors[i].rows == 1 ? 1 : 2, "%s dims", tensors[i].name);
        cr_assert_eq(gt->ne[0], tensors[i].cols);
        cr_assert_eq(gt->ne[1], tensors[i].rows);
        cr_assert(!memcmp(gt->data, s.params + tensors[i].offset,
                          (size_t)(tensors[i].rows * tensors[i].cols) * 4),
                  "%s bytes differ", tensors[i].name);
    }

    /* The engine and the tokenizer accept it. */
    Model *m = NULL;
    ModelParams mp = {.n_threads = 1, .n_ctx = 16};
    cr_assert_eq(model_load(&m, out, &mp, &err), STATUS_OK, "model_load: %s", err.msg);
    const ModelConfig *mc = model_config(m);
    cr_assert_eq(mc->n_vocab, 261);
    cr_assert_eq(mc->n_embd, 16);
    cr_assert_eq(mc->n_layers, 2);
    cr_assert_eq(mc->n_heads, 4);
    cr_assert_eq(mc->n_kv_heads, 2);
    cr_assert_eq(mc->head_dim, 6);
    cr_assert_eq(mc->n_rot, 6);
    cr_assert_eq(mc->n_ff, 24);
    cr_assert_eq(mc->n_ctx_train, 32);
    cr_assert(mc->tied_output);
    cr_assert_eq(mc->norm_eps, 1e-6f);
    cr_assert_eq(mc->rope_freq_base, 5000.0f);
    cr_assert_eq(mc->n_params, s.n_params);
    BatchRow row = {.token = 72, .pos = 0, .seq = 0, .logits = true};
    float logits[261];
    cr_assert_eq(model_forward(m, &row, 1, logits, &err), STATUS_OK, "%s", err.msg);
    for (int i = 0; i < 261; i++)
        cr_assert(isfinite(logits[i]));
    model_free(m);
    Tokenizer *tk = NULL;
    cr_assert_eq(tok_load(&tk, &g, &err), STATUS_OK, "tok_load: %s", err.msg);
    tok_free(tk);
    gguf_close(&g);

    /* A tokenizer of another size is refused. */
    cfg.n_vocab = 300;
    TParam t2[64];
    int nt2 = layout(&cfg, t2, 64);
    float *p2 = calloc(tmodel_config_n_params(&cfg), sizeof *p2);
    cr_assert_eq(ckpt_write_gguf(out, &cfg, p2, t2, nt2, &tok, NULL, 0, &err), STATUS_INVALID);
    cr_assert(strstr(err.msg, "261") && strstr(err.msg, "300"), "%s", err.msg);
    /* No tokenizer: a model without vocabulary keys, still loadable. */
    cr_assert_eq(ckpt_write_gguf(out, &cfg, p2, t2, nt2, NULL, NULL, 0, &err), STATUS_OK, "%s",
                 err.msg);
    cr_assert_eq(model_load(&m, out, &mp, &err), STATUS_OK, "model_load: %s", err.msg);
    cr_assert_eq(model_config(m)->n_vocab, 300);
    model_free(m);
    free(p2);
    gguf_close(&tok);
    ckpt_state_free(&s);
    tmp_free(&t);
}

static int count_files(const char *dir, const char *prefix) {
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += !strncmp(e->d_name, prefix, strlen(prefix));
    closedir(d);
    return n;
}

Test(ckpt, directory_save_latest_and_rotation) {
    TmpDir t;
    tmp_init(&t);
    char tokp[256], p[512];
    write_tok_source(&t, tokp, sizeof tokp, 261);
    GGUF tok = {0};
    Err err = {0};
    cr_assert_eq(gguf_open(&tok, tokp, &err), STATUS_OK, "%s", err.msg);
    unlink(tokp);
    TConfig cfg = gguf_cfg();
    TParam tensors[64];
    int nt = layout(&cfg, tensors, 64);
    char opt[512];

    /* Nothing yet. */
    cr_assert_eq(ckpt_dir_latest(t.dir, opt, sizeof opt, &err), STATUS_IO);
    cr_assert(strstr(err.msg, "latest"), "%s", err.msg);

    CkptState s, got;
    for (uint64_t step = 100; step <= 500; step += 100) {
        make_state(&s, &cfg, step, "{}");
        s.step = step;
        cr_assert_eq(ckpt_dir_save(t.dir, &s, tensors, nt, &tok, "rot", 2, &err), STATUS_OK,
                     "step %" PRIu64 ": %s", step, err.msg);
        ckpt_state_free(&s);
    }
    cr_assert_eq(count_files(t.dir, "ckpt-"), 4, "want 2 pairs left");
    for (int step = 100; step <= 500; step += 100) {
        snprintf(p, sizeof p, "%s/ckpt-%08d.opt", t.dir, step);
        cr_assert_eq(file_exists(p), step >= 400, "%s", p);
        snprintf(p, sizeof p, "%s/ckpt-%08d.gguf", t.dir, step);
        cr_assert_eq(file_exists(p), step >= 400, "%s", p);
    }
    size_t n;
    snprintf(p, sizeof p, "%s/latest", t.dir);
    uint8_t *lat = read_file(p, &n);
    cr_assert(n == 14 && !memcmp(lat, "ckpt-00000500\n", 14), "latest '%.*s'", (int)n, lat);
    free(lat);
    cr_assert_eq(ckpt_dir_latest(t.dir, opt, sizeof opt, &err), STATUS_OK, "%s", err.msg);
    snprintf(p, sizeof p, "%s/ckpt-00000500.opt", t.dir);
    cr_assert_str_eq(opt, p);
    cr_assert_eq(ckpt_state_load(opt, &got, &err), STATUS_OK, "%s", err.msg);
    make_state(&s, &cfg, 500, "{}");
    s.step = 500;
    assert_same_state(&s, &got);
    ckpt_state_free(&got);
    ckpt_state_free(&s);
    /* model.gguf is the latest model. */
    snprintf(p, sizeof p, "%s/model.gguf", t.dir);
    GGUF g = {0};
    cr_assert_eq(gguf_open(&g, p, &err), STATUS_OK, "%s", err.msg);
    int64_t st;
    cr_assert_eq(gguf_get_i64(&g, "cgpt.train.step", true, &st, &err), STATUS_OK);
    cr_assert_eq(st, 500);
    gguf_close(&g);
    Model *m = NULL;
    ModelParams mp = {.n_threads = 1, .n_ctx = 16};
    cr_assert_eq(model_load(&m, p, &mp, &err), STATUS_OK, "%s", err.msg);
    model_free(m);

    /* Saving an older step (a resume from an earlier checkpoint) keeps it,
     * points 'latest' at it, and rotation drops the oldest of the rest. */
    make_state(&s, &cfg, 7, "{}");
    s.step = 250;
    cr_assert_eq(ckpt_dir_save(t.dir, &s, tensors, nt, &tok, "rot", 2, &err), STATUS_OK, "%s",
                 err.msg);
    ckpt_state_free(&s);
    cr_assert_eq(ckpt_dir_latest(t.dir, opt, sizeof opt, &err), STATUS_OK, "%s", err.msg);
    cr_assert(strstr(opt, "ckpt-00000250.opt"), "%s", opt);
    snprintf(p, sizeof p, "%s/ckpt-00000400.opt", t.dir);
    cr_assert(!file_exists(p));
    snprintf(p, sizeof p, "%s/ckpt-00000500.opt", t.dir);
    cr_assert(file_exists(p));

    /* keep < 1 keeps everything; stale tmp files of other steps go with rotation. */
    snprintf(p, sizeof p, "%s/ckpt-00000001.gguf.tmp", t.dir);
    write_file(p, "x", 1);
    make_state(&s, &cfg, 8, "{}");
    s.step = 600;
    cr_assert_eq(ckpt_dir_save(t.dir, &s, tensors, nt, &tok, NULL, 0, &err), STATUS_OK, "%s",
                 err.msg);
    cr_assert_eq(count_files(t.dir, "ckpt-"), 7);
    s.step = 700;
    cr_assert_eq(ckpt_dir_save(t.dir, &s, tensors, nt, &tok, NULL, 1, &err), STATUS_OK, "%s",
                 err.msg);
    cr_assert_eq(count_files(t.dir, "ckpt-"), 2);
    ckpt_state_free(&s);

    /* A pointer to a missing file, and garbage pointers. */
    snprintf(p, sizeof p, "%s/ckpt-00000700.opt", t.dir);
    unlink(p);
    cr_assert_eq(ckpt_dir_latest(t.dir, opt, sizeof opt, &err), STATUS_IO);
    cr_assert(strstr(err.msg, "missing") && strstr(err.msg, "ckpt-00000700"), "%s", err.msg);
    const char *garbage[] = {"",
                             "\n",
                             "ckpt-\n",
                             "ckpt-12a\n",
                             "../etc/passwd\n",
                             "ckpt-1/../x\n",
                             "ckpt-5\nckpt-6\n",
                             "ckpt-123456789012345678901\n"};
    snprintf(p, sizeof p, "%s/latest", t.dir);
    for (size_t i = 0; i < sizeof garbage / sizeof garbage[0]; i++) {
        write_file(p, garbage[i], strlen(garbage[i]));
        cr_assert_eq(ckpt_dir_latest(t.dir, opt, sizeof opt, &err), STATUS_FORMAT,
                     "latest '%s': %s", garbage[i], err.msg);
    }
    char big[CKPT_LATEST_MAX + 10];
    memset(big, '1', sizeof big);
    write_file(p, big, sizeof big);
    cr_assert_eq(ckpt_dir_latest(t.dir, opt, sizeof opt, &err), STATUS_LIMIT, "%s", err.msg);
    gguf_close(&tok);
    tmp_free(&t);
}

Test(ckpt, latest_path_capacity) {
    TmpDir t;
    tmp_init(&t);
    TConfig cfg = tiny_cfg();
    CkptState s;
    make_state(&s, &cfg, 1, NULL);
    char p[256];
    tmp_path(&t, "ckpt-00000042.opt", p, sizeof p);
    Err err = {0};
    cr_assert_eq(ckpt_state_save(p, &s, &err), STATUS_OK, "%s", err.msg);
    tmp_path(&t, "latest", p, sizeof p);
    write_file(p, "ckpt-00000042", 13); /* no newline: accepted */
    char opt[256], small[8];
    cr_assert_eq(ckpt_dir_latest(t.dir, opt, sizeof opt, &err), STATUS_OK, "%s", err.msg);
    cr_assert_eq(ckpt_dir_latest(t.dir, small, sizeof small, &err), STATUS_LIMIT);
    ckpt_state_free(&s);
    tmp_free(&t);
}

Test(ckpt, directory_save_failing_midway_keeps_latest) {
    TmpDir t;
    tmp_init(&t);
    char tokp[256], p[512], opt[512];
    write_tok_source(&t, tokp, sizeof tokp, 261);
    GGUF tok = {0};
    Err err = {0};
    cr_assert_eq(gguf_open(&tok, tokp, &err), STATUS_OK, "%s", err.msg);
    TConfig cfg = gguf_cfg();
    TParam tensors[64];
    int nt = layout(&cfg, tensors, 64);
    CkptState s;
    make_state(&s, &cfg, 1, "{}");
    s.step = 10;
    cr_assert_eq(ckpt_dir_save(t.dir, &s, tensors, nt, &tok, NULL, 3, &err), STATUS_OK, "%s",
                 err.msg);
    /* Step 20 in a child whose files may not exceed a size between the model
     * (~4 bytes/param) and the state (~12 bytes/param): the .gguf is written,
     * the .opt fails as on a full disk. Then a limit below the .gguf. */
    rlim_t limits[] = {(rlim_t)(8 * s.n_params), 100};
    for (size_t i = 0; i < 2; i++) {
        fflush(NULL);
        pid_t pid = fork();
        cr_assert(pid >= 0);
        if (pid == 0) {
            signal(SIGXFSZ, SIG_IGN);
            struct rlimit rl = {limits[i], limits[i]};
            if (setrlimit(RLIMIT_FSIZE, &rl) != 0)
                _exit(10);
            s.step = 20;
            Err e = {0};
            Status st = ckpt_dir_save(t.dir, &s, tensors, nt, &tok, NULL, 3, &e);
            _exit(st == STATUS_IO ? 0 : 11);
        }
        int ws = 0;
        cr_assert_eq(waitpid(pid, &ws, 0), pid);
        cr_assert(WIFEXITED(ws) && WEXITSTATUS(ws) == 0, "limit %zu: child status %d",
                  (size_t)limits[i], ws);
        cr_assert_eq(ckpt_dir_latest(t.dir, opt, sizeof opt, &err), STATUS_OK, "%s", err.msg);
        cr_assert(strstr(opt, "ckpt-00000010.opt"), "%s", opt);
        cr_assert_eq(count_files(t.dir, "ckpt-00000020"), 0, "limit %zu: step 20 files left",
                     (size_t)limits[i]);
        cr_assert_eq(count_files(t.dir, "ckpt-"), 2);
        CkptState got;
        cr_assert_eq(ckpt_state_load(opt, &got, &err), STATUS_OK, "%s", err.msg);
        assert_same_state(&s, &got);
        ckpt_state_free(&got);
        snprintf(p, sizeof p, "%s/model.gguf", t.dir);
        Model *m = NULL;
        ModelParams mp = {.n_threads = 1, .n_ctx = 16};
        cr_assert_eq(model_load(&m, p, &mp, &err), STATUS_OK, "%s", err.msg);
        model_free(m);
    }
    ckpt_state_free(&s);
    gguf_close(&tok);
    tmp_free(&t);
}
