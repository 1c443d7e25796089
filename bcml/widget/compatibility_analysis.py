"""The compatibility-analysis widget (backwardcompatibilityml.widget.compatibility_analysis):
start a lambda_c sweep, watch its progress, see the accuracy/compatibility trade-off and drill
into the instances each updated model regressed on. No server and no port: the view talks to
the kernel through the widget's own messages (anywidget)."""
import os
import threading

from .. import _sweep
from ..metrics import model_accuracy
from ..sweep_management import SweepManager
from . import _base, _data, _html
from ._base import _Widget

__all__ = ["CompatibilityAnalysis", "save_sweep_report"]


def _defaults(OptimizerClass, optimizer_kwargs, NewErrorLossClass, StrictImitationLossClass):
    """BCML's defaults for the settings left as None."""
    if OptimizerClass is None:
        from ..optim import SGD as OptimizerClass
    if optimizer_kwargs is None:
        optimizer_kwargs = {}
    if NewErrorLossClass is None:
        from ..loss import BCNLLLoss as NewErrorLossClass
    if StrictImitationLossClass is None:
        from ..loss import StrictImitationCrossEntropyLoss as StrictImitationLossClass
    return OptimizerClass, optimizer_kwargs, NewErrorLossClass, StrictImitationLossClass


class CompatibilityAnalysis(_Widget):
    """The compatibility analysis of an update h1 -> h2: a lambda_c sweep (``compatibility_sweep``)
    started from the widget's Start Sweep button, and its results: performance against BTC and
    BEC for each (lambda_c, loss kind, train/test) point, and for a selected point the details
    table, the Venn diagram of h1's and h2's errors, per-class bars and the error instances.

    The positional arguments are BCML's documented ones, in their order. ``port`` is accepted and
    ignored: bcml's widget needs no server (BCML ran a Flask server on a port in 5000-5099).
    None for OptimizerClass / optimizer_kwargs / NewErrorLossClass / StrictImitationLossClass
    gives BCML's defaults (SGD with its default lr, {}, BCNLLLoss, StrictImitationCrossEntropyLoss).

    Keyword-only: performance_metric, get_instance_image_by_id (``f(id)`` returning PNG bytes, a
    file-like object, an object with ``get_data()``, a PIL image or an H x W (x C) array),
    get_instance_metadata (``f(id) -> str``, the table's Instance column), use_ml_flow,
    ml_flow_run_name, and bcml's sweep options seed, n_jobs, executor, overwrite, progress, all
    with ``compatibility_sweep``'s meaning; get_instance_data_by_id (``f(id)`` returning a dict of
    the row's columns) and get_instance_label_by_id (``f(id)`` returning the label, or
    ``{"label": ...}``), shown as the table's Data and Label columns (BCML's Adult notebook);
    class_names (names of the classes, a list or a dict), title and page_size (rows of the
    instance table, 5).

    The sweep runs in a background thread (``start_sweep()`` or the button): the notebook stays
    usable, progress is pushed a few times a second, Cancel stops it and Start resumes it.
    ``wait()`` waits for it and re-raises its error. ``.sweep_manager`` is the SweepManager.
    """

    def __init__(self, folder_name, number_of_epochs, h1, h2, training_set, test_set,
                 batch_size_train, batch_size_test, lambda_c_stepsize=0.25, OptimizerClass=None,
                 optimizer_kwargs=None, NewErrorLossClass=None, StrictImitationLossClass=None,
                 port=None, new_error_loss_kwargs=None, strict_imitation_loss_kwargs=None,
                 device="cpu", *, performance_metric=model_accuracy, get_instance_image_by_id=None,
                 get_instance_metadata=None, get_instance_data_by_id=None, get_instance_label_by_id=None,
                 use_ml_flow=False, ml_flow_run_name="compatibility_sweep", seed=None, n_jobs=None,
                 executor=None, overwrite=False, progress=None, class_names=None, title=None, page_size=5):
        fname = "CompatibilityAnalysis"
        if _base.anywidget is None:
            raise ImportError(_base._MISSING)
        OptimizerClass, optimizer_kwargs, NewErrorLossClass, StrictImitationLossClass = _defaults(
            OptimizerClass, optimizer_kwargs, NewErrorLossClass, StrictImitationLossClass)
        extras = _extras(fname, get_instance_data_by_id, get_instance_label_by_id, class_names, page_size)
        manager = SweepManager(folder_name, number_of_epochs, h1, h2, training_set, test_set, batch_size_train,
                               batch_size_test, OptimizerClass, optimizer_kwargs, NewErrorLossClass,
                               StrictImitationLossClass, lambda_c_stepsize=lambda_c_stepsize,
                               new_error_loss_kwargs=new_error_loss_kwargs,
                               strict_imitation_loss_kwargs=strict_imitation_loss_kwargs,
                               performance_metric=performance_metric,
                               get_instance_image_by_id=get_instance_image_by_id,
                               get_instance_metadata=get_instance_metadata, device=device, use_ml_flow=use_ml_flow,
                               ml_flow_run_name=ml_flow_run_name, seed=seed, n_jobs=n_jobs, executor=executor,
                               overwrite=overwrite, progress=progress)
        self.port = port  # ignored: no server
        self._start(manager, extras, title, fname, can_start=True, grid=_sweep.lambda_grid(lambda_c_stepsize))

    @classmethod
    def from_folder(cls, path, get_instance_image_by_id=None, *, get_instance_data_by_id=None,
                    get_instance_label_by_id=None, class_names=None, title=None, page_size=5):
        """Browses the sweep in folder path (finished, or the points finished so far) without
        training anything; Start Sweep is disabled."""
        fname = "CompatibilityAnalysis.from_folder"
        if _base.anywidget is None:
            raise ImportError(_base._MISSING)
        manager, extras = _open_folder(fname, "path", path, get_instance_image_by_id, get_instance_data_by_id,
                                       get_instance_label_by_id, class_names, page_size)
        self = cls.__new__(cls)
        self.port = None
        self._start(manager, extras, title, fname, can_start=False, grid=None)
        return self

    def _start(self, manager, extras, title, fname, can_start, grid):
        state, data = _analysis_state(manager, extras, title, fname, grid)
        _base._Widget.__init__(self, can_start=can_start, **state)
        self._setup_data(data)
        self.sweep_manager = manager
        self._monitor = None
        self._known = {}
        self._points_lock = threading.Lock()
        self._extra_methods = {"start": self._request_start, "cancel": self._request_cancel}

    def _set_summary(self, summary):
        for k, v in _summary_state(summary).items():
            setattr(self, k, v)

    def _refresh_points(self):
        """Re-reads the points finished so far (only the evaluation files not read before)."""
        with self._points_lock:
            folder = os.fspath(self.sweep_manager.folder_name)
            try:
                summary = _sweep.read_summary(folder, self._known)
            except (OSError, ValueError, KeyError):
                return
            for r in summary["data"]:
                self._known[r["datapoint_index"]] = (r["performance"], r["btc"], r["bec"])
            self._set_summary(summary)
            if not self.lambdas:
                self.lambdas = _manifest_grid(folder) or []

    # ---- the sweep -------------------------------------------------------------------------------
    def start_sweep(self):
        """Starts (or resumes) the sweep in a background thread and returns at once: True when it
        started, False while it already runs. Raises ValueError for a widget made by
        ``from_folder``."""
        if not self.can_start:
            raise ValueError("this CompatibilityAnalysis was made with from_folder and only shows %r; construct it "
                             "with the sweep's settings to run a sweep" % (self.sweep_manager.folder_name,))
        if self.sweep_manager.is_running():
            return False
        self.error = ""
        self._known = {}
        self._data.forget()  # overwrite=True rewrites the evaluations a view may have cached
        started = self.sweep_manager.start_sweep()
        if started:
            self.status = "running"
            self._monitor = _base.SweepMonitor(self, self.sweep_manager, self._refresh_points)
            self._monitor.start()
        return started

    def cancel(self, wait=False, timeout=None):
        """Stops the running sweep after its running jobs' current epoch (the finished points stay
        on disk, and Start resumes). Returns True when no sweep runs any more."""
        if self.sweep_manager.is_running():
            self.status = "cancelling"
        done = self.sweep_manager.cancel(wait=wait, timeout=timeout)
        if done and self._monitor is not None:
            self._monitor.thread.join(timeout)
        return done

    def wait(self, timeout=None):
        """Waits until the background sweep and the widget's view of it have ended; True then,
        False when timeout seconds passed first. Re-raises the sweep's error."""
        ended = self.sweep_manager.wait(timeout)  # raises the sweep's error, once it has ended
        m = self._monitor
        if ended and m is not None:
            m.thread.join(timeout)
            ended = not m.thread.is_alive()
        return ended

    def _request_start(self, args):
        try:
            return {"started": self.start_sweep()}, []
        except Exception as e:  # shown in the widget, as the sweep's own errors are
            self.error = "%s: %s" % (type(e).__name__, e)
            self.status = "error"
            raise

    def _request_cancel(self, args):
        return {"cancelled": self.cancel(wait=False)}, []

    # ---- the static report -----------------------------------------------------------------------
    def _static_evaluations(self):
        return _evaluations(self.sweep_manager, self.points)


# ---- the state of an analysis, shared by the widget and save_sweep_report ------------------------
def _extras(fname, get_instance_data_by_id, get_instance_label_by_id, class_names, page_size):
    return dict(get_instance_data_by_id=_base._optional_function(get_instance_data_by_id,
                                                                 "get_instance_data_by_id", fname),
                get_instance_label_by_id=_base._optional_function(get_instance_label_by_id,
                                                                  "get_instance_label_by_id", fname),
                class_names=_base._class_names(class_names, fname),
                page_size=_base._page_size(page_size, fname))


def _open_folder(fname, argname, path, get_instance_image_by_id, get_instance_data_by_id, get_instance_label_by_id,
                 class_names, page_size):
    """The SweepManager of the sweep in folder path (checked) and the checked display options."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError("%s(): argument '%s' must be a folder path, not %s" % (fname, argname, type(path).__name__))
    folder = os.fspath(path)
    if not os.path.isdir(folder):
        raise FileNotFoundError("%s(): argument '%s': %r is not a folder" % (fname, argname, folder))
    if not (os.path.exists(os.path.join(folder, _sweep.MANIFEST))
            or os.path.exists(os.path.join(folder, _sweep.SUMMARY))):
        raise FileNotFoundError("%s(): argument '%s': %r holds no sweep (no %s or %s)"
                                % (fname, argname, folder, _sweep.SUMMARY, _sweep.MANIFEST))
    _base._optional_function(get_instance_image_by_id, "get_instance_image_by_id", fname)
    extras = _extras(fname, get_instance_data_by_id, get_instance_label_by_id, class_names, page_size)
    return SweepManager.from_folder(folder, get_instance_image_by_id=get_instance_image_by_id), extras


def _summary_state(summary):
    return dict(h1_performance=_base._finite_or_none(summary.get("h1_performance")),
                points=[dict(r) for r in summary.get("data") or []])


def _manifest_grid(folder):
    import json
    try:
        with open(os.path.join(folder, _sweep.MANIFEST), encoding="utf-8") as f:
            return list(json.load(f)["lambdas"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _analysis_state(manager, extras, title, fname, grid):
    """(state, data): the synced state of an analysis of manager's sweep (the traits of
    CompatibilityAnalysis) and the data layer that answers its requests."""
    data = _data.WidgetData(manager.get_evaluation, manager.get_instance_image_by_id,
                            extras["get_instance_data_by_id"], extras["get_instance_label_by_id"],
                            extras["class_names"])
    folder = os.fspath(manager.folder_name)
    title = _base._title(title, "Backward compatibility analysis: %s" % os.path.basename(os.path.abspath(folder)),
                         fname)
    summary = manager.get_sweep_summary()
    state = dict(kind="analysis", title=title, page_size=extras["page_size"], columns=data.columns(),
                 class_names=extras["class_names"],
                 performance_metric=str(summary.get("performance_metric") or "performance"),
                 **_summary_state(summary))
    if grid is None:
        grid = _manifest_grid(folder) or sorted({r["lambda_c"] for r in state["points"]})
    state["lambdas"] = list(grid)
    status = _sweep.sweep_status(folder)
    state["status"], state["progress"] = ("done", 1.0) if status >= 1.0 else ("idle", status)
    return state, data


def _evaluations(manager, points):
    out = {}
    for r in points:
        i = r["datapoint_index"]
        try:
            out[i] = manager.get_evaluation(i)
        except (FileNotFoundError, IndexError):
            continue
    return out


class _Report(object):
    """What a CompatibilityAnalysis.from_folder shows, as plain attributes (no anywidget): the
    input of the HTML report's data block."""

    def __init__(self, manager, state, data):
        self.__dict__.update(state)
        self.filters, self.selection = dict(_data.DEFAULT_FILTERS), dict(_data.EMPTY_SELECTION)
        self.error, self.can_start = "", False
        self.sweep_manager, self._data = manager, data

    def _static_evaluations(self):
        return _evaluations(self.sweep_manager, self.points)


def save_sweep_report(folder, path, *, get_instance_image_by_id=None, class_names=None, title=None,
                      max_images=5000):
    """Writes the HTML report of the sweep in folder (what ``CompatibilityAnalysis.from_folder(folder,
    ...).save_html(path)`` writes: the same view and data, self-contained, opening offline from
    file://) without anywidget, so it works where the widget extra is not installed.
    get_instance_image_by_id, class_names and title are as for ``from_folder``; thumbnails of up to
    max_images error instances are inlined. Returns the path."""
    fname = "save_sweep_report"
    _html.check_output(path, max_images, fname)
    manager, extras = _open_folder(fname, "folder", folder, get_instance_image_by_id, None, None, class_names, 5)
    state, data = _analysis_state(manager, extras, title, fname, None)
    return _html.write_report(path, [_Report(manager, state, data)], max_images, fname)
