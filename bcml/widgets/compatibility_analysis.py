"""backwardcompatibilityml.widgets.compatibility_analysis: the same class as
``bcml.widget.compatibility_analysis``."""
from ..widget.compatibility_analysis import CompatibilityAnalysis

__all__ = ["CompatibilityAnalysis"]
