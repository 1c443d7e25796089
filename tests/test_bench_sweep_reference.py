"""benchmarks/bench_sweep.py's PyTorch reference of BCML's compatibility losses (h1 under no_grad,
h2 run on the batch and again on S) gives the values of bcml.loss.BCCrossEntropyLoss and
StrictImitationCrossEntropyLoss (SPEC section 3) for the same weights, and the same h2 gradients;
and its lambda_c grid is SPEC section 6's."""
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
