"""Elementwise ops (csrc/core/elementwise.c): add, sub, mul, div with broadcasting, scalar ops,
exp/log/abs/clamp, cast, comparisons and where. Values against NumPy (float64 references from the
float32 inputs), gradients against central finite differences and everything against PyTorch."""
import numpy as np
import pytest

import bcml
from bcml import _core
from bcml._tensor import OPS
from conftest import check_grad

RNG = np.random.default_rng(1234)

# (shape of a, shape of b): same shape, single elements, trailing ("bias") broadcasts, general
# broadcasts in both directions, rank 4, and empty tensors
BROADCAST_SHAPES = [
    ((3, 4), (3, 4)),
    ((3, 4), ()),
    ((), (3, 4)),
    ((), ()),
    ((2, 3, 4), (4,)),
    ((4,), (2, 3, 4)),
    ((2, 3, 4), (1, 3, 4)),
    ((1, 1), (3,)),
    ((1,), (2, 3)),
    ((3, 1), (1, 4)),
    ((2, 1, 4), (3, 1)),
    ((2, 3, 4), (2, 1, 4)),
    ((2, 3, 1, 5), (3, 4, 1)),
    ((5, 1, 1, 2), (1, 3, 4, 1)),
    ((0, 3), (3,)),
    ((2, 0), (2, 1)),
    ((0,), ()),
    ((1, 0), (3, 1)),
]
GRAD_SHAPES = [s for s in BROADCAST_SHAPES if 0 not in s[0] + s[1]]


def randn(shape, rng=RNG):
    return rng.standard_normal(shape).astype(np.float32)


def away_from_zero(shape, rng=RNG, lo=0.5, hi=2.0):
    return (rng.uniform(lo, hi, shape) * rng.choice([-1.0, 1.0], shape)).astype(np.float32)


def apply(op, inputs, iargs=(), fargs=()):
    return _core.apply(OPS[op], tuple(inputs), tuple(iargs), tuple(fargs))


def compare_torch(torch, fn_b, fn_t, arrays, rtol=1e-5, atol=1e-6, seed=0):
    """Forward values and input gradients (of sum(w * out), fixed random w) against PyTorch."""
    rng = np.random.default_rng(seed)
    tb = [bcml.tensor(a, requires_grad=True) for a in arrays]
    tt = [torch.tensor(a, requires_grad=True) for a in arrays]
    ob, ot = fn_b(*tb), fn_t(*tt)
    assert ob.shape == tuple(ot.shape)
    np.testing.assert_allclose(ob.detach().numpy(), ot.detach().numpy(), rtol=rtol, atol=atol)
    w = np.asarray(rng.standard_normal(ob.shape), dtype=np.float32)
    (ob * bcml.from_numpy(w)).sum().backward()
    (ot * torch.from_numpy(w)).sum().backward()
    for i, (b, t) in enumerate(zip(tb, tt)):
        np.testing.assert_allclose(b.grad.numpy(), t.grad.numpy(), rtol=rtol, atol=atol,
                                   err_msg="gradient of input %d" % i)


# ---- add, sub, mul, div ----------------------------------------------------------------------
BINARY = {
    "add": (lambda a, b: a + b, np.add),
    "sub": (lambda a, b: a - b, np.subtract),
    "mul": (lambda a, b: a * b, np.multiply),
    "div": (lambda a, b: a / b, np.divide),
}


def binary_inputs(op, sa, sb, rng=RNG):
    a = randn(sa, rng)
    b = away_from_zero(sb, rng) if op == "div" else randn(sb, rng)
    return a, b


@pytest.mark.parametrize("op", list(BINARY))
@pytest.mark.parametrize("sa,sb", BROADCAST_SHAPES)
def test_binary_float_values(op, sa, sb):
    a, b = binary_inputs(op, sa, sb)
    out = apply(op, [bcml.tensor(a), bcml.tensor(b)])
    ref = BINARY[op][1](a.astype(np.float64), b.astype(np.float64))
    assert out.dtype == bcml.float32
    assert out.shape == ref.shape
    # one correctly rounded float32 operation
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-7, atol=0)


@pytest.mark.parametrize("op", list(BINARY))
@pytest.mark.parametrize("sa,sb", GRAD_SHAPES)
def test_binary_grad_finite_differences(op, sa, sb):
    a, b = binary_inputs(op, sa, sb, np.random.default_rng(7))
    check_grad(BINARY[op][0], [a, b])


@pytest.mark.parametrize("op", list(BINARY))
@pytest.mark.parametrize("sa,sb", BROADCAST_SHAPES)
def test_binary_against_torch(torch, op, sa, sb):
    a, b = binary_inputs(op, sa, sb, np.random.default_rng(11))
    compare_torch(torch, BINARY[op][0], BINARY[op][0], [a, b])


def test_binary_grad_one_input_only(torch):
    # only the broadcast input requires grad; the other gets no .grad
    a, b = randn((4, 3)), away_from_zero((3,))
    for op in BINARY:
        ta, tb = bcml.tensor(a), bcml.tensor(b, requires_grad=True)
        BINARY[op][0](ta, tb).sum().backward()
        xa, xb = torch.tensor(a), torch.tensor(b, requires_grad=True)
        BINARY[op][0](xa, xb).sum().backward()
        assert ta.grad is None
        np.testing.assert_allclose(tb.grad.numpy(), xb.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_binary_same_input_twice(torch):
    # x * x and x / x: both gradient contributions accumulate into one buffer
    x = away_from_zero((2, 3))
    compare_torch(torch, lambda t: t * t + t / t - t, lambda t: t * t + t / t - t, [x])


def test_binary_nan_inf_flow():
    a = np.array([np.nan, np.inf, -np.inf, 1.0, 0.0], np.float32)
    b = np.array([1.0, 1.0, np.inf, 0.0, 0.0], np.float32)
    with np.errstate(all="ignore"):
        for op in BINARY:
            out = apply(op, [bcml.tensor(a), bcml.tensor(b)]).numpy()
            np.testing.assert_array_equal(out, BINARY[op][1](a, b))


@pytest.mark.parametrize("op", ["add", "sub", "mul"])
@pytest.mark.parametrize("sa,sb", BROADCAST_SHAPES)
def test_binary_int64(op, sa, sb):
    rng = np.random.default_rng(3)
    a = rng.integers(-1000, 1000, sa).astype(np.int64)
    b = rng.integers(-1000, 1000, sb).astype(np.int64)
    out = apply(op, [bcml.from_numpy(a), bcml.from_numpy(b)])
    assert out.dtype == bcml.int64
    np.testing.assert_array_equal(out.numpy(), BINARY[op][1](a, b))


def test_binary_int64_wraps_around(torch):
    big = np.array([2**63 - 1, -(2**63), 3037000500], np.int64)
    one = np.array([1, 1, 3037000500], np.int64)
    for op in ["add", "sub", "mul"]:
        out = apply(op, [bcml.from_numpy(big), bcml.from_numpy(one)]).numpy()
        ref = BINARY[op][0](torch.from_numpy(big), torch.from_numpy(one)).numpy()
        np.testing.assert_array_equal(out, ref)


def test_binary_bool(torch):
    a = np.array([[True, False], [True, True]])
    b = np.array([True, False])
    ta, tb = bcml.from_numpy(a), bcml.from_numpy(b)
    xa, xb = torch.from_numpy(a), torch.from_numpy(b)
    for op in ["add", "mul"]:
        out = apply(op, [ta, tb])
        ref = BINARY[op][0](xa, xb)
        assert out.dtype == bcml.bool_
        np.testing.assert_array_equal(out.numpy(), ref.numpy())
    np.testing.assert_array_equal((ta & tb).numpy(), a & b)


def test_binary_bad_inputs():
    f, i = bcml.tensor(randn((2, 3))), bcml.tensor(np.arange(6).reshape(2, 3))
    with pytest.raises(TypeError, match="add: other must have the dtype of input"):
        apply("add", [f, i])
    with pytest.raises(TypeError, match="div: input must be a float32"):
        apply("div", [i, i])
    b = bcml.tensor(np.ones(3, bool))
    with pytest.raises(TypeError, match="sub: .*bool"):
        apply("sub", [b, b])
    with pytest.raises(ValueError, match=r"mul: input of shape \(2, 3\) and other of shape \(4,\) "
                                         r"cannot be broadcast.*dimension 1: 3 vs 4"):
        apply("mul", [f, bcml.tensor(randn(4))])
    with pytest.raises(ValueError, match=r"input of shape \(2, 3\) and other of shape \(3, 3\)"):
        f + bcml.tensor(randn((3, 3)))
    with pytest.raises(ValueError, match="takes 2 to 2 inputs"):
        apply("add", [f])


# ---- scalar ops ------------------------------------------------------------------------------
SCALAR_CASES = [  # name, bcml/torch function, NumPy float64 reference
    ("x+2.5", lambda t: t + 2.5, lambda a: a + np.float64(np.float32(2.5))),
    ("x-1.25", lambda t: t - 1.25, lambda a: a - 1.25),
    ("3-x", lambda t: 3 - t, lambda a: 3 - a),
    ("-x", lambda t: -t, lambda a: -a),
    ("x*0.3", lambda t: t * 0.3, lambda a: a * np.float64(np.float32(0.3))),
    ("2*x", lambda t: 2 * t, lambda a: 2 * a),
    ("x+3", lambda t: t + 3, lambda a: a + 3),
    ("x.sub(2,alpha=0.5)", lambda t: t.sub(2, alpha=0.5), lambda a: a - 1),
]


@pytest.mark.parametrize("name,fn,ref", SCALAR_CASES, ids=[c[0] for c in SCALAR_CASES])
@pytest.mark.parametrize("shape", [(3, 4), (), (0, 2), (2, 3, 4, 5)])
def test_add_scalar(name, fn, ref, shape, torch):
    a = randn(shape)
    out = fn(bcml.tensor(a))
    np.testing.assert_allclose(out.numpy(), ref(a.astype(np.float64)).astype(np.float32), rtol=1e-6, atol=1e-7)
    if a.size:
        check_grad(fn, [a])
    compare_torch(torch, fn, fn, [a])


def test_add_scalar_raw_args_and_int64():
    a = randn((5,))
    out = apply("add_scalar", [bcml.tensor(a)], (), (1.5, -2.0))
    np.testing.assert_allclose(out.numpy(), a.astype(np.float64) * -2 + 1.5, rtol=1e-6)
    x = np.array([-3, 0, 7, 2**62], np.int64)
    out = apply("add_scalar", [bcml.from_numpy(x)], (), (5.0, 3.0))
    assert out.dtype == bcml.int64
    np.testing.assert_array_equal(out.numpy(), x * 3 + 5)
    with pytest.raises(ValueError, match="add_scalar: an int64 input needs integer scalars"):
        apply("add_scalar", [bcml.from_numpy(x)], (), (0.5, 1.0))
    with pytest.raises(TypeError, match="add_scalar: input must be a float32"):
        apply("add_scalar", [bcml.tensor([True])], (), (1.0, 1.0))


def test_scalar_ops_dtypes_like_torch(torch):
    x = np.array([1, -2, 3], np.int64)
    m = np.array([True, False, True])
    cases = [
        (x, lambda t: t + 1), (x, lambda t: t - 2), (x, lambda t: 1 - t), (x, lambda t: -t),
        (x, lambda t: t * 3), (x, lambda t: t * 2.5), (x, lambda t: t + 0.5), (x, lambda t: t / 2),
        (x, lambda t: 2 / t), (m, lambda t: t + 1), (m, lambda t: t * 2), (m, lambda t: t * 1.5),
    ]
    for arr, fn in cases:
        b, t = fn(bcml.from_numpy(arr)), fn(torch.from_numpy(arr))
        assert b.dtype.name == {torch.int64: "int64", torch.float32: "float32"}[t.dtype]
        np.testing.assert_allclose(b.numpy(), t.numpy(), rtol=1e-6)


@pytest.mark.parametrize("shape", [(3, 4), (), (0,), (2, 2, 2, 3)])
def test_rdiv_scalar(shape, torch):
    a = away_from_zero(shape)
    out = 2.5 / bcml.tensor(a)
    np.testing.assert_allclose(out.numpy(), 2.5 / a.astype(np.float64), rtol=1e-6)
    out = apply("rdiv_scalar", [bcml.tensor(a)], (), (-3.0,))
    np.testing.assert_allclose(out.numpy(), -3.0 / a.astype(np.float64), rtol=1e-6)
    if a.size:
        check_grad(lambda t: 2.5 / t, [a])
    compare_torch(torch, lambda t: 2.5 / t, lambda t: 2.5 / t, [a])


@pytest.mark.parametrize("e", [2, 3, 0.5, -1, -2, 1.7, -0.5, 0, 1])
def test_pow_scalar(e, torch):
    a = np.random.default_rng(5).uniform(0.5, 2.0, (3, 5)).astype(np.float32)
    out = bcml.tensor(a) ** e
    np.testing.assert_allclose(out.numpy(), a.astype(np.float64) ** e, rtol=3e-6)
    check_grad(lambda t: t ** e, [a])
    compare_torch(torch, lambda t: t ** e, lambda t: t ** e, [a])


def test_pow_scalar_special_points(torch):
    # at 0 and for negative bases the gradient and values follow PyTorch (inf, nan, 0)
    a = np.array([0.0, -0.0, -1.5, 2.0, np.nan, np.inf], np.float32)
    for e in [2, 3, 0.5, -1, 0, 1, 1.5, -0.5, 2.5]:
        tb, tt = bcml.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
        ob, ot = tb ** e, tt ** e
        np.testing.assert_allclose(ob.detach().numpy(), ot.detach().numpy(), rtol=1e-6, equal_nan=True)
        ob.sum().backward()
        ot.sum().backward()
        np.testing.assert_allclose(tb.grad.numpy(), tt.grad.numpy(), rtol=1e-6, equal_nan=True,
                                   err_msg="exponent %s" % e)


def test_sqrt(torch):
    a = np.random.default_rng(2).uniform(0.1, 4, (6,)).astype(np.float32)
    compare_torch(torch, lambda t: t.sqrt(), lambda t: t.sqrt(), [a])


# ---- exp, log, abs, clamp ---------------------------------------------------------------------
UNARY = {
    "exp": (lambda t: t.exp(), np.exp, lambda s, r: randn(s, r)),
    "log": (lambda t: t.log(), np.log, lambda s, r: r.uniform(0.2, 5.0, s).astype(np.float32)),
    "abs": (lambda t: t.abs(), np.abs, lambda s, r: away_from_zero(s, r, 0.1, 3.0)),
}


@pytest.mark.parametrize("op", list(UNARY))
@pytest.mark.parametrize("shape", [(4, 5), (), (0, 3), (2, 3, 4, 2)])
def test_unary(op, shape, torch):
    fn, ref, gen = UNARY[op]
    a = gen(shape, np.random.default_rng(9))
    out = fn(bcml.tensor(a))
    assert out.shape == a.shape and out.dtype == bcml.float32
    np.testing.assert_allclose(out.numpy(), ref(a.astype(np.float64)), rtol=2e-6, atol=1e-7)
    if a.size:
        check_grad(fn, [a])
    compare_torch(torch, fn, fn, [a])


def test_unary_special_values(torch):
    a = np.array([0.0, -0.0, np.nan, np.inf, -np.inf, -1.0, 1e-30, 100.0], np.float32)
    with np.errstate(all="ignore"):
        for op, (fn, ref, _) in UNARY.items():
            tb, tt = bcml.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
            ob, ot = fn(tb), fn(tt)
            np.testing.assert_allclose(ob.detach().numpy(), ot.detach().numpy(), rtol=1e-6, equal_nan=True)
            ob.sum().backward()
            ot.sum().backward()
            np.testing.assert_allclose(tb.grad.numpy(), tt.grad.numpy(), rtol=1e-6, equal_nan=True,
                                       err_msg=op)


def test_exp_within_one_ulp_over_the_whole_range():
    # the vectorised exp kernel: every float from underflow to overflow, subnormal results too
    x = np.concatenate([np.linspace(-110, 95, 400001, dtype=np.float32),
                        np.float32([88.72283, 88.7228394, 88.72284, -87.33655, -103.97207, -103.97209,
                                    -150.0, 1e-8, -1e-8, 0.0, -0.0])])
    with np.errstate(all="ignore"):
        got = bcml.from_numpy(x).exp().numpy()
        ref = np.exp(x.astype(np.float64))
        ref32 = ref.astype(np.float32)
    np.testing.assert_array_equal(np.isinf(got), np.isinf(ref32))
    np.testing.assert_array_equal(got == 0, ref32 == 0)
    fin = np.isfinite(ref32) & (ref32 > 0)
    ulps = np.abs(got[fin] - ref[fin]) / np.spacing(ref32[fin]).astype(np.float64)
    assert ulps.max() <= 1.0
    special = np.float32([np.nan, np.inf, -np.inf])
    np.testing.assert_array_equal(bcml.from_numpy(special).exp().numpy(), [np.nan, np.inf, 0.0])


def test_log_within_one_ulp_over_the_whole_range():
    # the vectorised log kernel (also softmax's): a sample of every binade of positive floats,
    # subnormals and the neighbourhood of 1 included, and the special values
    rng = np.random.default_rng(3)
    bits = np.concatenate([rng.integers(1, 0x7f800000, 2_000_000, dtype=np.uint32),
                           np.arange(0x3f7f0000, 0x3f810000, dtype=np.uint32),  # around 1
                           np.arange(1, 4096, dtype=np.uint32),                  # smallest subnormals
                           np.uint32([0x007fffff, 0x00800000, 0x3f3504f3, 0x3f3504f4, 0x7f7fffff])])
    x = bits.view(np.float32)
    got = bcml.from_numpy(x).log().numpy()
    ref = np.log(x.astype(np.float64))
    ulps = np.abs(got - ref) / np.spacing(np.abs(ref).astype(np.float32)).astype(np.float64)
    assert ulps.max() <= 1.0, x[np.argmax(ulps)]
    with np.errstate(all="ignore"):
        special = np.float32([0.0, -0.0, -1.0, -1e-45, np.inf, -np.inf, np.nan, 1.0])
        np.testing.assert_array_equal(bcml.from_numpy(special).log().numpy(), np.log(special))


def test_exp_grad_uses_output():
    # exp's backward reads the saved output: the gradient of exp(x) is exp(x)
    x = bcml.tensor(randn((3, 3)), requires_grad=True)
    y = x.exp()
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.exp(x.detach().numpy().astype(np.float64)), rtol=2e-6)


CLAMPS = [(-0.5, 0.7), (-0.5, None), (None, 0.3), (0.6, -0.2), (0.0, None), (None, 0)]


@pytest.mark.parametrize("lo,hi", CLAMPS)
def test_clamp(lo, hi, torch):
    rng = np.random.default_rng(4)
    a = rng.uniform(-2, 2, (5, 7)).astype(np.float32)
    # keep finite-difference points away from the bounds
    for bound in (lo, hi):
        if bound is not None:
            a[np.abs(a - bound) < 0.05] += 0.1
    out = bcml.tensor(a).clamp(lo, hi)
    ref = a.astype(np.float64)
    if lo is not None:
        ref = np.maximum(ref, lo)
    if hi is not None:
        ref = np.minimum(ref, hi)
    np.testing.assert_allclose(out.numpy(), ref.astype(np.float32), rtol=0, atol=0)
    check_grad(lambda t: t.clamp(lo, hi), [a])
    compare_torch(torch, lambda t: t.clamp(lo, hi), lambda t: t.clamp(lo, hi), [a])


def test_clamp_boundaries_nan_like_torch(torch):
    # the gradient passes where min <= x <= max, including at the bounds; NaN stays NaN
    a = np.array([-1.0, -0.5, 0.0, 0.5, 1.0, np.nan, np.inf, -np.inf], np.float32)
    for lo, hi in CLAMPS + [(0.5, 0.5)]:
        tb, tt = bcml.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
        ob, ot = tb.clamp(lo, hi), tt.clamp(lo, hi)
        np.testing.assert_array_equal(ob.detach().numpy(), ot.detach().numpy())
        ob.sum().backward()
        ot.sum().backward()
        np.testing.assert_array_equal(tb.grad.numpy(), tt.grad.numpy(), err_msg=str((lo, hi)))


def test_unary_bad_inputs():
    with pytest.raises(ValueError, match="clamp: at least one of min or max"):
        bcml.tensor([1.0]).clamp()
    i = bcml.tensor(np.arange(4))
    for op in ["exp", "log", "abs", "pow_scalar", "rdiv_scalar"]:
        with pytest.raises(TypeError, match="%s: input must be a float32 tensor, got int64" % op):
            apply(op, [i], (), (2.0,))
    with pytest.raises(TypeError, match="clamp: input must be a float32"):
        apply("clamp", [i], (3,), (0.0, 1.0))
    with pytest.raises(ValueError, match="clamp: flags"):
        apply("clamp", [bcml.tensor(randn(3))], (4,), (0.0, 1.0))


# ---- cast ------------------------------------------------------------------------------------
CAST_SOURCES = {
    "float32": np.array([[0.0, -0.0, 1.5, -1.5], [2.9, -2.9, 1e10, 7.0]], np.float32),
    "int64": np.array([[0, 1, -1, 2**40], [5, -7, 2**62, 3]], np.int64),
    "bool": np.array([[True, False, True, False], [False, False, True, True]]),
}
NP_DTYPE = {"float32": np.float32, "int64": np.int64, "bool": np.bool_}


@pytest.mark.parametrize("src", list(CAST_SOURCES))
@pytest.mark.parametrize("dst", ["float32", "int64", "bool"])
@pytest.mark.parametrize("shape", [None, (0, 3), ()])
def test_cast(src, dst, shape, torch):
    a = CAST_SOURCES[src]
    if shape is not None:
        a = np.zeros(shape, a.dtype) if 0 in shape else np.array(a.reshape(-1)[1])
    out = apply("cast", [bcml.from_numpy(np.array(a))], (["float32", "int64", "bool"].index(dst),))
    assert out.dtype.name == dst and out.shape == a.shape
    np.testing.assert_array_equal(out.numpy(), a.astype(NP_DTYPE[dst]))
    tdt = {"float32": torch.float32, "int64": torch.int64, "bool": torch.bool}[dst]
    np.testing.assert_array_equal(out.numpy(), torch.from_numpy(np.array(a)).to(tdt).numpy())


def test_cast_nonfinite_to_int_does_not_crash(torch):
    a = np.array([np.nan, np.inf, -np.inf, 1e30, -1e30, 9.3e18, -9.3e18, 3.7], np.float32)
    out = bcml.from_numpy(a).long().numpy()
    assert out.dtype == np.int64 and out[-1] == 3
    # in-range values truncate toward zero; the rest is undefined in PyTorch (INT64_MIN on x86)
    np.testing.assert_array_equal(bcml.tensor([-2.7, 2.7, -0.5]).long().numpy(), [-2, 2, 0])
    np.testing.assert_array_equal(bcml.from_numpy(a).bool().numpy(), a != 0)


def test_cast_has_no_grad_and_bad_dtype():
    x = bcml.tensor(randn(3), requires_grad=True)
    assert not x.long().requires_grad
    with pytest.raises(ValueError, match="cast: dtype must be"):
        apply("cast", [x], (3,))


# ---- comparisons -----------------------------------------------------------------------------
CMP_KINDS = ["eq", "ne", "lt", "le", "gt", "ge"]
NP_CMP = [np.equal, np.not_equal, np.less, np.less_equal, np.greater, np.greater_equal]


def cmp_arrays(dtype, sa, sb, rng):
    # few distinct values so that equality happens
    if dtype == "bool":
        return np.asarray(rng.integers(0, 2, sa), bool), np.asarray(rng.integers(0, 2, sb), bool)
    a, b = np.asarray(rng.integers(-2, 3, sa)), np.asarray(rng.integers(-2, 3, sb))
    if dtype == "float32":
        a, b = np.asarray(a * 0.5, np.float32), np.asarray(b * 0.5, np.float32)
        if a.size:
            a.reshape(-1)[0] = np.nan
    return np.asarray(a, NP_DTYPE[dtype]), np.asarray(b, NP_DTYPE[dtype])


@pytest.mark.parametrize("dtype", ["float32", "int64", "bool"])
@pytest.mark.parametrize("sa,sb", BROADCAST_SHAPES)
def test_cmp(dtype, sa, sb, torch):
    a, b = cmp_arrays(dtype, sa, sb, np.random.default_rng(21))
    ta, tb = bcml.from_numpy(a), bcml.from_numpy(b)
    for k, (name, ref) in enumerate(zip(CMP_KINDS, NP_CMP)):
        out = apply("cmp", [ta, tb], (k,))
        assert out.dtype == bcml.bool_
        np.testing.assert_array_equal(out.numpy(), ref(a, b), err_msg=name)
        t = getattr(torch.from_numpy(np.array(a)), name)(torch.from_numpy(np.array(b)))
        np.testing.assert_array_equal(out.numpy(), t.numpy(), err_msg=name)


def test_cmp_operators_and_promotion(torch):
    a = np.array([[1.0, 2.0], [3.0, np.nan]], np.float32)
    i = np.array([1, 3], np.int64)
    ops = [lambda x, y: x == y, lambda x, y: x != y, lambda x, y: x < y, lambda x, y: x <= y,
           lambda x, y: x > y, lambda x, y: x >= y]
    for op in ops:
        b = op(bcml.from_numpy(a), bcml.from_numpy(i))
        t = op(torch.from_numpy(a), torch.from_numpy(i))
        np.testing.assert_array_equal(b.numpy(), t.numpy())


def test_cmp_bad_inputs():
    f = bcml.tensor(randn((2, 3)))
    with pytest.raises(TypeError, match="cmp: other must have the dtype of input"):
        apply("cmp", [f, bcml.tensor([1, 2, 3])], (0,))
    with pytest.raises(ValueError, match=r"cmp: input of shape \(2, 3\) and other of shape \(2,\)"):
        apply("cmp", [f, bcml.tensor(randn(2))], (0,))
    with pytest.raises(ValueError, match="cmp: comparison kind"):
        apply("cmp", [f, f], (6,))
    with pytest.raises(ValueError, match="cmp_scalar: comparison kind"):
        apply("cmp_scalar", [f], (-1,), (0.0,))


SCALARS = [0, 1, -2, 0.5, -1.5, 0.1, 2**70, -(2**70), float("nan"), float("inf"), float("-inf"), 1e300]


@pytest.mark.parametrize("dtype", ["float32", "int64", "bool"])
@pytest.mark.parametrize("c", SCALARS)
def test_cmp_scalar(dtype, c, torch):
    rng = np.random.default_rng(31)
    if dtype == "bool":
        a = rng.integers(0, 2, (3, 4)).astype(bool)
    elif dtype == "int64":
        a = rng.integers(-3, 4, (3, 4)).astype(np.int64)
        a[0, :2] = [2**62, -(2**62)]
    else:
        a = (rng.integers(-3, 4, (3, 4)) * 0.5).astype(np.float32)
        a[0, :3] = [np.float32(0.1), np.nan, np.inf]
    t = torch.from_numpy(a)
    for k, (name, ref) in enumerate(zip(CMP_KINDS, NP_CMP)):
        out = apply("cmp_scalar", [bcml.from_numpy(a)], (k,), (float(c),))
        assert out.dtype == bcml.bool_
        if dtype == "float32":
            with np.errstate(over="ignore"):
                expect = ref(a, np.float32(c))  # PyTorch rounds the scalar to float32
        else:
            expect = ref(a.astype(np.int64) if dtype == "bool" else a, c)  # exact comparison
            if abs(c) < 2**52 or c != c:
                np.testing.assert_array_equal(out.numpy(), getattr(t, name)(c).numpy(), err_msg=name)
        np.testing.assert_array_equal(out.numpy(), expect, err_msg=name)


def test_cmp_scalar_empty_and_operators():
    e = bcml.tensor(np.zeros((0, 3), np.float32))
    assert (e == 1.0).shape == (0, 3)
    x = bcml.tensor([1.0, 2.0, 3.0])
    np.testing.assert_array_equal((x > 1.5).numpy(), [False, True, True])
    np.testing.assert_array_equal((x <= 2).numpy(), [True, True, False])
    np.testing.assert_array_equal((~(x == 2.0)).numpy(), [True, False, True])


# ---- where -----------------------------------------------------------------------------------
WHERE_SHAPES = [
    ((3, 4), (3, 4), (3, 4)),
    ((3, 4), (), ()),
    ((3, 1), (1, 4), (4,)),
    ((4,), (3, 1), ()),
    ((2, 1, 3, 1), (4, 1, 1), (3, 5)),
    ((0, 3), (3,), (1,)),
    ((), (2, 2), (2, 1)),
]


@pytest.mark.parametrize("sc,sa,sb", WHERE_SHAPES)
@pytest.mark.parametrize("dtype", ["float32", "int64", "bool"])
def test_where_values(sc, sa, sb, dtype):
    rng = np.random.default_rng(8)
    c = np.asarray(rng.integers(0, 2, sc), bool)
    a = np.asarray(rng.standard_normal(sa) * 5, NP_DTYPE[dtype])
    b = np.asarray(rng.standard_normal(sb) * 5, NP_DTYPE[dtype])
    out = apply("where", [bcml.from_numpy(c), bcml.from_numpy(a), bcml.from_numpy(b)])
    assert out.dtype.name == dtype
    np.testing.assert_array_equal(out.numpy(), np.where(c, a, b))


@pytest.mark.parametrize("sc,sa,sb", WHERE_SHAPES)
def test_where_grad(sc, sa, sb, torch):
    rng = np.random.default_rng(12)
    c = np.asarray(rng.integers(0, 2, sc), bool)
    a, b = randn(sa, rng), randn(sb, rng)
    cb, ct = bcml.from_numpy(c), torch.from_numpy(c)
    if a.size and b.size and c.size:
        check_grad(lambda x, y: bcml.where(cb, x, y), [a, b])
    compare_torch(torch, lambda x, y: bcml.where(cb, x, y), lambda x, y: torch.where(ct, x, y), [a, b])


def test_where_scalars_and_bad_inputs():
    x = bcml.tensor([-1.0, 2.0, -3.0], requires_grad=True)
    y = bcml.where(x > 0, x, 0.0)
    np.testing.assert_array_equal(y.detach().numpy(), [0.0, 2.0, 0.0])
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 1.0, 0.0])
    f = bcml.tensor(randn((2, 3)))
    with pytest.raises(TypeError, match="where: condition must be a bool tensor"):
        apply("where", [f, f, f])
    with pytest.raises(TypeError, match="where: other must have the dtype of input"):
        apply("where", [f > 0, f, bcml.tensor([1, 2, 3])])
    with pytest.raises(ValueError, match=r"where: condition of shape \(4,\) and input of shape \(2, 3\)"):
        apply("where", [bcml.tensor(np.ones(4, bool)), f, f])
    with pytest.raises(ValueError, match=r"where: input of shape \(2, 3\) and other of shape \(2,\)"):
        apply("where", [bcml.tensor([True]), f, bcml.tensor(randn(2))])


# ---- chains ----------------------------------------------------------------------------------
def test_chain_against_torch(torch):
    rng = np.random.default_rng(99)
    x, y = randn((4, 5), rng), randn((5,), rng)

    def f(a, b):
        return ((a * b + 1).exp() / (b.abs() + 1) - a.clamp(-0.5, 0.5) ** 2) * 0.5

    compare_torch(torch, f, f, [x, y], rtol=1e-5, atol=1e-5)
    check_grad(f, [x, y])
