"""Training LogisticRegression and MLPClassifier on UCI Adult (batch 754, 20 epochs, SGD with
momentum) with the same plain Python loop in bcml and in PyTorch; prints speedups
(PyTorch time / bcml time) at 1 and 2 threads and at each library's best. bcml runs the loop
twice: with its step function through bcml.compile (recorded once, replayed in C; issue 12's
target 5x PyTorch eager) and eager (op by op, as PyTorch eager).

    python benchmarks/bench_tabular.py [--quick] [--data ../shared/data]
"""
import argparse
import json
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import _common  # noqa: E402

BATCH, EPOCHS, LR, MOMENTUM = 754, 20, 0.05, 0.9


def worker(lib, model_name, npz, reps, epochs):
    compiled = lib == "bcml-compile"
    lib = "bcml" if compiled else lib
    import numpy as np
    d = np.load(npz)
    X, y, perms = d["X"], d["y"], d["perms"][:epochs]
    n, f = X.shape
    threads = int(os.environ.get("BENCH_THREADS", "1"))
    if lib == "torch":
        import torch
        import torch.nn as nn
        import torch.nn.functional as F
        torch.set_num_threads(threads)
        torch.manual_seed(0)
        Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
        perm_t = [torch.from_numpy(p) for p in perms]

        class TorchLR(nn.Module):
            def __init__(self):
                super().__init__()
                self.linear = nn.Linear(f, 2)

            def forward(self, x):
                o = self.linear(x)
                return o, F.softmax(o, dim=-1), F.log_softmax(o, dim=-1)

        class TorchMLP(nn.Module):
            def __init__(self):
                super().__init__()
                self.layers = nn.Sequential(nn.Linear(f, 50), nn.ReLU(), nn.Linear(50, 10), nn.ReLU(), nn.Linear(10, 2))

            def forward(self, x):
                o = self.layers(x)
                return o, F.softmax(o, dim=-1), F.log_softmax(o, dim=-1)

        make = TorchLR if model_name == "lr" else TorchMLP
        nll, sgd = F.nll_loss, torch.optim.SGD
    else:
        import bcml
        import bcml.nn.functional as F
        from bcml.models import LogisticRegression, MLPClassifier
        bcml.set_num_threads(threads)
        bcml.manual_seed(0)
        Xt, yt = bcml.from_numpy(X), bcml.from_numpy(y)
        perm_t = [bcml.from_numpy(p) for p in perms]
        make = (lambda: LogisticRegression(f, 2)) if model_name == "lr" else (lambda: MLPClassifier(f, 2, [50, 10]))
        nll, sgd = F.nll_loss, bcml.optim.SGD

    def run():
        model = make()
        opt = sgd(model.parameters(), lr=LR, momentum=MOMENTUM)
        model.train()

        def step(xb, yb):
            opt.zero_grad()
            _, _, logp = model(xb)
            loss = nll(logp, yb)
            loss.backward()
            opt.step()
            return loss
        if compiled:
            step = bcml.compile(step)
        for e in range(epochs):
            p = perm_t[e]
            for i in range(0, n, BATCH):
                idx = p[i:i + BATCH]
                loss = step(Xt[idx], yt[idx])
        return float(loss.item())

    med, times = _common.time_reps(run, reps)
    print(json.dumps({"median": med, "times": times, "final_loss": run() if reps == 0 else None}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--data", default=os.path.join(HERE, "..", "..", "shared", "data"))
    ap.add_argument("--worker", nargs="*")
    a = ap.parse_args()
    if a.worker:
        lib, model_name, npz, reps, epochs = a.worker
        return worker(lib, model_name, npz, int(reps), int(epochs))
    import numpy as np
    from bcml.datasets import load_adult
    ds = load_adult(a.data)
    reps, epochs = (2, 5) if a.quick else (5, EPOCHS)
    rng = np.random.default_rng(0)
    perms = np.stack([rng.permutation(len(ds.y_train)) for _ in range(EPOCHS)]).astype(np.int64)
    tmp = tempfile.mkdtemp()
    npz = os.path.join(tmp, "adult.npz")
    np.savez(npz, X=ds.X_train, y=ds.y_train.astype(np.int64), perms=perms)
    print("bench_tabular: Adult %d x %d, batch %d, %d epochs, SGD(momentum=%.1f); PyTorch %s; %s"
          % (ds.X_train.shape[0], ds.X_train.shape[1], BATCH, epochs, MOMENTUM, _common.torch_version(),
             "quick" if a.quick else "full"))
    for model_name, label in (("lr", "LogisticRegression"), ("mlp", "MLPClassifier[50,10]")):
        res = {}
        for lib in ("torch", "bcml-compile", "bcml"):
            for n in (1, 2):
                res[lib, n] = _common.run_config(__file__, [lib, model_name, npz, reps, epochs], n)["median"]
        ref = {n: res["torch", n] for n in (1, 2)}
        _common.print_table("training time (%d epochs), PyTorch eager vs bcml.compile (target 5x)" % epochs,
                            _common.thread_rows(label, ref, {n: res["bcml-compile", n] for n in (1, 2)}))
        _common.print_table("training time (%d epochs), PyTorch eager vs bcml eager" % epochs,
                            _common.thread_rows(label, ref, {n: res["bcml", n] for n in (1, 2)}))


if __name__ == "__main__":
    main()
