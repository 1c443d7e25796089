"""BCML's later package name for the widgets (backwardcompatibilityml.widgets): the same classes
as ``bcml.widget``."""
from ..widget import CompatibilityAnalysis, ModelComparison, save_html

__all__ = ["CompatibilityAnalysis", "ModelComparison", "save_html"]
