"""``python -m bcml demo``: an update h1 -> h2, a lambda_c sweep and its HTML report, in one command.
(``python -m bcml check`` / the ``bcml`` console script: the CI gate of bcml/_check.py.)

    python -m bcml demo                          # UCI Adult, bundled with bcml: works offline
    python -m bcml demo --data fashion-mnist     # Debian's dataset-fashion-mnist (ConvNet, a subset)
    python -m bcml demo --out PATH --quick       # where the report goes; a smaller, faster run

Adult: h1 is a LogisticRegression trained on 5% of the training split (as examples/tabular_update.py),
h2 an MLPClassifier trained on all of it by ``compatibility_sweep`` for every lambda_c in 0, 0.25, ...,
1 with both loss kinds (new-error and strict-imitation). Fashion-MNIST: h1 and h2 are ConvNets, h1 on a
third of a subset, and the report shows the images. The sweep's files go to a folder next to the
report (``report-sweep`` for ``report.html``); the report is one self-contained HTML file written
by ``bcml.widget.save_sweep_report``, which does not need anywidget.
"""
import argparse
import os
import sys
import time

import numpy as np

TEST_IDS = 1000000  # the test rows' instance ids start here, so that no id names two rows

#: per data set and mode: training rows (None: all), test rows, sweep epochs, h1 epochs
_SIZES = {
    ("adult", False): (None, None, 5, 20),
    ("adult", True): (None, None, 2, 10),
    ("fashion-mnist", False): (6000, 1000, 2, 2),
    ("fashion-mnist", True): (2000, 500, 1, 2),
}


def _parser():
    from ._check import _prog   # "bcml" when run as the console script
    p = argparse.ArgumentParser(prog=_prog(), description="bcml's command-line tools")
    sub = p.add_subparsers(dest="command", metavar="{demo,check}")
    sub.required = True
    d = sub.add_parser("demo", help="train h1 and h2, sweep lambda_c and write the HTML report",
                       description=__doc__.split("\n")[0].split(": ", 1)[1])
    d.add_argument("--data", choices=("adult", "fashion-mnist"), default="adult",
                   help="adult (bundled with bcml, the default) or fashion-mnist (Debian's dataset-fashion-mnist)")
    d.add_argument("--out", default="bcml-demo-report.html",
                   help="the HTML report to write (default: bcml-demo-report.html); the sweep goes to the folder "
                        "of the same name without .html, plus -sweep")
    d.add_argument("--quick", action="store_true", help="fewer epochs (and images), for a check")
    d.add_argument("--seed", type=int, default=0, help="seed of the weights, batches and sweep (default 0)")
    # parsed by bcml._check (main() hands it the rest of the command line): listed here for --help
    sub.add_parser("check", add_help=False, help="a CI gate: exit 1 when an update crosses a compatibility "
                   "threshold (see check --help)")
    return p


def _fit(model, X, y, epochs, lr, batch_size, seed):
    """A PyTorch-style loop (SGD with momentum, nll_loss on the model's log-probabilities)."""
    import bcml
    import bcml.nn.functional as F
    from bcml.data import DataLoader
    optimizer = bcml.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    loader = DataLoader(X, y, batch_size=batch_size, shuffle=True, seed=seed, return_ids=False)
    model.train()
    for _ in range(epochs):
        for x, target in loader:
            optimizer.zero_grad()
            loss = F.nll_loss(model(x)[2], target)
            loss.backward()
            optimizer.step()
    model.eval()
    return model


def _adult(quick, seed):
    from bcml.datasets import load_adult
    from bcml.models import LogisticRegression, MLPClassifier
    _, _, epochs, h1_epochs = _SIZES[("adult", quick)]
    ds = load_adult()
    n = ds.X_train.shape[1]
    small = np.random.default_rng(seed).choice(len(ds.y_train), size=len(ds.y_train) // 20, replace=False)
    h1 = _fit(LogisticRegression(n, 2), ds.X_train[small], ds.y_train[small], h1_epochs, 0.05, 64, seed)
    return dict(name="UCI Adult", h1=h1, h1_text="LogisticRegression on %d rows (5%%)" % len(small),
                h2=MLPClassifier(n, 2, hidden_sizes=[50, 10]), h2_text="MLPClassifier on %d rows" % len(ds.y_train),
                X=ds.X_train, y=ds.y_train, Xt=ds.X_test, yt=ds.y_test, epochs=epochs, batch_size=754,
                optimizer_kwargs={"lr": 0.05, "momentum": 0.9}, class_names=list(ds.class_names), images=None)


def _fashion_mnist(quick, seed):
    from bcml.datasets import load_fashion_mnist
    from bcml.models import ConvNet
    n_train, n_test, epochs, h1_epochs = _SIZES[("fashion-mnist", quick)]
    ds = load_fashion_mnist()
    X, y, Xt, yt = ds.X_train[:n_train], ds.y_train[:n_train], ds.X_test[:n_test], ds.y_test[:n_test]
    third = len(y) // 3
    h1 = _fit(ConvNet(), X[:third], y[:third], h1_epochs, 0.05, 64, seed)
    images = (X.reshape(-1, 28, 28), Xt.reshape(-1, 28, 28))
    return dict(name="Fashion-MNIST", h1=h1, h1_text="ConvNet on %d images" % third,
                h2=ConvNet(), h2_text="ConvNet on %d images" % len(y), X=X, y=y, Xt=Xt, yt=yt, epochs=epochs,
                batch_size=64, optimizer_kwargs={"lr": 0.05, "momentum": 0.9},
                class_names=list(ds.class_names), images=images)


def demo(data="adult", out="bcml-demo-report.html", quick=False, seed=0):
    """Runs the demo and returns the report's path."""
    import bcml
    from bcml.data import DataLoader
    from bcml.helpers.training import compatibility_sweep
    from bcml.loss import BCCrossEntropyLoss, StrictImitationCrossEntropyLoss
    from bcml.widget import save_sweep_report

    out = os.path.abspath(out)
    base = out[:-5] if out.lower().endswith(".html") else out
    folder = base + "-sweep"
    if not os.path.isdir(os.path.dirname(out)):
        raise FileNotFoundError("--out: the folder %s does not exist" % os.path.dirname(out))
    t0 = time.perf_counter()
    bcml.manual_seed(seed)
    s = (_adult if data == "adult" else _fashion_mnist)(quick, seed)
    train = DataLoader(s["X"], s["y"], batch_size=s["batch_size"], shuffle=True, seed=seed + 1)
    test = DataLoader(s["Xt"], s["yt"], batch_size=1000, ids=TEST_IDS + np.arange(len(s["yt"])))
    print("%s: h1 = %s, h2 = %s; sweeping lambda_c = 0, 0.25, ..., 1 with both losses (%d epoch%s each)"
          % (s["name"], s["h1_text"], s["h2_text"], s["epochs"], "" if s["epochs"] == 1 else "s"), flush=True)
    summary = compatibility_sweep(folder, s["epochs"], s["h1"], s["h2"], train, test, s["batch_size"], 1000,
                                  bcml.optim.SGD, s["optimizer_kwargs"], BCCrossEntropyLoss,
                                  StrictImitationCrossEntropyLoss, lambda_c_stepsize=0.25, seed=seed,
                                  overwrite=True, progress=False)
    print("h1 test accuracy %.4f" % summary["h1_performance"])
    for r in summary["data"]:
        if r["training"] is False:
            print("  lambda_c %.2f %-16s h2 test accuracy %.4f  BTC %.4f  BEC %.4f"
                  % (r["lambda_c"], "new-error" if r["new-error"] else "strict-imitation", r["performance"],
                     r["btc"], r["bec"]))
    image = None
    if s["images"] is not None:
        train_images, test_images = s["images"]
        image = lambda i: test_images[i - TEST_IDS] if i >= TEST_IDS else train_images[i]  # noqa: E731
    save_sweep_report(folder, out, get_instance_image_by_id=image, class_names=s["class_names"],
                      title="bcml demo: %s, %s -> %s" % (s["name"], s["h1_text"], s["h2_text"]))
    print("sweep folder: %s" % folder)
    print("report written to %s (open it in a browser; %.0f s)" % (out, time.perf_counter() - t0))
    return out


def main(argv=None):
    """``python -m bcml`` and the ``bcml`` console script: runs a subcommand, returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] == "check":
        from . import _check
        return _check.main(argv[1:])
    p = _parser()
    args = p.parse_args(argv)
    from bcml.datasets import DatasetNotFoundError
    try:
        demo(args.data, args.out, args.quick, args.seed)
    except DatasetNotFoundError as e:  # Fashion-MNIST not installed
        p.exit(2, "python -m bcml demo: error: --data %s: cannot find %s in %s (install Debian's "
                  "dataset-fashion-mnist, or put the IDX files in the last folder)\n"
               % (args.data, ", ".join(e.missing), ", ".join(str(f) for f in e.searched)))
    except FileNotFoundError as e:  # --out in a missing folder
        p.exit(2, "python -m bcml demo: error: %s\n" % e)
    return 0


if __name__ == "__main__":
    sys.exit(main())
