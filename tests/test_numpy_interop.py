"""NumPy functions and ufuncs applied to bcml tensors, against what they do to PyTorch 2.13
tensors: a tensor back where PyTorch gives one (__array_wrap__), an ndarray where it gives one,
the same exception where it raises; values against NumPy on the tensor's array."""
import numpy as np
import pytest

import bcml

A = np.arange(24, dtype=np.float32).reshape(2, 3, 4) / 7

# name -> f(t); each is applied to a bcml tensor and to a PyTorch tensor holding A
CASES = {
    "exp": lambda t: np.exp(t),
    "add_scalar": lambda t: np.add(t, 1),
    "add_tensor": lambda t: np.add(t, t),
    "multiply_array": lambda t: np.multiply(t, np.ones(4, np.float32)),
    "greater": lambda t: np.greater(t, 1),
    "sum": lambda t: np.sum(t),
    "mean": lambda t: np.mean(t),
    "argmax": lambda t: np.argmax(t),
    "argmax_axis": lambda t: np.argmax(t, axis=1),
    "transpose": lambda t: np.transpose(t),
    "transpose_axes": lambda t: np.transpose(t, (1, 2, 0)),
    "reshape": lambda t: np.reshape(t, (4, 6)),
    "reshape_flat": lambda t: np.reshape(t, -1),
    "concatenate": lambda t: np.concatenate([t, t]),
    "asarray": lambda t: np.asarray(t),
    "exp_0d": lambda t: np.exp(t[0, 0, 0]),
    "uint8": lambda t: np.uint8(t * 10),
}


def _kind(v):
    if isinstance(v, np.ndarray):
        return "ndarray"
    if type(v).__name__ == "Tensor":
        return "Tensor"
    return type(v).__name__


def _run(f, t):
    try:
        return f(t), None
    except Exception as e:   # noqa: BLE001 - the exception type is what is compared
        return None, type(e)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")   # PyTorch's old __array_wrap__ signature
@pytest.mark.parametrize("name", sorted(CASES))
def test_numpy_on_tensors_as_torch(torch, name):
    f = CASES[name]
    rb, eb = _run(f, bcml.from_numpy(A.copy()))
    rt, et = _run(f, torch.from_numpy(A.copy()))
    assert eb is et, (eb, et)
    if et is not None:
        return
    assert _kind(rb) == _kind(rt)
    vb = rb.numpy() if _kind(rb) == "Tensor" else np.asarray(rb)
    vt = rt.numpy() if _kind(rt) == "Tensor" else np.asarray(rt)
    assert vb.shape == vt.shape
    np.testing.assert_allclose(vb.astype(np.float64), vt.astype(np.float64), rtol=1e-6)
    if _kind(rb) == "Tensor":   # bcml's dtypes: float32, int64, bool (PyTorch: uint8 for bool)
        assert vb.dtype == {"f": np.float32, "i": np.int64, "u": np.bool_, "b": np.bool_}[vt.dtype.kind]


def test_requires_grad_refuses_as_torch(torch):
    msg = "Can't call numpy\\(\\) on Tensor that requires grad"
    for f in (np.asarray, np.exp, np.transpose, lambda t: np.add(t, 1)):
        with pytest.raises(RuntimeError, match=msg):
            f(bcml.ones(3, requires_grad=True))
        with pytest.raises(RuntimeError, match=msg):
            f(torch.ones(3, requires_grad=True))
    np.testing.assert_array_equal(np.asarray(bcml.ones(3, requires_grad=True).detach()), [1, 1, 1])


def test_dtypes_and_results_are_tensors():
    r = np.exp(bcml.tensor([0, 1]))   # NumPy computes float64: bcml holds float32
    assert isinstance(r, bcml.Tensor) and r.dtype == bcml.float32
    np.testing.assert_allclose(r.numpy(), [1, np.e], rtol=1e-6)
    r = np.add(bcml.tensor([1, 2]), 1)
    assert r.dtype == bcml.int64 and r.tolist() == [2, 3]
    r = np.logical_not(bcml.tensor([True, False]))
    assert r.dtype == bcml.bool and r.tolist() == [False, True]
    r = np.argmax(bcml.from_numpy(A))
    assert r.shape == () and r.item() == 23
    r = np.transpose(bcml.from_numpy(A), (1, 2, 0))
    np.testing.assert_array_equal(r.numpy(), A.transpose(1, 2, 0))
    assert r.numpy().flags.c_contiguous


def test_transpose_with_a_tuple_does_not_misbehave():
    t = bcml.from_numpy(A)
    with pytest.raises(TypeError, match="dim0"):
        t.transpose((1, 2, 0), 1)
    with pytest.raises(TypeError):
        t.transpose((1, 2, 0))
    np.testing.assert_array_equal(t.transpose(0, 2).numpy(), A.transpose(2, 1, 0))


def test_bcml_dev_app_image_code():
    """BCML's dev app: np.reshape(np.uint8(np.transpose(img, (1, 2, 0)).numpy() * 255), (28, 28))."""
    img = bcml.from_numpy(np.linspace(0, 1, 784, dtype=np.float32).reshape(1, 28, 28))
    data = np.reshape(np.uint8(np.transpose(img, (1, 2, 0)).numpy() * 255), (28, 28))
    assert isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.shape == (28, 28)
    np.testing.assert_array_equal(data, np.uint8(img.numpy()[0] * 255))
