/* elementwise.c: binary ops with NumPy broadcasting (add, sub, mul, div, cmp, where), scalar
 * ops (add_scalar, rdiv_scalar, pow_scalar, cmp_scalar), unary float ops (exp, log, abs,
 * clamp) and dtype casts.
 *
 * Broadcasting: every operand is viewed in the output's index space padded to 4 dims, with
 * element stride 0 along the dims where it is broadcast. Kernels take fast paths for the
 * common layouts (same shape, one operand a single element, one operand repeating along the
 * leading dims such as a bias (C) against (B, C)) and fall back to a 4-deep strided loop.
 * int64 arithmetic wraps around (computed in uint64: signed overflow is undefined in C). */
#include "ops.h"

#include <math.h>
#include <string.h>

/* ---- broadcasting plans ---------------------------------------------------------------- */
enum { P_SAME, P_A_SCALAR, P_B_SCALAR, P_A_TAIL, P_B_TAIL, P_GENERAL };

typedef struct {
    int kind;
    int ndim;
    int64_t shape[BCML_MAX_DIMS]; /* output shape */
    int64_t numel;
    int64_t d[4];                 /* output shape padded with leading 1s to 4 dims */
    int64_t sa[4], sb[4];         /* element strides of a and b in that space (0: broadcast) */
    int64_t period;               /* P_A_TAIL / P_B_TAIL: numel of the repeating operand */
} bplan;


/* Whether x, with leading 1s stripped, equals the trailing dims of the output (so that x
 * repeats every x->numel elements of the flat output). */
static int is_tail(const bcml_tensor *x, int ond, const int64_t *oshape) {
    int lead = 0;
    while (lead < x->ndim && x->shape[lead] == 1) lead++;
    int k = x->ndim - lead;
    if (k > ond) return 0;
    for (int j = 0; j < k; j++)
        if (x->shape[lead + j] != oshape[ond - k + j]) return 0;
    return 1;
}

/* Broadcast shape of a and b; the message names the op and both arguments. */
static bcml_status broadcast2(const bcml_tensor *a, const bcml_tensor *b, const char *op,
                              const char *aname, const char *bname, int *ond, int64_t *oshape,
                              bcml_err *err) {
    if (bcml_broadcast_shape(a, b, ond, oshape, NULL) == BCML_OK) return BCML_OK;
    int nd = a->ndim > b->ndim ? a->ndim : b->ndim, d = 0;
    int64_t sa = 1, sb = 1;
    for (d = 0; d < nd; d++) {
        int da = d - (nd - a->ndim), db = d - (nd - b->ndim);
        sa = da >= 0 ? a->shape[da] : 1;
        sb = db >= 0 ? b->shape[db] : 1;
        if (sa != sb && sa != 1 && sb != 1) break;
    }
    char ba[64], bb[64];
    return bcml_fail(err, BCML_EVALUE,
                     "%s: %s of shape %s and %s of shape %s cannot be broadcast together "
                     "(dimension %d: %lld vs %lld)", op, aname, bcml_shape_str(a, ba, sizeof ba),
                     bname, bcml_shape_str(b, bb, sizeof bb), d, (long long)sa, (long long)sb);
}

static void plan_finish(bplan *p, const bcml_tensor *a, const bcml_tensor *b) {
    int64_t numel = 1;
    for (int k = 0; k < p->ndim; k++) numel *= p->shape[k];
    p->numel = numel;
    bcml_pad4(p->d, p->ndim, p->shape);
    bcml_broadcast_strides4(p->sa, a->ndim, a->shape);
    bcml_broadcast_strides4(p->sb, b->ndim, b->shape);
    p->period = 0;
    int a_full = a->numel == numel, b_full = b->numel == numel;
    if (a_full && b_full) p->kind = P_SAME;
    else if (a_full && b->numel == 1) p->kind = P_B_SCALAR;
    else if (b_full && a->numel == 1) p->kind = P_A_SCALAR;
    else if (a_full && is_tail(b, p->ndim, p->shape)) { p->kind = P_B_TAIL; p->period = b->numel; }
    else if (b_full && is_tail(a, p->ndim, p->shape)) { p->kind = P_A_TAIL; p->period = a->numel; }
    else p->kind = P_GENERAL;
}

static bcml_status make_plan(bplan *p, const bcml_tensor *a, const bcml_tensor *b, const char *op,
                             const char *aname, const char *bname, bcml_err *err) {
    bcml_status st = broadcast2(a, b, op, aname, bname, &p->ndim, p->shape, err);
    if (st) return st;
    plan_finish(p, a, b);
    return BCML_OK;
}

/* Plan for an output-shaped operand a against b (backward: the gradient against an input). */
static void plan_against(bplan *p, int ondim, const int64_t *oshape, const bcml_tensor *a,
                         const bcml_tensor *b) {
    p->ndim = ondim;
    for (int k = 0; k < ondim; k++) p->shape[k] = oshape[k];
    plan_finish(p, a, b);
}

/* for j < N: x = XJ, y = YJ, OJ STORE EXPR */
#define BK_LOOP(TI, STORE, EXPR, N, XJ, YJ, OJ) \
    for (int64_t j = 0; j < (N); j++) {         \
        const TI x = XJ, y = YJ;                \
        OJ STORE (EXPR);                        \
    }

/* o[i] STORE EXPR(x = a at i, y = b at i) over the plan's output (STORE is = or +=). */
#define BINARY_KERNEL_OP(NAME, TI, TO, STORE, EXPR)                                                  \
    static void NAME(TO *restrict o, const TI *restrict a, const TI *restrict b,                     \
                     const bplan *p) {                                                               \
        const int64_t n = p->numel, m = p->period;                                                   \
        const int64_t *d = p->d, *sa = p->sa, *sb = p->sb;                                           \
        if (n == 0) return;                                                                          \
        switch (p->kind) {                                                                           \
        case P_SAME: BK_LOOP(TI, STORE, EXPR, n, a[j], b[j], o[j]) return;                           \
        case P_B_SCALAR: BK_LOOP(TI, STORE, EXPR, n, a[j], b[0], o[j]) return;                       \
        case P_A_SCALAR: BK_LOOP(TI, STORE, EXPR, n, a[0], b[j], o[j]) return;                       \
        case P_B_TAIL:                                                                               \
            for (int64_t r = 0; r < n; r += m) BK_LOOP(TI, STORE, EXPR, m, a[r + j], b[j], o[r + j]) \
            return;                                                                                  \
        case P_A_TAIL:                                                                               \
            for (int64_t r = 0; r < n; r += m) BK_LOOP(TI, STORE, EXPR, m, a[j], b[r + j], o[r + j]) \
            return;                                                                                  \
        default:                                                                                     \
            for (int64_t i0 = 0; i0 < d[0]; i0++)                                                    \
                for (int64_t i1 = 0; i1 < d[1]; i1++)                                                \
                    for (int64_t i2 = 0; i2 < d[2]; i2++, o += d[3]) {                               \
                        const TI *ar = a + i0 * sa[0] + i1 * sa[1] + i2 * sa[2];                     \
                        const TI *br = b + i0 * sb[0] + i1 * sb[1] + i2 * sb[2];                     \
                        if (sa[3] && sb[3]) BK_LOOP(TI, STORE, EXPR, d[3], ar[j], br[j], o[j])       \
                        else if (sa[3]) BK_LOOP(TI, STORE, EXPR, d[3], ar[j], br[0], o[j])           \
                        else if (sb[3]) BK_LOOP(TI, STORE, EXPR, d[3], ar[0], br[j], o[j])           \
                        else BK_LOOP(TI, STORE, EXPR, d[3], ar[0], br[0], o[j])                      \
                    }                                                                                \
        }                                                                                            \
    }

#define BINARY_KERNEL(NAME, TI, TO, EXPR) BINARY_KERNEL_OP(NAME, TI, TO, =, EXPR)
#define U64(v) ((uint64_t)(v))
BINARY_KERNEL(add_f32, float, float, x + y)
BINARY_KERNEL(sub_f32, float, float, x - y)
BINARY_KERNEL(mul_f32, float, float, x * y)
BINARY_KERNEL(div_f32, float, float, x / y)
BINARY_KERNEL(add_i64, int64_t, int64_t, (int64_t)(U64(x) + U64(y)))
BINARY_KERNEL(sub_i64, int64_t, int64_t, (int64_t)(U64(x) - U64(y)))
BINARY_KERNEL(mul_i64, int64_t, int64_t, (int64_t)(U64(x) * U64(y)))
BINARY_KERNEL(or_u8, uint8_t, uint8_t, (uint8_t)((x | y) != 0))
BINARY_KERNEL(and_u8, uint8_t, uint8_t, (uint8_t)((x & y) != 0))

/* backward: d += g * other, d += g / b, d (+)= -(g * a) / (b * b) */
BINARY_KERNEL_OP(mul_acc_f32, float, float, +=, x * y)
BINARY_KERNEL_OP(div_acc_f32, float, float, +=, x / y)
BINARY_KERNEL_OP(negdivsq_f32, float, float, =, -x / (y * y))
BINARY_KERNEL_OP(negdivsq_acc_f32, float, float, +=, -x / (y * y))

BINARY_KERNEL(eq_f32, float, uint8_t, x == y)
BINARY_KERNEL(ne_f32, float, uint8_t, x != y)
BINARY_KERNEL(lt_f32, float, uint8_t, x < y)
BINARY_KERNEL(le_f32, float, uint8_t, x <= y)
BINARY_KERNEL(gt_f32, float, uint8_t, x > y)
BINARY_KERNEL(ge_f32, float, uint8_t, x >= y)
BINARY_KERNEL(eq_i64, int64_t, uint8_t, x == y)
BINARY_KERNEL(ne_i64, int64_t, uint8_t, x != y)
BINARY_KERNEL(lt_i64, int64_t, uint8_t, x < y)
BINARY_KERNEL(le_i64, int64_t, uint8_t, x <= y)
BINARY_KERNEL(gt_i64, int64_t, uint8_t, x > y)
BINARY_KERNEL(ge_i64, int64_t, uint8_t, x >= y)
/* bool tensors hold 0/1 bytes; compare them as truth values */
BINARY_KERNEL(eq_u8, uint8_t, uint8_t, (x != 0) == (y != 0))
BINARY_KERNEL(ne_u8, uint8_t, uint8_t, (x != 0) != (y != 0))
BINARY_KERNEL(lt_u8, uint8_t, uint8_t, (x != 0) < (y != 0))
BINARY_KERNEL(le_u8, uint8_t, uint8_t, (x != 0) <= (y != 0))
BINARY_KERNEL(gt_u8, uint8_t, uint8_t, (x != 0) > (y != 0))
BINARY_KERNEL(ge_u8, uint8_t, uint8_t, (x != 0) >= (y != 0))

/* ---- add, sub, mul, div ------------------------------------------------------------------ */
enum { B_ADD, B_SUB, B_MUL, B_DIV };
static const char *const binary_names[] = {"add", "sub", "mul", "div"};

static bcml_status binary_forward(bcml_node *n, bcml_tensor **out, int kind, bcml_err *err) {
    const bcml_tensor *a = n->in[0], *b = n->in[1];
    const char *nm = binary_names[kind];
    if (a->dtype != b->dtype)
        return bcml_fail(err, BCML_ETYPE, "%s: other must have the dtype of input (%s), got %s", nm,
                         bcml_dtype_name(a->dtype), bcml_dtype_name(b->dtype));
    if (kind == B_DIV && a->dtype != BCML_FLOAT32)
        return bcml_require_dtype(a, BCML_FLOAT32, nm, "input", err);
    if (kind == B_SUB && a->dtype == BCML_BOOL)
        return bcml_fail(err, BCML_ETYPE,
                         "sub: subtraction of two bool tensors is not supported (input and other are bool); "
                         "use ^ or logical_xor() instead");
    bplan p;
    bcml_status st = make_plan(&p, a, b, nm, "input", "other", err);
    if (st) return st;
    if ((st = bcml_tensor_new(&out[0], a->dtype, p.ndim, p.shape, 0, err))) return st;
    void *o = bcml_data(out[0]);
    const void *x = bcml_data(a), *y = bcml_data(b);
    switch (a->dtype) {
    case BCML_FLOAT32:
        if (kind == B_ADD) add_f32(o, x, y, &p);
        else if (kind == B_SUB) sub_f32(o, x, y, &p);
        else if (kind == B_MUL) mul_f32(o, x, y, &p);
        else div_f32(o, x, y, &p);
        break;
    case BCML_INT64:
        if (kind == B_ADD) add_i64(o, x, y, &p);
        else if (kind == B_SUB) sub_i64(o, x, y, &p);
        else mul_i64(o, x, y, &p);
        break;
    case BCML_BOOL: /* as PyTorch: + is logical or, * logical and */
        if (kind == B_ADD) or_u8(o, x, y, &p);
        else and_u8(o, x, y, &p);
        break;
    }
    return BCML_OK;
}


/* Adds g (the output's shape, N elements) into din (an input's shape, which broadcasts to the
 * output's), summing over the broadcast dims. */
static void reduce_into(bcml_tensor *din, const float *g, int64_t N, const bcml_node *n) {
    if (din->numel == N) {
        float *d = bcml_f32(din);
        for (int64_t i = 0; i < N; i++) d[i] += g[i];
    } else if (din->numel) {
        bcml_reduce_broadcast_add(bcml_f32(din), din->ndim, din->shape, g, n->out_ndim,
                                  n->out_shape);
    }
}

static bcml_status binary_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din,
                                   int kind, bcml_err *err) {
    const bcml_tensor *a = n->in[0], *b = n->in[1];
    if (a->dtype != BCML_FLOAT32) return BCML_OK; /* integer and bool ops carry no gradient */
    const int64_t N = dout->numel;
    if (N == 0) return BCML_OK;
    const float *g = bcml_f32(dout); /* (out) */
    if (kind == B_ADD) {
        if (din[0]) reduce_into(din[0], g, N, n);
        if (din[1]) reduce_into(din[1], g, N, n);
        return BCML_OK;
    }
    float *t = NULL, *t2 = NULL; /* (out) scratch */
    bcml_status st = BCML_OK;
    bplan p;
    for (int k = 0; k < 2; k++) {
        if (!din[k]) continue;
        const bcml_tensor *other = n->in[1 - k];
        float *d = bcml_f32(din[k]);
        const int direct = din[k]->numel == N;
        if (!direct && !t && !(t = bcml_alloc((size_t)N * sizeof(float)))) goto nomem;
        if (kind == B_SUB) {
            if (k == 0) { reduce_into(din[0], g, N, n); continue; }
            if (direct) { for (int64_t i = 0; i < N; i++) d[i] -= g[i]; continue; }
            for (int64_t i = 0; i < N; i++) t[i] = -g[i];
            reduce_into(din[1], t, N, n);
            continue;
        }
        plan_against(&p, n->out_ndim, n->out_shape, dout, other);
        if (kind == B_MUL || k == 0) { /* mul: g * other; div, input: g / other */
            if (direct && kind == B_MUL) mul_acc_f32(d, g, bcml_f32(other), &p);
            else if (direct) div_acc_f32(d, g, bcml_f32(other), &p);
            else {
                if (kind == B_MUL) mul_f32(t, g, bcml_f32(other), &p);
                else div_f32(t, g, bcml_f32(other), &p);
                reduce_into(din[k], t, N, n);
            }
            continue;
        }
        /* div, other: -(g * a) / (b * b), as PyTorch */
        if (!t2 && !(t2 = bcml_alloc((size_t)N * sizeof(float)))) goto nomem;
        bplan pa;
        plan_against(&pa, n->out_ndim, n->out_shape, dout, a);
        mul_f32(t2, g, bcml_f32(a), &pa); /* t2 = g * a */
        plan_against(&p, n->out_ndim, n->out_shape, dout, b);
        if (direct) negdivsq_acc_f32(d, t2, bcml_f32(b), &p);
        else {
            negdivsq_f32(t, t2, bcml_f32(b), &p);
            reduce_into(din[1], t, N, n);
        }
    }
    goto done;
nomem:
    st = bcml_fail(err, BCML_ENOMEM, "%s backward: out of memory for %lld elements",
                   binary_names[kind], (long long)N);
done:
    bcml_free(t);
    bcml_free(t2);
    return st;
}

/* in: input, other (broadcastable, same dtype; float32, int64 or bool, div float32 only) */
bcml_status bcml_add_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err) {
    (void)ctx;
    return binary_forward(n, out, B_ADD, err);
}
bcml_status bcml_add_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err) {
    return binary_backward(n, dout, din, B_ADD, err);
}
bcml_status bcml_sub_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err) {
    (void)ctx;
    return binary_forward(n, out, B_SUB, err);
}
bcml_status bcml_sub_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err) {
    return binary_backward(n, dout, din, B_SUB, err);
}
bcml_status bcml_mul_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err) {
    (void)ctx;
    return binary_forward(n, out, B_MUL, err);
}
bcml_status bcml_mul_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err) {
    return binary_backward(n, dout, din, B_MUL, err);
}
bcml_status bcml_div_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err) {
    (void)ctx;
    return binary_forward(n, out, B_DIV, err);
}
bcml_status bcml_div_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err) {
    return binary_backward(n, dout, din, B_DIV, err);
}

/* ---- scalar ops ----------------------------------------------------------------------- */
static bcml_status float_unary_out(bcml_node *n, bcml_tensor **out, const char *name, bcml_err *err) {
    bcml_status st = bcml_require_dtype(n->in[0], BCML_FLOAT32, name, "input", err);
    if (st) return st;
    return bcml_tensor_new_like(&out[0], n->in[0], BCML_FLOAT32, 0, err);
}

/* Whether v is an integer that an int64 holds. */
static int is_int64_value(double v) {
    return v == floor(v) && v >= -0x1p63 && v < 0x1p63;
}

/* out = input * f[1] + f[0]; input float32, or int64 with integer f[0], f[1] (int64 out).
 * i[0] = 1: int64 input with exact int64 scalars, out = input * i[2] + i[1] (Python ints beyond
 * 2^53 lose nothing on the way through a double). int64 arithmetic wraps around, as in PyTorch. */
bcml_status bcml_add_scalar_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err) {
    (void)ctx;
    const bcml_tensor *a = n->in[0];
    const double add = n->args.f[0], mul = n->args.f[1];
    const int exact = n->args.i[0] == 1;
    bcml_status st;
    if (n->args.i[0] != 0 && !exact)
        return bcml_fail(err, BCML_EVALUE, "add_scalar: i[0] must be 0 (float scalars) or 1 (int64 scalars), got %lld",
                         (long long)n->args.i[0]);
    if (exact && a->dtype != BCML_INT64)
        return bcml_fail(err, BCML_ETYPE, "add_scalar: int64 scalars need an int64 input, got %s",
                         bcml_dtype_name(a->dtype));
    if (a->dtype == BCML_INT64) {
        if (!exact && (!is_int64_value(add) || !is_int64_value(mul)))
            return bcml_fail(err, BCML_EVALUE,
                             "add_scalar: an int64 input needs integer scalars, got add %g and mul %g",
                             add, mul);
        if ((st = bcml_tensor_new_like(&out[0], a, BCML_INT64, 0, err))) return st;
        const uint64_t c = exact ? (uint64_t)n->args.i[1] : (uint64_t)(int64_t)add;
        const uint64_t m = exact ? (uint64_t)n->args.i[2] : (uint64_t)(int64_t)mul;
        const int64_t *x = bcml_i64(a); /* (numel) */
        int64_t *y = bcml_i64(out[0]);  /* (numel) */
        for (int64_t i = 0; i < a->numel; i++) y[i] = (int64_t)((uint64_t)x[i] * m + c);
        return BCML_OK;
    }
    if ((st = float_unary_out(n, out, "add_scalar", err))) return st;
    const float c = (float)add, m = (float)mul;
    const float *x = bcml_f32(a); /* (numel) */
    float *y = bcml_f32(out[0]);  /* (numel) */
    const int64_t N = a->numel;
    if (m == 1.0f) for (int64_t i = 0; i < N; i++) y[i] = x[i] + c;
    else if (c == 0.0f) for (int64_t i = 0; i < N; i++) y[i] = x[i] * m;
    else for (int64_t i = 0; i < N; i++) y[i] = x[i] * m + c;
    return BCML_OK;
}
bcml_status bcml_add_scalar_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err) {
    (void)err;
    const float m = (float)n->args.f[1];
    const float *g = bcml_f32(dout);
    float *dx = bcml_f32(din[0]);
    if (m == 1.0f) for (int64_t i = 0; i < dout->numel; i++) dx[i] += g[i];
    else for (int64_t i = 0; i < dout->numel; i++) dx[i] += g[i] * m;
    return BCML_OK;
}

/* out = f[0] / input */
bcml_status bcml_rdiv_scalar_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err) {
    (void)ctx;
    bcml_status st = float_unary_out(n, out, "rdiv_scalar", err);
    if (st) return st;
    const float c = (float)n->args.f[0];
    const float *x = bcml_f32(n->in[0]);
    float *y = bcml_f32(out[0]);
    for (int64_t i = 0; i < out[0]->numel; i++) y[i] = c / x[i];
    return BCML_OK;
}
bcml_status bcml_rdiv_scalar_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err) {
    (void)err;
    const float c = (float)n->args.f[0];
    const float *x = bcml_f32(n->in[0]), *g = bcml_f32(dout);
    float *dx = bcml_f32(din[0]);
    for (int64_t i = 0; i < dout->numel; i++) dx[i] -= g[i] * c / (x[i] * x[i]);
    return BCML_OK;
}

/* x ** e with the exact forms PyTorch uses for the common exponents (x * x for 2, sqrt for
 * 0.5, 1 / sqrt for -0.5, ...); kind comes from pow_kind_of(e) and is loop-invariant, so the
 * compiler unswitches the loops below. */
enum { PW_ANY, PW_0, PW_1, PW_2, PW_3, PW_HALF, PW_MHALF, PW_M1, PW_M2 };
static int pow_kind_of(float e) {
    return e == 0.0f ? PW_0 : e == 1.0f ? PW_1 : e == 2.0f ? PW_2 : e == 3.0f ? PW_3
         : e == 0.5f ? PW_HALF : e == -0.5f ? PW_MHALF : e == -1.0f ? PW_M1
         : e == -2.0f ? PW_M2 : PW_ANY;
}
static inline float pow_k(float x, int kind, float e) {
    switch (kind) {
    case PW_0: return 1.0f;
    case PW_1: return x;
    case PW_2: return x * x;
    case PW_3: return x * x * x;
    case PW_HALF: return sqrtf(x);
    case PW_MHALF: return 1.0f / sqrtf(x);
    case PW_M1: return 1.0f / x;
    case PW_M2: return 1.0f / (x * x);
    default: return powf(x, e);
    }
}

/* out = input ** f[0] */
bcml_status bcml_pow_scalar_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err) {
    (void)ctx;
    bcml_status st = float_unary_out(n, out, "pow_scalar", err);
    if (st) return st;
    const float e = (float)n->args.f[0];
    const int kind = pow_kind_of(e);
    const float *x = bcml_f32(n->in[0]);
    float *y = bcml_f32(out[0]);
    for (int64_t i = 0; i < out[0]->numel; i++) y[i] = pow_k(x[i], kind, e);
    return BCML_OK;
}
/* d input += g * (e * input ** (e - 1)); nothing for e == 0 (PyTorch's zeros, even at 0) */
bcml_status bcml_pow_scalar_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err) {
    (void)err;
    const float e = (float)n->args.f[0], e1 = (float)(n->args.f[0] - 1.0);
    if (e == 0.0f) return BCML_OK;
    const int kind = pow_kind_of(e1);
    const float *x = bcml_f32(n->in[0]), *g = bcml_f32(dout);
    float *dx = bcml_f32(din[0]);
    for (int64_t i = 0; i < dout->numel; i++) dx[i] += g[i] * (e * pow_k(x[i], kind, e1));
    return BCML_OK;
}

/* ---- unary float ops -------------------------------------------------------------------- */
/* y[i] = exp(x[i]) within 1 ulp (y may equal x). glibc's expf costs a call per element; this
 * is Cephes' expf without branches, so that the loop vectorises: x = k ln2 + r with
 * |r| <= ln2/2 (k rounded to nearest by the 1.5 * 2^23 trick), exp(r) by a polynomial, then
 * 2^k applied in two halves so that subnormal results round once. Overflow gives inf,
 * underflow 0, NaN stays NaN. The range and NaN selects work on the bits (with
 * -ftrapping-math GCC will not if-convert float comparisons). Also used by softmax.c. */
static inline uint32_t sel(uint32_t mask, uint32_t a, uint32_t b) { return (mask & a) | (~mask & b); }

BCML_CLONES void bcml_exp_f32(float *y, const float *x, int64_t n) {
    const uint32_t HI = 0x42b17218u, LO = 0xc2cff1b5u; /* 88.7228394f, -103.972084f */
    for (int64_t i = 0; i < n; i++) {
        const uint32_t u = f2u(x[i]);
        const uint32_t nan = -(uint32_t)((u & 0x7fffffffu) > 0x7f800000u);
        const uint32_t over = -(uint32_t)((int32_t)u > (int32_t)HI); /* x > HI (or +NaN) */
        const uint32_t under = -(uint32_t)(u > LO);                  /* x < LO (or -NaN) */
        const float c = u2f(~nan & sel(over, HI, sel(under, LO, u)));
        const float kf = (c * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
        float r = c - kf * 0.693359375f;
        r = r - kf * -2.12194440e-4f;
        float p = 1.9875691500e-4f;
        p = p * r + 1.3981999507e-3f;
        p = p * r + 8.3334519073e-3f;
        p = p * r + 4.1665795894e-2f;
        p = p * r + 1.6666665459e-1f;
        p = p * r + 5.0000001201e-1f;
        const float e = p * (r * r) + r + 1.0f;
        const int32_t k = (int32_t)kf, k1 = k / 2, k2 = k - k1; /* k in [-150, 128] */
        const float s = e * u2f((uint32_t)(k1 + 127) << 23) * u2f((uint32_t)(k2 + 127) << 23);
        y[i] = u2f(sel(nan, u, sel(over, 0x7f800000u, ~under & f2u(s))));
    }
}

/* y[i] = log(x[i]) within 1 ulp (0.83 ulp at most over every positive float; y may equal x),
 * branch-free so that the loop vectorises: Cephes' logf. x = 2^e m with m in [sqrt(1/2), sqrt(2))
 * (subnormals scaled by 2^23 first), log(m) = f - f^2/2 + f^3 P(f) with f = m - 1, and e ln2 added
 * in two parts. log(+-0) = -inf, log(x < 0) = NaN, log(inf) = inf, NaN stays NaN. Used by
 * softmax.c and the log op. */
BCML_CLONES void bcml_log_f32(float *y, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        const uint32_t u = f2u(x[i]);
        const uint32_t sub = -(uint32_t)(u - 1u < 0x007fffffu);             /* positive subnormal */
        const uint32_t v = sel(sub, f2u(x[i] * 8388608.0f), u);             /* scaled by 2^23 */
        const uint32_t small = -(uint32_t)((v & 0x007fffffu) < 0x003504f3u); /* mantissa < sqrt(1/2) */
        const int32_t e = (int32_t)((v >> 23) & 0xffu) - 126 - (int32_t)(sub & 23u) - (int32_t)(small & 1u);
        const float m = u2f((v & 0x007fffffu) | 0x3f000000u);              /* [1/2, 1) */
        const float f = (m - 1.0f) + u2f(small & f2u(m));                   /* 2m - 1 below sqrt(1/2) */
        const float ef = (float)e, z = f * f;
        float p = 7.0376836292e-2f;
        p = p * f - 1.1514610310e-1f;
        p = p * f + 1.1676998740e-1f;
        p = p * f - 1.2420140846e-1f;
        p = p * f + 1.4249322787e-1f;
        p = p * f - 1.6668057665e-1f;
        p = p * f + 2.0000714765e-1f;
        p = p * f - 2.4999993993e-1f;
        p = p * f + 3.3333331174e-1f;
        float r = p * f * z;
        r = r + ef * -2.12194440e-4f;
        r = r - 0.5f * z;
        r = (f + r) + ef * 0.693359375f;
        const uint32_t a = u & 0x7fffffffu;
        const uint32_t zero = -(uint32_t)(a == 0), nan = -(uint32_t)(a > 0x7f800000u);
        const uint32_t neg = -(uint32_t)(u > 0x80000000u), inf = -(uint32_t)(u == 0x7f800000u);
        y[i] = u2f(sel(zero, 0xff800000u, sel(nan, u | 0x00400000u, sel(neg, 0x7fc00000u, sel(inf, u, f2u(r))))));
    }
}

/* exp saves its output (an alias of out's data) for backward. */
bcml_status bcml_exp_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err) {
    (void)ctx;
    bcml_status st = float_unary_out(n, out, "exp", err);
    if (st) return st;
    const float *x = bcml_f32(n->in[0]);
    float *y = bcml_f32(out[0]);
    bcml_exp_f32(y, x, out[0]->numel);
    return n->recording ? bcml_saved_alias(&n->saved[0], out[0], err) : BCML_OK;
}
bcml_status bcml_exp_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err) {
    (void)err;
    const float *y = bcml_f32(n->saved[0]), *g = bcml_f32(dout);
    float *dx = bcml_f32(din[0]);
    for (int64_t i = 0; i < dout->numel; i++) dx[i] += g[i] * y[i];
    return BCML_OK;
}

bcml_status bcml_log_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err) {
    (void)ctx;
    bcml_status st = float_unary_out(n, out, "log", err);
    if (st) return st;
    const float *x = bcml_f32(n->in[0]);
    float *y = bcml_f32(out[0]);
    bcml_log_f32(y, x, out[0]->numel);
    return BCML_OK;
}
bcml_status bcml_log_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err) {
    (void)err;
    const float *x = bcml_f32(n->in[0]), *g = bcml_f32(dout);
    float *dx = bcml_f32(din[0]);
    for (int64_t i = 0; i < dout->numel; i++) dx[i] += g[i] / x[i];
    return BCML_OK;
}

bcml_status bcml_abs_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err) {
    (void)ctx;
    bcml_status st = float_unary_out(n, out, "abs", err);
    if (st) return st;
    const float *x = bcml_f32(n->in[0]);
    float *y = bcml_f32(out[0]);
    for (int64_t i = 0; i < out[0]->numel; i++) y[i] = fabsf(x[i]);
    return BCML_OK;
}
/* d input += g * sign(input) (0 at 0 and NaN, as PyTorch) */
bcml_status bcml_abs_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err) {
    (void)err;
    const float *x = bcml_f32(n->in[0]), *g = bcml_f32(dout);
    float *dx = bcml_f32(din[0]);
    for (int64_t i = 0; i < dout->numel; i++)
        dx[i] += x[i] > 0.0f ? g[i] : (x[i] < 0.0f ? -g[i] : 0.0f);
    return BCML_OK;
}

/* clamp(input, f[0], f[1]); i[0] bit0: has min, bit1: has max. NaN stays NaN; with
 * min > max every element becomes max; a NaN bound makes every element NaN (PyTorch). */
bcml_status bcml_clamp_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err) {
    (void)ctx;
    const int64_t flags = n->args.i[0];
    if (flags < 0 || flags > 3)
        return bcml_fail(err, BCML_EVALUE, "clamp: flags must be in [0, 3], got %lld", (long long)flags);
    bcml_status st = float_unary_out(n, out, "clamp", err);
    if (st) return st;
    const float lo = (flags & 1) ? (float)n->args.f[0] : -INFINITY;
    const float hi = (flags & 2) ? (float)n->args.f[1] : INFINITY;
    const float *x = bcml_f32(n->in[0]);
    float *y = bcml_f32(out[0]);
    if (lo != lo || hi != hi) {
        for (int64_t i = 0; i < out[0]->numel; i++) y[i] = NAN;
        return BCML_OK;
    }
    for (int64_t i = 0; i < out[0]->numel; i++) {
        float v = x[i] < lo ? lo : x[i];
        y[i] = v > hi ? hi : v;
    }
    return BCML_OK;
}
/* the gradient passes where min <= input <= max */
bcml_status bcml_clamp_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err) {
    (void)err;
    const int64_t flags = n->args.i[0];
    const float lo = (flags & 1) ? (float)n->args.f[0] : -INFINITY;
    const float hi = (flags & 2) ? (float)n->args.f[1] : INFINITY;
    const float *x = bcml_f32(n->in[0]), *g = bcml_f32(dout);
    float *dx = bcml_f32(din[0]);
    for (int64_t i = 0; i < dout->numel; i++) dx[i] += (x[i] >= lo && x[i] <= hi) ? g[i] : 0.0f;
    return BCML_OK;
}

/* ---- cast: to dtype i[0] (0 float32, 1 int64, 2 bool) --------------------------------------- */
bcml_status bcml_cast_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err) {
    (void)ctx;
    const bcml_tensor *a = n->in[0];
    const int64_t to = n->args.i[0];
    if (to < 0 || to > 2)
        return bcml_fail(err, BCML_EVALUE, "cast: dtype must be 0 (float32), 1 (int64) or 2 (bool), got %lld",
                         (long long)to);
    bcml_status st = bcml_tensor_new_like(&out[0], a, (bcml_dtype)to, 0, err);
    if (st) return st;
    const int64_t N = a->numel;
    if (a->dtype == (bcml_dtype)to) {
        if (N) memcpy(bcml_data(out[0]), bcml_data(a), bcml_nbytes(a));
        return BCML_OK;
    }
    switch (a->dtype) {
    case BCML_FLOAT32: {
        const float *x = bcml_f32(a);
        if (to == BCML_INT64) {
            /* truncation toward zero; NaN and out-of-range values give INT64_MIN (as x86) */
            int64_t *y = bcml_i64(out[0]);
            for (int64_t i = 0; i < N; i++)
                y[i] = (x[i] >= -0x1p63f && x[i] < 0x1p63f) ? (int64_t)x[i] : INT64_MIN;
        } else {
            uint8_t *y = bcml_u8(out[0]);
            for (int64_t i = 0; i < N; i++) y[i] = x[i] != 0.0f;
        }
        break;
    }
    case BCML_INT64: {
        const int64_t *x = bcml_i64(a);
        if (to == BCML_FLOAT32) {
            float *y = bcml_f32(out[0]);
            for (int64_t i = 0; i < N; i++) y[i] = (float)x[i];
        } else {
            uint8_t *y = bcml_u8(out[0]);
            for (int64_t i = 0; i < N; i++) y[i] = x[i] != 0;
        }
        break;
    }
    case BCML_BOOL: {
        const uint8_t *x = bcml_u8(a);
        if (to == BCML_FLOAT32) {
            float *y = bcml_f32(out[0]);
            for (int64_t i = 0; i < N; i++) y[i] = x[i] ? 1.0f : 0.0f;
        } else {
            int64_t *y = bcml_i64(out[0]);
            for (int64_t i = 0; i < N; i++) y[i] = x[i] ? 1 : 0;
        }
        break;
    }
    }
    return BCML_OK;
}

/* ---- comparisons: bool out; i[0]: 0 eq 1 ne 2 lt 3 le 4 gt 5 ge ------------------------------ */
enum { C_EQ, C_NE, C_LT, C_LE, C_GT, C_GE };

static bcml_status check_cmp_kind(int64_t kind, const char *op, bcml_err *err) {
    if (kind < C_EQ || kind > C_GE)
        return bcml_fail(err, BCML_EVALUE, "%s: comparison kind must be in [0, 5], got %lld", op,
                         (long long)kind);
    return BCML_OK;
}

/* in: input, other (broadcastable, same dtype) */
bcml_status bcml_cmp_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err) {
    (void)ctx;
    const bcml_tensor *a = n->in[0], *b = n->in[1];
    const int64_t kind = n->args.i[0];
    bcml_status st = check_cmp_kind(kind, "cmp", err);
    if (st) return st;
    if (a->dtype != b->dtype)
        return bcml_fail(err, BCML_ETYPE, "cmp: other must have the dtype of input (%s), got %s",
                         bcml_dtype_name(a->dtype), bcml_dtype_name(b->dtype));
    bplan p;
    if ((st = make_plan(&p, a, b, "cmp", "input", "other", err))) return st;
    if ((st = bcml_tensor_new(&out[0], BCML_BOOL, p.ndim, p.shape, 0, err))) return st;
    uint8_t *o = bcml_u8(out[0]);
    const void *x = bcml_data(a), *y = bcml_data(b);
    switch (a->dtype) {
    case BCML_FLOAT32:
        switch (kind) {
        case C_EQ: eq_f32(o, x, y, &p); break;
        case C_NE: ne_f32(o, x, y, &p); break;
        case C_LT: lt_f32(o, x, y, &p); break;
        case C_LE: le_f32(o, x, y, &p); break;
        case C_GT: gt_f32(o, x, y, &p); break;
        default: ge_f32(o, x, y, &p); break;
        }
        break;
    case BCML_INT64:
        switch (kind) {
        case C_EQ: eq_i64(o, x, y, &p); break;
        case C_NE: ne_i64(o, x, y, &p); break;
        case C_LT: lt_i64(o, x, y, &p); break;
        case C_LE: le_i64(o, x, y, &p); break;
        case C_GT: gt_i64(o, x, y, &p); break;
        default: ge_i64(o, x, y, &p); break;
        }
        break;
    case BCML_BOOL:
        switch (kind) {
        case C_EQ: eq_u8(o, x, y, &p); break;
        case C_NE: ne_u8(o, x, y, &p); break;
        case C_LT: lt_u8(o, x, y, &p); break;
        case C_LE: le_u8(o, x, y, &p); break;
        case C_GT: gt_u8(o, x, y, &p); break;
        default: ge_u8(o, x, y, &p); break;
        }
        break;
    }
    return BCML_OK;
}

/* o[i] = X(i) OP c for each comparison kind */
#define CMP_SCALAR_LOOPS(KIND, N, X, C)                                    \
    switch (KIND) {                                                        \
    case C_EQ: for (int64_t i = 0; i < (N); i++) o[i] = (X) == (C); break; \
    case C_NE: for (int64_t i = 0; i < (N); i++) o[i] = (X) != (C); break; \
    case C_LT: for (int64_t i = 0; i < (N); i++) o[i] = (X) < (C); break;  \
    case C_LE: for (int64_t i = 0; i < (N); i++) o[i] = (X) <= (C); break; \
    case C_GT: for (int64_t i = 0; i < (N); i++) o[i] = (X) > (C); break;  \
    default: for (int64_t i = 0; i < (N); i++) o[i] = (X) >= (C); break;   \
    }

/* For integer x, rewrites "x kind c" (c real) exactly as an integer comparison "x *kind *t";
 * returns -1 then, or the constant result 0/1 when every x gives the same answer. */
static int int_cmp_threshold(int64_t *kind, double c, int64_t *t) {
    const int64_t k = *kind;
    if (c != c) return k == C_NE;
    if (c >= 0x1p63) return k == C_NE || k == C_LT || k == C_LE;
    if (c < -0x1p63) return k == C_NE || k == C_GT || k == C_GE;
    const double fl = floor(c);
    if (fl == c) { *t = (int64_t)c; return -1; }
    switch (k) { /* non-integral c lies strictly between fl and fl + 1 (|c| < 2^52) */
    case C_EQ: return 0;
    case C_NE: return 1;
    case C_LT: case C_LE: *kind = C_LE; *t = (int64_t)fl; return -1;
    default: *kind = C_GE; *t = (int64_t)fl + 1; return -1;
    }
}

/* bool out = input ? f[0]; float32 inputs compare with f[0] rounded to float32 (as PyTorch),
 * int64 and bool (0/1) inputs compare exactly with the real f[0]. i[1] = 1: the scalar is the
 * int64 i[2] instead (exact for Python ints beyond 2^53). */
bcml_status bcml_cmp_scalar_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err) {
    (void)ctx;
    const bcml_tensor *a = n->in[0];
    int64_t kind = n->args.i[0];
    bcml_status st = check_cmp_kind(kind, "cmp_scalar", err);
    if (st) return st;
    if ((st = bcml_tensor_new_like(&out[0], a, BCML_BOOL, 0, err))) return st;
    uint8_t *o = bcml_u8(out[0]); /* (numel) */
    const int64_t N = a->numel;
    const int exact = n->args.i[1] == 1;
    if (a->dtype == BCML_FLOAT32) {
        const float *x = bcml_f32(a), c = exact ? (float)n->args.i[2] : (float)n->args.f[0];
        CMP_SCALAR_LOOPS(kind, N, x[i], c)
        return BCML_OK;
    }
    int64_t t = n->args.i[2];
    int cst = exact ? -1 : int_cmp_threshold(&kind, n->args.f[0], &t);
    if (cst >= 0) {
        if (N) memset(o, cst, (size_t)N);
        return BCML_OK;
    }
    if (a->dtype == BCML_INT64) {
        const int64_t *x = bcml_i64(a);
        CMP_SCALAR_LOOPS(kind, N, x[i], t)
    } else {
        const uint8_t *x = bcml_u8(a);
        CMP_SCALAR_LOOPS(kind, N, (int64_t)(x[i] != 0), t)
    }
    return BCML_OK;
}

/* ---- where(condition, input, other) with broadcasting of all three -------------------------- */
#define WHERE_KERNEL(NAME, T)                                                                  \
    static void NAME(T *restrict o, const uint8_t *restrict c, const T *restrict a,            \
                     const T *restrict b, const int64_t *d, const int64_t (*s)[4], int same) { \
        if (same) {                                                                            \
            const int64_t n = d[0] * d[1] * d[2] * d[3];                                       \
            for (int64_t i = 0; i < n; i++) o[i] = c[i] ? a[i] : b[i];                         \
            return;                                                                            \
        }                                                                                      \
        for (int64_t i0 = 0; i0 < d[0]; i0++)                                                  \
            for (int64_t i1 = 0; i1 < d[1]; i1++)                                              \
                for (int64_t i2 = 0; i2 < d[2]; i2++, o += d[3]) {                             \
                    const uint8_t *cr = c + i0 * s[0][0] + i1 * s[0][1] + i2 * s[0][2];        \
                    const T *ar = a + i0 * s[1][0] + i1 * s[1][1] + i2 * s[1][2];              \
                    const T *br = b + i0 * s[2][0] + i1 * s[2][1] + i2 * s[2][2];              \
                    for (int64_t j = 0; j < d[3]; j++)                                         \
                        o[j] = cr[j * s[0][3]] ? ar[j * s[1][3]] : br[j * s[2][3]];            \
                }                                                                              \
    }
WHERE_KERNEL(where_u8, uint8_t)
WHERE_KERNEL(where_u32, uint32_t)
WHERE_KERNEL(where_u64, uint64_t)

/* Output shape of where; each pair must broadcast (pairwise is enough for all three). */
static bcml_status where_shape(const bcml_node *n, int *ond, int64_t *oshape, bcml_err *err) {
    static const char *const names[3] = {"condition", "input", "other"};
    int nd;
    int64_t sh[BCML_MAX_DIMS];
    for (int i = 0; i < 3; i++)
        for (int j = i + 1; j < 3; j++) {
            bcml_status st = broadcast2(n->in[i], n->in[j], "where", names[i], names[j], &nd, sh, err);
            if (st) return st;
        }
    bcml_tensor ab;
    memset(&ab, 0, sizeof ab);
    bcml_broadcast_shape(n->in[1], n->in[2], &ab.ndim, ab.shape, NULL);
    return bcml_broadcast_shape(n->in[0], &ab, ond, oshape, err);
}

/* in: condition (bool), input, other (same dtype); out: input's dtype */
bcml_status bcml_where_forward(bcml_node *n, bcml_ctx *ctx, bcml_tensor **out, bcml_err *err) {
    (void)ctx;
    const bcml_tensor *c = n->in[0], *a = n->in[1], *b = n->in[2];
    bcml_status st;
    if ((st = bcml_require_dtype(c, BCML_BOOL, "where", "condition", err))) return st;
    if (a->dtype != b->dtype)
        return bcml_fail(err, BCML_ETYPE, "where: other must have the dtype of input (%s), got %s",
                         bcml_dtype_name(a->dtype), bcml_dtype_name(b->dtype));
    int ond;
    int64_t oshape[BCML_MAX_DIMS], d[4], s[3][4];
    if ((st = where_shape(n, &ond, oshape, err))) return st;
    if ((st = bcml_tensor_new(&out[0], a->dtype, ond, oshape, 0, err))) return st;
    if (out[0]->numel == 0) return BCML_OK;
    bcml_pad4(d, ond, oshape);
    for (int k = 0; k < 3; k++) bcml_broadcast_strides4(s[k], n->in[k]->ndim, n->in[k]->shape);
    const int64_t N = out[0]->numel;
    const int same = c->numel == N && a->numel == N && b->numel == N;
    const uint8_t *cd = bcml_u8(c);
    void *o = bcml_data(out[0]);
    const void *x = bcml_data(a), *y = bcml_data(b);
    const int64_t (*cs)[4] = (const int64_t (*)[4])s;
    switch (bcml_dtype_size(a->dtype)) { /* only the bytes are moved: select by element size */
    case 1: where_u8(o, cd, x, y, d, cs, same); break;
    case 4: where_u32(o, cd, x, y, d, cs, same); break;
    default: where_u64(o, cd, x, y, d, cs, same); break;
    }
    return BCML_OK;
}

/* d input += g where condition, d other += g elsewhere (each summed over broadcast dims) */
bcml_status bcml_where_backward(bcml_node *n, const bcml_tensor *dout, bcml_tensor **din, bcml_err *err) {
    const bcml_tensor *c = n->in[0];
    if (n->in[1]->dtype != BCML_FLOAT32) return BCML_OK;
    const int64_t N = dout->numel;
    if (N == 0 || (!din[1] && !din[2])) return BCML_OK;
    const float *g = bcml_f32(dout); /* (out) */
    uint8_t *ce = NULL;              /* (out) condition broadcast, when it is not out-shaped */
    float *t = bcml_alloc((size_t)N * sizeof(float)); /* (out) */
    const uint8_t *cm = bcml_u8(c);
    if (t && c->numel != N) {
        if ((ce = bcml_alloc((size_t)N))) {
            int64_t d[4], s[4];
            bcml_pad4(d, n->out_ndim, n->out_shape);
            bcml_broadcast_strides4(s, c->ndim, c->shape);
            uint8_t *dst = ce;
            for (int64_t i0 = 0; i0 < d[0]; i0++)
                for (int64_t i1 = 0; i1 < d[1]; i1++)
                    for (int64_t i2 = 0; i2 < d[2]; i2++, dst += d[3]) {
                        const uint8_t *cr = cm + i0 * s[0] + i1 * s[1] + i2 * s[2];
                        for (int64_t j = 0; j < d[3]; j++) dst[j] = cr[j * s[3]];
                    }
            cm = ce;
        }
    }
    if (!t || (c->numel != N && !ce)) {
        bcml_free(t);
        bcml_free(ce);
        return bcml_fail(err, BCML_ENOMEM, "where backward: out of memory for %lld elements", (long long)N);
    }
    for (int k = 1; k <= 2; k++) {
        if (!din[k]) continue;
        const uint8_t pick = k == 1;
        for (int64_t i = 0; i < N; i++) t[i] = (cm[i] != 0) == pick ? g[i] : 0.0f;
        reduce_into(din[k], t, N, n);
    }
    bcml_free(t);
    bcml_free(ce);
    return BCML_OK;
}
