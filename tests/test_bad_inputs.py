"""The bad-input matrix (issue 9, part 5): every public callable of bcml called with about 50 bad
values in every parameter.

Callables are found by walking the package: every public module (no name component starting
with "_"; bcml.plotting only when matplotlib is installed), its public names (``__all__`` when
defined) whose object is a function or class defined in bcml, each object once under one public
name. For classes: the constructor, the public methods (and operators) defined in bcml
(methods of a private base class under each public subclass; ``Module.forward`` of every
nn.Module subclass by calling the module), and the setters of Tensor's properties. Exceptions
and warnings are left out (their constructors take any message, by Python's convention).

EXAMPLES maps each callable with required parameters to a valid call (a factory, so tensors are
fresh); a callable found without one, and an entry naming nothing found, fail the test. The
matrix then replaces each parameter of the call (those given and those left at their default;
for ``*args`` the first element; for ``**kwargs`` each key given; for a Tensor method also the
tensor itself) by each value of BAD, and calls. Every call must

1. raise TypeError / ValueError / IndexError / MemoryError (RuntimeError: only about autograd
   state) whose message names the parameter; or
2. succeed with a result that ORACLES checks against PyTorch or NumPy; or
3. match an ALLOWLIST entry, whose reason says why its outcome is right.

Anything else (another exception, a message without the name, a success without an oracle, a
result that differs, a crash or a hang) is a violation. The calls run in subprocess chunks; a
child writes a line before each call and the outcome after it, so a crash or a hang names the
call in progress (and the rest of the chunk runs in a new child).

Run one callable by hand: python tests/test_bad_inputs.py bcml.relu [more names or patterns]
"""
import contextlib
import fnmatch
import importlib
import importlib.util
import inspect
import io
import json
import math
import numbers
import os
import pkgutil
import re
import subprocess
import sys
import tempfile
import time
import types
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
# module (and its submodules) -> the optional dependency it needs
OPTIONAL = {"bcml.plotting": "matplotlib", "bcml.widget": "anywidget", "bcml.widgets": "anywidget"}
CHUNK_TIMEOUT = 3600                         # seconds for one child (then the call in progress is reported)
CALL_TIMEOUT = 60                            # seconds of silence after a call started: a hang
SEED = 20240509


# ==== discovery =================================================================================
def _public(name):
    return not any(part.startswith("_") for part in name.split("."))


def public_modules():
    """(modules, {skipped module: missing dependency})."""
    import bcml
    mods, skipped = [bcml], {}
    for info in pkgutil.walk_packages(bcml.__path__, "bcml."):
        if not _public(info.name):
            continue
        dep = next((d for m, d in OPTIONAL.items() if info.name == m or info.name.startswith(m + ".")), None)
        if dep and importlib.util.find_spec(dep) is None:
            skipped[info.name] = dep
            continue
        mods.append(importlib.import_module(info.name))
    return mods, skipped


def _ours(obj):
    return (getattr(obj, "__module__", None) or "").startswith("bcml")


def _exported(module):
    names = getattr(module, "__all__", None)
    if names is None:
        names = [n for n in vars(module) if not n.startswith("_")]
    return names


class Target:
    """One callable of the matrix. kind: "call" (obj(*args)), "method" (getattr(receiver,
    attr)(*args)), "forward" (receiver(*args), the signature of receiver.forward) or "setter"
    (setattr(receiver, attr, value))."""

    def __init__(self, name, kind, obj, cls=None, attr=None):
        self.name, self.kind, self.obj, self.cls, self.attr = name, kind, obj, cls, attr

    def __repr__(self):
        return "Target(%s)" % self.name


_SKIP_DUNDERS = {"__init__", "__new__", "__repr__", "__str__", "__hash__", "__reduce__", "__reduce_ex__",
                 "__getattr__", "__getattribute__", "__setattr__", "__delattr__", "__dir__", "__init_subclass__",
                 "__class_getitem__", "__del__", "__sizeof__", "__getstate__", "__setstate__", "__subclasshook__",
                 "__enter__", "__exit__", "__copy__", "__deepcopy__", "__weakref__", "__dict__", "__module__",
                 "__doc__", "__slots__", "__annotations__", "__dataclass_fields__", "__dataclass_params__",
                 "__match_args__", "__post_init__", "__eq__" if False else "__ne_unused__"}


def _method_names(cls):
    """Public methods, operators and property setters of cls whose definition is in bcml:
    [(attr, owner class, kind)]."""
    out = []
    for attr in sorted(dir(cls)):
        if attr in _SKIP_DUNDERS or (attr.startswith("_") and not (attr.startswith("__") and attr.endswith("__"))):
            continue
        owner = next((k for k in cls.__mro__ if attr in vars(k)), None)
        if owner is None or not _ours(owner):
            continue
        raw = vars(owner)[attr]
        if isinstance(raw, property) or type(raw).__name__ == "getset_descriptor":
            if getattr(raw, "fset", None) is not None or (type(raw).__name__ == "getset_descriptor"
                                                          and attr in _C_SETTERS.get(owner.__name__, ())):
                out.append((attr, owner, "setter"))
            continue
        if inspect.isclass(raw):
            continue
        if isinstance(raw, (staticmethod, classmethod)) or callable(raw):
            out.append((attr, owner, "method"))
    return out


_C_SETTERS = {"TensorBase": ("requires_grad", "grad")}   # writable attributes of the C type


def discover():
    """{name: Target} of every public callable; and the skipped optional modules."""
    mods, skipped = public_modules()
    names = {}
    for m in mods:
        for n in _exported(m):
            obj = getattr(m, n, None)
            if obj is None or not (inspect.isfunction(obj) or inspect.isclass(obj) or inspect.isbuiltin(obj)):
                continue
            if not _ours(obj):
                continue
            names.setdefault(id(obj), (obj, []))[1].append((m.__name__, n))
    found = {}
    classes = []

    def canonical(obj, where):   # the shortest public name
        return min((mn + "." + n for mn, n in where), key=lambda s: (s.count("."), s))

    todo = list(names.values())
    while todo:
        obj, where = todo.pop(0)
        name = canonical(obj, where)
        if inspect.isclass(obj) and issubclass(obj, BaseException):
            continue   # exceptions and warnings take any arguments, by Python's convention
        found[name] = Target(name, "call", obj)
        if inspect.isclass(obj):
            classes.append((name, obj))
            for attr, val in vars(obj).items():   # nested public classes (optim.lr_scheduler.StepLR)
                if not attr.startswith("_") and inspect.isclass(val) and _ours(val) and id(val) not in names:
                    names[id(val)] = (val, [(name, attr)])
                    todo.append(names[id(val)])
    public_classes = {id(obj): name for name, obj in classes}
    import bcml.nn
    for cname, cls in classes:
        is_module = issubclass(cls, bcml.nn.Module)
        for attr, owner, kind in _method_names(cls):
            base = public_classes.get(id(owner), cname)
            if id(owner) not in public_classes and any(
                    id(k) in public_classes and issubclass(k, owner) for k in cls.__mro__[1:]):
                continue   # a private base's method: tested under its topmost public subclasses
            if is_module and attr == "forward":
                if owner is bcml.nn.Module:
                    continue   # the abstract forward (NotImplementedError, as PyTorch's)
                tname = cname + ".forward"   # every subclass: its own layers
                found[tname] = Target(tname, "forward", cls, cls, attr)
                continue
            if is_module and attr == "__call__":
                continue   # covered by forward
            tname = base + "." + attr
            if tname in found:
                continue
            found[tname] = Target(tname, kind, getattr(cls, attr, None), owner if id(owner) in public_classes else cls,
                                  attr)
    return found, skipped


# ==== signatures ================================================================================
def _sig(f):
    return inspect.signature(f)


# C functions and types without a text signature: their parameters, as documented
SIGNATURES = {
    "bcml.Generator": _sig(lambda seed=None: None),
    "bcml.Generator.manual_seed": _sig(lambda seed: None),
    "bcml.Generator.set_state": _sig(lambda new_state: None),
    "bcml.Generator.get_state": _sig(lambda: None),
    "bcml.Generator.initial_seed": _sig(lambda: None),
    "bcml.Tensor.backward": _sig(lambda gradient=None, retain_graph=None, create_graph=False: None),
    "bcml.Tensor.item": _sig(lambda: None),
    "bcml.Tensor.numpy": _sig(lambda: None),
    "bcml.scores.CompatibilityReport": _sig(lambda mapping: None),   # a dict
}


def signature(target):
    if target.name in SIGNATURES:
        return SIGNATURES[target.name]
    if target.kind == "setter":
        return _sig(lambda value: None)
    if target.kind == "forward":
        fn = target.cls.forward
    elif target.kind == "method":
        fn = getattr(target.cls, target.attr)
    else:
        fn = target.obj
    sig = inspect.signature(fn)
    params = list(sig.parameters.values())
    if target.kind in ("method", "forward") and params and params[0].name in ("self", "cls") \
            and not isinstance(inspect.getattr_static(target.cls, target.attr), classmethod):
        params = params[1:]
    elif target.kind == "method" and isinstance(inspect.getattr_static(target.cls, target.attr), classmethod):
        pass   # getattr on the class binds cls already
    return sig.replace(parameters=params)


# ==== the context examples draw from ============================================================
class Ctx:
    """Fresh, seeded inputs for one call."""

    def __init__(self, tmp, seed=SEED):
        import bcml
        self.bcml, self.tmp, self.rng = bcml, Path(tmp), np.random.default_rng(seed)
        bcml.manual_seed(seed)

    # tensors
    def arr(self, *shape):
        return self.rng.standard_normal(shape).astype(np.float32)

    def x(self, *shape):
        return self.bcml.from_numpy(self.arr(*(shape or (4, 3))))

    def labels(self):
        return self.bcml.tensor([0, 1, 2, 1])

    def probs(self):
        return self.bcml.tensor([0.2, 0.7, 0.9, 0.4])

    def targets01(self):
        return self.bcml.tensor([0.0, 1.0, 1.0, 0.0])

    def logp(self):
        return self.x().log_softmax(1)

    def img(self):
        return self.x(1, 1, 5, 5)

    def gen(self):
        return self.bcml.Generator(7)

    def pil(self):
        from PIL import Image
        return Image.fromarray(self.rng.integers(0, 256, (4, 3)).astype(np.uint8), mode="L")

    # models and data
    def model(self, seed=1):
        return self.bcml.models.LogisticRegression(3, 3)

    def bmodel(self):
        nn = self.bcml.nn
        return nn.Sequential(nn.Linear(3, 1), nn.Sigmoid())

    def data(self):
        return [(self.x(), self.labels()), (self.x(2, 3), self.bcml.tensor([1, 0]))]

    def loader(self):
        return self.bcml.data.DataLoader(self.arr(6, 3), np.array([0, 1, 2, 1, 0, 2]), batch_size=4)

    def opt(self, model):
        return self.bcml.optim.SGD(model.parameters(), lr=0.1)

    def loss(self, h1=None, h2=None, cls="BCCrossEntropyLoss", **kw):
        return getattr(self.bcml.loss, cls)(h1 or self.model(), h2 or self.model(), 0.5, **kw)

    def summary(self):
        rows = []
        for i, (lam, kind, split) in enumerate([(0.0, "new-error", "training"), (0.0, "new-error", "testing"),
                                                (0.0, "strict-imitation", "training"),
                                                (0.0, "strict-imitation", "testing"),
                                                (1.0, "new-error", "training"), (1.0, "new-error", "testing"),
                                                (1.0, "strict-imitation", "training"),
                                                (1.0, "strict-imitation", "testing")]):
            rows.append({"datapoint_index": i, "lambda_c": lam, "training": split == "training",
                         "testing": split == "testing", "new-error": kind == "new-error",
                         "strict-imitation": kind == "strict-imitation", "performance": 0.5 + 0.01 * i,
                         "btc": 0.8, "bec": 0.7})
        return {"h1_performance": 0.6, "performance_metric": "model_accuracy", "data": rows}

    def sweep_folder(self):
        """A folder holding a finished sweep (written once per child)."""
        folder = self.tmp / "sweep-done"
        if not (folder / "sweep_summary.json").exists():
            import bcml.helpers.training as T
            T.compatibility_sweep(str(folder), 1, self.model(), self.model(), self.data(), self.data(), 4, 4,
                                  self.bcml.optim.SGD, {"lr": 0.1}, self.bcml.loss.BCCrossEntropyLoss,
                                  self.bcml.loss.StrictImitationCrossEntropyLoss, lambda_c_stepsize=1.0,
                                  seed=1, n_jobs=1)
        return str(folder)

    def st_file(self):
        path = self.tmp / "t.safetensors"
        if not path.exists():
            self.bcml.save({"a": self.bcml.ones(2, 3)}, str(path))
        return str(path)

    def torch_ckpt(self):
        """A small checkpoint written by torch.save (a state dict with a transposed view)."""
        path = self.tmp / "t.pt"
        if not path.exists():
            import torch
            torch.save({"w": torch.arange(6.0).reshape(2, 3).t(), "n": torch.tensor([1, 2])}, str(path))
        return str(path)

    def idx_folder(self):
        folder = self.tmp / "mnist"
        if not folder.exists():
            import struct
            folder.mkdir()
            for prefix, n in (("train", 5), ("t10k", 3)):
                images = self.rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
                labels = self.rng.integers(0, 10, size=n).astype(np.uint8)
                (folder / (prefix + "-images-idx3-ubyte")).write_bytes(
                    struct.pack(">IIII", 0x803, n, 28, 28) + images.tobytes())
                (folder / (prefix + "-labels-idx1-ubyte")).write_bytes(struct.pack(">II", 0x801, n) + labels.tobytes())
        return str(folder)

    def cifar_folder(self):
        folder = self.tmp / "cifar"
        if not folder.exists():
            folder.mkdir()
            for k, name in enumerate(["data_batch_%d.bin" % i for i in range(1, 6)] + ["test_batch.bin"]):
                recs = b"".join(bytes([(i + k) % 10]) + self.rng.integers(0, 256, 3072, dtype=np.uint8).tobytes()
                                for i in range(4))
                (folder / name).write_bytes(recs)
        return str(folder)

    def tabular(self, name):
        """A copy of the head of a shared data file (the loaders' own format, fewer rows)."""
        src = shared_data()
        files = {"adult": ["adult.data", "adult.test"], "compas": ["compas-scores-two-years.csv"],
                 "german": ["german.data"], "breast": ["breast-cancer-wisconsin.data"]}[name]
        folder = self.tmp / ("tab-" + name)
        if not folder.exists():
            folder.mkdir()
            for f in files:
                lines = (src / f).read_text(errors="replace").splitlines(True)
                (folder / f).write_text("".join(lines[:80]))
        return str(folder)


def shared_data():
    return Path(os.environ.get("BCML_SHARED_DATA") or HERE.parents[1] / "shared" / "data")


# ==== valid example calls =======================================================================
def _a(*args, **kwargs):
    return args, kwargs


def _sweep_args(c):
    b = c.bcml
    return (tempfile.mkdtemp(prefix="sweep-", dir=str(c.tmp)), 1, c.model(), c.model(), c.data(), c.data(), 4, 4, b.optim.SGD, {"lr": 0.1},
            b.loss.BCCrossEntropyLoss, b.loss.StrictImitationCrossEntropyLoss)


# name -> factory(c) -> (args, kwargs). Callables whose parameters all have defaults need no entry
# (their example is the call without arguments).
EXAMPLES = {
    # ---- bcml ---------------------------------------------------------------------------------
    "bcml.Size": lambda c: _a([4, 3]),
    "bcml.Tensor": lambda c: _a([[1.0, 2.0], [3.0, 4.0]]),
    "bcml.arange": lambda c: _a(0, 5, 1),
    "bcml.argmax": lambda c: _a(c.x()),
    "bcml.cat": lambda c: _a([c.x(), c.x()], 0),
    "bcml.clamp": lambda c: _a(c.x(), -0.5, 0.5),
    "bcml.dtype": lambda c: _a("float32", True, 4),
    "bcml.empty": lambda c: _a(4, 3),
    "bcml.empty_like": lambda c: _a(c.x()),
    "bcml.eq": lambda c: _a(c.x(), c.x()),
    "bcml.exp": lambda c: _a(c.x()),
    "bcml.flatten": lambda c: _a(c.x()),
    "bcml.from_numpy": lambda c: _a(c.arr(4, 3)),
    "bcml.full": lambda c: _a((4, 3), 1.5),
    "bcml.is_tensor": lambda c: _a(c.x()),
    "bcml.load": lambda c: _a(c.st_file()),
    "bcml.load_torch_checkpoint": lambda c: _a(c.torch_ckpt()),
    "bcml.log": lambda c: _a(c.x()),
    "bcml.log_softmax": lambda c: _a(c.x(), 1),
    "bcml.manual_seed": lambda c: _a(5),
    "bcml.matmul": lambda c: _a(c.x(), c.x(3, 2)),
    "bcml.max": lambda c: _a(c.x()),
    "bcml.mean": lambda c: _a(c.x()),
    "bcml.nonzero": lambda c: _a(c.x()),
    "bcml.ones": lambda c: _a(4, 3),
    "bcml.ones_like": lambda c: _a(c.x()),
    "bcml.rand": lambda c: _a(4, 3),
    "bcml.randn": lambda c: _a(4, 3),
    "bcml.randperm": lambda c: _a(5),
    "bcml.relu": lambda c: _a(c.x()),
    "bcml.save": lambda c: _a({"w": c.x()}, str(c.tmp / "saved.safetensors")),
    "bcml.set_grad_enabled": lambda c: _a(True),
    "bcml.set_num_threads": lambda c: _a(1),
    "bcml.set_rng_state": lambda c: _a(c.bcml.get_rng_state()),
    "bcml.sigmoid": lambda c: _a(c.x()),
    "bcml.softmax": lambda c: _a(c.x(), 1),
    "bcml.squeeze": lambda c: _a(c.x(4, 1)),
    "bcml.stack": lambda c: _a([c.x(), c.x()]),
    "bcml.sum": lambda c: _a(c.x()),
    "bcml.tanh": lambda c: _a(c.x()),
    "bcml.tensor": lambda c: _a([[1.0, 2.0], [3.0, 4.0]]),
    "bcml.unsqueeze": lambda c: _a(c.x(), 0),
    "bcml.where": lambda c: _a(c.x() > 0, c.x(), c.x()),
    "bcml.zeros": lambda c: _a(4, 3),
    "bcml.zeros_like": lambda c: _a(c.x()),
    "bcml.Generator.manual_seed": lambda c: _a(3),
    "bcml.Generator.set_state": lambda c: _a(c.gen().get_state()),
    "bcml.device.__eq__": lambda c: _a("cpu"),
    "bcml.no_grad.__call__": lambda c: _a(lambda: 0),
    "bcml.enable_grad.__call__": lambda c: _a(lambda: 0),
    "bcml.set_grad_enabled.__call__": lambda c: _a(lambda: 0),
    # ---- bcml.Tensor (the receiver is a fresh (4, 3) float32 tensor) --------------------------
    "bcml.Tensor.__add__": lambda c: _a(c.x()),
    "bcml.Tensor.__and__": lambda c: _a(c.x() > 0),
    "bcml.Tensor.__rand__": lambda c: _a(c.x() > 0),
    "bcml.Tensor.__ror__": lambda c: _a(c.x() > 0),
    "bcml.Tensor.__array__": lambda c: _a(),
    "bcml.Tensor.__array_wrap__": lambda c: _a(c.arr(4, 3)),
    "bcml.Tensor.register_hook": lambda c: _a(lambda g: None),
    "bcml.Tensor.__eq__": lambda c: _a(c.x()),
    "bcml.Tensor.__format__": lambda c: _a(""),
    "bcml.Tensor.__ge__": lambda c: _a(c.x()),
    "bcml.Tensor.__getitem__": lambda c: _a(1),
    "bcml.Tensor.__gt__": lambda c: _a(c.x()),
    "bcml.Tensor.__iadd__": lambda c: _a(c.x()),
    "bcml.Tensor.__imul__": lambda c: _a(c.x()),
    "bcml.Tensor.__isub__": lambda c: _a(c.x()),
    "bcml.Tensor.__itruediv__": lambda c: _a(c.x()),
    "bcml.Tensor.__le__": lambda c: _a(c.x()),
    "bcml.Tensor.__lt__": lambda c: _a(c.x()),
    "bcml.Tensor.__matmul__": lambda c: _a(c.x(3, 2)),
    "bcml.Tensor.__mul__": lambda c: _a(c.x()),
    "bcml.Tensor.__ne__": lambda c: _a(c.x()),
    "bcml.Tensor.__or__": lambda c: _a(c.x() > 0),
    "bcml.Tensor.__pow__": lambda c: _a(2.0),
    "bcml.Tensor.__radd__": lambda c: _a(1.5),
    "bcml.Tensor.__rmatmul__": lambda c: _a(c.x(2, 4)),
    "bcml.Tensor.__rmul__": lambda c: _a(1.5),
    "bcml.Tensor.__rsub__": lambda c: _a(1.5),
    "bcml.Tensor.__rtruediv__": lambda c: _a(1.5),
    "bcml.Tensor.__setitem__": lambda c: _a(1, 2.5),
    "bcml.Tensor.__sub__": lambda c: _a(c.x()),
    "bcml.Tensor.__truediv__": lambda c: _a(c.x()),
    "bcml.Tensor.add": lambda c: _a(c.x()),
    "bcml.Tensor.add_": lambda c: _a(c.x()),
    "bcml.Tensor.clamp": lambda c: _a(-0.5, 0.5),
    "bcml.Tensor.clip": lambda c: _a(-0.5, 0.5),
    "bcml.Tensor.copy_": lambda c: _a(c.x()),
    "bcml.Tensor.div": lambda c: _a(c.x()),
    "bcml.Tensor.div_": lambda c: _a(c.x()),
    "bcml.Tensor.eq": lambda c: _a(c.x()),
    "bcml.Tensor.expand_as": lambda c: _a(c.x(2, 4, 3)),
    "bcml.Tensor.fill_": lambda c: _a(2.5),
    "bcml.Tensor.ge": lambda c: _a(c.x()),
    "bcml.Tensor.gt": lambda c: _a(c.x()),
    "bcml.Tensor.le": lambda c: _a(c.x()),
    "bcml.Tensor.log_softmax": lambda c: _a(1),
    "bcml.Tensor.lt": lambda c: _a(c.x()),
    "bcml.Tensor.matmul": lambda c: _a(c.x(3, 2)),
    "bcml.Tensor.mm": lambda c: _a(c.x(3, 2)),
    "bcml.Tensor.mul": lambda c: _a(c.x()),
    "bcml.Tensor.mul_": lambda c: _a(c.x()),
    "bcml.Tensor.ne": lambda c: _a(c.x()),
    "bcml.Tensor.pow": lambda c: _a(2.0),
    "bcml.Tensor.reshape": lambda c: _a(3, 4),
    "bcml.Tensor.reshape_as": lambda c: _a(c.x(3, 4)),
    "bcml.Tensor.softmax": lambda c: _a(1),
    "bcml.Tensor.sub": lambda c: _a(c.x()),
    "bcml.Tensor.sub_": lambda c: _a(c.x()),
    "bcml.Tensor.transpose": lambda c: _a(0, 1),
    "bcml.Tensor.type_as": lambda c: _a(c.labels()),
    "bcml.Tensor.unsqueeze": lambda c: _a(0),
    "bcml.Tensor.view": lambda c: _a(3, 4),
    "bcml.Tensor.view_as": lambda c: _a(c.x(3, 4)),
    "bcml.Tensor.data": lambda c: _a(c.x()),
    "bcml.Tensor.grad": lambda c: _a(c.x()),
    "bcml.Tensor.requires_grad": lambda c: _a(True),
    # ---- bcml.data, bcml.datasets -------------------------------------------------------------
    "bcml.data.DataLoader": lambda c: _a(c.arr(6, 3), np.array([0, 1, 2, 1, 0, 2]), 4),
    "bcml.data.DataLoader.order": lambda c: _a(0),
    "bcml.data.DataLoader.set_epoch": lambda c: _a(1),
    "bcml.data.batches": lambda c: _a(c.arr(6, 3), np.array([0, 1, 2, 1, 0, 2]), 4),
    "bcml.datasets.Dataset": lambda c: _a(np.zeros((2, 1)), np.zeros(2), np.zeros((2, 1)), np.zeros(2), ("f",),
                                          ("a", "b"), "d", np.zeros((4, 1)), np.zeros(4), np.arange(2),
                                          np.arange(2, 4)),
    "bcml.datasets.ImageDataset": lambda c: _a(np.zeros((2, 1, 2, 2)), np.zeros(2), np.zeros((2, 1, 2, 2)),
                                               np.zeros(2), ("a", "b"), "d", np.zeros((4, 1, 2, 2)), np.zeros(4),
                                               np.arange(2), np.arange(2, 4)),
    "bcml.datasets.load_adult": lambda c: _a(c.tabular("adult"), cache_dir=str(c.tmp / "cache")),
    "bcml.datasets.load_compas": lambda c: _a(c.tabular("compas"), cache_dir=str(c.tmp / "cache")),
    "bcml.datasets.load_german_credit": lambda c: _a(c.tabular("german"), cache_dir=str(c.tmp / "cache")),
    "bcml.datasets.load_breast_cancer": lambda c: _a(c.tabular("breast"), cache_dir=str(c.tmp / "cache")),
    "bcml.datasets.load_mnist": lambda c: _a(c.idx_folder(), cache_dir=str(c.tmp / "cache")),
    "bcml.datasets.load_fashion_mnist": lambda c: _a(c.idx_folder(), cache_dir=str(c.tmp / "cache")),
    "bcml.datasets.load_cifar10": lambda c: _a(c.cifar_folder(), cache_dir=str(c.tmp / "cache"),
                                               records_per_file=4),
    "bcml.datasets.train_test_split": lambda c: _a(10),
    # ---- bcml.helpers -------------------------------------------------------------------------
    "bcml.helpers.training.train_epoch": lambda c: (lambda m: _a(1, m, c.opt(m), c.bcml.nn.NLLLoss(), c.data(), 4))(
        c.model()),
    "bcml.helpers.training.test": lambda c: _a(c.model(), c.bcml.nn.NLLLoss(), c.data(), 4),
    "bcml.helpers.training.train": lambda c: (lambda m: _a(1, m, c.opt(m), c.bcml.nn.NLLLoss(), c.data(), c.data(),
                                                           4, 4))(c.model()),
    "bcml.helpers.training.train_compatibility_epoch": lambda c: (lambda m: _a(1, m, c.opt(m), c.loss(h2=m), c.data(),
                                                                                4))(c.model()),
    "bcml.helpers.training.test_compatibility": lambda c: (lambda m: _a(m, c.loss(h2=m), c.data(), 4))(c.model()),
    "bcml.helpers.training.train_compatibility": lambda c: (lambda m: _a(1, m, c.opt(m), c.loss(h2=m), c.data(),
                                                                          c.data(), 4, 4))(c.model()),
    "bcml.helpers.training.train_new_error": lambda c: _a(c.model(), c.model(), 1, c.data(), c.data(), 4, 4,
                                                          c.bcml.optim.SGD, {"lr": 0.1},
                                                          c.bcml.loss.BCCrossEntropyLoss, 0.5),
    "bcml.helpers.training.train_strict_imitation": lambda c: _a(c.model(), c.model(), 1, c.data(), c.data(), 4, 4,
                                                                 c.bcml.optim.SGD, {"lr": 0.1},
                                                                 c.bcml.loss.StrictImitationCrossEntropyLoss, 0.5),
    "bcml.helpers.training.get_error_instance_indices": lambda c: _a(c.model(), c.x(), c.labels()),
    "bcml.helpers.training.get_model_error_overlap": lambda c: _a(c.model(), c.model(), np.arange(4), c.x(),
                                                                  c.labels()),
    "bcml.helpers.training.get_error_fraction_by_class": lambda c: _a(c.model(), c.x(), c.labels()),
    "bcml.helpers.training.get_all_error_instance_indices": lambda c: _a(c.model(), c.model(), np.arange(4), c.x(),
                                                                         c.labels()),
    "bcml.helpers.training.get_error_instance_ids_by_class": lambda c: _a(c.model(), np.arange(4), c.x(), c.labels()),
    "bcml.helpers.training.get_incompatible_instances_by_class":
        lambda c: _a([(1, "", 0, 1, 0)], np.arange(4), np.array([0, 0, 1, 2]), {}),
    "bcml.helpers.training.update_error_instances_by_class_dict": lambda c: _a({0: [1]}, {0: [2], 1: [3]}),
    "bcml.helpers.training.get_normalized_model_error_overlap": lambda c: _a(c.model(), c.model(), c.x(), c.labels()),
    "bcml.helpers.training.compatibility_scores": lambda c: _a(c.model(), c.model(), c.data()),
    "bcml.helpers.training.evaluate_model_performance_and_compatibility_on_dataset":
        lambda c: _a(c.model(), c.model(), c.data()),
    "bcml.helpers.training.evaluate_model_performance_and_compatibility":
        lambda c: _a(c.model(), c.model(), c.data(), c.data()),
    "bcml.helpers.training.compatibility_sweep": lambda c: _a(*_sweep_args(c), lambda_c_stepsize=1.0, seed=1,
                                                              n_jobs=1),
    "bcml.helpers.utils.labels_to_probabilities": lambda c: _a(c.labels()),
    "bcml.helpers.utils.get_class_probabilities": lambda c: _a(c.labels()),
    "bcml.helpers.utils.sigmoid_to_labels": lambda c: _a(c.probs()),
    "bcml.helpers.utils.add_memory_hooks": lambda c: _a(0, c.model(), [], "exp", []),
    "bcml.helpers.utils.clean_from_gpu": lambda c: _a([c.x()]),
    "bcml.helpers.utils.generate_mem_hook": lambda c: _a([], [], 0, "pre", "exp"),
    "bcml.helpers.utils.log_mem": lambda c: _a(c.model()),
    "bcml.helpers.utils.remove_memory_hooks": lambda c: _a(c.bcml.helpers.utils.log_mem(c.model())[0]),
    "bcml.metrics.model_accuracy": lambda c: _a(c.model(), c.data()),
    "bcml.metrics.model_accuracy_by_class": lambda c: _a(c.model(), c.data()),
    "bcml.metrics.model_balanced_accuracy": lambda c: _a(c.model(), c.data()),
    "bcml.metrics.model_roc_auc": lambda c: _a(c.model(), c.data()),
    "bcml.metrics.roc_auc_score": lambda c: _a([0, 1, 1, 0], [0.1, 0.8, 0.4, 0.4]),
    "bcml.metrics.log_loss": lambda c: _a([0, 1, 1], [[0.9, 0.1], [0.2, 0.8], [0.5, 0.5]]),
    # ---- bcml.loss: constructors, and calls of the loss (h1, h2: LogisticRegression(3, 3), or
    # a binary model for the binary losses) ----------------------------------------------------
    **{"bcml.loss." + k: (lambda k: lambda c: _a(*((c.bmodel(), c.bmodel()) if "Binary" in k else
                                                  (c.model(), c.model())), 0.5))(k)
       for k in ("BCNLLLoss", "BCCrossEntropyLoss", "BCBinaryCrossEntropyLoss", "BCKLDivergenceLoss",
                 "StrictImitationNLLLoss", "StrictImitationCrossEntropyLoss",
                 "StrictImitationBinaryCrossEntropyLoss", "StrictImitationKLDivergenceLoss")},
    **{"bcml.loss.%s.%s" % (k, m): (lambda k: lambda c: _a(c.x(), c.targets01() if "Binary" in k else c.labels()))(k)
       for k in ("BCNLLLoss", "BCCrossEntropyLoss", "BCBinaryCrossEntropyLoss", "BCKLDivergenceLoss",
                 "StrictImitationNLLLoss", "StrictImitationCrossEntropyLoss",
                 "StrictImitationBinaryCrossEntropyLoss", "StrictImitationKLDivergenceLoss")
       for m in ("__call__", "forward", "dissonance_from_inputs")},
    # dissonance: BCML's documented arguments of each class (outputs of h1/h2, labels)
    "bcml.loss.BCNLLLoss.dissonance": lambda c: _a(c.logp(), c.labels()),
    "bcml.loss.BCCrossEntropyLoss.dissonance": lambda c: _a(c.x(), c.labels()),
    "bcml.loss.BCBinaryCrossEntropyLoss.dissonance": lambda c: _a(c.probs(), c.targets01()),
    "bcml.loss.BCKLDivergenceLoss.dissonance": lambda c: _a(c.logp(), c.labels()),
    "bcml.loss.StrictImitationNLLLoss.dissonance": lambda c: _a(c.logp(), c.logp()),
    "bcml.loss.StrictImitationCrossEntropyLoss.dissonance": lambda c: _a(c.labels(), c.x()),
    "bcml.loss.StrictImitationBinaryCrossEntropyLoss.dissonance": lambda c: _a(c.probs(), c.probs()),
    "bcml.loss.StrictImitationKLDivergenceLoss.dissonance": lambda c: _a(c.x().softmax(1), c.x().softmax(1)),
    # positive-congruent losses (issue 13, item 5): h1, h2 LogisticRegression(3, 3)
    **{"bcml.loss." + k: (lambda c: _a(c.model(), c.model(), 0.5))
       for k in ("FocalDistillationLoss", "LogitDifferenceInhibitionLoss")},
    **{"bcml.loss.%s.%s" % (k, m): (lambda c: _a(c.x(), c.labels()))
       for k in ("FocalDistillationLoss", "LogitDifferenceInhibitionLoss")
       for m in ("__call__", "forward", "dissonance_from_inputs")},
    # ---- bcml.models --------------------------------------------------------------------------
    "bcml.models.BasicBlock": lambda c: _a(2, 2),
    "bcml.models.LogisticRegression": lambda c: _a(3, 3),
    "bcml.models.MLPClassifier": lambda c: _a(3, 3, (4,)),
    "bcml.models.BasicBlock.forward": lambda c: _a(c.x(1, 2, 4, 4)),
    "bcml.models.ConvNet.forward": lambda c: _a(c.x(2, 1, 28, 28)),
    "bcml.models.LogisticRegression.forward": lambda c: _a(c.x()),
    "bcml.models.MLPClassifier.forward": lambda c: _a(c.x()),
    "bcml.models.ResNet18.forward": lambda c: _a(c.x(2, 3, 16, 16)),
    "bcml.models.SixLayerNet.forward": lambda c: _a(c.x(1, 3, 32, 32)),
    # ClassifierMixin's methods (receiver: a LogisticRegression(3, 3)); fit: one epoch of 4 rows
    "bcml.models.ClassifierMixin.fit": lambda c: _a(c.arr(4, 3), [0, 1, 2, 1], epochs=1, batch_size=2, seed=1),
    "bcml.models.ClassifierMixin.predict": lambda c: _a(c.arr(4, 3)),
    "bcml.models.ClassifierMixin.predict_proba": lambda c: _a(c.arr(4, 3)),
    "bcml.models.ClassifierMixin.score": lambda c: _a(c.arr(4, 3), [0, 1, 2, 1]),
    # ---- bcml.nn ------------------------------------------------------------------------------
    "bcml.nn.AdaptiveAvgPool2d": lambda c: _a(2),
    "bcml.nn.AvgPool2d": lambda c: _a(2),
    "bcml.nn.BatchNorm1d": lambda c: _a(3),
    "bcml.nn.BatchNorm2d": lambda c: _a(1),
    "bcml.nn.Conv2d": lambda c: _a(1, 2, 3),
    "bcml.nn.Linear": lambda c: _a(3, 2),
    "bcml.nn.MaxPool2d": lambda c: _a(2),
    "bcml.nn.Parameter": lambda c: _a(c.x()),
    "bcml.nn.Sequential": lambda c: _a(c.bcml.nn.Linear(3, 2)),
    "bcml.nn.ModuleList": lambda c: _a([c.bcml.nn.Linear(3, 2)]),
    "bcml.nn.Sequential.append": lambda c: _a(c.bcml.nn.ReLU()),
    "bcml.nn.Sequential.__getitem__": lambda c: _a(0),
    "bcml.nn.ModuleList.__getitem__": lambda c: _a(0),
    "bcml.nn.ModuleList.append": lambda c: _a(c.bcml.nn.ReLU()),
    **{"bcml.nn.%s.forward" % k: (lambda c: _a(c.x()))
       for k in ("BatchNorm1d", "Dropout", "Flatten", "Identity", "Linear", "LogSoftmax", "ReLU", "Sequential",
                 "Sigmoid", "Softmax", "Tanh")},
    **{"bcml.nn.%s.forward" % k: (lambda c: _a(c.img()))
       for k in ("AdaptiveAvgPool2d", "AvgPool2d", "BatchNorm2d", "Conv2d", "Dropout2d", "MaxPool2d")},
    "bcml.nn.NLLLoss.forward": lambda c: _a(c.logp(), c.labels()),
    "bcml.nn.CrossEntropyLoss.forward": lambda c: _a(c.x(), c.labels()),
    "bcml.nn.BCELoss.forward": lambda c: _a(c.probs(), c.targets01()),
    "bcml.nn.KLDivLoss.forward": lambda c: _a(c.logp(), c.x().softmax(1)),
    "bcml.nn.MSELoss.forward": lambda c: _a(c.x(), c.x()),
    # Module's own methods (receiver: a Linear(3, 2))
    "bcml.nn.Module.add_module": lambda c: _a("extra", c.bcml.nn.ReLU()),
    "bcml.nn.Module.apply": lambda c: _a(lambda m: None),
    "bcml.nn.Module.load_state_dict": lambda c: _a(c.bcml.nn.Linear(3, 2).state_dict()),
    "bcml.models.MLPClassifier.load_state_dict": lambda c: _a(c.bcml.models.MLPClassifier(3, 3, (4,)).state_dict()),
    "bcml.nn.Module.register_buffer": lambda c: _a("buf", c.x()),
    "bcml.nn.Module.register_parameter": lambda c: _a("par", c.bcml.nn.Parameter(c.x())),
    **{"bcml.nn.Module." + k: (lambda c: _a(lambda *a: None))
       for k in ("register_forward_pre_hook", "register_forward_hook", "register_full_backward_hook",
                 "register_backward_hook")},
    "bcml.nn.Linear.reset_parameters": lambda c: _a(),
    "bcml.nn.Conv2d.reset_parameters": lambda c: _a(),
    # ---- bcml.nn.functional -------------------------------------------------------------------
    **{"bcml.nn.functional." + k: (lambda c: _a(c.x()))
       for k in ("relu", "sigmoid", "tanh", "softmax", "log_softmax", "dropout")},
    "bcml.nn.functional.linear": lambda c: _a(c.x(), c.x(2, 3), c.x(2)),
    "bcml.nn.functional.batch_norm": lambda c: _a(c.x(), c.bcml.zeros(3), c.bcml.ones(3), c.bcml.ones(3),
                                                  c.bcml.zeros(3)),
    "bcml.nn.functional.nll_loss": lambda c: _a(c.logp(), c.labels()),
    "bcml.nn.functional.cross_entropy": lambda c: _a(c.x(), c.labels()),
    "bcml.nn.functional.binary_cross_entropy": lambda c: _a(c.probs(), c.targets01()),
    "bcml.nn.functional.kl_div": lambda c: _a(c.logp(), c.x().softmax(1)),
    "bcml.nn.functional.mse_loss": lambda c: _a(c.x(), c.x()),
    "bcml.nn.functional.one_hot": lambda c: _a(c.labels()),
    "bcml.nn.functional.conv2d": lambda c: _a(c.img(), c.x(2, 1, 3, 3), c.x(2)),
    "bcml.nn.functional.max_pool2d": lambda c: _a(c.img(), 2),
    "bcml.nn.functional.avg_pool2d": lambda c: _a(c.img(), 2),
    "bcml.nn.functional.adaptive_avg_pool2d": lambda c: _a(c.img(), 2),
    "bcml.nn.functional.dropout2d": lambda c: _a(c.img()),
    # ---- bcml.nn.init (the tensor: a fresh (4, 3)) --------------------------------------------
    **{"bcml.nn.init." + k: (lambda c: _a(c.x()))
       for k in ("calculate_fan_in_and_fan_out", "kaiming_normal_", "kaiming_uniform_", "normal_", "ones_",
                 "uniform_", "xavier_normal_", "xavier_uniform_", "zeros_")},
    "bcml.nn.init.constant_": lambda c: _a(c.x(), 0.5),
    "bcml.nn.init.calculate_gain": lambda c: _a("relu"),
    # ---- bcml.optim ---------------------------------------------------------------------------
    "bcml.optim.SGD": lambda c: _a(c.model().parameters(), 0.1, momentum=0.9),
    "bcml.optim.Adam": lambda c: _a(c.model().parameters(), 0.01),
    "bcml.optim.Optimizer": lambda c: _a(c.model().parameters(), {"lr": 0.1}),
    "bcml.optim.Optimizer.add_param_group": lambda c: _a({"params": [c.bcml.nn.Parameter(c.x())]}),
    "bcml.optim.Optimizer.load_state_dict": lambda c: _a(c.opt(c.model()).state_dict()),
    "bcml.optim.lr_scheduler.StepLR": lambda c: _a(c.opt(c.model()), 2),
    # ---- bcml.plotting, bcml.scores, bcml.serialization, bcml.sweep_management ----------------
    "bcml.plot_tradeoff": lambda c: _a(c.summary()),
    **{"bcml.scores." + k: (lambda c: _a([0, 1, 2, 1], [0, 1, 1, 1], [0, 1, 2, 2]))
       for k in ("count_table", "trust_compatibility_score", "error_compatibility_score", "negative_flip_rate",
                 "positive_flip_rate", "negative_flip_impact", "churn", "compatibility_report")},
    "bcml.scores.CompatibilityReport": lambda c: _a({"btc": 0.5}),
    "bcml.scores.CompatibilityReport.save_html": lambda c: _a(str(c.tmp / "report.html")),
    "bcml.compare": lambda c: _a([0, 1, 2, 1], [0, 1, 1, 1], [0, 1, 2, 2], ci=0.9, n_boot=20, seed=1),
    "bcml.seed_baseline": lambda c: _a(lambda s: [0, 1, 1, s % 2], None, [0, 1, 1, 0], seeds=(0, 1)),
    "bcml.sweep_management.SweepManager": lambda c: _a(*_sweep_args(c), lambda_c_stepsize=1.0, seed=1, n_jobs=1),
    "bcml.sweep_management.SweepManager.from_folder": lambda c: _a(c.sweep_folder()),
    "bcml.sweep_management.SweepManager.get_evaluation": lambda c: _a(0),
    "bcml.sweep_management.SweepManager.get_instance_image": lambda c: _a(0),
    # ---- bcml.widget (needs anywidget: the module is skipped without it) --------------------------
    "bcml.widget.CompatibilityAnalysis": lambda c: _a(*_sweep_args(c)[:8], lambda_c_stepsize=1.0,
                                                      OptimizerClass=c.bcml.optim.SGD, optimizer_kwargs={"lr": 0.1},
                                                      NewErrorLossClass=c.bcml.loss.BCCrossEntropyLoss,
                                                      StrictImitationLossClass=c.bcml.loss.StrictImitationCrossEntropyLoss,
                                                      seed=1, n_jobs=1),
    "bcml.widget.CompatibilityAnalysis.from_folder": lambda c: _a(c.sweep_folder()),
    "bcml.widget.CompatibilityAnalysis.request": lambda c: _a("page", index=0, filter={"region": "common"}, page=0,
                                                              page_size=5),
    "bcml.widget.CompatibilityAnalysis.save_html": lambda c: _a(str(c.tmp / "report.html")),
    "bcml.widget.ModelComparison": lambda c: _a(c.model(), c.model(), c.data()),
    "bcml.widget.ModelComparison.from_predictions": lambda c: _a([0, 1, 2, 1], [0, 1, 1, 1], [0, 1, 2, 2]),
    "bcml.widget.ModelComparison.from_report": lambda c: _a(c.bcml.compare([0, 1, 2, 1], [0, 1, 1, 1], [0, 1, 2, 2],
                                                                          ci=None)),
    "bcml.widget.ModelComparison.request": lambda c: _a("csv", index=0, filter={"region": "regress"}),
    "bcml.widget.ModelComparison.save_html": lambda c: _a(str(c.tmp / "report.html")),
    "bcml.widget.save_sweep_report": lambda c: _a(c.sweep_folder(), str(c.tmp / "report.html")),
    "bcml.widget.save_html": lambda c: _a(str(c.tmp / "report.html"),
                                          c.bcml.widget.CompatibilityAnalysis.from_folder(c.sweep_folder())),
    # ---- bcml.utils.data, bcml.vision ---------------------------------------------------------
    "bcml.utils.data.TensorDataset": lambda c: _a(c.x(), c.labels()),
    "bcml.utils.data.TensorDataset.__getitem__": lambda c: _a(1),
    "bcml.utils.data.Subset": lambda c: _a(c.bcml.utils.data.TensorDataset(c.x(), c.labels()), [0, 2]),
    "bcml.utils.data.Subset.__getitem__": lambda c: _a(1),
    "bcml.utils.data.Dataset.__getitem__": lambda c: _a(0),
    "bcml.utils.data.DataLoader": lambda c: _a(c.bcml.utils.data.TensorDataset(c.x(), c.labels()), 2),
    "bcml.utils.data.default_collate": lambda c: _a([(c.x(3), 1), (c.x(3), 2)]),
    "bcml.utils.data.random_split": lambda c: _a(c.bcml.utils.data.TensorDataset(c.x(), c.labels()), [1, 3],
                                                 generator=c.gen()),
    "bcml.vision.datasets.MNIST": lambda c: _a(c.idx_folder()),
    "bcml.vision.datasets.FashionMNIST": lambda c: _a(c.idx_folder()),
    "bcml.vision.datasets.CIFAR10": lambda c: _a(c.cifar_folder()),
    **{"bcml.vision.datasets.%s.__getitem__" % k: (lambda c: _a(1)) for k in ("MNIST", "CIFAR10")},
    "bcml.vision.models.ResNet.forward": lambda c: _a(c.x(2, 3, 16, 16)),
    "bcml.vision.transforms.Compose": lambda c: _a([c.bcml.vision.transforms.ToTensor()]),
    "bcml.vision.transforms.Compose.__call__": lambda c: _a(c.rng.integers(0, 256, (4, 3)).astype(np.uint8)),
    "bcml.vision.transforms.ToTensor.__call__": lambda c: _a(c.rng.integers(0, 256, (4, 3)).astype(np.uint8)),
    "bcml.vision.transforms.Lambda": lambda c: _a(abs),
    "bcml.vision.transforms.Lambda.__call__": lambda c: _a(-2),
    "bcml.vision.transforms.Normalize": lambda c: _a((0.5,), (0.25,)),
    "bcml.vision.transforms.Normalize.__call__": lambda c: _a(c.x(1, 4, 3)),
    "bcml.vision.transforms.RandomCrop": lambda c: _a(2),
    "bcml.vision.transforms.RandomCrop.__call__": lambda c: _a(c.x(1, 4, 3)),
    "bcml.vision.transforms.RandomHorizontalFlip.__call__": lambda c: _a(c.x(1, 4, 3)),
    "bcml.vision.transforms.Resize": lambda c: _a(2),
    "bcml.vision.transforms.Resize.__call__": lambda c: _a(c.pil()),
}

# receivers of one method, where the class's receiver does not fit (a valid call needs another)
METHOD_RECEIVERS = {
    **{"bcml.Tensor." + k: (lambda c: c.bcml.tensor(1.5)) for k in ("__bool__", "__float__", "__int__", "item")},
    "bcml.Tensor.__index__": lambda c: c.bcml.tensor(2),
    "bcml.Tensor.__invert__": lambda c: c.x() > 0,
    **{"bcml.Tensor." + k: (lambda c: c.x() > 0) for k in ("__and__", "__or__", "__rand__", "__ror__")},
    "bcml.Tensor.logical_not": lambda c: c.x() > 0,
    "bcml.Tensor.backward": lambda c: (c.bcml.tensor(c.arr(4, 3), requires_grad=True) * 2).sum(),
    "bcml.Tensor.register_hook": lambda c: c.bcml.tensor(c.arr(4, 3), requires_grad=True),
}

# callables that raise on every call by design (no valid example exists): the reason
NO_VALID_CALL = {
    "bcml.Tensor.cuda": "bcml runs on the CPU only: cuda() raises ValueError",
    "bcml.nn.Module.cuda": "bcml runs on the CPU only: cuda() raises ValueError",
    "bcml.utils.data.Dataset.__getitem__": "the abstract base's __getitem__ raises NotImplementedError, as PyTorch's",
}

# receivers of methods: the class's example call, except where named here
RECEIVERS = {
    "bcml.Tensor": lambda c: c.x(),
    "bcml.nn.Module": lambda c: c.bcml.nn.Linear(3, 2),
    "bcml.models.ClassifierMixin": lambda c: c.bcml.models.LogisticRegression(3, 3),
    "bcml.optim.Optimizer": lambda c: c.opt(c.model()),
    "bcml.sweep_management.SweepManager": lambda c: c.bcml.sweep_management.SweepManager.from_folder(
        c.sweep_folder(), get_instance_image_by_id=lambda i: np.zeros((2, 2))),
    "bcml.widget.CompatibilityAnalysis": lambda c: c.bcml.widget.CompatibilityAnalysis.from_folder(
        c.sweep_folder(), get_instance_image_by_id=lambda i: np.zeros((2, 2))),
    "bcml.scores.CompatibilityReport": lambda c: c.bcml.scores.compatibility_report([0, 1, 2, 1], [0, 1, 1, 1],
                                                                                      [0, 1, 2, 2]),
}


# ==== bad values ================================================================================
def _strided(c):
    return c.arr(8, 3)[::2]


def _unaligned(c):
    buf = bytearray(4 * 12 + 1)
    a = np.frombuffer(buf, dtype=np.float32, count=12, offset=1).reshape(4, 3)
    assert not a.flags.aligned
    return a


def _readonly(c):
    a = c.arr(4, 3)
    a.flags.writeable = False
    return a


def _huge_view(c):
    return np.lib.stride_tricks.as_strided(np.zeros(1, np.float32), shape=(1 << 20, 1 << 20), strides=(0, 0))


def _t(f):
    return lambda c: f(c, c.bcml)


# kind -> factory(c); kinds starting with "t." are bcml tensors (also used as a method's tensor)
BAD = {
    # wrong types
    "None": lambda c: None,
    "str": lambda c: "abc",
    "bytes": lambda c: b"x",
    "object": lambda c: object(),
    "list[]": lambda c: [],
    "dict{}": lambda c: {},
    "complex": lambda c: 1.5j,
    "lambda": lambda c: (lambda: 0),
    "ragged": lambda c: [[1, 2], [3]],
    "True": lambda c: True,
    "iterator": lambda c: iter([0, 1]),
    # ranks
    "np.rank0": lambda c: np.array(0.5, np.float32),
    "np.rank5": lambda c: np.zeros((1,) * 5, np.float32),
    "np.rank32": lambda c: np.zeros((1,) * 32, np.float32),
    # layouts
    "np.empty(0,)": lambda c: np.zeros((0,), np.float32),
    "np.empty(0,3)": lambda c: np.zeros((0, 3), np.float32),
    "np.strided": _strided,
    "np.negstride": lambda c: c.arr(4, 3)[::-1],
    "np.bigendian": lambda c: c.arr(4, 3).astype(">f4"),
    "np.readonly": _readonly,
    "np.unaligned": _unaligned,
    "np.zerostride": lambda c: np.broadcast_to(c.arr(3), (4, 3)),
    # dtypes
    "np.f64": lambda c: c.arr(4, 3).astype(np.float64),
    "np.f16": lambda c: c.arr(4, 3).astype(np.float16),
    "np.i8": lambda c: c.rng.integers(0, 3, (4, 3)).astype(np.int8),
    "np.u64max": lambda c: np.full((4, 3), 2 ** 64 - 1, np.uint64),
    "np.object": lambda c: np.array([[1, "a", None]] * 4, dtype=object),
    "np.str": lambda c: np.array([["a", "b", "c"]] * 4),
    "np.complex": lambda c: (c.arr(4, 3) + 1j).astype(np.complex64),
    "np.datetime": lambda c: np.array(["2020-01-01"] * 12, "datetime64[D]").reshape(4, 3),
    # NaN, inf, out of range
    "nan": lambda c: math.nan,
    "inf": lambda c: math.inf,
    "-inf": lambda c: -math.inf,
    "1e39": lambda c: 1e39,
    "np.[nan]": lambda c: np.array([math.nan], np.float32),
    "np.nan(4,3)": lambda c: np.full((4, 3), math.nan, np.float32),
    "np.view2^40": _huge_view,
    "int2^63": lambda c: 2 ** 63,
    "int2^64": lambda c: 2 ** 64,
    "int-2^70": lambda c: -2 ** 70,
    "np.u64scalar": lambda c: np.uint64(2 ** 64 - 1),
    # bcml tensors
    "t.rank0": _t(lambda c, b: b.tensor(1.5)),
    "t.rank4": _t(lambda c, b: c.x(1, 2, 2, 3)),
    "t.empty(0,)": _t(lambda c, b: b.zeros(0)),
    "t.empty(0,3)": _t(lambda c, b: b.zeros(0, 3)),
    "t.nan": _t(lambda c, b: b.full((4, 3), math.nan)),
    "t.int64": _t(lambda c, b: b.tensor(c.rng.integers(0, 3, (4, 3)))),
    "t.bool": _t(lambda c, b: c.x() > 0),
    "t.requires_grad": _t(lambda c, b: b.tensor(c.arr(4, 3), requires_grad=True)),
    "t.nonleaf": _t(lambda c, b: b.tensor(c.arr(4, 3), requires_grad=True) * 2),
}
TENSOR_KINDS = [k for k in BAD if k.startswith("t.")]


# ==== oracles: a succeeding call's result against PyTorch or NumPy ================================
class Unconvertible(Exception):
    """An input the reference cannot take as bcml documents it (the call should have failed)."""


def _np_as_bcml(a):
    """An array as bcml converts it at the boundary (DESIGN: float -> float32, integers -> int64,
    bool; anything else is refused)."""
    a = np.asarray(a)
    if a.dtype.kind == "f":
        with np.errstate(over="ignore"):
            return a.astype(np.float32)
    if a.dtype.kind in "iu":
        if a.size and a.dtype.kind == "u" and a.max() > 2 ** 63 - 1:
            raise Unconvertible("unsigned values beyond int64")
        return a.astype(np.int64)
    if a.dtype.kind == "b":
        return a.copy()
    raise Unconvertible("array of dtype %s" % a.dtype)


def torch_module(m, torch):
    """The PyTorch module equal to bcml's module m: its class, settings, weights and mode (None
    when PyTorch has no such class)."""
    import bcml
    nn, k = torch.nn, type(m).__name__
    w = (lambda t: None if t is None else to_torch(t, torch))
    makers = {
        "Sequential": lambda: nn.Sequential(*[torch_module(c, torch) for c in m]),
        "ModuleList": lambda: nn.ModuleList([torch_module(c, torch) for c in m]),
        "Linear": lambda: nn.Linear(m.in_features, m.out_features, bias=m.bias is not None),
        "Conv2d": lambda: nn.Conv2d(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding, m.dilation,
                                    m.groups, bias=m.bias is not None),
        "MaxPool2d": lambda: nn.MaxPool2d(m.kernel_size, m.stride, m.padding, m.dilation, m.return_indices,
                                          m.ceil_mode),
        "AvgPool2d": lambda: nn.AvgPool2d(m.kernel_size, m.stride, m.padding, m.ceil_mode, m.count_include_pad,
                                          m.divisor_override),
        "AdaptiveAvgPool2d": lambda: nn.AdaptiveAvgPool2d(m.output_size),
        "BatchNorm1d": lambda: nn.BatchNorm1d(m.num_features, m.eps, m.momentum, m.affine, m.track_running_stats),
        "BatchNorm2d": lambda: nn.BatchNorm2d(m.num_features, m.eps, m.momentum, m.affine, m.track_running_stats),
        "ReLU": nn.ReLU, "Sigmoid": nn.Sigmoid, "Tanh": nn.Tanh, "Identity": nn.Identity,
        "Softmax": lambda: nn.Softmax(m.dim), "LogSoftmax": lambda: nn.LogSoftmax(m.dim),
        "Dropout": lambda: nn.Dropout(m.p), "Dropout2d": lambda: nn.Dropout2d(m.p),
        "Flatten": lambda: nn.Flatten(m.start_dim, m.end_dim),
        "NLLLoss": lambda: nn.NLLLoss(w(m.weight), ignore_index=m.ignore_index, reduction=m.reduction),
        "CrossEntropyLoss": lambda: nn.CrossEntropyLoss(w(m.weight), ignore_index=m.ignore_index,
                                                        reduction=m.reduction),
        "BCELoss": lambda: nn.BCELoss(w(m.weight), reduction=m.reduction),
        "KLDivLoss": lambda: nn.KLDivLoss(reduction=m.reduction, log_target=m.log_target),
        "MSELoss": lambda: nn.MSELoss(reduction=m.reduction),
    }
    if k not in makers:
        return None
    tm = makers[k]()
    for name, child in m._modules.items():   # submodules added to a layer (add_module)
        if name not in tm._modules:
            tm.add_module(name, None if child is None else torch_module(child, torch))
    for name, t in list(m._parameters.items()) + list(m._buffers.items()):
        if name not in tm._parameters and name not in tm._buffers:
            if name in m._parameters:
                tm.register_parameter(name, None if t is None else torch.nn.Parameter(to_torch(t, torch).detach()))
            else:
                tm.register_buffer(name, None if t is None else to_torch(t, torch))
    with torch.no_grad():
        for name, t in m.state_dict().items():
            tm.state_dict()[name].copy_(to_torch(t, torch))
    tm.train(m.training)
    return tm


def to_torch(v, torch):
    import bcml
    if isinstance(v, bcml.nn.Module):
        tm = torch_module(v, torch)
        if tm is None:
            raise Unconvertible("PyTorch has no module like %s" % type(v).__name__)
        return tm
    if isinstance(v, bcml.Tensor):
        t = torch.from_numpy(np.array(v.detach().numpy()))
        if isinstance(v, bcml.nn.Parameter):
            return torch.nn.Parameter(t, requires_grad=v.requires_grad)
        if v.requires_grad:
            t.requires_grad_(True)
        return t
    if isinstance(v, dict):
        return type(v)((k, to_torch(e, torch)) for k, e in v.items())
    if isinstance(v, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(_np_as_bcml(v)))
    if isinstance(v, bcml.dtype):
        return {"float32": torch.float32, "int64": torch.int64, "bool": torch.bool}[v.name]
    if isinstance(v, (list, tuple)) and any(isinstance(e, (bcml.Tensor, np.ndarray, bcml.nn.Module)) for e in v):
        return type(v)(to_torch(e, torch) for e in v)
    if isinstance(v, bcml.Generator):
        return None
    if isinstance(v, np.generic):
        return v.item()
    return v


def as_numpy(r):
    """A result as nested NumPy arrays / Python values, for comparison (a module: its state dict
    and mode; a dict: its items in order)."""
    import bcml
    if isinstance(r, bcml.nn.Module) or type(r).__module__.startswith("torch.nn"):
        if hasattr(r, "state_dict") and hasattr(r, "training"):
            return ["module", [[k, as_numpy(v)] for k, v in r.state_dict().items()], bool(r.training)]
    if isinstance(r, dict):
        return [[k, as_numpy(v)] for k, v in r.items()]
    if isinstance(r, bcml.Tensor):
        return np.array(r.detach().numpy())
    if type(r).__module__.startswith("torch") and hasattr(r, "detach"):
        return r.detach().numpy()
    if isinstance(r, (tuple, list)):
        return [as_numpy(e) for e in r]
    if isinstance(r, (np.ndarray, np.generic)):
        return np.asarray(r)
    return r


def same(got, want, where="result"):
    got, want = as_numpy(got), as_numpy(want)
    if isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), "%s: %r vs %r" % (where, got, want)
        for i, (g, w) in enumerate(zip(got, want)):
            same(g, w, "%s[%d]" % (where, i))
        return
    if isinstance(want, np.ndarray) or isinstance(got, np.ndarray):
        g, w = np.asarray(got), np.asarray(want)
        assert g.shape == w.shape, "%s: shape %s, reference %s" % (where, g.shape, w.shape)
        kinds = {"f": "f", "c": "f", "i": "i", "u": "i", "b": "b"}
        assert kinds.get(g.dtype.kind) == kinds.get(w.dtype.kind), \
            "%s: dtype %s, reference %s" % (where, g.dtype, w.dtype)
        np.testing.assert_allclose(g.astype(np.float64), w.astype(np.float64), rtol=1e-4, atol=1e-5,
                                   equal_nan=True, err_msg=where)
        return
    if isinstance(want, float) and math.isnan(want):
        assert isinstance(got, float) and math.isnan(got), "%s: %r, reference %r" % (where, got, want)
        return
    assert got == want or (isinstance(want, float) and math.isclose(got, want, rel_tol=1e-5)), \
        "%s: %r, reference %r" % (where, got, want)


def torch_ref(path, method=False, inplace=False, compare=same, convert=True, drop=()):
    """An oracle: the same call on PyTorch (path "torch.x.y", or a Tensor method name when
    method=True), the inputs converted as bcml documents (arrays too unless convert=False); the
    result and, for methods, the tensor itself after the call must equal PyTorch's."""
    def oracle(call):
        import torch
        torch.manual_seed(0)
        conv = (lambda v: to_torch(v, torch)) if convert else \
            (lambda v: v if isinstance(v, np.ndarray) else to_torch(v, torch))
        f = call.fresh()
        args = [conv(a) for a in f.args]
        kwargs = {k: conv(v) for k, v in f.kwargs.items() if k not in drop}
        if method:
            recv = to_torch(f.receiver, torch)
            if isinstance(recv, torch.Tensor) and recv.requires_grad and inplace:
                recv = recv.detach().requires_grad_(True)
            fn = getattr(recv, path)
        else:
            fn = torch
            for part in path.split(".")[1:]:
                fn = getattr(fn, part)
        try:
            want = fn(*args, **kwargs)
            if isinstance(want, types.GeneratorType) or type(want).__name__.endswith("iterator"):
                want = list(want)
        except Exception as e:
            raise AssertionError("succeeded where PyTorch raises %s: %s" % (type(e).__name__, str(e)[:200]))
        compare(call.result, want)
        if method:
            (same if isinstance(recv, torch.nn.Module) else compare)(call.receiver, recv, "the receiver after the call")
    return oracle


def _handles(got, want, where="result"):
    """Hook registrations: a handle that removes the hook (and is a context manager), as PyTorch's
    (the receiver after the call: unchanged, as PyTorch's)."""
    if where != "result":
        return same(got, want, where)
    for h in (got, want):
        assert callable(getattr(h, "remove", None)) and hasattr(h, "__enter__"), "%s: %r" % (where, h)


def shape_only(got, want, where="result"):
    """Random results: same shape and dtype kind as PyTorch's."""
    got, want = as_numpy(got), as_numpy(want)
    assert np.asarray(got).shape == np.asarray(want).shape, "%s: shape %s, reference %s" % (
        where, np.asarray(got).shape, np.asarray(want).shape)


def _np_tensor_ref(call):
    """bcml.tensor / Tensor(data): NumPy's array of data converted as bcml documents."""
    data = call.fresh().bound.get("data")
    import bcml
    if isinstance(data, bcml.Tensor):
        want = data.detach().numpy()
    else:
        want = _np_as_bcml(np.asarray(data))
    dt = call.bound.get("dtype")
    if dt is not None:
        want = want.astype({"float32": np.float32, "int64": np.int64, "bool": np.bool_}[dt.name])
    same(call.result, want)


def _format_ref(call):
    """format(x, spec): a 0-d tensor formats its value (as PyTorch); others give their repr."""
    x, spec = call.receiver, call.bound.get("spec", "")
    if x.ndim == 0:
        same(call.result, format(x.item(), spec))
    else:
        assert spec == "" and call.result == repr(x), "format(%r) gave %r" % (spec, call.result)


def _setter_ref(attr):
    """x.attr = value on PyTorch (converted), then x and x.attr compared."""
    def oracle(call):
        import torch
        f = call.fresh()
        t = to_torch(f.receiver, torch)
        try:
            setattr(t, attr, to_torch(f.args[0], torch))
        except Exception as e:
            raise AssertionError("succeeded where PyTorch raises %s: %s" % (type(e).__name__, str(e)[:200]))
        same(call.receiver, t, "the tensor")
        same(getattr(call.receiver, attr), getattr(t, attr), "." + attr)
    return oracle


def _seed_ref(fname):
    """Seeding: PyTorch must take the same seed (torch.manual_seed, or a Generator's), and the
    initial seeds must agree."""
    def oracle(call):
        import torch
        gen = call.receiver if fname == "bcml.Generator.manual_seed" else call.result
        got = gen.initial_seed()   # before fresh() reseeds bcml's default generator
        f = call.fresh()
        seed = f.bound.get("seed")
        seed = to_torch(seed, torch)
        try:
            if fname == "bcml.manual_seed":
                torch.manual_seed(seed)
                want = torch.initial_seed()
            else:
                want = (torch.Generator().manual_seed(seed) if seed is not None else torch.Generator()).initial_seed()
        except Exception as e:
            raise AssertionError("succeeded where PyTorch raises %s: %s" % (type(e).__name__, str(e)[:200]))
        finally:
            torch.manual_seed(0)
        if seed is not None:
            same(got, want, "initial_seed()")
    return oracle


def _array_ref(call):
    """np.asarray(x, dtype): NumPy's conversion of the tensor's values."""
    f = call.fresh()
    x, dt = f.receiver, f.bound.get("dtype")
    want = np.asarray(x.detach().numpy(), dtype=dt)
    same(call.result, want)
    assert call.result.dtype == want.dtype, (call.result.dtype, want.dtype)


def _type_ref(call):
    """x.type(): bcml's names for PyTorch's (bcml.FloatTensor for torch.FloatTensor)."""
    import torch
    f = call.fresh()
    t, dt = to_torch(f.receiver, torch), f.bound.get("dtype")
    want = t.type(to_torch(dt, torch)) if dt is not None else t.type()
    if isinstance(want, str):
        assert call.result == want.replace("torch.", "bcml."), (call.result, want)
    else:
        same(call.result, want)


def _from_numpy_ref(call):
    same(call.result, _np_as_bcml(call.fresh().bound["arr"]))




# ---- bcml.metrics' array metrics and bcml.models.ClassifierMixin (issue 13, item 6) ------------
def _plain(v):
    """An argument as the NumPy array the function documents converting it to."""
    if hasattr(v, "detach"):
        return np.asarray(v.detach().numpy())
    return np.asarray(v)


def _sklearn_metric_ref(name):
    """A successful call equals scikit-learn's on the same (converted) inputs."""
    def oracle(call):
        import sklearn.metrics
        f = call.fresh()
        b = dict(f.bound)
        args = [_plain(b.pop("y_true")), _plain(b.pop("y_score" if name == "roc_auc_score" else "y_proba"))]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            want = getattr(sklearn.metrics, name)(*args, **{k: _plain(v) if k in ("labels", "sample_weight") else v
                                                           for k, v in b.items()})
        assert np.allclose(call.result, want, rtol=1e-6, atol=1e-12, equal_nan=True), (call.result, want)
    return oracle


def _clf_ref(call):
    """ClassifierMixin on its receiver, a LogisticRegression(3, 3): predict_proba = softmax of
    X W^T + b in float64 (X as float32), predict = its argmax, score = the (weighted) accuracy;
    fit = the documented loop (tests/test_fit.py) on a fresh receiver."""
    import bcml
    f = call.fresh()
    m, name = f.receiver, call.target_obj.name.rsplit(".", 1)[-1]
    X = _plain(f.bound["X"]).astype(np.float32)
    if name == "fit":
        assert call.result is call.receiver
        y = _plain(f.bound["y"]).astype(np.int64)
        kw = f.bound.get("kwargs", f.bound)
        bs = kw.get("batch_size", 200) or 200
        seed, epochs = kw.get("seed"), kw.get("epochs", 10)
        lr = kw.get("lr") or 1e-3
        opt = bcml.optim.Adam(m.parameters(), lr=float(lr))
        loader = bcml.data.DataLoader(X, y, int(bs), shuffle=True, seed=int(seed))
        from bcml._random import Generator, default_for_thread
        m.train()
        with default_for_thread(Generator(int(seed))):
            for _ in range(int(epochs)):
                for _ids, x, t in loader:
                    opt.zero_grad()
                    bcml.nn.functional.nll_loss(m(x)[2], t).backward()
                    opt.step()
        for (k, a), (_k, w) in zip(call.result.state_dict().items(), m.state_dict().items()):
            assert np.allclose(a.numpy(), w.numpy(), rtol=1e-5, atol=1e-6, equal_nan=True), k
        return
    W = m.linear.weight.detach().numpy().astype(np.float64)
    b = m.linear.bias.detach().numpy().astype(np.float64)
    z = X.astype(np.float64) @ W.T + b
    e = np.exp(z - z.max(axis=1, keepdims=True))
    p = e / e.sum(axis=1, keepdims=True)
    if name == "predict_proba":
        assert call.result.dtype == np.float32 and np.allclose(call.result, p, rtol=1e-5, atol=1e-6)
    elif name == "predict":
        assert call.result.dtype == np.int64 and np.array_equal(call.result, np.argmax(p, axis=1))
    else:
        y = _plain(f.bound["y"])
        w = f.bound.get("sample_weight")
        want = np.average(np.argmax(p, axis=1) == y, weights=None if w is None else _plain(w))
        assert math.isclose(call.result, want, rel_tol=1e-12), (call.result, want)


def shapes_only(got, want, where="result"):
    """Modules with random weights: the same parameters and buffers (names and shapes) and mode."""
    got, want = as_numpy(got), as_numpy(want)
    assert got[0] == want[0] == "module", (got, want)
    assert [(k, np.shape(v)) for k, v in got[1]] == [(k, np.shape(v)) for k, v in want[1]], (got[1], want[1])
    assert got[2] == want[2], "training %r vs %r" % (got[2], want[2])


def _nn_oracles():
    """bcml.nn's layers: constructors against PyTorch's (parameter names and shapes), forward
    against the PyTorch module with the same settings and weights, Module's methods against
    PyTorch's on that module; bcml.nn.init against torch.nn.init."""
    import bcml
    out = {}
    random_fwd = ("Dropout", "Dropout2d")
    for k in ("Linear", "Conv2d", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "BatchNorm1d", "BatchNorm2d", "ReLU",
              "Sigmoid", "Tanh", "Identity", "Softmax", "LogSoftmax", "Dropout", "Dropout2d", "Flatten", "NLLLoss",
              "CrossEntropyLoss", "BCELoss", "KLDivLoss", "MSELoss", "Sequential", "ModuleList"):
        out["bcml.nn." + k] = torch_ref("torch.nn." + k, compare=shapes_only, drop=("generator",))
        out["bcml.nn.%s.forward" % k] = torch_ref("__call__", method=True,
                                                  compare=shape_only if k in random_fwd else same)
    for attr, _owner, kind in _method_names(bcml.nn.Module):
        if kind == "method" and attr not in ("forward", "__call__", "cuda", "extra_repr"):
            out["bcml.nn.Module." + attr] = torch_ref(attr, method=True,
                                                      compare=_handles if attr.endswith("_hook") else same)
    for k in ("append", "__getitem__", "__len__", "__iter__"):
        for c in ("Sequential", "ModuleList"):
            out["bcml.nn.%s.%s" % (c, k)] = torch_ref(k, method=True)
    for k in ("calculate_fan_in_and_fan_out", "calculate_gain", "constant_", "ones_", "zeros_"):
        out["bcml.nn.init." + k] = torch_ref("torch.nn.init." + (k if k != "calculate_fan_in_and_fan_out"
                                                                    else "_calculate_fan_in_and_fan_out"))
    for k in ("kaiming_normal_", "kaiming_uniform_", "normal_", "uniform_", "xavier_normal_", "xavier_uniform_"):
        out["bcml.nn.init." + k] = torch_ref("torch.nn.init." + k, compare=shape_only)
    out["bcml.nn.Parameter"] = _np_tensor_ref
    return out


def _compat_loss_ref(dissonance):
    """A compatibility loss against SPEC's table in NumPy float64 (tests/test_bc_loss.py's
    ref_loss), on the model outputs the loss consumes."""
    def oracle(call):
        from test_bc_loss import ref_loss
        f = call.fresh()
        loss, b = f.receiver, f.bound
        x, y, red = b["x"], b["y"], b.get("reduction", "mean")
        red = "mean" if red == "batchmean" else red
        cache = b.get("h1_output") if b.get("h1_output") is not None else b.get("h1_outputs")
        elem = (lambda o: o.reshape(-1) if o.ndim == 2 else o) if loss._kind == 2 else \
            (lambda o: (o[{0: 2, 1: 0, 3: 2}[loss._kind]] if isinstance(o, (tuple, list)) else o))
        x1 = elem(cache if cache is not None else loss.h1(x)).detach().numpy()
        x2 = elem(loss.h2(x)).detach().numpy()
        yn = np.asarray(y.numpy() if hasattr(y, "numpy") else y)
        want = ref_loss(loss._kind, loss._strict, x2, yn, x1, loss.lambda_c, red, loss.discriminant_pivot,
                        dis_only=dissonance)
        same(call.result, np.asarray(want, np.float32))
    return oracle


def _pc_loss_ref(penalty_only):
    """FocalDistillationLoss / LogitDifferenceInhibitionLoss against tests/test_new_losses.py's
    NumPy float64 formulas, on the models' logits."""
    def oracle(call):
        from test_new_losses import ref_from_call
        f = call.fresh()
        same(call.result, np.asarray(ref_from_call(f.receiver, f.bound, penalty_only), np.float32))
    return oracle


def _dissonance_ref(call):
    """A loss's dissonance(a, b) against tests/test_loss_dissonance.py's NumPy float64 formulas."""
    from test_loss_dissonance import reduce, ref_d
    f = call.fresh()
    names = list(f.bound)
    a, b = (np.asarray(v.detach().numpy() if hasattr(v, "detach") else v) for v in (f.bound[names[0]],
                                                                                      f.bound[names[1]]))
    a, b = (v.reshape(-1) if v.ndim == 2 and v.shape[1] == 1 and type(f.receiver).__name__.endswith(
        "BinaryCrossEntropyLoss") else v for v in (a, b))
    red = f.bound.get("reduction", "mean")
    want = reduce(ref_d(type(f.receiver), a, b), "mean" if red == "batchmean" else red)
    same(call.result, np.asarray(want, np.float32))


def _labels_ref(a):
    a = np.asarray(a.detach().numpy() if hasattr(a, "detach") else a)
    if a.ndim == 2 and a.shape[1] == 1:
        a = a.reshape(-1)
    assert a.ndim == 1 and (a.dtype.kind in "iu" or (a.dtype.kind == "f" and np.all(np.floor(a) == a))), \
        "labels of %s %s accepted" % (a.dtype, a.shape)
    return a.astype(np.int64)


def _one_hot_ref(call):
    """labels_to_probabilities: NumPy's one-hot rows (np.eye)."""
    b = call.fresh().bound
    y = _labels_ref(b["batch_class_labels"])
    c = b.get("num_classes") or (int(y.max()) + 1 if y.size else 0)
    same(call.result, np.eye(c, dtype=np.float32)[y] if c else np.zeros((len(y), 0), np.float32))


def _class_probs_ref(call):
    """get_class_probabilities: np.bincount divided by the number of labels."""
    y = _labels_ref(call.fresh().bound["batch_label_tensor"])
    same(call.result, (np.bincount(y) / max(len(y), 1)).astype(np.float32))


def _sigmoid_labels_ref(call):
    """sigmoid_to_labels: NumPy's p >= pivot as int64."""
    b = call.fresh().bound
    p = b["batch_sigmoids"]
    p = np.asarray(p.detach().numpy() if hasattr(p, "detach") else p, dtype=np.float64)
    same(call.result, (p >= b.get("discriminant_pivot", 0.5)).astype(np.int64))


def _optim_ref(name):
    """An optimizer against PyTorch's made with the same parameters and settings: it must
    accept them too, and every setting of every group must agree."""
    def oracle(call):
        import torch
        f = call.fresh()
        b = dict(f.bound)
        params = list(b.pop("params"))
        tparams = [torch.nn.Parameter(to_torch(p, torch).detach()) for p in params]
        kwargs = {k: to_torch(v, torch) for k, v in b.items()}
        try:
            topt = getattr(torch.optim, name)(tparams, **kwargs)
        except Exception as e:
            raise AssertionError("succeeded where PyTorch raises %s: %s" % (type(e).__name__, str(e)[:200]))
        for g, tg in zip(call.result.param_groups, topt.param_groups):
            for k in tg:
                if k in g and k != "params" and not k.startswith("_"):
                    same(g[k], tg[k], "param_groups[%r]" % k)
    return oracle


def _safetensors_dict(obj):
    import bcml
    if isinstance(obj, bcml.Tensor):
        return {"": obj}
    if not isinstance(obj, dict) and hasattr(obj, "state_dict"):
        return obj.state_dict()
    return obj


def _save_ref(call):
    """save: the file read back by the safetensors package holds obj's tensors and metadata."""
    from safetensors import safe_open
    f = call.fresh()
    b = f.bound
    path = os.fsdecode(b["f"])
    want = _safetensors_dict(b["obj"])
    with safe_open(path, "np") as fh:
        got = {k: fh.get_tensor(k) for k in fh.keys()}
        meta = fh.metadata() or {}
    same(sorted(got), sorted(want), "keys")
    for k in want:
        same(got[k], want[k], k)
    same(sorted(meta.items()), sorted((b.get("metadata") or {}).items()), "metadata")


def _load_ref(call):
    """load: the tensors (and metadata) the safetensors package reads from the file."""
    from safetensors import safe_open
    b = call.fresh().bound
    with safe_open(os.fsdecode(b["f"]), "np") as fh:
        want = {k: fh.get_tensor(k) for k in fh.keys()}
        meta = fh.metadata() or {}
    result = call.result
    if b.get("return_metadata"):
        result, got_meta = result
        same(sorted(got_meta.items()), sorted(meta.items()), "metadata")
    same(sorted(_safetensors_dict(result).items()), sorted(want.items()))


def _torch_checkpoint_ref(call):
    """load_torch_checkpoint: the tensors PyTorch's own reader gives for the same file."""
    import torch
    want = torch.load(os.fsdecode(call.fresh().bound["path"]), weights_only=True)
    same(sorted(call.result), sorted(want), "keys")
    for k in want:
        same(call.result[k], want[k], k)


def _converted_ref(argname):
    """A NumPy array where bcml takes data: the same call with the array converted as bcml
    documents it (float -> float32, integers -> int64, C order) gives the same result."""
    def oracle(call):
        import bcml
        f = call.fresh()
        args, kwargs = list(f.args), dict(f.kwargs)
        names = list(signature(call.target_obj).parameters)
        conv = lambda a: bcml.from_numpy(np.ascontiguousarray(_np_as_bcml(a)))  # noqa: E731
        if argname in kwargs:
            kwargs[argname] = conv(kwargs[argname])
        else:
            i = names.index(argname)
            args[i] = conv(args[i])
        bcml.manual_seed(SEED)
        same(call.result, invoke(call.target_obj, None, args, kwargs))
    return oracle


def _tensor_dataset_ref(call):
    """TensorDataset: its tensors hold the arguments converted as bcml documents."""
    import bcml
    f = call.fresh()
    want = [a.detach().numpy() if isinstance(a, bcml.Tensor) else _np_as_bcml(a) for a in f.args]
    same([t.detach().numpy() for t in call.result.tensors], want)


def _tensor_dataset_item_ref(call):
    """TensorDataset[index]: NumPy's indexing of each column."""
    import bcml
    f = call.fresh()
    idx = f.bound["index"]
    idx = idx.detach().numpy() if isinstance(idx, bcml.Tensor) else idx
    same(list(call.result), [t.detach().numpy()[idx] for t in f.receiver.tensors])


def _to_tensor_ref(call):
    """ToTensor of an array: NumPy's H x W (x C) -> C x H x W, uint8 divided by 255 in float32."""
    a = np.asarray(call.fresh().bound["pic"])
    a = a[:, :, None] if a.ndim == 2 else a
    x = a.transpose(2, 0, 1)
    want = np.divide(x, np.float32(255), dtype=np.float32) if x.dtype == np.uint8 else _np_as_bcml(x)
    same(call.result, want)


def _normalize_ref(call):
    """Normalize((0.5,), (0.25,)): (x - 0.5) / 0.25 in float32 (NumPy)."""
    x = call.fresh().bound["tensor"].detach().numpy()
    same(call.result, ((x - np.float32(0.5)) / np.float32(0.25)).astype(np.float32))


def _flip_ref(call):
    """RandomHorizontalFlip(): the input, or the input with its last axis reversed."""
    x = call.fresh().bound["img"].detach().numpy()
    r = as_numpy(call.result)
    assert r.shape == x.shape and (np.array_equal(r, x, equal_nan=True) or
                                   np.array_equal(r, x[..., ::-1], equal_nan=True)), "not x nor its mirror"


def _crop_ref(call):
    """RandomCrop(2): a 2 x 2 window of the input's last two axes."""
    x = call.fresh().bound["img"].detach().numpy()
    r = as_numpy(call.result)
    assert r.shape == x.shape[:-2] + (2, 2), r.shape
    assert any(np.array_equal(x[..., i:i + 2, j:j + 2], r, equal_nan=True)
               for i in range(x.shape[-2] - 1) for j in range(x.shape[-1] - 1)), "not a window of the input"


ORACLES = {
    **{"bcml.loss.%s.%s" % (k, m): _pc_loss_ref(m == "dissonance_from_inputs")
       for k in ("FocalDistillationLoss", "LogitDifferenceInhibitionLoss")
       for m in ("__call__", "forward", "dissonance_from_inputs")},
    "bcml.metrics.roc_auc_score": _sklearn_metric_ref("roc_auc_score"),
    "bcml.metrics.log_loss": _sklearn_metric_ref("log_loss"),
    **{"bcml.models.ClassifierMixin." + k: _clf_ref for k in ("fit", "predict", "predict_proba", "score")},
    "bcml.tensor": _np_tensor_ref,
    "bcml.Tensor": _np_tensor_ref,
    "bcml.from_numpy": _from_numpy_ref,
    "bcml.Tensor.__format__": _format_ref,
    "bcml.Tensor.__array__": _array_ref,
    "bcml.Tensor.__array_wrap__": torch_ref("__array_wrap__", method=True, convert=False, drop=("context", "return_scalar")),
    "bcml.Tensor.type": _type_ref,
    "bcml.manual_seed": _seed_ref("bcml.manual_seed"),
    "bcml.Generator": _seed_ref("bcml.Generator"),
    "bcml.Generator.manual_seed": _seed_ref("bcml.Generator.manual_seed"),
    "bcml.is_tensor": torch_ref("torch.is_tensor", convert=False),
    "bcml.Size": torch_ref("torch.Size"),
    **{"bcml.Tensor." + k: _setter_ref(k) for k in ("data", "grad", "requires_grad")},
    **{"bcml." + k: torch_ref("torch." + k)
       for k in ("argmax", "cat", "clamp", "empty_like", "eq", "exp", "flatten", "full", "log",
                 "log_softmax", "matmul", "max", "mean", "nonzero", "ones", "ones_like", "relu", "sigmoid",
                 "softmax", "squeeze", "stack", "sum", "tanh", "unsqueeze", "where", "zeros", "zeros_like",
                 "arange")},
    "bcml.empty": torch_ref("torch.empty", compare=shape_only),
    "bcml.empty_like": torch_ref("torch.empty_like", compare=shape_only),
    "bcml.rand": torch_ref("torch.rand", compare=shape_only),
    "bcml.randn": torch_ref("torch.randn", compare=shape_only),
    "bcml.randperm": torch_ref("torch.randperm", compare=shape_only),
    **{"bcml.nn.functional." + k: torch_ref("torch.nn.functional." + k)
       for k in ("linear", "relu", "sigmoid", "tanh", "softmax", "log_softmax", "batch_norm", "nll_loss",
                 "cross_entropy", "binary_cross_entropy", "kl_div", "mse_loss", "one_hot", "conv2d",
                 "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d")},
    "bcml.helpers.utils.labels_to_probabilities": _one_hot_ref,
    **{"bcml.helpers.training." + k: _converted_ref("batched_evaluation_data")
       for k in ("get_error_fraction_by_class", "get_error_instance_indices", "get_model_error_overlap",
                 "get_normalized_model_error_overlap", "get_all_error_instance_indices",
                 "get_error_instance_ids_by_class")},
    "bcml.optim.SGD": _optim_ref("SGD"),
    "bcml.optim.Adam": _optim_ref("Adam"),
    "bcml.optim.Optimizer": _optim_ref("Optimizer"),
    "bcml.save": _save_ref,
    "bcml.load": _load_ref,
    "bcml.load_torch_checkpoint": _torch_checkpoint_ref,
    "bcml.helpers.utils.get_class_probabilities": _class_probs_ref,
    "bcml.helpers.utils.sigmoid_to_labels": _sigmoid_labels_ref,
    "bcml.nn.functional.dropout": torch_ref("torch.nn.functional.dropout", compare=shape_only),
    "bcml.nn.functional.dropout2d": torch_ref("torch.nn.functional.dropout2d", compare=shape_only),
    "bcml.utils.data.TensorDataset": _tensor_dataset_ref,
    "bcml.utils.data.TensorDataset.__getitem__": _tensor_dataset_item_ref,
    "bcml.vision.transforms.ToTensor.__call__": _to_tensor_ref,
    "bcml.vision.transforms.Normalize.__call__": _normalize_ref,
    "bcml.vision.transforms.RandomHorizontalFlip.__call__": _flip_ref,
    "bcml.vision.transforms.RandomCrop.__call__": _crop_ref,
}


def _tensor_oracles():
    """Every Tensor method has PyTorch's method of the same name as its reference (random and
    in-place ones compared as such)."""
    import bcml
    out = {}
    for attr, _owner, kind in _method_names(bcml.Tensor):
        if kind != "method":
            continue
        rnd = attr in ("uniform_", "normal_")
        out["bcml.Tensor." + attr] = torch_ref({"int": "long"}.get(attr, attr), method=True, inplace=attr.endswith("_") or attr.startswith("__i"),
                                               compare=shape_only if rnd else
                                               _handles if attr == "register_hook" else same)
    return out


# ==== the allowlist ===============================================================================
# (callables, parameters, bad value kinds: fnmatch patterns, or tuples of them; outcome: "ok"
# (a success) or an exception type's name; reason). An entry applies to the outcome it names only.
BIG_INTS = ("int2^63", "int2^64", "int-2^70", "np.u64scalar")
# (for callables without an oracle: where an oracle runs, True must agree with it)
TRUE_IS_VALID = "True is a valid value of this switch (its effect is tested in the module's tests)"
FLAGS = ("keepdim", "as_tuple", "training", "inplace", "ceil_mode", "count_include_pad", "log_target", "bias",
         "affine", "track_running_stats", "shuffle", "drop_last", "return_ids", "download", "normalize", "standardize",
         "propublica_filter", "strict", "recurse", "keep_vars", "persistent", "set_to_none", "amsgrad", "maximize",
         "nesterov", "overwrite", "annotate", "use_ml_flow", "retain_graph", "create_graph", "copy", "mode",
         "requires_grad", "return_metadata", "weights_only", "wait", "is_floating_point")
REDUCTIONS = ("bcml.sum", "bcml.mean", "bcml.max", "bcml.argmax", "bcml.Tensor.sum", "bcml.Tensor.mean",
              "bcml.Tensor.max", "bcml.Tensor.min", "bcml.Tensor.argmax", "bcml.Tensor.argmin")
ALLOWLIST = [
    # ---- as_frame (issue 13, item 6)
    (("bcml.helpers.training.compatibility_sweep", "bcml.sweep_management.SweepManager.get_sweep_summary"),
     "as_frame", "True", "ok", "True is a valid value: a pandas DataFrame of the points (tests/test_sweep_frame.py)"),
    # ---- bcml.compile (issue 12)
    ("bcml.compile", "model", "lambda", "ok", "a callable is the step function to compile (tests/test_compile.py)"),
    ("bcml.compile", "check_every", BIG_INTS, "ok", "any int >= 1: check the replay every that many calls"),
    ("bcml.compile", "watch", ("list[]", "ragged"), "ok", "a list of any objects whose attributes to watch"),
    ("bcml.compile", ("fullgraph", "dynamic"), "True", "ok",
     "torch.compile's flags, accepted for code written for it, without effect (bcml.compile's docstring)"),
    ("bcml.compile", "backend", ("str", "lambda"), "ok",
     "torch.compile's backend (a name or a callable), accepted without effect (bcml.compile's docstring)"),
    ("bcml.compile", "options", "dict{}", "ok", "torch.compile's options dict, accepted without effect"),
    ("bcml.compile", "disable", "True", "ok",
     "returns the function unchanged, as torch.compile(disable=True) (tests/test_compile.py)"),
    # ---- hooks, memory helpers, NumPy's protocol (issue 11)
    ("bcml.Tensor.__array_wrap__", "array", ("np.object", "np.str", "np.complex", "np.datetime"), "ok",
     "a NumPy result of a dtype bcml cannot hold stays an ndarray (tests/test_numpy_interop.py)"),
    ("bcml.Tensor.__array_wrap__", "array", ("np.negstride", "np.bigendian"), "ok",
     "converted once at the boundary, as bcml.from_numpy converts such arrays (PyTorch's from_numpy refuses them)"),
    ("bcml.helpers.utils.generate_mem_hook", "handle_ref", "*", "ok",
     "BCML's parameter, unused by BCML and by bcml: any value is accepted"),
    (("bcml.helpers.utils.generate_mem_hook", "bcml.helpers.utils.add_memory_hooks", "bcml.helpers.utils.log_mem"),
     ("mem", "mem_log", "hr", "exp", "hook_type"), ("list[]", "str"), "ok",
     "an empty list and a str are valid values of these (a log, a handle list, a label); "
     "tests/test_dropin.py and tests/test_hooks.py check what is logged"),
    (("bcml.helpers.utils.remove_memory_hooks", "bcml.helpers.utils.clean_from_gpu"), ("hook_handles", "tensors"),
     "list[]", "ok", "an empty list: nothing to remove or release"),
    (("bcml.helpers.utils.generate_mem_hook", "bcml.helpers.utils.add_memory_hooks", "bcml.helpers.utils.log_mem",
      "bcml.helpers.utils.clean_from_gpu"), ("mem", "mem_log", "hr", "tensors"), "ragged", "ok",
     "a list holding anything: the helpers append to it (BCML's clean_from_gpu only drops its names)"),
    (("bcml.helpers.utils.generate_mem_hook", "bcml.helpers.utils.add_memory_hooks"), "idx", BIG_INTS, "ok",
     "idx is only a label written into the log (BCML's layer number), any int >= 0 is kept as given"),
    # ---- numbers and tensors
    (("bcml.Tensor.*", "bcml.clamp", "bcml.eq", "bcml.where"), "*", BIG_INTS, "ok",
     "an int beyond int64 with a float32 tensor is computed in float, as NumPy does (tests/test_values.py: "
     "test_float_scalars_beyond_a_double); an int64 tensor compares exactly with any int (test_int64_comparisons_"
     "beyond_int64_follow_the_sign); PyTorch raises OverflowError"),
    ("bcml.where", ("input", "other"), "1e39", "ok",
     "a Python float beyond float32's range becomes inf, as in PyTorch's arithmetic (torch.where refuses it)"),
    (REDUCTIONS, "keepdim", "True", "ok",
     "keepdim=True without dim keeps every dimension with size 1 (NumPy's keepdims); PyTorch has no such call"),
    (("bcml.Tensor.argmax", "bcml.Tensor.argmin", "bcml.argmax"), ("self", "input"), "t.bool", "ok",
     "argmax/argmin of a bool tensor give the first True/False (tests/test_ops_reduce.py); PyTorch refuses bool"),
    ("bcml.Tensor.backward", "self", ("t.requires_grad", "t.nonleaf"), "RuntimeError",
     "backward() of a non-scalar needs gradient=: PyTorch's RuntimeError of the autograd engine"),
    ("bcml.Tensor.cuda", "self", "*", "ValueError", "cuda() always raises: bcml runs on the CPU only"),
    ("bcml.nn.init.constant_", "val", BIG_INTS, "ok",
     "an int beyond int64 for a float32 tensor is a float, as in bcml's arithmetic (see above); PyTorch raises"),
    ("bcml.nn.Identity.forward", "input", "*", "ok", "Identity returns its input unchanged, whatever it is (as "
                                                     "torch.nn.Identity)"),
    ("bcml.load_torch_checkpoint", "path", ("str", "bytes"), "FileNotFoundError",
     "a path that does not exist: Python's error for a missing file (as for bcml.load)"),
    ("bcml.device.__eq__", "other", "*", "ok",
     "== compares with anything and never raises: True for the CPU (a device or 'cpu'), False otherwise"),
    # ---- bcml.loss
    ("bcml.loss.*", ("h1_output", "h1_outputs", "x"), "t.nan", "ok",
     "h1 outputs of NaN: bcml counts a NaN row as never classified correctly (csrc/core/compat_loss.c), where "
     "the reference's NumPy argmax picks the first NaN; the loss is otherwise the same formula"),
    ("bcml.loss.*", ("h1", "h2"), "lambda", "ok",
     "any callable is a model (SPEC section 2: a model is called model(x)); what it returns is checked per call"),
    ("bcml.loss.*", "lambda_c", ("int2^63", "int2^64", "np.u64scalar"), "ok",
     "lambda_c is a float setting: any real number >= 0 that float32 holds is valid (values above 1 too, SPEC 3)"),
    (("bcml.loss.FocalDistillationLoss", "bcml.loss.LogitDifferenceInhibitionLoss"),
     ("alpha", "beta", "temperature", "p", "margin"), ("int2^63", "int2^64", "np.u64scalar"), "ok",
     "a float setting of the loss: any real number in its range that float32 holds is valid (however large)"),
    # ---- valid values that are not bad: the call is right to succeed (what it computes is tested elsewhere)
    ("*", FLAGS, "True", "ok", TRUE_IS_VALID),
    (("bcml.datasets.load_*", "bcml.data.*", "bcml.datasets.train_test_split", "bcml.helpers.training.*",
      "bcml.sweep_management.*", "bcml.widget.CompatibilityAnalysis"), "seed", ("int2^63", "np.u64scalar"), "ok",
     "a seed is any int in [0, 2**64) (NumPy's SeedSequence / bcml's generators take 64 bits)"),
    (("bcml.datasets.load_*",), ("cache_dir", "base_url"), "str", "ok",
     "a str is a folder / an address; both are used only to download, and the files are on disk"),
    ("bcml.datasets.load_cifar10", "records_per_file", "None", "ok",
     "None accepts any whole number of records (documented)"),
    (("bcml.datasets.Dataset", "bcml.datasets.ImageDataset"), "*", ("str", "list[]", "dict{}"), "ok",
     "a record's names and description may be any str, and its name lists / groups empty (a data set "
     "without named features)"),
    ("bcml.datasets.Dataset", "X", "np.*", "ok",
     "X is a NumPy array of the rows (any numeric dtype and layout), stored as given, as the loaders store it"),
    (("bcml.compare", "bcml.scores.compatibility_report"), "min_group_size", ("int2^63", "int2^64", "np.u64scalar"),
     "ok", "any size >= 0 is a valid bound (above the sample count: no cohort is ranked)"),
    (("bcml.compare", "bcml.scores.compatibility_report"), "seed", ("int2^63", "np.u64scalar"), "ok",
     "any seed in [0, 2^64) is valid (the bootstrap's generator takes 64 bits)"),
    (("bcml.compare", "bcml.scores.compatibility_report"), "ci", "None", "ok", "None: no intervals (documented)"),
    (("bcml.compare", "bcml.scores.compatibility_report"), "groups", "dict{}", "ok",
     "no cohorts: an empty per_group and ranking"),
    ("bcml.compare", "zero_division", "nan", "ok", "nan is one of zero_division's documented values"),
    ("bcml.seed_baseline", "X", "*", "ok",
     "X is only given to the model train_fn returns; this train_fn returns predictions, which ignore it"),
    ("bcml.seed_baseline", "seeds", "iterator", "ok", "any iterable of ints is a sequence of seeds"),
    ("bcml.scores.CompatibilityReport.save_html", "path", "str", "ok", "a str is a file name (written)"),
    (("bcml.scores.*", "bcml.helpers.training.*"), "zero_division", "nan", "ok",
     "nan is one of zero_division's documented values (as scikit-learn's)"),
    ("bcml.scores.CompatibilityReport", "mapping", "dict{}", "ok", "an empty report is a dict like any other"),
    (("bcml.no_grad.__call__", "bcml.enable_grad.__call__", "bcml.set_grad_enabled.__call__"), "fn", "lambda", "ok",
     "any function can be decorated (the decorator runs it in the grad mode; tests/test_autograd.py)"),
    (("bcml.optim.SGD.step", "bcml.optim.Adam.step"), "closure", "lambda", "ok",
     "a closure is called once and its value returned, as PyTorch's step(closure)"),
    ("bcml.optim.lr_scheduler.StepLR", "gamma", BIG_INTS, "ok",
     "gamma is a float setting: any finite number float32 holds (PyTorch takes any float)"),
    (("bcml.helpers.training.train_new_error", "bcml.helpers.training.train_strict_imitation"), "lambda_c",
     ("int2^63", "int2^64", "np.u64scalar"), "ok",
     "lambda_c is a float setting: any real number >= 0 that float32 holds (SPEC 3)"),
    (("bcml.helpers.training.*", "bcml.sweep_management.SweepManager", "bcml.widget.CompatibilityAnalysis"),
     ("optimizer_kwargs", "new_error_loss_kwargs", "strict_imitation_loss_kwargs"), ("dict{}", "None"), "ok",
     "no keyword arguments: the classes' defaults (None is accepted as {} for every *_kwargs)"),
    (("bcml.helpers.training.compatibility_sweep", "bcml.sweep_management.SweepManager*", "bcml.widget.CompatibilityAnalysis"),
     ("sweeps_folder_path", "folder_name", "ml_flow_run_name"), "str", "ok",
     "a str is a folder name / an MLflow run name"),
    ("bcml.plot_tradeoff", "title", "str", "ok", "any str is a title"),
    (("bcml.helpers.training.compatibility_sweep", "bcml.sweep_management.SweepManager*", "bcml.widget.*"),
     ("performance_metric", "get_instance_metadata", "get_instance_image_by_id", "OptimizerClass",
      "NewErrorLossClass", "StrictImitationLossClass"), ("lambda", "None"), "ok",
     "any callable is accepted when the manager is made (it is called when the sweep runs; None: the default)"),
    (("bcml.helpers.training.compatibility_sweep", "bcml.sweep_management.SweepManager", "bcml.widget.CompatibilityAnalysis"), ("progress", "use_ml_flow"),
     "True", ("ImportError", "ok"), "True needs an optional dependency (tqdm, mlflow): without it an ImportError "
                                    "naming the extra to install (DESIGN: optional features), with it the sweep "
                                    "runs with a progress bar / logs to MLflow"),
    (("bcml.sweep_management.SweepManager.cancel", "bcml.sweep_management.SweepManager.wait",
      "bcml.widget.CompatibilityAnalysis.cancel", "bcml.widget.CompatibilityAnalysis.wait"), "timeout",
     ("inf", "1e39", "int2^63", "int2^64", "np.u64scalar"), "ok", "a timeout of any length (waits at most that long)"),
    ("bcml.models.MLPClassifier", "hidden_sizes", "list[]", "ok", "no hidden layer: one Linear layer"),
    ("bcml.models.*.forward", "x", ("t.nan", "t.requires_grad", "t.nonleaf", "t.empty(0,3)", "t.rank4"), "ok",
     "a valid input of the model's shape (NaN flows and an empty batch gives empty outputs, as in PyTorch; a "
     "tensor that requires grad records a graph); the models are compared with PyTorch in tests/test_models_conv.py "
     "and tests/test_nn.py"),
    (("bcml.helpers.training.evaluate_model_performance_and_compatibility*",), "performance_metric", "None", "ok",
     "None is the documented default, model_accuracy (tests/test_dropin.py)"),
    ("bcml.helpers.training.get_incompatible_instances_by_class", "all_errors", "list[]", "ok",
     "no errors in the batch: nothing is added (tests/test_dropin.py)"),
    (("bcml.helpers.training.get_incompatible_instances_by_class",
      "bcml.helpers.training.update_error_instances_by_class_dict"),
     ("class_incompatible_instance_ids", "old_error_instances_by_class_dict", "new_error_instances_by_class_dict"),
     "dict{}", "ok", "an empty {class: ids} dict is where per-batch results start (tests/test_dropin.py)"),
    # ---- the widgets
    (("bcml.widget.CompatibilityAnalysis", "bcml.widget.ModelComparison"), "port", "*", "ok",
     "port is accepted and ignored, as documented: BCML's Flask server took it, bcml's widget needs no server"),
    ("bcml.widget.*", ("get_instance_data_by_id", "get_instance_label_by_id"), "lambda", "ok",
     "any function of the instance id (called for the rows the instance table shows; tests/test_widget_data.py)"),
    ("bcml.widget.*", "class_names", ("dict{}", "list[]"), "ok", "no class names: classes are shown by value"),
    ("bcml.widget.*", "title", "str", "ok", "any str is a title"),
    ("bcml.widget.*.request", "filter", ("None", "dict{}"), "ok",
     "no filter: every error instance of the evaluation (the instance table without a Venn region or class bar)"),
    (("bcml.widget.*.save_html", "bcml.widget.save_html", "bcml.widget.save_sweep_report"), "max_images",
     ("int2^63", "int2^64"), "ok",
     "a bound on the thumbnails inlined: any count >= 0 (the report holds at most every error instance's)"),
    (("bcml.widget.*.save_html", "bcml.widget.save_html", "bcml.widget.save_sweep_report"), "path", "str", "ok",
     "a str is a file name (written)"),
    # ---- bcml.utils.data, bcml.vision
    (("bcml.utils.data.DataLoader", "bcml.utils.data.Subset", "bcml.utils.data.random_split"), "dataset", "*", "ok",
     "any object with __getitem__ (and __len__) is a map-style data set, as in PyTorch (a list of samples, an array "
     "of rows, a str); its samples are read, and checked, when the loader is iterated"),
    ("bcml.utils.data.Dataset.__getitem__", "index", "*", "NotImplementedError",
     "the abstract base's __getitem__ raises NotImplementedError, as PyTorch's (subclasses implement it)"),
    ("bcml.utils.data.DataLoader", "sampler", "*", "ok",
     "any iterable is a sampler, as in PyTorch; its indices are read when the loader is iterated"),
    ("bcml.utils.data.DataLoader", "batch_size", "None", "ok",
     "batch_size=None turns batching off (the samples one by one), as in PyTorch (tests/test_utils_data.py)"),
    (("bcml.utils.data.DataLoader", "bcml.vision.transforms.RandomCrop"), ("pin_memory", "pad_if_needed"), "True",
     "ok", TRUE_IS_VALID),
    ("bcml.utils.data.DataLoader", "pin_memory_device", "str", "ok", "any str names a device; it has no effect"),
    ("bcml.utils.data.DataLoader", "timeout", BIG_INTS, "ok", "a timeout of any length (it has no effect in-process)"),
    (("bcml.utils.data.DataLoader", "bcml.vision.datasets.*", "bcml.vision.transforms.Lambda"),
     ("collate_fn", "worker_init_fn", "transform", "target_transform", "lambd"), "lambda", "ok",
     "any callable is accepted; it is called on the samples when they are read"),
    ("bcml.utils.data.Subset", "indices", ("list[]", "np.empty(0,)", "t.empty(0,)"), "ok",
     "no indices: an empty subset, as PyTorch's"),
    ("bcml.utils.data.Subset.__getitem__", "index", "list[]", "ok",
     "a list of indices gives those samples (none for an empty list), as PyTorch's Subset"),
    ("bcml.vision.transforms.Compose", "transforms", "list[]", "ok", "an empty Compose is the identity"),
    (("bcml.vision.transforms.Compose.__call__", "bcml.vision.transforms.Lambda.__call__"), "img", "*", "*",
     "Compose and Lambda pass their input to the transforms / the function they hold: what is accepted or raised "
     "is theirs (each transform is in the matrix on its own)"),
    (("bcml.vision.transforms.Normalize", "bcml.vision.transforms.RandomCrop"), ("mean", "std", "fill"), BIG_INTS,
     "ok", "a mean, std or fill value is a float setting: any real number that float32 holds"),
    ("bcml.vision.datasets.*", "root", "str", ("DatasetNotFoundError",),
     "a folder without the data set's files: torchvision's 'Dataset not found' RuntimeError, also a "
     "FileNotFoundError saying where the files were looked for"),
    # ---- files that are not there
    (("bcml.load", "bcml.datasets.load_*", "bcml.plot_tradeoff", "bcml.widget.CompatibilityAnalysis.from_folder",
      "bcml.widget.save_sweep_report"), ("f", "path", "summary_or_folder", "folder"),
     ("str", "bytes"), ("FileNotFoundError", "DatasetNotFoundError"),
     "a path that does not exist: FileNotFoundError (the data sets' subclass says where to put the files), "
     "Python's error for a missing file"),
]


def _match(value, patterns):
    patterns = (patterns,) if isinstance(patterns, str) else patterns
    return any(fnmatch.fnmatchcase(value, p) for p in patterns)


def allowed(name, param, kind, outcome, checked_by_oracle=False):
    for pat_name, pat_param, pat_kind, what, reason in ALLOWLIST:
        if checked_by_oracle and reason == TRUE_IS_VALID:
            continue
        if _match(outcome, what) and _match(name, pat_name) and _match(param, pat_param) and _match(kind, pat_kind):
            return reason
    return None


# ==== one call ====================================================================================
RULE = (TypeError, ValueError, IndexError, MemoryError)
AUTOGRAD = re.compile(r"in-?place|leaf|graph|backward|requires?.grad|gradients|grad_fn|retain_graph|saved", re.I)
# names a parameter may be called by in messages, besides its own: for every callable, and
# for one (callable, parameter)
ALIASES = {"self": ("self", "input", "tensor"), "key": ("key", "index", "indices")}
TARGET_ALIASES = {
    # PyTorch's names: the left operand of @ is matmul's input; the right one of ** is the exponent
    ("bcml.Tensor.__rmatmul__", "other"): ("input",),
    ("bcml.Tensor.__pow__", "other"): ("exponent",),
    # an index that does not fit this tensor's shape is reported against the index (PyTorch's message)
    ("bcml.Tensor.__getitem__", "self"): ("index",),
    ("bcml.Tensor.__setitem__", "self"): ("index",),
}


def names_param(msg, param, target):
    names = ALIASES.get(param, (param,)) + TARGET_ALIASES.get((target.name, param), ())
    if target.kind == "setter":
        names = names + (target.attr,)
    flags = re.I if param == "self" else 0   # "Tensor" at the start of a sentence names it too
    return any(re.search(r"(?<![A-Za-z0-9_])%s(?![A-Za-z0-9_])" % re.escape(n), msg, flags) for n in names)


class Call:
    pass


def slots(target, sig, args, kwargs):
    """[(slot id, parameter name, where)]: where = ("pos", i) | ("kw", name) | ("self",)."""
    out = []
    import bcml
    if target.kind in ("method", "setter") and issubclass(target.cls, bcml.Tensor):
        out.append(("self", "self", ("self",)))
    ba = sig.bind_partial(*args, **kwargs)
    pos_index = {}
    i = 0
    for p in sig.parameters.values():
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            if p.name in ba.arguments and i < len(args):
                pos_index[p.name] = i
                i += 1
        elif p.kind == p.VAR_POSITIONAL:
            pos_index[p.name] = i
    for p in sig.parameters.values():
        if p.name.startswith("_"):
            continue
        if p.kind == p.VAR_POSITIONAL:
            if pos_index.get(p.name, len(args)) < len(args):
                out.append((p.name + "[0]", p.name, ("pos", pos_index[p.name])))
        elif p.kind == p.VAR_KEYWORD:
            for k in kwargs:
                if k not in sig.parameters:
                    out.append((k, k, ("kw", k)))
        elif p.name in pos_index:
            out.append((p.name, p.name, ("pos", pos_index[p.name])))
        elif p.kind != p.POSITIONAL_ONLY:
            out.append((p.name, p.name, ("kw", p.name)))
    return out


def make_receiver(target, c, targets):
    if target.name in METHOD_RECEIVERS:
        return METHOD_RECEIVERS[target.name](c)
    cname = target.name.rsplit(".", 1)[0]
    if cname in RECEIVERS:
        return RECEIVERS[cname](c)
    ctor = EXAMPLES.get(cname)
    args, kwargs = ctor(c) if ctor else ((), {})
    return targets[cname].obj(*args, **kwargs)


def example(target, c):
    f = EXAMPLES.get(target.name)
    return f(c) if f else ((), {})


def _consume(r):
    if isinstance(r, types.GeneratorType) or type(r).__name__.endswith("iterator"):
        return list(r)
    return r


def invoke(target, receiver, args, kwargs):
    if target.kind == "call":
        return _consume(target.obj(*args, **kwargs))
    if target.kind == "forward":
        return receiver(*args, **kwargs)
    if target.kind == "setter":
        setattr(receiver, target.attr, args[0])
        return None
    return _consume(getattr(receiver, target.attr)(*args, **kwargs))


def _restore_globals():
    import bcml
    bcml._core.set_grad_enabled(True)
    bcml.set_num_threads(1)
    # ipywidgets keeps every widget (and the models a ModelComparison holds) alive until it is
    # closed: without this, thousands of probes' widgets pile up, and every replay guard, which
    # looks at each live Module, gets slower with each call (quadratic: an hour under ASan)
    w = sys.modules.get("ipywidgets")
    if w is not None:
        w.Widget.close_all()


def build(target, targets, slot, kind, tmp):
    """(receiver, args, kwargs) of one call, made fresh (and the same each time: seeded)."""
    c = Ctx(tmp)
    args, kwargs = example(target, c)
    args, kwargs = list(args), dict(kwargs)
    receiver = make_receiver(target, c, targets) if target.kind in ("method", "forward", "setter") else None
    if slot is not None:
        where = slot[2]
        bad = BAD[kind](c)
        if where[0] == "self":
            receiver = bad
        elif where[0] == "pos":
            args[where[1]] = bad
        else:
            kwargs[where[1]] = bad
    return receiver, args, kwargs


def run_one(target, targets, slot, kind, tmp, oracles):
    """Calls target with BAD[kind] in slot (None: the valid example); returns the outcome dict."""
    import bcml
    sig = signature(target)
    param = slot[1] if slot is not None else None

    def fresh():
        """The call's inputs made again, untouched by the call (for the oracles)."""
        f = Call()
        f.receiver, args, kwargs = build(target, targets, slot, kind, tmp)
        f.args, f.kwargs = args, kwargs
        try:
            f.bound = dict(sig.bind(*args, **kwargs).arguments)
        except TypeError:
            f.bound = {}
        return f

    call = fresh()
    call.fresh = fresh
    call.target_obj = target
    receiver, args, kwargs = call.receiver, call.args, call.kwargs
    bcml.manual_seed(SEED)
    out = {"name": target.name, "slot": slot[0] if slot else None, "kind": kind}
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            call.result = invoke(target, receiver, args, kwargs)
    except BaseException as e:  # noqa: B902  (everything is an outcome here)
        if isinstance(e, KeyboardInterrupt):
            raise
        msg = str(e)
        out.update(exc=type(e).__name__, msg=msg[:300])
        if slot is None:
            if target.name in NO_VALID_CALL:
                out.update(outcome="example")
            else:
                out.update(outcome="violation", why="the valid example call raised")
        elif isinstance(e, RULE) and names_param(msg, param, target):
            out.update(outcome="raised")
        elif type(e) is RuntimeError and AUTOGRAD.search(msg):
            out.update(outcome="raised")
        else:
            reason = allowed(target.name, param, kind, type(e).__name__)
            if reason:
                out.update(outcome="allowed", reason=reason)
            else:
                why = ("message does not name %r" % param) if isinstance(e, RULE) else \
                    "%s is not an error of the rule" % type(e).__name__
                out.update(outcome="violation", why=why)
        return out
    finally:
        _restore_globals()
    # a success: checked by the oracle; else (or when it differs) an allowlist entry must say why
    oracle = oracles.get(target.name)
    why = "succeeded, and there is no oracle or allowlist entry"
    if oracle is not None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                oracle(call)
        except Unconvertible as e:
            why = "succeeded on an input bcml documents as refused: %s" % e
        except AssertionError as e:
            why = "differs from the reference: %s" % str(e)[:400]
        except Exception as e:
            why = "the oracle failed: %s: %s" % (type(e).__name__, str(e)[:300])
        else:
            out.update(outcome="checked" if slot is not None else "example")
            return out
    if slot is None:
        if oracle is None:
            out.update(outcome="example")
        else:
            out.update(outcome="violation", why="the valid example call " + why)
        return out
    reason = allowed(target.name, param, kind, "ok", checked_by_oracle=oracle is not None)
    if reason:
        out.update(outcome="allowed", reason=reason)
    else:
        out.update(outcome="violation", why=why)
    return out


def plan(target, tmp):
    """[(slot, kind)] for one target: the example first, then every slot x bad value."""
    c = Ctx(tmp)
    sig = signature(target)
    args, kwargs = example(target, c)
    items = []
    for slot in slots(target, sig, args, kwargs):
        kinds = TENSOR_KINDS if slot[2][0] == "self" else list(BAD)
        p = sig.parameters.get(slot[1])
        for kind in kinds:
            if p is not None and p.default is not inspect.Parameter.empty and kind in ("None", "True"):
                if BAD[kind](c) is p.default:
                    continue   # the default itself is no bad value
            items.append((slot, kind))
    return [(None, None)] + items if items else []   # the example first (no slot: nothing to run)


# ==== worker ======================================================================================
def worker(names, out_path, skip):
    """Runs the matrix of the given callables, from call number `skip` on, writing one JSON line
    when a call starts and one with its outcome."""
    import bcml  # noqa: F401
    os.environ.setdefault("MPLBACKEND", "Agg")
    targets, _ = discover()
    if os.environ.get("BCML_MATRIX_SELFTEST"):   # test_a_crash_or_hang_names_the_call
        import signal

        def crash(x):
            if x is None:
                os.kill(os.getpid(), signal.SIGSEGV)

        def hang(x):
            if x is None:
                time.sleep(3600)
        EXAMPLES["__selftest__.crash"] = EXAMPLES["__selftest__.hang"] = lambda c: _a(1)
        targets["__selftest__.crash"] = Target("__selftest__.crash", "call", crash)
        targets["__selftest__.hang"] = Target("__selftest__.hang", "call", hang)
    oracles = dict(ORACLES)
    oracles.update({k: v for k, v in _tensor_oracles().items() if k not in oracles})
    oracles.update({k: v for k, v in _nn_oracles().items() if k not in oracles})
    for k in targets:
        if k.startswith("bcml.loss.") and k.endswith((".__call__", ".forward", ".dissonance_from_inputs")):
            oracles.setdefault(k, _compat_loss_ref(k.endswith(".dissonance_from_inputs")))
        elif k.startswith("bcml.loss.") and k.endswith(".dissonance"):
            oracles.setdefault(k, _dissonance_ref)
    tmp = tempfile.mkdtemp(prefix="work-", dir=os.path.dirname(os.path.abspath(out_path)))  # the parent's temp dir
    os.chdir(tmp)
    n = 0
    with open(out_path, "a", buffering=1) as f:
        for name in names:
            target = targets[name]
            for slot, kind in plan(target, tmp):
                if n >= skip:
                    f.write(json.dumps({"start": n, "name": name, "slot": slot[0] if slot else None,
                                        "kind": kind}) + "\n")
                    f.flush()
                    res = run_one(target, targets, slot, kind, tmp, oracles)
                    res["n"] = n
                    f.write(json.dumps(res) + "\n")
                    f.flush()
                n += 1
    return 0


def _env(workdir):
    import bcml
    env = dict(os.environ)
    env["XDG_CACHE_HOME"] = os.path.join(workdir, "xdg-cache")   # never ~/.cache
    env["PYTHONPATH"] = os.pathsep.join([str(Path(bcml.__file__).resolve().parents[1]), str(HERE)]
                                        + [p for p in [env.get("PYTHONPATH")] if p])
    env["MPLBACKEND"] = "Agg"
    env.setdefault("BCML_SHARED_DATA", str(shared_data()))
    env["OMP_NUM_THREADS"] = env["OPENBLAS_NUM_THREADS"] = "1"
    return env


def run_chunk(names, workdir, tag):
    """Runs one chunk in children until every call has an outcome; a crash or a hang becomes
    the outcome of the call in progress, and a new child goes on after it."""
    out_path = Path(workdir) / ("chunk-%s.jsonl" % tag)
    results, skip, crashes = [], 0, []
    while True:
        proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--worker", str(out_path), str(skip)]
                                + names, env=_env(str(workdir)), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, text=True)
        start = time.monotonic()
        last_size, last_change = -1, start
        hung = False
        while proc.poll() is None:
            time.sleep(0.2)
            size = out_path.stat().st_size if out_path.exists() else 0
            now = time.monotonic()
            if size != last_size:
                last_size, last_change = size, now
            if now - last_change > CALL_TIMEOUT or now - start > CHUNK_TIMEOUT:
                proc.kill()
                hung = True
        stdout, stderr = proc.communicate()
        lines = [json.loads(line) for line in out_path.read_text().splitlines() if line.strip()] \
            if out_path.exists() else []
        done = {r["n"]: r for r in lines if "outcome" in r}
        started = [r for r in lines if "start" in r]
        last = started[-1] if started else None
        if proc.returncode == 0 and not hung:
            break
        if last is None or last["start"] in done:
            crashes.append({"name": names[0], "slot": None, "kind": None, "outcome": "violation",
                            "why": "the child failed outside a call (exit %s): %s" % (proc.returncode, stderr[-2000:]),
                            "n": -1})
            break
        crashes.append({"name": last["name"], "slot": last["slot"], "kind": last["kind"], "n": last["start"],
                        "outcome": "violation",
                        "why": ("hang (no outcome within %d s)" % CALL_TIMEOUT) if hung else
                        "crash (exit %s): %s" % (proc.returncode, stderr[-1500:])})
        skip = last["start"] + 1
    lines = [json.loads(line) for line in out_path.read_text().splitlines() if line.strip()] \
        if out_path.exists() else []
    results = [r for r in lines if "outcome" in r] + crashes
    return results


def chunks(names, size=12):
    """Callables in chunks of about `size`, heavy ones (training, sweeps, data sets) alone in
    smaller chunks so that the chunks take similar times."""
    heavy = [n for n in names if n.startswith(("bcml.helpers", "bcml.sweep_management", "bcml.datasets",
                                               "bcml.plot", "bcml.models", "bcml.widget"))]
    light = [n for n in names if n not in heavy]
    out = [light[i:i + size] for i in range(0, len(light), size)]
    out += [heavy[i:i + 3] for i in range(0, len(heavy), 3)]
    return out


def run_all(names, jobs=2):
    """Every call of the matrix of `names`, in chunks run by `jobs` children at a time."""
    import concurrent.futures
    with tempfile.TemporaryDirectory() as d:
        with concurrent.futures.ThreadPoolExecutor(jobs) as ex:
            parts = list(ex.map(lambda ic: run_chunk(ic[1], d, str(ic[0])), enumerate(chunks(names))))
    return [r for part in parts for r in part]


# ==== the tests =====================================================================================
def _required(sig):
    return [p for p in sig.parameters.values()
            if p.default is inspect.Parameter.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def test_every_callable_is_registered():
    """Discovery finds bcml's public callables; each one whose call needs arguments has an
    example; no table names a callable that is gone; optional modules are covered when their
    dependency is installed (and must be when CI is set)."""
    import pytest
    found, skipped = discover()
    assert len(found) > 300, "discovery found only %d callables" % len(found)
    for must in ("bcml.tensor", "bcml.Tensor.__add__", "bcml.nn.Linear.forward", "bcml.nn.Module.load_state_dict",
                 "bcml.scores.trust_compatibility_score", "bcml.helpers.training.compatibility_sweep",
                 "bcml.loss.BCCrossEntropyLoss.__call__", "bcml.Tensor.requires_grad"):
        assert must in found, must
    missing = sorted(n for n, t in found.items() if _required(signature(t)) and n not in EXAMPLES)
    assert not missing, "callables without an entry in EXAMPLES (add a valid call): %s" % missing
    stale = sorted(k for table in (EXAMPLES, ORACLES, SIGNATURES, METHOD_RECEIVERS, NO_VALID_CALL) for k in table
                   if k not in found)
    stale += sorted(k for k in RECEIVERS if not any(n.startswith(k + ".") for n in found))
    assert not stale, "table entries naming no discovered callable: %s" % stale
    for entry in ALLOWLIST:
        assert any(_match(n, entry[0]) for n in found), "allowlist entry for no callable: %r" % (entry[:4],)
        assert entry[4].strip(), "allowlist entry without a reason: %r" % (entry[:4],)
    if skipped:
        if os.environ.get("CI"):
            pytest.fail("optional modules not covered, their dependency is missing: %s" % skipped)
        print("not covered (dependency missing): %s" % skipped)


# callables whose valid example reads the shared data files (../shared/data beside the checkout)
NEEDS_SHARED_DATA = ("bcml.datasets.load_adult", "bcml.datasets.load_compas", "bcml.datasets.load_german_credit",
                     "bcml.datasets.load_breast_cancer")


def test_bad_input_matrix():
    """Every call of the matrix raises an error of the rule naming the argument, succeeds as
    its PyTorch/NumPy oracle says, or is allowlisted; a crash or hang of a child is a failure
    that names the call. Every allowlist entry must still be needed. (PyTorch is the oracle and
    the shared data files feed the tabular loaders: without them the test skips, or leaves the
    loaders out, on a user's machine; under CI it fails.)"""
    from conftest import need
    need("torch")
    found, _ = discover()
    names = sorted(found)
    if not shared_data().exists():
        if os.environ.get("CI"):
            import pytest
            pytest.fail("%s is required when CI is set" % shared_data())
        names = [n for n in names if n not in NEEDS_SHARED_DATA]
        print("left out (no %s): %s" % (shared_data(), NEEDS_SHARED_DATA))
    t0 = time.monotonic()
    results = run_all(names)
    seconds = time.monotonic() - t0
    counts = {}
    for r in results:
        counts[r["outcome"]] = counts.get(r["outcome"], 0) + 1
    print("bad-input matrix: %d callables, %d calls in %.0f s: %s" % (len(found), len(results), seconds, counts))
    bad = [r for r in results if r["outcome"] == "violation"]
    used = {r["reason"] for r in results if r["outcome"] == "allowed"}
    unused = [e[:4] for e in ALLOWLIST if e[4] not in used and any(_match(n, e[0]) for n in names)]
    lines = ["%s(%s=%s): %s%s" % (r["name"], r["slot"], r["kind"], r["why"],
                                  (" [%s: %s]" % (r.get("exc"), (r.get("msg") or "")[:160])) if r.get("exc") else "")
             for r in bad[:200]]
    assert not bad, "%d violations of the error rule (first %d):\n%s" % (len(bad), len(lines), "\n".join(lines))
    assert not unused, "allowlist entries that no call needs any more (remove them): %s" % unused
    assert counts.get("raised", 0) > 30000, counts


def test_a_crash_or_hang_names_the_call(tmp_path, monkeypatch):
    """The runner itself: a child that dies (SIGSEGV) or hangs in a call reports that call as a
    violation, and the rest of the chunk still runs in a new child."""
    monkeypatch.setenv("BCML_MATRIX_SELFTEST", "1")
    monkeypatch.setattr(sys.modules[__name__], "CALL_TIMEOUT", 10)
    res = run_chunk(["__selftest__.crash", "__selftest__.hang", "bcml.relu"], str(tmp_path), "self")
    crashes = [r for r in res if r["name"] == "__selftest__.crash" and "crash" in r.get("why", "")]
    hangs = [r for r in res if r["name"] == "__selftest__.hang" and "hang" in r.get("why", "")]
    assert crashes and hangs, res[:5]
    assert crashes[0]["kind"] == "None" and crashes[0]["slot"] == "x"
    assert any(r["name"] == "bcml.relu" and r["outcome"] == "raised" for r in res)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        sys.exit(worker(sys.argv[4:], sys.argv[2], int(sys.argv[3])))
    # by hand: python tests/test_bad_inputs.py NAME_OR_PATTERN ...
    sys.path.insert(0, str(HERE.parent))
    found, _ = discover()
    pats = sys.argv[1:] or ["*"]
    names = sorted(n for n in found if any(fnmatch.fnmatchcase(n, p) for p in pats))
    res = run_all(names)
    if os.environ.get("BCML_MATRIX_JSON"):
        Path(os.environ["BCML_MATRIX_JSON"]).write_text(json.dumps(res))
    bad = [r for r in res if r["outcome"] == "violation"]
    for r in bad:
        print("%-45s %-16s %-14s %s %s" % (r["name"], r["slot"], r["kind"], r.get("exc", ""), r["why"]),
              "|", (r.get("msg") or "")[:150].replace("\n", " "))
    counts = {}
    for r in res:
        counts[r["outcome"]] = counts.get(r["outcome"], 0) + 1
    print(len(res), "calls", counts)
