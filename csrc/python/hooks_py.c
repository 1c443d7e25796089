/* hooks_py.c: backward hooks whose work is Python code (Tensor.register_hook, nn.Module's
 * backward hooks), on the core's generic hook mechanism (bcml_hook_add in autograd.c), and the
 * memory figures of bcml.helpers.utils.
 *
 * A tensor gets at most one such core hook; its user data is an OrderedDict {handle id:
 * callable} owned by the hook (released when the graph node or the leaf is freed). The
 * trampoline, called by bcml_backward on the thread that runs it (without the GIL), takes the
 * GIL and calls the dict's callables in order on the gradient; a callable returning a tensor
 * replaces the gradient for the next ones and for the rest of the backward. An exception raised
 * by a callable is kept for this thread and stops the backward; bcml_py_raise then raises that
 * exception itself in place of the core's message. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "../core/bcml.h"
#include "pycore.h"

static _Thread_local PyObject *pending;   /* the exception a hook raised on this thread, or NULL */

static void keep_exception(void) {
    PyObject *exc;
#if PY_VERSION_HEX >= 0x030C0000
    exc = PyErr_GetRaisedException();
#else
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (value && tb) PyException_SetTraceback(value, tb);
    Py_XDECREF(type);
    Py_XDECREF(tb);
    exc = value;
#endif
    Py_XSETREF(pending, exc);
}

int bcml_py_hook_error(void) {
    if (!pending) return 0;
    PyObject *exc = pending;
    pending = NULL;
#if PY_VERSION_HEX >= 0x030C0000
    PyErr_SetRaisedException(exc);
#else
    PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
    Py_DECREF(exc);
#endif
    return 1;
}

/* Calls the callables of the OrderedDict `user` on grad. */
static bcml_status trampoline(void *user, bcml_tensor *grad, bcml_tensor **replacement, bcml_err *err) {
    PyGILState_STATE gs = PyGILState_Ensure();
    bcml_status st = BCML_OK;
    /* the callables are listed first: a hook may remove itself or add others */
    PyObject *cur = NULL, *vals = PyObject_CallMethod(user, "values", NULL);
    PyObject *fns = vals ? PySequence_List(vals) : NULL;
    Py_XDECREF(vals);
    if (fns) cur = bcml_py_wrap(bcml_tensor_ref(grad));
    for (Py_ssize_t k = 0; cur && k < PyList_GET_SIZE(fns); k++) {
        PyObject *fn = PyList_GET_ITEM(fns, k);
        PyObject *r = PyObject_CallOneArg(fn, cur);
        if (!r) { Py_CLEAR(cur); break; }
        if (r == Py_None) { Py_DECREF(r); continue; }
        if (!bcml_py_is_tensor(r)) {
            PyObject *name = PyObject_GetAttrString(fn, "__name__");
            if (!name) PyErr_Clear();
            PyErr_Format(PyExc_TypeError, "backward hook %R returned %s; expected a bcml tensor or None",
                         name ? name : fn, Py_TYPE(r)->tp_name);
            Py_XDECREF(name);
            Py_DECREF(r);
            Py_CLEAR(cur);
            break;
        }
        bcml_tensor *g = ((PyTensor *)r)->t;
        if (!bcml_same_shape(g, grad) || g->dtype != BCML_FLOAT32) {
            char b1[64], b2[64];
            PyObject *name = PyObject_GetAttrString(fn, "__name__");
            if (!name) PyErr_Clear();
            PyErr_Format(g->dtype != BCML_FLOAT32 ? PyExc_TypeError : PyExc_ValueError,
                         "backward hook %R has changed the type or size of value: it returned a %s tensor of shape "
                         "%s for a float32 gradient of shape %s", name ? name : fn, bcml_dtype_name(g->dtype),
                         bcml_shape_str(g, b1, sizeof b1), bcml_shape_str(grad, b2, sizeof b2));
            Py_XDECREF(name);
            Py_DECREF(r);
            Py_CLEAR(cur);
            break;
        }
        Py_SETREF(cur, r);
    }
    Py_XDECREF(fns);
    if (!cur) {
        keep_exception();
        st = bcml_fail(err, BCML_ERUNTIME, "a backward hook raised an exception");
    } else {
        bcml_tensor *g = ((PyTensor *)cur)->t;
        if (g != grad) {
            /* a snapshot without autograd state: the engine only reads its values */
            bcml_status s2 = bcml_tensor_alias(replacement, g, g->ndim, g->shape, g->offset, err);
            if (s2) st = s2;
        }
        Py_DECREF(cur);
    }
    PyGILState_Release(gs);
    return st;
}

static void release(void *user) {
    if (!Py_IsInitialized()) return;   /* freed after the interpreter: nothing to release */
    PyGILState_STATE gs = PyGILState_Ensure();
    Py_DECREF((PyObject *)user);
    PyGILState_Release(gs);
}

/* _tensor_hooks(t, create) -> the OrderedDict of t's Python backward hooks; None when there is
 * none and create is false. */
PyObject *bcml_py_tensor_hooks(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *to;
    int create;
    if (!PyArg_ParseTuple(args, "Op:_tensor_hooks", &to, &create)) return NULL;
    if (!bcml_py_is_tensor(to)) {
        PyErr_Format(PyExc_TypeError, "register_hook: expected a bcml tensor, got %s", Py_TYPE(to)->tp_name);
        return NULL;
    }
    bcml_tensor *t = ((PyTensor *)to)->t;
    PyObject *d = bcml_hook_find(t, trampoline);
    if (d) {
        Py_INCREF(d);
        return d;
    }
    if (!create) Py_RETURN_NONE;
    if (!t->requires_grad) {
        PyErr_SetString(PyExc_RuntimeError, "cannot register a hook on a tensor that doesn't require gradient");
        return NULL;
    }
    PyObject *mod = PyImport_ImportModule("collections");
    d = mod ? PyObject_CallMethod(mod, "OrderedDict", NULL) : NULL;
    Py_XDECREF(mod);
    if (!d) return NULL;
    bcml_err err;
    bcml_status st = bcml_hook_add(t, trampoline, d, release, &err);
    if (st) {
        Py_DECREF(d);
        return bcml_py_raise(st, &err);
    }
    bcml_py_record_taint("a tensor of the step has a backward hook (register_hook)");
    Py_INCREF(d);   /* one reference for the hook, one for the caller */
    return d;
}

PyObject *bcml_py_has_hooks(PyObject *self, PyObject *to) {
    (void)self;
    if (!bcml_py_is_tensor(to)) {
        PyErr_Format(PyExc_TypeError, "_has_hooks: expected a bcml tensor, got %s", Py_TYPE(to)->tp_name);
        return NULL;
    }
    return PyBool_FromLong(bcml_has_hooks(((PyTensor *)to)->t));
}

/* _record_taint(why): the step being recorded on this thread (if any) cannot be replayed. */
PyObject *bcml_py_record_taint_m(PyObject *self, PyObject *why) {
    (void)self;
    const char *s = PyUnicode_AsUTF8(why);
    if (!s) return NULL;
    bcml_py_record_taint(s);
    Py_RETURN_NONE;
}

/* _storage_bytes() -> bytes held by the live storages bcml allocated */
PyObject *bcml_py_storage_bytes(PyObject *self, PyObject *noargs) {
    (void)self; (void)noargs;
    return Py_BuildValue("L", (long long)bcml_storage_bytes());
}

/* _release_cached_memory(): the allocator's cached blocks go back to the system. */
PyObject *bcml_py_release_cached(PyObject *self, PyObject *noargs) {
    (void)self; (void)noargs;
    bcml_release_cached_memory();
    Py_RETURN_NONE;
}
