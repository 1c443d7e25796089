"""The lambda_c sweep: bcml.helpers.training.compatibility_sweep against a sequential PyTorch
implementation of the original library's compatibility_sweep ("vs BCML's algorithm
(sequential)") and a PyTorch sweep with bcml's algorithm in 2 processes, in the same run (DESIGN.md's
protocol; speedup = PyTorch time / bcml time, each configuration in its own process).

  (1) MNIST-style sweep of the original docs: ConvNet on 10,000 Fashion-MNIST training images
      (the first 2,000 test images as test set), batch 64, 3 epochs per job
  (2) LogisticRegression on UCI Adult (its training and test files), batch 754, 20 epochs per job

Both: lambda_c step 0.25 (0, 0.25, 0.5, 0.75, 1.0), new error = cross-entropy
(bcml.loss.BCCrossEntropyLoss), strict imitation = soft cross-entropy against softmax(h1's
logits) (bcml.loss.StrictImitationCrossEntropyLoss), SGD(momentum 0.9; lr 0.01 for (1), 0.05 for
(2)), test batches of 1,000: 10 jobs of (lambda_c, loss kind). h1 is trained briefly by the
driver with bcml (one epoch, batch 64, on the first 5,000 training samples) and h2's initial
weights drawn once; both sides load the same arrays. Every job visits the same batches in the
same order on both sides: epoch e uses DataLoader(X, y, batch_size=B, shuffle=True,
seed=SEED).order(e), and every job starts at epoch 0.

The reference follows the original algorithm (backwardcompatibilityml.helpers.training:
compatibility_sweep -> train_new_error / train_strict_imitation -> train_compatibility), one job
at a time: for each lambda_c, for each loss kind, a deepcopy of h2 and a fresh SGD; on every
training batch h1 under no_grad on the
batch, h2 on the batch for the base term and h2 AGAIN on the samples h1 got right (S) for the
dissonance, as BCML's losses ran it, with SPEC section 3's values:
    new error:        mean CE(h2(x), y) + lambda_c * (1/B) * sum_{i in S} CE(h2(x_S), y_S)_i
    strict imitation: mean CE(h2(x), y) + lambda_c * (1/B) * sum_{i in S} softCE(softmax(h1 x)_i, h2(x_S)_i)
then backward and the SGD step; then the model is saved (torch.save into a temporary folder)
and evaluated on the training and the test set (h1's and h2's labels in eval mode, accuracy, BTC,
BEC in NumPy), and a summary is written. The reference is, if anything, lean: it leaves out the
loss test passes train_compatibility ran over the test set before the first epoch and after every
epoch (their values are not used by the sweep, and bcml does not run them), runs h1 once
per batch (BCML's strict-imitation losses ran h1 a second time on S, with gradient tracking),
drops test_compatibility's unused accuracy pass, and runs each model once over a set in the
evaluation (the original ran h1 and h2 four times per batch there, plus the metric's pass).
It evaluates the strict-imitation model in the strict-imitation test row (the original
evaluated the new-error model there; SPEC section 3).

A second PyTorch reference, "vs bcml's algorithm (same algorithm)", runs the sweep as bcml does
(torch_sweep_cached): h1's logits on the training set and its labels on both sets computed once
per sweep under no_grad, then every job runs h2 once per batch with the same loss values (the
dissonance summed over S from that one pass, h1's terms from the cache) and evaluates only h2.
Its 10 jobs are split statically over 2 forked processes of 1 PyTorch thread each; the time is
the wall time of the whole sweep (h1's cache, process start, every job, the summary).

bcml's side is one call of compatibility_sweep (its files go to a fresh temporary folder per
repetition), with n_jobs=1 (one worker, bcml at 1 thread) and n_jobs=2 (two workers, the process
allowed 2 threads). The sequential reference runs at 1 and 2 PyTorch threads; its best is the faster.
For (2), where h2 has no dropout and so running h2 once or twice gives the same values, the
driver also prints the largest difference between the summaries (accuracy, BTC, BEC) of the
sequential reference and bcml, and of the two PyTorch references.

With --bcml-original DIR, the original package runs as a third reference (a benchmark reference
only, never a dependency): DIR is the unpacked output of `pip download
backwardcompatibilityml==1.4.2 --no-deps` (the folder holding backwardcompatibilityml/, or the
one above an sdist's backwardcompatibilityml-1.4.2/). Its worker puts DIR first on sys.path,
stubs the modules of ORIGINAL_STUBS (mlflow) with empty types.ModuleType objects when they are
not installed (its training helpers import mlflow but call it only with use_ml_flow=True; flask
and PIL are imported only by its widget and SweepManager modules, which are not loaded), imports
backwardcompatibilityml.helpers.training and .loss from DIR, and runs its own
compatibility_sweep, as SweepManager.start_sweep_synchronous calls it, with its
BCCrossEntropyLoss and StrictImitationCrossEntropyLoss, torch.optim.SGD, the same models,
weights, data, lambda grid, epochs and batch sizes, into a temporary folder. It needs
scikit-learn (its accuracy metric) and ran unpatched under PyTorch 2.13 and NumPy 2. Its data
sets are lists of (batch_ids, input, target) as its docs build them: the training list is
batched in the order of the first epoch's shuffle and, being a list, visited in that order in
every epoch. Its loss values are its own (the dissonance a mean over S, not SPEC section 3's
(1/B)-sum), so only its time is compared. It runs at 1 and 2 PyTorch threads; the driver prints
its rows and bcml's best over its best, for (1) and (2). --quick runs it at the quick sizes.

Repetitions: the median of --reps (default 5; 1 with --quick) after --warmup whole sweeps
(default 1; none with --quick: the first sweep is timed as it comes, cold start included).
--quick: (1) 1,000 training images, the first 500 test images and 1 epoch, (2) 3 epochs.

    python benchmarks/bench_sweep.py [--quick] [--data ../shared/data] [--reps N] [--warmup N]
                                     [--bcml-original DIR]
"""
import argparse
import copy
import json
import os
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import _common  # noqa: E402

SEED = 7            # the training DataLoader's shuffling seed (both sides)
SWEEP_SEED = 0      # compatibility_sweep(seed=...)
STEP = 0.25         # lambda_c_stepsize
BATCH_TEST = 1000
H1_BATCH, H1_SAMPLES = 64, 5000
TASKS = {"convnet": dict(batch=64, lr=0.01, momentum=0.9, epochs=3, quick_epochs=1),
         "lr": dict(batch=754, lr=0.05, momentum=0.9, epochs=20, quick_epochs=3)}
KINDS = ("new-error", "strict-imitation")


def lambda_grid(step=STEP):
    """SPEC section 6: round(k*step, 10) for k = 0, 1, ... while k*step <= 1 + 1e-9."""
    out, k = [], 0
    while k * step <= 1 + 1e-9:
        out.append(round(k * step, 10))
        k += 1
    return out


# ---- the PyTorch reference -------------------------------------------------------------------
def torch_models(task, f):
    """(torch, F, make) with make() building the PyTorch twin of the task's bcml model."""
    from bench_compat import _torch_models
    return _torch_models(task, f)


def torch_compat_loss(torch, F, h1, h2, x, y, lambda_c, kind, reduction="mean"):
    """BCML's compatibility loss on one batch, run as BCML ran it (h1 under no_grad on the
    batch, h2 on the batch, h2 again on S = the samples h1 gets right) with SPEC section 3's
    values: base CE + lambda_c * (1/B) * sum over S of d_i ("sum": without the 1/B)."""
    with torch.no_grad():
        logits1 = h1(x)[0]
    right = logits1.argmax(1) == y
    logits2 = h2(x)[0]
    total = F.cross_entropy(logits2, y, reduction="sum")
    if bool(right.any()):
        logits2_s = h2(x[right])[0]
        if kind == "new-error":
            d = F.cross_entropy(logits2_s, y[right], reduction="sum")
        else:
            d = -(F.softmax(logits1[right], dim=1) * F.log_softmax(logits2_s, dim=1)).sum()
        total = total + lambda_c * d
    return total / x.shape[0] if reduction == "mean" else total


def _torch_labels(torch, model, X, batch):
    model.eval()
    with torch.no_grad():
        return torch.cat([model(X[i:i + batch])[0].argmax(1) for i in range(0, X.shape[0], batch)]).numpy()


def _scores(l1, l2, y):
    r1, r2 = l1 == y, l2 == y
    n_r1, n_w2 = int(r1.sum()), int((~r2).sum())
    btc = float((r1 & r2).sum()) / n_r1 if n_r1 else 0.0
    bec = float((~r1 & ~r2).sum()) / n_w2 if n_w2 else 0.0
    return float(r2.mean()), btc, bec


def _train_copy(torch, h2, perms, epochs, n, batch, lr, momentum, batch_loss):
    """A copy of h2 trained with SGD for epochs over the rows of perms[e] in batches, minimising
    batch_loss(model, row_indices) (both PyTorch references' training loop)."""
    model = copy.deepcopy(h2)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    for e in range(epochs):
        model.train()
        p = perms[e]
        for i in range(0, n, batch):
            opt.zero_grad()
            batch_loss(model, p[i:i + batch]).backward()
            opt.step()
    return model


def torch_sweep(torch, F, h1, h2, X, y, Xt, yt, perms, epochs, batch, lr, momentum, folder):
    """The original compatibility_sweep, sequentially; returns the summary rows."""
    n = X.shape[0]
    yn, ytn = y.numpy(), yt.numpy()
    h1.eval()
    l1_train = l1_test = None
    summary, index = [], 0
    for lambda_c in lambda_grid():
        for kind in KINDS:
            model = _train_copy(torch, h2, perms, epochs, n, batch, lr, momentum, lambda m, idx: torch_compat_loss(
                torch, F, h1, m, X[idx], y[idx], lambda_c, kind))
            model.eval()
            torch.save(model.state_dict(), os.path.join(folder, "%s-model-%s.state" % (lambda_c, kind)))
            # the evaluation: h1 and h2 over each set (h1 afresh for every job, as the original)
            l1_train = _torch_labels(torch, h1, X, BATCH_TEST)
            l1_test = _torch_labels(torch, h1, Xt, BATCH_TEST)
            for split, l1, Xs, ys in (("training", l1_train, X, yn), ("testing", l1_test, Xt, ytn)):
                perf, btc, bec = _scores(l1, _torch_labels(torch, model, Xs, BATCH_TEST), ys)
                summary.append({"datapoint_index": index, "lambda_c": lambda_c,
                                "training": split == "training", "testing": split == "testing",
                                "new-error": kind == "new-error", "strict-imitation": kind != "new-error",
                                "performance": perf, "btc": btc, "bec": bec})
                index += 1
    h1_performance = float((l1_test == ytn).mean())
    with open(os.path.join(folder, "sweep_summary.json"), "w") as f:
        json.dump({"h1_performance": h1_performance, "performance_metric": "model_accuracy",
                   "data": summary}, f)
    return summary


# ---- the PyTorch reference with bcml's algorithm -----------------------------------------------
def torch_cached_loss(torch, F, h2, x, y, logits1, lambda_c, kind, reduction="mean"):
    """The same loss values as torch_compat_loss, computed with bcml's algorithm: h1's logits
    on the batch come from a cache (computed once per data set under no_grad) and h2 runs once
    on the batch; the dissonance is the sum over S of the per-sample terms of that one pass."""
    right = logits1.argmax(1) == y
    logits2 = h2(x)[0]
    ce = F.cross_entropy(logits2, y, reduction="none")
    if kind == "new-error":
        d = ce
    else:
        d = -(F.softmax(logits1, dim=1) * F.log_softmax(logits2, dim=1)).sum(1)
    total = ce.sum() + lambda_c * d.masked_fill(~right, 0.0).sum()
    return total / x.shape[0] if reduction == "mean" else total


def _torch_logits(torch, model, X, batch):
    model.eval()
    with torch.no_grad():
        return torch.cat([model(X[i:i + batch])[0] for i in range(0, X.shape[0], batch)])


def _cached_job(torch, F, h2, X, y, Xt, logits1, l1, perms, epochs, batch, lr, momentum, folder, lambda_c, kind):
    """One job of the same-algorithm reference: train a copy of h2, save it, evaluate it against
    h1's cached labels (l1 = (h1's training labels, h1's test labels, y, yt) as NumPy); returns its (training, testing) summary rows without datapoint_index."""
    model = _train_copy(torch, h2, perms, epochs, X.shape[0], batch, lr, momentum, lambda m, idx: torch_cached_loss(
        torch, F, m, X[idx], y[idx], logits1[idx], lambda_c, kind))
    model.eval()
    torch.save(model.state_dict(), os.path.join(folder, "%s-model-%s.state" % (lambda_c, kind)))
    rows = []
    l1_train, l1_test, yn, ytn = l1
    for split, l1s, Xs, ys in (("training", l1_train, X, yn), ("testing", l1_test, Xt, ytn)):
        perf, btc, bec = _scores(l1s, _torch_labels(torch, model, Xs, BATCH_TEST), ys)
        rows.append({"lambda_c": lambda_c, "training": split == "training", "testing": split == "testing",
                     "new-error": kind == "new-error", "strict-imitation": kind != "new-error",
                     "performance": perf, "btc": btc, "bec": bec})
    return rows


def torch_sweep_cached(torch, F, h1, h2, X, y, Xt, yt, perms, epochs, batch, lr, momentum, folder, processes=1):
    """compatibility_sweep with bcml's algorithm in PyTorch: h1's logits on the training set and
    its labels on both sets computed once for the whole sweep, then every job runs h2 once per
    batch. With processes > 1 the jobs are split statically (job j to process j % processes)
    over forked processes of 1 PyTorch thread each; the parent waits for all of them and writes
    the summary, so a caller timing this call times the whole sweep. Returns the summary rows."""
    import multiprocessing
    import traceback
    h1.eval()
    logits1 = _torch_logits(torch, h1, X, BATCH_TEST)
    l1 = (logits1.argmax(1).numpy(), _torch_labels(torch, h1, Xt, BATCH_TEST), y.numpy(), yt.numpy())
    jobs = [(lambda_c, kind) for lambda_c in lambda_grid() for kind in KINDS]

    def run(part):
        return [(j, _cached_job(torch, F, h2, X, y, Xt, logits1, l1, perms, epochs, batch, lr, momentum, folder,
                                *jobs[j]))
                for j in range(part, len(jobs), processes)]

    if processes == 1:
        done = run(0)
    else:
        ctx = multiprocessing.get_context("fork")
        queue = ctx.Queue()

        def child(part):
            torch.set_num_threads(1)
            try:
                queue.put(("ok", run(part)))
            except BaseException:
                queue.put(("error", traceback.format_exc()))

        procs = [ctx.Process(target=child, args=(k,)) for k in range(processes)]
        for pr in procs:
            pr.start()
        done, errors = [], []
        for _ in procs:
            status, value = queue.get()
            (done.extend if status == "ok" else errors.append)(value)
        for pr in procs:
            pr.join()
        if errors:
            raise RuntimeError("a same-algorithm reference process failed:\n" + errors[0])
    summary = []
    for j, rows in sorted(done, key=lambda t: t[0]):
        for r in rows:
            summary.append(dict(datapoint_index=len(summary), **r))
    with open(os.path.join(folder, "sweep_summary.json"), "w") as f:
        json.dump({"h1_performance": float((l1[1] == l1[3]).mean()), "performance_metric": "model_accuracy",
                   "data": summary}, f)
    return summary


# ---- the original package (--bcml-original DIR) ------------------------------------------------
ORIGINAL = "backwardcompatibilityml"
# Modules the original imports at module level that it does not use in the sweep we run; each is
# stubbed (an empty types.ModuleType in sys.modules) only when it is not installed:
#   mlflow: helpers/training.py does `import mlflow` and calls it only with use_ml_flow=True.
# (flask and PIL are imported by sweep_management.py and the widgets, which the sweep does not load.)
ORIGINAL_STUBS = ("mlflow",)


def resolve_original_dir(path):
    """The folder that holds the original's package folder backwardcompatibilityml/: `path`
    itself, or its one subfolder backwardcompatibilityml-*/ (an unpacked sdist)."""
    import glob
    path = os.path.abspath(path)
    if os.path.isfile(os.path.join(path, ORIGINAL, "__init__.py")):
        return path
    found = sorted(glob.glob(os.path.join(path, ORIGINAL + "-*", ORIGINAL, "__init__.py")))
    if len(found) == 1:
        return os.path.dirname(os.path.dirname(found[0]))
    raise ValueError("--bcml-original: %s holds neither %s/ nor one %s-*/%s/ (unpack the output of "
                     "`pip download %s==1.4.2 --no-deps` there)" % (path, ORIGINAL, ORIGINAL, ORIGINAL, ORIGINAL))


def original_version(root):
    """The version in the unpacked wheel's *.dist-info/METADATA or the sdist's PKG-INFO, else '?'."""
    import glob
    for meta in glob.glob(os.path.join(root, ORIGINAL + "-*.dist-info", "METADATA")) + \
            [os.path.join(root, "PKG-INFO")]:
        if os.path.isfile(meta):
            with open(meta) as fh:
                for line in fh:
                    if line.startswith("Version:"):
                        return line.split(":", 1)[1].strip()
    return "?"


def load_original(path):
    """Imports the original package from `path` (see resolve_original_dir): puts its folder first
    on sys.path, stubs the modules of ORIGINAL_STUBS that are missing, and imports its training
    helpers and loss classes, never a copy installed elsewhere (ImportError then). Returns a
    namespace with training, loss, version, root and stubbed (the names stubbed)."""
    import importlib
    import importlib.util
    import types
    root = resolve_original_dir(path)
    if sys.path[:1] != [root]:
        sys.path.insert(0, root)
    stubbed = []
    for name in ORIGINAL_STUBS:
        if name not in sys.modules and importlib.util.find_spec(name) is None:
            sys.modules[name] = types.ModuleType(name)
            stubbed.append(name)
    training = importlib.import_module(ORIGINAL + ".helpers.training")
    loss = importlib.import_module(ORIGINAL + ".loss")
    where = os.path.dirname(os.path.dirname(os.path.abspath(sys.modules[ORIGINAL].__file__)))
    if where != root:
        raise ImportError("%s was imported from %s, not from %s" % (ORIGINAL, where, root))
    return types.SimpleNamespace(training=training, loss=loss, version=original_version(root), root=root,
                                 stubbed=stubbed)


def original_batches(torch, X, y, order, batch, first_id=0):
    """A data set in the original's format, a list of (batch_ids, input, target) with batch_ids a
    list of ints (the samples' row numbers + first_id), in the order of `order` (a NumPy array
    of row numbers)."""
    import numpy as np
    out = []
    for i in range(0, len(order), batch):
        idx = np.ascontiguousarray(order[i:i + batch], dtype=np.int64)
        rows = torch.from_numpy(idx)
        out.append(((idx + first_id).tolist(), X[rows], y[rows]))
    return out


def original_sweep(orig, torch, h1, h2, X, y, Xt, yt, order, epochs, batch, lr, momentum, folder, step=STEP):
    """The original's own compatibility_sweep (helpers.training, as its SweepManager's
    start_sweep_synchronous calls it) with BCCrossEntropyLoss / StrictImitationCrossEntropyLoss and
    torch.optim.SGD; its files go to `folder`. The training set is one list of batches in the
    order of `order`, which every epoch visits again (the original takes a list). Returns its
    summary rows (sweep_summary.json's data)."""
    import numpy as np
    training_set = original_batches(torch, X, y, order, batch)
    test_set = original_batches(torch, Xt, yt, np.arange(Xt.shape[0]), BATCH_TEST, first_id=X.shape[0])
    orig.training.compatibility_sweep(
        folder, epochs, h1, h2, training_set, test_set, batch, BATCH_TEST,
        torch.optim.SGD, {"lr": lr, "momentum": momentum},
        orig.loss.BCCrossEntropyLoss, orig.loss.StrictImitationCrossEntropyLoss,
        lambda_c_stepsize=step, device="cpu")
    with open(os.path.join(folder, "sweep_summary.json")) as fh:
        return json.load(fh)["data"]


def _state_from_npz(d, prefix):
    return {k[len(prefix):]: d[k] for k in d.files if k.startswith(prefix)}


def worker(lib, task, npz, reps, warmup, epochs, n_jobs, original_dir=None):
    import numpy as np
    d = np.load(npz)
    X, y, Xt, yt, perms = d["X"], d["y"], d["Xt"], d["yt"], d["perms"][:epochs]
    cfg = TASKS[task]
    threads = int(os.environ.get("BENCH_THREADS", "1"))
    f = X.shape[1]
    result = {}
    if lib in ("torch", "torch-cached", "original"):
        torch, F, make = torch_models(task, f)
        if lib == "original":  # imported before the timing, as torch is
            orig = load_original(original_dir)
            result["version"], result["stubbed"] = orig.version, orig.stubbed
        torch.set_num_threads(threads)
        torch.manual_seed(0)
        Xtr, ytr, Xte, yte = (torch.from_numpy(a) for a in (X, y, Xt, yt))
        perm_t = [torch.from_numpy(p) for p in perms]
        h1 = make()
        h1.load_state_dict({k: torch.from_numpy(v) for k, v in _state_from_npz(d, "h1__").items()})
        h1.eval()
        h2 = make()
        h2.load_state_dict({k: torch.from_numpy(v) for k, v in _state_from_npz(d, "h2__").items()})

        def run():
            folder = tempfile.mkdtemp(prefix="bench_sweep_torch_")
            try:
                if lib == "original":
                    result["summary"] = original_sweep(orig, torch, h1, h2, Xtr, ytr, Xte, yte, perms[0], epochs,
                                                       cfg["batch"], cfg["lr"], cfg["momentum"], folder)
                elif lib == "torch":
                    result["summary"] = torch_sweep(torch, F, h1, h2, Xtr, ytr, Xte, yte, perm_t, epochs,
                                                    cfg["batch"], cfg["lr"], cfg["momentum"], folder)
                else:  # n_jobs: the number of processes, each at 1 thread
                    result["summary"] = torch_sweep_cached(torch, F, h1, h2, Xtr, ytr, Xte, yte, perm_t, epochs,
                                                           cfg["batch"], cfg["lr"], cfg["momentum"], folder,
                                                           n_jobs)
            finally:
                shutil.rmtree(folder, ignore_errors=True)
    else:
        import bcml
        from bcml.data import DataLoader
        from bcml.helpers import training
        from bcml.loss import BCCrossEntropyLoss, StrictImitationCrossEntropyLoss
        from bcml.metrics import model_accuracy
        from bcml.models import ConvNet, LogisticRegression
        sweep = getattr(training, "compatibility_sweep", None)
        if sweep is None:
            sys.stderr.write("bcml.helpers.training.compatibility_sweep does not exist in this tree yet "
                             "(issue 5); the bcml side of bench_sweep cannot run\n")
            sys.exit(3)
        bcml.set_num_threads(threads)
        bcml.manual_seed(0)

        def make():
            return ConvNet() if task == "convnet" else LogisticRegression(f, 2)
        h1 = make()
        h1.load_state_dict(_state_from_npz(d, "h1__"))
        h1.eval()
        h2 = make()
        h2.load_state_dict(_state_from_npz(d, "h2__"))

        def run():
            folder = tempfile.mkdtemp(prefix="bench_sweep_bcml_")
            try:
                training_set = DataLoader(X, y, batch_size=cfg["batch"], shuffle=True, seed=SEED)
                test_set = DataLoader(Xt, yt, batch_size=BATCH_TEST)
                sweep(folder, epochs, h1, h2, training_set, test_set, cfg["batch"], BATCH_TEST,
                      bcml.optim.SGD, {"lr": cfg["lr"], "momentum": cfg["momentum"]},
                      BCCrossEntropyLoss, StrictImitationCrossEntropyLoss,
                      performance_metric=model_accuracy, lambda_c_stepsize=STEP,
                      seed=SWEEP_SEED, n_jobs=n_jobs, progress=False)
                with open(os.path.join(folder, "sweep_summary.json")) as fh:
                    result["summary"] = json.load(fh)["data"]
            finally:
                shutil.rmtree(folder, ignore_errors=True)

    med, times = _common.time_reps(run, reps, warmup)
    print(json.dumps(dict(result, median=med, times=times, summary=result.get("summary"))))


# ---- the driver ------------------------------------------------------------------------------
def _train_h1(task, X, y, f):
    """h1: one epoch of bcml (batch 64, the task's SGD) on the first 5,000 samples; h2's
    initial weights: a fresh model. Returns both state dicts as NumPy arrays."""
    import bcml
    import bcml.nn.functional as F
    from bcml.data import DataLoader
    from bcml.helpers.training import train_epoch
    from bcml.models import ConvNet, LogisticRegression
    cfg = TASKS[task]
    bcml.manual_seed(0)

    def make():
        return ConvNet() if task == "convnet" else LogisticRegression(f, 2)
    h1 = make()
    h2 = make()
    opt = bcml.optim.SGD(h1.parameters(), lr=cfg["lr"], momentum=cfg["momentum"])
    train_epoch(1, h1, opt, F.nll_loss,
                DataLoader(X[:H1_SAMPLES], y[:H1_SAMPLES], batch_size=H1_BATCH, shuffle=True, seed=SEED + 1),
                H1_BATCH)
    return ({k: v.numpy().copy() for k, v in h1.state_dict().items()},
            {k: v.numpy().copy() for k, v in h2.state_dict().items()})


def _summary_difference(a, b):
    if not a or not b or len(a) != len(b):
        return None
    return max(abs(float(r[k] or 0.0) - float(s[k] or 0.0)) for r, s in zip(a, b)
               for k in ("performance", "btc", "bec"))


def _original_label(res):
    return "original %s %s (its own code, BCML's algorithm)" % (ORIGINAL, res["original", 1].get("version", "?"))


def _print_original(res, bb):
    """The original package's rows against bcml's, and bcml's best over the original's best."""
    to = {t: res["original", t]["median"] for t in (1, 2)}
    bo = min(to, key=to.get)
    best_b = min(bb, key=bb.get)
    rows = [("1 thr / bcml 1 worker", to[1], bb[1]),
            ("2 thr / bcml 2 workers", to[2], bb[2]),
            ("best (%d thr) / bcml best (%d worker%s)" % (bo, best_b, "s" if best_b > 1 else ""), to[bo], bb[best_b])]
    stubbed = res["original", 1].get("stubbed") or []
    _common.print_table("  %s%s" % (_original_label(res),
                                     ", stubbed: %s" % ", ".join(stubbed) if stubbed else ""), rows)
    print("  speedup of bcml's best over the original's best: %.2fx" % (to[bo] / bb[best_b]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--data", default=os.path.join(HERE, "..", "..", "shared", "data"))
    ap.add_argument("--reps", type=int, default=None)
    ap.add_argument("--warmup", type=int, default=None)
    ap.add_argument("--bcml-original", metavar="DIR", default=None,
                    help="also time the original backwardcompatibilityml package unpacked in DIR "
                         "(pip download backwardcompatibilityml==1.4.2 --no-deps, then unzip/untar)")
    ap.add_argument("--worker", nargs="*")
    a = ap.parse_args()
    if a.worker:
        lib, task, npz, reps, warmup, epochs, n_jobs = a.worker[:7]
        return worker(lib, task, npz, int(reps), int(warmup), int(epochs), int(n_jobs), *a.worker[7:])
    import numpy as np
    import bcml
    from bcml.data import DataLoader
    from bcml.datasets import load_adult, load_fashion_mnist
    try:
        original = resolve_original_dir(a.bcml_original) if a.bcml_original else None
    except ValueError as e:
        ap.error(str(e))
    reps = a.reps if a.reps is not None else (1 if a.quick else 5)
    warmup = a.warmup if a.warmup is not None else (0 if a.quick else 1)
    grid = lambda_grid()
    print("bench_sweep: compatibility_sweep, lambda_c step %g, grid %s, %d jobs (%d values x %d loss kinds); "
          "PyTorch %s; %s, median of %d after %d warm-up sweep%s"
          % (STEP, grid, 2 * len(grid), len(grid), len(KINDS), _common.torch_version(),
             "quick" if a.quick else "full", reps, warmup, "" if warmup == 1 else "s"))
    print("bcml from %s" % os.path.dirname(os.path.abspath(bcml.__file__)))
    if original:
        print("original %s %s from %s (a benchmark reference only)"
              % (ORIGINAL, original_version(original), original))
    sys.stdout.flush()
    tmp = tempfile.mkdtemp(prefix="bench_sweep_")
    fm = load_fashion_mnist()
    n_img, n_test = (1000, 500) if a.quick else (10000, 2000)
    adult = load_adult(a.data)
    ep = {t: TASKS[t]["quick_epochs" if a.quick else "epochs"] for t in TASKS}
    jobs = (("convnet", "(1) ConvNet, Fashion-MNIST %d train / %d test images, batch 64, %d epoch%s per job"
             % (n_img, n_test, ep["convnet"], "" if ep["convnet"] == 1 else "s"),
             fm.X_train.reshape(-1, 1, 28, 28), fm.y_train, n_img,
             fm.X_test[:n_test].reshape(-1, 1, 28, 28), fm.y_test[:n_test]),
            ("lr", "(2) LogisticRegression, Adult %d train / %d test rows, batch 754, %d epochs per job"
             % (len(adult.y_train), len(adult.y_test), ep["lr"]),
             adult.X_train, adult.y_train, len(adult.y_train), adult.X_test, adult.y_test))
    try:
        for task, title, Xall, yall, n, Xt, yt in jobs:
            Xall = np.ascontiguousarray(Xall, dtype=np.float32)
            yall = np.ascontiguousarray(yall, dtype=np.int64)
            h1_state, h2_state = _train_h1(task, Xall, yall, Xall.shape[1])
            X, y = Xall[:n], yall[:n]
            epochs = ep[task]
            loader = DataLoader(X, y, batch_size=TASKS[task]["batch"], shuffle=True, seed=SEED)
            perms = np.stack([loader.order(e) for e in range(epochs)]).astype(np.int64)
            arrays = dict(X=X, y=y, Xt=np.ascontiguousarray(Xt, dtype=np.float32),
                          yt=np.ascontiguousarray(yt, dtype=np.int64), perms=perms)
            arrays.update({"h1__" + k: v for k, v in h1_state.items()})
            arrays.update({"h2__" + k: v for k, v in h2_state.items()})
            npz = os.path.join(tmp, task + ".npz")
            np.savez(npz, **arrays)
            res, err = {}, None
            for t in (1, 2):
                res["torch", t] = _common.run_config(__file__, ["torch", task, npz, reps, warmup, epochs, 1], t)
            # bcml's algorithm in PyTorch: 2 processes of 1 thread each
            res["torch-cached"] = _common.run_config(
                __file__, ["torch-cached", task, npz, reps, warmup, epochs, 2], 1)
            if original:  # the original package's own sweep, at the sequential reference's threads
                for t in (1, 2):
                    res["original", t] = _common.run_config(
                        __file__, ["original", task, npz, reps, warmup, epochs, 1, original], t)
            for workers in (1, 2):
                try:
                    res["bcml", workers] = _common.run_config(
                        __file__, ["bcml", task, npz, reps, warmup, epochs, workers], workers)
                except RuntimeError as e:
                    err = str(e).strip().splitlines()[-1]
                    break
            tt = {t: res["torch", t]["median"] for t in (1, 2)}
            bt = min(tt, key=tt.get)
            tc = res["torch-cached"]["median"]
            if err is not None:
                print(title)
                print("  PyTorch vs BCML's algorithm (sequential): 1 thread %.3f s, 2 threads %.3f s (best: %d)"
                      % (tt[1], tt[2], bt))
                print("  PyTorch vs bcml's algorithm (same algorithm), 2 processes x 1 thread: %.3f s" % tc)
                if original:
                    print("  %s: 1 thread %.3f s, 2 threads %.3f s"
                          % (_original_label(res), res["original", 1]["median"], res["original", 2]["median"]))
                print("  bcml: not measured (%s)" % err)
                sys.stdout.flush()
                continue
            bb = {w: res["bcml", w]["median"] for w in (1, 2)}
            rows = [("PyTorch 1 thr / bcml 1 worker", tt[1], bb[1]),
                    ("PyTorch 2 thr / bcml 2 workers", tt[2], bb[2]),
                    ("PyTorch best (%d thr) / bcml 1 worker" % bt, tt[bt], bb[1]),
                    ("PyTorch best (%d thr) / bcml 2 workers" % bt, tt[bt], bb[2])]
            print(title)
            _common.print_table("  PyTorch vs BCML's algorithm (sequential)", rows)
            rows = [("2 procs x 1 thr / bcml 1 worker", tc, bb[1]),
                    ("2 procs x 1 thr / bcml 2 workers", tc, bb[2]),
                    ("2 procs x 1 thr / bcml best", tc, min(bb[1], bb[2]))]
            _common.print_table("  PyTorch vs bcml's algorithm (same algorithm: h1 cached, h2 once per batch, "
                                "jobs over 2 processes of 1 thread)", rows)
            if original:
                _print_original(res, bb)
            print("  bcml scaling 1 -> 2 workers: %.2fx (%.3f s -> %.3f s)" % (bb[1] / bb[2], bb[1], bb[2]))
            if task == "lr":
                diff = _summary_difference(res["torch", bt]["summary"], res["bcml", 1]["summary"])
                if diff is not None:
                    print("  largest |PyTorch - bcml| over the summaries' accuracy, BTC, BEC: %.2e" % diff)
                diff = _summary_difference(res["torch", bt]["summary"], res["torch-cached"]["summary"])
                if diff is not None:
                    print("  largest |PyTorch BCML's algorithm - PyTorch same algorithm| over the same: %.2e" % diff)
            sys.stdout.flush()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
