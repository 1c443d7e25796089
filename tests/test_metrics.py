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


# ---- bcml.metrics.roc_auc_score and log_loss (scikit-learn's array metrics) ------------------
from conftest import need  # noqa: E402
from bcml.metrics import log_loss, roc_auc_score  # noqa: E402


def test_roc_auc_hand_cases():
    # 2 positives (0.8, 0.4), 2 negatives (0.4, 0.1): pairs (0.8>0.4, 0.8>0.1, 0.4=0.4 half, 0.4>0.1) = 3.5/4
    assert roc_auc_score([0, 1, 1, 0], [0.1, 0.8, 0.4, 0.4]) == 3.5 / 4
    # string labels: the greater label ("yes") is positive
    assert roc_auc_score(np.array(["no", "yes", "yes", "no"]), [0.1, 0.8, 0.4, 0.4]) == 3.5 / 4
    # sample weights: the tied negative weighs 3, the other 1; positive weights 1 and 2
    # pairs: pos 0.8 (w1): beats both negatives -> 1*(3+1); pos 0.4 (w2): ties w3 (half), beats w1 -> 2*(1.5+1)
    assert roc_auc_score([0, 1, 1, 0], [0.1, 0.8, 0.4, 0.4], sample_weight=[1, 1, 2, 3]) == (4 + 5) / (3 * 4)
    # multiclass one-vs-rest, 3 classes, a perfect ranker
    P = np.eye(3)[[0, 1, 2, 0]] * 0.8 + 0.2 / 3
    assert roc_auc_score([0, 1, 2, 0], P, multi_class="ovr") == 1.0
    assert roc_auc_score([0, 1, 2, 0], P, multi_class="ovo") == 1.0
    # and the worst one: every class's own column is its lowest
    assert roc_auc_score([0, 1, 2, 0], (1 - P) / 2, multi_class="ovr") == 0.0
    # log loss: -mean log p[y]
    assert log_loss([0, 1], [[0.9, 0.1], [0.2, 0.8]]) == pytest.approx(-(np.log(0.9) + np.log(0.8)) / 2, rel=1e-15)
    assert log_loss([0, 1], [0.1, 0.8]) == pytest.approx(-(np.log(0.9) + np.log(0.8)) / 2, rel=1e-15)
    assert log_loss([0, 1], [0.1, 0.8], normalize=False) == pytest.approx(-(np.log(0.9) + np.log(0.8)), rel=1e-15)
    assert log_loss([0, 1], [0.1, 0.8], sample_weight=[1, 3]) == pytest.approx(
        -(np.log(0.9) + 3 * np.log(0.8)) / 4, rel=1e-15)
    # clipping at float64's epsilon: a certain mistake costs -log(eps), not infinity
    assert log_loss([0, 1], [[0.0, 1.0], [0.0, 1.0]]) == pytest.approx(-np.log(np.finfo(np.float64).eps) / 2)
    # labels= names a class absent from y_true; column order is the sorted labels
    assert log_loss([2, 2], [[0.1, 0.2, 0.7], [0.5, 0.0, 0.5]], labels=[0, 1, 2]) == pytest.approx(
        -(np.log(0.7) + np.log(0.5)) / 2, rel=1e-15)


def test_roc_auc_input_forms():
    y = np.array([0, 1, 1, 0, 1])
    s = np.array([0.2, 0.9, 0.3, 0.4, 0.7], np.float32)
    want = roc_auc_score(y, s)
    assert want == 5 / 6
    assert roc_auc_score(y.tolist(), s.tolist()) == want
    assert roc_auc_score(bcml.from_numpy(y), bcml.from_numpy(s)) == want
    assert roc_auc_score(y.astype(np.float32), s) == want   # integral float labels
    assert log_loss(bcml.from_numpy(y), bcml.from_numpy(s)) == pytest.approx(log_loss(y, s.astype(np.float64)),
                                                                                rel=1e-6)


def test_roc_auc_undefined_gives_nan_and_warns():
    with pytest.warns(bcml.scores.UndefinedMetricWarning, match="only one class"):
        assert np.isnan(roc_auc_score([1, 1, 1], [0.2, 0.5, 0.9]))


def _random_case(rng, n, C, ties=True):
    y = rng.integers(0, C, n)
    y[:C] = np.arange(C)
    P = rng.random((n, C)) ** 3
    if ties:
        P = np.round(P, 1) + 1e-3
    return y, P / P.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_against_scikit_learn(seed):
    need("sklearn")
    import sklearn.metrics as sk
    rng = np.random.default_rng(seed)
    w = rng.random(80)
    y2, P2 = _random_case(rng, 80, 2)
    for kw in ({}, {"sample_weight": w}):
        assert roc_auc_score(y2, P2[:, 1], **kw) == pytest.approx(sk.roc_auc_score(y2, P2[:, 1], **kw), abs=1e-12)
        assert log_loss(y2, P2, **kw) == pytest.approx(sk.log_loss(y2, P2, **kw), rel=1e-12)
        assert log_loss(y2, P2[:, 1], normalize=False, **kw) == pytest.approx(
            sk.log_loss(y2, P2[:, 1], normalize=False, **kw), rel=1e-12)
    y, P = _random_case(rng, 80, 4)
    for mc, avgs in (("ovr", ("macro", "weighted", "micro")), ("ovo", ("macro", "weighted"))):
        for avg in avgs:
            assert roc_auc_score(y, P, multi_class=mc, average=avg) == pytest.approx(
                sk.roc_auc_score(y, P, multi_class=mc, average=avg), abs=1e-12), (mc, avg)
    assert roc_auc_score(y, P, multi_class="ovr", sample_weight=w) == pytest.approx(
        sk.roc_auc_score(y, P, multi_class="ovr", sample_weight=w), abs=1e-12)
    np.testing.assert_allclose(roc_auc_score(y, P, multi_class="ovr", average=None),
                               sk.roc_auc_score(y, P, multi_class="ovr", average=None), atol=1e-12)
    # labels= naming the columns, one of them absent from y_true (ovo leaves it out as scikit-learn)
    yl = np.where(y == 3, 2, y)
    assert roc_auc_score(yl, P, multi_class="ovo", labels=[0, 1, 2, 3]) == pytest.approx(
        sk.roc_auc_score(yl, P, multi_class="ovo", labels=[0, 1, 2, 3]), abs=1e-12)
    # multilabel indicator
    Y = (rng.random((80, 3)) < 0.4).astype(int)
    Y[:, 2] = 1 - Y[:, 1]   # every row holds both values (average="samples" takes per-row AUCs)
    S = np.round(rng.random((80, 3)), 1)
    for avg in ("macro", "weighted", "micro", "samples"):
        assert roc_auc_score(Y, S, average=avg) == pytest.approx(sk.roc_auc_score(Y, S, average=avg), abs=1e-12)
    # log loss: multiclass, labels=, float32 probabilities (clipped at float32's epsilon), certain mistakes
    assert log_loss(y, P, sample_weight=w) == pytest.approx(sk.log_loss(y, P, sample_weight=w), rel=1e-12)
    assert log_loss(yl, P, labels=[0, 1, 2, 3]) == pytest.approx(sk.log_loss(yl, P, labels=[0, 1, 2, 3]), rel=1e-12)
    P0 = np.eye(4)[(y + 1) % 4]
    assert log_loss(y, P0) == pytest.approx(sk.log_loss(y, P0), rel=1e-12)
    P32 = np.eye(4, dtype=np.float32)[(y + seed) % 4]
    assert log_loss(y, P32) == pytest.approx(sk.log_loss(y, P32), rel=1e-6)


@pytest.mark.parametrize("call, exc, match", [
    (lambda: roc_auc_score([0, 1, 2], np.full((3, 3), 1 / 3)), ValueError, "multi_class"),
    (lambda: roc_auc_score([0, 1, 2], np.full((3, 3), 0.5), multi_class="ovr"), ValueError, "sum"),
    (lambda: roc_auc_score([0, 1, 2], np.full((3, 2), 0.5), multi_class="ovr"), ValueError, "y_score"),
    (lambda: roc_auc_score([0, 1, 2], np.full((3, 3), 1 / 3), multi_class="ovo", average=None),
     ValueError, "average"),
    (lambda: roc_auc_score([0, 1, 2], np.full((3, 3), 1 / 3), multi_class="ovo", sample_weight=[1, 1, 1]),
     ValueError, "sample_weight"),
    (lambda: roc_auc_score([0, 1], [[0.5, 0.5], [0.4, 0.6]]), ValueError, "y_score"),
    (lambda: roc_auc_score([0, 1], [0.5]), ValueError, "same number"),
    (lambda: roc_auc_score([0, 1], [0.5, 0.2], max_fpr=0.5), ValueError, "max_fpr"),
    (lambda: roc_auc_score([0.5, 1], [0.5, 0.2]), ValueError, "y_true"),
    (lambda: roc_auc_score([0, 1], [0.5, np.nan]), ValueError, "y_score"),
    (lambda: roc_auc_score(None, [0.5, 0.2]), TypeError, "y_true"),
    (lambda: roc_auc_score([0, 1], [0.5, 0.2], labels=[0, 1]), ValueError, "labels"),
    (lambda: roc_auc_score([0, 1, 2], np.full((3, 3), 1 / 3), multi_class="ovr", labels=[0, 2, 1]),
     ValueError, "labels"),
    (lambda: roc_auc_score([0, 1, 2], np.full((3, 3), 1 / 3), multi_class=1), TypeError, "multi_class"),
    (lambda: roc_auc_score([0, 1], [0.5, 0.2], average=3), TypeError, "average"),
    (lambda: roc_auc_score([0, 1], ["a", "b"]), TypeError, "y_score"),
    (lambda: log_loss([0, 0], [0.5, 0.2]), ValueError, "labels"),
    (lambda: log_loss([0, 1], [0.5, 1.2]), ValueError, "greater than 1"),
    (lambda: log_loss([0, 1, 2], [[0.5, 0.5]] * 3), ValueError, "columns"),
    (lambda: log_loss([0, 3], [[0.5, 0.5]] * 2, labels=[0, 1]), ValueError, "labels"),
    (lambda: log_loss([0, 1], [0.5, 0.2], normalize="yes"), TypeError, "normalize"),
    (lambda: log_loss([0, 1], [0.5, 0.2], sample_weight=[1]), ValueError, "sample_weight"),
])
def test_array_metrics_bad_inputs(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_log_loss_unnormalised_rows_warn():
    with pytest.warns(UserWarning, match="sum to one"):
        log_loss([0, 1], [[0.5, 0.2], [0.1, 0.9]])
