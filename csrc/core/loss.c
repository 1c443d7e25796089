/* loss.c: nll_loss, cross_entropy, binary_cross_entropy and kl_div, forward and backward.
 *
 * Reductions (args.i[0]): 0 none, 1 mean, 2 sum, 3 batchmean (kl_div only). Each loss returns
 * its gradient with respect to the tensor it consumes (log-probabilities for nll_loss and
 * kl_div, logits for cross_entropy, probabilities for binary_cross_entropy). Values are
 * computed per element in float32 and summed in double. Semantics follow PyTorch's
 * torch.nn.functional, including its conventions for empty batches (mean -> nan, sum -> 0)
 * and for ignored targets; where bcml differs, the comment at the op says so. */
#include "ops.h"

#include <math.h>
#include <string.h>

enum { RED_NONE = 0, RED_MEAN = 1, RED_SUM = 2, RED_BATCHMEAN = 3 };

/* std::max(a, b) as PyTorch's kernels use it: a NaN in a is kept (fmaxf would drop it). */
static inline float max_keep_nan(float a, float b) { return a < b ? b : a; }

static bcml_status check_reduction(int64_t r, int allow_batchmean, const char *op, bcml_err *err) {
    if (r >= RED_NONE && r <= (allow_batchmean ? RED_BATCHMEAN : RED_SUM)) return BCML_OK;
    return bcml_fail(err, BCML_EVALUE, "%s: reduction must be 0 (none), 1 (mean), 2 (sum)%s, got %lld",
                     op, allow_batchmean ? " or 3 (batchmean)" : "", (long long)r);
}

/* A 0-d float32 tensor holding v. */
static bcml_status new_scalar(bcml_tensor **out, double v, bcml_err *err) {
    bcml_status st = bcml_tensor_new(out, BCML_FLOAT32, 0, NULL, 0, err);
    if (st) return st;
    bcml_f32(*out)[0] = (float)v;
    return BCML_OK;
}

/* ==== class-index losses: nll_loss and cross_entropy ================================== */
/* in[0]: input (B, C) or (C,) float32; in[1]: target (B,) or () int64; in[2]: weight (C,)
 * float32 or NULL. i[0] = reduction, i[1] = ignore_index. A 1-D input is one sample. */
typedef struct {
    int64_t B, C, ignore;
    int red;
    int one_sample;            /* input (C,), target (): 'none' gives a 0-d output */
    const float *x;            /* (B, C) */
    const int64_t *t;          /* (B) */
    const float *w;            /* (C) or NULL */
} class_args;

static bcml_status class_check(const bcml_node *n, const char *op, class_args *a, bcml_err *err) {
    const bcml_tensor *x = n->in[0], *t = n->in[1], *w = n->n_in > 2 ? n->in[2] : NULL;
    char bx[64], bt[64];
    bcml_status st;
    if ((st = check_reduction(n->args.i[0], 0, op, err))) return st;
    if ((st = bcml_require_dtype(x, BCML_FLOAT32, op, "input", err))) return st;
    if (t->dtype != BCML_INT64)
        return bcml_fail(err, BCML_ETYPE,
                         "%s: target must be an int64 tensor of class indices, got %s%s", op,
                         bcml_dtype_name(t->dtype),
                         t->dtype == BCML_FLOAT32 ? " (class-probability targets are not supported)" : "");
    if (x->ndim == 2) {
        if (t->ndim != 1)
            return bcml_fail(err, BCML_EVALUE,
                             "%s: target must be 1-D (B,) for an input of shape (B, C) = %s, got target of shape %s "
                             "(multi-target is not supported)",
                             op, bcml_shape_str(x, bx, sizeof bx), bcml_shape_str(t, bt, sizeof bt));
        if (t->shape[0] != x->shape[0])
            return bcml_fail(err, BCML_EVALUE,
                             "%s: Expected input batch_size (%lld) to match target batch_size (%lld)", op,
                             (long long)x->shape[0], (long long)t->shape[0]);
        a->B = x->shape[0]; a->C = x->shape[1]; a->one_sample = 0;
    } else if (x->ndim == 1) {
        if (t->ndim != 0)
            return bcml_fail(err, BCML_EVALUE,
                             "%s: target must be 0-d for a 1-D input of shape (C,) = %s, got target of shape %s",
                             op, bcml_shape_str(x, bx, sizeof bx), bcml_shape_str(t, bt, sizeof bt));
        a->B = 1; a->C = x->shape[0]; a->one_sample = 1;
    } else {
        return bcml_fail(err, BCML_EVALUE, "%s: input must have shape (B, C) or (C,), got %s", op,
                         bcml_shape_str(x, bx, sizeof bx));
    }
    if (w) {
        if ((st = bcml_require_dtype(w, BCML_FLOAT32, op, "weight", err))) return st;
        if (w->ndim != 1 || w->shape[0] != a->C)
            return bcml_fail(err, BCML_EVALUE, "%s: weight must have shape (C,) = (%lld,), got %s", op,
                             (long long)a->C, bcml_shape_str(w, bx, sizeof bx));
    }
    a->red = (int)n->args.i[0];
    a->ignore = n->args.i[1];
    a->x = bcml_f32(x);
    a->t = bcml_i64(t);
    a->w = w ? bcml_f32(w) : NULL;
    for (int64_t i = 0; i < a->B; i++) {
        int64_t c = a->t[i];
        if (c != a->ignore && (c < 0 || c >= a->C))
            return bcml_fail(err, BCML_EVALUE,
                             "%s: Target %lld is out of bounds (target values must lie in [0, %lld) or equal "
                             "ignore_index %lld)",
                             op, (long long)c, (long long)a->C, (long long)a->ignore);
    }
    return BCML_OK;
}

static bcml_status class_out(bcml_tensor **out, const class_args *a, bcml_err *err) {
    if (a->red != RED_NONE) return bcml_tensor_new(out, BCML_FLOAT32, 0, NULL, 0, err);
    int64_t shape[1] = {a->B};
    return bcml_tensor_new(out, BCML_FLOAT32, a->one_sample ? 0 : 1, shape, 0, err);
}

/* Per-row losses l_i (unweighted): nll -x[i, t_i]; cross_entropy (m_i - x[i, t_i]) + log s_i
 * with lse (B, 2) holding the row maximum m_i and log s_i = log sum_j exp(x[i, j] - m_i) (kept
 * apart: m_i + log s_i would round away log s_i for large logits). */
static inline float row_loss(const class_args *a, const float *lse, int64_t i) {
    float xt = a->x[i * a->C + a->t[i]];
    return lse ? (lse[2 * i] - xt) + lse[2 * i + 1] : -xt;
}

/* Writes the output from per-row losses (lse NULL for nll_loss): none -> w_i l_i per row (0
 * where ignored), sum -> sum w_i l_i, mean -> sum w_i l_i / sum w_i (nan when no target counts). */
static void class_reduce(float *out, const class_args *a, const float *lse) {
    double acc = 0.0, wsum = 0.0;
    for (int64_t i = 0; i < a->B; i++) {
        int64_t c = a->t[i];
        if (c == a->ignore) {
            if (a->red == RED_NONE) out[i] = 0.0f;
            continue;
        }
        float w = a->w ? a->w[c] : 1.0f;
        float l = w * row_loss(a, lse, i);
        if (a->red == RED_NONE) out[i] = l;
        acc += l;
        wsum += w;
    }
    if (a->red == RED_SUM) out[0] = (float)acc;
    else if (a->red == RED_MEAN) out[0] = (float)(acc / wsum);
}

/* Shared backward. coef_i = w_{t_i} * g_i with g_i = dout[i] (none), dout (sum) or dout / sum w
 * (mean); nll: dx[i, t_i] -= coef_i; cross_entropy: dx[i, :] += coef_i * (softmax_i - onehot_i).
 * dweight[c] += sum over rows with t_i = c of g_i * l_i (mean: g * (l_i - loss) / sum w). */
static bcml_status class_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din,
                                  const float *lse, const char *op, bcml_err *err) {
    class_args a;
    bcml_status st = class_check(n, op, &a, err);
    if (st) return st;
    const float *g = bcml_f32(dout); /* (B) for none, () otherwise */
    float *dx = din[0] ? bcml_f32(din[0]) : NULL; /* (B, C) */
    float *dw = n->n_in > 2 && din[2] ? bcml_f32(din[2]) : NULL; /* (C) */
    double scale = a.red == RED_NONE ? 0.0 : g[0], loss = 0.0;
    if (a.red == RED_MEAN) {
        double acc = 0.0, wsum = 0.0;
        for (int64_t i = 0; i < a.B; i++) {
            int64_t c = a.t[i];
            if (c == a.ignore) continue;
            float w = a.w ? a.w[c] : 1.0f;
            acc += w * row_loss(&a, lse, i);
            wsum += w;
        }
        scale = g[0] / wsum;
        loss = acc / wsum;
    }
    const int64_t C = a.C;
    for (int64_t i = 0; i < a.B; i++) {
        int64_t c = a.t[i];
        if (c == a.ignore) continue;
        float gi = a.red == RED_NONE ? g[i] : (float)scale;
        if (dx) {
            float coef = (a.w ? a.w[c] : 1.0f) * gi;
            float *dxi = dx + i * C;
            if (lse) {
                const float *xi = a.x + i * C;
                float m = lse[2 * i], ls = lse[2 * i + 1];
                for (int64_t j = 0; j < C; j++) dxi[j] += coef * expf((xi[j] - m) - ls);
            }
            dxi[c] -= coef;
        }
        if (dw) {
            float l = row_loss(&a, lse, i);
            dw[c] += a.red == RED_MEAN ? (float)(scale * (l - loss)) : gi * l;
        }
    }
    return BCML_OK;
}

/* nll_loss: loss_i = -weight[t_i] * logp[i, t_i]. */
bcml_status bcml_nll_loss_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err) {
    (void)ctx;
    class_args a;
    bcml_status st;
    if ((st = class_check(n, "nll_loss", &a, err)) || (st = class_out(&out[0], &a, err))) return st;
    class_reduce(bcml_f32(out[0]), &a, NULL);
    return BCML_OK;
}

bcml_status bcml_nll_loss_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err) {
    return class_backward(n, dout, din, NULL, "nll_loss", err);
}

/* cross_entropy: log_softmax + nll_loss fused; loss_i = weight[t_i] * ((m_i - x[i, t_i]) + log s_i)
 * with m_i the row maximum and s_i = sum_j exp(x[i, j] - m_i) (summed in double). When recording,
 * saves (m_i, log s_i) as lse (B, 2) in saved[0]; ignored rows get zeros (never read). */
bcml_status bcml_cross_entropy_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err) {
    (void)ctx;
    class_args a;
    bcml_status st;
    if ((st = class_check(n, "cross_entropy", &a, err))) return st;
    int64_t lshape[2] = {a.B, 2};
    bcml_tensor *lse_t = NULL;
    if ((st = bcml_tensor_new(&lse_t, BCML_FLOAT32, 2, lshape, 0, err))) return st;
    float *lse = bcml_f32(lse_t); /* (B, 2) */
    const int64_t C = a.C;
    for (int64_t i = 0; i < a.B; i++) {
        if (a.t[i] == a.ignore) { lse[2 * i] = lse[2 * i + 1] = 0.0f; continue; }
        const float *xi = a.x + i * C;
        float m = xi[0]; /* C >= 1: a non-ignored target lies in [0, C) */
        for (int64_t j = 1; j < C; j++) m = xi[j] > m ? xi[j] : m;
        double s = 0.0;
        for (int64_t j = 0; j < C; j++) s += expf(xi[j] - m);
        lse[2 * i] = m;
        lse[2 * i + 1] = logf((float)s);
    }
    if ((st = class_out(&out[0], &a, err))) { bcml_tensor_unref(lse_t); return st; }
    class_reduce(bcml_f32(out[0]), &a, lse);
    if (n->recording) {
        bcml_tensor_unref(n->saved[0]); /* a node's forward may run again (replay) */
        n->saved[0] = lse_t;
    } else {
        bcml_tensor_unref(lse_t);
    }
    return BCML_OK;
}

bcml_status bcml_cross_entropy_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din,
                                        bcml_err *err) {
    if (!n->saved[0])
        return bcml_fail(err, BCML_ERUNTIME, "cross_entropy backward: the forward pass saved no log-sum-exp");
    return class_backward(n, dout, din, bcml_f32(n->saved[0]), "cross_entropy", err);
}

/* ==== binary_cross_entropy ========================================================= */
/* in[0]: p (any shape), in[1]: target (same shape), in[2]: weight broadcastable to p's shape or
 * NULL; i[0] = reduction. loss = -w * (t * max(log p, -100) + (1 - t) * max(log(1 - p), -100)).
 * p and target outside [0, 1] are ValueErrors (PyTorch: RuntimeError); NaN flows through (PyTorch
 * rejects it). */

/* dst (numel of shape) = src (sshape) broadcast to shape; both of rank <= 4. */
static void expand_to(float *dst, int ndim, const int64_t *shape, const float *src, int sndim,
                      const int64_t *sshape) {
    int64_t os[4], sstride[4];
    bcml_pad4(os, ndim, shape);
    bcml_broadcast_strides4(sstride, sndim, sshape);
    int64_t k = 0;
    for (int64_t i0 = 0; i0 < os[0]; i0++)
        for (int64_t i1 = 0; i1 < os[1]; i1++)
            for (int64_t i2 = 0; i2 < os[2]; i2++) {
                const float *srow = src + i0 * sstride[0] + i1 * sstride[1] + i2 * sstride[2];
                for (int64_t i3 = 0; i3 < os[3]; i3++) dst[k++] = srow[i3 * sstride[3]];
            }
}

/* Checks BCE's inputs; *wfull receives the weight at p's shape (weight's own data when the
 * shapes agree, else a bcml_alloc'ed expansion the caller frees when *owned), NULL without one. */
static bcml_status bce_check(const bcml_node *n, const float **wfull, int *owned, bcml_err *err) {
    const char *op = "binary_cross_entropy";
    const bcml_tensor *p = n->in[0], *t = n->in[1], *w = n->n_in > 2 ? n->in[2] : NULL;
    char bp[64], bt[64];
    bcml_status st;
    *wfull = NULL;
    *owned = 0;
    if ((st = check_reduction(n->args.i[0], 0, op, err)) ||
        (st = bcml_require_dtype(p, BCML_FLOAT32, op, "input", err)) ||
        (st = bcml_require_dtype(t, BCML_FLOAT32, op, "target", err)) ||
        (w && (st = bcml_require_dtype(w, BCML_FLOAT32, op, "weight", err))))
        return st;
    if (!bcml_same_shape(p, t))
        return bcml_fail(err, BCML_EVALUE,
                         "%s: Using a target size %s that is different to the input size %s; please "
                         "ensure they have the same size",
                         op, bcml_shape_str(t, bt, sizeof bt), bcml_shape_str(p, bp, sizeof bp));
    if (!w) return BCML_OK;
    if (bcml_same_shape(p, w)) { *wfull = bcml_f32(w); return BCML_OK; }
    int ondim;
    int64_t oshape[BCML_MAX_DIMS];
    if (bcml_broadcast_shape(p, w, &ondim, oshape, NULL) || ondim != p->ndim ||
        memcmp(oshape, p->shape, (size_t)ondim * sizeof oshape[0]) != 0)
        return bcml_fail(err, BCML_EVALUE, "%s: weight of shape %s cannot be broadcast to the input size %s",
                         op, bcml_shape_str(w, bt, sizeof bt), bcml_shape_str(p, bp, sizeof bp));
    float *e = bcml_alloc((size_t)p->numel * sizeof(float));
    if (!e) return bcml_fail(err, BCML_ENOMEM, "%s: out of memory expanding weight", op);
    expand_to(e, p->ndim, p->shape, bcml_f32(w), w->ndim, w->shape);
    *wfull = e;
    *owned = 1;
    return BCML_OK;
}

static inline float bce_elem(float p, float t) {
    return (t - 1.0f) * max_keep_nan(log1pf(-p), -100.0f) - t * max_keep_nan(logf(p), -100.0f);
}

bcml_status bcml_binary_cross_entropy_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out,
                                              bcml_err *err) {
    (void)ctx;
    const float *w; /* (N) or NULL */
    int owned;
    bcml_status st = bce_check(n, &w, &owned, err);
    if (st) return st;
    const bcml_tensor *pt = n->in[0];
    const float *p = bcml_f32(pt), *t = bcml_f32(n->in[1]); /* (N), (N) */
    const int64_t N = pt->numel;
    const int red = (int)n->args.i[0];
    for (int64_t i = 0; i < N; i++) {
        if (p[i] < 0.0f || p[i] > 1.0f) {
            st = bcml_fail(err, BCML_EVALUE,
                           "binary_cross_entropy: all elements of input should be between 0 and 1 "
                           "(input element %lld is %g)", (long long)i, (double)p[i]);
            goto done;
        }
        if (t[i] < 0.0f || t[i] > 1.0f) {
            st = bcml_fail(err, BCML_EVALUE,
                           "binary_cross_entropy: all elements of target should be between 0 and 1 "
                           "(target element %lld is %g)", (long long)i, (double)t[i]);
            goto done;
        }
    }
    if (red == RED_NONE) {
        if ((st = bcml_tensor_new_like(&out[0], pt, BCML_FLOAT32, 0, err))) goto done;
        float *o = bcml_f32(out[0]); /* (N) */
        if (w) for (int64_t i = 0; i < N; i++) o[i] = w[i] * bce_elem(p[i], t[i]);
        else for (int64_t i = 0; i < N; i++) o[i] = bce_elem(p[i], t[i]);
    } else {
        double acc = 0.0;
        if (w) for (int64_t i = 0; i < N; i++) acc += w[i] * bce_elem(p[i], t[i]);
        else for (int64_t i = 0; i < N; i++) acc += bce_elem(p[i], t[i]);
        st = new_scalar(&out[0], red == RED_MEAN ? acc / (double)N : acc, err);
    }
done:
    if (owned) bcml_free((void *)w);
    return st;
}

/* dp = g * w * (p - t) / max(p (1 - p), 1e-12); dt = g * w * (log(1 - p) - log p) (unclamped, as
 * PyTorch); dweight = g * loss_elem / w summed over broadcast dims. g = dout per element (none),
 * dout (sum) or dout / N (mean). */
bcml_status bcml_binary_cross_entropy_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din,
                                               bcml_err *err) {
    const float *w; /* (N) or NULL */
    int owned;
    bcml_status st = bce_check(n, &w, &owned, err);
    if (st) return st;
    const bcml_tensor *pt = n->in[0];
    const float *p = bcml_f32(pt), *t = bcml_f32(n->in[1]), *g = bcml_f32(dout); /* (N) (N) (N or 1) */
    const int64_t N = pt->numel;
    const int red = (int)n->args.i[0];
    const float gs = red == RED_NONE ? 0.0f : (float)(red == RED_MEAN ? g[0] / (double)N : g[0]);
    const float eps = 1e-12f;
    float *dp = din[0] ? bcml_f32(din[0]) : NULL; /* (N) */
    float *dt = din[1] ? bcml_f32(din[1]) : NULL; /* (N) */
    for (int64_t i = 0; i < N; i++) {
        float gi = (red == RED_NONE ? g[i] : gs) * (w ? w[i] : 1.0f);
        if (dp) dp[i] += gi * (p[i] - t[i]) / max_keep_nan((1.0f - p[i]) * p[i], eps);
        if (dt) dt[i] += gi * (log1pf(-p[i]) - logf(p[i]));
    }
    if (n->n_in > 2 && din[2]) {
        const bcml_tensor *wt = n->in[2];
        float *tmp = bcml_alloc((size_t)N * sizeof(float)); /* (N) */
        if (!tmp) { st = bcml_fail(err, BCML_ENOMEM, "binary_cross_entropy backward: out of memory"); goto done; }
        for (int64_t i = 0; i < N; i++) tmp[i] = (red == RED_NONE ? g[i] : gs) * bce_elem(p[i], t[i]);
        bcml_reduce_broadcast_add(bcml_f32(din[2]), wt->ndim, wt->shape, tmp, pt->ndim, pt->shape);
        bcml_free(tmp);
    }
done:
    if (owned) bcml_free((void *)w);
    return st;
}

/* ==== kl_div ========================================================================= */
/* in[0]: input (log-probabilities), in[1]: target (same shape; probabilities, or
 * log-probabilities when i[1] = log_target); i[0] = reduction (3: batchmean = sum / shape[0],
 * the sum for a 0-d input). Pointwise: target * (log target - input) with 0 log 0 = 0
 * (xlogy), or exp(target) * (target - input) for log targets. */
static bcml_status kl_check(const bcml_node *n, bcml_err *err) {
    const bcml_tensor *x = n->in[0], *t = n->in[1];
    char bx[64], bt[64];
    bcml_status st;
    if ((st = check_reduction(n->args.i[0], 1, "kl_div", err)) ||
        (st = bcml_require_dtype(x, BCML_FLOAT32, "kl_div", "input", err)) ||
        (st = bcml_require_dtype(t, BCML_FLOAT32, "kl_div", "target", err)))
        return st;
    if (!bcml_same_shape(x, t))
        return bcml_fail(err, BCML_EVALUE,
                         "kl_div: Using a target size %s that is different to the input size %s; please "
                         "ensure they have the same size",
                         bcml_shape_str(t, bt, sizeof bt), bcml_shape_str(x, bx, sizeof bx));
    return BCML_OK;
}

static inline float kl_elem(float x, float t, int log_target) {
    if (log_target) return expf(t) * (t - x);
    return (t == 0.0f ? 0.0f : t * logf(t)) - t * x;
}

/* Divisor of the reduced sum: mean -> numel, batchmean -> shape[0] (1 for a 0-d input). */
static double kl_divisor(const bcml_tensor *x, int red) {
    if (red == RED_MEAN) return (double)x->numel;
    if (red == RED_BATCHMEAN && x->ndim > 0) return (double)x->shape[0];
    return 1.0;
}

bcml_status bcml_kl_div_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err) {
    (void)ctx;
    bcml_status st = kl_check(n, err);
    if (st) return st;
    const bcml_tensor *xt = n->in[0];
    const float *x = bcml_f32(xt), *t = bcml_f32(n->in[1]); /* (N), (N) */
    const int64_t N = xt->numel;
    const int red = (int)n->args.i[0], lt = n->args.i[1] != 0;
    if (red == RED_NONE) {
        if ((st = bcml_tensor_new_like(&out[0], xt, BCML_FLOAT32, 0, err))) return st;
        float *o = bcml_f32(out[0]); /* (N) */
        for (int64_t i = 0; i < N; i++) o[i] = kl_elem(x[i], t[i], lt);
        return BCML_OK;
    }
    double acc = 0.0;
    for (int64_t i = 0; i < N; i++) acc += kl_elem(x[i], t[i], lt);
    return new_scalar(&out[0], acc / kl_divisor(xt, red), err);
}

/* dinput = -g * target (log_target: -g * exp(target));
 * dtarget = g * (log target + 1 - input), 0 where target == 0 (PyTorch's xlogy gives nan there);
 * log_target: g * exp(target) * (target - input + 1). */
bcml_status bcml_kl_div_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err) {
    bcml_status st = kl_check(n, err);
    if (st) return st;
    const bcml_tensor *xt = n->in[0];
    const float *x = bcml_f32(xt), *t = bcml_f32(n->in[1]), *g = bcml_f32(dout); /* (N) (N) (N or 1) */
    const int64_t N = xt->numel;
    const int red = (int)n->args.i[0], lt = n->args.i[1] != 0;
    const float gs = red == RED_NONE ? 0.0f : (float)(g[0] / kl_divisor(xt, red));
    float *dx = din[0] ? bcml_f32(din[0]) : NULL; /* (N) */
    float *dt = din[1] ? bcml_f32(din[1]) : NULL; /* (N) */
    for (int64_t i = 0; i < N; i++) {
        float gi = red == RED_NONE ? g[i] : gs;
        if (lt) {
            float e = expf(t[i]);
            if (dx) dx[i] -= gi * e;
            if (dt) dt[i] += gi * e * (t[i] - x[i] + 1.0f);
        } else {
            if (dx) dx[i] -= gi * t[i];
            if (dt) dt[i] += t[i] == 0.0f ? 0.0f : gi * (logf(t[i]) + 1.0f - x[i]);
        }
    }
    return BCML_OK;
}
