"""bcml: backward-compatible updates of machine-learning classifiers, on a fast C core.

PyTorch-familiar tensors, autograd, layers and optimizers (bcml.nn, bcml.optim), compatibility
scores (bcml.scores), data loading (bcml.data, bcml.datasets) and example models (bcml.models).
"""
from ._build_info import BLAS as _BLAS

if _BLAS == "scipy":
    # bcml._core links scipy-openblas32's library; load it first (globally) so the dynamic
    # linker finds it wherever pip put it.
    import ctypes as _ctypes
    import os as _os

    import scipy_openblas32 as _sob

    _lib = [f for f in _os.listdir(_sob.get_lib_dir()) if f.startswith("lib" + _sob.get_library()) and ".so" in f]
    if _lib:
        _ctypes.CDLL(_os.path.join(_sob.get_lib_dir(), _lib[0]), _ctypes.RTLD_GLOBAL)

import builtins as _builtins  # noqa: E402

from . import _core  # noqa: E402
from ._autograd import enable_grad, is_grad_enabled, no_grad, set_grad_enabled  # noqa: E402
from ._random import (Generator, default_generator, get_rng_state, initial_seed,  # noqa: E402
                      manual_seed, seed, set_rng_state)
from ._tensor import (Size, Tensor, arange, cat, device, dtype, empty, empty_like,  # noqa: E402
                      float32, from_numpy, full, int64, ones, ones_like, stack, tensor, zeros,
                      zeros_like)
from ._tensor import bool_  # noqa: E402
from .serialization import load, save  # noqa: E402
from ._torch_checkpoint import load_torch_checkpoint  # noqa: E402

globals()["bool"] = bool_
float = float32  # noqa: A001  (torch.float)
long = int64  # noqa: A001  (torch.long)

__version__ = "0.1.0"


def _random_tensor(fname, size, generator, dtype, requires_grad, device):
    from ._random import gen
    from ._values import flag
    g = gen(generator)
    grad = flag(requires_grad, fname, "requires_grad")
    t = empty(*size, dtype=dtype, device=device)
    if t.dtype is not float32:
        raise TypeError("%s(): argument 'dtype' must be a floating point dtype (bcml.float32), got %s"
                        % (fname, t.dtype))
    if fname == "rand":
        t.uniform_(0.0, 1.0, generator=g)
    else:
        t.normal_(0.0, 1.0, generator=g)
    if grad:
        t.requires_grad = True
    return t


def rand(*size, generator=None, dtype=None, requires_grad=False, device=None):
    """Uniform [0, 1) float32 tensor from the default (or given) generator."""
    return _random_tensor("rand", size, generator, dtype, requires_grad, device)


def randn(*size, generator=None, dtype=None, requires_grad=False, device=None):
    """Standard normal float32 tensor from the default (or given) generator."""
    return _random_tensor("randn", size, generator, dtype, requires_grad, device)


def randperm(n, generator=None):
    from ._random import gen
    if not isinstance(n, int) or isinstance(n, _builtins.bool):
        raise TypeError("randperm(): argument 'n' must be an int, not %s" % type(n).__name__)
    if n < 0:
        raise ValueError("randperm: n must be a non-negative int, got %r" % (n,))
    if n > 2 ** 63 - 1:
        raise ValueError("randperm(): argument 'n': value cannot be converted to type int64 without overflow "
                         "(got %d)" % n)
    return _core.randperm(n, gen(generator))


def _input(x, fname, argname="input"):
    """The tensor argument of a bcml.<fname>(input, ...) function."""
    if not isinstance(x, Tensor):
        raise TypeError("%s(): argument '%s' must be a bcml tensor, not %s" % (fname, argname, type(x).__name__))
    return x


def argmax(input, dim=None, keepdim=False):
    return _input(input, "argmax").argmax(dim, keepdim)


def max(input, dim=None, keepdim=False):  # noqa: A001
    return _input(input, "max").max(dim, keepdim)


def sum(input, dim=None, keepdim=False):  # noqa: A001
    return _input(input, "sum").sum(dim, keepdim)


def mean(input, dim=None, keepdim=False):
    return _input(input, "mean").mean(dim, keepdim)


def exp(input):
    return _input(input, "exp").exp()


def log(input):
    return _input(input, "log").log()


def sigmoid(input):
    return _input(input, "sigmoid").sigmoid()


def tanh(input):
    return _input(input, "tanh").tanh()


def relu(input):
    return _input(input, "relu").relu()


def softmax(input, dim):
    return _input(input, "softmax").softmax(dim)


def log_softmax(input, dim):
    return _input(input, "log_softmax").log_softmax(dim)


def matmul(input, other):
    return _input(input, "matmul") @ other


def clamp(input, min=None, max=None):  # noqa: A002
    return _input(input, "clamp").clamp(min, max)


def eq(input, other):
    return _input(input, "eq") == other


def flatten(input, start_dim=0, end_dim=-1):
    return _input(input, "flatten").flatten(start_dim, end_dim)


def squeeze(input, dim=None):
    return _input(input, "squeeze").squeeze(dim)


def unsqueeze(input, dim):
    return _input(input, "unsqueeze").unsqueeze(dim)


def nonzero(input, as_tuple=False):
    return _input(input, "nonzero").nonzero(as_tuple)


def where(condition, input, other):
    """input where condition is True, other elsewhere (broadcast together); condition must be
    a bool tensor (or a list/array of bools), as in PyTorch."""
    from ._tensor import OPS, _apply, _scalar, as_tensor_arg
    if _scalar(condition):
        raise TypeError("where(): argument 'condition' must be a bool tensor, not %s" % type(condition).__name__)
    c = as_tensor_arg(condition, "condition", fname="where")
    if c._dtype_name != "bool":
        raise TypeError("where(): argument 'condition' must be a bool tensor, got %s" % c._dtype_name)
    x = as_tensor_arg(input, "input", like=other if isinstance(other, Tensor) else None, fname="where")
    y = as_tensor_arg(other, "other", like=x, fname="where")
    if x._dtype_name != y._dtype_name:
        x, y = x.float(), y.float()
    return _apply(OPS["where"], (c, x, y), (), ())


def is_tensor(obj):
    return isinstance(obj, Tensor)


def set_num_threads(n):
    """Threads bcml's kernels run their tasks on (the tasks are fixed by the shapes alone: the
    same results with any count). OpenBLAS itself is kept single-threaded so that the two never
    nest."""
    if not isinstance(n, int) or isinstance(n, _builtins.bool):
        raise TypeError("set_num_threads(): argument 'n' must be an int, not %s" % type(n).__name__)
    if n < 1:
        raise ValueError("set_num_threads(): argument 'n' must be a positive int, got %d" % n)
    if n > 2 ** 63 - 1:
        raise ValueError("set_num_threads(): argument 'n': value cannot be converted to type int64 without overflow "
                         "(got %d)" % n)
    _core.set_num_threads(n)


def get_num_threads():
    return _core.get_num_threads()


def _default_threads():
    import os
    for key in ("BCML_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        v = os.environ.get(key, "")
        if v.isdigit() and int(v) > 0:
            return int(v)
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


set_num_threads(_default_threads())


from . import nn, optim  # noqa: E402,F401
from . import models  # noqa: E402,F401
from . import scores  # noqa: E402,F401
from ._compare import compare, seed_baseline  # noqa: E402,F401  (issue 13: any model's predictions)
from . import loss  # noqa: E402,F401
from . import metrics, helpers  # noqa: E402,F401
from . import backends, cuda  # noqa: E402,F401  (PyTorch's queries and switches, for code written for it)
from . import utils  # noqa: E402,F401  (bcml.utils.data, as torch.utils.data)
from .plotting import plot_tradeoff  # noqa: E402,F401  (imports matplotlib only when called)
from ._compile import compile  # noqa: E402,F401  (bcml.compile(step_fn), where PyTorch code has torch.compile)
