"""Tensor creation, NumPy interop, dtypes, generators and size checks."""
import numpy as np
import pytest

import bcml


def test_from_numpy_shares_memory_for_native_dtypes():
    for dt in (np.float32, np.int64, np.bool_):
        a = np.zeros((3, 4), dtype=dt)
        t = bcml.from_numpy(a)
        assert t.shape == (3, 4)
        assert np.shares_memory(a, t.numpy())
        a[1, 2] = 1
        assert t.numpy()[1, 2] == 1


def test_from_numpy_converts_other_dtypes_once():
    a = np.arange(6, dtype=np.float64).reshape(2, 3)
    t = bcml.from_numpy(a)
    assert t.dtype == bcml.float32 and not np.shares_memory(a, t.numpy())
    np.testing.assert_array_equal(t.numpy(), a.astype(np.float32))
    for dt in (np.int32, np.uint8, np.int16):
        t = bcml.from_numpy(np.array([1, 2, 3], dtype=dt))
        assert t.dtype == bcml.int64 and t.tolist() == [1, 2, 3]
    # non-contiguous input is copied into a contiguous tensor
    b = np.arange(12, dtype=np.float32).reshape(3, 4)[:, ::2]
    np.testing.assert_array_equal(bcml.from_numpy(b).numpy(), b)


def test_from_numpy_rejects_bad_input():
    with pytest.raises(TypeError, match="from_numpy"):
        bcml.from_numpy([1, 2, 3])
    with pytest.raises(TypeError, match="dtype"):
        bcml.from_numpy(np.array(["a", "b"]))
    with pytest.raises(TypeError, match="dtype"):
        bcml.from_numpy(np.array([object(), 1], dtype=object))
    with pytest.raises(ValueError, match="at most 4"):
        bcml.from_numpy(np.zeros((1, 1, 1, 1, 1), dtype=np.float32))


def test_numpy_keeps_tensor_alive():
    t = bcml.ones(1000)
    a = t.numpy()
    del t
    assert a.sum() == 1000.0


def test_tensor_copies_and_infers_dtype():
    a = np.ones(3, dtype=np.float32)
    t = bcml.tensor(a)
    assert not np.shares_memory(a, t.numpy())
    assert bcml.tensor([1.5, 2]).dtype == bcml.float32
    assert bcml.tensor([1, 2]).dtype == bcml.int64
    assert bcml.tensor([True, False]).dtype == bcml.bool
    assert bcml.tensor(3.0).shape == ()
    assert bcml.tensor([[1, 2]], dtype=bcml.float32).dtype == bcml.float32
    with pytest.raises(TypeError):
        bcml.tensor("abc")
    with pytest.raises(TypeError):
        bcml.tensor([object()])
    with pytest.raises(ValueError):
        bcml.tensor([[1, 2], [3]])


def test_factories():
    assert bcml.zeros(2, 3).numpy().tolist() == [[0.0] * 3] * 2
    assert bcml.ones((2,), dtype=bcml.int64).tolist() == [1, 1]
    assert bcml.full((2, 2), 7.0).numpy().sum() == 28.0
    assert bcml.arange(5).tolist() == [0, 1, 2, 3, 4]
    assert bcml.arange(0, 1, 0.25).dtype == bcml.float32
    assert bcml.zeros(0, 5).shape == (0, 5)
    assert bcml.empty(3).shape == (3,)
    z = bcml.zeros(2, requires_grad=True)
    assert z.requires_grad and z.is_leaf


def test_impossible_sizes_raise_valueerror_naming_size():
    with pytest.raises(ValueError, match="size"):
        bcml.zeros(2 ** 40)
    with pytest.raises(ValueError, match="size"):
        bcml.zeros(2 ** 20, 2 ** 20, 2 ** 20)
    with pytest.raises(ValueError, match="size"):
        bcml.empty(-1)
    with pytest.raises(TypeError, match="size"):
        bcml.zeros(2.5)
    with pytest.raises(ValueError, match="at most 4"):
        bcml.zeros(1, 1, 1, 1, 1)


def test_generators_are_reproducible_and_independent():
    bcml.manual_seed(123)
    a = bcml.randn(100)
    bcml.manual_seed(123)
    b = bcml.randn(100)
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    g1 = bcml.Generator().manual_seed(5)
    g2 = bcml.Generator().manual_seed(5)
    x = bcml.rand(50, generator=g1)
    bcml.randn(10)  # the default generator does not disturb explicit ones
    y = bcml.rand(50, generator=g2)
    np.testing.assert_array_equal(x.numpy(), y.numpy())
    state = g1.get_state()
    u = bcml.rand(5, generator=g1)
    g1.set_state(state)
    np.testing.assert_array_equal(u.numpy(), bcml.rand(5, generator=g1).numpy())
    with pytest.raises(ValueError, match="state"):
        g1.set_state(b"short")
    with pytest.raises(TypeError, match="generator"):
        bcml.rand(3, generator="not a generator")


def test_random_distributions():
    g = bcml.Generator().manual_seed(0)
    u = bcml.rand(200000, generator=g).numpy().astype(np.float64)
    assert u.min() >= 0.0 and u.max() < 1.0
    assert abs(u.mean() - 0.5) < 0.005 and abs(u.var() - 1 / 12) < 0.002
    n = bcml.randn(200000, generator=g).numpy().astype(np.float64)
    assert abs(n.mean()) < 0.01 and abs(n.std() - 1) < 0.01
    p = bcml.randperm(1000, generator=g).numpy()
    assert sorted(p.tolist()) == list(range(1000))


def test_requires_grad_rules():
    t = bcml.zeros(3, dtype=bcml.int64)
    with pytest.raises(RuntimeError, match="floating point"):
        t.requires_grad = True
    f = bcml.zeros(3)
    f.requires_grad_()
    assert f.requires_grad
    with pytest.raises(RuntimeError, match="requires grad"):
        f.numpy()
    assert f.detach().numpy().shape == (3,)


def test_to_device_and_dtype():
    t = bcml.ones(2)
    assert t.to("cpu") is t
    assert t.to(bcml.device("cpu")) is t
    with pytest.raises(ValueError, match="cpu"):
        t.to("cuda")
    with pytest.raises(ValueError, match="cpu"):
        bcml.zeros(2, device="cuda:0")
    assert t.long().dtype == bcml.int64
    assert t.to(bcml.int64).tolist() == [1, 1]


def test_item_and_scalars():
    assert bcml.tensor([2.5]).item() == 2.5
    with pytest.raises(ValueError, match="2 elements"):
        bcml.tensor([1.0, 2.0]).item()
    assert float(bcml.tensor(1.5)) == 1.5
    assert int(bcml.tensor(3)) == 3
