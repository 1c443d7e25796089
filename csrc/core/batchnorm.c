/* batchnorm.c: batch normalisation over dim 1 of (N, C), (N, C, L) or (N, C, H, W) (float32).
 *
 * The input is viewed as (N, C, S) with S the product of the dims after C, and each channel
 * is normalised over its M = N * S values. Sums are accumulated in double. */
#include "ops.h"

#include <float.h>
#include <math.h>

typedef struct { int64_t N, C, S; } bn_dims;

/* Channels are independent: large tensors split them over threads in chunks fixed by the
 * sizes (each channel's sums run in the same order whatever the split: same bits). */
static int64_t bn_tasks(bn_dims d) {
    int64_t t = d.N * d.C * d.S / ((int64_t)1 << 15);
    if (t > 8) t = 8;
    if (t > d.C) t = d.C;
    return t < 1 ? 1 : t;
}

static void bn_chunk(bn_dims d, int64_t k, int64_t ntasks, int64_t *c0, int64_t *c1) {
    int64_t chunk = (d.C + ntasks - 1) / ntasks;
    *c0 = k * chunk < d.C ? k * chunk : d.C;
    *c1 = (k + 1) * chunk < d.C ? (k + 1) * chunk : d.C;
}

/* Per-channel batch mean and biased variance of x (N, C, S) for channels [c0, c1), two passes
 * in double. */
static void bn_stats(double *mean,        /* (C) */
                     double *var,         /* (C) */
                     const float *x,      /* (N, C, S) */
                     bn_dims d, int64_t c0, int64_t c1) {
    int64_t M = d.N * d.S;
    for (int64_t c = c0; c < c1; c++) mean[c] = var[c] = 0.0;
    for (int64_t n = 0; n < d.N; n++)
        for (int64_t c = c0; c < c1; c++) {
            const float *row = x + (n * d.C + c) * d.S;
            double acc = 0.0;
            for (int64_t s = 0; s < d.S; s++) acc += row[s];
            mean[c] += acc;
        }
    for (int64_t c = c0; c < c1; c++) mean[c] = M > 0 ? mean[c] / (double)M : 0.0;
    for (int64_t n = 0; n < d.N; n++)
        for (int64_t c = c0; c < c1; c++) {
            const float *row = x + (n * d.C + c) * d.S;
            double acc = 0.0, m = mean[c];
            for (int64_t s = 0; s < d.S; s++) { double t = row[s] - m; acc += t * t; }
            var[c] += acc;
        }
    for (int64_t c = c0; c < c1; c++) var[c] = M > 0 ? var[c] / (double)M : 0.0;
}

/* out = (x - mean) * invstd * weight + bias, as x * alpha + beta per channel. */
static void bn_transform(float *out,           /* (N, C, S) */
                         const float *x,       /* (N, C, S) */
                         const float *mean,    /* (C) */
                         const float *invstd,  /* (C) */
                         const float *weight,  /* (C) or NULL */
                         const float *bias,    /* (C) or NULL */
                         bn_dims d, int64_t c0, int64_t c1) {
    for (int64_t n = 0; n < d.N; n++)
        for (int64_t c = c0; c < c1; c++) {
            float alpha = invstd[c] * (weight ? weight[c] : 1.0f);
            float beta = (bias ? bias[c] : 0.0f) - mean[c] * alpha;
            const float *xr = x + (n * d.C + c) * d.S;
            float *yr = out + (n * d.C + c) * d.S;
            for (int64_t s = 0; s < d.S; s++) yr[s] = xr[s] * alpha + beta;
        }
}

static bcml_status bn_param(const bcml_tensor *t, const char *name, int64_t C, bcml_err *err) {
    if (!t) return BCML_OK;
    bcml_status st = bcml_require_dtype(t, BCML_FLOAT32, "batch_norm", name, err);
    if (st) return st;
    if (t->ndim != 1 || t->shape[0] != C) {
        char b[64];
        return bcml_fail(err, BCML_EVALUE,
                         "batch_norm: %s must have shape (%lld,) (one value per channel of input), got %s",
                         name, (long long)C, bcml_shape_str(t, b, sizeof b));
    }
    return BCML_OK;
}

static bn_dims bn_dims_of(const bcml_tensor *x) {
    bn_dims d = {x->shape[0], x->shape[1], 1};
    for (int k = 2; k < x->ndim; k++) d.S *= x->shape[k];
    return d;
}

typedef struct {
    bn_dims d;
    const float *x, *w, *b;
    float *out, *rm, *rv, *mu, *is;
    double *stats;   /* training: batch mean (C), biased var (C) */
    int training;
    double momentum, eps;
} bn_fw_job;

/* Forward of channels [c0, c1): statistics, running statistics, normalisation. */
static void bn_fw_task(void *arg, int64_t k, int64_t ntasks) {
    const bn_fw_job *j = arg;
    const bn_dims d = j->d;
    int64_t c0, c1, M = d.N * d.S;
    bn_chunk(d, k, ntasks, &c0, &c1);
    if (c0 >= c1) return;
    float *mu = j->mu, *is = j->is;
    if (j->training) {
        double *bmean = j->stats, *bvar = j->stats + d.C;
        bn_stats(bmean, bvar, j->x, d, c0, c1);
        for (int64_t c = c0; c < c1; c++) {
            mu[c] = (float)bmean[c];
            is[c] = (float)(1.0 / sqrt(bvar[c] + j->eps));
        }
        if (j->rm && M > 0) { /* an empty batch leaves the running statistics alone, as in PyTorch */
            double unbias = (double)M / (double)(M - 1), momentum = j->momentum;
            for (int64_t c = c0; c < c1; c++) {
                j->rm[c] = (float)(momentum * bmean[c] + (1.0 - momentum) * j->rm[c]);
                j->rv[c] = (float)(momentum * bvar[c] * unbias + (1.0 - momentum) * j->rv[c]);
            }
        }
    } else {
        for (int64_t c = c0; c < c1; c++) {
            mu[c] = j->rm[c];
            is[c] = (float)(1.0 / sqrt((double)j->rv[c] + j->eps));
        }
    }
    bn_transform(j->out, j->x, mu, is, j->w, j->b, d, c0, c1);
}

/* in: x (N, C[, L]) or (N, C, H, W), weight (C) or NULL, bias (C) or NULL, running_mean (C) or
 * NULL, running_var (C) or NULL, num_batches_tracked (int64, one element) or NULL; f[0] = momentum,
 * f[1] = eps; i[0] = training. In training mode num_batches_tracked is incremented (here rather
 * than in Python, so a recorded step replays it).
 * Training normalises with the batch statistics and updates the running ones in place
 * (running_var with the unbiased variance); eval uses the running statistics.
 * When recording, saved[0] = mean (C), saved[1] = invstd (C): the statistics used. */
bcml_status bcml_batch_norm_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err) {
    (void)ctx;
    const bcml_tensor *x = n->in[0];
    const bcml_tensor *w = n->n_in > 1 ? n->in[1] : NULL, *b = n->n_in > 2 ? n->in[2] : NULL;
    bcml_tensor *rm = n->n_in > 3 ? n->in[3] : NULL, *rv = n->n_in > 4 ? n->in[4] : NULL;
    bcml_status st = bcml_require_dtype(x, BCML_FLOAT32, "batch_norm", "input", err);
    if (st) return st;
    char bx[64];
    if (x->ndim < 2)
        return bcml_fail(err, BCML_EVALUE, "batch_norm: input must be (N, C), (N, C, L) or (N, C, H, W), got shape %s",
                         bcml_shape_str(x, bx, sizeof bx));
    bn_dims d = bn_dims_of(x);
    if ((st = bn_param(w, "weight", d.C, err)) || (st = bn_param(b, "bias", d.C, err)) ||
        (st = bn_param(rm, "running_mean", d.C, err)) || (st = bn_param(rv, "running_var", d.C, err)))
        return st;
    if (!rm != !rv)
        return bcml_fail(err, BCML_EVALUE, "batch_norm: running_mean and running_var must both be given or both be None");
    bcml_tensor *nbt = n->n_in > 5 ? n->in[5] : NULL;
    if (nbt && (nbt->dtype != BCML_INT64 || nbt->numel != 1))
        return bcml_fail(err, BCML_EVALUE, "batch_norm: num_batches_tracked must be an int64 tensor of one element");
    int training = n->args.i[0] != 0;
    double momentum = n->args.f[0], eps = n->args.f[1];
    int64_t M = d.N * d.S;
    if (!training && !rm)
        return bcml_fail(err, BCML_EVALUE, "batch_norm: running_mean and running_var are needed when training=False");
    if (training && M == 1)
        return bcml_fail(err, BCML_EVALUE,
                         "batch_norm: Expected more than 1 value per channel when training, got input size %s",
                         bcml_shape_str(x, bx, sizeof bx));
    if (!(eps >= 0.0 && eps <= FLT_MAX))
        return bcml_fail(err, BCML_EVALUE, "batch_norm: eps must be non-negative, finite and within float32's range, got %g",
                         eps);
    if (!(fabs(momentum) <= FLT_MAX)) /* NaN, inf and beyond float32: the running statistics would be inf/NaN */
        return bcml_fail(err, BCML_EVALUE, "batch_norm: momentum must be finite and within float32's range, got %g",
                         momentum);

    bcml_tensor *mean = NULL, *invstd = NULL; /* (C) each */
    int64_t cshape[1] = {d.C};
    double *stats = NULL; /* batch mean (C), biased var (C) */
    if ((st = bcml_tensor_new(&mean, BCML_FLOAT32, 1, cshape, 0, err)) ||
        (st = bcml_tensor_new(&invstd, BCML_FLOAT32, 1, cshape, 0, err)) ||
        (st = bcml_tensor_new_like(&out[0], x, BCML_FLOAT32, 0, err)))
        goto done;
    if (training) {
        stats = bcml_alloc(2 * (size_t)d.C * sizeof *stats);
        if (!stats) { st = bcml_fail(err, BCML_ENOMEM, "batch_norm: out of memory for statistics"); goto done; }
    }
    bn_fw_job j = {.d = d, .x = bcml_f32(x), .out = bcml_f32(out[0]), .w = w ? bcml_f32(w) : NULL,
                   .b = b ? bcml_f32(b) : NULL, .rm = rm ? bcml_f32(rm) : NULL, .rv = rv ? bcml_f32(rv) : NULL,
                   .mu = bcml_f32(mean), .is = bcml_f32(invstd), .stats = stats, .training = training,
                   .momentum = momentum, .eps = eps};
    int64_t ntasks = bn_tasks(d);
    if (ntasks == 1) bn_fw_task(&j, 0, 1);
    else bcml_parallel(ntasks, bn_fw_task, &j);
    if (training && nbt) {
        bcml_i64(nbt)[0] += 1;
        bcml_tensor_bump_version(nbt);
    }
    if (training && rm && M > 0) { /* in-place writes, as any other */
        bcml_tensor_bump_version(rm);
        bcml_tensor_bump_version(rv);
    }
    if (n->recording) {
        n->saved[0] = mean;
        n->saved[1] = invstd;
        mean = invstd = NULL;
    }
done:
    bcml_free(stats);
    bcml_tensor_unref(mean);
    bcml_tensor_unref(invstd);
    return st;
}

typedef struct {
    bn_dims d;
    int64_t M;
    const float *g, *xd, *mu, *is, *wd;
    double *acc;
    float *dw, *db, *dx;
    int training;
} bn_bw_job;

static void bn_bw_task(void *arg, int64_t k, int64_t ntasks);

/* xhat = (x - mean) * invstd; dbias += sum(g), dweight += sum(g * xhat) per channel;
 * training: dx += w * invstd * (g - mean(g) - xhat * mean(g * xhat)) (through the batch
 * statistics); eval: dx += g * w * invstd. */
bcml_status bcml_batch_norm_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err) {
    const bcml_tensor *x = n->in[0], *w = n->n_in > 1 ? n->in[1] : NULL;
    bn_dims d = bn_dims_of(x);
    int64_t M = d.N * d.S;
    double *acc = bcml_alloc(2 * (size_t)d.C * sizeof *acc);              /* sum g, sum g*(x-mean) */
    if (!acc) return bcml_fail(err, BCML_ENOMEM, "batch_norm backward: out of memory");
    bn_bw_job j = {.d = d, .M = M, .g = bcml_f32(dout), .xd = bcml_f32(x), .mu = bcml_f32(n->saved[0]),
                   .is = bcml_f32(n->saved[1]), .wd = w ? bcml_f32(w) : NULL, .acc = acc,
                   .dw = n->n_in > 1 && din[1] ? bcml_f32(din[1]) : NULL,
                   .db = n->n_in > 2 && din[2] ? bcml_f32(din[2]) : NULL,
                   .dx = din[0] ? bcml_f32(din[0]) : NULL, .training = n->args.i[0] != 0};
    int64_t ntasks = bn_tasks(d);
    if (ntasks == 1) bn_bw_task(&j, 0, 1);
    else bcml_parallel(ntasks, bn_bw_task, &j);
    bcml_free(acc);
    return BCML_OK;
}

static void bn_bw_task(void *arg, int64_t k, int64_t ntasks) {
    const bn_bw_job *j = arg;
    const bn_dims d = j->d;
    const int64_t M = j->M;
    const float *g = j->g, *xd = j->xd, *mu = j->mu, *is = j->is;
    int64_t c0, c1;
    bn_chunk(d, k, ntasks, &c0, &c1);
    if (c0 >= c1) return;
    double *sg = j->acc, *sgx = j->acc + d.C;
    for (int64_t c = c0; c < c1; c++) sg[c] = sgx[c] = 0.0;
    for (int64_t nn = 0; nn < d.N; nn++)
        for (int64_t c = c0; c < c1; c++) {
            const float *gr = g + (nn * d.C + c) * d.S, *xr = xd + (nn * d.C + c) * d.S;
            double a = 0.0, ax = 0.0, m = mu[c];
            for (int64_t s = 0; s < d.S; s++) { a += gr[s]; ax += gr[s] * (xr[s] - m); }
            sg[c] += a;
            sgx[c] += ax;
        }
    if (j->dw)
        for (int64_t c = c0; c < c1; c++) j->dw[c] += (float)(sgx[c] * is[c]);
    if (j->db)
        for (int64_t c = c0; c < c1; c++) j->db[c] += (float)sg[c];
    if (j->dx) {
        float *dx = j->dx; /* (N, C, S) */
        const float *wd = j->wd;
        const int training = j->training;
        for (int64_t nn = 0; nn < d.N; nn++)
            for (int64_t c = c0; c < c1; c++) {
                const float *gr = g + (nn * d.C + c) * d.S, *xr = xd + (nn * d.C + c) * d.S;
                float *dr = dx + (nn * d.C + c) * d.S;
                float scale = is[c] * (wd ? wd[c] : 1.0f);
                if (training) {
                    float gmean = (float)(sg[c] / (double)M);
                    float proj = (float)(sgx[c] * (double)is[c] * (double)is[c] / (double)M);
                    float m = mu[c];
                    for (int64_t s = 0; s < d.S; s++) dr[s] += (gr[s] - gmean - (xr[s] - m) * proj) * scale;
                } else {
                    for (int64_t s = 0; s < d.S; s++) dr[s] += gr[s] * scale;
                }
            }
    }
}
