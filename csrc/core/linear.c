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
                             int64_t C, int64_t OC, int fresh) {
    for (int64_t r = r0; r < r1; r++) {
        float *d = dx + r * C;
        if (fresh) memset(d, 0, (size_t)C * sizeof *d);
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

/* ---- small products on AVX-512 registers, without packing --------------------------------------
 * The layers of small MLPs and of the ConvNet's head (754 x 108 x 50, 64 x 320 x 50, ...) are
 * too small for OpenBLAS's packing to pay: it ran them at 25-85 GFLOP/s. Here
 *   Cm (M, N) (+)= Am (M, K) @ Bm (K, N)
 * runs in tiles of MR rows by up to 64 columns (NV vectors of 16) held in registers: for each k,
 * NV vectors of B's row k are loaded and each of the MR values of A's column k broadcast into an
 * FMA. Am's element (i, k) is read at a[i * sa + k] (ACOL == 0: rows of A contiguous) or at
 * a[k * sk + i] (ACOL == 1: columns contiguous, A stored transposed); B and C are row-major.
 * Each output is one sum over k in order, started from C (accumulate), the bias or zero: the same
 * bits however the rows are split into tasks. */
#define SG_MAXNV 4

static inline __attribute__((always_inline)) AVX512 void sg_tile(float *c, int64_t ldc, const float *a, int64_t sa,
                                                                 int64_t sk, const float *b, int64_t ldb, int64_t K,
                                                                 const float *bias, int accumulate, __mmask16 mlast,
                                                                 const int MR, const int NV, const int ACOL) {
    __m512 acc[24][SG_MAXNV]; /* MR x NV used */
    for (int r = 0; r < MR; r++)
        for (int v = 0; v < NV; v++) {
            const __mmask16 m = v == NV - 1 ? mlast : (__mmask16)0xFFFF;
            acc[r][v] = accumulate ? _mm512_maskz_loadu_ps(m, c + r * ldc + 16 * v)
                        : bias     ? _mm512_maskz_loadu_ps(m, bias + 16 * v)
                                   : _mm512_setzero_ps();
        }
    for (int64_t k = 0; k < K; k++) {
        __m512 bv[SG_MAXNV];
        for (int v = 0; v < NV; v++)
            bv[v] = v == NV - 1 ? _mm512_maskz_loadu_ps(mlast, b + k * ldb + 16 * v) : _mm512_loadu_ps(b + k * ldb + 16 * v);
        for (int r = 0; r < MR; r++) {
            const __m512 av = _mm512_set1_ps(ACOL ? a[k * sk + r] : a[r * sa + k]);
            for (int v = 0; v < NV; v++) acc[r][v] = _mm512_fmadd_ps(av, bv[v], acc[r][v]);
        }
    }
    for (int r = 0; r < MR; r++)
        for (int v = 0; v < NV; v++) {
            if (v == NV - 1) _mm512_mask_storeu_ps(c + r * ldc + 16 * v, mlast, acc[r][v]);
            else _mm512_storeu_ps(c + r * ldc + 16 * v, acc[r][v]);
        }
}

/* Rows [m0, m1) of one panel of NV vectors: tiles of up to MR rows; k in chunks of
 * SG_KC, so that the panel's chunk of B (16 KB) stays in L1 across the row tiles (the partial
 * sums go through C, stored and reloaded exactly: the same bits as one pass). */
#define SG_KC 64

static inline __attribute__((always_inline)) AVX512 void sg_panel(float *c, int64_t ldc, const float *a, int64_t sa,
                                                                  int64_t sk, const float *b, int64_t ldb, int64_t K,
                                                                  const float *bias, int accumulate, __mmask16 mlast,
                                                                  int64_t m0, int64_t m1, const int NV, const int ACOL) {
    /* up to 24 accumulators; A's rows (ACOL == 0) each need an address register: at most 8 */
    const int MR = NV == 4 ? 6 : NV == 3 || !ACOL ? 8 : NV == 2 ? 12 : 24;
    for (int64_t k0 = 0; k0 < K; k0 += SG_KC) {
        const int64_t kc = K - k0 < SG_KC ? K - k0 : SG_KC;
        const float *ak = ACOL ? a + k0 * sk : a + k0, *bk = b + k0 * ldb, *bi = k0 ? NULL : bias;
        const int acc = accumulate || k0;
#define SG_AT(i) c + (i) * ldc, ldc, ACOL ? ak + (i) : ak + (i) * sa, sa, sk, bk, ldb, kc, bi, acc, mlast
#define SG_CASE(R_) case R_: if (R_ <= MR) sg_tile(SG_AT(i), R_, NV, ACOL); break;
        /* tiles of MR rows; the last full tile and the rows after it (rem < MR) as two tiles of
         * about equal height (>= MR / 2), never a tail of one or two rows whose few accumulators
         * would wait on the FMA latency; fewer than MR / 2 rows in all take 8, 4, 2 and 1 */
        const int64_t m = m1 - m0, rem = m % MR;
        int64_t i = m0;
        const int64_t full_end = m1 - rem - (rem && m >= MR ? MR : 0);
        for (; i < full_end; i += MR) sg_tile(SG_AT(i), MR, NV, ACOL);
        while (i < m1) {
            const int64_t left = m1 - i;
            int64_t r = left > MR ? (left + 1) / 2 : left;
            if (2 * r < MR) r = r >= 8 ? 8 : r >= 4 ? 4 : r >= 2 ? 2 : 1;
            switch (r) {
                SG_CASE(1) SG_CASE(2) SG_CASE(3) SG_CASE(4) SG_CASE(5) SG_CASE(6) SG_CASE(7) SG_CASE(8)
                SG_CASE(9) SG_CASE(10) SG_CASE(11) SG_CASE(12) SG_CASE(13) SG_CASE(14) SG_CASE(15) SG_CASE(16)
                SG_CASE(17) SG_CASE(18) SG_CASE(19) SG_CASE(20) SG_CASE(21) SG_CASE(22) SG_CASE(23) SG_CASE(24)
                default: break;
            }
            i += r;
        }
#undef SG_CASE
#undef SG_AT
    }
}

/* Cm rows [m0, m1) over all N columns, in panels of 64. */
static inline __attribute__((always_inline)) AVX512 void sg_rows(float *c, int64_t ldc, const float *a, int64_t sa,
                                                                 int64_t sk, const float *b, int64_t ldb, int64_t N,
                                                                 int64_t K, const float *bias, int accumulate,
                                                                 int64_t m0, int64_t m1, const int ACOL) {
    for (int64_t n0 = 0; n0 < N; n0 += 16 * SG_MAXNV) {
        const int64_t w = N - n0 < 16 * SG_MAXNV ? N - n0 : 16 * SG_MAXNV;
        const int nv = (int)((w + 15) / 16);
        const __mmask16 mlast = lanes(w - 16 * (nv - 1));
        float *cp = c + n0;
        const float *bp = b + n0, *bi = bias ? bias + n0 : NULL;
        switch (nv) {
        case 1: sg_panel(cp, ldc, a, sa, sk, bp, ldb, K, bi, accumulate, mlast, m0, m1, 1, ACOL); break;
        case 2: sg_panel(cp, ldc, a, sa, sk, bp, ldb, K, bi, accumulate, mlast, m0, m1, 2, ACOL); break;
        case 3: sg_panel(cp, ldc, a, sa, sk, bp, ldb, K, bi, accumulate, mlast, m0, m1, 3, ACOL); break;
        default: sg_panel(cp, ldc, a, sa, sk, bp, ldb, K, bi, accumulate, mlast, m0, m1, 4, ACOL); break;
        }
    }
}

AVX512 static void small_gemm_rows512(float *c, int64_t ldc, const float *a, int64_t sa, const float *b, int64_t ldb,
                                      int64_t N, int64_t K, const float *bias, int accumulate, int64_t m0, int64_t m1) {
    sg_rows(c, ldc, a, sa, 0, b, ldb, N, K, bias, accumulate, m0, m1, 0);
}

AVX512 static void small_gemm_cols512(float *c, int64_t ldc, const float *a, int64_t sk, const float *b, int64_t ldb,
                                      int64_t N, int64_t K, int accumulate, int64_t m0, int64_t m1) {
    sg_rows(c, ldc, a, 0, sk, b, ldb, N, K, NULL, accumulate, m0, m1, 1);
}

/* db (OC) += column sums of g (R, OC): rows r = 0, 1, 2, 3 (mod 4) summed apart (four chains of
 * adds instead of one), then ((s0 + s1) + (s2 + s3)) added to db. */
AVX512 static void bias_grad512(float *db, const float *g, int64_t R, int64_t OC) {
    for (int64_t o = 0; o < OC; o += 16) {
        const __mmask16 m = lanes(OC - o);
        __m512 s[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
        int64_t r = 0;
        for (; r + 4 <= R; r += 4)
            for (int q = 0; q < 4; q++) s[q] = _mm512_add_ps(s[q], _mm512_maskz_loadu_ps(m, g + (r + q) * OC + o));
        for (int q = 0; r < R; r++, q++) s[q] = _mm512_add_ps(s[q], _mm512_maskz_loadu_ps(m, g + r * OC + o));
        const __m512 t = _mm512_add_ps(_mm512_add_ps(s[0], s[1]), _mm512_add_ps(s[2], s[3]));
        _mm512_mask_storeu_ps(db + o, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, db + o), t));
    }
}

/* dx rows [r0, r1) (., C) += g (., OC) @ W (OC, C) for OC <= NARROW_OC: 64 columns of W's rows at
 * a time held in registers, each dx row loaded and stored once per 64 columns (the scalar loop
 * passes over a row once per output). The next row is loaded before this row is stored: a
 * masked store followed by a load of the same cache line waits for the store to retire (5.6 us
 * for 754 x 2 -> 10 stored first). Each element: ((dx + g0 w0) + g1 w1) + ..., fused. */
static inline __attribute__((always_inline)) AVX512 void dx_narrow512_cols(float *dx, const float *g, const float *w,
                                                                           int64_t r0, int64_t r1, int64_t C, int64_t c0,
                                                                           __mmask16 ml, int fresh, const int OC,
                                                                           const int NV) {
    __m512 wv[NARROW_OC][4], cur[4], nxt[4];
    for (int o = 0; o < OC; o++)
        for (int v = 0; v < NV; v++)
            wv[o][v] = _mm512_maskz_loadu_ps(v == NV - 1 ? ml : (__mmask16)0xFFFF, w + o * C + c0 + 16 * v);
    /* a new buffer (fresh) is not read: each row starts from zero */
    const __mmask16 mr = fresh ? 0 : 0xFFFF, mlr = fresh ? 0 : ml;
    for (int v = 0; v < NV; v++) cur[v] = _mm512_maskz_loadu_ps(v == NV - 1 ? mlr : mr, dx + r0 * C + c0 + 16 * v);
    for (int64_t r = r0; r < r1; r++) {
        float *d = dx + r * C + c0;
        for (int o = 0; o < OC; o++) {
            const __m512 gv = _mm512_set1_ps(g[r * OC + o]);
            for (int v = 0; v < NV; v++) cur[v] = _mm512_fmadd_ps(gv, wv[o][v], cur[v]);
        }
        if (r + 1 < r1)
            for (int v = 0; v < NV; v++)
                nxt[v] = _mm512_maskz_loadu_ps(v == NV - 1 ? mlr : mr, d + C + 16 * v);
        for (int v = 0; v < NV; v++) _mm512_mask_storeu_ps(d + 16 * v, v == NV - 1 ? ml : (__mmask16)0xFFFF, cur[v]);
        for (int v = 0; v < NV; v++) cur[v] = nxt[v];
    }
}

static inline __attribute__((always_inline)) AVX512 void dx_narrow512_oc(float *dx, const float *g, const float *w,
                                                                         int64_t r0, int64_t r1, int64_t C,
                                                                         int fresh, const int OC) {
    for (int64_t c0 = 0; c0 < C && r0 < r1; c0 += 64) {
        const int64_t wd = C - c0 < 64 ? C - c0 : 64;
        const int nv = (int)((wd + 15) / 16);
        const __mmask16 ml = lanes(wd - 16 * (nv - 1));
        switch (nv) {
        case 1: dx_narrow512_cols(dx, g, w, r0, r1, C, c0, ml, fresh, OC, 1); break;
        case 2: dx_narrow512_cols(dx, g, w, r0, r1, C, c0, ml, fresh, OC, 2); break;
        case 3: dx_narrow512_cols(dx, g, w, r0, r1, C, c0, ml, fresh, OC, 3); break;
        default: dx_narrow512_cols(dx, g, w, r0, r1, C, c0, ml, fresh, OC, 4); break;
        }
    }
}

AVX512 static void linear_dx_narrow512(float *dx, const float *g, const float *w, int64_t r0, int64_t r1, int64_t C,
                                       int64_t OC, int fresh) {
    NARROW_DISPATCH(OC, dx_narrow512_oc, dx, g, w, r0, r1, C, fresh);
}
#else
#define HAVE_AVX512_NARROW 0
#endif
#define SMALL_MACS 4.1e6

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

/* The small-product kernels split their rows (any split gives the same bits: each output is one
 * sum); they have no packing to repeat per task, so smaller products split too. */
static int64_t small_tasks(int64_t M, int64_t N, int64_t K) {
    double macs = (double)M * (double)N * (double)K;
    int64_t t = macs >= 4e6 ? 4 : macs >= 2.5e5 ? 2 : 1;
    while (t > 1 && M / t < 12) t /= 2;
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
    const float *wt; /* W^T (C, OC) for the small-product forward */
    int64_t R, C, OC;
    int small;       /* the small-product kernels (AVX-512) instead of BLAS */
    int fresh;       /* backward: dx is a new buffer, written (not added to) */
} linear_job;

/* Products small enough for the AVX-512 small-product kernels; chosen from the shape only. Against
 * OpenBLAS on one thread (us, forward / dW / dx): 754 x 108 -> 50 (4.07M multiply-adds) 83 / 72 / 72
 * vs 94 / 117 / 84; 754 x 50 -> 10: 17 / 9 / 13 vs 22 / 14 / 18; 64 x 320 -> 50: 44 / 23 / 21 vs
 * 34 / 29 / 28; but 256 x 256 -> 64 (4.19M): 92 / 104 / 93 vs 87 / 80 / 77, and larger ones lose
 * more. The forward (A's rows read by broadcasts) loses once the reduction is long (K > 160). */
static int use_small(int64_t M, int64_t N, int64_t K, int forward) {
#if HAVE_AVX512_NARROW
    return bcml_have_avx512() && M > 0 && N > 0 && K > 0 && (double)M * (double)N * (double)K <= SMALL_MACS &&
           (!forward || K <= 160);
#else
    (void)M; (void)N; (void)K;
    return 0;
#endif
}

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
    } else if (j->small) {
#if HAVE_AVX512_NARROW
        small_gemm_rows512(j->out, j->OC, j->x, j->C, j->wt, j->OC, j->OC, j->C, j->b, 0, r0, r1);
#endif
    } else {
        linear_fw(j->out + r0 * j->OC, j->x + r0 * j->C, j->w, j->b, r1 - r0, j->C, j->OC);
    }
}

/* dx rows [r0, r1) += g[r0:r1] (., OC) @ W (OC, C) */
static void linear_dx_task(void *arg, int64_t k, int64_t n) {
    linear_job *j = arg;
    int64_t r0, r1;
    split(j->R, k, n, 8, &r0, &r1);
    if (r1 > r0 && j->OC <= NARROW_OC) {
#if HAVE_AVX512_NARROW
        if (bcml_have_avx512()) {
            linear_dx_narrow512(j->dx, j->g, j->w, r0, r1, j->C, j->OC, j->fresh);
            return;
        }
#endif
        linear_dx_narrow(j->dx, j->g, j->w, r0, r1, j->C, j->OC, j->fresh);
    }
#if HAVE_AVX512_NARROW
    else if (r1 > r0 && j->small)
        small_gemm_rows512(j->dx, j->C, j->g, j->OC, j->w, j->C, j->C, j->OC, NULL, !j->fresh, r0, r1);
#endif
    else if (r1 > r0)
        bcml_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)(r1 - r0), (int)j->C, (int)j->OC, 1.0f,
                   j->g + r0 * j->OC, (int)j->OC, j->w, (int)j->C, j->fresh ? 0.0f : 1.0f, j->dx + r0 * j->C,
                   (int)j->C);
}

/* dW columns [c0, c1) += g^T (OC, R) @ x[:, c0:c1] (R, .) */
static void linear_dw_task(void *arg, int64_t k, int64_t n) {
    linear_job *j = arg;
#if HAVE_AVX512_NARROW
    if (j->small) { /* rows [o0, o1) of dW: g^T read down g's columns */
        int64_t o0, o1;
        split(j->OC, k, n, 2, &o0, &o1);
        if (o1 > o0) small_gemm_cols512(j->dw + o0 * j->C, j->C, j->g + o0, j->OC, j->x, j->C, j->C, j->R, 1, 0, o1 - o0);
        return;
    }
#endif
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
    float *wt = NULL;
    if (OC > NARROW_OC && use_small(R, OC, C, 1) && (wt = bcml_alloc((size_t)(C * OC) * sizeof(float)))) {
        const float *wd = j.w;
        for (int64_t o = 0; o < OC; o++)
            for (int64_t c = 0; c < C; c++) wt[c * OC + o] = wd[o * C + c];
        j.wt = wt;
        j.small = 1;
    }
    bcml_parallel(OC > 0 && OC <= NARROW_OC && C > 0 ? narrow_tasks(R, C) : j.small ? small_tasks(R, OC, C)
                  : gemm_tasks(R, OC, C), linear_fw_task, &j);
    bcml_free(wt);
    return BCML_OK;
}

/* db (OC) += column sums of g (R, OC), rows in order. */
static void bias_grad(float *db, const float *g, int64_t R, int64_t OC) {
#if HAVE_AVX512_NARROW
    if (bcml_have_avx512()) {
        bias_grad512(db, g, R, OC);
        return;
    }
#endif
    for (int64_t r = 0; r < R; r++)
        for (int64_t o = 0; o < OC; o++) db[o] += g[r * OC + o];
}

/* The whole backward in one parallel region: dx's tasks, dW's and db as one task (each output
 * still belongs to one task, so the bits do not depend on the split), so that dW's run beside
 * dx's instead of after them; a thread done with its own tasks takes the others' (threads.c). */
typedef struct {
    linear_job dx, dw;
    int64_t tx, tw;
    float *db;
} linear_bw_job;

static void linear_bw_task(void *arg, int64_t k, int64_t n) {
    (void)n;
    linear_bw_job *b = arg;
    const int64_t hx = (b->tx + 1) / 2; /* the first half of dx's tasks, then dW's and db, then the rest of dx's:
                                           the threads' blocks (threads.c) then share dx's rows as the ops around */
    if (k < hx) linear_dx_task(&b->dx, k, b->tx);
    else if (k < hx + b->tw) linear_dw_task(&b->dw, k - hx, b->tw);
    else if (b->db && k == hx + b->tw) bias_grad(b->db, b->dx.g, b->dx.R, b->dx.OC);
    else linear_dx_task(&b->dx, k - b->tw - (b->db != NULL), b->tx);
}

bcml_status bcml_linear_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din,
                                 bcml_err *err) {
    (void)err;
    const bcml_tensor *x = n->in[0], *w = n->in[1];
    int64_t C = w->shape[1], OC = w->shape[0], R = dout->numel / (OC ? OC : 1);
    if (OC == 0) { /* nothing to add; a new dx buffer is zero */
        if (din[0] && (n->fresh & 1u)) memset(bcml_data(din[0]), 0, bcml_nbytes(din[0]));
        return BCML_OK;
    }
    linear_job j = {.x = bcml_f32(x), .w = bcml_f32(w), .g = bcml_f32(dout), .R = R, .C = C, .OC = OC};
    linear_bw_job b = {.dx = j, .dw = j};
    if (din[0] && R && C) { /* dx (R, C) += g (R, OC) @ W (OC, C) (= when it is a new buffer) */
        b.dx.dx = bcml_f32(din[0]);
        b.dx.fresh = n->fresh & 1u;
        b.dx.small = OC > NARROW_OC && use_small(R, C, OC, 0);
        b.tx = OC <= NARROW_OC ? narrow_tasks(R, C) : b.dx.small ? small_tasks(R, C, OC) : gemm_tasks(R, C, OC);
    }
    if (din[1] && R && C) { /* dW (OC, C) += g^T (OC, R) @ x (R, C) */
        b.dw.dw = bcml_f32(din[1]);
        b.dw.small = OC > NARROW_OC && use_small(OC, C, R, 0);
        /* the small dW's tasks split dW's rows, and each reads all of x again: two at most (one thread
         * running four took 89 us for 754 x 108 -> 50, against 67 for two) */
        b.tw = OC <= NARROW_OC ? narrow_tasks(R, C) : b.dw.small ? (small_tasks(OC, C, R) > 1 ? 2 : 1)
                                                                : gemm_tasks(C, OC, R);
    }
    if (n->n_in > 2 && din[2]) b.db = bcml_f32(din[2]); /* db (OC) += column sums of g */
    /* one tensor given twice (linear(w, w), linear(b, W, b)) gets one gradient buffer: its parts
     * then run one after the other */
    float *bx = b.tx ? b.dx.dx : NULL, *bw = b.tw ? b.dw.dw : NULL;
    if ((bx && (bx == bw || bx == b.db)) || (bw && bw == b.db)) {
        bcml_parallel(b.tx, linear_dx_task, &b.dx);
        bcml_parallel(b.tw, linear_dw_task, &b.dw);
        if (b.db) bias_grad(b.db, j.g, R, OC);
    } else {
        bcml_parallel(b.tx + b.tw + (b.db != NULL), linear_bw_task, &b);
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
