"""Label and probability utilities (backwardcompatibilityml.helpers.utils).

Inputs may be bcml tensors, NumPy arrays, lists or anything with ``.numpy()`` (a PyTorch
tensor); results are bcml tensors. BCML's GPU memory-profiling utilities (clean_from_gpu,
log_mem, ...) have no counterpart: bcml runs on the CPU.
"""
import math
import numbers

import numpy as np

from .. import _core, _values
from .._labels import integral as _integral
from .._tensor import from_numpy

__all__ = ["labels_to_probabilities", "get_class_probabilities", "sigmoid_to_labels"]


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
