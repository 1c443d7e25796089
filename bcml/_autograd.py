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
        if not callable(fn):
            raise TypeError("%s(): argument 'fn' must be a function to decorate, not %s"
                            % (type(self).__name__, type(fn).__name__))
        mode = self._enabled

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            prev = _core.set_grad_enabled(mode)
            try:
                return fn(*args, **kwargs)
            finally:
                _core.set_grad_enabled(prev)
        return wrapper


class no_grad(_GradMode):
    """Context manager and decorator: ops inside record no graph."""
    _enabled = False


class enable_grad(_GradMode):
    _enabled = True


class set_grad_enabled(_GradMode):
    """Sets grad mode on (mode=True) or off: at once when called, for a block as a context
    manager, or for a function as a decorator (the mode before it is then restored at once)."""

    def __init__(self, mode):
        if not isinstance(mode, bool) and type(mode).__name__ != "bool_":
            raise TypeError("set_grad_enabled(): argument 'mode' must be a bool, not %s" % type(mode).__name__)
        self._enabled = bool(mode)
        self._prev = _core.set_grad_enabled(self._enabled)

    def __enter__(self):
        return self

    def __call__(self, fn):
        _core.set_grad_enabled(self._prev)   # as a decorator it sets no mode of its own now
        return super().__call__(fn)


def is_grad_enabled():
    return _core.is_grad_enabled()
