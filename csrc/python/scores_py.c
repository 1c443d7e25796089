/* scores_py.c: count_table(h1_labels, h2_labels, y, num_classes=None, num_threads=0,
 *                          name="count_table") -> ndarray int64 (num_classes, 5)
 * Columns: h1 right & h2 right, h1 right & h2 wrong, h1 wrong & h2 right, both wrong,
 * h1 label != h2 label; rows: the true class. Conversion and checks only; the pass is
 * bcml_count_table (csrc/core/scores.c), run with the GIL released. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#define PY_ARRAY_UNIQUE_SYMBOL bcml_ARRAY_API
#define NO_IMPORT_ARRAY
#include <numpy/arrayobject.h>

#include <math.h>
#include <string.h>

#include "../core/bcml.h"
#include "../core/blas.h"
#include "pycore.h"

/* A 1-D int64 view of one label argument. */
typedef struct {
    const int64_t *data;  /* (n) */
    int64_t n;
    PyObject *keep;       /* owned: the ndarray read, or NULL */
    bcml_tensor *alias;   /* owned: a header holding the bcml tensor's storage, or NULL */
} labels_view;

static void labels_release(labels_view *v) {
    Py_CLEAR(v->keep);
    bcml_tensor_unref(v->alias);
    v->alias = NULL;
}

/* Re-raises the pending exception with "fname: arg: " in front of its message. */
static void prefix_error(const char *fname, const char *arg) {
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    PyObject *msg = value ? PyObject_Str(value) : NULL;
    if (msg && (type == PyExc_TypeError || type == PyExc_ValueError)) {
        PyErr_Format(type, "%s: %s could not be read as labels: %U", fname, arg, msg);
        Py_DECREF(msg);
        Py_XDECREF(type); Py_XDECREF(value); Py_XDECREF(tb);
        return;
    }
    Py_XDECREF(msg);
    PyErr_Restore(type, value, tb);
}

static int bad_shape(const char *fname, const char *arg, PyObject *shape) {
    PyErr_Format(PyExc_ValueError,
                 "%s: %s must be a 1-D sequence of class labels (or of shape (B, 1)), got shape %S",
                 fname, arg, shape);
    return -1;
}

static int labels_get(PyObject *obj, const char *fname, const char *arg, labels_view *v);

static int labels_from_tensor(PyObject *obj, const char *fname, const char *arg, labels_view *v) {
    const bcml_tensor *t = ((PyTensor *)obj)->t;
    if (t->dtype == BCML_FLOAT32) { /* float labels holding integers: read as the NumPy array */
        PyObject *det = PyObject_CallMethod(obj, "detach", NULL);
        PyObject *arr = det ? PyObject_CallMethod(det, "numpy", NULL) : NULL;
        Py_XDECREF(det);
        if (!arr) { prefix_error(fname, arg); return -1; }
        int rc = labels_get(arr, fname, arg, v);
        Py_DECREF(arr);
        return rc;
    }
    if (t->dtype != BCML_INT64) {
        PyErr_Format(PyExc_TypeError, "%s: %s must hold integer class labels, got %s%s", fname,
                     arg, bcml_dtype_name(t->dtype),
                     t->dtype == BCML_BOOL ? " (use .long() if booleans are class labels)" : "");
        return -1;
    }
    if (!(t->ndim == 1 || (t->ndim == 2 && t->shape[1] == 1))) {
        char buf[96];
        PyErr_Format(PyExc_ValueError,
                     "%s: %s must be a 1-D sequence of class labels (or of shape (B, 1)), got shape %s",
                     fname, arg, bcml_shape_str(t, buf, sizeof buf));
        return -1;
    }
    int64_t n = t->shape[0];
    bcml_err err;
    bcml_status st = bcml_tensor_alias(&v->alias, t, 1, &n, t->offset, &err);
    if (st) { bcml_py_raise(st, &err); return -1; }
    v->data = bcml_i64(v->alias);
    v->n = n;
    return 0;
}

/* Float labels (any float dtype) holding integral values, as int64: one pass over the values
 * read as double; a non-integral value (1.5, nan, inf) or one outside int64 is a ValueError
 * naming the argument, the index and the value (bcml/_labels.py's rule and wording). */
static int labels_from_float(PyArrayObject *arr, const char *fname, const char *arg, labels_view *v) {
    PyArrayObject *d = (PyArrayObject *)PyArray_FromAny(
        (PyObject *)arr, PyArray_DescrFromType(NPY_DOUBLE), 0, 0,
        NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED | NPY_ARRAY_FORCECAST, NULL);
    if (!d) { prefix_error(fname, arg); return -1; }
    npy_intp n = (npy_intp)v->n;
    PyArrayObject *out = (PyArrayObject *)PyArray_SimpleNew(1, &n, NPY_INT64);
    if (!out) { Py_DECREF(d); return -1; }
    const double *src = (const double *)PyArray_DATA(d);
    int64_t *dst = (int64_t *)PyArray_DATA(out);
    for (npy_intp i = 0; i < n; i++) {
        double x = src[i];
        if (!(x == floor(x) && x >= -0x1p63 && x < 0x1p63)) { /* NaN fails the first test */
            PyObject *val = PyFloat_FromDouble(x);
            if (val) {
                PyErr_Format(PyExc_ValueError,
                             "%s: %s must hold integer class labels (a float label must hold an integral "
                             "value); got the %s %R at index %lld", fname, arg,
                             isfinite(x) && x == floor(x) ? "value outside int64" : "non-integral value", val,
                             (long long)i);
                Py_DECREF(val);
            }
            Py_DECREF(d);
            Py_DECREF(out);
            return -1;
        }
        dst[i] = (int64_t)x;
    }
    Py_DECREF(d);
    Py_SETREF(v->keep, (PyObject *)out);
    v->data = (const int64_t *)dst;
    return 0;
}

static int labels_get(PyObject *obj, const char *fname, const char *arg, labels_view *v) {
    memset(v, 0, sizeof *v);
    if (bcml_py_is_tensor(obj)) return labels_from_tensor(obj, fname, arg, v);
    int from_array = PyArray_Check(obj);
    PyArrayObject *arr;
    if (from_array) {
        Py_INCREF(obj);
        arr = (PyArrayObject *)obj;
    } else {
        arr = (PyArrayObject *)PyArray_FromAny(obj, NULL, 0, 0, 0, NULL);
        if (!arr) { prefix_error(fname, arg); return -1; }
    }
    v->keep = (PyObject *)arr;
    int nd = PyArray_NDIM(arr);
    int empty_list = !from_array && PyArray_SIZE(arr) == 0; /* [] has no dtype of its own */
    int tn = PyArray_TYPE(arr);
    int is_float = PyTypeNum_ISFLOAT(tn);
    if (!empty_list && !is_float && (tn == NPY_BOOL || !PyTypeNum_ISINTEGER(tn))) {
        PyObject *dname = PyObject_Str((PyObject *)PyArray_DESCR(arr));
        if (dname)
            PyErr_Format(PyExc_TypeError, "%s: %s must hold integer class labels, got %U%s", fname,
                         arg, dname,
                         tn == NPY_BOOL ? " (use .astype(int) if booleans are class labels)" : "");
        Py_XDECREF(dname);
        goto fail;
    }
    if (!(nd == 1 || (nd == 2 && PyArray_DIM(arr, 1) == 1))) {
        PyObject *shape = PyObject_GetAttrString((PyObject *)arr, "shape");
        if (shape) { bad_shape(fname, arg, shape); Py_DECREF(shape); }
        goto fail;
    }
    v->n = (int64_t)PyArray_DIM(arr, 0);
    if (v->n == 0) return 0; /* the empty check, after the length check, names all three */
    if (is_float) {
        if (labels_from_float(arr, fname, arg, v) < 0) goto fail;
        return 0;
    }
    int zero_copy = PyTypeNum_ISSIGNED(tn) && PyArray_ITEMSIZE(arr) == 8 &&
                    PyArray_IS_C_CONTIGUOUS(arr) && PyArray_ISALIGNED(arr) &&
                    PyArray_ISNOTSWAPPED(arr);
    if (!zero_copy) { /* any other integer dtype or layout: converted once */
        PyArrayObject *conv = (PyArrayObject *)PyArray_FromAny(
            (PyObject *)arr, PyArray_DescrFromType(NPY_INT64), 0, 0,
            NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED | NPY_ARRAY_FORCECAST, NULL);
        if (!conv) { prefix_error(fname, arg); goto fail; }
        Py_SETREF(v->keep, (PyObject *)conv);
        arr = conv;
    }
    v->data = (const int64_t *)PyArray_DATA(arr);
    return 0;
fail:
    labels_release(v);
    return -1;
}

static void free_counts(PyObject *capsule) { bcml_free(PyCapsule_GetPointer(capsule, NULL)); }

PyObject *bcml_py_count_table(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *kwlist[] = {"h1_labels", "h2_labels", "y", "num_classes", "num_threads", "name", NULL};
    PyObject *objs[3], *nc_obj = Py_None, *result = NULL;
    int nthreads = 0;
    const char *fname = "count_table";
    labels_view v[3];
    memset(v, 0, sizeof v);
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOO|Ois:count_table", kwlist, &objs[0], &objs[1],
                                     &objs[2], &nc_obj, &nthreads, &fname))
        return NULL;
    int64_t num_classes = -1;
    if (nc_obj != Py_None) {
        if (PyBool_Check(nc_obj) || !PyIndex_Check(nc_obj)) {
            PyErr_Format(PyExc_TypeError, "%s: num_classes must be an int or None, got %s", fname,
                         Py_TYPE(nc_obj)->tp_name);
            return NULL;
        }
        PyObject *idx = PyNumber_Index(nc_obj);
        if (!idx) return NULL;
        int overflow = 0;
        long long nc = PyLong_AsLongLongAndOverflow(idx, &overflow);
        Py_DECREF(idx);
        if (nc == -1 && PyErr_Occurred()) return NULL;
        if (overflow || nc < 1 || nc > BCML_CT_MAX_CLASSES) {
            PyErr_Format(PyExc_ValueError, "%s: num_classes must be between 1 and %lld, got %R",
                         fname, (long long)BCML_CT_MAX_CLASSES, nc_obj);
            return NULL;
        }
        num_classes = nc;
    }
    if (nthreads < 1) nthreads = bcml_get_num_threads();
    static const char *const names[3] = {"h1_labels", "h2_labels", "y"};
    for (int a = 0; a < 3; a++)
        if (labels_get(objs[a], fname, names[a], &v[a]) < 0) goto done;
    for (int a = 1; a < 3; a++) {
        if (v[a].n != v[0].n) {
            PyErr_Format(PyExc_ValueError, "%s: h1_labels and %s must have the same length, got %lld and %lld",
                         fname, names[a], (long long)v[0].n, (long long)v[a].n);
            goto done;
        }
    }
    int64_t *counts = NULL;
    bcml_err err;
    bcml_status st;
    Py_BEGIN_ALLOW_THREADS
    st = bcml_count_table(&counts, &num_classes, v[0].data, v[1].data, v[2].data, v[0].n,
                          nthreads, fname, &err);
    Py_END_ALLOW_THREADS
    if (st) { bcml_py_raise(st, &err); goto done; }
    /* the table becomes the array's memory (no copy: a large class count is checked against
     * memory once, not needed twice); a capsule owning it frees it with the array */
    npy_intp dims[2] = {(npy_intp)num_classes, BCML_CT_CELLS};
    PyObject *owner = PyCapsule_New(counts, NULL, free_counts);
    if (!owner) { bcml_free(counts); goto done; }
    result = PyArray_SimpleNewFromData(2, dims, NPY_INT64, counts);
    if (!result) { Py_DECREF(owner); goto done; }
    if (PyArray_SetBaseObject((PyArrayObject *)result, owner) < 0) Py_CLEAR(result); /* owner: stolen */
done:
    for (int a = 0; a < 3; a++) labels_release(&v[a]);
    return result;
}

/* bootstrap_tables(tables, n_boot, seed, num_threads=0, name="bootstrap_tables")
 *   -> ndarray int64 (S, n_boot, K): n_boot multinomial resamples of each row of tables (S, K)
 * (bcml_bootstrap_tables, run with the GIL released). */
PyObject *bcml_py_bootstrap_tables(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *kwlist[] = {"tables", "n_boot", "seed", "num_threads", "name", NULL};
    PyObject *obj;
    long long n_boot;
    unsigned long long seed;
    int nthreads = 0;
    const char *fname = "bootstrap_tables";
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OLK|is:bootstrap_tables", kwlist, &obj, &n_boot,
                                     &seed, &nthreads, &fname))
        return NULL;
    PyArrayObject *t = (PyArrayObject *)PyArray_FromAny(
        obj, PyArray_DescrFromType(NPY_INT64), 2, 2, NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED, NULL);
    if (!t) return NULL;
    npy_intp S = PyArray_DIM(t, 0), K = PyArray_DIM(t, 1);
    if (n_boot < 1 || K < 1 || (S > 0 && (double)S * (double)n_boot * (double)K > 0x1p40)) {
        PyErr_Format(PyExc_ValueError, "%s: n_boot must be >= 1 with at most 2^40 cells drawn, got n_boot=%lld "
                     "for %lld tables of %lld cells", fname, n_boot, (long long)S, (long long)K);
        Py_DECREF(t);
        return NULL;
    }
    npy_intp dims[3] = {S, (npy_intp)n_boot, K};
    PyArrayObject *out = (PyArrayObject *)PyArray_SimpleNew(3, dims, NPY_INT64);
    if (!out) { Py_DECREF(t); return NULL; }
    if (nthreads < 1) nthreads = bcml_get_num_threads();
    bcml_err err;
    bcml_status st;
    Py_BEGIN_ALLOW_THREADS
    st = bcml_bootstrap_tables((int64_t *)PyArray_DATA(out), (const int64_t *)PyArray_DATA(t), (int64_t)S,
                               (int64_t)K, (int64_t)n_boot, (uint64_t)seed, nthreads, fname, &err);
    Py_END_ALLOW_THREADS
    Py_DECREF(t);
    if (st) { Py_DECREF(out); return bcml_py_raise(st, &err); }
    return (PyObject *)out;
}
