/* optim_py.c: optimizer steps. The Python optimizer keeps its state (momentum buffers, Adam
 * moments) in lists of tensors; these functions fill missing entries and update in C. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdlib.h>

#include "pycore.h"

/* Reads a list of tensors into ts (borrowed); a list of state slots may hold None. */
static int read_list(PyObject *list, bcml_tensor **ts, Py_ssize_t n, int allow_none, const char *argname) {
    for (Py_ssize_t k = 0; k < n; k++) {
        PyObject *o = PyList_GET_ITEM(list, k);
        if (o == Py_None && allow_none) { ts[k] = NULL; continue; }
        if (!bcml_py_is_tensor(o)) {
            PyErr_Format(PyExc_TypeError, "%s[%zd] must be a bcml tensor, got %s", argname, k, Py_TYPE(o)->tp_name);
            return -1;
        }
        ts[k] = ((PyTensor *)o)->t;
    }
    return 0;
}

/* Stores newly created state tensors back into the Python list. Every new tensor is either
 * stored or released, even after a failure, so that none of them leaks: once *rc is -1 (the
 * first error is set) the remaining ones are released. */
static void write_back(PyObject *list, bcml_tensor **ts, bcml_tensor **before, Py_ssize_t n, int *rc) {
    for (Py_ssize_t k = 0; k < n; k++) {
        if (!ts[k] || ts[k] == before[k]) continue;
        bcml_tensor *t = ts[k];
        ts[k] = NULL;
        if (*rc < 0) { bcml_tensor_unref(t); continue; }
        PyObject *w = bcml_py_wrap(t); /* steals t, also on failure */
        if (!w || PyList_SetItem(list, k, w) < 0) *rc = -1; /* SetItem steals w, also on failure */
    }
}

static int check_lists(PyObject *params, PyObject **lists, int nlists, const char **names) {
    if (!PyList_Check(params)) { PyErr_SetString(PyExc_TypeError, "params must be a list"); return -1; }
    for (int j = 0; j < nlists; j++) {
        if (!PyList_Check(lists[j]) || PyList_GET_SIZE(lists[j]) != PyList_GET_SIZE(params)) {
            PyErr_Format(PyExc_ValueError, "%s must be a list as long as params", names[j]);
            return -1;
        }
    }
    return 0;
}

PyObject *bcml_py_sgd_step(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *kwlist[] = {"params", "bufs", "lr", "momentum", "dampening", "weight_decay",
                             "nesterov", "maximize", NULL};
    PyObject *params, *bufs;
    bcml_sgd_opts o = {0};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOdddd|pp:sgd_step", kwlist, &params, &bufs, &o.lr,
                                     &o.momentum, &o.dampening, &o.weight_decay, &o.nesterov, &o.maximize))
        return NULL;
    const char *names[] = {"bufs"};
    if (check_lists(params, &bufs, 1, names) < 0) return NULL;
    Py_ssize_t n = PyList_GET_SIZE(params);
    bcml_tensor **p = calloc((size_t)(3 * n + 1), sizeof *p);
    if (!p) return PyErr_NoMemory();
    bcml_tensor **b = p + n, **b0 = p + 2 * n;
    PyObject *ret = NULL;
    if (read_list(params, p, n, 0, "params") < 0 || read_list(bufs, b, n, 1, "bufs") < 0) goto done;
    for (Py_ssize_t k = 0; k < n; k++) b0[k] = b[k];
    bcml_py_record_taint("it runs an optimizer step inside the step");
    bcml_err err;
    bcml_status st = bcml_sgd_step(p, b, n, &o, &err);
    int wr = 0;
    write_back(bufs, b, b0, n, &wr);
    if (wr < 0) goto done;
    if (st) { bcml_py_raise(st, &err); goto done; }
    ret = Py_None;
    Py_INCREF(ret);
done:
    free(p);
    return ret;
}

PyObject *bcml_py_adam_step(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *kwlist[] = {"params", "exp_avg", "exp_avg_sq", "max_exp_avg_sq", "steps", "lr",
                             "beta1", "beta2", "eps", "weight_decay", "amsgrad", "maximize", NULL};
    PyObject *params, *m, *v, *vm, *steps;
    bcml_adam_opts o = {0};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOOOddddd|pp:adam_step", kwlist, &params, &m, &v, &vm,
                                     &steps, &o.lr, &o.beta1, &o.beta2, &o.eps, &o.weight_decay,
                                     &o.amsgrad, &o.maximize))
        return NULL;
    PyObject *lists[] = {m, v, vm, steps};
    const char *names[] = {"exp_avg", "exp_avg_sq", "max_exp_avg_sq", "steps"};
    if (check_lists(params, lists, 4, names) < 0) return NULL;
    Py_ssize_t n = PyList_GET_SIZE(params);
    bcml_tensor **p = calloc((size_t)(7 * n + 1), sizeof *p);
    int64_t *st_ = calloc((size_t)n + 1, sizeof *st_);
    PyObject *ret = NULL;
    if (!p || !st_) { free(p); free(st_); return PyErr_NoMemory(); }
    bcml_tensor **mm = p + n, **vv = p + 2 * n, **vx = p + 3 * n;
    bcml_tensor **m0 = p + 4 * n, **v0 = p + 5 * n, **x0 = p + 6 * n;
    if (read_list(params, p, n, 0, "params") < 0 || read_list(m, mm, n, 1, "exp_avg") < 0 ||
        read_list(v, vv, n, 1, "exp_avg_sq") < 0 || read_list(vm, vx, n, 1, "max_exp_avg_sq") < 0)
        goto done;
    for (Py_ssize_t k = 0; k < n; k++) {
        st_[k] = PyLong_AsLongLong(PyList_GET_ITEM(steps, k));
        if (st_[k] == -1 && PyErr_Occurred()) goto done;
        m0[k] = mm[k]; v0[k] = vv[k]; x0[k] = vx[k];
    }
    bcml_py_record_taint("it runs an optimizer step inside the step");
    bcml_err err;
    bcml_status st = bcml_adam_step(p, mm, vv, vx, st_, n, &o, &err);
    /* all three, whatever fails: each releases what it cannot store */
    int wr = 0;
    write_back(m, mm, m0, n, &wr);
    write_back(v, vv, v0, n, &wr);
    write_back(vm, vx, x0, n, &wr);
    if (wr < 0) goto done;
    for (Py_ssize_t k = 0; k < n; k++) {
        PyObject *s = PyLong_FromLongLong(st_[k]);
        if (!s || PyList_SetItem(steps, k, s) < 0) goto done;
    }
    if (st) { bcml_py_raise(st, &err); goto done; }
    ret = Py_None;
    Py_INCREF(ret);
done:
    free(p);
    free(st_);
    return ret;
}
