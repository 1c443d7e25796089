/* activation.c: relu, sigmoid, tanh (elementwise, float32). */
#include "ops.h"

#include <math.h>

static bcml_status unary_out(bcml_node *n, bcml_tensor **out, const char *name, bcml_err *err) {
    bcml_status st = bcml_require_dtype(n->in[0], BCML_FLOAT32, name, "input", err);
    if (st) return st;
    return bcml_tensor_new_like(&out[0], n->in[0], BCML_FLOAT32, 0, err);
}

/* Elementwise loops split over threads in chunks of at least this many floats (the pool's
 * wake-up costs about as much as a relu over a few thousand). */
#define ELEM_GRAIN ((int64_t)1 << 15)

typedef struct {
    const float *x;
    float *y;
} relu_job;

/* Both work on the bits (f2u, ops.h), so that the loops vectorise. A float is below zero (-0 not,
 * NaN not) when its bits are 0x80000001..0xff800000. */

BCML_CLONES static void relu_fw_range(void *p, int64_t lo, int64_t hi) {
    const relu_job *j = p;
    const float *restrict x = j->x;
    float *restrict y = j->y;
    /* max(x, 0) that keeps NaN and -0 (as x < 0 ? 0 : x) */
    for (int64_t i = lo; i < hi; i++) {
        const uint32_t u = f2u(x[i]);
        y[i] = u2f(u - 0x80000001u < 0x7f800000u ? 0u : u);
    }
}

typedef struct {
    const float *x, *g;
    float *dx;
    int set; /* dx is a new buffer (n->fresh): written, not added into */
} relu_bw_job;

/* as PyTorch's threshold_backward: zero where x <= 0 (+-0 included), so a NaN input passes its
 * gradient */
static inline uint32_t relu_bw_bits(float x, float g) {
    const uint32_t u = f2u(x);
    return (u & 0x7fffffffu) != 0 && !(u - 0x80000001u < 0x7f800000u) ? f2u(g) : 0u;
}

BCML_CLONES static void relu_bw_range(void *p, int64_t lo, int64_t hi) {
    const relu_bw_job *j = p;
    const float *restrict x = j->x, *restrict g = j->g;
    float *restrict dx = j->dx;
    if (j->set)
        for (int64_t i = lo; i < hi; i++) dx[i] = u2f(relu_bw_bits(x[i], g[i]));
    else
        for (int64_t i = lo; i < hi; i++) dx[i] += u2f(relu_bw_bits(x[i], g[i]));
}

bcml_status bcml_relu_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err) {
    (void)ctx;
    bcml_status st = unary_out(n, out, "relu", err);
    if (st) return st;
    relu_job j = {bcml_f32(n->in[0]), bcml_f32(out[0])};
    bcml_parallel_for(out[0]->numel, ELEM_GRAIN, relu_fw_range, &j);
    return BCML_OK;
}

bcml_status bcml_relu_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err) {
    (void)err;
    relu_bw_job j = {bcml_f32(n->in[0]), bcml_f32(dout), bcml_f32(din[0]), (int)(n->fresh & 1u)};
    bcml_parallel_for(dout->numel, ELEM_GRAIN, relu_bw_range, &j);
    return BCML_OK;
}

/* sigmoid and tanh save their output (an alias of out's data) for backward. */
bcml_status bcml_sigmoid_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err) {
    (void)ctx;
    bcml_status st = unary_out(n, out, "sigmoid", err);
    if (st) return st;
    const float *restrict x = bcml_f32(n->in[0]);
    float *restrict y = bcml_f32(out[0]);
    const int64_t N = out[0]->numel;
    for (int64_t i = 0; i < N; i++) y[i] = -x[i];
    bcml_exp_f32(y, y, N);
    for (int64_t i = 0; i < N; i++) y[i] = 1.0f / (1.0f + y[i]);
    return n->recording ? bcml_saved_alias(&n->saved[0], out[0], err) : BCML_OK;
}

bcml_status bcml_sigmoid_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err) {
    (void)err;
    const float *restrict y = bcml_f32(n->saved[0]), *restrict g = bcml_f32(dout);
    float *restrict dx = bcml_f32(din[0]);
    const int64_t N = dout->numel;
    for (int64_t i = 0; i < N; i++) dx[i] += g[i] * y[i] * (1.0f - y[i]);
    return BCML_OK;
}

bcml_status bcml_tanh_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err) {
    (void)ctx;
    bcml_status st = unary_out(n, out, "tanh", err);
    if (st) return st;
    const float *x = bcml_f32(n->in[0]);
    float *y = bcml_f32(out[0]);
    const int64_t N = out[0]->numel;
    for (int64_t i = 0; i < N; i++) y[i] = tanhf(x[i]);
    return n->recording ? bcml_saved_alias(&n->saved[0], out[0], err) : BCML_OK;
}

bcml_status bcml_tanh_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err) {
    (void)err;
    const float *restrict y = bcml_f32(n->saved[0]), *restrict g = bcml_f32(dout);
    float *restrict dx = bcml_f32(din[0]);
    const int64_t N = dout->numel;
    for (int64_t i = 0; i < N; i++) dx[i] += g[i] * (1.0f - y[i] * y[i]);
    return BCML_OK;
}
