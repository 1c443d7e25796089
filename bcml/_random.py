"""The default generator and seeding (as torch.manual_seed / torch.Generator)."""
import contextlib
import threading

from . import _core

Generator = _core.Generator
default_generator = Generator()


_local = threading.local()


def gen(generator=None):
    """The generator to draw from: the one given, else this thread's default (the process-wide
    default generator unless a `default_for_thread` block set another)."""
    if generator is None:
        g = getattr(_local, "generator", None)
        return default_generator if g is None else g
    if not isinstance(generator, Generator):
        raise TypeError("generator must be a bcml.Generator, got %s" % type(generator).__name__)
    return generator


def manual_seed(seed):
    """Seeds the default generator; returns it. As PyTorch: int(seed) of anything that has one
    (floats are truncated), in [-2**63, 2**64)."""
    if not isinstance(seed, int) or isinstance(seed, bool):
        try:
            seed = int(seed)
        except (TypeError, ValueError, OverflowError) as e:
            exc = TypeError if isinstance(e, TypeError) else ValueError
            raise exc("manual_seed(): argument 'seed' must be an int, got %r" % (seed,)) from None
    return default_generator.manual_seed(seed)


def seed():
    import os
    s = int.from_bytes(os.urandom(8), "little")
    default_generator.manual_seed(s)
    return s


def initial_seed():
    return default_generator.initial_seed()


def get_rng_state():
    return default_generator.get_state()


def set_rng_state(new_state):
    """Restores the default generator's state (bytes from get_rng_state())."""
    default_generator.set_state(new_state)


@contextlib.contextmanager
def default_for_thread(generator):
    """Within the block, ops of this thread that take no generator (dropout, init, rand...)
    draw from `generator` instead of the default one (each sweep job has its own)."""
    if not isinstance(generator, Generator):
        raise TypeError("generator must be a bcml.Generator, got %s" % type(generator).__name__)
    prev = getattr(_local, "generator", None)
    _local.generator = generator
    try:
        yield generator
    finally:
        _local.generator = prev
