"""Training and analysis helpers with backwardcompatibilityml's names: ``bcml.helpers.training``
(training loops, compatibility training, error analysis and evaluation) and
``bcml.helpers.utils`` (label and probability utilities), and ``bcml.helpers.models`` (the
models under BCML's module name)."""
from . import models, training, utils  # noqa: F401
