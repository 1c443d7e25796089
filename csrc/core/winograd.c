/* winograd.c: fast algorithms for 3x3, stride-1, padding-1 convolutions (groups 1, dilation 1,
 * every tap used), chosen by conv2d.c through bcml_wino_tile from the shapes and the switch:
 * Winograd F(2x2, 3x3) on maps of at least 3x3, a dense matrix on 2x2 maps (end of the file),
 * im2col + GEMM (conv2d.c) elsewhere. Forward, input gradient (a 3x3 stride-1 padding-1
 * convolution of dout with the weights rotated by 180 degrees and transposed) and weight
 * gradient all take the same algorithm.
 *
 * Winograd: with a = m + 2, an input tile d (a x a) of a channel, its transform V = B^T d B, the
 * weight's U = G g G^T, and the output tile y (m x m) = A^T [sum over channels U (.) V] A. Per
 * unit (a chunk of images, or a band of tile rows of one image) with T tiles:
 *   V[p] (Cin, T)  for each of the a*a transform points p (input transform),
 *   M[p] (Cout, T) = U[p] (Cout, Cin) @ V[p] (Cin, T)   (a*a cblas_sgemm calls),
 *   then the output transform, the bias (and, for conv-bn-relu in eval mode, scale, shift and
 *   ReLU) and the crop of the padded tiles, in one pass over each output plane.
 * Weight gradient: dU[p] (Cout, Cin) = sum over units of dM[p] (Cout, T) @ V[p]^T, with dM =
 * A dY A^T of each output-gradient tile, then dW = G^T dU G (see bcml_wino_dw).
 * Transforms: points 0, 1, -1 for F(2x2) (Lavin's matrices, written out); 0, 1, -1, 1/2, -2 for
 * F(4x4) (the most accurate set of 0, +-1, +-2, +-1/2, +-1/4, +-3/2, +-2/3 in a float32
 * simulation on ResNet18's shapes; generic loops). Weight transforms are computed in double.
 *
 * The rule, from accuracy first: the normalised error (max abs error / max abs value against
 * float64) divided by PyTorch's float32 error on the same inputs, on ResNet18's 3x3 shapes
 * (64 ch 8x8, 128 ch 4x4, 256 ch 2x2, and 64 ch 56x56, 128 ch 28x28), measured here: F(2x2)
 * 1.0-1.6 (forward and dx) on maps of 4x4 and more; F(2x2) on 2x2 maps 3.4-4.2 in a float32
 * model of these loops (too close to the bound of 4); F(4x4) 7.5-12.5 (the sum over the
 * channels, in float32, of larger transformed values dominates: with that sum in double a
 * model still gives 3-4). So F(4x4) is not chosen (it stays reachable through the test mode 4)
 * and 2x2 maps take the dense matrix, whose sums are the direct convolution's.
 * Then speed, measured on one core of this machine (AMD EPYC, AVX-512 OpenBLAS), batch 128,
 * CPU time of one convolution, ms, forward / forward + backward, im2col -> this file:
 *   64 ch 8x8 (F(2x2)):     8.1 / 25.4 -> 4.3 / 15.2   (PyTorch 5.0-5.4 / 15-25)
 *   128 ch 4x4 (F(2x2)):    7.0 / 22.3 -> 4.8 / 15.0   (PyTorch 3.9 / 14)
 *   256 ch 2x2 (dense):     6.6 / 21.5 -> 4.0 / 13.5   (PyTorch 4.5 / 16.5)
 *   64 ch 56x56, batch 16:  43 / 137 -> 22 / 76        (PyTorch 35 / 139-155)
 * so every eligible shape of at least 2x2 takes one of them.
 * Threads: the units are counted from the shapes only, each unit writes disjoint outputs and
 * its GEMMs are the same calls whatever the thread count; the weight gradient's partial sums
 * come in a fixed number of chunks (DW_CHUNKS, not the thread count) added in chunk order: the
 * same bits with any number of threads. */
#include "ops.h"
#include "blas.h"

#include <stdatomic.h>
#include <string.h>

/* bcml.backends.winograd.enabled: 0 off, 1 on (the rule below); 4 (tests and benchmarks only,
 * through bcml._core.set_winograd(4)): F(4x4) wherever the rule takes F(2x2) */
static atomic_int enabled = 1;

void bcml_set_winograd(int mode) { atomic_store(&enabled, mode == 4 ? 4 : mode ? 1 : 0); }
int bcml_get_winograd(void) { return atomic_load(&enabled); }

#define TARGET_COLS 128              /* tiles wanted in one unit's GEMMs */
#define UNIT_BUDGET ((int64_t)1 << 20) /* floats in a unit's V or M buffer (4 MiB) */
#define MAX_TASKS 16
#define DW_CHUNKS 4                  /* weight-gradient partial sums (a constant: not the thread count) */
#define DW_BUDGET ((int64_t)1 << 23) /* floats in all of them (32 MiB) */
#define SKEW 16 /* floats between transform points in V and M: their a*a streams, a power-of-two apart,
                 * would share cache sets (measured: 40% of the time in the transforms' loads) */
#define AMAX 6

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }
static int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

/* F(2x2, 3x3) */
static const float BT2[4 * 4] = {1, 0, -1, 0, 0, 1, 1, 0, 0, -1, 1, 0, 0, 1, 0, -1};
static const float AT2[2 * 4] = {1, 1, 1, 0, 0, 1, -1, -1};
static const double G2[4 * 3] = {1, 0, 0, 0.5, 0.5, 0.5, 0.5, -0.5, 0.5, 0, 0, 1};
/* F(4x4, 3x3), points 0, 1, -1, 1/2, -2 (and infinity) */
static const float BT4[6 * 6] = {1, -1.5f, -2, 1.5f, 1, 0,  0, -1, 0.5f, 2.5f, 1, 0,  0, 1, -2.5f, 0.5f, 1, 0,
                                 0, -2, -1, 2, 1, 0,        0, 0.5f, -1, -0.5f, 1, 0, 0, 1, -1.5f, -2, 1.5f, 1};
static const float AT4[4 * 6] = {1, 1, 1, 1, 1, 0,     0, 1, -1, 0.5f, -2, 0,
                                 0, 1, 1, 0.25f, 4, 0, 0, 1, -1, 0.125f, -8, 1};
static const double G4[6 * 3] = {1, 0, 0, 1.0 / 3, 1.0 / 3, 1.0 / 3, -1.0 / 3, 1.0 / 3, -1.0 / 3,
                                 -16.0 / 15, -8.0 / 15, -4.0 / 15, 1.0 / 15, -2.0 / 15, 4.0 / 15, 0, 0, 1};

int bcml_wino_tile(int64_t N, int64_t Cin, int64_t Cout, int64_t H, int64_t W) {
    (void)N; (void)Cin; (void)Cout;
    const int mode = atomic_load(&enabled);
    if (!mode || Cin < 1 || Cout < 1) return 0;
    if (H == 2 && W == 2) return 1;
    return H >= 3 && W >= 3 ? (mode == 4 ? 4 : 2) : 0;
}

typedef struct {
    int m, a;
    int64_t N, Cin, Cout, H, W;
    int64_t th, tw;          /* tiles per column and row of a map */
    int64_t ni, nb, bt;      /* images per unit; tile-row bands per image (ni == 1), tile rows per band */
    int64_t Tu;              /* tiles of a full unit */
    int64_t nunits;
    const float *x, *U, *bias, *scale, *shift;
    float *out;
    const float *dout;       /* weight gradient: (N, Cout, H, W) */
    float *part;             /* weight gradient: (nchunks, 16, Cout, Cin) partial sums of dU */
    int relu, acc;
    atomic_int failed;
} wino_job;

/* Input transform of one channel plane x (H, W) for tile rows [ty0, ty0 + nty): V point p at
 * v + p*vs, tile (ty - ty0)*tw + tx. pad ((th*m + 2) x (tw*m + 2)) and tmp (a*a*tw) are scratch. */
static inline __attribute__((always_inline)) void in_tf(const wino_job *j, const float *restrict BT, int a,
                                                        int m, const float *restrict x, int64_t ty0,
                                                        int64_t nty, float *restrict v, int64_t vs,
                                                        float *restrict pad, float *restrict tmp) {
    const int64_t H = j->H, W = j->W, tw = j->tw, pw = tw * m + 2;
    /* rows [ty0*m, (ty0+nty)*m + 2) of the padded plane */
    const int64_t r0 = ty0 * m, nr = nty * m + 2;
    for (int64_t r = 0; r < nr; r++) {
        float *restrict d = pad + r * pw;
        const int64_t ih = r0 + r - 1;
        if (ih < 0 || ih >= H) {
            for (int64_t q = 0; q < pw; q++) d[q] = 0.0f;
            continue;
        }
        d[0] = 0.0f;
        memcpy(d + 1, x + ih * W, (size_t)W * sizeof(float));
        for (int64_t q = W + 1; q < pw; q++) d[q] = 0.0f;
    }
    for (int64_t ty = 0; ty < nty; ty++) {
        /* rows: tmp[i][q][tx] = sum_k BT[q][k] d[i][tx*m + k] */
        for (int i = 0; i < a; i++) {
            const float *restrict d = pad + (ty * m + i) * pw;
            for (int q = 0; q < a; q++) {
                float *restrict t = tmp + (i * a + q) * tw;
                for (int64_t tx = 0; tx < tw; tx++) {
                    float s = 0.0f;
                    for (int k = 0; k < a; k++)
                        if (BT[q * a + k] != 0.0f) s += BT[q * a + k] * d[tx * m + k];
                    t[tx] = s;
                }
            }
        }
        /* columns: V[(q1, q2)][tx] = sum_i BT[q1][i] tmp[i][q2][tx] */
        float *restrict vt = v + ty * tw;
        for (int q1 = 0; q1 < a; q1++)
            for (int q2 = 0; q2 < a; q2++) {
                float *restrict o = vt + (q1 * a + q2) * vs;
                for (int64_t tx = 0; tx < tw; tx++) {
                    float s = 0.0f;
                    for (int i = 0; i < a; i++)
                        if (BT[q1 * a + i] != 0.0f) s += BT[q1 * a + i] * tmp[(i * a + q2) * tw + tx];
                    o[tx] = s;
                }
            }
    }
}

/* Output rows [h0, h1) of a plane from opad (rows of ow from h0): (y + b)*s + sh (ReLU), or += y. */
static void crop(const wino_job *j, const float *restrict opad, int64_t ow, int64_t h0, int64_t h1,
                 float *restrict out, float b, float s, float sh) {
    const int64_t W = j->W;
    for (int64_t h = h0; h < h1; h++) {
        const float *restrict src = opad + (h - h0) * ow;
        float *restrict d = out + h * W;
        if (j->acc)
            for (int64_t w = 0; w < W; w++) d[w] += src[w];
        else if (j->relu)
            for (int64_t w = 0; w < W; w++) {
                const float v = (src[w] + b) * s + sh;
                d[w] = v < 0.0f ? 0.0f : v;
            }
        else
            for (int64_t w = 0; w < W; w++) d[w] = (src[w] + b) * s + sh;
    }
}

/* Output transform of one output plane for tile rows [ty0, ty0 + nty): M point p at mm + p*ms,
 * tile (ty - ty0)*tw + tx; then out (H, W) rows [ty0*m, ...) = (y + b)*s + sh (ReLU), or += y. */
static inline __attribute__((always_inline)) void out_tf(const wino_job *j, const float *restrict AT, int a,
                                                         int m, const float *restrict mm, int64_t ms,
                                                         int64_t ty0, int64_t nty, float *restrict out,
                                                         float b, float s, float sh, float *restrict opad,
                                                         float *restrict tmp) {
    const int64_t tw = j->tw, ow = tw * m;
    for (int64_t ty = 0; ty < nty; ty++) {
        /* columns: tmp[p1][jj][tx] = sum_q2 AT[jj][q2] M[(p1, q2)][tx] */
        const float *restrict mt = mm + ty * tw;
        for (int p1 = 0; p1 < a; p1++)
            for (int jj = 0; jj < m; jj++) {
                float *restrict t = tmp + (p1 * m + jj) * tw;
                for (int64_t tx = 0; tx < tw; tx++) {
                    float v = 0.0f;
                    for (int q2 = 0; q2 < a; q2++)
                        if (AT[jj * a + q2] != 0.0f) v += AT[jj * a + q2] * mt[(p1 * a + q2) * ms + tx];
                    t[tx] = v;
                }
            }
        /* rows: y[ii][jj][tx] = sum_p1 AT[ii][p1] tmp[p1][jj][tx], into opad (m rows of ow) */
        for (int ii = 0; ii < m; ii++) {
            float *restrict o = opad + (ty * m + ii) * ow;
            for (int jj = 0; jj < m; jj++)
                for (int64_t tx = 0; tx < tw; tx++) {
                    float v = 0.0f;
                    for (int p1 = 0; p1 < a; p1++)
                        if (AT[ii * a + p1] != 0.0f) v += AT[ii * a + p1] * tmp[(p1 * m + jj) * tw + tx];
                    o[tx * m + jj] = v;
                }
        }
    }
    crop(j, opad, ow, ty0 * m, min64(j->H, (ty0 + nty) * m), out, b, s, sh);
}

/* F(2x2, 3x3): the same transforms written out (points 0, 1, -1): per tile row, B^T along the
 * columns over the map's 4 input rows (contiguous; a zero row outside the map), then along the
 * rows per tile. */
static void in_tf2(const wino_job *j, const float *restrict x, int64_t ty0, int64_t nty, float *restrict v,
                   int64_t vs, float *restrict zero, float *restrict tmp) {
    const int64_t H = j->H, W = j->W, tw = j->tw, pw = tw * 2 + 2;
    /* c_q (pw): B^T along the columns of the 4 input rows of a tile row, the padding columns 0 */
    float *restrict c0 = tmp, *restrict c1 = tmp + pw, *restrict c2 = tmp + 2 * pw, *restrict c3 = tmp + 3 * pw;
    for (int64_t q = 0; q < 4 * pw; q++) tmp[q] = 0.0f;
    for (int64_t q = 0; q < W; q++) zero[q] = 0.0f;
    for (int64_t ty = 0; ty < nty; ty++) {
        const float *rows[4];
        for (int i = 0; i < 4; i++) { /* input rows (ty0 + ty)*2 - 1 + i, zero outside the map */
            const int64_t ih = (ty0 + ty) * 2 - 1 + i;
            rows[i] = ih >= 0 && ih < H ? x + ih * W : zero;
        }
        const float *restrict d0 = rows[0], *restrict d1 = rows[1], *restrict d2 = rows[2], *restrict d3 = rows[3];
        for (int64_t q = 0; q < W; q++) {
            c0[q + 1] = d0[q] - d2[q];
            c1[q + 1] = d1[q] + d2[q];
            c2[q + 1] = d2[q] - d1[q];
            c3[q + 1] = d1[q] - d3[q];
        }
        float *restrict vt = v + ty * tw;
        const float *cr[4] = {c0, c1, c2, c3};
        for (int q1 = 0; q1 < 4; q1++) {
            const float *restrict c = cr[q1];
            float *restrict o0 = vt + (q1 * 4) * vs, *restrict o1 = o0 + vs, *restrict o2 = o1 + vs,
                          *restrict o3 = o2 + vs;
            for (int64_t tx = 0; tx < tw; tx++) {
                const float e0 = c[2 * tx], e1 = c[2 * tx + 1], e2 = c[2 * tx + 2], e3 = c[2 * tx + 3];
                o0[tx] = e0 - e2;
                o1[tx] = e1 + e2;
                o2[tx] = e2 - e1;
                o3[tx] = e1 - e3;
            }
        }
    }
}

static void out_tf2(const wino_job *j, const float *restrict mm, int64_t ms, int64_t ty0, int64_t nty,
                    float *restrict out, float b, float s, float sh, float *restrict opad) {
    const int64_t tw = j->tw, ow = tw * 2;
    for (int64_t ty = 0; ty < nty; ty++) {
        const float *restrict mt = mm + ty * tw;
        float *restrict y0 = opad + ty * 2 * ow, *restrict y1 = y0 + ow;
        for (int64_t tx = 0; tx < tw; tx++) {
            float t0[4], t1[4];
            for (int p1 = 0; p1 < 4; p1++) {
                const float *restrict r = mt + p1 * 4 * ms + tx;
                const float a0 = r[0], a1 = r[ms], a2 = r[2 * ms], a3 = r[3 * ms];
                t0[p1] = a0 + a1 + a2;
                t1[p1] = a1 - a2 - a3;
            }
            y0[2 * tx] = t0[0] + t0[1] + t0[2];
            y0[2 * tx + 1] = t1[0] + t1[1] + t1[2];
            y1[2 * tx] = t0[1] - t0[2] - t0[3];
            y1[2 * tx + 1] = t1[1] - t1[2] - t1[3];
        }
    }
    crop(j, opad, ow, ty0 * 2, min64(j->H, (ty0 + nty) * 2), out, b, s, sh);
}

static void unit_span(const wino_job *j, int64_t u, int64_t *im, int64_t *nim, int64_t *ty0, int64_t *nty) {
    *im = u / j->nb * j->ni;
    *nim = min64(j->ni, j->N - *im);
    *ty0 = u % j->nb * j->bt;
    *nty = min64(j->bt, j->th - *ty0);
}

static inline __attribute__((always_inline)) void run_units(wino_job *j, int64_t k, int64_t ntasks,
                                                            const float *BT, const float *AT, int a, int m) {
    const int64_t aa = a * a, Tu = j->Tu, tw = j->tw;
    const int64_t npad = (j->bt * m + 2) * (tw * m + 2), ntmp = aa * tw;
    const int64_t nv = aa * (j->Cin * Tu + SKEW), nm = aa * (j->Cout * Tu + SKEW);
    float *buf = bcml_alloc((size_t)(nv + nm + npad + ntmp) * sizeof(float));
    if (!buf) { atomic_store(&j->failed, 1); return; }
    float *V = buf, *M = V + nv, *pad = M + nm, *tmp = pad + npad;
    const int64_t HW = j->H * j->W;
    for (int64_t u = j->nunits * k / ntasks; u < j->nunits * (k + 1) / ntasks; u++) {
        int64_t im, nim, ty0, nty;
        unit_span(j, u, &im, &nim, &ty0, &nty);
        const int64_t tpi = nty * tw, T = nim * tpi; /* tiles per image, in the unit */
        const int64_t vs = j->Cin * T + SKEW, ms = j->Cout * T + SKEW; /* point strides of V and M */
        for (int64_t b = 0; b < nim; b++)
            for (int64_t c = 0; c < j->Cin; c++)
                if (m == 2)
                    in_tf2(j, j->x + ((im + b) * j->Cin + c) * HW, ty0, nty, V + c * T + b * tpi, vs, pad, tmp);
                else
                    in_tf(j, BT, a, m, j->x + ((im + b) * j->Cin + c) * HW, ty0, nty, V + c * T + b * tpi, vs,
                      pad, tmp);
        for (int64_t p = 0; p < aa; p++)
            bcml_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)j->Cout, (int)T, (int)j->Cin, 1.0f,
                       j->U + p * (j->Cout * j->Cin + SKEW), (int)j->Cin, V + p * vs, (int)T, 0.0f,
                       M + p * ms, (int)T);
        for (int64_t b = 0; b < nim; b++)
            for (int64_t o = 0; o < j->Cout; o++)
                if (m == 2)
                    out_tf2(j, M + o * T + b * tpi, ms, ty0, nty, j->out + ((im + b) * j->Cout + o) * HW,
                            j->bias ? j->bias[o] : 0.0f, j->scale ? j->scale[o] : 1.0f,
                            j->shift ? j->shift[o] : 0.0f, pad);
                else
                    out_tf(j, AT, a, m, M + o * T + b * tpi, ms, ty0, nty,
                       j->out + ((im + b) * j->Cout + o) * HW, j->bias ? j->bias[o] : 0.0f,
                       j->scale ? j->scale[o] : 1.0f, j->shift ? j->shift[o] : 0.0f, pad, tmp);
    }
    bcml_free(buf);
}

static void task2(void *arg, int64_t k, int64_t n) { run_units(arg, k, n, BT2, AT2, 4, 2); }
static void task4(void *arg, int64_t k, int64_t n) { run_units(arg, k, n, BT4, AT4, 6, 4); }

/* fn(ctx, lo, hi) over [0, n) in RANGE_TASKS pieces or fewer (from n only): for the
 * elementwise passes (weight transforms, the weight gradient's final transform), whose every
 * element is computed the same way whatever the split. */
#define RANGE_TASKS 8
typedef struct {
    void (*fn)(void *ctx, int64_t lo, int64_t hi);
    void *ctx;
    int64_t n;
} range_job;

static void range_task(void *arg, int64_t k, int64_t ntasks) {
    range_job *r = arg;
    r->fn(r->ctx, r->n * k / ntasks, r->n * (k + 1) / ntasks);
}

static void parallel_range(int64_t n, void (*fn)(void *, int64_t, int64_t), void *ctx) {
    range_job r = {fn, ctx, n};
    bcml_parallel(min64(n, RANGE_TASKS), range_task, &r);
}

/* Units of j (m, N, Cin, Cout, H, W set): images per unit for TARGET_COLS tiles with V and M
 * within UNIT_BUDGET; an image too large for that is cut into bands of tile rows. */
static void plan_units(wino_job *j) {
    const int m = j->m, a = j->a;
    j->th = cdiv(j->H, m);
    j->tw = cdiv(j->W, m);
    const int64_t aa = a * a, tpi = j->th * j->tw, cmax = max64(1, max64(j->Cin, j->Cout));
    int64_t cols = min64(TARGET_COLS, max64(1, UNIT_BUDGET / (aa * cmax)));
    if (tpi <= cols) {
        j->ni = min64(j->N, max64(1, cols / tpi));
        j->nb = 1;
        j->bt = j->th;
    } else {
        j->ni = 1;
        j->bt = max64(1, cols / j->tw);
        j->nb = cdiv(j->th, j->bt);
    }
    j->Tu = j->ni * j->bt * j->tw;
    j->nunits = cdiv(j->N, j->ni) * j->nb;
}

/* ---- weight gradient, F(2x2, 3x3) --------------------------------------------------------
 * dU[p] (Cout, Cin) = sum over tiles of dM[p] (Cout, T) @ V[p]^T (T, Cin), with dM = A dY A^T the
 * transform of each output-gradient tile dY (2x2, zero past the map's edge) and V the input
 * transform of the forward; then dW = G^T dU G. */

/* dM of one output-gradient plane dy (H, W), tile rows [ty0, ty0 + nty): point p at d + p*ds. */
static void dout_tf2(const wino_job *j, const float *restrict dy, int64_t ty0, int64_t nty, float *restrict d,
                     int64_t ds, float *restrict pad) {
    const int64_t H = j->H, W = j->W, tw = j->tw, pw = tw * 2;
    for (int64_t r = 0; r < nty * 2; r++) { /* rows [ty0*2, ...) padded with zeros to pw x 2*nty */
        float *restrict q = pad + r * pw;
        const int64_t ih = ty0 * 2 + r;
        if (ih >= H) {
            for (int64_t c = 0; c < pw; c++) q[c] = 0.0f;
            continue;
        }
        memcpy(q, dy + ih * W, (size_t)W * sizeof(float));
        for (int64_t c = W; c < pw; c++) q[c] = 0.0f;
    }
    for (int64_t ty = 0; ty < nty; ty++) {
        const float *restrict r0 = pad + ty * 2 * pw, *restrict r1 = r0 + pw;
        float *restrict dt = d + ty * tw;
        for (int64_t tx = 0; tx < tw; tx++) {
            /* A = [1 0; 1 1; 1 -1; 0 -1]: rows (a, b) of dY -> (a, a + b, a - b, -b), then columns */
            const float y00 = r0[2 * tx], y01 = r0[2 * tx + 1], y10 = r1[2 * tx], y11 = r1[2 * tx + 1];
            const float c0[2] = {y00, y01}, c1[2] = {y00 + y10, y01 + y11}, c2[2] = {y00 - y10, y01 - y11},
                        c3[2] = {-y10, -y11};
            const float *rows[4] = {c0, c1, c2, c3};
            for (int i = 0; i < 4; i++) {
                const float e = rows[i][0], f = rows[i][1];
                dt[(i * 4 + 0) * ds + tx] = e;
                dt[(i * 4 + 1) * ds + tx] = e + f;
                dt[(i * 4 + 2) * ds + tx] = e - f;
                dt[(i * 4 + 3) * ds + tx] = -f;
            }
        }
    }
}

static void dw_task2(void *arg, int64_t k, int64_t nchunks) {
    wino_job *j = arg;
    const int64_t tw = j->tw, Tu = j->Tu;
    const int64_t npad = (j->bt * 2 + 2) * (tw * 2 + 2), ntmp = 16 * tw;
    const int64_t nv = 16 * (j->Cin * Tu + SKEW), nd = 16 * (j->Cout * Tu + SKEW);
    float *buf = bcml_alloc((size_t)(nv + nd + npad + ntmp) * sizeof(float));
    if (!buf) { atomic_store(&j->failed, 1); return; }
    float *V = buf, *D = V + nv, *pad = D + nd, *tmp = pad + npad;
    const int64_t us = j->Cout * j->Cin + SKEW; /* point stride of the partial dU */
    float *part = j->part + k * 16 * us;      /* (16, Cout, Cin) */
    const int64_t HW = j->H * j->W;
    const int64_t u0 = j->nunits * k / nchunks; /* its first unit sets the partial, the others add */
    for (int64_t u = u0; u < j->nunits * (k + 1) / nchunks; u++) {
        int64_t im, nim, ty0, nty;
        unit_span(j, u, &im, &nim, &ty0, &nty);
        const int64_t tpi = nty * tw, T = nim * tpi;
        const int64_t vs = j->Cin * T + SKEW, ds = j->Cout * T + SKEW;
        for (int64_t b = 0; b < nim; b++) {
            for (int64_t c = 0; c < j->Cin; c++)
                in_tf2(j, j->x + ((im + b) * j->Cin + c) * HW, ty0, nty, V + c * T + b * tpi, vs, pad, tmp);
            for (int64_t o = 0; o < j->Cout; o++)
                dout_tf2(j, j->dout + ((im + b) * j->Cout + o) * HW, ty0, nty, D + o * T + b * tpi, ds, pad);
        }
        for (int64_t p = 0; p < 16; p++)
            bcml_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)j->Cout, (int)j->Cin, (int)T, 1.0f, D + p * ds,
                       (int)T, V + p * vs, (int)T, u == u0 ? 0.0f : 1.0f, part + p * us, (int)j->Cin);
    }
    bcml_free(buf);
}

typedef struct {
    float *part, *dw;
    int64_t nchunks, us, Cin, Cout;
} dwf_job;

/* Output channels [o0, o1): the partial dU summed in chunk order, then dW += G^T dU G in double. */
static void dw_final(void *arg, int64_t o0, int64_t o1) {
    const dwf_job *q = arg;
    const int64_t us = q->us, Cin = q->Cin, m16 = 16 * us;
    float *part = q->part;
    for (int64_t p = 0; p < 16; p++)
        for (int64_t c = 1; c < q->nchunks; c++) {
            float *restrict d = part + p * us + o0 * Cin;
            const float *restrict s = part + c * m16 + p * us + o0 * Cin;
            for (int64_t i = 0; i < (o1 - o0) * Cin; i++) d[i] += s[i];
        }
    for (int64_t o = o0; o < o1; o++)
        for (int64_t c = 0; c < Cin; c++) {
            double t[4][3];
            for (int p = 0; p < 4; p++)
                for (int k = 0; k < 3; k++) {
                    double v = 0.0;
                    for (int q4 = 0; q4 < 4; q4++) v += (double)part[(p * 4 + q4) * us + o * Cin + c] * G2[q4 * 3 + k];
                    t[p][k] = v;
                }
            float *restrict d = q->dw + (o * Cin + c) * 9;
            for (int i = 0; i < 3; i++)
                for (int k = 0; k < 3; k++)
                    d[i * 3 + k] += (float)(G2[i] * t[0][k] + G2[3 + i] * t[1][k] + G2[6 + i] * t[2][k] + G2[9 + i] * t[3][k]);
        }
}

bcml_status bcml_wino_dw(const float *x, const float *dout, float *dw, int64_t N, int64_t Cin, int64_t Cout,
                         int64_t H, int64_t W, bcml_err *err) {
    if (N == 0 || Cin == 0 || Cout == 0 || H == 0 || W == 0) return BCML_OK;
    wino_job j = {.m = 2, .a = 4, .N = N, .Cin = Cin, .Cout = Cout, .H = H, .W = W, .x = x, .dout = dout};
    atomic_init(&j.failed, 0);
    plan_units(&j);
    const int64_t us = Cout * Cin + SKEW, m16 = 16 * us; /* point stride, one partial dU */
    const int64_t nchunks = min64(j.nunits, min64(DW_CHUNKS, max64(1, DW_BUDGET / m16)));
    float *part = bcml_alloc((size_t)(nchunks * m16) * sizeof(float));
    if (!part) return bcml_fail(err, BCML_ENOMEM, "conv2d backward: out of memory for Winograd weight gradients");
    j.part = part;
    bcml_parallel(nchunks, dw_task2, &j);
    if (atomic_load(&j.failed)) {
        bcml_free(part);
        return bcml_fail(err, BCML_ENOMEM, "conv2d backward: out of memory for Winograd buffers");
    }
    parallel_range(Cout, dw_final, &(dwf_job){part, dw, nchunks, us, Cin, Cout});
    bcml_free(part);
    return BCML_OK;
}

/* U (a*a, Cout, Cin) from w: (Cout, Cin, 3, 3), or with flip (Cin, Cout, 3, 3) rotated by 180
 * degrees and transposed (the convolution that gives the input gradient). In double. */
static void weight_tf(float *U, const float *w, int flip, int64_t Cin, int64_t Cout, const double *G, int a) {
    for (int64_t o = 0; o < Cout; o++)
        for (int64_t c = 0; c < Cin; c++) {
            double g[3][3], t[AMAX][3];
            for (int i = 0; i < 3; i++)
                for (int k = 0; k < 3; k++)
                    g[i][k] = flip ? w[((c * Cout + o) * 3 + 2 - i) * 3 + 2 - k] : w[((o * Cin + c) * 3 + i) * 3 + k];
            for (int p = 0; p < a; p++)
                for (int k = 0; k < 3; k++)
                    t[p][k] = G[p * 3] * g[0][k] + G[p * 3 + 1] * g[1][k] + G[p * 3 + 2] * g[2][k];
            for (int p = 0; p < a; p++)
                for (int q = 0; q < a; q++)
                    U[(int64_t)(p * a + q) * (Cout * Cin + SKEW) + o * Cin + c] =
                        (float)(t[p][0] * G[q * 3] + t[p][1] * G[q * 3 + 1] + t[p][2] * G[q * 3 + 2]);
        }
}

/* weight_tf for F(2x2): G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1] written out, in double. */
typedef struct {
    float *U;
    const float *w;
    int flip;
    int64_t Cin, Cout;
} wtf_job;

static void weight_tf2(void *arg, int64_t o0, int64_t o1) {
    const wtf_job *q = arg;
    float *U = q->U;
    const float *w = q->w;
    const int flip = q->flip;
    const int64_t Cin = q->Cin, Cout = q->Cout;
    const int64_t S = Cout * Cin + SKEW; /* point stride */
    for (int64_t o = o0; o < o1; o++)
        for (int64_t c = 0; c < Cin; c++) {
            double g[3][3], t[4][3];
            for (int i = 0; i < 3; i++)
                for (int k = 0; k < 3; k++)
                    g[i][k] = flip ? w[((c * Cout + o) * 3 + 2 - i) * 3 + 2 - k] : w[((o * Cin + c) * 3 + i) * 3 + k];
            for (int k = 0; k < 3; k++) {
                t[0][k] = g[0][k];
                t[1][k] = 0.5 * (g[0][k] + g[1][k] + g[2][k]);
                t[2][k] = 0.5 * (g[0][k] - g[1][k] + g[2][k]);
                t[3][k] = g[2][k];
            }
            float *u = U + o * Cin + c;
            for (int p = 0; p < 4; p++) {
                u[(p * 4 + 0) * S] = (float)t[p][0];
                u[(p * 4 + 1) * S] = (float)(0.5 * (t[p][0] + t[p][1] + t[p][2]));
                u[(p * 4 + 2) * S] = (float)(0.5 * (t[p][0] - t[p][1] + t[p][2]));
                u[(p * 4 + 3) * S] = (float)t[p][2];
            }
        }
}

bcml_status bcml_wino_conv(int m, const float *x, const float *w, int flip, const float *bias, const float *scale,
                           const float *shift, int relu, float *out, int acc, int64_t N, int64_t Cin, int64_t Cout,
                           int64_t H, int64_t W, bcml_err *err) {
    if ((m != 2 && m != 4) || Cin < 1)
        return bcml_fail(err, BCML_EVALUE, "conv2d: Winograd F(%dx%d, 3x3) over %lld channels", m, m, (long long)Cin);
    if (N == 0 || Cout == 0 || H == 0 || W == 0) return BCML_OK;
    const int a = m + 2;
    wino_job j = {.m = m, .a = a, .N = N, .Cin = Cin, .Cout = Cout, .H = H, .W = W, .x = x, .bias = bias,
                  .scale = scale, .shift = shift, .out = out, .relu = relu, .acc = acc};
    atomic_init(&j.failed, 0);
    plan_units(&j);
    float *U = bcml_alloc((size_t)((int64_t)a * a * (Cin * Cout + SKEW)) * sizeof(float));
    if (!U) return bcml_fail(err, BCML_ENOMEM, "conv2d: out of memory for the Winograd weight transform");
    if (m == 2)
        parallel_range(Cout, weight_tf2, &(wtf_job){U, w, flip, Cin, Cout});
    else
        weight_tf(U, w, flip, Cin, Cout, G4, a);
    j.U = U;
    bcml_parallel(min64(j.nunits, MAX_TASKS), m == 2 ? task2 : task4, &j);
    bcml_free(U);
    if (atomic_load(&j.failed)) return bcml_fail(err, BCML_ENOMEM, "conv2d: out of memory for Winograd buffers");
    return BCML_OK;
}

/* ---- maps of at most 4 pixels (2x2): the convolution as one dense matrix ----------------------
 * On a 2x2 map with padding 1 every output pixel reads 4 of the 9 taps: as a matrix B (C*P, OC*P)
 * (P = H*W; B[(c, pi), (o, po)] = the weight of the tap joining input pixel pi to output pixel po,
 * 0 where none does), out (N, OC*P) = x (N, C*P) @ B, dx += dout @ B^T and dB = x^T @ dout,
 * summed back into the taps: P*P = 16 multiply-adds per (image, c, o) instead of im2col's 9*P = 36,
 * in three large GEMMs, with the direct convolution's sums (its rounding, no transform).
 * Units: chunks of DENSE_IMAGES images (forward, dx) or of input channels (dW), from the shapes. */
#define DENSE_IMAGES 32
#define DENSE_CHANNEL_CHUNKS 4

typedef struct {
    int64_t N, C, OC, H, W, P;
    const float *x, *B, *bias, *scale, *shift, *dout;
    float *out, *dB;
    int relu, mode; /* 0 forward, 1 dx (out += dout @ B^T), 2 dB rows */
} dense_job;

/* The tap (kh*3 + kw) joining input pixel pi to output pixel po, or -1. */
static int dense_tap(const dense_job *d, int64_t pi, int64_t po) {
    const int64_t kh = pi / d->W - po / d->W + 1, kw = pi % d->W - po % d->W + 1;
    return kh >= 0 && kh < 3 && kw >= 0 && kw < 3 ? (int)(kh * 3 + kw) : -1;
}

static void dense_task(void *arg, int64_t k, int64_t n) {
    dense_job *d = arg;
    const int64_t CP = d->C * d->P, OP = d->OC * d->P;
    if (d->mode == 2) { /* dB rows of input channels [c0, c1) */
        const int64_t c0 = d->C * k / n, c1 = d->C * (k + 1) / n;
        if (c1 > c0)
            bcml_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)((c1 - c0) * d->P), (int)OP, (int)d->N, 1.0f,
                       d->x + c0 * d->P, (int)CP, d->dout, (int)OP, 0.0f, d->dB + c0 * d->P * OP, (int)OP);
        return;
    }
    const int64_t units = cdiv(d->N, DENSE_IMAGES);
    for (int64_t u = units * k / n; u < units * (k + 1) / n; u++) {
        const int64_t i0 = u * DENSE_IMAGES, ni = min64(DENSE_IMAGES, d->N - i0);
        if (d->mode == 1) {
            bcml_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)ni, (int)CP, (int)OP, 1.0f, d->dout + i0 * OP,
                       (int)OP, d->B, (int)OP, 1.0f, d->out + i0 * CP, (int)CP);
            continue;
        }
        float *o = d->out + i0 * OP;
        bcml_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)ni, (int)OP, (int)CP, 1.0f, d->x + i0 * CP,
                   (int)CP, d->B, (int)OP, 0.0f, o, (int)OP);
        for (int64_t i = 0; i < ni; i++)
            for (int64_t oc = 0; oc < d->OC; oc++) {
                float *restrict r = o + i * OP + oc * d->P;
                const float b = d->bias ? d->bias[oc] : 0.0f, s = d->scale ? d->scale[oc] : 1.0f,
                            sh = d->shift ? d->shift[oc] : 0.0f;
                for (int64_t p = 0; p < d->P; p++) {
                    const float v = (r[p] + b) * s + sh;
                    r[p] = d->relu && v < 0.0f ? 0.0f : v;
                }
            }
    }
}

/* tab[pi*P + po]: dense_tap for every pair (P <= 4). */
static void dense_table(const dense_job *d, int *tab) {
    for (int64_t pi = 0; pi < d->P; pi++)
        for (int64_t po = 0; po < d->P; po++) tab[pi * d->P + po] = dense_tap(d, pi, po);
}

typedef struct {
    const dense_job *d;
    const int *tab;
    float *B, *dw;
    const float *w;
} dmat_job;

/* Rows of input channels [c0, c1) of B (C*P, OC*P) from w (OC, C, 3, 3). */
static void dense_matrix(void *arg, int64_t c0, int64_t c1) {
    const dmat_job *q = arg;
    const dense_job *d = q->d;
    const int64_t P = d->P, OP = d->OC * P;
    for (int64_t c = c0; c < c1; c++)
        for (int64_t pi = 0; pi < P; pi++) {
            float *restrict row = q->B + (c * P + pi) * OP;
            const int *t = q->tab + pi * P;
            for (int64_t o = 0; o < d->OC; o++) {
                const float *restrict wk = q->w + (o * d->C + c) * 9;
                for (int64_t po = 0; po < P; po++) row[o * P + po] = t[po] < 0 ? 0.0f : wk[t[po]];
            }
        }
}

/* dw[:, c0:c1] += each tap's sum over the pixel pairs it joins in dB, in a fixed order. */
static void dense_taps(void *arg, int64_t c0, int64_t c1) {
    const dmat_job *q = arg;
    const dense_job *d = q->d;
    const int64_t P = d->P, OP = d->OC * P;
    for (int64_t c = c0; c < c1; c++)
        for (int64_t pi = 0; pi < P; pi++) {
            const float *restrict row = q->B + (c * P + pi) * OP;
            const int *t = q->tab + pi * P;
            for (int64_t o = 0; o < d->OC; o++) {
                float *restrict g = q->dw + (o * d->C + c) * 9;
                for (int64_t po = 0; po < P; po++)
                    if (t[po] >= 0) g[t[po]] += row[o * P + po];
            }
        }
}

bcml_status bcml_dense_conv(const float *x, const float *w, const float *bias, const float *scale,
                            const float *shift, int relu, float *out, const float *dout, float *dx, float *dw,
                            int64_t N, int64_t C, int64_t OC, int64_t H, int64_t W, bcml_err *err) {
    dense_job d = {.N = N, .C = C, .OC = OC, .H = H, .W = W, .P = H * W, .x = x, .bias = bias, .scale = scale,
                   .shift = shift, .dout = dout, .relu = relu};
    if (N == 0 || C == 0 || OC == 0 || d.P == 0) return BCML_OK;
    const int64_t CP = C * d.P, OP = OC * d.P;
    float *B = bcml_alloc((size_t)(CP * OP) * sizeof(float));
    if (!B) return bcml_fail(err, BCML_ENOMEM, "conv2d: out of memory for the dense small-map weight");
    const int64_t units = cdiv(N, DENSE_IMAGES);
    int tab[16];
    if (d.P > 4) {
        bcml_free(B);
        return bcml_fail(err, BCML_EVALUE, "conv2d: dense small-map path on %lld pixels (4 at most)", (long long)d.P);
    }
    dense_table(&d, tab);
    if (out || dx) {
        parallel_range(C, dense_matrix, &(dmat_job){&d, tab, B, NULL, w});
        d.B = B;
    }
    if (out) {
        d.out = out;
        d.mode = 0;
        bcml_parallel(min64(units, MAX_TASKS), dense_task, &d);
    }
    if (dx) {
        d.out = dx;
        d.mode = 1;
        bcml_parallel(min64(units, MAX_TASKS), dense_task, &d);
    }
    if (dw) {
        d.dB = B; /* reused: (CP, OP) */
        d.mode = 2;
        bcml_parallel(min64(C, DENSE_CHANNEL_CHUNKS), dense_task, &d);
        parallel_range(C, dense_taps, &(dmat_job){&d, tab, B, dw, NULL});
    }
    bcml_free(B);
    return BCML_OK;
}
