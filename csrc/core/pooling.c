/* pooling.c: 2-D max, average and adaptive average pooling (float32), forward and backward.
 *
 * Input x is (N, C, H, W) or (C, H, W), contiguous, so it is P = N * C (or C) planes of H x W;
 * every output plane depends on its own input plane only. Kernels follow PyTorch's CPU ones:
 * - max: windows scanned row by row; a value replaces the running maximum when it is larger or
 *   NaN (so NaN propagates and the last NaN's index is kept); ties keep the first index; padding
 *   never wins (it is -inf). Indices are flat positions h * W + w inside the input plane.
 * - avg: the window [h0, h0 + kh) is first clipped to the padded input [-ph, H + ph) (its size
 *   is the count_include_pad divisor, which is how ceil_mode's extra window divides by its clipped
 *   size), then to the input [0, H) (the count of real elements, the other divisor).
 * - adaptive avg: rows [floor(i * H / OH), ceil((i + 1) * H / OH)), columns likewise; the sum is
 *   divided by the row count and then the column count. Output (1, 1) is the mean over H x W, as
 *   PyTorch computes it (so an empty plane gives NaN there).
 * Large ops split their planes over bcml_parallel in chunks fixed by the op's size; each plane is
 * computed the same way in any chunk, so results do not depend on the thread count. */
#include "ops.h"

#include <math.h>
#include <string.h>

/* ---- shared geometry ------------------------------------------------------------------- */
typedef struct {
    int64_t P;                    /* planes: N * C (or C) */
    int64_t H, W, OH, OW;
    int64_t kh, kw, sh, sw, ph, pw, d;
    int ceil_mode, count_include_pad;
} pool_geom;

#define POOL_ARG_MAX ((int64_t)1 << 31)

static int64_t floor_div(int64_t a, int64_t b) { /* b > 0 */
    int64_t q = a / b;
    return (a % b != 0 && a < 0) ? q - 1 : q;
}

/* PyTorch's pooling_output_shape: with ceil_mode the last window must start inside the input
 * or the left padding. */
static int64_t pool_out_size(int64_t in, int64_t k, int64_t pad, int64_t s, int64_t d, int ceil_mode) {
    int64_t o = floor_div(in + 2 * pad - d * (k - 1) - 1 + (ceil_mode ? s - 1 : 0), s) + 1;
    if (ceil_mode && (o - 1) * s >= in + pad) o--;
    return o;
}

/* dtype and rank of a pooling input; planes with a zero size are rejected except the batch
 * dimension (and for adaptive pooling, the channels), as PyTorch does. */
static bcml_status pool_input(const bcml_tensor *x, const char *op, int allow_empty_channels,
                              bcml_err *err) {
    bcml_status st = bcml_require_dtype(x, BCML_FLOAT32, op, "input", err);
    if (st) return st;
    char b[96];
    if (x->ndim != 3 && x->ndim != 4)
        return bcml_fail(err, BCML_EVALUE,
                         "%s: input must be 3-D (C, H, W) or 4-D (N, C, H, W), got shape %s", op,
                         bcml_shape_str(x, b, sizeof b));
    int c = x->ndim - 3;
    if (x->shape[c + 1] == 0 || x->shape[c + 2] == 0 || (!allow_empty_channels && x->shape[c] == 0))
        return bcml_fail(err, BCML_EVALUE,
                         "%s: input must have non-zero sizes except for the batch dimension%s, got shape %s",
                         op, allow_empty_channels ? " and channels" : "", bcml_shape_str(x, b, sizeof b));
    return BCML_OK;
}

/* Reads and checks max_pool2d's / avg_pool2d's argument block (see bcml.h) into g. */
static bcml_status pool_setup(const bcml_node *n, const char *op, int is_max, pool_geom *g,
                              bcml_err *err) {
    const bcml_tensor *x = n->in[0];
    bcml_status st = pool_input(x, op, 0, err);
    if (st) return st;
    const int64_t *a = n->args.i;
    g->kh = a[0]; g->kw = a[1]; g->sh = a[2]; g->sw = a[3]; g->ph = a[4]; g->pw = a[5];
    g->ceil_mode = a[6] != 0;
    g->d = is_max ? a[7] : 1;
    g->count_include_pad = is_max ? 1 : a[7] != 0;
    if (g->kh < 1 || g->kw < 1 || g->kh > POOL_ARG_MAX || g->kw > POOL_ARG_MAX)
        return bcml_fail(err, BCML_EVALUE, "%s: kernel_size must be positive (and below 2^31), got (%lld, %lld)",
                         op, (long long)g->kh, (long long)g->kw);
    if (g->sh < 1 || g->sw < 1 || g->sh > POOL_ARG_MAX || g->sw > POOL_ARG_MAX)
        return bcml_fail(err, BCML_EVALUE, "%s: stride must be positive (and below 2^31), got (%lld, %lld)",
                         op, (long long)g->sh, (long long)g->sw);
    if (g->d < 1 || g->d > POOL_ARG_MAX)
        return bcml_fail(err, BCML_EVALUE, "%s: dilation must be positive (and below 2^31), got %lld", op,
                         (long long)g->d);
    if (g->ph < 0 || g->pw < 0 || g->ph > g->kh / 2 || g->pw > g->kw / 2)
        return bcml_fail(err, BCML_EVALUE,
                         "%s: padding must be non-negative and at most half of kernel_size, got padding "
                         "(%lld, %lld) with kernel_size (%lld, %lld)",
                         op, (long long)g->ph, (long long)g->pw, (long long)g->kh, (long long)g->kw);
    int c = x->ndim - 3;
    g->P = x->shape[c] * (c ? x->shape[0] : 1);
    g->H = x->shape[c + 1];
    g->W = x->shape[c + 2];
    g->OH = pool_out_size(g->H, g->kh, g->ph, g->sh, g->d, g->ceil_mode);
    g->OW = pool_out_size(g->W, g->kw, g->pw, g->sw, g->d, g->ceil_mode);
    if (g->OH < 1 || g->OW < 1)
        return bcml_fail(err, BCML_EVALUE,
                         "%s: input of size (%lldx%lldx%lld) gives output size (%lldx%lldx%lld), which is "
                         "too small (kernel_size (%lld, %lld), stride (%lld, %lld), padding (%lld, %lld)%s)",
                         op, (long long)x->shape[c], (long long)g->H, (long long)g->W, (long long)x->shape[c],
                         (long long)g->OH, (long long)g->OW, (long long)g->kh, (long long)g->kw,
                         (long long)g->sh, (long long)g->sw, (long long)g->ph, (long long)g->pw,
                         is_max && g->d > 1 ? ", dilation > 1" : "");
    return BCML_OK;
}

/* out[0] with x's leading dimensions and (OH, OW). */
static bcml_status pool_output(bcml_tensor **out, const bcml_tensor *x, int64_t OH, int64_t OW,
                               bcml_err *err) {
    int64_t shape[BCML_MAX_DIMS];
    for (int k = 0; k < x->ndim - 2; k++) shape[k] = x->shape[k];
    shape[x->ndim - 2] = OH;
    shape[x->ndim - 1] = OW;
    return bcml_tensor_new(out, BCML_FLOAT32, x->ndim, shape, 0, err);
}

/* Kernel taps [lo, hi) of a window whose taps sit at s + t * d, t in [0, k), inside [0, n). */
static inline void taps(int64_t s, int64_t k, int64_t d, int64_t n, int64_t *lo, int64_t *hi) {
    int64_t l = s < 0 ? (-s + d - 1) / d : 0;
    int64_t h = n - s <= 0 ? 0 : (n - s + d - 1) / d;
    *lo = l;
    *hi = h < k ? h : k;
}

/* Outputs [o0, o1) whose windows (taps at o * s - p + t * d) lie wholly inside [0, n). */
static void interior(int64_t n, int64_t k, int64_t s, int64_t p, int64_t d, int64_t O, int64_t *o0,
                     int64_t *o1) {
    int64_t a = (p + s - 1) / s;
    int64_t last = n - 1 - d * (k - 1) + p; /* o * s <= last */
    int64_t b = last < 0 ? 0 : last / s + 1;
    if (a > O) a = O;
    if (b > O) b = O;
    if (b < a) b = a;
    *o0 = a;
    *o1 = b;
}

/* ---- splitting over planes ---------------------------------------------------------------- */
/* A kernel over planes [p0, p1) with its task's scratch (NULL when the job asks for none). */
struct pool_job;
typedef void (*plane_fn)(const struct pool_job *j, int64_t p0, int64_t p1, float *scratch);

typedef struct pool_job {
    const pool_geom *g;
    plane_fn fn;
    float *out, *dx;          /* (P, OH, OW), (P, H, W) += */
    const float *x, *dout;    /* (P, H, W), (P, OH, OW) */
    int64_t *idx;             /* (P, OH, OW) or NULL */
    const int64_t *cidx;      /* (P, OH, OW) */
    const float *div;         /* (OH, OW) avg divisors of the padded path */
    const int64_t *bounds;    /* adaptive windows: row starts (OH), row ends (OH), column starts (OW), ends (OW) */
    int64_t Hp, Wp;           /* padded plane (0: no padded copy) */
    int split;                /* the padded rows hold even columns, then odd ones (copy_split) */
    int k2s2;                 /* max forward: 2 x 2 windows of stride 2, all inside the plane, AVX-512 */
    int fresh;                /* max backward: dx is a new buffer (n->fresh), zeroed plane by plane here */
    int64_t chunk;            /* planes per task */
    float *scratch;           /* (ntasks, Hp * Wp) */
} pool_job;

static void pool_task(void *arg, int64_t k, int64_t n) {
    (void)n;
    const pool_job *j = arg;
    int64_t P = j->g->P, p0 = k * j->chunk, p1 = p0 + j->chunk < P ? p0 + j->chunk : P;
    if (p1 > p0) j->fn(j, p0, p1, j->scratch ? j->scratch + k * j->Hp * j->Wp : NULL);
}

#define PLANE_GRAIN 32768 /* elements touched per task, roughly */
#define PLANE_MAX_TASKS 64

/* Runs j->fn over every plane: the tasks (and so the chunks) follow from P and the work per
 * plane only, never from the thread count; each plane is computed alike in any chunk. */
static bcml_status run_planes(pool_job *j, double work_per_plane, const char *op, bcml_err *err) {
    int64_t P = j->g->P;
    if (P <= 0) return BCML_OK;
    double work = (double)P * (work_per_plane > 0 ? work_per_plane : 1);
    int64_t ntasks = (int64_t)(work / PLANE_GRAIN);
    if (ntasks > 1) ntasks = (ntasks + 3) / 4 * 4; /* a multiple of 4: even shares on 2 or 4 threads */
    if (ntasks > PLANE_MAX_TASKS) ntasks = PLANE_MAX_TASKS;
    if (ntasks > P) ntasks = P;
    if (ntasks < 1) ntasks = 1;
    j->chunk = (P + ntasks - 1) / ntasks;
    ntasks = (P + j->chunk - 1) / j->chunk;
    j->scratch = NULL;
    if (j->Hp > 0) {
        j->scratch = bcml_alloc((size_t)(ntasks * j->Hp * j->Wp) * sizeof(float));
        if (!j->scratch) return bcml_fail(err, BCML_ENOMEM, "%s: out of memory for a padded plane", op);
    }
    if (ntasks == 1) j->fn(j, 0, P, j->scratch);
    else bcml_parallel(ntasks, pool_task, j);
    bcml_free(j->scratch);
    j->scratch = NULL;
    return BCML_OK;
}

/* Work per plane of a windowed pooling: a pass over the plane plus the taps of every window
 * (at most the plane's extent: windows are clipped to it). In double: kernel sizes up to 2^31
 * would overflow int64. */
static double pool_work(const pool_geom *g) {
    double kh = (double)(g->kh < g->H ? g->kh : g->H), kw = (double)(g->kw < g->W ? g->kw : g->W);
    return (double)g->H * (double)g->W + (double)g->OH * (double)g->OW * kh * kw / 2;
}

/* A plane with padding (or ceil_mode's clipped windows) is copied into a (Hp, Wp) scratch plane
 * holding every window tap, real element (h, w) at (h + ph, w + pw), the rest a fill value, so
 * one unchecked kernel serves every output; a plane too large for that keeps bounds checks. */
#define PAD_MAX_ELEMS ((int64_t)1 << 20)

static void padded_size(const pool_geom *g, int force, int64_t *Hp, int64_t *Wp) {
    int64_t oh0, oh1, ow0, ow1;
    interior(g->H, g->kh, g->sh, g->ph, g->d, g->OH, &oh0, &oh1);
    interior(g->W, g->kw, g->sw, g->pw, g->d, g->OW, &ow0, &ow1);
    *Hp = *Wp = 0;
    if (!force && oh0 == 0 && oh1 == g->OH && ow0 == 0 && ow1 == g->OW) return; /* every window inside */
    int64_t hp = (g->OH - 1) * g->sh + g->d * (g->kh - 1) + 1;
    int64_t wp = (g->OW - 1) * g->sw + g->d * (g->kw - 1) + 1;
    /* int32 flat indices inside the kernels: keep every offset far from overflow */
    if (hp > PAD_MAX_ELEMS || wp > PAD_MAX_ELEMS || hp * wp > PAD_MAX_ELEMS ||
        (hp + g->H) * (wp + g->W) >= ((int64_t)1 << 30))
        return;
    *Hp = hp;
    *Wp = wp;
}

static void fill(float *s, int64_t n, float v) {
    for (int64_t i = 0; i < n; i++) s[i] = v;
}

/* Copies plane x (H, W) into the real part of scratch (Hp, Wp); its border keeps its fill. */
static void copy_padded(float *scratch, const float *x, const pool_geom *g, int64_t Hp, int64_t Wp) {
    int64_t hc = Hp - g->ph < g->H ? Hp - g->ph : g->H, wc = Wp - g->pw < g->W ? Wp - g->pw : g->W;
    for (int64_t h = 0; h < hc; h++)
        memcpy(scratch + (h + g->ph) * Wp + g->pw, x + h * g->W, (size_t)wc * sizeof(float));
}

/* As copy_padded, each scratch row holding its even columns and then its odd ones: E (Wp + 1) / 2
 * then O (Wp / 2), so that a stride-2 window's taps (columns 2o, 2o + 1, 2o + 2) are E[o], O[o],
 * E[o + 1]: unit-stride loads for the vectoriser. */
static void copy_split(float *scratch, const float *x, const pool_geom *g, int64_t Hp, int64_t Wp) {
    int64_t hc = Hp - g->ph < g->H ? Hp - g->ph : g->H, wc = Wp - g->pw < g->W ? Wp - g->pw : g->W;
    int64_t half = (Wp + 1) / 2, pw = g->pw;
    int64_t ke = pw % 2, ko = 1 - ke;              /* first real columns at even / odd padded columns */
    int64_t ne = wc > ke ? (wc - ke + 1) / 2 : 0, no = wc > ko ? (wc - ko + 1) / 2 : 0;
    for (int64_t h = 0; h < hc; h++) {
        float *restrict e = scratch + (h + g->ph) * Wp + (ke + pw) / 2;
        float *restrict o = scratch + (h + g->ph) * Wp + half + (ko + pw) / 2;
        const float *restrict xe = x + h * g->W + ke, *restrict xo = x + h * g->W + ko;
        for (int64_t t = 0; t < ne; t++) e[t] = xe[2 * t];
        for (int64_t t = 0; t < no; t++) o[t] = xo[2 * t];
    }
}

/* ---- max_pool2d -------------------------------------------------------------------------- */
/* One output with bounds checks (the reference): window rows start at h0, columns at w0. */
static inline void max_one(float *out, int64_t *idx, const float *x, /* (H, W) */
                           const pool_geom *g, int64_t h0, int64_t w0) {
    int64_t ilo, ihi, jlo, jhi, d = g->d;
    taps(h0, g->kh, d, g->H, &ilo, &ihi);
    taps(w0, g->kw, d, g->W, &jlo, &jhi);
    float m = -INFINITY;
    /* a window of padding only (possible with dilation) has no element: -inf and no gradient
     * (index -1; PyTorch points past the plane there and corrupts memory in backward) */
    int64_t mi = ilo < ihi && jlo < jhi ? (h0 + ilo * d) * g->W + w0 + jlo * d : -1;
    for (int64_t i = ilo; i < ihi; i++) {
        int64_t r = (h0 + i * d) * g->W;
        for (int64_t j = jlo; j < jhi; j++) {
            float v = x[r + w0 + j * d];
            if (v > m || v != v) {
                m = v;
                mi = r + w0 + j * d;
            }
        }
    }
    *out = m;
    if (idx) *idx = mi;
}

/* Outputs [0, n) of one row without bounds checks: output o's taps are x[o * SW + i * D * ldx
 * + j * D] (x: the first output's top-left tap in a plane of row stride ldx) and their flat
 * indices in the real (., W) plane are q0 + o * SW + i * D * W + j * D. The running maximum
 * starts at -inf, so padding (-inf) never wins; an output whose taps are all -inf keeps index
 * -1 for the caller to settle. 32-bit indices keep the loop in float-width vector lanes. Inlined
 * with constant kernel shapes for the common cases. */
static inline void max_row(float *restrict out,       /* (n) */
                           int64_t *restrict idx,     /* (n) or NULL */
                           const float *restrict x,
                           int64_t ldx, int32_t q0, int32_t W, int64_t n,
                           int32_t KH, int32_t KW, int32_t SW, int32_t D) {
    for (int64_t o = 0; o < n; o++) {
        const float *px = x + o * SW;
        float m = -INFINITY;
        int32_t q = -1, qo = q0 + (int32_t)o * SW;
        for (int32_t i = 0; i < KH; i++)
            for (int32_t j = 0; j < KW; j++) {
                float v = px[i * D * ldx + j * D];
                int take = (v > m) | (v != v);
                m = take ? v : m;
                q = take ? qo + i * D * W + j * D : q;
            }
        out[o] = m;
        if (idx) idx[o] = q;
    }
}

/* One tap of max_row_k2/k3's running maximum m (index q): value v at real flat index qi. */
#define MAX_TAP(v, qi)                        \
    do {                                      \
        float v_ = (v);                       \
        int take_ = (v_ > m) | (v_ != v_);    \
        m = take_ ? v_ : m;                   \
        q = take_ ? (qi) : q;                 \
    } while (0)

/* The maximum of a 2 x 2 / 3 x 3 window (taps of row i at r_i[c + j]), its real flat index
 * (qo + i * W + j) in *qout. */
static inline float max_k2(const float *r0, const float *r1, int64_t c, int32_t qo, int32_t W, int32_t *qout) {
    float m = -INFINITY;
    int32_t q = -1;
    MAX_TAP(r0[c], qo);
    MAX_TAP(r0[c + 1], qo + 1);
    MAX_TAP(r1[c], qo + W);
    MAX_TAP(r1[c + 1], qo + W + 1);
    *qout = q;
    return m;
}

static inline float max_k3(const float *r0, const float *r1, const float *r2, int64_t c, int32_t qo,
                           int32_t W, int32_t *qout) {
    float m = -INFINITY;
    int32_t q = -1;
    MAX_TAP(r0[c], qo);
    MAX_TAP(r0[c + 1], qo + 1);
    MAX_TAP(r0[c + 2], qo + 2);
    MAX_TAP(r1[c], qo + W);
    MAX_TAP(r1[c + 1], qo + W + 1);
    MAX_TAP(r1[c + 2], qo + W + 2);
    MAX_TAP(r2[c], qo + 2 * W);
    MAX_TAP(r2[c + 1], qo + 2 * W + 1);
    MAX_TAP(r2[c + 2], qo + 2 * W + 2);
    *qout = q;
    return m;
}

/* max_row for 2 x 2 and 3 x 3 windows with dilation 1, taps written out and the loops over
 * outputs free of branches so that they vectorise (SW is a literal at each call). */
static inline void max_row_k2(float *restrict out, int64_t *restrict idx, const float *restrict x,
                              int64_t ldx, int32_t q0, int32_t W, int64_t n, int64_t SW) {
    const float *r0 = x, *r1 = x + ldx;
    int32_t q;
    if (idx)
        for (int64_t o = 0; o < n; o++) {
            out[o] = max_k2(r0, r1, o * SW, q0 + (int32_t)(o * SW), W, &q);
            idx[o] = q;
        }
    else
        for (int64_t o = 0; o < n; o++) out[o] = max_k2(r0, r1, o * SW, 0, W, &q);
}

static inline void max_row_k3(float *restrict out, int64_t *restrict idx, const float *restrict x,
                              int64_t ldx, int32_t q0, int32_t W, int64_t n, int64_t SW) {
    const float *r0 = x, *r1 = x + ldx, *r2 = x + 2 * ldx;
    int32_t q;
    if (idx)
        for (int64_t o = 0; o < n; o++) {
            out[o] = max_k3(r0, r1, r2, o * SW, q0 + (int32_t)(o * SW), W, &q);
            idx[o] = q;
        }
    else
        for (int64_t o = 0; o < n; o++) out[o] = max_k3(r0, r1, r2, o * SW, 0, W, &q);
}

static void max_row_any(float *out, int64_t *idx, const float *x, int64_t ldx, int32_t q0,
                        const pool_geom *g, int64_t n) {
    int32_t W = (int32_t)g->W;
    if (g->d == 1 && g->kh == 2 && g->kw == 2) {
        if (g->sw == 2) max_row_k2(out, idx, x, ldx, q0, W, n, 2);
        else if (g->sw == 1) max_row_k2(out, idx, x, ldx, q0, W, n, 1);
        else max_row_k2(out, idx, x, ldx, q0, W, n, g->sw);
    } else if (g->d == 1 && g->kh == 3 && g->kw == 3) {
        if (g->sw == 2) max_row_k3(out, idx, x, ldx, q0, W, n, 2);
        else if (g->sw == 1) max_row_k3(out, idx, x, ldx, q0, W, n, 1);
        else max_row_k3(out, idx, x, ldx, q0, W, n, g->sw);
    } else {
        max_row(out, idx, x, ldx, q0, W, n, (int32_t)g->kh, (int32_t)g->kw, (int32_t)g->sw, (int32_t)g->d);
    }
}

/* max_row for 3 x 3 windows of stride 2 over copy_split's rows (row stride ldx, odd columns at
 * + half). */
static void max_row_k3s2_split(float *restrict out, int64_t *restrict idx, const float *restrict x,
                               int64_t ldx, int64_t half, int32_t q0, int32_t W, int64_t n) {
    const float *e0 = x, *e1 = x + ldx, *e2 = x + 2 * ldx;
    const float *o0 = e0 + half, *o1 = e1 + half, *o2 = e2 + half;
    if (idx)
        for (int64_t o = 0; o < n; o++) {
            float m = -INFINITY;
            int32_t q = -1, qo = q0 + 2 * (int32_t)o;
            MAX_TAP(e0[o], qo);
            MAX_TAP(o0[o], qo + 1);
            MAX_TAP(e0[o + 1], qo + 2);
            MAX_TAP(e1[o], qo + W);
            MAX_TAP(o1[o], qo + W + 1);
            MAX_TAP(e1[o + 1], qo + W + 2);
            MAX_TAP(e2[o], qo + 2 * W);
            MAX_TAP(o2[o], qo + 2 * W + 1);
            MAX_TAP(e2[o + 1], qo + 2 * W + 2);
            out[o] = m;
            idx[o] = q;
        }
    else
        for (int64_t o = 0; o < n; o++) { /* values only: q is left as it is */
            float m = -INFINITY;
            int32_t q = -1;
            MAX_TAP(e0[o], q);
            MAX_TAP(o0[o], q);
            MAX_TAP(e0[o + 1], q);
            MAX_TAP(e1[o], q);
            MAX_TAP(o1[o], q);
            MAX_TAP(e1[o + 1], q);
            MAX_TAP(e2[o], q);
            MAX_TAP(o2[o], q);
            MAX_TAP(e2[o + 1], q);
            out[o] = m;
        }
}

#undef MAX_TAP

/* 2 x 2 windows of stride 2 and dilation 1 on AVX-512 (the MNIST ConvNet's pools): 16 outputs
 * at a time from two 32-float loads per input row, their even and odd columns parted by one
 * permute each. max_row's rule (a tap replaces the running maximum when larger or NaN, taps in
 * row order) is applied as a tree, (t00, t01) then (t10, t11) then the two: it keeps the first
 * of equal maxima and the last NaN, as the scan does, with half its dependency chain. A scan
 * from -inf leaves index -1 to a window of -inf only (max_row's contract, with_pad); a plane
 * without padding starts from the first tap, as max_one does. The last outputs of a row run
 * masked. */
#if BCML_AVX512_BUILD
#define HAVE_POOL_AVX512 1
#define AVX512 BCML_AVX512

/* (m, q) = b if b is larger than a or NaN, else a (indices qa, qb) */
#define PICK16(m, q, a, qa, b, qb)                                                                          \
    do {                                                                                                    \
        __mmask16 t_ = _mm512_cmp_ps_mask((b), (a), _CMP_GT_OQ) | _mm512_cmp_ps_mask((b), (b), _CMP_UNORD_Q); \
        m = _mm512_mask_blend_ps(t_, (a), (b));                                                             \
        q = _mm512_mask_blend_epi32(t_, (qa), (qb));                                                        \
    } while (0)

AVX512 static inline __attribute__((always_inline)) void
max_row_k2s2_avx512(float *restrict out, int64_t *restrict idx, const float *restrict x, int64_t ldx, int32_t q0,
                    int32_t W, int64_t n, int with_pad) {
    const float *r0 = x, *r1 = x + ldx;
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    const __m512i one = _mm512_set1_epi32(1), w = _mm512_set1_epi32(W);
    for (int64_t o = 0; o < n; o += 16) {
        int64_t cnt = n - o < 16 ? n - o : 16, c = 2 * o;
        __mmask16 mo = (__mmask16)((1u << cnt) - 1);
        /* the input columns [c, c + 2 cnt) in two loads of 16 */
        int64_t lo = 2 * cnt < 16 ? 2 * cnt : 16, hi = 2 * cnt - lo;
        __mmask16 ml = (__mmask16)((1u << lo) - 1), mh = (__mmask16)((1u << hi) - 1);
        __m512 a0 = _mm512_maskz_loadu_ps(ml, r0 + c), a1 = _mm512_maskz_loadu_ps(mh, r0 + c + 16);
        __m512 b0 = _mm512_maskz_loadu_ps(ml, r1 + c), b1 = _mm512_maskz_loadu_ps(mh, r1 + c + 16);
        __m512 ae = _mm512_permutex2var_ps(a0, even, a1), ao = _mm512_permutex2var_ps(a0, odd, a1);
        __m512 be = _mm512_permutex2var_ps(b0, even, b1), bo = _mm512_permutex2var_ps(b0, odd, b1);
        __m512i q00 = _mm512_add_epi32(_mm512_set1_epi32(q0 + (int32_t)c), even);
        __m512i q01 = _mm512_add_epi32(q00, one), q10 = _mm512_add_epi32(q00, w), q11 = _mm512_add_epi32(q10, one);
        __m512 m0, m1, m;
        __m512i p0, p1, q;
        PICK16(m0, p0, ae, q00, ao, q01);
        PICK16(m1, p1, be, q10, bo, q11);
        PICK16(m, q, m0, p0, m1, p1);
        if (with_pad) /* every tap -inf: the scan from -inf took none */
            q = _mm512_mask_blend_epi32(_mm512_cmp_ps_mask(m, _mm512_set1_ps(-INFINITY), _CMP_EQ_OQ), q,
                                        _mm512_set1_epi32(-1));
        _mm512_mask_storeu_ps(out + o, mo, m);
        if (idx) {
            _mm512_mask_storeu_epi64(idx + o, (__mmask8)(mo & 0xff), _mm512_cvtepi32_epi64(_mm512_castsi512_si256(q)));
            _mm512_mask_storeu_epi64(idx + o + 8, (__mmask8)(mo >> 8),
                                     _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(q, 1)));
        }
    }
}
#undef PICK16

/* max_row's contract (rows of a padded copy) */
AVX512 static void max_row_k2s2(float *out, int64_t *idx, const float *x, int64_t ldx, int32_t q0, int32_t W,
                                int64_t n) {
    max_row_k2s2_avx512(out, idx, x, ldx, q0, W, n, 1);
}

/* A whole plane (H, W) -> (OH, OW) whose windows are all inside it. */
AVX512 static void max_plane_k2s2(float *restrict out, int64_t *restrict idx, const float *restrict x, int64_t W,
                                  int64_t OH, int64_t OW) {
    if (idx)
        for (int64_t oh = 0; oh < OH; oh++)
            max_row_k2s2_avx512(out + oh * OW, idx + oh * OW, x + 2 * oh * W, W, (int32_t)(2 * oh * W), (int32_t)W,
                                OW, 0);
    else
        for (int64_t oh = 0; oh < OH; oh++)
            max_row_k2s2_avx512(out + oh * OW, NULL, x + 2 * oh * W, W, 0, (int32_t)W, OW, 0);
}

#else
#define HAVE_POOL_AVX512 0
#endif

/* The vector loops leave n % 4 outputs to a scalar tail whose unpredictable branches cost more
 * than the rest of a short row: rows run as a multiple of 4 outputs and then their last 4 outputs
 * (recomputing up to 3 of them to the same values). */
static void max_row_fast(float *out, int64_t *idx, const float *x, int64_t ldx, int32_t q0,
                         const pool_geom *g, int64_t n) {
#if HAVE_POOL_AVX512
    if (g->d == 1 && g->kh == 2 && g->kw == 2 && g->sw == 2 && bcml_have_avx512()) {
        max_row_k2s2(out, idx, x, ldx, q0, (int32_t)g->W, n);
        return;
    }
#endif
    if (n < 4 || n % 4 == 0) {
        max_row_any(out, idx, x, ldx, q0, g, n);
        return;
    }
    int64_t s = n - 4;
    max_row_any(out, idx, x, ldx, q0, g, n - n % 4);
    max_row_any(out + s, idx ? idx + s : NULL, x + s * g->sw, ldx, q0 + (int32_t)(s * g->sw), g, 4);
}

static void max_row_split(float *out, int64_t *idx, const float *x, int64_t ldx, int32_t q0,
                          const pool_geom *g, int64_t n) {
    int64_t half = (ldx + 1) / 2, s = n - 4;
    int32_t W = (int32_t)g->W;
    if (n < 4 || n % 4 == 0) {
        max_row_k3s2_split(out, idx, x, ldx, half, q0, W, n);
        return;
    }
    max_row_k3s2_split(out, idx, x, ldx, half, q0, W, n - n % 4);
    max_row_k3s2_split(out + s, idx ? idx + s : NULL, x + s, ldx, half, q0 + (int32_t)(2 * s), W, 4);
}

/* Settles the outputs max_row left at index -1 (every tap -inf) with the checked reference. */
static void max_fix_row(float *out, int64_t *idx, const float *x, const pool_geom *g, int64_t oh,
                        int64_t ow0, int64_t n) {
    for (int64_t o = 0; o < n; o++)
        if (idx[o] < 0) max_one(out + o, idx + o, x, g, oh * g->sh - g->ph, (ow0 + o) * g->sw - g->pw);
}

static void max_fw_planes(const pool_job *j, int64_t p0, int64_t p1, float *scratch) {
    const pool_geom *g = j->g;
    int64_t H = g->H, W = g->W, OH = g->OH, OW = g->OW, Hp = j->Hp, Wp = j->Wp;
    int64_t oh0 = 0, oh1 = OH, ow0 = 0, ow1 = OW;
    if (scratch) fill(scratch, Hp * Wp, -INFINITY);
    else {
        interior(H, g->kh, g->sh, g->ph, g->d, OH, &oh0, &oh1);
        interior(W, g->kw, g->sw, g->pw, g->d, OW, &ow0, &ow1);
    }
#if HAVE_POOL_AVX512
    if (j->k2s2) {
        for (int64_t p = p0; p < p1; p++)
            max_plane_k2s2(j->out + p * OH * OW, j->idx ? j->idx + p * OH * OW : NULL, j->x + p * H * W, W, OH, OW);
        return;
    }
#endif
    for (int64_t p = p0; p < p1; p++) {
        const float *x = j->x + p * H * W;          /* (H, W) */
        float *out = j->out + p * OH * OW;          /* (OH, OW) */
        int64_t *idx = j->idx ? j->idx + p * OH * OW : NULL;
        if (scratch && j->split) copy_split(scratch, x, g, Hp, Wp);
        else if (scratch) copy_padded(scratch, x, g, Hp, Wp);
        for (int64_t oh = 0; oh < OH; oh++) {
            int64_t h0 = oh * g->sh - g->ph, o = oh * OW;
            int64_t *io = idx ? idx + o : NULL;
            if (scratch) {
                int32_t q0 = (int32_t)(h0 * W - g->pw);
                if (j->split) max_row_split(out + o, io, scratch + oh * g->sh * Wp, Wp, q0, g, OW);
                else max_row_fast(out + o, io, scratch + oh * g->sh * Wp, Wp, q0, g, OW);
                if (io) max_fix_row(out + o, io, x, g, oh, 0, OW);
                continue;
            }
            if (oh < oh0 || oh >= oh1) { /* a large plane's border rows */
                for (int64_t ow = 0; ow < OW; ow++)
                    max_one(out + o + ow, io ? io + ow : NULL, x, g, h0, ow * g->sw - g->pw);
                continue;
            }
            for (int64_t ow = 0; ow < ow0; ow++)
                max_one(out + o + ow, io ? io + ow : NULL, x, g, h0, ow * g->sw - g->pw);
            int64_t w0 = ow0 * g->sw - g->pw;
            if (W * H < ((int64_t)1 << 30)) {
                max_row_fast(out + o + ow0, io ? io + ow0 : NULL, x + h0 * W + w0, W, (int32_t)(h0 * W + w0), g,
                             ow1 - ow0);
                if (io) max_fix_row(out + o + ow0, io + ow0, x, g, oh, ow0, ow1 - ow0);
            } else {
                for (int64_t ow = ow0; ow < ow1; ow++)
                    max_one(out + o + ow, io ? io + ow : NULL, x, g, h0, ow * g->sw - g->pw);
            }
            for (int64_t ow = ow1; ow < OW; ow++)
                max_one(out + o + ow, io ? io + ow : NULL, x, g, h0, ow * g->sw - g->pw);
        }
    }
}

/* in: x (N, C, H, W) or (C, H, W); args in bcml.h. When recording, saved[0] = the argmax of
 * every output (int64, out's shape): its flat index h * W + w in its input plane (-1 for a
 * window of padding only). */
bcml_status bcml_max_pool2d_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err) {
    (void)ctx;
    pool_geom g;
    bcml_status st = pool_setup(n, "max_pool2d", 1, &g, err);
    if (st) return st;
    const bcml_tensor *x = n->in[0];
    if ((st = pool_output(&out[0], x, g.OH, g.OW, err))) return st;
    bcml_tensor *idx = NULL; /* out's shape */
    if (n->recording && (st = bcml_tensor_new_like(&idx, out[0], BCML_INT64, 0, err))) return st;
    pool_job j = {.g = &g, .fn = max_fw_planes, .out = bcml_f32(out[0]), .x = bcml_f32(x),
                  .idx = idx ? bcml_i64(idx) : NULL};
    /* 3 x 3 windows of stride 2 (ResNet's stem) always go through a split copy */
    j.split = g.d == 1 && g.kh == 3 && g.kw == 3 && g.sw == 2;
    padded_size(&g, j.split, &j.Hp, &j.Wp);
    j.split = j.split && j.Hp > 0;
    j.k2s2 = HAVE_POOL_AVX512 && g.kh == 2 && g.kw == 2 && g.sh == 2 && g.sw == 2 && g.ph == 0 && g.pw == 0 &&
             g.d == 1 && 2 * g.OH <= g.H && 2 * g.OW <= g.W && g.H * g.W < ((int64_t)1 << 30) && bcml_have_avx512();
    if ((st = run_planes(&j, pool_work(&g), "max_pool2d", err))) {
        bcml_tensor_unref(idx);
        return st;
    }
    n->saved[0] = idx;
    return BCML_OK;
}

static void max_bw_planes(const pool_job *j, int64_t p0, int64_t p1, float *scratch) {
    (void)scratch;
    int64_t HW = j->g->H * j->g->W, OHW = j->g->OH * j->g->OW;
    for (int64_t p = p0; p < p1; p++) {
        float *dx = j->dx + p * HW;                  /* (H, W) += */
        const float *g = j->dout + p * OHW;          /* (OH, OW) */
        const int64_t *idx = j->cidx + p * OHW;      /* (OH, OW) */
        if (j->fresh) memset(dx, 0, (size_t)HW * sizeof *dx); /* a new buffer: zeroed here, in cache */
        for (int64_t o = 0; o < OHW; o++)
            if (idx[o] >= 0) dx[idx[o]] += g[o];
    }
}

bcml_status bcml_max_pool2d_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err) {
    if (!din[0]) return BCML_OK;
    if (!n->saved[0])
        return bcml_fail(err, BCML_ERUNTIME, "max_pool2d backward: the forward saved no indices");
    const bcml_tensor *x = n->in[0];
    int c = x->ndim - 3;
    pool_geom g = {.P = x->shape[c] * (c ? x->shape[0] : 1), .H = x->shape[c + 1], .W = x->shape[c + 2],
                   .OH = dout->shape[dout->ndim - 2], .OW = dout->shape[dout->ndim - 1]};
    pool_job j = {.g = &g, .fn = max_bw_planes, .dx = bcml_f32(din[0]), .dout = bcml_f32(dout),
                  .cidx = bcml_i64(n->saved[0]), .fresh = n->fresh & 1u};
    return run_planes(&j, (double)g.H * g.W / 4 + (double)g.OH * g.OW, "max_pool2d backward", err);
}

/* ---- avg_pool2d -------------------------------------------------------------------------- */
/* The window of output (oh, ow) clipped to the input: rows [*h0, *h1), columns [*w0, *w1);
 * returns the divisor. */
static inline float avg_window(const pool_geom *g, int64_t oh, int64_t ow, int64_t *h0, int64_t *h1,
                               int64_t *w0, int64_t *w1) {
    int64_t hs = oh * g->sh - g->ph, ws = ow * g->sw - g->pw;
    int64_t he = hs + g->kh < g->H + g->ph ? hs + g->kh : g->H + g->ph;
    int64_t we = ws + g->kw < g->W + g->pw ? ws + g->kw : g->W + g->pw;
    int64_t pool = (he - hs) * (we - ws);
    hs = hs > 0 ? hs : 0;
    ws = ws > 0 ? ws : 0;
    he = he < g->H ? he : g->H;
    we = we < g->W ? we : g->W;
    *h0 = hs; *h1 = he; *w0 = ws; *w1 = we;
    return (float)(g->count_include_pad ? pool : (he - hs) * (we - ws));
}

/* One output with bounds checks (the reference). */
static inline void avg_one(float *out, const float *x, /* (H, W) */ const pool_geom *g, int64_t oh,
                           int64_t ow) {
    int64_t h0, h1, w0, w1;
    float div = avg_window(g, oh, ow, &h0, &h1, &w0, &w1);
    float s = 0.0f;
    for (int64_t h = h0; h < h1; h++)
        for (int64_t w = w0; w < w1; w++) s += x[h * g->W + w];
    *out = h0 < h1 && w0 < w1 ? s / div : 0.0f;
}

/* Outputs [0, n) of one row without bounds checks: output o sums x[o * SW + i * ldx + j]
 * (padding holds zeros) row by row, as PyTorch, and divides by div[o] (NULL: KH * KW). */
static inline void avg_row(float *restrict out,         /* (n) */
                           const float *restrict x,
                           int64_t ldx,
                           const float *restrict div,   /* (n) or NULL */
                           int64_t n, int64_t KH, int64_t KW, int64_t SW) {
    float kdiv = (float)(KH * KW);
    for (int64_t o = 0; o < n; o++) {
        const float *px = x + o * SW;
        float s = 0.0f;
        for (int64_t i = 0; i < KH; i++)
            for (int64_t j = 0; j < KW; j++) s += px[i * ldx + j];
        out[o] = s / (div ? div[o] : kdiv);
    }
}

/* avg_row for 2 x 2 and 3 x 3 windows, sums written out (in avg_row's order) so that the loop
 * over outputs vectorises (SW is a literal at each call). */
static inline void avg_row_k2(float *restrict out, const float *restrict x, int64_t ldx,
                              const float *restrict div, int64_t n, int64_t SW) {
    const float *r0 = x, *r1 = x + ldx;
    for (int64_t o = 0; o < n; o++) {
        int64_t c = o * SW;
        float s = 0.0f;
        s += r0[c]; s += r0[c + 1];
        s += r1[c]; s += r1[c + 1];
        out[o] = s / (div ? div[o] : 4.0f);
    }
}

static inline void avg_row_k3(float *restrict out, const float *restrict x, int64_t ldx,
                              const float *restrict div, int64_t n, int64_t SW) {
    const float *r0 = x, *r1 = x + ldx, *r2 = x + 2 * ldx;
    for (int64_t o = 0; o < n; o++) {
        int64_t c = o * SW;
        float s = 0.0f;
        s += r0[c]; s += r0[c + 1]; s += r0[c + 2];
        s += r1[c]; s += r1[c + 1]; s += r1[c + 2];
        s += r2[c]; s += r2[c + 1]; s += r2[c + 2];
        out[o] = s / (div ? div[o] : 9.0f);
    }
}

static void avg_row_any(float *out, const float *x, int64_t ldx, const float *div, const pool_geom *g,
                        int64_t n) {
    if (g->kh == 2 && g->kw == 2 && g->sw == 2) avg_row_k2(out, x, ldx, div, n, 2);
    else if (g->kh == 2 && g->kw == 2 && g->sw == 1) avg_row_k2(out, x, ldx, div, n, 1);
    else if (g->kh == 3 && g->kw == 3 && g->sw == 1) avg_row_k3(out, x, ldx, div, n, 1);
    else if (g->kh == 3 && g->kw == 3 && g->sw == 2) avg_row_k3(out, x, ldx, div, n, 2);
    else avg_row(out, x, ldx, div, n, g->kh, g->kw, g->sw);
}

/* As max_row_fast: a multiple of 4 outputs, then the last 4. */
static void avg_row_fast(float *out, const float *x, int64_t ldx, const float *div, const pool_geom *g,
                         int64_t n) {
    if (n < 4 || n % 4 == 0) {
        avg_row_any(out, x, ldx, div, g, n);
        return;
    }
    int64_t s = n - 4;
    avg_row_any(out, x, ldx, div, g, n - n % 4);
    avg_row_any(out + s, x + s * g->sw, ldx, div ? div + s : NULL, g, 4);
}

static void avg_fw_planes(const pool_job *j, int64_t p0, int64_t p1, float *scratch) {
    const pool_geom *g = j->g;
    int64_t H = g->H, W = g->W, OH = g->OH, OW = g->OW, Hp = j->Hp, Wp = j->Wp;
    int64_t oh0 = 0, oh1 = OH, ow0 = 0, ow1 = OW;
    if (scratch) fill(scratch, Hp * Wp, 0.0f);
    else {
        interior(H, g->kh, g->sh, g->ph, 1, OH, &oh0, &oh1);
        interior(W, g->kw, g->sw, g->pw, 1, OW, &ow0, &ow1);
    }
    for (int64_t p = p0; p < p1; p++) {
        const float *x = j->x + p * H * W;   /* (H, W) */
        float *out = j->out + p * OH * OW;   /* (OH, OW) */
        if (scratch) {
            copy_padded(scratch, x, g, Hp, Wp);
            for (int64_t oh = 0; oh < OH; oh++)
                avg_row_fast(out + oh * OW, scratch + oh * g->sh * Wp, Wp, j->div + oh * OW, g, OW);
            continue;
        }
        for (int64_t oh = 0; oh < OH; oh++) {
            float *o = out + oh * OW;
            if (oh < oh0 || oh >= oh1) {
                for (int64_t ow = 0; ow < OW; ow++) avg_one(o + ow, x, g, oh, ow);
                continue;
            }
            for (int64_t ow = 0; ow < ow0; ow++) avg_one(o + ow, x, g, oh, ow);
            avg_row_fast(o + ow0, x + (oh * g->sh - g->ph) * W + ow0 * g->sw - g->pw, W, NULL, g, ow1 - ow0);
            for (int64_t ow = ow1; ow < OW; ow++) avg_one(o + ow, x, g, oh, ow);
        }
    }
}

/* The padded path's divisor of every output (OH, OW), allocated here (bcml_free it). */
static float *avg_divisors(const pool_geom *g) {
    float *div = bcml_alloc((size_t)(g->OH * g->OW) * sizeof(float));
    if (!div) return NULL;
    for (int64_t oh = 0; oh < g->OH; oh++)
        for (int64_t ow = 0; ow < g->OW; ow++) {
            int64_t h0, h1, w0, w1;
            div[oh * g->OW + ow] = avg_window(g, oh, ow, &h0, &h1, &w0, &w1);
        }
    return div;
}

static bcml_status avg_run(pool_job *j, const pool_geom *g, const char *op, bcml_err *err) {
    padded_size(g, 0, &j->Hp, &j->Wp);
    float *div = NULL;
    if (j->Hp > 0 && !(div = avg_divisors(g)))
        return bcml_fail(err, BCML_ENOMEM, "%s: out of memory for the divisors", op);
    j->div = div;
    bcml_status st = run_planes(j, pool_work(g), op, err);
    bcml_free(div);
    return st;
}

/* in: x (N, C, H, W) or (C, H, W); args in bcml.h. Saves nothing (backward needs only shapes). */
bcml_status bcml_avg_pool2d_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err) {
    (void)ctx;
    pool_geom g;
    bcml_status st = pool_setup(n, "avg_pool2d", 0, &g, err);
    if (st) return st;
    const bcml_tensor *x = n->in[0];
    if ((st = pool_output(&out[0], x, g.OH, g.OW, err))) return st;
    pool_job j = {.g = &g, .fn = avg_fw_planes, .out = bcml_f32(out[0]), .x = bcml_f32(x)};
    return avg_run(&j, &g, "avg_pool2d", err);
}

/* Backward of avg_row: dx[o * SW + i * ldx + j] += dout[o] / div[o] for every tap, tap by tap
 * so each pass over o writes distinct places. */
static inline void avg_row_bw(float *restrict dx,
                              int64_t ldx,
                              const float *restrict dout,  /* (n) */
                              const float *restrict div,   /* (n) or NULL: KH * KW */
                              int64_t n, int64_t KH, int64_t KW, int64_t SW) {
    float kdiv = (float)(KH * KW), v[256];
    for (int64_t o0 = 0; o0 < n; o0 += 256) {
        int64_t m = n - o0 < 256 ? n - o0 : 256;
        for (int64_t o = 0; o < m; o++) v[o] = dout[o0 + o] / (div ? div[o0 + o] : kdiv);
        float *d = dx + o0 * SW;
        for (int64_t i = 0; i < KH; i++)
            for (int64_t jj = 0; jj < KW; jj++)
                for (int64_t o = 0; o < m; o++) d[o * SW + i * ldx + jj] += v[o];
    }
}

static void avg_row_bw_fast(float *dx, int64_t ldx, const float *dout, const float *div, const pool_geom *g,
                            int64_t n) {
    if (g->kh == 2 && g->kw == 2 && g->sw == 2) avg_row_bw(dx, ldx, dout, div, n, 2, 2, 2);
    else if (g->kh == 3 && g->kw == 3 && g->sw == 1) avg_row_bw(dx, ldx, dout, div, n, 3, 3, 1);
    else if (g->kh == 3 && g->kw == 3 && g->sw == 2) avg_row_bw(dx, ldx, dout, div, n, 3, 3, 2);
    else avg_row_bw(dx, ldx, dout, div, n, g->kh, g->kw, g->sw);
}

static void avg_bw_planes(const pool_job *j, int64_t p0, int64_t p1, float *scratch) {
    const pool_geom *g = j->g;
    int64_t H = g->H, W = g->W, OH = g->OH, OW = g->OW, Hp = j->Hp, Wp = j->Wp;
    int64_t oh0 = 0, oh1 = OH, ow0 = 0, ow1 = OW;
    if (!scratch) {
        interior(H, g->kh, g->sh, g->ph, 1, OH, &oh0, &oh1);
        interior(W, g->kw, g->sw, g->pw, 1, OW, &ow0, &ow1);
    }
    for (int64_t p = p0; p < p1; p++) {
        float *dx = j->dx + p * H * W;                 /* (H, W) += */
        const float *dout = j->dout + p * OH * OW;     /* (OH, OW) */
        if (scratch) { /* accumulate into the zeroed padded plane, then add its real part */
            fill(scratch, Hp * Wp, 0.0f);
            for (int64_t oh = 0; oh < OH; oh++)
                avg_row_bw_fast(scratch + oh * g->sh * Wp, Wp, dout + oh * OW, j->div + oh * OW, g, OW);
            int64_t hc = Hp - g->ph < H ? Hp - g->ph : H, wc = Wp - g->pw < W ? Wp - g->pw : W;
            for (int64_t h = 0; h < hc; h++) {
                float *restrict d = dx + h * W;
                const float *restrict s = scratch + (h + g->ph) * Wp + g->pw;
                for (int64_t w = 0; w < wc; w++) d[w] += s[w];
            }
            continue;
        }
        for (int64_t oh = 0; oh < OH; oh++) {
            int inside = oh >= oh0 && oh < oh1;
            if (inside)
                avg_row_bw_fast(dx + (oh * g->sh - g->ph) * W + ow0 * g->sw - g->pw, W, dout + oh * OW + ow0, NULL,
                                g, ow1 - ow0);
            for (int64_t ow = 0; ow < OW; ow++) {
                if (inside && ow >= ow0 && ow < ow1) continue;
                int64_t h0, h1, w0, w1;
                float v = dout[oh * OW + ow] / avg_window(g, oh, ow, &h0, &h1, &w0, &w1);
                for (int64_t h = h0; h < h1; h++)
                    for (int64_t w = w0; w < w1; w++) dx[h * W + w] += v;
            }
        }
    }
}

bcml_status bcml_avg_pool2d_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err) {
    if (!din[0]) return BCML_OK;
    pool_geom g;
    bcml_status st = pool_setup(n, "avg_pool2d", 0, &g, err);
    if (st) return st;
    pool_job j = {.g = &g, .fn = avg_bw_planes, .dx = bcml_f32(din[0]), .dout = bcml_f32(dout)};
    return avg_run(&j, &g, "avg_pool2d backward", err);
}

/* ---- adaptive_avg_pool2d ----------------------------------------------------------------- */
static inline int64_t ad_start(int64_t a, int64_t b, int64_t c) { return (a / b) * c + ((a % b) * c) / b; }
static inline int64_t ad_end(int64_t a, int64_t b, int64_t c) { return 1 + ((a + 1) * c - 1) / b; }

/* Runs an adaptive pooling job with its window bounds computed once (none for output (1, 1)). */
static bcml_status adaptive_run(pool_job *j, const char *op, bcml_err *err) {
    const pool_geom *g = j->g;
    int64_t *b = NULL; /* (2 * OH + 2 * OW) */
    if (!(g->OH == 1 && g->OW == 1) && g->P > 0) {
        if (!(b = bcml_alloc((size_t)(2 * (g->OH + g->OW)) * sizeof(int64_t))))
            return bcml_fail(err, BCML_ENOMEM, "%s: out of memory for the window bounds", op);
        for (int64_t i = 0; i < g->OH; i++) {
            b[i] = ad_start(i, g->OH, g->H);
            b[g->OH + i] = ad_end(i, g->OH, g->H);
        }
        for (int64_t i = 0; i < g->OW; i++) {
            b[2 * g->OH + i] = ad_start(i, g->OW, g->W);
            b[2 * g->OH + g->OW + i] = ad_end(i, g->OW, g->W);
        }
    }
    j->bounds = b;
    bcml_status st = run_planes(j, (double)g->H * g->W + (double)g->OH * g->OW, op, err);
    bcml_free(b);
    return st;
}

static void adaptive_fw_planes(const pool_job *j, int64_t p0, int64_t p1, float *scratch) {
    (void)scratch;
    const pool_geom *g = j->g;
    int64_t H = g->H, W = g->W, OH = g->OH, OW = g->OW, HW = H * W;
    if (OH == 1 && OW == 1) { /* the mean of each plane */
        const float *restrict x = j->x;
        float *restrict out = j->out;
        float div = (float)HW;
        if (HW == 1) {
            memcpy(out + p0, x + p0, (size_t)(p1 - p0) * sizeof(float));
            return;
        }
        for (int64_t p = p0; p < p1; p++) {
            float s = 0.0f;
            for (int64_t i = 0; i < HW; i++) s += x[p * HW + i];
            out[p] = s;
        }
        for (int64_t p = p0; p < p1; p++) out[p] /= div;
        return;
    }
    const int64_t *hs = j->bounds, *he = hs + OH, *ws = he + OH, *we = ws + OW;
    for (int64_t p = p0; p < p1; p++) {
        const float *x = j->x + p * HW;       /* (H, W) */
        float *out = j->out + p * OH * OW;    /* (OH, OW) */
        for (int64_t oh = 0; oh < OH; oh++) {
            int64_t h0 = hs[oh], h1 = he[oh];
            for (int64_t ow = 0; ow < OW; ow++) {
                int64_t w0 = ws[ow], w1 = we[ow];
                float s = 0.0f;
                for (int64_t h = h0; h < h1; h++)
                    for (int64_t w = w0; w < w1; w++) s += x[h * W + w];
                out[oh * OW + ow] = s / (float)(h1 - h0) / (float)(w1 - w0);
            }
        }
    }
}

/* in: x (N, C, H, W) or (C, H, W); i[0..1] output size (OH, OW). Saves nothing. */
bcml_status bcml_adaptive_avg_pool2d_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err) {
    (void)ctx;
    const bcml_tensor *x = n->in[0];
    int64_t OH = n->args.i[0], OW = n->args.i[1];
    bcml_status st = bcml_require_dtype(x, BCML_FLOAT32, "adaptive_avg_pool2d", "input", err);
    if (st) return st;
    if (OH < 1 || OW < 1 || OH > POOL_ARG_MAX || OW > POOL_ARG_MAX)
        return bcml_fail(err, BCML_EVALUE,
                         "adaptive_avg_pool2d: output_size must be positive (and below 2^31), got (%lld, %lld)",
                         (long long)OH, (long long)OW);
    /* PyTorch computes output (1, 1) as a mean over H x W, which gives NaN for an empty plane
     * instead of the error of every other output size */
    if ((x->ndim == 3 || x->ndim == 4) && OH == 1 && OW == 1) st = BCML_OK;
    else if ((st = pool_input(x, "adaptive_avg_pool2d", 1, err))) return st;
    int c = x->ndim - 3;
    pool_geom g = {.P = x->shape[c] * (c ? x->shape[0] : 1), .H = x->shape[c + 1], .W = x->shape[c + 2],
                   .OH = OH, .OW = OW};
    if ((g.H && OH > (INT64_MAX / 4) / g.H) || (g.W && OW > (INT64_MAX / 4) / g.W)) /* window bounds */
        return bcml_fail(err, BCML_EVALUE, "adaptive_avg_pool2d: output_size (%lld, %lld) is too large for the input",
                         (long long)OH, (long long)OW);
    if ((st = pool_output(&out[0], x, OH, OW, err))) return st;
    pool_job j = {.g = &g, .fn = adaptive_fw_planes, .out = bcml_f32(out[0]), .x = bcml_f32(x)};
    return adaptive_run(&j, "adaptive_avg_pool2d", err);
}

static void adaptive_bw_planes(const pool_job *j, int64_t p0, int64_t p1, float *scratch) {
    (void)scratch;
    const pool_geom *g = j->g;
    int64_t H = g->H, W = g->W, OH = g->OH, OW = g->OW, HW = H * W;
    if (OH == 1 && OW == 1) { /* mean's backward: dout / (H * W) everywhere */
        float div = (float)HW, v[256];
        float *restrict dx = j->dx;
        const float *restrict dout = j->dout;
        for (int64_t b = p0; b < p1; b += 256) {
            int64_t m = p1 - b < 256 ? p1 - b : 256;
            for (int64_t k = 0; k < m; k++) v[k] = dout[b + k] / div;
            if (HW == 1)
                for (int64_t k = 0; k < m; k++) dx[b + k] += v[k];
            else
                for (int64_t k = 0; k < m; k++)
                    for (int64_t i = 0; i < HW; i++) dx[(b + k) * HW + i] += v[k];
        }
        return;
    }
    const int64_t *hs = j->bounds, *he = hs + OH, *ws = he + OH, *we = ws + OW;
    for (int64_t p = p0; p < p1; p++) {
        float *dx = j->dx + p * HW;                 /* (H, W) += */
        const float *dout = j->dout + p * OH * OW;  /* (OH, OW) */
        for (int64_t oh = 0; oh < OH; oh++) {
            int64_t h0 = hs[oh], h1 = he[oh];
            for (int64_t ow = 0; ow < OW; ow++) {
                int64_t w0 = ws[ow], w1 = we[ow];
                float v = dout[oh * OW + ow] / (float)(h1 - h0) / (float)(w1 - w0);
                for (int64_t h = h0; h < h1; h++)
                    for (int64_t w = w0; w < w1; w++) dx[h * W + w] += v;
            }
        }
    }
}

bcml_status bcml_adaptive_avg_pool2d_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err) {
    if (!din[0]) return BCML_OK;
    const bcml_tensor *x = n->in[0];
    int c = x->ndim - 3;
    pool_geom g = {.P = x->shape[c] * (c ? x->shape[0] : 1), .H = x->shape[c + 1], .W = x->shape[c + 2],
                   .OH = n->args.i[0], .OW = n->args.i[1]};
    pool_job j = {.g = &g, .fn = adaptive_bw_planes, .dx = bcml_f32(din[0]), .dout = bcml_f32(dout)};
    return adaptive_run(&j, "adaptive_avg_pool2d backward", err);
}
