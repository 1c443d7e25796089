"""Training and analysis helpers with backwardcompatibilityml's names: ``bcml.helpers.training``
(training loops, compatibility training, error analysis and evaluation) and
``bcml.helpers.utils`` (label and probability utilities)."""
from . import training, utils  # noqa: F401
