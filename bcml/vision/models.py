"""Models (``bcml.vision.models``, as ``torchvision.models``): ``resnet18``.

``resnet18(*, weights=None, num_classes=1000)`` is torchvision's ImageNet ResNet-18 (7x7 stride-2
convolution, batch norm, ReLU, 3x3 stride-2 max-pool, four stages of two BasicBlocks, adaptive
average pool, fc) with torchvision's state-dict key names, so that
``model.load_state_dict(bcml.load_torch_checkpoint("resnet18.pth"))`` loads a torchvision
checkpoint 1:1; like torchvision's, it returns the logits only (``bcml.models.ResNet18``, the
same network, returns bcml's triple). bcml downloads no weights: ``weights`` (and the older
``pretrained=True``) raise ValueError.
"""
from ..models import ResNet18

__all__ = ["ResNet", "resnet18"]


class ResNet(ResNet18):
    """torchvision's ResNet-18 layout, returning the logits (B, num_classes)."""

    def forward(self, x):
        return super().forward(x)[0]


def resnet18(*, weights=None, progress=True, num_classes=1000, **kwargs):
    """torchvision's ResNet-18 with freshly initialised weights (torchvision's initialisation).

    ``weights`` must be None: bcml cannot download weights. Load a checkpoint instead::

        model = bcml.vision.models.resnet18()
        model.load_state_dict(bcml.load_torch_checkpoint("resnet18-f37072fd.pth"))
    """
    from .._values import flag
    pretrained = kwargs.pop("pretrained", False)
    if kwargs:
        raise TypeError("resnet18() got an unexpected keyword argument %r" % sorted(kwargs)[0])
    flag(progress, "resnet18", "progress")
    if weights is not None or flag(pretrained, "resnet18", "pretrained"):
        raise ValueError("resnet18(): argument '%s': bcml cannot download weights; build the model with "
                         "weights=None and load a checkpoint with model.load_state_dict("
                         "bcml.load_torch_checkpoint(path))" % ("weights" if weights is not None else "pretrained"))
    return ResNet(num_classes=num_classes)
