"""bcml.nn: modules and layers with PyTorch's names (see bcml.nn.functional for the ops)."""
from . import functional, init
from .modules import (AdaptiveAvgPool2d, AvgPool2d, BatchNorm1d, BatchNorm2d, BCELoss, Conv2d,
                      CrossEntropyLoss, Dropout, Dropout2d, Flatten, Identity, KLDivLoss, Linear,
                      LogSoftmax, MaxPool2d, Module, ModuleList, MSELoss, NLLLoss, ReLU,
                      Sequential, Sigmoid, Softmax, Tanh)
from .parameter import Parameter

__all__ = ["functional", "init", "Module", "Parameter", "Linear", "ReLU", "Sigmoid", "Tanh",
           "Softmax", "LogSoftmax", "Dropout", "Dropout2d", "Conv2d", "MaxPool2d", "AvgPool2d",
           "AdaptiveAvgPool2d", "Flatten", "BatchNorm1d", "BatchNorm2d",
           "Sequential", "ModuleList", "Identity", "NLLLoss", "CrossEntropyLoss", "BCELoss",
           "KLDivLoss", "MSELoss"]
