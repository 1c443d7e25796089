/* conv2d.c: 2-D convolution (cross-correlation, as PyTorch's conv2d), forward and backward.
 *
 * x (N, C, H, W) or (C, H, W), weight (OC, Cg, KH, KW) with Cg = C / G, bias (OC) or NULL,
 * out (N, OC, OH, OW). Per image n and group g, with K = Cg*KH*KW and P = OH*OW:
 *   out[n, g] (OCg, P) = W_g (OCg, K) @ cols (K, P)          (im2col + cblas_sgemm)
 *   dW_g (OCg, K)     += dout[n, g] (OCg, P) @ cols^T (P, K)
 *   dcols (K, P)       = W_g^T (K, OCg) @ dout[n, g] (OCg, P), added back into dx by col2im.
 * Columns are built for one image at a time, or for a tile of its output pixels when an image's
 * columns exceed COL_BUDGET floats, so the buffer stays small. Small output maps (fewer than
 * BATCH_COLS pixels) put the columns of NB images side by side instead, (K, NB*P), for one GEMM
 * per chunk of images: per-image GEMMs there are (OC x K) @ (K x 4) or matrix-vector products
 * whose time goes to packing the weight, once per image. The output of a chunk comes out as
 * (OC, NB*P) and is copied into each image's (OC, P) block; backward regroups dout the same way.
 * Kernel taps that read only padding for every output pixel (a 3x3 kernel with padding 1 over a
 * 1x1 map: all but the centre) are dropped: the kernel is cut to the used taps (a copy of those
 * weights), its padding shifted; the dropped taps get no weight gradient.
 * Maps of at most SMALL_P pixels gather their columns through a table of where each tap reads
 * (on 8x8 maps the row copies below are faster).
 * Measured on ResNet18 with 32x32 inputs, batch 128, one core, forward + backward of one conv:
 * layer3's 3x3 on 2x2 maps 60 -> 22 ms, layer4's on 1x1 maps 197 -> 5 ms; the whole model's
 * training step 1.17 s -> 0.34 s (PyTorch 0.35 s).
 * A 1x1 kernel with stride 1 and no padding needs no columns (the input is its own column
 * matrix). One input channel (MNIST's first layer: 1 -> 10, 5x5 on 28x28, batch 64) goes the
 * same way: measured on one core, a plain direct kernel took 1.17 ms, one register-blocked over
 * the output channels 0.52 ms, im2col + OpenBLAS's small-matrix GEMM 0.27 ms (our loops get SSE2
 * only, while OpenBLAS picks AVX-512/AVX2 kernels at run time).
 *
 * 3x3 stride-1 padding-1 convolutions (groups 1, dilation 1, every tap used) on maps of at least
 * 2x2 go to winograd.c instead (Winograd F(2x2, 3x3), or a dense matrix on 2x2 maps), forward,
 * dx and dW, unless bcml.backends.winograd.enabled is off; the choice is made here at each call
 * from the shapes and that switch (wino_tile), so replayed plans follow the switch too.
 * Threads: units (chunks of NB images or pixel tiles for forward and dW; chunk of images, group
 * and a chunk of input channels for dx) are counted from the shapes only (NB too). Forward and dx units write disjoint
 * outputs; dW units are grouped into a fixed number of chunks (from the sizes, never the thread
 * count), each summing into its own partial buffer, and the partials are added in chunk order:
 * the result is the same bits with any number of threads. */
#include "ops.h"
#include "blas.h"

#include <math.h>
#include <stdatomic.h>
#include <string.h>

#define COL_BUDGET ((int64_t)1 << 19)     /* floats in one column buffer (2 MiB) */
#define BATCH_COLS 512                    /* columns wanted in one GEMM over several small images */
#define BATCH_BUDGET ((int64_t)1 << 20)   /* floats in a column buffer of several images (4 MiB) */
#define BATCH_MIN_UNITS 4                 /* image chunks kept (when there are enough images) */
#define PARTIAL_BUDGET ((int64_t)1 << 24) /* floats in all dW partial buffers (64 MiB) */
#define MAX_TASKS 16
#define ARG_MAX ((int64_t)1 << 30)        /* bound on stride, padding and dilation */

typedef struct {
    int64_t N, C, H, W;        /* input */
    int64_t OC, KH, KW;        /* kernel taps used: KH x KW from (kh0, kw0) of the weight's FKH x FKW */
    int64_t FKH, FKW, kh0, kw0;
    int64_t OH, OW;            /* output */
    int64_t sh, sw, ph, pw, dh, dw, G;
    int64_t Cg, OCg, KK, K, P; /* KK = KH*KW, K = Cg*KK, P = OH*OW */
    int64_t PT, NT;            /* output pixels per tile, tiles per image */
    int64_t NB, NI;            /* images side by side in one GEMM, chunks of images */
    int pointwise;             /* 1x1, stride 1, no padding: the input is its own column matrix */
} conv_geom;

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }
static int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

/* Tasks wanted for a piece of work of `macs` multiply-adds: from the size only. */
static int64_t want_tasks(double macs) {
    double t = macs / 1e6;
    return t < 1 ? 1 : t > MAX_TASKS ? MAX_TASKS : (int64_t)t;
}

static void valid_range(int64_t off, int64_t stride, int64_t size, int64_t out, int64_t *lo, int64_t *hi);

/* Kernel taps [*t0, *t1) along one axis that read the input for some output position: the
 * others read only padding for every output (a 3x3 kernel over a padded 1x1 map uses only its
 * centre). Every tap when none reads the input. */
static void used_taps(int64_t k, int64_t d, int64_t pad, int64_t stride, int64_t size, int64_t out, int64_t *t0,
                      int64_t *t1) {
    *t0 = -1; *t1 = 0;
    for (int64_t t = 0; t < k; t++) {
        int64_t lo, hi;
        valid_range(t * d - pad, stride, size, out, &lo, &hi);
        if (hi > lo) {
            if (*t0 < 0) *t0 = t;
            *t1 = t + 1;
        }
    }
    if (*t0 < 0) { *t0 = 0; *t1 = k; }
}

/* ---- argument checks and geometry ------------------------------------------------------- */
static bcml_status conv_setup(const bcml_node *n, conv_geom *g, bcml_err *err) {
    const bcml_tensor *x = n->in[0], *w = n->in[1], *b = n->n_in > 2 ? n->in[2] : NULL;
    bcml_status st;
    if ((st = bcml_require_dtype(x, BCML_FLOAT32, "conv2d", "input", err)) ||
        (st = bcml_require_dtype(w, BCML_FLOAT32, "conv2d", "weight", err)) ||
        (b && (st = bcml_require_dtype(b, BCML_FLOAT32, "conv2d", "bias", err))))
        return st;
    char bx[64], bw[64], bb[64];
    const int64_t *a = n->args.i;
    if (a[0] < 1 || a[1] < 1 || a[0] > ARG_MAX || a[1] > ARG_MAX)
        return bcml_fail(err, BCML_EVALUE, "conv2d: stride must be positive (and below 2^30), got (%lld, %lld)",
                         (long long)a[0], (long long)a[1]);
    if (a[2] < 0 || a[3] < 0 || a[2] > ARG_MAX || a[3] > ARG_MAX)
        return bcml_fail(err, BCML_EVALUE, "conv2d: padding must be non-negative (and below 2^30), got (%lld, %lld)",
                         (long long)a[2], (long long)a[3]);
    if (a[4] < 1 || a[5] < 1 || a[4] > ARG_MAX || a[5] > ARG_MAX)
        return bcml_fail(err, BCML_EVALUE, "conv2d: dilation must be positive (and below 2^30), got (%lld, %lld)",
                         (long long)a[4], (long long)a[5]);
    if (a[6] < 1)
        return bcml_fail(err, BCML_EVALUE, "conv2d: groups must be positive, got %lld", (long long)a[6]);
    if (x->ndim != 3 && x->ndim != 4)
        return bcml_fail(err, BCML_EVALUE,
                         "conv2d: expected 3-D (unbatched) or 4-D (batched) input, got input of shape %s",
                         bcml_shape_str(x, bx, sizeof bx));
    if (w->ndim != 4)
        return bcml_fail(err, BCML_EVALUE, "conv2d: weight must be 4-D (out_channels, in_channels/groups, kH, kW), "
                         "got weight of shape %s", bcml_shape_str(w, bw, sizeof bw));
    int off = x->ndim == 4;
    g->N = off ? x->shape[0] : 1;
    g->C = x->shape[off]; g->H = x->shape[off + 1]; g->W = x->shape[off + 2];
    g->OC = w->shape[0]; g->Cg = w->shape[1]; g->KH = w->shape[2]; g->KW = w->shape[3];
    g->sh = a[0]; g->sw = a[1]; g->ph = a[2]; g->pw = a[3]; g->dh = a[4]; g->dw = a[5]; g->G = a[6];
    int64_t want_c; /* Cg * groups, which overflows for a huge groups */
    if (__builtin_mul_overflow(g->Cg, g->G, &want_c))
        return bcml_fail(err, BCML_EVALUE,
                         "conv2d: given groups=%lld and weight of shape %s, expected input of shape %s to have "
                         "more than 2^63 channels, but got %lld channels instead",
                         (long long)g->G, bcml_shape_str(w, bw, sizeof bw), bcml_shape_str(x, bx, sizeof bx),
                         (long long)g->C);
    if (want_c != g->C)
        return bcml_fail(err, BCML_EVALUE,
                         "conv2d: given groups=%lld and weight of shape %s, expected input of shape %s to have "
                         "%lld channels, but got %lld channels instead",
                         (long long)g->G, bcml_shape_str(w, bw, sizeof bw), bcml_shape_str(x, bx, sizeof bx),
                         (long long)want_c, (long long)g->C);
    if (g->OC < 1)
        return bcml_fail(err, BCML_EVALUE, "conv2d: expected weight to be at least 1 at dimension 0, but got weight "
                         "of shape %s", bcml_shape_str(w, bw, sizeof bw));
    if (g->OC % g->G)
        return bcml_fail(err, BCML_EVALUE,
                         "conv2d: given groups=%lld, expected weight to be divisible by %lld at dimension 0, "
                         "but got weight of shape %s", (long long)g->G, (long long)g->G,
                         bcml_shape_str(w, bw, sizeof bw));
    if (g->KH < 1 || g->KW < 1)
        return bcml_fail(err, BCML_EVALUE, "conv2d: weight of shape %s has an empty kernel",
                         bcml_shape_str(w, bw, sizeof bw));
    if (b && (b->ndim != 1 || b->shape[0] != g->OC))
        return bcml_fail(err, BCML_EVALUE,
                         "conv2d: given weight of shape %s, expected bias of shape (%lld,), but got bias of shape %s",
                         bcml_shape_str(w, bw, sizeof bw), (long long)g->OC, bcml_shape_str(b, bb, sizeof bb));
    int64_t ekh = g->dh * (g->KH - 1) + 1, ekw = g->dw * (g->KW - 1) + 1; /* dilated kernel */
    int64_t hp = g->H + 2 * g->ph, wp = g->W + 2 * g->pw;
    if (ekh > hp || ekw > wp)
        return bcml_fail(err, BCML_EVALUE,
                         "conv2d: input of shape %s and weight of shape %s: calculated padded input size per "
                         "channel: (%lld x %lld). Kernel size: (%lld x %lld). Kernel size can't be greater than "
                         "actual input size", bcml_shape_str(x, bx, sizeof bx), bcml_shape_str(w, bw, sizeof bw),
                         (long long)hp, (long long)wp, (long long)ekh, (long long)ekw);
    g->OH = (hp - ekh) / g->sh + 1;
    g->OW = (wp - ekw) / g->sw + 1;
    g->OCg = g->OC / g->G;
    /* Only the taps that read the input: a smaller kernel, its padding shifted to match. */
    g->FKH = g->KH; g->FKW = g->KW;
    int64_t t1;
    used_taps(g->KH, g->dh, g->ph, g->sh, g->H, g->OH, &g->kh0, &t1);
    g->KH = t1 - g->kh0;
    g->ph -= g->kh0 * g->dh;
    used_taps(g->KW, g->dw, g->pw, g->sw, g->W, g->OW, &g->kw0, &t1);
    g->KW = t1 - g->kw0;
    g->pw -= g->kw0 * g->dw;
    g->KK = g->KH * g->KW;
    g->K = g->Cg * g->KK;
    g->P = g->OH * g->OW;
    if (g->K > INT32_MAX || g->P > INT32_MAX || g->OC > INT32_MAX)
        return bcml_fail(err, BCML_EVALUE, "conv2d: a dimension of the product exceeds 2^31-1, which BLAS cannot take");
    g->pointwise = g->KH == 1 && g->KW == 1 && g->sh == 1 && g->sw == 1 && g->ph == 0 && g->pw == 0 &&
                   g->OH == g->H && g->OW == g->W;
    /* Tiles of output pixels: the columns within COL_BUDGET, and smaller tiles when there are
     * fewer images than tasks wanted. */
    const int64_t want = want_tasks((double)g->N * g->OC * g->K * g->P);
    g->PT = g->P;
    if (g->K * g->P > COL_BUDGET) g->PT = max64(16, COL_BUDGET / g->K / 16 * 16);
    if (g->N < want) g->PT = min64(g->PT, max64(64, cdiv(cdiv(g->P, cdiv(want, max64(g->N, 1))), 16) * 16));
    g->PT = max64(1, min64(g->PT, g->P));
    g->NT = cdiv(g->P, g->PT);
    /* Small output maps: the columns of NB images side by side, so one GEMM (and one packing of
     * the weight) serves NB images. NB comes from the shapes only. */
    g->NB = 1;
    if (g->NT == 1 && g->N > 1 && g->P < BATCH_COLS) {
        int64_t nb = min64(g->N, max64(1, BATCH_COLS / g->P));
        nb = min64(nb, max64(1, BATCH_BUDGET / max64(1, g->K * g->P)));
        nb = min64(nb, cdiv(g->N, min64(g->N, min64(want, BATCH_MIN_UNITS))));
        g->NB = max64(1, nb);
    }
    if (g->NB > 1) g->pointwise = 0; /* the columns of several images are copied side by side */
    g->NI = g->N > 0 ? cdiv(g->N, g->NB) : 0;
    return BCML_OK;
}

/* ---- im2col / col2im ------------------------------------------------------------------- */
/* Rows of im2col are often a few floats long (8x8 or 12x12 maps): these loops move 4 floats at
 * a time, and GCC is kept from turning them into memcpy calls, which cost more than such a copy. */
#if defined(__GNUC__) && !defined(__clang__)
#define NO_LIBCALL __attribute__((optimize("no-tree-loop-distribute-patterns")))
#else
#define NO_LIBCALL
#endif

static inline NO_LIBCALL void copy_f32(float *restrict d, const float *restrict s, int64_t n) {
    const int64_t n4 = n & ~(int64_t)3;
    for (int64_t i = 0; i < n4; i += 4) memcpy(d + i, s + i, 4 * sizeof(float));
    for (int64_t i = n4; i < n; i++) d[i] = s[i];
}

static inline NO_LIBCALL void add_f32(float *restrict d, const float *restrict s, int64_t n) {
    const int64_t n4 = n & ~(int64_t)3;
    for (int64_t i = 0; i < n4; i += 4)
        for (int k = 0; k < 4; k++) d[i + k] += s[i + k];
    for (int64_t i = n4; i < n; i++) d[i] += s[i];
}

/* Output positions [lo, hi) of [0, out) whose input position o*stride + off lies in [0, size). */
static void valid_range(int64_t off, int64_t stride, int64_t size, int64_t out, int64_t *lo, int64_t *hi) {
    int64_t l = off >= 0 ? 0 : cdiv(-off, stride);
    int64_t h = size - off > 0 ? cdiv(size - off, stride) : 0;
    *lo = min64(l, out);
    *hi = max64(*lo, min64(h, out));
}

/* Small maps (every pixel of an image, P <= SMALL_P): rows of im2col are a few floats, so a table
 * of where each (tap, pixel) reads in a channel (-1: padding) drives plain gathers instead. */
#define SMALL_P 16
#define SMALL_TABLE 1024 /* entries KK*P */

static int small_map(const conv_geom *g, int64_t p0, int64_t np) {
    return p0 == 0 && np == g->P && g->P <= SMALL_P && g->KK * g->P <= SMALL_TABLE;
}

/* idx (KK, P): the offset in a channel (H, W) that tap kk reads for output pixel p, or -1. */
static void small_table(int32_t *idx, const conv_geom *g) {
    for (int64_t kh = 0; kh < g->KH; kh++)
        for (int64_t kw = 0; kw < g->KW; kw++)
            for (int64_t oh = 0; oh < g->OH; oh++)
                for (int64_t ow = 0; ow < g->OW; ow++) {
                    const int64_t ih = oh * g->sh - g->ph + kh * g->dh, iw = ow * g->sw - g->pw + kw * g->dw;
                    idx[((kh * g->KW + kw) * g->OH + oh) * g->OW + ow] =
                        ih >= 0 && ih < g->H && iw >= 0 && iw < g->W ? (int32_t)(ih * g->W + iw) : -1;
                }
}

/* cols (nc*KK, np) with row stride ldc = the patches of channels x (nc, H, W) for output pixels
 * [p0, p0 + np) (zero where the kernel reads padding). */
static NO_LIBCALL void im2col(float *restrict cols, int64_t ldc, const float *restrict x, int64_t nc,
                              const conv_geom *g, int64_t p0, int64_t np) {
    const int64_t H = g->H, W = g->W, OW = g->OW, sw = g->sw;
    if (small_map(g, p0, np)) {
        int32_t idx[SMALL_TABLE];
        small_table(idx, g);
        const int64_t P = g->P, KK = g->KK, HW = H * W;
        for (int64_t c = 0; c < nc; c++) {
            const float *restrict xc = x + c * HW; /* (H, W) */
            for (int64_t kk = 0; kk < KK; kk++) {
                float *restrict d = cols + (c * KK + kk) * ldc; /* (P) */
                const int32_t *restrict t = idx + kk * P;
                for (int64_t p = 0; p < P; p++) d[p] = t[p] >= 0 ? xc[t[p]] : 0.0f;
            }
        }
        return;
    }
    const int64_t oh0 = p0 / OW, oh1 = (p0 + np - 1) / OW; /* output rows touched */
    const int whole = p0 % OW == 0 && (p0 + np) % OW == 0;  /* whole output rows */
    for (int64_t c = 0; c < nc; c++)
        for (int64_t kh = 0; kh < g->KH; kh++) {
            int64_t ohA, ohB; /* output rows reading inside the input */
            valid_range(kh * g->dh - g->ph, g->sh, H, g->OH, &ohA, &ohB);
            for (int64_t kw = 0; kw < g->KW; kw++) {
                float *restrict dst = cols + ((c * g->KH + kh) * g->KW + kw) * ldc; /* (np) */
                const int64_t off = kw * g->dw - g->pw;
                int64_t lo, hi;
                valid_range(off, sw, W, OW, &lo, &hi);
                if (whole) {
                    const int64_t a = min64(max64(ohA, oh0), oh1 + 1);
                    const int64_t e = max64(a, min64(ohB, oh1 + 1));
                    for (int64_t i = 0; i < (a - oh0) * OW; i++) dst[i] = 0.0f;
                    if (sw == 1 && e > a && lo == 0 && hi == OW) { /* unit stride, inside: row copies */
                        const float *restrict s = x + (c * H + a * g->sh - g->ph + kh * g->dh) * W + off;
                        float *restrict d = dst + (a - oh0) * OW;
                        const int64_t step = g->sh * W;
                        for (int64_t oh = a; oh < e; oh++, d += OW) {
                            copy_f32(d, s, OW);
                            if (oh + 1 < e) s += step;
                        }
                    } else if (sw == 1 && e > a && hi > lo) { /* unit stride: copies of n floats between zeros */
                        const float *restrict s = x + (c * H + a * g->sh - g->ph + kh * g->dh) * W + lo + off;
                        float *restrict d0 = dst + (a - oh0) * OW; /* row a */
                        const int64_t step = g->sh * W, n = hi - lo;
                        for (int64_t i = 0; i < lo; i++) d0[i] = 0.0f;
                        for (int64_t oh = a; oh < e; oh++) {
                            float *restrict d = d0 + (oh - a) * OW + lo;
                            copy_f32(d, s, n);
                            /* this row's right edge and the next row's left edge */
                            const int64_t z = oh + 1 < e ? OW : OW - lo;
                            for (int64_t i = n; i < z; i++) d[i] = 0.0f;
                            if (oh + 1 < e) s += step;
                        }
                    } else if (e > a) { /* strided, or every column in the padding */
                        const float *restrict row = x + (c * H + a * g->sh - g->ph + kh * g->dh) * W; /* row a */
                        float *restrict d = dst + (a - oh0) * OW;
                        const int64_t step = g->sh * W;
                        for (int64_t oh = a; oh < e; oh++, d += OW) {
                            for (int64_t ow = 0; ow < lo; ow++) d[ow] = 0.0f;
                            for (int64_t ow = lo; ow < hi; ow++) d[ow] = row[ow * sw + off];
                            for (int64_t ow = hi; ow < OW; ow++) d[ow] = 0.0f;
                            if (oh + 1 < e) row += step;
                        }
                    }
                    for (int64_t i = (e - oh0) * OW; i < np; i++) dst[i] = 0.0f;
                    continue;
                }
                for (int64_t oh = oh0; oh <= oh1; oh++) {
                    const int64_t a = oh == oh0 ? p0 - oh * OW : 0, e = oh == oh1 ? p0 + np - oh * OW : OW;
                    const int64_t base = oh * OW - p0; /* dst[base + ow] */
                    if (oh < ohA || oh >= ohB) {
                        for (int64_t ow = a; ow < e; ow++) dst[base + ow] = 0.0f;
                        continue;
                    }
                    const float *restrict row = x + (c * H + oh * g->sh - g->ph + kh * g->dh) * W; /* (W) */
                    const int64_t l = min64(max64(lo, a), e), h = max64(l, min64(hi, e));
                    for (int64_t ow = a; ow < l; ow++) dst[base + ow] = 0.0f;
                    if (sw == 1 && h > l)
                        copy_f32(dst + base + l, row + l + off, h - l);
                    else if (sw != 1)
                        for (int64_t ow = l; ow < h; ow++) dst[base + ow] = row[ow * sw + off];
                    for (int64_t ow = h; ow < e; ow++) dst[base + ow] = 0.0f;
                }
            }
        }
}

/* dx (nc, H, W) += the columns dcols (nc*KK, np) (row stride ldc) of output pixels [p0, p0 + np). */
static NO_LIBCALL void col2im_add(float *restrict dx, const float *restrict dcols, int64_t ldc, int64_t nc,
                                  const conv_geom *g, int64_t p0, int64_t np) {
    const int64_t H = g->H, W = g->W, OW = g->OW, sw = g->sw;
    if (small_map(g, p0, np)) {
        int32_t idx[SMALL_TABLE];
        small_table(idx, g);
        const int64_t P = g->P, KK = g->KK, HW = H * W;
        for (int64_t c = 0; c < nc; c++) {
            float *restrict xc = dx + c * HW; /* (H, W) */
            for (int64_t kk = 0; kk < KK; kk++) {
                const float *restrict s = dcols + (c * KK + kk) * ldc; /* (P) */
                const int32_t *restrict t = idx + kk * P;
                for (int64_t p = 0; p < P; p++)
                    if (t[p] >= 0) xc[t[p]] += s[p];
            }
        }
        return;
    }
    const int64_t oh0 = p0 / OW, oh1 = (p0 + np - 1) / OW;
    const int whole = p0 % OW == 0 && (p0 + np) % OW == 0; /* whole output rows */
    for (int64_t c = 0; c < nc; c++)
        for (int64_t kh = 0; kh < g->KH; kh++) {
            int64_t ohA, ohB;
            valid_range(kh * g->dh - g->ph, g->sh, H, g->OH, &ohA, &ohB);
            ohA = max64(ohA, oh0);
            ohB = min64(ohB, oh1 + 1);
            for (int64_t kw = 0; kw < g->KW; kw++) {
                const float *restrict src = dcols + ((c * g->KH + kh) * g->KW + kw) * ldc; /* (np) */
                const int64_t off = kw * g->dw - g->pw;
                int64_t lo, hi;
                valid_range(off, sw, W, OW, &lo, &hi);
                if (whole && sw == 1) { /* rows of n floats added at a fixed stride */
                    if (hi == lo || ohB <= ohA) continue;
                    const float *restrict s = src + (ohA - oh0) * OW + lo;
                    float *restrict r = dx + (c * H + ohA * g->sh - g->ph + kh * g->dh) * W + lo + off;
                    const int64_t step = g->sh * W, n = hi - lo;
                    for (int64_t oh = ohA; oh < ohB; oh++) {
                        add_f32(r, s, n);
                        if (oh + 1 < ohB) { r += step; s += OW; }
                    }
                    continue;
                }
                for (int64_t oh = ohA; oh < ohB; oh++) {
                    const int64_t a = oh == oh0 ? p0 - oh * OW : 0, e = oh == oh1 ? p0 + np - oh * OW : OW;
                    const int64_t base = oh * OW - p0; /* src[base + ow] */
                    float *restrict row = dx + (c * H + oh * g->sh - g->ph + kh * g->dh) * W; /* (W) */
                    const int64_t l = min64(max64(lo, a), e), h = max64(l, min64(hi, e));
                    if (sw == 1 && h > l)
                        add_f32(row + l + off, src + base + l, h - l);
                    else if (sw != 1)
                        for (int64_t ow = l; ow < h; ow++) row[ow * sw + off] += src[base + ow];
                }
            }
        }
}

/* ---- tasks ------------------------------------------------------------------------------ */
typedef struct {
    const conv_geom *g;
    const float *x;    /* (N, C, H, W) */
    const float *w;    /* (OC, Cg, KH, KW) */
    const float *b;    /* (OC) or NULL */
    const float *dout; /* (N, OC, OH, OW) */
    const float *gd;   /* NB > 1: dout by image chunk, chunk c (OC, nim*P) at c*NB*OC*P */
    float *out;        /* (N, OC, OH, OW) */
    float *dx;         /* (N, C, H, W) */
    float *part;       /* (nchunks, OC, K): dW partial sums, or dW itself when nchunks == 1 */
    const float *scale, *shift; /* (OC) each, or NULL: out = (conv + bias) * scale + shift (eval-mode batch norm) */
    int relu;                   /* then max(out, 0) */
    int64_t nunits, CCW; /* units; input channels per dx unit */
    atomic_int failed;
} conv_job;

/* Unit u of forward and dW: images [*im, *im + *nim), output pixels [*p0, *p0 + *np) of each
 * (several images only when NB > 1, and then every pixel). */
static void unit_span(const conv_geom *g, int64_t u, int64_t *im, int64_t *nim, int64_t *p0, int64_t *np) {
    *im = u / g->NT * g->NB;
    *nim = min64(g->NB, g->N - *im);
    *p0 = u % g->NT * g->PT;
    *np = min64(g->PT, g->P - *p0);
}

/* A task's buffer of n floats; none for n == 0. */
static float *task_buf(conv_job *j, int64_t n, int *ok) {
    *ok = 1;
    if (n == 0) return NULL;
    float *buf = bcml_alloc((size_t)n * sizeof(float));
    if (!buf) { atomic_store(&j->failed, 1); *ok = 0; }
    return buf;
}

/* A task's column buffer (rows, NB*PT); none for pointwise convolutions. */
static float *task_colbuf(conv_job *j, int64_t rows, int *ok) {
    *ok = 1;
    if (j->g->pointwise) return NULL;
    return task_buf(j, rows * j->g->NB * j->g->PT, ok);
}

/* The columns of group gi for images [im, im + nim), pixels [p0, p0 + np): (K, nim*np) with row
 * stride *ldc, image b's columns at b*np. */
static const float *unit_cols(const conv_job *j, float *colbuf, int64_t gi, int64_t im, int64_t nim, int64_t p0,
                              int64_t np, int64_t *ldc) {
    const conv_geom *g = j->g;
    const float *xg = j->x + (im * g->C + gi * g->Cg) * g->H * g->W; /* (Cg, H, W) */
    if (g->pointwise) { /* the input itself (nim == 1) */
        *ldc = g->P;
        return xg + p0;
    }
    *ldc = nim * np;
    for (int64_t b = 0; b < nim; b++)
        im2col(colbuf + b * np, nim * np, xg + b * g->C * g->H * g->W, g->Cg, g, p0, np);
    return colbuf;
}

static void fw_task(void *arg, int64_t k, int64_t ntasks) {
    conv_job *j = arg;
    const conv_geom *g = j->g;
    int ok;
    float *colbuf = task_colbuf(j, g->K, &ok);
    if (!ok) return;
    float *tmp = g->NB > 1 ? task_buf(j, g->OCg * g->NB * g->P, &ok) : NULL; /* (OCg, nim*P) */
    if (!ok) { bcml_free(colbuf); return; }
    for (int64_t u = j->nunits * k / ntasks; u < j->nunits * (k + 1) / ntasks; u++) {
        int64_t im, nim, p0, np, ldc;
        unit_span(g, u, &im, &nim, &p0, &np);
        for (int64_t gi = 0; gi < g->G; gi++) {
            const float *wg = j->w + gi * g->OCg * g->K; /* (OCg, K) */
            const float *bg = j->b ? j->b + gi * g->OCg : NULL;
            float *o = j->out + (im * g->OC + gi * g->OCg) * g->P + p0; /* (OCg, np), row stride P */
            if (g->K == 0 || nim == 1) {
                for (int64_t b = 0; b < nim; b++)
                    for (int64_t oc = 0; oc < g->OCg; oc++) { /* the bias, then the product on top */
                        const float bv = bg ? bg[oc] : 0.0f;
                        for (int64_t p = 0; p < np; p++) o[(b * g->OC + oc) * g->P + p] = bv;
                    }
                if (g->K == 0) continue;
                const float *cols = unit_cols(j, colbuf, gi, im, nim, p0, np, &ldc);
                bcml_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)g->OCg, (int)np, (int)g->K, 1.0f, wg,
                           (int)g->K, cols, (int)ldc, 1.0f, o, (int)g->P);
                continue;
            }
            /* several images (np == P): tmp = W_g @ cols, then image b's block (OCg, P) + bias */
            const float *cols = unit_cols(j, colbuf, gi, im, nim, p0, np, &ldc);
            bcml_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)g->OCg, (int)ldc, (int)g->K, 1.0f, wg,
                       (int)g->K, cols, (int)ldc, 0.0f, tmp, (int)ldc);
            for (int64_t b = 0; b < nim; b++)
                for (int64_t oc = 0; oc < g->OCg; oc++) {
                    const float bv = bg ? bg[oc] : 0.0f;
                    const float *restrict t = tmp + oc * ldc + b * g->P;
                    float *restrict d = o + (b * g->OC + oc) * g->P;
                    for (int64_t p = 0; p < g->P; p++) d[p] = bv + t[p];
                }
        }
        if (j->scale) /* the fused batch norm (and ReLU) while the unit's outputs are in cache */
            for (int64_t b = 0; b < nim; b++)
                for (int64_t oc = 0; oc < g->OC; oc++) {
                    float *restrict d = j->out + ((im + b) * g->OC + oc) * g->P + p0;
                    const float sc = j->scale[oc], sh = j->shift[oc];
                    if (j->relu)
                        for (int64_t p = 0; p < np; p++) {
                            const float v = d[p] * sc + sh;
                            d[p] = v < 0.0f ? 0.0f : v;
                        }
                    else
                        for (int64_t p = 0; p < np; p++) d[p] = d[p] * sc + sh;
                }
    }
    bcml_free(tmp);
    bcml_free(colbuf);
}

/* dout of group gi for unit images [im, im + nim), pixels [p0, p0 + np): (OCg, nim*np), row stride *ld. */
static const float *unit_dout(const conv_job *j, int64_t gi, int64_t im, int64_t nim, int64_t p0, int64_t *ld) {
    const conv_geom *g = j->g;
    if (g->NB > 1) {
        *ld = nim * g->P;
        return j->gd + im * g->OC * g->P + gi * g->OCg * nim * g->P;
    }
    *ld = g->P;
    return j->dout + (im * g->OC + gi * g->OCg) * g->P + p0;
}

/* dW chunk k: part_k (OC, K) += over its units and every group. */
static void dw_task(void *arg, int64_t k, int64_t nchunks) {
    conv_job *j = arg;
    const conv_geom *g = j->g;
    int ok;
    float *colbuf = task_colbuf(j, g->K, &ok);
    if (!ok) return;
    float *part = j->part + k * g->OC * g->K; /* (OC, K) */
    for (int64_t u = j->nunits * k / nchunks; u < j->nunits * (k + 1) / nchunks; u++) {
        int64_t im, nim, p0, np, ldc, ldg;
        unit_span(g, u, &im, &nim, &p0, &np);
        for (int64_t gi = 0; gi < g->G; gi++) {
            const float *cols = unit_cols(j, colbuf, gi, im, nim, p0, np, &ldc);
            const float *dg = unit_dout(j, gi, im, nim, p0, &ldg); /* (OCg, nim*np) */
            bcml_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)g->OCg, (int)g->K, (int)(nim * np), 1.0f, dg,
                       (int)ldg, cols, (int)ldc, 1.0f, part + gi * g->OCg * g->K, (int)g->K);
        }
    }
    bcml_free(colbuf);
}

/* dx unit u = (chunk of images, group, chunk of CCW input channels of the group), over every
 * pixel tile. */
static void dx_task(void *arg, int64_t k, int64_t ntasks) {
    conv_job *j = arg;
    const conv_geom *g = j->g;
    const int64_t nchunk = cdiv(g->Cg, j->CCW);
    int ok;
    float *colbuf = task_colbuf(j, j->CCW * g->KK, &ok);
    if (!ok) return;
    for (int64_t u = j->nunits * k / ntasks; u < j->nunits * (k + 1) / ntasks; u++) {
        const int64_t im = u / (g->G * nchunk) * g->NB, gi = u / nchunk % g->G, c0 = u % nchunk * j->CCW;
        const int64_t nim = min64(g->NB, g->N - im);
        const int64_t nc = min64(j->CCW, g->Cg - c0), kc = nc * g->KK;
        const float *wc = j->w + gi * g->OCg * g->K + c0 * g->KK;         /* (OCg, kc), row stride K */
        float *dxc = j->dx + (im * g->C + gi * g->Cg + c0) * g->H * g->W; /* (nc, H, W) of image im */
        for (int64_t p0 = 0; p0 < g->P; p0 += g->PT) {
            const int64_t np = min64(g->PT, g->P - p0);
            int64_t ldg;
            const float *dg = unit_dout(j, gi, im, nim, p0, &ldg); /* (OCg, nim*np) */
            if (g->pointwise) { /* straight into dx */
                bcml_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)kc, (int)np, (int)g->OCg, 1.0f, wc,
                           (int)g->K, dg, (int)ldg, 1.0f, dxc + p0, (int)g->P);
                continue;
            }
            const int64_t ldc = nim * np;
            bcml_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)kc, (int)ldc, (int)g->OCg, 1.0f, wc, (int)g->K,
                       dg, (int)ldg, 0.0f, colbuf, (int)ldc);
            for (int64_t b = 0; b < nim; b++)
                col2im_add(dxc + b * g->C * g->H * g->W, colbuf + b * np, ldc, nc, g, p0, np);
        }
    }
    bcml_free(colbuf);
}

/* Whether the kernel was cut to the taps that read the input. */
static int trimmed(const conv_geom *g) { return g->KH != g->FKH || g->KW != g->FKW; }

/* The used taps of w (OC, Cg, FKH, FKW): ws (OC, Cg, KH, KW); or with add, w[used taps] += ws. */
static void trim_copy(const conv_geom *g, float *w, float *ws, int add) {
    for (int64_t r = 0; r < g->OC * g->Cg; r++)
        for (int64_t kh = 0; kh < g->KH; kh++) {
            float *wr = w + (r * g->FKH + g->kh0 + kh) * g->FKW + g->kw0; /* (KW) */
            float *sr = ws + (r * g->KH + kh) * g->KW;                   /* (KW) */
            for (int64_t kw = 0; kw < g->KW; kw++) {
                if (add) wr[kw] += sr[kw];
                else sr[kw] = wr[kw];
            }
        }
}

/* j->w: the weight, or a copy of its used taps (*ws, freed by the caller). */
static bcml_status job_weight(const conv_geom *g, conv_job *j, const bcml_tensor *w, float **ws, bcml_err *err) {
    *ws = NULL;
    j->w = bcml_f32(w);
    if (!trimmed(g)) return BCML_OK;
    if (!(*ws = bcml_alloc((size_t)(g->OC * g->K) * sizeof(float))))
        return bcml_fail(err, BCML_ENOMEM, "conv2d: out of memory for the weight's used taps");
    trim_copy(g, (float *)bcml_f32(w), *ws, 0);
    j->w = *ws;
    return BCML_OK;
}

/* The Winograd tile (winograd.c) for a 3x3 stride-1 padding-1 convolution with groups 1 and
 * dilation 1 and every tap used, from Cin input to Cout output channels on H x W maps; 0: im2col. */
static int wino_tile(const conv_geom *g, int64_t Cin, int64_t Cout) {
    if (g->G != 1 || g->KH != 3 || g->KW != 3 || trimmed(g) || g->sh != 1 || g->sw != 1 || g->ph != 1 ||
        g->pw != 1 || g->dh != 1 || g->dw != 1)
        return 0;
    return bcml_wino_tile(g->N, Cin, Cout, g->H, g->W);
}

/* Whether the direct small-channel kernels (conv_direct.c) take these shapes (forward, dx and dW
 * alike): stride 1, groups 1, every tap used, a kernel larger than 1x1. */
static int direct_ok(const conv_geom *g) {
    if (g->G != 1 || g->sh != 1 || g->sw != 1 || trimmed(g) || g->KH * g->KW < 2) return 0;
    return bcml_conv_direct_ok(g->C, g->OC, g->KH, g->KW, g->H, g->ph, g->OH, g->OW);
}

/* ---- the op ----------------------------------------------------------------------------- */
/* in: x (N, C, H, W) or (C, H, W), weight (OC, C/G, KH, KW), bias (OC) or NULL;
 * args: i[0..1] stride, i[2..3] padding, i[4..5] dilation, i[6] groups. out (N, OC, OH, OW)
 * or (OC, OH, OW). */
static bcml_status conv_forward(bcml_node *n, const float *scale, const float *shift, int relu, bcml_tensor **out,
                                bcml_err *err) {
    conv_geom g;
    bcml_status st = conv_setup(n, &g, err);
    if (st) return st;
    const bcml_tensor *x = n->in[0], *b = n->n_in > 2 ? n->in[2] : NULL;
    int64_t oshape[4] = {g.N, g.OC, g.OH, g.OW};
    int batched = x->ndim == 4;
    if ((st = bcml_tensor_new(&out[0], BCML_FLOAT32, batched ? 4 : 3, batched ? oshape : oshape + 1, 0, err)))
        return st;
    if (out[0]->numel == 0) return BCML_OK;
    const int m = wino_tile(&g, g.C, g.OC);
    if (m == 1)
        return bcml_dense_conv(bcml_f32(x), bcml_f32(n->in[1]), b ? bcml_f32(b) : NULL, scale, shift, relu,
                               bcml_f32(out[0]), NULL, NULL, NULL, g.N, g.C, g.OC, g.H, g.W, err);
    if (m)
        return bcml_wino_conv(m, bcml_f32(x), bcml_f32(n->in[1]), 0, b ? bcml_f32(b) : NULL, scale, shift, relu,
                              bcml_f32(out[0]), 0, g.N, g.C, g.OC, g.H, g.W, err);
    if (direct_ok(&g))
        return bcml_conv_direct_fw(bcml_f32(x), bcml_f32(n->in[1]), b ? bcml_f32(b) : NULL, scale, shift, relu,
                                   bcml_f32(out[0]), g.N, g.C, g.H, g.W, g.OC, g.KH, g.KW, g.ph, g.pw, g.dh, g.dw,
                                   g.OH, g.OW, err);
    conv_job j = {.g = &g, .x = bcml_f32(x), .b = b ? bcml_f32(b) : NULL, .out = bcml_f32(out[0]), .scale = scale,
                  .shift = shift, .relu = relu};
    atomic_init(&j.failed, 0);
    float *ws;
    if ((st = job_weight(&g, &j, n->in[1], &ws, err))) return st;
    j.nunits = g.NI * g.NT;
    bcml_parallel(min64(j.nunits, want_tasks((double)g.N * g.OC * g.K * g.P)), fw_task, &j);
    bcml_free(ws);
    if (atomic_load(&j.failed))
        return bcml_fail(err, BCML_ENOMEM, "conv2d: out of memory for a column buffer");
    return BCML_OK;
}

bcml_status bcml_conv2d_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err) {
    (void)ctx;
    return conv_forward(n, NULL, NULL, 0, out, err);
}

/* Eval-mode conv + batch norm (+ ReLU) in the convolution's output pass. in: x, weight,
 * running_mean, running_var, bn weight, bn bias (each (OC)); args as conv2d, i[7] relu, f[0] eps.
 * The affine map is computed here from the batch norm's tensors at each call (a replayed plan
 * reads them as they are then): scale = weight / sqrt(var + eps), shift = bias - mean * scale. */
bcml_status bcml_conv2d_bn_relu_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err) {
    (void)ctx;
    static const char *names[4] = {"running_mean", "running_var", "weight", "bias"};
    const bcml_tensor *w = n->in[1];
    const int64_t oc = w->ndim == 4 ? w->shape[0] : -1; /* a bad weight is reported by conv2d's checks */
    bcml_status st;
    for (int k = 0; k < 4; k++) {
        const bcml_tensor *t = n->in[2 + k];
        if ((st = bcml_require_dtype(t, BCML_FLOAT32, "conv2d_bn_relu", names[k], err))) return st;
        if (oc >= 0 && (t->ndim != 1 || t->shape[0] != oc))
            return bcml_fail(err, BCML_EVALUE, "conv2d_bn_relu: %s must have shape (%lld,)", names[k], (long long)oc);
    }
    const int64_t m = oc > 0 ? oc : 1;
    float *ss = bcml_alloc((size_t)(2 * m) * sizeof(float)); /* scale, shift */
    if (!ss) return bcml_fail(err, BCML_ENOMEM, "conv2d_bn_relu: out of memory");
    const float *mean = bcml_f32(n->in[2]), *var = bcml_f32(n->in[3]), *gam = bcml_f32(n->in[4]),
                *bet = bcml_f32(n->in[5]);
    for (int64_t o = 0; o < oc; o++) {
        const double sc = (double)gam[o] / sqrt((double)var[o] + n->args.f[0]);
        ss[o] = (float)sc;
        ss[m + o] = (float)((double)bet[o] - (double)mean[o] * sc);
    }
    bcml_node c; /* the convolution's own inputs: x, weight */
    memset(&c, 0, sizeof c);
    c.op = BCML_OP_CONV2D;
    c.args = n->args;
    c.in[0] = n->in[0];
    c.in[1] = n->in[1];
    c.n_in = 2;
    st = conv_forward(&c, ss, ss + m, n->args.i[7] != 0, out, err);
    bcml_free(ss);
    return st;
}

/* db[o] += the sum of dout[:, o] for the channels o of task k (each channel summed alike in any task). */
typedef struct {
    const conv_geom *g;
    const float *dout;
    float *db;
} bias_job;

static void bias_task(void *arg, int64_t k, int64_t ntasks) {
    const bias_job *bj = arg;
    const conv_geom *g = bj->g;
    for (int64_t o = g->OC * k / ntasks; o < g->OC * (k + 1) / ntasks; o++) {
        double tot = 0.0;
        for (int64_t im = 0; im < g->N; im++) {
            const float *r = bj->dout + (im * g->OC + o) * g->P;
            float acc[8] = {0};
            int64_t p = 0;
            for (; p + 8 <= g->P; p += 8)
                for (int l = 0; l < 8; l++) acc[l] += r[p + l];
            float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
            for (; p < g->P; p++) s += r[p];
            tot += s;
        }
        bj->db[o] += (float)tot;
    }
}

bcml_status bcml_conv2d_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err) {
    conv_geom g;
    bcml_status st = conv_setup(n, &g, err);
    if (st) return st;
    if (dout->numel == 0) return BCML_OK;
    const float *gout = bcml_f32(dout); /* (N, OC, P) */
    conv_job j = {.g = &g, .x = bcml_f32(n->in[0]), .dout = gout};
    atomic_init(&j.failed, 0);
    float *ws = NULL;
    if (din[0] && g.OCg && g.Cg && (st = job_weight(&g, &j, n->in[1], &ws, err))) return st;
    const int64_t want = want_tasks((double)g.N * g.OC * g.K * g.P);
    if (n->n_in > 2 && din[2]) { /* dbias (OC) += sums of dout over N, OH, OW, channels split over tasks */
        bias_job bj = {.g = &g, .dout = gout, .db = bcml_f32(din[2])};
        bcml_parallel(g.N * g.OC * g.P >= 65536 ? min64(g.OC, 4) : 1, bias_task, &bj);
    }
    const int m = din[0] && g.OCg && g.Cg ? wino_tile(&g, g.OC, g.C) : 0; /* dx by Winograd */
    const int mw = din[1] && g.K ? wino_tile(&g, g.C, g.OC) : 0;           /* dW by Winograd */
    const int ddx = din[0] && g.OCg && g.Cg && !m && direct_ok(&g);     /* dx by the direct kernels */
    const int ddw = din[1] && g.K && !mw && direct_ok(&g);              /* dW by the direct kernels */
    float *gd = NULL;
    if (g.NB > 1 && ((din[1] && g.K && !mw && !ddw) || (din[0] && g.OCg && g.Cg && !m && !ddx))) {
        /* dout regrouped by image chunk: chunk c's images side by side, (OC, nim*P) */
        if (!(gd = bcml_alloc((size_t)(g.N * g.OC * g.P) * sizeof(float)))) {
            bcml_free(ws);
            return bcml_fail(err, BCML_ENOMEM, "conv2d backward: out of memory for the output gradient");
        }
        for (int64_t im0 = 0; im0 < g.N; im0 += g.NB) {
            const int64_t nim = min64(g.NB, g.N - im0);
            float *dst = gd + im0 * g.OC * g.P; /* (OC, nim*P) */
            for (int64_t b = 0; b < nim; b++)
                for (int64_t o = 0; o < g.OC; o++)
                    copy_f32(dst + o * nim * g.P + b * g.P, gout + ((im0 + b) * g.OC + o) * g.P, g.P);
        }
        j.gd = gd;
    }
    if (m == 1 || mw == 1) { /* 2x2 maps: dense matrix */
        st = bcml_dense_conv(j.x, bcml_f32(n->in[1]), NULL, NULL, NULL, 0, NULL, gout, m ? bcml_f32(din[0]) : NULL,
                             mw ? bcml_f32(din[1]) : NULL, g.N, g.C, g.OC, g.H, g.W, err);
        bcml_free(gd);
        bcml_free(ws);
        if (st) return st;
        return atomic_load(&j.failed) ? bcml_fail(err, BCML_ENOMEM, "conv2d backward: out of memory") : BCML_OK;
    }
    if (ddw) {
        if ((st = bcml_conv_direct_dw(j.x, gout, bcml_f32(din[1]), g.N, g.C, g.H, g.W, g.OC, g.KH, g.KW, g.ph, g.pw,
                                      g.dh, g.dw, g.OH, g.OW, err))) {
            bcml_free(gd);
            bcml_free(ws);
            return st;
        }
    } else if (mw) {
        if ((st = bcml_wino_dw(j.x, gout, bcml_f32(din[1]), g.N, g.C, g.OC, g.H, g.W, err))) {
            bcml_free(gd);
            bcml_free(ws);
            return st;
        }
    } else if (din[1] && g.K) { /* dW (OC, K): chunks of units into partial sums, added in chunk order */
        float *dw = bcml_f32(din[1]);
        j.nunits = g.NI * g.NT;
        int64_t nchunks = min64(j.nunits, min64(want, max64(1, PARTIAL_BUDGET / (g.OC * g.K))));
        /* the partials, then (when the kernel was cut to its used taps) their sum (OC, K) */
        const int tr = trimmed(&g);
        const int64_t m = g.OC * g.K, nbuf = (nchunks > 1 ? nchunks : 0) + tr;
        float *part = NULL, *dwt = dw; /* dwt (OC, K): the sum */
        if (nbuf) {
            size_t nb = (size_t)(nbuf * m) * sizeof(float);
            if (!(part = bcml_alloc(nb))) {
                bcml_free(gd);
                bcml_free(ws);
                return bcml_fail(err, BCML_ENOMEM, "conv2d backward: out of memory for weight gradients");
            }
            memset(part, 0, nb);
            if (tr) dwt = part + (nbuf - 1) * m;
        }
        j.part = nchunks > 1 ? part : dwt;
        bcml_parallel(nchunks, dw_task, &j);
        if (nchunks > 1)
            for (int64_t c = 0; c < nchunks; c++) {
                const float *restrict pc = part + c * m;
                for (int64_t i = 0; i < m; i++) dwt[i] += pc[i];
            }
        if (tr) trim_copy(&g, dw, dwt, 1); /* the other taps read only padding: no gradient */
        bcml_free(part);
    }
    if (ddx) {
        st = bcml_conv_direct_dx(gout, bcml_f32(n->in[1]), bcml_f32(din[0]), g.N, g.C, g.H, g.W, g.OC, g.KH, g.KW,
                                 g.ph, g.pw, g.dh, g.dw, g.OH, g.OW, err);
        if (st) {
            bcml_free(gd);
            bcml_free(ws);
            return st;
        }
    } else if (m) { /* dx += the convolution of dout with the weight rotated and transposed */
        st = bcml_wino_conv(m, gout, bcml_f32(n->in[1]), 1, NULL, NULL, NULL, 0, bcml_f32(din[0]), 1, g.N, g.OC, g.C,
                            g.H, g.W, err);
        if (st) {
            bcml_free(gd);
            bcml_free(ws);
            return st;
        }
    } else if (din[0] && g.OCg && g.Cg) { /* dx (N, C, H, W): disjoint units */
        j.dx = bcml_f32(din[0]);
        const int64_t per = g.NI * g.G;
        const int64_t nchunk = per < want ? min64(g.Cg, cdiv(want, per)) : 1;
        j.CCW = cdiv(g.Cg, nchunk);
        j.nunits = per * cdiv(g.Cg, j.CCW);
        bcml_parallel(min64(j.nunits, want), dx_task, &j);
    }
    bcml_free(gd);
    bcml_free(ws);
    if (atomic_load(&j.failed))
        return bcml_fail(err, BCML_ENOMEM, "conv2d backward: out of memory for a column buffer");
    return BCML_OK;
}
