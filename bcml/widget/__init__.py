"""The compatibility widgets (SPEC section 7): ``CompatibilityAnalysis`` (a lambda_c sweep and its
analysis) and ``ModelComparison`` (one pair of models), drawn by one ES module through anywidget,
with no server and no port. anywidget is an optional extra: ``pip install bcml[widget]``.
``save_html(path, *widgets)`` writes widgets into one self-contained HTML report;
``save_sweep_report(folder, path)`` writes a sweep folder's report without anywidget."""
from ._base import save_html
from .compatibility_analysis import CompatibilityAnalysis, save_sweep_report
from .model_comparison import ModelComparison

__all__ = ["CompatibilityAnalysis", "ModelComparison", "save_html", "save_sweep_report"]
