// sources: csrc/core/*.c (+ -lopenblas)
/* fuzz_compat_loss.c: the compatibility-loss kernel (BCML_OP_COMPAT_LOSS through bcml_apply)
 * with fuzzed kinds, modes, reductions, lambda_c, pivot, shapes and NaN/inf values, forward and
 * backward.
 *
 * Input: u8 kind (% 6 - 1: -1 .. 4, so invalid kinds too), u8 mode (% 3), u8 reduction (% 4),
 *   u8 dissonance-only, fz_double lambda_c, fz_double pivot, u8 B (% 17), u8 C (% 9),
 *   u8 shape faults (bit0 h1 of another shape, bit1 target of another length, bit2 h2 of the
 *   other rank, bit3 target of the other dtype, bit4 h2 int64), u64 seed, for h2 and h1: u8 fill
 *   kind, u8 param (% 6: 0 normal, 1 log-softmax rows, 2 probabilities, 3 0/1 and edges,
 *   4 specials (NaN, inf, ...), 5 raw bits); target: u8 fill (labels in [0, C) / 0-1, or with
 *   out-of-range and NaN entries); u8 grad flags (bit0 h2 requires grad, bit1 h1 requires grad,
 *   bit2 backward with a seed gradient of specials, bit3 no backward).
 * Checked: status and message; the output has shape (B,) for reduction none and () else;
 *   the sum reduction equals the sum of the per-sample values and mean equals sum / B (when
 *   they are finite); backward fills h2's grad with h2's shape, and h1's output (a constant of
 *   the op) gets at most a zero gradient. */
#include "fuzz_common.h"

static void fill_f(float *x, int64_t B, int64_t C, int rows, uint8_t kind, uint8_t param, uint64_t *s) {
    int64_t n = B * C;
    for (int64_t i = 0; i < n; i++) {
        uint64_t r = fz_mix(s);
        double u = (double)(r >> 11) / 9007199254740992.0;
        switch (kind % 6) {
        case 0: case 1: x[i] = (float)((u * 2 - 1) * (1 + param % 32)); break;
        case 2: x[i] = (float)u; break;
        case 3: x[i] = (r & 1) ? ((r & 2) ? 1.0f : 0.0f) : (float)u; break;
        case 4: x[i] = (r & 3) ? (float)u : fz_float_special[(r >> 8) % 12]; break;
        default: {
            uint32_t b = (uint32_t)r;
            memcpy(&x[i], &b, sizeof b);
        }
        }
    }
    if (kind % 6 == 1 && rows) /* log-softmax of each row */
        for (int64_t b = 0; b < B; b++) {
            float *row = x + b * C, m = -INFINITY;
            for (int64_t c = 0; c < C; c++) m = row[c] > m ? row[c] : m;
            double z = 0;
            for (int64_t c = 0; c < C; c++) z += exp((double)row[c] - m);
            for (int64_t c = 0; c < C; c++) row[c] = (float)((double)row[c] - m - log(z));
        }
}

static bcml_tensor *mk(bcml_dtype dt, int ndim, int64_t d0, int64_t d1) {
    int64_t shape[2] = {d0, d1};
    bcml_tensor *t = NULL;
    bcml_err err;
    bcml_status st = bcml_tensor_new(&t, dt, ndim, shape, 1, &err);
    FZ_ASSERT(st == BCML_OK, "tensor_new: %s", err.msg);
    return t;
}

/* Runs the op with reduction red; returns the status and the output (or NULL). */
static bcml_status run(bcml_tensor **in, const bcml_args *a0, int64_t red, bcml_tensor **out, int grad) {
    bcml_args a = *a0;
    a.i[2] = red;
    bcml_ctx ctx = {.grad_enabled = grad, .gen = NULL};
    bcml_tensor *o[BCML_MAX_OUT] = {0};
    bcml_err err = {{0}};
    bcml_status st = bcml_apply(&ctx, BCML_OP_COMPAT_LOSS, &a, in, 3, o, &err);
    FZ_CHECK_STATUS(st, err, "compat_loss");
    FZ_ASSERT(st == BCML_OK || !o[0], "an output after an error");
    *out = o[0];
    return st;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz f = {data, size};
    bcml_args a;
    memset(&a, 0, sizeof a);
    a.i[0] = (int64_t)(fz_u8(&f) % 6) - 1;
    a.i[1] = fz_u8(&f) % 3;
    int64_t red = fz_u8(&f) % 4;
    a.i[3] = fz_u8(&f) & 1;
    a.f[0] = fz_double(&f);
    a.f[1] = fz_double(&f);
    int64_t B = fz_u8(&f) % 17, C = fz_u8(&f) % 9;
    uint8_t faults = fz_u8(&f);
    uint64_t seed = fz_u64(&f);
    uint8_t k2 = fz_u8(&f), p2 = fz_u8(&f), k1 = fz_u8(&f), p1 = fz_u8(&f), kt = fz_u8(&f);
    uint8_t gflags = fz_u8(&f);

    int binary = a.i[0] == 2;
    int ndim = binary ? 1 : 2;
    if (faults & 4) ndim = 3 - ndim;
    int64_t cols = ndim == 2 ? C : 1;
    bcml_tensor *x2 = mk((faults & 16) ? BCML_INT64 : BCML_FLOAT32, ndim, B, C);
    bcml_tensor *x1 = (faults & 1) ? mk(BCML_FLOAT32, ndim, B + 1, C + 1) : mk(BCML_FLOAT32, ndim, B, C);
    int64_t Bt = (faults & 2) ? (B + 1) % 17 : B;
    int tfloat = binary ^ ((faults & 8) != 0);
    bcml_tensor *t = mk(tfloat ? BCML_FLOAT32 : BCML_INT64, 1, Bt, 0);
    if (x2->dtype == BCML_FLOAT32) fill_f(bcml_f32(x2), B, cols, ndim == 2, k2, p2, &seed);
    fill_f(bcml_f32(x1), x1->shape[0], x1->ndim == 2 ? x1->shape[1] : 1, x1->ndim == 2, k1, p1, &seed);
    for (int64_t i = 0; i < Bt; i++) {
        uint64_t r = fz_mix(&seed);
        int wild = (kt & 1) && (r & 7) == 0;
        if (tfloat) bcml_f32(t)[i] = wild ? fz_float_special[(r >> 8) % 12] : (float)((r >> 4) & 1);
        else bcml_i64(t)[i] = wild ? fz_int_special[(r >> 8) % 31] : (C ? (int64_t)((r >> 4) % (uint64_t)C) : 0);
    }
    x2->requires_grad = (gflags & 1) && x2->dtype == BCML_FLOAT32;
    x1->requires_grad = (gflags & 2) != 0;
    bcml_tensor *in[3] = {x2, t, x1};

    bcml_tensor *out = NULL;
    bcml_status st = run(in, &a, red, &out, 1);
    if (st == BCML_OK) {
        int64_t want_ndim = red == 0 ? 1 : 0;
        FZ_ASSERT(out->dtype == BCML_FLOAT32 && out->ndim == want_ndim, "output rank %d for reduction %lld",
                  out->ndim, (long long)red);
        if (red == 0) FZ_ASSERT(out->shape[0] == B, "per-sample output of %lld", (long long)out->shape[0]);
        FZ_ASSERT(out->requires_grad == (x2->requires_grad || x1->requires_grad), "requires_grad %d",
                  out->requires_grad);
        /* reductions agree with each other */
        bcml_tensor *none = NULL, *sum = NULL, *mean = NULL;
        if (!run(in, &a, 0, &none, 0) && !run(in, &a, 2, &sum, 0) && !run(in, &a, 1, &mean, 0)) {
            double acc = 0, mag = 0;
            for (int64_t i = 0; i < B; i++) {
                acc += bcml_f32(none)[i];
                mag += fabs(bcml_f32(none)[i]);
            }
            double s = bcml_f32(sum)[0], m = bcml_f32(mean)[0];
            if (isfinite(acc) && isfinite(mag) && mag < 1e30) {
                FZ_ASSERT(fabs(s - acc) <= 1e-4 * (1 + mag), "sum %g, per-sample values add to %g", s, acc);
                if (B) FZ_ASSERT(fabs(m - acc / B) <= 1e-4 * (1 + mag / B), "mean %g, expected %g", m, acc / B);
            }
            if (B == 0) FZ_ASSERT(isnan(m) && s == 0, "empty batch: mean %g sum %g", m, s);
        }
        bcml_tensor_unref(none);
        bcml_tensor_unref(sum);
        bcml_tensor_unref(mean);
        if (out->requires_grad && !(gflags & 8)) {
            bcml_tensor *g = NULL;
            if (gflags & 4) {
                g = mk(BCML_FLOAT32, out->ndim, B, 0);
                fill_f(bcml_f32(g), out->numel, 1, 0, 4, 0, &seed);
            }
            bcml_err err = {{0}};
            bcml_status bst = bcml_backward(out, g, 0, &err);
            FZ_CHECK_STATUS(bst, err, "backward");
            if (!g && out->numel != 1) FZ_ASSERT(bst != BCML_OK, "backward from a non-scalar without a gradient");
            if (bst == BCML_OK) {
                bcml_tensor *g2 = bcml_grad_get(x2), *g1 = bcml_grad_get(x1), *gt = bcml_grad_get(t);
                if (x2->requires_grad)
                    FZ_ASSERT(g2 && g2->numel == x2->numel && g2->dtype == BCML_FLOAT32, "h2 grad");
                FZ_ASSERT(!gt, "the target got a gradient");
                /* h1's output is a constant of the op (Python detaches it): a zero gradient */
                if (g1)
                    for (int64_t i = 0; i < g1->numel; i++)
                        FZ_ASSERT(bcml_f32(g1)[i] == 0.0f, "h1 got a gradient");
                bcml_tensor_unref(g2);
                bcml_tensor_unref(g1);
                bcml_tensor_unref(gt);
            }
            bcml_tensor_unref(g);
        }
    } else {
        FZ_ASSERT(out == NULL, "output after an error");
    }
    bcml_tensor_unref(out);
    bcml_tensor_unref(x2);
    bcml_tensor_unref(x1);
    bcml_tensor_unref(t);
    return 0;
}
