"""compatibility_sweep on a real cluster (issue 13, item 7): a Dask distributed LocalCluster with
two worker processes and a local Ray instance (ray.util.multiprocessing.Pool) give the very files
of n_jobs=1; the models and data sets reach each worker once, not with every job (counted with
markers that record their pickling); a worker killed mid-sweep is retried by Dask, or, when Dask
may not retry, the sweep fails naming the job and a rerun resumes; and use_ml_flow logs to a
real MLflow tracking store (a file store in a temporary folder), read back with MlflowClient."""
import concurrent.futures as cf
import multiprocessing as mp
import os
import re
import shutil
import signal
import tempfile
import threading
import time
from pathlib import Path

import pytest

import bcml
import bcml.nn.functional as F
from bcml import _sweep as _sweep_module
from bcml.data import DataLoader
from bcml.helpers.training import compatibility_sweep, train
from bcml.loss import BCCrossEntropyLoss, StrictImitationCrossEntropyLoss
from bcml.models import LogisticRegression
from bcml.sweep_management import SweepJobError

import _cluster_jobs as J
from test_sweep_manager import mlflow_metrics
from conftest import SHARED_DATA, need, need_path

OPT_KW = {"lr": 0.05, "momentum": 0.9}
MARKERS = ("h1", "h2", "train_loader")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """h1 (one epoch), a fresh h2, the loaders; markers on h1, h2 and the training loader."""
    from bcml.datasets import load_breast_cancer
    need_path(SHARED_DATA)
    d = load_breast_cancer(SHARED_DATA)
    bcml.manual_seed(0)
    h1, h2 = LogisticRegression(9, 2), LogisticRegression(9, 2)
    tr = DataLoader(d.X_train, d.y_train, batch_size=32, shuffle=True, seed=1)
    te = DataLoader(d.X_test, d.y_test, batch_size=64)
    train(1, h1, bcml.optim.SGD(h1.parameters(), lr=0.05), F.nll_loss, tr, te, 32, 64)
    log = str(tmp_path_factory.mktemp("markers") / "unpickled.txt")
    for name, obj in zip(MARKERS, (h1, h2, tr)):
        obj.marker = J.Marker(name, log)
    return h1, h2, tr, te, log


def _sweep(folder, setup, loss=BCCrossEntropyLoss, loss_kwargs=None, **kw):
    h1, h2, tr, te, _ = setup
    args = dict(seed=5, progress=False, n_jobs=1, lambda_c_stepsize=0.5)   # lambda_c 0, 0.5, 1: 6 jobs
    args.update(kw)
    return compatibility_sweep(folder, 1, h1, h2, tr, te, 32, 64, bcml.optim.SGD, OPT_KW, loss,
                               StrictImitationCrossEntropyLoss, new_error_loss_kwargs=loss_kwargs, **args)


@pytest.fixture(scope="module")
def reference(setup, tmp_path_factory):
    folder = tmp_path_factory.mktemp("sweep-ref")
    return folder, _sweep(folder, setup)


def _files(folder):
    """Every file but the manifest (which names the loss class) as bytes."""
    return {n: (Path(folder) / n).read_bytes() for n in sorted(os.listdir(folder)) if n != "sweep_settings.json"}


def _same_as_reference(reference, folder, summary):
    ref_folder, ref_summary = reference
    assert summary == ref_summary
    ref, got = _files(ref_folder), _files(folder)
    assert len(ref) == 3 * 6 + 1 and set(got) == set(ref)
    for name in ref:
        assert got[name] == ref[name], name


class _Count:
    """Markers pickled in this process and unpickled anywhere during a with-block."""

    def __init__(self, setup):
        self.log = setup[-1]

    def __enter__(self):
        J.PICKLED.clear()
        if os.path.exists(self.log):
            os.remove(self.log)
        return self

    def __exit__(self, *exc):
        self.pickled = sorted(J.PICKLED)
        self.unpickled = J.unpicklings(self.log)


def _once_per_worker(count, workers):
    """Each marker pickled once here and unpickled at most once per worker process (6 jobs)."""
    assert count.pickled == sorted(MARKERS)
    for name in MARKERS:
        pids = [pid for n, pid in count.unpickled if n == name]
        assert 1 <= len(pids) <= workers and len(set(pids)) == len(pids), (name, pids)
    assert os.getpid() not in {pid for _, pid in count.unpickled}


def test_executors_in_this_machine_ship_once(setup, reference, tmp_path):
    """The generic paths: a ProcessPoolExecutor gets the shared bytes with every job but each of
    its workers unpickles them once; a ThreadPoolExecutor gets the objects (nothing pickled)."""
    with _Count(setup) as count, cf.ProcessPoolExecutor(2, mp_context=mp.get_context("fork")) as ex:
        summary = _sweep(tmp_path / "p", setup, executor=ex)
    _same_as_reference(reference, tmp_path / "p", summary)
    _once_per_worker(count, 2)
    with _Count(setup) as count, cf.ThreadPoolExecutor(2) as ex:
        summary = _sweep(tmp_path / "t", setup, executor=ex)
    _same_as_reference(reference, tmp_path / "t", summary)
    assert count.pickled == [] and count.unpickled == []


# ---- Dask -------------------------------------------------------------------------------------------
def _dask_cluster(local_directory, allowed_failures=None):
    need("distributed")
    import dask
    from distributed import Client, LocalCluster
    config = {"distributed.scheduler.allowed-failures": allowed_failures} if allowed_failures is not None else {}
    with dask.config.set(config):   # read by the scheduler, which runs in this process
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                               local_directory=str(local_directory))
    return cluster, Client(cluster)


@pytest.fixture(scope="module")
def dask_client(tmp_path_factory):
    """One cluster for the tests that may share it (a killed worker is restarted by its nanny)."""
    cluster, client = _dask_cluster(tmp_path_factory.mktemp("dask"))
    try:
        yield client
    finally:
        client.close()
        cluster.close()


@pytest.mark.slow
def test_dask_local_cluster_same_bits_once_per_worker(setup, reference, tmp_path, dask_client):
    assert len(dask_client.scheduler_info()["workers"]) == 2
    with _Count(setup) as count:
        summary = _sweep(tmp_path, setup, executor=dask_client.get_executor())
    _same_as_reference(reference, tmp_path, summary)
    _once_per_worker(count, 2)
    # again on the same cluster, through the Client itself: the same bytes (token), so no worker
    # unpickles them again
    with _Count(setup) as count:
        summary = _sweep(tmp_path / "again", setup, executor=dask_client)
    _same_as_reference(reference, tmp_path / "again", summary)
    assert count.pickled == sorted(MARKERS) and count.unpickled == []


def _sweep_and_kill(folder, setup, executor, stall_dir):
    """Runs the sweep (with StallingLoss) in a thread, kills the worker process stalling on the
    lambda_c = 0.5 new-error job, and returns the sweep's (summary, exception)."""
    out = {}

    def run():
        try:
            out["summary"] = _sweep(folder, setup, loss=J.StallingLoss, loss_kwargs={"stall_dir": str(stall_dir)},
                                    executor=executor)
        except BaseException as e:  # noqa: B902 (handed to the test)
            out["error"] = e

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    flag = stall_dir / "stalled"
    deadline = time.monotonic() + 120
    while not (flag.exists() and flag.read_text()) and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert flag.exists(), "no job stalled: %r" % (out,)
    pid = int(flag.read_text())
    assert pid != os.getpid()
    os.kill(pid, signal.SIGKILL)
    thread.join(180)
    assert not thread.is_alive(), "the sweep did not end after its worker was killed"
    return out.get("summary"), out.get("error")


@pytest.mark.slow
def test_dask_worker_killed_mid_sweep_is_retried(setup, reference, tmp_path, dask_client):
    stall = tmp_path / "stall"
    stall.mkdir()
    summary, error = _sweep_and_kill(tmp_path / "s", setup, dask_client.get_executor(), stall)
    assert error is None, error
    _same_as_reference(reference, tmp_path / "s", summary)


@pytest.mark.slow
def test_dask_worker_killed_without_retries_fails_clearly_and_resumes(setup, reference, tmp_path):
    cluster, client = _dask_cluster(tmp_path / "dask", allowed_failures=0)
    try:
        stall = tmp_path / "stall"
        stall.mkdir()
        folder = tmp_path / "s"
        summary, error = _sweep_and_kill(folder, setup, client.get_executor(), stall)
        assert summary is None and isinstance(error, SweepJobError)
        msg = str(error)
        assert "job 2 (lambda_c=0.5, new-error loss): KilledWorker" in msg, msg
        assert "run the sweep again" in msg and str(folder) in msg
        # the message names every failed job (others queued on the killed worker may fail with
        # it); those left no file, the others ran to the end and are kept; no summary yet
        failed = {int(i) for i in re.findall(r"job (\d+) \(lambda_c=", msg)}
        assert 2 in failed and len(failed) < 6
        assert "%d job(s) failed" % len(failed) in msg
        grid = [0.0, 0.5, 1.0]
        for index in range(6):
            k, kind = divmod(index, 2)
            files = _sweep_module.job_files(k, grid[k], kind)
            assert [(folder / f).exists() for f in files] == [index not in failed] * 3, index
        assert not (folder / "sweep_summary.json").exists()
        kept = {n: os.stat(folder / n) for n in os.listdir(folder) if n != "sweep_settings.json"}
        assert len(kept) == 3 * (6 - len(failed))
        # the rerun (the killed worker has been restarted) runs only what is missing
        summary = _sweep(folder, setup, loss=J.StallingLoss, loss_kwargs={"stall_dir": str(stall)},
                         executor=client.get_executor())
        for n, st in kept.items():
            now = os.stat(folder / n)
            assert (now.st_ino, now.st_mtime_ns) == (st.st_ino, st.st_mtime_ns), n
        _same_as_reference(reference, folder, summary)
    finally:
        client.close()
        cluster.close()


# ---- Ray --------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_ray_pool_same_bits_once_per_worker(setup, reference, tmp_path, monkeypatch):
    ray = need("ray")
    from ray.util.multiprocessing import Pool
    # Ray's workers are started by its raylet: they find bcml and this folder's modules through
    # PYTHONPATH; its sockets need a short path, so its session folder is a new one under /tmp
    here = Path(__file__).resolve().parent
    paths = [str(Path(bcml.__file__).resolve().parents[1]), str(here)]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(paths + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")   # else Ray writes a token to ~/.ray
    # Ray puts the driver's working folder first on its workers' sys.path: from a checkout whose
    # bcml is pip-installed (CI), they would import the checkout's unbuilt bcml/ instead
    monkeypatch.chdir(tmp_path)
    temp = tempfile.mkdtemp(prefix="bcml-ray-")
    for attempt in (1, 2):
        try:
            ray.init(num_cpus=2, include_dashboard=False, _temp_dir=temp, object_store_memory=80 * 1024 * 1024,
                     log_to_driver=False, configure_logging=False)
            break
        except Exception as e:   # Ray waits 30 s (fixed) for its raylet: a busy machine can miss that once
            ray.shutdown()
            if attempt == 2 or "timed out during startup" not in str(e):
                raise
    try:
        pool = Pool(2)
        try:
            with _Count(setup) as count:
                summary = _sweep(tmp_path, setup, executor=pool)
        finally:
            pool.terminate()
    finally:
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)
    _same_as_reference(reference, tmp_path, summary)
    _once_per_worker(count, 2)


# ---- MLflow -----------------------------------------------------------------------------------------
@pytest.mark.slow
def test_mlflow_real_tracking_store(setup, reference, tmp_path, monkeypatch):
    mlflow = need("mlflow")
    from mlflow.tracking import MlflowClient
    uri = (tmp_path / "mlruns").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")   # MLflow 3 keeps its file store in maintenance
    monkeypatch.chdir(tmp_path)   # whatever mlflow might write beside the store stays in tmp_path
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        summary = _sweep(tmp_path / "s", setup, use_ml_flow=True, ml_flow_run_name="bc-sweep")
    finally:
        mlflow.set_tracking_uri(previous)
    assert summary == reference[1]
    client = MlflowClient(tracking_uri=uri)
    runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    assert len(runs) == 1
    run = runs[0]
    assert run.info.run_name == "bc-sweep" and run.info.status == "FINISHED"
    assert run.data.params == {"lambda_c_stepsize": "0.5", "batch_size_train": "32", "batch_size_test": "64",
                               "number_of_epochs": "1", "seed": "5"}
    got = {}
    for key in run.data.metrics:
        for m in client.get_metric_history(run.info.run_id, key):
            assert (key, m.step) not in got
            got[(key, m.step)] = m.value
    assert got == mlflow_metrics(summary) and len(got) >= 3 + 3 * 4 * 2
