/* replay_py.c: recording a step from Python and replaying it in C (plan.c).
 *
 * record_begin() makes the calling thread record every op it applies (module.c calls the hooks
 * below); record_end() returns the Recording. Reading or writing tensor data outside the ops
 * (numpy(), item(), in-place copies, random fills, backward, optimizer steps) taints the
 * recording: such a step may depend on its data in Python, so it is not replayed.
 * plan_build() turns a Recording into a Plan; plan_train() / plan_predict() run an epoch's
 * batches with the GIL released. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#define PY_ARRAY_UNIQUE_SYMBOL bcml_ARRAY_API
#define NO_IMPORT_ARRAY
#include <numpy/arrayobject.h>
#include <stdlib.h>
#include <string.h>

#include "pycore.h"

typedef struct {
    PyObject_HEAD
    bcml_recorder rec;
    PyObject *gens;   /* list: the Generator objects the recorded ops drew from (kept alive) */
    int steps;        /* a whole step (bcml.compile): backward and optimizer steps are recorded */
} PyRecording;

typedef struct {
    PyObject_HEAD
    bcml_plan *p;
    PyObject *gens;
} PyPlan;

static _Thread_local PyRecording *active = NULL;
static _Thread_local int paused = 0;

int bcml_py_recording(void) { return active != NULL && !paused; }
int bcml_py_recording_steps(void) { return active != NULL && !paused && active->steps; }

int bcml_py_record_set_pause(int f) {
    int prev = paused;
    paused = f;
    return prev;
}

int bcml_py_record_mark(int kind, bcml_tensor *t, bcml_tensor *seed, int64_t i0) {
    if (!bcml_py_recording_steps()) return 0;
    bcml_rec_call c;
    memset(&c, 0, sizeof c);
    c.op = kind;
    c.args.i[0] = i0;
    c.n_in = kind == BCML_REC_OPTIM ? 0 : (kind == BCML_REC_BACKWARD ? 2 : 1);
    c.in[0] = t;
    c.in[1] = seed;
    bcml_err err;
    bcml_status st = bcml_recorder_add(&active->rec, &c, &err);
    if (st) { bcml_py_raise(st, &err); return -1; }
    return 0;
}

void bcml_py_record_taint(const char *why) {
    if (active && !paused) bcml_recorder_taint(&active->rec, why);
}

static int keep_gen(PyObject *list, PyObject *gen) {
    if (!gen || gen == Py_None) return 0;
    int has = PySequence_Contains(list, gen);
    if (has < 0) return -1;
    return has ? 0 : PyList_Append(list, gen);
}

int bcml_py_record_call(int op, const bcml_args *a, bcml_tensor *const *in, int n_in,
                        bcml_tensor *const *out, int n_out, int grad_enabled, PyObject *genobj) {
    if (!active || paused) return 0;
    bcml_rec_call c;
    memset(&c, 0, sizeof c);
    c.op = op;
    if (a) c.args = *a;
    c.n_in = n_in;
    c.n_out = n_out;
    for (int k = 0; k < n_in; k++) {
        c.in[k] = in[k];
        if (in[k] && bcml_has_hooks(in[k]))   /* a replay would not call the hook */
            bcml_recorder_taint(&active->rec, "a tensor it uses has a backward hook (register_hook)");
    }
    for (int k = 0; k < n_out; k++) c.out[k] = out[k];
    c.grad_enabled = grad_enabled;
    if (genobj && genobj != Py_None) {
        c.gen = &((PyGenerator *)genobj)->g;
        if (keep_gen(active->gens, genobj) < 0) return -1;
    }
    bcml_err err;
    bcml_status st = bcml_recorder_add(&active->rec, &c, &err);
    if (st) { bcml_py_raise(st, &err); return -1; }
    return 0;
}

/* ---- Recording ------------------------------------------------------------------------- */
static void recording_dealloc(PyRecording *self) {
    bcml_recorder_clear(&self->rec);
    Py_XDECREF(self->gens);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *recording_get_n(PyRecording *self, void *c) {
    (void)c;
    return PyLong_FromLongLong(self->rec.n);
}
static PyObject *recording_get_why(PyRecording *self, void *c) {
    (void)c;
    if (!self->rec.tainted) Py_RETURN_NONE;
    return PyUnicode_FromString(self->rec.why);
}
static PyGetSetDef recording_getset[] = {
    {"n_calls", (getter)recording_get_n, NULL, "ops recorded", NULL},
    {"tainted", (getter)recording_get_why, NULL, "why the step cannot be replayed, or None", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};
static PyTypeObject PyRecording_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "bcml._core.Recording",
    .tp_basicsize = sizeof(PyRecording),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "the ops of one recorded step",
    .tp_dealloc = (destructor)recording_dealloc,
    .tp_getset = recording_getset,
};

/* record_begin(steps=False) */
static PyObject *py_record_begin(PyObject *self, PyObject *args) {
    (void)self;
    int steps = 0;
    if (!PyArg_ParseTuple(args, "|p:record_begin", &steps)) return NULL;
    if (active) {
        PyErr_SetString(PyExc_RuntimeError, "record_begin: this thread is already recording");
        return NULL;
    }
    PyRecording *r = PyObject_New(PyRecording, &PyRecording_Type);
    if (!r) return NULL;
    memset(&r->rec, 0, sizeof r->rec);
    r->gens = PyList_New(0);
    r->steps = steps;
    if (!r->gens) { Py_DECREF(r); return NULL; }
    active = r;
    paused = 0;
    Py_RETURN_NONE;
}

static PyObject *py_record_end(PyObject *self, PyObject *noargs) {
    (void)self; (void)noargs;
    if (!active) {
        PyErr_SetString(PyExc_RuntimeError, "record_end: this thread is not recording");
        return NULL;
    }
    PyRecording *r = active;
    active = NULL;
    paused = 0;
    return (PyObject *)r;   /* the reference taken in record_begin */
}

/* record_pause(flag) -> previous flag: reads inside a paused region (argument checks) do not
 * taint the recording and ops are not recorded. */
static PyObject *py_record_pause(PyObject *self, PyObject *arg) {
    (void)self;
    int f = PyObject_IsTrue(arg);
    if (f < 0) return NULL;
    int prev = paused;
    paused = f;
    return PyBool_FromLong(prev);
}

/* ---- Plan ------------------------------------------------------------------------------ */
static void plan_dealloc(PyPlan *self) {
    bcml_plan_free(self->p);
    Py_XDECREF(self->gens);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *plan_constants(PyPlan *self, PyObject *noargs) {
    (void)noargs;
    PyObject *list = PyList_New(0);
    if (!list) return NULL;
    for (int32_t s = 0; s < self->p->n_slots; s++) {
        bcml_tensor *t = self->p->consts[s];
        if (!t) continue;
        PyObject *w = bcml_py_wrap(bcml_tensor_ref(t));
        if (!w || PyList_Append(list, w) < 0) { Py_XDECREF(w); Py_DECREF(list); return NULL; }
        Py_DECREF(w);
    }
    return list;
}

static PyObject *plan_generators(PyPlan *self, PyObject *noargs) {
    (void)noargs;
    return PySequence_List(self->gens);
}

static PyObject *plan_get_n_steps(PyPlan *self, void *c) {
    (void)c;
    return PyLong_FromLong(self->p->n_steps);
}

static int read_tensors(PyObject *seq, bcml_tensor **ts, int max, int *n, const char *argname) {
    if (!PyTuple_Check(seq) && !PyList_Check(seq)) {
        PyErr_Format(PyExc_TypeError, "%s must be a tuple of tensors", argname);
        return -1;
    }
    Py_ssize_t m = PySequence_Fast_GET_SIZE(seq);
    if (m > max) {
        PyErr_Format(PyExc_ValueError, "%s: at most %d tensors, got %zd", argname, max, m);
        return -1;
    }
    for (Py_ssize_t k = 0; k < m; k++) {
        PyObject *o = PySequence_Fast_GET_ITEM(seq, k);
        if (!bcml_py_is_tensor(o)) {
            PyErr_Format(PyExc_TypeError, "%s[%zd] must be a bcml tensor, got %s", argname, k, Py_TYPE(o)->tp_name);
            return -1;
        }
        ts[k] = ((PyTensor *)o)->t;
    }
    *n = (int)m;
    return 0;
}

/* ---- pins for calls without the GIL ----------------------------------------------------------
 * While the GIL is released, other threads may assign a tensor's .data (which swaps its storage)
 * or drop it. Everything such a call reads is first replaced, with the GIL held, by pinned
 * snapshots (bcml_tensor_pin, bcml_plan_pin) that no other thread can change. */
static int pin_tensors(bcml_tensor **ts, int n) {
    for (int k = 0; k < n; k++) {
        if (!ts[k]) continue;
        bcml_err err;
        bcml_tensor *p = NULL;
        bcml_status st = bcml_tensor_pin(&p, ts[k], &err);
        if (st) {
            for (int j = 0; j < k; j++) { bcml_tensor_unref(ts[j]); ts[j] = NULL; }
            for (int j = k; j < n; j++) ts[j] = NULL;
            bcml_py_raise(st, &err);
            return -1;
        }
        ts[k] = p;
    }
    return 0;
}

static void unpin_tensors(bcml_tensor **ts, int n) {
    for (int k = 0; k < n; k++) { bcml_tensor_unref(ts[k]); ts[k] = NULL; }
}

static int pin_plans(bcml_plan **pl, int n) {
    for (int k = 0; k < n; k++) {
        bcml_err err;
        bcml_plan *c = NULL;
        bcml_status st = bcml_plan_pin(pl[k], &c, &err);
        if (st) {
            for (int j = 0; j < k; j++) { bcml_plan_unpin(pl[j]); pl[j] = NULL; }
            for (int j = k; j < n; j++) pl[j] = NULL;
            bcml_py_raise(st, &err);
            return -1;
        }
        pl[k] = c;
    }
    return 0;
}

static void unpin_plans(bcml_plan **pl, int n) {
    if (!pl) return;
    for (int k = 0; k < n; k++) { bcml_plan_unpin(pl[k]); pl[k] = NULL; }
}

/* plan.run(inputs) -> (loss or None, outputs tuple): one replayed step (tests, checks). */
static PyObject *plan_run(PyPlan *self, PyObject *inputs) {
    bcml_tensor *in[BCML_PLAN_MAX_IO];
    int n;
    if (read_tensors(inputs, in, BCML_PLAN_MAX_IO, &n, "inputs") < 0) return NULL;
    if (n != self->p->n_inputs || !bcml_plan_matches(self->p, in, n)) {
        PyErr_SetString(PyExc_ValueError, "run: inputs do not match the recorded shapes and dtypes");
        return NULL;
    }
    bcml_tensor *loss = NULL, *outs[BCML_PLAN_MAX_IO] = {0};
    bcml_plan *pp = self->p;
    if (pin_tensors(in, n) < 0) return NULL;
    if (pin_plans(&pp, 1) < 0) { unpin_tensors(in, n); return NULL; }
    bcml_err err;
    bcml_status st;
    Py_BEGIN_ALLOW_THREADS
    st = bcml_plan_run(pp, in, &loss, outs, &err);
    Py_END_ALLOW_THREADS
    unpin_plans(&pp, 1);
    unpin_tensors(in, n);
    if (st) return bcml_py_raise(st, &err);
    PyObject *res = PyTuple_New(2), *ot = PyTuple_New(self->p->n_outputs);
    if (!res || !ot) goto fail;
    for (int j = 0; j < self->p->n_outputs; j++) {
        PyObject *w = bcml_py_wrap(outs[j]);
        outs[j] = NULL;
        if (!w) goto fail;
        PyTuple_SET_ITEM(ot, j, w);
    }
    PyObject *lw = loss ? bcml_py_wrap(loss) : (Py_INCREF(Py_None), Py_None);
    loss = NULL;
    if (!lw) goto fail;
    PyTuple_SET_ITEM(res, 0, lw);
    PyTuple_SET_ITEM(res, 1, ot);
    return res;
fail:
    bcml_tensor_unref(loss);
    for (int j = 0; j < self->p->n_outputs; j++) bcml_tensor_unref(outs[j]);
    Py_XDECREF(res);
    Py_XDECREF(ot);
    return NULL;
}

static PyMethodDef plan_methods[] = {
    {"constants", (PyCFunction)plan_constants, METH_NOARGS, "the tensors the plan reads as constants"},
    {"generators", (PyCFunction)plan_generators, METH_NOARGS, "the generators the plan draws from"},
    {"run", (PyCFunction)plan_run, METH_O, "run(inputs) -> (loss, outputs): replay one step"},
    {NULL, NULL, 0, NULL},
};
static PyGetSetDef plan_getset[] = {
    {"n_steps", (getter)plan_get_n_steps, NULL, "ops replayed per step", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};
static PyTypeObject PyPlan_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "bcml._core.Plan",
    .tp_basicsize = sizeof(PyPlan),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "a recorded step, replayable on new inputs",
    .tp_dealloc = (destructor)plan_dealloc,
    .tp_methods = plan_methods,
    .tp_getset = plan_getset,
};

/* plan_build(recording, inputs, loss, outputs) -> Plan */
static PyObject *py_plan_build(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *rec, *inputs, *loss, *outputs;
    if (!PyArg_ParseTuple(args, "O!OOO:plan_build", &PyRecording_Type, &rec, &inputs, &loss, &outputs))
        return NULL;
    bcml_tensor *in[BCML_PLAN_MAX_IO], *out[BCML_PLAN_MAX_IO], *lt = NULL;
    int n_in, n_out;
    if (read_tensors(inputs, in, BCML_PLAN_MAX_IO, &n_in, "inputs") < 0 ||
        read_tensors(outputs, out, BCML_PLAN_MAX_IO, &n_out, "outputs") < 0)
        return NULL;
    if (loss != Py_None) {
        if (!bcml_py_is_tensor(loss)) {
            PyErr_SetString(PyExc_TypeError, "plan_build: loss must be a bcml tensor or None");
            return NULL;
        }
        lt = ((PyTensor *)loss)->t;
    }
    bcml_plan *p = NULL;
    bcml_err err;
    bcml_status st = bcml_plan_build(&p, &((PyRecording *)rec)->rec, in, n_in, lt, out, n_out, &err);
    if (st) return bcml_py_raise(st, &err);
    PyPlan *obj = PyObject_New(PyPlan, &PyPlan_Type);
    if (!obj) { bcml_plan_free(p); return NULL; }
    obj->p = p;
    obj->gens = ((PyRecording *)rec)->gens;
    Py_INCREF(obj->gens);
    return (PyObject *)obj;
}

/* Reads the batch description shared by plan_train and plan_predict. The arrays stay owned by
 * the caller's objects for the duration of the call. */
static int read_batches(PyObject *full, PyObject *order, PyObject *bounds, bcml_batches *d,
                        PyArrayObject **order_arr, PyArrayObject **bounds_arr) {
    memset(d, 0, sizeof *d);
    *order_arr = *bounds_arr = NULL;
    if (read_tensors(full, d->full, BCML_PLAN_MAX_IO, &d->n_data, "full") < 0) return -1;
    if (order != Py_None) {
        *order_arr = (PyArrayObject *)PyArray_FROMANY(order, NPY_INT64, 1, 1, NPY_ARRAY_IN_ARRAY);
        if (!*order_arr) return -1;
        if (PyArray_DIM(*order_arr, 0) != (d->full[0] ? d->full[0]->shape[0] : 0) && d->n_data) {
            PyErr_SetString(PyExc_ValueError, "order must hold one entry per row");
            return -1;
        }
        d->order = (const int64_t *)PyArray_DATA(*order_arr);
    }
    *bounds_arr = (PyArrayObject *)PyArray_FROMANY(bounds, NPY_INT64, 1, 1, NPY_ARRAY_IN_ARRAY);
    if (!*bounds_arr) return -1;
    if (PyArray_DIM(*bounds_arr, 0) < 1) {
        PyErr_SetString(PyExc_ValueError, "bounds must hold at least one entry");
        return -1;
    }
    d->bounds = (const int64_t *)PyArray_DATA(*bounds_arr);
    d->nb = PyArray_DIM(*bounds_arr, 0) - 1;
    bcml_err err;
    bcml_status st = bcml_batches_check(d, &err);
    if (st) { bcml_py_raise(st, &err); return -1; }
    return 0;
}

static int read_plans(PyObject *plans, bcml_plan ***out, int *n) {
    if (!PyTuple_Check(plans)) { PyErr_SetString(PyExc_TypeError, "plans must be a tuple of Plans"); return -1; }
    Py_ssize_t m = PyTuple_GET_SIZE(plans);
    *out = calloc((size_t)m + 1, sizeof **out);
    if (!*out) { PyErr_NoMemory(); return -1; }
    for (Py_ssize_t k = 0; k < m; k++) {
        PyObject *o = PyTuple_GET_ITEM(plans, k);
        if (!PyObject_TypeCheck(o, &PyPlan_Type)) {
            PyErr_Format(PyExc_TypeError, "plans[%zd] must be a Plan", k);
            free(*out);
            *out = NULL;
            return -1;
        }
        (*out)[k] = ((PyPlan *)o)->p;
    }
    *n = (int)m;
    return 0;
}

/* An optimizer group from Python: (kind, opts, params, s0, s1, s2, steps); kind 0 SGD with
 * opts (lr, momentum, dampening, weight_decay, nesterov, maximize) and state s0 = momentum
 * buffers; kind 1 Adam with opts (lr, beta1, beta2, eps, weight_decay, amsgrad, maximize),
 * s0/s1/s2 = exp_avg/exp_avg_sq/max_exp_avg_sq and steps. State lists may hold None. */
typedef struct {
    bcml_optim_group g;
    PyObject *lists[3];
    PyObject *steps;
    bcml_tensor **before;   /* (3n) the state tensors on entry */
    int refs;               /* 1 once params and entry states are pinned (kept alive and unchanged
                               while the GIL is released, whatever other threads do to them) */
} group_in;

static int read_group(PyObject *o, group_in *G) {
    memset(G, 0, sizeof *G);
    int kind;
    PyObject *opts, *params, *s0, *s1, *s2, *steps;
    if (!PyTuple_Check(o) || !PyArg_ParseTuple(o, "iO!O!OOOO:group", &kind, &PyTuple_Type, &opts, &PyList_Type,
                                               &params, &s0, &s1, &s2, &steps))
        return -1;
    Py_ssize_t n = PyList_GET_SIZE(params);
    G->g.kind = kind;
    G->g.n = n;
    if (kind == 0) {
        if (!PyArg_ParseTuple(opts, "ddddpp:sgd", &G->g.sgd.lr, &G->g.sgd.momentum, &G->g.sgd.dampening,
                              &G->g.sgd.weight_decay, &G->g.sgd.nesterov, &G->g.sgd.maximize))
            return -1;
    } else if (kind == 1) {
        if (!PyArg_ParseTuple(opts, "dddddpp:adam", &G->g.adam.lr, &G->g.adam.beta1, &G->g.adam.beta2,
                              &G->g.adam.eps, &G->g.adam.weight_decay, &G->g.adam.amsgrad, &G->g.adam.maximize))
            return -1;
    } else {
        PyErr_SetString(PyExc_ValueError, "group: kind must be 0 (SGD) or 1 (Adam)");
        return -1;
    }
    PyObject *lists[3] = {s0, s1, s2};
    G->g.params = calloc((size_t)(7 * n + 1), sizeof *G->g.params);
    G->g.steps = calloc((size_t)n + 1, sizeof *G->g.steps);
    if (!G->g.params || !G->g.steps) { PyErr_NoMemory(); return -1; }
    G->g.s0 = G->g.params + n;
    G->g.s1 = G->g.params + 2 * n;
    G->g.s2 = G->g.params + 3 * n;
    G->before = G->g.params + 4 * n;
    bcml_tensor **st[3] = {G->g.s0, G->g.s1, G->g.s2};
    for (Py_ssize_t k = 0; k < n; k++) {
        PyObject *p = PyList_GET_ITEM(params, k);
        if (!bcml_py_is_tensor(p) || ((PyTensor *)p)->t->dtype != BCML_FLOAT32) {
            PyErr_Format(PyExc_TypeError, "params[%zd] must be a float32 bcml tensor", k);
            return -1;
        }
        G->g.params[k] = ((PyTensor *)p)->t;
    }
    for (int j = 0; j < 3; j++) {
        if (lists[j] == Py_None) continue;
        if (!PyList_Check(lists[j]) || PyList_GET_SIZE(lists[j]) != n) {
            PyErr_SetString(PyExc_ValueError, "group: state lists must be as long as params");
            return -1;
        }
        G->lists[j] = lists[j];
        for (Py_ssize_t k = 0; k < n; k++) {
            PyObject *s = PyList_GET_ITEM(lists[j], k);
            if (s == Py_None) continue;
            if (!bcml_py_is_tensor(s)) {
                PyErr_SetString(PyExc_TypeError, "group: state entries must be tensors or None");
                return -1;
            }
            st[j][k] = ((PyTensor *)s)->t;
        }
    }
    if (kind == 0 && !G->lists[0]) {
        PyErr_SetString(PyExc_ValueError, "group: SGD needs its momentum buffer list");
        return -1;
    }
    if (kind == 1) {
        if (!G->lists[0] || !G->lists[1] || !G->lists[2] || !PyList_Check(steps) || PyList_GET_SIZE(steps) != n) {
            PyErr_SetString(PyExc_ValueError, "group: Adam needs its m, v, vmax and steps lists");
            return -1;
        }
        G->steps = steps;
        for (Py_ssize_t k = 0; k < n; k++) {
            G->g.steps[k] = PyLong_AsLongLong(PyList_GET_ITEM(steps, k));
            if (G->g.steps[k] == -1 && PyErr_Occurred()) return -1;
        }
    }
    if (pin_tensors(G->g.params, (int)n) < 0) return -1;
    if (pin_tensors(G->g.s0, (int)(3 * n)) < 0) { unpin_tensors(G->g.params, (int)n); return -1; }
    memcpy(G->before, G->g.s0, (size_t)(3 * n) * sizeof *G->before);
    G->refs = 1;
    return 0;
}

/* Stores state tensors created during the epoch back into the Python lists. */
static int write_group(group_in *G) {
    Py_ssize_t n = G->g.n;
    bcml_tensor **st[3] = {G->g.s0, G->g.s1, G->g.s2};
    int rc = 0;
    for (int j = 0; j < 3; j++)
        for (Py_ssize_t k = 0; k < n; k++) {
            bcml_tensor *t = st[j][k];
            if (!t || t == G->before[j * n + k]) continue;
            PyObject *w = bcml_py_wrap(t);   /* steals the new reference */
            st[j][k] = NULL;
            if (!w) rc = -1;
            else if (!G->lists[j]) { Py_DECREF(w); rc = -1; }
            else if (PyList_SetItem(G->lists[j], k, w) < 0) rc = -1;   /* (steals w either way) */
        }
    if (G->steps)
        for (Py_ssize_t k = 0; k < n; k++) {
            PyObject *v = PyLong_FromLongLong(G->g.steps[k]);
            if (!v || PyList_SetItem(G->steps, k, v) < 0) rc = -1;
        }
    return rc;
}

static void free_group(group_in *G) {
    if (G->refs) {
        for (int64_t k = 0; k < G->g.n; k++) bcml_tensor_unref(G->g.params[k]);
        for (int64_t k = 0; k < 3 * G->g.n; k++) bcml_tensor_unref(G->before[k]);
    }
    free(G->g.params);
    free(G->g.steps);
}

/* plan_train(plans, full, order, bounds, start, groups, losses) -> next batch index */
static PyObject *py_plan_train(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *plans, *full, *order, *bounds, *groups, *losses;
    long long start;
    if (!PyArg_ParseTuple(args, "OOOOLO!O:plan_train", &plans, &full, &order, &bounds, &start,
                          &PyList_Type, &groups, &losses))
        return NULL;
    bcml_plan **pl = NULL;
    int npl = 0;
    bcml_batches d;
    PyArrayObject *oa = NULL, *ba = NULL, *la = NULL;
    int pinned_full = 0, pinned_plans = 0;
    Py_ssize_t ng = PyList_GET_SIZE(groups);
    group_in *G = calloc((size_t)ng + 1, sizeof *G);
    bcml_optim_group *gs = calloc((size_t)ng + 1, sizeof *gs);
    PyObject *ret = NULL;
    if (!G || !gs) { PyErr_NoMemory(); goto done; }
    if (read_plans(plans, &pl, &npl) < 0) goto done;
    if (read_batches(full, order, bounds, &d, &oa, &ba) < 0) goto done;
    if (!PyArray_Check(losses) || PyArray_TYPE((PyArrayObject *)losses) != NPY_FLOAT32 ||
        PyArray_NDIM((PyArrayObject *)losses) != 1 || PyArray_DIM((PyArrayObject *)losses, 0) != d.nb ||
        !PyArray_IS_C_CONTIGUOUS((PyArrayObject *)losses) || !PyArray_ISWRITEABLE((PyArrayObject *)losses)) {
        PyErr_SetString(PyExc_ValueError, "losses must be a writeable float32 array with one entry per batch");
        goto done;
    }
    la = (PyArrayObject *)losses;
    if (start < 0 || start > d.nb) { PyErr_SetString(PyExc_ValueError, "start out of range"); goto done; }
    for (Py_ssize_t k = 0; k < ng; k++) {
        if (read_group(PyList_GET_ITEM(groups, k), &G[k]) < 0) goto done;
        gs[k] = G[k].g;
    }
    if (pin_tensors(d.full, d.n_data) < 0) goto done;
    pinned_full = 1;
    if (pin_plans(pl, npl) < 0) goto done;
    pinned_plans = 1;
    int64_t next = start;
    bcml_err err;
    bcml_status st;
    Py_BEGIN_ALLOW_THREADS
    st = bcml_plan_train(pl, npl, &d, start, gs, (int)ng, (float *)PyArray_DATA(la), &next, &err);
    Py_END_ALLOW_THREADS
    int wr = 0;
    for (Py_ssize_t k = 0; k < ng; k++) { G[k].g = gs[k]; if (write_group(&G[k]) < 0) wr = -1; }
    if (st) { bcml_py_raise(st, &err); goto done; }
    if (wr < 0) goto done;
    ret = PyLong_FromLongLong(next);
done:
    if (G) for (Py_ssize_t k = 0; k < ng; k++) free_group(&G[k]);
    if (pinned_plans) unpin_plans(pl, npl);
    if (pinned_full) unpin_tensors(d.full, d.n_data);
    free(G);
    free(gs);
    free(pl);
    Py_XDECREF(oa);
    Py_XDECREF(ba);
    return ret;
}

/* plan_predict(plans, full, order, bounds, start, outs) -> next batch index */
static PyObject *py_plan_predict(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *plans, *full, *order, *bounds, *outs;
    long long start;
    if (!PyArg_ParseTuple(args, "OOOOLO:plan_predict", &plans, &full, &order, &bounds, &start, &outs))
        return NULL;
    bcml_plan **pl = NULL;
    int npl = 0, nouts = 0;
    bcml_batches d;
    PyArrayObject *oa = NULL, *ba = NULL;
    bcml_tensor *ot[BCML_PLAN_MAX_IO];
    int pinned_full = 0, pinned_outs = 0, pinned_plans = 0;
    PyObject *ret = NULL;
    if (read_plans(plans, &pl, &npl) < 0) goto done;
    if (read_batches(full, order, bounds, &d, &oa, &ba) < 0) goto done;
    if (read_tensors(outs, ot, BCML_PLAN_MAX_IO, &nouts, "outs") < 0) goto done;
    if (start < 0 || start > d.nb) { PyErr_SetString(PyExc_ValueError, "start out of range"); goto done; }
    if (pin_tensors(d.full, d.n_data) < 0) goto done;
    pinned_full = 1;
    if (pin_tensors(ot, nouts) < 0) goto done;
    pinned_outs = 1;
    if (pin_plans(pl, npl) < 0) goto done;
    pinned_plans = 1;
    int64_t next = start;
    bcml_err err;
    bcml_status st;
    Py_BEGIN_ALLOW_THREADS
    st = bcml_plan_predict(pl, npl, &d, start, ot, nouts, &next, &err);
    Py_END_ALLOW_THREADS
    if (st) { bcml_py_raise(st, &err); goto done; }
    ret = PyLong_FromLongLong(next);
done:
    if (pinned_plans) unpin_plans(pl, npl);
    if (pinned_outs) unpin_tensors(ot, nouts);
    if (pinned_full) unpin_tensors(d.full, d.n_data);
    free(pl);
    Py_XDECREF(oa);
    Py_XDECREF(ba);
    return ret;
}

static PyObject *py_is_recording(PyObject *self, PyObject *noargs) {
    (void)self; (void)noargs;
    return PyBool_FromLong(active != NULL);
}

/* record_mark_optim(index) -> True when a whole step is being recorded (the optimizer's step is then
 * a recorded step), else False. */
static PyObject *py_record_mark_optim(PyObject *self, PyObject *arg) {
    (void)self;
    long long i = PyLong_AsLongLong(arg);
    if (i == -1 && PyErr_Occurred()) return NULL;
    if (i < 0 || i >= 1024) { PyErr_SetString(PyExc_ValueError, "record_mark_optim: index out of range"); return NULL; }
    if (!bcml_py_recording_steps()) Py_RETURN_FALSE;
    if (bcml_py_record_mark(BCML_REC_OPTIM, NULL, NULL, i) < 0) return NULL;
    Py_RETURN_TRUE;
}

/* plan_exec(plan, inputs, sets) -> outputs tuple: sets is a list (one per optimizer the step
 * runs) of lists of groups in plan_train's form. */
static PyObject *py_plan_exec(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *plan, *inputs, *sets;
    if (!PyArg_ParseTuple(args, "O!OO!:plan_exec", &PyPlan_Type, &plan, &inputs, &PyList_Type, &sets)) return NULL;
    bcml_plan *pp = ((PyPlan *)plan)->p;
    bcml_tensor *in[BCML_PLAN_MAX_IO], *outs[BCML_PLAN_MAX_IO] = {0};
    int n;
    if (read_tensors(inputs, in, BCML_PLAN_MAX_IO, &n, "inputs") < 0) return NULL;
    if (n != pp->n_inputs || !bcml_plan_matches(pp, in, n)) {
        PyErr_SetString(PyExc_ValueError, "plan_exec: inputs do not match the recorded shapes and dtypes");
        return NULL;
    }
    Py_ssize_t ns = PyList_GET_SIZE(sets), ng = 0;
    for (Py_ssize_t k = 0; k < ns; k++) {
        PyObject *gl = PyList_GET_ITEM(sets, k);
        if (!PyList_Check(gl)) { PyErr_SetString(PyExc_TypeError, "plan_exec: sets must hold lists of groups"); return NULL; }
        ng += PyList_GET_SIZE(gl);
    }
    group_in *G = calloc((size_t)ng + 1, sizeof *G);
    bcml_optim_group *gs = calloc((size_t)ng + 1, sizeof *gs);
    bcml_optim_set *S = calloc((size_t)ns + 1, sizeof *S);
    PyObject *ret = NULL;
    Py_ssize_t nread = 0;
    int pinned_in = 0, pinned_plan = 0;
    if (!G || !gs || !S) { PyErr_NoMemory(); goto done; }
    for (Py_ssize_t k = 0, at = 0; k < ns; k++) {
        PyObject *gl = PyList_GET_ITEM(sets, k);
        S[k].groups = gs + at;
        S[k].n_groups = (int)PyList_GET_SIZE(gl);
        for (Py_ssize_t j = 0; j < PyList_GET_SIZE(gl); j++, at++) {
            nread = at + 1;
            if (read_group(PyList_GET_ITEM(gl, j), &G[at]) < 0) goto done;
            gs[at] = G[at].g;
        }
    }
    if (pin_tensors(in, n) < 0) goto done;
    pinned_in = 1;
    if (pin_plans(&pp, 1) < 0) goto done;
    pinned_plan = 1;
    bcml_err err;
    bcml_status st;
    Py_BEGIN_ALLOW_THREADS
    st = bcml_plan_exec(pp, in, S, (int)ns, outs, &err);
    Py_END_ALLOW_THREADS
    int wr = 0;
    for (Py_ssize_t k = 0; k < ng; k++) { G[k].g = gs[k]; if (write_group(&G[k]) < 0) wr = -1; }
    if (st) { bcml_py_raise(st, &err); goto done; }
    if (wr < 0) goto done;
    ret = PyTuple_New(pp->n_outputs);
    if (!ret) goto done;
    for (int j = 0; j < pp->n_outputs; j++) {
        PyObject *w = bcml_py_wrap(outs[j]);
        outs[j] = NULL;
        if (!w) { Py_CLEAR(ret); goto done; }
        PyTuple_SET_ITEM(ret, j, w);
    }
done:
    for (int j = 0; j < BCML_PLAN_MAX_IO; j++) bcml_tensor_unref(outs[j]);
    if (G) for (Py_ssize_t k = 0; k < nread; k++) free_group(&G[k]);
    if (pinned_plan) unpin_plans(&pp, 1);
    if (pinned_in) unpin_tensors(in, n);
    free(G);
    free(gs);
    free(S);
    return ret;
}

/* compile_state(named, scalars, Module) -> tuple: bcml.compile's signature of the Modules and
 * optimizers a step names (bcml/_compile.py, CompiledStep._state): the ids of named, the scalars,
 * then for each Module reached from named (depth first, each once) the values of its attributes
 * whose type is exactly bool, int, float, complex, str, bytes or None, the ids of its parameters
 * and buffers, and its number of submodules. The same walk as the Python it replaces, run at
 * every call of a compiled step (12 us in Python for a 7-module MLP). */
static int scalar_type(PyObject *v) {
    PyTypeObject *t = Py_TYPE(v);
    return t == &PyBool_Type || t == &PyLong_Type || t == &PyFloat_Type || t == &PyComplex_Type ||
           t == &PyUnicode_Type || t == &PyBytes_Type || v == Py_None;
}

/* The walk either builds the signature (list) or compares it, item by item and without
 * allocating, with one built before (cmp): compile_state_equal, the check bcml.compile makes at
 * each call before it looks the signature up (the build and the tuple's hash took most of the
 * 12-19 us of a call's key, with the step's data in the cache instead of Python's). */
typedef struct {
    PyObject *list;   /* build: the items */
    PyObject *cmp;    /* compare: the tuple built before */
    Py_ssize_t at;    /* compare: its next item */
    int differs;      /* compare: an item differed (or the lengths do) */
} state_sink;

static int sink_next(state_sink *s, PyObject **item) {
    if (s->differs) return 0;
    if (s->at >= PyTuple_GET_SIZE(s->cmp)) { s->differs = 1; return 0; }
    *item = PyTuple_GET_ITEM(s->cmp, s->at++);
    return 1;
}

/* An id (a pointer) or a count, as a Python int. */
static int sink_word(state_sink *s, size_t v) {
    if (s->list) {
        PyObject *o = PyLong_FromSize_t(v);
        if (!o) return -1;
        int r = PyList_Append(s->list, o);
        Py_DECREF(o);
        return r;
    }
    PyObject *it;
    if (sink_next(s, &it)) {
        size_t w = PyLong_Check(it) ? PyLong_AsSize_t(it) : (size_t)-1;
        if (w == (size_t)-1 && PyErr_Occurred()) return -1;
        if (w != v) s->differs = 1;
    }
    return 0;
}

static int sink_id(state_sink *s, const void *p) { return sink_word(s, (size_t)(uintptr_t)p); }

/* Compare: whether the tuple item equals the values v[0..n) (==, as the dict lookup of a built
 * signature would take them). */
static int sink_values(state_sink *s, PyObject *const *v, Py_ssize_t n) {
    PyObject *it;
    if (!sink_next(s, &it)) return 0;
    if (!PyTuple_Check(it) || PyTuple_GET_SIZE(it) != n) { s->differs = 1; return 0; }
    for (Py_ssize_t i = 0; i < n && !s->differs; i++) {
        int eq = PyObject_RichCompareBool(PyTuple_GET_ITEM(it, i), v[i], Py_EQ);
        if (eq < 0) return -1;
        if (!eq) s->differs = 1;
    }
    return 0;
}

static int sink_ids(state_sink *s, PyObject *d, const char *what) {
    if (!d || !PyDict_Check(d)) {
        PyErr_Format(PyExc_TypeError, "compile_state: a Module's %s is not a dict", what);
        return -1;
    }
    Py_ssize_t pos = 0;
    PyObject *k, *v;
    while (PyDict_Next(d, &pos, &k, &v))
        if (sink_id(s, v) < 0) return -1;
    return 0;
}

static int state_of_module(state_sink *s, PyObject *d) {
    Py_ssize_t pos = 0;
    PyObject *k, *v;
    if (s->list) {
        PyObject *sc = PyList_New(0);
        if (!sc) return -1;
        while (PyDict_Next(d, &pos, &k, &v))
            if (scalar_type(v) && PyList_Append(sc, v) < 0) { Py_DECREF(sc); return -1; }
        PyObject *t = PyList_AsTuple(sc);
        Py_DECREF(sc);
        if (!t) return -1;
        int r = PyList_Append(s->list, t);
        Py_DECREF(t);
        if (r < 0) return -1;
    } else {
        PyObject *it;
        if (sink_next(s, &it)) {
            if (!PyTuple_Check(it)) s->differs = 1;
            Py_ssize_t i = 0, n = s->differs ? 0 : PyTuple_GET_SIZE(it);
            while (!s->differs && PyDict_Next(d, &pos, &k, &v)) {
                if (!scalar_type(v)) continue;
                if (i >= n) { s->differs = 1; break; }
                int eq = PyObject_RichCompareBool(PyTuple_GET_ITEM(it, i++), v, Py_EQ);
                if (eq < 0) return -1;
                if (!eq) s->differs = 1;
            }
            if (i != n) s->differs = 1;
        }
    }
    if (s->differs) return 0;
    return sink_ids(s, PyDict_GetItemString(d, "_parameters"), "_parameters") < 0 ||
           sink_ids(s, PyDict_GetItemString(d, "_buffers"), "_buffers") < 0 ? -1 : 0;
}

static int state_walk(state_sink *s, PyObject *named, PyObject *scalars, PyObject *module_type) {
    int rc = -1;
    PyObject *seen = PySet_New(NULL), *stack = PyList_New(0), *sc = PySequence_Tuple(scalars);
    if (!seen || !stack || !sc) goto done;
    Py_ssize_t n = PyList_GET_SIZE(named);
    for (Py_ssize_t i = 0; i < n; i++)
        if (sink_id(s, PyList_GET_ITEM(named, i)) < 0) goto done;
    if (s->list) {
        if (PyList_Append(s->list, sc) < 0) goto done;
    } else if (sink_values(s, &PyTuple_GET_ITEM(sc, 0), PyTuple_GET_SIZE(sc)) < 0) {
        goto done;
    }
    for (Py_ssize_t i = 0; i < n && !s->differs; i++) {
        PyObject *o = PyList_GET_ITEM(named, i);
        int is = PyObject_IsInstance(o, module_type);
        if (is < 0) goto done;
        if (!is) continue;
        if (PyList_Append(stack, o) < 0) goto done;
        while (PyList_GET_SIZE(stack) > 0 && !s->differs) {
            Py_ssize_t top = PyList_GET_SIZE(stack) - 1;
            PyObject *m = PyList_GET_ITEM(stack, top);
            Py_INCREF(m);
            if (PyList_SetSlice(stack, top, top + 1, NULL) < 0) { Py_DECREF(m); goto done; }
            PyObject *key = PyLong_FromVoidPtr(m);
            int r = key ? PySet_Contains(seen, key) : -1;
            if (r == 0) r = PySet_Add(seen, key) < 0 ? -1 : 0;
            else if (r == 1) { Py_DECREF(key); Py_DECREF(m); continue; }
            Py_XDECREF(key);
            if (r < 0) { Py_DECREF(m); goto done; }
            PyObject *d = PyObject_GenericGetDict(m, NULL);
            Py_DECREF(m);
            if (!d) goto done;
            PyObject *subs = PyDict_Check(d) ? PyDict_GetItemString(d, "_modules") : NULL;
            if (!PyDict_Check(d)) {
                Py_DECREF(d);
                PyErr_SetString(PyExc_TypeError, "compile_state: a Module's __dict__ is not a dict");
                goto done;
            }
            if (state_of_module(s, d) < 0) { Py_DECREF(d); goto done; }
            if (!subs || !PyDict_Check(subs)) {
                Py_DECREF(d);
                PyErr_SetString(PyExc_TypeError, "compile_state: a Module's _modules is not a dict");
                goto done;
            }
            if (sink_word(s, (size_t)PyDict_Size(subs)) < 0) { Py_DECREF(d); goto done; }
            Py_ssize_t pos = 0;
            PyObject *k, *c;
            while (PyDict_Next(subs, &pos, &k, &c))
                if (c != Py_None && PyList_Append(stack, c) < 0) { Py_DECREF(d); goto done; }
            Py_DECREF(d);
        }
    }
    if (!s->list && s->at != PyTuple_GET_SIZE(s->cmp)) s->differs = 1;
    rc = 0;
done:
    Py_XDECREF(seen);
    Py_XDECREF(stack);
    Py_XDECREF(sc);
    return rc;
}

static PyObject *py_compile_state(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *named, *scalars, *module_type;
    if (!PyArg_ParseTuple(args, "O!OO:compile_state", &PyList_Type, &named, &scalars, &module_type)) return NULL;
    state_sink s = {.list = PyList_New(0)};
    if (!s.list) return NULL;
    PyObject *ret = state_walk(&s, named, scalars, module_type) < 0 ? NULL : PyList_AsTuple(s.list);
    Py_DECREF(s.list);
    return ret;
}

/* compile_state_equal(named, scalars, Module, state) -> bool: whether compile_state(named, scalars,
 * Module) would equal state (a tuple it built before), walked without building it. */
static PyObject *py_compile_state_equal(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *named, *scalars, *module_type, *prev;
    if (!PyArg_ParseTuple(args, "O!OOO!:compile_state_equal", &PyList_Type, &named, &scalars, &module_type,
                          &PyTuple_Type, &prev))
        return NULL;
    state_sink s = {.cmp = prev};
    if (state_walk(&s, named, scalars, module_type) < 0) return NULL;
    return PyBool_FromLong(!s.differs);
}

PyMethodDef bcml_py_replay_methods[] = {
    {"record_begin", py_record_begin, METH_VARARGS,
     "record_begin(steps=False): start recording this thread's ops (steps: backward and optimizer steps too)"},
    {"record_mark_optim", py_record_mark_optim, METH_O,
     "record_mark_optim(index) -> bool: records an optimizer step when recording a whole step"},
    {"is_recording", py_is_recording, METH_NOARGS, "True while this thread records a step (paused or not)"},
    {"plan_exec", py_plan_exec, METH_VARARGS, "plan_exec(plan, inputs, sets) -> outputs: replay a whole step"},
    {"record_end", py_record_end, METH_NOARGS, "stop recording; returns the Recording"},
    {"record_pause", py_record_pause, METH_O, "record_pause(flag) -> previous flag"},
    {"plan_build", py_plan_build, METH_VARARGS, "plan_build(recording, inputs, loss, outputs) -> Plan"},
    {"plan_train", py_plan_train, METH_VARARGS,
     "plan_train(plans, full, order, bounds, start, groups, losses) -> next batch"},
    {"plan_predict", py_plan_predict, METH_VARARGS, "plan_predict(plans, full, order, bounds, start, outs) -> next batch"},
    {"compile_state", py_compile_state, METH_VARARGS,
     "compile_state(named, scalars, Module) -> tuple: bcml.compile's signature of the Modules a step names"},
    {"compile_state_equal", py_compile_state_equal, METH_VARARGS,
     "compile_state_equal(named, scalars, Module, state) -> bool: compile_state(...) == state, without building it"},
    {NULL, NULL, 0, NULL},
};

int bcml_py_replay_ready(PyObject *m) {
    if (PyType_Ready(&PyRecording_Type) < 0 || PyType_Ready(&PyPlan_Type) < 0) return -1;
    if (PyModule_AddIntConstant(m, "PLAN_MAX_IO", BCML_PLAN_MAX_IO) < 0) return -1;
    for (PyMethodDef *d = bcml_py_replay_methods; d->ml_name; d++) {
        PyObject *f = PyCFunction_NewEx(d, NULL, NULL);
        if (!f) return -1;
        if (PyModule_AddObject(m, d->ml_name, f) < 0) { Py_DECREF(f); return -1; }
    }
    return 0;
}
