/* tkern_impl.h - the kernels of tkern.h written once over a real type.
 * Included only by tkern.c, once per (type, SIMD level), with:
 *   R              the real type (float or double)
 *   RS(name)       'name' with this instantiation's suffix (static names)
 *   TK_OPS_TYPE    TKOpsF or TKOpsD
 *   TK_OPS_LABEL   the table's name ("float-avx512", ...)
 *   TK_FMA(a,b,c)  a*b+c (a fused multiply-add where the level has one)
 *   TK_EXP, TK_LOG, TK_SQRT   exp/log/sqrt of R
 *   TK_GEMM        cblas_sgemm or cblas_dgemm
 * optionally, to put an instantiation's own kernels in its table
 *   TK_MATMUL_FORWARD / TK_MATMUL_BACKWARD, TK_ATTENTION_FORWARD /
 *   TK_ATTENTION_BACKWARD (declared before the include; the attention ones
 *   take RS(AttnCtx), defined here),
 * and, for the one instantiation per type that also defines the network,
 *   TK_NET_TYPE, TK_PUB(name) (public suffix).
 *
 * Loops are written for the auto-vectoriser: the innermost loop walks
 * contiguous memory with no reduction in it; reductions use TK_LANES
 * lanes of partial sums folded in a fixed order. No fast-math. */

#define TK_LANES 16

/* Sum of x[0..n) in TK_LANES partial sums, folded pairwise. */
static inline R RS(sum_row)(const R *restrict x, int n) {
    R acc[TK_LANES] = {0};
    int i = 0;
    for (; i + TK_LANES <= n; i += TK_LANES)
        for (int j = 0; j < TK_LANES; j++)
            acc[j] += x[i + j];
    for (int w = TK_LANES / 2; w > 0; w /= 2)
        for (int j = 0; j < w; j++)
            acc[j] += acc[j + w];
    R s = acc[0];
    for (; i < n; i++)
        s += x[i];
    return s;
}

/* Sum of a[i] * b[i]. */
static inline R RS(dot_row)(const R *restrict a, const R *restrict b, int n) {
    R acc[TK_LANES] = {0};
    int i = 0;
    for (; i + TK_LANES <= n; i += TK_LANES)
        for (int j = 0; j < TK_LANES; j++)
            acc[j] = TK_FMA(a[i + j], b[i + j], acc[j]);
    for (int w = TK_LANES / 2; w > 0; w /= 2)
        for (int j = 0; j < w; j++)
            acc[j] += acc[j + w];
    R s = acc[0];
    for (; i < n; i++)
        s = TK_FMA(a[i], b[i], s);
    return s;
}

static inline R RS(max_row)(const R *restrict x, int n) {
    R acc[TK_LANES];
    int i = 0;
    if (n >= TK_LANES) {
        for (int j = 0; j < TK_LANES; j++)
            acc[j] = x[j];
        for (i = TK_LANES; i + TK_LANES <= n; i += TK_LANES)
            for (int j = 0; j < TK_LANES; j++)
                acc[j] = x[i + j] > acc[j] ? x[i + j] : acc[j];
        for (int w = TK_LANES / 2; w > 0; w /= 2)
            for (int j = 0; j < w; j++)
                acc[j] = acc[j + w] > acc[j] ? acc[j + w] : acc[j];
    } else {
        acc[0] = x[0];
        i = 1;
    }
    R m = acc[0];
    for (; i < n; i++)
        m = x[i] > m ? x[i] : m;
    return m;
}

/* x[i] = exp(x[i] - mx); returns the sum. */
static inline R RS(exp_sum_row)(R *restrict x, int n, R mx) {
    for (int i = 0; i < n; i++)
        x[i] = TK_EXP(x[i] - mx);
    return RS(sum_row)(x, n);
}

/* ---------------------------------------------------------------- embedding */

typedef struct {
    R *out;
    const R *dout;
    const int32_t *tokens;
    const R *wte;
    long N;
    int C, V;
} RS(EmbedCtx);

static void RS(embed_fwd_task)(void *vctx, int ith, int nth) {
    RS(EmbedCtx) *a = vctx;
    long lo, hi;
    tpool_range(a->N, ith, nth, &lo, &hi);
    for (long n = lo; n < hi; n++) {
        int32_t tok = a->tokens[n];
        ASSERT(tok >= 0 && tok < a->V);
        memcpy(a->out + (size_t)n * a->C, a->wte + (size_t)tok * a->C, (size_t)a->C * sizeof(R));
    }
}

static void RS(embed_forward)(TPool *tp, R *out, const int32_t *tokens, const R *wte, long N, int C,
                              int V) {
    RS(EmbedCtx) a = {.out = out, .tokens = tokens, .wte = wte, .N = N, .C = C, .V = V};
    tpool_run(tp, RS(embed_fwd_task), &a);
}

/* Thread ith owns vocab ids [lo, hi) and adds its rows in row order. */
static void RS(embed_bwd_task)(void *vctx, int ith, int nth) {
    RS(EmbedCtx) *a = vctx;
    long lo, hi;
    tpool_range(a->V, ith, nth, &lo, &hi);
    for (long n = 0; n < a->N; n++) {
        int32_t tok = a->tokens[n];
        if (tok < lo || tok >= hi)
            continue;
        R *restrict d = a->out + (size_t)tok * a->C;
        const R *restrict s = a->dout + (size_t)n * a->C;
        for (int c = 0; c < a->C; c++)
            d[c] += s[c];
    }
}

static void RS(embed_backward)(TPool *tp, R *dwte, const R *dout, const int32_t *tokens, long N,
                               int C, int V) {
    RS(EmbedCtx) a = {.out = dwte, .dout = dout, .tokens = tokens, .N = N, .C = C, .V = V};
    tpool_run(tp, RS(embed_bwd_task), &a);
}

/* ------------------------------------------------------------------ rmsnorm */

typedef struct {
    R *out, *rstd, *dx, *dw;
    const R *x, *w, *dout, *rstd_in;
    long N;
    int C;
    float eps;
} RS(NormCtx);

static void RS(rmsnorm_fwd_task)(void *vctx, int ith, int nth) {
    RS(NormCtx) *a = vctx;
    int C = a->C;
    long lo, hi;
    tpool_range(a->N, ith, nth, &lo, &hi);
    for (long n = lo; n < hi; n++) {
        const R *restrict x = a->x + (size_t)n * C;
        R *restrict o = a->out + (size_t)n * C;
        const R *restrict w = a->w;
        R ss = RS(dot_row)(x, x, C);
        R r = (R)1 / TK_SQRT(ss / (R)C + (R)a->eps);
        a->rstd[n] = r;
        for (int c = 0; c < C; c++)
            o[c] = x[c] * r * w[c];
    }
}

static void RS(rmsnorm_forward)(TPool *tp, R *out, R *rstd, const R *x, const R *w, long N, int C,
                                float eps) {
    RS(NormCtx) a = {.out = out, .rstd = rstd, .x = x, .w = w, .N = N, .C = C, .eps = eps};
    tpool_run(tp, RS(rmsnorm_fwd_task), &a);
}

/* dx += rstd * (g - xhat * mean(g * xhat)), g = dout * w, xhat = x * rstd. */
static void RS(rmsnorm_bwd_dx_task)(void *vctx, int ith, int nth) {
    RS(NormCtx) *a = vctx;
    int C = a->C;
    long lo, hi;
    tpool_range(a->N, ith, nth, &lo, &hi);
    for (long n = lo; n < hi; n++) {
        const R *restrict x = a->x + (size_t)n * C;
        const R *restrict dout = a->dout + (size_t)n * C;
        const R *restrict w = a->w;
        R *restrict dx = a->dx + (size_t)n * C;
        R r = a->rstd_in[n];
        R acc[TK_LANES] = {0};
        int c = 0;
        for (; c + TK_LANES <= C; c += TK_LANES)
            for (int j = 0; j < TK_LANES; j++)
                acc[j] = TK_FMA(dout[c + j] * w[c + j], x[c + j], acc[j]);
        for (int k = TK_LANES / 2; k > 0; k /= 2)
            for (int j = 0; j < k; j++)
                acc[j] += acc[j + k];
        R gx = acc[0];
        for (; c < C; c++)
            gx = TK_FMA(dout[c] * w[c], x[c], gx);
        /* mean(g * xhat) * rstd = gx * r^2 / C */
        R m = gx * r * r / (R)C;
        for (c = 0; c < C; c++)
            dx[c] += r * (dout[c] * w[c] - x[c] * m);
    }
}

/* dw[c] += sum_n dout[n][c] * x[n][c] * rstd[n]: threads split columns, so
 * every sum runs over n in order whatever the thread count. */
static void RS(rmsnorm_bwd_dw_task)(void *vctx, int ith, int nth) {
    RS(NormCtx) *a = vctx;
    int C = a->C;
    long lo, hi;
    tpool_range(C, ith, nth, &lo, &hi);
    R *restrict dw = a->dw;
    for (long n = 0; n < a->N; n++) {
        const R *restrict x = a->x + (size_t)n * C;
        const R *restrict dout = a->dout + (size_t)n * C;
        R r = a->rstd_in[n];
        for (long c = lo; c < hi; c++)
            dw[c] = TK_FMA(dout[c], x[c] * r, dw[c]);
    }
}

static void RS(rmsnorm_backward)(TPool *tp, R *dx, R *dw, const R *dout, const R *x, const R *w,
                                 const R *rstd, long N, int C) {
    RS(NormCtx)
    a = {.dx = dx, .dw = dw, .x = x, .w = w, .dout = dout, .rstd_in = rstd, .N = N, .C = C};
    tpool_run(tp, RS(rmsnorm_bwd_dx_task), &a);
    tpool_run(tp, RS(rmsnorm_bwd_dw_task), &a);
}

/* ------------------------------------------------------------------- matmul */

#ifndef TK_MATMUL_FORWARD
static void RS(matmul_forward)(TPool *tp, R *ws, R *out, const R *inp, const R *w, long N, int n_in,
                               int n_out, bool accumulate) {
    (void)tp, (void)ws;
    TK_GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, (int)N, n_out, n_in, (R)1, inp, n_in, w, n_in,
            accumulate ? (R)1 : (R)0, out, n_out);
}

static void RS(matmul_backward)(TPool *tp, R *ws, R *dinp, R *dw, const R *dout, const R *inp,
                                const R *w, long N, int n_in, int n_out, R alpha, bool accumulate) {
    (void)tp, (void)ws;
    if (dinp)
        TK_GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)N, n_in, n_out, alpha, dout, n_out,
                w, n_in, accumulate ? (R)1 : (R)0, dinp, n_in);
    TK_GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, n_out, n_in, (int)N, alpha, dout, n_out, inp,
            n_in, (R)1, dw, n_in);
}
#endif

/* --------------------------------------------------------------------- rope */

typedef struct {
    R *x;
    const R *cs;
    int B, T, n_heads, HS, ld;
    bool inverse;
} RS(RopeCtx);

static void RS(rope_task)(void *vctx, int ith, int nth) {
    RS(RopeCtx) *a = vctx;
    int half = a->HS / 2;
    long lo, hi;
    tpool_range((long)a->B * a->T, ith, nth, &lo, &hi);
    for (long n = lo; n < hi; n++) {
        const R *restrict cs = a->cs + (size_t)(n % a->T) * a->HS;
        for (int h = 0; h < a->n_heads; h++) {
            R *restrict v = a->x + (size_t)n * a->ld + (size_t)h * a->HS;
            if (!a->inverse) {
                for (int i = 0; i < half; i++) {
                    R c = cs[2 * i], s = cs[2 * i + 1];
                    R p = v[2 * i], q = v[2 * i + 1];
                    v[2 * i] = p * c - q * s;
                    v[2 * i + 1] = p * s + q * c;
                }
            } else {
                for (int i = 0; i < half; i++) {
                    R c = cs[2 * i], s = cs[2 * i + 1];
                    R p = v[2 * i], q = v[2 * i + 1];
                    v[2 * i] = p * c + q * s;
                    v[2 * i + 1] = q * c - p * s;
                }
            }
        }
    }
}

static void RS(rope_forward)(TPool *tp, R *x, const R *cs, int B, int T, int n_heads, int HS,
                             int ld) {
    RS(RopeCtx) a = {x, cs, B, T, n_heads, HS, ld, false};
    tpool_run(tp, RS(rope_task), &a);
}

static void RS(rope_backward)(TPool *tp, R *dx, const R *cs, int B, int T, int n_heads, int HS,
                              int ld) {
    RS(RopeCtx) a = {dx, cs, B, T, n_heads, HS, ld, true};
    tpool_run(tp, RS(rope_task), &a);
}

/* ---------------------------------------------------------------- attention */

typedef struct {
    R *y, *lse, *dqkv, *scratch;
    const R *qkv, *dy, *lse_in;
    int B, T, NH, NKV, HS;
} RS(AttnCtx);

/* The generic attention; an instantiation may bring its own
 * (TK_ATTENTION_FORWARD / TK_ATTENTION_BACKWARD, over the same context). */
#ifndef TK_ATTENTION_FORWARD
/* dst (HS, T) = src rows (T, HS) at stride ld, transposed: the inner loops
 * below then run over keys, contiguous. */
static void RS(transpose)(R *restrict dst, const R *restrict src, long ld, int T, int HS) {
    for (int j = 0; j < T; j++)
        for (int d = 0; d < HS; d++)
            dst[(size_t)d * T + j] = src[(size_t)j * ld + d];
}

/* s[j] = q . k_j * scale for keys j < n (kt: keys transposed, row stride T). */
static inline void RS(scores)(R *restrict s, const R *restrict q, const R *restrict kt, int T,
                              int HS, int n, R scale) {
    for (int j = 0; j < n; j++)
        s[j] = 0;
    for (int d = 0; d < HS; d++) {
        R qd = q[d];
        const R *restrict kd = kt + (size_t)d * T;
        for (int j = 0; j < n; j++)
            s[j] = TK_FMA(qd, kd[j], s[j]);
    }
    for (int j = 0; j < n; j++)
        s[j] *= scale;
}

/* Task (b, h), query t: scores against keys 0..t, softmax (lse keeps
 * max + log(sum)), y[t] = sum_j p[j] v[j]. */
static void RS(attn_fwd_task)(void *vctx, int ith, int nth) {
    RS(AttnCtx) *a = vctx;
    int T = a->T, NH = a->NH, HS = a->HS, QD = NH * HS, KD = a->NKV * HS, W = QD + 2 * KD;
    int G = NH / a->NKV;
    R scale = (R)1 / TK_SQRT((R)HS);
    R *restrict kt = a->scratch + (size_t)ith * tk_attention_scratch(T, HS);
    R *restrict s = kt + (size_t)HS * T;
    long lo, hi;
    tpool_range((long)a->B * NH, ith, nth, &lo, &hi);
    for (long it = lo; it < hi; it++) {
        int b = (int)(it / NH), h = (int)(it % NH), kvh = h / G;
        const R *base = a->qkv + (size_t)b * T * W;
        RS(transpose)(kt, base + QD + (size_t)kvh * HS, W, T, HS);
        for (int t = 0; t < T; t++) {
            int n = t + 1;
            RS(scores)(s, base + (size_t)t * W + (size_t)h * HS, kt, T, HS, n, scale);
            R mx = RS(max_row)(s, n);
            R sum = RS(exp_sum_row)(s, n, mx);
            a->lse[((size_t)b * NH + h) * T + t] = mx + TK_LOG(sum);
            R inv = (R)1 / sum;
            R *restrict y = a->y + ((size_t)b * T + t) * QD + (size_t)h * HS;
            for (int d = 0; d < HS; d++)
                y[d] = 0;
            for (int j = 0; j < n; j++) {
                R p = s[j] * inv;
                const R *restrict v = base + (size_t)j * W + QD + KD + (size_t)kvh * HS;
                for (int d = 0; d < HS; d++)
                    y[d] = TK_FMA(p, v[d], y[d]);
            }
        }
    }
}

static void RS(attention_forward)(TPool *tp, R *y, R *lse, const R *qkv, R *scratch, int B, int T,
                                  int NH, int NKV, int HS) {
    RS(AttnCtx)
    a = {.y = y,
         .lse = lse,
         .qkv = qkv,
         .scratch = scratch,
         .B = B,
         .T = T,
         .NH = NH,
         .NKV = NKV,
         .HS = HS};
    tpool_run(tp, RS(attn_fwd_task), &a);
}

/* Task (b, kv head): every query head of the group in turn, so the task
 * alone writes that kv head's dk and dv (no two threads add to one
 * element). Per query t: p = exp(scores - lse) (recomputed, not stored),
 * dp[j] = dy[t] . v[j], ds = p * (dp - p.dp) / sqrt(HS), then
 * dq[t] += ds k, dk[j] += ds[j] q[t], dv[j] += p[j] dy[t]. */
static void RS(attn_bwd_task)(void *vctx, int ith, int nth) {
    RS(AttnCtx) *a = vctx;
    int T = a->T, NH = a->NH, HS = a->HS, QD = NH * HS, KD = a->NKV * HS, W = QD + 2 * KD;
    int G = NH / a->NKV;
    R scale = (R)1 / TK_SQRT((R)HS);
    R *restrict kt = a->scratch + (size_t)ith * tk_attention_scratch(T, HS);
    R *restrict vt = kt + (size_t)HS * T;
    R *restrict p = vt + (size_t)HS * T;
    R *restrict dp = p + T;
    long lo, hi;
    tpool_range((long)a->B * a->NKV, ith, nth, &lo, &hi);
    for (long it = lo; it < hi; it++) {
        int b = (int)(it / a->NKV), kvh = (int)(it % a->NKV);
        const R *base = a->qkv + (size_t)b * T * W;
        R *dbase = a->dqkv + (size_t)b * T * W;
        RS(transpose)(kt, base + QD + (size_t)kvh * HS, W, T, HS);
        RS(transpose)(vt, base + QD + KD + (size_t)kvh * HS, W, T, HS);
        for (int h = kvh * G; h < (kvh + 1) * G; h++) {
            for (int t = 0; t < T; t++) {
                int n = t + 1;
                const R *restrict q = base + (size_t)t * W + (size_t)h * HS;
                const R *restrict dy = a->dy + ((size_t)b * T + t) * QD + (size_t)h * HS;
                RS(scores)(p, q, kt, T, HS, n, scale);
                R lse = a->lse_in[((size_t)b * NH + h) * T + t];
                for (int j = 0; j < n; j++)
                    p[j] = TK_EXP(p[j] - lse);
                for (int j = 0; j < n; j++)
                    dp[j] = 0;
                for (int d = 0; d < HS; d++) {
                    R g = dy[d];
                    const R *restrict vd = vt + (size_t)d * T;
                    for (int j = 0; j < n; j++)
                        dp[j] = TK_FMA(g, vd[j], dp[j]);
                }
                R pdp = RS(dot_row)(p, dp, n);
                for (int j = 0; j < n; j++)
                    dp[j] = p[j] * (dp[j] - pdp) * scale;
                R *restrict dq = dbase + (size_t)t * W + (size_t)h * HS;
                for (int j = 0; j < n; j++) {
                    R ds = dp[j], pj = p[j];
                    const R *restrict k = base + (size_t)j * W + QD + (size_t)kvh * HS;
                    R *restrict dk = dbase + (size_t)j * W + QD + (size_t)kvh * HS;
                    R *restrict dv = dk + KD;
                    for (int d = 0; d < HS; d++) {
                        dq[d] = TK_FMA(ds, k[d], dq[d]);
                        dk[d] = TK_FMA(ds, q[d], dk[d]);
                        dv[d] = TK_FMA(pj, dy[d], dv[d]);
                    }
                }
            }
        }
    }
}

static void RS(attention_backward)(TPool *tp, R *dqkv, const R *dy, const R *lse, const R *qkv,
                                   R *scratch, int B, int T, int NH, int NKV, int HS) {
    RS(AttnCtx)
    a = {.dqkv = dqkv,
         .dy = dy,
         .lse_in = lse,
         .qkv = qkv,
         .scratch = scratch,
         .B = B,
         .T = T,
         .NH = NH,
         .NKV = NKV,
         .HS = HS};
    tpool_run(tp, RS(attn_bwd_task), &a);
}
#endif

/* ------------------------------------------------------------------- swiglu */

typedef struct {
    R *act, *dgu;
    const R *gu, *dact;
    long N;
    int F;
} RS(SwigluCtx);

static void RS(swiglu_fwd_task)(void *vctx, int ith, int nth) {
    RS(SwigluCtx) *a = vctx;
    int F = a->F;
    long lo, hi;
    tpool_range(a->N, ith, nth, &lo, &hi);
    for (long n = lo; n < hi; n++) {
        const R *restrict g = a->gu + (size_t)n * 2 * F;
        const R *restrict u = g + F;
        R *restrict o = a->act + (size_t)n * F;
        for (int i = 0; i < F; i++)
            o[i] = g[i] / ((R)1 + TK_EXP(-g[i])) * u[i];
    }
}

static void RS(swiglu_forward)(TPool *tp, R *act, const R *gu, long N, int F) {
    RS(SwigluCtx) a = {.act = act, .gu = gu, .N = N, .F = F};
    tpool_run(tp, RS(swiglu_fwd_task), &a);
}

/* d gate = dact * up * sig * (1 + gate * (1 - sig)), d up = dact * gate * sig. */
static void RS(swiglu_bwd_task)(void *vctx, int ith, int nth) {
    RS(SwigluCtx) *a = vctx;
    int F = a->F;
    long lo, hi;
    tpool_range(a->N, ith, nth, &lo, &hi);
    for (long n = lo; n < hi; n++) {
        const R *restrict g = a->gu + (size_t)n * 2 * F;
        const R *restrict u = g + F;
        const R *restrict d = a->dact + (size_t)n * F;
        R *restrict dg = a->dgu + (size_t)n * 2 * F;
        R *restrict du = dg + F;
        for (int i = 0; i < F; i++) {
            R sig = (R)1 / ((R)1 + TK_EXP(-g[i]));
            R gs = g[i] * sig;
            dg[i] += d[i] * u[i] * (sig + gs * ((R)1 - sig));
            du[i] += d[i] * gs;
        }
    }
}

static void RS(swiglu_backward)(TPool *tp, R *dgu, const R *dact, const R *gu, long N, int F) {
    RS(SwigluCtx) a = {.dgu = dgu, .dact = dact, .gu = gu, .N = N, .F = F};
    tpool_run(tp, RS(swiglu_bwd_task), &a);
}

/* ------------------------------------------------------------ cross-entropy */

typedef struct {
    double *losses;
    R *g;
    const R *logits;
    const int32_t *targets;
    long N;
    int V;
} RS(CeCtx);

static void RS(ce_task)(void *vctx, int ith, int nth) {
    RS(CeCtx) *a = vctx;
    int V = a->V;
    long lo, hi;
    tpool_range(a->N, ith, nth, &lo, &hi);
    for (long n = lo; n < hi; n++) {
        const R *restrict l = a->logits + (size_t)n * V;
        R *restrict g = a->g + (size_t)n * V;
        int32_t tgt = a->targets[n];
        ASSERT(tgt < V);
        if (tgt < 0) {
            memset(g, 0, (size_t)V * sizeof(R));
            a->losses[n] = 0;
            continue;
        }
        R mx = RS(max_row)(l, V);
        for (int v = 0; v < V; v++)
            g[v] = l[v];
        R sum = RS(exp_sum_row)(g, V, mx);
        R inv = (R)1 / sum;
        for (int v = 0; v < V; v++)
            g[v] *= inv;
        g[tgt] -= (R)1;
        a->losses[n] = (double)mx + log((double)sum) - (double)l[tgt];
    }
}

static void RS(crossentropy_forward)(TPool *tp, double *losses, R *g, const R *logits,
                                     const int32_t *targets, long N, int V) {
    RS(CeCtx) a = {losses, g, logits, targets, N, V};
    tpool_run(tp, RS(ce_task), &a);
}

static const TK_OPS_TYPE RS(tk_ops_table) = {
    .name = TK_OPS_LABEL,
    .embed_forward = RS(embed_forward),
    .embed_backward = RS(embed_backward),
    .rmsnorm_forward = RS(rmsnorm_forward),
    .rmsnorm_backward = RS(rmsnorm_backward),
#ifdef TK_MATMUL_FORWARD
    .matmul_forward = TK_MATMUL_FORWARD,
    .matmul_backward = TK_MATMUL_BACKWARD,
#else
    .matmul_forward = RS(matmul_forward),
    .matmul_backward = RS(matmul_backward),
#endif
    .rope_forward = RS(rope_forward),
    .rope_backward = RS(rope_backward),
#ifdef TK_ATTENTION_FORWARD
    .attention_forward = TK_ATTENTION_FORWARD,
    .attention_backward = TK_ATTENTION_BACKWARD,
#else
    .attention_forward = RS(attention_forward),
    .attention_backward = RS(attention_backward),
#endif
    .swiglu_forward = RS(swiglu_forward),
    .swiglu_backward = RS(swiglu_backward),
    .crossentropy_forward = RS(crossentropy_forward),
};

#undef TK_LANES

/* ------------------------------------------------------------------ network */
#ifdef TK_NET_TYPE

typedef struct {
    R *dst;
    const R *src; /* NULL: zero dst */
    size_t n;
} RS(CopyCtx);

static void RS(copy_task)(void *vctx, int ith, int nth) {
    RS(CopyCtx) *a = vctx;
    long lo, hi;
    tpool_range((long)a->n, ith, nth, &lo, &hi);
    if (a->src)
        memcpy(a->dst + lo, a->src + lo, (size_t)(hi - lo) * sizeof(R));
    else
        memset(a->dst + lo, 0, (size_t)(hi - lo) * sizeof(R));
}

/* dst[0..n) = src (or 0 when src is NULL), on the pool's threads. */
static void RS(copy)(TPool *tp, R *dst, const R *src, size_t n) {
    RS(CopyCtx) a = {dst, src, n};
    tpool_run(tp, RS(copy_task), &a);
}

typedef struct {
    R **ptr;
    uint64_t n; /* elements */
} RS(Buf);

/* Checked n = a * b * c * d. */
static bool RS(mul4)(uint64_t *n, uint64_t a, uint64_t b, uint64_t c, uint64_t d) {
    return mem_mul_ok(a, b, n) && mem_mul_ok(*n, c, n) && mem_mul_ok(*n, d, n);
}

bool TK_PUB(tknet_init)(TK_NET_TYPE *net, const TConfig *cfg, int max_B, TPool *tp,
                        const TK_OPS_TYPE *ops) {
    memset(net, 0, sizeof *net);
    net->cfg = *cfg;
    tk_layout(&net->lo, cfg);
    net->max_B = max_B;
    net->tp = tp;
    net->ops = ops;
    uint64_t L = (uint64_t)cfg->n_layers, C = (uint64_t)cfg->n_embd, V = (uint64_t)cfg->n_vocab;
    uint64_t HS = (uint64_t)cfg->head_dim, QD = (uint64_t)cfg->n_heads * HS;
    uint64_t W = QD + 2 * (uint64_t)cfg->n_kv_heads * HS, F = (uint64_t)cfg->n_ff;
    uint64_t T = (uint64_t)cfg->n_ctx, maxN = (uint64_t)max_B * T;
    uint64_t nth = (uint64_t)tpool_size(tp);
    RS(Buf)
    bufs[] = {
        {&net->res, 0},   {&net->h1, 0},   {&net->h2, 0},      {&net->mid, 0},     {&net->rstd1, 0},
        {&net->rstd2, 0}, {&net->qkv, 0},  {&net->lse, 0},     {&net->y, 0},       {&net->gu, 0},
        {&net->act, 0},   {&net->hf, 0},   {&net->rstdf, 0},   {&net->logits, 0},  {&net->g, 0},
        {&net->cs, 0},    {&net->dx, 0},   {&net->dh, 0},      {&net->dgu, 0},     {&net->dact, 0},
        {&net->dy, 0},    {&net->dqkv, 0}, {&net->scratch, 0}, {&net->gemm_ws, 0},
    };
    bool ok = RS(mul4)(&bufs[0].n, L + 1, maxN, C, 1) && RS(mul4)(&bufs[1].n, L, maxN, C, 1) &&
              RS(mul4)(&bufs[4].n, L, maxN, 1, 1) && RS(mul4)(&bufs[6].n, L, maxN, W, 1) &&
              RS(mul4)(&bufs[7].n, L, (uint64_t)max_B, (uint64_t)cfg->n_heads, T) &&
              RS(mul4)(&bufs[8].n, L, maxN, QD, 1) && RS(mul4)(&bufs[9].n, L, maxN, 2 * F, 1) &&
              RS(mul4)(&bufs[10].n, L, maxN, F, 1) && RS(mul4)(&bufs[11].n, maxN, C, 1, 1) &&
              RS(mul4)(&bufs[13].n, maxN, V, 1, 1) && RS(mul4)(&bufs[15].n, T, HS, 1, 1) &&
              RS(mul4)(&bufs[18].n, maxN, 2 * F, 1, 1) && RS(mul4)(&bufs[21].n, maxN, W, 1, 1) &&
              RS(mul4)(&bufs[22].n, nth, tk_attention_scratch(cfg->n_ctx, cfg->head_dim), 1, 1) &&
              RS(mul4)(&bufs[23].n, nth, tk_matmul_scratch(), 1, 1);
    if (!ok)
        return false;
    bufs[2].n = bufs[3].n = bufs[1].n;
    bufs[5].n = bufs[4].n;
    bufs[12].n = maxN;
    bufs[14].n = bufs[13].n;
    bufs[16].n = bufs[17].n = bufs[11].n;
    bufs[19].n = maxN * F; /* <= bufs[10].n, no overflow */
    bufs[20].n = maxN * QD;
    uint64_t total = 0;
    size_t nb = sizeof bufs / sizeof bufs[0];
    for (size_t i = 0; i < nb; i++) {
        uint64_t n;
        /* every buffer starts on a cache line */
        if (!mem_align_up_ok(bufs[i].n, MEM_ALIGN / sizeof(R), &n) || !mem_add_ok(total, n, &total))
            return false;
    }
    uint64_t bytes;
    if (!mem_mul_ok(total, sizeof(R), &bytes) || bytes > SIZE_MAX)
        return false;
    net->arena = mem_alloc_aligned((size_t)bytes);
    net->losses = malloc((size_t)maxN * sizeof(double));
    net->tokens = malloc((size_t)maxN * sizeof(int32_t));
    net->counted = malloc((size_t)maxN * sizeof(int32_t));
    if (!net->arena || !net->losses || !net->tokens || !net->counted) {
        TK_PUB(tknet_free)(net);
        return false;
    }
    uint64_t off = 0;
    for (size_t i = 0; i < nb; i++) {
        *bufs[i].ptr = net->arena + off;
        uint64_t n = 0;
        mem_align_up_ok(bufs[i].n, MEM_ALIGN / sizeof(R), &n);
        off += n;
    }
    TK_PUB(tk_rope_table)(net->cs, cfg->n_ctx, cfg->head_dim, cfg->rope_base);
    return true;
}

void TK_PUB(tknet_free)(TK_NET_TYPE *net) {
    if (!net)
        return;
    mem_free_aligned(net->arena);
    free(net->losses);
    free(net->tokens);
    free(net->counted);
    memset(net, 0, sizeof *net);
}

#define TK_TIMED(field, stmt)                                                                      \
    do {                                                                                           \
        double t0_ = tk_clock();                                                                   \
        stmt;                                                                                      \
        tk_timing.field += tk_clock() - t0_;                                                       \
    } while (0)

void TK_PUB(tknet_forward)(TK_NET_TYPE *net, const R *params, const int32_t *tokens,
                           const int32_t *targets, int B, int T, double *loss_sum,
                           long *n_targets) {
    const TConfig *c = &net->cfg;
    const TKLayout *lo = &net->lo;
    const TK_OPS_TYPE *k = net->ops;
    TPool *tp = net->tp;
    ASSERT(B >= 1 && B <= net->max_B && T >= 1 && T <= c->n_ctx);
    long N = (long)B * T;
    int C = c->n_embd, V = c->n_vocab, NH = c->n_heads, NKV = c->n_kv_heads, HS = c->head_dim;
    int QD = NH * HS, W = QD + 2 * NKV * HS, F = c->n_ff;
    size_t sN = (size_t)net->max_B * c->n_ctx; /* rows per layer slot */
    memcpy(net->tokens, tokens, (size_t)N * sizeof(int32_t));

    TK_TIMED(elementwise, k->embed_forward(tp, net->res, tokens, params + lo->wte, N, C, V));
    for (int l = 0; l < c->n_layers; l++) {
        const R *P = params + lo->layer0 + (size_t)l * lo->layer_size;
        R *x = net->res + (size_t)l * sN * C, *xn = x + sN * C;
        R *h1 = net->h1 + (size_t)l * sN * C, *h2 = net->h2 + (size_t)l * sN * C;
        R *mid = net->mid + (size_t)l * sN * C;
        R *rstd1 = net->rstd1 + (size_t)l * sN, *rstd2 = net->rstd2 + (size_t)l * sN;
        R *qkv = net->qkv + (size_t)l * sN * W, *y = net->y + (size_t)l * sN * QD;
        R *lse = net->lse + (size_t)l * net->max_B * NH * c->n_ctx;
        R *gu = net->gu + (size_t)l * sN * 2 * F, *act = net->act + (size_t)l * sN * F;

        TK_TIMED(elementwise,
                 k->rmsnorm_forward(tp, h1, rstd1, x, P + lo->attn_norm, N, C, c->norm_eps));
        TK_TIMED(matmul,
                 k->matmul_forward(tp, net->gemm_ws, qkv, h1, P + lo->wqkv, N, C, W, false));
        TK_TIMED(attention, k->rope_forward(tp, qkv, net->cs, B, T, NH + NKV, HS, W));
        TK_TIMED(attention, k->attention_forward(tp, y, lse, qkv, net->scratch, B, T, NH, NKV, HS));
        TK_TIMED(elementwise, RS(copy)(tp, mid, x, (size_t)N * C));
        TK_TIMED(matmul, k->matmul_forward(tp, net->gemm_ws, mid, y, P + lo->wo, N, QD, C, true));
        TK_TIMED(elementwise,
                 k->rmsnorm_forward(tp, h2, rstd2, mid, P + lo->ffn_norm, N, C, c->norm_eps));
        TK_TIMED(matmul,
                 k->matmul_forward(tp, net->gemm_ws, gu, h2, P + lo->wgu, N, C, 2 * F, false));
        TK_TIMED(elementwise, k->swiglu_forward(tp, act, gu, N, F));
        TK_TIMED(elementwise, RS(copy)(tp, xn, mid, (size_t)N * C));
        TK_TIMED(matmul, k->matmul_forward(tp, net->gemm_ws, xn, act, P + lo->wd, N, F, C, true));
    }
    TK_TIMED(elementwise,
             k->rmsnorm_forward(tp, net->hf, net->rstdf, net->res + (size_t)c->n_layers * sN * C,
                                params + lo->out_norm, N, C, c->norm_eps));
    TK_TIMED(matmul, k->matmul_forward(tp, net->gemm_ws, net->logits, net->hf, params + lo->wte, N,
                                       C, V, false));
    TK_TIMED(crossentropy,
             k->crossentropy_forward(tp, net->losses, net->g, net->logits, targets, N, V));
    double sum = 0;
    long cnt = 0;
    for (long n = 0; n < N; n++) {
        if (targets[n] >= 0) {
            sum += net->losses[n];
            net->counted[cnt++] = (int32_t)n;
        }
    }
    /* Rows without a target have g = 0: keep only the counted rows of g,
     * packed, so the backward's two vocabulary-sized matmuls skip them
     * (most rows in chat tuning). Rows move up only: in order is safe. */
    for (long i = 0; i < cnt && cnt < N; i++)
        if (net->counted[i] != i)
            memcpy(net->g + (size_t)i * V, net->g + (size_t)net->counted[i] * V,
                   (size_t)V * sizeof(R));
    net->n_counted = cnt;
    *loss_sum = sum;
    *n_targets = cnt;
    net->B = B;
    net->T = T;
}

void TK_PUB(tknet_backward)(TK_NET_TYPE *net, const R *params, R *grads, R loss_scale) {
    const TConfig *c = &net->cfg;
    const TKLayout *lo = &net->lo;
    const TK_OPS_TYPE *k = net->ops;
    TPool *tp = net->tp;
    int B = net->B, T = net->T;
    ASSERT(B > 0);
    long N = (long)B * T;
    int C = c->n_embd, V = c->n_vocab, NH = c->n_heads, NKV = c->n_kv_heads, HS = c->head_dim;
    int QD = NH * HS, W = QD + 2 * NKV * HS, F = c->n_ff;
    size_t sN = (size_t)net->max_B * c->n_ctx;

    /* logits = hf wte^T, d logits = loss_scale * g; g holds the counted rows */
    long Nc = net->n_counted;
    if (Nc == N) {
        TK_TIMED(matmul, k->matmul_backward(tp, net->gemm_ws, net->dh, grads + lo->wte, net->g,
                                            net->hf, params + lo->wte, N, C, V, loss_scale, false));
    } else if (Nc == 0) {
        TK_TIMED(elementwise, RS(copy)(tp, net->dh, NULL, (size_t)N * C));
    } else {
        /* their hf rows packed into dx (free until the norm below), the
         * product into the first Nc rows of dh, then spread back down with
         * zero rows between (a row only moves down: from the end is safe) */
        R *hfc = net->dx;
        for (long i = 0; i < Nc; i++)
            memcpy(hfc + (size_t)i * C, net->hf + (size_t)net->counted[i] * C,
                   (size_t)C * sizeof(R));
        TK_TIMED(matmul, k->matmul_backward(tp, net->gemm_ws, net->dh, grads + lo->wte, net->g, hfc,
                                            params + lo->wte, Nc, C, V, loss_scale, false));
        long i = Nc - 1;
        for (long r = N - 1; r >= 0; r--) {
            R *d = net->dh + (size_t)r * C;
            if (i >= 0 && net->counted[i] == r) {
                if (i != r)
                    memcpy(d, net->dh + (size_t)i * C, (size_t)C * sizeof(R));
                i--;
            } else {
                memset(d, 0, (size_t)C * sizeof(R));
            }
        }
    }
    TK_TIMED(elementwise, RS(copy)(tp, net->dx, NULL, (size_t)N * C));
    TK_TIMED(elementwise, k->rmsnorm_backward(tp, net->dx, grads + lo->out_norm, net->dh,
                                              net->res + (size_t)c->n_layers * sN * C,
                                              params + lo->out_norm, net->rstdf, N, C));
    for (int l = c->n_layers - 1; l >= 0; l--) {
        const R *P = params + lo->layer0 + (size_t)l * lo->layer_size;
        R *D = grads + lo->layer0 + (size_t)l * lo->layer_size;
        const R *x = net->res + (size_t)l * sN * C;
        const R *h1 = net->h1 + (size_t)l * sN * C, *h2 = net->h2 + (size_t)l * sN * C;
        const R *mid = net->mid + (size_t)l * sN * C;
        const R *rstd1 = net->rstd1 + (size_t)l * sN, *rstd2 = net->rstd2 + (size_t)l * sN;
        const R *qkv = net->qkv + (size_t)l * sN * W, *y = net->y + (size_t)l * sN * QD;
        const R *lse = net->lse + (size_t)l * net->max_B * NH * c->n_ctx;
        const R *gu = net->gu + (size_t)l * sN * 2 * F, *act = net->act + (size_t)l * sN * F;

        /* dx holds d(residual out of this layer) */
        TK_TIMED(matmul, k->matmul_backward(tp, net->gemm_ws, net->dact, D + lo->wd, net->dx, act,
                                            P + lo->wd, N, F, C, (R)1, false));
        TK_TIMED(elementwise, RS(copy)(tp, net->dgu, NULL, (size_t)N * 2 * F));
        TK_TIMED(elementwise, k->swiglu_backward(tp, net->dgu, net->dact, gu, N, F));
        TK_TIMED(matmul, k->matmul_backward(tp, net->gemm_ws, net->dh, D + lo->wgu, net->dgu, h2,
                                            P + lo->wgu, N, C, 2 * F, (R)1, false));
        TK_TIMED(elementwise, k->rmsnorm_backward(tp, net->dx, D + lo->ffn_norm, net->dh, mid,
                                                  P + lo->ffn_norm, rstd2, N, C));
        /* dx holds d(mid) */
        TK_TIMED(matmul, k->matmul_backward(tp, net->gemm_ws, net->dy, D + lo->wo, net->dx, y,
                                            P + lo->wo, N, QD, C, (R)1, false));
        TK_TIMED(elementwise, RS(copy)(tp, net->dqkv, NULL, (size_t)N * W));
        TK_TIMED(attention, k->attention_backward(tp, net->dqkv, net->dy, lse, qkv, net->scratch, B,
                                                  T, NH, NKV, HS));
        TK_TIMED(attention, k->rope_backward(tp, net->dqkv, net->cs, B, T, NH + NKV, HS, W));
        TK_TIMED(matmul, k->matmul_backward(tp, net->gemm_ws, net->dh, D + lo->wqkv, net->dqkv, h1,
                                            P + lo->wqkv, N, C, W, (R)1, false));
        TK_TIMED(elementwise, k->rmsnorm_backward(tp, net->dx, D + lo->attn_norm, net->dh, x,
                                                  P + lo->attn_norm, rstd1, N, C));
        /* dx holds d(residual into this layer) */
    }
    TK_TIMED(elementwise, k->embed_backward(tp, grads + lo->wte, net->dx, net->tokens, N, C, V));
}

void TK_PUB(tk_rope_table)(R *cs, int T, int HS, float base) {
    for (int t = 0; t < T; t++)
        for (int i = 0; i < HS / 2; i++) {
            double theta = (double)t * pow((double)base, -2.0 * i / HS);
            cs[(size_t)t * HS + 2 * i] = (R)cos(theta);
            cs[(size_t)t * HS + 2 * i + 1] = (R)sin(theta);
        }
}

#undef TK_TIMED
#endif /* TK_NET_TYPE */
