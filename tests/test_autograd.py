"""The autograd engine: accumulation, shared subgraphs, grad modes, leaf rules, and that
backward() and optimizer.step() run entirely in C (no Python call per node or parameter)."""
import sys
import threading

import numpy as np
import pytest

import bcml
import bcml.nn.functional as F
from bcml.models import MLPClassifier


def test_grad_accumulates_across_backward_calls():
    x = bcml.tensor([1.0, 2.0, 3.0], requires_grad=True)
    (x * 2).sum().backward()
    (x * 3).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [5.0, 5.0, 5.0])
    x.grad = None
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 4.0, 6.0])


def test_shared_subexpression_and_diamond():
    x = bcml.tensor([0.5, -1.0], requires_grad=True)
    y = x.sigmoid()
    z = (y * y + y * 3).sum()  # y used three times
    z.backward()
    s = 1 / (1 + np.exp(-np.array([0.5, -1.0])))
    np.testing.assert_allclose(x.grad.numpy(), (2 * s + 3) * s * (1 - s), rtol=1e-6)


def test_no_grad_and_set_grad_enabled():
    w = bcml.ones(2, requires_grad=True)
    with bcml.no_grad():
        y = w * 2
    assert not y.requires_grad and y.grad_fn is None
    assert bcml.is_grad_enabled()

    @bcml.no_grad()
    def f(t):
        return t * 2
    assert not f(w).requires_grad
    with bcml.set_grad_enabled(False):
        assert not (w * 2).requires_grad
    assert (w * 2).requires_grad


def test_grad_mode_is_thread_local():
    seen = []
    with bcml.no_grad():
        t = threading.Thread(target=lambda: seen.append(bcml.is_grad_enabled()))
        t.start()
        t.join()
    assert seen == [True]


def test_backward_errors():
    x = bcml.ones(3)
    with pytest.raises(RuntimeError, match="does not require grad"):
        x.sum().backward()
    w = bcml.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="scalar outputs"):
        (w * 2).backward()
    (w * 2).backward(bcml.ones(3))
    np.testing.assert_allclose(w.grad.numpy(), [2, 2, 2])
    with pytest.raises(ValueError, match="gradient"):
        (w * 2).backward(bcml.ones(4))


def test_non_leaf_requires_grad_cannot_be_cleared():
    w = bcml.ones(2, requires_grad=True)
    y = w * 2
    assert not y.is_leaf
    with pytest.raises(RuntimeError, match="leaf"):
        y.requires_grad = False
    with pytest.raises(RuntimeError, match="leaf"):
        w += 1
    with bcml.no_grad():
        w += 1
    np.testing.assert_allclose(w.detach().numpy(), [2, 2])


def test_detach_shares_storage_and_stops_gradient():
    w = bcml.tensor([1.0, 2.0], requires_grad=True)
    d = w.detach()
    assert not d.requires_grad
    assert d._data_ptr == w._data_ptr
    (w * d).sum().backward()
    np.testing.assert_allclose(w.grad.numpy(), [1.0, 2.0])


def test_zero_grad_sets_none():
    m = MLPClassifier(3, 2, [4])
    x = bcml.randn(5, 3)
    F.nll_loss(m(x)[2], bcml.tensor([0, 1, 0, 1, 1])).backward()
    assert all(p.grad is not None for p in m.parameters())
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())
    opt = bcml.optim.SGD(m.parameters(), lr=0.1)
    F.nll_loss(m(x)[2], bcml.tensor([0, 1, 0, 1, 1])).backward()
    opt.zero_grad()
    assert all(p.grad is None for p in m.parameters())


def test_backward_and_step_make_no_python_calls():
    """DESIGN: backward() and optimizer.step() run in C: no Python function is called per node
    or per parameter. sys.setprofile sees every Python-level call (and C calls from Python)."""
    bcml.manual_seed(0)
    m = MLPClassifier(6, 3, [8, 8, 8])
    opt = bcml.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
    x, y = bcml.randn(16, 6), bcml.tensor(np.arange(16) % 3)
    loss = F.nll_loss(m(x)[2], y)
    calls = []

    def prof(frame, event, arg):
        if event in ("call", "c_call"):
            calls.append((event, frame.f_code.co_name, getattr(arg, "__name__", None)))
    sys.setprofile(prof)
    try:
        loss.backward()
    finally:
        sys.setprofile(None)
    # one C call (Tensor.backward; setprofile is the profiler switching itself off) and nothing else
    assert [c for c in calls if c[0] == "call"] == []
    assert sorted(c[2] for c in calls if c[0] == "c_call") == ["backward", "setprofile"]
    calls.clear()
    sys.setprofile(prof)
    try:
        opt.step()
    finally:
        sys.setprofile(None)
    py_calls = [c for c in calls if c[0] == "call"]
    n_params = len(list(m.parameters()))
    # Optimizer.step itself and its small helpers: a constant, not one per parameter
    assert len(py_calls) < n_params, py_calls
    assert len([c for c in calls if c[2] == "sgd_step"]) == 1
