"""Training and analysis helpers (backwardcompatibilityml.helpers.training).

Same names, arguments and return values as BCML. A data set (``training_set``, ``test_set``,
``dataset``) is a list of ``(x, y)`` or ``(ids, x, y)`` batches, or a ``bcml.data.DataLoader``
(ids: instance ids; the running row number when absent). Models return the triple
``(logits, softmax, log_softmax)``, or one probability per sample ((B,) or (B, 1)) for a binary
model, whose predicted label is ``probability >= 0.5``.

Every training epoch runs through ``bcml._engine.train_epoch`` and every pass of a model over a
data set through ``bcml._engine.predict``. A bcml compatibility loss (``bcml.loss``) whose h1 is
in eval mode gets h1's outputs computed once per data set, not once per batch and epoch.

Differences from BCML, on purpose:

* accuracy, BTC and BEC pool their counts over the data set (BCML averaged per-batch values);
  BEC divides by h2's errors (the published definition, see ``bcml.scores``);
* test losses are divided by the number of samples (BCML divided by ``len(test_set) *
  batch_size_test``, too much when the last batch is short); the sample counters of
  ``train``/``train_compatibility`` count the samples actually seen (BCML multiplied batch
  indices by ``batch_size_train``, and by 64 in ``train_compatibility_epoch``);
* ``train_new_error`` and ``train_strict_imitation`` return ``train_compatibility``'s four lists
  (BCML returned None), and accept ``*_loss_kwargs=None``;
* ``get_instance_metadata`` receives the instance id (BCML passed the position in the batch);
  the evaluation also reports h1's and h2's accuracy by class;
* arguments are checked before any training: a wrong data set, epoch count, optimizer, loss,
  target or model output raises TypeError or ValueError naming the argument;
* an undefined BTC or BEC (h1 never right, h2 never wrong) follows ``zero_division`` (default
  "warn": 0.0 and a warning; BCML returned 0 silently);
* ``device`` must be "cpu".
"""
import copy
import functools
import inspect

import numpy as np

from .. import _checks
from .. import _core, _engine
from .. import scores as _scores
from .._autograd import no_grad
from .._tensor import from_numpy
from ..loss import _CompatibilityLoss
from ..metrics import model_accuracy, model_accuracy_by_class

__all__ = [
    "train_epoch", "test", "train", "train_compatibility_epoch", "test_compatibility",
    "train_compatibility", "train_new_error", "train_strict_imitation",
    "get_error_instance_indices", "get_model_error_overlap", "get_error_fraction_by_class",
    "get_normalized_model_error_overlap", "get_all_error_instance_indices", "get_error_instance_ids_by_class",
    "get_incompatible_instances_by_class", "update_error_instances_by_class_dict",
    "compatibility_scores", "model_accuracy",
    "model_accuracy_by_class", "evaluate_model_performance_and_compatibility_on_dataset",
    "evaluate_model_performance_and_compatibility", "compatibility_sweep",
]

LOG_INTERVAL = 10  # BCML logs the loss of every 10th batch


# ---- small private pieces --------------------------------------------------------------------
def _check_epoch(epoch):
    return _checks.check_positive_int(epoch, "epoch")


def _check_loss_function(loss_function):
    if not callable(loss_function):
        raise TypeError("loss_function must be callable, got %s" % type(loss_function).__name__)


def _set_train(model, mode):
    if callable(getattr(model, "train", None)):
        model.train(mode)


def _batch_sizes(data):
    """The sizes of the batches of one training epoch of a checked data set."""
    if data.loader is not None:
        bs, n = data.loader.batch_size, data.n
        return np.array([min(bs, n - k * bs) for k in range(len(data))], dtype=np.int64)
    return np.diff(data.offsets)


def _log(losses, data, epoch):
    """BCML's (train_counter, train_losses): every LOG_INTERVAL-th batch's loss and the number
    of samples seen before it since the start of training."""
    sizes = _batch_sizes(data)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]) + (epoch - 1) * int(sizes.sum())
    picked = range(0, len(losses), LOG_INTERVAL)
    return [int(starts[i]) for i in picked], [float(losses[i]) for i in picked]


def _element(out, binary):
    """What a plain loss_function consumes: BCML's third element of the triple (log_softmax),
    or a binary model's probability as a (B,) vector."""
    if binary:
        return out.reshape(-1) if out.ndim == 2 else out
    return out[2]


def _target(y, binary):
    return y.float() if binary and y._dtype_name != "float32" else y


def _summed_loss(loss_function, output, target):
    """loss_function's sum over every sample of (output, target): called with reduction="sum"
    when it takes that keyword (BCML's call), else from its reduction attribute (a loss
    module) or its mean times the number of samples."""
    n = int(target.shape[0])
    red = getattr(loss_function, "reduction", None)
    call = functools.partial(_checks.call_user, loss_function, "loss_function(output, target)")
    if isinstance(red, str):
        value = call(output, target)
    else:
        try:
            params = inspect.signature(loss_function).parameters
            takes = "reduction" in params or any(p.kind == p.VAR_KEYWORD for p in params.values())
        except (TypeError, ValueError):
            takes = True
        if takes:
            return float(call(output, target, reduction="sum").sum().item())
        value, red = call(output, target), "mean"
    if red == "sum" or red == "none" or value.ndim > 0:
        return float(value.sum().item())
    return float(value.item()) * n


def _y_tensor(y, binary):
    return from_numpy(np.ascontiguousarray(y, dtype=np.float32 if binary else np.int64))


def _is_compat_loss(loss_function):
    return isinstance(loss_function, _CompatibilityLoss)


def _h1_in_eval(h1):
    return not any(mode for _m, mode in _checks.training_modes(h1))


def _check_compat_loss(loss_function, h2):
    """A bcml compatibility loss must train h2 (loss_function.h2 is h2) and be usable as BCML's
    loss_function(x, y); anything else callable is called as BCML does."""
    _check_loss_function(loss_function)
    lh2 = getattr(loss_function, "h2", None)
    if lh2 is not None and lh2 is not h2:
        raise ValueError("loss_function.h2 is not h2: the loss would train another model than h2")


def _h1_cache(loss_function, data):
    """h1's outputs over data when they can stand in for the loss's own h1 calls: a bcml
    compatibility loss whose h1 is in eval mode (h1 in training mode may draw dropout masks or
    update batch-norm statistics on every call, so it is run per batch as in BCML)."""
    if _is_compat_loss(loss_function) and _h1_in_eval(loss_function.h1):
        return _engine.predict(loss_function.h1, data, "h1")[0]
    return None


def _compat_setup(h2, loss_function, datasets):
    """Checks a compatibility training's models, loss and targets on every data set (before
    training); returns (binary, width)."""
    _checks.check_model(h2, "h2")
    _check_compat_loss(loss_function, h2)
    first = datasets[0]
    h1 = getattr(loss_function, "h1", None)
    if h1 is not None and callable(h1):
        binary, width = _checks.probe_pair(h1, h2, first)
    else:
        binary, width = _checks.probe(h2, first, "h2")
    for data in datasets:
        _checks.check_targets(_checks.all_targets(data), binary, width, data.name)
    return binary, width


# ---- plain training (BCML: "not to be used with a compatibility loss") ------------------------
def _train_epoch(epoch, network, optimizer, loss_function, data, binary, session=None):
    _set_train(network, True)

    def step(x, y, _h1):
        return _checks.call_user(loss_function, "loss_function(output, target)",
                                 _element(network(x), binary), _target(y, binary))

    return _log(_engine.train_epoch(step, data, optimizer, session=session, watch=(loss_function,)), data, epoch)


def _test(network, loss_function, data):
    _set_train(network, False)
    outputs, y, _ids = _engine.predict(network, data, "network")
    binary, width = _checks.outputs_kind(outputs)
    _checks.check_targets(y, binary, width, data.name)
    out = from_numpy(outputs.parts[0]) if binary else from_numpy(outputs.parts[2])
    with no_grad():
        total = _summed_loss(loss_function, out, _y_tensor(y, binary))
    return [total / len(y)]


def _plain_setup(network, optimizer, loss_function, datasets):
    _checks.check_model(network, "network")
    _checks.check_optimizer(optimizer)
    _check_loss_function(loss_function)
    binary, width = _checks.probe(network, datasets[0], "network")
    for data in datasets:
        _checks.check_targets(_checks.all_targets(data), binary, width, data.name)
    return binary


def _run_args(number_of_epochs, training_set, test_set, batch_size_train, batch_size_test, device):
    """The checks every multi-epoch helper starts with: (epochs, training data, test data)."""
    _checks.check_device(device)
    epochs = _checks.check_positive_int(number_of_epochs, "number_of_epochs")
    train_data = _engine.as_dataset(training_set, "training_set")
    test_data = _engine.as_dataset(test_set, "test_set")
    _checks.check_positive_int(batch_size_train, "batch_size_train")
    _checks.check_positive_int(batch_size_test, "batch_size_test")
    return epochs, train_data, test_data


def train_epoch(epoch, network, optimizer, loss_function, training_set, batch_size_train,
                device="cpu"):
    """One epoch of ``loss_function(output, target)`` on every batch, where output is the
    third element (log_softmax) of network's triple (use ``F.nll_loss``), or the probability of
    a binary model (use ``F.binary_cross_entropy``; targets are converted to float).
    Returns (train_counter, train_losses): the loss of every 10th batch and the number of
    samples seen before it (counting from epoch 1)."""
    _checks.check_device(device)
    epoch = _check_epoch(epoch)
    data = _engine.as_dataset(training_set, "training_set")
    _checks.check_positive_int(batch_size_train, "batch_size_train")
    binary = _plain_setup(network, optimizer, loss_function, [data])
    return _train_epoch(epoch, network, optimizer, loss_function, data, binary)


def test(network, loss_function, test_set, batch_size_test, device="cpu"):
    """network (set to eval mode) over test_set: ``[summed loss / number of samples]``, the loss
    called as ``loss_function(output, target, reduction="sum")`` on the element train_epoch uses."""
    _checks.check_device(device)
    data = _engine.as_dataset(test_set, "test_set")
    _checks.check_positive_int(batch_size_test, "batch_size_test")
    _checks.check_model(network, "network")
    _check_loss_function(loss_function)
    return _test(network, loss_function, data)


def train(number_of_epochs, network, optimizer, loss_function,
          training_set, test_set, batch_size_train, batch_size_test,
          device="cpu"):
    """number_of_epochs of train_epoch, with test before the first and after every epoch.
    Returns (train_counter, test_counter, train_losses, test_losses) as BCML."""
    epochs, train_data, test_data = _run_args(number_of_epochs, training_set, test_set, batch_size_train,
                                              batch_size_test, device)
    binary = _plain_setup(network, optimizer, loss_function, [train_data, test_data])
    per_epoch = int(_batch_sizes(train_data).sum())
    train_counter, train_losses = [], []
    test_counter = [i * per_epoch for i in range(epochs + 1)]
    test_losses = _test(network, loss_function, test_data)
    session = _engine.Session()  # the recorded step carries over from epoch to epoch
    for epoch in range(1, epochs + 1):
        counter, losses = _train_epoch(epoch, network, optimizer, loss_function, train_data, binary, session)
        train_counter += counter
        train_losses += losses
        test_losses += _test(network, loss_function, test_data)
    return train_counter, test_counter, train_losses, test_losses


# ---- compatibility training ------------------------------------------------------------------
def _compat_epoch(epoch, h2, optimizer, loss_function, data, cache, session=None):
    _set_train(h2, True)
    if cache is not None:
        def step(x, y, h1_output):
            return _checks.call_user(loss_function, "loss_function(x, y)", x, y, h1_output=h1_output)
    else:
        def step(x, y, _h1):
            return _checks.call_user(loss_function, "loss_function(x, y)", x, y)
    return _log(_engine.train_epoch(step, data, optimizer, cache=cache, session=session,
                                    watch=(loss_function,)), data, epoch)


def _test_compat(h2, loss_function, data, h1_outputs=None):
    _set_train(h2, False)
    if not _is_compat_loss(loss_function):
        # Not a bcml loss: it runs its models itself, so it is called on every batch as BCML does.
        total, n = 0.0, 0
        with no_grad():
            for _rows, _ids, x, y in data.epoch(shuffle=False):
                total += float(_checks.call_user(loss_function, "loss_function(x, y)", x, y,
                                                 reduction="sum").sum().item())
                n += int(y.shape[0])
        return [total / n]
    if h1_outputs is None:
        h1_outputs = _engine.predict(loss_function.h1, data, "h1")[0]
    h2_outputs, y, _ids = _engine.predict(h2, data, "h2")
    h2_full = h2_outputs.all()
    # the loss over the whole set at once, from both models' outputs: a shallow copy of the loss
    # whose h2 returns h2's outputs (the loss runs h2 once per call)
    lf = copy.copy(loss_function)
    lf.h2 = lambda _x: h2_full
    yt = from_numpy(np.ascontiguousarray(y))
    with no_grad():
        total = float(lf(yt, yt, reduction="sum", h1_output=h1_outputs.all()).item())
    return [total / len(y)]


def train_compatibility_epoch(epoch, h2, optimizer, loss_function, training_set, batch_size_train,
                              device="cpu"):
    """One epoch of h2 (set to training mode) on ``loss_function(x, y)``, a compatibility loss
    such as ``bcml.loss.BCCrossEntropyLoss(h1, h2, lambda_c)``. Returns (train_counter,
    train_losses) as train_epoch."""
    _checks.check_device(device)
    epoch = _check_epoch(epoch)
    data = _engine.as_dataset(training_set, "training_set")
    _checks.check_positive_int(batch_size_train, "batch_size_train")
    _checks.check_optimizer(optimizer)
    _compat_setup(h2, loss_function, [data])
    return _compat_epoch(epoch, h2, optimizer, loss_function, data, _h1_cache(loss_function, data))


def test_compatibility(h2, loss_function, test_set, batch_size_test, device="cpu"):
    """h2 (set to eval mode) over test_set: ``[compatibility loss summed over the samples /
    number of samples]``."""
    _checks.check_device(device)
    data = _engine.as_dataset(test_set, "test_set")
    _checks.check_positive_int(batch_size_test, "batch_size_test")
    _compat_setup(h2, loss_function, [data])
    return _test_compat(h2, loss_function, data)


def _train_compat_checked(epochs, h2, optimizer, loss_function, train_data, test_data):
    per_epoch = int(_batch_sizes(train_data).sum())
    train_cache = _h1_cache(loss_function, train_data)
    test_cache = _h1_cache(loss_function, test_data)
    train_counter, train_losses = [], []
    test_counter = [i * per_epoch for i in range(epochs + 1)]
    test_losses = _test_compat(h2, loss_function, test_data, test_cache)
    session = _engine.Session()  # the recorded step carries over from epoch to epoch
    for epoch in range(1, epochs + 1):
        counter, losses = _compat_epoch(epoch, h2, optimizer, loss_function, train_data, train_cache, session)
        train_counter += counter
        train_losses += losses
        test_losses += _test_compat(h2, loss_function, test_data, test_cache)
    return train_counter, test_counter, train_losses, test_losses


def train_compatibility(number_of_epochs, h2, optimizer, loss_function,
                        training_set, test_set, batch_size_train, batch_size_test,
                        device="cpu"):
    """number_of_epochs of train_compatibility_epoch, with test_compatibility before the first
    and after every epoch. Returns (train_counter, test_counter, train_losses, test_losses)."""
    epochs, train_data, test_data = _run_args(number_of_epochs, training_set, test_set, batch_size_train,
                                              batch_size_test, device)
    _checks.check_optimizer(optimizer)
    _compat_setup(h2, loss_function, [train_data, test_data])
    return _train_compat_checked(epochs, h2, optimizer, loss_function, train_data, test_data)


def _check_class(cls, name, kind):
    if isinstance(cls, _CompatibilityLoss) or not callable(cls) or (
            kind == "optimizer" and hasattr(cls, "param_groups")):
        example = "bcml.optim.SGD" if kind == "optimizer" else "bcml.loss.BCCrossEntropyLoss"
        raise TypeError("%s must be a class (e.g. %s), got %s" % (name, example, type(cls).__name__))


def _train_with_class(h1, h2, number_of_epochs, training_set, test_set, batch_size_train,
                      batch_size_test, OptimizerClass, optimizer_kwargs, LossClass, lambda_c,
                      loss_kwargs, device, class_name, kwargs_name):
    _checks.check_device(device)
    _checks.check_model(h1, "h1")
    _checks.check_model(h2, "h2")
    epochs, train_data, test_data = _run_args(number_of_epochs, training_set, test_set, batch_size_train,
                                              batch_size_test, device)
    _check_class(OptimizerClass, "OptimizerClass", "optimizer")
    optimizer_kwargs = _checks.check_kwargs(optimizer_kwargs, "optimizer_kwargs")
    _check_class(LossClass, class_name, "loss")
    loss_kwargs = _checks.check_kwargs(loss_kwargs, kwargs_name)
    if not callable(getattr(h2, "parameters", None)):
        raise TypeError("h2 must be a model with parameters() (a bcml.nn.Module), got %s" % type(h2).__name__)
    try:
        loss = LossClass(h1, h2, lambda_c, **loss_kwargs)
    except (TypeError, ValueError) as e:
        raise type(e)("%s(h1, h2, lambda_c, **%s) (%s): %s" % (class_name, kwargs_name,
                                                               getattr(LossClass, "__name__", "?"), e)) from e
    try:
        optimizer = OptimizerClass(h2.parameters(), **optimizer_kwargs)
    except (TypeError, ValueError) as e:
        raise type(e)("OptimizerClass(h2.parameters(), **optimizer_kwargs) (%s): %s"
                      % (getattr(OptimizerClass, "__name__", "?"), e)) from e
    _checks.check_optimizer(optimizer, "OptimizerClass(...)")
    _compat_setup(h2, loss, [train_data, test_data])
    return _train_compat_checked(epochs, h2, optimizer, loss, train_data, test_data)


def train_new_error(h1, h2, number_of_epochs,
                    training_set, test_set, batch_size_train, batch_size_test,
                    OptimizerClass, optimizer_kwargs,
                    NewErrorLossClass,
                    lambda_c, new_error_loss_kwargs=None, device="cpu"):
    """Updates h2 with ``NewErrorLossClass(h1, h2, lambda_c, **new_error_loss_kwargs)`` and a
    fresh ``OptimizerClass(h2.parameters(), **optimizer_kwargs)`` for number_of_epochs (through
    train_compatibility, whose four lists it returns). Call ``h1.eval()`` first."""
    return _train_with_class(h1, h2, number_of_epochs, training_set, test_set, batch_size_train,
                             batch_size_test, OptimizerClass, optimizer_kwargs, NewErrorLossClass,
                             lambda_c, new_error_loss_kwargs, device, "NewErrorLossClass",
                             "new_error_loss_kwargs")


def train_strict_imitation(h1, h2, number_of_epochs,
                           training_set, test_set, batch_size_train, batch_size_test,
                           OptimizerClass, optimizer_kwargs,
                           StrictImitationLossClass,
                           lambda_c, strict_imitation_loss_kwargs=None, device="cpu"):
    """As train_new_error, with ``StrictImitationLossClass(h1, h2, lambda_c,
    **strict_imitation_loss_kwargs)``."""
    return _train_with_class(h1, h2, number_of_epochs, training_set, test_set, batch_size_train,
                             batch_size_test, OptimizerClass, optimizer_kwargs,
                             StrictImitationLossClass, lambda_c, strict_imitation_loss_kwargs,
                             device, "StrictImitationLossClass", "strict_imitation_loss_kwargs")


# ---- analysis of one batch (BCML's per-batch functions) --------------------------------------
def _batch_labels(model, data, who):
    outputs, y, ids = _engine.predict(model, data, who)
    binary, width = _checks.outputs_kind(outputs)
    y = _checks.check_targets(y, binary, width, "batched_evaluation_target")
    return outputs, outputs.labels(), y, ids


def get_error_instance_indices(model, batched_evaluation_data, batched_evaluation_target,
                               device="cpu"):
    """Positions (0-based, within the batch) of the samples model labels wrongly."""
    _checks.check_device(device)
    _checks.check_model(model, "model")
    data = _checks.one_batch(batched_evaluation_data, batched_evaluation_target)
    _outputs, labels, y, _ids = _batch_labels(model, data, "model")
    return np.flatnonzero(labels != y).tolist()


def _pair_errors(h1, h2, data):
    o1, l1, y, ids = _batch_labels(h1, data, "h1")
    o2, l2, _y, _ids = _batch_labels(h2, data, "h2")
    _checks.check_pair_outputs(o1, o2)
    return l1 != y, l2 != y, ids


def get_model_error_overlap(h1, h2, batch_ids, batched_evaluation_data, batched_evaluation_target,
                            device="cpu"):
    """(ids of h1's errors, ids of h2's errors, ids of the errors both make), each in batch
    order; batch_ids gives the instance id of every row (None: the row positions)."""
    _checks.check_device(device)
    _checks.check_model(h1, "h1")
    _checks.check_model(h2, "h2")
    data = _checks.one_batch(batched_evaluation_data, batched_evaluation_target, batch_ids)
    e1, e2, ids = _pair_errors(h1, h2, data)
    return ids[e1].tolist(), ids[e2].tolist(), ids[e1 & e2].tolist()


def get_normalized_model_error_overlap(h1, h2, batched_evaluation_data, batched_evaluation_target,
                                       device="cpu"):
    """(h1 errors, h2 errors, common errors), each divided by the number of samples either model
    gets wrong; (0, 0, 0) when neither makes an error."""
    _checks.check_device(device)
    _checks.check_model(h1, "h1")
    _checks.check_model(h2, "h2")
    data = _checks.one_batch(batched_evaluation_data, batched_evaluation_target)
    e1, e2, _ids = _pair_errors(h1, h2, data)
    total = int(np.count_nonzero(e1 | e2))
    if total == 0:
        return 0.0, 0.0, 0.0
    return (int(np.count_nonzero(e1)) / total, int(np.count_nonzero(e2)) / total,
            int(np.count_nonzero(e1 & e2)) / total)


def get_error_fraction_by_class(model, batched_evaluation_data, batched_evaluation_target,
                                device="cpu"):
    """``{class: share of the model's errors whose true class it is}`` for every class present
    in the targets (all 0.0 when the model makes no error)."""
    _checks.check_device(device)
    _checks.check_model(model, "model")
    data = _checks.one_batch(batched_evaluation_data, batched_evaluation_target)
    outputs, labels, y, _ids = _batch_labels(model, data, "model")
    errors = np.bincount(y[labels != y], minlength=int(y.max()) + 1 if y.size else 0)
    total = int(errors.sum())
    return {int(c): (int(errors[c]) / total if total else 0.0) for c in np.unique(y)}


def get_all_error_instance_indices(h1, h2, batch_ids, batched_evaluation_data, batched_evaluation_target,
                                   get_instance_metadata=None, device="cpu"):
    """``[(instance_id, metadata, h1_prediction, h2_prediction, ground_truth), ...]`` for every
    sample of the batch that h1 or h2 gets wrong, in batch order (BCML's later helper; its order
    was a set's). batch_ids gives the instance id of every row (None: the row positions);
    metadata is ``get_instance_metadata(instance_id)`` or "" (BCML passed the row position)."""
    _checks.check_device(device)
    _checks.check_model(h1, "h1")
    _checks.check_model(h2, "h2")
    if get_instance_metadata is not None and not callable(get_instance_metadata):
        raise TypeError("get_instance_metadata must be a function of the instance id or None, got %s"
                        % type(get_instance_metadata).__name__)
    data = _checks.one_batch(batched_evaluation_data, batched_evaluation_target, batch_ids)
    o1, l1, y, ids = _batch_labels(h1, data, "h1")
    o2, l2, _y, _ids = _batch_labels(h2, data, "h2")
    _checks.check_pair_outputs(o1, o2)
    out = []
    for i in np.flatnonzero((l1 != y) | (l2 != y)):
        iid = int(ids[i])
        meta = "" if get_instance_metadata is None else _checks.call_user(
            get_instance_metadata, "get_instance_metadata(%d)" % iid, iid)
        out.append((iid, meta, int(l1[i]), int(l2[i]), int(y[i])))
    return out


def _check_errors_list(all_errors):
    if not isinstance(all_errors, (list, tuple)):
        raise TypeError("all_errors must be the list of (instance_id, metadata, h1_prediction, h2_prediction, "
                        "ground_truth) tuples of get_all_error_instance_indices, got %s" % type(all_errors).__name__)
    for e in all_errors:
        if not isinstance(e, (list, tuple)) or len(e) != 5:
            raise ValueError("all_errors must hold (instance_id, metadata, h1_prediction, h2_prediction, "
                             "ground_truth) tuples, got %r" % (e,))


def _check_class_dict(d, name):
    if not isinstance(d, dict):
        raise TypeError("%s must be a dict {class: [instance ids]}, got %s" % (name, type(d).__name__))
    for k, v in d.items():
        if not isinstance(v, list):
            raise TypeError("%s[%r] must be a list of instance ids, got %s" % (name, k, type(v).__name__))


def get_incompatible_instances_by_class(all_errors, batch_ids, batched_evaluation_target,
                                        class_incompatible_instance_ids):
    """Adds to ``class_incompatible_instance_ids`` ({class: [ids]}, changed in place and returned)
    the ids of all_errors' instances that h1 gets right and h2 wrong, under their true class
    (read from batched_evaluation_target at the row batch_ids gives for the id; BCML's helper)."""
    _check_errors_list(all_errors)
    _check_class_dict(class_incompatible_instance_ids, "class_incompatible_instance_ids")
    t = _engine._as_tensor(batched_evaluation_target, "batched_evaluation_target")
    if not (t.ndim == 1 or (t.ndim == 2 and t.shape[1] == 1)):
        raise ValueError("batched_evaluation_target must hold one class label per row, shape (B,) or (B, 1), got %s"
                         % (tuple(t.shape),))
    target = t.detach().numpy().reshape(-1)
    try:
        n_ids = len(batch_ids) if isinstance(batch_ids, (list, tuple, range, np.ndarray, _core.TensorBase)) else None
    except TypeError:  # a 0-d array: _as_ids says what batch_ids must be
        n_ids = None
    if n_ids is not None and n_ids != target.shape[0]:
        raise ValueError("batch_ids and batched_evaluation_target must have the same number of rows, got %d and %d"
                         % (n_ids, target.shape[0]))
    ids = _engine._as_ids(batch_ids, int(target.shape[0]), "batch_ids")
    row = {int(i): k for k, i in enumerate(np.asarray(ids).tolist())}
    for iid, _meta, p1, p2, truth in all_errors:
        if p1 == truth and p2 != truth:
            if iid not in row:
                raise ValueError("all_errors names instance %r, which batch_ids does not hold" % (iid,))
            c = target[row[iid]].item()
            class_incompatible_instance_ids.setdefault(c, []).append(iid)
    return class_incompatible_instance_ids


def get_error_instance_ids_by_class(model, batch_ids, batched_evaluation_data, batched_evaluation_target,
                                    device="cpu"):
    """``{class: [ids of the samples of that true class the model gets wrong]}`` for every class
    present in the targets, ids in batch order (BCML's helper; it returned {} when the model made
    no error)."""
    _checks.check_device(device)
    _checks.check_model(model, "model")
    data = _checks.one_batch(batched_evaluation_data, batched_evaluation_target, batch_ids)
    _outputs, labels, y, ids = _batch_labels(model, data, "model")
    wrong = labels != y
    return {int(c): ids[wrong & (y == c)].tolist() for c in np.unique(y)}


def update_error_instances_by_class_dict(old_error_instances_by_class_dict, new_error_instances_by_class_dict):
    """Appends each class's ids of the new dict to the old dict's (changed in place and returned),
    as BCML's helper gathers per-batch results."""
    _check_class_dict(old_error_instances_by_class_dict, "old_error_instances_by_class_dict")
    _check_class_dict(new_error_instances_by_class_dict, "new_error_instances_by_class_dict")
    for c, ids in new_error_instances_by_class_dict.items():
        old_error_instances_by_class_dict[c] = old_error_instances_by_class_dict.get(c, []) + list(ids)
    return old_error_instances_by_class_dict


# ---- analysis of a data set ------------------------------------------------------------------
def _predict_pair(h1, h2, data, h1_outputs=None):
    if h1_outputs is not None:  # h1's outputs computed once for many h2 (the sweep)
        o1, y, ids = h1_outputs
    else:
        o1, y, ids = _engine.predict(h1, data, "h1")
    o2, _y, _ids = _engine.predict(h2, data, "h2")
    binary, width = _checks.check_pair_outputs(o1, o2)
    y = _checks.check_targets(y, binary, width, data.name)
    return o1.labels(), o2.labels(), y, ids, _checks.num_classes(binary, width)


def _zero_division(value, fname="compatibility_scores"):
    return _scores._zero_division(value, fname)


def compatibility_scores(h1, h2, dataset, device="cpu", zero_division="warn"):
    """(BTC, BEC) of h2 with respect to h1 on dataset, from counts pooled over all its samples
    (``bcml.scores.trust_compatibility_score`` and ``error_compatibility_score`` of the
    predicted labels; BEC divides by h2's errors). An undefined score (h1 never right, h2 never
    wrong) takes zero_division's value ("warn": 0.0 and a warning, as bcml.scores)."""
    _checks.check_device(device)
    _checks.check_model(h1, "h1")
    _checks.check_model(h2, "h2")
    zd = _zero_division(zero_division)
    data = _engine.as_dataset(dataset, "dataset")
    l1, l2, y, _ids, _C = _predict_pair(h1, h2, data)
    return (_scores.trust_compatibility_score(l1, l2, y, zero_division=zd),
            _scores.error_compatibility_score(l1, l2, y, zero_division=zd))


def _ids_by_class(mask, y, ids, classes):
    """For each class of classes (sorted), the ids of the rows of that true class where mask
    is set, in row order."""
    rows = np.flatnonzero(mask)
    order = rows[np.argsort(y[rows], kind="stable")]
    starts = np.searchsorted(y[order], classes, side="left")
    ends = np.searchsorted(y[order], classes, side="right")
    return [ids[order[lo:hi]].tolist() for lo, hi in zip(starts, ends)]


def _accuracy_by_class(right, labels, y, ids, C):
    """[{"class", "accuracy", "error_instance_ids"}] for classes 0..C-1; right: per-class count
    of correct labels (from the count table)."""
    support = np.bincount(y, minlength=C)
    errors = _ids_by_class(labels != y, y, ids, np.arange(C))
    return [{"class": c,
             "accuracy": float(right[c]) / float(support[c]) if support[c] else None,
             "error_instance_ids": errors[c]}
            for c in range(C)]


def evaluate_model_performance_and_compatibility_on_dataset(h1, h2, dataset, performance_metric=model_accuracy,
                                                            get_instance_metadata=None,
                                                            device="cpu", zero_division="warn",
                                                            _h1_outputs=None, _metric_dataset=None):
    """Everything the compatibility widget shows about h2 against h1 on dataset, as a
    JSON-serialisable dict:

    * ``models_error_overlap``: [h1's error ids, h2's error ids, ids both get wrong];
    * ``h2_incompatible_instance_ids_by_class``: [{"class", "incompatibleInstanceIds"}] for every
      class in sorted_classes: ids h1 gets right and h2 wrong;
    * ``sorted_classes``: the true classes present, sorted;
    * ``h1_accuracy_by_class``, ``h2_accuracy_by_class``: [{"class", "accuracy",
      "error_instance_ids"}] for every class of the models' output (accuracy None without samples);
    * ``h2_performance``: ``performance_metric(h2, dataset, device)`` (a float);
    * ``btc``, ``bec``: as compatibility_scores;
    * ``error_instances``: [{"instance_id", "metadata", "h1_prediction", "h2_prediction",
      "ground_truth"}] for every sample either model gets wrong, metadata being
      ``get_instance_metadata(instance_id)`` or "";
    * ``dataset_size``: the number of samples.

    Ids are instance ids, lists are in data set order."""
    _checks.check_device(device)
    _checks.check_model(h1, "h1")
    _checks.check_model(h2, "h2")
    if performance_metric is None:  # the documented default
        performance_metric = model_accuracy
    if not callable(performance_metric):
        raise TypeError("performance_metric must be a function metric(model, dataset, device), got %s"
                        % type(performance_metric).__name__)
    if get_instance_metadata is not None and not callable(get_instance_metadata):
        raise TypeError("get_instance_metadata must be a function of the instance id or None, got %s"
                        % type(get_instance_metadata).__name__)
    zd = _zero_division(zero_division)
    data = _engine.as_dataset(dataset, "dataset")
    l1, l2, y, ids, C = _predict_pair(h1, h2, data, _h1_outputs)
    table = _scores.count_table(l1, l2, y, num_classes=C)
    e2 = l2 != y

    if performance_metric is model_accuracy:
        h2_performance = float(np.count_nonzero(~e2)) / len(y)
    else:
        # the sweep passes its internal data set as dataset and the user's as _metric_dataset
        metric_data = dataset if _metric_dataset is None else _metric_dataset
        value = _checks.call_user(performance_metric, "performance_metric(h2, dataset, device)", h2, metric_data,
                                  device)
        try:
            h2_performance = float(value)
        except (TypeError, ValueError):
            raise TypeError("performance_metric must return a number, got %s" % type(value).__name__) from None

    return _evaluation(l1, l2, y, ids, C, table, h2_performance,
                       _scores.trust_compatibility_score(l1, l2, y, zero_division=zd),
                       _scores.error_compatibility_score(l1, l2, y, zero_division=zd), get_instance_metadata)


def _evaluation(l1, l2, y, ids, C, table, h2_performance, btc, bec, get_instance_metadata):
    """The evaluation dict (the keys above) from the two models' labels l1, l2 of the samples
    with labels y and instance ids ids, C classes, their count table, and the scores given;
    get_instance_metadata(instance_id) is called for every error instance, in data set order.
    (bcml.compare's widget builds it from labels alone.)"""
    e1, e2 = l1 != y, l2 != y
    sorted_classes = np.unique(y).tolist()
    incompatible = _ids_by_class(~e1 & e2, y, ids, np.asarray(sorted_classes, dtype=np.int64))
    either = np.flatnonzero(e1 | e2)
    error_ids = ids[either].tolist()
    if get_instance_metadata is not None:
        metadata = [_checks.call_user(get_instance_metadata, "get_instance_metadata(instance_id)", i)
                    for i in error_ids]
    else:
        metadata = [""] * len(error_ids)
    return {
        "models_error_overlap": [ids[e1].tolist(), ids[e2].tolist(), ids[e1 & e2].tolist()],
        "h2_incompatible_instance_ids_by_class": [{"class": c, "incompatibleInstanceIds": i}
                                                  for c, i in zip(sorted_classes, incompatible)],
        "sorted_classes": sorted_classes,
        "h1_accuracy_by_class": _accuracy_by_class(table[:, 0] + table[:, 1], l1, y, ids, C),
        "h2_accuracy_by_class": _accuracy_by_class(table[:, 0] + table[:, 2], l2, y, ids, C),
        "h2_performance": h2_performance,
        "btc": btc,
        "bec": bec,
        "error_instances": [
            {"instance_id": i, "metadata": m, "h1_prediction": p1, "h2_prediction": p2, "ground_truth": t}
            for i, m, p1, p2, t in zip(error_ids, metadata, l1[either].tolist(), l2[either].tolist(),
                                       y[either].tolist())],
        "dataset_size": int(len(y)),
    }


def evaluate_model_performance_and_compatibility(h1, h2, training_set, test_set, performance_metric=model_accuracy,
                                                 device="cpu", get_instance_metadata=None,
                                                 zero_division="warn"):
    """``{"training": ..., "test": ...}``: the evaluation of
    evaluate_model_performance_and_compatibility_on_dataset on each set (BCML's argument order:
    device comes before the keywords bcml adds)."""
    _checks.check_device(device)
    _engine.as_dataset(training_set, "training_set")
    _engine.as_dataset(test_set, "test_set")
    return {
        "training": evaluate_model_performance_and_compatibility_on_dataset(
            h1, h2, training_set, performance_metric, get_instance_metadata, device, zero_division),
        "test": evaluate_model_performance_and_compatibility_on_dataset(
            h1, h2, test_set, performance_metric, get_instance_metadata, device, zero_division),
    }


# ---- the lambda_c sweep (bcml/_sweep.py) -------------------------------------------------------
from .._sweep import compatibility_sweep  # noqa: E402,F401
