"""backwardcompatibilityml.widgets.model_comparison: the same class as
``bcml.widget.model_comparison``."""
from ..widget.model_comparison import ModelComparison

__all__ = ["ModelComparison"]
