"""backwardcompatibilityml.helpers.models: the models under BCML's names (the same classes as
``bcml.models``). ``MLPClassifier.load_state_dict`` also takes BCML's key names
(``layer-0.weight``, ...)."""
from ..models import BasicBlock, ConvNet, LogisticRegression, MLPClassifier, ResNet18, SixLayerNet

__all__ = ["LogisticRegression", "MLPClassifier", "ConvNet", "SixLayerNet", "BasicBlock", "ResNet18"]
