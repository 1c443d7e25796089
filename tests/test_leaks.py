"""Leak test: every C entry point of bcml._core, called 100,000 times on minimal valid inputs.

The entry points are found by walking the module: its functions, and every method, attribute
(getter, and setter where writable) and constructor of its types, including the types only
reachable through what the entry points return (Recording, Plan). CALLS maps each name to a
minimal valid call; a found entry point without one fails the test, so a function added later
cannot go unchecked. Each call runs 100,000 times in a subprocess (a crash fails the test and
names the call); between call 50,000 and call 100,000 the resident set (/proc/self/statm) must
grow by less than 1 MiB and the number of objects the garbage collector tracks must not change.
(About 30 s in all on the normal build.)

Run one call by hand: python tests/test_leaks.py --worker manual_seed
"""
import gc
import json
import os
import subprocess
import sys
import time
import types

# Under AddressSanitizer (the CI's sanitizer pass preloads libasan) freed memory sits in a
# quarantine and the resident set says nothing about leaks: there the test makes 10,000 calls
# and checks the object count only (ASan's own leak report is off in that pass).
_ASAN = "libasan" in os.environ.get("LD_PRELOAD", "")
N_CALLS = 10_000 if _ASAN else 100_000
RSS_LIMIT = 1 << 20          # bytes of growth allowed between call 50,000 and call 100,000


# ---- the objects the calls use ------------------------------------------------------------
def make_context():
    """Small inputs for every call, built once per worker (outside the timed loops)."""
    import numpy as np

    import bcml
    import bcml.nn.functional as F
    from bcml import _core, nn

    c = types.SimpleNamespace(core=_core, np=np, bcml=bcml)
    c.ops = _core.op_ids()
    c.gen = bcml.Generator(1)
    c.a = bcml.from_numpy(np.ones((2, 3), np.float32))
    c.b = bcml.from_numpy(np.full((2, 3), 2.0, np.float32))
    c.w = bcml.from_numpy(np.ones((2, 3), np.float32))
    c.w.requires_grad = True
    c.arr32 = np.ones((2, 3), np.float32)
    c.arr64 = np.ones((2, 3), np.float64)
    c.big_u64 = np.array([2 ** 64 - 1], np.uint64)
    c.zero_state = bytes(len(c.gen.get_state()))
    c.h1, c.h2, c.y = [0, 1, 2, 1], [0, 2, 2, 1], [0, 1, 1, 1]
    c.state = c.gen.get_state()
    # an optimizer parameter with a gradient (its state lists are fresh at every call)
    c.p = nn.Parameter(bcml.zeros(3))
    c.p.grad = bcml.ones(3)
    # a recorded training step of a tiny model, its plan, and an epoch of two batches
    lin = nn.Linear(3, 2, generator=bcml.Generator(2))
    x = bcml.from_numpy(np.ones((2, 3), np.float32))
    y = bcml.tensor([0, 1])
    _core.record_begin()
    loss = F.cross_entropy(lin(x), y)
    c.rec = _core.record_end()
    c.plan = _core.plan_build(c.rec, (x, y), loss, ())
    c.x, c.yt, c.params = x, y, list(lin.parameters())
    c.full = (bcml.from_numpy(np.ones((4, 3), np.float32)), bcml.tensor([0, 1, 1, 0]))
    c.bounds = np.array([0, 2, 4], np.int64)
    c.losses = np.zeros(2, np.float32)
    _core.record_begin()
    out = lin(x)
    c.fwd_plan = _core.plan_build(_core.record_end(), (x,), None, (out,))
    c.outs = (bcml.from_numpy(np.zeros((4, 2), np.float32)),)
    c.threads = _core.get_num_threads()
    # a whole recorded step (bcml.compile's record): a gradient clear, forward, backward, an SGD step
    _core.record_begin(True)
    lin.weight.grad = None
    sloss = F.cross_entropy(lin(x), y)
    sloss.backward()
    _core.record_mark_optim(0)
    c.step_plan = _core.plan_build(_core.record_end(), (x, y), None, (sloss,))
    c.step_sets = [[(0, (1e-3, 0.9, 0.0, 0.0, False, False), c.params, [None] * len(c.params), None, None, None)]]
    head = b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'
    head += b" " * (-len(head) % 8)
    c.st_file = len(head).to_bytes(8, "little") + head + b"\0\0\x80\x3f"
    return c


def _apply(c):
    core, ops, a, b, w, g = c.core, c.ops, c.a, c.b, c.w, c.gen

    def call():
        core.apply(ops["add"], (a, b), (), ())                 # one output, no graph
        core.apply(ops["max_dim"], (w,), (1, 0), ())           # two outputs (a tuple), a graph node
        core.apply(ops["dropout"], (w,), (1,), (0.5,), g)      # draws from a generator
        core.apply(ops["add_scalar"], (c.yt,), (1, 3, 2), ())  # the exact int64 path
        _fails(core.apply, ops["add_scalar"], (c.yt,), (1, 2 ** 70, 2), ())  # an argument beyond int64
    return call


def _backward(c):
    core, ops, w = c.core, c.ops, c.w

    def call():
        loss = core.apply(ops["sum"], (core.apply(ops["mul"], (w, c.b), (), ()),), (0, 0, 1), ())
        loss.backward(retain_graph=True)
        loss.backward()
        _fails(loss.backward, errors=(RuntimeError,))           # the graph was freed
        loss = core.apply(ops["sum"], (core.apply(ops["mul"], (w, c.b), (), ()),), (0, 0, 1), ())
        c.b._bump_version()
        _fails(loss.backward, errors=(RuntimeError,))           # a saved input changed in place
        w.grad = None
    return call


def _record(c):
    core = c.core

    def call():
        core.record_begin()
        core.apply(c.ops["add"], (c.a, c.b), (), ())
        core.record_end()
    return call


def _hooks(c):
    """A Python backward hook on a graph node and on a leaf (each freed with its tensor), one that
    replaces the gradient and one that raises (its exception comes out of backward)."""
    core = c.core

    def bad(g):
        raise KeyError("hook")

    def call():
        leaf = c.bcml.ones(3, requires_grad=True)
        core._tensor_hooks(leaf, True)[0] = lambda g: g * 2
        y = leaf * 3
        core._tensor_hooks(y, True)[0] = lambda g: None
        y.sum().backward()
        z = leaf * 2
        core._tensor_hooks(z, False)
        core._tensor_hooks(z, True)[0] = bad
        _fails(z.sum().backward, errors=(KeyError,))
        _fails(core._tensor_hooks, c.a, True, errors=(RuntimeError,))
    return call


def _compile_state(c):
    """bcml.compile's module walk on a small model (a Sequential with a dropout, a shared child
    and a None submodule) and on bad arguments."""
    core, nn = c.core, c.bcml.nn
    lin = nn.Linear(3, 2)
    model = nn.Sequential(lin, nn.Dropout(0.3), lin)
    model.add_module("none", None)

    def call():
        st = core.compile_state([model, lin], (1, "a", None), nn.Module)
        assert core.compile_state_equal([model, lin], (1, "a", None), nn.Module, st)
        assert not core.compile_state_equal([model, lin], (1, "b", None), nn.Module, st)
        assert not core.compile_state_equal([model], (1, "a", None), nn.Module, st)
        _fails(core.compile_state_equal, [model], (), nn.Module, [1])
        _fails(core.compile_state, (model,), (), nn.Module)
        _fails(core.compile_state, [model], 3, nn.Module)
        bad = nn.Linear(2, 2)
        object.__setattr__(bad, "_parameters", [1])
        _fails(core.compile_state, [bad], (), nn.Module)
    return call


def _fails(f, *args, errors=(TypeError, ValueError)):
    """Calls f(*args), which must raise one of errors: error paths must not leak either."""
    try:
        f(*args)
    except errors:
        return
    raise AssertionError("%s%r did not raise" % (getattr(f, "__name__", f), args))


def _setter(name, value):
    return lambda c: (lambda: setattr(c.a, name, value))


# name -> function of the context giving a zero-argument call
CALLS = {
    # module functions
    "_set_tensor_class": lambda c: lambda: c.core._set_tensor_class(c.bcml.Tensor),
    "_tensor_hooks": _hooks,
    "_has_hooks": lambda c: lambda: c.core._has_hooks(c.w),
    "_record_taint": lambda c: lambda: c.core._record_taint("why"),
    "_storage_bytes": lambda c: c.core._storage_bytes,
    "_release_cached_memory": lambda c: c.core._release_cached_memory,
    "adam_step": lambda c: lambda: c.core.adam_step([c.p], [None], [None], [None], [0], 1e-3, 0.9, 0.999,
                                                     1e-8, 0.0, True),
    "apply": _apply,
    "bootstrap_tables": lambda c: lambda: (c.core.bootstrap_tables([[3, 1, 0, 2]], 4, 1),
                                           _fails(c.core.bootstrap_tables, [[1, -1]], 2, 1),
                                           _fails(c.core.bootstrap_tables, [[1, 1]], 0, 1)),
    "count_table": lambda c: lambda: (c.core.count_table(c.h1, c.h2, c.y),
                                      _fails(c.core.count_table, c.h1, c.h2, [0, 1, 2 ** 40, 0])),
    "derive_seed": lambda c: lambda: c.core.derive_seed(1, 2),
    "empty": lambda c: lambda: c.core.empty((2, 3), "float32"),
    "fill_": lambda c: lambda: (c.core.fill_(c.a, 2, 1.5), c.core.fill_(c.b, 0, 0.0, 1.0, c.gen),
                                _fails(c.core.fill_, c.yt, 2, float("nan"))),
    "from_numpy": lambda c: lambda: (c.core.from_numpy(c.arr32), c.core.from_numpy(c.arr64),
                                     _fails(c.core.from_numpy, c.big_u64)),
    "get_num_threads": lambda c: c.core.get_num_threads,
    "get_winograd": lambda c: c.core.get_winograd,
    "get_conv_direct": lambda c: c.core.get_conv_direct,
    "get_avx512": lambda c: c.core.get_avx512,
    "is_grad_enabled": lambda c: c.core.is_grad_enabled,
    "op_ids": lambda c: c.core.op_ids,
    "plan_build": lambda c: lambda: c.core.plan_build(c.rec, (c.x, c.yt), None, ()),
    "plan_predict": lambda c: lambda: c.core.plan_predict((c.fwd_plan,), c.full[:1], None, c.bounds, 0, c.outs),
    "plan_train": lambda c: lambda: c.core.plan_train(
        (c.plan,), c.full, None, c.bounds, 0,
        [(0, (1e-3, 0.9, 0.0, 0.0, False, False), c.params, [None] * len(c.params), None, None, None)],
        c.losses),
    "plan_exec": lambda c: lambda: (c.core.plan_exec(c.step_plan, (c.x, c.yt), c.step_sets),
                                    _fails(c.core.plan_exec, c.step_plan, (c.x, c.yt), [])),
    "is_recording": lambda c: c.core.is_recording,
    "record_mark_optim": lambda c: lambda: (c.core.record_begin(True), c.core.record_mark_optim(0),
                                            c.core.record_end(), c.core.record_mark_optim(1),
                                            _fails(c.core.record_mark_optim, -1)),
    "randperm": lambda c: lambda: c.core.randperm(5, c.gen),
    "record_begin": _record,
    "record_end": _record,
    "record_pause": lambda c: lambda: c.core.record_pause(False),
    "set_grad_enabled": lambda c: lambda: c.core.set_grad_enabled(True),
    "set_num_threads": lambda c: lambda: c.core.set_num_threads(c.threads),
    "set_thread_limit": lambda c: lambda: c.core.set_thread_limit(0),
    "set_winograd": lambda c: lambda: (c.core.set_winograd(c.core.get_winograd()), _fails(c.core.set_winograd, 2),
                                       _fails(c.core.set_winograd, "1")),
    "compile_state": _compile_state,
    "compile_state_equal": _compile_state,
    "set_conv_direct": lambda c: lambda: (c.core.set_conv_direct(c.core.get_conv_direct()),
                                          _fails(c.core.set_conv_direct, 2), _fails(c.core.set_conv_direct, "1")),
    "set_avx512": lambda c: lambda: (c.core.set_avx512(c.core.get_avx512()),
                                     _fails(c.core.set_avx512, 2), _fails(c.core.set_avx512, "1")),
    "cpu_avx512": lambda c: lambda: c.core.cpu_avx512(),
    "get_poison_fresh": lambda c: c.core.get_poison_fresh,
    "set_poison_fresh": lambda c: lambda: (c.core.set_poison_fresh(c.core.get_poison_fresh()),
                                           _fails(c.core.set_poison_fresh, 2), _fails(c.core.set_poison_fresh, "1")),
    "_parallel_selftest": lambda c: lambda: (c.core._parallel_selftest(5), _fails(c.core._parallel_selftest, 0),
                                             _fails(c.core._parallel_selftest, "3")),
    "safetensors_header": lambda c: lambda: (c.core.safetensors_header(c.st_file),
                                             _fails(c.core.safetensors_header, c.st_file[:12])),
    "sgd_step": lambda c: lambda: c.core.sgd_step([c.p], [None], 1e-3, 0.9, 0.0, 0.0),
    # Generator
    "Generator()": lambda c: lambda: c.core.Generator(5),
    "Generator._next_u64": lambda c: c.gen._next_u64,
    "Generator.get_state": lambda c: c.gen.get_state,
    "Generator.initial_seed": lambda c: c.gen.initial_seed,
    "Generator.manual_seed": lambda c: lambda: (c.gen.manual_seed(-5), _fails(c.gen.manual_seed, 2 ** 64)),
    "Generator.set_state": lambda c: lambda: (c.gen.set_state(c.state), _fails(c.gen.set_state, c.zero_state)),
    # TensorBase (and, through it, bcml.Tensor)
    "TensorBase()": lambda c: lambda: c.core.TensorBase(c.a),
    "TensorBase._copy_from": lambda c: lambda: c.a._copy_from(c.b),
    "TensorBase._bump_version": lambda c: c.a._bump_version,
    "TensorBase._zero_grad": lambda c: lambda: (c.p._zero_grad(False), c.p._zero_grad(True),
                                                setattr(c.p, "grad", c.bcml.ones(3))),
    "TensorBase._version": lambda c: lambda: c.a._version,
    "TensorBase._set_data": lambda c: lambda: c.a._set_data(c.b),
    "TensorBase.backward": _backward,
    "TensorBase.item": lambda c: c.p.sum().item,
    "TensorBase.numpy": lambda c: c.a.numpy,
    "TensorBase._data_ptr": lambda c: lambda: c.a._data_ptr,
    "TensorBase._dtype_name": lambda c: lambda: c.a._dtype_name,
    "TensorBase._grad_fn_name": lambda c: lambda: c.p.sum()._grad_fn_name,
    "TensorBase._numel": lambda c: lambda: c.a._numel,
    "TensorBase.grad": lambda c: lambda: c.p.grad,
    "TensorBase.grad=": lambda c: lambda: setattr(c.w, "grad", c.a),
    "TensorBase.is_leaf": lambda c: lambda: c.a.is_leaf,
    "TensorBase.ndim": lambda c: lambda: c.a.ndim,
    "TensorBase.requires_grad": lambda c: lambda: c.a.requires_grad,
    "TensorBase.requires_grad=": _setter("requires_grad", False),
    "TensorBase.shape": lambda c: lambda: c.a.shape,
    # Recording and Plan (returned by record_end and plan_build)
    "Recording.n_calls": lambda c: lambda: c.rec.n_calls,
    "Recording.tainted": lambda c: lambda: c.rec.tainted,
    "Plan.constants": lambda c: c.plan.constants,
    "Plan.generators": lambda c: c.plan.generators,
    "Plan.n_steps": lambda c: lambda: c.plan.n_steps,
    "Plan.run": lambda c: lambda: c.fwd_plan.run((c.x,)),
}


# ---- discovery ----------------------------------------------------------------------------
def _is_core_type(t):
    return isinstance(t, type) and t.__module__ == "bcml._core"


def entry_points(c):
    """Every C entry point of bcml._core by name: "func", "Type()", "Type.method", "Type.attr"
    and "Type.attr=" (writable attributes). Types: the module's, those of the context's objects
    and those of every table call's result."""
    core = c.core
    names = set()
    found = {v for v in vars(core).values() if _is_core_type(v)}
    found |= {type(v) for v in vars(c).values() if _is_core_type(type(v))}
    for name, obj in vars(core).items():
        if isinstance(obj, types.BuiltinFunctionType):
            names.add(name)
    for make in CALLS.values():  # what the entry points return (one call each)
        try:
            r = make(c)()
        except Exception:  # a stale table entry: reported by the test below, by name
            continue
        for v in r if isinstance(r, tuple) else (r,):
            if _is_core_type(type(v)):
                found.add(type(v))
    samples = {type(v): v for v in vars(c).values() if _is_core_type(type(v))}
    samples[core.TensorBase] = core.TensorBase(c.a)
    for t in found:
        tn = t.__name__
        attrs = vars(t)
        if "__new__" in attrs or "__init__" in attrs:
            names.add(tn + "()")
        for an, v in attrs.items():
            if isinstance(v, types.MethodDescriptorType):
                names.add("%s.%s" % (tn, an))
            elif isinstance(v, types.GetSetDescriptorType):
                names.add("%s.%s" % (tn, an))
                obj = samples.get(t)
                if obj is not None:
                    try:
                        v.__set__(obj, v.__get__(obj))
                        names.add("%s.%s=" % (tn, an))
                    except AttributeError:
                        pass  # read-only
            elif isinstance(v, types.WrapperDescriptorType) and an not in ("__init__",):
                names.add("%s.%s" % (tn, an))
    return sorted(names)


# ---- the worker (one subprocess per chunk) --------------------------------------------------
def _rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _run(call, n):
    for _ in range(n):
        call()


def _measure(call):
    t0 = time.perf_counter()
    _run(call, N_CALLS // 2)
    gc.collect()
    rss1, objs1 = _rss(), len(gc.get_objects())
    _run(call, N_CALLS - N_CALLS // 2)
    gc.collect()
    rss2, objs2 = _rss(), len(gc.get_objects())
    return rss2 - rss1, objs2 - objs1, time.perf_counter() - t0


def worker(names):
    c = make_context()
    if names == ["--list"]:
        print(json.dumps(entry_points(c)))
        return
    _measure(lambda: None)  # settles the interpreter's own first-time objects
    for name in names:
        print("start " + name, file=sys.stderr, flush=True)
        rss, objs, seconds = _measure(CALLS[name](c))
        print(json.dumps({"name": name, "rss": rss, "objects": objs, "seconds": seconds}), flush=True)


# ---- the tests ------------------------------------------------------------------------------
def _env():
    import bcml
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.abspath(bcml.__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("BCML_NUM_THREADS", "1")
    return env


def _worker(args, timeout):
    return subprocess.run([sys.executable, os.path.abspath(__file__), "--worker"] + args, env=_env(),
                          capture_output=True, text=True, timeout=timeout)


def test_every_entry_point_has_a_call():
    r = _worker(["--list"], 120)
    assert r.returncode == 0, r.stderr
    found = json.loads(r.stdout.strip().splitlines()[-1])
    missing = sorted(set(found) - set(CALLS))
    stale = sorted(set(CALLS) - set(found))
    assert not missing, "C entry points without a call in tests/test_leaks.py CALLS: %s" % missing
    assert not stale, "CALLS entries that are no C entry point (any more): %s" % stale


def test_no_entry_point_leaks():
    names = sorted(CALLS)
    chunks = [names[i::6] for i in range(6)]  # cheap and dear calls mixed; two workers at a time
    results, failures, running = {}, [], []

    def finish(chunk, p):
        try:
            out, err = p.communicate(timeout=600)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
        for line in out.splitlines():
            d = json.loads(line)
            results[d["name"]] = d
        if p.returncode != 0:
            last = [ln for ln in err.splitlines() if ln.startswith("start ")][-1:]
            failures.append("worker exited with %d during %s:\n%s" % (p.returncode, last, err[-2000:]))

    for chunk in chunks:
        if len(running) == 2:
            finish(*running.pop(0))
        running.append((chunk, subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--worker"] + chunk, env=_env(),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)))
    while running:
        finish(*running.pop(0))
    assert not failures, "\n".join(failures)
    assert sorted(results) == names
    bad = ["%s: RSS +%d bytes, %+d objects" % (n, d["rss"], d["objects"])
           for n, d in sorted(results.items())
           if (d["rss"] >= RSS_LIMIT and not _ASAN) or d["objects"] != 0]
    assert not bad, "leaks between call %d and call %d:\n%s" % (N_CALLS // 2, N_CALLS, "\n".join(bad))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2:])
