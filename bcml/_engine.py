"""The training and evaluation loops under bcml.helpers (internal).

A data set (SPEC section 5) is a list or tuple of batches ``(x, y)`` or ``(ids, x, y)``, or a
``bcml.data.DataLoader``. :func:`as_dataset` checks it once and gives a :class:`Dataset` whose
rows are numbered 0..n-1 (the concatenation order of a batch list, the row order of a loader).

:func:`train_epoch` runs ``zero_grad, loss = step(x, y, h1_out), loss.backward(),
optimizer.step()`` on every batch; :func:`predict` runs a model over a data set under no_grad and
returns its outputs in row order (the h1 cache of the compatibility losses is such a
prediction). Both record the first step and replay it in C for the remaining batches when the
model can be recorded (see bcml/_replay.py); otherwise they run the same loop eagerly.
"""
import numbers

import numpy as np

from . import _core
from ._autograd import no_grad
from ._tensor import Tensor, from_numpy

__all__ = ["Dataset", "as_dataset", "train_epoch", "predict", "Outputs"]


def _as_tensor(v, what):
    if isinstance(v, _core.TensorBase):
        return v
    if isinstance(v, np.ndarray):
        if v.dtype.kind == "f":
            v = v.astype(np.float32, copy=False)
        elif v.dtype.kind in "iu":
            v = v.astype(np.int64, copy=False)
        elif v.dtype.kind != "b":
            raise TypeError("%s has unsupported dtype %s" % (what, v.dtype))
        return from_numpy(np.ascontiguousarray(v))
    if hasattr(v, "numpy") and hasattr(v, "shape"):  # e.g. a torch tensor
        return _as_tensor(np.asarray(v.detach().cpu().numpy() if hasattr(v, "detach") else v.numpy()), what)
    raise TypeError("%s must be a bcml tensor or a NumPy array, got %s" % (what, type(v).__name__))


def _as_ids(v, n, what):
    if isinstance(v, _core.TensorBase):
        v = v.numpy()
    a = np.asarray(v)
    if a.dtype.kind not in "iu" or a.ndim != 1 or a.shape[0] != n:
        raise ValueError("%s must be a 1-D integer array of %d instance ids, got %s of shape %s"
                         % (what, n, a.dtype, a.shape))
    return a.astype(np.int64)


class Dataset:
    """A checked data set: ``n`` rows, ``len()`` batches per epoch, ``ids`` (int64, per row)."""

    def __init__(self, name, batches=None, loader=None):
        self.name = name
        self.loader = loader
        self._batches = batches          # list of (ids ndarray, x Tensor, y Tensor)
        self._full = None                # (x, y) concatenated, made on demand
        if loader is not None:
            self.n = loader.x.shape[0]
            self.ids = loader.ids
        else:
            self.n = sum(int(b[1].shape[0]) for b in batches)
            self.ids = (np.concatenate([b[0] for b in batches]) if batches
                        else np.zeros(0, np.int64))
            sizes = [int(b[1].shape[0]) for b in batches]
            self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)

    def __len__(self):
        return len(self.loader) if self.loader is not None else len(self._batches)

    def full(self):
        """(x, y) of every row as two tensors, in row order (a loader's arrays are not copied)."""
        if self._full is None:
            if self.loader is not None:
                self._full = (_as_tensor(self.loader.x, "x"), _as_tensor(self.loader.y, "y"))
            else:
                xs = [b[1].numpy() for b in self._batches]
                ys = [b[2].numpy() for b in self._batches]
                self._full = (from_numpy(np.ascontiguousarray(np.concatenate(xs))),
                              from_numpy(np.ascontiguousarray(np.concatenate(ys))))
        return self._full

    def epoch(self, shuffle=True):
        """Batches of one epoch as ``(rows, ids, x, y)``; rows: int64 array of row numbers.
        A loader advances its epoch counter (as iterating it does) unless shuffle is False,
        which visits its rows in order (evaluation)."""
        if self.loader is not None:
            ld = self.loader
            if shuffle:
                perm = ld.order(ld.epoch)
                ld.epoch += 1
            else:
                perm = None
            bs = ld.batch_size
            nb = len(ld)
            if not shuffle and ld.drop_last:
                nb = -(-self.n // bs)
            for k in range(nb):
                lo, hi = k * bs, min((k + 1) * bs, self.n)
                rows = np.arange(lo, hi, dtype=np.int64) if perm is None else perm[lo:hi].astype(np.int64)
                xb = ld.x[lo:hi] if perm is None else ld.x[rows]
                yb = ld.y[lo:hi] if perm is None else ld.y[rows]
                yield rows, ld.ids[rows], _as_tensor(xb, "x"), _as_tensor(yb, "y")
        else:
            for k, (ids, x, y) in enumerate(self._batches):
                rows = np.arange(self.offsets[k], self.offsets[k + 1], dtype=np.int64)
                yield rows, ids, x, y


def as_dataset(dataset, name="dataset"):
    """Checks a data set argument; TypeError/ValueError naming ``name`` otherwise."""
    if isinstance(dataset, Dataset):
        return dataset
    from .data import DataLoader
    if isinstance(dataset, DataLoader):
        return Dataset(name, loader=dataset)
    if not isinstance(dataset, (list, tuple)):
        raise TypeError("%s must be a list of (x, y) or (ids, x, y) batches or a bcml.data.DataLoader, "
                        "got %s" % (name, type(dataset).__name__))
    batches, start = [], 0
    for k, b in enumerate(dataset):
        if not isinstance(b, (list, tuple)) or len(b) not in (2, 3):
            raise TypeError("%s[%d] must be a batch (x, y) or (ids, x, y), got %s"
                            % (name, k, type(b).__name__ if not isinstance(b, (list, tuple))
                               else "a %s of %d" % (type(b).__name__, len(b))))
        x = _as_tensor(b[-2], "%s[%d] x" % (name, k))
        y = _as_tensor(b[-1], "%s[%d] y" % (name, k))
        if x.ndim == 0 or y.ndim == 0 or x.shape[0] != y.shape[0]:
            raise ValueError("%s[%d]: x and y must have the same number of rows, got shapes %s and %s"
                             % (name, k, tuple(x.shape), tuple(y.shape)))
        n = int(x.shape[0])
        ids = (_as_ids(b[0], n, "%s[%d] ids" % (name, k)) if len(b) == 3
               else np.arange(start, start + n, dtype=np.int64))
        if batches and (tuple(x.shape[1:]) != tuple(batches[0][1].shape[1:])
                        or x.dtype != batches[0][1].dtype or y.dtype != batches[0][2].dtype):
            raise ValueError("%s[%d]: x of shape %s and dtype %s does not match the first batch's %s %s"
                             % (name, k, tuple(x.shape), x.dtype, tuple(batches[0][1].shape), batches[0][1].dtype))
        batches.append((ids, x, y))
        start += n
    return Dataset(name, batches=batches)


class Outputs:
    """A model's outputs over a data set in row order: ``triple`` (three float32 arrays (n, C))
    for a classifier, or ``probs`` (n,) for a binary model."""

    def __init__(self, parts, binary):
        self.parts = parts
        self.binary = binary

    @property
    def n(self):
        return self.parts[0].shape[0]

    def take(self, rows):
        """The outputs of the given rows as tensors (a triple, or one tensor for binary)."""
        if self.binary:
            return from_numpy(np.ascontiguousarray(self.parts[0][rows]))
        return tuple(from_numpy(np.ascontiguousarray(p[rows])) for p in self.parts)

    def labels(self, pivot=0.5):
        """Predicted labels: argmax of the logits, or p >= pivot for a binary model."""
        if self.binary:
            return (self.parts[0] >= pivot).astype(np.int64)
        return np.argmax(self.parts[0], axis=1).astype(np.int64)


def _split_output(out, who):
    if isinstance(out, (tuple, list)):
        if len(out) != 3:
            raise TypeError("%s must return the triple (logits, softmax, log_softmax) or one probability "
                            "per sample, got a %s of %d" % (who, type(out).__name__, len(out)))
        parts = []
        for t in out:
            if not isinstance(t, _core.TensorBase) or t.ndim != 2:
                raise TypeError("%s must return three (B, C) bcml tensors" % who)
            parts.append(t)
        return parts, False
    if isinstance(out, _core.TensorBase):
        if out.ndim == 2 and out.shape[1] == 1:
            out = out.reshape(-1)
        if out.ndim != 1:
            raise ValueError("%s's binary output must have shape (B,) or (B, 1), got %s" % (who, tuple(out.shape)))
        return [out], True
    raise TypeError("%s must return the triple (logits, softmax, log_softmax) or a tensor of probabilities, "
                    "got %s" % (who, type(out).__name__))


def predict(model, data, who="model"):
    """Runs model over every row of data (row order) under no_grad, in the mode the model is in.
    Returns (Outputs, y ndarray, ids ndarray)."""
    data = as_dataset(data)
    chunks, ys, ids, binary = None, [], [], None
    with no_grad():
        for rows, bids, x, y in data.epoch(shuffle=False):
            parts, b = _split_output(model(x), who)
            if chunks is None:
                chunks, binary = [[] for _ in parts], b
            elif b != binary or len(parts) != len(chunks):
                raise TypeError("%s returned different kinds of outputs on different batches" % who)
            for c, p in zip(chunks, parts):
                c.append(p.numpy().copy())
            ys.append(y.numpy())
            ids.append(bids)
    if chunks is None:
        raise ValueError("%s is empty" % data.name)
    parts = [np.concatenate(c) for c in chunks]
    return Outputs(parts, binary), np.concatenate(ys), np.concatenate(ids)


def train_epoch(step, data, optimizer, cache=None):
    """One epoch: for every batch ``optimizer.zero_grad(); loss = step(x, y, h1);
    loss.backward(); optimizer.step()``, where h1 is ``cache.take(rows)`` (or None without a
    cache). Returns the batches' loss values (floats)."""
    data = as_dataset(data)
    losses = []
    for rows, ids, x, y in data.epoch():
        optimizer.zero_grad()
        loss = step(x, y, cache.take(rows) if cache is not None else None)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.item()))
    return losses
