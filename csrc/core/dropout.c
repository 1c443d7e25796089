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

bcml_status bcml_dropout2d_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err) {
    (void)n; (void)ctx; (void)out;
    return bcml_fail(err, BCML_ERUNTIME, "dropout2d is not implemented yet");
}
bcml_status bcml_dropout2d_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err) {
    (void)n; (void)dout; (void)din;
    return bcml_fail(err, BCML_ERUNTIME, "dropout2d backward is not implemented yet");
}
