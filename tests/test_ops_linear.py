"""linear, matmul (csrc/core/linear.c) and relu, sigmoid, tanh (csrc/core/activation.c), and
nn.Linear: against NumPy float64, central finite differences and PyTorch."""
import numpy as np
import pytest

import bcml
import bcml.nn.functional as F
from conftest import grad_check


def arr(t):
    return t.detach().numpy()


def torch_compare(torch, bfn, tfn, arrays, rtol=1e-5, atol=1e-6, seed=0):
    """Same forward and backward (seeded with the same random gradient) in bcml and PyTorch."""
    rng = np.random.default_rng(seed)
    bs = [bcml.tensor(a, requires_grad=True) for a in arrays]
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    ob, ot = bfn(*bs), tfn(*ts)
    assert ob.shape == tuple(ot.shape)
    np.testing.assert_allclose(arr(ob), ot.detach().numpy(), rtol=rtol, atol=atol)
    g = rng.standard_normal(tuple(ot.shape)).astype(np.float32)
    ob.backward(bcml.tensor(g))
    ot.backward(torch.tensor(g))
    for i, (b, t) in enumerate(zip(bs, ts)):
        np.testing.assert_allclose(b.grad.numpy(), t.grad.numpy(), rtol=rtol, atol=atol,
                                   err_msg="gradient of input %d" % i)


# ==== linear ==============================================================================
LINEAR_SHAPES = [((5, 3), 4), ((0, 3), 4), ((1, 3), 1), ((2, 3, 4), 5), ((2, 2, 3, 4), 2), ((4,), 3),
                 ((3, 0), 2), ((3, 4), 0)]


def linear_arrays(xshape, OC, bias, seed=0):
    rng = np.random.default_rng(seed)
    C = xshape[-1]
    out = [rng.standard_normal(xshape).astype(np.float32), rng.standard_normal((OC, C)).astype(np.float32)]
    if bias:
        out.append(rng.standard_normal(OC).astype(np.float32))
    return out


@pytest.mark.parametrize("xshape,OC", LINEAR_SHAPES)
@pytest.mark.parametrize("bias", [False, True])
def test_linear_matches_numpy(xshape, OC, bias):
    arrays = linear_arrays(xshape, OC, bias)
    out = F.linear(*[bcml.tensor(a) for a in arrays])
    x, w = arrays[0].astype(np.float64), arrays[1].astype(np.float64)
    expect = x @ w.T + (arrays[2] if bias else 0.0)
    assert out.shape == expect.shape
    np.testing.assert_allclose(out.numpy(), expect, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("xshape,OC", [((5, 3), 4), ((2, 3, 4), 5), ((4,), 3), ((2, 2, 3, 4), 2)])
@pytest.mark.parametrize("bias", [False, True])
def test_linear_finite_differences(xshape, OC, bias):
    arrays = linear_arrays(xshape, OC, bias, seed=1)
    grad_check(F.linear, arrays, wrt=list(range(len(arrays))))


@pytest.mark.parametrize("xshape,OC", LINEAR_SHAPES)
@pytest.mark.parametrize("bias", [False, True])
def test_linear_matches_torch(torch, xshape, OC, bias):
    arrays = linear_arrays(xshape, OC, bias, seed=2)
    torch_compare(torch, F.linear, torch.nn.functional.linear, arrays)


def test_linear_partial_requires_grad(torch):
    x, w, b = linear_arrays((4, 3), 2, True, seed=3)
    xb, wb, bb = bcml.tensor(x), bcml.tensor(w, requires_grad=True), bcml.tensor(b)
    F.linear(xb, wb, bb).backward(bcml.tensor(np.ones((4, 2), np.float32)))
    np.testing.assert_allclose(wb.grad.numpy(), np.ones((2, 4)) @ x, rtol=1e-5)
    assert xb.grad is None and bb.grad is None


def test_linear_bad_inputs():
    x = bcml.tensor(np.zeros((4, 3), np.float32))
    w = bcml.tensor(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match=r"linear: input of shape \(4, 5\) does not match weight of shape \(2, 3\)"):
        F.linear(bcml.tensor(np.zeros((4, 5), np.float32)), w)
    with pytest.raises(ValueError, match=r"weight of shape \(3,\)"):
        F.linear(x, bcml.tensor(np.zeros(3, np.float32)))
    with pytest.raises(ValueError, match=r"weight of shape \(1, 2, 3\)"):
        F.linear(x, bcml.tensor(np.zeros((1, 2, 3), np.float32)))
    with pytest.raises(ValueError, match=r"input of shape \(\)"):
        F.linear(bcml.tensor(np.float32(1.0)), w)
    with pytest.raises(ValueError, match=r"bias must have shape \(2,\) \(one value per row of weight\), got \(3,\)"):
        F.linear(x, w, bcml.tensor(np.zeros(3, np.float32)))
    with pytest.raises(TypeError, match=r"linear: input must be a float32"):
        F.linear(bcml.tensor(np.zeros((4, 3), np.int64)), w)
    with pytest.raises(TypeError, match=r"linear: weight must be a float32"):
        F.linear(x, bcml.tensor(np.zeros((2, 3), np.int64)))
    with pytest.raises(TypeError, match=r"linear: bias must be a float32"):
        F.linear(x, w, bcml.tensor(np.zeros(2, np.int64)))
    with pytest.raises(TypeError, match=r"weight must be a bcml tensor"):
        F.linear(x, np.zeros((2, 3), np.float32))


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("xshape", [(6, 5), (2, 3, 5), (0, 5)])
def test_nn_linear_matches_torch(torch, bias, xshape):
    tl = torch.nn.Linear(5, 3, bias=bias)
    bl = bcml.nn.Linear(5, 3, bias=bias)
    assert list(bl.state_dict()) == list(tl.state_dict())
    bl.load_state_dict({k: v.detach().numpy() for k, v in tl.state_dict().items()})
    x = np.random.default_rng(4).standard_normal(xshape).astype(np.float32)
    xb, xt = bcml.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    ob, ot = bl(xb), tl(xt)
    np.testing.assert_allclose(arr(ob), ot.detach().numpy(), rtol=1e-5, atol=1e-6)
    g = np.random.default_rng(5).standard_normal(ot.shape).astype(np.float32)
    ob.backward(bcml.tensor(g))
    ot.backward(torch.tensor(g))
    np.testing.assert_allclose(xb.grad.numpy(), xt.grad.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bl.weight.grad.numpy(), tl.weight.grad.numpy(), rtol=1e-5, atol=1e-6)
    if bias:
        np.testing.assert_allclose(bl.bias.grad.numpy(), tl.bias.grad.numpy(), rtol=1e-5, atol=1e-6)
    else:
        assert bl.bias is None


def test_nn_linear_init_bounds():
    bcml.manual_seed(0)
    lin = bcml.nn.Linear(50, 40)
    bound = 1 / np.sqrt(50)
    w, b = arr(lin.weight), arr(lin.bias)
    assert np.abs(w).max() <= bound and np.abs(b).max() <= bound
    # U(-bound, bound): about half the range is used, and the spread is bound / sqrt(3)
    assert np.abs(w).max() > 0.9 * bound
    np.testing.assert_allclose(w.std(), bound / np.sqrt(3), rtol=0.1)


# ==== matmul ==============================================================================
# Layers with at most 4 outputs take the narrow kernels (dot products and column sums over x's
# rows; AVX-512 where the CPU has it): rows split over tasks, 16-column chunks with a remainder,
# dx's rows in chunks of 1 to 4 vectors (64 columns).
NARROW_SHAPES = [(754, 108, 2), (754, 108, 1), (1000, 37, 3), (33, 200, 4), (17, 16, 2), (5, 3, 4), (754, 10, 2),
                 (40, 20, 3)]


@pytest.mark.parametrize("R,C,OC", NARROW_SHAPES, ids=["%dx%d->%d" % s for s in NARROW_SHAPES])
def test_narrow_linear_against_float64(kernels, R, C, OC):
    rng = np.random.default_rng(R + C + OC)
    x = rng.standard_normal((R, C)).astype(np.float32)
    w = rng.standard_normal((OC, C)).astype(np.float32)
    b = rng.standard_normal(OC).astype(np.float32)
    g = rng.standard_normal((R, OC)).astype(np.float32)
    # gradients add into what .grad holds already
    old = [rng.standard_normal(a.shape).astype(np.float32) for a in (x, w, b)]
    ts = [bcml.tensor(a, requires_grad=True) for a in (x, w, b)]
    for t, o in zip(ts, old):
        t.grad = bcml.tensor(o)
    out = F.linear(*ts)
    out.backward(bcml.tensor(g))
    x64, w64, g64 = x.astype(np.float64), w.astype(np.float64), g.astype(np.float64)
    for got, ref in ((arr(out), x64 @ w64.T + b), (ts[0].grad.numpy(), old[0] + g64 @ w64),
                     (ts[1].grad.numpy(), old[1] + g64.T @ x64), (ts[2].grad.numpy(), old[2] + g64.sum(0))):
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5 * (1 + np.abs(ref).max()))


@pytest.mark.parametrize("C", [7, 50, 300])
def test_linear_with_one_tensor_in_two_places_against_torch(torch, kernels, C):
    # the gradient buffer is shared by two of the backward's parts: they must not run at once
    rng = np.random.default_rng(C)
    w = rng.standard_normal((C, C)).astype(np.float32)
    b = rng.standard_normal(C).astype(np.float32)
    for make in (lambda f, t, u: f(t, t), lambda f, t, u: f(u, t, u), lambda f, t, u: f(t, t, u)):
        tb, ub = bcml.tensor(w, requires_grad=True), bcml.tensor(b, requires_grad=True)
        tt, ut = torch.tensor(w, requires_grad=True), torch.tensor(b, requires_grad=True)
        ob, ot = make(F.linear, tb, ub), make(torch.nn.functional.linear, tt, ut)
        np.testing.assert_allclose(arr(ob), ot.detach().numpy(), rtol=1e-5, atol=1e-5)
        ob.sum().backward()
        ot.sum().backward()
        np.testing.assert_allclose(tb.grad.numpy(), tt.grad.numpy(), rtol=1e-5, atol=1e-4)
        if ut.grad is None:
            assert ub.grad is None
        else:
            np.testing.assert_allclose(ub.grad.numpy(), ut.grad.numpy(), rtol=1e-5, atol=1e-4)


# Small products (up to 4.1M multiply-adds, more than 4 outputs) take the AVX-512 small-product
# kernels where the CPU has them, OpenBLAS otherwise: panels of 1 to 4 vectors of 16 columns (and
# several panels), tiles of 6 to 24 rows whose last two share the rows left (and 8, 4, 2, 1 rows
# when fewer are left than half a tile), rows split over tasks.
SMALL_SHAPES = [(754, 108, 50), (754, 50, 10), (64, 320, 50), (64, 50, 10), (128, 512, 10), (37, 5, 17),
                (23, 70, 33), (9, 130, 64), (101, 3, 200), (1, 1, 5), (200, 16, 16), (3, 4000, 7)]


@pytest.mark.parametrize("R,C,OC", SMALL_SHAPES, ids=["%dx%d->%d" % s for s in SMALL_SHAPES])
def test_small_linear_against_float64(kernels, R, C, OC):
    rng = np.random.default_rng(R * 7 + C * 3 + OC)
    x = rng.standard_normal((R, C)).astype(np.float32)
    w = rng.standard_normal((OC, C)).astype(np.float32)
    b = rng.standard_normal(OC).astype(np.float32)
    g = rng.standard_normal((R, OC)).astype(np.float32)
    # gradients add into what .grad holds already
    old = [rng.standard_normal(a.shape).astype(np.float32) for a in (x, w, b)]
    ts = [bcml.tensor(a, requires_grad=True) for a in (x, w, b)]
    for t, o in zip(ts, old):
        t.grad = bcml.tensor(o)
    out = F.linear(*ts)
    out.backward(bcml.tensor(g))
    x64, w64, g64 = x.astype(np.float64), w.astype(np.float64), g.astype(np.float64)
    refs = (x64 @ w64.T + b, old[0] + g64 @ w64, old[1] + g64.T @ x64, old[2] + g64.sum(0))
    for got, ref in zip((arr(out), ts[0].grad.numpy(), ts[1].grad.numpy(), ts[2].grad.numpy()), refs):
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=2e-6 * np.sqrt(max(R, C, OC)) * (1 + np.abs(ref).max()))
    # without bias, and with only the weight needing a gradient (the first layer of an MLP)
    tw = bcml.tensor(w, requires_grad=True)
    out = F.linear(bcml.tensor(x), tw)
    out.backward(bcml.tensor(g))
    np.testing.assert_allclose(arr(out), x64 @ w64.T, rtol=1e-5, atol=2e-6 * np.sqrt(C) * (1 + np.abs(x64 @ w64.T).max()))
    np.testing.assert_allclose(tw.grad.numpy(), g64.T @ x64, rtol=1e-5, atol=2e-6 * np.sqrt(R) * (1 + np.abs(g64.T @ x64).max()))


def test_small_linear_nonfinite_like_float64(kernels):
    # NaN and inf in x reach exactly the outputs and gradients they touch
    rng = np.random.default_rng(5)
    x = rng.standard_normal((40, 20)).astype(np.float32)
    x[3, 4], x[17, 0] = np.nan, np.inf
    w = rng.standard_normal((30, 20)).astype(np.float32)
    g = rng.standard_normal((40, 30)).astype(np.float32)
    tw = bcml.tensor(w, requires_grad=True)
    out = F.linear(bcml.tensor(x), tw)
    out.backward(bcml.tensor(g))
    with np.errstate(all="ignore"):
        ref, dref = x.astype(np.float64) @ w.T, g.astype(np.float64).T @ x
    np.testing.assert_array_equal(np.isnan(arr(out)), np.isnan(ref))
    np.testing.assert_array_equal(np.isinf(arr(out)), np.isinf(ref))
    np.testing.assert_array_equal(np.isnan(tw.grad.numpy()), np.isnan(dref))
    fin = np.isfinite(ref)
    np.testing.assert_allclose(arr(out)[fin], ref[fin], rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("R,C,OC", [(754, 108, 2), (754, 108, 50), (754, 50, 10), (64, 320, 50)])
def test_linear_same_bits_at_any_thread_count(kernels, R, C, OC):
    # the narrow kernels (<= 4 outputs) and the small-product ones split rows over tasks from the
    # shape only
    rng = np.random.default_rng(R + C + OC)
    arrays = [rng.standard_normal(s).astype(np.float32) for s in ((R, C), (OC, C), (OC,))]
    g = rng.standard_normal((R, OC)).astype(np.float32)
    before, results = bcml.get_num_threads(), []
    try:
        for n in (1, 2, 3):
            bcml.set_num_threads(n)
            ts = [bcml.tensor(a, requires_grad=True) for a in arrays]
            out = F.linear(*ts)
            out.backward(bcml.tensor(g))
            results.append([arr(out).copy()] + [t.grad.numpy().copy() for t in ts])
    finally:
        bcml.set_num_threads(before)
    for other in results[1:]:
        for a, c in zip(results[0], other):
            np.testing.assert_array_equal(a, c)


MATMUL_SHAPES = [((4,), (4,)), ((4,), (4, 3)), ((2, 4), (4,)), ((2, 4), (4, 3)), ((3, 2, 4), (3, 4, 5)),
                 ((0, 4), (4, 3)), ((2, 0), (0, 3)), ((2, 4), (4, 0)), ((0, 2, 4), (0, 4, 5)), ((1, 1), (1, 1))]


def matmul_arrays(sa, sb, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(sa).astype(np.float32), rng.standard_normal(sb).astype(np.float32)]


@pytest.mark.parametrize("sa,sb", MATMUL_SHAPES)
def test_matmul_matches_numpy(sa, sb):
    a, b = matmul_arrays(sa, sb)
    out = bcml.tensor(a) @ bcml.tensor(b)
    expect = np.matmul(a.astype(np.float64), b.astype(np.float64))
    assert out.shape == expect.shape
    np.testing.assert_allclose(out.numpy(), expect, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(bcml.matmul(bcml.tensor(a), bcml.tensor(b)).numpy(), expect, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("sa,sb", [s for s in MATMUL_SHAPES if 0 not in s[0] + s[1]])
def test_matmul_finite_differences(sa, sb):
    grad_check(lambda a, b: a @ b, matmul_arrays(sa, sb, seed=1), wrt=[0, 1])


@pytest.mark.parametrize("sa,sb", MATMUL_SHAPES)
def test_matmul_matches_torch(torch, sa, sb):
    torch_compare(torch, lambda a, b: a @ b, torch.matmul, matmul_arrays(sa, sb, seed=2))


def test_matmul_bad_inputs():
    a = bcml.tensor(np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError, match=r"matmul: input of shape \(2, 4\) and other of shape \(3, 5\) cannot be multiplied \(4 != 3\)"):
        a @ bcml.tensor(np.zeros((3, 5), np.float32))
    with pytest.raises(ValueError, match=r"cannot be multiplied"):
        bcml.tensor(np.zeros(3, np.float32)) @ bcml.tensor(np.zeros(4, np.float32))
    with pytest.raises(ValueError, match=r"cannot be multiplied"):
        bcml.tensor(np.zeros((2, 3, 4), np.float32)) @ bcml.tensor(np.zeros((2, 5, 4), np.float32))
    with pytest.raises(ValueError, match=r"matmul: input of shape \(2, 3, 4\) and other of shape \(4, 5\)"):
        bcml.tensor(np.zeros((2, 3, 4), np.float32)) @ bcml.tensor(np.zeros((4, 5), np.float32))
    with pytest.raises(ValueError, match=r"matmul: input of shape \(2, 3, 4\) and other of shape \(3, 4, 5\)"):
        bcml.tensor(np.zeros((2, 3, 4), np.float32)) @ bcml.tensor(np.zeros((3, 4, 5), np.float32))
    with pytest.raises(ValueError, match=r"input of shape \(\)"):
        bcml.tensor(np.float32(2.0)) @ a
    with pytest.raises(TypeError, match=r"matmul: other must be a float32"):
        a @ bcml.tensor(np.zeros((4, 2), np.int64))
    with pytest.raises(TypeError, match=r"matmul: input must be a float32"):
        bcml.tensor(np.zeros((4, 2), np.int64)) @ a


# ==== relu, sigmoid, tanh =================================================================
ACTS = {
    "relu": (F.relu, lambda x: np.maximum(x, 0.0), "relu"),
    "sigmoid": (F.sigmoid, lambda x: 1.0 / (1.0 + np.exp(-x)), "sigmoid"),
    "tanh": (F.tanh, np.tanh, "tanh"),
}
ACT_SHAPES = [(), (0,), (7,), (3, 4), (2, 3, 4), (2, 1, 3, 2)]


def act_input(shape, seed=0):
    """Normal values kept at least 0.1 away from 0 (relu's kink)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape) * 2
    x = np.where(x >= 0, x + 0.1, x - 0.1)
    return np.asarray(x, np.float32)


@pytest.mark.parametrize("name", sorted(ACTS))
@pytest.mark.parametrize("shape", ACT_SHAPES)
def test_activation_matches_numpy(name, shape):
    fn, ref, _ = ACTS[name]
    x = act_input(shape)
    out = fn(bcml.tensor(x))
    assert out.shape == x.shape
    np.testing.assert_allclose(out.numpy(), ref(x.astype(np.float64)), rtol=1e-6, atol=1e-7)
    method = getattr(bcml.tensor(x), name)()  # Tensor.relu() etc. run the same op
    np.testing.assert_array_equal(method.numpy(), out.numpy())


@pytest.mark.parametrize("name", sorted(ACTS))
@pytest.mark.parametrize("shape", [(), (7,), (3, 4), (2, 3, 4)])
def test_activation_finite_differences(name, shape):
    grad_check(ACTS[name][0], [act_input(shape, seed=1)], wrt=[0], eps=1e-3)


@pytest.mark.parametrize("name", sorted(ACTS))
@pytest.mark.parametrize("shape", ACT_SHAPES)
def test_activation_matches_torch(torch, name, shape):
    fn, _, tname = ACTS[name]
    torch_compare(torch, fn, getattr(torch, tname), [act_input(shape, seed=2)])


@pytest.mark.parametrize("name", sorted(ACTS))
def test_activation_extremes_and_nan_match_torch(torch, name):
    fn, _, tname = ACTS[name]
    x = np.array([-1e4, -100.0, -0.0, 0.0, 100.0, 1e4, np.inf, -np.inf, np.nan], np.float32)
    xb, xt = bcml.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    ob, ot = fn(xb), getattr(torch, tname)(xt)
    np.testing.assert_allclose(arr(ob), ot.detach().numpy(), rtol=1e-6, atol=0)
    assert np.isnan(arr(ob)[-1]) and not np.any(np.isnan(arr(ob)[:-1]))
    g = np.linspace(0.5, 1.5, x.size).astype(np.float32)
    ob.backward(bcml.tensor(g))
    ot.backward(torch.tensor(g))
    np.testing.assert_allclose(xb.grad.numpy(), xt.grad.numpy(), rtol=1e-6, atol=0)


def test_relu_bits_on_every_kind_of_float():
    # the vectorised relu works on the bits: check it bit for bit against its definition
    # (x < 0 ? 0 : x forward, dx += (x <= 0 ? 0 : g) backward) on every class of float, both signs,
    # NaNs with either sign and payload, subnormals, at lengths that leave vector remainders
    rng = np.random.default_rng(8)
    special = np.array([0x00000000, 0x80000000, 0x00000001, 0x80000001, 0x007fffff, 0x807fffff, 0x3f800000,
                        0xbf800000, 0x7f7fffff, 0xff7fffff, 0x7f800000, 0xff800000, 0x7fc00000, 0xffc00000,
                        0x7f800001, 0xff800001, 0x7fffffff, 0xffffffff], np.uint32)
    for n in (1, 7, 18, 33, 70001):
        bits = np.concatenate([special, rng.integers(0, 2 ** 32, n, dtype=np.uint64).astype(np.uint32)])[:max(n, 18)]
        x = bits.view(np.float32)
        with np.errstate(invalid="ignore"):
            ref = np.where(x < 0, np.float32(0), x)
            g = rng.standard_normal(x.size).astype(np.float32)
            old = rng.standard_normal(x.size).astype(np.float32)
            dref = old + np.where(x <= 0, np.float32(0), g)
        xb = bcml.tensor(x, requires_grad=True)
        xb.grad = bcml.tensor(old)
        out = F.relu(xb)
        np.testing.assert_array_equal(arr(out).view(np.uint32), ref.view(np.uint32))
        out.backward(bcml.tensor(g))
        np.testing.assert_array_equal(xb.grad.numpy().view(np.uint32), dref.view(np.uint32))


@pytest.mark.parametrize("name", sorted(ACTS))
def test_activation_bad_dtype(name):
    with pytest.raises(TypeError, match=r"%s: input must be a float32" % name):
        ACTS[name][0](bcml.tensor(np.zeros(3, np.int64)))
    with pytest.raises(TypeError, match=r"input must be a bcml tensor"):
        ACTS[name][0](np.zeros(3, np.float32))


def test_mlp_chain_backward_matches_torch(torch):
    """linear -> tanh -> linear -> sigmoid -> linear -> relu, all gradients at once."""
    rng = np.random.default_rng(6)
    arrays = [rng.standard_normal(s).astype(np.float32) for s in [(8, 5), (6, 5), (6,), (4, 6), (4,), (3, 4)]]

    def run(lib, lin, x, w1, b1, w2, b2, w3):
        return lib.relu(lin(lib.sigmoid(lin(lib.tanh(lin(x, w1, b1)), w2, b2)), w3))

    torch_compare(torch, lambda *a: run(F, F.linear, *a),
                  lambda *a: run(torch, torch.nn.functional.linear, *a), arrays)


# A gradient buffer that backward creates for an intermediate tensor is written from scratch by
# ops that can (bcml_opdef.fresh_ok: relu, linear's dx, max_pool2d's dx) instead of zeroed and
# added into; the tests' session starts those buffers as NaN (conftest.py), so an element a kernel
# misses shows. Each of linear's dx paths: narrow (<= 4 outputs), small products, OpenBLAS, and
# no outputs at all; x reaches the op through an op of its own (x * 1), so its gradient is new.
@pytest.mark.parametrize("R,C,OC", [(754, 10, 2), (33, 200, 4), (754, 108, 50), (64, 50, 10), (300, 512, 64),
                                    (20, 7, 0)])
def test_linear_writes_a_new_dx_buffer_whole(kernels, R, C, OC):
    from bcml import _core
    assert _core.get_poison_fresh() == 1
    rng = np.random.default_rng(R + C + OC)
    x = rng.standard_normal((R, C)).astype(np.float32)
    w = rng.standard_normal((OC, C)).astype(np.float32)
    g = rng.standard_normal((R, OC)).astype(np.float32)
    xb = bcml.tensor(x, requires_grad=True)
    out = F.linear(xb * 1.0, bcml.tensor(w))
    out.backward(bcml.tensor(g))
    ref = g.astype(np.float64) @ w.astype(np.float64)
    np.testing.assert_allclose(xb.grad.numpy(), ref, rtol=1e-5, atol=2e-6 * np.sqrt(max(OC, 1)) * (1 + np.abs(ref).max()))


def test_relu_writes_a_new_gradient_buffer_bit_for_bit():
    # into a new buffer relu's backward writes (x <= 0 ? +0 : g); x's own gradient then adds that
    # into zeros (a leaf's .grad starts at zero: -0 becomes +0)
    rng = np.random.default_rng(3)
    x = rng.standard_normal(70001).astype(np.float32)
    x[:4] = [0.0, -0.0, np.nan, np.inf]
    g = rng.standard_normal(x.size).astype(np.float32)
    g[4:8] = -0.0
    x[4:8] = 1.0
    xb = bcml.tensor(x, requires_grad=True)
    F.relu(xb * 1.0).backward(bcml.tensor(g))
    with np.errstate(invalid="ignore"):
        ref = np.float32(0) + np.where(x <= 0, np.float32(0), g)
    np.testing.assert_array_equal(xb.grad.numpy().view(np.uint32), ref.view(np.uint32))
