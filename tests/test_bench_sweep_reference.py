"""benchmarks/bench_sweep.py's PyTorch reference of BCML's compatibility losses (h1 under no_grad,
h2 run on the batch and again on S) gives the values of bcml.loss.BCCrossEntropyLoss and
StrictImitationCrossEntropyLoss (SPEC section 3) for the same weights, and the same h2 gradients;
and its lambda_c grid is SPEC section 6's; the same-algorithm reference (h1 cached, h2 once
per batch, jobs over 1 or 2 processes) gives the same losses, gradients and sweep summaries."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest

import bcml
from bcml.loss import BCCrossEntropyLoss, StrictImitationCrossEntropyLoss
from bcml.models import ConvNet, LogisticRegression

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_sweep.py"
LOSSES = {"new-error": BCCrossEntropyLoss, "strict-imitation": StrictImitationCrossEntropyLoss}


def _bench():
    spec = importlib.util.spec_from_file_location("bench_sweep", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # puts benchmarks/ on sys.path for its own imports
    return mod


def _pair(torch, task, f, seed):
    """bcml (h1, h2) and their PyTorch twins with the same weights, all in eval mode."""
    bs = _bench()
    _t, F, make = bs.torch_models(task, f)
    bcml.manual_seed(seed)
    bm = [ConvNet() if task == "convnet" else LogisticRegression(f, 2) for _ in range(2)]
    tm = []
    for m in bm:
        m.eval()
        t = make()
        t.load_state_dict({k: torch.from_numpy(v.numpy().copy()) for k, v in m.state_dict().items()})
        t.eval()
        tm.append(t)
    return bs, F, bm, tm


def _batch(task, f, n, seed, h1):
    rng = np.random.default_rng(seed)
    x = (rng.random((n, 1, 28, 28)) if task == "convnet" else rng.standard_normal((n, f))).astype(np.float32)
    with bcml.no_grad():
        labels = h1(bcml.from_numpy(x))[0].numpy().argmax(1)
    C = 10 if task == "convnet" else 2
    y = rng.integers(0, C, n)
    keep = rng.random(n) < 0.5  # about half the batch in S (h1 right), the rest wrong
    y = np.where(keep, labels, (labels + 1 + rng.integers(0, C - 1, n)) % C).astype(np.int64)
    assert 0 < np.count_nonzero(y == labels) < n
    return x, y


@pytest.mark.parametrize("kind", list(LOSSES))
@pytest.mark.parametrize("lambda_c", [0.0, 0.25, 1.0])
@pytest.mark.parametrize("task,f,n", [("lr", 13, 40), ("convnet", 1, 24)])
def test_reference_loss_matches_bcml(torch, kind, lambda_c, task, f, n):
    bs, F, (b1, b2), (t1, t2) = _pair(torch, task, f, 3)
    x, y = _batch(task, f, n, 5, b1)
    for reduction in ("mean", "sum"):
        b2.zero_grad()
        t2.zero_grad()
        lb = LOSSES[kind](b1, b2, lambda_c)(bcml.from_numpy(x), bcml.from_numpy(y), reduction=reduction)
        lb.backward()
        lt = bs.torch_compat_loss(torch, F, t1, t2, torch.from_numpy(x), torch.from_numpy(y), lambda_c, kind,
                                  reduction)
        lt.backward()
        np.testing.assert_allclose(float(lb.item()), float(lt.item()), rtol=1e-5)
        tgrads = dict(t2.named_parameters())
        for name, p in b2.named_parameters():
            np.testing.assert_allclose(p.grad.numpy(), tgrads[name].grad.numpy(), rtol=1e-4, atol=1e-6,
                                       err_msg="%s %s %s" % (kind, reduction, name))


def test_reference_empty_support(torch):
    """No sample right for h1: the dissonance is 0 on both sides (the base term alone)."""
    bs, F, (b1, b2), (t1, t2) = _pair(torch, "lr", 7, 4)
    x = np.random.default_rng(1).standard_normal((16, 7)).astype(np.float32)
    with bcml.no_grad():
        y = (1 - b1(bcml.from_numpy(x))[0].numpy().argmax(1)).astype(np.int64)
    for kind, cls in LOSSES.items():
        lb = float(cls(b1, b2, 1.0)(bcml.from_numpy(x), bcml.from_numpy(y)).item())
        lt = bs.torch_compat_loss(torch, F, t1, t2, torch.from_numpy(x), torch.from_numpy(y), 1.0, kind).item()
        np.testing.assert_allclose(lb, lt, rtol=1e-5)


def test_lambda_grid():
    bs = _bench()
    assert bs.lambda_grid(0.25) == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert bs.lambda_grid(0.3) == [0.0, 0.3, 0.6, 0.9]
    assert [str(v) for v in bs.lambda_grid(0.1)][:4] == ["0.0", "0.1", "0.2", "0.3"]


@pytest.mark.parametrize("kind", list(LOSSES))
@pytest.mark.parametrize("lambda_c", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("task,f,n", [("lr", 13, 40), ("convnet", 1, 24)])
def test_cached_reference_loss_matches(torch, kind, lambda_c, task, f, n):
    """bcml's algorithm in PyTorch (h1's logits from a cache, h2 once) gives the loss value and
    h2 gradients of BCML's algorithm (h1 on the batch, h2 again on S), in eval mode."""
    bs, F, (b1, b2), (t1, t2) = _pair(torch, task, f, 3)
    x, y = _batch(task, f, n, 6, b1)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    logits1 = bs._torch_logits(torch, t1, xt, 7)  # the cache, in batches of 7
    for reduction in ("mean", "sum"):
        t2.zero_grad()
        la = bs.torch_compat_loss(torch, F, t1, t2, xt, yt, lambda_c, kind, reduction)
        la.backward()
        ga = {k: p.grad.clone() for k, p in t2.named_parameters()}
        t2.zero_grad()
        lc = bs.torch_cached_loss(torch, F, t2, xt, yt, logits1, lambda_c, kind, reduction)
        lc.backward()
        np.testing.assert_allclose(float(lc.item()), float(la.item()), rtol=1e-5)
        for k, p in t2.named_parameters():
            np.testing.assert_allclose(p.grad.numpy(), ga[k].numpy(), rtol=1e-4, atol=1e-6, err_msg=k)


@pytest.mark.parametrize("processes", [1, 2])
def test_cached_sweep_matches_sequential_reference(torch, tmp_path, processes):
    """On the same seeds (weights, data, batch order), the same-algorithm sweep, in 1 process or
    split over 2 forked ones, gives the sequential BCML-algorithm sweep's summary rows (lambda_c,
    kind, split, accuracy, BTC, BEC) for LogisticRegression (no dropout), and saves every model."""
    bs = _bench()
    f, n, nt = 9, 300, 120
    _t, F, make = bs.torch_models("lr", f)
    torch.manual_seed(11)
    h1, h2 = make(), make()
    rng = np.random.default_rng(2)
    w = rng.standard_normal(f)
    X = rng.standard_normal((n + nt, f)).astype(np.float32)
    y = ((X @ w + 0.8 * rng.standard_normal(n + nt)) > 0).astype(np.int64)
    Xtr, ytr, Xte, yte = (torch.from_numpy(a) for a in (X[:n], y[:n], X[n:], y[n:]))
    perms = [torch.from_numpy(rng.permutation(n)) for _ in range(2)]
    # h1: a few full-batch steps so that it is right on some samples and wrong on others
    opt = torch.optim.SGD(h1.parameters(), lr=0.5)
    for _ in range(3):
        opt.zero_grad()
        F.cross_entropy(h1(Xtr)[0], ytr).backward()
        opt.step()
    out = {}
    for name, fn, extra in (("seq", bs.torch_sweep, ()), ("cached", bs.torch_sweep_cached, (processes,))):
        folder = tmp_path / name
        folder.mkdir()
        out[name] = fn(torch, F, h1, h2, Xtr, ytr, Xte, yte, perms, 2, 32, 0.05, 0.9, str(folder), *extra)
        assert len(list(folder.glob("*-model-*.state"))) == 2 * len(bs.lambda_grid())
        assert (folder / "sweep_summary.json").exists()
    a, c = out["seq"], out["cached"]
    assert len(a) == len(c) == 4 * len(bs.lambda_grid())
    keys = ("datapoint_index", "lambda_c", "training", "testing", "new-error", "strict-imitation")
    assert [[r[k] for k in keys] for r in a] == [[r[k] for k in keys] for r in c]
    # accuracy, BTC and BEC are ratios of label counts: the same labels give the same values
    for r, s in zip(a, c):
        for k in ("performance", "btc", "bec"):
            assert r[k] == pytest.approx(s[k], abs=1e-12), (r, s, k)
    # not a vacuous comparison: h1 is neither always right nor always wrong
    assert 0.0 < a[0]["btc"] <= 1.0 and any(0.0 < r["bec"] < 1.0 for r in a)
