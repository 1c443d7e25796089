"""The anywidget classes (bcml.widget.CompatibilityAnalysis, ModelComparison) without a browser:
constructors and import paths, the front end's messages as ipywidgets delivers them (requests
and trait updates), the background sweep's progress (monotone, throttled, ending in done),
cancel and resume, errors shown and re-raised, independent instances, and save_html's data."""
import inspect
import json
import os
import re
import threading
import time

import numpy as np
import pytest

import bcml
from bcml.loss import BCCrossEntropyLoss, StrictImitationCrossEntropyLoss
from bcml.metrics import model_accuracy

from conftest import need, run_python
from test_sweep import OPT_KW, _setup
from test_sweep_manager import Gate, _sweep_into

need("anywidget")
from bcml.widget import CompatibilityAnalysis, ModelComparison, save_html  # noqa: E402
from bcml.widget import _base  # noqa: E402


@pytest.fixture(scope="module")
def setup():
    return _setup()


@pytest.fixture(scope="module")
def finished(setup, tmp_path_factory):
    folder = tmp_path_factory.mktemp("widget-finished")
    return folder, _sweep_into(folder, setup)


def _analysis(folder, setup, **kw):
    h1, h2, tr, te = setup
    args = dict(lambda_c_stepsize=0.5, OptimizerClass=bcml.optim.SGD, optimizer_kwargs=OPT_KW,
                NewErrorLossClass=BCCrossEntropyLoss, StrictImitationLossClass=StrictImitationCrossEntropyLoss,
                seed=5, n_jobs=1, progress=False)
    args.update(kw)
    return CompatibilityAnalysis(str(folder), 1, h1, h2, tr, te, 32, 64, **args)


class FrontEnd:
    """Stands for a view: sends messages to the widget as ipywidgets delivers them from the
    browser, and keeps what the widget sends back."""

    def __init__(self, widget):
        self.w, self.sent = widget, []
        widget._send = lambda msg, buffers=None: self.sent.append((msg, buffers or []))

    def request(self, method, rid="view:1", **args):
        self.w._handle_msg({"content": {"data": {"method": "custom", "content": {
            "type": "bcml:request", "id": rid, "method": method, "args": args}}}, "buffers": []})
        msg, buffers = [s for s in self.sent if s[0]["method"] == "custom"][-1]
        assert msg["method"] == "custom" and msg["content"]["id"] == rid
        return msg["content"], buffers

    def set(self, **state):
        self.w._handle_msg({"content": {"data": {"method": "update", "state": state, "buffer_paths": []}},
                            "buffers": []})


# ---- constructors and names ------------------------------------------------------------------------
def test_import_paths_and_signatures():
    import bcml.widget.compatibility_analysis as a1
    import bcml.widgets
    import bcml.widgets.compatibility_analysis as a2
    import bcml.widgets.model_comparison as m2
    assert a1.CompatibilityAnalysis is a2.CompatibilityAnalysis is bcml.widgets.CompatibilityAnalysis \
        is CompatibilityAnalysis
    assert m2.ModelComparison is bcml.widgets.ModelComparison is ModelComparison
    params = inspect.signature(CompatibilityAnalysis).parameters
    positional = [n for n, p in params.items() if p.kind == p.POSITIONAL_OR_KEYWORD]
    assert positional == ["folder_name", "number_of_epochs", "h1", "h2", "training_set", "test_set",
                          "batch_size_train", "batch_size_test", "lambda_c_stepsize", "OptimizerClass",
                          "optimizer_kwargs", "NewErrorLossClass", "StrictImitationLossClass", "port",
                          "new_error_loss_kwargs", "strict_imitation_loss_kwargs", "device"]
    kw_only = {n: p.default for n, p in params.items() if p.kind == p.KEYWORD_ONLY}
    for name, default in (("performance_metric", model_accuracy), ("get_instance_image_by_id", None),
                          ("get_instance_metadata", None), ("use_ml_flow", False),
                          ("ml_flow_run_name", "compatibility_sweep"), ("seed", None), ("n_jobs", None),
                          ("executor", None), ("overwrite", False), ("progress", None),
                          ("get_instance_data_by_id", None), ("get_instance_label_by_id", None)):
        assert kw_only[name] == default, name
    assert params["lambda_c_stepsize"].default == 0.25 and params["device"].default == "cpu"
    mc = inspect.signature(ModelComparison).parameters
    assert [n for n, p in mc.items() if p.kind == p.POSITIONAL_OR_KEYWORD] == [
        "h1", "h2", "dataset", "performance_metric", "port", "get_instance_image_by_id", "get_instance_metadata",
        "device"]
    assert mc["class_names"].kind == mc["class_names"].KEYWORD_ONLY
    assert "port" in CompatibilityAnalysis.__doc__ and "ignored" in CompatibilityAnalysis.__doc__


def test_without_anywidget_the_error_names_the_extra():
    out = run_python("""
import sys
sys.modules["anywidget"] = None  # as if it were not installed
import bcml.widget
for make in (lambda: bcml.widget.CompatibilityAnalysis("f", 1, None, None, None, None, 1, 1),
             lambda: bcml.widget.CompatibilityAnalysis.from_folder("."),
             lambda: bcml.widget.ModelComparison(None, None, None)):
    try:
        make()
    except ImportError as e:
        print("ImportError:", e)
""")
    lines = [l for l in out.splitlines() if l.startswith("ImportError")]
    assert len(lines) == 3 and all('pip install "bcml[widget]"' in l for l in lines), out


def test_bad_arguments_raise_at_construction(setup, tmp_path):
    with pytest.raises(ValueError, match="device must be 'cpu'"):
        _analysis(tmp_path, setup, device="cuda")
    with pytest.raises(TypeError, match="get_instance_data_by_id"):
        _analysis(tmp_path, setup, get_instance_data_by_id=3)
    with pytest.raises(TypeError, match="class_names"):
        _analysis(tmp_path, setup, class_names=5)
    with pytest.raises(ValueError, match="page_size"):
        _analysis(tmp_path, setup, page_size=0)
    with pytest.raises(ValueError, match="lambda_c_stepsize"):
        _analysis(tmp_path, setup, lambda_c_stepsize=2)
    with pytest.raises(TypeError, match="number_of_epochs"):
        CompatibilityAnalysis(str(tmp_path), "1", *setup, 32, 64)
    with pytest.raises(FileNotFoundError, match="holds no sweep"):
        CompatibilityAnalysis.from_folder(tmp_path)
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        CompatibilityAnalysis.from_folder(tmp_path / "nope")
    with pytest.raises(TypeError, match="'path'"):
        CompatibilityAnalysis.from_folder(3)
    assert os.listdir(tmp_path) == []  # nothing written by a failed construction
    w = _analysis(tmp_path, setup, port=5000)  # accepted and ignored
    assert w.port == 5000 and w.status == "idle" and w.can_start and w.points == []
    assert w.lambdas == [0.0, 0.5, 1.0]


def test_bcml_defaults_for_none(setup, tmp_path):
    h1, h2, tr, te = setup
    w = CompatibilityAnalysis(str(tmp_path), 1, h1, h2, tr, te, 32, 64)
    m = w.sweep_manager
    assert m.OptimizerClass is bcml.optim.SGD and m.optimizer_kwargs == {}
    assert m.NewErrorLossClass is bcml.loss.BCNLLLoss
    assert m.StrictImitationLossClass is bcml.loss.StrictImitationCrossEntropyLoss
    assert m.lambda_c_stepsize == 0.25 and w.lambdas == [0.0, 0.25, 0.5, 0.75, 1.0]


# ---- browsing a finished sweep ---------------------------------------------------------------------
def test_from_folder_shows_the_sweep_and_answers_requests(finished):
    folder, summary = finished
    w = CompatibilityAnalysis.from_folder(folder, class_names=["benign", "malignant"])
    assert w.status == "done" and w.progress == 1.0 and not w.can_start
    assert w.points == summary["data"] and w.h1_performance == summary["h1_performance"]
    assert w.performance_metric == "model_accuracy" and w.lambdas == [0.0, 0.5, 1.0]
    assert w.class_names == {"0": "benign", "1": "malignant"}
    with pytest.raises(ValueError, match="from_folder"):
        w.start_sweep()
    fe = FrontEnd(w)
    with open(os.path.join(folder, "7-evaluation-data.json")) as f:
        ev = json.load(f)
    reply, bufs = fe.request("evaluation", index=7)
    assert reply["ok"] and reply["result"]["btc"] == ev["btc"] and reply["result"]["error_count"] == len(
        ev["error_instances"])
    h1, h2, both = (set(x) for x in ev["models_error_overlap"])
    reply, bufs = fe.request("page", rid="view:2", index=7, filter={"region": "regress"}, page=0, page_size=100)
    assert [r["instance_id"] for r in reply["result"]["rows"]] == [
        r["instance_id"] for r in ev["error_instances"] if r["instance_id"] in h2 - both]
    reply, _ = fe.request("start", rid="view:3")
    assert not reply["ok"] and "from_folder" in reply["error"]
    # the front end selects a region; Python reads the selection
    fe.set(selection={"point": 7, "region": "regress", "class": None, "bar": None})
    assert w.selected_ids() == [r["instance_id"] for r in reply_rows(w, 7, {"region": "regress"})]
    assert set(w.selected_ids()) == h2 - both


def reply_rows(w, index, flt):
    return w._data.filter_rows(index, flt)


def test_a_filter_that_hides_the_selected_point_clears_the_selection(finished):
    folder, summary = finished
    w = CompatibilityAnalysis.from_folder(folder)
    fe = FrontEnd(w)
    test_point = next(r for r in summary["data"] if r["testing"] and r["strict-imitation"] and r["lambda_c"] == 0.5)
    fe.set(selection={"point": test_point["datapoint_index"], "region": "common", "class": None, "bar": None})
    fe.set(filters=dict(w.filters, training=False))  # the point stays visible
    assert w.selection["point"] == test_point["datapoint_index"]
    fe.set(filters=dict(w.filters, lambda_min=0.0, lambda_max=0.5))
    assert w.selection["point"] == test_point["datapoint_index"]
    fe.set(filters=dict(w.filters, lambda_min=0.75))  # lambda 0.5 hidden
    assert w.selection == {"point": None, "region": None, "class": None, "bar": None}
    assert w.selected_ids() == []
    with pytest.raises(TypeError, match="filters"):
        w.filters = {"training": "yes"}


def test_two_widgets_are_independent(finished):
    folder, _ = finished
    a, b = CompatibilityAnalysis.from_folder(folder), CompatibilityAnalysis.from_folder(folder)
    fa, fb = FrontEnd(a), FrontEnd(b)
    fa.set(selection={"point": 1, "region": "progress", "class": None, "bar": None})
    fb.set(selection={"point": 3, "region": None, "class": 1, "bar": "h2"})
    assert a.selection["point"] == 1 and b.selection["point"] == 3
    fa.set(filters=dict(a.filters, testing=False))
    assert a.selection["point"] is None and b.selection["point"] == 3 and b.filters["testing"]
    fa.request("evaluation", index=0)
    assert [m for m, _ in fb.sent if m["method"] == "custom"] == []  # a's reply went to a's views only


# ---- the sweep in the background -------------------------------------------------------------------
class Recorder:
    def __init__(self, w):
        self.events, self.lock = [], threading.Lock()
        w.observe(self._seen, names=["progress", "status", "points"])

    def _seen(self, change):
        with self.lock:
            self.events.append((time.monotonic(), change["name"], change["new"]))

    def of(self, name):
        return [(t, v) for t, n, v in self.events if n == name]


def test_background_sweep_progress_ends_in_done(setup, finished, tmp_path):
    _, summary = finished
    w = _analysis(tmp_path, setup)
    rec = Recorder(w)
    fe = FrontEnd(w)
    reply, _ = fe.request("start")  # the Start Sweep button
    assert reply["ok"] and reply["result"] == {"started": True}
    assert w.status == "running"
    assert w.start_sweep() is False  # a second start while running does nothing
    assert w.wait(120) is True
    assert w.status == "done" and w.progress == 1.0 and w.error == ""
    assert w.points == summary["data"]  # the same sweep as compatibility_sweep's (seed 5)
    progress = [v for _, v in rec.of("progress")]
    assert progress and progress == sorted(progress) and progress[-1] == 1.0 and all(v < 1.0 for v in progress[:-1])
    times = [t for t, _ in rec.of("progress")][:-1]  # the final push comes with the end, unthrottled
    assert all(b - a >= _base.PUSH_INTERVAL * 0.9 for a, b in zip(times, times[1:])), times
    statuses = [v for _, v in rec.of("status")]
    assert statuses == ["running", "done"]
    # points arrived while the sweep ran, not only at the end
    counts = [len(v) for _, v in rec.of("points")]
    assert counts == sorted(counts) and counts[-1] == 12


def test_cancel_and_resume(setup, finished, tmp_path, monkeypatch):
    _, summary = finished
    w = _analysis(tmp_path, setup)
    gate = Gate(monkeypatch, block_at=3)  # job 2 (lambda_c 0.5, new error)
    assert w.start_sweep()
    assert gate.reached.wait(60)
    fe = FrontEnd(w)
    reply, _ = fe.request("cancel")  # the Cancel button
    assert reply["ok"]
    assert w.status == "cancelling"
    gate.go.set()
    assert w.wait(60)
    assert w.status == "cancelled" and 0 < w.progress < 1.0
    on_disk = sorted(int(n.split("-")[0]) for n in os.listdir(tmp_path) if n.endswith("-evaluation-data.json"))
    assert 0 < len(on_disk) < 12 and [r["datapoint_index"] for r in w.points] == on_disk
    assert w.points == [r for r in summary["data"] if r["datapoint_index"] in on_disk]
    monkeypatch.undo()
    assert w.start_sweep()  # resume
    assert w.wait(120) and w.status == "done" and w.progress == 1.0
    assert w.points == summary["data"]


def test_sweep_errors_show_in_the_widget_and_wait_reraises(setup, tmp_path):
    h1 = setup[0]

    def metric(model, dataset, device="cpu"):
        if model is not h1:
            raise ArithmeticError("metric broke on h2")
        return model_accuracy(model, dataset, device)

    w = _analysis(tmp_path, setup, performance_metric=metric)
    assert w.start_sweep()
    with pytest.raises(ArithmeticError, match="metric broke on h2"):
        w.wait(120)
    deadline = time.monotonic() + 10
    while w.status != "error" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert w.status == "error" and "ArithmeticError" in w.error and "metric broke on h2" in w.error


# ---- ModelComparison ---------------------------------------------------------------------------------
def test_model_comparison(setup):
    from bcml.helpers.training import evaluate_model_performance_and_compatibility_on_dataset as evaluate
    h1, h2, tr, te = setup
    images = lambda i: np.full((4, 4), i % 256, dtype=np.uint8)  # noqa: E731
    w = ModelComparison(h1, h2, te, get_instance_image_by_id=images, class_names={0: "benign", 1: "malignant"},
                        port=1234)
    ev = evaluate(h1, h2, te)
    assert w.evaluation == ev and w.kind == "comparison" and not w.can_start
    assert w.selection["point"] == 0 and w.h1_performance == model_accuracy(h1, te)
    assert w.columns == ["image"] and w.class_names == {"0": "benign", "1": "malignant"}
    fe = FrontEnd(w)
    reply, bufs = fe.request("page", index=0, filter={}, page=0, page_size=4)
    rows = reply["result"]["rows"]
    assert [r["instance_id"] for r in rows] == [r["instance_id"] for r in ev["error_instances"][:4]]
    assert len(bufs) == 4 and all(bytes(b).startswith(b"\x89PNG") for b in bufs)
    reply, _ = fe.request("evaluation", rid="v:2", index=1)
    assert not reply["ok"] and "one evaluation" in reply["error"]
    with pytest.raises(ValueError, match="device"):
        ModelComparison(h1, h2, te, device="cuda")


def test_a_closed_widget_frees_its_models(setup):
    """Once closed (as every ipywidget is freed), nothing keeps a widget or the models it holds
    alive: anywidget's file watcher held every widget made from a path forever, so that a
    notebook or a loop making widgets leaked each pair of models (and every replay guard,
    which looks at each live Module, got slower)."""
    import gc
    import weakref
    from bcml.nn.modules import live_modules
    _h1, _h2, _tr, te = setup
    gc.collect()
    before = len(live_modules())
    refs = []
    for _ in range(3):
        a, b = bcml.models.LogisticRegression(9, 2), bcml.models.LogisticRegression(9, 2)
        w = ModelComparison(a, b, te)
        refs += [weakref.ref(w), weakref.ref(a), weakref.ref(b)]
        w.close()
        del w, a, b
    gc.collect()
    assert [r for r in refs if r() is not None] == []
    assert len(live_modules()) == before


# ---- save_html -------------------------------------------------------------------------------------
def _blocks(path):
    text = open(path, encoding="utf-8").read()
    blocks = dict(re.findall(r'<script type="application/json" id="([^"]+)">(.*?)</script>', text, re.S))
    return text, {k: json.loads(v) for k, v in blocks.items()}


def test_save_html_embeds_everything(finished, setup, tmp_path):
    folder, summary = finished
    metadata_attack = "</script><script>alert(1)</script>"
    w = CompatibilityAnalysis.from_folder(folder, get_instance_image_by_id=lambda i: np.eye(3) * (i % 7),
                                          get_instance_label_by_id=lambda i: {"label": metadata_attack})
    out = w.save_html(tmp_path / "report.html")
    assert out == str(tmp_path / "report.html") and oct(os.stat(out).st_mode & 0o777) == "0o644"
    text, blocks = _blocks(out)
    assert "alert(1)</script>" not in text and "<script>alert" not in text
    esm = blocks["bcml-esm"]
    with open(os.path.join(os.path.dirname(bcml.widget.__file__), "static", "widget.js"), encoding="utf-8") as f:
        assert esm == f.read()
    data = blocks["bcml-data-0"]
    assert data["state"]["static"] is True and data["state"]["can_start"] is False
    assert data["state"]["points"] == summary["data"]
    assert sorted(data["evaluations"], key=int) == [str(i) for i in range(12)]
    ids = {r for ev in data["evaluations"].values() for r in ev["error_instances"]["instance_id"]}
    for i in range(12):
        with open(os.path.join(folder, "%d-evaluation-data.json" % i)) as f:
            ev = json.load(f)
        got = data["evaluations"][str(i)]
        cols = got.pop("error_instances")
        assert [dict(zip(cols, vals)) for vals in zip(*cols.values())] == ev.pop("error_instances")
        assert got == ev
    assert set(data["images"]) == {str(i) for i in ids} and data["rows"][str(min(ids))]["label"] == metadata_attack
    import base64
    assert base64.b64decode(data["images"][str(min(ids))]).startswith(b"\x89PNG")
    assert [n for n in os.listdir(tmp_path) if n.startswith(".tmp-")] == []
    # max_images bounds the thumbnails; two widgets in one page
    h1, h2, tr, te = setup
    out2 = save_html(tmp_path / "two.html", w, ModelComparison(h1, h2, te), max_images=3)
    _, blocks = _blocks(out2)
    assert len(blocks["bcml-data-0"]["images"]) == 3 and blocks["bcml-data-1"]["state"]["kind"] == "comparison"
    with pytest.raises(TypeError, match="argument .widgets."):
        save_html(tmp_path / "x.html", "w")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        w.save_html(tmp_path / "no" / "x.html")
    with pytest.raises(ValueError, match="max_images"):
        w.save_html(tmp_path / "x.html", max_images=-1)
