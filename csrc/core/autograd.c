/* autograd.c: the op dispatcher (bcml_apply) and the backward engine. */
#include "bcml.h"

#include <stdatomic.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Inputs whose DATA an op's backward never reads (bit k: input k); their in-place changes do not
 * invalidate the graph, as in PyTorch (which saves only what backward needs). Shapes are always
 * kept. Ops not listed read every input's data, the safe default. */
static unsigned bw_ignores(int op) {
    switch (op) {
    case BCML_OP_ADD: case BCML_OP_SUB: return 0x3;
    case BCML_OP_ADD_SCALAR: case BCML_OP_SUM: case BCML_OP_MEAN: case BCML_OP_TRANSPOSE:
    case BCML_OP_RESHAPE: case BCML_OP_SLICE: case BCML_OP_AVG_POOL2D: case BCML_OP_ADAPTIVE_AVG_POOL2D:
    case BCML_OP_MAX_POOL2D: case BCML_OP_DROPOUT: case BCML_OP_DROPOUT2D: case BCML_OP_EXP:
    case BCML_OP_SIGMOID: case BCML_OP_TANH: case BCML_OP_SOFTMAX: case BCML_OP_LOG_SOFTMAX:
    case BCML_OP_MAX_DIM:
        return 0x1;             /* backward reads saved buffers or nothing */
    case BCML_OP_MASK_SELECT: return 0x3;    /* the selected rows are saved */
    case BCML_OP_INDEX_SELECT: return 0x1;   /* reads the index only */
    case BCML_OP_CAT: return 0x3f;
    case BCML_OP_WHERE: return 0x6;          /* reads the condition only */
    case BCML_OP_LINEAR: case BCML_OP_CONV2D: return 0x4;   /* not the bias */
    case BCML_OP_BATCH_NORM: return 0x3c;    /* x and weight only (not bias, running stats, count) */
    default: return 0;
    }
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
    for (int k = 0; k < n_in; k++)
        if (in[k] && !in[k]->storage)
            return bcml_fail(err, BCML_ERUNTIME, "%s: input %d's data was freed", def->name, k);
    bcml_node *n = calloc(1, sizeof *n);
    if (!n) return bcml_fail(err, BCML_ENOMEM, "out of memory recording %s", def->name);
    atomic_init(&n->refcount, 1);
    atomic_init(&n->owner, 0);
    n->op = op;
    if (args) n->args = *args;
    n->n_in = n_in;
    int any = 0;
    bcml_status st = BCML_OK;
    for (int k = 0; k < n_in; k++) {
        if (!in[k]) continue;
        /* the kernels read a snapshot: what another thread (or the user, through .data =) does
         * to the caller's header cannot change the storage or shape under them */
        if (ctx->pinned) n->in[k] = bcml_tensor_ref(in[k]);
        else if ((st = bcml_tensor_pin(&n->in[k], in[k], err))) break;
        n->in_version[k] = bcml_tensor_version(n->in[k]);
        n->needs_grad[k] = ctx->grad_enabled && def->backward && in[k]->requires_grad;
        any |= n->needs_grad[k];
    }
    if (st) {
        bcml_node_unref(n);
        return st;
    }
    n->recording = any;
    for (int k = 0; k < BCML_MAX_OUT; k++) out[k] = NULL;
    st = def->forward(n, ctx, out, err);
    if (st) {
        for (int k = 0; k < def->n_out; k++) { bcml_tensor_unref(out[k]); out[k] = NULL; }
        bcml_node_unref(n);
        return st;
    }
    if (any) {
        unsigned ign = bw_ignores(op);
        for (int k = 0; k < n_in; k++)
            if (n->in[k] && !(ign & (1u << k))) n->has_saved = 1;
        for (int k = 0; k < 4; k++)
            if (n->saved[k]) {
                n->saved_version[k] = bcml_tensor_version(n->saved[k]);
                n->has_saved = 1;
            }
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

static atomic_long backward_ids = 1;

/* Claims n for backward `id`: 1 newly claimed, 0 already ours, -1 another thread's backward
 * is using it. */
static int claim(bcml_node *n, long id) {
    long expected = 0;
    if (atomic_compare_exchange_strong(&n->owner, &expected, id)) return 1;
    return expected == id ? 0 : -1;
}

static const char freed_msg[] =
    "Trying to backward through the graph a second time (or directly access saved tensors after they have "
    "already been freed). Saved intermediate values of the graph are freed when you call .backward(). Specify "
    "retain_graph=True if you need to backward through the graph a second time or if you need to access saved "
    "tensors after calling backward.";

/* RuntimeError when n cannot run: its saved data was freed, or an input / buffer it reads was
 * changed in place since it was saved. */
static bcml_status check_saved(const bcml_node *n, bcml_err *err) {
    if (n->freed && n->has_saved) return bcml_fail(err, BCML_ERUNTIME, "%s (in %s)", freed_msg, bcml_ops[n->op].name);
    unsigned ign = bw_ignores(n->op);
    for (int k = 0; k < n->n_in + 4; k++) {
        const bcml_tensor *t;
        int64_t want;
        const char *what;
        int idx;
        if (k < n->n_in) {
            if (ign & (1u << k)) continue;
            t = n->in[k], want = n->in_version[k], what = "input", idx = k;
        } else {
            t = n->saved[k - n->n_in], want = n->saved_version[k - n->n_in], what = "saved tensor", idx = k - n->n_in;
        }
        if (!t || !t->storage) continue;
        int64_t now = bcml_tensor_version(t);
        if (now != want) {
            char b[64];
            return bcml_fail(err, BCML_ERUNTIME,
                             "one of the variables needed for gradient computation has been modified by an inplace "
                             "operation: [%s tensor of shape %s], %s %d of %s, is at version %lld; expected version "
                             "%lld instead",
                             bcml_dtype_name(t->dtype), bcml_shape_str(t, b, sizeof b), what, idx,
                             bcml_ops[n->op].name, (long long)now, (long long)want);
        }
    }
    return BCML_OK;
}

static int same_dims(int na, const int64_t *a, int nb, const int64_t *b) {
    if (na != nb) return 0;
    for (int d = 0; d < na; d++)
        if (a[d] != b[d]) return 0;
    return 1;
}

static const char *dims_str(int nd, const int64_t *shape, char *buf, size_t n) {
    bcml_tensor t = {.ndim = nd};
    for (int d = 0; d < nd; d++) t.shape[d] = shape[d];
    return bcml_shape_str(&t, buf, n);
}

/* RuntimeError when a gradient would land in a buffer of another shape: t (input k of n, or the
 * root when n is NULL) was given another shape by `.data =` after its producer made it (its
 * producer's gradient buffer has the producer's output shape), or a leaf's .data got another
 * shape after the graph was built (its .grad has the leaf's shape now). */
static bcml_status check_shapes(const bcml_node *n, int k, const bcml_tensor *t, bcml_err *err) {
    char b1[64], b2[64];
    const char *who = n ? bcml_ops[n->op].name : "backward";
    if (t->grad_fn) {
        const bcml_node *p = t->grad_fn;
        if (same_dims(t->ndim, t->shape, p->out_ndim, p->out_shape)) return BCML_OK;
        if (!n)
            return bcml_fail(err, BCML_ERUNTIME,
                             "backward: the tensor has shape %s, but %s computed it with shape %s (its .data was "
                             "replaced with another shape since)", bcml_shape_str(t, b1, sizeof b1),
                             bcml_ops[p->op].name, dims_str(p->out_ndim, p->out_shape, b2, sizeof b2));
        return bcml_fail(err, BCML_ERUNTIME,
                         "Function %s returned an invalid gradient at index %d - got %s but expected shape compatible "
                         "with %s (input %d of %s was computed by %s with that shape, and its .data was replaced "
                         "since)", who, k, bcml_shape_str(t, b1, sizeof b1),
                         dims_str(p->out_ndim, p->out_shape, b2, sizeof b2), k, who, bcml_ops[p->op].name);
    }
    const bcml_tensor *o = t->base;
    if (o && !same_dims(t->ndim, t->shape, o->ndim, o->shape))
        return bcml_fail(err, BCML_ERUNTIME,
                         "Function AccumulateGrad returned an invalid gradient - got %s but expected shape compatible "
                         "with %s: input %d of %s was a leaf of that shape when the graph was built, and its .data "
                         "was replaced with another shape since",
                         bcml_shape_str(t, b1, sizeof b1), bcml_shape_str(o, b2, sizeof b2), k, who);
    return BCML_OK;
}

/* Drops what a node kept for its backward (saved buffers and the inputs' data); shapes, edges and
 * the record of what it had stay, so a second backward fails cleanly. */
static void free_saved(bcml_node *n) {
    for (int k = 0; k < 4; k++) { bcml_tensor_unref(n->saved[k]); n->saved[k] = NULL; }
    for (int k = 0; k < n->n_in; k++)
        if (n->in[k]) bcml_tensor_drop_storage(n->in[k]);
    n->freed = 1;
}

/* ---- backward hooks ------------------------------------------------------------------ */
bcml_status bcml_hook_add(bcml_tensor *t, bcml_hook_fn fn, void *user, void (*release)(void *),
                          bcml_err *err) {
    if (!t->requires_grad)
        return bcml_fail(err, BCML_ERUNTIME, "cannot register a hook on a tensor that doesn't require gradient");
    bcml_hook *h = calloc(1, sizeof *h);
    if (!h) return bcml_fail(err, BCML_ENOMEM, "out of memory registering a hook");
    h->fn = fn;
    h->user = user;
    h->release = release;
    bcml_hook **p = t->grad_fn ? &t->grad_fn->hooks : &bcml_grad_owner(t)->hooks;
    while (*p) p = &(*p)->next;
    *p = h;
    return BCML_OK;
}

void *bcml_hook_find(const bcml_tensor *t, bcml_hook_fn fn) {
    const bcml_hook *h = t->grad_fn ? t->grad_fn->hooks : bcml_grad_owner((bcml_tensor *)t)->hooks;
    for (; h; h = h->next)
        if (h->fn == fn) return h->user;
    return NULL;
}

int bcml_has_hooks(const bcml_tensor *t) {
    return (t->grad_fn && t->grad_fn->hooks) || bcml_grad_owner((bcml_tensor *)t)->hooks;
}

void bcml_hooks_free(bcml_hook *h) {
    while (h) {
        bcml_hook *next = h->next;
        if (h->release) h->release(h->user);
        free(h);
        h = next;
    }
}

/* Runs hooks on *grad in order; a replacement takes grad's place (*grad is then a reference to
 * it, the old one released). */
static bcml_status run_hooks(const bcml_hook *h, bcml_tensor **grad, bcml_err *err) {
    for (; h; h = h->next) {
        bcml_tensor *rep = NULL;
        bcml_status st = h->fn(h->user, *grad, &rep, err);
        if (st) {
            bcml_tensor_unref(rep);
            return st;
        }
        if (!rep) continue;
        if (rep->dtype != BCML_FLOAT32 || !rep->storage || !bcml_same_shape(rep, *grad)) {
            char b1[64], b2[64];
            st = bcml_fail(err, rep->dtype != BCML_FLOAT32 ? BCML_ETYPE : BCML_EVALUE,
                           "backward hook: hook has changed the type or size of value: it returned a %s gradient "
                           "of shape %s for a float32 gradient of shape %s", bcml_dtype_name(rep->dtype),
                           bcml_shape_str(rep, b1, sizeof b1), bcml_shape_str(*grad, b2, sizeof b2));
            bcml_tensor_unref(rep);
            return st;
        }
        bcml_tensor_unref(*grad);
        *grad = rep;
    }
    return BCML_OK;
}

/* A leaf with hooks: its gathered gradient (*buf, shape of like), owner's .grad receiving it. */
typedef struct { bcml_tensor *owner, *like, *buf; size_t last; } hooked_leaf;

/* Hands a leaf's complete gradient *g to its hooks, then adds the result into its .grad. */
static bcml_status leaf_finish(bcml_tensor *owner, const bcml_tensor *like, bcml_tensor **g, bcml_err *err) {
    bcml_status st = owner->hooks ? run_hooks(owner->hooks, g, err) : BCML_OK;
    bcml_tensor *acc = NULL;
    if (!st) st = bcml_grad_acquire(owner, like, &acc, err);
    if (!st) {
        float *d = bcml_f32(acc);
        const float *s = bcml_f32(*g);
        for (int64_t i = 0; i < acc->numel; i++) d[i] += s[i];
    }
    bcml_tensor_unref(acc);
    return st;
}

/* Tests: new gradient buffers that an op's backward writes from scratch (bcml_node.fresh) start
 * as NaN, so an element it fails to write shows in the results. On in sanitizer builds. */
#ifdef BCML_POISON_FRESH
static atomic_int poison_fresh = 1;
#else
static atomic_int poison_fresh = 0;
#endif
void bcml_set_poison_fresh(int on) { atomic_store(&poison_fresh, on != 0); }
int bcml_get_poison_fresh(void) { return atomic_load(&poison_fresh); }

/* Whether input k of n shares its gradient buffer with another input of n that needs one (x * x,
 * or two outputs of one node): that buffer is then written by more than one part of backward. */
static int fed_twice(const bcml_node *n, int k) {
    for (int q = 0; q < n->n_in; q++)
        if (q != k && n->needs_grad[q] && n->in[q] && n->in[q]->grad_fn == n->in[k]->grad_fn) return 1;
    return 0;
}

bcml_status bcml_backward(bcml_tensor *root, const bcml_tensor *grad, int retain_graph, bcml_err *err) {
    if (!root->requires_grad)
        return bcml_fail(err, BCML_ERUNTIME,
                         "element 0 of tensors does not require grad and does not have a grad_fn");
    if (grad) {
        if (grad->dtype != BCML_FLOAT32 || grad->numel != root->numel || !grad->storage)
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
        if (!(st = check_shapes(NULL, 0, root, err)))
            st = leaf_finish(bcml_grad_owner(root), root, &seed, err);
        bcml_tensor_unref(seed);
        return st;
    }

    /* Post-order DFS over nodes: each node comes after every node it consumes. Every node
     * visited is claimed for this backward (another thread's backward through it fails). */
    const long id = atomic_fetch_add(&backward_ids, 1);
    size_t cap = 64, sp = 0, norder = 0, ocap = 64;
    frame *stack = malloc(cap * sizeof *stack);
    bcml_node **order = malloc(ocap * sizeof *order);
    bcml_tensor *held[BCML_MAX_IN] = {0};   /* leaf grad buffers referenced while a kernel runs */
    hooked_leaf *hl = NULL;                 /* leaves with hooks: their gradient is gathered first */
    size_t nhl = 0, hlcap = 0;
    int root_claimed = 0;
    if (!stack || !order) { st = bcml_fail(err, BCML_ENOMEM, "out of memory in backward"); goto done; }
    if (claim(root->grad_fn, id) < 0) {
        st = bcml_fail(err, BCML_ERUNTIME, "backward: this graph is being backpropagated by another thread");
        goto done;
    }
    root_claimed = 1;
    stack[sp++] = (frame){root->grad_fn, 0};
    while (sp) {
        frame *f = &stack[sp - 1];
        if (f->next < f->node->n_in) {
            int k = f->next++;
            bcml_tensor *t = f->node->in[k];
            if (!f->node->needs_grad[k] || !t->grad_fn) continue;
            int c = claim(t->grad_fn, id);
            if (c == 0) continue;
            if (c < 0) {
                st = bcml_fail(err, BCML_ERUNTIME, "backward: part of this graph is being backpropagated by another thread");
                goto done;
            }
            if (sp == cap) {
                frame *ns = realloc(stack, 2 * cap * sizeof *stack);
                if (!ns) {
                    atomic_store(&t->grad_fn->owner, 0);
                    st = bcml_fail(err, BCML_ENOMEM, "out of memory in backward");
                    goto done;
                }
                stack = ns; cap *= 2;
            }
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
    /* Nothing runs unless every node can: freed graphs, in-place changes and gradients that would
     * not fit their buffers fail up front. */
    if ((st = check_shapes(NULL, 0, root, err))) goto done;
    for (size_t j = 0; j < norder; j++) {
        bcml_node *n = order[j];
        if ((st = check_saved(n, err))) goto done;
        for (int k = 0; k < n->n_in; k++)
            if (n->needs_grad[k] && (st = check_shapes(n, k, n->in[k], err))) goto done;
    }
    /* a leaf with hooks gets its gradient in a buffer of its own, handed to its hooks and added
     * into its .grad after the last node feeding it has run (hl[i].last: that node's index) */
    for (size_t j = norder; j-- > 0;) {
        bcml_node *n = order[j];
        for (int k = 0; k < n->n_in; k++) {
            if (!n->needs_grad[k] || n->in[k]->grad_fn || !bcml_grad_owner(n->in[k])->hooks) continue;
            bcml_tensor *o = bcml_grad_owner(n->in[k]);
            size_t i = 0;
            while (i < nhl && hl[i].owner != o) i++;
            if (i == nhl) {
                if (nhl == hlcap) {
                    hooked_leaf *nh = realloc(hl, (hlcap ? 2 * hlcap : 4) * sizeof *hl);
                    if (!nh) { st = bcml_fail(err, BCML_ENOMEM, "out of memory in backward"); goto done; }
                    hl = nh; hlcap = hlcap ? 2 * hlcap : 4;
                }
                hl[nhl++] = (hooked_leaf){o, n->in[k], NULL, j};
            }
            hl[i].last = j;
        }
    }
    root->grad_fn->grad_acc = bcml_tensor_ref(seed);
    for (size_t j = norder; j-- > 0;) {
        bcml_node *n = order[j];
        if (n->hooks && n->grad_acc && (st = run_hooks(n->hooks, &n->grad_acc, err))) goto done;
        if (!n->grad_acc) continue;
        bcml_tensor *din[BCML_MAX_IN] = {0};
        for (int k = 0; k < n->n_in; k++) {
            if (!n->needs_grad[k]) continue;
            bcml_tensor *t = n->in[k];
            hooked_leaf *h = NULL;
            for (size_t i = 0; i < nhl && !t->grad_fn && !h; i++)
                if (hl[i].owner == bcml_grad_owner(t)) h = &hl[i];
            if (h) {
                if (!h->buf && (st = bcml_tensor_new(&h->buf, BCML_FLOAT32, t->ndim, t->shape, 1, err))) goto done;
                din[k] = h->buf;
            } else if (t->grad_fn) {
                bcml_tensor **slot = &t->grad_fn->grad_acc;
                if (!*slot) {
                    /* a new buffer: written from scratch by an op that can (fresh_ok), else zeroed */
                    const int fill = (bcml_ops[n->op].fresh_ok >> k & 1u) && !fed_twice(n, k);
                    if ((st = bcml_tensor_new(slot, BCML_FLOAT32, t->ndim, t->shape, !fill, err))) goto done;
                    if (fill) {
                        n->fresh |= 1u << k;
                        if (atomic_load_explicit(&poison_fresh, memory_order_relaxed))
                            memset(bcml_data(*slot), 0xff, bcml_nbytes(*slot)); /* NaN: what is not written shows */
                    }
                }
                din[k] = *slot;
            } else {
                /* the same leaf may feed several inputs of n (x * x): one buffer */
                for (int q = 0; q < k && !din[k]; q++)
                    if (held[q] && n->in[q] && !n->in[q]->grad_fn && bcml_grad_owner(n->in[q]) == bcml_grad_owner(t))
                        din[k] = held[q];
                if (!din[k]) {
                    if ((st = bcml_grad_acquire(bcml_grad_owner(t), t, &held[k], err))) goto done;
                    din[k] = held[k];
                }
            }
        }
        st = bcml_ops[n->op].backward(n, n->grad_acc, din, err);
        n->fresh = 0;
        for (int k = 0; k < BCML_MAX_IN; k++) { bcml_tensor_unref(held[k]); held[k] = NULL; }
        bcml_tensor_unref(n->grad_acc);
        n->grad_acc = NULL;
        if (st) goto done;
        if (!retain_graph) free_saved(n);
        for (size_t i = 0; i < nhl; i++)
            if (hl[i].last == j && hl[i].buf) {
                hl[i].last = SIZE_MAX;   /* done */
                if ((st = leaf_finish(hl[i].owner, hl[i].like, &hl[i].buf, err))) goto done;
            }
    }
    for (size_t i = 0; i < nhl; i++)   /* leaves whose last consumer received no gradient */
        if (hl[i].last != SIZE_MAX && hl[i].buf && (st = leaf_finish(hl[i].owner, hl[i].like, &hl[i].buf, err)))
            goto done;
done:
    for (size_t i = 0; i < nhl; i++) bcml_tensor_unref(hl[i].buf);
    free(hl);
    for (int k = 0; k < BCML_MAX_IN; k++) bcml_tensor_unref(held[k]);
    for (size_t j = 0; j < norder; j++) {
        bcml_tensor_unref(order[j]->grad_acc);
        order[j]->grad_acc = NULL;
        atomic_store(&order[j]->owner, 0);
    }
    for (size_t j = 0; j < sp; j++) atomic_store(&stack[j].node->owner, 0);
    if (root_claimed) atomic_store(&root->grad_fn->owner, 0);
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
