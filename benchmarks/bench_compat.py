"""Compatibility training (h2 updated with BCCrossEntropyLoss against a fixed h1, lambda_c = 1):
bcml's training helper against two PyTorch references running the same loss formula
    mean CE(h2(x), y) + lambda_c * (1/B) * sum over S of CE(h2(x), y)_i,  S = the samples h1 gets right:
  - "vs BCML's algorithm (h1 on every batch)": the original library's algorithm, h1 run under
    no_grad on every batch, then h2, the loss, backward, SGD step (lean: BCML's loss also ran h2
    a second time on S; this reference runs h2 once, as benchmarks/bench_sweep.py's does not);
  - "vs bcml's algorithm (same algorithm)": h1's outputs computed once per data set under no_grad
    (in batches of 1,000, inside the timed region), then on every batch h2 once, the loss from the
    cached h1 outputs, backward, SGD step.

  (a) ConvNet on Fashion-MNIST, one epoch of 60,000 images, batch 64 (10,000 with --quick)
  (b) LogisticRegression on UCI Adult, batch 754, 20 epochs (5 with --quick)

Both sides visit the same batches in the same order (the DataLoader's per-epoch permutations)
and start from the same weights; bcml's time includes computing h1's outputs once. (a) times
bcml.helpers.training.train_compatibility_epoch (argument checks included); (b) the loop under
train_compatibility (h1's outputs cached once, one replay session across the epochs) without
the per-epoch test passes, which the reference does not run either.

    python benchmarks/bench_compat.py [--quick] [--data ../shared/data]
"""
import argparse
import json
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import _common  # noqa: E402

LAMBDA_C, SEED = 1.0, 7
TASKS = {"convnet": dict(batch=64, lr=0.01, momentum=0.9),
         "lr": dict(batch=754, lr=0.05, momentum=0.9)}


def _torch_models(task, f):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    if task == "convnet":
        from bench_train import _torch_convnet_class
        net = _torch_convnet_class(nn, F)

        def make():
            return net()
    else:
        class TorchLR(nn.Module):
            def __init__(self):
                super().__init__()
                self.linear = nn.Linear(f, 2)

            def forward(self, x):
                o = self.linear(x)
                return o, F.softmax(o, dim=-1), F.log_softmax(o, dim=-1)

        def make():
            return TorchLR()
    return torch, F, make


def worker(lib, task, npz, reps, epochs):
    import numpy as np
    d = np.load(npz)
    X, y, perms = d["X"], d["y"], d["perms"][:epochs]
    n = X.shape[0]
    cfg = TASKS[task]
    B = cfg["batch"]
    threads = int(os.environ.get("BENCH_THREADS", "1"))
    if lib in ("torch", "torch-cached"):
        torch, F, make = _torch_models(task, X.shape[1])
        torch.set_num_threads(threads)
        torch.manual_seed(0)
        Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
        perm_t = [torch.from_numpy(p) for p in perms]
        h1 = make()
        h1.eval()
        h2_init = {k: v.clone() for k, v in make().state_dict().items()}

        def run():
            h2 = make()
            h2.load_state_dict(h2_init)
            h2.train()
            opt = torch.optim.SGD(h2.parameters(), lr=cfg["lr"], momentum=cfg["momentum"])
            if lib == "torch-cached":  # bcml's algorithm: h1's outputs once per data set
                with torch.no_grad():
                    right_all = torch.cat([h1(Xt[i:i + 1000])[0] for i in range(0, n, 1000)]).argmax(1) == yt
            for e in range(epochs):
                p = perm_t[e]
                for i in range(0, n, B):
                    idx = p[i:i + B]
                    xb, yb = Xt[idx], yt[idx]
                    if lib == "torch-cached":
                        right = right_all[idx]
                    else:  # BCML's algorithm: h1 on every batch
                        with torch.no_grad():
                            right = h1(xb)[0].argmax(1) == yb
                    logits = h2(xb)[0]
                    ce = F.cross_entropy(logits, yb, reduction="none")
                    loss = ce.mean() + LAMBDA_C * (ce * right).sum() / xb.shape[0]
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
            return float(loss.item())
    else:
        import bcml
        from bcml import _engine
        from bcml.data import DataLoader
        from bcml.helpers.training import train_compatibility_epoch
        from bcml.loss import BCCrossEntropyLoss
        from bcml.models import ConvNet, LogisticRegression
        bcml.set_num_threads(threads)
        bcml.manual_seed(0)

        def make():
            return ConvNet() if task == "convnet" else LogisticRegression(X.shape[1], 2)
        h1 = make()
        h1.eval()
        h2_init = make().state_dict()

        def run():
            h2 = make()
            h2.load_state_dict(h2_init)
            h2.train()
            opt = bcml.optim.SGD(h2.parameters(), lr=cfg["lr"], momentum=cfg["momentum"])
            loader = DataLoader(X, y, batch_size=B, shuffle=True, seed=SEED)
            bc = BCCrossEntropyLoss(h1, h2, LAMBDA_C)
            if epochs == 1:  # the public helper, as a user calls it
                return train_compatibility_epoch(1, h2, opt, bc, loader, B)[1][-1]
            # the loop under train_compatibility (h1 cached once, one replay session for every
            # epoch), without its per-epoch test passes, which the reference does not run either
            data = _engine.as_dataset(loader)
            cache, _, _ = _engine.predict(h1, data)
            session = _engine.Session()
            for e in range(epochs):
                losses = _engine.train_epoch(lambda xb, yb, h: bc(xb, yb, h1_output=h), data, opt, cache,
                                             session=session)
            return losses[-1]

    med, times = _common.time_reps(run, reps)
    print(json.dumps({"median": med, "times": times}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--data", default=os.path.join(HERE, "..", "..", "shared", "data"))
    ap.add_argument("--worker", nargs="*")
    a = ap.parse_args()
    if a.worker:
        lib, task, npz, reps, epochs = a.worker
        return worker(lib, task, npz, int(reps), int(epochs))
    import numpy as np
    from bcml.data import DataLoader
    from bcml.datasets import load_adult, load_fashion_mnist
    tmp = tempfile.mkdtemp()
    reps = 2 if a.quick else 5
    print("bench_compat: BCCrossEntropyLoss(lambda_c=%g), SGD(momentum 0.9); PyTorch %s; %s"
          % (LAMBDA_C, _common.torch_version(), "quick" if a.quick else "full"))
    fm = load_fashion_mnist()
    n = 10000 if a.quick else len(fm.y_train)
    adult = load_adult(a.data)
    jobs = (("convnet", "(a) ConvNet, Fashion-MNIST %d images, 1 epoch" % n,
             fm.X_train[:n].reshape(-1, 1, 28, 28), fm.y_train[:n], 1),
            ("lr", "(b) LogisticRegression, Adult, %d epochs" % (5 if a.quick else 20),
             adult.X_train, adult.y_train, 5 if a.quick else 20))
    for task, title, X, y, epochs in jobs:
        X = np.ascontiguousarray(X, dtype=np.float32)
        y = np.ascontiguousarray(y, dtype=np.int64)
        loader = DataLoader(X, y, batch_size=TASKS[task]["batch"], shuffle=True, seed=SEED)
        perms = np.stack([loader.order(e) for e in range(epochs)]).astype(np.int64)
        npz = os.path.join(tmp, task + ".npz")
        np.savez(npz, X=X, y=y, perms=perms)
        res = {}
        for lib in ("torch", "torch-cached", "bcml"):
            for t in (1, 2):
                res[lib, t] = _common.run_config(__file__, [lib, task, npz, reps, epochs], t)["median"]
        print(title)
        for ref, label in (("torch", "PyTorch vs BCML's algorithm (h1 on every batch)"),
                           ("torch-cached", "PyTorch vs bcml's algorithm (same algorithm)")):
            rows = _common.thread_rows("", {t: res[ref, t] for t in (1, 2)}, {t: res["bcml", t] for t in (1, 2)})
            _common.print_table("  " + label, rows)


if __name__ == "__main__":
    main()
