"""Updating a Fashion-MNIST classifier with and without the compatibility loss (BCML's example).

h1, the model users know: the MNIST ConvNet of BCML's documentation, trained for one epoch on
half of Fashion-MNIST's training set. h2, the update: a fresh ConvNet trained on all of it with
``BCCrossEntropyLoss(h1, h2, lambda_c)``, once with lambda_c = 0 (plain cross-entropy) and once
with lambda_c = 1 (errors on samples h1 gets right weigh double), in the loop of BCML's
documentation. Both h2 start from the same weights and see the same batches. For each, the test
accuracy, BTC (of the test images h1 gets right, the share h2 also gets right) and BEC (of h2's
errors, the share h1 makes too).

    python examples/fashion_mnist_compatibility.py              # Debian's dataset-fashion-mnist
    python examples/fashion_mnist_compatibility.py --data DIR   # a folder with the IDX files
    python examples/fashion_mnist_compatibility.py --download   # fetch them into ~/.cache/bcml
    python examples/fashion_mnist_compatibility.py --quick      # 12,000 training, 2,000 test images, lr 0.05
"""
import argparse
import os
import time

import numpy as np

import bcml
import bcml.nn.functional as F
from bcml.data import DataLoader
from bcml.datasets import DatasetNotFoundError, DownloadError, load_fashion_mnist
from bcml.helpers.training import compatibility_scores, train
from bcml.loss import BCCrossEntropyLoss
from bcml.metrics import model_accuracy
from bcml.models import ConvNet


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default=None, help="folder with the Fashion-MNIST IDX files")
    p.add_argument("--download", action="store_true", help="download Fashion-MNIST if missing")
    p.add_argument("--quick", action="store_true", help="12,000 training and 2,000 test images (and lr 0.05)")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=None,
                   help="SGD learning rate (default 0.01, BCML's; 0.05 with --quick, where h1 sees only 6,000 "
                        "images for one epoch and would stay near chance at 0.01)")
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--lambdas", default="0,1", help="comma-separated lambda_c values (default 0,1)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.lr is None:
        args.lr = 0.05 if args.quick else 0.01
    lambdas = [float(v) for v in args.lambdas.split(",")]

    if args.data is not None and not os.path.isdir(args.data):
        p.error("--data: %s is not a folder" % args.data)
    try:
        ds = load_fashion_mnist(args.data, download=args.download)
    except (DatasetNotFoundError, DownloadError) as e:  # worded for --data / --download
        p.error(e.command_line_message("--data", "--download"))
    X, y, X_test, y_test = ds.X_train, ds.y_train, ds.X_test, ds.y_test
    if args.quick:
        X, y, X_test, y_test = X[:12000], y[:12000], X_test[:2000], y_test[:2000]
    half = np.random.default_rng(args.seed).permutation(len(y))[:len(y) // 2]
    test_set = DataLoader(X_test, y_test, batch_size=1000)
    bcml.manual_seed(args.seed)

    # h1: the training helper of BCML (train / test with nll_loss on the log-softmax)
    t0 = time.perf_counter()
    h1 = ConvNet()
    optimizer = bcml.optim.SGD(h1.parameters(), lr=args.lr, momentum=args.momentum)
    train(args.epochs, h1, optimizer, F.nll_loss,
          DataLoader(X[half], y[half], batch_size=args.batch_size, shuffle=True, seed=args.seed),
          test_set, args.batch_size, 1000)
    h1.eval()
    h1_accuracy = model_accuracy(h1, test_set)
    print("h1 (ConvNet, %d images, %d epoch%s): test accuracy %.4f  (%.1f s)"
          % (len(half), args.epochs, "" if args.epochs == 1 else "s", h1_accuracy, time.perf_counter() - t0))

    start = ConvNet()  # h2's initial weights, the same for every lambda_c
    results = []
    for lambda_c in lambdas:
        t0 = time.perf_counter()
        h2 = ConvNet()
        h2.load_state_dict(start.state_dict())
        optimizer = bcml.optim.SGD(h2.parameters(), lr=args.lr, momentum=args.momentum)
        bc_loss = BCCrossEntropyLoss(h1, h2, lambda_c)
        train_loader = DataLoader(X, y, batch_size=args.batch_size, shuffle=True, seed=args.seed + 1,
                                  return_ids=False)  # (data, target) batches, as torch's DataLoader
        bcml.manual_seed(args.seed + 1)  # the same dropout masks for every lambda_c
        h2.train()
        for _epoch in range(args.epochs):
            for data, target in train_loader:
                loss = bc_loss(data, target)
                loss.backward()
                optimizer.step()
                optimizer.zero_grad()
        h2.eval()
        accuracy = model_accuracy(h2, test_set)
        btc, bec = compatibility_scores(h1, h2, test_set)
        results.append({"lambda_c": lambda_c, "accuracy": accuracy, "btc": btc, "bec": bec})
        print("h2 (ConvNet, %d images), lambda_c = %g: test accuracy %.4f, BTC %.4f, BEC %.4f  (%.1f s)"
              % (len(y), lambda_c, accuracy, btc, bec, time.perf_counter() - t0))
    return {"h1_accuracy": h1_accuracy, "h2": results}


if __name__ == "__main__":
    main()
