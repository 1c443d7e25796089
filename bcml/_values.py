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


_NAMED_ERRORS = (TypeError, ValueError, IndexError)


def call_named(describe, fn, *args, **kwargs):
    """fn(*args, **kwargs); a TypeError, ValueError or IndexError raised inside it (of exactly
    that type, so that a subclass with a constructor of its own passes through) is raised again
    with the message describe(e), chained to the original. For calls into user code (models,
    losses, metrics) whose errors must name the argument they came from."""
    try:
        return fn(*args, **kwargs)
    except _NAMED_ERRORS as e:
        if type(e) not in _NAMED_ERRORS:
            raise
        raise type(e)(describe(e)) from e


def _where(fname, argname):
    return "%s(): argument '%s'" % (fname, argname)


def is_int(v):
    """A Python or NumPy integer (bool excluded)."""
    return isinstance(v, numbers.Integral) and not _is_bool(v)


def _is_bool(v):
    return isinstance(v, bool) or type(v).__name__ == "bool_"


def number(v, fname, argname):
    """v if it is a real number (int, float, bool, NumPy scalar); TypeError otherwise."""
    t = type(v)
    if t is float or t is int or t is bool or isinstance(v, numbers.Real):
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
    t = type(v)
    if t is float:
        return v
    if t is int and INT64_MIN <= v <= INT64_MAX:
        return float(v)
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



def scalar(v, fname, argname, float_target=False):
    """A scalar operand as a Python bool, int or float: TypeError for anything else (complex
    included); an int must fit int64 (ValueError otherwise), unless it meets a float32 tensor:
    then it is computed in float, as NumPy does (it must fit a double)."""
    t = type(v)  # the common cases first: this runs for every scalar operand
    if t is float or t is bool:
        return v
    if t is int and INT64_MIN <= v <= INT64_MAX:
        return v
    number(v, fname, argname)
    if _is_bool(v):
        return bool(v)
    if isinstance(v, numbers.Integral):
        v = int(v)
        if float_target:
            to_float(v, fname, argname)
            return v
        return int64(v, fname, argname)
    return to_float(v, fname, argname)


def flag(v, fname, argname):
    """A boolean switch (keepdim, training, ...): a bool, a NumPy bool or an int (its truth
    value, as PyTorch takes 0 and 1); TypeError for anything else."""
    if v is True or v is False:
        return v
    if _is_bool(v):
        return bool(v)
    if isinstance(v, numbers.Integral):
        if int(v) not in (0, 1):
            raise ValueError("%s must be a bool (or 0 or 1), got %d" % (_where(fname, argname), int(v)))
        return bool(int(v))
    raise TypeError("%s must be a bool, not %s" % (_where(fname, argname), type(v).__name__))


def index(v, fname, argname):
    """An integer argument (a dimension, a count, a size) as a Python int within int64:
    TypeError for anything that is not an integer (bools included), ValueError beyond int64."""
    if type(v) is int and INT64_MIN <= v <= INT64_MAX:
        return v
    if _is_bool(v) or not isinstance(v, numbers.Integral):
        raise TypeError("%s must be an int, not %s" % (_where(fname, argname), type(v).__name__))
    return int64(v, fname, argname)


def _memory():
    """This machine's physical memory in bytes (1 TiB when it cannot be read), the bound the
    core checks sizes against."""
    import os
    try:
        n = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        n = 0
    return n if n > 0 else 1 << 40


def check_size(shape, itemsize, fname, argname, dtype_name):
    """A tensor of `shape` must have rank <= 4 and fit in memory (checked before anything of
    that size is allocated or converted): ValueError naming the argument otherwise."""
    where = _where(fname, argname) if fname else argname
    if len(shape) > 4:
        raise ValueError("%s: bcml tensors have at most 4 dimensions, got %d" % (where, len(shape)))
    n = 1
    for s in shape:
        n *= int(s)
    if n * itemsize > _memory():
        raise ValueError("%s: a tensor of this size (%d elements%s) does not fit in memory"
                         % (where, n, " of " + dtype_name if dtype_name else ""))


def real(v, fname, argname):
    """A real-number argument (a bound, a mean, ...) as a float: TypeError for anything that
    is not a real number (bools and tensors included, as PyTorch), ValueError for an int beyond
    int64."""
    if _is_bool(v) or not isinstance(v, numbers.Real):
        raise TypeError("%s must be a real number, not %s" % (_where(fname, argname), type(v).__name__))
    f = to_float(v, fname, argname)
    if isinstance(v, numbers.Integral):
        return int64(v, fname, argname)
    return f
