"""Optimizer.state_dict() / load_state_dict() (issue 9): torch.optim's structure and key names,
saved and loaded with bcml.save / bcml.load, and a checkpointed run resumed bit for bit."""
import json

import numpy as np
import pytest

import bcml
import bcml.nn.functional as F
from bcml.models import MLPClassifier

from conftest import need
from test_optim import batches, make_pair


def _step(model, opt, x, y):
    opt.zero_grad()
    F.cross_entropy(model(bcml.tensor(x))[0] if isinstance(model, MLPClassifier) else model(bcml.tensor(x)),
                    bcml.tensor(y)).backward()
    opt.step()


CONFIGS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.1, amsgrad=True)),
]


@pytest.mark.parametrize("name,cfg", CONFIGS)
def test_state_dict_has_torch_optims_structure(torch, name, cfg):
    bm, tm = make_pair(torch)
    extra_b = bcml.nn.Parameter(bcml.zeros(2))  # never gets a gradient: no state, as in PyTorch
    extra_t = torch.nn.Parameter(torch.zeros(2))
    bopt = getattr(bcml.optim, name)([{"params": list(bm.parameters())[:2]},
                                      {"params": list(bm.parameters())[2:] + [extra_b], "lr": 0.02}], **cfg)
    topt = getattr(torch.optim, name)([{"params": list(tm.parameters())[:2]},
                                       {"params": list(tm.parameters())[2:] + [extra_t], "lr": 0.02}], **cfg)
    for x, y in batches(n=3):
        for model, opt, lib in ((bm, bopt, bcml), (tm, topt, torch)):
            opt.zero_grad()
            (F if lib is bcml else torch.nn.functional).cross_entropy(model(lib.tensor(x)), lib.tensor(y)).backward()
            opt.step()
    ours, theirs = bopt.state_dict(), topt.state_dict()
    assert set(ours) == set(theirs) == {"state", "param_groups"}
    assert [g["params"] for g in ours["param_groups"]] == [g["params"] for g in theirs["param_groups"]] == [[0, 1], [2, 3, 4]]
    for og, tg in zip(ours["param_groups"], theirs["param_groups"]):
        shared = set(og) & set(tg)
        assert {"lr", "weight_decay", "maximize", "params"} <= shared
        assert set(og) - {"params"} == set(cfg) | set(bcml.optim.__dict__[name]([bcml.zeros(1)]).defaults)
        for k in shared:
            assert (list(og[k]) if isinstance(og[k], tuple) else og[k]) == \
                (list(tg[k]) if isinstance(tg[k], tuple) else tg[k]), k
    assert sorted(ours["state"]) == sorted(theirs["state"])
    assert 4 not in ours["state"]
    for i, ts in theirs["state"].items():
        os_ = ours["state"][i]
        assert list(os_) == list(ts), (i, list(os_), list(ts))
        for k, tv in ts.items():
            ov = os_[k]
            assert tuple(ov.shape) == tuple(tv.shape), (i, k)
            if k == "step":
                assert ov.dtype == bcml.int64 and ov.item() == int(tv.item()) == 3
            else:
                np.testing.assert_allclose(ov.numpy(), tv.numpy(), rtol=1e-4, atol=1e-6, err_msg="%d %s" % (i, k))


def _make(name, cfg, seed=0):
    bcml.manual_seed(seed)
    m = MLPClassifier(4, 3, [8, 5])
    return m, getattr(bcml.optim, name)(m.parameters(), **cfg)


@pytest.mark.parametrize("name,cfg", [
    ("SGD", dict(lr=0.1, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, amsgrad=True, weight_decay=0.05)),
])
def test_checkpoint_and_resume_is_bitwise_equal_to_an_uninterrupted_run(tmp_path, name, cfg):
    N, M = 4, 5
    data = batches(seed=7, n=N + M)
    ref, ref_opt = _make(name, cfg)
    for x, y in data:
        _step(ref, ref_opt, x, y)

    run, opt = _make(name, cfg)
    for x, y in data[:N]:
        _step(run, opt, x, y)
    bcml.save(run, tmp_path / "model.safetensors")
    bcml.save(opt.state_dict(), tmp_path / "optim.safetensors")
    del run, opt

    # a fresh process would build the model and optimizer from scratch, with other initial weights
    # and even other settings: everything comes back from the files
    fresh, fresh_opt = _make(name, dict(cfg, lr=0.5), seed=99)
    fresh.load_state_dict(bcml.load(tmp_path / "model.safetensors"))
    fresh_opt.load_state_dict(bcml.load(tmp_path / "optim.safetensors"))
    assert fresh_opt.param_groups[0]["lr"] == cfg["lr"]
    for x, y in data[N:]:
        _step(fresh, fresh_opt, x, y)
    for (k, a), (_, b) in zip(ref.state_dict().items(), fresh.state_dict().items()):
        assert np.array_equal(a.numpy(), b.numpy()), k  # bit for bit
    for i, s in ref_opt.state_dict()["state"].items():
        for k, v in s.items():
            assert np.array_equal(v.numpy(), fresh_opt.state_dict()["state"][i][k].numpy()), (i, k)


def test_saved_layout_and_the_safetensors_package(tmp_path):
    need("safetensors")
    from safetensors import safe_open
    m, opt = _make("Adam", dict(lr=0.01, amsgrad=True))
    for x, y in batches(n=2):
        _step(m, opt, x, y)
    p = tmp_path / "o.safetensors"
    bcml.save(opt, p, metadata={"epoch": "2"})  # the optimizer itself, like a Module
    with safe_open(str(p), framework="numpy") as f:
        keys, meta = sorted(f.keys()), f.metadata()
        step = f.get_tensor("state.0.step")
    assert keys == sorted("state.%d.%s" % (i, k) for i in range(6)
                          for k in ("step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"))
    assert step.shape == () and step.dtype == np.int64 and int(step) == 2
    assert meta["bcml_type"] == "optimizer_state_dict" and meta["epoch"] == "2"
    groups = json.loads(meta["param_groups"])
    assert groups == [{"lr": 0.01, "betas": [0.9, 0.999], "eps": 1e-08, "weight_decay": 0, "amsgrad": True,
                       "maximize": False, "params": [0, 1, 2, 3, 4, 5]}]
    sd, meta2 = bcml.load(p, return_metadata=True)
    assert meta2 == meta
    assert sorted(sd["state"]) == list(range(6)) and sd["param_groups"] == groups
    want = opt.state_dict()["state"]
    for i in range(6):
        for k in want[i]:
            assert np.array_equal(sd["state"][i][k].numpy(), want[i][k].numpy())
    # a plain dict of tensors named like this, without bcml_type, stays a plain dict
    bcml.save({"state.0.step": bcml.tensor(1)}, tmp_path / "plain.st")
    assert list(bcml.load(tmp_path / "plain.st")) == ["state.0.step"]


def test_pytorch_optimizer_state_loads_and_continues_like_pytorch(torch):
    bm, tm = make_pair(torch)
    topt = torch.optim.Adam(tm.parameters(), lr=0.01, amsgrad=True)
    data = batches(n=6)
    for x, y in data[:3]:
        topt.zero_grad()
        torch.nn.functional.cross_entropy(tm(torch.tensor(x)), torch.tensor(y)).backward()
        topt.step()
    bm.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    bopt = bcml.optim.Adam(bm.parameters())
    bopt.load_state_dict(topt.state_dict())  # torch tensors, float32 steps, torch-only settings
    assert bopt.param_groups[0]["amsgrad"] is True and bopt.param_groups[0]["lr"] == 0.01
    assert "foreach" not in bopt.param_groups[0]
    for x, y in data[3:]:
        topt.zero_grad()
        torch.nn.functional.cross_entropy(tm(torch.tensor(x)), torch.tensor(y)).backward()
        topt.step()
        _step(bm, bopt, x, y)
    for (k, a), (_, b) in zip(bm.state_dict().items(), tm.state_dict().items()):
        np.testing.assert_allclose(a.numpy(), b.detach().numpy(), rtol=1e-5, atol=1e-6, err_msg=k)


def test_load_state_dict_checks_like_pytorch():
    m, opt = _make("Adam", dict(lr=0.01, amsgrad=True))
    _step(m, opt, *batches(n=1)[0])
    good = opt.state_dict()
    before = {i: {k: v.numpy().copy() for k, v in s.items()} for i, s in good["state"].items()}

    def bad(fix, exc, match):
        sd = {"state": {i: dict(s) for i, s in good["state"].items()},
              "param_groups": [dict(g) for g in good["param_groups"]]}
        fix(sd)
        with pytest.raises(exc, match=match):
            opt.load_state_dict(sd)
        after = opt.state_dict()["state"]  # nothing changed
        assert all(np.array_equal(after[i][k].numpy(), v) for i, s in before.items() for k, v in s.items())
        assert opt.param_groups[0]["lr"] == 0.01

    bad(lambda sd: sd["param_groups"].append(dict(sd["param_groups"][0], params=[])), ValueError,
        "different number of parameter groups")
    bad(lambda sd: sd["param_groups"][0].update(params=[0, 1, 2]), ValueError,
        "loaded state dict contains a parameter group that doesn't match the size of optimizer's group")
    bad(lambda sd: sd["state"][1].update(exp_avg=bcml.zeros(3, 3)), ValueError,
        r"'exp_avg' of parameter 1 has shape \(3, 3\), but the parameter has shape \(8,\)")
    bad(lambda sd: sd["state"][2].pop("max_exp_avg_sq"), ValueError, "parameter 2 lacks 'max_exp_avg_sq'")
    bad(lambda sd: sd["state"][0].update(momentum_buffer=bcml.zeros(8, 4)), ValueError,
        "momentum_buffer.*Adam does not use")
    bad(lambda sd: sd["state"][0].update(step=bcml.tensor(2.5)), ValueError, "'step' of parameter 0 must be a non-negative integer")
    bad(lambda sd: sd["state"][0].update(step=-1), ValueError, "non-negative integer")
    bad(lambda sd: sd["state"].update({9: {}}), ValueError, "parameter 9, which no parameter group lists")
    bad(lambda sd: sd["state"][0].update(exp_avg=bcml.zeros(8, 4).long()), TypeError, "floating")
    bad(lambda sd: sd["state"][0].update(exp_avg=[[0.0] * 4] * 8), TypeError, "must be a tensor")
    bad(lambda sd: sd["param_groups"][0].update(lr="fast"), ValueError, r"param_groups\[0\]\['lr'\]")
    bad(lambda sd: sd["param_groups"][0].update(betas=(0.9,)), ValueError, "betas")
    bad(lambda sd: sd["param_groups"][0].update(params=[0, 0, 1, 2, 3, 4]), ValueError, "distinct")
    for wrong in (None, [], {"state": {}}):
        with pytest.raises(TypeError, match="state_dict"):
            opt.load_state_dict(wrong)


def test_sgd_state_after_load_is_a_copy():
    m, opt = _make("SGD", dict(lr=0.1, momentum=0.9))
    _step(m, opt, *batches(n=1)[0])
    sd = opt.state_dict()
    m2, opt2 = _make("SGD", dict(lr=0.1, momentum=0.9))
    opt2.load_state_dict(sd)
    b1 = sd["state"][0]["momentum_buffer"]
    b2 = opt2.state_dict()["state"][0]["momentum_buffer"]
    assert np.array_equal(b1.numpy(), b2.numpy()) and not np.shares_memory(b1.numpy(), b2.numpy())
    empty = bcml.optim.SGD(MLPClassifier(4, 3, [8, 5]).parameters(), lr=0.1).state_dict()
    assert empty["state"] == {}  # no momentum: no state, as torch.optim.SGD
