"""Checks of Python numbers on their way into the C core (internal).

The core computes in float32 and int64. A Python int can exceed int64 and a Python float can
exceed float32's range; neither may become INT64_MIN, -1 or inf without a word. Each check
raises with PyTorch's wording ("value cannot be converted to type int64 without overflow"),
prefixed by the function and the argument: TypeError for something that is not a number,
ValueError for a number out of range (bcml's rule: ValueError for a wrong value).
"""
import math
import numbers

INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1
FLT_MAX = 3.4028234663852886e38  # float32's largest finite value


def _where(fname, argname):
    return "%s(): argument '%s'" % (fname, argname)


def is_int(v):
    """A Python or NumPy integer (bool excluded)."""
    return isinstance(v, numbers.Integral) and not _is_bool(v)


def _is_bool(v):
    return isinstance(v, bool) or type(v).__name__ == "bool_"


def number(v, fname, argname):
    """v if it is a real number (int, float, bool, NumPy scalar); TypeError otherwise."""
    if isinstance(v, numbers.Real):
        return v
    kind = "a complex number" if isinstance(v, numbers.Complex) else type(v).__name__
    raise TypeError("%s must be a real number, not %s" % (_where(fname, argname), kind))


def int64(v, fname, argname):
    """An integer that int64 holds, as a Python int; ValueError beyond int64."""
    v = int(v)
    if not INT64_MIN <= v <= INT64_MAX:
        raise ValueError("%s: value cannot be converted to type int64 without overflow (got %d)"
                         % (_where(fname, argname), v))
    return v


def wrap64(v):
    """v modulo 2**64 as an int64 (int64 arithmetic wraps around, as in PyTorch)."""
    return ((int(v) - INT64_MIN) & 0xFFFFFFFFFFFFFFFF) + INT64_MIN


def to_float(v, fname, argname):
    """float(v) for a real number; ValueError for an int too large for a double."""
    number(v, fname, argname)
    try:
        return float(v)
    except OverflowError:
        raise ValueError("%s: value cannot be converted to type double without overflow (got %d)"
                         % (_where(fname, argname), int(v))) from None


def float32(v, fname, argname):
    """A value the core stores as float32 (PyTorch's conversion rule): a finite value beyond
    float32's range is refused; inf and NaN pass."""
    f = to_float(v, fname, argname)
    if math.isfinite(f) and abs(f) > FLT_MAX:
        raise ValueError("%s: value cannot be converted to type float without overflow (got %r)"
                         % (_where(fname, argname), f))
    return f


def setting(v, fname, argname, low=None, high=None, low_open=False, high_open=False):
    """A float setting (learning rate, momentum, eps, p, lambda_c, ...): a real number (not a
    bool), finite, within float32's range and within [low, high] (open ends when asked)."""
    if _is_bool(v) or not isinstance(v, numbers.Real):
        raise TypeError("%s must be a real number, not %s" % (_where(fname, argname), type(v).__name__))
    f = to_float(v, fname, argname)
    if not math.isfinite(f):
        raise ValueError("%s must be finite, got %r" % (_where(fname, argname), f))
    if abs(f) > FLT_MAX:
        raise ValueError("%s: value cannot be converted to type float without overflow (got %r)"
                         % (_where(fname, argname), f))
    bad_low = low is not None and (f < low or (low_open and f == low))
    bad_high = high is not None and (f > high or (high_open and f == high))
    if bad_low or bad_high:
        lo = "-inf" if low is None else repr(low)
        hi = "inf" if high is None else repr(high)
        raise ValueError("%s must lie in %s%s, %s%s, got %r"
                         % (_where(fname, argname), "(" if low_open or low is None else "[", lo, hi,
                            ")" if high_open or high is None else "]", f))
    return f
