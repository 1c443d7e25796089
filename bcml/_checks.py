"""Argument checks and output helpers shared by bcml.metrics and bcml.helpers (internal).

Every check raises TypeError (wrong kind of object) or ValueError (wrong value, shape or
range) with a message that names the argument, before any training starts.
"""
import numbers

import numpy as np

from ._autograd import no_grad
from ._engine import PyState, as_dataset, call_model, split_output
from ._values import INT64_MAX, call_named


def call_user(fn, argname, *args, **kwargs):
    """fn(*args, **kwargs) for a function the user passed as argument argname: a TypeError,
    ValueError or IndexError raised inside it (of exactly that type) is raised again naming the
    argument, e.g. "loss_function(output, target) raised TypeError: ...", chained to the original."""
    return call_named(lambda e: "%s raised %s: %s" % (argname, type(e).__name__, e), fn, *args, **kwargs)


def check_device(device):
    """bcml computes on the CPU: device must be "cpu" (or "cpu:N", or bcml.device("cpu"))."""
    s = getattr(device, "type", device)
    if isinstance(s, str) and (s == "cpu" or s.startswith("cpu:")):
        return
    raise ValueError("device must be 'cpu' (bcml runs on the CPU only), got %r" % (device,))


def check_model(model, name):
    if not callable(model):
        raise TypeError("%s must be a callable model, got %s" % (name, type(model).__name__))


def check_positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError("%s must be a positive int, got %s" % (name, type(value).__name__))
    if value < 1:
        raise ValueError("%s must be a positive int, got %d" % (name, value))
    if value > INT64_MAX:  # also: 2**63 epochs would never end
        raise ValueError("%s: value cannot be converted to type int64 without overflow (got %d)" % (name, value))
    return int(value)


def check_optimizer(optimizer, name="optimizer"):
    for attr in ("zero_grad", "step"):
        if not callable(getattr(optimizer, attr, None)):
            raise TypeError("%s must be an optimizer with zero_grad() and step() (e.g. bcml.optim.SGD), "
                            "got %s" % (name, type(optimizer).__name__))


def check_kwargs(value, name):
    """None or a dict of keyword arguments; returns a dict."""
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise TypeError("%s must be a dict of keyword arguments or None, got %s"
                        % (name, type(value).__name__))
    return dict(value)


def one_batch(data, target, ids=None, name="batched_evaluation_data"):
    """A single batch (BCML's batched_evaluation_data / _target arguments) as a data set; each
    argument checked under its own name."""
    from ._engine import _as_ids, _as_targets, _as_tensor
    x = _as_tensor(data, name)
    y = _as_targets(target, "batched_evaluation_target")
    if x.ndim == 0 or y.ndim == 0 or x.shape[0] != y.shape[0]:
        raise ValueError("%s and batched_evaluation_target must have the same number of rows, got shapes %s and %s"
                         % (name, tuple(x.shape), tuple(y.shape)))
    if ids is not None:
        ids = _as_ids(ids, int(x.shape[0]), "batch_ids")
    batch = (x, y) if ids is None else (ids, x, y)
    return as_dataset([batch], name)


# ---- model outputs ---------------------------------------------------------------------------
def output_kind(out, who):
    """(binary, width, rows) of one model output: the triple (logits, softmax, log_softmax) of
    (B, C) tensors, or one probability per sample, (B,) or (B, 1)."""
    parts, binary = split_output(out, who)
    return binary, 1 if binary else int(parts[0].shape[1]), int(parts[0].shape[0])


def training_modes(model):
    """(module, training flag) of model and each of its submodules (none for a plain function)."""
    mods = list(model.modules()) if callable(getattr(model, "modules", None)) else [model]
    return [(m, m.training) for m in mods if isinstance(getattr(m, "training", None), bool)]


def probe(model, data, who):
    """Runs model on the first batch of data (a checked Dataset) under no_grad and in eval mode
    (so no dropout mask is drawn and no batch-norm statistic changes), drawing from a throwaway
    generator, then puts back what a forward with Python side effects changed: the attributes
    of model and its submodules (shallowly: each attribute, the contents of list/dict/set
    attributes, generators kept as attributes) and the states of Python's and NumPy's global
    generators. So the probe is not a training call: a training loop after it sees the model
    as it was. Returns (binary, width). Raises when the output is not a model output or has a
    row count other than the batch's."""
    from ._random import Generator, default_for_thread
    rows, _ids, x, y = next(iter(data.epoch(shuffle=False)))
    modes = training_modes(model)
    mods = list(model.modules()) if callable(getattr(model, "modules", None)) else []
    state = PyState(mods + [model], contents=True)
    for m, _ in modes:
        object.__setattr__(m, "training", False)
    try:
        with no_grad(), default_for_thread(Generator(0)):
            out = call_model(model, x, who, "the first batch of " + data.name)
    finally:
        state.restore()
    binary, width, n = output_kind(out, who)
    if n != len(rows):
        raise ValueError("%s returned %d outputs for the first batch of %s, which has %d samples "
                         "(check the input shape)" % (who, n, data.name, len(rows)))
    return binary, width


def probe_pair(h1, h2, data):
    """Runs h1 and h2 on the first batch; they must give the same kind and width of output."""
    b1, w1 = probe(h1, data, "h1")
    b2, w2 = probe(h2, data, "h2")
    if b1 != b2:
        raise ValueError("h1 and h2 must both be classifiers or both binary models; h1 returns %s, h2 %s"
                         % ("one probability" if b1 else "%d classes" % w1,
                            "one probability" if b2 else "%d classes" % w2))
    if w1 != w2:
        raise ValueError("h1 and h2 must have the same number of classes; h1 returns %d, h2 %d" % (w1, w2))
    return b2, w2


def outputs_kind(outputs):
    """(binary, width) of an _engine.Outputs."""
    return outputs.binary, (1 if outputs.binary else int(outputs.parts[0].shape[1]))


def check_pair_outputs(o1, o2):
    b1, w1 = outputs_kind(o1)
    b2, w2 = outputs_kind(o2)
    if b1 != b2 or w1 != w2:
        raise ValueError("h1 and h2 must give the same kind of output; h1 returns %s, h2 %s"
                         % ("one probability" if b1 else "%d classes" % w1,
                            "one probability" if b2 else "%d classes" % w2))
    return b1, w1


def num_classes(binary, width):
    return 2 if binary else width


# ---- targets ---------------------------------------------------------------------------------
def all_targets(data):
    """Every target of a checked Dataset, in row order (one NumPy array; no batch is built)."""
    return data.full()[1].numpy()


def check_targets(y, binary, width, name):
    """Class targets: integers in [0, width); binary targets: 0/1. One label per sample.
    Returns the targets as int64 labels."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError("%s: targets must hold one label per sample, shape (B,), got batches of shape %s"
                         % (name, ("(B, %s)" % ", ".join(str(s) for s in y.shape[1:])) if y.ndim else "()"))
    if binary:
        if y.dtype.kind not in "iufb":
            raise TypeError("%s: binary targets must be 0/1 numbers, got dtype %s" % (name, y.dtype))
        bad = (y != 0) & (y != 1)
        if bad.any():
            raise ValueError("%s: binary targets must be 0 or 1, got %r" % (name, y[bad][0].item()))
        return y.astype(np.int64)
    if y.dtype.kind == "f":  # data sets convert float targets already; a float array reaching here too
        from ._labels import integral
        y = integral(y, "%s: class targets" % name, "integers")
    if y.dtype.kind not in "iu":
        raise TypeError("%s: class targets must be integers, got dtype %s" % (name, y.dtype))
    if y.size:
        lo, hi = int(y.min()), int(y.max())
        if lo < 0 or hi >= width:
            raise ValueError("%s: class targets must lie in [0, %d) (the models' number of classes), got %d"
                             % (name, width, lo if lo < 0 else hi))
    return y.astype(np.int64, copy=False)
