// sources: csrc/core/*.c (+ -lopenblas)
/* fuzz_ops.c: the op dispatcher, bcml_apply, with fuzzed ops, inputs and arguments, then
 * bcml_backward through what the ops recorded.
 *
 * One input is a short program:
 *   header   u8 flags (bit0: grad enabled, bit1: pass a generator, bit2: 2 kernel threads,
 *            bit3: a second backward, bit4: retain_graph), u64 generator seed
 *   u8 n_steps (1 + n % 4), then per step:
 *     u8 op (< 0xF0: op % BCML_OP_COUNT; 0xF0..0xFD: BCML_OP_COUNT + k; 0xFE: -1; 0xFF: INT_MIN)
 *     u8 n_in (n % 8: 0..7, the dispatcher must refuse what the op does not take)
 *     per input u8 src: 0xFF NULL, >= 0x80 an earlier tensor (pool[(src - 0x80) % pool size]:
 *       inputs and outputs of earlier steps), else a new tensor:
 *         u8 dtype (% 3), u8 ndim (% 5), ndim x u8 dim (all taken % 9 when the product is over
 *         NUMEL_CAP), u8 fill kind, u8 fill param, u8 flags (bit0 requires grad (float32),
 *         bit1 a view at an offset into a larger storage)
 *     u8 ni (% 9) then ni fz_int tags for args.i[]; u8 nf (% 5) then nf fz_double tags for args.f[]
 *     u8 mutation after the step (% 8): 1 an in-place write to a pool tensor (its storage's version
 *       is bumped), 2 `.data =` (bcml_tensor_set_data) of a pool tensor from another, 3 its
 *       .grad set to None, else none; then u8 target, u8 source (pool indices)
 *   u8 backward mode (% 4): 0 none, 1 from the sum of the last output that requires grad,
 *     2 from it with a seed gradient of its shape (fill kind, param), 3 with a mismatched seed
 *
 * The invariant: every call returns BCML_OK or an error status with a message; outputs are
 * well-formed tensors; nothing crashes, reads out of bounds, hits undefined behaviour, leaks or
 * hangs (libFuzzer's -timeout). Tensor sizes are capped by building the core with
 * -DBCML_TENSOR_BYTES_MAX (run.sh), so "too big" fails fast instead of allocating gigabytes. */
#include "fuzz_common.h"

#define NUMEL_CAP 4096
#define POOL_MAX 48

typedef struct pool {
    bcml_tensor *t[POOL_MAX];
    int n;
} pool;

static void pool_add(pool *p, bcml_tensor *t) {
    if (p->n < POOL_MAX) p->t[p->n++] = t;
    else bcml_tensor_unref(t);
}

/* Fills n elements of dtype dt: kind selects the distribution, param its scale. */
static void fill(void *data, bcml_dtype dt, int64_t n, uint8_t kind, uint8_t param, uint64_t *s) {
    for (int64_t i = 0; i < n; i++) {
        uint64_t r = fz_mix(s);
        double v;
        switch (kind % 8) {
        case 0: v = 0.0; break;
        case 1: v = ((double)(r >> 11) / 9007199254740992.0 * 2.0 - 1.0) * (param + 1) / 16.0; break;
        case 2: v = (double)(r >> 11) / 9007199254740992.0; break;                /* [0, 1) */
        case 3: v = param ? (double)(r % param) : 0.0; break;                     /* [0, param) */
        case 4: v = (double)((int64_t)(r % (2u * param + 1u)) - param); break;    /* [-p, p] */
        case 5: v = (r & 3) ? (double)fz_float_special[(r >> 8) % 12] : (double)(int)(r % 7) - 3; break;
        case 6: v = (double)param / 8.0 - 8.0; break;                             /* a constant */
        default: v = 0.0; break;                                                  /* raw bits */
        }
        switch (dt) {
        case BCML_FLOAT32: {
            float x = (float)v;
            if (kind % 8 == 7) {
                uint32_t b = (uint32_t)r;
                memcpy(&x, &b, sizeof x);
            }
            ((float *)data)[i] = x;
            break;
        }
        case BCML_INT64: {
            int64_t x;
            if (kind % 8 == 7) x = (int64_t)r;
            else if (kind % 8 == 5) x = fz_int_special[(r >> 8) % 31];
            else x = isnan(v) ? 0 : (int64_t)v;
            ((int64_t *)data)[i] = x;
            break;
        }
        case BCML_BOOL:
            ((uint8_t *)data)[i] = kind % 8 == 6 ? (uint8_t)(param & 1) : (uint8_t)((r >> 17) & 1);
            break;
        }
    }
}

static bcml_tensor *new_tensor(fz *f, uint64_t *seed) {
    bcml_dtype dt = (bcml_dtype)(fz_u8(f) % 3);
    int ndim = fz_u8(f) % 5;
    int64_t shape[BCML_MAX_DIMS];
    int64_t numel = 1;
    for (int d = 0; d < ndim; d++) numel *= (shape[d] = fz_u8(f));
    if (numel > NUMEL_CAP)
        for (int d = 0; d < ndim; d++) shape[d] %= 9;
    uint8_t kind = fz_u8(f), param = fz_u8(f), flags = fz_u8(f);
    bcml_err err;
    bcml_tensor *t = NULL;
    bcml_status st;
    if (flags & 2) { /* a view at an offset into a larger storage */
        int64_t n = 1;
        for (int d = 0; d < ndim; d++) n *= shape[d];
        int64_t extra = 1 + (flags >> 4), big[1] = {n + extra};
        bcml_tensor *base = NULL;
        st = bcml_tensor_new(&base, dt, 1, big, 0, &err);
        FZ_CHECK_STATUS(st, err, "tensor_new (base)");
        if (st) return NULL;
        fill(bcml_data(base), dt, big[0], kind, param, seed);
        st = bcml_tensor_alias(&t, base, ndim, shape, (size_t)extra * bcml_dtype_size(dt), &err);
        FZ_CHECK_STATUS(st, err, "tensor_alias");
        bcml_tensor_unref(base);
        if (st) return NULL;
    } else {
        st = bcml_tensor_new(&t, dt, ndim, shape, 0, &err);
        FZ_CHECK_STATUS(st, err, "tensor_new");
        if (st) return NULL;
        fill(bcml_data(t), dt, t->numel, kind, param, seed);
    }
    t->requires_grad = (flags & 1) && dt == BCML_FLOAT32;
    return t;
}

/* An output must be a well-formed tensor whose bytes are all readable. */
static void check_tensor(const bcml_tensor *t, const char *what) {
    FZ_ASSERT(t != NULL, "%s is NULL", what);
    FZ_ASSERT(t->ndim >= 0 && t->ndim <= BCML_MAX_DIMS, "%s: ndim %d", what, t->ndim);
    FZ_ASSERT(t->dtype == BCML_FLOAT32 || t->dtype == BCML_INT64 || t->dtype == BCML_BOOL,
              "%s: dtype %d", what, (int)t->dtype);
    for (int d = 0; d < t->ndim; d++)
        FZ_ASSERT(t->shape[d] >= 0, "%s: dim %d is %lld", what, d, (long long)t->shape[d]);
    int64_t n = fz_numel(t->ndim, t->shape);
    FZ_ASSERT(n == t->numel, "%s: numel %lld for a shape of %lld elements", what,
              (long long)t->numel, (long long)n);
    FZ_ASSERT(t->storage && t->offset + bcml_nbytes(t) <= t->storage->nbytes,
              "%s: %zu bytes at offset %zu in a storage of %zu", what, bcml_nbytes(t), t->offset,
              t->storage ? t->storage->nbytes : 0);
    FZ_ASSERT(t->requires_grad == 0 || t->dtype == BCML_FLOAT32, "%s: a %s tensor requires grad",
              what, bcml_dtype_name(t->dtype));
    volatile uint8_t acc = 0;
    const uint8_t *b = bcml_data(t);
    for (size_t i = 0; i < bcml_nbytes(t); i++) acc ^= b[i];
    (void)acc;
}

/* What Python may do to a tensor between ops: an in-place write, `.data =`, zero_grad. */
static void mutate(fz *f, pool *p) {
    uint8_t kind = fz_u8(f) % 8, a = fz_u8(f), b = fz_u8(f);
    if (!p->n || kind == 0 || kind > 3) return;
    bcml_tensor *t = p->t[a % p->n], *src = p->t[b % p->n];
    if (fz_trace())
        fprintf(stderr, "mutation %d of pool[%d] (from pool[%d])\n", kind, a % p->n, b % p->n);
    if (kind == 1) {
        bcml_tensor_bump_version(t);
    } else if (kind == 2) {
        bcml_err err = {{0}}; /* any tensor, as Python's `.data =` (a non-leaf too) */
        bcml_status st = bcml_tensor_set_data(t, src, &err);
        FZ_CHECK_STATUS(st, err, "set_data");
        FZ_ASSERT(st != BCML_OK || (t->storage == src->storage && t->numel == src->numel), "set_data");
    } else {
        bcml_grad_set(t, NULL);
    }
}

static int decode_op(uint8_t b) {
    if (b < 0xF0) return b % BCML_OP_COUNT;
    if (b == 0xFE) return -1;
    if (b == 0xFF) return INT32_MIN;
    return BCML_OP_COUNT + (b - 0xF0);
}

static void run_backward(fz *f, pool *p, uint64_t *seed, int twice, int retain) {
    uint8_t mode = fz_u8(f) % 4;
    if (!mode) return;
    bcml_tensor *root = NULL;
    for (int k = p->n - 1; k >= 0 && !root; k--)
        if (p->t[k]->requires_grad && p->t[k]->grad_fn) root = p->t[k];
    if (!root) return;
    bcml_err err = {{0}};
    bcml_status st;
    bcml_tensor *seedt = NULL;
    if (mode == 1) {
        bcml_ctx ctx = {.grad_enabled = 1, .gen = NULL};
        bcml_args a;
        memset(&a, 0, sizeof a);
        a.i[0] = -1; a.i[2] = 1; /* sum over everything */
        bcml_tensor *out[BCML_MAX_OUT] = {0};
        st = bcml_apply(&ctx, BCML_OP_SUM, &a, &root, 1, out, &err);
        FZ_CHECK_STATUS(st, err, "sum before backward");
        if (st) return;
        FZ_ASSERT(out[0]->numel == 1 && out[0]->requires_grad, "sum of a tensor that requires grad");
        pool_add(p, out[0]);
        root = out[0];
    } else {
        uint8_t kind = fz_u8(f), param = fz_u8(f);
        int64_t shape[BCML_MAX_DIMS];
        int ndim = root->ndim;
        for (int d = 0; d < ndim; d++) shape[d] = root->shape[d];
        bcml_dtype dt = BCML_FLOAT32;
        if (mode == 3) { /* a seed that does not match */
            dt = (bcml_dtype)(param % 3);
            if (ndim) shape[0] = (shape[0] + 1 + kind % 3) % 9;
            else { ndim = 1; shape[0] = kind % 3; }
        }
        st = bcml_tensor_new(&seedt, dt, ndim, shape, 0, &err);
        FZ_CHECK_STATUS(st, err, "seed gradient");
        if (st) return;
        fill(bcml_data(seedt), dt, seedt->numel, kind, param, seed);
    }
    for (int rep = 0; rep < 1 + twice; rep++) {
        err.msg[0] = 0;
        st = bcml_backward(root, seedt, retain, &err);
        FZ_CHECK_STATUS(st, err, "backward");
        if (fz_trace()) fprintf(stderr, "backward (mode %d): %s\n", mode, st ? err.msg : "ok");
        if (st) break;
    }
    bcml_tensor_unref(seedt);
    for (int k = 0; k < p->n; k++) {
        bcml_tensor *t = p->t[k], *g = bcml_grad_get(t);
        if (g) {
            check_tensor(g, "grad");
            FZ_ASSERT(g->dtype == BCML_FLOAT32 && g->numel == t->numel,
                      "a grad of %lld elements for a tensor of %lld", (long long)g->numel,
                      (long long)t->numel);
        }
        bcml_tensor_unref(g);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz f = {data, size};
    uint8_t flags = fz_u8(&f);
    uint64_t seed = fz_u64(&f);
    bcml_generator gen;
    bcml_gen_seed(&gen, seed);
    bcml_set_num_threads(flags & 4 ? 2 : 1);
    bcml_ctx ctx = {.grad_enabled = flags & 1, .gen = (flags & 2) ? &gen : NULL};
    pool p = {.n = 0};
    int nsteps = 1 + fz_u8(&f) % 4;
    for (int s = 0; s < nsteps; s++) {
        int op = decode_op(fz_u8(&f));
        int n_in = fz_u8(&f) % 8;
        bcml_tensor *in[8] = {0};
        for (int k = 0; k < n_in; k++) {
            uint8_t src = fz_u8(&f);
            if (src == 0xFF) continue;
            if (src >= 0x80 && p.n) {
                in[k] = p.t[(src - 0x80) % p.n];
            } else if (p.n < POOL_MAX) {
                in[k] = new_tensor(&f, &seed);
                if (in[k]) pool_add(&p, in[k]);
            }
        }
        bcml_args a;
        memset(&a, 0, sizeof a);
        int ni = fz_u8(&f) % 9;
        for (int j = 0; j < ni; j++) a.i[j] = fz_int(&f);
        int nf = fz_u8(&f) % 5;
        for (int j = 0; j < nf; j++) a.f[j] = fz_double(&f);
        bcml_tensor *out[BCML_MAX_OUT] = {0};
        bcml_err err = {{0}};
        bcml_status st = bcml_apply(&ctx, op, &a, in, n_in, out, &err);
        FZ_CHECK_STATUS(st, err, op >= 0 && op < BCML_OP_COUNT ? bcml_ops[op].name : "bad op");
        if (fz_trace())
            fprintf(stderr, "step %d: op %d (%s), %d inputs: %s\n", s, op,
                    op >= 0 && op < BCML_OP_COUNT ? bcml_ops[op].name : "bad op", n_in, st ? err.msg : "ok");
        if (st) {
            for (int k = 0; k < BCML_MAX_OUT; k++) FZ_ASSERT(!out[k], "an output after an error");
            goto mutate;
        }
        const bcml_opdef *def = &bcml_ops[op];
        for (int k = 0; k < def->n_out; k++) {
            check_tensor(out[k], def->name);
            if (k > 0 || !def->backward) FZ_ASSERT(!out[k]->requires_grad, "%s: output %d requires grad", def->name, k);
        }
        for (int k = 0; k < def->n_out; k++) pool_add(&p, out[k]);
    mutate:
        mutate(&f, &p);
    }
    run_backward(&f, &p, &seed, (flags & 8) != 0, (flags & 16) != 0);
    for (int k = 0; k < p.n; k++) bcml_tensor_unref(p.t[k]);
    return 0;
}
