"""bcml.helpers.training: hand-checked evaluation of fixed-weight models (tests/_fixed_models.py),
training helpers against the documented manual loop run from the same initial weights and
against PyTorch, real data (UCI breast cancer), and the argument checks."""
import copy
import json

import numpy as np
import pytest

import bcml
import bcml.nn.functional as F
from bcml import _engine
from bcml import scores as S
from bcml.data import DataLoader, batches
from bcml.helpers import training as T
from bcml.loss import (BCBinaryCrossEntropyLoss, BCCrossEntropyLoss, BCNLLLoss,
                       StrictImitationBinaryCrossEntropyLoss, StrictImitationCrossEntropyLoss,
                       StrictImitationKLDivergenceLoss)
from bcml.metrics import model_accuracy
from bcml.models import ConvNet, LogisticRegression, MLPClassifier
from bcml.optim import SGD
from bcml.scores import UndefinedMetricWarning
from _fixed_models import BinarySelector, hand_case, logits_for, selector, P1, P2, Y
from conftest import need_path


def t(a):
    return a if isinstance(a, bcml.Tensor) else bcml.from_numpy(np.ascontiguousarray(a))


def weights(model):
    return {k: v.numpy().copy() for k, v in model.state_dict().items()}


def assert_same_weights(a, b, rtol=1e-5, atol=1e-6):
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        np.testing.assert_allclose(wa[k], wb[k], rtol=rtol, atol=atol, err_msg=k)


def twin(model):
    return copy.deepcopy(model)


def documented_loop(bc_loss, optimizer, data, epochs, h2):
    """The loop of BCML's documentation, as a user writes it."""
    for _ in range(epochs):
        h2.train()
        for batch in data:
            data_x, target = t(batch[-2]), t(batch[-1])
            loss = bc_loss(data_x, target)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()


def tabular(n=100, d=5, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)).astype(np.float32)
    w = rng.standard_normal((d, classes))
    y = np.argmax(X @ w + 0.5 * rng.standard_normal((n, classes)), axis=1).astype(np.int64)
    return X, y


# ---- evaluation: the hand-checked case -------------------------------------------------------
def expected_evaluation(ids):
    i = [int(v) for v in ids]
    return {
        "models_error_overlap": [[i[3], i[5], i[7]], [i[1], i[5], i[6], i[7]], [i[5], i[7]]],
        "h2_incompatible_instance_ids_by_class": [
            {"class": 0, "incompatibleInstanceIds": [i[6]]},
            {"class": 1, "incompatibleInstanceIds": [i[1]]},
            {"class": 2, "incompatibleInstanceIds": []}],
        "sorted_classes": [0, 1, 2],
        "h1_accuracy_by_class": [
            {"class": 0, "accuracy": 2 / 3, "error_instance_ids": [i[3]]},
            {"class": 1, "accuracy": 2 / 3, "error_instance_ids": [i[7]]},
            {"class": 2, "accuracy": 1 / 2, "error_instance_ids": [i[5]]}],
        "h2_accuracy_by_class": [
            {"class": 0, "accuracy": 2 / 3, "error_instance_ids": [i[6]]},
            {"class": 1, "accuracy": 1 / 3, "error_instance_ids": [i[1], i[7]]},
            {"class": 2, "accuracy": 1 / 2, "error_instance_ids": [i[5]]}],
        "h2_performance": 0.5,
        "btc": 3 / 5,
        "bec": 2 / 4,
        "error_instances": [
            {"instance_id": i[r], "metadata": "", "h1_prediction": int(P1[r]), "h2_prediction": int(P2[r]),
             "ground_truth": int(Y[r])} for r in (1, 3, 5, 6, 7)],
        "dataset_size": 8,
    }


IDS = np.array([40, 11, 52, 13, 34, 95, 16, 77])


def hand_datasets():
    h1, h2, X, y = hand_case()
    return h1, h2, {
        "xy": ([(X[:5], y[:5]), (X[5:], y[5:])], np.arange(8)),
        "ids": ([(IDS[:5], X[:5], y[:5]), (IDS[5:], X[5:], y[5:])], IDS),
        "loader": (DataLoader(X, y, batch_size=3, shuffle=True, seed=2, ids=IDS), IDS),
        "one batch of tensors": ([(t(IDS), t(X), t(y))], IDS),
    }


@pytest.mark.parametrize("form", ["xy", "ids", "loader", "one batch of tensors"])
def test_evaluation_hand_checked(form):
    h1, h2, forms = hand_datasets()
    ds, ids = forms[form]
    ev = T.evaluate_model_performance_and_compatibility_on_dataset(h1, h2, ds, model_accuracy)
    assert ev == expected_evaluation(ids)
    json.dumps(ev, allow_nan=False)
    for key in ("btc", "bec", "h2_performance"):
        assert type(ev[key]) is float
    assert all(type(v) is int for v in ev["models_error_overlap"][1])


def test_evaluation_metadata_gets_the_instance_id():
    h1, h2, forms = hand_datasets()
    ds, ids = forms["ids"]
    seen = []

    def meta(instance_id):
        seen.append(instance_id)
        return "row with id %d" % instance_id

    ev = T.evaluate_model_performance_and_compatibility_on_dataset(h1, h2, ds, model_accuracy,
                                                                   get_instance_metadata=meta)
    assert seen == [11, 13, 95, 16, 77]
    assert [e["metadata"] for e in ev["error_instances"]] == ["row with id %d" % i for i in seen]


def test_evaluation_custom_metric_and_both_sets():
    h1, h2, forms = hand_datasets()
    ds, _ids = forms["ids"]
    calls = []

    def metric(model, dataset, device):
        calls.append((model, dataset, device))
        return np.float32(0.25)

    ev = T.evaluate_model_performance_and_compatibility(h1, h2, ds, forms["xy"][0], metric)
    assert set(ev) == {"training", "test"}
    assert ev["training"]["h2_performance"] == 0.25 and type(ev["training"]["h2_performance"]) is float
    assert calls[0] == (h2, ds, "cpu")
    assert ev["test"] == dict(expected_evaluation(np.arange(8)), h2_performance=0.25)
    with pytest.raises(TypeError, match="performance_metric must return a number"):
        T.evaluate_model_performance_and_compatibility_on_dataset(h1, h2, ds, lambda m, d, dev: "good")
    with pytest.raises(TypeError, match="performance_metric must be a function"):
        T.evaluate_model_performance_and_compatibility_on_dataset(h1, h2, ds, 0.5)
    with pytest.raises(TypeError, match="get_instance_metadata must be a function"):
        T.evaluate_model_performance_and_compatibility_on_dataset(h1, h2, ds, model_accuracy, "meta")


def test_evaluation_class_without_samples_is_null():
    p1 = P1.copy()
    p1[0] = 3  # h1 predicts the absent class 3 for row 0
    h1, h2 = selector(0, 4), selector(1, 4)
    X = logits_for([p1, P2], 4)
    ev = T.evaluate_model_performance_and_compatibility_on_dataset(h1, h2, [(X, Y)], model_accuracy)
    assert ev["sorted_classes"] == [0, 1, 2]
    assert ev["h1_accuracy_by_class"][0] == {"class": 0, "accuracy": 1 / 3, "error_instance_ids": [0, 3]}
    assert ev["h1_accuracy_by_class"][3] == {"class": 3, "accuracy": None, "error_instance_ids": []}
    assert ev["h2_accuracy_by_class"][3]["accuracy"] is None
    assert "null" in json.dumps(ev, allow_nan=False)
    # row 0 is now an error of h1 only: its prediction is reported
    assert ev["error_instances"][0] == {"instance_id": 0, "metadata": "", "h1_prediction": 3,
                                        "h2_prediction": 0, "ground_truth": 0}


@pytest.mark.parametrize("flat", [True, False])
def test_evaluation_binary(flat):
    y = np.array([1, 0, 1, 0, 1, 0, 1, 0], dtype=np.float32)
    l1 = np.array([2, -2, -2, 2, 2, -2, 0, 2], dtype=np.float32)       # labels 1 0 0 1 1 0 1 1
    l2 = np.array([2, 2, 2, -2, -2, -2, 2, -2], dtype=np.float32)      # labels 1 1 1 0 0 0 1 0
    X = np.stack([l1, l2], axis=1)
    h1, h2 = BinarySelector(0, flat=flat), BinarySelector(1, flat=not flat)
    ev = T.evaluate_model_performance_and_compatibility_on_dataset(h1, h2, [(X[:3], y[:3]), (X[3:], y[3:])])
    # h1 wrong {2, 3, 7}, h2 wrong {1, 4}; both right {0, 5, 6}
    assert ev["models_error_overlap"] == [[2, 3, 7], [1, 4], []]
    assert ev["btc"] == 3 / 5 and ev["bec"] == 0.0 and ev["h2_performance"] == 6 / 8
    assert ev["sorted_classes"] == [0, 1]
    assert ev["h2_incompatible_instance_ids_by_class"] == [
        {"class": 0, "incompatibleInstanceIds": [1]}, {"class": 1, "incompatibleInstanceIds": [4]}]
    assert ev["h1_accuracy_by_class"] == [{"class": 0, "accuracy": 0.5, "error_instance_ids": [3, 7]},
                                          {"class": 1, "accuracy": 0.75, "error_instance_ids": [2]}]
    assert [e["instance_id"] for e in ev["error_instances"]] == [1, 2, 3, 4, 7]
    assert ev["error_instances"][1] == {"instance_id": 2, "metadata": "", "h1_prediction": 0,
                                        "h2_prediction": 1, "ground_truth": 1}
    assert T.compatibility_scores(h1, h2, [(X, y.astype(np.int64))]) == (3 / 5, 0.0)


def test_compatibility_scores_hand_and_zero_division():
    h1, h2, forms = hand_datasets()
    for ds, _ids in forms.values():
        assert T.compatibility_scores(h1, h2, ds) == (3 / 5, 2 / 4)
    _h1, _h2, X, y = hand_case()
    # h2 = h1: h2 makes only h1's errors; h2 perfect: BEC undefined
    perfect = selector(1, 3)
    Xp = logits_for([P1, Y], 3)
    assert T.compatibility_scores(h1, h1, [(X, y)]) == (1.0, 1.0)
    with pytest.warns(UndefinedMetricWarning):
        assert T.compatibility_scores(h1, perfect, [(Xp, y)]) == (1.0, 0.0)
    btc, bec = T.compatibility_scores(h1, perfect, [(Xp, y)], zero_division=float("nan"))
    assert btc == 1.0 and np.isnan(bec)
    with pytest.raises(ValueError, match="zero_division"):
        T.compatibility_scores(h1, perfect, [(Xp, y)], zero_division=2)


def test_compatibility_scores_against_numpy():
    X, y = tabular(203, 6, 4, seed=5)
    bcml.manual_seed(5)
    h1, h2 = MLPClassifier(6, 4, [5]), LogisticRegression(6, 4)
    with bcml.no_grad():
        p1 = h1(t(X))[0].numpy().argmax(1)
        p2 = h2(t(X))[0].numpy().argmax(1)
    r1, r2 = p1 == y, p2 == y
    btc, bec = T.compatibility_scores(h1, h2, batches(X, y, 16))
    assert btc == pytest.approx(np.sum(r1 & r2) / np.sum(r1), abs=1e-15)
    assert bec == pytest.approx(np.sum(~r1 & ~r2) / np.sum(~r2), abs=1e-15)


# ---- the per-batch functions of BCML ---------------------------------------------------------
def test_batch_functions_hand_checked():
    h1, h2, X, y = hand_case()
    assert T.get_error_instance_indices(h1, X, y) == [3, 5, 7]
    assert T.get_error_instance_indices(h2, t(X), t(y)) == [1, 5, 6, 7]
    assert T.get_model_error_overlap(h1, h2, IDS, X, y) == ([13, 95, 77], [11, 95, 16, 77], [95, 77])
    assert T.get_model_error_overlap(h1, h2, list(IDS), t(X), t(y)) == ([13, 95, 77], [11, 95, 16, 77], [95, 77])
    assert T.get_model_error_overlap(h1, h2, None, X, y) == ([3, 5, 7], [1, 5, 6, 7], [5, 7])
    # union of the errors {1, 3, 5, 6, 7}: h1 3/5, h2 4/5, common 2/5
    assert T.get_normalized_model_error_overlap(h1, h2, X, y) == (3 / 5, 4 / 5, 2 / 5)
    assert T.get_normalized_model_error_overlap(h1, h1, X[[0, 1, 2]], y[[0, 1, 2]]) == (0.0, 0.0, 0.0)
    # h2's errors: rows 1 (class 1), 5 (class 2), 6 (class 0), 7 (class 1)
    assert T.get_error_fraction_by_class(h2, X, y) == {0: 0.25, 1: 0.5, 2: 0.25}
    assert T.get_error_fraction_by_class(h1, X[:3], y[:3]) == {0: 0.0, 1: 0.0, 2: 0.0}
    with pytest.raises(ValueError, match="ids"):
        T.get_model_error_overlap(h1, h2, IDS[:3], X, y)
    with pytest.raises(ValueError, match="device"):
        T.get_error_instance_indices(h1, X, y, device="cuda")
    # float targets holding integers are those integers (issue 11); bool and non-integral refused
    assert T.get_error_fraction_by_class(h2, X, y.astype(np.float32)) == {0: 0.25, 1: 0.5, 2: 0.25}
    assert T.get_model_error_overlap(h1, h2, IDS, t(X), t(y.astype(np.float32)).reshape(-1, 1)) == \
        ([13, 95, 77], [11, 95, 16, 77], [95, 77])
    with pytest.raises(ValueError, match=r"batched_evaluation_target must hold labels .*non-integral value 1\.5 at index 2"):
        T.get_error_fraction_by_class(h1, X, np.r_[y[:2], 1.5, y[3:]])
    with pytest.raises(TypeError, match="class targets must be integers"):
        T.get_error_fraction_by_class(h1, X, y.astype(bool))
    with pytest.raises(ValueError, match="same number of classes|same kind of output"):
        T.get_normalized_model_error_overlap(h1, LogisticRegression(6, 4), X, y)


# ---- plain training --------------------------------------------------------------------------
def manual_plain_loop(net, optimizer, data, epochs, binary=False):
    losses = []
    for _ in range(epochs):
        net.train()
        for batch in data:
            optimizer.zero_grad()
            out = net(t(batch[-2]))
            if binary:
                loss = F.binary_cross_entropy(out.reshape(-1), t(batch[-1]).float())
            else:
                loss = F.nll_loss(out[2], t(batch[-1]))
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    return losses


def test_train_matches_manual_loop_and_returns_bcml_lists():
    X, y = tabular(100)
    data = batches(X, y, 8)          # 13 batches, the last of 4
    test_data = batches(X[:40], y[:40], 16)
    bcml.manual_seed(0)
    net = LogisticRegression(5, 3)
    ref = twin(net)
    out = T.train(2, net, SGD(net.parameters(), lr=0.1, momentum=0.9), F.nll_loss, data, test_data, 8, 16)
    losses = manual_plain_loop(ref, SGD(ref.parameters(), lr=0.1, momentum=0.9), data, 2)
    assert_same_weights(net, ref)
    train_counter, test_counter, train_losses, test_losses = out
    assert train_counter == [0, 80, 100, 180]          # every 10th batch: batches 0 and 10
    assert test_counter == [0, 100, 200]
    np.testing.assert_allclose(train_losses, [losses[0], losses[10], losses[13], losses[23]], rtol=1e-5)
    assert len(test_losses) == 3 and test_losses[2] < test_losses[0]
    # the last test loss: mean NLL over the 40 test samples (NumPy reference)
    with bcml.no_grad():
        logp = net(t(X[:40]))[2].numpy().astype(np.float64)
    assert test_losses[2] == pytest.approx(-np.mean(logp[np.arange(40), y[:40]]), rel=1e-5)
    assert not net.training  # test() leaves the network in eval mode, as BCML


def test_train_epoch_and_test_alone():
    X, y = tabular(50)   # 13 batches of up to 4
    bcml.manual_seed(1)
    net = LogisticRegression(5, 3)
    ref = twin(net)
    counter, losses = T.train_epoch(3, net, SGD(net.parameters(), lr=0.2), F.nll_loss, batches(X, y, 4), 4)
    manual = manual_plain_loop(ref, SGD(ref.parameters(), lr=0.2), batches(X, y, 4), 1)
    assert_same_weights(net, ref)
    assert counter == [100, 100 + 40] and np.allclose(losses, [manual[0], manual[10]], rtol=1e-5)
    # a loss module (reduction attribute) and a loss without a reduction keyword give the same test loss
    a = T.test(net, F.nll_loss, [(X, y)], 50)
    b = T.test(net, bcml.nn.NLLLoss(), [(X, y)], 50)
    c = T.test(net, lambda out, target: F.nll_loss(out, target), batches(X, y, 7), 7)
    assert a == pytest.approx(b, rel=1e-6) and a == pytest.approx(c, rel=1e-6)


class FlatLogistic(bcml.nn.Module):
    """A binary model with output (B,)."""

    def __init__(self, d):
        super().__init__()
        self.linear = bcml.nn.Linear(d, 1)

    def forward(self, x):
        return self.linear(x).sigmoid().reshape(-1)


@pytest.mark.parametrize("flat", [True, False])
def test_train_binary_model(flat):
    X, y = tabular(64, 4, 2, seed=2)
    data = batches(X, y, 16)  # integer 0/1 targets: converted to float for the binary loss
    bcml.manual_seed(2)
    net = FlatLogistic(4) if flat else LogisticRegression(4, 1)
    ref = twin(net)
    _, _, train_losses, test_losses = T.train(3, net, SGD(net.parameters(), lr=0.5), F.binary_cross_entropy,
                                              data, data, 16, 16)
    manual_plain_loop(ref, SGD(ref.parameters(), lr=0.5), data, 3, binary=True)
    assert_same_weights(net, ref)
    assert test_losses[-1] < test_losses[0]


# ---- compatibility training ------------------------------------------------------------------
def compat_setup(seed=0, n=100, d=5, classes=3):
    X, y = tabular(n, d, classes, seed)
    bcml.manual_seed(seed)
    h1 = LogisticRegression(d, classes)
    T.train(2, h1, SGD(h1.parameters(), lr=0.1), F.nll_loss, batches(X[:30], y[:30], 10),
            [(X, y)], 10, 100)
    h1.eval()
    h2 = MLPClassifier(d, classes, [8])
    return h1, h2, X, y


@pytest.mark.parametrize("Loss", [BCCrossEntropyLoss, BCNLLLoss, StrictImitationCrossEntropyLoss,
                                  StrictImitationKLDivergenceLoss])
def test_train_compatibility_matches_documented_loop(Loss):
    h1, h2, X, y = compat_setup()
    ref = twin(h2)
    data = [(np.arange(i, min(i + 16, 100)) + 1000, X[i:i + 16], y[i:i + 16]) for i in range(0, 100, 16)]
    opt = SGD(h2.parameters(), lr=0.1, momentum=0.9)
    out = T.train_compatibility(3, h2, opt, Loss(h1, h2, 0.7), data, data, 16, 16)
    documented_loop(Loss(h1, ref, 0.7), SGD(ref.parameters(), lr=0.1, momentum=0.9), data, 3, ref)
    assert_same_weights(h2, ref)
    train_counter, test_counter, train_losses, test_losses = out
    assert train_counter == [0, 100, 200] and test_counter == [0, 100, 200, 300]
    assert test_losses[-1] < test_losses[0]
    # the test loss: the loss summed over the batches by hand, divided by the number of samples
    ref.eval()
    bc = Loss(h1, ref, 0.7)
    with bcml.no_grad():
        total = sum(bc(t(b[1]), t(b[2]), reduction="sum").item() for b in data)
    assert test_losses[-1] == pytest.approx(total / 100, rel=1e-5)
    assert T.test_compatibility(h2, Loss(h1, h2, 0.7), data, 16) == [pytest.approx(total / 100, rel=1e-5)]


def test_train_compatibility_with_a_shuffled_loader():
    h1, h2, X, y = compat_setup(seed=3)
    ref = twin(h2)
    loader = DataLoader(X, y, batch_size=12, shuffle=True, seed=9)
    ref_loader = DataLoader(X, y, batch_size=12, shuffle=True, seed=9)
    T.train_compatibility(2, h2, SGD(h2.parameters(), lr=0.1, momentum=0.5),
                          BCCrossEntropyLoss(h1, h2, 1.0), loader, [(X, y)], 12, 100)
    opt = SGD(ref.parameters(), lr=0.1, momentum=0.5)
    bc = BCCrossEntropyLoss(h1, ref, 1.0)
    for _ in range(2):
        documented_loop(bc, opt, ref_loader, 1, ref)   # iterating the loader draws its next order
    assert_same_weights(h2, ref)
    assert loader.epoch == ref_loader.epoch == 2


def test_train_new_error_and_strict_imitation_match_documented_loop():
    h1, h2, X, y = compat_setup(seed=4)
    data = batches(X, y, 20)
    for fn, Loss, kwargs in ((T.train_new_error, BCCrossEntropyLoss, None),
                             (T.train_strict_imitation, StrictImitationKLDivergenceLoss, {"num_classes": 3})):
        h2b = twin(h2)
        ref = twin(h2)
        out = fn(h1, h2b, 2, data, data, 20, 20, SGD, {"lr": 0.05, "momentum": 0.9}, Loss, 0.5, kwargs)
        documented_loop(Loss(h1, ref, 0.5, **(kwargs or {})), SGD(ref.parameters(), lr=0.05, momentum=0.9),
                        data, 2, ref)
        assert_same_weights(h2b, ref)
        train_counter, test_counter, train_losses, test_losses = out
        assert test_counter == [0, 100, 200] and test_losses[-1] < test_losses[0]
    # the keyword arguments reach the loss: num_classes is checked against the outputs
    with pytest.raises(ValueError, match="num_classes"):
        T.train_strict_imitation(h1, twin(h2), 1, data, data, 20, 20, SGD, {"lr": 0.05},
                                 StrictImitationKLDivergenceLoss, 0.5, {"num_classes": 4})


def test_binary_compatibility_training():
    X, y = tabular(80, 4, 2, seed=6)
    data = batches(X, y, 16)  # integer targets
    bcml.manual_seed(6)
    h1 = LogisticRegression(4, 1)
    T.train(1, h1, SGD(h1.parameters(), lr=0.5), F.binary_cross_entropy, data, data, 16, 16)
    h1.eval()
    h2 = FlatLogistic(4)
    ref = twin(h2)
    out = T.train_new_error(h1, h2, 3, data, data, 16, 16, SGD, {"lr": 0.5}, BCBinaryCrossEntropyLoss, 0.8,
                            {"discriminant_pivot": 0.4})
    documented_loop(BCBinaryCrossEntropyLoss(h1, ref, 0.8, discriminant_pivot=0.4), SGD(ref.parameters(), lr=0.5),
                    data, 3, ref)
    assert_same_weights(h2, ref)
    assert out[3][-1] < out[3][0]
    with pytest.raises(ValueError, match="binary targets must be 0 or 1"):
        T.train_new_error(h1, h2, 1, batches(X, y * 2, 16), data, 16, 16, SGD, {"lr": 0.5},
                          BCBinaryCrossEntropyLoss, 0.8)


def test_dropout_h2_matches_documented_loop():
    # the argument checks run the models on the first batch in eval mode: no dropout mask is
    # drawn, so training draws exactly the masks of the documented loop (same seed)
    rng = np.random.default_rng(7)
    X = rng.standard_normal((24, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, 24)
    data = batches(X, y, 8)
    bcml.manual_seed(1)
    h1 = ConvNet().eval()
    h2 = ConvNet()
    ref = twin(h2)
    bcml.manual_seed(5)
    T.train_new_error(h1, h2, 1, data, data, 8, 8, SGD, {"lr": 0.05, "momentum": 0.9}, BCCrossEntropyLoss, 0.5)
    bcml.manual_seed(5)
    documented_loop(BCCrossEntropyLoss(h1, ref, 0.5), SGD(ref.parameters(), lr=0.05, momentum=0.9), data, 1, ref)
    assert_same_weights(h2, ref)


def test_h1_in_training_mode_runs_per_batch():
    # h1 left in training mode (dropout): it cannot be cached; the loss runs it on every batch,
    # drawing its masks in the documented loop's order
    rng = np.random.default_rng(8)
    X = rng.standard_normal((16, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, 16)
    data = batches(X, y, 8)
    bcml.manual_seed(2)
    h1, h2 = ConvNet(), ConvNet()
    ref = twin(h2)
    bcml.manual_seed(6)
    T.train_compatibility_epoch(1, h2, SGD(h2.parameters(), lr=0.05), BCCrossEntropyLoss(h1, h2, 1.0), data, 8)
    bcml.manual_seed(6)
    documented_loop(BCCrossEntropyLoss(h1, ref, 1.0), SGD(ref.parameters(), lr=0.05), data, 1, ref)
    assert_same_weights(h2, ref)
    assert h1.training


class MyCompatibilityLoss:
    """A user's own loss in BCML's style: loss(x, y, reduction) running h2 itself."""

    def __init__(self, h2):
        self.h2 = h2

    def __call__(self, x, y, reduction="mean"):
        return F.cross_entropy(self.h2(x)[0], y, reduction=reduction)


def test_a_users_own_loss_is_called_as_bcml_does():
    h1, h2, X, y = compat_setup(seed=9)
    ref = twin(h2)
    data = batches(X, y, 25)
    out = T.train_compatibility(2, h2, SGD(h2.parameters(), lr=0.1), MyCompatibilityLoss(h2), data, data, 25, 25)
    documented_loop(MyCompatibilityLoss(ref), SGD(ref.parameters(), lr=0.1), data, 2, ref)
    assert_same_weights(h2, ref)
    with bcml.no_grad():
        ce = F.cross_entropy(h2(t(X))[0], t(y)).item()
    assert out[3][-1] == pytest.approx(ce, rel=1e-5)


def test_helpers_run_through_the_engine(monkeypatch):
    calls = {"train_epoch": [], "predict": []}
    real_train_epoch, real_predict = _engine.train_epoch, _engine.predict

    def train_epoch(step, data, optimizer, cache=None, session=None, **kw):
        calls["train_epoch"].append(cache is not None)
        return real_train_epoch(step, data, optimizer, cache, session=session, **kw)

    def predict(model, data, who="model"):
        calls["predict"].append(who)
        return real_predict(model, data, who)

    monkeypatch.setattr(_engine, "train_epoch", train_epoch)
    monkeypatch.setattr(_engine, "predict", predict)
    h1, h2, X, y = compat_setup(seed=10)
    calls["train_epoch"].clear()
    calls["predict"].clear()
    data = batches(X, y, 25)
    T.train_new_error(h1, h2, 3, data, data, 25, 25, SGD, {"lr": 0.1}, BCCrossEntropyLoss, 0.5)
    assert calls["train_epoch"] == [True, True, True]   # one call per epoch, with h1's cache
    # h1 once per data set (train and test), h2 once per test (before training, after each epoch)
    assert calls["predict"].count("h1") == 2 and calls["predict"].count("h2") == 4
    calls["predict"].clear()
    T.evaluate_model_performance_and_compatibility_on_dataset(h1, h2, data)
    assert calls["predict"] == ["h1", "h2"]
    calls["train_epoch"].clear()
    T.train(2, h2, SGD(h2.parameters(), lr=0.1), F.nll_loss, data, data, 25, 25)
    assert calls["train_epoch"] == [False, False]


def test_train_new_error_matches_pytorch(torch):
    X, y = tabular(60, 5, 3, seed=11)
    data = batches(X, y, 16)  # 16, 16, 16, 12
    bcml.manual_seed(11)
    torch.manual_seed(11)
    h1, h2 = LogisticRegression(5, 3).eval(), LogisticRegression(5, 3)
    th1, th2 = torch.nn.Linear(5, 3), torch.nn.Linear(5, 3)
    # weights both ways: bcml's h1 into PyTorch, PyTorch's h2 into bcml
    th1.load_state_dict({"weight": torch.from_numpy(h1.linear.weight.detach().numpy().copy()),
                         "bias": torch.from_numpy(h1.linear.bias.detach().numpy().copy())})
    h2.load_state_dict({"linear.weight": th2.weight.detach(), "linear.bias": th2.bias.detach()})
    lam = 0.7
    out = T.train_new_error(h1, h2, 3, data, data, 16, 16, SGD, {"lr": 0.1, "momentum": 0.9},
                            BCCrossEntropyLoss, lam)

    def torch_loss(xb, yb, reduction="mean"):
        with torch.no_grad():
            in_s = (th1(xb).argmax(1) == yb).float()
        ce = torch.nn.functional.cross_entropy(th2(xb), yb, reduction="none")
        per = ce + lam * in_s * ce
        return per.mean() if reduction == "mean" else per.sum()

    opt = torch.optim.SGD(th2.parameters(), lr=0.1, momentum=0.9)
    for _ in range(3):
        for _ids, xb, yb in data:
            loss = torch_loss(torch.from_numpy(xb.numpy()), torch.from_numpy(yb.numpy()))
            loss.backward()
            opt.step()
            opt.zero_grad()
    np.testing.assert_allclose(h2.linear.weight.detach().numpy(), th2.weight.detach().numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(h2.linear.bias.detach().numpy(), th2.bias.detach().numpy(), rtol=1e-4, atol=1e-6)
    with torch.no_grad():
        expect = torch_loss(torch.from_numpy(X), torch.from_numpy(y), "sum").item() / 60
    assert out[3][-1] == pytest.approx(expect, rel=1e-5)


# ---- argument checks -------------------------------------------------------------------------
def new_error_args(h1, h2, X, y):
    data = batches(X, y, 10)
    return dict(h1=h1, h2=h2, number_of_epochs=1, training_set=data, test_set=data, batch_size_train=10,
                batch_size_test=10, OptimizerClass=SGD, optimizer_kwargs={"lr": 0.1},
                NewErrorLossClass=BCCrossEntropyLoss, lambda_c=0.5, new_error_loss_kwargs=None, device="cpu")


BAD_NEW_ERROR = [
    ("device", "cuda", ValueError, "device must be 'cpu'"),
    ("number_of_epochs", 0, ValueError, "number_of_epochs must be a positive int"),
    ("number_of_epochs", 1.5, TypeError, "number_of_epochs must be a positive int"),
    ("number_of_epochs", True, TypeError, "number_of_epochs"),
    ("training_set", "data", TypeError, "training_set must be a list of"),
    ("test_set", 5, TypeError, "test_set must be a list of"),
    ("training_set", [(np.zeros((3, 6), np.float32),)], TypeError, r"training_set\[0\] must be a batch"),
    ("batch_size_train", 0, ValueError, "batch_size_train"),
    ("batch_size_test", "10", TypeError, "batch_size_test"),
    ("lambda_c", -0.5, ValueError, "lambda_c"),
    ("lambda_c", float("nan"), ValueError, "lambda_c"),
    ("lambda_c", "big", TypeError, "lambda_c"),
    ("OptimizerClass", "SGD", TypeError, "OptimizerClass must be a class"),
    ("optimizer_kwargs", [("lr", 0.1)], TypeError, "optimizer_kwargs must be a dict"),
    ("optimizer_kwargs", {"lr": -1.0}, ValueError, r"optimizer_kwargs.*Invalid learning rate|optimizer_kwargs.*lr"),
    ("optimizer_kwargs", {"speed": 1.0}, TypeError, "optimizer_kwargs"),
    ("NewErrorLossClass", 3, TypeError, "NewErrorLossClass must be a class"),
    ("new_error_loss_kwargs", {"pivot": 1}, TypeError, "new_error_loss_kwargs"),
    ("new_error_loss_kwargs", "none", TypeError, "new_error_loss_kwargs must be a dict"),
    ("h1", None, TypeError, "h1 must be a callable model"),
    ("h2", "model", TypeError, "h2 must be a callable model"),
]


@pytest.mark.parametrize("name,value,exc,match", BAD_NEW_ERROR,
                         ids=[b[0] + "-" + repr(b[1])[:12] for b in BAD_NEW_ERROR])
def test_train_new_error_bad_arguments_raise_before_training(name, value, exc, match):
    h1, h2, X, _y = hand_case()
    h2 = MLPClassifier(6, 3, [4])
    before = weights(h2)
    args = new_error_args(h1, h2, X, Y)
    args[name] = value
    with pytest.raises(exc, match=match):
        T.train_new_error(**args)
    if name != "h2":
        after = weights(h2)
        assert all(np.array_equal(before[k], after[k]) for k in before)


def test_optimizer_and_loss_instances_are_not_classes():
    h1, _h2, X, _y = hand_case()
    h2 = MLPClassifier(6, 3, [4])
    args = new_error_args(h1, h2, X, Y)
    with pytest.raises(TypeError, match="OptimizerClass must be a class"):
        T.train_new_error(**dict(args, OptimizerClass=SGD(h2.parameters(), lr=0.1)))
    with pytest.raises(TypeError, match="NewErrorLossClass must be a class"):
        T.train_new_error(**dict(args, NewErrorLossClass=BCCrossEntropyLoss(h1, h2, 0.5)))


class Wrapped(bcml.nn.Module):
    """model's parameters with its output passed through change (a broken model)."""

    def __init__(self, model, change):
        super().__init__()
        self.model = model
        self.change = change

    def forward(self, x):
        return self.change(self.model(x))


def test_bad_targets_and_outputs_raise_before_training():
    h1, _h2, X, y = hand_case()
    h2 = MLPClassifier(6, 3, [4])
    before = weights(h2)

    def run(train_set, test_set=None, h1_=h1, h2_=h2):
        args = new_error_args(h1_, h2_, X, y)
        args["training_set"] = train_set
        args["test_set"] = test_set if test_set is not None else train_set
        T.train_new_error(**args)

    good = batches(X, y, 4)
    with pytest.raises(TypeError, match="training_set: class targets must be integers"):
        run(batches(X, y.astype(bool), 4))
    with pytest.raises(ValueError, match=r"training_set\[1\] y must hold labels .*non-integral value nan at index 0"):
        run(batches(X, np.r_[y[:4], np.nan, y[5:]].astype(np.float32), 4))
    with pytest.raises(ValueError, match=r"test_set: class targets must lie in \[0, 3\)"):
        run(good, batches(X, y + 1, 4))           # the test set is checked before training, too
    with pytest.raises(ValueError, match="one label per sample"):
        run([(X, np.stack([y, y], 1))])
    with pytest.raises(ValueError, match="h1 and h2 must have the same number of classes; h1 returns 3, h2 4"):
        run(good, h2_=MLPClassifier(6, 4, [4]))
    with pytest.raises(ValueError, match="both be classifiers or both binary"):
        run(good, h2_=LogisticRegression(6, 1))
    with pytest.raises(ValueError, match="returned 2 outputs for the first batch of training_set, which has 4"):
        run(good, h2_=Wrapped(h2, lambda out: tuple(o[:2] for o in out)))
    with pytest.raises(TypeError, match="h2 must return the triple"):
        run(good, h2_=Wrapped(h2, lambda out: [out[0]]))
    after = weights(h2)
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_other_helpers_check_their_arguments():
    h1, h2, X, y = hand_case()
    data = batches(X, y, 4)
    opt = SGD(h2.parameters(), lr=0.1)
    loss = BCCrossEntropyLoss(h1, h2, 0.5)
    with pytest.raises(ValueError, match="epoch must be a positive int"):
        T.train_compatibility_epoch(0, h2, opt, loss, data, 4)
    with pytest.raises(TypeError, match="optimizer must be an optimizer"):
        T.train_compatibility(1, h2, "sgd", loss, data, data, 4, 4)
    with pytest.raises(ValueError, match="loss_function.h2 is not h2"):
        T.train_compatibility(1, h2, opt, BCCrossEntropyLoss(h1, selector(1, 3), 0.5), data, data, 4, 4)
    with pytest.raises(TypeError, match="loss_function must be callable"):
        T.train(1, h2, opt, "nll", data, data, 4, 4)
    with pytest.raises(ValueError, match="device"):
        T.train(1, h2, opt, F.nll_loss, data, data, 4, 4, device="gpu")
    with pytest.raises(TypeError, match="network must be a callable model"):
        T.test(None, F.nll_loss, data, 4)
    with pytest.raises(TypeError, match="test_set must be a list"):
        T.test_compatibility(h2, loss, {"x": X}, 4)
    with pytest.raises(TypeError, match="dataset must be a list"):
        T.compatibility_scores(h1, h2, X)
    with pytest.raises(ValueError, match="device"):
        T.evaluate_model_performance_and_compatibility(h1, h2, data, data, device="cuda")
    with pytest.raises(TypeError, match="training_set must be a list"):
        T.evaluate_model_performance_and_compatibility(h1, h2, None, data)
    with pytest.raises(TypeError, match="optimizer must be an optimizer"):
        T.train_epoch(1, h2, None, F.nll_loss, data, 4)
    # BCML's positional order: (h1, h2, training_set, test_set, performance_metric, device)
    ev = T.evaluate_model_performance_and_compatibility(h1, h2, data, data, model_accuracy, "cpu")
    assert ev["test"]["btc"] == 3 / 5


def test_model_accuracy_is_reexported():
    assert T.model_accuracy is model_accuracy
    assert bcml.helpers.training.model_accuracy_by_class is bcml.metrics.model_accuracy_by_class


# ---- real data -------------------------------------------------------------------------------
def test_breast_cancer_evaluation(shared_data):
    need_path(shared_data / "breast-cancer-wisconsin.data")
    from bcml.datasets import load_breast_cancer
    d = load_breast_cancer(shared_data)
    train_set = batches(d.X_train, d.y_train, 32, shuffle=True, seed=0)
    test_set = batches(d.X_test, d.y_test, 32)
    bcml.manual_seed(0)
    h1 = LogisticRegression(9, 2)
    T.train(2, h1, SGD(h1.parameters(), lr=0.01), F.nll_loss, train_set[:2], test_set, 32, 32)
    h1.eval()
    h2 = MLPClassifier(9, 2, [16, 8])
    T.train_new_error(h1, h2, 10, train_set, test_set, 32, 32, SGD, {"lr": 0.05, "momentum": 0.9},
                      BCCrossEntropyLoss, 0.5)
    h2.eval()
    ev = T.evaluate_model_performance_and_compatibility(h1, h2, train_set, test_set, model_accuracy)
    json.dumps(ev, allow_nan=False)
    keys = {"models_error_overlap", "h2_incompatible_instance_ids_by_class", "sorted_classes",
            "h1_accuracy_by_class", "h2_accuracy_by_class", "h2_performance", "btc", "bec",
            "error_instances", "dataset_size"}
    for part, X, y in (("training", d.X_train, d.y_train), ("test", d.X_test, d.y_test)):
        e = ev[part]
        assert set(e) == keys
        with bcml.no_grad():
            p1 = h1(t(X))[0].argmax(dim=1).numpy()
            p2 = h2(t(X))[0].argmax(dim=1).numpy()
        assert e["btc"] == S.trust_compatibility_score(p1, p2, y)
        assert e["bec"] == S.error_compatibility_score(p1, p2, y)
        assert e["h2_performance"] == pytest.approx(np.mean(p2 == y), abs=1e-15)
        assert e["dataset_size"] == len(y) and e["sorted_classes"] == [0, 1]
        # instance ids are the rows of X (batches() numbers them before shuffling)
        assert sorted(e["models_error_overlap"][0]) == np.flatnonzero(p1 != y).tolist()
        assert sorted(e["models_error_overlap"][1]) == np.flatnonzero(p2 != y).tolist()
        assert sorted(e["models_error_overlap"][2]) == np.flatnonzero((p1 != y) & (p2 != y)).tolist()
        assert sorted(i for c in e["h2_incompatible_instance_ids_by_class"] for i in c["incompatibleInstanceIds"]) \
            == np.flatnonzero((p1 == y) & (p2 != y)).tolist()
    assert ev["test"]["h2_performance"] > 0.9
    assert ev["test"]["btc"] > 0.9


# ---- binary targets (B,) and (B, 1), float or integer (issue 11) ------------------------------
class _FlatSigmoid(bcml.nn.Module):
    """A binary model with a (B,) output (the other model shape is nn.Sequential's (B, 1))."""

    def __init__(self):
        super().__init__()
        self.l = bcml.nn.Linear(4, 1)

    def forward(self, x):
        return self.l(x).sigmoid().reshape(-1)


def _binary_run(make, y, loader, tmp):
    """Every helper on one binary update: returns what each gave (plain training and test
    losses, compatibility training losses, evaluation, scores, metrics, the sweep's summary)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 4)).astype(np.float32)
    data = DataLoader(X, y, batch_size=10) if loader else [(X[i:i + 10], y[i:i + 10]) for i in range(0, 40, 10)]
    bcml.manual_seed(0)
    h1, h2 = make(), make()
    out = [T.train(2, h1, SGD(h1.parameters(), lr=0.5), F.binary_cross_entropy, data, data, 10, 10),
           T.test(h1, F.binary_cross_entropy, data, 10)]
    h1.eval()
    out.append(T.train_new_error(h1, h2, 1, data, data, 10, 10, SGD, {"lr": 0.5}, BCBinaryCrossEntropyLoss, 0.5))
    out.append(T.train_strict_imitation(h1, h2, 1, data, data, 10, 10, SGD, {"lr": 0.5},
                                        StrictImitationBinaryCrossEntropyLoss, 0.5))
    out.append(T.evaluate_model_performance_and_compatibility_on_dataset(h1, h2, data))
    out.append(T.compatibility_scores(h1, h2, data))
    out.append(model_accuracy(h2, data))
    out.append(T.compatibility_sweep(str(tmp), 1, h1, h2, data, data, 10, 10, SGD, {"lr": 0.5},
                                     BCBinaryCrossEntropyLoss, StrictImitationBinaryCrossEntropyLoss,
                                     lambda_c_stepsize=1.0, n_jobs=1, progress=False))
    return X, h1, h2, out


@pytest.mark.parametrize("make", [_FlatSigmoid, lambda: bcml.nn.Sequential(bcml.nn.Linear(4, 1), bcml.nn.Sigmoid())],
                         ids=["output(B,)", "output(B,1)"])
@pytest.mark.parametrize("loader", [False, True], ids=["batches", "loader"])
def test_binary_targets_b_and_b1_alike(make, loader, tmp_path):
    """The helpers give the same results for targets (B,) int64 (the reference form), (B,) and
    (B, 1) float32 (BCML's binary notebook), (B, 1) int64 and (B,) float64, with a (B,) or a
    (B, 1) model output; the scores agree with bcml.scores on the models' own predictions."""
    y = (np.random.default_rng(0).normal(size=(40, 4))[:, 0] > 0).astype(np.int64)
    X, h1, h2, want = _binary_run(make, y, loader, tmp_path / "ref")
    for k, yy in enumerate((y.astype(np.float32), y.astype(np.float32).reshape(-1, 1), y.reshape(-1, 1),
                            y.astype(np.float64))):
        _, _, _, got = _binary_run(make, yy, loader, tmp_path / str(k))
        assert got == want
    with bcml.no_grad():
        l1 = (h1(bcml.tensor(X)).numpy().reshape(-1) >= 0.5).astype(np.int64)
        l2 = (h2(bcml.tensor(X)).numpy().reshape(-1) >= 0.5).astype(np.int64)
    ev = want[4]
    assert ev["btc"] == S.trust_compatibility_score(l1, l2, y) and ev["bec"] == S.error_compatibility_score(l1, l2, y)
    assert want[6] == pytest.approx(np.mean(l2 == y), abs=1e-15)


def test_binary_targets_refused_by_value():
    X = np.zeros((4, 4), np.float32)
    h = bcml.nn.Sequential(bcml.nn.Linear(4, 1), bcml.nn.Sigmoid())
    with pytest.raises(ValueError, match="binary targets must be 0 or 1, got 2"):
        model_accuracy(h, [(X, np.array([0.0, 1.0, 2.0, 1.0]))])
    with pytest.raises(ValueError, match=r"dataset\[0\] y must hold labels .*non-integral value 0.5 at index 3"):
        model_accuracy(h, [(X, np.array([[0.0], [1.0], [1.0], [0.5]], np.float32))])
    with pytest.raises(ValueError, match="one label per sample"):
        model_accuracy(h, [(X, np.zeros((4, 2), np.float32))])
