"""bcml.loss.FocalDistillationLoss and LogitDifferenceInhibitionLoss (issue 13, item 5; op pc_loss)
against NumPy float64 formulas written here from the papers, central differences of those
formulas, and PyTorch autograd; in a recorded/replayed training step, the compatibility
helpers and a compatibility sweep; and their bad arguments."""
import json
import warnings

import numpy as np
import pytest

import bcml
import bcml.nn.functional as F
from bcml import _core, _engine
from bcml.data import DataLoader
from bcml.loss import BCCrossEntropyLoss, FocalDistillationLoss, LogitDifferenceInhibitionLoss
from bcml.models import LogisticRegression, MLPClassifier
from conftest import numeric_grad

FD, LDI = FocalDistillationLoss, LogitDifferenceInhibitionLoss


# ---- NumPy float64 formulas ---------------------------------------------------------------------
def _log_softmax(z):
    m = z.max(axis=1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=1, keepdims=True))


def ref_ce(z2, y):
    return -_log_softmax(z2)[np.arange(len(y)), y]


def ref_fd_pen(z2, y, z1, alpha, beta, kind, T):
    """(alpha + beta [argmax z1 == y]) D_i; D_i = T^2 KL(softmax(z1/T) || softmax(z2/T)) or
    the mean over classes of (z2 - z1)^2."""
    w = alpha + beta * (z1.argmax(axis=1) == y)
    if kind == "kl":
        lq1, lq2 = _log_softmax(z1 / T), _log_softmax(z2 / T)
        q1 = np.exp(lq1)
        d = T * T * np.where(q1 > 0, q1 * (lq1 - lq2), 0.0).sum(axis=1)
    else:
        d = ((z2 - z1) ** 2).mean(axis=1)
    return w * d


def ref_ldi_pen(z2, z1, p, margin, top_k):
    """The p-norm over h1's top_k classes (ties: lower index first) of max(0, |z2 - z1| - margin)."""
    C = z1.shape[1]
    k = C if top_k is None else top_k
    idx = np.argsort(-z1, axis=1, kind="stable")[:, :k]
    d = np.take_along_axis(z2 - z1, idx, axis=1)
    return (np.maximum(np.abs(d) - margin, 0.0) ** p).sum(axis=1) ** (1.0 / p)


def _reduce(v, red):
    return v if red == "none" else v.sum() if red == "sum" else v.mean()


def ref_pc(loss, z2, y, z1, red="mean", pen_only=False):
    """The loss's value from its settings on h2's logits z2, labels y, h1's logits z1."""
    z2, z1, y = np.asarray(z2, np.float64), np.asarray(z1, np.float64), np.asarray(y, np.int64)
    if isinstance(loss, FD):
        pen = ref_fd_pen(z2, y, z1, loss.alpha, loss.beta, loss.kind, loss.temperature)
    else:
        pen = ref_ldi_pen(z2, z1, loss.p, loss.margin, loss.top_k)
    return _reduce(pen if pen_only else ref_ce(z2, y) + loss.lambda_c * pen, red)


def _logits_of(out):
    return (out[0] if isinstance(out, (tuple, list)) else out).detach().numpy()


def ref_from_call(loss, bound, pen_only):
    """The value loss(x, y, reduction, h1_output, h1_outputs) should give (tests/test_bad_inputs.py's
    oracle): both models run on x (h1 read from the cache when given)."""
    x, y = bound["x"], bound["y"]
    cache = bound.get("h1_output") if bound.get("h1_output") is not None else bound.get("h1_outputs")
    with bcml.no_grad():
        z1 = _logits_of(cache if cache is not None else loss.h1(x))
        z2 = _logits_of(loss.h2(x))
    yn = np.asarray(y.numpy() if hasattr(y, "numpy") else y)
    return ref_pc(loss, z2, yn, z1, bound.get("reduction", "mean"), pen_only)


# ---- fixed-logit models ---------------------------------------------------------------------------
class Fixed:
    """A model returning fixed logits (the triple); h2's logits are a leaf that collects a gradient."""

    def __init__(self, z, grad=False):
        self.z = bcml.tensor(np.asarray(z, np.float32), requires_grad=grad)

    def __call__(self, x):
        return self.z, F.softmax(self.z, 1), F.log_softmax(self.z, 1)


def _case(B, C, seed, right=0.5):
    rng = np.random.default_rng(seed)
    z1 = (rng.standard_normal((B, C)) * 2).astype(np.float32)
    z2 = (rng.standard_normal((B, C)) * 2).astype(np.float32)
    y = rng.integers(0, C, B)
    r = rng.random(B) < right       # h1 right on about half the samples
    y[r] = z1[r].argmax(axis=1)
    return z1, z2, y


FD_SETTINGS = [dict(alpha=1.0, beta=5.0, kind="kl", temperature=1.0),
               dict(alpha=0.5, beta=2.0, kind="kl", temperature=0.5),
               dict(alpha=1.0, beta=0.0, kind="kl", temperature=4.0),
               dict(alpha=0.0, beta=3.0, kind="l2"),
               dict(alpha=1.0, beta=5.0, kind="l2", temperature=7.0)]
LDI_SETTINGS = [dict(p=2, margin=0.0, top_k=None), dict(p=1, margin=0.5, top_k=2),
                dict(p=2, margin=0.3, top_k=3), dict(p=1.5, margin=0.0, top_k=1), dict(p=3, margin=1.0, top_k=None)]
SETTINGS = [(FD, s) for s in FD_SETTINGS] + [(LDI, s) for s in LDI_SETTINGS]
IDS = ["%s-%s" % (c.__name__[:3], "-".join("%s" % v for v in s.values())) for c, s in SETTINGS]
SHAPES = [(1, 1), (6, 3), (13, 5)]


def _fit_shape(cls, kw, C):
    kw = dict(kw)
    if cls is LDI and kw.get("top_k") is not None:
        kw["top_k"] = min(kw["top_k"], C)
    return kw


@pytest.mark.parametrize("cls,kw", SETTINGS, ids=IDS)
@pytest.mark.parametrize("B,C", SHAPES)
@pytest.mark.parametrize("red", ["mean", "sum", "none"])
def test_forward_vs_numpy(cls, kw, B, C, red):
    kw = _fit_shape(cls, kw, C)
    z1, z2, y = _case(B, C, seed=B * 31 + C)
    loss = cls(Fixed(z1), Fixed(z2), 0.7, **kw)
    x = bcml.zeros(B, 2)
    got = loss(x, bcml.tensor(y), reduction=red).detach().numpy()
    np.testing.assert_allclose(got, ref_pc(loss, z2, y, z1, red), rtol=2e-6, atol=1e-6)
    pen = loss.dissonance_from_inputs(x, bcml.tensor(y), reduction=red).detach().numpy()
    np.testing.assert_allclose(pen, ref_pc(loss, z2, y, z1, red, pen_only=True), rtol=2e-6, atol=1e-6)
    # the cached h1 outputs (the triple or the logits alone) give the same value
    cached = loss(x, bcml.tensor(y), reduction=red, h1_output=Fixed(z1)(x)).detach().numpy()
    np.testing.assert_array_equal(cached, got)
    cached = loss(x, bcml.tensor(y), reduction=red, h1_output=bcml.tensor(z1)).detach().numpy()
    np.testing.assert_array_equal(cached, got)


def test_hand_computed():
    """One sample each, worked by hand."""
    z1, z2, x, y = np.array([[2.0, 0.0]]), np.array([[0.0, 1.0]]), bcml.zeros(1, 1), bcml.tensor([0])
    ce = np.log(1 + np.e)                           # CE of [0, 1] at class 0
    # l2: h1 right (argmax 0 == 0): weight 1 + 5; D = ((0-2)^2 + (1-0)^2) / 2 = 2.5
    got = FD(Fixed(z1), Fixed(z2), 0.1, kind="l2")(x, y).item()
    np.testing.assert_allclose(got, ce + 0.1 * 6 * 2.5, rtol=1e-6)
    # ldi: top-1 class of h1 is 0: |0 - 2| - 0.5 = 1.5, whose 2-norm is 1.5
    got = LDI(Fixed(z1), Fixed(z2), 0.1, p=2, margin=0.5, top_k=1)(x, y).item()
    np.testing.assert_allclose(got, ce + 0.1 * 1.5, rtol=1e-6)
    # ldi over both classes: hinges |0 - 2| - 0.5 = 1.5 and |1 - 0| - 0.5 = 0.5; 2-norm sqrt(2.5),
    # 3-norm 3.5^(1/3); with margin 3 both hinges are 0: the penalty and its gradient are 0
    got = LDI(Fixed(z1), Fixed(z2), 0.1, p=2, margin=0.5)(x, y).item()
    np.testing.assert_allclose(got, ce + 0.1 * np.sqrt(2.5), rtol=1e-6)
    got = LDI(Fixed(z1), Fixed(z2), 0.1, p=3, margin=0.5)(x, y).item()
    np.testing.assert_allclose(got, ce + 0.1 * 3.5 ** (1 / 3), rtol=1e-6)
    h2 = Fixed(z2, grad=True)
    out = LDI(Fixed(z1), h2, 1.0, p=2, margin=3.0)(x, y)
    out.backward()
    np.testing.assert_allclose(out.item(), ce, rtol=1e-6)
    p2 = np.exp(z2[0]) / np.exp(z2[0]).sum()
    np.testing.assert_allclose(h2.z.grad.numpy()[0], p2 - np.eye(2)[0], rtol=1e-6)
    # kl at T = 2 with h1 wrong (label 1): weight alpha = 1; q1 = softmax([1, 0]), q2 = softmax([0, .5])
    q1 = np.exp([1, 0]) / np.exp([1, 0]).sum()
    q2 = np.exp([0, .5]) / np.exp([0, .5]).sum()
    kl = 4 * (q1 * np.log(q1 / q2)).sum()
    got = FD(Fixed(z1), Fixed(z2), 1.0, temperature=2.0)(x, bcml.tensor([1])).item()
    np.testing.assert_allclose(got, np.log(1 + np.e ** -1) + kl, rtol=1e-6)


@pytest.mark.parametrize("cls,kw", SETTINGS, ids=IDS)
@pytest.mark.parametrize("red", ["mean", "none"])
def test_backward_vs_finite_differences(cls, kw, red):
    B, C = 7, 4
    kw = _fit_shape(cls, kw, C)
    z1, z2, y = _case(B, C, seed=11)
    h2 = Fixed(z2, grad=True)
    loss = cls(Fixed(z1), h2, 1.3, **kw)
    out = loss(bcml.zeros(B, 2), bcml.tensor(y), reduction=red)
    w = np.random.default_rng(5).standard_normal(out.shape)
    out.backward(bcml.tensor(w.astype(np.float32)) if out.ndim else None)
    wf = w if out.ndim else 1.0

    def f(zz):
        return float(np.sum(wf * ref_pc(loss, zz, y, z1.astype(np.float64), red)))
    num = numeric_grad(f, [z2.astype(np.float64)], 0, eps=1e-5)
    np.testing.assert_allclose(h2.z.grad.numpy(), num, rtol=1e-4, atol=1e-5)


def test_h1_gets_no_gradient_and_lambda_zero_is_cross_entropy():
    z1, z2, y = _case(5, 3, seed=2)
    h1, h2 = Fixed(z1, grad=True), Fixed(z2, grad=True)
    for loss in (FD(h1, h2, 0.0), LDI(h1, h2, 0.0, top_k=2)):
        v = loss(bcml.zeros(5, 1), bcml.tensor(y))
        np.testing.assert_allclose(v.item(), ref_ce(z2.astype(np.float64), y).mean(), rtol=1e-6)
        v.backward()
        assert h1.z.grad is None


def _torch_ref(torch, loss, z2, y, z1):
    """The loss in PyTorch on float64 tensors (z2 differentiable)."""
    Fn = torch.nn.functional
    yt = torch.tensor(y)
    ce = Fn.cross_entropy(z2, yt, reduction="none")
    if isinstance(loss, FD):
        w = loss.alpha + loss.beta * (z1.argmax(1) == yt).double()
        if loss.kind == "kl":
            T = loss.temperature
            d = T * T * Fn.kl_div(Fn.log_softmax(z2 / T, 1), Fn.softmax(z1 / T, 1), reduction="none").sum(1)
        else:
            d = Fn.mse_loss(z2, z1, reduction="none").mean(1)
        pen = w * d
    else:
        k = loss.top_k or z1.shape[1]
        idx = torch.sort(z1, dim=1, descending=True, stable=True).indices[:, :k]
        diff = (z2 - z1).gather(1, idx)
        pen = torch.linalg.vector_norm(torch.relu(diff.abs() - loss.margin), ord=loss.p, dim=1)
    return ce + loss.lambda_c * pen


@pytest.mark.parametrize("cls,kw", SETTINGS, ids=IDS)
def test_models_vs_torch_autograd(torch, cls, kw):
    """Parameter gradients of h2 (an MLP) against PyTorch autograd, h1 an ensemble for LDI."""
    bcml.manual_seed(3)
    h1s = [LogisticRegression(5, 4), LogisticRegression(5, 4)]
    h2 = MLPClassifier(5, 4, hidden_sizes=[6])
    rng = np.random.default_rng(4)
    x = rng.standard_normal((9, 5)).astype(np.float32)
    y = rng.integers(0, 4, 9)
    h1 = h1s if cls is LDI else h1s[0]
    loss = cls(h1, h2, 0.8, **kw)
    out = loss(bcml.tensor(x), bcml.tensor(y), reduction="none")
    w = rng.standard_normal(9).astype(np.float32)
    out.backward(bcml.tensor(w))
    xt = torch.tensor(x, dtype=torch.float64)
    with bcml.no_grad():
        z1 = np.mean([m(bcml.tensor(x))[0].numpy() for m in (h1s if cls is LDI else h1s[:1])], axis=0)
    params = [torch.tensor(p.detach().numpy(), dtype=torch.float64, requires_grad=True) for p in h2.parameters()]
    names = [n for n, _ in h2.named_parameters()]
    assert names == ["hidden.0.weight", "hidden.0.bias", "out.weight", "out.bias"] or len(params) == 4, names
    Fn = torch.nn.functional
    z2 = Fn.linear(torch.relu(Fn.linear(xt, params[0], params[1])), params[2], params[3])
    np.testing.assert_allclose(z2.detach().numpy(), h2(bcml.tensor(x))[0].detach().numpy(), rtol=1e-5, atol=1e-6)
    ref = _torch_ref(torch, loss, z2, y, torch.tensor(z1, dtype=torch.float64))
    np.testing.assert_allclose(out.detach().numpy(), ref.detach().numpy(), rtol=1e-5, atol=1e-5)
    (ref * torch.tensor(w, dtype=torch.float64)).sum().backward()
    for p, q in zip(h2.parameters(), params):
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-4, atol=1e-5)
    for m in h1s:
        assert all(p.grad is None for p in m.parameters())


def test_ensemble_is_mean_logits():
    z1a, z2, y = _case(6, 4, seed=8)
    z1b = _case(6, 4, seed=9)[0]
    loss = LDI([Fixed(z1a), Fixed(z1b)], Fixed(z2), 0.5, top_k=2)
    assert len(loss.ensemble) == 2
    got = loss(bcml.zeros(6, 1), bcml.tensor(y)).item()
    np.testing.assert_allclose(got, ref_pc(loss, z2, y, (z1a.astype(np.float64) + z1b) / 2), rtol=1e-5)
    one = LDI([Fixed(z1a)], Fixed(z2), 0.5)
    assert one.ensemble is None
    np.testing.assert_allclose(one(bcml.zeros(6, 1), bcml.tensor(y)).item(),
                               LDI(Fixed(z1a), Fixed(z2), 0.5)(bcml.zeros(6, 1), bcml.tensor(y)).item())


def test_top_k_ties_and_nan():
    """Ties in h1's logits go to the lower class index (as a stable descending sort)."""
    z1 = np.array([[1.0, 3.0, 3.0, 3.0]], np.float32)
    z2 = np.array([[0.0, 0.0, 10.0, 20.0]], np.float32)
    loss = LDI(Fixed(z1), Fixed(z2), 1.0, p=1, top_k=2)
    # top-2: classes 1 and 2 -> |0 - 3| + |10 - 3| = 10
    np.testing.assert_allclose(loss.dissonance_from_inputs(bcml.zeros(1, 1), bcml.tensor([1])).item(), 10.0)
    znan = np.array([[np.nan, 0.0, 1.0]], np.float32)
    v = LDI(Fixed(znan), Fixed(np.zeros((1, 3), np.float32)), 1.0, top_k=1)(bcml.zeros(1, 1), bcml.tensor([0]))
    assert np.isnan(v.item())   # NaN ranks first (as torch.topk) and propagates


# ---- training: replay, helpers, sweep ---------------------------------------------------------
from test_replay import CountingStep  # noqa: E402  (step(x, y, h1) with a call counter)


@pytest.fixture
def replay_flag():
    old = _engine.REPLAY
    yield
    _engine.REPLAY = old


def _train(replay, cls, kw, ensemble=False):
    _engine.REPLAY = replay
    rng = np.random.default_rng(0)
    x = rng.standard_normal((103, 7)).astype(np.float32)
    y = rng.integers(0, 3, 103)
    bcml.manual_seed(1)
    h1s = [LogisticRegression(7, 3).eval() for _ in range(2 if ensemble else 1)]
    h2 = MLPClassifier(7, 3)
    opt = bcml.optim.SGD(h2.parameters(), lr=0.1, momentum=0.9)
    data = _engine.as_dataset(DataLoader(x, y, batch_size=16, shuffle=True, seed=5))
    loss = cls(h1s if ensemble else h1s[0], h2, 0.8, **kw)
    cache, _, _ = _engine.predict(loss.h1, data)
    step = CountingStep(lambda xb, yb, h: loss(xb, yb, h1_output=h))
    session = _engine.Session()
    losses = []
    for _ in range(2):
        losses += _engine.train_epoch(step, data, opt, cache, session=session)
    return {k: v.detach().numpy().copy() for k, v in h2.state_dict().items()}, np.array(losses), step.calls


@pytest.mark.parametrize("cls,kw,ensemble", [(FD, dict(kind="kl", temperature=2.0), False),
                                             (FD, dict(kind="l2"), False),
                                             (LDI, dict(p=2, margin=0.1, top_k=2), True)])
def test_replayed_step_matches_eager(replay_flag, cls, kw, ensemble):
    with warnings.catch_warnings():
        warnings.simplefilter("error", _engine.ReplayWarning)
        eager, le, calls_e = _train(False, cls, kw, ensemble)
        replayed, lr_, calls_r = _train(True, cls, kw, ensemble)
    assert calls_e == 2 * 7
    assert calls_r < calls_e   # the step was recorded once and replayed in C
    for k in eager:
        np.testing.assert_allclose(replayed[k], eager[k], rtol=1e-5, atol=1e-7, err_msg=k)
    np.testing.assert_allclose(lr_, le, rtol=1e-5, atol=1e-7)
    assert np.isfinite(le).all()


def test_compatibility_helpers_with_an_ensemble():
    """train_compatibility (h1 an ensemble in eval mode: its outputs are cached) lowers the loss,
    and test_compatibility's value is the formula over the whole test set."""
    from bcml.helpers.training import test_compatibility, train_compatibility
    rng = np.random.default_rng(1)
    x = rng.standard_normal((120, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0)
    bcml.manual_seed(2)
    h1s = [LogisticRegression(4, 3).eval(), LogisticRegression(4, 3).eval()]
    h2 = LogisticRegression(4, 3)
    loss = LDI(h1s, h2, 0.5, top_k=2)
    tr = DataLoader(x[:80], y[:80], batch_size=16, shuffle=True, seed=0)
    te = DataLoader(x[80:], y[80:], batch_size=40)
    _, _, _, test_losses = train_compatibility(2, h2, bcml.optim.SGD(h2.parameters(), lr=0.2), loss, tr, te, 16, 40)
    assert test_losses[-1] < test_losses[0]
    with bcml.no_grad():
        z1 = np.mean([m(bcml.tensor(x[80:]))[0].numpy() for m in h1s], axis=0)
        z2 = h2(bcml.tensor(x[80:]))[0].numpy()
    np.testing.assert_allclose(test_compatibility(h2, loss, te, 40)[0], ref_pc(loss, z2, y[80:], z1), rtol=1e-5)


def _sweep_args(NE, SI, ne_kw, si_kw):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((200, 4)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int64) + (x[:, 2] > 1)
    bcml.manual_seed(4)
    h1, h2 = LogisticRegression(4, 3), LogisticRegression(4, 3)
    tr = DataLoader(x[:150], y[:150], batch_size=32, shuffle=True, seed=1)
    te = DataLoader(x[150:], y[150:], batch_size=50)
    return (1, h1, h2, tr, te, 32, 50), dict(
        OptimizerClass=bcml.optim.SGD, optimizer_kwargs={"lr": 0.1}, NewErrorLossClass=NE, StrictImitationLossClass=SI,
        lambda_c_stepsize=1.0, new_error_loss_kwargs=ne_kw, strict_imitation_loss_kwargs=si_kw, seed=7, n_jobs=1,
        progress=False)


def _sweep(folder, NE, SI, ne_kw=None, si_kw=None):
    from bcml.helpers.training import compatibility_sweep
    args, kw = _sweep_args(NE, SI, ne_kw, si_kw)
    return compatibility_sweep(str(folder), *args, **kw)


def test_sweep_with_the_new_losses(tmp_path):
    """The sweep builds the new losses (h1's outputs cached once per data set): at lambda_c = 0
    they train as h2's cross-entropy, so their models equal BCCrossEntropyLoss's at 0; at 1 they
    differ."""
    _sweep(tmp_path / "new", FD, LDI, {"kind": "l2", "beta": 2.0}, {"top_k": 2, "margin": 0.1})
    _sweep(tmp_path / "ce", BCCrossEntropyLoss, BCCrossEntropyLoss)
    load_file = bcml.load
    for kind in ("new-error", "strict-imitation"):
        new0 = load_file(str(tmp_path / "new" / ("0.0-model-%s.safetensors" % kind)))
        ce0 = load_file(str(tmp_path / "ce" / ("0.0-model-%s.safetensors" % kind)))
        new1 = load_file(str(tmp_path / "new" / ("1.0-model-%s.safetensors" % kind)))
        for k in ce0:
            np.testing.assert_allclose(new0[k].numpy(), ce0[k].numpy(), rtol=1e-5, atol=1e-6, err_msg=k)
        assert any(not np.allclose(new1[k].numpy(), new0[k].numpy()) for k in new0)
    with open(tmp_path / "new" / "sweep_summary.json") as f:
        assert len(json.load(f)["data"]) == 8   # 2 lambdas x 2 kinds x (train, test)


def test_sweep_with_binary_models_names_the_problem(tmp_path):
    """Binary models (one probability per sample) cannot give these losses logits: the sweep
    stops with an error saying so."""
    from bcml.helpers.training import compatibility_sweep
    rng = np.random.default_rng(0)
    x = rng.standard_normal((60, 3)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    nn = bcml.nn
    h1, h2 = nn.Sequential(nn.Linear(3, 1), nn.Sigmoid()), nn.Sequential(nn.Linear(3, 1), nn.Sigmoid())
    with pytest.raises(ValueError, match="FocalDistillationLoss needs multi-class logits"):
        compatibility_sweep(str(tmp_path), 1, h1, h2, DataLoader(x, y, batch_size=20), DataLoader(x, y, batch_size=30),
                            20, 30, bcml.optim.SGD, {"lr": 0.1}, FD, LDI, lambda_c_stepsize=1.0, seed=1, n_jobs=1,
                            progress=False)


def test_widget_sweep_with_the_new_losses(tmp_path):
    """CompatibilityAnalysis passes the classes on to its sweep: the same points as the sweep's."""
    from conftest import need
    need("anywidget")
    from bcml.widget import CompatibilityAnalysis
    ne_kw, si_kw = {"kind": "kl", "temperature": 2.0}, {"p": 1, "top_k": 2}
    want = _sweep(tmp_path / "direct", FD, LDI, ne_kw, si_kw)
    args, kw = _sweep_args(FD, LDI, ne_kw, si_kw)
    w = CompatibilityAnalysis(str(tmp_path / "widget"), *args, **kw)
    assert w.start_sweep()
    assert w.wait(120) is True
    assert w.status == "done" and w.error == ""
    assert w.points == want["data"]


# ---- bad arguments --------------------------------------------------------------------------------
def _m():
    return LogisticRegression(3, 3)


@pytest.mark.parametrize("make, exc, words", [
    (lambda: FD(_m(), _m(), 0.5, alpha=-1.0), ValueError, ("alpha",)),
    (lambda: FD(_m(), _m(), 0.5, beta=float("nan")), ValueError, ("beta",)),
    (lambda: FD(_m(), _m(), 0.5, alpha="1"), TypeError, ("alpha",)),
    (lambda: FD(_m(), _m(), 0.5, kind="x"), ValueError, ("kind", "'x'")),
    (lambda: FD(_m(), _m(), 0.5, kind=2), TypeError, ("kind",)),
    (lambda: FD(_m(), _m(), 0.5, temperature=0.0), ValueError, ("temperature",)),
    (lambda: FD(_m(), _m(), 0.5, temperature=-1), ValueError, ("temperature",)),
    (lambda: FD(_m(), _m(), 0.5, temperature=float("inf")), ValueError, ("temperature",)),
    (lambda: FD(_m(), _m(), 0.5, temperature=None), TypeError, ("temperature",)),
    (lambda: FD(_m(), _m(), -0.5), ValueError, ("lambda_c",)),
    (lambda: FD(3, _m(), 0.5), TypeError, ("h1",)),
    (lambda: FD(_m(), None, 0.5), TypeError, ("h2",)),
    (lambda: LDI(_m(), _m(), 0.5, p=0), ValueError, ("p",)),
    (lambda: LDI(_m(), _m(), 0.5, p=-2), ValueError, ("p",)),
    (lambda: LDI(_m(), _m(), 0.5, p=0.5), ValueError, ("p",)),
    (lambda: LDI(_m(), _m(), 0.5, p=float("inf")), ValueError, ("p",)),
    (lambda: LDI(_m(), _m(), 0.5, p=True), TypeError, ("p",)),
    (lambda: LDI(_m(), _m(), 0.5, margin=-0.1), ValueError, ("margin",)),
    (lambda: LDI(_m(), _m(), 0.5, top_k=0), ValueError, ("top_k",)),
    (lambda: LDI(_m(), _m(), 0.5, top_k=2.0), TypeError, ("top_k",)),
    (lambda: LDI(_m(), _m(), 0.5, top_k=True), TypeError, ("top_k",)),
    (lambda: LDI([], _m(), 0.5), ValueError, ("h1",)),
    (lambda: LDI([_m(), 3], _m(), 0.5), TypeError, ("h1[1]",)),
    (lambda: LDI(_m(), _m(), 0.5, top_k=4)(bcml.zeros(2, 3), bcml.tensor([0, 1])), ValueError, ("top_k", "C=3")),
    (lambda: LDI([_m(), LogisticRegression(3, 2)], _m(), 0.5)(bcml.zeros(2, 3), bcml.tensor([0, 1])),
     ValueError, ("h1[1]",)),
    (lambda: FD(_m(), _m(), 0.5)(bcml.zeros(2, 3), bcml.tensor([0, 3])), ValueError, ("y", "number of classes 3")),
    (lambda: FD(_m(), _m(), 0.5)(bcml.zeros(2, 3), bcml.tensor([0])), ValueError, ("y",)),
    (lambda: FD(_m(), _m(), 0.5)(bcml.zeros(2, 3), [0, 1], reduction="batchmean"), ValueError, ("reduction",)),
    (lambda: FD(_m(), bcml.nn.Sequential(bcml.nn.Linear(3, 1), bcml.nn.Sigmoid()), 0.5)(
        bcml.zeros(2, 3), bcml.tensor([0, 1])), TypeError, ("h2", "triple")),
])
def test_bad_arguments(make, exc, words):
    with pytest.raises(exc) as e:
        make()
    for w in words:
        assert w in str(e.value), str(e.value)


def test_op_checks_every_value():
    """The C op refuses bad settings itself (a bcml_status error), whoever calls it."""
    ops = _core.op_ids()
    z, y = bcml.zeros(2, 3), bcml.tensor([0, 1])
    for ints, floats, word in [((3, 1, 0, 0), (0.5, 1, 1, 1), "kind"), ((0, 3, 0, 0), (0.5, 1, 1, 1), "reduction"),
                               ((2, 1, 4, 0), (0.5, 2, 0, 1), "top_k"), ((2, 1, -1, 0), (0.5, 2, 0, 1), "top_k"),
                               ((2, 1, 0, 0), (0.5, 0.5, 0, 1), "p"), ((2, 1, 0, 0), (0.5, 2, -1, 1), "margin"),
                               ((0, 1, 0, 0), (0.5, -1, 1, 1), "alpha"), ((1, 1, 0, 0), (0.5, 1, np.nan, 1), "beta"),
                               ((0, 1, 0, 0), (0.5, 1, 1, 0), "temperature"),
                               ((0, 1, 0, 0), (-1, 1, 1, 1), "lambda_c")]:
        with pytest.raises(ValueError, match=word):
            _core.apply(ops["pc_loss"], (z, y, z), ints, floats)
    with pytest.raises(ValueError, match="out of bounds"):
        _core.apply(ops["pc_loss"], (z, bcml.tensor([0, 3]), z), (0, 1, 0, 0), (0.5, 1, 1, 1))
    with pytest.raises(TypeError, match="int64"):
        _core.apply(ops["pc_loss"], (z, bcml.tensor([0.0, 1.0]), z), (0, 1, 0, 0), (0.5, 1, 1, 1))
    with pytest.raises(ValueError, match="shape"):
        _core.apply(ops["pc_loss"], (z, y, bcml.zeros(2, 2)), (0, 1, 0, 0), (0.5, 1, 1, 1))
