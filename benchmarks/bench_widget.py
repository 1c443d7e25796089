"""Benchmark: the widget's HTML report with many instances, in headless Chromium.

A ModelComparison of two ConvNets on Fashion-MNIST's 60,000 training images (--quick: the
first 6,000), with every error instance's thumbnail inlined, is saved with save_html and opened
from file:// in Chromium (Debian's, driven by Playwright). Measured:
  open      from navigation to the Venn diagram and the first table page drawn;
  click     from a click on a Venn region (Progress, Common, Regress in turn, 20 clicks) to the
            instance table showing that region's first page; median and maximum.
The target of issue 10: a click updates the table within a second (median and maximum).
There is no reference: BCML's widget needed a Flask server and is not comparable.

Usage: python benchmarks/bench_widget.py [--quick] [--clicks N] [--chromium PATH]
"""
import argparse
import os
import statistics
import sys
import tempfile
import time



def make_report(n, path, seed=0):
    import numpy as np
    import bcml
    import bcml.nn.functional as F
    from bcml.data import DataLoader
    from bcml.datasets import load_fashion_mnist
    from bcml.helpers.training import train
    from bcml.models import ConvNet
    from bcml.widget import ModelComparison
    ds = load_fashion_mnist()
    X, y = ds.X_train[:n], ds.y_train[:n]
    bcml.manual_seed(seed)
    models = []
    for frac, s in ((0.25, 1), (1.0, 2)):  # h1 on a quarter of the images, h2 on all: h2 better
        m = ConvNet()
        k = max(64, int(n * frac))
        opt = bcml.optim.SGD(m.parameters(), lr=0.05, momentum=0.9)
        train(1, m, opt, F.nll_loss, DataLoader(X[:k], y[:k], batch_size=64, shuffle=True, seed=s),
              DataLoader(X[:1000], y[:1000], batch_size=1000), 64, 1000)
        m.eval()
        models.append(m)
    images = np.asarray(X).reshape(-1, 28, 28)
    t0 = time.perf_counter()
    w = ModelComparison(models[0], models[1], DataLoader(X, y, batch_size=1000),
                        get_instance_image_by_id=lambda i: images[i],
                        class_names=["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                                     "Sneaker", "Bag", "Ankle boot"])
    t_eval = time.perf_counter() - t0
    t0 = time.perf_counter()
    w.save_html(path, max_images=n)
    t_save = time.perf_counter() - t0
    ev = w.evaluation
    return ev, t_eval, t_save


def measure(path, ev, clicks, chromium):
    from playwright.sync_api import sync_playwright
    h1, h2, both = (set(x) for x in ev["models_error_overlap"])
    want = {"progress": h1 - both, "common": both, "regress": h2 - both}
    order = [r["instance_id"] for r in ev["error_instances"]]
    first = {k: [i for i in order if i in v][:1] for k, v in want.items()}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True)
        page = browser.new_page(viewport={"width": 1300, "height": 1000})
        errors = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        t0 = time.perf_counter()
        page.goto("file://" + os.path.abspath(path))
        page.wait_for_selector(".bcml-venn [data-region='regress']", timeout=120000)
        page.wait_for_selector(".bcml-instances tbody tr[data-id]", timeout=120000)
        t_open = time.perf_counter() - t0
        regions = ["progress", "common", "regress"]
        times = []
        for k in range(clicks):
            r = regions[k % 3]
            if not first[r]:
                continue
            # from a known state: the region selected before is another one, so the table must change
            t0 = time.perf_counter()
            # a click event on the region (its bounding box's centre may lie on another region)
            page.locator(".bcml-venn .bcml-region[data-region='%s']" % r).dispatch_event("click")
            page.wait_for_function(
                """([id, n]) => { const rows = document.querySelectorAll('.bcml-instances tbody tr[data-id]');
                     const cap = document.querySelector('.bcml-caption');
                     return rows.length > 0 && rows[0].dataset.id === String(id)
                            && cap && cap.textContent.includes(String(n)); }""",
                arg=[first[r][0], len(want[r])], timeout=30000)
            times.append(time.perf_counter() - t0)
        browser.close()
    return t_open, times, errors


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="6,000 instances")
    ap.add_argument("--n", type=int, default=None)
    ap.add_argument("--clicks", type=int, default=20)
    ap.add_argument("--chromium", default=os.environ.get("BCML_CHROMIUM", "/usr/bin/chromium"))
    args = ap.parse_args(argv)
    n = args.n or (6000 if args.quick else 60000)
    if not os.path.exists(args.chromium):
        print("bench_widget: no Chromium at %s (apt install chromium; or --chromium PATH)" % args.chromium)
        return 1 if os.environ.get("CI") else 0
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "report.html")
        ev, t_eval, t_save = make_report(n, path)
        size = os.path.getsize(path)
        t_open, times, errors = measure(path, ev, args.clicks, args.chromium)
    h1, h2, both = (len(x) for x in ev["models_error_overlap"])
    print("Widget report: ModelComparison on %d Fashion-MNIST images (h1 errors %d, h2 errors %d, both %d; "
          "%d error instances with thumbnails)" % (n, h1, h2, both, len(ev["error_instances"])))
    print("  evaluation %.2f s, save_html %.2f s, report %.1f MB" % (t_eval, t_save, size / 1e6))
    print("  open (navigation to Venn + first page)  %.3f s" % t_open)
    print("  Venn click -> table updated, %d clicks: median %.3f s, max %.3f s (target: within 1 s)"
          % (len(times), statistics.median(times), max(times)))
    if errors:
        print("  console errors: %s" % errors[:5])
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
