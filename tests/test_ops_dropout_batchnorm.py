"""dropout and batch_norm: values against NumPy float64 references, gradients against finite
differences, PyTorch's functional API and modules (running statistics over several training
steps, train/eval), seeding, and bad inputs."""
import numpy as np
import pytest

import bcml
import bcml.nn as nn
import bcml.nn.functional as F
from bcml import _core
from bcml._tensor import OPS
from conftest import grad_check as _grad_check

RNG = np.random.default_rng(99)


def rand(*shape, scale=1.0, loc=0.0):
    return np.asarray(loc + scale * RNG.standard_normal(shape), dtype=np.float32)


def grad_check(fn, arrays, wrt=None, eps=1e-2, rtol=1e-2, atol=2e-3, seed=0):
    _grad_check(fn, arrays, wrt, eps, rtol, atol, seed)


def uniforms(seed, n):
    """The first n uniforms [0, 1) (24 bits) of a fresh generator, from its raw 64-bit draws."""
    g = bcml.Generator(seed)
    return np.array([(g._next_u64() >> 40) * 2.0 ** -24 for _ in range(n)])


# ---- dropout -------------------------------------------------------------------------------------
@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
@pytest.mark.parametrize("shape", [(1000,), (20, 30), (4, 5, 6, 2)])
def test_dropout_values_follow_the_generator(p, shape):
    x = rand(*shape)
    seed = 1234
    out = F.dropout(bcml.tensor(x), p, training=True, generator=bcml.Generator(seed))
    keep = uniforms(seed, x.size).reshape(shape) >= p
    ref = np.where(keep, x.astype(np.float64) / (1 - p), 0.0)
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-6, atol=0)


def test_dropout_same_seed_same_mask():
    x = bcml.ones(50, 40)
    bcml.manual_seed(7)
    a = F.dropout(x, 0.5).numpy()
    b = F.dropout(x, 0.5).numpy()           # the generator moved on: a new mask
    bcml.manual_seed(7)
    c = F.dropout(x, 0.5).numpy()
    bcml.manual_seed(8)
    d = F.dropout(x, 0.5).numpy()
    np.testing.assert_array_equal(a, c)
    assert not np.array_equal(a, b) and not np.array_equal(a, d)
    g1, g2 = bcml.Generator(3), bcml.Generator(3)
    np.testing.assert_array_equal(F.dropout(x, 0.3, generator=g1).numpy(), F.dropout(x, 0.3, generator=g2).numpy())


@pytest.mark.parametrize("p", [0.2, 0.5, 0.75])
def test_dropout_statistics_and_scale(torch, p):
    n = 200_000
    out = F.dropout(bcml.ones(n), p, generator=bcml.Generator(11)).numpy()
    kept = out != 0
    sigma = np.sqrt(p * (1 - p) / n)
    assert abs(kept.mean() - (1 - p)) < 5 * sigma
    np.testing.assert_array_equal(out[kept], np.float32(1 / (1 - p)))
    # PyTorch draws different bits but keeps the same fraction with the same scale
    torch.manual_seed(0)
    tout = torch.nn.functional.dropout(torch.ones(n), p).numpy()
    tkept = tout != 0
    assert abs(tkept.mean() - kept.mean()) < 10 * sigma
    np.testing.assert_allclose(np.unique(out[kept]), np.unique(tout[tkept]), rtol=1e-6)


def test_dropout_backward_uses_the_mask(torch):
    x = rand(30, 20)
    p = 0.4
    xb = bcml.tensor(x, requires_grad=True)
    out = F.dropout(xb, p, generator=bcml.Generator(5))
    g = rand(30, 20)
    out.backward(bcml.from_numpy(g))
    keep = uniforms(5, x.size).reshape(x.shape) >= p
    np.testing.assert_allclose(xb.grad.numpy(), np.where(keep, g / np.float32(1 - p), 0), rtol=1e-6)
    # PyTorch, given the same mask through its output, gives the same gradient
    xt = torch.tensor(x, requires_grad=True)
    mask = torch.from_numpy(keep.astype(np.float32))
    (xt * mask / (1 - p)).backward(torch.from_numpy(g))
    np.testing.assert_allclose(xb.grad.numpy(), xt.grad.numpy(), rtol=1e-6)
    np.testing.assert_allclose(out.detach().numpy(), (xt * mask / (1 - p)).detach().numpy(), rtol=1e-6)


def test_dropout_grad_finite_differences():
    grad_check(lambda x: F.dropout(x, 0.3, generator=bcml.Generator(21)), [rand(6, 5)])


def test_dropout_edge_cases(torch):
    x = bcml.tensor(np.array([1.0, -2.0, np.nan, np.inf], np.float32), requires_grad=True)
    out = F.dropout(x, 1.0)                                   # everything dropped: x * 0
    tout = torch.nn.functional.dropout(torch.tensor(x.detach().numpy()), 1.0)
    np.testing.assert_array_equal(out.detach().numpy(), tout.numpy())
    out.backward(bcml.ones(4))
    np.testing.assert_array_equal(x.grad.numpy(), np.zeros(4, np.float32))
    assert F.dropout(x, 0.5, training=False) is x
    assert F.dropout(x, 0.0) is x
    assert F.dropout(bcml.zeros(0, 3), 0.5).shape == (0, 3)
    y = F.dropout(bcml.tensor([np.nan] * 64), 0.5).numpy()    # NaN stays NaN, kept or not
    assert np.all(np.isnan(y))


def test_dropout_module_train_eval():
    m = nn.Dropout(0.5)
    x = bcml.ones(100, 10)
    assert m.training
    bcml.manual_seed(0)
    out = m(x).numpy()
    assert set(np.unique(out)) == {0.0, 2.0}
    m.eval()
    assert m(x) is x
    m.train()
    assert (m(x).numpy() == 0).any()
    assert "p=0.5" in repr(m)


def test_dropout_bad():
    x = bcml.ones(3)
    with pytest.raises(ValueError, match="probability"):
        F.dropout(x, 1.5)
    with pytest.raises(ValueError, match="probability"):
        nn.Dropout(-0.1)
    with pytest.raises(ValueError, match="p"):
        _core.apply(OPS["dropout"], (x,), (1,), (2.0,), bcml.Generator(0))
    with pytest.raises(TypeError, match="input"):
        F.dropout(bcml.tensor([1, 2, 3]), 0.5)
    with pytest.raises(RuntimeError, match="generator"):
        _core.apply(OPS["dropout"], (x,), (1,), (0.5,))
    with pytest.raises(TypeError, match="generator"):
        F.dropout(x, 0.5, generator=3)


# ---- batch_norm ----------------------------------------------------------------------------------
def bn_ref(x, rm, rv, w, b, training, momentum, eps):
    """NumPy float64 batch norm; returns (y, new running_mean, new running_var)."""
    x = x.astype(np.float64)
    C = x.shape[1]
    axes = (0,) + tuple(range(2, x.ndim))
    bshape = (1, C) + (1,) * (x.ndim - 2)
    if training:
        mean, var = x.mean(axes), x.var(axes)
        M = x.size // C
        if rm is not None:
            rm = (1 - momentum) * rm + momentum * mean
            rv = (1 - momentum) * rv + momentum * var * M / (M - 1)
    else:
        mean, var = rm.astype(np.float64), rv.astype(np.float64)
    y = (x - mean.reshape(bshape)) / np.sqrt(var.reshape(bshape) + eps)
    if w is not None:
        y = y * w.reshape(bshape)
    if b is not None:
        y = y + b.reshape(bshape)
    return y, rm, rv


SHAPES = [(8, 3), (5, 4, 6), (4, 3, 5, 5), (2, 1), (3, 2, 1, 1), (64, 16)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_values(shape, affine, training):
    C = shape[1]
    x = rand(*shape, scale=2.0, loc=1.5)
    w, b = (rand(C), rand(C)) if affine else (None, None)
    rm, rv = rand(C), np.abs(rand(C)) + 0.5
    rm_t, rv_t = bcml.tensor(rm), bcml.tensor(rv)
    out = F.batch_norm(bcml.tensor(x), rm_t, rv_t, None if w is None else bcml.tensor(w),
                       None if b is None else bcml.tensor(b), training, 0.2, 1e-3)
    y, rm2, rv2 = bn_ref(x, rm, rv, w, b, training, 0.2, 1e-3)
    np.testing.assert_allclose(out.numpy(), y, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(rm_t.numpy(), rm2, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(rv_t.numpy(), rv2, rtol=1e-6, atol=1e-7)


def test_batch_norm_without_running_stats():
    x = rand(6, 3, 4)
    y, _, _ = bn_ref(x, None, None, None, None, True, 0.1, 1e-5)
    np.testing.assert_allclose(F.batch_norm(bcml.tensor(x), None, None, training=True).numpy(), y,
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape", [(6, 3), (3, 2, 4), (2, 2, 2, 3)])
@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_grad_finite_differences(shape, training):
    C = shape[1]
    x = rand(*shape)
    rm, rv = rand(C), np.abs(rand(C)) + 0.5

    def fn(x, w, b):
        return F.batch_norm(x, bcml.tensor(rm), bcml.tensor(rv), w, b, training, 0.1, 1e-5)

    grad_check(fn, [x, rand(C), rand(C)])
    grad_check(lambda x: F.batch_norm(x, None if training else bcml.tensor(rm),
                                      None if training else bcml.tensor(rv), training=training), [x])


@pytest.mark.parametrize("shape", SHAPES + [(0, 3), (0, 2, 5)])
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_torch(torch, shape, affine, training):
    C = shape[1]
    x = rand(*shape, scale=3.0, loc=-1.0)
    w, b = rand(C), rand(C)
    rm, rv = rand(C), np.abs(rand(C)) + 0.5
    xb, xt = bcml.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    wb, wt = bcml.tensor(w, requires_grad=True), torch.tensor(w, requires_grad=True)
    bb, bt = bcml.tensor(b, requires_grad=True), torch.tensor(b, requires_grad=True)
    rmb, rvb, rmt, rvt = bcml.tensor(rm), bcml.tensor(rv), torch.tensor(rm), torch.tensor(rv)
    ob = F.batch_norm(xb, rmb, rvb, wb if affine else None, bb if affine else None, training, 0.3, 1e-4)
    ot = torch.nn.functional.batch_norm(xt, rmt, rvt, wt if affine else None, bt if affine else None,
                                        training, 0.3, 1e-4)
    np.testing.assert_allclose(ob.detach().numpy(), ot.detach().numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(rmb.numpy(), rmt.numpy(), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(rvb.numpy(), rvt.numpy(), rtol=1e-6, atol=1e-7)
    g = rand(*shape)
    ob.backward(bcml.from_numpy(g))
    ot.backward(torch.from_numpy(g))
    np.testing.assert_allclose(xb.grad.numpy(), xt.grad.numpy(), rtol=1e-4, atol=1e-5)
    if affine:
        np.testing.assert_allclose(wb.grad.numpy(), wt.grad.numpy(), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(bb.grad.numpy(), bt.grad.numpy(), rtol=1e-4, atol=1e-5)
    else:
        assert wb.grad is None and bb.grad is None


def test_batch_norm_nan_stays_in_its_channel(torch):
    x = rand(5, 3)
    x[2, 1] = np.nan
    out = F.batch_norm(bcml.tensor(x), None, None, training=True).numpy()
    ref = torch.nn.functional.batch_norm(torch.tensor(x), None, None, training=True).numpy()
    assert np.all(np.isnan(out[:, 1])) and not np.isnan(out[:, [0, 2]]).any()
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)


def _copy_affine(torch, bm, tm):
    w, b = rand(tm.num_features), rand(tm.num_features)
    with torch.no_grad():
        tm.weight.copy_(torch.from_numpy(w))
        tm.bias.copy_(torch.from_numpy(b))
    with bcml.no_grad():
        bm.weight.copy_(bcml.tensor(w))
        bm.bias.copy_(bcml.tensor(b))


@pytest.mark.parametrize("cls,shape", [("BatchNorm1d", (16, 4)), ("BatchNorm1d", (8, 4, 7)),
                                       ("BatchNorm2d", (6, 4, 3, 5))])
@pytest.mark.parametrize("affine,track", [(True, True), (False, True), (True, False)])
def test_batch_norm_module_against_torch(torch, cls, shape, affine, track):
    tm = getattr(torch.nn, cls)(4, momentum=0.2, affine=affine, track_running_stats=track)
    bm = getattr(nn, cls)(4, momentum=0.2, affine=affine, track_running_stats=track)
    if affine:
        _copy_affine(torch, bm, tm)
    for step in range(5):   # several training steps: the running statistics evolve the same way
        x = rand(*shape, scale=1.0 + step, loc=step - 2.0)
        xb, xt = bcml.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        ob, ot = bm(xb), tm(xt)
        np.testing.assert_allclose(ob.detach().numpy(), ot.detach().numpy(), rtol=1e-5, atol=1e-5)
        g = rand(*shape)
        ob.backward(bcml.from_numpy(g))
        ot.backward(torch.from_numpy(g))
        np.testing.assert_allclose(xb.grad.numpy(), xt.grad.numpy(), rtol=1e-4, atol=1e-5)
        if affine:
            np.testing.assert_allclose(bm.weight.grad.numpy(), tm.weight.grad.numpy(), rtol=1e-4, atol=1e-5)
            np.testing.assert_allclose(bm.bias.grad.numpy(), tm.bias.grad.numpy(), rtol=1e-4, atol=1e-5)
            bm.zero_grad()
            tm.zero_grad()
        if track:
            np.testing.assert_allclose(bm.running_mean.numpy(), tm.running_mean.numpy(), rtol=1e-6, atol=1e-7)
            np.testing.assert_allclose(bm.running_var.numpy(), tm.running_var.numpy(), rtol=1e-6, atol=1e-7)
            assert bm.num_batches_tracked.item() == tm.num_batches_tracked.item() == step + 1
    bm.eval()
    tm.eval()
    x = rand(*shape, loc=0.5)
    xb, xt = bcml.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    ob, ot = bm(xb), tm(xt)
    np.testing.assert_allclose(ob.detach().numpy(), ot.detach().numpy(), rtol=1e-5, atol=1e-5)
    g = rand(*shape)
    ob.backward(bcml.from_numpy(g))
    ot.backward(torch.from_numpy(g))
    np.testing.assert_allclose(xb.grad.numpy(), xt.grad.numpy(), rtol=1e-4, atol=1e-5)
    if track:   # eval does not touch the running statistics
        np.testing.assert_allclose(bm.running_mean.numpy(), tm.running_mean.numpy(), rtol=1e-6, atol=1e-7)


def test_batch_norm_eval_uses_running_stats_after_training():
    bm = nn.BatchNorm1d(3)
    x = rand(10, 3, loc=4.0)
    bm(bcml.tensor(x))
    rm, rv = bm.running_mean.numpy().copy(), bm.running_var.numpy().copy()
    np.testing.assert_allclose(rm, 0.1 * x.mean(0), rtol=1e-5)
    np.testing.assert_allclose(rv, 0.9 + 0.1 * x.var(0, ddof=1), rtol=1e-5)
    bm.eval()
    out = bm(bcml.tensor(x)).detach().numpy()
    np.testing.assert_allclose(out, (x - rm) / np.sqrt(rv + 1e-5), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(bm.running_mean.numpy(), rm)


def test_batch_norm_empty_batch_keeps_running_stats(torch):
    rm, rv = bcml.zeros(3), bcml.ones(3)
    out = F.batch_norm(bcml.zeros(0, 3, 4), rm, rv, training=True)
    assert out.shape == (0, 3, 4)
    np.testing.assert_array_equal(rm.numpy(), np.zeros(3))
    np.testing.assert_array_equal(rv.numpy(), np.ones(3))


def test_batch_norm_bad():
    x = bcml.tensor(rand(4, 3))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        F.batch_norm(bcml.zeros(1, 3), bcml.zeros(3), bcml.ones(3), training=True)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        F.batch_norm(bcml.zeros(1, 3, 1), None, None, training=True)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        nn.BatchNorm1d(3)(bcml.zeros(1, 3))
    F.batch_norm(bcml.zeros(1, 3), bcml.zeros(3), bcml.ones(3), training=False)   # fine in eval
    with pytest.raises(ValueError, match="weight"):
        F.batch_norm(x, None, None, bcml.ones(4), training=True)
    with pytest.raises(ValueError, match="bias"):
        F.batch_norm(x, None, None, None, bcml.ones(3, 1), training=True)
    with pytest.raises(ValueError, match="running_var"):
        F.batch_norm(x, bcml.zeros(3), bcml.ones(2), training=True)
    with pytest.raises(TypeError, match="running_mean"):
        F.batch_norm(x, bcml.zeros(3, dtype=bcml.int64), bcml.ones(3), training=True)
    with pytest.raises(TypeError, match="input"):
        F.batch_norm(bcml.zeros(4, 3, dtype=bcml.int64), None, None, training=True)
    with pytest.raises(ValueError, match="input"):
        F.batch_norm(bcml.zeros(4), None, None, training=True)
    with pytest.raises(ValueError, match="running_mean"):
        F.batch_norm(x, None, None, training=False)
    with pytest.raises(ValueError, match="running_mean"):
        _core.apply(OPS["batch_norm"], (x, None, None, bcml.zeros(3), None), (1,), (0.1, 1e-5))
    with pytest.raises(ValueError, match="running_mean"):
        _core.apply(OPS["batch_norm"], (x, None, None, None, None), (0,), (0.1, 1e-5))
    with pytest.raises(ValueError, match="expected 2D or 3D"):
        nn.BatchNorm1d(3)(bcml.zeros(2, 3, 2, 2))
    with pytest.raises(ValueError, match="channels"):
        nn.BatchNorm1d(3)(bcml.zeros(2, 4))


@pytest.mark.parametrize("training", [True, False])
def test_backward_accumulates(training):
    """Backward adds into existing gradients: two backward passes give twice one pass."""
    x = bcml.tensor(rand(5, 3, 2), requires_grad=True)
    w = bcml.tensor(rand(3), requires_grad=True)
    b = bcml.tensor(rand(3), requires_grad=True)
    g = bcml.from_numpy(rand(5, 3, 2))

    def fns():
        yield F.batch_norm(x, bcml.zeros(3), bcml.ones(3), w, b, training)
        yield F.dropout(x, 0.5, training=training, generator=bcml.Generator(1))

    for k in range(2):
        for t in (x, w, b):
            t.grad = None
        list(fns())[k].backward(g)
        once = [None if t.grad is None else t.grad.numpy().copy() for t in (x, w, b)]
        list(fns())[k].backward(g)
        for t, o in zip((x, w, b), once):
            if o is not None:
                np.testing.assert_allclose(t.grad.numpy(), 2 * o, rtol=1e-5)
