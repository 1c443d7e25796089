"""Winograd convolution (bcml's own switch, beside torch.backends' names).

``enabled`` (default True): 3x3 stride-1 convolutions whose shapes favour it run as Winograd
F(2x2, 3x3) in the core, forward and for the input gradient; set it to False (or start Python
with ``BCML_WINOGRAD=0``) to run every convolution through im2col + GEMM. The choice is made in
the kernel from the shapes and this flag at each call, never from the thread count, so results
stay bitwise identical across thread counts (and replayed plans follow the flag as it is when
they run)."""
import os
import sys
import types

from .. import _core


class _Module(types.ModuleType):
    @property
    def enabled(self):
        return _core.get_winograd() != 0

    @enabled.setter
    def enabled(self, value):
        _core.set_winograd(1 if value else 0)


if os.environ.get("BCML_WINOGRAD", "").strip() == "0":
    _core.set_winograd(0)

sys.modules[__name__].__class__ = _Module
