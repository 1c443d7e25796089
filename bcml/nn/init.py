"""Initialisations with PyTorch's distributions, drawn from bcml's generators."""
import math

from .. import _core, _values
from .._random import gen as _gen


def calculate_fan_in_and_fan_out(tensor):
    _t(tensor, "calculate_fan_in_and_fan_out")
    if tensor.ndim < 2:
        raise ValueError("calculate_fan_in_and_fan_out(): fan in and fan out can not be computed for tensor with "
                         "fewer than 2 dimensions (argument 'tensor' has %d)" % tensor.ndim)
    fan_in, fan_out = tensor.shape[1], tensor.shape[0]
    receptive = 1
    for s in tensor.shape[2:]:
        receptive *= s
    return fan_in * receptive, fan_out * receptive


def _t(tensor, fname, floating=True):
    if not isinstance(tensor, _core.TensorBase):
        raise TypeError("%s(): argument 'tensor' must be a bcml tensor, got %s" % (fname, type(tensor).__name__))
    if floating and tensor._dtype_name != "float32":
        raise TypeError("%s(): argument 'tensor' must be a float32 tensor, got %s" % (fname, tensor._dtype_name))
    return tensor


def uniform_(tensor, a=0.0, b=1.0, generator=None):
    # the core checks the values (and names them): finite, a <= b, within float32's range
    _t(tensor, "uniform_")
    a, b = _values.real(a, "uniform_", "a"), _values.real(b, "uniform_", "b")
    _core.fill_(tensor, 0, a, b, _gen(generator))
    return tensor


def normal_(tensor, mean=0.0, std=1.0, generator=None):
    _t(tensor, "normal_")
    mean, std = _values.real(mean, "normal_", "mean"), _values.real(std, "normal_", "std")
    _core.fill_(tensor, 1, mean, std, _gen(generator))
    return tensor


def constant_(tensor, val):
    from .._tensor import _fill_value
    _t(tensor, "constant_", floating=False)
    _core.fill_(tensor, 2, _fill_value(val, tensor._dtype_name, "constant_", "val"), 0.0)
    return tensor


def zeros_(tensor):
    _t(tensor, "zeros_", floating=False)
    return constant_(tensor, 0)


def ones_(tensor):
    _t(tensor, "ones_", floating=False)
    return constant_(tensor, 1)


_GAINS = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
          "sigmoid", "tanh", "relu", "leaky_relu", "selu")


def _gain(nonlinearity, param=None, fname="calculate_gain"):
    if not isinstance(nonlinearity, str):
        raise TypeError("%s(): argument 'nonlinearity' must be a str, not %s" % (fname, type(nonlinearity).__name__))
    if nonlinearity not in _GAINS:
        raise ValueError("%s(): argument 'nonlinearity': unsupported nonlinearity %r" % (fname, nonlinearity))
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        else:
            slope = _values.real(param, fname, "param")
            if not math.isfinite(slope):
                raise ValueError("%s(): argument 'param': negative_slope %r is not a valid number" % (fname, param))
        return math.sqrt(2.0 / (1 + slope ** 2))
    if param is not None:
        _values.real(param, fname, "param")
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "selu":
        return 3.0 / 4
    return 1.0


def calculate_gain(nonlinearity, param=None):
    """The recommended gain of a nonlinearity (PyTorch's table)."""
    return _gain(nonlinearity, param)


def _fan(tensor, mode, fname):
    fan_in, fan_out = calculate_fan_in_and_fan_out(_t(tensor, fname))
    if not isinstance(mode, str):
        raise TypeError("%s(): argument 'mode' must be 'fan_in' or 'fan_out', not %s" % (fname, type(mode).__name__))
    if mode not in ("fan_in", "fan_out"):
        raise ValueError("%s(): argument 'mode' must be 'fan_in' or 'fan_out', got %r" % (fname, mode))
    return fan_in if mode == "fan_in" else fan_out


def kaiming_uniform_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    fan = _fan(tensor, mode, "kaiming_uniform_")
    gain = _gain(nonlinearity, _values.real(a, "kaiming_uniform_", "a"), "kaiming_uniform_")
    g = _gen(generator)
    if fan == 0:
        return tensor
    bound = math.sqrt(3.0) * gain / math.sqrt(fan)
    return uniform_(tensor, -bound, bound, g)


def kaiming_normal_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    fan = _fan(tensor, mode, "kaiming_normal_")
    gain = _gain(nonlinearity, _values.real(a, "kaiming_normal_", "a"), "kaiming_normal_")
    g = _gen(generator)
    if fan == 0:
        return tensor
    return normal_(tensor, 0.0, gain / math.sqrt(fan), g)


def _gain_arg(gain, fname):
    v = _values.real(gain, fname, "gain")
    if not math.isfinite(v) or abs(v) > _values.FLT_MAX:
        raise ValueError("%s(): argument 'gain' must be finite within float32's range, got %r" % (fname, gain))
    return v


def xavier_uniform_(tensor, gain=1.0, generator=None):
    fan_in, fan_out = calculate_fan_in_and_fan_out(_t(tensor, "xavier_uniform_"))
    gain = _gain_arg(gain, "xavier_uniform_")
    g = _gen(generator)
    if fan_in + fan_out == 0:
        raise ValueError("xavier_uniform_(): argument 'tensor' has no elements (fan_in + fan_out = 0)")
    bound = gain * math.sqrt(6.0 / float(fan_in + fan_out))
    return uniform_(tensor, -bound, bound, g)


def xavier_normal_(tensor, gain=1.0, generator=None):
    fan_in, fan_out = calculate_fan_in_and_fan_out(_t(tensor, "xavier_normal_"))
    gain = _gain_arg(gain, "xavier_normal_")
    g = _gen(generator)
    if fan_in + fan_out == 0:
        raise ValueError("xavier_normal_(): argument 'tensor' has no elements (fan_in + fan_out = 0)")
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / float(fan_in + fan_out)), g)
