"""bcml.compile(step_fn): record a user's whole step once per input signature, replay it in C.

The first call of each signature (the shapes, dtypes and requires_grad of the tensor arguments,
the values of the other arguments, the grad mode, and the train/eval flags, numbers and parameter
identities of the Modules the step names or whose parameters its recorded plans read) runs the function eagerly and records what it does:
every op, each ``backward()``, each ``zero_grad()`` and each ``step()`` of a bcml.optim.SGD or
Adam, in order. The second call of that signature replays the record in C and checks it against
an eager run (the state is saved and put back around the replay); from then on calls replay,
and every ``check_every``-th call is checked again. A step that cannot be replayed runs eagerly
with a ReplayWarning, under the record-and-replay rules of the training helpers (bcml/_engine.py):
reading tensor data in Python (``item()``, ``numpy()``, ``.grad``), a Python side effect on a
Module it uses, Python's or NumPy's global random generator, hooks, an optimizer bcml cannot step
in C, or a replay that differs from the eager step."""
import functools
import threading
import types
import warnings

from . import _core
from . import _engine
from . import _hooks
from ._engine import ReplayWarning

from ._tensor import Tensor as _TENSOR

_tls = threading.local()
CACHE_LIMIT = 64   # signatures recorded per compiled function (torch.compile: 8 recompiles)


def current():
    """The whole-step recording running on this thread (its optimizer list), or None."""
    return getattr(_tls, "rec", None)


class _Rec:
    def __init__(self):
        self.optimizers = []

    def optimizer_index(self, opt):
        """The index of opt among the optimizers the step runs, or None when bcml cannot run its
        step in C (the recording is then tainted by the step itself)."""
        if _engine._optimizer_groups(opt) is None:
            return None
        for i, o in enumerate(self.optimizers):
            if o is opt:
                return i
        self.optimizers.append(opt)
        return len(self.optimizers) - 1


class _Unsupported(Exception):
    pass


def _flatten_in(obj, tensors, seen):
    """The signature of an argument; its tensors are appended to tensors (each object once)."""
    if isinstance(obj, _core.TensorBase):
        k = seen.get(id(obj))
        if k is None:
            k = seen[id(obj)] = len(tensors)
            tensors.append(obj)
        return ("T", k)
    t = type(obj)
    if t is tuple or t is list:
        return (t, tuple(_flatten_in(o, tensors, seen) for o in obj))
    if t is dict:
        return (t, tuple((k, _flatten_in(v, tensors, seen)) for k, v in obj.items()))
    try:
        hash(obj)
    except TypeError:
        raise _Unsupported("an argument of type %s is not hashable (bcml.compile records one step per "
                           "value of each non-tensor argument)" % t.__name__) from None
    return ("V", t, obj)


def _flatten_out(obj, tensors):
    if isinstance(obj, _core.TensorBase):
        tensors.append(obj)
        return len(tensors) - 1
    if obj is None:
        return None
    t = type(obj)
    if t is tuple or t is list:
        return (t, tuple(_flatten_out(o, tensors) for o in obj))
    if t is dict:
        return (t, tuple((k, _flatten_out(v, tensors)) for k, v in obj.items()))
    raise _Unsupported("it returns a value of type %s (a compiled step returns tensors, or tuples, lists and dicts of "
                       "tensors; call .item() on a returned tensor outside the step)" % t.__name__)


def _build(spec, outs):
    if spec is None:
        return None
    if type(spec) is int:
        return outs[spec]
    t, items = spec
    if t is dict:
        return {k: _build(v, outs) for k, v in items}
    return t(_build(v, outs) for v in items)


_SCALAR_TYPES = frozenset((bool, int, float, complex, str, bytes, type(None)))


_KINDS = []


def _module_types():
    if not _KINDS:
        from .nn.modules import Module
        from .optim import Optimizer
        _KINDS.extend((Module, Optimizer))
    return _KINDS[0], _KINDS[1]


class _Entry:
    __slots__ = ("plan", "optimizers", "ospec", "verified", "calls")

    def __init__(self, plan, optimizers, ospec):
        self.plan, self.optimizers, self.ospec = plan, optimizers, ospec
        self.verified, self.calls = False, 0


class CompiledStep:
    """A step function compiled with bcml.compile (call it as the function)."""

    def __init__(self, fn, check_every=1000, watch=()):
        self._fn = fn
        self.check_every = check_every
        self.watch = tuple(watch)
        self.entries = {}
        self._used = []    # Modules the recorded plans read (see _record)
        self.replays = 0   # calls that ran in C
        self._last = None  # (base, state, entry) of the previous call's signature
        self.on = True
        self._hooks_seen = None
        functools.update_wrapper(self, fn)
        name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or type(fn).__name__
        self._what = "bcml.compile(%s)" % name
        # where the step finds its Modules and optimizers by name (looked up at every call, so
        # that rebinding one of them records the step again)
        f, self._self, self._extra = fn, None, ()
        if isinstance(f, functools.partial):
            self._extra = tuple(f.args) + tuple(f.keywords.values())
            f = f.func
        if isinstance(f, types.MethodType):
            self._self, f = f.__self__, f.__func__
        elif not isinstance(f, types.FunctionType) and isinstance(getattr(f, "__dict__", None), dict):
            self._self, f = f, getattr(type(f), "__call__", None)   # a callable object: its attributes
        self._code_fn = f if isinstance(f, types.FunctionType) else None
        if self._code_fn is not None:
            g = self._code_fn.__globals__
            self._gnames = tuple(n for n in self._code_fn.__code__.co_names)
            self._globals = g
        else:
            self._gnames, self._globals = (), {}

    def __repr__(self):
        return "<%s, %d signature(s) recorded%s>" % (self._what, len(self.entries), "" if self.on else ", eager")

    def __get__(self, obj, objtype=None):   # decorating a method: bind like a function
        if obj is None:
            return self
        return functools.partial(self.__call__, obj)

    # ---- what the step uses ----------------------------------------------------------------
    def _named(self, args, kwargs):
        """The Modules and optimizers the step names: in its closure, its globals, its defaults,
        the attributes of a bound method's object, and among its arguments."""
        Module, Optimizer = _module_types()
        kinds = (Module, Optimizer)
        found, scalars = [], []
        f = self._code_fn
        if f is not None:
            for cell in f.__closure__ or ():
                try:
                    v = cell.cell_contents
                except ValueError:
                    continue
                if isinstance(v, kinds):
                    found.append(v)
                elif type(v) in _SCALAR_TYPES:   # a number the step bakes into an op's arguments
                    scalars.append(v)
            g = self._globals
            for n in self._gnames:
                v = g.get(n)
                if v is not None and isinstance(v, kinds):
                    found.append(v)
                elif type(v) in _SCALAR_TYPES:
                    scalars.append((n, v))
            for v in f.__defaults__ or ():
                if isinstance(v, kinds):
                    found.append(v)
        for v in self._extra:
            if isinstance(v, kinds):
                found.append(v)
        if self._self is not None:
            if isinstance(self._self, kinds):
                found.append(self._self)
            for v in getattr(self._self, "__dict__", {}).values():
                if isinstance(v, kinds):
                    found.append(v)
        for v in list(args) + list(kwargs.values()) + list(self.watch):
            if isinstance(v, kinds):
                found.append(v)
            elif not isinstance(v, _core.TensorBase) and isinstance(getattr(v, "__dict__", None), dict):
                # an object holding them (the self of a decorated method, a trainer, ...)
                found.extend(w for w in v.__dict__.values() if isinstance(w, kinds))
        return found, scalars, Module

    def _state(self, named, scalars, Module):
        """The identities of the Modules and optimizers the step names and the values of the
        numbers it names, and for each Module its submodules' scalar attributes (the train/eval
        flag, a dropout's p, ...) and parameter and buffer identities: a change records the step
        again. (The walk is in C: _core.compile_state, csrc/python/replay_py.c.)"""
        return _core.compile_state(named, scalars, Module)

    # ---- calls ----------------------------------------------------------------------------
    def __call__(self, *args, **kwargs):
        fn = self._fn
        if not self.on or not _engine.REPLAY or _core.is_recording():
            return fn(*args, **kwargs)   # inside another recording, its ops are that one's
        if not kwargs and all(type(a) is _TENSOR for a in args) and len({id(a) for a in args}) == len(args):
            tensors, spec = args, len(args)   # the usual call: distinct tensors only
        else:
            tensors, seen = [], {}
            try:
                spec = (_flatten_in(args, tensors, seen), _flatten_in(kwargs, tensors, seen))
            except _Unsupported as e:
                self._disable(str(e))
                return fn(*args, **kwargs)
        if len(tensors) > _core.PLAN_MAX_IO:
            self._disable("it takes %d tensors (at most %d replay)" % (len(tensors), _core.PLAN_MAX_IO))
            return fn(*args, **kwargs)
        named, scalars, Module = self._named(args, kwargs)
        named += self._used
        if self._hooks_seen != _hooks.VERSION[0]:
            why = _engine._hooks_problem(tuple(named) + (fn,))
            if why is not None:
                self._disable(why)
                return fn(*args, **kwargs)
            self._hooks_seen = _hooks.VERSION[0]
        base = (spec, tuple([(t.shape, t._dtype_name, t.requires_grad) for t in tensors]), _core.is_grad_enabled())
        last = self._last
        if last is not None and last[0] == base and _core.compile_state_equal(named, scalars, Module, last[1]):
            e = last[2]   # the signature of the previous call, compared without building it
        else:
            state = self._state(named, scalars, Module)
            e = self.entries.get(base + (state,))
            if e is None:
                if len(self.entries) >= CACHE_LIMIT:
                    self._disable("it was called with %d different signatures (shapes, argument values, "
                                  "modules' modes)" % CACHE_LIMIT)
                    return fn(*args, **kwargs)
                return self._record(base, args, kwargs, tensors, named, scalars)
            self._last = (base, state, e)
        e.calls += 1
        if e.verified and e.calls % self.check_every:
            sets = self._sets(e)
            if sets is None:
                return fn(*args, **kwargs)
            self.replays += 1
            return _build(e.ospec, _core.plan_exec(e.plan, tensors, sets))
        return self._check(e, args, kwargs, tensors, named)

    def _disable(self, why):
        self._last = None
        if self.on:
            self.on = False
            self.entries.clear()
            warnings.warn("%s runs the step eagerly (op by op): %s" % (self._what, why), ReplayWarning,
                          stacklevel=3)

    def _sets(self, e):
        sets = []
        for o in e.optimizers:
            g = _engine._optimizer_groups(o)
            if g is None:
                self._disable("%s is not a bcml.optim.SGD or Adam" % type(o).__name__)
                return None
            sets.append(g)
        return sets

    def _outputs(self, out):
        """(structure, tensors) of what the step returned, or None (replay turned off, saying why)."""
        otensors = []
        try:
            ospec = _flatten_out(out, otensors)
        except _Unsupported as e:
            self._disable(str(e))
            return None
        if len(otensors) > _core.PLAN_MAX_IO:
            self._disable("it returns %d tensors (at most %d replay)" % (len(otensors), _core.PLAN_MAX_IO))
            return None
        return ospec, otensors

    def _record(self, base, args, kwargs, tensors, named, scalars):
        self._last = None
        guard = _engine._Guard(self._fn, tuple(named) + self.watch)
        rec = _Rec()
        _tls.rec = rec
        _core.record_begin(True)
        try:
            out = self._fn(*args, **kwargs)
        finally:
            recording = _core.record_end()
            _tls.rec = None
        if recording.tainted:
            self._disable("the step cannot be recorded: %s" % recording.tainted)
            return out
        flat = self._outputs(out)
        if flat is None:
            return out
        ospec, otensors = flat
        try:
            plan = _core.plan_build(recording, tuple(tensors), None, tuple(otensors))
        except (ValueError, TypeError) as e:
            self._disable("the step cannot be recorded: %s" % e)
            return out
        why = guard.problem(plan)
        if why is not None:
            self._disable("the step has a Python side effect that a replay would skip: %s" % why)
            return out
        # the Modules whose parameters or buffers the plan reads, and their parents, are watched
        # from now on wherever the step reaches them (through a helper function, say): their
        # modes, numbers and parameters join the signature
        Module = _module_types()[0]
        used = [m for m in _engine._Guard.modules_of(plan) if all(m is not o for o in self._used)]
        self._used = self._used + used
        named = named + used
        self.entries[base + (self._state(named, scalars, Module),)] = _Entry(plan, list(rec.optimizers), ospec)
        return out

    def _check(self, e, args, kwargs, tensors, named):
        """Replays the step, keeps what it computed, puts the state back, runs the step eagerly
        (watched for Python side effects) and compares: outputs, the plan's constants
        (parameters, buffers), gradients and the optimizers' state."""
        sets = self._sets(e)
        if sets is None:
            return self._fn(*args, **kwargs)
        snap = _engine._snapshot(e.plan, e.optimizers)
        outs = _core.plan_exec(e.plan, tensors, sets)
        after = _state_arrays(snap)
        replayed = [o.detach().numpy().copy() for o in outs]
        _engine._restore(snap)
        guard = _engine._Guard(self._fn, tuple(named) + self.watch)
        out = self._fn(*args, **kwargs)
        why = guard.problem(e.plan)
        if why is not None:
            self._disable("the step has a Python side effect that a replay would skip: %s" % why)
            return out
        flat = self._outputs(out)
        if flat is None:
            return out
        ospec, otensors = flat
        ok = ospec == e.ospec and _same(replayed, [o.detach().numpy() for o in otensors]) and \
            _same(after, _state_arrays(snap))
        if ok:
            e.verified = True
        else:
            self._disable("its replayed step differs from the eager one")
        return out


def _same(a, b):
    """Lists of arrays (or None) equal up to float32 rounding."""
    return len(a) == len(b) and all((x is None and y is None) or (x is not None and y is not None and
                                                                  _engine._close(x, y)) for x, y in zip(a, b))


def _state_arrays(snap):
    """Copies of what a snapshot covers, as they are now (None where a gradient or state is absent)."""
    out = [c.detach().numpy().copy() for c, _ in snap["consts"]]
    for c, _ in snap["consts"]:
        g = c.grad if c.requires_grad else None
        out.append(None if g is None else g.numpy().copy())
    for g, _st in snap["opt"]:
        for k in _engine._STATE_KEYS:
            if k in g:
                out.extend(None if t is None else t.numpy().copy() for t in g[k])
    return out


def compile(model=None, *, check_every=1000, watch=(), fullgraph=False, dynamic=None, backend="bcml",
            mode=None, options=None, disable=False):
    """Compiles a step function: ``step = bcml.compile(step_fn)``, or ``@bcml.compile`` /
    ``@bcml.compile(check_every=...)`` on its definition.

    The step records itself on its first call for each signature (tensor shapes and dtypes,
    other arguments' values, grad mode, the modes and parameters of the Modules it names); later
    calls replay it in C: the forward ops, ``backward()``, ``zero_grad()`` and the optimizer's
    ``step()`` (bcml.optim.SGD or Adam), with no Python in between. The second call of each
    signature, and every ``check_every``-th call after it, is checked against an eager run. A
    step that cannot be replayed runs eagerly with a ReplayWarning (see bcml/_compile.py).
    Returns the step's outputs as tensors (in the structure it returns).

    bcml replays whole steps, not models: ``bcml.compile(model)`` raises TypeError. The
    arguments ``fullgraph``, ``dynamic``, ``backend``, ``mode`` and ``options`` are
    torch.compile's; they are accepted for code written for it and change nothing;
    ``disable=True`` returns the function unchanged. ``watch``: objects whose attributes the
    step may change (a change makes it eager, as in the training helpers)."""
    from .nn.modules import Module
    from . import _values
    if isinstance(model, Module):
        raise TypeError("bcml.compile() got a Module (%s): bcml replays whole training steps, not models. "
                        "Compile the function that runs one step instead, e.g.\n"
                        "    @bcml.compile\n"
                        "    def train_step(x, y):\n"
                        "        optimizer.zero_grad()\n"
                        "        loss = loss_fn(model(x), y)\n"
                        "        loss.backward()\n"
                        "        optimizer.step()\n"
                        "        return loss" % type(model).__name__)
    if isinstance(check_every, bool) or not isinstance(check_every, int):
        raise TypeError("compile(): argument 'check_every' must be an int, not %s" % type(check_every).__name__)
    if check_every < 1:
        raise ValueError("compile(): argument 'check_every' must be at least 1, got %d" % check_every)
    disable = _values.flag(disable, "compile", "disable")
    _values.flag(fullgraph, "compile", "fullgraph")
    if dynamic is not None:
        _values.flag(dynamic, "compile", "dynamic")
    if mode is not None and not isinstance(mode, str):
        raise TypeError("compile(): argument 'mode' must be a str or None, not %s" % type(mode).__name__)
    if mode not in (None, "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"):
        raise ValueError("compile(): argument 'mode' must be None, 'default', 'reduce-overhead', 'max-autotune' "
                         "or 'max-autotune-no-cudagraphs', got %r" % (mode,))
    if options is not None and not isinstance(options, dict):
        raise TypeError("compile(): argument 'options' must be a dict or None, not %s" % type(options).__name__)
    if not isinstance(backend, str) and not callable(backend):
        raise TypeError("compile(): argument 'backend' must be a str or a callable, not %s" % type(backend).__name__)
    if not isinstance(watch, (tuple, list)):
        raise TypeError("compile(): argument 'watch' must be a tuple or list of objects, not %s"
                        % type(watch).__name__)

    def wrap(fn):
        if isinstance(fn, Module):
            return compile(fn)
        if not callable(fn):
            raise TypeError("compile(): argument 'model' (the step function) must be callable, not %s"
                            % type(fn).__name__)
        if disable:
            return fn
        return CompiledStep(fn, check_every, watch)

    if model is None:
        return wrap
    return wrap(model)
