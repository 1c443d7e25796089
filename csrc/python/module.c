/* module.c: bcml._core, the CPython/NumPy face of the C core.
 * Argument parsing, conversion, exceptions and GIL handling only: no arithmetic lives here. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#define PY_ARRAY_UNIQUE_SYMBOL bcml_ARRAY_API
#include <numpy/arrayobject.h>

#include <float.h>
#include <math.h>
#include <string.h>

#include "../core/bcml.h"
#include "../core/blas.h"
#include "pycore.h"

/* ---- errors ------------------------------------------------------------------------- */
PyObject *bcml_py_raise(bcml_status st, const bcml_err *err) {
    if (bcml_py_hook_error()) return NULL;   /* a backward hook's own exception */
    PyObject *type = PyExc_RuntimeError;
    switch (st) {
    case BCML_EVALUE: type = PyExc_ValueError; break;
    case BCML_ETYPE: type = PyExc_TypeError; break;
    case BCML_ENOMEM: type = PyExc_MemoryError; break;
    case BCML_EINDEX: type = PyExc_IndexError; break;
    case BCML_EIO: type = PyExc_OSError; break;
    default: break;
    }
    PyErr_SetString(type, err->msg[0] ? err->msg : "bcml: unknown error");
    return NULL;
}

/* ---- grad mode (thread-local, as in PyTorch) -------------------------------------------- */
static _Thread_local int grad_disabled = 0;
int bcml_py_grad_enabled(void) { return !grad_disabled; }

static PyObject *py_set_grad_enabled(PyObject *self, PyObject *arg) {
    (void)self;
    int flag = PyObject_IsTrue(arg);
    if (flag < 0) return NULL;
    int prev = !grad_disabled;
    grad_disabled = !flag;
    return PyBool_FromLong(prev);
}

static PyObject *py_is_grad_enabled(PyObject *self, PyObject *noargs) {
    (void)self; (void)noargs;
    return PyBool_FromLong(!grad_disabled);
}

/* ---- tensor type -------------------------------------------------------------------- */
static PyTypeObject *tensor_class = NULL; /* the Python subclass bcml.Tensor, once registered */

PyObject *bcml_py_wrap(bcml_tensor *t) {
    PyTypeObject *tp = tensor_class ? tensor_class : &bcml_PyTensor_Type;
    PyTensor *obj = (PyTensor *)tp->tp_alloc(tp, 0);
    if (!obj) {
        bcml_tensor_unref(t);
        return NULL;
    }
    obj->t = t;
    return (PyObject *)obj;
}

int bcml_py_is_tensor(PyObject *o) { return PyObject_TypeCheck(o, &bcml_PyTensor_Type); }

static void tensor_dealloc(PyTensor *self) {
    bcml_tensor_unref(self->t);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* TensorBase(other): a new leaf sharing other's storage (detach / Parameter). */
static PyObject *tensor_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"data", NULL};
    PyObject *src = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|O:TensorBase", kwlist, &src)) return NULL;
    if (!src || !bcml_py_is_tensor(src)) {
        PyErr_SetString(PyExc_TypeError, "TensorBase(data): data must be a bcml tensor");
        return NULL;
    }
    bcml_tensor *t = ((PyTensor *)src)->t, *a = NULL;
    bcml_err err;
    bcml_status st = bcml_tensor_alias(&a, t, t->ndim, t->shape, t->offset, &err);
    if (st) return bcml_py_raise(st, &err);
    if (bcml_py_recording() && bcml_py_record_call(BCML_REC_ALIAS, NULL, &t, 1, &a, 1, 0, NULL) < 0) {
        bcml_tensor_unref(a);
        return NULL;
    }
    PyTensor *obj = (PyTensor *)type->tp_alloc(type, 0);
    if (!obj) { bcml_tensor_unref(a); return NULL; }
    obj->t = a;
    return (PyObject *)obj;
}

static PyObject *tensor_get_shape(PyTensor *self, void *c) {
    (void)c;
    PyObject *tup = PyTuple_New(self->t->ndim);
    if (!tup) return NULL;
    for (int d = 0; d < self->t->ndim; d++) {
        PyObject *v = PyLong_FromLongLong(self->t->shape[d]);
        if (!v) { Py_DECREF(tup); return NULL; }
        PyTuple_SET_ITEM(tup, d, v);
    }
    return tup;
}
static PyObject *tensor_get_ndim(PyTensor *self, void *c) { (void)c; return PyLong_FromLong(self->t->ndim); }
static PyObject *tensor_get_numel(PyTensor *self, void *c) { (void)c; return PyLong_FromLongLong(self->t->numel); }
static PyObject *tensor_get_dtype(PyTensor *self, void *c) {
    (void)c;
    return PyUnicode_FromString(bcml_dtype_name(self->t->dtype));
}
static PyObject *tensor_get_requires_grad(PyTensor *self, void *c) {
    (void)c;
    return PyBool_FromLong(self->t->requires_grad);
}
static int tensor_set_requires_grad(PyTensor *self, PyObject *v, void *c) {
    (void)c;
    if (!v) { PyErr_SetString(PyExc_AttributeError, "cannot delete requires_grad"); return -1; }
    if (!PyBool_Check(v) && !PyArray_IsScalar(v, Bool)) { /* PyTorch: "requires_grad must be a bool" */
        PyErr_Format(PyExc_TypeError, "requires_grad must be a bool, not %s", Py_TYPE(v)->tp_name);
        return -1;
    }
    int flag = PyObject_IsTrue(v);
    if (flag < 0) return -1;
    if (self->t->grad_fn && !flag) {
        PyErr_SetString(PyExc_RuntimeError,
                        "you can only change requires_grad flags of leaf variables; use detach()");
        return -1;
    }
    if (flag && self->t->dtype != BCML_FLOAT32) {
        PyErr_Format(PyExc_RuntimeError,
                     "only floating point tensors can require gradients (this one is %s)",
                     bcml_dtype_name(self->t->dtype));
        return -1;
    }
    if (!self->t->grad_fn) self->t->requires_grad = flag;
    return 0;
}
static PyObject *tensor_get_grad(PyTensor *self, void *c) {
    (void)c;
    /* a replay would read the gradient of the recorded step, not the current one */
    bcml_py_record_taint("it reads a tensor's .grad inside the step");
    bcml_tensor *g = bcml_grad_get(self->t);
    if (!g) Py_RETURN_NONE;
    return bcml_py_wrap(g);
}
static int tensor_set_grad(PyTensor *self, PyObject *v, void *c) {
    (void)c;
    if (!v || v == Py_None) {
        if (bcml_py_record_mark(BCML_REC_GRAD_CLEAR, self->t, NULL, 0) < 0) return -1;
        bcml_grad_set(self->t, NULL);
        return 0;
    }
    if (!bcml_py_is_tensor(v)) { PyErr_SetString(PyExc_TypeError, "grad must be a bcml tensor or None"); return -1; }
    if (bcml_py_recording_steps()) bcml_py_record_taint("it assigns a tensor's .grad inside the step");
    bcml_tensor *g = ((PyTensor *)v)->t;
    if (g->dtype != BCML_FLOAT32 || self->t->dtype != BCML_FLOAT32) {
        PyErr_Format(PyExc_TypeError, "grad: assigned grad has dtype %s, the tensor has dtype %s (a grad must "
                     "be float32, of a float32 tensor)", bcml_dtype_name(g->dtype), bcml_dtype_name(self->t->dtype));
        return -1;
    }
    if (!bcml_same_shape(g, self->t)) {
        PyErr_SetString(PyExc_ValueError, "grad: assigned grad must have the tensor's shape");
        return -1;
    }
    bcml_grad_set(self->t, g);
    return 0;
}
static PyObject *tensor_get_grad_fn(PyTensor *self, void *c) {
    (void)c;
    if (!self->t->grad_fn) Py_RETURN_NONE;
    return PyUnicode_FromString(bcml_ops[self->t->grad_fn->op].name);
}
static PyObject *tensor_get_is_leaf(PyTensor *self, void *c) {
    (void)c;
    return PyBool_FromLong(self->t->grad_fn == NULL);
}
static PyObject *tensor_get_data_ptr(PyTensor *self, void *c) {
    (void)c;
    return PyLong_FromVoidPtr(bcml_data(self->t));
}
static PyObject *tensor_get_version(PyTensor *self, void *c) {
    (void)c;
    return PyLong_FromLongLong(bcml_tensor_version(self->t));
}

static PyGetSetDef tensor_getset[] = {
    {"shape", (getter)tensor_get_shape, NULL, "the shape, a tuple", NULL},
    {"ndim", (getter)tensor_get_ndim, NULL, "number of dimensions", NULL},
    {"_numel", (getter)tensor_get_numel, NULL, "number of elements", NULL},
    {"_dtype_name", (getter)tensor_get_dtype, NULL, "'float32', 'int64' or 'bool'", NULL},
    {"requires_grad", (getter)tensor_get_requires_grad, (setter)tensor_set_requires_grad, NULL, NULL},
    {"grad", (getter)tensor_get_grad, (setter)tensor_set_grad, NULL, NULL},
    {"_grad_fn_name", (getter)tensor_get_grad_fn, NULL, NULL, NULL},
    {"is_leaf", (getter)tensor_get_is_leaf, NULL, NULL, NULL},
    {"_data_ptr", (getter)tensor_get_data_ptr, NULL, NULL, NULL},
    {"_version", (getter)tensor_get_version, NULL,
     "the version counter of the tensor's storage (shared by its views), bumped by in-place writes", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static int dtype_to_npy(bcml_dtype dt) {
    switch (dt) {
    case BCML_FLOAT32: return NPY_FLOAT32;
    case BCML_INT64: return NPY_INT64;
    case BCML_BOOL: return NPY_BOOL;
    }
    return NPY_FLOAT32;
}

/* numpy(): an ndarray sharing memory, kept alive through its base (this tensor object). */
static PyObject *tensor_numpy(PyTensor *self, PyObject *noargs) {
    bcml_py_record_taint("it reads tensor data in Python (numpy())");
    (void)noargs;
    if (self->t->requires_grad) {
        PyErr_SetString(PyExc_RuntimeError,
                        "Can't call numpy() on Tensor that requires grad. Use tensor.detach().numpy() instead.");
        return NULL;
    }
    /* the array's base is a snapshot of this tensor: it keeps the storage alive even if the
     * tensor's .data is replaced later */
    bcml_tensor *pin = NULL;
    bcml_err err;
    bcml_status st = bcml_tensor_alias(&pin, self->t, self->t->ndim, self->t->shape, self->t->offset, &err);
    if (st) return bcml_py_raise(st, &err);
    PyObject *owner = (PyObject *)bcml_PyTensor_Type.tp_alloc(&bcml_PyTensor_Type, 0);
    if (!owner) { bcml_tensor_unref(pin); return NULL; }
    ((PyTensor *)owner)->t = pin;
    npy_intp dims[BCML_MAX_DIMS];
    for (int d = 0; d < pin->ndim; d++) dims[d] = (npy_intp)pin->shape[d];
    PyObject *arr = PyArray_SimpleNewFromData(pin->ndim, dims, dtype_to_npy(pin->dtype), bcml_data(pin));
    if (!arr) { Py_DECREF(owner); return NULL; }
    if (PyArray_SetBaseObject((PyArrayObject *)arr, owner) < 0) {
        Py_DECREF(arr);
        return NULL;
    }
    return arr;
}

static PyObject *tensor_backward_m(PyTensor *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"gradient", "retain_graph", "create_graph", NULL};
    PyObject *g = Py_None, *retain = Py_None, *create = Py_False;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|OOO:backward", kwlist, &g, &retain, &create)) return NULL;
    if (g != Py_None && !bcml_py_is_tensor(g)) {
        PyErr_Format(PyExc_TypeError, "backward: gradient must be a bcml tensor or None, got %s", Py_TYPE(g)->tp_name);
        return NULL;
    }
    if (!PyBool_Check(create)) {
        PyErr_Format(PyExc_TypeError, "backward: create_graph must be a bool, got %s", Py_TYPE(create)->tp_name);
        return NULL;
    }
    if (create == Py_True) {
        PyErr_SetString(PyExc_ValueError, "backward: create_graph=True (higher-order gradients) is not supported by bcml");
        return NULL;
    }
    if (retain != Py_None && !PyBool_Check(retain)) {
        PyErr_Format(PyExc_TypeError, "backward: retain_graph must be a bool or None, got %s", Py_TYPE(retain)->tp_name);
        return NULL;
    }
    /* a whole step being recorded (bcml.compile) records the backward; any other recording (a
     * forward + loss step) cannot hold one */
    int marked = bcml_py_recording_steps();
    if (marked && bcml_py_record_mark(BCML_REC_BACKWARD, self->t, g != Py_None ? ((PyTensor *)g)->t : NULL,
                                      retain == Py_True) < 0)
        return NULL;
    if (!marked) bcml_py_record_taint("it calls backward() inside the step");
    int was_paused = marked ? bcml_py_record_set_pause(1) : 0;   /* Python hooks run by backward are not recorded */
    /* backward runs with the GIL released: it works on snapshots of the root and the seed, so
     * another thread assigning their .data cannot pull storage from under it */
    bcml_tensor *root = NULL, *gt = NULL;
    bcml_err err;
    bcml_status st = bcml_tensor_pin(&root, self->t, &err);
    if (!st && g != Py_None) st = bcml_tensor_pin(&gt, ((PyTensor *)g)->t, &err);
    if (!st) {
        Py_BEGIN_ALLOW_THREADS
        st = bcml_backward(root, gt, retain == Py_True, &err);
        Py_END_ALLOW_THREADS
    }
    if (marked) bcml_py_record_set_pause(was_paused);
    bcml_tensor_unref(root);
    bcml_tensor_unref(gt);
    if (st) return bcml_py_raise(st, &err);
    Py_RETURN_NONE;
}

/* _zero_grad(set_to_none): clears this tensor's .grad (None, or zeroed in place when present), as
 * zero_grad does for each parameter; recorded as a step inside bcml.compile. */
static PyObject *tensor_zero_grad_m(PyTensor *self, PyObject *arg) {
    int none = PyObject_IsTrue(arg);
    if (none < 0) return NULL;
    if (bcml_py_record_mark(BCML_REC_GRAD_CLEAR, self->t, NULL, none ? 0 : 1) < 0) return NULL;
    if (none) {
        bcml_grad_set(self->t, NULL);
        Py_RETURN_NONE;
    }
    bcml_tensor *g = bcml_grad_get(self->t);
    if (g) {
        memset(bcml_data(g), 0, bcml_nbytes(g));
        bcml_tensor_bump_version(g);
        bcml_tensor_unref(g);
    }
    Py_RETURN_NONE;
}

static PyObject *tensor_item(PyTensor *self, PyObject *noargs) {
    (void)noargs;
    bcml_py_record_taint("it reads tensor data in Python (item())");
    bcml_tensor *t = self->t;
    if (t->numel != 1) {
        PyErr_Format(PyExc_ValueError,
                     "a Tensor with %lld elements cannot be converted to Scalar", (long long)t->numel);
        return NULL;
    }
    switch (t->dtype) {
    case BCML_FLOAT32: return PyFloat_FromDouble(bcml_f32(t)[0]);
    case BCML_INT64: return PyLong_FromLongLong(bcml_i64(t)[0]);
    case BCML_BOOL: return PyBool_FromLong(bcml_u8(t)[0]);
    }
    Py_RETURN_NONE;
}

/* _copy_from(src): copies src's values into this tensor in place (same shape and dtype). */
static PyObject *tensor_copy_from(PyTensor *self, PyObject *src) {
    bcml_py_record_taint("it copies into a tensor in place (copy_)");
    if (!bcml_py_is_tensor(src)) {
        PyErr_SetString(PyExc_TypeError, "copy_: src must be a bcml tensor");
        return NULL;
    }
    bcml_tensor *s = ((PyTensor *)src)->t, *d = self->t;
    if (s->dtype != d->dtype || s->numel != d->numel) {
        char b1[64], b2[64];
        PyErr_Format(PyExc_ValueError, "copy_: src of shape %s and dtype %s does not match %s %s",
                     bcml_shape_str(s, b1, sizeof b1), bcml_dtype_name(s->dtype),
                     bcml_shape_str(d, b2, sizeof b2), bcml_dtype_name(d->dtype));
        return NULL;
    }
    if (bcml_data(s) != bcml_data(d)) memmove(bcml_data(d), bcml_data(s), bcml_nbytes(d));
    bcml_tensor_bump_version(d);
    Py_INCREF(self);
    return (PyObject *)self;
}

/* _set_data(other): this tensor now views other's storage (the `.data = t` assignment). */
static PyObject *tensor_set_data(PyTensor *self, PyObject *src) {
    bcml_py_record_taint("it assigns a tensor's .data");
    if (!bcml_py_is_tensor(src)) {
        PyErr_SetString(PyExc_TypeError, "data must be a bcml tensor");
        return NULL;
    }
    bcml_err err;
    bcml_status st = bcml_tensor_set_data(self->t, ((PyTensor *)src)->t, &err);
    if (st) return bcml_py_raise(st, &err);
    Py_RETURN_NONE;
}

/* _bump_version(): records an in-place write made outside the ops (e.g. through numpy()). */
static PyObject *tensor_bump_version(PyTensor *self, PyObject *noargs) {
    (void)noargs;
    bcml_tensor_bump_version(self->t);
    Py_RETURN_NONE;
}

static PyMethodDef tensor_methods[] = {
    {"numpy", (PyCFunction)tensor_numpy, METH_NOARGS, "an ndarray sharing this tensor's memory"},
    {"backward", (PyCFunction)(void (*)(void))tensor_backward_m, METH_VARARGS | METH_KEYWORDS,
     "backpropagate from this tensor (gradient: seed, default ones for a scalar)"},
    {"item", (PyCFunction)tensor_item, METH_NOARGS, "the single value as a Python number"},
    {"_copy_from", (PyCFunction)tensor_copy_from, METH_O, NULL},
    {"_set_data", (PyCFunction)tensor_set_data, METH_O, NULL},
    {"_bump_version", (PyCFunction)tensor_bump_version, METH_NOARGS, NULL},
    {"_zero_grad", (PyCFunction)tensor_zero_grad_m, METH_O, "_zero_grad(set_to_none): clear .grad (recorded in bcml.compile)"},
    {NULL, NULL, 0, NULL},
};

PyTypeObject bcml_PyTensor_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "bcml._core.TensorBase",
    .tp_basicsize = sizeof(PyTensor),
    .tp_dealloc = (destructor)tensor_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "C storage of a bcml tensor; use bcml.Tensor",
    .tp_methods = tensor_methods,
    .tp_getset = tensor_getset,
    .tp_new = tensor_new,
};

static PyObject *py_set_tensor_class(PyObject *self, PyObject *cls) {
    (void)self;
    if (!PyType_Check(cls) || !PyType_IsSubtype((PyTypeObject *)cls, &bcml_PyTensor_Type)) {
        PyErr_SetString(PyExc_TypeError, "_set_tensor_class: expected a subclass of TensorBase");
        return NULL;
    }
    Py_INCREF(cls);
    Py_XSETREF(tensor_class, (PyTypeObject *)cls);
    Py_RETURN_NONE;
}

/* ---- NumPy interop ---------------------------------------------------------------------- */
static void release_pyobject(void *owner) {
    PyGILState_STATE g = PyGILState_Ensure();
    Py_DECREF((PyObject *)owner);
    PyGILState_Release(g);
}

/* Converts an ndarray to a tensor: zero-copy for aligned, C-contiguous, writeable float32,
 * int64 and bool arrays; one conversion otherwise (floats -> float32, ints -> int64). */
PyObject *bcml_py_from_numpy_obj(PyObject *obj, const char *argname) {
    if (!PyArray_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "%s: expected a numpy.ndarray, got %s", argname,
                     Py_TYPE(obj)->tp_name);
        return NULL;
    }
    PyArrayObject *arr = (PyArrayObject *)obj;
    int nd = PyArray_NDIM(arr);
    if (nd > BCML_MAX_DIMS) {
        PyErr_Format(PyExc_ValueError, "%s: bcml tensors have at most %d dimensions, got %d",
                     argname, BCML_MAX_DIMS, nd);
        return NULL;
    }
    int tn = PyArray_TYPE(arr), target;
    bcml_dtype dt;
    if (tn == NPY_BOOL) { target = NPY_BOOL; dt = BCML_BOOL; }
    else if (PyTypeNum_ISINTEGER(tn)) { target = NPY_INT64; dt = BCML_INT64; }
    else if (PyTypeNum_ISFLOAT(tn)) { target = NPY_FLOAT32; dt = BCML_FLOAT32; }
    else {
        PyErr_Format(PyExc_TypeError,
                     "%s: arrays of dtype %s are not supported (use float, integer or bool data)",
                     argname, PyArray_DESCR(arr)->typeobj->tp_name);
        return NULL;
    }
    if (PyTypeNum_ISUNSIGNED(tn) && PyArray_ITEMSIZE(arr) >= 8 && PyArray_SIZE(arr) > 0) {
        /* uint64 values above INT64_MAX would wrap to negative int64s */
        PyObject *mx = PyArray_Max(arr, NPY_RAVEL_AXIS, NULL), *lim = PyLong_FromLongLong(INT64_MAX);
        int over = mx && lim ? PyObject_RichCompareBool(mx, lim, Py_GT) : -1;
        Py_XDECREF(lim);
        if (over == 1)
            PyErr_Format(PyExc_ValueError,
                         "%s: value cannot be converted to type int64 without overflow (got %S; bcml's "
                         "integer dtype is int64)", argname, mx);
        Py_XDECREF(mx);
        if (over != 0) return NULL;
    }
    PyArrayObject *conv = arr;
    int zero_copy = tn == target && PyArray_IS_C_CONTIGUOUS(arr) && PyArray_ISALIGNED(arr) &&
                    PyArray_ISWRITEABLE(arr) && PyArray_ISNOTSWAPPED(arr);
    if (!zero_copy) { /* the size is checked before the conversion allocates (a zero-stride view can be huge) */
        int64_t dims[BCML_MAX_DIMS], numel;
        for (int d = 0; d < nd; d++) dims[d] = (int64_t)PyArray_DIM(arr, d);
        bcml_err err;
        bcml_status st = bcml_check_shape(nd, dims, dt, &numel, argname, &err);
        if (st) return bcml_py_raise(st, &err);
    }
    if (zero_copy) {
        Py_INCREF(arr);
    } else {
        conv = (PyArrayObject *)PyArray_FromAny(obj, PyArray_DescrFromType(target), 0, 0,
                                                NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED |
                                                    NPY_ARRAY_ENSURECOPY | NPY_ARRAY_FORCECAST,
                                                NULL);
        if (!conv) return NULL;
    }
    int64_t shape[BCML_MAX_DIMS];
    for (int d = 0; d < nd; d++) shape[d] = (int64_t)PyArray_DIM(conv, d);
    bcml_tensor *t = NULL;
    bcml_err err;
    bcml_status st = bcml_tensor_wrap(&t, PyArray_DATA(conv), dt, nd, shape, conv,
                                      release_pyobject, &err);
    if (st) {
        Py_DECREF(conv);
        return bcml_py_raise(st, &err);
    }
    return bcml_py_wrap(t);
}

static PyObject *py_from_numpy(PyObject *self, PyObject *arg) {
    (void)self;
    return bcml_py_from_numpy_obj(arg, "from_numpy(): argument 'arr'");
}

/* ---- shapes and dtypes from Python ------------------------------------------------------ */
int bcml_py_parse_shape(PyObject *seq, int *ndim, int64_t *shape, const char *argname) {
    PyObject *fast = PySequence_Fast(seq, "shape must be a sequence of ints");
    if (!fast) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "%s must be a tuple of ints", argname);
        return -1;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    if (n > BCML_MAX_DIMS) {
        Py_DECREF(fast);
        PyErr_Format(PyExc_ValueError, "%s: bcml tensors have at most %d dimensions, got %zd",
                     argname, BCML_MAX_DIMS, n);
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *it = PySequence_Fast_GET_ITEM(fast, i);
        if (!PyLong_Check(it) && !PyIndex_Check(it)) {
            Py_DECREF(fast);
            PyErr_Format(PyExc_TypeError, "%s must contain ints, got %s", argname, Py_TYPE(it)->tp_name);
            return -1;
        }
        int overflow = 0;
        PyObject *idx = PyNumber_Index(it);
        long long v = idx ? PyLong_AsLongLongAndOverflow(idx, &overflow) : -1;
        Py_XDECREF(idx);
        if (!idx || (v == -1 && PyErr_Occurred())) { Py_DECREF(fast); return -1; }
        if (overflow || v < 0) {
            Py_DECREF(fast);
            PyErr_Format(PyExc_ValueError, "%s: dimension %zd must be a non-negative size", argname, i);
            return -1;
        }
        shape[i] = v;
    }
    *ndim = (int)n;
    Py_DECREF(fast);
    return 0;
}

int bcml_py_parse_dtype(PyObject *o, bcml_dtype *dt) {
    const char *s = PyUnicode_Check(o) ? PyUnicode_AsUTF8(o) : NULL;
    if (!s) { PyErr_SetString(PyExc_TypeError, "dtype must be 'float32', 'int64' or 'bool'"); return -1; }
    if (!strcmp(s, "float32")) *dt = BCML_FLOAT32;
    else if (!strcmp(s, "int64")) *dt = BCML_INT64;
    else if (!strcmp(s, "bool")) *dt = BCML_BOOL;
    else { PyErr_Format(PyExc_TypeError, "dtype must be 'float32', 'int64' or 'bool', got %R", o); return -1; }
    return 0;
}

/* empty(shape, dtype, zero) */
static PyObject *py_empty(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *shp, *dto;
    int zero = 0;
    if (!PyArg_ParseTuple(args, "OO|p:empty", &shp, &dto, &zero)) return NULL;
    int nd;
    int64_t shape[BCML_MAX_DIMS];
    bcml_dtype dt;
    if (bcml_py_parse_shape(shp, &nd, shape, "size") < 0 || bcml_py_parse_dtype(dto, &dt) < 0) return NULL;
    bcml_tensor *t = NULL;
    bcml_err err;
    bcml_status st = bcml_tensor_new(&t, dt, nd, shape, zero, &err);
    if (st) return bcml_py_raise(st, &err);
    return bcml_py_wrap(t);
}

/* ---- generator ---------------------------------------------------------------------- */
/* A seed as PyTorch takes one: an int in [-2^63, 2^64) (negative seeds wrap modulo 2^64). */
static int parse_u64(PyObject *o, const char *fname, const char *argname, unsigned long long *seed) {
    if (!PyLong_Check(o) || PyBool_Check(o)) { /* as torch.Generator: a bool is no seed */
        PyErr_Format(PyExc_TypeError, "%s(): argument '%s' must be an int, not %s", fname, argname, Py_TYPE(o)->tp_name);
        return -1;
    }
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (v == -1 && PyErr_Occurred()) return -1;
    if (!overflow) {
        *seed = (unsigned long long)v;
        return 0;
    }
    if (overflow > 0) {
        unsigned long long u = PyLong_AsUnsignedLongLong(o);
        if (!(u == (unsigned long long)-1 && PyErr_Occurred())) {
            *seed = u;
            return 0;
        }
        PyErr_Clear();
    }
    PyErr_Format(PyExc_ValueError,
                 "%s(): argument '%s' must lie in [-2**63, 2**64): value cannot be converted to type "
                 "uint64 without overflow (got %R)", fname, argname, o);
    return -1;
}
static int parse_seed(PyObject *o, const char *fname, unsigned long long *seed) {
    return parse_u64(o, fname, "seed", seed);
}

static int gen_init(PyGenerator *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"seed", NULL};
    PyObject *so = NULL;
    unsigned long long seed = 67280421310721ULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|O:Generator", kwlist, &so)) return -1;
    if (so && parse_seed(so, "Generator", &seed) < 0) return -1;
    bcml_gen_seed(&self->g, seed);
    return 0;
}
static PyObject *gen_manual_seed(PyGenerator *self, PyObject *arg) {
    unsigned long long seed;
    if (parse_seed(arg, "manual_seed", &seed) < 0) return NULL;
    bcml_gen_seed(&self->g, seed);
    Py_INCREF(self);
    return (PyObject *)self;
}
static PyObject *gen_initial_seed(PyGenerator *self, PyObject *noargs) {
    (void)noargs;
    return PyLong_FromUnsignedLongLong(self->g.seed);
}
static PyObject *gen_get_state(PyGenerator *self, PyObject *noargs) {
    (void)noargs;
    return PyBytes_FromStringAndSize((const char *)&self->g, sizeof self->g);
}
static PyObject *gen_set_state(PyGenerator *self, PyObject *arg) {
    if (!PyBytes_Check(arg) || PyBytes_GET_SIZE(arg) != (Py_ssize_t)sizeof self->g) {
        PyErr_SetString(PyExc_ValueError, "set_state(): argument 'new_state' must be bytes from get_state()");
        return NULL;
    }
    bcml_generator g;
    memcpy(&g, PyBytes_AS_STRING(arg), sizeof g);
    if ((g.s[0] | g.s[1] | g.s[2] | g.s[3]) == 0) { /* xoshiro's one fixed point: zeros forever */
        PyErr_SetString(PyExc_ValueError,
                        "set_state(): argument 'new_state' is invalid: an all-zero xoshiro256** state "
                        "would give only zeros");
        return NULL;
    }
    self->g = g;
    Py_INCREF(self);
    return (PyObject *)self;
}
static PyObject *gen_random(PyGenerator *self, PyObject *noargs) {
    (void)noargs;
    return PyLong_FromUnsignedLongLong(bcml_gen_next(&self->g));
}
static PyMethodDef gen_methods[] = {
    {"manual_seed", (PyCFunction)gen_manual_seed, METH_O, "reseed; returns the generator"},
    {"initial_seed", (PyCFunction)gen_initial_seed, METH_NOARGS, "the last seed"},
    {"get_state", (PyCFunction)gen_get_state, METH_NOARGS, "the state as bytes"},
    {"set_state", (PyCFunction)gen_set_state, METH_O, "restore a state from get_state()"},
    {"_next_u64", (PyCFunction)gen_random, METH_NOARGS, "the next raw 64-bit draw"},
    {NULL, NULL, 0, NULL},
};
PyTypeObject bcml_PyGenerator_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "bcml._core.Generator",
    .tp_basicsize = sizeof(PyGenerator),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "Generator(seed=67280421310721): a random number generator (xoshiro256**)",
    .tp_methods = gen_methods,
    .tp_init = (initproc)gen_init,
    .tp_new = PyType_GenericNew,
};

bcml_generator *bcml_py_generator(PyObject *o, const char *argname) {
    if (!PyObject_TypeCheck(o, &bcml_PyGenerator_Type)) {
        PyErr_Format(PyExc_TypeError, "%s must be a bcml.Generator, got %s", argname, Py_TYPE(o)->tp_name);
        return NULL;
    }
    return &((PyGenerator *)o)->g;
}

/* ---- apply: the one entry point for every op -------------------------------------------- */
/* apply(op, inputs, iargs, fargs, generator=None) -> tensor or tuple of tensors */
static PyObject *py_apply(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs < 4 || nargs > 5) {
        PyErr_SetString(PyExc_TypeError, "apply(op, inputs, iargs, fargs, generator=None)");
        return NULL;
    }
    long op = PyLong_AsLong(args[0]);
    if (op == -1 && PyErr_Occurred()) return NULL;
    if (op < 0 || op >= BCML_OP_COUNT) {
        PyErr_Format(PyExc_ValueError, "apply: unknown op %ld", op);
        return NULL;
    }
    PyObject *ins = args[1], *ia = args[2], *fa = args[3];
    if (!PyTuple_Check(ins) || !PyTuple_Check(ia) || !PyTuple_Check(fa)) {
        PyErr_SetString(PyExc_TypeError, "apply: inputs, iargs and fargs must be tuples");
        return NULL;
    }
    Py_ssize_t n_in = PyTuple_GET_SIZE(ins);
    if (n_in > BCML_MAX_IN || PyTuple_GET_SIZE(ia) > 8 || PyTuple_GET_SIZE(fa) > 4) {
        PyErr_SetString(PyExc_ValueError, "apply: too many inputs or arguments");
        return NULL;
    }
    bcml_tensor *in[BCML_MAX_IN] = {0};
    for (Py_ssize_t k = 0; k < n_in; k++) {
        PyObject *o = PyTuple_GET_ITEM(ins, k);
        if (o == Py_None) continue;
        if (!bcml_py_is_tensor(o)) {
            PyErr_Format(PyExc_TypeError, "%s: input %zd must be a bcml tensor, got %s",
                         bcml_ops[op].name, k, Py_TYPE(o)->tp_name);
            return NULL;
        }
        in[k] = ((PyTensor *)o)->t;
    }
    bcml_args a;
    memset(&a, 0, sizeof a);
    for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(ia); k++) {
        PyObject *o = PyTuple_GET_ITEM(ia, k), *idx = PyNumber_Index(o); /* ints, NumPy ints */
        if (!idx) return NULL;
        int overflow = 0;
        a.i[k] = PyLong_AsLongLongAndOverflow(idx, &overflow);
        Py_DECREF(idx);
        if (overflow) {
            PyErr_Format(PyExc_ValueError,
                         "%s: integer argument %zd: value cannot be converted to type int64 without overflow "
                         "(got %R)", bcml_ops[op].name, k, o);
            return NULL;
        }
        if (a.i[k] == -1 && PyErr_Occurred()) return NULL;
    }
    for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(fa); k++) {
        PyObject *o = PyTuple_GET_ITEM(fa, k);
        a.f[k] = PyFloat_AsDouble(o);
        if (a.f[k] == -1.0 && PyErr_Occurred()) {
            if (PyErr_ExceptionMatches(PyExc_OverflowError)) {
                PyErr_Clear();
                PyErr_Format(PyExc_ValueError,
                             "%s: float argument %zd: value cannot be converted to type double without "
                             "overflow (got %R)", bcml_ops[op].name, k, o);
            }
            return NULL;
        }
    }
    bcml_ctx ctx = {.grad_enabled = !grad_disabled, .gen = NULL};
    if (nargs == 5 && args[4] != Py_None) {
        ctx.gen = bcml_py_generator(args[4], "generator");
        if (!ctx.gen) return NULL;
    }
    bcml_tensor *out[BCML_MAX_OUT] = {0};
    bcml_err err;
    bcml_status st;
    int64_t work = 0;
    for (Py_ssize_t k = 0; k < n_in; k++) if (in[k]) work += in[k]->numel;
    if (work > 16384) {
        /* the kernels run without the GIL on snapshots of the inputs, made while it is held */
        bcml_tensor *pins[BCML_MAX_IN] = {0};
        st = BCML_OK;
        for (Py_ssize_t k = 0; k < n_in && !st; k++)
            if (in[k]) st = bcml_tensor_pin(&pins[k], in[k], &err);
        if (!st) {
            ctx.pinned = 1;
            Py_BEGIN_ALLOW_THREADS
            st = bcml_apply(&ctx, (int)op, &a, pins, (int)n_in, out, &err);
            Py_END_ALLOW_THREADS
        }
        for (Py_ssize_t k = 0; k < n_in; k++) bcml_tensor_unref(pins[k]);
    } else {
        st = bcml_apply(&ctx, (int)op, &a, in, (int)n_in, out, &err);
    }
    if (st) return bcml_py_raise(st, &err);
    int n_out = bcml_ops[op].n_out;
    if (bcml_py_recording() &&
        bcml_py_record_call((int)op, &a, in, (int)n_in, out, n_out, ctx.grad_enabled,
                            nargs == 5 ? args[4] : NULL) < 0) {
        for (int k = 0; k < n_out; k++) bcml_tensor_unref(out[k]);
        return NULL;
    }
    if (n_out == 1) return bcml_py_wrap(out[0]);
    PyObject *tup = PyTuple_New(n_out);
    if (!tup) { for (int k = 0; k < n_out; k++) bcml_tensor_unref(out[k]); return NULL; }
    for (int k = 0; k < n_out; k++) {
        PyObject *w = bcml_py_wrap(out[k]);
        if (!w) {
            for (int j = k + 1; j < n_out; j++) bcml_tensor_unref(out[j]);
            Py_DECREF(tup);
            return NULL;
        }
        PyTuple_SET_ITEM(tup, k, w);
    }
    return tup;
}

static PyObject *py_op_names(PyObject *self, PyObject *noargs) {
    (void)self; (void)noargs;
    PyObject *d = PyDict_New();
    if (!d) return NULL;
    for (int k = 0; k < BCML_OP_COUNT; k++) {
        PyObject *v = PyLong_FromLong(k);
        if (!v || PyDict_SetItemString(d, bcml_ops[k].name, v) < 0) { Py_XDECREF(v); Py_DECREF(d); return NULL; }
        Py_DECREF(v);
    }
    return d;
}

/* A real number argument as a double: TypeError for anything else (str, None, complex, ...),
 * ValueError for an int beyond a double's range. */
static int arg_real(PyObject *o, const char *fname, const char *argname, double *out) {
    double v = PyFloat_AsDouble(o);
    if (v == -1.0 && PyErr_Occurred()) {
        if (PyErr_ExceptionMatches(PyExc_OverflowError)) {
            PyErr_Clear();
            PyErr_Format(PyExc_ValueError,
                         "%s(): argument '%s': value cannot be converted to type double without overflow "
                         "(got %R)", fname, argname, o);
        } else if (PyErr_ExceptionMatches(PyExc_TypeError)) {
            PyErr_Clear();
            PyErr_Format(PyExc_TypeError, "%s(): argument '%s' must be a real number, not %s", fname, argname,
                         Py_TYPE(o)->tp_name);
        }
        return -1;
    }
    *out = v;
    return 0;
}

/* As arg_real, for a value the core keeps as float32 (PyTorch's rule: a finite value beyond
 * float32's range is refused, inf and NaN pass). */
static int arg_float32(PyObject *o, const char *fname, const char *argname, double *out) {
    if (arg_real(o, fname, argname, out) < 0) return -1;
    if (isfinite(*out) && fabs(*out) > FLT_MAX) {
        PyErr_Format(PyExc_ValueError,
                     "%s(): argument '%s': value cannot be converted to type float without overflow (got %R)",
                     fname, argname, o);
        return -1;
    }
    return 0;
}

/* fill_(t, kind, a, b=None, generator=None): kind 0 uniform [a, b), 1 normal (mean a, std b),
 * 2 constant a. Values are checked as PyTorch checks them: a constant must fit the tensor's
 * dtype (an int64 tensor takes any int64 exactly, and a float only when it is finite and in
 * range, truncated), uniform needs finite bounds with a <= b, normal a std >= 0. */
static PyObject *py_fill(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *to, *ao, *bo = Py_None, *go = Py_None;
    int kind;
    if (!PyArg_ParseTuple(args, "OiO|OO:fill_", &to, &kind, &ao, &bo, &go)) return NULL;
    if (!bcml_py_is_tensor(to)) { PyErr_SetString(PyExc_TypeError, "fill_: expected a tensor"); return NULL; }
    if (kind < 0 || kind > 2) { PyErr_Format(PyExc_ValueError, "fill_: kind must be 0, 1 or 2, got %d", kind); return NULL; }
    bcml_tensor *t = ((PyTensor *)to)->t;
    bcml_generator *g = NULL;
    double a = 0.0, b = 0.0;
    int64_t ia = 0;
    if (kind == 0) {
        if (arg_float32(ao, "uniform_", "a", &a) < 0 || arg_float32(bo, "uniform_", "b", &b) < 0) return NULL;
        if (!isfinite(a) || !isfinite(b)) {
            PyErr_Format(PyExc_ValueError, "uniform_(): argument '%s' must be finite, got %R", isfinite(a) ? "b" : "a",
                         isfinite(a) ? bo : ao);
            return NULL;
        }
        if (a > b) {
            PyErr_Format(PyExc_ValueError,
                         "uniform_(): expects to return a [from, to) range, but found from=%R > to=%R "
                         "(arguments 'a' and 'b')", ao, bo);
            return NULL;
        }
        if (b - a > FLT_MAX) {
            PyErr_Format(PyExc_ValueError,
                         "uniform_(): expects to-from <= float32's largest value, but found to=%R and from=%R "
                         "(arguments 'a' and 'b')", bo, ao);
            return NULL;
        }
    } else if (kind == 1) {
        if (arg_float32(ao, "normal_", "mean", &a) < 0 || arg_float32(bo, "normal_", "std", &b) < 0) return NULL;
        if (!(b >= 0.0)) {
            PyErr_Format(PyExc_ValueError, "normal_(): argument 'std': normal expects std >= 0.0, but found std %R", bo);
            return NULL;
        }
    } else if (t->dtype == BCML_FLOAT32) {
        if (arg_float32(ao, "fill_", "value", &a) < 0) return NULL;
    } else if (t->dtype == BCML_INT64) {
        if (PyLong_Check(ao) || PyArray_IsScalar(ao, Integer)) {
            PyObject *idx = PyNumber_Index(ao);
            int overflow = 0;
            long long v = idx ? PyLong_AsLongLongAndOverflow(idx, &overflow) : -1;
            Py_XDECREF(idx);
            if (!idx || (v == -1 && PyErr_Occurred())) return NULL;
            if (overflow) {
                PyErr_Format(PyExc_ValueError,
                             "fill_(): argument 'value': value cannot be converted to type int64 without overflow "
                             "(got %R)", ao);
                return NULL;
            }
            ia = v;
        } else {
            if (arg_real(ao, "fill_", "value", &a) < 0) return NULL;
            if (!(a >= -0x1p63 && a < 0x1p63)) { /* NaN, inf and beyond int64 */
                PyErr_Format(PyExc_ValueError,
                             "fill_(): argument 'value': value cannot be converted to type int64 without overflow "
                             "(got %R)", ao);
                return NULL;
            }
            ia = (int64_t)a; /* truncated, as PyTorch */
        }
    } else {
        if (arg_real(ao, "fill_", "value", &a) < 0) return NULL;
    }
    if (kind != 2) {
        if (t->dtype != BCML_FLOAT32) {
            PyErr_Format(PyExc_TypeError, "%s(): random fill needs a float32 tensor, got %s",
                         kind ? "normal_" : "uniform_", bcml_dtype_name(t->dtype));
            return NULL;
        }
        g = bcml_py_generator(go, "generator");
        if (!g) return NULL;
    }
    bcml_py_record_taint(kind == 2 ? "it fills a tensor in place" : "it draws random numbers outside the ops");
    if (kind == 0) bcml_fill_uniform(bcml_f32(t), t->numel, (float)a, (float)b, g);
    else if (kind == 1) bcml_fill_normal(bcml_f32(t), t->numel, (float)a, (float)b, g);
    else if (t->dtype == BCML_FLOAT32) for (int64_t i = 0; i < t->numel; i++) bcml_f32(t)[i] = (float)a;
    else if (t->dtype == BCML_INT64) for (int64_t i = 0; i < t->numel; i++) bcml_i64(t)[i] = ia;
    else for (int64_t i = 0; i < t->numel; i++) bcml_u8(t)[i] = a != 0.0;
    bcml_tensor_bump_version(t);
    Py_INCREF(to);
    return to;
}

/* randperm(n, generator) -> int64 tensor */
static PyObject *py_randperm(PyObject *self, PyObject *args) {
    (void)self;
    long long n;
    PyObject *go;
    if (!PyArg_ParseTuple(args, "LO:randperm", &n, &go)) return NULL;
    bcml_generator *g = bcml_py_generator(go, "generator");
    if (!g) return NULL;
    int64_t shape[1] = {n};
    bcml_tensor *t = NULL;
    bcml_err err;
    bcml_status st = bcml_tensor_new(&t, BCML_INT64, 1, shape, 0, &err);
    if (st) return bcml_py_raise(st, &err);
    bcml_randperm(bcml_i64(t), n, g);
    return bcml_py_wrap(t);
}

static PyObject *py_derive_seed(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *so, *io;
    unsigned long long seed, idx;
    if (!PyArg_ParseTuple(args, "OO:derive_seed", &so, &io) || parse_u64(so, "derive_seed", "seed", &seed) < 0 ||
        parse_u64(io, "derive_seed", "index", &idx) < 0)
        return NULL;
    return PyLong_FromUnsignedLongLong(bcml_gen_derive(seed, idx));
}

/* A thread count: an int, huge ones capped at 1024 (the pool's cap is lower still). */
static int arg_threads(PyObject *arg, long *n) {
    int overflow = 0;
    *n = PyLong_Check(arg) ? PyLong_AsLongAndOverflow(arg, &overflow) : PyLong_AsLong(arg);
    if (*n == -1 && PyErr_Occurred()) return -1;
    if (overflow < 0) *n = -1;
    if (overflow > 0 || *n > 1024) *n = 1024;
    return 0;
}

static PyObject *py_set_blas_threads(PyObject *self, PyObject *arg) {
    (void)self;
    long n;
    if (arg_threads(arg, &n) < 0) return NULL;
    if (n < 1) { PyErr_SetString(PyExc_ValueError, "set_num_threads: n must be >= 1"); return NULL; }
    /* bcml splits its own kernels over n threads; OpenBLAS stays single-threaded (no nesting) */
    bcml_openblas_set_num_threads(1);
    Py_BEGIN_ALLOW_THREADS
    bcml_set_num_threads((int)n);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}
/* set_winograd(mode): Winograd convolution off (0) or on (1) (bcml.backends.winograd.enabled). */
static PyObject *py_set_winograd(PyObject *self, PyObject *arg) {
    (void)self;
    long mode = PyLong_AsLong(arg); /* 0 off, 1 on, 4 F(4x4) where F(2x2) would run (tests) */
    if (mode == -1 && PyErr_Occurred()) return NULL;
    if (mode != 0 && mode != 1 && mode != 4) {
        PyErr_SetString(PyExc_ValueError, "set_winograd: mode must be 0, 1 or 4");
        return NULL;
    }
    bcml_set_winograd((int)mode);
    Py_RETURN_NONE;
}
static PyObject *py_get_winograd(PyObject *self, PyObject *noargs) {
    (void)self; (void)noargs;
    return PyLong_FromLong(bcml_get_winograd());
}
/* A 0 / 1 switch's argument: -1 with a TypeError (not an int) or ValueError (another int). */
static int switch_arg(PyObject *arg, const char *fn, int *on) {
    long v = PyLong_AsLong(arg);
    if (v == -1 && PyErr_Occurred()) return -1;
    if (v != 0 && v != 1) {
        PyErr_Format(PyExc_ValueError, "%s: on must be 0 or 1", fn);
        return -1;
    }
    *on = (int)v;
    return 0;
}
/* set_conv_direct(on): the direct small-channel convolution kernels off (0) or on (1) (tests and
 * benchmarks). */
static PyObject *py_set_conv_direct(PyObject *self, PyObject *arg) {
    (void)self;
    int on;
    if (switch_arg(arg, "set_conv_direct", &on) < 0) return NULL;
    bcml_set_conv_direct(on);
    Py_RETURN_NONE;
}
static PyObject *py_get_conv_direct(PyObject *self, PyObject *noargs) {
    (void)self; (void)noargs;
    return PyLong_FromLong(bcml_get_conv_direct());
}
/* set_avx512(on): every AVX-512 kernel off (0: the portable ones, for tests) or on (1). */
static PyObject *py_set_avx512(PyObject *self, PyObject *arg) {
    (void)self;
    int on;
    if (switch_arg(arg, "set_avx512", &on) < 0) return NULL;
    bcml_set_avx512(on);
    Py_RETURN_NONE;
}
static PyObject *py_get_avx512(PyObject *self, PyObject *noargs) {
    (void)self; (void)noargs;
    return PyLong_FromLong(bcml_get_avx512());
}
static PyObject *py_set_poison_fresh(PyObject *self, PyObject *arg) {
    (void)self;
    int on;
    if (switch_arg(arg, "set_poison_fresh", &on) < 0) return NULL;
    bcml_set_poison_fresh(on);
    Py_RETURN_NONE;
}
static PyObject *py_get_poison_fresh(PyObject *self, PyObject *noargs) {
    (void)self; (void)noargs;
    return PyLong_FromLong(bcml_get_poison_fresh());
}

/* _parallel_selftest(n) -> (runs, by_caller): lists of n ints (bcml_parallel_selftest, tests) */
static PyObject *py_parallel_selftest(PyObject *self, PyObject *arg) {
    (void)self;
    long long n = PyLong_AsLongLong(arg);
    if (n == -1 && PyErr_Occurred()) return NULL;
    if (n < 1 || n > 1024) {
        PyErr_SetString(PyExc_ValueError, "_parallel_selftest: n must be in [1, 1024]");
        return NULL;
    }
    int64_t runs[1024], by[1024];
    bcml_err err;
    bcml_status st;
    Py_BEGIN_ALLOW_THREADS
    st = bcml_parallel_selftest((int64_t)n, runs, by, &err);
    Py_END_ALLOW_THREADS
    if (st) return bcml_py_raise(st, &err);
    PyObject *a = PyList_New((Py_ssize_t)n), *b = PyList_New((Py_ssize_t)n);
    if (!a || !b) { Py_XDECREF(a); Py_XDECREF(b); return NULL; }
    for (long long k = 0; k < n; k++) {
        PyObject *x = PyLong_FromLongLong(runs[k]), *y = PyLong_FromLongLong(by[k]);
        if (!x || !y) { Py_XDECREF(x); Py_XDECREF(y); Py_DECREF(a); Py_DECREF(b); return NULL; }
        PyList_SET_ITEM(a, (Py_ssize_t)k, x);
        PyList_SET_ITEM(b, (Py_ssize_t)k, y);
    }
    return Py_BuildValue("(NN)", a, b);
}
static PyObject *py_cpu_avx512(PyObject *self, PyObject *noargs) {
    (void)self; (void)noargs;
    return PyBool_FromLong(bcml_cpu_avx512());
}
/* set_thread_limit(n): caps bcml's kernel threads for the calling thread (0: no cap). */
static PyObject *py_set_thread_limit(PyObject *self, PyObject *arg) {
    (void)self;
    long n;
    if (arg_threads(arg, &n) < 0) return NULL;
    if (n < 0) {
        PyErr_SetString(PyExc_ValueError, "set_thread_limit: n must be >= 0");
        return NULL;
    }
    bcml_set_thread_limit((int)(n > 1024 ? 1024 : n));
    Py_RETURN_NONE;
}

static PyObject *py_get_blas_threads(PyObject *self, PyObject *noargs) {
    (void)self; (void)noargs;
    return PyLong_FromLong(bcml_get_num_threads());
}

static PyMethodDef module_methods[] = {
    {"apply", (PyCFunction)(void (*)(void))py_apply, METH_FASTCALL, "apply(op, inputs, iargs, fargs, generator=None)"},
    {"op_ids", py_op_names, METH_NOARGS, "dict: op name -> op id"},
    {"from_numpy", py_from_numpy, METH_O, "tensor from an ndarray (zero-copy when possible)"},
    {"empty", py_empty, METH_VARARGS, "empty(shape, dtype, zero=False)"},
    {"fill_", py_fill, METH_VARARGS, "fill_(t, kind, a, b=None, generator=None)"},
    {"randperm", py_randperm, METH_VARARGS, "randperm(n, generator)"},
    {"derive_seed", py_derive_seed, METH_VARARGS, "derive_seed(seed, index)"},
    {"set_grad_enabled", py_set_grad_enabled, METH_O, "set the thread's grad mode; returns the previous"},
    {"is_grad_enabled", py_is_grad_enabled, METH_NOARGS, NULL},
    {"_set_tensor_class", py_set_tensor_class, METH_O, NULL},
    {"set_num_threads", py_set_blas_threads, METH_O, "threads of bcml's kernels (OpenBLAS kept at 1)"},
    {"get_num_threads", py_get_blas_threads, METH_NOARGS, NULL},
    {"set_thread_limit", py_set_thread_limit, METH_O, "cap the calling thread's kernel threads (0: none)"},
    {"set_winograd", py_set_winograd, METH_O, "Winograd convolution on or off"},
    {"get_winograd", py_get_winograd, METH_NOARGS, NULL},
    {"set_conv_direct", py_set_conv_direct, METH_O, "direct small-channel convolution kernels on or off"},
    {"get_conv_direct", py_get_conv_direct, METH_NOARGS, NULL},
    {"set_avx512", py_set_avx512, METH_O, "every AVX-512 kernel off (0) or on (1) (tests)"},
    {"get_avx512", py_get_avx512, METH_NOARGS, "1 if the AVX-512 kernels are on"},
    {"cpu_avx512", py_cpu_avx512, METH_NOARGS, "whether this build and CPU run AVX-512 kernels"},
    {"set_poison_fresh", py_set_poison_fresh, METH_O,
     "new gradient buffers written from scratch by an op's backward start as NaN (1) or not (0) (tests)"},
    {"get_poison_fresh", py_get_poison_fresh, METH_NOARGS, "1 if set_poison_fresh is on"},
    {"_parallel_selftest", py_parallel_selftest, METH_O,
     "_parallel_selftest(n) -> (runs, by_caller): n tasks through the thread pool (tests)"},
    BCML_PY_OPTIM_METHODS
    BCML_PY_SCORES_METHODS
    BCML_PY_SAFETENSORS_METHODS
    BCML_PY_HOOKS_METHODS
    {NULL, NULL, 0, NULL},
};

static int module_exec(PyObject *m) {
    if (_import_array() < 0) return -1;
    bcml_err err;
    if (bcml_ops_check(&err) != BCML_OK) {
        PyErr_SetString(PyExc_ImportError, err.msg);
        return -1;
    }
    if (PyType_Ready(&bcml_PyTensor_Type) < 0 || PyType_Ready(&bcml_PyGenerator_Type) < 0) return -1;
    Py_INCREF(&bcml_PyTensor_Type);
    if (PyModule_AddObject(m, "TensorBase", (PyObject *)&bcml_PyTensor_Type) < 0) {
        Py_DECREF(&bcml_PyTensor_Type);
        return -1;
    }
    Py_INCREF(&bcml_PyGenerator_Type);
    if (PyModule_AddObject(m, "Generator", (PyObject *)&bcml_PyGenerator_Type) < 0) {
        Py_DECREF(&bcml_PyGenerator_Type);
        return -1;
    }
    if (bcml_py_replay_ready(m) < 0) return -1;
#ifdef BCML_BLAS_SCIPY
    if (PyModule_AddStringConstant(m, "blas", "scipy-openblas32") < 0) return -1;
#else
    if (PyModule_AddStringConstant(m, "blas", "system openblas") < 0) return -1;
#endif
    return 0;
}

static PyModuleDef_Slot module_slots[] = {
    {Py_mod_exec, module_exec},
    {0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "bcml._core",
    .m_doc = "The C core of bcml.",
    .m_size = 0,
    .m_methods = module_methods,
    .m_slots = module_slots,
};

PyMODINIT_FUNC PyInit__core(void) { return PyModuleDef_Init(&module_def); }
