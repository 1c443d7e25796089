"""`python -m bcml demo`: trains h1 and h2 on the bundled Adult data, sweeps lambda_c and writes the
HTML report, in a child interpreter as a user runs it; the report's embedded data is checked against
the sweep folder's files, and it is written where anywidget cannot be imported."""
import json
import os
import re
import subprocess
import sys

import pytest

from conftest import FASHION_MNIST, child_cwd, child_env, need, need_path, run_python


def _demo(out, *args, env=None, timeout=300):
    p = subprocess.run([sys.executable, "-m", "bcml", "demo", "--out", str(out), *args], env=child_env(env),
                       cwd=child_cwd(), capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return p.stdout


def _blocks(path):
    text = open(path, encoding="utf-8").read()
    blocks = dict(re.findall(r'<script type="application/json" id="([^"]+)">(.*?)</script>', text, re.S))
    return text, {k: json.loads(v) for k, v in blocks.items()}


def _json(folder, name):
    with open(os.path.join(folder, name), encoding="utf-8") as f:
        return json.load(f)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "report.html"
    # offline and with an empty cache: the data is the copy bundled with bcml
    stdout = _demo(out, "--quick", env={"XDG_CACHE_HOME": str(out.parent / "xdg"), "http_proxy": "http://127.0.0.1:9",
                                        "https_proxy": "http://127.0.0.1:9"})
    return out, str(out.parent / "report-sweep"), stdout


def _check_report(report, folder, n_points):
    summary = _json(folder, "sweep_summary.json")
    assert len(summary["data"]) == n_points
    _, blocks = _blocks(report)
    data = blocks["bcml-data-0"]
    state = data["state"]
    assert state["static"] is True and state["can_start"] is False and state["status"] == "done"
    assert state["points"] == summary["data"]
    assert state["lambdas"] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert state["h1_performance"] == summary["h1_performance"]
    assert sorted(data["evaluations"], key=int) == [str(r["datapoint_index"]) for r in summary["data"]]
    for i, got in data["evaluations"].items():
        ev, got = _json(folder, "%s-evaluation-data.json" % i), dict(got)
        cols = got.pop("error_instances")
        assert [dict(zip(cols, vals)) for vals in zip(*cols.values())] == ev.pop("error_instances")
        assert got == ev
    return summary, data


def test_demo_writes_the_report_of_its_sweep(demo):
    report, folder, stdout = demo
    assert "report written to %s" % report in stdout and "sweep folder: %s" % folder in stdout
    # 5 lambdas x 2 losses x (training, test)
    summary, data = _check_report(report, folder, 20)
    assert data["state"]["class_names"] == {"0": "<=50K", "1": ">50K"}
    assert data["images"] == {}
    # the printed numbers are the sweep's: h1 and every test point
    assert "h1 test accuracy %.4f" % summary["h1_performance"] in stdout
    for r in summary["data"]:
        if r["testing"]:
            assert "h2 test accuracy %.4f  BTC %.4f  BEC %.4f" % (r["performance"], r["btc"], r["bec"]) in stdout
    # a quick run is still a real one: h1 beats the majority class (76% of Adult's test rows)
    assert summary["h1_performance"] > 0.80
    manifest = _json(folder, "sweep_manifest.json") if os.path.exists(os.path.join(folder, "sweep_manifest.json")) \
        else None
    if manifest is not None:
        assert manifest["settings"]["seed"] == 0
    assert not (report.parent / "xdg").exists()  # nothing downloaded or cached


def test_demo_report_is_the_widgets_report(demo, tmp_path):
    """save_sweep_report writes what CompatibilityAnalysis.from_folder(...).save_html writes."""
    need("anywidget")
    from bcml.widget import CompatibilityAnalysis
    report, folder, _ = demo
    _, blocks = _blocks(report)
    title = blocks["bcml-data-0"]["state"]["title"]
    w = CompatibilityAnalysis.from_folder(folder, class_names=["<=50K", ">50K"], title=title)
    out = w.save_html(tmp_path / "widget.html")
    assert open(out, encoding="utf-8").read() == open(report, encoding="utf-8").read()


def test_demo_runs_without_anywidget(tmp_path):
    out = tmp_path / "r.html"
    stdout = run_python("""
        import sys
        sys.modules["anywidget"] = None  # import anywidget raises ImportError
        import bcml.widget
        from bcml.__main__ import main
        main(["demo", "--quick", "--out", sys.argv[1]])
        try:
            bcml.widget.CompatibilityAnalysis.from_folder(sys.argv[1][:-5] + "-sweep")
        except ImportError as e:
            print("widget needs:", e)
        """, args=[out], timeout=300)
    assert "widget needs:" in stdout and "anywidget" in stdout
    _check_report(out, str(tmp_path / "r-sweep"), 20)


def test_demo_errors(tmp_path):
    p = subprocess.run([sys.executable, "-m", "bcml", "demo", "--out", str(tmp_path / "no" / "r.html")],
                       env=child_env(), cwd=child_cwd(), capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "--out" in p.stderr and "does not exist" in p.stderr
    assert "Traceback" not in p.stderr
    p = subprocess.run([sys.executable, "-m", "bcml", "demo", "--data", "cifar"], env=child_env(), cwd=child_cwd(),
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "--data" in p.stderr and "fashion-mnist" in p.stderr
    p = subprocess.run([sys.executable, "-m", "bcml"], env=child_env(), cwd=child_cwd(), capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 2 and "demo" in p.stderr
    # Fashion-MNIST absent (Debian's folder moved away, an empty cache): a usage error naming the folders
    code = ("import sys, bcml.datasets._images as im; im.FASHION_MNIST_DIR = sys.argv[1]\n"
            "from bcml.__main__ import main; main(['demo', '--data', 'fashion-mnist', '--out', sys.argv[2]])")
    p = subprocess.run([sys.executable, "-c", code, str(tmp_path / "nothing"), str(tmp_path / "f.html")],
                       env=child_env({"XDG_CACHE_HOME": str(tmp_path / "xdg")}), cwd=child_cwd(),
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    assert "--data fashion-mnist: cannot find train-images-idx3-ubyte" in p.stderr
    assert str(tmp_path / "nothing") in p.stderr and str(tmp_path / "xdg") in p.stderr
    assert not (tmp_path / "xdg").exists() and not (tmp_path / "f.html").exists()


@pytest.mark.slow
def test_demo_fashion_mnist_has_thumbnails(tmp_path):
    need_path(FASHION_MNIST)
    out = tmp_path / "f.html"
    _demo(out, "--quick", "--data", "fashion-mnist", timeout=600)
    _, data = _check_report(out, str(tmp_path / "f-sweep"), 20)
    ids = {i for ev in data["evaluations"].values() for i in ev["error_instances"]["instance_id"]}
    assert data["images"] and set(data["images"]) <= {str(i) for i in ids}
    assert data["state"]["columns"] == ["image"] and data["state"]["class_names"]["0"] == "T-shirt/top"


@pytest.mark.slow
def test_demo_report_in_a_browser(demo):
    from _browser import ConsoleLog, launch, need_browser
    report, folder, _ = demo
    summary = _json(folder, "sweep_summary.json")
    sync_playwright, path = need_browser()
    with sync_playwright() as pw:
        b = launch(pw, path)
        try:
            pg = b.new_page(viewport={"width": 1300, "height": 1100})
            log = ConsoleLog(pg)
            pg.goto("file://%s" % report)
            pg.wait_for_selector(".bcml-point[data-index]")
            idx = pg.eval_on_selector_all(".bcml-point[data-index]", "ps => ps.map(p => +p.dataset.index)")
            # two plots (BTC and BEC), one marker per point in each
            assert sorted(idx) == sorted(2 * [r["datapoint_index"] for r in summary["data"]])
            pg.locator(".bcml-point[data-index='1']").first.dispatch_event("click")
            pg.wait_for_selector(".bcml-details-table")
            pg.wait_for_selector(".bcml-instances tbody tr[data-id]")
            assert log.errors == []
        finally:
            b.close()
