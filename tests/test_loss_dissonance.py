"""dissonance(...) of the eight compatibility losses with BCML's documented per-class arguments
(issue 11, item 2): the class's term d_i of SPEC section 3 over the samples given, against NumPy
float64, PyTorch's functional losses, and central differences; its relation to forward's term
(dissonance_from_inputs); forward(x, y, reduction) as BCML's nn.Module losses have it."""
import math

import numpy as np
import pytest

import bcml
from bcml.loss import (BCBinaryCrossEntropyLoss, BCCrossEntropyLoss, BCKLDivergenceLoss, BCNLLLoss,
                       StrictImitationBinaryCrossEntropyLoss, StrictImitationCrossEntropyLoss,
                       StrictImitationKLDivergenceLoss, StrictImitationNLLLoss)
from conftest import grad_check

B, C = 7, 4
ALL = [BCNLLLoss, BCCrossEntropyLoss, BCBinaryCrossEntropyLoss, BCKLDivergenceLoss, StrictImitationNLLLoss,
       StrictImitationCrossEntropyLoss, StrictImitationBinaryCrossEntropyLoss, StrictImitationKLDivergenceLoss]
BINARY = (BCBinaryCrossEntropyLoss, StrictImitationBinaryCrossEntropyLoss)
# the documented argument names, h2's side marked by its position
ARGS = {
    BCNLLLoss: ("h2_output_log_softmax", "target_labels", 0),
    BCCrossEntropyLoss: ("h2_output_logit", "target_labels", 0),
    BCBinaryCrossEntropyLoss: ("h2_support_output_sigmoid", "target_labels", 0),
    BCKLDivergenceLoss: ("h2_output_log_softmax", "target_labels", 0),
    StrictImitationNLLLoss: ("h1_output_logsoftmax", "h2_output_logsoftmax", 1),
    StrictImitationCrossEntropyLoss: ("h1_output_labels", "h2_output_logit", 1),
    StrictImitationBinaryCrossEntropyLoss: ("h1_output_sigmoid", "h2_output_sigmoid", 1),
    StrictImitationKLDivergenceLoss: ("h1_output_prob", "h2_output_prob", 1),
}


def _log_softmax(z):
    m = z.max(axis=1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=1, keepdims=True))


def _clog(v):
    with np.errstate(divide="ignore"):
        return np.maximum(np.log(v), -100.0)


def inputs(cls, seed=0, dist=False):
    """The documented arguments of cls.dissonance as float32/int64 arrays."""
    rng = np.random.default_rng(seed)
    z1, z2 = rng.standard_normal((B, C)) * 2, rng.standard_normal((B, C))
    y = rng.integers(0, C, B)
    p1, p2 = rng.uniform(0.02, 0.98, B), rng.uniform(0.02, 0.98, B)
    q = np.exp(_log_softmax(z1))
    f = lambda a: a.astype(np.float32)  # noqa: E731
    return {
        BCNLLLoss: (f(_log_softmax(z2)), y),
        BCCrossEntropyLoss: (f(z2), y),
        BCBinaryCrossEntropyLoss: (f(p2), f((p1 > 0.5) * 1.0)),
        BCKLDivergenceLoss: (f(_log_softmax(z2)), f(q) if dist else y),
        StrictImitationNLLLoss: (f(_log_softmax(z1)), f(_log_softmax(z2))),
        StrictImitationCrossEntropyLoss: (f(q) if dist else y, f(z2)),
        StrictImitationBinaryCrossEntropyLoss: (f(p1), f(p2)),
        StrictImitationKLDivergenceLoss: (f(q), f(np.exp(_log_softmax(z2)))),
    }[cls]


def ref_d(cls, a, b):
    """Per-sample d_i in float64 (SPEC section 3's formulas, labels as one-hot rows)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)

    width = (a if a.ndim == 2 else b).shape[-1]

    def onehot(v):
        return v if v.ndim == 2 else np.eye(width)[v.astype(np.int64)]
    if cls in (BCNLLLoss, BCKLDivergenceLoss):
        q = onehot(b)   # KL(q || p2) with 0 log 0 = 0 (NaN where q < 0, as PyTorch's kl_div)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(q == 0, 0.0, q * (np.log(q) - a)).sum(1)
    if cls is BCCrossEntropyLoss:
        return -(onehot(b) * _log_softmax(a)).sum(1)
    if cls is StrictImitationCrossEntropyLoss:
        return -(onehot(a) * _log_softmax(b)).sum(1)
    if cls is StrictImitationNLLLoss:
        return -(np.exp(a) * b).sum(1)
    if cls is StrictImitationKLDivergenceLoss:
        with np.errstate(invalid="ignore", divide="ignore"):  # terms with p1 = 0 count 0
            return np.where(a == 0, 0.0, a * (np.log(a) - np.log(np.where(a > 0, b, 1)))).sum(1)
    p, t = (a, b) if cls is BCBinaryCrossEntropyLoss else (b, a)
    return -(t * _clog(p) + (1 - t) * _clog(1 - p))


def reduce(d, red):
    return d if red == "none" else d.sum() if red == "sum" else (d.mean() if len(d) else math.nan)


def loss(cls, **kw):
    nn = bcml.nn
    h = nn.Sequential(nn.Linear(3, 1), nn.Sigmoid()) if cls in BINARY else bcml.models.LogisticRegression(3, C)
    return cls(h, h, 0.5, **kw)


@pytest.mark.parametrize("cls", ALL)
@pytest.mark.parametrize("red", ["mean", "sum", "none"])
@pytest.mark.parametrize("dist", [False, True])
def test_values_vs_numpy(cls, red, dist):
    a, b = inputs(cls, dist=dist)
    got = loss(cls).dissonance(bcml.tensor(a), bcml.tensor(b), reduction=red)
    np.testing.assert_allclose(got.numpy(), reduce(ref_d(cls, a, b), red), rtol=1e-5, atol=1e-6)
    # the documented names work as keywords; KL losses take "batchmean" for "mean"
    n1, n2, _ = ARGS[cls]
    kw = loss(cls).dissonance(**{n1: bcml.tensor(a), n2: bcml.tensor(b)}, reduction=red)
    np.testing.assert_array_equal(kw.numpy(), got.numpy())
    if red == "mean" and cls in (BCKLDivergenceLoss, StrictImitationKLDivergenceLoss):
        assert loss(cls).dissonance(bcml.tensor(a), bcml.tensor(b), reduction="batchmean").item() == got.item()


def _torch_ref(torch, cls, a, b, red):
    F = torch.nn.functional
    a, b = torch.from_numpy(np.asarray(a)), torch.from_numpy(np.asarray(b))
    if cls is BCNLLLoss:
        return F.nll_loss(a, b, reduction=red)
    if cls is BCCrossEntropyLoss:
        return F.cross_entropy(a, b, reduction=red)
    if cls is StrictImitationCrossEntropyLoss:
        return F.cross_entropy(b, a, reduction=red)       # index targets, or class probabilities
    if cls is StrictImitationNLLLoss:
        return F.cross_entropy(b, a.exp(), reduction=red)  # log_softmax of a log-softmax is itself
    if cls is BCBinaryCrossEntropyLoss:
        return F.binary_cross_entropy(a, b, reduction=red)
    if cls is StrictImitationBinaryCrossEntropyLoss:
        return F.binary_cross_entropy(b, a, reduction=red)
    if cls is BCKLDivergenceLoss:
        q = b if b.ndim == 2 else F.one_hot(b, C).float()
        inp = a
    else:
        q, inp = a, b.log()
    v = F.kl_div(inp, q, reduction="none").sum(1)
    return v if red == "none" else v.sum() if red == "sum" else v.mean()


@pytest.mark.parametrize("cls", ALL)
@pytest.mark.parametrize("red", ["mean", "sum", "none"])
@pytest.mark.parametrize("dist", [False, True])
def test_values_vs_torch(torch, cls, red, dist):
    a, b = inputs(cls, seed=1, dist=dist)
    got = loss(cls).dissonance(bcml.tensor(a), bcml.tensor(b), reduction=red)
    np.testing.assert_allclose(got.numpy(), _torch_ref(torch, cls, a, b, red).numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cls", ALL)
@pytest.mark.parametrize("red", ["mean", "none"])
def test_gradient_flows_to_h2_side(cls, red):
    """bcml's backward against central differences, with respect to the h2-side argument."""
    a, b = inputs(cls, seed=2)
    h2_pos = ARGS[cls][2]
    lf = loss(cls)
    grad_check(lambda ta, tb: lf.dissonance(ta, tb, reduction=red), [a, b], wrt=[h2_pos], eps=1e-3)
    # and the autograd graph reaches a model's parameters through it
    ta, tb = bcml.tensor(a), bcml.tensor(b)
    w = bcml.tensor(np.ones(a.shape[1:] if h2_pos == 0 else b.shape[1:], np.float32), requires_grad=True)
    args = [ta, tb]
    args[h2_pos] = args[h2_pos] * w if cls not in BINARY else args[h2_pos] * w.sum() / w.numel()
    lf.dissonance(*args).backward()
    assert w.grad is not None and np.isfinite(w.grad.numpy()).all() and np.abs(w.grad.numpy()).sum() > 0


@pytest.mark.parametrize("cls", [BCKLDivergenceLoss, StrictImitationCrossEntropyLoss])
def test_labels_count_as_one_hot_distributions(cls):
    a, b = inputs(cls, seed=3)
    lab_pos = 1 if cls is BCKLDivergenceLoss else 0
    args = [a, b]
    labels = args[lab_pos]
    args[lab_pos] = np.eye(C, dtype=np.float32)[labels]
    for red in ("mean", "sum", "none"):
        np.testing.assert_allclose(loss(cls).dissonance(*map(bcml.tensor, args), reduction=red).numpy(),
                                   loss(cls).dissonance(bcml.tensor(a), bcml.tensor(b), reduction=red).numpy(),
                                   rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("cls", ALL)
def test_float_labels_and_binary_shapes(cls):
    a, b = inputs(cls, seed=4)
    want = loss(cls).dissonance(bcml.tensor(a), bcml.tensor(b)).item()
    variants = []
    if cls in BINARY:   # (B,) and (B, 1) alike on both sides; integer 0/1 targets
        variants = [(a.reshape(-1, 1), b), (a, b.reshape(-1, 1)), (a.reshape(-1, 1), b.reshape(-1, 1))]
        if cls is BCBinaryCrossEntropyLoss:
            variants += [(a, b.astype(np.int64)), (a, b.astype(np.float64)), (a, list(b))]
    elif ARGS[cls][1] == "target_labels":
        variants = [(a, b.astype(np.float32)), (a, b.astype(np.float64)), (a, [float(v) for v in b]),
                    (a, bcml.tensor(b.astype(np.float32)))]
    elif cls is StrictImitationCrossEntropyLoss:
        variants = [(a.astype(np.float32), b), (a.astype(np.float64), b), (bcml.tensor(a.astype(np.float32)), b)]
    for va, vb in variants:
        va = bcml.tensor(va) if isinstance(va, np.ndarray) and va.dtype != np.float64 else va
        vb = bcml.tensor(vb) if isinstance(vb, np.ndarray) and vb.dtype != np.float64 else vb
        assert loss(cls).dissonance(va, vb).item() == pytest.approx(want, rel=1e-6)


def _model_pair(cls, seed):
    bcml.manual_seed(seed)
    nn = bcml.nn
    if cls in BINARY:
        return nn.Sequential(nn.Linear(5, 1), nn.Sigmoid()), nn.Sequential(nn.Linear(5, 1), nn.Sigmoid())
    return bcml.models.LogisticRegression(5, C), bcml.models.LogisticRegression(5, C)


@pytest.mark.parametrize("cls", ALL)
def test_forward_term_is_dissonance_over_s_scaled(cls):
    """BCML's forward passed the samples h1 gets right (S) to dissonance; bcml's forward term
    (1/B) sum over S of d_i is |S|/B times dissonance over S."""
    h1, h2 = _model_pair(cls, 5)
    rng = np.random.default_rng(5)
    n = 40
    x = bcml.tensor(rng.standard_normal((n, 5)).astype(np.float32))
    with bcml.no_grad():
        o1, o2 = h1(x), h2(x)
    if cls in BINARY:
        p1, p2 = o1.numpy().reshape(-1), o2.numpy().reshape(-1)
        y = np.where(rng.uniform(size=n) < 0.7, p1 >= 0.5, p1 < 0.5).astype(np.float32)
        s = (p1 >= 0.5) == (y == 1)
        args = (p2[s], y[s]) if cls is BCBinaryCrossEntropyLoss else (p1[s], p2[s])
    else:
        (z1, q1, l1), (z2, q2, l2) = [[t.numpy() for t in o] for o in (o1, o2)]
        am = z1.argmax(1)
        y = np.where(rng.uniform(size=n) < 0.6, am, (am + 1) % C).astype(np.int64)
        s = am == y
        args = {BCNLLLoss: (l2[s], y[s]), BCCrossEntropyLoss: (z2[s], y[s]), BCKLDivergenceLoss: (l2[s], y[s]),
                StrictImitationNLLLoss: (l1[s], l2[s]),
                StrictImitationCrossEntropyLoss: (q1[s], z2[s]),  # forward imitates softmax(h1's logits)
                StrictImitationKLDivergenceLoss: (q1[s], q2[s])}[cls]
    assert 0 < s.sum() < n
    lf = cls(h1, h2, 0.5)
    term = lf.dissonance_from_inputs(x, y).item()
    over_s = lf.dissonance(*map(bcml.tensor, args)).item()
    assert term == pytest.approx(s.sum() / n * over_s, rel=1e-5)
    assert lf.dissonance_from_inputs(x, y, reduction="sum").item() == \
        pytest.approx(lf.dissonance(*map(bcml.tensor, args), reduction="sum").item(), rel=1e-5)


@pytest.mark.parametrize("cls", ALL)
def test_forward_as_documented(cls):
    h1, h2 = _model_pair(cls, 6)
    x = bcml.randn(9, 5)
    y = bcml.tensor([0, 1, 1, 0, 1, 0, 0, 1, 1]) if cls in BINARY else bcml.tensor([0, 1, 2, 3, 0, 1, 2, 3, 0])
    lf = cls(h1, h2, 0.5)
    for red in ("mean", "sum", "none"):
        np.testing.assert_array_equal(lf.forward(x, y, reduction=red).detach().numpy(),
                                      lf(x, y, reduction=red).detach().numpy())

    class Doubled(cls):      # as an nn.Module, calling the loss runs (an overridden) forward
        def forward(self, x, y, reduction="mean"):
            return super().forward(x, y, reduction) * 2
    assert Doubled(h1, h2, 0.5)(x, y).item() == pytest.approx(2 * lf(x, y).item(), rel=1e-6)
    # forward's gradient reaches h2's parameters
    lf.forward(x, y).backward()
    assert all(p.grad is not None for p in h2.parameters())


def test_empty_input_follows_pytorch():
    lf = loss(BCNLLLoss)
    e, ey = bcml.zeros(0, C), bcml.zeros(0, dtype=bcml.int64)
    assert math.isnan(lf.dissonance(e, ey).item())
    assert lf.dissonance(e, ey, reduction="sum").item() == 0.0
    assert tuple(lf.dissonance(e, ey, reduction="none").shape) == (0,)


@pytest.mark.parametrize("cls", ALL)
def test_bad_arguments_name_the_argument(cls):
    a, b = inputs(cls)
    n1, n2, _ = ARGS[cls]
    lf = loss(cls)
    with pytest.raises(ValueError, match="reduction"):
        lf.dissonance(bcml.tensor(a), bcml.tensor(b), reduction="avg")
    with pytest.raises(TypeError, match="reduction"):
        lf.dissonance(bcml.tensor(a), bcml.tensor(b), reduction=None)
    with pytest.raises(ValueError, match=n1 if cls is StrictImitationCrossEntropyLoss else n2):  # batch sizes differ
        lf.dissonance(bcml.tensor(a), bcml.tensor(b[:-1]))   # (the argument read second is blamed)
    with pytest.raises(TypeError, match=n1):
        lf.dissonance(1.5, bcml.tensor(b))
    if cls in BINARY:
        with pytest.raises(ValueError, match=n1):
            lf.dissonance(bcml.tensor(np.stack([a, a], 1)), bcml.tensor(b))
        bad = b.copy()
        bad[2] = 1.5
        with pytest.raises(ValueError, match="%s.*1.5 at index 2" % n2):
            lf.dissonance(bcml.tensor(a), bcml.tensor(bad))
        bad[2] = math.nan
        with pytest.raises(ValueError, match="%s.*nan at index 2" % n2):
            lf.dissonance(bcml.tensor(a), bcml.tensor(bad))
        return
    with pytest.raises(ValueError, match=n1 if cls is not StrictImitationCrossEntropyLoss else n2):
        lf.dissonance(*(bcml.tensor(v[:, :, None]) if v.ndim == 2 else bcml.tensor(v) for v in (a, b)))
    if cls in (BCKLDivergenceLoss, StrictImitationKLDivergenceLoss):
        with pytest.raises(ValueError, match="%s' has %d classes, num_classes is %d" % (n1, C, C + 1)):
            cls(lf.h1, lf.h2, 0.5, num_classes=C + 1).dissonance(bcml.tensor(a), bcml.tensor(b))
    lab = n2 if ARGS[cls][1] == "target_labels" else n1 if cls is StrictImitationCrossEntropyLoss else None
    if lab:
        args = [a, b]
        k = 1 if lab == n2 else 0
        for v, msg in ((C, r"\[0, the number of classes %d\), got %d" % (C, C)), (-1, ">= 0, got -1"),
                       (0.5, "non-integral value 0.5 at index 1")):
            bad = args[k].astype(np.float64 if isinstance(v, float) else np.int64)
            bad[1] = v
            call = [bcml.tensor(x) for x in args]
            call[k] = bad
            with pytest.raises(ValueError, match="%s.*%s" % (lab, msg)):
                lf.dissonance(*call)
        call = [bcml.tensor(x) for x in args]
        call[k] = bcml.tensor(args[k] % 2 == 0)
        with pytest.raises(TypeError, match=lab):
            lf.dissonance(*call)
    if cls is StrictImitationKLDivergenceLoss or cls is StrictImitationNLLLoss:
        with pytest.raises(TypeError, match=n2):
            lf.dissonance(bcml.tensor(a), bcml.tensor(np.zeros(b.shape, np.int64)))


def test_probabilities_outside_unit_interval_are_refused():
    lf = loss(StrictImitationBinaryCrossEntropyLoss)
    with pytest.raises(ValueError, match=r"h2_output_sigmoid' must hold probabilities in \[0, 1\], got 1.5 at index 1"):
        lf.dissonance(bcml.tensor([0.2, 0.3]), bcml.tensor([0.2, 1.5]))
    with pytest.raises(ValueError, match=r"h1_output_sigmoid' must hold probabilities in \[0, 1\], got -0.5 at index 0"):
        lf.dissonance(bcml.tensor([-0.5, 0.3]), bcml.tensor([0.2, 0.5]))


def test_strict_kl_zero_probabilities():
    """KL(p1 || p2): classes with p1 = 0 count 0 even where p2 = 0 (PyTorch's kl_div gives NaN
    there, 0 * log 0); p2 = 0 where p1 > 0 is an infinite divergence."""
    lf = loss(StrictImitationKLDivergenceLoss)
    p1 = bcml.tensor([[0.5, 0.5, 0.0, 0.0]])
    p2 = bcml.tensor([[0.25, 0.75, 0.0, 0.0]], requires_grad=True)
    d = lf.dissonance(p1, p2)
    want = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    assert d.item() == pytest.approx(want, rel=1e-6)
    d.backward()
    np.testing.assert_allclose(p2.grad.numpy(), [[-0.5 / 0.25, -0.5 / 0.75, 0.0, 0.0]], rtol=1e-6)
    assert lf.dissonance(bcml.tensor([[1.0, 0.0, 0.0, 0.0]]), bcml.tensor([[0.0, 1.0, 0.0, 0.0]])).item() == math.inf
