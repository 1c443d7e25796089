"""The widget's HTML report in headless Chromium (Playwright): a real lambda_c sweep on
Fashion-MNIST (6,000 training and 1,000 test images, lambda_c 0, 0.5, 1), saved with save_html and
opened from file:// with no kernel. Checked against the sweep's evaluation JSON: clicks on points
and Venn regions, paging and thumbnails, two independent widgets in one page, the keyboard, the
text alternatives, the palette, the CSV download, and a filter that hides the selection.
Screenshots go to $BCML_ARTIFACTS (default: a temporary folder, printed)."""
import json
import os
import re

import numpy as np
import pytest

from _browser import OKABE_ITO, ConsoleLog, artifacts_dir, hex_colour, launch, need_browser
from conftest import FASHION_MNIST, need, need_path

pytestmark = pytest.mark.slow
PAGE_SIZE = 10
TEST_IDS = 100000  # the test images' instance ids start here, so that no id names two images


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    need("anywidget")
    need_path(FASHION_MNIST)
    import bcml
    import bcml.nn.functional as F
    from bcml.data import DataLoader
    from bcml.datasets import load_fashion_mnist
    from bcml.helpers.training import compatibility_sweep, train
    from bcml.loss import BCCrossEntropyLoss, StrictImitationCrossEntropyLoss
    from bcml.models import ConvNet
    ds = load_fashion_mnist()
    X, y, Xt, yt = ds.X_train[:6000], ds.y_train[:6000], ds.X_test[:1000], ds.y_test[:1000]
    bcml.manual_seed(0)
    h1 = ConvNet()
    train(1, h1, bcml.optim.SGD(h1.parameters(), lr=0.05, momentum=0.9), F.nll_loss,
          DataLoader(X[:2000], y[:2000], batch_size=64, shuffle=True, seed=0), DataLoader(Xt, yt, batch_size=500),
          64, 500)
    h1.eval()
    folder = tmp_path_factory.mktemp("fmnist-sweep")
    compatibility_sweep(str(folder), 1, h1, ConvNet(), DataLoader(X, y, batch_size=64, shuffle=True, seed=1),
                        DataLoader(Xt, yt, batch_size=500, ids=TEST_IDS + np.arange(len(yt))), 64, 500,
                        bcml.optim.SGD, {"lr": 0.05, "momentum": 0.9},
                        BCCrossEntropyLoss, StrictImitationCrossEntropyLoss, lambda_c_stepsize=0.5, seed=0,
                        progress=False)
    images = {"train": np.asarray(X).reshape(-1, 28, 28), "test": np.asarray(Xt).reshape(-1, 28, 28)}
    return folder, images, ds.class_names if hasattr(ds, "class_names") else None


def _evaluation(folder, i):
    with open(os.path.join(folder, "%d-evaluation-data.json" % i), encoding="utf-8") as f:
        return json.load(f)


def _widget(sweep, **kw):
    from bcml.widget import CompatibilityAnalysis
    folder, images, names = sweep
    def image(i):
        return images["test"][i - TEST_IDS] if i >= TEST_IDS else images["train"][i]

    return CompatibilityAnalysis.from_folder(folder, get_instance_image_by_id=image,
                                             class_names=names, page_size=PAGE_SIZE, **kw)


@pytest.fixture(scope="module")
def report(sweep, tmp_path_factory):
    path = tmp_path_factory.mktemp("report") / "report.html"
    _widget(sweep).save_html(path)
    return path


@pytest.fixture(scope="module")
def browser():
    sync_playwright, path = need_browser()
    with sync_playwright() as pw:
        b = launch(pw, path)
        yield b
        b.close()


@pytest.fixture
def page(browser, report):
    ctx = browser.new_context(viewport={"width": 1300, "height": 1100}, accept_downloads=True)
    pg = ctx.new_page()
    log = ConsoleLog(pg)
    pg.goto("file://%s" % report)
    pg.wait_for_selector(".bcml-point[data-index]")
    yield pg
    ctx.close()
    assert log.errors == []


def _click(page_or_locator, selector):
    """A click event on the element: with overlapping shapes (a thin Venn crescent, two points on
    the same spot) a click at the element's centre could land on another one."""
    page_or_locator.locator(selector).first.dispatch_event("click")


def _select(page, index):
    _click(page, ".bcml-point[data-index='%d']" % index)
    page.wait_for_selector(".bcml-details-table")
    page.wait_for_selector(".bcml-venn .bcml-region[data-region]")


def _table_ids(page):
    page.wait_for_selector(".bcml-instances tbody tr[data-id]")
    return [int(v) for v in page.eval_on_selector_all(".bcml-instances tbody tr[data-id]",
                                                      "rows => rows.map(r => r.dataset.id)")]


def _all_pages(page):
    ids = []
    while True:
        ids += _table_ids(page)
        nxt = page.locator(".bcml-instances .bcml-page-next")
        if nxt.is_disabled():
            return ids
        text = page.inner_text(".bcml-instances .bcml-page-text")
        nxt.click()
        page.wait_for_function("t => document.querySelector('.bcml-instances .bcml-page-text').textContent !== t",
                               arg=text)


def _region_ids(ev, region):
    h1, h2, both = (set(x) for x in ev["models_error_overlap"])
    keep = {"progress": h1 - both, "common": both, "regress": h2 - both}[region]
    return [r["instance_id"] for r in ev["error_instances"] if r["instance_id"] in keep]


def test_report_loads_from_file_with_every_point(page, sweep):
    folder, _, _ = sweep
    with open(os.path.join(folder, "sweep_summary.json")) as f:
        summary = json.load(f)
    # two plots, one marker per (lambda_c, loss, split) in each
    idx = page.eval_on_selector_all(".bcml-point[data-index]", "ps => ps.map(p => +p.dataset.index)")
    assert sorted(idx) == sorted(2 * [r["datapoint_index"] for r in summary["data"]])
    assert page.locator(".bcml-start").is_disabled()
    assert "no kernel" in page.inner_text(".bcml-static-note").lower()
    page.screenshot(path=str(artifacts_dir() / "report.png"), full_page=True)


def test_clicking_a_point_updates_the_table_and_the_venn_diagram(page, sweep):
    folder, _, _ = sweep
    for index in (5, 11):  # lambda_c 0.5 new error test; lambda_c 1 strict imitation test
        ev = _evaluation(folder, index)
        if index == 5:  # a real mouse click (point 5 is a circle, drawn above the triangles)
            page.locator(".bcml-point[data-index='5']").first.click()
        else:
            _click(page, ".bcml-point[data-index='%d']" % index)
        page.wait_for_selector(".bcml-venn .bcml-region[data-region]")
        page.wait_for_function("i => document.querySelector('.bcml-point.bcml-selected') && "
                               "+document.querySelector('.bcml-point.bcml-selected').dataset.index === i", arg=index)
        details = dict(page.eval_on_selector_all(".bcml-details-table tr[data-key]",
                                                 "rs => rs.map(r => [r.dataset.key, r.querySelector('td').textContent])"))
        text = " ".join(details.values())
        assert "%.3f" % ev["btc"] in text and "%.3f" % ev["bec"] in text and "%.3f" % ev["h2_performance"] in text
        h1, h2, both = (len(x) for x in ev["models_error_overlap"])
        counts = page.eval_on_selector_all(".bcml-venn .bcml-venn-count", "ts => ts.map(t => +t.textContent)")
        assert sorted(counts) == sorted([h1 - both, both, h2 - both])
        ids = _table_ids(page)
        assert ids == [r["instance_id"] for r in ev["error_instances"]][:PAGE_SIZE]
    text = page.inner_text(".bcml-root")
    assert not re.search(r"\b(null|undefined|NaN)\b", text), text  # no missing value printed as such
    page.screenshot(path=str(artifacts_dir() / "report-selected.png"), full_page=True)


def test_regress_filters_the_table_to_exactly_the_regressed_ids(page, sweep):
    folder, _, _ = sweep
    ev = _evaluation(folder, 5)
    _select(page, 5)
    for region in ("regress", "progress", "common"):
        _click(page, ".bcml-venn .bcml-region[data-region='%s']" % region)
        want = _region_ids(ev, region)
        page.wait_for_function("n => (document.querySelector('.bcml-instances .bcml-caption') || {}).textContent"
                               "?.includes(String(n))", arg=len(want))
        assert _all_pages(page) == want, region
    page.screenshot(path=str(artifacts_dir() / "report-regress.png"), full_page=True)
    page.locator(".bcml-root").screenshot(path=str(artifacts_dir() / "report-regress-widget.png"))


def test_paging_and_thumbnails(page, sweep):
    folder, images, _ = sweep
    ev = _evaluation(folder, 1)
    _select(page, 1)
    first = _table_ids(page)
    total_pages = -(-len(ev["error_instances"]) // PAGE_SIZE)
    assert page.inner_text(".bcml-instances .bcml-page-text").strip() == "1 of %d" % total_pages
    page.click(".bcml-instances .bcml-page-next")
    page.wait_for_function("() => document.querySelector('.bcml-instances .bcml-page-text').textContent.startsWith('2 ')")
    second = _table_ids(page)
    order = [r["instance_id"] for r in ev["error_instances"]]
    assert first == order[:PAGE_SIZE] and second == order[PAGE_SIZE:2 * PAGE_SIZE]
    page.click(".bcml-instances .bcml-page-prev")
    page.wait_for_function("() => document.querySelector('.bcml-instances .bcml-page-text').textContent.startsWith('1 ')")
    assert _table_ids(page) == first
    # thumbnails: decoded images of the right size, pixel-equal to the test images
    page.wait_for_function("() => [...document.querySelectorAll('.bcml-instances img')].length > 0 && "
                           "[...document.querySelectorAll('.bcml-instances img')].every(i => i.complete && i.naturalWidth)")
    sizes = page.eval_on_selector_all(".bcml-instances img", "is => is.map(i => [i.naturalWidth, i.naturalHeight])")
    assert len(sizes) == len(first) and all(s == [28, 28] for s in sizes)
    pixels = page.evaluate("""() => { const img = document.querySelector('.bcml-instances tbody tr img');
        const c = document.createElement('canvas'); c.width = 28; c.height = 28;
        const g = c.getContext('2d'); g.drawImage(img, 0, 0);
        return Array.from(g.getImageData(0, 0, 28, 28).data).filter((_, k) => k % 4 === 0); }""")
    img = images["test"][first[0] - TEST_IDS]  # float32 in [0, 1]: shown as round(255 x)
    assert img.min() >= 0 and img.max() <= 1
    assert np.array_equal(np.array(pixels).reshape(28, 28), np.rint(img * 255).astype(np.uint8))


def test_two_widgets_in_one_page_keep_independent_selections(browser, sweep, tmp_path):
    from bcml.widget import save_html
    path = save_html(tmp_path / "two.html", _widget(sweep), _widget(sweep, title="second"))
    ctx = browser.new_context(viewport={"width": 1300, "height": 1100})
    pg = ctx.new_page()
    log = ConsoleLog(pg)
    pg.goto("file://%s" % path)
    pg.wait_for_selector(".bcml-report[data-bcml='1'] .bcml-point")
    first, second = pg.locator(".bcml-report[data-bcml='0']"), pg.locator(".bcml-report[data-bcml='1']")
    _click(first, ".bcml-point[data-index='5']")
    first.locator(".bcml-venn .bcml-region[data-region='regress']").wait_for()
    assert second.locator(".bcml-details-table").count() == 0 and second.locator(".bcml-point.bcml-selected").count() == 0
    _click(second, ".bcml-point[data-index='3']")
    second.locator(".bcml-venn .bcml-region[data-region='common']").wait_for()
    _click(second, ".bcml-venn .bcml-region[data-region='common']")
    _click(first, ".bcml-venn .bcml-region[data-region='progress']")
    pg.wait_for_timeout(200)
    sel = lambda loc: loc.locator(".bcml-venn .bcml-region.bcml-selected").get_attribute("data-region")  # noqa: E731
    assert sel(first) == "progress" and sel(second) == "common"
    assert first.locator(".bcml-point.bcml-selected").first.get_attribute("data-index") == "5"
    assert second.locator(".bcml-point.bcml-selected").first.get_attribute("data-index") == "3"
    pg.screenshot(path=str(artifacts_dir() / "report-two-widgets.png"), full_page=True)
    ctx.close()
    assert log.errors == []


def test_keyboard_and_text_alternatives(page):
    # Tab from the top of the page reaches a scatter point; Enter selects it
    page.focus("body")
    for _ in range(60):
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement.classList.contains('bcml-point')"):
            break
    else:
        pytest.fail("Tab never reached a point")
    index = int(page.evaluate("() => document.activeElement.dataset.index"))
    page.keyboard.press("Enter")
    page.wait_for_selector(".bcml-details-table")
    assert page.get_attribute(".bcml-point.bcml-selected", "data-index") == str(index)
    # Venn regions and class bars are keyboard targets too
    page.focus(".bcml-venn .bcml-region[data-region='regress']")
    page.keyboard.press("Enter")
    page.wait_for_selector(".bcml-venn .bcml-region.bcml-selected[data-region='regress']")
    # every chart has a text alternative
    charts = page.eval_on_selector_all(
        "svg.bcml-chart-svg, svg.bcml-venn-svg, svg.bcml-classes-svg",
        "ss => ss.map(s => (s.getAttribute('aria-label') || '') + (s.querySelector('title') || {textContent: ''}).textContent)")
    assert len(charts) == 4 and all(len(c.strip()) > 10 for c in charts), charts


def test_palette_is_okabe_ito(page):
    _select(page, 1)
    fills = page.evaluate("""() => {
        const f = sel => [...document.querySelectorAll(sel)].map(e => getComputedStyle(e).fill);
        return {points: f('.bcml-point'), regions: f('.bcml-venn .bcml-region'), bars: f('.bcml-bar'),
                line: [...document.querySelectorAll('.bcml-h1-line')].map(e => getComputedStyle(e).stroke)}; }""")
    for kind, values in fills.items():
        colours = {hex_colour(v) for v in values}
        assert values and colours <= OKABE_ITO, (kind, colours - OKABE_ITO)
    assert len({hex_colour(v) for v in fills["regions"]}) == 3  # three regions, three colours
    assert len({hex_colour(v) for v in fills["points"]}) == 2   # training / testing


def test_download_gives_the_selected_ids(page, sweep):
    folder, _, _ = sweep
    ev = _evaluation(folder, 7)
    _select(page, 7)
    _click(page, ".bcml-venn .bcml-region[data-region='regress']")
    want = _region_ids(ev, "regress")
    page.wait_for_function("n => document.querySelector('.bcml-instances .bcml-caption').textContent.includes(String(n))",
                           arg=len(want))
    with page.expect_download() as dl:
        page.click(".bcml-instances .bcml-download")
    text = open(dl.value.path(), encoding="utf-8").read()
    lines = text.strip().split("\n")
    assert lines[0] == "instance_id,h1_prediction,h2_prediction,ground_truth"
    assert [int(l.split(",")[0]) for l in lines[1:]] == want
    assert dl.value.suggested_filename.endswith(".csv")


def test_a_filter_that_hides_the_selected_point_clears_the_table(page):
    _select(page, 5)  # a test-set point
    page.click(".bcml-filter[data-filter='training']")  # still visible
    page.wait_for_timeout(100)
    assert page.locator(".bcml-details-table").count() == 1
    page.click(".bcml-filter[data-filter='testing']")  # now hidden
    page.wait_for_selector(".bcml-details-table", state="detached")
    assert page.locator(".bcml-instances tbody tr[data-id]").count() == 0
    assert page.locator(".bcml-point.bcml-selected").count() == 0


def test_demo_report_opens_in_the_browser(browser, tmp_path):
    """`python -m bcml demo --quick` (the README's one command) writes a report that opens from
    file:// with every point of its sweep and no console error."""
    import subprocess
    import sys
    from conftest import child_cwd, child_env
    out = tmp_path / "demo.html"
    p = subprocess.run([sys.executable, "-m", "bcml", "demo", "--quick", "--out", str(out)], env=child_env(),
                       cwd=child_cwd(), capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    assert str(out) in p.stdout
    with open(tmp_path / "demo-sweep" / "sweep_summary.json") as f:
        summary = json.load(f)
    ctx = browser.new_context(viewport={"width": 1300, "height": 1100})
    pg = ctx.new_page()
    log = ConsoleLog(pg)
    pg.goto("file://%s" % out)
    pg.wait_for_selector(".bcml-point[data-index]")
    idx = pg.eval_on_selector_all(".bcml-point[data-index]", "ps => ps.map(p => +p.dataset.index)")
    assert sorted(idx) == sorted(2 * [r["datapoint_index"] for r in summary["data"]])
    _select(pg, summary["data"][-1]["datapoint_index"])
    ctx.close()
    assert log.errors == []
