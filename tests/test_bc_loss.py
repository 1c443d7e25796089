"""bcml.loss: the eight compatibility losses of SPEC section 3 (op compat_loss), against a
NumPy float64 implementation of SPEC's formulas, central differences and PyTorch."""
import math
import re

import numpy as np
import pytest

import bcml
from bcml import _core
from bcml.loss import (BCBinaryCrossEntropyLoss, BCCrossEntropyLoss, BCKLDivergenceLoss, BCNLLLoss,
                       StrictImitationBinaryCrossEntropyLoss, StrictImitationCrossEntropyLoss,
                       StrictImitationKLDivergenceLoss, StrictImitationNLLLoss)
from conftest import grad_check, numeric_grad

NLL, CE, BCE, KL = 0, 1, 2, 3
RED = {"none": 0, "mean": 1, "sum": 2}
CLASSES = {  # class -> (kind, strict)
    BCNLLLoss: (NLL, 0), BCCrossEntropyLoss: (CE, 0), BCBinaryCrossEntropyLoss: (BCE, 0),
    BCKLDivergenceLoss: (KL, 0), StrictImitationNLLLoss: (NLL, 1),
    StrictImitationCrossEntropyLoss: (CE, 1), StrictImitationBinaryCrossEntropyLoss: (BCE, 1),
    StrictImitationKLDivergenceLoss: (KL, 1),
}
CLASS_LIST = list(CLASSES)
MULTI = [c for c in CLASS_LIST if CLASSES[c][0] != BCE]
BINARY = [c for c in CLASS_LIST if CLASSES[c][0] == BCE]


# ---- NumPy float64 reference of SPEC's table --------------------------------------------------
def _log_softmax(z):
    m = z.max(axis=1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=1, keepdims=True))


def ref_terms(kind, strict, x2, y, x1, pivot=0.5):
    """(base_i, d_i, in_S_i) in float64."""
    x2 = np.asarray(x2, np.float64)
    x1 = np.asarray(x1, np.float64)
    if kind == BCE:
        y = np.asarray(y, np.float64)
        clog = lambda v: np.maximum(np.log(v), -100.0)  # noqa: E731

        def bce(p, t):
            return -(t * clog(p) + (1 - t) * clog(1 - p))
        with np.errstate(divide="ignore"):
            base = bce(x2, y)
            d = bce(x2, x1) if strict else base
        s = (x1 >= pivot) == (y == 1)
        return base, d, s
    y = np.asarray(y, np.int64)
    if kind == CE:
        lp2, lp1 = _log_softmax(x2), _log_softmax(x1)
    else:
        lp2, lp1 = x2, x1
    base = -lp2[np.arange(len(y)), y]
    p1 = np.exp(lp1)
    if not strict:
        d = base
    elif kind == KL:
        d = np.where(p1 > 0, p1 * (lp1 - lp2), 0.0).sum(axis=1)
    else:
        d = -(p1 * lp2).sum(axis=1)
    s = np.argmax(x1, axis=1) == y
    return base, d, s


def ref_loss(kind, strict, x2, y, x1, lam, red, pivot=0.5, dis_only=False):
    base, d, s = ref_terms(kind, strict, x2, y, x1, pivot)
    v = s * d if dis_only else base + lam * s * d
    if red == "none":
        return v
    if red == "sum":
        return v.sum()
    return v.sum() / len(v) if len(v) else math.nan


def op(kind, strict, y, lam, red, pivot=0.5, dis_only=False):
    yt = bcml.tensor(np.asarray(y, np.float32 if kind == BCE else np.int64))
    return lambda x2, x1: _core.apply(_core.op_ids()["compat_loss"], (x2, yt, x1),
                                      (kind, strict, RED[red], int(dis_only)), (float(lam), float(pivot)))


def make_inputs(kind, B=6, C=4, seed=0):
    """h2 input, target, h1 input with S about half the batch."""
    rng = np.random.default_rng(seed)
    if kind == BCE:
        x2 = rng.uniform(0.05, 0.95, B)
        x1 = rng.uniform(0.05, 0.95, B)
        x1[np.abs(x1 - 0.5) < 0.05] = 0.7
        y = np.where(np.arange(B) % 2 == 0, x1 >= 0.5, x1 < 0.5).astype(np.float64)
        return x2.astype(np.float32), y.astype(np.float32), x1.astype(np.float32)
    z2 = rng.standard_normal((B, C))
    z1 = rng.standard_normal((B, C)) * 2
    am = np.argmax(z1, axis=1)
    y = np.where(np.arange(B) % 2 == 0, am, (am + 1) % C).astype(np.int64)
    if kind in (NLL, KL):
        z2, z1 = _log_softmax(z2), _log_softmax(z1)
    return z2.astype(np.float32), y, z1.astype(np.float32)


ALL_KS = [(k, s) for k in (NLL, CE, BCE, KL) for s in (0, 1)]


# ---- op level ------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind,strict", ALL_KS)
@pytest.mark.parametrize("red", ["mean", "sum", "none"])
@pytest.mark.parametrize("lam", [0.0, 0.3, 2.5])
def test_op_value_and_grad_vs_numpy(kind, strict, red, lam):
    x2, y, x1 = make_inputs(kind)
    _, _, s = ref_terms(kind, strict, x2, y, x1)
    assert 0 < s.sum() < len(s)
    f = op(kind, strict, y, lam, red)
    t2 = bcml.tensor(x2, requires_grad=True)
    out = f(t2, bcml.tensor(x1))
    np.testing.assert_allclose(out.detach().numpy(), ref_loss(kind, strict, x2, y, x1, lam, red), rtol=1e-5, atol=1e-6)
    w = np.random.default_rng(1).standard_normal(out.shape)
    out.backward(bcml.tensor(w.astype(np.float32)))
    num = numeric_grad(lambda a: float(np.sum(w * ref_loss(kind, strict, a, y, x1, lam, red))), [x2], 0, eps=1e-6)
    np.testing.assert_allclose(t2.grad.detach().numpy(), num, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind,strict", ALL_KS)
@pytest.mark.parametrize("red", ["mean", "sum", "none"])
def test_op_grad_finite_differences(kind, strict, red):
    x2, y, x1 = make_inputs(kind, seed=3)
    grad_check(op(kind, strict, y, 0.7, red), [x2, x1], wrt=[0], eps=1e-3)


@pytest.mark.parametrize("kind,strict", ALL_KS)
@pytest.mark.parametrize("red", ["mean", "sum", "none"])
def test_op_dissonance_only(kind, strict, red):
    x2, y, x1 = make_inputs(kind, seed=4)
    out = op(kind, strict, y, 0.7, red, dis_only=True)(bcml.tensor(x2), bcml.tensor(x1))
    np.testing.assert_allclose(out.detach().numpy(), ref_loss(kind, strict, x2, y, x1, 0.7, red, dis_only=True),
                               rtol=1e-5, atol=1e-6)
    grad_check(op(kind, strict, y, 0.7, red, dis_only=True), [x2, x1], wrt=[0], eps=1e-3)


def torch_formula(torch, kind, strict, x2, y, x1, lam, red, pivot=0.5):
    """The same formula in PyTorch (x2 a torch tensor that may require grad)."""
    Fn = torch.nn.functional
    x1 = torch.as_tensor(x1)
    if kind == BCE:
        t = torch.as_tensor(y, dtype=torch.float32)
        base = Fn.binary_cross_entropy(x2, t, reduction="none")
        d = Fn.binary_cross_entropy(x2, x1, reduction="none") if strict else base
        s = ((x1 >= pivot) == (t == 1)).float()
    else:
        yt = torch.as_tensor(y)
        if kind == CE:
            base = Fn.cross_entropy(x2, yt, reduction="none")
            d = -(Fn.softmax(x1, 1) * Fn.log_softmax(x2, 1)).sum(1) if strict else base
        else:
            base = Fn.nll_loss(x2, yt, reduction="none")
            if not strict:
                d = base
            elif kind == NLL:
                d = -(x1.exp() * x2).sum(1)
            else:
                d = Fn.kl_div(x2, x1, reduction="none", log_target=True).sum(1)
        s = (x1.argmax(1) == yt).float()
    v = base + lam * s * d
    return v if red == "none" else (v.sum() if red == "sum" else v.mean())


@pytest.mark.parametrize("kind,strict", ALL_KS)
@pytest.mark.parametrize("red", ["mean", "sum", "none"])
def test_op_vs_torch(torch, kind, strict, red):
    x2, y, x1 = make_inputs(kind, B=9, C=5, seed=7)
    t2 = bcml.tensor(x2, requires_grad=True)
    out = op(kind, strict, y, 1.3, red)(t2, bcml.tensor(x1))
    p2 = torch.tensor(x2, requires_grad=True)
    ref = torch_formula(torch, kind, strict, p2, y, x1, 1.3, red)
    np.testing.assert_allclose(out.detach().numpy(), ref.detach().numpy(), rtol=1e-5, atol=1e-6)
    w = np.random.default_rng(2).standard_normal(out.shape).astype(np.float32)
    out.backward(bcml.tensor(w))
    ref.backward(torch.tensor(w))
    np.testing.assert_allclose(t2.grad.detach().numpy(), p2.grad.detach().numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind,strict", ALL_KS)
def test_op_empty_s_and_empty_batch(kind, strict):
    x2, y, x1 = make_inputs(kind, seed=5)
    if kind == BCE:
        y = (x1 < 0.5).astype(np.float32)  # h1 wrong everywhere
    else:
        y = ((np.argmax(x1, axis=1) + 1) % x1.shape[1]).astype(np.int64)
    base = ref_loss(kind, 0, x2, y, x1, 0.0, "mean")
    out = op(kind, strict, y, 5.0, "mean")(bcml.tensor(x2), bcml.tensor(x1))
    np.testing.assert_allclose(out.item(), base, rtol=1e-5)
    dis = op(kind, strict, y, 5.0, "mean", dis_only=True)(bcml.tensor(x2), bcml.tensor(x1))
    assert dis.item() == 0.0
    shape = (0,) if kind == BCE else (0, 4)
    e2 = np.zeros(shape, np.float32)
    ye = np.zeros(0, np.float32 if kind == BCE else np.int64)
    t2 = bcml.tensor(e2, requires_grad=True)
    m = op(kind, strict, ye, 1.0, "mean")(t2, bcml.tensor(e2))
    assert math.isnan(m.item())
    assert op(kind, strict, ye, 1.0, "sum")(bcml.tensor(e2), bcml.tensor(e2)).item() == 0.0
    assert op(kind, strict, ye, 1.0, "none")(bcml.tensor(e2), bcml.tensor(e2)).shape == (0,)
    m.backward()
    assert t2.grad.shape == shape


@pytest.mark.parametrize("strict", [0, 1])
def test_op_binary_probabilities_zero_one_finite(torch, strict):
    x2 = np.array([0.0, 1.0, 0.0, 1.0, 0.5, 1.0], np.float32)
    x1 = np.array([0.0, 1.0, 1.0, 0.0, 0.7, 0.2], np.float32)
    y = np.array([0, 1, 1, 0, 1, 1], np.float32)
    for red in ("none", "mean", "sum"):
        t2 = bcml.tensor(x2, requires_grad=True)
        out = op(BCE, strict, y, 0.8, red)(t2, bcml.tensor(x1))
        assert np.all(np.isfinite(out.detach().numpy()))
        p2 = torch.tensor(x2, requires_grad=True)
        ref = torch_formula(torch, BCE, strict, p2, y, x1, 0.8, red)
        np.testing.assert_allclose(out.detach().numpy(), ref.detach().numpy(), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(out.detach().numpy(), ref_loss(BCE, strict, x2, y, x1, 0.8, red),
                                   rtol=1e-5, atol=1e-5)
        out.backward(bcml.ones(*out.shape) if out.ndim else None)
        ref.backward(torch.ones_like(ref))
        assert np.all(np.isfinite(t2.grad.detach().numpy()))
        np.testing.assert_allclose(t2.grad.detach().numpy(), p2.grad.detach().numpy(), rtol=1e-5)


def test_op_pivot():
    x2, y, x1 = np.array([0.3, 0.6], np.float32), np.array([1, 1], np.float32), np.array([0.4, 0.4], np.float32)
    d5 = op(BCE, 0, y, 1.0, "none", pivot=0.5, dis_only=True)(bcml.tensor(x2), bcml.tensor(x1)).detach().numpy()
    d3 = op(BCE, 0, y, 1.0, "none", pivot=0.3, dis_only=True)(bcml.tensor(x2), bcml.tensor(x1)).detach().numpy()
    np.testing.assert_array_equal(d5, [0, 0])
    np.testing.assert_allclose(d3, -np.log(x2.astype(np.float64)), rtol=1e-6)


# ---- the classes on models ----------------------------------------------------------------------
def _models(binary, seed=0, hidden=False):
    bcml.manual_seed(seed)
    if hidden:
        h1 = bcml.models.MLPClassifier(5, 1 if binary else 3, hidden_sizes=[7])
        h2 = bcml.models.MLPClassifier(5, 1 if binary else 3, hidden_sizes=[7])
    else:
        h1 = bcml.models.LogisticRegression(5, 1 if binary else 3)
        h2 = bcml.models.LogisticRegression(5, 1 if binary else 3)
    return h1, h2


def _data(binary, B=10, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((B, 5)).astype(np.float32)
    y = rng.integers(0, 2 if binary else 3, B)
    return bcml.tensor(x), y


def _torch_linear_params(torch, model):
    return [torch.tensor(p.detach().numpy(), requires_grad=True) for p in model.parameters()]


@pytest.mark.parametrize("cls", CLASS_LIST)
@pytest.mark.parametrize("red", ["mean", "sum", "none"])
def test_class_vs_torch_with_param_grads(torch, cls, red):
    kind, strict = CLASSES[cls]
    binary = kind == BCE
    h1, h2 = _models(binary, seed=1)
    x, y = _data(binary, seed=2)
    lam = 0.6
    loss = cls(h1, h2, lam)(x, y, reduction=red)
    w = np.random.default_rng(3).standard_normal(loss.shape).astype(np.float32)
    loss.backward(bcml.tensor(w) if loss.ndim else None)
    Fn = torch.nn.functional
    xt = torch.tensor(x.detach().numpy())
    w1 = [torch.tensor(p.detach().numpy()) for p in h1.parameters()]
    w2 = _torch_linear_params(torch, h2)
    z1, z2 = Fn.linear(xt, *w1), Fn.linear(xt, *w2)
    if binary:
        x2, x1 = torch.sigmoid(z2).reshape(-1), torch.sigmoid(z1).reshape(-1)
    elif kind == CE:
        x2, x1 = z2, z1
    else:
        x2, x1 = Fn.log_softmax(z2, 1), Fn.log_softmax(z1, 1)
    ref = torch_formula(torch, kind, strict, x2, y, x1.detach(), lam, red)
    np.testing.assert_allclose(loss.detach().numpy(), ref.detach().numpy(), rtol=1e-5, atol=1e-6)
    ref.backward(torch.tensor(w) if ref.ndim else None)
    for p, q in zip(h2.parameters(), w2):
        np.testing.assert_allclose(p.grad.detach().numpy(), q.grad.detach().numpy(), rtol=1e-4, atol=1e-6)
    for p in h1.parameters():
        assert p.grad is None


@pytest.mark.parametrize("cls", CLASS_LIST)
def test_class_vs_numpy_and_param_finite_differences(cls):
    kind, strict = CLASSES[cls]
    binary = kind == BCE
    h1, h2 = _models(binary, seed=4)
    x, y = _data(binary, seed=5)
    lam = 1.7
    bc = cls(h1, h2, lam)
    loss = bc(x, y)
    with bcml.no_grad():
        o1, o2 = h1(x), h2(x)
    idx = {NLL: 2, KL: 2, CE: 0}
    e1 = o1.detach().numpy().reshape(-1) if binary else o1[idx[kind]].detach().numpy()
    e2 = o2.detach().numpy().reshape(-1) if binary else o2[idx[kind]].detach().numpy()
    np.testing.assert_allclose(loss.item(), ref_loss(kind, strict, e2, y, e1, lam, "mean"), rtol=1e-5)
    np.testing.assert_allclose(bc.dissonance_from_inputs(x, y).item(),
                               ref_loss(kind, strict, e2, y, e1, lam, "mean", dis_only=True), rtol=1e-5, atol=1e-7)
    loss.backward()
    wparam = h2.linear.weight
    w0 = wparam.detach().numpy().astype(np.float64)

    def f(wv):
        with bcml.no_grad():
            h2.linear.weight.copy_(bcml.tensor(wv.astype(np.float32)))
            v = bc(x, y).item()
            h2.linear.weight.copy_(bcml.tensor(w0.astype(np.float32)))
        return v
    num = numeric_grad(f, [w0], 0, eps=1e-2)
    np.testing.assert_allclose(wparam.grad.detach().numpy(), num, rtol=2e-2, atol=2e-3)


@pytest.mark.parametrize("cls", MULTI)
def test_lambda_zero_is_base_loss(torch, cls):
    kind, _ = CLASSES[cls]
    h1, h2 = _models(False, seed=6)
    x, y = _data(False, seed=6)
    got = cls(h1, h2, 0.0)(x, y).item()
    logits = h2(x)[0]
    Fn = bcml.nn.functional
    base = Fn.cross_entropy(logits, bcml.tensor(y)) if kind == CE else Fn.nll_loss(h2(x)[2], bcml.tensor(y))
    np.testing.assert_allclose(got, base.item(), rtol=1e-6)
    ref = torch.nn.functional.cross_entropy(torch.tensor(logits.detach().numpy()), torch.tensor(y))
    np.testing.assert_allclose(got, ref.item(), rtol=1e-5)


@pytest.mark.parametrize("cls", BINARY)
def test_lambda_zero_is_bce(torch, cls):
    h1, h2 = _models(True, seed=7)
    x, y = _data(True, seed=7)
    got = cls(h1, h2, 0.0)(x, y).item()
    p = torch.tensor(h2(x).detach().numpy().reshape(-1))
    ref = torch.nn.functional.binary_cross_entropy(p, torch.tensor(y, dtype=torch.float32))
    np.testing.assert_allclose(got, ref.item(), rtol=1e-5)


@pytest.mark.parametrize("cls", BINARY)
def test_binary_shapes_b_and_b1_and_pivot_keywords(cls):
    h1, h2 = _models(True, seed=8)
    x, y = _data(True, seed=8)
    flat1 = lambda inp: h1(inp).reshape(-1)  # noqa: E731
    flat2 = lambda inp: h2(inp).reshape(-1)  # noqa: E731
    a = cls(h1, h2, 0.5)(x, y, reduction="none").detach().numpy()
    b = cls(flat1, flat2, 0.5)(x, y, reduction="none").detach().numpy()
    assert a.shape == (10,)
    np.testing.assert_array_equal(a, b)
    p1 = h1(x).detach().numpy().reshape(-1)
    pivot = float(np.median(p1))
    e2 = h2(x).detach().numpy().reshape(-1)
    kind, strict = CLASSES[cls]
    for kw in ("discriminant_pivot", "discriminant_pivit"):
        got = cls(h1, h2, 0.5, **{kw: pivot})(x, y, reduction="none").detach().numpy()
        np.testing.assert_allclose(got, ref_loss(kind, strict, e2, y, p1, 0.5, "none", pivot=pivot), rtol=1e-5)
    # integer and float targets agree
    np.testing.assert_array_equal(cls(h1, h2, 0.5)(x, y.astype(np.float32), reduction="none").detach().numpy(), a)


@pytest.mark.parametrize("cls", CLASS_LIST)
def test_cache_form_does_not_run_h1(cls):
    kind, _ = CLASSES[cls]
    binary = kind == BCE
    h1, h2 = _models(binary, seed=9)
    x, y = _data(binary, seed=9)
    want = cls(h1, h2, 0.4)(x, y).item()
    with bcml.no_grad():
        out1 = h1(x)

    def boom(_):
        raise AssertionError("h1 must not run")
    bc = cls(boom, h2, 0.4)
    assert bc(x, y, h1_output=out1).item() == want
    assert bc(x, y, h1_outputs=out1).item() == want
    if not binary:
        elem = out1[0] if kind == CE else out1[2]
        assert bc(x, y, h1_output=elem).item() == want


def test_h1_runs_once_in_user_mode_without_grad():
    h1, h2 = _models(False, seed=10, hidden=True)
    x, y = _data(False, seed=10)
    calls = []

    class Spy:
        def __call__(self, inp):
            calls.append((bcml.is_grad_enabled(), h1.training))
            return h1(inp)
    h1.eval()
    BCCrossEntropyLoss(Spy(), h2, 0.5)(x, y)
    assert calls == [(False, False)]


@pytest.mark.parametrize("cls", [BCKLDivergenceLoss, StrictImitationKLDivergenceLoss])
def test_kl_batchmean_and_num_classes(cls):
    h1, h2 = _models(False, seed=11)
    x, y = _data(False, seed=11)
    bc = cls(h1, h2, 0.5, num_classes=3)
    assert bc(x, y, reduction="batchmean").item() == bc(x, y).item()
    with pytest.raises(ValueError, match="num_classes"):
        cls(h1, h2, 0.5, num_classes=4)(x, y)


@pytest.mark.parametrize("hidden", [False, True])
@pytest.mark.parametrize("cls", [BCCrossEntropyLoss, StrictImitationCrossEntropyLoss, BCNLLLoss])
def test_bcml_documented_usage_trains(cls, hidden):
    h1, h2 = _models(False, seed=12, hidden=hidden)
    x, y = _data(False, B=40, seed=12)
    h1.eval()
    optimizer = bcml.optim.SGD(h2.parameters(), lr=0.5)
    bc_loss = cls(h1, h2, 0.5)
    first = None
    for _ in range(15):
        loss = bc_loss(x, y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        first = loss.item() if first is None else first
    assert bc_loss(x, y).item() < first


# ---- bad inputs -------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", CLASS_LIST)
@pytest.mark.parametrize("lam", [-0.1, float("nan"), float("inf")])
def test_bad_lambda(cls, lam):
    h1, h2 = _models(CLASSES[cls][0] == BCE)
    with pytest.raises(ValueError, match="lambda_c"):
        cls(h1, h2, lam)


def test_bad_lambda_in_op():
    x2, y, x1 = make_inputs(CE)
    with pytest.raises(ValueError, match="lambda_c"):
        op(CE, 0, y, -1.0, "mean")(bcml.tensor(x2), bcml.tensor(x1))


@pytest.mark.parametrize("cls", MULTI)
def test_model_not_returning_triple(cls):
    h1, h2 = _models(False)
    x, y = _data(False)
    with pytest.raises(TypeError, match="h2"):
        cls(h1, lambda inp: h2(inp)[0], 0.5)(x, y)
    with pytest.raises(TypeError, match="h1"):
        cls(lambda inp: h1(inp)[:2], h2, 0.5)(x, y)


@pytest.mark.parametrize("cls", BINARY)
def test_binary_wrong_shape(cls):
    h1, h2 = _models(False)  # 3 outputs, not a probability
    b1, b2 = _models(True)
    x, y = _data(True)
    with pytest.raises(TypeError, match="h2"):
        cls(b1, h2, 0.5)(x, y)
    with pytest.raises(ValueError, match="h2"):
        cls(b1, lambda inp: h2(inp)[1], 0.5)(x, y)
    with pytest.raises(ValueError, match="h1"):
        cls(lambda inp: h1(inp)[1], b2, 0.5)(x, y)


@pytest.mark.parametrize("cls", MULTI)
def test_float_class_targets(cls):
    """Float targets holding integers are the int64 labels (issue 11: BCML compared with ==);
    a non-integral value is refused with its index and value; bool and strings stay TypeError."""
    h1, h2 = _models(False)
    x, y = _data(False)
    want = cls(h1, h2, 0.5)(x, y).item()
    for yf in (y.astype(np.float32), y.astype(np.float64), bcml.tensor(y.astype(np.float32)),
               [float(v) for v in y]):
        assert cls(h1, h2, 0.5)(x, yf).item() == want
        assert cls(h1, h2, 0.5).dissonance_from_inputs(x, yf).item() == \
            cls(h1, h2, 0.5).dissonance_from_inputs(x, y).item()
    for bad in (1.5, math.nan, math.inf, 2.0000001):
        yb = y.astype(np.float64)
        yb[3] = bad
        with pytest.raises(ValueError, match=r"y \(the target\) must hold integer class labels.*%s at index 3"
                           % re.escape(repr(bad))):
            cls(h1, h2, 0.5)(x, yb)
    with pytest.raises(ValueError, match="non-integral value 0.5 at index 0"):
        cls(h1, h2, 0.5)(x, bcml.tensor(np.r_[0.5, y[1:]].astype(np.float32)))
    with pytest.raises(TypeError, match="target"):
        cls(h1, h2, 0.5)(x, y.astype(bool))


@pytest.mark.parametrize("cls", MULTI)
@pytest.mark.parametrize("bad", [3, -1])
def test_class_target_out_of_range(cls, bad):
    h1, h2 = _models(False)
    x, y = _data(False)
    y = y.copy()
    y[2] = bad
    with pytest.raises(ValueError, match="target"):
        cls(h1, h2, 0.5)(x, y)


@pytest.mark.parametrize("cls", BINARY)
@pytest.mark.parametrize("bad", [2, 0.5, -1])
def test_binary_target_not_01(cls, bad):
    b1, b2 = _models(True)
    x, y = _data(True)
    y = y.astype(np.float32)
    y[1] = bad
    with pytest.raises(ValueError, match="target"):
        cls(b1, b2, 0.5)(x, y)


@pytest.mark.parametrize("cls", CLASS_LIST)
def test_wrong_target_length(cls):
    binary = CLASSES[cls][0] == BCE
    h1, h2 = _models(binary)
    x, y = _data(binary)
    with pytest.raises(ValueError, match="target"):
        cls(h1, h2, 0.5)(x, y[:-1])


def test_cached_h1_output_wrong_batch():
    h1, h2 = _models(False)
    x, y = _data(False)
    with bcml.no_grad():
        out1 = h1(bcml.tensor(np.zeros((4, 5), np.float32)))
    with pytest.raises(ValueError, match="h1"):
        BCCrossEntropyLoss(h1, h2, 0.5)(x, y, h1_output=out1)


def test_bad_reduction_and_kwargs():
    h1, h2 = _models(False)
    x, y = _data(False)
    with pytest.raises(ValueError, match="reduction"):
        BCNLLLoss(h1, h2, 0.5)(x, y, reduction="batchmean")
    with pytest.raises(TypeError, match="bogus"):
        BCNLLLoss(h1, h2, 0.5, bogus=1)


@pytest.mark.parametrize("cls", CLASS_LIST)
def test_errors_before_running_models(cls):
    binary = CLASSES[cls][0] == BCE
    x, y = _data(binary)

    def boom(_):
        raise AssertionError("no model may run before the arguments are checked")
    bc = cls(boom, boom, 0.5)
    with pytest.raises(ValueError, match="target"):
        bc(x, y[:-1])
    with pytest.raises(ValueError, match="reduction"):
        bc(x, y, reduction="max")
    bad = y.astype(np.float32) * 0 + (0.5 if binary else -1)
    with pytest.raises((ValueError, TypeError), match="target"):
        bc(x, bad if binary else bad.astype(np.int64))


@pytest.mark.parametrize("cls", CLASS_LIST)
def test_nan_flows_and_cached_h1_gets_no_grad(cls):
    kind, _ = CLASSES[cls]
    binary = kind == BCE
    h1, h2 = _models(binary, seed=13)
    x, y = _data(binary, seed=13)
    out1 = h1(x)  # recorded with grad: the loss must not backpropagate into h1
    loss = cls(h1, h2, 0.5)(x, y, h1_output=out1)
    loss.backward()
    assert all(p.grad is None for p in h1.parameters())
    xn = x.detach().numpy().copy()
    xn[0, 0] = np.nan
    assert math.isnan(cls(h1, h2, 0.5)(bcml.tensor(xn), y).item())


def test_op_validation_messages():
    cid = _core.op_ids()["compat_loss"]
    x2, y, x1 = make_inputs(CE)
    t2, t1 = bcml.tensor(x2), bcml.tensor(x1)

    def call(ins, i=(CE, 0, 1, 0), f=(0.5, 0.5)):
        return _core.apply(cid, ins, i, f)
    with pytest.raises(ValueError, match="target"):
        call((t2, bcml.tensor(np.array([0, 1, 9, 0, 1, 2])), t1))
    with pytest.raises(ValueError, match="target"):
        call((t2, bcml.tensor(np.array([0, 1, -1, 0, 1, 2])), t1))
    with pytest.raises(ValueError, match="target"):
        call((t2, bcml.tensor(y[:-1]), t1))
    with pytest.raises(TypeError, match="target"):
        call((t2, bcml.tensor(y.astype(np.float32)), t1))
    with pytest.raises(ValueError, match="h1 output"):
        call((t2, bcml.tensor(y), bcml.tensor(x1[:-1])))
    with pytest.raises(TypeError, match="h2 output"):
        call((bcml.tensor(x2.astype(np.int64)), bcml.tensor(y), t1))
    with pytest.raises(ValueError, match="lambda_c"):
        call((t2, bcml.tensor(y), t1), f=(float("nan"), 0.5))
    with pytest.raises(ValueError, match="reduction"):
        call((t2, bcml.tensor(y), t1), i=(CE, 0, 5, 0))
    p2, yb, p1 = make_inputs(BCE)
    with pytest.raises(ValueError, match="target"):
        call((bcml.tensor(p2), bcml.tensor(yb * 2), bcml.tensor(p1)), i=(BCE, 0, 1, 0))
    with pytest.raises(TypeError, match="target"):
        call((bcml.tensor(p2), bcml.tensor(yb.astype(np.int64)), bcml.tensor(p1)), i=(BCE, 0, 1, 0))
    with pytest.raises(ValueError, match="h2 output"):
        call((bcml.tensor(p2 + 1), bcml.tensor(yb), bcml.tensor(p1)), i=(BCE, 0, 1, 0))
    with pytest.raises(ValueError, match="h2 output"):
        call((bcml.tensor(p2.reshape(-1, 1)), bcml.tensor(yb), bcml.tensor(p1.reshape(-1, 1))), i=(BCE, 0, 1, 0))


@pytest.mark.parametrize("cls", CLASS_LIST)
def test_class_empty_batch(cls):
    binary = CLASSES[cls][0] == BCE
    h1, h2 = _models(binary, seed=14)
    x = bcml.tensor(np.zeros((0, 5), np.float32))
    y = np.zeros(0, np.int64)
    bc = cls(h1, h2, 0.5)
    loss = bc(x, y)
    assert math.isnan(loss.item())
    loss.backward()
    assert bc(x, y, reduction="sum").item() == 0.0
    assert bc(x, y, reduction="none").shape == (0,)
