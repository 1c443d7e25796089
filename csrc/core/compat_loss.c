/* compat_loss.c: the backward-compatibility losses of bcml.loss (SPEC section 3), one op.
 *
 * in[0]: h2's output the loss consumes: log-probabilities (B, C) for kind nll/kl, logits (B, C)
 *        for ce, probabilities (B,) for bce (Python flattens a (B, 1) output).
 * in[1]: target: int64 class labels (B,) for nll/ce/kl; float32 0/1 (B,) for bce.
 * in[2]: h1's output, the same kind and shape as in[0]; never differentiated.
 * i[0] kind (0 nll, 1 ce, 2 bce, 3 kl); i[1] mode (0 new-error, 1 strict-imitation);
 * i[2] reduction (0 none, 1 mean, 2 sum); i[3] dissonance only (1: value [i in S] d_i, no base
 * term and no lambda_c). f[0] lambda_c (finite, >= 0); f[1] discriminant pivot (bce).
 *
 * Per sample: v_i = base_i + lambda_c [i in S] d_i, S = {i : argmax(h1_i) == y_i} (bce:
 * (p1_i >= pivot) == y_i). new-error: d_i = base_i. strict-imitation: nll soft CE
 * -sum_c p1 logp2; ce soft CE of softmax(logits1) vs logits2; kl KL(p1 || p2); bce
 * -[p1 log p2 + (1 - p1) log(1 - p2)]. Binary logs are clamped at -100 and the binary
 * gradient is (p - t) / max(p (1 - p), 1e-12), as PyTorch's binary_cross_entropy. mean divides
 * by the whole batch B (nan for B = 0, as PyTorch's mean over nothing); sum sums. The gradient
 * flows to in[0] only. */
#include "ops.h"

#include <float.h>
#include <math.h>
#include <string.h>

enum { K_NLL = 0, K_CE = 1, K_BCE = 2, K_KL = 3 };
enum { RED_NONE = 0, RED_MEAN = 1, RED_SUM = 2 };

static inline float max_keep_nan(float a, float b) { return a < b ? b : a; }

static inline float bce_term(float p, float t) {
    return (t - 1.0f) * max_keep_nan(log1pf(-p), -100.0f) - t * max_keep_nan(logf(p), -100.0f);
}

typedef struct {
    int64_t B, C;
    int kind, strict, red, dis_only;
    float lambda, pivot;
    const float *x2;      /* (B, C) or (B) */
    const float *x1;      /* (B, C) or (B) */
    const int64_t *y;     /* (B) for class kinds */
    const float *t;       /* (B) for bce */
    /* ce only, filled by ce_prepare: */
    float *lse2, *lse1;   /* (B) log-sum-exp of each row of x2 / x1 (lse1 when strict) */
    float *p1, *p2;       /* (B, C) softmax(x1) when strict, softmax(x2) when asked */
    float *buf;           /* owns the above */
} cl_args;

static bcml_status cl_check(const bcml_node *n, cl_args *a, bcml_err *err) {
    const bcml_tensor *x2 = n->in[0], *t = n->in[1], *x1 = n->in[2];
    char b1[64], b2[64];
    bcml_status st;
    const char *op = "compat_loss";
    memset(a, 0, sizeof *a);
    a->kind = (int)n->args.i[0];
    if (n->args.i[0] < K_NLL || n->args.i[0] > K_KL)
        return bcml_fail(err, BCML_EVALUE, "%s: kind must be 0 (nll), 1 (ce), 2 (bce) or 3 (kl), got %lld", op,
                         (long long)n->args.i[0]);
    if (n->args.i[1] != 0 && n->args.i[1] != 1)
        return bcml_fail(err, BCML_EVALUE, "%s: mode must be 0 (new-error) or 1 (strict-imitation), got %lld",
                         op, (long long)n->args.i[1]);
    if (n->args.i[2] < RED_NONE || n->args.i[2] > RED_SUM)
        return bcml_fail(err, BCML_EVALUE, "%s: reduction must be 0 (none), 1 (mean) or 2 (sum), got %lld", op,
                         (long long)n->args.i[2]);
    a->strict = (int)n->args.i[1];
    a->red = (int)n->args.i[2];
    a->dis_only = n->args.i[3] != 0;
    double lam = n->args.f[0];
    if (!isfinite(lam) || lam < 0.0 || lam > FLT_MAX) /* beyond float32, (float)lam would be inf */
        return bcml_fail(err, BCML_EVALUE, "%s: lambda_c must be finite, >= 0 and within float32's range, got %g",
                         op, lam);
    if (!(fabs(n->args.f[1]) <= FLT_MAX))
        return bcml_fail(err, BCML_EVALUE, "%s: discriminant_pivot must be finite and within float32's range, got %g",
                         op, n->args.f[1]);
    a->lambda = (float)lam;
    a->pivot = (float)n->args.f[1];
    if ((st = bcml_require_dtype(x2, BCML_FLOAT32, op, "h2 output", err))) return st;
    if ((st = bcml_require_dtype(x1, BCML_FLOAT32, op, "h1 output", err))) return st;
    if (a->kind == K_BCE) {
        if (x2->ndim != 1)
            return bcml_fail(err, BCML_EVALUE, "%s: h2 output must be probabilities of shape (B,), got %s", op,
                             bcml_shape_str(x2, b1, sizeof b1));
        a->B = x2->shape[0];
        a->C = 1;
    } else {
        if (x2->ndim != 2)
            return bcml_fail(err, BCML_EVALUE, "%s: h2 output must have shape (B, C), got %s", op,
                             bcml_shape_str(x2, b1, sizeof b1));
        a->B = x2->shape[0];
        a->C = x2->shape[1];
    }
    if (x1->ndim != x2->ndim || x1->shape[0] != x2->shape[0] || (x2->ndim == 2 && x1->shape[1] != x2->shape[1]))
        return bcml_fail(err, BCML_EVALUE, "%s: h1 output must have the shape of h2 output %s, got %s", op,
                         bcml_shape_str(x2, b1, sizeof b1), bcml_shape_str(x1, b2, sizeof b2));
    if (t->ndim != 1 || t->shape[0] != a->B)
        return bcml_fail(err, BCML_EVALUE, "%s: target must have shape (B,) = (%lld,), got %s", op,
                         (long long)a->B, bcml_shape_str(t, b1, sizeof b1));
    a->x2 = bcml_f32(x2);
    a->x1 = bcml_f32(x1);
    if (a->kind == K_BCE) {
        if (t->dtype != BCML_FLOAT32)
            return bcml_fail(err, BCML_ETYPE, "%s: target must be float32 0/1 labels for binary models, got %s", op,
                             bcml_dtype_name(t->dtype));
        a->t = bcml_f32(t);
        for (int64_t i = 0; i < a->B; i++) {
            if (a->t[i] != 0.0f && a->t[i] != 1.0f)
                return bcml_fail(err, BCML_EVALUE, "%s: target must hold 0/1 labels, element %lld is %g", op,
                                 (long long)i, (double)a->t[i]);
            if (!(a->x2[i] >= 0.0f && a->x2[i] <= 1.0f) && !isnan(a->x2[i]))
                return bcml_fail(err, BCML_EVALUE, "%s: h2 output must be probabilities in [0, 1], element %lld is %g",
                                 op, (long long)i, (double)a->x2[i]);
            if (!(a->x1[i] >= 0.0f && a->x1[i] <= 1.0f) && !isnan(a->x1[i]))
                return bcml_fail(err, BCML_EVALUE, "%s: h1 output must be probabilities in [0, 1], element %lld is %g",
                                 op, (long long)i, (double)a->x1[i]);
        }
    } else {
        if (t->dtype != BCML_INT64)
            return bcml_fail(err, BCML_ETYPE, "%s: target must be int64 class labels, got %s", op,
                             bcml_dtype_name(t->dtype));
        a->y = bcml_i64(t);
        for (int64_t i = 0; i < a->B; i++)
            if (a->y[i] < 0 || a->y[i] >= a->C)
                return bcml_fail(err, BCML_EVALUE,
                                 "%s: target %lld is out of bounds (class labels must lie in [0, %lld))", op,
                                 (long long)a->y[i], (long long)a->C);
    }
    return BCML_OK;
}

/* 1 when h1 classifies sample i correctly (first maximum wins, as argmax; NaN rows never do). */
static inline int in_s(const cl_args *a, int64_t i) {
    if (a->kind == K_BCE) return (a->x1[i] >= a->pivot) == (a->t[i] != 0.0f);
    const float *r = a->x1 + i * a->C; /* (C) */
    int64_t best = 0;
    for (int64_t c = 1; c < a->C; c++)
        if (r[c] > r[best] || (isnan(r[c]) && !isnan(r[best]))) best = c;
    if (isnan(r[best])) return 0;
    return best == a->y[i];
}

/* lse[i] = log sum_c exp(x[i, c]) (max-shifted) and, if p, p = softmax of each row; the
 * exponentials run vectorised over the whole (B, C) block. */
static void rows_lse(const float *x, int64_t B, int64_t C, float *lse, float *p /* (B, C) */) {
    for (int64_t i = 0; i < B; i++) {
        const float *r = x + i * C;
        float m = -INFINITY;
        for (int64_t c = 0; c < C; c++) m = max_keep_nan(r[c], m);
        lse[i] = m;
        float *q = p + i * C;
        if (isinf(m)) for (int64_t c = 0; c < C; c++) q[c] = 0.0f;
        else for (int64_t c = 0; c < C; c++) q[c] = r[c] - m;
    }
    bcml_exp_f32(p, p, B * C);
    for (int64_t i = 0; i < B; i++) {
        if (isinf(lse[i])) continue;
        const float *q = p + i * C;
        double s = 0.0;
        for (int64_t c = 0; c < C; c++) s += q[c];
        lse[i] += logf((float)s);
    }
}

/* softmax rows from x and its lse: p = exp(x - lse) */
static void rows_softmax(const float *x, const float *lse, int64_t B, int64_t C, float *p) {
    for (int64_t i = 0; i < B; i++)
        for (int64_t c = 0; c < C; c++) p[i * C + c] = x[i * C + c] - lse[i];
    bcml_exp_f32(p, p, B * C);
}

/* Fills lse2 (and lse1, p1 when strict; p2 when want_p2) for the ce kind. */
static bcml_status ce_prepare(cl_args *a, int want_p2, bcml_err *err) {
    const int64_t B = a->B, C = a->C;
    size_t n = (size_t)(2 * B + 2 * B * C);
    a->buf = bcml_alloc((n ? n : 1) * sizeof(float));
    if (!a->buf) return bcml_fail(err, BCML_ENOMEM, "compat_loss: out of memory");
    a->lse2 = a->buf;
    a->lse1 = a->buf + B;
    a->p1 = a->buf + 2 * B;
    a->p2 = a->p1 + B * C;
    rows_lse(a->x2, B, C, a->lse2, a->p2);   /* p2 holds exp(x - max) scratch here */
    if (a->strict) {
        rows_lse(a->x1, B, C, a->lse1, a->p1);
        rows_softmax(a->x1, a->lse1, B, C, a->p1);
    }
    if (want_p2) rows_softmax(a->x2, a->lse2, B, C, a->p2);
    return BCML_OK;
}

/* Base term and strict-imitation dissonance of sample i. */
static void sample_terms(const cl_args *a, int64_t i, float *base, float *dstrict) {
    const int64_t C = a->C;
    if (a->kind == K_BCE) {
        *base = bce_term(a->x2[i], a->t[i]);
        *dstrict = a->strict ? bce_term(a->x2[i], a->x1[i]) : 0.0f;
        return;
    }
    const float *r2 = a->x2 + i * C, *r1 = a->x1 + i * C; /* (C), (C) */
    int64_t y = a->y[i];
    if (a->kind == K_CE) {
        float lse2 = a->lse2[i];
        *base = lse2 - r2[y];
        if (a->strict) {
            const float *q1 = a->p1 + i * C;
            double acc = 0.0;
            for (int64_t c = 0; c < C; c++) acc += (double)q1[c] * (double)(lse2 - r2[c]);
            *dstrict = (float)acc;
        } else *dstrict = 0.0f;
        (void)r1;
        return;
    }
    *base = -r2[y];
    *dstrict = 0.0f;
    if (!a->strict) return;
    double acc = 0.0;
    if (a->kind == K_NLL) {
        for (int64_t c = 0; c < C; c++) acc -= exp((double)r1[c]) * (double)r2[c];
    } else { /* KL(p1 || p2) = sum p1 (logp1 - logp2), 0 where p1 = 0 */
        for (int64_t c = 0; c < C; c++) {
            double p1 = exp((double)r1[c]);
            if (p1 > 0.0 || isnan(p1)) acc += p1 * ((double)r1[c] - (double)r2[c]);
        }
    }
    *dstrict = (float)acc;
}

bcml_status bcml_compat_loss_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err) {
    (void)ctx;
    cl_args a;
    bcml_status st = cl_check(n, &a, err);
    if (st) return st;
    if (a.kind == K_CE && (st = ce_prepare(&a, 0, err))) return st;
    float *o = NULL; /* (B) for none */
    if (a.red == RED_NONE) {
        int64_t shape[1] = {a.B};
        if ((st = bcml_tensor_new(&out[0], BCML_FLOAT32, 1, shape, 0, err))) { bcml_free(a.buf); return st; }
        o = bcml_f32(out[0]);
    }
    double acc = 0.0;
    for (int64_t i = 0; i < a.B; i++) {
        float base, ds;
        sample_terms(&a, i, &base, &ds);
        float d = a.strict ? ds : base;
        float s = in_s(&a, i) ? 1.0f : 0.0f;
        float v = a.dis_only ? (s != 0.0f ? d : 0.0f) : base + (s != 0.0f ? a.lambda * d : 0.0f);
        if (o) o[i] = v;
        acc += v;
    }
    bcml_free(a.buf);
    if (a.red == RED_NONE) return BCML_OK;
    if ((st = bcml_tensor_new(&out[0], BCML_FLOAT32, 0, NULL, 0, err))) return st;
    bcml_f32(out[0])[0] = (float)(a.red == RED_MEAN ? acc / (double)a.B : acc);
    return BCML_OK;
}

bcml_status bcml_compat_loss_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err) {
    cl_args a;
    bcml_status st = cl_check(n, &a, err);
    if (st) return st;
    if (!din[0]) return BCML_OK;
    if (a.kind == K_CE && (st = ce_prepare(&a, 1, err))) return st;
    float *dx = bcml_f32(din[0]);   /* (B, C) or (B) */
    const float *g = bcml_f32(dout); /* (B) for none, () otherwise */
    const int64_t C = a.C;
    const float gs = a.red == RED_NONE ? 0.0f : (float)(a.red == RED_MEAN ? g[0] / (double)a.B : g[0]);
    for (int64_t i = 0; i < a.B; i++) {
        const float gi = a.red == RED_NONE ? g[i] : gs;
        const float s = in_s(&a, i) ? 1.0f : 0.0f;
        /* weights of the base gradient and of the dissonance gradient */
        float wb, wd;
        if (a.dis_only) { wb = a.strict ? 0.0f : s; wd = a.strict ? s : 0.0f; }
        else if (a.strict) { wb = 1.0f; wd = s * a.lambda; }
        else { wb = 1.0f + s * a.lambda; wd = 0.0f; }
        wb *= gi;
        wd *= gi;
        if (a.kind == K_BCE) {
            float p = a.x2[i], den = max_keep_nan((1.0f - p) * p, 1e-12f);
            float gr = 0.0f;
            if (wb != 0.0f) gr += wb * (p - a.t[i]) / den;
            if (wd != 0.0f) gr += wd * (p - a.x1[i]) / den;
            dx[i] += gr;
            continue;
        }
        const float *r2 = a.x2 + i * C, *r1 = a.x1 + i * C; /* (C), (C) */
        float *d = dx + i * C;                              /* (C) */
        const int64_t y = a.y[i];
        if (a.kind == K_CE) {
            const float *q2 = a.p2 + i * C, *q1 = a.p1 + i * C; /* (C), (C) */
            if (wd != 0.0f)
                for (int64_t c = 0; c < C; c++) d[c] += wb * q2[c] + wd * (q2[c] - q1[c]);
            else
                for (int64_t c = 0; c < C; c++) d[c] += wb * q2[c];
            d[y] -= wb;
        } else {
            /* nll and kl: base gradient -onehot(y); strict dissonance gradient -p1 */
            d[y] -= wb;
            if (wd != 0.0f)
                for (int64_t c = 0; c < C; c++) d[c] -= wd * expf(r1[c]);
        }
        (void)r2;
    }
    bcml_free(a.buf);
    return BCML_OK;
}
