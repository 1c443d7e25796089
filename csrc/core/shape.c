/* shape.c: transpose, reshape (a view), slice, index_select, mask_select and cat.
 *
 * These ops move elements without looking at them, so they work for every dtype (float32,
 * int64, bool) by copying elements of the tensor's element size; only float32 tensors can
 * require grad, so every backward works on float32 gradients. Backward ADDS into din. */
#include "ops.h"

#include <stdio.h>
#include <string.h>

/* Product of shape[from..to). */
static int64_t prod(const int64_t *shape, int from, int to) {
    int64_t p = 1;
    for (int d = from; d < to; d++) p *= shape[d];
    return p;
}

static bcml_status require_float_grad(const bcml_tensor *dout, const char *op, bcml_err *err) {
    if (dout->dtype != BCML_FLOAT32)
        return bcml_fail(err, BCML_ERUNTIME, "%s backward: gradient must be float32, got %s", op,
                         bcml_dtype_name(dout->dtype));
    return BCML_OK;
}

/* Row gather: for each of `outer` blocks, copies K rows of `inner` elements (esz bytes each)
 * from src (outer, n, inner) to dst (outer, K, inner); row k of a block is rows[k] when rows is
 * given, else start + k * step. Rows must already be validated to lie in [0, n). */
#define GATHER_SPLIT_BYTES 65536.0 /* gathers of at least this many bytes go through gather_task */
#define GATHER_TASKS 2               /* their tasks: a constant, not the thread count (halves, as the ops after them split a batch) */
#define GATHER_AHEAD 6               /* rows prefetched ahead */

typedef struct {
    char *dst;
    const char *src;
    const int64_t *rows;
    int64_t K;
    size_t rowbytes;
} gather_job;

/* Rows [K*k/ntasks, K*(k+1)/ntasks) of dst (K, rowbytes) = src's rows rows[k]. */
static void gather_task(void *arg, int64_t k, int64_t ntasks) {
    const gather_job *j = arg;
    const int64_t k0 = j->K * k / ntasks, k1 = j->K * (k + 1) / ntasks;
    for (int64_t i = k0; i < k1; i++) {
        if (i + GATHER_AHEAD < k1) {
            const char *a = j->src + (size_t)j->rows[i + GATHER_AHEAD] * j->rowbytes;
            for (size_t b = 0; b < j->rowbytes; b += 64) __builtin_prefetch(a + b, 0, 3);
        }
        memcpy(j->dst + (size_t)i * j->rowbytes, j->src + (size_t)j->rows[i] * j->rowbytes, j->rowbytes);
    }
}

static void gather_rows(void *dstv,        /* (outer, K, inner) */
                        const void *srcv,  /* (outer, n, inner) */
                        const int64_t *rows, /* (K) or NULL */
                        int64_t start, int64_t step, int64_t outer, int64_t n, int64_t K,
                        int64_t inner, size_t esz) {
    char *dst = dstv;
    const char *src = srcv;
    size_t rowbytes = (size_t)inner * esz;
    if (inner == 1) { /* element gathers: typed loops instead of tiny memcpys */
#define GATHER_ELEMS(T)                                                                    \
    do {                                                                                   \
        T *d = (T *)dst;                                                                   \
        const T *s = (const T *)src;                                                       \
        for (int64_t o = 0; o < outer; o++, d += K, s += n)                                \
            for (int64_t k = 0; k < K; k++) d[k] = s[rows ? rows[k] : start + k * step];   \
    } while (0)
        switch (esz) {
        case 1: GATHER_ELEMS(uint8_t); return;
        case 4: GATHER_ELEMS(uint32_t); return;
        case 8: GATHER_ELEMS(uint64_t); return;
        default: break;
        }
#undef GATHER_ELEMS
    }
    if (outer == 1 && rows && (double)K * (double)rowbytes >= GATHER_SPLIT_BYTES && rowbytes >= 64) {
        /* a batch of rows picked from a data set (x[idx]): random rows, mostly out of cache, each
         * prefetched a few rows ahead, and big gathers split over tasks (disjoint output rows) */
        gather_job j = {dst, src, rows, K, rowbytes};
        bcml_parallel(K >= 4 * GATHER_TASKS ? GATHER_TASKS : 1, gather_task, &j);
        return;
    }
    for (int64_t o = 0; o < outer; o++)
        for (int64_t k = 0; k < K; k++) {
            int64_t r = rows ? rows[k] : start + k * step;
            memcpy(dst + (size_t)(o * K + k) * rowbytes, src + (size_t)(o * n + r) * rowbytes, rowbytes);
        }
}

/* The adjoint of gather_rows for float32: dx (outer, n, inner) += scatter of g (outer, K, inner). */
static void scatter_add_rows(float *dx,          /* (outer, n, inner) */
                             const float *g,     /* (outer, K, inner) */
                             const int64_t *rows, /* (K) or NULL */
                             int64_t start, int64_t step, int64_t outer, int64_t n, int64_t K,
                             int64_t inner) {
    for (int64_t o = 0; o < outer; o++)
        for (int64_t k = 0; k < K; k++) {
            int64_t r = rows ? rows[k] : start + k * step;
            float *d = dx + (o * n + r) * inner;
            const float *s = g + (o * K + k) * inner;
            for (int64_t i = 0; i < inner; i++) d[i] += s[i];
        }
}

/* ---- transpose ------------------------------------------------------------------------- */
/* Pads a tensor's shape to 4 dims (leading 1s) and gives, for each dim of the transposed
 * output, its size and the stride (in elements) of the matching input dim. */
static void transpose_plan(const bcml_tensor *x, int64_t d0, int64_t d1, int64_t os[4], int64_t st[4]) {
    int pad = 4 - x->ndim;
    int64_t is[4], istride[4];
    for (int d = 0; d < 4; d++) is[d] = d < pad ? 1 : x->shape[d - pad];
    int64_t s = 1;
    for (int d = 3; d >= 0; d--) { istride[d] = s; s *= is[d]; }
    int perm[4] = {0, 1, 2, 3};
    if (x->ndim > 0) { perm[d0 + pad] = (int)(d1 + pad); perm[d1 + pad] = (int)(d0 + pad); }
    for (int d = 0; d < 4; d++) { os[d] = is[perm[d]]; st[d] = istride[perm[d]]; }
}

#define TBLK 32 /* tile of the last two output dims, so that reads and writes stay in cache */

/* out (os0, os1, os2, os3) contiguous = input elements at a*st0 + b*st1 + c*st2 + d*st3 */
#define PERMUTE_COPY(T)                                                                       \
    do {                                                                                      \
        T *dst = (T *)dstv;                                                                   \
        const T *src = (const T *)srcv;                                                       \
        for (int64_t a = 0; a < os[0]; a++)                                                   \
            for (int64_t b = 0; b < os[1]; b++)                                               \
                for (int64_t c0 = 0; c0 < os[2]; c0 += TBLK)                                  \
                    for (int64_t e0 = 0; e0 < os[3]; e0 += TBLK) {                            \
                        int64_t c1 = c0 + TBLK < os[2] ? c0 + TBLK : os[2];                   \
                        int64_t e1 = e0 + TBLK < os[3] ? e0 + TBLK : os[3];                   \
                        for (int64_t c = c0; c < c1; c++) {                                   \
                            T *drow = dst + ((a * os[1] + b) * os[2] + c) * os[3];            \
                            const T *srow = src + a * st[0] + b * st[1] + c * st[2];          \
                            for (int64_t e = e0; e < e1; e++) drow[e] = srow[e * st[3]];      \
                        }                                                                     \
                    }                                                                         \
    } while (0)

static void permute_copy(void *dstv, const void *srcv, const int64_t os[4], const int64_t st[4],
                         size_t esz) {
    switch (esz) {
    case 1: PERMUTE_COPY(uint8_t); break;
    case 4: PERMUTE_COPY(uint32_t); break;
    case 8: PERMUTE_COPY(uint64_t); break;
    default: break;
    }
}
#undef PERMUTE_COPY

/* in: x; i[0], i[1] = the dims to swap; out: a contiguous copy with those dims swapped */
bcml_status bcml_transpose_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err) {
    (void)ctx;
    const bcml_tensor *x = n->in[0];
    bcml_status st;
    if ((st = bcml_norm_dim(&n->args.i[0], x->ndim, "transpose: dim0", err)) ||
        (st = bcml_norm_dim(&n->args.i[1], x->ndim, "transpose: dim1", err)))
        return st;
    int64_t d0 = n->args.i[0], d1 = n->args.i[1];
    int64_t oshape[BCML_MAX_DIMS];
    for (int d = 0; d < x->ndim; d++) oshape[d] = x->shape[d];
    if (x->ndim > 0) { oshape[d0] = x->shape[d1]; oshape[d1] = x->shape[d0]; }
    if ((st = bcml_tensor_new(&out[0], x->dtype, x->ndim, oshape, 0, err))) return st;
    int64_t os[4], strides[4];
    transpose_plan(x, d0, d1, os, strides);
    permute_copy(bcml_data(out[0]), bcml_data(x), os, strides, bcml_dtype_size(x->dtype));
    return BCML_OK;
}

bcml_status bcml_transpose_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err) {
    bcml_status st = require_float_grad(dout, "transpose", err);
    if (st) return st;
    int64_t os[4], s[4];
    transpose_plan(n->in[0], n->args.i[0], n->args.i[1], os, s);
    const float *g = bcml_f32(dout); /* (os0, os1, os2, os3): the output's layout */
    float *dx = bcml_f32(din[0]);    /* the input's layout */
    for (int64_t a = 0; a < os[0]; a++)
        for (int64_t b = 0; b < os[1]; b++)
            for (int64_t c0 = 0; c0 < os[2]; c0 += TBLK)
                for (int64_t e0 = 0; e0 < os[3]; e0 += TBLK) {
                    int64_t c1 = c0 + TBLK < os[2] ? c0 + TBLK : os[2];
                    int64_t e1 = e0 + TBLK < os[3] ? e0 + TBLK : os[3];
                    for (int64_t c = c0; c < c1; c++) {
                        const float *grow = g + ((a * os[1] + b) * os[2] + c) * os[3];
                        float *drow = dx + a * s[0] + b * s[1] + c * s[2];
                        for (int64_t e = e0; e < e1; e++) drow[e * s[3]] += grow[e];
                    }
                }
    return BCML_OK;
}
#undef TBLK

/* ---- reshape ----------------------------------------------------------------------------- */
/* in: x; i[0..ndim) = the new shape, i[4] = ndim; out: a view of x's storage (no copy) */
bcml_status bcml_reshape_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err) {
    (void)ctx;
    const bcml_tensor *x = n->in[0];
    int64_t ndim = n->args.i[4];
    if (ndim < 0 || ndim > BCML_MAX_DIMS)
        return bcml_fail(err, BCML_EVALUE, "reshape: shape must have 0 to %d dimensions, got %lld",
                         BCML_MAX_DIMS, (long long)ndim);
    int64_t numel;
    bcml_status st = bcml_check_shape((int)ndim, n->args.i, x->dtype, &numel, "reshape: shape", err);
    if (st) return st;
    if (numel != x->numel) {
        char bx[64], bs[96];
        size_t used = (size_t)snprintf(bs, sizeof bs, "(");
        for (int d = 0; d < ndim && used < sizeof bs; d++)
            used += (size_t)snprintf(bs + used, sizeof bs - used, d ? ", %lld" : "%lld", (long long)n->args.i[d]);
        if (used < sizeof bs) snprintf(bs + used, sizeof bs - used, ndim == 1 ? ",)" : ")");
        return bcml_fail(err, BCML_EVALUE, "reshape: shape %s is invalid for input of shape %s (size %lld)",
                         bs, bcml_shape_str(x, bx, sizeof bx), (long long)x->numel);
    }
    return bcml_tensor_alias(&out[0], x, (int)ndim, n->args.i, x->offset, err);
}

bcml_status bcml_reshape_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err) {
    (void)n;
    bcml_status st = require_float_grad(dout, "reshape", err);
    if (st) return st;
    const float *g = bcml_f32(dout);
    float *dx = bcml_f32(din[0]);
    for (int64_t i = 0; i < dout->numel; i++) dx[i] += g[i];
    return BCML_OK;
}

/* ---- slice ------------------------------------------------------------------------------- */
typedef struct { int64_t dim, start, stop, step, len, outer, n, inner; } slice_plan;

static bcml_status slice_check(const bcml_tensor *x, bcml_args *a, slice_plan *p, bcml_err *err) {
    if (x->ndim == 0)
        return bcml_fail(err, BCML_EINDEX, "slice: cannot slice a 0-d tensor (input must have at least 1 dimension)");
    bcml_status st = bcml_norm_dim(&a->i[0], x->ndim, "slice: dim", err);
    if (st) return st;
    p->dim = a->i[0];
    p->start = a->i[1];
    p->stop = a->i[2];
    p->step = a->i[3];
    p->n = x->shape[p->dim];
    if (p->step <= 0)
        return bcml_fail(err, BCML_EVALUE, "slice: step must be greater than zero, got %lld", (long long)p->step);
    if (p->start < 0 || p->start > p->n)
        return bcml_fail(err, BCML_EINDEX, "slice: start %lld is out of range for dimension %lld of size %lld",
                         (long long)p->start, (long long)p->dim, (long long)p->n);
    if (p->stop < p->start || p->stop > p->n)
        return bcml_fail(err, BCML_EINDEX,
                         "slice: stop %lld is out of range for dimension %lld of size %lld with start %lld",
                         (long long)p->stop, (long long)p->dim, (long long)p->n, (long long)p->start);
    /* ceil((stop - start) / step) without forming stop - start + step - 1, which overflows for
     * a step near INT64_MAX (NumPy: arange(10)[0:5:2**63 - 1] is [0]) */
    p->len = p->stop == p->start ? 0 : (p->stop - p->start - 1) / p->step + 1;
    p->outer = prod(x->shape, 0, (int)p->dim);
    p->inner = prod(x->shape, (int)p->dim + 1, x->ndim);
    return BCML_OK;
}

/* in: x; i[0] = dim, i[1] = start, i[2] = stop, i[3] = step (0 <= start <= stop <= size, step > 0).
 * A slice that is one contiguous block of x (nothing but size-1 dims before dim, step 1 or at
 * most one row: x[a:b], x[k]) is a view of x's storage; others are copies. */
bcml_status bcml_slice_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err) {
    (void)ctx;
    const bcml_tensor *x = n->in[0];
    slice_plan p = {0};
    bcml_status st = slice_check(x, &n->args, &p, err);
    if (st) return st;
    int64_t oshape[BCML_MAX_DIMS];
    for (int d = 0; d < x->ndim; d++) oshape[d] = x->shape[d];
    oshape[p.dim] = p.len;
    size_t esz = bcml_dtype_size(x->dtype);
    if (p.outer == 1 && (p.step == 1 || p.len <= 1))
        return bcml_tensor_alias(&out[0], x, x->ndim, oshape,
                                 x->offset + (size_t)(p.start * p.inner) * esz, err);
    if ((st = bcml_tensor_new(&out[0], x->dtype, x->ndim, oshape, 0, err))) return st;
    gather_rows(bcml_data(out[0]), bcml_data(x), NULL, p.start, p.step, p.outer, p.n, p.len, p.inner, esz);
    return BCML_OK;
}

bcml_status bcml_slice_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err) {
    bcml_status st = require_float_grad(dout, "slice", err);
    if (st) return st;
    slice_plan p = {0};
    if ((st = slice_check(n->in[0], &n->args, &p, err))) return st;
    scatter_add_rows(bcml_f32(din[0]), bcml_f32(dout), NULL, p.start, p.step, p.outer, p.n, p.len, p.inner);
    return BCML_OK;
}

/* ---- index_select ------------------------------------------------------------------------- */
/* Checks index (int64, 0-d or 1-D) against size n and writes the wrapped rows into rows (K). */
static bcml_status index_rows(int64_t *rows, const bcml_tensor *idx, int64_t dim, int64_t n, bcml_err *err) {
    const int64_t *ix = bcml_i64(idx);
    for (int64_t k = 0; k < idx->numel; k++) {
        int64_t r = ix[k];
        if (r < -n || r >= n)
            return bcml_fail(err, BCML_EINDEX, "index_select: index %lld is out of bounds for dimension %lld with size %lld",
                             (long long)r, (long long)dim, (long long)n);
        rows[k] = r < 0 ? r + n : r;
    }
    return BCML_OK;
}

static bcml_status index_check(const bcml_node *n, int64_t *dim, bcml_err *err) {
    const bcml_tensor *x = n->in[0], *idx = n->in[1];
    bcml_status st = bcml_require_dtype(idx, BCML_INT64, "index_select", "index", err);
    if (st) return st;
    if (idx->ndim > 1) {
        char b[64];
        return bcml_fail(err, BCML_EVALUE, "index_select: index must be 1-D, got shape %s",
                         bcml_shape_str(idx, b, sizeof b));
    }
    if (x->ndim == 0)
        return bcml_fail(err, BCML_EINDEX, "index_select: input must have at least 1 dimension to be indexed");
    return bcml_norm_dim(dim, x->ndim, "index_select: dim", err);
}

/* in: x, index int64 (K) (negative entries count from the end); i[0] = dim;
 * out: x with dim replaced by K, row k = x's row index[k] along dim */
bcml_status bcml_index_select_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err) {
    (void)ctx;
    const bcml_tensor *x = n->in[0], *idx = n->in[1];
    bcml_status st = index_check(n, &n->args.i[0], err);
    if (st) return st;
    int64_t dim = n->args.i[0], K = idx->numel, N = x->shape[dim];
    int64_t *rows = bcml_alloc((size_t)K * sizeof *rows);
    if (!rows) return bcml_fail(err, BCML_ENOMEM, "index_select: out of memory for %lld indices", (long long)K);
    if ((st = index_rows(rows, idx, dim, N, err))) goto done;
    int64_t oshape[BCML_MAX_DIMS];
    for (int d = 0; d < x->ndim; d++) oshape[d] = x->shape[d];
    oshape[dim] = K;
    if ((st = bcml_tensor_new(&out[0], x->dtype, x->ndim, oshape, 0, err))) goto done;
    gather_rows(bcml_data(out[0]), bcml_data(x), rows, 0, 0, prod(x->shape, 0, (int)dim), N, K,
                prod(x->shape, (int)dim + 1, x->ndim), bcml_dtype_size(x->dtype));
done:
    bcml_free(rows);
    return st;
}

/* Duplicated indices accumulate. The index is re-checked: it may have changed since forward. */
bcml_status bcml_index_select_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err) {
    bcml_status st = require_float_grad(dout, "index_select", err);
    if (st || !din[0]) return st;
    const bcml_tensor *x = n->in[0], *idx = n->in[1];
    int64_t dim = n->args.i[0], K = idx->numel, N = x->shape[dim];
    if (dout->numel != prod(x->shape, 0, (int)dim) * K * prod(x->shape, (int)dim + 1, x->ndim))
        return bcml_fail(err, BCML_ERUNTIME, "index_select backward: the index was modified after forward");
    int64_t *rows = bcml_alloc((size_t)K * sizeof *rows);
    if (!rows) return bcml_fail(err, BCML_ENOMEM, "index_select backward: out of memory");
    if (!(st = index_rows(rows, idx, dim, N, err)))
        scatter_add_rows(bcml_f32(din[0]), bcml_f32(dout), rows, 0, 0, prod(x->shape, 0, (int)dim), N, K,
                         prod(x->shape, (int)dim + 1, x->ndim));
    bcml_free(rows);
    return st;
}

/* ---- mask_select ------------------------------------------------------------------------- */
/* in: x (N, ...), mask bool (N); out (count, ...): the rows of x where mask is true.
 * When recording, saved[0] = the selected row numbers (int64 (count)). */
bcml_status bcml_mask_select_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err) {
    (void)ctx;
    const bcml_tensor *x = n->in[0], *mask = n->in[1];
    bcml_status st = bcml_require_dtype(mask, BCML_BOOL, "mask_select", "mask", err);
    if (st) return st;
    char bx[64], bm[64];
    if (x->ndim == 0)
        return bcml_fail(err, BCML_EINDEX, "mask_select: input must have at least 1 dimension to be indexed by a mask");
    if (mask->ndim != 1 || mask->shape[0] != x->shape[0])
        return bcml_fail(err, BCML_EINDEX,
                         "mask_select: the shape of the mask %s does not match the first dimension of the indexed tensor %s",
                         bcml_shape_str(mask, bm, sizeof bm), bcml_shape_str(x, bx, sizeof bx));
    const uint8_t *m = bcml_u8(mask);
    int64_t N = x->shape[0], count = 0;
    for (int64_t r = 0; r < N; r++) count += m[r] != 0;
    bcml_tensor *rows = NULL; /* (count) */
    int64_t rshape[1] = {count};
    if ((st = bcml_tensor_new(&rows, BCML_INT64, 1, rshape, 0, err))) return st;
    int64_t *rw = bcml_i64(rows);
    for (int64_t r = 0, k = 0; r < N; r++)
        if (m[r]) rw[k++] = r;
    int64_t oshape[BCML_MAX_DIMS];
    for (int d = 0; d < x->ndim; d++) oshape[d] = x->shape[d];
    oshape[0] = count;
    if ((st = bcml_tensor_new(&out[0], x->dtype, x->ndim, oshape, 0, err))) {
        bcml_tensor_unref(rows);
        return st;
    }
    gather_rows(bcml_data(out[0]), bcml_data(x), rw, 0, 0, 1, N, count, prod(x->shape, 1, x->ndim),
                bcml_dtype_size(x->dtype));
    if (n->recording) n->saved[0] = rows;
    else bcml_tensor_unref(rows);
    return BCML_OK;
}

bcml_status bcml_mask_select_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err) {
    bcml_status st = require_float_grad(dout, "mask_select", err);
    if (st || !din[0]) return st;
    const bcml_tensor *x = n->in[0], *rows = n->saved[0];
    scatter_add_rows(bcml_f32(din[0]), bcml_f32(dout), bcml_i64(rows), 0, 0, 1, x->shape[0], rows->numel,
                     prod(x->shape, 1, x->ndim));
    return BCML_OK;
}

/* ---- cat --------------------------------------------------------------------------------- */
/* in: x_0 .. x_{n-1}, same dtype and ndim, same shape except along dim; i[0] = dim */
bcml_status bcml_cat_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err) {
    (void)ctx;
    const bcml_tensor *x0 = n->in[0];
    char b0[64], bk[64];
    for (int k = 0; k < n->n_in; k++) {
        const bcml_tensor *x = n->in[k];
        if (!x) return bcml_fail(err, BCML_ETYPE, "cat: tensors[%d] must be a tensor, got None", k);
        if (x->ndim == 0)
            return bcml_fail(err, BCML_EVALUE, "cat: zero-dimensional tensor (tensors[%d]) cannot be concatenated", k);
        if (x->dtype != x0->dtype)
            return bcml_fail(err, BCML_ETYPE, "cat: tensors[%d] is %s but tensors[0] is %s (all tensors must have the same dtype)",
                             k, bcml_dtype_name(x->dtype), bcml_dtype_name(x0->dtype));
    }
    bcml_status st = bcml_norm_dim(&n->args.i[0], x0->ndim, "cat: dim", err);
    if (st) return st;
    int64_t dim = n->args.i[0], total = 0;
    for (int k = 0; k < n->n_in; k++) {
        const bcml_tensor *x = n->in[k];
        int ok = x->ndim == x0->ndim;
        for (int d = 0; ok && d < x->ndim; d++) ok = d == dim || x->shape[d] == x0->shape[d];
        if (!ok)
            return bcml_fail(err, BCML_EVALUE,
                             "cat: tensors[%d] of shape %s does not match tensors[0] of shape %s (sizes must agree except in dimension %lld)",
                             k, bcml_shape_str(x, bk, sizeof bk), bcml_shape_str(x0, b0, sizeof b0), (long long)dim);
        total += x->shape[dim];
    }
    int64_t oshape[BCML_MAX_DIMS];
    for (int d = 0; d < x0->ndim; d++) oshape[d] = x0->shape[d];
    oshape[dim] = total;
    if ((st = bcml_tensor_new(&out[0], x0->dtype, x0->ndim, oshape, 0, err))) return st;
    size_t esz = bcml_dtype_size(x0->dtype);
    int64_t outer = prod(x0->shape, 0, (int)dim), inner = prod(x0->shape, (int)dim + 1, x0->ndim);
    char *dst = bcml_data(out[0]); /* (outer, total, inner) */
    for (int64_t o = 0; o < outer; o++)
        for (int k = 0; k < n->n_in; k++) {
            size_t block = (size_t)(n->in[k]->shape[dim] * inner) * esz; /* x_k (outer, L_k, inner) */
            memcpy(dst, (const char *)bcml_data(n->in[k]) + (size_t)o * block, block);
            dst += block;
        }
    return BCML_OK;
}

bcml_status bcml_cat_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err) {
    bcml_status st = require_float_grad(dout, "cat", err);
    if (st) return st;
    const bcml_tensor *x0 = n->in[0];
    int64_t dim = n->args.i[0];
    int64_t outer = prod(x0->shape, 0, (int)dim), inner = prod(x0->shape, (int)dim + 1, x0->ndim);
    const float *g = bcml_f32(dout); /* (outer, total, inner) */
    for (int64_t o = 0; o < outer; o++)
        for (int k = 0; k < n->n_in; k++) {
            int64_t block = n->in[k]->shape[dim] * inner;
            if (din[k]) {
                float *dx = bcml_f32(din[k]) + o * block; /* (outer, L_k, inner) */
                for (int64_t i = 0; i < block; i++) dx[i] += g[i];
            }
            g += block;
        }
    return BCML_OK;
}
