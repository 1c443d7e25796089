"""bcml.set_num_threads: kernels split work into tasks from the shapes alone, so results are
bitwise the same with any thread count, and concurrent callers (sweep jobs on threads) are safe."""
import threading

import numpy as np
import pytest

import bcml
from bcml import _core
import bcml.nn.functional as F
from bcml.models import MLPClassifier


def _make(seed):
    bcml.manual_seed(seed)
    m = MLPClassifier(108, 3, [200, 50])
    opt = bcml.optim.SGD(m.parameters(), lr=0.05, momentum=0.9)
    g = np.random.default_rng(seed)
    x = bcml.from_numpy(g.standard_normal((754, 108)).astype(np.float32))
    y = bcml.from_numpy(g.integers(0, 3, 754))
    return m, opt, x, y


def _run(state, steps):
    m, opt, x, y = state
    for _ in range(steps):
        opt.zero_grad()
        F.nll_loss(m(x)[2], y).backward()
        opt.step()
    return [p.detach().numpy().copy() for p in m.parameters()]


def _train(seed, steps=5):
    return _run(_make(seed), steps)


def test_results_do_not_depend_on_thread_count():
    before = bcml.get_num_threads()
    try:
        bcml.set_num_threads(1)
        one = _train(0)
        bcml.set_num_threads(2)
        assert bcml.get_num_threads() == 2
        two = _train(0)
        bcml.set_num_threads(3)
        three = _train(0)
    finally:
        bcml.set_num_threads(before)
    for a, b, c in zip(one, two, three):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)


def test_concurrent_callers_get_their_own_results():
    before = bcml.get_num_threads()
    bcml.set_num_threads(2)
    try:
        expected = {s: _train(s, steps=3) for s in (1, 2, 3)}
        states = {s: _make(s) for s in (1, 2, 3)}  # drawn first: manual_seed is process-wide
        got = {}

        def job(s):
            got[s] = _run(states[s], 3)
        threads = [threading.Thread(target=job, args=(s,)) for s in (1, 2, 3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        bcml.set_num_threads(before)
    for s in (1, 2, 3):
        for a, b in zip(got[s], expected[s]):
            np.testing.assert_array_equal(a, b)


def test_set_num_threads_rejects_bad_values():
    import pytest
    with pytest.raises(ValueError, match="'n' must be a positive int"):
        bcml.set_num_threads(0)
    with pytest.raises(TypeError, match="'n' must be an int"):  # a wrong type (issue 9's rule)
        bcml.set_num_threads(1.5)


def test_pool_survives_resizing_and_fork():
    import os
    import random
    before = bcml.get_num_threads()
    x = bcml.randn(754, 108)
    w = bcml.randn(200, 108)
    with bcml.no_grad():
        ref = F.linear(x, w).numpy().copy()
        rnd = random.Random(0)
        try:
            for _ in range(40):  # new threads must see jobs issued right after they are made
                bcml.set_num_threads(rnd.randint(1, 4))
                np.testing.assert_array_equal(F.linear(x, w).numpy(), ref)
            bcml.set_num_threads(2)
            pid = os.fork()
            if pid == 0:  # the child has no pool threads: it must still compute, serially
                ok = np.array_equal(F.linear(x, w).numpy(), ref)
                os._exit(0 if ok else 1)
            _, status = os.waitpid(pid, 0)
            assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
        finally:
            bcml.set_num_threads(before)


def test_split_elementwise_loops_match_numpy_at_any_thread_count():
    """relu forward and backward, and the zeroed gradient buffers backward adds into, are split
    over threads for large tensors (bcml_parallel_for): any thread count gives NumPy's values."""
    rng = np.random.default_rng(4)
    xs = rng.standard_normal(300_001).astype(np.float32)
    xs[::7] = 0.0
    gs = rng.standard_normal(300_001).astype(np.float32)
    before = bcml.get_num_threads()
    outs = []
    try:
        for n in (1, 2, 3):
            bcml.set_num_threads(n)
            x = bcml.from_numpy(xs.copy())
            x.requires_grad = True
            y = bcml.relu(x)
            y.backward(bcml.from_numpy(gs))
            outs.append((y.detach().numpy().copy(), x.grad.numpy().copy()))
    finally:
        bcml.set_num_threads(before)
    for y, g in outs:
        np.testing.assert_array_equal(y, np.maximum(xs, 0))
        np.testing.assert_array_equal(g, np.where(xs > 0, gs, 0).astype(np.float32))


def test_batch_norm_split_over_channels_is_bitwise_the_same():
    """BatchNorm2d's forward (statistics, running statistics) and backward split their channels
    over threads for large inputs: 1, 2 and 3 threads give the same bits, and the values match
    NumPy float64's batch statistics."""
    rng = np.random.default_rng(5)
    xs = (rng.standard_normal((16, 24, 16, 16)) * 3 + 1).astype(np.float32)
    gs = rng.standard_normal(xs.shape).astype(np.float32)
    before = bcml.get_num_threads()
    outs = []
    try:
        for n in (1, 2, 3):
            bcml.set_num_threads(n)
            bcml.manual_seed(0)
            bn = bcml.nn.BatchNorm2d(24)
            x = bcml.from_numpy(xs.copy())
            x.requires_grad = True
            y = bn(x)
            y.backward(bcml.from_numpy(gs))
            outs.append([y.detach().numpy().copy(), x.grad.numpy().copy(), bn.weight.grad.numpy().copy(),
                         bn.bias.grad.numpy().copy(), bn.running_mean.numpy().copy(), bn.running_var.numpy().copy()])
    finally:
        bcml.set_num_threads(before)
    for o in outs[1:]:
        for a, b in zip(outs[0], o):
            np.testing.assert_array_equal(a, b)
    x64 = xs.astype(np.float64)
    mean, var = x64.mean((0, 2, 3)), x64.var((0, 2, 3))
    ref = (x64 - mean[None, :, None, None]) / np.sqrt(var[None, :, None, None] + 1e-5)
    np.testing.assert_allclose(outs[0][0], ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(outs[0][3], gs.astype(np.float64).sum((0, 2, 3)), rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(outs[0][4], 0.1 * mean, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("n", [1, 2, 7, 8, 64])
def test_every_task_runs_once_and_idle_threads_take_the_rest(n):
    # the calling thread's first task waits until every other task has run: with two threads the
    # caller's other tasks are taken by the pool thread (threads.c: own block first, then the
    # others' tasks not yet started), and each task still runs exactly once
    before = bcml.get_num_threads()
    try:
        bcml.set_num_threads(1)
        runs, by_caller = _core._parallel_selftest(n)
        assert runs == [1] * n and by_caller == [1] * n
        bcml.set_num_threads(2)
        runs, by_caller = _core._parallel_selftest(n)
        assert runs == [1] * n
        assert by_caller == [1] + [0] * (n - 1)
    finally:
        bcml.set_num_threads(before)
    with pytest.raises(ValueError, match="n must be"):
        _core._parallel_selftest(0)
    with pytest.raises(ValueError, match="n must be"):
        _core._parallel_selftest(1025)
