/* elementwise.c: TODO */
#include "ops.h"

bcml_status bcml_add_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err) {
    (void)n; (void)ctx; (void)out;
    return bcml_fail(err, BCML_ERUNTIME, "add is not implemented yet");
}
bcml_status bcml_add_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err) {
    (void)n; (void)dout; (void)din;
    return bcml_fail(err, BCML_ERUNTIME, "add backward is not implemented yet");
}
bcml_status bcml_sub_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err) {
    (void)n; (void)ctx; (void)out;
    return bcml_fail(err, BCML_ERUNTIME, "sub is not implemented yet");
}
bcml_status bcml_sub_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err) {
    (void)n; (void)dout; (void)din;
    return bcml_fail(err, BCML_ERUNTIME, "sub backward is not implemented yet");
}
bcml_status bcml_mul_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err) {
    (void)n; (void)ctx; (void)out;
    return bcml_fail(err, BCML_ERUNTIME, "mul is not implemented yet");
}
bcml_status bcml_mul_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err) {
    (void)n; (void)dout; (void)din;
    return bcml_fail(err, BCML_ERUNTIME, "mul backward is not implemented yet");
}
bcml_status bcml_div_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err) {
    (void)n; (void)ctx; (void)out;
    return bcml_fail(err, BCML_ERUNTIME, "div is not implemented yet");
}
bcml_status bcml_div_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err) {
    (void)n; (void)dout; (void)din;
    return bcml_fail(err, BCML_ERUNTIME, "div backward is not implemented yet");
}
bcml_status bcml_add_scalar_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err) {
    (void)n; (void)ctx; (void)out;
    return bcml_fail(err, BCML_ERUNTIME, "add_scalar is not implemented yet");
}
bcml_status bcml_add_scalar_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err) {
    (void)n; (void)dout; (void)din;
    return bcml_fail(err, BCML_ERUNTIME, "add_scalar backward is not implemented yet");
}
bcml_status bcml_rdiv_scalar_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err) {
    (void)n; (void)ctx; (void)out;
    return bcml_fail(err, BCML_ERUNTIME, "rdiv_scalar is not implemented yet");
}
bcml_status bcml_rdiv_scalar_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err) {
    (void)n; (void)dout; (void)din;
    return bcml_fail(err, BCML_ERUNTIME, "rdiv_scalar backward is not implemented yet");
}
bcml_status bcml_pow_scalar_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err) {
    (void)n; (void)ctx; (void)out;
    return bcml_fail(err, BCML_ERUNTIME, "pow_scalar is not implemented yet");
}
bcml_status bcml_pow_scalar_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err) {
    (void)n; (void)dout; (void)din;
    return bcml_fail(err, BCML_ERUNTIME, "pow_scalar backward is not implemented yet");
}
bcml_status bcml_exp_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err) {
    (void)n; (void)ctx; (void)out;
    return bcml_fail(err, BCML_ERUNTIME, "exp is not implemented yet");
}
bcml_status bcml_exp_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err) {
    (void)n; (void)dout; (void)din;
    return bcml_fail(err, BCML_ERUNTIME, "exp backward is not implemented yet");
}
bcml_status bcml_log_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err) {
    (void)n; (void)ctx; (void)out;
    return bcml_fail(err, BCML_ERUNTIME, "log is not implemented yet");
}
bcml_status bcml_log_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err) {
    (void)n; (void)dout; (void)din;
    return bcml_fail(err, BCML_ERUNTIME, "log backward is not implemented yet");
}
bcml_status bcml_abs_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err) {
    (void)n; (void)ctx; (void)out;
    return bcml_fail(err, BCML_ERUNTIME, "abs is not implemented yet");
}
bcml_status bcml_abs_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err) {
    (void)n; (void)dout; (void)din;
    return bcml_fail(err, BCML_ERUNTIME, "abs backward is not implemented yet");
}
bcml_status bcml_clamp_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err) {
    (void)n; (void)ctx; (void)out;
    return bcml_fail(err, BCML_ERUNTIME, "clamp is not implemented yet");
}
bcml_status bcml_clamp_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err) {
    (void)n; (void)dout; (void)din;
    return bcml_fail(err, BCML_ERUNTIME, "clamp backward is not implemented yet");
}
bcml_status bcml_cast_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err) {
    (void)n; (void)ctx; (void)out;
    return bcml_fail(err, BCML_ERUNTIME, "cast is not implemented yet");
}
bcml_status bcml_cmp_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err) {
    (void)n; (void)ctx; (void)out;
    return bcml_fail(err, BCML_ERUNTIME, "cmp is not implemented yet");
}
bcml_status bcml_cmp_scalar_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err) {
    (void)n; (void)ctx; (void)out;
    return bcml_fail(err, BCML_ERUNTIME, "cmp_scalar is not implemented yet");
}
bcml_status bcml_where_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err) {
    (void)n; (void)ctx; (void)out;
    return bcml_fail(err, BCML_ERUNTIME, "where is not implemented yet");
}
bcml_status bcml_where_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err) {
    (void)n; (void)dout; (void)din;
    return bcml_fail(err, BCML_ERUNTIME, "where backward is not implemented yet");
}
