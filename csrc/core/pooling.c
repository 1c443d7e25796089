/* pooling.c: 2-D pooling (TODO). */
#include "ops.h"

bcml_status bcml_max_pool2d_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err) {
    (void)n; (void)ctx; (void)out;
    return bcml_fail(err, BCML_ERUNTIME, "max_pool2d is not implemented yet");
}
bcml_status bcml_max_pool2d_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err) {
    (void)n; (void)dout; (void)din;
    return bcml_fail(err, BCML_ERUNTIME, "max_pool2d backward is not implemented yet");
}
bcml_status bcml_avg_pool2d_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err) {
    (void)n; (void)ctx; (void)out;
    return bcml_fail(err, BCML_ERUNTIME, "avg_pool2d is not implemented yet");
}
bcml_status bcml_avg_pool2d_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err) {
    (void)n; (void)dout; (void)din;
    return bcml_fail(err, BCML_ERUNTIME, "avg_pool2d backward is not implemented yet");
}
bcml_status bcml_adaptive_avg_pool2d_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err) {
    (void)n; (void)ctx; (void)out;
    return bcml_fail(err, BCML_ERUNTIME, "adaptive_avg_pool2d is not implemented yet");
}
bcml_status bcml_adaptive_avg_pool2d_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err) {
    (void)n; (void)dout; (void)din;
    return bcml_fail(err, BCML_ERUNTIME, "adaptive_avg_pool2d backward is not implemented yet");
}
