"""Backward-compatibility losses (SPEC section 3), computed by one C op (compat_loss).

    loss = base(h2(x), y) + lambda_c * dissonance,  dissonance = (1/B) sum_{i in S} d_i

S = the samples h1 classifies correctly (argmax(h1) == y; binary models: (p1 >= pivot) == y).
h1 is run under no_grad in whatever mode the user left it; h2 is run once per call. Models
return (logits, softmax, log_softmax); binary models return one probability per sample, (B,)
or (B, 1) (flattened, never broadcast).

Deliberate differences from BCML: every term is scaled by 1/B of the whole batch ("sum" sums,
"none" gives the per-sample vector base_i + lambda_c [i in S] d_i); the strict-imitation KL is
KL(p1 || p2); the strict-imitation cross-entropy imitates softmax(h1's logits); the
discriminant pivot is honoured (keyword `discriminant_pivot`; BCML's code's `discriminant_pivit`
and its docs' `discriminan_pivot` are accepted too); h2 is run once instead of twice.

``bcml.loss.new_error`` and ``bcml.loss.strict_imitation`` hold the same classes under BCML's
module names.
"""
import math
import numbers

from .. import _core, _values
from .._autograd import no_grad
from .._tensor import OPS, as_tensor_arg
from .._values import FLT_MAX, call_named

__all__ = ["BCNLLLoss", "BCCrossEntropyLoss", "BCBinaryCrossEntropyLoss", "BCKLDivergenceLoss",
           "StrictImitationNLLLoss", "StrictImitationCrossEntropyLoss",
           "StrictImitationBinaryCrossEntropyLoss", "StrictImitationKLDivergenceLoss"]

_NLL, _CE, _BCE, _KL = 0, 1, 2, 3
_TRIPLE_INDEX = {_NLL: 2, _CE: 0, _KL: 2}
_ELEMENT_NAME = {_NLL: "log_softmax", _CE: "logits", _KL: "log_softmax"}
_REDUCTIONS = {"none": 0, "mean": 1, "sum": 2}


def _loss_setting(value, fname, name, rule, range_rule, nonneg):
    """A float setting of the C loss (which computes in float32): a real number (not a bool),
    finite, >= 0 when nonneg, and within float32's range (1e39 would become inf)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError("%s: %s must be a real number, got %s" % (fname, name, type(value).__name__))
    try:
        v = float(value)
    except OverflowError:
        v = math.inf
    if not math.isfinite(v) or (nonneg and v < 0):
        raise ValueError("%s: %s must be %s, got %r" % (fname, name, rule, value))
    if abs(v) > FLT_MAX:
        raise ValueError("%s: %s must be %s, got %r" % (fname, name, range_rule, value))
    return v


def _check_lambda(lambda_c, fname="loss"):
    return _loss_setting(lambda_c, fname, "lambda_c", "finite and >= 0",
                         "finite, >= 0 and within float32's range (<= %g)" % FLT_MAX, nonneg=True)


def _check_pivot(pivot, fname):
    return _loss_setting(pivot, fname, "discriminant_pivot", "finite",
                         "finite within float32's range (|value| <= %g)" % FLT_MAX, nonneg=False)


class _CompatibilityLoss:
    _kind = _NLL
    _strict = 0

    def __init__(self, h1, h2, lambda_c, **kwargs):
        if not callable(h1):
            raise TypeError("h1 must be a callable model, got %s" % type(h1).__name__)
        if not callable(h2):
            raise TypeError("h2 must be a callable model, got %s" % type(h2).__name__)
        self.h1 = h1
        self.h2 = h2
        self.lambda_c = _check_lambda(lambda_c, type(self).__name__)
        self.discriminant_pivot = 0.5
        self.num_classes = None
        if self._kind == _BCE:
            # BCML's code read discriminant_pivit; its docs spell it discriminan_pivot
            given = [k for k in ("discriminant_pivot", "discriminan_pivot", "discriminant_pivit") if k in kwargs]
            if len(given) > 1:
                raise TypeError("give one of discriminant_pivot / discriminan_pivot / discriminant_pivit, not %s"
                                % " and ".join(given))
            pivot = kwargs.pop(given[0]) if given else 0.5
            self.discriminant_pivot = _check_pivot(pivot, type(self).__name__)
        if self._kind == _KL:
            nc = kwargs.pop("num_classes", None)
            if nc is not None:
                nc = _values.index(nc, type(self).__name__, "num_classes")
                if nc < 1:
                    raise ValueError("num_classes must be a positive integer, got %r" % (nc,))
            self.num_classes = nc
        if kwargs:
            raise TypeError("%s got unexpected keyword argument(s): %s"
                            % (type(self).__name__, ", ".join(sorted(kwargs))))

    # ---- helpers ---------------------------------------------------------------------------
    def _reduction(self, reduction):
        if not isinstance(reduction, str):
            raise TypeError("reduction must be 'none', 'mean' or 'sum', not %s" % type(reduction).__name__)
        if self._kind == _KL and reduction == "batchmean":
            reduction = "mean"
        if reduction not in _REDUCTIONS:
            allowed = ["none", "mean", "sum"] + (["batchmean"] if self._kind == _KL else [])
            raise ValueError("reduction must be one of %s, got %r" % (", ".join(map(repr, allowed)), reduction))
        return _REDUCTIONS[reduction]

    def _target(self, y, batch):
        from .._tensor import _scalar
        fname = type(self).__name__
        if _scalar(y):
            raise TypeError("%s(): argument 'y' must be a tensor of labels, not %s" % (fname, type(y).__name__))
        y = as_tensor_arg(y, "y", fname=fname)
        if y.ndim != 1 or (batch is not None and y.shape[0] != batch):
            raise ValueError("%s(): argument 'y' (the targets) must have shape (B,) = (%s,), B the batch size of x; "
                             "got %s" % (fname, batch, tuple(y.shape)))
        dt = y._dtype_name
        prev = _core.record_pause(True)  # a check, not part of a recorded step's computation
        try:
            self._check_target_values(y.detach().numpy(), dt)
        finally:
            _core.record_pause(prev)
        if self._kind == _BCE:
            return y if dt == "float32" else y.float()
        return y

    def _check_target_values(self, yn, dt):
        if self._kind == _BCE:
            bad = (yn != 0) & (yn != 1)
            if bad.any():
                raise ValueError("y (the target) must hold 0/1 labels for a binary loss, got %r" % (yn[bad][0].item(),))
            return
        if dt != "int64":
            raise TypeError("y (the target) must hold integer class labels (int64), got %s" % dt)
        if yn.size and yn.min() < 0:
            raise ValueError("y (the target): class labels must be >= 0, got %d" % int(yn.min()))
        if self.num_classes is not None and yn.size and yn.max() >= self.num_classes:
            raise ValueError("y (the target): labels must lie in [0, num_classes=%d), got %d"
                             % (self.num_classes, int(yn.max())))

    def _element(self, out, who):
        """The tensor the loss consumes from a model output (or a cached output)."""
        if self._kind == _BCE:
            if isinstance(out, (tuple, list)):
                raise TypeError("%s must return one probability per sample for a binary loss, got a %s of %d"
                                % (who, type(out).__name__, len(out)))
            if not isinstance(out, _core.TensorBase):
                raise TypeError("%s must return a bcml tensor of probabilities, got %s" % (who, type(out).__name__))
            if out._dtype_name != "float32":
                raise TypeError("%s: probabilities must be a float32 tensor, got %s" % (who, out._dtype_name))
            if out.ndim == 2 and out.shape[1] == 1:
                out = out.reshape(-1)
            if out.ndim != 1:
                raise ValueError("%s output must have shape (B,) or (B, 1) for a binary loss, got %s"
                                 % (who, tuple(out.shape)))
            return out
        if isinstance(out, (tuple, list)):
            if len(out) != 3:
                raise TypeError("%s must return the triple (logits, softmax, log_softmax), got a %s of %d"
                                % (who, type(out).__name__, len(out)))
            out = out[_TRIPLE_INDEX[self._kind]]
        elif who.startswith("h2") or not isinstance(out, _core.TensorBase):
            raise TypeError("%s must return the triple (logits, softmax, log_softmax), got %s"
                            % (who, type(out).__name__))
        if not isinstance(out, _core.TensorBase):
            raise TypeError("%s's %s must be a bcml tensor, got %s"
                            % (who, _ELEMENT_NAME[self._kind], type(out).__name__))
        if out._dtype_name != "float32":
            raise TypeError("%s's %s must be a float32 tensor, got %s" % (who, _ELEMENT_NAME[self._kind], out._dtype_name))
        if out.ndim != 2:
            raise ValueError("%s's %s must have shape (B, C), got %s"
                             % (who, _ELEMENT_NAME[self._kind], tuple(out.shape)))
        if self.num_classes is not None and out.shape[1] != self.num_classes:
            raise ValueError("%s's output has %d classes, num_classes is %d" % (who, out.shape[1], self.num_classes))
        return out

    def _model(self, h, x, who):
        """h(x); a TypeError/ValueError inside names the argument x it was given."""
        return call_named(lambda e: "%s(x) on argument 'x' of shape %s: %s"
                          % (who, tuple(x.shape) if isinstance(x, _core.TensorBase) else type(x).__name__, e), h, x)

    def _compute(self, x, y, reduction, h1_output, h1_outputs, dissonance_only):
        red = self._reduction(reduction)
        if h1_output is not None and h1_outputs is not None:
            raise TypeError("give h1_output or h1_outputs, not both")
        cache_name = "h1_output" if h1_output is not None else "h1_outputs"
        cache = h1_output if h1_output is not None else h1_outputs
        batch = x.shape[0] if isinstance(x, _core.TensorBase) and x.ndim > 0 else None
        y = self._target(y, batch)
        if cache is not None:
            x1 = self._element(cache, cache_name)
        else:
            with no_grad():
                x1 = self._element(self._model(self.h1, x, "h1"), "h1")
        x1 = x1.detach()
        if x1.shape[0] != y.shape[0]:
            raise ValueError("%s has %d samples, y (the target) has %d"
                             % (cache_name if cache is not None else "h1(x)", x1.shape[0], y.shape[0]))
        x2 = self._element(self._model(self.h2, x, "h2"), "h2")
        if tuple(x2.shape) != tuple(x1.shape):
            raise ValueError("%s shape %s differs from h2 output shape %s"
                             % (cache_name if cache is not None else "h1(x)", tuple(x1.shape), tuple(x2.shape)))
        return _core.apply(OPS["compat_loss"], (x2, y, x1),
                           (self._kind, self._strict, red, int(dissonance_only)),
                           (self.lambda_c, self.discriminant_pivot))

    # ---- public ----------------------------------------------------------------------------
    def __call__(self, x, y, reduction="mean", h1_output=None, h1_outputs=None):
        """base + lambda_c * dissonance; a scalar tensor (reduction "mean"/"sum") or the
        per-sample vector ("none"). h1_output(s): precomputed h1 outputs (triple or element)."""
        return self._compute(x, y, reduction, h1_output, h1_outputs, False)

    def dissonance(self, x, y, reduction="mean", h1_output=None, h1_outputs=None):
        """(1/B) sum over i in S of d_i (no base term, no lambda_c)."""
        return self._compute(x, y, reduction, h1_output, h1_outputs, True)

    def __repr__(self):
        return "%s(lambda_c=%r)" % (type(self).__name__, self.lambda_c)


class BCNLLLoss(_CompatibilityLoss):
    """New-error NLL loss on h2's log-softmax: -logp2[y] + lambda_c [S] (-logp2[y])."""
    _kind, _strict = _NLL, 0


class BCCrossEntropyLoss(_CompatibilityLoss):
    """New-error cross-entropy on h2's logits."""
    _kind, _strict = _CE, 0


class BCBinaryCrossEntropyLoss(_CompatibilityLoss):
    """New-error binary cross-entropy on h2's probability; discriminant_pivot=0.5 defines S."""
    _kind, _strict = _BCE, 0


class BCKLDivergenceLoss(_CompatibilityLoss):
    """New-error KL(onehot(y) || p2) = -logp2[y]; num_classes optional (checked when given)."""
    _kind, _strict = _KL, 0


class StrictImitationNLLLoss(_CompatibilityLoss):
    """NLL base; on S the soft cross-entropy -sum_c p1[c] logp2[c]."""
    _kind, _strict = _NLL, 1


class StrictImitationCrossEntropyLoss(_CompatibilityLoss):
    """Cross-entropy base; on S the soft cross-entropy of softmax(logits1) vs logits2."""
    _kind, _strict = _CE, 1


class StrictImitationBinaryCrossEntropyLoss(_CompatibilityLoss):
    """Binary CE base; on S -[p1 log p2 + (1 - p1) log(1 - p2)]."""
    _kind, _strict = _BCE, 1


class StrictImitationKLDivergenceLoss(_CompatibilityLoss):
    """-logp2[y] base; on S KL(p1 || p2)."""
    _kind, _strict = _KL, 1


from . import new_error, strict_imitation  # noqa: E402,F401  (BCML's module names)
