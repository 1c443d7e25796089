"""The model-comparison widget (backwardcompatibilityml.widgets.model_comparison): the error
analysis of one pair of models on one data set, with no sweep: the Venn diagram of h1's and h2's
errors, per-class bars and the error instances."""
from .. import _checks
from ..helpers.training import evaluate_model_performance_and_compatibility_on_dataset
from ..metrics import model_accuracy
from . import _base, _data
from ._base import _Widget

__all__ = ["ModelComparison"]


class ModelComparison(_Widget):
    """The error analysis of h2 against h1 on dataset (BCML's order of arguments). ``port`` is
    accepted and ignored: no server is needed. get_instance_image_by_id and get_instance_metadata
    as for CompatibilityAnalysis. Keyword-only: class_names (a list or dict of class names),
    get_instance_data_by_id / get_instance_label_by_id (tabular Data and Label columns), title,
    page_size.

    The evaluation is computed when the widget is made (``.evaluation``, the dict of
    ``evaluate_model_performance_and_compatibility_on_dataset``)."""

    def __init__(self, h1, h2, dataset, performance_metric=model_accuracy, port=None,
                 get_instance_image_by_id=None, get_instance_metadata=None, device="cpu", *,
                 class_names=None, get_instance_data_by_id=None, get_instance_label_by_id=None,
                 title=None, page_size=5):
        fname = "ModelComparison"
        if _base.anywidget is None:
            raise ImportError(_base._MISSING)
        _checks.check_device(device)
        if performance_metric is None:  # the documented default
            performance_metric = model_accuracy
        image_fn = _base._optional_function(get_instance_image_by_id, "get_instance_image_by_id", fname)
        data_fn = _base._optional_function(get_instance_data_by_id, "get_instance_data_by_id", fname)
        label_fn = _base._optional_function(get_instance_label_by_id, "get_instance_label_by_id", fname)
        names = _base._class_names(class_names, fname)
        page_size = _base._page_size(page_size, fname)
        title = _base._title(title, "Model comparison", fname)
        evaluation = evaluate_model_performance_and_compatibility_on_dataset(
            h1, h2, dataset, performance_metric, get_instance_metadata, device)
        h1_performance = float(_checks.call_user(performance_metric, "performance_metric(h1, dataset, device)", h1,
                                                 dataset, device))
        self.port = port  # ignored: no server
        self.h1, self.h2, self.dataset = h1, h2, dataset
        self._show(evaluation, h1_performance, getattr(performance_metric, "__name__", "performance"), image_fn,
                   data_fn, label_fn, names, title, page_size)

    def _show(self, evaluation, h1_performance, metric_name, image_fn, data_fn, label_fn, names, title, page_size):
        self.evaluation = evaluation
        self.get_instance_image_by_id = image_fn
        data = _data.WidgetData(self._get_evaluation, image_fn, data_fn, label_fn, names)
        _base._Widget.__init__(self, kind="comparison", title=title, can_start=False, status="done",
                               progress=1.0, page_size=page_size, columns=data.columns(), class_names=names,
                               h1_performance=_base._finite_or_none(h1_performance),
                               performance_metric=metric_name,
                               selection=dict(_data.EMPTY_SELECTION, point=0))
        self._setup_data(data)

    @classmethod
    def from_report(cls, report, *, class_names=None, get_instance_metadata=None, get_instance_image_by_id=None,
                    get_instance_data_by_id=None, get_instance_label_by_id=None, title=None, page_size=5):
        """The widget of a :func:`bcml.compare` report, without models: the report keeps the
        predictions it was made from (instance ids: compare's ``ids``, else row indices). The
        performance shown is accuracy. class_names defaults to the report's class names."""
        fname = "ModelComparison.from_report"
        from ..scores import CompatibilityReport
        from .. import _compare
        if _base.anywidget is None:
            raise ImportError(_base._MISSING)
        if not isinstance(report, CompatibilityReport):
            raise TypeError("%s(): argument 'report' must be a CompatibilityReport (from bcml.compare), not %s"
                            % (fname, type(report).__name__))
        labels = getattr(report, "_labels", None)
        if labels is None:
            raise ValueError("%s(): argument 'report' holds no predictions: make it with bcml.compare (a report of "
                             "compatibility_report, or one read back from JSON, has only the scores)" % fname)
        meta_fn = _base._optional_function(get_instance_metadata, "get_instance_metadata", fname)
        image_fn = _base._optional_function(get_instance_image_by_id, "get_instance_image_by_id", fname)
        data_fn = _base._optional_function(get_instance_data_by_id, "get_instance_data_by_id", fname)
        label_fn = _base._optional_function(get_instance_label_by_id, "get_instance_label_by_id", fname)
        if class_names is None:
            class_names = [pc["name"] for pc in report["per_class"]]
        names = _base._class_names(class_names, fname)
        page_size = _base._page_size(page_size, fname)
        title = _base._title(title, "Model comparison", fname)
        l1, l2, y, ids = labels
        evaluation = _compare.widget_evaluation(l1, l2, y, ids, report["num_classes"], meta_fn)
        self = cls.__new__(cls)
        self.port = None
        self.h1 = self.h2 = self.dataset = None
        self.report = report
        self._show(evaluation, report["h1_accuracy"], "model_accuracy", image_fn, data_fn, label_fn, names, title,
                   page_size)
        return self

    @classmethod
    def from_predictions(cls, h1_pred, h2_pred, y, *, ids=None, class_names=None, get_instance_metadata=None,
                         get_instance_image_by_id=None, get_instance_data_by_id=None, get_instance_label_by_id=None,
                         title=None, page_size=5):
        """The widget of two models' predictions (any model's: as :func:`bcml.compare` reads
        them), without models: ``from_report(bcml.compare(h1_pred, h2_pred, y, ids=ids, ci=None))``."""
        from .. import _compare
        if _base.anywidget is None:
            raise ImportError(_base._MISSING)
        report = _compare.compare(h1_pred, h2_pred, y, ids=ids, ci=None)
        return cls.from_report(report, class_names=class_names, get_instance_metadata=get_instance_metadata,
                               get_instance_image_by_id=get_instance_image_by_id,
                               get_instance_data_by_id=get_instance_data_by_id,
                               get_instance_label_by_id=get_instance_label_by_id, title=title, page_size=page_size)

    def _get_evaluation(self, index):
        if index != 0:
            raise IndexError("ModelComparison has one evaluation (index 0), not %r" % (index,))
        return self.evaluation

    def _static_evaluations(self):
        return {0: self.evaluation}
