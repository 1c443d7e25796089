"""conv2d (csrc/core/conv2d.c) and nn.Conv2d: against a NumPy float64 reference, central finite
differences and PyTorch; results that do not depend on the thread count; bad inputs."""
import numpy as np
import pytest

import bcml
import bcml.nn.functional as F
from conftest import check_grad


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def conv2d_ref(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    """Plain float64 convolution: for each kernel offset, the strided window of the padded input
    times that offset's weights, summed (no im2col)."""
    (sh, sw), (ph, pw), (dh, dw) = _pair(stride), _pair(padding), _pair(dilation)
    x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
    unbatched = x.ndim == 3
    if unbatched:
        x = x[None]
    N, C, H, W = x.shape
    OC, Cg, KH, KW = w.shape
    OCg = OC // groups
    OH = (H + 2 * ph - dh * (KH - 1) - 1) // sh + 1
    OW = (W + 2 * pw - dw * (KW - 1) - 1) // sw + 1
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    out = np.zeros((N, OC, OH, OW))
    for g in range(groups):
        xg = xp[:, g * Cg:(g + 1) * Cg]
        for kh in range(KH):
            for kw in range(KW):
                win = xg[:, :, kh * dh: kh * dh + sh * (OH - 1) + 1: sh,
                         kw * dw: kw * dw + sw * (OW - 1) + 1: sw]              # (N, Cg, OH, OW)
                wk = w[g * OCg:(g + 1) * OCg, :, kh, kw]                      # (OCg, Cg)
                out[:, g * OCg:(g + 1) * OCg] += np.tensordot(win, wk, axes=([1], [1])).transpose(0, 3, 1, 2)
    if b is not None:
        out += np.asarray(b, np.float64)[None, :, None, None]
    return out[0] if unbatched else out


def make(xshape, wshape, bias=True, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(xshape).astype(np.float32),
              (scale * rng.standard_normal(wshape)).astype(np.float32)]
    if bias:
        arrays.append(rng.standard_normal(wshape[0]).astype(np.float32))
    return arrays


def close(got, ref, rtol=1e-5, msg=""):
    """float32 against a reference: relative, with an absolute floor scaled to the values (sums of
    hundreds of products)."""
    ref = np.asarray(ref)
    atol = 1e-5 * (1.0 + (np.abs(ref).max() if ref.size else 0.0))
    np.testing.assert_allclose(got, ref, rtol=rtol, atol=atol, err_msg=msg)


# (input shape, weight shape, keyword arguments)
CASES = [
    ((2, 3, 7, 9), (4, 3, 3, 3), {}),                                     # odd sizes
    ((2, 3, 7, 9), (4, 3, 3, 3), dict(stride=2, padding=1)),
    ((3, 1, 28, 28), (10, 1, 5, 5), {}),                                  # MNIST's first layer
    ((2, 10, 12, 12), (20, 10, 5, 5), {}),                                # and its second
    ((2, 4, 6, 5), (6, 4, 1, 1), {}),                                     # 1x1: no columns
    ((2, 4, 6, 5), (6, 4, 1, 1), dict(stride=2)),                         # 1x1, strided
    ((2, 4, 7, 7), (6, 4, 1, 1), dict(padding=1)),                        # 1x1, padded
    ((2, 3, 9, 8), (4, 3, 3, 3), dict(dilation=2, padding=1)),
    ((2, 4, 8, 8), (6, 2, 3, 3), dict(groups=2, padding=1)),
    ((2, 4, 6, 6), (8, 1, 3, 3), dict(groups=4, padding=1)),              # depthwise
    ((1, 2, 9, 7), (3, 2, 3, 2), dict(stride=(2, 1), padding=(2, 0), dilation=(1, 2))),
    ((2, 3, 5, 5), (2, 3, 5, 5), {}),                                     # one output pixel
    ((1, 3, 32, 32), (8, 3, 7, 7), dict(stride=2, padding=3)),            # ResNet's stem
    ((1, 3, 5, 5), (4, 3, 3, 3), dict(padding=(2, 1))),                   # batch 1
    ((0, 3, 5, 5), (4, 3, 3, 3), dict(padding=1)),                        # batch 0
    ((3, 7, 9), (4, 3, 3, 3), dict(padding=1)),                           # unbatched (C, H, W)
]
IDS = ["%s-%s-%s" % (x, w, ",".join("%s=%s" % kv for kv in sorted(kw.items()))) for x, w, kw in CASES]

# Larger shapes that take the other code paths: several tiles of one image's output pixels (with
# tiles that start mid-row), many tasks and weight-gradient chunks, dx split over input channels.
BIG_CASES = [
    ((1, 8, 64, 64), (4, 8, 5, 5), dict(padding=2)),
    ((2, 16, 40, 36), (8, 16, 3, 3), dict(stride=(1, 2), padding=1)),
    ((50, 64, 8, 8), (64, 64, 3, 3), dict(padding=1)),
    ((32, 128, 8, 8), (128, 64, 3, 3), dict(padding=1, groups=2)),
    ((3, 512, 6, 6), (64, 512, 3, 3), dict(padding=1)),
    ((1, 64, 24, 24), (32, 64, 3, 3), dict(padding=1)),
]
BIG_IDS = ["%s-%s" % (x, w) for x, w, kw in BIG_CASES]


def run(arrays, kw, requires_grad=False):
    ts = [bcml.tensor(a, requires_grad=requires_grad) for a in arrays]
    return ts, F.conv2d(*ts, **kw)


# ==== forward against NumPy ================================================================
@pytest.mark.parametrize("xshape,wshape,kw", CASES, ids=IDS)
@pytest.mark.parametrize("bias", [True, False])
def test_conv2d_matches_numpy(xshape, wshape, kw, bias):
    arrays = make(xshape, wshape, bias)
    _, out = run(arrays, kw)
    expect = conv2d_ref(*arrays, **kw)
    assert out.shape == expect.shape
    close(out.numpy(), expect)


@pytest.mark.parametrize("xshape,wshape,kw", BIG_CASES, ids=BIG_IDS)
def test_conv2d_large_matches_numpy(xshape, wshape, kw):
    arrays = make(xshape, wshape, seed=1, scale=0.1)
    _, out = run(arrays, kw)
    close(out.numpy(), conv2d_ref(*arrays, **kw))


# Small output maps: the columns of several images side by side in one GEMM (ResNet18 on 32x32:
# 8x8, 4x4, 2x2, 1x1 maps), with batches that do not fill the last chunk of images, N=1, groups,
# stride 2, 1x1 convolutions (strided ones too), dilation and kernels mostly over the padding.
BATCH_CASES = [
    ((37, 16, 4, 4), (24, 16, 3, 3), dict(padding=1)),                   # two chunks, uneven
    ((130, 8, 2, 2), (16, 8, 3, 3), dict(padding=1)),                    # 128 + 2 images
    ((5, 6, 3, 3), (4, 6, 3, 3), dict(stride=2, padding=1)),
    ((9, 8, 4, 4), (12, 4, 3, 3), dict(groups=2, padding=1)),
    ((11, 6, 4, 4), (6, 1, 3, 3), dict(groups=6, padding=1)),            # depthwise
    ((7, 8, 6, 6), (10, 8, 1, 1), dict(stride=2)),                       # ResNet's downsample
    ((6, 8, 4, 4), (10, 8, 1, 1), {}),                                   # 1x1, several images
    ((1, 16, 2, 2), (8, 16, 3, 3), dict(padding=1)),                     # N=1
    ((33, 16, 1, 1), (32, 16, 3, 3), dict(padding=1)),                   # 1x1 maps
    ((20, 4, 8, 8), (6, 4, 3, 3), dict(padding=2, dilation=2)),          # 8 + 8 + 4 images
    ((3, 2, 5, 5), (4, 2, 2, 2), {}),
    ((67, 64, 8, 8), (64, 64, 3, 3), dict(padding=1)),                   # ResNet's layer1
    ((45, 128, 2, 2), (256, 128, 3, 3), dict(stride=2, padding=1)),      # layer3 -> layer4
]
BATCH_IDS = ["%s-%s-%s" % (x, w, ",".join("%s=%s" % kv for kv in sorted(kw.items())))
             for x, w, kw in BATCH_CASES]


@pytest.mark.parametrize("xshape,wshape,kw", BATCH_CASES, ids=BATCH_IDS)
@pytest.mark.parametrize("bias", [True, False])
def test_conv2d_small_maps_batched_match_numpy(xshape, wshape, kw, bias):
    arrays = make(xshape, wshape, bias, seed=11, scale=0.2)
    _, out = run(arrays, kw)
    close(out.numpy(), conv2d_ref(*arrays, **kw))


@pytest.mark.parametrize("xshape,wshape,kw", BATCH_CASES, ids=BATCH_IDS)
@pytest.mark.parametrize("bias", [True, False])
def test_conv2d_small_maps_batched_match_torch(torch, xshape, wshape, kw, bias):
    torch_compare(torch, make(xshape, wshape, bias, seed=12, scale=0.2), kw)


@pytest.mark.parametrize("xshape,wshape,kw", BATCH_CASES[:4], ids=BATCH_IDS[:4])
def test_conv2d_small_maps_batched_equal_one_image_at_a_time(xshape, wshape, kw):
    """A batch (several images per GEMM) against each image alone: outputs and input gradients
    per image, and the weight and bias gradients summed over the images."""
    arrays = make(xshape, wshape, True, seed=13, scale=0.2)
    g = np.random.default_rng(14).standard_normal((xshape[0], wshape[0]) + tuple(
        F.conv2d(*[bcml.tensor(a[:1] if i == 0 else a) for i, a in enumerate(arrays)], **kw).shape[2:])
    ).astype(np.float32)
    ts, out = run(arrays, kw, requires_grad=True)
    out.backward(bcml.tensor(g))
    dw, db = np.zeros_like(arrays[1]), np.zeros_like(arrays[2])
    for i in range(xshape[0]):
        one, o = run([arrays[0][i:i + 1], arrays[1], arrays[2]], kw, requires_grad=True)
        o.backward(bcml.tensor(g[i:i + 1]))
        close(out.detach().numpy()[i:i + 1], o.detach().numpy())
        close(ts[0].grad.numpy()[i:i + 1], one[0].grad.numpy())
        dw += one[1].grad.numpy()
        db += one[2].grad.numpy()
    close(ts[1].grad.numpy(), dw, rtol=1e-4)
    close(ts[2].grad.numpy(), db, rtol=1e-4)


# Kernels some of whose taps read only padding for every output (a 3x3 kernel over a padded 1x1
# map): the kernel is cut to the taps that read the input, and those get all the weight gradient.
TRIM_CASES = [
    ((1, 16, 1, 1), (8, 16, 3, 3), dict(padding=1)),                     # the centre: a 1x1 product
    ((5, 8, 2, 2), (16, 8, 3, 3), dict(stride=2, padding=1)),            # the lower right 2x2
    ((3, 4, 1, 2), (5, 4, 5, 5), dict(padding=2)),                       # rows and columns cut differently
    ((2, 3, 1, 5), (4, 3, 3, 3), dict(padding=1)),                       # rows only
    ((2, 2, 1, 1), (3, 2, 1, 1), dict(stride=3, padding=2)),             # no tap reads the input
    ((4, 4, 2, 2), (6, 2, 3, 3), dict(padding=(3, 1), dilation=(2, 1), groups=2)),
    ((2, 3, 2, 2), (4, 3, 3, 3), dict(stride=2, padding=1)),             # unbatched below: 1 image
]
TRIM_IDS = ["%s-%s-%s" % (x, w, ",".join("%s=%s" % kv for kv in sorted(kw.items()))) for x, w, kw in TRIM_CASES]


@pytest.mark.parametrize("xshape,wshape,kw", TRIM_CASES, ids=TRIM_IDS)
@pytest.mark.parametrize("bias", [True, False])
def test_conv2d_padding_only_taps_match_numpy_and_torch(torch, xshape, wshape, kw, bias):
    arrays = make(xshape, wshape, bias, seed=15)
    _, out = run(arrays, kw)
    close(out.numpy(), conv2d_ref(*arrays, **kw))
    torch_compare(torch, arrays, kw)
    unbatched = [arrays[0][0]] + arrays[1:]
    close(run(unbatched, kw)[1].numpy(), conv2d_ref(*unbatched, **kw))


@pytest.mark.parametrize("xshape,wshape,kw", TRIM_CASES[:4], ids=TRIM_IDS[:4])
def test_conv2d_padding_only_taps_finite_differences(xshape, wshape, kw):
    check_grad(lambda *t: F.conv2d(*t, **kw), make(xshape, wshape, True, seed=16))


def test_conv2d_padding_only_taps_gradients_accumulate(torch):
    x, w, b = make((3, 4, 1, 1), (6, 4, 3, 3), seed=17)
    wb = bcml.tensor(w, requires_grad=True)
    wb.grad = bcml.tensor(np.ones_like(w))  # accumulated into, padding taps included
    xb = bcml.tensor(x, requires_grad=True)
    (F.conv2d(xb, wb, None, padding=1) + F.conv2d(xb, wb, None, padding=1)).sum().backward()
    wt, xt = torch.tensor(w, requires_grad=True), torch.tensor(x, requires_grad=True)
    (2 * torch.nn.functional.conv2d(xt, wt, None, padding=1)).sum().backward()
    close(wb.grad.numpy(), wt.grad.numpy() + 1)
    close(xb.grad.numpy(), xt.grad.numpy())


def test_conv2d_reference_is_a_correlation():
    """The reference itself, on a case worked by hand: a 2x2 kernel over a 3x3 ramp."""
    x = np.arange(9, dtype=np.float32).reshape(1, 1, 3, 3)
    w = np.array([[[[1, 2], [3, 4]]]], np.float32)
    expect = [[0 * 1 + 1 * 2 + 3 * 3 + 4 * 4, 1 * 1 + 2 * 2 + 4 * 3 + 5 * 4],
              [3 * 1 + 4 * 2 + 6 * 3 + 7 * 4, 4 * 1 + 5 * 2 + 7 * 3 + 8 * 4]]
    np.testing.assert_array_equal(conv2d_ref(x, w)[0, 0], expect)
    np.testing.assert_array_equal(F.conv2d(bcml.tensor(x), bcml.tensor(w)).numpy()[0, 0], expect)


def test_conv2d_padding_modes():
    x, w, b = make((2, 3, 7, 8), (4, 3, 3, 5))
    xb, wb, bb = bcml.tensor(x), bcml.tensor(w), bcml.tensor(b)
    close(F.conv2d(xb, wb, bb, padding="same").numpy(), conv2d_ref(x, w, b, padding=(1, 2)))
    assert F.conv2d(xb, wb, bb, padding="same").shape == (2, 4, 7, 8)
    close(F.conv2d(xb, wb, bb, padding="valid").numpy(), conv2d_ref(x, w, b))


def test_conv2d_nan_flows_to_the_outputs_that_see_it():
    x, w = make((1, 1, 6, 6), (2, 1, 3, 3), bias=False)
    x[0, 0, 0, 0] = np.nan
    out = F.conv2d(bcml.tensor(x), bcml.tensor(w)).numpy()
    assert np.isnan(out[:, :, 0, 0]).all()
    assert np.isfinite(out[:, :, 1:, :]).all() and np.isfinite(out[:, :, :, 1:]).all()


# ==== gradients ============================================================================
GRAD_CASES = [
    ((2, 2, 5, 6), (3, 2, 3, 3), {}),
    ((2, 2, 5, 6), (3, 2, 3, 3), dict(stride=2, padding=1)),
    ((1, 2, 7, 6), (2, 2, 3, 2), dict(dilation=2, padding=(1, 2))),
    ((2, 4, 5, 5), (4, 2, 3, 3), dict(groups=2, padding=1)),
    ((2, 3, 4, 5), (2, 3, 1, 1), {}),
    ((2, 1, 8, 8), (3, 1, 5, 5), {}),
    ((1, 2, 7, 7), (2, 2, 3, 3), dict(stride=(2, 1), padding=(0, 1))),
    ((2, 5, 5), (3, 2, 3, 3), dict(padding=1)),
]
GRAD_IDS = ["%s-%s-%s" % (x, w, ",".join("%s=%s" % kv for kv in sorted(kw.items()))) for x, w, kw in GRAD_CASES]


@pytest.mark.parametrize("xshape,wshape,kw", GRAD_CASES, ids=GRAD_IDS)
@pytest.mark.parametrize("bias", [True, False])
def test_conv2d_finite_differences(xshape, wshape, kw, bias):
    arrays = make(xshape, wshape, bias, seed=3)
    check_grad(lambda *t: F.conv2d(*t, **kw), arrays)


def torch_compare(torch, arrays, kw, seed=0):
    """Forward and backward (seeded with the same random gradient) in bcml and PyTorch."""
    bs = [bcml.tensor(a, requires_grad=True) for a in arrays]
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    ob, ot = F.conv2d(*bs, **kw), torch.nn.functional.conv2d(*ts, **kw)
    assert ob.shape == tuple(ot.shape)
    close(ob.detach().numpy(), ot.detach().numpy(), msg="output")
    g = np.random.default_rng(seed).standard_normal(tuple(ot.shape)).astype(np.float32)
    ob.backward(bcml.tensor(g))
    ot.backward(torch.tensor(g))
    for name, b, t in zip(("input", "weight", "bias"), bs, ts):
        assert b.grad.shape == tuple(t.grad.shape)
        close(b.grad.numpy(), t.grad.numpy(), msg="gradient of " + name)


@pytest.mark.parametrize("xshape,wshape,kw", CASES + GRAD_CASES, ids=IDS + GRAD_IDS)
@pytest.mark.parametrize("bias", [True, False])
def test_conv2d_matches_torch(torch, xshape, wshape, kw, bias):
    torch_compare(torch, make(xshape, wshape, bias, seed=4), kw)


@pytest.mark.parametrize("xshape,wshape,kw", BIG_CASES, ids=BIG_IDS)
def test_conv2d_large_matches_torch(torch, xshape, wshape, kw):
    torch_compare(torch, make(xshape, wshape, seed=5, scale=0.1), kw)


def test_conv2d_gradients_accumulate_and_partial_requires_grad(torch):
    x, w, b = make((2, 3, 6, 6), (4, 3, 3, 3), seed=6)
    xb, wb, bb = bcml.tensor(x), bcml.tensor(w, requires_grad=True), bcml.tensor(b)
    (F.conv2d(xb, wb, bb, padding=1) + F.conv2d(xb, wb, bb, padding=1)).sum().backward()
    xt, wt = torch.tensor(x), torch.tensor(w, requires_grad=True)
    (2 * torch.nn.functional.conv2d(xt, wt, torch.tensor(b), padding=1)).sum().backward()
    close(wb.grad.numpy(), wt.grad.numpy())
    assert xb.grad is None and bb.grad is None


def test_conv2d_empty_batch_gradients():
    x, w, b = make((0, 3, 5, 5), (4, 3, 3, 3))
    (xb, wb, bb), out = run((x, w, b), dict(padding=1), requires_grad=True)
    assert out.shape == (0, 4, 5, 5)
    out.sum().backward()
    assert xb.grad.shape == (0, 3, 5, 5)
    np.testing.assert_array_equal(wb.grad.numpy(), np.zeros((4, 3, 3, 3), np.float32))
    np.testing.assert_array_equal(bb.grad.numpy(), np.zeros(4, np.float32))


# ==== threads ==============================================================================
THREAD_CASES = [
    ((16, 8, 20, 20), (16, 8, 3, 3), dict(padding=1)),        # several tasks and dW chunks
    ((1, 8, 64, 64), (4, 8, 5, 5), dict(padding=2)),           # one image cut into tiles
    ((50, 64, 8, 8), (64, 64, 3, 3), dict(padding=1)),         # 16 tasks and dW chunks, uneven
    ((64, 1, 28, 28), (10, 1, 5, 5), {}),                      # MNIST's first layer
    ((1, 64, 24, 24), (32, 64, 3, 3), dict(padding=1)),        # dx split over input channels, tiles mid-row
    ((128, 64, 4, 4), (128, 64, 3, 3), dict(padding=1)),      # images side by side: 4 chunks of 32
    ((130, 32, 2, 2), (64, 32, 3, 3), dict(padding=1)),        # chunks of images, the last one short
    ((50, 32, 2, 2), (64, 16, 3, 3), dict(padding=1, groups=2)),
    ((37, 64, 1, 1), (128, 64, 3, 3), dict(padding=1)),        # 1x1 maps
    ((40, 32, 4, 4), (64, 32, 1, 1), dict(stride=2)),          # strided 1x1
    ((96, 64, 2, 2), (128, 64, 3, 3), dict(stride=2, padding=1)),  # kernel cut to its used taps
]


@pytest.mark.parametrize("xshape,wshape,kw", THREAD_CASES, ids=["%s" % (c[0],) for c in THREAD_CASES])
def test_conv2d_results_do_not_depend_on_thread_count(xshape, wshape, kw):
    arrays = make(xshape, wshape, seed=7, scale=0.1)

    def once():
        ts, out = run(arrays, kw, requires_grad=True)
        out.backward(bcml.tensor(np.random.default_rng(8).standard_normal(out.shape).astype(np.float32)))
        return [out.detach().numpy().copy()] + [t.grad.numpy().copy() for t in ts]

    before = bcml.get_num_threads()
    try:
        bcml.set_num_threads(1)
        one = once()
        bcml.set_num_threads(2)
        two = once()
        bcml.set_num_threads(3)
        three = once()
    finally:
        bcml.set_num_threads(before)
    assert bcml.get_num_threads() == before
    for a, b, c in zip(one, two, three):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)


# ==== nn.Conv2d ============================================================================
@pytest.mark.parametrize("args,kw", [
    ((3, 4, 3), dict(stride=2, padding=1)),
    ((1, 10, 5), {}),
    ((4, 6, (3, 5)), dict(padding="same", bias=False)),
    ((4, 6, 3), dict(groups=2, dilation=2)),
])
def test_nn_conv2d_matches_torch(torch, args, kw):
    tm = torch.nn.Conv2d(*args, **kw)
    bm = bcml.nn.Conv2d(*args, **kw)
    assert list(bm.state_dict()) == list(tm.state_dict())
    for (k, v), (kt, vt) in zip(bm.state_dict().items(), tm.state_dict().items()):
        assert tuple(v.shape) == tuple(vt.shape), k
    bm.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    x = np.random.default_rng(9).standard_normal((2, args[0], 9, 10)).astype(np.float32)
    xb, xt = bcml.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    ob, ot = bm(xb), tm(xt)
    close(ob.detach().numpy(), ot.detach().numpy())
    g = np.random.default_rng(10).standard_normal(tuple(ot.shape)).astype(np.float32)
    ob.backward(bcml.tensor(g))
    ot.backward(torch.tensor(g))
    close(xb.grad.numpy(), xt.grad.numpy())
    close(bm.weight.grad.numpy(), tm.weight.grad.numpy())
    if tm.bias is not None:
        close(bm.bias.grad.numpy(), tm.bias.grad.numpy())


def test_nn_conv2d_initialisation_follows_pytorch():
    bcml.manual_seed(0)
    m = bcml.nn.Conv2d(8, 16, 3)
    bound = 1 / np.sqrt(8 * 9)  # kaiming_uniform_(a=sqrt(5)) and the bias: U(-1/sqrt(fan_in), +)
    w, b = m.weight.detach().numpy(), m.bias.detach().numpy()
    assert w.shape == (16, 8, 3, 3) and b.shape == (16,)
    assert np.abs(w).max() <= bound and np.abs(b).max() <= bound
    assert abs(w.std() - bound / np.sqrt(3)) < 0.1 * bound


# ==== bad inputs ===========================================================================
def f32(*shape):
    return bcml.tensor(np.zeros(shape, np.float32))


def test_conv2d_bad_dtypes():
    x, w = f32(1, 2, 5, 5), f32(3, 2, 3, 3)
    with pytest.raises(TypeError, match=r"conv2d: input must be a float32"):
        F.conv2d(bcml.tensor(np.zeros((1, 2, 5, 5), np.int64)), w)
    with pytest.raises(TypeError, match=r"conv2d: weight must be a float32"):
        F.conv2d(x, bcml.tensor(np.zeros((3, 2, 3, 3), np.int64)))
    with pytest.raises(TypeError, match=r"conv2d: bias must be a float32"):
        F.conv2d(x, w, bcml.tensor(np.zeros(3, bool)))
    with pytest.raises(TypeError, match=r"input must be a bcml tensor"):
        F.conv2d(np.zeros((1, 2, 5, 5), np.float32), w)
    with pytest.raises(TypeError, match=r"weight must be a bcml tensor"):
        F.conv2d(x, np.zeros((3, 2, 3, 3), np.float32))


def test_conv2d_bad_shapes():
    x, w = f32(1, 2, 5, 5), f32(3, 2, 3, 3)
    with pytest.raises(ValueError, match=r"3-D \(unbatched\) or 4-D \(batched\) input, got input of shape \(2, 5\)"):
        F.conv2d(f32(2, 5), w)
    with pytest.raises(ValueError, match=r"weight must be 4-D .* got weight of shape \(3, 2, 3\)"):
        F.conv2d(x, f32(3, 2, 3))
    with pytest.raises(ValueError, match=r"weight must be 4-D .* got weight of shape \(3, 2\)"):
        F.conv2d(x, f32(3, 2), padding="same")
    with pytest.raises(ValueError, match=r"weight of shape \(3, 2, 3, 3\), expected input of shape \(1, 4, 5, 5\) "
                                         r"to have 2 channels, but got 4"):
        F.conv2d(f32(1, 4, 5, 5), w)
    with pytest.raises(ValueError, match=r"groups=2 and weight of shape \(4, 2, 3, 3\), expected input .* to have 4"):
        F.conv2d(x, f32(4, 2, 3, 3), groups=2)
    with pytest.raises(ValueError, match=r"groups=2, expected weight to be divisible by 2 at dimension 0, but got "
                                         r"weight of shape \(3, 1, 3, 3\)"):
        F.conv2d(x, f32(3, 1, 3, 3), groups=2)
    with pytest.raises(ValueError, match=r"weight to be at least 1 at dimension 0, but got weight of shape \(0, 2"):
        F.conv2d(x, f32(0, 2, 3, 3))
    with pytest.raises(ValueError, match=r"weight of shape \(3, 2, 0, 3\) has an empty kernel"):
        F.conv2d(x, f32(3, 2, 0, 3))
    with pytest.raises(ValueError, match=r"expected bias of shape \(3,\), but got bias of shape \(4,\)"):
        F.conv2d(x, w, f32(4))
    with pytest.raises(ValueError, match=r"bias of shape \(1, 3\)"):
        F.conv2d(x, w, f32(1, 3))


def test_conv2d_kernel_larger_than_input():
    msg = (r"input of shape \(1, 1, 4, 4\) and weight of shape \(1, 1, 5, 5\): calculated padded input size per "
           r"channel: \(4 x 4\)\. Kernel size: \(5 x 5\)\. Kernel size can't be greater than actual input size")
    with pytest.raises(ValueError, match=msg):
        F.conv2d(f32(1, 1, 4, 4), f32(1, 1, 5, 5))
    with pytest.raises(ValueError, match=r"padded input size per channel: \(4 x 4\)\. Kernel size: \(5 x 5\)"):
        F.conv2d(f32(1, 1, 4, 4), f32(1, 1, 3, 3), dilation=2)
    assert F.conv2d(f32(1, 1, 4, 4), f32(1, 1, 5, 5), padding=1).shape == (1, 1, 2, 2)
    with pytest.raises(ValueError, match=r"padded input size per channel: \(0 x 4\)"):
        F.conv2d(f32(0, 1, 0, 4), f32(1, 1, 1, 1))


def test_conv2d_bad_arguments():
    x, w = f32(1, 2, 5, 5), f32(3, 2, 3, 3)
    with pytest.raises(ValueError, match=r"stride must be >= 1"):
        F.conv2d(x, w, stride=0)
    with pytest.raises(ValueError, match=r"padding must be >= 0"):
        F.conv2d(x, w, padding=-1)
    with pytest.raises(ValueError, match=r"dilation must be >= 1"):
        F.conv2d(x, w, dilation=(1, 0))
    with pytest.raises(ValueError, match=r"groups must be a positive int"):
        F.conv2d(x, w, groups=0)
    with pytest.raises(ValueError, match=r"padding must be an int, a pair, 'valid' or 'same'"):
        F.conv2d(x, w, padding="full")
    with pytest.raises(ValueError, match=r"stride must be an int or a pair"):
        F.conv2d(x, w, stride=(1, 2, 3))
    with pytest.raises(TypeError, match=r"stride must be an int or a pair"):
        F.conv2d(x, w, stride=1.5)
    with pytest.raises(ValueError, match=r"padding='same' is not supported for strided convolutions"):
        F.conv2d(x, w, padding="same", stride=2)
