"""Sweep resume with freshly built loaders (issue 9, part 3): an unshuffled DataLoader's drawn
seed (and epoch) does not count in the settings' fingerprint; a shuffled one built without
seed= makes a rerun impossible to match, and the refusal says how to fix it. Breast-cancer data
of ../shared/data, as tests/test_sweep.py."""
import os

import pytest

import bcml
from bcml import _sweep
from bcml.data import DataLoader
from bcml.helpers.training import compatibility_sweep
from bcml.loss import BCCrossEntropyLoss, StrictImitationCrossEntropyLoss

from test_sweep import OPT_KW, _setup


@pytest.fixture(scope="module")
def models():
    h1, h2, _, _ = _setup()
    from bcml.datasets import load_breast_cancer
    from conftest import SHARED_DATA
    return h1, h2, load_breast_cancer(SHARED_DATA)


def _loaders(d, train_seed=1, shuffle=True):
    """Built afresh, as a new run of a script would: the test loader gets no seed."""
    kw = {} if train_seed is None else {"seed": train_seed}
    return (DataLoader(d.X_train, d.y_train, batch_size=64, shuffle=shuffle, **kw),
            DataLoader(d.X_test, d.y_test, batch_size=128))


def _run(folder, models, loaders, **kw):
    h1, h2, _ = models
    tr, te = loaders
    args = dict(seed=5, progress=False, n_jobs=1, lambda_c_stepsize=0.5)
    args.update(kw)
    return compatibility_sweep(folder, 1, h1, h2, tr, te, 64, 128, bcml.optim.SGD, OPT_KW,
                               BCCrossEntropyLoss, StrictImitationCrossEntropyLoss, **args)


def _interrupt(folder):
    """What an interrupted run leaves: the last job's files and the summary missing."""
    for n in ("1.0-model-strict-imitation.safetensors", "10-evaluation-data.json", "11-evaluation-data.json",
              "sweep_summary.json"):
        os.remove(os.path.join(folder, n))


def test_rerun_with_fresh_loaders_resumes(models, tmp_path, monkeypatch):
    d = models[2]
    summary = _run(tmp_path, models, _loaders(d))
    whole = {n: open(os.path.join(tmp_path, n), "rb").read() for n in os.listdir(tmp_path)}
    _interrupt(tmp_path)
    calls = []
    real = _sweep.run_job
    monkeypatch.setattr(_sweep, "run_job", lambda spec: calls.append(spec["index"]) or real(spec))
    fresh = _loaders(d)
    next(iter(fresh[1]))  # the unshuffled loader's epoch does not count either
    assert _run(tmp_path, models, fresh) == summary
    assert calls == [5]  # only the lost job ran again
    again = {n: open(os.path.join(tmp_path, n), "rb").read() for n in os.listdir(tmp_path)}
    assert again == whole


def test_unseeded_shuffled_loader_refusal_says_pass_seed(models, tmp_path):
    d = models[2]
    _run(tmp_path, models, _loaders(d, train_seed=None))
    _interrupt(tmp_path)
    with pytest.raises(ValueError, match="other settings.*training_set.*pass seed= to the DataLoader "
                                         "to make the sweep resumable"):
        _run(tmp_path, models, _loaders(d, train_seed=None))
    # with a seed the loader is resumable: the rerun over the same seed works after a restart
    _run(tmp_path, models, _loaders(d, train_seed=3), overwrite=True)
    _interrupt(tmp_path)
    _run(tmp_path, models, _loaders(d, train_seed=3))
    assert _sweep.sweep_status(tmp_path) == 1.0


def test_shuffled_seed_still_counts_and_sweep_seed_hint(models, tmp_path):
    d = models[2]
    _run(tmp_path, models, _loaders(d, train_seed=1))
    _interrupt(tmp_path)
    with pytest.raises(ValueError, match="other settings") as info:
        _run(tmp_path, models, _loaders(d, train_seed=2))
    assert "DataLoader" not in str(info.value)  # a seed given differs: no hint about drawn seeds
    with pytest.raises(ValueError, match="compatibility_sweep was called without seed=.*pass seed= to make "
                                         "the sweep resumable"):
        _run(tmp_path, models, _loaders(d, train_seed=1), seed=None)
    # unshuffled with different drawn seeds: the same settings
    _run(tmp_path, models, _loaders(d, shuffle=False, train_seed=None), overwrite=True)
    _interrupt(tmp_path)
    _run(tmp_path, models, _loaders(d, shuffle=False, train_seed=None))
    assert _sweep.sweep_status(tmp_path) == 1.0
