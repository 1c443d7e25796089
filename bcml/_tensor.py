"""bcml.Tensor: the PyTorch-familiar face of a C tensor.

Storage, autograd and every op live in the C core (`bcml._core`); this module only turns
Python calls into `_core.apply(op, inputs, int_args, float_args)` calls and checks arguments.
"""
import collections
import collections.abc
import math
import numbers

import builtins
import numpy as np

from . import _core
from . import _values

OPS = _core.op_ids()
_INDEX_SELECT, _SLICE = OPS["index_select"], OPS["slice"]
_apply = _core.apply

REDUCTIONS = {"none": 0, "mean": 1, "sum": 2, "batchmean": 3}
CMP = {"eq": 0, "ne": 1, "lt": 2, "le": 3, "gt": 4, "ge": 5}


class dtype:
    """A tensor element type: bcml.float32, bcml.int64 or bcml.bool."""

    __slots__ = ("name", "is_floating_point", "itemsize")

    def __init__(self, name, is_floating_point, itemsize):
        known = {"float32": (True, 4), "int64": (False, 8), "bool": (False, 1)}
        if not isinstance(name, str):
            raise TypeError("dtype(): argument 'name' must be a str, not %s" % type(name).__name__)
        if name not in known:
            raise ValueError("dtype(): argument 'name' must be 'float32', 'int64' or 'bool' (bcml's dtypes), got %r"
                             % (name,))
        if is_floating_point is not known[name][0]:
            raise ValueError("dtype(): argument 'is_floating_point' must be %r for %s, got %r"
                             % (known[name][0], name, is_floating_point))
        if type(itemsize) is not int or itemsize != known[name][1]:
            raise ValueError("dtype(): argument 'itemsize' must be %d for %s, got %r" % (known[name][1], name, itemsize))
        self.name = name
        self.is_floating_point = is_floating_point
        self.itemsize = itemsize

    def __repr__(self):
        return "bcml." + self.name

    def __reduce__(self):
        return (_dtype_from_name, (self.name,))


float32 = dtype("float32", True, 4)
int64 = dtype("int64", False, 8)
bool_ = dtype("bool", False, 1)
_DTYPES = {"float32": float32, "int64": int64, "bool": bool_}
_NP = {"float32": np.float32, "int64": np.int64, "bool": np.bool_}


def _dtype_from_name(name):
    return _DTYPES[name]


def _as_dtype(d, argname="dtype"):
    """Accepts bcml dtypes, their names, NumPy dtypes and Python's float/int/bool."""
    if isinstance(d, dtype):
        return d
    if d is float:
        return float32
    if d is int:
        return int64
    if d is bool:
        return bool_
    if isinstance(d, str) and d in _DTYPES:
        return _DTYPES[d]
    name = getattr(d, "__module__", "")
    if name.startswith("torch"):
        s = str(d).replace("torch.", "")
        if s in ("float", "float32", "float64", "double", "half", "float16"):
            return float32
        if s in ("long", "int64", "int", "int32", "int16", "int8", "uint8"):
            return int64
        if s == "bool":
            return bool_
    if not (isinstance(d, (str, np.dtype)) or (isinstance(d, type) and issubclass(d, np.generic))):
        raise TypeError("%s must be bcml.float32, bcml.int64 or bcml.bool, got %s" % (argname, type(d).__name__))
    try:
        nd = np.dtype(d)
    except TypeError:
        raise TypeError("%s must be bcml.float32, bcml.int64 or bcml.bool, got %r" % (argname, d)) from None
    if nd.kind == "f":
        return float32
    if nd.kind in "iu":
        return int64
    if nd.kind == "b":
        return bool_
    raise TypeError("%s must be bcml.float32, bcml.int64 or bcml.bool, got %r" % (argname, d))


class device:
    """bcml computes on the CPU; device("cpu") exists so that `.to(device)` code ports."""

    __slots__ = ("type",)

    def __init__(self, type="cpu"):
        if isinstance(type, device):
            type = type.type
        if not isinstance(type, str):
            raise TypeError("device(): argument 'type' must be a str, not %s" % builtins_type(type).__name__)
        check_device(type, "device(): argument 'type'")
        self.type = "cpu"

    def __repr__(self):
        return "device(type='cpu')"

    def __str__(self):
        return "cpu"

    def __eq__(self, other):
        return str(other) == "cpu"

    def __hash__(self):
        return hash("cpu")


def check_device(dev, argname="device"):
    if dev is None:
        return
    s = str(getattr(dev, "type", dev))
    if s != "cpu" and not s.startswith("cpu:"):
        raise ValueError("%s: bcml runs on the CPU only; got %r (use 'cpu')" % (argname, str(dev)))


builtins_type = builtins.type
MaxResult = collections.namedtuple("max", ["values", "indices"])


def _scalar(x):
    t = type(x)
    if t is float or t is int or t is bool:
        return True
    return isinstance(x, numbers.Number) and not isinstance(x, np.ndarray)


def _promote(a, b):
    """Gives two tensors a common dtype as PyTorch does (float wins; bool < int64 < float32)."""
    if a._dtype_name == b._dtype_name:
        return a, b
    order = {"bool": 0, "int64": 1, "float32": 2}
    target = a._dtype_name if order[a._dtype_name] > order[b._dtype_name] else b._dtype_name
    if a._dtype_name != target:
        a = _apply(OPS["cast"], (a,), (("float32", "int64", "bool").index(target),), ())
    if b._dtype_name != target:
        b = _apply(OPS["cast"], (b,), (("float32", "int64", "bool").index(target),), ())
    return a, b


def as_tensor_arg(x, argname="other", like=None, fname=None):
    """x as a tensor: tensors as they are, numbers as 0-d tensors (float32 when x is not an
    integer or like is float32, else bool or int64), lists and arrays converted as tensor()
    converts them; errors name fname's argument argname."""
    if isinstance(x, _core.TensorBase):
        return x
    fname = fname or "tensor"
    if _scalar(x):
        to_float = like is not None and like._dtype_name == "float32"
        v = _values.scalar(x, fname, argname, float_target=to_float)
        if isinstance(v, float) or to_float:
            with np.errstate(over="ignore"):  # beyond float32: inf, as PyTorch's arithmetic gives
                return _core.from_numpy(np.array(float(v), dtype=np.float32))
        if isinstance(v, bool):
            return _core.from_numpy(np.array(v, dtype=np.bool_))
        return _core.from_numpy(np.array(v, dtype=np.int64))
    if isinstance(x, (list, tuple, np.ndarray)):
        return _convert(x, fname, argname)
    raise TypeError("%s(): argument '%s' must be a bcml tensor or a number, not %s"
                    % (fname, argname, type(x).__name__))


def _binary(op, a, b):
    b = as_tensor_arg(b, like=a, fname=op)
    a, b = _promote(a, b)
    return _apply(OPS[op], (a, b), (), ())


_PLAIN_NUMBERS = (bool, int, float)


def _add_scalar(a, add, mul, fname="add", other=None):
    """a * mul + add for scalars add and mul; other: the user's scalar operand they come from
    (checked by the caller with _values.scalar, named in messages). An int64 (or bool) tensor
    with integer scalars gives an exact int64 result (wrapping around as PyTorch's int64
    arithmetic does). Otherwise the result is float32."""
    if a._dtype_name == "float32" and type(add) in _PLAIN_NUMBERS and type(mul) in _PLAIN_NUMBERS:
        # checked operands (bool, int or float that a double holds): the common case
        return _apply(OPS["add_scalar"], (a,), (), (float(add), float(mul)))
    if a._dtype_name != "float32":
        if isinstance(add, numbers.Integral) and isinstance(mul, numbers.Integral):
            if a._dtype_name == "bool":
                a = _apply(OPS["cast"], (a,), (1,), ())
            return _apply(OPS["add_scalar"], (a,), (1, _values.wrap64(add), _values.wrap64(mul)), ())
        a = _apply(OPS["cast"], (a,), (0,), ())
    return _apply(OPS["add_scalar"], (a,), (),
                  (_values.to_float(add, fname, "other"), _values.to_float(mul, fname, "other")))


def _operand(a, other, fname, argname="other"):
    """A scalar operand of arithmetic on tensor a, checked (see _values.scalar)."""
    return _values.scalar(other, fname, argname, float_target=a._dtype_name == "float32")


def _cmp(a, b, kind):
    if _scalar(b):
        _values.number(b, kind, "other")
        if a._dtype_name != "float32" and isinstance(b, numbers.Integral):
            b = int(b)
            if _values.INT64_MIN <= b <= _values.INT64_MAX:  # exact, also beyond 2**53
                return _apply(OPS["cmp_scalar"], (a,), (CMP[kind], 1, b), ())
            # beyond int64 every element compares the same way: only the sign matters
            return _apply(OPS["cmp_scalar"], (a,), (CMP[kind],), (math.inf if b > 0 else -math.inf,))
        return _apply(OPS["cmp_scalar"], (a,), (CMP[kind],), (_values.to_float(b, kind, "other"),))
    b = as_tensor_arg(b, like=a, fname=kind)
    a, b = _promote(a, b)
    return _apply(OPS["cmp"], (a, b), (CMP[kind],), ())


def _infer_shape(shape, numel, argname="shape"):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    shape = list(shape)
    for s in shape:
        if not isinstance(s, (numbers.Integral, np.integer)) or isinstance(s, bool):
            raise TypeError("%s must contain ints, got %r" % (argname, s))
    neg = [i for i, s in enumerate(shape) if s == -1]
    if len(neg) > 1:
        raise ValueError("%s: only one dimension can be inferred (-1)" % argname)
    if any(s < -1 for s in shape):
        raise ValueError("%s: invalid shape %r" % (argname, tuple(shape)))
    if neg:
        rest = 1
        for i, s in enumerate(shape):
            if i != neg[0]:
                rest *= s
        if rest == 0 or numel % rest:
            raise ValueError("%s: shape %r is invalid for input of size %d" % (argname, tuple(shape), numel))
        shape[neg[0]] = numel // rest
    prod = 1
    for s in shape:
        prod *= s
    if prod != numel:
        raise ValueError("%s: shape %r is invalid for input of size %d" % (argname, tuple(shape), numel))
    if len(shape) > 4:
        raise ValueError("%s: bcml tensors have at most 4 dimensions, got %d" % (argname, len(shape)))
    return tuple(int(s) for s in shape)


def _reshape(t, shape):
    return _apply(OPS["reshape"], (t,), tuple(shape) + (0,) * (4 - len(shape)) + (len(shape),), ())


def _norm_dim(dim, ndim, argname="dim"):
    if type(dim) is int and -1 <= dim < ndim:  # the common case
        return dim % max(ndim, 1)
    if not isinstance(dim, (numbers.Integral, np.integer)) or isinstance(dim, bool):
        raise TypeError("%s must be an int, got %r" % (argname, dim))
    n = max(ndim, 1)
    if not -n <= dim < n:
        raise IndexError("%s: dimension out of range (expected to be in range of [%d, %d], but got %d; the "
                         "tensor 'input' has %d dimensions)" % (argname, -n, n - 1, dim, ndim))
    return int(dim) % n


class Tensor(_core.TensorBase):
    """A float32, int64 or bool tensor of rank 0 to 4, with autograd (see bcml's README)."""

    __slots__ = ()
    __hash__ = object.__hash__
    __array_priority__ = 1000

    def __new__(cls, data=None, *args, **kwargs):
        if isinstance(data, _core.TensorBase):
            return _core.TensorBase.__new__(cls, data)
        if data is None:
            return _core.TensorBase.__new__(cls, zeros(0))
        return _core.TensorBase.__new__(cls, tensor(data, *args, **kwargs))

    # ---- properties ---------------------------------------------------------------------
    @property
    def dtype(self):
        return _DTYPES[self._dtype_name]

    @property
    def device(self):
        return device("cpu")

    @property
    def is_cuda(self):
        return False

    @property
    def grad_fn(self):
        return self._grad_fn_name

    @property
    def T(self):
        return self.t() if self.ndim == 2 else self

    @property
    def data(self):
        return Tensor(self)

    @data.setter
    def data(self, value):
        if not isinstance(value, _core.TensorBase):
            raise TypeError("data must be a bcml tensor")
        self._set_data(value)

    def size(self, dim=None):
        if dim is None:
            return Size(self.shape)
        return self.shape[_norm_dim(dim, self.ndim)]

    def dim(self):
        return self.ndim

    def numel(self):
        return self._numel

    def nelement(self):
        return self._numel

    def element_size(self):
        return self.dtype.itemsize

    def is_floating_point(self):
        return self._dtype_name == "float32"

    def is_contiguous(self):
        return True

    def contiguous(self):
        return self

    def __len__(self):
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __repr__(self):
        arr = Tensor(self).numpy()
        body = np.array2string(arr, separator=", ", prefix="tensor(")
        extra = ""
        if self._dtype_name != "float32":
            extra += ", dtype=bcml.%s" % self._dtype_name
        if self._grad_fn_name:
            extra += ", grad_fn=<%s>" % self._grad_fn_name
        elif self.requires_grad:
            extra += ", requires_grad=True"
        return "tensor(%s%s)" % (body, extra)

    __str__ = __repr__

    def __array__(self, dtype=None, copy=None):
        if copy is not None and not _values._is_bool(copy):
            raise TypeError("__array__(): argument 'copy' must be None or a bool, not %s" % type(copy).__name__)
        if self.requires_grad:   # as PyTorch (np.asarray(t), np.exp(t), ... on a tensor that requires grad)
            raise RuntimeError("Can't call numpy() on Tensor that requires grad. Use tensor.detach().numpy() instead.")
        arr = Tensor(self).numpy()
        if dtype is not None:
            try:
                dt = np.dtype(dtype)
            except (TypeError, ValueError) as e:
                raise TypeError("__array__(): argument 'dtype' is not a NumPy dtype: %s" % e) from None
            if dt.kind not in "biufc":
                raise TypeError("__array__(): argument 'dtype' must be a numeric NumPy dtype, got %s" % dt)
            arr = arr.astype(dt)
        elif copy:
            arr = arr.copy()
        return arr

    def __array_wrap__(self, array, context=None, return_scalar=False):
        """What NumPy hands back from a ufunc or a function applied to this tensor (np.exp(t),
        np.add(t, 1), np.transpose(t, axes), np.reshape, np.argmax): a bcml tensor, as PyTorch
        returns (a 0-d result too). bcml's dtypes apply: float64 and float16 results become
        float32, other integers int64, bools stay bool (PyTorch gives uint8); a result of a
        dtype bcml cannot hold (complex, strings) stays an ndarray."""
        if not isinstance(array, np.ndarray):
            raise TypeError("__array_wrap__(): argument 'array' must be a NumPy array, not %s" % type(array).__name__)
        if array.dtype.kind not in "biuf":
            return array
        try:
            return from_numpy(array if array.flags.c_contiguous else array.copy(order="C"))   # 0-d stays 0-d
        except ValueError as e:   # e.g. uint64 values beyond int64
            raise ValueError("__array_wrap__(): argument 'array': %s" % e) from None

    def __bool__(self):
        if self._numel != 1:  # PyTorch's RuntimeError; bcml's rule: a wrong size is a ValueError
            raise ValueError("Boolean value of Tensor with %d values is ambiguous (one value needed)" % self._numel)
        return bool(self.item())

    def __float__(self):
        return float(self.item())

    def __int__(self):
        if self._numel == 1:
            v = self.item()
            if isinstance(v, float) and not math.isfinite(v):
                raise ValueError("int(): the tensor 'self' holds %r, which is not an integer" % v)
        return int(self.item())

    def __index__(self):
        if self._dtype_name == "float32" or self._numel != 1:
            raise TypeError("only integer tensors of a single element can be converted to an index (tensor "
                            "'self' of dtype %s and shape %s)" % (self._dtype_name, tuple(self.shape)))
        return int(self.item())

    def __format__(self, spec):
        if not isinstance(spec, str):
            raise TypeError("__format__(): argument 'spec' must be str, not %s" % type(spec).__name__)
        try:
            if self._numel == 1 and self.ndim == 0:
                return format(self.item(), spec)
            return format(repr(self), spec)
        except ValueError as e:
            raise ValueError("__format__(): argument 'spec': %s" % e) from None

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        for i in range(self.shape[0]):
            yield self[i]

    def __reduce__(self):
        return (_rebuild, (Tensor(self).numpy().copy(), self.requires_grad))

    def tolist(self):
        return Tensor(self).numpy().tolist()

    def detach(self):
        return Tensor(self)

    def clone(self):
        if self._dtype_name == "float32":
            return _apply(OPS["add_scalar"], (self,), (), (0.0, 1.0))
        return from_numpy(Tensor(self).numpy().copy())

    def register_hook(self, hook):
        """hook(grad) is called with this tensor's gradient when backward computes it (for a leaf:
        before it is added into .grad); a tensor it returns replaces the gradient. Returns a
        handle with .remove()."""
        from ._hooks import tensor_register_hook
        return tensor_register_hook(self, hook)

    def requires_grad_(self, requires_grad=True):
        self.requires_grad = requires_grad
        return self

    def zero_(self):
        self._check_inplace()
        _core.fill_(self, 2, 0.0, 0.0)
        return self

    def fill_(self, value):
        value = _fill_value(value, self._dtype_name, "fill_", "value")
        self._check_inplace()
        _core.fill_(self, 2, value, 0.0)
        return self

    def uniform_(self, a=0.0, b=1.0, generator=None):
        from . import _random
        a, b = _values.real(a, "uniform_", "a"), _values.real(b, "uniform_", "b")
        g = _random.gen(generator)
        self._check_inplace()
        _core.fill_(self, 0, a, b, g)
        return self

    def normal_(self, mean=0.0, std=1.0, generator=None):
        from . import _random
        mean, std = _values.real(mean, "normal_", "mean"), _values.real(std, "normal_", "std")
        g = _random.gen(generator)
        self._check_inplace()
        _core.fill_(self, 1, mean, std, g)
        return self

    def copy_(self, src):
        src = as_tensor_arg(src, "src", like=self, fname="copy_")
        if src._dtype_name != self._dtype_name:
            src = src.to(self.dtype)
        if src.shape != self.shape:
            if src._numel == 1:
                return self.fill_(src.item())
            raise ValueError("copy_(): argument 'src' of shape %s does not match the tensor 'self' of shape %s"
                             % (tuple(src.shape), tuple(self.shape)))
        self._check_inplace()
        self._copy_from(src)
        return self

    # ---- dtype and device -----------------------------------------------------------------
    def to(self, *args, **kwargs):
        dt = kwargs.pop("dtype", None)
        dev = kwargs.pop("device", None)
        kwargs.pop("non_blocking", None)
        kwargs.pop("copy", None)
        if kwargs:
            raise TypeError("to() got unexpected arguments %s" % sorted(kwargs))
        for a in args:
            if isinstance(a, _core.TensorBase):
                dt = a.dtype
            elif isinstance(a, (dtype, type)) or (hasattr(a, "__module__") and "torch" in str(type(a)) and "dtype" in str(type(a))):
                dt = a
            else:
                dev = a
        check_device(dev)
        if dt is None:
            return self
        dt = _as_dtype(dt)
        if dt.name == self._dtype_name:
            return self
        return _apply(OPS["cast"], (self,), (("float32", "int64", "bool").index(dt.name),), ())

    def cpu(self):
        return self

    def cuda(self, *a, **k):
        raise ValueError("device: bcml runs on the CPU only; cuda() is not available")

    def float(self):
        return self.to(float32)

    def double(self):
        return self.to(float32)

    def long(self):
        return self.to(int64)

    def int(self):
        return self.to(int64)

    def bool(self):
        return self.to(bool_)

    def type(self, dtype=None):
        names = {"float32": "bcml.FloatTensor", "int64": "bcml.LongTensor", "bool": "bcml.BoolTensor"}
        if dtype is None:
            return names[self._dtype_name]
        if isinstance(dtype, str):
            for k, v in names.items():
                if dtype in (v, v.replace("bcml.", "torch.")):
                    dtype = k
        return self.to(_as_dtype(dtype, "type(): argument 'dtype'"))

    def type_as(self, other):
        return self.to(_tensor_arg(other, "type_as", "other").dtype)

    # ---- shape ----------------------------------------------------------------------------
    def view(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (dtype, type)):
            raise TypeError("view(dtype) is not supported; use .to(dtype)")
        return _reshape(self, _infer_shape(shape, self._numel))

    reshape = view

    def view_as(self, other):
        other = _tensor_arg(other, "view_as", "other")
        if other._numel != self._numel:
            raise ValueError("view_as(): the shape %s of argument 'other' is invalid for input of size %d"
                             % (tuple(other.shape), self._numel))
        return self.view(other.shape)

    reshape_as = view_as

    def flatten(self, start_dim=0, end_dim=-1):
        if self.ndim == 0:  # as PyTorch: dims 0 and -1 are valid for a 0-d tensor
            _norm_dim(start_dim, 0, "start_dim")
            _norm_dim(end_dim, 0, "end_dim")
            return self.view(1)
        s = _norm_dim(start_dim, self.ndim, "start_dim")
        e = _norm_dim(end_dim, self.ndim, "end_dim")
        if s > e:
            raise ValueError("flatten: start_dim must not be after end_dim")
        shape = self.shape
        mid = 1
        for d in shape[s:e + 1]:
            mid *= d
        return self.view(shape[:s] + (mid,) + shape[e + 1:])

    def squeeze(self, dim=None):
        if dim is None:
            return self.view(tuple(d for d in self.shape if d != 1))
        d = _norm_dim(dim, self.ndim)
        if self.ndim == 0 or self.shape[d] != 1:
            return self
        return self.view(self.shape[:d] + self.shape[d + 1:])

    def unsqueeze(self, dim):
        d = _norm_dim(dim, self.ndim + 1)
        if self.ndim >= 4:
            raise ValueError("unsqueeze(): the tensor 'input' already has 4 dimensions, bcml's maximum")
        return self.view(self.shape[:d] + (1,) + self.shape[d:])

    def t(self):
        if self.ndim < 2:
            return self
        if self.ndim != 2:
            raise ValueError("t() expects a tensor with <= 2 dimensions, got %d" % self.ndim)
        return self.transpose(0, 1)

    def transpose(self, dim0, dim1):
        if isinstance(dim0, (tuple, list)):   # NumPy's axis order: np.transpose(t, axes) does that
            raise TypeError("transpose(): argument 'dim0' must be int, not %s (transpose swaps two dims, as "
                            "PyTorch's; for an order of all axes use np.transpose(t, axes))" % type(dim0).__name__)
        d0, d1 = _norm_dim(dim0, self.ndim, "dim0"), _norm_dim(dim1, self.ndim, "dim1")
        if d0 == d1:
            return self
        return _apply(OPS["transpose"], (self,), (d0, d1), ())

    def expand_as(self, other):
        other = _tensor_arg(other, "expand_as", "other")
        out = self + zeros(other.shape, dtype=self.dtype)
        if out.shape != other.shape:
            raise ValueError("expand_as(): the tensor 'self' of shape %s cannot be expanded to the shape %s of "
                             "argument 'other'" % (tuple(self.shape), tuple(other.shape)))
        return out

    # ---- indexing -------------------------------------------------------------------------
    def __getitem__(self, key):
        # the two indexings of a training loop, without index()'s general walk: rows picked by a
        # 1-D int64 tensor (x[idx]) and a step-1 slice of the first dimension (perm[i:i + B])
        tk = type(key)
        if tk is Tensor and key.ndim == 1 and key._dtype_name == "int64" and self.ndim:
            return _apply(_INDEX_SELECT, (self, key), (0,), ())
        if tk is slice and key.step is None and self.ndim:
            n = self.shape[0]
            start, stop, _ = key.indices(n)
            if start == 0 and stop == n:
                return self
            return _apply(_SLICE, (self,), (0, start, max(stop, start), 1), ())
        return index(self, key)

    def __setitem__(self, key, value):
        self._check_inplace()
        arr = Tensor(self).numpy()
        key = tuple(_setitem_key(k) for k in key) if isinstance(key, tuple) else _setitem_key(key)
        if _scalar(value) or (isinstance(value, _core.TensorBase) and value._numel == 1 and value.ndim == 0):
            value = _fill_value(value, self._dtype_name, "__setitem__", "value")
            if self._dtype_name == "float32":
                with np.errstate(over="ignore"):
                    value = np.float32(value)
        else:
            value = as_tensor_arg(value, "value", fname="__setitem__")
            order = {"bool": 0, "int64": 1, "float32": 2}
            if order[value._dtype_name] > order[self._dtype_name]:  # PyTorch casts; bcml does not truncate silently
                raise TypeError("__setitem__(): argument 'value' of dtype %s cannot be written into a tensor of "
                                "dtype %s" % (value._dtype_name, self._dtype_name))
            value = Tensor(value).numpy()
        try:
            arr[key] = value
        except IndexError as e:
            raise IndexError("__setitem__(): index: %s" % e) from None
        except ValueError as e:
            raise ValueError("__setitem__(): argument 'value' does not fit the indexed part of the tensor: %s"
                             % e) from None
        self._bump_version()

    def _check_inplace(self):
        if self.requires_grad and _core.is_grad_enabled():
            if self.is_leaf:
                raise RuntimeError("a leaf Variable that requires grad is being used in an in-place operation.")
            raise RuntimeError("in-place operations on tensors that are part of a graph are not supported by bcml")

    # ---- arithmetic -----------------------------------------------------------------------
    def __add__(self, other):
        if _scalar(other):
            return _add_scalar(self, _operand(self, other, "add"), 1, "add")
        return _binary("add", self, other)

    __radd__ = __add__

    def __sub__(self, other):
        if _scalar(other):
            return _add_scalar(self, -_operand(self, _no_bool_sub(self, other, "sub"), "sub"), 1, "sub")
        return _binary("sub", self, _no_bool_sub(self, other, "sub"))

    def __rsub__(self, other):
        if _scalar(other):
            return _add_scalar(self, _operand(self, _no_bool_sub(self, other, "rsub"), "rsub"), -1, "rsub")
        return _binary("sub", as_tensor_arg(_no_bool_sub(self, other, "rsub"), like=self, fname="rsub"), self)

    def __mul__(self, other):
        if _scalar(other):
            return _add_scalar(self, 0, _operand(self, other, "mul"), "mul")
        return _binary("mul", self, other)

    __rmul__ = __mul__

    def __truediv__(self, other):
        a = self if self._dtype_name == "float32" else self.float()
        if _scalar(other):
            v = float(_operand(a, other, "div"))
            with np.errstate(over="ignore"):
                return _binary("div", a, _core.from_numpy(np.array(v, dtype=np.float32)))
        return _binary("div", a, other)

    def __rtruediv__(self, other):
        a = self if self._dtype_name == "float32" else self.float()
        if _scalar(other):
            return _apply(OPS["rdiv_scalar"], (a,), (), (float(_operand(a, other, "rdiv")),))
        return _binary("div", as_tensor_arg(other, like=a, fname="rdiv"), a)

    def __neg__(self):
        if self._dtype_name == "bool":
            raise TypeError("neg(): argument 'input': negation, the `-` operator, on a bool tensor is not "
                            "supported; use ~ or logical_not() instead")
        return _add_scalar(self, 0, -1)

    def __pos__(self):
        if self._dtype_name == "bool":
            raise TypeError("positive(): argument 'input': the `+` operator on a bool tensor is not supported")
        return self

    def __pow__(self, exponent):
        if isinstance(exponent, _core.TensorBase) and exponent.ndim == 0:
            exponent = exponent.item()
        if not _scalar(exponent):
            raise TypeError("pow(): argument 'exponent' must be a number (bcml supports tensor ** number "
                            "only), not %s" % type(exponent).__name__)
        a = self if self._dtype_name == "float32" else self.float()
        return _apply(OPS["pow_scalar"], (a,), (), (float(_operand(a, exponent, "pow", "exponent")),))

    def __matmul__(self, other):
        return _apply(OPS["matmul"], (self, _matmul_arg(other, "other")), (), ())

    def __rmatmul__(self, other):
        return _apply(OPS["matmul"], (_matmul_arg(other, "input"), self), (), ())

    def _inplace(self, result, fname="in-place operation"):
        self._check_inplace()
        if result._dtype_name != self._dtype_name:
            order = {"bool": 0, "int64": 1, "float32": 2}
            if order[result._dtype_name] > order[self._dtype_name]:  # PyTorch: a RuntimeError
                raise TypeError("%s(): result type %s can't be cast to the desired output type %s (the tensor "
                                "'self' of dtype %s is updated in place)"
                                % (fname, _DTYPES[result._dtype_name], _DTYPES[self._dtype_name], self._dtype_name))
            result = result.to(self.dtype)
        if result.shape != self.shape:
            raise ValueError("%s(): output with shape %s doesn't match the broadcast shape %s (the tensor 'self' "
                             "is updated in place)" % (fname, tuple(self.shape), tuple(result.shape)))
        self._copy_from(result)
        return self

    def __iadd__(self, other):
        return self._inplace(self + other, "add_")

    def __isub__(self, other):
        return self._inplace(self - other, "sub_")

    def __imul__(self, other):
        return self._inplace(self * other, "mul_")

    def __itruediv__(self, other):
        return self._inplace(self / other, "div_")

    def add(self, other, alpha=1):
        alpha = _alpha(self, other, alpha, "add")
        return self + (other * alpha if alpha != 1 else other)

    def sub(self, other, alpha=1):
        alpha = _alpha(self, other, alpha, "sub")
        return self - (other * alpha if alpha != 1 else other)

    def mul(self, other):
        return self * other

    def div(self, other):
        return self / other

    def add_(self, other, alpha=1):
        with no_grad_if(not self.requires_grad):
            return self._inplace(self.add(other, alpha=alpha), "add_")

    def sub_(self, other, alpha=1):
        return self._inplace(self.sub(other, alpha=alpha), "sub_")

    def mul_(self, other):
        return self._inplace(self * other, "mul_")

    def div_(self, other):
        return self._inplace(self / other, "div_")

    def neg(self):
        return -self

    def pow(self, exponent):
        return self.__pow__(exponent)

    def matmul(self, other):
        return self @ other

    def mm(self, other):
        return self @ other

    def exp(self):
        return _apply(OPS["exp"], (self._f(),), (), ())

    def log(self):
        return _apply(OPS["log"], (self._f(),), (), ())

    def abs(self):
        if self._dtype_name == "bool":
            raise TypeError("abs(): argument 'input' of dtype bool is not supported")
        if self._dtype_name == "int64":  # exact, as PyTorch (abs(INT64_MIN) wraps to itself)
            return _apply(OPS["where"], (self < 0, -self, self), (), ())
        return _apply(OPS["abs"], (self,), (), ())

    def sqrt(self):
        return self ** 0.5

    def clamp(self, min=None, max=None):
        if min is None and max is None:
            raise ValueError("clamp: at least one of min or max must not be None")
        lo = 0.0 if min is None else _clamp_bound(min, "min")
        hi = 0.0 if max is None else _clamp_bound(max, "max")
        flags = (1 if min is not None else 0) | (2 if max is not None else 0)
        return _apply(OPS["clamp"], (self._f(),), (flags,), (lo, hi))

    clip = clamp

    def relu(self):
        return _apply(OPS["relu"], (self,), (), ())

    def sigmoid(self):
        return _apply(OPS["sigmoid"], (self,), (), ())

    def tanh(self):
        return _apply(OPS["tanh"], (self,), (), ())

    def softmax(self, dim):
        return _apply(OPS["softmax"], (self,), (_norm_dim(dim, self.ndim),), ())

    def log_softmax(self, dim):
        return _apply(OPS["log_softmax"], (self,), (_norm_dim(dim, self.ndim),), ())

    def _f(self):
        return self if self._dtype_name == "float32" else self.float()

    # ---- comparisons ----------------------------------------------------------------------
    def __eq__(self, other):
        return _cmp(self, other, "eq")

    def __ne__(self, other):
        return _cmp(self, other, "ne")

    def __lt__(self, other):
        return _cmp(self, other, "lt")

    def __le__(self, other):
        return _cmp(self, other, "le")

    def __gt__(self, other):
        return _cmp(self, other, "gt")

    def __ge__(self, other):
        return _cmp(self, other, "ge")

    eq = __eq__
    ne = __ne__
    lt = __lt__
    le = __le__
    gt = __gt__
    ge = __ge__

    def __and__(self, other):
        a, b = _bool_operands(self, other, "bitwise_and")
        return _binary("mul", a, b).bool()

    def __or__(self, other):
        a, b = _bool_operands(self, other, "bitwise_or")
        return (a.float() + b.float()) > 0

    __rand__ = __and__
    __ror__ = __or__

    def __invert__(self):
        if self._dtype_name != "bool":
            raise TypeError("bitwise_not(): argument 'input' must be a bool tensor (bcml's ~ is logical not), "
                            "got %s" % self._dtype_name)
        return self == False  # noqa: E712

    def logical_not(self):
        return ~self.bool()

    # ---- reductions -----------------------------------------------------------------------
    def sum(self, dim=None, keepdim=False, dtype=None):
        keepdim = _values.flag(keepdim, "sum", "keepdim")
        t = self if dtype is None else self.to(_as_dtype(dtype))
        if dim is None:
            return _apply(OPS["sum"], (t,), (0, int(keepdim), 1), ())
        return _apply(OPS["sum"], (t,), (_norm_dim(dim, t.ndim), int(keepdim), 0), ())

    def mean(self, dim=None, keepdim=False):
        keepdim = _values.flag(keepdim, "mean", "keepdim")
        if self._dtype_name != "float32":
            raise TypeError("mean(): could not infer output dtype. Input dtype must be float, got %s (argument "
                            "'input')" % self._dtype_name)
        if dim is None:
            return _apply(OPS["mean"], (self,), (0, int(keepdim), 1), ())
        return _apply(OPS["mean"], (self,), (_norm_dim(dim, self.ndim), int(keepdim), 0), ())

    def max(self, dim=None, keepdim=False):
        if isinstance(dim, _core.TensorBase):
            raise TypeError("max(): argument 'dim' must be an int; max(other) (an elementwise maximum) is not "
                            "supported by bcml")
        keepdim = _values.flag(keepdim, "max", "keepdim")
        if dim is None:
            if self._numel == 0:
                raise ValueError("max(): argument 'input' is empty: the maximum of no elements is not defined "
                                 "(give dim to reduce one dimension)")
            return MaxResult(*_apply(OPS["max_dim"], (self.reshape(-1),), (0, 0), ())).values
        return MaxResult(*_apply(OPS["max_dim"], (self,), (_norm_dim(dim, self.ndim), int(keepdim)), ()))

    def _reversed(self):
        """An order-reversing exact map of self: -x for float32, -1 - x for int64 (a bijection
        of int64, no overflow) and bool (as int64)."""
        if self._dtype_name == "float32":
            return -self
        t = self if self._dtype_name == "int64" else self.long()
        return _add_scalar(t, -1, -1)

    def min(self, dim=None, keepdim=False):
        keepdim = _values.flag(keepdim, "min", "keepdim")
        if dim is None and self._numel == 0:
            raise ValueError("min(): argument 'input' is empty: the minimum of no elements is not defined "
                             "(give dim to reduce one dimension)")
        r = self._reversed()
        if dim is None:
            return r.max()._reversed().to(self.dtype)
        v, i = r.max(dim, keepdim)
        return MaxResult(v._reversed().to(self.dtype), i)

    def argmax(self, dim=None, keepdim=False):
        keepdim = _values.flag(keepdim, "argmax", "keepdim")
        if dim is None:
            return _apply(OPS["argmax"], (self,), (0, int(keepdim), 1), ())
        return _apply(OPS["argmax"], (self,), (_norm_dim(dim, self.ndim), int(keepdim), 0), ())

    def argmin(self, dim=None, keepdim=False):
        keepdim = _values.flag(keepdim, "argmin", "keepdim")
        return self._reversed().argmax(dim, keepdim)

    def nonzero(self, as_tuple=False):
        as_tuple = _values.flag(as_tuple, "nonzero", "as_tuple")
        arr = Tensor(self).numpy()
        if arr.ndim == 0:  # as PyTorch: a 0-d tensor has one (empty) index when it is nonzero
            n = int(bool(arr))
            if as_tuple:
                return (from_numpy(np.zeros(n, np.int64)),)
            return from_numpy(np.zeros((n, 0), np.int64))
        idx = np.nonzero(arr)
        if as_tuple:
            return tuple(from_numpy(np.ascontiguousarray(i, dtype=np.int64)) for i in idx)
        return from_numpy(np.ascontiguousarray(np.stack(idx, axis=1), dtype=np.int64))

    def all(self):
        return tensor(bool(np.all(Tensor(self).numpy())))

    def any(self):
        return tensor(bool(np.any(Tensor(self).numpy())))


def _matmul_arg(x, argname):
    """The other operand of @: a tensor, or a list/array made one; a number is a TypeError
    (as in PyTorch: use * to multiply by a number)."""
    if isinstance(x, _core.TensorBase):
        return x
    if isinstance(x, (list, tuple, np.ndarray)):
        return _convert(x, "matmul", argname)
    raise TypeError("matmul(): argument '%s' must be a tensor, not %s%s"
                    % (argname, type(x).__name__, " (use * to multiply by a number)" if _scalar(x) else ""))


def _bool_operands(t, other, fname):
    """The operands of & and |: bool tensors (masks), or a bool / list / array of bools."""
    if t._dtype_name != "bool":
        raise TypeError("%s(): argument 'input' must be a bool tensor (bcml's & and | combine masks), got %s"
                        % (fname, t._dtype_name))
    o = as_tensor_arg(other, "other", fname=fname)
    if o._dtype_name != "bool":
        raise TypeError("%s(): argument 'other' must be a bool tensor or bool (bcml's & and | combine masks), "
                        "got %s" % (fname, o._dtype_name))
    return t, o


def _tensor_arg(x, fname, argname):
    if not isinstance(x, _core.TensorBase):
        raise TypeError("%s(): argument '%s' must be a bcml tensor, not %s" % (fname, argname, type(x).__name__))
    return x


def _alpha(t, other, alpha, fname):
    """The alpha of add/sub: a number, not a bool; within float32's range for a float32 tensor."""
    if isinstance(alpha, _core.TensorBase) or not _scalar(alpha) or _values._is_bool(alpha):
        raise TypeError("%s(): argument 'alpha' must be a number, not %s" % (fname, type(alpha).__name__))
    v = _values.scalar(alpha, fname, "alpha", float_target=t._dtype_name == "float32")
    if isinstance(v, float):
        _values.float32(v, fname, "alpha")
    return v


def _no_bool_sub(t, other, fname):
    """PyTorch refuses subtraction with a bool operand; so does bcml."""
    if t._dtype_name == "bool":
        raise TypeError("%s(): argument 'input': subtraction, the `-` operator, with a bool tensor is not "
                        "supported; use ~ or logical_xor() instead" % fname)
    if (isinstance(other, _core.TensorBase) and other._dtype_name == "bool") or _values._is_bool(other) or \
            (isinstance(other, np.ndarray) and other.dtype == np.bool_):
        raise TypeError("%s(): argument 'other': subtraction, the `-` operator, with a bool tensor is not "
                        "supported; use ~ or logical_xor() instead" % fname)
    return other


def _clamp_bound(v, argname):
    """A clamp bound as float: a number or a one-element tensor, within float32's range
    (PyTorch's rule: a finite value beyond it is refused; inf and NaN pass)."""
    if isinstance(v, _core.TensorBase):
        if v._numel != 1:
            raise TypeError("clamp(): argument '%s' must be a number or a one-element tensor, got a tensor "
                            "of shape %s" % (argname, tuple(v.shape)))
        v = v.item()
    if not _scalar(v):
        raise TypeError("clamp(): argument '%s' must be a number, not %s" % (argname, type(v).__name__))
    return _values.float32(v, "clamp", argname)


def _fill_value(v, dtname, fname, argname):
    """A constant for a tensor of dtype dtname: a number or a one-element tensor, checked as
    PyTorch checks it (int64: any int64, or a finite float in range, truncated; float32: within
    float32's range or inf/NaN; bool: anything)."""
    if isinstance(v, _core.TensorBase):
        if v._numel != 1:
            raise ValueError("%s(): argument '%s' must be a number or a one-element tensor, got a tensor of "
                             "shape %s" % (fname, argname, tuple(v.shape)))
        v = v.item()
    _values.number(v, fname, argname)
    if dtname == "int64":
        if isinstance(v, numbers.Integral):
            return _values.int64(v, fname, argname)
        f = _values.to_float(v, fname, argname)
        if not -2.0 ** 63 <= f < 2.0 ** 63:  # NaN and inf too
            raise ValueError("%s(): argument '%s': value cannot be converted to type int64 without overflow "
                             "(got %r)" % (fname, argname, f))
        return f
    if dtname == "float32":
        return _values.float32(v, fname, argname)
    return bool(v)


class Size(tuple):
    """The shape of a tensor (a tuple of ints, as torch.Size)."""

    def __new__(cls, iterable=()):
        if isinstance(iterable, (str, bytes)) or not isinstance(iterable, collections.abc.Iterable) \
                or (isinstance(iterable, np.ndarray) and iterable.ndim == 0) \
                or (isinstance(iterable, _core.TensorBase) and iterable.ndim == 0):
            raise TypeError("Size(): argument 'iterable' must be a sequence of ints, not %s" % type(iterable).__name__)
        items = tuple(iterable)
        for v in items:
            if isinstance(v, bool) or not isinstance(v, (numbers.Integral, np.integer)):
                raise TypeError("Size(): argument 'iterable' must hold ints, got %s" % type(v).__name__)
        return super().__new__(cls, (int(v) for v in items))

    def numel(self):
        n = 1
        for s in self:
            n *= s
        return n

    def __repr__(self):
        return "bcml.Size([%s])" % ", ".join(str(s) for s in self)


_core._set_tensor_class(Tensor)


def _rebuild(arr, requires_grad):
    t = from_numpy(arr)
    t.requires_grad = requires_grad
    return t


class no_grad_if:
    def __init__(self, flag):
        self.flag = flag

    def __enter__(self):
        self.prev = _core.set_grad_enabled(False) if self.flag else None

    def __exit__(self, *exc):
        if self.flag:
            _core.set_grad_enabled(self.prev)


# ---- indexing ------------------------------------------------------------------------------
def _index_dim(t, dim, key):
    """Applies one index (int, slice, index tensor/list/array, bool mask) along dim."""
    n = t.shape[dim]
    if isinstance(key, (numbers.Integral, np.integer)) and not isinstance(key, bool):
        k = int(key)
        if not -n <= k < n:
            raise IndexError("index %d is out of bounds for dimension %d with size %d" % (k, dim, n))
        k %= n
        out = _apply(OPS["slice"], (t,), (dim, k, k + 1, 1), ())
        return out.view(t.shape[:dim] + t.shape[dim + 1:]), False
    if isinstance(key, slice):
        start, stop, step = key.indices(n)
        if step <= 0:
            raise ValueError("step must be greater than zero")
        step = min(step, max(n, 1))  # same elements (at most one), and fits in int64
        if start == 0 and stop == n and step == 1:
            return t, True
        return _apply(OPS["slice"], (t,), (dim, start, max(stop, start), step), ()), True
    if isinstance(key, (list, np.ndarray, _core.TensorBase)):
        if not isinstance(key, _core.TensorBase):
            try:
                arr = np.asarray(key)
            except (ValueError, TypeError) as e:
                raise ValueError("__getitem__(): the index is not a regular array: %s" % e) from None
            if isinstance(key, list) and arr.size == 0:
                arr = arr.astype(np.int64)  # x[[]] selects nothing, as in PyTorch
            if arr.dtype == object or arr.dtype.kind not in "iub":
                raise TypeError("indices must be ints, slices, bool masks or integer index arrays")
            key = _convert(arr, "__getitem__", "index")
        if key._dtype_name == "bool":
            if key.ndim != 1 or key.shape[0] != n:
                if dim == 0 and key.shape == t.shape[:key.ndim]:
                    flat = t.reshape((-1,) + t.shape[key.ndim:])
                    return _apply(OPS["mask_select"], (flat, key.reshape(-1)), (), ()), True
                raise IndexError("boolean index of shape %s does not match dimension %d of size %d"
                                 % (key.shape, dim, n))
            if dim != 0:
                key = key.nonzero().reshape(-1)
            else:
                return _apply(OPS["mask_select"], (t, key), (), ()), True
        if key._dtype_name != "int64":
            raise TypeError("tensors used as indices must be long, int or bool tensors")
        if key.ndim != 1:
            flat = key.reshape(-1)
            out = _apply(OPS["index_select"], (t, flat), (dim,), ())
            return out.view(t.shape[:dim] + key.shape + t.shape[dim + 1:]), True
        return _apply(OPS["index_select"], (t, key), (dim,), ()), True
    raise TypeError("indices must be ints, slices, bool masks or integer index arrays, got %s"
                    % type(key).__name__)


def _setitem_key(k):
    """One index of x[key] = value, checked as reading x[key] checks it, in NumPy's form."""
    if isinstance(k, list):
        try:
            k = np.asarray(k) if k else np.zeros(0, np.int64)
        except (ValueError, TypeError) as e:
            raise ValueError("__setitem__(): the index is not a regular array: %s" % e) from None
    if k is None or k is Ellipsis:
        return k
    if isinstance(k, (numbers.Integral, np.integer)) and not isinstance(k, bool):
        if not _values.INT64_MIN <= int(k) <= _values.INT64_MAX:
            raise IndexError("index %d is out of bounds (beyond int64)" % int(k))
        return int(k)
    if isinstance(k, slice):
        for part in (k.start, k.stop, k.step):
            if part is not None and (not isinstance(part, (numbers.Integral, np.integer)) or isinstance(part, bool)):
                raise TypeError("indices: slice indices must be integers or None, got %s" % type(part).__name__)
        if k.step is not None and k.step <= 0:
            raise ValueError("index: step must be greater than zero")
        return k
    if isinstance(k, (list, np.ndarray, _core.TensorBase)):
        if not isinstance(k, _core.TensorBase):
            arr = np.asarray(k) if not isinstance(k, list) or len(k) else np.zeros(0, np.int64)
            if arr.dtype == object or arr.dtype.kind not in "iub":
                raise TypeError("indices must be ints, slices, bool masks or integer index arrays, got an array "
                                "of dtype %s" % arr.dtype)
            k = _convert(arr, "__setitem__", "index")
        if k._dtype_name == "float32":
            raise TypeError("indices: tensors used as indices must be long, int or bool tensors")
        return Tensor(k).numpy()
    raise TypeError("indices must be ints, slices, bool masks or integer index arrays, got %s" % type(k).__name__)


def index(t, key):
    if not isinstance(key, tuple):
        key = (key,)
    if any(k is Ellipsis for k in key):
        i = key.index(Ellipsis)
        fill = t.ndim - (len(key) - 1 - sum(k is None for k in key))
        key = key[:i] + (slice(None),) * fill + key[i + 1:]
    out = t
    dim = 0
    for k in key:
        if k is None:
            out = out.unsqueeze(dim)
            dim += 1
            continue
        if dim >= out.ndim:
            raise IndexError("too many indices for tensor of dimension %d" % t.ndim)
        out, kept = _index_dim(out, dim, k)
        if kept:
            dim += 1
    return out


# ---- creation ------------------------------------------------------------------------------
def from_numpy(arr):
    """A tensor sharing memory with arr when arr is C-contiguous float32/int64/bool; other
    dtypes (float64, int32, ...) and layouts are converted once (no sharing)."""
    return _core.from_numpy(arr)


def tensor(data, dtype=None, device=None, requires_grad=False):
    """A new tensor holding a copy of data (lists, numbers, arrays, tensors)."""
    check_device(device)
    requires_grad = _values.flag(requires_grad, "tensor", "requires_grad")
    t = _convert(data, "tensor", "data", dtype)
    if requires_grad:
        t.requires_grad = True
    return t


_ITEMSIZE = {"float32": 4, "int64": 8, "bool": 1}


def _convert(data, fname, argname, dtype=None):
    """data (a tensor, number, nested list or array) as a new tensor: floats become float32,
    integers int64 (each must fit), bools bool; strings, objects, complex numbers, dates,
    ragged lists, more than 4 dimensions and sizes beyond memory are refused, the message
    naming fname's argument argname."""
    where = _values._where(fname, argname)
    if isinstance(data, _core.TensorBase):
        arr = Tensor(data).numpy()
    else:
        if isinstance(data, (str, bytes)):
            raise TypeError("%s must be numbers, lists or arrays, not %s" % (where, type(data).__name__))
        try:
            arr = np.asarray(data)
        except (ValueError, TypeError) as e:
            raise ValueError("%s is not a regular array of numbers: %s" % (where, e)) from None
        if not isinstance(data, np.ndarray):
            _check_python_ints(data, arr, where)
        if arr.dtype == object or arr.dtype.kind in "USVOMmc":
            raise TypeError("%s: data of dtype %s cannot become a tensor%s"
                            % (where, arr.dtype, " (bcml has no complex dtype)" if arr.dtype.kind == "c" else ""))
    target = (_as_dtype(dtype).name if dtype is not None else
              "float32" if arr.dtype.kind == "f" else "bool" if arr.dtype.kind == "b" else "int64")
    _values.check_size(arr.shape, _ITEMSIZE[target], fname, argname, target)
    if target == "int64":
        _check_int64_range(arr, where)
    if arr.dtype.kind == "f" and target == "float32":
        with np.errstate(over="ignore"):  # beyond float32: inf, as torch.tensor gives
            arr = arr.astype(np.float32)
    else:
        arr = arr.astype(_NP[target])
    return _core.from_numpy(np.array(arr, copy=True, order="C"))


def _overflow(what, where="tensor(): argument 'data'"):
    return ValueError("%s: value cannot be converted to type int64 without overflow (got %s)" % (where, what))


def _flat_items(data):
    """The leaves of nested lists/tuples (numbers, arrays, ...)."""
    stack = [data]
    while stack:
        x = stack.pop()
        if isinstance(x, (list, tuple)):
            stack.extend(x)
        else:
            yield x


def _check_python_ints(data, arr, where):
    """Python ints beyond int64 in data: NumPy turns them into uint64, float64 or object arrays
    (silently rounding [2**63, -1] to floats); PyTorch refuses them, so does bcml."""
    kind = arr.dtype.kind
    if kind in "Ou" or (kind == "f" and arr.size and (np.abs(arr) >= 2.0 ** 63).any()):  # NaN: no scan
        for x in _flat_items(data):
            if isinstance(x, numbers.Integral) and not _values.INT64_MIN <= int(x) <= _values.INT64_MAX:
                raise _overflow(int(x), where)


def _check_int64_range(arr, where="tensor(): argument 'data'"):
    """Values of arr that an int64 cannot hold (uint64 above 2**63 - 1; NaN, inf and floats
    beyond int64): ValueError, as PyTorch, instead of INT64_MIN."""
    if not arr.size:
        return
    if arr.dtype.kind == "u" and arr.dtype.itemsize >= 8 and arr.max() > _values.INT64_MAX:
        raise _overflow(int(arr.max()), where)
    if arr.dtype.kind == "f":
        ok = (arr >= -2.0 ** 63) & (arr < 2.0 ** 63)  # False for NaN
        if not ok.all():
            raise _overflow(arr[~ok].flat[0], where)


def _size_args(size, argname="size"):
    if len(size) == 1 and isinstance(size[0], (tuple, list, Size)):
        size = tuple(size[0])
    for s in size:
        if not isinstance(s, (numbers.Integral, np.integer)) or isinstance(s, bool):
            raise TypeError("%s must be a tuple of ints, got %r" % (argname, size))
        if s < 0:
            raise ValueError("%s: negative dimension %d" % (argname, s))
    return tuple(int(s) for s in size)


def _requires_grad(t, requires_grad, fname):
    if _values.flag(requires_grad, fname, "requires_grad"):
        t.requires_grad = True
    return t


def _dtype_arg(dtype, fname, default=None):
    return _as_dtype(dtype, "%s(): argument 'dtype'" % fname) if dtype is not None else default


def empty(*size, dtype=None, requires_grad=False, device=None):
    check_device(device)
    dt = _dtype_arg(dtype, "empty", float32)
    return _requires_grad(_core.empty(_size_args(size), dt.name, False), requires_grad, "empty")


def zeros(*size, dtype=None, requires_grad=False, device=None):
    check_device(device)
    dt = _dtype_arg(dtype, "zeros", float32)
    return _requires_grad(_core.empty(_size_args(size), dt.name, True), requires_grad, "zeros")


def full(size, fill_value, dtype=None, requires_grad=False, device=None):
    if isinstance(fill_value, _core.TensorBase) and fill_value._numel == 1:
        fill_value = fill_value.item()
    if not isinstance(fill_value, _core.TensorBase):
        _values.number(fill_value, "full", "fill_value")
    dt = _dtype_arg(dtype, "full") or (bool_ if _values._is_bool(fill_value) else
                                       int64 if isinstance(fill_value, numbers.Integral) else float32)
    value = _fill_value(fill_value, dt.name, "full", "fill_value")
    if isinstance(size, numbers.Integral) and not isinstance(size, bool):
        size = (size,)
    elif not isinstance(size, (tuple, list, Size)):
        raise TypeError("full(): argument 'size' must be a tuple of ints, not %s" % type(size).__name__)
    t = empty(*_size_args(tuple(size)), dtype=dt, device=device)
    _core.fill_(t, 2, value, 0.0)
    return _requires_grad(t, requires_grad, "full")


def ones(*size, dtype=None, requires_grad=False, device=None):
    check_device(device)
    dt = _dtype_arg(dtype, "ones", float32)
    t = _core.empty(_size_args(size), dt.name, False)
    _core.fill_(t, 2, _fill_value(1, dt.name, "ones", "value"), 0.0)
    return _requires_grad(t, requires_grad, "ones")


def _like(t, fname):
    if not isinstance(t, _core.TensorBase):
        raise TypeError("%s(): argument 'input' must be a bcml tensor, not %s" % (fname, type(t).__name__))
    return t


def zeros_like(input, dtype=None, requires_grad=False):
    t = _like(input, "zeros_like")
    return zeros(t.shape, dtype=_dtype_arg(dtype, "zeros_like", t.dtype), requires_grad=requires_grad)


def ones_like(input, dtype=None, requires_grad=False):
    t = _like(input, "ones_like")
    return ones(t.shape, dtype=_dtype_arg(dtype, "ones_like", t.dtype), requires_grad=requires_grad)


def empty_like(input, dtype=None):
    t = _like(input, "empty_like")
    return empty(t.shape, dtype=_dtype_arg(dtype, "empty_like", t.dtype))


def _arange_arg(v, name):
    if isinstance(v, _core.TensorBase) and v._numel == 1 and v.ndim == 0:
        v = v.item()
    if _values._is_bool(v) or not isinstance(v, numbers.Real):
        raise TypeError("arange(): argument '%s' must be a real number, not %s" % (name, type(v).__name__))
    if isinstance(v, numbers.Integral):
        return _values.int64(v, "arange", name)
    f = _values.float32(v, "arange", name)
    if not math.isfinite(f):
        raise ValueError("arange(): argument '%s' must be finite, got %r" % (name, f))
    return f


def arange(start, end=None, step=1, dtype=None, device=None, requires_grad=False):
    check_device(device)
    if end is None:
        start, end = 0, start
    start, end, step = _arange_arg(start, "start"), _arange_arg(end, "end"), _arange_arg(step, "step")
    if step == 0:
        raise ValueError("arange(): argument 'step' must be nonzero")
    isfloat = any(isinstance(v, float) for v in (start, end, step))
    dt = _dtype_arg(dtype, "arange", float32 if isfloat else int64)
    n = max(0, math.ceil((end - start) / step)) if isfloat else max(0, -((start - end) // step))
    _values.check_size((n,), _ITEMSIZE[dt.name], "arange", "end", dt.name)
    arr = np.arange(start, end, step, dtype=np.float64 if isfloat else np.int64).astype(_NP[dt.name])
    t = _core.from_numpy(np.ascontiguousarray(arr))
    return _requires_grad(t, requires_grad, "arange")


def _tensor_list(tensors, fname):
    if isinstance(tensors, _core.TensorBase) or isinstance(tensors, (str, bytes, np.ndarray)) \
            or not isinstance(tensors, collections.abc.Iterable):
        raise TypeError("%s(): argument 'tensors' must be a sequence of tensors, not %s"
                        % (fname, type(tensors).__name__))
    tensors = list(tensors)
    if not tensors:
        raise ValueError("%s(): argument 'tensors' must be a non-empty sequence" % fname)
    for i, x in enumerate(tensors):
        if not isinstance(x, _core.TensorBase):
            raise TypeError("%s(): argument 'tensors': expected a tensor as element %d, got %s"
                            % (fname, i, type(x).__name__))
    return tensors


def cat(tensors, dim=0):
    tensors = _tensor_list(tensors, "cat")
    d = _norm_dim(dim, tensors[0].ndim)
    if len(tensors) == 1:
        return _apply(OPS["cat"], (tensors[0],), (d,), ())
    # the C op takes up to 6 inputs; longer lists are concatenated in chunks
    while len(tensors) > 1:
        chunk, tensors = tensors[:6], tensors[6:]
        tensors.insert(0, _apply(OPS["cat"], tuple(chunk), (d,), ()))
    return tensors[0]


def stack(tensors, dim=0):
    tensors = _tensor_list(tensors, "stack")
    d = _norm_dim(dim, tensors[0].ndim + 1)
    return cat([t.unsqueeze(d) for t in tensors], dim=d)
