/* ops.h: internal declarations of every op's forward/backward pair (see bcml_ops in ops.c). */
#ifndef BCML_OPS_H
#define BCML_OPS_H
#include "bcml.h"

#include <string.h>

/* Hot elementwise kernels are compiled twice, for AVX2 and for the x86-64 baseline, and the
 * loader picks one (GCC's target_clones); every lane computes the same thing either way, so
 * results do not depend on the CPU. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__linux__) && \
    !defined(__SANITIZE_ADDRESS__)
#define BCML_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define BCML_CLONES
#endif

/* The AVX-512 kernels: built (BCML_AVX512_BUILD 1) on x86 with GCC or clang, each function compiled
 * for AVX-512F with BCML_AVX512 in an otherwise portable build, and called only where
 * bcml_have_avx512() says the CPU has it. */
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define BCML_AVX512_BUILD 1
#include <immintrin.h>
#define BCML_AVX512 __attribute__((target("avx512f")))
#else
#define BCML_AVX512_BUILD 0
#endif

/* A float's bits and back (kernels that select on bits vectorise where float comparisons do not:
 * GCC will not if-convert them under -ftrapping-math). */
static inline uint32_t f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

/* 1 where this build runs on x86-64, the CPU has AVX-512F and the AVX-512 kernels are on (cpu.c). */
int bcml_have_avx512(void);

/* y[i] = exp(x[i]) (y may equal x): a branch-free vectorisable exp within 1 ulp (elementwise.c). */
void bcml_exp_f32(float *y, const float *x, int64_t n);
/* y[i] = log(x[i]) (y may equal x): a branch-free vectorisable log within 1 ulp (elementwise.c). */
void bcml_log_f32(float *y, const float *x, int64_t n);

bcml_status bcml_add_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err);
bcml_status bcml_add_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err);
bcml_status bcml_sub_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err);
bcml_status bcml_sub_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err);
bcml_status bcml_mul_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err);
bcml_status bcml_mul_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err);
bcml_status bcml_div_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err);
bcml_status bcml_div_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err);
bcml_status bcml_add_scalar_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err);
bcml_status bcml_add_scalar_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err);
bcml_status bcml_rdiv_scalar_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err);
bcml_status bcml_rdiv_scalar_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err);
bcml_status bcml_pow_scalar_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err);
bcml_status bcml_pow_scalar_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err);
bcml_status bcml_exp_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err);
bcml_status bcml_exp_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err);
bcml_status bcml_log_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err);
bcml_status bcml_log_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err);
bcml_status bcml_abs_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err);
bcml_status bcml_abs_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err);
bcml_status bcml_clamp_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err);
bcml_status bcml_clamp_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err);
bcml_status bcml_relu_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err);
bcml_status bcml_relu_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err);
bcml_status bcml_sigmoid_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err);
bcml_status bcml_sigmoid_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err);
bcml_status bcml_tanh_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err);
bcml_status bcml_tanh_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err);
bcml_status bcml_softmax_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err);
bcml_status bcml_softmax_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err);
bcml_status bcml_log_softmax_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err);
bcml_status bcml_log_softmax_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err);
bcml_status bcml_sum_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err);
bcml_status bcml_sum_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err);
bcml_status bcml_mean_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err);
bcml_status bcml_mean_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err);
bcml_status bcml_max_dim_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err);
bcml_status bcml_max_dim_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err);
bcml_status bcml_argmax_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err);
bcml_status bcml_matmul_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err);
bcml_status bcml_matmul_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err);
bcml_status bcml_linear_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err);
bcml_status bcml_linear_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err);
bcml_status bcml_transpose_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err);
bcml_status bcml_transpose_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err);
bcml_status bcml_reshape_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err);
bcml_status bcml_reshape_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err);
bcml_status bcml_slice_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err);
bcml_status bcml_slice_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err);
bcml_status bcml_index_select_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err);
bcml_status bcml_index_select_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err);
bcml_status bcml_mask_select_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err);
bcml_status bcml_mask_select_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err);
bcml_status bcml_cat_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err);
bcml_status bcml_cat_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err);
bcml_status bcml_cast_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err);
bcml_status bcml_cmp_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err);
bcml_status bcml_cmp_scalar_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err);
bcml_status bcml_where_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err);
bcml_status bcml_where_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err);
bcml_status bcml_dropout_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err);
bcml_status bcml_dropout_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err);
bcml_status bcml_batch_norm_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err);
bcml_status bcml_batch_norm_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err);
bcml_status bcml_nll_loss_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err);
bcml_status bcml_nll_loss_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err);
bcml_status bcml_cross_entropy_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err);
bcml_status bcml_cross_entropy_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err);
bcml_status bcml_binary_cross_entropy_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err);
bcml_status bcml_binary_cross_entropy_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err);
bcml_status bcml_kl_div_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err);
bcml_status bcml_kl_div_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err);

bcml_status bcml_conv2d_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err);
bcml_status bcml_conv2d_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err);
bcml_status bcml_conv2d_bn_relu_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err);
/* Winograd 3x3 stride-1 padding-1 convolution (winograd.c). bcml_wino_tile: the output tile m
 * (2 or 4) chosen for these shapes, or 0 for im2col + GEMM (also when switched off).
 * bcml_wino_conv: out (N, Cout, H, W) = conv(x (N, Cin, H, W), w) [+ bias] [* scale + shift]
 * [ReLU], or with acc out += conv(x, w); with flip, w is (Cin, Cout, 3, 3) and is used rotated
 * by 180 degrees and transposed (the input gradient of a convolution). */
int bcml_wino_tile(int64_t N, int64_t Cin, int64_t Cout, int64_t H, int64_t W);
bcml_status bcml_wino_conv(int m, const float *x, const float *w, int flip, const float *bias, const float *scale,
                           const float *shift, int relu, float *out, int acc, int64_t N, int64_t Cin, int64_t Cout,
                           int64_t H, int64_t W, bcml_err *err);
/* Maps of 2x2 (bcml_wino_tile 1): the convolution as one dense (C*4, OC*4) matrix; any of out
 * (forward, with bias, scale, shift, relu as bcml_wino_conv), dx (+=, from dout), dw (+=) or NULL. */
bcml_status bcml_dense_conv(const float *x, const float *w, const float *bias, const float *scale,
                            const float *shift, int relu, float *out, const float *dout, float *dx, float *dw,
                            int64_t N, int64_t C, int64_t OC, int64_t H, int64_t W, bcml_err *err);
/* dw (Cout, Cin, 3, 3) += the weight gradient of that convolution (F(2x2, 3x3)) from x and dout. */
bcml_status bcml_wino_dw(const float *x, const float *dout, float *dw, int64_t N, int64_t Cin, int64_t Cout,
                         int64_t H, int64_t W, bcml_err *err);
/* Direct convolution for small channel counts, stride 1, groups 1, AVX-512 (conv_direct.c).
 * bcml_conv_direct_ok: whether these shapes take it (forward, dx and dw alike); fw: out =
 * conv(x, w) [+ bias] [* scale + shift] [ReLU]; dx += and dw += the gradients from dout. */
int bcml_conv_direct_ok(int64_t C, int64_t OC, int64_t KH, int64_t KW, int64_t H, int64_t ph, int64_t OH,
                        int64_t OW);
bcml_status bcml_conv_direct_fw(const float *x, const float *w, const float *bias, const float *scale,
                                const float *shift, int relu, float *out, int64_t N, int64_t C, int64_t H, int64_t W,
                                int64_t OC, int64_t KH, int64_t KW, int64_t ph, int64_t pw, int64_t dh, int64_t dw,
                                int64_t OH, int64_t OW, bcml_err *err);
bcml_status bcml_conv_direct_dx(const float *dout, const float *w, float *dx, int64_t N, int64_t C, int64_t H,
                                int64_t W, int64_t OC, int64_t KH, int64_t KW, int64_t ph, int64_t pw, int64_t dh,
                                int64_t dw, int64_t OH, int64_t OW, bcml_err *err);
bcml_status bcml_conv_direct_dw(const float *x, const float *dout, float *dw, int64_t N, int64_t C, int64_t H,
                                int64_t W, int64_t OC, int64_t KH, int64_t KW, int64_t ph, int64_t pw, int64_t dh,
                                int64_t dwl, int64_t OH, int64_t OW, bcml_err *err);
bcml_status bcml_max_pool2d_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err);
bcml_status bcml_max_pool2d_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err);
bcml_status bcml_avg_pool2d_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err);
bcml_status bcml_avg_pool2d_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err);
bcml_status bcml_adaptive_avg_pool2d_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err);
bcml_status bcml_adaptive_avg_pool2d_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err);
bcml_status bcml_dropout2d_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err);
bcml_status bcml_dropout2d_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err);

bcml_status bcml_compat_loss_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err);
bcml_status bcml_compat_loss_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err);
bcml_status bcml_pc_loss_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err);
bcml_status bcml_pc_loss_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err);

#endif
