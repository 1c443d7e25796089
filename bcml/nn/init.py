"""Initialisations with PyTorch's distributions, drawn from bcml's generators."""
import math

from .. import _core
from .._random import gen as _gen


def calculate_fan_in_and_fan_out(tensor):
    if tensor.ndim < 2:
        raise ValueError("fan in and fan out can not be computed for tensor with fewer than 2 dimensions")
    fan_in, fan_out = tensor.shape[1], tensor.shape[0]
    receptive = 1
    for s in tensor.shape[2:]:
        receptive *= s
    return fan_in * receptive, fan_out * receptive


def _t(tensor, fname):
    if not isinstance(tensor, _core.TensorBase):
        raise TypeError("%s(): argument 'tensor' must be a bcml tensor, got %s" % (fname, type(tensor).__name__))
    return tensor


def uniform_(tensor, a=0.0, b=1.0, generator=None):
    # the core checks the values (and names them): finite, a <= b, within float32's range
    _core.fill_(_t(tensor, "uniform_"), 0, a, b, _gen(generator))
    return tensor


def normal_(tensor, mean=0.0, std=1.0, generator=None):
    _core.fill_(_t(tensor, "normal_"), 1, mean, std, _gen(generator))
    return tensor


def constant_(tensor, val):
    from .._tensor import _fill_value
    _t(tensor, "constant_")
    _core.fill_(tensor, 2, _fill_value(val, tensor._dtype_name, "constant_", "val"), 0.0)
    return tensor


def zeros_(tensor):
    return constant_(tensor, 0.0)


def ones_(tensor):
    return constant_(tensor, 1.0)


def _gain(nonlinearity, param=None):
    if nonlinearity in ("linear", "conv1d", "conv2d", "sigmoid"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        return math.sqrt(2.0 / (1 + slope ** 2))
    raise ValueError("unsupported nonlinearity %r" % nonlinearity)


calculate_gain = _gain


def kaiming_uniform_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    fan = fan_in if mode == "fan_in" else fan_out
    if fan == 0:
        return tensor
    bound = math.sqrt(3.0) * _gain(nonlinearity, a) / math.sqrt(fan)
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    fan = fan_in if mode == "fan_in" else fan_out
    if fan == 0:
        return tensor
    return normal_(tensor, 0.0, _gain(nonlinearity, a) / math.sqrt(fan), generator)


def xavier_uniform_(tensor, gain=1.0, generator=None):
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    bound = gain * math.sqrt(6.0 / float(fan_in + fan_out))
    return uniform_(tensor, -bound, bound, generator)


def xavier_normal_(tensor, gain=1.0, generator=None):
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / float(fan_in + fan_out)), generator)
