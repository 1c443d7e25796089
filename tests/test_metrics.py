"""bcml.metrics: model_accuracy and model_accuracy_by_class on hand-checked fixed-weight models
(see tests/_fixed_models.py), a NumPy reference, every data-set form and the argument checks."""
import numpy as np
import pytest

import bcml
from bcml.data import DataLoader, batches
from bcml.metrics import model_accuracy, model_accuracy_by_class
from bcml.models import MLPClassifier
from _fixed_models import P1, P2, Y, BinarySelector, hand_case, logits_for, selector


def _forms(X, y, ids=None):
    """The same 8 samples as a list of (x, y), of (ids, x, y) (batches 5 + 3) and a loader."""
    ids = np.arange(len(y)) if ids is None else ids
    return {
        "xy": [(X[:5], y[:5]), (X[5:], y[5:])],
        "ids": [(ids[:5], X[:5], y[:5]), (ids[5:], X[5:], y[5:])],
        "tensors": [(bcml.from_numpy(X[:3]), bcml.from_numpy(y[:3])),
                    (bcml.from_numpy(X[3:]), bcml.from_numpy(y[3:]))],
        "loader": DataLoader(X, y, batch_size=3, shuffle=True, seed=4, ids=ids),
    }


@pytest.mark.parametrize("form", ["xy", "ids", "tensors", "loader"])
def test_hand_accuracy(form):
    h1, h2, X, y = hand_case()
    ds = _forms(X, y)[form]
    assert model_accuracy(h1, ds) == 5 / 8
    assert model_accuracy(h2, ds) == 4 / 8
    assert isinstance(model_accuracy(h1, ds), float)


@pytest.mark.parametrize("form", ["xy", "ids", "loader"])
def test_hand_accuracy_by_class(form):
    h1, h2, X, y = hand_case()
    ds = _forms(X, y)[form]
    assert model_accuracy_by_class(h1, ds) == [
        {"class": 0, "accuracy": 2 / 3}, {"class": 1, "accuracy": 2 / 3}, {"class": 2, "accuracy": 1 / 2}]
    assert model_accuracy_by_class(h2, ds) == [
        {"class": 0, "accuracy": 2 / 3}, {"class": 1, "accuracy": 1 / 3}, {"class": 2, "accuracy": 1 / 2}]


def test_accuracy_pools_counts_over_batches():
    # batches of 5 and 3: h2 gets 4/5 and 0/3 right. BCML averaged the batches, (4/5 + 0/3) / 2;
    # bcml pools the counts: 4/8.
    h1, h2, X, y = hand_case()
    ds = [(X[:5], y[:5]), (X[5:], y[5:])]
    assert np.mean(P2[:5] == Y[:5]) == 4 / 5 and np.mean(P2[5:] == Y[5:]) == 0
    assert model_accuracy(h2, ds) == 0.5 != (4 / 5 + 0 / 3) / 2


def test_class_without_samples_gets_none():
    # 4 classes; no sample of class 3; h1 predicts class 3 for row 0 (an error of class 0)
    p1 = P1.copy()
    p1[0] = 3
    h1 = selector(0, 4)
    X = logits_for([p1, P2], 4)
    res = model_accuracy_by_class(h1, [(X, Y)])
    assert res == [{"class": 0, "accuracy": 1 / 3}, {"class": 1, "accuracy": 2 / 3},
                   {"class": 2, "accuracy": 1 / 2}, {"class": 3, "accuracy": None}]
    assert model_accuracy(h1, [(X, Y)]) == 4 / 8


@pytest.mark.parametrize("flat", [True, False])
def test_binary_models(flat):
    # x = (h1 logit, h2 logit); label = sigmoid(logit) >= 0.5 (logit 0 gives exactly 0.5: label 1)
    y = np.array([1, 0, 1, 0, 1, 0, 1, 0], dtype=np.float32)
    l1 = np.array([2, -2, -2, 2, 2, -2, 0, 2], dtype=np.float32)       # labels 1 0 0 1 1 0 1 1
    l2 = np.array([2, 2, 2, -2, -2, -2, 2, -2], dtype=np.float32)      # labels 1 1 1 0 0 0 1 0
    X = np.stack([l1, l2], axis=1)
    h1, h2 = BinarySelector(0, flat=flat), BinarySelector(1, flat=flat)
    ds = [(X[:4], y[:4]), (X[4:], y[4:])]
    assert model_accuracy(h1, ds) == 5 / 8
    assert model_accuracy(h2, ds) == 6 / 8
    assert model_accuracy_by_class(h1, ds) == [{"class": 0, "accuracy": 2 / 4}, {"class": 1, "accuracy": 3 / 4}]
    assert model_accuracy_by_class(h2, ds) == [{"class": 0, "accuracy": 3 / 4}, {"class": 1, "accuracy": 3 / 4}]
    # integer 0/1 targets too
    assert model_accuracy(h2, [(X, y.astype(np.int64))]) == 6 / 8


def test_against_numpy_reference():
    bcml.manual_seed(3)
    rng = np.random.default_rng(3)
    X = rng.standard_normal((203, 7)).astype(np.float32)
    y = rng.integers(0, 4, 203)
    model = MLPClassifier(7, 4, hidden_sizes=[6])
    with bcml.no_grad():
        logits = model(bcml.from_numpy(X))[0].numpy()
    pred = logits.argmax(axis=1)
    ds = batches(X, y, 16)
    assert model_accuracy(model, ds) == pytest.approx(np.mean(pred == y), abs=1e-15)
    expect = [{"class": c, "accuracy": float(np.mean(pred[y == c] == c))} for c in range(4)]
    got = model_accuracy_by_class(model, ds)
    assert [g["class"] for g in got] == [0, 1, 2, 3]
    np.testing.assert_allclose([g["accuracy"] for g in got], [e["accuracy"] for e in expect], rtol=1e-12)


def test_mode_is_left_alone():
    h1, _h2, X, y = hand_case()
    h1.train()
    model_accuracy(h1, [(X, y)])
    assert h1.training
    h1.eval()
    model_accuracy_by_class(h1, [(X, y)])
    assert not h1.training


def test_device():
    h1, _h2, X, y = hand_case()
    assert model_accuracy(h1, [(X, y)], device=bcml.device("cpu")) == 5 / 8
    for fn in (model_accuracy, model_accuracy_by_class):
        with pytest.raises(ValueError, match="device must be 'cpu'"):
            fn(h1, [(X, y)], device="cuda")
        with pytest.raises(ValueError, match="device"):
            fn(h1, [(X, y)], "cuda:0")


@pytest.mark.parametrize("fn", [model_accuracy, model_accuracy_by_class])
def test_bad_arguments(fn):
    h1, _h2, X, y = hand_case()
    with pytest.raises(TypeError, match="dataset must be a list of"):
        fn(h1, X)
    with pytest.raises(TypeError, match=r"dataset\[0\] must be a batch"):
        fn(h1, [X])
    with pytest.raises(TypeError, match="model must be a callable model"):
        fn("h1", [(X, y)])
    with pytest.raises(TypeError, match="class targets must be integers"):
        fn(h1, [(X, y.astype(bool))])
    assert fn(h1, [(X, y.astype(np.float32))]) == fn(h1, [(X, y)])           # float labels holding integers
    assert fn(h1, [(X, y.astype(np.float64).reshape(-1, 1))]) == fn(h1, [(X, y)])
    with pytest.raises(ValueError, match=r"dataset\[0\] y must hold labels .*non-integral value inf at index 1"):
        fn(h1, [(X, np.r_[y[:1], np.inf, y[2:]])])
    with pytest.raises(ValueError, match=r"class targets must lie in \[0, 3\).*got 3"):
        fn(h1, [(X, np.where(y == 2, 3, y))])
    with pytest.raises(ValueError, match="got -1"):
        fn(h1, [(X, y - 1)])
    with pytest.raises(ValueError, match="one label per sample"):
        fn(h1, [(X, np.stack([y, y], 1))])
    with pytest.raises(ValueError, match="same number of rows"):
        fn(h1, [(X, y[:5])])
    with pytest.raises(ValueError, match="empty"):
        fn(h1, [])
    with pytest.raises(TypeError, match="must return the triple"):
        fn(lambda x: "nonsense", [(X, y)])
    with pytest.raises(ValueError, match="binary targets must be 0 or 1"):
        fn(BinarySelector(0, columns=6), [(X, y)])
