"""The study of issue 11 item 5 (examples/why_compatibility_matters.py, which the notebook
notebooks/why-compatibility-matters.ipynb imports): the split's row counts, the protocol's
result structure on a tiny split, the summary's arithmetic, a tiny lambda_c sweep, and (slow)
the whole protocol against a scikit-learn reference trained on the very same splits."""
import importlib.util
import json
import math
import os
import types
import warnings
from pathlib import Path

import numpy as np
import pytest

import bcml
from conftest import SHARED_DATA, need, need_path

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "why_compatibility_matters.py"


@pytest.fixture(scope="module")
def study():
    spec = importlib.util.spec_from_file_location("why_compatibility_matters", EXAMPLE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture
def one_thread():
    before = bcml.get_num_threads()
    bcml.set_num_threads(1)
    yield
    bcml.set_num_threads(before)


# ---- the split -------------------------------------------------------------------------------------
@pytest.mark.parametrize("n, n_test, n_h1", [
    (1000, 200, 100),      # German credit: 5% of 800 = 40 rows, raised to 100
    (7214, 1443, 289),     # COMPAS: ceil(0.2 * 7214) = 1443, ceil(0.05 * 5771) = 289
    (48842, 9769, 1954),   # Adult (both files): ceil(0.05 * 39073) = 1954
    (300, 60, 100),
    (110, 22, 88),         # fewer training rows than 100: h1 gets them all
])
def test_split_row_counts(study, n, n_test, n_h1):
    train, test, h1 = study.split(n, seed=3)
    assert len(test) == n_test and len(train) == n - n_test and len(h1) == n_h1
    assert np.array_equal(np.sort(np.concatenate([train, test])), np.arange(n))  # a partition
    assert set(h1.tolist()) <= set(train.tolist())
    again = study.split(n, seed=3)
    other = study.split(n, seed=4)
    assert all(np.array_equal(a, b) for a, b in zip((train, test, h1), again))
    assert not np.array_equal(test, other[1])


def _toy_dataset(n=400, seed=0):
    """A Dataset-like record: two numeric columns (far from standardised) and a one-hot pair."""
    rng = np.random.default_rng(seed)
    num = rng.normal([5.0, -3.0], [2.0, 0.5], size=(n, 2))
    cat = rng.integers(0, 2, n)
    X = np.column_stack([num, cat == 0, cat == 1]).astype(np.float32)
    y = ((num[:, 0] - 5.0) / 2.0 + 0.7 * cat + rng.normal(0, 0.7, n) > 0.3).astype(np.int64)
    return types.SimpleNamespace(X=X, y=y, numeric_features=(0, 1), name="toy")


def test_split_standardises_numeric_columns_with_the_training_rows(study):
    ds = _toy_dataset()
    data = study.Split(ds, seed=1)
    train, test, h1 = data.rows
    raw = ds.X.astype(np.float64)
    mean, std = raw[train, :2].mean(axis=0), raw[train, :2].std(axis=0)
    np.testing.assert_allclose(data.X_train[:, :2], (raw[train, :2] - mean) / std, atol=1e-5)
    np.testing.assert_allclose(data.X_test[:, :2], (raw[test, :2] - mean) / std, atol=1e-5)
    np.testing.assert_allclose(data.X_h1[:, :2], (raw[h1, :2] - mean) / std, atol=1e-5)
    np.testing.assert_array_equal(data.X_train[:, 2:], ds.X[train, 2:])  # one-hot columns untouched
    np.testing.assert_array_equal(data.y_test, ds.y[test])
    np.testing.assert_array_equal(data.y_h1, ds.y[h1])


def test_settings_match_scikit_learn_defaults(study):
    lr = study.settings("logistic_regression", 800)
    assert lr["weight_decay"] == pytest.approx(1.0 / 800) and lr["batch_size"] == 800
    assert lr["epochs"] == study.LR_SETTINGS["steps"]  # one full batch per epoch
    mlp = study.settings("mlp", 5771)  # 29 batches of at most 200 rows
    assert mlp["batch_size"] == 200 and mlp["hidden"] == (100,) and mlp["lr"] == 1e-3
    assert mlp["weight_decay"] == pytest.approx(1e-4 / 200)
    assert mlp["epochs"] == max(20, math.ceil(500 / 29))
    assert study.settings("mlp", 100, min_steps=50)["epochs"] == 50
    with pytest.raises(ValueError, match="model_kind"):
        study.settings("svm", 10)


# ---- the protocol on a tiny split ----------------------------------------------------------------------
def test_run_update_result_on_a_tiny_split(study, one_thread):
    ds = study.load("german_credit")  # the copy bundled with bcml
    result, h1, h2, data = study.run_update(ds, "mlp", seed=0, max_rows=600, min_steps=30, return_models=True)
    assert set(result) == {"dataset", "model", "seed", "n_train", "n_h1", "n_test", "roc_auc_h1", "roc_auc_h2",
                           "accuracy_h1", "accuracy_h2", "btc", "bec", "majority_rate"}
    assert (result["dataset"], result["model"], result["seed"]) == ("german_credit", "mlp", 0)
    # 600 rows: 120 test rows, 480 training rows, of which 5% = 24 -> h1 gets 100
    assert (result["n_test"], result["n_train"], result["n_h1"]) == (120, 480, 100)
    assert data.X_h1.shape == (100, ds.X.shape[1])
    # the scores, recomputed from the two models' probabilities with NumPy
    with bcml.no_grad():
        p1 = h1(bcml.from_numpy(data.X_test)).numpy().reshape(-1)
        p2 = h2(bcml.from_numpy(data.X_test)).numpy().reshape(-1)
    y = data.y_test
    r1, r2 = (p1 >= 0.5) == y, (p2 >= 0.5) == y
    assert result["accuracy_h1"] == pytest.approx(r1.mean()) and result["accuracy_h2"] == pytest.approx(r2.mean())
    assert result["btc"] == pytest.approx((r1 & r2).sum() / r1.sum())
    assert result["bec"] == pytest.approx((~r1 & ~r2).sum() / (~r2).sum())
    assert result["majority_rate"] == pytest.approx(max(y.mean(), 1 - y.mean()))
    pos, neg = p2[y == 1], p2[y == 0]
    auc = ((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()) / (pos.size * neg.size)
    assert result["roc_auc_h2"] == pytest.approx(auc)


@pytest.mark.slow
def test_cohorts_report_and_seed_noise_on_a_tiny_split(study, one_thread):
    """Who the update hurts: the cohorts come from the raw columns of the test rows (age bands in
    years, each sex= / race= column), the report's scores per cohort are NumPy's on the two
    models' labels, and seed_noise scores h2 retrained with each seed against each other."""
    ds, raw = study.load("adult"), study.load("adult", standardize=False)
    assert np.array_equal(ds.y, raw.y) and ds.X.shape == raw.X.shape
    report = study.cohort_report(ds, raw, "logistic_regression", seed=1, max_rows=1500, min_steps=20, n_boot=200)
    result, h1, h2, data = study.run_update(ds, "logistic_regression", seed=1, max_rows=1500, min_steps=20,
                                            return_models=True)
    # the test rows, found in the raw data set by their labels' and one-hot columns' agreement
    np.testing.assert_array_equal(raw.y[data.test_index], data.y_test)
    names = list(raw.feature_names)
    age = raw.X[data.test_index, names.index("age")]
    assert age.min() >= 17 and age.max() <= 90   # years, not standardised
    with bcml.no_grad():
        l1 = (h1(bcml.from_numpy(data.X_test)).numpy().reshape(-1) >= 0.5)
        l2 = (h2(bcml.from_numpy(data.X_test)).numpy().reshape(-1) >= 0.5)
    y = data.y_test
    r1, r2 = l1 == y, l2 == y
    assert report["n"] == len(y) == 300 and report["nfr"] == pytest.approx(np.mean(r1 & ~r2))
    assert report["btc"] == pytest.approx(result["btc"]) and report["bec"] == pytest.approx(result["bec"])
    masks = {"age < 30": age < 30, "age 30-44": (age >= 30) & (age < 45), "age 45-64": (age >= 45) & (age < 65),
             "age >= 65": age >= 65,
             "Female": raw.X[data.test_index, names.index("sex=Female")] == 1,
             "White": raw.X[data.test_index, names.index("race=White")] == 1}
    groups = {g["group"]: g for g in report["per_group"]}
    assert len(groups) == 4 + 2 + 5   # age bands, sex, race
    for name, m in masks.items():
        assert groups[name]["n"] == m.sum(), name
        assert groups[name]["nfr"] == pytest.approx(np.mean((r1 & ~r2)[m]) if m.any() else float("nan"),
                                                    nan_ok=True), name
    assert set(report["ranking"]) == {g for g, e in groups.items() if e["n"] >= 30}
    table = study.cohort_table(report)
    assert table.count("\n") == 1 + len(groups) and "not ranked" in table

    noise = study.seed_noise(ds, "logistic_regression", 1, seeds=(0, 1), max_rows=1500, min_steps=20)
    split = study.Split(ds, 1, max_rows=1500)
    preds = []
    for s in (0, 1):
        m = study.fit("logistic_regression", split.X_train, split.y_train, 1000 * s + 2, 20)
        with bcml.no_grad():
            preds.append(m(bcml.from_numpy(split.X_test)).numpy().reshape(-1) >= 0.5)
    ok0, ok1 = preds[0] == split.y_test, preds[1] == split.y_test
    assert [p["h1_seed"] for p in noise["pairs"]] == [0, 1]
    assert noise["pairs"][0]["nfr"] == pytest.approx(np.mean(ok0 & ~ok1))
    assert noise["pairs"][1]["nfr"] == pytest.approx(np.mean(ok1 & ~ok0))


def test_loss_comparison_on_a_tiny_split(study, tmp_path, one_thread):
    """The newer losses beside BCML's on one split: at lambda_c = 0 every loss is plain
    cross-entropy, so all three train the same h2 (the same points); above it they differ; each
    row's NFR and accuracy are those of the point's evaluation file (h1's and h2's error ids)."""
    ds = study.load("german_credit")
    rows = study.run_loss_comparison(ds, "logistic_regression", 0, tmp_path, lambda_c_stepsize=1.0, max_rows=600,
                                     min_steps=30)
    assert [(r["loss"], r["lambda_c"]) for r in rows] == [(name, lam) for name, _ in study.LOSS_FAMILIES
                                                         for lam in (0.0, 1.0)]
    at0 = [{k: v for k, v in r.items() if k != "loss"} for r in rows if r["lambda_c"] == 0.0]
    assert at0[0] == at0[1] == at0[2]
    at1 = [(r["btc"], r["nfr"]) for r in rows if r["lambda_c"] == 1.0]
    assert at1[0] != at1[1] and at1[0] != at1[2]
    ev = json.load(open(tmp_path / "german_credit-logistic_regression-0-loss1" / "5-evaluation-data.json"))
    h1_ids, h2_ids, both = (set(x) for x in ev["models_error_overlap"])
    assert both == h1_ids & h2_ids and ev["lambda_c"] == 1.0
    r = rows[3]   # focal distillation, lambda_c = 1
    assert r["nfr"] == pytest.approx(len(h2_ids - h1_ids) / 120) and r["accuracy"] == pytest.approx(1 - len(h2_ids) / 120)
    assert "| focal distillation | 1 |" in study.loss_table(rows)


def test_summarise_gives_mean_and_standard_error(study):
    rows = [{"dataset": "a", "model": "m", "btc": v, "bec": w} for v, w in ((0.5, 0.1), (0.7, None), (0.9, 0.3))]
    rows.append({"dataset": "b", "model": "m", "btc": 0.4, "bec": 0.2})
    s = study.summarise(rows, columns=("btc", "bec"))
    assert [(r["dataset"], r["n"]) for r in s] == [("a", 3), ("b", 1)]
    assert s[0]["btc"] == pytest.approx(0.7) and s[0]["btc_se"] == pytest.approx(0.2 / math.sqrt(3))
    assert s[0]["bec"] == pytest.approx(0.2) and s[0]["bec_se"] == pytest.approx(math.sqrt(0.02) / math.sqrt(2))
    assert s[1]["btc"] == 0.4 and s[1]["btc_se"] == 0.0
    table = study.update_table([dict(s[0], roc_auc_h1=0.6, roc_auc_h1_se=0.01, roc_auc_h2=0.7, roc_auc_h2_se=0.02,
                                     accuracy_h1=0.6, accuracy_h1_se=0, accuracy_h2=0.7, accuracy_h2_se=0)])
    assert "| a | m | 3 | 0.600 ± 0.010 | 0.700 ± 0.020 |" in table and "0.700 ± 0.115" in table


def test_run_sweep_on_a_tiny_split(study, tmp_path, one_thread):
    """Two lambda_c (0 and 1), both loss kinds: the rows, the sweep's files; lambda_c = 0 is the
    plain update of run_update (same initialisation, shuffles and steps), for both kinds."""
    ds = study.load("german_credit")
    rows = study.run_sweep(ds, "logistic_regression", 1, tmp_path / "sweep", lambda_c_stepsize=1.0,
                           max_rows=400, min_steps=40)
    assert [(r["lambda_c"], r["kind"]) for r in rows] == [(0.0, "new-error"), (0.0, "strict-imitation"),
                                                         (1.0, "new-error"), (1.0, "strict-imitation")]
    for r in rows:
        assert set(r) >= {"roc_auc", "accuracy", "btc", "bec", "roc_auc_h1", "accuracy_h1"}
        assert all(0.0 <= r[k] <= 1.0 for k in ("roc_auc", "accuracy", "btc", "bec"))
    files = set(os.listdir(tmp_path / "sweep"))
    assert {"sweep_settings.json", "sweep_summary.json"} <= files
    assert {"%d-evaluation-data.json" % i for i in range(8)} <= files
    with open(tmp_path / "sweep" / "sweep_summary.json") as f:
        summary = json.load(f)
    test_rows = [r for r in summary["data"] if r["testing"]]
    assert [r["performance"] for r in test_rows] == pytest.approx([r["roc_auc"] for r in rows])
    plain = study.run_update(ds, "logistic_regression", 1, max_rows=400, min_steps=40)
    n_test = plain["n_test"]
    for r in rows[:2]:
        assert abs(r["accuracy"] - plain["accuracy_h2"]) <= 1.0 / n_test + 1e-12
        assert r["roc_auc_h1"] == pytest.approx(plain["roc_auc_h1"])


# ---- the whole protocol against scikit-learn ---------------------------------------------------------
def _sklearn_model(study, kind, n_rows, seed):
    """scikit-learn's model with the hyper-parameters of bcml's training (study.settings)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    if kind == "logistic_regression":
        return LogisticRegression(C=study.LR_SETTINGS["C"], max_iter=5000)
    s = study.settings(kind, n_rows)
    # every epoch runs: no stop on a training-loss plateau (bcml runs s["epochs"] epochs)
    return MLPClassifier(hidden_layer_sizes=s["hidden"], activation="relu", solver="adam",
                         learning_rate_init=s["lr"], alpha=study.MLP_SETTINGS["alpha"], batch_size=s["batch_size"],
                         max_iter=s["epochs"], tol=0.0, n_iter_no_change=s["epochs"] + 1, shuffle=True,
                         random_state=seed)


def _sklearn_update(study, data, kind, seed):
    """The protocol of study.run_update with scikit-learn models on the same Split, scored with
    sklearn.metrics.roc_auc_score and NumPy."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.metrics import roc_auc_score
    s1, s2 = study._seeds(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # max_iter epochs, as bcml's
        h1 = _sklearn_model(study, kind, len(data.y_h1), s1).fit(data.X_h1, data.y_h1)
        h2 = _sklearn_model(study, kind, len(data.y_train), s2).fit(data.X_train, data.y_train)
    y = data.y_test
    r1, r2 = h1.predict(data.X_test) == y, h2.predict(data.X_test) == y
    return {"dataset": data.name, "model": kind, "seed": seed,
            "roc_auc_h1": roc_auc_score(y, h1.predict_proba(data.X_test)[:, 1]),
            "roc_auc_h2": roc_auc_score(y, h2.predict_proba(data.X_test)[:, 1]),
            "accuracy_h1": r1.mean(), "accuracy_h2": r2.mean(),
            "btc": (r1 & r2).sum() / r1.sum(), "bec": (~r1 & ~r2).sum() / (~r2).sum()}


@pytest.mark.slow
def test_protocol_matches_scikit_learn_on_the_same_splits(study, one_thread):
    """5 seeds x COMPAS, German credit, Adult x LogisticRegression, MLP: the mean over the seeds of
    each cell's ROC AUC (h1 and h2) within 2 points of scikit-learn's, BTC and BEC within 3."""
    need("sklearn")
    from threadpoolctl import threadpool_limits
    need_path(SHARED_DATA / study.COMPAS_FILE)
    datasets, missing = study.load_all(data_dir=SHARED_DATA)
    assert not missing and list(datasets) == ["compas", "german_credit", "adult"]
    ours, ref = [], []
    with threadpool_limits(1):
        for name, ds in datasets.items():
            for kind in study.MODELS:
                for seed in study.SEEDS:
                    data = study.Split(ds, seed)
                    ours.append(study.run_update(data, kind, seed))
                    ref.append(_sklearn_update(study, data, kind, seed))
    assert [r["n_h1"] for r in ours[::10]] == [289, 100, 1954]
    a, b = study.summarise(ours), study.summarise(ref)
    report = "bcml:\n%s\nscikit-learn:\n%s" % (study.update_table(a), study.update_table(b))
    for x, y in zip(a, b):
        assert (x["dataset"], x["model"]) == (y["dataset"], y["model"])
        for column, tolerance in (("roc_auc_h1", 0.02), ("roc_auc_h2", 0.02), ("btc", 0.03), ("bec", 0.03)):
            assert abs(x[column] - y[column]) <= tolerance, (x["dataset"], x["model"], column, report)
        assert 0.6 < x["roc_auc_h2"] < 1.0 and x["btc"] > 0.8, report  # models that learnt something
