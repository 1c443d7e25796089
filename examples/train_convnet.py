"""The original MNIST notebooks' PyTorch-style training loop, on Fashion-MNIST, with bcml.

    python examples/train_convnet.py                 # Debian's dataset-fashion-mnist package
    python examples/train_convnet.py --data DIR      # a folder with the four IDX files
    python examples/train_convnet.py --download      # fetch them into ~/.cache/bcml

Prints the test accuracy after every epoch.
"""
import argparse
import os
import time

import numpy as np

import bcml
import bcml.nn.functional as F
from bcml.datasets import DatasetNotFoundError, DownloadError, load_fashion_mnist
from bcml.models import ConvNet


def train_epoch(model, optimizer, X, y, batch_size, rng):
    model.train()
    order = bcml.from_numpy(rng.permutation(len(y)))
    Xt, yt = bcml.from_numpy(X), bcml.from_numpy(y)
    for i in range(0, len(y), batch_size):
        idx = order[i:i + batch_size]
        data, target = Xt[idx], yt[idx]
        optimizer.zero_grad()
        _, _, log_probs = model(data)
        loss = F.nll_loss(log_probs, target)
        loss.backward()
        optimizer.step()
    return loss.item()


def test(model, X, y, batch_size=1000):
    model.eval()
    correct = 0
    with bcml.no_grad():
        for i in range(0, len(y), batch_size):
            _, probs, _ = model(bcml.from_numpy(X[i:i + batch_size]))
            pred = probs.argmax(dim=1, keepdim=True)
            correct += pred.eq(bcml.from_numpy(y[i:i + batch_size]).view_as(pred)).sum().item()
    return correct / len(y)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default=None, help="folder with the Fashion-MNIST IDX files")
    p.add_argument("--download", action="store_true")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--limit", type=int, default=None, help="use only the first N training images")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    bcml.manual_seed(args.seed)
    if args.data is not None and not os.path.isdir(args.data):
        p.error("--data: %s is not a folder" % args.data)
    try:
        ds = load_fashion_mnist(args.data, download=args.download)
    except (DatasetNotFoundError, DownloadError) as e:  # worded for --data / --download
        p.error(e.command_line_message("--data", "--download"))
    X, y = ds.X_train, ds.y_train
    if args.limit:
        X, y = X[:args.limit], y[:args.limit]
    model = ConvNet()
    optimizer = bcml.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum)
    rng = np.random.default_rng(args.seed)
    accs = []
    for epoch in range(1, args.epochs + 1):
        t0 = time.perf_counter()
        loss = train_epoch(model, optimizer, X, y, args.batch_size, rng)
        acc = test(model, ds.X_test, ds.y_test)
        accs.append(acc)
        print("epoch %d: last batch loss %.4f, test accuracy %.4f (%.1f s)"
              % (epoch, loss, acc, time.perf_counter() - t0))
    return accs


if __name__ == "__main__":
    main()
