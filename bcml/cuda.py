"""torch.cuda's queries, answered for bcml, which computes on the CPU only: code written for
PyTorch that picks its device with ``"cuda" if torch.cuda.is_available() else "cpu"`` runs
unchanged and picks the CPU."""

__all__ = ["is_available", "device_count"]


def is_available():
    """False: bcml has no GPU backend."""
    return False


def device_count():
    """0: bcml sees no GPU."""
    return 0
