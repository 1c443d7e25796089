"""bcml.load_torch_checkpoint: checkpoints written by PyTorch (torch.save, zip and legacy formats)
read without PyTorch, checked against the tensors PyTorch saved; the restricted unpickler refuses
every other global; corrupt files raise ValueError."""
import collections
import io
import os
import pickle
import zipfile

import numpy as np
import pytest

import bcml
from bcml import nn
from bcml.models import ResNet18

FORMATS = ("zip", "legacy")


def _save(torch, obj, path, fmt):
    torch.save(obj, str(path), _use_new_zipfile_serialization=(fmt == "zip"))
    return path


def _expected(t):
    """What bcml documents for a PyTorch tensor: floats -> float32 (PyTorch's own rounding),
    integers -> int64, bool -> bool."""
    import torch
    t = t.detach()
    if t.dtype.is_floating_point:
        return t.to(torch.float32).numpy()
    if t.dtype == torch.bool:
        return t.numpy()
    return np.array(t.tolist(), dtype=np.int64).reshape(tuple(t.shape))


def _check_same(got, want):
    want_np = _expected(want)
    assert isinstance(got, bcml.Tensor)
    assert tuple(got.shape) == want_np.shape
    dt = {np.dtype(np.float32): bcml.float32, np.dtype(np.int64): bcml.int64, np.dtype(bool): bcml.bool}[want_np.dtype]
    assert got.dtype == dt
    np.testing.assert_array_equal(np.asarray(got.detach().numpy()), want_np)


def _rewrite_zip(src, dst, edit):
    """Copies the zip archive src to dst, each record (name, bytes) passed through edit(name, data),
    which returns (new name, new data) or None to drop it. Records are stored, as torch.save does."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            out = edit(info.filename, zin.read(info))
            if out is not None:
                zout.writestr(out[0], out[1])
    return dst


def _tensor_reduce(torch, t, rebuild=None, offset=0, size=None, stride=None, extra=()):
    """A pickle-able stand-in that torch's pickler writes as rebuild(storage of t, offset, size,
    stride, False, OrderedDict()) followed by extra (state, list items, dict items): lets a test
    write the rebuild call with values PyTorch itself would never write."""
    storage = torch.storage.TypedStorage(wrap_storage=t.untyped_storage(), dtype=t.dtype, _internal=True)
    args = (storage, offset, tuple(t.shape) if size is None else size, tuple(t.stride()) if stride is None else stride,
            False, collections.OrderedDict())
    func = rebuild or torch._utils._rebuild_tensor_v2

    class Crafted:
        def __reduce__(self):
            return (func, args) + tuple(extra)
    return Crafted()


# ==== what PyTorch writes ========================================================================
@pytest.mark.parametrize("fmt", FORMATS)
def test_every_dtype_reads_as_documented(tmp_path, torch, fmt):
    g = torch.Generator().manual_seed(0)
    sd = collections.OrderedDict([
        ("f32", torch.randn(3, 4, generator=g)),
        ("f64", torch.randn(5, generator=g, dtype=torch.float64) * 1e10),
        ("f16", torch.randn(2, 3, generator=g).half()),
        ("bf16", torch.randn(7, generator=g).bfloat16()),
        ("i64", torch.tensor([-(2 ** 63), 2 ** 63 - 1, 0, -5])),
        ("i32", torch.tensor([-(2 ** 31), 2 ** 31 - 1], dtype=torch.int32)),
        ("i16", torch.tensor([-300, 300], dtype=torch.int16)),
        ("i8", torch.tensor([-128, 127], dtype=torch.int8)),
        ("u8", torch.tensor([0, 255, 7], dtype=torch.uint8)),
        ("bool", torch.tensor([True, False, True])),
        ("scalar", torch.tensor(2.5)),
        ("count", torch.tensor(17)),                         # BatchNorm's num_batches_tracked
        ("empty", torch.zeros(0, 3)),
        ("rank4", torch.randn(2, 3, 2, 2, generator=g)),
    ])
    path = _save(torch, sd, tmp_path / "all.pt", fmt)
    got = bcml.load_torch_checkpoint(path)
    assert isinstance(got, collections.OrderedDict) and list(got) == list(sd)
    for k, t in sd.items():
        _check_same(got[k], t)
    # and PyTorch reads the same values back from this file
    for k, t in torch.load(str(path), weights_only=True).items():
        _check_same(got[k], t)


@pytest.mark.parametrize("fmt", FORMATS)
def test_unsigned_dtypes_of_rebuild_v3(tmp_path, torch, fmt):
    """uint16/32/64 are written with _rebuild_tensor_v3 on an untyped storage and a torch.<dtype>."""
    sd = {"u16": torch.tensor([0, 65535, 3], dtype=torch.uint16),
          "u32": torch.tensor([0, 2 ** 32 - 1], dtype=torch.uint32),
          "u64": torch.tensor([0, 2 ** 63 - 1], dtype=torch.uint64),
          "f": torch.ones(2)}
    path = _save(torch, sd, tmp_path / "u.pt", fmt)
    got = bcml.load_torch_checkpoint(path)
    for k, t in sd.items():
        _check_same(got[k], t)
    _save(torch, {"u64": torch.tensor([2 ** 63], dtype=torch.uint64)}, tmp_path / "big.pt", fmt)
    with pytest.raises(ValueError, match="overflow"):
        bcml.load_torch_checkpoint(tmp_path / "big.pt")


@pytest.mark.parametrize("fmt", FORMATS)
def test_float64_beyond_float32_is_refused(tmp_path, torch, fmt):
    _save(torch, {"w": torch.tensor([1.0, 1e300], dtype=torch.float64)}, tmp_path / "f.pt", fmt)
    with pytest.raises(ValueError, match="beyond float32's range"):
        bcml.load_torch_checkpoint(tmp_path / "f.pt")
    _save(torch, {"w": torch.tensor([float("inf"), float("nan")], dtype=torch.float64)}, tmp_path / "g.pt", fmt)
    w = bcml.load_torch_checkpoint(tmp_path / "g.pt")["w"].numpy()
    assert np.isposinf(w[0]) and np.isnan(w[1])


@pytest.mark.parametrize("fmt", FORMATS)
def test_views_shared_storage_and_non_contiguous_tensors(tmp_path, torch, fmt):
    base = torch.arange(60, dtype=torch.float32).reshape(3, 4, 5)
    sd = {"base": base, "t": base[0].t(), "slice": base[1:, ::2, 1:4], "row": base[2, 3],
          "elem": base[1, 2, 3], "expanded": base[0, 0, :2].reshape(2, 1).expand(2, 6),
          "perm": base.permute(2, 0, 1), "other": torch.arange(6).reshape(2, 3).t()}
    path = _save(torch, sd, tmp_path / "views.pt", fmt)
    if fmt == "zip":  # every float view shares the one storage of base
        with zipfile.ZipFile(path) as z:
            assert sum("/data/" in n and "/.data/" not in n for n in z.namelist()) == 2
    got = bcml.load_torch_checkpoint(path)
    for k, t in sd.items():
        _check_same(got[k], t)
    got["base"].add_(1.0)  # each tensor owns its copy
    np.testing.assert_array_equal(got["t"].numpy(), base[0].t().numpy())


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_transposed_tensor_saved_alone(tmp_path, torch, fmt):
    x = torch.randn(3, 5, generator=torch.Generator().manual_seed(3)).t()
    assert not x.is_contiguous()
    got = bcml.load_torch_checkpoint(_save(torch, x, tmp_path / "x.pt", fmt))
    _check_same(got, x)


@pytest.mark.parametrize("fmt", FORMATS)
def test_nested_containers_and_plain_values(tmp_path, torch, fmt):
    w = torch.randn(2, 2)
    obj = {"state_dict": collections.OrderedDict([("fc.weight", w), ("fc.bias", torch.zeros(2))]),
           "epoch": 3, "lr": 0.01, "name": "run-1", "best": None, "done": False, "big": 2 ** 70,
           "history": [1, 2.5, [w, "x"]], "pair": (w, torch.ones(1))}
    got = bcml.load_torch_checkpoint(_save(torch, obj, tmp_path / "n.pt", fmt))
    assert set(got) == set(obj)
    assert (got["epoch"], got["lr"], got["name"], got["best"], got["done"], got["big"]) == \
        (3, 0.01, "run-1", None, False, 2 ** 70)
    _check_same(got["state_dict"]["fc.weight"], w)
    _check_same(got["state_dict"]["fc.bias"], torch.zeros(2))
    assert got["history"][:2] == [1, 2.5] and got["history"][2][1] == "x"
    _check_same(got["history"][2][0], w)
    assert isinstance(got["pair"], tuple)
    _check_same(got["pair"][0], w)
    assert got["pair"][0] is got["state_dict"]["fc.weight"]  # the pickle's sharing is kept
    # pickle protocol 2 (torch.save's) writes bytes and sets through globals: refused like any other
    for value, name in ((b"\x00", "_codecs.encode"), ({"a"}, "builtins.set")):
        path = _save(torch, {"w": w, "x": value}, tmp_path / "x.pt", fmt)
        with pytest.raises(ValueError, match=name):
            bcml.load_torch_checkpoint(path)
    # protocol 4 writes them with opcodes of their own: read
    torch.save({"w": w, "raw": b"\x00\x01", "tags": {"a"}, "fs": frozenset([2])}, str(tmp_path / "p4.pt"),
               pickle_protocol=4, _use_new_zipfile_serialization=(fmt == "zip"))
    got = bcml.load_torch_checkpoint(tmp_path / "p4.pt")
    assert (got["raw"], got["tags"], got["fs"]) == (b"\x00\x01", {"a"}, frozenset([2]))
    _check_same(got["w"], w)


@pytest.mark.parametrize("fmt", FORMATS)
def test_parameters_and_requires_grad(tmp_path, torch, fmt):
    p = torch.nn.Parameter(torch.randn(3, 2))
    frozen = torch.nn.Parameter(torch.randn(2), requires_grad=False)
    leaf = torch.randn(4).requires_grad_()
    got = bcml.load_torch_checkpoint(_save(torch, {"p": p, "frozen": frozen, "leaf": leaf}, tmp_path / "p.pt", fmt))
    assert isinstance(got["p"], nn.Parameter) and got["p"].requires_grad
    assert isinstance(got["frozen"], nn.Parameter) and not got["frozen"].requires_grad
    assert not isinstance(got["leaf"], nn.Parameter) and got["leaf"].requires_grad
    for k, t in (("p", p), ("frozen", frozen), ("leaf", leaf)):
        _check_same(got[k], t)
    # a Parameter with Python attributes is written with _rebuild_parameter_with_state
    p.note = "kept by PyTorch, dropped by bcml"
    got = bcml.load_torch_checkpoint(_save(torch, p, tmp_path / "s.pt", fmt))
    assert isinstance(got, nn.Parameter)
    _check_same(got, p)


def test_zip_top_folder_name_and_missing_byteorder(tmp_path, torch):
    sd = {"w": torch.randn(3, 3), "i": torch.arange(4)}
    src = _save(torch, sd, tmp_path / "weights.pth", "zip")
    with zipfile.ZipFile(src) as z:
        assert any(n == "weights/data.pkl" for n in z.namelist())
    renamed = _rewrite_zip(src, tmp_path / "r.pt", lambda n, d: ("archive/" + n.split("/", 1)[1], d))
    nomark = _rewrite_zip(src, tmp_path / "m.pt", lambda n, d: None if n.endswith("/byteorder") else (n, d))
    for path in (src, renamed, nomark):
        got = bcml.load_torch_checkpoint(path)
        for k, t in sd.items():
            _check_same(got[k], t)


def test_big_endian_archive(tmp_path, torch):
    """An archive written on a big-endian machine: byteorder 'big' and every storage byteswapped.
    PyTorch's own reader is the reference."""
    sd = collections.OrderedDict([("f", torch.randn(2, 3)), ("i", torch.tensor([1, -2, 2 ** 40])),
                                  ("h", torch.randn(3).half()), ("b", torch.tensor([True, False]))])
    src = _save(torch, sd, tmp_path / "le.pt", "zip")
    types = {"0": ">f4", "1": ">i8", "2": ">f2", "3": "|u1"}  # storage keys in pickling order

    def swap(name, data):
        if name.endswith("/byteorder"):
            return name, b"big"
        key = name.rsplit("/", 1)[1]
        if "/data/" in name and "/.data/" not in name:
            return name, np.frombuffer(data, dtype=types[key].replace(">", "<")).astype(types[key]).tobytes()
        return name, data
    path = _rewrite_zip(src, tmp_path / "be.pt", swap)
    ref = torch.load(str(path), weights_only=True)
    for k in sd:
        assert torch.equal(ref[k], sd[k])
    got = bcml.load_torch_checkpoint(path)
    for k, t in sd.items():
        _check_same(got[k], t)


# ==== ResNet18 with torchvision's keys =============================================================
@pytest.mark.parametrize("fmt", FORMATS)
def test_resnet18_imagenet_layout_loads_then_a_new_head(tmp_path, torch, fmt):
    model = ResNet18(num_classes=1000)
    g = torch.Generator().manual_seed(11)
    sd = collections.OrderedDict()
    for k, v in model.state_dict().items():  # torchvision's key names and shapes, PyTorch's random values
        if v.dtype == bcml.int64:
            sd[k] = torch.tensor(int(torch.randint(0, 1000, (), generator=g)))
        elif k.endswith("running_var"):
            sd[k] = torch.rand(tuple(v.shape), generator=g) + 0.5
        else:
            sd[k] = torch.randn(tuple(v.shape), generator=g) * 0.1
    assert "fc.weight" in sd and tuple(sd["fc.weight"].shape) == (1000, 512)
    path = _save(torch, sd, tmp_path / "resnet18-imagenet.pth", fmt)

    weights = bcml.load_torch_checkpoint(path)
    assert list(weights) == list(sd)
    result = model.load_state_dict(weights)
    assert list(result.missing_keys) == [] and list(result.unexpected_keys) == []
    for k, v in model.state_dict().items():
        _check_same(v, sd[k])

    # the pretrained notebook's pattern: ImageNet weights, then a new 10-class head
    model.fc = nn.Linear(512, 10)
    keys = list(model.state_dict())
    assert keys == list(sd)
    assert tuple(model.state_dict()["fc.weight"].shape) == (10, 512)
    for k, v in model.state_dict().items():
        if not k.startswith("fc."):
            _check_same(v, sd[k])
    model.eval()
    x = bcml.from_numpy(np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32))
    out = model(x)
    out = out[-1] if isinstance(out, tuple) else out
    assert tuple(out.shape) == (2, 10) and np.isfinite(out.detach().numpy()).all()
    params = list(model.parameters())
    assert any(p is model.fc.weight for p in params)


# ==== the restricted unpickler ===================================================================
class _Custom:
    """A class of the user's: pickled by reference to this test module."""

    def __init__(self):
        self.x = 1


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("how", ["os.system", "builtins.eval", "builtins.exec", "subprocess", "custom class",
                                 "whole module"])
def test_any_other_global_raises_before_anything_runs(tmp_path, torch, fmt, how):
    marker = tmp_path / "side-effect"
    cmd = "touch %s" % marker
    code = "open(%r, 'w').close()" % str(marker)
    import subprocess
    payloads = {"os.system": (os.system, (cmd,)), "builtins.eval": (eval, (code,)), "builtins.exec": (exec, (code,)),
                "subprocess": (subprocess.call, (["touch", str(marker)],))}
    if how in payloads:
        func, args = payloads[how]

        class Evil:
            def __reduce__(self):
                return func, args
        obj, names = {"w": torch.ones(2), "x": Evil()}, {"os.system": ("posix", "nt", "os"),
                                                        "builtins.eval": ("builtins",), "builtins.exec": ("builtins",),
                                                        "subprocess": ("subprocess",)}[how]
        name = {"os.system": "system", "builtins.eval": "eval", "builtins.exec": "exec", "subprocess": "call"}[how]
    elif how == "custom class":
        obj, names, name = {"w": torch.ones(2), "c": _Custom()}, (__name__,), "_Custom"
    else:
        obj, names, name = torch.nn.Linear(2, 2), ("torch.nn.modules.linear",), "Linear"
    path = _save(torch, obj, tmp_path / "evil.pt", fmt)
    with pytest.raises(pickle.UnpicklingError) as e:
        bcml.load_torch_checkpoint(path)
    assert isinstance(e.value, ValueError)
    msg = str(e.value)
    assert any("%s.%s" % (m, name) in msg for m in names) or (how == "whole module" and "nn.Module" in msg), msg
    assert not marker.exists()
    if how in payloads:  # the payload is real: PyTorch's unrestricted reader runs it
        torch.load(str(path), weights_only=False)
        assert marker.exists()


@pytest.mark.parametrize("fmt", FORMATS)
def test_opcodes_cannot_change_a_rebuilt_tensor(tmp_path, torch, fmt):
    """BUILD (state / attributes), SETITEMS and APPENDS on a rebuilt tensor would call its
    setters or __setitem__: refused."""
    t = torch.arange(4.0)
    cases = {"state": ({"requires_grad": True},), "slots": ((None, {"data": 1}),),
             "dictitems": (None, None, iter([(0, 5.0)])), "listitems": (None, iter([1.0]))}
    for what, extra in cases.items():
        path = _save(torch, {"w": _tensor_reduce(torch, t, extra=extra)}, tmp_path / ("%s.pt" % what), fmt)
        with pytest.raises(ValueError, match="BUILD|state of a|SETITEM|APPEND"):
            bcml.load_torch_checkpoint(path)


@pytest.mark.parametrize("fmt", FORMATS)
def test_offsets_sizes_and_strides_beyond_the_storage_name_the_key(tmp_path, torch, fmt):
    t = torch.arange(6.0)
    bad = {"size": dict(size=(7,)), "offset": dict(offset=3, size=(4,)), "stride": dict(size=(3,), stride=(3,)),
           "offset past end": dict(offset=7, size=(0,)), "rank5": dict(size=(1, 1, 1, 1, 6), stride=(6, 6, 6, 6, 1)),
           "negative stride": dict(size=(2,), stride=(-1,)), "length": dict(size=(2, 3), stride=(1,)),
           "float size": dict(size=(2.0,)), "beyond int64": dict(size=(2 ** 64, 0), stride=(1, 1)),
           "huge expand": dict(size=(2 ** 20, 2 ** 20), stride=(0, 0))}
    for what, kw in bad.items():
        path = _save(torch, collections.OrderedDict([("layer.weight", _tensor_reduce(torch, t, **kw))]),
                     tmp_path / "bad.pt", fmt)
        with pytest.raises(ValueError, match="'layer.weight'") as e:
            bcml.load_torch_checkpoint(path)
        assert isinstance(e.value, pickle.UnpicklingError), what
    # the edge that is still inside: the last element exactly
    ok = _save(torch, {"w": _tensor_reduce(torch, t, offset=2, size=(2, 2), stride=(2, 1))}, tmp_path / "ok.pt", fmt)
    np.testing.assert_array_equal(bcml.load_torch_checkpoint(ok)["w"].numpy(), [[2, 3], [4, 5]])
    # the stride of a dimension of size 1 is never used (PyTorch accepts any); an empty tensor reads nothing
    ok = _save(torch, {"w": _tensor_reduce(torch, t, offset=5, size=(1, 1), stride=(2 ** 62, 7)),
                       "e": _tensor_reduce(torch, t, offset=6, size=(0, 2 ** 40), stride=(2 ** 50, 1))},
               tmp_path / "one.pt", fmt)
    got = bcml.load_torch_checkpoint(ok)
    np.testing.assert_array_equal(got["w"].numpy(), [[5.0]])
    assert tuple(got["e"].shape) == (0, 2 ** 40)


def test_refused_formats_and_records(tmp_path, torch):
    src = _save(torch, {"w": torch.ones(3)}, tmp_path / "ok.pt", "zip")
    # compressed records (torch.save never compresses)
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(tmp_path / "deflated.pt", "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, zin.read(info))
    with pytest.raises(ValueError, match="compressed"):
        bcml.load_torch_checkpoint(tmp_path / "deflated.pt")
    # two top folders with data.pkl, and none
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(tmp_path / "two.pt", "w") as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, zin.read(info))
            zout.writestr("other/" + info.filename.split("/", 1)[1], zin.read(info))
    with pytest.raises(ValueError, match="exactly one"):
        bcml.load_torch_checkpoint(tmp_path / "two.pt")
    _rewrite_zip(src, tmp_path / "none.pt", lambda n, d: None if n.endswith("data.pkl") else (n, d))
    with pytest.raises(ValueError, match="exactly one"):
        bcml.load_torch_checkpoint(tmp_path / "none.pt")
    # a storage record missing or of the wrong size
    _rewrite_zip(src, tmp_path / "nodata.pt", lambda n, d: None if n.endswith("/data/0") else (n, d))
    with pytest.raises(ValueError, match="no record"):
        bcml.load_torch_checkpoint(tmp_path / "nodata.pt")
    _rewrite_zip(src, tmp_path / "short.pt", lambda n, d: (n, d[:-4]) if n.endswith("/data/0") else (n, d))
    with pytest.raises(ValueError, match="expected 12"):
        bcml.load_torch_checkpoint(tmp_path / "short.pt")
    _rewrite_zip(src, tmp_path / "mark.pt", lambda n, d: (n, b"middle") if n.endswith("/byteorder") else (n, d))
    with pytest.raises(ValueError, match="byteorder"):
        bcml.load_torch_checkpoint(tmp_path / "mark.pt")
    # not checkpoints at all
    import tarfile
    with tarfile.open(tmp_path / "old.tar", "w") as tf:
        tf.add(src, arcname="x")
    for name, data in (("empty", b""), ("text", b"hello world\n"), ("pickle", pickle.dumps({"a": 1}, protocol=2)),
                       ("safetensors", (tmp_path / "old.tar").read_bytes()[:0] + b"\x08" + b"\0" * 7 + b"{}      ")):
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ValueError):
            bcml.load_torch_checkpoint(tmp_path / name)
    with pytest.raises(ValueError, match="tar"):
        bcml.load_torch_checkpoint(tmp_path / "old.tar")


def test_path_argument(tmp_path, torch):
    path = _save(torch, {"w": torch.ones(2)}, tmp_path / "w.pt", "zip")
    for p in (path, str(path), os.fsencode(str(path))):
        np.testing.assert_array_equal(bcml.load_torch_checkpoint(p)["w"].numpy(), [1.0, 1.0])
    with pytest.raises(TypeError, match="argument 'path'"):
        bcml.load_torch_checkpoint(io.BytesIO(path.read_bytes()))
    with pytest.raises(FileNotFoundError):
        bcml.load_torch_checkpoint(tmp_path / "missing.pt")


@pytest.mark.parametrize("fmt", FORMATS)
def test_truncations_and_byte_flips_only_raise_valueerror(tmp_path, torch, fmt):
    """Every truncation (at a stride) and random byte flips of a small checkpoint: the reader
    returns something or raises ValueError (TorchCheckpointError, also an UnpicklingError), never
    another exception, a crash or a hang."""
    sd = collections.OrderedDict([("a", torch.arange(6.0).reshape(2, 3).t()), ("b", torch.tensor([1, 2])),
                                  ("c", torch.tensor([True])), ("n", torch.tensor(2.0))])
    data = _save(torch, {"sd": sd, "epoch": 2}, tmp_path / "small.pt", fmt).read_bytes()
    rng = np.random.default_rng(5)
    path = tmp_path / "fuzz.pt"
    outcomes = collections.Counter()
    step = max(1, len(data) // 150)
    cuts = list(range(0, len(data), step))
    variants = [data[:n] for n in cuts]
    for _ in range(300):
        b = bytearray(data)
        for _ in range(int(rng.integers(1, 4))):
            b[int(rng.integers(0, len(b)))] = int(rng.integers(0, 256))
        variants.append(bytes(b))
    if fmt == "zip":  # the pickle itself, behind a valid CRC (flips of the archive mostly hit the CRC check)
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            recs = {i.filename: z.read(i) for i in z.infolist()}
        pkl_name = next(n for n in recs if n.endswith("/data.pkl"))
        for i in range(300):
            b = bytearray(recs[pkl_name])
            for _ in range(int(rng.integers(1, 4))):
                b[int(rng.integers(0, len(b)))] = int(rng.integers(0, 256))
            if i % 5 == 0:
                b = b[:int(rng.integers(0, len(b)))]
            out = io.BytesIO()
            with zipfile.ZipFile(out, "w") as z:
                for n, d in recs.items():
                    z.writestr(n, bytes(b) if n == pkl_name else d)
            variants.append(out.getvalue())
    for v in variants:
        path.write_bytes(v)
        try:
            bcml.load_torch_checkpoint(path)
            outcomes["ok"] += 1
        except ValueError as e:
            assert isinstance(e, pickle.UnpicklingError), repr(e)
            outcomes["ValueError"] += 1
    assert outcomes["ValueError"] >= len(cuts) - 1  # every proper truncation is refused
