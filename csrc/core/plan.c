/* plan.c: record and replay. A recorded training step (the bcml_apply calls of one eager
 * forward + loss) becomes a plan of slots; replaying the plan on each batch, then running
 * backward and the optimizer in C, trains an epoch without returning to Python. Replay calls
 * the same dispatcher and kernels as eager code, in the same order, drawing from the same
 * generators, so it computes what the eager loop would. */
#include "bcml.h"

#include <stdlib.h>
#include <string.h>

/* ---- recorder ------------------------------------------------------------------------------ */
bcml_status bcml_recorder_add(bcml_recorder *r, const bcml_rec_call *c, bcml_err *err) {
    if (r->n == r->cap) {
        int64_t cap = r->cap ? 2 * r->cap : 64;
        bcml_rec_call *nc = realloc(r->calls, (size_t)cap * sizeof *nc);
        if (!nc) return bcml_fail(err, BCML_ENOMEM, "out of memory recording a step");
        r->calls = nc;
        r->cap = cap;
    }
    bcml_rec_call *d = &r->calls[r->n++];
    *d = *c;
    for (int k = 0; k < BCML_MAX_IN; k++) d->in[k] = k < c->n_in ? bcml_tensor_ref(c->in[k]) : NULL;
    for (int k = 0; k < BCML_MAX_OUT; k++) d->out[k] = k < c->n_out ? bcml_tensor_ref(c->out[k]) : NULL;
    return BCML_OK;
}

void bcml_recorder_taint(bcml_recorder *r, const char *why) {
    if (r->tainted) return;
    r->tainted = 1;
    size_t n = strlen(why);
    if (n >= sizeof r->why) n = sizeof r->why - 1;
    memcpy(r->why, why, n);
    r->why[n] = 0;
}

void bcml_recorder_clear(bcml_recorder *r) {
    for (int64_t i = 0; i < r->n; i++) {
        for (int k = 0; k < BCML_MAX_IN; k++) bcml_tensor_unref(r->calls[i].in[k]);
        for (int k = 0; k < BCML_MAX_OUT; k++) bcml_tensor_unref(r->calls[i].out[k]);
    }
    free(r->calls);
    memset(r, 0, sizeof *r);
}

/* ---- plan building ---------------------------------------------------------------------------- */
/* Tensor -> slot map: open addressing on the pointer (records have up to a few thousand). */
typedef struct { const bcml_tensor **keys; int32_t *vals; size_t cap; } slot_map;

static size_t ptr_hash(const void *p, size_t cap) {
    uint64_t x = (uint64_t)(uintptr_t)p;
    x ^= x >> 33; x *= 0xff51afd7ed558ccdULL; x ^= x >> 33;
    return (size_t)x & (cap - 1);
}

static int32_t map_get(const slot_map *m, const bcml_tensor *t) {
    for (size_t h = ptr_hash(t, m->cap);; h = (h + 1) & (m->cap - 1)) {
        if (!m->keys[h]) return -1;
        if (m->keys[h] == t) return m->vals[h];
    }
}

static void map_put(slot_map *m, const bcml_tensor *t, int32_t v) {
    size_t h = ptr_hash(t, m->cap);
    while (m->keys[h] && m->keys[h] != t) h = (h + 1) & (m->cap - 1);
    m->keys[h] = t;
    m->vals[h] = v;
}

void bcml_plan_free(bcml_plan *p) {
    if (!p) return;
    if (p->consts)
        for (int32_t s = 0; s < p->n_slots; s++) bcml_tensor_unref(p->consts[s]);
    free(p->consts);
    free(p->last_use);
    free(p->steps);
    free(p);
}

/* Ops that change state besides their outputs: they run even when nothing reads them. */
static int is_mark(int op) { return op <= BCML_REC_BACKWARD; }

static int has_effects(const bcml_plan_step *s) {
    return s->gen != NULL || s->op == BCML_OP_BATCH_NORM || s->op == BCML_OP_DROPOUT ||
           s->op == BCML_OP_DROPOUT2D || is_mark(s->op);
}

/* Drops steps whose outputs neither the loss, the outputs nor a kept step reads (e.g. the
 * softmax of a model's triple when the loss takes the logits), then recomputes last uses. */
static bcml_status prune(bcml_plan *p, bcml_err *err) {
    char *need = calloc((size_t)p->n_slots + 1, 1);
    if (!need) return bcml_fail(err, BCML_ENOMEM, "out of memory building a plan");
    if (p->loss_slot >= 0) need[p->loss_slot] = 1;
    for (int j = 0; j < p->n_outputs; j++) need[p->output_slot[j]] = 1;
    int32_t kept = 0;
    for (int32_t i = p->n_steps - 1; i >= 0; i--) {
        bcml_plan_step *s = &p->steps[i];
        int live = has_effects(s);
        for (int k = 0; k < s->n_out; k++) live |= need[s->out_slot[k]];
        if (!live) { s->n_in = -1; continue; }   /* marked dead */
        kept++;
        for (int k = 0; k < s->n_in; k++) if (s->in_slot[k] >= 0) need[s->in_slot[k]] = 1;
    }
    free(need);
    int32_t w = 0;
    for (int32_t i = 0; i < p->n_steps; i++)
        if (p->steps[i].n_in >= 0) p->steps[w++] = p->steps[i];
    p->n_steps = kept;
    for (int32_t q = 0; q < p->n_slots; q++) p->last_use[q] = -1;
    for (int32_t i = 0; i < p->n_steps; i++) {
        const bcml_plan_step *s = &p->steps[i];
        for (int k = 0; k < s->n_in; k++) if (s->in_slot[k] >= 0) p->last_use[s->in_slot[k]] = i;
        for (int k = 0; k < s->n_out; k++) p->last_use[s->out_slot[k]] = i;
    }
    for (int j = 0; j < p->n_inputs; j++) p->in_used[j] = p->last_use[p->input_slot[j]] >= 0;
    if (p->loss_slot >= 0) p->last_use[p->loss_slot] = p->n_steps;
    for (int j = 0; j < p->n_outputs; j++) p->last_use[p->output_slot[j]] = p->n_steps;
    for (int j = 0; j < p->n_inputs; j++) p->last_use[p->input_slot[j]] = p->n_steps;
    return BCML_OK;
}

bcml_status bcml_plan_build(bcml_plan **out, const bcml_recorder *r, bcml_tensor *const *inputs,
                            int n_inputs, bcml_tensor *loss, bcml_tensor *const *outputs,
                            int n_outputs, bcml_err *err) {
    *out = NULL;
    if (r->tainted)
        return bcml_fail(err, BCML_EVALUE, "the step cannot be replayed: %s", r->why);
    if (n_inputs < 0 || n_inputs > BCML_PLAN_MAX_IO || n_outputs < 0 || n_outputs > BCML_PLAN_MAX_IO)
        return bcml_fail(err, BCML_EVALUE, "a plan takes at most %d inputs and %d outputs",
                         BCML_PLAN_MAX_IO, BCML_PLAN_MAX_IO);
    if (r->n == 0 || r->n > (1 << 20))
        return bcml_fail(err, BCML_EVALUE, "the step ran %lld ops; nothing to replay", (long long)r->n);
    /* upper bound on slots: inputs + every input and output of every call */
    size_t max_slots = (size_t)n_inputs + (size_t)r->n * (BCML_MAX_IN + BCML_MAX_OUT);
    size_t cap = 16;
    while (cap < 2 * max_slots) cap *= 2;
    slot_map m = {calloc(cap, sizeof *m.keys), calloc(cap, sizeof *m.vals), cap};
    bcml_plan *p = calloc(1, sizeof *p);
    bcml_status st = BCML_OK;
    if (!m.keys || !m.vals || !p) { st = bcml_fail(err, BCML_ENOMEM, "out of memory building a plan"); goto fail; }
    p->steps = calloc((size_t)r->n, sizeof *p->steps);
    p->consts = calloc(max_slots, sizeof *p->consts);
    p->last_use = calloc(max_slots, sizeof *p->last_use);
    if (!p->steps || !p->consts || !p->last_use) {
        st = bcml_fail(err, BCML_ENOMEM, "out of memory building a plan");
        goto fail;
    }
    p->n_steps = (int32_t)r->n;
    p->n_inputs = n_inputs;
    p->n_outputs = n_outputs;
    for (int j = 0; j < n_inputs; j++) {
        if (!inputs[j] || map_get(&m, inputs[j]) >= 0) {
            st = bcml_fail(err, BCML_EVALUE, "plan inputs must be distinct tensors");
            goto fail;
        }
        map_put(&m, inputs[j], p->n_slots);
        p->input_slot[j] = p->n_slots++;
        p->in_dtype[j] = inputs[j]->dtype;
        p->in_ndim[j] = inputs[j]->ndim;
        memcpy(p->in_shape[j], inputs[j]->shape, sizeof p->in_shape[j]);
    }
    for (int64_t i = 0; i < r->n; i++) {
        const bcml_rec_call *c = &r->calls[i];
        bcml_plan_step *s = &p->steps[i];
        s->op = c->op;
        s->args = c->args;
        s->n_in = c->n_in;
        s->n_out = c->n_out;
        s->grad_enabled = c->grad_enabled;
        s->gen = c->gen;
        for (int k = 0; k < BCML_MAX_IN; k++) s->in_slot[k] = -1;
        for (int k = 0; k < BCML_MAX_OUT; k++) s->out_slot[k] = -1;
        for (int k = 0; k < c->n_in; k++) {
            if (!c->in[k]) continue;
            int32_t slot = map_get(&m, c->in[k]);
            if (slot < 0) { /* neither data nor made by the step: a constant (parameter, buffer) */
                slot = p->n_slots++;
                map_put(&m, c->in[k], slot);
                p->consts[slot] = bcml_tensor_ref(c->in[k]);
            }
            s->in_slot[k] = slot;
            p->last_use[slot] = (int32_t)i;
        }
        if (c->op == BCML_REC_BACKWARD && (s->in_slot[0] < 0 || p->consts[s->in_slot[0]])) {
            st = bcml_fail(err, BCML_EVALUE, "backward() is called on a tensor the step did not compute");
            goto fail;
        }
        if (c->op == BCML_REC_OPTIM) {
            if (c->args.i[0] < 0 || c->args.i[0] >= 1024) {
                st = bcml_fail(err, BCML_EVALUE, "an optimizer step's index is out of range");
                goto fail;
            }
            if (c->args.i[0] + 1 > p->n_sets) p->n_sets = (int32_t)c->args.i[0] + 1;
        }
        for (int k = 0; k < c->n_out; k++) {
            /* a tensor made by this call is new; if a pointer repeats (the record keeps every
             * tensor alive, so it cannot), the newest producer wins */
            int32_t slot = p->n_slots++;
            map_put(&m, c->out[k], slot);
            s->out_slot[k] = slot;
            p->last_use[slot] = (int32_t)i;
        }
    }
    p->loss_slot = -1;
    if (loss) {
        int32_t slot = map_get(&m, loss);
        if (slot < 0 || p->consts[slot]) {
            st = bcml_fail(err, BCML_EVALUE, "the loss was not computed by the recorded ops");
            goto fail;
        }
        p->loss_slot = slot;
        p->last_use[slot] = p->n_steps;
    }
    for (int j = 0; j < n_outputs; j++) {
        int32_t slot = outputs[j] ? map_get(&m, outputs[j]) : -1;
        if (slot < 0 || p->consts[slot]) {
            st = bcml_fail(err, BCML_EVALUE, "output %d was not computed by the recorded ops", j);
            goto fail;
        }
        p->output_slot[j] = slot;
        p->last_use[slot] = p->n_steps;
    }
    for (int j = 0; j < n_inputs; j++) p->last_use[p->input_slot[j]] = p->n_steps;
    if ((st = prune(p, err))) goto fail;
    free(m.keys);
    free(m.vals);
    *out = p;
    return BCML_OK;
fail:
    free(m.keys);
    free(m.vals);
    bcml_plan_free(p);
    return st;
}

int bcml_plan_matches(const bcml_plan *p, bcml_tensor *const *inputs, int n_inputs) {
    if (n_inputs != p->n_inputs) return 0;
    for (int j = 0; j < n_inputs; j++) {
        const bcml_tensor *t = inputs[j];
        if (!t) {
            if (p->in_used[j]) return 0;
            continue;
        }
        if (t->dtype != p->in_dtype[j] || t->ndim != p->in_ndim[j]) return 0;
        for (int d = 0; d < t->ndim; d++)
            if (t->shape[d] != p->in_shape[j][d]) return 0;
    }
    return 1;
}

/* ---- pinned copies ------------------------------------------------------------------------------ */
bcml_status bcml_plan_pin(const bcml_plan *p, bcml_plan **out, bcml_err *err) {
    *out = NULL;
    bcml_plan *c = malloc(sizeof *c);
    bcml_tensor **consts = calloc((size_t)p->n_slots + 1, sizeof *consts);
    if (!c || !consts) {
        free(c);
        free(consts);
        return bcml_fail(err, BCML_ENOMEM, "out of memory pinning a plan");
    }
    *c = *p;
    c->consts = consts;
    for (int32_t s = 0; s < p->n_slots; s++) {
        if (!p->consts[s]) continue;
        bcml_status st = bcml_tensor_pin(&consts[s], p->consts[s], err);
        if (st) {
            bcml_plan_unpin(c);
            return st;
        }
    }
    *out = c;
    return BCML_OK;
}

void bcml_plan_unpin(bcml_plan *c) {
    if (!c) return;
    for (int32_t s = 0; s < c->n_slots; s++) bcml_tensor_unref(c->consts[s]);
    free(c->consts);
    free(c);
}

/* ---- replay ------------------------------------------------------------------------------------ */
static bcml_status optim_step(bcml_optim_group *groups, int n_groups, int clear, bcml_err *err);

/* A recorded backward, optimizer step or gradient clear (bcml.compile's steps). */
static bcml_status run_mark(const bcml_plan_step *s, bcml_tensor **in, bcml_optim_set *sets, int n_sets,
                            bcml_err *err) {
    if (!sets)
        return bcml_fail(err, BCML_EVALUE, "replay: this plan runs backward or optimizer steps (use bcml_plan_exec)");
    if (s->op == BCML_REC_BACKWARD) return bcml_backward(in[0], in[1], (int)s->args.i[0], err);
    if (s->op == BCML_REC_OPTIM) {
        if (s->args.i[0] >= n_sets)
            return bcml_fail(err, BCML_EVALUE, "replay: optimizer %lld of the step was not given",
                             (long long)s->args.i[0]);
        return optim_step(sets[s->args.i[0]].groups, sets[s->args.i[0]].n_groups, 0, err);
    }
    bcml_tensor *owner = bcml_grad_owner(in[0]);
    if (s->args.i[0] == 0) {
        bcml_grad_set(owner, NULL);
    } else {
        bcml_tensor *g = bcml_grad_get(owner);
        if (g) {
            memset(bcml_data(g), 0, bcml_nbytes(g));
            bcml_tensor_bump_version(g);
        }
        bcml_tensor_unref(g);
    }
    return BCML_OK;
}

static bcml_status run_steps(const bcml_plan *p, bcml_tensor *const *inputs, bcml_optim_set *sets, int n_sets,
                             bcml_tensor **loss, bcml_tensor **outputs, bcml_err *err) {
    if (!bcml_plan_matches(p, inputs, p->n_inputs))
        return bcml_fail(err, BCML_EVALUE, "replay: inputs do not match the recorded shapes");
    bcml_tensor **slot = calloc((size_t)p->n_slots + 1, sizeof *slot);
    if (!slot) return bcml_fail(err, BCML_ENOMEM, "out of memory replaying a step");
    for (int32_t s = 0; s < p->n_slots; s++) if (p->consts[s]) slot[s] = bcml_tensor_ref(p->consts[s]);
    for (int j = 0; j < p->n_inputs; j++) slot[p->input_slot[j]] = bcml_tensor_ref(inputs[j]); /* may be NULL if unused */
    bcml_status st = BCML_OK;
    for (int32_t i = 0; i < p->n_steps && !st; i++) {
        const bcml_plan_step *s = &p->steps[i];
        bcml_tensor *in[BCML_MAX_IN] = {0}, *o[BCML_MAX_OUT] = {0};
        for (int k = 0; k < s->n_in; k++) in[k] = s->in_slot[k] >= 0 ? slot[s->in_slot[k]] : NULL;
        if (s->op == BCML_REC_ALIAS) {
            st = bcml_tensor_alias(&o[0], in[0], in[0]->ndim, in[0]->shape, in[0]->offset, err);
        } else if (is_mark(s->op)) {
            st = run_mark(s, in, sets, n_sets, err);
        } else {
            bcml_ctx ctx = {.grad_enabled = s->grad_enabled, .gen = s->gen};
            st = bcml_apply(&ctx, s->op, &s->args, in, s->n_in, o, err);
        }
        if (st) break;
        for (int k = 0; k < s->n_out; k++) slot[s->out_slot[k]] = o[k];
        /* drop what no later step reads (the graph keeps what backward needs) */
        for (int k = 0; k < s->n_in; k++) {
            int32_t q = s->in_slot[k];
            if (q >= 0 && p->last_use[q] == i && !p->consts[q]) { bcml_tensor_unref(slot[q]); slot[q] = NULL; }
        }
        for (int k = 0; k < s->n_out; k++) {
            int32_t q = s->out_slot[k];
            if (p->last_use[q] == i) { bcml_tensor_unref(slot[q]); slot[q] = NULL; }
        }
    }
    if (!st) {
        if (loss) *loss = p->loss_slot >= 0 ? bcml_tensor_ref(slot[p->loss_slot]) : NULL;
        for (int j = 0; j < p->n_outputs; j++) outputs[j] = bcml_tensor_ref(slot[p->output_slot[j]]);
    }
    for (int32_t s = 0; s < p->n_slots; s++) bcml_tensor_unref(slot[s]);
    free(slot);
    return st;
}

bcml_status bcml_plan_run(const bcml_plan *p, bcml_tensor *const *inputs, bcml_tensor **loss,
                          bcml_tensor **outputs, bcml_err *err) {
    return run_steps(p, inputs, NULL, 0, loss, outputs, err);
}

bcml_status bcml_plan_exec(const bcml_plan *p, bcml_tensor *const *inputs, bcml_optim_set *sets,
                           int n_sets, bcml_tensor **outputs, bcml_err *err) {
    if (n_sets < p->n_sets)
        return bcml_fail(err, BCML_EVALUE, "replay: the step runs %d optimizers, %d given", (int)p->n_sets, n_sets);
    return run_steps(p, inputs, sets ? sets : (bcml_optim_set[1]){{NULL, 0}}, n_sets, NULL, outputs, err);
}

/* ---- batches ------------------------------------------------------------------------------------ */
bcml_status bcml_batches_check(const bcml_batches *d, bcml_err *err) {
    if (d->n_data < 1 || d->n_data > BCML_PLAN_MAX_IO)
        return bcml_fail(err, BCML_EVALUE, "batches: 1 to %d data tensors, got %d", BCML_PLAN_MAX_IO, d->n_data);
    int64_t N = -1;
    for (int j = 0; j < d->n_data; j++) {
        const bcml_tensor *t = d->full[j];
        if (!t || t->ndim < 1)
            return bcml_fail(err, BCML_EVALUE, "batches: data %d must have a row dimension", j);
        if (N >= 0 && t->shape[0] != N)
            return bcml_fail(err, BCML_EVALUE, "batches: data %d has %lld rows, data 0 has %lld", j,
                             (long long)t->shape[0], (long long)N);
        N = t->shape[0];
    }
    if (d->nb < 0 || !d->bounds) return bcml_fail(err, BCML_EVALUE, "batches: bounds missing");
    int64_t prev = 0;
    for (int64_t b = 0; b <= d->nb; b++) {
        int64_t v = d->bounds[b];
        if (v < prev || v > N || (b == 0 && v != 0))
            return bcml_fail(err, BCML_EVALUE, "batches: bounds must rise from 0 to at most %lld", (long long)N);
        prev = v;
    }
    if (d->order)
        for (int64_t i = 0; i < d->bounds[d->nb]; i++)
            if (d->order[i] < 0 || d->order[i] >= N)
                return bcml_fail(err, BCML_EINDEX, "batches: order[%lld] = %lld is out of range [0, %lld)",
                                 (long long)i, (long long)d->order[i], (long long)N);
    return BCML_OK;
}

/* dst rows = src rows order[lo..hi) of rowb bytes each */
static void gather_rows(char *dst, const char *src, const int64_t *order, int64_t lo, int64_t hi, size_t rowb) {
    if (rowb == 8) {
        uint64_t *o = (uint64_t *)(void *)dst;
        const uint64_t *s = (const uint64_t *)(const void *)src;
        for (int64_t i = lo; i < hi; i++) o[i - lo] = s[order[i]];
    } else if (rowb == 4) {
        uint32_t *o = (uint32_t *)(void *)dst;
        const uint32_t *s = (const uint32_t *)(const void *)src;
        for (int64_t i = lo; i < hi; i++) o[i - lo] = s[order[i]];
    } else {
        for (int64_t i = lo; i < hi; i++) {
            if (i + 4 < hi) __builtin_prefetch(src + (size_t)order[i + 4] * rowb);
            memcpy(dst + (size_t)(i - lo) * rowb, src + (size_t)order[i] * rowb, rowb);
        }
    }
}

bcml_status bcml_batch_get(const bcml_batches *d, int64_t b, bcml_tensor **out, bcml_err *err) {
    return bcml_batch_get_some(d, b, NULL, out, err);
}

bcml_status bcml_batch_get_some(const bcml_batches *d, int64_t b, const uint8_t *want, bcml_tensor **out,
                                bcml_err *err) {
    int64_t lo = d->bounds[b], hi = d->bounds[b + 1];
    bcml_status st = BCML_OK;
    for (int j = 0; j < d->n_data; j++) out[j] = NULL;
    for (int j = 0; j < d->n_data && !st; j++) {
        if (want && !want[j]) continue;
        const bcml_tensor *t = d->full[j];
        int64_t shape[BCML_MAX_DIMS];
        memcpy(shape, t->shape, sizeof shape);
        shape[0] = hi - lo;
        size_t rowb = t->shape[0] ? bcml_nbytes(t) / (size_t)t->shape[0] : 0;
        if (!d->order) {
            st = bcml_tensor_alias(&out[j], t, t->ndim, shape, t->offset + (size_t)lo * rowb, err);
        } else {
            st = bcml_tensor_new(&out[j], t->dtype, t->ndim, shape, 0, err);
            if (!st) gather_rows((char *)bcml_data(out[j]), (const char *)bcml_data(t), d->order, lo, hi, rowb);
        }
    }
    if (st)
        for (int j = 0; j < d->n_data; j++) { bcml_tensor_unref(out[j]); out[j] = NULL; }
    return st;
}

static const bcml_plan *find_plan(bcml_plan *const *plans, int n_plans, bcml_tensor *const *in, int n_in) {
    for (int k = 0; k < n_plans; k++)
        if (plans[k] && bcml_plan_matches(plans[k], in, n_in)) return plans[k];
    return NULL;
}

/* The data inputs some plan reads (unread ones, e.g. cached h1 outputs a loss does not use,
 * are not gathered). */
static void used_inputs(bcml_plan *const *plans, int n_plans, int n_data, uint8_t *want) {
    for (int j = 0; j < n_data; j++) {
        want[j] = 0;
        for (int k = 0; k < n_plans; k++)
            if (plans[k] && j < plans[k]->n_inputs && plans[k]->in_used[j]) want[j] = 1;
    }
}

/* clear: drop the gradients afterwards (training epochs; a compiled step keeps them, as eager) */
static bcml_status optim_step(bcml_optim_group *groups, int n_groups, int clear, bcml_err *err) {
    bcml_status st = BCML_OK;
    for (int g = 0; g < n_groups && !st; g++) {
        bcml_optim_group *G = &groups[g];
        if (G->kind == 0) st = bcml_sgd_step(G->params, G->s0, G->n, &G->sgd, err);
        else st = bcml_adam_step(G->params, G->s0, G->s1, G->s2, G->steps, G->n, &G->adam, err);
    }
    for (int g = 0; g < n_groups && clear; g++)
        for (int64_t k = 0; k < groups[g].n; k++) bcml_grad_set(bcml_grad_owner(groups[g].params[k]), NULL);
    return st;
}

bcml_status bcml_plan_train(bcml_plan *const *plans, int n_plans, const bcml_batches *d,
                            int64_t start, bcml_optim_group *groups, int n_groups,
                            float *losses, int64_t *next, bcml_err *err) {
    bcml_status st = bcml_batches_check(d, err);
    *next = start;
    if (st) return st;
    uint8_t want[BCML_PLAN_MAX_IO];
    used_inputs(plans, n_plans, d->n_data, want);
    for (int64_t b = start; b < d->nb; b++) {
        bcml_tensor *in[BCML_PLAN_MAX_IO];
        if ((st = bcml_batch_get_some(d, b, want, in, err))) return st;
        const bcml_plan *p = find_plan(plans, n_plans, in, d->n_data);
        bcml_tensor *loss = NULL;
        if (p && p->loss_slot < 0)
            st = bcml_fail(err, BCML_EVALUE, "replay: a training plan needs a loss");
        if (p && !st) st = bcml_plan_run(p, in, &loss, NULL, err);
        for (int j = 0; j < d->n_data; j++) bcml_tensor_unref(in[j]);
        if (!p) { *next = b; return BCML_OK; }
        if (!st) {
            if (loss->dtype != BCML_FLOAT32 || loss->numel != 1)
                st = bcml_fail(err, BCML_EVALUE, "replay: the loss must be a float32 scalar");
            else {
                losses[b] = bcml_f32(loss)[0];
                st = bcml_backward(loss, NULL, 0, err);
            }
        }
        bcml_tensor_unref(loss);
        if (!st) st = optim_step(groups, n_groups, 1, err);
        if (st) { *next = b; return st; }
        *next = b + 1;
    }
    return BCML_OK;
}

bcml_status bcml_plan_predict(bcml_plan *const *plans, int n_plans, const bcml_batches *d,
                              int64_t start, bcml_tensor *const *outs, int n_outs, int64_t *next,
                              bcml_err *err) {
    bcml_status st = bcml_batches_check(d, err);
    *next = start;
    if (st) return st;
    int64_t N = d->full[0]->shape[0];
    for (int j = 0; j < n_outs; j++)
        if (!outs[j] || outs[j]->ndim < 1 || outs[j]->shape[0] != N)
            return bcml_fail(err, BCML_EVALUE, "predict: output buffer %d must have %lld rows", j, (long long)N);
    uint8_t want[BCML_PLAN_MAX_IO];
    used_inputs(plans, n_plans, d->n_data, want);
    for (int64_t b = start; b < d->nb; b++) {
        bcml_tensor *in[BCML_PLAN_MAX_IO], *o[BCML_PLAN_MAX_IO] = {0};
        if ((st = bcml_batch_get_some(d, b, want, in, err))) return st;
        const bcml_plan *p = find_plan(plans, n_plans, in, d->n_data);
        if (p && p->n_outputs != n_outs)
            st = bcml_fail(err, BCML_EVALUE, "predict: the plan has %d outputs, %d buffers given", p->n_outputs, n_outs);
        if (p && !st) st = bcml_plan_run(p, in, NULL, o, err);
        for (int j = 0; j < d->n_data; j++) bcml_tensor_unref(in[j]);
        if (!p) { *next = b; return BCML_OK; }
        int64_t lo = d->bounds[b], hi = d->bounds[b + 1];
        for (int j = 0; j < n_outs && !st; j++) {
            const bcml_tensor *src = o[j], *dst = outs[j];
            size_t rowb = dst->shape[0] ? bcml_nbytes(dst) / (size_t)dst->shape[0] : 0;
            if (src->dtype != dst->dtype || src->ndim < 1 || src->shape[0] != hi - lo ||
                (size_t)(hi - lo) * rowb != bcml_nbytes(src)) {
                st = bcml_fail(err, BCML_EVALUE, "predict: output %d of batch %lld does not fit its buffer", j, (long long)b);
                break;
            }
            const char *s = (const char *)bcml_data(src);
            char *t = (char *)bcml_data(dst);
            for (int64_t i = lo; i < hi; i++) {
                int64_t row = d->order ? d->order[i] : i;
                memcpy(t + (size_t)row * rowb, s + (size_t)(i - lo) * rowb, rowb);
            }
        }
        for (int j = 0; j < n_outs; j++) bcml_tensor_unref(o[j]);
        if (st) { *next = b; return st; }
        *next = b + 1;
    }
    return BCML_OK;
}
