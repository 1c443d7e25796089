"""The direct small-channel convolution kernels (csrc/core/conv_direct.c: stride 1, groups 1, a few
output channels, AVX-512), which conv2d.c picks from the shapes: forward, input and weight
gradients against a float64 NumPy reference, equal to the im2col + GEMM path up to rounding, the
same bits at any thread count, and the eval-mode conv + batch norm + ReLU fusion on them."""
import numpy as np
import pytest

import bcml
import bcml.nn.functional as F
from test_ops_conv import conv2d_ref

_core = bcml._core
needs_cpu = pytest.mark.skipif(not _core.cpu_avx512(), reason="the direct kernels need x86-64 with AVX-512")

# (input shape, weight shape, padding, dilation): shapes the direct kernels take
CASES = [
    ((64, 1, 28, 28), (10, 1, 5, 5), 0, 1),            # the MNIST ConvNet's first layer
    ((64, 10, 12, 12), (20, 10, 5, 5), 0, 1),          # and its second
    ((3, 4, 13, 11), (7, 4, 3, 5), (1, 2), 1),         # padded, a kernel wider than tall
    ((2, 3, 17, 19), (9, 3, 3, 3), 2, 2),              # dilated
    ((5, 2, 10, 9), (13, 2, 4, 2), (2, 1), 1),         # even kernel, 13 channels (uneven blocks)
    ((1, 6, 30, 7), (33, 6, 2, 3), 0, 1),              # batch 1, 33 channels
    ((2, 3, 40, 45), (5, 3, 3, 4), 0, 1),              # rows of 42 pixels (more than two vectors)
    ((3, 16, 9, 9), (64, 16, 2, 2), 1, 1),             # 64 channels, the most taken
    ((2, 2, 7, 8), (3, 2, 2, 2), (3, 0), (2, 1)),      # padding larger than the kernel's reach
]
IDS = ["%s-%s-p%s-d%s" % c for c in CASES]


@pytest.fixture
def direct():
    """Runs the test with the direct kernels on, and puts the switch back."""
    before = _core.get_conv_direct()
    _core.set_conv_direct(1)
    yield
    _core.set_conv_direct(before)


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def grads_ref(x, w, gy, padding, dilation):
    """float64 dx, dW and db of a stride-1 convolution (each tap's window, summed)."""
    (ph, pw), (dh, dw) = _pair(padding), _pair(dilation)
    x, w, gy = (np.asarray(a, np.float64) for a in (x, w, gy))
    N, C, H, W = x.shape
    OH, OW = gy.shape[2:]
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    dxp, dW = np.zeros_like(xp), np.zeros_like(w)
    for kh in range(w.shape[2]):
        for kw in range(w.shape[3]):
            rows, cols = slice(kh * dh, kh * dh + OH), slice(kw * dw, kw * dw + OW)
            dW[:, :, kh, kw] = np.einsum("nohw,nchw->oc", gy, xp[:, :, rows, cols])
            dxp[:, :, rows, cols] += np.einsum("nohw,oc->nchw", gy, w[:, :, kh, kw])
    return dxp[:, :, ph:ph + H, pw:pw + W], dW, gy.sum(axis=(0, 2, 3))


def run(arrays, padding, dilation, gy):
    ts = [bcml.tensor(a, requires_grad=True) for a in arrays]
    out = F.conv2d(*ts, padding=padding, dilation=dilation)
    out.backward(bcml.tensor(gy))
    return [out.detach().numpy().copy()] + [t.grad.numpy().copy() for t in ts]


def make(xshape, wshape, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(xshape).astype(np.float32)
    w = (rng.standard_normal(wshape) / np.sqrt(np.prod(wshape[1:]))).astype(np.float32)
    b = rng.standard_normal(wshape[0]).astype(np.float32)
    return x, w, b


def out_shape(xshape, wshape, padding, dilation):
    (ph, pw), (dh, dw) = _pair(padding), _pair(dilation)
    return (xshape[0], wshape[0], xshape[2] + 2 * ph - dh * (wshape[2] - 1), xshape[3] + 2 * pw - dw * (wshape[3] - 1))


def assert_close(got, ref, what):
    ref = np.asarray(ref)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=2e-6 * (1.0 + np.abs(ref).max()), err_msg=what)


@pytest.mark.parametrize("xshape,wshape,padding,dilation", CASES, ids=IDS)
def test_forward_and_gradients_against_float64(direct, xshape, wshape, padding, dilation):
    x, w, b = make(xshape, wshape)
    gy = np.random.default_rng(1).standard_normal(out_shape(xshape, wshape, padding, dilation)).astype(np.float32)
    out, dx, dw, db = run((x, w, b), padding, dilation, gy)
    assert_close(out, conv2d_ref(x, w, b, 1, padding, dilation), "forward")
    rdx, rdw, rdb = grads_ref(x, w, gy, padding, dilation)
    assert_close(dx, rdx, "input gradient")
    assert_close(dw, rdw, "weight gradient")
    assert_close(db, rdb, "bias gradient")


@needs_cpu
@pytest.mark.parametrize("xshape,wshape,padding,dilation", CASES[:2] + CASES[5:6], ids=IDS[:2] + IDS[5:6])
def test_direct_kernels_are_taken_and_agree_with_gemm(xshape, wshape, padding, dilation):
    """The switch changes the algorithm (the results are not the same bits, so these shapes do take
    the direct kernels), and both agree to float32 rounding."""
    x, w, b = make(xshape, wshape, seed=3)
    gy = np.random.default_rng(4).standard_normal(out_shape(xshape, wshape, padding, dilation)).astype(np.float32)
    before = _core.get_conv_direct()
    try:
        _core.set_conv_direct(1)
        on = run((x, w, b), padding, dilation, gy)
        _core.set_conv_direct(0)
        off = run((x, w, b), padding, dilation, gy)
    finally:
        _core.set_conv_direct(before)
    assert any(not np.array_equal(a, c) for a, c in zip(on, off))
    for a, c, what in zip(on, off, ("forward", "dx", "dW", "db")):
        assert_close(a, c, what)


def test_kernels_wider_than_32_columns_take_gemm_and_agree():
    """The direct kernels gather a dx row's kernel columns in registers, up to 32 of them; a wider
    kernel goes to im2col + GEMM (the switch then changes nothing) and is still right."""
    x, w, b = make((2, 2, 6, 50), (3, 2, 2, 33))
    gy = np.random.default_rng(2).standard_normal(out_shape(x.shape, w.shape, 1, 1)).astype(np.float32)
    before = _core.get_conv_direct()
    try:
        res = []
        for on in (1, 0):
            _core.set_conv_direct(on)
            res.append(run((x, w, b), 1, 1, gy))
    finally:
        _core.set_conv_direct(before)
    for a, c in zip(*res):
        assert a.tobytes() == c.tobytes()
    out, dx, dw, db = res[0]
    assert_close(out, conv2d_ref(x, w, b, 1, 1, 1), "forward")
    for got, ref, what in zip((dx, dw, db), grads_ref(x, w, gy, 1, 1), ("dx", "dW", "db")):
        assert_close(got, ref, what)


@pytest.mark.parametrize("xshape,wshape,padding,dilation", [CASES[0], CASES[1], CASES[5]], ids=[IDS[0], IDS[1], IDS[5]])
def test_same_bits_at_any_thread_count(direct, xshape, wshape, padding, dilation):
    x, w, b = make(xshape, wshape, seed=5)
    gy = np.random.default_rng(6).standard_normal(out_shape(xshape, wshape, padding, dilation)).astype(np.float32)
    before = bcml.get_num_threads()
    try:
        results = []
        for n in (1, 2, 3):
            bcml.set_num_threads(n)
            results.append(run((x, w, b), padding, dilation, gy))
    finally:
        bcml.set_num_threads(before)
    for other in results[1:]:
        for a, c in zip(results[0], other):
            np.testing.assert_array_equal(a, c)


def test_gradients_accumulate_and_input_without_gradient(direct):
    """Backward adds into existing gradients; an input that needs none (the ConvNet's images)
    gets none, and the weight's gradient is the same."""
    x, w, b = make((4, 1, 28, 28), (10, 1, 5, 5), seed=7)
    gy = np.random.default_rng(8).standard_normal((4, 10, 24, 24)).astype(np.float32)
    X, Wt = bcml.tensor(x), bcml.tensor(w, requires_grad=True)
    for _ in range(2):
        F.conv2d(X, Wt).backward(bcml.tensor(gy))
    assert X.grad is None
    _, rdw, _ = grads_ref(x, w, gy, 0, 1)
    assert_close(Wt.grad.numpy(), 2 * rdw, "accumulated weight gradient")


def test_nan_reaches_only_the_outputs_that_see_it(direct):
    x, w, b = make((2, 3, 12, 12), (6, 3, 5, 5), seed=9)
    x[1, 2, 6, 6] = np.nan
    out = F.conv2d(bcml.tensor(x), bcml.tensor(w), bcml.tensor(b)).numpy()
    nan = np.isnan(out)
    assert not nan[0].any()
    expect = np.zeros((8, 8), bool)
    expect[2:7, 2:7] = True   # outputs whose 5x5 window holds (6, 6)
    assert (nan[1] == expect[None]).all()


@pytest.mark.parametrize("relu", [True, False])
def test_fused_eval_conv_bn_relu(direct, relu):
    """Eval-mode conv + batch norm (+ ReLU) as one op on the direct kernels, against float64."""
    conv = bcml.nn.Conv2d(10, 20, 5, bias=False)
    bn = bcml.nn.BatchNorm2d(20)
    rng = np.random.default_rng(10)
    with bcml.no_grad():
        bn.running_mean.copy_(bcml.tensor(rng.standard_normal(20).astype(np.float32)))
        bn.running_var.copy_(bcml.tensor(rng.uniform(0.5, 2, 20).astype(np.float32)))
        bn.weight.copy_(bcml.tensor(rng.standard_normal(20).astype(np.float32)))
        bn.bias.copy_(bcml.tensor(rng.standard_normal(20).astype(np.float32)))
    bn.eval()
    x = rng.standard_normal((6, 10, 12, 12)).astype(np.float32)
    with bcml.no_grad():
        out = F._conv_bn_relu(bcml.tensor(x), conv, bn, relu)
    assert out is not None
    f64 = lambda t: t.detach().numpy().astype(np.float64)[:, None, None]  # noqa: E731
    ref = conv2d_ref(x, conv.weight.detach().numpy())
    ref = (ref - f64(bn.running_mean)) / np.sqrt(f64(bn.running_var) + bn.eps) * f64(bn.weight) + f64(bn.bias)
    if relu:
        ref = np.maximum(ref, 0)
    assert_close(out.numpy(), ref, "fused")


def test_convnet_compiled_step_equals_eager(direct):
    """The ConvNet's replayed step (bcml.compile) computes what the eager step does."""
    from bcml.models import ConvNet
    rng = np.random.default_rng(11)
    xs = [bcml.tensor(rng.standard_normal((16, 1, 28, 28)).astype(np.float32)) for _ in range(4)]
    ys = [bcml.tensor(rng.integers(0, 10, 16)) for _ in range(4)]

    def train(compiled):
        bcml.manual_seed(0)
        m = ConvNet()
        m.eval()   # no dropout: the two runs draw nothing
        opt = bcml.optim.SGD(m.parameters(), lr=0.05, momentum=0.9)

        def step(x, y):
            opt.zero_grad()
            loss = F.nll_loss(m(x)[2], y)
            loss.backward()
            opt.step()
            return loss
        if compiled:
            step = bcml.compile(step)
        losses = [float(step(x, y).item()) for x, y in zip(xs, ys)]
        return losses, [p.detach().numpy().copy() for p in m.parameters()]
    (l1, p1), (l2, p2) = train(False), train(True)
    assert l1 == l2
    for a, c in zip(p1, p2):
        np.testing.assert_array_equal(a, c)


def test_switch_argument_is_checked():
    with pytest.raises(ValueError, match="set_conv_direct"):
        _core.set_conv_direct(2)
    with pytest.raises(TypeError):
        _core.set_conv_direct("on")
