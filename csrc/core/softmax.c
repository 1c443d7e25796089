/* softmax.c: TODO */
#include "ops.h"

bcml_status bcml_softmax_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err) {
    (void)n; (void)ctx; (void)out;
    return bcml_fail(err, BCML_ERUNTIME, "softmax is not implemented yet");
}
bcml_status bcml_softmax_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err) {
    (void)n; (void)dout; (void)din;
    return bcml_fail(err, BCML_ERUNTIME, "softmax backward is not implemented yet");
}
bcml_status bcml_log_softmax_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err) {
    (void)n; (void)ctx; (void)out;
    return bcml_fail(err, BCML_ERUNTIME, "log_softmax is not implemented yet");
}
bcml_status bcml_log_softmax_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err) {
    (void)n; (void)dout; (void)din;
    return bcml_fail(err, BCML_ERUNTIME, "log_softmax backward is not implemented yet");
}
