/* scores_py.c: placeholder, filled by the scores work. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include "pycore.h"

PyObject *bcml_py_count_table(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self; (void)args; (void)kw;
    PyErr_SetString(PyExc_NotImplementedError, "count_table is not implemented yet");
    return NULL;
}
