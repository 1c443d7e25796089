/* reduce.c: TODO */
#include "ops.h"

bcml_status bcml_sum_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err) {
    (void)n; (void)ctx; (void)out;
    return bcml_fail(err, BCML_ERUNTIME, "sum is not implemented yet");
}
bcml_status bcml_sum_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err) {
    (void)n; (void)dout; (void)din;
    return bcml_fail(err, BCML_ERUNTIME, "sum backward is not implemented yet");
}
bcml_status bcml_mean_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err) {
    (void)n; (void)ctx; (void)out;
    return bcml_fail(err, BCML_ERUNTIME, "mean is not implemented yet");
}
bcml_status bcml_mean_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err) {
    (void)n; (void)dout; (void)din;
    return bcml_fail(err, BCML_ERUNTIME, "mean backward is not implemented yet");
}
bcml_status bcml_max_dim_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err) {
    (void)n; (void)ctx; (void)out;
    return bcml_fail(err, BCML_ERUNTIME, "max_dim is not implemented yet");
}
bcml_status bcml_max_dim_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err) {
    (void)n; (void)dout; (void)din;
    return bcml_fail(err, BCML_ERUNTIME, "max_dim backward is not implemented yet");
}
bcml_status bcml_argmax_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err) {
    (void)n; (void)ctx; (void)out;
    return bcml_fail(err, BCML_ERUNTIME, "argmax is not implemented yet");
}
