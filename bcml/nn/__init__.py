"""bcml.nn: modules and layers with PyTorch's names (see bcml.nn.functional for the ops)."""
from . import functional, init
from .modules import (BatchNorm1d, BatchNorm2d, BCELoss, CrossEntropyLoss, Dropout, Flatten,
                      Identity, KLDivLoss, Linear, LogSoftmax, Module, ModuleList, MSELoss,
                      NLLLoss, ReLU, Sequential, Sigmoid, Softmax, Tanh)
from .parameter import Parameter

__all__ = ["functional", "init", "Module", "Parameter", "Linear", "ReLU", "Sigmoid", "Tanh",
           "Softmax", "LogSoftmax", "Dropout", "Flatten", "BatchNorm1d", "BatchNorm2d",
           "Sequential", "ModuleList", "Identity", "NLLLoss", "CrossEntropyLoss", "BCELoss",
           "KLDivLoss", "MSELoss"]
