"""Reductions (csrc/core/reduce.c: sum, mean, max along a dim, argmax) and softmax /
log_softmax (csrc/core/softmax.c). Values against NumPy float64 references, gradients against
central finite differences and everything against PyTorch."""
import warnings

import numpy as np
import pytest

import bcml
import bcml.nn.functional as F
from bcml import _core
from bcml._tensor import OPS
from conftest import check_grad

SHAPES = [(5,), (3, 4), (2, 3, 4), (2, 3, 4, 5), (3, 300), (2, 300, 3), (0, 3), (2, 0), (3, 0, 2)]


def randn(shape, seed=0):
    return np.asarray(np.random.default_rng(seed).standard_normal(shape), np.float32)


def apply(op, inputs, iargs=(), fargs=()):
    return _core.apply(OPS[op], tuple(inputs), tuple(iargs), tuple(fargs))


def dims_of(shape):
    return list(range(-len(shape), len(shape))) if shape else [0, -1]


def compare_torch(torch, fn_b, fn_t, a, rtol=1e-5, atol=1e-6, seed=0):
    """Forward values and the input gradient of sum(w * out) (fixed random w) against PyTorch;
    fn may return a tensor or a (values, indices) pair, of which the values are differentiated."""
    tb, tt = bcml.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    ob, ot = fn_b(tb), fn_t(tt)
    if isinstance(ot, tuple):
        assert ob.indices.shape == tuple(ot.indices.shape)
        np.testing.assert_array_equal(ob.indices.numpy(), ot.indices.numpy())
        ob, ot = ob.values, ot.values
    assert ob.shape == tuple(ot.shape)
    np.testing.assert_allclose(ob.detach().numpy(), ot.detach().numpy(), rtol=rtol, atol=atol)
    w = np.asarray(np.random.default_rng(seed).standard_normal(ob.shape), np.float32)
    (ob * bcml.from_numpy(w)).sum().backward()
    (ot * torch.from_numpy(w)).sum().backward()
    np.testing.assert_allclose(tb.grad.numpy(), tt.grad.numpy(), rtol=rtol, atol=atol)


# ---- sum and mean ----------------------------------------------------------------------------
@pytest.mark.parametrize("shape", SHAPES + [()])
@pytest.mark.parametrize("keepdim", [False, True])
@pytest.mark.parametrize("op", ["sum", "mean"])
def test_sum_mean_dim_values(shape, keepdim, op):
    a = randn(shape)
    a64 = a.astype(np.float64)
    for dim in dims_of(shape):
        out = getattr(bcml.tensor(a), op)(dim, keepdim=keepdim)
        if shape == ():
            ref = a64  # a 0-d tensor reduced over dim 0 is itself (PyTorch)
        else:
            with warnings.catch_warnings():  # NumPy warns about the mean of nothing (nan)
                warnings.simplefilter("ignore", RuntimeWarning)
                ref = getattr(np, op)(a64, axis=dim, keepdims=keepdim)
        assert out.shape == np.shape(ref) and out.dtype == bcml.float32
        # double accumulation: one rounding to float32
        np.testing.assert_allclose(out.numpy(), ref, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("shape", SHAPES + [()])
@pytest.mark.parametrize("op", ["sum", "mean"])
def test_sum_mean_all_values(shape, op):
    a = randn(shape, 1)
    out = getattr(bcml.tensor(a), op)()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ref = getattr(np, op)(a.astype(np.float64))
    assert out.shape == ()
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-6, atol=1e-7)
    # keepdim with all: an all-ones shape
    out = apply(op, [bcml.tensor(a)], (0, 1, 1))
    assert out.shape == (1,) * len(shape)
    np.testing.assert_allclose(out.numpy().reshape(()), ref, rtol=1e-6, atol=1e-7)


def test_sum_mean_empty_like_torch(torch):
    for shape, dim in [((0,), None), ((2, 0), 1), ((0, 3), 0), ((0, 3), 1), ((3, 0, 2), 1)]:
        a = np.zeros(shape, np.float32)
        for op in ["sum", "mean"]:
            b = getattr(bcml.tensor(a), op)() if dim is None else getattr(bcml.tensor(a), op)(dim)
            t = getattr(torch.from_numpy(a), op)() if dim is None else getattr(torch.from_numpy(a), op)(dim)
            assert b.shape == tuple(t.shape)
            np.testing.assert_array_equal(b.numpy(), t.numpy())  # nan for mean of nothing
    assert np.isnan(bcml.tensor(np.zeros(0, np.float32)).mean().item())


def test_sum_accumulates_in_double():
    # a million float32 values: float32 accumulation drifts visibly, double does not
    a = np.full(1_000_000, 0.1, np.float32)
    a[::2] = 1.0e4
    s = bcml.from_numpy(a).sum().item()
    np.testing.assert_allclose(s, np.sum(a.astype(np.float64)), rtol=1e-7)
    a2 = a.reshape(1000, 1000)
    np.testing.assert_allclose(bcml.from_numpy(a2).sum(0).numpy(), a2.astype(np.float64).sum(0), rtol=1e-7)
    np.testing.assert_allclose(bcml.from_numpy(a2).mean(1).numpy(), a2.astype(np.float64).mean(1), rtol=1e-7)


@pytest.mark.parametrize("dtype", ["int64", "bool"])
def test_sum_integer_and_bool(dtype, torch):
    rng = np.random.default_rng(2)
    a = rng.integers(-5, 6, (3, 4, 5))
    a = (a > 0) if dtype == "bool" else a.astype(np.int64)
    t = torch.from_numpy(a)
    for dim in [None, 0, 1, 2, -1]:
        for keepdim in [False, True]:
            b = bcml.from_numpy(a).sum() if dim is None else bcml.from_numpy(a).sum(dim, keepdim=keepdim)
            r = t.sum() if dim is None else t.sum(dim, keepdim=keepdim)
            assert b.dtype == bcml.int64
            assert b.shape == tuple(r.shape)
            np.testing.assert_array_equal(b.numpy(), r.numpy())
    big = np.array([2**62, 2**62, 2**62], np.int64)  # wraps around as in PyTorch
    assert bcml.from_numpy(big).sum().item() == torch.from_numpy(big).sum().item()
    assert bcml.from_numpy(np.zeros((0, 2), np.int64)).sum().item() == 0


@pytest.mark.parametrize("shape", [(5,), (3, 4), (2, 3, 4), (2, 1, 3, 2), ()])
@pytest.mark.parametrize("op", ["sum", "mean"])
def test_sum_mean_grad(shape, op, torch):
    a = randn(shape, 3)
    for dim in dims_of(shape) + [None]:
        for keepdim in [False, True]:
            def fn(t):
                return getattr(t, op)() if dim is None else getattr(t, op)(dim, keepdim=keepdim)
            check_grad(fn, [a])
            compare_torch(torch, fn, fn, a)


def test_sum_mean_against_torch_wide(torch):
    for shape in [(3, 300), (2, 300, 3), (4, 3, 2, 260)]:
        a = randn(shape, 4)
        for dim in range(len(shape)):
            for op in ["sum", "mean"]:
                fn = (lambda d, o: lambda t: getattr(t, o)(d))(dim, op)
                compare_torch(torch, fn, fn, a, atol=1e-5)


def test_sum_mean_bad_inputs():
    x = bcml.tensor(randn((2, 3)))
    with pytest.raises(IndexError, match="sum: dim: dimension out of range"):
        apply("sum", [x], (2, 0, 0))
    with pytest.raises(IndexError, match="mean: dim: dimension out of range"):
        apply("mean", [x], (-3, 0, 0))
    with pytest.raises(IndexError, match="dimension out of range"):
        x.sum(5)
    with pytest.raises(TypeError, match="mean.*input must be a float32 tensor, got int64"):
        apply("mean", [bcml.tensor([1, 2])], (0, 0, 1))
    with pytest.raises(TypeError, match="mean"):
        bcml.tensor([True, False]).mean()


# ---- max along a dim, argmax -----------------------------------------------------------------
def ties(shape, seed=0, dtype=np.float32):
    # few distinct values: ties decide by the first index
    return np.asarray(np.random.default_rng(seed).integers(-2, 3, shape), dtype)


@pytest.mark.parametrize("shape", SHAPES + [()])
@pytest.mark.parametrize("keepdim", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.bool_])
def test_max_dim_values(shape, keepdim, dtype):
    a = ties(shape, 5, dtype) if dtype != np.float32 else randn(shape, 5)
    if dtype == np.float32 and a.size:
        a.reshape(-1)[::3] = np.round(a.reshape(-1)[::3])  # some ties
    for dim in dims_of(shape):
        if shape and shape[dim] == 0:
            with pytest.raises(IndexError, match="Expected reduction dim %d to have non-zero size"
                               % (dim % len(shape))):
                bcml.from_numpy(a).max(dim, keepdim=keepdim)
            continue
        values, indices = bcml.from_numpy(a).max(dim, keepdim=keepdim)
        if shape == ():
            rv, ri = a, np.array(0)
        else:
            rv = np.max(a, axis=dim, keepdims=keepdim)
            ri = np.argmax(a, axis=dim, keepdims=keepdim)  # first maximal index
        assert values.dtype.name == np.dtype(dtype).name
        assert indices.dtype == bcml.int64
        assert values.shape == rv.shape and indices.shape == ri.shape
        np.testing.assert_array_equal(values.numpy(), rv)
        np.testing.assert_array_equal(indices.numpy(), ri)


def test_max_dim_nan_and_ties_like_torch(torch):
    a = np.array([[1.0, np.nan, 3.0, np.nan], [2.0, 5.0, 5.0, 1.0], [np.inf, 1.0, np.inf, np.nan],
                  [-np.inf, -np.inf, -np.inf, -np.inf]], np.float32)
    # long rows (the lane-parallel path): NaN after or before the largest number, ties
    rng = np.random.default_rng(17)
    long = np.asarray(rng.integers(-50, 50, (6, 45)), np.float32)
    long[0, 13] = np.nan
    long[1, 40] = np.nan
    long[1, 3] = 1e30
    long[2, [5, 30]] = np.nan
    long[3, :] = -np.inf
    long[4, 44] = np.inf
    for arr in [long, long.T.copy()]:
        for dim in [0, 1]:
            b = bcml.from_numpy(arr).max(dim)
            t = torch.from_numpy(arr).max(dim)
            np.testing.assert_array_equal(b.values.numpy(), t.values.numpy())
            np.testing.assert_array_equal(b.indices.numpy(), t.indices.numpy())
            np.testing.assert_array_equal(bcml.from_numpy(arr).argmax(dim).numpy(), t.indices.numpy())
    for dim in [0, 1]:
        b = bcml.from_numpy(a).max(dim)
        t = torch.from_numpy(a).max(dim)
        np.testing.assert_array_equal(b.values.numpy(), t.values.numpy())
        np.testing.assert_array_equal(b.indices.numpy(), t.indices.numpy())
        np.testing.assert_array_equal(bcml.from_numpy(a).argmax(dim).numpy(), torch.from_numpy(a).argmax(dim).numpy())


@pytest.mark.parametrize("shape", [(5,), (3, 4), (2, 3, 4), (2, 3, 4, 5), (2, 300, 3)])
def test_max_dim_grad(shape, torch):
    # distinct values 0.1 apart: no ties, finite differences stay away from the kinks
    n = int(np.prod(shape))
    a = np.asarray(np.random.default_rng(6).permutation(n).reshape(shape) * 0.1 - n * 0.05, np.float32)
    for dim in range(len(shape)):
        for keepdim in [False, True]:
            fn = (lambda d, k: lambda t: t.max(d, keepdim=k))(dim, keepdim)
            check_grad(lambda t: fn(t).values, [a], eps=1e-3)
            compare_torch(torch, fn, fn, a)


def test_max_dim_grad_goes_to_first_tie(torch):
    a = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]], np.float32)
    compare_torch(torch, lambda t: t.max(1), lambda t: t.max(1), a)
    compare_torch(torch, lambda t: t.max(0), lambda t: t.max(0), a)


def test_max_dim_result_is_namedtuple_and_empty(torch):
    r = bcml.tensor([[1.0, 4.0], [3.0, 2.0]]).max(1)
    values, indices = r
    assert r.values is values and r.indices is indices
    np.testing.assert_array_equal(indices.numpy(), [1, 0])
    e = bcml.tensor(np.zeros((0, 3), np.float32)).max(1)
    assert e.values.shape == (0,) and e.indices.shape == (0,)
    with pytest.raises(IndexError, match=r"max\(\): Expected reduction dim 1 to have non-zero size"):
        bcml.tensor(np.zeros((2, 0), np.float32)).max(1)
    with pytest.raises(IndexError, match=r"max\(\): Expected reduction dim 0 to have non-zero size"):
        apply("max_dim", [bcml.tensor(np.zeros((0, 2), np.float32))], (-2, 0))
    with pytest.raises(IndexError, match="max: dim: dimension out of range"):
        apply("max_dim", [bcml.tensor(randn((2, 3)))], (2, 0))


def test_max_dim_indices_not_aliased_by_backward():
    # backward uses its own copy of the indices: changing the returned ones does not matter
    x = bcml.tensor([[1.0, 5.0, 2.0]], requires_grad=True)
    v, i = x.max(1)
    i.numpy()[0] = 2
    v.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[0.0, 1.0, 0.0]])


@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.bool_])
def test_argmax(dtype, torch):
    for shape in [(7,), (3, 4), (2, 3, 4), (2, 3, 4, 5), (2, 300, 3), ()]:
        a = ties(shape, 8, dtype) if dtype != np.float32 else randn(shape, 8)
        # PyTorch's argmax takes no bool input; compare bool through its int64 image
        t = torch.from_numpy(np.array(a, np.int64 if dtype == np.bool_ else dtype))
        b = bcml.from_numpy(np.array(a))
        out = b.argmax()
        assert out.dtype == bcml.int64 and out.shape == ()
        assert out.item() == int(np.argmax(a)) == t.argmax().item()
        k = b.argmax(keepdim=True)
        assert k.shape == tuple(torch.argmax(t, dim=None, keepdim=True).shape) == (1,) * len(shape)
        assert k.numpy().reshape(()) == out.item()
        for dim in dims_of(shape):
            for keepdim in [False, True]:
                o = b.argmax(dim=dim, keepdim=keepdim)
                r = t.argmax(dim=dim, keepdim=keepdim)
                assert o.shape == tuple(r.shape)
                np.testing.assert_array_equal(o.numpy(), r.numpy())
                if shape:
                    np.testing.assert_array_equal(o.numpy(), np.argmax(a, axis=dim, keepdims=keepdim))


def test_argmax_empty_and_bad_inputs():
    with pytest.raises(IndexError, match=r"argmax\(\): Expected reduction dim to be specified for input.numel\(\) == 0"):
        bcml.tensor(np.zeros(0, np.float32)).argmax()
    with pytest.raises(IndexError, match=r"argmax\(\): Expected reduction dim 1 to have non-zero size"):
        bcml.tensor(np.zeros((2, 0), np.float32)).argmax(1)
    assert bcml.tensor(np.zeros((0, 3), np.float32)).argmax(1).shape == (0,)
    with pytest.raises(IndexError, match="argmax: dim: dimension out of range"):
        apply("argmax", [bcml.tensor(randn((2, 3)))], (3, 0, 0))
    x = bcml.tensor(randn((2, 3)), requires_grad=True)
    assert not x.argmax(1).requires_grad


# ---- softmax, log_softmax --------------------------------------------------------------------
def np_softmax(a, dim, log):
    a = a.astype(np.float64)
    m = np.max(a, axis=dim, keepdims=True)
    e = np.exp(a - m)
    s = e.sum(axis=dim, keepdims=True)
    return (a - m - np.log(s)) if log else e / s


SM_SHAPES = [(5,), (3, 4), (2, 3, 4), (2, 3, 4, 5), (3, 300), (2, 300, 3), (1, 1), (0, 3), (3, 0), ()]


@pytest.mark.parametrize("shape", SM_SHAPES)
@pytest.mark.parametrize("log", [False, True])
def test_softmax_values(shape, log):
    a = randn(shape, 10) * 3
    for dim in dims_of(shape):
        fn = F.log_softmax if log else F.softmax
        out = fn(bcml.tensor(a), dim=dim)
        ref = np_softmax(a, dim if shape else None, log) if a.size else a
        assert out.shape == a.shape and out.dtype == bcml.float32
        np.testing.assert_allclose(out.numpy(), ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("log", [False, True])
def test_softmax_stable_and_nonfinite_like_torch(log, torch):
    a = np.array([[1000.0, 1001.0, 999.0], [-1000.0, -1001.0, -1002.0], [0.0, -np.inf, 1.0],
                  [np.nan, 0.0, 1.0], [np.inf, 0.0, 1.0], [-np.inf, -np.inf, -np.inf]], np.float32)
    fb = F.log_softmax if log else F.softmax
    ft = torch.log_softmax if log else torch.softmax
    b, t = fb(bcml.tensor(a), dim=1).numpy(), ft(torch.from_numpy(a), dim=1).numpy()
    np.testing.assert_allclose(b, t, rtol=1e-6, atol=1e-7, equal_nan=True)
    assert np.all(np.isfinite(b[:2]))
    # also along dim 0 (the strided path)
    b0, t0 = fb(bcml.tensor(a.T.copy()), dim=0).numpy(), ft(torch.from_numpy(a.T.copy()), dim=0).numpy()
    np.testing.assert_allclose(b0, t0, rtol=1e-6, atol=1e-7, equal_nan=True)


@pytest.mark.parametrize("shape", [(5,), (3, 4), (2, 3, 4), (2, 3, 2, 3)])
@pytest.mark.parametrize("log", [False, True])
def test_softmax_grad(shape, log, torch):
    a = randn(shape, 12)
    for dim in range(len(shape)):
        fb = (lambda d: (lambda t: F.log_softmax(t, dim=d)) if log else (lambda t: F.softmax(t, dim=d)))(dim)
        ft = (lambda d: (lambda t: torch.log_softmax(t, dim=d)) if log else (lambda t: torch.softmax(t, dim=d)))(dim)
        check_grad(fb, [a], eps=1e-3)
        compare_torch(torch, fb, ft, a)


@pytest.mark.parametrize("D", [1, 2, 3, 4, 7, 10, 31])
@pytest.mark.parametrize("log", [False, True])
def test_softmax_short_rows_against_float64_and_torch(D, log, torch):
    # the short-row kernels (D < 32 along the last dim; 2, 3, 4 and 10 compiled apart) over
    # several blocks of rows, with non-finite rows mixed in, forward and backward
    rows = 2 * (1024 // D) + 3
    a = randn((rows, D), 16 + D) * 5
    a[1, 0] = np.nan
    a[4, :] = -np.inf
    a[7, -1] = np.inf
    a[9, 0] = -np.inf
    fb = F.log_softmax if log else F.softmax
    ft = torch.log_softmax if log else torch.softmax
    tb, tt = bcml.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    ob, ot = fb(tb, dim=1), ft(tt, dim=1)
    with np.errstate(all="ignore"):
        ref = np_softmax(a, 1, log)
    fin = np.isfinite(a).all(1)
    np.testing.assert_allclose(ob.detach().numpy()[fin], ref[fin], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ob.detach().numpy(), ot.detach().numpy(), rtol=1e-5, atol=1e-6, equal_nan=True)
    g = randn((rows, D), 40 + D)
    ob.backward(bcml.tensor(g))
    ot.backward(torch.tensor(g))
    np.testing.assert_allclose(tb.grad.numpy(), tt.grad.numpy(), rtol=1e-4, atol=1e-5, equal_nan=True)


def test_softmax_wide_against_torch(torch):
    for shape, dim in [((3, 300), 1), ((3, 300), 0), ((2, 300, 3), 1), ((2, 3, 4, 270), 2), ((0, 4), 1)]:
        a = randn(shape, 13) * 4
        for log in [False, True]:
            fb = (lambda d, l: lambda t: (F.log_softmax if l else F.softmax)(t, dim=d))(dim, log)
            ft = (lambda d, l: lambda t: (torch.log_softmax if l else torch.softmax)(t, dim=d))(dim, log)
            compare_torch(torch, fb, ft, a)


def test_softmax_tensor_methods_and_default_dim(torch):
    a = randn((4, 3), 14)
    np.testing.assert_allclose(bcml.tensor(a).softmax(-1).numpy(), np_softmax(a, -1, False), rtol=1e-6)
    np.testing.assert_allclose(bcml.log_softmax(bcml.tensor(a), 0).numpy(), np_softmax(a, 0, True), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(F.softmax(bcml.tensor(a)).numpy(), np_softmax(a, 1, False), rtol=1e-6)


def test_softmax_bad_inputs():
    for op in ["softmax", "log_softmax"]:
        with pytest.raises(TypeError, match="%s: input must be a float32 tensor, got int64" % op):
            apply(op, [bcml.tensor([1, 2])], (0,))
        with pytest.raises(IndexError, match="%s: dim: dimension out of range" % op):
            apply(op, [bcml.tensor(randn((2, 3)))], (2,))
    with pytest.raises(IndexError, match="dimension out of range"):
        F.softmax(bcml.tensor(randn((2, 3))), dim=-3)


def test_log_softmax_nll_chain_against_torch(torch):
    # the classifier pattern: mean of picked log-probabilities, through where and sum
    a = randn((6, 5), 15)
    y = np.random.default_rng(15).integers(0, 5, 6)
    onehot = (np.arange(5)[None, :] == y[:, None])
    ob, ot = bcml.from_numpy(onehot), torch.from_numpy(onehot)

    def fb(t):
        return -(bcml.where(ob, F.log_softmax(t, dim=1), 0.0).sum(1)).mean()

    def ft(t):
        return -(torch.where(ot, torch.log_softmax(t, dim=1), 0.0).sum(1)).mean()

    compare_torch(torch, fb, ft, a)
    t = torch.tensor(a, requires_grad=True)
    ref = torch.nn.functional.cross_entropy(t, torch.from_numpy(y))
    np.testing.assert_allclose(fb(bcml.tensor(a)).item(), ref.item(), rtol=1e-6)
