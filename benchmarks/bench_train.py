"""Convolutional training speed, bcml vs PyTorch (DESIGN.md's protocol; speedup = PyTorch time /
bcml time, each configuration in its own process, 1 and 2 threads, each library's best):

1. one epoch of the MNIST ConvNet on Fashion-MNIST (60,000 images, batch 64, SGD lr 0.05
   momentum 0.9), with the peak memory of each (peak RSS minus RSS after imports, data and model);
2. ResNet18 forward + backward on 128 images of 32x32, with bcml's effective GFLOP/s (the direct
   convolution's FLOPs over the time) as a fraction of the single-core cblas_sgemm peak (n = 1024)
   measured here.

Both run the same plain training loop in each library. For the ConvNet, bcml runs it three ways:
eager (op by op, as PyTorch eager), with its step function wrapped in bcml.compile (recorded once,
replayed in C: the headline rows, 1a), and through bcml's own epoch loop (train_epoch of
bcml.helpers) to check that a compiled plain loop is as fast as the helpers (ratio printed).
ResNet18 runs bcml eager. Full runs add PyTorch with the model wrapped in torch.compile (inductor, CPU; the
optimizer step stays eager) at the same thread counts, timed after a warm-up run that compiles
(its cold compile cost, warm-up minus median, is reported apart), and the speedups are also given
against the strongest PyTorch setup (the faster of eager and compiled, at its best thread count).
--quick leaves the compiled rows out.

    python benchmarks/bench_train.py [--quick]
"""
import argparse
import json
import os
import resource
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import _common  # noqa: E402


def rss_now_kb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def reset_peak_rss():
    """Resets the kernel's peak-RSS mark (VmHWM) so that loading the data does not count."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_kb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def resnet18_flops(n=128, hw=32, num_classes=10):
    """Forward FLOPs (2 x multiply-adds) of ResNet18's convolutions and fc for n images."""
    def conv(cin, cout, k, s, p, h):
        ho = (h + 2 * p - k) // s + 1
        return 2 * cin * cout * k * k * ho * ho, ho
    total, h = 0, hw
    f, h = conv(3, 64, 7, 2, 3, h)
    total += f
    h = (h + 2 - 3) // 2 + 1  # max-pool 3, s2, p1
    cin = 64
    for planes, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        for b in range(2):
            s = stride if b == 0 else 1
            f1, h1 = conv(cin, planes, 3, s, 1, h)
            f2, _ = conv(planes, planes, 3, 1, 1, h1)
            total += f1 + f2
            if s != 1 or cin != planes:
                total += conv(cin, planes, 1, s, 0, h)[0]
            cin, h = planes, h1
    total += 2 * 512 * num_classes
    return n * total


def worker(lib, task, npz, reps, quick):
    threads = int(os.environ.get("BENCH_THREADS", "1"))
    if lib in ("bcml-compile", "bcml-epoch"):
        return _worker("bcml", task, npz, reps, threads, False, lib.split("-")[1])
    compiled = lib == "torch-compile"
    if compiled:
        # a fresh inductor cache per process, so that the compile time reported is a cold compile
        cache = tempfile.mkdtemp(prefix="bench_inductor_")
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache
        lib = "torch"
        try:
            return _worker(lib, task, npz, reps, threads, True)
        except Exception as e:  # a compile failure is reported in its row, not fatal
            msg = (str(e).strip().splitlines() or [""])[0][:200]
            print(json.dumps({"error": "%s: %s" % (type(e).__name__, msg)}))
            return
        finally:
            import shutil
            shutil.rmtree(cache, ignore_errors=True)
    return _worker(lib, task, npz, reps, threads, False)


def _timed(run, reps, compiled):
    """Median of reps after one warm-up run; with compiled, also the warm-up's extra cost."""
    if not compiled:
        return _common.time_reps(run, reps) + ({},)
    t0 = time.perf_counter()
    run()
    warm = time.perf_counter() - t0
    med, times = _common.time_reps(run, reps, warmup=0)
    return med, times, {"compile_s": max(0.0, warm - med)}


def _worker(lib, task, npz, reps, threads, compiled, bmode="eager"):
    import numpy as np
    if lib == "torch":
        import torch
        import torch.nn as nn
        import torch.nn.functional as F
        torch.set_num_threads(threads)
        torch.manual_seed(0)
        B = torch
    else:
        import bcml
        import bcml.nn as nn
        import bcml.nn.functional as F
        bcml.set_num_threads(threads)
        bcml.manual_seed(0)
        B = bcml

    if task == "convnet":
        d = np.load(npz)
        X, y, order = d["X"], d["y"], d["order"]
        Xt, yt, ot = B.from_numpy(X), B.from_numpy(y), B.from_numpy(order)
        if lib == "torch":
            make = _torch_convnet_class(nn, F)
        else:
            from bcml.models import ConvNet as make
        model = make()
        rss0 = rss_now_kb()
        reset_peak_rss()
        if compiled:
            # one module compiled once; each run restores the same start weights in place
            cm = make()
            fwd = B.compile(cm)

        if bmode == "epoch":   # bcml's own epoch loop (bcml.helpers' train_epoch), same batches
            from bcml._engine import train_epoch
            from bcml.utils.data import DataLoader, TensorDataset
            loader = DataLoader(TensorDataset(Xt[ot], yt[ot]), batch_size=64, shuffle=False)

        def run():
            if compiled:
                m, call = cm, fwd
            else:
                m = call = make()
            m.load_state_dict(model.state_dict())
            opt = B.optim.SGD(m.parameters(), lr=0.05, momentum=0.9)
            m.train()
            if bmode == "epoch":
                return train_epoch(lambda x, t, h1: F.nll_loss(m(x)[2], t), loader, opt)[-1]

            def step(x, t):
                opt.zero_grad()
                _, _, logp = call(x)
                loss = F.nll_loss(logp, t)
                loss.backward()
                opt.step()
                return loss
            if bmode == "compile":   # the same plain loop, its step through bcml.compile
                step = B.compile(step)
            for i in range(0, len(order), 64):
                idx = ot[i:i + 64]
                loss = step(Xt[idx], yt[idx])
            return loss
        med, times, extra = _timed(run, reps, compiled)
        peak = peak_rss_kb()
        print(json.dumps(dict({"median": med, "times": times, "mem_kb": max(0, peak - rss0)}, **extra)))
        return

    if task == "resnet":
        g = np.random.default_rng(0)
        x = B.from_numpy(g.standard_normal((128, 3, 32, 32)).astype(np.float32))
        y = B.from_numpy(g.integers(0, 10, 128))
        if lib == "torch":
            model = _torch_resnet18(nn)
        else:
            from bcml.models import ResNet18
            model = ResNet18()
        model.train()
        fwd = B.compile(model) if compiled else model

        def run():
            model.zero_grad()
            out = fwd(x)
            logits = out[0] if isinstance(out, tuple) else out
            F.cross_entropy(logits, y).backward()
        med, times, extra = _timed(run, reps, compiled)
        print(json.dumps(dict({"median": med, "times": times}, **extra)))
        return

    if task == "peak":
        n = 1024
        a = B.from_numpy(np.random.default_rng(0).standard_normal((n, n)).astype(np.float32))
        b = B.from_numpy(np.random.default_rng(1).standard_normal((n, n)).astype(np.float32))
        with B.no_grad():
            med, _ = _common.time_reps(lambda: a @ b, reps)
        print(json.dumps({"median": med, "gflops": 2 * n ** 3 / med / 1e9}))


def _torch_convnet_class(nn, F):
    """The MNIST ConvNet of BCML's docs in PyTorch (returns the triple)."""
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 10, kernel_size=5)
            self.conv2 = nn.Conv2d(10, 20, kernel_size=5)
            self.conv2_drop = nn.Dropout2d()
            self.fc1 = nn.Linear(320, 50)
            self.fc2 = nn.Linear(50, 10)

        def forward(self, x):
            x = F.relu(F.max_pool2d(self.conv1(x), 2))
            x = F.relu(F.max_pool2d(self.conv2_drop(self.conv2(x)), 2))
            x = x.view(-1, 320)
            x = F.relu(self.fc1(x))
            x = F.dropout(x, training=self.training)
            x = self.fc2(x)
            return x, F.softmax(x, dim=1), F.log_softmax(x, dim=1)
    return Net


def _torch_resnet18(nn):
    """torchvision's resnet18 layout written out (PyPI's torchvision does not import beside this
    machine's torch wheel); returns logits."""
    class Block(nn.Module):
        def __init__(self, cin, planes, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.relu = nn.ReLU()
            self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.downsample = None
            if stride != 1 or cin != planes:
                self.downsample = nn.Sequential(nn.Conv2d(cin, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

        def forward(self, x):
            idt = x if self.downsample is None else self.downsample(x)
            out = self.relu(self.bn1(self.conv1(x)))
            return self.relu(self.bn2(self.conv2(out)) + idt)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(64)
            self.relu = nn.ReLU()
            self.maxpool = nn.MaxPool2d(3, 2, 1)
            layers, cin = [], 64
            for planes, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
                layers.append(nn.Sequential(Block(cin, planes, stride), Block(planes, planes, 1)))
                cin = planes
            self.layer1, self.layer2, self.layer3, self.layer4 = layers
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.fc = nn.Linear(512, 10)

        def forward(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.fc(self.avgpool(x).flatten(1))
    return Net()


REF_NAMES = {"torch": "PyTorch eager", "torch-compile": "PyTorch torch.compile(model) (inductor)"}


def _run(lib, task, npz, reps, q, t):
    """One worker's result; a failing torch.compile worker becomes an error entry."""
    try:
        return _common.run_config(__file__, [lib, task, npz, reps, q], t)
    except RuntimeError as e:
        if lib != "torch-compile":
            raise
        lines = [ln for ln in str(e).splitlines() if ln.strip()]
        return {"error": lines[-1][:200] if lines else "worker failed"}


def compare(title, res, refs, mine="bcml", mine_name="bcml eager"):
    """Prints each PyTorch setup against bcml (res[mine]) at 1 and 2 threads, best of each, and the
    strongest PyTorch setup (fastest of all measured refs and thread counts) against bcml's best.
    res[(lib, threads)] is a worker result (with "median", or "error" for a failed compile)."""
    def thr(t):
        return "%d thread%s" % (t, "s" if t > 1 else "")
    bb = min((1, 2), key=lambda t: res[mine, t]["median"])
    best_b = res[mine, bb]["median"]
    rows = []
    for lib in refs:
        name = REF_NAMES[lib]
        for t in (1, 2):
            r = res[lib, t]
            rows.append(("%s vs %s, %s" % (name, mine_name, thr(t)), r.get("median"), res[mine, t]["median"],
                         r.get("error")))
        ok = [t for t in (1, 2) if "median" in res[lib, t]]
        if ok:
            bt = min(ok, key=lambda t: res[lib, t]["median"])
            rows.append(("%s best (%s) vs bcml best (%s)" % (name, thr(bt), thr(bb)), res[lib, bt]["median"], best_b, None))
        else:
            rows.append(("%s best vs bcml best" % name, None, best_b, "not measured: compile failed"))
    meas = [(res[lib, t]["median"], lib, t) for lib in refs for t in (1, 2) if "median" in res[lib, t]]
    if len(refs) > 1:
        m, lib, t = min(meas)
        rows.append(("strongest PyTorch = %s, %s, vs bcml best (%s)" % (REF_NAMES[lib], thr(t), thr(bb)), m, best_b, None))
    w = max(len(r[0]) for r in rows)
    print(title)
    print("  %-*s %12s %12s %9s" % (w, "configuration", "PyTorch s", "bcml s", "speedup"))
    for label, ref, mine, err in rows:
        if err is not None:
            print("  %-*s %12s %12.4f   %s" % (w, label, "-", mine, err))
        else:
            print("  %-*s %12.4f %12.4f %8.2fx" % (w, label, ref, mine, ref / mine if mine > 0 else float("inf")))
    for lib in refs:
        cs = ["%s %.1f s" % (thr(t), res[lib, t]["compile_s"]) for t in (1, 2) if "compile_s" in res[lib, t]]
        if cs:
            print("  %s cold compile cost (warm-up run minus median run, not in the times above): %s"
                  % (REF_NAMES[lib], ", ".join(cs)))
    sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--worker", nargs="*")
    a = ap.parse_args()
    if a.worker:
        lib, task, npz, reps, quick = a.worker
        return worker(lib, task, npz, int(reps), quick == "1")
    import numpy as np
    from bcml.datasets import load_fashion_mnist
    ds = load_fashion_mnist()
    n = 6400 if a.quick else len(ds.y_train)
    tmp = tempfile.mkdtemp()
    npz = os.path.join(tmp, "fmnist.npz")
    np.savez(npz, X=ds.X_train, y=ds.y_train, order=np.random.default_rng(0).permutation(len(ds.y_train))[:n])
    reps = 2 if a.quick else 5
    q = "1" if a.quick else "0"
    print("bench_train: PyTorch %s; %s" % (_common.torch_version(), "quick" if a.quick else "full"))
    refs = ("torch",) if a.quick else ("torch", "torch-compile")
    res = {}
    for lib in refs + ("bcml", "bcml-compile", "bcml-epoch"):
        for t in (1, 2):
            res[lib, t] = _run(lib, "convnet", npz, reps, q, t)
    title = "MNIST ConvNet, batch 64, SGD(momentum 0.9), the same plain training loop; ConvNet epoch (%d imgs)" % n
    compare("1a. %s; bcml's step through bcml.compile (targets: 3.5x eager and torch.compile)" % title, res, refs,
            "bcml-compile", "bcml.compile")
    compare("1b. %s, both eager (no compile in either)" % title, res, ("torch",))
    med = {k: v["median"] for k, v in res.items() if k[0].startswith("bcml")}
    print("  bcml.compile 2 threads vs 1 thread: %.2fx (target 1.8x); bcml eager: %.2fx"
          % (med["bcml-compile", 1] / med["bcml-compile", 2], med["bcml", 1] / med["bcml", 2]))
    print("  bcml.compile plain loop vs bcml's train_epoch (train_epoch time / compiled loop time, target >= 0.95): "
          "1 thread %.3f, 2 threads %.3f" % tuple(med["bcml-epoch", t] / med["bcml-compile", t] for t in (1, 2)))
    bt = min((1, 2), key=lambda t: res["torch", t]["median"])
    bb = min((1, 2), key=lambda t: res["bcml-compile", t]["median"])
    mt, mb = res["torch", bt]["mem_kb"], res["bcml-compile", bb]["mem_kb"]
    print("  peak memory over imports+data+model: PyTorch eager %.1f MB, bcml.compile %.1f MB, bcml/PyTorch %.2f"
          % (mt / 1024, mb / 1024, mb / mt if mt else float("nan")))
    rr = {}
    rreps = 2 if a.quick else 5
    for lib in refs + ("bcml",):
        for t in (1, 2):
            rr[lib, t] = _run(lib, "resnet", "-", rreps, q, t)
    compare("2. ResNet18 forward + backward, 128x3x32x32", rr, refs)
    rr = {k: v["median"] for k, v in rr.items() if k[0] == "bcml"}
    peak = _common.run_config(__file__, ["bcml", "peak", "-", 3 if a.quick else 5, q], 1)["gflops"]
    flops = 3 * resnet18_flops()  # backward ~ 2x forward
    # effective GFLOP/s: the direct convolution's FLOPs over the time, whatever the algorithm (3x3
    # stride-1 convolutions run as Winograd F(2x2, 3x3), with fewer multiplications), so it may
    # exceed the sgemm peak
    for t in (1, 2):
        g = flops / rr["bcml", t] / 1e9
        print("  bcml ResNet18 at %d thread%s: %.1f effective GFLOP/s = %.0f%% of the single-core sgemm peak"
              % (t, "s" if t > 1 else "", g, 100 * g / peak))
    print("  single-core sgemm peak (n = 1024): %.1f GFLOP/s" % peak)


if __name__ == "__main__":
    main()
