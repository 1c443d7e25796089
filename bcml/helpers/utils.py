"""Label and probability utilities and memory profiling (backwardcompatibilityml.helpers.utils).

Inputs may be bcml tensors, NumPy arrays, lists or anything with ``.numpy()`` (a PyTorch
tensor); results are bcml tensors.

Memory profiling keeps BCML's names and signatures (``log_mem``, ``add_memory_hooks``,
``generate_mem_hook``, ``remove_memory_hooks``, ``get_gpu_mem``, ``clean_from_gpu``,
``show_allocated_tensors``). bcml runs on the CPU, so where BCML reported
``torch.cuda.memory_allocated()`` and ``torch.cuda.memory_cached()`` bcml reports the bytes held
by the live tensors bcml allocated (tensors sharing a NumPy array's memory not counted) and the
resident set size of the process (from /proc/self/statm; elsewhere the peak RSS that
``resource.getrusage`` gives).
"""
import gc
import math
import numbers
import os
import sys

import numpy as np

from .. import _core, _values
from .._labels import integral as _integral
from .._tensor import from_numpy

__all__ = ["labels_to_probabilities", "get_class_probabilities", "sigmoid_to_labels", "add_memory_hooks",
           "clean_from_gpu", "generate_mem_hook", "get_gpu_mem", "log_mem", "remove_memory_hooks",
           "show_allocated_tensors"]


def _array(value, name):
    if isinstance(value, _core.TensorBase):
        a = value.detach().numpy()
    elif isinstance(value, np.ndarray):
        a = value
    elif hasattr(value, "numpy") and hasattr(value, "shape"):
        a = np.asarray((value.detach().cpu() if hasattr(value, "detach") else value).numpy())
    elif isinstance(value, (list, tuple)) or (isinstance(value, numbers.Number) and not isinstance(value, bool)):
        try:
            a = np.asarray(value)
        except (ValueError, TypeError) as e:
            raise ValueError("%s is not a regular array of numbers: %s" % (name, e)) from None
    else:
        raise TypeError("%s must be a bcml tensor, a NumPy array or a list, got %s" % (name, type(value).__name__))
    if a.dtype.kind not in "biuf":
        raise TypeError("%s must hold probabilities or labels (numbers), got dtype %s" % (name, a.dtype))
    _values.check_size(a.shape, 8, "", name, "")  # what is computed from it has this size
    return a


def _labels(value, name):
    """Integer class labels as a 1-D int64 array ((B,) or (B, 1) accepted; floats holding
    integers are those integers)."""
    a = _array(value, name)
    if a.ndim == 2 and a.shape[1] == 1:
        a = a.reshape(-1)
    if a.dtype.kind == "f":  # float labels holding integers (an empty list is float64 too)
        a = _integral(a, name)
    if a.dtype.kind not in "iu":
        raise TypeError("%s must hold integer class labels, got dtype %s" % (name, a.dtype))
    if a.ndim != 1:
        raise ValueError("%s must be one label per sample, shape (B,), got shape %s" % (name, a.shape))
    if a.size and a.min() < 0:
        raise ValueError("%s must hold labels >= 0, got %d" % (name, int(a.min())))
    return a.astype(np.int64, copy=False)


def _count(value, name, allow_none=True):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError("%s must be an int, got %s" % (name, type(value).__name__))
    return _values.int64(value, "labels_to_probabilities", name)


def labels_to_probabilities(batch_class_labels, num_classes=None, batch_size=None):
    """One-hot rows: a float32 tensor (batch_size, num_classes) with 1.0 at each sample's label.

    As BCML, with num_classes and batch_size optional: they default to the largest label + 1
    and the number of labels; given, batch_size must equal the number of labels and every
    label must lie in [0, num_classes)."""
    labels = _labels(batch_class_labels, "batch_class_labels")
    C = _count(num_classes, "num_classes")
    B = _count(batch_size, "batch_size")
    if C is None:
        C = int(labels.max()) + 1 if labels.size else 0
    elif C < 1:
        raise ValueError("num_classes must be >= 1, got %d" % C)
    if B is None:
        B = labels.shape[0]
    elif B != labels.shape[0]:
        raise ValueError("batch_size is %d but batch_class_labels holds %d labels" % (B, labels.shape[0]))
    if labels.size and labels.max() >= C:
        raise ValueError("batch_class_labels must lie in [0, num_classes=%d), got %d" % (C, int(labels.max())))
    _values.check_size((B, C), 4, "labels_to_probabilities", "batch_class_labels" if num_classes is None
                       else "num_classes", "float32")
    probs = np.zeros((B, C), dtype=np.float32)
    probs[np.arange(B), labels] = 1.0
    return from_numpy(probs)


def get_class_probabilities(batch_label_tensor):
    """The share of each class among the labels: bincount / number of labels, a float32 tensor
    of length largest label + 1 (empty for no labels, as torch.bincount gives)."""
    labels = _labels(batch_label_tensor, "batch_label_tensor")
    if labels.size:
        _values.check_size((int(labels.max()) + 1,), 8, "get_class_probabilities", "batch_label_tensor", "int64")
    counts = np.bincount(labels)
    total = counts.sum()
    probs = (counts / total) if total else counts.astype(np.float64)
    return from_numpy(probs.astype(np.float32))


def sigmoid_to_labels(batch_sigmoids, discriminant_pivot=0.5):
    """``probability >= discriminant_pivot`` as 0/1 labels, an int64 tensor of the input's shape
    (BCML returned int32; bcml's integer dtype is int64)."""
    p = _array(batch_sigmoids, "batch_sigmoids")
    if p.dtype.kind not in "iuf":
        raise TypeError("batch_sigmoids must hold probabilities, got dtype %s" % p.dtype)
    if isinstance(discriminant_pivot, bool) or not isinstance(discriminant_pivot, numbers.Real):
        raise TypeError("discriminant_pivot must be a real number, got %s" % type(discriminant_pivot).__name__)
    _values.to_float(discriminant_pivot, "sigmoid_to_labels", "discriminant_pivot")
    if not math.isfinite(discriminant_pivot):
        raise ValueError("discriminant_pivot must be finite, got %r" % (discriminant_pivot,))
    return from_numpy(np.array(p >= discriminant_pivot, dtype=np.int64, order="C"))  # 0-d stays 0-d


# ---- memory profiling (BCML's helpers, CPU figures) -------------------------------------------
def _rss():
    """The resident set size of this process in bytes."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, AttributeError):
        import resource
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024   # bytes on macOS, KiB elsewhere


def get_gpu_mem():
    """(mem_all, mem_cached), as BCML's pair (torch.cuda.memory_allocated(),
    torch.cuda.memory_cached()). On bcml's CPU: mem_all is the bytes held by the live tensors
    bcml allocated, mem_cached the resident set size of the process in bytes."""
    return _core._storage_bytes(), _rss()


def _check_list(v, fname, argname, none_ok=False):
    if not (isinstance(v, list) or (none_ok and v is None)):
        raise TypeError("%s(): argument '%s' must be a list%s, not %s"
                        % (fname, argname, " or None" if none_ok else "", type(v).__name__))


def _check_str(v, fname, argname, none_ok=False):
    if not (isinstance(v, str) or (none_ok and v is None)):
        raise TypeError("%s(): argument '%s' must be a str%s, not %s"
                        % (fname, argname, " or None" if none_ok else "", type(v).__name__))


def _check_idx(v, fname):
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise TypeError("%s(): argument 'idx' must be an int (the layer's index), not %s" % (fname, type(v).__name__))
    if v < 0:
        raise ValueError("%s(): argument 'idx' must be >= 0 (the layer's index), got %d" % (fname, v))
    return int(v)


def generate_mem_hook(handle_ref, mem, idx, hook_type, exp):
    """A hook ``hook(module, *args)`` (usable as a forward pre-hook, forward hook or backward
    hook) that appends to the list ``mem`` one entry with BCML's keys: layer_idx (idx),
    call_idx (0 for the first entry of experiment exp, then one more than the last entry's),
    layer_type (the module's class name), exp, hook_type, mem_all and mem_cached
    (get_gpu_mem()). handle_ref is accepted as BCML's and not used (BCML did not use it either)."""
    _check_list(mem, "generate_mem_hook", "mem")
    idx = _check_idx(idx, "generate_mem_hook")
    _check_str(hook_type, "generate_mem_hook", "hook_type")
    _check_str(exp, "generate_mem_hook", "exp")

    def hook(self, *args):
        call_idx = 0 if not mem or mem[-1]["exp"] != exp else mem[-1]["call_idx"] + 1
        mem_all, mem_cached = get_gpu_mem()
        mem.append({"layer_idx": idx, "call_idx": call_idx, "layer_type": type(self).__name__, "exp": exp,
                    "hook_type": hook_type, "mem_all": mem_all, "mem_cached": mem_cached})

    return hook


def add_memory_hooks(idx, mod, mem_log, exp, hr):
    """Registers on module ``mod`` a forward pre-hook ('pre'), a forward hook ('fwd') and a
    backward hook ('bwd') logging into mem_log; their handles are appended to the list hr."""
    from ..nn import Module
    if not isinstance(mod, Module):
        raise TypeError("add_memory_hooks(): argument 'mod' must be a bcml.nn.Module, not %s" % type(mod).__name__)
    _check_idx(idx, "add_memory_hooks")
    _check_list(mem_log, "add_memory_hooks", "mem_log")
    _check_str(exp, "add_memory_hooks", "exp")
    _check_list(hr, "add_memory_hooks", "hr")
    hooks = [generate_mem_hook(hr, mem_log, idx, kind, exp) for kind in ("pre", "fwd", "bwd")]
    hr.append(mod.register_forward_pre_hook(hooks[0]))
    hr.append(mod.register_forward_hook(hooks[1]))
    # BCML called the deprecated register_backward_hook; bcml runs that one as the full hook
    hr.append(mod.register_full_backward_hook(hooks[2]))


def log_mem(model, mem_log=None, exp=None):
    """Adds memory logging hooks to every module of model (model.modules(), numbered from 0).
    Returns (hook_handles, mem_log): mem_log is the list given (or a new one) that the hooks
    fill while the model runs forward and backward, hook_handles the handles to pass to
    remove_memory_hooks. exp names the experiment (default 'exp_<len(mem_log)>')."""
    from ..nn import Module
    if not isinstance(model, Module):
        raise TypeError("log_mem(): argument 'model' must be a bcml.nn.Module, not %s" % type(model).__name__)
    _check_list(mem_log, "log_mem", "mem_log", none_ok=True)
    _check_str(exp, "log_mem", "exp", none_ok=True)
    mem_log = [] if mem_log is None else mem_log   # (BCML made a new list for an empty one too)
    exp = exp or "exp_%d" % len(mem_log)
    hook_handles = []
    for idx, module in enumerate(model.modules()):
        add_memory_hooks(idx, module, mem_log, exp, hook_handles)
    return hook_handles, mem_log


def remove_memory_hooks(hook_handles):
    """Removes the hooks log_mem added (calls remove() on every handle)."""
    from .._hooks import RemovableHandle
    if not isinstance(hook_handles, (list, tuple)) or not all(isinstance(h, RemovableHandle) for h in hook_handles):
        raise TypeError("remove_memory_hooks(): argument 'hook_handles' must be a list of hook handles (as log_mem "
                        "returns), got %s" % type(hook_handles).__name__)
    for h in hook_handles:
        h.remove()


def clean_from_gpu(tensors):
    """BCML's: drops the given references and empties the CUDA cache. bcml returns the blocks
    its allocator keeps for reuse to the system (the memory of tensors still referenced
    elsewhere stays, as in BCML)."""
    if not isinstance(tensors, (list, tuple)):
        raise TypeError("clean_from_gpu(): argument 'tensors' must be a list of tensors, not %s"
                        % type(tensors).__name__)
    _core._release_cached_memory()


def show_allocated_tensors():
    """Prints ``type, size`` of every bcml tensor the garbage collector can see (and of every
    object whose ``.data`` is one), as BCML did for PyTorch tensors."""
    import warnings
    from .._tensor import Tensor
    with warnings.catch_warnings():   # reading .data of arbitrary objects may warn (deprecated attributes)
        warnings.simplefilter("ignore")
        for obj in gc.get_objects():
            try:
                if isinstance(obj, Tensor) or isinstance(getattr(obj, "data", None), Tensor):
                    print(type(obj), obj.size())
            except Exception:   # as BCML: objects whose attributes fail are skipped
                pass
