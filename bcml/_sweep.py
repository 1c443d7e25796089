"""The lambda_c sweep (SPEC section 6): bcml.helpers.training.compatibility_sweep.

For each lambda_c of the grid and each loss kind (new error, strict imitation) a job trains a
fresh copy of h2 and evaluates it on the training and test sets. Jobs are independent: each
draws from its own generator (seed derived from the sweep's seed and the job's index), runs its
kernels on one thread and reads h1's outputs from a cache computed once per data set, so a
job's result is the same bits however many jobs run at once. Local jobs run on threads (replayed
training releases the GIL), or in worker processes when the step cannot be replayed; any
``concurrent.futures``-style executor can take them instead. Results are written atomically
(temporary file, then rename) as each job ends, with a manifest of the settings, so a sweep that
is interrupted, even by SIGKILL, resumes where it stopped when run again with the same settings.
"""
import concurrent.futures as _cf
import copy
import hashlib
import json
import math
import numbers
import os
import threading

import numpy as np

from . import _core, _engine
from ._random import Generator, default_for_thread, default_generator

MANIFEST = "sweep_settings.json"
SUMMARY = "sweep_summary.json"
KINDS = ("new-error", "strict-imitation")


class SweepCancelled(Exception):
    """Raised inside a job when its sweep was cancelled."""


# ---- grid and file names ---------------------------------------------------------------------
def lambda_grid(lambda_c_stepsize):
    """lambda_c = round(k * step, 10) for k = 0, 1, ... while k * step <= 1 + 1e-9."""
    if isinstance(lambda_c_stepsize, bool) or not isinstance(lambda_c_stepsize, numbers.Real):
        raise TypeError("lambda_c_stepsize must be a number in [0.001, 1], got %s"
                        % type(lambda_c_stepsize).__name__)
    step = float(lambda_c_stepsize)
    if not (0.001 <= step <= 1.0):
        raise ValueError("lambda_c_stepsize must lie in [0.001, 1], got %r" % (lambda_c_stepsize,))
    grid, k = [], 0
    while k * step <= 1.0 + 1e-9:
        grid.append(round(k * step, 10))
        k += 1
    return grid


def model_file(lambda_c, kind):
    return "%s-model-%s.safetensors" % (str(lambda_c), kind)


def evaluation_file(index):
    return "%d-evaluation-data.json" % index


def job_files(k, lambda_c, kind_index):
    """The files job (k, kind) writes: its model and its two evaluations (train, test)."""
    i = 4 * k + 2 * kind_index
    return [model_file(lambda_c, KINDS[kind_index]), evaluation_file(i), evaluation_file(i + 1)]


def expected_files(grid):
    files = [MANIFEST]
    for k, lam in enumerate(grid):
        for kind in (0, 1):
            files += job_files(k, lam, kind)
    return files + [SUMMARY]


def _is_sweep_file(name):
    return (name in (MANIFEST, SUMMARY) or name.endswith("-evaluation-data.json")
            or name.endswith("-model-new-error.safetensors")
            or name.endswith("-model-strict-imitation.safetensors") or ".tmp-" in name)


def _atomic_write_text(path, text):
    tmp = "%s.tmp-%d-%d" % (path, os.getpid(), threading.get_ident())
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _json_clean(obj):
    """NaN and infinities become null (SPEC: a NaN is written as null)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _json_clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_clean(v) for v in obj]
    if isinstance(obj, np.generic):
        return _json_clean(obj.item())
    return obj


def _clean_eval(ev):
    """An evaluation dict with its float fields (scores, per-class accuracies) JSON-clean; the
    rest are ints, strings and lists of ints (not walked: they can hold many thousand ids)."""
    out = {}
    for k, v in ev.items():
        if k in ("h1_accuracy_by_class", "h2_accuracy_by_class"):
            v = [dict(c, accuracy=_json_clean(c["accuracy"])) for c in v]
        elif isinstance(v, (float, np.generic)):
            v = _json_clean(v)
        out[k] = v
    return out


def _dump(obj):
    return json.dumps(obj, allow_nan=False)


# ---- fingerprint of everything that determines the result ---------------------------------------
def _name(obj):
    if obj is None:
        return None
    mod = getattr(obj, "__module__", None) or type(obj).__module__
    qn = getattr(obj, "__qualname__", None) or type(obj).__qualname__
    return "%s.%s" % (mod, qn)


def _hash_state(h, model):
    sd = model.state_dict()
    h.update(_name(type(model)).encode())
    for k in sorted(sd):
        a = np.ascontiguousarray(sd[k].detach().numpy())
        h.update(("%s|%s|%s|" % (k, a.dtype.str, a.shape)).encode())
        h.update(a.tobytes())


def _hash_data(h, data):
    x, y = data.full()
    for a in (x.numpy(), y.numpy(), data.ids):
        a = np.ascontiguousarray(a)
        h.update(("%s|%s|" % (a.dtype.str, a.shape)).encode())
        h.update(a.tobytes())
    if data.loader is not None:
        ld = data.loader
        h.update(("loader|%d|%d|%d" % (ld.batch_size, ld.shuffle, ld.drop_last)).encode())
        if ld.shuffle:  # an unshuffled loader's seed and epoch change nothing
            h.update(("|%d|%d" % (ld.seed, ld.epoch)).encode())
    else:
        h.update(np.ascontiguousarray(data.offsets).tobytes())


def fingerprint(settings, h1, h2, train_data, test_data):
    h = hashlib.sha256(b"bcml-sweep-1|")
    h.update(json.dumps(settings, sort_keys=True).encode())
    _hash_state(h, h1)
    _hash_state(h, h2)
    _hash_data(h, train_data)
    _hash_data(h, test_data)
    return h.hexdigest()


# ---- one job ------------------------------------------------------------------------------------
def run_job(spec):
    """Trains and evaluates one (lambda_c, kind) job; returns (job index, state dict as NumPy
    arrays, training evaluation, test evaluation). Module level and picklable, for executors."""
    from .helpers.training import evaluate_model_performance_and_compatibility_on_dataset as evaluate
    cancel = spec.get("cancel")
    _core.set_thread_limit(1)
    try:
        with default_for_thread(Generator(spec["job_seed"])):
            h2 = copy.deepcopy(spec["h2"])
            h2.train()
            optimizer = spec["OptimizerClass"](h2.parameters(), **spec["optimizer_kwargs"])
            loss = spec["LossClass"](spec["h1"], h2, spec["lambda_c"], **spec["loss_kwargs"])
            session = _engine.Session()
            cache = spec["train_h1"][0]

            def step(x, y, h1_output):
                return loss(x, y, h1_output=h1_output)

            for e in range(spec["epochs"]):
                if cancel is not None and cancel.is_set():
                    raise SweepCancelled()
                epoch = None if spec["start_epoch"] is None else spec["start_epoch"] + e
                _engine.train_epoch(step, spec["train_data"], optimizer, cache=cache, session=session,
                                    epoch=epoch, watch=(loss,))
            h2.eval()
            evals = []
            # the metric gets the user's data set, as passed to the sweep (the parent calls it
            # instead for a job sent to another process: metric_in_parent, _for_processes)
            metric = None if spec.get("metric_in_parent") else spec["performance_metric"]
            for data, user, h1_out in ((spec["train_data"], spec.get("train_user"), spec["train_h1"]),
                                       (spec["test_data"], spec.get("test_user"), spec["test_h1"])):
                # an undefined BTC/BEC (h1 never right, h2 never wrong) is NaN, written as null
                evals.append(evaluate(spec["h1"], h2, data, metric, spec["get_instance_metadata"], "cpu",
                                      float("nan"), _h1_outputs=h1_out, _metric_dataset=user))
            state = {k: v.detach().numpy().copy() for k, v in h2.state_dict().items()}
    finally:
        _core.set_thread_limit(0)
    return spec["index"], state, evals[0], evals[1]


# ---- the sweep -----------------------------------------------------------------------------------
def _check_folder(path):
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError("sweeps_folder_path must be a path, got %s" % type(path).__name__)
    path = os.fspath(path)
    try:
        os.makedirs(path, exist_ok=True)
        probe = os.path.join(path, ".bcml-write-test-%d" % os.getpid())
        with open(probe, "w") as f:
            f.write("")
        os.remove(probe)
    except OSError as e:
        raise ValueError("sweeps_folder_path %r cannot be created or written to: %s" % (path, e)) from None
    return path


def _check_kwargs(value, name):
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise TypeError("%s must be a dict of keyword arguments, got %s" % (name, type(value).__name__))
    return dict(value)


def _nonnegative_seed(seed):
    if seed is None:
        return int(default_generator._next_u64() >> 1)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError("seed must be a non-negative int below 2**64 or None, not %s" % type(seed).__name__)
    if not 0 <= seed < 2 ** 64:
        raise ValueError("seed must be a non-negative int below 2**64 or None, got %r" % (seed,))
    return int(seed)


def _resume_hint(seed_drawn, *datasets):
    """Why a rerun can never match: seeds drawn afresh on every run."""
    hints = []
    for data in datasets:
        ld = data.loader
        if ld is not None and ld.shuffle and getattr(ld, "_seed_drawn", False):
            hints.append("%s is a shuffled DataLoader built without seed=, so every run draws another "
                         "shuffle seed: pass seed= to the DataLoader to make the sweep resumable" % data.name)
    if seed_drawn:
        hints.append("compatibility_sweep was called without seed=, so every run draws another seed: "
                     "pass seed= to make the sweep resumable")
    return "".join("; " + h for h in hints)


def _check_n_jobs(n_jobs):
    if n_jobs is None:
        return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, numbers.Integral):
        raise TypeError("n_jobs must be a positive int or None (all local cores), not %s" % type(n_jobs).__name__)
    if not 1 <= n_jobs <= 2 ** 63 - 1:
        raise ValueError("n_jobs must be a positive int within int64 or None (all local cores), got %r" % (n_jobs,))
    return int(n_jobs)


def _progress_bar(progress, total, initial):
    if progress is False:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        if progress is True:
            raise ImportError("progress=True needs tqdm: pip install tqdm (or bcml[progress])") from None
        return None
    return tqdm(total=total, initial=initial, desc="compatibility sweep", unit="job")


def _mlflow(use_ml_flow):
    if not use_ml_flow:
        return None
    try:
        import mlflow
    except ImportError:
        raise ImportError("use_ml_flow=True needs mlflow: pip install mlflow (or bcml[mlflow])") from None
    return mlflow


def read_summary(folder, known=None):
    """The sweep summary built from the evaluation files in folder (complete or not); known:
    {datapoint index: (performance, btc, bec)} already in memory (not read again)."""
    folder = os.fspath(folder)
    with open(os.path.join(folder, MANIFEST), encoding="utf-8") as f:
        manifest = json.load(f)
    data = []
    for k, lam in enumerate(manifest["lambdas"]):
        for kind in (0, 1):
            for split in (0, 1):
                i = 4 * k + 2 * kind + split
                if known is not None and i in known:
                    perf, btc, bec = known[i]
                else:
                    path = os.path.join(folder, evaluation_file(i))
                    if not os.path.exists(path):
                        continue
                    with open(path, encoding="utf-8") as f:
                        ev = json.load(f)
                    perf, btc, bec = ev["h2_performance"], ev["btc"], ev["bec"]
                data.append({"datapoint_index": i, "lambda_c": lam, "training": split == 0,
                             "testing": split == 1, "new-error": kind == 0, "strict-imitation": kind == 1,
                             "performance": perf, "btc": btc, "bec": bec})
    return {"h1_performance": manifest["h1_performance"], "performance_metric": manifest["performance_metric"],
            "data": data}


def summary_frame(folder, summary, fname):
    """The summary's points as a pandas DataFrame, one row per (lambda_c, loss, split), with
    h2's accuracy, NFR and churn (against h1) computed from the point's evaluation file (its
    error instances and data set size): columns datapoint_index, lambda_c, loss ("new-error" or
    "strict-imitation"), split ("training" or "testing"), accuracy, performance (the
    performance metric's value; its name is in ``df.attrs["performance_metric"]``), btc, bec,
    nfr, churn. ``df.attrs`` also holds h1_performance."""
    try:
        import pandas as pd
    except ImportError:
        raise ImportError("%s(as_frame=True) needs pandas: pip install pandas" % fname) from None
    folder = os.fspath(folder)
    rows = []
    for d in summary["data"]:
        i = d["datapoint_index"]
        acc = nfr = churn = None
        path = os.path.join(folder, evaluation_file(i))
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                ev = json.load(f)
            n = ev["dataset_size"]
            errs = ev["error_instances"]
            p1 = np.array([e["h1_prediction"] for e in errs], dtype=np.int64)
            p2 = np.array([e["h2_prediction"] for e in errs], dtype=np.int64)
            t = np.array([e["ground_truth"] for e in errs], dtype=np.int64)
            # samples outside error_instances are right for both models (same label: no churn)
            acc = 1.0 - np.count_nonzero(p2 != t) / n
            nfr = np.count_nonzero((p1 == t) & (p2 != t)) / n
            churn = np.count_nonzero(p1 != p2) / n
        rows.append({"datapoint_index": i, "lambda_c": d["lambda_c"],
                     "loss": "new-error" if d["new-error"] else "strict-imitation",
                     "split": "training" if d["training"] else "testing", "accuracy": acc,
                     "performance": d["performance"], "btc": d["btc"], "bec": d["bec"], "nfr": nfr, "churn": churn})
    cols = ["datapoint_index", "lambda_c", "loss", "split", "accuracy", "performance", "btc", "bec", "nfr", "churn"]
    df = pd.DataFrame(rows, columns=cols)
    df.attrs["performance_metric"] = summary.get("performance_metric")
    df.attrs["h1_performance"] = summary.get("h1_performance")
    return df


def sweep_status(folder):
    """Fraction of the sweep's files on disk (1.0 only once the summary is written)."""
    folder = os.fspath(folder)
    try:
        with open(os.path.join(folder, MANIFEST), encoding="utf-8") as f:
            grid = json.load(f)["lambdas"]
    except (OSError, ValueError, KeyError):
        return 0.0
    files = expected_files(grid)
    done = sum(os.path.exists(os.path.join(folder, n)) for n in files)
    return done / len(files) if os.path.exists(os.path.join(folder, SUMMARY)) else min(done, len(files) - 1) / len(files)


def check_arguments(sweeps_folder_path, number_of_epochs, h1, h2, training_set, test_set, batch_size_train,
                    batch_size_test, OptimizerClass, optimizer_kwargs, NewErrorLossClass, StrictImitationLossClass,
                    performance_metric, lambda_c_stepsize, percent_complete_queue, new_error_loss_kwargs,
                    strict_imitation_loss_kwargs, get_instance_metadata, device, use_ml_flow, ml_flow_run_name,
                    seed, n_jobs, executor, overwrite, progress, cancel_event):
    """Every argument of a sweep checked as compatibility_sweep checks it, without side effects
    (SweepManager checks its settings with it when it is made); a dict of the normalised ones."""
    from . import _checks, _values
    from .helpers import training as T
    from .metrics import model_accuracy
    from .nn import Module
    _checks.check_device(device)
    grid = lambda_grid(lambda_c_stepsize)
    if not isinstance(sweeps_folder_path, (str, os.PathLike)):
        raise TypeError("sweeps_folder_path must be a path, got %s" % type(sweeps_folder_path).__name__)
    epochs = _checks.check_positive_int(number_of_epochs, "number_of_epochs")
    _checks.check_positive_int(batch_size_train, "batch_size_train")
    _checks.check_positive_int(batch_size_test, "batch_size_test")
    for name, m in (("h1", h1), ("h2", h2)):
        if not isinstance(m, Module):  # a sweep copies h2, trains its parameters and fingerprints both
            raise TypeError("%s must be a bcml.nn.Module (a sweep copies and trains h2 and fingerprints both "
                            "models), got %s" % (name, type(m).__name__))
    if performance_metric is None:
        performance_metric = model_accuracy
    if not callable(performance_metric):
        raise TypeError("performance_metric must be a function metric(model, dataset, device), got %s"
                        % type(performance_metric).__name__)
    if get_instance_metadata is not None and not callable(get_instance_metadata):
        raise TypeError("get_instance_metadata must be a function of the instance id or None")
    if percent_complete_queue is not None and not (callable(getattr(percent_complete_queue, "put", None))
                                                   and callable(getattr(percent_complete_queue, "get", None))
                                                   and not isinstance(percent_complete_queue, np.ndarray)):
        raise TypeError("percent_complete_queue must be a queue (put() and get(), e.g. a queue.Queue), got %s"
                        % type(percent_complete_queue).__name__)
    if executor is not None and not (callable(getattr(executor, "submit", None))
                                     or callable(getattr(executor, "apply_async", None))):
        raise TypeError("executor must have a submit() method (a concurrent.futures executor, Dask's "
                        "Client.get_executor()) or apply_async() (a multiprocessing or Ray Pool), got %s"
                        % type(executor).__name__)
    if cancel_event is not None and not callable(getattr(cancel_event, "is_set", None)):
        raise TypeError("cancel_event must be a threading.Event (with is_set()) or None, got %s"
                        % type(cancel_event).__name__)
    n_jobs = _check_n_jobs(n_jobs)
    if seed is not None:
        _nonnegative_seed(seed)
    T._check_class(OptimizerClass, "OptimizerClass", "optimizer")
    T._check_class(NewErrorLossClass, "NewErrorLossClass", "loss")
    T._check_class(StrictImitationLossClass, "StrictImitationLossClass", "loss")
    if optimizer_kwargs is None or not isinstance(optimizer_kwargs, dict):
        raise TypeError("optimizer_kwargs must be a dict of the optimizer's keyword arguments (e.g. "
                        "{'lr': 0.01}), got %s" % type(optimizer_kwargs).__name__)
    use_ml_flow = _values.flag(use_ml_flow, "compatibility_sweep", "use_ml_flow")
    if not isinstance(ml_flow_run_name, str):
        raise TypeError("ml_flow_run_name must be a str, got %s" % type(ml_flow_run_name).__name__)
    overwrite = _values.flag(overwrite, "compatibility_sweep", "overwrite")
    if progress is not None:
        progress = _values.flag(progress, "compatibility_sweep", "progress")
    _engine.as_dataset(training_set, "training_set")
    _engine.as_dataset(test_set, "test_set")
    return {"grid": grid, "epochs": epochs, "performance_metric": performance_metric, "n_jobs": n_jobs,
            "optimizer_kwargs": dict(optimizer_kwargs),
            "ne_kwargs": _check_kwargs(new_error_loss_kwargs, "new_error_loss_kwargs"),
            "si_kwargs": _check_kwargs(strict_imitation_loss_kwargs, "strict_imitation_loss_kwargs"),
            "use_ml_flow": use_ml_flow, "overwrite": overwrite, "progress": progress}


def compatibility_sweep(sweeps_folder_path, number_of_epochs, h1, h2, training_set, test_set,
                        batch_size_train, batch_size_test, OptimizerClass, optimizer_kwargs,
                        NewErrorLossClass, StrictImitationLossClass, performance_metric=None,
                        lambda_c_stepsize=0.25, percent_complete_queue=None, new_error_loss_kwargs=None,
                        strict_imitation_loss_kwargs=None, get_instance_metadata=None, device="cpu",
                        use_ml_flow=False, ml_flow_run_name="compatibility_sweep", *, seed=None,
                        n_jobs=None, executor=None, overwrite=False, progress=None, cancel_event=None,
                        as_frame=False):
    """Trains h2 against h1 for every lambda_c of the grid with the new-error and the
    strict-imitation loss, evaluates each model on the training and test sets, and writes the
    files of SPEC section 6 into sweeps_folder_path; returns the summary (sweep_summary.json).

    bcml's additions (keywords): ``seed`` (jobs' generators derive from it and their index;
    default: a draw from bcml's default generator, so pass one to resume in a new process),
    ``n_jobs`` (local workers, default all cores), ``executor`` (an object with ``submit``,
    e.g. a ``concurrent.futures`` executor, ``dask.distributed.Client.get_executor()`` or the Client, or
    with ``apply_async``, e.g. a ``multiprocessing`` or ``ray.util.multiprocessing`` Pool; the
    models, data sets and classes must then be picklable. They are pickled once and reach each
    worker once, not with every job: Dask's Client scatters them to every worker, a Ray Pool puts
    them in Ray's object store; any other executor that pickles (e.g. a ProcessPoolExecutor)
    transfers their bytes with every job, but each worker unpickles them only once. A job that
    fails there, e.g. on a worker that died (Dask retries those itself first), raises
    ``SweepJobError`` naming its lambda_c once the other jobs are done; a rerun resumes),
    ``overwrite`` (replace a sweep with other settings in
    the folder), ``progress`` (a tqdm bar: None when tqdm is installed, True/False),
    ``cancel_event`` (a threading.Event: set it to stop after the running jobs' current epoch),
    ``as_frame`` (True: return a pandas DataFrame of the points with accuracy, the performance
    metric, BTC, BEC, NFR and churn instead of the summary dict; see ``summary_frame``).
    """
    from . import _checks, _values
    from .helpers import training as T

    # ---- arguments, all before any training ----
    as_frame = _values.flag(as_frame, "compatibility_sweep", "as_frame")
    a = check_arguments(
        sweeps_folder_path, number_of_epochs, h1, h2, training_set, test_set, batch_size_train, batch_size_test,
        OptimizerClass, optimizer_kwargs, NewErrorLossClass, StrictImitationLossClass, performance_metric,
        lambda_c_stepsize, percent_complete_queue, new_error_loss_kwargs, strict_imitation_loss_kwargs,
        get_instance_metadata, device, use_ml_flow, ml_flow_run_name, seed, n_jobs, executor, overwrite, progress,
        cancel_event)
    grid, epochs, performance_metric, n_jobs = a["grid"], a["epochs"], a["performance_metric"], a["n_jobs"]
    optimizer_kwargs, ne_kwargs, si_kwargs = a["optimizer_kwargs"], a["ne_kwargs"], a["si_kwargs"]
    overwrite, use_ml_flow, progress = a["overwrite"], a["use_ml_flow"], a["progress"]
    folder = _check_folder(sweeps_folder_path)
    seed_drawn = seed is None
    seed = _nonnegative_seed(seed)
    train_data = _engine.as_dataset(training_set, "training_set")
    test_data = _engine.as_dataset(test_set, "test_set")
    trial = copy.deepcopy(h2)
    try:
        opt = OptimizerClass(trial.parameters(), **optimizer_kwargs)
    except (TypeError, ValueError) as e:
        raise type(e)("OptimizerClass(h2.parameters(), **optimizer_kwargs): %s" % e) from e
    for cls, kw, name in ((NewErrorLossClass, ne_kwargs, "new_error_loss_kwargs"),
                          (StrictImitationLossClass, si_kwargs, "strict_imitation_loss_kwargs")):
        try:
            cls(h1, trial, 1.0, **kw)
        except (TypeError, ValueError) as e:
            raise type(e)("%s(h1, h2, lambda_c, **%s) (%s): %s" % ("NewErrorLossClass" if cls is NewErrorLossClass
                                                                    else "StrictImitationLossClass", name,
                                                                    getattr(cls, "__name__", "?"), e)) from e
    h1.eval()
    binary, width = _checks.probe_pair(h1, h2, train_data)
    for data in (train_data, test_data):
        _checks.check_targets(_checks.all_targets(data), binary, width, data.name)

    # ---- h1 once per data set ----
    train_h1 = _engine.predict(h1, train_data, "h1")
    test_h1 = _engine.predict(h1, test_data, "h1")
    h1_performance = _number(_checks.call_user(performance_metric, "performance_metric(h1, test_set, device)", h1,
                                               test_set, device))

    settings = {
        "lambdas": grid, "number_of_epochs": epochs, "batch_size_train": int(batch_size_train),
        "batch_size_test": int(batch_size_test), "OptimizerClass": _name(OptimizerClass),
        "optimizer_kwargs": repr(sorted(optimizer_kwargs.items())),
        "NewErrorLossClass": _name(NewErrorLossClass), "new_error_loss_kwargs": repr(sorted(ne_kwargs.items())),
        "StrictImitationLossClass": _name(StrictImitationLossClass),
        "strict_imitation_loss_kwargs": repr(sorted(si_kwargs.items())),
        "performance_metric": _name(performance_metric), "get_instance_metadata": _name(get_instance_metadata),
        "seed": seed,
    }
    fp = fingerprint(settings, h1, h2, train_data, test_data)
    manifest = {"fingerprint": fp, "lambdas": grid, "h1_performance": h1_performance,
                "performance_metric": getattr(performance_metric, "__name__", str(performance_metric)),
                "settings": settings}

    # ---- resume or start ----
    mpath = os.path.join(folder, MANIFEST)
    existing = [n for n in os.listdir(folder) if _is_sweep_file(n)]
    if existing:
        old = None
        try:
            with open(mpath, encoding="utf-8") as f:
                old = json.load(f).get("fingerprint")
        except (OSError, ValueError, AttributeError):
            pass
        if old != fp:
            if not overwrite:
                raise ValueError("sweeps_folder_path %r holds a sweep with other settings (or of unknown "
                                 "settings); pass overwrite=True to replace it, or use another folder%s"
                                 % (folder, _resume_hint(seed_drawn, train_data, test_data)))
            for n in existing:
                os.remove(os.path.join(folder, n))
        else:
            for n in existing:
                if ".tmp-" in n:  # left by a killed run: never complete
                    os.remove(os.path.join(folder, n))
    _atomic_write_text(mpath, _dump(_json_clean(manifest)))
    rows = {}  # datapoint index -> (performance, btc, bec) of the jobs run now

    jobs, done_jobs = [], 0
    for k, lam in enumerate(grid):
        for kind in (0, 1):
            index = 2 * k + kind
            files = job_files(k, lam, kind)
            if all(os.path.exists(os.path.join(folder, f)) for f in files):
                done_jobs += 1
                continue
            # a job carries only what differs between jobs; the rest is shared (shipped to an
            # executor's workers once per worker: _run_on_executor)
            jobs.append({"index": index, "k": k, "kind": kind, "lambda_c": lam,
                         "job_seed": _core.derive_seed(seed, index)})
    shared = {
        "h1": h1, "h2": h2, "OptimizerClass": OptimizerClass, "optimizer_kwargs": optimizer_kwargs,
        "losses": ((NewErrorLossClass, ne_kwargs), (StrictImitationLossClass, si_kwargs)), "epochs": epochs,
        "start_epoch": train_data.loader.epoch if train_data.loader is not None else None,
        "train_data": train_data, "test_data": test_data, "train_h1": train_h1, "test_h1": test_h1,
        "performance_metric": performance_metric, "get_instance_metadata": get_instance_metadata,
        "train_user": training_set, "test_user": test_set,
    }
    total = 2 * len(grid)
    if jobs and os.path.exists(os.path.join(folder, SUMMARY)):
        os.remove(os.path.join(folder, SUMMARY))  # stale: the sweep is incomplete until it is rewritten
    mlflow = _mlflow(use_ml_flow)
    bar = _progress_bar(progress, total, done_jobs)
    if percent_complete_queue is not None:
        percent_complete_queue.put(done_jobs / total)
    if mlflow is not None:
        mlflow.start_run(run_name=ml_flow_run_name)
        mlflow.log_param("lambda_c_stepsize", lambda_c_stepsize)
        mlflow.log_param("batch_size_train", batch_size_train)
        mlflow.log_param("batch_size_test", batch_size_test)
        mlflow.log_param("number_of_epochs", epochs)
        mlflow.log_param("seed", seed)

    def finish(result):
        nonlocal done_jobs
        index, state, ev_train, ev_test = result
        k, kind = divmod(index, 2)
        lam = grid[k]
        if index in metric_in_parent:   # a job run elsewhere: the user's metric runs here
            ev_train, ev_test = _parent_metric(h2, state, performance_metric, training_set, test_set, device,
                                               ev_train, ev_test)
        for split, ev in ((0, ev_train), (1, ev_test)):
            i = 4 * k + 2 * kind + split
            ev = _clean_eval(dict(ev, lambda_c=lam, training=split == 0, testing=split == 1, datapoint_index=i))
            _atomic_write_text(os.path.join(folder, evaluation_file(i)), _dump(ev))
            rows[i] = (ev["h2_performance"], ev["btc"], ev["bec"])
            if mlflow is not None:  # BCML's metric names; step = the lambda_c's position from 1
                if kind == 0 and split == 0:
                    mlflow.log_metric("lambda_c", lam, step=k + 1)
                prefix = "%s_%s" % (KINDS[kind].replace("-", "_"), "training" if split == 0 else "testing")
                for key in ("h2_performance", "btc", "bec"):
                    v = ev[key]
                    if v is not None and math.isfinite(v):
                        mlflow.log_metric("%s_%s" % (prefix, key.replace("h2_", "")), v, step=k + 1)
        from .serialization import save
        from ._tensor import from_numpy
        save({n: from_numpy(a) for n, a in state.items()}, os.path.join(folder, model_file(lam, KINDS[kind])))
        done_jobs += 1
        if bar is not None:
            bar.update(1)
        if percent_complete_queue is not None:
            percent_complete_queue.put(done_jobs / total)

    metric_in_parent = set()   # indices of the jobs whose metric the parent calls (_for_processes)
    try:
        if jobs:
            _run_jobs(shared, jobs, finish, n_jobs, executor, cancel_event, metric_in_parent, folder)
        if cancel_event is not None and cancel_event.is_set():
            raise SweepCancelled("the sweep was cancelled; run it again to resume")
        summary = read_summary(folder, rows)
        _atomic_write_text(os.path.join(folder, SUMMARY), _dump(summary))
    finally:
        if bar is not None:
            bar.close()
        if mlflow is not None:
            mlflow.end_run()
    return summary_frame(folder, summary, "compatibility_sweep") if as_frame else summary


def _for_processes(shared, jobs, metric_in_parent):
    """The shared part of the jobs to send to another process by pickling (an executor, or
    worker processes started without fork). The user's data sets stay here: the jobs evaluate h2
    with model_accuracy and, for any other metric, the parent calls the user's metric on the
    trained weights it gets back, with the very objects the user passed (finish, _parent_metric),
    whether or not they could be pickled."""
    from .metrics import model_accuracy
    shared = dict(shared, cancel=None, train_user=None, test_user=None)
    if shared["performance_metric"] is not model_accuracy:
        metric_in_parent.update(j["index"] for j in jobs)
        shared.update(metric_in_parent=True, performance_metric=None)   # need not be picklable either
    return shared


def job_spec(shared, job):
    """One job's full spec (run_job's argument): the shared part, its loss and its own keys."""
    loss_class, loss_kwargs = shared["losses"][job["kind"]]
    spec = dict(shared, LossClass=loss_class, loss_kwargs=loss_kwargs)
    spec.update(job)
    return spec


def _parent_metric(h2, state, metric, training_set, test_set, device, ev_train, ev_test):
    """The evaluations of a job with h2_performance from the user's metric, called here on a copy
    of h2 holding the job's trained weights."""
    from . import _checks
    from ._tensor import from_numpy
    model = copy.deepcopy(h2)
    model.load_state_dict({k: from_numpy(a) for k, a in state.items()})
    model.eval()
    out = []
    for ev, data, name in ((ev_train, training_set, "training_set"), (ev_test, test_set, "test_set")):
        value = _checks.call_user(metric, "performance_metric(h2, %s, device)" % name, model, data, device)
        out.append(dict(ev, h2_performance=_number(value)))
    return out


def _number(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError("performance_metric must return a number, got %s" % type(value).__name__) from None


def _run_jobs(shared, jobs, finish, n_jobs, executor, cancel_event, metric_in_parent, folder):
    if executor is not None:
        _run_on_executor(executor, shared, jobs, finish, cancel_event, metric_in_parent, folder)
        return
    workers = min(n_jobs, len(jobs))
    specs = [job_spec(shared, j) for j in jobs]
    probe = specs[0]
    why = _replay_problem(probe)
    if why is not None and workers > 1:
        # the step runs in Python: threads would take turns on the GIL, so use processes
        import multiprocessing as mp
        global _FORKED_JOBS
        if "fork" in mp.get_all_start_methods():
            # forked workers inherit the jobs (models need not be picklable); results come back
            _FORKED_JOBS = [dict(j, cancel=None) for j in specs]
            try:
                with _cf.ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("fork")) as pool:
                    _drain([pool.submit(_run_forked, i) for i in range(len(jobs))], finish, cancel_event)
            finally:
                _FORKED_JOBS = None
        else:
            with _cf.ProcessPoolExecutor(max_workers=workers) as pool:
                _run_on_executor(pool, shared, jobs, finish, cancel_event, metric_in_parent, folder)
        return
    if workers == 1:
        for j in specs:
            if cancel_event is not None and cancel_event.is_set():
                return
            try:
                finish(run_job(dict(j, cancel=cancel_event)))
            except SweepCancelled:
                return
        return
    with _cf.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bcml-sweep") as pool:
        futures = [pool.submit(run_job, dict(j, cancel=cancel_event)) for j in specs]
        _drain(futures, finish, cancel_event)


_FORKED_JOBS = None


def _run_forked(i):
    return run_job(_FORKED_JOBS[i])


def _drain(futures, finish, cancel_event):
    try:
        for fut in _cf.as_completed(futures):
            try:
                result = fut.result()
            except (SweepCancelled, _cf.CancelledError):  # cancelled: stopped, or never started
                continue
            finish(result)
            if cancel_event is not None and cancel_event.is_set():
                for f in futures:
                    f.cancel()
    except BaseException:
        for f in futures:
            f.cancel()
        raise


class SweepJobError(Exception):
    """A sweep's job failed on an executor (its worker died, or the job raised): the message
    names the job and its lambda_c; the jobs that finished are kept, so a rerun resumes."""


# ---- jobs on an executor: the shared part goes to each worker once ------------------------------
# The shared part of the jobs (models, data sets, h1's outputs, optimizer and loss classes and
# settings) is pickled once, here; each worker unpickles it once and keeps it (the last sweep's
# only) in _SHARED, keyed by a token (the hash of its bytes). How the bytes reach the workers
# depends on the executor: Dask's Client scatters them to every worker once (broadcast) and the
# jobs carry the future; a Ray Pool puts them in Ray's object store once and the jobs carry the
# ObjectRef (a worker fetches it once); an in-process ThreadPoolExecutor gets the objects
# themselves; any other executor gets the bytes with every job (still unpickled once per worker).
_SHARED = {}
_SHARED_LOCK = threading.Lock()


def run_shared_job(token, shared, job):
    """run_job for an executor: shared is the jobs' shared part (a dict, in process), its pickled
    bytes, or a Ray ObjectRef to them; job holds the job's own keys (index, kind, lambda_c, ...)."""
    return run_job(job_spec(_shared_part(token, shared), job))


def _shared_part(token, shared):
    if isinstance(shared, dict):
        return shared
    import pickle
    with _SHARED_LOCK:   # one unpickling per process, even with several threads per worker
        part = _SHARED.get(token)
        if part is None:
            if not isinstance(shared, (bytes, bytearray, memoryview)):   # a Ray ObjectRef
                import ray
                shared = ray.get(shared)
            part = pickle.loads(shared)
            _SHARED.clear()
            _SHARED[token] = part
    return part


def _dask_client(executor):
    """The Dask Client behind Client.get_executor()'s executor, or the Client itself, or None."""
    if not (type(executor).__module__ or "").startswith("distributed."):
        return None
    client = getattr(executor, "_client", None)
    if client is None and callable(getattr(executor, "scatter", None)):
        client = executor
    return client


def _executor_kind(executor):
    module = type(executor).__module__ or ""
    if _dask_client(executor) is not None:
        return "dask"
    if module.startswith("ray.util.multiprocessing"):
        return "ray"
    if isinstance(executor, _cf.ThreadPoolExecutor):
        return "threads"
    return "other"


def _pickle_shared(shared, kind):
    """The shared part's bytes: with cloudpickle for Dask and Ray (as they pickle jobs, so that
    classes defined in __main__ still reach their workers), pickle for the others."""
    import pickle
    if kind in ("dask", "ray"):
        try:
            import cloudpickle
            return cloudpickle.dumps(shared, protocol=pickle.HIGHEST_PROTOCOL)
        except ImportError:
            pass
    return pickle.dumps(shared, protocol=pickle.HIGHEST_PROTOCOL)


def _run_on_executor(executor, shared, jobs, finish, cancel_event, metric_in_parent, folder):
    """Runs the jobs on an executor with submit() or a Pool with apply_async(); the shared part
    reaches each worker once (see _SHARED). A job that fails (a worker killed, or an error in the
    job) does not stop the others: their results are written as they come, then SweepJobError
    names the failed job; a rerun resumes from the finished ones."""
    kind = _executor_kind(executor)
    shared = _for_processes(shared, jobs, metric_in_parent)
    if kind == "threads":
        token, ref = None, shared
    else:
        blob = _pickle_shared(shared, kind)
        token = hashlib.sha256(blob).hexdigest()
        if kind == "dask":
            ref = _dask_client(executor).scatter(blob, broadcast=True)
        elif kind == "ray":
            import ray
            ref = ray.put(blob)
        else:
            ref = blob
        del blob
    pending = []
    if callable(getattr(executor, "submit", None)):
        # a Dask Client itself would name a job by its arguments (pure=True) and could hand back an
        # earlier sweep's result: each submission is a new task, as with get_executor()
        extra = {"pure": False} if kind == "dask" and _dask_client(executor) is executor else {}
        for j in jobs:
            pending.append((j, executor.submit(run_shared_job, token, ref, j, **extra)))
        if all(isinstance(f, _cf.Future) for _, f in pending):
            by_future = {f: j for j, f in pending}
            done = ((by_future[f], f.result) for f in _cf.as_completed(by_future))
        else:
            done = ((j, f.result) for j, f in pending)
    else:  # a Pool: apply_async(fn, args) -> AsyncResult with get(); results in submission order
        for j in jobs:
            pending.append((j, executor.apply_async(run_shared_job, (token, ref, j))))
        done = ((j, r.get) for j, r in pending)
    failed = []
    try:
        for job, get in done:
            try:
                result = get()
            except (SweepCancelled, _cf.CancelledError):
                continue
            except Exception as e:   # a worker lost, or the job raised: the others go on
                failed.append((job, e))
                continue
            finish(result)
            if cancel_event is not None and cancel_event.is_set():
                break
    finally:
        for _, f in pending:   # stopped early (cancelled, or an error here): drop what has not started
            cancel = getattr(f, "cancel", None)
            if callable(cancel):
                cancel()
        with _SHARED_LOCK:   # an executor that ran jobs in this process: do not keep their copy
            _SHARED.pop(token, None)
    if failed:
        what = "; ".join("job %d (lambda_c=%r, %s loss): %s: %s" % (j["index"], j["lambda_c"], KINDS[j["kind"]],
                                                                  type(e).__name__, e) for j, e in failed)
        raise SweepJobError(
            "compatibility_sweep: %d job(s) failed on the executor: %s; the finished jobs are kept in %r: run "
            "the sweep again with the same settings (and seed) to resume" % (len(failed), what, folder)) \
            from failed[0][1]


def _replay_problem(spec):
    """Why the job's training step cannot be replayed, or None (checked on a copy of h2)."""
    h2 = copy.deepcopy(spec["h2"])
    h2.train()
    opt = spec["OptimizerClass"](h2.parameters(), **spec["optimizer_kwargs"])
    loss = spec["LossClass"](spec["h1"], h2, spec["lambda_c"], **spec["loss_kwargs"])
    return _engine.replay_problem(lambda x, y, h: loss(x, y, h1_output=h), spec["train_data"], opt,
                                  spec["train_h1"][0], watch=(loss,))
