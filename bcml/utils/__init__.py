"""PyTorch's ``torch.utils`` names that code written for PyTorch reaches for: ``bcml.utils.data``
(``Dataset``, ``TensorDataset``, ``Subset``, ``random_split``, ``DataLoader``)."""
from . import data  # noqa: F401

__all__ = ["data"]
