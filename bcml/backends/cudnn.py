"""torch.backends.cudnn's flags, settable and without effect (bcml computes on the CPU, and its
results are already deterministic: the same bits whatever the thread count)."""

enabled = True
deterministic = False
benchmark = False


def is_available():
    """False: bcml has no cuDNN."""
    return False
