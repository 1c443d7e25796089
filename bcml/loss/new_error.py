"""backwardcompatibilityml.loss.new_error: the new-error compatibility losses (the same classes
as ``bcml.loss``)."""
from . import BCBinaryCrossEntropyLoss, BCCrossEntropyLoss, BCKLDivergenceLoss, BCNLLLoss

__all__ = ["BCNLLLoss", "BCCrossEntropyLoss", "BCBinaryCrossEntropyLoss", "BCKLDivergenceLoss"]
