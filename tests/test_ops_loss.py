"""Losses (csrc/core/loss.c): nll_loss, cross_entropy, binary_cross_entropy, kl_div.

Each against a NumPy float64 reference, central finite differences and PyTorch (values and
gradients, every reduction, weights, ignore_index, empty batches), plus edge cases and bad inputs."""
import numpy as np
import pytest

import bcml
import bcml.nn.functional as F
from conftest import grad_check

REDS = ["none", "mean", "sum"]


def arr(t):
    return t.detach().numpy()


def reduce_np(per, wsum, red):
    with np.errstate(invalid="ignore", divide="ignore"):
        if red == "none":
            return per
        if red == "sum":
            return per.sum()
        return per.sum() / wsum


# ---- NumPy float64 references -------------------------------------------------------------
def np_log_softmax(x):
    x = x.astype(np.float64)
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


def np_nll(logp, t, weight=None, ignore_index=-100, red="mean"):
    logp = logp.astype(np.float64)
    B, C = logp.shape
    w = np.ones(C) if weight is None else weight.astype(np.float64)
    keep = t != ignore_index
    tt = np.where(keep, t, 0)
    wi = np.where(keep, w[tt], 0.0)
    per = -logp[np.arange(B), tt] * wi
    return reduce_np(per, wi.sum(), red)


def np_ce(x, t, weight=None, ignore_index=-100, red="mean"):
    return np_nll(np_log_softmax(x), t, weight, ignore_index, red)


def np_ce_grad(x, t, weight=None, ignore_index=-100, red="mean", g=1.0):
    """d loss / d logits = (softmax - onehot) * w_i * scale_i."""
    B, C = x.shape
    w = np.ones(C) if weight is None else weight.astype(np.float64)
    keep = t != ignore_index
    tt = np.where(keep, t, 0)
    wi = np.where(keep, w[tt], 0.0)
    sm = np.exp(np_log_softmax(x))
    onehot = np.eye(C)[tt]
    scale = {"none": np.asarray(g, dtype=np.float64), "sum": g, "mean": g / wi.sum()}[red]
    return (sm - onehot) * (wi * scale)[:, None]


def np_bce(p, t, weight=None, red="mean"):
    p, t = p.astype(np.float64), t.astype(np.float64)
    with np.errstate(divide="ignore"):
        lp = np.maximum(np.log(p), -100.0)
        l1p = np.maximum(np.log1p(-p), -100.0)
    per = -(t * lp + (1 - t) * l1p)
    if weight is not None:
        per = per * weight.astype(np.float64)
    return reduce_np(per, per.size, red)


def np_kl(x, t, red="mean", log_target=False):
    x, t = x.astype(np.float64), t.astype(np.float64)
    if log_target:
        per = np.exp(t) * (t - x)
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            per = np.where(t == 0, 0.0, t * np.log(np.where(t == 0, 1.0, t))) - t * x
    if red == "batchmean":
        with np.errstate(invalid="ignore", divide="ignore"):
            return per.sum() / (x.shape[0] if x.ndim else 1)
    return reduce_np(per, per.size, red)


def rand_targets(rng, B, C, ignore=None, frac=0.3):
    t = rng.integers(0, C, size=B).astype(np.int64)
    if ignore is not None and B:
        t[rng.random(B) < frac] = ignore
    return t


# ==== nll_loss and cross_entropy ==========================================================
CLASS_OPS = {"nll_loss": (F.nll_loss, np_nll), "cross_entropy": (F.cross_entropy, np_ce)}


def class_input(op, rng, B, C, scale=1.0):
    x = (rng.standard_normal((B, C)) * scale).astype(np.float32)
    if op == "nll_loss":  # log-probabilities (any float works, but keep it realistic)
        x = np_log_softmax(x).astype(np.float32)
    return x


@pytest.mark.parametrize("op", sorted(CLASS_OPS))
@pytest.mark.parametrize("red", REDS)
@pytest.mark.parametrize("B,C", [(0, 3), (1, 1), (1, 4), (7, 3), (16, 10)])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("ignore_index", [-100, 1])
def test_class_losses_match_numpy(op, red, B, C, weighted, ignore_index):
    fn, ref = CLASS_OPS[op]
    rng = np.random.default_rng(B * 100 + C)
    x = class_input(op, rng, B, C)
    t = rand_targets(rng, B, C, ignore=ignore_index)
    w = rng.uniform(0.2, 2.0, size=C).astype(np.float32) if weighted else None
    out = fn(bcml.tensor(x), bcml.tensor(t), weight=None if w is None else bcml.tensor(w),
             ignore_index=ignore_index, reduction=red)
    expect = ref(x, t, w, ignore_index, red)
    assert out.shape == np.shape(expect)
    assert out.dtype == bcml.float32
    np.testing.assert_allclose(out.numpy(), expect, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("red", REDS)
@pytest.mark.parametrize("weighted", [False, True])
def test_cross_entropy_grad_matches_numpy(red, weighted):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((9, 5)).astype(np.float32) * 3
    t = rand_targets(rng, 9, 5, ignore=-100)
    w = rng.uniform(0.2, 2.0, size=5).astype(np.float32) if weighted else None
    xb = bcml.tensor(x, requires_grad=True)
    out = F.cross_entropy(xb, bcml.tensor(t), weight=None if w is None else bcml.tensor(w), reduction=red)
    g = rng.standard_normal(out.shape).astype(np.float32)
    out.backward(bcml.tensor(g))
    expect = np_ce_grad(x, t, w, -100, red, g if red == "none" else float(g))
    np.testing.assert_allclose(xb.grad.numpy(), expect, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("op", sorted(CLASS_OPS))
@pytest.mark.parametrize("red", REDS)
@pytest.mark.parametrize("weighted", [False, True])
def test_class_losses_finite_differences(op, red, weighted):
    fn, _ = CLASS_OPS[op]
    rng = np.random.default_rng(7)
    x = class_input(op, rng, 6, 4)
    t = bcml.tensor(np.array([0, 3, -100, 1, 1, 2]))
    w = rng.uniform(0.5, 2.0, size=4).astype(np.float32)
    if weighted:  # the gradient w.r.t. the weight too (PyTorch does not offer it)
        grad_check(lambda a, b: fn(a, t, weight=b, reduction=red), [x, w], wrt=[0, 1])
    else:
        grad_check(lambda a: fn(a, t, reduction=red), [x], wrt=[0])


@pytest.mark.parametrize("op", sorted(CLASS_OPS))
@pytest.mark.parametrize("red", REDS)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("B,ignore_index,ignore_frac", [(8, -100, 0.3), (8, 2, 0.3), (0, -100, 0.0),
                                                        (5, -100, 1.0), (1, 0, 0.0)])
def test_class_losses_match_torch(torch, op, red, weighted, B, ignore_index, ignore_frac):
    fn, _ = CLASS_OPS[op]
    tfn = getattr(torch.nn.functional, op)
    rng = np.random.default_rng(11 + B)
    C = 4
    x = class_input(op, rng, B, C, scale=2.0)
    t = rand_targets(rng, B, C, ignore=ignore_index, frac=ignore_frac)
    w = rng.uniform(0.2, 2.0, size=C).astype(np.float32) if weighted else None
    xb, xt = bcml.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    ob = fn(xb, bcml.tensor(t), weight=None if w is None else bcml.tensor(w), ignore_index=ignore_index,
            reduction=red)
    ot = tfn(xt, torch.tensor(t), weight=None if w is None else torch.tensor(w), ignore_index=ignore_index,
             reduction=red)
    assert ob.shape == tuple(ot.shape)
    np.testing.assert_allclose(arr(ob), ot.detach().numpy(), rtol=1e-5, atol=1e-6)
    g = rng.standard_normal(tuple(ot.shape)).astype(np.float32)
    ob.backward(bcml.tensor(g))
    ot.backward(torch.tensor(g))
    np.testing.assert_allclose(xb.grad.numpy(), xt.grad.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("op", sorted(CLASS_OPS))
def test_class_losses_empty_batch_and_all_ignored(op):
    fn, _ = CLASS_OPS[op]
    xe = bcml.tensor(np.zeros((0, 3), np.float32), requires_grad=True)
    te = bcml.tensor(np.zeros(0, np.int64))
    assert np.isnan(fn(xe, te).item())  # mean over nothing, as PyTorch
    assert fn(xe, te, reduction="sum").item() == 0.0
    assert fn(xe, te, reduction="none").shape == (0,)
    fn(xe, te, reduction="sum").backward()
    assert xe.grad.shape == (0, 3)
    x = bcml.tensor(np.random.default_rng(0).standard_normal((3, 3)).astype(np.float32), requires_grad=True)
    t = bcml.tensor(np.array([-100, -100, -100]))
    assert np.isnan(fn(x, t).item())
    assert fn(x, t, reduction="sum").item() == 0.0
    np.testing.assert_array_equal(fn(x, t, reduction="none").detach().numpy(), np.zeros(3, np.float32))
    fn(x, t).backward()  # no target counts: no gradient flows
    np.testing.assert_array_equal(x.grad.numpy(), np.zeros((3, 3), np.float32))


@pytest.mark.parametrize("op", sorted(CLASS_OPS))
def test_class_losses_zero_total_weight_is_nan_as_torch(torch, op):
    fn, _ = CLASS_OPS[op]
    x = np.random.default_rng(1).standard_normal((3, 4)).astype(np.float32)
    w = np.array([0.0, 0.0, 1.0, 1.0], np.float32)
    t = np.array([0, 1, 0])
    xb, xt = bcml.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    ob = fn(xb, bcml.tensor(t), weight=bcml.tensor(w))
    ot = getattr(torch.nn.functional, op)(xt, torch.tensor(t), weight=torch.tensor(w))
    assert np.isnan(ob.item()) and np.isnan(ot.item())
    ob.backward()
    ot.backward()
    np.testing.assert_array_equal(np.isnan(xb.grad.numpy()), np.isnan(xt.grad.numpy()))
    ok = ~np.isnan(xt.grad.numpy())
    np.testing.assert_allclose(xb.grad.numpy()[ok], xt.grad.numpy()[ok], atol=1e-7)


@pytest.mark.parametrize("op", sorted(CLASS_OPS))
@pytest.mark.parametrize("red", REDS)
def test_class_losses_one_sample_1d_input(torch, op, red):
    fn, _ = CLASS_OPS[op]
    x = np.log(np.array([0.1, 0.2, 0.3, 0.4], np.float32))
    xb, xt = bcml.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    ob = fn(xb, bcml.tensor(np.array(2)), reduction=red)
    ot = getattr(torch.nn.functional, op)(xt, torch.tensor(2), reduction=red)
    assert ob.shape == () == tuple(ot.shape)
    np.testing.assert_allclose(arr(ob), ot.detach().numpy(), rtol=1e-6)
    ob.backward()
    ot.backward()
    np.testing.assert_allclose(xb.grad.numpy(), xt.grad.numpy(), rtol=1e-6, atol=1e-7)


def test_cross_entropy_large_logits_are_stable(torch):
    x = np.array([[1e4, 0.0, -1e4], [3e4, 3e4, 3e4], [-1e4, -1e4 + 1, -1e4 + 2]], np.float32)
    t = np.array([2, 1, 0])
    xb, xt = bcml.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    per = F.cross_entropy(xb, bcml.tensor(t), reduction="none")
    np.testing.assert_allclose(arr(per), np_ce(x, t, red="none"), rtol=1e-6)
    assert np.all(np.isfinite(arr(per)))
    loss = F.cross_entropy(xb, bcml.tensor(t))
    ref = torch.nn.functional.cross_entropy(xt, torch.tensor(t))
    np.testing.assert_allclose(loss.item(), ref.item(), rtol=1e-6)
    loss.backward()
    ref.backward()
    assert np.all(np.isfinite(xb.grad.numpy()))
    np.testing.assert_allclose(xb.grad.numpy(), xt.grad.numpy(), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(xb.grad.numpy(), np_ce_grad(x, t), rtol=1e-5, atol=1e-7)


def test_cross_entropy_nan_flows_to_its_row_only():
    x = np.array([[0.0, np.nan, 1.0], [1.0, 2.0, 3.0]], np.float32)
    per = F.cross_entropy(bcml.tensor(x), bcml.tensor(np.array([0, 2])), reduction="none").numpy()
    assert np.isnan(per[0])
    np.testing.assert_allclose(per[1], np_ce(x[1:], np.array([2]), red="none")[0], rtol=1e-6)
    assert np.isnan(F.cross_entropy(bcml.tensor(x), bcml.tensor(np.array([0, 2]))).item())


@pytest.mark.parametrize("op", sorted(CLASS_OPS))
def test_class_losses_without_grad_recording(op):
    fn, ref = CLASS_OPS[op]
    rng = np.random.default_rng(5)
    x = class_input(op, rng, 5, 3)
    t = rand_targets(rng, 5, 3)
    with bcml.no_grad():
        out = fn(bcml.tensor(x, requires_grad=True), bcml.tensor(t))
    assert not out.requires_grad
    np.testing.assert_allclose(out.item(), ref(x, t), rtol=1e-5)


@pytest.mark.parametrize("op", sorted(CLASS_OPS))
def test_class_losses_bad_inputs(op):
    fn, _ = CLASS_OPS[op]
    x = bcml.tensor(np.zeros((4, 5), np.float32))
    with pytest.raises(ValueError, match=r"Target 7 is out of bounds"):
        fn(x, bcml.tensor(np.array([0, 7, 1, 2])))
    with pytest.raises(ValueError, match=r"Target 5 is out of bounds"):
        fn(x, bcml.tensor(np.array([0, 5, 1, 2])))
    with pytest.raises(ValueError, match=r"Target -1 is out of bounds"):
        fn(x, bcml.tensor(np.array([0, -1, 1, 2])))
    with pytest.raises(ValueError, match=r"Target -100 is out of bounds"):  # not the ignore_index here
        fn(x, bcml.tensor(np.array([0, -100, 1, 2])), ignore_index=-1)
    with pytest.raises(TypeError, match=r"target must be an int64"):
        fn(x, bcml.tensor(np.array([0.0, 1.0, 1.0, 2.0], np.float32)))
    with pytest.raises(ValueError, match=r"Expected input batch_size \(4\) to match target batch_size \(3\)"):
        fn(x, bcml.tensor(np.array([0, 1, 2])))
    with pytest.raises(ValueError, match=r"target must be 1-D"):
        fn(x, bcml.tensor(np.array([[0], [1], [2], [3]])))
    with pytest.raises(ValueError, match=r"input must have shape \(B, C\) or \(C,\), got \(4, 5, 1\)"):
        fn(bcml.tensor(np.zeros((4, 5, 1), np.float32)), bcml.tensor(np.array([0, 1, 2, 3])))
    with pytest.raises(ValueError, match=r"input must have shape"):
        fn(bcml.tensor(np.float32(1.0)), bcml.tensor(np.array(0)))
    with pytest.raises(ValueError, match=r"target must be 0-d"):
        fn(bcml.tensor(np.zeros(5, np.float32)), bcml.tensor(np.array([1])))
    with pytest.raises(TypeError, match=r"input must be a float32"):
        fn(bcml.tensor(np.zeros((4, 5), np.int64)), bcml.tensor(np.array([0, 1, 2, 3])))
    with pytest.raises(ValueError, match=r"weight must have shape \(C,\) = \(5,\), got \(4,\)"):
        fn(x, bcml.tensor(np.array([0, 1, 2, 3])), weight=bcml.tensor(np.ones(4, np.float32)))
    with pytest.raises(TypeError, match=r"weight must be a float32"):
        fn(x, bcml.tensor(np.array([0, 1, 2, 3])), weight=bcml.tensor(np.ones(5, np.int64)))
    with pytest.raises(ValueError, match=r"reduction"):
        fn(x, bcml.tensor(np.array([0, 1, 2, 3])), reduction="batchmean")
    # the ignore_index may lie outside [0, C); a target equal to it is fine
    assert fn(x, bcml.tensor(np.array([0, -7, 1, 2])), ignore_index=-7, reduction="none").shape == (4,)


# ==== binary_cross_entropy ================================================================
@pytest.mark.parametrize("shape", [(0,), (6,), (3, 4), (2, 3, 4), (2, 1, 3, 2)])
@pytest.mark.parametrize("red", REDS)
@pytest.mark.parametrize("wshape", [None, "same", "last"])
def test_bce_matches_numpy(shape, red, wshape):
    rng = np.random.default_rng(len(shape))
    p = rng.uniform(0.01, 0.99, size=shape).astype(np.float32)
    t = rng.uniform(0, 1, size=shape).astype(np.float32)
    w = None
    if wshape == "same":
        w = rng.uniform(0.1, 2, size=shape).astype(np.float32)
    elif wshape == "last":
        w = rng.uniform(0.1, 2, size=shape[-1:]).astype(np.float32)
    out = F.binary_cross_entropy(bcml.tensor(p), bcml.tensor(t), weight=None if w is None else bcml.tensor(w),
                                 reduction=red)
    expect = np_bce(p, t, None if w is None else np.broadcast_to(w, shape), red)
    assert out.shape == np.shape(expect)
    np.testing.assert_allclose(out.numpy(), expect, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("red", REDS)
@pytest.mark.parametrize("wshape", [None, (3, 4), (4,), (3, 1)])
def test_bce_finite_differences(red, wshape):
    rng = np.random.default_rng(2)
    p = rng.uniform(0.2, 0.8, size=(3, 4)).astype(np.float32)
    t = rng.uniform(0, 1, size=(3, 4)).astype(np.float32)
    if wshape is None:
        grad_check(lambda a, b: F.binary_cross_entropy(a, b, reduction=red), [p, t], wrt=[0, 1], eps=1e-3)
    else:
        w = rng.uniform(0.5, 2, size=wshape).astype(np.float32)
        grad_check(lambda a, b, c: F.binary_cross_entropy(a, b, weight=c, reduction=red), [p, t, w],
                   wrt=[0, 1, 2], eps=1e-3)


@pytest.mark.parametrize("red", REDS)
@pytest.mark.parametrize("shape,wshape", [((0,), None), ((7,), None), ((3, 4), (3, 4)), ((2, 3, 4), (4,))])
def test_bce_matches_torch(torch, red, shape, wshape):
    rng = np.random.default_rng(4)
    p = rng.uniform(0.01, 0.99, size=shape).astype(np.float32)
    t = rng.uniform(0, 1, size=shape).astype(np.float32)
    w = None if wshape is None else rng.uniform(0.1, 2, size=wshape).astype(np.float32)
    pb, pt = bcml.tensor(p, requires_grad=True), torch.tensor(p, requires_grad=True)
    tb, tt = bcml.tensor(t, requires_grad=True), torch.tensor(t, requires_grad=True)
    ob = F.binary_cross_entropy(pb, tb, weight=None if w is None else bcml.tensor(w), reduction=red)
    ot = torch.nn.functional.binary_cross_entropy(pt, tt, weight=None if w is None else torch.tensor(w),
                                                  reduction=red)
    assert ob.shape == tuple(ot.shape)
    np.testing.assert_allclose(arr(ob), ot.detach().numpy(), rtol=1e-5, atol=1e-6)
    g = rng.standard_normal(tuple(ot.shape)).astype(np.float32)
    ob.backward(bcml.tensor(g))
    ot.backward(torch.tensor(g))
    np.testing.assert_allclose(pb.grad.numpy(), pt.grad.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(tb.grad.numpy(), tt.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_bce_probabilities_exactly_0_and_1(torch):
    p = np.array([0.0, 1.0, 0.0, 1.0, 0.5], np.float32)
    t = np.array([0.0, 1.0, 1.0, 0.0, 0.3], np.float32)
    pb, pt = bcml.tensor(p, requires_grad=True), torch.tensor(p, requires_grad=True)
    per = F.binary_cross_entropy(pb, bcml.tensor(t), reduction="none")
    # log(0) clamps to -100: a confident wrong answer costs 100, a confident right one 0
    np.testing.assert_allclose(arr(per), [0.0, 0.0, 100.0, 100.0, np_bce(p[4:], t[4:], red="sum")], rtol=1e-6)
    ref = torch.nn.functional.binary_cross_entropy(pt, torch.tensor(t), reduction="none")
    np.testing.assert_allclose(arr(per), ref.detach().numpy(), rtol=1e-6)
    loss = F.binary_cross_entropy(pb, bcml.tensor(t))
    assert np.isfinite(loss.item())
    loss.backward()
    torch.nn.functional.binary_cross_entropy(pt, torch.tensor(t)).backward()
    g = pb.grad.numpy()
    assert np.all(np.isfinite(g))  # (p - t) / max(p (1 - p), 1e-12)
    np.testing.assert_allclose(g, pt.grad.numpy(), rtol=1e-5)
    np.testing.assert_allclose(g[2:4], [-1e12 / 5, 1e12 / 5], rtol=1e-5)


def test_bce_empty_and_nan():
    e = bcml.tensor(np.zeros((0, 3), np.float32))
    assert np.isnan(F.binary_cross_entropy(e, e).item())
    assert F.binary_cross_entropy(e, e, reduction="sum").item() == 0.0
    assert F.binary_cross_entropy(e, e, reduction="none").shape == (0, 3)
    # NaN flows through (PyTorch raises on it instead)
    p = bcml.tensor(np.array([0.5, np.nan], np.float32))
    per = F.binary_cross_entropy(p, bcml.tensor(np.array([1.0, 1.0], np.float32)), reduction="none").numpy()
    np.testing.assert_allclose(per[0], np.log(2), rtol=1e-6)
    assert np.isnan(per[1])


def test_bce_bad_inputs():
    p = bcml.tensor(np.full((4, 1), 0.5, np.float32))
    with pytest.raises(ValueError, match=r"target size \(4,\) that is different to the input size \(4, 1\)"):
        F.binary_cross_entropy(p, bcml.tensor(np.full(4, 0.5, np.float32)))
    with pytest.raises(ValueError, match=r"all elements of input should be between 0 and 1"):
        F.binary_cross_entropy(bcml.tensor(np.array([0.5, 1.5], np.float32)), bcml.tensor(np.zeros(2, np.float32)))
    with pytest.raises(ValueError, match=r"all elements of input should be between 0 and 1"):
        F.binary_cross_entropy(bcml.tensor(np.array([-1e-7], np.float32)), bcml.tensor(np.zeros(1, np.float32)))
    with pytest.raises(ValueError, match=r"all elements of target should be between 0 and 1"):
        F.binary_cross_entropy(bcml.tensor(np.array([0.5], np.float32)), bcml.tensor(np.array([2.0], np.float32)))
    with pytest.raises(ValueError, match=r"weight of shape \(3,\) cannot be broadcast to the input size \(4, 1\)"):
        F.binary_cross_entropy(p, p, weight=bcml.tensor(np.ones(3, np.float32)))
    with pytest.raises(ValueError, match=r"weight of shape \(2, 4, 1\) cannot be broadcast"):
        F.binary_cross_entropy(p, p, weight=bcml.tensor(np.ones((2, 4, 1), np.float32)))
    with pytest.raises(TypeError, match=r"input must be a float32"):
        F.binary_cross_entropy(bcml.tensor(np.zeros(2, np.int64)), bcml.tensor(np.zeros(2, np.float32)))
    with pytest.raises(TypeError, match=r"weight must be a float32"):
        F.binary_cross_entropy(p, p, weight=bcml.tensor(np.ones(1, np.int64)))
    with pytest.raises(ValueError, match=r"reduction"):
        F.binary_cross_entropy(p, p, reduction="avg")


# ==== kl_div ==============================================================================
KL_REDS = ["none", "mean", "sum", "batchmean"]


def kl_inputs(rng, shape, log_target, zeros=False):
    x = np_log_softmax(rng.standard_normal(shape)).astype(np.float32) if shape else np.float32(-0.5)
    t = np.exp(np_log_softmax(rng.standard_normal(shape))) if shape else np.float64(0.3)
    if zeros and shape:
        t = np.where(rng.random(shape) < 0.3, 0.0, t)
    t = np.log(t) if log_target else t
    return x, np.asarray(t, np.float32)


@pytest.mark.parametrize("shape", [(), (0, 3), (5,), (4, 3), (2, 3, 4)])
@pytest.mark.parametrize("red", KL_REDS)
@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div_matches_numpy(shape, red, log_target):
    rng = np.random.default_rng(len(shape))
    x, t = kl_inputs(rng, shape, log_target, zeros=not log_target)
    out = F.kl_div(bcml.tensor(x), bcml.tensor(t), reduction=red, log_target=log_target)
    expect = np_kl(x, t, red, log_target)
    assert out.shape == np.shape(expect)
    np.testing.assert_allclose(out.numpy(), expect, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("red", KL_REDS)
@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div_finite_differences(red, log_target):
    rng = np.random.default_rng(8)
    x, t = kl_inputs(rng, (3, 4), log_target)
    grad_check(lambda a, b: F.kl_div(a, b, reduction=red, log_target=log_target), [x, t], wrt=[0, 1], eps=1e-3)


@pytest.mark.filterwarnings("ignore:reduction. 'mean' divides the total loss")
@pytest.mark.parametrize("red", KL_REDS)
@pytest.mark.parametrize("log_target", [False, True])
@pytest.mark.parametrize("shape", [(4, 3), (0, 3), (2, 3, 2)])
def test_kl_div_matches_torch(torch, red, log_target, shape):
    rng = np.random.default_rng(9)
    x, t = kl_inputs(rng, shape, log_target)
    xb, xt = bcml.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    tb, tt = bcml.tensor(t, requires_grad=True), torch.tensor(t, requires_grad=True)
    ob = F.kl_div(xb, tb, reduction=red, log_target=log_target)
    ot = torch.nn.functional.kl_div(xt, tt, reduction=red, log_target=log_target)
    assert ob.shape == tuple(ot.shape)
    np.testing.assert_allclose(arr(ob), ot.detach().numpy(), rtol=1e-5, atol=1e-6)
    g = rng.standard_normal(tuple(ot.shape)).astype(np.float32)
    ob.backward(bcml.tensor(g))
    ot.backward(torch.tensor(g))
    np.testing.assert_allclose(xb.grad.numpy(), xt.grad.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(tb.grad.numpy(), tt.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_kl_div_zero_target_convention(torch):
    """0 log 0 = 0: a zero target contributes nothing. Its gradient w.r.t. the target is taken as
    0 there (PyTorch's xlogy backward gives nan); elsewhere both agree."""
    x = np.log(np.array([[0.2, 0.3, 0.5], [0.1, 0.1, 0.8]], np.float32))
    t = np.array([[0.0, 0.5, 0.5], [0.25, 0.75, 0.0]], np.float32)
    xb, xt = bcml.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    tb, tt = bcml.tensor(t, requires_grad=True), torch.tensor(t, requires_grad=True)
    ob = F.kl_div(xb, tb, reduction="sum")
    ot = torch.nn.functional.kl_div(xt, tt, reduction="sum")
    np.testing.assert_allclose(ob.item(), ot.item(), rtol=1e-6)
    np.testing.assert_allclose(ob.item(), np_kl(x, t, "sum"), rtol=1e-6)
    ob.backward()
    ot.backward()
    np.testing.assert_allclose(xb.grad.numpy(), xt.grad.numpy(), rtol=1e-6)
    gt = tb.grad.numpy()
    assert np.all(gt[t == 0] == 0.0)
    pos = t > 0
    np.testing.assert_allclose(gt[pos], np.log(t[pos]) + 1 - x[pos], rtol=1e-5)
    np.testing.assert_allclose(gt[pos], tt.grad.numpy()[pos], rtol=1e-5)


def test_kl_div_empty_reductions():
    e = bcml.tensor(np.zeros((0, 3), np.float32))
    assert np.isnan(F.kl_div(e, e, reduction="mean").item())
    assert np.isnan(F.kl_div(e, e, reduction="batchmean").item())
    assert F.kl_div(e, e, reduction="sum").item() == 0.0
    assert F.kl_div(e, e, reduction="none").shape == (0, 3)


def test_kl_div_bad_inputs():
    x = bcml.tensor(np.zeros((4, 1), np.float32))
    with pytest.raises(ValueError, match=r"kl_div: Using a target size \(4,\) that is different to the input size \(4, 1\)"):
        F.kl_div(x, bcml.tensor(np.zeros(4, np.float32)))
    with pytest.raises(TypeError, match=r"target must be a float32"):
        F.kl_div(x, bcml.tensor(np.zeros((4, 1), np.int64)))
    with pytest.raises(TypeError, match=r"input must be a float32"):
        F.kl_div(bcml.tensor(np.zeros((4, 1), np.int64)), x)
    with pytest.raises(ValueError, match=r"reduction"):
        F.kl_div(x, x, reduction="batch")


def test_loss_modules_use_the_ops(torch):
    rng = np.random.default_rng(12)
    x = rng.standard_normal((5, 3)).astype(np.float32)
    t = rng.integers(0, 3, 5)
    np.testing.assert_allclose(bcml.nn.CrossEntropyLoss()(bcml.tensor(x), bcml.tensor(t)).item(),
                               torch.nn.CrossEntropyLoss()(torch.tensor(x), torch.tensor(t)).item(), rtol=1e-6)
    lp = np_log_softmax(x).astype(np.float32)
    np.testing.assert_allclose(bcml.nn.NLLLoss(reduction="sum")(bcml.tensor(lp), bcml.tensor(t)).item(),
                               torch.nn.NLLLoss(reduction="sum")(torch.tensor(lp), torch.tensor(t)).item(), rtol=1e-6)
    p = rng.uniform(0.1, 0.9, (5, 2)).astype(np.float32)
    q = rng.uniform(0, 1, (5, 2)).astype(np.float32)
    np.testing.assert_allclose(bcml.nn.BCELoss()(bcml.tensor(p), bcml.tensor(q)).item(),
                               torch.nn.BCELoss()(torch.tensor(p), torch.tensor(q)).item(), rtol=1e-6)
    q = np.exp(np_log_softmax(x)).astype(np.float32)
    np.testing.assert_allclose(bcml.nn.KLDivLoss(reduction="batchmean")(bcml.tensor(lp), bcml.tensor(q)).item(),
                               torch.nn.KLDivLoss(reduction="batchmean")(torch.tensor(lp), torch.tensor(q)).item(),
                               rtol=1e-5, atol=1e-7)
