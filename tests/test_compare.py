"""bcml.compare, cohorts, bootstrap intervals, McNemar's test and seed_baseline (issue 13,
items 1-3), against NumPy float64 recomputations, exact arithmetic and hand-computed cases."""
import itertools
import os
import json
import math
from fractions import Fraction

import numpy as np
import pytest

import bcml
from bcml import _core
from bcml import scores as S
from conftest import CI

SCORES = ("btc", "bec", "bec_h1", "nfr", "pfr", "nfi", "churn", "h1_accuracy", "h2_accuracy")


def ref_scores(h1, h2, y):
    """Every score from the labels, in float64 NumPy (nan where undefined)."""
    h1, h2, y = (np.asarray(a, dtype=np.int64) for a in (h1, h2, y))
    r1, r2 = h1 == y, h2 == y
    n = len(y)

    def ratio(a, b):
        return float(a) / float(b) if b else float("nan")
    return {"btc": ratio((r1 & r2).sum(), r1.sum()), "bec": ratio((~r1 & ~r2).sum(), (~r2).sum()),
            "bec_h1": ratio((~r1 & ~r2).sum(), (~r1).sum()), "nfr": ratio((r1 & ~r2).sum(), n),
            "pfr": ratio((~r1 & r2).sum(), n), "nfi": ratio((r1 & ~r2).sum(), (~r2).sum()),
            "churn": ratio((h1 != h2).sum(), n), "h1_accuracy": ratio(r1.sum(), n),
            "h2_accuracy": ratio(r2.sum(), n)}


def assert_same(got, want, keys=SCORES):
    for k in keys:
        if math.isnan(want[k]):
            assert math.isnan(got[k]), k
        else:
            assert got[k] == pytest.approx(want[k], rel=1e-12, abs=1e-15), k


def labels(seed, n, C, acc1=0.7, acc2=0.75):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, C, n)
    h1 = np.where(rng.random(n) < acc1, y, rng.integers(0, C, n))
    h2 = np.where(rng.random(n) < acc2, y, rng.integers(0, C, n))
    return h1, h2, y


# ---- hand-computed case -----------------------------------------------------------------------
# 8 samples, 3 classes
Y = [0, 0, 1, 1, 2, 2, 2, 0]
H1 = [0, 1, 1, 1, 2, 0, 1, 0]   # right: 0, 2, 3, 4, 7
H2 = [0, 0, 1, 2, 1, 0, 2, 2]   # right: 0, 1, 2, 6
P1 = np.array([[.9, .1, 0], [.2, .7, .1], [0, 1, 0], [.1, .8, .1], [0, .2, .8], [.6, .2, .2], [.3, .4, .3],
               [.5, .25, .25]])
P2 = np.array([[.8, .1, .1], [.6, .3, .1], [.1, .9, 0], [.2, .2, .6], [.1, .7, .2], [.5, .5, 0], [0, 0, 1],
               [.2, .2, .6]])


def test_hand_computed_report():
    r = bcml.compare(H1, H2, Y, h1_proba=P1, h2_proba=P2, ids=list("abcdefgh"), ci=None)
    # cells: RR {0, 2}, RW {3, 4, 7}, WR {1, 6}, WW {5} (h1 0, h2 0: same label)
    assert r["counts"] == {"h1_right_h2_right": 2, "h1_right_h2_wrong": 3, "h1_wrong_h2_right": 2,
                           "both_wrong": 1, "h1_ne_h2": 5}
    assert r["btc"] == pytest.approx(2 / 5) and r["nfr"] == pytest.approx(3 / 8)
    assert r["bec"] == pytest.approx(1 / 4) and r["bec_h1"] == pytest.approx(1 / 3)
    assert r["negative_flip_ids"] == ["d", "e", "h"] and r["positive_flip_ids"] == ["b", "g"]
    fm = np.asarray(r["flip_matrix"])
    assert fm.shape == (3, 3, 3) and fm.sum() == 8
    want = np.zeros((3, 3, 3), int)
    for t, a, b in zip(Y, H1, H2):
        want[t, a, b] += 1
    np.testing.assert_array_equal(fm, want)
    assert fm[0, 0, 2] == 1 and fm[2, 0, 0] == 1
    # h2's confidence in its wrong label on the regressed samples 3, 4, 7: .6, .7, .6
    assert r["regressed_h2_confidence"] == pytest.approx((.6 + .7 + .6) / 3)
    assert r["regressed_h1_confidence"] == pytest.approx((.8 + .8 + .5) / 3)
    tv = 0.5 * np.abs(P1 - P2).sum(axis=1)
    assert r["prob_churn"] == pytest.approx(tv.mean())
    # per class: class 2 = samples 4, 5, 6; regressed: 4
    pc2 = r["per_class"][2]
    assert pc2["prob_churn"] == pytest.approx(tv[[4, 5, 6]].mean())
    assert pc2["regressed_h2_confidence"] == pytest.approx(.7)
    assert math.isnan(r["per_class"][1]["regressed_h1_confidence"]) is False
    # McNemar: b = 3, c = 2 -> 2 * P(X <= 2), X ~ Bin(5, 1/2) = 2 * 16/32 = 1
    assert r["mcnemar_pvalue"] == 1.0


def test_compare_equals_scores_for_every_input_kind(torch):
    h1, h2, y = labels(1, 3000, 4)
    want = ref_scores(h1, h2, y)
    kinds = [lambda a: a, lambda a: a.tolist(), lambda a: a.astype(np.int32), lambda a: bcml.tensor(a),
             lambda a: torch.tensor(a), lambda a: a.astype(np.float32), lambda a: a.reshape(-1, 1)]
    for kind in kinds:
        r = bcml.compare(kind(h1), kind(h2), kind(y), ci=None)
        assert_same(r, want)
        base = S.compatibility_report(h1, h2, y)
        for c in range(4):
            assert_same(r["per_class"][c], base["per_class"][c])
        assert r["counts"] == base["counts"]
    assert bcml.compare(h1, h2, y, ci=None)["btc"] == S.trust_compatibility_score(h1, h2, y)


def test_compare_with_pandas():
    from conftest import need
    pd = need("pandas")   # optional for users; .ci/run installs it
    h1, h2, y = labels(2, 500, 3)
    r = bcml.compare(pd.Series(h1), pd.Series(h2), pd.Series(y), groups=pd.Series(y % 2), ci=0.9, n_boot=50,
                     seed=1)
    assert_same(r, ref_scores(h1, h2, y))
    df = r.to_frame()
    assert list(df["scope"]) == ["overall"] + ["class"] * 3 + ["group"] * 2
    assert df.loc[0, "btc"] == r["btc"] and df.loc[0, "btc_lo"] == r["ci"]["btc"][0]


def test_proba_1d_binary_and_torch(torch):
    h1, h2, y = labels(3, 400, 2)
    rng = np.random.default_rng(3)
    q1, q2 = rng.random(400), rng.random(400)
    r = bcml.compare(h1, h2, y, h1_proba=torch.tensor(q1), h2_proba=q2, ci=None)
    assert r["prob_churn"] == pytest.approx(np.abs(q1 - q2).mean(), rel=1e-12)
    reg = (h1 == y) & (h2 != y)
    conf = np.where(h2[reg] == 1, q2[reg], 1 - q2[reg])
    assert r["regressed_h2_confidence"] == pytest.approx(conf.mean(), rel=1e-12)
    r = bcml.compare(h1, h2, y, h2_proba=q2, ci=None)
    assert r["prob_churn"] is None and r["regressed_h1_confidence"] is None
    assert r["regressed_h2_confidence"] == pytest.approx(conf.mean(), rel=1e-12)


# ---- cohorts ----------------------------------------------------------------------------------
def test_groups_every_score_per_cohort_and_ranking():
    h1, h2, y = labels(4, 4000, 3)
    rng = np.random.default_rng(4)
    g = rng.choice(np.array(["a", "b", "c", "d"]), 4000, p=[.5, .3, .195, .005])
    # cohort b is hurt: h2 is made wrong on a share of its samples h1 gets right
    hurt = (g == "b") & (h1 == y) & (rng.random(4000) < 0.3)
    h2 = np.where(hurt, (y + 1) % 3, h2)
    r = bcml.compare(h1, h2, y, groups=g, ci=None)
    by = {e["group"]: e for e in r["per_group"]}
    assert sorted(by) == ["a", "b", "c", "d"]
    for name, e in by.items():
        m = g == name
        assert e["n"] == m.sum()
        assert_same(e, ref_scores(h1[m], h2[m], y[m]))
        assert e["btc_drop"] == pytest.approx(1 - e["btc"])
    assert not by["d"]["ranked"] and by["d"]["n"] < 30
    ranked = sorted((e for e in by.values() if e["ranked"]), key=lambda e: -e["nfr"])
    assert r["ranking"] == [e["group"] for e in ranked] and r["ranking"][0] == "b"
    assert "d" not in r["ranking"]
    assert bcml.compare(h1, h2, y, groups=g, ci=None, min_group_size=0)["ranking"].count("d") == 1
    # compatibility_report gains the same
    r2 = S.compatibility_report(h1, h2, y, groups=g)
    assert [{k: e[k] for k in e2} for e, e2 in zip(r["per_group"], r2["per_group"])] == r2["per_group"]
    assert r2["ranking"] == r["ranking"]
    assert "cohorts" in repr(r2) and "too small to rank" in repr(r2)


def test_groups_as_masks_may_overlap_and_int_labels():
    h1, h2, y = labels(5, 1000, 2)
    age = np.random.default_rng(5).integers(18, 90, 1000)
    masks = {"elderly": age >= 65, "adult": age >= 30, "none": np.zeros(1000, bool)}
    r = bcml.compare(h1, h2, y, groups=masks, ci=0.95, n_boot=100, seed=0)
    by = {e["group"]: e for e in r["per_group"]}
    for name, m in masks.items():
        assert by[name]["n"] == m.sum()
        if m.any():
            assert_same(by[name], ref_scores(h1[m], h2[m], y[m]))
    assert math.isnan(by["none"]["btc"]) and not by["none"]["ranked"]
    r = bcml.compare(h1, h2, y, groups=age // 30, ci=None)
    assert [e["group"] for e in r["per_group"]] == ["0", "1", "2"]


# ---- bootstrap --------------------------------------------------------------------------------
def _binom_pmf(n, p):
    k = np.arange(n + 1)
    logc = np.array([math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) for i in k])
    with np.errstate(divide="ignore"):
        return np.exp(logc + k * np.log(p) + (n - k) * np.log1p(-p))


@pytest.mark.parametrize("n,p", [(1_000_000, 0.3), (100_000, 0.999), (5000, 0.01), (40, 0.5), (7, 0.2)])
def test_binomial_draws_follow_the_exact_distribution(n, p):
    # a table of two cells is one binomial: compare the draws' distribution to the exact pmf
    c1 = round(p * 1_000_000)
    tab = np.array([[c1, 1_000_000 - c1]]) if n == 1_000_000 else None
    if tab is None:  # counts with the ratio p and total n
        c1 = round(p * n)
        tab = np.array([[c1, n - c1]])
        p = c1 / n
    else:
        p = c1 / 1_000_000
    N = 20000
    x = _core.bootstrap_tables(tab, N, 7)[0]
    assert (x.sum(axis=1) == n).all()
    k = x[:, 0]
    pmf = _binom_pmf(n, p)
    mean, var = n * p, n * p * (1 - p)
    assert abs(k.mean() - mean) < 5 * math.sqrt(var / N) + 1e-12
    assert abs(k.var() / var - 1) < 5 * math.sqrt(2 / N) + 0.02 * (var < 1)
    # chi-square over bins of the exact cdf: deciles of the distribution
    cdf = np.cumsum(pmf)
    edges = np.searchsorted(cdf, np.linspace(0.1, 0.9, 9))
    obs = np.bincount(np.searchsorted(edges, k, side="left"), minlength=10)
    probs = np.diff(np.concatenate([[0], cdf[edges], [1]]))
    keep = probs > 0
    chi2 = (((obs[keep] - N * probs[keep]) ** 2) / (N * probs[keep])).sum()
    assert chi2 < 40, (obs, N * probs)   # 9 degrees of freedom: p < 1e-5


def test_multinomial_moments_and_determinism():
    tab = np.array([[5, 0, 120, 3000, 1, 70000], [1, 1, 0, 0, 0, 2]])
    a = _core.bootstrap_tables(tab, 4000, 11, num_threads=1)
    b = _core.bootstrap_tables(tab, 4000, 11, num_threads=2)
    np.testing.assert_array_equal(a, b)          # independent of the thread count
    assert not np.array_equal(a, _core.bootstrap_tables(tab, 4000, 12))
    for s in range(2):
        n = tab[s].sum()
        p = tab[s] / n
        np.testing.assert_array_equal(a[s].sum(axis=1), n)
        assert (a[s][:, tab[s] == 0] == 0).all()
        assert (np.abs(a[s].mean(axis=0) - n * p) <= 5 * np.sqrt(n * p * (1 - p) / 4000) + 1e-9).all()
        cov = np.cov(a[s].T)
        want = n * (np.diag(p) - np.outer(p, p))
        np.testing.assert_allclose(cov, want, atol=0.1 * np.abs(want).max() + 1e-9)


def test_intervals_match_a_per_sample_numpy_bootstrap():
    h1, h2, y = labels(6, 3000, 3)
    r = bcml.compare(h1, h2, y, ci=0.9, n_boot=2000, seed=3)
    rng = np.random.default_rng(0)
    vals = {k: [] for k in SCORES}
    for _ in range(2000):
        i = rng.integers(0, 3000, 3000)
        for k, v in ref_scores(h1[i], h2[i], y[i]).items():
            vals[k].append(v)
    for k in SCORES:
        lo, hi = np.quantile(vals[k], [0.05, 0.95])
        width = hi - lo
        assert r["ci"][k][0] == pytest.approx(lo, abs=0.1 * width), k
        assert r["ci"][k][1] == pytest.approx(hi, abs=0.1 * width), k
        assert r["ci"][k][0] <= r[k] <= r["ci"][k][1]
    assert r["ci_settings"] == {"level": 0.9, "n_boot": 2000, "seed": 3}
    assert bcml.compare(h1, h2, y, ci=0.9, n_boot=100, seed=3)["ci"] == \
        bcml.compare(h1, h2, y, ci=0.9, n_boot=100, seed=3)["ci"]
    # per class: the interval of the class's score
    pc = r["per_class"][1]
    assert pc["ci"]["btc"][0] <= pc["btc"] <= pc["ci"]["btc"][1]
    seeded = bcml.compare(h1, h2, y, n_boot=10)
    assert isinstance(seeded["ci_settings"]["seed"], int)


def test_interval_coverage_simulation():
    """1,000 simulated data sets (fixed seed): the 95% intervals cover the true scores within
    2 points of 95%."""
    # cells per class (RR, RW, WR, WW same, WW different) of 3 classes
    p = np.array([[.20, .03, .03, .02, .01], [.18, .04, .03, .02, .01], [.25, .05, .06, .04, .03]])
    p = p / p.sum()
    rr, rw, wr, ww = p[:, 0].sum(), p[:, 1].sum(), p[:, 2].sum(), p[:, 3].sum() + p[:, 4].sum()
    truth = {"btc": rr / (rr + rw), "bec": ww / (rw + ww), "bec_h1": ww / (wr + ww), "nfr": rw, "pfr": wr,
             "nfi": rw / (rw + ww), "churn": rw + wr + p[:, 4].sum(), "h1_accuracy": rr + rw,
             "h2_accuracy": rr + wr}
    rng = np.random.default_rng(20261206)
    n, sets = 2000, 1000
    # labels of each cell: y = class, h1, h2 chosen to land in the cell
    cell_labels = []
    for c in range(3):
        o, q = (c + 1) % 3, (c + 2) % 3
        cell_labels += [(c, c, c), (c, c, o), (c, o, c), (c, o, o), (c, o, q)]
    cell_labels = np.array(cell_labels)
    covered = {k: 0 for k in truth}
    for s in range(sets):
        counts = rng.multinomial(n, p.reshape(-1))
        lab = np.repeat(cell_labels, counts, axis=0)
        r = S.compatibility_report(lab[:, 1], lab[:, 2], lab[:, 0], ci=0.95, n_boot=500, seed=s)
        for k, v in truth.items():
            lo, hi = r["ci"][k]
            covered[k] += lo <= v <= hi
    for k in truth:
        assert 93.0 <= 100 * covered[k] / sets <= 97.0, (k, covered[k])


# ---- McNemar ----------------------------------------------------------------------------------
def _mcnemar_exact(b, c):
    m, k = b + c, min(b, c)
    if m == 0:
        return 1.0
    tail, term = 0, 1            # sum of C(m, j), j <= k, exactly
    for j in range(k + 1):
        tail += term
        term = term * (m - j) // (j + 1)
    assert term == math.comb(m, k + 1)
    return float(min(Fraction(1), Fraction(2 * tail, 2 ** m)))


@pytest.mark.parametrize("b,c", [(0, 0), (0, 1), (3, 2), (10, 0), (7, 20), (100, 130), (2500, 2400),
                                 (40000, 40700)])
def test_mcnemar_exact(b, c):
    from bcml._compare import mcnemar_exact
    assert mcnemar_exact(b, c) == pytest.approx(_mcnemar_exact(b, c), rel=1e-9, abs=1e-300)
    assert mcnemar_exact(b, c) == mcnemar_exact(c, b)
    try:
        import scipy.stats
    except ImportError:
        if CI:   # scikit-learn (the test extra) brings scipy
            raise
        return
    if b + c:
        assert mcnemar_exact(b, c) == pytest.approx(scipy.stats.binomtest(b, b + c).pvalue, rel=1e-9)


def test_mcnemar_in_reports():
    h1, h2, y = labels(7, 2000, 3, 0.7, 0.8)
    r = bcml.compare(h1, h2, y, ci=None, groups=y)
    b, c = int(((h1 == y) & (h2 != y)).sum()), int(((h1 != y) & (h2 == y)).sum())
    assert r["mcnemar_pvalue"] == pytest.approx(_mcnemar_exact(b, c), rel=1e-9)
    assert r["mcnemar_pvalue"] < 1e-6      # h2 is much better: a real difference
    m = y == 1
    b, c = int(((h1 == y) & (h2 != y) & m).sum()), int(((h1 != y) & (h2 == y) & m).sum())
    assert r["per_group"][1]["mcnemar_pvalue"] == pytest.approx(_mcnemar_exact(b, c), rel=1e-9)
    assert "McNemar" in repr(S.compatibility_report(h1, h2, y))


# ---- seed_baseline ----------------------------------------------------------------------------
def test_seed_baseline_with_predictions_and_models():
    rng = np.random.default_rng(8)
    X = rng.normal(size=(300, 4)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)

    def preds(seed):   # a deterministic "training": the label, flipped on a seed's own samples
        flip = np.random.default_rng(seed).random(300) < 0.1
        return np.where(flip, 1 - y, y)

    out = bcml.seed_baseline(preds, X, y, seeds=(0, 1, 2))
    assert out["seeds"] == [0, 1, 2] and len(out["pairs"]) == 6
    for pair in out["pairs"]:
        assert_same(pair, ref_scores(preds(pair["h1_seed"]), preds(pair["h2_seed"]), y))
    for k in ("btc", "bec", "nfr"):
        v = [pair[k] for pair in out["pairs"]]
        assert out[k]["mean"] == pytest.approx(np.mean(v)) and out[k]["min"] == min(v) and out[k]["max"] == max(v)

    class Model:   # an object with predict
        def __init__(self, seed):
            self.seed = seed

        def predict(self, X_):
            return preds(self.seed)
    assert bcml.seed_baseline(Model, X, y, seeds=(0, 1, 2))["pairs"] == out["pairs"]

    def logits(seed):   # a callable giving logits (as a bcml model without the triple)
        p = preds(seed)
        return lambda X_: bcml.tensor(np.stack([1.0 - p, p], axis=1).astype(np.float32))
    assert bcml.seed_baseline(logits, X, y, seeds=(0, 1, 2))["pairs"] == out["pairs"]

    def bcml_model(seed):
        bcml.manual_seed(seed)
        return bcml.models.LogisticRegression(4, 2)
    res = bcml.seed_baseline(bcml_model, bcml.tensor(X), y, seeds=(0, 1))
    m0, m1 = bcml_model(0), bcml_model(1)
    with bcml.no_grad():
        p0, p1 = m0(bcml.tensor(X))[0].numpy().argmax(1), m1(bcml.tensor(X))[0].numpy().argmax(1)
    assert_same(res["pairs"][0], ref_scores(p0, p1, y))
    # X as NumPy (float64 too) reaches a bcml model as a float32 tensor; a binary model's one
    # sigmoid output ((n, 1) or (n,)) is labelled 1 from 0.5 on
    assert bcml.seed_baseline(bcml_model, np.asarray(X, np.float64), y, seeds=(0, 1))["pairs"] == res["pairs"]

    class Flat(bcml.nn.Module):
        def __init__(self, seed):
            super().__init__()
            bcml.manual_seed(seed)
            self.lin = bcml.nn.Linear(4, 1)

        def forward(self, x):
            return bcml.sigmoid(self.lin(x)).reshape(-1)
    res1 = bcml.seed_baseline(Flat, X, y, seeds=(0, 1))
    with bcml.no_grad():
        q0, q1 = [(Flat(s)(bcml.tensor(np.asarray(X, np.float32))).numpy() >= 0.5).astype(int) for s in (0, 1)]
    assert_same(res1["pairs"][0], ref_scores(q0, q1, y))


# ---- export -----------------------------------------------------------------------------------
def test_to_dict_to_json_save_html(tmp_path):
    h1, h2, y = labels(9, 600, 3)
    g = np.where(np.arange(600) < 300, "x", "y<&>")
    r = bcml.compare(h1, h2, y, groups=g, class_names=["cat", "dog", "bird"], ci=0.95, n_boot=50, seed=2,
                     h1_proba=np.full((600, 3), 1 / 3), h2_proba=np.eye(3)[h2])
    d = r.to_dict()
    assert type(d) is dict and set(d) == set(r)
    for key in ("btc", "bec", "bec_h1", "nfr", "pfr", "nfi", "churn", "h1_accuracy", "h2_accuracy", "n",
                "num_classes", "counts", "per_class", "mcnemar_pvalue", "flip_matrix", "prob_churn",
                "regressed_h2_confidence", "regressed_h1_confidence", "negative_flip_ids",
                "positive_flip_ids", "per_group", "ranking", "min_group_size", "ci", "ci_settings"):
        assert key in d, key
    assert isinstance(d["flip_matrix"], list) and np.array_equal(np.array(d["flip_matrix"]), r["flip_matrix"])
    back = json.loads(r.to_json(indent=1))
    assert back["btc"] == r["btc"] and back["per_group"][1]["group"] == "y<&>"
    assert back["ci"]["nfr"] == r["ci"]["nfr"]
    assert r["prob_churn"] == pytest.approx(2 / 3)
    path = r.save_html(str(tmp_path / "r.html"))
    text = open(path, encoding="utf-8").read()
    assert text.startswith("<!DOCTYPE html>") and "y&lt;&amp;&gt;" in text and "<table>" in text
    assert "%.4f" % r["btc"] in text and "true class bird" in text
    # nan becomes null in JSON
    r = bcml.compare([0, 0], [0, 0], [0, 0], ci=None)
    assert json.loads(r.to_json())["bec"] is None and math.isnan(r.to_dict()["bec"])


# ---- bad inputs -------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs,exc,arg", [
    ({"ci": 1.0}, ValueError, "ci"), ({"ci": "0.9"}, TypeError, "ci"), ({"n_boot": 0}, ValueError, "n_boot"),
    ({"n_boot": 2.5}, TypeError, "n_boot"), ({"seed": -1}, ValueError, "seed"), ({"seed": "a"}, TypeError, "seed"),
    ({"min_group_size": -1}, ValueError, "min_group_size"), ({"groups": [0, 1]}, ValueError, "groups"),
    ({"groups": 3}, TypeError, "groups"), ({"groups": {"a": [1, 0, 1, 0]}}, TypeError, "groups"),
    ({"groups": {"a": np.ones(3, bool)}}, ValueError, "groups"), ({"groups": [0.5, np.nan, 1, 1]}, ValueError, "groups"),
    ({"h1_proba": np.ones((4, 2))}, ValueError, "h1_proba"), ({"h2_proba": np.full((4, 3), .5)}, ValueError, "h2_proba"),
    ({"h1_proba": "x"}, TypeError, "h1_proba"), ({"h2_proba": np.ones((3, 3)) / 3}, ValueError, "h2_proba"),
    ({"ids": [1, 2]}, ValueError, "ids"), ({"class_names": "ab"}, TypeError, "class_names"),
])
def test_bad_arguments_name_the_argument(kwargs, exc, arg):
    with pytest.raises(exc, match=arg):
        bcml.compare([0, 1, 2, 1], [0, 1, 1, 1], [0, 1, 2, 2], **kwargs)


@pytest.mark.parametrize("args,exc,arg", [
    (([0, 1], [0, 1, 1], [0, 1]), ValueError, "h2_pred"), ((["a", "b"], [0, 1], [0, 1]), TypeError, "h1_pred"),
    (([0, -1], [0, 1], [0, 1]), ValueError, "h1_pred"), (([0, 1], [0, 1.5], [0, 1]), ValueError, "h2_pred"),
    (([0, 1], [0, 1], [[0, 1]]), ValueError, "y"), (([], [], []), ValueError, "empty"),
])
def test_bad_labels_name_the_argument(args, exc, arg):
    with pytest.raises(exc, match=arg):
        bcml.compare(*args)


def test_seed_baseline_bad_inputs():
    y = np.array([0, 1, 1])
    with pytest.raises(TypeError, match="train_fn"):
        bcml.seed_baseline(5, None, y)
    with pytest.raises(ValueError, match="seeds"):
        bcml.seed_baseline(lambda s: y, None, y, seeds=(1,))
    with pytest.raises(ValueError, match="seeds"):
        bcml.seed_baseline(lambda s: y, None, y, seeds=(1, 1))
    with pytest.raises(TypeError, match="seeds"):
        bcml.seed_baseline(lambda s: y, None, y, seeds=5)
    with pytest.raises(ValueError, match=r"train_fn\(0\)"):
        bcml.seed_baseline(lambda s: y[:2] if s == 0 else y, None, y, seeds=(0, 1))


# ---- the widget without models ----------------------------------------------------------------
def test_model_comparison_from_predictions_and_report(tmp_path):
    from conftest import need
    need("anywidget")
    from bcml import _engine
    from bcml.helpers.training import _predict_pair
    from bcml.helpers.training import evaluate_model_performance_and_compatibility_on_dataset as evaluate
    from bcml.metrics import model_accuracy
    from bcml.widget import ModelComparison
    from test_sweep import _setup
    h1, h2, tr, te = _setup()
    l1, l2, y, ids, C = _predict_pair(h1, h2, _engine.as_dataset(te, "dataset"), None)
    want = evaluate(h1, h2, te)
    w = ModelComparison.from_predictions(l1, l2, y, ids=ids, class_names=["benign", "malignant"])
    assert w.evaluation == want       # the same view as the widget made from the models
    assert w.h1_performance == pytest.approx(model_accuracy(h1, te)) and w.kind == "comparison"
    assert w.class_names == {"0": "benign", "1": "malignant"} and w.h1 is None
    r = bcml.compare(l1.tolist(), l2, y, ids=ids, class_names=["b", "m"], ci=None)
    w2 = ModelComparison.from_report(r)
    assert w2.evaluation == want and w2.class_names == {"0": "b", "1": "m"} and w2.report is r
    rows = w2.request("page", index=0, filter={"region": "regress"}, page=0, page_size=100)[0]["rows"]
    assert sorted(row["instance_id"] for row in rows) == sorted(r["negative_flip_ids"])
    out = w2.save_html(str(tmp_path / "w.html"))
    assert os.path.getsize(out) > 1000
    # row indices as ids without ids=
    w3 = ModelComparison.from_predictions(l1, l2, y)
    assert w3.evaluation["models_error_overlap"][0] == np.flatnonzero(l1 != y).tolist()
    with pytest.raises(ValueError, match="report"):
        ModelComparison.from_report(S.compatibility_report(l1, l2, y))
    with pytest.raises(TypeError, match="report"):
        ModelComparison.from_report({"btc": 1.0})
    with pytest.raises(ValueError, match="h2_pred"):
        ModelComparison.from_predictions(l1, l2[:3], y)
