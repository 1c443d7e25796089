"""Enough of torchvision for code written against it (``import bcml.vision as torchvision``):
``bcml.vision.transforms`` (Compose, ToTensor, Normalize, Lambda, RandomCrop,
RandomHorizontalFlip, Resize), ``bcml.vision.datasets`` (MNIST, FashionMNIST, CIFAR10) and
``bcml.vision.models`` (resnet18)."""
from . import datasets, models, transforms  # noqa: F401

__all__ = ["datasets", "models", "transforms"]
