/* pc_loss.c: the positive-congruent compatibility losses of bcml.loss, one fused op
 * (FocalDistillationLoss, LogitDifferenceInhibitionLoss).
 *
 * in[0]: h2's logits z2 (B, C), float32 (differentiated).
 * in[1]: target: int64 class labels (B,), in [0, C).
 * in[2]: h1's logits z1 (B, C), float32 (an ensemble's mean logits); never differentiated.
 * i[0] kind (0 focal distillation with KL, 1 focal distillation with L2, 2 logit-difference
 * inhibition); i[1] reduction (0 none, 1 mean, 2 sum); i[2] top_k (ldi; 0 = every class);
 * i[3] penalty only (1: value pen_i, no base term and no lambda_c).
 * f[0] lambda_c (finite, >= 0); focal: f[1] alpha >= 0, f[2] beta >= 0, f[3] temperature > 0;
 * ldi: f[1] p >= 1 (finite), f[2] margin >= 0.
 *
 * Per sample: v_i = base_i + lambda_c pen_i, base_i = logsumexp(z2_i) - z2_i[y_i] (cross-entropy).
 * focal: pen_i = (alpha + beta [argmax z1_i == y_i]) D_i, with
 *   kl: D_i = T^2 KL(softmax(z1_i / T) || softmax(z2_i / T)) (Hinton's T^2, as the focal
 *       distillation authors' implementation), terms with softmax(z1/T)_c = 0 count 0;
 *   l2: D_i = (1/C) sum_c (z2_ic - z1_ic)^2 (the mean squared logit difference, as the
 *       authors' implementation's MSE).
 * ldi: pen_i = (sum over K_i of max(0, |z2_ik - z1_ik| - margin)^p)^(1/p), the p-norm of the
 *      hinges, K_i = the top_k classes of
 *   z1_i (largest first, ties to the lower index, NaN above every number, as torch.topk).
 * argmax: the first maximum; a NaN row's argmax is its first NaN (never equal to a label's
 * check: a row with a NaN is never "right"). mean divides by B (NaN for B = 0), sum sums. The
 * gradient flows to in[0] only; the terms are computed in double per row. */
#include "ops.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { PK_FD_KL = 0, PK_FD_L2 = 1, PK_LDI = 2 };
enum { PR_NONE = 0, PR_MEAN = 1, PR_SUM = 2 };

typedef struct {
    int64_t B, C, top_k;
    int kind, red, pen_only;
    double lambda, a, b, t; /* focal: alpha, beta, T; ldi: p, margin, unused */
    const float *z2, *z1;   /* (B, C) each */
    const int64_t *y;       /* (B) */
    double *row;            /* (C) scratch: sorted h1 row (ldi) */
    unsigned char *keep;    /* (C) 1 for a class in K_i (ldi) */
    void *buf;              /* owns row and keep */
} pc_args;

static bcml_status pc_check(const bcml_node *n, pc_args *a, bcml_err *err) {
    const bcml_tensor *z2 = n->in[0], *t = n->in[1], *z1 = n->in[2];
    const char *op = "pc_loss";
    char b1[64], b2[64];
    bcml_status st;
    memset(a, 0, sizeof *a);
    if (n->args.i[0] < PK_FD_KL || n->args.i[0] > PK_LDI)
        return bcml_fail(err, BCML_EVALUE, "%s: kind must be 0 (focal kl), 1 (focal l2) or 2 (ldi), got %lld", op,
                         (long long)n->args.i[0]);
    if (n->args.i[1] < PR_NONE || n->args.i[1] > PR_SUM)
        return bcml_fail(err, BCML_EVALUE, "%s: reduction must be 0 (none), 1 (mean) or 2 (sum), got %lld", op,
                         (long long)n->args.i[1]);
    a->kind = (int)n->args.i[0];
    a->red = (int)n->args.i[1];
    a->top_k = n->args.i[2];
    a->pen_only = n->args.i[3] != 0;
    a->lambda = n->args.f[0];
    a->a = n->args.f[1];
    a->b = n->args.f[2];
    a->t = n->args.f[3];
    if (!isfinite(a->lambda) || a->lambda < 0.0)
        return bcml_fail(err, BCML_EVALUE, "%s: lambda_c must be finite and >= 0, got %g", op, a->lambda);
    if (a->kind == PK_LDI) {
        if (!isfinite(a->a) || a->a < 1.0)
            return bcml_fail(err, BCML_EVALUE, "%s: p must be finite and >= 1, got %g", op, a->a);
        if (!isfinite(a->b) || a->b < 0.0)
            return bcml_fail(err, BCML_EVALUE, "%s: margin must be finite and >= 0, got %g", op, a->b);
    } else {
        if (!isfinite(a->a) || a->a < 0.0)
            return bcml_fail(err, BCML_EVALUE, "%s: alpha must be finite and >= 0, got %g", op, a->a);
        if (!isfinite(a->b) || a->b < 0.0)
            return bcml_fail(err, BCML_EVALUE, "%s: beta must be finite and >= 0, got %g", op, a->b);
        if (a->kind == PK_FD_KL && !(isfinite(a->t) && a->t > 0.0))
            return bcml_fail(err, BCML_EVALUE, "%s: temperature must be finite and > 0, got %g", op, a->t);
    }
    if ((st = bcml_require_dtype(z2, BCML_FLOAT32, op, "h2 logits", err))) return st;
    if ((st = bcml_require_dtype(z1, BCML_FLOAT32, op, "h1 logits", err))) return st;
    if (z2->ndim != 2)
        return bcml_fail(err, BCML_EVALUE, "%s: h2 logits must have shape (B, C), got %s", op,
                         bcml_shape_str(z2, b1, sizeof b1));
    a->B = z2->shape[0];
    a->C = z2->shape[1];
    if (z1->ndim != 2 || z1->shape[0] != a->B || z1->shape[1] != a->C)
        return bcml_fail(err, BCML_EVALUE, "%s: h1 logits must have the shape of h2 logits %s, got %s", op,
                         bcml_shape_str(z2, b1, sizeof b1), bcml_shape_str(z1, b2, sizeof b2));
    if (a->C < 1)
        return bcml_fail(err, BCML_EVALUE, "%s: the logits must have at least one class, got shape %s", op,
                         bcml_shape_str(z2, b1, sizeof b1));
    if (a->top_k < 0 || a->top_k > a->C)
        return bcml_fail(err, BCML_EVALUE, "%s: top_k must lie in [1, C = %lld] (0: every class), got %lld", op,
                         (long long)a->C, (long long)a->top_k);
    if (t->ndim != 1 || t->shape[0] != a->B)
        return bcml_fail(err, BCML_EVALUE, "%s: target must have shape (B,) = (%lld,), got %s", op,
                         (long long)a->B, bcml_shape_str(t, b1, sizeof b1));
    if (t->dtype != BCML_INT64)
        return bcml_fail(err, BCML_ETYPE, "%s: target must be int64 class labels, got %s", op,
                         bcml_dtype_name(t->dtype));
    a->z2 = bcml_f32(z2);
    a->z1 = bcml_f32(z1);
    a->y = bcml_i64(t);
    for (int64_t i = 0; i < a->B; i++)
        if (a->y[i] < 0 || a->y[i] >= a->C)
            return bcml_fail(err, BCML_EVALUE, "%s: target %lld is out of bounds (class labels must lie in [0, %lld))",
                             op, (long long)a->y[i], (long long)a->C);
    if (a->kind == PK_LDI && a->top_k != 0 && a->top_k < a->C) {
        size_t C = (size_t)a->C;
        a->buf = bcml_alloc(C * sizeof(double) + C);
        if (!a->buf) return bcml_fail(err, BCML_ENOMEM, "%s: out of memory", op);
        a->row = a->buf;
        a->keep = (unsigned char *)(a->row + C);
    }
    return BCML_OK;
}

/* 1 when argmax(z1_i) == y_i: the first maximum wins; a NaN row is never right. */
static int h1_right(const pc_args *a, int64_t i) {
    const float *r = a->z1 + i * a->C; /* (C) */
    int64_t best = 0;
    for (int64_t c = 1; c < a->C; c++)
        if (r[c] > r[best] || (isnan(r[c]) && !isnan(r[best]))) best = c;
    return !isnan(r[best]) && best == a->y[i];
}

/* Descending order, NaN first (torch.topk puts NaN above every number). */
static int desc_nan_first(const void *pa, const void *pb) {
    double x = *(const double *)pa, y = *(const double *)pb;
    if (isnan(x)) return isnan(y) ? 0 : -1;
    if (isnan(y)) return 1;
    return x > y ? -1 : x < y ? 1 : 0;
}

/* v ranks above the threshold thr (both in desc_nan_first's order) */
static int above(double v, double thr) { return desc_nan_first(&v, &thr) < 0; }

/* keep[c] = 1 for the top_k classes of z1_i (ties to the lower index). */
static void top_classes(pc_args *a, int64_t i) {
    const int64_t C = a->C, k = a->top_k;
    const float *r = a->z1 + i * C; /* (C) */
    for (int64_t c = 0; c < C; c++) a->row[c] = (double)r[c];
    qsort(a->row, (size_t)C, sizeof(double), desc_nan_first);
    double thr = a->row[k - 1];
    int64_t n_above = 0;
    for (int64_t c = 0; c < C; c++) n_above += above((double)r[c], thr);
    int64_t ties = k - n_above; /* classes equal to thr to take, lowest indices first */
    for (int64_t c = 0; c < C; c++) {
        double v = (double)r[c];
        if (above(v, thr)) a->keep[c] = 1;
        else if (desc_nan_first(&v, &thr) == 0 && ties > 0) { a->keep[c] = 1; ties--; }
        else a->keep[c] = 0;
    }
}

static int in_k(const pc_args *a, int64_t c) { return a->keep == NULL || a->keep[c]; }

/* logsumexp of row r (C) divided by s, max-shifted; m receives the max of r / s */
static double row_lse(const float *r, int64_t C, double s, double *m) {
    double mx = -INFINITY;
    for (int64_t c = 0; c < C; c++) {
        double v = (double)r[c] / s;
        if (v > mx || isnan(v)) mx = v;
        if (isnan(v)) break;
    }
    *m = mx;
    if (isnan(mx)) return mx;
    if (isinf(mx)) return mx; /* all -inf: -inf; any +inf: +inf */
    double acc = 0.0;
    for (int64_t c = 0; c < C; c++) acc += exp((double)r[c] / s - mx);
    return mx + log(acc);
}

/* The penalty of sample i and, when g is given, g += w * d pen_i / d z2_i. */
static double penalty(pc_args *a, int64_t i, double w, float *g /* (C) or NULL */) {
    const int64_t C = a->C;
    const float *r2 = a->z2 + i * C, *r1 = a->z1 + i * C; /* (C), (C) */
    if (a->kind == PK_LDI) {
        if (a->keep) top_classes(a, i);
        /* the p-norm of the hinges: pen = S^(1/p), S = sum of h^p; d pen / d h_c =
         * S^(1/p - 1) h_c^(p - 1) (1 for p = 1), and 0 where every hinge is 0 (a subgradient) */
        const double p = a->a, margin = a->b;
        double acc = 0.0;
        for (int64_t c = 0; c < C; c++) {
            if (!in_k(a, c)) continue;
            double h = fabs((double)r2[c] - (double)r1[c]) - margin;
            if (isnan(h) || h > 0.0) acc += p == 1.0 ? h : p == 2.0 ? h * h : pow(h, p);
        }
        const double pen = p == 1.0 ? acc : p == 2.0 ? sqrt(acc) : pow(acc, 1.0 / p);
        if (g && acc != 0.0) {
            const double scale = p == 1.0 ? 1.0 : p == 2.0 ? 1.0 / pen : pow(acc, 1.0 / p - 1.0);
            for (int64_t c = 0; c < C; c++) {
                if (!in_k(a, c)) continue;
                double d = (double)r2[c] - (double)r1[c], h = fabs(d) - margin;
                if (isnan(h) || isnan(scale)) { g[c] += (float)(h + scale); continue; }
                if (h <= 0.0) continue;
                double dh = p == 1.0 ? 1.0 : p == 2.0 ? h : pow(h, p - 1.0);
                g[c] += (float)(w * scale * dh * (d > 0.0 ? 1.0 : -1.0));
            }
        }
        return pen;
    }
    const double fw = a->a + (h1_right(a, i) ? a->b : 0.0);
    if (a->kind == PK_FD_L2) {
        double acc = 0.0;
        for (int64_t c = 0; c < C; c++) {
            double d = (double)r2[c] - (double)r1[c];
            acc += d * d;
            if (g) g[c] += (float)(w * fw * 2.0 * d / (double)C);
        }
        return fw * acc / (double)C;
    }
    /* kl at temperature T: T^2 sum_c q1 (log q1 - log q2), q = softmax(z / T) */
    const double T = a->t;
    double m1, m2;
    double l1 = row_lse(r1, C, T, &m1), l2 = row_lse(r2, C, T, &m2);
    double acc = 0.0;
    for (int64_t c = 0; c < C; c++) {
        double lq1 = (double)r1[c] / T - l1, lq2 = (double)r2[c] / T - l2;
        double q1 = exp(lq1);
        if (q1 > 0.0 || isnan(q1)) acc += q1 * (lq1 - lq2);
        if (g) g[c] += (float)(w * fw * T * (exp(lq2) - q1)); /* d/dz2 of T^2 KL = T (q2 - q1) */
    }
    return fw * T * T * acc;
}

/* cross-entropy of sample i and, when g is given, g += w (softmax(z2_i) - onehot(y_i)). */
static double base_ce(const pc_args *a, int64_t i, double w, float *g /* (C) or NULL */) {
    const int64_t C = a->C;
    const float *r2 = a->z2 + i * C; /* (C) */
    double m, lse = row_lse(r2, C, 1.0, &m);
    if (g) {
        for (int64_t c = 0; c < C; c++) g[c] += (float)(w * exp((double)r2[c] - lse));
        g[a->y[i]] -= (float)w;
    }
    return lse - (double)r2[a->y[i]];
}

bcml_status bcml_pc_loss_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err) {
    (void)ctx;
    pc_args a;
    bcml_status st = pc_check(n, &a, err);
    if (st) return st;
    float *o = NULL; /* (B) for none */
    if (a.red == PR_NONE) {
        int64_t shape[1] = {a.B};
        if ((st = bcml_tensor_new(&out[0], BCML_FLOAT32, 1, shape, 0, err))) { bcml_free(a.buf); return st; }
        o = bcml_f32(out[0]);
    }
    double acc = 0.0;
    for (int64_t i = 0; i < a.B; i++) {
        double pen = penalty(&a, i, 0.0, NULL);
        double v = a.pen_only ? pen : base_ce(&a, i, 0.0, NULL) + (a.lambda != 0.0 ? a.lambda * pen : 0.0);
        if (o) o[i] = (float)v;
        acc += v;
    }
    bcml_free(a.buf);
    if (a.red == PR_NONE) return BCML_OK;
    if ((st = bcml_tensor_new(&out[0], BCML_FLOAT32, 0, NULL, 0, err))) return st;
    bcml_f32(out[0])[0] = (float)(a.red == PR_MEAN ? acc / (double)a.B : acc);
    return BCML_OK;
}

bcml_status bcml_pc_loss_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err) {
    pc_args a;
    bcml_status st = pc_check(n, &a, err);
    if (st) return st;
    if (!din[0]) { bcml_free(a.buf); return BCML_OK; }
    float *dx = bcml_f32(din[0]);    /* (B, C) */
    const float *g = bcml_f32(dout); /* (B) for none, () otherwise */
    const double gs = a.red == PR_NONE ? 0.0 : a.red == PR_MEAN ? (double)g[0] / (double)a.B : (double)g[0];
    for (int64_t i = 0; i < a.B; i++) {
        const double gi = a.red == PR_NONE ? (double)g[i] : gs;
        float *d = dx + i * a.C; /* (C) */
        if (a.pen_only) {
            penalty(&a, i, gi, d);
            continue;
        }
        base_ce(&a, i, gi, d);
        if (a.lambda != 0.0) penalty(&a, i, gi * a.lambda, d);
    }
    bcml_free(a.buf);
    return BCML_OK;
}
