/* pycore.h: shared declarations of the binding's files (csrc/python only). */
#ifndef BCML_PYCORE_H
#define BCML_PYCORE_H
#include <Python.h>
#include "../core/bcml.h"

typedef struct { PyObject_HEAD bcml_tensor *t; } PyTensor;
typedef struct { PyObject_HEAD bcml_generator g; } PyGenerator;

extern PyTypeObject bcml_PyTensor_Type;
extern PyTypeObject bcml_PyGenerator_Type;

PyObject *bcml_py_raise(bcml_status st, const bcml_err *err);
/* Wraps t (steals the reference) in a bcml.Tensor. */
PyObject *bcml_py_wrap(bcml_tensor *t);
int bcml_py_is_tensor(PyObject *o);
int bcml_py_grad_enabled(void);
bcml_generator *bcml_py_generator(PyObject *o, const char *argname);
/* ndarray -> new bcml.Tensor (zero-copy when possible). */
PyObject *bcml_py_from_numpy_obj(PyObject *obj, const char *argname);
int bcml_py_parse_shape(PyObject *seq, int *ndim, int64_t *shape, const char *argname);
int bcml_py_parse_dtype(PyObject *o, bcml_dtype *dt);

/* optim_py.c */
PyObject *bcml_py_sgd_step(PyObject *self, PyObject *args, PyObject *kw);
PyObject *bcml_py_adam_step(PyObject *self, PyObject *args, PyObject *kw);
#define BCML_PY_OPTIM_METHODS \
    {"sgd_step", (PyCFunction)(void (*)(void))bcml_py_sgd_step, METH_VARARGS | METH_KEYWORDS, NULL}, \
    {"adam_step", (PyCFunction)(void (*)(void))bcml_py_adam_step, METH_VARARGS | METH_KEYWORDS, NULL},

/* scores_py.c */
PyObject *bcml_py_count_table(PyObject *self, PyObject *args, PyObject *kw);
PyObject *bcml_py_bootstrap_tables(PyObject *self, PyObject *args, PyObject *kw);
#define BCML_PY_SCORES_METHODS \
    {"count_table", (PyCFunction)(void (*)(void))bcml_py_count_table, METH_VARARGS | METH_KEYWORDS, NULL}, \
    {"bootstrap_tables", (PyCFunction)(void (*)(void))bcml_py_bootstrap_tables, METH_VARARGS | METH_KEYWORDS, NULL},

/* safetensors_py.c */
PyObject *bcml_py_safetensors_header(PyObject *self, PyObject *arg);
#define BCML_PY_SAFETENSORS_METHODS \
    {"safetensors_header", bcml_py_safetensors_header, METH_O, \
     "safetensors_header(data) -> (entries, metadata, data_start): the checked header of a safetensors file"},

/* hooks_py.c: Python backward hooks on tensors. bcml_py_hook_error: when a hook raised on this
 * thread, sets that exception as the current one and returns 1 (else 0). */
int bcml_py_hook_error(void);
PyObject *bcml_py_tensor_hooks(PyObject *self, PyObject *args);
PyObject *bcml_py_has_hooks(PyObject *self, PyObject *t);
PyObject *bcml_py_record_taint_m(PyObject *self, PyObject *why);
PyObject *bcml_py_storage_bytes(PyObject *self, PyObject *noargs);
PyObject *bcml_py_release_cached(PyObject *self, PyObject *noargs);
#define BCML_PY_HOOKS_METHODS \
    {"_tensor_hooks", bcml_py_tensor_hooks, METH_VARARGS, "_tensor_hooks(t, create) -> OrderedDict of t's backward hooks"}, \
    {"_has_hooks", bcml_py_has_hooks, METH_O, "whether a tensor (or the node that made it) has backward hooks"}, \
    {"_record_taint", bcml_py_record_taint_m, METH_O, "_record_taint(why): the step being recorded cannot be replayed"}, \
    {"_storage_bytes", bcml_py_storage_bytes, METH_NOARGS, "bytes held by the live storages bcml allocated"}, \
    {"_release_cached_memory", bcml_py_release_cached, METH_NOARGS, "return the allocator's cached blocks"},

/* replay_py.c: recording hooks (no-ops unless this thread records) and module setup. */
int bcml_py_recording(void);
/* 1 when this thread records a whole step (bcml.compile): backward, optimizer steps and gradient
 * clears are recorded as steps (bcml_py_record_mark) instead of tainting the recording. */
int bcml_py_recording_steps(void);
/* Records a BCML_REC_* step; -1 with an exception set on failure. */
int bcml_py_record_mark(int kind, bcml_tensor *t, bcml_tensor *seed, int64_t i0);
/* Sets this thread's pause flag; returns the previous one. */
int bcml_py_record_set_pause(int f);
void bcml_py_record_taint(const char *why);
int bcml_py_record_call(int op, const bcml_args *a, bcml_tensor *const *in, int n_in,
                        bcml_tensor *const *out, int n_out, int grad_enabled, PyObject *genobj);
int bcml_py_replay_ready(PyObject *m);

#endif
