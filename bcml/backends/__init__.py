"""torch.backends' switches that code written for PyTorch sets (``bcml.backends.cudnn``). bcml
has no cuDNN: the flags are kept, settable, and change nothing."""
from . import cudnn, winograd  # noqa: F401
