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

import numpy as np

from .. import _core, _labels, _values
from .._autograd import no_grad
from .._tensor import OPS, _apply, _scalar, as_tensor_arg
from .._values import FLT_MAX, call_named
from ..nn import functional as F

__all__ = ["BCNLLLoss", "BCCrossEntropyLoss", "BCBinaryCrossEntropyLoss", "BCKLDivergenceLoss",
           "StrictImitationNLLLoss", "StrictImitationCrossEntropyLoss",
           "StrictImitationBinaryCrossEntropyLoss", "StrictImitationKLDivergenceLoss",
           "FocalDistillationLoss", "LogitDifferenceInhibitionLoss"]

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


def _binary_check(yn, who):
    bad = (yn != 0) & (yn != 1)
    if bad.any():
        i = np.unravel_index(int(np.argmax(bad)), bad.shape)
        raise ValueError("%s must hold 0/1 labels for a binary loss, got %r at index %s"
                         % (who, yn[i].item(), i[0] if len(i) == 1 else tuple(map(int, i))))


def _label_arg(y, fname, argname, who, binary):
    """A labels argument as a tensor. A float NumPy array (or a list of floats) other than
    float32 is checked before it becomes a float32 tensor (which could round 2.0000001 to 2)."""
    if _scalar(y):
        raise TypeError("%s(): argument '%s' must be a tensor of labels, not %s" % (fname, argname, type(y).__name__))
    if isinstance(y, (list, tuple)):
        try:
            a = np.asarray(y)
        except (TypeError, ValueError):
            a = None  # as_tensor_arg names what is wrong with it
        if a is not None and a.dtype.kind == "f":
            y = a
    if isinstance(y, np.ndarray) and y.dtype.kind == "f" and y.dtype != np.float32:
        if binary:
            _binary_check(y, who)
            y = y.astype(np.float32)
        else:
            y = _labels.integral(y, who)
    return as_tensor_arg(y, argname, fname=fname)


def _where(cond, a, fill):
    """a where cond, fill (a number) elsewhere."""
    return _apply(OPS["where"], (cond, a, as_tensor_arg(fill, like=a)), (), ())


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
        fname = type(self).__name__
        binary = self._kind == _BCE
        y = _label_arg(y, fname, "y", "y (the target)", binary)
        if binary and y.ndim == 2 and y.shape[1] == 1:
            y = y.reshape(-1)  # (B, 1) targets as (B,), as a binary model's (B, 1) output
        if y.ndim != 1 or (batch is not None and y.shape[0] != batch):
            raise ValueError("%s(): argument 'y' (the targets) must have shape (B,)%s = (%s,), B the batch size of x; "
                             "got %s" % (fname, " or (B, 1)" if binary else "", batch, tuple(y.shape)))
        return self._checked_labels(y, "y (the target)", binary)

    def _checked_labels(self, y, who, binary, width=None):
        """1-D labels y checked (0/1 for a binary loss, else class labels in [0, width) and
        [0, num_classes)): float32 0/1 targets for a binary loss, int64 labels otherwise. A
        float tensor of integral labels is converted by a tensor op (a recorded step replays
        it on every batch); the values are checked outside the recording."""
        dt = y._dtype_name
        prev = _core.record_pause(True)  # a check, not part of a recorded step's computation
        try:
            yn = y.detach().numpy()
            if binary:
                _binary_check(yn, who)
            else:
                if dt == "float32":
                    yn = _labels.integral(yn, who)
                elif dt != "int64":
                    raise TypeError("%s must hold integer class labels, got %s" % (who, dt))
                if yn.size and yn.min() < 0:
                    raise ValueError("%s: class labels must be >= 0, got %d" % (who, int(yn.min())))
                for n, what in ((width, "the number of classes %d"), (self.num_classes, "num_classes=%d")):
                    if n is not None and yn.size and yn.max() >= n:
                        raise ValueError("%s: labels must lie in [0, %s), got %d" % (who, what % n, int(yn.max())))
        finally:
            _core.record_pause(prev)
        if binary:
            return y if dt == "float32" else y.float()
        return y if dt == "int64" else y.long()

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
        return self._op(x2, y, x1, red, dissonance_only)

    def _op(self, x2, y, x1, red, dissonance_only):
        """The fused C op on the checked outputs (h2's element, labels, h1's element)."""
        return _core.apply(OPS["compat_loss"], (x2, y, x1),
                           (self._kind, self._strict, red, int(dissonance_only)),
                           (self.lambda_c, self.discriminant_pivot))

    # ---- dissonance over given outputs -----------------------------------------------------
    def _fname(self):
        return "%s.dissonance" % type(self).__name__

    def _float_arg(self, v, argname, what):
        """A float32 tensor argument of dissonance (a tensor, or a list/array converted)."""
        fname = self._fname()
        if _scalar(v) or not isinstance(v, (_core.TensorBase, list, tuple, np.ndarray)):
            raise TypeError("%s(): argument '%s' must be a float32 tensor of %s, not %s"
                            % (fname, argname, what, type(v).__name__))
        t = as_tensor_arg(v, argname, fname=fname)
        if t._dtype_name != "float32":
            raise TypeError("%s(): argument '%s' must be a float32 tensor of %s, got %s"
                            % (fname, argname, what, t._dtype_name))
        return fname, t

    def _dist_arg(self, v, argname, rows=None, cols=None, other=None):
        """A (B, C) float32 tensor argument of dissonance (outputs or a distribution)."""
        fname, t = self._float_arg(v, argname, "shape (B, C)")
        if t.ndim != 2:
            raise ValueError("%s(): argument '%s' must have shape (B, C), got %s" % (fname, argname, tuple(t.shape)))
        if self.num_classes is not None and t.shape[1] != self.num_classes:
            raise ValueError("%s(): argument '%s' has %d classes, num_classes is %d"
                             % (fname, argname, t.shape[1], self.num_classes))
        if rows is not None and (t.shape[0], t.shape[1]) != (rows, cols):
            raise ValueError("%s(): argument '%s' of shape %s does not match argument '%s' of shape (%d, %d)"
                             % (fname, argname, tuple(t.shape), other, rows, cols))
        return t

    def _prob_arg(self, v, argname, rows=None, other=None):
        """One probability per sample, (B,) or (B, 1) (flattened), float32 in [0, 1]."""
        fname, t = self._float_arg(v, argname, "probabilities")
        if t.ndim == 2 and t.shape[1] == 1:
            t = t.reshape(-1)
        if t.ndim != 1:
            raise ValueError("%s(): argument '%s' must have shape (B,) or (B, 1), got %s"
                             % (fname, argname, tuple(v.shape) if hasattr(v, "shape") else tuple(t.shape)))
        if rows is not None and t.shape[0] != rows:
            raise ValueError("%s(): argument '%s' has %d samples, argument '%s' has %d"
                             % (fname, argname, t.shape[0], other, rows))
        prev = _core.record_pause(True)
        try:
            a = t.detach().numpy()
            bad = ~((a >= 0) & (a <= 1))
            if bad.any():
                i = int(np.argmax(bad))
                raise ValueError("%s(): argument '%s' must hold probabilities in [0, 1], got %r at index %d"
                                 % (fname, argname, a[i].item(), i))
        finally:
            _core.record_pause(prev)
        return t

    def _labels_arg(self, v, argname, rows, cols=None, other=None):
        """Labels, one per sample: (B,) (binary: also (B, 1)); floats holding integers are
        accepted. int64 labels in [0, cols), or float32 0/1 targets for a binary loss."""
        fname = self._fname()
        binary = self._kind == _BCE
        who = "%s(): argument '%s'" % (fname, argname)
        t = _label_arg(v, fname, argname, who, binary)
        if binary and t.ndim == 2 and t.shape[1] == 1:
            t = t.reshape(-1)
        if t.ndim != 1:
            raise ValueError("%s must have shape (B,)%s, got %s" % (who, " or (B, 1)" if binary else "", tuple(t.shape)))
        if t.shape[0] != rows:
            raise ValueError("%s has %d samples, argument '%s' has %d" % (who, t.shape[0], other, rows))
        return self._checked_labels(t, who, binary, cols)

    def _labels_or_dist(self, v, argname, rows, cols, other):
        """Labels (B,), taken as one-hot rows, or a distribution (B, C): (labels, None) or
        (None, distribution)."""
        if isinstance(v, (_core.TensorBase, np.ndarray)) and v.ndim == 2:
            return None, self._dist_arg(v, argname, rows, cols, other)
        return self._labels_arg(v, argname, rows, cols, other), None

    def _dissonance_reduction(self, reduction):
        """dissonance's reduction: "mean" over the samples given (NaN for none, as PyTorch's
        mean), "sum", or "none"; "batchmean" is "mean" for the KL losses."""
        return {0: "none", 1: "mean", 2: "sum"}[self._reduction(reduction)]

    @staticmethod
    def _reduce_samples(d, reduction):
        return d if reduction == "none" else d.mean() if reduction == "mean" else d.sum()

    # ---- public ----------------------------------------------------------------------------
    def forward(self, x, y, reduction="mean", h1_output=None, h1_outputs=None):
        """base + lambda_c * dissonance; a scalar tensor (reduction "mean"/"sum") or the
        per-sample vector ("none"). h1_output(s): precomputed h1 outputs (triple or element)."""
        return self._compute(x, y, reduction, h1_output, h1_outputs, False)

    def __call__(self, x, y, reduction="mean", h1_output=None, h1_outputs=None):
        """self.forward(x, y, reduction, ...), as an nn.Module's call runs forward."""
        cache = {} if h1_output is None else {"h1_output": h1_output}
        if h1_outputs is not None:
            cache["h1_outputs"] = h1_outputs
        return self.forward(x, y, reduction=reduction, **cache)

    def dissonance_from_inputs(self, x, y, reduction="mean", h1_output=None, h1_outputs=None):
        """The compatibility term alone from the inputs, (1/B) sum over i in S of d_i (no base
        term, no lambda_c): runs h1 (or reads its cache) and h2 on x as forward does."""
        return self._compute(x, y, reduction, h1_output, h1_outputs, True)

    def __repr__(self):
        return "%s(lambda_c=%r)" % (type(self).__name__, self.lambda_c)


_DISSONANCE_DOC = """

    ``dissonance(...)`` takes BCML's documented arguments and gives this loss's compatibility
    term d_i (SPEC section 3) over the samples given, every one counted (BCML's forward passes
    the samples h1 gets right): reduction "mean" (over those samples), "sum" or "none".
    ``dissonance_from_inputs(x, y)`` is the term as forward computes it from the inputs.
"""


class BCNLLLoss(_CompatibilityLoss):
    """New-error NLL loss on h2's log-softmax: -logp2[y] + lambda_c [S] (-logp2[y])."""
    _kind, _strict = _NLL, 0

    def dissonance(self, h2_output_log_softmax, target_labels, reduction="mean"):
        """-logp2[y] per sample (F.nll_loss of the samples given)."""
        reduction = self._dissonance_reduction(reduction)
        lp = self._dist_arg(h2_output_log_softmax, "h2_output_log_softmax")
        y = self._labels_arg(target_labels, "target_labels", lp.shape[0], lp.shape[1], "h2_output_log_softmax")
        return self._reduce_samples(F.nll_loss(lp, y, reduction="none"), reduction)


class BCCrossEntropyLoss(_CompatibilityLoss):
    """New-error cross-entropy on h2's logits."""
    _kind, _strict = _CE, 0

    def dissonance(self, h2_output_logit, target_labels, reduction="mean"):
        """Cross-entropy of h2's logits at the labels per sample (F.cross_entropy)."""
        reduction = self._dissonance_reduction(reduction)
        z = self._dist_arg(h2_output_logit, "h2_output_logit")
        y = self._labels_arg(target_labels, "target_labels", z.shape[0], z.shape[1], "h2_output_logit")
        return self._reduce_samples(F.cross_entropy(z, y, reduction="none"), reduction)


class BCBinaryCrossEntropyLoss(_CompatibilityLoss):
    """New-error binary cross-entropy on h2's probability; discriminant_pivot=0.5 defines S."""
    _kind, _strict = _BCE, 0

    def dissonance(self, h2_support_output_sigmoid, target_labels, reduction="mean"):
        """-[t log p2 + (1 - t) log(1 - p2)] per sample, t the 0/1 targets (F.binary_cross_entropy;
        (B,) and (B, 1) alike for both)."""
        reduction = self._dissonance_reduction(reduction)
        p = self._prob_arg(h2_support_output_sigmoid, "h2_support_output_sigmoid")
        t = self._labels_arg(target_labels, "target_labels", p.shape[0], other="h2_support_output_sigmoid")
        return self._reduce_samples(F.binary_cross_entropy(p, t, reduction="none"), reduction)


class BCKLDivergenceLoss(_CompatibilityLoss):
    """New-error KL(onehot(y) || p2) = -logp2[y]; num_classes optional (checked when given)."""
    _kind, _strict = _KL, 0

    def dissonance(self, h2_output_log_softmax, target_labels, reduction="mean"):
        """KL(q || p2) per sample, q = onehot(target_labels) (= -logp2[y]), or target_labels as
        a distribution (B, C)."""
        reduction = self._dissonance_reduction(reduction)
        lp = self._dist_arg(h2_output_log_softmax, "h2_output_log_softmax")
        y, q = self._labels_or_dist(target_labels, "target_labels", lp.shape[0], lp.shape[1], "h2_output_log_softmax")
        d = F.nll_loss(lp, y, reduction="none") if q is None else F.kl_div(lp, q, reduction="none").sum(1)
        return self._reduce_samples(d, reduction)


class StrictImitationNLLLoss(_CompatibilityLoss):
    """NLL base; on S the soft cross-entropy -sum_c p1[c] logp2[c]."""
    _kind, _strict = _NLL, 1

    def dissonance(self, h1_output_logsoftmax, h2_output_logsoftmax, reduction="mean"):
        """Soft cross-entropy -sum_c p1[c] logp2[c] per sample, p1 = exp(h1's log-softmax)."""
        reduction = self._dissonance_reduction(reduction)
        l1 = self._dist_arg(h1_output_logsoftmax, "h1_output_logsoftmax")
        l2 = self._dist_arg(h2_output_logsoftmax, "h2_output_logsoftmax", l1.shape[0], l1.shape[1],
                            "h1_output_logsoftmax")
        return self._reduce_samples(-(l1.exp() * l2).sum(1), reduction)


class StrictImitationCrossEntropyLoss(_CompatibilityLoss):
    """Cross-entropy base; on S the soft cross-entropy of softmax(logits1) vs logits2."""
    _kind, _strict = _CE, 1

    def dissonance(self, h1_output_labels, h2_output_logit, reduction="mean"):
        """Soft cross-entropy -sum_c q[c] log_softmax(logits2)[c] per sample, q = onehot(h1's
        labels) (= F.cross_entropy at them), or h1_output_labels as a distribution (B, C)
        (softmax of h1's logits: what forward imitates)."""
        reduction = self._dissonance_reduction(reduction)
        z = self._dist_arg(h2_output_logit, "h2_output_logit")
        y, q = self._labels_or_dist(h1_output_labels, "h1_output_labels", z.shape[0], z.shape[1], "h2_output_logit")
        d = F.cross_entropy(z, y, reduction="none") if q is None else -(q * F.log_softmax(z, 1)).sum(1)
        return self._reduce_samples(d, reduction)


class StrictImitationBinaryCrossEntropyLoss(_CompatibilityLoss):
    """Binary CE base; on S -[p1 log p2 + (1 - p1) log(1 - p2)]."""
    _kind, _strict = _BCE, 1

    def dissonance(self, h1_output_sigmoid, h2_output_sigmoid, reduction="mean"):
        """-[p1 log p2 + (1 - p1) log(1 - p2)] per sample (F.binary_cross_entropy of p2 against
        the soft target p1; (B,) and (B, 1) alike)."""
        reduction = self._dissonance_reduction(reduction)
        p1 = self._prob_arg(h1_output_sigmoid, "h1_output_sigmoid")
        p2 = self._prob_arg(h2_output_sigmoid, "h2_output_sigmoid", p1.shape[0], "h1_output_sigmoid")
        return self._reduce_samples(F.binary_cross_entropy(p2, p1, reduction="none"), reduction)


class StrictImitationKLDivergenceLoss(_CompatibilityLoss):
    """-logp2[y] base; on S KL(p1 || p2)."""
    _kind, _strict = _KL, 1

    def dissonance(self, h1_output_prob, h2_output_prob, reduction="mean"):
        """KL(p1 || p2) = sum_c p1[c] (log p1[c] - log p2[c]) per sample, from probabilities
        (terms with p1[c] = 0 count 0, also where p2[c] = 0)."""
        reduction = self._dissonance_reduction(reduction)
        p1 = self._dist_arg(h1_output_prob, "h1_output_prob")
        p2 = self._dist_arg(h2_output_prob, "h2_output_prob", p1.shape[0], p1.shape[1], "h1_output_prob")
        # log p2 read only where p1 > 0 (elsewhere log 1 = 0, and a zero gradient)
        lp2 = _where(p1 > 0, p2, 1.0).log()
        return self._reduce_samples(F.kl_div(lp2, p1, reduction="none").sum(1), reduction)


for _cls in (BCNLLLoss, BCCrossEntropyLoss, BCBinaryCrossEntropyLoss, BCKLDivergenceLoss, StrictImitationNLLLoss,
             StrictImitationCrossEntropyLoss, StrictImitationBinaryCrossEntropyLoss, StrictImitationKLDivergenceLoss):
    _cls.__doc__ += _DISSONANCE_DOC
del _cls

from ._positive_congruent import FocalDistillationLoss, LogitDifferenceInhibitionLoss  # noqa: E402
from . import new_error, strict_imitation  # noqa: E402,F401  (BCML's module names)
