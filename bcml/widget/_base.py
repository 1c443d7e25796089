"""The anywidget base the two widgets share: synced traits, request routing, the sweep's
background monitor, and save_html. anywidget is an optional extra (``pip install bcml[widget]``);
without it, constructing a widget raises ImportError naming the extra."""
import math
import numbers
import pathlib
import queue
import threading
import time

from . import _data, _html

STATIC = pathlib.Path(__file__).resolve().parent / "static"
PUSH_INTERVAL = 0.25   # seconds between two progress pushes to the front end (at most 4 a second)

try:
    import anywidget
    import traitlets
except ImportError:  # the extra is missing: the classes exist, constructing one says what to install
    anywidget = traitlets = None

_MISSING = ("bcml.widget needs anywidget, an optional extra: pip install \"bcml[widget]\" "
            "(or pip install anywidget)")


def _class_names(class_names, fname):
    """{str(class value): display name} from None, a list/tuple (index -> name) or a dict."""
    if class_names is None:
        return {}
    if isinstance(class_names, dict):
        out = {}
        for k, v in class_names.items():
            if isinstance(k, bool) or not isinstance(k, (numbers.Integral, str)):
                raise TypeError("%s(): argument 'class_names' must map class values (int or str) to names, got key %r"
                                % (fname, k))
            out[str(int(k)) if isinstance(k, numbers.Integral) else k] = str(v)
        return out
    if isinstance(class_names, (list, tuple)):
        for v in class_names:
            if not isinstance(v, str):
                raise TypeError("%s(): argument 'class_names' must hold str names, got %s" % (fname, type(v).__name__))
        return {str(i): v for i, v in enumerate(class_names)}
    raise TypeError("%s(): argument 'class_names' must be a list of names (class i -> class_names[i]), a dict or "
                    "None, not %s" % (fname, type(class_names).__name__))


def _optional_function(fn, name, fname):
    if fn is not None and not callable(fn):
        raise TypeError("%s(): argument '%s' must be a function of the instance id or None, not %s"
                        % (fname, name, type(fn).__name__))
    return fn


def _page_size(v, fname):
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise TypeError("%s(): argument 'page_size' must be an int, not %s" % (fname, type(v).__name__))
    if not 1 <= v <= 1000:
        raise ValueError("%s(): argument 'page_size' must be in [1, 1000], got %d" % (fname, v))
    return int(v)


def _title(v, default, fname):
    if v is None:
        return default
    if not isinstance(v, str):
        raise TypeError("%s(): argument 'title' must be a str or None, not %s" % (fname, type(v).__name__))
    return v


def _finite_or_none(v):
    return float(v) if isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v) else None


if anywidget is not None:
    class _WidgetBase(anywidget.AnyWidget):
        # the files' text, not their paths: anywidget watches a path for edits through a signal
        # that holds every widget made from it, so no widget (nor the models it holds) was ever
        # freed
        _esm = (STATIC / "widget.js").read_text(encoding="utf-8")
        _css = (STATIC / "widget.css").read_text(encoding="utf-8")

        kind = traitlets.Unicode("analysis").tag(sync=True)
        title = traitlets.Unicode("").tag(sync=True)
        status = traitlets.Unicode("idle").tag(sync=True)
        progress = traitlets.Float(0.0).tag(sync=True)
        can_start = traitlets.Bool(False).tag(sync=True)
        static = traitlets.Bool(False).tag(sync=True)
        points = traitlets.List([]).tag(sync=True)
        lambdas = traitlets.List([]).tag(sync=True)
        h1_performance = traitlets.Float(None, allow_none=True).tag(sync=True)
        performance_metric = traitlets.Unicode("model_accuracy").tag(sync=True)
        filters = traitlets.Dict(dict(_data.DEFAULT_FILTERS)).tag(sync=True)
        selection = traitlets.Dict(dict(_data.EMPTY_SELECTION)).tag(sync=True)
        error = traitlets.Unicode("").tag(sync=True)
        page_size = traitlets.Int(5).tag(sync=True)
        columns = traitlets.List([]).tag(sync=True)
        class_names = traitlets.Dict({}).tag(sync=True)

        def __init__(self, **traits):
            super().__init__(**traits)
            self.on_msg(self._on_request)

        @traitlets.validate("filters")
        def _valid_filters(self, proposal):
            return _data.check_filters(proposal["value"])

        @traitlets.validate("selection")
        def _valid_selection(self, proposal):
            return _data.check_selection(proposal["value"])

        @traitlets.observe("filters")
        def _filters_changed(self, change):
            p = self.selection.get("point")
            if p is None or self.kind != "analysis":
                return
            row = next((r for r in self.points if r.get("datapoint_index") == p), None)
            if row is None or not _data.point_visible(row, change["new"]):
                self.selection = dict(_data.EMPTY_SELECTION)
else:
    class _WidgetBase(object):
        def __init__(self, *args, **kwargs):
            raise ImportError(_MISSING)


class _Widget(_WidgetBase):
    """What both widgets share: the data layer, requests, selected ids, save_html."""

    def _setup_data(self, data):
        self._data = data
        self._extra_methods = {}

    def _on_request(self, widget, content, buffers):
        reply = self._data.handle(content, self._extra_methods)
        if reply is not None:
            message, out = reply
            self.send(message, out)

    def request(self, method, **args):
        """What the front end gets for a request: (result, buffers), e.g.
        ``request("page", index=5, filter={"region": "regress"}, page=0, page_size=5)``. Methods:
        ``evaluation`` (index), ``page`` (index, filter, page, page_size) and ``csv`` (index,
        filter); a bad request raises here (a view is shown the error instead)."""
        return self._data.dispatch(method, args, self._extra_methods)

    def selected_ids(self):
        """The instance ids the current selection shows in the instance table (every error
        instance of the selected point without a region or class filter); [] with no point."""
        p = self.selection.get("point")
        if p is None:
            return []
        rows = self._data.filter_rows(p, _data.selection_filter(self.selection))
        return [r.get("instance_id") for r in rows]

    def save_html(self, path, max_images=5000):
        """Writes the widget as one self-contained HTML file (the same view, with its data embedded;
        it works offline from file:// with no kernel; the Start button is disabled). Thumbnails of
        up to max_images error instances are inlined. Returns the path."""
        return _html.save_html(path, [self], max_images=max_images)


def save_html(path, *widgets, max_images=5000):
    """Writes one or more widgets into one self-contained HTML report (see ``save_html`` of a
    widget). Returns the path."""
    return _html.save_html(path, list(widgets), max_images=max_images)


class SweepMonitor(object):
    """Follows a SweepManager's background sweep from another thread and pushes its state to the
    widget: progress (monotone, at most every PUSH_INTERVAL seconds), the points finished so far,
    and at the end the status ("done", "cancelled" or "error" with the message)."""

    def __init__(self, widget, manager, refresh_points):
        self.widget, self.manager, self.refresh_points = widget, manager, refresh_points
        self.latest = widget.progress
        self.thread = threading.Thread(target=self._run, name="bcml-widget-monitor", daemon=True)

    def start(self):
        self.thread.start()

    def _run(self):
        w, m = self.widget, self.manager
        q = m.percent_complete_queue
        latest, pushed, last_push = w.progress, w.progress, 0.0
        try:
            while True:
                running = m.is_running()
                try:
                    while True:
                        v = q.get(timeout=0.05 if running else 0)
                        latest = max(latest, float(v))
                        running = m.is_running()
                except queue.Empty:
                    pass
                now = time.monotonic()
                if latest > pushed and now - last_push >= PUSH_INTERVAL:
                    self.refresh_points()
                    # 1.0 only once the summary is written (as get_sweep_status)
                    w.progress = max(w.progress, min(latest, 0.99))
                    pushed, last_push = latest, now
                self.latest = latest
                if not running and m.sweep_thread is not None and not m.sweep_thread.is_alive():
                    break
                time.sleep(0.05)
        finally:
            self._finish()

    def _finish(self):
        w, m = self.widget, self.manager
        try:
            self.refresh_points()
        except Exception:  # an unreadable folder: the sweep's own error is what the user needs
            pass
        if m.error is not None:
            w.error = "%s: %s" % (type(m.error).__name__, m.error)
            w.status = "error"
        elif m.cancelled:
            w.progress = max(w.progress, min(self.latest, 0.99))
            w.status = "cancelled"
        else:
            w.progress = 1.0
            w.status = "done"
