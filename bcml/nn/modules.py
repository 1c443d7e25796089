"""Module and the layers of bcml.nn, with PyTorch's names, defaults and state-dict keys."""
import collections
import collections.abc
import math
import numbers
import weakref

from .. import _core, _hooks, _values
from .._autograd import no_grad
from .._tensor import Tensor, empty, ones, zeros
from . import functional as F
from . import init
from .parameter import Parameter


_live = weakref.WeakValueDictionary()  # id -> every Module alive (record and replay check them, bcml/_engine.py)


def live_modules():
    """Every Module alive now (those made by copy.deepcopy and pickle included). valuerefs()
    copies the references in one step, so a Module made by another thread meanwhile cannot
    break the iteration."""
    return [m for m in (r() for r in _live.valuerefs()) if m is not None]


class Module:
    """Base class of layers and models (as torch.nn.Module)."""

    def __new__(cls, *args, **kwargs):
        self = super().__new__(cls)
        _live[id(self)] = self
        return self

    def __init__(self):
        object.__setattr__(self, "_parameters", collections.OrderedDict())
        object.__setattr__(self, "_buffers", collections.OrderedDict())
        object.__setattr__(self, "_modules", collections.OrderedDict())
        object.__setattr__(self, "training", True)
        for name in ("_forward_pre_hooks", "_forward_hooks", "_backward_hooks"):
            object.__setattr__(self, name, collections.OrderedDict())

    # ---- attribute registration ----------------------------------------------------------
    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError("cannot assign attributes before Module.__init__() call")
        for d in (self._parameters, self._buffers, self._modules):
            d.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        else:
            object.__setattr__(self, name, value)
            return
        self.__dict__.pop(name, None)

    def __getattr__(self, name):
        d = self.__dict__
        for key in ("_parameters", "_buffers", "_modules"):
            if key in d and name in d[key]:
                return d[key][name]
        raise AttributeError("'%s' object has no attribute '%s'" % (type(self).__name__, name))

    def __delattr__(self, name):
        for d in (self._parameters, self._buffers, self._modules):
            if name in d:
                del d[name]
                return
        object.__delattr__(self, name)

    def register_parameter(self, name, param):
        _check_name(name, "register_parameter")
        if param is not None and not isinstance(param, Parameter):
            raise TypeError("register_parameter(): argument 'param' must be a Parameter or None, not %s"
                            % type(param).__name__)
        self._parameters[name] = param

    def register_buffer(self, name, tensor, persistent=True):
        _check_name(name, "register_buffer")
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError("register_buffer(): argument 'tensor' must be a bcml tensor or None, not %s"
                            % type(tensor).__name__)
        persistent = _values.flag(persistent, "register_buffer", "persistent")
        self._buffers[name] = tensor
        if not persistent:
            self.__dict__.setdefault("_non_persistent", set()).add(name)

    def add_module(self, name, module):
        _check_name(name, "add_module")
        if module is not None and not isinstance(module, Module):
            raise TypeError("add_module(): argument 'module' must be a Module or None, not %s" % type(module).__name__)
        self._modules[name] = module

    # ---- traversal -----------------------------------------------------------------------
    def named_modules(self, memo=None, prefix=""):
        if memo is not None and not isinstance(memo, set):
            raise TypeError("named_modules(): argument 'memo' must be a set or None, not %s" % type(memo).__name__)
        _check_prefix(prefix, "named_modules")
        memo = set() if memo is None else memo
        if id(self) in memo:
            return
        memo.add(id(self))
        yield prefix, self
        for name, m in self._modules.items():
            if m is None:
                continue
            yield from m.named_modules(memo, prefix + ("." if prefix else "") + name)

    def modules(self):
        for _, m in self.named_modules():
            yield m

    def named_children(self):
        for name, m in self._modules.items():
            if m is not None:
                yield name, m

    def children(self):
        for _, m in self.named_children():
            yield m

    def named_parameters(self, prefix="", recurse=True):
        _check_prefix(prefix, "named_parameters")
        recurse = _values.flag(recurse, "named_parameters", "recurse")
        seen = set()
        mods = self.named_modules(prefix=prefix) if recurse else [(prefix, self)]
        for mp, m in mods:
            for name, p in m._parameters.items():
                if p is None or id(p) in seen:
                    continue
                seen.add(id(p))
                yield mp + ("." if mp else "") + name, p

    def parameters(self, recurse=True):
        recurse = _values.flag(recurse, "parameters", "recurse")
        return (p for _, p in self.named_parameters(recurse=recurse))

    def named_buffers(self, prefix="", recurse=True):
        _check_prefix(prefix, "named_buffers")
        recurse = _values.flag(recurse, "named_buffers", "recurse")
        return self._named_buffers(prefix, recurse)

    def _named_buffers(self, prefix, recurse):
        mods = self.named_modules(prefix=prefix) if recurse else [(prefix, self)]
        for mp, m in mods:
            for name, b in m._buffers.items():
                if b is not None:
                    yield mp + ("." if mp else "") + name, b

    def buffers(self, recurse=True):
        recurse = _values.flag(recurse, "buffers", "recurse")
        return (b for _, b in self.named_buffers(recurse=recurse))

    # ---- modes and grads -----------------------------------------------------------------
    def train(self, mode=True):
        if not isinstance(mode, bool):  # PyTorch's ValueError; bcml's rule: a wrong type
            raise TypeError("train(): argument 'mode' is expected to be boolean, not %s" % type(mode).__name__)
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self):
        return self.train(False)

    def requires_grad_(self, requires_grad=True):
        requires_grad = _values.flag(requires_grad, "requires_grad_", "requires_grad")
        for p in self.parameters():
            p.requires_grad = requires_grad
        return self

    def zero_grad(self, set_to_none=True):
        set_to_none = _values.flag(set_to_none, "zero_grad", "set_to_none")
        for p in self.parameters():
            p._zero_grad(set_to_none)   # a step of its own inside bcml.compile

    def to(self, *args, **kwargs):
        from .._tensor import check_device
        for a in list(args) + list(kwargs.values()):
            if isinstance(a, str) or hasattr(a, "type"):
                check_device(a)
        return self

    def cpu(self):
        return self

    def cuda(self, *a, **k):
        raise ValueError("device: bcml runs on the CPU only; cuda() is not available")

    def float(self):
        return self

    def apply(self, fn):
        if not callable(fn):
            raise TypeError("apply(): argument 'fn' must be a function of a module, not %s" % type(fn).__name__)
        for m in self.children():
            m.apply(fn)
        try:
            fn(self)
        except (TypeError, ValueError, IndexError) as e:
            if type(e) not in (TypeError, ValueError, IndexError):
                raise
            raise type(e)("apply(): fn(module) raised %s: %s (argument 'fn')" % (type(e).__name__, e)) from e
        return self

    # ---- state dicts ---------------------------------------------------------------------
    def state_dict(self, destination=None, prefix="", keep_vars=False):
        if destination is not None and not isinstance(destination, collections.abc.MutableMapping):
            raise TypeError("state_dict(): argument 'destination' must be a dict or None, not %s"
                            % type(destination).__name__)
        _check_prefix(prefix, "state_dict")
        keep_vars = _values.flag(keep_vars, "state_dict", "keep_vars")
        out = collections.OrderedDict() if destination is None else destination
        for mp, m in self.named_modules():
            pre = prefix + (mp + "." if mp else "")  # as PyTorch: the prefix is put before each key as given
            for name, p in m._parameters.items():
                if p is not None:
                    out[pre + name] = p if keep_vars else p.detach()
            skip = m.__dict__.get("_non_persistent", ())
            for name, b in m._buffers.items():
                if b is not None and name not in skip:
                    out[pre + name] = b if keep_vars else b.detach()
        return out

    def load_state_dict(self, state_dict, strict=True):
        """Copies values into this module's parameters and buffers (same keys as PyTorch).
        Accepts bcml tensors, NumPy arrays and anything with .numpy() (PyTorch tensors)."""
        import numpy as np
        from .._tensor import from_numpy
        if not isinstance(state_dict, collections.abc.Mapping):  # PyTorch: "Expected state_dict to be dict-like"
            raise TypeError("load_state_dict(): argument 'state_dict' must be dict-like (names to tensors), got %s"
                            % type(state_dict).__name__)
        strict = _values.flag(strict, "load_state_dict", "strict")
        own = self.state_dict(keep_vars=True)
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if strict and (missing or unexpected):  # PyTorch's RuntimeError; bcml's rule: a wrong value
            raise ValueError("load_state_dict(): Error(s) in loading state_dict for %s: missing keys %s, unexpected "
                             "keys %s (argument 'state_dict')" % (type(self).__name__, missing, unexpected))
        with no_grad():
            for k, dst in own.items():
                if k not in state_dict:
                    continue
                src = state_dict[k]
                if not isinstance(src, Tensor):
                    if hasattr(src, "detach") and hasattr(src, "numpy"):
                        src = src.detach().cpu().numpy()
                    src = from_numpy(np.array(src, order="C"))
                if len(dst.shape) == 0 and tuple(src.shape) == (1,):
                    src = src.reshape(())  # as PyTorch: files written with shape [1] for 0-d still load
                if src.shape != dst.shape:
                    raise ValueError("load_state_dict: size mismatch for %s: copying a param with shape %s, "
                                     "the shape in current model is %s" % (k, src.shape, dst.shape))
                dst.copy_(src)
        return collections.namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])(missing, unexpected)

    # ---- calling ---------------------------------------------------------------------------
    def forward(self, *args, **kwargs):
        raise NotImplementedError("Module [%s] is missing the required \"forward\" function" % type(self).__name__)

    def __call__(self, *args, **kwargs):
        d = self.__dict__
        if d.get("_forward_pre_hooks") or d.get("_forward_hooks") or d.get("_backward_hooks"):
            return _hooks.call(self, args, kwargs)
        return self.forward(*args, **kwargs)

    # ---- hooks (as PyTorch's; see bcml/_hooks.py for the differences) -----------------------
    def register_forward_pre_hook(self, hook, *, prepend=False, with_kwargs=False):
        """hook(module, args) runs before forward; a return value other than None replaces args
        (a non-tuple is wrapped in a 1-tuple). Returns a handle with .remove()."""
        return _hooks.register_forward_pre_hook(self, hook, prepend, with_kwargs)

    def register_forward_hook(self, hook, *, prepend=False, with_kwargs=False, always_call=False):
        """hook(module, args, output) runs after forward; a return value other than None replaces
        the output. Returns a handle with .remove()."""
        return _hooks.register_forward_hook(self, hook, prepend, with_kwargs, always_call)

    def register_full_backward_hook(self, hook, prepend=False):
        """hook(module, grad_input, grad_output) runs when the gradients with respect to the
        module's inputs are computed (with respect to its outputs when no input requires grad);
        a tuple it returns replaces grad_input. Returns a handle with .remove()."""
        return _hooks.register_full_backward_hook(self, hook, prepend)

    def register_backward_hook(self, hook):
        """Deprecated, as in PyTorch. bcml runs it as register_full_backward_hook (PyTorch gives
        it the inputs of the forward's last autograd node instead of the module's)."""
        return _hooks.register_backward_hook(self, hook)

    def extra_repr(self):
        return ""

    def __repr__(self):
        lines = []
        for name, m in self._modules.items():
            sub = repr(m).replace("\n", "\n  ")
            lines.append("(%s): %s" % (name, sub))
        head = type(self).__name__ + "(" + self.extra_repr()
        if not lines:
            return head + ")"
        return head + "\n  " + "\n  ".join(lines) + "\n)"

    def __dir__(self):
        return sorted(set(list(super().__dir__()) + list(self._parameters) + list(self._modules) + list(self._buffers)))


def _positive_int(v, name):
    if not isinstance(v, numbers.Integral) or isinstance(v, bool):
        raise TypeError("%s must be a non-negative int, not %s" % (name, type(v).__name__))
    if v < 0:
        raise ValueError("%s must be a non-negative int, got %r" % (name, v))
    if v > _values.INT64_MAX:
        raise ValueError("%s: value cannot be converted to type int64 without overflow (got %d)" % (name, v))
    return int(v)


def _fits(shape, fname, what):
    """A parameter of this shape must fit in memory (checked before it is allocated)."""
    n = 4
    for d in shape:
        n *= d
    if n > _values._memory():
        raise ValueError("%s(): %s give a parameter of shape %s that does not fit in memory" % (fname, what, shape))


def _check_name(name, fname):
    """The name of a parameter, buffer or submodule (PyTorch's rules)."""
    if not isinstance(name, str):
        raise TypeError("%s(): argument 'name' must be a str, not %s" % (fname, type(name).__name__))
    if not name or "." in name:
        raise ValueError("%s(): argument 'name' must be a non-empty str without '.', got %r" % (fname, name))


def _check_prefix(prefix, fname):
    if not isinstance(prefix, str):
        raise TypeError("%s(): argument 'prefix' must be a str, not %s" % (fname, type(prefix).__name__))


class Linear(Module):
    """y = x W^T + b, W of shape (out_features, in_features); PyTorch's initialisation
    (kaiming-uniform with a = sqrt(5), i.e. U(-1/sqrt(in), 1/sqrt(in)) for W and b)."""

    def __init__(self, in_features, out_features, bias=True, generator=None):
        super().__init__()
        self.in_features = _positive_int(in_features, "in_features")
        self.out_features = _positive_int(out_features, "out_features")
        bias = _values.flag(bias, "Linear", "bias")
        _fits((self.out_features, self.in_features), "Linear", "in_features and out_features")
        self.weight = Parameter(empty(self.out_features, self.in_features))
        self.bias = Parameter(empty(self.out_features)) if bias else None
        if not bias:
            self.register_parameter("bias", None)
        self.reset_parameters(generator)

    def reset_parameters(self, generator=None):
        init.kaiming_uniform_(self.weight, a=math.sqrt(5), generator=generator)
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_features) if self.in_features > 0 else 0
            init.uniform_(self.bias, -bound, bound, generator)

    def forward(self, input):
        return F.linear(input, self.weight, self.bias)

    def extra_repr(self):
        return "in_features=%d, out_features=%d, bias=%s" % (self.in_features, self.out_features, self.bias is not None)


class Conv2d(Module):
    """2-D convolution with PyTorch's arguments, initialisation (kaiming-uniform, a = sqrt(5))
    and state-dict keys (weight (OC, C/groups, KH, KW), bias (OC))."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, padding_mode="zeros", generator=None):
        super().__init__()
        if not isinstance(padding_mode, str):
            raise TypeError("Conv2d(): argument 'padding_mode' must be a str, not %s" % type(padding_mode).__name__)
        if padding_mode != "zeros":
            raise ValueError("Conv2d: only padding_mode='zeros' is supported")
        self.in_channels = _positive_int(in_channels, "in_channels")
        self.out_channels = _positive_int(out_channels, "out_channels")
        bias = _values.flag(bias, "Conv2d", "bias")
        groups = _values.index(groups, "Conv2d", "groups")
        if groups < 1:
            raise ValueError("groups must be a positive int, got %r" % (groups,))
        if self.in_channels % groups or self.out_channels % groups:
            raise ValueError("in_channels and out_channels must be divisible by groups")
        self.kernel_size = F._pair(kernel_size, "kernel_size", 1)
        self.stride = F._pair(stride, "stride", 1)
        if isinstance(padding, str) and padding not in ("valid", "same"):
            raise ValueError("padding must be an int, a pair, 'valid' or 'same', got %r" % padding)
        self.padding = padding if isinstance(padding, str) else F._pair(padding, "padding", 0)
        self.dilation = F._pair(dilation, "dilation", 1)
        self.groups = int(groups)
        _fits((self.out_channels, self.in_channels // self.groups) + self.kernel_size, "Conv2d",
              "in_channels, out_channels and kernel_size")
        self.weight = Parameter(empty(self.out_channels, self.in_channels // self.groups, *self.kernel_size))
        if bias:
            self.bias = Parameter(empty(self.out_channels))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters(generator)

    def reset_parameters(self, generator=None):
        init.kaiming_uniform_(self.weight, a=math.sqrt(5), generator=generator)
        if self.bias is not None:
            fan_in, _ = init.calculate_fan_in_and_fan_out(self.weight)
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
            init.uniform_(self.bias, -bound, bound, generator)

    def forward(self, input):
        return F.conv2d(input, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)

    def extra_repr(self):
        s = "%d, %d, kernel_size=%s, stride=%s" % (self.in_channels, self.out_channels, self.kernel_size, self.stride)
        if self.padding not in ((0, 0), "valid"):
            s += ", padding=%s" % (self.padding,)
        if self.bias is None:
            s += ", bias=False"
        return s


class MaxPool2d(Module):
    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False, ceil_mode=False):
        super().__init__()
        F._pool_args(kernel_size, stride, padding)  # checked now, as the layer's arguments
        d = F._pair(dilation, "dilation", 1)
        if d[0] != d[1]:
            raise ValueError("MaxPool2d: bcml supports the same dilation in both directions")
        if _values.flag(return_indices, "MaxPool2d", "return_indices"):
            raise ValueError("MaxPool2d: return_indices=True is not supported by bcml")
        ceil_mode = _values.flag(ceil_mode, "MaxPool2d", "ceil_mode")
        self.kernel_size, self.stride, self.padding = kernel_size, stride if stride is not None else kernel_size, padding
        self.dilation, self.return_indices, self.ceil_mode = dilation, return_indices, ceil_mode

    def forward(self, input):
        return F.max_pool2d(input, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode,
                            self.return_indices)

    def extra_repr(self):
        return "kernel_size=%s, stride=%s, padding=%s" % (self.kernel_size, self.stride, self.padding)


class AvgPool2d(Module):
    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                 divisor_override=None):
        super().__init__()
        F._pool_args(kernel_size, stride, padding)  # checked now, as the layer's arguments
        ceil_mode = _values.flag(ceil_mode, "AvgPool2d", "ceil_mode")
        count_include_pad = _values.flag(count_include_pad, "AvgPool2d", "count_include_pad")
        if divisor_override is not None:
            raise ValueError("AvgPool2d: divisor_override is not supported by bcml")
        self.kernel_size, self.stride, self.padding = kernel_size, stride if stride is not None else kernel_size, padding
        self.ceil_mode, self.count_include_pad, self.divisor_override = ceil_mode, count_include_pad, divisor_override

    def forward(self, input):
        return F.avg_pool2d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                            self.count_include_pad, self.divisor_override)

    def extra_repr(self):
        return "kernel_size=%s, stride=%s, padding=%s" % (self.kernel_size, self.stride, self.padding)


class AdaptiveAvgPool2d(Module):
    def __init__(self, output_size):
        super().__init__()
        F._output_size(output_size, None)  # checked now, as the layer's argument
        self.output_size = output_size

    def forward(self, input):
        return F.adaptive_avg_pool2d(input, self.output_size)

    def extra_repr(self):
        return "output_size=%s" % (self.output_size,)


class Dropout2d(Module):
    def __init__(self, p=0.5, inplace=False):
        super().__init__()
        self.p = F._check_p(p, "Dropout2d")
        _values.flag(inplace, "Dropout2d", "inplace")

    def forward(self, input):
        return F.dropout2d(input, self.p, self.training)

    def extra_repr(self):
        return "p=%s" % self.p


class Identity(Module):
    def forward(self, input):
        return input


class ReLU(Module):
    def __init__(self, inplace=False):
        super().__init__()
        _values.flag(inplace, "ReLU", "inplace")

    def forward(self, input):
        return F.relu(input)


class Sigmoid(Module):
    def forward(self, input):
        return F.sigmoid(input)


class Tanh(Module):
    def forward(self, input):
        return F.tanh(input)


def _dim_or_none(dim, fname):
    return dim if dim is None else _values.index(dim, fname, "dim")


class Softmax(Module):
    def __init__(self, dim=None):
        super().__init__()
        self.dim = _dim_or_none(dim, "Softmax")

    def forward(self, input):
        return F.softmax(input, self.dim)


class LogSoftmax(Module):
    def __init__(self, dim=None):
        super().__init__()
        self.dim = _dim_or_none(dim, "LogSoftmax")

    def forward(self, input):
        return F.log_softmax(input, self.dim)


class Dropout(Module):
    def __init__(self, p=0.5, inplace=False):
        super().__init__()
        self.p = F._check_p(p, "Dropout")
        _values.flag(inplace, "Dropout", "inplace")

    def forward(self, input):
        return F.dropout(input, self.p, self.training)

    def extra_repr(self):
        return "p=%s" % self.p


class Flatten(Module):
    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim = _values.index(start_dim, "Flatten", "start_dim")
        self.end_dim = _values.index(end_dim, "Flatten", "end_dim")

    def forward(self, input):
        return F._tensor(input, "input", "Flatten").flatten(self.start_dim, self.end_dim)


class _BatchNorm(Module):
    _ranks = ()

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True):
        super().__init__()
        self.num_features = _positive_int(num_features, "num_features")
        name = type(self).__name__
        _fits((self.num_features,), name, "num_features")
        self.eps = _values.setting(eps, name, "eps", low=0.0)
        self.momentum = momentum if momentum is None else _values.setting(momentum, name, "momentum")
        affine = _values.flag(affine, name, "affine")
        track_running_stats = _values.flag(track_running_stats, name, "track_running_stats")
        self.affine, self.track_running_stats = affine, track_running_stats
        if affine:
            self.weight = Parameter(ones(num_features))
            self.bias = Parameter(zeros(num_features))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", zeros(num_features))
            self.register_buffer("running_var", ones(num_features))
            self.register_buffer("num_batches_tracked", zeros((), dtype="int64"))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def forward(self, input):
        F._tensor(input, "input", type(self).__name__)
        if input.ndim not in self._ranks:
            raise ValueError("%s: expected %s input, got %dD input"
                             % (type(self).__name__, " or ".join("%dD" % r for r in self._ranks), input.ndim))
        if input.shape[1] != self.num_features:
            raise ValueError("%s: expected %d channels in dim 1, got input of shape %s"
                             % (type(self).__name__, self.num_features, tuple(input.shape)))
        use_batch = self.training or self.running_mean is None
        track = not self.training or self.track_running_stats
        return F.batch_norm(input, self.running_mean if track else None,
                            self.running_var if track else None,
                            self.weight, self.bias, use_batch, self.momentum, self.eps,
                            _num_batches_tracked=self.num_batches_tracked if self.training else None)

    def extra_repr(self):
        return "%d, eps=%s, momentum=%s, affine=%s, track_running_stats=%s" % (
            self.num_features, self.eps, self.momentum, self.affine, self.track_running_stats)


class BatchNorm1d(_BatchNorm):
    _ranks = (2, 3)


class BatchNorm2d(_BatchNorm):
    _ranks = (4,)


class Sequential(Module):
    def __init__(self, *args):
        super().__init__()
        if len(args) == 1 and isinstance(args[0], collections.OrderedDict):
            for k, m in args[0].items():
                self.add_module(k, m)
        else:
            for i, m in enumerate(args):
                if not isinstance(m, Module):
                    raise TypeError("Sequential(): argument 'args' %d is not a Module (%s)" % (i, type(m).__name__))
                self.add_module(str(i), m)

    def forward(self, input):
        for m in self._modules.values():
            input = m(input)
        return input

    def __getitem__(self, idx):
        mods = list(self._modules.values())
        if isinstance(idx, slice):
            return Sequential(*mods[idx])
        return mods[_module_index(idx, len(mods), "Sequential")]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def append(self, module):
        self.add_module(str(len(self)), module)
        return self


def _module_index(i, n, fname):
    if type(i) is int and -n <= i < n:
        return i % n
    i = _values.index(i, fname + ".__getitem__", "idx")
    if not -n <= i < n:
        raise IndexError("%s: index %d (argument 'idx') is out of range for %d modules" % (fname, i, n))
    return i % n


class ModuleList(Module):
    def __init__(self, modules=None):
        super().__init__()
        if modules is not None and (isinstance(modules, (str, bytes, Module, dict, Tensor)) or
                                    hasattr(modules, "__array__") or
                                    not isinstance(modules, collections.abc.Iterable)):
            raise TypeError("ModuleList(): argument 'modules' must be an iterable of Modules, not %s"
                            % type(modules).__name__)
        for i, m in enumerate(modules or []):
            if not isinstance(m, Module):
                raise TypeError("ModuleList(): argument 'modules': element %d is not a Module (%s)"
                                % (i, type(m).__name__))
            self.append(m)

    def append(self, module):
        self.add_module(str(len(self._modules)), module)
        return self

    def __getitem__(self, idx):
        mods = list(self._modules.values())
        if isinstance(idx, slice):
            return ModuleList(mods[idx])
        return mods[_module_index(idx, len(mods), "ModuleList")]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())


class _Loss(Module):
    _reductions = ("none", "mean", "sum")

    def __init__(self, reduction="mean"):
        super().__init__()
        F._reduction(reduction, self._reductions)  # checked now, as the layer's argument
        self.reduction = reduction


def _weight(weight, fname):
    if weight is not None and not isinstance(weight, Tensor):
        raise TypeError("%s(): argument 'weight' must be a bcml tensor or None, not %s" % (fname, type(weight).__name__))
    return weight


class _WeightedLoss(_Loss):
    def __init__(self, weight=None, ignore_index=-100, reduction="mean"):
        super().__init__(reduction)
        self.register_buffer("weight", _weight(weight, type(self).__name__))  # a buffer, as in PyTorch
        self.ignore_index = _values.index(ignore_index, type(self).__name__, "ignore_index")


class NLLLoss(_WeightedLoss):
    def forward(self, input, target):
        return F.nll_loss(input, target, self.weight, self.ignore_index, self.reduction)


class CrossEntropyLoss(_WeightedLoss):
    def forward(self, input, target):
        return F.cross_entropy(input, target, self.weight, self.ignore_index, self.reduction)


class BCELoss(_Loss):
    def __init__(self, weight=None, reduction="mean"):
        super().__init__(reduction)
        self.register_buffer("weight", _weight(weight, "BCELoss"))  # a buffer, as in PyTorch

    def forward(self, input, target):
        return F.binary_cross_entropy(input, target, self.weight, self.reduction)


class KLDivLoss(_Loss):
    _reductions = ("none", "mean", "sum", "batchmean")

    def __init__(self, reduction="mean", log_target=False):
        super().__init__(reduction)
        self.log_target = _values.flag(log_target, "KLDivLoss", "log_target")

    def forward(self, input, target):
        return F.kl_div(input, target, reduction=self.reduction, log_target=self.log_target)


class MSELoss(_Loss):
    def forward(self, input, target):
        return F.mse_loss(input, target, reduction=self.reduction)
