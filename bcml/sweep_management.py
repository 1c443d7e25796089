"""The sweep manager (backwardcompatibilityml.sweep_management): runs the lambda_c sweep of
``bcml.helpers.training.compatibility_sweep`` in the background and reads its results back
from the sweep folder.

Everything a manager reports comes from the files on disk, so a sweep finished earlier (by this
process or another) is browsable by a new ``SweepManager`` on the same folder without training
anything, and a sweep that is still running shows the points finished so far.

Differences from BCML, on purpose:

* ``get_sweep_status()`` counts the sweep's files on disk (1.0 only once every file, the
  summary included, is written and the run has ended); the sweep's ``percent_complete_queue``
  is still there (``manager.percent_complete_queue``, a new queue for every run, fed with the
  fraction of finished jobs) and is left for the caller to read;
* ``cancel()`` stops a background sweep after its running jobs' current epoch; ``start_sweep()``
  afterwards resumes it, keeping the finished points;
* an exception raised by a background sweep is kept (``manager.error``) and re-raised by
  ``get_sweep_status()`` and ``wait()`` (BCML's thread printed it and the status stayed put);
* ``start_sweep_synchronous()`` passes every setting (BCML's dropped the performance metric and
  MLflow) and returns the summary;
* ``get_evaluation`` and ``get_instance_image`` raise clear errors for an unknown index or a
  manager without ``get_instance_image_by_id`` (BCML raised a bare file error or answered a
  blank PNG through Flask);
* bcml's sweep keywords ``seed``, ``n_jobs``, ``executor``, ``overwrite`` and ``progress`` are
  passed through. With ``seed=None`` the manager draws one seed from bcml's default generator
  at its first run and keeps it (``manager.seed``), so its later runs resume the same sweep.
"""
import json
import numbers
import os
import queue
import threading

from . import _checks, _sweep, _values
from ._sweep import MANIFEST, SUMMARY, SweepCancelled, SweepJobError
from .helpers import training
from .metrics import model_accuracy

__all__ = ["SweepManager", "SweepCancelled", "SweepJobError"]


def load_sweep_summary(folder):
    """The summary of the sweep in folder: sweep_summary.json when the sweep has finished, else
    the rows of the evaluation files written so far; None when the folder holds no sweep."""
    folder = os.fspath(folder)
    try:
        with open(os.path.join(folder, SUMMARY), encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        pass
    try:
        return _sweep.read_summary(folder)
    except FileNotFoundError:
        return None


def _timeout(timeout, fname):
    """None or a non-negative number of seconds (as threading's join)."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, numbers.Real):
        raise TypeError("%s(): argument 'timeout' must be a number of seconds or None, not %s"
                        % (fname, type(timeout).__name__))
    t = _values.to_float(timeout, fname, "timeout")
    if not t >= 0:
        raise ValueError("%s(): argument 'timeout' must be >= 0, got %r" % (fname, timeout))
    return min(t, threading.TIMEOUT_MAX)


def _read_only_settings(*settings):
    """SweepManager.from_folder passes None for every setting of the sweep (it only reads)."""
    return all(v is None for v in settings)


class SweepManager(object):
    """Runs a compatibility sweep (``compatibility_sweep``: for each lambda_c of the grid, h2
    trained with the new-error and the strict-imitation loss and evaluated on the training and
    test sets) synchronously or in a background thread, and reads its results from
    ``folder_name``.

    Args (BCML's): folder_name, number_of_epochs, h1, h2, training_set, test_set,
    batch_size_train, batch_size_test, OptimizerClass, optimizer_kwargs, NewErrorLossClass,
    StrictImitationLossClass, lambda_c_stepsize, new_error_loss_kwargs,
    strict_imitation_loss_kwargs, performance_metric (``metric(model, dataset, device)``,
    accuracy by default), get_instance_image_by_id (``f(instance_id)`` returning an image, for
    ``get_instance_image``), get_instance_metadata (``f(instance_id)`` returning a string),
    device ("cpu"), use_ml_flow (log the sweep to MLflow; needs ``pip install mlflow``),
    ml_flow_run_name.

    bcml's keywords, passed to ``compatibility_sweep``: seed, n_jobs, executor, overwrite,
    progress (see its docstring).

    The settings are checked when a sweep starts; a background sweep's errors are re-raised by
    ``get_sweep_status()`` and ``wait()``, and kept in ``error``.
    """

    def __init__(self, folder_name, number_of_epochs, h1, h2, training_set, test_set,
                 batch_size_train, batch_size_test,
                 OptimizerClass, optimizer_kwargs,
                 NewErrorLossClass, StrictImitationLossClass, lambda_c_stepsize=0.25,
                 new_error_loss_kwargs=None,
                 strict_imitation_loss_kwargs=None,
                 performance_metric=model_accuracy,
                 get_instance_image_by_id=None,
                 get_instance_metadata=None,
                 device="cpu",
                 use_ml_flow=False,
                 ml_flow_run_name="compatibility_sweep", *,
                 seed=None, n_jobs=None, executor=None, overwrite=False, progress=None):
        if not isinstance(folder_name, (str, os.PathLike)):
            raise TypeError("folder_name must be a path, got %s" % type(folder_name).__name__)
        _checks.check_device(device)
        if get_instance_image_by_id is not None and not callable(get_instance_image_by_id):
            raise TypeError("get_instance_image_by_id must be a function of the instance id or None, got %s"
                            % type(get_instance_image_by_id).__name__)
        if not _read_only_settings(number_of_epochs, h1, h2, training_set, test_set, batch_size_train,
                                   batch_size_test, OptimizerClass, optimizer_kwargs, NewErrorLossClass,
                                   StrictImitationLossClass):
            # the sweep's settings, checked now (as compatibility_sweep checks them) rather than in the
            # background thread; a folder name is only checked to be a path (nothing is written yet)
            _sweep.check_arguments(
                folder_name, number_of_epochs, h1, h2, training_set, test_set, batch_size_train, batch_size_test,
                OptimizerClass, optimizer_kwargs, NewErrorLossClass, StrictImitationLossClass, performance_metric,
                lambda_c_stepsize, None, new_error_loss_kwargs, strict_imitation_loss_kwargs, get_instance_metadata,
                device, use_ml_flow, ml_flow_run_name, seed, n_jobs, executor, overwrite, progress, None)
        if use_ml_flow:
            _sweep._mlflow(True)  # ImportError naming the extra, now rather than in the thread
        if progress is True:
            try:
                import tqdm.auto  # noqa: F401
            except ImportError:
                raise ImportError("progress=True needs tqdm: pip install tqdm (or bcml[progress])") from None
        self.folder_name = folder_name
        self.number_of_epochs = number_of_epochs
        self.h1 = h1
        self.h2 = h2
        self.training_set = training_set
        self.test_set = test_set
        self.batch_size_train = batch_size_train
        self.batch_size_test = batch_size_test
        self.OptimizerClass = OptimizerClass
        self.optimizer_kwargs = optimizer_kwargs
        self.NewErrorLossClass = NewErrorLossClass
        self.StrictImitationLossClass = StrictImitationLossClass
        self.performance_metric = model_accuracy if performance_metric is None else performance_metric
        self.lambda_c_stepsize = lambda_c_stepsize
        self.new_error_loss_kwargs = new_error_loss_kwargs
        self.strict_imitation_loss_kwargs = strict_imitation_loss_kwargs
        self.get_instance_image_by_id = get_instance_image_by_id
        self.get_instance_metadata = get_instance_metadata
        self.device = device
        self.use_ml_flow = use_ml_flow
        self.ml_flow_run_name = ml_flow_run_name
        self.seed = seed
        self.n_jobs = n_jobs
        self.executor = executor
        self.overwrite = overwrite
        self.progress = progress
        self.last_sweep_status = 0.0
        self.percent_complete_queue = queue.Queue()
        self.sweep_thread = None
        self._lock = threading.Lock()
        self._cancel_event = threading.Event()
        self._synchronous = False
        self._error = None
        self._error_tb = None
        self._cancelled = False
        self._read_only = False

    @classmethod
    def from_folder(cls, folder_name, get_instance_image_by_id=None):
        """A manager that only reads the sweep in folder_name (summary, status, evaluations,
        instance images); starting a sweep from it raises ValueError."""
        m = cls(folder_name, None, None, None, None, None, None, None, None, None, None, None,
                get_instance_image_by_id=get_instance_image_by_id, progress=False)
        m._read_only = True
        return m

    # ---- running -----------------------------------------------------------------------------
    def _sweep_arguments(self):
        if self._read_only:
            raise ValueError("this SweepManager was made with from_folder and only reads %r; construct "
                             "one with the sweep's settings to run it" % (self.folder_name,))
        if self.seed is None:  # one seed for every run of this manager, so that runs resume
            self.seed = _sweep._nonnegative_seed(None)
        self.percent_complete_queue = queue.Queue()
        args = (self.folder_name, self.number_of_epochs, self.h1, self.h2, self.training_set, self.test_set,
                self.batch_size_train, self.batch_size_test, self.OptimizerClass, self.optimizer_kwargs,
                self.NewErrorLossClass, self.StrictImitationLossClass)
        kwargs = dict(performance_metric=self.performance_metric, lambda_c_stepsize=self.lambda_c_stepsize,
                      percent_complete_queue=self.percent_complete_queue,
                      new_error_loss_kwargs=self.new_error_loss_kwargs,
                      strict_imitation_loss_kwargs=self.strict_imitation_loss_kwargs,
                      get_instance_metadata=self.get_instance_metadata, device=self.device,
                      use_ml_flow=self.use_ml_flow, ml_flow_run_name=self.ml_flow_run_name,
                      seed=self.seed, n_jobs=self.n_jobs, executor=self.executor, overwrite=self.overwrite,
                      progress=self.progress, cancel_event=self._cancel_event)
        return args, kwargs

    def _reset(self):
        self._cancel_event.clear()
        self._error = self._error_tb = None
        self._cancelled = False
        self.last_sweep_status = 0.0

    def start_sweep(self):
        """Runs the sweep in a background thread and returns at once (True); does nothing and
        returns False while a sweep of this manager is running. A sweep that was cancelled, or
        interrupted in any other way, resumes: the finished points are kept."""
        with self._lock:
            if self.is_running():
                return False
            args, kwargs = self._sweep_arguments()
            self._reset()
            self.sweep_thread = threading.Thread(target=self._run, args=(args, kwargs),
                                                 name="bcml-sweep-manager")
            self.sweep_thread.start()
            return True

    def _run(self, args, kwargs):
        try:
            training.compatibility_sweep(*args, **kwargs)
        except SweepCancelled:
            self._cancelled = True
        except BaseException as e:  # kept for get_sweep_status() / wait()
            self._error, self._error_tb = e, e.__traceback__

    def start_sweep_synchronous(self):
        """Runs the sweep in this thread and returns its summary. Errors propagate; a sweep
        cancelled from another thread (``cancel()``) raises ``SweepCancelled``."""
        with self._lock:
            if self.is_running():
                raise RuntimeError("a sweep of this SweepManager is already running; wait() for it or "
                                   "cancel() it first")
            args, kwargs = self._sweep_arguments()
            self._reset()
            self._synchronous = True
        try:
            return training.compatibility_sweep(*args, **kwargs)
        except SweepCancelled:
            self._cancelled = True
            raise
        finally:
            self._synchronous = False

    def is_running(self):
        """True while a sweep of this manager runs (in the background or synchronously)."""
        return self._synchronous or (self.sweep_thread is not None and self.sweep_thread.is_alive())

    def cancel(self, wait=True, timeout=None):
        """Stops the running sweep after its running jobs' current epoch (the jobs that finished
        keep their files; a later ``start_sweep()`` resumes). With wait=True (the default) returns
        once the background thread has ended (or timeout seconds have passed); returns True when
        no sweep of this manager is running any more."""
        wait = _values.flag(wait, "cancel", "wait")
        timeout = _timeout(timeout, "cancel")
        if not self.is_running():
            return True
        self._cancel_event.set()
        if wait and self.sweep_thread is not None:
            self.sweep_thread.join(timeout)
        return not self.is_running()

    def wait(self, timeout=None):
        """Waits for the background sweep to end; True when it has ended (finished or cancelled),
        False when timeout seconds passed first. Re-raises the sweep's exception if it failed."""
        timeout = _timeout(timeout, "wait")
        t = self.sweep_thread
        if t is not None:
            t.join(timeout)
            if t.is_alive():
                return False
        self._raise_error()
        return True

    @property
    def error(self):
        """The exception that ended the last background sweep, or None."""
        return self._error

    @property
    def cancelled(self):
        """True when the last sweep was stopped by ``cancel()`` before it finished."""
        return self._cancelled

    def _raise_error(self):
        if self._error is not None:
            raise self._error.with_traceback(self._error_tb)

    # ---- reading the folder ---------------------------------------------------------------------
    def _expected_count(self):
        try:
            with open(os.path.join(os.fspath(self.folder_name), MANIFEST), encoding="utf-8") as f:
                grid = json.load(f)["lambdas"]
        except (OSError, ValueError, KeyError, TypeError):
            try:
                grid = _sweep.lambda_grid(self.lambda_c_stepsize)
            except (TypeError, ValueError):
                return None
        return len(_sweep.expected_files(grid))

    def get_sweep_status(self):
        """The fraction (0..1) of the sweep's files on disk: 1.0 only once every file, the
        summary included, is written and the run has ended. Raises the exception of a background
        sweep that failed (until the next start)."""
        self._raise_error()
        status = _sweep.sweep_status(self.folder_name)
        if status >= 1.0 and self.is_running():  # the summary of an earlier run, being redone
            n = self._expected_count()
            status = (n - 1) / n if n else 0.0
        self.last_sweep_status = status
        return status

    def get_sweep_summary(self, as_frame=False):
        """The sweep's summary, read from the folder: ``{"h1_performance", "performance_metric",
        "data": [...]}`` (see ``compatibility_sweep``). While the sweep runs (or after it was
        interrupted) ``data`` holds the points finished so far; with no sweep in the folder,
        ``h1_performance`` is None and ``data`` empty. ``as_frame=True``: a pandas DataFrame of
        the points instead, with accuracy, the performance metric, BTC, BEC, NFR and churn
        (``bcml._sweep.summary_frame``)."""
        from . import _values
        as_frame = _values.flag(as_frame, "get_sweep_summary", "as_frame")
        summary = {"h1_performance": None,
                   "performance_metric": getattr(self.performance_metric, "__name__", None),
                   "data": []}
        found = load_sweep_summary(self.folder_name)
        if found is not None:
            summary.update(found)
        if as_frame:
            return _sweep.summary_frame(self.folder_name, summary, "get_sweep_summary")
        return summary

    def get_evaluation(self, evaluation_id):
        """The evaluation dict of data point evaluation_id (``{idx}-evaluation-data.json``:
        idx = 4k, 4k+1, 4k+2, 4k+3 for new error on the training and test sets, then strict
        imitation, of the k-th lambda_c)."""
        if isinstance(evaluation_id, bool) or not isinstance(evaluation_id, numbers.Integral):
            raise TypeError("evaluation_id must be an int (the data point's datapoint_index), got %r"
                            % (evaluation_id,))
        idx = int(evaluation_id)
        folder = os.fspath(self.folder_name)
        path = os.path.join(folder, _sweep.evaluation_file(idx))
        try:
            with open(path, encoding="utf-8") as f:
                return json.load(f)
        except FileNotFoundError:
            pass
        try:
            with open(os.path.join(folder, MANIFEST), encoding="utf-8") as f:
                grid = json.load(f)["lambdas"]
        except (OSError, ValueError, KeyError):
            raise FileNotFoundError("no evaluation %d: %r holds no sweep" % (idx, folder)) from None
        count = 4 * len(grid)
        if not 0 <= idx < count:
            raise IndexError("no evaluation %d (argument 'evaluation_id'): the sweep in %r has evaluations 0 to %d"
                             % (idx, folder, count - 1))
        raise FileNotFoundError("evaluation %d is not on disk yet: its job (lambda_c %s, %s) has not finished"
                                % (idx, grid[idx // 4], _sweep.KINDS[(idx % 4) // 2]))

    def get_instance_image(self, instance_id):
        """What ``get_instance_image_by_id(instance_id)`` returns (an image of the instance)."""
        if isinstance(instance_id, bool) or not isinstance(instance_id, numbers.Integral):
            raise TypeError("get_instance_image(): argument 'instance_id' must be an int (an instance id), not %s"
                            % type(instance_id).__name__)
        instance_id = _values.int64(instance_id, "get_instance_image", "instance_id")
        if self.get_instance_image_by_id is None:
            raise ValueError("this SweepManager has no get_instance_image_by_id: pass "
                             "get_instance_image_by_id=f, f(instance_id) returning the instance's image")
        return self.get_instance_image_by_id(instance_id)
