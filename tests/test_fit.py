"""scikit-learn-style methods of bcml.models classifiers (issue 13, item 6): predict,
predict_proba and score against a NumPy float64 forward pass; fit against the explicit training
loop its docstring documents (same seed, same weights), early stopping against a NumPy
recomputation of scikit-learn's rule, and the argument checks."""
import math

import numpy as np
import pytest

import bcml
from bcml._random import Generator, default_for_thread
from bcml.models import ConvNet, LogisticRegression, MLPClassifier, _validation_rows
from bcml.nn import functional as F

# fit and predict must run through record-and-replay, not fall back to the eager loop
pytestmark = pytest.mark.filterwarnings("error::bcml._engine.ReplayWarning")


def _data(n=60, d=4, C=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)).astype(np.float32)
    y = (np.argmax(X[:, :C] + 0.5 * rng.standard_normal((n, C)), axis=1)).astype(np.int64)
    return X, y


def _weights(model):
    return {k: v.numpy().copy() for k, v in model.state_dict().items()}


def _ref_proba(model, X):
    W = model.linear.weight.detach().numpy().astype(np.float64)
    b = model.linear.bias.detach().numpy().astype(np.float64)
    z = X.astype(np.float64) @ W.T + b
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("form", ["float32", "float64", "list", "tensor"])
def test_predict_against_numpy(form):
    bcml.manual_seed(0)
    m = LogisticRegression(4, 3)
    X, y = _data(7)
    Xf = {"float32": X, "float64": X.astype(np.float64), "list": X.tolist(), "tensor": bcml.from_numpy(X)}[form]
    ref = _ref_proba(m, X)
    P = m.predict_proba(Xf, batch_size=3)       # batches 3, 3, 1: the last replayed with a new shape
    assert P.dtype == np.float32 and P.shape == (7, 3)
    np.testing.assert_allclose(P, ref, rtol=1e-5, atol=1e-6)
    pred = m.predict(Xf, batch_size=3)
    assert pred.dtype == np.int64
    np.testing.assert_array_equal(pred, np.argmax(ref, axis=1))
    s = m.score(Xf, y)
    assert isinstance(s, float) and s == np.mean(np.argmax(ref, axis=1) == y)
    w = np.arange(7, dtype=np.float64)
    assert m.score(Xf, y.tolist(), sample_weight=w) == pytest.approx(
        np.sum(w * (np.argmax(ref, axis=1) == y)) / w.sum(), rel=1e-12)


def test_predict_runs_in_eval_mode_and_restores_flags():
    bcml.manual_seed(1)
    m = ConvNet()
    m.train()
    m.conv2_drop.eval()       # a mixed state comes back as it was
    X = np.random.default_rng(1).standard_normal((3, 1, 28, 28)).astype(np.float32)
    p1, p2 = m.predict_proba(X), m.predict_proba(X)
    np.testing.assert_array_equal(p1, p2)      # no dropout: eval mode
    assert m.training and m.fc1.training and not m.conv2_drop.training
    m.eval()
    with bcml.no_grad():
        want = m(bcml.from_numpy(X))[1].numpy()
    np.testing.assert_allclose(p1, want, rtol=1e-6, atol=1e-7)
    assert not m.training


def test_binary_model():
    bcml.manual_seed(2)
    m = LogisticRegression(4, 1)
    X, _ = _data(5)
    W, b = m.linear.weight.detach().numpy().astype(np.float64), m.linear.bias.detach().numpy().astype(np.float64)
    p = 1 / (1 + np.exp(-(X.astype(np.float64) @ W.T + b).reshape(-1)))
    P = m.predict_proba(X)
    np.testing.assert_allclose(P, np.stack([1 - p, p], axis=1), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(m.predict(X), (p >= 0.5).astype(np.int64))


def _loop(model, X, y, epochs, batch_size, seed, opt, gen_seed=None):
    """fit's documented loop."""
    loader = bcml.data.DataLoader(X, y, batch_size, shuffle=True, seed=seed)
    curve = []
    model.train()
    with default_for_thread(Generator(seed if gen_seed is None else gen_seed)):
        for _ in range(epochs):
            total = 0.0
            for _ids, x, t in loader:
                opt.zero_grad()
                loss = F.nll_loss(model(x)[2], t)
                loss.backward()
                opt.step()
                total += loss.item() * x.shape[0]
            curve.append(total / len(y))
    return curve


@pytest.mark.parametrize("optimizer", [None, "sgd", "instance"])
def test_fit_equals_documented_loop(optimizer):
    X, y = _data(70)
    bcml.manual_seed(3)
    a = MLPClassifier(4, 3, (6,))
    b = MLPClassifier(4, 3, (6,))
    b.load_state_dict(a.state_dict())
    if optimizer == "instance":
        opt_a, opt_b = bcml.optim.SGD(a.parameters(), lr=0.05), bcml.optim.SGD(b.parameters(), lr=0.05)
        kw = {"optimizer": opt_a}
    elif optimizer == "sgd":
        opt_b = bcml.optim.SGD(b.parameters(), lr=0.02, momentum=0.9, nesterov=True)
        kw = {"optimizer": "sgd", "lr": 0.02}
    else:
        opt_b = bcml.optim.Adam(b.parameters(), lr=1e-3)
        kw = {}
    assert a.fit(X, y, epochs=3, batch_size=16, seed=11, **kw) is a
    curve = _loop(b, X, y, 3, 16, 11, opt_b)
    wa, wb = _weights(a), _weights(b)
    for k in wa:
        np.testing.assert_allclose(wa[k], wb[k], rtol=1e-6, atol=1e-7, err_msg=k)
    np.testing.assert_allclose(a.loss_curve_, curve, rtol=1e-5)
    assert a.n_iter_ == 3 and a.validation_scores_ is None and a.best_validation_score_ is None
    np.testing.assert_array_equal(a.classes_, [0, 1, 2])
    if optimizer != "instance":   # the weights moved and training lowered the loss
        assert a.loss_curve_[-1] < a.loss_curve_[0]


def test_fit_with_dropout_equals_loop_and_seed_none_follows_manual_seed():
    rng = np.random.default_rng(4)
    X = rng.standard_normal((10, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, 10)
    bcml.manual_seed(5)
    a = ConvNet()
    b = ConvNet()
    b.load_state_dict(a.state_dict())
    a.fit(X, y, epochs=1, batch_size=4, seed=7)
    _loop(b, X, y, 1, 4, 7, bcml.optim.Adam(b.parameters(), lr=1e-3))
    wa, wb = _weights(a), _weights(b)
    for k in wa:
        np.testing.assert_allclose(wa[k], wb[k], rtol=1e-6, atol=1e-7, err_msg=k)
    # seed=None: drawn from the default generator, so manual_seed makes it reproducible
    c, d = LogisticRegression(4, 3), LogisticRegression(4, 3)
    d.load_state_dict(c.state_dict())
    Xs, ys = _data(30)
    bcml.manual_seed(9)
    c.fit(Xs, ys, epochs=2, batch_size=4)
    bcml.manual_seed(9)
    d.fit(Xs, ys, epochs=2, batch_size=4)
    for k, v in _weights(c).items():
        np.testing.assert_array_equal(v, _weights(d)[k])


def _stop_epoch(scores, tol, patience):
    """scikit-learn's rule recomputed: (epochs run, index of the best epoch)."""
    best, count, best_i = -np.inf, 0, None
    for i, s in enumerate(scores):
        count = count + 1 if s < best + tol else 0
        if s > best:
            best, best_i = s, i
        if count > patience:
            return i + 1, best_i
    return len(scores), best_i


@pytest.mark.parametrize("tol, patience", [(0.0, 1), (1e-4, 2), (0.5, 1)])
def test_early_stopping_follows_scikit_learns_rule(tol, patience):
    X, y = _data(80, seed=5)
    bcml.manual_seed(6)
    a = MLPClassifier(4, 3, (5,))
    b = MLPClassifier(4, 3, (5,))
    b.load_state_dict(a.state_dict())
    epochs = 12
    a.fit(X, y, epochs=epochs, batch_size=16, optimizer="sgd", lr=0.05, early_stopping=True, tol=tol,
          patience=patience, validation_fraction=0.25, seed=3)
    # the same split, trained for every epoch with the scores recorded, then the rule in NumPy
    val = _validation_rows(y, 0.25, 3)
    assert val.size == 20
    keep = np.setdiff1d(np.arange(80), val)
    opt = bcml.optim.SGD(b.parameters(), lr=0.05, momentum=0.9, nesterov=True)
    loader = bcml.data.DataLoader(X[keep], y[keep], 16, shuffle=True, seed=3)
    scores, states = [], []
    for _ in range(epochs):
        b.train()
        for _ids, x, t in loader:
            opt.zero_grad()
            F.nll_loss(b(x)[2], t).backward()
            opt.step()
        b.eval()
        with bcml.no_grad():
            pred = np.argmax(b(bcml.from_numpy(X[val]))[0].numpy(), axis=1)
        scores.append(float(np.mean(pred == y[val])))
        states.append(_weights(b))
    n_iter, best_i = _stop_epoch(scores, tol, patience)
    assert n_iter < epochs     # the case stops early
    assert a.n_iter_ == n_iter
    assert a.validation_scores_ == pytest.approx(scores[:n_iter])
    assert a.best_validation_score_ == max(scores[:n_iter])
    if tol >= 0.5:   # no improvement after the first epoch: stops after it and patience + 1 more
        assert n_iter == patience + 2
    for k, v in _weights(a).items():     # the best epoch's weights are restored
        np.testing.assert_allclose(v, states[best_i][k], rtol=1e-6, atol=1e-7)
    assert a.training   # flags as before fit (a new module trains)


def test_validation_rows_are_stratified():
    y = np.array([0] * 50 + [1] * 30 + [2] * 20)
    val = _validation_rows(y, 0.1, 0)
    assert np.array_equal(np.bincount(y[val]), [5, 3, 2])
    val = _validation_rows(y, 0.15, 1)    # 15 rows: 7.5, 4.5, 3 -> largest remainders to 0 then 1
    assert val.size == 15 and np.array_equal(np.bincount(y[val]), [8, 4, 3])
    assert np.array_equal(val, np.unique(val))


@pytest.mark.parametrize("kw, exc, arg", [
    ({"epochs": 0}, ValueError, "epochs"), ({"epochs": 1.5}, TypeError, "epochs"),
    ({"batch_size": 0}, ValueError, "batch_size"), ({"optimizer": "rmsprop"}, ValueError, "optimizer"),
    ({"optimizer": 3}, TypeError, "optimizer"), ({"lr": -1.0}, ValueError, "lr"),
    ({"tol": -0.1}, ValueError, "tol"), ({"patience": 0}, ValueError, "patience"),
    ({"validation_fraction": 1.0}, ValueError, "validation_fraction"),
    ({"early_stopping": True, "validation_fraction": 0.01}, ValueError, "validation_fraction"),
    ({"early_stopping": "yes"}, TypeError, "early_stopping"), ({"seed": -1}, ValueError, "seed"),
    ({"seed": "a"}, TypeError, "seed"),
])
def test_fit_bad_arguments(kw, exc, arg):
    X, y = _data(20)
    m = LogisticRegression(4, 3)
    with pytest.raises(exc, match=arg):
        m.fit(X, y, **kw)


def test_bad_data():
    X, y = _data(20)
    m = LogisticRegression(4, 3)
    other = LogisticRegression(4, 3)
    with pytest.raises(ValueError, match="'optimizer'"):
        m.fit(X, y, optimizer=bcml.optim.SGD(other.parameters(), lr=0.1))
    with pytest.raises(ValueError, match="'y'"):
        m.fit(X, y + 1)
    with pytest.raises(ValueError, match="'y'"):
        m.fit(X, y[:5])
    with pytest.raises(TypeError, match="'y'"):
        m.fit(X, np.array(["a"] * 20))
    with pytest.raises(ValueError, match="'y'"):
        m.fit(X, y + 0.5)
    with pytest.raises(ValueError, match="'X'"):
        m.predict(np.full((2, 4), np.nan))
    with pytest.raises(ValueError, match="'X'"):
        m.predict(np.zeros((2, 5)))
    with pytest.raises(ValueError, match="'X'"):
        m.predict(np.zeros(4))
    with pytest.raises(TypeError, match="'X'"):
        m.predict_proba("abc")
    with pytest.raises(ValueError, match="'y'"):
        m.score(X, y[:3])
    with pytest.raises(ValueError, match="sample_weight"):
        m.score(X, y, sample_weight=[1.0])
    assert math.isfinite(m.score(X, y))
