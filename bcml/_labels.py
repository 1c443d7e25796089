"""Float arrays of class labels (internal).

BCML compared labels with ``==``, so its users pass float targets that hold integers (its binary
notebook builds float32 targets). Scores, compatibility losses and helpers accept them: a float
array whose every value is integral is converted to int64 once; a non-integral value (1.5, nan,
inf) or one beyond int64 raises ValueError naming the argument, the index and the value. Integer
arrays pass through untouched (this module is only reached for a float dtype). The same rule in
C for the scores' labels: csrc/python/scores_py.c (labels_from_float).
"""
import numpy as np

__all__ = ["integral"]

_LIMIT = 2.0 ** 63  # int64 holds [-2^63, 2^63)


def integral(a, where, rule="integer class labels"):
    """A float NumPy array of labels as int64 (same shape), checked in one vectorised pass;
    ValueError "<where> must hold <rule> (...); got the non-integral value v at index i"."""
    from ._values import check_size
    check_size(a.shape, 8, "", where, "int64")  # before the masks and the copy are allocated
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(a) & (np.floor(a) == a) & (a >= -_LIMIT) & (a < _LIMIT)
    if not ok.all():
        i = np.unravel_index(int(np.argmin(ok)), a.shape)
        v = a[i].item()
        what = "non-integral value" if not np.isfinite(v) or v != np.floor(v) else "value outside int64"
        raise ValueError("%s must hold %s (a float label must hold an integral value); got the %s %r at index %s"
                         % (where, rule, what, v, i[0] if len(i) == 1 else tuple(map(int, i))))
    return a.astype(np.int64)
