/* loss.c: TODO */
#include "ops.h"

bcml_status bcml_nll_loss_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err) {
    (void)n; (void)ctx; (void)out;
    return bcml_fail(err, BCML_ERUNTIME, "nll_loss is not implemented yet");
}
bcml_status bcml_nll_loss_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err) {
    (void)n; (void)dout; (void)din;
    return bcml_fail(err, BCML_ERUNTIME, "nll_loss backward is not implemented yet");
}
bcml_status bcml_cross_entropy_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err) {
    (void)n; (void)ctx; (void)out;
    return bcml_fail(err, BCML_ERUNTIME, "cross_entropy is not implemented yet");
}
bcml_status bcml_cross_entropy_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err) {
    (void)n; (void)dout; (void)din;
    return bcml_fail(err, BCML_ERUNTIME, "cross_entropy backward is not implemented yet");
}
bcml_status bcml_binary_cross_entropy_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err) {
    (void)n; (void)ctx; (void)out;
    return bcml_fail(err, BCML_ERUNTIME, "binary_cross_entropy is not implemented yet");
}
bcml_status bcml_binary_cross_entropy_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err) {
    (void)n; (void)dout; (void)din;
    return bcml_fail(err, BCML_ERUNTIME, "binary_cross_entropy backward is not implemented yet");
}
bcml_status bcml_kl_div_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err) {
    (void)n; (void)ctx; (void)out;
    return bcml_fail(err, BCML_ERUNTIME, "kl_div is not implemented yet");
}
bcml_status bcml_kl_div_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err) {
    (void)n; (void)dout; (void)din;
    return bcml_fail(err, BCML_ERUNTIME, "kl_div backward is not implemented yet");
}
