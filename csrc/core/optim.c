/* optim.c: SGD and Adam updates, in place, following torch.optim's single-tensor formulas. */
#include "bcml.h"

#include <float.h>
#include <math.h>
#include <string.h>

/* A setting the update uses as float32: in [lo, hi] and within float32's range (NaN fails too). */
static bcml_status check_setting(double v, double lo, double hi, const char *opt, const char *name, bcml_err *err) {
    if (!(v >= lo && v <= hi && fabs(v) <= FLT_MAX))
        return bcml_fail(err, BCML_EVALUE, "%s: %s must be finite, within float32's range and in [%g, %g], got %g",
                         opt, name, lo, hi, v);
    return BCML_OK;
}

static bcml_status state_like(bcml_tensor **slot, const bcml_tensor *p, bcml_err *err) {
    if (*slot) {
        if ((*slot)->numel != p->numel || (*slot)->dtype != BCML_FLOAT32)
            return bcml_fail(err, BCML_EVALUE, "optimizer state does not match its parameter's shape");
        return BCML_OK;
    }
    return bcml_tensor_new(slot, BCML_FLOAT32, p->ndim, p->shape, 1, err);
}

/* *g: a reference to p's gradient (NULL when it has none), held while the update reads it: a
 * zero_grad in another thread cannot free it mid-update. */
static bcml_status check_param(bcml_tensor *p, int64_t k, bcml_tensor **g, bcml_err *err) {
    *g = NULL;
    if (p->dtype != BCML_FLOAT32)
        return bcml_fail(err, BCML_ETYPE, "params[%lld]: optimizers update float32 tensors only", (long long)k);
    bcml_tensor *gr = bcml_grad_get(bcml_grad_owner(p));
    if (gr && (gr->numel != p->numel || gr->dtype != BCML_FLOAT32)) {
        bcml_tensor_unref(gr);
        return bcml_fail(err, BCML_EVALUE, "params[%lld]: grad does not match the parameter's shape", (long long)k);
    }
    *g = gr;
    return BCML_OK;
}

static bcml_status sgd_one(bcml_tensor *p, const bcml_tensor *grad, bcml_tensor **buf,
                           const bcml_sgd_opts *o, bcml_err *err);
static bcml_status adam_one(bcml_tensor *p, const bcml_tensor *grad, bcml_tensor **m, bcml_tensor **v,
                            bcml_tensor **vmax, int64_t *steps, const bcml_adam_opts *o, bcml_err *err);

bcml_status bcml_sgd_step(bcml_tensor **params, bcml_tensor **bufs, int64_t n,
                          const bcml_sgd_opts *o, bcml_err *err) {
    bcml_status st;
    if ((st = check_setting(o->lr, 0.0, FLT_MAX, "sgd", "lr", err)) ||
        (st = check_setting(o->momentum, 0.0, FLT_MAX, "sgd", "momentum", err)) ||
        (st = check_setting(o->dampening, -FLT_MAX, FLT_MAX, "sgd", "dampening", err)) ||
        (st = check_setting(o->weight_decay, 0.0, FLT_MAX, "sgd", "weight_decay", err)))
        return st;
    for (int64_t k = 0; k < n; k++) {
        bcml_tensor *p = params[k], *gref = NULL;
        if ((st = check_param(p, k, &gref, err))) return st;
        if (!gref) continue;
        st = sgd_one(p, gref, &bufs[k], o, err);
        bcml_tensor_unref(gref);
        if (st) return st;
    }
    return BCML_OK;
}

/* The update of elements [lo, hi) (restrict pointers and the flags hoisted: the loops vectorise;
 * every element is computed alike in any chunk). */
typedef struct {
    float *w, *b;       /* b: the momentum buffer, NULL without momentum */
    const float *g;
    float lr, wd, mom, omdamp, sign;
    int first, nesterov;
} sgd_job;

static void sgd_range(void *arg, int64_t lo, int64_t hi) {
    const sgd_job *j = arg;
    float *restrict w = j->w, *restrict b = j->b;
    const float *restrict g0 = j->g;
    const float lr = j->lr, wd = j->wd, mom = j->mom, omdamp = j->omdamp, sign = j->sign;
    if (!b) {
        for (int64_t i = lo; i < hi; i++) w[i] -= lr * (sign * g0[i] + wd * w[i]);
    } else if (j->first) {
        for (int64_t i = lo; i < hi; i++) {
            const float g = sign * g0[i] + wd * w[i];
            b[i] = g;
            w[i] -= lr * (j->nesterov ? g + mom * g : g);
        }
    } else if (j->nesterov) {
        for (int64_t i = lo; i < hi; i++) {
            const float g = sign * g0[i] + wd * w[i];
            b[i] = mom * b[i] + omdamp * g;
            w[i] -= lr * (g + mom * b[i]);
        }
    } else {
        for (int64_t i = lo; i < hi; i++) {
            const float g = sign * g0[i] + wd * w[i];
            b[i] = mom * b[i] + omdamp * g;
            w[i] -= lr * b[i];
        }
    }
}

static bcml_status sgd_one(bcml_tensor *p, const bcml_tensor *grad, bcml_tensor **buf,
                           const bcml_sgd_opts *o, bcml_err *err) {
    bcml_status st;
    sgd_job j = {.w = bcml_f32(p), .g = bcml_f32(grad), .lr = (float)o->lr, .wd = (float)o->weight_decay,
                 .mom = (float)o->momentum, .sign = o->maximize ? -1.0f : 1.0f, .nesterov = o->nesterov != 0};
    /* 1 - dampening in double, then rounded (as torch's Python-float argument): 1.0f - (float)d
     * can differ from (float)(1 - d) by an ulp of d, e.g. 1e-5 relative for 1 - 0.999 */
    j.omdamp = (float)(1.0 - o->dampening);
    if (j.mom != 0.0f) {
        j.first = *buf == NULL;
        if ((st = state_like(buf, p, err))) return st;
        j.b = bcml_f32(*buf);
    }
    bcml_parallel_for(p->numel, 16384, sgd_range, &j);
    bcml_tensor_bump_version(p);
    return BCML_OK;
}

bcml_status bcml_adam_step(bcml_tensor **params, bcml_tensor **m, bcml_tensor **v,
                           bcml_tensor **vmax, int64_t *steps, int64_t n,
                           const bcml_adam_opts *o, bcml_err *err) {
    bcml_status st;
    if ((st = check_setting(o->lr, 0.0, FLT_MAX, "adam", "lr", err)) ||
        (st = check_setting(o->beta1, 0.0, nextafter(1.0, 0.0), "adam", "beta1", err)) ||
        (st = check_setting(o->beta2, 0.0, nextafter(1.0, 0.0), "adam", "beta2", err)) ||
        (st = check_setting(o->eps, 0.0, FLT_MAX, "adam", "eps", err)) ||
        (st = check_setting(o->weight_decay, 0.0, FLT_MAX, "adam", "weight_decay", err)))
        return st;
    for (int64_t k = 0; k < n; k++) {
        bcml_tensor *p = params[k], *gref = NULL;
        if ((st = check_param(p, k, &gref, err))) return st;
        if (!gref) continue;
        st = adam_one(p, gref, &m[k], &v[k], &vmax[k], &steps[k], o, err);
        bcml_tensor_unref(gref);
        if (st) return st;
    }
    return BCML_OK;
}

static bcml_status adam_one(bcml_tensor *p, const bcml_tensor *grad, bcml_tensor **m, bcml_tensor **v,
                            bcml_tensor **vmax, int64_t *steps, const bcml_adam_opts *o, bcml_err *err) {
    bcml_status st;
    if ((st = state_like(m, p, err)) || (st = state_like(v, p, err))) return st;
    if (o->amsgrad && (st = state_like(vmax, p, err))) return st;
    int64_t t = ++*steps;
    float *w = bcml_f32(p), *mk = bcml_f32(*m), *vk = bcml_f32(*v);
    float *vm = o->amsgrad ? bcml_f32(*vmax) : NULL;
    const float *g0 = bcml_f32(grad);
    /* 1 - beta in double, then rounded, as torch passes them (see bcml_sgd_step) */
    float omb1 = (float)(1.0 - o->beta1), b2 = (float)o->beta2, omb2 = (float)(1.0 - o->beta2);
    float wd = (float)o->weight_decay;
    double bc1 = 1.0 - pow(o->beta1, (double)t), bc2 = 1.0 - pow(o->beta2, (double)t);
    float step_size = (float)(o->lr / bc1), bc2_sqrt = (float)sqrt(bc2), eps = (float)o->eps;
    float sign = o->maximize ? -1.0f : 1.0f;
    for (int64_t i = 0; i < p->numel; i++) {
        float g = sign * g0[i] + wd * w[i];
        mk[i] += (g - mk[i]) * omb1;
        vk[i] = b2 * vk[i] + omb2 * g * g;
        float vv = vk[i];
        if (vm) { if (vm[i] < vv) vm[i] = vv; vv = vm[i]; }
        float denom = sqrtf(vv) / bc2_sqrt + eps;
        w[i] -= step_size * mk[i] / denom;
    }
    bcml_tensor_bump_version(p);
    return BCML_OK;
}
