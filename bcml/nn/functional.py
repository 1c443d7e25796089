"""bcml.nn.functional: PyTorch's functional API on bcml's C ops."""
import numbers
import warnings

from .. import _core
from .._random import gen as _gen
from .._tensor import OPS, REDUCTIONS, Tensor, _apply, _norm_dim, as_tensor_arg

__all__ = ["linear", "relu", "sigmoid", "tanh", "softmax", "log_softmax", "dropout",
           "batch_norm", "nll_loss", "cross_entropy", "binary_cross_entropy", "kl_div",
           "one_hot", "mse_loss", "conv2d", "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d",
           "dropout2d"]


def _tensor(x, argname):
    if not isinstance(x, _core.TensorBase):
        raise TypeError("%s must be a bcml tensor, got %s" % (argname, type(x).__name__))
    return x


def _reduction(reduction, allowed=("none", "mean", "sum")):
    if reduction not in allowed:
        raise ValueError("reduction must be one of %s, got %r" % (", ".join(map(repr, allowed)), reduction))
    return REDUCTIONS[reduction]


def linear(input, weight, bias=None):
    """input @ weight.T + bias."""
    _tensor(input, "input")
    _tensor(weight, "weight")
    if bias is None:
        return _apply(OPS["linear"], (input, weight), (), ())
    return _apply(OPS["linear"], (input, weight, _tensor(bias, "bias")), (), ())


def relu(input, inplace=False):
    return _apply(OPS["relu"], (_tensor(input, "input"),), (), ())


def sigmoid(input):
    return _apply(OPS["sigmoid"], (_tensor(input, "input"),), (), ())


def tanh(input):
    return _apply(OPS["tanh"], (_tensor(input, "input"),), (), ())


def _softmax_dim(input, dim):
    if dim is None:
        dim = 0 if input.ndim in (0, 1, 3) else 1
    return _norm_dim(dim, input.ndim)


def softmax(input, dim=None, dtype=None):
    _tensor(input, "input")
    return _apply(OPS["softmax"], (input,), (_softmax_dim(input, dim),), ())


def log_softmax(input, dim=None, dtype=None):
    _tensor(input, "input")
    return _apply(OPS["log_softmax"], (input,), (_softmax_dim(input, dim),), ())


def _check_p(p):
    if not isinstance(p, numbers.Real) or not 0.0 <= p <= 1.0:
        raise ValueError("dropout probability has to be between 0 and 1, but got %r" % (p,))
    return float(p)


def dropout(input, p=0.5, training=True, inplace=False, generator=None):
    """Zeroes each element with probability p and scales the rest by 1/(1-p) when training."""
    _tensor(input, "input")
    p = _check_p(p)
    if not training or p == 0.0:
        return input
    return _apply(OPS["dropout"], (input,), (1,), (p,), _gen(generator))


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5, _num_batches_tracked=None):
    """Batch normalisation over dim 1 of (N, C), (N, C, L) or (N, C, H, W); in training mode
    the running statistics (when given) are updated in place."""
    _tensor(input, "input")
    if not training and (running_mean is None or running_var is None):
        raise ValueError("batch_norm: running_mean and running_var are needed when training=False")
    if momentum is None:
        raise ValueError("batch_norm: momentum=None (cumulative average) is not supported; pass a float")
    ins = (input, weight, bias, running_mean, running_var)
    if _num_batches_tracked is not None:  # incremented by the op in training mode (BatchNorm modules)
        ins += (_num_batches_tracked,)
    for name, t in zip(("weight", "bias", "running_mean", "running_var"), ins[1:5]):
        if t is not None:
            _tensor(t, name)
    return _apply(OPS["batch_norm"], ins, (int(bool(training)),), (float(momentum), float(eps)))


def _target(target, argname="target"):
    return as_tensor_arg(target, argname)


def nll_loss(input, target, weight=None, ignore_index=-100, reduction="mean"):
    """Negative log-likelihood of log-probabilities input (B, C) at integer targets (B,)."""
    _tensor(input, "input")
    target = _target(target)
    ins = (input, target) if weight is None else (input, target, _tensor(weight, "weight"))
    return _apply(OPS["nll_loss"], ins, (_reduction(reduction), int(ignore_index)), ())


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean"):
    """log_softmax + nll_loss in one op (logits input (B, C), integer targets (B,))."""
    _tensor(input, "input")
    target = _target(target)
    ins = (input, target) if weight is None else (input, target, _tensor(weight, "weight"))
    return _apply(OPS["cross_entropy"], ins, (_reduction(reduction), int(ignore_index)), ())


def binary_cross_entropy(input, target, weight=None, reduction="mean"):
    """-[t log p + (1 - t) log(1 - p)], logs clamped at -100 as in PyTorch."""
    _tensor(input, "input")
    target = _target(target)
    if target._dtype_name != "float32":
        target = target.float()
    ins = (input, target) if weight is None else (input, target, _tensor(weight, "weight"))
    return _apply(OPS["binary_cross_entropy"], ins, (_reduction(reduction),), ())


def kl_div(input, target, reduction="mean", log_target=False):
    """KL divergence with input given as log-probabilities: sum target * (log target - input)."""
    _tensor(input, "input")
    target = _target(target)
    r = _reduction(reduction, ("none", "mean", "sum", "batchmean"))
    return _apply(OPS["kl_div"], (input, target), (r, int(bool(log_target))), ())


def mse_loss(input, target, reduction="mean"):
    d = input - target
    sq = d * d
    r = _reduction(reduction)
    return sq if r == 0 else (sq.mean() if r == 1 else sq.sum())


def one_hot(tensor, num_classes=-1):
    import numpy as np
    from .._tensor import from_numpy
    _tensor(tensor, "tensor")
    if tensor._dtype_name != "int64":
        raise TypeError("one_hot is only applicable to index tensor (int64)")
    arr = Tensor(tensor).numpy()
    if arr.size and arr.min() < 0:
        raise ValueError("one_hot: class values must be non-negative")
    n = int(arr.max()) + 1 if num_classes == -1 else int(num_classes)
    if arr.size and arr.max() >= n:
        raise ValueError("one_hot: class values must be smaller than num_classes")
    return from_numpy(np.eye(n, dtype=np.int64)[arr])


def _pair(v, name, minimum=0):
    """An int or a pair of ints (PyTorch's _pair), each >= minimum."""
    if isinstance(v, (tuple, list)):
        if len(v) != 2:
            raise ValueError("%s must be an int or a pair of ints, got %r" % (name, v))
        a, b = v
    else:
        a = b = v
    for x in (a, b):
        if not isinstance(x, numbers.Integral) or isinstance(x, bool):
            raise TypeError("%s must be an int or a pair of ints, got %r" % (name, v))
        if x < minimum:
            raise ValueError("%s must be >= %d, got %r" % (name, minimum, v))
    return int(a), int(b)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution (cross-correlation, as PyTorch) of input (N, C, H, W) with weight
    (OC, C/groups, KH, KW); padding is an int, a pair, or "valid"/"same"."""
    _tensor(input, "input")
    _tensor(weight, "weight")
    sh, sw = _pair(stride, "stride", 1)
    dh, dw = _pair(dilation, "dilation", 1)
    if isinstance(padding, str):
        if padding == "valid":
            ph = pw = 0
        elif padding == "same":
            if (sh, sw) != (1, 1):
                raise ValueError("padding='same' is not supported for strided convolutions")
            kh, kw = (weight.shape[2], weight.shape[3]) if weight.ndim == 4 else (1, 1)  # else the core says why
            if (dh * (kh - 1)) % 2 or (dw * (kw - 1)) % 2:
                raise ValueError("padding='same' needs odd effective kernel sizes in bcml")
            ph, pw = dh * (kh - 1) // 2, dw * (kw - 1) // 2
        else:
            raise ValueError("padding must be an int, a pair, 'valid' or 'same', got %r" % padding)
    else:
        ph, pw = _pair(padding, "padding", 0)
    if not isinstance(groups, numbers.Integral) or groups < 1:
        raise ValueError("groups must be a positive int, got %r" % (groups,))
    ins = (input, weight) if bias is None else (input, weight, _tensor(bias, "bias"))
    return _apply(OPS["conv2d"], ins, (sh, sw, ph, pw, dh, dw, int(groups)), ())


def _pool_args(kernel_size, stride, padding):
    kh, kw = _pair(kernel_size, "kernel_size", 1)
    sh, sw = _pair(stride if stride is not None and stride != () else (kh, kw), "stride", 1)
    ph, pw = _pair(padding, "padding", 0)
    if ph > kh // 2 or pw > kw // 2:
        raise ValueError("pad should be at most half of effective kernel size, but got pad=%r, kernel_size=%r"
                         % (padding, kernel_size))
    return kh, kw, sh, sw, ph, pw


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """Max pooling over (N, C, H, W) or (C, H, W) input; stride defaults to kernel_size."""
    _tensor(input, "input")
    if return_indices:
        raise ValueError("max_pool2d: return_indices=True is not supported by bcml")
    d = _pair(dilation, "dilation", 1)
    if d[0] != d[1]:
        raise ValueError("max_pool2d: bcml supports the same dilation in both directions")
    kh, kw, sh, sw, ph, pw = _pool_args(kernel_size, stride, padding)
    return _apply(OPS["max_pool2d"], (input,), (kh, kw, sh, sw, ph, pw, int(bool(ceil_mode)), d[0]), ())


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    """Average pooling over (N, C, H, W) or (C, H, W) input; stride defaults to kernel_size."""
    _tensor(input, "input")
    if divisor_override is not None:
        raise ValueError("avg_pool2d: divisor_override is not supported by bcml")
    kh, kw, sh, sw, ph, pw = _pool_args(kernel_size, stride, padding)
    return _apply(OPS["avg_pool2d"], (input,),
                  (kh, kw, sh, sw, ph, pw, int(bool(ceil_mode)), int(bool(count_include_pad))), ())


def adaptive_avg_pool2d(input, output_size):
    """Average pooling to a fixed output size (oh, ow) (None keeps the input's size)."""
    _tensor(input, "input")
    if isinstance(output_size, (tuple, list)):
        if len(output_size) != 2:
            raise ValueError("output_size must be an int or a pair, got %r" % (output_size,))
        oh, ow = output_size
    else:
        oh = ow = output_size
    oh = input.shape[-2] if oh is None else oh
    ow = input.shape[-1] if ow is None else ow
    oh, ow = _pair((oh, ow), "output_size", 1)
    return _apply(OPS["adaptive_avg_pool2d"], (input,), (oh, ow), ())


def dropout2d(input, p=0.5, training=True, inplace=False, generator=None):
    """Zeroes whole channels (each (n, c) plane) with probability p, scaling the rest by 1/(1-p).
    As PyTorch 2, a 3-D input is taken as (N, C, L) (each row of L dropped as a whole) with a
    warning, and other ranks than 3 or 4 are deprecated (a warning)."""
    _tensor(input, "input")
    p = _check_p(p)
    if input.ndim not in (3, 4):
        warnings.warn("dropout2d: received a %d-D input to dropout2d, which is deprecated (as in PyTorch); "
                      "dropout2d is meant for (N, C, H, W) or (C, H, W) input" % input.ndim, stacklevel=2)
    if input.ndim == 3:
        warnings.warn("dropout2d: received a 3-D input; as PyTorch does, it is taken as (N, C, L) and each "
                      "(n, c) row is zeroed as a whole; reshape (C, H, W) input to (1, C, H, W) to drop "
                      "channels", stacklevel=2)
    if not training or p == 0.0:
        return input
    return _apply(OPS["dropout2d"], (input,), (1,), (p,), _gen(generator))
