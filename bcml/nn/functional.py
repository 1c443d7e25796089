"""bcml.nn.functional: PyTorch's functional API on bcml's C ops."""
import numbers
import warnings

from .. import _core, _values
from .._random import gen as _gen
from .._tensor import OPS, REDUCTIONS, Tensor, _apply, _norm_dim, as_tensor_arg

__all__ = ["linear", "relu", "sigmoid", "tanh", "softmax", "log_softmax", "dropout",
           "batch_norm", "nll_loss", "cross_entropy", "binary_cross_entropy", "kl_div",
           "one_hot", "mse_loss", "conv2d", "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d",
           "dropout2d"]


def _tensor(x, argname, fname=None):
    if not isinstance(x, _core.TensorBase):
        raise TypeError("%s%s must be a bcml tensor, got %s"
                        % ("%s(): " % fname if fname else "", argname, type(x).__name__))
    return x


def _reduction(reduction, allowed=("none", "mean", "sum")):
    if not isinstance(reduction, str):
        raise TypeError("reduction must be one of %s, not %s" % (", ".join(map(repr, allowed)), type(reduction).__name__))
    if reduction not in allowed:
        raise ValueError("reduction must be one of %s, got %r" % (", ".join(map(repr, allowed)), reduction))
    return REDUCTIONS[reduction]


def _flag(v, fname, argname):
    return _values.flag(v, fname, argname)


def _softmax_dtype(dtype, fname):
    """softmax's dtype: None or a floating dtype (bcml computes in float32)."""
    if dtype is not None:
        from .._tensor import _as_dtype
        if not _as_dtype(dtype, "%s(): argument 'dtype'" % fname).is_floating_point:
            raise TypeError("%s(): argument 'dtype' must be a floating point dtype, got %r" % (fname, dtype))


def linear(input, weight, bias=None):
    """input @ weight.T + bias."""
    _tensor(input, "input", "linear")
    _tensor(weight, "weight", "linear")
    if bias is None:
        return _apply(OPS["linear"], (input, weight), (), ())
    return _apply(OPS["linear"], (input, weight, _tensor(bias, "bias", "linear")), (), ())


def relu(input, inplace=False):
    _flag(inplace, "relu", "inplace")
    return _apply(OPS["relu"], (_tensor(input, "input", "relu"),), (), ())


def sigmoid(input):
    return _apply(OPS["sigmoid"], (_tensor(input, "input", "sigmoid"),), (), ())


def tanh(input):
    return _apply(OPS["tanh"], (_tensor(input, "input", "tanh"),), (), ())


def _softmax_dim(input, dim):
    if dim is None:
        dim = 0 if input.ndim in (0, 1, 3) else 1
    return _norm_dim(dim, input.ndim)


def softmax(input, dim=None, dtype=None):
    _tensor(input, "input", "softmax")
    _softmax_dtype(dtype, "softmax")
    return _apply(OPS["softmax"], (input,), (_softmax_dim(input, dim),), ())


def log_softmax(input, dim=None, dtype=None):
    _tensor(input, "input", "log_softmax")
    _softmax_dtype(dtype, "log_softmax")
    return _apply(OPS["log_softmax"], (input,), (_softmax_dim(input, dim),), ())


def _check_p(p, fname="dropout"):
    if not isinstance(p, numbers.Real):
        raise TypeError("%s(): argument 'p' must be a number (a dropout probability), got %s"
                        % (fname, type(p).__name__))
    if not 0.0 <= p <= 1.0:
        raise ValueError("%s(): argument 'p': dropout probability has to be between 0 and 1, but got %r"
                         % (fname, p))
    return float(p)


def dropout(input, p=0.5, training=True, inplace=False, generator=None):
    """Zeroes each element with probability p and scales the rest by 1/(1-p) when training."""
    _tensor(input, "input", "dropout")
    p = _check_p(p)
    training = _flag(training, "dropout", "training")
    _flag(inplace, "dropout", "inplace")
    g = _gen(generator)
    if not training or p == 0.0:
        return input
    return _apply(OPS["dropout"], (input,), (1,), (p,), g)


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5, _num_batches_tracked=None):
    """Batch normalisation over dim 1 of (N, C), (N, C, L) or (N, C, H, W); in training mode
    the running statistics (when given) are updated in place."""
    _tensor(input, "input", "batch_norm")
    training = _flag(training, "batch_norm", "training")
    if not training and (running_mean is None or running_var is None):
        raise ValueError("batch_norm: running_mean and running_var are needed when training=False")
    if momentum is None:
        raise ValueError("batch_norm: momentum=None (cumulative average) is not supported; pass a float")
    momentum = _values.setting(momentum, "batch_norm", "momentum")
    eps = _values.setting(eps, "batch_norm", "eps", low=0.0)
    ins = (input, weight, bias, running_mean, running_var)
    if _num_batches_tracked is not None:  # incremented by the op in training mode (BatchNorm modules)
        ins += (_num_batches_tracked,)
    for name, t in zip(("weight", "bias", "running_mean", "running_var"), ins[1:5]):
        if t is not None:
            _tensor(t, name, "batch_norm")
    return _apply(OPS["batch_norm"], ins, (int(bool(training)),), (momentum, eps))


def _target(target, fname, argname="target"):
    """A loss target: a tensor, or a list/array converted (a bare number is refused, as PyTorch)."""
    if isinstance(target, _core.TensorBase):
        return target
    from .._tensor import _scalar
    if _scalar(target):
        raise TypeError("%s(): argument '%s' must be a tensor, not %s" % (fname, argname, type(target).__name__))
    return as_tensor_arg(target, argname, fname=fname)


def _ignore_index(v, fname):
    return _values.index(v, fname, "ignore_index")


def nll_loss(input, target, weight=None, ignore_index=-100, reduction="mean"):
    """Negative log-likelihood of log-probabilities input (B, C) at integer targets (B,)."""
    _tensor(input, "input", "nll_loss")
    target = _target(target, "nll_loss")
    ins = (input, target) if weight is None else (input, target, _tensor(weight, "weight", "nll_loss"))
    return _apply(OPS["nll_loss"], ins, (_reduction(reduction), _ignore_index(ignore_index, "nll_loss")), ())


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean"):
    """log_softmax + nll_loss in one op (logits input (B, C), integer targets (B,))."""
    _tensor(input, "input", "cross_entropy")
    target = _target(target, "cross_entropy")
    ins = (input, target) if weight is None else (input, target, _tensor(weight, "weight", "cross_entropy"))
    return _apply(OPS["cross_entropy"], ins, (_reduction(reduction), _ignore_index(ignore_index, "cross_entropy")), ())


def binary_cross_entropy(input, target, weight=None, reduction="mean"):
    """-[t log p + (1 - t) log(1 - p)], logs clamped at -100 as in PyTorch."""
    _tensor(input, "input", "binary_cross_entropy")
    target = _target(target, "binary_cross_entropy")
    if target._dtype_name != "float32":
        target = target.float()
    ins = (input, target) if weight is None else (input, target, _tensor(weight, "weight", "binary_cross_entropy"))
    return _apply(OPS["binary_cross_entropy"], ins, (_reduction(reduction),), ())


def kl_div(input, target, reduction="mean", log_target=False):
    """KL divergence with input given as log-probabilities: sum target * (log target - input)."""
    _tensor(input, "input", "kl_div")
    target = _target(target, "kl_div")
    r = _reduction(reduction, ("none", "mean", "sum", "batchmean"))
    log_target = _flag(log_target, "kl_div", "log_target")
    return _apply(OPS["kl_div"], (input, target), (r, int(log_target)), ())


def mse_loss(input, target, reduction="mean"):
    _tensor(input, "input", "mse_loss")
    target = _target(target, "mse_loss")
    r = _reduction(reduction)
    if input._dtype_name != "float32" or target._dtype_name != "float32":
        raise TypeError("mse_loss(): input and target must be float32 tensors, got input %s and target %s"
                        % (input._dtype_name, target._dtype_name))
    try:
        d = input - target
    except ValueError:
        raise ValueError("mse_loss(): input of shape %s and target of shape %s cannot be broadcast together"
                         % (tuple(input.shape), tuple(target.shape))) from None
    sq = d * d
    return sq if r == 0 else (sq.mean() if r == 1 else sq.sum())


def one_hot(tensor, num_classes=-1):
    """(..., num_classes) int64 with a 1 at each label; num_classes=-1: largest label + 1 (an
    empty tensor then has no classes to infer: ValueError, as PyTorch's RuntimeError)."""
    import numpy as np
    from .._tensor import zeros
    _tensor(tensor, "tensor", "one_hot")
    if tensor._dtype_name != "int64":
        raise TypeError("one_hot(): argument 'tensor': one_hot is only applicable to index tensor (int64), got %s"
                        % tensor._dtype_name)
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral):
        raise TypeError("one_hot(): argument 'num_classes' must be an int, got %s" % type(num_classes).__name__)
    num_classes = _values.int64(num_classes, "one_hot", "num_classes")
    arr = Tensor(tensor).numpy()
    if arr.size and arr.min() < 0:
        raise ValueError("one_hot(): argument 'tensor': class values must be non-negative")
    if num_classes == -1:
        if not arr.size:
            raise ValueError("one_hot(): argument 'num_classes': can not infer total number of classes from "
                             "empty tensor (pass num_classes)")
        n = int(arr.max()) + 1
    elif num_classes < 0:
        raise ValueError("one_hot(): argument 'num_classes' must be -1 (infer) or >= 0, got %d" % num_classes)
    else:
        n = int(num_classes)
        if arr.size and arr.max() >= n:
            raise ValueError("one_hot(): argument 'tensor': class values must be smaller than num_classes=%d" % n)
    _values.check_size(tuple(arr.shape) + (n,), 8, "one_hot", "num_classes", "int64")
    out = zeros(tuple(arr.shape) + (n,), dtype="int64")
    if arr.size:
        flat = out.numpy().reshape(-1, n)
        flat[np.arange(arr.size), arr.reshape(-1)] = 1
    return out


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
        if x > _values.INT64_MAX:
            raise ValueError("%s: value cannot be converted to type int64 without overflow (got %d)" % (name, x))
    return int(a), int(b)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution (cross-correlation, as PyTorch) of input (N, C, H, W) with weight
    (OC, C/groups, KH, KW); padding is an int, a pair, or "valid"/"same"."""
    _tensor(input, "input", "conv2d")
    _tensor(weight, "weight", "conv2d")
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
    groups = _values.index(groups, "conv2d", "groups")
    if groups < 1:
        raise ValueError("groups must be a positive int, got %r" % (groups,))
    ins = (input, weight) if bias is None else (input, weight, _tensor(bias, "bias", "conv2d"))
    return _apply(OPS["conv2d"], ins, (sh, sw, ph, pw, dh, dw, int(groups)), ())


def _hooked(m):
    d = m.__dict__
    return bool(d.get("_forward_pre_hooks") or d.get("_forward_hooks") or d.get("_backward_hooks"))


def _conv_bn_relu(input, conv, bn, relu):
    """conv -> bn (-> ReLU) of nn modules as one op when conv has no bias, bn is a BatchNorm2d in
    eval mode with running statistics and no gradient is needed: the convolution's output pass
    applies the batch norm's affine map (computed in the op from bn's tensors at each call) and
    the ReLU. None when that does not apply (the caller runs the modules)."""
    from .modules import BatchNorm2d, Conv2d
    if (type(conv).forward is not Conv2d.forward or type(bn).forward is not BatchNorm2d.forward
            or not isinstance(conv, Conv2d) or not isinstance(bn, BatchNorm2d) or bn.training
            or conv.bias is not None or bn.running_mean is None or bn.running_var is None
            or _hooked(conv) or _hooked(bn) or isinstance(conv.padding, str) or not isinstance(input, Tensor)
            or input.ndim != 4 or str(input.dtype) != "bcml.float32" or bn.num_features != conv.out_channels):
        return None
    if _core.is_grad_enabled() and any(t is not None and t.requires_grad
                                       for t in (input, conv.weight, bn.weight, bn.bias)):
        return None
    import numpy as np
    C = bn.num_features
    weight = bn.weight if bn.weight is not None else _core.from_numpy(np.ones(C, np.float32))
    bias = bn.bias if bn.bias is not None else _core.from_numpy(np.zeros(C, np.float32))
    ins = (input, conv.weight, bn.running_mean, bn.running_var, weight, bias)
    args = tuple(conv.stride) + tuple(conv.padding) + tuple(conv.dilation) + (int(conv.groups), int(bool(relu)))
    return _apply(OPS["conv2d_bn_relu"], ins, args, (float(bn.eps),))


def _pool_args(kernel_size, stride, padding):
    kh, kw = _pair(kernel_size, "kernel_size", 1)
    default = stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0)
    sh, sw = _pair((kh, kw) if default else stride, "stride", 1)
    ph, pw = _pair(padding, "padding", 0)
    if ph > kh // 2 or pw > kw // 2:
        raise ValueError("padding: pad should be at most half of effective kernel size, but got pad=%r, "
                         "kernel_size=%r" % (padding, kernel_size))
    return kh, kw, sh, sw, ph, pw


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """Max pooling over (N, C, H, W) or (C, H, W) input; stride defaults to kernel_size."""
    _tensor(input, "input", "max_pool2d")
    ceil_mode = _flag(ceil_mode, "max_pool2d", "ceil_mode")
    if _flag(return_indices, "max_pool2d", "return_indices"):
        raise ValueError("max_pool2d: return_indices=True is not supported by bcml")
    d = _pair(dilation, "dilation", 1)
    if d[0] != d[1]:
        raise ValueError("max_pool2d: bcml supports the same dilation in both directions")
    kh, kw, sh, sw, ph, pw = _pool_args(kernel_size, stride, padding)
    return _apply(OPS["max_pool2d"], (input,), (kh, kw, sh, sw, ph, pw, int(bool(ceil_mode)), d[0]), ())


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    """Average pooling over (N, C, H, W) or (C, H, W) input; stride defaults to kernel_size."""
    _tensor(input, "input", "avg_pool2d")
    ceil_mode = _flag(ceil_mode, "avg_pool2d", "ceil_mode")
    count_include_pad = _flag(count_include_pad, "avg_pool2d", "count_include_pad")
    if divisor_override is not None:
        raise ValueError("avg_pool2d: divisor_override is not supported by bcml")
    kh, kw, sh, sw, ph, pw = _pool_args(kernel_size, stride, padding)
    return _apply(OPS["avg_pool2d"], (input,),
                  (kh, kw, sh, sw, ph, pw, int(bool(ceil_mode)), int(bool(count_include_pad))), ())


def adaptive_avg_pool2d(input, output_size):
    """Average pooling to a fixed output size (oh, ow) (None keeps the input's size)."""
    _tensor(input, "input", "adaptive_avg_pool2d")
    oh, ow = _output_size(output_size, input)
    return _apply(OPS["adaptive_avg_pool2d"], (input,), (oh, ow), ())


def _output_size(output_size, input):
    """adaptive_avg_pool2d's output size: an int or a pair of ints (an element None keeps the
    input's size; input None: only checked)."""
    if output_size is None:
        raise TypeError("adaptive_avg_pool2d(): argument 'output_size' must be an int or a pair (an element may "
                        "be None), not None")
    if isinstance(output_size, (tuple, list)):
        if len(output_size) != 2:
            raise ValueError("output_size must be an int or a pair, got %r" % (output_size,))
        oh, ow = output_size
    else:
        oh = ow = output_size
    if input is None:
        _pair((1 if oh is None else oh, 1 if ow is None else ow), "output_size", 1)
        return None
    oh = input.shape[-2] if oh is None and input.ndim >= 2 else oh
    ow = input.shape[-1] if ow is None and input.ndim >= 2 else ow
    return _pair((oh, ow), "output_size", 1)


def dropout2d(input, p=0.5, training=True, inplace=False, generator=None):
    """Zeroes whole channels (each (n, c) plane) with probability p, scaling the rest by 1/(1-p).
    As PyTorch 2, a 3-D input is taken as (N, C, L) (each row of L dropped as a whole) with a
    warning, and other ranks than 3 or 4 are deprecated (a warning)."""
    _tensor(input, "input", "dropout2d")
    p = _check_p(p, "dropout2d")
    training = _flag(training, "dropout2d", "training")
    _flag(inplace, "dropout2d", "inplace")
    g = _gen(generator)
    if input.ndim not in (3, 4):
        warnings.warn("dropout2d: received a %d-D input to dropout2d, which is deprecated (as in PyTorch); "
                      "dropout2d is meant for (N, C, H, W) or (C, H, W) input" % input.ndim, stacklevel=2)
    if input.ndim == 3:
        warnings.warn("dropout2d: received a 3-D input; as PyTorch does, it is taken as (N, C, L) and each "
                      "(n, c) row is zeroed as a whole; reshape (C, H, W) input to (1, C, H, W) to drop "
                      "channels", stacklevel=2)
    if not training or p == 0.0:
        return input
    return _apply(OPS["dropout2d"], (input,), (1,), (p,), g)
