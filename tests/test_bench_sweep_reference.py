"""benchmarks/bench_sweep.py's PyTorch reference of BCML's compatibility losses (h1 under no_grad,
h2 run on the batch and again on S) gives the values of bcml.loss.BCCrossEntropyLoss and
StrictImitationCrossEntropyLoss (SPEC section 3) for the same weights, and the same h2 gradients;
and its lambda_c grid is SPEC section 6's; the same-algorithm reference (h1 cached, h2 once
per batch, jobs over 1 or 2 processes) gives the same losses, gradients and sweep summaries; and
the original backwardcompatibilityml package (its folder in BCML_ORIGINAL_DIR: skipped without it
on a user's machine, failed under CI), loaded and run by the benchmark's --bcml-original code,
writes a summary that its own saved models reproduce."""
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


# ---- the original package as a reference (bench_sweep.py --bcml-original DIR) -------------------
def test_resolve_original_dir(tmp_path):
    """--bcml-original takes the folder holding backwardcompatibilityml/ or the unpacked sdist's
    parent folder (one backwardcompatibilityml-*/ inside), and rejects any other folder."""
    bs = _bench()
    with pytest.raises(ValueError, match="bcml-original"):
        bs.resolve_original_dir(str(tmp_path))
    pkg = tmp_path / "backwardcompatibilityml-1.4.2" / "backwardcompatibilityml"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg.parent / "PKG-INFO").write_text("Metadata-Version: 2.1\nName: backwardcompatibilityml\nVersion: 1.4.2\n")
    assert bs.resolve_original_dir(str(tmp_path)) == str(pkg.parent)
    assert bs.resolve_original_dir(str(pkg.parent)) == str(pkg.parent)
    assert bs.original_version(str(pkg.parent)) == "1.4.2"


@pytest.fixture
def original(torch):
    """The benchmark module and the original package loaded through its loader from the folder in
    BCML_ORIGINAL_DIR (skips without it, fails under CI); sys.path and the original's modules (and
    the stubs) are removed again afterwards."""
    import os
    import sys
    from conftest import CI
    path = os.environ.get("BCML_ORIGINAL_DIR")
    if not path:
        if CI:
            pytest.fail("BCML_ORIGINAL_DIR (the unpacked backwardcompatibilityml 1.4.2) is required when CI is set")
        pytest.skip("BCML_ORIGINAL_DIR is not set")
    bs = _bench()
    saved_path, before = list(sys.path), set(sys.modules)
    orig = bs.load_original(path)
    yield bs, orig
    sys.path[:] = saved_path
    for name in set(sys.modules) - before:
        if name.split(".")[0] in (bs.ORIGINAL,) + tuple(orig.stubbed):
            del sys.modules[name]


def test_original_sweep_summary_matches_its_saved_models(torch, shared_data, original, tmp_path):
    """The original package's own compatibility_sweep, run through the benchmark's loader on 300
    Adult rows (1 epoch, lambda_c 0 and 1): one summary point per lambda_c for each split and
    loss kind, every model saved, and its BTC, BEC and accuracy are those that bcml.scores and
    NumPy compute from the saved models' predictions on the same batches, averaged over the
    batches as its code does (BEC normalised by h1's errors, 0 for an empty denominator). Its
    strict-imitation test row evaluates the new-error model, as the original's code does (SPEC
    section 3); here that cannot show: its strict-imitation cross-entropy targets h1's labels on
    S, which are y there, so without dropout both kinds train the same weights."""
    from bcml.datasets import load_adult
    from bcml.scores import error_compatibility_score, trust_compatibility_score
    bs, orig = original
    assert orig.training.__file__.startswith(orig.root)
    adult = load_adult(str(shared_data))
    n, nt, batch = 300, 200, 64
    X = torch.from_numpy(np.ascontiguousarray(adult.X_train[:n], dtype=np.float32))
    y = torch.from_numpy(np.ascontiguousarray(adult.y_train[:n], dtype=np.int64))
    Xt = torch.from_numpy(np.ascontiguousarray(adult.X_test[:nt], dtype=np.float32))
    yt = torch.from_numpy(np.ascontiguousarray(adult.y_test[:nt], dtype=np.int64))
    f = X.shape[1]
    _t, F, make = bs.torch_models("lr", f)
    torch.manual_seed(5)
    h1, h2 = make(), make()
    opt = torch.optim.SGD(h1.parameters(), lr=0.5)
    for _ in range(2):  # h1 right on some rows and wrong on others
        opt.zero_grad()
        F.cross_entropy(h1(X)[0], y).backward()
        opt.step()
    h1.eval()
    order = np.random.default_rng(3).permutation(n)
    folder = tmp_path / "sweep"
    folder.mkdir()
    summary = bs.original_sweep(orig, torch, h1, h2, X, y, Xt, yt, order, 1, batch, 0.05, 0.9, str(folder), step=1.0)
    lambdas = [0.0, 1.0]
    assert len(summary) == 4 * len(lambdas)
    for split in ("training", "testing"):
        for kind in bs.KINDS:
            rows = [r for r in summary if r[split] and r[kind]]
            assert [r["lambda_c"] for r in rows] == lambdas, (split, kind)
    sets = {"training": bs.original_batches(torch, X, y, order, batch),
            "testing": bs.original_batches(torch, Xt, yt, np.arange(nt), bs.BATCH_TEST, first_id=n)}
    assert len(sets["training"]) == 5  # the per-batch averages differ from whole-set values

    def labels(model, x):
        with torch.no_grad():
            return model(x)[0].argmax(1).numpy()

    seen_btc = set()
    for r in summary:
        split = "training" if r["training"] else "testing"
        kind = "new-error" if r["new-error"] or split == "testing" else "strict-imitation"
        state = folder / ("%s-model-%s.state" % (r["lambda_c"], kind))
        assert state.exists(), state
        m = make()
        m.load_state_dict(torch.load(str(state)))
        m.eval()
        acc, btc, bec = [], [], []
        for _ids, xb, yb in sets[split]:
            l1, l2, yn = labels(h1, xb), labels(m, xb), yb.numpy()
            acc.append(np.mean(l2 == yn))
            btc.append(trust_compatibility_score(l1, l2, yn, zero_division=0))
            bec.append(error_compatibility_score(l1, l2, yn, normalize="h1", zero_division=0))
        assert r["performance"] == pytest.approx(np.mean(acc), abs=1e-12), r
        assert r["btc"] == pytest.approx(np.mean(btc), abs=1e-12), r
        assert r["bec"] == pytest.approx(np.mean(bec), abs=1e-12), r
        assert 0.0 <= r["btc"] <= 1.0 and 0.0 <= r["bec"] <= 1.0
        seen_btc.add(round(r["btc"], 12))
    # not vacuous: h1 is neither always right nor always wrong, and the rows differ
    l1 = labels(h1, X)
    assert 0 < np.count_nonzero(l1 == y.numpy()) < n
    assert len(seen_btc) > 1
