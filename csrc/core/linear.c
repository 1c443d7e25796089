/* linear.c: linear (x @ W^T + b) and matmul, forward and backward, on cblas_sgemm. */
#include "ops.h"
#include "blas.h"

#include <string.h>

/* Rows of x are all leading dims flattened: x (R, C), W (OC, C), b (OC) -> out (R, OC). */
static void linear_fw(float *out, const float *x, const float *w, const float *b, int64_t R,
                      int64_t C, int64_t OC) {
    if (R == 0 || OC == 0) return;
    if (b) {
        for (int64_t r = 0; r < R; r++) memcpy(out + r * OC, b, (size_t)OC * sizeof(float));
    }
    if (C == 0) {
        if (!b) memset(out, 0, (size_t)(R * OC) * sizeof(float));
        return;
    }
    bcml_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)R, (int)OC, (int)C, 1.0f, x, (int)C,
               w, (int)C, b ? 1.0f : 0.0f, out, (int)OC);
}

/* Layers with a few outputs (logistic regression, a binary head) are a poor fit for GEMM, whose
 * packing of x costs more than the product: dot products and axpys over x's rows instead. */
#define NARROW_OC 4

/* Calls f(args..., OC) with OC (1 to NARROW_OC) a compile-time constant in each branch. */
#define NARROW_DISPATCH(oc, f, ...)                                                                \
    do {                                                                                           \
        switch (oc) {                                                                              \
        case 1: f(__VA_ARGS__, 1); break;                                                          \
        case 2: f(__VA_ARGS__, 2); break;                                                          \
        case 3: f(__VA_ARGS__, 3); break;                                                          \
        default: f(__VA_ARGS__, 4); break;                                                         \
        }                                                                                          \
    } while (0)

/* out (R, OC) = x (R, C) @ W^T (+ b), OC <= NARROW_OC a compile-time constant: each row's chunks
 * of x read once for every output, 16 lanes per output summed at the end of the row. */
static inline __attribute__((always_inline)) void fw_narrow_oc(float *out, const float *x, const float *w,
                                                              const float *b, int64_t R, int64_t C, const int OC) {
    for (int64_t r = 0; r < R; r++) {
        const float *xr = x + r * C;
        float acc[NARROW_OC][16] = {{0}};
        int64_t c = 0;
        for (; c + 16 <= C; c += 16)
            for (int o = 0; o < OC; o++)
                for (int l = 0; l < 16; l++) acc[o][l] += xr[c + l] * w[o * C + c + l];
        if (c + 8 <= C) {
            for (int o = 0; o < OC; o++)
                for (int l = 0; l < 8; l++) acc[o][l] += xr[c + l] * w[o * C + c + l];
            c += 8;
        }
        if (c + 4 <= C) {
            for (int o = 0; o < OC; o++)
                for (int l = 0; l < 4; l++) acc[o][l] += xr[c + l] * w[o * C + c + l];
            c += 4;
        }
        for (; c < C; c++)
            for (int o = 0; o < OC; o++) acc[o][0] += xr[c] * w[o * C + c];
        for (int o = 0; o < OC; o++) {
            float s8[8];
            for (int l = 0; l < 8; l++) s8[l] = acc[o][l] + acc[o][l + 8];
            const float s = ((s8[0] + s8[4]) + (s8[1] + s8[5])) + ((s8[2] + s8[6]) + (s8[3] + s8[7]));
            out[r * OC + o] = b ? b[o] + s : s;
        }
    }
}

BCML_CLONES static void linear_fw_narrow(float *out, const float *x, const float *w, const float *b,
                                             int64_t R, int64_t C, int64_t OC) {
    NARROW_DISPATCH(OC, fw_narrow_oc, out, x, w, b, R, C);
}

/* dW[:, c0:c1] (OC, C) += g^T (OC, R) @ x[:, c0:c1] with OC a compile-time constant: 16
 * columns at a time summed over all rows in registers, x read once. */
static inline __attribute__((always_inline)) void dw_narrow_oc(float *dw, const float *g, const float *x,
                                                              int64_t R, int64_t C, int64_t c0, int64_t c1,
                                                              const int OC) {
    int64_t c = c0;
    for (; c + 16 <= c1; c += 16) {
        float acc[NARROW_OC][16] = {{0}};
        for (int64_t r = 0; r < R; r++) {
            const float *xr = x + r * C + c;
            for (int o = 0; o < OC; o++) {
                const float go = g[r * OC + o];
                for (int l = 0; l < 16; l++) acc[o][l] += go * xr[l];
            }
        }
        for (int o = 0; o < OC; o++)
            for (int l = 0; l < 16; l++) dw[o * C + c + l] += acc[o][l];
    }
    for (; c + 4 <= c1; c += 4) {
        float acc[NARROW_OC][4] = {{0}};
        for (int64_t r = 0; r < R; r++) {
            const float *xr = x + r * C + c;
            for (int o = 0; o < OC; o++) {
                const float go = g[r * OC + o];
                for (int l = 0; l < 4; l++) acc[o][l] += go * xr[l];
            }
        }
        for (int o = 0; o < OC; o++)
            for (int l = 0; l < 4; l++) dw[o * C + c + l] += acc[o][l];
    }
    for (; c < c1; c++) {
        float acc[NARROW_OC] = {0};
        for (int64_t r = 0; r < R; r++)
            for (int o = 0; o < OC; o++) acc[o] += g[r * OC + o] * x[r * C + c];
        for (int o = 0; o < OC; o++) dw[o * C + c] += acc[o];
    }
}

BCML_CLONES static void linear_dw_narrow(float *dw, const float *g, const float *x, int64_t R, int64_t C,
                             int64_t OC, int64_t c0, int64_t c1) {
    NARROW_DISPATCH(OC, dw_narrow_oc, dw, g, x, R, C, c0, c1);
}

/* dx rows [r0, r1) (., C) += g (., OC) @ W (OC, C), OC <= NARROW_OC */
BCML_CLONES static void linear_dx_narrow(float *dx, const float *g, const float *w, int64_t r0, int64_t r1,
                             int64_t C, int64_t OC) {
    for (int64_t r = r0; r < r1; r++) {
        float *d = dx + r * C;
        for (int64_t o = 0; o < OC; o++) {
            const float go = g[r * OC + o];
            const float *wo = w + o * C;
            for (int64_t c = 0; c < C; c++) d[c] += go * wo[c];
        }
    }
}

#if BCML_AVX512_BUILD
#define HAVE_AVX512_NARROW 1
#define AVX512 BCML_AVX512

static inline __attribute__((always_inline)) AVX512 __mmask16 lanes(int64_t n) {
    return n >= 16 ? (__mmask16)0xFFFF : n > 0 ? (__mmask16)((1u << n) - 1u) : (__mmask16)0;
}

/* The narrow kernels on AVX-512 registers (the C loops above keep their sums in memory):
 * out (R, OC) = x (R, C) @ W^T (+ b), each row's 16-float chunks read once for every output. */
static inline __attribute__((always_inline)) AVX512 void fw_narrow512_oc(float *out, const float *x,
                                                                        const float *w, const float *b,
                                                                        int64_t R, int64_t C, const int OC) {
    for (int64_t r = 0; r < R; r++) {
        const float *xr = x + r * C;
        __m512 acc[NARROW_OC];
        for (int o = 0; o < OC; o++) acc[o] = _mm512_setzero_ps();
        for (int64_t c = 0; c < C; c += 16) {
            const __mmask16 m = lanes(C - c);
            const __m512 xv = _mm512_maskz_loadu_ps(m, xr + c);
            for (int o = 0; o < OC; o++) acc[o] = _mm512_fmadd_ps(xv, _mm512_maskz_loadu_ps(m, w + o * C + c), acc[o]);
        }
        for (int o = 0; o < OC; o++) {
            const float s = _mm512_reduce_add_ps(acc[o]);
            out[r * OC + o] = b ? b[o] + s : s;
        }
    }
}

AVX512 static void linear_fw_narrow512(float *out, const float *x, const float *w, const float *b, int64_t R,
                                       int64_t C, int64_t OC) {
    NARROW_DISPATCH(OC, fw_narrow512_oc, out, x, w, b, R, C);
}

/* dW[:, c0:c1] (OC, C) += g^T (OC, R) @ x[:, c0:c1]: 64 columns at a time summed over all rows in
 * registers (x read once), g's values broadcast. */
static inline __attribute__((always_inline)) AVX512 void dw_narrow512_oc(float *dw, const float *g, const float *x,
                                                                        int64_t R, int64_t C, int64_t c0, int64_t c1,
                                                                        const int OC) {
    for (int64_t c = c0; c < c1; c += 64) {
        __m512 acc[NARROW_OC][4];
        __mmask16 m[4];
        for (int v = 0; v < 4; v++) m[v] = lanes(c1 - c - 16 * v);
        for (int o = 0; o < OC; o++)
            for (int v = 0; v < 4; v++) acc[o][v] = _mm512_setzero_ps();
        for (int64_t r = 0; r < R; r++) {
            const float *xr = x + r * C + c;
            __m512 xv[4];
            for (int v = 0; v < 4; v++) xv[v] = _mm512_maskz_loadu_ps(m[v], xr + 16 * v);
            for (int o = 0; o < OC; o++) {
                const __m512 gv = _mm512_set1_ps(g[r * OC + o]);
                for (int v = 0; v < 4; v++) acc[o][v] = _mm512_fmadd_ps(gv, xv[v], acc[o][v]);
            }
        }
        for (int o = 0; o < OC; o++)
            for (int v = 0; v < 4; v++) {
                float *d = dw + o * C + c + 16 * v;
                _mm512_mask_storeu_ps(d, m[v], _mm512_add_ps(_mm512_maskz_loadu_ps(m[v], d), acc[o][v]));
            }
    }
}

AVX512 static void linear_dw_narrow512(float *dw, const float *g, const float *x, int64_t R, int64_t C,
                                       int64_t OC, int64_t c0, int64_t c1) {
    NARROW_DISPATCH(OC, dw_narrow512_oc, dw, g, x, R, C, c0, c1);
}
#else
#define HAVE_AVX512_NARROW 0
#endif

/* Number of tasks an (M x N x K) product is split into: from its size only (never from the
 * thread count), so results are the same bits with any number of threads. */
static int64_t gemm_tasks(int64_t M, int64_t N, int64_t K) {
    double macs = (double)M * (double)N * (double)K;
    int64_t t = macs >= 32e6 ? 8 : macs >= 8e6 ? 4 : macs >= 1e6 ? 2 : 1;
    while (t > 1 && M / t < 8) t /= 2;
    return t;
}

/* The narrow kernels (<= NARROW_OC outputs) read x once at memory speed: their tasks follow the
 * size of x (R x C floats), again never the thread count. */
static int64_t narrow_tasks(int64_t R, int64_t C) {
    double n = (double)R * (double)C;
    int64_t t = n >= 262144 ? 4 : n >= 32768 ? 2 : 1;
    while (t > 1 && R / t < 16) t /= 2;
    return t;
}

static void split(int64_t M, int64_t k, int64_t n, int64_t align, int64_t *m0, int64_t *m1) {
    int64_t chunk = ((M + n - 1) / n + align - 1) / align * align;
    *m0 = k * chunk < M ? k * chunk : M;
    *m1 = (k + 1) * chunk < M ? (k + 1) * chunk : M;
}

typedef struct {
    float *out; const float *x, *w, *b, *g;
    float *dx, *dw;
    int64_t R, C, OC;
} linear_job;

static void linear_fw_task(void *arg, int64_t k, int64_t n) {
    linear_job *j = arg;
    int64_t r0, r1;
    split(j->R, k, n, 8, &r0, &r1);
    if (r1 <= r0) return;
    if (j->OC > 0 && j->OC <= NARROW_OC && j->C > 0) {
#if HAVE_AVX512_NARROW
        if (bcml_have_avx512()) {
            linear_fw_narrow512(j->out + r0 * j->OC, j->x + r0 * j->C, j->w, j->b, r1 - r0, j->C, j->OC);
            return;
        }
#endif
        linear_fw_narrow(j->out + r0 * j->OC, j->x + r0 * j->C, j->w, j->b, r1 - r0, j->C, j->OC);
    } else {
        linear_fw(j->out + r0 * j->OC, j->x + r0 * j->C, j->w, j->b, r1 - r0, j->C, j->OC);
    }
}

/* dx rows [r0, r1) += g[r0:r1] (., OC) @ W (OC, C) */
static void linear_dx_task(void *arg, int64_t k, int64_t n) {
    linear_job *j = arg;
    int64_t r0, r1;
    split(j->R, k, n, 8, &r0, &r1);
    if (r1 > r0 && j->OC <= NARROW_OC)
        linear_dx_narrow(j->dx, j->g, j->w, r0, r1, j->C, j->OC);
    else if (r1 > r0)
        bcml_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)(r1 - r0), (int)j->C, (int)j->OC, 1.0f,
                   j->g + r0 * j->OC, (int)j->OC, j->w, (int)j->C, 1.0f, j->dx + r0 * j->C, (int)j->C);
}

/* dW columns [c0, c1) += g^T (OC, R) @ x[:, c0:c1] (R, .) */
static void linear_dw_task(void *arg, int64_t k, int64_t n) {
    linear_job *j = arg;
    int64_t c0, c1;
    split(j->C, k, n, 16, &c0, &c1);
    if (c1 > c0 && j->OC <= NARROW_OC) {
#if HAVE_AVX512_NARROW
        if (bcml_have_avx512()) {
            linear_dw_narrow512(j->dw, j->g, j->x, j->R, j->C, j->OC, c0, c1);
            return;
        }
#endif
        linear_dw_narrow(j->dw, j->g, j->x, j->R, j->C, j->OC, c0, c1);
    } else if (c1 > c0) {
        bcml_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)j->OC, (int)(c1 - c0), (int)j->R, 1.0f,
                   j->g, (int)j->OC, j->x + c0, (int)j->C, 1.0f, j->dw + c0, (int)j->C);
    }
}

static bcml_status check_blas_dims(int64_t a, int64_t b, int64_t c, const char *op, bcml_err *err) {
    if (a > INT32_MAX || b > INT32_MAX || c > INT32_MAX)
        return bcml_fail(err, BCML_EVALUE, "%s: a dimension exceeds 2^31-1, which BLAS cannot take", op);
    return BCML_OK;
}

/* in: x (..., C), W (OC, C), b (OC) or NULL; out (..., OC) */
bcml_status bcml_linear_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err) {
    (void)ctx;
    const bcml_tensor *x = n->in[0], *w = n->in[1], *b = n->n_in > 2 ? n->in[2] : NULL;
    bcml_status st;
    if ((st = bcml_require_dtype(x, BCML_FLOAT32, "linear", "input", err)) ||
        (st = bcml_require_dtype(w, BCML_FLOAT32, "linear", "weight", err)) ||
        (b && (st = bcml_require_dtype(b, BCML_FLOAT32, "linear", "bias", err))))
        return st;
    char bx[64], bw[64];
    if (x->ndim < 1 || w->ndim != 2 || x->shape[x->ndim - 1] != w->shape[1])
        return bcml_fail(err, BCML_EVALUE,
                         "linear: input of shape %s does not match weight of shape %s (expected input (..., %lld))",
                         bcml_shape_str(x, bx, sizeof bx), bcml_shape_str(w, bw, sizeof bw),
                         w->ndim == 2 ? (long long)w->shape[1] : -1LL);
    if (b && (b->ndim != 1 || b->shape[0] != w->shape[0]))
        return bcml_fail(err, BCML_EVALUE,
                         "linear: bias must have shape (%lld,) (one value per row of weight), got %s",
                         (long long)w->shape[0], bcml_shape_str(b, bx, sizeof bx));
    int64_t C = w->shape[1], OC = w->shape[0], R = C ? x->numel / C : 0;
    if (C == 0) { R = 1; for (int d = 0; d < x->ndim - 1; d++) R *= x->shape[d]; }
    if ((st = check_blas_dims(R, C, OC, "linear", err))) return st;
    int64_t oshape[BCML_MAX_DIMS];
    for (int d = 0; d < x->ndim - 1; d++) oshape[d] = x->shape[d];
    oshape[x->ndim - 1] = OC;
    if ((st = bcml_tensor_new(&out[0], BCML_FLOAT32, x->ndim, oshape, 0, err))) return st;
    linear_job j = {.out = bcml_f32(out[0]), .x = bcml_f32(x), .w = bcml_f32(w),
                    .b = b ? bcml_f32(b) : NULL, .R = R, .C = C, .OC = OC};
    bcml_parallel(OC > 0 && OC <= NARROW_OC && C > 0 ? narrow_tasks(R, C) : gemm_tasks(R, OC, C), linear_fw_task, &j);
    return BCML_OK;
}

bcml_status bcml_linear_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din,
                                 bcml_err *err) {
    (void)err;
    const bcml_tensor *x = n->in[0], *w = n->in[1];
    int64_t C = w->shape[1], OC = w->shape[0], R = dout->numel / (OC ? OC : 1);
    if (OC == 0) return BCML_OK;
    const float *g = bcml_f32(dout); /* (R, OC) */
    linear_job j = {.x = bcml_f32(x), .w = bcml_f32(w), .g = g, .R = R, .C = C, .OC = OC};
    if (din[0] && R && C) { /* dx (R, C) += g (R, OC) @ W (OC, C) */
        j.dx = bcml_f32(din[0]);
        bcml_parallel(OC <= NARROW_OC ? narrow_tasks(R, C) : gemm_tasks(R, C, OC), linear_dx_task, &j);
    }
    if (din[1] && R && C) { /* dW (OC, C) += g^T (OC, R) @ x (R, C) */
        j.dw = bcml_f32(din[1]);
        bcml_parallel(OC <= NARROW_OC ? narrow_tasks(R, C) : gemm_tasks(C, OC, R), linear_dw_task, &j);
    }
    if (n->n_in > 2 && din[2]) { /* db (OC) += column sums of g */
        float *db = bcml_f32(din[2]);
        for (int64_t r = 0; r < R; r++)
            for (int64_t o = 0; o < OC; o++) db[o] += g[r * OC + o];
    }
    return BCML_OK;
}

/* matmul: a (n, k) @ b (k, m) -> (n, m); 1-D operands are promoted as in torch.matmul and the
 * added dimension removed afterwards; a (B, n, k) @ b (B, k, m) batched (same B). */
bcml_status bcml_matmul_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err) {
    (void)ctx;
    const bcml_tensor *a = n->in[0], *b = n->in[1];
    bcml_status st;
    if ((st = bcml_require_dtype(a, BCML_FLOAT32, "matmul", "input", err)) ||
        (st = bcml_require_dtype(b, BCML_FLOAT32, "matmul", "other", err)))
        return st;
    char ba[64], bb[64];
    int64_t B = 1, N, K, K2, M;
    int64_t oshape[BCML_MAX_DIMS];
    int ond;
    if (a->ndim == 3 && b->ndim == 3 && a->shape[0] == b->shape[0]) {
        B = a->shape[0]; N = a->shape[1]; K = a->shape[2]; K2 = b->shape[1]; M = b->shape[2];
        ond = 3; oshape[0] = B; oshape[1] = N; oshape[2] = M;
    } else if (a->ndim >= 1 && a->ndim <= 2 && b->ndim >= 1 && b->ndim <= 2) {
        N = a->ndim == 2 ? a->shape[0] : 1;
        K = a->shape[a->ndim - 1];
        K2 = b->shape[0];
        M = b->ndim == 2 ? b->shape[1] : 1;
        ond = 0;
        if (a->ndim == 2) oshape[ond++] = N;
        if (b->ndim == 2) oshape[ond++] = M;
    } else {
        return bcml_fail(err, BCML_EVALUE,
                         "matmul: input of shape %s and other of shape %s are not supported (supported: "
                         "1-D or 2-D operands, or two 3-D operands with the same batch size)",
                         bcml_shape_str(a, ba, sizeof ba), bcml_shape_str(b, bb, sizeof bb));
    }
    if (K != K2)
        return bcml_fail(err, BCML_EVALUE,
                         "matmul: input of shape %s and other of shape %s cannot be multiplied (%lld != %lld)",
                         bcml_shape_str(a, ba, sizeof ba), bcml_shape_str(b, bb, sizeof bb),
                         (long long)K, (long long)K2);
    if ((st = check_blas_dims(N, K, M, "matmul", err))) return st;
    if ((st = bcml_tensor_new(&out[0], BCML_FLOAT32, ond, oshape, 1, err))) return st;
    n->args.i[0] = B; n->args.i[1] = N; n->args.i[2] = K; n->args.i[3] = M;
    if (N && M && K)
        for (int64_t i = 0; i < B; i++)
            bcml_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)N, (int)M, (int)K, 1.0f,
                       bcml_f32(a) + i * N * K, (int)K, bcml_f32(b) + i * K * M, (int)M, 0.0f,
                       bcml_f32(out[0]) + i * N * M, (int)M);
    return BCML_OK;
}

bcml_status bcml_matmul_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din,
                                 bcml_err *err) {
    (void)err;
    int64_t B = n->args.i[0], N = n->args.i[1], K = n->args.i[2], M = n->args.i[3];
    const float *g = bcml_f32(dout), *a = bcml_f32(n->in[0]), *b = bcml_f32(n->in[1]);
    if (!N || !M || !K) return BCML_OK;
    for (int64_t i = 0; i < B; i++) {
        if (din[0]) /* da (N, K) += g (N, M) @ b^T (M, K) */
            bcml_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)N, (int)K, (int)M, 1.0f,
                       g + i * N * M, (int)M, b + i * K * M, (int)M, 1.0f,
                       bcml_f32(din[0]) + i * N * K, (int)K);
        if (din[1]) /* db (K, M) += a^T (K, N) @ g (N, M) */
            bcml_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)K, (int)M, (int)N, 1.0f,
                       a + i * N * K, (int)K, g + i * N * M, (int)M, 1.0f,
                       bcml_f32(din[1]) + i * K * M, (int)M);
    }
    return BCML_OK;
}
