// sources: csrc/core/*.c (+ -lopenblas)
/* fuzz_tensor.c: shape checks and tensor creation: bcml_check_shape, bcml_tensor_new,
 * bcml_tensor_new_like, bcml_tensor_alias, bcml_tensor_wrap, and the small shape helpers
 * (bcml_broadcast_shape, bcml_norm_dim, bcml_shape_str), with fuzzed ndim, shapes, dtypes (also
 * values outside the enum) and byte offsets.
 *
 * An input is a list of up to 24 actions, each u8 action (% 9) followed by its fields:
 *   0 check_shape  i8 ndim (-128..127), u8 dtype (raw), ndim' x fz_int dims (ndim' = ndim
 *                  clamped to 0..8)
 *   1 tensor_new   i8 ndim, u8 dtype (raw), dims as above, u8 zero
 *   2 new_like     u8 tensor (pool index), u8 dtype (raw), u8 zero
 *   3 alias        u8 tensor, i8 ndim, dims, u8 offset kind (0: fz_int, 1: 8 raw bytes,
 *                  else: u8 elements), [offset]
 *   4 wrap         i8 ndim, u8 dtype (raw), dims, u16 buffer bytes (the harness's own buffer)
 *   5 broadcast    u8 tensor, u8 tensor
 *   6 helpers      u8 tensor, fz_int dim, u8 buffer size for shape_str
 *   7 pin          u8 tensor, u8 requires grad (a pinned snapshot, bcml_tensor_pin)
 *   8 set_data     u8 tensor, u8 source (`.data =`, bcml_tensor_set_data)
 * Checked: every call returns BCML_OK or an error with a message; a tensor it returns has the
 * shape asked for, numel = the product of its dims, fits its storage and its bytes are all
 * writable; zeroed memory is zero; a wrapped buffer's release runs exactly once. */
#include "fuzz_common.h"

#define POOL_MAX 16
#define BUF_MAX 4096

static int releases;
static void release(void *owner) {
    releases++;
    free(owner);
}

static int read_shape(fz *f, int *ndim_out, int64_t shape[8]) {
    int ndim = (int8_t)fz_u8(f);
    int nread = ndim < 0 ? 0 : ndim > 8 ? 8 : ndim;
    for (int d = 0; d < 8; d++) shape[d] = d < nread ? fz_int(f) : 1;
    *ndim_out = ndim;
    return nread;
}

static int valid_dtype(int dt) { return dt == BCML_FLOAT32 || dt == BCML_INT64 || dt == BCML_BOOL; }

/* The oracle of bcml_check_shape: 0 <= ndim <= 4, dims >= 0, and the byte size is at most
 * BCML_TENSOR_BYTES_MAX (16 MiB in these builds; physical memory is larger). */
static int shape_ok(int ndim, const int64_t *shape, int dt, int64_t *numel) {
    if (ndim < 0 || ndim > BCML_MAX_DIMS || !valid_dtype(dt)) return 0;
    unsigned __int128 n = 1;
    int zero = 0;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0) return 0;
        if (shape[d] == 0) zero = 1;
    }
    if (zero) { *numel = 0; return 1; }
    for (int d = 0; d < ndim; d++) {
        n *= (uint64_t)shape[d];
        if (n > ((unsigned __int128)1 << 64)) return 0;
    }
    if (n * bcml_dtype_size((bcml_dtype)dt) > (unsigned __int128)(16u << 20)) return 0;
    *numel = (int64_t)n;
    return 1;
}

static void check_layout(const bcml_tensor *t) {
    FZ_ASSERT(t->offset <= t->storage->nbytes && bcml_nbytes(t) <= t->storage->nbytes - t->offset,
              "%zu bytes at %zu in %zu", bcml_nbytes(t), t->offset, t->storage->nbytes);
    FZ_ASSERT(t->offset % bcml_dtype_size(t->dtype) == 0, "misaligned offset %zu", t->offset);
    uint8_t *b = bcml_data(t);
    size_t nb = bcml_nbytes(t);
    if (nb) { b[0] ^= 1; b[nb - 1] ^= 1; b[0] ^= 1; b[nb - 1] ^= 1; }
}

static void check_tensor(const bcml_tensor *t, int ndim, const int64_t *shape, int dt, int zero) {
    FZ_ASSERT(t && t->ndim == ndim && (int)t->dtype == dt, "header");
    for (int d = 0; d < ndim; d++) FZ_ASSERT(t->shape[d] == shape[d], "dim %d", d);
    int64_t n = fz_numel(ndim, shape);
    FZ_ASSERT(t->numel == n, "numel %lld vs %lld", (long long)t->numel, (long long)n);
    FZ_ASSERT(t->offset <= t->storage->nbytes && bcml_nbytes(t) <= t->storage->nbytes - t->offset,
              "%zu bytes at %zu in %zu", bcml_nbytes(t), t->offset, t->storage->nbytes);
    FZ_ASSERT(t->offset % bcml_dtype_size(t->dtype) == 0, "misaligned offset %zu", t->offset);
    uint8_t *b = bcml_data(t);
    size_t nb = bcml_nbytes(t);
    if (zero)
        for (size_t i = 0; i < nb; i++) FZ_ASSERT(b[i] == 0, "byte %zu of a zeroed tensor", i);
    if (nb) { b[0] ^= 1; b[nb - 1] ^= 1; b[0] ^= 1; b[nb - 1] ^= 1; }
    FZ_ASSERT(!t->requires_grad && !t->grad && !t->grad_fn, "a new tensor has autograd state");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz f = {data, size};
    bcml_tensor *pool[POOL_MAX];
    int np = 0;
    releases = 0;
    int wraps = 0;
    for (int step = 0; step < 24 && f.n; step++) {
        bcml_err err = {{0}};
        bcml_status st;
        int64_t shape[8], numel = -1, want = 0;
        int ndim;
        uint8_t action = fz_u8(&f) % 9;
        bcml_tensor *t = NULL;
        switch (action) {
        case 0: {
            read_shape(&f, &ndim, shape);
            int dt = fz_u8(&f);
            (void)read_shape;
            int ok = shape_ok(ndim, shape, dt, &want);
            st = bcml_check_shape(ndim, shape, (bcml_dtype)dt, &numel, (f.n & 1) ? "x" : NULL, &err);
            FZ_CHECK_STATUS(st, err, "check_shape");
            FZ_ASSERT((st == BCML_OK) == ok, "check_shape says %d, the oracle %d", (int)st, ok);
            if (ok) FZ_ASSERT(numel == want, "numel %lld, expected %lld", (long long)numel, (long long)want);
            break;
        }
        case 1: {
            read_shape(&f, &ndim, shape);
            int dt = fz_u8(&f), zero = fz_u8(&f) & 1;
            int ok = shape_ok(ndim, shape, dt, &want);
            st = bcml_tensor_new(&t, (bcml_dtype)dt, ndim, shape, zero, &err);
            FZ_CHECK_STATUS(st, err, "tensor_new");
            FZ_ASSERT((st == BCML_OK) == ok || st == BCML_ENOMEM, "tensor_new says %d, the oracle %d", (int)st, ok);
            if (!st) check_tensor(t, ndim, shape, dt, zero);
            break;
        }
        case 2: {
            uint8_t k = fz_u8(&f);
            int dt = fz_u8(&f), zero = fz_u8(&f) & 1;
            if (!np) break;
            const bcml_tensor *like = pool[k % np];
            int ok = shape_ok(like->ndim, like->shape, dt, &want);
            st = bcml_tensor_new_like(&t, like, (bcml_dtype)dt, zero, &err);
            FZ_CHECK_STATUS(st, err, "tensor_new_like");
            FZ_ASSERT((st == BCML_OK) == ok || st == BCML_ENOMEM, "new_like says %d, the oracle %d", (int)st, ok);
            if (!st) check_tensor(t, like->ndim, like->shape, dt, zero);
            break;
        }
        case 3: {
            uint8_t k = fz_u8(&f);
            read_shape(&f, &ndim, shape);
            uint8_t kind = fz_u8(&f);
            size_t offset = kind == 0 ? (size_t)fz_int(&f) : kind == 1 ? (size_t)fz_u64(&f) : (size_t)fz_u8(&f);
            if (!np) break;
            const bcml_tensor *base = pool[k % np];
            if (kind > 1) offset *= bcml_dtype_size(base->dtype);
            int ok = shape_ok(ndim, shape, base->dtype, &want);
            unsigned __int128 end = (unsigned __int128)offset + (unsigned __int128)want * bcml_dtype_size(base->dtype);
            if (ok && (end > base->storage->nbytes || offset % bcml_dtype_size(base->dtype))) ok = 0;
            st = bcml_tensor_alias(&t, base, ndim, shape, offset, &err);
            FZ_CHECK_STATUS(st, err, "tensor_alias");
            FZ_ASSERT((st == BCML_OK) == ok, "alias says %d, the oracle %d (offset %zu)", (int)st, ok, offset);
            if (!st) {
                FZ_ASSERT(t->storage == base->storage && t->offset == offset, "alias storage");
                check_tensor(t, ndim, shape, base->dtype, 0);
            }
            break;
        }
        case 4: {
            read_shape(&f, &ndim, shape);
            int dt = fz_u8(&f);
            size_t bufbytes = fz_u16(&f) % (BUF_MAX + 1);
            int ok = shape_ok(ndim, shape, dt, &want);
            /* wrap trusts its caller for the buffer's size: only ask for what the buffer holds */
            if (ok && (size_t)want * bcml_dtype_size((bcml_dtype)dt) > bufbytes) break;
            void *buf = malloc(bufbytes ? bufbytes : 1);
            if (!buf) break;
            memset(buf, 0, bufbytes);
            st = bcml_tensor_wrap(&t, buf, (bcml_dtype)dt, ndim, shape, buf, release, &err);
            FZ_CHECK_STATUS(st, err, "tensor_wrap");
            FZ_ASSERT((st == BCML_OK) == ok, "wrap says %d, the oracle %d", (int)st, ok);
            if (st) free(buf);
            else {
                wraps++;
                FZ_ASSERT(bcml_data(t) == buf, "wrap moved the data");
                check_tensor(t, ndim, shape, dt, 1);
            }
            break;
        }
        case 5: {
            uint8_t a = fz_u8(&f), b = fz_u8(&f);
            if (!np) break;
            const bcml_tensor *x = pool[a % np], *y = pool[b % np];
            int ond = -1;
            int64_t os[BCML_MAX_DIMS];
            st = bcml_broadcast_shape(x, y, &ond, os, &err);
            FZ_CHECK_STATUS(st, err, "broadcast_shape");
            int nd = x->ndim > y->ndim ? x->ndim : y->ndim, ok = 1;
            for (int d = 0; d < nd; d++) {
                int dx = d - (nd - x->ndim), dy = d - (nd - y->ndim);
                int64_t sx = dx >= 0 ? x->shape[dx] : 1, sy = dy >= 0 ? y->shape[dy] : 1;
                if (sx != sy && sx != 1 && sy != 1) ok = 0;
                else if (!st) FZ_ASSERT(os[d] == (sx == 1 ? sy : sx), "broadcast dim %d", d);
            }
            FZ_ASSERT((st == BCML_OK) == ok, "broadcast says %d, the oracle %d", (int)st, ok);
            if (!st) FZ_ASSERT(ond == nd, "broadcast ndim");
            break;
        }
        case 7: {
            uint8_t k = fz_u8(&f), rg = fz_u8(&f) & 1;
            if (!np) break;
            bcml_tensor *base = pool[k % np];
            base->requires_grad = rg && base->dtype == BCML_FLOAT32;
            st = bcml_tensor_pin(&t, base, &err);
            FZ_CHECK_STATUS(st, err, "tensor_pin");
            if (!st) {
                FZ_ASSERT(t->storage == base->storage && t->offset == base->offset && t->numel == base->numel &&
                          t->dtype == base->dtype && t->requires_grad == base->requires_grad, "pin");
                const bcml_tensor *owner = base->base ? base->base : (base->requires_grad && !base->grad_fn) ? base : t;
                FZ_ASSERT(bcml_grad_owner(t) == owner, "pin's gradient owner");
            }
            break;
        }
        case 8: {
            uint8_t a = fz_u8(&f), b = fz_u8(&f);
            if (!np) break;
            bcml_tensor *dst = pool[a % np];
            const bcml_tensor *src = pool[b % np];
            bcml_storage *old = dst->storage;
            int64_t v0 = bcml_tensor_version(dst);
            int same_dtype = dst->dtype == src->dtype;
            int same_storage = old == src->storage;
            st = bcml_tensor_set_data(dst, src, &err);
            FZ_CHECK_STATUS(st, err, "tensor_set_data");
            FZ_ASSERT((st == BCML_OK) == same_dtype, "set_data says %d for dtypes %s and %s", (int)st,
                      bcml_dtype_name(dst->dtype), bcml_dtype_name(src->dtype));
            if (!st) {
                FZ_ASSERT(dst->storage == src->storage && dst->offset == src->offset && dst->numel == src->numel &&
                          dst->ndim == src->ndim, "set_data result");
                if (same_storage) FZ_ASSERT(bcml_tensor_version(dst) > v0, "set_data did not bump the version");
                check_layout(dst);
            }
            break;
        }
        default: {
            uint8_t a = fz_u8(&f);
            int64_t dim = fz_int(&f), d0 = dim;
            size_t n = 1 + fz_u8(&f) % 64;
            if (!np) break;
            const bcml_tensor *x = pool[a % np];
            st = bcml_norm_dim(&dim, x->ndim, "dim", &err);
            FZ_CHECK_STATUS(st, err, "norm_dim");
            int lim = x->ndim ? x->ndim : 1;
            int ok = d0 >= -lim && d0 < lim;
            FZ_ASSERT((st == BCML_OK) == ok, "norm_dim says %d, the oracle %d", (int)st, ok);
            if (!st) FZ_ASSERT(dim >= 0 && dim < lim && (dim == d0 || dim == d0 + lim), "norm_dim value");
            char *buf = malloc(n);
            if (!buf) break;
            const char *s = bcml_shape_str(x, buf, n);
            FZ_ASSERT(s == buf && memchr(buf, 0, n) != NULL, "shape_str is not terminated");
            free(buf);
            break;
        }
        }
        if (t) {
            if (np < POOL_MAX) pool[np++] = t;
            else bcml_tensor_unref(t);
        }
    }
    for (int k = 0; k < np; k++) bcml_tensor_unref(pool[k]);
    FZ_ASSERT(releases == wraps, "%d wrapped buffers, %d releases", wraps, releases);
    return 0;
}
