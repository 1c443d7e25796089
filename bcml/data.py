"""Batching arrays into ``(ids, x, y)`` batches (``bcml.data``).

backwardcompatibilityml's training helpers take a data set as a list of
batches ``[ids, x, y]`` where ``ids`` are instance ids that stay attached to
their rows, so error instances can be reported by id. :class:`DataLoader`
produces such batches from NumPy arrays, one epoch per iteration, and
:func:`batches` returns one epoch as a list.

Shuffling
---------
With ``shuffle=True`` the order of epoch ``e`` (0 for the first iteration,
then 1, 2, ...) is ``Generator(PCG64(SeedSequence(seed).spawn(e + 1)[e]))
.permutation(n)``, i.e. the generator of the ``e``-th child of
``SeedSequence(seed)``. So the same seed gives the same sequence of
orders in every run and on every platform, and every epoch gets a new
order. With ``seed=None`` a seed is drawn from bcml's default generator
(so ``bcml.manual_seed`` makes it reproducible) once, when the
loader is made (the orders then differ between runs, still one per epoch).

Batch contents
--------------
``ids`` is an int64 NumPy array; ``x`` and ``y`` are bcml tensors made with
``bcml.from_numpy`` when the bcml core is available, else NumPy arrays.
Floating arrays are converted to float32, and integer labels ``y`` to int64,
once when the loader is made. Unshuffled batches are slices of those
arrays, so a tensor made from them may share memory with the data passed
in (as ``bcml.from_numpy`` does); shuffled batches are copies.
"""

import operator

import numpy as np

__all__ = ["DataLoader", "batches"]

_UNRESOLVED = object()
_from_numpy = _UNRESOLVED


def _default_seed():
    """A seed drawn from bcml's default generator (seeded by bcml.manual_seed); from the OS
    when the bcml core is not importable."""
    try:
        from ._random import default_generator
    except ImportError:
        return int(np.random.SeedSequence().entropy)
    return int(default_generator._next_u64() >> 1)


def _to_tensor(a):
    """``bcml.from_numpy(a)`` if the bcml core is importable, else ``a``.

    The import is attempted once per process, at the first batch (not at
    module import, so this module imports without the C extension).
    """
    global _from_numpy
    a = np.ascontiguousarray(a)
    if _from_numpy is _UNRESOLVED:
        try:
            import bcml
            _from_numpy = bcml.from_numpy
        except (ImportError, AttributeError):
            _from_numpy = None
    return a if _from_numpy is None else _from_numpy(a)


def _as_array(value, name):
    if isinstance(value, np.ndarray):
        arr = value
    elif callable(getattr(value, "numpy", None)):
        arr = np.asarray(value.numpy())
    else:
        raise TypeError("{} must be a NumPy array or have a .numpy() method, got {}".format(
            name, type(value).__name__))
    if arr.ndim == 0:
        raise ValueError("{} must have at least one dimension (one row per instance), "
                         "got a 0-d array".format(name))
    if arr.dtype == object:
        raise TypeError("{} must hold numbers, got an object array".format(name))
    if arr.dtype.kind not in "biuf":
        raise TypeError("{} must hold numbers (bool, integer or floating), got dtype {}".format(name, arr.dtype))
    if arr.ndim > 4:
        raise ValueError("{} has {} dimensions; bcml tensors (its batches) have at most 4".format(name, arr.ndim))
    n, limit = arr.size * 8, _memory()
    if n > limit:  # its float32/int64 copy would not fit
        raise ValueError("{}: an array of {} elements does not fit in memory".format(name, arr.size))
    return arr


def _memory():
    try:
        from ._values import _memory as m
    except ImportError:
        return 1 << 62
    return m()


def _check_int(value, name, allow_none=False, limit=2 ** 63):
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)):
        raise TypeError("{} must be an int, got a bool".format(name))
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError("{} must be an int{}, got {}".format(
            name, " or None" if allow_none else "", type(value).__name__)) from None
    if value >= limit or value < -2 ** 63:
        raise ValueError("{}: value cannot be converted to type {} without overflow (got {})".format(
            name, "int64" if limit == 2 ** 63 else "uint64", value))
    return value


class DataLoader:
    """Iterate over ``(ids, x, y)`` batches of ``x`` and ``y``, one epoch per
    iteration.

    Parameters
    ----------
    x, y : numpy.ndarray or object with ``.numpy()``
        Features and labels, one row per instance (same first dimension).
    batch_size : int
        Rows per batch (> 0). The last batch holds the remaining rows
        unless ``drop_last``.
    shuffle : bool
        Visit the rows in a new order every epoch (see the module docstring
        for how the orders derive from ``seed``).
    seed : int or None
        Seed of the shuffling (non-negative). Ignored without ``shuffle``.
    ids : array of int, optional
        Instance id of every row (1-D, one per row); default ``0..n-1``.
        Ids travel with their rows when shuffled.
    drop_last : bool
        Drop the last batch when it is smaller than ``batch_size``.
    return_ids : bool
        Batches are ``(ids, x, y)`` (default) or, with False, ``(x, y)`` as a PyTorch
        ``DataLoader`` of a ``TensorDataset`` gives them (so a loop written for one runs
        unchanged). bcml's helpers take either kind.

    ``len(loader)`` is the number of batches per epoch. ``loader.epoch`` is
    the epoch the next iteration will run; :meth:`set_epoch` changes it.

    Example
    -------
    >>> loader = DataLoader(X_train, y_train, batch_size=64, shuffle=True, seed=0)
    >>> for ids, x, y in loader:
    ...     pass
    """

    def __init__(self, x, y, batch_size=64, shuffle=False, seed=None, ids=None,
                 drop_last=False, return_ids=True):
        x = _as_array(x, "x")
        y = _as_array(y, "y")
        if x.shape[0] != y.shape[0]:
            raise ValueError("x and y must have the same number of rows, got x with {} and "
                             "y with {}".format(x.shape[0], y.shape[0]))
        n = x.shape[0]
        batch_size = _check_int(batch_size, "batch_size")
        if batch_size <= 0:
            raise ValueError("batch_size must be a positive int, got {}".format(batch_size))
        seed = _check_int(seed, "seed", allow_none=True, limit=2 ** 64)
        if seed is not None and seed < 0:
            raise ValueError("seed must be >= 0, got {}".format(seed))
        if ids is None:
            ids = np.arange(n, dtype=np.int64)
        else:
            ids = _as_array(ids, "ids")
            if not (np.issubdtype(ids.dtype, np.integer) and not ids.dtype == np.bool_):
                raise TypeError("ids must be an integer array, got dtype {}".format(ids.dtype))
            if ids.ndim != 1 or ids.shape[0] != n:
                raise ValueError("ids must be 1-D with one id per row ({}), got shape {}".format(
                    n, ids.shape))
            ids = ids.astype(np.int64)
        if not isinstance(shuffle, (bool, np.bool_)):
            raise TypeError("shuffle must be a bool, got {}".format(type(shuffle).__name__))
        if not isinstance(drop_last, (bool, np.bool_)):
            raise TypeError("drop_last must be a bool, got {}".format(type(drop_last).__name__))
        if not isinstance(return_ids, (bool, np.bool_)):
            raise TypeError("return_ids must be a bool, got {}".format(type(return_ids).__name__))

        if np.issubdtype(x.dtype, np.floating):
            x = x.astype(np.float32, copy=False)
        if np.issubdtype(y.dtype, np.floating):
            y = y.astype(np.float32, copy=False)
        elif np.issubdtype(y.dtype, np.integer):
            y = y.astype(np.int64, copy=False)

        self.x, self.y, self.ids = x, y, ids
        self.batch_size = batch_size
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.return_ids = bool(return_ids)
        self.seed = seed if seed is not None else _default_seed()
        self._seed_drawn = seed is None  # a sweep over a shuffled loader resumes only with seed=
        self.epoch = 0

    def __len__(self):
        n = self.x.shape[0]
        if self.drop_last:
            return n // self.batch_size
        return -(-n // self.batch_size)

    def set_epoch(self, epoch):
        """Make the next iteration run epoch ``epoch`` (its shuffle order)."""
        epoch = _check_int(epoch, "epoch")
        if epoch < 0:
            raise ValueError("epoch must be >= 0, got {}".format(epoch))
        self.epoch = epoch

    def order(self, epoch):
        """Row order of epoch ``epoch``: a permutation (int64 array) when
        shuffling, else None (rows in order)."""
        epoch = _check_int(epoch, "epoch")
        if epoch < 0:
            raise ValueError("epoch must be >= 0, got {}".format(epoch))
        if not self.shuffle:
            return None
        seq = np.random.SeedSequence(self.seed, spawn_key=(int(epoch),))
        return np.random.Generator(np.random.PCG64(seq)).permutation(self.x.shape[0])

    def __iter__(self):
        perm = self.order(self.epoch)
        self.epoch += 1
        return self._epoch(perm)

    def _epoch(self, perm):
        n, bs = self.x.shape[0], self.batch_size
        for k in range(len(self)):
            lo, hi = k * bs, min((k + 1) * bs, n)
            if perm is None:
                rows = slice(lo, hi)
            else:
                rows = perm[lo:hi]
            xb, yb = _to_tensor(self.x[rows]), _to_tensor(self.y[rows])
            if self.return_ids:
                yield np.ascontiguousarray(self.ids[rows]), xb, yb
            else:
                yield xb, yb

    def __repr__(self):
        return ("DataLoader(n={}, batch_size={}, shuffle={}, drop_last={}, batches={})"
                .format(self.x.shape[0], self.batch_size, self.shuffle, self.drop_last,
                        len(self)))


def batches(x, y, batch_size, shuffle=False, seed=None, ids=None, drop_last=False, return_ids=True):
    """One epoch of ``(ids, x, y)`` batches as a list, the shape of data set
    backwardcompatibilityml's training helpers take.

    Same arguments and batches as the first epoch of
    ``DataLoader(x, y, batch_size, shuffle, seed, ids, drop_last, return_ids)``.
    """
    return list(DataLoader(x, y, batch_size=batch_size, shuffle=shuffle, seed=seed, ids=ids,
                           drop_last=drop_last, return_ids=return_ids))
