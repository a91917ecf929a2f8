/* sampler.c - the sampling chain of sampler.h: logit bias, penalties,
 * top-k, top-p, min-p, temperature, softmax and a seeded draw.
 *
 * Ordering. Every ordering of candidates is the total order "larger logit
 * first, lower id first among equal logits", so no result depends on the
 * stability of a sort. NaN logits are read as -inf and +inf as FLT_MAX (so
 * softmax never sees inf - inf); penalties and bias clamp the same way.
 *
 * Cost per token, V = n_vocab (all buffers are allocated in sampler_new;
 * nothing is allocated per token):
 *   copy + bias + penalties      O(V + n_bias + distinct tokens in the window)
 *   logprob (when asked)         O(V) exps
 *   greedy                       O(V)
 *   top-k                        O(V) for k <= V/8: a heap of k, one
 *                                comparison per candidate in the usual case
 *                                (O(V log k) worst); larger k: introselect.
 *                                + O(k log k) to sort the survivors
 *   top-p without top-k          O(V) exps and a mass histogram over 1024
 *                                logit buckets; only the candidates of the
 *                                bucket where the mass reaches p are sorted
 *                                (never the whole vocabulary)
 *   top-p after top-k            sort of the k survivors
 *   min-p                        O(n) filter, no sort
 *   temperature + softmax + draw O(n) exps over the survivors
 * Measured on the development VM (V = 152064, one core, exp ~6 ns): top_k 40
 * 0.25 ms, top_p 0.95 alone 1.7 ms (peaked) to 3.5 ms (flat: the survivors'
 * softmax dominates), greedy 0.25 ms, logprob +0.9 ms (one exp per token).
 * The draw runs over the survivors in whatever order the steps left them
 * (id order, sorted, or kept-buckets-then-sorted-boundary); that order is a
 * function of the inputs only, so the same seed gives the same tokens.
 *
 * Penalty counts are kept incrementally: sampler_accept() updates a count
 * per token and a list of the tokens whose count is non-zero (a ring buffer
 * evicts tokens that leave the window), so sampler_sample() touches only
 * the distinct tokens of the window. */
#include "sample/sampler.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/ops.h" /* ops_exp */

/* The untruncated draw sums weights in blocks of this many tokens, then
 * scans only the block where the cumulative mass crosses the draw. */
#define DRAW_BLOCK 256

struct Sampler {
    SamplerParams p; /* p.bias points at 'bias' below */
    LogitBias *bias; /* (n_bias) owned copy */
    int n_bias;
    int n_vocab;
    Candidate *cand;   /* (n_vocab) scratch for one token */
    float *w;          /* (n_vocab) logits, then weights, for the untruncated draw */
    double *bsum;      /* (ceil(n_vocab / DRAW_BLOCK)) block sums of w */
    int32_t *counts;   /* (n_vocab) occurrences in the penalty window */
    int32_t *distinct; /* (n_vocab) tokens with counts > 0, any order */
    int32_t *where;    /* (n_vocab) index in 'distinct', -1 when count is 0 */
    int n_distinct;
    int32_t *ring; /* (ring_cap) the window, oldest at ring_head */
    int ring_cap, ring_len, ring_head;
    Rng rng;
};

SamplerParams sampler_defaults(void) {
    SamplerParams p = {0};
    p.temperature = 0.8f;
    p.top_k = 40;
    p.top_p = 0.95f;
    p.min_p = 0.05f;
    p.repeat_penalty = 1.0f;
    p.presence_penalty = 0.0f;
    p.frequency_penalty = 0.0f;
    p.penalty_last_n = 64;
    p.bias = NULL;
    p.n_bias = 0;
    p.seed = 42;
    return p;
}

/* ---- ordering ---------------------------------------------------------- */

/* a comes before b: larger logit, or equal logit and lower id. Logits are
 * never NaN here (callers sanitise first). */
static inline int before(const Candidate *a, const Candidate *b) {
    return a->logit > b->logit || (a->logit == b->logit && a->id < b->id);
}

static inline void swap_cand(Candidate *a, Candidate *b) {
    Candidate t = *a;
    *a = *b;
    *b = t;
}

static void insertion_sort(Candidate *c, int n) {
    for (int i = 1; i < n; i++) {
        Candidate x = c[i];
        int j = i;
        while (j > 0 && before(&x, &c[j - 1])) {
            c[j] = c[j - 1];
            j--;
        }
        c[j] = x;
    }
}

/* Heap whose root is the element that sorts last; heap_sort leaves c in
 * order. The O(n log n) fallback when quicksort's depth budget runs out. */
static void sift_down(Candidate *c, int n, int i) {
    for (;;) {
        int l = 2 * i + 1, r = l + 1, w = i;
        if (l < n && before(&c[w], &c[l]))
            w = l;
        if (r < n && before(&c[w], &c[r]))
            w = r;
        if (w == i)
            return;
        swap_cand(&c[i], &c[w]);
        i = w;
    }
}

static void heap_sort(Candidate *c, int n) {
    for (int i = n / 2 - 1; i >= 0; i--)
        sift_down(c, n, i);
    for (int end = n - 1; end > 0; end--) {
        swap_cand(&c[0], &c[end]);
        sift_down(c, end, 0);
    }
}

/* Partition c[0..n) (n >= 3) around the median of its first, middle and
 * last elements; returns the pivot's final index q: c[0..q) come before it,
 * c(q..n) after it. */
static int partition(Candidate *c, int n) {
    int a = 0, b = n / 2, z = n - 1, m;
    if (before(&c[a], &c[b]))
        m = before(&c[b], &c[z]) ? b : (before(&c[a], &c[z]) ? z : a);
    else
        m = before(&c[a], &c[z]) ? a : (before(&c[b], &c[z]) ? z : b);
    swap_cand(&c[m], &c[n - 1]);
    Candidate piv = c[n - 1];
    int store = 0;
    for (int i = 0; i < n - 1; i++)
        if (before(&c[i], &piv))
            swap_cand(&c[i], &c[store++]);
    swap_cand(&c[store], &c[n - 1]);
    return store;
}

static int depth_budget(int n) {
    int d = 0;
    while (n > 1) {
        n >>= 1;
        d++;
    }
    return 2 * d + 4;
}

/* Introsort: sorts c[0..n) in the total order. */
static void sort_cands(Candidate *c, int n) {
    int budget = depth_budget(n);
    while (n > 16) {
        if (budget-- == 0) {
            heap_sort(c, n);
            return;
        }
        int q = partition(c, n);
        /* recurse into the smaller side, loop on the larger */
        if (q < n - q - 1) {
            sort_cands(c, q);
            c += q + 1;
            n -= q + 1;
        } else {
            sort_cands(c + q + 1, n - q - 1);
            n = q;
        }
    }
    insertion_sort(c, n);
}

/* Introselect: rearranges c[0..n) so that c[0..m) hold the m first in the
 * total order (in no particular order), 0 < m < n. Expected O(n). */
static void select_top(Candidate *c, int n, int m) {
    int lo = 0, hi = n, budget = depth_budget(n);
    while (hi - lo > 16) {
        if (budget-- == 0)
            break;
        int q = lo + partition(c + lo, hi - lo);
        if (q == m || q == m - 1)
            return;
        if (q > m)
            hi = q;
        else
            lo = q + 1;
    }
    if (hi - lo > 16)
        heap_sort(c + lo, hi - lo);
    else
        insertion_sort(c + lo, hi - lo);
}

/* Heap selection for small k: a heap of the k best so far whose root is the
 * worst of them; each further candidate costs one comparison with the root
 * unless it enters. O(n) for k << n in the usual case, O(n log k) at worst
 * (ascending input). Leaves c[0..k) sorted. */
static void heap_top_k(Candidate *c, int n, int k) {
    for (int i = k / 2 - 1; i >= 0; i--)
        sift_down(c, k, i);
    for (int i = k; i < n; i++)
        if (c[i].logit >= c[0].logit && before(&c[i], &c[0])) {
            c[0] = c[i];
            sift_down(c, k, 0);
        }
    heap_sort(c, k);
}

/* The k first in the total order into c[0..k), sorted; 0 < k < n. */
static void top_k_sorted(Candidate *c, int n, int k) {
    if ((int64_t)k * 8 <= n) {
        heap_top_k(c, n, k);
    } else {
        select_top(c, n, k);
        sort_cands(c, k);
    }
}

/* ---- elementwise helpers ------------------------------------------------ */

static inline float clamp_logit(float x) {
    if (x != x)
        return -INFINITY;
    if (x > FLT_MAX)
        return FLT_MAX;
    return x;
}

static void sanitise(Candidate *c, int n) {
    for (int i = 0; i < n; i++)
        c[i].logit = clamp_logit(c[i].logit);
}

static inline void bias_one(Candidate *c, float b) {
    if (b != b)
        return;
    c->logit = b == -INFINITY ? -INFINITY : clamp_logit(c->logit + b);
}

static inline void penalise_one(Candidate *c, int count, float repeat, float presence,
                                float frequency) {
    float l = c->logit;
    if (repeat != 1.0f)
        l = l > 0 ? l / repeat : l * repeat;
    l -= presence + frequency * (float)count;
    c->logit = clamp_logit(l);
}

/* Index of token 'id' in c[0..n): c[id] when the array is in id order (as
 * sampler_sample's is), else a linear search; -1 when absent. */
static int find_id(const Candidate *c, int n, int32_t id) {
    if (id >= 0 && id < n && c[id].id == id)
        return id;
    for (int i = 0; i < n; i++)
        if (c[i].id == id)
            return i;
    return -1;
}

/* p[i] proportional to exp(logit[i] / temp) over c[0..n), normalised to sum
 * 1. Does not reorder and leaves the logits alone. All -inf: p = 1 on the
 * first candidate in the total order (the lowest id). Exponents are taken of
 * (logit - max) / temp, so a small temperature cannot overflow; a +inf
 * logit (only through the exposed processors: sampler_sample clamps to
 * FLT_MAX) shares the mass with the other +inf logits. */
static void softmax_t(Candidate *c, int n, float temp) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (before(&c[i], &c[best]))
            best = i;
    float max = c[best].logit;
    if (isinf(max)) {
        int n_top = 0;
        for (int i = 0; i < n; i++) {
            int top = max == -INFINITY ? i == best : c[i].logit == max;
            c[i].p = (float)top;
            n_top += top;
        }
        for (int i = 0; i < n; i++)
            c[i].p /= (float)n_top;
        return;
    }
    double sum = 0;
    for (int i = 0; i < n; i++) {
        float p = expf((c[i].logit - max) / temp);
        c[i].p = p;
        sum += p;
    }
    float inv = (float)(1.0 / sum);
    for (int i = 0; i < n; i++)
        c[i].p *= inv;
}

/* ---- the processors ----------------------------------------------------- */

void sampler_apply_bias(Candidate *cand, int n, const LogitBias *bias, int n_bias) {
    for (int b = 0; b < n_bias; b++) {
        int i = find_id(cand, n, bias[b].token);
        if (i >= 0)
            bias_one(&cand[i], bias[b].bias);
    }
}

/* Uses cand[].p of the penalised candidates as a counter and leaves it 0
 * (p means nothing before softmax). Tokens of 'last' that are not among the
 * candidates are ignored. */
void sampler_apply_penalties(Candidate *cand, int n, const int32_t *last, int n_last, float repeat,
                             float presence, float frequency) {
    if (repeat == 1.0f && presence == 0.0f && frequency == 0.0f)
        return;
    for (int j = 0; j < n_last; j++) {
        int i = find_id(cand, n, last[j]);
        if (i >= 0)
            cand[i].p = 0;
    }
    for (int j = 0; j < n_last; j++) {
        int i = find_id(cand, n, last[j]);
        if (i >= 0)
            cand[i].p += 1;
    }
    for (int j = 0; j < n_last; j++) {
        int i = find_id(cand, n, last[j]);
        if (i >= 0 && cand[i].p > 0) {
            penalise_one(&cand[i], (int)cand[i].p, repeat, presence, frequency);
            cand[i].p = 0;
        }
    }
}

/* k <= 0 or k >= *n: nothing changes. Otherwise keeps the k first in the
 * total order, sorted. */
void sampler_apply_top_k(Candidate *cand, int *n, int k) {
    if (k <= 0 || k >= *n)
        return;
    sanitise(cand, *n);
    top_k_sorted(cand, *n, k);
    *n = k;
}

void sampler_apply_softmax(Candidate *cand, int n) {
    if (n <= 0)
        return;
    sanitise(cand, n);
    sort_cands(cand, n);
    softmax_t(cand, n, 1.0f);
}

/* Number of sorted candidates c[0..n) whose mass (weights exp(l - max)
 * over 'z', accumulated in double) first reaches p; n if it never does. */
static int top_p_cut(const Candidate *c, int n, float max, double z, float p, double *cum) {
    for (int i = 0; i < n; i++) {
        *cum += exp((double)c[i].logit - (double)max) / z;
        if (*cum >= (double)p)
            return i + 1;
    }
    return -1;
}

static double mass_z(const Candidate *c, int n, float max) {
    double z = 0;
    for (int i = 0; i < n; i++)
        z += exp((double)c[i].logit - (double)max);
    return z;
}

/* Sorts (softmax), then keeps the shortest prefix whose probability reaches
 * p; p >= 1 keeps all (still sorted, p filled). All -inf: keeps the first. */
void sampler_apply_top_p(Candidate *cand, int *n, float p) {
    if (*n <= 0)
        return;
    sampler_apply_softmax(cand, *n);
    if (p >= 1.0f)
        return;
    float max = cand[0].logit;
    if (max == -INFINITY || max == INFINITY) {
        *n = 1;
        return;
    }
    double cum = 0;
    int cut = top_p_cut(cand, *n, max, mass_z(cand, *n, max), p, &cum);
    if (cut > 0)
        *n = cut;
}

/* Keeps, in their order, the candidates with logit >= max + log(min_p),
 * i.e. probability >= min_p * max probability. min_p <= 0: nothing. */
void sampler_apply_min_p(Candidate *cand, int *n, float min_p) {
    if (min_p <= 0.0f || *n <= 0)
        return;
    sanitise(cand, *n);
    float max = cand[0].logit;
    for (int i = 1; i < *n; i++)
        if (cand[i].logit > max)
            max = cand[i].logit;
    if (max == -INFINITY)
        return; /* nothing to compare with; softmax picks the lowest id */
    float thr = max + logf(min_p);
    int m = 0;
    for (int i = 0; i < *n; i++)
        if (cand[i].logit >= thr)
            cand[m++] = cand[i];
    *n = m;
}

int sampler_draw(const Candidate *cand, int n, float u) {
    double sum = 0;
    for (int i = 0; i < n; i++)
        sum += cand[i].p;
    if (!(sum > 0))
        return 0;
    double r = (double)u * sum, acc = 0;
    int last = 0;
    for (int i = 0; i < n; i++) {
        if (cand[i].p > 0)
            last = i;
        acc += cand[i].p;
        if (r < acc)
            return i;
    }
    return last; /* r landed on the rounding slack at the end */
}

/* ---- the sampler -------------------------------------------------------- */

static Status invalid(Err *err, const char *field, const char *fmt, double v) {
    char what[128];
    snprintf(what, sizeof what, fmt, v);
    return err_set(err, STATUS_INVALID, "sampler: %s %s", field, what);
}

static Status validate(const SamplerParams *p, int n_vocab, Err *err) {
    if (n_vocab < 1)
        return invalid(err, "n_vocab", "%.0f must be >= 1", n_vocab);
    if (isnan(p->temperature) || isinf(p->temperature))
        return invalid(err, "temperature", "%g is not finite", p->temperature);
    if (!(p->top_p > 0.0f && p->top_p <= 1.0f))
        return invalid(err, "top_p", "%g outside (0, 1]", p->top_p);
    if (isnan(p->min_p) || p->min_p > 1.0f)
        return invalid(err, "min_p", "%g outside [0, 1] (<= 0: off)", p->min_p);
    if (!(p->repeat_penalty > 0.0f) || isinf(p->repeat_penalty))
        return invalid(err, "repeat_penalty", "%g must be finite and > 0", p->repeat_penalty);
    if (isnan(p->presence_penalty) || isinf(p->presence_penalty))
        return invalid(err, "presence_penalty", "%g is not finite", p->presence_penalty);
    if (isnan(p->frequency_penalty) || isinf(p->frequency_penalty))
        return invalid(err, "frequency_penalty", "%g is not finite", p->frequency_penalty);
    if (p->penalty_last_n < -1 || p->penalty_last_n > SAMPLER_MAX_LAST_N)
        return err_set(err, STATUS_INVALID, "sampler: penalty_last_n %d outside [-1, %d]",
                       p->penalty_last_n, SAMPLER_MAX_LAST_N);
    if (p->n_bias < 0 || p->n_bias > SAMPLER_MAX_BIAS)
        return err_set(err, STATUS_INVALID,
                       "sampler: n_bias %d outside [0, %d] (logit_bias entries)", p->n_bias,
                       SAMPLER_MAX_BIAS);
    if (p->n_bias > 0 && !p->bias)
        return err_set(err, STATUS_INVALID, "sampler: bias is NULL with n_bias %d", p->n_bias);
    for (int i = 0; i < p->n_bias; i++) {
        if (p->bias[i].token < 0 || p->bias[i].token >= n_vocab)
            return err_set(err, STATUS_INVALID,
                           "sampler: bias[%d].token %d outside [0, %d) (vocabulary size)", i,
                           (int)p->bias[i].token, n_vocab);
        float b = p->bias[i].bias;
        if (isnan(b) || b == INFINITY)
            return err_set(err, STATUS_INVALID,
                           "sampler: bias[%d].bias for token %d is %g (finite or -inf only)", i,
                           (int)p->bias[i].token, b);
    }
    return STATUS_OK;
}

Sampler *sampler_new(const SamplerParams *p, int n_vocab, Err *err) {
    if (!p) {
        err_set(err, STATUS_INVALID, "sampler: params is NULL");
        return NULL;
    }
    if (validate(p, n_vocab, err) != STATUS_OK)
        return NULL;
    Sampler *s = calloc(1, sizeof *s);
    if (!s) {
        err_set(err, STATUS_NOMEM, "sampler: out of memory");
        return NULL;
    }
    s->p = *p;
    s->n_vocab = n_vocab;
    s->n_bias = p->n_bias;
    s->ring_cap = p->penalty_last_n > 0 ? p->penalty_last_n : 0;
    size_t v = (size_t)n_vocab;
    s->cand = malloc(v * sizeof *s->cand);
    s->w = malloc(v * sizeof *s->w);
    s->bsum = malloc((v + DRAW_BLOCK - 1) / DRAW_BLOCK * sizeof *s->bsum);
    s->counts = calloc(v, sizeof *s->counts);
    s->distinct = malloc(v * sizeof *s->distinct);
    s->where = malloc(v * sizeof *s->where);
    s->bias = malloc((size_t)(p->n_bias > 0 ? p->n_bias : 1) * sizeof *s->bias);
    s->ring = malloc((size_t)(s->ring_cap > 0 ? s->ring_cap : 1) * sizeof *s->ring);
    if (!s->cand || !s->w || !s->bsum || !s->counts || !s->distinct || !s->where || !s->bias || !s->ring) {
        sampler_free(s);
        err_set(err, STATUS_NOMEM, "sampler: out of memory for n_vocab %d", n_vocab);
        return NULL;
    }
    if (p->n_bias > 0)
        memcpy(s->bias, p->bias, (size_t)p->n_bias * sizeof *s->bias);
    s->p.bias = s->bias;
    for (int i = 0; i < n_vocab; i++)
        s->where[i] = -1;
    rng_seed(&s->rng, p->seed);
    return s;
}

void sampler_free(Sampler *s) {
    if (!s)
        return;
    free(s->cand);
    free(s->w);
    free(s->bsum);
    free(s->counts);
    free(s->distinct);
    free(s->where);
    free(s->bias);
    free(s->ring);
    free(s);
}

static void count_inc(Sampler *s, int32_t t) {
    if (s->counts[t] == INT32_MAX)
        return; /* penalty_last_n -1 over 2^31 tokens: saturate */
    if (s->counts[t]++ == 0) {
        s->where[t] = s->n_distinct;
        s->distinct[s->n_distinct++] = t;
    }
}

static void count_dec(Sampler *s, int32_t t) {
    if (--s->counts[t] == 0) {
        int32_t moved = s->distinct[--s->n_distinct];
        s->distinct[s->where[t]] = moved;
        s->where[moved] = s->where[t];
        s->where[t] = -1;
    }
}

void sampler_accept(Sampler *s, int32_t token) {
    if (token < 0 || token >= s->n_vocab || s->p.penalty_last_n == 0)
        return;
    if (s->p.penalty_last_n > 0) {
        if (s->ring_len == s->ring_cap) {
            count_dec(s, s->ring[s->ring_head]);
            s->ring[s->ring_head] = token;
            s->ring_head = (s->ring_head + 1) % s->ring_cap;
        } else {
            s->ring[(s->ring_head + s->ring_len) % s->ring_cap] = token;
            s->ring_len++;
        }
    }
    count_inc(s, token);
}

void sampler_reset(Sampler *s) {
    for (int i = 0; i < s->n_distinct; i++) {
        s->counts[s->distinct[i]] = 0;
        s->where[s->distinct[i]] = -1;
    }
    s->n_distinct = 0;
    s->ring_len = 0;
    s->ring_head = 0;
}

/* Bucket of a logit for top-p: TOP_P_BUCKETS - 1 buckets of equal width
 * over [max - TOP_P_RANGE, max] (by distance below the maximum), the last
 * one for everything further down (-inf included). Larger logits never land
 * in a later bucket, so buckets are intervals of the total order. */
#define TOP_P_BUCKETS 1024
#define TOP_P_RANGE 32.0f /* nats; exp(-32) ~ 1e-14 */

static inline int top_p_bucket(float logit, float max) {
    float d = (max - logit) * ((TOP_P_BUCKETS - 1) / TOP_P_RANGE);
    return d < (float)(TOP_P_BUCKETS - 1) ? (int)d : TOP_P_BUCKETS - 1;
}

/* top-p over all c[0..n) (no top-k before it), without sorting them all:
 * one pass computes the weights exp(l - max), their sum and the mass per
 * bucket; the buckets before the one where the cumulative mass reaches p are
 * kept whole (unsorted), and only that boundary bucket is sorted to find the
 * exact cut. O(n) exps + O(n) + O(b log b) for the b candidates of the
 * boundary bucket. The kept set is the one sampler_apply_top_p keeps (up to
 * the rounding of the sums, which are accumulated in another order). Kept
 * candidates end in c[0..result), not sorted. */
static int top_p_bucketed(Candidate *c, int n, float p) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (before(&c[i], &c[best]))
            best = i;
    float max = c[best].logit;
    if (max == -INFINITY) {
        swap_cand(&c[0], &c[best]); /* all -inf: the lowest id */
        return 1;
    }
    double mass[TOP_P_BUCKETS] = {0}, z = 0;
    for (int i = 0; i < n; i++) {
        double w = exp((double)c[i].logit - (double)max);
        z += w;
        mass[top_p_bucket(c[i].logit, max)] += w;
    }
    double target = (double)p * z, cum = 0;
    int b = 0;
    while (b < TOP_P_BUCKETS - 1 && cum + mass[b] < target)
        cum += mass[b++];
    /* keep buckets < b and move bucket b right after them */
    int k = 0;
    for (int i = 0; i < n; i++)
        if (top_p_bucket(c[i].logit, max) <= b)
            c[k++] = c[i];
    int lt = 0;
    for (int i = 0; i < k; i++)
        if (top_p_bucket(c[i].logit, max) < b)
            swap_cand(&c[i], &c[lt++]);
    sort_cands(c + lt, k - lt);
    double cum_p = cum / z;
    int cut = top_p_cut(c + lt, k - lt, max, z, p, &cum_p);
    return cut > 0 ? lt + cut : k;
}

/* s->cand = the logits in id order, sanitised, after bias and penalties. */
static void load_candidates(Sampler *s, const float *logits) {
    const SamplerParams *p = &s->p;
    int n = s->n_vocab;
    Candidate *c = s->cand;
    for (int i = 0; i < n; i++) {
        c[i].id = i;
        c[i].logit = clamp_logit(logits[i]);
        c[i].p = 0;
    }
    for (int b = 0; b < s->n_bias; b++)
        bias_one(&c[s->bias[b].token], s->bias[b].bias);
    if (p->repeat_penalty != 1.0f || p->presence_penalty != 0.0f || p->frequency_penalty != 0.0f)
        for (int i = 0; i < s->n_distinct; i++) {
            int32_t t = s->distinct[i];
            penalise_one(&c[t], s->counts[t], p->repeat_penalty, p->presence_penalty,
                         p->frequency_penalty);
        }
}

/* s->w = the logits after sanitising, bias and penalties (what
 * load_candidates puts in cand[].logit), as plain floats. */
static void load_weights(Sampler *s, const float *logits) {
    const SamplerParams *p = &s->p;
    float *w = s->w;
    for (int i = 0; i < s->n_vocab; i++)
        w[i] = clamp_logit(logits[i]);
    for (int b = 0; b < s->n_bias; b++) {
        Candidate t = {s->bias[b].token, w[s->bias[b].token], 0};
        bias_one(&t, s->bias[b].bias);
        w[t.id] = t.logit;
    }
    if (p->repeat_penalty != 1.0f || p->presence_penalty != 0.0f || p->frequency_penalty != 0.0f)
        for (int i = 0; i < s->n_distinct; i++) {
            Candidate t = {s->distinct[i], w[s->distinct[i]], 0};
            penalise_one(&t, s->counts[t.id], p->repeat_penalty, p->presence_penalty,
                         p->frequency_penalty);
            w[t.id] = t.logit;
        }
}

/* Token t's logit as load_weights leaves it (w is overwritten by the draw). */
static float loaded_logit(const Sampler *s, const float *logits, int32_t t) {
    const SamplerParams *p = &s->p;
    Candidate c = {t, clamp_logit(logits[t]), 0};
    for (int b = 0; b < s->n_bias; b++)
        if (s->bias[b].token == t)
            bias_one(&c, s->bias[b].bias);
    if ((p->repeat_penalty != 1.0f || p->presence_penalty != 0.0f || p->frequency_penalty != 0.0f) &&
        s->counts[t] > 0)
        penalise_one(&c, s->counts[t], p->repeat_penalty, p->presence_penalty,
                     p->frequency_penalty);
    return c.logit;
}

/* Float sum of w[0..n) with eight accumulators folded in a fixed order. */
static float block_sum(const float *w, int n) {
    float acc[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++)
            acc[j] += w[i + j];
    float t = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (; i < n; i++)
        t += w[i];
    return t;
}

/* The draw without truncation (temperature > 0, no top-k/top-p/min-p):
 * weights exp((l - max) / temp) over the whole vocabulary in id order, as
 * softmax_t + sampler_draw would give them, but with the vector exp, block
 * sums and a scan of one block instead of a Candidate array. s->w holds the
 * loaded logits and is overwritten; 'max' is their maximum (> -inf).
 * Returns the token. */
static int32_t draw_untruncated(Sampler *s, float max, float temp, float u) {
    int n = s->n_vocab, nb = (n + DRAW_BLOCK - 1) / DRAW_BLOCK;
    float *w = s->w;
    for (int i = 0; i < n; i++)
        w[i] = (w[i] - max) / temp;
    ops_exp(w, w, n);
    double total = 0;
    for (int b = 0; b < nb; b++) {
        int lo = b * DRAW_BLOCK, cnt = n - lo < DRAW_BLOCK ? n - lo : DRAW_BLOCK;
        s->bsum[b] = (double)block_sum(w + lo, cnt);
        total += s->bsum[b];
    }
    double r = (double)u * total, acc = 0;
    int last = 0;
    for (int b = 0; b < nb; b++) {
        int lo = b * DRAW_BLOCK, cnt = n - lo < DRAW_BLOCK ? n - lo : DRAW_BLOCK;
        if (s->bsum[b] > 0)
            last = b;
        if (r >= acc + s->bsum[b]) {
            acc += s->bsum[b];
            continue;
        }
        double in = acc;
        for (int i = lo; i < lo + cnt; i++) {
            in += w[i];
            if (r < in && w[i] > 0)
                return i;
        }
        acc += s->bsum[b]; /* rounding slack: the block's float sum was larger */
    }
    /* r landed on the rounding slack at the end: the last positive weight */
    int lo = last * DRAW_BLOCK, hi = n - lo < DRAW_BLOCK ? n : lo + DRAW_BLOCK;
    for (int i = hi - 1; i >= lo; i--)
        if (w[i] > 0)
            return i;
    return 0;
}

int32_t sampler_sample(Sampler *s, const float *logits, float *logprob) {
    const SamplerParams *p = &s->p;
    int n = s->n_vocab;
    Candidate *c = s->cand;
    if (p->temperature > 0.0f && (p->top_k <= 0 || p->top_k >= n) && p->top_p >= 1.0f &&
        p->min_p <= 0.0f) {
        load_weights(s, logits);
        float max = -INFINITY;
        for (int i = 0; i < n; i++)
            max = s->w[i] > max ? s->w[i] : max;
        double z = 0;
        if (logprob && max != -INFINITY)
            for (int i = 0; i < n; i++)
                z += exp((double)s->w[i] - (double)max);
        float u = rng_f32(&s->rng);
        if (max == -INFINITY) { /* all banned: token 0, as softmax_t + draw give */
            if (logprob)
                *logprob = -INFINITY;
            return 0;
        }
        int32_t tok = draw_untruncated(s, max, p->temperature, u);
        if (logprob)
            *logprob = (float)((double)loaded_logit(s, logits, tok) - (double)max - log(z));
        return tok;
    }
    load_candidates(s, logits);

    /* log-softmax at temperature 1 over the whole vocabulary, before any
     * truncation: logprob = (l - max) - log(sum_j exp(l_j - max)). */
    float max = -INFINITY;
    double z = 0;
    if (logprob) {
        for (int i = 0; i < n; i++)
            if (c[i].logit > max)
                max = c[i].logit;
        if (max != -INFINITY)
            z = mass_z(c, n, max);
    }

    int32_t tok;
    float chosen_logit;
    if (p->temperature <= 0.0f) {
        int best = 0;
        for (int i = 1; i < n; i++)
            if (c[i].logit > c[best].logit)
                best = i; /* strict: ties keep the lowest id */
        tok = c[best].id;
        chosen_logit = c[best].logit;
    } else {
        bool sorted = false;
        if (p->top_k > 0 && p->top_k < n) {
            top_k_sorted(c, n, p->top_k);
            n = p->top_k;
            sorted = true;
        }
        if (p->top_p < 1.0f) {
            if (sorted) {
                sampler_apply_top_p(c, &n, p->top_p);
            } else {
                n = top_p_bucketed(c, n, p->top_p);
            }
        }
        sampler_apply_min_p(c, &n, p->min_p);
        softmax_t(c, n, p->temperature);
        int i = sampler_draw(c, n, rng_f32(&s->rng));
        tok = c[i].id;
        chosen_logit = c[i].logit;
    }
    if (logprob)
        *logprob =
            max == -INFINITY ? -INFINITY : (float)((double)chosen_logit - (double)max - log(z));
    return tok;
}

/* Same candidates and the same log-softmax formula as sampler_sample's
 * logprob (so the best entry's value is bit-identical to the logprob of a
 * greedy draw); the k best by the total order, O(V) for small k. */
int sampler_top_logprobs(Sampler *s, const float *logits, int k, int32_t *ids, float *logprobs) {
    int n = s->n_vocab;
    if (k <= 0)
        return 0;
    if (k > n)
        k = n;
    Candidate *c = s->cand;
    load_candidates(s, logits);
    float max = -INFINITY;
    for (int i = 0; i < n; i++)
        if (c[i].logit > max)
            max = c[i].logit;
    double log_z = max == -INFINITY ? 0 : log(mass_z(c, n, max));
    if (k < n)
        top_k_sorted(c, n, k);
    else
        sort_cands(c, n);
    for (int i = 0; i < k; i++) {
        ids[i] = c[i].id;
        logprobs[i] =
            max == -INFINITY ? -INFINITY : (float)((double)c[i].logit - (double)max - log_z);
    }
    return k;
}
