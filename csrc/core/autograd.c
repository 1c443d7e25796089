/* autograd.c: the op dispatcher (bcml_apply) and the backward engine. */
#include "bcml.h"

#include <stdlib.h>
#include <string.h>

void bcml_node_unref(bcml_node *n) {
    if (!n || atomic_fetch_sub(&n->refcount, 1) != 1) return;
    for (int k = 0; k < BCML_MAX_IN; k++) bcml_tensor_unref(n->in[k]);
    for (int k = 0; k < 4; k++) bcml_tensor_unref(n->saved[k]);
    bcml_tensor_unref(n->grad_acc);
    free(n);
}

bcml_status bcml_apply(bcml_ctx *ctx, int op, const bcml_args *args, bcml_tensor *const *in,
                       int n_in, bcml_tensor **out, bcml_err *err) {
    if (op < 0 || op >= BCML_OP_COUNT)
        return bcml_fail(err, BCML_EVALUE, "unknown op %d", op);
    const bcml_opdef *def = &bcml_ops[op];
    if (!def->forward)
        return bcml_fail(err, BCML_ERUNTIME, "%s is not implemented yet", def->name);
    int max_in = def->n_in_max < 0 ? BCML_MAX_IN : def->n_in_max;
    if (n_in < def->n_in_min || n_in > max_in)
        return bcml_fail(err, BCML_EVALUE, "%s takes %d to %d inputs, got %d", def->name,
                         def->n_in_min, max_in, n_in);
    for (int k = 0; k < def->n_in_min; k++)
        if (!in[k]) return bcml_fail(err, BCML_EVALUE, "%s: input %d is missing", def->name, k);
    bcml_node *n = calloc(1, sizeof *n);
    if (!n) return bcml_fail(err, BCML_ENOMEM, "out of memory recording %s", def->name);
    atomic_init(&n->refcount, 1);
    n->op = op;
    if (args) n->args = *args;
    n->n_in = n_in;
    int any = 0;
    for (int k = 0; k < n_in; k++) {
        n->in[k] = bcml_tensor_ref(in[k]);
        n->needs_grad[k] = ctx->grad_enabled && def->backward && in[k] && in[k]->requires_grad;
        any |= n->needs_grad[k];
    }
    n->recording = any;
    for (int k = 0; k < BCML_MAX_OUT; k++) out[k] = NULL;
    bcml_status st = def->forward(n, ctx, out, err);
    if (st) {
        for (int k = 0; k < def->n_out; k++) { bcml_tensor_unref(out[k]); out[k] = NULL; }
        bcml_node_unref(n);
        return st;
    }
    if (any) {
        bcml_tensor *o = out[0];
        o->requires_grad = 1;
        o->grad_fn = n;
        n->out_ndim = o->ndim;
        for (int d = 0; d < o->ndim; d++) n->out_shape[d] = o->shape[d];
    } else {
        bcml_node_unref(n);
    }
    return BCML_OK;
}

/* ---- backward ---------------------------------------------------------------------- */
typedef struct { bcml_node *node; int next; } frame;

static bcml_status grad_buffer(bcml_tensor **slot, const bcml_tensor *like, bcml_err *err) {
    if (*slot) return BCML_OK;
    return bcml_tensor_new(slot, BCML_FLOAT32, like->ndim, like->shape, 1, err);
}

bcml_status bcml_backward(bcml_tensor *root, const bcml_tensor *grad, bcml_err *err) {
    if (!root->requires_grad)
        return bcml_fail(err, BCML_ERUNTIME,
                         "element 0 of tensors does not require grad and does not have a grad_fn");
    if (grad) {
        if (grad->dtype != BCML_FLOAT32 || grad->numel != root->numel)
            return bcml_fail(err, BCML_EVALUE,
                             "backward: gradient must be a float32 tensor with the output's shape");
    } else if (root->numel != 1) {
        return bcml_fail(err, BCML_ERUNTIME, "grad can be implicitly created only for scalar outputs");
    }
    bcml_tensor *seed = NULL;
    bcml_status st = bcml_tensor_new(&seed, BCML_FLOAT32, root->ndim, root->shape, 0, err);
    if (st) return st;
    if (grad) memcpy(bcml_f32(seed), bcml_f32(grad), bcml_nbytes(seed));
    else for (int64_t i = 0; i < seed->numel; i++) bcml_f32(seed)[i] = 1.0f;

    if (!root->grad_fn) { /* a leaf */
        st = grad_buffer(&root->grad, root, err);
        if (!st) {
            float *g = bcml_f32(root->grad), *s = bcml_f32(seed);
            for (int64_t i = 0; i < seed->numel; i++) g[i] += s[i];
        }
        bcml_tensor_unref(seed);
        return st;
    }

    /* Post-order DFS over nodes: each node comes after every node it consumes. */
    size_t cap = 64, sp = 0, norder = 0, ocap = 64;
    frame *stack = malloc(cap * sizeof *stack);
    bcml_node **order = malloc(ocap * sizeof *order);
    if (!stack || !order) { st = bcml_fail(err, BCML_ENOMEM, "out of memory in backward"); goto done; }
    root->grad_fn->topo_mark = 1;
    stack[sp++] = (frame){root->grad_fn, 0};
    while (sp) {
        frame *f = &stack[sp - 1];
        if (f->next < f->node->n_in) {
            int k = f->next++;
            bcml_tensor *t = f->node->in[k];
            if (!f->node->needs_grad[k] || !t->grad_fn || t->grad_fn->topo_mark) continue;
            if (sp == cap) {
                frame *ns = realloc(stack, 2 * cap * sizeof *stack);
                if (!ns) { st = bcml_fail(err, BCML_ENOMEM, "out of memory in backward"); goto done; }
                stack = ns; cap *= 2;
            }
            t->grad_fn->topo_mark = 1;
            stack[sp++] = (frame){t->grad_fn, 0};
        } else {
            if (norder == ocap) {
                bcml_node **no = realloc(order, 2 * ocap * sizeof *order);
                if (!no) { st = bcml_fail(err, BCML_ENOMEM, "out of memory in backward"); goto done; }
                order = no; ocap *= 2;
            }
            order[norder++] = f->node;
            sp--;
        }
    }
    root->grad_fn->grad_acc = bcml_tensor_ref(seed);
    for (size_t j = norder; j-- > 0;) {
        bcml_node *n = order[j];
        if (!n->grad_acc) continue;
        bcml_tensor *din[BCML_MAX_IN] = {0};
        for (int k = 0; k < n->n_in; k++) {
            if (!n->needs_grad[k]) continue;
            bcml_tensor *t = n->in[k];
            bcml_tensor **slot = t->grad_fn ? &t->grad_fn->grad_acc : &t->grad;
            if (*slot && ((*slot)->numel != t->numel || (*slot)->dtype != BCML_FLOAT32)) {
                st = bcml_fail(err, BCML_ERUNTIME, "backward: a .grad of the wrong shape is attached to an input of %s",
                               bcml_ops[n->op].name);
                goto done;
            }
            st = grad_buffer(slot, t, err);
            if (st) goto done;
            din[k] = *slot;
        }
        st = bcml_ops[n->op].backward(n, n->grad_acc, din, err);
        bcml_tensor_unref(n->grad_acc);
        n->grad_acc = NULL;
        if (st) goto done;
    }
done:
    for (size_t j = 0; j < norder; j++) {
        order[j]->topo_mark = 0;
        bcml_tensor_unref(order[j]->grad_acc);
        order[j]->grad_acc = NULL;
    }
    for (size_t j = 0; j < sp; j++) stack[j].node->topo_mark = 0;
    if (root->grad_fn) root->grad_fn->topo_mark = 0;
    free(stack);
    free(order);
    bcml_tensor_unref(seed);
    return st;
}

/* ---- helpers for op implementations --------------------------------------------------- */
bcml_status bcml_saved_alias(bcml_tensor **saved, const bcml_tensor *t, bcml_err *err) {
    return bcml_tensor_alias(saved, t, t->ndim, t->shape, t->offset, err);
}

bcml_status bcml_broadcast_shape(const bcml_tensor *a, const bcml_tensor *b, int *ondim,
                                 int64_t *oshape, bcml_err *err) {
    int nd = a->ndim > b->ndim ? a->ndim : b->ndim;
    for (int d = 0; d < nd; d++) {
        int da = d - (nd - a->ndim), db = d - (nd - b->ndim);
        int64_t sa = da >= 0 ? a->shape[da] : 1, sb = db >= 0 ? b->shape[db] : 1;
        if (sa != sb && sa != 1 && sb != 1) {
            char ba[64], bb[64];
            return bcml_fail(err, BCML_EVALUE,
                             "shapes %s and %s cannot be broadcast together (dimension %d: %lld vs %lld)",
                             bcml_shape_str(a, ba, sizeof ba), bcml_shape_str(b, bb, sizeof bb), d,
                             (long long)sa, (long long)sb);
        }
        oshape[d] = sa == 1 ? sb : sa;
    }
    *ondim = nd;
    return BCML_OK;
}

void bcml_pad4(int64_t d4[4], int ndim, const int64_t *shape) {
    for (int k = 0; k < 4; k++) {
        int sd = k - (4 - ndim);
        d4[k] = sd >= 0 ? shape[sd] : 1;
    }
}

void bcml_broadcast_strides4(int64_t s4[4], int ndim, const int64_t *shape) {
    int64_t d4[4], st = 1;
    bcml_pad4(d4, ndim, shape);
    for (int k = 3; k >= 0; k--) {
        s4[k] = d4[k] == 1 ? 0 : st;
        st *= d4[k];
    }
}

void bcml_reduce_broadcast_add(float *dst, int dndim, const int64_t *dshape, const float *g,
                               int gndim, const int64_t *gshape) {
    int64_t gs[4], dstride[4];
    bcml_pad4(gs, gndim, gshape);
    bcml_broadcast_strides4(dstride, dndim, dshape);
    int64_t gi = 0;
    for (int64_t i0 = 0; i0 < gs[0]; i0++)
        for (int64_t i1 = 0; i1 < gs[1]; i1++)
            for (int64_t i2 = 0; i2 < gs[2]; i2++) {
                float *drow = dst + i0 * dstride[0] + i1 * dstride[1] + i2 * dstride[2];
                if (dstride[3]) {
                    for (int64_t i3 = 0; i3 < gs[3]; i3++) drow[i3] += g[gi + i3];
                } else {
                    float acc = 0.0f;
                    for (int64_t i3 = 0; i3 < gs[3]; i3++) acc += g[gi + i3];
                    drow[0] += acc;
                }
                gi += gs[3];
            }
}
