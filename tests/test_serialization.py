"""bcml.save / bcml.load: safetensors files, both ways against the safetensors package."""
import numpy as np
import pytest

import bcml
from bcml.models import MLPClassifier

from conftest import need


def test_roundtrip_module_state(tmp_path):
    bcml.manual_seed(0)
    m = MLPClassifier(7, 3, [5, 4])
    path = tmp_path / "m.safetensors"
    bcml.save(m.state_dict(), path)
    m2 = MLPClassifier(7, 3, [5, 4])
    m2.load_state_dict(bcml.load(path))
    for (k1, a), (k2, b) in zip(m.state_dict().items(), m2.state_dict().items()):
        assert k1 == k2
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_roundtrip_single_tensor_and_dtypes(tmp_path):
    t = bcml.arange(10).view(2, 5)
    bcml.save(t, tmp_path / "t.st")
    u = bcml.load(tmp_path / "t.st")
    assert u.dtype == bcml.int64 and u.tolist() == t.tolist()
    d = {"f": bcml.randn(3), "b": bcml.tensor([True, False])}
    bcml.save(d, tmp_path / "d.st")
    e = bcml.load(tmp_path / "d.st")
    assert e["b"].dtype == bcml.bool and e["b"].tolist() == [True, False]


def test_safetensors_package_reads_and_writes_our_format(tmp_path):
    st = need("safetensors")
    from safetensors.numpy import load_file, save_file
    bcml.manual_seed(1)
    m = MLPClassifier(4, 2, [3])
    bcml.save(m, tmp_path / "ours.safetensors")
    theirs = load_file(str(tmp_path / "ours.safetensors"))
    assert set(theirs) == set(m.state_dict())
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(theirs[k], v.numpy())
    arrays = {"layers.0.weight": np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32),
              "x": np.arange(4, dtype=np.int64)}
    save_file(arrays, str(tmp_path / "theirs.safetensors"))
    ours = bcml.load(tmp_path / "theirs.safetensors")
    for k, v in arrays.items():
        np.testing.assert_array_equal(ours[k].numpy(), v)
    assert st is not None


def test_pytorch_state_dict_maps_one_to_one(tmp_path, torch):
    need("safetensors")
    from safetensors.torch import load_file, save_file
    tm = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    save_file({"layers." + k: v.contiguous() for k, v in tm.state_dict().items()}, str(tmp_path / "t.st"))
    m = MLPClassifier(4, 2, [3])
    m.load_state_dict(bcml.load(tmp_path / "t.st"))
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    with bcml.no_grad():
        ours = m(bcml.from_numpy(x))[0].numpy()
    np.testing.assert_allclose(ours, tm(torch.from_numpy(x)).detach().numpy(), rtol=1e-5, atol=1e-6)
    bcml.save(m, tmp_path / "back.st")
    back = load_file(str(tmp_path / "back.st"))
    tm2 = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    tm2.load_state_dict({k[len("layers."):]: v for k, v in back.items()})
    np.testing.assert_allclose(tm2(torch.from_numpy(x)).detach().numpy(), ours, rtol=1e-5, atol=1e-6)


def test_truncated_and_corrupt_files_raise_valueerror(tmp_path):
    bcml.save({"w": bcml.randn(100)}, tmp_path / "ok.st")
    data = (tmp_path / "ok.st").read_bytes()
    for name, blob in [("short", data[:5]), ("truncated", data[:-10]), ("header", data[:8] + b"{not json" + data[17:]),
                       ("huge", (2 ** 60).to_bytes(8, "little") + data[8:])]:
        p = tmp_path / name
        p.write_bytes(blob)
        with pytest.raises(ValueError, match=str(p.name)):
            bcml.load(p)
    with pytest.raises(FileNotFoundError):
        bcml.load(tmp_path / "missing.st")


def test_save_rejects_bad_objects(tmp_path):
    with pytest.raises(TypeError, match="obj"):
        bcml.save([1, 2], tmp_path / "x")
    with pytest.raises(TypeError, match="keys"):
        bcml.save({1: bcml.zeros(1)}, tmp_path / "x")
