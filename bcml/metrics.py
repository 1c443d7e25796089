"""Performance metrics of a model on a data set (backwardcompatibilityml.metrics).

A data set is a list of ``(x, y)`` or ``(ids, x, y)`` batches, or a ``bcml.data.DataLoader``.
The model is run once over it, in the mode it is in, under no_grad (``bcml._engine.predict``);
its predicted label is the argmax of its logits, or ``probability >= 0.5`` for a binary model
(output (B,) or (B, 1)). Counts are pooled over the whole data set (BCML averaged the
accuracies of the batches, which weighs a short last batch as much as a full one).
"""
from . import _checks
from ._engine import as_dataset, predict
from .scores import count_table

__all__ = ["model_accuracy", "model_accuracy_by_class"]


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
