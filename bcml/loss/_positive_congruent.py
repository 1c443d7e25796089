"""Positive-congruent compatibility losses (issue 13, item 5), computed by one fused C op (pc_loss).

Both take h2's logits and h1's logits (h1 never differentiated) and add a penalty to h2's
cross-entropy:

    loss = (1/B) sum_i [ CE(z2_i, y_i) + lambda_c * pen_i ]

* FocalDistillationLoss (Yan et al., "Positive-Congruent Training", CVPR 2021):
  pen_i = (alpha + beta [argmax z1_i == y_i]) D_i, with
  kind="kl": D_i = T^2 KL(softmax(z1_i / T) || softmax(z2_i / T)) (Hinton's T^2 keeps the
  gradient's scale across temperatures; the authors' implementation applies it too), or
  kind="l2": D_i = (1/C) sum_c (z2_ic - z1_ic)^2 (the mean squared logit difference: the
  authors' implementation's MSE, "logit matching").
* LogitDifferenceInhibitionLoss (Zhao et al., "ELODI", CVPR 2022):
  pen_i = (sum over K_i of max(0, |z2_ik - z1_ik| - margin)^p)^(1/p), the p-norm of the hinged
  differences over K_i, the top_k classes of h1's logits z1_i (every class when top_k is None;
  ties go to the lower class index; as the authors' code with use_p_norm). With margin = 0 and
  p = 2 over every class this is the L2 distance of the logits (sqrt(C D_i), D_i as l2 above); the
  margin leaves differences up to it unpenalised, as LDI inhibits large logit changes without
  forcing the logits to coincide. h1 may be a list of models: an ensemble whose mean logits are
  z1 (ELODI's reference model).

The calling convention is the other compatibility losses': ``loss(x, y, reduction="mean",
h1_output=None)`` runs h1 (under no_grad, or reads h1_output, its cached outputs) and h2 on x;
models return the triple (logits, softmax, log_softmax) (h1 may also return its logits alone).
``dissonance_from_inputs(x, y)`` gives the penalty term alone, (1/B) sum_i pen_i.
"""
import numbers

from .. import _core, _values
from .._tensor import OPS
from .._values import FLT_MAX
from ..nn import functional as F
from . import _CE, _CompatibilityLoss, _check_lambda, _loss_setting

_PK_FD_KL, _PK_FD_L2, _PK_LDI = 0, 1, 2


def _nonneg(value, fname, name):
    return _loss_setting(value, fname, name, "finite and >= 0",
                         "finite, >= 0 and within float32's range (<= %g)" % FLT_MAX, nonneg=True)


def _check_models(h1, h2, fname):
    if not callable(h2):
        raise TypeError("%s: h2 must be a callable model, got %s" % (fname, type(h2).__name__))
    if not callable(h1):
        raise TypeError("%s: h1 must be a callable model, got %s" % (fname, type(h1).__name__))


class _PositiveCongruentLoss(_CompatibilityLoss):
    """Base: h2's cross-entropy on its logits plus lambda_c times a penalty (pc_loss)."""
    _kind, _strict = _CE, 0
    _pk = _PK_FD_KL

    def _init_common(self, h1, h2, lambda_c):
        fname = type(self).__name__
        _check_models(h1, h2, fname)
        self.h1 = h1
        self.h2 = h2
        self.lambda_c = _check_lambda(lambda_c, fname)
        self.discriminant_pivot = 0.5
        self.num_classes = None

    def _settings(self, C):
        """(pc_loss kind, top_k, f[1], f[2], f[3]) for logits of C classes."""
        raise NotImplementedError

    def _element(self, out, who):
        """The logits; a binary model's one probability per sample is refused by name."""
        if isinstance(out, _core.TensorBase) and out.ndim == 1:
            raise ValueError("%s needs multi-class logits (B, C): %s has shape %s (a binary model's "
                             "probabilities?); the models must return (logits, softmax, log_softmax)"
                             % (type(self).__name__, who, tuple(out.shape)))
        return _CompatibilityLoss._element(self, out, who)

    def _op(self, x2, y, x1, red, dissonance_only):
        kind, top_k, f1, f2, f3 = self._settings(int(x2.shape[1]))
        y = self._checked_labels(y, "y (the target)", False, int(x2.shape[1]))  # names y when out of range
        return _core.apply(OPS["pc_loss"], (x2, y, x1), (kind, red, top_k, int(dissonance_only)),
                           (self.lambda_c, f1, f2, f3))

    def dissonance_from_inputs(self, x, y, reduction="mean", h1_output=None, h1_outputs=None):
        """The penalty term alone, (1/B) sum_i pen_i (no cross-entropy, no lambda_c): runs h1
        (or reads its cache) and h2 on x as forward does."""
        return self._compute(x, y, reduction, h1_output, h1_outputs, True)


class FocalDistillationLoss(_PositiveCongruentLoss):
    """Focal distillation (positive-congruent training, Yan et al., CVPR 2021):
    CE(h2) + lambda_c (1/B) sum_i (alpha + beta [h1 right on i]) D_i, D_i = T^2
    KL(softmax(z1/T) || softmax(z2/T)) (kind="kl") or the mean over classes of (z2 - z1)^2
    (kind="l2"; temperature unused). h1 is not differentiated."""

    def __init__(self, h1, h2, lambda_c, alpha=1.0, beta=5.0, kind="kl", temperature=1.0):
        fname = type(self).__name__
        self._init_common(h1, h2, lambda_c)
        self.alpha = _nonneg(alpha, fname, "alpha")
        self.beta = _nonneg(beta, fname, "beta")
        if not isinstance(kind, str):
            raise TypeError("%s: kind must be 'kl' or 'l2', not %s" % (fname, type(kind).__name__))
        if kind not in ("kl", "l2"):
            raise ValueError("%s: kind must be 'kl' or 'l2', got %r" % (fname, kind))
        self.kind = kind
        t = _loss_setting(temperature, fname, "temperature", "finite and > 0",
                          "finite, > 0 and within float32's range (<= %g)" % FLT_MAX, nonneg=True)
        if not t > 0:
            raise ValueError("%s: temperature must be finite and > 0, got %r" % (fname, temperature))
        self.temperature = t

    def _settings(self, C):
        return (_PK_FD_KL if self.kind == "kl" else _PK_FD_L2), 0, self.alpha, self.beta, self.temperature

    def __repr__(self):
        return "%s(lambda_c=%r, alpha=%r, beta=%r, kind=%r, temperature=%r)" % (
            type(self).__name__, self.lambda_c, self.alpha, self.beta, self.kind, self.temperature)


class _Ensemble:
    """Models whose mean logits act as one model h1: returns (mean logits, softmax,
    log_softmax). Each member returns the triple or its logits (B, C)."""

    def __init__(self, models):
        self.models = list(models)

    def __call__(self, x):
        total, shape = None, None
        for k, m in enumerate(self.models):
            out = m(x)
            z = out[0] if isinstance(out, (tuple, list)) and len(out) == 3 else out
            if not isinstance(z, _core.TensorBase) or z._dtype_name != "float32" or z.ndim != 2:
                raise TypeError("h1[%d] must return the triple (logits, softmax, log_softmax) or float32 logits "
                                "(B, C), got %s" % (k, type(out).__name__ if not isinstance(z, _core.TensorBase)
                                                    else "%s %s" % (z._dtype_name, tuple(z.shape))))
            if shape is not None and tuple(z.shape) != shape:
                raise ValueError("h1[%d]'s logits have shape %s, h1[0]'s %s" % (k, tuple(z.shape), shape))
            shape = tuple(z.shape)
            total = z if total is None else total + z
        z = total * (1.0 / len(self.models))
        return z, F.softmax(z, 1), F.log_softmax(z, 1)

    def modules(self):
        for m in self.models:
            if callable(getattr(m, "modules", None)):
                yield from m.modules()

    def parameters(self):
        for m in self.models:
            if callable(getattr(m, "parameters", None)):
                yield from m.parameters()

    def train(self, mode=True):
        for m in self.models:
            if callable(getattr(m, "train", None)):
                m.train(mode)
        return self

    def eval(self):
        return self.train(False)

    def __repr__(self):
        return "Ensemble(%d models)" % len(self.models)


class LogitDifferenceInhibitionLoss(_PositiveCongruentLoss):
    """Logit-difference inhibition (ELODI, Zhao et al., CVPR 2022): CE(h2) + lambda_c (1/B)
    sum_i (sum_{k in K_i} max(0, |z2_ik - z1_ik| - margin)^p)^(1/p) (the p-norm of the hinged
    differences; its gradient is 0 where they all are), K_i the top_k classes of h1's logits
    (every class for None). h1 is one model or a list of models (an ensemble: their mean
    logits); it is not differentiated. p is a real number >= 1 (the paper uses 2)."""

    def __init__(self, h1, h2, lambda_c, p=2, margin=0.0, top_k=None):
        fname = type(self).__name__
        if isinstance(h1, (list, tuple)):
            if not h1:
                raise ValueError("%s: h1 must be a model or a non-empty list of models, got an empty %s"
                                 % (fname, type(h1).__name__))
            for k, m in enumerate(h1):
                if not callable(m):
                    raise TypeError("%s: h1[%d] must be a callable model, got %s" % (fname, k, type(m).__name__))
            h1 = h1[0] if len(h1) == 1 else _Ensemble(h1)
        self._init_common(h1, h2, lambda_c)
        pv = _loss_setting(p, fname, "p", "finite and >= 1", "finite, >= 1 and within float32's range (<= %g)"
                           % FLT_MAX, nonneg=True)
        if not pv >= 1.0:
            raise ValueError("%s: p must be finite and >= 1, got %r" % (fname, p))
        self.p = pv
        self.margin = _nonneg(margin, fname, "margin")
        if top_k is not None:
            if isinstance(top_k, bool) or not isinstance(top_k, numbers.Integral):
                raise TypeError("%s: top_k must be a positive int or None, got %s" % (fname, type(top_k).__name__))
            top_k = _values.index(top_k, fname, "top_k")   # ValueError beyond int64
            if top_k < 1:
                raise ValueError("%s: top_k must be a positive int or None, got %r" % (fname, top_k))
        self.top_k = top_k

    @property
    def ensemble(self):
        """h1's members when h1 is an ensemble, else None."""
        return self.h1.models if isinstance(self.h1, _Ensemble) else None

    def _settings(self, C):
        if self.top_k is not None and self.top_k > C:
            raise ValueError("%s: top_k=%d exceeds the number of classes C=%d of the models' logits"
                             % (type(self).__name__, self.top_k, C))
        return _PK_LDI, (0 if self.top_k is None else self.top_k), self.p, self.margin, 1.0

    def __repr__(self):
        return "%s(lambda_c=%r, p=%r, margin=%r, top_k=%r)" % (type(self).__name__, self.lambda_c, self.p,
                                                                self.margin, self.top_k)
