"""The sweep's performance_metric receives the user's data set objects, as passed (not bcml's
internal copy), on threads, in forked worker processes and through executors, where the parent
calls it on the trained weights (so even an unpicklable data set works)."""
import concurrent.futures as cf
import multiprocessing as mp
import warnings

import numpy as np
import pytest

import bcml
import bcml.nn.functional as F
from bcml.helpers.training import compatibility_sweep, train
from bcml.loss import BCCrossEntropyLoss, StrictImitationCrossEntropyLoss
from bcml.metrics import model_accuracy
from bcml.models import LogisticRegression, MLPClassifier


class Batches(list):
    """A user's data set that cannot be pickled."""

    def __reduce__(self):
        raise TypeError("this data set cannot be pickled")


def _setup():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((96, 4)).astype(np.float32)
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(np.int64)
    tr = Batches((bcml.from_numpy(X[i:i + 16]), bcml.from_numpy(y[i:i + 16])) for i in range(0, 64, 16))
    te = Batches([(bcml.from_numpy(X[64:]), bcml.from_numpy(y[64:]))])
    bcml.manual_seed(0)
    h1, h2 = LogisticRegression(4, 2), MLPClassifier(4, 2, [5])
    train(2, h1, bcml.optim.SGD(h1.parameters(), lr=0.1), F.nll_loss, tr, te, 16, 32)
    return h1, h2, tr, te


@pytest.fixture(scope="module")
def setup():
    return _setup()


def _sweep(folder, setup, metric, **kw):
    h1, h2, tr, te = setup
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return compatibility_sweep(folder, 2, h1, h2, tr, te, 16, 32, bcml.optim.SGD, {"lr": 0.1},
                                   BCCrossEntropyLoss, StrictImitationCrossEntropyLoss, performance_metric=metric,
                                   lambda_c_stepsize=0.5, seed=3, progress=False, **kw)


def _checking_metric(setup, seen):
    _h1, _h2, tr, te = setup

    def metric(model, dataset, device):
        assert dataset is tr or dataset is te, type(dataset)
        seen.append("train" if dataset is tr else "test")
        return model_accuracy(model, dataset, device)
    return metric


@pytest.mark.parametrize("mode", ["one", "threads", "fork-processes", "fork-executor", "thread-executor"])
def test_metric_gets_the_users_data_set(setup, tmp_path, mode):
    ref = _sweep(tmp_path / "ref", setup, None)   # model_accuracy, computed inside bcml
    seen = []
    metric = _checking_metric(setup, seen)
    if mode == "one":
        got = _sweep(tmp_path / "s", setup, metric, n_jobs=1)
    elif mode == "threads":
        got = _sweep(tmp_path / "s", setup, metric, n_jobs=2)
    elif mode == "fork-processes":   # a step that cannot be replayed runs in forked processes
        from bcml import _sweep as S
        orig = S._replay_problem
        S._replay_problem = lambda job: "forced"
        try:
            got = _sweep(tmp_path / "s", setup, metric, n_jobs=2)
        finally:
            S._replay_problem = orig
    elif mode == "fork-executor":     # jobs are pickled: the data sets cannot go, the parent calls the metric
        with cf.ProcessPoolExecutor(2, mp_context=mp.get_context("fork")) as ex:
            got = _sweep(tmp_path / "s", setup, metric, executor=ex)
    else:
        with cf.ThreadPoolExecutor(2) as ex:
            got = _sweep(tmp_path / "s", setup, metric, executor=ex)
    assert got["data"] == ref["data"]
    assert got["h1_performance"] == ref["h1_performance"]
    assert got["performance_metric"] == "metric"
    assert seen[0] == "test"          # h1's performance on the test set, in this process
    if mode != "fork-processes":      # (forked workers call it in their own process)
        assert seen.count("train") == seen.count("test") - 1 == 6   # 3 lambdas x 2 loss kinds


def test_metric_returning_a_non_number_through_an_executor(setup, tmp_path):
    calls = []

    def metric(m, d, dev):   # a number for h1, then not
        calls.append(1)
        return 0.5 if len(calls) == 1 else "high"
    with cf.ThreadPoolExecutor(1) as ex, pytest.raises(TypeError, match="must return a number, got str"):
        _sweep(tmp_path, setup, metric, executor=ex)
    with pytest.raises(TypeError, match="must return a number, got str"):
        _sweep(tmp_path / "b", setup, lambda m, d, dev: "high")


def test_sweep_manager_metric_gets_the_users_data_set(setup, tmp_path):
    from bcml.sweep_management import SweepManager
    h1, h2, tr, te = setup
    seen = []
    m = SweepManager(tmp_path, 2, h1, h2, tr, te, 16, 32, bcml.optim.SGD, {"lr": 0.1}, BCCrossEntropyLoss,
                     StrictImitationCrossEntropyLoss, lambda_c_stepsize=0.5,
                     performance_metric=_checking_metric(setup, seen), seed=3, progress=False, n_jobs=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m.start_sweep_synchronous()
    assert seen.count("train") == 6 and seen.count("test") == 7
    assert m.get_sweep_summary()["data"] == _sweep(tmp_path / "ref", setup, None)["data"]
