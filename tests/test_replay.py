"""Record and replay (DESIGN.md): a training step recorded once and replayed in C gives the
eager loop's weights (here bitwise, the contract asks 1e-5 relative), with shuffling, the last
partial batch, dropout, batch norm, SGD/Adam and a learning-rate change between epochs; models
that cannot be recorded fall back to the eager loop with a warning."""
import random
import re
import sys
import threading
import warnings

import numpy as np
import pytest

import bcml
import bcml.nn as nn
import bcml.nn.functional as F
from bcml import _core, _engine
from bcml.data import DataLoader
from bcml.loss import BCBinaryCrossEntropyLoss, BCCrossEntropyLoss, StrictImitationKLDivergenceLoss
from bcml.models import ConvNet, LogisticRegression, MLPClassifier


@pytest.fixture
def replay_flag():
    old = _engine.REPLAY
    yield
    _engine.REPLAY = old


class CountingStep:
    """step(x, y, h1) with a call counter (each call is one Python-run batch)."""

    def __init__(self, fn):
        self.fn, self.calls = fn, 0

    def __call__(self, x, y, h1):
        self.calls += 1
        return self.fn(x, y, h1)


class SmallBN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4 * 6 * 6, 3)
        self.drop = nn.Dropout(0.3)

    def forward(self, x):
        h = F.relu(self.bn(self.conv(x)))
        o = self.fc(self.drop(h.view(-1, 4 * 6 * 6)))
        return o, F.softmax(o, dim=1), F.log_softmax(o, dim=1)


def _data(kind, n=203, seed=0):
    rng = np.random.default_rng(seed)
    if kind == "image":
        x = rng.standard_normal((n, 1, 6, 6)).astype(np.float32)
    elif kind == "mnist":
        x = rng.random((n, 1, 28, 28)).astype(np.float32)
    else:
        x = rng.standard_normal((n, 7)).astype(np.float32)
    y = rng.integers(0, 3, n).astype(np.int64)
    return x, y


def _train(replay, make, kind, opt_cls, opt_kw, compat=None, epochs=3, lr_decay=0.5, batch=32,
           shuffle=True, loss_kind="nll"):
    _engine.REPLAY = replay
    x, y = _data(kind)
    bcml.manual_seed(1)
    h1, h2 = make(), make()
    opt = opt_cls(h2.parameters(), **opt_kw)
    data = _engine.as_dataset(DataLoader(x, y, batch_size=batch, shuffle=shuffle, seed=5))
    cache = None
    if compat is not None:
        h1.eval()
        cache, _, _ = _engine.predict(h1, data)
        bc = compat(h1, h2, 0.8)
        step = CountingStep(lambda xb, yb, h: bc(xb, yb, h1_output=h))
    else:
        step = CountingStep(lambda xb, yb, h: F.nll_loss(h2(xb)[2], yb))
    session = _engine.Session()
    losses = []
    for _ in range(epochs):
        losses += _engine.train_epoch(step, data, opt, cache, session=session)
        for g in opt.param_groups:
            g["lr"] *= lr_decay
    state = {k: v.detach().numpy().copy() for k, v in h2.state_dict().items()}
    return state, np.array(losses), step.calls


CASES = [
    ("lr-sgd", lambda: LogisticRegression(7, 3), "tab", bcml.optim.SGD, dict(lr=0.1, momentum=0.9), None),
    ("mlp-nesterov", lambda: MLPClassifier(7, 3), "tab", bcml.optim.SGD,
     dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3), None),
    ("mlp-adam", lambda: MLPClassifier(7, 3), "tab", bcml.optim.Adam, dict(lr=0.01, amsgrad=True), None),
    ("mlp-compat-ce", lambda: MLPClassifier(7, 3), "tab", bcml.optim.SGD, dict(lr=0.1), BCCrossEntropyLoss),
    ("mlp-compat-si-kl", lambda: MLPClassifier(7, 3), "tab", bcml.optim.SGD, dict(lr=0.1),
     StrictImitationKLDivergenceLoss),
    ("bn-dropout", SmallBN, "image", bcml.optim.SGD, dict(lr=0.05, momentum=0.9), None),
    ("bn-dropout-compat", SmallBN, "image", bcml.optim.Adam, dict(lr=0.01), BCCrossEntropyLoss),
]


@pytest.mark.parametrize("name,make,kind,opt_cls,opt_kw,compat", CASES, ids=[c[0] for c in CASES])
def test_replay_matches_eager(replay_flag, name, make, kind, opt_cls, opt_kw, compat):
    with warnings.catch_warnings():
        warnings.simplefilter("error", _engine.ReplayWarning)
        eager, le, calls_e = _train(False, make, kind, opt_cls, opt_kw, compat)
        replayed, lr_, calls_r = _train(True, make, kind, opt_cls, opt_kw, compat)
    nb = -(-203 // 32)
    assert calls_e == 3 * nb
    # record + check of the full batches in epoch 1, of the partial last batch in epochs 1 and 2,
    # and the check of the first batch of epochs 2 and 3
    assert calls_r == 6, calls_r
    assert set(eager) == set(replayed)
    for k in eager:
        np.testing.assert_allclose(replayed[k], eager[k], rtol=1e-5, atol=1e-7, err_msg=k)
    np.testing.assert_allclose(lr_, le, rtol=1e-5, atol=1e-7)
    if "bn" in name:  # running statistics and the batch counter moved as in eager
        assert int(replayed["bn.num_batches_tracked"]) == 3 * nb
        assert not np.allclose(replayed["bn.running_mean"], 0)


def test_replay_learns(replay_flag):
    """Replayed training reduces the loss (it is training, not just repeating a number)."""
    _, losses, _ = _train(True, lambda: MLPClassifier(7, 3), "tab", bcml.optim.SGD, dict(lr=0.2, momentum=0.9),
                          None, epochs=6, lr_decay=1.0)
    assert np.isfinite(losses).all()
    assert losses[-7:].mean() < losses[:7].mean()


def test_replay_without_session_checks_every_epoch(replay_flag):
    _engine.REPLAY = True
    x, y = _data("tab")
    bcml.manual_seed(0)
    m = LogisticRegression(7, 3)
    opt = bcml.optim.SGD(m.parameters(), lr=0.1)
    data = _engine.as_dataset(DataLoader(x, y, batch_size=32, shuffle=False))
    step = CountingStep(lambda xb, yb, h: F.nll_loss(m(xb)[2], yb))
    _engine.train_epoch(step, data, opt)
    # batch 0 recorded, batch 1 checked, the partial last batch run eagerly (seen once)
    assert step.calls == 3


def test_binary_model_compat_replay(replay_flag):
    class Bin(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(7, 1)

        def forward(self, x):
            return F.sigmoid(self.fc(x))

    def run(replay):
        _engine.REPLAY = replay
        x, y = _data("tab")
        yb = (y > 0).astype(np.float32)
        bcml.manual_seed(3)
        h1, h2 = Bin(), Bin()
        opt = bcml.optim.SGD(h2.parameters(), lr=0.1, momentum=0.5)
        data = _engine.as_dataset(DataLoader(x, yb, batch_size=40, shuffle=True, seed=2))
        cache, _, _ = _engine.predict(h1, data)
        assert cache.binary
        bc = BCBinaryCrossEntropyLoss(h1, h2, 0.5)
        s = _engine.Session()
        for _ in range(3):
            _engine.train_epoch(lambda xb, t, h: bc(xb, t, h1_output=h), data, opt, cache, session=s)
        return [p.detach().numpy().copy() for p in h2.parameters()]

    with warnings.catch_warnings():
        warnings.simplefilter("error", _engine.ReplayWarning)
        for a, b in zip(run(False), run(True)):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("train_mode", [False, True])
def test_predict_replay_matches_eager(replay_flag, train_mode):
    x, y = _data("image", n=150)
    bcml.manual_seed(4)
    model = SmallBN()
    model.train(train_mode)
    data = _engine.as_dataset(DataLoader(x, y, batch_size=32))
    outs = {}
    for replay in (False, True):
        _engine.REPLAY = replay
        bcml.manual_seed(9)  # dropout draws in train mode
        state = {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}
        o, yy, ids = _engine.predict(model, data)
        outs[replay] = o
        model.load_state_dict({k: bcml.from_numpy(v) for k, v in state.items()})
        np.testing.assert_array_equal(yy, y)
        np.testing.assert_array_equal(ids, np.arange(150))
    for a, b in zip(outs[False].parts, outs[True].parts):
        assert a.shape == (150, 3)
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
    # against the model run on the whole set at once (eval mode only: dropout/batch statistics differ)
    if not train_mode:
        with bcml.no_grad():
            full = model(bcml.from_numpy(x))[0].numpy()
        np.testing.assert_allclose(outs[True].parts[0], full, rtol=1e-4, atol=1e-5)


def test_epoch_is_one_c_call_without_python(replay_flag):
    """After the check of its first batch, the rest of an epoch is one C call during which no
    Python function runs (sys.setprofile sees only the C call), and other Python threads run
    meanwhile (the GIL is released)."""
    _engine.REPLAY = True
    x, y = _data("mnist", n=64 * 12)
    bcml.manual_seed(0)
    m = ConvNet()
    opt = bcml.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
    data = _engine.as_dataset(DataLoader(x, y, batch_size=64, shuffle=True, seed=0))
    step = CountingStep(lambda xb, yb, h: F.nll_loss(m(xb)[2], yb))
    s = _engine.Session()
    _engine.train_epoch(step, data, opt, session=s)  # records and checks
    assert step.calls == 2

    real = _core.plan_train
    calls = []

    def traced(*args):
        events, counter, stop = [], [0], threading.Event()

        def spin():
            while not stop.is_set():
                counter[0] += 1

        t = threading.Thread(target=spin)
        t.start()
        before = counter[0]
        sys.setprofile(lambda frame, event, arg: events.append((event, getattr(arg, "__name__", frame.f_code.co_name))))
        try:
            nxt = real(*args)
        finally:
            sys.setprofile(None)
            spins = counter[0] - before
            stop.set()
            t.join()
        names = [n for e, n in events if e in ("call", "c_call") and n != "setprofile"]
        calls.append(dict(start=args[4], next=nxt, names=names, spins=spins))
        return nxt

    _core.plan_train = traced
    try:
        _engine.train_epoch(step, data, opt, session=s)
    finally:
        _core.plan_train = real
    # the first batch: replayed once for the check (then run eagerly); then batches 1..11 in C
    assert step.calls == 3
    assert [(c["start"], c["next"]) for c in calls] == [(0, 1), (1, 12)], calls
    for c in calls:
        assert c["names"] == ["plan_train"], c["names"][:10]
    assert calls[1]["spins"] > 1000  # the spinning thread ran while the epoch trained


def test_data_dependent_forward_falls_back_with_warning(replay_flag):
    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(7, 3), nn.Linear(7, 3)

        def forward(self, x):
            o = self.a(x) if float(x.sum()) > 0 else self.b(x)
            return o, F.softmax(o, dim=1), F.log_softmax(o, dim=1)

    def run(replay):
        _engine.REPLAY = replay
        x, y = _data("tab")
        bcml.manual_seed(0)
        m = Branchy()
        opt = bcml.optim.SGD(m.parameters(), lr=0.1)
        data = _engine.as_dataset(DataLoader(x, y, batch_size=16, shuffle=True, seed=0))
        step = CountingStep(lambda xb, yb, h: F.nll_loss(m(xb)[2], yb))
        _engine.train_epoch(step, data, opt)
        return [p.detach().numpy().copy() for p in m.parameters()], step.calls

    eager, _ = run(False)
    with pytest.warns(_engine.ReplayWarning, match="item"):
        replayed, calls = run(True)
    assert calls == -(-203 // 16)
    for a, b in zip(eager, replayed):
        np.testing.assert_array_equal(a, b)


def test_random_draws_outside_ops_fall_back(replay_flag):
    class Noisy(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(7, 3)

        def forward(self, x):
            o = self.fc(x + bcml.randn(*x.shape) * 0.1)
            return o, F.softmax(o, dim=1), F.log_softmax(o, dim=1)

    _engine.REPLAY = True
    x, y = _data("tab")
    m = Noisy()
    opt = bcml.optim.SGD(m.parameters(), lr=0.1)
    with pytest.warns(_engine.ReplayWarning, match="random"):
        _engine.train_epoch(lambda xb, yb, h: F.nll_loss(m(xb)[2], yb),
                            _engine.as_dataset(DataLoader(x, y, batch_size=16)), opt)


def test_foreign_optimizer_falls_back(replay_flag):
    class MySGD(bcml.optim.SGD):
        def step(self, closure=None):
            return super().step(closure)

    _engine.REPLAY = True
    x, y = _data("tab")
    m = LogisticRegression(7, 3)
    opt = MySGD(m.parameters(), lr=0.1)
    with pytest.warns(_engine.ReplayWarning, match="MySGD"):
        _engine.train_epoch(lambda xb, yb, h: F.nll_loss(m(xb)[2], yb),
                            _engine.as_dataset(DataLoader(x, y, batch_size=16)), opt)


def test_recording_api_and_bad_arguments():
    x = bcml.from_numpy(np.ones((4, 3), np.float32))
    lin = nn.Linear(3, 2)
    _core.record_begin()
    with pytest.raises(RuntimeError, match="already recording"):
        _core.record_begin()
    out = lin(x)
    rec = _core.record_end()
    with pytest.raises(RuntimeError, match="not recording"):
        _core.record_end()
    assert rec.n_calls >= 1 and rec.tainted is None
    plan = _core.plan_build(rec, (x,), None, (out,))
    (loss, (o,)) = plan.run((bcml.from_numpy(np.full((4, 3), 2.0, np.float32)),))
    assert loss is None
    w, b = lin.weight.detach().numpy(), lin.bias.detach().numpy()
    np.testing.assert_allclose(o.detach().numpy(), np.broadcast_to(2 * w.sum(1) + b, (4, 2)), rtol=1e-6)
    with pytest.raises(ValueError, match="recorded shapes"):
        plan.run((bcml.from_numpy(np.ones((5, 3), np.float32)),))
    with pytest.raises(TypeError, match="inputs"):
        plan.run(([1, 2],))
    with pytest.raises(ValueError, match="not computed by the recorded ops"):
        _core.plan_build(rec, (x,), None, (bcml.zeros(2),))
    with pytest.raises(ValueError, match="distinct"):
        _core.plan_build(rec, (x, x), None, ())
    full = (bcml.from_numpy(np.ones((10, 3), np.float32)),)
    outs = (bcml.from_numpy(np.zeros((10, 2), np.float32)),)
    with pytest.raises(ValueError, match="bounds"):
        _core.plan_predict((plan,), full, None, np.array([0, 4, 11]), 0, outs)
    with pytest.raises(IndexError, match="order"):
        _core.plan_predict((plan,), full, np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 99]), np.array([0, 4, 10]), 0, outs)
    with pytest.raises(ValueError, match="start"):
        _core.plan_predict((plan,), full, None, np.array([0, 4]), 5, outs)
    with pytest.raises(TypeError, match="Plan"):
        _core.plan_predict(("x",), full, None, np.array([0, 4]), 0, outs)
    # batches of 4 rows run; the partial last one (2 rows) has no plan: next = its index
    nxt = _core.plan_predict((plan,), full, None, np.array([0, 4, 8, 10]), 0, outs)
    assert nxt == 2
    np.testing.assert_allclose(outs[0].numpy()[:8], np.broadcast_to(w.sum(1) + b, (8, 2)), rtol=1e-6)
    np.testing.assert_array_equal(outs[0].numpy()[8:], 0)
    with pytest.raises(ValueError, match="losses"):
        _core.plan_train((plan,), full, None, np.array([0, 4]), 0, [], np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="needs a loss"):
        _core.plan_train((plan,), full, None, np.array([0, 4]), 0, [], np.zeros(1, np.float32))


def test_recording_taints_on_data_reads():
    x = bcml.from_numpy(np.ones((4, 3), np.float32))
    _core.record_begin()
    (x * 2).numpy()
    rec = _core.record_end()
    assert "numpy" in rec.tainted
    with pytest.raises(ValueError, match="cannot be replayed"):
        _core.plan_build(rec, (x,), None, ())
    _core.record_begin()
    prev = _core.record_pause(True)
    (x * 2).numpy()  # a paused read (argument checks) does not taint
    _core.record_pause(prev)
    rec = _core.record_end()
    assert rec.tainted is None and rec.n_calls == 0


# ---- Python side effects of a step (issue 9): replay is refused, the result is the eager loop's --
class CounterNet(nn.Module):
    """Counts its calls and branches on the count (% 5 and % 3)."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(7, 3), nn.Linear(7, 3)
        self.calls = 0

    def effects(self):
        return self.calls

    def forward(self, x):
        self.calls += 1
        o = self.a(x) if self.calls % 5 else self.b(x)
        if self.calls % 3 == 0:
            o = o * 0.5
        return o, F.softmax(o, dim=1), F.log_softmax(o, dim=1)


class PyRandomNet(nn.Module):
    """Scales its output by a draw from Python's random module."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(7, 3)

    def effects(self):
        return random.random()   # the next draw: equal iff the draws made so far are

    def forward(self, x):
        o = self.a(x) * (0.5 + random.random())
        return o, F.softmax(o, dim=1), F.log_softmax(o, dim=1)


class NpRandomNet(PyRandomNet):
    """Scales its output by a draw from NumPy's global generator."""

    def effects(self):
        return float(np.random.random())

    def forward(self, x):
        o = self.a(x) * (0.5 + float(np.random.random()))
        return o, F.softmax(o, dim=1), F.log_softmax(o, dim=1)


class OwnRngNet(PyRandomNet):
    """Draws from a NumPy Generator it keeps as an attribute."""

    def __init__(self):
        super().__init__()
        self.rng = np.random.default_rng(3)

    def effects(self):
        return float(self.rng.random())

    def forward(self, x):
        o = self.a(x) * (0.5 + float(self.rng.random()))
        return o, F.softmax(o, dim=1), F.log_softmax(o, dim=1)


class ListNet(nn.Module):
    """Appends to a list on self and branches on its length."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(7, 3), nn.Linear(7, 3)
        self.seen = []

    def effects(self):
        return list(self.seen)

    def forward(self, x):
        self.seen.append(int(x.shape[0]))
        o = self.a(x) if len(self.seen) % 4 else self.b(x)
        return o, F.softmax(o, dim=1), F.log_softmax(o, dim=1)


class Wrapper(nn.Module):
    """A counter on a module that owns no parameter, around a child that does."""

    def __init__(self):
        super().__init__()
        self.inner = CounterNet()
        self.calls = 0

    def effects(self):
        return self.calls, self.inner.calls

    def forward(self, x):
        self.calls += 1
        o = self.inner(x)[0] * (2.0 if self.calls % 2 else 1.0)
        return o, F.softmax(o, dim=1), F.log_softmax(o, dim=1)


EFFECTS = [(CounterNet, "rebinds CounterNet.calls"), (PyRandomNet, "Python's random module"),
           (NpRandomNet, "NumPy's global random generator"), (OwnRngNet, "random generator OwnRngNet.rng"),
           (ListNet, "length of ListNet.seen"), (Wrapper, "rebinds (Wrapper|CounterNet).calls")]


def _side_data(nb=10, bs=16, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((nb * bs, 7)).astype(np.float32)
    y = rng.integers(0, 3, nb * bs).astype(np.int64)
    return [(bcml.from_numpy(x[i:i + bs].copy()), bcml.from_numpy(y[i:i + bs].copy())) for i in range(0, nb * bs, bs)]


def _fresh(make):
    random.seed(11)
    np.random.seed(12)
    bcml.manual_seed(5)
    return make(), bcml.optim.SGD  # the model, and the optimizer class


def _plain_loop(make, epochs, compat=False):
    """The reference: a hand-written eager loop (no bcml helper, no replay)."""
    model, opt_cls = _fresh(make)
    h1 = LogisticRegression(7, 3).eval() if compat else None
    opt = opt_cls(model.parameters(), lr=0.1, momentum=0.9)
    loss_fn = BCCrossEntropyLoss(h1, model, 0.7) if compat else None
    data = _side_data()
    for _ in range(epochs):
        for xb, yb in data:
            opt.zero_grad()
            loss = loss_fn(xb, yb) if compat else F.nll_loss(model(xb)[2], yb)
            loss.backward()
            opt.step()
    return model


def _result(model):
    state = {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}
    return state, model.effects()


def _assert_same(got, want):
    (s1, e1), (s2, e2) = got, want
    assert e1 == e2   # the same number of forward calls / the same random draws
    assert set(s1) == set(s2)
    for k in s1:
        np.testing.assert_allclose(s1[k], s2[k], rtol=1e-5, atol=1e-7, err_msg=k)


def _engine_loop(make, epochs):
    model, opt_cls = _fresh(make)
    opt = opt_cls(model.parameters(), lr=0.1, momentum=0.9)
    data = _engine.as_dataset(_side_data())
    session = _engine.Session()
    step = lambda xb, yb, h: F.nll_loss(model(xb)[2], yb)  # noqa: E731
    for _ in range(epochs):
        _engine.train_epoch(step, data, opt, session=session)
    return model


def _helper_loop(make, epochs):
    from bcml.helpers.training import train_epoch
    model, opt_cls = _fresh(make)
    opt = opt_cls(model.parameters(), lr=0.1, momentum=0.9)
    data = _side_data()
    for e in range(1, epochs + 1):   # each call probes the model's output first
        train_epoch(e, model, opt, F.nll_loss, data, 16)
    return model


def _helper_compat_loop(make, epochs):
    from bcml.helpers.training import train_compatibility_epoch
    model, opt_cls = _fresh(make)
    h1 = LogisticRegression(7, 3).eval()
    opt = opt_cls(model.parameters(), lr=0.1, momentum=0.9)
    loss_fn = BCCrossEntropyLoss(h1, model, 0.7)
    data = _side_data()
    for e in range(1, epochs + 1):   # probes h1 and h2, caches h1's outputs, then trains
        train_compatibility_epoch(e, model, opt, loss_fn, data, 16)
    return model


LOOPS = {"engine": (_engine_loop, False), "helper": (_helper_loop, False),
         "helper-compat": (_helper_compat_loop, True)}


@pytest.mark.parametrize("loop", list(LOOPS))
@pytest.mark.parametrize("make,cause", EFFECTS, ids=[c[0].__name__ for c in EFFECTS])
def test_side_effects_refuse_replay(replay_flag, loop, make, cause):
    run, compat = LOOPS[loop]
    want = _result(_plain_loop(make, 3, compat))
    _engine.REPLAY = False
    with warnings.catch_warnings():
        warnings.simplefilter("error", _engine.ReplayWarning)
        eager = _result(run(make, 3))
    _assert_same(eager, want)
    _engine.REPLAY = True
    with pytest.warns(_engine.ReplayWarning, match="side effect.*" + cause) as rec:
        got = _result(run(make, 3))
    _assert_same(got, want)
    assert len([w for w in rec if issubclass(w.category, _engine.ReplayWarning)]) == (1 if loop == "engine" else 3)


def test_side_effect_replay_would_have_differed(replay_flag, monkeypatch):
    """The guard is what makes the counter model right: without it, the replay differs."""
    want = _result(_plain_loop(CounterNet, 3))
    _engine.REPLAY = True
    monkeypatch.setattr(_engine._Guard, "problem", lambda self, plan: None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", _engine.ReplayWarning)  # the per-epoch check sees some of it
        got = _result(_engine_loop(CounterNet, 3))
    assert got[1] < want[1]   # forward ran fewer times ...
    assert max(np.abs(got[0][k] - want[0][k]).max() for k in want[0]) > 1e-3  # ... and the weights differ


@pytest.mark.parametrize("make", [CounterNet, PyRandomNet, NpRandomNet, OwnRngNet, ListNet, Wrapper],
                         ids=lambda c: c.__name__)
def test_probe_leaves_no_trace(make):
    from bcml import _checks
    model, _ = _fresh(make)
    model.train()
    ref, _ = _fresh(make)
    data = _engine.as_dataset(_side_data())
    py, npst, bst = random.getstate(), np.random.get_state(), bcml.get_rng_state()
    assert _checks.probe(model, data, "model") == (False, 3)
    assert random.getstate() == py
    assert np.array_equal(np.random.get_state()[1], npst[1]) and np.random.get_state()[2] == npst[2]
    assert bcml.get_rng_state() == bst
    assert all(m.training for m in model.modules())
    random.seed(11)
    np.random.seed(12)
    e1 = model.effects()
    random.seed(11)
    np.random.seed(12)
    assert e1 == ref.effects()


def test_predict_with_side_effects_runs_eagerly(replay_flag):
    data = _engine.as_dataset(_side_data())
    model, _ = _fresh(CounterNet)
    _engine.REPLAY = True
    with pytest.warns(_engine.ReplayWarning, match="CounterNet.calls"):
        out, _, _ = _engine.predict(model, data)
    assert model.calls == 10
    ref, _ = _fresh(CounterNet)
    with bcml.no_grad():
        want = np.concatenate([ref(xb)[0].numpy() for xb, _ in _side_data()])
    np.testing.assert_allclose(out.parts[0], want, rtol=1e-6, atol=1e-7)


def test_replay_problem_names_the_side_effect_and_undoes_it():
    data = _engine.as_dataset(_side_data())
    for make, cause in EFFECTS:
        model, _ = _fresh(make)
        opt = bcml.optim.SGD(model.parameters(), lr=0.1)
        ref, _ = _fresh(make)
        why = _engine.replay_problem(lambda xb, yb, h: F.nll_loss(model(xb)[2], yb), data, opt)
        assert why is not None and re.search(cause, why), (make, why)
        random.seed(11)
        np.random.seed(12)
        e1 = model.effects()
        random.seed(11)
        np.random.seed(12)
        assert e1 == ref.effects(), make
    model, _ = _fresh(lambda: LogisticRegression(7, 3))
    opt = bcml.optim.SGD(model.parameters(), lr=0.1)
    assert _engine.replay_problem(lambda xb, yb, h: F.nll_loss(model(xb)[2], yb), data, opt) is None


def test_watched_object_side_effect(replay_flag):
    """An object passed as watch= (the helpers pass their loss) is watched too."""
    class Loss:
        def __init__(self, model):
            self.model, self.n = model, 0

        def __call__(self, xb, yb):
            self.n += 1
            return F.nll_loss(self.model(xb)[2], yb)

    _engine.REPLAY = True
    model = LogisticRegression(7, 3)
    loss = Loss(model)
    opt = bcml.optim.SGD(model.parameters(), lr=0.1)
    data = _engine.as_dataset(_side_data())
    with pytest.warns(_engine.ReplayWarning, match="Loss.n"):
        _engine.train_epoch(lambda xb, yb, h: loss(xb, yb), data, opt, watch=(loss,))
    assert loss.n == 10


def test_first_batch_of_every_epoch_is_checked(replay_flag):
    """A change the step cannot see while it is recorded (the user sets an attribute between
    epochs) is caught by the check of the first batch of the next epoch; the epoch is then
    run eagerly and the weights are the eager loop's."""
    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(7, 3)
            self.scale = 1.0

        def forward(self, x):
            o = self.a(x) * self.scale
            return o, F.softmax(o, dim=1), F.log_softmax(o, dim=1)

    def run(replay):
        _engine.REPLAY = replay
        bcml.manual_seed(2)
        model = Scaled()
        opt = bcml.optim.SGD(model.parameters(), lr=0.1)
        data = _engine.as_dataset(_side_data())
        step = CountingStep(lambda xb, yb, h: F.nll_loss(model(xb)[2], yb))
        session = _engine.Session()
        for e in range(3):
            _engine.train_epoch(step, data, opt, session=session)
            if e == 1:
                model.scale = 3.0
        return [p.detach().numpy().copy() for p in model.parameters()], step.calls

    eager, calls_e = run(False)
    with pytest.warns(_engine.ReplayWarning, match="differs from the eager one"):
        replayed, calls_r = run(True)
    # epoch 1: record + check; epoch 2: check; epoch 3: the check fails, all 10 batches eager
    assert (calls_e, calls_r) == (30, 2 + 1 + 10)
    for a, b in zip(eager, replayed):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-7)


def test_state_check_sees_every_numpy_draw_including_a_cached_gaussian():
    """The guard compares NumPy's raw generator words first; a draw that only uses the Gaussian
    NumPy cached (its words do not move) must still count as a draw."""
    from bcml._engine import PyState
    np.random.seed(3)
    s = PyState([])
    assert s.changes() is None
    np.random.random()
    assert "NumPy" in s.changes()
    np.random.seed(3)
    np.random.randn()                       # draws a pair, caches the second value
    assert np.random.get_state()[3] == 1
    s = PyState([])
    words = np.random.get_state()[1].copy()
    np.random.randn()                       # uses the cached value: the words stay the same
    assert np.array_equal(np.random.get_state()[1], words)
    assert "NumPy" in s.changes()
    s.restore()
    assert s.changes() is None
