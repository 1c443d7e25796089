"""The Tensor surface over the elementwise, reduction and softmax ops: operators, methods and
module-level functions as the original library's code and notebooks call them, against NumPy and
PyTorch, including gradients through chains of ops."""
import numpy as np
import pytest

import bcml
import bcml.nn.functional as F


def randn(shape, seed=0):
    return np.asarray(np.random.default_rng(seed).standard_normal(shape), np.float32)


def both(torch, *arrays, grad=False):
    b = [bcml.tensor(a, requires_grad=grad) for a in arrays]
    t = [torch.tensor(a, requires_grad=grad) for a in arrays]
    return b, t


def assert_same(b, t, rtol=1e-6, atol=1e-7):
    assert b.shape == tuple(t.shape)
    assert b.dtype.name == {"torch.float32": "float32", "torch.int64": "int64", "torch.bool": "bool"}[str(t.dtype)]
    np.testing.assert_allclose(b.detach().numpy(), t.detach().numpy(), rtol=rtol, atol=atol)


OPERATOR_CASES = [
    ("x + y", lambda x, y: x + y),
    ("x - y", lambda x, y: x - y),
    ("x * y", lambda x, y: x * y),
    ("x / y", lambda x, y: x / y),
    ("x + 2", lambda x, y: x + 2),
    ("x * 2", lambda x, y: x * 2),
    ("2.5 * x", lambda x, y: 2.5 * x),
    ("1 - x", lambda x, y: 1 - x),
    ("x - 0.5", lambda x, y: x - 0.5),
    ("2 / y", lambda x, y: 2 / y),
    ("x / 4", lambda x, y: x / 4),
    ("-x", lambda x, y: -x),
    ("x ** 2", lambda x, y: x ** 2),
    ("y.abs() ** 0.5", lambda x, y: y.abs() ** 0.5),
    ("x.exp()", lambda x, y: x.exp()),
    ("y.abs().log()", lambda x, y: y.abs().log()),
    ("x.clamp(min=0)", lambda x, y: x.clamp(min=0.1)),
    ("x.clamp(-0.5, 0.5)", lambda x, y: x.clamp(-0.5, 0.5)),
    ("x.add(y, alpha=2)", lambda x, y: x.add(y, alpha=2)),
    ("x.mul(y).div(y)", lambda x, y: x.mul(y).div(y)),
    ("x.neg().sub(1)", lambda x, y: x.neg().sub(1)),
]


@pytest.mark.parametrize("name,fn", OPERATOR_CASES, ids=[c[0] for c in OPERATOR_CASES])
def test_operators_against_torch(name, fn, torch):
    x = randn((4, 5), 1)
    y = np.asarray(np.random.default_rng(2).uniform(0.5, 2, (5,)) * [1, -1, 1, -1, 1], np.float32)
    (bx, by), (tx, ty) = both(torch, x, y, grad=True)
    ob, ot = fn(bx, by), fn(tx, ty)
    assert_same(ob, ot, rtol=1e-5, atol=1e-6)
    w = randn(ob.shape, 3)
    (ob * bcml.from_numpy(w)).sum().backward()
    (ot * torch.from_numpy(w)).sum().backward()
    for b, t in [(bx, tx), (by, ty)]:
        if t.grad is None:
            assert b.grad is None
        else:
            np.testing.assert_allclose(b.grad.numpy(), t.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_comparisons_and_counting(torch):
    rng = np.random.default_rng(4)
    pred_np, y_np = rng.integers(0, 3, 50), rng.integers(0, 3, 50)
    pred, y = bcml.tensor(pred_np), bcml.tensor(y_np)
    correct = (pred == y).sum().item()
    assert isinstance(correct, int)
    assert correct == int(np.sum(pred_np == y_np)) == (torch.tensor(pred_np) == torch.tensor(y_np)).sum().item()
    x = randn((3, 4), 5)
    (bx,), (tx,) = both(torch, x)
    for op in [lambda a: a == a, lambda a: a > 0, lambda a: a <= 0.25, lambda a: a != 0,
               lambda a: a.eq(a * 1), lambda a: a.gt(0.1), lambda a: a.lt(a + 1), lambda a: a.ge(-0.3)]:
        assert_same(op(bx), op(tx))
    np.testing.assert_array_equal(bcml.eq(bx, bx).numpy(), np.ones((3, 4), bool))
    # float vs integer tensors promote to float, as in PyTorch
    i = np.array([0, 1, 0, 2], np.int64)
    assert_same(bx == bcml.tensor(i), tx == torch.tensor(i))
    assert_same(bx + bcml.tensor(i), tx + torch.tensor(i))
    assert_same(bcml.tensor(i) * 2 - 1, torch.tensor(i) * 2 - 1)


def test_reductions_surface(torch):
    x = randn((4, 6), 6)
    (bx,), (tx,) = both(torch, x)
    assert_same(bx.sum(1), tx.sum(1))
    assert_same(bx.sum(), tx.sum(), rtol=1e-5)
    assert_same(bx.mean(), tx.mean(), rtol=1e-5)
    assert_same(bx.mean(0, keepdim=True), tx.mean(0, keepdim=True), rtol=1e-5)
    assert_same(bx.sum(dim=-1, keepdim=True), tx.sum(dim=-1, keepdim=True), rtol=1e-5)
    assert_same(bcml.sum(bx, 0), torch.sum(tx, 0), rtol=1e-5)
    assert_same(bcml.mean(bx, 1), torch.mean(tx, 1), rtol=1e-5)
    r = bx.max(1)
    t = tx.max(1)
    assert_same(r.values, t.values)
    assert_same(r.indices, t.indices)
    values, indices = bcml.max(bx, 0, keepdim=True)
    assert_same(values, tx.max(0, keepdim=True).values)
    assert_same(indices, tx.max(0, keepdim=True).indices)
    assert_same(bx.argmax(dim=1, keepdim=True), tx.argmax(dim=1, keepdim=True))
    assert_same(bx.argmax(1), tx.argmax(1))
    assert_same(bcml.argmax(bx, 0), torch.argmax(tx, 0))
    assert bx.argmax().item() == tx.argmax().item()
    m = bx.min(1)
    assert_same(m.values, tx.min(1).values)
    assert_same(m.indices, tx.min(1).indices)
    assert_same(bx.argmin(0), tx.argmin(0))
    b = bcml.tensor(x > 0)
    assert_same(b.sum(), (torch.tensor(x) > 0).sum())
    assert_same(b.sum(0), (torch.tensor(x) > 0).sum(0))


def test_softmax_surface(torch):
    x = randn((5, 3), 7)
    (bx,), (tx,) = both(torch, x)
    assert_same(F.softmax(bx, dim=1), torch.softmax(tx, dim=1))
    assert_same(F.log_softmax(bx, dim=1), torch.log_softmax(tx, dim=1), rtol=1e-6, atol=1e-6)
    assert_same(F.softmax(bx, dim=0), torch.softmax(tx, dim=0))
    assert_same(bx.softmax(-1), tx.softmax(-1))
    assert_same(bcml.log_softmax(bx, -1), torch.log_softmax(tx, -1), rtol=1e-6, atol=1e-6)
    probs = F.softmax(bx, dim=1)
    np.testing.assert_allclose(probs.sum(1).numpy(), np.ones(5), rtol=1e-6)
    # predicted labels the way the original library computes them
    assert_same(probs.argmax(1), torch.softmax(tx, 1).argmax(1))
    _, pred = bcml.max(probs, 1)
    assert_same(pred, torch.max(torch.softmax(tx, 1), 1)[1])


def test_gradient_chains_against_torch(torch):
    x, y = randn((3, 4), 8), randn((4,), 9)
    chains = [  # f: the functional module (bcml.nn.functional or torch.nn.functional)
        lambda a, b, f: ((a * b + 1).exp().sum(1) / 3).mean(),
        lambda a, b, f: (f.log_softmax(a * b, dim=1).max(1).values - a.abs().mean(0).sum()).sum(),
        lambda a, b, f: ((a - b) ** 2).mean() + (a / (b.abs() + 1)).sum(0).max(0).values,
        lambda a, b, f: (f.softmax(a, dim=0) * b).sum() * 2 - (1 - a.clamp(-1, 1)).mean(),
    ]
    for k, fn in enumerate(chains):
        (bx, by), (tx, ty) = both(torch, x, y, grad=True)
        ob, ot = fn(bx, by, F), fn(tx, ty, torch.nn.functional)
        assert ob.shape == ()
        np.testing.assert_allclose(ob.item(), ot.item(), rtol=1e-5, err_msg="chain %d" % k)
        ob.backward()
        ot.backward()
        np.testing.assert_allclose(bx.grad.numpy(), tx.grad.numpy(), rtol=1e-5, atol=1e-6, err_msg="chain %d" % k)
        np.testing.assert_allclose(by.grad.numpy(), ty.grad.numpy(), rtol=1e-5, atol=1e-6, err_msg="chain %d" % k)


def test_grad_accumulates_and_no_grad(torch):
    x = bcml.tensor(randn((2, 3), 10), requires_grad=True)
    (x * 2).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 + 2 * x.detach().numpy(), rtol=1e-6)
    with bcml.no_grad():
        y = (x * 3 + 1).exp().sum(0)
    assert not y.requires_grad
    z = x.detach() + 1
    assert not z.requires_grad


def test_inplace_and_numpy_operands():
    a = bcml.tensor([1.0, 2.0, 3.0])
    a += 1
    a *= 2
    a -= bcml.tensor([1.0, 1.0, 1.0])
    a /= 2
    np.testing.assert_allclose(a.numpy(), [1.5, 2.5, 3.5])
    b = bcml.tensor([[1.0, 2.0], [3.0, 4.0]])
    np.testing.assert_allclose((b + np.array([1.0, -1.0])).numpy(), [[2.0, 1.0], [4.0, 3.0]])
    np.testing.assert_allclose((b * np.float32(2)).numpy(), [[2.0, 4.0], [6.0, 8.0]])
    np.testing.assert_allclose((b.clone() - b).numpy(), np.zeros((2, 2)))
    c = bcml.tensor([1, 2, 3])
    c += 1
    assert c.dtype == bcml.int64
    np.testing.assert_array_equal(c.numpy(), [2, 3, 4])


def test_where_and_casts(torch):
    x = randn((3, 4), 11)
    (bx,), (tx,) = both(torch, x)
    assert_same(bcml.where(bx > 0, bx, bx * 0.1), torch.where(tx > 0, tx, tx * 0.1))
    assert_same(bx.long(), tx.long())
    assert_same((bx > 0).float(), (tx > 0).float())
    assert_same((bx > 0).long().sum(1), (tx > 0).long().sum(1))
    assert_same(bx.bool(), tx.bool())
    assert_same(bcml.clamp(bx, max=0.2), torch.clamp(tx, max=0.2))


def test_errors_name_the_argument():
    x = bcml.tensor(randn((2, 3)))
    with pytest.raises(ValueError, match=r"input of shape \(2, 3\) and other of shape \(2,\)"):
        x * bcml.tensor([1.0, 2.0])
    with pytest.raises(IndexError, match="dim"):
        x.sum(2)
    with pytest.raises(IndexError, match="dim"):
        x.max(-3)
    with pytest.raises(TypeError, match="mean"):
        bcml.tensor([1, 2]).mean()
    with pytest.raises(TypeError):
        x ** x
