"""bcml.nn.Module machinery, layers' initialisation, and the example models."""
import math

import numpy as np
import pytest

import bcml
import bcml.nn as nn
from bcml.models import LogisticRegression, MLPClassifier


def test_module_registration_and_names():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(4, 3)
            self.block = nn.Sequential(nn.ReLU(), nn.Linear(3, 2, bias=False))
            self.bn = nn.BatchNorm1d(2)
            self.scale = 2.0

        def forward(self, x):
            return self.bn(self.block(self.fc1(x))) * self.scale

    net = Net()
    names = [n for n, _ in net.named_parameters()]
    assert names == ["fc1.weight", "fc1.bias", "block.1.weight", "bn.weight", "bn.bias"]
    assert list(net.state_dict()) == ["fc1.weight", "fc1.bias", "block.1.weight", "bn.weight", "bn.bias",
                                      "bn.running_mean", "bn.running_var", "bn.num_batches_tracked"]
    assert [type(c).__name__ for c in net.children()] == ["Linear", "Sequential", "BatchNorm1d"]
    assert len(list(net.modules())) == 6
    net.eval()
    assert not net.training and not net.block[1].training
    net.train()
    assert net.bn.training
    assert "Linear(in_features=4, out_features=3, bias=True)" in repr(net)


def test_load_state_dict_checks_keys_and_shapes():
    m = LogisticRegression(3, 2)
    sd = m.state_dict()
    with pytest.raises(ValueError, match="missing"):
        m.load_state_dict({"linear.weight": sd["linear.weight"]})
    bad = dict(sd)
    bad["linear.weight"] = bcml.zeros(2, 4)
    with pytest.raises(ValueError, match="size mismatch"):
        m.load_state_dict(bad)
    res = m.load_state_dict({"linear.weight": np.ones((2, 3), np.float32)}, strict=False)
    assert res.missing_keys == ["linear.bias"]
    assert m.linear.weight.detach().numpy().sum() == 6.0


def test_state_dict_values_are_views_of_parameters():
    m = LogisticRegression(3, 2)
    sd = m.state_dict()
    assert sd["linear.weight"]._data_ptr == m.linear.weight._data_ptr
    assert not sd["linear.weight"].requires_grad


def test_linear_init_follows_pytorch_distribution():
    bcml.manual_seed(0)
    fan_in = 400
    lin = nn.Linear(fan_in, 300)
    w = lin.weight.detach().numpy().astype(np.float64)
    b = lin.bias.detach().numpy()
    bound = 1 / math.sqrt(fan_in)
    assert np.abs(w).max() <= bound and np.abs(b).max() <= bound
    # uniform(-bound, bound): variance bound^2 / 3
    assert abs(w.var() - bound ** 2 / 3) < 0.02 * bound ** 2
    bcml.manual_seed(0)
    np.testing.assert_array_equal(nn.Linear(fan_in, 300).weight.detach().numpy(), w.astype(np.float32))


def test_models_return_the_triple():
    x = bcml.randn(5, 6)
    for m in (LogisticRegression(6, 3), MLPClassifier(6, 3), MLPClassifier(6, 3, hidden_sizes=[7])):
        logits, probs, logp = m(x)
        assert logits.shape == probs.shape == logp.shape == (5, 3)
        np.testing.assert_allclose(probs.detach().numpy().sum(1), 1, rtol=1e-5)
        np.testing.assert_allclose(np.exp(logp.detach().numpy()), probs.detach().numpy(), rtol=1e-5, atol=1e-7)
    assert [n for n, _ in MLPClassifier(6, 3).named_parameters()] == [
        "layers.0.weight", "layers.0.bias", "layers.2.weight", "layers.2.bias", "layers.4.weight", "layers.4.bias"]
    p = LogisticRegression(6, 1)(x)
    assert p.shape == (5, 1) and (p.detach().numpy() > 0).all()


def test_modules_against_pytorch(torch):
    bcml.manual_seed(0)
    m = MLPClassifier(6, 3, [5, 4])
    tm = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 4), torch.nn.ReLU(),
                             torch.nn.Linear(4, 3))
    tm.load_state_dict({k[len("layers."):]: torch.from_numpy(v.numpy().copy()) for k, v in m.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((8, 6)).astype(np.float32)
    y = np.arange(8) % 3
    logits, _, logp = m(bcml.from_numpy(x))
    bcml.nn.functional.nll_loss(logp, bcml.from_numpy(y)).backward()
    tl = tm(torch.from_numpy(x))
    torch.nn.functional.cross_entropy(tl, torch.from_numpy(y)).backward()
    np.testing.assert_allclose(logits.detach().numpy(), tl.detach().numpy(), rtol=1e-5, atol=1e-6)
    for (k, p), tp in zip(m.named_parameters(), tm.parameters()):
        np.testing.assert_allclose(p.grad.numpy(), tp.grad.numpy(), rtol=1e-4, atol=1e-6, err_msg=k)


def test_bad_layer_arguments():
    with pytest.raises(ValueError, match="in_features"):
        nn.Linear(-1, 3)
    with pytest.raises(ValueError, match="dropout probability"):
        nn.Dropout(1.5)
    with pytest.raises(TypeError, match="Module"):
        nn.Sequential(nn.ReLU(), 3)
    with pytest.raises(ValueError, match="input"):
        nn.Linear(3, 2)(bcml.randn(4, 5))
    with pytest.raises(TypeError, match="input"):
        nn.Linear(3, 2)(np.zeros((4, 3), np.float32))
