"""Regressions for what the libFuzzer harnesses of tests/fuzz found in the C core, where the bug is
reachable through the Python API (the others are kept by the harnesses and their seed corpora)."""
import numpy as np
import pytest

import bcml
import bcml.nn.functional as F


@pytest.mark.parametrize("groups", [2**62, 2**63 - 1, 2**62 + 1])
def test_conv2d_huge_groups(groups, torch):
    # Found by fuzz_ops: weight.shape[1] * groups overflowed int64 (undefined behaviour), and the
    # message reported a negative channel count. PyTorch refuses these groups too.
    x = np.random.default_rng(0).standard_normal((2, 4, 6, 6)).astype(np.float32)
    w = np.random.default_rng(1).standard_normal((4, 4, 3, 3)).astype(np.float32)
    with pytest.raises(RuntimeError):
        torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w), groups=groups)
    with pytest.raises(ValueError, match=r"conv2d: given groups=%d .* more than 2\^63 channels, but got 4" % groups):
        F.conv2d(bcml.from_numpy(x), bcml.from_numpy(w), groups=groups)


def test_conv2d_groups_still_checked():
    # the usual mismatch keeps its message (channels = weight.shape[1] * groups)
    x, w = bcml.zeros(1, 4, 5, 5), bcml.zeros(4, 1, 3, 3)
    with pytest.raises(ValueError, match=r"groups=2 .* to have 2 channels, but got 4 channels"):
        F.conv2d(x, w, groups=2)
    assert F.conv2d(x, w, groups=4).shape == (1, 4, 3, 3)


def test_pool2d_huge_kernels(torch):
    # Found by fuzz_ops: the work estimate that splits a pooling over threads multiplied the
    # output size by the kernel area in int64, which overflows for kernels near 2^31 (undefined
    # behaviour; the sanitizer build aborts). Every window then covers the whole plane.
    x = np.random.default_rng(2).standard_normal((2, 3, 6, 6)).astype(np.float32)
    t = bcml.from_numpy(x)
    big = dict(kernel_size=2**31, stride=1, padding=2**30)
    plane_max = x.max(axis=(2, 3))[:, :, None, None]
    plane_mean = x.astype(np.float64).mean(axis=(2, 3))[:, :, None, None]
    np.testing.assert_array_equal(F.max_pool2d(t, **big).numpy(), np.broadcast_to(plane_max, (2, 3, 7, 7)))
    np.testing.assert_allclose(F.avg_pool2d(t, count_include_pad=False, **big).numpy(),
                               np.broadcast_to(plane_mean, (2, 3, 7, 7)), rtol=1e-5)
    # the largest kernel PyTorch takes (it converts sizes to int) gives the same windows
    mid = dict(kernel_size=2**20, stride=1, padding=2**19)
    tx = torch.from_numpy(x)
    np.testing.assert_array_equal(F.max_pool2d(t, **mid).numpy(), torch.nn.functional.max_pool2d(tx, **mid).numpy())
    np.testing.assert_allclose(F.avg_pool2d(t, **mid).numpy(), torch.nn.functional.avg_pool2d(tx, **mid).numpy(),
                               rtol=1e-5)
    # and gradients flow to every plane's maximum
    tg = bcml.from_numpy(x.copy())
    tg.requires_grad = True
    F.max_pool2d(tg, **big).sum().backward()
    want = np.zeros_like(x)
    for n in range(2):
        for c in range(3):
            want[n, c][np.unravel_index(np.argmax(x[n, c]), (6, 6))] = 49
    np.testing.assert_array_equal(tg.grad.numpy(), want)

