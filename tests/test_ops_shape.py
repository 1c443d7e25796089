"""Shape ops (transpose, reshape, slice, index_select, mask_select, cat) and the Tensor surface
built on them: values against NumPy, gradients against finite differences and PyTorch,
views sharing memory, and bad inputs."""
import gc

import numpy as np
import pytest

import bcml
from bcml import _core
from bcml._tensor import OPS
from conftest import grad_check

RNG = np.random.default_rng(1234)


def rand(*shape):
    return np.asarray(RNG.standard_normal(shape), dtype=np.float32)


def data_of(dtype, shape):
    """Random data of a bcml dtype name, as a NumPy array."""
    if dtype == "float32":
        return rand(*shape)
    if dtype == "int64":
        return np.asarray(RNG.integers(-50, 50, size=shape), dtype=np.int64)
    return np.asarray(RNG.random(shape) < 0.5)


def apply(op, inputs, iargs=(), fargs=()):
    return _core.apply(OPS[op], tuple(inputs), tuple(iargs), tuple(fargs))


def torch_compare(torch, bfn, tfn, arrays, rtol=1e-5, atol=1e-6, seed=1):
    """Runs bfn on bcml tensors and tfn on torch tensors (both requiring grad), backpropagates
    the same random gradient and compares outputs and input gradients."""
    rng = np.random.default_rng(seed)
    bs = [bcml.tensor(a, requires_grad=True) for a in arrays]
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    bo, to = bfn(*bs), tfn(*ts)
    assert tuple(bo.shape) == tuple(to.shape)
    np.testing.assert_allclose(bo.detach().numpy(), to.detach().numpy(), rtol=rtol, atol=atol)
    g = rng.standard_normal(tuple(to.shape)).astype(np.float32)
    bo.backward(bcml.from_numpy(g))
    to.backward(torch.from_numpy(g))
    for k, (a, b, t) in enumerate(zip(arrays, bs, ts)):
        tg = np.zeros(a.shape, np.float32) if t.grad is None else t.grad.numpy()
        bg = np.zeros(a.shape, np.float32) if b.grad is None else b.grad.numpy()
        np.testing.assert_allclose(bg, tg, rtol=rtol, atol=atol, err_msg="grad of input %d" % k)


# ---- transpose --------------------------------------------------------------------------------
TRANSPOSES = [((2, 3), 0, 1), ((3, 1), 1, 0), ((2, 3, 4), 0, 2), ((2, 3, 4), 1, 2), ((2, 3, 4), -1, 0),
              ((2, 3, 4, 5), 1, 3), ((2, 3, 4, 5), 0, 3), ((2, 3, 4, 5), 2, 1), ((0, 5), 0, 1),
              ((3, 0, 2), 0, 2), ((40, 70), 0, 1), ((3, 33, 65), 1, 2)]


@pytest.mark.parametrize("shape,d0,d1", TRANSPOSES)
@pytest.mark.parametrize("dtype", ["float32", "int64", "bool"])
def test_transpose_values(shape, d0, d1, dtype):
    a = data_of(dtype, shape)
    out = bcml.from_numpy(a).transpose(d0, d1)
    assert out.dtype == getattr(bcml, "bool" if dtype == "bool" else dtype)
    np.testing.assert_array_equal(out.numpy(), np.swapaxes(a, d0, d1))


@pytest.mark.parametrize("shape,d0,d1", [((2, 3), 0, 1), ((2, 3, 4), 0, 2), ((2, 3, 2, 2), 1, 3)])
def test_transpose_grad(shape, d0, d1):
    grad_check(lambda x: x.transpose(d0, d1), [rand(*shape)])


@pytest.mark.parametrize("shape,d0,d1", TRANSPOSES)
def test_transpose_torch(torch, shape, d0, d1):
    torch_compare(torch, lambda x: x.transpose(d0, d1), lambda x: x.transpose(d0, d1), [rand(*shape)])


def test_t_and_T(torch):
    a = rand(3, 5)
    torch_compare(torch, lambda x: x.t(), lambda x: x.t(), [a])
    np.testing.assert_array_equal(bcml.tensor(a).T.numpy(), a.T)
    v = bcml.tensor(rand(4))
    assert v.t() is v
    with pytest.raises(ValueError, match="t\\(\\)"):
        bcml.zeros(2, 3, 4).t()


def test_transpose_copies():
    a = rand(3, 4)
    x = bcml.from_numpy(a)
    y = x.t()
    assert not np.shares_memory(a, y.numpy())


def test_transpose_bad_dims():
    x = bcml.zeros(2, 3)
    with pytest.raises(IndexError, match="dim1"):
        x.transpose(0, 2)
    with pytest.raises(IndexError, match="dim0"):
        apply("transpose", [x], (-3, 1))
    with pytest.raises(IndexError, match="dim1"):
        apply("transpose", [x], (0, 7))


# ---- reshape / view -----------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "int64", "bool"])
@pytest.mark.parametrize("shape,new", [((2, 6), (3, 4)), ((2, 6), (-1,)), ((2, 3, 4), (4, -1)),
                                       ((24,), (2, 3, 2, 2)), ((1,), ()), ((), (1, 1)), ((0, 3), (3, 0)),
                                       ((0, 3), (-1, 3))])
def test_view_values_and_sharing(dtype, shape, new):
    a = data_of(dtype, shape)
    x = bcml.from_numpy(a)
    y = x.view(*new) if new else x.view(())
    ref = a.reshape(new)
    assert y.shape == ref.shape
    np.testing.assert_array_equal(y.numpy(), ref)
    if a.size:
        assert np.shares_memory(a, y.numpy())
        assert np.shares_memory(x.numpy(), y.numpy())


def test_view_is_a_view_both_ways():
    a = np.arange(12, dtype=np.float32)
    x = bcml.from_numpy(a)
    y = x.view(3, 4)
    a[5] = 100.0                       # writes through the original show in the view
    assert y.numpy()[1, 1] == 100.0
    y.fill_(7.0)                        # and writes through the view show in the original
    assert np.all(a == 7.0)
    z = y.reshape(2, 6).view(-1, 3)     # views of views
    assert np.shares_memory(a, z.numpy())


def test_view_outlives_original():
    x = bcml.tensor(np.arange(6, dtype=np.float32))
    y = x.view(2, 3)
    del x
    gc.collect()
    np.testing.assert_array_equal(y.numpy(), np.arange(6, dtype=np.float32).reshape(2, 3))


def test_reshape_grad_and_torch(torch):
    a = rand(2, 3, 4)
    grad_check(lambda x: x.view(6, 4), [a])
    torch_compare(torch, lambda x: x.view(-1, 6), lambda x: x.view(-1, 6), [a])
    torch_compare(torch, lambda x: x.reshape(4, 6).view(2, 12), lambda x: x.reshape(4, 6).view(2, 12), [a])
    b = rand(2, 3)
    torch_compare(torch, lambda x, y: x.view_as(y), lambda x, y: x.view_as(y), [rand(6), b])


def test_view_grad_accumulates_through_two_views():
    x = bcml.tensor(rand(2, 3), requires_grad=True)
    g1, g2 = rand(6), rand(3, 2)
    y1, y2 = x.view(6), x.view(3, 2)
    y1.backward(bcml.from_numpy(g1))
    y2.backward(bcml.from_numpy(g2))
    np.testing.assert_allclose(x.grad.numpy(), g1.reshape(2, 3) + g2.reshape(2, 3), rtol=1e-6)


def test_flatten_squeeze_unsqueeze(torch):
    a = rand(2, 1, 3, 1)
    for bf, tf in [(lambda x: x.flatten(), lambda x: x.flatten()),
                   (lambda x: x.flatten(1), lambda x: x.flatten(1)),
                   (lambda x: x.flatten(1, 2), lambda x: x.flatten(1, 2)),
                   (lambda x: x.squeeze(), lambda x: x.squeeze()),
                   (lambda x: x.squeeze(1), lambda x: x.squeeze(1)),
                   (lambda x: x.squeeze(0), lambda x: x.squeeze(0)),
                   (lambda x: x.squeeze(-1).unsqueeze(0), lambda x: x.squeeze(-1).unsqueeze(0)),
                   (lambda x: x.view(2, 3).unsqueeze(-1), lambda x: x.view(2, 3).unsqueeze(-1))]:
        torch_compare(torch, bf, tf, [a])
    x = bcml.from_numpy(a)
    assert np.shares_memory(a, x.flatten().numpy())
    assert np.shares_memory(a, x.squeeze().unsqueeze(0).numpy())


def test_reshape_bad_shape():
    x = bcml.zeros(2, 3)
    with pytest.raises(ValueError, match="shape"):
        x.view(4, 2)
    with pytest.raises(ValueError, match="shape"):
        x.view(-1, 4)
    # the C op checks too, naming the shape
    with pytest.raises(ValueError, match="shape"):
        apply("reshape", [x], (4, 2, 0, 0, 2))
    with pytest.raises(ValueError, match="shape"):
        apply("reshape", [x], (-2, -3, 0, 0, 2))
    with pytest.raises(ValueError, match="shape"):
        apply("reshape", [x], (6, 0, 0, 0, 5))


# ---- slice ---------------------------------------------------------------------------------------
SLICES = [np.s_[1:3], np.s_[:2], np.s_[-2:], np.s_[::2], np.s_[1::3], np.s_[1:1], np.s_[5:], np.s_[2],
          np.s_[-1], np.s_[:, 1], np.s_[:, 1:3], np.s_[:, ::2], np.s_[:, -1], np.s_[1:4, 2],
          np.s_[..., 1], np.s_[:, :, 1:], np.s_[0, 1], np.s_[None, 1]]


@pytest.mark.parametrize("key", SLICES, ids=str)
@pytest.mark.parametrize("dtype", ["float32", "int64", "bool"])
def test_slice_values(key, dtype):
    a = data_of(dtype, (5, 4, 3))
    out = bcml.from_numpy(a)[key]
    ref = a[key]
    assert out.shape == ref.shape
    np.testing.assert_array_equal(out.numpy(), ref)


@pytest.mark.parametrize("key", SLICES, ids=str)
def test_slice_torch(torch, key):
    torch_compare(torch, lambda x: x[key], lambda x: x[key], [rand(5, 4, 3)])


@pytest.mark.parametrize("key", [np.s_[1:3], np.s_[::2], np.s_[:, 1], np.s_[:, 1::2], np.s_[2]], ids=str)
def test_slice_grad(key):
    grad_check(lambda x: x[key], [rand(4, 3, 2)])


def test_row_slices_are_views():
    a = np.arange(20, dtype=np.float32).reshape(5, 4)
    x = bcml.from_numpy(a)
    assert np.shares_memory(a, x[1:3].numpy())
    assert np.shares_memory(a, x[2].numpy())
    x[1:3].fill_(-1.0)
    assert np.all(a[1:3] == -1.0) and np.all(a[0] == np.arange(4))
    np.testing.assert_array_equal(x[3].numpy(), a[3])
    # a view of a view keeps the right offset
    np.testing.assert_array_equal(x[1:5][2:3].numpy(), a[3:4])
    # column and strided slices are copies with the right values
    np.testing.assert_array_equal(x[:, 1].numpy(), a[:, 1])
    np.testing.assert_array_equal(x[::2].numpy(), a[::2])


def test_slice_bad():
    x = bcml.zeros(5, 3)
    with pytest.raises(IndexError, match="out of bounds"):
        x[5]
    with pytest.raises(IndexError, match="out of bounds"):
        x[:, -4]
    with pytest.raises(ValueError, match="step"):
        x[::-1]
    with pytest.raises(ValueError, match="step"):
        apply("slice", [x], (0, 0, 5, 0))
    with pytest.raises(IndexError, match="start"):
        apply("slice", [x], (0, -1, 2, 1))
    with pytest.raises(IndexError, match="start"):
        apply("slice", [x], (1, 4, 4, 1))
    with pytest.raises(IndexError, match="stop"):
        apply("slice", [x], (0, 3, 2, 1))
    with pytest.raises(IndexError, match="stop"):
        apply("slice", [x], (0, 0, 6, 1))
    with pytest.raises(IndexError, match="dim"):
        apply("slice", [x], (2, 0, 1, 1))
    with pytest.raises(IndexError, match="dim"):
        apply("slice", [bcml.tensor(1.0)], (0, 0, 1, 1))


# ---- index_select -------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "int64", "bool"])
@pytest.mark.parametrize("idx", [[0, 2], [3, -1, 0, 3], [], [-5], [4, 4, 4]], ids=str)
def test_index_select_values(dtype, idx):
    a = data_of(dtype, (5, 3, 2))
    x = bcml.from_numpy(a)
    ref = a[np.array(idx, dtype=np.int64)]
    for key in (idx, np.array(idx, dtype=np.int64), bcml.tensor(idx, dtype=bcml.int64)):
        out = x[key]
        assert out.shape == ref.shape
        np.testing.assert_array_equal(out.numpy(), ref)


@pytest.mark.parametrize("dim", [0, 1, 2, -1])
def test_index_select_dims(torch, dim):
    a = rand(4, 5, 3)
    idx = np.array([2, 0, -1, 2], dtype=np.int64)
    key = (slice(None),) * (dim % 3) + (bcml.tensor(idx),)
    tkey = (slice(None),) * (dim % 3) + (torch.tensor(idx),)
    np.testing.assert_array_equal(bcml.tensor(a)[key].numpy(), np.take(a, idx, axis=dim))
    torch_compare(torch, lambda x: x[key], lambda x: x[tkey], [a])
    torch_compare(torch, lambda x: apply("index_select", [x, bcml.tensor(idx)], (dim,)),
                  lambda x: torch.index_select(x, dim, torch.tensor(idx % a.shape[dim])), [a])


def test_index_select_grad_duplicates_accumulate(torch):
    a = rand(4, 3)
    idx = [1, 1, 3, -3, 0, 1]
    grad_check(lambda x: x[idx], [a])
    torch_compare(torch, lambda x: x[idx], lambda x: x[idx], [a])
    x = bcml.tensor(a, requires_grad=True)
    x[[2, 2, 2]].backward(bcml.ones(3, 3))
    np.testing.assert_array_equal(x.grad.numpy(), np.array([[0] * 3, [0] * 3, [3] * 3, [0] * 3], np.float32))


def test_index_with_2d_index_tensor(torch):
    a = rand(5, 3)
    idx = np.array([[0, 4], [2, 2]], dtype=np.int64)
    out = bcml.tensor(a)[bcml.tensor(idx)]
    np.testing.assert_array_equal(out.numpy(), a[idx])
    torch_compare(torch, lambda x: x[bcml.tensor(idx)], lambda x: x[torch.tensor(idx)], [a])


def test_index_select_bad():
    x = bcml.zeros(5, 3)
    with pytest.raises(IndexError, match="index"):
        x[[0, 5]]
    with pytest.raises(IndexError, match="index"):
        x[bcml.tensor([-6])]
    with pytest.raises(IndexError, match="index"):
        apply("index_select", [x, bcml.tensor([3])], (1,))
    with pytest.raises(TypeError, match="index"):
        apply("index_select", [x, bcml.tensor([0.0])], (0,))
    with pytest.raises(ValueError, match="index"):
        apply("index_select", [x, bcml.tensor([[0, 1]])], (0,))
    with pytest.raises(IndexError, match="dim"):
        apply("index_select", [x, bcml.tensor([0])], (2,))
    with pytest.raises(TypeError):
        x[bcml.tensor([0.0, 1.0])]


# ---- mask_select --------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "int64", "bool"])
@pytest.mark.parametrize("shape", [(6,), (6, 3), (6, 2, 2), (0, 3)])
def test_mask_select_values(dtype, shape):
    a = data_of(dtype, shape)
    for m in (RNG.random(shape[0]) < 0.5, np.zeros(shape[0], bool), np.ones(shape[0], bool)):
        out = bcml.from_numpy(a)[bcml.from_numpy(m)]
        assert out.shape == a[m].shape
        np.testing.assert_array_equal(out.numpy(), a[m])
        np.testing.assert_array_equal(bcml.from_numpy(a)[m].numpy(), a[m])   # a NumPy mask works too


def test_mask_select_full_shape_mask(torch):
    a = rand(4, 3)
    m = RNG.random((4, 3)) < 0.5
    np.testing.assert_array_equal(bcml.tensor(a)[bcml.tensor(m)].numpy(), a[m])
    torch_compare(torch, lambda x: x[bcml.tensor(m)], lambda x: x[torch.tensor(m)], [a])


def test_mask_select_grad_and_torch(torch):
    a = rand(6, 3)
    m = np.array([True, False, True, True, False, True])
    grad_check(lambda x: x[bcml.tensor(m)], [a])
    torch_compare(torch, lambda x: x[bcml.tensor(m)], lambda x: x[torch.tensor(m)], [a])
    torch_compare(torch, lambda x: x[:, bcml.tensor(m[:3])], lambda x: x[:, torch.tensor(m[:3])], [a])


def test_mask_changed_after_forward_does_not_change_grad():
    a = rand(4, 2)
    m = np.array([True, False, False, True])
    x = bcml.tensor(a, requires_grad=True)
    y = x[bcml.from_numpy(m)]
    m[:] = [False, True, True, True]   # the mask's memory is shared; backward uses the rows of forward
    g = rand(2, 2)
    y.backward(bcml.from_numpy(g))
    ref = np.zeros_like(a)
    ref[[0, 3]] = g
    np.testing.assert_array_equal(x.grad.numpy(), ref)


def test_mask_select_bad():
    x = bcml.zeros(5, 3)
    with pytest.raises(IndexError, match="boolean index"):
        x[bcml.tensor([True, False])]
    with pytest.raises(IndexError, match="mask"):
        apply("mask_select", [x, bcml.tensor([True, False])])
    with pytest.raises(IndexError, match="mask"):
        apply("mask_select", [x, bcml.tensor([[True] * 3] * 5)])
    with pytest.raises(TypeError, match="mask"):
        apply("mask_select", [x, bcml.tensor([1, 0, 1, 0, 1])])
    with pytest.raises(IndexError, match="dimension"):
        apply("mask_select", [bcml.tensor(1.0), bcml.tensor([True])])


# ---- cat and stack --------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "int64", "bool"])
@pytest.mark.parametrize("shapes,dim", [([(2, 3), (4, 3)], 0), ([(2, 3), (2, 1), (2, 0), (2, 5)], 1),
                                        ([(2, 3, 4), (2, 2, 4)], -2), ([(1, 2, 3, 4), (1, 2, 3, 1)], 3),
                                        ([(0, 3), (0, 3)], 0), ([(3,)], 0)])
def test_cat_values(dtype, shapes, dim):
    arrs = [data_of(dtype, s) for s in shapes]
    out = bcml.cat([bcml.from_numpy(a) for a in arrs], dim)
    np.testing.assert_array_equal(out.numpy(), np.concatenate(arrs, axis=dim))


def test_cat_many_tensors_and_copy():
    arrs = [rand(i + 1, 2) for i in range(9)]   # more than the op's 6 inputs per call
    out = bcml.cat([bcml.from_numpy(a) for a in arrs])
    np.testing.assert_array_equal(out.numpy(), np.concatenate(arrs))
    out2 = bcml.cat([bcml.from_numpy(arrs[0]), bcml.from_numpy(arrs[1])])
    assert not np.shares_memory(out2.numpy(), arrs[0])


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_cat_grad_and_torch(torch, dim):
    arrs = [rand(2, 3), rand(2, 3), rand(2, 3)]
    grad_check(lambda a, b, c: bcml.cat([a, b, c], dim), arrs)
    torch_compare(torch, lambda a, b, c: bcml.cat([a, b, c], dim), lambda a, b, c: torch.cat([a, b, c], dim), arrs)
    many = [rand(2, i + 1) for i in range(8)]
    torch_compare(torch, lambda *xs: bcml.cat(list(xs), 1), lambda *xs: torch.cat(list(xs), 1), many)


def test_cat_grad_only_for_inputs_requiring_it():
    a = bcml.tensor(rand(2, 2), requires_grad=True)
    b = bcml.tensor(rand(3, 2))
    g = rand(5, 2)
    bcml.cat([b, a]).backward(bcml.from_numpy(g))
    np.testing.assert_array_equal(a.grad.numpy(), g[3:])
    assert b.grad is None


@pytest.mark.parametrize("dim", [0, 1, 2, -1])
def test_stack(torch, dim):
    arrs = [rand(2, 3), rand(2, 3), rand(2, 3)]
    np.testing.assert_array_equal(bcml.stack([bcml.from_numpy(a) for a in arrs], dim).numpy(), np.stack(arrs, dim))
    torch_compare(torch, lambda *xs: bcml.stack(list(xs), dim), lambda *xs: torch.stack(list(xs), dim), arrs)


def test_cat_bad():
    with pytest.raises(ValueError, match="tensors\\[1\\]"):
        bcml.cat([bcml.zeros(2, 3), bcml.zeros(2, 4)])
    with pytest.raises(ValueError, match="tensors\\[2\\]"):
        bcml.cat([bcml.zeros(2, 3), bcml.zeros(1, 3), bcml.zeros(2, 3, 1)])
    with pytest.raises(TypeError, match="dtype"):
        bcml.cat([bcml.zeros(2, 3), bcml.zeros(2, 3, dtype=bcml.int64)])
    with pytest.raises(ValueError, match="zero-dimensional"):
        bcml.cat([bcml.tensor(1.0), bcml.tensor(2.0)])
    with pytest.raises(IndexError, match="dim"):
        bcml.cat([bcml.zeros(2, 3), bcml.zeros(2, 3)], 2)
    with pytest.raises(IndexError, match="dim"):
        apply("cat", [bcml.zeros(2, 3), bcml.zeros(2, 3)], (5,))
    with pytest.raises(TypeError, match="tensors\\[1\\]"):
        apply("cat", [bcml.zeros(2, 3), None], (0,))
    with pytest.raises(ValueError):
        bcml.stack([bcml.zeros(2, 3), bcml.zeros(3, 2)])


# ---- the Tensor surface together -----------------------------------------------------------------
def test_surface_chain_against_torch(torch):
    a, b = rand(4, 6), rand(3, 6)
    idx = np.array([3, 0, 3], dtype=np.int64)
    mask = np.array([True, False, True, True])

    def bf(x, y):
        parts = [x.view(-1, 3)[2:6], x[bcml.tensor(idx)].reshape(9, 2)[::3].reshape(6, 1).t().reshape(2, 3),
                 x[bcml.tensor(mask)][:, 1:4].flatten().view(3, 3)[:2], y.t()[1:3, :]]
        return bcml.cat([p.reshape(-1, 3) for p in parts] + [y[1].view(2, 3), y[:, 2].unsqueeze(0)], 0)

    def tf(x, y):
        parts = [x.view(-1, 3)[2:6], x[torch.tensor(idx)].reshape(9, 2)[::3].reshape(6, 1).t().reshape(2, 3),
                 x[torch.tensor(mask)][:, 1:4].flatten().view(3, 3)[:2], y.t()[1:3, :]]
        return torch.cat([p.reshape(-1, 3) for p in parts] + [y[1].view(2, 3), y[:, 2].unsqueeze(0)], 0)

    torch_compare(torch, bf, tf, [a, b])


@pytest.mark.parametrize("fn", [lambda x: x.transpose(0, 2), lambda x: x.view(-1), lambda x: x[1:],
                                lambda x: x[:, ::2], lambda x: x[[2, 0, 2]], lambda x: x[:, [1, 1]],
                                lambda x: x[bcml.tensor([True, False, True])],
                                lambda x: bcml.cat([x, x], 1)],
                         ids=["transpose", "view", "row_slice", "col_slice", "index", "index_dim1", "mask", "cat"])
def test_backward_accumulates(fn):
    """Backward adds into existing gradients: two backward passes give twice one pass."""
    a = rand(3, 4, 2)
    x = bcml.tensor(a, requires_grad=True)
    out = fn(x)
    g = bcml.from_numpy(rand(*out.shape))
    fn(x).backward(g)
    once = x.grad.numpy().copy()
    assert np.any(once != 0)
    fn(x).backward(g)
    np.testing.assert_allclose(x.grad.numpy(), 2 * once, rtol=1e-6)
