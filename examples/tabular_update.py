"""An old model, a new model, and how compatible the update is (UCI Adult).

h1 (the model users know): logistic regression trained on 5% of the training data.
h2 (the update): an MLP trained on all of it. Both use a plain PyTorch-style loop.
Then the compatibility report: BTC (does h2 stay right where h1 was right?), BEC (are h2's
errors ones h1 made too?), flip rates and churn, overall and per class.

    python examples/tabular_update.py                             # the Adult copy bundled with bcml
    python examples/tabular_update.py --data DIR                  # a folder with adult.data/.test
    python examples/tabular_update.py --download                  # fetch from UCI into the cache
"""
import argparse
import os

import numpy as np

import bcml
import bcml.nn.functional as F
from bcml.data import DataLoader
from bcml.datasets import DatasetNotFoundError, DownloadError, load_adult
from bcml.models import LogisticRegression, MLPClassifier
from bcml.scores import compatibility_report


def train(model, loader, epochs, lr):
    optimizer = bcml.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    for _ in range(epochs):
        model.train()
        for _ids, x, y in loader:
            optimizer.zero_grad()
            _logits, _probs, log_probs = model(x)
            loss = F.nll_loss(log_probs, y)
            loss.backward()
            optimizer.step()
    return model


def predict(model, X):
    model.eval()
    with bcml.no_grad():
        _logits, probs, _log_probs = model(bcml.from_numpy(X))
    return probs.argmax(dim=1).numpy()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default=None,
                   help="folder holding adult.data and adult.test (default: the copy bundled with bcml)")
    p.add_argument("--download", action="store_true", help="download Adult from UCI if missing")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    bcml.manual_seed(args.seed)
    if args.data is not None and not os.path.isdir(args.data):
        p.error("--data: %s is not a folder" % args.data)
    try:
        adult = load_adult(args.data, download=args.download)
    except (DatasetNotFoundError, DownloadError) as e:  # worded for --data / --download
        p.error(e.command_line_message("--data", "--download"))
    n_features = adult.X_train.shape[1]
    rng = np.random.default_rng(args.seed)
    small = rng.choice(len(adult.y_train), size=len(adult.y_train) // 20, replace=False)

    h1 = LogisticRegression(n_features, 2)
    train(h1, DataLoader(adult.X_train[small], adult.y_train[small], batch_size=64, shuffle=True,
                         seed=args.seed), args.epochs, lr=0.05)
    h2 = MLPClassifier(n_features, 2, hidden_sizes=[50, 10])
    train(h2, DataLoader(adult.X_train, adult.y_train, batch_size=754, shuffle=True,
                         seed=args.seed + 1), args.epochs, lr=0.05)

    p1, p2 = predict(h1, adult.X_test), predict(h2, adult.X_test)
    acc1, acc2 = float(np.mean(p1 == adult.y_test)), float(np.mean(p2 == adult.y_test))
    print("h1 (logistic regression, 5%% of the data) test accuracy: %.4f" % acc1)
    print("h2 (MLP, all of the data)               test accuracy: %.4f" % acc2)
    print()
    report = compatibility_report(p1, p2, adult.y_test, num_classes=2, class_names=adult.class_names)
    print(report)
    return acc1, acc2, report


if __name__ == "__main__":
    main()
