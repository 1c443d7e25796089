"""What a scikit-learn model update breaks, by cohort, with intervals (German credit).

Any model's predictions can be judged: bcml.compare takes plain label arrays (and, optionally,
predicted probabilities), so the two models here are scikit-learn's and bcml trains nothing.

h1 (the model in production): a logistic regression.
h2 (the candidate update): a gradient-boosted tree ensemble, on the same training split.
The report gives BTC, BEC, NFR, churn, ... overall, per class and per cohort (age band and sex,
ranked by how much the update hurts each one), with 95% bootstrap intervals and McNemar's test;
then the scores that retraining h2 with another seed alone produces (bcml.seed_baseline), to
tell the update's regressions from seed noise. The report is also written as one HTML page.

    pip install scikit-learn                                  # this example only; bcml does not need it
    python examples/german_credit_sklearn.py                  # the German credit copy bundled with bcml
    python examples/german_credit_sklearn.py --data DIR --out report.html

In a notebook, ``bcml.widget.ModelComparison.from_report(report)`` shows the same report as
the interactive widget (Venn diagram, per-class bars, the regressed instances).
"""
import argparse
import os

import numpy as np

import bcml
from bcml.datasets import DatasetNotFoundError, DownloadError, load_german_credit

# "personal status and sex" codes of the Statlog German credit data: A92 and A95 are the female
# ones (A95, single women, does not occur in the data)
FEMALE = ("personal_status_sex=A92", "personal_status_sex=A95")


def cohorts(data, rows):
    """Boolean masks of the test rows by age band and sex (from the raw, unscaled columns)."""
    names = list(data.feature_names)
    age = data.X[rows, names.index("age")]
    female = np.zeros(len(rows), bool)
    for f in FEMALE:
        if f in names:
            female |= data.X[rows, names.index(f)] > 0.5
    if not female.any():
        raise ValueError("no female rows: the data's feature names are not German credit's %s" % (FEMALE,))
    return {"age < 30": age < 30, "age 30-49": (age >= 30) & (age < 50), "age >= 50": age >= 50,
            "female": female, "male": ~female}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default=None, help="folder holding german.data (default: the copy bundled with bcml)")
    p.add_argument("--download", action="store_true", help="download German credit from UCI if missing")
    p.add_argument("--out", default="german-credit-report.html", help="where the HTML report goes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--seeds", type=int, default=5, help="seeds of the seed-noise baseline (0 to skip it)")
    args = p.parse_args(argv)
    try:
        from sklearn.ensemble import GradientBoostingClassifier
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
    except ImportError:
        p.error("this example needs scikit-learn: pip install scikit-learn")
    if args.data is not None and not os.path.isdir(args.data):
        p.error("--data: %s is not a folder" % args.data)
    try:  # raw columns (ages in years): the pipelines scale them
        data = load_german_credit(args.data, download=args.download, standardize=False, seed=args.seed)
    except (DatasetNotFoundError, DownloadError) as e:
        p.error(e.command_line_message("--data", "--download"))
    Xtr, ytr, Xte, yte = data.X_train, data.y_train, data.X_test, data.y_test

    h1 = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(Xtr, ytr)

    def train_h2(seed):
        # subsample < 1 makes the ensemble depend on its seed, as most retraining does
        return GradientBoostingClassifier(subsample=0.8, random_state=seed).fit(Xtr, ytr)

    h2 = train_h2(args.seed)
    report = bcml.compare(h1.predict(Xte), h2.predict(Xte), yte, h1_proba=h1.predict_proba(Xte),
                          h2_proba=h2.predict_proba(Xte), groups=cohorts(data, data.test_index),
                          class_names=list(data.class_names), ids=data.test_index, ci=0.95, seed=args.seed)
    print("h1 (logistic regression) test accuracy: %.4f" % report["h1_accuracy"])
    print("h2 (gradient boosting)   test accuracy: %.4f" % report["h2_accuracy"])
    print()
    print(report)
    baseline = None
    if args.seeds >= 2:
        baseline = bcml.seed_baseline(train_h2, Xte, yte, seeds=tuple(range(args.seeds)))
        lo, hi = report["ci"]["nfr"]
        print()
        print("this update's NFR is %.1f%% [%.1f, %.1f]; retraining h2 with another seed alone gives "
              "%.1f%% [%.1f, %.1f] (mean [min, max] over %d seed pairs)"
              % (100 * report["nfr"], 100 * lo, 100 * hi, 100 * baseline["nfr"]["mean"],
                 100 * baseline["nfr"]["min"], 100 * baseline["nfr"]["max"], len(baseline["pairs"])))
    report.save_html(args.out)
    print("report written to %s" % os.path.abspath(args.out))
    return report, baseline


if __name__ == "__main__":
    main()
