"""bcml.vision (issue 11, item 2): transforms against torchvision's documented arithmetic written in
PyTorch (torchvision is not a test dependency), the data sets on Debian's Fashion-MNIST files in
torchvision's layout and in Debian's, small CIFAR-10 files the tests write (python and binary
versions), downloads from a loopback server, and resnet18 against a torchvision-layout ResNet-18
written here in plain PyTorch, loaded through a torch.save checkpoint."""
import gzip
import hashlib
import pickle
import struct

import numpy as np
import pytest

import bcml
import bcml.vision as torchvision
from bcml.utils.data import DataLoader, Subset
from conftest import FASHION_MNIST, need_path

T = torchvision.transforms


def test_import_forms():
    from bcml.vision import datasets, models, transforms
    assert transforms.Compose is torchvision.transforms.Compose
    assert datasets.MNIST is torchvision.datasets.MNIST and models.resnet18 is torchvision.models.resnet18


# ---- transforms ------------------------------------------------------------------------------------
def test_to_tensor_against_torch(torch):
    rng = np.random.default_rng(0)
    for shape in ((5, 7), (5, 7, 3)):
        a = rng.integers(0, 256, shape, dtype=np.uint8)
        t = torch.from_numpy(a if a.ndim == 3 else a[:, :, None]).permute(2, 0, 1).contiguous()
        want = t.to(torch.float32).div(255).numpy()        # torchvision's ToTensor on uint8
        got = T.ToTensor()(a)
        assert got.dtype == bcml.float32 and got.shape == want.shape
        np.testing.assert_array_equal(got.numpy(), want)
    f = rng.standard_normal((4, 4)).astype(np.float32)
    np.testing.assert_array_equal(T.ToTensor()(f).numpy(), f[None])     # not scaled
    with pytest.raises(ValueError, match="2/3 dimensional"):
        T.ToTensor()(np.zeros((1, 2, 3, 4), np.uint8))
    with pytest.raises(TypeError, match="should be PIL Image or ndarray"):
        T.ToTensor()([1, 2])


def test_to_tensor_of_pil_images():
    Image = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)
    got = T.ToTensor()(Image.fromarray(a, mode="RGB")).numpy()
    np.testing.assert_array_equal(got, a.transpose(2, 0, 1).astype(np.float32) / np.float32(255))
    g = rng.integers(0, 256, (6, 5), dtype=np.uint8)
    np.testing.assert_array_equal(T.ToTensor()(Image.fromarray(g, mode="L")).numpy(), g[None] / np.float32(255))


def test_normalize_against_torch(torch):
    rng = np.random.default_rng(2)
    x = rng.random((2, 3, 4, 5)).astype(np.float32)
    mean, std = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)
    want = torch.from_numpy(x).sub(torch.tensor(mean).view(-1, 1, 1)).div(torch.tensor(std).view(-1, 1, 1))
    np.testing.assert_array_equal(T.Normalize(mean, std)(bcml.from_numpy(x)).numpy(), want.numpy())
    np.testing.assert_array_equal(T.Normalize(mean, std)(bcml.from_numpy(x[0])).numpy(), want[0].numpy())
    one = T.Normalize((0.1307,), (0.3081,))(bcml.from_numpy(x[:, :1]))
    np.testing.assert_array_equal(one.numpy(), ((torch.from_numpy(x[:, :1]) - 0.1307) / 0.3081).numpy())
    t = bcml.from_numpy(x.copy())
    assert T.Normalize(mean, std, inplace=True)(t) is t
    np.testing.assert_array_equal(t.numpy(), want.numpy())
    with pytest.raises(ValueError, match="'std' evaluated to zero"):
        T.Normalize((0.5,), (0.0,))
    with pytest.raises(TypeError, match="tensor"):
        T.Normalize((0.5,), (0.5,))(x)
    with pytest.raises(TypeError, match="float tensor"):
        T.Normalize((0.5,), (0.5,))(bcml.zeros(1, 2, 2, dtype=bcml.int64))
    with pytest.raises(ValueError, match=r"\(\.\.\., C, H, W\)"):
        T.Normalize((0.5,), (0.5,))(bcml.zeros(2, 2))
    with pytest.raises(ValueError, match="mean"):
        T.Normalize((0.5, 0.5), (0.5,))(bcml.zeros(3, 2, 2))
    with pytest.raises(TypeError, match="mean"):
        T.Normalize("abc", (0.5,))


def test_compose_lambda_and_fast_batches():
    rng = np.random.default_rng(3)
    imgs = rng.integers(0, 256, (4, 6, 6, 3), dtype=np.uint8)
    c = T.Compose([T.ToTensor(), T.Normalize((0.1, 0.2, 0.3), (0.5, 0.6, 0.7))])
    batch = c._batch(imgs)
    for i in range(4):
        np.testing.assert_array_equal(batch[i], c(imgs[i]).numpy())
    assert T.Compose([T.ToTensor(), T.Lambda(lambda t: t)])._batch(imgs) is None   # not vectorisable
    assert T.Lambda(lambda v: v + 1)(1) == 2
    with pytest.raises(TypeError, match="lambd"):
        T.Lambda(3)
    with pytest.raises(TypeError, match="transforms"):
        T.Compose(T.ToTensor())


def _find_window(big, small):
    H, W = small.shape[-2:]
    return [(i, j) for i in range(big.shape[-2] - H + 1) for j in range(big.shape[-1] - W + 1)
            if np.array_equal(big[..., i:i + H, j:j + W], small)]


def test_random_crop_and_flip_are_seeded_windows():
    rng = np.random.default_rng(4)
    x = bcml.from_numpy(rng.random((3, 8, 8)).astype(np.float32))
    crop = T.RandomCrop(8, padding=2)
    bcml.manual_seed(0)
    a = [crop(x).numpy() for _ in range(6)]
    bcml.manual_seed(0)
    b = [crop(x).numpy() for _ in range(6)]
    padded = np.pad(x.numpy(), [(0, 0), (2, 2), (2, 2)])
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
        assert u.shape == (3, 8, 8) and _find_window(padded, u)
    assert len({_find_window(padded, u)[0] for u in a}) > 1   # the offset varies
    refl = T.RandomCrop((4, 6), padding=(1, 3), padding_mode="reflect")(x).numpy()
    assert _find_window(np.pad(x.numpy(), [(0, 0), (3, 3), (1, 1)], mode="reflect"), refl)
    np.testing.assert_array_equal(T.RandomHorizontalFlip(p=1.0)(x).numpy(), x.numpy()[..., ::-1])
    np.testing.assert_array_equal(T.RandomHorizontalFlip(p=0.0)(x).numpy(), x.numpy())
    bcml.manual_seed(1)
    flips = [np.array_equal(T.RandomHorizontalFlip()(x).numpy(), x.numpy()[..., ::-1]) for _ in range(40)]
    assert 5 < sum(flips) < 35
    with pytest.raises(ValueError, match="larger than input image"):
        T.RandomCrop(9)(x)
    with pytest.raises(ValueError, match="padding_mode"):
        T.RandomCrop(4, padding_mode="wrap")
    with pytest.raises(ValueError, match="'p'"):
        T.RandomHorizontalFlip(1.5)


def test_pil_crop_flip_resize():
    Image = pytest.importorskip("PIL.Image")
    a = np.random.default_rng(5).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    img = Image.fromarray(a, mode="RGB")
    bcml.manual_seed(2)
    out = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip()])(img)
    assert isinstance(out, Image.Image) and out.size == (32, 32) and out.mode == "RGB"
    o = np.asarray(out)
    padded = np.pad(a, [(4, 4), (4, 4), (0, 0)]).transpose(2, 0, 1)
    assert _find_window(padded, o.transpose(2, 0, 1)) or _find_window(padded, o[:, ::-1].transpose(2, 0, 1))
    r = T.Resize(16)(Image.fromarray(a[:, :24], mode="RGB"))
    assert r.size == (16, 21)   # shorter side 16, aspect kept (int(16 * 32 / 24))
    np.testing.assert_array_equal(np.asarray(T.Resize((8, 8))(img)), np.asarray(img.resize((8, 8), 2)))
    with pytest.raises(TypeError, match="PIL"):
        T.Resize(8)(bcml.zeros(3, 4, 4))


# ---- data sets -------------------------------------------------------------------------------------
def _fashion():
    return need_path(FASHION_MNIST)


def _torchvision_layout(tmp_path, name="FashionMNIST"):
    raw = tmp_path / "root" / name / "raw"
    raw.mkdir(parents=True)
    for f in _fashion().iterdir():
        (raw / f.name).symlink_to(f)
    return tmp_path / "root"


def test_fashion_mnist_in_both_layouts(tmp_path):
    from bcml.datasets import load_fashion_mnist
    ref = load_fashion_mnist(_fashion(), normalize=False)
    for root, download in ((_torchvision_layout(tmp_path), False), (_fashion(), True)):
        for train in (True, False):
            ds = torchvision.datasets.FashionMNIST(str(root), train=train, download=download)
            X, y = (ref.X_train, ref.y_train) if train else (ref.X_test, ref.y_test)
            assert len(ds) == len(y) and ds.data.dtype == np.uint8 and ds.data.shape == (len(y), 28, 28)
            np.testing.assert_array_equal(ds.data, X[:, 0])
            np.testing.assert_array_equal(ds.targets.numpy(), y)
            img, target = ds[123]
            assert isinstance(target, int) and target == y[123]
            np.testing.assert_array_equal(np.asarray(img), X[123, 0])
    assert ds.classes[0] == "T-shirt/top" and ds.class_to_idx["Ankle boot"] == 9


def test_download_looks_in_root_first(tmp_path, monkeypatch):
    from bcml.datasets import _fetch
    monkeypatch.setattr(_fetch, "fetch", lambda *a, **k: pytest.fail("download attempted"))
    ds = torchvision.datasets.FashionMNIST(str(_torchvision_layout(tmp_path)), train=False, download=True)
    assert len(ds) == 10000


def test_missing_files_raise_torchvisions_error(tmp_path):
    from bcml.datasets import DatasetNotFoundError
    for cls in (torchvision.datasets.MNIST, torchvision.datasets.CIFAR10):
        with pytest.raises(RuntimeError, match="Dataset not found. You can use download=True to download it") as e:
            cls(str(tmp_path))
        assert isinstance(e.value, DatasetNotFoundError) and isinstance(e.value, FileNotFoundError)
    with pytest.raises(TypeError, match="root"):
        torchvision.datasets.MNIST(3)
    with pytest.raises(TypeError, match="transform"):
        torchvision.datasets.MNIST(str(tmp_path), transform=3)


def _idx_files(folder, n=7, seed=0, gz=True):
    rng = np.random.default_rng(seed)
    out = {}
    for prefix in ("train", "t10k"):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n).astype(np.uint8)
        for name, data in ((prefix + "-images-idx3-ubyte", struct.pack(">IIII", 0x803, n, 28, 28) + images.tobytes()),
                           (prefix + "-labels-idx1-ubyte", struct.pack(">II", 0x801, n) + labels.tobytes())):
            blob = gzip.compress(data) if gz else data
            (folder / (name + (".gz" if gz else ""))).write_bytes(blob)
            out[name] = blob
        out[prefix] = (images, labels)
    return out


def test_mnist_download_into_torchvisions_layout(tmp_path, server, monkeypatch):
    from bcml.datasets import _images
    url, www, hits = server
    files = _idx_files(www)
    monkeypatch.setitem(_images.IMAGE_URLS, "mnist", {n + ".gz": "%s/%s.gz" % (url, n) for n in _images.IDX_FILES})
    monkeypatch.setitem(_images.IMAGE_MD5, "mnist", {n + ".gz": hashlib.md5(files[n]).hexdigest()
                                                     for n in _images.IDX_FILES})
    root = tmp_path / "data"
    ds = torchvision.datasets.MNIST(str(root), train=True, download=True)
    assert sorted(p.name for p in (root / "MNIST" / "raw").iterdir()) == sorted(n + ".gz" for n in _images.IDX_FILES)
    np.testing.assert_array_equal(ds.data, files["train"][0])
    np.testing.assert_array_equal(ds.targets.numpy(), files["train"][1])
    assert len(hits) == 4
    torchvision.datasets.MNIST(str(root), train=False, download=True)   # found now: no second download
    assert len(hits) == 4


def test_fast_path_equals_per_item_on_fashion_mnist(tmp_path):
    tf = T.Compose([T.ToTensor(), T.Normalize((0.1307,), (0.3081,))])
    ds = torchvision.datasets.FashionMNIST(str(_fashion()), train=False, transform=tf)
    slow_tf = T.Compose([T.ToTensor(), T.Lambda(lambda t: t), T.Normalize((0.1307,), (0.3081,))])
    slow = torchvision.datasets.FashionMNIST(str(_fashion()), train=False, transform=slow_tf)
    assert ds._bcml_arrays(np.arange(2)) is not None and slow._bcml_arrays(np.arange(2)) is None
    idx = list(range(0, 10000, 37))
    for bs, shuffle in ((16, True), (1, False)):
        bcml.manual_seed(5)
        a = list(DataLoader(Subset(ds, idx), batch_size=bs, shuffle=shuffle))
        bcml.manual_seed(5)
        b = list(DataLoader(Subset(slow, idx), batch_size=bs, shuffle=shuffle))
        assert len(a) == len(b)
        for (ax, ay), (bx, by) in zip(a, b):
            assert ax.shape == bx.shape and ax.shape[1:] == (1, 28, 28)
            np.testing.assert_array_equal(ax.numpy(), bx.numpy())
            np.testing.assert_array_equal(ay.numpy(), by.numpy())


def _cifar_records(n, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 3072), dtype=np.uint8), [int(v) for v in rng.integers(0, 10, n)]


def test_cifar10_python_version_read_safely(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    parts = {}
    for k, name in enumerate(["data_batch_%d" % i for i in range(1, 6)] + ["test_batch"]):
        data, labels = _cifar_records(3, k)
        parts[name] = (data, labels)
        # as the original files hold them: bytes keys, pickled at protocol 2
        with open(folder / name, "wb") as f:
            pickle.dump({b"batch_label": b"batch", b"labels": labels, b"data": data,
                         b"filenames": [b"x.png"] * 3}, f, protocol=2)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [("c%d" % i).encode() for i in range(10)], b"num_vis": 3072}, f, protocol=2)
    ds = torchvision.datasets.CIFAR10(str(tmp_path), train=True)
    want = np.concatenate([parts["data_batch_%d" % i][0] for i in range(1, 6)]).reshape(-1, 3, 32, 32)
    assert ds.data.shape == (15, 32, 32, 3) and ds.data.dtype == np.uint8
    np.testing.assert_array_equal(ds.data, want.transpose(0, 2, 3, 1))
    assert ds.targets == sum((parts["data_batch_%d" % i][1] for i in range(1, 6)), [])
    assert ds.classes == ["c%d" % i for i in range(10)]
    test = torchvision.datasets.CIFAR10(str(tmp_path), train=False, transform=T.ToTensor())
    x, t = test[2]
    np.testing.assert_array_equal(x.numpy(), parts["test_batch"][0][2].reshape(3, 32, 32) / np.float32(255))
    assert t == parts["test_batch"][1][2]
    # a pickle naming any other global is refused, and nothing is called
    with open(folder / "data_batch_1", "wb") as f:
        f.write(b"\x80\x02cos\nsystem\nq\x00X\x04\x00\x00\x00trueq\x01\x85q\x02Rq\x03.")
    with pytest.raises(ValueError, match="os.system"):
        torchvision.datasets.CIFAR10(str(tmp_path))


def test_cifar10_binary_version(tmp_path):
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    parts = {}
    for k, name in enumerate(["data_batch_%d.bin" % i for i in range(1, 6)] + ["test_batch.bin"]):
        data, labels = _cifar_records(2, 10 + k)
        parts[name] = (data, labels)
        (folder / name).write_bytes(b"".join(bytes([lab]) + row.tobytes() for row, lab in zip(data, labels)))
    ds = torchvision.datasets.CIFAR10(str(tmp_path), train=False)
    np.testing.assert_array_equal(ds.data, parts["test_batch.bin"][0].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    assert ds.targets == parts["test_batch.bin"][1] and ds.classes[0] == "airplane"
    tf = T.Compose([T.ToTensor(), T.Normalize((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))])
    train = torchvision.datasets.CIFAR10(str(tmp_path), train=True, transform=tf)
    xb, yb = next(iter(DataLoader(train, batch_size=10)))
    assert xb.shape == (10, 3, 32, 32)
    for i in range(10):
        np.testing.assert_array_equal(xb.numpy()[i], train[i][0].numpy())


# ---- resnet18 --------------------------------------------------------------------------------------
def _torch_resnet18(torch, num_classes=1000):
    """torchvision's ResNet-18 layout and key names, written in plain PyTorch."""
    nn = torch.nn

    class Block(nn.Module):
        def __init__(self, inp, planes, stride=1):
            super().__init__()
            self.conv1 = nn.Conv2d(inp, planes, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.relu = nn.ReLU(inplace=True)
            self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.downsample = None
            if stride != 1 or inp != planes:
                self.downsample = nn.Sequential(nn.Conv2d(inp, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

        def forward(self, x):
            idt = x if self.downsample is None else self.downsample(x)
            return self.relu(self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x))))) + idt)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(64)
            self.relu = nn.ReLU(inplace=True)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
            self.layer1 = nn.Sequential(Block(64, 64), Block(64, 64))
            self.layer2 = nn.Sequential(Block(64, 128, 2), Block(128, 128))
            self.layer3 = nn.Sequential(Block(128, 256, 2), Block(256, 256))
            self.layer4 = nn.Sequential(Block(256, 512, 2), Block(512, 512))
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.fc = nn.Linear(512, num_classes)

        def forward(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.fc(torch.flatten(self.avgpool(x), 1))

    return Net()


def test_resnet18_loads_a_torchvision_checkpoint(torch, tmp_path):
    torch.manual_seed(0)
    ref = _torch_resnet18(torch)
    with torch.no_grad():   # non-trivial batch-norm statistics
        for m in ref.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    torch.save(ref.state_dict(), tmp_path / "resnet18.pth")
    model = torchvision.models.resnet18()
    assert sorted(model.state_dict()) == sorted(ref.state_dict())
    result = model.load_state_dict(bcml.load_torch_checkpoint(tmp_path / "resnet18.pth"), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    x = np.random.default_rng(0).standard_normal((2, 3, 64, 64)).astype(np.float32)
    ref.eval()
    model.eval()
    with torch.no_grad():
        want = ref(torch.from_numpy(x)).numpy()
    with bcml.no_grad():
        got = model(bcml.from_numpy(x))
    assert got.shape == (2, 1000)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-4, atol=1e-4)
    # training mode: batch statistics, and the running statistics move as PyTorch's
    ref.train()
    model.train()
    with torch.no_grad():
        want = ref(torch.from_numpy(x)).numpy()
    with bcml.no_grad():
        got = model(bcml.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(model.state_dict()["layer2.0.bn1.running_mean"].numpy(),
                               ref.state_dict()["layer2.0.bn1.running_mean"].numpy(), rtol=1e-4, atol=1e-5)
    # a new 10-class head, as BCML's pretrained notebook does
    model.fc = bcml.nn.Linear(512, 10)
    model.eval()
    with bcml.no_grad():
        assert model(bcml.from_numpy(x)).shape == (2, 10)


def test_resnet18_arguments():
    assert torchvision.models.resnet18(num_classes=10).fc.out_features == 10
    with pytest.raises(ValueError, match="cannot download weights"):
        torchvision.models.resnet18(weights="IMAGENET1K_V1")
    with pytest.raises(ValueError, match="pretrained"):
        torchvision.models.resnet18(pretrained=True)
    with pytest.raises(TypeError, match="unexpected keyword"):
        torchvision.models.resnet18(colour=3)
    assert torchvision.models.resnet18(pretrained=False).fc.out_features == 1000
