/* reduce.c: sum, mean, max along a dim (values and indices) and argmax.
 *
 * Arguments: i[0] = dim, i[1] = keepdim, i[2] = all (sum, mean, argmax: reduce every element to
 * a 0-d tensor, or to an all-ones shape with keepdim). The input is viewed as (outer, D, inner)
 * around the reduced dim (all: (1, numel, 1)); the output is (outer, inner). Rows (inner == 1)
 * are reduced contiguously; other dims walk the (D, inner) block in chunks of CH columns with
 * one accumulator per column, so every inner loop runs over contiguous memory.
 * Float sums accumulate in double; int64 sums wrap around as PyTorch's. */
#include "ops.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define CH 256

typedef struct {
    int64_t outer, D, inner;
    int ndim;                       /* output */
    int64_t shape[BCML_MAX_DIMS];
} rplan;

/* Plans a reduction of n->in[0] from the argument block; all_arg: whether i[2] applies. */
static bcml_status reduce_plan(const bcml_node *n, const char *name, int all_arg, rplan *p,
                               bcml_err *err) {
    const bcml_tensor *x = n->in[0];
    const int keepdim = n->args.i[1] != 0, all = all_arg && n->args.i[2] != 0;
    p->outer = 1; p->D = 1; p->inner = 1;
    if (all) {
        p->D = x->numel;
        p->ndim = keepdim ? x->ndim : 0;
        for (int d = 0; d < p->ndim; d++) p->shape[d] = 1;
        return BCML_OK;
    }
    int64_t dim = n->args.i[0];
    char arg[32];
    snprintf(arg, sizeof arg, "%s: dim", name);
    bcml_status st = bcml_norm_dim(&dim, x->ndim, arg, err);
    if (st) return st;
    p->ndim = 0;
    for (int d = 0; d < x->ndim; d++) {
        if (d < dim) p->outer *= x->shape[d];
        else if (d == dim) p->D = x->shape[d];
        else p->inner *= x->shape[d];
        if (d != dim) p->shape[p->ndim++] = x->shape[d];
        else if (keepdim) p->shape[p->ndim++] = 1;
    }
    return BCML_OK;
}

/* ---- sum and mean ---------------------------------------------------------------------- */
/* Sum of a contiguous row in double (eight independent lanes the compiler can vectorise). */
static double sum_row_f32(const float *x, int64_t n) {
    double acc[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) acc[k] += x[i + k];
    double s = 0.0;
    for (; i < n; i++) s += x[i];
    return s + ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

/* out (outer, inner) = sum over D of x (outer, D, inner), times scale; mean: scale = 1/D
 * (NaN for D == 0, as PyTorch's mean of nothing). */
static void sum_f32(float *restrict out, const float *restrict x, const rplan *p, int mean) {
    const int64_t D = p->D, inner = p->inner;
    if (inner == 1) {
        for (int64_t o = 0; o < p->outer; o++) {
            double s = sum_row_f32(x + o * D, D);
            out[o] = (float)(mean ? (D ? s / (double)D : NAN) : s);
        }
        return;
    }
    double acc[CH];
    for (int64_t o = 0; o < p->outer; o++) {
        const float *xb = x + o * D * inner; /* (D, inner) */
        for (int64_t j0 = 0; j0 < inner; j0 += CH) {
            const int64_t w = inner - j0 < CH ? inner - j0 : CH;
            for (int64_t j = 0; j < w; j++) acc[j] = 0.0;
            for (int64_t d = 0; d < D; d++) {
                const float *xr = xb + d * inner + j0;
                for (int64_t j = 0; j < w; j++) acc[j] += xr[j];
            }
            float *orow = out + o * inner + j0;
            for (int64_t j = 0; j < w; j++)
                orow[j] = (float)(mean ? (D ? acc[j] / (double)D : NAN) : acc[j]);
        }
    }
}

/* out (outer, inner) int64 = sum over D of x (int64 or bool bytes), wrapping around */
static void sum_int(int64_t *restrict out, const void *x, int is_bool, const rplan *p) {
    const int64_t D = p->D, inner = p->inner;
    const int64_t *xi = x;
    const uint8_t *xb = x;
    if (inner == 1) { /* rows */
        for (int64_t o = 0; o < p->outer; o++) {
            uint64_t acc = 0;
            if (is_bool) for (int64_t d = 0; d < D; d++) acc += xb[o * D + d] != 0;
            else for (int64_t d = 0; d < D; d++) acc += (uint64_t)xi[o * D + d];
            out[o] = (int64_t)acc;
        }
        return;
    }
    memset(out, 0, (size_t)(p->outer * inner) * sizeof(int64_t));
    for (int64_t o = 0; o < p->outer; o++) {
        uint64_t *orow = (uint64_t *)(out + o * inner);
        for (int64_t d = 0; d < D; d++) {
            const int64_t off = (o * D + d) * inner;
            if (is_bool) for (int64_t j = 0; j < inner; j++) orow[j] += xb[off + j] != 0;
            else for (int64_t j = 0; j < inner; j++) orow[j] += (uint64_t)xi[off + j];
        }
    }
}

static bcml_status sum_mean_forward(bcml_node *n, bcml_tensor **out, int mean, bcml_err *err) {
    const char *name = mean ? "mean" : "sum";
    const bcml_tensor *x = n->in[0];
    if (mean && x->dtype != BCML_FLOAT32)
        return bcml_fail(err, BCML_ETYPE,
                         "mean(): could not infer output dtype. input must be a float32 tensor, got %s",
                         bcml_dtype_name(x->dtype));
    rplan p;
    bcml_status st = reduce_plan(n, name, 1, &p, err);
    if (st) return st;
    const bcml_dtype odt = x->dtype == BCML_FLOAT32 ? BCML_FLOAT32 : BCML_INT64;
    if ((st = bcml_tensor_new(&out[0], odt, p.ndim, p.shape, 0, err))) return st;
    if (out[0]->numel == 0) return BCML_OK;
    if (odt == BCML_FLOAT32) sum_f32(bcml_f32(out[0]), bcml_f32(x), &p, mean);
    else sum_int(bcml_i64(out[0]), bcml_data(x), x->dtype == BCML_BOOL, &p);
    return BCML_OK;
}

/* dx (outer, D, inner) += g (outer, inner) [/ D] */
static bcml_status sum_mean_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din,
                                     int mean, bcml_err *err) {
    rplan p;
    bcml_status st = reduce_plan(n, mean ? "mean" : "sum", 1, &p, err);
    if (st) return st;
    const int64_t D = p.D, inner = p.inner;
    const float *g = bcml_f32(dout);
    float *dx = bcml_f32(din[0]);
    const float fd = (float)D;
    if (inner == 1) { /* rows: one gradient value per row */
        for (int64_t o = 0; o < p.outer; o++) {
            const float v = mean ? g[o] / fd : g[o];
            float *drow = dx + o * D;
            for (int64_t d = 0; d < D; d++) drow[d] += v;
        }
        return BCML_OK;
    }
    for (int64_t o = 0; o < p.outer; o++) {
        const float *grow = g + o * inner;
        for (int64_t d = 0; d < D; d++) {
            float *drow = dx + (o * D + d) * inner;
            if (mean) for (int64_t j = 0; j < inner; j++) drow[j] += grow[j] / fd;
            else for (int64_t j = 0; j < inner; j++) drow[j] += grow[j];
        }
    }
    return BCML_OK;
}

/* in: input (float32; sum also int64/bool -> int64 out); args as the file comment */
bcml_status bcml_sum_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err) {
    (void)ctx;
    return sum_mean_forward(n, out, 0, err);
}
bcml_status bcml_sum_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err) {
    return sum_mean_backward(n, dout, din, 0, err);
}
bcml_status bcml_mean_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err) {
    (void)ctx;
    return sum_mean_forward(n, out, 1, err);
}
bcml_status bcml_mean_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err) {
    return sum_mean_backward(n, dout, din, 1, err);
}

/* ---- max along a dim, argmax --------------------------------------------------------------- */
/* First index of the maximum of a row x[0..n), n > 0; for floats a NaN is the maximum and the
 * first NaN wins (PyTorch). Floats take two passes: the maximum over eight independent lanes,
 * then the first index holding it. */
static int64_t argmax_row_f32(const float *x, int64_t n) {
    float m[8];
    int nan[8];
    for (int k = 0; k < 8; k++) { m[k] = -INFINITY; nan[k] = 0; }
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) {
            const float v = x[i + k];
            m[k] = v > m[k] ? v : m[k];
            nan[k] |= v != v;
        }
    for (; i < n; i++) {
        m[0] = x[i] > m[0] ? x[i] : m[0];
        nan[0] |= x[i] != x[i];
    }
    for (int k = 1; k < 8; k++) { m[0] = m[k] > m[0] ? m[k] : m[0]; nan[0] |= nan[k]; }
    if (nan[0]) {
        for (int64_t j = 0; j < n; j++) if (x[j] != x[j]) return j;
    }
    for (int64_t j = 0; j < n; j++) if (x[j] == m[0]) return j;
    return 0; /* not reached */
}
static int64_t argmax_row_i64(const int64_t *x, int64_t n) {
    int64_t k = 0;
    for (int64_t j = 1; j < n; j++) k = x[j] > x[k] ? j : k;
    return k;
}
static int64_t argmax_row_u8(const uint8_t *x, int64_t n) {
    for (int64_t j = 0; j < n; j++) if (x[j]) return j;
    return 0;
}

/* vals (outer, inner) (may be NULL), idx (outer, inner) = max and its first index over D of x
 * (outer, D, inner), D > 0. Rows go to ROWFN; otherwise GREATER(v, b) decides whether v
 * replaces the best b so far: for floats a NaN replaces any number, so the first NaN wins. */
#define MAX_KERNEL(NAME, T, GREATER, ROWFN)                                           \
    static void NAME(T *restrict vals, int64_t *restrict idx, const T *restrict x,    \
                     const rplan *p) {                                                \
        const int64_t D = p->D, inner = p->inner;                                     \
        T best[CH];                                                                   \
        int64_t bi[CH];                                                               \
        if (inner == 1) {                                                             \
            for (int64_t o = 0; o < p->outer; o++) {                                  \
                const int64_t k = ROWFN(x + o * D, D);                                \
                if (vals) vals[o] = x[o * D + k];                                     \
                idx[o] = k;                                                           \
            }                                                                         \
            return;                                                                   \
        }                                                                             \
        for (int64_t o = 0; o < p->outer; o++) {                                      \
            const T *xb = x + o * D * inner;                                          \
            for (int64_t j0 = 0; j0 < inner; j0 += CH) {                              \
                const int64_t w = inner - j0 < CH ? inner - j0 : CH;                  \
                for (int64_t j = 0; j < w; j++) { best[j] = xb[j0 + j]; bi[j] = 0; }  \
                for (int64_t d = 1; d < D; d++) {                                     \
                    const T *xr = xb + d * inner + j0;                                \
                    for (int64_t j = 0; j < w; j++) {                                 \
                        const T v = xr[j], b = best[j];                               \
                        if (GREATER) { best[j] = v; bi[j] = d; }                      \
                    }                                                                 \
                }                                                                     \
                if (vals) memcpy(vals + o * inner + j0, best, (size_t)w * sizeof(T)); \
                memcpy(idx + o * inner + j0, bi, (size_t)w * sizeof(int64_t));        \
            }                                                                         \
        }                                                                             \
    }
MAX_KERNEL(max_f32, float, v > b || (v != v && b == b), argmax_row_f32)
MAX_KERNEL(max_i64, int64_t, v > b, argmax_row_i64)
MAX_KERNEL(max_u8, uint8_t, (v != 0) > (b != 0), argmax_row_u8)

static void max_any(void *vals, int64_t *idx, const bcml_tensor *x, const rplan *p) {
    switch (x->dtype) {
    case BCML_FLOAT32: max_f32(vals, idx, bcml_f32(x), p); break;
    case BCML_INT64: max_i64(vals, idx, bcml_i64(x), p); break;
    case BCML_BOOL: max_u8(vals, idx, bcml_u8(x), p); break;
    }
}

/* in: input (float32, int64 or bool); out0 values (input's dtype), out1 int64 indices;
 * i[0] = dim, i[1] = keepdim. Records a copy of the indices for backward. */
bcml_status bcml_max_dim_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err) {
    (void)ctx;
    const bcml_tensor *x = n->in[0];
    rplan p;
    bcml_status st = reduce_plan(n, "max", 0, &p, err);
    if (st) return st;
    if (p.D == 0) {
        int64_t dim = n->args.i[0] < 0 ? n->args.i[0] + x->ndim : n->args.i[0];
        return bcml_fail(err, BCML_EINDEX, "max(): Expected reduction dim %lld to have non-zero size.",
                         (long long)dim);
    }
    if ((st = bcml_tensor_new(&out[0], x->dtype, p.ndim, p.shape, 0, err)) ||
        (st = bcml_tensor_new(&out[1], BCML_INT64, p.ndim, p.shape, 0, err)))
        return st;
    if (out[0]->numel) max_any(bcml_data(out[0]), bcml_i64(out[1]), x, &p);
    if (n->recording) {
        if ((st = bcml_tensor_new_like(&n->saved[0], out[1], BCML_INT64, 0, err))) return st;
        if (out[1]->numel) memcpy(bcml_data(n->saved[0]), bcml_data(out[1]), bcml_nbytes(out[1]));
    }
    return BCML_OK;
}

/* dx (outer, D, inner) += g (outer, inner) at the index of each maximum */
bcml_status bcml_max_dim_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err) {
    rplan p;
    bcml_status st = reduce_plan(n, "max", 0, &p, err);
    if (st) return st;
    const float *g = bcml_f32(dout);
    const int64_t *idx = bcml_i64(n->saved[0]);
    float *dx = bcml_f32(din[0]);
    for (int64_t o = 0; o < p.outer; o++)
        for (int64_t j = 0; j < p.inner; j++) {
            const int64_t k = o * p.inner + j;
            dx[(o * p.D + idx[k]) * p.inner + j] += g[k];
        }
    return BCML_OK;
}

/* in: input (float32, int64 or bool); out: int64 indices of the first maximum;
 * i[0] = dim, i[1] = keepdim, i[2] = all (flat index). */
bcml_status bcml_argmax_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err) {
    (void)ctx;
    const bcml_tensor *x = n->in[0];
    rplan p;
    bcml_status st = reduce_plan(n, "argmax", 1, &p, err);
    if (st) return st;
    if (p.D == 0) {
        if (n->args.i[2])
            return bcml_fail(err, BCML_EINDEX,
                             "argmax(): Expected reduction dim to be specified for input.numel() == 0.");
        int64_t dim = n->args.i[0] < 0 ? n->args.i[0] + x->ndim : n->args.i[0];
        return bcml_fail(err, BCML_EINDEX, "argmax(): Expected reduction dim %lld to have non-zero size.",
                         (long long)dim);
    }
    if ((st = bcml_tensor_new(&out[0], BCML_INT64, p.ndim, p.shape, 0, err))) return st;
    if (out[0]->numel) max_any(NULL, bcml_i64(out[0]), x, &p);
    return BCML_OK;
}
