"""examples/german_credit_sklearn.py: two scikit-learn models on real German credit data, judged
by bcml.compare without bcml training anything. Its scores equal a NumPy recomputation from the
two models' predictions, its cohorts are those of the raw data file (age from column 13, sex
from column 9), its seed baseline is the mean over the seed pairs, and it writes the report."""
import importlib.util
import itertools
from pathlib import Path

import numpy as np
import pytest

from conftest import SHARED_DATA, need, need_path

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "german_credit_sklearn.py"


def _load():
    spec = importlib.util.spec_from_file_location("german_credit_sklearn", EXAMPLE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
def test_german_credit_example(tmp_path, capsys):
    need("sklearn")
    need_path(SHARED_DATA / "german.data")
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from bcml.datasets import load_german_credit
    out = tmp_path / "report.html"
    report, baseline = _load().main(["--data", str(SHARED_DATA), "--out", str(out), "--seeds", "3"])
    text = capsys.readouterr().out
    assert "cohorts, the most hurt first" in text and "retraining h2 with another seed alone" in text

    # the same fits, done here: the scores are NumPy's on their predictions
    d = load_german_credit(str(SHARED_DATA), standardize=False, seed=0)
    h1 = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(d.X_train, d.y_train)
    preds = {s: GradientBoostingClassifier(subsample=0.8, random_state=s).fit(d.X_train, d.y_train).predict(d.X_test)
             for s in range(3)}
    y, p1, p2 = d.y_test, h1.predict(d.X_test), preds[0]
    r1, r2 = p1 == y, p2 == y
    assert report["n"] == len(y) == 200
    assert report["h1_accuracy"] == r1.mean() and report["h2_accuracy"] == r2.mean()
    assert np.isclose(report["nfr"], np.mean(r1 & ~r2)) and np.isclose(report["pfr"], np.mean(~r1 & r2))
    assert np.isclose(report["btc"], np.sum(r1 & r2) / np.sum(r1))
    assert np.isclose(report["bec"], np.sum(~r1 & ~r2) / np.sum(~r2))
    lo, hi = report["ci"]["nfr"]
    assert lo <= report["nfr"] <= hi

    # cohorts from the raw file: column 9 is "personal status and sex" (A92/A95 female), 13 the age
    rows = [line.split() for line in (SHARED_DATA / "german.data").read_text().splitlines() if line.strip()]
    age = np.array([float(r[12]) for r in rows])[d.test_index]
    female = np.array([r[8] in ("A92", "A95") for r in rows])[d.test_index]
    want = {"age < 30": age < 30, "age 30-49": (age >= 30) & (age < 50), "age >= 50": age >= 50,
            "female": female, "male": ~female}
    groups = {g["group"]: g for g in report["per_group"]}
    for name, mask in want.items():
        assert groups[name]["n"] == mask.sum(), name
        assert np.isclose(groups[name]["nfr"], np.mean((r1 & ~r2)[mask])), name
    ranked = list(report["ranking"])
    assert "age >= 50" not in ranked and set(ranked) == {k for k, m in want.items() if m.sum() >= 30}

    # the seed baseline: every ordered pair of seeds, NFR averaged
    nfr = [np.mean((preds[s] == y) & (preds[t] != y)) for s, t in itertools.permutations(range(3), 2)]
    assert len(baseline["pairs"]) == 6 and np.isclose(baseline["nfr"]["mean"], np.mean(nfr))
    assert np.isclose(baseline["nfr"]["min"], min(nfr)) and np.isclose(baseline["nfr"]["max"], max(nfr))

    html = out.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html") and "female" in html
