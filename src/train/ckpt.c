/* ckpt.c - trainer state files, model GGUFs and checkpoint directories.
 *
 * The state file is written in one pass (header, settings, three arrays,
 * then the FNV-1a of everything before the checksum) and read from a
 * mapping: every count is checked against the file size before anything is
 * allocated, and the checksum is verified before any value is used beyond
 * the size computation. */
#include "train/ckpt.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/mapfile.h"
#include "gguf/gguf_writer.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "ckpt.c writes the float arrays as they are in memory: little-endian hosts only"
#endif

#define CKPT_FNV_PRIME 0x100000001b3ull
#define CKPT_WRITE_CHUNK (1u << 22) /* bytes per write() of the arrays */
#define CKPT_MEM_NAME "(memory)"
#define CKPT_PREFIX "ckpt-"
#define CKPT_MAX_STEP_DIGITS 20

uint64_t ckpt_fnv1a(uint64_t h, const void *p, size_t n) {
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= CKPT_FNV_PRIME;
    }
    return h;
}

/* ---- little-endian fields ---- */

static void put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put_f32(uint8_t *p, float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    put_u32(p, u);
}

static uint32_t get_u32(const uint8_t *p) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v |= (uint32_t)p[i] << (8 * i);
    return v;
}

static uint64_t get_u64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static float get_f32(const uint8_t *p) {
    uint32_t u = get_u32(p);
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Offsets of the fixed header (see ckpt.h). */
enum {
    OFF_MAGIC = 0,
    OFF_VERSION = 8,
    OFF_FLAGS = 12,
    OFF_CFG = 16,
    OFF_ROPE = 48,
    OFF_EPS = 52,
    OFF_STEP = 56,
    OFF_TOKENS = 64,
    OFF_CURSOR = 72,
    OFF_ADAM_T = 80,
    OFF_N_PARAMS = 88,
    OFF_SETTINGS_LEN = 96,
};
_Static_assert(OFF_SETTINGS_LEN + 8 == CKPT_HEADER_BYTES, "header layout");

static void cfg_ints(const TConfig *c, int32_t out[8]) {
    out[0] = c->n_vocab;
    out[1] = c->n_embd;
    out[2] = c->n_layers;
    out[3] = c->n_heads;
    out[4] = c->n_kv_heads;
    out[5] = c->head_dim;
    out[6] = c->n_ff;
    out[7] = c->n_ctx;
}

/* ---- small file helpers ---- */

static Status write_all(int fd, const void *p, size_t n, const char *path, Err *err) {
    const uint8_t *b = p;
    while (n > 0) {
        ssize_t k = write(fd, b, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return err_set(err, STATUS_IO, "cannot write '%s': %s", path,
                           k < 0 ? strerror(errno) : "wrote nothing");
        b += k;
        n -= (size_t)k;
    }
    return STATUS_OK;
}

static Status sync_dir(const char *dir, Err *err) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    Status s = STATUS_OK;
    if (fd < 0 || fsync(fd) != 0)
        s = err_set(err, STATUS_IO, "cannot sync directory '%s': %s", dir, strerror(errno));
    if (fd >= 0)
        close(fd);
    return s;
}

/* The directory part of 'path' ("." when none) into out[cap]. */
static void dir_of(const char *path, char *out, size_t cap) {
    const char *slash = strrchr(path, '/');
    if (!slash) {
        snprintf(out, cap, ".");
        return;
    }
    size_t n = slash == path ? 1 : (size_t)(slash - path);
    if (n >= cap)
        n = cap - 1;
    memcpy(out, path, n);
    out[n] = '\0';
}

static Status join(char *out, size_t cap, Err *err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static Status join(char *out, size_t cap, Err *err, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(out, cap, fmt, ap);
    va_end(ap);
    if (k < 0 || (size_t)k >= cap)
        return err_set(err, STATUS_LIMIT, "path longer than %zu bytes", cap - 1);
    return STATUS_OK;
}

/* ---- state file: save ---- */

static Status check_finite(const char *name, const char *what, const float *x, size_t n,
                           bool nonneg, Status code, Err *err) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]) || (nonneg && x[i] < 0.0f))
            return err_set(err, code, "ckpt '%s': %s[%zu] = %g is not %s", name, what, i,
                           (double)x[i], nonneg ? "finite and >= 0" : "finite");
    return STATUS_OK;
}

static Status write_state(int fd, const CkptState *s, const char *tmp, Err *err) {
    const char *settings = s->settings_json ? s->settings_json : "";
    size_t slen = strlen(settings);
    uint8_t h[CKPT_HEADER_BYTES];
    memset(h, 0, sizeof h);
    memcpy(h + OFF_MAGIC, CKPT_MAGIC, 8);
    put_u32(h + OFF_VERSION, CKPT_VERSION);
    put_u32(h + OFF_FLAGS, 0);
    int32_t ci[8];
    cfg_ints(&s->cfg, ci);
    for (int i = 0; i < 8; i++)
        put_u32(h + OFF_CFG + 4 * i, (uint32_t)ci[i]);
    put_f32(h + OFF_ROPE, s->cfg.rope_base);
    put_f32(h + OFF_EPS, s->cfg.norm_eps);
    put_u64(h + OFF_STEP, s->step);
    put_u64(h + OFF_TOKENS, s->tokens_seen);
    put_u64(h + OFF_CURSOR, s->data_cursor);
    put_u64(h + OFF_ADAM_T, s->adam_t);
    put_u64(h + OFF_N_PARAMS, (uint64_t)s->n_params);
    put_u64(h + OFF_SETTINGS_LEN, (uint64_t)slen);
    uint64_t hash = ckpt_fnv1a(CKPT_FNV_OFFSET, h, sizeof h);
    Status st = write_all(fd, h, sizeof h, tmp, err);
    if (st == STATUS_OK) {
        hash = ckpt_fnv1a(hash, settings, slen);
        st = write_all(fd, settings, slen, tmp, err);
    }
    const float *arrs[3] = {s->params, s->m, s->v};
    for (int a = 0; a < 3 && st == STATUS_OK; a++) {
        const uint8_t *p = (const uint8_t *)arrs[a];
        size_t left = s->n_params * sizeof(float);
        while (left > 0 && st == STATUS_OK) {
            size_t k = left < CKPT_WRITE_CHUNK ? left : CKPT_WRITE_CHUNK;
            hash = ckpt_fnv1a(hash, p, k);
            st = write_all(fd, p, k, tmp, err);
            p += k;
            left -= k;
        }
    }
    if (st == STATUS_OK) {
        uint8_t tail[8];
        put_u64(tail, hash);
        st = write_all(fd, tail, 8, tmp, err);
    }
    if (st == STATUS_OK && fsync(fd) != 0)
        st = err_set(err, STATUS_IO, "cannot fsync '%s': %s", tmp, strerror(errno));
    return st;
}

Status ckpt_state_save(const char *path, const CkptState *s, Err *err) {
    Status st = tmodel_config_check(&s->cfg, err);
    if (st != STATUS_OK)
        return err_prefix(err, "ckpt '%s': config", path);
    size_t want = tmodel_config_n_params(&s->cfg);
    if (s->n_params != want)
        return err_set(err, STATUS_INVALID, "ckpt '%s': n_params %zu but the config needs %zu",
                       path, s->n_params, want);
    if (!s->params || !s->m || !s->v)
        return err_set(err, STATUS_INVALID, "ckpt '%s': params, m and v are required", path);
    size_t slen = s->settings_json ? strlen(s->settings_json) : 0;
    if (slen > CKPT_MAX_SETTINGS)
        return err_set(err, STATUS_LIMIT, "ckpt '%s': settings_json is %zu bytes (limit %u)", path,
                       slen, CKPT_MAX_SETTINGS);
    if ((st = check_finite(path, "params", s->params, s->n_params, false, STATUS_INVALID, err)) ||
        (st = check_finite(path, "m", s->m, s->n_params, false, STATUS_INVALID, err)) ||
        (st = check_finite(path, "v", s->v, s->n_params, true, STATUS_INVALID, err)))
        return st;

    char tmp[CKPT_PATH_MAX], dir[CKPT_PATH_MAX];
    if (join(tmp, sizeof tmp, err, "%s.tmp", path))
        return err_prefix(err, "ckpt '%s'", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return err_set(err, STATUS_IO, "cannot create '%s': %s", tmp, strerror(errno));
    st = write_state(fd, s, tmp, err);
    if (close(fd) != 0 && st == STATUS_OK)
        st = err_set(err, STATUS_IO, "cannot close '%s': %s", tmp, strerror(errno));
    if (st == STATUS_OK && rename(tmp, path) != 0)
        st = err_set(err, STATUS_IO, "cannot rename '%s' to '%s': %s", tmp, path, strerror(errno));
    if (st != STATUS_OK) {
        unlink(tmp);
        return st;
    }
    dir_of(path, dir, sizeof dir);
    return sync_dir(dir, err);
}

/* ---- state file: load ---- */

static Status load_bytes(const char *name, const uint8_t *b, size_t n, CkptState *s, Err *err) {
    memset(s, 0, sizeof *s);
    const size_t fixed = CKPT_HEADER_BYTES + 8;
    if (n < fixed)
        return err_set(
            err, STATUS_FORMAT,
            "ckpt '%s': file is %zu bytes, shorter than the %zu-byte header and checksum", name, n,
            fixed);
    if (memcmp(b + OFF_MAGIC, CKPT_MAGIC, 8) != 0)
        return err_set(err, STATUS_FORMAT, "ckpt '%s': bad magic (want \"%s\")", name, CKPT_MAGIC);
    uint32_t version = get_u32(b + OFF_VERSION);
    if (version != CKPT_VERSION)
        return err_set(err, STATUS_FORMAT, "ckpt '%s': version %" PRIu32 " (supported: %u)", name,
                       version, CKPT_VERSION);
    uint32_t flags = get_u32(b + OFF_FLAGS);
    if (flags != 0)
        return err_set(err, STATUS_FORMAT, "ckpt '%s': flags 0x%" PRIx32 " (must be 0)", name,
                       flags);
    TConfig cfg;
    cfg.n_vocab = (int32_t)get_u32(b + OFF_CFG + 0);
    cfg.n_embd = (int32_t)get_u32(b + OFF_CFG + 4);
    cfg.n_layers = (int32_t)get_u32(b + OFF_CFG + 8);
    cfg.n_heads = (int32_t)get_u32(b + OFF_CFG + 12);
    cfg.n_kv_heads = (int32_t)get_u32(b + OFF_CFG + 16);
    cfg.head_dim = (int32_t)get_u32(b + OFF_CFG + 20);
    cfg.n_ff = (int32_t)get_u32(b + OFF_CFG + 24);
    cfg.n_ctx = (int32_t)get_u32(b + OFF_CFG + 28);
    cfg.rope_base = get_f32(b + OFF_ROPE);
    cfg.norm_eps = get_f32(b + OFF_EPS);
    if (tmodel_config_check(&cfg, err) != STATUS_OK)
        return err_prefix(err, "ckpt '%s': config", name);
    uint64_t n_params = get_u64(b + OFF_N_PARAMS);
    size_t want_params = tmodel_config_n_params(&cfg);
    if (n_params != (uint64_t)want_params)
        return err_set(err, STATUS_FORMAT,
                       "ckpt '%s': n_params %" PRIu64 " but the config needs %zu", name, n_params,
                       want_params);
    uint64_t slen = get_u64(b + OFF_SETTINGS_LEN);
    if (slen > CKPT_MAX_SETTINGS)
        return err_set(err, STATUS_LIMIT, "ckpt '%s': settings_len %" PRIu64 " exceeds %u", name,
                       slen, CKPT_MAX_SETTINGS);
    /* n_params is bounded by the config limits, but check the products anyway. */
    if (n_params > (UINT64_MAX - fixed - slen) / (3 * sizeof(float)))
        return err_set(err, STATUS_LIMIT, "ckpt '%s': n_params %" PRIu64 " overflows the size",
                       name, n_params);
    uint64_t want = fixed + slen + 3 * sizeof(float) * n_params;
    if ((uint64_t)n != want)
        return err_set(err, STATUS_FORMAT,
                       "ckpt '%s': file is %zu bytes but its header implies %" PRIu64
                       " (n_params %" PRIu64 ", settings_len %" PRIu64 ")%s",
                       name, n, want, n_params, slen, (uint64_t)n < want ? ": truncated" : "");
    uint64_t stored = get_u64(b + n - 8);
    uint64_t computed = ckpt_fnv1a(CKPT_FNV_OFFSET, b, n - 8);
    if (stored != computed)
        return err_set(err, STATUS_FORMAT,
                       "ckpt '%s': checksum mismatch: stored 0x%016" PRIx64
                       ", computed 0x%016" PRIx64 " (FNV-1a 64 over the first %zu bytes)",
                       name, stored, computed, n - 8);
    const uint8_t *settings = b + CKPT_HEADER_BYTES;
    if (memchr(settings, 0, (size_t)slen))
        return err_set(err, STATUS_FORMAT, "ckpt '%s': settings JSON contains a NUL byte", name);

    size_t np = (size_t)n_params, bytes = np * sizeof(float);
    s->settings_json = malloc((size_t)slen + 1);
    s->params = malloc(bytes);
    s->m = malloc(bytes);
    s->v = malloc(bytes);
    if (!s->settings_json || !s->params || !s->m || !s->v) {
        ckpt_state_free(s);
        return err_set(err, STATUS_NOMEM, "ckpt '%s': out of memory for %zu parameters", name, np);
    }
    memcpy(s->settings_json, settings, (size_t)slen);
    s->settings_json[slen] = '\0';
    const uint8_t *arr = settings + slen;
    memcpy(s->params, arr, bytes);
    memcpy(s->m, arr + bytes, bytes);
    memcpy(s->v, arr + 2 * bytes, bytes);
    Status st;
    if ((st = check_finite(name, "params", s->params, np, false, STATUS_FORMAT, err)) ||
        (st = check_finite(name, "m", s->m, np, false, STATUS_FORMAT, err)) ||
        (st = check_finite(name, "v", s->v, np, true, STATUS_FORMAT, err))) {
        ckpt_state_free(s);
        return st;
    }
    s->cfg = cfg;
    s->n_params = np;
    s->step = get_u64(b + OFF_STEP);
    s->tokens_seen = get_u64(b + OFF_TOKENS);
    s->data_cursor = get_u64(b + OFF_CURSOR);
    s->adam_t = get_u64(b + OFF_ADAM_T);
    return STATUS_OK;
}

Status ckpt_state_load_mem(const void *p, size_t n, CkptState *s, Err *err) {
    return load_bytes(CKPT_MEM_NAME, p, n, s, err);
}

Status ckpt_state_load(const char *path, CkptState *s, Err *err) {
    memset(s, 0, sizeof *s);
    MapFile mf;
    Status st = mapfile_open(&mf, path, err);
    if (st != STATUS_OK)
        return st;
    st = load_bytes(path, mf.data ? mf.data : (const void *)"", mf.size, s, err);
    mapfile_close(&mf);
    return st;
}

void ckpt_state_free(CkptState *s) {
    if (!s)
        return;
    free(s->settings_json);
    free(s->params);
    free(s->m);
    free(s->v);
    memset(s, 0, sizeof *s);
}

/* ---- model GGUF ---- */

static void set_llama_u32(GGUFWriter *w, const char *suffix, uint32_t v) {
    char key[128];
    int k = snprintf(key, sizeof key, "llama.%s", suffix);
    ASSERT(k > 0 && (size_t)k < sizeof key);
    gguf_writer_set_u32(w, key, v);
}

static void set_llama_f32(GGUFWriter *w, const char *suffix, float v) {
    char key[128];
    int k = snprintf(key, sizeof key, "llama.%s", suffix);
    ASSERT(k > 0 && (size_t)k < sizeof key);
    gguf_writer_set_f32(w, key, v);
}

Status ckpt_write_gguf(const char *path, const TConfig *cfg, const float *params,
                       const TParam *tensors, int n_tensors, const GGUF *tok, const char *name,
                       uint64_t step, Err *err) {
    Status st = tmodel_config_check(cfg, err);
    if (st != STATUS_OK)
        return err_prefix(err, "'%s': config", path);
    size_t n_params = tmodel_config_n_params(cfg), at = 0;
    for (int t = 0; t < n_tensors; t++) {
        ASSERT(tensors[t].offset == at && tensors[t].rows >= 1 && tensors[t].cols >= 1);
        at += (size_t)(tensors[t].rows * tensors[t].cols);
    }
    ASSERT(at == n_params);
    if (!name)
        name = "cgpt";
    if (strlen(name) > CKPT_MAX_NAME)
        return err_set(err, STATUS_LIMIT, "'%s': model name is %zu bytes (limit %d)", path,
                       strlen(name), CKPT_MAX_NAME);
    if (tok) {
        const GGUFKV *kv = gguf_find_key(tok, "tokenizer.ggml.tokens");
        if (kv && (kv->type != GGUF_TYPE_ARRAY || kv->arr_n != (uint64_t)cfg->n_vocab))
            return err_set(err, STATUS_INVALID,
                           "'%s': the tokenizer has %" PRIu64 " tokens but n_vocab is %d", path,
                           kv->type == GGUF_TYPE_ARRAY ? kv->arr_n : 0, cfg->n_vocab);
    }
    GGUFWriter *w = gguf_writer_new();
    if (!w)
        return err_set(err, STATUS_NOMEM, "'%s': out of memory for the writer", path);
    gguf_writer_set_str(w, "general.architecture", "llama");
    gguf_writer_set_str(w, "general.name", name);
    gguf_writer_set_u32(w, "general.file_type", 0); /* ALL_F32 */
    gguf_writer_set_u64(w, "cgpt.train.step", step);
    set_llama_u32(w, "context_length", (uint32_t)cfg->n_ctx);
    set_llama_u32(w, "embedding_length", (uint32_t)cfg->n_embd);
    set_llama_u32(w, "block_count", (uint32_t)cfg->n_layers);
    set_llama_u32(w, "feed_forward_length", (uint32_t)cfg->n_ff);
    set_llama_u32(w, "attention.head_count", (uint32_t)cfg->n_heads);
    set_llama_u32(w, "attention.head_count_kv", (uint32_t)cfg->n_kv_heads);
    set_llama_f32(w, "attention.layer_norm_rms_epsilon", cfg->norm_eps);
    set_llama_f32(w, "rope.freq_base", cfg->rope_base);
    set_llama_u32(w, "rope.dimension_count", (uint32_t)cfg->head_dim);
    set_llama_u32(w, "attention.key_length", (uint32_t)cfg->head_dim);
    set_llama_u32(w, "attention.value_length", (uint32_t)cfg->head_dim);
    set_llama_u32(w, "vocab_size", (uint32_t)cfg->n_vocab);
    if (tok)
        for (uint64_t i = 0; i < tok->n_kv; i++) {
            GGUFStr k = tok->kv[i].key;
            if (k.len > 10 && memcmp(k.ptr, "tokenizer.", 10) == 0)
                gguf_writer_set_kv(w, &tok->kv[i]);
        }
    for (int t = 0; t < n_tensors; t++) {
        const TParam *tp = &tensors[t];
        int64_t ne[2] = {tp->cols, tp->rows};
        gguf_writer_add_tensor(w, tp->name, DTYPE_F32, tp->rows == 1 ? 1 : 2, ne,
                               params + tp->offset);
    }
    st = gguf_writer_write(w, path, err);
    gguf_writer_free(w);
    if (st != STATUS_OK)
        return err_prefix(err, "'%s'", path);
    return STATUS_OK;
}

/* ---- checkpoint directory ---- */

/* Write 'text' to 'path' atomically (tmp + fsync + rename + fsync dir). */
static Status write_small_atomic(const char *dir, const char *path, const char *text, Err *err) {
    char tmp[CKPT_PATH_MAX];
    if (join(tmp, sizeof tmp, err, "%s.tmp", path))
        return err_prefix(err, "'%s'", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return err_set(err, STATUS_IO, "cannot create '%s': %s", tmp, strerror(errno));
    Status st = write_all(fd, text, strlen(text), tmp, err);
    if (st == STATUS_OK && fsync(fd) != 0)
        st = err_set(err, STATUS_IO, "cannot fsync '%s': %s", tmp, strerror(errno));
    if (close(fd) != 0 && st == STATUS_OK)
        st = err_set(err, STATUS_IO, "cannot close '%s': %s", tmp, strerror(errno));
    if (st == STATUS_OK && rename(tmp, path) != 0)
        st = err_set(err, STATUS_IO, "cannot rename '%s' to '%s': %s", tmp, path, strerror(errno));
    if (st != STATUS_OK) {
        unlink(tmp);
        return st;
    }
    return sync_dir(dir, err);
}

/* dir/model.gguf becomes the same file as 'gguf': a hard link made under a
 * tmp name and renamed over it; a copy written by ckpt_write_gguf where the
 * file system has no hard links. */
static Status update_model_link(const char *dir, const char *gguf, const CkptState *s,
                                const TParam *tensors, int n_tensors, const GGUF *tok,
                                const char *name, Err *err) {
    char dst[CKPT_PATH_MAX], tmp[CKPT_PATH_MAX];
    if (join(dst, sizeof dst, err, "%s/%s", dir, CKPT_MODEL_FILE) ||
        join(tmp, sizeof tmp, err, "%s/%s.link.tmp", dir, CKPT_MODEL_FILE))
        return err_prefix(err, "checkpoint dir '%s'", dir);
    unlink(tmp);
    if (link(gguf, tmp) == 0) {
        if (rename(tmp, dst) != 0) {
            Status st = err_set(err, STATUS_IO, "cannot rename '%s' to '%s': %s", tmp, dst,
                                strerror(errno));
            unlink(tmp);
            return st;
        }
        return sync_dir(dir, err);
    }
    return ckpt_write_gguf(dst, &s->cfg, s->params, tensors, n_tensors, tok, name, s->step, err);
}

/* "ckpt-<digits>" followed by 'suffix' exactly; the step into *step. */
static bool parse_ckpt_name(const char *fname, const char *suffix, uint64_t *step) {
    size_t lp = strlen(CKPT_PREFIX), n = strlen(fname), ls = strlen(suffix);
    if (n <= lp + ls || memcmp(fname, CKPT_PREFIX, lp) != 0 || strcmp(fname + n - ls, suffix))
        return false;
    size_t nd = n - lp - ls;
    if (nd > CKPT_MAX_STEP_DIGITS)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < nd; i++) {
        char c = fname[lp + i];
        if (c < '0' || c > '9')
            return false;
        if (v > (UINT64_MAX - 9) / 10)
            return false;
        v = v * 10 + (uint64_t)(c - '0');
    }
    *step = v;
    return true;
}

static int cmp_desc_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

static const char *const CKPT_SUFFIXES[] = {".gguf", ".opt", ".gguf.tmp", ".opt.tmp"};
#define CKPT_N_SUFFIXES (sizeof CKPT_SUFFIXES / sizeof CKPT_SUFFIXES[0])

/* Delete every ckpt-* file (tmp files included) but those of 'current' and
 * of the keep - 1 newest other complete steps (those with a .opt). */
static Status rotate(const char *dir, uint64_t current, int keep, Err *err) {
    DIR *d = opendir(dir);
    if (!d)
        return err_set(err, STATUS_IO, "cannot list '%s': %s", dir, strerror(errno));
    uint64_t *steps = NULL;
    size_t n = 0, cap = 0;
    Status st = STATUS_OK;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        uint64_t step;
        if (!parse_ckpt_name(e->d_name, ".opt", &step))
            continue;
        if (n == cap) {
            size_t nc = cap ? 2 * cap : 16;
            uint64_t *ns = realloc(steps, nc * sizeof *ns);
            if (!ns) {
                st = err_set(err, STATUS_NOMEM, "out of memory listing '%s'", dir);
                break;
            }
            steps = ns;
            cap = nc;
        }
        steps[n++] = step;
    }
    if (st == STATUS_OK) {
        qsort(steps, n, sizeof *steps, cmp_desc_u64);
        rewinddir(d);
        while ((e = readdir(d)) != NULL && st == STATUS_OK) {
            uint64_t step = 0;
            bool ours = false;
            for (size_t k = 0; k < CKPT_N_SUFFIXES && !ours; k++)
                ours = parse_ckpt_name(e->d_name, CKPT_SUFFIXES[k], &step);
            if (!ours || step == current)
                continue;
            /* the newest keep - 1 steps other than 'current' */
            bool kept = false;
            size_t others = 0;
            for (size_t i = 0; i < n && others < (size_t)keep - 1 && !kept; i++) {
                if (steps[i] == current)
                    continue;
                kept = steps[i] == step;
                others++;
            }
            if (kept)
                continue;
            char path[CKPT_PATH_MAX];
            if (join(path, sizeof path, err, "%s/%s", dir, e->d_name)) {
                st = err_prefix(err, "checkpoint dir '%s'", dir);
                break;
            }
            if (unlink(path) != 0 && errno != ENOENT)
                st = err_set(err, STATUS_IO, "cannot delete old checkpoint '%s': %s", path,
                             strerror(errno));
        }
    }
    closedir(d);
    free(steps);
    return st;
}

Status ckpt_dir_save(const char *dir, const CkptState *s, const TParam *tensors, int n_tensors,
                     const GGUF *tok, const char *name, int keep, Err *err) {
    char base[64], gguf[CKPT_PATH_MAX], opt[CKPT_PATH_MAX], latest[CKPT_PATH_MAX], line[80];
    int k = snprintf(base, sizeof base, CKPT_PREFIX "%08" PRIu64, s->step);
    ASSERT(k > 0 && (size_t)k < sizeof base);
    k = snprintf(line, sizeof line, "%s\n", base);
    ASSERT(k > 0 && (size_t)k < sizeof line);
    if (join(gguf, sizeof gguf, err, "%s/%s.gguf", dir, base) ||
        join(opt, sizeof opt, err, "%s/%s.opt", dir, base) ||
        join(latest, sizeof latest, err, "%s/%s", dir, CKPT_LATEST_FILE))
        return err_prefix(err, "checkpoint dir '%s'", dir);
    Status st =
        ckpt_write_gguf(gguf, &s->cfg, s->params, tensors, n_tensors, tok, name, s->step, err);
    if (st != STATUS_OK)
        return st;
    if ((st = ckpt_state_save(opt, s, err)) != STATUS_OK) {
        unlink(gguf); /* no half pair left behind ('latest' still names the previous one) */
        return st;
    }
    if ((st = write_small_atomic(dir, latest, line, err)) ||
        (st = update_model_link(dir, gguf, s, tensors, n_tensors, tok, name, err)))
        return st;
    if (keep >= 1)
        return rotate(dir, s->step, keep, err);
    return STATUS_OK;
}

Status ckpt_dir_latest(const char *dir, char *opt_path, size_t cap, Err *err) {
    char latest[CKPT_PATH_MAX];
    if (join(latest, sizeof latest, err, "%s/%s", dir, CKPT_LATEST_FILE))
        return err_prefix(err, "checkpoint dir '%s'", dir);
    int fd = open(latest, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return err_set(err, STATUS_IO, "no checkpoint in '%s': cannot open '%s': %s", dir, latest,
                       strerror(errno));
    char buf[CKPT_LATEST_MAX + 1];
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fd, buf + n, sizeof buf - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            close(fd);
            return err_set(err, STATUS_IO, "cannot read '%s': %s", latest, strerror(e));
        }
        if (r == 0 || (n += (size_t)r) == sizeof buf)
            break;
    }
    close(fd);
    if (n > CKPT_LATEST_MAX)
        return err_set(err, STATUS_LIMIT, "'%s' is longer than %d bytes", latest, CKPT_LATEST_MAX);
    if (n > 0 && buf[n - 1] == '\n')
        n--;
    buf[n] = '\0';
    uint64_t step;
    if (strlen(buf) != n || !parse_ckpt_name(buf, "", &step))
        return err_set(err, STATUS_FORMAT,
                       "'%s' must hold one line \"ckpt-<step digits>\" (got %zu bytes)", latest, n);
    char path[CKPT_PATH_MAX];
    if (join(path, sizeof path, err, "%s/%s.opt", dir, buf))
        return err_prefix(err, "checkpoint dir '%s'", dir);
    struct stat sb;
    if (stat(path, &sb) != 0)
        return err_set(err, STATUS_IO, "'%s' names '%s' but '%s' is missing: %s", latest, buf, path,
                       strerror(errno));
    if (strlen(path) >= cap)
        return err_set(err, STATUS_LIMIT, "checkpoint path '%s' longer than %zu bytes", path,
                       cap - 1);
    memcpy(opt_path, path, strlen(path) + 1);
    return STATUS_OK;
}
