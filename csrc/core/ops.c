/* ops.c: the op table. One entry per bcml_op, in enum order. */
#include "ops.h"

#include <string.h>

#define OP(e, nm, lo, hi, nout, fw, bw) [BCML_OP_##e] = {nm, lo, hi, nout, fw, bw, 0}
/* an op whose backward can write the gradient of the inputs in the bitmask `fresh` from scratch */
#define OPF(e, nm, lo, hi, nout, fw, bw, fresh) [BCML_OP_##e] = {nm, lo, hi, nout, fw, bw, fresh}

/* Declared without a size, so that the count check below can fail: the table has as many
 * entries as its last designated index + 1. A hole before the last entry is caught at import
 * by bcml_ops_check. */
const bcml_opdef bcml_ops[] = {
    OP(ADD, "add", 2, 2, 1, bcml_add_forward, bcml_add_backward),
    OP(SUB, "sub", 2, 2, 1, bcml_sub_forward, bcml_sub_backward),
    OP(MUL, "mul", 2, 2, 1, bcml_mul_forward, bcml_mul_backward),
    OP(DIV, "div", 2, 2, 1, bcml_div_forward, bcml_div_backward),
    OP(ADD_SCALAR, "add_scalar", 1, 1, 1, bcml_add_scalar_forward, bcml_add_scalar_backward),
    OP(RDIV_SCALAR, "rdiv_scalar", 1, 1, 1, bcml_rdiv_scalar_forward, bcml_rdiv_scalar_backward),
    OP(POW_SCALAR, "pow_scalar", 1, 1, 1, bcml_pow_scalar_forward, bcml_pow_scalar_backward),
    OP(EXP, "exp", 1, 1, 1, bcml_exp_forward, bcml_exp_backward),
    OP(LOG, "log", 1, 1, 1, bcml_log_forward, bcml_log_backward),
    OP(ABS, "abs", 1, 1, 1, bcml_abs_forward, bcml_abs_backward),
    OP(CLAMP, "clamp", 1, 1, 1, bcml_clamp_forward, bcml_clamp_backward),
    OPF(RELU, "relu", 1, 1, 1, bcml_relu_forward, bcml_relu_backward, 0x1),
    OP(SIGMOID, "sigmoid", 1, 1, 1, bcml_sigmoid_forward, bcml_sigmoid_backward),
    OP(TANH, "tanh", 1, 1, 1, bcml_tanh_forward, bcml_tanh_backward),
    OP(SOFTMAX, "softmax", 1, 1, 1, bcml_softmax_forward, bcml_softmax_backward),
    OP(LOG_SOFTMAX, "log_softmax", 1, 1, 1, bcml_log_softmax_forward, bcml_log_softmax_backward),
    OP(SUM, "sum", 1, 1, 1, bcml_sum_forward, bcml_sum_backward),
    OP(MEAN, "mean", 1, 1, 1, bcml_mean_forward, bcml_mean_backward),
    OP(MAX_DIM, "max_dim", 1, 1, 2, bcml_max_dim_forward, bcml_max_dim_backward),
    OP(ARGMAX, "argmax", 1, 1, 1, bcml_argmax_forward, NULL),
    OP(MATMUL, "matmul", 2, 2, 1, bcml_matmul_forward, bcml_matmul_backward),
    OPF(LINEAR, "linear", 2, 3, 1, bcml_linear_forward, bcml_linear_backward, 0x1),
    OP(TRANSPOSE, "transpose", 1, 1, 1, bcml_transpose_forward, bcml_transpose_backward),
    OP(RESHAPE, "reshape", 1, 1, 1, bcml_reshape_forward, bcml_reshape_backward),
    OP(SLICE, "slice", 1, 1, 1, bcml_slice_forward, bcml_slice_backward),
    OP(INDEX_SELECT, "index_select", 2, 2, 1, bcml_index_select_forward, bcml_index_select_backward),
    OP(MASK_SELECT, "mask_select", 2, 2, 1, bcml_mask_select_forward, bcml_mask_select_backward),
    OP(CAT, "cat", 1, -1, 1, bcml_cat_forward, bcml_cat_backward),
    OP(CAST, "cast", 1, 1, 1, bcml_cast_forward, NULL),
    OP(CMP, "cmp", 2, 2, 1, bcml_cmp_forward, NULL),
    OP(CMP_SCALAR, "cmp_scalar", 1, 1, 1, bcml_cmp_scalar_forward, NULL),
    OP(WHERE, "where", 3, 3, 1, bcml_where_forward, bcml_where_backward),
    OP(DROPOUT, "dropout", 1, 1, 1, bcml_dropout_forward, bcml_dropout_backward),
    OP(BATCH_NORM, "batch_norm", 1, 6, 1, bcml_batch_norm_forward, bcml_batch_norm_backward),
    OP(NLL_LOSS, "nll_loss", 2, 3, 1, bcml_nll_loss_forward, bcml_nll_loss_backward),
    OP(CROSS_ENTROPY, "cross_entropy", 2, 3, 1, bcml_cross_entropy_forward, bcml_cross_entropy_backward),
    OP(BCE, "binary_cross_entropy", 2, 3, 1, bcml_binary_cross_entropy_forward, bcml_binary_cross_entropy_backward),
    OP(KL_DIV, "kl_div", 2, 2, 1, bcml_kl_div_forward, bcml_kl_div_backward),
    OP(CONV2D, "conv2d", 2, 3, 1, bcml_conv2d_forward, bcml_conv2d_backward),
    OPF(MAX_POOL2D, "max_pool2d", 1, 1, 1, bcml_max_pool2d_forward, bcml_max_pool2d_backward, 0x1),
    OP(AVG_POOL2D, "avg_pool2d", 1, 1, 1, bcml_avg_pool2d_forward, bcml_avg_pool2d_backward),
    OP(ADAPTIVE_AVG_POOL2D, "adaptive_avg_pool2d", 1, 1, 1, bcml_adaptive_avg_pool2d_forward, bcml_adaptive_avg_pool2d_backward),
    OP(DROPOUT2D, "dropout2d", 1, 1, 1, bcml_dropout2d_forward, bcml_dropout2d_backward),
    OP(COMPAT_LOSS, "compat_loss", 3, 3, 1, bcml_compat_loss_forward, bcml_compat_loss_backward),
    OP(CONV2D_BN_RELU, "conv2d_bn_relu", 6, 6, 1, bcml_conv2d_bn_relu_forward, NULL),
    OP(PC_LOSS, "pc_loss", 3, 3, 1, bcml_pc_loss_forward, bcml_pc_loss_backward),
};

_Static_assert(sizeof bcml_ops / sizeof bcml_ops[0] == BCML_OP_COUNT, "one table entry per op");

bcml_status bcml_ops_check(bcml_err *err) {
    for (int k = 0; k < BCML_OP_COUNT; k++) {
        const bcml_opdef *d = &bcml_ops[k];
        if (!d->name || !d->forward)
            return bcml_fail(err, BCML_ERUNTIME, "bcml_ops: op %d has no table entry (name or forward missing)", k);
        if (d->n_out < 1 || d->n_out > BCML_MAX_OUT || d->n_in_min < 0 || d->n_in_min > BCML_MAX_IN ||
            (d->n_in_max != -1 && (d->n_in_max < d->n_in_min || d->n_in_max > BCML_MAX_IN)))
            return bcml_fail(err, BCML_ERUNTIME, "bcml_ops: op %d (%s) has invalid input or output counts", k,
                             d->name);
        for (int j = 0; j < k; j++)
            if (!strcmp(bcml_ops[j].name, d->name))
                return bcml_fail(err, BCML_ERUNTIME, "bcml_ops: ops %d and %d share the name %s", j, k, d->name);
    }
    return BCML_OK;
}
