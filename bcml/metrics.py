"""Performance metrics of a model on a data set (backwardcompatibilityml.metrics).

A data set is a list of ``(x, y)`` or ``(ids, x, y)`` batches, or a ``bcml.data.DataLoader``.
The model is run once over it, in the mode it is in, under no_grad (``bcml._engine.predict``);
its predicted label is the argmax of its logits, or ``probability >= 0.5`` for a binary model
(output (B,) or (B, 1)). Counts are pooled over the whole data set (BCML averaged the
accuracies of the batches, which weighs a short last batch as much as a full one).
"""
import numpy as np

from . import _checks
from ._engine import as_dataset, predict
from .scores import count_table

__all__ = ["model_accuracy", "model_accuracy_by_class", "model_balanced_accuracy", "model_roc_auc"]


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
