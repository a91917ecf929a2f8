/* test_attn_gqa.c - the grouped-query attention kernel (OpsKernels.attn)
 * over a paged cache, at every SIMD level, against its naive twin
 * attn_gqa_ref on awkward shapes; that one head's bits never depend on
 * which other heads share the call; and the vector exp (ops_exp) against
 * libm in double. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../testutil.h"
#include "core/fp16.h"
#include "core/rng.h"
#include "tensor/attn_ext.h"
#include "tensor/ops.h"
#include "tensor/quant.h"

/* A paged cache of n_blocks blocks of (KVH, bs, hd) with random contents
 * and a shuffled block table of ceil(n / bs) entries for head 'kvh'. */
typedef struct {
    float *k, *v;
    int32_t *table;
    long stride;
    size_t head_off;
} Cache;

static void cache_make(Cache *c, Rng *r, int KVH, int kvh, int bs, int hd, int n) {
    int nb = (n + bs - 1) / bs + 2; /* spare blocks: the table skips some */
    c->stride = (long)KVH * bs * hd;
    size_t total = (size_t)nb * (size_t)c->stride;
    c->k = malloc(total * sizeof(float));
    c->v = malloc(total * sizeof(float));
    c->table = malloc((size_t)nb * sizeof(int32_t));
    cr_assert(c->k && c->v && c->table);
    for (size_t i = 0; i < total; i++) {
        c->k[i] = rng_normal(r);
        c->v[i] = rng_normal(r);
    }
    for (int i = 0; i < nb; i++)
        c->table[i] = i;
    for (int i = nb - 1; i > 0; i--) { /* Fisher-Yates */
        int j = (int)(rng_f32(r) * (float)(i + 1));
        j = j > i ? i : j;
        int32_t t = c->table[i];
        c->table[i] = c->table[j];
        c->table[j] = t;
    }
    c->head_off = (size_t)kvh * bs * hd;
}

static void cache_free(Cache *c) {
    free(c->k);
    free(c->v);
    free(c->table);
}

/* The cache (n_blocks blocks of kv heads) in a rounded kind, by the scalar
 * quantize of its type: OPS_KV_F16 halves, or OPS_KV_Q8_0 rows of hd / 32
 * blocks. With 'back' the cache's floats become the values the rounded rows
 * stand for (the scalar dequant). The view of head 'head_off' for the
 * kernels: *k, *v and *stride (halves, or bytes for Q8_0). */
typedef struct {
    uint8_t *kb, *vb;
    const void *k, *v;
    long stride;
} Rounded;

static void cache_round(Cache *c, int nb, int hd, int kind, bool back, Rounded *o) {
    const QuantOps *qo = quant_ops_at(kind == OPS_KV_F16 ? DTYPE_F16 : DTYPE_Q8_0, SIMD_SCALAR);
    size_t rows = (size_t)nb * (size_t)c->stride / (size_t)hd;
    size_t rb = (size_t)dtype_row_bytes(kind == OPS_KV_F16 ? DTYPE_F16 : DTYPE_Q8_0, hd);
    o->kb = malloc(rows * rb);
    o->vb = malloc(rows * rb);
    cr_assert(o->kb && o->vb && rb > 0);
    for (size_t i = 0; i < rows; i++) {
        qo->quantize(c->k + i * hd, o->kb + i * rb, hd);
        qo->quantize(c->v + i * hd, o->vb + i * rb, hd);
        if (back) {
            qo->dequant(o->kb + i * rb, c->k + i * hd, hd);
            qo->dequant(o->vb + i * rb, c->v + i * hd, hd);
        }
    }
    size_t off = c->head_off / (size_t)hd * rb; /* bytes */
    o->k = o->kb + off;
    o->v = o->vb + off;
    o->stride = kind == OPS_KV_F16 ? c->stride : (long)((size_t)c->stride / (size_t)hd * rb);
}

static void rounded_free(Rounded *o) {
    free(o->kb);
    free(o->vb);
}

/* K's kernel for a cache of 'kind' (attn, attn_f16 or attn_q8). */
static void attn_kind(const OpsKernels *K, int kind, float *out, const float *q, int G, int hd,
                      const void *k, const void *v, const int32_t *table, long stride, int bs,
                      int n, float scale, float *sc) {
    if (kind == OPS_KV_F32)
        K->attn(out, q, G, hd, k, v, table, stride, bs, n, scale, sc);
    else if (kind == OPS_KV_F16)
        K->attn_f16(out, q, G, hd, k, v, table, stride, bs, n, scale, sc);
    else
        K->attn_q8(out, q, G, hd, k, v, table, stride, bs, n, scale, sc);
}

static const struct {
    int G, hd, bs, n;
} SHAPES[] = {
    {3, 64, 16, 1},  {3, 64, 16, 15}, {3, 64, 16, 16},  {3, 64, 16, 17},  {3, 64, 16, 257},
    {1, 64, 16, 33}, {4, 128, 16, 70}, {7, 32, 7, 33},  {2, 16, 1, 9},    {5, 48, 32, 100},
    {2, 6, 16, 20},  {3, 40, 16, 33}, {1, 256, 8, 19},  {8, 64, 64, 130}, {6, 96, 16, 257},
};
#define N_SHAPES (int)(sizeof SHAPES / sizeof SHAPES[0])

Test(attn_gqa, all_levels_match_ref) {
    Rng r;
    rng_seed(&r, 77);
    for (int si = 0; si < N_SHAPES; si++) {
        int G = SHAPES[si].G, hd = SHAPES[si].hd, bs = SHAPES[si].bs, n = SHAPES[si].n;
        Cache c;
        cache_make(&c, &r, 2, 1, bs, hd, n);
        float *q = malloc((size_t)G * hd * sizeof(float));
        for (int i = 0; i < G * hd; i++)
            q[i] = rng_normal(&r) * 0.5f;
        float *want = malloc((size_t)G * hd * sizeof(float));
        float *got = malloc((size_t)G * hd * sizeof(float));
        float *sc = malloc((size_t)G * n * sizeof(float));
        float scale = 1.0f / sqrtf((float)hd);
        attn_gqa_ref(want, q, G, hd, c.k + c.head_off, c.v + c.head_off, c.table, c.stride, bs, n,
                     scale, sc);
        for (int lvl = SIMD_SCALAR; lvl <= SIMD_AVX512; lvl++) {
            const OpsKernels *K = ops_kernels_at((SimdLevel)lvl);
            memset(got, 0xff, (size_t)G * hd * sizeof(float)); /* NaN: every output written */
            K->attn(got, q, G, hd, c.k + c.head_off, c.v + c.head_off, c.table, c.stride, bs, n,
                    scale, sc);
            cr_expect(check_close("attn", got, want, (int64_t)G * hd, 2e-6f, 2e-5f),
                      "level %d G %d hd %d bs %d n %d", K->level, G, hd, bs, n);
        }
        free(q), free(want), free(got), free(sc);
        cache_free(&c);
    }
}

/* A rounded cache's kernel (F16 halves; Q8_0 rows quantized as the Q8_0
 * activations are, head_dim a multiple of 32): at every level the bits of
 * that level's attention over the rounded rows (attn_f16_as_f32), and close
 * to the naive twin over them. */
static void rounded_is_the_widened_f32(int kind, uint64_t seed) {
    Rng r;
    rng_seed(&r, seed);
    int covered = 0;
    for (int si = 0; si < N_SHAPES; si++) {
        int G = SHAPES[si].G, hd = SHAPES[si].hd, bs = SHAPES[si].bs, n = SHAPES[si].n;
        if (kind == OPS_KV_Q8_0 && (hd % 32 || hd > 256))
            continue;
        covered++;
        Cache c;
        cache_make(&c, &r, 2, 1, bs, hd, n);
        Rounded ro;
        cache_round(&c, (n + bs - 1) / bs + 2, hd, kind, true, &ro);
        float *q = malloc((size_t)G * hd * sizeof(float));
        for (int i = 0; i < G * hd; i++)
            q[i] = rng_normal(&r) * 0.5f;
        float *want = malloc((size_t)G * hd * sizeof(float)),
              *ref = malloc((size_t)G * hd * sizeof(float));
        float *got = malloc((size_t)G * hd * sizeof(float));
        float *sc = malloc((size_t)G * n * sizeof(float));
        float scale = 1.0f / sqrtf((float)hd);
        attn_gqa_ref(ref, q, G, hd, c.k + c.head_off, c.v + c.head_off, c.table, c.stride, bs, n,
                     scale, sc);
        for (int lvl = SIMD_SCALAR; lvl <= SIMD_AVX512; lvl++) {
            const OpsKernels *K = ops_kernels_at((SimdLevel)lvl);
            attn_f16_as_f32(K->level, want, q, G, hd, c.k + c.head_off, c.v + c.head_off, c.table,
                            c.stride, bs, n, scale, sc);
            memset(got, 0xff, (size_t)G * hd * sizeof(float));
            attn_kind(K, kind, got, q, G, hd, ro.k, ro.v, c.table, ro.stride, bs, n, scale, sc);
            cr_expect(memcmp(got, want, (size_t)G * hd * sizeof(float)) == 0,
                      "kind %d level %d G %d hd %d bs %d n %d: not the rounded rows' bits", kind,
                      K->level, G, hd, bs, n);
            cr_expect(check_close("attn rounded", got, ref, (int64_t)G * hd, 2e-6f, 2e-5f),
                      "kind %d level %d G %d hd %d bs %d n %d", kind, K->level, G, hd, bs, n);
        }
        free(q), free(want), free(ref), free(got), free(sc);
        rounded_free(&ro);
        cache_free(&c);
    }
    cr_expect(covered >= 4, "kind %d: %d shapes covered", kind, covered);
}

Test(attn_gqa, f16_cache_is_the_widened_f32) { rounded_is_the_widened_f32(OPS_KV_F16, 78); }
Test(attn_gqa, q8_0_cache_is_the_dequantized_f32) { rounded_is_the_widened_f32(OPS_KV_Q8_0, 79); }

/* Peaked scores (large q) stress the max subtraction and the exp. */
Test(attn_gqa, peaked_scores) {
    Rng r;
    rng_seed(&r, 5);
    int G = 3, hd = 64, bs = 16, n = 90;
    Cache c;
    cache_make(&c, &r, 3, 2, bs, hd, n);
    float q[3 * 64], want[3 * 64], got[3 * 64], sc[3 * 90];
    for (int i = 0; i < G * hd; i++)
        q[i] = rng_normal(&r) * 6.0f;
    attn_gqa_ref(want, q, G, hd, c.k + c.head_off, c.v + c.head_off, c.table, c.stride, bs, n,
                 0.125f, sc);
    const OpsKernels *K = ops_kernels();
    K->attn(got, q, G, hd, c.k + c.head_off, c.v + c.head_off, c.table, c.stride, bs, n, 0.125f,
            sc);
    cr_expect(check_close("attn peaked", got, want, G * hd, 1e-5f, 1e-4f));
    cache_free(&c);
}

/* Head g's output is the same bits whether it runs alone or with others
 * (what lets a batch give every row the same bits as the row alone). */
Test(attn_gqa, head_bits_independent_of_group) {
    Rng r;
    rng_seed(&r, 9);
    int G = 7, hd = 64, bs = 16, n = 45;
    Cache c;
    cache_make(&c, &r, 1, 0, bs, hd, n);
    float q[7 * 64], all[7 * 64], one[64], sc[7 * 45];
    for (int i = 0; i < G * hd; i++)
        q[i] = rng_normal(&r);
    for (int lvl = SIMD_SCALAR; lvl <= SIMD_AVX512; lvl++) {
        const OpsKernels *K = ops_kernels_at((SimdLevel)lvl);
        K->attn(all, q, G, hd, c.k, c.v, c.table, c.stride, bs, n, 0.125f, sc);
        for (int g = 0; g < G; g++) {
            K->attn(one, q + g * hd, 1, hd, c.k, c.v, c.table, c.stride, bs, n, 0.125f, sc);
            cr_expect(memcmp(one, all + g * hd, sizeof one) == 0,
                      "level %d head %d differs alone vs in a group of %d", K->level, g, G);
        }
    }
    cache_free(&c);
}

/* ops_exp within 2 ulp (relative 2.5e-7) of exp in double over the range
 * softmax uses, exact 0 for -inf and deep underflow, +inf past overflow,
 * and the same bits for an element wherever it sits in the array. */
Test(attn_gqa, vector_exp) {
    enum { N = 4099 };
    float *x = malloc(N * sizeof(float)), *e = malloc(N * sizeof(float));
    for (int i = 0; i < N; i++)
        x[i] = -87.0f + 97.0f * (float)i / (float)N;
    ops_exp(e, x, N);
    double worst = 0;
    for (int i = 0; i < N; i++) {
        double want = exp((double)x[i]);
        double rel = fabs((double)e[i] - want) / want;
        worst = rel > worst ? rel : worst;
        cr_expect(rel <= 2.5e-7, "exp(%.9g): got %.9g want %.9g (rel %.3g)", x[i], e[i], want,
                  rel);
    }
    cr_log_info("ops_exp: worst relative error %.3g", worst);
    float sp[7] = {-INFINITY, -200.0f, -104.5f, 0.0f, 89.5f, 1.0f, -1.0f};
    float se[7];
    ops_exp(se, sp, 7);
    cr_expect(se[0] == 0.0f && se[1] == 0.0f && se[2] == 0.0f, "underflow: %g %g %g", se[0], se[1],
              se[2]);
    cr_expect(se[3] == 1.0f, "exp(0) = %.9g", se[3]);
    cr_expect(isinf(se[4]) && se[4] > 0, "exp(89.5) = %g", se[4]);
    /* position independence: element 5 computed at offsets 0..20 */
    for (int off = 0; off < 21; off++) {
        float buf[40], out[40];
        for (int i = 0; i < 40; i++)
            buf[i] = 0.5f;
        buf[off] = sp[5];
        ops_exp(out, buf, off + 1);
        cr_expect(out[off] == se[5], "exp(1) at offset %d: %.9g vs %.9g", off, out[off], se[5]);
    }
    free(x);
    free(e);
}

/* A random cache for kv head 1 of 2 (ceil(nmax / bs) + 2 blocks) in each
 * kind: the F32 floats, their halves and, where head_dim allows, their
 * Q8_0 rows. */
typedef struct {
    Cache c;
    Rounded r16, r8;
    bool q8ok;
} Kinds;

static void kinds_make(Kinds *k, Rng *r, int bs, int hd, int nmax) {
    cache_make(&k->c, r, 2, 1, bs, hd, nmax);
    int nb = (nmax + bs - 1) / bs + 2;
    k->q8ok = hd % 32 == 0 && hd <= 256;
    k->r8 = (Rounded){0};
    cache_round(&k->c, nb, hd, OPS_KV_F16, false, &k->r16);
    if (k->q8ok)
        cache_round(&k->c, nb, hd, OPS_KV_Q8_0, false, &k->r8);
}

/* The kernels' view of kind's cache: keys, values, block stride. */
static void kinds_view(const Kinds *k, int kind, const void **kk, const void **vv, long *stride) {
    const Rounded *ro = kind == OPS_KV_F16 ? &k->r16 : &k->r8;
    *kk = kind == OPS_KV_F32 ? (const void *)(k->c.k + k->c.head_off) : ro->k;
    *vv = kind == OPS_KV_F32 ? (const void *)(k->c.v + k->c.head_off) : ro->v;
    *stride = kind == OPS_KV_F32 ? k->c.stride : ro->stride;
}

static void kinds_free(Kinds *k) {
    rounded_free(&k->r16);
    rounded_free(&k->r8);
    cache_free(&k->c);
}

/* attn_rows: R query rows sharing each loaded chunk give, row by row, the
 * bits of the same level's one-row kernel, for every cache kind, causal
 * runs of positions and arbitrary ones. */
Test(attn_gqa, rows_are_each_row_alone) {
    Rng r;
    rng_seed(&r, 80);
    const int NS[][OPS_ATTN_MAX_ROWS] = {{1, 2, 3, 4},     {16, 17, 18, 19}, {70, 71, 72, 73},
                                         {33, 5, 100, 16}, {9, 9, 9, 9},     {257, 1, 40, 130}};
    for (int si = 0; si < N_SHAPES; si++) {
        int G = SHAPES[si].G, hd = SHAPES[si].hd, bs = SHAPES[si].bs;
        int nmax = 257;
        Kinds kc;
        kinds_make(&kc, &r, bs, hd, nmax);
        bool q8ok = kc.q8ok;
        int R = 1 + si % OPS_ATTN_MAX_ROWS;
        size_t ldq = (size_t)G * hd + 3;
        float *q = malloc(OPS_ATTN_MAX_ROWS * ldq * sizeof(float));
        for (size_t i = 0; i < OPS_ATTN_MAX_ROWS * ldq; i++)
            q[i] = rng_normal(&r) * 0.5f;
        float *got = malloc(OPS_ATTN_MAX_ROWS * ldq * sizeof(float));
        float *one = malloc((size_t)G * hd * sizeof(float));
        float *sc = malloc((size_t)OPS_ATTN_MAX_ROWS * G * nmax * sizeof(float));
        float scale = 1.0f / sqrtf((float)hd);
        for (int lvl = SIMD_SCALAR; lvl <= SIMD_AVX512; lvl++) {
            const OpsKernels *K = ops_kernels_at((SimdLevel)lvl);
            for (int kind = OPS_KV_F32; kind <= OPS_KV_Q8_0; kind++) {
                if (kind == OPS_KV_Q8_0 && !q8ok)
                    continue;
                const void *kk, *vv;
                long stride;
                kinds_view(&kc, kind, &kk, &vv, &stride);
                for (size_t ni = 0; ni < sizeof NS / sizeof NS[0]; ni++) {
                    const int *n = NS[ni];
                    memset(got, 0xff, OPS_ATTN_MAX_ROWS * ldq * sizeof(float));
                    K->attn_rows((OpsKvKind)kind, got, q, ldq, R, G, hd, kk, vv, kc.c.table, stride,
                                 bs, n, scale, sc);
                    for (int row = 0; row < R; row++) {
                        const float *qr = q + (size_t)row * ldq;
                        attn_kind(K, kind, one, qr, G, hd, kk, vv, kc.c.table, stride, bs, n[row],
                                  scale, sc);
                        cr_expect(memcmp(one, got + (size_t)row * ldq,
                                         (size_t)G * hd * sizeof(float)) == 0,
                                  "level %d kind %d G %d hd %d bs %d: row %d of %d (n %d) differs "
                                  "from the row alone",
                                  K->level, kind, G, hd, bs, row, R, n[row]);
                    }
                }
            }
        }
        free(q), free(got), free(one), free(sc);
        kinds_free(&kc);
    }
}

/* attn_rows_ext (windows, soft-caps, sinks) and attn_ext, the general
 * kernel, over every cache kind: with no extras the block kernel gives
 * attn_rows' bits; with them each row gives the bits of the row alone, and
 * both kernels agree with attn_ext_ref (double, libm tanh and exp) to 2e-5
 * of the output scale. */
Test(attn_gqa, extras_windows_caps_sinks) {
    Rng r;
    rng_seed(&r, 81);
    const int NS[][OPS_ATTN_MAX_ROWS] = {
        {1, 2, 3, 4}, {70, 71, 72, 73}, {33, 5, 100, 16}, {257, 1, 40, 130}};
    const int WINDOWS[] = {0, 1, 5, 16, 37, 300};
    const float CAPS[] = {0.0f, 1.5f, 50.0f};
    for (int si = 0; si < N_SHAPES; si++) {
        int G = SHAPES[si].G, hd = SHAPES[si].hd, bs = SHAPES[si].bs, nmax = 257;
        Kinds kc;
        kinds_make(&kc, &r, bs, hd, nmax);
        bool q8ok = kc.q8ok;
        int R = 1 + si % OPS_ATTN_MAX_ROWS;
        size_t ldq = (size_t)G * hd + 3;
        float *q = malloc(OPS_ATTN_MAX_ROWS * ldq * sizeof(float));
        for (size_t i = 0; i < OPS_ATTN_MAX_ROWS * ldq; i++)
            q[i] = rng_normal(&r) * 0.7f;
        float sinks[64];
        for (int g = 0; g < G; g++)
            sinks[g] = rng_normal(&r) * 2.0f;
        float *got = malloc(OPS_ATTN_MAX_ROWS * ldq * sizeof(float));
        float *one = malloc(ldq * sizeof(float)), *want = malloc(ldq * sizeof(float));
        float *plain = malloc(OPS_ATTN_MAX_ROWS * ldq * sizeof(float));
        float *sc = malloc((size_t)OPS_ATTN_MAX_ROWS * G * nmax * sizeof(float));
        float *row = malloc(2 * (size_t)hd * sizeof(float));
        float scale = 1.0f / sqrtf((float)hd);
        for (int kind = OPS_KV_F32; kind <= OPS_KV_Q8_0; kind++) {
            if (kind == OPS_KV_Q8_0 && !q8ok)
                continue;
            const void *kk, *vv;
            long stride;
            kinds_view(&kc, kind, &kk, &vv, &stride);
            DType dt = kind == OPS_KV_F32 ? DTYPE_F32 : kind == OPS_KV_F16 ? DTYPE_F16 : DTYPE_Q8_0;
            size_t unit = kind == OPS_KV_F32 ? 4 : kind == OPS_KV_F16 ? 2 : 1;
            AttnExtCache xc = {
                kk, vv, kc.c.table, (size_t)stride * unit, (size_t)dtype_row_bytes(dt, hd), bs, dt};
            for (size_t ni = 0; ni < sizeof NS / sizeof NS[0]; ni++) {
                const int *n = NS[ni];
                for (size_t wi = 0; wi < sizeof WINDOWS / sizeof WINDOWS[0]; wi++)
                    for (size_t ci = 0; ci < sizeof CAPS / sizeof CAPS[0]; ci++)
                        for (int sk = 0; sk < 2; sk++) {
                            int W = WINDOWS[wi], lo[OPS_ATTN_MAX_ROWS];
                            for (int i = 0; i < R; i++)
                                lo[i] = W && n[i] > W ? n[i] - W : 0;
                            OpsAttnExtras x = {lo, CAPS[ci], sk ? sinks : NULL};
                            AttnExtOpts xo = {CAPS[ci], sk ? sinks : NULL};
                            for (int lvl = SIMD_SCALAR; lvl <= SIMD_AVX512; lvl++) {
                                const OpsKernels *K = ops_kernels_at((SimdLevel)lvl);
                                if (!K->attn_rows_ext)
                                    continue;
                                bool took =
                                    K->attn_rows_ext((OpsKvKind)kind, got, q, ldq, R, G, hd, kk, vv,
                                                     kc.c.table, stride, bs, n, &x, scale, sc);
                                if (!took)
                                    continue;
                                if (!W && !CAPS[ci] && !sk) {
                                    K->attn_rows((OpsKvKind)kind, plain, q, ldq, R, G, hd, kk, vv,
                                                 kc.c.table, stride, bs, n, scale, sc);
                                    for (int i = 0; i < R; i++)
                                        cr_expect(memcmp(plain + i * ldq, got + i * ldq,
                                                         (size_t)G * hd * sizeof(float)) == 0,
                                                  "no extras: attn_rows' bits (kind %d G %d hd %d)",
                                                  kind, G, hd);
                                }
                                for (int i = 0; i < R; i++) {
                                    OpsAttnExtras x1 = {lo + i, CAPS[ci], x.sinks};
                                    cr_assert(K->attn_rows_ext((OpsKvKind)kind, one, q + i * ldq,
                                                               ldq, 1, G, hd, kk, vv, kc.c.table,
                                                               stride, bs, n + i, &x1, scale, sc));
                                    cr_expect(memcmp(one, got + i * ldq,
                                                     (size_t)G * hd * sizeof(float)) == 0,
                                              "kind %d G %d hd %d bs %d W %d cap %g sinks %d: row "
                                              "%d of %d differs from the row alone",
                                              kind, G, hd, bs, W, (double)CAPS[ci], sk, i, R);
                                }
                            }
                            for (int i = 0; i < R; i++) {
                                attn_ext_ref(want, q + i * ldq, G, hd, &xc, lo[i], n[i], scale,
                                             &xo);
                                attn_ext(one, q + i * ldq, G, hd, &xc, lo[i], n[i], scale, &xo, sc,
                                         row);
                                float big = 0.0f, e1 = 0.0f, e2 = 0.0f;
                                for (int j = 0; j < G * hd; j++) {
                                    big = fmaxf(big, fabsf(want[j]));
                                    e1 = fmaxf(e1, fabsf(one[j] - want[j]));
                                    if (ops_kernels()->attn_rows_ext && hd % 8 == 0 && hd <= 256)
                                        e2 = fmaxf(e2, fabsf(got[i * ldq + j] - want[j]));
                                }
                                cr_expect(e1 <= 2e-5f * fmaxf(big, 1.0f) &&
                                              e2 <= 2e-5f * fmaxf(big, 1.0f),
                                          "kind %d G %d hd %d W %d cap %g sinks %d row %d: "
                                          "attn_ext err %g, block err %g (scale %g)",
                                          kind, G, hd, W, (double)CAPS[ci], sk, i, (double)e1,
                                          (double)e2, (double)big);
                            }
                        }
            }
        }
        free(q), free(got), free(one), free(want), free(plain), free(sc), free(row);
        kinds_free(&kc);
    }
}
