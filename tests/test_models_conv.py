"""The convolutional example models against PyTorch with the same weights, and the MNIST
ConvNet trained on Fashion-MNIST against PyTorch trained the same way (issue 3)."""
import numpy as np
import pytest

import bcml
import bcml.nn.functional as F
from bcml.models import ConvNet, ResNet18, SixLayerNet

from conftest import FASHION_MNIST, need_path


def _copy_to_torch(model, tmodel, torch):
    sd = {k: torch.from_numpy(v.numpy().copy()) for k, v in model.state_dict().items()}
    tmodel.load_state_dict(sd)


def _bench_train():
    import importlib.util
    import os
    spec = importlib.util.spec_from_file_location(
        "bench_train", os.path.join(os.path.dirname(__file__), "..", "benchmarks", "bench_train.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _torch_convnet(torch):
    return _bench_train()._torch_convnet_class(torch.nn, torch.nn.functional)()


def _torch_sixlayer(torch):
    nn, TF = torch.nn, torch.nn.functional

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 18, 3, 1, 1)
            self.fc1 = nn.Linear(18 * 32 * 32, 192)
            self.fc2 = nn.Linear(192, 192)
            self.fc3 = nn.Linear(192, 192)
            self.fc4 = nn.Linear(192, 192)
            self.fc5 = nn.Linear(192, 10)

        def forward(self, x):
            x = TF.relu(self.conv1(x)).view(-1, 18 * 32 * 32)
            for fc in (self.fc1, self.fc2, self.fc3, self.fc4):
                x = TF.relu(fc(x))
            x = self.fc5(x)
            return x, TF.softmax(x, dim=1), TF.log_softmax(x, dim=1)
    return Net()


def _compare_triple(ours, theirs, rtol=1e-4, atol=1e-5):
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=rtol, atol=atol)


def test_convnet_and_sixlayer_match_pytorch_eval_and_grads(torch):
    rng = np.random.default_rng(0)
    for make, tmake, shape in ((ConvNet, _torch_convnet, (4, 1, 28, 28)), (SixLayerNet, _torch_sixlayer, (3, 3, 32, 32))):
        bcml.manual_seed(0)
        m, tm = make(), tmake(torch)
        _copy_to_torch(m, tm, torch)
        m.eval()
        tm.eval()
        x = rng.standard_normal(shape).astype(np.float32)
        y = rng.integers(0, 10, shape[0])
        out, tout = m(bcml.from_numpy(x)), tm(torch.from_numpy(x))
        _compare_triple(out, tout)
        F.nll_loss(out[2], bcml.from_numpy(y)).backward()
        torch.nn.functional.nll_loss(tout[2], torch.from_numpy(y)).backward()
        for (k, p), tp in zip(m.named_parameters(), tm.parameters()):
            np.testing.assert_allclose(p.grad.numpy(), tp.grad.numpy(), rtol=1e-3, atol=1e-5, err_msg=k)


def _torch_resnet18(torch):
    return _bench_train()._torch_resnet18(torch.nn)


def test_resnet18_matches_pytorch_with_the_same_weights(torch):
    bcml.manual_seed(0)
    m = ResNet18(num_classes=10)
    tm = _torch_resnet18(torch)
    assert list(m.state_dict()) == list(tm.state_dict())
    _copy_to_torch(m, tm, torch)
    x = np.random.default_rng(1).standard_normal((2, 3, 32, 32)).astype(np.float32)
    m.eval()
    tm.eval()
    with bcml.no_grad():
        ours = m(bcml.from_numpy(x))[0].numpy()
    np.testing.assert_allclose(ours, tm(torch.from_numpy(x)).detach().numpy(), rtol=1e-3, atol=1e-4)
    # training mode: batch statistics, running statistics updated the same way (8 images: the
    # 1x1 maps of layer4 are normalised over the batch, which amplifies rounding for tiny batches)
    m.train()
    tm.train()
    x = np.random.default_rng(2).standard_normal((8, 3, 32, 32)).astype(np.float32)
    out = m(bcml.from_numpy(x))[0]
    tout = tm(torch.from_numpy(x))
    np.testing.assert_allclose(out.detach().numpy(), tout.detach().numpy(), rtol=1e-3, atol=2e-3)
    np.testing.assert_allclose(m.bn1.running_mean.numpy(), tm.bn1.running_mean.numpy(), rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_convnet_fashion_mnist_two_epochs_close_to_pytorch(torch):
    need_path(FASHION_MNIST)
    from bcml.datasets import load_fashion_mnist
    ds = load_fashion_mnist()
    torch.set_num_threads(2)

    def run(lib):
        B = bcml if lib == "bcml" else torch
        Fn = F if lib == "bcml" else torch.nn.functional
        B.manual_seed(0)
        model = ConvNet() if lib == "bcml" else _torch_convnet(torch)
        opt = B.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        X, y = B.from_numpy(ds.X_train), B.from_numpy(ds.y_train)
        rng = np.random.default_rng(0)
        for _ in range(2):
            model.train()
            order = B.from_numpy(rng.permutation(len(ds.y_train)))
            for i in range(0, len(ds.y_train), 64):
                idx = order[i:i + 64]
                opt.zero_grad()
                Fn.nll_loss(model(X[idx])[2], y[idx]).backward()
                opt.step()
        model.eval()
        with B.no_grad():
            pred = model(B.from_numpy(ds.X_test))[1].argmax(1).numpy()
        return float(np.mean(pred == ds.y_test))

    acc_b, acc_t = run("bcml"), run("torch")
    assert acc_b > 0.70, acc_b
    assert abs(acc_b - acc_t) <= 0.02, (acc_b, acc_t)
