"""The lambda_c sweep (SPEC section 6) on the breast-cancer data of ../shared/data:
LogisticRegression h1, MLPClassifier h2, step 0.25."""
import concurrent.futures as cf
import copy
import json
import os
import queue
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import bcml
import bcml.nn.functional as F
from bcml import _core, _sweep
from bcml.data import DataLoader
from bcml.helpers.training import (compatibility_sweep, evaluate_model_performance_and_compatibility_on_dataset,
                                   train, train_new_error)
from bcml.loss import BCCrossEntropyLoss, StrictImitationCrossEntropyLoss
from bcml.models import LogisticRegression, MLPClassifier

from conftest import SHARED_DATA, need_path

EVAL_KEYS = {"models_error_overlap", "h2_incompatible_instance_ids_by_class", "sorted_classes",
             "h1_accuracy_by_class", "h2_accuracy_by_class", "h2_performance", "btc", "bec",
             "error_instances", "dataset_size", "lambda_c", "training", "testing", "datapoint_index"}
ROW_KEYS = {"datapoint_index", "lambda_c", "training", "testing", "new-error", "strict-imitation",
            "performance", "btc", "bec"}
OPT_KW = {"lr": 0.05, "momentum": 0.9}


def _setup():
    """h1 trained for 2 epochs, a fresh h2, the loaders (all deterministic)."""
    from bcml.datasets import load_breast_cancer
    need_path(SHARED_DATA)
    d = load_breast_cancer(SHARED_DATA)
    bcml.manual_seed(0)
    h1, h2 = LogisticRegression(9, 2), MLPClassifier(9, 2)
    tr = DataLoader(d.X_train, d.y_train, batch_size=32, shuffle=True, seed=1)
    te = DataLoader(d.X_test, d.y_test, batch_size=64)
    train(2, h1, bcml.optim.SGD(h1.parameters(), lr=0.05), F.nll_loss, tr, te, 32, 64)
    return h1, h2, tr, te


@pytest.fixture(scope="module")
def setup():
    return _setup()


def _sweep_into(folder, setup, **kw):
    h1, h2, tr, te = setup
    args = dict(seed=5, progress=False, n_jobs=1)
    args.update(kw)
    return compatibility_sweep(folder, 3, h1, h2, tr, te, 32, 64, bcml.optim.SGD, OPT_KW,
                               BCCrossEntropyLoss, StrictImitationCrossEntropyLoss, **args)


@pytest.fixture(scope="module")
def reference(setup, tmp_path_factory):
    folder = tmp_path_factory.mktemp("sweep-ref")
    summary = _sweep_into(folder, setup)
    return folder, summary


def _files(folder):
    return {n: open(os.path.join(folder, n), "rb").read() for n in sorted(os.listdir(folder))}


def test_grid_and_names():
    assert _sweep.lambda_grid(0.25) == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert _sweep.lambda_grid(0.3) == [0.0, 0.3, 0.6, 0.9]
    assert _sweep.lambda_grid(0.1)[3] == 0.3  # not 0.30000000000000004
    assert _sweep.lambda_grid(1) == [0.0, 1.0]
    assert len(_sweep.lambda_grid(0.001)) == 1001
    assert _sweep.model_file(0.3, "new-error") == "0.3-model-new-error.safetensors"
    assert _sweep.job_files(1, 0.25, 1) == ["0.25-model-strict-imitation.safetensors",
                                            "6-evaluation-data.json", "7-evaluation-data.json"]


def test_files_and_keys(reference, setup):
    folder, summary = reference
    grid = [0.0, 0.25, 0.5, 0.75, 1.0]
    names = set(os.listdir(folder))
    assert names == set(_sweep.expected_files(grid))
    assert {"0.0-model-new-error.safetensors", "1.0-model-strict-imitation.safetensors",
            "19-evaluation-data.json", "sweep_summary.json"} <= names
    on_disk = json.load(open(os.path.join(folder, "sweep_summary.json")))
    assert on_disk == summary
    assert set(summary) == {"h1_performance", "performance_metric", "data"}
    assert summary["performance_metric"] == "model_accuracy"
    h1, h2, tr, te = setup
    h1.eval()
    assert summary["h1_performance"] == pytest.approx(bcml.metrics.model_accuracy(h1, te))
    assert [r["datapoint_index"] for r in summary["data"]] == list(range(20))
    for r in summary["data"]:
        assert set(r) == ROW_KEYS
        i = r["datapoint_index"]
        k, rest = divmod(i, 4)
        assert r["lambda_c"] == grid[k]
        assert r["new-error"] == (rest < 2) and r["strict-imitation"] == (rest >= 2)
        assert r["training"] == (rest % 2 == 0) and r["testing"] == (rest % 2 == 1)
        ev = json.load(open(os.path.join(folder, "%d-evaluation-data.json" % i)))
        assert set(ev) == EVAL_KEYS
        assert ev["datapoint_index"] == i and ev["lambda_c"] == grid[k]
        assert (r["performance"], r["btc"], r["bec"]) == (ev["h2_performance"], ev["btc"], ev["bec"])
        assert ev["dataset_size"] == (559 if r["training"] else 140)
    state = bcml.load(os.path.join(folder, "0.5-model-strict-imitation.safetensors"))
    assert set(state) == set(h2.state_dict())


def test_lambda_zero_equals_plain_training(reference, setup, tmp_path):
    """The lambda_c = 0 new-error job = train_new_error(lambda_c=0) from the same initial weights,
    generator state and loader epoch; its evaluation = the helper's on the trained model."""
    folder, _ = reference
    h1, h2, tr, te = setup
    h2c = copy.deepcopy(h2)
    e0 = tr.epoch
    bcml.manual_seed(_core.derive_seed(5, 0))
    train_new_error(h1, h2c, 3, tr, te, 32, 64, bcml.optim.SGD, OPT_KW, BCCrossEntropyLoss, 0.0)
    tr.epoch = e0
    saved = bcml.load(os.path.join(folder, "0.0-model-new-error.safetensors"))
    for k, v in h2c.state_dict().items():
        np.testing.assert_allclose(saved[k].numpy(), v.detach().numpy(), rtol=1e-5, atol=1e-7, err_msg=k)
    h2c.eval()
    for split, data in ((0, tr), (1, te)):
        ev = evaluate_model_performance_and_compatibility_on_dataset(h1, h2c, data)
        disk = json.load(open(os.path.join(folder, "%d-evaluation-data.json" % split)))
        for key in ev:
            assert disk[key] == ev[key], key
    # the models are trained: better than chance on the test set
    assert json.load(open(os.path.join(folder, "1-evaluation-data.json")))["h2_performance"] > 0.8


def test_two_workers_same_bits(reference, setup, tmp_path):
    folder, summary = reference
    s2 = _sweep_into(tmp_path, setup, n_jobs=2)
    assert s2 == summary
    a, b = _files(folder), _files(tmp_path)
    assert set(a) == set(b)
    for n in a:
        if n != "sweep_settings.json":
            assert a[n] == b[n], n


def test_executor_and_processes(reference, setup, tmp_path):
    folder, summary = reference
    with cf.ThreadPoolExecutor(2) as ex:
        assert _sweep_into(tmp_path / "t", setup, executor=ex) == summary
    import multiprocessing as mp
    with cf.ProcessPoolExecutor(2, mp_context=mp.get_context("fork")) as ex:
        assert _sweep_into(tmp_path / "p", setup, executor=ex) == summary
    with mp.get_context("fork").Pool(2) as pool:  # apply_async, as multiprocessing's and Ray's Pools
        assert _sweep_into(tmp_path / "m", setup, executor=pool) == summary


def test_queue_and_resume(reference, setup, tmp_path, monkeypatch):
    folder, summary = reference
    q = queue.Queue()
    _sweep_into(tmp_path, setup, percent_complete_queue=q)
    seen = []
    while not q.empty():
        seen.append(q.get())
    assert seen[0] == 0.0 and seen[-1] == 1.0 and seen == sorted(seen) and len(seen) == 11
    assert _sweep.sweep_status(tmp_path) == 1.0
    # a finished sweep rerun with the same settings runs nothing
    calls = []
    monkeypatch.setattr(_sweep, "run_job", lambda spec: calls.append(spec) or (_ for _ in ()).throw(AssertionError))
    assert _sweep_into(tmp_path, setup) == summary
    assert calls == []
    # a lost job (its model file deleted) is the only one rerun
    monkeypatch.undo()
    os.remove(os.path.join(tmp_path, "0.75-model-strict-imitation.safetensors"))
    os.remove(os.path.join(tmp_path, "sweep_summary.json"))
    assert _sweep.sweep_status(tmp_path) < 1.0
    real = _sweep.run_job
    monkeypatch.setattr(_sweep, "run_job", lambda spec: calls.append(spec["index"]) or real(spec))
    assert _sweep_into(tmp_path, setup) == summary
    assert calls == [7]


def test_other_settings_refused_unless_overwrite(reference, setup, tmp_path):
    _sweep_into(tmp_path, setup, lambda_c_stepsize=0.5)
    before = _files(tmp_path)
    with pytest.raises(ValueError, match="other settings.*overwrite=True"):
        _sweep_into(tmp_path, setup, lambda_c_stepsize=0.5, seed=6)
    assert _files(tmp_path) == before
    s = _sweep_into(tmp_path, setup, seed=6, overwrite=True)
    assert len(s["data"]) == 20
    assert set(os.listdir(tmp_path)) == set(_sweep.expected_files(_sweep.lambda_grid(0.25)))


@pytest.mark.parametrize("kw,exc,match", [
    (dict(lambda_c_stepsize=0), ValueError, "lambda_c_stepsize"),
    (dict(lambda_c_stepsize=1.5), ValueError, "lambda_c_stepsize"),
    (dict(lambda_c_stepsize=-0.25), ValueError, "lambda_c_stepsize"),
    (dict(lambda_c_stepsize="0.25"), TypeError, "lambda_c_stepsize"),
    (dict(optimizer_kwargs=None), TypeError, "optimizer_kwargs"),
    (dict(optimizer_kwargs={"lr": -1}), ValueError, "optimizer_kwargs"),
    (dict(optimizer_kwargs={"lrr": 0.1}), TypeError, "optimizer_kwargs"),
    (dict(new_error_loss_kwargs={"bogus": 1}), TypeError, "new_error_loss_kwargs"),
    (dict(number_of_epochs=0), ValueError, "number_of_epochs"),
    (dict(n_jobs=0), ValueError, "n_jobs"),
    (dict(seed=-1), ValueError, "seed"),
    (dict(device="cuda"), ValueError, "device"),
    (dict(executor=object()), TypeError, "executor"),
    (dict(training_set="data"), TypeError, "training_set"),
    (dict(h1="model"), TypeError, "h1"),
])
def test_bad_arguments_before_training(setup, tmp_path, kw, exc, match):
    h1, h2, tr, te = setup
    args = dict(sweeps_folder_path=tmp_path / "s", number_of_epochs=1, h1=h1, h2=h2, training_set=tr,
                test_set=te, batch_size_train=32, batch_size_test=64, OptimizerClass=bcml.optim.SGD,
                optimizer_kwargs=OPT_KW, NewErrorLossClass=BCCrossEntropyLoss,
                StrictImitationLossClass=StrictImitationCrossEntropyLoss, seed=1, progress=False)
    args.update(kw)
    before = {k: v.detach().numpy().copy() for k, v in h2.state_dict().items()}
    with pytest.raises(exc, match=match):
        compatibility_sweep(**args)
    for k, v in h2.state_dict().items():
        np.testing.assert_array_equal(v.detach().numpy(), before[k])
    folder = tmp_path / "s"
    assert not folder.exists() or not [n for n in os.listdir(folder) if n.endswith(".json")]


def test_unwritable_folder_and_width_mismatch(setup, tmp_path):
    h1, h2, tr, te = setup
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ValueError, match="sweeps_folder_path"):
        compatibility_sweep(blocker / "sub", 1, h1, h2, tr, te, 32, 64, bcml.optim.SGD, OPT_KW,
                            BCCrossEntropyLoss, StrictImitationCrossEntropyLoss, seed=1, progress=False)
    h3 = MLPClassifier(9, 3)
    with pytest.raises(ValueError, match="h1.*h2|h2.*h1"):
        compatibility_sweep(tmp_path / "w", 1, h1, h3, tr, te, 32, 64, bcml.optim.SGD, OPT_KW,
                            BCCrossEntropyLoss, StrictImitationCrossEntropyLoss, seed=1, progress=False)
    assert not [n for n in os.listdir(tmp_path / "w") if n.endswith(".json")]


def test_non_replayable_model_runs_in_processes(setup, tmp_path):
    """A forward that reads data in Python cannot be replayed: 2 workers use processes and give
    the same results as 1 worker."""
    class Peeking(MLPClassifier):
        def forward(self, x):
            if float(x.sum()) != float(x.sum()):  # reads data in Python (never true)
                raise AssertionError
            return super().forward(x)

    h1, _h2, tr, te = setup
    bcml.manual_seed(3)
    h2 = Peeking(9, 2)
    args = (1, h1, h2, tr, te, 32, 64, bcml.optim.SGD, OPT_KW, BCCrossEntropyLoss, StrictImitationCrossEntropyLoss)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s1 = compatibility_sweep(tmp_path / "a", *args, lambda_c_stepsize=0.5, seed=2, n_jobs=1, progress=False)
        s2 = compatibility_sweep(tmp_path / "b", *args, lambda_c_stepsize=0.5, seed=2, n_jobs=2, progress=False)
    assert s1 == s2


SCRIPT = textwrap.dedent('''
    import sys
    sys.path.insert(0, {tests!r})
    import bcml
    from bcml.helpers.training import compatibility_sweep
    from bcml.loss import BCCrossEntropyLoss, StrictImitationCrossEntropyLoss
    from test_sweep import _setup, OPT_KW
    h1, h2, tr, te = _setup()
    compatibility_sweep(sys.argv[1], 40, h1, h2, tr, te, 32, 64, bcml.optim.SGD, OPT_KW,
                        BCCrossEntropyLoss, StrictImitationCrossEntropyLoss, seed=5, n_jobs=1,
                        progress=False)
''')


def test_sigkill_and_resume(setup, tmp_path):
    """A sweep killed with SIGKILL part-way and run again ends with the summary of an
    uninterrupted run; the files left by the killed run are complete or absent."""
    script = tmp_path / "run.py"
    script.write_text(SCRIPT.format(tests=os.path.dirname(os.path.abspath(__file__))))
    killed, whole = tmp_path / "killed", tmp_path / "whole"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    proc = subprocess.Popen([sys.executable, str(script), str(killed)], env=env)
    deadline = time.time() + 120
    while time.time() < deadline:
        if killed.exists() and any(n.endswith(".safetensors") for n in os.listdir(killed)):
            break
        if proc.poll() is not None:
            break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    left = os.listdir(killed)
    assert "sweep_summary.json" not in left, "the sweep finished before it could be killed"
    for n in left:
        p = os.path.join(killed, n)
        if n.endswith(".json"):
            json.load(open(p))
        elif n.endswith(".safetensors"):
            bcml.load(p)
    subprocess.run([sys.executable, str(script), str(killed)], env=env, check=True)
    subprocess.run([sys.executable, str(script), str(whole)], env=env, check=True)
    a, b = _files(killed), _files(whole)
    assert set(a) == set(b)
    for n in a:
        assert a[n] == b[n], n


def test_undefined_score_written_as_null(setup, tmp_path):
    """h1 never right (it always answers class 2, absent from the labels): BTC is undefined,
    NaN in the evaluation, null in the files."""
    _h1, _h2, tr, te = setup
    bcml.manual_seed(4)
    h1, h2 = LogisticRegression(9, 3), MLPClassifier(9, 3)
    with bcml.no_grad():
        h1.linear.weight.zero_()
        h1.linear.bias.copy_(bcml.tensor([0.0, 0.0, 50.0]))
    s = compatibility_sweep(tmp_path, 1, h1, h2, tr, te, 32, 64, bcml.optim.SGD, OPT_KW, BCCrossEntropyLoss,
                            StrictImitationCrossEntropyLoss, lambda_c_stepsize=1, seed=0, progress=False)
    assert s["h1_performance"] == 0.0
    assert all(r["btc"] is None for r in s["data"])
    assert all(r["bec"] is not None for r in s["data"])
    text = open(os.path.join(tmp_path, "0-evaluation-data.json")).read()
    assert '"btc": null' in text and "NaN" not in text
