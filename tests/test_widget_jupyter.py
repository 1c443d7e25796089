"""The widgets in real notebook front ends: JupyterLab 4 and Notebook 7, each a server on
localhost with a token, started and stopped by the test, driven by headless Chromium
(Playwright). A notebook constructs CompatibilityAnalysis on the breast-cancer data; the test
clicks Start Sweep in the browser, sees the progress reach done, clicks a point and sees the Venn
diagram; a second notebook renders ModelComparison. Screenshots go to $BCML_ARTIFACTS."""
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from _browser import ConsoleLog, artifacts_dir, launch, need_browser
from conftest import SHARED_DATA, child_env, need, need_path

pytestmark = pytest.mark.slow

SETUP = """
import bcml, bcml.nn.functional as F
from bcml.data import DataLoader
from bcml.datasets import load_breast_cancer
from bcml.helpers.training import train
from bcml.models import LogisticRegression, MLPClassifier
from bcml.loss import BCCrossEntropyLoss, StrictImitationCrossEntropyLoss
d = load_breast_cancer(%r)
bcml.manual_seed(0)
h1, h2 = LogisticRegression(9, 2), MLPClassifier(9, 2)
tr = DataLoader(d.X_train, d.y_train, batch_size=32, shuffle=True, seed=1)
te = DataLoader(d.X_test, d.y_test, batch_size=64)
train(2, h1, bcml.optim.SGD(h1.parameters(), lr=0.05), F.nll_loss, tr, te, 32, 64)
h1.eval()
"""

ANALYSIS = """
from bcml.widget import CompatibilityAnalysis
analysis = CompatibilityAnalysis("sweep-bc", 2, h1, h2, tr, te, 32, 64, lambda_c_stepsize=0.5,
                                 OptimizerClass=bcml.optim.SGD, optimizer_kwargs={"lr": 0.05},
                                 NewErrorLossClass=BCCrossEntropyLoss,
                                 StrictImitationLossClass=StrictImitationCrossEntropyLoss,
                                 seed=0, n_jobs=1, progress=False, class_names=["benign", "malignant"])
analysis
"""

COMPARISON = """
train(3, h2, bcml.optim.SGD(h2.parameters(), lr=0.05), F.nll_loss, tr, te, 32, 64)
from bcml.widget import ModelComparison
row = lambda i: {name: "%.2f" % v for name, v in zip(d.feature_names, d.X_test[i])}
ModelComparison(h1, h2, te, class_names=["benign", "malignant"], get_instance_data_by_id=row,
                get_instance_label_by_id=lambda i: {"label": int(d.y_test[i])})
"""


def _notebook(path, sources):
    cells = [{"cell_type": "code", "execution_count": None, "id": "cell%d" % i, "metadata": {}, "outputs": [],
              "source": s.strip()} for i, s in enumerate(sources)]
    nb = {"cells": cells, "nbformat": 4, "nbformat_minor": 5,
          "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}}}
    path.write_text(json.dumps(nb), encoding="utf-8")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(params=["lab", "notebook"], ids=["jupyterlab4", "notebook7"])
def server(request, tmp_path):
    need("anywidget")
    need_path(SHARED_DATA)
    app = request.param
    mod = need("jupyterlab" if app == "lab" else "notebook")
    version = mod.__version__
    assert version.split(".")[0] == ("4" if app == "lab" else "7"), version
    root = tmp_path / "root"
    root.mkdir()
    _notebook(root / "analysis.ipynb", [SETUP % str(SHARED_DATA), ANALYSIS])
    _notebook(root / "comparison.ipynb", [SETUP % str(SHARED_DATA), COMPARISON])
    port, token = _free_port(), "bcml-test-%d" % os.getpid()
    # no "get notified about news?" pop-up over the page
    (tmp_path / "config" / "labconfig").mkdir(parents=True)
    (tmp_path / "config" / "labconfig" / "page_config.json").write_text(json.dumps(
        {"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}))
    env = child_env({"JUPYTER_CONFIG_DIR": str(tmp_path / "config"), "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
                     "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "settings"),
                     "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces")})
    cmd = [sys.executable, "-m", "jupyter", app, "--no-browser", "--port=%d" % port, "--ServerApp.port_retries=0",
           "--ServerApp.ip=127.0.0.1", "--IdentityProvider.token=" + token, "--ServerApp.root_dir=" + str(root),
           "--allow-root"]
    if app == "lab":
        cmd += ["--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    log = open(tmp_path / "server.log", "w")
    p = subprocess.Popen(cmd, env=env, cwd=str(root), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = "http://127.0.0.1:%d" % port
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen("%s/api/status?token=%s" % (base, token), timeout=2)
                break
            except OSError:
                if p.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("the %s server did not start:\n%s" % (app, (tmp_path / "server.log").read_text()[-3000:]))
                time.sleep(0.3)
        yield app, base, token, root
    finally:
        p.terminate()
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        log.close()


def _open(page, app, base, token, name):
    # JupyterLab: ?reset opens only this notebook (no tabs restored from the last workspace)
    path = "/lab/tree/%s?reset&" % name if app == "lab" else "/notebooks/%s?" % name
    page.goto("%s%stoken=%s" % (base, path, token))
    page.wait_for_selector(".jp-Notebook .jp-Cell .jp-InputArea-editor", timeout=90000)
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator:visible", timeout=90000)


def _run_all_cells(page):
    """Runs every cell of the notebook in view (menu Run > Run All Cells, as a user would; again
    if the kernel was not ready to take them), until each has finished."""
    prompts = ".jp-Notebook:visible .jp-CodeCell .jp-InputPrompt"
    n = page.locator(".jp-Notebook:visible .jp-CodeCell").count()
    started = ("s => [...document.querySelectorAll(s)].filter(p => p.offsetParent)"
               ".some(p => /\\[(\\*|\\d+)\\]/.test(p.textContent))")
    for attempt in range(3):
        page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']:visible", timeout=90000)
        # make this notebook the current one (JupyterLab's menu acts on the notebook last focused)
        page.locator(".jp-Notebook:visible .jp-CodeCell .jp-InputArea-editor").first.click()
        page.keyboard.press("Escape")
        page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
        page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
        try:
            page.wait_for_function(started, arg=prompts.replace(":visible", ""), timeout=30000)
            break
        except Exception:
            if attempt == 2:
                raise
    page.wait_for_function("([s, n]) => { const ps = [...document.querySelectorAll(s)].filter(p => p.offsetParent);"
                           " return ps.length >= n && ps.slice(0, n).every(p => /\\[\\d+\\]/.test(p.textContent)); }",
                           arg=[prompts.replace(":visible", ""), n], timeout=180000)


def test_widgets_in_the_front_end(server):
    sync_playwright, chromium = need_browser()
    app, base, token, root = server
    shots = artifacts_dir()
    with sync_playwright() as pw:
        browser = launch(pw, chromium)
        ctx = browser.new_context(viewport={"width": 1300, "height": 2600})  # the whole widget in view
        page = ctx.new_page()
        log = ConsoleLog(page)
        try:
            _drive(page, app, base, token, root, shots)
        except Exception:
            page.screenshot(path=str(shots / ("%s-failure.png" % app)), full_page=True)
            outputs = page.eval_on_selector_all(".jp-OutputArea", "os => os.map(o => o.innerText)")
            raise AssertionError("the %s test failed; screenshot %s; cell outputs:\n%s\nconsole errors:\n%s"
                                 % (app, shots / ("%s-failure.png" % app), "\n".join(outputs)[-4000:],
                                    "\n".join(log.errors)[-3000:]))
        finally:
            browser.close()
    widget_errors = [e for e in log.errors if "bcml" in e.lower() or "anywidget" in e.lower()]
    assert widget_errors == []


def _drive(page, app, base, token, root, shots):
    if True:
        _open(page, app, base, token, "analysis.ipynb")
        _run_all_cells(page)
        start = page.locator(".bcml-start")
        start.wait_for(timeout=120000)
        page.wait_for_function("() => !document.querySelector('.bcml-start').disabled", timeout=30000)
        start.click()
        page.wait_for_function(
            "() => +document.querySelector('.bcml-progress').getAttribute('aria-valuenow') >= 100 && "
            "/done/i.test(document.querySelector('.bcml-status').textContent)", timeout=240000)
        assert sorted(os.listdir(root / "sweep-bc")).count("sweep_summary.json") == 1
        with open(root / "sweep-bc" / "sweep_summary.json") as f:
            summary = json.load(f)
        page.wait_for_function("n => document.querySelectorAll('.bcml-point[data-index]').length === n",
                               arg=2 * len(summary["data"]), timeout=30000)
        page.locator(".bcml-point[data-index='5']").first.dispatch_event("click")  # points overlap here
        page.wait_for_selector(".bcml-venn .bcml-region[data-region]", timeout=30000)
        page.wait_for_selector(".bcml-details-table", timeout=30000)
        with open(root / "sweep-bc" / "5-evaluation-data.json") as f:
            ev = json.load(f)
        h1, h2, both = (len(x) for x in ev["models_error_overlap"])
        counts = page.eval_on_selector_all(".bcml-venn .bcml-venn-count", "ts => ts.map(t => +t.textContent)")
        assert sorted(counts) == sorted([h1 - both, both, h2 - both])
        page.screenshot(path=str(shots / ("%s-compatibility-analysis.png" % app)), full_page=True)
        page.locator(".bcml-root:visible").screenshot(path=str(shots / ("%s-compatibility-analysis-widget.png" % app)))

        _open(page, app, base, token, "comparison.ipynb")
        _run_all_cells(page)
        # (JupyterLab keeps the first notebook's widget in a hidden tab)
        page.wait_for_selector(".bcml-venn .bcml-region[data-region]:visible", timeout=120000)
        page.wait_for_selector(".bcml-instances tbody tr[data-id]:visible", timeout=30000)
        data = page.inner_text(".bcml-instances tbody tr[data-id]:visible td.bcml-data >> nth=0")
        assert "clump_thickness" in data, data  # the tabular Data column (get_instance_data_by_id)
        text = page.inner_text(".bcml-root:visible")
        assert not re.search(r"\b(null|undefined|NaN)\b", text), text
        page.screenshot(path=str(shots / ("%s-model-comparison.png" % app)), full_page=True)
        page.locator(".bcml-root:visible").screenshot(path=str(shots / ("%s-model-comparison-widget.png" % app)))
