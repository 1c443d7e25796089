"""max_pool2d, avg_pool2d, adaptive_avg_pool2d and dropout2d: values and gradients against NumPy
float64 references and PyTorch over many configurations (kernel, stride, padding, ceil_mode,
count_include_pad, dilation, odd sizes, 3-D input, empty batch), finite differences, max pool's
ties and NaN, dropout2d's per-plane masks and generator, the nn modules, and bad inputs."""
import itertools
import math
import time
import warnings

import numpy as np
import pytest

import bcml
import bcml.nn as nn
import bcml.nn.functional as F
from bcml import _core
from bcml._tensor import OPS
from conftest import check_grad

RNG = np.random.default_rng(2024)


def rand(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def distinct(*shape, gap=0.05):
    """Values at least `gap` apart (no ties, so max pool has no kink within finite differences)."""
    n = int(np.prod(shape))
    return ((RNG.permutation(n) - n / 2) * gap).reshape(shape).astype(np.float32)


def pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def out_size(n, k, s, p, d, ceil_mode):
    """PyTorch's pooling output size, the last window starting inside the input or left padding."""
    span = n + 2 * p - d * (k - 1) - 1
    o = (math.ceil(span / s) if ceil_mode else math.floor(span / s)) + 1
    if ceil_mode and (o - 1) * s >= n + p:
        o -= 1
    return o


def planes(x):
    return x.reshape((-1,) + x.shape[-2:]).astype(np.float64)


# ---- NumPy float64 references --------------------------------------------------------------------
def max_pool_ref(x, k, s, p, d=1, ceil_mode=False):
    """(out, idx): PyTorch's max over real taps (first maximum; a NaN wins, the last NaN's index)."""
    (kh, kw), (sh, sw), (ph, pw) = pair(k), pair(s), pair(p)
    H, W = x.shape[-2:]
    OH, OW = out_size(H, kh, sh, ph, d, ceil_mode), out_size(W, kw, sw, pw, d, ceil_mode)
    xp = planes(x)
    out = np.empty((len(xp), OH, OW))
    idx = np.empty((len(xp), OH, OW), np.int64)
    for c, oh, ow in itertools.product(range(len(xp)), range(OH), range(OW)):
        taps = [(oh * sh - ph + i * d, ow * sw - pw + j * d) for i in range(kh) for j in range(kw)]
        taps = [(h, w) for h, w in taps if 0 <= h < H and 0 <= w < W]
        vals = np.array([xp[c, h, w] for h, w in taps])
        if not taps:
            out[c, oh, ow], idx[c, oh, ow] = -np.inf, -1
            continue
        nans = np.flatnonzero(np.isnan(vals))
        t = nans[-1] if nans.size else int(np.argmax(vals))
        out[c, oh, ow] = vals[t]
        idx[c, oh, ow] = taps[t][0] * W + taps[t][1]
    shape = x.shape[:-2] + (OH, OW)
    return out.reshape(shape), idx.reshape(shape)


def max_pool_grad_ref(x, idx, g):
    dx = np.zeros((int(np.prod(x.shape[:-2])), x.shape[-2] * x.shape[-1]))
    gi, ii = g.reshape(len(dx), -1), idx.reshape(len(dx), -1)
    for c in range(len(dx)):
        for o in range(ii.shape[1]):
            if ii[c, o] >= 0:
                dx[c, ii[c, o]] += gi[c, o]
    return dx.reshape(x.shape)


def avg_windows(H, W, k, s, p, ceil_mode, count_include_pad):
    """[(oh, ow, h0, h1, w0, w1, divisor)] of avg_pool2d."""
    (kh, kw), (sh, sw), (ph, pw) = pair(k), pair(s), pair(p)
    OH, OW = out_size(H, kh, sh, ph, 1, ceil_mode), out_size(W, kw, sw, pw, 1, ceil_mode)
    wins = []
    for oh, ow in itertools.product(range(OH), range(OW)):
        hs, ws = oh * sh - ph, ow * sw - pw
        he, we = min(hs + kh, H + ph), min(ws + kw, W + pw)   # clipped to the padded input
        h0, h1, w0, w1 = max(hs, 0), min(he, H), max(ws, 0), min(we, W)
        div = (he - hs) * (we - ws) if count_include_pad else (h1 - h0) * (w1 - w0)
        wins.append((oh, ow, h0, h1, w0, w1, div))
    return OH, OW, wins


def avg_pool_ref(x, k, s, p, ceil_mode=False, count_include_pad=True, g=None):
    """Forward (g None) or the gradient for output gradient g."""
    H, W = x.shape[-2:]
    OH, OW, wins = avg_windows(H, W, k, s, p, ceil_mode, count_include_pad)
    xp = planes(x)
    if g is None:
        out = np.empty((len(xp), OH, OW))
        for oh, ow, h0, h1, w0, w1, div in wins:
            out[:, oh, ow] = xp[:, h0:h1, w0:w1].sum(axis=(1, 2)) / div
        return out.reshape(x.shape[:-2] + (OH, OW))
    gp, dx = planes(g), np.zeros_like(xp)
    for oh, ow, h0, h1, w0, w1, div in wins:
        dx[:, h0:h1, w0:w1] += (gp[:, oh, ow] / div)[:, None, None]
    return dx.reshape(x.shape)


def adaptive_ref(x, osize, g=None):
    H, W = x.shape[-2:]
    OH, OW = osize
    rows = [(math.floor(i * H / OH), math.ceil((i + 1) * H / OH)) for i in range(OH)]
    cols = [(math.floor(j * W / OW), math.ceil((j + 1) * W / OW)) for j in range(OW)]
    xp = planes(x)
    if g is None:
        out = np.empty((len(xp), OH, OW))
        for (i, (h0, h1)), (j, (w0, w1)) in itertools.product(enumerate(rows), enumerate(cols)):
            out[:, i, j] = xp[:, h0:h1, w0:w1].mean(axis=(1, 2))
        return out.reshape(x.shape[:-2] + (OH, OW))
    gp, dx = planes(g), np.zeros_like(xp)
    for (i, (h0, h1)), (j, (w0, w1)) in itertools.product(enumerate(rows), enumerate(cols)):
        dx[:, h0:h1, w0:w1] += (gp[:, i, j] / ((h1 - h0) * (w1 - w0)))[:, None, None]
    return dx.reshape(x.shape)


def run(fn, x, seed=0):
    """bcml forward and the gradient of sum(w * out) for fixed random w: (out, dx, w)."""
    xb = bcml.tensor(x, requires_grad=True)
    out = fn(xb)
    w = np.random.default_rng(seed).standard_normal(out.shape).astype(np.float32)
    out.backward(bcml.from_numpy(w))
    return out.detach().numpy(), xb.grad.numpy(), w


def run_torch(torch, fn, x, w):
    xt = torch.tensor(x, requires_grad=True)
    out = fn(xt)
    out.backward(torch.from_numpy(w))
    return out.detach().numpy(), xt.grad.numpy()


def assert_close(a, b, rtol=1e-5, atol=1e-6):
    np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)


# ---- configurations ------------------------------------------------------------------------------
SHAPES = [(2, 3, 7, 9), (1, 2, 8, 8), (3, 5, 6), (1, 1, 5, 4)]
POOLS = [(k, s, p, c) for k in (2, 3) for s in (1, 2) for p in (0, 1) for c in (False, True)]
POOLS += [((2, 3), (1, 2), (1, 0), False), ((3, 2), (2, 1), (0, 1), True), (3, 3, 1, True), (1, 1, 0, False),
          (4, 3, 2, True)]


def pool_id(v):
    return "k%s-s%s-p%s-%s" % (v[0], v[1], v[2], "ceil" if v[3] else "floor")


# ---- max_pool2d ----------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("cfg", POOLS, ids=pool_id)
def test_max_pool2d_matches_numpy(shape, cfg):
    k, s, p, c = cfg
    x = rand(*shape)
    out, dx, w = run(lambda t: F.max_pool2d(t, k, s, p, ceil_mode=c), x)
    ref, idx = max_pool_ref(x, k, s, p, 1, c)
    assert out.shape == ref.shape
    np.testing.assert_array_equal(out, ref.astype(np.float32))   # a max is exact
    assert_close(dx, max_pool_grad_ref(x, idx, w))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("cfg", POOLS, ids=pool_id)
def test_max_pool2d_matches_torch(torch, shape, cfg):
    k, s, p, c = cfg
    x = rand(*shape)
    out, dx, w = run(lambda t: F.max_pool2d(t, k, s, p, ceil_mode=c), x)
    tout, tdx = run_torch(torch, lambda t: torch.nn.functional.max_pool2d(t, k, s, p, ceil_mode=c), x, w)
    np.testing.assert_array_equal(out, tout)
    assert_close(dx, tdx)


@pytest.mark.parametrize("cfg", [(3, 1, 1, 2, False), (2, 2, 1, 2, True), (3, 2, 0, 2, False), (3, 2, 1, 3, True),
                                 (2, 1, 0, 3, False)])
@pytest.mark.parametrize("shape", [(2, 3, 9, 11), (4, 10, 10)])
def test_max_pool2d_dilation(torch, cfg, shape):
    k, s, p, d, c = cfg
    x = rand(*shape)
    out, dx, w = run(lambda t: F.max_pool2d(t, k, s, p, dilation=d, ceil_mode=c), x)
    ref, idx = max_pool_ref(x, k, s, p, d, c)
    np.testing.assert_array_equal(out, ref.astype(np.float32))
    assert_close(dx, max_pool_grad_ref(x, idx, w))
    tout, tdx = run_torch(torch, lambda t: torch.nn.functional.max_pool2d(t, k, s, p, d, c), x, w)
    np.testing.assert_array_equal(out, tout)
    assert_close(dx, tdx)


@pytest.mark.parametrize("cfg", [(2, 2, 0, False), (3, 2, 1, False), (3, 1, 1, True), (2, 1, 1, True)])
def test_max_pool2d_finite_differences(cfg):
    k, s, p, c = cfg
    check_grad(lambda t: F.max_pool2d(t, k, s, p, ceil_mode=c), [distinct(2, 2, 7, 6)])
    check_grad(lambda t: F.max_pool2d(t, k, s, p, ceil_mode=c), [distinct(3, 5, 5)])


@pytest.mark.parametrize("cfg", [(2, 2, 0), (3, 1, 1), (3, 2, 1), (2, 1, 0)])
def test_max_pool2d_ties_send_the_gradient_to_the_first_maximum(torch, cfg):
    k, s, p = cfg
    x = np.ones((2, 3, 6, 7), np.float32)
    x[0, 0, 2:4, 2:5] = 5.0                       # a plateau of ties too
    out, dx, w = run(lambda t: F.max_pool2d(t, k, s, p), x)
    ref, idx = max_pool_ref(x, k, s, p)
    np.testing.assert_array_equal(out, ref)
    assert_close(dx, max_pool_grad_ref(x, idx, w))
    _, tdx = run_torch(torch, lambda t: torch.nn.functional.max_pool2d(t, k, s, p), x, w)
    assert_close(dx, tdx)


def test_max_pool2d_ties_by_hand():
    x = bcml.tensor(np.ones((1, 1, 4, 4), np.float32), requires_grad=True)
    F.max_pool2d(x, 2).sum().backward()
    expected = np.zeros((4, 4), np.float32)
    expected[::2, ::2] = 1.0                      # each window's top-left element, the first of its ties
    np.testing.assert_array_equal(x.grad.numpy()[0, 0], expected)


def test_max_pool2d_nan_and_inf(torch):
    x = rand(2, 3, 8, 9)
    x[0, 0, 1, 1] = np.nan
    x[0, 1, 4, 4:6] = np.nan                      # two NaNs in one window: the last one takes the gradient
    x[1, 2, :4, :4] = -np.inf                     # all -inf windows: the first element takes it
    x[1, 0, 5, 5] = np.inf
    for k, s, p in [(2, 2, 0), (3, 2, 1), (3, 1, 1), (2, 1, 1)]:
        out, dx, w = run(lambda t: F.max_pool2d(t, k, s, p), x)
        ref, idx = max_pool_ref(x, k, s, p)
        np.testing.assert_array_equal(out, ref.astype(np.float32))
        assert_close(dx, max_pool_grad_ref(x, idx, w))
        tout, tdx = run_torch(torch, lambda t: torch.nn.functional.max_pool2d(t, k, s, p), x, w)
        np.testing.assert_array_equal(out, tout)
        assert_close(dx, tdx)


def test_max_pool2d_window_of_padding_only():
    # with dilation a window can hold padding only: -inf and no gradient (PyTorch points past the
    # plane there and corrupts memory in backward, so there is no PyTorch comparison)
    x = bcml.tensor(rand(1, 2, 1, 1), requires_grad=True)
    out = F.max_pool2d(x, 2, 1, 1, dilation=2)
    assert out.shape == (1, 2, 1, 1)
    np.testing.assert_array_equal(out.detach().numpy(), -np.inf)
    out.backward(bcml.ones(1, 2, 1, 1))
    np.testing.assert_array_equal(x.grad.numpy(), 0.0)


def special_values(x, rng, frac=0.15):
    """x with ties, NaNs, +-inf and signed zeros in random places."""
    x = x.copy().reshape(-1)
    n = x.size
    for v in (np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0):
        x[rng.choice(n, max(1, int(n * frac / 6)), replace=False)] = v
    return x.reshape(-1)


# 2 x 2 windows of stride 2: rows of 1 to 35 outputs (one masked vector, whole vectors and a
# masked tail), odd sizes (the last row / column unused), the MNIST ConvNet's two pools, and the
# padded and ceil_mode paths (the same row kernel over a padded copy)
K2S2_SHAPES = [(64, 10, 24, 24), (64, 20, 8, 8), (3, 2, 2, 2), (2, 3, 7, 9), (1, 2, 5, 33), (2, 1, 6, 64),
               (1, 3, 9, 70), (2, 2, 3, 31)]


@pytest.mark.parametrize("shape", K2S2_SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("p, c", [(0, False), (1, False), (0, True)], ids=["plain", "pad1", "ceil"])
def test_max_pool2d_k2s2_kernels_match_numpy(kernels, shape, p, c):
    rng = np.random.default_rng(hash((shape, p, c)) % 2 ** 32)
    x = special_values(rng.standard_normal(shape).astype(np.float32), rng).reshape(shape)
    if shape == (2, 2, 3, 31):
        x[:] = -np.inf                                # windows of -inf only: the first tap (or, padded, a real one)
    out, dx, w = run(lambda t: F.max_pool2d(t, 2, 2, p, ceil_mode=c), x)
    ref, idx = max_pool_ref(x, 2, 2, p, 1, c)
    np.testing.assert_array_equal(out, ref.astype(np.float32))
    np.testing.assert_array_equal(dx, max_pool_grad_ref(x, idx, w).astype(np.float32))  # one tap each: exact


@pytest.mark.skipif(not _core.cpu_avx512(), reason="this CPU has no AVX-512")
def test_max_pool2d_k2s2_avx512_and_portable_give_the_same_bits():
    rng = np.random.default_rng(7)
    before = _core.get_avx512()
    try:
        for shape in K2S2_SHAPES[:3] + [(4, 5, 30, 46)]:
            x = special_values(rng.standard_normal(shape).astype(np.float32), rng).reshape(shape)
            res = []
            for on in (1, 0):
                _core.set_avx512(on)
                with bcml.no_grad():
                    nograd = F.max_pool2d(bcml.from_numpy(x), 2).numpy()
                res.append((nograd,) + run(lambda t: F.max_pool2d(t, 2), x)[:2])
            for a, b in zip(*res):
                assert a.tobytes() == b.tobytes()
    finally:
        _core.set_avx512(before)


def test_max_pool2d_k2s2_backward_adds_into_an_existing_gradient(kernels):
    # .grad holds -0.0, +0.0, NaN and numbers: the elements no window picks keep their bits, the
    # picked ones get grad + g, as the scalar scatter dx[idx] += g gives
    x = rand(3, 4, 9, 10)
    g = rand(3, 4, 4, 5)
    grad0 = np.random.default_rng(5).choice(np.array([-0.0, 0.0, np.nan, 1.5, -2.25], np.float32), x.shape)
    xb = bcml.tensor(x, requires_grad=True)
    xb.grad = bcml.from_numpy(grad0.copy())
    (F.max_pool2d(xb, 2) * bcml.from_numpy(g)).sum().backward()
    _, idx = max_pool_ref(x, 2, 2, 0)
    expected = grad0.copy().ravel()
    flat = (np.arange(12)[:, None] * 90 + idx.reshape(12, -1)).ravel()
    expected[flat] += g.ravel()
    assert xb.grad.numpy().tobytes() == expected.reshape(x.shape).tobytes()


# ---- avg_pool2d ----------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("cfg", POOLS, ids=pool_id)
@pytest.mark.parametrize("cip", [True, False], ids=["include_pad", "exclude_pad"])
def test_avg_pool2d_matches_numpy_and_torch(torch, shape, cfg, cip):
    k, s, p, c = cfg
    x = rand(*shape)
    out, dx, w = run(lambda t: F.avg_pool2d(t, k, s, p, ceil_mode=c, count_include_pad=cip), x)
    assert_close(out, avg_pool_ref(x, k, s, p, c, cip))
    assert_close(dx, avg_pool_ref(x, k, s, p, c, cip, g=w))
    tout, tdx = run_torch(torch, lambda t: torch.nn.functional.avg_pool2d(t, k, s, p, c, cip), x, w)
    assert_close(out, tout)
    assert_close(dx, tdx)


def test_avg_pool2d_ceil_mode_divides_by_the_clipped_window():
    # 5 wide, kernel 2, stride 2, ceil_mode: the last window holds one column
    x = np.arange(10, dtype=np.float32).reshape(1, 1, 2, 5)
    out = F.avg_pool2d(bcml.tensor(x), 2, ceil_mode=True).numpy()
    np.testing.assert_allclose(out[0, 0, 0], [(0 + 1 + 5 + 6) / 4, (2 + 3 + 7 + 8) / 4, (4 + 9) / 2])
    # with padding 1: windows reaching into the right padding count it, the clipped one does not
    x = np.ones((1, 1, 1, 4), np.float32)
    out = F.avg_pool2d(bcml.tensor(x), (1, 3), (1, 2), (0, 1), ceil_mode=True).numpy()
    np.testing.assert_allclose(out[0, 0, 0], [2 / 3, 3 / 3, 1 / 2])


@pytest.mark.parametrize("cfg", [(2, 2, 0, False, True), (3, 1, 1, True, False), (3, 2, 1, True, True),
                                 (2, 1, 1, False, False)])
def test_avg_pool2d_finite_differences(cfg):
    k, s, p, c, cip = cfg
    check_grad(lambda t: F.avg_pool2d(t, k, s, p, c, cip), [rand(2, 2, 7, 6)])
    check_grad(lambda t: F.avg_pool2d(t, k, s, p, c, cip), [rand(3, 5, 5)])


# ---- adaptive_avg_pool2d -------------------------------------------------------------------------
@pytest.mark.parametrize("hw", [(7, 9), (8, 8), (5, 5), (1, 1), (3, 2), (16, 3), (2, 4), (6, 10)])
@pytest.mark.parametrize("osize", [(1, 1), (2, 2), (3, 3), (5, 5), (2, 3), (5, 1), (3, 5)])
def test_adaptive_avg_pool2d_matches_numpy_and_torch(torch, hw, osize):
    x = rand(2, 3, *hw)
    out, dx, w = run(lambda t: F.adaptive_avg_pool2d(t, osize), x)
    assert out.shape == (2, 3) + osize
    assert_close(out, adaptive_ref(x, osize))
    assert_close(dx, adaptive_ref(x, osize, g=w))
    tout, tdx = run_torch(torch, lambda t: torch.nn.functional.adaptive_avg_pool2d(t, osize), x, w)
    assert_close(out, tout)
    assert_close(dx, tdx)


@pytest.mark.parametrize("osize", [1, 2, 3, 5, (None, 2), (3, None)])
def test_adaptive_avg_pool2d_sizes_and_3d(torch, osize):
    x = rand(4, 7, 6)
    out, dx, w = run(lambda t: F.adaptive_avg_pool2d(t, osize), x)
    tout, tdx = run_torch(torch, lambda t: torch.nn.functional.adaptive_avg_pool2d(t, osize), x, w)
    assert out.shape == tout.shape
    assert_close(out, tout)
    assert_close(dx, tdx)


@pytest.mark.parametrize("osize", [(1, 1), (2, 3), (4, 4)])
def test_adaptive_avg_pool2d_finite_differences(osize):
    check_grad(lambda t: F.adaptive_avg_pool2d(t, osize), [rand(2, 3, 7, 5)])


def test_adaptive_avg_pool2d_to_one_of_an_empty_plane_is_nan(torch):
    # PyTorch computes output (1, 1) as a mean over H x W, so an empty plane gives NaN there
    x = np.zeros((2, 3, 0, 4), np.float32)
    out = F.adaptive_avg_pool2d(bcml.tensor(x), 1).numpy()
    tout = torch.nn.functional.adaptive_avg_pool2d(torch.from_numpy(x), 1).numpy()
    assert out.shape == tout.shape == (2, 3, 1, 1)
    assert np.isnan(out).all() and np.isnan(tout).all()
    with pytest.raises(ValueError, match="input"):
        F.adaptive_avg_pool2d(bcml.tensor(x), 2)
    # no channels is fine for adaptive pooling (an empty output), as in PyTorch
    for shape in [(2, 0, 5, 4), (0, 5, 4)]:
        out = F.adaptive_avg_pool2d(bcml.zeros(*shape), (2, 3))
        assert out.shape == tuple(torch.nn.functional.adaptive_avg_pool2d(torch.zeros(shape), (2, 3)).shape)


# ---- shared: empty batch, common shapes, threads -------------------------------------------------
OPS_FOR_SHAPES = {
    "max": (lambda m, t: m.max_pool2d(t, 2)),
    "max3": (lambda m, t: m.max_pool2d(t, 3, 2, 1)),
    "avg": (lambda m, t: m.avg_pool2d(t, 3, 2, 1, count_include_pad=False)),
    "adaptive": (lambda m, t: m.adaptive_avg_pool2d(t, (2, 3))),
}


@pytest.mark.parametrize("op", list(OPS_FOR_SHAPES))
def test_empty_batch_and_batch_of_one(torch, op):
    fn = OPS_FOR_SHAPES[op]
    for shape in [(0, 3, 8, 7), (1, 3, 8, 7)]:
        x = rand(*shape)
        out, dx, w = run(lambda t: fn(F, t), x)
        tout, tdx = run_torch(torch, lambda t: fn(torch.nn.functional, t), x, w)
        assert out.shape == tout.shape and dx.shape == x.shape
        assert_close(out, tout)
        assert_close(dx, tdx)


@pytest.mark.parametrize("shape,op", [((64, 10, 24, 24), "max"), ((64, 20, 8, 8), "max"),
                                      ((128, 64, 16, 16), "max3"), ((128, 64, 15, 17), "max3"),
                                      ((32, 16, 16, 16), "avg")])
def test_common_shapes_match_torch(torch, shape, op):
    fn = OPS_FOR_SHAPES[op]
    x = rand(*shape)
    out, dx, w = run(lambda t: fn(F, t), x)
    tout, tdx = run_torch(torch, lambda t: fn(torch.nn.functional, t), x, w)
    assert_close(out, tout)
    assert_close(dx, tdx)


@pytest.mark.parametrize("fn", [lambda m, t: m.max_pool2d(t, 3, 2, 1), lambda m, t: m.max_pool2d(t, 2, ceil_mode=True),
                                lambda m, t: m.max_pool2d(t, 3, 1, 1, dilation=2),
                                lambda m, t: m.avg_pool2d(t, 3, 1, 1, count_include_pad=False),
                                lambda m, t: m.avg_pool2d(t, 2, ceil_mode=True)])
def test_large_planes_match_torch(torch, fn):
    # planes too large for a padded copy keep the bounds-checked border code
    x = rand(1, 1, 1031, 1029)
    out, dx, w = run(lambda t: fn(F, t), x)
    tout, tdx = run_torch(torch, lambda t: fn(torch.nn.functional, t), x, w)
    assert_close(out, tout)
    assert_close(dx, tdx)


@pytest.mark.parametrize("hw", [(1, 1), (2, 2), (3, 3), (4, 4), (2, 3)])
def test_global_average_pool_shapes_match_torch(torch, hw):
    x = rand(128, 64, *hw)
    out, dx, w = run(lambda t: F.adaptive_avg_pool2d(t, 1), x)
    tout, tdx = run_torch(torch, lambda t: torch.nn.functional.adaptive_avg_pool2d(t, 1), x, w)
    assert_close(out, tout)
    assert_close(dx, tdx)


def test_results_do_not_depend_on_thread_count():
    x = rand(64, 20, 12, 12)
    before = bcml.get_num_threads()
    results = []
    try:
        for n in (1, 2, 3):
            bcml.set_num_threads(n)
            # threads.c: a pool thread reads the job generation when it starts running, so one
            # that starts after the first job was posted misses it and that job never ends; give
            # new threads time to start until that race is fixed
            time.sleep(0.2)
            res = []
            for op in OPS_FOR_SHAPES.values():
                out, dx, _ = run(lambda t: op(F, t), x)
                res += [out, dx]
            out, dx, _ = run(lambda t: F.dropout2d(t, 0.3, generator=bcml.Generator(4)), x)
            results.append(res + [out, dx])
    finally:
        bcml.set_num_threads(before)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)


def test_no_grad_forward_equals_recorded_forward():
    x = rand(4, 3, 10, 11)
    for op in OPS_FOR_SHAPES.values():
        with bcml.no_grad():
            a = op(F, bcml.tensor(x, requires_grad=True)).numpy()
        b = op(F, bcml.tensor(x, requires_grad=True)).detach().numpy()
        np.testing.assert_array_equal(a, b)


# ---- dropout2d -----------------------------------------------------------------------------------
def uniforms(seed, n):
    """The first n uniforms [0, 1) (24 bits) of a fresh generator, from its raw 64-bit draws."""
    g = bcml.Generator(seed)
    return np.array([(g._next_u64() >> 40) * 2.0 ** -24 for _ in range(n)])


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
@pytest.mark.parametrize("shape", [(4, 6, 5, 3), (8, 3, 1, 1), (1, 16, 4, 4)])
def test_dropout2d_zeroes_whole_planes_following_the_generator(p, shape):
    x = rand(*shape)
    out = F.dropout2d(bcml.tensor(x), p, generator=bcml.Generator(77)).numpy()
    keep = uniforms(77, shape[0] * shape[1]).reshape(shape[:2]) >= p   # one draw per (n, c) plane
    ref = np.where(keep[:, :, None, None], x.astype(np.float64) / (1 - p), 0.0)
    np.testing.assert_allclose(out, ref, rtol=1e-6, atol=0)


def test_dropout2d_same_seed_same_mask():
    x = bcml.ones(20, 30, 2, 2)
    bcml.manual_seed(3)
    a = F.dropout2d(x, 0.5).numpy()
    b = F.dropout2d(x, 0.5).numpy()
    bcml.manual_seed(3)
    c = F.dropout2d(x, 0.5).numpy()
    np.testing.assert_array_equal(a, c)
    assert not np.array_equal(a, b)
    g1, g2 = bcml.Generator(9), bcml.Generator(9)
    np.testing.assert_array_equal(F.dropout2d(x, 0.3, generator=g1).numpy(),
                                  F.dropout2d(x, 0.3, generator=g2).numpy())


@pytest.mark.parametrize("p", [0.2, 0.5, 0.75])
def test_dropout2d_kept_fraction_and_scale(torch, p):
    N, C = 200, 150                                   # 30000 planes
    out = F.dropout2d(bcml.ones(N, C, 3, 2), p, generator=bcml.Generator(5)).numpy()
    kept = out[:, :, 0, 0] != 0
    assert ((out != 0) == kept[:, :, None, None]).all()          # whole planes
    sigma = math.sqrt(p * (1 - p) / kept.size)
    assert abs(kept.mean() - (1 - p)) < 5 * sigma
    np.testing.assert_array_equal(out[out != 0], np.float32(1 / (1 - p)))
    # PyTorch keeps the same fraction of whole planes with the same scale (different bits)
    torch.manual_seed(0)
    tout = torch.nn.functional.dropout2d(torch.ones(N, C, 3, 2), p).numpy()
    tkept = tout[:, :, 0, 0] != 0
    assert ((tout != 0) == tkept[:, :, None, None]).all()
    assert abs(tkept.mean() - kept.mean()) < 10 * sigma
    np.testing.assert_allclose(np.unique(out[out != 0]), np.unique(tout[tout != 0]), rtol=1e-6)


def test_dropout2d_gradient_goes_through_the_mask(torch):
    x, g, p = rand(5, 7, 3, 4), rand(5, 7, 3, 4), 0.4
    xb = bcml.tensor(x, requires_grad=True)
    out = F.dropout2d(xb, p, generator=bcml.Generator(12))
    out.backward(bcml.from_numpy(g))
    keep = (uniforms(12, 35).reshape(5, 7) >= p)[:, :, None, None]
    np.testing.assert_allclose(xb.grad.numpy(), np.where(keep, g / np.float32(1 - p), 0), rtol=1e-6)
    # PyTorch's dropout2d is x * mask / (1 - p) with a (N, C, 1, 1) mask: same mask, same results
    xt = torch.tensor(x, requires_grad=True)
    tout = xt * torch.from_numpy(keep.astype(np.float32)) / (1 - p)
    tout.backward(torch.from_numpy(g))
    np.testing.assert_allclose(out.detach().numpy(), tout.detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(xb.grad.numpy(), xt.grad.numpy(), rtol=1e-6)


def test_dropout2d_finite_differences():
    check_grad(lambda t: F.dropout2d(t, 0.5, generator=bcml.Generator(8)), [rand(3, 4, 2, 3)])


def test_dropout2d_3d_input_drops_rows_as_pytorch(torch):
    x = np.ones((40, 30, 5), np.float32)
    with pytest.warns(UserWarning, match="3-D"):
        out = F.dropout2d(bcml.tensor(x), 0.5, generator=bcml.Generator(1)).numpy()
    keep = uniforms(1, 40 * 30).reshape(40, 30) >= 0.5
    np.testing.assert_array_equal(out, np.where(keep[:, :, None], 2 * x, 0.0))
    with pytest.warns(UserWarning):
        tout = torch.nn.functional.dropout2d(torch.from_numpy(x), 0.5).numpy()
    assert ((tout != 0) == (tout[:, :, :1] != 0)).all()     # PyTorch also drops (n, c) rows whole


def test_dropout2d_edge_cases(torch):
    x = bcml.tensor(rand(2, 3, 4, 4), requires_grad=True)
    assert F.dropout2d(x, 0.5, training=False) is x
    assert F.dropout2d(x, 0.0) is x
    out = F.dropout2d(x, 1.0)
    np.testing.assert_array_equal(out.detach().numpy(), 0.0)
    out.backward(bcml.ones(2, 3, 4, 4))
    np.testing.assert_array_equal(x.grad.numpy(), 0.0)
    assert F.dropout2d(bcml.zeros(0, 3, 4, 4), 0.5).shape == (0, 3, 4, 4)
    assert F.dropout2d(bcml.zeros(2, 3, 0, 4), 0.5).shape == (2, 3, 0, 4)
    nan = F.dropout2d(bcml.tensor(np.full((8, 8, 2, 2), np.nan, np.float32)), 0.5).numpy()
    assert np.isnan(nan).all()                    # x * 0 keeps NaN, as PyTorch's x * mask
    tnan = torch.nn.functional.dropout2d(torch.full((8, 8, 2, 2), float("nan")), 0.5).numpy()
    assert np.isnan(tnan).all()


def test_dropout2d_module_train_eval(torch):
    m = nn.Dropout2d(0.5)
    x = bcml.ones(50, 20, 3, 3)
    bcml.manual_seed(0)
    out = m(x).numpy()
    assert set(np.unique(out)) == {0.0, 2.0}
    assert ((out != 0) == (out[:, :, :1, :1] != 0)).all()
    m.eval()
    assert m(x) is x
    tm = torch.nn.Dropout2d(0.5).eval()
    np.testing.assert_array_equal(m(x).numpy(), tm(torch.ones(50, 20, 3, 3)).numpy())
    m.train()
    assert (m(x).numpy() == 0).any()
    assert "p=0.5" in repr(m)


# ---- modules against torch.nn ----------------------------------------------------------------------
MODULES = [
    ("MaxPool2d", dict(kernel_size=2)),
    ("MaxPool2d", dict(kernel_size=3, stride=2, padding=1)),
    ("MaxPool2d", dict(kernel_size=(3, 2), stride=(1, 2), padding=(1, 0), dilation=1, ceil_mode=True)),
    ("MaxPool2d", dict(kernel_size=3, stride=1, padding=1, dilation=2)),
    ("AvgPool2d", dict(kernel_size=2)),
    ("AvgPool2d", dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)),
    ("AvgPool2d", dict(kernel_size=(2, 3), stride=1, padding=(1, 1))),
    ("AdaptiveAvgPool2d", dict(output_size=1)),
    ("AdaptiveAvgPool2d", dict(output_size=(3, 2))),
    ("AdaptiveAvgPool2d", dict(output_size=(None, 4))),
]


@pytest.mark.parametrize("name,kwargs", MODULES)
@pytest.mark.parametrize("shape", [(3, 4, 9, 8), (4, 7, 7)])
def test_modules_match_torch(torch, name, kwargs, shape):
    m, tm = getattr(nn, name)(**kwargs), getattr(torch.nn, name)(**kwargs)
    x = rand(*shape)
    out, dx, w = run(m, x)
    tout, tdx = run_torch(torch, tm, x, w)
    assert out.shape == tout.shape
    assert_close(out, tout)
    assert_close(dx, tdx)
    assert list(m.state_dict()) == list(tm.state_dict()) == []


# ---- bad inputs ----------------------------------------------------------------------------------
def test_bad_dtype_raises_type_error():
    xi = bcml.tensor(np.zeros((1, 2, 4, 4), np.int64))
    for fn in (lambda: F.max_pool2d(xi, 2), lambda: F.avg_pool2d(xi, 2),
               lambda: F.adaptive_avg_pool2d(xi, 2), lambda: F.dropout2d(xi, 0.5)):
        with pytest.raises(TypeError, match="input must be a float32"):
            fn()
    with pytest.raises(TypeError, match="input"):
        F.max_pool2d(np.zeros((1, 1, 4, 4), np.float32), 2)


@pytest.mark.parametrize("shape", [(4, 4), (8,), (2, 0, 4, 4), (2, 3, 0, 4), (0, 4, 4)])
def test_bad_rank_or_empty_plane_raises(shape):
    x = bcml.zeros(*shape)
    for name, fn in [("max_pool2d", lambda: F.max_pool2d(x, 1)), ("avg_pool2d", lambda: F.avg_pool2d(x, 1))]:
        with pytest.raises(ValueError, match=r"%s: input .*%s" % (name, re_shape(shape))):
            fn()
    if len(shape) < 3 or 0 in shape[-2:]:
        with pytest.raises(ValueError, match=r"adaptive_avg_pool2d: input .*%s" % re_shape(shape)):
            F.adaptive_avg_pool2d(x, 2)


def re_shape(shape):
    return "\\(" + ", ".join(map(str, shape)) + (",\\)" if len(shape) == 1 else "\\)")


def test_bad_pool_arguments_raise_value_error_naming_them():
    x = bcml.zeros(1, 2, 6, 6)
    with pytest.raises(ValueError, match="kernel_size"):
        F.max_pool2d(x, 0)
    with pytest.raises(ValueError, match="kernel_size"):
        F.avg_pool2d(x, (2, -1))
    with pytest.raises(ValueError, match="stride"):
        F.max_pool2d(x, 2, stride=0)
    with pytest.raises(ValueError, match="padding"):
        F.max_pool2d(x, 2, padding=-1)
    with pytest.raises(ValueError, match="pad should be at most half"):
        F.max_pool2d(x, 2, padding=2)
    with pytest.raises(ValueError, match="pad should be at most half"):
        F.avg_pool2d(x, 3, padding=(0, 2))
    with pytest.raises(ValueError, match="dilation"):
        F.max_pool2d(x, 2, dilation=0)
    with pytest.raises(TypeError, match="kernel_size"):
        F.max_pool2d(x, 2.5)
    with pytest.raises(ValueError, match="output_size"):
        F.adaptive_avg_pool2d(x, 0)
    with pytest.raises(ValueError, match="output_size"):
        F.adaptive_avg_pool2d(x, (1, 2, 3))


def test_output_too_small_names_the_input_and_sizes():
    x = bcml.zeros(2, 3, 1, 1)
    with pytest.raises(ValueError, match=r"max_pool2d: input of size \(3x1x1\) gives output size \(3x0x0\)"):
        F.max_pool2d(x, 2)
    with pytest.raises(ValueError, match=r"avg_pool2d: input of size \(3x1x1\).*too small"):
        F.avg_pool2d(x, 2)
    with pytest.raises(ValueError, match=r"input of size \(3x4x4\).*too small"):
        F.max_pool2d(bcml.zeros(3, 4, 4), 3, dilation=2)


def test_core_checks_the_argument_block():
    """The C op checks what the Python wrapper would have caught (bcml._core.apply called directly)."""
    x = bcml.zeros(1, 2, 6, 6)
    mp, ap = OPS["max_pool2d"], OPS["avg_pool2d"]
    with pytest.raises(ValueError, match="max_pool2d: kernel_size must be positive"):
        _core.apply(mp, (x,), (0, 2, 1, 1, 0, 0, 0, 1), ())
    with pytest.raises(ValueError, match="avg_pool2d: stride must be positive"):
        _core.apply(ap, (x,), (2, 2, 1, -1, 0, 0, 0, 1), ())
    with pytest.raises(ValueError, match="max_pool2d: dilation must be positive"):
        _core.apply(mp, (x,), (2, 2, 1, 1, 0, 0, 0, 0), ())
    with pytest.raises(ValueError, match="max_pool2d: padding must be non-negative and at most half"):
        _core.apply(mp, (x,), (2, 2, 1, 1, 2, 0, 0, 1), ())
    with pytest.raises(ValueError, match="avg_pool2d: padding"):
        _core.apply(ap, (x,), (2, 2, 1, 1, 0, -1, 0, 1), ())
    with pytest.raises(ValueError, match="kernel_size must be positive"):
        _core.apply(mp, (x,), (1 << 40, 2, 1, 1, 0, 0, 0, 1), ())
    with pytest.raises(ValueError, match="adaptive_avg_pool2d: output_size must be positive"):
        _core.apply(OPS["adaptive_avg_pool2d"], (x,), (0, 1), ())
    with pytest.raises(ValueError, match="dropout2d: probability"):
        _core.apply(OPS["dropout2d"], (x,), (1,), (1.5,), bcml.Generator(0))
    with pytest.raises(ValueError, match="dropout2d: input must have at least 2 dimensions"):
        _core.apply(OPS["dropout2d"], (bcml.ones(5),), (1,), (0.5,), bcml.Generator(0))
    with pytest.raises(RuntimeError, match="generator"):
        _core.apply(OPS["dropout2d"], (x,), (1,), (0.5,))


def test_dropout2d_bad_inputs():
    x = bcml.ones(2, 3, 4, 4)
    with pytest.raises(ValueError, match="probability"):
        F.dropout2d(x, 1.5)
    with pytest.raises(ValueError, match="probability"):
        nn.Dropout2d(-0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="input must have at least 2 dimensions"):
            F.dropout2d(bcml.ones(6), 0.5)
    with pytest.raises(TypeError, match="generator"):
        F.dropout2d(x, 0.5, generator=3)


@pytest.mark.parametrize("shape,k,s", [((64, 10, 24, 24), 2, 2), ((3, 5, 9, 7), 3, 2), ((2, 3, 8, 8), 2, 1)])
def test_max_pool2d_writes_a_new_gradient_buffer_whole(shape, k, s):
    # the input's gradient, a new buffer (x reaches the pool through x * 1), is zeroed plane by plane
    # by the backward itself (bcml_opdef.fresh_ok); the tests start such buffers as NaN (conftest.py)
    assert _core.get_poison_fresh() == 1
    rng = np.random.default_rng(sum(shape))
    x = rng.standard_normal(shape).astype(np.float32)
    xb = bcml.tensor(x, requires_grad=True)
    out = F.max_pool2d(xb * 1.0, k, s)
    g = rng.standard_normal(out.shape).astype(np.float32)
    out.backward(bcml.tensor(g))
    N, C, H, W = shape
    OH, OW = (H - k) // s + 1, (W - k) // s + 1
    ref = np.zeros(shape, np.float64)
    for n in range(N):
        for c in range(C):
            for i in range(OH):
                for j in range(OW):
                    win = x[n, c, i * s:i * s + k, j * s:j * s + k]
                    a, b = np.unravel_index(np.argmax(win), win.shape)
                    ref[n, c, i * s + a, j * s + b] += g[n, c, i, j]
    np.testing.assert_allclose(xb.grad.numpy(), ref, rtol=1e-6, atol=1e-6)
