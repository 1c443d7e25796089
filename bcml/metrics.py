"""Performance metrics of a model on a data set (backwardcompatibilityml.metrics).

A data set is a list of ``(x, y)`` or ``(ids, x, y)`` batches, or a ``bcml.data.DataLoader``.
The model is run once over it, in the mode it is in, under no_grad (``bcml._engine.predict``);
its predicted label is the argmax of its logits, or ``probability >= 0.5`` for a binary model
(output (B,) or (B, 1)). Counts are pooled over the whole data set (BCML averaged the
accuracies of the batches, which weighs a short last batch as much as a full one).

Array metrics with scikit-learn's names, argument order and semantics, from predictions (no
model): :func:`roc_auc_score` and :func:`log_loss`.
"""
import itertools
import warnings

import numpy as np

from . import _checks
from ._engine import as_dataset, predict
from .scores import count_table

__all__ = ["model_accuracy", "model_accuracy_by_class", "model_balanced_accuracy", "model_roc_auc",
           "roc_auc_score", "log_loss"]


def _labelled(model, dataset, device, who="model"):
    """(predicted labels, true labels, number of classes) of model over dataset."""
    _checks.check_device(device)
    _checks.check_model(model, who)
    data = as_dataset(dataset, "dataset")
    outputs, y, _ids = predict(model, data, who)
    binary, width = _checks.outputs_kind(outputs)
    y = _checks.check_targets(y, binary, width, "dataset")
    return outputs.labels(), y, _checks.num_classes(binary, width)


def model_accuracy(model, dataset, device="cpu"):
    """The share of the data set's samples the model labels correctly (a float).

    Usable as the ``performance_metric`` of the training helpers and the sweep."""
    labels, y, C = _labelled(model, dataset, device)
    table = count_table(labels, labels, y, num_classes=C)
    return float(table[:, 0].sum()) / float(len(y))


def model_accuracy_by_class(model, dataset, device="cpu"):
    """``[{"class": c, "accuracy": a}, ...]`` for every class c of the model's output (0..C-1;
    0 and 1 for a binary model), a = correct / samples of true class c, or None for a class
    without samples (BCML divided by zero there)."""
    labels, y, C = _labelled(model, dataset, device)
    table = count_table(labels, labels, y, num_classes=C)
    support = table[:, :4].sum(axis=1)
    right = table[:, 0]
    return [{"class": c, "accuracy": (float(right[c]) / float(support[c])) if support[c] else None}
            for c in range(C)]


def model_balanced_accuracy(model, dataset, device="cpu"):
    """The mean over the classes present in the data set of the share of their samples the model
    labels correctly (recall), as scikit-learn's ``balanced_accuracy_score``: a float, 1/C for a
    constant model whatever the class balance. Usable as a ``performance_metric``."""
    labels, y, C = _labelled(model, dataset, device)
    table = count_table(labels, labels, y, num_classes=C)
    support = table[:, :4].sum(axis=1)
    present = support > 0
    return float(np.mean(table[present, 0] / support[present]))


def _auc(score, positive):
    """Area under the ROC curve of score for the boolean positive (Mann-Whitney U with tied
    scores counted as half), None when one of the two groups is empty."""
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(score, kind="mergesort")
    s = score[order]
    ranks = np.empty(s.size, dtype=np.float64)
    # average ranks (1-based) over runs of equal scores
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    ends = np.r_[starts[1:], s.size]
    avg = (starts + ends + 1) / 2.0
    ranks[order] = np.repeat(avg, ends - starts)
    u = ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def model_roc_auc(model, dataset, device="cpu"):
    """The area under the ROC curve of the model's scores (a float), as scikit-learn's
    ``roc_auc_score``: for a binary model its probability, for a two-class classifier the softmax
    of class 1, and for more classes the one-vs-rest macro average over the classes present
    (each class's softmax against all others). Raises ValueError when the data set holds a single
    class (the area is undefined). Usable as a ``performance_metric``."""
    _checks.check_device(device)
    _checks.check_model(model, "model")
    data = as_dataset(dataset, "dataset")
    outputs, y, _ids = predict(model, data, "model")
    binary, width = _checks.outputs_kind(outputs)
    y = _checks.check_targets(y, binary, width, "dataset")
    y = np.asarray(y).reshape(-1)
    if binary:
        scores = {1: np.asarray(outputs.parts[0], dtype=np.float64).reshape(-1)}
    else:
        probs = np.asarray(outputs.parts[1], dtype=np.float64)
        scores = {1: probs[:, 1]} if width == 2 else {c: probs[:, c] for c in range(width)}
    areas = [a for a in (_auc(s, y == c) for c, s in scores.items()) if a is not None]
    if not areas:
        raise ValueError("model_roc_auc: the data set holds a single class (%s); the area under the ROC curve is "
                         "undefined" % np.unique(y).tolist())
    return float(np.mean(areas))


# ---- array metrics (scikit-learn's roc_auc_score and log_loss) ------------------------------
def _array(v, fname, arg):
    """v (NumPy, list, pandas, bcml or PyTorch tensor) as an ndarray; TypeError naming arg."""
    from ._compare import _to_numpy
    if v is None or isinstance(v, (str, bytes, dict, set)):
        raise TypeError("%s(): argument '%s' must be an array-like, not %s" % (fname, arg, type(v).__name__))
    try:
        a = _to_numpy(v)
    except (TypeError, ValueError) as e:
        raise TypeError("%s(): argument '%s' must be an array-like: %s" % (fname, arg, e)) from None
    if a.dtype == object:
        raise TypeError("%s(): argument '%s' must be an array of numbers or labels, got an array of Python objects"
                        % (fname, arg))
    from ._values import check_size
    check_size(a.shape, 8, fname, arg, "float64")   # before a mask or a float64 copy is allocated
    return a


def _scores_array(v, fname, arg, shape=None):
    """A finite array of scores or probabilities (1-D or 2-D; of the given shape when asked)."""
    a = _array(v, fname, arg)
    if a.dtype.kind not in "fiub":
        raise TypeError("%s(): argument '%s' must hold numbers, got dtype %s" % (fname, arg, a.dtype))
    if a.ndim not in (1, 2) or (shape is not None and a.shape != shape):
        raise ValueError("%s(): argument '%s' must %s, got shape %s"
                         % (fname, arg, "be 1-D or 2-D" if shape is None else "have shape %s" % (shape,), a.shape))
    from ._values import check_size
    check_size(a.shape, 8, fname, arg, "float64")   # before a mask or a float64 copy is allocated
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        raise ValueError("%s(): argument '%s' must hold finite values (it holds NaN or infinity)" % (fname, arg))
    return a


def _labels_array(v, fname, arg):
    """A 1-D array of class labels (ints, bools, strings, or floats holding integers)."""
    a = _array(v, fname, arg)
    if a.ndim == 2 and a.shape[1] == 1:
        a = a.reshape(-1)
    if a.ndim != 1:
        raise ValueError("%s(): argument '%s' must be 1-D (one label per sample), got shape %s" % (fname, arg, a.shape))
    if a.dtype.kind == "f":
        from ._labels import integral
        a = integral(a, "%s(): argument '%s'" % (fname, arg),
                     "class labels (a continuous target is not supported)")
    elif a.dtype.kind not in "iubUS":
        raise TypeError("%s(): argument '%s' must hold class labels, got dtype %s" % (fname, arg, a.dtype))
    return a


def _weights(sample_weight, n, fname):
    if sample_weight is None:
        return None
    return _scores_array(sample_weight, fname, "sample_weight", (n,)).astype(np.float64)


def _same_length(n1, n2, fname, arg2):
    if n1 != n2:
        raise ValueError("%s(): arguments 'y_true' and '%s' must have the same number of samples, got %d and %d"
                         % (fname, arg2, n1, n2))


def _binary_auc(score, positive, weight):
    """AUC of score for the boolean positive, weighted by weight (None: unweighted, _auc): the
    weighted Mann-Whitney statistic, tied scores counted as half (equal to the trapezoidal area
    under the weighted ROC curve). NaN with an UndefinedMetricWarning when a group is empty."""
    from .scores import UndefinedMetricWarning
    if weight is None:
        a = _auc(score, positive)
    else:
        order = np.argsort(score, kind="mergesort")
        s, p, w = score[order], positive[order], weight[order]
        starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]]) if s.size else np.zeros(0, np.intp)
        wp = np.add.reduceat(np.where(p, w, 0.0), starts) if s.size else np.zeros(0)
        wn = np.add.reduceat(np.where(p, 0.0, w), starts) if s.size else np.zeros(0)
        P, N = wp.sum(), wn.sum()
        a = None if not (np.any(p) and not np.all(p)) or P == 0 or N == 0 else \
            float((wp * (np.cumsum(wn) - 0.5 * wn)).sum() / (P * N))
    if a is None:
        warnings.warn("roc_auc_score(): only one class is present in y_true; the ROC AUC is not defined in that "
                      "case (nan)", UndefinedMetricWarning, stacklevel=4)
        return float("nan")
    return a


def _average_binary(Y, S, average, weight):
    """scikit-learn's averaging of per-column binary AUCs of an indicator matrix Y (n, L)."""
    if average == "micro":
        return _binary_auc(S.ravel(), Y.ravel(), None if weight is None else np.repeat(weight, Y.shape[1]))
    if average == "samples":
        per = np.array([_binary_auc(S[i], Y[i], None) for i in range(Y.shape[0])])
        return float(np.average(per, weights=weight))
    per = np.array([_binary_auc(S[:, c], Y[:, c], weight) for c in range(Y.shape[1])])
    if average is None:
        return per
    if average == "weighted":
        aw = (Y * (1.0 if weight is None else weight[:, None])).sum(axis=0)
        if np.isclose(aw.sum(), 0.0):
            return 0.0
        per = np.where(aw == 0, 0.0, per)
        return float(np.average(per, weights=aw))
    return float(np.mean(per))


_AVERAGES = ("micro", "macro", "weighted", "samples", None)


def roc_auc_score(y_true, y_score, *, average="macro", sample_weight=None, max_fpr=None, multi_class="raise",
                  labels=None):
    """The area under the ROC curve of scores against true labels, as scikit-learn's
    ``sklearn.metrics.roc_auc_score`` (same arguments, order and results):

    * binary: ``y_true`` holds at most two labels (the greater one is positive) and ``y_score``
      the positive class's score, shape (n,) (a (n, 2) array is refused: pass ``y_score[:, 1]``);
    * multiclass: ``y_true`` holds more than two labels (or two, with (n, C > 2) scores) and
      ``y_score`` (n, C) probabilities whose rows sum to 1, column c for the c-th label of
      ``labels`` (default: the sorted labels of y_true). ``multi_class`` must be "ovr" (each
      class against the rest; average "macro", "weighted", "micro" or None) or "ovo" (Hand and
      Till's mean over pairs of classes; "macro" or "weighted", no sample_weight);
    * multilabel: ``y_true`` an (n, L) 0/1 indicator matrix, ``y_score`` (n, L); average
      "micro", "macro", "weighted", "samples" or None (the per-label array).

    ``labels`` is for the multiclass case only (ValueError otherwise; scikit-learn ignores it).
    Ties count as half (the Mann-Whitney statistic, equal to the trapezoidal area). A class
    without positive or negative samples gives nan and an UndefinedMetricWarning, as
    scikit-learn. ``max_fpr`` (partial AUC) is not supported: it must be None or 1.
    Inputs may be NumPy arrays, lists, pandas Series or bcml/PyTorch tensors."""
    fname = "roc_auc_score"
    if max_fpr is not None and not (isinstance(max_fpr, (int, float)) and not isinstance(max_fpr, bool)
                                    and max_fpr == 1):
        raise ValueError("%s(): argument 'max_fpr' (a partial AUC) is not supported by bcml; pass None, got %r"
                         % (fname, max_fpr))
    if not (average is None or isinstance(average, str)):
        raise TypeError("%s(): argument 'average' must be a str or None, not %s" % (fname, type(average).__name__))
    if not isinstance(multi_class, str):
        raise TypeError("%s(): argument 'multi_class' must be a str, not %s" % (fname, type(multi_class).__name__))
    if average not in _AVERAGES:
        raise ValueError("%s(): argument 'average' must be one of %s, got %r" % (fname, _AVERAGES, average))
    if multi_class not in ("raise", "ovr", "ovo"):
        raise ValueError("%s(): argument 'multi_class' must be 'raise', 'ovr' or 'ovo', got %r" % (fname, multi_class))
    S = _scores_array(y_score, fname, "y_score").astype(np.float64)
    raw = _array(y_true, fname, "y_true")
    if labels is not None and not (raw.ndim == 1 and np.unique(raw).size > 2 or S.ndim == 2 and S.shape[1] > 2):
        raise ValueError("%s(): argument 'labels' names the columns of a multiclass y_score; it must be None for a "
                         "binary or multilabel y_true (scikit-learn ignores it there)" % fname)
    if raw.ndim == 2 and raw.shape[1] > 1:    # multilabel indicator
        if raw.dtype.kind not in "fiub" or not np.isin(raw, (0, 1)).all():
            raise ValueError("%s(): argument 'y_true' of shape %s must be a 0/1 indicator matrix (multilabel); "
                             "a multiclass-multioutput target is not supported" % (fname, raw.shape))
        if S.shape != raw.shape:
            raise ValueError("%s(): argument 'y_score' must have the shape of the indicator matrix y_true %s, got %s"
                             % (fname, raw.shape, S.shape))
        w = _weights(sample_weight, raw.shape[0], fname)
        return _average_binary(raw.astype(bool), S, average, w)
    y = _labels_array(raw, fname, "y_true")
    _same_length(y.shape[0], S.shape[0], fname, "y_score")
    w = _weights(sample_weight, y.shape[0], fname)
    classes = np.unique(y)
    if classes.size > 2 or (S.ndim == 2 and S.shape[1] > 2):
        return _multiclass_auc(y, S, w, average, multi_class, labels, fname)
    if S.ndim == 2:
        if S.shape[1] != 1:
            raise ValueError("%s(): argument 'y_score' must have shape (n,) for binary y_true (the positive "
                             "class's score, e.g. y_proba[:, 1]), got %s" % (fname, S.shape))
        S = S.reshape(-1)
    positive = y == classes[-1] if classes.size == 2 else np.zeros(y.shape, bool)
    return _binary_auc(S, positive, w)


def _multiclass_auc(y, S, w, average, multi_class, labels, fname):
    if S.ndim != 2:
        raise ValueError("%s(): argument 'y_score' must have shape (n_samples, n_classes) since y_true holds more "
                         "than two classes, got %s" % (fname, S.shape))
    if multi_class == "raise":
        raise ValueError("%s(): y_true holds more than two classes or argument 'y_score' has more than two columns "
                         "(a multiclass problem): argument 'multi_class' must be 'ovr' or 'ovo' (the default "
                         "'raise' refuses it, as scikit-learn)" % fname)
    if not np.allclose(1, S.sum(axis=1)):
        raise ValueError("%s(): argument 'y_score' must hold probabilities for a multiclass ROC AUC (every row "
                         "summing to 1)" % fname)
    allowed = ("micro", "macro", "weighted", None) if multi_class == "ovr" else ("macro", "weighted")
    if average not in allowed:
        raise ValueError("%s(): argument 'average' must be one of %s for multi_class=%r, got %r"
                         % (fname, allowed, multi_class, average))
    if labels is not None:
        classes = _labels_array(labels, fname, "labels")
        if np.unique(classes).size != classes.size:
            raise ValueError("%s(): argument 'labels' must hold distinct labels" % fname)
        if not np.array_equal(np.sort(classes), classes):
            raise ValueError("%s(): argument 'labels' must be sorted (its order is y_score's columns')" % fname)
        if classes.size != S.shape[1]:
            raise ValueError("%s(): argument 'labels' holds %d labels but y_score has %d columns"
                             % (fname, classes.size, S.shape[1]))
        if np.setdiff1d(y, classes).size:
            raise ValueError("%s(): argument 'y_true' holds labels %s that 'labels' does not"
                             % (fname, np.setdiff1d(y, classes).tolist()))
    else:
        classes = np.unique(y)
        if classes.size != S.shape[1]:
            raise ValueError("%s(): y_true holds %d classes but argument 'y_score' has %d columns (pass 'labels' "
                             "to name the columns)" % (fname, classes.size, S.shape[1]))
    code = np.searchsorted(classes, y)
    if multi_class == "ovr":
        Y = code[:, None] == np.arange(classes.size)[None, :]
        return _average_binary(Y, S, average, w)
    if w is not None:
        raise ValueError("%s(): argument 'sample_weight' is not supported for multi_class='ovo' (pass None)" % fname)
    present = np.unique(code)
    pairs = list(itertools.combinations(present.tolist(), 2))
    scores = np.empty(len(pairs))
    prevalence = np.empty(len(pairs))
    for k, (a, b) in enumerate(pairs):
        m = (code == a) | (code == b)
        prevalence[k] = m.mean()
        scores[k] = (_binary_auc(S[m, a], code[m] == a, None) + _binary_auc(S[m, b], code[m] == b, None)) / 2
    return float(np.average(scores, weights=prevalence if average == "weighted" else None))


def log_loss(y_true, y_proba, *, normalize=True, sample_weight=None, labels=None):
    """The cross-entropy of predicted probabilities against true labels, as scikit-learn's
    ``sklearn.metrics.log_loss`` (its current form: argument ``y_proba``, no ``eps`` argument):
    ``-mean_i log p_i[y_i]`` (the sum when ``normalize=False``; a ``sample_weight``-weighted
    mean or sum when given).

    ``y_proba``: (n, C) probabilities, column c for the c-th sorted label of ``labels``
    (default: the labels of y_true), or (n,) / (n, 1) the positive (greater) class's
    probability of a binary problem. Values outside [0, 1] raise ValueError; rows that do not
    sum to 1 give a UserWarning (as scikit-learn; they are not renormalised). Probabilities are
    clipped to [eps, 1 - eps], eps the machine epsilon of y_proba's dtype (float32 or
    float64), then the sum is taken in float64. ``y_true`` must hold at least two classes
    unless ``labels`` names them."""
    fname = "log_loss"
    P = _scores_array(y_proba, fname, "y_proba")
    if not isinstance(normalize, (bool, np.bool_)):
        raise TypeError("%s(): argument 'normalize' must be a bool, not %s" % (fname, type(normalize).__name__))
    y = _labels_array(y_true, fname, "y_true")
    _same_length(y.shape[0], P.shape[0], fname, "y_proba")
    w = _weights(sample_weight, y.shape[0], fname)
    eps = np.finfo(P.dtype if P.dtype.kind == "f" and P.dtype.itemsize >= 4 else np.float64).eps
    if P.dtype.kind != "f" or P.dtype.itemsize < 4:
        P = P.astype(np.float64)
    if P.size and P.max() > 1:
        raise ValueError("%s(): argument 'y_proba' holds values greater than 1: %r" % (fname, float(P.max())))
    if P.size and P.min() < 0:
        raise ValueError("%s(): argument 'y_proba' holds values lower than 0: %r" % (fname, float(P.min())))
    if y.size == 0:
        raise ValueError("%s(): argument 'y_true' is empty" % fname)
    if labels is not None:
        lab = _labels_array(labels, fname, "labels")
        classes = np.unique(lab)
        if not np.array_equal(classes, lab):
            warnings.warn("log_loss(): labels %s are used in sorted order %s: y_proba's columns must follow it"
                          % (lab.tolist(), classes.tolist()), UserWarning, stacklevel=2)
        missing = np.setdiff1d(y, classes)
        if missing.size:
            raise ValueError("%s(): argument 'y_true' holds labels %s that 'labels' does not"
                             % (fname, missing.tolist()))
        if classes.size < 2:
            raise ValueError("%s(): argument 'labels' must hold at least two labels, got %s" % (fname, classes.tolist()))
    else:
        classes = np.unique(y)
        if classes.size < 2:
            raise ValueError("%s(): y_true holds a single label (%r); pass every class label through argument "
                             "'labels'" % (fname, classes[0].item()))
    if P.ndim == 1:
        P = P[:, None]
    if P.shape[1] == 1:
        P = np.concatenate([1 - P, P], axis=1)
    if not np.allclose(P.sum(axis=1, dtype=np.float64), 1, rtol=np.sqrt(eps), atol=0):
        warnings.warn("log_loss(): the rows of y_proba do not sum to one; pass probabilities", UserWarning,
                      stacklevel=2)
    if P.shape[1] != classes.size:
        raise ValueError("%s(): argument 'y_proba' has %d columns but there are %d classes (%s)%s"
                         % (fname, P.shape[1], classes.size, classes.tolist(),
                            "" if labels is not None else "; pass every class label through argument 'labels'"))
    p = np.clip(P, eps, 1 - eps)[np.arange(y.size), np.searchsorted(classes, y)].astype(np.float64)
    loss = -np.log(p)
    if normalize:
        return float(np.average(loss, weights=w))
    return float(loss.sum() if w is None else (loss * w).sum())
