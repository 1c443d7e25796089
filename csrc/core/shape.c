/* shape.c: TODO */
#include "ops.h"

bcml_status bcml_transpose_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err) {
    (void)n; (void)ctx; (void)out;
    return bcml_fail(err, BCML_ERUNTIME, "transpose is not implemented yet");
}
bcml_status bcml_transpose_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err) {
    (void)n; (void)dout; (void)din;
    return bcml_fail(err, BCML_ERUNTIME, "transpose backward is not implemented yet");
}
bcml_status bcml_reshape_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err) {
    (void)n; (void)ctx; (void)out;
    return bcml_fail(err, BCML_ERUNTIME, "reshape is not implemented yet");
}
bcml_status bcml_reshape_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err) {
    (void)n; (void)dout; (void)din;
    return bcml_fail(err, BCML_ERUNTIME, "reshape backward is not implemented yet");
}
bcml_status bcml_slice_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err) {
    (void)n; (void)ctx; (void)out;
    return bcml_fail(err, BCML_ERUNTIME, "slice is not implemented yet");
}
bcml_status bcml_slice_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err) {
    (void)n; (void)dout; (void)din;
    return bcml_fail(err, BCML_ERUNTIME, "slice backward is not implemented yet");
}
bcml_status bcml_index_select_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err) {
    (void)n; (void)ctx; (void)out;
    return bcml_fail(err, BCML_ERUNTIME, "index_select is not implemented yet");
}
bcml_status bcml_index_select_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err) {
    (void)n; (void)dout; (void)din;
    return bcml_fail(err, BCML_ERUNTIME, "index_select backward is not implemented yet");
}
bcml_status bcml_mask_select_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err) {
    (void)n; (void)ctx; (void)out;
    return bcml_fail(err, BCML_ERUNTIME, "mask_select is not implemented yet");
}
bcml_status bcml_mask_select_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err) {
    (void)n; (void)dout; (void)din;
    return bcml_fail(err, BCML_ERUNTIME, "mask_select backward is not implemented yet");
}
bcml_status bcml_cat_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err) {
    (void)n; (void)ctx; (void)out;
    return bcml_fail(err, BCML_ERUNTIME, "cat is not implemented yet");
}
bcml_status bcml_cat_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err) {
    (void)n; (void)dout; (void)din;
    return bcml_fail(err, BCML_ERUNTIME, "cat backward is not implemented yet");
}
