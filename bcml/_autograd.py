"""Grad-mode switches: no_grad, enable_grad, set_grad_enabled (thread-local, as in PyTorch)."""
import functools

from . import _core


class _GradMode:
    _enabled = None

    def __enter__(self):
        self._prev = _core.set_grad_enabled(self._enabled)
        return self

    def __exit__(self, *exc):
        _core.set_grad_enabled(self._prev)
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with self.__class__():
                return fn(*args, **kwargs)
        return wrapper


class no_grad(_GradMode):
    """Context manager and decorator: ops inside record no graph."""
    _enabled = False


class enable_grad(_GradMode):
    _enabled = True


class set_grad_enabled(_GradMode):
    def __init__(self, mode):
        self._enabled = bool(mode)
        self._prev = _core.set_grad_enabled(self._enabled)

    def __enter__(self):
        return self

    def __call__(self, fn):
        raise TypeError("set_grad_enabled is a context manager only")


def is_grad_enabled():
    return _core.is_grad_enabled()
