"""The training and evaluation loops under bcml.helpers (internal).

A data set (SPEC section 5) is a list or tuple of batches ``(x, y)`` or ``(ids, x, y)``, or a
``bcml.data.DataLoader``. :func:`as_dataset` checks it once and gives a :class:`Dataset` whose
rows are numbered 0..n-1 (the concatenation order of a batch list, the row order of a loader).

:func:`train_epoch` runs ``zero_grad, loss = step(x, y, h1_out), loss.backward(),
optimizer.step()`` on every batch; :func:`predict` runs a model over a data set under no_grad and
returns its outputs in row order (the h1 cache of the compatibility losses is such a
prediction). Both record the first step and replay it in C for the remaining batches when the
model can be recorded (csrc/python/replay_py.c, csrc/core/plan.c); otherwise they run the same
loop eagerly. A step with a Python side effect that a replay would skip (PyState, _Guard below)
is run eagerly too, and the first batch of every epoch is checked against eager.
"""
import ctypes
import functools
import random
import types
import warnings

import numpy as np

from . import _core
from ._autograd import no_grad
from ._tensor import Tensor, from_numpy
from ._values import call_named

__all__ = ["Dataset", "as_dataset", "train_epoch", "predict", "Outputs"]


def _as_tensor(v, what):
    if isinstance(v, _core.TensorBase):
        return v
    if isinstance(v, np.ndarray):
        if v.dtype.kind in "fiub":  # checked before a conversion allocates
            from ._values import check_size
            check_size(v.shape, 1 if v.dtype.kind == "b" else 8 if v.dtype.kind in "iu" else 4, "", what, "")
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


def _as_targets(v, what):
    """Targets as a tensor: one label per row, (B, 1) read as (B,); float targets (BCML's
    binary notebook builds float32 ones) must hold integral values and become int64, checked
    once in their own precision (a float32 copy could round 2.0000001 to 2). Integer tensors
    pass untouched; a binary model's targets are made float where a loss needs them."""
    if isinstance(v, _core.TensorBase):
        if v._dtype_name != "float32" and not (v.ndim == 2 and v.shape[1] == 1):
            return v
        v = v.detach().numpy()
    elif not isinstance(v, np.ndarray) and hasattr(v, "numpy") and hasattr(v, "shape"):  # e.g. a torch tensor
        v = np.asarray(v.detach().cpu().numpy() if hasattr(v, "detach") else v.numpy())
    if isinstance(v, np.ndarray):
        if v.ndim == 2 and v.shape[1] == 1:
            v = v.reshape(-1)
        if v.dtype.kind == "f":
            from ._labels import integral
            v = integral(v, what, "labels (class labels, or 0/1 for a binary model)")
    return _as_tensor(v, what)


def _as_ids(v, n, what):
    if isinstance(v, _core.TensorBase):
        v = v.detach().numpy()
    if not isinstance(v, (np.ndarray, list, tuple, range)):
        raise TypeError("%s must be a 1-D integer array of %d instance ids, got %s" % (what, n, type(v).__name__))
    try:
        a = np.asarray(v)
    except (ValueError, TypeError) as e:
        raise ValueError("%s must be a 1-D integer array of %d instance ids: %s" % (what, n, e)) from None
    if a.dtype.kind not in "iu" and not (a.size == 0 and a.dtype.kind == "f"):
        raise TypeError("%s must be a 1-D integer array of %d instance ids, got dtype %s" % (what, n, a.dtype))
    if a.ndim != 1 or a.shape[0] != n:
        raise ValueError("%s must be a 1-D integer array of %d instance ids, got shape %s" % (what, n, a.shape))
    if a.dtype.kind == "u" and a.size and a.max() > np.iinfo(np.int64).max:
        raise ValueError("%s: value cannot be converted to type int64 without overflow (got %d)" % (what, int(a.max())))
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
                self._full = (_as_tensor(self.loader.x, "x"), _as_targets(self.loader.y, "%s y" % self.name))
            else:
                xs = [b[1].numpy() for b in self._batches]
                ys = [b[2].numpy() for b in self._batches]
                self._full = (from_numpy(np.ascontiguousarray(np.concatenate(xs))),
                              from_numpy(np.ascontiguousarray(np.concatenate(ys))))
        return self._full

    def schedule(self, shuffle=True, epoch=None):
        """(order, bounds) of one epoch: batch b holds rows order[bounds[b]:bounds[b+1]]
        (order None: rows in order). A loader gives its next epoch's order and advances its
        epoch counter (as iterating it does), or the order of ``epoch`` when given (the counter
        is left alone); shuffle False visits every row in order (evaluation)."""
        if self.loader is not None:
            ld = self.loader
            perm = None
            if shuffle and epoch is not None:
                perm = ld.order(epoch)
            elif shuffle:
                perm = ld.order(ld.epoch)
                ld.epoch += 1
            bs = ld.batch_size
            nb = len(ld) if shuffle else -(-self.n // bs)
            bounds = np.minimum(np.arange(nb + 1, dtype=np.int64) * bs, self.n)
            return (None if perm is None else np.ascontiguousarray(perm, dtype=np.int64)), bounds
        return None, self.offsets

    def batch(self, full, order, bounds, b):
        """Batch b of a schedule as (rows, tensors): views of the full tensors when rows are in
        order, copies otherwise."""
        lo, hi = int(bounds[b]), int(bounds[b + 1])
        if order is None:
            rows = np.arange(lo, hi, dtype=np.int64)
            return rows, tuple(from_numpy(t.numpy()[lo:hi]) for t in full)
        rows = order[lo:hi]
        return rows, tuple(from_numpy(np.ascontiguousarray(t.numpy()[rows])) for t in full)

    def __iter__(self):
        """(ids, x, y) batches in row order: a Dataset can stand where BCML took a batch list."""
        for _rows, ids, x, y in self.epoch(shuffle=False):
            yield ids, x, y

    def epoch(self, shuffle=True):
        """Batches of one epoch as ``(rows, ids, x, y)``; rows: int64 array of row numbers."""
        order, bounds = self.schedule(shuffle)
        full = self.full()
        for b in range(len(bounds) - 1):
            rows, (x, y) = self.batch(full, order, bounds, b)
            yield rows, self.ids[rows], x, y


def as_dataset(dataset, name="dataset"):
    """Checks a data set argument; TypeError/ValueError naming ``name`` otherwise."""
    if isinstance(dataset, Dataset):
        return dataset
    from .data import DataLoader
    if isinstance(dataset, DataLoader):
        return Dataset(name, loader=dataset)
    from .utils.data import DataLoader as TorchStyleLoader
    if isinstance(dataset, TorchStyleLoader):   # its fast path as a loader (replayed); else its batches
        view = dataset._bcml_engine_view()
        return Dataset(name, loader=view) if view is not None else as_dataset(list(dataset), name)
    if not isinstance(dataset, (list, tuple)):
        raise TypeError("%s must be a list of (x, y) or (ids, x, y) batches, a bcml.data.DataLoader or a "
                        "bcml.utils.data.DataLoader, got %s" % (name, type(dataset).__name__))
    if not dataset:
        raise ValueError("%s must hold at least one batch, got an empty %s" % (name, type(dataset).__name__))
    batches, start = [], 0
    for k, b in enumerate(dataset):
        if not isinstance(b, (list, tuple)) or len(b) not in (2, 3):
            raise TypeError("%s[%d] must be a batch (x, y) or (ids, x, y), got %s"
                            % (name, k, type(b).__name__ if not isinstance(b, (list, tuple))
                               else "a %s of %d" % (type(b).__name__, len(b))))
        x = _as_tensor(b[-2], "%s[%d] x" % (name, k))
        y = _as_targets(b[-1], "%s[%d] y" % (name, k))
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

    def all(self):
        """Every row's outputs as tensors sharing the arrays' memory (no copy; for reading)."""
        if self.binary:
            return from_numpy(np.ascontiguousarray(self.parts[0]))
        return tuple(from_numpy(np.ascontiguousarray(p)) for p in self.parts)

    def labels(self, pivot=0.5):
        """Predicted labels: argmax of the logits, or p >= pivot for a binary model."""
        if self.binary:
            return (self.parts[0] >= pivot).astype(np.int64)
        return np.argmax(self.parts[0], axis=1).astype(np.int64)


def call_model(model, x, who, where):
    """model(x); a TypeError/ValueError/IndexError it raises (exactly those types, so that a
    subclass with its own constructor passes through) is raised again naming the model, the data
    (`where`) and x's shape and dtype."""
    return call_named(lambda e: "%s(x) failed on %s (x of shape %s, dtype %s): %s"
                      % (who, where, tuple(x.shape), x._dtype_name, e), model, x)


def split_output(out, who):
    """(parts, binary) of one model output: the triple's three (B, C) tensors, or the one
    probability per sample flattened to (B,)."""
    if isinstance(out, (tuple, list)):
        if len(out) != 3 or not all(isinstance(t, _core.TensorBase) and t.ndim == 2 for t in out):
            raise TypeError("%s must return the triple (logits, softmax, log_softmax) of (B, C) tensors "
                            "or one probability per sample" % who)
        return list(out), False
    if isinstance(out, _core.TensorBase):
        if out.ndim == 2 and out.shape[1] == 1:
            out = out.reshape(-1)
        if out.ndim != 1:
            raise ValueError("%s's binary output must have shape (B,) or (B, 1), got %s" % (who, tuple(out.shape)))
        return [out], True
    raise TypeError("%s must return the triple (logits, softmax, log_softmax) or a tensor of probabilities, "
                    "got %s" % (who, type(out).__name__))


# ---- record and replay -------------------------------------------------------------------------
REPLAY = True   # module switch (tests compare replayed and eager training)


class ReplayWarning(UserWarning):
    """A step could not be recorded or replayed; the loop ran eagerly instead."""


# ---- Python side effects -----------------------------------------------------------------------
# A plan replays the ops of a step, nothing else: Python state that the step changes (a counter
# on the model, a list it appends to, a draw from Python's or NumPy's random generator) would
# change in eager training only. PyState takes what is needed to see (and, for probes, undo)
# such changes; a step that makes one is run eagerly.
_CONTAINERS = (list, dict, set)
_MODULE_DICTS = ("_parameters", "_buffers", "_modules")


def _rng_state(v, bcml_generators=False):
    """The state of a random generator object (Python's, NumPy's, bcml's when asked), or None."""
    if isinstance(v, random.Random):
        return v.getstate()
    if isinstance(v, np.random.Generator):
        return v.bit_generator.state
    if isinstance(v, np.random.BitGenerator):
        return v.state
    if isinstance(v, np.random.RandomState):
        return v.get_state()
    if bcml_generators and isinstance(v, _core.Generator):
        return v.get_state()
    return None


def _set_rng_state(v, st):
    if isinstance(v, random.Random):
        v.setstate(st)
    elif isinstance(v, np.random.Generator):
        v.bit_generator.state = st
    elif isinstance(v, np.random.BitGenerator):
        v.state = st
    elif isinstance(v, np.random.RandomState):
        v.set_state(st)
    else:
        v.set_state(st)


def _np_words():
    """The raw state of NumPy's global generator (its MT19937 key and position, the struct its
    bit generator's ctypes interface points to) as bytes, or None where it cannot be read."""
    try:
        bg = np.random.mtrand._rand._bit_generator
        if type(bg).__name__ != "MT19937":
            return None
        return ctypes.string_at(bg.ctypes.state_address, 624 * 4 + ctypes.sizeof(ctypes.c_int))
    except Exception:  # another NumPy layout: the full comparison is used
        return None


def _same(a, b):
    """Equality of generator states (nested tuples, dicts and arrays)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and np.array_equal(a, b)
    if isinstance(a, (tuple, list)):
        return isinstance(b, (tuple, list)) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


def _take(o, contents):
    """An object's attributes: {name: (value, length or None, copy or None, generator state)};
    copies of list/dict/set values when contents (to put them back), and always of a Module's
    _parameters/_buffers/_modules (whose entries are compared one by one)."""
    d = getattr(o, "__dict__", None)
    if not isinstance(d, dict):
        return None
    out = {}
    for k, v in dict(d).items():
        n = c = st = None
        if isinstance(v, _CONTAINERS):
            n = len(v)
            if contents or k in _MODULE_DICTS:
                c = dict(v) if isinstance(v, dict) else (list(v) if isinstance(v, list) else set(v))
        else:
            st = _rng_state(v, contents)
        out[k] = (v, n, c, st)
    return out


def _diff(o, saved):
    """The first change of o's attributes since saved, as a phrase, or None."""
    d = getattr(o, "__dict__", {})
    name = type(o).__name__
    now = dict(d)
    for k, (v, n, c, st) in saved.items():
        if k not in now:
            return "it deletes %s.%s" % (name, k)
        w = now[k]
        if w is not v:
            return "it rebinds %s.%s" % (name, k)
        if n is not None and len(w) != n:
            return "it changes the length of %s.%s (%d, then %d)" % (name, k, n, len(w))
        if k in _MODULE_DICTS and c is not None and any(w.get(j) is not x for j, x in c.items()):
            return "it rebinds an entry of %s.%s" % (name, k)
        if st is not None and not _same(st, _rng_state(w, True)):
            return "it draws from the random generator %s.%s" % (name, k)
    for k in now:
        if k not in saved:
            return "it adds the attribute %s.%s" % (name, k)
    return None


def _put_back(o, saved):
    d = getattr(o, "__dict__", None)
    if not isinstance(d, dict):
        return
    for k in [k for k in d if k not in saved]:
        d.pop(k, None)
    for k, (v, n, c, st) in saved.items():
        d[k] = v
        if c is not None:
            if isinstance(v, list):
                v[:] = c
            else:
                v.clear()
                v.update(c)
        if st is not None:
            _set_rng_state(v, st)


class PyState:
    """Python state that a step can change and a plan does not replay: the global generators of
    Python's random module and NumPy, and the attributes of the given objects, compared
    shallowly (identity of every attribute, length of list/dict/set attributes, entries of a
    Module's parameter/buffer/submodule dicts, state of generators kept as attributes).
    contents=True also keeps copies of list/dict/set attributes and bcml generators' states,
    so that restore() undoes such changes (probes)."""

    def __init__(self, objs, contents=False):
        self.py = random.getstate()
        self.np = np.random.get_state()
        self.np_words = _np_words()
        self.saved = {}
        for o in objs:
            if id(o) not in self.saved:
                s = _take(o, contents)
                if s is not None:
                    self.saved[id(o)] = (o, s)

    def changes(self, ids=None):
        """What changed since the snapshot, as a phrase ("it rebinds Net.calls"), or None.
        ids: the ids of the objects to compare (default all)."""
        if random.getstate() != self.py:
            return "it draws from Python's random module"
        if not self._np_same():
            return "it draws from NumPy's global random generator"
        for key, (o, s) in self.saved.items():
            if ids is None or key in ids:
                why = _diff(o, s)
                if why is not None:
                    return why
        return None

    def _np_same(self):
        """NumPy's global generator is where the snapshot left it. Its raw words and position
        are compared first (get_state takes ~35 us). Words unchanged mean nothing was drawn
        from it, unless a draw used the Gaussian it had cached: that needs has_gauss, so then
        (and when the words cannot be read) the whole state is compared."""
        now = _np_words()
        if now is not None and self.np_words is not None:
            if now != self.np_words:
                return False
            if not self.np[3]:   # no cached Gaussian at the snapshot: unchanged words are exact
                return True
        return _same(np.random.get_state(), self.np)

    def restore(self, ids=None):
        """Puts the random generators and the objects (those of ids, default all) back."""
        random.setstate(self.py)
        np.random.set_state(self.np)
        for key, (o, s) in self.saved.items():
            if ids is None or key in ids:
                _put_back(o, s)


_SCALARS = (int, float, complex, str, bytes)


def _step_modules(objs, depth=4):
    """The Modules a step reaches through closures, bound methods, partials and the attributes
    of callable objects (a few levels deep), and the Modules among its functions' globals."""
    from .nn.modules import Module
    found, seen = [], set()
    stack = [(o, 0) for o in objs]
    while stack:
        o, d = stack.pop()
        if o is None or id(o) in seen or isinstance(o, (type, types.ModuleType) + _SCALARS):
            continue
        seen.add(id(o))
        if isinstance(o, Module):
            found.append(o)
            continue
        if d >= depth:
            continue
        nxt = []
        if isinstance(o, types.MethodType):
            nxt = [o.__self__, o.__func__]
        elif isinstance(o, types.FunctionType):
            for cell in o.__closure__ or ():
                try:
                    nxt.append(cell.cell_contents)
                except ValueError:   # an empty cell
                    pass
            g = o.__globals__
            nxt += [g[n] for n in o.__code__.co_names if isinstance(g.get(n), Module)]
            nxt += list(o.__defaults__ or ())
        elif isinstance(o, functools.partial):
            nxt = [o.func, *o.args, *o.keywords.values()]
        elif isinstance(o, (list, tuple)):
            nxt = list(o) if len(o) <= 64 else []
        elif isinstance(o, dict):
            nxt = list(o.values()) if len(o) <= 64 else []
        elif isinstance(getattr(o, "__dict__", None), dict) and not isinstance(o, _core.TensorBase):
            nxt = list(o.__dict__.values())
        stack.extend((x, d + 1) for x in nxt)
    return found


class _Guard:
    """Watches one eager step of a loop that replays: before the step it takes the Python state
    of every live Module and of the objects watched; after it, problem(plan) says what the step
    changed among the Modules it used (those owning one of the plan's constants, their parents
    and children, the Modules the step reaches, the objects watched), or None."""

    def __init__(self, step, watch, contents=False):
        from .nn.modules import live_modules
        self.watch = tuple(watch)
        self.roots = _step_modules((step,) + self.watch)
        self.state = PyState(live_modules() + self.roots + list(self.watch), contents)

    @staticmethod
    def _owners(mods, plan):
        """Those of mods (Modules) owning one of the plan's constants (parameters, buffers), and
        their parents among mods."""
        ptrs = set()
        if plan is not None:
            ptrs = {c._data_ptr for c in plan.constants()}
            ptrs.discard(0)
        parents, used = {}, {}
        for o in mods:
            d = o.__dict__
            for c in list(d.get("_modules", {}).values()):
                if c is not None:
                    parents.setdefault(id(c), []).append(o)
            ts = list(d.get("_parameters", {}).values()) + list(d.get("_buffers", {}).values())
            if any(getattr(t, "_data_ptr", None) in ptrs for t in ts):
                used[id(o)] = o
        todo = list(used.values())
        while todo:   # parents of a module the plan reads from
            for p in parents.get(id(todo.pop()), ()):
                if id(p) not in used:
                    used[id(p)] = p
                    todo.append(p)
        return list(used.values())

    @staticmethod
    def modules_of(plan):
        """The live Modules owning one of the plan's constants, and their parents."""
        from .nn.modules import live_modules
        return _Guard._owners(live_modules(), plan)

    def used(self, plan):
        from .nn.modules import Module
        used = self._owners([o for o, _s in self.state.saved.values() if isinstance(o, Module)], plan)
        ids = {id(o) for o in self.watch}
        for m in used + self.roots:
            ids.update(id(s) for s in m.modules())
        return ids

    def problem(self, plan):
        return self.state.changes(self.used(plan))


def _hooks_problem(objs):
    """Why a loop over the Modules these objects reach cannot replay because of hooks (a replay
    would not call them), or None. Checked at every call, so a hook registered between epochs
    of one Session turns replay off too; hooks met while a step is recorded taint the record."""
    from ._hooks import has_hooks
    for root in _step_modules(objs):
        for m in root.modules():
            if has_hooks(m):
                return "%s has forward or backward hooks, which a replay would not call" % type(m).__name__
            for p in m._parameters.values():
                if p is not None and _core._has_hooks(p):
                    return "a parameter of %s has a backward hook (register_hook)" % type(m).__name__
    return None


def _warn(what, why):
    warnings.warn("%s runs eagerly (one Python step per batch): %s" % (what, why), ReplayWarning, stacklevel=3)


def _optimizer_groups(optimizer):
    """The optimizer's parameter groups in plan_train's form, or None when its step is not one
    bcml can run in C (any optimizer other than bcml.optim.SGD / Adam, or a subclass that
    overrides step). Settings are read now, at every call: changes between epochs apply."""
    from .optim import SGD, Adam
    t = type(optimizer)
    if isinstance(optimizer, SGD) and t.step is SGD.step:
        return [(0, SGD._opts(g), g["params"], g["_bufs"], None, None, None) for g in optimizer.param_groups]
    if isinstance(optimizer, Adam) and t.step is Adam.step:
        return [(1, Adam._opts(g), g["params"], g["_m"], g["_v"], g["_vmax"], g["_steps"]) for g in optimizer.param_groups]
    return None


_STATE_KEYS = ("_bufs", "_m", "_v", "_vmax")


def _snapshot(plan, optimizer):
    """Everything a replayed step can change: the plan's constants (parameters, buffers) and
    their gradients, its generators, and the state of the optimizer (one, a list, or None) and
    its parameters' gradients."""
    consts = plan.constants()
    snap = {"consts": [(c, c.detach().numpy().copy()) for c in consts],
            "cgrads": [(c, None if c.grad is None else c.grad.numpy().copy()) for c in consts if c.requires_grad],
            "gens": [(g, g.get_state()) for g in plan.generators()], "opt": []}
    opts = optimizer if isinstance(optimizer, (list, tuple)) else ([] if optimizer is None else [optimizer])
    for optimizer in opts:
        for g in optimizer.param_groups:
            st = {k: [None if t is None else t.numpy().copy() for t in g[k]] for k in _STATE_KEYS if k in g}
            if "_steps" in g:
                st["_steps"] = list(g["_steps"])
            st["grads"] = [None if p.grad is None else p.grad.numpy().copy() for p in g["params"]]
            snap["opt"].append((g, st))
    return snap


def _restore(snap):
    for c, a in snap["consts"]:
        np.copyto(c.detach().numpy(), a)
    for c, a in snap.get("cgrads", ()):
        c.grad = None if a is None else from_numpy(a.copy())
    for g, st in snap["gens"]:
        g.set_state(st)
    for g, st in snap["opt"]:
        for k, v in st.items():
            if k == "_steps":
                g[k][:] = v
            elif k == "grads":
                for p, a in zip(g["params"], v):
                    p.grad = None if a is None else from_numpy(a.copy())
            else:
                g[k][:] = [None if a is None else from_numpy(a.copy()) for a in v]


def _close(a, b):
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return False
    if a.dtype == b.dtype and a.tobytes() == b.tobytes():
        return True   # the usual outcome of a check (replay runs eager's kernels), at a fraction of allclose's cost
    if a.dtype.kind != "f":
        return bool(np.array_equal(a, b))
    return bool(np.allclose(a, b, rtol=1e-5, atol=1e-7, equal_nan=True))


class _Plans:
    """Plans of one loop by input signature (shapes and dtypes): recorded, then verified.

    Every step the loop runs eagerly while replay is on (the recorded one, and the ones that
    check a plan against eager) is watched (_Guard): a step with a Python side effect that a
    replay would skip turns replay off."""

    def __init__(self, what):
        self.what = what
        self.entries = {}       # signature -> [plan, verified]
        self.on = REPLAY
        self.recording = False
        self.guard = None
        self.step, self.watch = None, ()

    @staticmethod
    def key(inputs):
        return tuple((tuple(t.shape), t.dtype) for t in inputs)

    def verified(self):
        return tuple(e[0] for e in self.entries.values() if e[1])

    def should_record(self, inputs):
        return self.on and self.key(inputs) not in self.entries

    def disable(self, why):
        if self.on:
            self.on = False
            _warn(self.what, why)

    def recheck(self, inputs):
        """The plan of these inputs is checked against eager again when next seen (the first
        batch of every epoch). True when there is such a plan."""
        e = self.entries.get(self.key(inputs))
        if e is not None:
            e[1] = False
        return e is not None

    def begin(self, record, check=None):
        """Before an eager step: record it (record) or check it against a plan (check: the
        pending entry); both are watched for Python side effects."""
        self.recording = record
        self.guard = _Guard(self.step, self.watch) if (record or check is not None) and self.on else None
        if record:
            _core.record_begin()

    def end(self, inputs, loss, outputs, check=None):
        """After the eager step: builds the recorded plan, or refuses it (or the checked one)
        when the step had a Python side effect."""
        guard, self.guard = self.guard, None
        if self.recording:
            self.recording = False
            rec = _core.record_end()
            if rec.tainted:
                self.disable("the step cannot be recorded: %s" % rec.tainted)
                return
            try:
                plan = _core.plan_build(rec, inputs, loss, outputs)
            except (ValueError, TypeError) as e:
                self.disable("the step cannot be recorded: %s" % e)
                return
            why = guard.problem(plan) if guard is not None else None
            if why is not None:
                self.disable("the step has a Python side effect that a replay would skip: %s" % why)
                return
            self.entries[self.key(inputs)] = [plan, False]
        elif guard is not None:
            why = guard.problem(check[0] if check is not None else None)
            if why is not None:
                self.disable("the step has a Python side effect that a replay would skip: %s" % why)

    def abort(self):
        self.guard = None
        if self.recording:
            self.recording = False
            _core.record_end()

    def pending(self, inputs):
        """The recorded, not yet verified plan for these inputs, or None."""
        e = self.entries.get(self.key(inputs)) if self.on else None
        return e if e is not None and not e[1] else None


def predict(model, data, who="model"):
    """Runs model over every row of data (row order) under no_grad, in the mode the model is in.
    Returns (Outputs, y ndarray, ids ndarray). After the first batch of each shape the forward
    pass is replayed in C for the remaining batches."""
    data = as_dataset(data)
    if data.n == 0:
        raise ValueError("%s is empty" % data.name)
    order, bounds = data.schedule(shuffle=False)
    full = data.full()
    xfull = (full[0],)
    nb = len(bounds) - 1
    plans = _Plans("predict(%s)" % who)
    plans.step = model
    why = _hooks_problem((model,)) if plans.on else None
    if why is not None:
        plans.disable(why)
    outs, binary, b = None, None, 0
    with no_grad():
        while b < nb:
            if plans.on and outs is not None and plans.verified():
                b = _core.plan_predict(plans.verified(), xfull, order, bounds, b, outs)
                if b >= nb:
                    break
            rows, (x,) = data.batch(xfull, order, bounds, b)
            pend = plans.pending((x,)) if outs is not None else None
            if pend is not None:
                snap = _snapshot(pend[0], None)
                _, ro = pend[0].run((x,))
                replayed = [t.numpy().copy() for t in ro]
                _restore(snap)
            plans.begin(plans.should_record((x,)), pend)
            try:
                out = call_model(model, x, who, data.name)
                parts, bflag = split_output(out, who)
            except BaseException:
                plans.abort()
                raise
            plans.end((x,), None, tuple(parts), pend)
            if outs is None:
                binary = bflag
                outs = tuple(from_numpy(np.empty((data.n,) + tuple(p.shape[1:]), np.float32)) for p in parts)
            elif bflag != binary or len(parts) != len(outs):
                raise TypeError("%s returned different kinds of outputs on different batches" % who)
            for o, p in zip(outs, parts):
                o.numpy()[rows] = p.numpy()
            if pend is not None:
                if all(_close(r, p.numpy()) for r, p in zip(replayed, parts)):
                    pend[1] = True
                else:
                    plans.disable("its replayed forward pass differs from the eager one")
            b += 1
    y = full[1].numpy()
    return Outputs([o.numpy() for o in outs], binary), y, data.ids


class Session:
    """Plans kept across the epochs of one training run (pass the same Session to every
    train_epoch call of a loop that does not change the model, the step or the optimizer's
    parameter list between epochs; the optimizer's settings are read at every call)."""

    def __init__(self):
        self.plans = _Plans("training")


def _with_cache(full, cache):
    """The data tensors of a step: (x, y) and, with an h1 cache, its parts (N, ...)."""
    if cache is None:
        return full
    return full + tuple(from_numpy(np.ascontiguousarray(p)) for p in cache.parts)


def _h1_of(inputs, cache):
    """The h1 output a step receives from its batch's tensors (None without a cache)."""
    if cache is None:
        return None
    return inputs[2] if cache.binary else tuple(inputs[2:5])


def train_epoch(step, data, optimizer, cache=None, session=None, epoch=None, watch=()):
    """One epoch: for every batch ``optimizer.zero_grad(); loss = step(x, y, h1);
    loss.backward(); optimizer.step()``, where h1 is the cache's outputs for the batch's rows
    (None without a cache). Returns the batches' loss values (floats). ``session``: a
    :class:`Session` whose plans carry over from earlier epochs of the same run. ``epoch``: a
    loader's epoch whose order to use (default: its next one, advancing its counter).

    The first batch of each input shape runs eagerly and is recorded; the next one of that
    shape is replayed and checked against eager (state saved and restored around the check),
    and so is the first batch of every later epoch; the other batches run in C, an epoch's
    worth per call with the GIL released. A step that cannot be recorded (it reads tensor data
    in Python, or has a Python side effect: it rebinds an attribute of a Module it uses or of
    an object of ``watch``, changes the length of a list/dict/set attribute, draws from
    Python's or NumPy's global random generator), an optimizer bcml cannot step in C or a
    failed check makes the loop eager (with a ReplayWarning)."""
    data = as_dataset(data)
    order, bounds = data.schedule(shuffle=True, epoch=epoch)
    full = _with_cache(data.full(), cache)
    nb = len(bounds) - 1
    losses = np.full(nb, np.nan, np.float32)
    plans = session.plans if session is not None else _Plans("training")
    plans.step, plans.watch = step, tuple(watch)
    if plans.on and _optimizer_groups(optimizer) is None:
        plans.disable("%s is not a bcml.optim.SGD or Adam" % type(optimizer).__name__)
    why = _hooks_problem((step,) + plans.watch) if plans.on else None
    if why is not None:
        plans.disable(why)
    first, first_check = None, False
    if plans.on and nb > 0 and plans.entries:
        first = data.batch(full, order, bounds, 0)   # built once: checked, then run eagerly
        first_check = plans.recheck(first[1])

    b = 0
    while b < nb:
        if plans.on and plans.verified() and not (b == 0 and first_check):
            optimizer.zero_grad()
            b = _core.plan_train(plans.verified(), full, order, bounds, b, _optimizer_groups(optimizer), losses)
            if b >= nb:
                break
        rows, inputs = first if b == 0 and first is not None else data.batch(full, order, bounds, b)
        pend = plans.pending(inputs)
        if pend is not None:
            optimizer.zero_grad()
            snap = _snapshot(pend[0], optimizer)
            one = np.array([0, int(bounds[b + 1] - bounds[b])], dtype=np.int64)
            tmp = np.full(1, np.nan, np.float32)
            _core.plan_train((pend[0],), tuple(inputs), None, one, 0, _optimizer_groups(optimizer), tmp)
            replayed = [c.detach().numpy().copy() for c, _ in snap["consts"]]
            _restore(snap)
        optimizer.zero_grad()
        plans.begin(plans.should_record(inputs), pend)
        try:
            loss = step(inputs[0], inputs[1], _h1_of(inputs, cache))
        except BaseException:
            plans.abort()
            raise
        plans.end(inputs, loss, (), pend)
        loss.backward()
        optimizer.step()
        losses[b] = loss.item()
        if pend is not None:
            ok = _close(tmp[0], losses[b]) and all(
                _close(r, c.detach().numpy()) for r, (c, _) in zip(replayed, snap["consts"]))
            if ok:
                pend[1] = True
            else:
                plans.disable("its replayed step differs from the eager one")
        b += 1
    return [float(v) for v in losses]


def replay_problem(step, data, optimizer, cache=None, watch=()):
    """Why ``step`` cannot be replayed (a string), or None: records it once on the first batch
    (forward only, nothing is updated; random draws come from a throwaway generator, and the
    Python state of the Modules it uses and of Python's and NumPy's generators is put back)."""
    from ._random import Generator, default_for_thread
    data = as_dataset(data)
    if _optimizer_groups(optimizer) is None:
        return "%s is not a bcml.optim.SGD or Adam" % type(optimizer).__name__
    why = _hooks_problem((step,) + tuple(watch))   # before the probe: it would call the hooks
    if why is not None:
        return why
    order, bounds = data.schedule(shuffle=False)
    _rows, inputs = data.batch(_with_cache(data.full(), cache), order, bounds, 0)
    guard = _Guard(step, watch, contents=True)
    plan = None
    try:
        with default_for_thread(Generator(0)):
            _core.record_begin()
            try:
                loss = step(inputs[0], inputs[1], _h1_of(inputs, cache))
            finally:
                rec = _core.record_end()
        why = rec.tainted
        if why is None:
            try:
                plan = _core.plan_build(rec, inputs, loss, ())
            except (ValueError, TypeError) as e:
                return str(e)
            why = guard.problem(plan)
            if why is not None:
                why = "the step has a Python side effect that a replay would skip: %s" % why
        return why
    finally:
        guard.state.restore(guard.used(plan))
