"""PyTorch-style data loading (``bcml.utils.data``, as ``torch.utils.data``).

``Dataset`` (map-style: ``__getitem__`` and ``__len__``), ``TensorDataset(*tensors)``,
``Subset(dataset, indices)``, ``random_split(dataset, lengths, generator=None)``,
``DataLoader(dataset, batch_size=1, shuffle=False, ...)`` and ``default_collate``, with PyTorch's
semantics: iterating a loader yields collated batches (tensors stacked along a new first
dimension; Python ints become an int64 tensor; NumPy arrays become tensors; tuples, lists and
dicts are collated element by element, a tuple of fields giving a list as in PyTorch);
``len(loader)`` is its number of batches. Every iteration of a shuffled loader draws a new order
from ``generator`` (default: bcml's default generator, so ``bcml.manual_seed`` reproduces it).

Differences from PyTorch, all documented in the README:

- bcml computes in float32 and int64: Python floats collate to float32 (PyTorch: float64), and
  NumPy arrays of other integer types to int64.
- ``num_workers > 0`` is accepted and loads in this process (bcml's fast path below makes worker
  processes unnecessary); ``worker_init_fn``, ``pin_memory``, ``prefetch_factor``,
  ``persistent_workers`` and ``timeout`` are checked as PyTorch checks them and have no effect.
- Fast path: when the data set is a ``TensorDataset``, a ``bcml.vision`` data set whose
  transform is ``None`` or ToTensor / Normalize only (``target_transform`` None), or a ``Subset``
  of one, and ``collate_fn`` is the default, batches are cut from whole arrays in one vectorised
  step per few thousand rows instead of item by item; the batches are equal to the per-item
  ones. bcml's training helpers (``bcml.helpers.training``, ``bcml.metrics``, the sweep) take such
  a loader as a data set and train on it with record and replay (one epoch per C call); any
  other loader is read once into a list of ``(x, y)`` batches.
"""
import collections.abc
import math
import numbers
import warnings

import numpy as np

from .. import _core
from .._random import Generator, gen
from .._tensor import from_numpy, stack, tensor
from .._values import flag, index, setting

__all__ = ["Dataset", "TensorDataset", "Subset", "random_split", "DataLoader", "default_collate"]

_CHUNK_ROWS = 8192   # rows the fast path transforms in one step
_NATIVE = (np.dtype(np.float32), np.dtype(np.int64), np.dtype(np.bool_))   # bcml's dtypes: no conversion


def _as_tensor(value, what):
    from .._engine import _as_tensor as conv
    if isinstance(value, np.ndarray) and value.dtype.kind == "u" and value.dtype.itemsize == 8 and value.size \
            and value.max() > np.iinfo(np.int64).max:
        raise ValueError("%s: value cannot be converted to type int64 without overflow (got %d)"
                         % (what, int(value.max())))
    return conv(value, what)


def _fast_arrays(dataset, indices):
    """The data set's columns at ``indices`` as arrays, cut in one step, or None when the data set
    has no fast path (bcml.vision data sets, TensorDataset, Subset of them)."""
    f = getattr(dataset, "_bcml_arrays", None)
    return None if f is None else f(indices)


class Dataset:
    """A map-style data set: ``dataset[i]`` is sample ``i`` and ``len(dataset)`` their number.
    Subclasses implement ``__getitem__`` (and ``__len__``, for a DataLoader)."""

    def __getitem__(self, index):
        raise NotImplementedError("Subclasses of Dataset should implement __getitem__.")


class TensorDataset(Dataset):
    """Sample ``i`` is ``tuple(t[i] for t in tensors)``. Tensors or NumPy arrays (converted as
    bcml converts arrays: floats to float32, integers to int64), all with the same first
    dimension."""

    def __init__(self, *tensors):
        ts = tuple(_as_tensor(t, "TensorDataset(): argument 'tensors' (element %d)" % k)
                   for k, t in enumerate(tensors))
        for k, t in enumerate(ts):
            if t.ndim == 0:
                raise ValueError("TensorDataset(): argument 'tensors' (element %d) must have at least one "
                                 "dimension (one row per sample), got a 0-d tensor" % k)
        if ts and any(t.shape[0] != ts[0].shape[0] for t in ts):
            raise ValueError("TensorDataset(): argument 'tensors': Size mismatch between tensors (first "
                             "dimensions %s)" % [int(t.shape[0]) for t in ts])
        self.tensors = ts

    def __getitem__(self, index):
        try:
            return tuple(t[index] for t in self.tensors)
        except (TypeError, ValueError, IndexError) as e:
            raise type(e)("TensorDataset index %s" % e) from None

    def __len__(self):
        return int(self.tensors[0].shape[0]) if self.tensors else 0

    def _bcml_arrays(self, indices):
        if not self.tensors or any(t.requires_grad for t in self.tensors):
            return None
        return tuple(t.detach().numpy()[indices] for t in self.tensors)


def _len(dataset, fname):
    try:
        return len(dataset)
    except TypeError as e:
        raise TypeError("%s(): argument 'dataset' has no length: %s" % (fname, e)) from None


def _index_array(indices, fname, argname, length=None):
    """indices (a sequence of ints, a range, an integer array or tensor) as an int64 array."""
    if isinstance(indices, _core.TensorBase):
        indices = indices.detach().numpy()
    if isinstance(indices, (str, bytes)) or not isinstance(indices, (collections.abc.Sequence, np.ndarray)):
        raise TypeError("%s(): argument '%s' must be a sequence of ints, not %s"
                        % (fname, argname, type(indices).__name__))
    if isinstance(indices, np.ndarray):
        a = indices
    else:
        if not all(isinstance(i, numbers.Integral) and not isinstance(i, (bool, np.bool_)) for i in indices):
            raise TypeError("%s(): argument '%s' must be a sequence of ints" % (fname, argname))
        a = np.array([int(i) for i in indices], dtype=object) if indices else np.zeros(0, np.int64)
    if a.ndim != 1:
        raise ValueError("%s(): argument '%s' must be one-dimensional, got shape %s" % (fname, argname, a.shape))
    if a.dtype != object and a.dtype.kind not in "iu" and a.size:
        raise TypeError("%s(): argument '%s' must hold ints, got dtype %s" % (fname, argname, a.dtype))
    if length is not None and a.size and (min(a) < -length or max(a) >= length):
        raise ValueError("%s(): argument '%s' holds an index outside the %d samples of argument 'dataset'"
                         % (fname, argname, length))
    return a.astype(np.int64)


class Subset(Dataset):
    """The samples ``indices`` of ``dataset``, in that order."""

    def __init__(self, dataset, indices):
        if not callable(getattr(dataset, "__getitem__", None)):
            raise TypeError("Subset(): argument 'dataset' must be a data set (with __getitem__), not %s"
                            % type(dataset).__name__)
        n = _len(dataset, "Subset") if callable(getattr(dataset, "__len__", None)) else None
        self._idx = _index_array(indices, "Subset", "indices", n)
        self.dataset, self.indices = dataset, indices

    def __getitem__(self, index):
        if isinstance(index, list):
            if not all(isinstance(i, numbers.Integral) and not isinstance(i, bool) for i in index):
                raise TypeError("Subset index must be an int or a list of ints")
            if any(not -len(self._idx) <= i < len(self._idx) for i in index):
                raise IndexError("Subset index out of range for %d samples" % len(self._idx))
            return self.dataset[[int(i) for i in self._idx[index]]]
        if isinstance(index, bool) or not isinstance(index, numbers.Integral):
            raise TypeError("Subset index must be an int or a list of ints, not %s" % type(index).__name__)
        if not -len(self._idx) <= index < len(self._idx):
            raise IndexError("Subset index %d is out of range for %d samples" % (index, len(self._idx)))
        return self.dataset[int(self._idx[index])]

    def __len__(self):
        return len(self._idx)

    def _bcml_arrays(self, indices):
        return _fast_arrays(self.dataset, self._idx[indices])


def random_split(dataset, lengths, generator=None):
    """Splits ``dataset`` into non-overlapping Subsets of the given lengths (ints summing to
    ``len(dataset)``, or fractions summing to 1: each split gets ``floor(n * fraction)`` samples
    and the remainder goes one by one to the splits in order), drawing the permutation from
    ``generator`` (default: bcml's default generator)."""
    g = gen(generator)
    if not callable(getattr(dataset, "__len__", None)) or not callable(getattr(dataset, "__getitem__", None)):
        raise TypeError("random_split(): argument 'dataset' must be a data set with __getitem__ and __len__, not %s"
                        % type(dataset).__name__)
    n = _len(dataset, "random_split")
    if isinstance(lengths, (str, bytes)) or not isinstance(lengths, collections.abc.Sequence) or not lengths:
        raise TypeError("random_split(): argument 'lengths' must be a non-empty sequence of ints or fractions, "
                        "not %s" % type(lengths).__name__)
    if not all(isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_)) for v in lengths):
        raise TypeError("random_split(): argument 'lengths' must hold ints or fractions")
    try:
        total = math.fsum(float(v) for v in lengths)
    except OverflowError:
        raise ValueError("random_split(): argument 'lengths' holds a number too large for a float") from None
    if math.isclose(total, 1.0) and total <= 1:   # fractions (PyTorch's rule, also for [1] or [1, 0])
        sizes = []
        for i, frac in enumerate(lengths):
            if not 0 <= frac <= 1:
                raise ValueError("random_split(): argument 'lengths': fraction at index %d is not between 0 and 1"
                                 % i)
            sizes.append(int(math.floor(n * float(frac))))
        for i in range(n - sum(sizes)):
            sizes[i % len(sizes)] += 1
        for i, s in enumerate(sizes):
            if s == 0:
                warnings.warn("Length of split at index %d is 0. This might result in an empty dataset." % i)
    else:
        if not all(isinstance(v, numbers.Integral) for v in lengths):
            raise ValueError("random_split(): argument 'lengths' must be ints summing to len(dataset) (%d) or "
                             "fractions summing to 1, got %r" % (n, list(lengths)))
        sizes = [int(v) for v in lengths]
    if any(s < 0 for s in sizes) or sum(sizes) != n:
        raise ValueError("random_split(): argument 'lengths': Sum of input lengths does not equal the length of "
                         "the input dataset! (%r for %d samples)" % (list(lengths), n))
    perm = _core.randperm(n, g).numpy()
    out, start = [], 0
    for s in sizes:
        out.append(Subset(dataset, perm[start:start + s].tolist()))
        start += s
    return out


# ---- collation ------------------------------------------------------------------------------------
_COLLATE_ERROR = ("default_collate: batch must contain tensors, numpy arrays, numbers, dicts or lists; "
                  "found %s")


def default_collate(batch):
    """Collates a list of samples into a batch, as PyTorch's default_collate: tensors are stacked
    along a new first dimension, NumPy arrays and scalars become tensors (then stacked), ints an
    int64 tensor, floats a float32 tensor (PyTorch: float64), bools a bool tensor; str and bytes
    stay a list; dicts, named tuples, tuples and lists are collated field by field (a tuple or a
    list gives a list)."""
    if not isinstance(batch, collections.abc.Sequence) or isinstance(batch, (str, bytes)) or not batch:
        raise TypeError("default_collate(): argument 'batch' must be a non-empty list of samples, not %s"
                        % type(batch).__name__)
    elem = batch[0]
    if isinstance(elem, _core.TensorBase):
        return stack(list(batch), 0)
    if isinstance(elem, (np.ndarray, np.generic)) and not isinstance(elem, (np.str_, np.bytes_)):
        if elem.dtype.kind not in "biuf":
            raise TypeError(_COLLATE_ERROR % elem.dtype)
        try:
            a = np.stack([np.asarray(b) for b in batch])
        except ValueError as e:
            raise ValueError("default_collate(): argument 'batch': %s" % e) from None
        return _as_tensor(a, "default_collate(): argument 'batch'")
    if isinstance(elem, bool):
        return tensor(list(batch))
    if isinstance(elem, numbers.Integral):
        return tensor([int(v) for v in batch])
    if isinstance(elem, float):
        return tensor([float(v) for v in batch])
    if isinstance(elem, (str, bytes)):
        return batch
    if isinstance(elem, collections.abc.Mapping):
        return {k: default_collate([d[k] for d in batch]) for k in elem}
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):
        return type(elem)(*(default_collate(s) for s in zip(*batch)))
    if isinstance(elem, collections.abc.Sequence):
        if any(len(e) != len(elem) for e in batch):
            raise ValueError("default_collate(): argument 'batch': each element in list of batch should be of "
                             "equal size")
        return [default_collate(s) for s in zip(*batch)]
    raise TypeError(_COLLATE_ERROR % type(elem))


def _convert(sample):
    """A sample as the loader yields it without batching (batch_size=None): arrays as tensors."""
    if isinstance(sample, np.ndarray) and sample.dtype.kind in "biuf":
        return _as_tensor(sample, "sample")
    if isinstance(sample, collections.abc.Mapping):
        return {k: _convert(v) for k, v in sample.items()}
    if isinstance(sample, tuple) and hasattr(sample, "_fields"):
        return type(sample)(*(_convert(v) for v in sample))
    if isinstance(sample, (list, tuple)):
        return [_convert(v) for v in sample]
    return sample


# ---- the loader -----------------------------------------------------------------------------------
def _permutation(seed, n):
    return np.random.Generator(np.random.PCG64(seed)).permutation(n).astype(np.int64)


def _epoch_seed(seed, epoch):
    """The shuffle seed of a later epoch of the training helpers (derived, so every sweep job sees
    the same orders)."""
    if epoch == 0:
        return seed
    return int(np.random.SeedSequence(seed, spawn_key=(int(epoch),)).generate_state(1, np.uint64)[0])


def _optional_callable(v, argname):
    if v is not None and not callable(v):
        raise TypeError("DataLoader(): argument '%s' must be callable or None, not %s" % (argname, type(v).__name__))
    return v


class DataLoader:
    """Iterates over ``dataset`` in batches, as ``torch.utils.data.DataLoader``.

    ``batch_size`` samples per batch (None: no batching, the samples one by one), in order or,
    with ``shuffle=True``, in a new random order every iteration drawn from ``generator`` (default:
    bcml's default generator); ``sampler`` (an iterable of indices) or ``batch_sampler`` (an
    iterable of lists of indices) choose the samples instead. ``collate_fn`` (default
    :func:`default_collate`) makes a batch of a list of samples; ``drop_last`` drops a last,
    smaller batch. ``num_workers``, ``pin_memory``, ``timeout``, ``worker_init_fn``,
    ``multiprocessing_context``, ``prefetch_factor``, ``persistent_workers``,
    ``pin_memory_device`` and ``in_order`` are checked as PyTorch checks them and change nothing:
    loading runs in this process. See the module docstring for the fast path.
    """

    def __init__(self, dataset, batch_size=1, shuffle=None, sampler=None, batch_sampler=None, num_workers=0,
                 collate_fn=None, pin_memory=False, drop_last=False, timeout=0, worker_init_fn=None,
                 multiprocessing_context=None, generator=None, *, prefetch_factor=None, persistent_workers=False,
                 pin_memory_device="", in_order=True):
        f = "DataLoader"
        if not callable(getattr(dataset, "__getitem__", None)):
            raise TypeError("DataLoader(): argument 'dataset' must be a map-style data set (with __getitem__ and "
                            "__len__), not %s" % type(dataset).__name__)
        if batch_size is not None:
            batch_size = index(batch_size, f, "batch_size")
            if batch_size <= 0:
                raise ValueError("DataLoader(): argument 'batch_size' should be a positive integer value, but got "
                                 "batch_size=%d" % batch_size)
        shuffle = False if shuffle is None else flag(shuffle, f, "shuffle")
        drop_last = flag(drop_last, f, "drop_last")
        for name, v in (("sampler", sampler), ("batch_sampler", batch_sampler)):
            if v is not None and not callable(getattr(v, "__iter__", None)):
                raise TypeError("DataLoader(): argument '%s' must be an iterable of indices or None, not %s"
                                % (name, type(v).__name__))
        if sampler is not None and shuffle:
            raise ValueError("DataLoader(): argument 'sampler': sampler option is mutually exclusive with shuffle")
        if batch_sampler is not None and (batch_size != 1 or shuffle or sampler is not None or drop_last):
            raise ValueError("DataLoader(): argument 'batch_sampler': batch_sampler option is mutually exclusive "
                             "with batch_size, shuffle, sampler, and drop_last")
        if batch_sampler is not None:
            batch_size = None
        elif batch_size is None and drop_last:
            raise ValueError("DataLoader(): argument 'drop_last': batch_size=None option disables auto-batching "
                             "and is mutually exclusive with drop_last")
        if sampler is None and batch_sampler is None and not callable(getattr(dataset, "__len__", None)):
            raise TypeError("DataLoader(): argument 'dataset' must have __len__ (a map-style data set), not %s"
                            % type(dataset).__name__)
        num_workers = index(num_workers, f, "num_workers")
        if num_workers < 0:
            raise ValueError("DataLoader(): argument 'num_workers': num_workers option should be non-negative; use "
                             "num_workers=0 to disable multiprocessing.")
        timeout = setting(timeout, f, "timeout", low=0)
        pin_memory = flag(pin_memory, f, "pin_memory")
        persistent_workers = flag(persistent_workers, f, "persistent_workers")
        in_order = flag(in_order, f, "in_order")
        if not isinstance(pin_memory_device, str):
            raise TypeError("DataLoader(): argument 'pin_memory_device' must be a str, not %s"
                            % type(pin_memory_device).__name__)
        if prefetch_factor is not None:
            prefetch_factor = index(prefetch_factor, f, "prefetch_factor")
            if num_workers == 0:
                raise ValueError("DataLoader(): argument 'prefetch_factor': prefetch_factor option could only be "
                                 "specified in multiprocessing. let num_workers > 0 to enable multiprocessing, "
                                 "otherwise set prefetch_factor to None.")
            if prefetch_factor < 0:
                raise ValueError("DataLoader(): argument 'prefetch_factor' must be non-negative, got %d"
                                 % prefetch_factor)
        if persistent_workers and num_workers == 0:
            raise ValueError("DataLoader(): argument 'persistent_workers': persistent_workers option needs "
                             "num_workers > 0")
        if multiprocessing_context is not None:
            if num_workers == 0:
                raise ValueError("DataLoader(): argument 'multiprocessing_context' can only be used with "
                                 "multi-process loading (num_workers > 0), but got num_workers=0")
            if isinstance(multiprocessing_context, str):
                if multiprocessing_context not in ("fork", "spawn", "forkserver"):
                    raise ValueError("DataLoader(): argument 'multiprocessing_context' should specify a valid "
                                     "start method in ['fork', 'spawn', 'forkserver'], but got %r"
                                     % multiprocessing_context)
            elif not callable(getattr(multiprocessing_context, "Process", None)):
                raise TypeError("DataLoader(): argument 'multiprocessing_context' must be a start method name or a "
                                "multiprocessing context, not %s" % type(multiprocessing_context).__name__)
        if generator is not None and not isinstance(generator, Generator):
            raise TypeError("DataLoader(): argument 'generator' must be a bcml.Generator or None, not %s"
                            % type(generator).__name__)
        self.dataset = dataset
        self.batch_size = batch_size
        self.sampler, self.batch_sampler = sampler, batch_sampler
        self.num_workers = num_workers
        self.collate_fn = _optional_callable(collate_fn, "collate_fn")
        self.worker_init_fn = _optional_callable(worker_init_fn, "worker_init_fn")
        self.pin_memory, self.drop_last, self.timeout = pin_memory, drop_last, timeout
        self.multiprocessing_context = multiprocessing_context
        self.generator = generator
        self.prefetch_factor, self.persistent_workers = prefetch_factor, persistent_workers
        self.pin_memory_device, self.in_order = pin_memory_device, in_order
        self.shuffle = shuffle

    # ---- sizes and orders -------------------------------------------------------------------------
    def __len__(self):
        if self.batch_sampler is not None:
            return len(self.batch_sampler)
        n = len(self.sampler) if self.sampler is not None else len(self.dataset)
        if self.batch_size is None:
            return n
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _draw_seed(self):
        return int(gen(self.generator)._next_u64() >> 1)

    def _index_batches(self, order):
        """The index lists of one epoch."""
        if self.batch_sampler is not None:
            for b in self.batch_sampler:
                yield [int(i) for i in b]
            return
        if self.sampler is not None:
            idx = [int(i) for i in self.sampler]
        else:
            n = len(self.dataset)
            idx = order if order is not None else np.arange(n, dtype=np.int64)
        if self.batch_size is None:
            for i in idx:
                yield int(i)
            return
        bs, n = self.batch_size, len(idx)
        stop = n - n % bs if self.drop_last else n
        for lo in range(0, stop, bs):
            yield idx[lo:lo + bs]

    def __iter__(self):
        order = None
        if self.shuffle:
            order = _permutation(self._draw_seed(), len(self.dataset))
        return self._batches(self._index_batches(order))

    def _batches(self, index_batches):
        if self.batch_size is None and self.batch_sampler is None:
            for i in index_batches:
                yield self.collate_fn(self.dataset[i]) if self.collate_fn is not None else _convert(self.dataset[i])
            return
        fast = self.collate_fn is None and _fast_arrays(self.dataset, np.zeros(0, np.int64)) is not None
        if not fast:
            collate = self.collate_fn or default_collate
            for b in index_batches:
                yield collate([self.dataset[int(i)] for i in b])
            return
        # fast path: a few thousand rows transformed in one step, then cut into batches
        pending, rows = [], 0
        for b in index_batches:
            pending.append(np.asarray(b, dtype=np.int64))
            rows += len(b)
            if rows >= _CHUNK_ROWS:
                yield from self._cut(pending)
                pending, rows = [], 0
        if pending:
            yield from self._cut(pending)

    def _cut(self, index_batches):
        idx = np.concatenate(index_batches)
        arrays = [np.ascontiguousarray(a) for a in _fast_arrays(self.dataset, idx)]
        start = 0
        for b in index_batches:
            stop = start + len(b)
            yield [from_numpy(a[start:stop]) if a.dtype in _NATIVE else _as_tensor(a[start:stop], "batch")
                   for a in arrays]
            start = stop

    # ---- bcml's training helpers ------------------------------------------------------------------
    def _bcml_engine_view(self):
        """What bcml/_engine.py reads of a loader (the bcml.data.DataLoader interface) when this
        loader is on the fast path with plain batching and (x, y) samples, else None."""
        if (self.collate_fn is not None or self.sampler is not None or self.batch_sampler is not None
                or self.batch_size is None):
            return None
        n = len(self.dataset)
        arrays = _fast_arrays(self.dataset, np.arange(n, dtype=np.int64))
        if arrays is None or len(arrays) != 2:
            return None
        return _EngineView(self, arrays)

    def __repr__(self):
        return "DataLoader(dataset=%s, batch_size=%r, shuffle=%r, drop_last=%r, batches=%d)" % (
            type(self.dataset).__name__, self.batch_size, self.shuffle, self.drop_last, len(self))


class _EngineView:
    """A fast-path DataLoader as bcml's training loops read a loader: the whole columns ``x`` and
    ``y``, ids by position, ``batch_size``, ``drop_last``, and ``order(epoch)``, the shuffle order of
    each epoch of one training call. Epoch 0's order is the one iterating the loader would have
    drawn at this point; later epochs' orders derive from that seed, so that every job of a sweep
    trains on the same orders."""

    def __init__(self, loader, arrays):
        self._loader = loader
        self.x, self.y = arrays
        self.ids = np.arange(self.x.shape[0], dtype=np.int64)
        self.batch_size, self.shuffle, self.drop_last = loader.batch_size, loader.shuffle, loader.drop_last
        self.seed = loader._draw_seed() if loader.shuffle else 0
        self._seed_drawn = loader.generator is None
        self.epoch = 0

    def __len__(self):
        return len(self._loader)

    def order(self, epoch):
        if not self.shuffle:
            return None
        return _permutation(_epoch_seed(self.seed, epoch), self.x.shape[0])
