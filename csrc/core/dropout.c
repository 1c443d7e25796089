/* dropout.c: inverted dropout (float32). */
#include "ops.h"

#include <string.h>

/* out = x * keep / (1 - p) with keep = (u >= p), u ~ U[0, 1) drawn once per element in order.
 * x * 0 keeps NaN and inf as NaN, as PyTorch's x * mask does. */
static void dropout_fw(float *out,        /* (numel) */
                       uint8_t *keep,     /* (numel) */
                       const float *x,    /* (numel) */
                       int64_t numel, double p, bcml_generator *g) {
    float scale = p < 1.0 ? (float)(1.0 / (1.0 - p)) : 0.0f;
    for (int64_t i = 0; i < numel; i++) keep[i] = (double)bcml_gen_uniform_f(g) >= p;
    for (int64_t i = 0; i < numel; i++) out[i] = x[i] * (keep[i] ? scale : 0.0f);
}

static void dropout_bw(float *dx,            /* (numel) += */
                       const float *dout,    /* (numel) */
                       const uint8_t *keep,  /* (numel) */
                       int64_t numel, double p) {
    float scale = p < 1.0 ? (float)(1.0 / (1.0 - p)) : 0.0f;
    for (int64_t i = 0; i < numel; i++) dx[i] += dout[i] * (keep[i] ? scale : 0.0f);
}

/* in: x (any shape, float32); f[0] = p in [0, 1], i[0] = training (Python calls this only when
 * training with p > 0; otherwise it is the identity, a copy here). Draws from ctx->gen.
 * When recording, saved[0] = the keep mask (bool, x's shape). */
bcml_status bcml_dropout_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err) {
    const bcml_tensor *x = n->in[0];
    bcml_status st = bcml_require_dtype(x, BCML_FLOAT32, "dropout", "input", err);
    if (st) return st;
    double p = n->args.f[0];
    if (!(p >= 0.0 && p <= 1.0))
        return bcml_fail(err, BCML_EVALUE, "dropout: probability p has to be between 0 and 1, but got %g", p);
    if ((st = bcml_tensor_new_like(&out[0], x, BCML_FLOAT32, 0, err))) return st;
    if (!n->args.i[0] || p == 0.0) {
        memcpy(bcml_f32(out[0]), bcml_f32(x), bcml_nbytes(x));
        return BCML_OK;
    }
    if (!ctx->gen)
        return bcml_fail(err, BCML_ERUNTIME, "dropout: a generator is required when training");
    bcml_tensor *keep = NULL; /* x's shape */
    if ((st = bcml_tensor_new_like(&keep, x, BCML_BOOL, 0, err))) return st;
    dropout_fw(bcml_f32(out[0]), bcml_u8(keep), bcml_f32(x), x->numel, p, ctx->gen);
    if (n->recording) n->saved[0] = keep;
    else bcml_tensor_unref(keep);
    return BCML_OK;
}

bcml_status bcml_dropout_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err) {
    (void)err;
    float *dx = bcml_f32(din[0]);
    const float *g = bcml_f32(dout);
    if (!n->saved[0]) { /* identity (not training or p == 0) */
        for (int64_t i = 0; i < dout->numel; i++) dx[i] += g[i];
        return BCML_OK;
    }
    dropout_bw(dx, g, bcml_u8(n->saved[0]), dout->numel, n->args.f[0]);
    return BCML_OK;
}

/* ---- dropout2d ---------------------------------------------------------------------------- */
/* Feature dropout as PyTorch's: x is (d0, d1, ...) with at least 2 dims; each of the d0 * d1
 * planes (an (n, c) channel of (N, C, H, W); a row of (N, C, L) for 3-D input, as PyTorch 2
 * treats it) is kept when its uniform u >= p, drawn once per plane in order, and scaled by
 * 1 / (1 - p); dropped planes become x * 0. */
typedef struct {
    float *out, *dx;              /* (P, S), (P, S) += */
    const float *x, *dout;        /* (P, S) */
    const uint8_t *keep;          /* (P) */
    int64_t P, S, chunk;
    float scale;
} plane_dropout_job;

static void dropout2d_fw_task(void *arg, int64_t k, int64_t n) {
    (void)n;
    const plane_dropout_job *j = arg;
    int64_t p1 = (k + 1) * j->chunk < j->P ? (k + 1) * j->chunk : j->P;
    for (int64_t p = k * j->chunk; p < p1; p++) {
        float s = j->keep[p] ? j->scale : 0.0f;
        const float *restrict x = j->x + p * j->S;
        float *restrict y = j->out + p * j->S;
        for (int64_t i = 0; i < j->S; i++) y[i] = x[i] * s;
    }
}

static void dropout2d_bw_task(void *arg, int64_t k, int64_t n) {
    (void)n;
    const plane_dropout_job *j = arg;
    int64_t p1 = (k + 1) * j->chunk < j->P ? (k + 1) * j->chunk : j->P;
    for (int64_t p = k * j->chunk; p < p1; p++) {
        float s = j->keep[p] ? j->scale : 0.0f;
        const float *restrict g = j->dout + p * j->S;
        float *restrict dx = j->dx + p * j->S;
        for (int64_t i = 0; i < j->S; i++) dx[i] += g[i] * s;
    }
}

/* Splits the planes into tasks by size only (so any thread count gives the same result). */
static void dropout2d_run(plane_dropout_job *j, bcml_task_fn fn) {
    /* from 32K elements, 16 tasks or more (as the convolutions before it split their images:
     * each core then mostly reads what it wrote) */
    int64_t ntasks = j->P * j->S / 65536;
    if (j->P * j->S >= 32768 && ntasks < 16) ntasks = 16;
    if (ntasks > 64) ntasks = 64;
    if (ntasks > j->P) ntasks = j->P;
    if (ntasks < 1) ntasks = 1;
    j->chunk = (j->P + ntasks - 1) / ntasks;
    ntasks = j->chunk ? (j->P + j->chunk - 1) / j->chunk : 0;
    if (ntasks == 1) fn(j, 0, 1);
    else if (ntasks > 1) bcml_parallel(ntasks, fn, j);
}

/* in: x (N, C, H, W) or (C, H, W) (any rank >= 2, see above); f[0] = p in [0, 1], i[0] = training
 * (Python calls this only when training with p > 0; otherwise it is a copy). Draws d0 * d1
 * uniforms from ctx->gen (none for an empty x, as PyTorch returns it untouched). When recording,
 * saved[0] = the per-plane keep mask (bool, (d0, d1)). */
bcml_status bcml_dropout2d_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err) {
    const bcml_tensor *x = n->in[0];
    bcml_status st = bcml_require_dtype(x, BCML_FLOAT32, "dropout2d", "input", err);
    if (st) return st;
    double p = n->args.f[0];
    if (!(p >= 0.0 && p <= 1.0))
        return bcml_fail(err, BCML_EVALUE, "dropout2d: probability p has to be between 0 and 1, but got %g", p);
    int identity = !n->args.i[0] || p == 0.0 || x->numel == 0;
    if (x->ndim < 2 && !identity) {
        char b[64];
        return bcml_fail(err, BCML_EVALUE,
                         "dropout2d: input must have at least 2 dimensions ((N, C, H, W) or (C, H, W)), got shape %s",
                         bcml_shape_str(x, b, sizeof b));
    }
    if ((st = bcml_tensor_new_like(&out[0], x, BCML_FLOAT32, 0, err))) return st;
    if (identity) {
        memcpy(bcml_f32(out[0]), bcml_f32(x), bcml_nbytes(x));
        return BCML_OK;
    }
    if (!ctx->gen)
        return bcml_fail(err, BCML_ERUNTIME, "dropout2d: a generator is required when training");
    bcml_tensor *keep = NULL; /* (d0, d1) */
    if ((st = bcml_tensor_new(&keep, BCML_BOOL, 2, x->shape, 0, err))) return st;
    uint8_t *k = bcml_u8(keep);
    for (int64_t i = 0; i < keep->numel; i++) k[i] = (double)bcml_gen_uniform_f(ctx->gen) >= p;
    plane_dropout_job j = {.out = bcml_f32(out[0]), .x = bcml_f32(x), .keep = k, .P = keep->numel,
                           .S = x->numel / keep->numel, .scale = p < 1.0 ? (float)(1.0 / (1.0 - p)) : 0.0f};
    dropout2d_run(&j, dropout2d_fw_task);
    if (n->recording) n->saved[0] = keep;
    else bcml_tensor_unref(keep);
    return BCML_OK;
}

bcml_status bcml_dropout2d_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err) {
    (void)err;
    if (!din[0]) return BCML_OK;
    float *dx = bcml_f32(din[0]);
    const float *g = bcml_f32(dout);
    if (!n->saved[0]) { /* identity (not training, p == 0 or empty) */
        for (int64_t i = 0; i < dout->numel; i++) dx[i] += g[i];
        return BCML_OK;
    }
    double p = n->args.f[0];
    plane_dropout_job j = {.dx = dx, .dout = g, .keep = bcml_u8(n->saved[0]), .P = n->saved[0]->numel,
                           .S = dout->numel / n->saved[0]->numel,
                           .scale = p < 1.0 ? (float)(1.0 / (1.0 - p)) : 0.0f};
    dropout2d_run(&j, dropout2d_bw_task);
    return BCML_OK;
}
