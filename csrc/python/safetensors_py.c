/* safetensors_py.c: safetensors_header(data) -> (entries, metadata, data_start)
 * data: the whole file (any bytes-like object). entries: a list of (name, dtype, shape,
 * begin, end) in header order, dtype the format's name ("F32", ...), [begin, end) relative to
 * the data buffer; metadata: a dict of str, or None when the header has no "__metadata__";
 * data_start: where the data buffer begins in data. Every rule of the format is checked by
 * bcml_st_parse (csrc/core/safetensors.c), run with the GIL released; a violation raises
 * ValueError with the reader's message. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "../core/safetensors.h"
#include "pycore.h"

static PyObject *str_of(bcml_st_str s) {
    return PyUnicode_DecodeUTF8(s.ptr ? s.ptr : "", (Py_ssize_t)s.len, "strict");
}

static PyObject *entry_tuple(const bcml_st_entry *e) {
    PyObject *shape = PyTuple_New((Py_ssize_t)e->ndim);
    if (!shape) return NULL;
    for (int64_t d = 0; d < e->ndim; d++) {
        PyObject *v = PyLong_FromLongLong(e->shape[d]);
        if (!v) { Py_DECREF(shape); return NULL; }
        PyTuple_SET_ITEM(shape, (Py_ssize_t)d, v);
    }
    return Py_BuildValue("(N s N K K)", str_of(e->name), bcml_st_dtype_name(e->dtype), shape,
                         (unsigned long long)e->begin, (unsigned long long)e->end);
}

PyObject *bcml_py_safetensors_header(PyObject *self, PyObject *arg) {
    (void)self;
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) {
        PyErr_Clear();
        return PyErr_Format(PyExc_TypeError, "safetensors_header: data must be a bytes-like object, got %s",
                            Py_TYPE(arg)->tp_name);
    }
    bcml_st_header *h = NULL;
    bcml_err err;
    bcml_status st;
    Py_BEGIN_ALLOW_THREADS
    st = bcml_st_parse((const unsigned char *)view.buf, (size_t)view.len, &h, &err);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    if (st) return bcml_py_raise(st, &err);
    PyObject *entries = NULL, *meta = NULL, *ret = NULL;
    if (!(entries = PyList_New((Py_ssize_t)h->n_entries))) goto done;
    for (int64_t i = 0; i < h->n_entries; i++) {
        PyObject *t = entry_tuple(&h->entries[i]);
        if (!t) goto done;
        PyList_SET_ITEM(entries, (Py_ssize_t)i, t);
    }
    if (h->has_metadata) {
        if (!(meta = PyDict_New())) goto done;
        for (int64_t i = 0; i < h->n_meta; i++) {
            PyObject *k = str_of(h->meta_keys[i]), *v = k ? str_of(h->meta_values[i]) : NULL;
            int rc = v ? PyDict_SetItem(meta, k, v) : -1;
            Py_XDECREF(k);
            Py_XDECREF(v);
            if (rc < 0) goto done;
        }
    } else {
        meta = Py_None;
        Py_INCREF(meta);
    }
    ret = Py_BuildValue("(O O K)", entries, meta, (unsigned long long)h->data_start);
done:
    Py_XDECREF(entries);
    Py_XDECREF(meta);
    bcml_st_free(h);
    return ret;
}
