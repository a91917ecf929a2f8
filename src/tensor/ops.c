/* ops.c - row kernels (norms, rope, softmax, activations) and the F32
 * dot/axpy used by attention and the F32 matmul.
 *
 * The SIMD variants live in GCC target regions (no -march flags) and are
 * picked at run time. Reductions keep a fixed lane/accumulator structure so
 * a result never depends on where a row sits in a batch. No fast-math: the
 * naive twins at the bottom define the meaning. */
#include "tensor/ops.h"

#include <math.h>
#include <pthread.h>
#include <stddef.h>

#include "core/err.h"

#if defined(__x86_64__)
#include "core/simd.h"
#include <immintrin.h>
#define OPS_X86 1
#else
#define OPS_X86 0
#endif

/* ---------------------------------------------------------------- scalar */

/* Eight independent accumulators so gcc can vectorise without reassociating
 * across them; the final fold order is fixed. */
static float dot_scalar(int n, const float *a, const float *b) {
    float acc[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++)
            acc[j] += a[i + j] * b[i + j];
    float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (; i < n; i++)
        s += a[i] * b[i];
    return s;
}

static void axpy_scalar(int n, float *y, float a, const float *x) {
    for (int i = 0; i < n; i++)
        y[i] += a * x[i];
}

/* ------------------------------------------------------------------ AVX2 */
#if OPS_X86
SIMD_BEGIN_AVX2

static const int32_t AVX2_TAIL_MASK[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};

static float dot_avx2(int n, const float *a, const float *b) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    __m256 s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
        s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), s2);
        s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), s3);
    }
    for (; i + 8 <= n; i += 8)
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    if (i < n) {
        __m256i m = _mm256_loadu_si256((const __m256i *)(AVX2_TAIL_MASK + 8 - (n - i)));
        s1 = _mm256_fmadd_ps(_mm256_maskload_ps(a + i, m), _mm256_maskload_ps(b + i, m), s1);
    }
    __m256 s = _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3));
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_movehdup_ps(h));
    return _mm_cvtss_f32(h);
}

static void axpy_avx2(int n, float *y, float a, const float *x) {
    __m256 va = _mm256_set1_ps(a);
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i,
                         _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++)
        y[i] = fmaf(a, x[i], y[i]);
}

SIMD_END

/* --------------------------------------------------------------- AVX-512 */
SIMD_BEGIN_AVX512

static float dot_avx512(int n, const float *a, const float *b) {
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    __m512 s2 = _mm512_setzero_ps(), s3 = _mm512_setzero_ps();
    int i = 0;
    for (; i + 64 <= n; i += 64) {
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
        s2 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 32), _mm512_loadu_ps(b + i + 32), s2);
        s3 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 48), _mm512_loadu_ps(b + i + 48), s3);
    }
    for (; i + 16 <= n; i += 16)
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        s1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), s1);
    }
    __m512 s = _mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3));
    __m256 h8 = _mm256_add_ps(_mm512_castps512_ps256(s),
                              _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(s), 1)));
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(h8), _mm256_extractf128_ps(h8, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_movehdup_ps(h));
    return _mm_cvtss_f32(h);
}

static void axpy_avx512(int n, float *y, float a, const float *x) {
    __m512 va = _mm512_set1_ps(a);
    int i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(y + i,
                         _mm512_fmadd_ps(va, _mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i)));
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(
            y + i, m,
            _mm512_fmadd_ps(va, _mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, y + i)));
    }
}

SIMD_END
#endif /* OPS_X86 */

/* -------------------------------------------------------------- dispatch */

static OpsKernels KERNELS[SIMD_AVX512 + 1];
static SimdLevel BEST;
static pthread_once_t ONCE = PTHREAD_ONCE_INIT;

static void ops_build(void) {
    for (int l = SIMD_SCALAR; l <= SIMD_AVX512; l++)
        KERNELS[l] = (OpsKernels){SIMD_SCALAR, dot_scalar, axpy_scalar};
    BEST = cpu_simd_level();
#if OPS_X86
    /* Filled for every level; ops_kernels_at() caps a request at what the
     * hardware runs, BEST also honours CGPT_SIMD. */
    KERNELS[SIMD_AVX2] = (OpsKernels){SIMD_AVX2, dot_avx2, axpy_avx2};
    KERNELS[SIMD_AVX512] = (OpsKernels){SIMD_AVX512, dot_avx512, axpy_avx512};
#endif
}

static SimdLevel hw_level(void) {
    /* The hardware maximum, ignoring CGPT_SIMD (which only caps BEST). */
    __builtin_cpu_init();
#if OPS_X86
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("fma"))
        return SIMD_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return SIMD_AVX2;
#endif
    return SIMD_SCALAR;
}

const OpsKernels *ops_kernels(void) {
    pthread_once(&ONCE, ops_build);
    return &KERNELS[BEST];
}

const OpsKernels *ops_kernels_at(SimdLevel level) {
    pthread_once(&ONCE, ops_build);
    SimdLevel hw = hw_level();
    if (level > hw)
        level = hw;
    if (level < SIMD_SCALAR)
        level = SIMD_SCALAR;
    return &KERNELS[level];
}

/* ------------------------------------------------------------ row kernels */

void rmsnorm_forward(float *out, const float *x, const float *w, int n, float eps) {
    float ss = ops_kernels()->dot(n, x, x);
    float scale = 1.0f / sqrtf(ss / (float)n + eps);
    for (int i = 0; i < n; i++)
        out[i] = x[i] * scale * w[i];
}

void layernorm_forward(float *out, const float *x, const float *w, const float *b, int n,
                       float eps) {
    float acc[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++)
            acc[j] += x[i + j];
    float sum = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (; i < n; i++)
        sum += x[i];
    float mean = sum / (float)n;
    float vacc[8] = {0};
    i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) {
            float d = x[i + j] - mean;
            vacc[j] += d * d;
        }
    float var =
        ((vacc[0] + vacc[4]) + (vacc[1] + vacc[5])) + ((vacc[2] + vacc[6]) + (vacc[3] + vacc[7]));
    for (; i < n; i++)
        var += (x[i] - mean) * (x[i] - mean);
    float scale = 1.0f / sqrtf(var / (float)n + eps);
    if (b) {
        for (i = 0; i < n; i++)
            out[i] = (x[i] - mean) * scale * w[i] + b[i];
    } else {
        for (i = 0; i < n; i++)
            out[i] = (x[i] - mean) * scale * w[i];
    }
}

void rope_cache(float *cs, int pos, int n_rot, float base, float freq_scale,
                const float *freq_factors) {
    ASSERT(n_rot % 2 == 0 && n_rot <= OPS_MAX_ROT);
    for (int i = 0; i < n_rot / 2; i++) {
        double theta = (double)pos * (double)freq_scale * pow((double)base, -2.0 * i / n_rot);
        if (freq_factors)
            theta /= (double)freq_factors[i];
        cs[2 * i] = (float)cos(theta);
        cs[2 * i + 1] = (float)sin(theta);
    }
}

void rope_forward(float *x, const float *cs, int n_heads, int head_dim, int n_rot, RopeType type) {
    if (type == ROPE_NONE)
        return;
    int half = n_rot / 2;
    for (int h = 0; h < n_heads; h++) {
        float *v = x + (size_t)h * head_dim;
        if (type == ROPE_NORM) {
            for (int i = 0; i < half; i++) {
                float c = cs[2 * i], s = cs[2 * i + 1];
                float a = v[2 * i], b = v[2 * i + 1];
                v[2 * i] = a * c - b * s;
                v[2 * i + 1] = a * s + b * c;
            }
        } else {
            for (int i = 0; i < half; i++) {
                float c = cs[2 * i], s = cs[2 * i + 1];
                float a = v[i], b = v[i + half];
                v[i] = a * c - b * s;
                v[i + half] = a * s + b * c;
            }
        }
    }
}

void softmax_forward(float *x, int n) {
    float mx = -INFINITY;
    for (int i = 0; i < n; i++)
        mx = x[i] > mx ? x[i] : mx;
    if (mx == -INFINITY) {
        for (int i = 0; i < n; i++)
            x[i] = 0.0f;
        return;
    }
    float sum = 0.0f;
    for (int i = 0; i < n; i++) {
        float e = expf(x[i] - mx);
        x[i] = e;
        sum += e;
    }
    float inv = 1.0f / sum;
    for (int i = 0; i < n; i++)
        x[i] *= inv;
}

void swiglu_forward(float *out, const float *gate, const float *up, int n) {
    for (int i = 0; i < n; i++) {
        float g = gate[i];
        out[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

#define GELU_COEF_A 0.044715f
#define SQRT_2_OVER_PI 0.79788456080286535587989211986876f

void gelu_forward(float *out, const float *x, int n) {
    for (int i = 0; i < n; i++) {
        float v = x[i];
        out[i] = 0.5f * v * (1.0f + tanhf(SQRT_2_OVER_PI * v * (1.0f + GELU_COEF_A * v * v)));
    }
}

void add_forward(float *out, const float *a, const float *b, int n) {
    for (int i = 0; i < n; i++)
        out[i] = a[i] + b[i];
}

/* ---------------------------------------------------------- naive twins */

float dot_ref(int n, const float *a, const float *b) {
    double s = 0;
    for (int i = 0; i < n; i++)
        s += (double)a[i] * (double)b[i];
    return (float)s;
}

void rmsnorm_ref(float *out, const float *x, const float *w, int n, float eps) {
    double ss = 0;
    for (int i = 0; i < n; i++)
        ss += (double)x[i] * x[i];
    double scale = 1.0 / sqrt(ss / n + (double)eps);
    for (int i = 0; i < n; i++)
        out[i] = (float)(x[i] * scale * w[i]);
}

void layernorm_ref(float *out, const float *x, const float *w, const float *b, int n, float eps) {
    double mean = 0, var = 0;
    for (int i = 0; i < n; i++)
        mean += x[i];
    mean /= n;
    for (int i = 0; i < n; i++)
        var += (x[i] - mean) * (x[i] - mean);
    var /= n;
    double scale = 1.0 / sqrt(var + (double)eps);
    for (int i = 0; i < n; i++)
        out[i] = (float)((x[i] - mean) * scale * w[i] + (b ? b[i] : 0.0));
}

void rope_ref(float *x, int pos, int n_heads, int head_dim, int n_rot, float base, float freq_scale,
              const float *freq_factors, RopeType type) {
    if (type == ROPE_NONE)
        return;
    int half = n_rot / 2;
    for (int h = 0; h < n_heads; h++) {
        float *v = x + (size_t)h * head_dim;
        for (int i = 0; i < half; i++) {
            double theta = pos * (double)freq_scale * pow((double)base, -2.0 * i / n_rot);
            if (freq_factors)
                theta /= freq_factors[i];
            double c = cos(theta), s = sin(theta);
            int i0 = type == ROPE_NORM ? 2 * i : i;
            int i1 = type == ROPE_NORM ? 2 * i + 1 : i + half;
            double a = v[i0], b = v[i1];
            v[i0] = (float)(a * c - b * s);
            v[i1] = (float)(a * s + b * c);
        }
    }
}

void softmax_ref(float *x, int n) {
    double mx = -INFINITY;
    for (int i = 0; i < n; i++)
        if (x[i] > mx)
            mx = x[i];
    if (mx == -INFINITY) {
        for (int i = 0; i < n; i++)
            x[i] = 0.0f;
        return;
    }
    double sum = 0;
    for (int i = 0; i < n; i++)
        sum += exp(x[i] - mx);
    for (int i = 0; i < n; i++)
        x[i] = (float)(exp(x[i] - mx) / sum);
}

void swiglu_ref(float *out, const float *gate, const float *up, int n) {
    for (int i = 0; i < n; i++) {
        double g = gate[i];
        out[i] = (float)(g / (1.0 + exp(-g)) * up[i]);
    }
}

void gelu_ref(float *out, const float *x, int n) {
    for (int i = 0; i < n; i++) {
        double v = x[i];
        out[i] = (float)(0.5 * v * (1.0 + tanh(sqrt(2.0 / M_PI) * (v + 0.044715 * v * v * v))));
    }
}

void add_ref(float *out, const float *a, const float *b, int n) {
    for (int i = 0; i < n; i++)
        out[i] = (float)((double)a[i] + (double)b[i]);
}
