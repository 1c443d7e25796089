"""Parameter: a leaf tensor that a Module registers and an optimizer updates."""
from .._tensor import Tensor


class Parameter(Tensor):
    """Parameter(data, requires_grad=True): shares data's memory, as in PyTorch."""

    __slots__ = ()

    def __new__(cls, data=None, requires_grad=True):
        if data is None:
            from .._tensor import zeros
            data = zeros(0)
        if not isinstance(data, Tensor):
            from .._tensor import tensor
            data = tensor(data)
        p = Tensor.__new__(cls, data)
        p.requires_grad = requires_grad
        return p

    def __repr__(self):
        return "Parameter containing:\n" + Tensor.__repr__(Tensor(self))

    def __reduce__(self):
        return (Parameter, (Tensor(self).clone(), self.requires_grad))
