"""Tensor.register_hook and nn.Module hooks against PyTorch on the same modules and inputs:
the values the hooks see, replacements, handles, order, submodules; exceptions raised inside
backward hooks; the callable's lifetime; replay falling back to eager for hooked models."""
import copy
import gc
import warnings
import weakref

import numpy as np
import pytest

import bcml
import bcml.nn.functional as F
from bcml import _engine, nn

RNG = np.random.default_rng(0)
X = RNG.standard_normal((5, 4)).astype(np.float32)


def pair(torch, seed=0):
    """The same MLP (Linear 4->5, ReLU, Linear 5->3) in bcml and in PyTorch."""
    rng = np.random.default_rng(seed)
    b = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 3))
    t = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3))
    with bcml.no_grad(), torch.no_grad():
        for pb, pt in zip(b.parameters(), t.parameters()):
            w = rng.standard_normal(tuple(pb.shape)).astype(np.float32)
            pb.copy_(bcml.from_numpy(w))
            pt.copy_(torch.from_numpy(w))
    return b, t


def arr(v):
    if v is None:
        return None
    return v.detach().numpy().copy()


def close(a, b):
    if a is None or b is None:
        assert a is None and b is None
        return
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def both(torch, fn):
    """fn(lib, model, x) -> value, run on bcml and on PyTorch with the same MLP and input."""
    b, t = pair(torch)
    return fn(bcml, b, bcml.from_numpy(X.copy())), fn(torch, t, torch.from_numpy(X.copy()))


# ---- Tensor.register_hook ----------------------------------------------------------------------
def test_tensor_hooks_leaf_and_non_leaf_against_torch(torch):
    def run(lib, _m, x):
        seen = []
        w = lib.from_numpy(X[0].copy()).requires_grad_()
        y = w * 3
        y.register_hook(lambda g: seen.append(("y1", arr(g))))
        y.register_hook(lambda g: g * 10)                       # replaces y's gradient...
        y.register_hook(lambda g: seen.append(("y3", arr(g))))  # ...for the hooks after it
        w.register_hook(lambda g: seen.append(("w", arr(g))) or g + 1)
        (y * y).sum().backward()
        return seen, arr(w.grad)

    (sb, gb), (st, gt) = both(torch, run)
    assert [k for k, _ in sb] == [k for k, _ in st] == ["y1", "y3", "w"]
    for (_, a), (_, b) in zip(sb, st):
        close(a, b)
    close(gb, gt)


def test_tensor_hook_removed_and_context_manager(torch):
    def run(lib, _m, _x):
        w = lib.ones(3, requires_grad=True)
        h = w.register_hook(lambda g: g * 2)
        (w * 1).sum().backward()
        first = arr(w.grad)
        h.remove()
        h.remove()   # twice is fine
        w.grad = None
        with w.register_hook(lambda g: g * 5):
            (w * 1).sum().backward()
        second = arr(w.grad)
        w.grad = None
        (w * 1).sum().backward()
        return first, second, arr(w.grad)

    for a, b in zip(*both(torch, run)):
        close(a, b)


def test_tensor_hook_on_the_root_and_with_accumulation(torch):
    def run(lib, _m, _x):
        w = lib.ones(2, requires_grad=True)
        w.grad = lib.ones(2)
        y = (w * 2).sum()
        y.register_hook(lambda g: g * 4)
        y.backward()
        return arr(w.grad)

    close(*both(torch, run))


def test_tensor_hook_errors():
    with pytest.raises(RuntimeError, match="doesn't require gradient"):
        bcml.ones(2).register_hook(lambda g: g)
    with pytest.raises(TypeError, match="callable"):
        bcml.ones(2, requires_grad=True).register_hook(3)
    w = bcml.ones(2, requires_grad=True)
    w.register_hook(lambda g: bcml.ones(3))
    with pytest.raises(ValueError, match="changed the type or size"):
        (w * 2).sum().backward()
    w = bcml.ones(2, requires_grad=True)
    w.register_hook(lambda g: 5)
    with pytest.raises(TypeError, match="expected a bcml tensor or None"):
        (w * 2).sum().backward()
    w = bcml.ones(2, requires_grad=True)
    w.register_hook(lambda g: bcml.tensor([1, 2]))
    with pytest.raises(TypeError, match="int64"):
        (w * 2).sum().backward()


class Boom(Exception):
    pass


def test_exception_in_a_hook_comes_out_of_backward_as_itself():
    w = bcml.ones(3, requires_grad=True)
    y = w * 2
    err = Boom("from the hook")

    def bad(*args):
        raise err

    y.register_hook(bad)
    with pytest.raises(Boom) as info:
        y.sum().backward()
    assert info.value is err
    # nothing is left pending: the next error is the core's own, and later backwards work
    with pytest.raises(RuntimeError, match="does not require grad"):
        bcml.ones(2).sum().backward()
    z = (w * 3).sum()
    z.backward()
    np.testing.assert_array_equal(w.grad.numpy(), [3, 3, 3])
    # the same from a module's backward hook and from a leaf hook
    lin = nn.Linear(3, 2)
    lin.register_full_backward_hook(bad)
    with pytest.raises(Boom):
        lin(bcml.ones(4, 3, requires_grad=True)).sum().backward()
    leaf = bcml.ones(3, requires_grad=True)
    leaf.register_hook(bad)
    with pytest.raises(Boom):
        (leaf * 2).sum().backward()
    with pytest.raises(Boom):
        leaf.backward(bcml.ones(3))   # backward from the leaf itself


def test_the_callable_is_released_with_the_graph():
    class Hook:
        def __call__(self, g):
            return None

    w = bcml.ones(3, requires_grad=True)
    h = Hook()
    ref = weakref.ref(h)
    y = w * 2
    handle = y.register_hook(h)
    del h
    gc.collect()
    assert ref() is not None   # the graph keeps it
    y.sum().backward()
    del y
    gc.collect()
    assert ref() is None       # freed with the graph's node
    handle.remove()            # a handle outliving its tensor is harmless
    h2 = Hook()
    ref2 = weakref.ref(h2)
    w.register_hook(h2)
    del h2
    gc.collect()
    assert ref2() is not None
    del w
    gc.collect()
    assert ref2() is None      # a leaf's hooks go with the leaf


# ---- module forward hooks ------------------------------------------------------------------
def test_forward_pre_and_forward_hooks_replace_args_and_output(torch):
    def run(lib, m, x):
        seen = []
        m[0].register_forward_pre_hook(lambda mod, args: seen.append(("pre", arr(args[0]))) or (args[0] * 2,))
        m[1].register_forward_pre_hook(lambda mod, args: args[0] + 1)   # a bare tensor is wrapped
        m[2].register_forward_hook(lambda mod, args, out: seen.append(("fwd", arr(args[0]), arr(out))) or out * 3)
        m.register_forward_hook(lambda mod, args, out: seen.append(("top", type(mod).__name__)))
        with lib.no_grad():
            out = m(x)
        return seen, arr(out)

    (sb, ob), (st, ot) = both(torch, run)
    assert [s[0] for s in sb] == [s[0] for s in st] == ["pre", "fwd", "top"]
    close(sb[0][1], st[0][1])
    close(sb[1][1], st[1][1])
    close(sb[1][2], st[1][2])
    assert sb[2][1] == st[2][1] == "Sequential"
    close(ob, ot)


def test_forward_hooks_with_kwargs_prepend_and_removal(torch):
    def run(lib, m, x):
        order = []
        lin = m[0]
        lin.register_forward_hook(lambda mod, a, o: order.append("a"))
        h = lin.register_forward_hook(lambda mod, a, o: order.append("b"))
        lin.register_forward_hook(lambda mod, a, o: order.append("c"), prepend=True)
        lin.register_forward_hook(lambda mod, a, kw, o: order.append(("kw", sorted(kw))), with_kwargs=True)
        lin.register_forward_pre_hook(lambda mod, a, kw: ((a[0] * 0,), kw), with_kwargs=True)
        with lib.no_grad():
            out1 = lin(x)
        h.remove()
        with lib.no_grad():
            lin(x)
        return order, arr(out1)

    (ob, vb), (ot, vt) = both(torch, run)
    assert ob == ot == ["c", "a", "b", ("kw", []), "c", "a", ("kw", [])]
    close(vb, vt)


# ---- module backward hooks ----------------------------------------------------------------
def _grads(gs):
    return [arr(g) for g in gs]


def test_full_backward_hooks_on_submodules_against_torch(torch):
    def run(lib, m, x):
        log = []
        for i, mod in enumerate(m.modules()):
            mod.register_full_backward_hook(
                lambda mod, gi, go, i=i: log.append((i, _grads(gi), _grads(go))))
        x.requires_grad_()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m(x).sum().backward()
        return log, arr(x.grad), [arr(p.grad) for p in m.parameters()]

    (lb, xb, pb), (lt, xt, pt) = both(torch, run)
    assert [e[0] for e in lb] == [e[0] for e in lt] == [3, 2, 1, 0]
    for eb, et in zip(lb, lt):
        assert len(eb[1]) == len(et[1]) and len(eb[2]) == len(et[2])
        for a, b in zip(eb[1] + eb[2], et[1] + et[2]):
            close(a, b)
    close(xb, xt)
    for a, b in zip(pb, pt):
        close(a, b)


def test_full_backward_hook_replaces_grad_input(torch):
    def run(lib, m, x):
        m[1].register_full_backward_hook(lambda mod, gi, go: (gi[0] * 0.5,))
        m[0].register_full_backward_hook(lambda mod, gi, go: None)
        m(x).sum().backward()
        return [arr(p.grad) for p in m.parameters()]

    for a, b in zip(*both(torch, run)):
        close(a, b)


def test_backward_hook_without_input_grad_fires_on_outputs(torch):
    def run(lib, m, x):
        log = []
        m[0].register_full_backward_hook(lambda mod, gi, go: log.append((gi, _grads(go))))
        with pytest.warns(UserWarning, match="no inputs require gradients"):
            m(x).sum().backward()
        return log

    lb, lt = both(torch, run)
    assert len(lb) == len(lt) == 1
    assert lb[0][0] == lt[0][0] == (None,)
    close(lb[0][1][0], lt[0][1][0])
    lin = nn.Linear(4, 2)
    lin.register_full_backward_hook(lambda mod, gi, go: (bcml.ones(5, 4),))
    with pytest.raises(RuntimeError, match="no input requires gradient"), pytest.warns(UserWarning):
        lin(bcml.from_numpy(X)).sum().backward()


def test_backward_hook_return_checks():
    x = bcml.from_numpy(X.copy()).requires_grad_()
    lin = nn.Linear(4, 2)
    lin.register_full_backward_hook(lambda mod, gi, go: (gi[0], gi[0]))
    with pytest.raises(RuntimeError, match="invalid number of grad_input, got 2, but expected 1"):
        lin(x).sum().backward()
    lin = nn.Linear(4, 2)
    lin.register_full_backward_hook(lambda mod, gi, go: 3)
    with pytest.raises(TypeError, match="must return None or a tuple"):
        lin(x).sum().backward()
    with pytest.raises(TypeError, match="callable"):
        lin.register_full_backward_hook("no")


def test_deprecated_backward_hook_warns_and_acts_as_the_full_hook(torch):
    lin = nn.Linear(4, 2)
    x = bcml.from_numpy(X.copy()).requires_grad_()
    seen = []
    with pytest.warns(FutureWarning, match="register_full_backward_hook"):
        lin.register_backward_hook(lambda mod, gi, go: seen.append((_grads(gi), _grads(go))))
    lin(x).sum().backward()
    tl = torch.nn.Linear(4, 2)
    with torch.no_grad():
        tl.weight.copy_(torch.from_numpy(lin.weight.detach().numpy()))
        tl.bias.copy_(torch.from_numpy(lin.bias.detach().numpy()))
    tx = torch.from_numpy(X.copy()).requires_grad_()
    ref = []
    tl.register_full_backward_hook(lambda mod, gi, go: ref.append((_grads(gi), _grads(go))))
    tl(tx).sum().backward()
    assert len(seen[0][0]) == 1   # grad_input: the module's one input (PyTorch's legacy hook gives 3)
    close(seen[0][0][0], ref[0][0][0])
    close(seen[0][1][0], ref[0][1][0])


def test_backward_hook_handle_removal_and_multiple_calls(torch):
    def run(lib, m, x):
        log = []
        h = m[2].register_full_backward_hook(lambda mod, gi, go: log.append("a"))
        m[2].register_full_backward_hook(lambda mod, gi, go: log.append("b"))
        m[2].register_full_backward_hook(lambda mod, gi, go: log.append("c"), prepend=True)
        m(x).sum().backward()
        h.remove()
        m(x).sum().backward()
        return log

    lb, lt = both(torch, run)
    assert lb == lt == ["c", "a", "b", "c", "b"]


def test_module_called_twice_and_tuple_outputs():
    """A module used twice in one forward gets one hook call per use; a classifier returning the
    (logits, softmax, log_softmax) triple gets grad_output with None where no gradient flows."""
    lin = nn.Linear(4, 4)
    calls = []
    lin.register_full_backward_hook(lambda mod, gi, go: calls.append(gi[0].shape))
    x = bcml.from_numpy(X.copy()).requires_grad_()
    lin(lin(x)).sum().backward()
    assert calls == [(5, 4), (5, 4)]
    model = bcml.models.LogisticRegression(4, 3)
    got = []
    model.register_full_backward_hook(lambda mod, gi, go: got.append([g is None for g in go]))
    F.nll_loss(model(x)[2], bcml.tensor([0, 1, 2, 0, 1])).backward()
    assert got == [[True, True, False]]


def test_no_hooks_no_change_in_eval_or_no_grad():
    m = nn.Linear(4, 2)
    fired = []
    m.register_full_backward_hook(lambda *a: fired.append(1))
    with bcml.no_grad():
        out = m(bcml.from_numpy(X))
    assert not out.requires_grad and not fired


# ---- state_dict, deepcopy, as PyTorch ---------------------------------------------------------
def test_state_dict_and_deepcopy_with_hooks(torch):
    def run(lib, m, x):
        calls = []
        m.register_forward_hook(lambda mod, a, o: calls.append(id(mod)))
        m[0].weight.register_hook(lambda g: g * 2)
        keys = list(m.state_dict())
        c = copy.deepcopy(m)
        with lib.no_grad():
            c(x)
        c(x).sum().backward()
        return keys, len(calls), calls.count(id(c)), arr(c[0].weight.grad)

    (kb, nb, cb, gb), (kt, nt, ct, gt) = both(torch, run)
    assert kb == kt
    assert nb == nt == cb == ct == 2   # the copy keeps the forward hook
    close(gb, gt)                      # and not the parameter's hook (a new tensor)


# ---- record and replay ----------------------------------------------------------------------
def _data(n=64, d=4, classes=3, seed=1):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)).astype(np.float32)
    y = rng.integers(0, classes, n).astype(np.int64)
    return [(bcml.from_numpy(X[i:i + 16]), bcml.from_numpy(y[i:i + 16])) for i in range(0, n, 16)]


def _mlp(seed=3):
    bcml.manual_seed(seed)
    return bcml.models.MLPClassifier(4, 3, [6])


def test_hooks_fire_on_every_training_step_and_change_nothing():
    from bcml.helpers.training import train
    data = _data()
    ref = _mlp()
    opt = bcml.optim.SGD(ref.parameters(), lr=0.1)
    train(2, ref, opt, F.nll_loss, data, data, 16, 16)   # replayed
    model = _mlp()
    fwd, bwd, grads = [], [], []
    model.register_forward_hook(lambda m, a, o: fwd.append(1))
    model.layers[0].register_full_backward_hook(lambda m, gi, go: bwd.append(1))
    model.layers[0].weight.register_hook(lambda g: grads.append(1))
    opt = bcml.optim.SGD(model.parameters(), lr=0.1)
    with pytest.warns(_engine.ReplayWarning, match="hook"):
        train(2, model, opt, F.nll_loss, data, data, 16, 16)
    # 2 epochs x 4 batches of training; the forward also runs in the 3 evaluations (4 batches)
    assert len(bwd) == len(grads) == 8
    assert len(fwd) >= 8 + 3 * 4   # (and the checks of the model's output kind)
    for k, v in ref.state_dict().items():
        np.testing.assert_allclose(model.state_dict()[k].numpy(), v.numpy(), rtol=1e-5, atol=1e-6, err_msg=k)


def test_hooks_fire_in_train_compatibility_and_change_nothing():
    from bcml.helpers.training import train_compatibility
    from bcml.loss import BCNLLLoss
    data = _data()
    h1 = _mlp(5).eval()

    def run(hooked):
        h2 = _mlp(7)
        calls = []
        if hooked:
            h2.layers[1].register_forward_pre_hook(lambda m, a: calls.append("pre"))
            h2.layers[1].register_full_backward_hook(lambda m, gi, go: calls.append("bwd"))
        loss = BCNLLLoss(h1, h2, 0.5)
        opt = bcml.optim.SGD(h2.parameters(), lr=0.1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", _engine.ReplayWarning)
            train_compatibility(2, h2, opt, loss, data, data, 16, 16)
        return h2, calls

    ref, _ = run(False)
    got, calls = run(True)
    assert calls.count("bwd") == 8
    assert calls.count("pre") >= 8
    for k, v in ref.state_dict().items():
        np.testing.assert_allclose(got.state_dict()[k].numpy(), v.numpy(), rtol=1e-5, atol=1e-6, err_msg=k)


def test_a_hook_added_between_epochs_stops_replay():
    data = _data()
    model = _mlp()
    opt = bcml.optim.SGD(model.parameters(), lr=0.1)
    session = _engine.Session()

    def step(x, y, _h1):
        return F.nll_loss(model(x)[2], y)

    _engine.train_epoch(step, data, opt, session=session)
    _engine.train_epoch(step, data, opt, session=session)
    assert session.plans.on and session.plans.verified()
    seen = []
    model.layers[0].register_forward_hook(lambda m, a, o: seen.append(1))
    with pytest.warns(_engine.ReplayWarning, match="hooks"):
        _engine.train_epoch(step, data, opt, session=session)
    assert len(seen) == len(data)


def test_a_hook_on_a_tensor_of_the_step_taints_the_record():
    data = _data()
    model = _mlp()
    opt = bcml.optim.SGD(model.parameters(), lr=0.1)
    seen = []

    def step(x, y, _h1):
        out = model(x)[2]
        out.register_hook(lambda g: seen.append(1))
        return F.nll_loss(out, y)

    with pytest.warns(_engine.ReplayWarning, match="backward hook"):
        _engine.train_epoch(step, data, opt)
    assert len(seen) == len(data)


# ---- BCML's memory helpers ---------------------------------------------------------------------
def test_log_mem_entries_in_torchs_order(torch):
    """log_mem's entries (layer, pre/fwd/bwd) come in the order the same three hooks per module
    fire in PyTorch, for a forward and backward; removed hooks log nothing more."""
    from bcml.helpers.utils import get_gpu_mem, log_mem, remove_memory_hooks
    b, t = pair(torch)
    handles, log = log_mem(b, exp="e")
    x = bcml.from_numpy(X.copy())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        b(x).sum().backward()
    ref = []
    for i, mod in enumerate(t.modules()):
        mod.register_forward_pre_hook(lambda m, a, i=i: ref.append((i, "pre")))
        mod.register_forward_hook(lambda m, a, o, i=i: ref.append((i, "fwd")))
        mod.register_full_backward_hook(lambda m, gi, go, i=i: ref.append((i, "bwd")))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t(torch.from_numpy(X.copy())).sum().backward()
    assert [(e["layer_idx"], e["hook_type"]) for e in log] == ref
    assert [e["layer_type"] for e in log[:4]] == ["Sequential", "Linear", "Linear", "ReLU"]
    assert [e["call_idx"] for e in log] == list(range(len(log)))
    remove_memory_hooks(handles)
    b(x).sum().backward()
    assert len(log) == len(ref)
    assert not any(m.__dict__[k] for m in b.modules() for k in ("_forward_pre_hooks", "_forward_hooks",
                                                               "_backward_hooks"))
    # the figures: bytes of live bcml tensors (a new 1 MB tensor adds 1 MB) and the process RSS
    mem_all, rss = get_gpu_mem()
    big = bcml.zeros(250_000)
    assert get_gpu_mem()[0] - mem_all == 1_000_000
    with open("/proc/self/statm") as f:
        import os
        statm = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    assert abs(get_gpu_mem()[1] - statm) < 64 << 20
    del big
    assert get_gpu_mem()[0] == mem_all


def test_clean_from_gpu_and_show_allocated_tensors(capsys):
    from bcml.helpers.utils import clean_from_gpu, show_allocated_tensors
    keep = [bcml.zeros(7, 3)]
    clean_from_gpu(keep)
    assert keep[0].shape == (7, 3)   # still referenced: still there, as in BCML
    show_allocated_tensors()
    out = capsys.readouterr().out
    assert "bcml.Size([7, 3])" in out or "(7, 3)" in out
    with pytest.raises(TypeError, match="tensors"):
        clean_from_gpu(3)
