"""bcml.compile(step_fn) (issue 12, item 3): a user's own step recorded once per signature and
replayed in C must compute exactly what the eager step computes (losses, parameters, gradients,
optimizer state, outputs), re-record when what it depends on changes, and fall back to eager with
a ReplayWarning whenever a replay could differ."""
import warnings

import numpy as np
import pytest

import bcml
import bcml.nn as nn
import bcml.nn.functional as F
from bcml._engine import ReplayWarning
from bcml.models import ConvNet, LogisticRegression, MLPClassifier


def _data(n=256, shape=(1, 28, 28), classes=10, seed=0):
    rng = np.random.default_rng(seed)
    X = bcml.from_numpy(rng.standard_normal((n,) + shape).astype(np.float32))
    y = bcml.from_numpy(rng.integers(0, classes, n))
    return X, y


def _params(m):
    return [p.detach().numpy().copy() for p in m.parameters()]


def _grads(m):
    return [None if p.grad is None else p.grad.numpy().copy() for p in m.parameters()]


def _assert_same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        if x is None or y is None:
            assert x is None and y is None
        else:
            np.testing.assert_array_equal(x, y)


def _run(make, opt_make, step_body, batches, compiled, **ckw):
    """Runs the same loop eagerly or compiled from the same seed; returns losses, params, grads,
    the step object and the model."""
    bcml.manual_seed(0)
    m = make()
    opt = opt_make(m)
    bcml.manual_seed(1)

    def step(x, t):
        return step_body(m, opt, x, t)
    s = bcml.compile(step, **ckw) if compiled else step
    losses = []
    for x, t in batches:
        out = s(x, t)
        losses.append(out.item() if isinstance(out, bcml.Tensor) else out[0].item())
    return losses, _params(m), _grads(m), s, m, opt


def _train_body(m, opt, x, t):
    opt.zero_grad()
    _, _, logp = m(x)
    loss = F.nll_loss(logp, t)
    loss.backward()
    opt.step()
    return loss


def _batches(X, y, bs):
    return [(X[i:i + bs], y[i:i + bs]) for i in range(0, len(y), bs)]


@pytest.mark.parametrize("opt_kind", ["sgd", "adam"])
def test_convnet_loop_is_bitwise_eager(opt_kind):
    """Dropout (generator draws), momentum / Adam state, a smaller last batch (a second
    signature): the compiled loop equals the eager one bit for bit, and it did replay."""
    X, y = _data(300)
    mk_opt = (lambda m: bcml.optim.SGD(m.parameters(), lr=0.05, momentum=0.9)) if opt_kind == "sgd" else \
        (lambda m: bcml.optim.Adam(m.parameters(), lr=1e-3))
    b = _batches(X, y, 32)   # 9 batches of 32 and one of 12
    with warnings.catch_warnings():
        warnings.simplefilter("error", ReplayWarning)
        le, pe, ge, _, _, oe = _run(ConvNet, mk_opt, _train_body, b + b, False)
        lc, pc, gc, s, _, oc = _run(ConvNet, mk_opt, _train_body, b + b, True)
    assert le == lc
    _assert_same(pe, pc)
    _assert_same(ge, gc)   # gradients stay after the step, as eagerly
    assert s.on and len(s.entries) == 2 and all(e.verified for e in s.entries.values())
    assert s.replays >= 15   # 20 calls: 2 recorded, 2 checked, the rest replayed
    st_e, st_c = oe.state_dict()["state"], oc.state_dict()["state"]
    assert st_e.keys() == st_c.keys()
    for k in st_e:
        for name in st_e[k]:
            np.testing.assert_array_equal(np.asarray(st_e[k][name].numpy()), np.asarray(st_c[k][name].numpy()))


@pytest.mark.parametrize("mk", [lambda: LogisticRegression(20, 3), lambda: MLPClassifier(20, 3, [16, 8])])
def test_tabular_models(mk):
    X, y = _data(200, (20,), 3)
    b = _batches(X, y, 50)
    mk_opt = lambda m: bcml.optim.SGD(m.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)  # noqa: E731
    le, pe, ge, *_ = _run(mk, mk_opt, _train_body, b * 3, False)
    lc, pc, gc, s, *_ = _run(mk, mk_opt, _train_body, b * 3, True)
    assert le == lc
    _assert_same(pe, pc)
    _assert_same(ge, gc)
    assert s.replays == 10


def test_against_numpy_reference():
    """A hand-written reference: logistic regression trained by plain SGD in NumPy float64
    (independent of bcml's eager path) matches the compiled loop to float32 precision."""
    rng = np.random.default_rng(3)
    Xn = rng.standard_normal((120, 5)).astype(np.float32)
    yn = rng.integers(0, 2, 120)
    lin = nn.Linear(5, 2)
    W = lin.weight.detach().numpy().astype(np.float64).copy()
    bvec = lin.bias.detach().numpy().astype(np.float64).copy()
    opt = bcml.optim.SGD(lin.parameters(), lr=0.5)

    @bcml.compile
    def step(x, t):
        opt.zero_grad()
        loss = F.cross_entropy(lin(x), t)
        loss.backward()
        opt.step()
        return loss
    for epoch in range(3):
        for i in range(0, 120, 40):
            xb, tb = Xn[i:i + 40].astype(np.float64), yn[i:i + 40]
            z = xb @ W.T + bvec
            z -= z.max(1, keepdims=True)
            p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
            ref_loss = -np.log(p[np.arange(40), tb]).mean()
            d = p.copy()
            d[np.arange(40), tb] -= 1
            d /= 40
            W -= 0.5 * d.T @ xb
            bvec -= 0.5 * d.sum(0)
            loss = step(bcml.from_numpy(Xn[i:i + 40]), bcml.from_numpy(yn[i:i + 40]))
            assert abs(loss.item() - ref_loss) < 1e-5
    np.testing.assert_allclose(lin.weight.detach().numpy(), W, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(lin.bias.detach().numpy(), bvec, rtol=1e-4, atol=1e-5)
    assert step.replays == 7


def test_zero_grad_variants_and_accumulation():
    """zero_grad(set_to_none=False), Module.zero_grad, and a step with no zero_grad at all
    (gradients accumulate across calls) all replay as they run eagerly."""
    X, y = _data(160, (6,), 3)
    b = _batches(X, y, 40) * 2
    mk = lambda: MLPClassifier(6, 3, [8])  # noqa: E731
    mk_opt = lambda m: bcml.optim.SGD(m.parameters(), lr=0.05, momentum=0.5)  # noqa: E731

    def keep_zeros(m, opt, x, t):
        opt.zero_grad(set_to_none=False)
        loss = F.nll_loss(m(x)[2], t)
        loss.backward()
        opt.step()
        return loss

    def module_zero(m, opt, x, t):
        m.zero_grad()
        loss = F.nll_loss(m(x)[2], t)
        loss.backward()
        opt.step()
        return loss

    def accumulate(m, opt, x, t):
        loss = F.nll_loss(m(x)[2], t)
        loss.backward()
        opt.step()
        return loss
    for body in (keep_zeros, module_zero, accumulate):
        le, pe, ge, *_ = _run(mk, mk_opt, body, b, False)
        lc, pc, gc, s, *_ = _run(mk, mk_opt, body, b, True)
        assert le == lc, body.__name__
        _assert_same(pe, pc)
        _assert_same(ge, gc)
        assert s.replays == len(b) - 2


def test_two_optimizers_and_outputs_structure():
    X, y = _data(120, (6,), 3)
    bcml.manual_seed(0)
    a, c = nn.Linear(6, 8), nn.Linear(8, 3)
    oa, oc = bcml.optim.SGD(a.parameters(), lr=0.1), bcml.optim.Adam(c.parameters(), lr=0.01)
    ref_a, ref_c = nn.Linear(6, 8), nn.Linear(8, 3)
    ref_a.load_state_dict(a.state_dict())
    ref_c.load_state_dict(c.state_dict())
    ra, rc = bcml.optim.SGD(ref_a.parameters(), lr=0.1), bcml.optim.Adam(ref_c.parameters(), lr=0.01)

    def body(a, c, oa, oc, x, t):
        oa.zero_grad()
        oc.zero_grad()
        h = F.relu(a(x))
        logits = c(h)
        loss = F.cross_entropy(logits, t)
        loss.backward()
        oa.step()
        oc.step()
        return {"loss": loss, "pair": (logits, h.sum())}
    step = bcml.compile(lambda x, t: body(a, c, oa, oc, x, t))
    for i in range(0, 120, 20):
        xb, tb = X[i:i + 20], y[i:i + 20]
        got = step(xb, tb)
        ref = body(ref_a, ref_c, ra, rc, xb, tb)
        assert set(got) == {"loss", "pair"} and isinstance(got["pair"], tuple)
        assert got["loss"].item() == ref["loss"].item()
        np.testing.assert_array_equal(got["pair"][0].detach().numpy(), ref["pair"][0].detach().numpy())
        np.testing.assert_array_equal(got["pair"][1].detach().numpy(), ref["pair"][1].detach().numpy())
    _assert_same(_params(a) + _params(c), _params(ref_a) + _params(ref_c))
    assert step.replays == 4


def test_eval_step_and_mode_switch_rerecords():
    """A forward-only step under no_grad; switching the model to eval (dropout off) and back
    records again instead of replaying the other mode's ops."""
    X, _ = _data(64)
    bcml.manual_seed(0)
    m = ConvNet()

    @bcml.compile
    def predict(x):
        with bcml.no_grad():
            return m(x)[0]
    for mode in ("train", "eval", "train", "eval"):
        getattr(m, mode)()
        for i in range(0, 64, 16):
            bcml.manual_seed(i)
            got = predict(X[i:i + 16]).numpy()
            bcml.manual_seed(i)
            with bcml.no_grad():
                ref = m(X[i:i + 16])[0].numpy()
            np.testing.assert_array_equal(got, ref)
    assert len(predict.entries) == 2 and predict.on


def test_changed_python_values_rerecord():
    """A global number the step uses, a non-tensor argument and a module's attribute are part of
    the signature: changing them records again (not a stale replay)."""
    X, y = _data(80, (4,), 2)
    lin = nn.Linear(4, 2)
    drop = nn.Dropout(0.5)
    glob = {"scale": 1.0}
    exec("def f(x, k):\n    return drop(lin(x)) * scale * k\n", {"drop": drop, "lin": lin, "scale": 1.0}, glob)
    g = glob["f"].__globals__
    step = bcml.compile(glob["f"])
    for scale, k, p in ((1.0, 1.0, 0.5), (1.0, 1.0, 0.5), (2.0, 1.0, 0.5), (2.0, 3.0, 0.5), (2.0, 3.0, 0.1),
                        (2.0, 3.0, 0.1), (2.0, 3.0, 0.1)):
        g["scale"], drop.p = scale, p
        bcml.manual_seed(5)
        got = step(X[:8], k).detach().numpy()
        bcml.manual_seed(5)
        ref = glob["f"](X[:8], k).detach().numpy()
        np.testing.assert_array_equal(got, ref)
    assert step.on and len(step.entries) == 4


def test_lr_changes_apply_between_calls():
    X, y = _data(120, (6,), 3)
    mk = lambda: LogisticRegression(6, 3)  # noqa: E731

    def run(compiled):
        bcml.manual_seed(0)
        m = mk()
        opt = bcml.optim.SGD(m.parameters(), lr=0.5)
        sched = bcml.optim.lr_scheduler.StepLR(opt, 1, gamma=0.5)
        s = (lambda x, t: _train_body(m, opt, x, t))
        s = bcml.compile(s) if compiled else s
        for e in range(4):
            for i in range(0, 120, 30):
                s(X[i:i + 30], y[i:i + 30])
            sched.step()
        return _params(m), s
    pe, _ = run(False)
    pc, s = run(True)
    _assert_same(pe, pc)
    assert s.replays == 14


@pytest.mark.parametrize("case", ["item", "grad_read", "numpy", "side_effect", "hook_later"])
def test_unreplayable_steps_warn_and_stay_eager(case):
    X, y = _data(120, (6,), 3)
    bcml.manual_seed(0)
    m = MLPClassifier(6, 3, [8])
    ref = MLPClassifier(6, 3, [8])
    ref.load_state_dict(m.state_dict())
    opts = [bcml.optim.SGD(mm.parameters(), lr=0.1) for mm in (m, ref)]
    calls = []

    def body(m, opt, x, t):
        opt.zero_grad()
        loss = F.nll_loss(m(x)[2], t)
        loss.backward()
        if case == "grad_read":   # clipping by hand reads .grad
            for p in m.parameters():
                _ = p.grad
        opt.step()
        if case == "item":
            return loss.item()
        if case == "numpy":
            return loss.detach().numpy().sum()
        if case == "side_effect":
            m.calls = getattr(m, "calls", 0) + 1
        return loss
    step = bcml.compile(lambda x, t: body(m, opts[0], x, t))
    with pytest.warns(ReplayWarning, match="runs the step eagerly") as rec:
        for i in range(0, 120, 20):
            if case == "hook_later" and i == 60:
                m.register_forward_hook(lambda mod, a, o: calls.append(1))
                ref.register_forward_hook(lambda mod, a, o: None)
            got = step(X[i:i + 20], y[i:i + 20])
            want = body(ref, opts[1], X[i:i + 20], y[i:i + 20])
            g = got.item() if isinstance(got, bcml.Tensor) else got
            w = want.item() if isinstance(want, bcml.Tensor) else want
            assert g == w
    why = {"item": "item()", "grad_read": ".grad", "numpy": "numpy()", "side_effect": "side effect",
           "hook_later": "hooks"}[case]
    assert any(why in str(r.message) for r in rec), [str(r.message) for r in rec]
    _assert_same(_params(m), _params(ref))
    assert not step.on
    if case == "hook_later":
        assert len(calls) == 3   # the hook ran on every later call


def test_check_catches_a_stale_replay():
    """What the signature does not cover (here a tensor the step reads from a plain Python
    object, replaced between calls) is caught by the periodic check: a ReplayWarning, then
    eager calls with the right values."""
    X, _ = _data(40, (3,))

    class Holder:
        pass
    h = Holder()
    h.w = bcml.ones(3)
    lst = [h]
    step = bcml.compile(lambda x: x * lst[0].w, check_every=3)
    for i in range(2):
        np.testing.assert_array_equal(step(X[:4]).numpy(), X[:4].numpy())
    assert step.on and all(e.verified for e in step.entries.values())
    h.w = bcml.full((3,), 2.0)
    with pytest.warns(ReplayWarning, match="differs"):
        for i in range(3):
            step(X[:4])
    np.testing.assert_array_equal(step(X[:4]).numpy(), 2 * X[:4].numpy())
    assert not step.on


def test_exception_in_step_leaves_no_recording():
    lin = nn.Linear(3, 2)

    @bcml.compile
    def step(x, fail):
        if fail:
            raise KeyError("boom")
        return lin(x)
    x = bcml.ones(2, 3)
    with pytest.raises(KeyError):
        step(x, True)
    with bcml.no_grad():
        ref = lin(x).numpy()
    for _ in range(3):
        np.testing.assert_array_equal(step(x, False).detach().numpy(), ref)
    assert step.replays == 1


def test_decorator_forms_and_methods():
    class Trainer:
        def __init__(self):
            self.model = nn.Linear(4, 2)
            self.opt = bcml.optim.SGD(self.model.parameters(), lr=0.1)

        @bcml.compile(check_every=2)
        def step(self, x, t):
            self.opt.zero_grad()
            loss = F.cross_entropy(self.model(x), t)
            loss.backward()
            self.opt.step()
            return loss
    X, y = _data(40, (4,), 2)
    bcml.manual_seed(0)
    tr = Trainer()
    ref = nn.Linear(4, 2)
    ref.load_state_dict(tr.model.state_dict())
    ro = bcml.optim.SGD(ref.parameters(), lr=0.1)
    for i in range(0, 40, 5):
        got = tr.step(X[i:i + 5], y[i:i + 5]).item()
        ro.zero_grad()
        want = F.cross_entropy(ref(X[i:i + 5]), y[i:i + 5])
        want.backward()
        ro.step()
        assert got == want.item()
    assert Trainer.step.on


def test_dataloader_loop_matches_train_epoch():
    """A plain loop over bcml.utils.data.DataLoader through bcml.compile trains the model as
    bcml.helpers' train_epoch does (same shuffling seed)."""
    from bcml._engine import train_epoch
    X, y = _data(200, (6,), 3)
    ds = bcml.utils.data.TensorDataset(X, y)

    def model_opt():
        bcml.manual_seed(0)
        m = MLPClassifier(6, 3, [8])
        return m, bcml.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
    m1, o1 = model_opt()
    g = bcml.Generator().manual_seed(7)
    step = bcml.compile(lambda x, t: _train_body(m1, o1, x, t))
    for x, t in bcml.utils.data.DataLoader(ds, batch_size=32, shuffle=True, generator=g):
        step(x, t)
    m2, o2 = model_opt()
    g = bcml.Generator().manual_seed(7)
    train_epoch(lambda x, t, h1: F.nll_loss(m2(x)[2], t), bcml.utils.data.DataLoader(ds, batch_size=32, shuffle=True,
                                                                                      generator=g), o2)
    _assert_same(_params(m1), _params(m2))


def test_compile_arguments():
    m = nn.Linear(2, 2)
    with pytest.raises(TypeError, match="replays whole training steps, not models"):
        bcml.compile(m)
    with pytest.raises(TypeError, match="replays whole training steps"):
        bcml.compile()(m)
    with pytest.raises(TypeError, match="'model'"):
        bcml.compile(3)
    with pytest.raises(TypeError, match="'check_every'"):
        bcml.compile(lambda: 0, check_every=1.5)
    with pytest.raises(ValueError, match="'check_every'"):
        bcml.compile(lambda: 0, check_every=0)
    with pytest.raises(ValueError, match="'mode'"):
        bcml.compile(lambda: 0, mode="fast")
    with pytest.raises(TypeError, match="'fullgraph'"):
        bcml.compile(lambda: 0, fullgraph="yes")
    f = lambda: 0  # noqa: E731
    assert bcml.compile(f, disable=True) is f
    s = bcml.compile(f, mode="reduce-overhead", fullgraph=True, dynamic=False, backend="inductor")
    with pytest.warns(ReplayWarning, match="returns a value of type int"):
        assert s() == 0
    assert s.__wrapped__ is f


def test_unhashable_argument_warns():
    lin = nn.Linear(3, 2)
    step = bcml.compile(lambda x, arr: lin(x) * float(arr[0]))
    with pytest.warns(ReplayWarning, match="not hashable"):
        out = step(bcml.ones(2, 3), np.array([2.0]))
    with bcml.no_grad():
        np.testing.assert_array_equal(out.detach().numpy(), lin(bcml.ones(2, 3)).numpy() * 2)


def test_same_tensor_twice_and_non_tensor_outputs_rejected():
    lin = nn.Linear(3, 3)
    step = bcml.compile(lambda a, b: lin(a) + b)
    x = bcml.ones(2, 3)
    for _ in range(3):
        with bcml.no_grad():
            ref = (lin(x) + x).numpy()
        np.testing.assert_array_equal(step(x, x).detach().numpy(), ref)
    assert step.on and step.replays == 1
    bad = bcml.compile(lambda a: (lin(a), "text"))
    with pytest.warns(ReplayWarning, match="returns a value of type str"):
        bad(x)


def test_modules_reached_through_helpers_are_watched():
    """A model the step reaches only through a helper function and a dict (not named by the
    step): the Modules whose parameters the plan reads are watched, so eval() after two calls
    in train mode records again (dropout off) instead of replaying train mode's ops."""
    X, _ = _data(32)
    bcml.manual_seed(0)
    box = {"m": ConvNet()}

    def fwd(x):
        return box["m"](x)[0]
    step = bcml.compile(lambda x: fwd(x))
    for mode in ("train", "train", "train", "eval", "eval", "train"):
        getattr(box["m"], mode)()
        bcml.manual_seed(3)
        got = step(X[:8]).detach().numpy()
        bcml.manual_seed(3)
        np.testing.assert_array_equal(got, fwd(X[:8]).detach().numpy())
    assert step.on and len(step.entries) >= 2 and step.replays >= 2
    box["m"].fc2 = nn.Linear(50, 10)   # a submodule rebound: recorded again, not the old weights
    box["m"].train()
    bcml.manual_seed(3)
    got = step(X[:8]).detach().numpy()
    bcml.manual_seed(3)
    np.testing.assert_array_equal(got, fwd(X[:8]).detach().numpy())


def test_signature_check_matches_the_signature_built():
    # each call compares the signature of the step's Modules with the previous call's without
    # building it (_core.compile_state_equal): it must agree with building it and comparing, for
    # every kind of change the signature covers
    from bcml import _core
    lin = nn.Linear(3, 2)
    model = nn.Sequential(lin, nn.Dropout(0.3), nn.ReLU(), lin)
    opt = bcml.optim.SGD(model.parameters(), lr=0.1)
    named, scalars = [model, opt], (0.5, ("lr", 0.1), "x")

    def state():
        return _core.compile_state(named, scalars, nn.Module)

    changes = [lambda: model.eval(), lambda: model.train(), lambda: setattr(model[1], "p", 0.5),
               lambda: setattr(model[0], "weight", nn.Parameter(bcml.ones((2, 3)))),
               lambda: model.add_module("extra", nn.Linear(2, 2)), lambda: model.add_module("none", None),
               lambda: setattr(model[2], "flag", True), lambda: setattr(model[2], "flag", 1.0),
               lambda: setattr(model[2], "flag", "on"), lambda: model[1].register_buffer("b", bcml.ones(2))]
    for change in changes:
        before = state()
        assert _core.compile_state_equal(named, scalars, nn.Module, before)
        change()
        after = state()
        assert _core.compile_state_equal(named, scalars, nn.Module, before) == (after == before)
        assert _core.compile_state_equal(named, scalars, nn.Module, after)
    before = state()
    for other in ((0.5, ("lr", 0.2), "x"), (0.5, ("lr", 0.1)), (0.5, ("lr", 0.1), "x", None)):
        assert not _core.compile_state_equal(named, other, nn.Module, before)
    assert not _core.compile_state_equal([opt, model], scalars, nn.Module, before)
    assert not _core.compile_state_equal(named, scalars, nn.Module, before[:-1])
    assert not _core.compile_state_equal(named, scalars, nn.Module, before + (1,))
    with pytest.raises(TypeError):
        _core.compile_state_equal(named, scalars, nn.Module, list(before))


def test_mode_change_between_calls_takes_the_other_signature():
    # the previous call's signature is reused only while nothing it covers changed
    bcml.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5))
    x = bcml.tensor(np.random.default_rng(0).standard_normal((16, 4)).astype(np.float32))

    @bcml.compile
    def fwd(x):
        return model(x)
    outs = {}
    for mode in ("train", "eval", "train", "eval", "eval", "train"):
        getattr(model, mode)()
        with bcml.no_grad():
            o = fwd(x).numpy().copy()
        with bcml.no_grad():
            ref = model(x).numpy()
        if mode == "eval":
            np.testing.assert_array_equal(o, ref)   # eval: no dropout, the same bits as eager
        else:
            assert (o == 0).any()                   # train: dropout's zeros
        outs.setdefault(mode, o)
    assert len(fwd.entries) == 2
