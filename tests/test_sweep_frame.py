"""compatibility_sweep(as_frame=True) and SweepManager.get_sweep_summary(as_frame=True) (issue 13,
item 6): a pandas DataFrame of the sweep points whose accuracy, NFR and churn equal bcml.scores on
the predictions of the saved models, and whose other columns equal the summary dict's."""
import os

import numpy as np
import pytest

import bcml
from bcml import scores
from bcml._sweep import model_file
from bcml.helpers.training import compatibility_sweep
from bcml.sweep_management import SweepManager
from conftest import need


def _data(seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((24, 3)).astype(np.float32)
    y = np.argmax(X + 0.7 * rng.standard_normal((24, 3)), axis=1).astype(np.int64)
    return [(X[:16], y[:16]), (X[16:], y[16:])]


def test_sweep_as_frame(tmp_path):
    need("pandas")
    bcml.manual_seed(0)
    h1, h2 = bcml.models.LogisticRegression(3, 3), bcml.models.LogisticRegression(3, 3)
    train, test = _data(1), _data(2)
    args = (str(tmp_path), 1, h1, h2, train, test, 8, 8, bcml.optim.SGD, {"lr": 0.5}, bcml.loss.BCCrossEntropyLoss,
            bcml.loss.StrictImitationCrossEntropyLoss)
    df = compatibility_sweep(*args, lambda_c_stepsize=1.0, seed=3, n_jobs=1, as_frame=True)
    summary = compatibility_sweep(*args, lambda_c_stepsize=1.0, seed=3, n_jobs=1)   # resumes: same files
    assert isinstance(summary, dict) and len(df) == len(summary["data"]) == 8
    assert list(df.columns) == ["datapoint_index", "lambda_c", "loss", "split", "accuracy", "performance", "btc",
                                "bec", "nfr", "churn"]
    assert df.attrs["performance_metric"] == summary["performance_metric"]
    assert df.attrs["h1_performance"] == summary["h1_performance"]
    for row, d in zip(df.itertuples(), summary["data"]):
        assert (row.datapoint_index, row.lambda_c, row.performance, row.btc, row.bec) == (
            d["datapoint_index"], d["lambda_c"], d["performance"], d["btc"], d["bec"])
        assert row.loss == ("new-error" if d["new-error"] else "strict-imitation")
        assert row.split == ("training" if d["training"] else "testing")
        # the reference: the saved model's predictions, scored by bcml.scores
        model = bcml.models.LogisticRegression(3, 3)
        model.load_state_dict(bcml.load(os.path.join(str(tmp_path), model_file(row.lambda_c, row.loss))))
        data = train if row.split == "training" else test
        X = np.concatenate([b[0] for b in data])
        y = np.concatenate([b[1] for b in data])
        l1, l2 = h1.predict(X), model.predict(X)
        assert row.accuracy == pytest.approx(np.mean(l2 == y), abs=1e-15)
        assert row.nfr == pytest.approx(scores.negative_flip_rate(l1, l2, y), abs=1e-15)
        assert row.churn == pytest.approx(scores.churn(l1, l2), abs=1e-15)
        assert row.performance == pytest.approx(row.accuracy, abs=1e-15)   # the default metric is accuracy
    # some point differs from h1 (the frame is not trivially zero)
    assert df["churn"].max() > 0
    sm = SweepManager.from_folder(str(tmp_path))
    same = sm.get_sweep_summary(as_frame=True)
    assert same.equals(df)
    assert sm.get_sweep_summary() == summary
    with pytest.raises(TypeError, match="as_frame"):
        sm.get_sweep_summary(as_frame="yes")
