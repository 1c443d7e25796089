/* conv_direct.c: direct convolution for small channel counts (the MNIST ConvNet's 1 -> 10 and
 * 10 -> 20 5x5 layers), stride 1, groups 1, on CPUs with AVX-512; conv2d.c chooses it from the
 * shapes alone (bcml_conv_direct_ok) and falls back to im2col + GEMM elsewhere.
 *
 * Why: with a few output channels the im2col GEMM is (OC x K) @ (K x P) with OC = 10 or 20, a poor
 * fit for OpenBLAS's kernels, and building and packing the columns took as long as the product
 * (conv 10 -> 20 on 12x12 maps, batch 64, one core: im2col 21%, col2im 12%, packing 16% of the
 * time). Here no column matrix is built. Per image, a copy of the (zero-padded) input shifted once
 * per kernel column kx, xs[c][kx] (Hp, OW) with xs[c][kx][r][ox] = xpad[c][r][ox + kx*dw], makes
 * the column of kernel tap k = (c, ky, kx) for the output pixels p = oy*OW + ox a contiguous run:
 *     cols[k][p] = xs[c][kx][flat p + ky*dh*OW]        (koff[k] = ((c*KW + kx)*Hp + ky*dh)*OW)
 * KW copies of the input instead of KH*KW, read with plain vector loads. Then:
 *   forward  out[oc][p] = b[oc] + sum_k w[oc][k] * cols[k][p]: tiles of OCB output channels x V
 *            vectors of 16 pixels in registers, per tap V loads, OCB broadcasts, OCB*V FMAs;
 *   dx       the adjoint: dcols[k][p] = sum over oc of w[oc][k] * dout[oc][p] in tiles of KB taps
 *            x V vectors, added into a zeroed buffer in xs's layout (taps in order), which is then
 *            folded back into dx (the adjoint of the shifted copy): only the products the
 *            forward made, where a padded "full" convolution of dout would compute 2x more;
 *   dW       dw[oc][k] += sum over images and pixels of dout[oc][p] * cols[k][p]: tiles of 4
 *            output channels x 6 taps of 16-lane partial sums in registers over the images of a
 *            sub-chunk (its copies and output gradients within 512 KiB, in the core's cache),
 *            reduced at the end of each.
 * Threads and bits: forward and dx units are images (each writes only its own outputs). dW runs
 * in image groups (4 from 16 images, 2 from 8), each task building its group's copies and summing
 * into the group's own partial dW (with fewer than 4 groups the tiles are split too), and the
 * partials are added in group order; groups, tiles and sub-chunks come from the shapes (never the
 * thread count): the same bits with any number of threads. Measured on one core (conv 1 -> 10 on
 * 28x28 and 10 -> 20 on 12x12, batch 64, forward + backward): 0.80 -> 0.60 ms and 2.67 -> 1.65 ms
 * against im2col + GEMM; the first layer's dW, over the whole batch at once, streamed 2.3 MB per
 * tile from L3 and did not scale to a second core before the groups. */
#include "ops.h"

#include <stdatomic.h>
#include <string.h>

#define HAVE_DIRECT BCML_AVX512_BUILD
#define AVX512 BCML_AVX512

#define MAX_OC 64                  /* output channels (forward) / input channels (dx) */
#define MAX_K 1024                 /* taps C*KH*KW */
#define MAX_KW 32                  /* kernel columns */
#define MIN_P 48                   /* output pixels per image (at least 3 vectors) */
#define XS_BUDGET ((int64_t)1 << 20) /* floats in one image's shifted copy */
#define DW_SUB_BUDGET ((int64_t)1 << 17) /* floats of copies + output gradients in a dW sub-chunk (512 KiB) */
#define DW_MIN_GROUP 4               /* images per dW group, at least */
#define MAX_TASKS 16

/* 1 on (the default, where the CPU has AVX-512), 0 off (tests and benchmarks) */
static atomic_int enabled = 1;

void bcml_set_conv_direct(int on) { atomic_store(&enabled, on ? 1 : 0); }
int bcml_get_conv_direct(void) { return atomic_load(&enabled); }

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }
static int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

int bcml_conv_direct_ok(int64_t C, int64_t OC, int64_t KH, int64_t KW, int64_t H, int64_t ph, int64_t OH,
                        int64_t OW) {
#if HAVE_DIRECT
    if (!atomic_load(&enabled) || !bcml_have_avx512()) return 0;
    const int64_t Hp = H + 2 * ph;
    if (OC < 1 || C < 1 || OC > MAX_OC || C * KH * KW > MAX_K || KW > MAX_KW || OH * OW < MIN_P) return 0;
    if (C * KW * Hp * OW > XS_BUDGET) return 0;
    return 1;
#else
    (void)C; (void)OC; (void)KH; (void)KW; (void)H; (void)ph; (void)OH; (void)OW;
    return 0;
#endif
}

#if HAVE_DIRECT
/* One direct convolution: out (N, OC, OH, OW) [+]= conv(x (N, C, H, W)) with the transposed
 * weights wt (K, OC), wt[k*OC + oc], stride 1. */
typedef struct direct_job {
    const float *x, *wt, *bias, *scale, *shift;
    float *out;
    const int64_t *koff;            /* (K) */
    int64_t N, C, H, W, OC, KH, KW, ph, pw, dh, dw, Hp, OH, OW, P, K;
    int relu, acc;
    const float *dout;              /* dW */
    float *part;                    /* dW: (ngroups, OC, K) partial sums */
    int64_t ntiles, nkb, ngroups, ntchunks, sub;
    void (*image)(const struct direct_job *j, int64_t n, float *buf); /* forward / dx: one image */
    atomic_int failed;
} direct_job;

static inline __attribute__((always_inline)) AVX512 __mmask16 lane_mask(int64_t rem) {
    return rem >= 16 ? (__mmask16)0xFFFF : rem > 0 ? (__mmask16)((1u << rem) - 1u) : (__mmask16)0;
}

/* xs (C, KW, Hp, OW): image x (C, H, W) zero-padded by (ph, pw), shifted by kx*dw per kernel column
 * (rows of a few floats: masked vector loads and stores, no library calls). */
AVX512 static void build_xs(const direct_job *j, const float *restrict x, float *restrict xs) {
    const int64_t H = j->H, W = j->W, OW = j->OW, Hp = j->Hp;
    for (int64_t c = 0; c < j->C; c++)
        for (int64_t kx = 0; kx < j->KW; kx++) {
            float *restrict d = xs + (c * j->KW + kx) * Hp * OW;
            const int64_t off = kx * j->dw - j->pw;              /* input column of ox = 0 */
            const int64_t lo = min64(OW, max64(0, -off)), hi = max64(lo, min64(OW, W - off));
            if (OW <= 32) { /* one or two vectors a row: the masks once per kernel column */
                const __mmask16 st0 = lane_mask(OW), st1 = lane_mask(OW - 16);
                const __mmask16 ld0 = (__mmask16)(lane_mask(hi) & ~lane_mask(lo));
                const __mmask16 ld1 = (__mmask16)(lane_mask(hi - 16) & ~lane_mask(lo - 16));
                for (int64_t r = 0; r < Hp; r++, d += OW) {
                    const int64_t iy = r - j->ph;
                    __m512 v0 = _mm512_setzero_ps(), v1 = _mm512_setzero_ps();
                    if (iy >= 0 && iy < H) { /* lanes o in [lo, hi) read x[iy][o + off] */
                        const float *s = x + (c * H + iy) * W + off;
                        v0 = _mm512_maskz_loadu_ps(ld0, s);
                        if (OW > 16) v1 = _mm512_maskz_loadu_ps(ld1, s + 16);
                    }
                    _mm512_mask_storeu_ps(d, st0, v0);
                    if (OW > 16) _mm512_mask_storeu_ps(d + 16, st1, v1);
                }
                continue;
            }
            for (int64_t r = 0; r < Hp; r++, d += OW) {
                const int64_t iy = r - j->ph;
                const int inside = iy >= 0 && iy < H;
                const float *s = x + (inside ? (c * H + iy) * W : 0);
                for (int64_t o0 = 0; o0 < OW; o0 += 16) {
                    const __mmask16 st = lane_mask(OW - o0);
                    __m512 v = _mm512_setzero_ps();
                    const int64_t a = max64(lo, o0), e = min64(hi, o0 + 16);
                    if (inside && e > a) /* lanes [a - o0, e - o0) read x[iy][o + off] */
                        v = _mm512_maskz_loadu_ps((__mmask16)(lane_mask(e - o0) & ~lane_mask(a - o0)),
                                                  s + (o0 + off));
                    _mm512_mask_storeu_ps(d + o0, st, v);
                }
            }
        }
}


/* Output channels [oc0, oc0 + OCB) x pixels [p0, p0 + np) (np <= 16*V) of one image. */
static inline __attribute__((always_inline)) AVX512 void fw_tile(const direct_job *j, const float *restrict xs,
                                                                 float *restrict out, int64_t oc0, int64_t p0,
                                                                 int64_t np, const int OCB, const int V) {
    __m512 acc[8][4];
    __mmask16 m[4];
    const int64_t P = j->P, OC = j->OC;
    _Pragma("GCC unroll 4") for (int v = 0; v < V; v++) m[v] = lane_mask(np - 16 * v);
    _Pragma("GCC unroll 8") for (int o = 0; o < OCB; o++) {
        float *orow = out + (oc0 + o) * P + p0;
        _Pragma("GCC unroll 4") for (int v = 0; v < V; v++)
            acc[o][v] = j->acc ? _mm512_maskz_loadu_ps(m[v], orow + 16 * v)
                               : _mm512_set1_ps(j->bias ? j->bias[oc0 + o] : 0.0f);
    }
    const float *restrict wt = j->wt + oc0;
    const int64_t *restrict koff = j->koff;
    for (int64_t k = 0; k < j->K; k++) {
        const float *b = xs + koff[k] + p0;
        __m512 bv[4];
        _Pragma("GCC unroll 4") for (int v = 0; v < V; v++) bv[v] = _mm512_maskz_loadu_ps(m[v], b + 16 * v);
        const float *wk = wt + k * OC;
        _Pragma("GCC unroll 8") for (int o = 0; o < OCB; o++) {
            const __m512 wv = _mm512_set1_ps(wk[o]);
            _Pragma("GCC unroll 4") for (int v = 0; v < V; v++) acc[o][v] = _mm512_fmadd_ps(wv, bv[v], acc[o][v]);
        }
    }
    _Pragma("GCC unroll 8") for (int o = 0; o < OCB; o++) {
        float *orow = out + (oc0 + o) * P + p0;
        _Pragma("GCC unroll 4") for (int v = 0; v < V; v++) {
            __m512 r = acc[o][v];
            if (j->scale) {
                r = _mm512_fmadd_ps(r, _mm512_set1_ps(j->scale[oc0 + o]), _mm512_set1_ps(j->shift[oc0 + o]));
                if (j->relu) r = _mm512_max_ps(r, _mm512_setzero_ps());
            }
            _mm512_mask_storeu_ps(orow + 16 * v, m[v], r);
        }
    }
}

#define FW_CASE(ocb, v) case (ocb) * 8 + (v): fw_tile(j, xs, out, oc0, p0, np, ocb, v); break;
#define FW_CASES(v) FW_CASE(1, v) FW_CASE(2, v) FW_CASE(3, v) FW_CASE(4, v) FW_CASE(5, v) FW_CASE(6, v)

AVX512 static void fw_tile_any(const direct_job *j, const float *xs, float *out, int64_t oc0, int ocb, int64_t p0,
                               int64_t np, int v) {
    switch (ocb * 8 + v) {
        FW_CASES(1) FW_CASES(2) FW_CASES(3) FW_CASES(4)
        FW_CASE(7, 1) FW_CASE(8, 1) FW_CASE(7, 2) FW_CASE(8, 2) FW_CASE(7, 3) FW_CASE(8, 3)
        default: break;
    }
}

/* Vectors per tile (3 or 4, whichever leaves fewer idle vectors; fewer on small maps) and the
 * largest channel block for them (accumulators OCB*V <= 24). */
static void fw_blocking(const direct_job *j, int *V, int *ocb_max) {
    const int64_t nv = cdiv(j->P, 16);
    if (nv <= 4) *V = (int)nv;
    else *V = cdiv(nv, 3) * 3 - nv < cdiv(nv, 4) * 4 - nv ? 3 : 4;
    *ocb_max = *V == 4 ? 6 : 8;
}

AVX512 static void fw_image(const direct_job *j, int64_t n, float *xs) {
    build_xs(j, j->x + n * j->C * j->H * j->W, xs);
    float *out = j->out + n * j->OC * j->P;
    int V, ocb_max;
    fw_blocking(j, &V, &ocb_max);
    const int64_t nblk = cdiv(j->OC, ocb_max), P = j->P;
    for (int64_t ob = 0; ob < nblk; ob++) { /* blocks as even as possible */
        const int64_t oc0 = j->OC * ob / nblk, oc1 = j->OC * (ob + 1) / nblk;
        for (int64_t p0 = 0; p0 < P; p0 += 16 * V) {
            const int64_t np = min64(16 * V, P - p0);
            fw_tile_any(j, xs, out, oc0, (int)(oc1 - oc0), p0, np, (int)cdiv(np, 16));
        }
    }
}

/* Forward and dx task k: its share of the images, each through j->image with one scratch buffer
 * in xs's layout. */
static void image_task(void *arg, int64_t k, int64_t ntasks) {
    direct_job *j = arg;
    const int64_t n0 = j->N * k / ntasks, n1 = j->N * (k + 1) / ntasks;
    if (n1 <= n0) return;
    float *buf = bcml_alloc((size_t)(j->C * j->KW * j->Hp * j->OW) * sizeof(float));
    if (!buf) { atomic_store(&j->failed, 1); return; }
    for (int64_t n = n0; n < n1; n++) j->image(j, n, buf);
    bcml_free(buf);
}

/* koff (K): where tap k = (c, ky, kx) reads in xs. */
static void fill_koff(int64_t *koff, int64_t C, int64_t KH, int64_t KW, int64_t Hp, int64_t OW, int64_t dh) {
    for (int64_t c = 0; c < C; c++)
        for (int64_t ky = 0; ky < KH; ky++)
            for (int64_t kx = 0; kx < KW; kx++)
                koff[(c * KH + ky) * KW + kx] = ((c * KW + kx) * Hp + ky * dh) * OW;
}

/* Sets the derived sizes (Hp, P, K) of a job and allocates and fills its koff (freed by the caller). */
static bcml_status job_geometry(direct_job *j, bcml_err *err) {
    j->Hp = j->H + 2 * j->ph;
    j->P = j->OH * j->OW;
    j->K = j->C * j->KH * j->KW;
    int64_t *koff = bcml_alloc((size_t)j->K * sizeof(int64_t));
    if (!koff) return bcml_fail(err, BCML_ENOMEM, "conv2d: out of memory");
    fill_koff(koff, j->C, j->KH, j->KW, j->Hp, j->OW, j->dh);
    j->koff = koff;
    atomic_init(&j->failed, 0);
    return BCML_OK;
}

/* Runs image (fw_image or dx_image) over every image, the images split over tasks. */
static bcml_status run_images(direct_job *j, void (*image)(const direct_job *, int64_t, float *), const char *op,
                              bcml_err *err) {
    bcml_status st = job_geometry(j, err);
    if (st) return st;
    j->image = image;
    bcml_parallel(min64(j->N, MAX_TASKS), image_task, j);
    bcml_free((void *)j->koff);
    if (atomic_load(&j->failed)) return bcml_fail(err, BCML_ENOMEM, "%s: out of memory for a shifted copy", op);
    return BCML_OK;
}
#endif

bcml_status bcml_conv_direct_fw(const float *x, const float *w, const float *bias, const float *scale,
                                const float *shift, int relu, float *out, int64_t N, int64_t C, int64_t H, int64_t W,
                                int64_t OC, int64_t KH, int64_t KW, int64_t ph, int64_t pw, int64_t dh, int64_t dw,
                                int64_t OH, int64_t OW, bcml_err *err) {
#if HAVE_DIRECT
    const int64_t K = C * KH * KW;
    float *wt = bcml_alloc((size_t)(K * OC) * sizeof(float));
    if (!wt) return bcml_fail(err, BCML_ENOMEM, "conv2d: out of memory");
    for (int64_t oc = 0; oc < OC; oc++)
        for (int64_t k = 0; k < K; k++) wt[k * OC + oc] = w[oc * K + k];
    direct_job j = {.x = x, .wt = wt, .bias = bias, .scale = scale, .shift = shift, .out = out, .N = N, .C = C,
                    .H = H, .W = W, .OC = OC, .KH = KH, .KW = KW, .ph = ph, .pw = pw, .dh = dh, .dw = dw, .OH = OH,
                    .OW = OW, .relu = relu, .acc = 0};
    bcml_status st = run_images(&j, fw_image, "conv2d", err);
    bcml_free(wt);
    return st;
#else
    (void)x; (void)w; (void)bias; (void)scale; (void)shift; (void)relu; (void)out; (void)N; (void)C; (void)H;
    (void)W; (void)OC; (void)KH; (void)KW; (void)ph; (void)pw; (void)dh; (void)dw; (void)OH; (void)OW;
    return bcml_fail(err, BCML_EVALUE, "conv2d: the direct kernels are not built for this CPU");
#endif
}

#if HAVE_DIRECT
/* dxs[koff[k] + p] += dcols[k][p] = sum over oc of w[oc][k] * dout[oc][p], taps [k0, k0 + KB),
 * pixels [p0, p0 + np) (np <= 16*V) of one image: the adjoint of the forward's reads of xs. */
static inline __attribute__((always_inline)) AVX512 void dx_tile(const direct_job *j, const float *restrict dy,
                                                                 float *dxs, int64_t k0, int64_t p0, int64_t np,
                                                                 const int KB, const int V) {
    __m512 acc[8][4];
    __mmask16 m[4];
    const int64_t P = j->P, K = j->K;
    _Pragma("GCC unroll 4") for (int v = 0; v < V; v++) m[v] = lane_mask(np - 16 * v);
    _Pragma("GCC unroll 8") for (int q = 0; q < KB; q++)
        _Pragma("GCC unroll 4") for (int v = 0; v < V; v++) acc[q][v] = _mm512_setzero_ps();
    const float *restrict w = j->wt + k0; /* the weight itself, (OC, K) */
    for (int64_t oc = 0; oc < j->OC; oc++) {
        const float *d = dy + oc * P + p0;
        __m512 dv[4];
        _Pragma("GCC unroll 4") for (int v = 0; v < V; v++) dv[v] = _mm512_maskz_loadu_ps(m[v], d + 16 * v);
        const float *wk = w + oc * K;
        _Pragma("GCC unroll 8") for (int q = 0; q < KB; q++) {
            const __m512 wv = _mm512_set1_ps(wk[q]);
            _Pragma("GCC unroll 4") for (int v = 0; v < V; v++) acc[q][v] = _mm512_fmadd_ps(wv, dv[v], acc[q][v]);
        }
    }
    /* in tap order: taps of the same (c, kx) add into overlapping runs of xs */
    _Pragma("GCC unroll 8") for (int q = 0; q < KB; q++) {
        float *t = dxs + j->koff[k0 + q] + p0;
        _Pragma("GCC unroll 4") for (int v = 0; v < V; v++)
            _mm512_mask_storeu_ps(t + 16 * v, m[v], _mm512_add_ps(_mm512_maskz_loadu_ps(m[v], t + 16 * v), acc[q][v]));
    }
}

#define DX_CASE(kb, v) case (kb) * 8 + (v): dx_tile(j, dy, dxs, k0, p0, np, kb, v); break;
#define DX_CASES(v) DX_CASE(1, v) DX_CASE(2, v) DX_CASE(3, v) DX_CASE(4, v) DX_CASE(5, v) DX_CASE(6, v)

AVX512 static void dx_tile_any(const direct_job *j, const float *dy, float *dxs, int64_t k0, int kb, int64_t p0,
                               int64_t np, int v) {
    switch (kb * 8 + v) {
        DX_CASES(1) DX_CASES(2) DX_CASES(3) DX_CASES(4)
        DX_CASE(7, 1) DX_CASE(8, 1) DX_CASE(7, 2) DX_CASE(8, 2) DX_CASE(7, 3) DX_CASE(8, 3)
        default: break;
    }
}

/* dx[c][iy][ix] += dxs[c][kx][iy + ph][ix - kx*dw + pw] where that lies in the image, kx in order:
 * the adjoint of build_xs. Each 16 columns of a dx row gather their KW terms in a register and
 * are written once (a pass per kx re-read each row right after its masked store, which stalls). */
AVX512 static void fold_dxs(const direct_job *j, const float *restrict dxs, float *restrict dx) {
    const int64_t H = j->H, W = j->W, OW = j->OW, Hp = j->Hp, KW = j->KW;
    int64_t lo[MAX_KW], hi[MAX_KW], off[MAX_KW]; /* kx's columns: dx columns [lo, hi) read d[ix - off] */
    for (int64_t kx = 0; kx < KW; kx++) {
        off[kx] = kx * j->dw - j->pw;
        lo[kx] = min64(W, max64(0, off[kx]));
        hi[kx] = max64(lo[kx], min64(W, OW + off[kx]));
    }
    for (int64_t c = 0; c < j->C; c++)
        for (int64_t iy = 0; iy < H; iy++) {
            float *x = dx + (c * H + iy) * W;
            const float *d = dxs + c * KW * Hp * OW + (iy + j->ph) * OW; /* kx = 0's row */
            for (int64_t i0 = 0; i0 < W; i0 += 16) {
                const __mmask16 mx = lane_mask(W - i0);
                __m512 acc = _mm512_maskz_loadu_ps(mx, x + i0);
                for (int64_t kx = 0; kx < KW; kx++) {
                    const __mmask16 mk = (__mmask16)(lane_mask(hi[kx] - i0) & ~lane_mask(lo[kx] - i0));
                    if (mk) acc = _mm512_mask_add_ps(acc, mk, acc, _mm512_maskz_loadu_ps(mk, d + kx * Hp * OW + i0 - off[kx]));
                }
                _mm512_mask_storeu_ps(x + i0, mx, acc);
            }
        }
}

AVX512 static void dx_image(const direct_job *j, int64_t n, float *dxs) {
    const int64_t P = j->P;
    memset(dxs, 0, (size_t)(j->C * j->KW * j->Hp * j->OW) * sizeof(float));
    const float *dy = j->dout + n * j->OC * P;
    int V, kb_max;
    fw_blocking(j, &V, &kb_max);
    for (int64_t k0 = 0; k0 < j->K; k0 += kb_max) {
        const int kb = (int)min64(kb_max, j->K - k0);
        for (int64_t p0 = 0; p0 < P; p0 += 16 * V) {
            const int64_t np = min64(16 * V, P - p0);
            dx_tile_any(j, dy, dxs, k0, kb, p0, np, (int)cdiv(np, 16));
        }
    }
    fold_dxs(j, dxs, j->out + n * j->C * j->H * j->W);
}

#endif

bcml_status bcml_conv_direct_dx(const float *dout, const float *w, float *dx, int64_t N, int64_t C, int64_t H,
                                int64_t W, int64_t OC, int64_t KH, int64_t KW, int64_t ph, int64_t pw, int64_t dh,
                                int64_t dw, int64_t OH, int64_t OW, bcml_err *err) {
#if HAVE_DIRECT
    /* dx (N, C, H, W) += the adjoint of the forward: per image, the column gradients w^T @ dout
     * added into a shifted copy's layout, then folded back into dx */
    direct_job j = {.dout = dout, .wt = w, .out = dx, .N = N, .C = C, .H = H, .W = W, .OC = OC, .KH = KH, .KW = KW,
                    .ph = ph, .pw = pw, .dh = dh, .dw = dw, .OH = OH, .OW = OW};
    return run_images(&j, dx_image, "conv2d backward", err);
#else
    (void)dout; (void)w; (void)dx; (void)N; (void)C; (void)H; (void)W; (void)OC; (void)KH; (void)KW; (void)ph;
    (void)pw; (void)dh; (void)dw; (void)OH; (void)OW;
    return bcml_fail(err, BCML_EVALUE, "conv2d: the direct kernels are not built for this CPU");
#endif
}

#if HAVE_DIRECT
#define DW_OCB 4
#define DW_KB 6

/* out[oc][k] += over images [im0, im0 + nim) (their shifted copies at xs) and pixels, oc in
 * [oc0, oc0 + OCB), k in [k0, k0 + KB). */
static inline __attribute__((always_inline)) AVX512 void dw_tile(const direct_job *j, const float *xsb, int64_t im0,
                                                                 int64_t nim, float *out, int64_t oc0, int64_t k0,
                                                                 const int OCB, const int KB) {
    __m512 acc[DW_OCB][DW_KB];
    _Pragma("GCC unroll 8") for (int o = 0; o < OCB; o++)
        _Pragma("GCC unroll 8") for (int q = 0; q < KB; q++) acc[o][q] = _mm512_setzero_ps();
    const int64_t P = j->P, xsn = j->C * j->KW * j->Hp * j->OW;
    int64_t ko[DW_KB];
    _Pragma("GCC unroll 8") for (int q = 0; q < KB; q++) ko[q] = j->koff[k0 + q];
    for (int64_t b = 0; b < nim; b++) {
        const float *restrict xs = xsb + b * xsn;
        const float *restrict dy = j->dout + ((im0 + b) * j->OC + oc0) * P;
        for (int64_t p0 = 0; p0 < P; p0 += 16) {
            const __mmask16 m = lane_mask(P - p0);
            __m512 dv[DW_OCB];
            _Pragma("GCC unroll 8") for (int o = 0; o < OCB; o++) dv[o] = _mm512_maskz_loadu_ps(m, dy + o * P + p0);
            _Pragma("GCC unroll 8") for (int q = 0; q < KB; q++) {
                const __m512 bv = _mm512_maskz_loadu_ps(m, xs + ko[q] + p0);
                _Pragma("GCC unroll 8") for (int o = 0; o < OCB; o++) acc[o][q] = _mm512_fmadd_ps(dv[o], bv, acc[o][q]);
            }
        }
    }
    _Pragma("GCC unroll 8") for (int o = 0; o < OCB; o++)
        _Pragma("GCC unroll 8") for (int q = 0; q < KB; q++) out[(oc0 + o) * j->K + k0 + q] += _mm512_reduce_add_ps(acc[o][q]);
}

#define DW_CASE(ocb, kb) case (ocb) * 8 + (kb): dw_tile(j, xs, im0, nim, out, oc0, k0, ocb, kb); break;
#define DW_CASES(ocb) DW_CASE(ocb, 1) DW_CASE(ocb, 2) DW_CASE(ocb, 3) DW_CASE(ocb, 4) DW_CASE(ocb, 5) DW_CASE(ocb, 6)

AVX512 static void dw_tile_any(const direct_job *j, const float *xs, int64_t im0, int64_t nim, float *out,
                               int64_t oc0, int ocb, int64_t k0, int kb) {
    switch (ocb * 8 + kb) {
        DW_CASES(1) DW_CASES(2) DW_CASES(3) DW_CASES(4)
        default: break;
    }
}

/* dW task k: image group g = k % ngroups (its own partial sums, part + g*OC*K) and the chunk
 * k / ngroups of tiles. The group's images are taken DW_SUB at a time: their shifted copies are
 * built by the task (in its own cache) and every tile of the chunk runs over them. */
static void dw_task(void *arg, int64_t k, int64_t ntasks) {
    (void)ntasks;
    direct_job *j = arg;
    const int64_t g = k % j->ngroups, tc = k / j->ngroups, ntc = j->ntchunks;
    const int64_t n0 = j->N * g / j->ngroups, n1 = j->N * (g + 1) / j->ngroups;
    const int64_t t0 = j->ntiles * tc / ntc, t1 = j->ntiles * (tc + 1) / ntc;
    if (n1 <= n0 || t1 <= t0) return;
    const int64_t xsn = j->C * j->KW * j->Hp * j->OW;
    float *xs = bcml_alloc((size_t)(min64(j->sub, n1 - n0) * xsn) * sizeof(float));
    if (!xs) { atomic_store(&j->failed, 1); return; }
    float *out = j->part + g * j->OC * j->K;
    for (int64_t im0 = n0; im0 < n1; im0 += j->sub) {
        const int64_t nim = min64(j->sub, n1 - im0);
        for (int64_t b = 0; b < nim; b++) build_xs(j, j->x + (im0 + b) * j->C * j->H * j->W, xs + b * xsn);
        for (int64_t t = t0; t < t1; t++) {
            const int64_t ob = t / j->nkb, kb = t % j->nkb;
            const int64_t oc0 = ob * DW_OCB, k0 = kb * DW_KB;
            dw_tile_any(j, xs, im0, nim, out, oc0, (int)min64(DW_OCB, j->OC - oc0), k0, (int)min64(DW_KB, j->K - k0));
        }
    }
    bcml_free(xs);
}
#endif

bcml_status bcml_conv_direct_dw(const float *x, const float *dout, float *dw, int64_t N, int64_t C, int64_t H,
                                int64_t W, int64_t OC, int64_t KH, int64_t KW, int64_t ph, int64_t pw, int64_t dh,
                                int64_t dwl, int64_t OH, int64_t OW, bcml_err *err) {
#if HAVE_DIRECT
    direct_job j = {.x = x, .dout = dout, .N = N, .C = C, .H = H, .W = W, .OC = OC, .KH = KH, .KW = KW,
                    .ph = ph, .pw = pw, .dh = dh, .dw = dwl, .OH = OH, .OW = OW};
    bcml_status st = job_geometry(&j, err);
    if (st) return st;
    /* From the shapes only (never the thread count): image groups, each summed into its own
     * partial dW (a core's own copies and output gradients, in its cache), added in group order;
     * with fewer than 4 groups the tiles are split too; images of a group in sub-chunks whose
     * copies and output gradients fit a core's cache */
    const int64_t xsn = C * KW * j.Hp * OW;
    j.ngroups = N >= 4 * DW_MIN_GROUP ? 4 : N >= 2 * DW_MIN_GROUP ? 2 : 1;
    j.nkb = cdiv(j.K, DW_KB);
    j.ntiles = cdiv(OC, DW_OCB) * j.nkb;
    j.ntchunks = min64(j.ntiles, 4 / j.ngroups);
    j.sub = max64(1, DW_SUB_BUDGET / (xsn + OC * j.P));
    const int64_t m = OC * j.K;
    float *part = bcml_alloc((size_t)(j.ngroups * m) * sizeof(float));
    if (!part) {
        bcml_free((void *)j.koff);
        return bcml_fail(err, BCML_ENOMEM, "conv2d backward: out of memory for weight gradients");
    }
    memset(part, 0, (size_t)(j.ngroups * m) * sizeof(float));
    j.part = part;
    bcml_parallel(j.ngroups * j.ntchunks, dw_task, &j);
    if (!atomic_load(&j.failed))
        for (int64_t i = 0; i < m; i++) {
            float s = part[i];
            for (int64_t g = 1; g < j.ngroups; g++) s += part[g * m + i];
            dw[i] += s;
        }
    bcml_free(part);
    bcml_free((void *)j.koff);
    if (atomic_load(&j.failed))
        return bcml_fail(err, BCML_ENOMEM, "conv2d backward: out of memory for shifted copies");
    return BCML_OK;
#else
    (void)x; (void)dout; (void)dw; (void)N; (void)C; (void)H; (void)W; (void)OC; (void)KH; (void)KW; (void)ph;
    (void)pw; (void)dh; (void)dwl; (void)OH; (void)OW;
    return bcml_fail(err, BCML_EVALUE, "conv2d: the direct kernels are not built for this CPU");
#endif
}
