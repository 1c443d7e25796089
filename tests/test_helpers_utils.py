"""bcml.helpers.utils: labels_to_probabilities, get_class_probabilities, sigmoid_to_labels
(hand-checked, against NumPy and PyTorch, and their argument checks)."""
import numpy as np
import pytest

import bcml
from bcml.helpers.utils import get_class_probabilities, labels_to_probabilities, sigmoid_to_labels


@pytest.mark.parametrize("make", [list, np.array, lambda v: bcml.tensor(np.array(v)),
                                  lambda v: np.array(v, dtype=np.int32)])
def test_labels_to_probabilities_hand(make):
    p = labels_to_probabilities(make([2, 0, 1, 2]), num_classes=4, batch_size=4)
    assert isinstance(p, bcml.Tensor) and p.dtype == bcml.float32 and tuple(p.shape) == (4, 4)
    np.testing.assert_array_equal(p.numpy(), [[0, 0, 1, 0], [1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]])


def test_labels_to_probabilities_defaults_and_column():
    # num_classes defaults to the largest label + 1, batch_size to the number of labels
    np.testing.assert_array_equal(labels_to_probabilities([1, 0]).numpy(), [[0, 1], [1, 0]])
    # a (B, 1) column, as argmax(dim=1, keepdim=True) gives
    np.testing.assert_array_equal(labels_to_probabilities(np.array([[1], [2]]), 3).numpy(),
                                  [[0, 1, 0], [0, 0, 1]])
    assert tuple(labels_to_probabilities([], num_classes=3).shape) == (0, 3)


def test_labels_to_probabilities_torch(torch):
    y = torch.tensor([3, 1, 0])
    expect = torch.nn.functional.one_hot(y, 5).float().numpy()
    np.testing.assert_array_equal(labels_to_probabilities(y, num_classes=5, batch_size=3).numpy(), expect)


def test_labels_to_probabilities_errors():
    with pytest.raises(ValueError, match="batch_size is 3 but batch_class_labels holds 2"):
        labels_to_probabilities([0, 1], num_classes=2, batch_size=3)
    with pytest.raises(ValueError, match=r"\[0, num_classes=2\), got 2"):
        labels_to_probabilities([0, 2], num_classes=2)
    with pytest.raises(ValueError, match="labels >= 0"):
        labels_to_probabilities([0, -1], num_classes=2)
    with pytest.raises(ValueError, match="num_classes must be >= 1"):
        labels_to_probabilities([0], num_classes=0)
    # float labels holding integers are those integers (issue 11); others are refused by value
    for fl in ([0.0, 2.0], np.array([0.0, 2.0], np.float32), bcml.tensor([0.0, 2.0]), np.array([[0.0], [2.0]])):
        np.testing.assert_array_equal(labels_to_probabilities(fl, num_classes=3).numpy(),
                                      np.eye(3, dtype=np.float32)[[0, 2]])
    with pytest.raises(ValueError, match="batch_class_labels must hold integer class labels .*1.5 at index 1"):
        labels_to_probabilities([0.0, 1.5], num_classes=2)
    with pytest.raises(TypeError, match="batch_class_labels must hold integer class labels"):
        labels_to_probabilities([True, False], num_classes=2)
    with pytest.raises(TypeError, match="num_classes must be an int"):
        labels_to_probabilities([0, 1], num_classes=2.0)
    with pytest.raises(TypeError, match="batch_size must be an int"):
        labels_to_probabilities([0, 1], num_classes=2, batch_size="2")
    with pytest.raises(ValueError, match="one label per sample"):
        labels_to_probabilities(np.zeros((2, 2), np.int64), num_classes=2)
    with pytest.raises(TypeError, match="batch_class_labels must be"):
        labels_to_probabilities({0, 1}, num_classes=2)


def test_get_class_probabilities_hand():
    p = get_class_probabilities(bcml.tensor(np.array([0, 0, 1, 3])))
    assert p.dtype == bcml.float32
    np.testing.assert_array_equal(p.numpy(), [0.5, 0.25, 0.0, 0.25])
    assert tuple(get_class_probabilities(np.zeros(0, np.int64)).shape) == (0,)


def test_get_class_probabilities_torch(torch):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 7, 500)
    t = torch.from_numpy(y)
    bc = torch.bincount(t)
    expect = (bc.float() / bc.sum()).numpy()
    np.testing.assert_allclose(get_class_probabilities(t).numpy(), expect, rtol=1e-6)
    np.testing.assert_allclose(get_class_probabilities(y).numpy(), np.bincount(y) / 500, rtol=1e-6)


def test_get_class_probabilities_errors():
    with pytest.raises(ValueError, match="batch_label_tensor must hold integer class labels .*nan at index 2"):
        get_class_probabilities(np.array([0.0, 1.0, np.nan]))
    with pytest.raises(TypeError, match="batch_label_tensor must hold integer class labels, got dtype bool"):
        get_class_probabilities(np.array([True]))
    np.testing.assert_array_equal(get_class_probabilities(np.array([0.0, 0.0, 1.0, 3.0])).numpy(),
                                  [0.5, 0.25, 0.0, 0.25])
    with pytest.raises(ValueError, match="batch_label_tensor must hold labels >= 0"):
        get_class_probabilities(np.array([1, -2]))


def test_sigmoid_to_labels_hand():
    p = bcml.tensor(np.array([0.1, 0.5, 0.49999, 0.9], dtype=np.float32))
    lab = sigmoid_to_labels(p)
    assert lab.dtype == bcml.int64
    np.testing.assert_array_equal(lab.numpy(), [0, 1, 0, 1])  # the pivot itself is labelled 1
    np.testing.assert_array_equal(sigmoid_to_labels(p, discriminant_pivot=0.2).numpy(), [0, 1, 1, 1])
    col = sigmoid_to_labels(np.array([[0.7], [0.2]], dtype=np.float32))
    assert tuple(col.shape) == (2, 1)
    np.testing.assert_array_equal(col.numpy(), [[1], [0]])


def test_sigmoid_to_labels_torch(torch):
    p = torch.rand(50)
    expect = (p >= 0.3).to(torch.int).numpy()  # BCML: torch.tensor(p >= pivot, dtype=torch.int)
    np.testing.assert_array_equal(sigmoid_to_labels(p, 0.3).numpy(), expect)


def test_sigmoid_to_labels_errors():
    with pytest.raises(ValueError, match="discriminant_pivot must be finite"):
        sigmoid_to_labels([0.5], discriminant_pivot=float("nan"))
    with pytest.raises(TypeError, match="discriminant_pivot must be a real number"):
        sigmoid_to_labels([0.5], discriminant_pivot="0.5")
    with pytest.raises(TypeError, match="batch_sigmoids must hold probabilities"):
        sigmoid_to_labels(np.array(["a"]))
