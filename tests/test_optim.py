"""bcml.optim.SGD and Adam against torch.optim: the same small MLP (weights copied from PyTorch),
the same batches, 5 steps, parameters compared after every step."""
import numpy as np
import pytest

import bcml
import bcml.nn.functional as F

STEPS = 5


def make_pair(torch, seed=0, sizes=(4, 8, 3)):
    torch.manual_seed(seed)
    tm = torch.nn.Sequential(torch.nn.Linear(sizes[0], sizes[1]), torch.nn.Tanh(),
                             torch.nn.Linear(sizes[1], sizes[2]))
    bm = bcml.nn.Sequential(bcml.nn.Linear(sizes[0], sizes[1]), bcml.nn.Tanh(),
                            bcml.nn.Linear(sizes[1], sizes[2]))
    assert list(bm.state_dict()) == list(tm.state_dict())
    bm.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    return bm, tm


def batches(seed=1, n=STEPS, B=16, C=4, K=3):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((B, C)).astype(np.float32), rng.integers(0, K, B)) for _ in range(n)]


def assert_params_equal(bm, tm, step):
    for (name, pb), (_, pt) in zip(bm.named_parameters(), tm.named_parameters()):
        np.testing.assert_allclose(pb.detach().numpy(), pt.detach().numpy(), rtol=1e-5, atol=5e-7,
                                   err_msg="%s after step %d" % (name, step))


def train_both(torch, bm, tm, bopt, topt, data=None, before_step=None):
    data = batches() if data is None else data
    for step, (x, y) in enumerate(data):
        if before_step:
            before_step(step)
        bopt.zero_grad()
        topt.zero_grad()
        lb = F.cross_entropy(bm(bcml.tensor(x)), bcml.tensor(y))
        lt = torch.nn.functional.cross_entropy(tm(torch.tensor(x)), torch.tensor(y))
        np.testing.assert_allclose(lb.item(), lt.item(), rtol=1e-5, err_msg="loss at step %d" % step)
        lb.backward()
        lt.backward()
        bopt.step()
        topt.step()
        assert_params_equal(bm, tm, step)


SGD_CONFIGS = [
    dict(lr=0.1),
    dict(lr=0.1, momentum=0.9),
    dict(lr=0.1, momentum=0.9, dampening=0.3),
    dict(lr=0.1, weight_decay=0.05),
    dict(lr=0.05, momentum=0.9, nesterov=True),
    dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01),
    dict(lr=0.1, momentum=0.5, dampening=0.2, weight_decay=0.1),
    dict(lr=0.1, momentum=0.9, maximize=True),
]


@pytest.mark.parametrize("cfg", SGD_CONFIGS, ids=lambda c: ",".join("%s=%s" % kv for kv in c.items()))
def test_sgd_matches_torch(torch, cfg):
    bm, tm = make_pair(torch)
    train_both(torch, bm, tm, bcml.optim.SGD(bm.parameters(), **cfg), torch.optim.SGD(tm.parameters(), **cfg))


ADAM_CONFIGS = [
    dict(lr=0.01),
    dict(lr=0.01, weight_decay=0.05),
    dict(lr=0.01, amsgrad=True),
    dict(lr=0.02, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.05, amsgrad=True),
    dict(lr=0.01, maximize=True),
]


@pytest.mark.parametrize("cfg", ADAM_CONFIGS, ids=lambda c: ",".join("%s=%s" % kv for kv in c.items()))
def test_adam_matches_torch(torch, cfg):
    bm, tm = make_pair(torch)
    train_both(torch, bm, tm, bcml.optim.Adam(bm.parameters(), **cfg), torch.optim.Adam(tm.parameters(), **cfg))


@pytest.mark.parametrize("cfg", [dict(betas=(0.9, 0.999)), dict(betas=(0.7, 0.95), amsgrad=True)])
def test_adam_update_rounding_matches_torch(torch, cfg):
    """Three steps with given gradients: Adam normalises the update, so each step moves every
    element by about lr whatever the gradient's size; an ulp of error in a coefficient such as
    1 - beta2 shows up directly (rtol 1e-6 of lr)."""
    rng = np.random.default_rng(7)
    p0 = rng.standard_normal(1000).astype(np.float32)
    pb = bcml.nn.Parameter(bcml.tensor(p0))
    pt = torch.nn.Parameter(torch.tensor(p0))
    bopt = bcml.optim.Adam([pb], lr=1.0, **cfg)
    topt = torch.optim.Adam([pt], lr=1.0, **cfg)
    for step in range(3):
        g = (rng.standard_normal(1000) * 10.0 ** rng.uniform(-3, 3, 1000)).astype(np.float32)
        pb.grad = bcml.tensor(g)
        pt.grad = torch.tensor(g)
        bopt.step()
        topt.step()
        np.testing.assert_allclose(pb.detach().numpy(), pt.detach().numpy(), rtol=0, atol=1e-6,
                                   err_msg="after step %d" % step)


@pytest.mark.parametrize("dampening", [0.0, 0.1, 0.3, 0.999])
def test_sgd_dampening_rounding_matches_torch(torch, dampening):
    rng = np.random.default_rng(8)
    p0 = rng.standard_normal(1000).astype(np.float32)
    pb = bcml.nn.Parameter(bcml.tensor(p0))
    pt = torch.nn.Parameter(torch.tensor(p0))
    bopt = bcml.optim.SGD([pb], lr=1.0, momentum=0.9, dampening=dampening)
    topt = torch.optim.SGD([pt], lr=1.0, momentum=0.9, dampening=dampening)
    for step in range(3):
        g = rng.standard_normal(1000).astype(np.float32)
        pb.grad = bcml.tensor(g)
        pt.grad = torch.tensor(g)
        bopt.step()
        topt.step()
        np.testing.assert_allclose(pb.detach().numpy(), pt.detach().numpy(), rtol=1e-6, atol=1e-6,
                                   err_msg="after step %d" % step)


@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_param_groups_and_lr_changes_match_torch(torch, kind):
    """Two groups with their own settings; the learning rate is changed between steps."""
    bm, tm = make_pair(torch, seed=3)

    def groups(m):
        return [{"params": list(m[0].parameters()), "lr": 0.05},
                {"params": list(m[2].parameters())}]

    if kind == "sgd":
        bopt = bcml.optim.SGD(groups(bm), lr=0.1, momentum=0.9)
        topt = torch.optim.SGD(groups(tm), lr=0.1, momentum=0.9)
    else:
        bopt = bcml.optim.Adam(groups(bm), lr=0.01, amsgrad=True)
        topt = torch.optim.Adam(groups(tm), lr=0.01, amsgrad=True)

    def change_lr(step):
        if step == 2:
            for o in (bopt, topt):
                o.param_groups[1]["lr"] *= 0.3

    train_both(torch, bm, tm, bopt, topt, before_step=change_lr)


@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_parameters_without_grad_are_skipped_as_torch(torch, kind):
    """A parameter that gets no gradient in a step is neither updated nor does its state advance."""
    bm, tm = make_pair(torch, seed=4)
    extra_b = bcml.nn.Parameter(bcml.tensor(np.ones(3, np.float32)))
    extra_t = torch.nn.Parameter(torch.ones(3))
    if kind == "sgd":
        bopt = bcml.optim.SGD(list(bm.parameters()) + [extra_b], lr=0.1, momentum=0.9, weight_decay=0.1)
        topt = torch.optim.SGD(list(tm.parameters()) + [extra_t], lr=0.1, momentum=0.9, weight_decay=0.1)
    else:
        bopt = bcml.optim.Adam(list(bm.parameters()) + [extra_b], lr=0.01, weight_decay=0.1)
        topt = torch.optim.Adam(list(tm.parameters()) + [extra_t], lr=0.01, weight_decay=0.1)
    train_both(torch, bm, tm, bopt, topt)
    np.testing.assert_array_equal(extra_b.detach().numpy(), np.ones(3, np.float32))
    np.testing.assert_array_equal(extra_t.detach().numpy(), np.ones(3, np.float32))


def test_zero_grad_sets_none():
    lin = bcml.nn.Linear(3, 2)
    opt = bcml.optim.SGD(lin.parameters(), lr=0.1)
    F.cross_entropy(lin(bcml.tensor(np.ones((2, 3), np.float32))), bcml.tensor(np.array([0, 1]))).backward()
    assert lin.weight.grad is not None and lin.bias.grad is not None
    opt.zero_grad()
    assert lin.weight.grad is None and lin.bias.grad is None


def test_steplr_matches_torch(torch):
    bm, tm = make_pair(torch, seed=5)
    bopt = bcml.optim.SGD(bm.parameters(), lr=0.2, momentum=0.5)
    topt = torch.optim.SGD(tm.parameters(), lr=0.2, momentum=0.5)
    bs = bcml.optim.lr_scheduler.StepLR(bopt, step_size=2, gamma=0.5)
    ts = torch.optim.lr_scheduler.StepLR(topt, step_size=2, gamma=0.5)
    for epoch in range(3):
        train_both(torch, bm, tm, bopt, topt, data=batches(seed=10 + epoch, n=2))
        bs.step()
        ts.step()
        np.testing.assert_allclose(bs.get_last_lr(), ts.get_last_lr(), rtol=1e-12)


def test_optimizer_bad_arguments():
    p = [bcml.nn.Parameter(bcml.tensor(np.ones(2, np.float32)))]
    with pytest.raises(ValueError, match=r"Invalid learning rate"):
        bcml.optim.SGD(p, lr=-0.1)
    with pytest.raises(ValueError, match=r"Invalid momentum"):
        bcml.optim.SGD(p, lr=0.1, momentum=-0.5)
    with pytest.raises(ValueError, match=r"Nesterov momentum requires a momentum and zero dampening"):
        bcml.optim.SGD(p, lr=0.1, momentum=0.9, dampening=0.1, nesterov=True)
    with pytest.raises(ValueError, match=r"Invalid beta parameters"):
        bcml.optim.Adam(p, betas=(0.9, 1.0))
    with pytest.raises(ValueError, match=r"Invalid weight_decay"):
        bcml.optim.Adam(p, weight_decay=-1)
    with pytest.raises(ValueError, match=r"empty parameter list"):
        bcml.optim.Adam([])
