/* softmax.c: softmax and log_softmax along dim i[0] (numerically stable: the maximum along the
 * dim is subtracted before exp). The input is viewed as (outer, D, inner) around the dim; the
 * last dim (inner == 1) walks contiguous rows, other dims work on chunks of CH columns of a
 * (D, inner) block so that every inner loop runs over contiguous memory.
 * Both save their output (an alias of out's data) for backward:
 *   softmax:     dx += y * (g - sum(g * y))
 *   log_softmax: dx += g - exp(y) * sum(g)      (sums along dim) */
#include "ops.h"

#include <math.h>
#include <stdio.h>

#define CH 256

/* Vectorised exp (elementwise.c). */

/* Row reductions with eight independent lanes (vectorisable, and no single dependency chain). */
static float row_max(const float *x, int64_t n) {
    float m[8];
    for (int k = 0; k < 8; k++) m[k] = -INFINITY;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) m[k] = x[i + k] > m[k] ? x[i + k] : m[k];
    for (; i < n; i++) m[0] = x[i] > m[0] ? x[i] : m[0];
    for (int k = 1; k < 8; k++) m[0] = m[k] > m[0] ? m[k] : m[0];
    return m[0];
}

/* sum of x[i] * (y ? y[i] : 1) */
static float row_dot(const float *x, const float *y, int64_t n) {
    float acc[8] = {0};
    int64_t i = 0;
    if (y) {
        for (; i + 8 <= n; i += 8)
            for (int k = 0; k < 8; k++) acc[k] += x[i + k] * y[i + k];
        for (; i < n; i++) acc[0] += x[i] * y[i];
    } else {
        for (; i + 8 <= n; i += 8)
            for (int k = 0; k < 8; k++) acc[k] += x[i + k];
        for (; i < n; i++) acc[0] += x[i];
    }
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

static bcml_status split_dim(const bcml_node *n, const char *name, int64_t *outer, int64_t *D,
                             int64_t *inner, bcml_err *err) {
    const bcml_tensor *x = n->in[0];
    int64_t dim = n->args.i[0];
    char arg[32];
    snprintf(arg, sizeof arg, "%s: dim", name);
    bcml_status st = bcml_norm_dim(&dim, x->ndim, arg, err);
    if (st) return st;
    *outer = 1; *D = 1; *inner = 1;
    for (int d = 0; d < x->ndim; d++) {
        if (d < dim) *outer *= x->shape[d];
        else if (d == dim) *D = x->shape[d];
        else *inner *= x->shape[d];
    }
    return BCML_OK;
}

/* Short rows (inner == 1, D < 32: 2 or 10 classes): blocks of rows of at most 4 * CH elements,
 * one exp call and one log call per block; D a compile-time constant in the common cases. */
static inline __attribute__((always_inline)) void short_rows_fw(float *restrict y, const float *restrict x,
                                                               int64_t outer, const int64_t D, int logsm) {
    float t[4 * CH], s[4 * CH];
    const int64_t R = (4 * CH) / D;
    for (int64_t r0 = 0; r0 < outer; r0 += R) {
        const int64_t nr = outer - r0 < R ? outer - r0 : R;
        const float *xb = x + r0 * D;
        float *yb = y + r0 * D;
        for (int64_t r = 0; r < nr; r++) {
            float m = -INFINITY;
            for (int64_t j = 0; j < D; j++) m = xb[r * D + j] > m ? xb[r * D + j] : m;
            for (int64_t j = 0; j < D; j++) yb[r * D + j] = xb[r * D + j] - m;
        }
        bcml_exp_f32(t, yb, nr * D);
        for (int64_t r = 0; r < nr; r++) {
            float sum = 0.0f;
            for (int64_t j = 0; j < D; j++) sum += t[r * D + j];
            s[r] = sum;
        }
        if (logsm) {
            bcml_log_f32(s, s, nr);
            for (int64_t r = 0; r < nr; r++)
                for (int64_t j = 0; j < D; j++) yb[r * D + j] -= s[r];
        } else {
            for (int64_t r = 0; r < nr; r++) {
                const float inv = 1.0f / s[r];
                for (int64_t j = 0; j < D; j++) yb[r * D + j] = t[r * D + j] * inv;
            }
        }
    }
}

/* dx += g - exp(y) sum(g) (log_softmax) or y (g - sum(g y)) (softmax) over short rows, in blocks
 * as forward. */
static inline __attribute__((always_inline)) void short_rows_bw(float *restrict dx, const float *restrict y,
                                                               const float *restrict g, int64_t outer,
                                                               const int64_t D, int logsm) {
    float t[4 * CH];
    const int64_t R = (4 * CH) / D;
    for (int64_t r0 = 0; r0 < outer; r0 += R) {
        const int64_t nr = outer - r0 < R ? outer - r0 : R;
        const float *yb = y + r0 * D, *gb = g + r0 * D;
        float *db = dx + r0 * D;
        if (logsm) {
            bcml_exp_f32(t, yb, nr * D);
            for (int64_t r = 0; r < nr; r++) {
                float sum = 0.0f;
                for (int64_t j = 0; j < D; j++) sum += gb[r * D + j];
                for (int64_t j = 0; j < D; j++) db[r * D + j] += gb[r * D + j] - t[r * D + j] * sum;
            }
        } else {
            for (int64_t r = 0; r < nr; r++) {
                float sum = 0.0f;
                for (int64_t j = 0; j < D; j++) sum += gb[r * D + j] * yb[r * D + j];
                for (int64_t j = 0; j < D; j++) db[r * D + j] += yb[r * D + j] * (gb[r * D + j] - sum);
            }
        }
    }
}

#define SHORT_DISPATCH(D, f, ...)                                                                  \
    do {                                                                                           \
        switch (D) {                                                                               \
        case 2: f(__VA_ARGS__, 2, logsm); break;                                                   \
        case 3: f(__VA_ARGS__, 3, logsm); break;                                                   \
        case 4: f(__VA_ARGS__, 4, logsm); break;                                                   \
        case 10: f(__VA_ARGS__, 10, logsm); break;                                                 \
        default: f(__VA_ARGS__, D, logsm); break;                                                  \
        }                                                                                          \
    } while (0)

BCML_CLONES static void short_fw(float *y, const float *x, int64_t outer, int64_t D, int logsm) {
    SHORT_DISPATCH(D, short_rows_fw, y, x, outer);
}

BCML_CLONES static void short_bw(float *dx, const float *y, const float *g, int64_t outer, int64_t D, int logsm) {
    SHORT_DISPATCH(D, short_rows_bw, dx, y, g, outer);
}

/* y (outer, D, inner) = softmax or log_softmax of x along D. A NaN anywhere along D makes that
 * whole slice NaN, as do rows of only -inf or any +inf (as PyTorch). */
static void softmax_fw(float *restrict y, const float *restrict x, int64_t outer, int64_t D,
                       int64_t inner, int logsm) {
    if (inner == 1 && D > 0 && D < 32) {
        short_fw(y, x, outer, D, logsm);
        return;
    }
    if (inner == 1) {
        for (int64_t r = 0; r < outer; r++) {
            const float *xr = x + r * D;
            float *yr = y + r * D;
            const float m = row_max(xr, D);
            for (int64_t j = 0; j < D; j++) yr[j] = xr[j] - m;
            bcml_exp_f32(yr, yr, D);
            const float s = row_dot(yr, NULL, D);
            if (logsm) {
                float ls;
                bcml_log_f32(&ls, &s, 1);
                for (int64_t j = 0; j < D; j++) yr[j] = (xr[j] - m) - ls;
            } else {
                const float inv = 1.0f / s;
                for (int64_t j = 0; j < D; j++) yr[j] *= inv;
            }
        }
        return;
    }
    float m[CH], s[CH];
    for (int64_t o = 0; o < outer; o++) {
        const float *xb = x + o * D * inner; /* (D, inner) */
        float *yb = y + o * D * inner;
        for (int64_t j0 = 0; j0 < inner; j0 += CH) {
            const int64_t w = inner - j0 < CH ? inner - j0 : CH;
            for (int64_t j = 0; j < w; j++) { m[j] = -INFINITY; s[j] = 0.0f; }
            for (int64_t d = 0; d < D; d++) {
                const float *xr = xb + d * inner + j0;
                for (int64_t j = 0; j < w; j++) m[j] = xr[j] > m[j] ? xr[j] : m[j];
            }
            for (int64_t d = 0; d < D; d++) {
                const float *xr = xb + d * inner + j0;
                float *yr = yb + d * inner + j0;
                for (int64_t j = 0; j < w; j++) yr[j] = xr[j] - m[j];
                bcml_exp_f32(yr, yr, w);
                for (int64_t j = 0; j < w; j++) s[j] += yr[j];
            }
            if (logsm) {
                bcml_log_f32(s, s, w);
                for (int64_t d = 0; d < D; d++) {
                    const float *xr = xb + d * inner + j0;
                    float *yr = yb + d * inner + j0;
                    for (int64_t j = 0; j < w; j++) yr[j] = (xr[j] - m[j]) - s[j];
                }
            } else {
                for (int64_t j = 0; j < w; j++) s[j] = 1.0f / s[j];
                for (int64_t d = 0; d < D; d++) {
                    float *yr = yb + d * inner + j0;
                    for (int64_t j = 0; j < w; j++) yr[j] *= s[j];
                }
            }
        }
    }
}

/* dx (outer, D, inner) += softmax / log_softmax backward from y and g */
static void softmax_bw(float *restrict dx, const float *restrict y, const float *restrict g,
                       int64_t outer, int64_t D, int64_t inner, int logsm) {
    float t[CH]; /* exp(y) of up to CH elements (log_softmax) */
    if (inner == 1 && D > 0 && D < 32) {
        short_bw(dx, y, g, outer, D, logsm);
        return;
    }
    if (inner == 1) {
        for (int64_t r = 0; r < outer; r++) {
            const float *yr = y + r * D, *gr = g + r * D;
            float *dr = dx + r * D;
            if (logsm) {
                const float s = row_dot(gr, NULL, D);
                for (int64_t j0 = 0; j0 < D; j0 += CH) {
                    const int64_t w = D - j0 < CH ? D - j0 : CH;
                    bcml_exp_f32(t, yr + j0, w);
                    for (int64_t j = 0; j < w; j++) dr[j0 + j] += gr[j0 + j] - t[j] * s;
                }
            } else {
                const float s = row_dot(gr, yr, D);
                for (int64_t j = 0; j < D; j++) dr[j] += yr[j] * (gr[j] - s);
            }
        }
        return;
    }
    float s[CH];
    for (int64_t o = 0; o < outer; o++) {
        const int64_t base = o * D * inner;
        for (int64_t j0 = 0; j0 < inner; j0 += CH) {
            const int64_t w = inner - j0 < CH ? inner - j0 : CH;
            for (int64_t j = 0; j < w; j++) s[j] = 0.0f;
            for (int64_t d = 0; d < D; d++) {
                const float *yr = y + base + d * inner + j0, *gr = g + base + d * inner + j0;
                if (logsm) for (int64_t j = 0; j < w; j++) s[j] += gr[j];
                else for (int64_t j = 0; j < w; j++) s[j] += gr[j] * yr[j];
            }
            for (int64_t d = 0; d < D; d++) {
                const float *yr = y + base + d * inner + j0, *gr = g + base + d * inner + j0;
                float *dr = dx + base + d * inner + j0;
                if (logsm) {
                    bcml_exp_f32(t, yr, w);
                    for (int64_t j = 0; j < w; j++) dr[j] += gr[j] - t[j] * s[j];
                } else {
                    for (int64_t j = 0; j < w; j++) dr[j] += yr[j] * (gr[j] - s[j]);
                }
            }
        }
    }
}

static bcml_status forward(bcml_node *n, bcml_tensor **out, int logsm, bcml_err *err) {
    const char *name = logsm ? "log_softmax" : "softmax";
    const bcml_tensor *x = n->in[0];
    int64_t outer, D, inner;
    bcml_status st;
    if ((st = bcml_require_dtype(x, BCML_FLOAT32, name, "input", err))) return st;
    if ((st = split_dim(n, name, &outer, &D, &inner, err))) return st;
    if ((st = bcml_tensor_new_like(&out[0], x, BCML_FLOAT32, 0, err))) return st;
    if (x->numel) softmax_fw(bcml_f32(out[0]), bcml_f32(x), outer, D, inner, logsm);
    return n->recording ? bcml_saved_alias(&n->saved[0], out[0], err) : BCML_OK;
}

static bcml_status backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, int logsm,
                            bcml_err *err) {
    int64_t outer, D, inner;
    bcml_status st = split_dim(n, logsm ? "log_softmax" : "softmax", &outer, &D, &inner, err);
    if (st) return st;
    if (dout->numel)
        softmax_bw(bcml_f32(din[0]), bcml_f32(n->saved[0]), bcml_f32(dout), outer, D, inner, logsm);
    return BCML_OK;
}

/* in: input (float32, rank <= 4); i[0] = dim */
bcml_status bcml_softmax_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err) {
    (void)ctx;
    return forward(n, out, 0, err);
}
bcml_status bcml_softmax_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err) {
    return backward(n, dout, din, 0, err);
}
bcml_status bcml_log_softmax_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err) {
    (void)ctx;
    return forward(n, out, 1, err);
}
bcml_status bcml_log_softmax_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err) {
    return backward(n, dout, din, 1, err);
}
