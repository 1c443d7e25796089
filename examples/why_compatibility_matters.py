"""Why compatibility matters: the larger-training-set update of Bansal et al. (AAAI 2019) on
COMPAS, German credit and UCI Adult, with a logistic regression and an MLP.

Protocol (one seed): a seeded split puts 20% of the rows in a test set; h1 (the model the
users know) is trained on 5% of the remaining training rows (at least 100), h2 (the update)
on all of them. Reported on the test set: ROC AUC of h1 and h2, their accuracy, and h2's
backward trust compatibility (BTC: of the samples h1 got right, the share h2 gets right) and
backward error compatibility (BEC: of h2's errors, the share h1 made too). Over 5 seeds:
mean ± standard error. Then the lambda_c sweep of bcml.helpers.training.compatibility_sweep
(new-error and strict-imitation losses, lambda_c 0, 0.25, ..., 1): how much BTC and BEC the
losses win back, and at what cost in accuracy and ROC AUC.

    python examples/why_compatibility_matters.py                 # the update table, 5 seeds
    python examples/why_compatibility_matters.py --sweep         # and the lambda_c sweep table
    python examples/why_compatibility_matters.py --figure F.png  # the sweep and its trade-off figure
    python examples/why_compatibility_matters.py --quick         # 2 seeds, 2000 rows, fewer steps
    python examples/why_compatibility_matters.py --data DIR      # DIR holds compas-scores-two-years.csv

The notebook notebooks/why-compatibility-matters.ipynb imports these functions, and
tests/test_study.py checks them against scikit-learn on the very same splits (split()).
Adult and German credit are the copies bundled with bcml; COMPAS (not bundled) is looked for in
--data, $BCML_SHARED_DATA, ../shared/data beside the checkout and bcml's cache folder, and
downloaded with --download.
"""
import argparse
import json
import math
import os
import sys
from pathlib import Path

import numpy as np

import bcml
import bcml.nn.functional as F
from bcml.data import DataLoader
from bcml.datasets import DatasetNotFoundError, DownloadError, load_adult, load_compas, load_german_credit
from bcml.helpers.training import compatibility_scores, compatibility_sweep
from bcml.loss import (BCBinaryCrossEntropyLoss, BCCrossEntropyLoss, FocalDistillationLoss,
                       LogitDifferenceInhibitionLoss, StrictImitationBinaryCrossEntropyLoss,
                       StrictImitationCrossEntropyLoss)
from bcml.metrics import model_accuracy, model_roc_auc
from bcml.models import LogisticRegression, MLPClassifier

DATASETS = ("compas", "german_credit", "adult")
TITLES = {"compas": "COMPAS", "german_credit": "German credit", "adult": "Adult",
          "logistic_regression": "LogisticRegression", "mlp": "MLP"}
MODELS = ("logistic_regression", "mlp")
SEEDS = (0, 1, 2, 3, 4)
LAMBDA_STEP = 0.25  # lambda_c = 0, 0.25, 0.5, 0.75, 1
TEST_SHARE, H1_SHARE, H1_MIN_ROWS = 0.2, 0.05, 100
TEST_BATCH = 4096
COMPAS_FILE = "compas-scores-two-years.csv"
REPO_ROOT = Path(__file__).resolve().parents[1]

# ---- training settings, shared with the scikit-learn reference (tests/test_study.py) ----------
# Both models have one sigmoid output (bcml's binary models, as scikit-learn's binary
# classifiers), trained on the binary cross-entropy with Adam.
#: LogisticRegression: L2 weight decay 1 / (C n), which gives the minimum of scikit-learn's
#: LogisticRegression(C=1.0) on n rows (0.5 |w|^2 + C * summed log-loss, divided by C n);
#: mini-batches of min(2000, n) rows, at least LR_SETTINGS["steps"] optimizer steps.
LR_SETTINGS = {"C": 1.0, "lr": 0.02, "batch": 2000, "steps": 500}
#: MLP: scikit-learn's MLPClassifier defaults (one hidden layer of 100 ReLU units, Adam with
#: learning rate 1e-3, mini-batches of min(200, n) rows reshuffled every epoch, L2 alpha 1e-4,
#: which scikit-learn divides by the batch size), run for at least MLP_SETTINGS["epochs"]
#: epochs and MLP_SETTINGS["steps"] optimizer steps.
MLP_SETTINGS = {"hidden": (100,), "lr": 1e-3, "alpha": 1e-4, "batch": 200, "epochs": 20, "steps": 500}


def _epochs(n_rows, batch, min_epochs, min_steps):
    """Epochs of at least min_epochs and min_steps optimizer steps in all."""
    return max(min_epochs, -(-min_steps // -(-n_rows // batch)))


def settings(model_kind, n_rows, min_steps=None):
    """The training settings of a model of kind model_kind on n_rows rows: a dict with
    ``batch_size``, ``epochs``, ``lr``, ``weight_decay`` (and ``hidden`` for the MLP).
    min_steps overrides the least number of optimizer steps (quick runs)."""
    n_rows = int(n_rows)
    if model_kind == "logistic_regression":
        batch = min(LR_SETTINGS["batch"], n_rows)
        steps = LR_SETTINGS["steps"] if min_steps is None else int(min_steps)
        return {"batch_size": batch, "epochs": _epochs(n_rows, batch, 1, steps),
                "lr": LR_SETTINGS["lr"], "weight_decay": 1.0 / (LR_SETTINGS["C"] * n_rows)}
    if model_kind == "mlp":
        batch = min(MLP_SETTINGS["batch"], n_rows)
        steps = MLP_SETTINGS["steps"] if min_steps is None else int(min_steps)
        return {"batch_size": batch, "epochs": _epochs(n_rows, batch, MLP_SETTINGS["epochs"], steps),
                "lr": MLP_SETTINGS["lr"], "weight_decay": MLP_SETTINGS["alpha"] / batch,
                "hidden": MLP_SETTINGS["hidden"]}
    raise ValueError("model_kind must be one of %s, got %r" % (", ".join(MODELS), model_kind))


# ---- data -------------------------------------------------------------------------------------
def _compas_folders(data_dir):
    """Where COMPAS is looked for: data_dir when given, else $BCML_SHARED_DATA and
    ../shared/data beside the checkout."""
    if data_dir is not None:
        return [Path(data_dir)]
    folders = [os.environ.get("BCML_SHARED_DATA") or None, REPO_ROOT.parent / "shared" / "data"]
    return [Path(f) for f in folders if f is not None]


def load(name, data_dir=None, download=False, standardize=True):
    """The data set `name` (one of DATASETS) as a bcml.datasets.Dataset (all rows in X, y).

    Adult and German credit: the copies bundled with bcml (or data_dir when it holds the
    original files; download plays no part). COMPAS (not bundled): data_dir when given, else the first of
    $BCML_SHARED_DATA and ../shared/data beside the checkout that holds
    compas-scores-two-years.csv; then bcml's cache folder; then, with download, ProPublica's
    file. standardize=False: Adult's and German credit's numeric columns as they are (ages in
    years, for cohorts). Raises DatasetNotFoundError or DownloadError when it is found nowhere."""
    if name == "compas":
        folders = _compas_folders(data_dir)
        hit = next((f for f in folders if (f / COMPAS_FILE).is_file()), None)
        if hit is not None:
            return load_compas(hit)
        return load_compas(data_dir, download=download)
    if name in ("adult", "german_credit"):
        loader = load_adult if name == "adult" else load_german_credit
        files = ("adult.data", "adult.test") if name == "adult" else ("german.data",)
        if data_dir is not None and all((Path(data_dir) / f).is_file() for f in files):
            return loader(data_dir, standardize=standardize)
        return loader(standardize=standardize)  # the copy bundled with bcml (or one in bcml's cache folder)
    raise ValueError("name must be one of %s, got %r" % (", ".join(DATASETS), name))


def load_all(names=DATASETS, data_dir=None, download=False):
    """({name: Dataset} of the data sets load() finds, {name: the DatasetNotFoundError or
    DownloadError} of the others)."""
    found, missing = {}, {}
    for name in names:
        try:
            found[name] = load(name, data_dir, download)
        except (DatasetNotFoundError, DownloadError) as e:
            missing[name] = e
    return found, missing


def split(n_rows, seed, test_share=TEST_SHARE, h1_share=H1_SHARE, h1_min_rows=H1_MIN_ROWS):
    """The protocol's split of n_rows rows for seed: ``(train, test, h1)`` row indices (int64),
    test the first ceil(test_share * n) rows of a seeded permutation and train the rest, h1 the
    first max(h1_min_rows, ceil(h1_share * len(train))) rows of train (in permuted order)."""
    rng = np.random.default_rng(np.random.SeedSequence([20190127, int(seed)]))
    order = rng.permutation(int(n_rows)).astype(np.int64)
    n_test = int(math.ceil(test_share * n_rows))
    test, train_rows = order[:n_test], order[n_test:]
    n_h1 = min(len(train_rows), max(int(h1_min_rows), int(math.ceil(h1_share * len(train_rows)))))
    return train_rows, test, train_rows[:n_h1]


class Split:
    """One seed's data: ``X_train, y_train`` (h2's rows), ``X_h1, y_h1`` (h1's rows, a subset),
    ``X_test, y_test``; numeric columns standardised with the training rows' mean and standard
    deviation. ``rows`` holds the (train, test, h1) indices into the X split (the data set's X,
    or its subsample with max_rows); ``test_index`` the test rows' indices into the data set's X."""

    def __init__(self, dataset, seed, max_rows=None, **split_args):
        X, y = np.asarray(dataset.X, dtype=np.float32), np.asarray(dataset.y, dtype=np.int64)
        keep = np.arange(len(y))
        if max_rows is not None and len(y) > max_rows:  # quick runs: a seeded subsample
            keep = np.sort(np.random.default_rng(int(seed)).permutation(len(y))[:int(max_rows)])
            X, y = X[keep], y[keep]
        self.name, self.seed = getattr(dataset, "name", ""), int(seed)
        train_rows, test_rows, h1_rows = split(len(y), seed, **split_args)
        self.rows = (train_rows, test_rows, h1_rows)
        self.test_index = keep[test_rows]   # the test rows' indices into the data set's own X
        X = X.copy()
        num = list(getattr(dataset, "numeric_features", ()))
        if num:
            mean = X[train_rows][:, num].mean(axis=0)
            std = X[train_rows][:, num].std(axis=0)
            X[:, num] = (X[:, num] - mean) / np.where(std > 0, std, 1.0)
        self.X_train, self.y_train = X[train_rows], y[train_rows]
        self.X_test, self.y_test = X[test_rows], y[test_rows]
        self.X_h1, self.y_h1 = X[h1_rows], y[h1_rows]

    def test_loader(self):
        """The test set as a DataLoader (in order)."""
        return DataLoader(self.X_test, self.y_test, batch_size=TEST_BATCH)

    @property
    def n_features(self):
        return self.X_train.shape[1]

    def __repr__(self):
        return "Split(%s, seed=%d: train %d, h1 %d, test %d)" % (
            self.name, self.seed, len(self.y_train), len(self.y_h1), len(self.y_test))


# ---- models and training ------------------------------------------------------------------------
def make_model(model_kind, n_features, seed):
    """A freshly initialised bcml binary model (one sigmoid output: the probability of label
    1), its weights drawn from bcml's generator seeded with seed."""
    bcml.manual_seed(int(seed))
    if model_kind == "logistic_regression":
        return LogisticRegression(n_features, 1)
    s = settings(model_kind, 1)
    return MLPClassifier(n_features, 1, hidden_sizes=s["hidden"])


def loader(X, y, model_kind, seed, min_steps=None):
    """(training DataLoader, settings) of a model of kind model_kind on X, y: batches as
    settings() says, reshuffled every epoch from seed."""
    s = settings(model_kind, len(y), min_steps)
    return DataLoader(X, y, batch_size=s["batch_size"], shuffle=True, seed=int(seed)), s


def optimizer_kwargs(s):
    return {"lr": s["lr"], "weight_decay": s["weight_decay"]}


def fit(model_kind, X, y, seed, min_steps=None):
    """A bcml model of kind model_kind trained on X, y as settings() says: Adam on the binary
    cross-entropy of the model's probability, in a PyTorch-style loop."""
    return _train(make_model(model_kind, X.shape[1], seed), model_kind, X, y, seed, min_steps,
                  lambda out, target: F.binary_cross_entropy(out.reshape(-1), target.float()))


def _train(model, model_kind, X, y, seed, min_steps, loss_fn):
    """model trained on X, y as settings() says: Adam on loss_fn(model(x), target); in eval mode."""
    train_loader, s = loader(X, y, model_kind, seed, min_steps)
    optimizer = bcml.optim.Adam(model.parameters(), **optimizer_kwargs(s))
    model.train()
    for _epoch in range(s["epochs"]):
        for _ids, x, target in train_loader:
            optimizer.zero_grad()
            loss_fn(model(x), target).backward()
            optimizer.step()
    model.eval()
    return model


def _seeds(seed):
    """(h1's seed, h2's seed) of a protocol seed: distinct initialisations and shuffles."""
    return 1000 * int(seed) + 1, 1000 * int(seed) + 2


def run_update(dataset, model_kind, seed, max_rows=None, min_steps=None, return_models=False):
    """One seed of the protocol on dataset (a Dataset or a Split) with models of kind model_kind:
    a dict with the data set and model names, the seed, the row counts (n_train, n_h1, n_test),
    h1's and h2's test ROC AUC and accuracy (roc_auc_h1, roc_auc_h2, accuracy_h1, accuracy_h2)
    h2's BTC and BEC with respect to h1 on the test set, and the test set's majority-class rate
    (majority_rate: the accuracy of always answering its most frequent label). max_rows: a seeded subsample of
    the data set's rows first; min_steps: see settings() (both for quick runs). With
    return_models, returns (result, h1, h2, split)."""
    data = dataset if isinstance(dataset, Split) else Split(dataset, seed, max_rows=max_rows)
    s1, s2 = _seeds(seed)
    h1 = fit(model_kind, data.X_h1, data.y_h1, s1, min_steps)
    h2 = fit(model_kind, data.X_train, data.y_train, s2, min_steps)
    test = data.test_loader()
    btc, bec = compatibility_scores(h1, h2, test)
    result = {"dataset": data.name, "model": model_kind, "seed": int(seed),
              "n_train": len(data.y_train), "n_h1": len(data.y_h1), "n_test": len(data.y_test),
              "roc_auc_h1": model_roc_auc(h1, test), "roc_auc_h2": model_roc_auc(h2, test),
              "accuracy_h1": model_accuracy(h1, test), "accuracy_h2": model_accuracy(h2, test),
              "btc": btc, "bec": bec, "majority_rate": float(np.bincount(data.y_test).max() / len(data.y_test))}
    return (result, h1, h2, data) if return_models else result


def run_protocol(datasets, models=MODELS, seeds=SEEDS, max_rows=None, min_steps=None):
    """run_update for every data set ({name: Dataset}), model kind and seed: a list of dicts."""
    return [run_update(datasets[name], kind, seed, max_rows=max_rows, min_steps=min_steps)
            for name in datasets for kind in models for seed in seeds]


# ---- who the update hurts: cohorts, intervals, seed noise (bcml.compare, bcml.seed_baseline) ----
AGE_BANDS = ((None, 30, "age < 30"), (30, 45, "age 30-44"), (45, 65, "age 45-64"), (65, None, "age >= 65"))


def cohorts(raw, index):
    """{cohort name: boolean mask} of the rows `index` of `raw`, a data set loaded with
    standardize=False (ages in years): age bands, and each value of the one-hot columns sex=...
    and race=... (Adult; a data set without them gets only what it has)."""
    names = list(raw.feature_names)
    X = np.asarray(raw.X)[np.asarray(index)]
    out = {}
    if "age" in names:
        age = X[:, names.index("age")]
        for lo, hi, label in AGE_BANDS:
            out[label] = (age >= (lo if lo is not None else -np.inf)) & (age < (hi if hi is not None else np.inf))
    for prefix in ("sex=", "race="):
        for j, f in enumerate(names):
            if f.startswith(prefix):
                out[f[len(prefix):]] = X[:, j] > 0.5
    return out


def _labels_and_proba(model, X):
    """A binary model's test labels (probability >= 0.5, as bcml labels them) and (n, 2) probabilities."""
    with bcml.no_grad():
        p = model(bcml.from_numpy(np.ascontiguousarray(X, dtype=np.float32))).numpy().reshape(-1).astype(np.float64)
    return (p >= 0.5).astype(np.int64), np.stack([1.0 - p, p], axis=1)


def cohort_report(dataset, raw, model_kind, seed, max_rows=None, min_steps=None, n_boot=1000):
    """One seed of the protocol (run_update's h1 and h2), judged by bcml.compare on the test set:
    every score overall, per class and per cohort (cohorts(raw, ...)), with 95% bootstrap
    intervals; the cohorts of at least 30 test rows ranked, the most hurt first."""
    _result, h1, h2, data = run_update(dataset, model_kind, seed, max_rows=max_rows, min_steps=min_steps,
                                       return_models=True)
    l1, p1 = _labels_and_proba(h1, data.X_test)
    l2, p2 = _labels_and_proba(h2, data.X_test)
    return bcml.compare(l1, l2, data.y_test, h1_proba=p1, h2_proba=p2, groups=cohorts(raw, data.test_index),
                        class_names=list(getattr(dataset, "class_names", None) or ["0", "1"]),
                        ids=data.test_index, ci=0.95, n_boot=n_boot, seed=int(seed))


def seed_noise(dataset, model_kind, seed, seeds=SEEDS, max_rows=None, min_steps=None):
    """bcml.seed_baseline of h2 on one seed's split: h2 retrained on the same rows with each of
    `seeds` as its initialisation and shuffling seed; every ordered pair scored on the test set.
    The scores that seed noise alone produces, to read an update's against."""
    data = Split(dataset, seed, max_rows=max_rows)
    return bcml.seed_baseline(lambda s: fit(model_kind, data.X_train, data.y_train, 1000 * int(s) + 2, min_steps),
                              data.X_test, data.y_test, seeds=tuple(seeds))


def cohort_table(report, top=None):
    """The cohorts of a cohort_report as a Markdown table, the ranked (most hurt) first."""
    entries = {g["group"]: g for g in report["per_group"]}
    order = list(report["ranking"]) + [g for g in entries if g not in report["ranking"]]
    lines = ["| cohort | test rows | h1 accuracy | h2 accuracy | NFR (95% CI) | BTC (95% CI) | churn |",
             "|---|---|---|---|---|---|---|"]

    def ci(e, k):
        lo, hi = e["ci"][k]
        return "%.1f%% [%.1f, %.1f]" % (100 * e[k], 100 * lo, 100 * hi) if e[k] == e[k] else "-"
    for name in order[:top] if top else order:
        e = entries[name]
        small = "" if name in report["ranking"] else " (fewer than %d: not ranked)" % report["min_group_size"]
        lines.append("| %s%s | %d | %.3f | %.3f | %s | %s | %.1f%% |" % (
            name, small, e["n"], e["h1_accuracy"], e["h2_accuracy"], ci(e, "nfr"), ci(e, "btc"), 100 * e["churn"]))
    return "\n".join(lines)


# ---- the lambda_c sweep -------------------------------------------------------------------------
def run_sweep(dataset, model_kind, seed, folder, lambda_c_stepsize=LAMBDA_STEP, max_rows=None, min_steps=None,
              n_jobs=None):
    """The lambda_c sweep of one seed: h1 trained as in run_update, then
    bcml.helpers.training.compatibility_sweep trains a fresh h2 (the same initialisation and
    settings as run_update's h2) with BCBinaryCrossEntropyLoss (new error) and
    StrictImitationBinaryCrossEntropyLoss for every lambda_c of the grid, ROC AUC as its performance
    metric, and writes its files into folder. Returns a list of dicts, one per (lambda_c, loss
    kind) on the test set: lambda_c, kind, roc_auc, accuracy, btc, bec (and dataset, model, seed);
    plus h1's test ROC AUC and accuracy."""
    data = dataset if isinstance(dataset, Split) else Split(dataset, seed, max_rows=max_rows)
    s1, s2 = _seeds(seed)
    h1 = fit(model_kind, data.X_h1, data.y_h1, s1, min_steps)
    h2 = make_model(model_kind, data.n_features, s2)
    train_loader, s = loader(data.X_train, data.y_train, model_kind, s2, min_steps)
    test_loader = data.test_loader()
    os.makedirs(folder, exist_ok=True)
    compatibility_sweep(os.fspath(folder), s["epochs"], h1, h2, train_loader, test_loader, s["batch_size"], TEST_BATCH,
                        bcml.optim.Adam, optimizer_kwargs(s), BCBinaryCrossEntropyLoss,
                        StrictImitationBinaryCrossEntropyLoss,
                        performance_metric=model_roc_auc, lambda_c_stepsize=lambda_c_stepsize, seed=int(s2),
                        n_jobs=n_jobs, progress=False, overwrite=True)
    return read_sweep(folder, data.name, model_kind, seed, h1=h1, test=test_loader)


def run_sweeps(datasets, base_folder, models=MODELS, seeds=SEEDS, lambda_c_stepsize=LAMBDA_STEP, max_rows=None,
               min_steps=None):
    """run_sweep for every data set ({name: Dataset}), model kind and seed, each into
    base_folder/<data set>-<model>-<seed>: the list of all their rows."""
    rows = []
    for name in datasets:
        for kind in models:
            for seed in seeds:
                rows += run_sweep(datasets[name], kind, seed, sweep_folder(base_folder, name, kind, seed),
                                  lambda_c_stepsize=lambda_c_stepsize, max_rows=max_rows, min_steps=min_steps)
    return rows


def sweep_folder(base_folder, name, model_kind, seed):
    """Where run_sweeps writes the sweep of (data set, model kind, seed)."""
    return os.path.join(os.fspath(base_folder), "%s-%s-%d" % (name, model_kind, int(seed)))


def read_sweep(folder, dataset_name="", model_kind="", seed=0, h1=None, test=None):
    """The test-set rows of the sweep in folder (see run_sweep), read from its evaluation files."""
    with open(os.path.join(folder, "sweep_settings.json"), encoding="utf-8") as f:
        manifest = json.load(f)
    rows = []
    extra = {}
    if h1 is not None:
        extra = {"roc_auc_h1": model_roc_auc(h1, test), "accuracy_h1": model_accuracy(h1, test)}
    for k, lam in enumerate(manifest["lambdas"]):
        for kind_index, kind in enumerate(("new-error", "strict-imitation")):
            with open(os.path.join(folder, "%d-evaluation-data.json" % (4 * k + 2 * kind_index + 1)),
                      encoding="utf-8") as f:
                ev = json.load(f)
            h2_errors = len(ev["models_error_overlap"][1])
            rows.append(dict({"dataset": dataset_name, "model": model_kind, "seed": int(seed), "lambda_c": lam,
                              "kind": kind, "roc_auc": ev["h2_performance"],
                              "accuracy": 1.0 - h2_errors / ev["dataset_size"], "btc": ev["btc"],
                              "bec": ev["bec"]}, **extra))
    return rows


# ---- the newer compatibility losses: two logits per model ----------------------------------------
#: (name, new-error loss class) compared on the same splits: BCML's new-error loss and the two
#: positive-congruent losses (focal distillation, Yan et al. 2021; logit difference inhibition,
#: Zhao et al. 2022), each at its default settings. They need class logits, so the models here
#: have two outputs (softmax) instead of one sigmoid output.
LOSS_FAMILIES = (("new error (BCML)", BCCrossEntropyLoss),
                 ("focal distillation", FocalDistillationLoss),
                 ("logit difference inhibition", LogitDifferenceInhibitionLoss))


def make_classifier(model_kind, n_features, seed):
    """As make_model, with two logits (the (logits, softmax, log_softmax) triple) instead of one
    sigmoid output."""
    bcml.manual_seed(int(seed))
    if model_kind == "logistic_regression":
        return LogisticRegression(n_features, 2)
    return MLPClassifier(n_features, 2, hidden_sizes=settings(model_kind, 1)["hidden"])


def fit_classifier(model_kind, X, y, seed, min_steps=None):
    """As fit, for make_classifier's models: Adam on the cross-entropy of the two logits."""
    return _train(make_classifier(model_kind, X.shape[1], seed), model_kind, X, y, seed, min_steps,
                  lambda out, target: F.nll_loss(out[2], target))


def run_loss_comparison(dataset, model_kind, seed, base_folder, lambda_c_stepsize=0.5, max_rows=None,
                        min_steps=None, losses=LOSS_FAMILIES):
    """One seed's split, h1 and h2's initialisation as in run_sweep (two-logit models), and a
    compatibility_sweep for each loss family as its new-error loss (into base_folder/<i>). Returns
    one dict per (loss, lambda_c) on the test set: loss, lambda_c, accuracy, btc, bec, nfr (the
    share of test rows h1 gets right and h2 wrong)."""
    data = dataset if isinstance(dataset, Split) else Split(dataset, seed, max_rows=max_rows)
    s1, s2 = _seeds(seed)
    h1 = fit_classifier(model_kind, data.X_h1, data.y_h1, s1, min_steps)
    train_loader, s = loader(data.X_train, data.y_train, model_kind, s2, min_steps)
    rows = []
    for i, (name, loss_class) in enumerate(losses):
        folder = os.path.join(os.fspath(base_folder), "%s-%s-%d-loss%d" % (data.name, model_kind, int(seed), i))
        os.makedirs(folder, exist_ok=True)
        h2 = make_classifier(model_kind, data.n_features, s2)
        compatibility_sweep(folder, s["epochs"], h1, h2, train_loader, data.test_loader(), s["batch_size"],
                            TEST_BATCH, bcml.optim.Adam, optimizer_kwargs(s), loss_class,
                            StrictImitationCrossEntropyLoss, performance_metric=model_accuracy,
                            lambda_c_stepsize=lambda_c_stepsize, seed=int(s2), progress=False, overwrite=True)
        with open(os.path.join(folder, "sweep_settings.json"), encoding="utf-8") as f:
            lambdas = json.load(f)["lambdas"]
        for k, lam in enumerate(lambdas):
            # the new-error point's test-set evaluation (SPEC's file numbering, as read_sweep)
            with open(os.path.join(folder, "%d-evaluation-data.json" % (4 * k + 1)), encoding="utf-8") as f:
                ev = json.load(f)
            e1, e2, both = (len(ids) for ids in ev["models_error_overlap"])
            n = ev["dataset_size"]
            rows.append({"loss": name, "lambda_c": lam, "accuracy": 1.0 - e2 / n, "btc": ev["btc"],
                         "bec": ev["bec"], "nfr": (e2 - both) / n})
    return rows


def loss_table(rows):
    """run_loss_comparison's rows as a Markdown table."""
    lines = ["| loss | lambda_c | accuracy | BTC | BEC | NFR |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append("| %s | %g | %.4f | %.4f | %.4f | %.2f%% |" % (r["loss"], r["lambda_c"], r["accuracy"], r["btc"],
                                                                  r["bec"], 100 * r["nfr"]))
    return "\n".join(lines)


# ---- summaries ----------------------------------------------------------------------------------
UPDATE_COLUMNS = ("roc_auc_h1", "roc_auc_h2", "accuracy_h1", "accuracy_h2", "btc", "bec")
SWEEP_COLUMNS = ("roc_auc", "accuracy", "btc", "bec")


def summarise(rows, by=("dataset", "model"), columns=UPDATE_COLUMNS):
    """Rows grouped by the keys `by` (in first-seen order): a list of dicts holding the keys,
    ``n`` (the number of seeds) and for every column ``<column>`` (the mean over the group) and
    ``<column>_se`` (the standard error of the mean, std with ddof=1 / sqrt(n); 0 for n = 1).
    None values (an undefined score) are left out of their column's mean."""
    groups = {}
    for r in rows:
        groups.setdefault(tuple(r[k] for k in by), []).append(r)
    out = []
    for key, members in groups.items():
        s = dict(zip(by, key), n=len(members))
        for c in columns:
            v = np.array([m[c] for m in members if m.get(c) is not None], dtype=np.float64)
            s[c] = float(v.mean()) if v.size else float("nan")
            s[c + "_se"] = float(v.std(ddof=1) / math.sqrt(v.size)) if v.size > 1 else 0.0
        out.append(s)
    return out


def pm(row, column, digits=3):
    """'mean ± s.e.' of column in a summarise() row."""
    return "%.*f ± %.*f" % (digits, row[column], digits, row[column + "_se"])


def update_table(summary):
    """The protocol's summary (summarise(run_protocol(...))) as a Markdown table."""
    head = ("| data set | model | seeds | ROC AUC h1 | ROC AUC h2 | accuracy h1 | accuracy h2 | BTC | BEC |\n"
            "|---|---|---|---|---|---|---|---|---|\n")
    return head + "".join(
        "| %s | %s | %d | %s |\n" % (TITLES.get(r["dataset"], r["dataset"]), TITLES.get(r["model"], r["model"]),
                                     r["n"], " | ".join(pm(r, c) for c in UPDATE_COLUMNS))
        for r in summary)


def sweep_table(summary):
    """The sweep's summary (summarise(rows, by=("dataset", "model", "kind", "lambda_c"),
    columns=SWEEP_COLUMNS)) as a Markdown table."""
    head = ("| data set | model | loss | lambda_c | ROC AUC | accuracy | BTC | BEC |\n"
            "|---|---|---|---|---|---|---|---|\n")
    return head + "".join(
        "| %s | %s | %s | %g | %s |\n" % (TITLES.get(r["dataset"], r["dataset"]), TITLES.get(r["model"], r["model"]),
                                          r["kind"], r["lambda_c"], " | ".join(pm(r, c) for c in SWEEP_COLUMNS))
        for r in summary)


def recovery(sweep_summary):
    """For every (data set, model, loss kind): the change from lambda_c = 0 to the largest
    lambda_c in BTC, BEC, accuracy and ROC AUC (means over the seeds: ``d_btc``, ...), and the
    share of the compatibility the plain update lost that it wins back (``closed_btc`` =
    d_btc / (1 - BTC at lambda_c = 0), ``closed_bec``), as a list of dicts."""
    out = []
    keys = []
    for r in sweep_summary:
        k = (r["dataset"], r["model"], r["kind"])
        if k not in keys:
            keys.append(k)
    for k in keys:
        rs = sorted((r for r in sweep_summary if (r["dataset"], r["model"], r["kind"]) == k),
                    key=lambda r: r["lambda_c"])
        lo, hi = rs[0], rs[-1]
        row = dict(zip(("dataset", "model", "kind"), k), lambda_c=hi["lambda_c"],
                   **{"d_" + c: hi[c] - lo[c] for c in SWEEP_COLUMNS})
        for c in ("btc", "bec"):
            row["closed_" + c] = row["d_" + c] / (1.0 - lo[c]) if lo[c] < 1.0 else float("nan")
        out.append(row)
    return out


def plot_tradeoffs(sweep_summary, performance="accuracy", models=MODELS):
    """The trade-off of every data set's sweep (summarise(run_sweeps(...), by=("dataset",
    "model", "kind", "lambda_c"), columns=SWEEP_COLUMNS)): h2's test performance (the column
    `performance`, "accuracy" or "roc_auc") against BTC (top row) and BEC (bottom row), one
    column per data set, one line per model (marker) and loss kind (color) through lambda_c
    0 (labelled) to 1, error bars one standard error. Returns the matplotlib Figure."""
    import matplotlib.pyplot as plt
    names = list(dict.fromkeys(r["dataset"] for r in sweep_summary))
    fig, axes = plt.subplots(2, len(names), figsize=(4.4 * len(names), 8), squeeze=False)
    colors = {"new-error": "tab:blue", "strict-imitation": "tab:orange"}
    markers = {"logistic_regression": ("s", "--"), "mlp": ("o", "-")}
    for j, name in enumerate(names):
        for i, score in enumerate(("btc", "bec")):
            ax = axes[i][j]
            for kind_model in models:
                for kind, color in colors.items():
                    rs = sorted((r for r in sweep_summary if r["dataset"] == name and r["model"] == kind_model
                                 and r["kind"] == kind), key=lambda r: r["lambda_c"])
                    if not rs:
                        continue
                    marker, line = markers.get(kind_model, ("^", ":"))
                    ax.errorbar([r[score] for r in rs], [r[performance] for r in rs],
                                xerr=[r[score + "_se"] for r in rs], yerr=[r[performance + "_se"] for r in rs],
                                marker=marker, linestyle=line, color=color, capsize=2, markersize=5,
                                label="%s, %s" % (TITLES.get(kind_model, kind_model), kind))
                    ax.annotate("λ=0", (rs[0][score], rs[0][performance]), textcoords="offset points",
                                xytext=(-6, 6), fontsize="x-small", ha="right")
            ax.set_xlabel("BTC" if score == "btc" else "BEC")
            ax.set_ylabel("test " + ("ROC AUC" if performance == "roc_auc" else performance))
            ax.set_title("%s: %s against %s" % (TITLES.get(name, name), "ROC AUC" if performance == "roc_auc"
                                                 else performance, score.upper()), fontsize="medium")
            ax.grid(True, alpha=0.3)
    axes[0][0].legend(fontsize="x-small")
    fig.tight_layout()
    return fig


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default=None, help="folder holding compas-scores-two-years.csv (and, optionally, "
                   "the Adult and German credit files)")
    p.add_argument("--download", action="store_true", help="download COMPAS if it is found nowhere")
    p.add_argument("--seeds", type=int, default=len(SEEDS), help="number of seeds (default 5)")
    p.add_argument("--sweep", action="store_true", help="run the lambda_c sweep too")
    p.add_argument("--sweep-folder", default=None, help="where the sweeps write (default: a temporary folder)")
    p.add_argument("--figure", default=None, help="run the sweep and save its trade-off figure to this PNG file")
    p.add_argument("--quick", action="store_true", help="2 seeds, 2000 rows of each data set, 300 optimizer "
                   "steps, lambda_c step 0.5")
    args = p.parse_args(argv)
    if args.data is not None and not os.path.isdir(args.data):
        p.error("--data: %s is not a folder" % args.data)
    if args.seeds < 1:
        p.error("--seeds must be at least 1")
    seeds = range(2 if args.quick else args.seeds)
    max_rows, min_steps = (2000, 300) if args.quick else (None, None)
    bcml.set_num_threads(1)  # small matrices: one thread is fastest, and steady on a busy machine
    datasets, missing = load_all(data_dir=args.data, download=args.download)
    if missing and (args.data is not None or args.download):
        # asked for explicitly: a usage error worded for this script's flags
        p.error(" ".join(e.command_line_message("--data", "--download") for e in missing.values()))
    for name, e in missing.items():
        print("%s is not available, skipped: %s" % (TITLES[name], e.command_line_message("--data", "--download")),
              file=sys.stderr)
    rows = run_protocol(datasets, seeds=seeds, max_rows=max_rows, min_steps=min_steps)
    print(update_table(summarise(rows)))
    if args.sweep or args.figure:
        import tempfile
        base = args.sweep_folder or tempfile.mkdtemp(prefix="bcml-why-compatibility-")
        sweep_rows = run_sweeps(datasets, base, seeds=seeds, lambda_c_stepsize=0.5 if args.quick else LAMBDA_STEP,
                                max_rows=max_rows, min_steps=min_steps)
        sweep_summary = summarise(sweep_rows, by=("dataset", "model", "kind", "lambda_c"), columns=SWEEP_COLUMNS)
        print(sweep_table(sweep_summary))
        print("sweep folders under", base)
        if args.figure:
            import matplotlib
            matplotlib.use("Agg")
            plot_tradeoffs(sweep_summary).savefig(args.figure, dpi=110)
            print("figure written to", args.figure)
    return rows


if __name__ == "__main__":
    main()
