"""Tests of bcml.data: (ids, x, y) batching, shuffling by seed, argument checks."""

import numpy as np
import pytest

import bcml.data as bdata
from bcml.data import DataLoader, batches


def _np(a):
    """A batch's x or y as a NumPy array (bcml tensor or ndarray)."""
    return a if isinstance(a, np.ndarray) else np.asarray(a.numpy())


def _data(n=10, d=3):
    # Row i of x is i * 10 + (0, 1, 2), y[i] = i: a row identifies its instance.
    x = (np.arange(n, dtype=np.float32)[:, None] * 10 + np.arange(d, dtype=np.float32))
    y = np.arange(n, dtype=np.int64)
    return x, y


def _ids_of_epoch(loader):
    return np.concatenate([ids for ids, _, _ in loader])


def test_batches_in_order_with_last_partial_batch():
    x, y = _data(10)
    loader = DataLoader(x, y, batch_size=4)
    assert len(loader) == 3
    got = list(loader)
    assert [len(ids) for ids, _, _ in got] == [4, 4, 2]
    for k, (ids, xb, yb) in enumerate(got):
        assert isinstance(ids, np.ndarray) and ids.dtype == np.int64
        np.testing.assert_array_equal(ids, np.arange(4 * k, min(4 * k + 4, 10)))
        np.testing.assert_array_equal(_np(xb), x[ids])
        np.testing.assert_array_equal(_np(yb), y[ids])


def test_drop_last():
    x, y = _data(10)
    loader = DataLoader(x, y, batch_size=4, drop_last=True)
    assert len(loader) == 2
    assert [len(ids) for ids, _, _ in loader] == [4, 4]
    # Exact multiple: nothing dropped.
    assert len(DataLoader(x, y, batch_size=5, drop_last=True)) == 2
    assert len(DataLoader(x, y, batch_size=11, drop_last=True)) == 0
    assert list(DataLoader(x, y, batch_size=11, drop_last=True)) == []


def test_batch_larger_than_data_and_empty_data():
    x, y = _data(3)
    (ids, xb, yb), = DataLoader(x, y, batch_size=64)
    np.testing.assert_array_equal(ids, [0, 1, 2])
    empty = DataLoader(np.zeros((0, 3), np.float32), np.zeros(0, np.int64), batch_size=4)
    assert len(empty) == 0 and list(empty) == []


def test_shuffle_is_deterministic_by_seed_and_new_every_epoch():
    x, y = _data(50)
    a = DataLoader(x, y, batch_size=8, shuffle=True, seed=123)
    b = DataLoader(x, y, batch_size=8, shuffle=True, seed=123)
    epochs_a = [_ids_of_epoch(a) for _ in range(3)]
    epochs_b = [_ids_of_epoch(b) for _ in range(3)]
    for ea, eb in zip(epochs_a, epochs_b):
        np.testing.assert_array_equal(ea, eb)
        np.testing.assert_array_equal(np.sort(ea), np.arange(50))  # a permutation
    assert not np.array_equal(epochs_a[0], epochs_a[1])
    assert not np.array_equal(epochs_a[1], epochs_a[2])
    assert not np.array_equal(epochs_a[0], np.arange(50))
    other = DataLoader(x, y, batch_size=8, shuffle=True, seed=124)
    assert not np.array_equal(_ids_of_epoch(other), epochs_a[0])


def test_shuffle_order_follows_documented_derivation():
    x, y = _data(20)
    loader = DataLoader(x, y, batch_size=6, shuffle=True, seed=7)
    for epoch in range(3):
        child = np.random.SeedSequence(7).spawn(epoch + 1)[epoch]
        expected = np.random.Generator(np.random.PCG64(child)).permutation(20)
        np.testing.assert_array_equal(_ids_of_epoch(loader), expected)


def test_set_epoch_replays_an_epoch():
    x, y = _data(30)
    loader = DataLoader(x, y, batch_size=7, shuffle=True, seed=3)
    first, second = _ids_of_epoch(loader), _ids_of_epoch(loader)
    assert loader.epoch == 2
    loader.set_epoch(1)
    np.testing.assert_array_equal(_ids_of_epoch(loader), second)
    loader.set_epoch(0)
    np.testing.assert_array_equal(_ids_of_epoch(loader), first)


def test_shuffle_without_seed_still_changes_every_epoch():
    x, y = _data(40)
    loader = DataLoader(x, y, batch_size=16, shuffle=True)
    e0, e1 = _ids_of_epoch(loader), _ids_of_epoch(loader)
    np.testing.assert_array_equal(np.sort(e0), np.arange(40))
    assert not np.array_equal(e0, e1)


def test_ids_follow_their_rows_when_shuffled():
    x, y = _data(25)
    ids = np.arange(25, dtype=np.int32) * 3 + 1000
    for bids, xb, yb in DataLoader(x, y, batch_size=4, shuffle=True, seed=0, ids=ids):
        rows = (bids - 1000) // 3
        assert bids.dtype == np.int64
        np.testing.assert_array_equal(_np(xb), x[rows])
        np.testing.assert_array_equal(_np(yb), y[rows])


def test_batches_is_first_epoch_as_list():
    x, y = _data(13)
    got = batches(x, y, 5, shuffle=True, seed=11)
    assert isinstance(got, list) and len(got) == 3
    ref = list(DataLoader(x, y, batch_size=5, shuffle=True, seed=11))
    for (i1, x1, y1), (i2, x2, y2) in zip(got, ref):
        np.testing.assert_array_equal(i1, i2)
        np.testing.assert_array_equal(_np(x1), _np(x2))
        np.testing.assert_array_equal(_np(y1), _np(y2))
    assert len(batches(x, y, 5, drop_last=True)) == 2


def test_dtypes_and_numpy_method_inputs():
    class Wrapped:
        def __init__(self, a):
            self._a = a

        def numpy(self):
            return self._a

    x = np.arange(12, dtype=np.float64).reshape(6, 2)
    y = np.array([0, 1, 0, 1, 1, 0], dtype=np.int32)
    (ids, xb, yb), = DataLoader(Wrapped(x), Wrapped(y), batch_size=6)
    assert _np(xb).dtype == np.float32 and _np(yb).dtype == np.int64
    np.testing.assert_array_equal(_np(xb), x.astype(np.float32))
    # Float targets stay floating (float32).
    (_, _, yf), = DataLoader(x, y.astype(np.float64), batch_size=6)
    assert _np(yf).dtype == np.float32


def test_to_tensor_uses_bcml_from_numpy_when_available(monkeypatch):
    seen = []

    def fake_from_numpy(a):
        seen.append(a)
        return ("tensor", a)

    monkeypatch.setattr(bdata, "_from_numpy", fake_from_numpy)
    x, y = _data(4)
    x_f = x[:, ::2]  # not contiguous
    (_, xb, yb), = DataLoader(x_f, y, batch_size=4)
    assert xb[0] == "tensor" and yb[0] == "tensor"
    assert all(a.flags.c_contiguous for a in seen)
    np.testing.assert_array_equal(xb[1], x_f)

    monkeypatch.setattr(bdata, "_from_numpy", None)  # core unavailable: plain NumPy
    (_, xb, yb), = DataLoader(x, y, batch_size=4)
    assert isinstance(xb, np.ndarray) and isinstance(yb, np.ndarray)


@pytest.mark.parametrize("bad", [0, -1, -64])
def test_non_positive_batch_size_is_value_error(bad):
    x, y = _data(4)
    with pytest.raises(ValueError, match="batch_size"):
        DataLoader(x, y, batch_size=bad)
    with pytest.raises(ValueError, match="batch_size"):
        batches(x, y, bad)


@pytest.mark.parametrize("bad", [2.5, "4", None, True])
def test_non_int_batch_size_is_type_error(bad):
    x, y = _data(4)
    with pytest.raises(TypeError, match="batch_size"):
        DataLoader(x, y, batch_size=bad)


def test_numpy_integer_batch_size_is_accepted():
    x, y = _data(4)
    assert len(DataLoader(x, y, batch_size=np.int64(2))) == 2


def test_length_mismatch_names_x_and_y():
    x, y = _data(5)
    with pytest.raises(ValueError) as info:
        DataLoader(x, y[:4], batch_size=2)
    msg = str(info.value)
    assert "x" in msg and "y" in msg and "5" in msg and "4" in msg


def test_wrong_types_and_values():
    x, y = _data(4)
    with pytest.raises(TypeError, match="x"):
        DataLoader(x.tolist(), y)
    with pytest.raises(TypeError, match="y"):
        DataLoader(x, list(y))
    with pytest.raises(ValueError, match="x"):
        DataLoader(np.array(1.0, dtype=np.float32), y)
    with pytest.raises(TypeError, match="ids"):
        DataLoader(x, y, ids=np.arange(4, dtype=np.float64))
    with pytest.raises(ValueError, match="ids"):
        DataLoader(x, y, ids=np.arange(3))
    with pytest.raises(TypeError, match="seed"):
        DataLoader(x, y, shuffle=True, seed=1.5)
    with pytest.raises(ValueError, match="seed"):
        DataLoader(x, y, shuffle=True, seed=-1)
    with pytest.raises(TypeError, match="shuffle"):
        DataLoader(x, y, shuffle="yes")
    with pytest.raises(TypeError, match="drop_last"):
        DataLoader(x, y, drop_last=1)
    loader = DataLoader(x, y)
    with pytest.raises(ValueError, match="epoch"):
        loader.set_epoch(-1)


def test_return_ids_false_gives_pairs_like_a_torch_loader():
    x, y = _data(10)
    with_ids = list(DataLoader(x, y, batch_size=4, shuffle=True, seed=3))
    pairs = list(DataLoader(x, y, batch_size=4, shuffle=True, seed=3, return_ids=False))
    assert len(pairs) == 3 and all(len(b) == 2 for b in pairs)
    for (ids, xb, yb), (xp, yp) in zip(with_ids, pairs):
        np.testing.assert_array_equal(_np(xp), _np(xb))
        np.testing.assert_array_equal(_np(yp), y[ids])
    assert [len(b) for b in batches(x, y, 4, return_ids=False)] == [2, 2, 2]
    with pytest.raises(TypeError, match="return_ids"):
        DataLoader(x, y, batch_size=4, return_ids=1)


def test_helpers_take_a_pairs_loader_and_the_documented_loop_runs():
    """BCML's documented loop, `for data, target in train_loader`, with only the imports changed."""
    import bcml
    from bcml.helpers.training import train_compatibility
    from bcml.loss import BCCrossEntropyLoss
    from bcml.models import LogisticRegression
    rng = np.random.default_rng(0)
    x = rng.standard_normal((96, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    bcml.manual_seed(0)
    h1, h2 = LogisticRegression(4, 2), LogisticRegression(4, 2)
    h1.eval()
    start = {k: v.detach().numpy().copy() for k, v in h2.state_dict().items()}
    train_loader = DataLoader(x, y, batch_size=32, return_ids=False)
    optimizer = bcml.optim.SGD(h2.parameters(), lr=0.1)
    bc_loss = BCCrossEntropyLoss(h1, h2, 1.0)
    for data, target in train_loader:
        loss = bc_loss(data, target)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    by_hand = {k: v.detach().numpy().copy() for k, v in h2.state_dict().items()}
    h2.load_state_dict({k: bcml.from_numpy(v) for k, v in start.items()})
    train_compatibility(1, h2, bcml.optim.SGD(h2.parameters(), lr=0.1), BCCrossEntropyLoss(h1, h2, 1.0),
                        train_loader, train_loader, 32, 32)
    for k, v in h2.state_dict().items():
        np.testing.assert_allclose(v.detach().numpy(), by_hand[k], rtol=1e-5, atol=1e-7)
