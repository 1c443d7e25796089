"""backwardcompatibilityml.loss.strict_imitation: the strict-imitation compatibility losses (the
same classes as ``bcml.loss``)."""
from . import (StrictImitationBinaryCrossEntropyLoss, StrictImitationCrossEntropyLoss,
               StrictImitationKLDivergenceLoss, StrictImitationNLLLoss)

__all__ = ["StrictImitationNLLLoss", "StrictImitationCrossEntropyLoss", "StrictImitationBinaryCrossEntropyLoss",
           "StrictImitationKLDivergenceLoss"]
