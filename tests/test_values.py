"""Numbers that do not fit, PyTorch's small behaviours, limits and messages (issue 9, parts 2
and 4): each reproducer of the issue as a regression test. Errors are checked for their exact
type (TypeError for a wrong type, ValueError for a wrong value or an int out of range) and for
a message naming the function and the argument, with PyTorch's wording where it has one."""
import math
import os
import re
import resource
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import numpy as np
import pytest

import bcml
import bcml.nn.functional as F
from bcml import _core, nn
from bcml import scores as S
from conftest import child_cwd, child_env

INT64_OVERFLOW = "value cannot be converted to type int64 without overflow"
FLOAT_OVERFLOW = "value cannot be converted to type float without overflow"
ROOT = Path(__file__).resolve().parents[1]


def raises(exc, fn, *args, words=(), **kwargs):
    """fn(*args, **kwargs) raises exactly exc (not a subclass), whose message holds every word."""
    with pytest.raises(BaseException) as info:
        fn(*args, **kwargs)
    assert type(info.value) is exc, "%s: %s" % (type(info.value).__name__, info.value)
    msg = str(info.value)
    for w in words:
        assert w in msg, "%r not in %r" % (w, msg)
    return msg


def torch_raises(fn):
    """PyTorch refuses it too (whatever its exception type)."""
    with pytest.raises(Exception):
        fn()


# ---- 1. integers that do not fit -------------------------------------------------------------
@pytest.mark.parametrize("make, words", [
    (lambda: bcml.full((1,), 2 ** 70), ("full", "fill_value", INT64_OVERFLOW)),
    (lambda: bcml.full((1,), -2 ** 63 - 1), ("full", "fill_value", INT64_OVERFLOW)),
    (lambda: bcml.tensor([2 ** 63]), ("tensor", "data", INT64_OVERFLOW)),
    (lambda: bcml.tensor(2 ** 63), ("tensor", "data", INT64_OVERFLOW)),
    (lambda: bcml.tensor([2 ** 64]), ("tensor", "data", INT64_OVERFLOW)),
    (lambda: bcml.tensor([[1], [-2 ** 63 - 1]]), ("tensor", "data", INT64_OVERFLOW)),
    # NumPy makes [2**63, -1] a float64 array: the int must not become 9.2e18 silently
    (lambda: bcml.tensor([2 ** 63, -1]), ("tensor", "data", INT64_OVERFLOW)),
    (lambda: bcml.tensor((2 ** 70, 1.5)), ("tensor", "data", INT64_OVERFLOW)),
    (lambda: bcml.tensor(np.array([2 ** 64 - 1], np.uint64)), ("tensor", "data", INT64_OVERFLOW)),
    (lambda: bcml.from_numpy(np.array([2 ** 64 - 1], np.uint64)), ("from_numpy", INT64_OVERFLOW)),
    (lambda: bcml.from_numpy(np.array([[1, 2 ** 63]], np.uint64)[:, ::-1]), ("from_numpy", INT64_OVERFLOW)),
    (lambda: bcml.tensor([1e20], dtype=bcml.int64), ("tensor", "data", INT64_OVERFLOW)),
    (lambda: bcml.tensor([1.0, math.nan], dtype=bcml.int64), ("tensor", "data", INT64_OVERFLOW)),
    (lambda: bcml.zeros(2, dtype=bcml.int64).fill_(math.nan), ("fill_", "value", INT64_OVERFLOW)),
    (lambda: bcml.zeros(2, dtype=bcml.int64).fill_(math.inf), ("fill_", "value", INT64_OVERFLOW)),
    (lambda: bcml.zeros(2, dtype=bcml.int64).fill_(1e30), ("fill_", "value", INT64_OVERFLOW)),
    (lambda: bcml.zeros(2, dtype=bcml.int64).fill_(2 ** 63), ("fill_", "value", INT64_OVERFLOW)),
    (lambda: bcml.zeros(2).fill_(1e39), ("fill_", "value", FLOAT_OVERFLOW)),
    (lambda: bcml.full((2,), 1e39), ("full", "fill_value", FLOAT_OVERFLOW)),
    (lambda: bcml.tensor([1]) + 2 ** 70, ("add", "other", INT64_OVERFLOW)),
    (lambda: bcml.tensor([1]) - 2 ** 70, ("sub", "other", INT64_OVERFLOW)),
    (lambda: 2 ** 70 - bcml.tensor([1]), ("rsub", "other", INT64_OVERFLOW)),
    (lambda: bcml.tensor([1]) * 2 ** 63, ("mul", "other", INT64_OVERFLOW)),
    (lambda: bcml.tensor([True]) + 2 ** 64, ("add", "other", INT64_OVERFLOW)),
    (lambda: bcml.tensor([1]) + np.uint64(2 ** 64 - 1), ("add", "other", INT64_OVERFLOW)),
    (lambda: bcml.randperm(2 ** 70), ("randperm", "n", INT64_OVERFLOW)),
    (lambda: _core.apply(_core.op_ids()["sum"], (bcml.ones(2),), (2 ** 70, 0, 0), ()),
     ("sum", "integer argument 0", INT64_OVERFLOW)),
])
def test_ints_beyond_int64_raise_value_error(make, words):
    raises(ValueError, make, words=words)


def test_torch_refuses_the_same_ints(torch):
    torch_raises(lambda: torch.full((1,), 2 ** 70))
    torch_raises(lambda: torch.tensor([2 ** 63]))
    torch_raises(lambda: torch.tensor([2 ** 63, -1]))
    torch_raises(lambda: torch.zeros(2, dtype=torch.long).fill_(math.nan))
    torch_raises(lambda: torch.tensor([1e20], dtype=torch.long))
    torch_raises(lambda: torch.tensor([1]) + 2 ** 70)
    torch_raises(lambda: torch.zeros(2).fill_(1e39))


def test_ints_that_fit_are_kept_exactly():
    edge = [-2 ** 63, 2 ** 63 - 1, 2 ** 53 + 1, -(2 ** 53) - 1]
    assert bcml.tensor(edge).tolist() == edge
    assert bcml.tensor(np.array([5, 2 ** 63 - 1], np.uint64)).tolist() == [5, 2 ** 63 - 1]
    assert bcml.from_numpy(np.array([7, 2 ** 63 - 1], np.uint64)).tolist() == [7, 2 ** 63 - 1]
    assert bcml.full((2,), 2 ** 53 + 1).tolist() == [2 ** 53 + 1] * 2
    assert bcml.full((1,), -2 ** 63).tolist() == [-2 ** 63]
    assert bcml.zeros(1, dtype=bcml.int64).fill_(2 ** 63 - 1).tolist() == [2 ** 63 - 1]
    assert bcml.zeros(2, dtype=bcml.int64).fill_(-2.7).tolist() == [-2, -2]  # truncated, as PyTorch
    assert bcml.zeros(2, dtype=bcml.int64).fill_(bcml.tensor(2 ** 60 + 3)).tolist() == [2 ** 60 + 3] * 2
    assert bcml.full((2,), np.float32(1.5)).tolist() == [1.5, 1.5]  # a NumPy float stays a float
    assert bcml.full((1,), True).dtype == bcml.bool
    assert bcml.zeros(1).fill_(2 ** 70).tolist() == [float(np.float32(2 ** 70))]


BIG = [0, 1, -1, 2 ** 53, 2 ** 53 + 1, 2 ** 62 + 12345, -2 ** 63, 2 ** 63 - 1]


def _wrap(v):
    return (v + 2 ** 63) % 2 ** 64 - 2 ** 63


@pytest.mark.parametrize("s", [2 ** 53 + 1, -(2 ** 53) - 3, 2 ** 63 - 1, -2 ** 63, 7, 0])
def test_int64_scalar_arithmetic_is_exact(s):
    x = bcml.tensor(BIG)
    assert (x + s).tolist() == [_wrap(v + s) for v in BIG]
    assert (s + x).tolist() == [_wrap(v + s) for v in BIG]
    assert (x - s).tolist() == [_wrap(v - s) for v in BIG]
    assert (s - x).tolist() == [_wrap(s - v) for v in BIG]
    assert (x * s).tolist() == [_wrap(v * s) for v in BIG]
    assert (-x).tolist() == [_wrap(-v) for v in BIG]
    assert (x + s).dtype == bcml.int64
    for op in ("__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__"):
        assert getattr(x, op)(s).tolist() == [getattr(v, op)(s) for v in BIG], op


def test_int64_scalar_arithmetic_against_torch(torch):
    vals = [0, 5, -3, 2 ** 53, 2 ** 62]
    for s in (2 ** 53 + 1, 2 ** 63 - 1, -2 ** 63, 3):
        for op in ("__add__", "__sub__", "__mul__", "__rsub__", "__eq__", "__lt__"):
            got = getattr(bcml.tensor(vals), op)(s).tolist()
            want = getattr(torch.tensor(vals), op)(s).tolist()
            assert got == want, (op, s)


def test_int64_comparisons_beyond_int64_follow_the_sign():
    x = bcml.tensor(BIG)
    assert (x < 2 ** 70).tolist() == [True] * len(BIG)
    assert (x == 2 ** 70).tolist() == [False] * len(BIG)
    assert (x > -2 ** 70).tolist() == [True] * len(BIG)
    assert (x != -2 ** 64).tolist() == [True] * len(BIG)


def test_float_scalars_beyond_a_double():
    raises(ValueError, lambda: bcml.ones(2) + 2 ** 1100, words=("add", "other", "double without overflow"))
    raises(ValueError, lambda: bcml.ones(2) / 2 ** 1100, words=("div", "other"))
    raises(ValueError, lambda: bcml.ones(2) ** 2 ** 1100, words=("pow", "exponent"))
    raises(ValueError, lambda: bcml.ones(2) < 2 ** 1100, words=("lt", "other"))
    raises(TypeError, lambda: bcml.ones(2) + 1j, words=("add", "other", "complex"))
    raises(TypeError, lambda: bcml.tensor([1 + 2j]), words=("tensor", "complex"))
    # a float32 tensor with a big int computes in float, as NumPy does
    assert (bcml.ones(1) * 2 ** 70).tolist() == [float(np.float32(2 ** 70))]


@pytest.mark.parametrize("other", [2 ** 70, 2, 1.5])
def test_matmul_with_a_number_is_a_type_error(other, torch):
    raises(TypeError, lambda: bcml.ones(2) @ other, words=("matmul", "other", "use *"))
    raises(TypeError, lambda: other @ bcml.ones(2), words=("matmul", "input"))
    torch_raises(lambda: torch.ones(2) @ other)


# ---- 2. floats beyond float32's range ----------------------------------------------------------
def _h(x):
    return x


@pytest.mark.parametrize("make, exc, words", [
    (lambda: bcml.loss.BCCrossEntropyLoss(_h, _h, 1e39), ValueError, ("BCCrossEntropyLoss", "lambda_c", "float32")),
    (lambda: bcml.loss.StrictImitationNLLLoss(_h, _h, 2 ** 1100), ValueError, ("lambda_c",)),
    (lambda: bcml.loss.BCBinaryCrossEntropyLoss(_h, _h, 0.5, discriminant_pivot=1e39), ValueError,
     ("BCBinaryCrossEntropyLoss", "discriminant_pivot", "float32")),
    (lambda: bcml.loss.BCBinaryCrossEntropyLoss(_h, _h, 0.5, discriminant_pivot="0.5"), TypeError,
     ("discriminant_pivot", "real number")),
    (lambda: bcml.optim.SGD([nn.Parameter(bcml.zeros(1))], lr=1e39), ValueError, ("SGD", "learning rate", "lr")),
    (lambda: bcml.optim.SGD([nn.Parameter(bcml.zeros(1))], lr=math.inf), ValueError, ("SGD", "lr", "finite")),
    (lambda: bcml.optim.SGD([nn.Parameter(bcml.zeros(1))], lr=0.1, momentum=1e39), ValueError, ("SGD", "momentum")),
    (lambda: bcml.optim.SGD([nn.Parameter(bcml.zeros(1))], lr=0.1, dampening=-1e39), ValueError,
     ("SGD", "dampening")),
    (lambda: bcml.optim.SGD([nn.Parameter(bcml.zeros(1))], lr=0.1, weight_decay=1e39), ValueError,
     ("SGD", "weight_decay")),
    (lambda: bcml.optim.Adam([nn.Parameter(bcml.zeros(1))], lr=1e39), ValueError, ("Adam", "lr")),
    (lambda: bcml.optim.Adam([nn.Parameter(bcml.zeros(1))], eps=1e39), ValueError, ("Adam", "eps")),
    (lambda: bcml.optim.Adam([nn.Parameter(bcml.zeros(1))], weight_decay=math.inf), ValueError,
     ("Adam", "weight_decay")),
    (lambda: bcml.optim.Adam([nn.Parameter(bcml.zeros(1))], betas=(0.9, math.nan)), ValueError, ("Adam", "beta")),
    (lambda: nn.BatchNorm1d(3, eps=1e39), ValueError, ("BatchNorm1d", "eps", FLOAT_OVERFLOW)),
    (lambda: nn.BatchNorm2d(3, momentum=1e39), ValueError, ("BatchNorm2d", "momentum", FLOAT_OVERFLOW)),
    (lambda: nn.BatchNorm1d(3, momentum=math.nan), ValueError, ("BatchNorm1d", "momentum", "finite")),
    (lambda: nn.BatchNorm1d(3, eps=-1.0), ValueError, ("BatchNorm1d", "eps")),
    (lambda: F.batch_norm(bcml.ones(4, 3), bcml.zeros(3), bcml.ones(3), eps=1e39), ValueError,
     ("batch_norm", "eps")),
    (lambda: F.batch_norm(bcml.ones(4, 3), bcml.zeros(3), bcml.ones(3), training=True, momentum=math.inf),
     ValueError, ("batch_norm", "momentum")),
    (lambda: nn.Dropout(1e39), ValueError, ("dropout", "'p'", "dropout probability has to be between 0 and 1")),
    (lambda: F.dropout2d(bcml.ones(1, 2, 2, 2), p=math.nan), ValueError, ("dropout2d", "'p'")),
    (lambda: nn.Dropout("0.5"), TypeError, ("dropout", "'p'")),
    (lambda: nn.init.uniform_(bcml.zeros(2), -1e39, 1e39), ValueError, ("uniform_", "'a'", FLOAT_OVERFLOW)),
    (lambda: nn.init.normal_(bcml.zeros(2), 0.0, 1e39), ValueError, ("normal_", "'std'", FLOAT_OVERFLOW)),
    (lambda: nn.init.constant_(bcml.zeros(2), -1e39), ValueError, ("constant_", "'val'", FLOAT_OVERFLOW)),
    (lambda: nn.init.constant_(bcml.zeros(2, dtype=bcml.int64), 2 ** 64), ValueError, ("constant_", "'val'", INT64_OVERFLOW)),
    (lambda: nn.init.uniform_(bcml.zeros(2), 0.0, 2 ** 1100), ValueError, ("uniform_", "'b'", "double without overflow")),
    (lambda: nn.init.normal_(bcml.zeros(2), "a"), TypeError, ("normal_", "'mean'", "real number")),
    (lambda: nn.init.normal_(np.zeros(2)), TypeError, ("normal_", "'tensor'")),
])
def test_settings_beyond_float32_are_refused(make, exc, words):
    raises(exc, make, words=words)


def test_optimizer_settings_are_checked_at_every_step():
    from bcml import _engine
    for opt in (bcml.optim.SGD([nn.Parameter(bcml.zeros(2))], lr=0.1),
                bcml.optim.Adam([nn.Parameter(bcml.zeros(2))], lr=0.1)):
        for p in opt.param_groups[0]["params"]:
            p.grad = bcml.ones(2)
        opt.step()
        opt.param_groups[0]["lr"] = 1e39  # e.g. a scheduler gone wild
        raises(ValueError, opt.step, words=(type(opt).__name__, "lr"))
        raises(ValueError, _engine._optimizer_groups, opt, words=("lr",))  # the replayed step's path
        opt.param_groups[0]["lr"] = 0.1
        opt.step()
    sgd = bcml.optim.SGD([nn.Parameter(bcml.zeros(2))], lr=0.1, momentum=0.9)
    sgd.param_groups[0]["momentum"] = 2 ** 1100
    raises(ValueError, sgd.step, words=("SGD", "momentum"))


def test_core_refuses_float_settings_beyond_float32():
    ops = _core.op_ids()
    logp = F.log_softmax(bcml.zeros(2, 3), 1)
    y = bcml.tensor([0, 1])
    for lam, piv in ((1e39, 0.5), (math.inf, 0.5), (1.0, 1e39)):
        raises(ValueError, _core.apply, ops["compat_loss"], (logp, y, logp), (0, 0, 1, 0), (lam, piv),
               words=("compat_loss",))
    x = bcml.ones(4, 3)
    for mom, eps in ((0.1, 1e39), (1e39, 1e-5), (math.nan, 1e-5)):
        raises(ValueError, _core.apply, ops["batch_norm"], (x, None, None, bcml.zeros(3), bcml.ones(3)), (1,),
               (mom, eps), words=("batch_norm",))
    p = nn.Parameter(bcml.zeros(2))
    p.grad = bcml.ones(2)
    for args in ((1e39, 0.0, 0.0, 0.0), (0.1, math.inf, 0.0, 0.0), (0.1, 0.9, math.nan, 0.0), (-0.1, 0.0, 0.0, 0.0)):
        raises(ValueError, _core.sgd_step, [p], [None], *args, words=("sgd",))
    for args in ((1e39, 0.9, 0.999, 1e-8, 0.0), (0.1, 1.0, 0.999, 1e-8, 0.0), (0.1, 0.9, 0.999, 1e39, 0.0)):
        raises(ValueError, _core.adam_step, [p], [None], [None], [None], [0], *args, words=("adam",))
    assert p.tolist() == [0.0, 0.0]  # refused before any update
    # a legal large lambda_c still trains on finite numbers
    loss = bcml.loss.BCNLLLoss(lambda x: (x, x.softmax(1), x.log_softmax(1)), lambda x: (x, x.softmax(1),
                               x.log_softmax(1)), 3e38)
    assert math.isfinite(loss(bcml.zeros(2, 3), y).item())


# ---- 3. smaller differences from PyTorch ------------------------------------------------------------
@pytest.mark.parametrize("kw", [dict(min=math.nan), dict(max=math.nan), dict(min=math.nan, max=math.nan),
                                dict(min=math.nan, max=0.0), dict(min=0.0, max=math.nan), dict(min=-1.0, max=1.0),
                                dict(min=2.0, max=1.0)])
def test_clamp_with_nan_bounds_matches_torch(kw, torch):
    vals = [3.0, -3.0, 0.5, math.nan, math.inf]
    got = bcml.tensor(vals).clamp(**kw).numpy()
    want = torch.tensor(vals).clamp(**kw).numpy()
    np.testing.assert_array_equal(got, want)
    x = bcml.tensor(vals[:3], requires_grad=True)
    x.clamp(**kw).sum().backward()
    tx = torch.tensor(vals[:3], requires_grad=True)
    tx.clamp(**kw).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), tx.grad.numpy())


def test_clamp_bounds_must_be_numbers(torch):
    for bad in ({}, np.ones(3), "a", [1.0], bcml.ones(3)):
        raises(TypeError, lambda: bcml.zeros(2).clamp(bad), words=("clamp", "min"))
        raises(TypeError, lambda: bcml.zeros(2).clamp(max=bad), words=("clamp", "max"))
        torch_raises(lambda: torch.zeros(2).clamp({}))
    raises(ValueError, lambda: bcml.zeros(2).clamp(max=1e39), words=("clamp", "max", FLOAT_OVERFLOW))
    torch_raises(lambda: torch.zeros(2).clamp(max=1e39))
    assert bcml.tensor([0.0, 5.0]).clamp(bcml.tensor(1.0), np.float64(2.0)).tolist() == [1.0, 2.0]
    assert bcml.tensor([0.0, 5.0]).clamp(min=-math.inf, max=math.inf).tolist() == [0.0, 5.0]


def test_uniform_and_normal_refuse_what_torch_refuses(torch):
    for a, b in ((5.0, 1.0), (math.nan, 1.0), (0.0, math.inf), (-3e38, 3e38)):
        raises(ValueError, lambda: bcml.zeros(3).uniform_(a, b), words=("uniform_",))
        torch_raises(lambda: torch.zeros(3).uniform_(a, b))
    msg = raises(ValueError, lambda: bcml.zeros(3).uniform_(5, 1), words=("uniform_", "'a'", "'b'"))
    assert "from=5 > to=1" in msg
    for std in (-1.0, math.nan):
        raises(ValueError, lambda: bcml.zeros(3).normal_(0.0, std), words=("normal_", "'std'", "std >= 0.0"))
        torch_raises(lambda: torch.zeros(3).normal_(0.0, std))
    raises(TypeError, lambda: bcml.zeros(3).uniform_("a", 1.0), words=("uniform_", "'a'", "real number"))
    raises(TypeError, lambda: bcml.zeros(3).normal_(None), words=("normal_", "'mean'"))
    # the edge cases PyTorch accepts
    assert bcml.zeros(3).uniform_(1.0, 1.0).tolist() == torch.zeros(3).uniform_(1.0, 1.0).tolist()
    assert bcml.zeros(3).normal_(2.0, 0.0).tolist() == torch.zeros(3).normal_(2.0, 0.0).tolist()
    # a refused call leaves the tensor and the generator as they were
    g = bcml.Generator(3)
    x = bcml.full((3,), 7.0)
    raises(ValueError, lambda: x.uniform_(5, 1, generator=g))
    assert x.tolist() == [7.0] * 3
    assert bcml.rand(3, generator=g).tolist() == bcml.rand(3, generator=bcml.Generator(3)).tolist()


def test_generator_refuses_an_all_zero_state():
    g = bcml.Generator(11)
    state = g.get_state()
    raises(ValueError, g.set_state, bytes(len(state)), words=("set_state", "new_state", "all-zero"))
    assert g.get_state() == state  # unchanged
    raises(ValueError, g.set_state, b"abc", words=("set_state", "new_state"))
    raises(ValueError, bcml.set_rng_state, bytes(len(state)), words=("set_state",))
    # a state that is zero but for the seed word is refused as well (the seed is not drawn from)
    raises(ValueError, g.set_state, bytes(len(state) - 8) + b"\x01" * 8, words=("all-zero",))
    g.set_state(state)
    assert g._next_u64() == bcml.Generator(11)._next_u64()


def test_seeds_as_torch_takes_them(torch):
    for s in (0, 5, -1, -2 ** 63, 2 ** 64 - 1):
        assert bcml.Generator().manual_seed(s).initial_seed() == torch.Generator().manual_seed(s).initial_seed()
    for s in (2 ** 64, -2 ** 63 - 1):
        raises(ValueError, bcml.Generator().manual_seed, s, words=("manual_seed", "seed"))
        raises(ValueError, bcml.Generator, s, words=("Generator", "seed"))
        torch_raises(lambda: torch.Generator().manual_seed(s))
    raises(TypeError, bcml.Generator().manual_seed, 1.5, words=("manual_seed", "seed"))
    # the sweep's job seeds: no silent masking of a seed beyond 64 bits
    raises(ValueError, _core.derive_seed, 2 ** 64, 1, words=("derive_seed", "seed"))
    raises(ValueError, _core.derive_seed, 1, 2 ** 64, words=("derive_seed", "index"))
    from bcml import _sweep
    raises(ValueError, _sweep._nonnegative_seed, 2 ** 64, words=("seed",))
    assert _sweep._nonnegative_seed(2 ** 64 - 1) == 2 ** 64 - 1


def test_requires_grad_must_be_a_bool(torch):
    for bad in ("abc", 1, 0, None, 1.0):
        x = bcml.zeros(2)
        raises(TypeError, setattr, x, "requires_grad", bad, words=("requires_grad", "bool"))
        assert x.requires_grad is False
        t = torch.zeros(2)
        torch_raises(lambda: setattr(t, "requires_grad", bad))
    x = bcml.zeros(2)
    x.requires_grad = True
    x.requires_grad = np.bool_(False)
    assert x.requires_grad is False
    raises(TypeError, x.requires_grad_, "yes", words=("requires_grad",))


# ---- 5. scores with huge labels --------------------------------------------------------------------
def _reference_table(h1, h2, y, C):
    r1, r2 = h1 == y, h2 == y
    cells = [r1 & r2, r1 & ~r2, ~r1 & r2, ~r1 & ~r2, h1 != h2]
    return np.stack([np.bincount(y, c, C) for c in cells], 1).astype(np.int64)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("given", [False, True])
def test_count_table_with_many_classes_matches_numpy(threads, given):
    # 600,000 samples (two threads' worth) over 400,000 classes: labels beyond the per-thread
    # tables' bound take the spill path
    rng = np.random.default_rng(5)
    n, C = 600_000, 400_000
    y = rng.integers(0, C, n)
    h1 = np.where(rng.random(n) < 0.7, y, rng.integers(0, C, n))
    h2 = np.where(rng.random(n) < 0.5, y, h1)
    y[7] = C - 1
    table = _core.count_table(h1, h2, y, C if given else None, num_threads=threads)
    np.testing.assert_array_equal(table, _reference_table(h1, h2, y, C))


def test_count_table_refuses_huge_labels_naming_the_argument():
    y = [0, 1, 2, 1, 0, 2 ** 28]
    raises(ValueError, S.count_table, [0] * 6, [0] * 6, y, words=("count_table", "y", "index 5", "268435456"))
    raises(ValueError, S.trust_compatibility_score, [0, 2 ** 40], [0, 0], [0, 0],
           words=("trust_compatibility_score", "h1_labels", "index 1"))
    raises(ValueError, S.count_table, [0], [0], [0], num_classes=2 ** 40, words=("count_table", "num_classes"))


_HUGE_LABEL_SCRIPT = """
import resource, sys
import numpy as np
from bcml import scores as S
label = int(sys.argv[1])
h1 = np.zeros(1000, np.int64); y = np.arange(1000) % 10; y[5] = label
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
try:
    t = S.count_table(h1, h1, y)
    assert t.shape == (label + 1, 5) and t[label, 3] == 1 and t[:, :4].sum() == 1000 and t[:, 4].sum() == 0
    out = "table"
except ValueError as e:
    assert "y holds label %d at index 5" % label in str(e), e
    out = "ValueError"
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
print(out, peak)
"""


def test_count_table_memory_is_bounded_by_its_result():
    """Labels up to 2**22 without num_classes: the result is (2**22 + 1, 5) int64 (168 MB). The
    per-thread tables used to grow to (largest label + 1) x 64 bytes each (268 MB, 16 GiB near
    2**28) before any check, plus a copy of the result; now the peak stays near the result's
    size. Near 2**28 the class count is checked against memory before anything is allocated."""
    env = child_env({"BCML_NUM_THREADS": "2"})
    label = 2 ** 22
    r = subprocess.run([sys.executable, "-c", _HUGE_LABEL_SCRIPT, str(label)], env=env, cwd=child_cwd(),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    kind, peak = r.stdout.split()
    assert kind == "table"
    result_bytes = (label + 1) * 5 * 8
    assert int(peak) < 1.25 * result_bytes, (int(peak), result_bytes)


def test_count_table_refuses_a_class_count_beyond_memory_before_allocating():
    """A label whose class count (label + 1) does not fit in memory, without num_classes: a
    ValueError naming y and the index, at once and with no large allocation (each thread's table
    used to grow to (label + 1) x 64 bytes first: 16 GiB near 2**28)."""
    phys = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    label = min(phys // 104 + 10, 2 ** 28 + 5)  # beyond memory, or beyond the 2**28 class limit
    y = np.arange(1000) % 10
    y[5] = label
    h = np.zeros(1000, np.int64)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for threads in (1, 2):
        raises(ValueError, _core.count_table, h, h, y, num_threads=threads,
               words=("count_table", "y", "label %d at index 5" % label))
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 64 * 1024  # KiB


# ---- 6. slices and the op table -------------------------------------------------------------------------
@pytest.mark.parametrize("key", [slice(0, 5, 2 ** 63 - 1), slice(0, 5, 2 ** 64), slice(3, 3, 2 ** 63 - 1),
                                 slice(9, None, 2 ** 63 - 1), slice(None, None, 10), slice(1, 10, 3),
                                 slice(-3, None, 2 ** 62)])
def test_slices_with_huge_steps_match_numpy(key):
    assert bcml.arange(10)[key].tolist() == np.arange(10)[key].tolist()
    x = bcml.arange(20.0).reshape(2, 10)
    np.testing.assert_array_equal(x[:, key].numpy(), np.arange(20.0, dtype=np.float32).reshape(2, 10)[:, key])


def test_slice_op_length_with_a_step_near_int64_max():
    out = _core.apply(_core.op_ids()["slice"], (bcml.arange(10),), (0, 0, 5, 2 ** 63 - 1), ())
    assert out.tolist() == [0]
    out = _core.apply(_core.op_ids()["slice"], (bcml.arange(10),), (0, 9, 10, 2 ** 63 - 1), ())
    assert out.tolist() == [9]


def test_op_table_count_assert_can_fail(tmp_path):
    """ops.c's static assert on the table's length fails when the last op loses its entry (it
    could not fail while the table was declared with BCML_OP_COUNT entries)."""
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    src = (ROOT / "csrc" / "core" / "ops.c").read_text()
    inc = ["-I", str(ROOT / "csrc" / "core")]
    ok = subprocess.run([cc, "-std=c11", "-fsyntax-only", *inc, "-x", "c", "-"], input=src, text=True,
                        capture_output=True)
    assert ok.returncode == 0, ok.stderr
    lines = [ln for ln in src.splitlines() if re.match(r"\s*OPF?\(", ln)]
    broken = src.replace(lines[-1] + "\n", "")
    bad = subprocess.run([cc, "-std=c11", "-fsyntax-only", *inc, "-x", "c", "-"], input=broken, text=True,
                         capture_output=True)
    assert bad.returncode != 0 and "one table entry per op" in bad.stderr, bad.stderr
    # every op has a complete entry at import (bcml_ops_check, called by module init)
    assert len(_core.op_ids()) == len(lines)


# ---- 7. unclear errors become TypeError/ValueError naming the function and argument ------------------
@pytest.mark.parametrize("make, exc, words", [
    (lambda: bcml.stack([bcml.ones(2), np.ones(2)]), TypeError, ("stack", "tensors", "element 1")),
    (lambda: bcml.stack(5), TypeError, ("stack", "tensors")),
    (lambda: bcml.cat([bcml.ones(2), [1.0, 2.0]]), TypeError, ("cat", "tensors", "element 1")),
    (lambda: nn.BatchNorm1d(3)(5), TypeError, ("BatchNorm1d", "input")),
    (lambda: nn.BatchNorm2d(3)(np.ones((2, 3, 2, 2))), TypeError, ("BatchNorm2d", "input")),
    (lambda: nn.Flatten()(5), TypeError, ("Flatten", "input")),
    (lambda: nn.Linear(3, 3)(5), TypeError, ("linear", "input")),
    (lambda: nn.Sequential(nn.Linear(3, 3))([1, 2, 3]), TypeError, ("linear", "input")),
    (lambda: nn.Conv2d(1, 1, 3)("x"), TypeError, ("conv2d", "input")),
    (lambda: nn.MaxPool2d(2)(None), TypeError, ("max_pool2d", "input")),
    (lambda: nn.Softmax(1)(5), TypeError, ("softmax", "input")),
    (lambda: nn.MSELoss()(5, bcml.ones(1)) if hasattr(nn, "MSELoss") else F.mse_loss(5, bcml.ones(1)), TypeError,
     ("mse_loss", "input")),
    (lambda: F.nll_loss(bcml.zeros(2, 3), "ab"), TypeError, ("tensor",)),
    (lambda: bcml.ones(2).clamp(np.ones(3)), TypeError, ("clamp", "min")),
    (lambda: bcml.full((2,), "abc"), TypeError, ("full", "fill_value")),
    (lambda: bcml.full((2,), None), TypeError, ("full", "fill_value")),
    (lambda: bcml.full("ab", 1.0), TypeError, ("full", "size")),
    (lambda: bcml.zeros(2).fill_("abc"), TypeError, ("fill_", "value")),
    (lambda: bcml.zeros(2).fill_(bcml.ones(2)), ValueError, ("fill_", "value", "one-element")),
    (lambda: bcml.zeros_like(5), TypeError, ("zeros_like", "input")),
    (lambda: bcml.ones_like("a"), TypeError, ("ones_like", "input")),
    (lambda: bcml.empty_like(None), TypeError, ("empty_like", "input")),
    (lambda: bcml.arange(None), TypeError, ("arange", "end")),
    (lambda: bcml.arange(0, 5, "a"), TypeError, ("arange", "step")),
    (lambda: F.one_hot(bcml.zeros(0, dtype=bcml.int64)), ValueError,
     ("one_hot", "num_classes", "can not infer total number of classes from empty tensor")),
    (lambda: F.one_hot(bcml.tensor([3]), 2), ValueError, ("one_hot", "num_classes")),
    (lambda: F.one_hot(bcml.tensor([1]), 2.0), TypeError, ("one_hot", "num_classes")),
    (lambda: F.one_hot(bcml.tensor([1]), -2), ValueError, ("one_hot", "num_classes")),
    (lambda: F.one_hot(bcml.tensor([1.0])), TypeError, ("one_hot", "tensor")),
    (lambda: F.one_hot(bcml.tensor([0, 2 ** 40])), ValueError, ("size",)),
    (lambda: nn.Linear(2, 2).load_state_dict(None), TypeError, ("load_state_dict", "state_dict", "dict-like")),
    (lambda: nn.Linear(2, 2).load_state_dict([("weight", 1)]), TypeError, ("load_state_dict", "state_dict")),
    (lambda: S.compatibility_report([0, 1], [0, 1], [0, 1], class_names=["a"]), ValueError,
     ("compatibility_report", "class_names has 1 names")),
    (lambda: S.compatibility_report([0, 1], [0, 1], [0, 1], class_names=5), TypeError,
     ("compatibility_report", "class_names")),
])
def test_unclear_errors_are_clear(make, exc, words):
    raises(exc, make, words=words)


def test_class_names_blamed_before_the_labels():
    msg = raises(ValueError, S.compatibility_report, [0, 0, 1], [0, 1, 1], [0, 1, 1], class_names=["a"])
    # then the first label beyond it: its argument and index
    assert msg.index("class_names") < msg.index("h2_labels must hold class labels below num_classes=1, got 1 at index 1")
    r = S.compatibility_report([0, 0], [0, 0], [0, 0], class_names=["a", "b", "c"])
    assert r["num_classes"] == 3 and [c["support"] for c in r["per_class"]] == [2, 0, 0]


def test_one_hot_matches_torch(torch):
    for vals, nc in (([], 3), ([[0, 2], [1, 1]], -1), ([4], 6), ([[]], 2)):
        want = torch.nn.functional.one_hot(torch.tensor(vals, dtype=torch.long), nc)
        got = F.one_hot(bcml.tensor(vals, dtype=bcml.int64), nc)
        assert tuple(got.shape) == tuple(want.shape)
        np.testing.assert_array_equal(got.numpy(), want.numpy())
    torch_raises(lambda: torch.nn.functional.one_hot(torch.zeros(0, dtype=torch.long)))
    # a large class count no longer builds an n x n identity matrix (80 GB for 100,000 classes)
    big = F.one_hot(bcml.tensor([99_999]), 100_000)
    assert big.shape == (1, 100_000) and big.numpy()[0, 99_999] == 1 and big.numpy().sum() == 1


def test_memory_of_one_hot_is_its_result():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    F.one_hot(bcml.tensor([0, 5]), 30_000)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100_000  # KiB: far below 7 GB


def test_apply_integer_and_float_arguments_beyond_range():
    ops = _core.op_ids()
    raises(ValueError, _core.apply, ops["slice"], (bcml.arange(4),), (0, 0, 2 ** 64, 1), (),
           words=("slice", "integer argument 2", INT64_OVERFLOW))
    raises(ValueError, _core.apply, ops["pow_scalar"], (bcml.ones(2),), (), (2 ** 1100,),
           words=("pow_scalar", "float argument 0"))


def test_examples_in_the_issue_run_in_a_subprocess():
    """The issue's reproducers in a fresh interpreter that exits normally."""
    code = textwrap.dedent("""
        import math, numpy as np, bcml
        from bcml import nn, scores
        import bcml.nn.functional as F
        def kind(f):
            try:
                f()
                return "ok"
            except Exception as e:
                return type(e).__name__
        got = [kind(lambda: bcml.full((1,), 2 ** 70)), kind(lambda: bcml.tensor([2 ** 63])),
               kind(lambda: bcml.tensor(np.array([2 ** 64 - 1], dtype=np.uint64))),
               kind(lambda: bcml.zeros(1, dtype=bcml.int64).fill_(math.nan)),
               kind(lambda: bcml.tensor([1.0]) @ 2 ** 70), kind(lambda: bcml.tensor([1]) + 2 ** 70),
               kind(lambda: bcml.zeros(2).uniform_(5, 1)), kind(lambda: bcml.zeros(2).normal_(0, -1)),
               kind(lambda: bcml.zeros(2).clamp({})), kind(lambda: bcml.stack([bcml.ones(2), np.ones(2)])),
               kind(lambda: nn.BatchNorm1d(3)(5)), kind(lambda: bcml.zeros(2).clamp(np.ones(3))),
               kind(lambda: bcml.full((2,), "abc")), kind(lambda: F.one_hot(bcml.zeros(0, dtype=bcml.int64))),
               kind(lambda: nn.Linear(2, 2).load_state_dict(None)),
               kind(lambda: scores.compatibility_report([0, 1], [0, 1], [0, 1], class_names=["a"]))]
        print(" ".join(got))
        print((bcml.tensor([0]) + (2 ** 53 + 1)).item(), bcml.arange(10)[0:5:2 ** 63 - 1].tolist(),
              bcml.tensor([1.0]).clamp(min=math.nan).tolist())
    """)
    r = subprocess.run([sys.executable, "-c", code], env=child_env(), cwd=child_cwd(),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["ValueError"] * 4 + ["TypeError", "ValueError", "ValueError", "ValueError"] + \
        ["TypeError"] * 5 + ["ValueError", "TypeError", "ValueError"]
    assert lines[1] == "9007199254740993 [0] [nan]"
