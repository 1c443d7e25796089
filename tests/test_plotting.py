"""bcml.plot_tradeoff: the drawn data are the summary's values (Agg backend). matplotlib is an
optional extra: these tests skip without it, and fail without it when CI is set."""
import math
import os
import shutil
import sys

import pytest

import bcml
from bcml import _sweep
from bcml.helpers.training import compatibility_sweep
from bcml.loss import BCCrossEntropyLoss, StrictImitationCrossEntropyLoss

from conftest import need
from test_sweep import OPT_KW, _setup

KINDS = ("new-error", "strict-imitation")
SPLITS = ("training", "testing")


@pytest.fixture(scope="module")
def plt():
    mpl = need("matplotlib")
    mpl.use("Agg", force=True)
    import matplotlib.pyplot as plt
    yield plt
    plt.close("all")


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """A real sweep on the breast-cancer setup: step 0.5, 1 epoch."""
    folder = tmp_path_factory.mktemp("plot-sweep")
    h1, h2, tr, te = _setup()
    summary = compatibility_sweep(folder, 1, h1, h2, tr, te, 32, 64, bcml.optim.SGD, OPT_KW,
                                  BCCrossEntropyLoss, StrictImitationCrossEntropyLoss,
                                  lambda_c_stepsize=0.5, seed=3, n_jobs=1, progress=False)
    return folder, summary


def _nan(v):
    return math.nan if v is None else v


def _same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert (math.isnan(x) and math.isnan(y)) or x == y, (a, b)


def _check_figure(fig, summary, kinds=KINDS, splits=SPLITS):
    """Every line of both axes holds exactly the summary's values."""
    axes = fig.axes
    assert len(axes) == 2
    for a, score, name in zip(axes, ("btc", "bec"), ("BTC", "BEC")):
        assert a.get_xlabel() == name
        assert a.get_ylabel() == summary["performance_metric"]
        lines = {ln.get_label(): ln for ln in a.get_lines()}
        expected = set()
        for kind in kinds:
            for split in splits:
                rows = sorted((r for r in summary["data"] if r[kind] and r[split]), key=lambda r: r["lambda_c"])
                if not rows:
                    continue
                label = "%s, %s" % (kind, split)
                expected.add(label)
                ln = lines[label]
                _same(list(ln.get_xdata()), [_nan(r[score]) for r in rows])
                _same(list(ln.get_ydata()), [_nan(r["performance"]) for r in rows])
        if summary.get("h1_performance") is not None:
            expected.add("h1 (test)")
            assert list(lines["h1 (test)"].get_ydata()) == [summary["h1_performance"]] * 2
        assert set(lines) == expected
    # one legend entry per line
    assert [t.get_text() for t in axes[0].get_legend().get_texts()] == [ln.get_label() for ln in axes[0].get_lines()]


def test_real_sweep_summary_and_folder(plt, swept):
    folder, summary = swept
    assert len(summary["data"]) == 12
    fig = bcml.plot_tradeoff(summary)
    assert isinstance(fig, plt.Figure)
    _check_figure(fig, summary)
    assert fig.axes[0].get_title() == "model_accuracy against BTC"
    # the same figure from the folder (str and Path)
    for f in (folder, str(folder)):
        fig2 = bcml.plot_tradeoff(f)
        _check_figure(fig2, summary)
        plt.close(fig2)
    plt.close(fig)


def test_partial_folder(plt, swept, tmp_path):
    """A running or interrupted sweep (no summary yet) plots the points written so far."""
    folder, summary = swept
    part = tmp_path / "part"
    part.mkdir()
    for n in (_sweep.MANIFEST, "0-evaluation-data.json", "1-evaluation-data.json", "5-evaluation-data.json"):
        shutil.copy(os.path.join(folder, n), part / n)
    fig = bcml.plot_tradeoff(part)
    partial = dict(summary, data=[r for r in summary["data"] if r["datapoint_index"] in (0, 1, 5)])
    _check_figure(fig, partial)
    labels = {ln.get_label() for ln in fig.axes[0].get_lines()}
    assert labels == {"new-error, training", "new-error, testing", "h1 (test)"}
    plt.close(fig)


SYNTHETIC = {
    "h1_performance": 0.8, "performance_metric": "f1",
    "data": [
        # rows out of lambda order, a null BEC (undefined), h1 line
        {"datapoint_index": 5, "lambda_c": 1.0, "training": False, "testing": True, "new-error": True,
         "strict-imitation": False, "performance": 0.7, "btc": 0.95, "bec": None},
        {"datapoint_index": 1, "lambda_c": 0.0, "training": False, "testing": True, "new-error": True,
         "strict-imitation": False, "performance": 0.9, "btc": 0.6, "bec": 0.5},
        {"datapoint_index": 3, "lambda_c": 0.0, "training": False, "testing": True, "new-error": False,
         "strict-imitation": True, "performance": 0.85, "btc": 0.7, "bec": 0.65},
        {"datapoint_index": 7, "lambda_c": 1.0, "training": False, "testing": True, "new-error": False,
         "strict-imitation": True, "performance": 0.75, "btc": 0.9, "bec": 0.8},
        {"datapoint_index": 0, "lambda_c": 0.0, "training": True, "testing": False, "new-error": True,
         "strict-imitation": False, "performance": 0.95, "btc": 0.65, "bec": 0.55},
    ],
}


def test_synthetic_summary_order_and_nulls(plt):
    fig = bcml.plot_tradeoff(SYNTHETIC, annotate=True, title="update")
    _check_figure(fig, SYNTHETIC)
    btc, bec = fig.axes
    line = {ln.get_label(): ln for ln in btc.get_lines()}["new-error, testing"]
    assert list(line.get_xdata()) == [0.6, 0.95] and list(line.get_ydata()) == [0.9, 0.7]
    assert btc.get_ylabel() == "f1" and fig._suptitle.get_text() == "update"
    # lambda_c written beside the finite points: 5 in the BTC plot, 4 in the BEC plot (one null)
    assert sorted(t.get_text() for t in btc.texts) == ["0", "0", "0", "1", "1"]
    assert len(bec.texts) == 4
    plt.close(fig)


def test_given_axes_and_selection(plt):
    fig, (a, b) = plt.subplots(1, 2)
    out = bcml.plot_tradeoff(SYNTHETIC, ax=(a, b), kinds=["strict-imitation"], splits=["testing"])
    assert out is fig
    _check_figure(fig, SYNTHETIC, kinds=("strict-imitation",), splits=("testing",))
    plt.close(fig)
    no_h1 = dict(SYNTHETIC, h1_performance=None)
    fig = bcml.plot_tradeoff(no_h1)
    assert "h1 (test)" not in {ln.get_label() for ln in fig.axes[0].get_lines()}
    plt.close(fig)


def test_errors(plt, tmp_path):
    with pytest.raises(TypeError, match="sweep summary"):
        bcml.plot_tradeoff([1, 2])
    with pytest.raises(TypeError, match="sweep summary"):
        bcml.plot_tradeoff({"h1_performance": 0.5})
    with pytest.raises(ValueError, match="summary row"):
        bcml.plot_tradeoff({"data": [{"lambda_c": 0.0, "performance": 1.0}]})
    with pytest.raises(FileNotFoundError, match="holds no sweep"):
        bcml.plot_tradeoff(tmp_path)
    with pytest.raises(FileNotFoundError, match="not a folder"):
        bcml.plot_tradeoff(tmp_path / "missing")
    with pytest.raises(ValueError, match="kinds"):
        bcml.plot_tradeoff(SYNTHETIC, kinds=["new_error"])
    with pytest.raises(ValueError, match="splits"):
        bcml.plot_tradeoff(SYNTHETIC, splits=["test"])
    fig, a = plt.subplots()
    with pytest.raises(TypeError, match="two matplotlib Axes"):
        bcml.plot_tradeoff(SYNTHETIC, ax=a)
    plt.close(fig)


def test_missing_matplotlib_names_the_extra(monkeypatch):
    """Runs with or without matplotlib: an import of it that fails says what to install."""
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match=r"pip install matplotlib \(or bcml\[plot\]\)"):
        bcml.plot_tradeoff(SYNTHETIC)


def test_import_bcml_does_not_import_matplotlib():
    import subprocess
    code = "import sys, bcml, bcml.sweep_management; print('matplotlib' in sys.modules, 'mlflow' in sys.modules)"
    # the bcml this test process imported (an installed copy or the in-place build), from a
    # neutral folder
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    out = subprocess.run([sys.executable, "-c", code], cwd=os.path.dirname(os.path.dirname(bcml.__file__)),
                         env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
