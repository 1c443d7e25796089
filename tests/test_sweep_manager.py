"""bcml.sweep_management.SweepManager on the breast-cancer setup of test_sweep (LogisticRegression
h1, MLPClassifier h2), with step 0.5 (lambda_c 0, 0.5, 1: 6 jobs, 12 evaluations, 20 files)."""
import json
import os
import sys
import threading
import time
import types

import numpy as np
import pytest

import bcml
from bcml import _engine, _sweep
from bcml.helpers.training import compatibility_sweep
from bcml.loss import BCCrossEntropyLoss, StrictImitationCrossEntropyLoss
from bcml.metrics import model_accuracy
from bcml.sweep_management import SweepCancelled, SweepManager

from conftest import need
from test_sweep import OPT_KW, _setup

N_FILES = 20  # manifest + 6 jobs x (model + 2 evaluations) + summary


@pytest.fixture(scope="module")
def setup():
    return _setup()


def _args(setup, epochs, kw):
    h1, h2, tr, te = setup
    args = dict(lambda_c_stepsize=0.5, seed=5, n_jobs=1, progress=False)
    args.update(kw)
    return (epochs, h1, h2, tr, te, 32, 64, bcml.optim.SGD, OPT_KW, BCCrossEntropyLoss,
            StrictImitationCrossEntropyLoss), args


def _manager(folder, setup, epochs=1, **kw):
    pos, args = _args(setup, epochs, kw)
    return SweepManager(folder, *pos, **args)


def _sweep_into(folder, setup, epochs=1, **kw):
    pos, args = _args(setup, epochs, kw)
    return compatibility_sweep(folder, *pos, **args)


@pytest.fixture(scope="module")
def reference(setup, tmp_path_factory):
    """The uninterrupted 1-epoch sweep, run by compatibility_sweep."""
    folder = tmp_path_factory.mktemp("mgr-ref")
    return folder, _sweep_into(folder, setup)


def _files(folder):
    return {n: open(os.path.join(folder, n), "rb").read() for n in sorted(os.listdir(folder))}


class Gate:
    """Blocks the sweep's block_at-th training epochs (counted over all jobs; an int or a set)
    until go is set; reached is set once all of them are blocked."""

    def __init__(self, monkeypatch, block_at):
        self.calls, self.block_at = 0, {block_at} if isinstance(block_at, int) else set(block_at)
        self.blocked = 0
        self.reached, self.go = threading.Event(), threading.Event()
        self.lock = threading.Lock()
        real = _engine.train_epoch

        def train_epoch(*a, **k):
            with self.lock:
                self.calls += 1
                block = self.calls in self.block_at
                self.blocked += block
                if self.blocked == len(self.block_at):
                    self.reached.set()
            if block:
                assert self.go.wait(60), "the test never released the gate"
            return real(*a, **k)

        monkeypatch.setattr(_engine, "train_epoch", train_epoch)


def _drain(q):
    out = []
    while not q.empty():
        out.append(q.get())
    return out


def test_background_sweep(setup, reference, tmp_path, monkeypatch):
    ref_folder, ref = reference
    m = _manager(tmp_path, setup)
    assert not m.is_running() and m.get_sweep_status() == 0.0
    assert m.get_sweep_summary() == {"h1_performance": None, "performance_metric": "model_accuracy", "data": []}
    gate = Gate(monkeypatch, block_at=2)  # job 1 (lambda_c 0, strict imitation)
    assert m.start_sweep() is True
    assert gate.reached.wait(60)
    thread = m.sweep_thread
    assert m.is_running()
    # a second start while running does nothing
    assert m.start_sweep() is False and m.sweep_thread is thread
    with pytest.raises(RuntimeError, match="already running"):
        m.start_sweep_synchronous()
    # job 0 is on disk: manifest + its model and two evaluations
    assert m.get_sweep_status() == pytest.approx(4 / N_FILES)
    partial = m.get_sweep_summary()
    assert partial["h1_performance"] == ref["h1_performance"]
    assert partial["data"] == ref["data"][:2]
    assert m.get_evaluation(1)["datapoint_index"] == 1
    with pytest.raises(FileNotFoundError, match="evaluation 2 is not on disk yet.*strict-imitation"):
        m.get_evaluation(2)
    assert _drain(m.percent_complete_queue) == [0.0, 1 / 6]
    gate.go.set()
    seen = []
    while m.is_running():
        seen.append(m.get_sweep_status())
        time.sleep(0.001)
    assert m.wait() is True
    assert not m.is_running() and m.error is None and not m.cancelled
    # 1.0 only once the run has ended (so at most the last value polled)
    assert all(s < 1.0 for s in seen[:-1]) and seen == sorted(seen)
    assert m.get_sweep_status() == 1.0 and m.last_sweep_status == 1.0
    assert m.get_sweep_summary() == ref
    assert _drain(m.percent_complete_queue) == [k / 6 for k in range(2, 7)]
    assert _files(tmp_path) == _files(ref_folder)


def test_later_manager_reads_without_training(setup, reference, monkeypatch):
    folder, ref = reference

    def no_training(*a, **k):
        raise AssertionError("a finished sweep was trained again")

    monkeypatch.setattr(_sweep, "run_job", no_training)
    monkeypatch.setattr(_engine, "train_epoch", no_training)
    for m in (_manager(folder, setup), SweepManager.from_folder(str(folder))):
        assert not m.is_running()
        assert m.get_sweep_status() == 1.0
        assert m.get_sweep_summary() == ref
        for i in range(12):
            assert m.get_evaluation(i) == json.load(open(os.path.join(folder, "%d-evaluation-data.json" % i)))
        assert m.get_evaluation(np.int64(5))["datapoint_index"] == 5
    # starting a finished sweep again trains nothing and keeps the summary
    m = _manager(folder, setup)
    assert m.start_sweep() is True
    assert m.wait() is True and m.error is None
    assert m.get_sweep_summary() == ref
    with pytest.raises(ValueError, match="from_folder"):
        SweepManager.from_folder(folder).start_sweep()


def test_cancel_then_resume(setup, tmp_path, monkeypatch):
    """cancel() stops after the running job's current epoch (job 1 of 2 epochs loses its
    work); start_sweep() resumes and ends with the files of an uninterrupted sweep."""
    whole = _sweep_into(tmp_path / "whole", setup, epochs=2)
    folder = tmp_path / "cancelled"
    m = _manager(folder, setup, epochs=2)
    gate = Gate(monkeypatch, block_at=3)  # job 1's first epoch
    m.start_sweep()
    assert gate.reached.wait(60)
    timer = threading.Timer(0.2, gate.go.set)
    timer.start()
    assert m.cancel() is True  # waits for the thread
    timer.join()
    assert not m.is_running() and m.cancelled and m.error is None
    names = set(os.listdir(folder))
    assert set(_sweep.job_files(0, 0.0, 0)) <= names
    assert not set(_sweep.job_files(0, 0.0, 1)) & names
    assert "sweep_summary.json" not in names
    assert m.get_sweep_status() == pytest.approx(4 / N_FILES)
    assert m.get_sweep_summary()["data"] == whole["data"][:2]
    assert m.wait() is True  # a cancelled sweep is not an error
    # resume: only the unfinished jobs run
    monkeypatch.undo()
    ran = []
    real = _sweep.run_job
    monkeypatch.setattr(_sweep, "run_job", lambda spec: ran.append(spec["index"]) or real(spec))
    assert m.start_sweep() is True
    assert m.wait() is True and not m.cancelled and m.error is None
    assert ran == [1, 2, 3, 4, 5]
    assert m.get_sweep_status() == 1.0
    assert m.get_sweep_summary() == whole
    assert _files(folder) == _files(tmp_path / "whole")


def test_cancel_with_two_workers_resumes(setup, reference, tmp_path, monkeypatch):
    _, ref = reference
    """Both workers held in jobs 2 and 3 while jobs 4 and 5 wait: cancel() stops them (their
    futures are cancelled) and the resumed sweep ends as an uninterrupted one."""
    m = _manager(tmp_path, setup, n_jobs=2)
    gate = Gate(monkeypatch, block_at={3, 4})
    m.start_sweep()
    assert gate.reached.wait(60)
    assert m.cancel(wait=False) is False  # still running: the gate holds a job
    gate.go.set()
    assert m.wait(60) is True and m.cancelled and not m.is_running() and m.error is None
    assert m.get_sweep_status() == pytest.approx(13 / N_FILES)  # manifest + 4 jobs
    monkeypatch.undo()
    m.start_sweep()
    assert m.wait(60) is True and m.error is None
    assert m.get_sweep_summary() == ref


def test_drain_skips_cancelled_futures():
    """After cancel() the sweep cancels its pending futures; as_completed then yields them and
    their result() raises CancelledError, which must end nothing but those jobs."""
    import concurrent.futures as cf
    done, never = cf.Future(), cf.Future()
    done.set_result("result")
    assert never.cancel() and not never.set_running_or_notify_cancel()  # as an executor does
    got = []
    _sweep._drain([never, done], got.append, threading.Event())
    assert got == ["result"]


def test_cancel_when_idle_and_synchronous(setup, reference, tmp_path):
    _, ref = reference
    m = _manager(tmp_path, setup)
    assert m.cancel() is True  # nothing to cancel
    assert m.start_sweep_synchronous() == ref
    assert not m.is_running() and m.get_sweep_summary() == ref


def test_background_errors_are_raised(setup, tmp_path, monkeypatch):
    # a folder holding a sweep with other settings: the background run refuses
    _sweep_into(tmp_path, setup, lambda_c_stepsize=1.0)
    m = _manager(tmp_path, setup)
    m.start_sweep()
    with pytest.raises(ValueError, match="other settings"):
        m.wait()
    assert not m.is_running() and isinstance(m.error, ValueError)
    with pytest.raises(ValueError, match="other settings"):
        m.get_sweep_status()
    with pytest.raises(ValueError, match="other settings"):  # kept until the next start
        m.get_sweep_status()
    m.overwrite = True
    m.start_sweep()
    assert m.wait() is True and m.error is None
    assert m.get_sweep_status() == 1.0 and len(m.get_sweep_summary()["data"]) == 12


calls = {"n": 0, "fail_at": None, "gate": None}


def flaky_accuracy(model, dataset, device="cpu"):
    """model_accuracy that raises at its fail_at-th call or blocks on a gate (a module-level
    function: the sweep's settings record its name)."""
    calls["n"] += 1
    if calls["n"] == calls["fail_at"]:
        raise RuntimeError("metric exploded")
    if calls["gate"] is not None:
        calls["gate"][0].set()
        assert calls["gate"][1].wait(60)
    return model_accuracy(model, dataset, device)


@pytest.fixture
def flaky(monkeypatch):
    monkeypatch.setitem(calls, "n", 0)
    monkeypatch.setitem(calls, "fail_at", None)
    monkeypatch.setitem(calls, "gate", None)
    return calls


def test_error_mid_sweep(setup, tmp_path, flaky):
    flaky["fail_at"] = 4  # h1's metric, job 0's two evaluations, then job 1's first
    m = _manager(tmp_path, setup, performance_metric=flaky_accuracy)
    m.start_sweep()
    with pytest.raises(RuntimeError, match="metric exploded"):
        m.wait()
    assert isinstance(m.error, RuntimeError) and not m.is_running()
    with pytest.raises(RuntimeError, match="metric exploded"):
        m.get_sweep_status()
    assert set(_sweep.job_files(0, 0.0, 0)) <= set(os.listdir(tmp_path))
    assert [r["datapoint_index"] for r in m.get_sweep_summary()["data"]] == [0, 1]


def test_status_below_one_while_a_finished_sweep_reruns(setup, tmp_path, flaky):
    m = _manager(tmp_path, setup, performance_metric=flaky_accuracy)
    m.start_sweep_synchronous()
    assert m.get_sweep_status() == 1.0
    flaky["gate"] = (threading.Event(), threading.Event())
    m.start_sweep()  # resumes a finished sweep: h1's metric, then the summary again
    assert flaky["gate"][0].wait(60)
    try:
        assert m.is_running()
        assert m.get_sweep_status() == pytest.approx((N_FILES - 1) / N_FILES)
    finally:
        flaky["gate"][1].set()
    assert m.wait() is True and m.get_sweep_status() == 1.0


def test_get_evaluation_errors(setup, reference, tmp_path):
    folder, _ = reference
    m = _manager(folder, setup)
    for bad in ("0", 1.0, True, None):
        with pytest.raises(TypeError, match="evaluation_id"):
            m.get_evaluation(bad)
    for bad in (12, -1, 100):
        with pytest.raises(IndexError, match="evaluations 0 to 11"):
            m.get_evaluation(bad)
    with pytest.raises(FileNotFoundError, match="holds no sweep"):
        _manager(tmp_path, setup).get_evaluation(0)


def test_get_instance_image(setup, tmp_path):
    asked = []

    def image(instance_id):
        asked.append(instance_id)
        return b"\x89PNG-%d" % instance_id

    m = _manager(tmp_path, setup, get_instance_image_by_id=image)
    assert m.get_instance_image(7) == b"\x89PNG-7" and asked == [7]
    assert SweepManager.from_folder(tmp_path, image).get_instance_image(3) == b"\x89PNG-3"
    with pytest.raises(ValueError, match="get_instance_image_by_id"):
        _manager(tmp_path, setup).get_instance_image(7)


def test_constructor_errors(setup, tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="device"):
        _manager(tmp_path, setup, device="cuda")
    with pytest.raises(TypeError, match="get_instance_image_by_id"):
        _manager(tmp_path, setup, get_instance_image_by_id="image.png")
    with pytest.raises(TypeError, match="folder_name"):
        _manager(3, setup)
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    with pytest.raises(ImportError, match="pip install tqdm"):
        _manager(tmp_path, setup, progress=True)
    # bad sweep settings are refused when the manager is made (as compatibility_sweep refuses them),
    # before any file is written
    with pytest.raises(ValueError, match="lambda_c_stepsize"):
        _manager(tmp_path / "s", setup, lambda_c_stepsize=0)
    with pytest.raises(TypeError, match="number_of_epochs"):
        _manager(tmp_path / "s", setup, number_of_epochs="3")
    assert not (tmp_path / "s").exists()


def test_seed_drawn_once(setup, reference, tmp_path):
    """With seed=None the manager draws one seed at its first run and keeps it, so a second
    run of the same manager resumes instead of being refused as other settings."""
    m = _manager(tmp_path, setup, seed=None)
    bcml.manual_seed(11)
    m.start_sweep_synchronous()
    seed = m.seed
    assert isinstance(seed, int)
    m.start_sweep_synchronous()
    assert m.seed == seed
    bcml.manual_seed(11)
    assert _sweep_into(tmp_path / "direct", setup, seed=None) == m.get_sweep_summary()


class FakeTqdm:
    bars = []

    def __init__(self, total=None, initial=0, desc=None, unit=None):
        self.total, self.initial, self.desc, self.unit = total, initial, desc, unit
        self.updates, self.closed = [], False
        FakeTqdm.bars.append(self)

    def update(self, n=1):
        self.updates.append(n)

    def close(self):
        self.closed = True


def test_progress_bar(setup, tmp_path, monkeypatch):
    """The tqdm bar (progress=None uses tqdm when it is importable); a fake tqdm module."""
    fake = types.ModuleType("tqdm")
    fake.auto = types.ModuleType("tqdm.auto")
    fake.auto.tqdm = FakeTqdm
    monkeypatch.setitem(sys.modules, "tqdm", fake)
    monkeypatch.setitem(sys.modules, "tqdm.auto", fake.auto)
    monkeypatch.setattr(FakeTqdm, "bars", [])
    m = _manager(tmp_path, setup, progress=None)
    m.start_sweep()
    assert m.wait() is True
    (bar,) = FakeTqdm.bars
    assert (bar.total, bar.initial, bar.unit) == (6, 0, "job") and "sweep" in bar.desc
    assert bar.updates == [1] * 6 and bar.closed
    # a resumed sweep starts its bar at the finished jobs
    os.remove(os.path.join(tmp_path, "1.0-model-new-error.safetensors"))
    os.remove(os.path.join(tmp_path, "sweep_summary.json"))
    m.start_sweep_synchronous()
    bar = FakeTqdm.bars[-1]
    assert (bar.total, bar.initial, bar.updates, bar.closed) == (6, 5, [1], True)
    # progress=False: no bar
    _manager(tmp_path, setup, progress=False).start_sweep_synchronous()
    assert len(FakeTqdm.bars) == 2


@pytest.mark.slow
def test_mlflow_logging(setup, reference, tmp_path, monkeypatch):
    """SweepManager(use_ml_flow=True) logs to a real MLflow tracking store (a file store in
    tmp_path, read back with MlflowClient): the run's name, its parameters, and every score at
    BCML's steps (tests/test_cluster.py does the same through compatibility_sweep)."""
    mlflow = need("mlflow")
    from mlflow.tracking import MlflowClient
    _, ref = reference
    uri = (tmp_path / "mlruns").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")   # MLflow 3 keeps its file store in maintenance
    monkeypatch.chdir(tmp_path)
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        m = _manager(tmp_path / "sweep", setup, use_ml_flow=True, ml_flow_run_name="bc-sweep")
        m.start_sweep()
        assert m.wait() is True
    finally:
        mlflow.set_tracking_uri(previous)
    client = MlflowClient(tracking_uri=uri)
    runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    assert len(runs) == 1 and runs[0].info.run_name == "bc-sweep" and runs[0].info.status == "FINISHED"
    assert runs[0].data.params == {"lambda_c_stepsize": "0.5", "batch_size_train": "32", "batch_size_test": "64",
                                   "number_of_epochs": "1", "seed": "5"}
    metrics = {(key, h.step): h.value for key in runs[0].data.metrics
               for h in client.get_metric_history(runs[0].info.run_id, key)}
    assert metrics == mlflow_metrics(ref) and len(metrics) == 39


def mlflow_metrics(summary):
    """{(metric name, step): value} that a sweep with this summary logs to MLflow, BCML's names
    and steps (tests/test_cluster.py reads a real store against it too)."""
    expected = {}
    for r in summary["data"]:
        kind = "new_error" if r["new-error"] else "strict_imitation"
        split = "training" if r["training"] else "testing"
        k = r["datapoint_index"] // 4 + 1   # BCML's steps count from 1
        expected[("lambda_c", k)] = r["lambda_c"]
        for key in ("performance", "btc", "bec"):
            if r[key] is not None:
                expected[("%s_%s_%s" % (kind, split, key), k)] = r[key]
    return expected


def test_mlflow_missing(setup, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)
    with pytest.raises(ImportError, match=r"pip install mlflow \(or bcml\[mlflow\]\)"):
        _manager(tmp_path, setup, use_ml_flow=True)
    with pytest.raises(ImportError, match="pip install mlflow"):
        _sweep_into(tmp_path, setup, use_ml_flow=True)
    assert not any(n.endswith(".safetensors") for n in os.listdir(tmp_path))


def test_cancelled_synchronous_run_raises(setup, tmp_path, monkeypatch):
    m = _manager(tmp_path, setup)
    gate = Gate(monkeypatch, block_at=2)
    out = {}

    def run():
        try:
            m.start_sweep_synchronous()
        except SweepCancelled as e:
            out["e"] = e

    t = threading.Thread(target=run)
    t.start()
    assert gate.reached.wait(60)
    assert m.is_running() and m.start_sweep() is False
    m.cancel(wait=False)
    gate.go.set()
    t.join(60)
    assert isinstance(out.get("e"), SweepCancelled) and m.cancelled and not m.is_running()
