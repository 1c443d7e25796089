"""bcml.utils.data (issue 11, item 2): Dataset, TensorDataset, Subset, random_split, DataLoader and
default_collate against PyTorch's torch.utils.data (batch contents, lengths, split sizes), the
fast path against the per-item path, and training through a loader (replayed) against the
list-of-batches path."""
import copy
import warnings

import numpy as np
import pytest

import bcml
import bcml.nn as nn
import bcml.nn.functional as F
from bcml import _engine
from bcml.utils.data import DataLoader, Dataset, Subset, TensorDataset, default_collate, random_split


def _arrays(n=23, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 3)).astype(np.float32), rng.integers(0, 4, n).astype(np.int64)


class PerItem(Dataset):
    """A plain map-style data set (no fast path) over the same arrays."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def __getitem__(self, i):
        return bcml.from_numpy(self.x[i].copy()), int(self.y[i])

    def __len__(self):
        return len(self.y)


def test_import_bcml_reaches_utils_data():
    import bcml as b
    assert b.utils.data.DataLoader is DataLoader


@pytest.mark.parametrize("bs,drop_last", [(1, False), (5, False), (5, True), (23, False), (30, True)])
def test_unshuffled_batches_and_len_against_torch(torch, bs, drop_last):
    x, y = _arrays()
    got = list(DataLoader(TensorDataset(x, y), batch_size=bs, drop_last=drop_last))
    want = list(torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y)),
                                            batch_size=bs, drop_last=drop_last))
    assert len(got) == len(want) == len(DataLoader(TensorDataset(x, y), batch_size=bs, drop_last=drop_last))
    for (gx, gy), (wx, wy) in zip(got, want):
        np.testing.assert_array_equal(gx.numpy(), wx.numpy())
        np.testing.assert_array_equal(gy.numpy(), wy.numpy())
        assert gy.dtype == bcml.int64 and gx.dtype == bcml.float32


def test_fast_path_equals_per_item_path():
    x, y = _arrays(101)
    for bs, shuffle, drop in [(1, True, False), (7, True, True), (64, False, False)]:
        bcml.manual_seed(3)
        fast = list(DataLoader(TensorDataset(x, y), batch_size=bs, shuffle=shuffle, drop_last=drop))
        bcml.manual_seed(3)
        slow = list(DataLoader(PerItem(x, y), batch_size=bs, shuffle=shuffle, drop_last=drop))
        assert len(fast) == len(slow)
        for (fx, fy), (sx, sy) in zip(fast, slow):
            np.testing.assert_array_equal(fx.numpy(), sx.numpy())
            np.testing.assert_array_equal(fy.numpy(), sy.numpy())
    # a Subset of a fast data set keeps the fast path, with the same batches
    idx = [5, 3, 99, 0, 42, 42, 7]
    fast = list(DataLoader(Subset(TensorDataset(x, y), idx), batch_size=3))
    slow = list(DataLoader(Subset(PerItem(x, y), idx), batch_size=3))
    for (fx, fy), (sx, sy) in zip(fast, slow):
        np.testing.assert_array_equal(fx.numpy(), sx.numpy())
        np.testing.assert_array_equal(fy.numpy(), sy.numpy())
    np.testing.assert_array_equal(np.concatenate([b[1].numpy() for b in fast]), y[idx])


def test_shuffle_is_a_permutation_reproducible_by_seed_and_generator():
    x, y = _arrays(50)
    ds = TensorDataset(x, np.arange(50))
    bcml.manual_seed(11)
    a = np.concatenate([b[1].numpy() for b in DataLoader(ds, batch_size=8, shuffle=True)])
    b = np.concatenate([b[1].numpy() for b in DataLoader(ds, batch_size=8, shuffle=True)])
    bcml.manual_seed(11)
    a2 = np.concatenate([b[1].numpy() for b in DataLoader(ds, batch_size=8, shuffle=True)])
    assert sorted(a) == list(range(50)) and not np.array_equal(a, np.arange(50))
    np.testing.assert_array_equal(a, a2)
    assert not np.array_equal(a, b)   # every iteration draws a new order
    g1, g2 = bcml.Generator(5), bcml.Generator(5)
    o1 = [b[1].numpy() for b in DataLoader(ds, batch_size=50, shuffle=True, generator=g1)][0]
    o2 = [b[1].numpy() for b in DataLoader(ds, batch_size=50, shuffle=True, generator=g2)][0]
    np.testing.assert_array_equal(o1, o2)


def test_default_collate_against_torch(torch):
    samples = [({"a": 1, "b": np.array([1.5, 2.0], np.float32)}, 2.5, "s%d" % i, (i, True)) for i in range(3)]
    got = default_collate(samples)
    want = torch.utils.data.default_collate(samples)
    assert isinstance(got, list) and isinstance(want, list)
    np.testing.assert_array_equal(got[0]["a"].numpy(), want[0]["a"].numpy())
    np.testing.assert_array_equal(got[0]["b"].numpy(), want[0]["b"].numpy())
    np.testing.assert_allclose(got[1].numpy(), want[1].numpy())
    assert got[1].dtype == bcml.float32 and want[1].dtype == torch.float64   # documented difference
    assert got[2] == want[2]
    np.testing.assert_array_equal(got[3][0].numpy(), want[3][0].numpy())
    assert got[3][1].dtype == bcml.bool and got[3][1].numpy().all()
    t = [bcml.tensor([[1.0, 2.0]]), bcml.tensor([[3.0, 4.0]])]
    assert default_collate(t).shape == (2, 1, 2)
    with pytest.raises(TypeError, match="default_collate: batch must contain"):
        default_collate([object(), object()])
    with pytest.raises(ValueError, match="equal size"):
        default_collate([(1, 2), (1,)])


def test_batch_size_none_and_samplers():
    x, y = _arrays(6)
    items = list(DataLoader(TensorDataset(x, y), batch_size=None))
    assert len(items) == 6 and items[2][0].shape == (3,) and int(items[2][1]) == y[2]
    got = list(DataLoader(TensorDataset(x, y), batch_size=2, sampler=[5, 0, 3]))
    np.testing.assert_array_equal(np.concatenate([b[1].numpy() for b in got]), y[[5, 0, 3]])
    got = list(DataLoader(TensorDataset(x, y), batch_sampler=[[1, 2, 3], [0]]))
    assert [len(b[1]) for b in got] == [3, 1]
    assert len(DataLoader(TensorDataset(x, y), batch_sampler=[[1, 2, 3], [0]])) == 2
    # a user collate_fn receives the list of samples
    got = list(DataLoader(TensorDataset(x, y), batch_size=4, collate_fn=lambda s: len(s)))
    assert got == [4, 2]


def test_random_split_sizes_against_torch(torch):
    ds = TensorDataset(np.arange(10))
    for lengths in ([3, 7], [0.5, 0.5], [0.3, 0.3, 0.4], [0.25, 0.25, 0.25, 0.25]):
        want = torch.utils.data.random_split(torch.utils.data.TensorDataset(torch.arange(10)), lengths)
        got = random_split(ds, lengths, generator=bcml.Generator(1))
        assert [len(s) for s in got] == [len(s) for s in want]
        flat = sorted(int(s[i][0]) for s in got for i in range(len(s)))
        assert flat == list(range(10))   # disjoint, covering
    a = random_split(ds, [4, 6], generator=bcml.Generator(2))
    b = random_split(ds, [4, 6], generator=bcml.Generator(2))
    assert a[0].indices == b[0].indices
    with pytest.raises(ValueError, match="Sum of input lengths"):
        random_split(ds, [3, 3])
    with pytest.raises(ValueError, match="lengths"):
        random_split(ds, [0.5, 0.7])


def test_tensor_dataset_and_subset():
    x, y = _arrays(5)
    ds = TensorDataset(bcml.from_numpy(x), y)
    assert len(ds) == 5 and isinstance(ds[1], tuple)
    np.testing.assert_array_equal(ds[1][0].numpy(), x[1])
    with pytest.raises(ValueError, match="Size mismatch between tensors"):
        TensorDataset(x, y[:3])
    with pytest.raises(TypeError, match="tensors"):
        TensorDataset(x, "abc")
    s = Subset(ds, [4, 0])
    assert len(s) == 2 and int(s[0][1]) == y[4] and int(s[-1][1]) == y[0]
    with pytest.raises(IndexError, match="index"):
        s[2]
    with pytest.raises(ValueError, match="indices"):
        Subset(ds, [7])


@pytest.mark.parametrize("kwargs,match", [
    (dict(batch_size=0), "batch_size"), (dict(batch_size=2.5), "batch_size"), (dict(shuffle="yes"), "shuffle"),
    (dict(sampler=[0], shuffle=True), "sampler"), (dict(batch_sampler=[[0]], batch_size=2), "batch_sampler"),
    (dict(num_workers=-1), "num_workers"), (dict(timeout=-1), "timeout"), (dict(generator=3), "generator"),
    (dict(collate_fn=3), "collate_fn"), (dict(persistent_workers=True), "persistent_workers"),
    (dict(prefetch_factor=2), "prefetch_factor"), (dict(multiprocessing_context="fork"), "multiprocessing_context"),
    (dict(batch_size=None, drop_last=True), "drop_last"),
])
def test_dataloader_bad_arguments_name_themselves(kwargs, match):
    x, y = _arrays(4)
    with pytest.raises((TypeError, ValueError), match=match):
        DataLoader(TensorDataset(x, y), **kwargs)


def test_num_workers_runs_in_process():
    x, y = _arrays(9)
    a = list(DataLoader(TensorDataset(x, y), batch_size=4, num_workers=2, pin_memory=True, prefetch_factor=2,
                        persistent_workers=True, worker_init_fn=lambda i: None))
    b = list(DataLoader(TensorDataset(x, y), batch_size=4))
    for (ax, ay), (bx, by) in zip(a, b):
        np.testing.assert_array_equal(ax.numpy(), bx.numpy())


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(3, 8), nn.Linear(8, 4)

    def forward(self, x):
        o = self.fc2(F.relu(self.fc1(x)))
        return o, F.softmax(o, dim=1), F.log_softmax(o, dim=1)


def test_helpers_train_through_a_loader_replays_and_equals_the_batch_list(replay_on):
    """A fast-path loader is the helpers' data set: the epoch is replayed in C (the step runs in
    Python for the recorded and checked batches only) and the parameters equal those of training on
    the list of its batches in the same order."""
    from bcml.helpers import training
    x, y = _arrays(203, seed=4)
    loader = DataLoader(TensorDataset(x, y), batch_size=16, shuffle=True)
    bcml.manual_seed(0)
    m0 = Net()

    def run(data):
        m = copy.deepcopy(m0)
        opt = bcml.optim.SGD(m.parameters(), lr=0.05, momentum=0.5)
        with warnings.catch_warnings():
            warnings.simplefilter("error", _engine.ReplayWarning)
            training.train(1, m, opt, F.nll_loss, data, data, 16, 16)
        return {k: v.numpy().copy() for k, v in m.state_dict().items()}

    bcml.manual_seed(9)
    batches = list(loader)
    bcml.manual_seed(9)
    via_loader = run(loader)
    via_list = run(batches)
    for k in via_list:
        np.testing.assert_array_equal(via_loader[k], via_list[k], err_msg=k)

    # replay: the step runs in Python only for the recorded batch, the check of the next one and
    # the last (smaller) batch's record and check; the rest of the 13 batches run in C
    calls = []
    m = copy.deepcopy(m0)
    opt = bcml.optim.SGD(m.parameters(), lr=0.05)

    def step(xb, yb, _h1):
        calls.append(1)
        return F.nll_loss(m(xb)[2], yb)

    data = _engine.as_dataset(loader)
    assert data.loader is not None and data.n == 203
    _engine.train_epoch(step, data, opt)
    assert len(calls) == 3, len(calls)   # full-size batch: record + check; the partial last batch: record
    # a loader off the fast path (a user collate_fn) still trains, from its batches
    off = DataLoader(TensorDataset(x, y), batch_size=16, collate_fn=default_collate)
    assert _engine.as_dataset(off).loader is None and len(_engine.as_dataset(off)) == 13


@pytest.fixture
def replay_on():
    old = _engine.REPLAY
    _engine.REPLAY = True
    yield
    _engine.REPLAY = old
